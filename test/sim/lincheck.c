/* Linearizability checker: splits a history by key (locality) and checks each key's register
 * history with Lowe's refinement of the Wing-Gong search, memoized on (linearized set, state).
 *
 * Design note. Per key, the search works on a doubly linked list of call and return entries
 * sorted by time (calls before returns at equal times: such operations count as concurrent).
 * Invariants:
 *  1. The entries between the list head and the scan position are all call entries; so every
 *     call the scan reaches belongs to an operation all of whose real-time predecessors are
 *     already linearized (their return entries were removed with them).
 *  2. A linearized operation's entries are out of the list; the stack holds, for each, its call
 *     entry and the register state before it, so backtracking restores both exactly.
 *  3. The memo holds only configurations that failed or lie on the current path. Along a path
 *     the linearized set only grows, so a configuration found in the memo has failed.
 *  4. Register states are value ids: each value some read returns gets an id >= 1; every other
 *     value (never observed by a read) is STATE_UNREAD. Two such values are indistinguishable
 *     to the rest of the history, so merging them is exact and shrinks the memo.
 * Three prunes rest on these, each proved where it is applied: a read that is legal when
 * reached is linearized at once without a choice point; a write may not overwrite a value that
 * unlinearized reads still return unless another write of it is left; and a write whose outcome
 * is unknown and whose value no read returns is dropped. The second is what keeps histories
 * with unique values (the simulator's) near-linear: ~10 steps per op at 16-way concurrency,
 * where the unpruned search needed up to 50,000. */
#include "test/sim/lincheck.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_UNREAD 0u /* a value no read in this key's history returns */

/* One call or return event of an operation, linked in time order. */
struct entry {
    struct entry *prev;
    struct entry *next;
    struct entry *match; /* call: its return entry, or NULL when ret is LIN_NEVER */
    uint64_t time;       /* only used while sorting */
    uint32_t op;         /* index into the key's operation arrays */
    bool is_call;
};

/* A linearized operation on the search stack. */
struct frame {
    struct entry *call;
    uint32_t state_before;
    bool is_forced; /* a read taken without a choice: popping it gives up its parent too */
};

/* Set of failed configurations: open addressing over records kept in parallel arrays, each
 * record's bitset stored in one flat word arena. */
struct memo {
    size_t n_words;  /* words per bitset */
    uint32_t *slots; /* record index + 1, 0 = empty */
    size_t cap;      /* slots, a power of two */
    uint64_t *hashes;
    uint32_t *states;
    uint64_t *bits;
    size_t len, len_cap;
};

/* The operations of one key, after dropping those that impose no constraint. */
struct key_history {
    uint32_t key;
    size_t n;           /* operations kept */
    size_t *orig;       /* index into the caller's ops[] */
    uint32_t *state_of; /* write: the id it sets; read: the id it must see */
    bool *is_read;
    uint64_t *call, *ret; /* ret: LIN_NEVER for a write of unknown outcome */
    uint32_t init_state;
    uint64_t *read_values; /* sorted distinct values returned by reads; id i+1 is [i] */
    size_t n_read_values;
};

/* What the search learned on failure: the deepest configuration it reached. */
struct failure {
    size_t prefix_len;
    size_t bad_op; /* local index of the op whose return could not be met */
    uint32_t state;
};

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finalizer: a cheap, well-spread hash of one word. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* --- memo ----------------------------------------------------------------------------------- */

static int memo_init(struct memo *m, size_t n_ops)
{
    memset(m, 0, sizeof *m);
    m->n_words = n_ops / 64 + 1;
    m->cap = 1024;
    m->slots = calloc(m->cap, sizeof *m->slots);
    return m->slots ? 0 : -1;
}

static void memo_close(struct memo *m)
{
    free(m->slots);
    free(m->hashes);
    free(m->states);
    free(m->bits);
}

