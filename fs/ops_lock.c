/* Cluster-wide flock(2) and fcntl(2) locks: the node's session, the FUSE lock operations, and
 * the blocking requests parked until the apply path grants or fails them (DESIGN.md section 5,
 * "Locks"; the lock table itself is store/fsm_locks.c).
 *
 * Design note. Invariants, all under locks->mu:
 * 1. Every lock request names locks->session, the session the state machine opened for this
 *    node (the result of this run's SESSION_OPEN). While it is 0 (not opened yet, or found
 *    ended: a LOCK answered ENOLCK) requests fail with ENOLCK and the keeper thread proposes a
 *    new SESSION_OPEN until one commits.
 * 2. A blocking request is listed in locks->waiters before its LOCK is proposed, since the
 *    command that grants it may be applied in the same batch as the LOCK itself. Whoever takes
 *    it off the list answers its FUSE request, exactly once: the wakeup in the apply path
 *    (granted, or failed: ENOLCK, ENOENT, EINTR), or the proposal's completion when the LOCK
 *    did not queue (granted at once, refused, or not committed).
 * 3. No FUSE thread waits: a parked request only holds its fuse_req_t.
 * 4. An interrupt (the process got a signal) proposes LOCK_CANCEL once the LOCK has been
 *    proposed; the cancel's EINTR wakeup answers the request. The interrupt callback finds its
 *    waiter by fuse_req_t under mu, never through a pointer that a reply may have freed.
 * 5. `owners` lists the (inode, lock owner, kind) this node asked a lock for, so that only a
 *    close of a file with locks pays for a LOCK_RELEASE round trip. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "fs/internal.h"
#include "store/error.h"

#define SESSION_RETRY_MS 200 /* between SESSION_OPEN attempts */

struct waiter {
    fuse_req_t req;
    uint64_t ino;
    uint64_t session;
    uint64_t request;
    bool is_proposed;    /* its LOCK has been proposed */
    bool is_interrupted; /* the process was interrupted: cancel once proposed */
    struct waiter *next;
};

struct lock_owner {
    uint64_t ino;
    uint64_t owner;
    uint8_t kind;
    struct lock_owner *next;
};

struct fs_locks {
    uint64_t node;
    fs_log_fn log;
    void *log_ctx;
    struct raft_runtime *rt; /* set by fs_locks_start */
    unsigned op_timeout_ms;
    pthread_t keeper;
    bool has_keeper;
    pthread_mutex_t mu;
    pthread_cond_t cond;       /* session changes, stop */
    bool is_stopping;          /* protected by mu (as are all fields below) */
    bool is_opening;           /* a SESSION_OPEN is in flight */
    uint64_t session;          /* invariant 1 */
    uint64_t next_request;     /* request IDs within the session */
    struct waiter *waiters;    /* invariant 2 */
    struct lock_owner *owners; /* invariant 5 */
};

static void say(struct fs_locks *l, enum raft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct fs_locks *l, enum raft_log_level level, const char *fmt, ...)
{
    if (l->log == NULL)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    l->log(l->log_ctx, level, text);
}

int fs_locks_new(uint64_t node, fs_log_fn log, void *log_ctx, struct fs_locks **out)
{
    struct fs_locks *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RFS_ENOMEM;
    l->node = node;
    l->log = log;
    l->log_ctx = log_ctx;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    *out = l;
    return 0;
}

