/* State of one consensus core, shared by the files of raft/ (not a public header).
 *
 * Design notes, with the invariants each file maintains (checked by the simulator):
 *
 *  1. The log lives in memory from log.offset+1 to log_last(). Entries at or below
 *     snapshot.index may be missing; everything above it is present. An entry is freed only
 *     when a conflicting suffix is truncated (never at or below commit) or when a snapshot that
 *     covers it is taken and it falls out of the trailing window.
 *  2. durable_index <= log_last() and the entries up to it are on the caller's disk. It only
 *     moves up on RAFT_EVENT_PERSISTED for an (index, term) still in the log, and down when a
 *     truncation removes entries above the new last index.
 *  3. applied <= commit, and applied <= durable_index: entries are handed out only once they
 *     are committed and on the local disk, so a restart never finds its state machine ahead of
 *     its log beyond what a snapshot covers.
 *  4. A follower acknowledges at most min(durable_index, ack_limit), where ack_limit is the
 *     last index it has verified against the current leader's log in this term (§5.3): entries
 *     beyond it may be stale leftovers that merely did not conflict yet.
 *  5. The leader counts itself toward a quorum with durable_index, never log_last() (thesis
 *     §10.2.1), and commits only entries of its own term by counting (§5.4.2).
 *  6. At most one configuration change is uncommitted at a time (thesis §4.1), and a leader
 *     changes nothing before an entry of its own term is committed (thesis §4.1, "bug in single
 *     server changes"). Configurations take effect when appended, not when committed.
 */
#ifndef RAFT_INTERNAL_H
#define RAFT_INTERNAL_H

#include "raft/mutants.h"
#include "raft/raft.h"

/* --- memory (alloc.c) --- */
void *raft__alloc(struct raft *r, size_t size);
void *raft__realloc(struct raft *r, void *p, size_t size);
void raft__free(struct raft *r, void *p);
/* Grow *arr (element size elem) to hold at least need elements; 0 or RAFT_ENOMEM. */
int raft__grow(struct raft *r, void **arr, size_t *cap, size_t need, size_t elem);

/* --- the in-memory log (log.c) --- */
struct raft_log {
    struct raft_entry *entries; /* entries[i].index == offset + 1 + i */
    uint64_t *bytes;            /* bytes[i]: payload bytes of entries[0..i], for flow control */
    size_t n;
    size_t cap;
    uint64_t offset;     /* index just before entries[0] */
    uint64_t bytes_base; /* bytes of entries already removed from the front */
};

enum progress_state {
    PROGRESS_PROBE = 1, /* one append at a time until the follower's log position is known */
    PROGRESS_REPLICATE, /* pipelined appends, bounded by bytes in flight */
    PROGRESS_SNAPSHOT,  /* streaming a snapshot */
};

/* The leader's view of one follower (§5.3, "nextIndex" and "matchIndex"). */
struct raft_progress {
    uint64_t id;
    enum progress_state state;
    uint64_t next;
    uint64_t match;
    bool is_probe_sent;     /* PROBE: an append is outstanding */
    unsigned ack_idle;      /* REPLICATE: ticks with entries in flight and no acknowledgement */
    bool is_recent_active;  /* heard from within the current check-quorum period */
    unsigned since_contact; /* ticks since the last response */
    uint64_t read_seq;      /* highest ReadIndex round it confirmed */
    uint64_t commit_sent;   /* highest commit index a message sent to it let it learn */
    /* snapshot streaming */
    uint64_t snap_index;
    uint64_t snap_size;
    uint64_t snap_sent;
    uint64_t snap_acked;
    unsigned snap_idle; /* ticks without progress */
};

/* Heartbeat rounds whose start tick is remembered, for lease reads. */
#define RAFT_ROUND_TICKS 64
/* Reads a follower may have forwarded to the leader and not yet seen answered. */
#define RAFT_MAX_FORWARDED_READS 4096

struct pending_read {
    uint64_t id;
    uint64_t from; /* 0: a local request; else a follower's id */
    uint64_t index;
    uint64_t seq; /* round that must confirm it; 0 until the leader committed in its term */
};

enum change_phase {
    CHANGE_NONE = 0,
    CHANGE_CATCHUP, /* new voter replicating as a learner */
    CHANGE_COMMIT,  /* waiting for the configuration entry to commit */
};

struct pending_change {
    enum change_phase phase;
    uint64_t id;
    enum raft_change_op op;
    uint64_t server;
    uint64_t index; /* CHANGE_COMMIT: the configuration entry */
    unsigned round;
    unsigned round_ticks;
    uint64_t round_target;
};

