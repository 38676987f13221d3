/* Liveness of lock sessions (fs/node/liveness.c): the leader's bookkeeping of which node sessions
 * have gone silent, and the node's own deadline. Pure: time is always passed in, so the rules
 * are tested without a clock (test/unit/test_liveness.c). docs/fs.md, "Session liveness",
 * gives the argument these rules implement. */
#ifndef FS_LIVENESS_H
#define FS_LIVENESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/fsm.h"

#define FS_LIVENESS_PENDING_MAX 64 /* SESSION_END proposals in flight at once */

/* The leader's view. Not thread-safe: fs/node/session.c keeps it under its lock. */
struct fs_liveness {
    uint64_t node;       /* this node: its own session is never ended for silence */
    unsigned timeout_ms; /* session-timeout */
    unsigned delay_ms;   /* lock-delay */
    bool is_leader;
    uint64_t term;      /* of the leadership below */
    uint64_t office_ms; /* when this node was first seen leading in term */
    unsigned n_pending;
    uint64_t pending[FS_LIVENESS_PENDING_MAX]; /* sessions with a SESSION_END in flight */
};

/* What the runtime says of a peer: ms since its last frame (UINT64_MAX: never). */
struct fs_liveness_peer {
    uint64_t id;
    uint64_t silent_ms;
};

/* A session of the state machine, as the leader has applied it. */
struct fs_liveness_session {
    uint64_t id;
    uint64_t node;
    bool is_ended;                     /* ENDED: waiting out its lock-delay */
    struct store_fsm_time delay_until; /* ENDED only */
};

/* A SESSION_END to propose. */
struct fs_liveness_end {
    uint64_t session;
    uint32_t delay_ms; /* the lock-delay to ask for; 0 for the final end of an ENDED session */
    bool is_final;     /* ends an ENDED session whose lock-delay has passed */
};

void fs__liveness_init(struct fs_liveness *lv, uint64_t node, unsigned timeout_ms,
                       unsigned delay_ms);

/* The node's role as of now_ms (a monotonic clock in ms). A leadership not seen before (a new
 * term, or leading again) starts its grace period now: every node gets a full timeout from
 * here, whatever was heard before. */
void fs__liveness_role(struct fs_liveness *lv, bool is_leader, uint64_t term, uint64_t now_ms);

/* Which SESSION_ENDs the leader proposes at now_ms (same clock as fs__liveness_role) and wall
 * time wall (the clock stamped into commands, compared with the stored delay ends). peers are
 * the runtime's view of the members (a node not among them was never heard). A LIVE session of
 * another node silent for timeout_ms, counted from the later of its last frame and this
 * leadership's start, is ended with the lock-delay; an ENDED one is ended for good once wall
 * has reached its delay end. Sessions with an end in flight are skipped; the ones returned are
 * marked in flight until fs__liveness_done. Writes at most cap ends to out and returns how many;
 * nothing when not leading. */
size_t fs__liveness_decide(struct fs_liveness *lv, uint64_t now_ms, struct store_fsm_time wall,
                           const struct fs_liveness_peer *peers, size_t n_peers,
                           const struct fs_liveness_session *sessions, size_t n_sessions,
                           struct fs_liveness_end *out, size_t cap);

/* The SESSION_END of session completed (whatever its outcome): it may be decided again. */
void fs__liveness_done(struct fs_liveness *lv, uint64_t session);

/* How long after the start of its last confirmed contact a node gives up its own session
 * (three quarters of timeout_ms, a little less). */
uint64_t fs__liveness_self_ms(unsigned timeout_ms);

/* The longest a contact probe may take, from its start to its completion, to confirm contact
 * (an eighth of timeout_ms). With fs__liveness_self_ms it leaves an eighth of the timeout for
 * the clock-rate assumption of docs/fs.md. */
uint64_t fs__liveness_probe_ms(unsigned timeout_ms);

#endif