static int memo_grow_slots(struct memo *m)
{
    size_t cap = m->cap * 2;
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < m->len; i++) {
        size_t s = m->hashes[i] & (cap - 1);
        while (slots[s])
            s = (s + 1) & (cap - 1);
        slots[s] = (uint32_t)(i + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static int memo_grow_records(struct memo *m)
{
    size_t c = m->len_cap ? m->len_cap * 2 : 256;
    if (c > UINT32_MAX - 1)
        return -1;
    uint64_t *h = realloc(m->hashes, c * sizeof *h);
    if (!h)
        return -1;
    m->hashes = h;
    uint32_t *s = realloc(m->states, c * sizeof *s);
    if (!s)
        return -1;
    m->states = s;
    uint64_t *b = realloc(m->bits, c * m->n_words * sizeof *b);
    if (!b)
        return -1;
    m->bits = b;
    m->len_cap = c;
    return 0;
}

/* Add (bits, state) with precomputed hash. Returns 1 if it was already present, 0 if added,
 * -1 if memory ran out (the memo is unchanged then). bits is copied. */
static int memo_add(struct memo *m, const uint64_t *bits, uint32_t state, uint64_t hash)
{
    size_t s = hash & (m->cap - 1);
    for (; m->slots[s]; s = (s + 1) & (m->cap - 1)) {
        size_t i = m->slots[s] - 1;
        if (m->hashes[i] == hash && m->states[i] == state &&
            memcmp(m->bits + i * m->n_words, bits, m->n_words * sizeof *bits) == 0)
            return 1;
    }
    if (m->len == m->len_cap && memo_grow_records(m) != 0)
        return -1;
    size_t i = m->len++;
    m->hashes[i] = hash;
    m->states[i] = state;
    memcpy(m->bits + i * m->n_words, bits, m->n_words * sizeof *bits);
    m->slots[s] = (uint32_t)(i + 1);
    if (m->len * 2 > m->cap && memo_grow_slots(m) != 0) {
        /* Keep the table consistent: forget the record just added. */
        m->slots[s] = 0;
        m->len--;
        return -1;
    }
    return 0;
}

/* --- building the per-key list ------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    /* Calls first: an operation returning at the instant another is called is concurrent with
     * it, the permissive reading when clocks have finite resolution. */
    if (x->is_call != y->is_call)
        return x->is_call ? -1 : 1;
    return (x->op > y->op) - (x->op < y->op);
}

static uint32_t value_id(const struct key_history *h, uint64_t v)
{
    const uint64_t *p = bsearch(&v, h->read_values, h->n_read_values, sizeof v, cmp_u64);
    return p ? (uint32_t)(p - h->read_values) + 1 : STATE_UNREAD;
}

/* Fill h from the operations idx[0..m) of ops (all on one key). Returns 0 or -1 (no memory). */
static int key_history_init(struct key_history *h, const struct lin_op *ops, const size_t *idx,
                            size_t m)
{
    memset(h, 0, sizeof *h);
    h->key = ops[idx[0]].key;
    h->read_values = malloc(m * sizeof *h->read_values);
    h->orig = malloc(m * sizeof *h->orig);
    h->state_of = malloc(m * sizeof *h->state_of);
    h->is_read = malloc(m * sizeof *h->is_read);
    h->call = malloc(m * sizeof *h->call);
    h->ret = malloc(m * sizeof *h->ret);
    if (!h->read_values || !h->orig || !h->state_of || !h->is_read || !h->call || !h->ret)
        return -1;
    for (size_t i = 0; i < m; i++) {
        const struct lin_op *o = &ops[idx[i]];
        if (o->kind == LIN_READ && o->ret != LIN_NEVER)
            h->read_values[h->n_read_values++] = o->value;
    }
    qsort(h->read_values, h->n_read_values, sizeof *h->read_values, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < h->n_read_values; i++)
        if (u == 0 || h->read_values[u - 1] != h->read_values[i])
            h->read_values[u++] = h->read_values[i];
    h->n_read_values = u;
    h->init_state = value_id(h, 0);

    for (size_t i = 0; i < m; i++) {
        const struct lin_op *o = &ops[idx[i]];
        uint32_t id = value_id(h, o->value);
        /* A read without a response constrains nothing. A write of unknown outcome whose value
         * no read returns can be left out: in any linearization containing it, the next
         * operation is a write or nothing (a read there would return its value), so removing
         * it changes no read's legality; and "never took effect" is allowed for it. */
        if (o->ret == LIN_NEVER && (o->kind == LIN_READ || id == STATE_UNREAD))
            continue;
        h->orig[h->n] = idx[i];
        h->state_of[h->n] = id;
        h->is_read[h->n] = o->kind == LIN_READ;
        h->call[h->n] = o->call;
        h->ret[h->n] = o->ret;
        h->n++;
    }
    return 0;
}

static void key_history_close(struct key_history *h)
{
    free(h->read_values);
    free(h->orig);
    free(h->state_of);
    free(h->is_read);
    free(h->call);
    free(h->ret);
}

/* --- the search ------------------------------------------------------------------------------ */

static void lift(struct entry *call)
{
    call->prev->next = call->next;
    if (call->next)
        call->next->prev = call->prev;
    struct entry *r = call->match;
    if (r) {
        r->prev->next = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
}

/* Undo lift(call); entries go back in reverse order of removal, so their saved neighbours are
 * exactly the ones they had. */
static void unlift(struct entry *call)
{
    struct entry *r = call->match;
    if (r) {
        r->prev->next = r;
        if (r->next)
            r->next->prev = r;
    }
    call->prev->next = call;
    if (call->next)
        call->next->prev = call;
}

/* Working memory of one key's search. */
struct search {
    struct entry *ent; /* ent[0] is the list head, then one call and at most one return per op */
    struct entry **order;
    struct frame *stack;
    uint64_t *zob; /* a random word per op; the XOR over linearized ops hashes the set */
    uint64_t *bits;
    uint32_t *reads_left;  /* per value id: reads of it not yet linearized */
    uint32_t *writes_left; /* per value id: writes of it not yet linearized */
    struct memo memo;
};

static void search_close(struct search *s)
{
    free(s->ent);
    free(s->order);
    free(s->stack);
    free(s->zob);
    free(s->bits);
    free(s->reads_left);
    free(s->writes_left);
    memo_close(&s->memo);
}

static int search_init(struct search *s, const struct key_history *h)
{
    size_t n = h->n;
    memset(s, 0, sizeof *s);
    int memo_rc = memo_init(&s->memo, n);
    s->ent = calloc(2 * n + 1, sizeof *s->ent);
    s->order = malloc((2 * n + 1) * sizeof *s->order);
    s->stack = malloc((n + 1) * sizeof *s->stack);
    s->zob = malloc((n + 1) * sizeof *s->zob);
    s->bits = calloc(s->memo.n_words ? s->memo.n_words : 1, sizeof *s->bits);
    s->reads_left = calloc(h->n_read_values + 1, sizeof *s->reads_left);
    s->writes_left = calloc(h->n_read_values + 1, sizeof *s->writes_left);
    if (memo_rc != 0 || !s->ent || !s->order || !s->stack || !s->zob || !s->bits ||
        !s->reads_left || !s->writes_left) {
        search_close(s);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (h->is_read[i])
            s->reads_left[h->state_of[i]]++;
        else
            s->writes_left[h->state_of[i]]++;
    }

    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        s->zob[i] = mix64(((uint64_t)h->key << 32) ^ i);
        struct entry *c = &s->ent[1 + k];
        *c = (struct entry){.time = h->call[i], .op = (uint32_t)i, .is_call = true};
        s->order[k++] = c;
        if (h->ret[i] != LIN_NEVER) {
            struct entry *r = &s->ent[1 + k];
            *r = (struct entry){.time = h->ret[i], .op = (uint32_t)i, .is_call = false};
            c->match = r;
            s->order[k++] = r;
        }
    }
    qsort(s->order, k, sizeof *s->order, cmp_entry);
    struct entry *prev = &s->ent[0];
    for (size_t i = 0; i < k; i++) {
        prev->next = s->order[i];
        s->order[i]->prev = prev;
        prev = s->order[i];
    }
    prev->next = NULL;
    return 0;
}

static uint64_t config_hash(uint64_t set_hash, uint32_t state)
{
    return set_hash ^ mix64(0x6a09e667f3bcc909ull + state);
}

/* Search for a linearization of h (Lowe 2017, section 3, with memoization as in his "WGL"
 * variant). *steps counts loop iterations over all keys; budget (0: none) bounds it. Returns
 * enum lin_result, or -1 when memory runs out. On LIN_VIOLATION fills *fail. */
static int search_key(const struct key_history *h, uint64_t budget, uint64_t *steps,
                      struct failure *fail)
{
    struct search s;
    if (search_init(&s, h) != 0)
        return -1;

    struct entry *head = &s.ent[0];
    struct entry *e = head->next;
    uint32_t state = h->init_state;
    uint64_t set_hash = 0;
    size_t sp = 0;
    size_t finite_left = 0; /* operations with a return entry still to linearize */
    for (size_t i = 0; i < h->n; i++)
        finite_left += h->ret[i] != LIN_NEVER;
    *fail = (struct failure){.prefix_len = 0, .bad_op = SIZE_MAX, .state = state};
    int rc = LIN_OK;

    /* Done when every operation with a response is linearized: the calls left belong to
     * writes of unknown outcome, which may take effect after everything else, or never. */
    while (finite_left > 0) {
        if (budget && *steps >= budget) {
            rc = LIN_GAVE_UP;
            goto out;
        }
        ++*steps;
        assert(e != NULL); /* invariant 1: a return entry remains after the scan position */
        bool must_backtrack = false;
        if (e->is_call) {
            uint32_t op = e->op;
            bool is_read = h->is_read[op];
            if (is_read && h->state_of[op] != state) {
                e = e->next; /* illegal now; perhaps legal after another write */
                continue;
            }
            /* Overwriting a value that reads still have to return, when no write of it is
             * left to restore it, leaves those reads unlinearizable: prune. (The write itself
             * counts when it rewrites the same value.) With unique values this makes each
             * write wait for all the reads of the previous one, and the search near-linear. */
            if (!is_read && state != STATE_UNREAD && s.reads_left[state] > 0 &&
                s.writes_left[state] == 0) {
                e = e->next;
                continue;
            }
            uint32_t next_state = is_read ? state : h->state_of[op];
            s.bits[op / 64] |= 1ull << (op % 64);
            set_hash ^= s.zob[op];
            int seen = memo_add(&s.memo, s.bits, next_state, config_hash(set_hash, next_state));
            if (seen != 0) {
                s.bits[op / 64] &= ~(1ull << (op % 64));
                set_hash ^= s.zob[op];
                if (seen < 0) {
                    rc = -1;
                    goto out;
                }
                /* This successor already failed. For a write, try the next candidate; for a
                 * legal read, it was the only successor worth trying (see below). */
                if (!is_read) {
                    e = e->next;
                    continue;
                }
                must_backtrack = true;
            } else {
                /* A read legal now can be linearized now without losing any solution: given
                 * a linearization from here, moving the read to its front keeps it legal (the
                 * state is the one it returns), keeps the rest legal (reads change nothing),
                 * and respects real time (by invariant 1 all its predecessors are done, and
                 * moving it earlier cannot put it after a successor). So it is no choice
                 * point: if its subtree fails, so does this configuration. */
                s.stack[sp++] =
                    (struct frame){.call = e, .state_before = state, .is_forced = is_read};
                state = next_state;
                lift(e);
                (is_read ? s.reads_left : s.writes_left)[h->state_of[op]]--;
                finite_left -= e->match != NULL;
                e = head->next;
                continue;
            }
        } else {
            /* The response of an operation not yet linearized: this configuration is dead. */
            if (sp > fail->prefix_len || fail->bad_op == SIZE_MAX) {
                fail->prefix_len = sp;
                fail->bad_op = e->op;
                fail->state = state;
            }
            must_backtrack = true;
        }
        assert(must_backtrack);
        for (;;) {
            if (sp == 0) {
                rc = LIN_VIOLATION;
                goto out;
            }
            struct frame f = s.stack[--sp];
            uint32_t op = f.call->op;
            unlift(f.call);
            (h->is_read[op] ? s.reads_left : s.writes_left)[h->state_of[op]]++;
            finite_left += f.call->match != NULL;
            s.bits[op / 64] &= ~(1ull << (op % 64));
            set_hash ^= s.zob[op];
            state = f.state_before;
            if (!f.is_forced) {
                e = f.call->next;
                break;
            }
        }
    }
out:
    search_close(&s);
    return rc;
}

/* --- reporting and the entry point ------------------------------------------------------------ */

/* Format into report->detail, truncating silently: the summary is best effort. */
__attribute__((format(printf, 2, 3))) static void set_detail(struct lin_report *report,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report->detail, sizeof report->detail, fmt, ap);
    va_end(ap);
}

