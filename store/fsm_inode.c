/* Inode state machine: inode records, the meta table, prefix walks and range deletes, and the
 * read side of the tree (getattr, lookup, readdir, readlink, orphans, statfs). */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include "store/fsm_internal.h"

/* --- inode records ------------------------------------------------------------------------- */

void store__inode_encode(const struct fsm_inode *n, uint8_t *rec)
{
    memset(rec, 0, FSM_INODE_RECORD);
    rec[0] = 1; /* record version */
    rfs_put_le32(rec + 4, n->mode);
    rfs_put_le32(rec + 8, n->uid);
    rfs_put_le32(rec + 12, n->gid);
    rfs_put_le32(rec + 16, n->nlink);
    rfs_put_le32(rec + 20, n->rdev);
    rfs_put_le64(rec + 24, n->size);
    rfs_put_le64(rec + 32, n->nblocks);
    rfs_put_le64(rec + 40, (uint64_t)n->atime.sec);
    rfs_put_le32(rec + 48, n->atime.nsec);
    rfs_put_le32(rec + 52, n->mtime.nsec);
    rfs_put_le64(rec + 56, (uint64_t)n->mtime.sec);
    rfs_put_le64(rec + 64, (uint64_t)n->ctime.sec);
    rfs_put_le32(rec + 72, n->ctime.nsec);
    rfs_put_le64(rec + 80, n->generation);
    rfs_put_le64(rec + 88, n->parent);
    rfs_put_le64(rec + 96, n->next_cookie);
}

static int inode_decode(uint64_t ino, const MDB_val *v, struct fsm_inode *n)
{
    const uint8_t *rec = v->mv_data;
    if (v->mv_size != FSM_INODE_RECORD || rec[0] != 1)
        return RFS_ECORRUPT;
    n->ino = ino;
    n->mode = rfs_get_le32(rec + 4);
    n->uid = rfs_get_le32(rec + 8);
    n->gid = rfs_get_le32(rec + 12);
    n->nlink = rfs_get_le32(rec + 16);
    n->rdev = rfs_get_le32(rec + 20);
    n->size = rfs_get_le64(rec + 24);
    n->nblocks = rfs_get_le64(rec + 32);
    n->atime.sec = (int64_t)rfs_get_le64(rec + 40);
    n->atime.nsec = rfs_get_le32(rec + 48);
    n->mtime.nsec = rfs_get_le32(rec + 52);
    n->mtime.sec = (int64_t)rfs_get_le64(rec + 56);
    n->ctime.sec = (int64_t)rfs_get_le64(rec + 64);
    n->ctime.nsec = rfs_get_le32(rec + 72);
    n->generation = rfs_get_le64(rec + 80);
    n->parent = rfs_get_le64(rec + 88);
    n->next_cookie = rfs_get_le64(rec + 96);
    return 0;
}

int store__inode_get(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, struct fsm_inode *out)
{
    uint8_t k[8];
    fsm_put_be64(k, ino);
    MDB_val key = {8, k}, val;
    MDB_dbi dbi = fsm->inodes;
    int rc = mdb_get(txn, dbi, &key, &val);
    if (rc == MDB_NOTFOUND)
        return ENOENT;
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "get inode %llu", (unsigned long long)ino);
    return inode_decode(ino, &val, out);
}

int store__inode_put(struct fsm_txn *t, const struct fsm_inode *node)
{
    uint8_t k[8], rec[FSM_INODE_RECORD];
    fsm_put_be64(k, node->ino);
    store__inode_encode(node, rec);
    MDB_val key = {8, k}, val = {sizeof rec, rec};
    int rc = mdb_put(t->txn, t->fsm->inodes, &key, &val, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put inode %llu", (unsigned long long)node->ino);
    return 0;
}

void store__inode_to_attr(const struct fsm_inode *n, struct store_fsm_attr *a)
{
    memset(a, 0, sizeof *a);
    a->ino = n->ino;
    a->mode = n->mode;
    a->uid = n->uid;
    a->gid = n->gid;
    a->nlink = n->nlink;
    a->rdev = n->rdev;
    a->size = n->size;
    a->blocks = n->nblocks * (FSM_BLOCK_SIZE / 512);
    /* Field by field, so the padding memset above cleared stays clear (attributes are
     * compared and copied as bytes by callers). */
    a->atime.sec = n->atime.sec;
    a->atime.nsec = n->atime.nsec;
    a->mtime.sec = n->mtime.sec;
    a->mtime.nsec = n->mtime.nsec;
    a->ctime.sec = n->ctime.sec;
    a->ctime.nsec = n->ctime.nsec;
    a->generation = n->generation;
}

/* --- meta ---------------------------------------------------------------------------------- */

int store__meta_get_u64(struct store_fsm *fsm, MDB_txn *txn, const char *name, uint64_t *v,
                        size_t at)
{
    MDB_val key = fsm_meta_key(name), val;
    int rc = mdb_get(txn, fsm->meta, &key, &val);
    if (rc == MDB_NOTFOUND)
        return RFS_ENOTFOUND;
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "get meta %s", name);
    if (val.mv_size < at + 8)
        return RFS_ECORRUPT;
    *v = rfs_get_le64((const uint8_t *)val.mv_data + at);
    return 0;
}

