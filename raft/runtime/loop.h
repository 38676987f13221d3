/* The runtime's event loop (internal to raft/): one thread, epoll for file descriptors, a heap
 * of timers on the monotonic clock, and an eventfd through which other threads post work.
 *
 * Threads: a loop and everything registered with it belong to the thread that calls
 * raft__loop_run (the "loop thread"). Only raft__loop_post and raft__loop_stop may be called
 * from other threads. Callbacks always run on the loop thread, one at a time.
 *
 * Memory: watchers, timers and work items are embedded in the caller's structs (as in libuv);
 * the loop never allocates them and never frees them. A watcher or timer may be stopped and its
 * memory freed from inside any callback, including its own: the loop forgets events still
 * pending for a stopped watcher. */
#ifndef RAFT_LOOP_H
#define RAFT_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/heap.h"
#include "lib/queue.h"

struct raft__loop;

/* Interest and event bits of a watcher. RAFT__LOOP_ERROR is only ever reported (EPOLLERR or
 * EPOLLHUP); callbacks should try the operation they want and let it fail with the real error. */
enum {
    RAFT__LOOP_READ = 1u << 0,
    RAFT__LOOP_WRITE = 1u << 1,
    RAFT__LOOP_ERROR = 1u << 2,
};

struct raft__watch;
typedef void (*raft__watch_cb)(struct raft__watch *w, unsigned events);

/* A file descriptor watcher. The loop reads fd, events and is_active; the owner sets data. */
struct raft__watch {
    struct raft__loop *loop;
    int fd;
    unsigned events; /* current interest (RAFT__LOOP_READ | RAFT__LOOP_WRITE) */
    bool is_active;
    bool is_fed;                  /* on the loop's list of fed events (raft__watch_feed) */
    unsigned fed_events;          /* events to report with the next feed dispatch */
    struct raft__watch *next_fed; /* list link, owned by the loop */
    raft__watch_cb cb;
    void *data; /* for the owner */
};

struct raft__timer;
typedef void (*raft__timer_cb)(struct raft__timer *t);

/* A one-shot or repeating timer on the loop's monotonic clock, in milliseconds. */
struct raft__timer {
    struct raft__loop *loop;
    uint64_t deadline;         /* loop time (ms) at which it fires */
    uint64_t repeat;           /* 0: one-shot; otherwise re-armed this many ms after each firing */
    uint64_t seq;              /* start order: timers with equal deadlines fire in start order */
    struct rfs_heap_node node; /* in the loop's heap; pos SIZE_MAX when stopped */
    raft__timer_cb cb;
    void *data; /* for the owner */
};

struct raft__work;
typedef void (*raft__work_cb)(struct raft__work *w);

/* A piece of work another thread hands to the loop thread. */
struct raft__work {
    struct rfs_qlink link; /* owned by the loop while posted */
    raft__work_cb cb;
    void *data; /* for the owner */
};

/* Create a loop. Returns 0, RAFT_ENOMEM, or RAFT_EIO (epoll or eventfd failed; the reason goes
 * to errno). The loop is freed with raft__loop_free. */
int raft__loop_new(struct raft__loop **out);

/* Free a loop that is not running. Watchers and timers still registered are forgotten (their
 * memory is the caller's); work posted but not yet run is dropped without calling it. */
void raft__loop_free(struct raft__loop *l);

/* Run callbacks until raft__loop_stop. Returns 0 after a stop, RAFT_EIO if epoll_wait fails
 * with an error other than EINTR. Must not be called from a callback. */
int raft__loop_run(struct raft__loop *l);

/* Wait for events at most timeout_ms (0: poll; -1: no bound; shortened by timers), run what is
 * due, and return. For tests and for callers that drive the loop themselves. Returns 0 or
 * RAFT_EIO. */
int raft__loop_run_once(struct raft__loop *l, int timeout_ms);

/* Make raft__loop_run return after the callback that is running now. Any thread, any time;
 * async-signal-safe (it sets a flag and writes to the eventfd). */
void raft__loop_stop(struct raft__loop *l);

/* Hand w to the loop thread: w->cb(w) runs there soon, once per post. Any thread. w must stay
 * valid and must not be posted again until its callback has started. Never fails. */
void raft__loop_post(struct raft__loop *l, struct raft__work *w);

/* Milliseconds on the monotonic clock, as of the start of the current loop iteration (cheap;
 * loop thread). raft__loop_update_time refreshes it. */
uint64_t raft__loop_now(const struct raft__loop *l);
void raft__loop_update_time(struct raft__loop *l);

/* Start watching fd for events (RAFT__LOOP_READ and/or RAFT__LOOP_WRITE; 0 is allowed and
 * reports only errors). Loop thread. Returns 0, or RAFT_EIO (epoll_ctl failed; errno kept). */
int raft__watch_start(struct raft__loop *l, struct raft__watch *w, int fd, unsigned events,
                      raft__watch_cb cb);

/* Change the interest of an active watcher. Returns 0 or RAFT_EIO. Loop thread. */
int raft__watch_set(struct raft__watch *w, unsigned events);

/* Report events to w on the next iteration even though the fd did not signal them (the loop
 * does not block meanwhile). For data a library buffered out of the kernel's sight, such as
 * TLS records read ahead. Loop thread; w must be active. */
void raft__watch_feed(struct raft__watch *w, unsigned events);

/* Stop watching. Does not close the fd. Safe on a stopped watcher. Loop thread. */
void raft__watch_stop(struct raft__watch *w);

/* Arm t to fire after timeout_ms, then every repeat_ms if repeat_ms > 0. t must have been
 * through raft__timer_init once; restarting an active timer re-arms it. Returns 0 or RAFT_ENOMEM
 * (the heap could not grow; t stays stopped). Loop thread. */
int raft__timer_start(struct raft__loop *l, struct raft__timer *t, uint64_t timeout_ms,
                      uint64_t repeat_ms, raft__timer_cb cb);

/* Disarm t. Safe on a stopped or never-started timer if it was initialized with
 * raft__timer_init. Loop thread. */
void raft__timer_stop(struct raft__timer *t);

/* Mark t stopped without touching any loop, so raft__timer_stop and raft__timer_is_active are
 * safe on it. */
void raft__timer_init(struct raft__timer *t);
bool raft__timer_is_active(const struct raft__timer *t);

#endif
