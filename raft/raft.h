/* The raftfs consensus core: a deterministic Raft state machine. Events go in through
 * raft_step(); one update comes out, describing what the caller must persist, send, apply and
 * report. The core never does I/O, never reads a clock, never draws randomness of its own and
 * never starts a thread, so the simulator in test/sim can drive many of them on virtual time.
 *
 * Paper references: "In Search of an Understandable Consensus Algorithm" (Ongaro and
 * Ousterhout, 2014), cited as §N, and Ongaro's dissertation "Consensus: Bridging Theory and
 * Practice" (2014), cited as thesis §N. docs/raft.md describes the whole design. */
#ifndef RAFT_H
#define RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- errors ---------------------------------------------------------------------------------
 * Every function that can fail returns 0 or one of these. They start at 2000 so that they never
 * collide with errno values or with raftfs's RFS_E* codes. */
#define RAFT_ERRORS(X)                                                                             \
    X(RAFT_ENOMEM, "out of memory")                                                                \
    X(RAFT_EINVAL, "invalid argument")                                                             \
    X(RAFT_ENOTLEADER, "this server is not the leader")                                            \
    X(RAFT_ELEADERSHIPLOST, "leadership lost: the outcome of the request is unknown")              \
    X(RAFT_EBUSY, "a configuration change or leadership transfer is already in progress")          \
    X(RAFT_ECONFCHANGED, "the configuration changed since the expected index")                     \
    X(RAFT_ENOTFOUND, "no such server in the configuration")                                       \
    X(RAFT_EEXISTS, "the server is already in the configuration")                                  \
    X(RAFT_ECATCHUP, "the new server did not catch up with the log in time")                       \
    X(RAFT_ETIMEDOUT, "the operation did not complete in time")                                    \
    X(RAFT_ETOOBIG, "the entry is larger than the maximum entry size")                             \
    X(RAFT_ESHUTDOWN, "the server is shutting down")                                               \
    X(RAFT_ESTALE, "the snapshot or message is older than the local state")                        \
    X(RAFT_EDISKSTALL, "the leader stepped down because its log writes stalled")                   \
    X(RAFT_ECANTBOOTSTRAP, "the server already has state; bootstrap refused")                      \
    X(RAFT_ENOQUORUM, "the configuration would have no voter")                                     \
    X(RAFT_EIO, "I/O error")                                                                       \
    X(RAFT_ETLS, "TLS or certificate error")                                                       \
    X(RAFT_EPROTO, "the peer violated the transport protocol")                                     \
    X(RAFT_EFILEEXISTS, "the file already exists (use force to overwrite)")                        \
    X(RAFT_EADDR, "invalid or unresolvable address")                                               \
    X(RAFT_EDROPPED, "the frame was dropped: the peer's send queue is full")                       \
    X(RAFT_ENOTAPPLIED,                                                                            \
      "a new leader overwrote the entry: it was not applied and a retry is safe")                  \
    X(RAFT_ESTORAGE, "the log store failed; the node stopped taking part until it is restarted")

enum raft_error {
    RAFT_OK = 0,
    RAFT_ERROR_BASE = 1999,
#define RAFT_ENUM_(name, msg) name,
    RAFT_ERRORS(RAFT_ENUM_)
#undef RAFT_ENUM_
        RAFT_ERROR_END
};

/* Static text for a RAFT_E* code; never NULL. */
const char *raft_strerror(int code);

/* --- memory -----------------------------------------------------------------------------------
 * All memory of a core comes from its allocator, so tests can fail allocations on a schedule.
 * An allocation failure never breaks safety: a message that cannot be handled is dropped (Raft
 * tolerates lost messages) and a request that cannot be queued is refused with RAFT_ENOMEM. */
