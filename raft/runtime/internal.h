/* State of a runtime, shared by the files of raft/runtime/ (not a public header). docs/runtime.md
 * has the design; in short:
 *
 *   loop thread    owns the core, the transport, timers; turns each core update into work
 *   writer thread  persists log writes and hard state, many updates per durable commit
 *   apply thread   applies committed entries, installs snapshots, completes requests
 *   snapshot thread (on demand) copies the state machine into a snapshot file
 *
 * Invariants:
 *  1. Only the loop thread touches rt->core and rt->transport.
 *  2. A message of an update whose hard state changed is sent only after the writer made that
 *     hard state durable (it travels with the write and comes back with its completion).
 *  3. Writes reach the disk in the order the core asked for them (one FIFO, one thread), so
 *     "durable up to (index, term)" of a later write implies every earlier write.
 *  4. Entries reach the state machine in order, and a snapshot install is ordered with them
 *     (the same FIFO).
 *  5. A request is completed exactly once: whoever removes it from rt->requests under
 *     rt->lock completes it, outside the lock.
 */
#ifndef RAFT_RUNTIME_INTERNAL_H
#define RAFT_RUNTIME_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "raft/runtime/loop.h"
#include "raft/runtime/runtime.h"
#include "raft/net/tls.h"
#include "raft/net/transport.h"
#include "store/logstore.h"
#include "store/snapshot.h"
#include "lib/heap.h"
#include "lib/queue.h"

/* Every COMMAND entry starts with this envelope: who proposed it, so that the node that did
 * completes its request when it applies the entry (docs/runtime.md, "Entry envelope"). */
#define RT_ENVELOPE 16

/* Digests of this many recent checkpoints are kept for peers that ask (verify.c). */
#define RT_CHECKPOINTS 16

/* A request's deadline when the caller gives none, in ms. */
#define RT_DEFAULT_TIMEOUT_MS 5000

/* The numbers of RT_CHANGE and RT_TRANSFER travel in CTL frames (docs/wire-format.md). */
enum rt_req_kind {
    RT_PROPOSE = 1,
    RT_READ = 3,
    RT_CHANGE = 4,
    RT_TRANSFER = 5,
    RT_SNAPSHOT = 6,
    RT_VERIFY = 7, /* a checkpoint entry, then the members' digests (verify.c) */
};

/* Requests that propose an entry (and count toward the pending bytes). */
static inline bool rt__is_entry_req(enum rt_req_kind kind)
{
    return kind == RT_PROPOSE || kind == RT_VERIFY;
}

/* A request from the API, alive from submission to completion. */
struct rt_req {
    struct rt_work work; /* posts it to the loop */
    struct raft_runtime *rt;
    enum rt_req_kind kind;
    uint64_t id;
    raft_done_fn done;
    void *arg;
    uint64_t deadline; /* loop time, ms */
    uint8_t *buf;      /* RT_PROPOSE, RT_VERIFY: envelope + command */
    size_t len;
    /* RT_CHANGE, RT_TRANSFER */
    enum raft_change_op op;
    uint64_t server;
    char address[RAFT_ADDRESS_MAX];
    uint64_t expect_index;
    /* progress, under rt->lock */
    uint64_t index, term; /* where the entry went, once known */
    uint64_t read_index;  /* RT_READ: complete once applied >= this */
    uint64_t start_us;    /* when it was made, for the commit latency */
    bool is_posted;       /* its first submit is queued to the loop: nothing else may touch
                             it (a resubmit would send it twice, an expiry free it under the
                             queued work); set by the caller under lock, cleared on the loop */
    bool is_submitted;    /* handed to the core or to the leader */
    bool is_read_waiting; /* RT_READ: waiting for apply */
    bool is_leadership_lost;
    bool is_remote;    /* a peer's change request executed here: answer with CTL_RESP */
    uint64_t sent_to;  /* forwarded (FORWARD, CTL): the leader it went to, whose answer only
                          counts (DESIGN.md section 3, "Authority") */
    uint64_t origin;   /* is_remote: the peer */
    uint64_t peer_req; /* is_remote: its request id */
    /* RT_VERIFY: the answer, allocated with the request (owned until it is handed to done);
     * once its checkpoint is applied here (is_verifying), the digests so far, and which members
     * still owe one (bit i for verify->nodes[i]); protected by rt->lock */
    struct raft_runtime_verify *verify;
    bool is_verifying;
    uint32_t verify_waiting;
    /* in rt->requests (table.c), protected by rt->lock */
    bool is_in_table;
    struct rt_req *hash_next;   /* chain of its bucket */
    struct rt_req *prev, *next; /* the order of making; next is the remover's once out */
    struct rfs_heap_node watch; /* among the watched requests, or in no heap */
    uint64_t watch_index;       /* watched: the applied index that completes it */
    /* out of the table, waiting on a list of the apply thread to be completed with these */
    int done_status;
    struct raft_apply_result done_result;
};