void fs_locks_free(struct fs_locks *l)
{
    if (l == NULL)
        return;
    /* fs_locks_stop answered the parked requests; none can be added after it. */
    while (l->waiters != NULL) {
        struct waiter *w = l->waiters;
        l->waiters = w->next;
        free(w);
    }
    while (l->owners != NULL) {
        struct lock_owner *o = l->owners;
        l->owners = o->next;
        free(o);
    }
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* --- the session -------------------------------------------------------------------------- */

static void open_done(void *arg, int status, struct raft_apply_result *result)
{
    struct fs_locks *l = arg;
    int err = fs__proposal_errno(status, result);
    uint64_t session = 0;
    if (err == 0 && result->data != NULL && result->len == sizeof(struct store_fsm_result))
        session = ((const struct store_fsm_result *)result->data)->session;
    if (result != NULL)
        free(result->data);
    pthread_mutex_lock(&l->mu);
    l->is_opening = false;
    if (session != 0) {
        l->session = session;
        l->next_request = 0;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (session != 0)
        say(l, RAFT_LOG_INFO, "lock session %llu opened", (unsigned long long)session);
    else
        say(l, RAFT_LOG_DEBUG, "opening the lock session failed (%s); retrying",
            strerror(err != 0 ? err : EIO));
}

/* Keeper thread: opens the session whenever there is none (invariant 1). */
static void *keeper(void *arg)
{
    struct fs_locks *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->is_stopping) {
        if (l->session == 0 && !l->is_opening) {
            l->is_opening = true;
            pthread_mutex_unlock(&l->mu);
            struct store_cmd cmd = {.type = STORE_CMD_SESSION_OPEN, .node = l->node};
            fs__now(&cmd);
            size_t len;
            uint8_t buf[64];
            int rc = store_cmd_encode(&cmd, buf, sizeof buf, &len);
            if (rc == 0)
                rc = raft_runtime_propose(l->rt, buf, len, l->op_timeout_ms, open_done, l);
            pthread_mutex_lock(&l->mu);
            if (rc != 0)
                l->is_opening = false;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += SESSION_RETRY_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&l->cond, &l->mu, &until);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int fs_locks_start(struct fs_locks *l, struct raft_runtime *rt, unsigned op_timeout_ms)
{
    l->rt = rt;
    l->op_timeout_ms = op_timeout_ms;
    if (pthread_create(&l->keeper, NULL, keeper, l) != 0)
        return RFS_ENOMEM;
    l->has_keeper = true;
    return 0;
}

void fs_locks_stop(struct fs_locks *l)
{
    if (l == NULL || !l->has_keeper)
        return;
    pthread_mutex_lock(&l->mu);
    l->is_stopping = true;
    l->session = 0; /* no new requests */
    struct waiter *parked = l->waiters;
    l->waiters = NULL;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->keeper, NULL);
    l->has_keeper = false;
    while (parked != NULL) {
        struct waiter *w = parked;
        parked = w->next;
        fuse_reply_err(w->req, ENOLCK);
        free(w);
    }
}

/* The state machine answered ENOLCK to a request of session: it is not live any more. */
static void session_lost(struct fs_locks *l, uint64_t session)
{
    pthread_mutex_lock(&l->mu);
    bool is_lost = l->session == session && session != 0;
    if (is_lost) {
        l->session = 0;
        pthread_cond_broadcast(&l->cond);
    }
    pthread_mutex_unlock(&l->mu);
    if (is_lost)
        say(l, RAFT_LOG_WARN, "lock session %llu has ended; opening a new one",
            (unsigned long long)session);
}

/* --- parked requests ---------------------------------------------------------------------- */

/* Take the waiter (session, request) off the list; NULL if someone else answered it. */
static struct waiter *take_waiter(struct fs_locks *l, uint64_t session, uint64_t request)
{
    for (struct waiter **p = &l->waiters; *p != NULL; p = &(*p)->next)
        if ((*p)->session == session && (*p)->request == request) {
            struct waiter *w = *p;
            *p = w->next;
            return w;
        }
    return NULL;
}

void fs_locks_wakeups(void *arg, const struct store_fsm_wakeup *wakeups, size_t n)
{
    struct fs_locks *l = arg;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&l->mu);
        struct waiter *w = take_waiter(l, wakeups[i].session, wakeups[i].request);
        pthread_mutex_unlock(&l->mu);
        if (w == NULL)
            continue; /* another node's waiter, or a request answered already */
        fuse_reply_err(w->req, wakeups[i].err);
        free(w);
    }
}

static void ignore_done(void *arg, int status, struct raft_apply_result *result)
{
    (void)arg;
    (void)status;
    if (result != NULL)
        free(result->data);
}

/* Propose LOCK_CANCEL for a waiter (invariant 4); its wakeup answers the request. */
static void propose_cancel(struct fs *fs, uint64_t ino, uint64_t session, uint64_t request)
{
    struct store_cmd cmd = {
        .type = STORE_CMD_LOCK_CANCEL, .ino = ino, .session = session, .request = request};
    fs__now(&cmd);
    fs__propose(fs, &cmd, ignore_done, NULL);
}

