/* The replicated lock table: flock and POSIX byte-range locks of every node, owned by (node
 * session, lock owner), with a fair wait queue per inode, deadlock detection and fencing
 * tokens. Semantics follow Linux's fs/locks.c; docs/fsm-format.md lists where they differ.
 *
 * Design note: the lock list of an inode.
 *
 * All lock state of an inode is one value of the `locks` table: its held locks, then its
 * waiting requests in arrival order. A command loads it, decides in memory, and writes it back
 * whole (or deletes it when empty), so every command sees and leaves one consistent list.
 *
 *  1. Two held locks of one owner and kind never overlap, and two of one owner, kind and type
 *     are never adjacent (they are merged), as in Linux. Held locks are stored sorted by kind,
 *     start, session and owner, so the value is canonical (the digest hashes it as it is).
 *  2. Held locks of different owners never conflict. Two locks conflict when they are of the
 *     same kind, of different owners, overlap, and one of them is a write lock. flock and
 *     POSIX locks never conflict (Linux keeps them in separate lists).
 *  3. A waiter W must wait while it conflicts with a held lock, or with an earlier waiter E
 *     that W's owner does not itself block (if W's owner holds what E needs, E waits for W's
 *     owner anyway, and letting W by costs E nothing). New requests, blocking or not, follow
 *     the same rule, so a stream of new requests never starves a waiter.
 *  4. After anything that removes or weakens a lock or a waiter, the queue is scanned from the
 *     front and every waiter that may go is granted (grant_waiters), until none may.
 *  5. Every grant's fencing token is the log index of the entry that granted it. Grants made
 *     by one entry share it, but they are compatible (a lock is granted only if nothing held
 *     conflicts), so a lock that conflicts with an earlier one always has a larger token.
 *  6. Only the command and the stored state decide: time is the command's, tokens are its
 *     index. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/fsm_internal.h"

#define LIST_VERSION 1
#define LIST_HEADER  12u /* version u8, 3 reserved, held count u32, waiting count u32 */
#define LOCK_RECORD  72u
#define OFFSET_MAX   ((uint64_t)INT64_MAX) /* Linux's OFFSET_MAX: "to the end of the file" */

/* One lock or waiting request; end is inclusive. */
struct lk {
    uint64_t session, owner, request, start, end, token;
    struct store_fsm_time time;
    uint32_t pid;
    uint8_t kind, type;
};

struct lock_list {
    uint64_t ino;
    struct lk *held, *wait;
    size_t n_held, n_wait;
};

static void list_free(struct lock_list *l)
{
    free(l->held);
    free(l->wait);
    l->held = l->wait = NULL;
    l->n_held = l->n_wait = 0;
}

/* --- encoding ------------------------------------------------------------------------------ */

/* Record (72 bytes, LE): session u64, owner u64, request u64, start u64, end u64 (inclusive),
 * token u64, time sec i64, time nsec u32, pid u32, kind u8, type u8, 6 reserved bytes. */
static void lk_encode(const struct lk *k, uint8_t *p)
{
    memset(p, 0, LOCK_RECORD);
    rfs_put_le64(p, k->session);
    rfs_put_le64(p + 8, k->owner);
    rfs_put_le64(p + 16, k->request);
    rfs_put_le64(p + 24, k->start);
    rfs_put_le64(p + 32, k->end);
    rfs_put_le64(p + 40, k->token);
    rfs_put_le64(p + 48, (uint64_t)k->time.sec);
    rfs_put_le32(p + 56, k->time.nsec);
    rfs_put_le32(p + 60, k->pid);
    p[64] = k->kind;
    p[65] = k->type;
}

static bool lk_decode(const uint8_t *p, bool is_held, struct lk *k)
{
    k->session = rfs_get_le64(p);
    k->owner = rfs_get_le64(p + 8);
    k->request = rfs_get_le64(p + 16);
    k->start = rfs_get_le64(p + 24);
    k->end = rfs_get_le64(p + 32);
    k->token = rfs_get_le64(p + 40);
    k->time.sec = (int64_t)rfs_get_le64(p + 48);
    k->time.nsec = rfs_get_le32(p + 56);
    k->pid = rfs_get_le32(p + 60);
    k->kind = p[64];
    k->type = p[65];
    bool kind_ok = k->kind == STORE_CMD_LOCK_FLOCK || k->kind == STORE_CMD_LOCK_POSIX;
    bool type_ok = k->type == STORE_CMD_LOCK_READ || k->type == STORE_CMD_LOCK_WRITE;
    return kind_ok && type_ok && k->start <= k->end && k->end <= OFFSET_MAX &&
           (k->token != 0) == is_held;
}