struct raft_allocator {
    void *(*alloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
};

/* The default allocator (libc); used when raft_options.allocator is NULL. */
extern const struct raft_allocator raft_libc_allocator;

/* --- configuration (membership) --------------------------------------------------------------- */

enum raft_suffrage {
    RAFT_VOTER = 1,   /* votes and counts toward quorum */
    RAFT_LEARNER = 2, /* receives the log, never votes, never campaigns */
};

#define RAFT_ADDRESS_MAX 64 /* bytes of an opaque address string, NUL included */
#define RAFT_MAX_SERVERS 16

struct raft_server {
    uint64_t id; /* nonzero */
    enum raft_suffrage suffrage;
    char address[RAFT_ADDRESS_MAX]; /* opaque to the core, NUL-terminated */
};

struct raft_configuration {
    unsigned n;
    struct raft_server servers[RAFT_MAX_SERVERS];
};

/* Encoded size of a configuration and its (de)serialization; the encoding is the payload of
 * RAFT_ENTRY_CONFIG entries and of snapshot metadata (docs/wire-format.md). encode writes at most
 * raft_configuration_encoded_size() bytes; decode returns RAFT_EINVAL on malformed input. */
size_t raft_configuration_encoded_size(const struct raft_configuration *c);
void raft_configuration_encode(const struct raft_configuration *c, uint8_t *buf);
int raft_configuration_decode(const uint8_t *buf, size_t len, struct raft_configuration *c);
const struct raft_server *raft_configuration_get(const struct raft_configuration *c, uint64_t id);
unsigned raft_configuration_voters(const struct raft_configuration *c);

/* --- log entries -------------------------------------------------------------------------------
 */

enum raft_entry_type {
    RAFT_ENTRY_COMMAND = 1, /* opaque to the core, applied by the state machine */
    RAFT_ENTRY_NOOP = 2,    /* appended by each new leader; also barriers */
    RAFT_ENTRY_CONFIG = 3,  /* an encoded struct raft_configuration */
};

struct raft_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type; /* enum raft_entry_type */
    uint32_t len;
    void *data; /* len bytes */
};

/* --- messages ----------------------------------------------------------------------------------
 */

enum raft_msg_type {
    RAFT_MSG_APPEND = 1, /* AppendEntries §5.3 */
    RAFT_MSG_APPEND_RESP,
    RAFT_MSG_VOTE, /* RequestVote §5.2; also the pre-vote of thesis §9.6 */
    RAFT_MSG_VOTE_RESP,
    RAFT_MSG_HEARTBEAT, /* empty AppendEntries on a fast path; carries ReadIndex rounds */
    RAFT_MSG_HEARTBEAT_RESP,
    RAFT_MSG_SNAPSHOT, /* one chunk of InstallSnapshot §7 */
    RAFT_MSG_SNAPSHOT_RESP,
    RAFT_MSG_TIMEOUT_NOW, /* leadership transfer, thesis §3.10 */
    RAFT_MSG_READ_INDEX,  /* a follower asks the leader for a read index, thesis §6.4 */
    RAFT_MSG_READ_INDEX_RESP,
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_READ_INDEX_RESP

struct raft_msg_append {
    uint64_t prev_index;
    uint64_t prev_term;
    uint64_t commit;
    unsigned n_entries;
    struct raft_entry *entries;
};

struct raft_msg_append_resp {
    bool success;
    uint64_t index;          /* success: the follower's durable match index */
    uint64_t reject_index;   /* failure: the prev_index that was rejected */
    uint64_t conflict_index; /* failure hint: first index of conflict_term, or last index + 1 */
    uint64_t conflict_term;  /* failure hint: term at reject_index, 0 if the log is too short */
};

struct raft_msg_vote {
    bool is_pre_vote;
    bool is_transfer; /* sent after TimeoutNow: bypasses the disruptive-server guard */
    uint64_t last_index;
    uint64_t last_term;
};

struct raft_msg_vote_resp {
    bool is_pre_vote;
    bool granted;
};

struct raft_msg_heartbeat {
    uint64_t commit;   /* min(leader commit, follower match): never past the follower's log */
    uint64_t read_seq; /* ReadIndex confirmation round, echoed back */
};

struct raft_msg_heartbeat_resp {
    uint64_t read_seq;
};

struct raft_msg_snapshot {
    uint64_t index; /* last index included in the snapshot */
    uint64_t term;  /* its term */
    struct raft_configuration conf;
    uint64_t size;   /* total bytes of the snapshot */
    uint64_t offset; /* of this chunk */
    uint32_t len;    /* bytes in this chunk */
    /* The core leaves data NULL in messages it sends: the runtime fills in the chunk from its
     * snapshot file (index, offset, len) when it sends. Received chunks carry data. */
    const void *data;
};

struct raft_msg_snapshot_resp {
    uint64_t index;    /* snapshot this answers */
    uint64_t received; /* bytes of it received in order so far */
    bool is_done;      /* installed; the follower's log now starts after index */
};

struct raft_msg_read_index {
    uint64_t id; /* the follower's request id, echoed */
};

struct raft_msg_read_index_resp {
    uint64_t id;
    uint64_t index; /* 0 when refused */
    int status;     /* 0 or a RAFT_E* code */
};

struct raft_msg {
    enum raft_msg_type type;
    uint64_t from;
    uint64_t to;
    uint64_t term;
    union {
        struct raft_msg_append append;
        struct raft_msg_append_resp append_resp;
        struct raft_msg_vote vote;
        struct raft_msg_vote_resp vote_resp;
        struct raft_msg_heartbeat heartbeat;
        struct raft_msg_heartbeat_resp heartbeat_resp;
        struct raft_msg_snapshot snapshot;
        struct raft_msg_snapshot_resp snapshot_resp;
        struct raft_msg_read_index read_index;
        struct raft_msg_read_index_resp read_index_resp;
    };
};

/* --- wire encoding of messages (docs/wire-format.md) ---------------------------------------------
 * The payload of a transport frame that carries a Raft message. Little-endian, fixed fields, every
 * length checked on decode: any input either decodes into a well-formed message or is refused. */

/* Bytes raft_msg_encode will write for m. */
size_t raft_msg_encoded_size(const struct raft_msg *m);

/* Encode m into buf (raft_msg_encoded_size(m) bytes). A RAFT_MSG_SNAPSHOT must have its chunk
 * data filled in. */
void raft_msg_encode(const struct raft_msg *m, uint8_t *buf);

/* Decode buf[0..len) into *m. Entry payloads and snapshot chunk data point into buf, so buf must
 * outlive m; the array of entries of an append is allocated with a (NULL: libc) and released by
 * raft_msg_release. Returns 0, RAFT_EINVAL for malformed input (nothing to release), or
 * RAFT_ENOMEM. */
int raft_msg_decode(const uint8_t *buf, size_t len, struct raft_msg *m,
                    const struct raft_allocator *a);
void raft_msg_release(struct raft_msg *m, const struct raft_allocator *a);

/* --- options ------------------------------------------------------------------------------------
 * Time is counted in ticks; the runtime decides how long a tick is (raftfsd: 10 ms). */
struct raft_options {
    uint64_t id;   /* this server, nonzero */
    uint64_t seed; /* of the instance's random generator (election timeouts) */
    const struct raft_allocator *allocator; /* NULL: raft_libc_allocator */

