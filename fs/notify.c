/* Kernel cache coherence: the kernel keeps names, attributes and pages for a while, and every
 * command applied on this node (from any proposer) must not leave it answering from what the
 * command changed.
 *
 * Design note (docs/fs.md, "Kernel caches"):
 * 1. The daemon never asks the kernel to drop a name or a page. Both notifications wait, in the
 *    kernel, for a lock (the directory's, a page's) that a request of this node may hold while
 *    it waits for this daemon or for the cluster: a lookup, create or readdir in the directory,
 *    a read or write of the page. If the daemon dies (kill -9) while a notification waits
 *    there, the request keeps its lock until the FUSE connection is aborted, and the kernel
 *    aborts it only when the daemon's last reference to /dev/fuse goes, which the waiting
 *    notification holds: the process could never exit and the mount would hang instead of
 *    failing with ENOTCONN. The same wait made a stop (SIGTERM) hang.
 * 2. Attributes are invalidated on the apply thread, right after the state machine transaction
 *    committed and before the batch's proposers are answered or the applied index is published.
 *    Attribute-only invalidation (offset -1) takes no lock a request can hold. A getattr that
 *    read the old state and is answered after the invalidation is discarded by the kernel
 *    (attr_version).
 * 3. Names: open and strict mode give names no cache time, so every path walk asks the daemon;
 *    local mode gives them FS_CACHE_TIMEOUT, which bounds how long a name changed elsewhere is
 *    still answered by the kernel there (its documented staleness). Negative lookups are never
 *    cached, so a name created elsewhere is seen at once everywhere.
 * 4. Pages: an open drops the file's pages in the kernel (the opener's own thread does it, in
 *    the kernel, holding nothing of ours) unless the reply says FOPEN_KEEP_CACHE, which it says
 *    only in local mode and only when the pages cannot be older than the state the open sees:
 *    the file is in the clean table (below), whose entry a change of the file's data removes
 *    on the apply thread before the change is visible, and which a read of an older version
 *    (an open that read its version before a change) removes too, because it puts that
 *    version's bytes in the kernel's pages.
 * 5. The clean table is a cache of inode -> generation with one slot per hash of the inode: an
 *    inode that lost its slot to another is simply not clean, so losing an entry is always
 *    safe. Generations come from one counter, so a handle's generation names one entry only.
 *    Protected by fs->lock; the apply thread takes it inside rep->lock (the observer). */
#include <stdlib.h>

#include "fs/internal.h"
#include "fs/node/replica.h"

/* Slots of the clean table (note 5): a power of two. */
#define CLEAN_SLOTS 4096u

struct fs_clean_slot {
    uint64_t ino; /* 0: empty */
    uint64_t gen;
};

static struct fs_clean_slot *slot_of(struct fs *fs, uint64_t ino)
{
    uint64_t h = ino * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: spreads sequential inodes */
    return &fs->clean[h >> 52 & (CLEAN_SLOTS - 1)];
}

void fs__notify_pages_stale(struct fs *fs, uint64_t ino)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_clean_slot *s = slot_of(fs, ino);
    if (s->ino == ino)
        s->ino = 0;
    pthread_mutex_unlock(&fs->lock);
}

bool fs__notify_keep_pages(struct fs *fs, uint64_t ino, uint64_t *gen)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_clean_slot *s = slot_of(fs, ino);
    bool is_clean = s->ino == ino;
    if (!is_clean) /* the open drops the pages: from now on they follow the current state */
        *s = (struct fs_clean_slot){.ino = ino, .gen = ++fs->clean_gen};
    *gen = s->gen;
    pthread_mutex_unlock(&fs->lock);
    return is_clean && fs->opts.consistency == FS_CONSISTENCY_LOCAL;
}

void fs__notify_read_version(struct fs *fs, uint64_t ino, uint64_t gen)
{
    pthread_mutex_lock(&fs->lock);
    struct fs_clean_slot *s = slot_of(fs, ino);
    if (s->ino == ino && s->gen != gen)
        s->ino = 0;
    pthread_mutex_unlock(&fs->lock);
}

/* Note 2: on the apply thread. */
static void inval_attr(struct fs *fs, uint64_t ino)
{
    if (ino != 0)
        fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

/* The observer of fs_replica: what each successful command changed. */
static void applied(void *arg, const struct store_cmd *cmds, const struct store_fsm_result *res,
                    size_t n)
{
    struct fs *fs = arg;
    for (size_t i = 0; i < n; i++) {
        const struct store_cmd *c = &cmds[i];
        const struct store_fsm_result *r = &res[i];
        if (r->err != 0)
            continue; /* nothing changed */
        /* An orphan this node does not hold open: say so (fs/orphan.c, note 2). */
        if (r->dropped_is_orphan && (c->holders & fs->self_bit) && !fs__is_open(fs, r->dropped_ino))
            fs__orphan_forget(fs, r->dropped_ino);
        switch (c->type) {
        case STORE_CMD_CREATE:
        case STORE_CMD_MKNOD:
        case STORE_CMD_MKDIR:
        case STORE_CMD_SYMLINK:
            /* A new name: the kernel caches no negative entries (lookups answer ENOENT with
             * no entry), so only the parent's attributes are stale. */
            if (!r->existed)
                inval_attr(fs, c->ino);
            break;
        case STORE_CMD_UNLINK:
        case STORE_CMD_RMDIR:
            inval_attr(fs, c->ino);
            inval_attr(fs, r->dropped_ino);
            break;
        case STORE_CMD_LINK:
            inval_attr(fs, c->ino);
            inval_attr(fs, c->ino2);
            break;
        case STORE_CMD_RENAME: {
            inval_attr(fs, c->ino);
            inval_attr(fs, c->ino2);
            inval_attr(fs, r->ino);
            inval_attr(fs, r->dropped_ino);
            if (c->flags & STORE_CMD_EXCHANGE) {
                struct store_fsm_attr a; /* the other inode now has the old name */
                if (store_fsm_lookup(fs->fsm, c->ino, c->name, c->name_len, &a) == 0)
                    inval_attr(fs, a.ino);
            }
            break;
        }
        case STORE_CMD_SETATTR:
            inval_attr(fs, c->ino);
            if (c->valid & STORE_CMD_SET_SIZE)
                fs__notify_pages_stale(fs, c->ino);
            break;
        case STORE_CMD_WRITE:
            inval_attr(fs, c->ino);
            if (r->written > 0)
                fs__notify_pages_stale(fs, c->ino);
            break;
        case STORE_CMD_REPLACE:
            inval_attr(fs, c->ino);
            fs__notify_pages_stale(fs, c->ino);
            break;
        case STORE_CMD_SETXATTR:
        case STORE_CMD_REMOVEXATTR: inval_attr(fs, c->ino); break;
        default: break; /* FORGET: the inode had no name and no open handle left */
        }
    }
}

int fs__notify_start(struct fs *fs)
{
    fs->clean = calloc(CLEAN_SLOTS, sizeof *fs->clean);
    if (fs->clean == NULL)
        return -1;
    fs_replica_observe(fs->rep, applied, fs);
    return 0;
}

void fs__notify_stop(struct fs *fs)
{
    fs_replica_observe(fs->rep, NULL, NULL);
    free(fs->clean);
    fs->clean = NULL;
}
