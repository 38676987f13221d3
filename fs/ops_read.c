/* Read-type operations, served from the local state machine. Depending on the consistency mode
 * they first wait for a ReadIndex barrier (raft_runtime_read_index) and then run from its
 * completion callback, so a FUSE thread never waits for the cluster. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs/internal.h"

enum read_op {
    OP_LOOKUP,
    OP_GETATTR,
    OP_READLINK,
    OP_OPENDIR,
    OP_READDIR,
    OP_READDIRPLUS,
    OP_GETXATTR,
    OP_LISTXATTR,
    OP_STATFS,
    OP_OPEN,
    OP_READ,
};

/* One read request and its arguments, kept while it waits for the barrier. */
struct read_req {
    struct fs *fs;
    fuse_req_t req;
    enum read_op op;
    fuse_ino_t ino;
    size_t size;
    off_t off;
    struct fuse_file_info fi;
    struct fs_wait wait; /* interruptible while waiting for the barrier */
    /* An open that waits for the barrier its lookup skipped (degraded "open" mode): the name
     * the kernel resolved may be older than the barrier. */
    bool is_late_barrier;
    char name[]; /* lookup name or xattr name */
};

static void run(struct read_req *r);

/* Is this operation gated by a barrier in the current mode? Lookups and opendir in "open"
 * mode, everything in "strict" mode. Lookups wait because the kernel decides on their answers
 * alone: a name this node still has but the cluster removed or renamed would make a mkdir fail
 * with EEXIST, or an open() open the file that used to have the name. An open() of a file has
 * therefore waited already: the kernel caches no name in this mode, so the walk of its path
 * ends with a lookup of the file's name, which waited. A second barrier in open would only
 * widen the gap between that lookup and the open, in which a rename elsewhere can delete the
 * file looked up (the open then fails with ESTALE, and the kernel retries once). opendir waits:
 * "." and the mount's root are opened without a lookup. Without a quorum (fs->is_degraded)
 * lookups go through at once, so that reading a path costs one op_timeout (its open) rather
 * than one per component, and open waits instead. */
static bool needs_barrier(struct fs *fs, enum read_op op)
{
    switch (fs->opts.consistency) {
    case FS_CONSISTENCY_STRICT: return true;
    case FS_CONSISTENCY_OPEN:
        if (op == OP_OPENDIR)
            return true;
        if (op == OP_LOOKUP || op == OP_OPEN)
            return (op == OP_LOOKUP) != atomic_load(&fs->is_degraded);
        return false;
    default: return false;
    }
}

/* Give up r: answer err (0: it was answered already) and free it. */
static void drop(struct read_req *r, int err)
{
    if (r->op == OP_OPEN)
        fs__handle_free(fs__handle_of(&r->fi));
    if (err != 0)
        fuse_reply_err(r->req, err);
    free(r);
}

static void barrier_done(void *arg, int status, struct raft_apply_result *result)
{
    struct read_req *r = arg;
    fs__proposal_result(status, result, NULL);
    if (!fs__wait_claim(&r->wait)) {
        drop(r, 0); /* interrupted: answered EINTR */
        return;
    }
    fs__wait_ended(r->fs, &r->wait, status);
    /* A node that stopped taking part (its log or state machine failed) will never catch up:
     * its state is frozen, so nothing that asked for a barrier is answered from it. */
    if (status == RAFT_ESTORAGE) {
        drop(r, EIO);
        return;
    }
    atomic_store(&r->fs->is_degraded, status != 0);
    /* Without a quorum, "open" mode serves the local state (DESIGN.md 5); "strict" fails. */
    if (status != 0 && r->fs->opts.consistency == FS_CONSISTENCY_STRICT) {
        drop(r, EIO);
        return;
    }
    run(r);
}

/* Run r once a barrier completes (interruptible meanwhile). Takes ownership of r. */
static void wait_barrier(struct read_req *r)
{
    if (!fs__wait_start(&r->wait, r->req)) {
        drop(r, EINTR);
        return;
    }
    unsigned timeout = fs__wait_deadline(r->fs, &r->wait);
    int rc = timeout == 0 ? RAFT_ETIMEDOUT
                          : raft_runtime_read_index(r->fs->rt, timeout, barrier_done, r);
    if (rc != 0)
        barrier_done(r, rc, NULL);
}

