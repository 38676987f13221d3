/* The table of pending requests, shared by the runtime's threads under rt->lock: a request
 * enters it when an API call makes it, and whoever removes it completes it (internal.h,
 * invariant 5). Also the log line helper and the queue of events for the loop thread. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/runtime/internal.h"
#include "lib/error.h"

#define DEFAULT_PENDING ((size_t)64 << 20)

/* --- logging -------------------------------------------------------------------------------- */

void rt__log(struct raft_runtime *rt, enum raft_log_level level, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (rt->cfg.log != NULL)
        rt->cfg.log(rt->cfg.log_ctx, level, text);
    else
        fprintf(stderr, "raft: %s\n", text);
}

void rt__fsm_error(struct raft_runtime *rt, int rc, char *buf, size_t len)
{
    char msg[384] = "";
    if (rt->cfg.fsm.errmsg != NULL)
        rt->cfg.fsm.errmsg(rt->cfg.fsm.ctx, msg, sizeof msg);
    if (msg[0] != '\0')
        snprintf(buf, len, "%s (%s)", rfs_strerror(rc), msg);
    else
        snprintf(buf, len, "%s", rfs_strerror(rc));
}

/* --- requests ------------------------------------------------------------------------------- */

static void req_free(struct rt_req *req)
{
    free(req->verify);
    free(req->buf);
    free(req);
}

/* Complete a request already removed from the table. */
void rt__complete(struct raft_runtime *rt, struct rt_req *req, int status,
                  struct raft_apply_result *result)
{
    if (rt__is_entry_req(req->kind)) {
        atomic_fetch_sub(&rt->pending_bytes, req->len);
        /* A verify's time includes asking the members for digests: not a commit latency. */
        if (status == 0 && req->kind != RT_VERIFY)
            rt__hist_add(&rt->stats.commit, rt__now_us() - req->start_us);
        else
            atomic_fetch_add(&rt->stats.proposals_failed, 1);
    }
    if (req->is_remote) {
        /* A peer's request executed here: the answer goes back over the network, from the
         * loop thread only (the transport is the loop's). Others post it there. */
        rt__send_ctl_resp(rt, req->origin, req->peer_req, status);
    } else if (req->done != NULL) {
        req->done(req->arg, status, result);
    } else if (result != NULL) {
        free(result->data);
    }
    req_free(req);
}

void rt__complete_id(struct raft_runtime *rt, uint64_t id, int status,
                     struct raft_apply_result *result)
{
    pthread_mutex_lock(&rt->lock);
    struct rt_req *req = rt__table_find(&rt->requests, id);
    if (req != NULL)
        rt__table_remove(&rt->requests, req);
    pthread_mutex_unlock(&rt->lock);
    if (req != NULL)
        rt__complete(rt, req, status, result);
    else if (result != NULL)
        free(result->data);
}

/* --- events from the other threads ---------------------------------------------------------- */

void rt__post_event(struct raft_runtime *rt, struct rt_event *e)
{
    pthread_mutex_lock(&rt->events_lock);
    rfs_queue_push(&rt->events, &e->link);
    bool is_posted = rt->is_events_posted;
    rt->is_events_posted = true;
    pthread_mutex_unlock(&rt->events_lock);
    if (!is_posted)
        rt__loop_post(rt->loop, &rt->events_work);
}

/* --- failure ------------------------------------------------------------------------------- */

void rt__fail_all(struct raft_runtime *rt, int status)
{
    for (;;) {
        pthread_mutex_lock(&rt->lock);
        struct rt_req *req = rt->requests.first;
        if (req != NULL)
            rt__table_remove(&rt->requests, req);
        pthread_mutex_unlock(&rt->lock);
        if (req == NULL)
            return;
        rt__complete(rt, req, status, NULL);
    }
}
/* --- deadlines and retries (loop thread) ---------------------------------------------------- */

/* A request refused because of a leadership change, with nothing done (a read, or a forward
 * the receiver refused as not the leader), waits for a leader and is sent again until its
 * deadline: an election is not a failure. True if it was put back; false if it is gone or past
 * its deadline, and the caller completes it. */
bool rt__retry_later(struct raft_runtime *rt, uint64_t id)
{
    bool is_back = false;
    pthread_mutex_lock(&rt->lock);
    struct rt_req *req = rt__table_find(&rt->requests, id);
    if (req != NULL && !req->is_remote && req->deadline > rt__loop_now(rt->loop)) {
        req->is_submitted = false;
        is_back = true;
    }
    pthread_mutex_unlock(&rt->lock);
    return is_back;
}

