/* The linearizability checker against hand-written histories, a brute-force oracle, histories
 * generated from real linearizable executions, and those same histories made impossible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "test/sim/lincheck.h"

#define NEVER LIN_NEVER

/* --- helpers ------------------------------------------------------------------------------- */

static struct lin_op W(uint32_t key, uint64_t value, uint64_t call, uint64_t ret) {
    return (struct lin_op){
        .client = call, .kind = LIN_WRITE, .key = key, .value = value, .call = call, .ret = ret};
}

static struct lin_op
R(uint32_t key, uint64_t value, uint64_t call, uint64_t ret) {
    return (struct lin_op){.client = call + 1000,
                           .kind = LIN_READ,
                           .key = key,
                           .value = value,
                           .call = call,
                           .ret = ret};
}

/* Brute-force oracle for small single-key histories: tries every order that respects real
 * time, with every subset of the unknown-outcome writes, straight from the definition. */
static bool
brute_from(const struct lin_op *ops, size_t n, uint32_t done, uint64_t state)
{
    bool all_finite_done = true;
    for (size_t i = 0; i < n; i++)
        if (!(done & (1u << i)) && ops[i].ret != NEVER)
            all_finite_done = false;
    if (all_finite_done)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (done & (1u << i))
            continue;
        bool ready = true;
        for (size_t j = 0; j < n; j++)
            if (!(done & (1u << j)) && j != i && ops[j].ret != NEVER && ops[j].ret < ops[i].call)
                ready = false;
        if (!ready)
            continue;
        if (ops[i].kind == LIN_READ) {
            if (ops[i].value == state && brute_from(ops, n, done | (1u << i), state))
                return true;
        } else if (brute_from(ops, n, done | (1u << i), ops[i].value)) {
            return true;
        }
    }
    return false;
}

static int brute_check(const struct lin_op *ops, size_t n)
{
    assert_true(n <= 16);
    return brute_from(ops, n, 0, 0) ? LIN_OK : LIN_VIOLATION;
}

/* Check a hand-written history; single-key ones small enough are also put to the oracle, so
 * the expectation written in the test is itself checked. */
static struct lin_report expect(const struct lin_op *ops, size_t n, int want)
{
    struct lin_report rep;
    int got = lin_check(ops, n, 0, &rep);
    if (got != want)
        fail_msg("lin_check returned %d, expected %d (%s)", got, want, rep.detail);
    bool one_key = true;
    for (size_t i = 1; i < n; i++)
        one_key = one_key && ops[i].key == ops[0].key;
    if (one_key && n <= 10)
        assert_int_equal(brute_check(ops, n), want);
    if (want == LIN_VIOLATION) {
        assert_true(rep.bad_op < n);
        assert_true(rep.detail[0] != '\0');
    }
    return rep;
}

#define EXPECT(want, ...)                                                                          \
    do {                                                                                           \
        const struct lin_op h_[] = {__VA_ARGS__};                                                  \
        expect(h_, sizeof h_ / sizeof h_[0], want);                                                \
    } while (0)

/* Seeded xorshift generator; the seed is reported on failure and RAFTFS_SEED replays it. */
struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return rng_next(r) % n;
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    if (r->s == 0)
        r->s = 1;
    for (int i = 0; i < 4; i++)
        rng_next(r);
}

static uint64_t base_seed(void)
{
    const char *s = getenv("RAFTFS_SEED");
    return s && *s ? strtoull(s, NULL, 10) : 1;
}

/* --- known-good histories ------------------------------------------------------------------ */

static void sequential(void **state)
{
    (void)state;
    EXPECT(LIN_OK, R(0, 0, 0, 1), W(0, 1, 2, 3), R(0, 1, 4, 5), W(0, 2, 6, 7), R(0, 2, 8, 9),
           R(0, 2, 10, 11), W(0, 3, 12, 13), R(0, 3, 14, 15));
    EXPECT(LIN_OK); /* the empty history */
}

