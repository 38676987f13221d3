/* A worker thread fed by a queue: the log writer and the apply thread are both one thread that
 * takes everything queued so far under a mutex, works through it, and waits for more. */
#include "raft/runtime/internal.h"

void rt__worker_init(struct rt_worker *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

void rt__worker_destroy(struct rt_worker *w)
{
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

int rt__worker_start(struct rt_worker *w, void *(*fn)(void *), void *arg)
{
    if (pthread_create(&w->thread, NULL, fn, arg) != 0)
        return RAFT_ENOMEM;
    return 0;
}

void rt__worker_stop(struct rt_worker *w)
{
    pthread_mutex_lock(&w->lock);
    w->is_stopping = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
}

void rt__worker_push(struct rt_worker *w, struct rfs_qlink *l)
{
    pthread_mutex_lock(&w->lock);
    rfs_queue_push(&w->queue, l);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

bool rt__worker_take(struct rt_worker *w, struct rfs_queue *out)
{
    pthread_mutex_lock(&w->lock);
    while (rfs_queue_is_empty(&w->queue) && !w->is_stopping)
        pthread_cond_wait(&w->cond, &w->lock);
    rfs_queue_splice(out, &w->queue);
    pthread_mutex_unlock(&w->lock);
    return !rfs_queue_is_empty(out);
}

void rt__worker_fail(struct raft_runtime *rt, struct rt_worker *w, const char *who,
                     const char *what, const char *why)
{
    rt__log(rt, RAFT_LOG_ERROR,
            "%s: %s failed: %s; this node stops taking part until it is restarted", who, what, why);
    if (w->has_failed)
        return; /* the node already stops: its one report is on its way */
    w->has_failed = true;
    w->failed.error = RAFT_ESTORAGE;
    w->failed.is_embedded = true;
    rt__post_event(rt, &w->failed);
}
