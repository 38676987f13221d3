/* Internals of the write-ahead log shared by its files: the record format (record.c), the
 * in-memory log and its replay rules (log.c), segment files and their preparation (segment.c),
 * recovery (recover.c), and the struct wal the writer (wal.c) and the readers (read.c) share. */
#ifndef STORE_WAL_INTERNAL_H
#define STORE_WAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/wal/wal.h"

/* --- format (docs/disk-format.md, "Write-ahead log") --------------------------------------- */

#define WAL__MAGIC       "RFSWAL\0\0" /* 8 bytes */
#define WAL__SEG_HEADER  128u         /* the segment header; records start here */
#define WAL__REC_HEADER  16u
#define WAL__ALIGN       8u
#define WAL__SECTOR      512u
#define WAL__REC_MAX     (WAL__REC_HEADER + 16u + WAL_PAYLOAD_MAX + WAL__ALIGN)
#define WAL__HEAD_BODY   64u
#define WAL__COMMIT_BODY 24u

enum wal__kind {
    WAL__ENTRY = 1,    /* index, term, payload; the entry type in the header */
    WAL__STATE = 2,    /* term, vote, epoch */
    WAL__SNAPSHOT = 3, /* index, term, drop_through */
    WAL__RESET = 4,    /* index, term: every entry dropped */
    WAL__TRUNCATE = 5, /* from: entries >= from deleted */
    WAL__HEAD = 6,     /* the whole state, first record of every segment */
    WAL__COMMIT = 7,   /* closes a batch */
    WAL__KIND_MAX = 7
};

/* One decoded (or to be encoded) record. Which fields mean what depends on kind:
 * ENTRY index, term, type, payload/len; STATE term, vote, epoch; SNAPSHOT index, term, through;
 * RESET index, term; TRUNCATE index (from); HEAD term, vote, epoch, index and snap_term (the
 * snapshot), through (last dropped index), last, last_term; COMMIT batch, count, length,
 * batch_crc. */
struct wal__rec {
    uint8_t kind;
    uint8_t type;
    uint64_t index, term, through;
    uint64_t vote, epoch;
    uint64_t snap_term, last, last_term;
    uint64_t batch;
    uint32_t count, length, batch_crc;
    const void *payload;
    uint32_t len;
    /* Filled by encode and decode: */
    uint32_t crc;  /* the record's own CRC32C */
    uint64_t off;  /* offset in its segment */
    uint32_t size; /* bytes on disk, padding included */
};

/* Bytes a record of this kind with len payload bytes takes on disk (a multiple of 8). */
uint32_t wal__rec_size(uint8_t kind, uint32_t len);

/* Encode r's header and fixed body into buf (at least wal__rec_size(kind, 0) bytes) and return
 * how many bytes that is; the payload (r->payload, r->len) and zero padding up to r->size follow
 * on disk. Sets r->crc and r->size. */
size_t wal__rec_encode(uint8_t *buf, struct wal__rec *r);

/* Decode the record at buf (avail bytes). Returns WAL__REC_OK with *r filled (payload pointing
 * into buf), WAL__REC_END for an all-zero header (no record was ever written here), or
 * WAL__REC_BAD with a reason in why (a check failed, or the record runs past avail); then
 * *claimed is how many bytes the header says the record takes (at least the header). */
enum { WAL__REC_OK, WAL__REC_END, WAL__REC_BAD };
int wal__rec_decode(const uint8_t *buf, size_t avail, struct wal__rec *r, uint64_t *claimed,
                    char *why, size_t whylen);

/* Segment header. */
void wal__seg_header_encode(uint8_t buf[WAL__SEG_HEADER], uint64_t seq, const char *cluster);
/* Errors: RFS_EFORMAT (not a segment, or another version), RFS_ECORRUPT (bad CRC or field),
 * with a reason in why. cluster receives the NUL-terminated cluster ID. */
int wal__seg_header_decode(const uint8_t *buf, size_t len, uint64_t *seq,
                           char cluster[WAL_CLUSTER_ID_MAX + 1], char *why, size_t whylen);

/* Scan the records of one segment (buf holds the whole file, len bytes, header included) and
 * hand every batch whose commit record checks out to batch(), in order. Then classify what
 * follows the last good batch (design note in record.c). Returns 0, or what batch() or the
 * allocation returned (stopping there; bad_off is then the batch's offset). */
enum wal__tail {
    WAL__TAIL_CLEAN,   /* nothing but zeros after the last batch */
    WAL__TAIL_TORN,    /* an unfinished batch: safe to discard if this is the last data */
    WAL__TAIL_DAMAGED, /* damage that a torn write does not explain */
};
struct wal__scan {
    int (*batch)(void *ctx, const struct wal__rec *recs, size_t n);
    void *ctx;
    /* out */
    uint64_t end;      /* offset after the last good batch (WAL__SEG_HEADER if none) */
    uint64_t data_end; /* offset after the last non-zero byte */
    uint64_t n_batches;
    enum wal__tail tail;
    uint64_t bad_off; /* TAIL_DAMAGED, or a failing batch() */
    char why[160];
};
int wal__scan(const uint8_t *buf, size_t len, struct wal__scan *s);

/* --- the in-memory log (log.c) ------------------------------------------------------------ */

struct wal__seg {
    uint64_t seq;
    int fd;
    uint64_t size; /* file size */
    uint64_t end;  /* offset after the last batch */
};

struct wal__loc {
    struct wal__seg *seg;
    uint64_t off;
    uint64_t term;
    uint32_t len;  /* payload */
    uint32_t size; /* record */
    uint8_t type;
};