static void concurrent_orderable(void **state)
{
    (void)state;
    /* W2 then R->2 then W1 then both reads of 1. */
    EXPECT(LIN_OK, W(0, 1, 0, 50), W(0, 2, 10, 60), R(0, 2, 20, 30), R(0, 1, 40, 70),
           R(0, 1, 80, 90));
    /* A read overlapping a write may see either value. */
    EXPECT(LIN_OK, W(0, 1, 0, 10), W(0, 2, 20, 40), R(0, 1, 25, 30), R(0, 2, 26, 35),
           R(0, 2, 50, 60));
    /* Responses given in an order unrelated to the calls; input order is irrelevant. */
    EXPECT(LIN_OK, R(0, 3, 40, 45), W(0, 3, 5, 50), W(0, 1, 0, 10), R(0, 1, 11, 12));
    /* Touching at one instant counts as concurrent. */
    EXPECT(LIN_OK, W(0, 1, 0, 10), R(0, 0, 10, 20));
    /* The same value written twice (values need not be unique). */
    EXPECT(LIN_OK, W(0, 1, 0, 10), W(0, 2, 20, 30), W(0, 1, 40, 50), R(0, 1, 60, 70),
           W(0, 0, 80, 90), R(0, 0, 100, 110));
}

static void unknown_outcome_writes(void **state)
{
    (void)state;
    /* Took effect before a read saw it. */
    EXPECT(LIN_OK, W(0, 1, 0, 10), W(0, 2, 20, NEVER), R(0, 2, 30, 40));
    /* Took effect late: one read misses it, a later one sees it. */
    EXPECT(LIN_OK, W(0, 1, 0, 10), W(0, 2, 20, NEVER), R(0, 1, 30, 40), R(0, 2, 500, 510));
    /* Never took effect. */
    EXPECT(LIN_OK, W(0, 1, 0, 10), W(0, 2, 20, NEVER), R(0, 1, 30, 40), R(0, 1, 50, 60));
    /* Took effect and was overwritten before anyone looked. */
    EXPECT(LIN_OK, W(0, 2, 0, NEVER), W(0, 3, 10, 20), R(0, 3, 30, 40));
    /* Two unknown writes, seen in the order opposite to their calls. */
    EXPECT(LIN_OK, W(0, 1, 0, NEVER), W(0, 2, 5, NEVER), R(0, 2, 10, 20), R(0, 1, 30, 40));
    /* Only writes of unknown outcome: nothing to linearize. */
    EXPECT(LIN_OK, W(0, 1, 0, NEVER), W(0, 2, 0, NEVER));
}

static void reads_of_initial_zero(void **state)
{
    (void)state;
    EXPECT(LIN_OK, R(0, 0, 0, 10), W(0, 1, 5, 15), R(0, 0, 6, 12), R(0, 1, 20, 30));
    EXPECT(LIN_OK, R(7, 0, 0, 1), R(7, 0, 2, 3));
}

static void many_keys(void **state)
{
    (void)state;
    struct lin_op ops[64 * 4];
    size_t n = 0;
    for (uint32_t k = 0; k < 64; k++) {
        uint64_t t = k % 7;
        ops[n++] = W(k, 100 + k, t, t + 10);
        ops[n++] = R(k, 100 + k, t + 20, t + 30);
        ops[n++] = W(k, 200 + k, t + 25, t + 40); /* overlaps the read: may come after it */
        ops[n++] = R(k, 200 + k, t + 50, t + 60);
    }
    expect(ops, n, LIN_OK);
}

/* --- known-bad histories ------------------------------------------------------------------- */

