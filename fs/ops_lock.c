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
 *    close of a file with locks pays for a LOCK_RELEASE round trip.
 * 6. contact_ms is the start (on CLOCK_BOOTTIME, which keeps counting through a suspend) of the
 *    last confirmed contact of the session: a SESSION_OPEN proposed then that committed, or a
 *    read barrier (a probe) asked for then that completed within fs__liveness_probe_ms with
 *    the session still LIVE in the state machine. Probes are asked for only while the session
 *    is kept. The keeper gives the session up (session_lose) fs__liveness_self_ms(timeout)
 *    after contact_ms, before any leader may end it (docs/fs.md, "Session liveness"). Losing
 *    answers the session's parked requests ENOLCK, and a lock granted to it afterwards is
 *    answered ENOLCK too: this node no longer vouches for it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "fs/internal.h"
#include "fs/node/liveness.h"
#include "lib/error.h"

#define KEEPER_EVERY_MS 100 /* the keeper's pass: session, probes, and (leading) liveness */
#define PROBES_MAX      8   /* contact probes in flight at once */
#define ENDS_MAX        16  /* SESSION_ENDs proposed per pass */

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
    struct raft_runtime *rt; /* set by fs_locks_start, as are fsm and cfg */
    struct store_fsm *fsm;
    struct fs_locks_config cfg;
    pthread_t keeper;
    bool has_keeper;
    pthread_mutex_t mu;
    pthread_cond_t cond;       /* session changes, stop */
    bool is_stopping;          /* protected by mu (as are all fields below) */
    bool is_opening;           /* a SESSION_OPEN is in flight */
    uint64_t open_ms;          /* when it was proposed (CLOCK_BOOTTIME) */
    uint64_t session;          /* invariant 1 */
    uint64_t next_request;     /* request IDs within the session */
    uint64_t contact_ms;       /* invariant 6 */
    uint64_t confirmed_ms;     /* the latest probe start confirmed, not yet checked */
    uint64_t probe_ms;         /* when the last probe was asked for */
    unsigned n_probes;         /* in flight */
    uint64_t lost_session;     /* the last session lost, 0 if none since the last open */
    uint64_t lost_ms;          /* when (CLOCK_BOOTTIME) */
    char lost_reason[160];     /* why */
    struct fs_liveness lv;     /* the leader's bookkeeping */
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

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Give session up (invariant 6), if it is still the node's: no new requests, and its parked
 * ones are answered ENOLCK. The keeper then opens a new one. Called with mu held; the requests
 * are answered and the loss logged after mu is dropped, from *lost. */
static struct waiter *session_lose(struct fs_locks *l, uint64_t session, const char *why)
{
    if (session == 0 || l->session != session)
        return NULL;
    l->session = 0;
    l->lost_session = session;
    l->lost_ms = clock_ms(CLOCK_BOOTTIME);
    snprintf(l->lost_reason, sizeof l->lost_reason, "%s", why);
    struct waiter *lost = NULL;
    for (struct waiter **p = &l->waiters; *p != NULL;) {
        struct waiter *w = *p;
        if (w->session != session) {
            p = &w->next;
            continue;
        }
        *p = w->next;
        w->next = lost;
        lost = w;
    }
    pthread_cond_broadcast(&l->cond);
    return lost;
}

/* Answer the requests session_lose took, and say so. Without mu. */
static void session_lost(struct fs_locks *l, uint64_t session, const char *why, struct waiter *lost)
{
    say(l, RAFT_LOG_WARN, "lock session %llu lost: %s; opening a new one",
        (unsigned long long)session, why);
    while (lost != NULL) {
        struct waiter *w = lost;
        lost = w->next;
        fuse_reply_err(w->req, ENOLCK);
        free(w);
    }
}

/* session_lose and session_lost in one, for callers without mu. */
static void session_give_up(struct fs_locks *l, uint64_t session, const char *why)
{
    pthread_mutex_lock(&l->mu);
    bool is_ours = session != 0 && l->session == session;
    struct waiter *lost = session_lose(l, session, why);
    pthread_mutex_unlock(&l->mu);
    if (is_ours)
        session_lost(l, session, why, lost);
}

