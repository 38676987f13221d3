/* The inode state machine: the filesystem tree in its own LMDB environment, changed only by
 * applying committed commands (store/command.h) in batches, read from any thread.
 * Format: docs/disk-format.md; commands: docs/fsm-format.md. Design of the inode lifecycle: the
 * note in store/fsm_namespace.c.
 *
 * Return values. Functions return 0 on success or an RFS_E* code (lib/error.h, >= 1000)
 * when the store itself failed. Where a filesystem answer is meant (lookup of a missing name,
 * getxattr of an absent attribute...) read functions return that positive errno (< 1000)
 * instead; apply functions put it in the command's result and still return 0.
 *
 * Threads. One thread (the apply thread) calls the apply functions; any number of threads may
 * call the read functions concurrently with it and with each other (each call uses its own
 * LMDB read transaction; the environment is opened with MDB_NOTLS). */
#ifndef STORE_FSM_H
#define STORE_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/command.h"

#define STORE_FSM_FORMAT_VERSION    3 /* 2: locks and sessions; 3: the space count */
#define STORE_FSM_ROOT_INO          1
#define STORE_FSM_NAME_MAX          255
#define STORE_FSM_SYMLINK_MAX       4095
#define STORE_FSM_XATTR_NAME_MAX    255
#define STORE_FSM_XATTR_SIZE_MAX    65536
#define STORE_FSM_DEFAULT_FILE_MAX  ((uint64_t)64 * 1024 * 1024)
#define STORE_FSM_DEFAULT_SPACE     ((uint64_t)1024 * 1024 * 1024)
#define STORE_FSM_DEFAULT_MAX_LINKS 65000
#define STORE_FSM_DIGEST_SIZE       32
#define STORE_FSM_LOCKS_MAX         1024 /* lock records (held and waiting) per inode: ENOLCK */

/* Read-only extended attribute holding the fencing token of the newest lock held on a file,
 * as decimal ASCII. Outside the user., trusted. and security. namespaces, so no user's own
 * attribute can take the name; FUSE passes every name to getxattr. */
#define STORE_FSM_XATTR_LOCK_TOKEN "raftfs.lock_token"

struct store_fsm;

struct store_fsm_time {
    int64_t sec;
    uint32_t nsec;
};

/* Attributes of one inode, as stat(2) would show them. */
struct store_fsm_attr {
    uint64_t ino;
    uint32_t mode; /* S_IFMT type bits | permission bits (07777) */
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;
    uint32_t rdev;
    uint64_t size;   /* bytes; a directory counts 40 + 20 per entry (as tmpfs does) */
    uint64_t blocks; /* 512-byte units actually stored (holes take none) */
    struct store_fsm_time atime;
    struct store_fsm_time mtime;
    struct store_fsm_time ctime;
    uint64_t generation; /* always 0: inode numbers are never reused */
};

struct store_fsm_options {
    /* Total size limit in bytes: the logical space count (docs/fsm-format.md, "Space") past
     * which changes answer ENOSPC. 0: 1 GiB. Only used when creating the env or upgrading
     * one that has no limit yet: the recorded limit wins afterwards, so that every replica
     * decides alike. */
    uint64_t space_limit;
    /* LMDB map size; 0 (always, outside tests): derived from the recorded limit with the
     * headroom of docs/fsm-format.md, "Space". A map that fills up all the same fails the
     * apply (RFS_ENOSPACE) rather than answering ENOSPC. */
    uint64_t map_size;
    uint64_t max_file_size; /* EFBIG past it; 0: 64 MiB. Only used when creating the env. */
    uint32_t max_links;     /* EMLINK at it; 0: 65000. Only used when creating the env. */
    struct store_fsm_time root_time; /* times of the root directory when creating the env */
    bool no_sync; /* MDB_NOSYNC and no crash marker: for tests and benchmarks only */
    /* Commit applied batches without syncing them (the Raft log is the durable record) and
     * keep a crash marker so that an environment a machine crash may have torn is emptied at
     * the next open; the runtime then rebuilds it from the snapshot and the log. See
     * docs/disk-format.md, "Unsynced apply". Falls back to synced commits where the boot id
     * cannot be read. */
    bool unsynced_apply;
};

