/* The node's lock session: the keeper thread that opens it, keeps it alive with contact probes,
 * gives it up when contact is lost and, while this node leads, ends the sessions of silent
 * nodes (DESIGN.md section 5, "Locks"; docs/fs.md, "Session liveness"; the rules are
 * fs/node/liveness.c). No FUSE: the lock operations (fs/ops_lock.c) name the session in their
 * requests and park blocking ones on it, and are told when it is lost.
 *
 * Design note. Invariants, all under mu:
 * 1. `session` is the session the state machine opened for this node (the result of this run's
 *    SESSION_OPEN). While it is 0 (not opened yet, or given up, or found ended: a LOCK answered
 *    ENOLCK) requests fail with ENOLCK and the keeper thread proposes a new SESSION_OPEN until
 *    one commits. A request gets its ID and is parked under mu (fs_session_request), and a lost
 *    session's parked requests are detached under mu too, so none is parked on a session after
 *    its loss.
 * 2. contact_ms is the start (on CLOCK_BOOTTIME, which keeps counting through a suspend) of the
 *    last confirmed contact of the session: a SESSION_OPEN proposed then that committed, or a
 *    read barrier (a probe) asked for then that completed within fs__liveness_probe_ms with
 *    the session still LIVE in the state machine. Probes are asked for only while the session
 *    is kept. The keeper gives the session up (session_lose) fs__liveness_self_ms(timeout)
 *    after contact_ms, before any leader may end it (docs/fs.md, "Session liveness"). Losing
 *    has the session's parked requests answered ENOLCK (hooks.fail), and fs/ops_lock.c answers
 *    a lock granted to it afterwards ENOLCK too: this node no longer vouches for it. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/node/liveness.h"
#include "fs/node/propose.h"
#include "fs/node/session.h"
#include "lib/clock.h"
#include "lib/error.h"
#include "store/command.h"
#include "store/fsm.h"

#define KEEPER_EVERY_MS 100 /* the keeper's pass: session, probes, and (leading) liveness */
#define PROBES_MAX      8   /* contact probes in flight at once */
#define ENDS_MAX        16  /* SESSION_ENDs proposed per pass */

struct fs_session {
    uint64_t node;
    fs_log_fn log;
    void *log_ctx;
    struct fs_session_hooks hooks;
    struct raft_runtime *rt; /* set by fs_session_start, as are fsm and cfg */
    struct store_fsm *fsm;
    struct fs_locks_config cfg;
    pthread_t keeper;
    bool has_keeper;
    pthread_mutex_t mu;
    pthread_cond_t cond;   /* session changes, stop */
    bool is_stopping;      /* protected by mu (as are all fields below) */
    bool is_opening;       /* a SESSION_OPEN or SESSION_RENEW is in flight */
    bool has_opened;       /* this run opened a session before: the next one renews */
    uint64_t open_ms;      /* when it was proposed (CLOCK_BOOTTIME) */
    uint64_t session;      /* invariant 1 */
    uint64_t next_request; /* request IDs within the session */
    uint64_t contact_ms;   /* invariant 2 */
    uint64_t confirmed_ms; /* the latest probe start confirmed, not yet checked */
    uint64_t probe_ms;     /* when the last probe was asked for */
    unsigned n_probes;     /* in flight */
    uint64_t lost_session; /* the last session lost, 0 if none since the last open */
    uint64_t lost_ms;      /* when (CLOCK_BOOTTIME) */
    char lost_reason[160]; /* why */
    struct fs_liveness lv; /* the leader's bookkeeping */
};

