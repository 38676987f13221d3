/* Shared internals of fs/: the instance, open-file handles with their write buffers, and the
 * helpers every operation uses (attribute conversion; proposing is fs/node/propose.h). */
#ifndef FS_INTERNAL_H
#define FS_INTERNAL_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "fs/node/propose.h"
#include "fs/node/replica.h"
#include "store/command.h"
#include "store/fsm.h"

/* Threads. FUSE worker threads run the request handlers; the runtime's threads run the
 * completion callbacks, which answer the requests (fuse_reply_* is allowed from any thread).
 * Neither blocks on consensus: a handler either replies from the local state machine or hands
 * its request to the runtime and returns.
 *
 * Kernel caches: in local mode names and attributes are cached for fs->cache_timeout seconds and
 * pages across opens; every applied command invalidates what it changed (the design note in
 * fs/notify.c). open and strict mode cache nothing, so that every lookup and open reaches the
 * daemon and its barrier. */

/* A request waiting for a proposal or a barrier; embedded in the waiting operation's state. */
struct fs_wait {
    fuse_req_t req;
    pthread_mutex_t lock;
    bool is_answered;          /* protected by lock: EINTR sent, or claimed by the completion */
    bool is_interrupted_early; /* interrupted before the callback was registered */
    /* The wait's deadline (fs/wait.c, "one call, one deadline"), set by fs__wait_deadline. */
    uint32_t pid;
    uint64_t deadline_ms; /* CLOCK_MONOTONIC */
};

/* A thread whose last wait for the cluster ran into its deadline (fs/wait.c). */
struct fs_missed {
    uint32_t pid;      /* 0: free */
    uint64_t ended_ms; /* when the wait ended (CLOCK_MONOTONIC) */
    uint64_t deadline_ms;
};

/* Slots of fs->missed: threads that may inherit a deadline at once. */
#define FS_MISSED_SLOTS 64

/* One buffered, not yet committed range of an open file. */
struct fs_extent {
    uint64_t off;
    size_t len;
    uint8_t *data;
};

/* What answers a FUSE request once an open file's buffer is committed (a lock release after
 * the data it protected, fs/ops_lock.c): fn(arg, req, err) with the commit's errno (0: it
 * committed), called exactly once; it answers req and owns arg. fn NULL: the commit answers
 * req itself. */
struct fs_then {
    void (*fn)(void *arg, fuse_req_t req, int err);
    void *arg;
};

/* A FUSE request (flush, fsync, release, or a lock request that unlocks) waiting for the
 * handle's buffer to be committed. */
struct fs_flush_req {
    fuse_req_t req;
    bool is_release;
    struct fs_wait wait; /* flush and fsync are interruptible (release is never interrupted) */
    struct fs_then then;
    struct fs_flush_req *next;
};

/* An open file (fuse_file_info.fh). Created by open/create on a FUSE thread, freed when its
 * release has been answered and no commit of its buffer is in flight. */
struct fs_handle {
    uint64_t ino;          /* set before the handle is listed in fs->handles */
    struct fs_extent *ext; /* sorted by off, neither overlapping nor adjacent */
    size_t n_ext, cap_ext; /* protected by fs->lock (as are all fields below) */
    bool is_flushing;      /* a commit of this handle's buffer is in flight */
    bool is_replace;       /* opened with O_TRUNC, not committed yet: the next commit is
                              one REPLACE of the whole file (the buffer, zeros elsewhere) */
    uint64_t replace_size; /* is_replace: the size before the buffered writes (0, or an
                              ftruncate's since the open) */
    int lost_err;          /* a failed commit's bytes were lost: the next commit fails */
    /* The lock session under which a lock was asked for through this handle, 0 if none: once
     * that session is lost, writes and commits through the handle fail with EIO (the locks
     * they were made under may be someone else's by then). Written once, read lock-free. */
    _Atomic uint64_t lock_session;
    struct fs_flush_req *queued; /* flush/fsync/release requests for the next commit */
    struct fs_handle *next;      /* in fs->handles */
    /* A read-only open's version of the file (fs/ops_read.c, "one version per open"): its data,
     * size bytes, copied at open and never changed; NULL: reads go to the state machine. */
    uint8_t *snap;
    uint64_t snap_size;
    struct store_fsm_attr snap_attr; /* the file's attributes when the version was copied */
    struct fs *snap_fs;              /* whose snap_bytes counts it */
    uint64_t cache_gen; /* the generation of the kernel's pages this open saw (fs/notify.c) */
};

/* Bytes of file versions that read-only opens of one node may hold (fs->snap_bytes); an open
 * past it reads the state machine directly. */
#define FS_SNAPSHOT_BUDGET ((uint64_t)256 << 20)

struct fs_clean_slot;

/* Entry and attribute timeout outside strict mode, seconds: how long a lost invalidation can
 * leave the kernel with a stale name or attributes. */
#define FS_CACHE_TIMEOUT 5.0

