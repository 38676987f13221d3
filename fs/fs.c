/* The FUSE session of raftfsd: mount, the operation table, the multi-threaded loop, and the
 * attribute conversions the operations share (proposing is fs/node/propose.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "fs/internal.h"
#include "lib/error.h"

void fs__attr_to_stat(const struct store_fsm_attr *a, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = a->ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_rdev = a->rdev;
    st->st_size = (off_t)a->size;
    st->st_blocks = (blkcnt_t)a->blocks;
    st->st_blksize = 4096;
    st->st_atim.tv_sec = a->atime.sec;
    st->st_atim.tv_nsec = a->atime.nsec;
    st->st_mtim.tv_sec = a->mtime.sec;
    st->st_mtim.tv_nsec = a->mtime.nsec;
    st->st_ctim.tv_sec = a->ctime.sec;
    st->st_ctim.tv_nsec = a->ctime.nsec;
}

void fs__entry(const struct fs *fs, const struct store_fsm_attr *a, struct fuse_entry_param *e)
{
    memset(e, 0, sizeof *e);
    e->ino = a->ino;
    e->generation = a->generation;
    fs__attr_to_stat(a, &e->attr);
    e->attr_timeout = fs->cache_timeout;
    e->entry_timeout = fs->cache_timeout;
}

/* --- session ----------------------------------------------------------------------------- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* No writeback cache: every write reaches the handle's buffer at once. O_TRUNC arrives
     * with open, so the truncation and the new data can be one change (REPLACE). The kernel
     * drops a file's pages when fresh attributes show another size or mtime: a bound on
     * staleness should an invalidation be lost (no memory, snapshot install). */
    conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
    if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
        conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    /* Locks are the cluster's (fs/ops_lock.c), not the kernel's per-node ones. */
    conn->want |= conn->capable & (FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    /* Inode numbers are the state machine's and never reused: nothing to count. */
    (void)ino;
    (void)nlookup;
    fuse_reply_none(req);
}

/* A close commits the file's buffered writes, then releases the locks the closer held (locks
 * are released after the data they protect is committed): flush for the POSIX locks of the
 * closing process, release for the flock of the file description. */
static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs__handle_flush(req, fi, fs__lock_on_close(fs__of(req), ino, fi, false));
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    fs__handle_release(req, fi, fs__lock_on_close(fs__of(req), ino, fi, true));
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    (void)fi;
    fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    /* Every directory change was committed before it was answered. */
    (void)ino;
    (void)datasync;
    (void)fi;
    fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops fs_ops = {
    .init = fs_init,
    .lookup = fs__lookup,
    .forget = fs_forget,
    .getattr = fs__getattr,
    .setattr = fs__setattr,
    .readlink = fs__readlink,
    .mknod = fs__mknod,
    .mkdir = fs__mkdir,
    .unlink = fs__unlink,
    .rmdir = fs__rmdir,
    .symlink = fs__symlink,
    .rename = fs__rename,
    .link = fs__link,
    .open = fs__open,
    .read = fs__read,
    .write = fs__write,
    .flush = fs_flush,
    .release = fs_release,
    .fsync = fs__fsync,
    .opendir = fs__opendir,
    .readdir = fs__readdir,
    .readdirplus = fs__readdirplus,
    .releasedir = fs_releasedir,
    .fsyncdir = fs_fsyncdir,
    .statfs = fs__statfs,
    .setxattr = fs__setxattr,
    .getxattr = fs__getxattr,
    .listxattr = fs__listxattr,
    .removexattr = fs__removexattr,
    .create = fs__create,
    .getlk = fs__getlk,
    .setlk = fs__setlk,
    .flock = fs__flock,
    .fallocate = fs__fallocate,
};

