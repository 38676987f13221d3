/* Internal header of the deterministic cluster simulation (test/sim): N consensus cores in one
 * process on a virtual clock, a faulty network, disks with latency and crashes, a key-value
 * state machine, clients, and a global oracle that checks the Raft invariants after every step.
 *
 * Design notes (numbered so comments can cite them):
 *  1. Determinism: every random choice comes from the cluster's one PRNG (or from generators
 *     seeded from it), time is the virtual clock `now` (milliseconds), and events with equal
 *     times run in the order they were scheduled (a sequence number breaks ties). A seed
 *     therefore replays exactly, with or without --trace.
 *  2. Ownership: the simulator owns deep copies of everything it keeps (messages in flight,
 *     log entries, snapshot bytes). Pointers from a raft_update are used only inside the
 *     processing of that update.
 *  3. Two views of each node's log: `durable` is what survives a crash (log writes that have
 *     completed); `shadow` is the log as the core told its storage to make it (every truncation
 *     and append of every update, completed or not). The core's own log must always equal the
 *     shadow; a crash replaces the shadow by the durable log.
 *  4. Failures: the first violated invariant is recorded in cluster->failure and the run stops
 *     at the end of the current event; later cascading reports are ignored.
 *  5. History timestamps come from a counter (cluster->hist_clock) that advances each time one
 *     is taken, so call < ret always holds and real-time order is preserved exactly. */
#ifndef RAFTFS_SIM_H
#define RAFTFS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "raft/raft.h"
#include "test/sim/lincheck.h"

#define SIM_MAX_NODES 10 /* initial voters plus spares */
#define SIM_TICK_MS   10 /* virtual milliseconds per core tick */
#define SIM_KEYS      6  /* keys of the test state machine; few, so histories interleave */

/* --- PRNG (rng.c): xoshiro256** seeded through splitmix64 ---------------------------------- */

struct sim_rng {
    uint64_t s[4];
};

/* Seed *r from any 64-bit value (0 included). */
void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
/* Uniform in [lo, hi]; lo <= hi. */
uint64_t sim_rng_range(struct sim_rng *r, uint64_t lo, uint64_t hi);
/* True with probability per_mille / 1000. */
bool sim_rng_chance(struct sim_rng *r, unsigned per_mille);

/* 64-bit FNV-1a of len bytes, continuing from h (start with SIM_HASH_INIT). */
#define SIM_HASH_INIT 0xcbf29ce484222325ULL
uint64_t sim_hash(uint64_t h, const void *data, size_t len);

/* --- a log held by the simulator (log.c) ----------------------------------------------------
 * Entries base+1 .. base+n, deep copies. base/base_term describe what precedes them (a
 * snapshot, or 0/0). */

struct sim_log {
    uint64_t base;
    uint64_t base_term;
    struct raft_entry *e; /* e[i].index == base + 1 + i; data owned */
    size_t n, cap;
};

uint64_t sim_log_last(const struct sim_log *l);
/* Term at index: base_term at base, the entry's term inside, 0 when unknown (before base or
 * past the end). */
uint64_t sim_log_term(const struct sim_log *l, uint64_t index);
/* Borrowed entry at index, or NULL outside (base, last]. */
const struct raft_entry *sim_log_get(const struct sim_log *l, uint64_t index);
/* Drop entries >= from; from <= base empties the log (base unchanged). */
void sim_log_truncate(struct sim_log *l, uint64_t from);
/* Append deep copies. Entries at or below base are skipped (they were compacted while the
 * write was pending); the rest must start at last+1 (returns -1 otherwise, log unchanged). */
int sim_log_append(struct sim_log *l, const struct raft_entry *entries, size_t n);
/* Drop entries <= to (no-op if to <= base); the term at `to` becomes base_term. */
void sim_log_compact(struct sim_log *l, uint64_t to);
/* Empty the log and restart it after (base, base_term). */
void sim_log_reset(struct sim_log *l, uint64_t base, uint64_t base_term);
/* Make dst a deep copy of src (dst's old content freed). */
void sim_log_copy(struct sim_log *dst, const struct sim_log *src);
void sim_log_free(struct sim_log *l);
/* Deep copy of one entry into *dst (data malloc'd; NULL when len is 0). */
void sim_entry_copy(struct raft_entry *dst, const struct raft_entry *src);
/* Hash of an entry's type and payload (what the log-matching registry compares). */
uint64_t sim_entry_hash(const struct raft_entry *e);

/* --- the test state machine (kv.c) ---------------------------------------------------------
 * A map of SIM_KEYS keys to 64-bit values (0: never written). Commands are fixed 28-byte
 * records; a snapshot serializes the whole map with its index, term and a checksum. */