struct fs {
    struct store_fsm *fsm;
    struct raft_runtime *rt;
    struct fs_replica *rep;
    struct fs_options opts;
    uint64_t self_bit;    /* this node in a set of holders (fs/orphan.c); 0: ID above 64 */
    double cache_timeout; /* entry and attribute timeout in replies, seconds */
    char *mountpoint;
    char *fuse_options;
    struct fuse_session *se;
    bool is_mounted;
    /* The last read barrier failed (no quorum) and none succeeded since: in "open" mode
     * lookups then answer from the local state at once instead of each waiting op_timeout;
     * open and opendir still wait, and the first that gets a barrier clears it. */
    atomic_bool is_degraded;
    atomic_uint_fast64_t snap_bytes; /* held by the handles' snap, at most FS_SNAPSHOT_BUDGET */
    pthread_mutex_t lock;
    struct fs_handle *handles; /* open files of this node; protected by lock */
    /* Files whose pages in the kernel are known current (fs/notify.c, design note 5). */
    struct fs_clean_slot *clean;              /* protected by lock */
    uint64_t clean_gen;                       /* protected by lock */
    struct fs_locks *locks;                   /* opts.locks */
    struct fs_missed missed[FS_MISSED_SLOTS]; /* protected by lock (fs/wait.c) */
};

/* --- fs.c ------------------------------------------------------------------------------------ */

/* Fill st from a state machine attribute record. */
void fs__attr_to_stat(const struct store_fsm_attr *a, struct stat *st);

/* Entry reply parameters for a, with fs's cache timeouts. */
void fs__entry(const struct fs *fs, const struct store_fsm_attr *a, struct fuse_entry_param *e);

/* --- wait.c: interruptible waits for the cluster ------------------------------------------- */

/* Make req interruptible while it waits (w must stay valid until fs__wait_claim). Returns
 * false if req was interrupted already: the caller answers EINTR and does not start the wait
 * (w needs no claim). */
bool fs__wait_start(struct fs_wait *w, fuse_req_t req);
/* The wait is over (from the completion): returns true if the caller must now answer w->req,
 * false if it was answered EINTR (the caller only releases its resources). Either way no
 * interrupt callback touches w any more. Call exactly once per successful fs__wait_start. */
bool fs__wait_claim(struct fs_wait *w);
/* The timeout, in ms, of the wait w is about to begin for its request: the op timeout, or what
 * is left of the deadline the same thread's call met an instant ago (fs/wait.c); 0: nothing is
 * left, the wait must fail at once as if it had timed out. After fs__wait_start, before the
 * request is answered. */
unsigned fs__wait_deadline(struct fs *fs, struct fs_wait *w);
/* w's wait ended with status (its completion's): if it failed at its deadline (whatever the
 * code: no leader known, leadership lost, timed out), the same thread's next request, if it
 * comes at once, is part of the same call and inherits the deadline. */
void fs__wait_ended(struct fs *fs, const struct fs_wait *w, int status);

/* --- orphan.c: open-but-unlinked files ------------------------------------------------------ */

/* Holders for a removal that may orphan an inode: every server of the configuration; 0 if one
 * cannot be named (then the removal is proposed without KEEP_OPEN). */
uint64_t fs__orphan_holders(struct fs *fs);
/* Propose that this node no longer holds orphan ino open. */
void fs__orphan_forget(struct fs *fs, uint64_t ino);
/* Forget every orphan naming this node (at mount, when nothing is open). */
void fs__orphan_scan(struct fs *fs);
/* Does this node have a handle open on ino? */
bool fs__is_open(struct fs *fs, uint64_t ino);
/* A handle of ino was released: forget ino if it is an orphan no other local handle holds. */
void fs__orphan_released(struct fs *fs, uint64_t ino);

/* --- notify.c: kernel cache invalidation --------------------------------------------------- */

/* Observe fs->rep and invalidate the kernel's attributes of what each applied command changed.
 * Returns 0 or -1 (no memory). Never waits in the kernel (the design note). */
int fs__notify_start(struct fs *fs);
/* Stop observing. */
void fs__notify_stop(struct fs *fs);
/* An open of ino is being answered: may it keep the kernel's pages (FOPEN_KEEP_CACHE)? Only in
 * local mode, and only if no change of ino's data was applied and no older version was read
 * since the last open (note 4). *gen receives the generation the open's version belongs to,
 * for fs__notify_read_version. */
bool fs__notify_keep_pages(struct fs *fs, uint64_t ino, uint64_t *gen);
/* A read answered from a handle opened at generation gen: if ino changed since, the kernel's
 * pages now hold that older version. */
void fs__notify_read_version(struct fs *fs, uint64_t ino, uint64_t gen);
/* The kernel's pages of ino may be stale (a change of its data was applied, or a local commit
 * failed and the pages hold bytes the state machine does not have). */
void fs__notify_pages_stale(struct fs *fs, uint64_t ino);

