/* Raft log store and stable store (term, vote, epoch) in one LMDB environment: the raftfs
 * equivalent of hashicorp's raft-mdb. The on-disk layout is in docs/disk-format.md. */
#ifndef STORE_LOGSTORE_H
#define STORE_LOGSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_LOG_FORMAT_VERSION 1u /* of the log store, checked on open (--version shows it) */

/* Threads. One writer thread calls every mutating function (append, truncate, drop, set_*);
 * any number of reader threads may call the read functions (get, range, iterators, bounds,
 * term_at, get_*) at the same time as the writer and each other. Open and close are not
 * concurrent with anything. Readers see the state of the last commit that had returned when
 * their read began (each read is one LMDB read transaction; iterators keep theirs open).
 *
 * Durability. Every mutating function returns only after its single LMDB transaction is
 * committed and synced (fdatasync of the data file, then the meta page via O_DSYNC).
 *
 * Errors. Functions return 0 or an RFS_E* code from lib/error.h and record a message with
 * context (which call, which indexes, the foreign error) that store_log_errmsg() returns.
 * - RFS_ENOSPACE: the map is full at its maximum size (or the disk is full). Nothing was
 *   written. Not sticky for a map-full: later writes that fit succeed, and truncations,
 *   prefix drops and stable-store writes get an emergency headroom beyond the maximum so
 *   that compaction can always free room.
 * - RFS_ESTICKY: an earlier commit or sync failed; every write is refused until the store is
 *   closed and reopened (a failed fsync must never be retried). Reads keep working.
 * - RFS_ECORRUPT: an entry or record failed its CRC32C; the message names the index. Corrupt
 *   data is never returned. */

struct store_log;

/* Entry type is opaque to the store (raft defines the values). */
struct store_log_entry {
    uint64_t index;
    uint64_t term;
    uint8_t type;
    size_t len;          /* payload length in bytes */
    const void *payload; /* see each function for who owns it */
};

struct store_log_options {
    /* Initial LMDB map size in bytes (0: 64 MiB). Rounded up to the page size by LMDB. */
    uint64_t map_size;
    /* Largest size the map may grow to when full (0: same as map_size, no growth). */
    uint64_t map_size_max;
    /* Extra map space beyond map_size_max that only truncations, prefix drops and stable
     * writes may use, so a full log can still be compacted (0: 1 MiB). */
    uint64_t map_headroom;
    /* How long growing the map waits for open read transactions to finish (0: 2000 ms). */
    unsigned grow_wait_ms;
};

/* Open (creating if absent) the log environment in directory path. opts may be NULL for the
 * defaults. On success *out is a store to pass to store_log_close(). On failure *out is NULL
 * and, if errbuf is not NULL, a message is written to errbuf (errlen bytes, NUL-terminated).
 * Errors: RFS_EFORMAT (unknown format version or not a raftfs log), RFS_EIO, RFS_ENOMEM,
 * RFS_ECORRUPT (format record damaged), RFS_EINVAL. path is copied. */
int store_log_open(const char *path, const struct store_log_options *opts, struct store_log **out,
                   char *errbuf, size_t errlen);

/* Close the store. All iterators must be closed first. NULL is allowed. */
void store_log_close(struct store_log *log);

/* The message of the last failed call on this store (from any thread), copied into buf
 * (size bytes, NUL-terminated, truncated if needed). Returns buf. */
char *store_log_errmsg(struct store_log *log, char *buf, size_t size);

/* --- log ------------------------------------------------------------------------------------ */

/* Append n >= 1 entries in one transaction with one durable commit. Indexes must be
 * consecutive and start at last_index + 1; if the log is empty, at any index greater than the
 * highest index ever dropped as a prefix (e.g. snapshot index + 1 after an install). Terms
 * must not decrease, neither within the batch nor from the last stored entry.
 * Payloads are borrowed for the duration of the call.
 * Errors: RFS_ERANGE (not contiguous), RFS_EINVAL (term decreases, payload > 1 GiB),
 * RFS_ENOSPACE (also for a batch too large for one transaction), RFS_ESTICKY, RFS_EIO. */
int store_log_append(struct store_log *log, const struct store_log_entry *entries, size_t n);

/* Delete every entry with index >= from, then append n (may be 0) entries, in one
 * transaction: the conflict resolution of Raft §5.3. The append rules above apply to the
 * log as it is after the deletion. from > last_index deletes nothing.
 * Errors: as store_log_append, plus RFS_EINVAL for from == 0. */
int store_log_truncate_append(struct store_log *log, uint64_t from,
                              const struct store_log_entry *entries, size_t n);

/* One write of the Raft runtime's log writer (group commit): optionally the hard state (term and
 * vote), then optionally delete entries >= truncate_from, then append n entries, all in one
 * transaction with one durable commit. The append rules of store_log_append apply to the log as
 * it is after the deletion. Payloads are borrowed for the call. */
