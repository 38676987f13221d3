/* The inode state machine as the Raft runtime's state machine: entries carry encoded commands
 * (store/command.h), applied in batches by store/fsm.c. */
#ifndef FS_REPLICA_H
#define FS_REPLICA_H

#include "raft/raft.h"
#include "store/fsm.h"

/* Fill *out so the runtime applies entries to fsm (borrowed until the runtime stops). The
 * result of each command, handed to its proposer, is a malloc'd struct store_fsm_result with
 * raft_apply_result.status = its errno (0 on success); EINVAL for an entry that does not decode
 * (every node decides the same). */
void fs_replica_fsm(struct store_fsm *fsm, struct raft_fsm *out);

/* Called in the apply path with the lock wakeups of one applied command (borrowed for the
 * call), after the transaction that applied it committed. */
typedef void (*fs_replica_wakeup_fn)(void *arg, const struct store_fsm_wakeup *wakeups, size_t n);

struct fs_replica {
    struct store_fsm *fsm;
    fs_replica_wakeup_fn wakeup; /* raftfsd: fs_locks_wakeups */
    void *wakeup_arg;
};

/* Like fs_replica_fsm, and hand every command's lock wakeups to r->wakeup. r is borrowed until
 * the runtime stops. */
void fs_replica_fsm_hooked(struct fs_replica *r, struct raft_fsm *out);

#endif