static void describe_op(char *buf, size_t size, const struct lin_op *o)
{
    char ret[24];
    if (o->ret == LIN_NEVER)
        snprintf(ret, sizeof ret, "?");
    else
        snprintf(ret, sizeof ret, "%llu", (unsigned long long)o->ret);
    snprintf(buf, size, "client %llu %s %llu [%llu,%s]", (unsigned long long)o->client,
             o->kind == LIN_READ ? "read ->" : "write", (unsigned long long)o->value,
             (unsigned long long)o->call, ret);
}

static void report_violation(struct lin_report *report, const struct lin_op *ops,
                             const struct key_history *h, const struct failure *fail)
{
    report->prefix_len = fail->prefix_len;
    report->bad_op = fail->bad_op == SIZE_MAX ? SIZE_MAX : h->orig[fail->bad_op];
    if (report->bad_op == SIZE_MAX) {
        set_detail(report, "key %u: no linearization", (unsigned)h->key);
        return;
    }
    char op[128], reg[40];
    describe_op(op, sizeof op, &ops[report->bad_op]);
    if (fail->state == STATE_UNREAD)
        snprintf(reg, sizeof reg, "a value no read returns");
    else
        snprintf(reg, sizeof reg, "%llu", (unsigned long long)h->read_values[fail->state - 1]);
    set_detail(report,
               "key %u: longest linearizable prefix has %zu of %zu ops; then op #%zu (%s) "
               "cannot be linearized (register holds %s)",
               (unsigned)h->key, fail->prefix_len, report->n_ops, report->bad_op, op, reg);
}