#define SIM_CMD_BYTES  28
#define SIM_SNAP_BYTES (4 + 8 + 8 + 8 * SIM_KEYS + 8)

struct sim_kv {
    uint64_t values[SIM_KEYS];
    uint64_t applied_index; /* last index applied (or restored from a snapshot) */
    uint64_t applied_term;
};

struct sim_cmd {
    uint32_t key;
    uint64_t value;
    uint64_t client;
    uint64_t request;
};

void sim_cmd_encode(const struct sim_cmd *cmd, uint8_t buf[SIM_CMD_BYTES]);
/* Returns -1 if the payload is not a command. */
int sim_cmd_decode(const void *data, size_t len, struct sim_cmd *cmd);
/* Apply one committed entry (any type); deterministic. */
void sim_kv_apply(struct sim_kv *kv, const struct raft_entry *e);
/* Digest of the map (not of the applied index): equal digests mean equal states. */
uint64_t sim_kv_digest(const struct sim_kv *kv);
/* Serialize into buf (SIM_SNAP_BYTES). */
void sim_kv_snapshot(const struct sim_kv *kv, uint8_t buf[SIM_SNAP_BYTES]);
/* Replace *kv from snapshot bytes; returns -1 (kv unchanged) if they are malformed or do not
 * describe (index, term). */
int sim_kv_restore(struct sim_kv *kv, const void *buf, size_t len, uint64_t index, uint64_t term);

/* --- trace (trace.c) -------------------------------------------------------------------------
 * A ring of the last SIM_TRACE_RING readable events; with `is_live` every event is also
 * printed to `out` as it happens. */

#define SIM_TRACE_RING 200
#define SIM_TRACE_LINE 200

struct sim_trace {
    char lines[SIM_TRACE_RING][SIM_TRACE_LINE];
    uint64_t n; /* events recorded in total */
    bool is_live;
    FILE *out;
};

struct sim_cluster;

