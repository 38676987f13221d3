/* The FUSE filesystem of raftfsd: mounts the inode state machine, serves reads from it and turns
 * every change into a proposal answered from its completion (DESIGN.md section 5). Only fs/
 * includes the FUSE headers; this header does not. */
#ifndef FS_FS_H
#define FS_FS_H

#include <stddef.h>
#include <stdint.h>

#include "fs/node/session.h" /* fs_log_fn, and the session's types fs_locks_* take */

struct raft_runtime;
struct store_fsm;
struct store_fsm_wakeup;

/* When reads wait for a ReadIndex barrier (DESIGN.md 5, "Consistency contract"). */
enum fs_consistency {
    FS_CONSISTENCY_OPEN = 0, /* open() and opendir() wait; default */
    FS_CONSISTENCY_STRICT,   /* every read-type operation waits; EIO without a quorum */
    FS_CONSISTENCY_LOCAL,    /* never wait */
};

/* This node's share of the cluster-wide locks (fs/ops_lock.c): its session (fs/node/session.c)
 * and the lock requests parked until granted. Owned by the caller; it outlives the runtime and
 * the mount. */
struct fs_locks;

/* A new lock state for node (its raft ID). log may be NULL. Returns 0 or RFS_ENOMEM. */
int fs_locks_new(uint64_t node, fs_log_fn log, void *log_ctx, struct fs_locks **out);

/* Start the session's keeper thread (fs_session_start: docs/fs.md, "Session liveness"). rt
 * and fsm are borrowed until fs_locks_stop; cfg is copied. Until a session is open, lock
 * requests fail with ENOLCK. Returns 0 or RFS_ENOMEM. */
int fs_locks_start(struct fs_locks *locks, struct raft_runtime *rt, struct store_fsm *fsm,
                   const struct fs_locks_config *cfg);

/* Fill *out with this node's own session (fs_session_local). Any thread. */
void fs_locks_local(struct fs_locks *locks, struct fs_locks_local *out);

/* Stop that thread and answer every parked lock request with ENOLCK. Call it after fs_run and
 * before raft_runtime_stop. NULL, or a lock state never started, is allowed. */
void fs_locks_stop(struct fs_locks *locks);

/* The apply path's lock wakeups (an fs_replica_wakeup_fn, arg the struct fs_locks): answer
 * this node's parked requests among them. Runs on the runtime's apply thread. */
void fs_locks_wakeups(void *arg, const struct store_fsm_wakeup *wakeups, size_t n);

/* Free the lock state, after fs_close. NULL is allowed. */
void fs_locks_free(struct fs_locks *locks);

struct fs_options {
    const char *mountpoint;   /* an existing directory */
    const char *fuse_options; /* extra "-o" options for libfuse, or NULL */
    enum fs_consistency consistency;
    unsigned op_timeout_ms; /* deadline of every proposal and read barrier */
    uint64_t max_file_size; /* bound of the write buffer of one open file */
    struct fs_locks *locks; /* borrowed until fs_close; its runtime must be fs_mount's */
};

struct fs;

struct fs_replica;

/* Mount fsm at opts->mountpoint (default_permissions, allow_other) and install the SIGTERM,
 * SIGINT and SIGHUP handlers that end fs_run. rep is the runtime's state machine adapter for
 * fsm: the filesystem observes it to invalidate the kernel's caches when commands are applied.
 * fsm, rt and rep are borrowed until fs_close; opts is copied (its strings too). On failure
 * writes a message to err (errlen bytes) and returns RFS_EIO or RFS_ENOMEM; nothing is left
 * mounted. */
int fs_mount(struct store_fsm *fsm, struct raft_runtime *rt, struct fs_replica *rep,
             const struct fs_options *opts, struct fs **out, char *err, size_t errlen);

/* Serve FUSE requests on a pool of threads until a signal or an unmount. Returns 0, or RFS_EIO
 * if the session loop failed. Requests still waiting for the runtime are answered when it
 * completes them: call raft_runtime_stop after fs_run and before fs_close. */
int fs_run(struct fs *fs);

/* Unmount, remove the signal handlers and free fs. The runtime must be stopped already (no
 * completion may still run). NULL is allowed. */
void fs_close(struct fs *fs);

#endif
