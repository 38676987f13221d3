/* The FUSE filesystem of raftfsd: mounts the inode state machine, serves reads from it and turns
 * every change into a proposal answered from its completion (DESIGN.md section 5). Only fs/
 * includes the FUSE headers; this header does not. */
#ifndef FS_FS_H
#define FS_FS_H

#include <stddef.h>
#include <stdint.h>

#include "raft/runtime/runtime.h"
#include "store/fsm.h"

/* When reads wait for a ReadIndex barrier (DESIGN.md 5, "Consistency contract"). */
enum fs_consistency {
    FS_CONSISTENCY_OPEN = 0, /* open() and opendir() wait; default */
    FS_CONSISTENCY_STRICT,   /* every read-type operation waits; EIO without a quorum */
    FS_CONSISTENCY_LOCAL,    /* never wait */
};

/* Log sink (raftfsd's): text is borrowed for the call. */
typedef void (*fs_log_fn)(void *ctx, enum raft_log_level level, const char *text);

/* This node's share of the cluster-wide locks (fs/ops_lock.c): its session and the lock
 * requests parked until granted. Owned by the caller; it outlives the runtime and the mount. */
struct fs_locks;

/* A new lock state for node (its raft ID). log may be NULL. Returns 0 or RFS_ENOMEM. */
int fs_locks_new(uint64_t node, fs_log_fn log, void *log_ctx, struct fs_locks **out);

struct fs_locks_config {
    unsigned op_timeout_ms;      /* deadline of the session's proposals and probes */
    unsigned session_timeout_ms; /* > 0; must be the same on every node (docs/fs.md) */
    unsigned lock_delay_ms;      /* asked for by this node when it leads and ends a session */
};

/* Start the keeper thread (docs/fs.md, "Session liveness"). It opens the node's session through
 * rt (SESSION_OPEN, retried until it commits, and again whenever the session was lost or
 * ended), confirms contact with a leader by read barriers, and gives the session up when it has
 * had no confirmed contact for most of the session timeout. While this node leads, it also ends
 * the sessions of nodes it has not heard from for the session timeout (SESSION_END with the
 * lock-delay, then the final one). rt and fsm are borrowed until fs_locks_stop; cfg is copied.
 * Until a session is open, lock requests fail with ENOLCK. Returns 0 or RFS_ENOMEM. */
int fs_locks_start(struct fs_locks *locks, struct raft_runtime *rt, struct store_fsm *fsm,
                   const struct fs_locks_config *cfg);

enum fs_locks_state {
    FS_LOCKS_OPENING = 1, /* no session yet: being opened */
    FS_LOCKS_OPEN,
    FS_LOCKS_LOST, /* given up or found ended; a new one is being opened */
};

/* This node's own session, as the node sees it. */
struct fs_locks_local {
    enum fs_locks_state state;
    uint64_t session;  /* OPEN: its ID; LOST: the lost one's; OPENING: 0 */
    uint64_t since_ms; /* OPEN: since its last confirmed contact began; LOST: since the loss */
    char reason[160];  /* LOST: why, for people */
};

/* Fill *out. Any thread. */
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