struct pending_transfer {
    bool is_active;
    uint64_t id;
    uint64_t target;
    uint64_t term; /* the term it started in */
    unsigned elapsed;
    bool is_timeout_now_sent;
    unsigned since_timeout_now;
};

/* A snapshot being received from the leader. */
struct snapshot_recv {
    bool is_active;
    bool is_installing; /* install requested, waiting for RAFT_EVENT_SNAPSHOT_INSTALLED */
    uint64_t from;      /* leader and term sending it: files of different leaders differ */
    uint64_t from_term;
    uint64_t index;
    uint64_t term;
    uint64_t size;
    uint64_t received;
    struct raft_configuration conf;
};

/* Accumulated output of one step (update.c). */
struct raft_out {
    struct raft_msg *msgs;
    size_t n_msgs, cap_msgs;
    struct raft_read_result *reads;
    size_t n_reads, cap_reads;
    struct raft_request_result *changes;
    size_t n_changes, cap_changes;
    struct raft_request_result *transfers;
    size_t n_transfers, cap_transfers;
    uint64_t first_new;     /* lowest index appended or rewritten in this step; 0: none */
    uint64_t truncate_from; /* 0: none */
    bool is_hard_state_dirty;
    bool want_snapshot;
    uint64_t compact_to;
    uint64_t proposed_index, proposed_term;
    void *chunk; /* copy of a received snapshot chunk */
    size_t chunk_cap;
    bool has_chunk, install;
    uint64_t chunk_offset;
    uint32_t chunk_len;
};

struct raft {
    struct raft_options opts;
    struct raft_allocator alloc;
    uint64_t rng; /* splitmix64 state */

    /* persistent (hard) state, §5 Figure 2 */
    uint64_t term;
    uint64_t vote;

    enum raft_role role;
    uint64_t leader;
    uint64_t commit;
    uint64_t applied;
    uint64_t applied_bytes; /* payload applied since the last snapshot */
    uint64_t durable_index;
    uint64_t ack_limit; /* invariant 4 */
    uint64_t acked;     /* last index acknowledged to the leader in this term */

    struct raft_log log;
    struct raft_snapshot_meta snapshot;
    bool is_snapshot_requested;
    unsigned snapshot_request_age;

    struct raft_configuration conf; /* latest, possibly uncommitted (invariant 6) */
    uint64_t conf_index;

    /* timers, in ticks */
    uint64_t ticks;            /* since raft_new */
    unsigned election_elapsed; /* since the leader was heard from, or the election began */
    unsigned randomized_timeout;
    unsigned heartbeat_elapsed;
    unsigned quorum_elapsed;
    unsigned stall_ticks; /* leader: ticks with unpersisted entries and no progress */

    /* elections: the answers of this campaign */
    struct raft_vote {
        uint64_t id;
        bool is_granted;
    } votes[RAFT_MAX_SERVERS];
    unsigned n_votes;

    /* leader */
    struct raft_progress progress[RAFT_MAX_SERVERS];
    unsigned n_progress;
    uint64_t term_start;                    /* index of the leader's first entry of its term */
    uint64_t read_seq;                      /* last ReadIndex round started */
    uint64_t round_ticks[RAFT_ROUND_TICKS]; /* tick each recent round started */
    struct pending_read *reads;
    size_t n_reads, cap_reads;
    struct pending_change change;
    struct pending_transfer transfer;

    /* follower */
    uint64_t *fwd_reads; /* ids of reads forwarded to the leader */
    size_t n_fwd_reads, cap_fwd_reads;
    struct snapshot_recv recv;

    /* what the last update reported, to flag changes */
    enum raft_role reported_role;
    uint64_t reported_term, reported_leader;

    struct raft_out out;
    bool is_vote_hidden; /* RAFT_MUTANT_FORGET_VOTE only */
};