/* Start r: run it now, or once the barrier completes. Takes ownership of r. */
static void submit(struct read_req *r)
{
    if (needs_barrier(r->fs, r->op)) {
        r->is_late_barrier = r->op == OP_OPEN && r->fs->opts.consistency == FS_CONSISTENCY_OPEN;
        wait_barrier(r);
    } else
        run(r);
}

static struct read_req *new_req(fuse_req_t req, enum read_op op, fuse_ino_t ino, const char *name)
{
    size_t name_len = name != NULL ? strlen(name) : 0;
    struct read_req *r = calloc(1, sizeof *r + name_len + 1);
    if (r == NULL) {
        fuse_reply_err(req, ENOMEM);
        return NULL;
    }
    r->fs = fs__of(req);
    r->req = req;
    r->op = op;
    r->ino = ino;
    if (name != NULL)
        memcpy(r->name, name, name_len + 1);
    return r;
}

/* --- the operations, run locally --------------------------------------------------------- */

/* Attributes as this node sees them: the size includes bytes still buffered by its handles. */
static int local_attr(struct fs *fs, uint64_t ino, struct store_fsm_attr *a)
{
    int rc = store_fsm_getattr(fs->fsm, ino, a);
    if (rc == 0 && S_ISREG(a->mode))
        a->size = fs__local_size(fs, ino, a->size);
    return rc;
}

static void do_lookup(struct read_req *r)
{
    struct store_fsm_attr a;
    int rc = store_fsm_lookup(r->fs->fsm, r->ino, r->name, strlen(r->name), &a);
    /* The size as local_attr gives it, without reading the inode again: a second read could
     * find it removed by a change applied in between, and answer ENOENT for a name that never
     * stopped existing. */
    if (rc == 0 && S_ISREG(a.mode))
        a.size = fs__local_size(r->fs, a.ino, a.size);
    if (rc != 0) {
        fuse_reply_err(r->req, fs__read_errno(rc));
        return;
    }
    struct fuse_entry_param e;
    fs__entry(r->fs, &a, &e);
    fuse_reply_entry(r->req, &e);
}

static void do_getattr(struct read_req *r)
{
    struct store_fsm_attr a;
    int rc = local_attr(r->fs, r->ino, &a);
    /* Asked through an open file (the kernel checks the size before a read past the size it
     * knows; fstat does not come here): a read-only open reports the size of the version it
     * reads, so the kernel neither cuts that version short nor reads past it into a newer one.
     * The kernel keeps one set of attributes per inode for every open file: a size that is
     * not the current one must not be cached, or the next open (of the current version) would
     * be cut at this one's size until the timeout. */
    const struct fs_handle *h = fs__handle_of(&r->fi);
    double timeout = r->fs->cache_timeout;
    if (rc == ENOENT && h != NULL && h->snap != NULL) {
        /* The file is gone (replaced on another node and freed) but this open reads its own
         * version, whose attributes it kept. */
        a = h->snap_attr;
        rc = 0;
        timeout = 0;
    }
    if (rc == 0 && h != NULL && h->snap != NULL && a.size != h->snap_size) {
        a.size = h->snap_size;
        timeout = 0;
    }
    if (rc != 0) {
        /* The inode is gone: removed on another node while the kernel still had a name for
         * it. ESTALE makes stat(2) look the path up again instead of failing. */
        fuse_reply_err(r->req, rc == ENOENT ? ESTALE : fs__read_errno(rc));
        return;
    }
    struct stat st;
    fs__attr_to_stat(&a, &st);
    fuse_reply_attr(r->req, &st, timeout);
}

static void do_readlink(struct read_req *r)
{
    char buf[STORE_FSM_SYMLINK_MAX + 1];
    size_t len;
    int rc = store_fsm_readlink(r->fs->fsm, r->ino, buf, sizeof buf - 1, &len);
    if (rc != 0) {
        fuse_reply_err(r->req, fs__read_errno(rc));
        return;
    }
    buf[len] = '\0';
    fuse_reply_readlink(r->req, buf);
}

/* Filling one readdir reply buffer. */
struct dirbuf {
    struct fs *fs;
    fuse_req_t req;
    bool is_plus;
    char *buf;
    size_t size, used;
    int err;
};