struct keyed {
    uint32_t key;
    size_t idx;
};

static int cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int validate(const struct lin_op *ops, size_t n, struct lin_report *report)
{
    for (size_t i = 0; i < n; i++) {
        const struct lin_op *o = &ops[i];
        const char *why = NULL;
        if (o->kind != LIN_READ && o->kind != LIN_WRITE)
            why = "unknown kind";
        else if (o->ret != LIN_NEVER && o->ret < o->call)
            why = "returns before its call";
        if (why) {
            if (report) {
                char op[128];
                describe_op(op, sizeof op, o);
                report->key = o->key;
                report->bad_op = i;
                set_detail(report, "op #%zu (%s): %s", i, op, why);
            }
            return LIN_BAD_HISTORY;
        }
    }
    return LIN_OK;
}

int lin_check(const struct lin_op *ops, size_t n, uint64_t budget, struct lin_report *report)
{
    struct lin_report scratch;
    if (!report)
        report = &scratch;
    memset(report, 0, sizeof *report);
    report->bad_op = SIZE_MAX;

    int rc = validate(ops, n, report);
    if (rc != LIN_OK || n == 0)
        return rc;

    struct keyed *by_key = malloc(n * sizeof *by_key);
    size_t *idx = malloc(n * sizeof *idx);
    if (!by_key || !idx) {
        set_detail(report, "out of memory");
        rc = LIN_GAVE_UP;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        by_key[i] = (struct keyed){.key = ops[i].key, .idx = i};
    qsort(by_key, n, sizeof *by_key, cmp_keyed);

    /* Locality (Herlihy and Wing 1990, theorem 1): the history is linearizable iff each key's
     * sub-history is, so keys are checked one at a time, in key order. */
    for (size_t lo = 0, hi; lo < n; lo = hi) {
        for (hi = lo; hi < n && by_key[hi].key == by_key[lo].key; hi++)
            idx[hi - lo] = by_key[hi].idx;
        struct key_history h;
        struct failure fail;
        int krc = key_history_init(&h, ops, idx, hi - lo);
        if (krc == 0)
            krc = search_key(&h, budget, &report->steps, &fail);
        report->key = by_key[lo].key;
        report->n_ops = hi - lo;
        if (krc == LIN_VIOLATION)
            report_violation(report, ops, &h, &fail);
        else if (krc == LIN_GAVE_UP)
            set_detail(report, "key %u: step budget of %llu exhausted", (unsigned)report->key,
                       (unsigned long long)budget);
        else if (krc < 0)
            set_detail(report, "key %u: out of memory", (unsigned)report->key);
        key_history_close(&h);
        if (krc != LIN_OK) {
            rc = krc < 0 ? LIN_GAVE_UP : krc;
            goto out;
        }
    }
    report->key = 0;
    report->n_ops = 0;
out:
    free(by_key);
    free(idx);
    return rc;
}