/* Open the state machine in directory dir (created, mode 0700, if missing); create the
 * environment with its root directory (inode 1, mode 0755, uid 0, gid 0, times
 * opts->root_time) if it is new. opts may be NULL for defaults; dir is copied. On success *out
 * is a new instance, freed with store_fsm_close. On failure *out is NULL and, if err is not
 * NULL, a message with context is written to err (errlen bytes, NUL-terminated, truncated if
 * need be). Errors: RFS_EFORMAT (existing env of another format version), RFS_ECORRUPT,
 * RFS_ENOTFOUND (a missing parent of dir), RFS_EIO, RFS_ENOMEM, RFS_ENOSPACE (map too small
 * for even the root, or the disk is full). */
int store_fsm_open(const char *dir, const struct store_fsm_options *opts, struct store_fsm **out,
                   char *err, size_t errlen);

/* Close and free fsm. With unsynced_apply, everything is synced first and the crash marker
 * removed. No other call may be running or start afterwards. NULL is allowed. */
void store_fsm_close(struct store_fsm *fsm);

/* True when store_fsm_open found the crash marker of an earlier boot (or of a failed sync) and
 * emptied the environment: the caller should say so, since everything applied is to be
 * rebuilt from the snapshot and the log. */
bool store_fsm_was_emptied(const struct store_fsm *fsm);

/* The message of the last failure of open, apply or restore, with context ("put block 7 of
 * inode 12: MDB_MAP_FULL: ..."), copied into buf (len bytes, NUL-terminated, truncated if need
 * be); "" if there was none since the last successful open or the start of the last apply
 * batch. Any thread may call it. Failed reads record no message: their error code is their
 * caller's. */
void store_fsm_errmsg(struct store_fsm *fsm, char *buf, size_t len);

/* A waiting lock request that a command answered: granted (err 0, with its token), or failed
 * (err ENOLCK: its session ended; ENOENT: its file was deleted; EINTR: LOCK_CANCEL withdrew
 * it). Every waiter leaves its queue exactly once, through one of these. */
struct store_fsm_wakeup {
    uint64_t ino;
    uint64_t session;
    uint64_t owner;
    uint64_t request;
    uint64_t token; /* granted: the fencing token (the granting entry's index); 0 otherwise */
    int err;
};

/* Outcome of one command. err is 0 or a positive errno decided by the state machine; when it
 * is non-zero nothing was changed and the other fields are zero, with one exception that
 * follows Linux: a flock conversion refused with EAGAIN has already dropped the old lock, and
 * its wakeups list the waiters that let in. */
struct store_fsm_result {
    int err;
    uint64_t ino;               /* inode created or changed (rename: the moved inode) */
    struct store_fsm_attr attr; /* its attributes after the command */
    uint64_t written;           /* WRITE: bytes written (short when the size limit cuts it) */
    bool existed;               /* CREATE without EXCL found an existing regular file */
    uint64_t dropped_ino;       /* UNLINK/RMDIR/RENAME: inode that lost a link, or 0; FORGET:
                                   the orphan deleted (0 while holders remain) */
    uint32_t dropped_nlink;     /* its link count afterwards */
    bool dropped_is_orphan;     /* it reached 0 links and was kept as an orphan (KEEP_OPEN) */
    uint64_t session;           /* SESSION_OPEN: the new session's ID (its entry's index) */
    struct store_fsm_time delay_until; /* SESSION_END: lock-delay end, zero if removed now */
    uint64_t token;                    /* LOCK granted now: its fencing token */
    bool lock_queued;                  /* LOCK with WAIT: waiting; a wakeup will answer it */
    /* Waiters this command granted or failed, in order. Borrowed from fsm until the next
     * apply call: a copy of the result must not keep the pointer. */
    const struct store_fsm_wakeup *wakeups;
    size_t n_wakeups;
};