static int add_entry(void *arg, const char *name, size_t name_len, uint64_t ino, uint32_t type,
                     uint64_t next)
{
    struct dirbuf *d = arg;
    char cname[STORE_FSM_NAME_MAX + 1];
    if (name_len > STORE_FSM_NAME_MAX)
        name_len = STORE_FSM_NAME_MAX;
    memcpy(cname, name, name_len);
    cname[name_len] = '\0';
    size_t want;
    if (!d->is_plus) {
        struct stat st = {.st_ino = ino, .st_mode = type};
        want =
            fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used, cname, &st, (off_t)next);
    } else {
        struct fuse_entry_param e;
        bool is_dot = strcmp(cname, ".") == 0 || strcmp(cname, "..") == 0;
        struct store_fsm_attr a;
        if (is_dot || store_fsm_getattr(d->fs->fsm, ino, &a) != 0) {
            /* ino 0: the kernel takes the name only and does not count a lookup. */
            memset(&e, 0, sizeof e);
            e.attr.st_ino = ino;
            e.attr.st_mode = type;
        } else {
            fs__entry(d->fs, &a, &e);
        }
        want = fuse_add_direntry_plus(d->req, d->buf + d->used, d->size - d->used, cname, &e,
                                      (off_t)next);
    }
    if (want > d->size - d->used)
        return 1; /* full: this entry is not consumed */
    d->used += want;
    return 0;
}

static void do_readdir(struct read_req *r, bool is_plus)
{
    struct dirbuf d = {.fs = r->fs, .req = r->req, .is_plus = is_plus, .size = r->size};
    d.buf = malloc(r->size ? r->size : 1);
    if (d.buf == NULL) {
        fuse_reply_err(r->req, ENOMEM);
        return;
    }
    int rc = store_fsm_readdir(r->fs->fsm, r->ino, (uint64_t)r->off, add_entry, &d);
    if (rc != 0)
        fuse_reply_err(r->req, fs__read_errno(rc));
    else
        fuse_reply_buf(r->req, d.buf, d.used);
    free(d.buf);
}

static void do_getxattr(struct read_req *r)
{
    size_t len;
    if (r->size == 0) {
        int rc = store_fsm_getxattr(r->fs->fsm, r->ino, r->name, NULL, 0, &len);
        if (rc != 0)
            fuse_reply_err(r->req, fs__read_errno(rc));
        else
            fuse_reply_xattr(r->req, len);
        return;
    }
    void *buf = malloc(r->size);
    if (buf == NULL) {
        fuse_reply_err(r->req, ENOMEM);
        return;
    }
    int rc = store_fsm_getxattr(r->fs->fsm, r->ino, r->name, buf, r->size, &len);
    if (rc != 0)
        fuse_reply_err(r->req, fs__read_errno(rc));
    else
        fuse_reply_buf(r->req, buf, len);
    free(buf);
}

static void do_listxattr(struct read_req *r)
{
    size_t len;
    if (r->size == 0) {
        int rc = store_fsm_listxattr(r->fs->fsm, r->ino, NULL, 0, &len);
        if (rc != 0)
            fuse_reply_err(r->req, fs__read_errno(rc));
        else
            fuse_reply_xattr(r->req, len);
        return;
    }
    char *buf = malloc(r->size);
    if (buf == NULL) {
        fuse_reply_err(r->req, ENOMEM);
        return;
    }
    int rc = store_fsm_listxattr(r->fs->fsm, r->ino, buf, r->size, &len);
    if (rc != 0)
        fuse_reply_err(r->req, fs__read_errno(rc));
    else
        fuse_reply_buf(r->req, buf, len);
    free(buf);
}

static void do_statfs(struct read_req *r)
{
    struct store_fsm_statfs s;
    int rc = store_fsm_statfs(r->fs->fsm, &s);
    if (rc != 0) {
        fuse_reply_err(r->req, fs__read_errno(rc));
        return;
    }
    struct statvfs v = {
        .f_bsize = s.bsize,
        .f_frsize = s.bsize,
        .f_blocks = s.blocks,
        .f_bfree = s.bfree,
        .f_bavail = s.bfree,
        .f_files = s.files + s.ffree,
        .f_ffree = s.ffree,
        .f_favail = s.ffree,
        .f_namemax = s.namemax,
    };
    fuse_reply_statfs(r->req, &v);
}

