/* The log writer thread: persists what the core asks for, in order, grouping every write that
 * queued up while the previous commit was syncing into one durable transaction (group commit:
 * under load, one fdatasync serves many proposals). Messages that depend on a hard-state change
 * travel with the write and go back to the loop only once it is durable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/runtime/internal.h"
#include "lib/error.h"

void rt__frames_free(struct rfs_queue *q)
{
    struct rfs_qlink *l;
    while ((l = rfs_queue_pop(q)) != NULL)
        free(RFS_QUEUE_ITEM(l, struct rt_frame, link));
}

static void write_free(struct rt_write *w)
{
    for (size_t i = 0; i < w->batch.n; i++)
        free((void *)w->batch.entries[i].payload);
    free((void *)w->batch.entries);
    rt__frames_free(&w->held);
    free(w->persisted);
    free(w);
}

void rt__write(struct raft_runtime *rt, struct rt_write *w)
{
    rt__worker_push(&rt->writer, &w->link);
}

/* The writes of one group, merged into one store batch. */
struct group {
    struct store_log_batch batch;
    struct store_log_entry *entries; /* borrowed from the writes */
    size_t n, cap;
    struct rfs_queue writes;    /* of rt_write, owned */
    struct rfs_queue held;      /* of rt_frame, owned */
    struct rt_event *persisted; /* the report of its first write, owned */
};

/* Take w into the group. On failure (RAFT_ENOMEM) w is in the group all the same, so that
 * group_reset frees it. */
static int group_add(struct group *g, struct rt_write *w)
{
    rfs_queue_push(&g->writes, &w->link);
    if (g->persisted == NULL) {
        g->persisted = w->persisted; /* one report serves the group */
        w->persisted = NULL;
    }
    const struct store_log_batch *b = &w->batch;
    if (b->has_hard_state) {
        g->batch.has_hard_state = true;
        g->batch.term = b->term;
        g->batch.vote = b->vote;
    }
    if (b->truncate_from != 0) {
        if (g->n > 0 && b->truncate_from > g->entries[0].index) {
            g->n = (size_t)(b->truncate_from - g->entries[0].index); /* cut our own tail */
        } else {
            g->n = 0;
            if (g->batch.truncate_from == 0 || b->truncate_from < g->batch.truncate_from)
                g->batch.truncate_from = b->truncate_from;
        }
    }
    if (g->n + b->n > g->cap) {
        size_t cap = g->cap ? g->cap : 64;
        while (cap < g->n + b->n)
            cap *= 2;
        struct store_log_entry *e = realloc(g->entries, cap * sizeof *e);
        if (e == NULL)
            return RAFT_ENOMEM;
        g->entries = e;
        g->cap = cap;
    }
    if (b->n > 0) { /* a hard-state-only write has no entries array */
        memcpy(g->entries + g->n, b->entries, b->n * sizeof *b->entries);
        g->n += b->n;
    }
    rfs_queue_splice(&g->held, &w->held);
    return 0;
}

/* Free the group's writes and the frames it still holds, and empty it for the next one (the
 * entries array is kept for reuse). */
static void group_reset(struct group *g)
{
    rt__frames_free(&g->held);
    struct rfs_qlink *l;
    while ((l = rfs_queue_pop(&g->writes)) != NULL)
        write_free(RFS_QUEUE_ITEM(l, struct rt_write, link));
    free(g->persisted);
    struct store_log_entry *keep = g->entries;
    size_t cap = g->cap;
    memset(g, 0, sizeof *g);
    g->entries = keep;
    g->cap = cap;
}

/* A failure of the log store, with its code and message: the node stops taking part (a failed
 * write is never retried). Returns RAFT_ESTORAGE. */
static int store_fail(struct raft_runtime *rt, int rc, const char *what)
{
    char msg[512], why[640];
    store_log_errmsg(rt->log, msg, sizeof msg);
    snprintf(why, sizeof why, "%s (%s)", rfs_strerror(rc), msg);
    rt__worker_fail(rt, &rt->writer, "log store", what, why);
    return RAFT_ESTORAGE;
}

