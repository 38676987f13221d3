/* Synchronous calls from other threads onto the runtime's loop thread, which owns the transport
 * and the core: raft_runtime_set_faults, raft_runtime_heard. The caller waits on its own lock and
 * condition (struct rt_call), never on the loop's. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "raft/runtime/internal.h"

static void call_finish(struct rt_call *c, int status)
{
    pthread_mutex_lock(&c->lock);
    c->status = status;
    c->is_done = true;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock); /* c may be gone from here on */
}

static void call_cb(struct rt_work *w)
{
    struct rt_call *c = w->data;
    struct raft_runtime *rt = c->rt;
    int status = c->fn(rt, c->arg);
    pthread_mutex_lock(&rt->lock);
    for (struct rt_call **p = &rt->calls; *p != NULL; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&rt->lock);
    call_finish(c, status);
}

/* Run fn(rt, arg) on the loop thread and return its result; RAFT_ESHUTDOWN if the runtime
 * stops first. */
static int call_on_loop(struct raft_runtime *rt, int (*fn)(struct raft_runtime *, void *),
                        void *arg)
{
    if (pthread_equal(pthread_self(), rt->loop_thread))
        return fn(rt, arg);
    struct rt_call c = {.rt = rt, .fn = fn, .arg = arg};
    c.work.cb = call_cb;
    c.work.data = &c;
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.cond, NULL);
    pthread_mutex_lock(&rt->lock);
    bool is_stopping = rt->is_stopping;
    if (!is_stopping) {
        c.next = rt->calls;
        rt->calls = &c;
        /* Posted under rt->lock: raft_runtime_stop, which sets is_stopping under it too, frees
         * the loop only after this post. */
        rt__loop_post(rt->loop, &c.work);
    }
    pthread_mutex_unlock(&rt->lock);
    int status = RAFT_ESHUTDOWN;
    if (!is_stopping) {
        pthread_mutex_lock(&c.lock);
        while (!c.is_done)
            pthread_cond_wait(&c.cond, &c.lock);
        status = c.status;
        pthread_mutex_unlock(&c.lock);
    }
    pthread_cond_destroy(&c.cond);
    pthread_mutex_destroy(&c.lock);
    return status;
}

void rt__calls_fail(struct raft_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    struct rt_call *c = rt->calls;
    rt->calls = NULL;
    pthread_mutex_unlock(&rt->lock);
    while (c != NULL) {
        struct rt_call *next = c->next;
        call_finish(c, RAFT_ESHUTDOWN);
        c = next;
    }
}

struct faults_args {
    const char *spec;
    char *err;
    size_t errlen;
};

static int set_faults_cb(struct raft_runtime *rt, void *arg)
{
    struct faults_args *a = arg;
    int rv = raft__transport_faults_parse(rt->transport, a->spec, a->err, a->errlen);
    if (rv == 0)
        rt__log(rt, RAFT_LOG_INFO, "transport faults now: %s",
                a->spec[0] != '\0' ? a->spec : "none");
    return rv;
}

int raft_runtime_set_faults(struct raft_runtime *rt, const char *spec, char *err, size_t errlen)
{
    char none[1];
    struct faults_args a = {.spec = spec != NULL ? spec : "",
                            .err = errlen > 0 ? err : none,
                            .errlen = errlen > 0 ? errlen : sizeof none};
    a.err[0] = '\0';
    int rv = call_on_loop(rt, set_faults_cb, &a);
    if (rv != 0 && a.err[0] == '\0')
        snprintf(a.err, a.errlen, "%s", raft_strerror(rv));
    return rv;
}

static int heard_cb(struct raft_runtime *rt, void *arg)
{
    struct raft_runtime_heard *out = arg;
    struct raft_status s;
    raft_status(rt->core, &s);
    memset(out, 0, sizeof *out);
    out->role = s.role;
    out->term = s.term;
    /* This thread is the one that delivers frames: none arrives between this clock reading
     * and the receive times read below, so silence is never overstated. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (unsigned i = 0; i < s.conf.n && out->n < RAFT_MAX_SERVERS; i++) {
        uint64_t id = s.conf.servers[i].id;
        uint64_t silent = id == rt->cfg.id ? 0 : UINT64_MAX;
        struct raft__peer_stats ps;
        if (id != rt->cfg.id && raft__transport_peer_stats(rt->transport, id, &ps) == 0 &&
            ps.received_at_ms != 0)
            silent = now > ps.received_at_ms ? now - ps.received_at_ms : 0;
        out->peers[out->n].id = id;
        out->peers[out->n++].silent_ms = silent;
    }
    return 0;
}

int raft_runtime_heard(struct raft_runtime *rt, struct raft_runtime_heard *out)
{
    return call_on_loop(rt, heard_cb, out);
}
