/* raft/runtime/loop.c: timers fire in deadline order and can stop each other, work posted from
 * other threads runs on the loop thread exactly once, rt__loop_stop works from another thread,
 * and a watcher stopped by an earlier callback of the same batch is not called. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "raft/runtime/loop.h"
#include "raft/raft.h"

static struct rt_loop *loop;

static int setup(void **state)
{
    (void)state;
    return rt__loop_new(&loop);
}

static int teardown(void **state)
{
    (void)state;
    rt__loop_free(loop);
    return 0;
}

static int fired[16];
static int n_fired;
static struct rt_timer timers[8];

static void record(struct rt_timer *t)
{
    fired[n_fired++] = (int)(intptr_t)t->data;
    if (t->data == (void *)2)
        rt__timer_stop(&timers[3]); /* due later: must never fire */
}

static void timer_order(void **state)
{
    (void)state;
    n_fired = 0;
    const uint64_t after[] = {30, 10, 20, 40, 20};
    for (int i = 0; i < 5; i++) {
        rt__timer_init(&timers[i]);
        timers[i].data = (void *)(intptr_t)i;
        assert_int_equal(rt__timer_start(loop, &timers[i], after[i], 0, record), 0);
    }
    rt__timer_stop(&timers[0]);
    assert_false(rt__timer_is_active(&timers[0]));
    uint64_t start = rt__loop_now(loop);
    while (n_fired < 3 && rt__loop_now(loop) - start < 2000)
        assert_int_equal(rt__loop_run_once(loop, -1), 0);
    assert_int_equal(n_fired, 3);
    assert_int_equal(fired[0], 1);
    assert_int_equal(fired[1], 2); /* equal deadlines fire in start order */
    assert_int_equal(fired[2], 4);
    assert_true(rt__loop_now(loop) - start >= 20);
    rt__loop_run_once(loop, 60);
    assert_int_equal(n_fired, 3);
    assert_false(rt__timer_is_active(&timers[3]));
}

static void repeating_timer(void **state)
{
    (void)state;
    n_fired = 0;
    rt__timer_init(&timers[5]);
    timers[5].data = (void *)5;
    assert_int_equal(rt__timer_start(loop, &timers[5], 5, 5, record), 0);
    uint64_t start = rt__loop_now(loop);
    while (n_fired < 4 && rt__loop_now(loop) - start < 2000)
        rt__loop_run_once(loop, -1);
    assert_int_equal(n_fired, 4);
    assert_true(rt__timer_is_active(&timers[5]));
    rt__timer_stop(&timers[5]);
    assert_false(rt__timer_is_active(&timers[5]));
}

/* --- posting from other threads --------------------------------------------------------------- */

#define N_THREADS 4
#define N_POSTS   500

static pthread_t loop_thread;
static int runs[N_THREADS * N_POSTS];
static bool wrong_thread;
static struct rt_work works[N_THREADS * N_POSTS];

static void on_work(struct rt_work *w)
{
    if (!pthread_equal(pthread_self(), loop_thread))
        wrong_thread = true;
    runs[(struct rt_work *)w - works]++;
}

static void *poster(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < N_POSTS; i++) {
        struct rt_work *w = &works[k * N_POSTS + i];
        w->cb = on_work;
        rt__loop_post(loop, w);
    }
    return NULL;
}

static void posts_from_threads(void **state)
{
    (void)state;
    loop_thread = pthread_self();
    pthread_t th[N_THREADS];
    for (int k = 0; k < N_THREADS; k++)
        assert_int_equal(pthread_create(&th[k], NULL, poster, (void *)(intptr_t)k), 0);
    for (int k = 0; k < N_THREADS; k++)
        pthread_join(th[k], NULL);
    int total = 0;
    for (int i = 0; i < 100 && total < N_THREADS * N_POSTS; i++) {
        rt__loop_run_once(loop, 10);
        total = 0;
        for (int k = 0; k < N_THREADS * N_POSTS; k++)
            total += runs[k];
    }
    assert_false(wrong_thread);
    for (int i = 0; i < N_THREADS * N_POSTS; i++)
        assert_int_equal(runs[i], 1);
}

static void *stopper(void *arg)
{
    (void)arg;
    usleep(50 * 1000);
    rt__loop_stop(loop);
    return NULL;
}

static void stop_from_another_thread(void **state)
{
    (void)state;
    struct rt_loop *l;
    assert_int_equal(rt__loop_new(&l), 0);
    struct rt_loop *saved = loop;
    loop = l;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper, NULL), 0);
    assert_int_equal(rt__loop_run(l), 0); /* returns only because of the stop */
    pthread_join(th, NULL);
    loop = saved;
    rt__loop_free(l);
}

/* --- watchers --------------------------------------------------------------------------------- */

static int pipes[2][2];
static struct rt_watch watches[2];
static int calls[2];

static void on_readable(struct rt_watch *w, unsigned events)
{
    int i = (int)(w - watches);
    calls[i]++;
    assert_true(events & RT_LOOP_READ);
    /* Whichever runs first stops the other, whose event may already be in this batch. */
    rt__watch_stop(&watches[1 - i]);
    char c;
    assert_int_equal(read(pipes[i][0], &c, 1), 1);
}

static void stopped_watcher_not_called(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        watches[i].data = NULL;
        assert_int_equal(rt__watch_start(loop, &watches[i], pipes[i][0], RT_LOOP_READ, on_readable),
                         0);
        assert_int_equal(write(pipes[i][1], "x", 1), 1);
    }
    rt__loop_run_once(loop, 100);
    rt__loop_run_once(loop, 10);
    assert_int_equal(calls[0] + calls[1], 1);
    for (int i = 0; i < 2; i++) {
        rt__watch_stop(&watches[i]);
        close(pipes[i][0]);
        close(pipes[i][1]);
    }
}

static int fed_calls;
static struct rt_watch fed_watch;

static void on_fed(struct rt_watch *w, unsigned events)
{
    assert_int_equal(events, RT_LOOP_READ);
    if (++fed_calls < 3)
        rt__watch_feed(w, RT_LOOP_READ); /* again, but on the next iteration */
}

static void feed_runs_once_per_iteration(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(rt__watch_start(loop, &fed_watch, p[0], 0, on_fed), 0);
    rt__watch_feed(&fed_watch, RT_LOOP_READ);
    rt__loop_run_once(loop, -1); /* does not block: a feed is pending */
    assert_int_equal(fed_calls, 1);
    rt__loop_run_once(loop, -1);
    assert_int_equal(fed_calls, 2);
    rt__loop_run_once(loop, -1);
    assert_int_equal(fed_calls, 3);
    rt__loop_run_once(loop, 0);
    assert_int_equal(fed_calls, 3);
    rt__watch_stop(&fed_watch);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timer_order),
        cmocka_unit_test(repeating_timer),
        cmocka_unit_test(posts_from_threads),
        cmocka_unit_test(stop_from_another_thread),
        cmocka_unit_test(stopped_watcher_not_called),
        cmocka_unit_test(feed_runs_once_per_iteration),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
