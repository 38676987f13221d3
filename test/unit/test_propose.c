/* Proposing and the outcome of proposals (fs/node/propose.c), without a runtime: the errno of
 * every kind of completion, the copy of the state machine's result, and the refusals that
 * happen before anything reaches the runtime. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fs/node/propose.h"
#include "lib/error.h"
#include "store/command.h"
#include "store/fsm.h"

/* A completion as fs/node/replica.c hands it over: a malloc'd struct store_fsm_result. */
static struct raft_apply_result applied(int err, const struct store_fsm_result *res)
{
    struct store_fsm_result *copy = malloc(sizeof *copy);
    assert_non_null(copy);
    *copy = *res;
    return (struct raft_apply_result){.status = err, .data = copy, .len = sizeof *copy};
}

static void test_runtime_codes(void **state)
{
    (void)state;
    /* The cluster cannot commit now: writes are refused as on a read-only filesystem. */
    assert_int_equal(fs__proposal_result(RAFT_ENOTLEADER, NULL, NULL), EROFS);
    assert_int_equal(fs__proposal_result(RAFT_ETIMEDOUT, NULL, NULL), EROFS);
    assert_int_equal(fs__proposal_result(RAFT_ELEADERSHIPLOST, NULL, NULL), EROFS);
    assert_int_equal(fs__proposal_result(RAFT_ENOTAPPLIED, NULL, NULL), EROFS);
    assert_int_equal(fs__proposal_result(RAFT_ESHUTDOWN, NULL, NULL), EROFS);
    assert_int_equal(fs__proposal_result(RAFT_ETOOBIG, NULL, NULL), EFBIG);
    assert_int_equal(fs__proposal_result(RAFT_ENOMEM, NULL, NULL), ENOMEM);
    assert_int_equal(fs__proposal_result(RAFT_ESTORAGE, NULL, NULL), EIO);
    /* A failed completion never fills out, even when asked to. */
    struct store_fsm_result out = {.session = 99};
    assert_int_equal(fs__proposal_result(RAFT_ETIMEDOUT, NULL, &out), EROFS);
    assert_int_equal(out.session, 99);
}

static void test_state_machine_errno(void **state)
{
    (void)state;
    struct store_fsm_result res = {.err = ENOENT};
    struct raft_apply_result r = applied(ENOENT, &res);
    struct store_fsm_result out = {.ino = 5};
    assert_int_equal(fs__proposal_result(0, &r, &out), ENOENT);
    assert_int_equal(out.ino, 5); /* untouched */
    /* A store failure is not an errno: EIO. */
    r = applied(RFS_EIO, &res);
    assert_int_equal(fs__proposal_result(0, &r, NULL), EIO);
}

static void test_result_copied(void **state)
{
    (void)state;
    struct store_fsm_result res = {.ino = 42, .session = 7, .written = 4096, .lock_queued = true};
    struct raft_apply_result r = applied(0, &res);
    struct store_fsm_result out = {0};
    assert_int_equal(fs__proposal_result(0, &r, &out), 0);
    assert_int_equal(out.ino, 42);
    assert_int_equal(out.session, 7);
    assert_int_equal(out.written, 4096);
    assert_true(out.lock_queued);
}

static void test_success_without_result(void **state)
{
    (void)state;
    /* A read barrier: status 0 and no data. Fine when only the errno matters... */
    struct raft_apply_result barrier = {0};
    assert_int_equal(fs__proposal_result(0, &barrier, NULL), 0);
    assert_int_equal(fs__proposal_result(0, NULL, NULL), 0);
    /* ...but a caller that needs the state machine's answer cannot reply without it. */
    struct store_fsm_result out;
    assert_int_equal(fs__proposal_result(0, &barrier, &out), EIO);
    /* Data of another type is not taken for a result. */
    struct raft_apply_result odd = {.data = malloc(3), .len = 3};
    assert_non_null(odd.data);
    assert_int_equal(fs__proposal_result(0, &odd, &out), EIO);
}

static void test_read_errno(void **state)
{
    (void)state;
    assert_int_equal(fs__read_errno(ENOENT), ENOENT);
    assert_int_equal(fs__read_errno(ENOTDIR), ENOTDIR);
    assert_int_equal(fs__read_errno(RFS_EIO), EIO);
    assert_int_equal(fs__read_errno(RFS_ENOMEM), EIO);
}

static void never_done(void *arg, int status, struct raft_apply_result *result)
{
    (void)arg;
    (void)status;
    (void)result;
    fail_msg("a refused proposal must not complete");
}

static void test_propose_refusals(void **state)
{
    (void)state;
    /* Refused before the runtime is asked: no runtime is needed to see it. */
    struct store_cmd big = {.type = STORE_CMD_WRITE, .ino = 2, .data_len = STORE_CMD_MAX_ENCODED};
    assert_int_equal(fs__propose(NULL, 1000, &big, never_done, NULL), EFBIG);
    struct store_cmd bad_time = {.type = STORE_CMD_WRITE, .ino = 2, .time_nsec = 1000000000};
    assert_int_equal(fs__propose(NULL, 1000, &bad_time, never_done, NULL), EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_codes), cmocka_unit_test(test_state_machine_errno),
        cmocka_unit_test(test_result_copied), cmocka_unit_test(test_success_without_result),
        cmocka_unit_test(test_read_errno),    cmocka_unit_test(test_propose_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
