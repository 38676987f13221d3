/* Internals of the inode state machine shared by store/fsm*.c: the instance, key and record
 * layouts (docs/disk-format.md), and the helpers every command uses. Not a public header. */
#ifndef STORE_FSM_INTERNAL_H
#define STORE_FSM_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "lib/error.h"
#include "lib/le.h"
#include "store/fsm.h"

#define FSM_FORMAT_VERSION STORE_FSM_FORMAT_VERSION /* older formats are upgraded */
#define FSM_BLOCK_SIZE     4096u
#define FSM_DIRENT_SIZE    20u /* tmpfs's BOGO_DIRENT_SIZE: a directory's size grows by it */
#define FSM_FIRST_COOKIE   3u  /* readdir offsets 1 and 2 are "." and ".." */
#define FSM_INODE_RECORD   104u

struct store_fsm {
    pthread_rwlock_t lock; /* readers share it; restore swaps the env under it exclusively */
    char *dir;             /* for reopening after a restore */
    struct store_fsm_options opts;
    MDB_env *env;
    MDB_dbi meta;
    MDB_dbi inodes;
    MDB_dbi dirents;
    MDB_dbi cookies;
    MDB_dbi blocks;
    MDB_dbi symlinks;
    MDB_dbi xattrs;
    MDB_dbi orphans;
    MDB_dbi locks;          /* ino -> the inode's lock list (fsm_locks.c) */
    MDB_dbi sessions;       /* session -> session record (fsm_session.c) */
    uint64_t map_size;      /* of the LMDB map: the space limit with headroom (fsm_space.c) */
    uint64_t max_file_size; /* limits, read from meta on open */
    uint32_t max_links;
    uint32_t block_size;
    bool is_failed;   /* a commit failed: refuse writes until reopened (sticky) */
    bool is_unsynced; /* commits are not synced: opts.unsynced_apply and a boot id is known */
    bool was_emptied; /* the open found a stale crash marker and emptied the environment */
    pthread_mutex_t err_lock;
    char errmsg[256]; /* protected by err_lock; written by open, apply and restore */
    /* Wakeups of the batch being applied; results point into it (owned by the apply thread). */
    struct store_fsm_wakeup *wakeups;
    size_t n_wakeups, wakeups_cap;
};

/* An inode as held in memory while applying (the record layout is in fsm_inode.c). */
struct fsm_inode {
    uint64_t ino;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t nlink;
    uint32_t rdev;
    uint64_t size;
    uint64_t nblocks; /* data blocks stored */
    struct store_fsm_time atime;
    struct store_fsm_time mtime;
    struct store_fsm_time ctime;
    uint64_t generation;
    uint64_t parent;      /* directories: the one directory holding them; 0 otherwise */
    uint64_t next_cookie; /* directories: readdir offset of the next entry added */
};

/* One write transaction of apply, with the timestamp of the command being applied. */
struct fsm_txn {
    struct store_fsm *fsm;
    MDB_txn *txn;
    struct store_fsm_time now;
    uint64_t index; /* log index of the command being applied (0 when unknown) */
};

/* Open fsm->dir's environment with fsm->opts (fsm.c). */
int store__fsm_env_open(struct store_fsm *fsm);

/* Begin and end a read transaction (with fsm->lock shared). Returns 0 or an RFS code. */
int store__fsm_read_begin(struct store_fsm *fsm, MDB_txn **txn);
void store__fsm_read_end(struct store_fsm *fsm, MDB_txn *txn);

/* --- byte order ---------------------------------------------------------------------------- */

/* Keys are big-endian, so that LMDB's byte order is numeric order; values are little-endian
 * (lib/le.h). */
static inline void fsm_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t fsm_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* --- errors -------------------------------------------------------------------------------- */

/* Convert rc, an LMDB code or an errno value, into an RFS_E* code (store/error_map.h),
 * recording "context: text of rc" as fsm's message when fsm is not NULL (open, apply and
 * restore; readers pass NULL: their failures are answered to their caller, and must not
 * overwrite the message of a failed apply). */
