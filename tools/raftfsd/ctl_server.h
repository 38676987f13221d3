/* raftfsd's control server: the root-only UNIX socket raftfs-ctl talks to
 * (docs/ctl-protocol.md). */
#ifndef RAFTFSD_CTL_SERVER_H
#define RAFTFSD_CTL_SERVER_H

#include <stddef.h>

#include "raft/runtime/runtime.h"

struct ctl_server;
struct store_fsm;
struct fs_locks;

/* Where the server logs (every request, at debug level): raft_runtime_config.log's signature. */
typedef void ctl_server_log_fn(void *ctx, enum raft_log_level level, const char *text);

/* Create the socket at path (mode 0600; the parent directory is made with mode 0700 if it is
 * missing; a stale socket is replaced, a live one or any other file is not) and serve it on a
 * thread of its own. rt, fsm (read for the LOCKS and SESSIONS requests), locks (asked for
 * OWN_SESSION) and log_ctx are borrowed until ctl_server_stop; path is copied. On failure
 * writes what failed to err (errlen bytes) and returns an RFS_E* code; nothing is left
 * behind. */
int ctl_server_start(const char *path, struct raft_runtime *rt, struct store_fsm *fsm,
                     struct fs_locks *locks, ctl_server_log_fn *log, void *log_ctx,
                     struct ctl_server **out, char *err, size_t errlen);

/* Stop accepting, disconnect every client, wait for the server's threads, unlink the socket and
 * free srv. Requests still waiting for the runtime are abandoned (their completions, which the
 * runtime still owes, free what they use). Call before raft_runtime_stop. NULL is allowed. */
void ctl_server_stop(struct ctl_server *srv);

#endif
