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
 * there would free the request under libfuse's feet, so it only notes it. */
#include <errno.h>

#include "fs/internal.h"

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