static void open_done(void *arg, int status, struct raft_apply_result *result)
{
    struct fs_locks *l = arg;
    struct store_fsm_result res;
    int err = fs__proposal_result(status, result, &res);
    uint64_t session = err == 0 ? res.session : 0;
    pthread_mutex_lock(&l->mu);
    l->is_opening = false;
    uint64_t took = clock_ms(CLOCK_BOOTTIME) - l->open_ms;
    if (session != 0 && took >= fs__liveness_self_ms(l->cfg.session_timeout_ms)) {
        /* Committed too late to be kept even for a moment (it waited for a leader): open
         * another, which replaces it, rather than report a loss. */
        pthread_mutex_unlock(&l->mu);
        say(l, RAFT_LOG_DEBUG, "lock session %llu opened after %llu ms, too late; opening another",
            (unsigned long long)session, (unsigned long long)took);
        return;
    }
    if (session != 0) {
        l->session = session;
        l->next_request = 0;
        /* The leader that committed it heard this node after open_ms (invariant 6). */
        l->contact_ms = l->open_ms;
        l->confirmed_ms = 0;
        l->lost_session = 0;
    }
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (session != 0)
        say(l, RAFT_LOG_INFO, "lock session %llu opened", (unsigned long long)session);
    else
        say(l, RAFT_LOG_DEBUG, "opening the lock session failed (%s); retrying",
            strerror(err != 0 ? err : EIO));
}

/* Propose SESSION_OPEN (mu held, dropped meanwhile). */
static void session_open(struct fs_locks *l)
{
    l->is_opening = true;
    l->open_ms = clock_ms(CLOCK_BOOTTIME);
    pthread_mutex_unlock(&l->mu);
    struct store_cmd cmd = {.type = STORE_CMD_SESSION_OPEN, .node = l->node};
    fs__now(&cmd);
    size_t len;
    uint8_t buf[64];
    int rc = store_cmd_encode(&cmd, buf, sizeof buf, &len);
    if (rc == 0)
        rc = raft_runtime_propose(l->rt, buf, len, l->cfg.op_timeout_ms, open_done, l);
    pthread_mutex_lock(&l->mu);
    if (rc != 0)
        l->is_opening = false;
}

/* A contact probe: a read barrier asked for at start_ms for session. */
struct probe {
    struct fs_locks *l;
    uint64_t session;
    uint64_t start_ms;
};

static void probe_done(void *arg, int status, struct raft_apply_result *result)
{
    struct probe *p = arg;
    struct fs_locks *l = p->l;
    fs__proposal_result(status, result, NULL);
    /* The barrier's leader heard this node after start_ms, and any later leader took office
     * after that; a slow probe proves too little (docs/fs.md). The keeper checks that the
     * session is still LIVE before counting it. */
    bool is_quick =
        clock_ms(CLOCK_BOOTTIME) - p->start_ms < fs__liveness_probe_ms(l->cfg.session_timeout_ms);
    pthread_mutex_lock(&l->mu);
    l->n_probes--;
    if (status == 0 && is_quick && p->session == l->session && p->start_ms > l->confirmed_ms)
        l->confirmed_ms = p->start_ms;
    pthread_mutex_unlock(&l->mu);
    free(p);
}

/* Is session LIVE in the state machine (as applied here)? 1 yes, 0 no, -1 cannot tell. */
struct find_session {
    uint64_t id;
    int is_live;
};

static int find_session_cb(void *arg, const struct store_fsm_session *s)
{
    struct find_session *f = arg;
    if (s->id != f->id)
        return 0;
    f->is_live = s->state == STORE_FSM_SESSION_LIVE;
    return 1;
}

static int session_is_live(struct fs_locks *l, uint64_t session)
{
    struct find_session f = {.id = session, .is_live = 0};
    if (store_fsm_sessions(l->fsm, find_session_cb, &f) != 0)
        return -1;
    return f.is_live;
}

