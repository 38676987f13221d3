/* lib/heap.h: items come out in order, removal from the middle keeps the order, reserve is the
 * only call that allocates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/heap.h"

#define N 500

struct item {
    unsigned key;
    struct rfs_heap_node node; /* not first: RFS_HEAP_ITEM must subtract its offset */
};

static bool before(const struct rfs_heap_node *a, const struct rfs_heap_node *b)
{
    return RFS_HEAP_ITEM(a, struct item, node)->key < RFS_HEAP_ITEM(b, struct item, node)->key;
}

static unsigned next_key(uint64_t *x)
{
    *x ^= *x << 13; /* xorshift with a fixed seed: deterministic */
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (unsigned)(*x % 1000);
}

static void ordered_with_removals(void **state)
{
    (void)state;
    static struct item it[N];
    struct rfs_heap h;
    rfs_heap_init(&h, before);
    assert_null(rfs_heap_top(&h));
    assert_int_equal(rfs_heap_reserve(&h, N), 0);
    size_t cap = h.cap;
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) {
        it[i].key = next_key(&x);
        it[i].node.pos = SIZE_MAX;
        assert_false(rfs_heap_contains(&it[i].node));
        rfs_heap_push(&h, &it[i].node);
        assert_true(rfs_heap_contains(&it[i].node));
    }
    assert_int_equal(h.cap, cap); /* pushing within the reserve never reallocates */
    assert_int_equal(rfs_heap_reserve(&h, N / 2), 0);
    assert_int_equal(h.cap, cap);
    /* Take out every item whose key is odd, wherever it sits. */
    size_t left = N;
    for (size_t i = 0; i < N; i++)
        if (it[i].key % 2 == 1) {
            rfs_heap_remove(&h, &it[i].node);
            assert_false(rfs_heap_contains(&it[i].node));
            left--;
        }
    assert_int_equal(h.n, left);
    unsigned last = 0;
    for (size_t k = 0; k < left; k++) {
        struct rfs_heap_node *top = rfs_heap_top(&h);
        assert_non_null(top);
        struct item *t = RFS_HEAP_ITEM(top, struct item, node);
        assert_true(t->key % 2 == 0);
        assert_true(t->key >= last);
        last = t->key;
        rfs_heap_remove(&h, top);
    }
    assert_null(rfs_heap_top(&h));
    rfs_heap_free(&h);
    assert_int_equal(h.cap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ordered_with_removals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
