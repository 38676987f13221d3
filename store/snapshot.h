/* Snapshot files: a checksummed header followed by a compacting copy of an LMDB environment;
 * taking, streaming out in chunks, receiving, verifying, extracting and retention. The file
 * format is in docs/disk-format.md ("Snapshot files"). */
#ifndef STORE_SNAPSHOT_H
#define STORE_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SNAPSHOT_VERSION 1u /* of a snapshot file, checked on open (--version shows it) */

/* Threads. Every function may be called from any thread, and different snapshot objects
 * (readers, receivers) are independent. One object is used by one thread at a time. A
 * snapshot that retention deletes while a reader has it open stays readable through that
 * reader (the descriptor keeps the file alive).
 *
 * Errors. Functions return 0 or an RFS_E* code and record a message with context, which
 * store_snapshot_errmsg() returns: RFS_ECORRUPT (a header or payload failed its checks;
 * nothing was installed), RFS_EFORMAT (a valid header of an unknown version), RFS_ENOTFOUND,
 * RFS_ENOSPACE (disk full), RFS_EIO, RFS_ENOMEM, RFS_EINVAL, RFS_ERANGE. */

struct MDB_env; /* LMDB's; only store/ passes one (the state machine's environment). */
struct MDB_txn;

/* A directory holding snapshot files (and their temporary files while being written). */
struct store_snapshot_dir;

struct store_snapshot_options {
    unsigned keep; /* snapshots kept by retention, newest by index (0: 2) */
};

/* What a snapshot contains: the last log entry it includes and raft's configuration at that
 * entry (opaque bytes, at most 1 MiB). */
struct store_snapshot_meta {
    uint64_t index;
    uint64_t term;
    size_t config_len;
    const void *config; /* see each function for who owns it */
};

/* One snapshot file. */
struct store_snapshot_info {
    uint64_t index;
    uint64_t term;
    uint64_t size; /* bytes of the whole file, header included: what a sender streams */
};

/* Open (creating if absent) the snapshot directory path and remove temporary files that a
 * crash left behind. opts may be NULL. path is copied. On failure *out is NULL and a message
 * is written to errbuf if not NULL. Errors: RFS_EIO, RFS_ENOMEM. */
int store_snapshot_dir_open(const char *path, const struct store_snapshot_options *opts,
                            struct store_snapshot_dir **out, char *errbuf, size_t errlen);

/* Free the directory object. Readers and receivers must be closed first. NULL allowed. */
void store_snapshot_dir_close(struct store_snapshot_dir *sd);

/* The message of the last failed call on sd or its objects, copied into buf (size bytes,
 * NUL-terminated). Returns buf. */
char *store_snapshot_errmsg(struct store_snapshot_dir *sd, char *buf, size_t size);

/* --- taking --------------------------------------------------------------------------------- */

/* Called on the finished copy, in a read transaction of the copy, to say what it contains:
 * fill meta (index, term, config). meta->config may point into the transaction's memory; it
 * is copied before the transaction ends. Return 0 or an RFS code. */
typedef int (*store_snapshot_describe_fn)(void *ctx, struct MDB_txn *copy_txn,
                                          struct store_snapshot_meta *meta);

/* Take a snapshot of env: mdb_env_copyfd2(MDB_CP_COMPACT) into a temporary file, then the
 * header and the copy into a second temporary file, fsync, rename into place, fsync the
 * directory, then apply retention. The copy runs in its own LMDB read transaction, so writers
 * of env are never blocked.
 *
 * Which index does the copy hold? The copy's read transaction starts inside LMDB, after the
 * caller could read anything, so the caller must not guess: pass describe, which reads the
 * applied index, its term and the configuration back from the copy itself (the state machine
 * keeps them in env, updated in the same transaction as the data). Only a caller that knows
 * env does not change during the call may pass describe == NULL and the meta in `given`
 * (borrowed for the call).
 *
 * Preconditions: env is open; the calling thread holds no read transaction on env unless env
 * was opened with MDB_NOTLS. On success *out (if not NULL) describes the new file.
 * Errors: RFS_EIO, RFS_ENOSPACE, RFS_ENOMEM, RFS_EINVAL (config too long), or describe's
 * code. On failure no snapshot file was added and the temporary files are removed. */
int store_snapshot_take(struct store_snapshot_dir *sd, struct MDB_env *env,
                        store_snapshot_describe_fn describe, void *ctx,
                        const struct store_snapshot_meta *given, struct store_snapshot_info *out);

/* --- listing, retention --------------------------------------------------------------------- */

/* All snapshots, newest first: *out is malloc'd (free() it), *n entries (may be 0).
 * Errors: RFS_EIO, RFS_ENOMEM. */
int store_snapshot_list(struct store_snapshot_dir *sd, struct store_snapshot_info **out, size_t *n);

/* Delete all but the newest `keep` snapshots (keep >= 1). Called after every take and
 * receive with the configured count. Errors: RFS_EINVAL (keep == 0), RFS_EIO. */