/* The pending requests (table.c). A zeroed struct is an empty table. */
struct rt_table {
    struct rt_req **buckets; /* chains by id; n_buckets is a power of two (or 0) */
    size_t n_buckets;
    size_t n;
    struct rt_req *first, *last; /* oldest first */
    struct rfs_heap watched;     /* by watch_index; room for n */
};

/* A call another thread makes on the loop thread and waits for (raft_runtime_set_faults).
 * It lives on the caller's stack; the caller waits on its own lock and condition, so whoever
 * finishes it (the loop, or raft_runtime_stop if the loop never ran it) touches nothing of the
 * runtime's once the caller may return. */
struct rt_call {
    struct rt_work work;
    struct raft_runtime *rt;
    int (*fn)(struct raft_runtime *rt, void *arg); /* runs on the loop thread */
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done;         /* protected by lock */
    int status;           /* protected by lock */
    struct rt_call *next; /* in rt->calls while pending, protected by rt->lock */
};

/* One item for the log writer. */
enum rt_write_kind {
    RT_WRITE_LOG = 1, /* hard state and/or truncate + append; messages held until durable */
    RT_WRITE_RESET,   /* snapshot installed: the log restarts after (index, term) */
    RT_WRITE_COMPACT, /* snapshot taken: drop entries <= index, record the snapshot meta */
};

struct rt_frame {
    struct rfs_qlink link; /* in the queue of frames it travels with */
    uint64_t to;
    enum raft__channel channel;
    uint32_t len;
    uint8_t data[]; /* an encoded raft_msg */
};

struct rt_write {
    struct rfs_qlink link; /* in the writer's queue */
    enum rt_write_kind kind;
    struct store_log_batch batch; /* RT_WRITE_LOG; entries and payloads owned */
    uint64_t index, term;         /* RESET, COMPACT */
    struct rfs_queue held;        /* of rt_frame: messages to send once durable */
    struct rt_event *persisted;   /* RT_WRITE_LOG: its report to the loop, made with it */
};

/* One item for the apply thread. */
enum rt_apply_kind {
    RT_APPLY_ENTRIES = 1,
    RT_APPLY_INSTALL, /* verify the received snapshot, reset the log, restore the state */
    RT_APPLY_RESTORE, /* after the log reset: restore the state machine */
};

struct rt_apply {
    struct rfs_qlink link; /* in the apply thread's queue */
    enum rt_apply_kind kind;
    struct raft_entry *entries; /* owned copies */
    size_t n;
    struct store_snapshot_receiver *receiver; /* INSTALL */
    uint64_t index, term;                     /* INSTALL, RESTORE */
};

struct rt_histogram {
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
    atomic_uint_fast64_t buckets[RAFT_HISTOGRAM_BUCKETS];
};

/* raft_runtime_stats' counters, updated by every thread without locks. */
struct rt_stats {
    atomic_uint_fast64_t proposals, proposals_failed, reads;
    atomic_uint_fast64_t log_commits, log_entries, log_bytes;
    atomic_uint_fast64_t applied_entries, apply_batches;
    atomic_uint_fast64_t snapshots_taken, snapshots_installed;
    struct rt_histogram commit, fsync, apply;
};

/* A result of another thread for the loop: a core event to feed, or frames to send. */
struct rt_event {
    struct rfs_qlink link;   /* in rt->events */
    struct raft_event ev;    /* PERSISTED, SNAPSHOT_TAKEN, SNAPSHOT_INSTALLED */
    struct rfs_queue frames; /* of rt_frame, to send */
    int error;               /* nonzero: a storage failure; the node stops taking part */
    bool is_embedded;       /* a worker's failure report, part of its struct rt_worker: not freed */
    uint64_t snapshot_term; /* SNAPSHOT_TAKEN: the term of the snapshot's last entry */
};

/* A thread fed by a queue (worker.c): the log writer, the apply thread. */
struct rt_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct rfs_queue queue; /* protected by lock */
    bool is_stopping;       /* protected by lock */
    /* Its failure report, ready so that a failure can always be reported; posted at most once,
     * by the worker's thread. */
    struct rt_event failed;
    bool has_failed; /* worker's thread */
};

struct raft_runtime {
    struct raft_runtime_config cfg; /* strings point into the copies below */
    char *data_dir, *listen, *cluster_id, *tls_ca, *tls_cert, *tls_key;
    uint64_t epoch; /* cluster epoch, bumped by each forced recovery */
    unsigned tick_ms;

