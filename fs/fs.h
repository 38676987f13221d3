/* The FUSE filesystem of raftfsd: mounts the inode state machine, serves reads from it and turns
 * every change into a proposal answered from its completion (DESIGN.md section 5). Only fs/
 * includes the FUSE headers; this header does not. */
#ifndef FS_FS_H
#define FS_FS_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "store/fsm.h"

/* When reads wait for a ReadIndex barrier (DESIGN.md 5, "Consistency contract"). */
enum fs_consistency {
    FS_CONSISTENCY_OPEN = 0, /* open() and opendir() wait; default */
    FS_CONSISTENCY_STRICT,   /* every read-type operation waits; EIO without a quorum */
    FS_CONSISTENCY_LOCAL,    /* never wait */
};

struct fs_options {
    const char *mountpoint;   /* an existing directory */
    const char *fuse_options; /* extra "-o" options for libfuse, or NULL */
    enum fs_consistency consistency;
    unsigned op_timeout_ms; /* deadline of every proposal and read barrier */
    uint64_t max_file_size; /* bound of the write buffer of one open file */
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
