/* Namespace commands of the inode state machine: create, mknod, mkdir, unlink, rmdir, symlink,
 * link, rename, forget. Errors follow Linux (tmpfs) in kind and in order of checks.
 *
 * Design note: the inode lifecycle.
 *
 * Every command is decided in two phases: checks, which only read and may return a POSIX
 * errno, then changes, which may only fail with a store error (and then the whole transaction
 * is abandoned). So a command whose result is an errno changes nothing.
 *
 *  1. Inode numbers come from meta "next_ino", start at 2 (1 is the root) and only grow; an
 *     inode number is never handed out twice, so a stale handle never reaches another file.
 *  2. A directory entry (parent, name) exists iff its twin in the cookies table
 *     (parent, cookie) exists and both name the same child and type.
 *  3. nlink of a non-directory = number of entries naming it. nlink of a directory = 2 + its
 *     subdirectories, and a directory has exactly one entry (its parent's), recorded in its
 *     inode as `parent` (the root's parent is itself).
 *  4. An inode with nlink > 0 is reachable from the root. An inode with nlink == 0 exists only
 *     while it is in the orphans table (it was open when its last link went, KEEP_OPEN); FORGET
 *     deletes it. Without KEEP_OPEN the last unlink deletes the inode, its blocks, symlink
 *     target and xattrs in the same transaction.
 *  5. A directory's next_cookie is greater than every cookie of its entries; a new entry takes
 *     it and increments it. Cookies of existing entries never change (rename over an existing
 *     name keeps the target's cookie; RENAME_EXCHANGE keeps both), so readdir offsets stay
 *     valid across concurrent changes.
 *  6. A directory's size is 40 + 20 per entry (tmpfs's convention).
 *  7. Nothing in a command's effect depends on anything but the command and the store: the
 *     only time used is the command's timestamp. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "store/fsm_internal.h"

#define DIRENT_VALUE 17 /* child u64 LE, type u8, cookie u64 LE */

struct dirent_rec {
    uint64_t child;
    uint32_t type; /* S_IFMT bits */
    uint64_t cookie;
};

static bool is_dot(const char *name, size_t len)
{
    return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

/* Checks on a final path component, in Linux's order: ENOENT (empty), ENAMETOOLONG, EINVAL
 * (contains '/' or NUL: the kernel never sends such a name, a hostile command might). */
static int name_check(const char *name, size_t len)
{
    if (len == 0)
        return ENOENT;
    if (len > STORE_FSM_NAME_MAX)
        return ENAMETOOLONG;
    if (memchr(name, '/', len) || memchr(name, '\0', len))
        return EINVAL;
    return 0;
}

static void touch_dir(struct fsm_txn *t, struct fsm_inode *dir)
{
    dir->mtime = t->now;
    dir->ctime = t->now;
}

/* A directory that can hold new entries: ENOENT if missing or removed, ENOTDIR otherwise. */
static int dir_get(struct fsm_txn *t, uint64_t ino, struct fsm_inode *dir)
{
    int r = store__inode_get(t->fsm, t->txn, ino, dir);
    if (r != 0)
        return r;
    if (!S_ISDIR(dir->mode))
        return ENOTDIR;
    if (dir->nlink == 0)
        return ENOENT; /* removed while open: Linux answers ENOENT (IS_DEADDIR) */
    return 0;
}

static int dirent_get(struct fsm_txn *t, uint64_t parent, const char *name, size_t len,
                      struct dirent_rec *out)
{
    uint8_t k[8 + STORE_FSM_NAME_MAX];
    fsm_put_be64(k, parent);
    memcpy(k + 8, name, len);
    MDB_val key = {8 + len, k}, val;
    int rc = mdb_get(t->txn, t->fsm->dirents, &key, &val);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "get entry of directory %llu",
                                    (unsigned long long)parent);
    if (val.mv_size != DIRENT_VALUE)
        return RFS_ECORRUPT;
    const uint8_t *v = val.mv_data;
    out->child = rfs_get_le64(v);
    out->type = (uint32_t)v[8] << 12;
    out->cookie = rfs_get_le64(v + 9);
    return 0;
}

