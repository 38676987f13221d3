/* The runtime's public API: the threads, durable log, transport and state machine around the
 * pure core of raft/raft.h, as fs/ and tools/ use them (docs/runtime.md). */
#ifndef RAFT_RUNTIME_H
#define RAFT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/* ==============================================================================================
 * The runtime (raft/runtime/): the threads, durable log, transport and state machine around the
 * core, with the asynchronous API that fs/ and tools/ use (docs/runtime.md).
 *
 * Threads: an event loop (the core, timers, the transport), a log writer (group commit: one
 * durable LMDB transaction per batch of writes), an apply thread (the state machine) and a
 * snapshot thread. Every function below may be called from any thread. Completion callbacks run
 * on the runtime's threads: they must be quick and must not call back into the runtime
 * synchronously waiting for it.
 *
 * Every request completes exactly once: with success, with a clear error, or with an "outcome
 * unknown" error; on shutdown, on loss of leadership and at its deadline. Nothing waits forever.
 * ============================================================================================== */

struct raft_runtime;
struct store_snapshot_dir;
struct store_snapshot_info;

/* What the state machine answers for one applied command. */
struct raft_apply_result {
    int status; /* the state machine's verdict for the proposer (raftfs: 0 or an errno) */
    void *data; /* optional, malloc'd: handed to the proposer's callback on the node that
                   proposed; freed by the runtime everywhere else */
    size_t len;
};

#define RAFT_DIGEST_SIZE 32 /* bytes of a state digest (raft_fsm.digest) */

/* Longest cluster ID (bytes, without the NUL): the transport's identity is the ID, "/" and the
 * cluster epoch in up to 20 digits. The one limit: option parsers check against it. */
#define RAFT_CLUSTER_ID_MAX 43

/* The state machine. apply and restore run on the apply thread, snapshot on the snapshot thread
 * (concurrently with apply: it must copy a consistent state, e.g. from one LMDB transaction). */
struct raft_fsm {
    void *ctx;
    /* Apply entries[0..n) in order, atomically with recording entries[n-1] (index, term) as
     * applied. COMMAND entries carry the proposer's bytes; NOOP entries (barriers, new leaders'
     * entries) and CONFIG entries only advance the applied index (a CONFIG entry's data is the
     * encoded configuration, which the state machine keeps for its snapshots). Fill results[i]
     * for COMMAND entries. Returns 0, or nonzero when the state machine cannot go on: the
     * runtime then stops the node rather than let its state diverge. */
    int (*apply)(void *ctx, const struct raft_entry *entries, size_t n,
                 struct raft_apply_result *results);
    /* The last applied index and term (0, 0 for a new state machine). */
    int (*applied)(void *ctx, uint64_t *index, uint64_t *term);
    /* Write a snapshot of the state into sd and describe it in *out. */
    int (*snapshot)(void *ctx, struct store_snapshot_dir *sd, struct store_snapshot_info *out);
    /* Replace the state with the snapshot (index, term) in sd (already verified). */
    int (*restore)(void *ctx, struct store_snapshot_dir *sd, uint64_t index, uint64_t term);
    /* Optional (NULL: checkpoints report RAFT_EINVAL). A digest of the logical state as applied
     * so far, equal on two nodes exactly when they hold the same state. Called on the apply
     * thread between two applies, when a checkpoint entry was applied (raft_runtime_verify). */
    int (*digest)(void *ctx, uint8_t out[RAFT_DIGEST_SIZE]);
    /* Optional (NULL: none). Right after apply, restore or applied failed, on the thread that
     * called it: write what failed, with its context ("put inode 42: MDB_MAP_FULL"), into buf
     * (len > 0 bytes, always NUL-terminated; "" when there is nothing to add). The runtime puts
     * it in the log line that reports the failure. */
    void (*errmsg)(void *ctx, char *buf, size_t len);
};

enum raft_log_level {
    RAFT_LOG_ERROR = 0,
    RAFT_LOG_WARN,
    RAFT_LOG_INFO,
    RAFT_LOG_DEBUG,
};

struct raft_runtime_config {
    uint64_t id;
    const char *data_dir;   /* the runtime keeps its log in DIR/log, snapshots in DIR/snapshots */
    const char *listen;     /* "host:port" to accept peers on */
    const char *cluster_id; /* 1..RAFT_CLUSTER_ID_MAX bytes, no '/'; peers with another
                               cluster ID are refused */
    const char *tls_ca;     /* PEM files: the cluster CA, this node's certificate and key */
    const char *tls_cert;
    const char *tls_key;
    unsigned tick_ms;            /* length of a core tick; 0: 10 ms */
    struct raft_options options; /* core tunables in ticks (id and seed are set by the runtime) */
    /* When the node has no state yet: NULL to wait until a leader adds it, or the initial
     * configuration of a new cluster (every initial node gets the same one). Ignored when the
     * node has state. */
    const struct raft_configuration *bootstrap;
    /* Addresses of other servers to reach before the configuration names them (a node waiting
     * to be added must be able to answer the leader); NULL: none. Suffrage is ignored. */
    const struct raft_configuration *peers;
    /* The cluster epoch a node without state takes (0 for a cluster never recovered). A node
     * with state keeps the epoch it has. Peers of another epoch are refused at connection
     * time, like peers of another cluster ID. */
    uint64_t epoch;
    struct raft_fsm fsm;
    uint64_t log_map_size; /* LMDB map of the log store; 0: defaults */
    uint64_t log_map_max;
    uint64_t max_frame_bytes;   /* transport limit; 0: 64 MiB */
    uint64_t max_pending_bytes; /* proposals queued or in flight; 0: 64 MiB */
    void (*log)(void *ctx, enum raft_log_level level, const char *text);
    void *log_ctx;
    /* Fault hooks of the transport from the start (tests), in the syntax of
     * raft_runtime_set_faults; borrowed for raft_runtime_start. NULL: none. */
    const char *transport_faults;
};