static int lk_order(const void *a, const void *b)
{
    const struct lk *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    if (x->owner != y->owner)
        return x->owner < y->owner ? -1 : 1;
    return 0;
}

/* Decode a stored list value into l (arrays malloc'ed; list_free). */
static int list_decode(uint64_t ino, const MDB_val *v, struct lock_list *l)
{
    const uint8_t *p = v->mv_data;
    memset(l, 0, sizeof *l);
    l->ino = ino;
    if (v->mv_size < LIST_HEADER || p[0] != LIST_VERSION)
        return RFS_ECORRUPT;
    size_t nh = (size_t)rfs_get_le32(p + 4), nw = (size_t)rfs_get_le32(p + 8);
    if (nh + nw == 0 || nh + nw > STORE_FSM_LOCKS_MAX ||
        v->mv_size != LIST_HEADER + (nh + nw) * LOCK_RECORD)
        return RFS_ECORRUPT;
    /* One spare slot each: callers add a lock or a waiter in place. */
    l->held = malloc((nh + 1) * sizeof *l->held);
    l->wait = malloc((nw + 1) * sizeof *l->wait);
    if (l->held == NULL || l->wait == NULL) {
        list_free(l);
        return RFS_ENOMEM;
    }
    p += LIST_HEADER;
    for (size_t i = 0; i < nh + nw; i++, p += LOCK_RECORD) {
        bool is_held = i < nh;
        struct lk *k = is_held ? &l->held[i] : &l->wait[i - nh];
        if (!lk_decode(p, is_held, k)) {
            list_free(l);
            return RFS_ECORRUPT;
        }
    }
    l->n_held = nh;
    l->n_wait = nw;
    return 0;
}

static int list_load(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, struct lock_list *l)
{
    uint8_t k[8];
    fsm_put_be64(k, ino);
    MDB_val key = {8, k}, val;
    int rc = mdb_get(txn, fsm->locks, &key, &val);
    if (rc == MDB_NOTFOUND) {
        memset(l, 0, sizeof *l);
        l->ino = ino;
        l->held = malloc(sizeof *l->held);
        l->wait = malloc(sizeof *l->wait);
        if (l->held == NULL || l->wait == NULL) {
            list_free(l);
            return RFS_ENOMEM;
        }
        return 0;
    }
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "get locks of inode %llu", (unsigned long long)ino);
    return list_decode(ino, &val, l);
}

static int list_store(struct fsm_txn *t, struct lock_list *l)
{
    uint8_t k[8];
    fsm_put_be64(k, l->ino);
    MDB_val key = {8, k};
    int rc;
    if (l->n_held + l->n_wait == 0) {
        rc = mdb_del(t->txn, t->fsm->locks, &key, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return store__fsm_mdb_error(t->fsm, rc, "delete locks of inode %llu",
                                        (unsigned long long)l->ino);
        return 0;
    }
    qsort(l->held, l->n_held, sizeof *l->held, lk_order);
    MDB_val val = {LIST_HEADER + (l->n_held + l->n_wait) * LOCK_RECORD, NULL};
    rc = mdb_put(t->txn, t->fsm->locks, &key, &val, MDB_RESERVE);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put locks of inode %llu",
                                    (unsigned long long)l->ino);
    uint8_t *p = val.mv_data;
    memset(p, 0, LIST_HEADER);
    p[0] = LIST_VERSION;
    rfs_put_le32(p + 4, l->n_held);
    rfs_put_le32(p + 8, l->n_wait);
    p += LIST_HEADER;
    for (size_t i = 0; i < l->n_held; i++, p += LOCK_RECORD)
        lk_encode(&l->held[i], p);
    for (size_t i = 0; i < l->n_wait; i++, p += LOCK_RECORD)
        lk_encode(&l->wait[i], p);
    return 0;
}

/* --- the rules ----------------------------------------------------------------------------- */

static bool same_owner(const struct lk *a, uint64_t session, uint64_t owner)
{
    return a->session == session && a->owner == owner;
}

static bool overlaps(const struct lk *a, uint64_t start, uint64_t end)
{
    return a->start <= end && start <= a->end;
}

/* Invariant 2. */
static bool conflicts(const struct lk *a, const struct lk *b)
{
    return a->kind == b->kind && !same_owner(a, b->session, b->owner) &&
           overlaps(a, b->start, b->end) &&
           (a->type == STORE_CMD_LOCK_WRITE || b->type == STORE_CMD_LOCK_WRITE);
}