static void on_interrupt(fuse_req_t req, void *data)
{
    struct fs *fs = data;
    struct fs_locks *l = fs->locks;
    pthread_mutex_lock(&l->mu);
    struct waiter *w = l->waiters;
    while (w != NULL && w->req != req)
        w = w->next;
    bool cancel = false;
    uint64_t ino = 0, session = 0, request = 0;
    if (w != NULL) {
        w->is_interrupted = true;
        cancel = w->is_proposed;
        ino = w->ino;
        session = w->session;
        request = w->request;
    }
    pthread_mutex_unlock(&l->mu);
    if (cancel)
        propose_cancel(fs, ino, session, request);
}

/* --- lock requests ------------------------------------------------------------------------ */

/* One proposed LOCK (or LOCK_RELEASE) and the request its completion answers. */
struct lock_op {
    struct fs *fs;
    fuse_req_t req;
    uint64_t ino, session, request;
    bool is_waiting; /* a parked request (invariant 2) */
    int commit_err;  /* a commit that preceded the command failed: answer this instead */
    uint64_t owner;  /* getlk: the asking owner and its request */
    struct flock lock;
};

static void lock_done(void *arg, int status, struct raft_apply_result *result)
{
    struct lock_op *op = arg;
    struct fs_locks *l = op->fs->locks;
    /* Not committed (no quorum before the deadline, no leader): the lock table cannot be
     * reached, and a request left queued by a late commit is cancelled below. */
    int err = status != 0 ? ENOLCK : fs__proposal_errno(0, result);
    bool is_queued = false;
    if (err == 0 && result->data != NULL && result->len == sizeof(struct store_fsm_result))
        is_queued = ((const struct store_fsm_result *)result->data)->lock_queued;
    if (result != NULL)
        free(result->data);
    if (err == ENOLCK && status == 0)
        session_lost(l, op->session);

    bool do_reply = true;
    if (op->is_waiting) {
        pthread_mutex_lock(&l->mu);
        struct waiter *w = NULL;
        if (!is_queued)
            w = take_waiter(l, op->session, op->request);
        else
            do_reply = false; /* its wakeup answers it */
        pthread_mutex_unlock(&l->mu);
        if (!is_queued && w == NULL)
            do_reply = false; /* a wakeup answered it already */
        free(w);
        if (status != 0)
            propose_cancel(op->fs, op->ino, op->session, op->request);
    }
    if (do_reply)
        fuse_reply_err(op->req, op->commit_err != 0 ? op->commit_err : err);
    free(op);
}

/* Remember that owner asked for a lock of kind on ino (invariant 5). */
static int note_owner(struct fs_locks *l, uint64_t ino, uint64_t owner, uint8_t kind)
{
    for (struct lock_owner *o = l->owners; o != NULL; o = o->next)
        if (o->ino == ino && o->owner == owner && o->kind == kind)
            return 0;
    struct lock_owner *o = malloc(sizeof *o);
    if (o == NULL)
        return ENOMEM;
    *o = (struct lock_owner){.ino = ino, .owner = owner, .kind = kind, .next = l->owners};
    l->owners = o;
    return 0;
}

/* Forget (ino, owner, kind); true if it was listed. */
static bool forget_owner(struct fs_locks *l, uint64_t ino, uint64_t owner, uint8_t kind)
{
    for (struct lock_owner **p = &l->owners; *p != NULL; p = &(*p)->next)
        if ((*p)->ino == ino && (*p)->owner == owner && (*p)->kind == kind) {
            struct lock_owner *o = *p;
            *p = o->next;
            free(o);
            return true;
        }
    return false;
}

/* Propose cmd (LOCK or LOCK_RELEASE; its session and request are filled here) and answer req
 * from its outcome. commit_err, if not 0, is the answer whatever the outcome (a commit of the
 * file's buffer that preceded the command failed). */
