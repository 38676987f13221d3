/* The runtime's event loop (internal to raft/runtime and raft/net): one thread, epoll for file
 * descriptors, a heap of timers on the monotonic clock, and an eventfd through which other threads
 * post work.
 *
 * Threads: a loop and everything registered with it belong to the thread that calls
 * rt__loop_run (the "loop thread"). Only rt__loop_post and rt__loop_stop may be called
 * from other threads. Callbacks always run on the loop thread, one at a time.
 *
 * Memory: watchers, timers and work items are embedded in the caller's structs (as in libuv);
 * the loop never allocates them and never frees them. A watcher or timer may be stopped and its
 * memory freed from inside any callback, including its own: the loop forgets events still
 * pending for a stopped watcher. */
#ifndef RT_LOOP_H
#define RT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/heap.h"
#include "lib/queue.h"

struct rt_loop;

/* Interest and event bits of a watcher. RT_LOOP_ERROR is only ever reported (EPOLLERR or
 * EPOLLHUP); callbacks should try the operation they want and let it fail with the real error. */
enum {
    RT_LOOP_READ = 1u << 0,
    RT_LOOP_WRITE = 1u << 1,
    RT_LOOP_ERROR = 1u << 2,
};

struct rt_watch;
typedef void (*rt_watch_cb)(struct rt_watch *w, unsigned events);

/* A file descriptor watcher. The loop reads fd, events and is_active; the owner sets data. */
struct rt_watch {
    struct rt_loop *loop;
    int fd;
    unsigned events; /* current interest (RT_LOOP_READ | RT_LOOP_WRITE) */
    bool is_active;
    bool is_fed;               /* on the loop's list of fed events (rt__watch_feed) */
    unsigned fed_events;       /* events to report with the next feed dispatch */
    struct rt_watch *next_fed; /* list link, owned by the loop */
    rt_watch_cb cb;
    void *data; /* for the owner */
};

struct rt_timer;
typedef void (*rt_timer_cb)(struct rt_timer *t);

/* A one-shot or repeating timer on the loop's monotonic clock, in milliseconds. */
struct rt_timer {
    struct rt_loop *loop;
    uint64_t deadline;         /* loop time (ms) at which it fires */
    uint64_t repeat;           /* 0: one-shot; otherwise re-armed this many ms after each firing */
    uint64_t seq;              /* start order: timers with equal deadlines fire in start order */
    struct rfs_heap_node node; /* in the loop's heap; pos SIZE_MAX when stopped */
    rt_timer_cb cb;
    void *data; /* for the owner */
};

struct rt_work;
typedef void (*rt_work_cb)(struct rt_work *w);

/* A piece of work another thread hands to the loop thread. */
struct rt_work {
    struct rfs_qlink link; /* owned by the loop while posted */
    rt_work_cb cb;
    void *data; /* for the owner */
};

/* Create a loop. Returns 0, RAFT_ENOMEM, or RAFT_EIO (epoll or eventfd failed; the reason goes
 * to errno). The loop is freed with rt__loop_free. */
int rt__loop_new(struct rt_loop **out);

/* Free a loop that is not running. Watchers and timers still registered are forgotten (their
 * memory is the caller's); work posted but not yet run is dropped without calling it. */
void rt__loop_free(struct rt_loop *l);

/* Run callbacks until rt__loop_stop. Returns 0 after a stop, RAFT_EIO if epoll_wait fails
 * with an error other than EINTR. Must not be called from a callback. */
int rt__loop_run(struct rt_loop *l);

/* Wait for events at most timeout_ms (0: poll; -1: no bound; shortened by timers), run what is
 * due, and return. For tests and for callers that drive the loop themselves. Returns 0 or
 * RAFT_EIO. */
int rt__loop_run_once(struct rt_loop *l, int timeout_ms);

/* Make rt__loop_run return after the callback that is running now. Any thread, any time;
 * async-signal-safe (it sets a flag and writes to the eventfd). */
void rt__loop_stop(struct rt_loop *l);

/* Hand w to the loop thread: w->cb(w) runs there soon, once per post. Any thread. w must stay
 * valid and must not be posted again until its callback has started. Never fails. */
void rt__loop_post(struct rt_loop *l, struct rt_work *w);

/* Milliseconds on the monotonic clock, as of the start of the current loop iteration (cheap;
 * loop thread). rt__loop_update_time refreshes it. */
uint64_t rt__loop_now(const struct rt_loop *l);
void rt__loop_update_time(struct rt_loop *l);

/* Start watching fd for events (RT_LOOP_READ and/or RT_LOOP_WRITE; 0 is allowed and
 * reports only errors). Loop thread. Returns 0, or RAFT_EIO (epoll_ctl failed; errno kept). */
int rt__watch_start(struct rt_loop *l, struct rt_watch *w, int fd, unsigned events, rt_watch_cb cb);

/* Change the interest of an active watcher. Returns 0 or RAFT_EIO. Loop thread. */
int rt__watch_set(struct rt_watch *w, unsigned events);

/* Report events to w on the next iteration even though the fd did not signal them (the loop
 * does not block meanwhile). For data a library buffered out of the kernel's sight, such as
 * TLS records read ahead. Loop thread; w must be active. */
void rt__watch_feed(struct rt_watch *w, unsigned events);

/* Stop watching. Does not close the fd. Safe on a stopped watcher. Loop thread. */
void rt__watch_stop(struct rt_watch *w);

/* Arm t to fire after timeout_ms, then every repeat_ms if repeat_ms > 0. t must have been
 * through rt__timer_init once; restarting an active timer re-arms it. Returns 0 or RAFT_ENOMEM
 * (the heap could not grow; t stays stopped). Loop thread. */
int rt__timer_start(struct rt_loop *l, struct rt_timer *t, uint64_t timeout_ms, uint64_t repeat_ms,
                    rt_timer_cb cb);

/* Disarm t. Safe on a stopped or never-started timer if it was initialized with
 * rt__timer_init. Loop thread. */
void rt__timer_stop(struct rt_timer *t);

/* Mark t stopped without touching any loop, so rt__timer_stop and rt__timer_is_active are
 * safe on it. */
void rt__timer_init(struct rt_timer *t);
bool rt__timer_is_active(const struct rt_timer *t);

#endif
