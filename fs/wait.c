/* Requests parked until the cluster answers (a proposal, a barrier) stay interruptible: when
 * the kernel forwards an interrupt (the caller got a signal), the request is answered EINTR at
 * once and the later completion answers nothing. The proposal itself may still commit.
 *
 * Exactly one of the interrupt callback and the completion answers: the first to set
 * is_answered. libfuse calls the callback with the request's own lock held, and
 * fuse_req_interrupt_func takes that lock too, so after the completion unregisters the callback
 * none is running or will run. The callback answers directly only when libfuse holds a
 * reference of its own on the request (the INTERRUPT message); when it runs inside
 * fuse_req_interrupt_func (the request was interrupted before it was registered), answering
 * there would free the request under libfuse's feet, so it only notes it.
 *
 * One call, one deadline. A system call can reach the daemon as several requests, each of
 * which may wait for the cluster: open(O_CREAT) is a lookup (a barrier in "open" mode) and then
 * a create (a proposal). Each waiting its own op timeout made the call take up to twice the
 * bound on a cut-off node. The kernel does not say which requests belong to one call, but
 * they come from one thread, back to back: a request of a thread whose previous wait ran into
 * its deadline less than FS_INHERIT_MS before inherits that deadline (consumed once), so a call
 * waits one op timeout in all. A new call that the thread makes within that instant inherits it
 * too: it fails (a change: EROFS) or reads locally (as a timed-out barrier allows) at once,
 * which is what a node that just found the cluster unreachable should answer anyway. */
#include <errno.h>
#include <time.h>

#include "fs/internal.h"
#include "lib/clock.h"

static __thread bool is_arming; /* this thread is inside fuse_req_interrupt_func */

static void on_interrupt(fuse_req_t req, void *data)
{
    struct fs_wait *w = data;
    if (is_arming) {
        w->is_interrupted_early = true;
        return;
    }
    pthread_mutex_lock(&w->lock);
    bool is_first = !w->is_answered;
    w->is_answered = true;
    pthread_mutex_unlock(&w->lock);
    if (is_first)
        fuse_reply_err(req, EINTR); /* w may be freed from here on: not touched again */
}

bool fs__wait_start(struct fs_wait *w, fuse_req_t req)
{
    w->req = req;
    w->is_answered = false;
    w->is_interrupted_early = false;
    pthread_mutex_init(&w->lock, NULL);
    is_arming = true;
    fuse_req_interrupt_func(req, on_interrupt, w);
    is_arming = false;
    if (!w->is_interrupted_early)
        return true;
    fuse_req_interrupt_func(req, NULL, NULL);
    pthread_mutex_destroy(&w->lock);
    return false;
}

bool fs__wait_claim(struct fs_wait *w)
{
    pthread_mutex_lock(&w->lock);
    bool is_first = !w->is_answered;
    w->is_answered = true;
    pthread_mutex_unlock(&w->lock);
    if (is_first)
        fuse_req_interrupt_func(w->req, NULL, NULL); /* waits for a callback in progress */
    pthread_mutex_destroy(&w->lock);
    return is_first;
}

/* How soon after a missed deadline a request of the same thread is taken for the same call. */
#define FS_INHERIT_MS 200
/* A wait that failed this close to its deadline ran into it. */
#define FS_DEADLINE_SLACK_MS 20

static struct fs_missed *missed_slot(struct fs *fs, uint32_t pid)
{
    return &fs->missed[(pid * 2654435761u) % FS_MISSED_SLOTS];
}

unsigned fs__wait_deadline(struct fs *fs, struct fs_wait *w)
{
    uint64_t now = rfs_clock_ms(CLOCK_MONOTONIC);
    w->pid = (uint32_t)fuse_req_ctx(w->req)->pid;
    w->deadline_ms = now + fs->opts.op_timeout_ms;
    pthread_mutex_lock(&fs->lock);
    struct fs_missed *m = missed_slot(fs, w->pid);
    if (w->pid != 0 && m->pid == w->pid && now - m->ended_ms < FS_INHERIT_MS) {
        w->deadline_ms = m->deadline_ms;
        m->pid = 0;
    }
    pthread_mutex_unlock(&fs->lock);
    return w->deadline_ms > now ? (unsigned)(w->deadline_ms - now) : 0;
}

void fs__wait_ended(struct fs *fs, const struct fs_wait *w, int status)
{
    uint64_t now = rfs_clock_ms(CLOCK_MONOTONIC);
    /* The runtime completes an expired request on its next tick: count a little before. */
    if (status == 0 || w->pid == 0 || now + FS_DEADLINE_SLACK_MS < w->deadline_ms)
        return;
    pthread_mutex_lock(&fs->lock);
    *missed_slot(fs, w->pid) =
        (struct fs_missed){.pid = w->pid, .ended_ms = now, .deadline_ms = w->deadline_ms};
    pthread_mutex_unlock(&fs->lock);
}