int fs_mount(struct store_fsm *fsm, struct raft_runtime *rt, struct fs_replica *rep,
             const struct fs_options *opts, struct fs **out, char *err, size_t errlen)
{
    struct fs *fs = calloc(1, sizeof *fs);
    if (fs == NULL)
        goto err_nomem;
    fs->fsm = fsm;
    fs->rt = rt;
    fs->rep = rep;
    fs->opts = *opts;
    /* Only local mode lets the kernel cache (docs/fs.md, "Kernel caches"): invalidation keeps
     * those caches coherent with what this node applied, and the timeout bounds a lost
     * invalidation. open and strict mode promise reads fresh against the leader's commit
     * (lookups, opens), which a name or page served by the kernel alone cannot keep. */
    fs->cache_timeout = opts->consistency == FS_CONSISTENCY_LOCAL ? FS_CACHE_TIMEOUT : 0.0;
    struct raft_runtime_status st;
    raft_runtime_status(rt, &st);
    fs->self_bit = st.id >= 1 && st.id <= 64 ? (uint64_t)1 << (st.id - 1) : 0;
    fs->mountpoint = strdup(opts->mountpoint);
    fs->fuse_options = opts->fuse_options != NULL ? strdup(opts->fuse_options) : NULL;
    if (fs->mountpoint == NULL || (opts->fuse_options != NULL && fs->fuse_options == NULL))
        goto err_after_alloc;
    fs->opts.mountpoint = fs->mountpoint;
    fs->opts.fuse_options = fs->fuse_options;
    fs->locks = opts->locks;
    pthread_mutex_init(&fs->lock, NULL);

    char *argv[6];
    int argc = 0;
    argv[argc++] = "raftfsd";
    argv[argc++] = "-o";
    argv[argc++] = "default_permissions,allow_other,fsname=raftfs,subtype=raftfs";
    if (fs->fuse_options != NULL) {
        argv[argc++] = "-o";
        argv[argc++] = fs->fuse_options;
    }
    argv[argc] = NULL;
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    fs->se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, fs);
    fuse_opt_free_args(&args); /* libfuse may have copied them into memory of its own */
    if (fs->se == NULL) {
        snprintf(err, errlen, "cannot create the FUSE session (bad -o options?)");
        goto err_after_lock;
    }
    if (fuse_set_signal_handlers(fs->se) != 0) {
        snprintf(err, errlen, "cannot install the signal handlers");
        goto err_after_session;
    }
    struct stat mst;
    if (stat(fs->mountpoint, &mst) != 0 && errno == ENOTCONN) {
        /* An earlier daemon died with the filesystem mounted: the kernel fails every call on
         * the mount with ENOTCONN until it is unmounted. Detach it (processes may still hold
         * it) and mount afresh. */
        if (umount2(fs->mountpoint, MNT_DETACH) != 0) {
            snprintf(err, errlen,
                     "%s is the dead mount of an earlier raftfsd and cannot be unmounted: %s "
                     "(fusermount3 -u %s)",
                     fs->mountpoint, strerror(errno), fs->mountpoint);
            goto err_after_signals;
        }
        fprintf(stderr, "raftfsd: cleared the dead mount of an earlier raftfsd on %s\n",
                fs->mountpoint);
    }
    if (fuse_session_mount(fs->se, fs->mountpoint) != 0) {
        snprintf(err, errlen, "cannot mount on %s (see the message above)", fs->mountpoint);
        goto err_after_signals;
    }
    fs->is_mounted = true;
    if (fs__notify_start(fs) != 0) {
        snprintf(err, errlen, "out of memory for the kernel cache table");
        goto err_after_mount;
    }
    fs__orphan_scan(fs); /* nothing is open yet */
    *out = fs;
    return 0;

err_after_mount:
    fuse_session_unmount(fs->se);
err_after_signals:
    fuse_remove_signal_handlers(fs->se);
err_after_session:
    fuse_session_destroy(fs->se);
err_after_lock:
    pthread_mutex_destroy(&fs->lock);
    free(fs->fuse_options);
    free(fs->mountpoint);
    free(fs);
    return RFS_EIO;
err_after_alloc:
    free(fs->fuse_options);
    free(fs->mountpoint);
    free(fs);
err_nomem:
    snprintf(err, errlen, "out of memory");
    return RFS_ENOMEM;
}

int fs_run(struct fs *fs)
{
    struct fuse_loop_config cfg = {.clone_fd = 0, .max_idle_threads = 10};
    /* 0 after an unmount, the signal's number after a signal, -errno on a failure. */
    int rc = fuse_session_loop_mt(fs->se, &cfg);
    return rc >= 0 ? 0 : RFS_EIO;
}

void fs_close(struct fs *fs)
{
    if (fs == NULL)
        return;
    fs__notify_stop(fs); /* no invalidation after the session is gone */
    if (fs->is_mounted)
        fuse_session_unmount(fs->se);
    fuse_remove_signal_handlers(fs->se);
    fuse_session_destroy(fs->se);
    /* Handles the kernel never released (unmounted while files were open). */
    while (fs->handles != NULL) {
        struct fs_handle *h = fs->handles;
        fs->handles = h->next;
        while (h->queued != NULL) {
            struct fs_flush_req *q = h->queued;
            h->queued = q->next;
            free(q);
        }
        fs__handle_free(h);
    }
    pthread_mutex_destroy(&fs->lock);
    free(fs->fuse_options);
    free(fs->mountpoint);
    free(fs);
}