/* log.c */
int raft__log_init(struct raft *r, uint64_t offset);
void raft__log_close(struct raft *r);
uint64_t raft__log_last(const struct raft *r);
uint64_t raft__log_last_term(const struct raft *r);
/* Term of the entry at index into *term; false when unknown (compacted, or past the end). */
bool raft__log_term(const struct raft *r, uint64_t index, uint64_t *term);
struct raft_entry *raft__log_at(const struct raft *r, uint64_t index);
/* Append one entry with a copy of data. 0 or RAFT_ENOMEM (log unchanged). */
int raft__log_append(struct raft *r, uint64_t term, uint8_t type, const void *data, uint32_t len);
/* Remove entries >= index. */
void raft__log_truncate(struct raft *r, uint64_t index);
/* Remove entries <= index from the front. */
void raft__log_compact(struct raft *r, uint64_t index);
/* Remove every entry and continue after (index); used by snapshot install. */
void raft__log_reset(struct raft *r, uint64_t index);
/* Payload bytes of entries in (from, to]. */
uint64_t raft__log_bytes(const struct raft *r, uint64_t from, uint64_t to);

/* update.c */
struct raft_msg *raft__msg(struct raft *r, enum raft_msg_type type, uint64_t to);
void raft__read_result(struct raft *r, uint64_t id, uint64_t index, int status);
void raft__change_result(struct raft *r, uint64_t id, int status);
void raft__transfer_result(struct raft *r, uint64_t id, int status);
void raft__out_reset(struct raft *r);
void raft__out_finish(struct raft *r, struct raft_update *u);
void raft__out_close(struct raft *r);
void raft__mark_new(struct raft *r, uint64_t index);

/* raft.c */
unsigned raft__quorum(unsigned voters);
bool raft__is_voter(const struct raft *r, uint64_t id);
uint64_t raft__random(struct raft *r);
void raft__set_term(struct raft *r, uint64_t term);

/* election.c */
void raft__become_follower(struct raft *r, uint64_t term, uint64_t leader);
void raft__campaign(struct raft *r, bool is_pre_vote, bool is_transfer);
void raft__reset_election_timer(struct raft *r);
void raft__tick_election(struct raft *r);
void raft__recv_vote(struct raft *r, const struct raft_msg *m);
void raft__recv_vote_resp(struct raft *r, const struct raft_msg *m);

/* replication.c */
void raft__become_leader(struct raft *r);
void raft__tick_leader(struct raft *r);
int raft__propose(struct raft *r, const struct raft_event *e);
void raft__send_append(struct raft *r, struct raft_progress *pr);
void raft__broadcast_append(struct raft *r);
void raft__broadcast_heartbeat(struct raft *r);
void raft__maybe_commit(struct raft *r);
void raft__recv_append(struct raft *r, const struct raft_msg *m);
void raft__recv_append_resp(struct raft *r, const struct raft_msg *m);
void raft__recv_heartbeat(struct raft *r, const struct raft_msg *m);
void raft__recv_heartbeat_resp(struct raft *r, const struct raft_msg *m);
void raft__persisted(struct raft *r, uint64_t index, uint64_t term);
void raft__send_ack(struct raft *r);
struct raft_progress *raft__progress(struct raft *r, uint64_t id);
void raft__progress_sync(struct raft *r);
void raft__collect_apply(struct raft *r, struct raft_update *u);

/* readindex.c */
uint64_t raft__read_confirmed(struct raft *r);
void raft__start_round(struct raft *r);
int raft__read_index(struct raft *r, uint64_t id);
void raft__recv_read_index(struct raft *r, const struct raft_msg *m);
void raft__recv_read_index_resp(struct raft *r, const struct raft_msg *m);
void raft__reads_advance(struct raft *r);
void raft__reads_fail_all(struct raft *r, int status);

/* membership.c */
int raft__change(struct raft *r, const struct raft_event *e);
void raft__conf_appended(struct raft *r, const struct raft_entry *e);
void raft__conf_rebuild(struct raft *r);
void raft__change_tick(struct raft *r);
void raft__change_progress(struct raft *r);
void raft__change_abort(struct raft *r, int status);
int raft__transfer(struct raft *r, const struct raft_event *e);
void raft__transfer_tick(struct raft *r);
void raft__transfer_check(struct raft *r, struct raft_progress *pr);
void raft__recv_timeout_now(struct raft *r, const struct raft_msg *m);

/* snapshot.c */
void raft__snapshot_taken(struct raft *r, uint64_t index, uint64_t size, int *rv);
void raft__snapshot_installed(struct raft *r, uint64_t index, uint64_t term, int status);
void raft__send_snapshot(struct raft *r, struct raft_progress *pr);
void raft__recv_snapshot(struct raft *r, const struct raft_msg *m);
void raft__recv_snapshot_resp(struct raft *r, const struct raft_msg *m);
void raft__snapshot_tick(struct raft *r, struct raft_progress *pr);
void raft__maybe_want_snapshot(struct raft *r);

#endif