/* First held lock (in list order) that conflicts with req, or -1. */
static long held_conflict(const struct lock_list *l, const struct lk *req)
{
    for (size_t i = 0; i < l->n_held; i++)
        if (conflicts(&l->held[i], req))
            return (long)i;
    return -1;
}

/* Does (session, owner) hold a lock that blocks waiter w? */
static bool owner_blocks(const struct lock_list *l, uint64_t session, uint64_t owner,
                         const struct lk *w)
{
    for (size_t i = 0; i < l->n_held; i++)
        if (same_owner(&l->held[i], session, owner) && conflicts(&l->held[i], w))
            return true;
    return false;
}

/* Invariant 3. Does req's owner block waiter i, directly (it conflicts with a lock the owner
 * holds) or through the queue (it conflicts with an earlier waiter the owner blocks)? Such a
 * waiter cannot go before req's owner changes its locks anyway, so req need not queue behind
 * it. blocked[0..*known) holds the answers so far; they are computed only as far as asked, so
 * a request that conflicts with no waiter costs no pass over the queue. */
static bool owner_blocks_waiter(const struct lock_list *l, const struct lk *req, size_t i,
                                bool *blocked, size_t *known)
{
    for (; *known <= i; (*known)++) {
        size_t k = *known;
        const struct lk *w = &l->wait[k];
        blocked[k] = owner_blocks(l, req->session, req->owner, w);
        for (size_t j = 0; j < k && !blocked[k]; j++)
            blocked[k] = blocked[j] && conflicts(w, &l->wait[j]);
    }
    return blocked[i];
}

/* First of the waiters before position upto that req must wait behind, or -1. Calls fn (if
 * not NULL) for every one of them instead of stopping at the first. */
static long waiters_ahead(const struct lock_list *l, const struct lk *req, size_t upto,
                          int (*fn)(void *, const struct lk *), void *arg, int *err)
{
    bool blocked[STORE_FSM_LOCKS_MAX];
    size_t known = 0;
    long first = -1;
    for (size_t i = 0; i < upto; i++) {
        if (!conflicts(req, &l->wait[i]) || owner_blocks_waiter(l, req, i, blocked, &known))
            continue;
        if (fn == NULL)
            return (long)i;
        if (first < 0)
            first = (long)i;
        if ((*err = fn(arg, &l->wait[i])) != 0)
            break;
    }
    return first;
}

static long waiter_ahead(const struct lock_list *l, const struct lk *req, size_t upto)
{
    return waiters_ahead(l, req, upto, NULL, NULL, NULL);
}

static bool is_blocked(const struct lock_list *l, const struct lk *req, size_t upto)
{
    return held_conflict(l, req) >= 0 || waiter_ahead(l, req, upto) >= 0;
}

/* May two ranges be merged into one (overlapping or adjacent)? Offsets are at most
 * OFFSET_MAX, so end + 1 cannot wrap. */
static bool touches(const struct lk *a, uint64_t start, uint64_t end)
{
    return a->start <= end + 1 && start <= a->end + 1;
}

/* The held locks after req (a lock or an unlock) of its owner is applied, into *out (n_out),
 * as Linux's posix_lock_inode and flock_lock_inode leave them: the owner's locks of req's
 * kind that req covers go, ones it partly covers are cut (or split in two), same-type ones it
 * overlaps or touches merge with it. *out is malloc'ed. */
static int held_after(const struct lock_list *l, const struct lk *req, struct lk **out,
                      size_t *n_out)
{
    uint64_t s = req->start, e = req->end;
    bool is_unlock = req->type == STORE_CMD_LOCK_UNLOCK;
    bool is_posix = req->kind == STORE_CMD_LOCK_POSIX;
    /* Grow the new range over the owner's same-type locks it touches (invariant 1). */
    for (bool grew = is_posix && !is_unlock; grew;) {
        grew = false;
        for (size_t i = 0; i < l->n_held; i++) {
            const struct lk *h = &l->held[i];
            if (h->kind == req->kind && same_owner(h, req->session, req->owner) &&
                h->type == req->type && touches(h, s, e) && (h->start < s || h->end > e)) {
                s = h->start < s ? h->start : s;
                e = h->end > e ? h->end : e;
                grew = true;
            }
        }
    }
    struct lk *n = malloc((2 * l->n_held + 1) * sizeof *n);
    if (n == NULL)
        return RFS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < l->n_held; i++) {
        const struct lk *h = &l->held[i];
        if (h->kind != req->kind || !same_owner(h, req->session, req->owner)) {
            n[k++] = *h;
        } else if (!is_posix) {
            continue; /* flock: the owner's one lock is replaced */
        } else if (!is_unlock && h->type == req->type && touches(h, s, e)) {
            continue; /* merged into the new lock */
        } else if (overlaps(h, s, e)) {
            if (h->start < s) {
                n[k] = *h;
                n[k++].end = s - 1;
            }
            if (h->end > e) {
                n[k] = *h;
                n[k++].start = e + 1;
            }
        } else {
            n[k++] = *h;
        }
    }
    if (!is_unlock) {
        n[k] = *req;
        n[k].start = s;
        n[k++].end = e;
    }
    *out = n;
    *n_out = k;
    return 0;
}

