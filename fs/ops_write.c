/* Namespace, attribute and xattr changes: each becomes one store command, proposed to the
 * cluster and answered from the proposal's completion callback (on a runtime thread), with the
 * attributes the state machine returned. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <sys/xattr.h>

#include "fs/internal.h"

enum reply_kind {
    REPLY_ERR,    /* fuse_reply_err(0) on success */
    REPLY_ENTRY,  /* fuse_reply_entry with the new inode */
    REPLY_ATTR,   /* fuse_reply_attr with the changed inode */
    REPLY_CREATE, /* fuse_reply_create with the new handle */
    REPLY_PUNCH,  /* fuse_reply_err(0) on success, after cutting the node's buffers */
};

/* One proposed change, owned by the runtime's completion from fs__propose on. */
struct change {
    struct fs *fs;
    fuse_req_t req;
    struct fs_wait wait; /* interruptible until the completion */
    enum reply_kind kind;
    struct fuse_file_info fi; /* REPLY_CREATE: its handle in fi.fh */
    uint64_t ino, off, end;   /* REPLY_PUNCH: the hole */
};

static void change_done(void *arg, int status, struct raft_apply_result *result)
{
    struct change *c = arg;
    if (!fs__wait_claim(&c->wait)) {
        /* Answered EINTR already; the change may have been applied all the same. */
        if (c->kind == REPLY_CREATE)
            fs__handle_free(fs__handle_of(&c->fi));
        fs__proposal_result(status, result, NULL);
        free(c);
        return;
    }
    fs__wait_ended(c->fs, &c->wait, status);
    struct store_fsm_result res;
    int err = fs__proposal_result(status, result, &res);
    struct fuse_entry_param e;
    struct stat st;
    if (err != 0) {
        if (c->kind == REPLY_CREATE)
            fs__handle_free(fs__handle_of(&c->fi));
        fuse_reply_err(c->req, err);
    } else {
        switch (c->kind) {
        case REPLY_ERR: fuse_reply_err(c->req, 0); break;
        case REPLY_PUNCH:
            fs__dirty_punch(c->fs, c->ino, c->off, c->end);
            fuse_reply_err(c->req, 0);
            break;
        case REPLY_ENTRY:
            fs__entry(c->fs, &res.attr, &e);
            fuse_reply_entry(c->req, &e);
            break;
        case REPLY_ATTR:
            fs__attr_to_stat(&res.attr, &st);
            if (S_ISREG(res.attr.mode))
                st.st_size = (off_t)fs__local_size(c->fs, res.ino, res.attr.size);
            fuse_reply_attr(c->req, &st, c->fs->cache_timeout);
            break;
        case REPLY_CREATE: {
            struct fs_handle *h = fs__handle_of(&c->fi);
            /* The file existed (made meanwhile by another node): O_TRUNC is committed with
             * the new data, as for open. */
            h->is_replace = res.existed && (c->fi.flags & O_TRUNC);
            fs__handle_attach(c->fs, h, res.ino);
            fs__entry(c->fs, &res.attr, &e);
            e.attr.st_size = (off_t)fs__local_size(c->fs, res.ino, res.attr.size);
            c->fi.keep_cache = 0;
            c->fi.direct_io = 0;
            if (fuse_reply_create(c->req, &e, &c->fi) != 0) {
                /* Interrupted: the kernel will not release the handle. The file exists. */
                fs__handle_detach(c->fs, h);
                fs__handle_free(h);
            }
            break;
        }
        }
    }
    free(c);
}

/* Propose cmd and answer req from its completion. fi: the create's file info, or NULL. */
static void submit(fuse_req_t req, struct store_cmd *cmd, enum reply_kind kind,
                   const struct fuse_file_info *fi)
{
    struct change *c = calloc(1, sizeof *c);
    if (c == NULL) {
        if (kind == REPLY_CREATE)
            fs__handle_free(fs__handle_of(fi));
        fuse_reply_err(req, ENOMEM);
        return;
    }
    c->fs = fs__of(req);
    c->req = req;
    c->kind = kind;
    if (fi != NULL)
        c->fi = *fi;
    if (kind == REPLY_PUNCH) {
        c->ino = cmd->ino;
        c->off = cmd->offset;
        c->end = cmd->offset + cmd->len;
    }
    if (!fs__wait_start(&c->wait, req)) {
        if (kind == REPLY_CREATE)
            fs__handle_free(fs__handle_of(fi));
        fuse_reply_err(req, EINTR); /* interrupted before anything was proposed */
        free(c);
        return;
    }
    fs__now(cmd);
    unsigned timeout = fs__wait_deadline(c->fs, &c->wait);
    int err = timeout == 0 ? EROFS : fs__propose(c->fs->rt, timeout, cmd, change_done, c);
    if (err != 0) {
        if (kind == REPLY_CREATE)
            fs__handle_free(fs__handle_of(fi));
        if (fs__wait_claim(&c->wait))
            fuse_reply_err(req, err);
        free(c);
    }
}