/* Write both halves of an entry (invariant 2). */
static int dirent_put(struct fsm_txn *t, uint64_t parent, const char *name, size_t len,
                      const struct dirent_rec *d)
{
    uint8_t k[8 + STORE_FSM_NAME_MAX], v[DIRENT_VALUE];
    fsm_put_be64(k, parent);
    memcpy(k + 8, name, len);
    rfs_put_le64(v, d->child);
    v[8] = (uint8_t)(d->type >> 12);
    rfs_put_le64(v + 9, d->cookie);
    MDB_val key = {8 + len, k}, val = {sizeof v, v};
    int rc = mdb_put(t->txn, t->fsm->dirents, &key, &val, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put entry of directory %llu",
                                    (unsigned long long)parent);
    uint8_t ck[16], cv[9 + STORE_FSM_NAME_MAX];
    fsm_put_be64(ck, parent);
    fsm_put_be64(ck + 8, d->cookie);
    rfs_put_le64(cv, d->child);
    cv[8] = (uint8_t)(d->type >> 12);
    memcpy(cv + 9, name, len);
    MDB_val ckey = {16, ck}, cval = {9 + len, cv};
    rc = mdb_put(t->txn, t->fsm->cookies, &ckey, &cval, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put cookie of directory %llu",
                                    (unsigned long long)parent);
    return 0;
}

/* Add a new entry to dir (the caller writes dir afterwards). */
static int dirent_add(struct fsm_txn *t, struct fsm_inode *dir, const char *name, size_t len,
                      uint64_t child, uint32_t type)
{
    struct dirent_rec d = {.child = child, .type = type & S_IFMT, .cookie = dir->next_cookie++};
    dir->size += FSM_DIRENT_SIZE;
    int r = store__space_adjust(t, store__charge_entry(len), 0);
    return r != 0 ? r : dirent_put(t, dir->ino, name, len, &d);
}

static int dirent_del(struct fsm_txn *t, struct fsm_inode *dir, const char *name, size_t len,
                      uint64_t cookie)
{
    uint8_t k[8 + STORE_FSM_NAME_MAX], ck[16];
    fsm_put_be64(k, dir->ino);
    memcpy(k + 8, name, len);
    fsm_put_be64(ck, dir->ino);
    fsm_put_be64(ck + 8, cookie);
    MDB_val key = {8 + len, k}, ckey = {16, ck};
    int rc = mdb_del(t->txn, t->fsm->dirents, &key, NULL);
    if (rc == 0)
        rc = mdb_del(t->txn, t->fsm->cookies, &ckey, NULL);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "delete entry of directory %llu",
                                    (unsigned long long)dir->ino);
    dir->size -= FSM_DIRENT_SIZE;
    return store__space_adjust(t, 0, store__charge_entry(len));
}

/* 0 if directory ino has no entries, ENOTEMPTY otherwise, or a store error. */
static int dir_empty(struct fsm_txn *t, uint64_t ino)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->fsm->cookies, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "open cursor");
    uint8_t k[8];
    fsm_put_be64(k, ino);
    MDB_val key = {8, k}, val;
    rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "list directory %llu", (unsigned long long)ino);
    return fsm_get_be64(key.mv_data) == ino ? ENOTEMPTY : 0;
}

/* Delete inode ino and everything hanging off it (invariant 4). */
static int inode_destroy(struct fsm_txn *t, const struct fsm_inode *node)
{
    uint8_t k[8];
    fsm_put_be64(k, node->ino);
    MDB_val key = {8, k};
    int r, rc;
    if (S_ISREG(node->mode) &&
        (r = store__delete_prefix(t, t->fsm->blocks, node->ino, false, 0, "blocks")) != 0)
        return r;
    if (S_ISLNK(node->mode) && (rc = mdb_del(t->txn, t->fsm->symlinks, &key, NULL)) != 0)
        return store__fsm_mdb_error(t->fsm, rc, "delete symlink %llu",
                                    (unsigned long long)node->ino);
    if ((r = store__xattr_drop_all(t, node->ino)) != 0)
        return r;
    if ((r = store__locks_drop_inode(t, node->ino)) != 0)
        return r;
    rc = mdb_del(t->txn, t->fsm->orphans, &key, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(t->fsm, rc, "delete orphan %llu",
                                    (unsigned long long)node->ino);
    rc = mdb_del(t->txn, t->fsm->inodes, &key, NULL);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "delete inode %llu", (unsigned long long)node->ino);
    return store__space_adjust(t, 0, store__charge_inode(node));
}