    unsigned election_ticks;    /* base election timeout; randomized in [e, 2e) §5.2 */
    unsigned heartbeat_ticks;   /* leader heartbeat interval; < election_ticks */
    bool pre_vote;              /* thesis §9.6; default on */
    bool check_quorum;          /* leader steps down without a live quorum, thesis §6.2 */
    bool lease_reads;           /* answer ReadIndex from the leader's lease (opt-in) */
    unsigned lease_drift_ticks; /* clock drift bound subtracted from the lease */

    uint64_t max_append_bytes;   /* payload bytes per AppendEntries message */
    uint64_t max_inflight_bytes; /* unacknowledged payload bytes per follower */
    uint32_t max_entry_bytes;    /* larger proposals get RAFT_ETOOBIG */

    unsigned catchup_rounds;      /* rounds a new voter may take to catch up */
    unsigned catchup_round_ticks; /* a round shorter than this means "caught up" */
    unsigned transfer_ticks;      /* leadership transfer gives up after this */
    unsigned disk_stall_ticks;    /* leader steps down if a log write takes longer */

    uint64_t snapshot_threshold;       /* entries applied since the last snapshot */
    uint64_t snapshot_threshold_bytes; /* payload bytes applied since the last snapshot */
    uint64_t snapshot_trailing;        /* entries kept in the log behind a snapshot */
    uint32_t snapshot_chunk_bytes;     /* bytes per InstallSnapshot chunk */
};

/* Fill *o with the defaults (docs/raft.md lists them) for server id. */
void raft_options_default(struct raft_options *o, uint64_t id);

/* --- persistent state handed to raft_new --------------------------------------------------------
 */

struct raft_snapshot_meta {
    uint64_t index; /* 0: no snapshot */
    uint64_t term;
    struct raft_configuration conf;
    uint64_t size; /* bytes, for streaming it to followers */
};

struct raft_initial_state {
    uint64_t term;
    uint64_t vote;   /* 0: none */
    uint64_t commit; /* an index known committed AND present in this log; 0 when unknown */
    struct raft_snapshot_meta snapshot;
    /* The stored log, contiguous. It may start inside the trailing window before the snapshot
     * (first index <= snapshot.index + 1). A log that ends before the snapshot or holds another
     * term at its index is discarded (left over from before an install). Copied. */
    const struct raft_entry *entries;
    size_t n_entries;
    /* Index up to which the state machine has already applied (durable state machine, like
     * raftfs's LMDB one); the core will not hand those entries out again. */
    uint64_t applied;
};

/* --- events (input) -----------------------------------------------------------------------------
 */

enum raft_event_type {
    RAFT_EVENT_TICK = 1,
    RAFT_EVENT_RECEIVE,            /* a message arrived */
    RAFT_EVENT_PERSISTED,          /* log entries up to (index, term) are durable */
    RAFT_EVENT_PROPOSE,            /* leader: append commands */
    RAFT_EVENT_READ_INDEX,         /* linearizable read request */
    RAFT_EVENT_CHANGE,             /* membership change */
    RAFT_EVENT_TRANSFER,           /* leadership transfer */
    RAFT_EVENT_SNAPSHOT_TAKEN,     /* the state machine wrote a snapshot */
    RAFT_EVENT_SNAPSHOT_INSTALLED, /* a received snapshot was verified and installed (or failed) */
    RAFT_EVENT_CAMPAIGN,           /* start an election now (tests, operator) */
};

enum raft_change_op {
    RAFT_CHANGE_ADD_VOTER = 1, /* as learner, promoted once caught up */
    RAFT_CHANGE_ADD_LEARNER,
    RAFT_CHANGE_REMOVE,
    RAFT_CHANGE_DEMOTE, /* voter to learner */
};

struct raft_buf {
    const void *data;
    uint32_t len;
};

struct raft_event {
    enum raft_event_type type;
    union {
        struct {
            const struct raft_msg *msg; /* borrowed for the call; data is copied if kept */
        } receive;
        struct {
            uint64_t index;
            uint64_t term;
        } persisted;
        struct {
            enum raft_entry_type type;   /* COMMAND or NOOP (barrier) */
            const struct raft_buf *bufs; /* one entry per buffer; copied */
            unsigned n;
        } propose;
        struct {
            uint64_t id; /* caller's request id, echoed in the result */
        } read_index;
        struct {
            uint64_t id; /* caller's request id, echoed in the result */
            enum raft_change_op op;
            uint64_t server;
            const char *address;   /* ADD_*: NUL-terminated, copied */
            uint64_t expect_index; /* 0 or the configuration index the change expects */
        } change;
        struct {
            uint64_t id;     /* caller's request id */
            uint64_t server; /* 0: pick the most up-to-date voter */
        } transfer;
        struct {
            uint64_t index; /* last index the snapshot includes (<= applied) */
            uint64_t size;  /* bytes */
        } snapshot_taken;
        struct {
            uint64_t index;
            uint64_t term;
            int status; /* 0, or nonzero: the received snapshot was discarded */
        } snapshot_installed;
    };
};

/* --- the update (output) -------------------------------------------------------------------------
 * One update per raft_step. The caller processes it in this order:
 *   1. persist the hard state (term, vote) if has_hard_state, durably, before any message of
 *      this update is sent (a vote must never be granted twice across a crash), and before or
 *      with the log write of this update;
 *   2. start writing the log change (truncate entries >= truncate_from, then append entries);
 *      report completion later with RAFT_EVENT_PERSISTED; writes complete in order. A write
 *      that fails must not be followed by any later write or PERSISTED event: the caller stops
 *      feeding this core (restart it from what is on disk);
 *   3. write the received snapshot chunk, if any; install the snapshot if install is set, after
 *      the log writes already asked for and after applying the entries already handed out,
 *      replacing the state machine and deleting the whole stored log crash-atomically (a crash
 *      leaves the old log or an empty one after the snapshot), and report with
 *      RAFT_EVENT_SNAPSHOT_INSTALLED;
 *   4. send the messages (for RAFT_MSG_SNAPSHOT, fill in the chunk data from the snapshot);
 *   5. apply the committed entries, in order;
 *   6. deliver results (proposal, reads, change, transfer).
 * Every pointer in the update is borrowed until the next call of raft_step or raft_free: copy
 * what is written or applied on another thread. */

struct raft_read_result {
    uint64_t id;
    uint64_t index; /* wait until the state machine applied this, then read */
    int status;     /* 0, or RAFT_ENOTLEADER, RAFT_ELEADERSHIPLOST, RAFT_ENOMEM */
};

struct raft_request_result {
    uint64_t id;
    int status; /* 0, or a RAFT_E* code */
};

enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRE_CANDIDATE,
    RAFT_CANDIDATE,
    RAFT_LEADER,
};

