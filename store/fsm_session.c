/* Node sessions of the inode state machine: every node holds one while it is in contact with
 * the leader; locks belong to a session and go when it ends. The leader decides when a session
 * has timed out; this file only applies the decision (SESSION_END) and the node's own
 * SESSION_OPEN, from the command and the stored state alone.
 *
 * Lifecycle: SESSION_OPEN(node) makes session <entry index> LIVE and removes the node's
 * earlier sessions at once (the node restarted: its old holders are gone with its mount).
 * SESSION_RENEW(node, delay) does the same for a node that lost its session while running: its
 * processes still hold what they locked, so the earlier LIVE session ends as SESSION_END with
 * that delay would end it, and an ENDED one keeps its delay. SESSION_END of a LIVE session
 * fails its waiters and, if it holds locks and the command asks for a lock-delay, leaves it
 * ENDED until command time + delay: its locks keep blocking others, so a holder that was only
 * paused or cut off cannot have its lock handed on at once. SESSION_END of an ENDED session
 * whose delay has passed (by the command's time) removes it and its locks. A node has at most
 * one LIVE session; ENDED ones wait for their SESSION_END. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "store/fsm_internal.h"

/* Record (48 bytes, LE): node u64, opened sec i64, ended sec i64, delay-until sec i64, opened
 * nsec u32, ended nsec u32, delay-until nsec u32, state u8, 3 reserved bytes. */
static void session_encode(const struct fsm_session *s, uint8_t *rec)
{
    memset(rec, 0, FSM_SESSION_RECORD);
    rfs_put_le64(rec, s->node);
    rfs_put_le64(rec + 8, (uint64_t)s->opened.sec);
    rfs_put_le64(rec + 16, (uint64_t)s->ended.sec);
    rfs_put_le64(rec + 24, (uint64_t)s->delay_until.sec);
    rfs_put_le32(rec + 32, s->opened.nsec);
    rfs_put_le32(rec + 36, s->ended.nsec);
    rfs_put_le32(rec + 40, s->delay_until.nsec);
    rec[44] = s->state;
}

void store__session_decode(uint64_t id, const uint8_t *rec, struct fsm_session *s)
{
    s->id = id;
    s->node = rfs_get_le64(rec);
    s->opened.sec = (int64_t)rfs_get_le64(rec + 8);
    s->ended.sec = (int64_t)rfs_get_le64(rec + 16);
    s->delay_until.sec = (int64_t)rfs_get_le64(rec + 24);
    s->opened.nsec = rfs_get_le32(rec + 32);
    s->ended.nsec = rfs_get_le32(rec + 36);
    s->delay_until.nsec = rfs_get_le32(rec + 40);
    s->state = rec[44];
}

static bool record_ok(const MDB_val *v)
{
    if (v->mv_size != FSM_SESSION_RECORD)
        return false;
    uint8_t state = ((const uint8_t *)v->mv_data)[44];
    return state == STORE_FSM_SESSION_LIVE || state == STORE_FSM_SESSION_ENDED;
}

int store__session_get(struct store_fsm *fsm, MDB_txn *txn, uint64_t id, struct fsm_session *out)
{
    uint8_t k[8];
    fsm_put_be64(k, id);
    MDB_val key = {8, k}, val;
    int rc = mdb_get(txn, fsm->sessions, &key, &val);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "get session %llu", (unsigned long long)id);
    if (!record_ok(&val))
        return RFS_ECORRUPT;
    store__session_decode(id, val.mv_data, out);
    return 0;
}

static int session_put(struct fsm_txn *t, const struct fsm_session *s)
{
    uint8_t k[8], rec[FSM_SESSION_RECORD];
    fsm_put_be64(k, s->id);
    session_encode(s, rec);
    MDB_val key = {8, k}, val = {sizeof rec, rec};
    int rc = mdb_put(t->txn, t->fsm->sessions, &key, &val, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put session %llu", (unsigned long long)s->id);
    return 0;
}

/* Remove session id and every lock and waiter it has. */
static int session_remove(struct fsm_txn *t, uint64_t id)
{
    int r = store__locks_drop_session(t, id, true, NULL);
    if (r != 0)
        return r;
    uint8_t k[8];
    fsm_put_be64(k, id);
    MDB_val key = {8, k};
    int rc = mdb_del(t->txn, t->fsm->sessions, &key, NULL);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "delete session %llu", (unsigned long long)id);
    return 0;
}

static int time_cmp(struct store_fsm_time a, struct store_fsm_time b)
{
    if (a.sec != b.sec)
        return a.sec < b.sec ? -1 : 1;
    return a.nsec < b.nsec ? -1 : a.nsec > b.nsec;
}

static struct store_fsm_time time_add_ms(struct store_fsm_time t, uint32_t ms)
{
    uint64_t nsec = t.nsec + (uint64_t)(ms % 1000) * 1000000u;
    t.sec += ms / 1000 + (int64_t)(nsec / 1000000000u);
    t.nsec = (uint32_t)(nsec % 1000000000u);
    return t;
}

/* End LIVE session s with a lock-delay of delay_ms: remove it if it holds no lock (or delay_ms
 * is 0), else fail its waiters and leave it ENDED until the delay is over. */