    struct store_log *log;
    struct store_snapshot_dir *snaps;

    /* loop thread */
    struct rt_loop *loop;
    pthread_t loop_thread;
    struct raft__tls_ctx *tls;
    struct raft__transport *transport;
    struct raft *core;
    struct rt_timer tick;
    uint64_t conf_index_synced;           /* configuration the transport's peers reflect */
    struct store_snapshot_reader *reader; /* current snapshot, for chunks to followers */
    struct store_snapshot_receiver *receiver;
    uint64_t recv_index, recv_term;
    bool is_snapshotting;
    uint64_t snapshot_req; /* manual snapshot waiting for completion (request id) */
    int error;             /* storage failure: stop taking part (RAFT_ESTORAGE) */
    unsigned ticks;        /* tick timer callbacks */
    uint64_t refused_ms;   /* refusals of peers' frames: when one was last logged (loop ms) */
    uint64_t refused;      /* and how many were not logged since */
    uint64_t ticked_ns;    /* lease reads: CLOCK_BOOTTIME up to which the core has its ticks */

    /* shared */
    pthread_mutex_t lock;
    struct rt_table requests; /* pending, protected by lock */
    atomic_uint_fast64_t next_id;
    atomic_uint_fast64_t applied;      /* state machine applied index */
    struct raft_runtime_status status; /* copy for other threads, protected by lock */
    atomic_size_t pending_bytes;
    struct rt_stats stats;
    bool is_stopping;      /* protected by lock */
    struct rt_call *calls; /* waiting for the loop thread, protected by lock */

    /* results of the writer, apply and snapshot threads for the loop */
    pthread_mutex_t events_lock;
    struct rfs_queue events; /* of rt_event, protected by events_lock */
    struct rt_work events_work;
    bool is_events_posted;

    struct rt_worker writer; /* of rt_write */
    struct rt_worker apply;  /* of rt_apply */

    /* digests recorded at the last checkpoints applied (verify.c), protected by lock */
    struct rt_checkpoint {
        uint64_t index; /* 0: unused */
        int status;
        uint8_t digest[RAFT_DIGEST_SIZE];
    } checkpoints[RT_CHECKPOINTS];
    unsigned checkpoint_next;

    /* snapshot thread */
    pthread_t snapshot_thread;
    bool has_snapshot_thread;
    struct rt_event *snapshot_taken; /* its answer, made before it starts; then the thread's */
};