/* Apply req to l's held locks unless the list would then pass STORE_FSM_LOCKS_MAX records
 * (extra records still to be added: `more`); ENOLCK then, and l is unchanged. */
static int set_held(struct lock_list *l, const struct lk *req, size_t more)
{
    struct lk *n;
    size_t k;
    int r = held_after(l, req, &n, &k);
    if (r != 0)
        return r;
    if (k + l->n_wait + more > STORE_FSM_LOCKS_MAX && k > l->n_held) {
        free(n);
        return ENOLCK;
    }
    /* Keep one spare slot, as list_decode does. */
    struct lk *grown = realloc(n, (k + 1) * sizeof *n);
    free(l->held);
    l->held = grown ? grown : n;
    l->n_held = k;
    return grown ? 0 : RFS_ENOMEM;
}

static void wait_remove(struct lock_list *l, size_t i)
{
    memmove(&l->wait[i], &l->wait[i + 1], (l->n_wait - i - 1) * sizeof *l->wait);
    l->n_wait--;
}

static int wake(struct fsm_txn *t, const struct lock_list *l, const struct lk *w, uint64_t token,
                int err)
{
    struct store_fsm_wakeup up = {.ino = l->ino,
                                  .session = w->session,
                                  .owner = w->owner,
                                  .request = w->request,
                                  .token = token,
                                  .err = err};
    return store__wakeup_add(t, &up);
}

/* Can granting waiter i let an earlier waiter go? Only if the grant weakens its owner's locks
 * (a read lock over the owner's write lock), or the owner has an earlier waiter, which its new
 * lock may free from queueing behind others (invariant 3). Otherwise a grant only adds to what
 * blocks the waiters before it. */
static bool grant_may_free_earlier(const struct lock_list *l, size_t i)
{
    const struct lk *w = &l->wait[i];
    for (size_t j = 0; j < i; j++)
        if (same_owner(&l->wait[j], w->session, w->owner))
            return true;
    if (w->type != STORE_CMD_LOCK_READ)
        return false;
    for (size_t j = 0; j < l->n_held; j++) {
        const struct lk *h = &l->held[j];
        if (h->kind == w->kind && same_owner(h, w->session, w->owner) &&
            h->type == STORE_CMD_LOCK_WRITE && overlaps(h, w->start, w->end))
            return true;
    }
    return false;
}

/* Invariant 4: grant every waiter that may go, front first, until none may. */
static int grant_waiters(struct fsm_txn *t, struct lock_list *l)
{
    for (size_t i = 0; i < l->n_wait;) {
        struct lk w = l->wait[i];
        if (is_blocked(l, &w, i)) {
            i++;
            continue;
        }
        bool look_again = grant_may_free_earlier(l, i);
        w.token = t->index;
        w.time = t->now;
        int r = set_held(l, &w, 0);
        if (fsm_is_store_error(r))
            return r;
        wait_remove(l, i); /* the next waiter moves into slot i */
        if ((r = wake(t, l, &w, r == 0 ? w.token : 0, r)) != 0)
            return r;
        if (look_again)
            i = 0;
    }
    return 0;
}

/* --- deadlock detection -------------------------------------------------------------------- */

struct owner_id {
    uint64_t session, owner;
};

struct edge {
    struct owner_id from, to;
};

struct graph {
    struct edge *edges;
    size_t n, cap;
};

struct edge_ctx {
    struct graph *g;
    const struct lk *from;
};

static int edge_add(void *arg, const struct lk *to)
{
    struct edge_ctx *e = arg;
    struct graph *g = e->g;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 64;
        struct edge *p = realloc(g->edges, cap * sizeof *p);
        if (p == NULL)
            return RFS_ENOMEM;
        g->edges = p;
        g->cap = cap;
    }
    g->edges[g->n++] = (struct edge){{e->from->session, e->from->owner}, {to->session, to->owner}};
    return 0;
}