int store_snapshot_retain(struct store_snapshot_dir *sd, unsigned keep);

/* --- streaming out -------------------------------------------------------------------------- */

struct store_snapshot_reader;

/* Open snapshot (index, term) for reading in chunks; checks its header (not the payload:
 * the receiver verifies everything). Errors: RFS_ENOTFOUND, RFS_ECORRUPT, RFS_EFORMAT,
 * RFS_EIO, RFS_ENOMEM. */
int store_snapshot_open(struct store_snapshot_dir *sd, uint64_t index, uint64_t term,
                        struct store_snapshot_reader **out);

/* Size of the whole file in bytes. */
uint64_t store_snapshot_reader_size(const struct store_snapshot_reader *r);

/* The header's meta; config is borrowed until store_snapshot_reader_close(). */
const struct store_snapshot_meta *store_snapshot_reader_meta(const struct store_snapshot_reader *r);

/* Copy up to len bytes at offset into buf; *n is the count, less than len only at the end of
 * the file (0 at or past the end). Errors: RFS_EIO. */
int store_snapshot_reader_read(struct store_snapshot_reader *r, uint64_t offset, void *buf,
                               size_t len, size_t *n);

/* Close the reader. NULL allowed. */
void store_snapshot_reader_close(struct store_snapshot_reader *r);

/* --- receiving ------------------------------------------------------------------------------ */

struct store_snapshot_receiver;

/* Start receiving the snapshot (index, term) from a leader into a temporary file.
 * Errors: RFS_EIO, RFS_ENOSPACE, RFS_ENOMEM. */
int store_snapshot_receive_begin(struct store_snapshot_dir *sd, uint64_t index, uint64_t term,
                                 struct store_snapshot_receiver **out);

/* Write a chunk (the bytes of the file as the sender's reader returned them). Chunks must be
 * sequential: offset must equal the bytes received so far; otherwise RFS_ERANGE, nothing is
 * written and the message names the offset expected. buf is borrowed for the call.
 * Errors: RFS_ERANGE, RFS_ENOSPACE, RFS_EIO. */
int store_snapshot_receive_write(struct store_snapshot_receiver *r, uint64_t offset,
                                 const void *buf, size_t len);

/* Verify the received file (header checksum, index and term as announced, length, payload
 * checksum), fsync it, rename it into place, fsync the directory and apply retention. Frees
 * r in every case; on failure the temporary file is deleted and existing snapshots are
 * untouched. *out (if not NULL) describes the new file.
 * Errors: RFS_ECORRUPT (truncated or damaged), RFS_EFORMAT, RFS_EINVAL (header names another
 * index or term than announced), RFS_EIO, RFS_ENOSPACE. */
int store_snapshot_receive_finish(struct store_snapshot_receiver *r,
                                  struct store_snapshot_info *out);

/* Abandon a receive: delete the temporary file and free r. NULL allowed. */
void store_snapshot_receive_abort(struct store_snapshot_receiver *r);

/* --- installing ----------------------------------------------------------------------------- */

/* Turn snapshot (index, term) into an LMDB environment directory `dest` holding data.mdb,
 * atomically: the payload is written (and its checksum verified) into a temporary directory
 * beside dest, synced, then renamed to dest; an existing dest is swapped out in the same
 * rename (RENAME_EXCHANGE) and then deleted, so after a crash dest is either the old or the
 * new environment. No environment may be open on dest. dest is borrowed for the call.
 * Errors: RFS_ENOTFOUND, RFS_ECORRUPT (dest untouched), RFS_EFORMAT, RFS_ENOSPACE, RFS_EIO. */
int store_snapshot_extract(struct store_snapshot_dir *sd, uint64_t index, uint64_t term,
                           const char *dest);

/* --- decoding (also the fuzzing surface) ---------------------------------------------------- */

/* A decoded header. config points into the decoded buffer. */
struct store_snapshot_header {
    struct store_snapshot_meta meta;
    uint32_t header_len; /* bytes before the payload */
    uint64_t payload_len;
    uint32_t payload_crc;
};

/* Largest header accepted (fixed part, 1 MiB of configuration, header CRC). */
#define STORE_SNAPSHOT_MAX_HEADER (48u + (1u << 20) + 4u)

/* Decode and check a header at the start of buf (len bytes, which may extend into the
 * payload). Never reads outside buf. Errors: RFS_ECORRUPT (truncated, bad magic, bad
 * lengths, checksum mismatch), RFS_EFORMAT (valid checksum, unknown version). */
int store_snapshot_header_decode(const void *buf, size_t len, struct store_snapshot_header *out);

/* Check a whole snapshot file held in memory: header, payload length and payload checksum.
 * Errors: as store_snapshot_header_decode. Production checks files (receive, open, extract);
 * this is the in-memory oracle that test/fuzz/fuzz_snapshot.c compares the file path with. */
int store_snapshot_image_verify(const void *buf, size_t len, struct store_snapshot_header *out);

#endif
