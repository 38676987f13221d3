/* The Raft log and the stable state (term, vote, epoch, cluster ID) in fixed-size segment files
 * with one vectored write and one fdatasync per batch: the replacement of store/logstore.h
 * (DESIGN.md section 4). The format is in docs/disk-format.md, "Write-ahead log". */
#ifndef STORE_WAL_WAL_H
#define STORE_WAL_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Threads. One writer thread calls every mutating function (wal_write, wal_set_epoch,
 * wal_snapshot, wal_reset); any number of threads may call the read functions (bounds,
 * term_at, entry_get, iterators, state, cluster_id, errmsg) at the same time as the
 * writer and each other. A read sees the log as of the last mutating call that had returned, or
 * of the one in progress once its sync is done; it never waits for a disk sync. Open and close
 * are not concurrent with anything. A background thread of the WAL prepares segment files.
 *
 * Durability. A mutating function returns 0 only after its records are on disk: one pwritev
 * and one fdatasync (rarely two writes, when a batch needs more iovecs than IOV_MAX).
 *
 * Errors. Functions return 0 or an RFS_E* code from lib/error.h and record a message with
 * context that wal_errmsg() returns (corruption: the segment file and the byte offset).
 * - RFS_ENOSPACE: the disk is full (no new segment could be prepared). Nothing was written and
 *   the log stays usable: reads work, and writes succeed again once space returns (for example
 *   after wal_snapshot deleted segments).
 * - RFS_ESTICKY: an earlier write or sync failed (RFS_EIO then); every later write is refused
 *   until the log is closed and reopened, because a failed fsync must never be retried. Reads
 *   keep working.
 * - RFS_ECORRUPT: recovery or a read found damage that is not a torn tail; the message names
 *   the segment and the offset. Damaged bytes are never returned as an entry. */

struct wal;

/* Entry type is opaque to the WAL (raft defines the values). */
struct wal_entry {
    uint64_t index;
    uint64_t term;
    uint8_t type;
    size_t len;          /* payload length in bytes, at most WAL_PAYLOAD_MAX */
    const void *payload; /* see each function for who owns it */
};

#define WAL_FORMAT_VERSION  1u /* of the segment files, checked on open */
#define WAL_PAYLOAD_MAX     (256u << 20)
#define WAL_CLUSTER_ID_MAX  96
#define WAL_SEGMENT_DEFAULT (8u << 20)

struct wal_options {
    /* The cluster this log belongs to (1..WAL_CLUSTER_ID_MAX bytes). Required to create a log;
     * for an existing log it must equal the recorded one (RFS_EINVAL otherwise). NULL opens an
     * existing log of any cluster (offline tools). Copied. */
    const char *cluster_id;
    /* Size of a segment file in bytes, a multiple of 4096 (0: WAL_SEGMENT_DEFAULT). A batch
     * larger than a segment gets a segment of its own, grown to fit. */
    uint64_t segment_size;
    /* How many empty segments the background step keeps ready (0: 2). */
    unsigned prepare_ahead;
    /* Test hook: called instead of fdatasync/fsync for every sync the WAL makes (log writes,
     * prepared segments, the directory). Returns 0 or an errno value. NULL: the real calls. */
    int (*sync)(int fd, void *ctx);
    void *sync_ctx;
};

/* Open the log in directory dir (created if absent), recover it, and start preparing segments.
 * The directory is locked (flock) for as long as the log is open: a second open, in this or
 * another process, fails with RFS_EINVAL. opts may be NULL only for an existing log.
 * Recovery keeps every batch whose commit record checks out and zeroes a torn tail; any other
 * damage is RFS_ECORRUPT with the segment and offset. On success *out is the log, to be freed
 * with wal_close(). On failure *out is NULL and a message is written to errbuf (errlen bytes,
 * NUL-terminated) if errbuf is not NULL. Errors: RFS_EINVAL (another cluster, no cluster ID for
 * a new log, locked, bad options), RFS_EFORMAT (a segment of an unknown format version),
 * RFS_ECORRUPT, RFS_EIO, RFS_ENOSPACE, RFS_ENOMEM. dir and opts are copied. */
int wal_open(const char *dir, const struct wal_options *opts, struct wal **out, char *errbuf,
             size_t errlen);

/* Stop the background step, close the files and free the log. Iterators must be closed first.
 * NULL is allowed. */
void wal_close(struct wal *wal);

/* The message of the last failed call on this log (from any thread), copied into buf (size
 * bytes, NUL-terminated, truncated if needed). Returns buf. */
char *wal_errmsg(struct wal *wal, char *buf, size_t size);

/* --- writes (writer thread) ---------------------------------------------------------------- */