void rt__expire(struct raft_runtime *rt)
{
    uint64_t now = rt__loop_now(rt->loop);
    struct rt_req *expired = NULL, **tail = &expired;
    pthread_mutex_lock(&rt->lock);
    for (struct rt_req *r = rt->requests.first, *next; r != NULL; r = next) {
        next = r->next;
        if (r->deadline > now || r->is_remote || r->is_posted)
            continue;
        rt__table_remove(&rt->requests, r);
        *tail = r; /* oldest first */
        tail = &r->next;
    }
    pthread_mutex_unlock(&rt->lock);
    while (expired != NULL) {
        struct rt_req *r = expired;
        expired = r->next;
        int status;
        if (r->is_verifying) {
            /* The checkpoint was applied: answer with the digests gathered so far. */
            struct raft_apply_result result = {.data = r->verify, .len = sizeof *r->verify};
            r->verify = NULL;
            rt__complete(rt, r, 0, &result);
            continue;
        }
        if (!r->is_submitted)
            status = RAFT_ENOTLEADER; /* never sent anywhere: no leader was known */
        else if (r->is_leadership_lost)
            status = RAFT_ELEADERSHIPLOST;
        else
            status = RAFT_ETIMEDOUT;
        rt__complete(rt, r, status, NULL);
    }
}

/* --- making requests ----------------------------------------------------------------------- */

int rt__req_new(struct raft_runtime *rt, enum rt_req_kind kind, unsigned timeout_ms,
                raft_done_fn done, void *arg, struct rt_req **out)
{
    pthread_mutex_lock(&rt->lock);
    bool is_stopping = rt->is_stopping;
    pthread_mutex_unlock(&rt->lock);
    if (is_stopping)
        return RAFT_ESHUTDOWN;
    struct rt_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return RAFT_ENOMEM;
    /* A verify's answer is made now: once its checkpoint is applied, nothing may fail. */
    if (kind == RT_VERIFY && (req->verify = calloc(1, sizeof *req->verify)) == NULL) {
        free(req);
        return RAFT_ENOMEM;
    }
    req->rt = rt;
    req->kind = kind;
    req->done = done;
    req->arg = arg;
    req->id = atomic_fetch_add(&rt->next_id, 1);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    req->deadline = now + (timeout_ms ? timeout_ms : RT_DEFAULT_TIMEOUT_MS);
    req->work.cb = rt__submit_cb;
    req->work.data = req;
    *out = req;
    return 0;
}

/* Enter the table and hand to the loop. Once here, done will be called exactly once. */
int rt__req_post(struct raft_runtime *rt, struct rt_req *req)
{
    pthread_mutex_lock(&rt->lock);
    int rv = rt->is_stopping ? RAFT_ESHUTDOWN : rt__table_insert(&rt->requests, req);
    if (rv != 0) {
        pthread_mutex_unlock(&rt->lock);
        req_free(req);
        return rv;
    }
    req->is_posted = true;
    pthread_mutex_unlock(&rt->lock);
    rt__loop_post(rt->loop, &req->work);
    return 0;
}

int rt__propose(struct raft_runtime *rt, enum rt_req_kind kind, const void *data, size_t len,
                unsigned timeout_ms, raft_done_fn done, void *arg)
{
    if (rt->error != 0)
        return rt->error;
    if (len + RT_ENVELOPE > rt->cfg.options.max_entry_bytes)
        return RAFT_ETOOBIG;
    size_t limit = rt->cfg.max_pending_bytes ? rt->cfg.max_pending_bytes : DEFAULT_PENDING;
    if (atomic_load(&rt->pending_bytes) + len > limit)
        return RAFT_EBUSY;
    struct rt_req *req;
    int rv = rt__req_new(rt, kind, timeout_ms, done, arg, &req);
    if (rv != 0)
        return rv;
    req->len = RT_ENVELOPE + len;
    req->buf = malloc(req->len);
    if (req->buf == NULL) {
        req_free(req);
        return RAFT_ENOMEM;
    }
    rt__envelope_put(req->buf, rt->cfg.id, req->id);
    req->start_us = rt__now_us();
    if (len > 0)
        memcpy(req->buf + RT_ENVELOPE, data, len);
    atomic_fetch_add(&rt->pending_bytes, req->len);
    rv = rt__req_post(rt, req);
    if (rv != 0)
        atomic_fetch_sub(&rt->pending_bytes, RT_ENVELOPE + len);
    else
        atomic_fetch_add(&rt->stats.proposals, 1);
    return rv;
}