static void stale_read(void **state)
{
    (void)state;
    EXPECT(LIN_VIOLATION, W(0, 1, 0, 10), R(0, 0, 20, 30));
    EXPECT(LIN_VIOLATION, W(0, 1, 0, 10), W(0, 2, 20, 30), R(0, 1, 40, 50));
    /* One instant later than the concurrent case above, it is stale. */
    EXPECT(LIN_VIOLATION, W(0, 1, 0, 10), R(0, 0, 11, 20));
    /* A repeated value does not excuse a read of the overwritten one. */
    EXPECT(LIN_VIOLATION, W(0, 1, 0, 10), R(0, 1, 20, 30), W(0, 2, 40, 50), R(0, 1, 60, 70));
}

static void read_of_unwritten_value(void **state)
{
    (void)state;
    EXPECT(LIN_VIOLATION, W(0, 1, 0, 10), R(0, 7, 5, 15));
    EXPECT(LIN_VIOLATION, R(0, 7, 0, 1));
}

static void non_monotonic_reads(void **state)
{
    (void)state;
    struct lin_op h[] = {W(0, 1, 0, 10), W(0, 2, 0, 10), R(0, 2, 20, 30), R(0, 1, 40, 50)};
    struct lin_report rep = expect(h, 4, LIN_VIOLATION);
    assert_int_equal(rep.key, 0);
    assert_int_equal(rep.n_ops, 4);
    /* Which operation the search names depends on where its deepest branch died; the report
     * must at least name it consistently. */
    char want[32];
    snprintf(want, sizeof want, "op #%zu ", rep.bad_op);
    assert_non_null(strstr(rep.detail, want));
}

static void cyclic_reads(void **state)
{
    (void)state;
    /* Client x sees 1 then 2, so W1 < W2; client y sees 2 then 1, so W2 < W1. */
    EXPECT(LIN_VIOLATION, W(0, 1, 0, 100), W(0, 2, 0, 100), R(0, 1, 10, 20), R(0, 2, 30, 40),
           R(0, 2, 10, 20), R(0, 1, 30, 40));
}

static void read_from_the_future(void **state)
{
    (void)state;
    EXPECT(LIN_VIOLATION, R(0, 5, 0, 10), W(0, 5, 20, 30));
    /* An unknown outcome takes effect after its call, never before. */
    EXPECT(LIN_VIOLATION, R(0, 9, 0, 5), W(0, 9, 10, NEVER));
}

static void one_bad_key_among_many(void **state)
{
    (void)state;
    struct lin_op ops[40 * 3];
    size_t n = 0, bad;
    for (uint32_t k = 0; k < 40; k++) {
        /* Concurrent writes, so a read of either is fine... */
        ops[n++] = W(k, k + 1, 0, 10);
        ops[n++] = W(k, k + 100, 5, 15);
        ops[n++] = R(k, k % 2 ? k + 1 : k + 100, 20, 30);
    }
    /* ...except on key 17, where W18 strictly precedes W117, so the read of 18 is stale. */
    ops[17 * 3 + 1] = W(17, 117, 12, 15);
    bad = 17 * 3 + 2;
    struct lin_report rep = expect(ops, n, LIN_VIOLATION);
    assert_int_equal(rep.key, 17);
    assert_int_equal(rep.n_ops, 3);
    assert_true(rep.bad_op >= 17 * 3 && rep.bad_op <= bad);
}

/* --- inputs, reports and budget ------------------------------------------------------------ */

static void malformed_history(void **state)
{
    (void)state;
    struct lin_op h[] = {W(0, 1, 0, 10), R(3, 1, 20, 19)};
    struct lin_report rep;
    assert_int_equal(lin_check(h, 2, 0, &rep), LIN_BAD_HISTORY);
    assert_int_equal(rep.bad_op, 1);
    assert_int_equal(rep.key, 3);
    h[1] = (struct lin_op){.kind = 0, .call = 1, .ret = 2};
    assert_int_equal(lin_check(h, 2, 0, NULL), LIN_BAD_HISTORY);
    /* A read without a response is accepted and constrains nothing. */
    h[1] = R(0, 42, 1, NEVER);
    assert_int_equal(lin_check(h, 2, 0, NULL), LIN_OK);
}

