/* Cluster-wide flock(2) and fcntl(2) locks: the FUSE lock operations, and the blocking requests
 * parked until the apply path grants or fails them (DESIGN.md section 5, "Locks"; the node's
 * session is fs/node/session.c, the lock table itself store/fsm_locks.c).
 *
 * Design note. Invariants, all under locks->mu:
 * 1. Every lock request names the node's open session (fs/node/session.c, invariant 1), and
 *    gets its request ID and is parked under the session's lock (fs_session_request), which is
 *    taken before mu. Without a session, requests fail with ENOLCK.
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
 *    close of a file with locks pays for a LOCK_RELEASE round trip.
 * 6. When the session is lost (given up for lack of contact, or found ended: fs/node/session.c,
 *    invariant 2), its parked requests are taken off the list under the session's lock and
 *    answered ENOLCK, and a lock granted to it afterwards is answered ENOLCK too: this node no
 *    longer vouches for it. */
#include <errno.h>
#include <stdlib.h>
#include <sys/file.h>

#include "fs/internal.h"
#include "fs/node/session.h"
#include "lib/error.h"

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
    struct fs_session *session; /* the node's; owned */
    pthread_mutex_t mu;         /* after the session's lock */
    struct waiter *waiters;     /* invariant 2; protected by mu (as is owners) */
    struct lock_owner *owners;  /* invariant 5 */
};

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

/* The session's hooks (struct fs_session_hooks, arg the struct fs_locks): the parked requests
 * of session (0: all) come off the list under the session's lock (invariant 6)... */
static void *detach_parked(void *arg, uint64_t session)
{
    struct fs_locks *l = arg;
    struct waiter *lost = NULL;
    pthread_mutex_lock(&l->mu);
    for (struct waiter **p = &l->waiters; *p != NULL;) {
        struct waiter *w = *p;
        if (session != 0 && w->session != session) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        w->next = lost;
        lost = w;
    }
    pthread_mutex_unlock(&l->mu);
    return lost;
}

/* ... and are answered ENOLCK after it is dropped. */
static void fail_parked(void *arg, void *detached)
{
    (void)arg;
    struct waiter *lost = detached;
    while (lost != NULL) {
        struct waiter *w = lost;
        lost = w->next;
        fuse_reply_err(w->req, ENOLCK);
        free(w);
    }
}

int fs_locks_new(uint64_t node, fs_log_fn log, void *log_ctx, struct fs_locks **out)
{
    struct fs_locks *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RFS_ENOMEM;
    struct fs_session_hooks hooks = {.detach = detach_parked, .fail = fail_parked, .arg = l};
    int rc = fs_session_new(node, log, log_ctx, &hooks, &l->session);
    if (rc != 0) {
        free(l);
        return rc;
    }
    pthread_mutex_init(&l->mu, NULL);
    *out = l;
    return 0;
}

int fs_locks_start(struct fs_locks *l, struct raft_runtime *rt, struct store_fsm *fsm,
                   const struct fs_locks_config *cfg)
{
    return fs_session_start(l->session, rt, fsm, cfg);
}

void fs_locks_stop(struct fs_locks *l)
{
    if (l != NULL)
        fs_session_stop(l->session);
}

void fs_locks_local(struct fs_locks *l, struct fs_locks_local *out)
{
    fs_session_local(l->session, out);
}

bool fs__locks_lost(struct fs_locks *l)
{
    return fs_session_is_lost(l->session);
}

bool fs__locks_lost_by(struct fs *fs, struct fs_handle *h)
{
    uint64_t session = h != NULL ? atomic_load(&h->lock_session) : 0;
    return session != 0 && fs_session_id(fs->locks->session) != session;
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
    pthread_mutex_destroy(&l->mu);
    fs_session_free(l->session);
    free(l);
}

static void ignore_done(void *arg, int status, struct raft_apply_result *result)
{
    (void)arg;
    fs__proposal_result(status, result, NULL);
}

