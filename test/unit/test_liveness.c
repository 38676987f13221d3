/* The leader's session liveness rules (fs/node/liveness.c) on injected time: the timeout counted
 * from the last frame and from the start of the leadership, the leader's own session, the
 * lock-delay and the final end, one proposal in flight per session, and the node's own
 * deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fs/node/liveness.h"

#define TIMEOUT 2000
#define DELAY   1000

static const struct store_fsm_time wall0 = {.sec = 100, .nsec = 0};

/* Sessions 10 (node 1, this leader), 20 (node 2), 30 (node 3), all live. */
static const struct fs_liveness_session live[] = {
    {.id = 10, .node = 1}, {.id = 20, .node = 2}, {.id = 30, .node = 3}};

static size_t decide(struct fs_liveness *lv, uint64_t now, const struct fs_liveness_peer *peers,
                     size_t n_peers, struct fs_liveness_end *out)
{
    return fs__liveness_decide(lv, now, wall0, peers, n_peers, live, 3, out, 8);
}

static void test_follower_ends_nothing(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, false, 5, 0);
    struct fs_liveness_end out[8];
    assert_int_equal(decide(&lv, 1000000, NULL, 0, out), 0);
}

/* A new leader that never heard from nodes 2 and 3 waits a full timeout from taking office. */
static void test_grace_from_office(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 50000);
    struct fs_liveness_end out[8];
    assert_int_equal(decide(&lv, 50000 + TIMEOUT - 1, NULL, 0, out), 0);
    /* Seeing the same leadership again does not restart the grace period. */
    fs__liveness_role(&lv, true, 5, 50000 + TIMEOUT - 1);
    assert_int_equal(decide(&lv, 50000 + TIMEOUT, NULL, 0, out), 2);
    assert_int_equal(out[0].session, 20);
    assert_int_equal(out[0].delay_ms, DELAY);
    assert_false(out[0].is_final);
    assert_int_equal(out[1].session, 30);
}

/* Frames heard before the leadership began do not shorten the grace period. */
static void test_old_frames_do_not_shorten_grace(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 10000);
    struct fs_liveness_peer peers[] = {{2, 60000}, {3, 60000}}; /* silent for a minute */
    struct fs_liveness_end out[8];
    assert_int_equal(decide(&lv, 10000 + TIMEOUT - 1, peers, 2, out), 0);
    assert_int_equal(decide(&lv, 10000 + TIMEOUT, peers, 2, out), 2);
}

/* Once in office, each node's silence counts from its last frame. */
static void test_silence_from_last_frame(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 0);
    struct fs_liveness_end out[8];
    struct fs_liveness_peer peers[] = {{1, 0}, {2, 30}, {3, TIMEOUT - 1}};
    assert_int_equal(decide(&lv, 100000, peers, 3, out), 0);
    peers[2].silent_ms = TIMEOUT;
    assert_int_equal(decide(&lv, 100000, peers, 3, out), 1);
    assert_int_equal(out[0].session, 30);
    assert_int_equal(out[0].delay_ms, DELAY);
}

/* The leader's own session is never ended, however its peer entry reads. */
static void test_own_session_kept(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 2, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 0);
    struct fs_liveness_peer peers[] = {{1, UINT64_MAX}, {2, UINT64_MAX}, {3, 0}};
    struct fs_liveness_end out[8];
    assert_int_equal(decide(&lv, 100000, peers, 3, out), 1);
    assert_int_equal(out[0].session, 10);
}

/* One SESSION_END per session in flight; after its completion it may be decided again. */
static void test_one_in_flight(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 0);
    struct fs_liveness_end out[8];
    assert_int_equal(decide(&lv, TIMEOUT, NULL, 0, out), 2);
    assert_int_equal(decide(&lv, TIMEOUT + 100, NULL, 0, out), 0);
    fs__liveness_done(&lv, 30);
    assert_int_equal(decide(&lv, TIMEOUT + 200, NULL, 0, out), 1);
    assert_int_equal(out[0].session, 30);
    fs__liveness_done(&lv, 99); /* unknown: nothing changes */
    assert_int_equal(decide(&lv, TIMEOUT + 300, NULL, 0, out), 0);
}