/* Apply cmds[0..n) in order, in one LMDB write transaction that also records index and term
 * as the last applied entry, and fill results[0..n). index must be greater than the applied
 * index (RFS_ERANGE otherwise, nothing applied). cmds[i].index is the log index of the entry
 * carrying cmds[i]: 0 (unknown) is allowed for filesystem commands; session and lock commands
 * need it (RFS_EINVAL otherwise); the non-zero ones must increase strictly, exceed the applied
 * index and not exceed index (RFS_ERANGE otherwise). ENOSPC is a command's answer only when
 * it would take the logical space count past the recorded limit, the same on every node.
 * Errors: RFS_ESTICKY (an earlier commit failed: reopen), RFS_ENOSPACE (the LMDB map filled up
 * before the limit: the caller must not go on deciding alone; a restart retries with the
 * readers' pages released), RFS_EIO, RFS_ECORRUPT: then nothing of the batch is applied,
 * except that a failed commit leaves the store sticky.
 * cmds and results are borrowed for the call. n may be 0 (advances the index only). */
int store_fsm_apply_batch(struct store_fsm *fsm, uint64_t index, uint64_t term,
                          const struct store_cmd *cmds, size_t n, struct store_fsm_result *results);

/* Advance the applied index for an entry that is not a filesystem command (raft no-op).
 * Same errors as store_fsm_apply_batch. */
int store_fsm_apply_index(struct store_fsm *fsm, uint64_t index, uint64_t term);

/* Record blob (len bytes, copied) as the raft configuration of entry index and advance the
 * applied index to it. Same errors as store_fsm_apply_batch. */
int store_fsm_apply_config(struct store_fsm *fsm, uint64_t index, uint64_t term, const void *blob,
                           size_t len);

/* Last applied index and term (0, 0 for a new store). Either pointer may be NULL. */
int store_fsm_applied(struct store_fsm *fsm, uint64_t *index, uint64_t *term);

/* --- reads: any thread --------------------------------------------------------------------- */

/* Attributes of the entry name (name_len bytes) in directory parent. "." and ".." work.
 * Errors: ENOENT, ENOTDIR (parent is not a directory), ENAMETOOLONG. */
int store_fsm_lookup(struct store_fsm *fsm, uint64_t parent, const char *name, size_t name_len,
                     struct store_fsm_attr *out);

/* Attributes of inode ino. Errors: ENOENT. */
int store_fsm_getattr(struct store_fsm *fsm, uint64_t ino, struct store_fsm_attr *out);

/* Called by store_fsm_readdir for each entry; name is borrowed for the call only; type is the
 * S_IFMT bits of the child; next is the offset to resume after this entry. Return non-zero to
 * stop (e.g. the reply buffer is full: the entry is then not consumed by the caller). */
typedef int (*store_fsm_readdir_fn)(void *arg, const char *name, size_t name_len, uint64_t ino,
                                    uint32_t type, uint64_t next);

/* List directory ino from offset (0 to start; afterwards a `next` passed to fn). Emits ".",
 * ".." and then the entries in the order they were added. Offsets are per-directory entry
 * sequence numbers, so they stay valid while entries come and go: an entry present for the
 * whole listing is reported exactly once. Errors: ENOENT, ENOTDIR. fn is called inside a read
 * transaction: it must not call back into fsm's apply functions. */
int store_fsm_readdir(struct store_fsm *fsm, uint64_t ino, uint64_t offset, store_fsm_readdir_fn fn,
                      void *arg);

/* Read up to len bytes of file ino at offset into buf; *n is the count (0 at or past the end).
 * Holes read as zeros. Errors: ENOENT, EISDIR (directory), EINVAL (not a regular file). */
int store_fsm_read(struct store_fsm *fsm, uint64_t ino, uint64_t offset, void *buf, size_t len,
                   size_t *n);

