/* Kernel cache coherence: the kernel keeps names, attributes and pages for a while, and every
 * command applied on this node (from any proposer) invalidates what it changed.
 *
 * Design note (docs/fs.md, "Kernel caches"):
 * 1. Attributes are invalidated on the apply thread, right after the state machine transaction
 *    committed and before the batch's proposers are answered or the applied index is published.
 *    Attribute-only invalidation (offset -1) takes no lock a FUSE request can hold, so it cannot
 *    wait for a request that waits for this very apply. A getattr that read the old state and is
 *    answered after the invalidation is discarded by the kernel (attr_version).
 * 2. Names (notify_delete, notify_inval_entry) and pages (notify_inval_inode with an offset) are
 *    invalidated by the notify thread, in the order applied. The kernel takes the directory's
 *    lock to drop a name and the page lock to drop a page; a request of this node may hold
 *    either while it waits for the apply thread (a create in that directory waiting for its
 *    commit; a lookup or a strict-mode read waiting for a barrier). Doing it on the apply thread
 *    could deadlock; on the notify thread it only waits until that request is answered, which
 *    never depends on the notify thread.
 * 3. Continuations: an open or opendir that waited for a barrier is answered from the notify
 *    thread after every invalidation queued before it, so after open() returns the kernel holds
 *    nothing older than what the barrier covered (close-to-open, and FOPEN_KEEP_CACHE is safe).
 *    No continuation may run for a request that holds a directory or page lock (lookup, read,
 *    readdir), or it would wait behind an invalidation waiting for that lock.
 * 4. Errors of notifications are ignored: ENOENT means the kernel does not cache the object.
 * 5. Stopping: the invalidations still queued are dropped, the continuations run. One in
 *    progress may wait for a directory lock held by a request the stopped session loop will
 *    never read; if the thread is not done within the op timeout, the connection is aborted
 *    (fusectl), which fails that request and frees the lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/internal.h"
#include "fs/node/replica.h"

enum item_kind {
    ITEM_ENTRY, /* a name in directory ino changed; child: the inode it named, or 0 */
    ITEM_DATA,  /* pages of ino from off, len bytes (0: to the end) */
    ITEM_RUN,   /* call fn(arg) */
};

struct fs_notify_item {
    enum item_kind kind;
    uint64_t ino;
    uint64_t child;
    uint64_t off, len;
    void (*fn)(void *arg);
    void *arg;
    struct fs_notify_item *next;
    size_t name_len;
    char name[];
};

static void push(struct fs *fs, struct fs_notify_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&fs->notify_lock);
    if (fs->notify_tail != NULL)
        fs->notify_tail->next = it;
    else
        fs->notify_head = it;
    fs->notify_tail = it;
    pthread_cond_signal(&fs->notify_cond);
    pthread_mutex_unlock(&fs->notify_lock);
}

static void queue_entry(struct fs *fs, uint64_t parent, const char *name, size_t len,
                        uint64_t child)
{
    struct fs_notify_item *it = calloc(1, sizeof *it + len + 1);
    if (it == NULL)
        return; /* the kernel's copy expires with the entry timeout */
    it->kind = ITEM_ENTRY;
    it->ino = parent;
    it->child = child;
    memcpy(it->name, name, len);
    it->name_len = len;
    push(fs, it);
}

static void queue_data(struct fs *fs, uint64_t ino, uint64_t off, uint64_t len)
{
    struct fs_notify_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        return; /* auto_inval_data drops the pages once the attributes show the change */
    it->kind = ITEM_DATA;
    it->ino = ino;
    it->off = off;
    it->len = len;
    push(fs, it);
}

void fs__notify_after(struct fs *fs, void (*fn)(void *arg), void *arg)
{
    struct fs_notify_item *it = calloc(1, sizeof *it);
    if (it == NULL) {
        fn(arg); /* unordered, but answered */
        return;
    }
    it->kind = ITEM_RUN;
    it->fn = fn;
    it->arg = arg;
    push(fs, it);
}

bool fs__notify_has_data(struct fs *fs, uint64_t ino)
{
    bool found = false;
    pthread_mutex_lock(&fs->notify_lock);
    for (struct fs_notify_item *it = fs->notify_head; it != NULL && !found; it = it->next)
        found = it->kind == ITEM_DATA && it->ino == ino;
    pthread_mutex_unlock(&fs->notify_lock);
    return found;
}

void fs__notify_data(struct fs *fs, uint64_t ino)
{
    queue_data(fs, ino, 0, 0);
}