/* node lost one link (a directory: its only one). Write it back, keep it as an orphan held by
 * the nodes in holders, or destroy it, and report it in res. */
static int drop_link(struct fsm_txn *t, struct fsm_inode *node, bool keep_open, uint64_t holders,
                     struct store_fsm_result *res)
{
    node->nlink = S_ISDIR(node->mode) ? 0 : node->nlink - 1;
    node->ctime = t->now;
    res->dropped_ino = node->ino;
    res->dropped_nlink = node->nlink;
    if (node->nlink > 0)
        return store__inode_put(t, node);
    if (!keep_open)
        return inode_destroy(t, node);
    uint8_t k[8], v[8];
    fsm_put_be64(k, node->ino);
    rfs_put_le64(v, holders);
    MDB_val key = {8, k}, val = {8, v};
    int rc = mdb_put(t->txn, t->fsm->orphans, &key, &val, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put orphan %llu", (unsigned long long)node->ino);
    res->dropped_is_orphan = true;
    return store__inode_put(t, node);
}

static void result_of(struct store_fsm_result *res, const struct fsm_inode *node)
{
    res->ino = node->ino;
    store__inode_to_attr(node, &res->attr);
}

/* --- create, mknod, mkdir, symlink --------------------------------------------------------- */

/* The part every new inode shares: checks on parent and name, then the new inode and its
 * entry. mode has its type bits set. For CREATE without EXCL an existing regular file is the
 * answer (res->existed). */
static int make_node(struct fsm_txn *t, const struct store_cmd *c, uint32_t mode,
                     struct store_fsm_result *res)
{
    struct fsm_inode dir, node;
    struct dirent_rec d;
    bool is_create = c->type == STORE_CMD_CREATE;
    bool is_excl = !is_create || (c->flags & STORE_CMD_EXCL);
    int r;

    if (S_ISLNK(mode)) { /* Linux copies the target in before it looks at the new name */
        if (c->data_len == 0)
            return ENOENT;
        if (c->data_len > STORE_FSM_SYMLINK_MAX)
            return ENAMETOOLONG;
    }
    if ((r = dir_get(t, c->ino, &dir)) != 0)
        return r;
    if ((r = name_check(c->name, c->name_len)) != 0)
        return r;
    if (is_dot(c->name, c->name_len))
        return is_excl ? EEXIST : EISDIR;
    r = dirent_get(t, c->ino, c->name, c->name_len, &d);
    if (r == 0) {
        if (is_excl)
            return EEXIST;
        if (d.type == S_IFDIR)
            return EISDIR;
        if (d.type != S_IFREG)
            return EEXIST; /* Linux would follow a symlink or open a FIFO: the fs layer's job */
        if ((r = store__inode_get(t->fsm, t->txn, d.child, &node)) != 0)
            return r == ENOENT ? RFS_ECORRUPT : r;
        res->existed = true;
        result_of(res, &node);
        return 0;
    }
    if (r != ENOENT)
        return r;
    if (S_ISDIR(mode) && dir.nlink >= t->fsm->max_links)
        return EMLINK;
    /* The new inode (with its symlink target) and its entry; the entry is charged when added. */
    uint64_t charge = FSM_CHARGE_INODE + (S_ISLNK(mode) ? c->data_len : 0);
    if ((r = store__space_check(t, charge + store__charge_entry(c->name_len))) != 0)
        return r;
    uint64_t ino;
    if ((r = store__next_ino_take(t, &ino)) != 0)
        return r; /* ENOSPC when numbers run out: nothing was written */

