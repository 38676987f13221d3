/* Applying committed entries to the inode state machine. Consecutive commands become one
 * store_fsm_apply_batch (one LMDB transaction); configuration entries are recorded in the
 * state machine so that its snapshots carry the configuration they belong to. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/replica.h"
#include "store/command.h"
#include "store/error.h"
#include "store/snapshot.h"

#define RUN_MAX 256 /* commands per transaction */

struct run {
    struct store_cmd cmds[RUN_MAX];
    size_t slots[RUN_MAX]; /* index into the entries of each command */
    size_t n;
    uint64_t index, term; /* last entry covered, not yet recorded as applied */
    uint64_t recorded;
};

/* Apply the run; hand the lock wakeups to hook (may be NULL). */
static int flush(struct store_fsm *fsm, const struct fs_replica *hook, struct run *run,
                 struct raft_apply_result *results)
{
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
            r->data = malloc(sizeof res[i]);
            if (r->data == NULL)
                return RFS_ENOMEM;
            if (hook != NULL && res[i].n_wakeups > 0)
                hook->wakeup(hook->wakeup_arg, res[i].wakeups, res[i].n_wakeups);
            res[i].wakeups = NULL; /* borrowed from fsm: the proposer's copy cannot keep it */
            res[i].n_wakeups = 0;
            memcpy(r->data, &res[i], sizeof res[i]);
            r->len = sizeof res[i];
        }
    }
    run->n = 0;
    if (rc == 0)
        run->recorded = run->index;
    return rc;
}

static int apply_to(struct store_fsm *fsm, const struct fs_replica *hook,
                    const struct raft_entry *entries, size_t n, struct raft_apply_result *results)
{
    struct run *run = malloc(sizeof *run);
    if (run == NULL)
        return RFS_ENOMEM;
    run->n = 0;
    run->index = run->term = run->recorded = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct raft_entry *e = &entries[i];
        if (e->type == RAFT_ENTRY_CONFIG) {
            if ((rc = flush(fsm, hook, run, results)) != 0)
                break;
            rc = store_fsm_apply_config(fsm, e->index, e->term, e->data, e->len);
            run->recorded = run->index = e->index;
            continue;
        }
        if (e->type == RAFT_ENTRY_COMMAND) {
            if (run->n == RUN_MAX && (rc = flush(fsm, hook, run, results)) != 0)
                break;
            if (store_cmd_decode(e->data, e->len, &run->cmds[run->n]) != 0) {
                results[i].status = EINVAL; /* the same verdict on every node */
            } else {
                run->cmds[run->n].index = e->index; /* session IDs and lock tokens */
                run->slots[run->n++] = i;
            }
        }
        run->index = e->index;
        run->term = e->term;
    }
    if (rc == 0)
        rc = flush(fsm, hook, run, results);
    free(run);
    return rc;
}

static int apply(void *ctx, const struct raft_entry *entries, size_t n,
                 struct raft_apply_result *results)
{
    return apply_to(ctx, NULL, entries, n, results);
}

static int applied(void *ctx, uint64_t *index, uint64_t *term)
{
    return store_fsm_applied(ctx, index, term);
}

static int snapshot(void *ctx, struct store_snapshot_dir *sd, struct store_snapshot_info *out)
{
    return store_fsm_snapshot(ctx, sd, out);
}

static int restore(void *ctx, struct store_snapshot_dir *sd, uint64_t index, uint64_t term)
{
    return store_fsm_restore(ctx, sd, index, term);
}

void fs_replica_fsm(struct store_fsm *fsm, struct raft_fsm *out)
{
    out->ctx = fsm;
    out->apply = apply;
    out->applied = applied;
    out->snapshot = snapshot;
    out->restore = restore;
}

static int apply_hooked(void *ctx, const struct raft_entry *entries, size_t n,
                        struct raft_apply_result *results)
{
    const struct fs_replica *r = ctx;
    return apply_to(r->fsm, r, entries, n, results);
}

static int applied_hooked(void *ctx, uint64_t *index, uint64_t *term)
{
    return applied(((const struct fs_replica *)ctx)->fsm, index, term);
}

static int snapshot_hooked(void *ctx, struct store_snapshot_dir *sd,
                           struct store_snapshot_info *out)
{
    return snapshot(((const struct fs_replica *)ctx)->fsm, sd, out);
}

static int restore_hooked(void *ctx, struct store_snapshot_dir *sd, uint64_t index, uint64_t term)
{
    return restore(((const struct fs_replica *)ctx)->fsm, sd, index, term);
}

void fs_replica_fsm_hooked(struct fs_replica *r, struct raft_fsm *out)
{
    out->ctx = r;
    out->apply = apply_hooked;
    out->applied = applied_hooked;
    out->snapshot = snapshot_hooked;
    out->restore = restore_hooked;
}