/* Design note 1: on the apply thread. */
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
            queue_entry(fs, c->ino, c->name, c->name_len, r->dropped_ino);
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
                queue_entry(fs, c->ino, c->name, c->name_len, 0);
            } else {
                queue_entry(fs, c->ino, c->name, c->name_len, r->ino);
            }
            queue_entry(fs, c->ino2, c->name2, c->name2_len, 0);
            break;
        }
        case STORE_CMD_SETATTR:
            inval_attr(fs, c->ino);
            if (c->valid & STORE_CMD_SET_SIZE)
                queue_data(fs, c->ino, 0, 0);
            break;
        case STORE_CMD_WRITE:
            inval_attr(fs, c->ino);
            if (r->written > 0)
                queue_data(fs, c->ino, c->offset, r->written);
            break;
        case STORE_CMD_REPLACE:
            inval_attr(fs, c->ino);
            queue_data(fs, c->ino, 0, 0);
            break;
        case STORE_CMD_SETXATTR:
        case STORE_CMD_REMOVEXATTR: inval_attr(fs, c->ino); break;
        default: break; /* FORGET: the inode had no name and no open handle left */
        }
    }
}

static void run_item(struct fs *fs, struct fs_notify_item *it)
{
    switch (it->kind) {
    case ITEM_ENTRY:
        /* notify_delete also tells inotify watchers; it refuses when the cached name now
         * names another inode, which still has to go. */
        if (it->child == 0 ||
            fuse_lowlevel_notify_delete(fs->se, it->ino, it->child, it->name, it->name_len) != 0)
            fuse_lowlevel_notify_inval_entry(fs->se, it->ino, it->name, it->name_len);
        break;
    case ITEM_DATA:
        fuse_lowlevel_notify_inval_inode(fs->se, it->ino, (off_t)it->off, (off_t)it->len);
        break;
    case ITEM_RUN: it->fn(it->arg); break;
    }
}

static void *notify_main(void *arg)
{
    struct fs *fs = arg;
    pthread_mutex_lock(&fs->notify_lock);
    for (;;) {
        while (fs->notify_head == NULL && !fs->is_notify_stopping)
            pthread_cond_wait(&fs->notify_cond, &fs->notify_lock);
        struct fs_notify_item *it = fs->notify_head;
        if (it == NULL)
            break; /* stopping, and everything queued is done */
        fs->notify_head = it->next;
        if (fs->notify_head == NULL)
            fs->notify_tail = NULL;
        bool is_stopping = fs->is_notify_stopping;
        pthread_mutex_unlock(&fs->notify_lock);
        if (it->kind == ITEM_RUN || !is_stopping)
            run_item(fs, it);
        free(it);
        pthread_mutex_lock(&fs->notify_lock);
    }
    pthread_mutex_unlock(&fs->notify_lock);
    return NULL;
}

int fs__notify_start(struct fs *fs)
{
    pthread_mutex_init(&fs->notify_lock, NULL);
    pthread_cond_init(&fs->notify_cond, NULL);
    if (pthread_create(&fs->notify_thread, NULL, notify_main, fs) != 0) {
        pthread_cond_destroy(&fs->notify_cond);
        pthread_mutex_destroy(&fs->notify_lock);
        return -1;
    }
    fs_replica_observe(fs->rep, applied, fs);
    return 0;
}

/* Abort the FUSE connection of fs's mount (design note 5): its number is the minor device
 * number of the mount, found in /proc/self/mountinfo. */
static void abort_connection(struct fs *fs)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (f == NULL)
        return;
    char line[4096], path[4096];
    unsigned major, minor;
    bool found = false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = sscanf(line, "%*u %*u %u:%u %*s %4095s", &major, &minor, path) == 3 &&
                strcmp(path, fs->mountpoint) == 0;
    fclose(f);
    if (!found)
        return;
    snprintf(path, sizeof path, "/sys/fs/fuse/connections/%u/abort", minor);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    if (write(fd, "1", 1) < 0)
        fprintf(stderr, "raftfsd: cannot abort the FUSE connection (%s)\n", path);
    close(fd);
}

void fs__notify_stop(struct fs *fs)
{
    fs_replica_observe(fs->rep, NULL, NULL);
    pthread_mutex_lock(&fs->notify_lock);
    fs->is_notify_stopping = true;
    pthread_cond_signal(&fs->notify_cond);
    pthread_mutex_unlock(&fs->notify_lock);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += fs->opts.op_timeout_ms / 1000 + 1;
    if (pthread_timedjoin_np(fs->notify_thread, NULL, &deadline) != 0) {
        abort_connection(fs);
        pthread_join(fs->notify_thread, NULL);
    }
    pthread_cond_destroy(&fs->notify_cond);
    pthread_mutex_destroy(&fs->notify_lock);
}