static int session_end_live(struct fsm_txn *t, struct fsm_session *s, uint32_t delay_ms,
                            struct store_fsm_result *res)
{
    bool has_held = false;
    int r;
    if (delay_ms > 0 && (r = store__locks_drop_session(t, s->id, false, &has_held)) != 0)
        return r;
    if (!has_held)
        return session_remove(t, s->id);
    s->state = STORE_FSM_SESSION_ENDED;
    s->ended = t->now;
    s->delay_until = time_add_ms(t->now, delay_ms);
    res->delay_until = s->delay_until;
    return session_put(t, s);
}

/* Call fn(arg, session) for each session of txn with an ID of at least from, in ID order, until
 * fn returns nonzero. 0, RFS_ECORRUPT (a malformed record), or an LMDB error (with its context
 * in fsm's message). */
static int walk_sessions(struct store_fsm *fsm, MDB_txn *txn, uint64_t from,
                         int (*fn)(void *arg, const struct fsm_session *s), void *arg)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, fsm->sessions, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(fsm, rc, "open cursor on sessions");
    uint8_t k[8];
    fsm_put_be64(k, from);
    MDB_val key = {8, k}, val;
    int r = 0;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 8 || !record_ok(&val)) {
            r = RFS_ECORRUPT;
            break;
        }
        struct fsm_session s;
        store__session_decode(fsm_get_be64(key.mv_data), val.mv_data, &s);
        if (fn(arg, &s))
            break;
    }
    if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(fsm, rc, "list sessions");
    mdb_cursor_close(cur);
    return r;
}

/* The search of cmd_session_open: the first earlier session of a node that it ends. */
struct earlier {
    uint64_t node;
    bool is_renew; /* renewing leaves ENDED sessions alone */
    bool is_found;
    struct fsm_session s;
};

static int find_earlier(void *arg, const struct fsm_session *s)
{
    struct earlier *e = arg;
    if (s->node != e->node || (e->is_renew && s->state == STORE_FSM_SESSION_ENDED))
        return 0;
    e->s = *s;
    e->is_found = true;
    return 1;
}

static int cmd_session_open(struct fsm_txn *t, const struct store_cmd *c,
                            struct store_fsm_result *res)
{
    struct fsm_session s;
    if (c->node == 0)
        return EINVAL; /* raft IDs are non-zero */
    int r = store__session_get(t->fsm, t->txn, t->index, &s);
    if (r == 0) {
        snprintf(t->fsm->errmsg, sizeof t->fsm->errmsg,
                 "open session %llu: the ID is taken (commands need their own entry's index)",
                 (unsigned long long)t->index);
        return RFS_ERANGE;
    }
    if (r != ENOENT)
        return r;
    /* The node's earlier sessions, one at a time: a cursor must not walk a table being
     * changed, so each search starts again after the last one handled. */
    struct earlier e = {.node = c->node, .is_renew = c->type == STORE_CMD_SESSION_RENEW};
    bool has_live = false;
    for (;;) {
        uint64_t from = e.is_found ? e.s.id + 1 : 0;
        e.is_found = false;
        if ((r = walk_sessions(t->fsm, t->txn, from, find_earlier, &e)) != 0)
            return r;
        if (!e.is_found)
            break;
        if (e.s.state == STORE_FSM_SESSION_LIVE && has_live)
            return RFS_ECORRUPT; /* two LIVE sessions of one node */
        has_live |= e.s.state == STORE_FSM_SESSION_LIVE;
        struct store_fsm_result ignored = {0};
        r = e.is_renew ? session_end_live(t, &e.s, c->delay_ms, &ignored)
                       : session_remove(t, e.s.id);
        if (r != 0)
            return r;
    }
    s = (struct fsm_session){
        .id = t->index, .node = c->node, .state = STORE_FSM_SESSION_LIVE, .opened = t->now};
    if ((r = session_put(t, &s)) != 0)
        return r;
    res->session = s.id;
    return 0;
}

static int cmd_session_end(struct fsm_txn *t, const struct store_cmd *c,
                           struct store_fsm_result *res)
{
    struct fsm_session s;
    int r = store__session_get(t->fsm, t->txn, c->session, &s);
    if (r != 0)
        return r;
    res->session = s.id;
    if (s.state == STORE_FSM_SESSION_ENDED) {
        if (time_cmp(t->now, s.delay_until) < 0)
            return EBUSY; /* the lock-delay still runs */
        return session_remove(t, s.id);
    }
    return session_end_live(t, &s, c->delay_ms, res);
}

int store__cmd_session(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    if (c->type == STORE_CMD_SESSION_OPEN || c->type == STORE_CMD_SESSION_RENEW)
        return cmd_session_open(t, c, res);
    return cmd_session_end(t, c, res);
}

/* The listing of store_fsm_sessions: each session in the public form. */
struct listing {
    store_fsm_session_fn fn;
    void *arg;
};

static int list_one(void *arg, const struct fsm_session *s)
{
    struct listing *l = arg;
    struct store_fsm_session out = {.id = s->id,
                                    .node = s->node,
                                    .state = s->state,
                                    .opened = s->opened,
                                    .ended = s->ended,
                                    .delay_until = s->delay_until};
    return l->fn(l->arg, &out);
}

int store_fsm_sessions(struct store_fsm *fsm, store_fsm_session_fn fn, void *arg)
{
    MDB_txn *txn;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    struct listing l = {.fn = fn, .arg = arg};
    r = walk_sessions(fsm, txn, 0, list_one, &l);
    store__fsm_read_end(fsm, txn);
    return r;
}
