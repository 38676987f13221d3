/* The lock session's seam with the locks above it (fs/node/session.c), before any session is
 * open and without a runtime: requests are refused without being recorded, and the hooks that
 * fail parked requests run only for a session that was the node's. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fs/node/session.h"

struct calls {
    int detach, fail, request;
};

static void *count_detach(void *arg, uint64_t session)
{
    (void)session;
    ((struct calls *)arg)->detach++;
    return NULL;
}

static void count_fail(void *arg, void *detached)
{
    (void)detached;
    ((struct calls *)arg)->fail++;
}

static int count_request(void *arg, uint64_t session, uint64_t request)
{
    (void)session;
    (void)request;
    ((struct calls *)arg)->request++;
    return 0;
}

static struct fs_session *new_session(struct calls *c)
{
    struct fs_session_hooks hooks = {.detach = count_detach, .fail = count_fail, .arg = c};
    struct fs_session *s = NULL;
    assert_int_equal(fs_session_new(3, NULL, NULL, &hooks, &s), 0);
    assert_non_null(s);
    return s;
}

static void test_no_session_refuses_requests(void **state)
{
    (void)state;
    struct calls c = {0};
    struct fs_session *s = new_session(&c);
    assert_int_equal(fs_session_id(s), 0);
    assert_int_equal(fs_session_request(s, count_request, &c), ENOLCK);
    assert_int_equal(c.request, 0); /* nothing parked on a session that is not open */
    struct fs_locks_local local;
    fs_session_local(s, &local);
    assert_int_equal(local.state, FS_LOCKS_OPENING);
    assert_int_equal(local.session, 0);
    assert_false(fs_session_is_lost(s));
    fs_session_free(s);
}

static void test_give_up_of_another_session(void **state)
{
    (void)state;
    struct calls c = {0};
    struct fs_session *s = new_session(&c);
    /* Not the node's session (none is open): nothing is lost, no request is failed. */
    fs_session_give_up(s, 5, "the state machine refused a lock request: it has ended");
    fs_session_give_up(s, 0, "none");
    assert_int_equal(c.detach, 0);
    assert_int_equal(c.fail, 0);
    assert_false(fs_session_is_lost(s));
    struct fs_locks_local local;
    fs_session_local(s, &local);
    assert_int_equal(local.state, FS_LOCKS_OPENING);
    fs_session_free(s);
}

static void test_stop_without_start(void **state)
{
    (void)state;
    struct calls c = {0};
    struct fs_session *s = new_session(&c);
    fs_session_stop(s); /* no keeper: nothing can be parked, nothing to fail */
    assert_int_equal(c.detach, 0);
    assert_int_equal(c.fail, 0);
    fs_session_free(s);
    fs_session_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_session_refuses_requests),
        cmocka_unit_test(test_give_up_of_another_session),
        cmocka_unit_test(test_stop_without_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