/* The log as the records built it. Entries [first, base - 1] are a hole: known to exist from a
 * HEAD record, but in segments that compaction deleted; a later drop must cover it before
 * recovery ends. locs[k] is the entry base + k. */
struct wal__log {
    uint64_t first; /* first index; first - 1 is the last dropped one */
    uint64_t base;
    struct wal__loc *locs;
    size_t n, cap;
    uint64_t hole_last_term; /* term of entry base - 1 while it is in the hole */
    bool is_hole_term_known;
    uint64_t term, vote, epoch;
    uint64_t snap_index, snap_term;
    uint64_t batch; /* number of the last batch */
    bool has_batch; /* batch is known (not before the first commit of a recovery) */
    bool is_fresh;  /* nothing replayed yet: the next HEAD sets the whole state */
};

static inline uint64_t wal__log_last(const struct wal__log *l)
{
    return l->base + l->n - 1;
}

/* Term of entry index if known: from locs, the hole's last entry, or the snapshot. */
bool wal__log_term(const struct wal__log *l, uint64_t index, uint64_t *term);

/* Room for more entries in l->locs. Errors: RFS_ENOMEM. */
int wal__log_reserve(struct wal__log *l, size_t more);

/* Whether record r may follow the log l: 0, or RFS_ECORRUPT with the broken rule in why. The
 * writer checks single records with it before writing them. */
int wal__log_check(const struct wal__log *l, const struct wal__rec *r, char *why, size_t whylen);

/* Check and apply one record of a batch whose commit checked out (r located in seg). Returns 0,
 * or RFS_ECORRUPT with the broken rule in why (the record is then not applied), or RFS_ENOMEM. */
int wal__log_apply(struct wal__log *l, const struct wal__rec *r, struct wal__seg *seg, char *why,
                   size_t whylen);

/* The HEAD record describing l. */
void wal__log_head(const struct wal__log *l, struct wal__rec *head);

void wal__log_free(struct wal__log *l);

/* --- the log object ------------------------------------------------------------------------ */

#define WAL__MSG 512

struct wal {
    char *dir;
    int dir_fd; /* holds the flock */
    char cluster[WAL_CLUSTER_ID_MAX + 1];
    uint64_t segment_size;
    unsigned prepare_ahead;
    int (*sync)(int fd, void *ctx);
    void *sync_ctx;

    /* Readers take it shared; the writer takes it exclusive to publish what it synced. The
     * writer thread reads both fields below without it (it is their only mutator). */
    pthread_rwlock_t lock;
    struct wal__log log;
    struct wal__seg **segs; /* the segments holding the log, by seq; the last is written */
    size_t n_segs, cap_segs;

    /* Writer thread only: buffers reused from batch to batch. */
    uint8_t *scratch;
    size_t scratch_cap;
    struct wal__rec *recs;
    size_t cap_recs;

    atomic_bool is_sticky;
    pthread_mutex_t msg_lock;
    char msg[WAL__MSG];        /* protected by msg_lock */
    char sticky_msg[WAL__MSG]; /* protected by msg_lock: the failure that made the log sticky */

    /* Segment preparation (segment.c), all protected by prep_lock. */
    pthread_mutex_t prep_lock;
    pthread_cond_t prep_cond;
    pthread_t prep_thread;
    bool has_prep_thread, is_prep_stopping;
    struct wal__seg **ready; /* prepared, by seq */
    size_t n_ready, cap_ready;
    uint64_t next_seq; /* the next segment to prepare */
    int prep_err;      /* the last preparation failed: wal__seg_take retries it */
    char prep_msg[256];
};

__attribute__((format(printf, 2, 3))) void wal__set_err(struct wal *wal, const char *fmt, ...);

/* --- segment files (segment.c) ------------------------------------------------------------- */

void wal__seg_name(char buf[32], uint64_t seq);
/* fdatasync (or the test hook). Returns 0 or an errno value. */
int wal__sync(struct wal *wal, int fd);
/* The sequence numbers of the segment files in the directory, ascending, in a malloc'd array;
 * leftovers of an interrupted preparation are deleted. Errors: RFS_EIO, RFS_ENOMEM. */
int wal__seg_list(struct wal *wal, uint64_t **seqs, size_t *n);
/* Create segment seq (header, zero-filled, synced, renamed into place, directory synced).
 * Errors: RFS_ENOSPACE, RFS_EIO, RFS_ENOMEM, with a message in msg. */
int wal__seg_create(struct wal *wal, uint64_t seq, struct wal__seg **out, char *msg, size_t len);
/* Grow a segment to size bytes of written zeros and sync it. Errors: as wal__seg_create. */
int wal__seg_grow(struct wal *wal, struct wal__seg *seg, uint64_t size, char *msg, size_t len);
void wal__seg_free(struct wal__seg *seg);
/* Start the background step, which keeps prepare_ahead segments ready after next_seq - 1. */
int wal__prep_start(struct wal *wal);
void wal__prep_stop(struct wal *wal);
/* The next segment for the writer (waits for the background step). If the last preparation
 * failed, it is tried again first, and a second failure is returned (RFS_ENOSPACE or RFS_EIO,
 * message set); the background step then waits for the next call. */
int wal__seg_take(struct wal *wal, struct wal__seg **out);

/* --- recovery (recover.c) ------------------------------------------------------------------ */

/* Read every segment, rebuild wal->log and wal->segs, zero a torn tail, and queue the empty
 * segments after the last one as ready. want_cluster may be NULL. Errors: RFS_ECORRUPT,
 * RFS_EFORMAT, RFS_EINVAL (another cluster), RFS_EIO, RFS_ENOMEM, with the message set. */
int wal__recover(struct wal *wal, const char *want_cluster);

#endif
