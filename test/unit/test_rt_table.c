/* The runtime's table of pending requests (raft/runtime/table.c): found by id, walked oldest
 * first, and the watched ones handed out in the order of the applied index that completes
 * them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "raft/runtime/internal.h"

#define N 1000 /* several doublings of the buckets and the heap */

static struct rt_req reqs[N];

static void make(struct rt_table *t, size_t n, enum rt_req_kind kind)
{
    for (size_t i = 0; i < n; i++) {
        reqs[i] = (struct rt_req){.kind = kind, .id = 1 + i};
        assert_int_equal(rt__table_insert(t, &reqs[i]), 0);
    }
}

static void found_by_id_in_order(void **state)
{
    (void)state;
    struct rt_table t = {0};
    assert_null(rt__table_find(&t, 1));
    make(&t, N, RT_CHANGE);
    assert_int_equal(t.n, N);
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(rt__table_find(&t, 1 + i), &reqs[i]);
    assert_null(rt__table_find(&t, N + 1));
    assert_null(rt__table_find(&t, 0));
    /* Take out every third (the first and the last among them), and the one before last. */
    for (size_t i = 0; i < N; i += 3)
        rt__table_remove(&t, &reqs[i]);
    rt__table_remove(&t, &reqs[N - 2]);
    size_t seen = 0;
    const struct rt_req *prev = NULL;
    for (const struct rt_req *r = t.first; r != NULL; r = r->next, seen++) {
        assert_true(r->id % 3 != 1 && r != &reqs[N - 2]);
        assert_ptr_equal(r->prev, prev);
        if (prev != NULL)
            assert_true(prev->id < r->id);
        assert_ptr_equal(rt__table_find(&t, r->id), r);
        prev = r;
    }
    assert_ptr_equal(t.last, prev);
    assert_int_equal(seen, t.n);
    for (size_t i = 0; i < N; i += 3)
        assert_null(rt__table_find(&t, 1 + i));
    /* A removed request can come back. */
    assert_int_equal(rt__table_insert(&t, &reqs[0]), 0);
    assert_ptr_equal(t.last, &reqs[0]);
    assert_ptr_equal(rt__table_find(&t, 1), &reqs[0]);
    rt__table_free(&t);
}

static void watched_by_applied_index(void **state)
{
    (void)state;
    struct rt_table t = {0};
    make(&t, 6, RT_PROPOSE);
    reqs[0].index = 30;
    reqs[1].index = 10;
    reqs[2].kind = RT_READ;
    reqs[2].read_index = 20;
    reqs[2].is_read_waiting = true;
    reqs[3].kind = RT_CHANGE; /* a change's index is not its completion */
    reqs[3].index = 5;
    reqs[4].index = 25; /* a verify whose checkpoint was applied */
    reqs[4].kind = RT_VERIFY;
    reqs[4].is_verifying = true;
    /* reqs[5]: no index yet */
    for (size_t i = 0; i < 6; i++)
        rt__table_update(&t, &reqs[i]);
    assert_null(rt__table_applied(&t, 9));
    assert_ptr_equal(rt__table_applied(&t, 10), &reqs[1]);
    rt__table_remove(&t, &reqs[1]);
    assert_ptr_equal(rt__table_applied(&t, 100), &reqs[2]);
    /* A watched request taken out is no longer handed out. */
    rt__table_remove(&t, &reqs[2]);
    /* Its index changes: it moves. */
    reqs[0].index = 15;
    rt__table_update(&t, &reqs[0]);
    reqs[5].index = 12;
    rt__table_update(&t, &reqs[5]);
    assert_ptr_equal(rt__table_applied(&t, 100), &reqs[5]);
    rt__table_remove(&t, &reqs[5]);
    assert_ptr_equal(rt__table_applied(&t, 100), &reqs[0]);
    rt__table_remove(&t, &reqs[0]);
    assert_null(rt__table_applied(&t, UINT64_MAX)); /* the change and the verify are left */
    assert_int_equal(t.n, 2);
    rt__table_free(&t);
}

/* Random updates and removals against a plain scan. */
static void heap_matches_a_scan(void **state)
{
    (void)state;
    struct rt_table t = {0};
    make(&t, N, RT_PROPOSE);
    bool in[N];
    for (size_t i = 0; i < N; i++)
        in[i] = true;
    uint64_t x = 88172645463325252ull; /* xorshift, fixed: the test is deterministic */
    for (int round = 0; round < 20000; round++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t i = (size_t)(x % N);
        if (!in[i])
            continue;
        if ((x >> 20) % 8 == 0) {
            rt__table_remove(&t, &reqs[i]);
            in[i] = false;
        } else {
            reqs[i].index = (x >> 32) % 500; /* 0: not watched */
            rt__table_update(&t, &reqs[i]);
        }
    }
    for (uint64_t applied = 0; applied < 500; applied += 7) {
        struct rt_req *r;
        while ((r = rt__table_applied(&t, applied)) != NULL) {
            assert_true(r->index != 0 && r->index <= applied);
            rt__table_remove(&t, r);
            in[r - reqs] = false;
        }
        for (size_t i = 0; i < N; i++)
            if (in[i])
                assert_true(reqs[i].index == 0 || reqs[i].index > applied);
    }
    rt__table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(found_by_id_in_order),
        cmocka_unit_test(watched_by_applied_index),
        cmocka_unit_test(heap_matches_a_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