/* k writes of distinct values, all concurrent, then reads of two of them in an impossible
 * order: every interleaving of the writes must be refuted, 2^k subsets with memoization. */
static size_t pathological(struct lin_op *ops, size_t k)
{
    size_t n = 0;
    for (size_t i = 0; i < k; i++)
        ops[n++] = W(0, i + 1, 0, 100);
    ops[n++] = R(0, 5, 200, 210);
    ops[n++] = R(0, 6, 220, 230);
    return n;
}

static void budget_exhausted(void **state)
{
    (void)state;
    struct lin_op ops[32];
    struct lin_report rep;
    size_t n = pathological(ops, 24);
    assert_int_equal(lin_check(ops, n, 1000, &rep), LIN_GAVE_UP);
    assert_int_equal(rep.steps, 1000);
    assert_int_equal(rep.key, 0);
    assert_non_null(strstr(rep.detail, "budget"));

    /* Small enough to finish: a violation, and it needed more than a tiny budget. */
    n = pathological(ops, 10);
    assert_int_equal(lin_check(ops, n, 0, &rep), LIN_VIOLATION);
    assert_true(rep.steps > 1000);
    uint64_t needed = rep.steps;
    assert_int_equal(lin_check(ops, n, needed, &rep), LIN_VIOLATION);
    assert_int_equal(lin_check(ops, n, needed - 1, &rep), LIN_GAVE_UP);
}

/* --- against the brute-force oracle -------------------------------------------------------- */

static void agrees_with_brute_force(void **state)
{
    (void)state;
    uint64_t seed = base_seed();
    size_t n_ok = 0, n_bad = 0;
    for (int iter = 0; iter < 3000; iter++, seed++) {
        struct rng r;
        rng_seed(&r, seed);
        struct lin_op ops[8];
        size_t n = 1 + rng_below(&r, 8);
        for (size_t i = 0; i < n; i++) {
            uint64_t call = rng_below(&r, 12);
            uint64_t ret = call + rng_below(&r, 8);
            uint64_t v = rng_below(&r, 4);
            if (rng_below(&r, 2))
                ops[i] = W(0, v, call, rng_below(&r, 5) == 0 ? NEVER : ret);
            else
                ops[i] = R(0, v, call, ret);
        }
        struct lin_report rep;
        int got = lin_check(ops, n, 0, &rep);
        int want = brute_check(ops, n);
        if (got != want)
            fail_msg("seed %llu: lin_check %d, brute force %d (%s); replay with RAFTFS_SEED=%llu",
                     (unsigned long long)seed, got, want, rep.detail, (unsigned long long)seed);
        if (want == LIN_OK)
            n_ok++;
        else
            n_bad++;
    }
    /* Both outcomes were exercised, or the comparison proves little. */
    assert_true(n_ok > 300);
    assert_true(n_bad > 300);
}

/* --- generated from linearizable executions ------------------------------------------------ */

struct gen_params {
    size_t n_ops;
    size_t n_clients;
    uint32_t n_keys;
    uint64_t domain;    /* write values drawn from 0..domain; 0: unique values */
    unsigned never_pct; /* percentage of writes whose outcome is unknown */
    uint64_t max_len;   /* longest operation, in time units */
};

#define NO_POINT UINT64_MAX

static int cmp_point(const void *a, const void *b, void *ctx)
{
    const uint64_t *point = ctx;
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    if (point[x] != point[y])
        return point[x] < point[y] ? -1 : 1;
    return (x > y) - (x < y);
}

/* Run clients against a register per key: every operation takes effect at a point strictly
 * inside its interval (calls and returns at even times, points at odd ones), or, for a write of
 * unknown outcome, at any point after its call or not at all. Reads return what the register
 * held at their point, so the history is linearizable by construction. ops holds n_ops. */