/* Edges from waiter req (at position upto of l's queue, or past its end) to every owner it
 * waits for: holders of conflicting locks and owners of waiters it must queue behind. */
static int edges_of(struct graph *g, const struct lock_list *l, const struct lk *req, size_t upto)
{
    struct edge_ctx e = {g, req};
    int r = 0;
    for (size_t i = 0; i < l->n_held && r == 0; i++)
        if (conflicts(&l->held[i], req))
            r = edge_add(&e, &l->held[i]);
    if (r == 0)
        waiters_ahead(l, req, upto, edge_add, &e, &r);
    return r;
}

static bool owner_eq(struct owner_id a, struct owner_id b)
{
    return a.session == b.session && a.owner == b.owner;
}

/* EDEADLK if POSIX request req, about to wait in l (the stored list of its inode), would
 * close a cycle in the wait-for graph of POSIX owners across every inode; 0 if not. */
static int would_deadlock(struct fsm_txn *t, const struct lock_list *l, const struct lk *req)
{
    struct graph g = {0};
    MDB_cursor *cur;
    int r = edges_of(&g, l, req, l->n_wait);
    size_t first_own = g.n; /* edges [0, first_own) start the search */
    int rc = r == 0 ? mdb_cursor_open(t->txn, t->fsm->locks, &cur) : 0;
    if (rc != 0)
        r = store__fsm_mdb_error(t->fsm, rc, "open cursor on locks");
    if (r != 0) {
        free(g.edges);
        return r;
    }
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && r == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct lock_list m;
        if (key.mv_size != 8) {
            r = RFS_ECORRUPT;
            break;
        }
        if ((r = list_decode(fsm_get_be64(key.mv_data), &val, &m)) != 0)
            break;
        for (size_t i = 0; i < m.n_wait && r == 0; i++)
            if (m.wait[i].kind == STORE_CMD_LOCK_POSIX)
                r = edges_of(&g, &m, &m.wait[i], i);
        list_free(&m);
    }
    mdb_cursor_close(cur);
    if (r == 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(t->fsm, rc, "walk locks");
    /* Search from the owners req waits for; reaching req's owner closes a cycle. The edges
     * double as the work list: an owner is expanded once, when first reached. */
    struct owner_id self = {req->session, req->owner};
    struct owner_id *seen = r == 0 ? malloc((g.n + 1) * sizeof *seen) : NULL;
    if (r == 0 && seen == NULL)
        r = RFS_ENOMEM;
    size_t n_seen = 0;
    for (size_t i = 0; r == 0 && i < first_own; i++)
        seen[n_seen++] = g.edges[i].to;
    for (size_t at = 0; r == 0 && at < n_seen; at++) {
        if (owner_eq(seen[at], self)) {
            r = EDEADLK;
            break;
        }
        for (size_t i = first_own; i < g.n; i++) {
            if (!owner_eq(g.edges[i].from, seen[at]))
                continue;
            bool known = false;
            for (size_t j = 0; j < n_seen && !known; j++)
                known = owner_eq(seen[j], g.edges[i].to);
            if (!known)
                seen[n_seen++] = g.edges[i].to;
        }
    }
    free(seen);
    free(g.edges);
    return r;
}

/* --- commands ------------------------------------------------------------------------------ */

/* The range of a LOCK as Linux's flock64_to_posix_lock checks it. */
static int range_of(const struct store_cmd *c, struct lk *req)
{
    if (c->lock_kind == STORE_CMD_LOCK_FLOCK) {
        if (c->start != 0 || c->len != 0)
            return EINVAL; /* flock locks the whole file */
        req->start = 0;
        req->end = OFFSET_MAX;
        return 0;
    }
    if (c->start > OFFSET_MAX)
        return EINVAL;
    if (c->len > 0 && c->len - 1 > OFFSET_MAX - c->start)
        return EOVERFLOW;
    req->start = c->start;
    req->end = c->len ? c->start + c->len - 1 : OFFSET_MAX;
    return 0;
}

static bool kind_ok(uint8_t kind)
{
    return kind == STORE_CMD_LOCK_FLOCK || kind == STORE_CMD_LOCK_POSIX;
}

/* The checks every lock command starts with: the inode exists, the session is live. */
static int lock_checks(struct fsm_txn *t, const struct store_cmd *c)
{
    struct fsm_inode node;
    struct fsm_session s;
    int r = store__inode_get(t->fsm, t->txn, c->ino, &node);
    if (r != 0)
        return r;
    r = store__session_get(t->fsm, t->txn, c->session, &s);
    if (r == ENOENT || (r == 0 && s.state != STORE_FSM_SESSION_LIVE))
        return ENOLCK; /* the session ended: the node must open a new one */
    return r;
}

