/* The inode state machine as the Raft runtime's state machine: entries carry encoded commands
 * (store/command.h), applied in batches by store/fsm.c. */
#ifndef FS_REPLICA_H
#define FS_REPLICA_H

#include "raft/raft.h"
#include "store/fsm.h"

/* Fill *out so the runtime applies entries to fsm (borrowed until the runtime stops), and takes
 * its digests (store_fsm_digest) at checkpoints. The
 * result of each command, handed to its proposer, is a malloc'd struct store_fsm_result with
 * raft_apply_result.status = its errno (0 on success); EINVAL for an entry that does not decode
 * (every node decides the same). */
void fs_replica_fsm(struct store_fsm *fsm, struct raft_fsm *out);

#endif
