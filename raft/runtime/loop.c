/* The runtime's event loop: epoll for descriptors, a binary heap of timers whose earliest
 * deadline bounds epoll_wait, an eventfd for wakeups from other threads (raft/runtime/loop.h). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "raft/runtime/loop.h"
#include "lib/clock.h"
#include "raft/raft.h"

#define MAX_EVENTS 64

struct rt_loop {
    int epfd;
    int wakefd; /* eventfd; its epoll data is the loop itself */
    uint64_t now;

    /* The batch epoll_wait returned, so rt__watch_stop can forget events of a watcher that
     * a callback stopped before its turn came. */
    struct epoll_event events[MAX_EVENTS];
    int n_events;
    int next_event;

    struct rt_watch *fed_head; /* rt__watch_feed list, in feed order */
    struct rt_watch *fed_tail;

    struct rfs_heap timers; /* of rt__timer, on (deadline, seq) */
    uint64_t timer_seq;

    pthread_mutex_t lock;
    struct rfs_queue posted; /* of rt__work, protected by lock */
    atomic_bool is_stopping;
};

/* Timers fire by deadline, and in start order for equal deadlines. */
static bool timer_before(const struct rfs_heap_node *x, const struct rfs_heap_node *y)
{
    const struct rt_timer *a = RFS_HEAP_ITEM(x, struct rt_timer, node);
    const struct rt_timer *b = RFS_HEAP_ITEM(y, struct rt_timer, node);
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

int rt__loop_new(struct rt_loop **out)
{
    struct rt_loop *l = calloc(1, sizeof *l);
    if (l == NULL)
        return RAFT_ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        goto err_after_alloc;
    l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wakefd < 0)
        goto err_after_epoll;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0)
        goto err_after_eventfd;
    if (pthread_mutex_init(&l->lock, NULL) != 0)
        goto err_after_eventfd;
    atomic_init(&l->is_stopping, false);
    rfs_heap_init(&l->timers, timer_before);
    l->now = rfs_clock_ms(CLOCK_MONOTONIC);
    *out = l;
    return 0;

err_after_eventfd:
    close(l->wakefd);
err_after_epoll:
    close(l->epfd);
err_after_alloc:
    free(l);
    return RAFT_EIO;
}

void rt__loop_free(struct rt_loop *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->timers.n; i++)
        l->timers.slots[i]->pos = SIZE_MAX;
    rfs_heap_free(&l->timers);
    pthread_mutex_destroy(&l->lock);
    close(l->wakefd);
    close(l->epfd);
    free(l);
}

uint64_t rt__loop_now(const struct rt_loop *l)
{
    return l->now;
}

void rt__loop_update_time(struct rt_loop *l)
{
    l->now = rfs_clock_ms(CLOCK_MONOTONIC);
}

static void wake(struct rt_loop *l)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already nonzero: the loop will wake anyway. */
    ssize_t n = write(l->wakefd, &one, sizeof one);
    (void)n;
}

void rt__loop_stop(struct rt_loop *l)
{
    atomic_store(&l->is_stopping, true);
    wake(l);
}

void rt__loop_post(struct rt_loop *l, struct rt_work *w)
{
    pthread_mutex_lock(&l->lock);
    rfs_queue_push(&l->posted, &w->link);
    pthread_mutex_unlock(&l->lock);
    wake(l);
}

/* --- watchers --------------------------------------------------------------------------------- */

static uint32_t epoll_bits(unsigned events)
{
    return ((events & RT_LOOP_READ) ? EPOLLIN : 0) | ((events & RT_LOOP_WRITE) ? EPOLLOUT : 0);
}

int rt__watch_start(struct rt_loop *l, struct rt_watch *w, int fd, unsigned events, rt_watch_cb cb)
{
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = w};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return RAFT_EIO;
    w->loop = l;
    w->fd = fd;
    w->events = events;
    w->is_active = true;
    w->is_fed = false;
    w->fed_events = 0;
    w->next_fed = NULL;
    w->cb = cb;
    return 0;
}

int rt__watch_set(struct rt_watch *w, unsigned events)
{
    if (!w->is_active)
        return RAFT_EINVAL;
    events &= RT_LOOP_READ | RT_LOOP_WRITE;
    if (events == w->events)
        return 0;
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = w};
    if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
        return RAFT_EIO;
    w->events = events;
    return 0;
}

void rt__watch_feed(struct rt_watch *w, unsigned events)
{
    struct rt_loop *l = w->loop;
    if (!w->is_active)
        return;
    w->fed_events |= events;
    if (w->is_fed)
        return;
    w->is_fed = true;
    w->next_fed = NULL;
    if (l->fed_tail != NULL)
        l->fed_tail->next_fed = w;
    else
        l->fed_head = w;
    l->fed_tail = w;
}

static void unfeed(struct rt_watch *w)
{
    struct rt_loop *l = w->loop;
    struct rt_watch *prev = NULL;
    for (struct rt_watch *it = l->fed_head; it != NULL; prev = it, it = it->next_fed) {
        if (it != w)
            continue;
        if (prev != NULL)
            prev->next_fed = w->next_fed;
        else
            l->fed_head = w->next_fed;
        if (l->fed_tail == w)
            l->fed_tail = prev;
        break;
    }
    w->is_fed = false;
    w->fed_events = 0;
    w->next_fed = NULL;
}