/* Append req to the queue; the caller stores the list. */
static int enqueue(struct lock_list *l, const struct lk *req, struct store_fsm_result *res)
{
    if (l->n_held + l->n_wait + 1 > STORE_FSM_LOCKS_MAX)
        return ENOLCK;
    l->wait[l->n_wait] = *req;
    l->wait[l->n_wait++].token = 0; /* a waiter has none until granted */
    res->lock_queued = true;
    return 0;
}

/* flock (whole file, one lock per open file description), as Linux's flock_lock_inode: a
 * request for the type already held changes nothing; a conversion first drops the old lock,
 * which stays dropped even if the new one is then refused. */
static int flock_request(struct fsm_txn *t, const struct store_cmd *c, struct lock_list *l,
                         struct lk *req, struct store_fsm_result *res)
{
    bool is_converting = false;
    for (size_t i = 0; i < l->n_held; i++) {
        struct lk *h = &l->held[i];
        if (h->kind != STORE_CMD_LOCK_FLOCK || !same_owner(h, req->session, req->owner))
            continue;
        if (h->type == req->type) {
            res->token = h->token;
            return 0;
        }
        l->held[i] = l->held[--l->n_held];
        is_converting = true;
        break;
    }
    int r;
    if (!is_blocked(l, req, l->n_wait)) {
        if (l->n_held + l->n_wait + 1 > STORE_FSM_LOCKS_MAX)
            return ENOLCK; /* only without a conversion: it freed a record */
        l->held[l->n_held++] = *req;
        res->token = req->token;
    } else if (!(c->flags & STORE_CMD_LOCK_WAIT)) {
        if (!is_converting)
            return EAGAIN;
        res->err = EAGAIN; /* and the old lock is gone, as on Linux */
    } else if ((r = enqueue(l, req, res)) != 0) {
        return r;
    }
    if ((r = grant_waiters(t, l)) != 0)
        return r;
    return list_store(t, l);
}

/* A POSIX read or write lock (cmd_lock handles unlocks). */
static int posix_request(struct fsm_txn *t, const struct store_cmd *c, struct lock_list *l,
                         struct lk *req, struct store_fsm_result *res)
{
    int r;
    if (is_blocked(l, req, l->n_wait)) {
        if (!(c->flags & STORE_CMD_LOCK_WAIT))
            return EAGAIN;
        if ((r = would_deadlock(t, l, req)) != 0)
            return r;
        if ((r = enqueue(l, req, res)) != 0)
            return r;
        return list_store(t, l);
    }
    if ((r = set_held(l, req, 0)) != 0)
        return r;
    res->token = req->token;
    if ((r = grant_waiters(t, l)) != 0)
        return r;
    return list_store(t, l);
}

static int cmd_lock(struct fsm_txn *t, const struct store_cmd *c, struct lk *req,
                    struct lock_list *l, struct store_fsm_result *res)
{
    int r;
    if (req->type == STORE_CMD_LOCK_UNLOCK) {
        if ((r = set_held(l, req, 0)) != 0 || (r = grant_waiters(t, l)) != 0)
            return r;
        return list_store(t, l);
    }
    /* A request already waiting (its proposal was retried): it keeps its place. */
    for (size_t i = 0; i < l->n_wait; i++) {
        if (l->wait[i].session == req->session && l->wait[i].request == req->request) {
            res->lock_queued = true;
            return 0;
        }
    }
    if (req->kind == STORE_CMD_LOCK_FLOCK)
        return flock_request(t, c, l, req, res);
    return posix_request(t, c, l, req, res);
}

static int cmd_cancel(struct fsm_txn *t, const struct store_cmd *c, struct lock_list *l)
{
    for (size_t i = 0; i < l->n_wait; i++) {
        if (l->wait[i].session != c->session || l->wait[i].request != c->request)
            continue;
        struct lk w = l->wait[i];
        wait_remove(l, i);
        int r = wake(t, l, &w, 0, EINTR);
        if (r == 0)
            r = grant_waiters(t, l);
        return r != 0 ? r : list_store(t, l);
    }
    return ENOENT; /* not waiting: granted already, or never asked */
}