/* One write of the Raft runtime's log writer (group commit): optionally the hard state (term and
 * vote), then optionally the deletion of every entry >= truncate_from, then n entries, as one
 * batch with one commit record, one write and one sync. After the deletion, entries must start
 * at last_index + 1 (in an empty log: at first_index, the index after the snapshot or dropped
 * prefix), be consecutive, and have terms that never decrease from the entry before them (or
 * from the snapshot's term). Neither the deletion nor an entry may reach an index at or below
 * the recorded snapshot (committed entries are never rewritten). The term may not decrease.
 * truncate_from above last_index deletes nothing. Payloads are borrowed for the call. An empty
 * batch is a no-op returning 0.
 * Errors: RFS_ERANGE (not contiguous, or at or below the snapshot), RFS_EINVAL (a term
 * decreases, payload too large), RFS_ENOSPACE, RFS_ESTICKY, RFS_EIO, RFS_ENOMEM. */
struct wal_batch {
    bool has_state;
    uint64_t term;
    uint64_t vote;
    uint64_t truncate_from; /* 0: no deletion */
    const struct wal_entry *entries;
    size_t n;
};
int wal_write(struct wal *wal, const struct wal_batch *batch);

/* Record a new cluster epoch (offline recovery stamps one). Errors: RFS_EINVAL (lower than the
 * recorded one), RFS_ENOSPACE, RFS_ESTICKY, RFS_EIO, RFS_ENOMEM. */
int wal_set_epoch(struct wal *wal, uint64_t epoch);

/* A snapshot covering the log up to index (whose term is term) was taken: record it and drop
 * every entry <= drop_through, as ONE record, then delete the segments that hold no entry left.
 * The snapshot never moves backwards: index below the recorded snapshot, or equal with another
 * term, is refused. drop_through <= index <= last_index, and term equals the term of the entry
 * at index. A drop_through below the first index drops nothing.
 * Errors: RFS_EINVAL (refused), RFS_ENOSPACE, RFS_ESTICKY, RFS_EIO, RFS_ENOMEM. If only the
 * deletion of segments fails, the record stands, the call returns RFS_EIO and the log stays
 * writable (the next compaction tries again). */
int wal_snapshot(struct wal *wal, uint64_t index, uint64_t term, uint64_t drop_through);

/* A snapshot (index, term) was installed: record it and drop every entry, as one record; the
 * next entry is index + 1. Segments are deleted as by wal_snapshot. Refused (RFS_EINVAL) below
 * the recorded snapshot. Errors: as wal_snapshot. */
int wal_reset(struct wal *wal, uint64_t index, uint64_t term);

/* --- reads (any thread) -------------------------------------------------------------------- */

/* First and last index present. When the log is empty, first = last + 1 is the index the next
 * entry must have (a new log: 1 and 0; after wal_reset(i, t): i + 1 and i). */
void wal_bounds(struct wal *wal, uint64_t *first, uint64_t *last);

/* Term of the entry at index. Errors: RFS_ENOTFOUND. */
int wal_term_at(struct wal *wal, uint64_t index, uint64_t *term);

/* Read one entry, checking its CRC, into *out. out->payload is a malloc'd copy owned by the
 * caller, released with free() (NULL when len is 0).
 * Errors: RFS_ENOTFOUND, RFS_ECORRUPT, RFS_EIO, RFS_ENOMEM. */
int wal_entry_get(struct wal *wal, uint64_t index, struct wal_entry *out);

/* Iterator over entries lo..hi (inclusive; hi == UINT64_MAX: to the end). It holds no lock
 * between calls, so each entry it returns is the one the log holds at that index at the time of
 * the call: a concurrent truncation or compaction can end it early. Used by one thread at a
 * time. */
struct wal_iter;

/* Errors: RFS_EINVAL (lo == 0 or lo > hi), RFS_ENOMEM. */
int wal_iter_open(struct wal *wal, uint64_t lo, uint64_t hi, struct wal_iter **out);

/* Next entry. out->payload points into the iterator and stays valid until the next call or the
 * close. Returns 0 with an entry, RFS_ENOTFOUND at the end (or when the next index is no longer
 * in the log), RFS_ECORRUPT, RFS_EIO, RFS_ENOMEM. */
int wal_iter_next(struct wal_iter *it, struct wal_entry *out);

/* Free the iterator. NULL is allowed. */
void wal_iter_close(struct wal_iter *it);

/* The stable state. Values never set are 0; snapshot_index 0 means no snapshot. */
struct wal_state {
    uint64_t term;
    uint64_t vote;
    uint64_t epoch;
    uint64_t snapshot_index;
    uint64_t snapshot_term;
};
void wal_state_get(struct wal *wal, struct wal_state *out);

/* The cluster ID recorded in the segments, NUL-terminated into id. */
void wal_cluster_id(struct wal *wal, char id[WAL_CLUSTER_ID_MAX + 1]);

#endif