struct raft_update {
    bool has_hard_state;
    uint64_t term;
    uint64_t vote;

    uint64_t truncate_from;           /* 0: no truncation */
    const struct raft_entry *entries; /* to append; entries[0].index follows the kept log */
    size_t n_entries;

    const struct raft_msg *msgs;
    size_t n_msgs;

    const struct raft_entry *apply; /* committed entries to apply, in index order */
    size_t n_apply;

    /* A received snapshot: write chunk (data, len) at offset into the pending snapshot file for
     * (index, term); offset 0 starts a new file. When install is set, the file is complete:
     * verify and install it, then report RAFT_EVENT_SNAPSHOT_INSTALLED. */
    struct {
        bool has_chunk;
        bool install;
        uint64_t index;
        uint64_t term;
        uint64_t offset;
        const void *data;
        uint32_t len;
        struct raft_configuration conf; /* valid when install is set */
    } snapshot;

    bool want_snapshot;  /* the log passed the snapshot threshold: take one at the applied index */
    uint64_t compact_to; /* 0, or the stored log may drop entries <= compact_to */

    /* The proposal of this step, if any: its entries start at index, in term. */
    uint64_t proposed_index;
    uint64_t proposed_term;

    const struct raft_read_result *reads;
    size_t n_reads;
    const struct raft_request_result *changes; /* finished membership changes */
    size_t n_changes;
    const struct raft_request_result *transfers; /* finished leadership transfers */
    size_t n_transfers;

