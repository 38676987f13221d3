/* Proposing a store command to the cluster and turning its outcome into an errno
 * (fs/node/propose.c). Used by the FUSE operations (fs/) and the lock-session keeper
 * (fs/node/session.c); no FUSE here. */
#ifndef FS_PROPOSE_H
#define FS_PROPOSE_H

#include "raft/runtime/runtime.h"

struct store_cmd;
struct store_fsm_result;

/* errno for the status of a state machine read: itself if it is an errno, EIO for a store
 * failure (RFS_E*). */
int fs__read_errno(int rc);

/* The outcome of a completed proposal or read barrier, from its raft_done_fn's status and
 * result (NULL allowed): returns its errno (the state machine's errno, or the mapping of a
 * RAFT_E* status: no quorum, deadline, no leader, shutdown: EROFS; RAFT_ETOOBIG: EFBIG;
 * RAFT_ENOMEM: ENOMEM; others: EIO), and frees result->data. Every completion calls this exactly
 * once; nothing else frees the data. out may be NULL when only the errno matters. Otherwise, when
 * the errno is 0, *out is a copy of the state machine's result (without wakeups: fs/node/replica.c
 * does not pass them on); a success that carries none, which no command applied by
 * fs/node/replica.c does, returns EIO. */
int fs__proposal_result(int status, struct raft_apply_result *result, struct store_fsm_result *out);

/* Fill cmd's time with the proposer's CLOCK_REALTIME. */
void fs__now(struct store_cmd *cmd);

/* Encode cmd and propose it through rt with a deadline of timeout_ms. done(arg, ...) is called
 * exactly once if this returns 0; otherwise it is not called and the return value is an errno
 * (a RAFT_E* code mapped as by fs__proposal_result). cmd is only read. Any thread. */
int fs__propose(struct raft_runtime *rt, unsigned timeout_ms, const struct store_cmd *cmd,
                raft_done_fn done, void *arg);

#endif