/* Propose LOCK_CANCEL for a waiter (invariant 4); its wakeup answers the request. */
static void propose_cancel(struct fs *fs, uint64_t ino, uint64_t session, uint64_t request)
{
    struct store_cmd cmd = {
        .type = STORE_CMD_LOCK_CANCEL, .ino = ino, .session = session, .request = request};
    fs__now(&cmd);
    fs__propose(fs->rt, fs->opts.op_timeout_ms, &cmd, ignore_done, NULL);
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
    bool is_acquire; /* a LOCK that takes a lock (not an unlock, not a release) */
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
    struct store_fsm_result res;
    int err = fs__proposal_result(status, result, &res);
    if (status != 0)
        err = ENOLCK;
    bool is_queued = err == 0 && res.lock_queued;
    if (err == ENOLCK && status == 0)
        fs_session_give_up(l->session, op->session,
                           "the state machine refused a lock request: it has ended");
    /* Granted to a session this node gave up meanwhile (invariant 6). */
    if (err == 0 && op->is_acquire && fs_session_id(l->session) != op->session)
        err = ENOLCK;

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

/* A lock request being numbered (fs_session_request): its command, and its waiter if it
 * blocks (NULL otherwise). */
struct park {
    struct fs_locks *l;
    fuse_req_t req;
    struct store_cmd *cmd;
    struct waiter *w;
};

/* Under the session's lock (invariant 1): name the session and request in the command, note its
 * owner, and park its waiter. */
static int park(void *arg, uint64_t session, uint64_t request)
{
    struct park *p = arg;
    struct fs_locks *l = p->l;
    struct store_cmd *cmd = p->cmd;
    int err = 0;
    pthread_mutex_lock(&l->mu);
    if (cmd->type == STORE_CMD_LOCK && cmd->lock_type != STORE_CMD_LOCK_UNLOCK)
        err = note_owner(l, cmd->ino, cmd->owner, cmd->lock_kind);
    if (err == 0) {
        cmd->session = session;
        cmd->request = request;
        if (p->w != NULL) {
            *p->w = (struct waiter){.req = p->req,
                                    .ino = cmd->ino,
                                    .session = session,
                                    .request = request,
                                    .next = l->waiters};
            l->waiters = p->w;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return err;
}

/* Propose cmd (LOCK or LOCK_RELEASE; its session and request are filled here) and answer req
 * from its outcome. commit_err, if not 0, is the answer whatever the outcome (a commit of the
 * file's buffer that preceded the command failed). h: the handle a LOCK that takes a lock came
 * through (it is marked with the session), or NULL. */
static void propose_lock(struct fs *fs, fuse_req_t req, struct store_cmd *cmd, int commit_err,
                         struct fs_handle *h)
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
    struct park pk = {.l = l, .req = req, .cmd = cmd, .w = w};
    int err = fs_session_request(l->session, park, &pk);
    uint64_t session = cmd->session;
    if (err != 0) {
        if (cmd->type == STORE_CMD_LOCK_RELEASE)
            err = 0; /* without a session nothing is held */
        free(op);
        free(w);
        fuse_reply_err(req, commit_err != 0 ? commit_err : err);
        return;
    }
    if (h != NULL && cmd->type == STORE_CMD_LOCK && cmd->lock_type != STORE_CMD_LOCK_UNLOCK)
        atomic_store(&h->lock_session, session);
    *op = (struct lock_op){.fs = fs,
                           .req = req,
                           .ino = cmd->ino,
                           .session = session,
                           .request = cmd->request,
                           .is_waiting = is_wait,
                           .is_acquire = cmd->type == STORE_CMD_LOCK &&
                                         cmd->lock_type != STORE_CMD_LOCK_UNLOCK,
                           .commit_err = commit_err};
    if (is_wait)
        fuse_req_interrupt_func(req, on_interrupt, fs);
    fs__now(cmd);
    err = fs__propose(fs->rt, fs->opts.op_timeout_ms, cmd, lock_done, op);
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

/* The continuation of a lock command that follows a commit (struct fs_then, arg the command,
 * owned: freed here): propose it and answer req from its outcome, or with err if it is not 0
 * (the commit before it failed). */
static void after_commit(void *arg, fuse_req_t req, int err)
{
    struct store_cmd *cmd = arg;
    propose_lock(fs__of(req), req, cmd, err, NULL);
    free(cmd);
}

struct fs_then fs__lock_on_close(struct fs *fs, uint64_t ino, const struct fuse_file_info *fi,
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
        return (struct fs_then){0};
    struct store_cmd *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL)
        return (struct fs_then){0};
    *cmd = (struct store_cmd){
        .type = STORE_CMD_LOCK_RELEASE, .ino = ino, .owner = fi->lock_owner, .lock_kind = kind};
    return (struct fs_then){.fn = after_commit, .arg = cmd};
}

/* Propose a LOCK for req: an unlock goes after a commit of the file's buffered writes, so the
 * next holder, on any node, reads them. */
static void lock_request(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                         const struct store_cmd *proto)
{
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
        fs__handle_commit_then(req, fi, (struct fs_then){.fn = after_commit, .arg = cmd});
        return;
    }
    propose_lock(fs__of(req), req, cmd, 0, fs__handle_of(fi));
    free(cmd);
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
    fs__proposal_result(status, result, NULL);
    struct fs *fs = op->fs;
    const struct flock *lock = &op->lock;
    if (status != 0) {
        fuse_reply_err(op->req, ENOLCK);
        free(op);
        return;
    }
    uint64_t session = fs_session_id(fs->locks->session);
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