int store__fsm_mdb_error(struct store_fsm *fsm, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record a message of the state machine's own (no foreign error behind it) as fsm's message. */
void store__fsm_set_errmsg(struct store_fsm *fsm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline bool fsm_is_store_error(int r)
{
    return r > RFS_ERROR_BASE;
}

/* --- inodes and meta (fsm_inode.c) --------------------------------------------------------- */

/* Read inode ino in txn. Returns 0, ENOENT, or an RFS_E* code. fsm may be NULL (reader). */
int store__inode_get(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, struct fsm_inode *out);
int store__inode_put(struct fsm_txn *t, const struct fsm_inode *node);
void store__inode_to_attr(const struct fsm_inode *node, struct store_fsm_attr *out);
/* Encode a record (FSM_INODE_RECORD bytes) for digest and storage. */
void store__inode_encode(const struct fsm_inode *node, uint8_t *rec);

/* Meta keys (ASCII, no NUL). */
#define META_FORMAT   "format"   /* u32 format version */
#define META_APPLIED  "applied"  /* u64 index, u64 term */
#define META_CONFIG   "config"   /* u64 index, then the opaque blob */
#define META_NEXT_INO "next_ino" /* u64: the next inode number handed out */
#define META_LIMITS   "limits" /* u64 max file size, u32 max links, u32 block size, u32 name max */

static inline MDB_val fsm_meta_key(const char *name)
{
    return (MDB_val){.mv_size = strlen(name), .mv_data = (void *)name};
}

/* The u64 at byte at of meta value name: 0, RFS_ENOTFOUND, RFS_ECORRUPT (too short), or a
 * store error. fsm (or NULL) gets the message of an LMDB error. */
int store__meta_get_u64(struct store_fsm *fsm, MDB_txn *txn, const char *name, uint64_t *v,
                        size_t at);
/* Set meta value name to len bytes of data. Only store errors. */
int store__meta_put(struct fsm_txn *t, const char *name, const void *data, size_t len);

/* Meta values: the next inode number to hand out. */
int store__next_ino_take(struct fsm_txn *t, uint64_t *ino);

/* --- file data (fsm_data.c) ---------------------------------------------------------------- */

/* Delete every data block of node at or past byte size, trim the block holding size, and set
 * node->size = size (the caller writes node). Only store errors. */
int store__data_truncate(struct fsm_txn *t, struct fsm_inode *node, uint64_t size);
int store__cmd_write(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res);
int store__cmd_replace(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res);
int store__cmd_setattr(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res);
int store__cmd_fallocate(struct fsm_txn *t, const struct store_cmd *c,
                         struct store_fsm_result *res);

/* --- xattrs (fsm_xattr.c) ------------------------------------------------------------------ */

int store__cmd_setxattr(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res);
int store__cmd_removexattr(struct fsm_txn *t, const struct store_cmd *c,
                           struct store_fsm_result *res);
/* Delete every xattr of inode ino and give back their space (the inode is being destroyed). */
int store__xattr_drop_all(struct fsm_txn *t, uint64_t ino);

/* --- space (fsm_space.c; docs/fsm-format.md, "Space") ------------------------------------ */

#define FSM_CHARGE_INODE 128u                 /* per inode, whatever its type */
#define FSM_CHARGE_ENTRY 64u                  /* per directory entry, plus twice its name */
#define FSM_CHARGE_XATTR 32u                  /* per xattr, plus its name and value */
#define FSM_MAP_FACTOR   4u                   /* the LMDB map is this many times the limit, */
#define FSM_MAP_SLACK    ((uint64_t)64 << 20) /* plus this */

uint64_t store__charge_entry(size_t name_len);
uint64_t store__charge_xattr(size_t name_len, size_t value_len);
/* Charge of node with its data blocks and symlink target (not its xattrs or entries). */
uint64_t store__charge_inode(const struct fsm_inode *node);
uint64_t store__space_map_size(uint64_t limit);
/* The recorded limit and count (either pointer may be NULL). fsm may be a reader's. */
int store__space_get(struct store_fsm *fsm, MDB_txn *txn, uint64_t *limit, uint64_t *used);
/* Check phase: ENOSPC if adding add bytes would take the count past the limit; 0 for add 0,
 * whatever the count. Or a store error. */
int store__space_check(struct fsm_txn *t, uint64_t add);
/* Change phase: count += add - sub. Only store errors (RFS_ECORRUPT if it would go below 0). */
int store__space_adjust(struct fsm_txn *t, uint64_t add, uint64_t sub);
/* Record limit and a count made by walking the tables (creation and upgrade). */
int store__space_init(struct fsm_txn *t, uint64_t limit);

/* --- prefix walks and range deletes (fsm_inode.c) ------------------------------------------ */

/* Call fn(arg, key, value) for every key of dbi that starts with the 8-byte big-endian ino, in
 * order. fsm (or NULL) gets the message of an LMDB error. */
int store__for_prefix(struct store_fsm *fsm, MDB_txn *txn, MDB_dbi dbi, uint64_t ino,
                      void (*fn)(void *arg, const MDB_val *key, const MDB_val *val), void *arg);

/* Delete every key of dbi that starts with the 8-byte big-endian prefix ino and whose next 8
 * bytes (if from_be64 is true) are >= from. */
int store__delete_prefix(struct fsm_txn *t, MDB_dbi dbi, uint64_t ino, bool has_from, uint64_t from,
                         const char *what);

/* --- sessions and locks (fsm_session.c, fsm_locks.c) --------------------------------------- */

#define FSM_SESSION_RECORD 48u

struct fsm_session {
    uint64_t id;
    uint64_t node;
    uint8_t state; /* enum store_fsm_session_state */
    struct store_fsm_time opened, ended, delay_until;
};

/* Session id in txn: 0, ENOENT, or a store error. fsm may be NULL (reader). */
int store__session_get(struct store_fsm *fsm, MDB_txn *txn, uint64_t id, struct fsm_session *out);
void store__session_decode(uint64_t id, const uint8_t *rec, struct fsm_session *out);
int store__cmd_session(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res);

int store__cmd_lock(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res);
/* Session ended or is being removed: its waiters go (wakeups with ENOLCK); with is_removed its
 * held locks go too, and whoever waited for them is granted. Without is_removed the held locks
 * stay (lock-delay) and *has_held (if not NULL) tells whether there are any. */
int store__locks_drop_session(struct fsm_txn *t, uint64_t session, bool is_removed, bool *has_held);
/* Inode ino is being destroyed: drop its lock list, failing its waiters with ENOENT. */
int store__locks_drop_inode(struct fsm_txn *t, uint64_t ino);
/* Newest token held on ino: 0, ENODATA (no lock held), or a store error. */
int store__lock_token(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, uint64_t *token);
/* Record a wakeup of the command being applied. Only store errors (RFS_ENOMEM). */
int store__wakeup_add(struct fsm_txn *t, const struct store_fsm_wakeup *w);

/* --- namespace commands (fsm_namespace.c) -------------------------------------------------- */

int store__cmd_namespace(struct fsm_txn *t, const struct store_cmd *c,
                         struct store_fsm_result *res);

#endif