int store__cmd_lock(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    /* LOCK_RELEASE is an unlock of the whole file by the owner. */
    struct lk req = {.session = c->session,
                     .owner = c->owner,
                     .request = c->request,
                     .end = OFFSET_MAX,
                     .token = t->index,
                     .time = t->now,
                     .pid = c->pid,
                     .kind = c->lock_kind,
                     .type = c->type == STORE_CMD_LOCK ? c->lock_type : STORE_CMD_LOCK_UNLOCK};
    int r;
    if (c->type != STORE_CMD_LOCK_CANCEL && !kind_ok(c->lock_kind))
        return EINVAL;
    if (c->type == STORE_CMD_LOCK) {
        if (c->lock_type > STORE_CMD_LOCK_UNLOCK || (c->flags & ~STORE_CMD_LOCK_WAIT))
            return EINVAL;
        if ((r = range_of(c, &req)) != 0)
            return r;
    }
    if ((r = lock_checks(t, c)) != 0)
        return r;
    struct lock_list l;
    if ((r = list_load(t->fsm, t->txn, c->ino, &l)) != 0)
        return r;
    res->ino = c->ino;
    if (c->type == STORE_CMD_LOCK_CANCEL)
        r = cmd_cancel(t, c, &l);
    else
        r = cmd_lock(t, c, &req, &l, res);
    list_free(&l);
    return r;
}

/* --- sessions and inodes going away -------------------------------------------------------- */

/* Inode numbers of every lock list that mentions session (malloc'ed into *out). */
static int lists_of_session(struct fsm_txn *t, uint64_t session, uint64_t **out, size_t *n_out)
{
    MDB_cursor *cur;
    uint64_t *inos = NULL;
    size_t n = 0, cap = 0;
    int r = 0, rc = mdb_cursor_open(t->txn, t->fsm->locks, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "open cursor on locks");
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && r == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct lock_list l;
        if (key.mv_size != 8) {
            r = RFS_ECORRUPT;
            break;
        }
        if ((r = list_decode(fsm_get_be64(key.mv_data), &val, &l)) != 0)
            break;
        bool mentions = false;
        for (size_t i = 0; i < l.n_held && !mentions; i++)
            mentions = l.held[i].session == session;
        for (size_t i = 0; i < l.n_wait && !mentions; i++)
            mentions = l.wait[i].session == session;
        if (mentions && n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *p = realloc(inos, cap * sizeof *p);
            if (p == NULL)
                r = RFS_ENOMEM;
            else
                inos = p;
        }
        if (mentions && r == 0)
            inos[n++] = l.ino;
        list_free(&l);
    }
    mdb_cursor_close(cur);
    if (r == 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(t->fsm, rc, "walk locks");
    if (r != 0) {
        free(inos);
        return r;
    }
    *out = inos;
    *n_out = n;
    return 0;
}

int store__locks_drop_session(struct fsm_txn *t, uint64_t session, bool is_removed, bool *has_held)
{
    uint64_t *inos = NULL;
    size_t n = 0;
    int r = lists_of_session(t, session, &inos, &n);
    if (r != 0)
        return r;
    if (has_held != NULL)
        *has_held = false;
    for (size_t k = 0; k < n && r == 0; k++) {
        struct lock_list l;
        if ((r = list_load(t->fsm, t->txn, inos[k], &l)) != 0)
            break;
        for (size_t i = 0; i < l.n_wait && r == 0;) {
            if (l.wait[i].session != session) {
                i++;
                continue;
            }
            struct lk w = l.wait[i];
            wait_remove(&l, i);
            r = wake(t, &l, &w, 0, ENOLCK);
        }
        size_t kept = 0;
        for (size_t i = 0; i < l.n_held; i++) {
            if (l.held[i].session != session || !is_removed)
                l.held[kept++] = l.held[i];
            if (l.held[i].session == session && !is_removed && has_held != NULL)
                *has_held = true;
        }
        l.n_held = kept;
        if (r == 0)
            r = grant_waiters(t, &l);
        if (r == 0)
            r = list_store(t, &l);
        list_free(&l);
    }
    free(inos);
    return r;
}

int store__locks_drop_inode(struct fsm_txn *t, uint64_t ino)
{
    struct lock_list l;
    int r = list_load(t->fsm, t->txn, ino, &l);
    if (r != 0)
        return r;
    for (size_t i = 0; i < l.n_wait && r == 0; i++)
        r = wake(t, &l, &l.wait[i], 0, ENOENT);
    l.n_held = l.n_wait = 0;
    if (r == 0)
        r = list_store(t, &l);
    list_free(&l);
    return r;
}

/* --- reads --------------------------------------------------------------------------------- */

