/* The apply thread and the snapshot thread. Committed entries are applied in batches (one state
 * machine transaction each); the proposer of an entry is named in its envelope, so the node that
 * proposed it completes its request with the state machine's answer when it applies it, whether
 * the proposal went through the local core or was forwarded to the leader. Snapshot installs
 * travel through the same queue, so they are ordered with the entries around them. */
#include <stdlib.h>
#include <string.h>

#include "raft/runtime/internal.h"
#include "lib/le.h"
#include "lib/error.h"

void rt__envelope_put(uint8_t *buf, uint64_t origin, uint64_t id)
{
    rfs_put_le64(buf, origin);
    rfs_put_le64(buf + 8, id);
}

void rt__apply(struct raft_runtime *rt, struct rt_apply *a)
{
    rt__worker_push(&rt->apply, &a->link);
}

static void apply_free(struct rt_apply *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->entries[i].data);
    free(a->entries);
    if (a->receiver != NULL)
        store_snapshot_receive_abort(a->receiver);
    free(a);
}

/* Completions found under the lock, run after it is released: req, already out of the table,
 * goes on *list through its own link (nothing to allocate, so nothing can fail). */
static void defer(struct rt_req **list, struct rt_req *req, int status,
                  const struct raft_apply_result *result)
{
    req->done_status = status;
    req->done_result = result != NULL ? *result : (struct raft_apply_result){0};
    req->next = *list;
    *list = req;
}

/* With rt->lock held: the state machine reached applied. Reads waiting for it complete, and so
 * does every proposal whose index is now applied by an entry that was not its own. */
static void advance_locked(struct raft_runtime *rt, uint64_t applied, struct rt_req **list)
{
    atomic_store(&rt->applied, applied);
    struct rt_req *req;
    while ((req = rt__table_applied(&rt->requests, applied)) != NULL) {
        rt__table_remove(&rt->requests, req);
        defer(list, req, req->kind == RT_READ ? 0 : RAFT_ENOTAPPLIED, NULL);
    }
}

static void run_done(struct raft_runtime *rt, struct rt_req *list)
{
    while (list != NULL) {
        struct rt_req *next = list->next;
        rt__complete(rt, list, list->done_status,
                     list->done_status == 0 ? &list->done_result : NULL);
        list = next;
    }
}

/* The apply thread cannot go on: say why (what failed, why), and the node stops taking part. */
static void fatal(struct raft_runtime *rt, const char *what, const char *why)
{
    rt__worker_fail(rt, &rt->apply, "state machine", what, why);
}

/* The state machine's own failure: its code (one of raftfs's) and what it says about it. */
static void fsm_fatal(struct raft_runtime *rt, const char *what, int rc)
{
    char why[512];
    rt__fsm_error(rt, rc, why, sizeof why);
    fatal(rt, what, why);
}

static bool is_checkpoint_entry(const struct raft_entry *e)
{
    return e->type == RAFT_ENTRY_COMMAND && e->len > RT_ENVELOPE &&
           rt__is_checkpoint((const uint8_t *)e->data + RT_ENVELOPE, e->len - RT_ENVELOPE);
}