/* Out of memory in the writer: the node stops taking part too. Returns RAFT_ENOMEM. */
static int memory_fail(struct raft_runtime *rt, const char *what)
{
    rt__worker_fail(rt, &rt->writer, "log writer", what, raft_strerror(RAFT_ENOMEM));
    return RAFT_ENOMEM;
}

/* Commit the group and tell the loop how far the log is durable. */
static int flush(struct raft_runtime *rt, struct group *g)
{
    int rc = 0;
    g->batch.entries = g->entries;
    g->batch.n = g->n;
    uint64_t start = rt__now_us();
    rc = store_log_write(rt->log, &g->batch);
    if (rc == 0) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < g->n; i++)
            bytes += g->entries[i].len;
        rt__hist_add(&rt->stats.fsync, rt__now_us() - start);
        atomic_fetch_add(&rt->stats.log_commits, 1);
        atomic_fetch_add(&rt->stats.log_entries, g->n);
        atomic_fetch_add(&rt->stats.log_bytes, bytes);
    }
    if (rc != 0) {
        rc = store_fail(rt, rc, "writing the log");
    } else if (g->n > 0 || !rfs_queue_is_empty(&g->held)) {
        struct rt_event *e = g->persisted;
        g->persisted = NULL;
        if (g->n > 0) {
            e->ev.type = RAFT_EVENT_PERSISTED;
            e->ev.persisted.index = g->entries[g->n - 1].index;
            e->ev.persisted.term = g->entries[g->n - 1].term;
        }
        rfs_queue_splice(&e->frames, &g->held);
        rt__post_event(rt, e);
    }
    group_reset(g);
    return rc;
}

static int maintain(struct raft_runtime *rt, struct rt_write *w)
{
    int rc = 0;
    if (w->kind == RT_WRITE_RESET) {
        rc = store_log_reset(rt->log, w->index, w->term);
        if (rc != 0)
            return store_fail(rt, rc, "resetting the log after a snapshot install");
        struct rt_apply *a = calloc(1, sizeof *a);
        if (a == NULL)
            return memory_fail(rt, "queueing a snapshot restore");
        a->kind = RT_APPLY_RESTORE;
        a->index = w->index;
        a->term = w->term;
        rt__apply(rt, a);
        return 0;
    }
    /* RT_WRITE_COMPACT: record the new snapshot first, then drop what it covers; a crash in
     * between leaves extra entries, which is harmless. */
    if (w->term != 0 && (rc = store_log_set_snapshot_meta(rt->log, w->index, w->term)) != 0)
        return store_fail(rt, rc, "recording the snapshot");
    uint64_t through = w->batch.truncate_from; /* compact_to travels here */
    if (through != 0 && (rc = store_log_drop_prefix(rt->log, through)) != 0)
        return store_fail(rt, rc, "compacting the log");
    return 0;
}

void *rt__writer_main(void *arg)
{
    struct raft_runtime *rt = arg;
    struct group g = {0};
    bool is_failed = false;
    struct rfs_queue q = {0};
    while (rt__worker_take(&rt->writer, &q)) {
        struct rfs_qlink *l;
        while ((l = rfs_queue_pop(&q)) != NULL) {
            struct rt_write *w = RFS_QUEUE_ITEM(l, struct rt_write, link);
            if (is_failed) {
                /* Nothing more is written after a failure: a failed sync must never be
                 * retried, and later writes could depend on the lost one. */
                write_free(w);
                continue;
            }
            if (w->kind != RT_WRITE_LOG) {
                if (maintain(rt, w) != 0)
                    is_failed = true;
                write_free(w);
                continue;
            }
            /* A run of log writes becomes one group and one durable commit. */
            for (;;) {
                if (group_add(&g, w) != 0) {
                    memory_fail(rt, "grouping writes");
                    is_failed = true;
                    break;
                }
                if (q.head == NULL ||
                    RFS_QUEUE_ITEM(q.head, struct rt_write, link)->kind != RT_WRITE_LOG)
                    break;
                w = RFS_QUEUE_ITEM(rfs_queue_pop(&q), struct rt_write, link);
            }
            if (is_failed)
                group_reset(&g);
            else if (flush(rt, &g) != 0)
                is_failed = true;
        }
    }
    free(g.entries);
    return NULL;
}
