/* The node's lock session (fs/node/session.c): opened, kept and given up by a keeper thread,
 * which also ends silent nodes' sessions while this node leads (docs/fs.md, "Session
 * liveness"). The cluster-wide locks above it (fs/ops_lock.c) name it in their requests and park
 * their blocking requests on it; no FUSE here. */
#ifndef FS_SESSION_H
#define FS_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "raft/runtime/runtime.h"

struct store_fsm;

/* Log sink (raftfsd's): text is borrowed for the call. */
typedef void (*fs_log_fn)(void *ctx, enum raft_log_level level, const char *text);

/* The session's settings (raftfsd's; named for the locks it serves, fs_locks_start). */
struct fs_locks_config {
    unsigned op_timeout_ms;      /* deadline of the session's proposals and probes */
    unsigned session_timeout_ms; /* > 0; must be the same on every node (docs/fs.md) */
    unsigned lock_delay_ms;      /* asked for by this node when it leads and ends a session */
};

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

/* How the session tells the locks above it that requests parked on it must fail. */
struct fs_session_hooks {
    /* Called with the session's lock held when session (0: every session, the keeper stops) is
     * no longer this node's: take the requests parked on it off their list and return them
     * (NULL: none). Must not call the session back. */
    void *(*detach)(void *arg, uint64_t session);
    /* Called without the lock, once after each detach: answer what it returned (NULL allowed)
     * with ENOLCK and free it. */
    void (*fail)(void *arg, void *detached);
    void *arg;
};

struct fs_session;

/* A new session state for node (its raft ID), not started. log may be NULL; hooks is copied,
 * its arg borrowed until fs_session_free. Returns 0 or RFS_ENOMEM. */
int fs_session_new(uint64_t node, fs_log_fn log, void *log_ctx,
                   const struct fs_session_hooks *hooks, struct fs_session **out);

/* Start the keeper thread. It opens the node's session through rt (SESSION_OPEN, retried until
 * it commits, and again whenever the session was lost or ended), confirms contact with a
 * leader by read barriers, and gives the session up when it has had no confirmed contact for
 * most of the session timeout. While this node leads, it also ends the sessions of nodes it has
 * not heard from for the session timeout (SESSION_END with the lock-delay, then the final one).
 * rt and fsm are borrowed until fs_session_stop; cfg is copied. Returns 0 or RFS_ENOMEM. */
int fs_session_start(struct fs_session *s, struct raft_runtime *rt, struct store_fsm *fsm,
                     const struct fs_locks_config *cfg);

/* Stop the keeper thread and have every parked request failed (hooks). Before
 * raft_runtime_stop. A session never started is allowed (nothing to do). */
void fs_session_stop(struct fs_session *s);

/* Free s, after fs_session_stop. NULL is allowed. */
void fs_session_free(struct fs_session *s);

/* Fill *out. Any thread. */
void fs_session_local(struct fs_session *s, struct fs_locks_local *out);

/* Has this node given up its session (or found it ended) and not opened a new one yet? */
bool fs_session_is_lost(struct fs_session *s);

/* The open session's ID; 0 while none is open. Any thread. */
uint64_t fs_session_id(struct fs_session *s);

/* Give session up, if it is still the node's (a lock command found it ended): its parked
 * requests fail, and the keeper opens a new one. Any thread but the keeper's. */
void fs_session_give_up(struct fs_session *s, uint64_t session, const char *why);

/* Called with the session's lock held: record a request of session with ID request (park it,
 * if it blocks). Returns 0, or an errno (then the ID is not used). Must not call the session
 * back. */
typedef int (*fs_session_request_fn)(void *arg, uint64_t session, uint64_t request);

/* Under the session's lock, so that no request is parked on a session after its loss: call
 * fn with the open session and a new request ID of it, and return its result; ENOLCK without
 * calling it while no session is open. Any thread. */
int fs_session_request(struct fs_session *s, fs_session_request_fn fn, void *arg);

#endif