/* Open the log and snapshots, restore the state machine if it is behind the latest snapshot,
 * start the threads and the transport. On success *out runs until raft_runtime_stop. On failure
 * a message naming what failed is written to err (errlen bytes) and an RAFT_E* code returned. */
int raft_runtime_start(const struct raft_runtime_config *cfg, struct raft_runtime **out, char *err,
                       size_t errlen);

/* Stop: every pending request completes with RAFT_ESHUTDOWN, the threads are joined, files
 * closed, and rt freed. Must not be called from a completion callback. */
void raft_runtime_stop(struct raft_runtime *rt);

/* Completion of a request. status 0: done (for a proposal: committed and applied on this node,
 * result is the state machine's answer; the callee owns result->data). Otherwise a RAFT_E*:
 *   RAFT_ENOTLEADER, RAFT_ENOTAPPLIED, RAFT_EBUSY, RAFT_ETOOBIG, RAFT_ECONFCHANGED, ...: definitely
 *     not done, a retry is safe;
 *   RAFT_ETIMEDOUT, RAFT_ELEADERSHIPLOST: the outcome is unknown (it may still be applied);
 *   RAFT_ESHUTDOWN, RAFT_ESTORAGE: the node stopped; the outcome of a proposal is unknown. */
typedef void (*raft_done_fn)(void *arg, int status, struct raft_apply_result *result);

/* Propose a command (data copied). On a follower it is forwarded to the leader. done is called
 * once, within timeout_ms (0: the default, 5 s) plus one tick. Returns 0 when accepted (done
 * will be called) or an error now (done will not be): RAFT_ETOOBIG, RAFT_ENOMEM, RAFT_EBUSY
 * (too many bytes pending), RAFT_ESHUTDOWN, RAFT_ESTORAGE. */
int raft_runtime_propose(struct raft_runtime *rt, const void *data, size_t len, unsigned timeout_ms,
                         raft_done_fn done, void *arg);

/* Linearizable read barrier (ReadIndex, thesis §6.4): done(0) once the local state machine has
 * applied everything the leader had committed when the call was made; the caller then reads
 * locally. Errors as for propose (RAFT_ETIMEDOUT when there is no quorum). */
int raft_runtime_read_index(struct raft_runtime *rt, unsigned timeout_ms, raft_done_fn done,
                            void *arg);

/* Membership change (leader; forwarded otherwise). expect_index 0 or the configuration index
 * the change is based on. address is copied. */
int raft_runtime_change(struct raft_runtime *rt, enum raft_change_op op, uint64_t server,
                        const char *address, uint64_t expect_index, unsigned timeout_ms,
                        raft_done_fn done, void *arg);

/* Leadership transfer to server (0: the most up-to-date voter). */
int raft_runtime_transfer(struct raft_runtime *rt, uint64_t server, unsigned timeout_ms,
                          raft_done_fn done, void *arg);

/* Take a snapshot now. */
int raft_runtime_snapshot(struct raft_runtime *rt, unsigned timeout_ms, raft_done_fn done,
                          void *arg);

/* Compare the state of every member (docs/runtime.md, "Checkpoints and verify"): a checkpoint
 * entry is committed like a barrier; every node that applies it records the state machine's
 * digest at its index; then this node asks each member of the configuration for its digest at
 * that index over the transport. done gets status 0 and result->data, a malloc'd struct
 * raft_runtime_verify the callee frees, once every member answered or at the deadline
 * (members that did not answer by then have RAFT_ETIMEDOUT); or an error, as for a barrier,
 * when the checkpoint itself did not commit. */
int raft_runtime_verify(struct raft_runtime *rt, unsigned timeout_ms, raft_done_fn done, void *arg);

struct raft_runtime_verify {
    uint64_t index; /* of the checkpoint */
    unsigned n;
    struct {
        uint64_t id;
        /* 0, or why there is no digest: RAFT_ETIMEDOUT (no answer), RAFT_ESTALE (the node
         * skipped the checkpoint: it installed a snapshot past it, or recorded too many
         * checkpoints since), RAFT_EINVAL (its state machine has no digest). */
        int status;
        uint8_t digest[RAFT_DIGEST_SIZE];
    } nodes[RAFT_MAX_SERVERS];
};