    bool role_changed; /* role, term or leader differ from the previous update */
    enum raft_role role;
    uint64_t leader; /* 0: unknown */
    uint64_t commit; /* informational: may exceed what this server holds durably, so it must
                        not be persisted as raft_initial_state.commit without min(durable) */
};

/* --- lifecycle -------------------------------------------------------------------------------- */

struct raft;

/* Create a core from options (copied) and the persisted state (entries copied). The state must
 * contain a configuration: either a snapshot with one or a RAFT_ENTRY_CONFIG entry in the log
 * (see raft_bootstrap_entry). A server that has neither starts with an empty configuration and
 * waits to be added by a leader. Returns RAFT_ENOMEM or RAFT_EINVAL (bad options or log). The
 * result is freed with raft_free. */
int raft_new(const struct raft_options *opts, const struct raft_initial_state *state,
             struct raft **out);
void raft_free(struct raft *r);

/* Feed one event; fill *u with what to do (borrowed until the next call). Returns 0, or an error
 * for the event itself: RAFT_ENOTLEADER (propose, change, transfer on a non-leader; see
 * raft_leader() for a hint), RAFT_EBUSY, RAFT_ETOOBIG, RAFT_EINVAL, RAFT_ENOMEM. Even when it
 * returns an error, *u is valid and must be processed. */
int raft_step(struct raft *r, const struct raft_event *e, struct raft_update *u);

/* The configuration entry a brand-new cluster starts with: index 1, term 1, type CONFIG, data =
 * encoded conf in buf (raft_configuration_encoded_size bytes). Persist it on every initial
 * server before raft_new. Returns RAFT_ENOQUORUM when conf has no voter. */
int raft_bootstrap_entry(const struct raft_configuration *conf, uint8_t *buf,
                         struct raft_entry *entry);

/* Offline recovery when a quorum is lost for good: the entry that forces conf on a survivor,
 * appended after its last entry at last_index + 1 in term, which must be higher than any term
 * the survivor has seen (its current term + 1); the caller stores term as the current term
 * too. A new term keeps the entry from ever matching one a lost peer might hold at the same
 * index. */
int raft_recover_entry(const struct raft_configuration *conf, uint64_t last_index, uint64_t term,
                       uint8_t *buf, struct raft_entry *entry);

/* --- inspection (never changes state) --------------------------------------------------------- */

struct raft_progress_info {
    uint64_t id;
    enum raft_suffrage suffrage;
    uint64_t match;
    uint64_t next;
    unsigned ticks_since_contact;
};

struct raft_status {
    uint64_t id;
    enum raft_role role;
    uint64_t term;
    uint64_t vote;
    uint64_t leader;
    uint64_t commit;
    uint64_t applied; /* handed out for apply */
    uint64_t first_index;
    uint64_t last_index;
    uint64_t durable_index;
    uint64_t snapshot_index;
    uint64_t snapshot_term;
    uint64_t conf_index; /* index of the latest configuration entry */
    struct raft_configuration conf;
    unsigned n_progress; /* leader only */
    struct raft_progress_info progress[RAFT_MAX_SERVERS];
};

void raft_status(const struct raft *r, struct raft_status *s);
enum raft_role raft_role(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
/* The latest configuration (possibly uncommitted), borrowed until the next raft_step. */
const struct raft_configuration *raft_configuration_latest(const struct raft *r);
uint64_t raft_term(const struct raft *r);
const char *raft_role_name(enum raft_role role);
const char *raft_msg_type_name(enum raft_msg_type type);

/* Entry at index from the core's in-memory log, or NULL if it is not there (compacted or past
 * the end). Borrowed until the next raft_step. */
const struct raft_entry *raft_log_get(const struct raft *r, uint64_t index);

#endif