/* An ENDED session is ended for good once the wall clock reaches its delay end, whichever node
 * it belongs to, and with no new lock-delay. */
static void test_final_end_after_delay(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 0);
    struct fs_liveness_session ended[] = {
        {.id = 10, .node = 1, .is_ended = true, .delay_until = {100, 500000000}},
        {.id = 20, .node = 2, .is_ended = true, .delay_until = {101, 0}}};
    struct fs_liveness_end out[8];
    struct store_fsm_time before = {100, 499999999}, at = {100, 500000000}, later = {101, 1};
    assert_int_equal(fs__liveness_decide(&lv, 0, before, NULL, 0, ended, 2, out, 8), 0);
    assert_int_equal(fs__liveness_decide(&lv, 0, at, NULL, 0, ended, 2, out, 8), 1);
    assert_int_equal(out[0].session, 10);
    assert_true(out[0].is_final);
    assert_int_equal(out[0].delay_ms, 0);
    assert_int_equal(fs__liveness_decide(&lv, 0, later, NULL, 0, ended, 2, out, 8), 1);
    assert_int_equal(out[0].session, 20);
}

/* A new term, or leading again after following, is a new leadership with its own grace. */
static void test_new_term_restarts_grace(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, 0);
    fs__liveness_role(&lv, true, 5, 0);
    fs__liveness_role(&lv, true, 6, 5000);
    struct fs_liveness_end out[8];
    assert_int_equal(decide(&lv, 5000 + TIMEOUT - 1, NULL, 0, out), 0);
    fs__liveness_role(&lv, false, 6, 6000);
    fs__liveness_role(&lv, true, 6, 9000);
    assert_int_equal(decide(&lv, 9000 + TIMEOUT - 1, NULL, 0, out), 0);
    assert_int_equal(decide(&lv, 9000 + TIMEOUT, NULL, 0, out), 2);
    assert_int_equal(out[0].delay_ms, 0); /* lock-delay 0 */
}

/* The output is bounded by cap; the rest waits for the next pass. */
static void test_cap(void **state)
{
    (void)state;
    struct fs_liveness lv;
    fs__liveness_init(&lv, 1, TIMEOUT, DELAY);
    fs__liveness_role(&lv, true, 5, 0);
    struct fs_liveness_end out[1];
    assert_int_equal(fs__liveness_decide(&lv, TIMEOUT, wall0, NULL, 0, live, 3, out, 1), 1);
    assert_int_equal(out[0].session, 20);
    assert_int_equal(fs__liveness_decide(&lv, TIMEOUT, wall0, NULL, 0, live, 3, out, 1), 1);
    assert_int_equal(out[0].session, 30);
}

/* The node's own deadline plus the longest probe it counts stay below seven eighths of the
 * leader's timeout (docs/fs.md, "Session liveness"). */
static void test_self_deadline(void **state)
{
    (void)state;
    assert_int_equal(fs__liveness_self_ms(10000), 7499);
    assert_int_equal(fs__liveness_probe_ms(10000), 1250);
    assert_int_equal(fs__liveness_self_ms(2000), 1499);
    assert_int_equal(fs__liveness_probe_ms(2000), 250);
    for (unsigned t = 1; t < 100000; t += 7) {
        uint64_t self = fs__liveness_self_ms(t), probe = fs__liveness_probe_ms(t);
        assert_true(self < t);
        assert_true((self + probe) * 8 < (uint64_t)t * 7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_follower_ends_nothing),
        cmocka_unit_test(test_grace_from_office),
        cmocka_unit_test(test_old_frames_do_not_shorten_grace),
        cmocka_unit_test(test_silence_from_last_frame),
        cmocka_unit_test(test_own_session_kept),
        cmocka_unit_test(test_one_in_flight),
        cmocka_unit_test(test_final_end_after_delay),
        cmocka_unit_test(test_new_term_restarts_grace),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_self_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