struct raft_runtime_peer {
    uint64_t id;
    enum raft_suffrage suffrage;
    char address[RAFT_ADDRESS_MAX];
    uint64_t match;           /* leader only */
    uint64_t last_contact_ms; /* leader only: since its last response */
    bool is_connected;
};

struct raft_runtime_status {
    uint64_t id;
    enum raft_role role;
    uint64_t term;
    uint64_t leader; /* 0: unknown */
    char leader_address[RAFT_ADDRESS_MAX];
    uint64_t commit;
    uint64_t applied;
    uint64_t last_index;
    uint64_t snapshot_index;
    uint64_t snapshot_term;
    uint64_t conf_index;
    uint64_t epoch;
    int error; /* 0, or RAFT_ESTORAGE etc.: why the node stopped taking part */
    unsigned n_peers;
    struct raft_runtime_peer peers[RAFT_MAX_SERVERS];
};

void raft_runtime_status(struct raft_runtime *rt, struct raft_runtime_status *out);

/* When this node last heard from each member, read on the loop thread at the moment of the
 * call (raft_runtime_status is a copy refreshed every few ticks; this is not). */
struct raft_runtime_heard {
    enum raft_role role; /* the core's, at the same moment */
    uint64_t term;
    unsigned n;
    struct {
        uint64_t id;
        /* ms since the transport delivered a frame from it (of any kind, in any term);
         * UINT64_MAX if it never did; 0 for this node. Never more than the truth: a frame
         * counts from when it was read off the connection. */
        uint64_t silent_ms;
    } peers[RAFT_MAX_SERVERS]; /* the members of the configuration */
};

/* Fill *out. Returns 0 or RAFT_ESHUTDOWN. Any thread; waits only for the loop thread, as
 * raft_runtime_set_faults does. */
int raft_runtime_heard(struct raft_runtime *rt, struct raft_runtime_heard *out);

/* Offline recovery after the permanent loss of a quorum (no runtime may be running on
 * data_dir): force configuration conf (usually this server alone) on the node's log with a new
 * term, and stamp a new cluster epoch, so that servers of the old configuration, should they
 * come back, are refused instead of rejoining with a diverging history. The node then starts
 * normally and elects itself under conf. *epoch (if not NULL) receives the new epoch: nodes
 * added to the recovered cluster later are started with it (raft_runtime_config.epoch).
 * Returns 0 or an error with err filled in. */
int raft_runtime_recover(const char *data_dir, const struct raft_configuration *conf,
                         uint64_t *epoch, char *err, size_t errlen);

/* A latency histogram: bucket i counts samples of [2^i, 2^(i+1)) microseconds (bucket 0 also
 * counts 0). */
#define RAFT_HISTOGRAM_BUCKETS 32
struct raft_histogram {
    uint64_t count;
    uint64_t sum_us;
    uint64_t buckets[RAFT_HISTOGRAM_BUCKETS];
};

/* The upper bound, in microseconds, of the bucket holding the p-th percentile (0 < p <= 100):
 * an estimate within a factor of two. 0 for an empty histogram. */
uint64_t raft_histogram_percentile(const struct raft_histogram *h, double p);

struct raft_runtime_stats {
    uint64_t proposals;        /* accepted by raft_runtime_propose */
    uint64_t proposals_failed; /* completed with an error */
    uint64_t reads;            /* raft_runtime_read_index calls accepted */
    uint64_t log_commits;      /* durable log transactions (one per group of writes) */
    uint64_t log_entries;      /* entries written to the log */
    uint64_t log_bytes;        /* payload bytes written to the log */
    uint64_t applied_entries;  /* entries applied to the state machine */
    uint64_t apply_batches;
    uint64_t snapshots_taken;
    uint64_t snapshots_installed;
    struct raft_histogram commit; /* a proposal, from the call until it is applied here */
    struct raft_histogram fsync;  /* one durable log transaction */
    struct raft_histogram apply;  /* one batch applied to the state machine */
};

/* Counters since start. Any thread. */
void raft_runtime_stats(struct raft_runtime *rt, struct raft_runtime_stats *out);

/* Replace every fault hook of the transport (tests: partitions without network namespaces;
 * docs/transport.md, "Fault hooks") with those of spec: items separated by spaces or commas,
 * "drop:ID" (discard all traffic to and from node ID) and "delay:ID:MS" (hold each frame to ID
 * at least MS ms). NULL or "" heals everything. spec is borrowed for the call. The change is
 * made on the loop thread (the transport's owner); the call blocks until it is done, so frames
 * sent or received after it returns see the new faults. Returns 0, RAFT_EINVAL (a malformed
 * spec: err says which item, nothing changed), RAFT_ENOMEM, or RAFT_ESHUTDOWN (the runtime is
 * stopping; nothing changed, or the change is moot). Any thread; on the loop thread (a
 * completion callback running there) it runs at once, elsewhere it waits only for the loop
 * thread, which never waits for the caller. Not after raft_runtime_stop returned. */
int raft_runtime_set_faults(struct raft_runtime *rt, const char *spec, char *err, size_t errlen);

#endif