int store__meta_put(struct fsm_txn *t, const char *name, const void *data, size_t len)
{
    MDB_val key = fsm_meta_key(name), val = {len, (void *)data};
    int rc = mdb_put(t->txn, t->fsm->meta, &key, &val, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put meta %s", name);
    return 0;
}

int store__next_ino_take(struct fsm_txn *t, uint64_t *ino)
{
    uint64_t next;
    int r = store__meta_get_u64(t->fsm, t->txn, META_NEXT_INO, &next, 0);
    if (r != 0)
        return r == RFS_ENOTFOUND ? RFS_ECORRUPT : r;
    if (next == UINT64_MAX)
        return ENOSPC; /* inode numbers exhausted: a filesystem answer, not a store error */
    uint8_t buf[8];
    rfs_put_le64(buf, next + 1);
    r = store__meta_put(t, META_NEXT_INO, buf, 8);
    if (r != 0)
        return r;
    *ino = next;
    return 0;
}

/* --- range deletes ------------------------------------------------------------------------- */

int store__for_prefix(struct store_fsm *fsm, MDB_txn *txn, MDB_dbi dbi, uint64_t ino,
                      void (*fn)(void *arg, const MDB_val *key, const MDB_val *val), void *arg)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(fsm, rc, "open a cursor");
    uint8_t k[8];
    fsm_put_be64(k, ino);
    MDB_val key = {8, k}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size < 8 || fsm_get_be64(key.mv_data) != ino)
            break;
        fn(arg, &key, &val);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(fsm, rc, "walk the keys of inode %llu",
                                    (unsigned long long)ino);
    return 0;
}

int store__delete_prefix(struct fsm_txn *t, MDB_dbi dbi, uint64_t ino, bool has_from, uint64_t from,
                         const char *what)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, dbi, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "open cursor on %s", what);
    uint8_t k[16];
    fsm_put_be64(k, ino);
    fsm_put_be64(k + 8, from);
    /* Seek again after every delete rather than trusting the cursor's position after
     * mdb_cursor_del: simple, and these ranges are short. */
    for (;;) {
        MDB_val key = {has_from ? 16 : 8, k}, val;
        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
        if (rc != 0 || key.mv_size < 8 || fsm_get_be64(key.mv_data) != ino)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(t->fsm, rc, "delete %s of inode %llu", what,
                                    (unsigned long long)ino);
    return 0;
}

/* --- reads --------------------------------------------------------------------------------- */

int store_fsm_getattr(struct store_fsm *fsm, uint64_t ino, struct store_fsm_attr *out)
{
    MDB_txn *txn;
    struct fsm_inode node;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    r = store__inode_get(fsm, txn, ino, &node);
    store__fsm_read_end(fsm, txn);
    if (r == 0)
        store__inode_to_attr(&node, out);
    return r;
}