static int apply_entries(struct raft_runtime *rt, struct rt_apply *a)
{
    uint64_t self = rt->cfg.id;
    struct raft_apply_result *results = calloc(a->n, sizeof *results);
    struct raft_entry *view = malloc(a->n * sizeof *view);
    uint64_t *ids = calloc(a->n, sizeof *ids);
    if (results == NULL || view == NULL || ids == NULL) {
        free(results);
        free(view);
        free(ids);
        fatal(rt, "allocating an apply batch", raft_strerror(RAFT_ENOMEM));
        return RAFT_ENOMEM;
    }
    /* The state machine sees the proposer's bytes without the envelope; an entry with nothing
     * after its envelope is a barrier, which only advances the applied index, and so is a
     * checkpoint. */
    for (size_t i = 0; i < a->n; i++) {
        view[i] = a->entries[i];
        if (view[i].type != RAFT_ENTRY_COMMAND)
            continue;
        if (view[i].len < RT_ENVELOPE) {
            view[i].type = RAFT_ENTRY_NOOP; /* malformed; every node treats it the same */
            view[i].len = 0;
            view[i].data = NULL;
            continue;
        }
        const uint8_t *p = view[i].data;
        if (rfs_get_le64(p) == self)
            ids[i] = rfs_get_le64(p + 8);
        view[i].data = (uint8_t *)view[i].data + RT_ENVELOPE;
        view[i].len -= RT_ENVELOPE;
        if (view[i].len == 0 || is_checkpoint_entry(&a->entries[i])) {
            view[i].type = RAFT_ENTRY_NOOP;
            view[i].len = 0;
            view[i].data = NULL;
        }
    }
    /* A checkpoint ends a state machine transaction: its digest is taken right after it, so it
     * describes the state at exactly its index on every node. */
    uint64_t start = rt__now_us();
    int rc = 0;
    for (size_t from = 0, i = 0; i < a->n && rc == 0; i++) {
        bool is_checkpoint = is_checkpoint_entry(&a->entries[i]);
        if (!is_checkpoint && i + 1 < a->n)
            continue;
        rc = rt->cfg.fsm.apply(rt->cfg.fsm.ctx, view + from, i + 1 - from, results + from);
        if (rc == 0 && is_checkpoint)
            rt__checkpoint_record(rt, a->entries[i].index);
        from = i + 1;
    }
    rt__hist_add(&rt->stats.apply, rt__now_us() - start);
    atomic_fetch_add(&rt->stats.applied_entries, a->n);
    atomic_fetch_add(&rt->stats.apply_batches, 1);
    if (rc != 0) {
        for (size_t i = 0; i < a->n; i++)
            free(results[i].data);
        free(results);
        free(view);
        free(ids);
        fsm_fatal(rt, "applying entries", rc);
        return RAFT_ESTORAGE;
    }

    struct rt_req *done = NULL;
    pthread_mutex_lock(&rt->lock);
    for (size_t i = 0; i < a->n; i++) {
        struct rt_req *req = ids[i] ? rt__table_find(&rt->requests, ids[i]) : NULL;
        if (req == NULL) {
            free(results[i].data); /* proposed elsewhere, or its proposer gave up */
            continue;
        }
        if (req->kind == RT_VERIFY) {
            rt__verify_begin_locked(rt, req, a->entries[i].index);
            continue;
        }
        rt__table_remove(&rt->requests, req);
        defer(&done, req, 0, &results[i]);
    }
    /* Completions by envelope come first, so a proposal applied in this batch is never taken
     * for one whose index was reused by another entry. */
    advance_locked(rt, a->entries[a->n - 1].index, &done);
    pthread_mutex_unlock(&rt->lock);
    run_done(rt, done);
    free(results);
    free(view);
    free(ids);
    return 0;
}

static void post_installed(struct raft_runtime *rt, uint64_t index, uint64_t term, int status)
{
    struct rt_event *e = calloc(1, sizeof *e);
    if (e == NULL) {
        fatal(rt, "reporting a snapshot install", raft_strerror(RAFT_ENOMEM));
        return;
    }
    e->ev.type = RAFT_EVENT_SNAPSHOT_INSTALLED;
    e->ev.snapshot_installed.index = index;
    e->ev.snapshot_installed.term = term;
    e->ev.snapshot_installed.status = status;
    rt__post_event(rt, e);
}

/* The last chunk arrived: verify the file; then the log writer resets the log, and only then is
 * the state machine replaced (RT_APPLY_RESTORE), so a crash in between finds a log that starts
 * after the snapshot and a snapshot file to restore from at start-up. */
static void install(struct raft_runtime *rt, struct rt_apply *a)
{
    struct store_snapshot_info info;
    int rc = store_snapshot_receive_finish(a->receiver, &info);
    a->receiver = NULL; /* freed by finish */
    if (rc != 0) {
        char msg[256];
        rt__log(rt, RAFT_LOG_WARN, "snapshot %llu/%llu from the leader refused: %s (%s)",
                (unsigned long long)a->index, (unsigned long long)a->term, rfs_strerror(rc),
                store_snapshot_errmsg(rt->snaps, msg, sizeof msg));
        post_installed(rt, a->index, a->term, rc);
        return;
    }
    struct rt_write *w = calloc(1, sizeof *w);
    if (w == NULL) {
        fatal(rt, "queueing a log reset", raft_strerror(RAFT_ENOMEM));
        return;
    }
    w->kind = RT_WRITE_RESET;
    w->index = a->index;
    w->term = a->term;
    rt__write(rt, w);
}

static void restore(struct raft_runtime *rt, struct rt_apply *a)
{
    int rc = rt->cfg.fsm.restore(rt->cfg.fsm.ctx, rt->snaps, a->index, a->term);
    if (rc != 0) {
        fsm_fatal(rt, "restoring a snapshot", rc);
        return;
    }
    atomic_fetch_add(&rt->stats.snapshots_installed, 1);
    rt__log(rt, RAFT_LOG_INFO, "installed snapshot %llu/%llu from the leader",
            (unsigned long long)a->index, (unsigned long long)a->term);
    struct rt_req *done = NULL;
    pthread_mutex_lock(&rt->lock);
    advance_locked(rt, a->index, &done);
    pthread_mutex_unlock(&rt->lock);
    run_done(rt, done);
    post_installed(rt, a->index, a->term, 0);
}

