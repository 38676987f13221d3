/* Applying committed entries to the inode state machine. Consecutive commands become one
 * store_fsm_apply_batch (one LMDB transaction); configuration entries are recorded in the
 * state machine so that its snapshots carry the configuration they belong to. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/node/replica.h"
#include "store/command.h"
#include "lib/error.h"
#include "store/snapshot.h"

#define RUN_MAX 256 /* commands per transaction */
/* Data bytes per transaction (a single larger command goes alone): LMDB refuses a transaction
 * that dirties more than 2^17 pages (MDB_TXN_FULL) and a full block takes two, so a run of
 * many whole-file writes must be cut. A failed apply stops the node (deciding ENOSPC for what
 * does not fit would make it differ from the others), and cutting runs changes no outcome. */
#define RUN_DATA_MAX ((size_t)64 << 20)

struct run {
    struct store_cmd cmds[RUN_MAX];
    size_t slots[RUN_MAX]; /* index into the entries of each command */
    size_t n;
    size_t data;          /* bytes of data the commands carry */
    uint64_t index, term; /* last entry covered, not yet recorded as applied */
    uint64_t recorded;
};

static int flush(struct fs_replica *rep, struct run *run, struct raft_apply_result *results)
{
    struct store_fsm *fsm = rep->fsm;
    if (run->index <= run->recorded)
        return 0;
    int rc;
    if (run->n == 0) {
        rc = store_fsm_apply_index(fsm, run->index, run->term);
    } else {
        struct store_fsm_result res[RUN_MAX];
        memset(res, 0, run->n * sizeof *res);
        rc = store_fsm_apply_batch(fsm, run->index, run->term, run->cmds, run->n, res);
        for (size_t i = 0; rc == 0 && i < run->n; i++) {
            struct raft_apply_result *r = &results[run->slots[i]];
            r->status = res[i].err;
            struct store_fsm_result *copy = malloc(sizeof *copy);
            if (copy == NULL)
                return RFS_ENOMEM;
            *copy = res[i];
            copy->wakeups = NULL; /* borrowed from fsm: the proposer's copy cannot keep it */
            copy->n_wakeups = 0;
            r->data = copy;
            r->len = sizeof *copy;
        }
        for (size_t i = 0; rc == 0 && rep->wakeup != NULL && i < run->n; i++)
            if (res[i].n_wakeups > 0)
                rep->wakeup(rep->wakeup_arg, res[i].wakeups, res[i].n_wakeups);
        if (rc == 0) {
            pthread_mutex_lock(&rep->lock);
            if (rep->observer != NULL)
                rep->observer(rep->observer_arg, run->cmds, res, run->n);
            pthread_mutex_unlock(&rep->lock);
        }
    }
    run->n = 0;
    run->data = 0;
    if (rc == 0)
        run->recorded = run->index;
    return rc;
}

static int apply(void *ctx, const struct raft_entry *entries, size_t n,
                 struct raft_apply_result *results)
{
    struct fs_replica *rep = ctx;
    struct run *run = malloc(sizeof *run);
    if (run == NULL)
        return RFS_ENOMEM;
    run->n = 0;
    run->data = 0;
    run->index = run->term = run->recorded = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct raft_entry *e = &entries[i];
        if (e->type == RAFT_ENTRY_CONFIG) {
            if ((rc = flush(rep, run, results)) != 0)
                break;
            rc = store_fsm_apply_config(rep->fsm, e->index, e->term, e->data, e->len);
            run->recorded = run->index = e->index;
            continue;
        }
        if (e->type == RAFT_ENTRY_COMMAND) {
            if (run->n == RUN_MAX && (rc = flush(rep, run, results)) != 0)
                break;
            struct store_cmd *c = &run->cmds[run->n];
            if (store_cmd_decode(e->data, e->len, c) != 0) {
                results[i].status = EINVAL; /* the same verdict on every node */
            } else {
                if (run->n > 0 && run->data + c->data_len > RUN_DATA_MAX) {
                    struct store_cmd next = *c; /* decoded fields point into the entry */
                    if ((rc = flush(rep, run, results)) != 0)
                        break;
                    c = &run->cmds[0];
                    *c = next;
                }
                c->index = e->index; /* session IDs and lock tokens */
                run->data += c->data_len;
                run->slots[run->n++] = i;
            }
        }
        run->index = e->index;
        run->term = e->term;
    }
    if (rc == 0)
        rc = flush(rep, run, results);
    free(run);
    return rc;
}

static int applied(void *ctx, uint64_t *index, uint64_t *term)
{
    struct fs_replica *rep = ctx;
    return store_fsm_applied(rep->fsm, index, term);
}

static int snapshot(void *ctx, struct store_snapshot_dir *sd, struct store_snapshot_info *out)
{
    struct fs_replica *rep = ctx;
    return store_fsm_snapshot(rep->fsm, sd, out);
}

static int restore(void *ctx, struct store_snapshot_dir *sd, uint64_t index, uint64_t term)
{
    struct fs_replica *rep = ctx;
    return store_fsm_restore(rep->fsm, sd, index, term);
}

static void errmsg(void *ctx, char *buf, size_t len)
{
    struct fs_replica *rep = ctx;
    store_fsm_errmsg(rep->fsm, buf, len);
}

static int digest(void *ctx, uint8_t out[RAFT_DIGEST_SIZE])
{
    _Static_assert(RAFT_DIGEST_SIZE == STORE_FSM_DIGEST_SIZE, "one digest size");
    struct fs_replica *rep = ctx;
    return store_fsm_digest(rep->fsm, out);
}

void fs_replica_init(struct fs_replica *rep, struct store_fsm *fsm)
{
    rep->fsm = fsm;
    pthread_mutex_init(&rep->lock, NULL);
    rep->observer = NULL;
    rep->observer_arg = NULL;
    rep->wakeup = NULL;
    rep->wakeup_arg = NULL;
}

void fs_replica_on_wakeups(struct fs_replica *rep, fs_replica_wakeup_fn fn, void *arg)
{
    rep->wakeup = fn;
    rep->wakeup_arg = arg;
}

void fs_replica_destroy(struct fs_replica *rep)
{
    pthread_mutex_destroy(&rep->lock);
}

void fs_replica_observe(struct fs_replica *rep, fs_replica_observer_fn fn, void *arg)
{
    pthread_mutex_lock(&rep->lock);
    rep->observer = fn;
    rep->observer_arg = arg;
    pthread_mutex_unlock(&rep->lock);
}

void fs_replica_fsm(struct fs_replica *rep, struct raft_fsm *out)
{
    out->ctx = rep;
    out->apply = apply;
    out->applied = applied;
    out->snapshot = snapshot;
    out->restore = restore;
    out->digest = digest;
    out->errmsg = errmsg;
}