static void say(struct fs_session *l, enum raft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(struct fs_session *l, enum raft_log_level level, const char *fmt, ...)
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

int fs_session_new(uint64_t node, fs_log_fn log, void *log_ctx,
                   const struct fs_session_hooks *hooks, struct fs_session **out)
{
    struct fs_session *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RFS_ENOMEM;
    l->node = node;
    l->log = log;
    l->log_ctx = log_ctx;
    l->hooks = *hooks;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    *out = l;
    return 0;
}

void fs_session_free(struct fs_session *l)
{
    if (l == NULL)
        return;
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* --- the session -------------------------------------------------------------------------- */

/* Give session up (invariant 2), if it is still the node's: no new requests, and its parked
 * ones are detached (hooks.detach) to be answered ENOLCK. The keeper then opens a new one.
 * Called with mu held; returns whether session was the node's. The requests are answered and
 * the loss logged after mu is dropped, by session_lost with *lost. */
static bool session_lose(struct fs_session *l, uint64_t session, const char *why, void **lost)
{
    *lost = NULL;
    if (session == 0 || l->session != session)
        return false;
    l->session = 0;
    l->lost_session = session;
    l->lost_ms = rfs_clock_ms(CLOCK_BOOTTIME);
    snprintf(l->lost_reason, sizeof l->lost_reason, "%s", why);
    *lost = l->hooks.detach(l->hooks.arg, session);
    pthread_cond_broadcast(&l->cond);
    return true;
}

/* Answer the requests session_lose detached, and say so. Without mu. */
static void session_lost(struct fs_session *l, uint64_t session, const char *why, void *lost)
{
    say(l, RAFT_LOG_WARN, "lock session %llu lost: %s; opening a new one",
        (unsigned long long)session, why);
    l->hooks.fail(l->hooks.arg, lost);
}

void fs_session_give_up(struct fs_session *l, uint64_t session, const char *why)
{
    void *lost;
    pthread_mutex_lock(&l->mu);
    bool is_ours = session_lose(l, session, why, &lost);
    pthread_mutex_unlock(&l->mu);
    if (is_ours)
        session_lost(l, session, why, lost);
}

static void open_done(void *arg, int status, struct raft_apply_result *result)
{
    struct fs_session *l = arg;
    struct store_fsm_result res;
    int err = fs__proposal_result(status, result, &res);
    uint64_t session = err == 0 ? res.session : 0;
    pthread_mutex_lock(&l->mu);
    l->is_opening = false;
    uint64_t took = rfs_clock_ms(CLOCK_BOOTTIME) - l->open_ms;
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
        l->has_opened = true;
        l->next_request = 0;
        /* The leader that committed it heard this node after open_ms (invariant 2). */
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

/* Propose the session's opening (mu held, dropped meanwhile): SESSION_OPEN at start, when the
 * node's earlier sessions are a previous run's, whose holders went with its mount;
 * SESSION_RENEW after a loss, when this run's processes may still hold what they locked, so
 * that the old session's locks go on no sooner than the lock-delay (docs/fs.md). */
static void session_open(struct fs_session *l)
{
    l->is_opening = true;
    l->open_ms = rfs_clock_ms(CLOCK_BOOTTIME);
    struct store_cmd cmd = {.type =
                                l->has_opened ? STORE_CMD_SESSION_RENEW : STORE_CMD_SESSION_OPEN,
                            .node = l->node,
                            .delay_ms = l->has_opened ? l->cfg.lock_delay_ms : 0};
    pthread_mutex_unlock(&l->mu);
    fs__now(&cmd);
    int rc = fs__propose(l->rt, l->cfg.op_timeout_ms, &cmd, open_done, l);
    pthread_mutex_lock(&l->mu);
    if (rc != 0)
        l->is_opening = false;
}

/* A contact probe: a read barrier asked for at start_ms for session. */
struct probe {
    struct fs_session *l;
    uint64_t session;
    uint64_t start_ms;
};

static void probe_done(void *arg, int status, struct raft_apply_result *result)
{
    struct probe *p = arg;
    struct fs_session *l = p->l;
    fs__proposal_result(status, result, NULL);
    /* The barrier's leader heard this node after start_ms, and any later leader took office
     * after that; a slow probe proves too little (docs/fs.md). The keeper checks that the
     * session is still LIVE before counting it. */
    bool is_quick = rfs_clock_ms(CLOCK_BOOTTIME) - p->start_ms <
                    fs__liveness_probe_ms(l->cfg.session_timeout_ms);
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

static int session_is_live(struct fs_session *l, uint64_t session)
{
    struct find_session f = {.id = session, .is_live = 0};
    if (store_fsm_sessions(l->fsm, find_session_cb, &f) != 0)
        return -1;
    return f.is_live;
}

/* The node's own session, once per pass (invariant 2). */
static void keep_own_session(struct fs_session *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t session = l->session, confirmed = l->confirmed_ms;
    pthread_mutex_unlock(&l->mu);
    if (session == 0)
        return;
    /* Read after the probes' barriers completed: a SESSION_END the leader committed before
     * them is applied here by now. */
    int is_live = session_is_live(l, session);
    uint64_t now = rfs_clock_ms(CLOCK_BOOTTIME);
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
    void *lost = NULL;
    bool is_lost = why[0] != '\0' && session_lose(l, session, why, &lost);
    pthread_mutex_unlock(&l->mu);
    if (is_lost) {
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
    struct fs_session *l;
    uint64_t session;
};

static void end_done(void *arg, int status, struct raft_apply_result *result)
{
    struct session_end *e = arg;
    struct fs_session *l = e->l;
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
static void end_silent_sessions(struct fs_session *l)
{
    struct session_list sl = {0};
    if (store_fsm_sessions(l->fsm, collect_session, &sl) != 0 && sl.n == 0) {
        free(sl.v);
        return;
    }
    uint64_t before = rfs_clock_ms(CLOCK_MONOTONIC); /* the clock of the runtime's receive times */
    struct raft_runtime_heard heard;
    if (raft_runtime_heard(l->rt, &heard) != 0) {
        free(sl.v);
        return;
    }
    uint64_t after = rfs_clock_ms(CLOCK_MONOTONIC);
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
        struct session_end *e = malloc(sizeof *e);
        int rc = ENOMEM;
        if (e != NULL) {
            *e = (struct session_end){.l = l, .session = ends[i].session};
            rc = fs__propose(l->rt, l->cfg.op_timeout_ms, &cmd, end_done, e);
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
 * 2), and, while this node leads, ends silent nodes' sessions. */
static void *keeper(void *arg)
{
    struct fs_session *l = arg;
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

int fs_session_start(struct fs_session *l, struct raft_runtime *rt, struct store_fsm *fsm,
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

void fs_session_stop(struct fs_session *l)
{
    if (!l->has_keeper)
        return;
    pthread_mutex_lock(&l->mu);
    l->is_stopping = true;
    l->session = 0; /* no new requests */
    void *parked = l->hooks.detach(l->hooks.arg, 0);
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->keeper, NULL);
    l->has_keeper = false;
    l->hooks.fail(l->hooks.arg, parked);
}

void fs_session_local(struct fs_session *l, struct fs_locks_local *out)
{
    memset(out, 0, sizeof *out);
    uint64_t now = rfs_clock_ms(CLOCK_BOOTTIME);
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

bool fs_session_is_lost(struct fs_session *l)
{
    pthread_mutex_lock(&l->mu);
    bool is_lost = l->session == 0 && l->lost_session != 0;
    pthread_mutex_unlock(&l->mu);
    return is_lost;
}

uint64_t fs_session_id(struct fs_session *l)
{
    pthread_mutex_lock(&l->mu);
    uint64_t session = l->session;
    pthread_mutex_unlock(&l->mu);
    return session;
}

int fs_session_request(struct fs_session *l, fs_session_request_fn fn, void *arg)
{
    pthread_mutex_lock(&l->mu);
    int err = ENOLCK;
    if (l->session != 0) {
        err = fn(arg, l->session, l->next_request + 1);
        if (err == 0)
            l->next_request++;
    }
    pthread_mutex_unlock(&l->mu);
    return err;
}