/* A read-only open reads one version of the file: h gets a copy of the current one, unless
 * that would pass the node's budget (FS_SNAPSHOT_BUDGET) or ino is not a regular file. *a is
 * the file's current attributes either way. */
static int open_version(struct fs *fs, struct fs_handle *h, uint64_t ino, struct store_fsm_attr *a)
{
    uint64_t used = atomic_load(&fs->snap_bytes);
    uint8_t *data;
    int rc = store_fsm_read_file(
        fs->fsm, ino, used < FS_SNAPSHOT_BUDGET ? FS_SNAPSHOT_BUDGET - used : 0, a, &data);
    if (rc == EFBIG || rc == EISDIR || rc == EINVAL)
        return store_fsm_getattr(fs->fsm, ino, a);
    if (rc != 0)
        return rc;
    if (atomic_fetch_add(&fs->snap_bytes, a->size) + a->size > FS_SNAPSHOT_BUDGET) {
        atomic_fetch_sub(&fs->snap_bytes, a->size); /* another open took the room meanwhile */
        free(data);
        return 0;
    }
    h->snap = data;
    h->snap_size = a->size;
    h->snap_attr = *a;
    h->snap_fs = fs;
    return 0;
}

static void do_open(struct read_req *r)
{
    struct store_fsm_attr a;
    struct fs_handle *h = fs__handle_of(&r->fi);
    bool is_reader = (r->fi.flags & O_ACCMODE) == O_RDONLY && !(r->fi.flags & O_TRUNC);
    int rc =
        is_reader ? open_version(r->fs, h, r->ino, &a) : store_fsm_getattr(r->fs->fsm, r->ino, &a);
    /* The name was resolved before the barrier (its lookup skipped it) and leads to a file that
     * no name holds any more: it was replaced or removed meanwhile, perhaps while this node was
     * cut off. Opening it would read a version the cluster has moved past. */
    if (rc == 0 && r->is_late_barrier && a.nlink == 0)
        rc = ENOENT;
    if (rc != 0) {
        /* The name the kernel resolved was removed or replaced meanwhile (by another node):
         * ESTALE makes the kernel look the path up again once. */
        fs__handle_free(h);
        fuse_reply_err(r->req, rc == ENOENT ? ESTALE : fs__read_errno(rc));
        return;
    }
    /* Only local mode keeps the kernel's pages across opens, and only pages known current
     * (fs/notify.c, design note 4); otherwise the kernel drops them as the open completes. */
    r->fi.keep_cache = fs__notify_keep_pages(r->fs, r->ino, &h->cache_gen);
    r->fi.direct_io = 0;
    /* O_TRUNC arrives here (FUSE_CAP_ATOMIC_O_TRUNC): it is committed with the new data. */
    h->is_replace = S_ISREG(a.mode) && (r->fi.flags & O_TRUNC);
    fs__handle_attach(r->fs, h, r->ino);
    if (fuse_reply_open(r->req, &r->fi) != 0) {
        /* The opener was interrupted: the kernel will not release this handle. */
        pthread_mutex_lock(&r->fs->lock);
        struct fs_handle **p = &r->fs->handles;
        while (*p != h)
            p = &(*p)->next;
        *p = h->next;
        pthread_mutex_unlock(&r->fs->lock);
        fs__handle_free(h);
    }
}