/* The whole of file ino as one version: its attributes and a copy of its attr->size bytes of
 * data (*data, freed by the caller), both read in one transaction. Errors: ENOENT, EISDIR,
 * EINVAL as store_fsm_read, EFBIG (larger than max bytes), ENOMEM. */
int store_fsm_read_file(struct store_fsm *fsm, uint64_t ino, uint64_t max,
                        struct store_fsm_attr *attr, uint8_t **data);

/* Target of symlink ino into buf (cap bytes, not NUL-terminated); *len is its full length.
 * Errors: ENOENT, EINVAL (not a symlink), ERANGE (cap < length; *len still set). */
int store_fsm_readlink(struct store_fsm *fsm, uint64_t ino, char *buf, size_t cap, size_t *len);

/* Value of extended attribute name (NUL-terminated) of ino into buf (cap bytes); *len is the
 * value's size. cap 0 only asks for the size. STORE_FSM_XATTR_LOCK_TOKEN gives the newest
 * fencing token held on ino (ENODATA when no lock is held). Errors: ENOENT, ENODATA, ERANGE
 * (cap too small), EOPNOTSUPP (unknown namespace). */
int store_fsm_getxattr(struct store_fsm *fsm, uint64_t ino, const char *name, void *buf, size_t cap,
                       size_t *len);

/* Names of the extended attributes of ino, each NUL-terminated, in byte order, into buf (cap
 * bytes); *len is the total size. cap 0 only asks for the size. Errors: ENOENT, ERANGE. */
int store_fsm_listxattr(struct store_fsm *fsm, uint64_t ino, char *buf, size_t cap, size_t *len);

/* Called by store_fsm_orphans for each orphan (an inode without links kept while open): its
 * number and the nodes that may still hold it open (store/command.h, `holders`). Return
 * non-zero to stop. Called inside a read transaction: no apply calls. */
typedef int (*store_fsm_orphan_fn)(void *arg, uint64_t ino, uint64_t holders);

/* List the orphans in inode order. Errors: RFS_ECORRUPT, RFS_EIO. */
int store_fsm_orphans(struct store_fsm *fsm, store_fsm_orphan_fn fn, void *arg);

struct store_fsm_statfs {
    uint32_t bsize;       /* block size of file data */
    uint64_t blocks;      /* the space limit in bsize units */
    uint64_t bfree;       /* the limit less the space count, in bsize units (0 when over it) */
    uint64_t space_limit; /* bytes: the recorded limit */
    uint64_t space_used;  /* bytes: the logical space count */
    uint64_t files;       /* inodes in use */
    uint64_t ffree;       /* inode numbers left */
    uint32_t namemax;     /* 255 */
    uint64_t max_file_size;
};

/* Limits and use, from one read transaction. */
int store_fsm_statfs(struct store_fsm *fsm, struct store_fsm_statfs *out);

/* The space count computed afresh by walking the tables, in one read transaction: equal to
 * store_fsm_statfs's space_used at every commit unless the accounting is broken (a check for
 * tests and inspection; it reads the whole tree). */
int store_fsm_space_recount(struct store_fsm *fsm, uint64_t *used);

/* SHA-256 over the logical contents (inode numbers and attributes, entries by name, file
 * bytes with holes and zeros alike, symlink targets, xattrs, orphans, locks and their queues,
 * sessions, the inode counter and the limits, the space limit included), in a canonical order.
 * Independent of LMDB layout, of readdir offsets and of the applied index and configuration.
 * Written to out. */
int store_fsm_digest(struct store_fsm *fsm, uint8_t out[STORE_FSM_DIGEST_SIZE]);

/* --- sessions and locks (fsm_session.c, fsm_locks.c) ------------------------------------ */

enum store_fsm_lock_state {
    STORE_FSM_LOCK_HELD = 1,
    STORE_FSM_LOCK_WAITING,
    STORE_FSM_LOCK_DELAYED, /* held by an ended session whose lock-delay has not run out */
};