/* The node's own session, once per pass (invariant 6). */
static void keep_own_session(struct fs_locks *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t session = l->session, confirmed = l->confirmed_ms;
    pthread_mutex_unlock(&l->mu);
    if (session == 0)
        return;
    /* Read after the probes' barriers completed: a SESSION_END the leader committed before
     * them is applied here by now. */
    int is_live = session_is_live(l, session);
    uint64_t now = clock_ms(CLOCK_BOOTTIME);
    char why[160] = "";
    bool do_probe = false;
    pthread_mutex_lock(&l->mu);
    if (l->session == session && is_live == 0) {
        snprintf(why, sizeof why,
                 "the leader ended it (this node was silent for the session "
                 "timeout)");
    } else if (l->session == session) {
        if (is_live == 1 && confirmed > l->contact_ms)
            l->contact_ms = confirmed;
        uint64_t silent = now - l->contact_ms;
        if (silent >= fs__liveness_self_ms(l->cfg.session_timeout_ms))
            snprintf(why, sizeof why,
                     "no confirmed contact with a leader for %llu ms (session timeout %u ms)",
                     (unsigned long long)silent, l->cfg.session_timeout_ms);
        else if (now - l->probe_ms >= fs__liveness_probe_ms(l->cfg.session_timeout_ms) &&
                 l->n_probes < PROBES_MAX) {
            l->probe_ms = now;
            l->n_probes++;
            do_probe = true;
        }
    }
    struct waiter *lost = why[0] != '\0' ? session_lose(l, session, why) : NULL;
    pthread_mutex_unlock(&l->mu);
    if (why[0] != '\0') {
        session_lost(l, session, why, lost);
        return;
    }
    if (!do_probe)
        return;
    struct probe *p = malloc(sizeof *p);
    int rc = RAFT_ENOMEM;
    if (p != NULL) {
        *p = (struct probe){.l = l, .session = session, .start_ms = now};
        /* A probe slower than this counts for nothing: let it go then. */
        rc = raft_runtime_read_index(l->rt, fs__liveness_probe_ms(l->cfg.session_timeout_ms),
                                     probe_done, p);
    }
    if (rc != 0) {
        free(p);
        pthread_mutex_lock(&l->mu);
        l->n_probes--;
        pthread_mutex_unlock(&l->mu);
    }
}

/* One SESSION_END proposed by this node while leading. */
struct session_end {
    struct fs_locks *l;
    uint64_t session;
};

static void end_done(void *arg, int status, struct raft_apply_result *result)
{
    struct session_end *e = arg;
    struct fs_locks *l = e->l;
    int err = fs__proposal_result(status, result, NULL);
    pthread_mutex_lock(&l->mu);
    fs__liveness_done(&l->lv, e->session);
    pthread_mutex_unlock(&l->mu);
    if (err != 0)
        say(l, RAFT_LOG_DEBUG, "ending lock session %llu: %s; trying again",
            (unsigned long long)e->session, strerror(err));
    free(e);
}

struct session_list {
    struct fs_liveness_session *v;
    size_t n, cap;
    bool is_short; /* out of memory: the list is incomplete */
};

static int collect_session(void *arg, const struct store_fsm_session *s)
{
    struct session_list *sl = arg;
    if (sl->n == sl->cap) {
        size_t cap = sl->cap ? 2 * sl->cap : 16;
        struct fs_liveness_session *v = realloc(sl->v, cap * sizeof *v);
        if (v == NULL) {
            sl->is_short = true;
            return 1;
        }
        sl->v = v;
        sl->cap = cap;
    }
    sl->v[sl->n++] = (struct fs_liveness_session){.id = s->id,
                                                  .node = s->node,
                                                  .is_ended = s->state == STORE_FSM_SESSION_ENDED,
                                                  .delay_until = s->delay_until};
    return 0;
}

/* While this node leads: end the sessions of silent nodes (fs/node/liveness.c). The order of the
 * readings matters (docs/fs.md, "Session liveness"): the sessions first, then the time, then
 * what the runtime heard at that very moment; a leadership first seen counts from after. So a
 * session, or a frame, that this node learns of after a decision was read never passes for
 * older than it is. */
