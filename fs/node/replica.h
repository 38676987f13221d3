/* The inode state machine as the Raft runtime's state machine: entries carry encoded commands
 * (store/command.h), applied in batches by store/fsm.c. An observer (the FUSE layer) may be
 * told about every command applied, to keep the kernel's caches coherent. */
#ifndef FS_REPLICA_H
#define FS_REPLICA_H

#include <pthread.h>

#include "raft/runtime/runtime.h"
#include "store/fsm.h"

/* Called on the apply thread after cmds[0..n) were committed to the state machine, with their
 * results. Everything is borrowed for the call (names point into the log entries). */
typedef void (*fs_replica_observer_fn)(void *arg, const struct store_cmd *cmds,
                                       const struct store_fsm_result *res, size_t n);

/* Called on the apply thread with the lock wakeups of one applied command (borrowed for the
 * call), after the transaction that applied it committed. */
typedef void (*fs_replica_wakeup_fn)(void *arg, const struct store_fsm_wakeup *wakeups, size_t n);

/* Owned by the caller; must outlive the runtime that applies through it. */
struct fs_replica {
    struct store_fsm *fsm;
    pthread_mutex_t lock;
    fs_replica_observer_fn observer; /* protected by lock; NULL: none */
    void *observer_arg;
    fs_replica_wakeup_fn wakeup; /* set before the runtime starts; NULL: none */
    void *wakeup_arg;
};

/* Prepare rep for fsm (borrowed until fs_replica_destroy), without an observer. */
void fs_replica_init(struct fs_replica *rep, struct store_fsm *fsm);
void fs_replica_destroy(struct fs_replica *rep);

/* Fill *out so the runtime applies entries to rep's state machine and takes its digests
 * (store_fsm_digest) at checkpoints. The result of each command,
 * handed to its proposer, is a malloc'd struct store_fsm_result with raft_apply_result.status =
 * its errno (0 on success); EINVAL for an entry that does not decode (every node decides the
 * same). */
void fs_replica_fsm(struct fs_replica *rep, struct raft_fsm *out);

/* Hand every applied command's lock wakeups to fn (raftfsd: fs_locks_wakeups). Before the
 * runtime starts. */
void fs_replica_on_wakeups(struct fs_replica *rep, fs_replica_wakeup_fn fn, void *arg);

/* Install (fn non-NULL) or remove (NULL) the observer. Safe while the runtime applies: once
 * this returns, a removed observer is not running and will not be called again. */
void fs_replica_observe(struct fs_replica *rep, fs_replica_observer_fn fn, void *arg);

#endif