int store__lock_token(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, uint64_t *token)
{
    struct lock_list l;
    int r = list_load(fsm, txn, ino, &l);
    if (r != 0)
        return r;
    *token = 0;
    for (size_t i = 0; i < l.n_held; i++)
        if (l.held[i].token > *token)
            *token = l.held[i].token;
    list_free(&l);
    return *token ? 0 : ENODATA;
}

/* Fill out from record k of l; waiting tells which queue it is in. */
static int describe(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, const struct lk *k,
                    bool waiting, struct store_fsm_lock *out)
{
    struct fsm_session s;
    int r = store__session_get(fsm, txn, k->session, &s);
    if (r != 0)
        return r == ENOENT ? RFS_ECORRUPT : r; /* a lock outlived its session */
    *out = (struct store_fsm_lock){
        .ino = ino,
        .session = k->session,
        .node = s.node,
        .owner = k->owner,
        .request = k->request,
        .start = k->start,
        .len = k->end == OFFSET_MAX ? 0 : k->end - k->start + 1,
        .token = waiting ? 0 : k->token,
        .time = k->time,
        .pid = k->pid,
        .kind = k->kind,
        .type = k->type,
        .state = waiting                              ? STORE_FSM_LOCK_WAITING
                 : s.state == STORE_FSM_SESSION_ENDED ? STORE_FSM_LOCK_DELAYED
                                                      : STORE_FSM_LOCK_HELD,
    };
    return 0;
}

int store_fsm_getlk(struct store_fsm *fsm, uint64_t ino, uint64_t session, uint64_t owner,
                    uint8_t kind, uint8_t type, uint64_t start, uint64_t len,
                    struct store_fsm_lock *out)
{
    struct store_cmd c = {.lock_kind = kind, .start = start, .len = len};
    struct lk req = {.session = session, .owner = owner, .kind = kind, .type = type};
    struct fsm_inode node;
    struct lock_list l;
    MDB_txn *txn;
    if (!kind_ok(kind) || (type != STORE_CMD_LOCK_READ && type != STORE_CMD_LOCK_WRITE))
        return EINVAL;
    int r = range_of(&c, &req);
    if (r != 0)
        return r;
    if ((r = store__fsm_read_begin(fsm, &txn)) != 0)
        return r;
    if ((r = store__inode_get(fsm, txn, ino, &node)) != 0 ||
        (r = list_load(fsm, txn, ino, &l)) != 0)
        goto out;
    long i = held_conflict(&l, &req);
    long w = i < 0 ? waiter_ahead(&l, &req, l.n_wait) : -1;
    if (i >= 0)
        r = describe(fsm, txn, ino, &l.held[i], false, out);
    else if (w >= 0)
        r = describe(fsm, txn, ino, &l.wait[w], true, out);
    else
        *out = (struct store_fsm_lock){.ino = ino, .kind = kind, .type = STORE_CMD_LOCK_UNLOCK};
    list_free(&l);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

static int list_each(struct store_fsm *fsm, MDB_txn *txn, const struct lock_list *l,
                     store_fsm_lock_fn fn, void *arg, bool *stop)
{
    struct store_fsm_lock out;
    for (size_t i = 0; i < l->n_held + l->n_wait && !*stop; i++) {
        bool waiting = i >= l->n_held;
        int r = describe(fsm, txn, l->ino, waiting ? &l->wait[i - l->n_held] : &l->held[i], waiting,
                         &out);
        if (r != 0)
            return r;
        *stop = fn(arg, &out) != 0;
    }
    return 0;
}

int store_fsm_locks(struct store_fsm *fsm, uint64_t ino, store_fsm_lock_fn fn, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    struct lock_list l;
    bool stop = false;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    if (ino != 0) {
        if ((r = list_load(fsm, txn, ino, &l)) == 0) {
            r = list_each(fsm, txn, &l, fn, arg, &stop);
            list_free(&l);
        }
        goto out;
    }
    int rc = mdb_cursor_open(txn, fsm->locks, &cur);
    if (rc != 0) {
        r = store__fsm_mdb_error(NULL, rc, "locks cursor");
        goto out;
    }
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && r == 0 && !stop;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 8) {
            r = RFS_ECORRUPT;
            break;
        }
        if ((r = list_decode(fsm_get_be64(key.mv_data), &val, &l)) != 0)
            break;
        r = list_each(fsm, txn, &l, fn, arg, &stop);
        list_free(&l);
    }
    if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(NULL, rc, "list locks");
    mdb_cursor_close(cur);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}