static void end_silent_sessions(struct fs_locks *l)
{
    struct session_list sl = {0};
    if (store_fsm_sessions(l->fsm, collect_session, &sl) != 0 && sl.n == 0) {
        free(sl.v);
        return;
    }
    uint64_t before = clock_ms(CLOCK_MONOTONIC); /* the clock of the runtime's receive times */
    struct raft_runtime_heard heard;
    if (raft_runtime_heard(l->rt, &heard) != 0) {
        free(sl.v);
        return;
    }
    uint64_t after = clock_ms(CLOCK_MONOTONIC);
    bool is_leader = heard.role == RAFT_LEADER;
    pthread_mutex_lock(&l->mu);
    fs__liveness_role(&l->lv, is_leader, heard.term, after);
    pthread_mutex_unlock(&l->mu);
    if (!is_leader) {
        free(sl.v);
        return;
    }
    struct fs_liveness_peer peers[RAFT_MAX_SERVERS];
    for (unsigned i = 0; i < heard.n; i++)
        peers[i] = (struct fs_liveness_peer){heard.peers[i].id, heard.peers[i].silent_ms};
    struct store_cmd now_cmd;
    fs__now(&now_cmd);
    struct store_fsm_time wall = {.sec = now_cmd.time_sec, .nsec = now_cmd.time_nsec};
    struct fs_liveness_end ends[ENDS_MAX];
    pthread_mutex_lock(&l->mu);
    size_t n =
        fs__liveness_decide(&l->lv, before, wall, peers, heard.n, sl.v, sl.n, ends, ENDS_MAX);
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        uint64_t node = 0;
        for (size_t k = 0; k < sl.n; k++)
            if (sl.v[k].id == ends[i].session)
                node = sl.v[k].node;
        if (ends[i].is_final)
            say(l, RAFT_LOG_INFO,
                "lock session %llu of node %llu: its lock-delay is over; "
                "releasing its locks",
                (unsigned long long)ends[i].session, (unsigned long long)node);
        else
            say(l, RAFT_LOG_WARN,
                "lock session %llu of node %llu: silent for the session "
                "timeout (%u ms); ending it with a lock-delay of %u ms",
                (unsigned long long)ends[i].session, (unsigned long long)node,
                l->cfg.session_timeout_ms, ends[i].delay_ms);
        struct store_cmd cmd = {.type = STORE_CMD_SESSION_END,
                                .session = ends[i].session,
                                .delay_ms = ends[i].delay_ms};
        fs__now(&cmd);
        size_t len;
        uint8_t buf[64];
        struct session_end *e = malloc(sizeof *e);
        int rc = e == NULL ? RFS_ENOMEM : store_cmd_encode(&cmd, buf, sizeof buf, &len);
        if (rc == 0) {
            *e = (struct session_end){.l = l, .session = ends[i].session};
            rc = raft_runtime_propose(l->rt, buf, len, l->cfg.op_timeout_ms, end_done, e);
        }
        if (rc != 0) {
            free(e);
            pthread_mutex_lock(&l->mu);
            fs__liveness_done(&l->lv, ends[i].session);
            pthread_mutex_unlock(&l->mu);
        }
    }
    free(sl.v);
}

/* Keeper thread: opens the session whenever there is none (invariant 1), keeps it (invariant
 * 6), and, while this node leads, ends silent nodes' sessions. */
static void *keeper(void *arg)
{
    struct fs_locks *l = arg;
    pthread_mutex_lock(&l->mu);
    while (!l->is_stopping) {
        if (l->session == 0 && !l->is_opening)
            session_open(l);
        pthread_mutex_unlock(&l->mu);
        keep_own_session(l);
        end_silent_sessions(l);
        pthread_mutex_lock(&l->mu);
        if (l->is_stopping)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += KEEPER_EVERY_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&l->cond, &l->mu, &until);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int fs_locks_start(struct fs_locks *l, struct raft_runtime *rt, struct store_fsm *fsm,
                   const struct fs_locks_config *cfg)
{
    l->rt = rt;
    l->fsm = fsm;
    l->cfg = *cfg;
    fs__liveness_init(&l->lv, l->node, cfg->session_timeout_ms, cfg->lock_delay_ms);
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

void fs_locks_local(struct fs_locks *l, struct fs_locks_local *out)
{
    memset(out, 0, sizeof *out);
    uint64_t now = clock_ms(CLOCK_BOOTTIME);
    pthread_mutex_lock(&l->mu);
    if (l->session != 0) {
        out->state = FS_LOCKS_OPEN;
        out->session = l->session;
        out->since_ms = now - l->contact_ms;
    } else if (l->lost_session != 0) {
        out->state = FS_LOCKS_LOST;
        out->session = l->lost_session;
        out->since_ms = now - l->lost_ms;
        snprintf(out->reason, sizeof out->reason, "%s", l->lost_reason);
    } else {
        out->state = FS_LOCKS_OPENING;
    }
    pthread_mutex_unlock(&l->mu);
}

bool fs__locks_lost(struct fs_locks *l)
{
    pthread_mutex_lock(&l->mu);
    bool is_lost = l->session == 0 && l->lost_session != 0;
    pthread_mutex_unlock(&l->mu);
    return is_lost;
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
        session_give_up(l, op->session, "the state machine refused a lock request: it has ended");
    if (err == 0 && op->is_acquire) {
        /* Granted to a session this node gave up meanwhile (invariant 6). */
        pthread_mutex_lock(&l->mu);
        if (l->session != op->session)
            err = ENOLCK;
        pthread_mutex_unlock(&l->mu);
    }

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
    fs__proposal_result(status, result, NULL);
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