int store_fsm_lookup(struct store_fsm *fsm, uint64_t parent, const char *name, size_t name_len,
                     struct store_fsm_attr *out)
{
    MDB_txn *txn;
    struct fsm_inode dir, node;
    uint64_t child;
    if (name_len > STORE_FSM_NAME_MAX)
        return ENAMETOOLONG;
    if (name_len == 0)
        return ENOENT;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    if ((r = store__inode_get(fsm, txn, parent, &dir)) != 0)
        goto out;
    if (!S_ISDIR(dir.mode)) {
        r = ENOTDIR;
        goto out;
    }
    if (name_len == 1 && name[0] == '.') {
        child = parent;
    } else if (name_len == 2 && name[0] == '.' && name[1] == '.') {
        child = dir.parent;
    } else {
        uint8_t k[8 + STORE_FSM_NAME_MAX];
        fsm_put_be64(k, parent);
        memcpy(k + 8, name, name_len);
        MDB_val key = {8 + name_len, k}, val;
        int rc = mdb_get(txn, fsm->dirents, &key, &val);
        if (rc == MDB_NOTFOUND) {
            r = ENOENT;
            goto out;
        }
        if (rc != 0) {
            r = store__fsm_mdb_error(NULL, rc, "lookup");
            goto out;
        }
        if (val.mv_size != 17) {
            r = RFS_ECORRUPT;
            goto out;
        }
        child = rfs_get_le64(val.mv_data);
    }
    if ((r = store__inode_get(fsm, txn, child, &node)) != 0) {
        if (r == ENOENT) /* an entry naming a missing inode: the tree is damaged */
            r = RFS_ECORRUPT;
        goto out;
    }
    store__inode_to_attr(&node, out);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

int store_fsm_readdir(struct store_fsm *fsm, uint64_t ino, uint64_t offset, store_fsm_readdir_fn fn,
                      void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    struct fsm_inode dir;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    if ((r = store__inode_get(fsm, txn, ino, &dir)) != 0)
        goto out;
    if (!S_ISDIR(dir.mode)) {
        r = ENOTDIR;
        goto out;
    }
    if (offset < 1 && fn(arg, ".", 1, ino, S_IFDIR, 1))
        goto out;
    if (offset < 2 && fn(arg, "..", 2, dir.parent, S_IFDIR, 2))
        goto out;
    int rc = mdb_cursor_open(txn, fsm->cookies, &cur);
    if (rc != 0) {
        r = store__fsm_mdb_error(NULL, rc, "readdir cursor");
        goto out;
    }
    uint8_t k[16];
    fsm_put_be64(k, ino);
    fsm_put_be64(k + 8, offset < FSM_FIRST_COOKIE ? FSM_FIRST_COOKIE : offset + 1);
    MDB_val key = {16, k}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 16 || fsm_get_be64(key.mv_data) != ino)
            break;
        if (val.mv_size < 9) {
            r = RFS_ECORRUPT;
            break;
        }
        const uint8_t *v = val.mv_data;
        uint64_t cookie = fsm_get_be64((const uint8_t *)key.mv_data + 8);
        uint32_t type = (uint32_t)v[8] << 12;
        if (fn(arg, (const char *)v + 9, val.mv_size - 9, rfs_get_le64(v), type, cookie))
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(NULL, rc, "readdir");
    mdb_cursor_close(cur);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

int store_fsm_readlink(struct store_fsm *fsm, uint64_t ino, char *buf, size_t cap, size_t *len)
{
    MDB_txn *txn;
    struct fsm_inode node;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    if ((r = store__inode_get(fsm, txn, ino, &node)) != 0)
        goto out;
    if (!S_ISLNK(node.mode)) {
        r = EINVAL;
        goto out;
    }
    uint8_t k[8];
    fsm_put_be64(k, ino);
    MDB_val key = {8, k}, val;
    int rc = mdb_get(txn, fsm->symlinks, &key, &val);
    if (rc != 0) {
        r = rc == MDB_NOTFOUND ? RFS_ECORRUPT : store__fsm_mdb_error(NULL, rc, "readlink");
        goto out;
    }
    *len = val.mv_size;
    if (cap < val.mv_size) {
        r = ERANGE;
        goto out;
    }
    memcpy(buf, val.mv_data, val.mv_size);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

int store_fsm_orphans(struct store_fsm *fsm, store_fsm_orphan_fn fn, void *arg)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    int rc = mdb_cursor_open(txn, fsm->orphans, &cur);
    if (rc != 0) {
        r = store__fsm_mdb_error(NULL, rc, "orphans cursor");
        goto out;
    }
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size != 8 || val.mv_size != 8) {
            r = RFS_ECORRUPT;
            break;
        }
        if (fn(arg, fsm_get_be64(key.mv_data), rfs_get_le64(val.mv_data)))
            break;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(NULL, rc, "orphans");
    mdb_cursor_close(cur);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

int store_fsm_statfs(struct store_fsm *fsm, struct store_fsm_statfs *out)
{
    MDB_stat st;
    MDB_txn *txn;
    uint64_t next, limit, used;
    memset(out, 0, sizeof *out);
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    int rc = mdb_stat(txn, fsm->inodes, &st);
    if (rc != 0) {
        r = store__fsm_mdb_error(NULL, rc, "statfs");
        goto out;
    }
    if ((r = store__meta_get_u64(fsm, txn, META_NEXT_INO, &next, 0)) != 0)
        goto out;
    if ((r = store__space_get(fsm, txn, &limit, &used)) != 0)
        goto out;
    out->bsize = fsm->block_size;
    out->blocks = limit / fsm->block_size;
    out->bfree = used >= limit ? 0 : (limit - used) / fsm->block_size;
    out->space_limit = limit;
    out->space_used = used;
    out->files = st.ms_entries;
    out->ffree = UINT64_MAX - next;
    out->namemax = STORE_FSM_NAME_MAX;
    out->max_file_size = fsm->max_file_size;
out:
    store__fsm_read_end(fsm, txn);
    return r;
}