static void generate(struct rng *r, const struct gen_params *p, struct lin_op *ops)
{
    uint64_t *point = malloc(p->n_ops * sizeof *point);
    size_t *order = malloc(p->n_ops * sizeof *order);
    uint64_t *reg = calloc(p->n_keys, sizeof *reg);
    uint64_t *clock = calloc(p->n_clients, sizeof *clock);
    assert_non_null(point);
    assert_non_null(order);
    assert_non_null(reg);
    assert_non_null(clock);
    for (size_t i = 0; i < p->n_ops; i++) {
        size_t c = rng_below(r, p->n_clients);
        uint64_t call = clock[c] + 2 * rng_below(r, 3);
        uint64_t len = 2 * (1 + rng_below(r, p->max_len / 2 + 1));
        uint32_t key = (uint32_t)rng_below(r, p->n_keys);
        struct lin_op *o = &ops[i];
        *o = (struct lin_op){.client = c, .key = key, .call = call, .ret = call + len};
        point[i] = call + 1 + 2 * rng_below(r, len / 2);
        if (rng_below(r, 2)) {
            o->kind = LIN_WRITE;
            o->value = p->domain ? rng_below(r, p->domain + 1) : i + 1;
            if (rng_below(r, 100) < p->never_pct) {
                o->ret = NEVER;
                point[i] = rng_below(r, 2) ? call + 1 + 2 * rng_below(r, 4 * p->max_len) : NO_POINT;
            }
        } else {
            o->kind = LIN_READ;
        }
        clock[c] = call + len; /* the next call, even after a timeout */
        order[i] = i;
    }
    qsort_r(order, p->n_ops, sizeof *order, cmp_point, point);
    for (size_t j = 0; j < p->n_ops && point[order[j]] != NO_POINT; j++) {
        struct lin_op *o = &ops[order[j]];
        if (o->kind == LIN_WRITE)
            reg[o->key] = o->value;
        else
            o->value = reg[o->key];
    }
    free(point);
    free(order);
    free(reg);
    free(clock);
}

/* Make one read impossible: give it a value every write of which was called after the read
 * returned (or a value never written). The read must take effect before it returns, and then
 * no write of that value has yet been called, and the initial 0 is excluded. Returns the
 * index of the read changed, or SIZE_MAX if there is no read. */
static size_t mutate(struct rng *r, const struct gen_params *p, struct lin_op *ops)
{
    size_t n = p->n_ops, start = rng_below(r, n);
    size_t first_read = SIZE_MAX;
    for (size_t d = 0; d < n; d++) {
        size_t i = (start + d) % n;
        if (ops[i].kind != LIN_READ)
            continue;
        if (first_read == SIZE_MAX)
            first_read = i;
        /* Candidate values: those of writes to the key called after the read returned. */
        for (size_t d2 = 0; d2 < n; d2++) {
            const struct lin_op *w = &ops[(start + d2) % n];
            if (w->kind != LIN_WRITE || w->key != ops[i].key || w->call <= ops[i].ret ||
                w->value == 0)
                continue;
            bool all_later = true;
            for (size_t j = 0; j < n && all_later; j++)
                if (ops[j].kind == LIN_WRITE && ops[j].key == w->key && ops[j].value == w->value &&
                    ops[j].call <= ops[i].ret)
                    all_later = false;
            if (all_later) {
                ops[i].value = w->value;
                return i;
            }
        }
    }
    if (first_read != SIZE_MAX)
        ops[first_read].value = (p->domain ? p->domain : n) + 1000; /* never written */
    return first_read;
}

static void shuffle(struct rng *r, struct lin_op *ops, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_below(r, i);
        struct lin_op t = ops[i - 1];
        ops[i - 1] = ops[j];
        ops[j] = t;
    }
}