static void propose_lock(struct fs *fs, fuse_req_t req, struct store_cmd *cmd, int commit_err)
{
    struct fs_locks *l = fs->locks;
    bool is_wait = cmd->type == STORE_CMD_LOCK && (cmd->flags & STORE_CMD_LOCK_WAIT);
    struct lock_op *op = calloc(1, sizeof *op);
    struct waiter *w = is_wait ? calloc(1, sizeof *w) : NULL;
    if (op == NULL || (is_wait && w == NULL)) {
        free(op);
        free(w);
        fuse_reply_err(req, commit_err != 0 ? commit_err : ENOMEM);
        return;
    }
    pthread_mutex_lock(&l->mu);
    uint64_t session = l->session;
    int err = session == 0 ? ENOLCK : 0;
    if (err == 0 && cmd->type == STORE_CMD_LOCK && cmd->lock_type != STORE_CMD_LOCK_UNLOCK)
        err = note_owner(l, cmd->ino, cmd->owner, cmd->lock_kind);
    if (err == 0) {
        cmd->session = session;
        cmd->request = ++l->next_request;
        if (is_wait) {
            *w = (struct waiter){.req = req,
                                 .ino = cmd->ino,
                                 .session = session,
                                 .request = cmd->request,
                                 .next = l->waiters};
            l->waiters = w;
        }
    }
    pthread_mutex_unlock(&l->mu);
    if (err != 0) {
        if (cmd->type == STORE_CMD_LOCK_RELEASE)
            err = 0; /* without a session nothing is held */
        free(op);
        free(w);
        fuse_reply_err(req, commit_err != 0 ? commit_err : err);
        return;
    }
    *op = (struct lock_op){.fs = fs,
                           .req = req,
                           .ino = cmd->ino,
                           .session = session,
                           .request = cmd->request,
                           .is_waiting = is_wait,
                           .commit_err = commit_err};
    if (is_wait)
        fuse_req_interrupt_func(req, on_interrupt, fs);
    fs__now(cmd);
    err = fs__propose(fs, cmd, lock_done, op);
    if (err != 0) {
        /* Not proposed: nobody else can have answered. */
        if (is_wait) {
            pthread_mutex_lock(&l->mu);
            free(take_waiter(l, session, cmd->request));
            pthread_mutex_unlock(&l->mu);
        }
        free(op);
        fuse_reply_err(req, commit_err != 0 ? commit_err : ENOLCK);
        return;
    }
    if (is_wait) {
        pthread_mutex_lock(&l->mu);
        bool cancel = false;
        /* w may have been answered and freed already: look it up by its name. */
        for (struct waiter *p = l->waiters; p != NULL; p = p->next)
            if (p->session == session && p->request == cmd->request) {
                p->is_proposed = true;
                cancel = p->is_interrupted;
            }
        pthread_mutex_unlock(&l->mu);
        if (cancel)
            propose_cancel(fs, cmd->ino, session, cmd->request);
    }
}

void fs__lock_after_commit(struct fs *fs, fuse_req_t req, struct store_cmd *then, int err)
{
    propose_lock(fs, req, then, err);
    free(then);
}

struct store_cmd *fs__lock_on_close(struct fs *fs, uint64_t ino, const struct fuse_file_info *fi,
                                    bool is_release)
{
    struct fs_locks *l = fs->locks;
    uint8_t kind = 0;
    pthread_mutex_lock(&l->mu);
    /* flush: POSIX locks of the closing process; release: the flock of the file description
     * (the kernel flags the release of a description that used flock). */
    if (!is_release && fi->flush && forget_owner(l, ino, fi->lock_owner, STORE_CMD_LOCK_POSIX))
        kind = STORE_CMD_LOCK_POSIX;
    if (is_release && fi->flock_release &&
        forget_owner(l, ino, fi->lock_owner, STORE_CMD_LOCK_FLOCK))
        kind = STORE_CMD_LOCK_FLOCK;
    pthread_mutex_unlock(&l->mu);
    if (kind == 0)
        return NULL;
    struct store_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd != NULL)
        *cmd = (struct store_cmd){
            .type = STORE_CMD_LOCK_RELEASE, .ino = ino, .owner = fi->lock_owner, .lock_kind = kind};
    return cmd;
}

/* Propose a LOCK for req: an unlock goes after a commit of the file's buffered writes, so the
 * next holder, on any node, reads them. */
