/* Proposing a store command to the cluster and turning its outcome into an errno
 * (fs/node/propose.c). Used by the FUSE operations (fs/) and the lock-session keeper
 * (fs/node/session.c); no FUSE here. */
#ifndef FS_PROPOSE_H
#define FS_PROPOSE_H

#include "raft/runtime/runtime.h"
#include "store/command.h"

/* errno for the status of a state machine read: itself if it is an errno, EIO for a store
 * failure (RFS_E*). */
int fs__read_errno(int rc);

/* errno for a completed proposal: the state machine's errno, or the mapping of a RAFT_E* code
 * (no quorum, deadline, no leader, shutdown: EROFS; RAFT_ETOOBIG: EFBIG; others: EIO). result
 * may be NULL. */
int fs__proposal_errno(int status, const struct raft_apply_result *result);

/* Fill cmd's time with the proposer's CLOCK_REALTIME. */
void fs__now(struct store_cmd *cmd);

/* Encode cmd and propose it through rt with a deadline of timeout_ms. done(arg, ...) is called
 * exactly once if this returns 0; otherwise it is not called and the return value is an errno
 * (as fs__proposal_errno maps it). cmd is only read. Any thread. */
int fs__propose(struct raft_runtime *rt, unsigned timeout_ms, const struct store_cmd *cmd,
                raft_done_fn done, void *arg);

#endif