static void check_generated(const struct gen_params *params, int iters, uint64_t seed_offset)
{
    uint64_t seed = base_seed() + seed_offset;
    for (int iter = 0; iter < iters; iter++, seed++) {
        struct rng r;
        rng_seed(&r, seed);
        struct gen_params p = *params;
        p.n_ops = 1 + rng_below(&r, params->n_ops);
        p.n_clients = 1 + rng_below(&r, params->n_clients);
        p.n_keys = 1 + (uint32_t)rng_below(&r, params->n_keys);
        struct lin_op *ops = malloc(p.n_ops * sizeof *ops);
        assert_non_null(ops);
        generate(&r, &p, ops);

        struct lin_report rep;
        int got = lin_check(ops, p.n_ops, 50 * 1000 * 1000, &rep);
        if (got != LIN_OK)
            fail_msg("seed %llu: generated history of %zu ops: %d (%s); replay with "
                     "RAFTFS_SEED=%llu",
                     (unsigned long long)seed, p.n_ops, got, rep.detail,
                     (unsigned long long)(seed - seed_offset));

        size_t bad = mutate(&r, &p, ops);
        if (bad != SIZE_MAX) {
            uint32_t bad_key = ops[bad].key;
            shuffle(&r, ops, p.n_ops);
            got = lin_check(ops, p.n_ops, 50 * 1000 * 1000, &rep);
            if (got != LIN_VIOLATION || rep.key != bad_key)
                fail_msg("seed %llu: mutated history: %d on key %u, expected a violation on "
                         "key %u (%s); replay with RAFTFS_SEED=%llu",
                         (unsigned long long)seed, got, (unsigned)rep.key, (unsigned)bad_key,
                         rep.detail, (unsigned long long)(seed - seed_offset));
        }
        free(ops);
    }
}

static void generated_unique_values(void **state)
{
    (void)state;
    struct gen_params p = {
        .n_ops = 400, .n_clients = 12, .n_keys = 8, .never_pct = 10, .max_len = 40};
    check_generated(&p, 300, 0);
}

static void generated_repeated_values(void **state)
{
    (void)state;
    struct gen_params p = {
        .n_ops = 200, .n_clients = 6, .n_keys = 4, .domain = 3, .never_pct = 10, .max_len = 20};
    check_generated(&p, 300, 1000000);
}

/* The simulator's common case: one busy key, unique values, high concurrency. It must stay
 * near-linear; the step bound is far above what the search needs and far below blow-up. */
static void busy_key_is_cheap(void **state)
{
    (void)state;
    struct gen_params p = {
        .n_ops = 200, .n_clients = 16, .n_keys = 1, .never_pct = 5, .max_len = 30};
    uint64_t worst = 0;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct rng r;
        rng_seed(&r, seed);
        struct lin_op ops[200];
        generate(&r, &p, ops);
        struct lin_report rep;
        assert_int_equal(lin_check(ops, p.n_ops, 0, &rep), LIN_OK);
        if (rep.steps > worst)
            worst = rep.steps;
    }
    print_message("busy key: worst %llu steps for 200 ops\n", (unsigned long long)worst);
    assert_true(worst < 200 * 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sequential),
        cmocka_unit_test(concurrent_orderable),
        cmocka_unit_test(unknown_outcome_writes),
        cmocka_unit_test(reads_of_initial_zero),
        cmocka_unit_test(many_keys),
        cmocka_unit_test(stale_read),
        cmocka_unit_test(read_of_unwritten_value),
        cmocka_unit_test(non_monotonic_reads),
        cmocka_unit_test(cyclic_reads),
        cmocka_unit_test(read_from_the_future),
        cmocka_unit_test(one_bad_key_among_many),
        cmocka_unit_test(malformed_history),
        cmocka_unit_test(budget_exhausted),
        cmocka_unit_test(agrees_with_brute_force),
        cmocka_unit_test(generated_unique_values),
        cmocka_unit_test(generated_repeated_values),
        cmocka_unit_test(busy_key_is_cheap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