/* --- ops_read.c: lookup, getattr, readdir(plus), readlink, xattrs, statfs, open(dir) -------- */

void fs__lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs__getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs__readlink(fuse_req_t req, fuse_ino_t ino);
void fs__opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs__readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void fs__readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi);
void fs__getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs__listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs__statfs(fuse_req_t req, fuse_ino_t ino);
void fs__open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs__read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);

/* --- ops_write.c: namespace, attribute and xattr changes ---------------------------------- */

void fs__create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                struct fuse_file_info *fi);
void fs__mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs__mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs__unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs__rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs__symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs__link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs__rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                const char *newname, unsigned int flags);
/* fallocate: mode 0, FALLOC_FL_KEEP_SIZE and FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE (others:
 * EOPNOTSUPP), after fi's buffer is committed. */
void fs__fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                   struct fuse_file_info *fi);
void fs__setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                 struct fuse_file_info *fi);
void fs__setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                  int flags);
void fs__removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* --- handle.c: open files and their write buffers ------------------------------------------ */

/* A new handle of inode ino (0: not known yet, see fs__handle_attach), not yet listed. NULL
 * when out of memory. */
struct fs_handle *fs__handle_new(uint64_t ino);
/* List h in fs->handles as a handle of ino. */
void fs__handle_attach(struct fs *fs, struct fs_handle *h, uint64_t ino);
/* Take h off fs->handles (nothing if it is not listed); the caller then frees it. */
void fs__handle_detach(struct fs *fs, struct fs_handle *h);
/* Free an unlisted handle (creation failed). */
void fs__handle_free(struct fs_handle *h);
/* Size of file ino as this node sees it, given its committed size: the buffered ranges of the
 * node's handles extend it, and a handle opened with O_TRUNC replaces it. */
uint64_t fs__local_size(struct fs *fs, uint64_t ino, uint64_t committed);
/* A truncation of ino to size: clip the buffered ranges of the node's handles to it. Returns
 * true if a handle opened with O_TRUNC takes it over (its REPLACE will carry the size), so the
 * truncation must not be proposed on its own. */
bool fs__dirty_truncate(struct fs *fs, uint64_t ino, uint64_t size);
/* A hole punched in ino over [off, end) was applied: the bytes the node's handles buffered
 * there, written before it, read and commit as zeros (ranges wholly inside are dropped). */
void fs__dirty_punch(struct fs *fs, uint64_t ino, uint64_t off, uint64_t end);
/* Was h opened with O_TRUNC and its REPLACE not proposed yet? Then *end is the size it gives
 * the file so far. h may be NULL (false). */
bool fs__handle_replaced(struct fs *fs, struct fs_handle *h, uint64_t *end);
/* Copy h's buffered bytes that fall in [off, off + len) over buf; returns the end (relative to
 * off) of the last byte copied, 0 if none. */
size_t fs__handle_overlay(struct fs *fs, struct fs_handle *h, uint64_t off, uint8_t *buf,
                          size_t len);

void fs__write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
               struct fuse_file_info *fi);
void fs__fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
/* The commits of a flush and of a release of fi, answered through then (fn NULL: directly). A
 * flush with nothing to commit yet (O_TRUNC, nothing written) runs then at once. */
void fs__handle_flush(fuse_req_t req, struct fuse_file_info *fi, struct fs_then then);
void fs__handle_release(fuse_req_t req, struct fuse_file_info *fi, struct fs_then then);
/* Commit fi's buffer, then answer req through then (fn not NULL). */
void fs__handle_commit_then(fuse_req_t req, struct fuse_file_info *fi, struct fs_then then);

/* --- ops_lock.c: flock and POSIX locks ------------------------------------------------------ */

void fs__getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock);
void fs__setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
               int sleep);
void fs__flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);

/* What a flush (POSIX locks of fi->lock_owner) or a release (the flock of the file description)
 * of ino must do after its commit: propose the LOCK_RELEASE and answer from its outcome; fn
 * NULL when the owner asked this node for no such lock (or out of memory). For
 * fs__handle_flush and fs__handle_release. */
struct fs_then fs__lock_on_close(struct fs *fs, uint64_t ino, const struct fuse_file_info *fi,
                                 bool is_release);

/* Has this node given up its lock session (or found it ended) and not opened a new one yet?
 * Then it no longer vouches for the lock table: raftfs.lock_token answers ENOLCK. */
bool fs__locks_lost(struct fs_locks *locks);
/* Did h ask for a lock in a session this node no longer has (lost, or replaced)? Takes the
 * session's lock (after fs->lock, if the caller holds it). */
bool fs__locks_lost_by(struct fs *fs, struct fs_handle *h);

static inline struct fs *fs__of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static inline struct fs_handle *fs__handle_of(const struct fuse_file_info *fi)
{
    return (struct fs_handle *)(uintptr_t)fi->fh;
}

#endif
