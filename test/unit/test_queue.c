/* lib/queue.h: first in, first out, splices keep the order, an emptied queue is reusable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lib/queue.h"

struct item {
    int value;
    struct rfs_qlink link; /* not first: RFS_QUEUE_ITEM must subtract its offset */
};

static int pop_value(struct rfs_queue *q)
{
    struct rfs_qlink *l = rfs_queue_pop(q);
    assert_non_null(l);
    assert_null(l->next);
    return RFS_QUEUE_ITEM(l, struct item, link)->value;
}

static void fifo_order(void **state)
{
    (void)state;
    struct rfs_queue q = {0};
    struct item it[5];
    assert_true(rfs_queue_is_empty(&q));
    assert_null(rfs_queue_pop(&q));
    for (int i = 0; i < 5; i++) {
        it[i].value = i;
        rfs_queue_push(&q, &it[i].link);
    }
    assert_false(rfs_queue_is_empty(&q));
    int seen = 0;
    for (struct rfs_qlink *l = q.head; l != NULL; l = l->next)
        assert_int_equal(RFS_QUEUE_ITEM(l, struct item, link)->value, seen++);
    assert_int_equal(seen, 5);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pop_value(&q), i);
    /* Pushing after pops appends behind what is left. */
    rfs_queue_push(&q, &it[0].link);
    assert_int_equal(pop_value(&q), 3);
    assert_int_equal(pop_value(&q), 4);
    assert_int_equal(pop_value(&q), 0);
    assert_true(rfs_queue_is_empty(&q));
    assert_null(q.tail);
    assert_null(rfs_queue_pop(&q));
    /* The emptied queue takes items again. */
    rfs_queue_push(&q, &it[2].link);
    assert_ptr_equal(q.head, q.tail);
    assert_int_equal(pop_value(&q), 2);
}

static void splice_keeps_order(void **state)
{
    (void)state;
    struct rfs_queue a = {0}, b = {0};
    struct item it[6];
    for (int i = 0; i < 6; i++) {
        it[i].value = i;
        rfs_queue_push(i < 2 ? &a : &b, &it[i].link);
    }
    rfs_queue_splice(&a, &b);
    assert_true(rfs_queue_is_empty(&b));
    assert_null(b.tail);
    /* Splicing an empty queue changes nothing. */
    rfs_queue_splice(&a, &b);
    /* Into an empty queue: it takes everything. */
    rfs_queue_splice(&b, &a);
    assert_true(rfs_queue_is_empty(&a));
    struct item last = {.value = 6};
    rfs_queue_push(&b, &last.link); /* the tail followed the splice */
    for (int i = 0; i < 7; i++)
        assert_int_equal(pop_value(&b), i);
    assert_true(rfs_queue_is_empty(&b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_order),
        cmocka_unit_test(splice_keeps_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