/* One lock record, held or waiting. */
struct store_fsm_lock {
    uint64_t ino;
    uint64_t session;
    uint64_t node; /* the session's node */
    uint64_t owner;
    uint64_t request; /* the request that asked for it */
    uint64_t start;
    uint64_t len;               /* 0: to the end of the file */
    uint64_t token;             /* held: fencing token; waiting: 0 */
    struct store_fsm_time time; /* held: when granted; waiting: when asked */
    uint32_t pid;
    uint8_t kind;  /* STORE_CMD_LOCK_FLOCK or _POSIX */
    uint8_t type;  /* STORE_CMD_LOCK_READ or _WRITE (getlk: _UNLOCK when nothing conflicts) */
    uint8_t state; /* enum store_fsm_lock_state */
};

/* What F_GETLK answers for (session, owner) asking for a lock of kind and type (read or write)
 * on [start, start + len) (len 0: to the end): the conflicting lock held by another owner with
 * the lowest start (ties: lowest session, then owner); if none, the earliest waiter this
 * request would queue behind (state WAITING: raftfs grants in order, so it blocks as well);
 * otherwise out->type is STORE_CMD_LOCK_UNLOCK. Errors: ENOENT (no such inode), EINVAL (bad
 * kind or type), EOVERFLOW (the range passes the largest offset, 2^63 - 1). */
int store_fsm_getlk(struct store_fsm *fsm, uint64_t ino, uint64_t session, uint64_t owner,
                    uint8_t kind, uint8_t type, uint64_t start, uint64_t len,
                    struct store_fsm_lock *out);

/* Called for each lock record; lock is borrowed for the call. Return non-zero to stop. */
typedef int (*store_fsm_lock_fn)(void *arg, const struct store_fsm_lock *lock);

/* Every lock record of inode ino (0: of every inode, by inode number): held ones by kind and
 * start, then waiters in queue order. fn runs inside a read transaction: it must not call
 * fsm's apply functions. */
int store_fsm_locks(struct store_fsm *fsm, uint64_t ino, store_fsm_lock_fn fn, void *arg);

enum store_fsm_session_state {
    STORE_FSM_SESSION_LIVE = 1,
    STORE_FSM_SESSION_ENDED, /* its locks wait out the lock-delay; no new requests */
};

struct store_fsm_session {
    uint64_t id; /* the index of the entry that opened it */
    uint64_t node;
    uint8_t state; /* enum store_fsm_session_state */
    struct store_fsm_time opened;
    struct store_fsm_time ended;       /* ENDED only */
    struct store_fsm_time delay_until; /* ENDED only */
};

typedef int (*store_fsm_session_fn)(void *arg, const struct store_fsm_session *session);

/* Every session, by ID. Same rules for fn as store_fsm_locks. */
int store_fsm_sessions(struct store_fsm *fsm, store_fsm_session_fn fn, void *arg);

/* --- snapshots (fsm_snapshot.c) --------------------------------------------------------- */

struct store_snapshot_dir;
struct store_snapshot_info;

/* Write a snapshot of the whole state into sd (store/snapshot.h's format), described by the
 * applied index, term and configuration the copy holds. Runs concurrently with apply and reads
 * (it copies from one LMDB read transaction). Errors: those of store_snapshot_take. */
int store_fsm_snapshot(struct store_fsm *fsm, struct store_snapshot_dir *sd,
                       struct store_snapshot_info *out);

/* Replace the whole state with snapshot (index, term) of sd: readers wait while the
 * environment is swapped (atomically on disk: a crash leaves the old or the new one). Must not
 * run concurrently with apply. On failure the previous state stays open and in use.
 * Errors: RFS_ENOTFOUND, RFS_ECORRUPT, RFS_EFORMAT, RFS_ENOSPACE, RFS_EIO. */
int store_fsm_restore(struct store_fsm *fsm, struct store_snapshot_dir *sd, uint64_t index,
                      uint64_t term);

#endif