static void lock_request(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                         const struct store_cmd *proto)
{
    struct fs *fs = fs__of(req);
    struct store_cmd *cmd = malloc(sizeof *cmd);
    if (cmd == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *cmd = *proto;
    cmd->type = STORE_CMD_LOCK;
    cmd->ino = ino;
    cmd->owner = fi->lock_owner;
    if (cmd->lock_type == STORE_CMD_LOCK_UNLOCK && fs__handle_of(fi) != NULL) {
        fs__handle_commit_then(req, fi, cmd);
        return;
    }
    fs__lock_after_commit(fs, req, cmd, 0);
}

void fs__flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
    struct store_cmd cmd = {.lock_kind = STORE_CMD_LOCK_FLOCK};
    switch (op & ~LOCK_NB) {
    case LOCK_SH: cmd.lock_type = STORE_CMD_LOCK_READ; break;
    case LOCK_EX: cmd.lock_type = STORE_CMD_LOCK_WRITE; break;
    case LOCK_UN: cmd.lock_type = STORE_CMD_LOCK_UNLOCK; break;
    default: fuse_reply_err(req, EINVAL); return;
    }
    if (!(op & LOCK_NB) && cmd.lock_type != STORE_CMD_LOCK_UNLOCK)
        cmd.flags = STORE_CMD_LOCK_WAIT;
    lock_request(req, ino, fi, &cmd);
}

/* The lock type of a struct flock as the state machine's; -1 if unknown. */
static int lock_type_of(short type)
{
    switch (type) {
    case F_RDLCK: return STORE_CMD_LOCK_READ;
    case F_WRLCK: return STORE_CMD_LOCK_WRITE;
    case F_UNLCK: return STORE_CMD_LOCK_UNLOCK;
    default: return -1;
    }
}

void fs__setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
               int sleep)
{
    /* libfuse hands over the kernel's range with l_whence SEEK_SET and l_len 0 for "to the
     * end"; the state machine checks the range as Linux does. */
    int type = lock_type_of(lock->l_type);
    if (type < 0 || lock->l_start < 0 || lock->l_len < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    struct store_cmd cmd = {.lock_kind = STORE_CMD_LOCK_POSIX,
                            .lock_type = (uint8_t)type,
                            .start = (uint64_t)lock->l_start,
                            .len = (uint64_t)lock->l_len,
                            .pid = lock->l_pid > 0 ? (uint32_t)lock->l_pid : 0};
    if (sleep && type != STORE_CMD_LOCK_UNLOCK)
        cmd.flags = STORE_CMD_LOCK_WAIT;
    lock_request(req, ino, fi, &cmd);
}

static void getlk_done(void *arg, int status, struct raft_apply_result *result)
{
    struct lock_op *op = arg;
    if (result != NULL)
        free(result->data);
    struct fs *fs = op->fs;
    const struct flock *lock = &op->lock;
    if (status != 0) {
        fuse_reply_err(op->req, ENOLCK);
        free(op);
        return;
    }
    pthread_mutex_lock(&fs->locks->mu);
    uint64_t session = fs->locks->session;
    pthread_mutex_unlock(&fs->locks->mu);
    struct store_fsm_lock out;
    int rc = store_fsm_getlk(fs->fsm, op->ino, session, op->owner, STORE_CMD_LOCK_POSIX,
                             (uint8_t)lock_type_of(lock->l_type), (uint64_t)lock->l_start,
                             (uint64_t)lock->l_len, &out);
    if (rc != 0) {
        fuse_reply_err(op->req, fs__read_errno(rc));
        free(op);
        return;
    }
    struct flock r = *lock;
    if (out.type == STORE_CMD_LOCK_UNLOCK) {
        r.l_type = F_UNLCK; /* the rest unchanged, as POSIX says */
    } else {
        r.l_type = out.type == STORE_CMD_LOCK_READ ? F_RDLCK : F_WRLCK;
        r.l_whence = SEEK_SET;
        r.l_start = (off_t)out.start;
        r.l_len = (off_t)out.len;
        /* A process of another node has no number here: the kernel would report whichever
         * local process has it. */
        r.l_pid = out.session == session ? (pid_t)out.pid : 0;
    }
    fuse_reply_lock(op->req, &r);
    free(op);
}

void fs__getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
    struct fs *fs = fs__of(req);
    if (lock_type_of(lock->l_type) < 0 || lock->l_type == F_UNLCK || lock->l_start < 0 ||
        lock->l_len < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    /* The answer comes from this node's state machine after a read barrier, so it reflects
     * every lock granted anywhere before the call. */
    struct lock_op *op = malloc(sizeof *op);
    if (op == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *op =
        (struct lock_op){.fs = fs, .req = req, .ino = ino, .owner = fi->lock_owner, .lock = *lock};
    if (raft_runtime_read_index(fs->rt, fs->opts.op_timeout_ms, getlk_done, op) != 0)
        getlk_done(op, RAFT_ESHUTDOWN, NULL);
}