/* Record one event, prefixed with the virtual time. */
void sim_tracef(struct sim_cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the ring, oldest first, to f. */
void sim_trace_dump(const struct sim_trace *t, FILE *f);
/* One-line summary of a message into buf. */
void sim_msg_describe(const struct raft_msg *m, char *buf, size_t size);

/* --- network (net.c) ------------------------------------------------------------------------ */

/* A message in flight: a deep copy (entries and their data, snapshot chunk), owned. */
struct sim_msg {
    struct raft_msg m;
};

/* Deep-copy m; chunk (len m->snapshot.len) replaces the data of a RAFT_MSG_SNAPSHOT. */
struct sim_msg *sim_msg_copy(const struct raft_msg *m, const void *chunk);
void sim_msg_free(struct sim_msg *sm);

struct sim_net {
    bool is_blocked[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1]; /* [from][to]: one-way cut */
    unsigned drop_per_mille;
    unsigned dup_per_mille;
    unsigned delay_min, delay_max;     /* ms, uniform */
    unsigned spike_per_mille;          /* occasional long delay, reorders */
    unsigned spike_max;                /* ms */
    uint64_t sent, dropped, delivered; /* statistics */
};

/* Send a copy of m from node m->from (the sender's stored snapshot supplies chunk data).
 * Applies drops, duplicates, delays and partitions; schedules the delivery events. */
void sim_net_send(struct sim_cluster *c, const struct raft_msg *m);
/* Whether a message from -> to currently gets through the partition state. */
bool sim_net_link_up(const struct sim_cluster *c, unsigned from, unsigned to);
/* Remove every partition. */
void sim_net_heal(struct sim_cluster *c);
/* Install a random partition (split, leader isolation or one-way cuts); traced. */
void sim_net_partition(struct sim_cluster *c);

/* --- allocator with failures (node.c) -------------------------------------------------------- */

struct sim_alloc {
    struct sim_rng rng;      /* its own stream, so that failures do not shift the cluster's */
    unsigned fail_per_mille; /* 0: never fails */
    long live;               /* allocations not yet freed */
    uint64_t failures;
};

/* --- disk (disk.c) ---------------------------------------------------------------------------- */

/* One pending log write: truncate, then append; completes at complete_at. */
struct sim_write {
    uint64_t id;
    uint64_t truncate_from;
    struct raft_entry *entries; /* deep copies, owned */
    size_t n;
    uint64_t complete_at;
};

struct sim_disk {
    /* Durable state: survives crashes. */
    uint64_t term;
    uint64_t vote;
    struct sim_log log;
    struct raft_snapshot_meta snap; /* index 0: none */
    uint8_t *snap_data;             /* snap.size bytes, owned */

    /* Volatile: lost in a crash. */
    struct sim_write *pending; /* FIFO, oldest first */
    size_t n_pending, cap_pending;
    uint64_t last_complete_at;
    uint64_t next_write_id;
    uint64_t recv_index, recv_term; /* snapshot being received */
    uint8_t *recv;
    size_t recv_len, recv_cap;
};

/* Queue a write (copying the entries) with a latency drawn from the cluster's disk profile;
 * schedules its completion event. Returns the write's id. */
uint64_t sim_disk_write(struct sim_cluster *c, unsigned node, uint64_t truncate_from,
                        const struct raft_entry *entries, size_t n);
/* Complete the oldest pending write if its id is `id`: make it durable and, if it appended
 * entries, report RAFT_EVENT_PERSISTED to the core. Stale ids are ignored. */
void sim_disk_complete(struct sim_cluster *c, unsigned node, uint64_t id);
/* Complete every pending write now, in order (before a snapshot install replaces the log);
 * their PERSISTED reports are scheduled as events at the current time, in order, because the
 * caller is in the middle of processing an update of this node. */
void sim_disk_flush(struct sim_cluster *c, unsigned node);
/* A crash: a random prefix of the pending writes completes (silently), the rest and the
 * snapshot being received are lost. */
void sim_disk_crash(struct sim_cluster *c, unsigned node);
/* Healing: pending writes complete within a millisecond each, in order, as on a normal disk. */
void sim_disk_heal(struct sim_cluster *c, unsigned node);
/* Store snapshot bytes (copied) as the durable snapshot, replacing the previous one. */
void sim_disk_set_snapshot(struct sim_disk *d, const struct raft_snapshot_meta *meta,
                           const uint8_t *data);
void sim_disk_free(struct sim_disk *d);

/* --- nodes (node.c) ----------------------------------------------------------------------------
 */

struct sim_node {
    unsigned id;
    bool is_up;
    bool is_spare;  /* started with no configuration, waiting to be added */
    uint32_t epoch; /* incremented at every crash: stale events are ignored */
    struct raft *core;
    struct raft_allocator allocator; /* ctx = &alloc */
    struct sim_alloc alloc;
    unsigned disk_factor; /* latency multiplier of this node's disk (slow disks) */

    struct sim_disk disk;
    struct sim_log shadow;                      /* note 3 */
    struct raft_configuration shadow_base_conf; /* configuration at shadow.base */
    bool has_shadow_base_conf;
    struct raft_configuration conf; /* latest configuration in the shadow (what the core uses) */
    uint64_t conf_index;            /* its index; 0 with has_conf false: none known */
    bool has_conf;
    /* The configuration before the update being processed: a leader may commit under it and
     * append a new one in the same step (one-server changes keep both quorums overlapping). */
    struct raft_configuration conf_before;
    bool is_losing_all; /* scripted: the next crash loses every pending write */
    bool is_installing; /* a snapshot install was reported and its event is not yet stepped */
    struct sim_kv kv;

    /* What the oracle last saw of the core, this incarnation. */
    enum raft_role role;
    uint64_t term;
    uint64_t leader;
    uint64_t commit;
    uint64_t leader_term; /* term in which it last became leader (completeness checked once) */

    uint64_t restarts, steps;
};

/* Create the core from the durable state (restart) and rebuild the state machine from the
 * snapshot. Returns 0 or a RAFT_E* code (the node stays down; retried later). */
int sim_node_start(struct sim_cluster *c, unsigned node);
/* Drop the core and everything volatile (note 3); the node is down. */
void sim_node_crash(struct sim_cluster *c, unsigned node);
/* Step the core with e and process the update it returns (checks, persistence, sends,
 * applies). Returns raft_step's result. The node must be up. */
int sim_node_step(struct sim_cluster *c, unsigned node, const struct raft_event *e);
/* The latest configuration in the node's shadow log at or before index (or at shadow.base).
 * Returns false when the node knows none. *conf_index receives the entry's index. */
bool sim_node_conf_at(const struct sim_node *n, uint64_t index, struct raft_configuration *conf,
                      uint64_t *conf_index);

/* --- the oracle (invariants.c)
 * -------------------------------------------------------------------- */

struct sim_entry_key {
    uint64_t index, term; /* term 0: empty slot */
    uint64_t hash;
    uint64_t prev_term; /* UINT64_MAX: unknown */
};

struct sim_index_info {
    bool is_set;
    uint64_t term;
    uint64_t hash;
    uint64_t digest; /* applied registry: KV digest after applying the index */
};

struct sim_oracle {
    uint64_t *leader_of_term; /* [term]: the leader, 0 none */
    size_t n_terms;
    uint64_t *vote_of[SIM_MAX_NODES + 1]; /* [node][term]: candidate granted, across crashes */
    size_t n_vote_terms[SIM_MAX_NODES + 1];
    struct sim_entry_key *entries; /* open addressing, (index, term) -> content */
    size_t n_entries, cap_entries;
    struct sim_index_info *committed; /* [index] */
    size_t cap_committed;
    uint64_t max_committed;
    struct sim_index_info *applied; /* [index] */
    size_t cap_applied;
};

void sim_oracle_free(struct sim_oracle *o);
/* Log matching: an entry (index, term) seen anywhere must always have the same content and
 * the same previous term. prev_term UINT64_MAX: unknown. `where` names the source. */
void sim_check_entry(struct sim_cluster *c, const struct raft_entry *e, uint64_t prev_term,
                     const char *where);
/* Election safety: node is leader in term. Leader completeness on the first report. */
void sim_check_leader(struct sim_cluster *c, unsigned node, uint64_t term);
/* A granted (binding) vote from node to candidate in term: one per term, ever. */
void sim_check_vote(struct sim_cluster *c, unsigned node, uint64_t term, uint64_t candidate);
/* The node's commit index moved from `from` to `to`: commit never decreases, committed
 * entries agree everywhere, a leader's newly committed entry is durable on a quorum. */
void sim_check_commit(struct sim_cluster *c, unsigned node, uint64_t from, uint64_t to);
/* State machine safety: node applied e (KV digest after it: digest). */
void sim_check_apply(struct sim_cluster *c, unsigned node, const struct raft_entry *e,
                     uint64_t digest);
/* A snapshot (index, term) with the given KV digest was taken or installed on node. */
void sim_check_snapshot(struct sim_cluster *c, unsigned node, uint64_t index, uint64_t term,
                        uint64_t digest);
/* The core's own log (raft_status, raft_log_get) equals the shadow the updates described. */
void sim_check_core_log(struct sim_cluster *c, unsigned node);

/* --- clients (client.c) ------------------------------------------------------------------------
 */

enum sim_op_state {
    SIM_OP_PROPOSING = 1, /* step in progress: waiting for proposed_index */
    SIM_OP_WAIT_APPLY,    /* write appended at (index, term) on the node */
    SIM_OP_WAIT_READ_INDEX,
    SIM_OP_WAIT_READ_APPLY, /* read index known: wait for the node to apply it */
    SIM_OP_DONE,
    SIM_OP_FAILED,  /* definitely had no effect: left out of the history */
    SIM_OP_UNKNOWN, /* write whose outcome is unknown */
};

struct sim_op {
    enum lin_op_kind kind;
    enum sim_op_state state;
    unsigned node;
    uint32_t epoch; /* the node's incarnation when issued */
    uint32_t key;
    uint64_t value;
    uint64_t call, ret;
    uint64_t index, term; /* write: where it was appended; read: the read index */
};

struct sim_clients {
    struct sim_op *ops;
    size_t n, cap;
    size_t *pending; /* indexes of ops in a WAIT state */
    size_t n_pending, cap_pending;
    size_t proposing[8]; /* ops of the proposal being stepped */
    unsigned n_proposing;
    uint64_t next_value;
    uint64_t acked, failed, unknown, reads_done;
};

/* Issue one random operation (write or read) at a random node; traced. */
void sim_client_issue(struct sim_cluster *c);
/* Propose a write of a fresh value at node; returns the op index, or SIZE_MAX if refused. */
size_t sim_client_write(struct sim_cluster *c, unsigned node);
/* Hooks called while an update of node is processed. */
void sim_client_proposed(struct sim_cluster *c, unsigned node, uint64_t index, uint64_t term);
void sim_client_read_result(struct sim_cluster *c, unsigned node, const struct raft_read_result *r);
void sim_client_applied(struct sim_cluster *c, unsigned node, const struct raft_entry *e);
/* The node's state machine jumped to a snapshot (install or restart). */
void sim_client_snapshot(struct sim_cluster *c, unsigned node);
void sim_client_crashed(struct sim_cluster *c, unsigned node);
/* End of run: settle pending ops from the oracle and check the history. Returns enum
 * lin_result; fills detail on a violation. */
int sim_client_check(struct sim_cluster *c, char *detail, size_t size);
void sim_clients_free(struct sim_clients *cl);

/* --- the cluster and its schedule (cluster.c) ---------------------------------------------------
 */

enum sim_ev_kind {
    SIM_EV_TICK = 1,
    SIM_EV_DELIVER,
    SIM_EV_DISK,
    SIM_EV_LOCAL, /* a runtime event for one core (snapshot taken/installed) */
    SIM_EV_CLIENT,
    SIM_EV_FAULT,
    SIM_EV_CRASH,
    SIM_EV_RESTART,
    SIM_EV_SCRIPT, /* the next step of a scripted scenario */
};

struct sim_ev {
    uint64_t at, seq;
    enum sim_ev_kind kind;
    unsigned node;
    uint32_t epoch;
    uint64_t id;          /* SIM_EV_DISK: write id */
    struct sim_msg *msg;  /* SIM_EV_DELIVER: owned */
    struct raft_event ev; /* SIM_EV_LOCAL */
};

/* The fault mix of one seed, drawn from the seed (cluster.c). */
struct sim_profile {
    const char *name;
    unsigned fault_every_min, fault_every_max; /* ms between fault actions */
    unsigned w_partition, w_heal, w_crash, w_crash_leader, w_net, w_change, w_transfer, w_campaign,
        w_alloc;                         /* weights of fault actions */
    unsigned crash_after_vote_per_mille; /* crash a voter right after it grants */
    unsigned down_min, down_max;         /* ms a crashed node stays down */
    unsigned disk_min, disk_max;         /* ms per log write */
    unsigned disk_stall_per_mille, disk_stall_ms;
    unsigned leader_disk_factor; /* latency multiplier while the node leads */
    unsigned alloc_fail_per_mille;
    unsigned client_every_min, client_every_max;
    unsigned read_per_mille;        /* share of reads among client ops */
    unsigned read_leader_per_mille; /* reads aimed at a node that believes it leads */
    unsigned fault_ms;              /* length of the fault phase */
    int script;                     /* 0: random schedule; else a scripted scenario */
};

struct sim_result {
    bool is_failed;
    bool has_gave_up;
    char reason[512]; /* "invariant: details" on failure, summary otherwise */
    uint64_t steps;
};

struct sim_cluster {
    uint64_t seed;
    uint64_t now;
    struct sim_rng rng;
    struct sim_profile profile;
    struct raft_options opts; /* template; id and seed set per node */

    unsigned n_nodes;                         /* all nodes, spares included: ids 1..n_nodes */
    unsigned n_initial;                       /* bootstrapped voters: ids 1..n_initial */
    struct sim_node nodes[SIM_MAX_NODES + 1]; /* [id], [0] unused */

    struct sim_ev *heap;
    size_t n_heap, cap_heap;
    uint64_t next_seq;

    struct sim_net net;
    struct sim_oracle oracle;
    struct sim_clients clients;
    struct sim_trace trace;

    bool is_healing; /* the fault phase is over */
    int script_step;
    uint64_t script_mark;     /* time the current script step started */
    unsigned script_roles[8]; /* nodes playing the scenario's parts */
    uint64_t script_index;    /* the index the scenario watches */
    uint64_t next_request_id;
    uint64_t hist_clock; /* note 5 */
    uint64_t steps;
    uint64_t elections, crashes, snapshots_taken, snapshots_installed, changes_done;

    bool is_failed;
    char failure[512];
};

/* Schedule an event (copied). */
void sim_schedule(struct sim_cluster *c, const struct sim_ev *ev);
/* Record a violated invariant (the first one wins; note 4). */
void sim_fail(struct sim_cluster *c, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The next history timestamp (note 5). */
uint64_t sim_hist_now(struct sim_cluster *c);
/* A node that is up and believes it leads with the highest term, or 0. */
unsigned sim_find_leader(const struct sim_cluster *c);

/* Run one seed with n_nodes initial voters (0: pick from the seed); the trace is printed live
 * to `live` when not NULL. On failure, "FAIL seed N: invariant: details" and the last events of
 * the trace go to `report` (if not NULL). Fills *res. Never exits. */
void sim_run(uint64_t seed, unsigned n_nodes, FILE *live, FILE *report, struct sim_result *res);

/* Fault actions (faults.c), each traced. */
void sim_fault_step(struct sim_cluster *c);
void sim_fault_crash(struct sim_cluster *c, unsigned node);
void sim_fault_change(struct sim_cluster *c);
/* Scripted scenarios (script.c): one poll, every millisecond of the fault phase. */
void sim_script_step(struct sim_cluster *c);
/* Which scenario a seed runs (0: the random schedule). */
int sim_script_of(uint64_t seed);
void sim_profile_pick(struct sim_cluster *c);

#endif