void rt__watch_stop(struct rt_watch *w)
{
    if (!w->is_active)
        return;
    struct rt_loop *l = w->loop;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    for (int i = l->next_event; i < l->n_events; i++)
        if (l->events[i].data.ptr == w)
            l->events[i].data.ptr = NULL;
    if (w->is_fed)
        unfeed(w);
    w->is_active = false;
}

/* --- timers ----------------------------------------------------------------------------------- */

void rt__timer_init(struct rt_timer *t)
{
    t->loop = NULL;
    t->node.pos = SIZE_MAX;
}

bool rt__timer_is_active(const struct rt_timer *t)
{
    return rfs_heap_contains(&t->node);
}

int rt__timer_start(struct rt_loop *l, struct rt_timer *t, uint64_t timeout_ms, uint64_t repeat_ms,
                    rt_timer_cb cb)
{
    if (rfs_heap_contains(&t->node) && t->loop == l)
        rfs_heap_remove(&l->timers, &t->node);
    if (rfs_heap_reserve(&l->timers, l->timers.n + 1) != 0) {
        t->node.pos = SIZE_MAX;
        return RAFT_ENOMEM;
    }
    t->loop = l;
    t->deadline = l->now + timeout_ms;
    t->repeat = repeat_ms;
    t->seq = l->timer_seq++;
    t->cb = cb;
    rfs_heap_push(&l->timers, &t->node);
    return 0;
}

void rt__timer_stop(struct rt_timer *t)
{
    if (!rfs_heap_contains(&t->node))
        return;
    rfs_heap_remove(&t->loop->timers, &t->node);
}

static void run_timers(struct rt_loop *l)
{
    /* Timers started by a callback with a zero timeout wait for the next iteration, so a timer
     * that re-arms itself cannot keep this loop going forever. */
    uint64_t seq_limit = l->timer_seq;
    struct rfs_heap_node *top;
    while ((top = rfs_heap_top(&l->timers)) != NULL) {
        struct rt_timer *t = RFS_HEAP_ITEM(top, struct rt_timer, node);
        if (t->deadline > l->now || t->seq >= seq_limit)
            break;
        rfs_heap_remove(&l->timers, top);
        if (t->repeat > 0) {
            /* Re-armed before the callback so the callback may stop or restart it. */
            t->deadline = l->now + t->repeat;
            t->seq = l->timer_seq++;
            rfs_heap_push(&l->timers, &t->node); /* its own slot, just freed */
        }
        t->cb(t);
    }
}

/* --- running ---------------------------------------------------------------------------------- */

static void run_posted(struct rt_loop *l)
{
    uint64_t counter;
    ssize_t n = read(l->wakefd, &counter, sizeof counter);
    (void)n;
    struct rfs_queue q = {0};
    pthread_mutex_lock(&l->lock);
    rfs_queue_splice(&q, &l->posted);
    pthread_mutex_unlock(&l->lock);
    struct rfs_qlink *link;
    while ((link = rfs_queue_pop(&q)) != NULL) {
        struct rt_work *w = RFS_QUEUE_ITEM(link, struct rt_work, link);
        w->cb(w);
    }
}

static void run_fed(struct rt_loop *l)
{
    /* Only the watchers fed before this point: one fed again by its callback waits for the next
     * iteration, after the kernel's events had a turn. */
    struct rt_watch *last = l->fed_tail;
    while (l->fed_head != NULL) {
        struct rt_watch *w = l->fed_head;
        bool is_last = w == last;
        unsigned events = w->fed_events;
        unfeed(w);
        w->cb(w, events);
        if (is_last)
            break;
    }
}

int rt__loop_run_once(struct rt_loop *l, int timeout_ms)
{
    int timeout = timeout_ms;
    if (l->fed_head != NULL || atomic_load(&l->is_stopping))
        timeout = 0;
    if (l->timers.n > 0 && timeout != 0) {
        rt__loop_update_time(l);
        uint64_t due = RFS_HEAP_ITEM(rfs_heap_top(&l->timers), struct rt_timer, node)->deadline;
        uint64_t wait = due > l->now ? due - l->now : 0;
        if (timeout < 0 || wait < (uint64_t)timeout)
            timeout = (int)(wait > 1000000 ? 1000000 : wait);
    }
    int n = epoll_wait(l->epfd, l->events, MAX_EVENTS, timeout);
    if (n < 0) {
        if (errno != EINTR)
            return RAFT_EIO;
        n = 0;
    }
    rt__loop_update_time(l);
    bool is_woken = false;
    l->n_events = n;
    for (l->next_event = 0; l->next_event < l->n_events;) {
        struct epoll_event *ev = &l->events[l->next_event++];
        if (ev->data.ptr == NULL)
            continue; /* its watcher was stopped by an earlier callback */
        if (ev->data.ptr == l) {
            is_woken = true;
            continue;
        }
        struct rt_watch *w = ev->data.ptr;
        unsigned events = ((ev->events & EPOLLIN) ? RT_LOOP_READ : 0) |
                          ((ev->events & EPOLLOUT) ? RT_LOOP_WRITE : 0) |
                          ((ev->events & (EPOLLERR | EPOLLHUP)) ? RT_LOOP_ERROR : 0);
        w->cb(w, events);
    }
    l->n_events = 0;
    l->next_event = 0;
    run_fed(l);
    run_timers(l);
    if (is_woken)
        run_posted(l);
    return 0;
}

int rt__loop_run(struct rt_loop *l)
{
    while (!atomic_load(&l->is_stopping)) {
        int rv = rt__loop_run_once(l, -1);
        if (rv != 0)
            return rv;
    }
    return 0;
}