/* Fold the runs of committed entries queued behind a (at the head of q) into it, so that one
 * state machine transaction (and one sync) serves every commit the loop handed out meanwhile:
 * under load the core advances the commit index one acknowledgement at a time. */
static void merge_entries(struct rt_apply *a, struct rfs_queue *q)
{
    while (q->head != NULL) {
        struct rt_apply *b = RFS_QUEUE_ITEM(q->head, struct rt_apply, link);
        if (b->kind != RT_APPLY_ENTRIES)
            return;
        struct raft_entry *e = realloc(a->entries, (a->n + b->n) * sizeof *e);
        if (e == NULL)
            return; /* apply what we have; b follows on its own */
        memcpy(e + a->n, b->entries, b->n * sizeof *e);
        a->entries = e;
        a->n += b->n;
        rfs_queue_pop(q);
        free(b->entries); /* the entries' data now belongs to a */
        free(b);
    }
}

void *rt__apply_main(void *arg)
{
    struct raft_runtime *rt = arg;
    bool is_failed = false;
    struct rfs_queue q = {0};
    while (rt__worker_take(&rt->apply, &q)) {
        struct rfs_qlink *l;
        while ((l = rfs_queue_pop(&q)) != NULL) {
            struct rt_apply *a = RFS_QUEUE_ITEM(l, struct rt_apply, link);
            if (!is_failed) {
                switch (a->kind) {
                case RT_APPLY_ENTRIES:
                    merge_entries(a, &q);
                    is_failed = apply_entries(rt, a) != 0;
                    break;
                case RT_APPLY_INSTALL: install(rt, a); break;
                case RT_APPLY_RESTORE: restore(rt, a); break;
                }
            }
            apply_free(a);
        }
    }
    return NULL;
}

void rt__read_wait(struct raft_runtime *rt, uint64_t id, uint64_t read_index)
{
    pthread_mutex_lock(&rt->lock);
    struct rt_req *req = rt__table_find(&rt->requests, id);
    if (req == NULL) {
        pthread_mutex_unlock(&rt->lock); /* completed meanwhile (deadline, shutdown) */
        return;
    }
    req->read_index = read_index;
    if (atomic_load(&rt->applied) >= read_index) {
        rt__table_remove(&rt->requests, req);
        pthread_mutex_unlock(&rt->lock);
        rt__complete(rt, req, 0, NULL);
        return;
    }
    req->is_read_waiting = true;
    rt__table_update(&rt->requests, req);
    pthread_mutex_unlock(&rt->lock);
}

/* --- snapshots ------------------------------------------------------------------------------- */

static void *snapshot_main(void *arg)
{
    struct raft_runtime *rt = arg;
    struct store_snapshot_info info;
    int rc = rt->cfg.fsm.snapshot(rt->cfg.fsm.ctx, rt->snaps, &info);
    struct rt_event *e = rt->snapshot_taken; /* allocated with the thread */
    rt->snapshot_taken = NULL;
    e->ev.type = RAFT_EVENT_SNAPSHOT_TAKEN;
    if (rc != 0) {
        char msg[256];
        rt__log(rt, RAFT_LOG_WARN, "taking a snapshot failed: %s (%s)", rfs_strerror(rc),
                store_snapshot_errmsg(rt->snaps, msg, sizeof msg));
        e->ev.snapshot_taken.index = 0; /* the loop sees a failure */
    } else {
        e->ev.snapshot_taken.index = info.index;
        e->ev.snapshot_taken.size = info.size;
        e->snapshot_term = info.term;
    }
    rt__post_event(rt, e);
    return NULL;
}

int rt__snapshot_start(struct raft_runtime *rt)
{
    if (rt->has_snapshot_thread)
        return RAFT_EBUSY;
    /* The thread's answer is allocated now, so that the thread can always post it: the loop
     * joins the thread when it arrives. */
    rt->snapshot_taken = calloc(1, sizeof *rt->snapshot_taken);
    if (rt->snapshot_taken == NULL)
        return RAFT_ENOMEM;
    if (pthread_create(&rt->snapshot_thread, NULL, snapshot_main, rt) != 0) {
        free(rt->snapshot_taken);
        rt->snapshot_taken = NULL;
        return RAFT_ENOMEM;
    }
    rt->has_snapshot_thread = true;
    return 0;
}

void rt__snapshot_join(struct raft_runtime *rt)
{
    if (rt->has_snapshot_thread) {
        pthread_join(rt->snapshot_thread, NULL);
        rt->has_snapshot_thread = false;
    }
}