/* Owner and mode of a new inode in parent: the caller's uid, and the caller's gid unless parent
 * has the set-group-ID bit, whose group (and, for directories, the bit) the child inherits.
 * The state machine stores mode, uid and gid as proposed (docs/fsm-format.md). */
static void new_owner(fuse_req_t req, fuse_ino_t parent, bool is_dir, struct store_cmd *cmd)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    cmd->uid = ctx->uid;
    cmd->gid = ctx->gid;
    struct store_fsm_attr pa;
    if (store_fsm_getattr(fs__of(req)->fsm, parent, &pa) == 0 && (pa.mode & S_ISGID)) {
        cmd->gid = pa.gid;
        if (is_dir)
            cmd->mode |= S_ISGID;
    }
}

static void set_name(struct store_cmd *cmd, const char *name)
{
    cmd->name = name;
    cmd->name_len = strlen(name);
}

void fs__create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                struct fuse_file_info *fi)
{
    if (!S_ISREG(mode) && (mode & S_IFMT) != 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    struct fs_handle *h = fs__handle_new(0);
    if (h == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    struct store_cmd cmd = {.type = STORE_CMD_CREATE, .ino = parent, .mode = mode & 07777};
    if (fi->flags & O_EXCL)
        cmd.flags |= STORE_CMD_EXCL;
    set_name(&cmd, name);
    new_owner(req, parent, false, &cmd);
    struct fuse_file_info f = *fi;
    f.fh = (uint64_t)(uintptr_t)h;
    submit(req, &cmd, REPLY_CREATE, &f);
}

void fs__mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    struct store_cmd cmd = {
        .type = STORE_CMD_MKNOD, .ino = parent, .mode = mode, .rdev = (uint32_t)rdev};
    set_name(&cmd, name);
    new_owner(req, parent, false, &cmd);
    submit(req, &cmd, REPLY_ENTRY, NULL);
}

void fs__mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    struct store_cmd cmd = {.type = STORE_CMD_MKDIR, .ino = parent, .mode = mode & 07777};
    set_name(&cmd, name);
    new_owner(req, parent, true, &cmd);
    submit(req, &cmd, REPLY_ENTRY, NULL);
}

/* A removal that may take a file's last name keeps it as an orphan while any node may hold it
 * open (fs/orphan.c). */
static void keep_open(fuse_req_t req, struct store_cmd *cmd)
{
    cmd->holders = fs__orphan_holders(fs__of(req));
    if (cmd->holders != 0)
        cmd->flags |= STORE_CMD_KEEP_OPEN;
}

void fs__unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct store_cmd cmd = {.type = STORE_CMD_UNLINK, .ino = parent};
    keep_open(req, &cmd);
    set_name(&cmd, name);
    submit(req, &cmd, REPLY_ERR, NULL);
}

void fs__rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct store_cmd cmd = {.type = STORE_CMD_RMDIR, .ino = parent};
    set_name(&cmd, name);
    submit(req, &cmd, REPLY_ERR, NULL);
}

void fs__symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    struct store_cmd cmd = {.type = STORE_CMD_SYMLINK, .ino = parent};
    set_name(&cmd, name);
    cmd.data = (const uint8_t *)link;
    cmd.data_len = strlen(link);
    if (cmd.data_len > STORE_FSM_SYMLINK_MAX) {
        fuse_reply_err(req, ENAMETOOLONG);
        return;
    }
    new_owner(req, parent, false, &cmd);
    submit(req, &cmd, REPLY_ENTRY, NULL);
}

void fs__link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    struct store_cmd cmd = {.type = STORE_CMD_LINK, .ino = ino, .ino2 = newparent};
    set_name(&cmd, newname);
    submit(req, &cmd, REPLY_ENTRY, NULL);
}

void fs__rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                const char *newname, unsigned int flags)
{
    if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
        fuse_reply_err(req, EINVAL); /* RENAME_WHITEOUT */
        return;
    }
    struct store_cmd cmd = {.type = STORE_CMD_RENAME, .ino = parent, .ino2 = newparent};
    if (flags & RENAME_NOREPLACE)
        cmd.flags |= STORE_CMD_NOREPLACE;
    if (flags & RENAME_EXCHANGE)
        cmd.flags |= STORE_CMD_EXCHANGE;
    else
        keep_open(req, &cmd);
    set_name(&cmd, name);
    cmd.name2 = newname;
    cmd.name2_len = strlen(newname);
    submit(req, &cmd, REPLY_ERR, NULL);
}