/* requests.c */
void rt__log(struct raft_runtime *rt, enum raft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rt__post_event(struct raft_runtime *rt, struct rt_event *e);
/* Right after a call of the state machine failed with rc: its text and the state machine's
 * own message (raft_fsm.errmsg), "storage is full (put inode 42: MDB_MAP_FULL)", into buf. */
void rt__fsm_error(struct raft_runtime *rt, int rc, char *buf, size_t len);
/* Remove request id from the table and complete it (status, result), if it is still there. */
void rt__complete_id(struct raft_runtime *rt, uint64_t id, int status,
                     struct raft_apply_result *result);
void rt__complete(struct raft_runtime *rt, struct rt_req *req, int status,
                  struct raft_apply_result *result);
/* Complete every pending request with status. */
void rt__fail_all(struct raft_runtime *rt, int status);
/* Loop thread: a request refused because of a leadership change, with nothing done, waits
 * for a leader and is sent again until its deadline. True if request id was put back; false
 * if it is gone or past its deadline, and the caller completes it. */
bool rt__retry_later(struct raft_runtime *rt, uint64_t id);
/* Loop thread: complete the requests past their deadline. */
void rt__expire(struct raft_runtime *rt);
/* A new request of kind for an API call (not yet in the table): RAFT_ESHUTDOWN, RAFT_ENOMEM. */
int rt__req_new(struct raft_runtime *rt, enum rt_req_kind kind, unsigned timeout_ms,
                raft_done_fn done, void *arg, struct rt_req **out);
/* Enter the table and hand to the loop: 0, and done will be called exactly once; or
 * RAFT_ESHUTDOWN, RAFT_ENOMEM, and req is freed. */
int rt__req_post(struct raft_runtime *rt, struct rt_req *req);

/* The common part of raft_runtime_propose and _verify: data (len bytes, copied)
 * after the envelope. */
int rt__propose(struct raft_runtime *rt, enum rt_req_kind kind, const void *data, size_t len,
                unsigned timeout_ms, raft_done_fn done, void *arg);

/* runtime.c (loop thread) */
/* Before the loop thread starts, with the core and the transport made: the transport's peers
 * and the status copy follow the core, the tick timer runs, and events of other threads reach
 * the loop. Returns 0 or RAFT_ENOMEM. */
int rt__loop_prepare(struct raft_runtime *rt);
void rt__recv_cb(void *data, uint64_t from, enum raft__channel ch, uint8_t type,
                 const uint8_t *payload, uint32_t len);
void rt__submit_cb(struct rt_work *w);
void rt__send_ctl_resp(struct raft_runtime *rt, uint64_t to, uint64_t id, int status);
/* Copy entries (the update's are borrowed) for another thread; NULL when out of memory. */
struct raft_entry *rt__copy_entries(const struct raft_entry *src, size_t n);

/* verify.c */
/* Whether a COMMAND entry's payload after the envelope (len bytes) is a checkpoint. */
bool rt__is_checkpoint(const void *data, size_t len);
/* Apply thread, after applying a checkpoint at index: record the state machine's digest. */
void rt__checkpoint_record(struct raft_runtime *rt, uint64_t index);
/* With rt->lock held, on the apply thread: the checkpoint of RT_VERIFY request req was applied
 * here at index; ask the members for theirs (on the loop thread). */
void rt__verify_begin_locked(struct raft_runtime *rt, struct rt_req *req, uint64_t index);
/* Loop thread: a DIGEST or DIGEST_RESP frame from a peer. */
void rt__verify_recv(struct raft_runtime *rt, uint64_t from, uint8_t type, const uint8_t *p,
                     uint32_t len);
/* Loop thread, now and then: ask again the members that had not applied the checkpoint yet. */
void rt__verify_retry(struct raft_runtime *rt);

/* stats.c */
uint64_t rt__now_us(void);
void rt__hist_add(struct rt_histogram *h, uint64_t us);

/* call.c */
/* After the loop thread ended: calls it never ran fail with RAFT_ESHUTDOWN. */
void rt__calls_fail(struct raft_runtime *rt);

/* table.c, every function with rt->lock held */
/* Enter r (not in a table). Returns 0 or RAFT_ENOMEM (r is not in the table). */
int rt__table_insert(struct rt_table *t, struct rt_req *r);
/* The request of that id, or NULL. */
struct rt_req *rt__table_find(const struct rt_table *t, uint64_t id);
/* Take r, which is in t, out of it. */
void rt__table_remove(struct rt_table *t, struct rt_req *r);
/* After a change to what makes r wait for the applied index (index, is_read_waiting,
 * read_index, verify): watch it by the new value, or stop. Nothing if r is not in t. */
void rt__table_update(struct rt_table *t, struct rt_req *r);
/* A watched request that applied index completes (still in t), or NULL when none is left. */
struct rt_req *rt__table_applied(const struct rt_table *t, uint64_t applied);
/* Free t's arrays (its requests are the caller's). */
void rt__table_free(struct rt_table *t);

/* worker.c */
/* Prepare w's lock and condition; rt__worker_destroy frees them (thread stopped or never
 * started). */
void rt__worker_init(struct rt_worker *w);
void rt__worker_destroy(struct rt_worker *w);
/* Run fn(arg) on w's thread. Returns 0 or RAFT_ENOMEM. */
int rt__worker_start(struct rt_worker *w, void *(*fn)(void *), void *arg);
/* Ask the thread to stop once its queue is empty, and join it. */
void rt__worker_stop(struct rt_worker *w);
/* Queue l for the thread (any thread). */
void rt__worker_push(struct rt_worker *w, struct rfs_qlink *l);
/* On w's thread: wait for items and move all of them to the end of out. False when w is
 * stopping and nothing is left: the thread returns. */
bool rt__worker_take(struct rt_worker *w, struct rfs_queue *out);
/* On w's thread, which cannot go on: log "who: what failed: why" and have the node stop taking
 * part (RAFT_ESTORAGE), without allocating. */
void rt__worker_fail(struct raft_runtime *rt, struct rt_worker *w, const char *who,
                     const char *what, const char *why);

/* writer.c */
void *rt__writer_main(void *arg);
void rt__write(struct raft_runtime *rt, struct rt_write *w);
/* Free every frame of q (left empty). */
void rt__frames_free(struct rfs_queue *q);

/* apply.c */
void *rt__apply_main(void *arg);
void rt__apply(struct raft_runtime *rt, struct rt_apply *a);
/* Loop thread: read request id learnt its read index: complete it once the state machine
 * applied that far (now, or in advance_locked). */
void rt__read_wait(struct raft_runtime *rt, uint64_t id, uint64_t read_index);
int rt__snapshot_start(struct raft_runtime *rt);
void rt__snapshot_join(struct raft_runtime *rt);
void rt__envelope_put(uint8_t *buf, uint64_t origin, uint64_t id);

#endif