struct store_log_batch {
    bool has_hard_state;
    uint64_t term;
    uint64_t vote;
    uint64_t truncate_from; /* 0: no deletion */
    const struct store_log_entry *entries;
    size_t n;
};

/* Errors: as store_log_truncate_append. An empty batch (no hard state, nothing to delete or
 * append) is a no-op returning 0. */
int store_log_write(struct store_log *log, const struct store_log_batch *batch);

/* A snapshot (index, term) was installed: delete every entry, remember index as dropped (the
 * next append starts at index + 1) and record the snapshot meta, in one transaction, so that a
 * crash leaves either the old log or the new empty one, never a mix.
 * Errors: RFS_ENOSPACE, RFS_ESTICKY, RFS_EIO. */
int store_log_reset(struct store_log *log, uint64_t index, uint64_t term);

/* Delete every entry with index <= through in one transaction (log compaction after a
 * snapshot). through may exceed last_index (snapshot install): the log becomes empty and the
 * next append may start at through + 1. The highest value ever passed is remembered and no
 * append may reuse an index at or below it. The pages freed become reusable after one more
 * commit (LMDB keeps the previous state intact for crash safety); recording the snapshot
 * with store_log_set_snapshot_meta() afterwards is that commit in practice.
 * Errors: RFS_ENOSPACE, RFS_ESTICKY, RFS_EIO. */
int store_log_drop_prefix(struct store_log *log, uint64_t through);

/* First and last index present; both 0 when the log is empty. Errors: RFS_EIO. */
int store_log_bounds(struct store_log *log, uint64_t *first, uint64_t *last);

/* Term of the entry at index (after checking its CRC).
 * Errors: RFS_ENOTFOUND (no such entry), RFS_ECORRUPT, RFS_EIO. */
int store_log_term_at(struct store_log *log, uint64_t index, uint64_t *term);

/* Read one entry into *out. On success out->payload is a malloc'd copy owned by the caller,
 * released with free(); it is NULL when len is 0.
 * Errors: RFS_ENOTFOUND, RFS_ECORRUPT, RFS_ENOMEM, RFS_EIO. */
int store_log_get(struct store_log *log, uint64_t index, struct store_log_entry *out);

/* Zero-copy iterator over entries lo..hi (inclusive; hi == UINT64_MAX for "to the end").
 * It holds one LMDB read transaction for its whole life, so it sees one consistent state and
 * delays growing the map and reusing freed pages: close it promptly, and never hold one in
 * the writer thread across a write call. */
struct store_log_iter;

/* Errors: RFS_EINVAL (lo == 0 or lo > hi), RFS_ENOMEM, RFS_EIO. */
int store_log_iter_open(struct store_log *log, uint64_t lo, uint64_t hi,
                        struct store_log_iter **out);

/* Next entry in index order. *out's payload points into the LMDB map and is valid until the
 * next call on this iterator or its close; the caller must not write to it. Returns 0 with
 * an entry, RFS_ENOTFOUND at the end, RFS_ECORRUPT (the iterator then stays at the end),
 * RFS_EIO. An iterator is used by one thread at a time. */
int store_log_iter_next(struct store_log_iter *it, struct store_log_entry *out);

/* End the read transaction and free the iterator. NULL is allowed. */
void store_log_iter_close(struct store_log_iter *it);

/* --- stable store --------------------------------------------------------------------------- */

/* Setters are durable when they return. Errors: RFS_ENOSPACE, RFS_ESTICKY, RFS_EIO. The vote
 * is written with the term, as the hard state of store_log_write. */
int store_log_set_term(struct store_log *log, uint64_t term);
int store_log_set_epoch(struct store_log *log, uint64_t epoch);

/* Getters return 0 for a value never set. Errors: RFS_ECORRUPT, RFS_EIO. */
int store_log_get_term(struct store_log *log, uint64_t *term);
int store_log_get_vote(struct store_log *log, uint64_t *node_id);
int store_log_get_epoch(struct store_log *log, uint64_t *epoch);

/* The name of the cluster this log belongs to, recorded when the node first starts so that a
 * data directory is never used by another cluster (docs/disk-format.md). Set: 1 to
 * STORE_LOG_CLUSTER_ID_MAX bytes (RFS_EINVAL otherwise), durable when it returns; errors as
 * the other setters. Get: NUL-terminated into id; RFS_ENOTFOUND (id "") if none was recorded
 * (a log made before the record existed), RFS_ECORRUPT, RFS_EIO. */
#define STORE_LOG_CLUSTER_ID_MAX 96
int store_log_set_cluster_id(struct store_log *log, const char *id);
int store_log_get_cluster_id(struct store_log *log, char id[STORE_LOG_CLUSTER_ID_MAX + 1]);

/* Index and term of the last snapshot raft installed or took (for restart). Get returns
 * RFS_ENOTFOUND if none was ever set. */
int store_log_set_snapshot_meta(struct store_log *log, uint64_t index, uint64_t term);
int store_log_get_snapshot_meta(struct store_log *log, uint64_t *index, uint64_t *term);

#endif