    memset(&node, 0, sizeof node);
    node.ino = ino;
    node.mode = mode;
    node.uid = c->uid;
    node.gid = c->gid;
    node.nlink = 1;
    node.rdev = S_ISCHR(mode) || S_ISBLK(mode) ? c->rdev : 0; /* as Linux: only devices keep it */
    node.atime = node.mtime = node.ctime = t->now;
    if (S_ISDIR(mode)) {
        node.nlink = 2;
        node.size = 2 * FSM_DIRENT_SIZE;
        node.parent = dir.ino;
        node.next_cookie = FSM_FIRST_COOKIE;
        dir.nlink++;
    } else if (S_ISLNK(mode)) {
        node.size = c->data_len;
        uint8_t k[8];
        fsm_put_be64(k, ino);
        MDB_val key = {8, k}, val = {c->data_len, (void *)c->data};
        int rc = mdb_put(t->txn, t->fsm->symlinks, &key, &val, 0);
        if (rc != 0)
            return store__fsm_mdb_error(t->fsm, rc, "put symlink %llu", (unsigned long long)ino);
    }
    if ((r = dirent_add(t, &dir, c->name, c->name_len, ino, mode)) != 0)
        return r;
    touch_dir(t, &dir);
    if ((r = store__inode_put(t, &dir)) != 0 || (r = store__inode_put(t, &node)) != 0 ||
        (r = store__space_adjust(t, charge, 0)) != 0)
        return r;
    result_of(res, &node);
    return 0;
}

static int cmd_mknod(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    uint32_t type = c->mode & S_IFMT;
    if (type == 0)
        type = S_IFREG; /* mknod(2): a zero type means a regular file */
    /* Version 1 refused devices and sockets; a command of its logs applies as it did then. A
     * device is only a name and a number here (the mount's nodev rules decide whether it
     * opens); a socket's listener lives in the kernel of the node that bound it. */
    if (store_cmd_is_special_mode(type) && c->version == 1)
        return EPERM;
    if (type != S_IFREG && type != S_IFIFO && !store_cmd_is_special_mode(type))
        return EINVAL;
    return make_node(t, c, type | (c->mode & 07777), res);
}

/* --- unlink, rmdir, link ------------------------------------------------------------------- */

static int cmd_unlink(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res,
                      bool is_rmdir)
{
    struct fsm_inode dir, node;
    struct dirent_rec d;
    int r;
    if ((r = dir_get(t, c->ino, &dir)) != 0)
        return r;
    if ((r = name_check(c->name, c->name_len)) != 0)
        return r;
    if (is_dot(c->name, c->name_len)) /* Linux: unlink -> EISDIR, rmdir "." EINVAL ".." ENOTEMPTY */
        return !is_rmdir ? EISDIR : c->name_len == 1 ? EINVAL : ENOTEMPTY;
    if ((r = dirent_get(t, c->ino, c->name, c->name_len, &d)) != 0)
        return r;
    if ((r = store__inode_get(t->fsm, t->txn, d.child, &node)) != 0)
        return r == ENOENT ? RFS_ECORRUPT : r;
    if (!is_rmdir && S_ISDIR(node.mode))
        return EISDIR;
    if (is_rmdir) {
        if (!S_ISDIR(node.mode))
            return ENOTDIR;
        if ((r = dir_empty(t, node.ino)) != 0)
            return r;
    }
    if ((r = dirent_del(t, &dir, c->name, c->name_len, d.cookie)) != 0)
        return r;
    if (is_rmdir)
        dir.nlink--;
    touch_dir(t, &dir);
    if ((r = store__inode_put(t, &dir)) != 0)
        return r;
    if ((r = drop_link(t, &node, c->flags & STORE_CMD_KEEP_OPEN, c->holders, res)) != 0)
        return r;
    result_of(res, &dir);
    return 0;
}

static int cmd_link(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node, dir;
    struct dirent_rec d;
    int r;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    if ((r = dir_get(t, c->ino2, &dir)) != 0)
        return r;
    if ((r = name_check(c->name, c->name_len)) != 0)
        return r;
    if (is_dot(c->name, c->name_len))
        return EEXIST;
    r = dirent_get(t, c->ino2, c->name, c->name_len, &d);
    if (r == 0)
        return EEXIST;
    if (r != ENOENT)
        return r;
    if (S_ISDIR(node.mode))
        return EPERM;
    if (node.nlink == 0)
        return ENOENT; /* an orphan cannot be linked back (Linux: no I_LINKABLE) */
    if (node.nlink >= t->fsm->max_links)
        return EMLINK;
    if ((r = store__space_check(t, store__charge_entry(c->name_len))) != 0)
        return r;
    if ((r = dirent_add(t, &dir, c->name, c->name_len, node.ino, node.mode)) != 0)
        return r;
    touch_dir(t, &dir);
    node.nlink++;
    node.ctime = t->now;
    if ((r = store__inode_put(t, &dir)) != 0 || (r = store__inode_put(t, &node)) != 0)
        return r;
    result_of(res, &node);
    return 0;
}

/* --- rename -------------------------------------------------------------------------------- */

/* Linux's lock_rename "trap": if one parent is an ancestor of the other, the child of the
 * upper one on the path to the lower one; 0 if neither is (or they are the same). */
static int find_trap(struct fsm_txn *t, uint64_t upper, uint64_t lower, uint64_t *trap)
{
    struct fsm_inode node;
    uint64_t cur = lower;
    *trap = 0;
    for (unsigned depth = 0; cur != STORE_FSM_ROOT_INO; depth++) {
        int r = store__inode_get(t->fsm, t->txn, cur, &node);
        if (r != 0)
            return r == ENOENT ? RFS_ECORRUPT : r;
        if (node.parent == upper) {
            *trap = cur;
            return 0;
        }
        if (node.parent == 0 || depth > (1u << 24))
            return RFS_ECORRUPT; /* a directory cycle or a broken chain */
        cur = node.parent;
    }
    return 0;
}

static int cmd_rename(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode op, np_buf, src, dst;
    struct dirent_rec sd, dd;
    bool is_exchange = c->flags & STORE_CMD_EXCHANGE;
    bool has_target;
    uint64_t trap = 0;
    int r;

    if (c->flags & ~(STORE_CMD_NOREPLACE | STORE_CMD_EXCHANGE | STORE_CMD_KEEP_OPEN) ||
        ((c->flags & STORE_CMD_NOREPLACE) && is_exchange))
        return EINVAL;
    if ((r = dir_get(t, c->ino, &op)) != 0)
        return r;
    struct fsm_inode *np = &np_buf;
    if (c->ino2 == c->ino)
        np = &op;
    else if ((r = dir_get(t, c->ino2, np)) != 0)
        return r;
    if (is_dot(c->name, c->name_len) || is_dot(c->name2, c->name2_len))
        return EINVAL; /* Linux says EBUSY; the kernel never sends these to FUSE */
    /* Linux looks the source up before it looks at the new name at all. */
    if ((r = name_check(c->name, c->name_len)) != 0)
        return r;
    if ((r = dirent_get(t, op.ino, c->name, c->name_len, &sd)) != 0)
        return r;
    if ((r = name_check(c->name2, c->name2_len)) != 0)
        return r;
    r = dirent_get(t, np->ino, c->name2, c->name2_len, &dd);
    if (r != 0 && r != ENOENT)
        return r;
    has_target = r == 0;
    if ((c->flags & STORE_CMD_NOREPLACE) && has_target)
        return EEXIST;
    if (is_exchange && !has_target)
        return ENOENT;
    if (op.ino != np->ino) {
        if ((r = find_trap(t, op.ino, np->ino, &trap)) != 0)
            return r;
        if (trap == 0 && (r = find_trap(t, np->ino, op.ino, &trap)) != 0)
            return r;
    }
    if (trap != 0 && sd.child == trap)
        return EINVAL; /* a directory into its own subtree */
    if (trap != 0 && has_target && dd.child == trap)
        return is_exchange ? EINVAL : ENOTEMPTY; /* over an ancestor of the source */
    if (has_target && sd.child == dd.child)
        return 0; /* two names of one inode (or one name twice): POSIX says do nothing */
    if ((r = store__inode_get(t->fsm, t->txn, sd.child, &src)) != 0 ||
        (has_target && (r = store__inode_get(t->fsm, t->txn, dd.child, &dst)) != 0))
        return r == ENOENT ? RFS_ECORRUPT : r;
    bool src_dir = S_ISDIR(src.mode), dst_dir = has_target && S_ISDIR(dst.mode);
    if (has_target && !is_exchange) {
        if (src_dir && !dst_dir)
            return ENOTDIR;
        if (!src_dir && dst_dir)
            return EISDIR;
    }
    if (op.ino != np->ino) {
        if (src_dir && !dst_dir && np->nlink >= t->fsm->max_links)
            return EMLINK;
        if (is_exchange && !src_dir && dst_dir && op.nlink >= t->fsm->max_links)
            return EMLINK;
    }
    if (dst_dir && !is_exchange && (r = dir_empty(t, dst.ino)) != 0)
        return r;
    /* Only a move to a new, longer name costs space (the old entry goes, the new one comes). */
    uint64_t old_entry = store__charge_entry(c->name_len);
    uint64_t new_entry = store__charge_entry(c->name2_len);
    if (!is_exchange && !has_target && new_entry > old_entry &&
        (r = store__space_check(t, new_entry - old_entry)) != 0)
        return r;

    /* Changes. */
    if (is_exchange) {
        struct dirent_rec a = {dd.child, dd.type, sd.cookie}, b = {sd.child, sd.type, dd.cookie};
        if ((r = dirent_put(t, op.ino, c->name, c->name_len, &a)) != 0 ||
            (r = dirent_put(t, np->ino, c->name2, c->name2_len, &b)) != 0)
            return r;
        if (src_dir)
            src.parent = np->ino;
        if (dst_dir)
            dst.parent = op.ino;
        if (op.ino != np->ino && src_dir != dst_dir) {
            if (src_dir) {
                op.nlink--;
                np->nlink++;
            } else {
                np->nlink--;
                op.nlink++;
            }
        }
        dst.ctime = t->now;
        if ((r = store__inode_put(t, &dst)) != 0)
            return r;
    } else {
        if (has_target) {
            struct dirent_rec moved = {src.ino, src.mode & S_IFMT, dd.cookie};
            if ((r = dirent_put(t, np->ino, c->name2, c->name2_len, &moved)) != 0)
                return r;
            if (src_dir)
                op.nlink--; /* np lost dst and gained src */
        } else {
            if ((r = dirent_add(t, np, c->name2, c->name2_len, src.ino, src.mode)) != 0)
                return r;
            if (src_dir) {
                op.nlink--;
                np->nlink++;
            }
        }
        if ((r = dirent_del(t, &op, c->name, c->name_len, sd.cookie)) != 0)
            return r;
        if (src_dir)
            src.parent = np->ino;
        if (has_target &&
            (r = drop_link(t, &dst, c->flags & STORE_CMD_KEEP_OPEN, c->holders, res)) != 0)
            return r;
    }
    src.ctime = t->now;
    touch_dir(t, &op);
    touch_dir(t, np);
    if ((r = store__inode_put(t, &src)) != 0 || (r = store__inode_put(t, &op)) != 0 ||
        (np != &op && (r = store__inode_put(t, np)) != 0))
        return r;
    result_of(res, &src);
    return 0;
}

/* --- forget -------------------------------------------------------------------------------- */

static int cmd_forget(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node;
    uint8_t k[8];
    fsm_put_be64(k, c->ino);
    MDB_val key = {8, k}, val;
    int rc = mdb_get(t->txn, t->fsm->orphans, &key, &val);
    if (rc == MDB_NOTFOUND)
        return ENOENT; /* not an orphan: nothing to forget */
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "get orphan %llu", (unsigned long long)c->ino);
    if (val.mv_size != 8)
        return RFS_ECORRUPT;
    uint64_t left = rfs_get_le64(val.mv_data) & ~c->holders;
    res->ino = c->ino;
    if (left != 0) { /* other nodes may still hold it open */
        uint8_t v[8];
        rfs_put_le64(v, left);
        MDB_val nval = {8, v};
        rc = mdb_put(t->txn, t->fsm->orphans, &key, &nval, 0);
        if (rc != 0)
            return store__fsm_mdb_error(t->fsm, rc, "put orphan %llu", (unsigned long long)c->ino);
        return 0;
    }
    int r = store__inode_get(t->fsm, t->txn, c->ino, &node);
    if (r != 0)
        return r == ENOENT ? RFS_ECORRUPT : r;
    res->dropped_ino = c->ino;
    return inode_destroy(t, &node);
}

int store__cmd_namespace(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    switch (c->type) {
    case STORE_CMD_CREATE: return make_node(t, c, S_IFREG | (c->mode & 07777), res);
    case STORE_CMD_MKNOD: return cmd_mknod(t, c, res);
    case STORE_CMD_MKDIR: return make_node(t, c, S_IFDIR | (c->mode & 07777), res);
    case STORE_CMD_SYMLINK: return make_node(t, c, S_IFLNK | 0777, res);
    case STORE_CMD_UNLINK: return cmd_unlink(t, c, res, false);
    case STORE_CMD_RMDIR: return cmd_unlink(t, c, res, true);
    case STORE_CMD_LINK: return cmd_link(t, c, res);
    case STORE_CMD_RENAME: return cmd_rename(t, c, res);
    case STORE_CMD_FORGET: return cmd_forget(t, c, res);
    }
    return EINVAL; /* an unknown type cannot come out of the decoder; refuse it anyway */
}