static void do_read(struct read_req *r)
{
    struct fs_handle *h = fs__handle_of(&r->fi);
    uint8_t *buf = calloc(1, r->size ? r->size : 1);
    if (buf == NULL) {
        fuse_reply_err(r->req, ENOMEM);
        return;
    }
    size_t n = 0;
    uint64_t replaced_end;
    int rc;
    if (h != NULL && h->snap != NULL) {
        /* Copied, not replied from the handle: once the kernel has this reply it may release
         * the handle, and the release may free the version while fuse_reply_buf returns. */
        rc = 0;
        uint64_t off = (uint64_t)r->off;
        if (off < h->snap_size)
            n = h->snap_size - off < r->size ? (size_t)(h->snap_size - off) : r->size;
        memcpy(buf, h->snap + (n > 0 ? off : 0), n);
        fs__notify_read_version(r->fs, r->ino, h->cache_gen);
    } else if (fs__handle_replaced(r->fs, h, &replaced_end)) {
        /* Opened with O_TRUNC and not committed yet: the old contents are gone for it. */
        rc = 0;
        if (replaced_end > (uint64_t)r->off)
            n = replaced_end - (uint64_t)r->off < r->size
                    ? (size_t)(replaced_end - (uint64_t)r->off)
                    : r->size;
    } else {
        rc = store_fsm_read(r->fs->fsm, r->ino, (uint64_t)r->off, buf, r->size, &n);
    }
    if (rc == 0) {
        /* This handle's own unflushed writes show through (read-your-writes per handle). */
        size_t end = fs__handle_overlay(r->fs, h, (uint64_t)r->off, buf, r->size);
        if (end > n)
            n = end;
        fuse_reply_buf(r->req, (const char *)buf, n);
    } else {
        fuse_reply_err(r->req, fs__read_errno(rc));
    }
    free(buf);
}

static void run(struct read_req *r)
{
    switch (r->op) {
    case OP_LOOKUP: do_lookup(r); break;
    case OP_GETATTR: do_getattr(r); break;
    case OP_READLINK: do_readlink(r); break;
    case OP_OPENDIR: fuse_reply_open(r->req, &r->fi); break;
    case OP_READDIR: do_readdir(r, false); break;
    case OP_READDIRPLUS: do_readdir(r, true); break;
    case OP_GETXATTR: do_getxattr(r); break;
    case OP_LISTXATTR: do_listxattr(r); break;
    case OP_STATFS: do_statfs(r); break;
    case OP_OPEN: do_open(r); break;
    case OP_READ: do_read(r); break;
    }
    free(r);
}

/* --- FUSE entry points -------------------------------------------------------------------- */

void fs__lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct read_req *r = new_req(req, OP_LOOKUP, parent, name);
    if (r != NULL)
        submit(r);
}

void fs__getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct read_req *r = new_req(req, OP_GETATTR, ino, NULL);
    if (r == NULL)
        return;
    if (fi != NULL)
        r->fi = *fi;
    submit(r);
}

void fs__readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct read_req *r = new_req(req, OP_READLINK, ino, NULL);
    if (r != NULL)
        submit(r);
}

void fs__opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct read_req *r = new_req(req, OP_OPENDIR, ino, NULL);
    if (r == NULL)
        return;
    r->fi = *fi;
    r->fi.fh = 0;
    submit(r);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, enum read_op op)
{
    struct read_req *r = new_req(req, op, ino, NULL);
    if (r == NULL)
        return;
    r->size = size;
    r->off = off;
    submit(r);
}

void fs__readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, OP_READDIR);
}

void fs__readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)fi;
    readdir_common(req, ino, size, off, OP_READDIRPLUS);
}

void fs__getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    if (strcmp(name, STORE_FSM_XATTR_LOCK_TOKEN) == 0 && fs__locks_lost(fs__of(req)->locks)) {
        fuse_reply_err(req, ENOLCK);
        return;
    }
    struct read_req *r = new_req(req, OP_GETXATTR, ino, name);
    if (r == NULL)
        return;
    r->size = size;
    submit(r);
}

void fs__listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    struct read_req *r = new_req(req, OP_LISTXATTR, ino, NULL);
    if (r == NULL)
        return;
    r->size = size;
    submit(r);
}

void fs__statfs(fuse_req_t req, fuse_ino_t ino)
{
    struct read_req *r = new_req(req, OP_STATFS, ino, NULL);
    if (r != NULL)
        submit(r);
}

void fs__open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct read_req *r = new_req(req, OP_OPEN, ino, NULL);
    if (r == NULL)
        return;
    struct fs_handle *h = fs__handle_new(ino);
    if (h == NULL) {
        free(r);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    r->fi = *fi;
    r->fi.fh = (uint64_t)(uintptr_t)h;
    submit(r);
}

void fs__read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    struct read_req *r = new_req(req, OP_READ, ino, NULL);
    if (r == NULL)
        return;
    r->size = size;
    r->off = off;
    r->fi = *fi;
    submit(r);
}