_Static_assert(FALLOC_FL_KEEP_SIZE == STORE_CMD_FALLOC_KEEP_SIZE &&
                   FALLOC_FL_PUNCH_HOLE == STORE_CMD_FALLOC_PUNCH_HOLE,
               "the state machine takes Linux's fallocate flags");

/* Propose a fallocate (a store_cmd in arg, owned) once its handle's buffer is committed. */
static void fallocate_after_commit(void *arg, fuse_req_t req, int err)
{
    struct store_cmd *cmd = arg;
    if (err != 0)
        fuse_reply_err(req, err);
    else
        submit(req, cmd, cmd->flags & STORE_CMD_FALLOC_PUNCH_HOLE ? REPLY_PUNCH : REPLY_ERR, NULL);
    free(cmd);
}

void fs__fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                   struct fuse_file_info *fi)
{
    /* The kernel refused the rest already (vfs_fallocate, fuse_file_fallocate);
     * FALLOC_FL_ZERO_RANGE gets here and is not supported. The state machine checks again. */
    if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)) {
        fuse_reply_err(req, EOPNOTSUPP);
        return;
    }
    if (off < 0 || len <= 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    struct store_cmd *cmd = malloc(sizeof *cmd);
    if (cmd == NULL) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    *cmd = (struct store_cmd){.type = STORE_CMD_FALLOCATE,
                              .ino = ino,
                              .flags = (uint32_t)mode,
                              .offset = (uint64_t)off,
                              .len = (uint64_t)len};
    /* What the handle buffered was written before: committed first, it lands before the
     * fallocate, and a pending O_TRUNC replacement cannot undo it later. Other handles of this
     * node keep their buffers: allocating commutes with their writes, and a punched hole cuts
     * them once applied. */
    fs__handle_commit_then(req, fi, (struct fs_then){.fn = fallocate_after_commit, .arg = cmd});
}

void fs__setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                 struct fuse_file_info *fi)
{
    (void)fi;
    struct store_cmd cmd = {.type = STORE_CMD_SETATTR, .ino = ino};
    if (to_set & FUSE_SET_ATTR_MODE) {
        cmd.valid |= STORE_CMD_SET_MODE;
        cmd.mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        cmd.valid |= STORE_CMD_SET_UID;
        cmd.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        cmd.valid |= STORE_CMD_SET_GID;
        cmd.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        if (attr->st_size < 0) {
            fuse_reply_err(req, EINVAL);
            return;
        }
        /* Bytes buffered by open handles of this node land after the truncation when they are
         * committed: cut them to the new size so the order of the calls is kept. A handle
         * opened with O_TRUNC carries the size in its REPLACE instead. */
        if (!fs__dirty_truncate(fs__of(req), ino, (uint64_t)attr->st_size)) {
            cmd.valid |= STORE_CMD_SET_SIZE;
            cmd.size = (uint64_t)attr->st_size;
        }
    }
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
        cmd.valid |= STORE_CMD_SET_ATIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
        cmd.valid |= STORE_CMD_SET_ATIME;
        cmd.atime_sec = attr->st_atim.tv_sec;
        cmd.atime_nsec = (uint32_t)attr->st_atim.tv_nsec;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
        cmd.valid |= STORE_CMD_SET_MTIME_NOW;
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
        cmd.valid |= STORE_CMD_SET_MTIME;
        cmd.mtime_sec = attr->st_mtim.tv_sec;
        cmd.mtime_nsec = (uint32_t)attr->st_mtim.tv_nsec;
    }
    if (cmd.valid == 0) {
        /* Only a size, taken by a pending REPLACE: nothing to commit yet. */
        struct store_fsm_attr a;
        int rc = store_fsm_getattr(fs__of(req)->fsm, ino, &a);
        if (rc != 0) {
            fuse_reply_err(req, fs__read_errno(rc));
            return;
        }
        struct stat st;
        fs__attr_to_stat(&a, &st);
        st.st_size = (off_t)fs__local_size(fs__of(req), ino, a.size);
        fuse_reply_attr(req, &st, fs__of(req)->cache_timeout);
        return;
    }
    submit(req, &cmd, REPLY_ATTR, NULL);
}

void fs__setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                  int flags)
{
    struct store_cmd cmd = {.type = STORE_CMD_SETXATTR, .ino = ino};
    if (flags & XATTR_CREATE)
        cmd.flags |= STORE_CMD_XATTR_CREATE;
    if (flags & XATTR_REPLACE)
        cmd.flags |= STORE_CMD_XATTR_REPLACE;
    set_name(&cmd, name);
    cmd.data = (const uint8_t *)value;
    cmd.data_len = size;
    submit(req, &cmd, REPLY_ERR, NULL);
}

void fs__removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    struct store_cmd cmd = {.type = STORE_CMD_REMOVEXATTR, .ino = ino};
    set_name(&cmd, name);
    submit(req, &cmd, REPLY_ERR, NULL);
}
