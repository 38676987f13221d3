/* File data of the inode state machine: blocks of FSM_BLOCK_SIZE bytes keyed by (inode,
 * block number); write, whole-file replace, setattr (with truncation) and read.
 *
 * Layout rules (see docs/disk-format.md):
 *  1. A block that was never written (or was cut away) is absent and reads as zeros: holes
 *     cost nothing.
 *  2. A stored block holds 0..FSM_BLOCK_SIZE bytes; bytes past its length read as zeros. A
 *     block of 0 bytes is space fallocate reserved: it reads as a hole but is stored, counted
 *     in st_blocks and charged, so a later write into it cannot fail for space.
 *  3. No stored byte lies at or past the file size: truncation deletes and trims blocks, so
 *     growing the file later shows zeros, never old data. Blocks reserved past the size by
 *     FALLOC_FL_KEEP_SIZE hold no byte; truncation deletes them as any other.
 * There is no inline data: a tiny file is one short block. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/fsm_internal.h"

static void block_key(uint8_t *k, uint64_t ino, uint64_t block)
{
    fsm_put_be64(k, ino);
    fsm_put_be64(k + 8, block);
}

/* ENOENT, EISDIR or EINVAL unless node is a regular file. */
static int regular_check(const struct fsm_inode *node)
{
    if (S_ISREG(node->mode))
        return 0;
    return S_ISDIR(node->mode) ? EISDIR : EINVAL;
}

/* Write len bytes of data at off into node's blocks and charge the blocks it adds; the caller
 * checked limits and space and updates size and times. */
static int write_range(struct fsm_txn *t, struct fsm_inode *node, uint64_t off, const uint8_t *data,
                       size_t len)
{
    const uint64_t bs = FSM_BLOCK_SIZE;
    uint8_t buf[FSM_BLOCK_SIZE], k[16];
    uint64_t end = off + len, before = node->nblocks;
    for (uint64_t b = off / bs; b * bs < end; b++) {
        uint64_t start = off > b * bs ? off - b * bs : 0;
        uint64_t stop = end - b * bs < bs ? end - b * bs : bs;
        size_t old_len = 0;
        block_key(k, node->ino, b);
        MDB_val key = {16, k}, val;
        if (start > 0 || stop < bs) { /* partial block: keep what is around the new bytes */
            int rc = mdb_get(t->txn, t->fsm->blocks, &key, &val);
            if (rc == 0) {
                old_len = val.mv_size > bs ? bs : val.mv_size;
                memcpy(buf, val.mv_data, old_len);
            } else if (rc != MDB_NOTFOUND) {
                return store__fsm_mdb_error(t->fsm, rc, "get block %llu of inode %llu",
                                            (unsigned long long)b, (unsigned long long)node->ino);
            } else {
                node->nblocks++;
            }
        } else {
            int rc = mdb_get(t->txn, t->fsm->blocks, &key, &val);
            if (rc == MDB_NOTFOUND)
                node->nblocks++;
            else if (rc != 0)
                return store__fsm_mdb_error(t->fsm, rc, "get block %llu of inode %llu",
                                            (unsigned long long)b, (unsigned long long)node->ino);
        }
        if (start > old_len)
            memset(buf + old_len, 0, start - old_len);
        memcpy(buf + start, data + (b * bs + start - off), stop - start);
        size_t new_len = stop > old_len ? stop : old_len;
        val = (MDB_val){new_len, buf};
        int rc = mdb_put(t->txn, t->fsm->blocks, &key, &val, 0);
        if (rc != 0)
            return store__fsm_mdb_error(t->fsm, rc, "put block %llu of inode %llu",
                                        (unsigned long long)b, (unsigned long long)node->ino);
    }
    return store__space_adjust(t, (node->nblocks - before) * bs, 0);
}

/* *n = the number of blocks of ino stored at block numbers from..to. */
static int count_blocks(struct fsm_txn *t, uint64_t ino, uint64_t from, uint64_t to, uint64_t *n)
{
    MDB_cursor *cur;
    uint8_t k[16];
    *n = 0;
    int rc = mdb_cursor_open(t->txn, t->fsm->blocks, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "open cursor on blocks");
    block_key(k, ino, from);
    MDB_val key = {16, k}, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (fsm_get_be64(key.mv_data) != ino || fsm_get_be64((const uint8_t *)key.mv_data + 8) > to)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(t->fsm, rc, "count blocks of inode %llu",
                                    (unsigned long long)ino);
    return 0;
}

int store__data_truncate(struct fsm_txn *t, struct fsm_inode *node, uint64_t size)
{
    const uint64_t bs = FSM_BLOCK_SIZE;
    int r;
    if (size < node->size) {
        uint64_t first_gone = (size + bs - 1) / bs, gone;
        if ((r = count_blocks(t, node->ino, first_gone, UINT64_MAX, &gone)) != 0)
            return r;
        if (gone > 0) {
            r = store__delete_prefix(t, t->fsm->blocks, node->ino, true, first_gone, "blocks");
            if (r == 0)
                r = store__space_adjust(t, 0, gone * bs);
            if (r != 0)
                return r;
            node->nblocks -= gone;
        }
        if (size % bs != 0) { /* rule 3: trim the block holding the new end */
            uint8_t k[16];
            block_key(k, node->ino, size / bs);
            MDB_val key = {16, k}, val;
            int rc = mdb_get(t->txn, t->fsm->blocks, &key, &val);
            if (rc == 0 && val.mv_size > size % bs) {
                uint8_t buf[FSM_BLOCK_SIZE];
                memcpy(buf, val.mv_data, size % bs);
                val = (MDB_val){size % bs, buf};
                rc = mdb_put(t->txn, t->fsm->blocks, &key, &val, 0);
            }
            if (rc != 0 && rc != MDB_NOTFOUND)
                return store__fsm_mdb_error(t->fsm, rc, "trim block of inode %llu",
                                            (unsigned long long)node->ino);
        }
    }
    node->size = size;
    return 0;
}

int store__cmd_write(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node;
    int r;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    if ((r = regular_check(&node)) != 0)
        return r;
    size_t len = c->data_len;
    if (len > 0) {
        /* Like Linux under RLIMIT_FSIZE: EFBIG at or past the limit, a short write across it. */
        if (c->offset >= t->fsm->max_file_size)
            return EFBIG;
        if (len > t->fsm->max_file_size - c->offset)
            len = (size_t)(t->fsm->max_file_size - c->offset);
        /* The blocks the range touches that are not stored yet are what it adds. */
        uint64_t first = c->offset / FSM_BLOCK_SIZE, last = (c->offset + len - 1) / FSM_BLOCK_SIZE;
        uint64_t stored;
        if ((r = count_blocks(t, node.ino, first, last, &stored)) != 0)
            return r;
        if ((r = store__space_check(t, (last - first + 1 - stored) * FSM_BLOCK_SIZE)) != 0)
            return r;
        if ((r = write_range(t, &node, c->offset, c->data, len)) != 0)
            return r;
        if (c->offset + len > node.size)
            node.size = c->offset + len;
        node.mtime = node.ctime = t->now;
        if ((r = store__inode_put(t, &node)) != 0)
            return r;
    }
    res->written = len;
    res->ino = node.ino;
    store__inode_to_attr(&node, &res->attr);
    return 0;
}

int store__cmd_replace(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node;
    int r;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    if ((r = regular_check(&node)) != 0)
        return r;
    if (c->data_len > t->fsm->max_file_size)
        return EFBIG;
    uint64_t blocks = (c->data_len + FSM_BLOCK_SIZE - 1) / FSM_BLOCK_SIZE;
    if (blocks > node.nblocks &&
        (r = store__space_check(t, (blocks - node.nblocks) * FSM_BLOCK_SIZE)) != 0)
        return r;
    if ((r = store__data_truncate(t, &node, 0)) != 0)
        return r;
    if (c->data_len > 0 && (r = write_range(t, &node, 0, c->data, c->data_len)) != 0)
        return r;
    node.size = c->data_len;
    node.mtime = node.ctime = t->now;
    if ((r = store__inode_put(t, &node)) != 0)
        return r;
    res->written = c->data_len;
    res->ino = node.ino;
    store__inode_to_attr(&node, &res->attr);
    return 0;
}

int store__cmd_setattr(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node;
    uint32_t v = c->valid;
    int r;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    if (v & ~STORE_CMD_SET_ALL)
        return EINVAL;
    if (v & STORE_CMD_SET_SIZE) {
        if ((r = regular_check(&node)) != 0)
            return r;
        if (c->size > t->fsm->max_file_size)
            return EFBIG;
    }
    bool is_changed = v & (STORE_CMD_SET_ALL & ~STORE_CMD_SET_SIZE);
    if (v & STORE_CMD_SET_MODE)
        node.mode = (node.mode & S_IFMT) | (c->mode & 07777);
    if (v & STORE_CMD_SET_UID)
        node.uid = c->uid;
    if (v & STORE_CMD_SET_GID)
        node.gid = c->gid;
    /* tmpfs: a size change sets mtime and ctime, and so does cutting at the current size
     * when the file holds data (shmem_truncate_range runs whenever pages are allocated); the
     * same size on a file of holes only changes nothing. */
    if ((v & STORE_CMD_SET_SIZE) && (c->size != node.size || node.nblocks > 0)) {
        if ((r = store__data_truncate(t, &node, c->size)) != 0)
            return r;
        node.mtime = t->now;
        is_changed = true;
    }
    if (v & STORE_CMD_SET_ATIME_NOW)
        node.atime = t->now;
    else if (v & STORE_CMD_SET_ATIME)
        node.atime = (struct store_fsm_time){c->atime_sec, c->atime_nsec};
    if (v & STORE_CMD_SET_MTIME_NOW)
        node.mtime = t->now;
    else if (v & STORE_CMD_SET_MTIME)
        node.mtime = (struct store_fsm_time){c->mtime_sec, c->mtime_nsec};
    if (is_changed) {
        node.ctime = t->now;
        if ((r = store__inode_put(t, &node)) != 0)
            return r;
    }
    res->ino = node.ino;
    store__inode_to_attr(&node, &res->attr);
    return 0;
}

/* Check a FALLOCATE of node, as Linux's vfs_fallocate in order: EINVAL for an empty range,
 * EOPNOTSUPP for a mode other than allocate (0 or KEEP_SIZE) or PUNCH_HOLE|KEEP_SIZE, then
 * EFBIG for a range ending past the size limit. */
static int fallocate_check(struct fsm_txn *t, const struct fsm_inode *node,
                           const struct store_cmd *c)
{
    int r = regular_check(node);
    if (r != 0)
        return r;
    if (c->len == 0 || c->offset > INT64_MAX)
        return EINVAL;
    uint32_t punch = STORE_CMD_FALLOC_PUNCH_HOLE | STORE_CMD_FALLOC_KEEP_SIZE;
    if (c->flags != 0 && c->flags != STORE_CMD_FALLOC_KEEP_SIZE && c->flags != punch)
        return EOPNOTSUPP;
    if (c->len > t->fsm->max_file_size || c->offset > t->fsm->max_file_size - c->len)
        return EFBIG;
    return 0;
}

/* Store an empty block (reserved space, rule 2) at each block number of [first, last] that
 * holds none. */
static int reserve_blocks(struct fsm_txn *t, uint64_t ino, uint64_t first, uint64_t last)
{
    uint8_t k[16];
    for (uint64_t b = first; b <= last; b++) {
        block_key(k, ino, b);
        MDB_val key = {16, k}, val = {0, k};
        int rc = mdb_put(t->txn, t->fsm->blocks, &key, &val, MDB_NOOVERWRITE);
        if (rc != 0 && rc != MDB_KEYEXIST)
            return store__fsm_mdb_error(t->fsm, rc, "reserve block %llu of inode %llu",
                                        (unsigned long long)b, (unsigned long long)ino);
    }
    return 0;
}

/* Zero bytes [from, to) of block b of node (0 <= from < to <= FSM_BLOCK_SIZE), if stored: the
 * block goes when the range is all of it, and is cut at from when the range reaches its end
 * (a block partly punched stays allocated, as on Linux). */
static int punch_block(struct fsm_txn *t, struct fsm_inode *node, uint64_t b, size_t from,
                       size_t to)
{
    uint8_t buf[FSM_BLOCK_SIZE], k[16];
    block_key(k, node->ino, b);
    MDB_val key = {16, k}, val;
    int rc = mdb_get(t->txn, t->fsm->blocks, &key, &val);
    if (rc == MDB_NOTFOUND)
        return 0;
    size_t len = val.mv_size;
    if (rc == 0 && from == 0 && to == FSM_BLOCK_SIZE) {
        rc = mdb_del(t->txn, t->fsm->blocks, &key, NULL);
        if (rc == 0) {
            node->nblocks--;
            return store__space_adjust(t, 0, FSM_BLOCK_SIZE);
        }
    } else if (rc == 0 && from < len) {
        memcpy(buf, val.mv_data, len);
        if (to < len)
            memset(buf + from, 0, to - from);
        else
            len = from;
        val = (MDB_val){len, buf};
        rc = mdb_put(t->txn, t->fsm->blocks, &key, &val, 0);
    }
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "punch block %llu of inode %llu",
                                    (unsigned long long)b, (unsigned long long)node->ino);
    return 0;
}

/* Make [off, end) of node a hole: blocks wholly inside go, the ones at the edges get zeros. */
static int punch_range(struct fsm_txn *t, struct fsm_inode *node, uint64_t off, uint64_t end)
{
    const uint64_t bs = FSM_BLOCK_SIZE;
    int r = 0;
    for (uint64_t b = off / bs; r == 0 && b * bs < end; b++) {
        size_t from = off > b * bs ? (size_t)(off - b * bs) : 0;
        size_t to = end - b * bs < bs ? (size_t)(end - b * bs) : (size_t)bs;
        r = punch_block(t, node, b, from, to);
    }
    return r;
}

int store__cmd_fallocate(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node;
    int r;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    if ((r = fallocate_check(t, &node, c)) != 0)
        return r;
    uint64_t end = c->offset + c->len;
    if (c->flags & STORE_CMD_FALLOC_PUNCH_HOLE) {
        /* Past the size only reserved blocks are stored (rule 3): they go too, as on Linux. */
        if ((r = punch_range(t, &node, c->offset, end)) != 0)
            return r;
    } else {
        /* Reserved whole or refused with ENOSPC, as a WRITE. */
        uint64_t first = c->offset / FSM_BLOCK_SIZE, last = (end - 1) / FSM_BLOCK_SIZE, stored;
        if ((r = count_blocks(t, node.ino, first, last, &stored)) != 0)
            return r;
        uint64_t added = last - first + 1 - stored;
        if ((r = store__space_check(t, added * FSM_BLOCK_SIZE)) != 0 ||
            (r = reserve_blocks(t, node.ino, first, last)) != 0 ||
            (r = store__space_adjust(t, added * FSM_BLOCK_SIZE, 0)) != 0)
            return r;
        node.nblocks += added;
        if (!(c->flags & STORE_CMD_FALLOC_KEEP_SIZE) && end > node.size)
            node.size = end;
    }
    /* As tmpfs (file_modified): a successful fallocate sets mtime and ctime. */
    node.mtime = node.ctime = t->now;
    if ((r = store__inode_put(t, &node)) != 0)
        return r;
    res->ino = node.ino;
    store__inode_to_attr(&node, &res->attr);
    return 0;
}

/* Copy bytes [offset, offset + len) of node, a regular file within whose size the range lies,
 * into buf from txn's blocks; holes read as zeros. */
static int read_range(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, uint64_t offset,
                      uint8_t *buf, size_t len)
{
    const uint64_t bs = FSM_BLOCK_SIZE;
    MDB_cursor *cur;
    memset(buf, 0, len); /* holes and short blocks read as zeros */
    if (len == 0)
        return 0;
    int rc = mdb_cursor_open(txn, fsm->blocks, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "read cursor");
    uint8_t k[16];
    block_key(k, ino, offset / bs);
    MDB_val key = {16, k}, val;
    uint64_t end = offset + len;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (fsm_get_be64(key.mv_data) != ino)
            break;
        uint64_t b0 = fsm_get_be64((const uint8_t *)key.mv_data + 8) * bs;
        if (b0 >= end)
            break;
        uint64_t from = offset > b0 ? offset : b0;
        uint64_t to = b0 + val.mv_size < end ? b0 + val.mv_size : end;
        if (to > from)
            memcpy(buf + (from - offset), (const uint8_t *)val.mv_data + (from - b0), to - from);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(NULL, rc, "read inode %llu", (unsigned long long)ino);
    return 0;
}

/* Begin a read transaction *txn and get regular file ino into *node; on failure, no
 * transaction is left open. */
static int read_begin_file(struct store_fsm *fsm, uint64_t ino, MDB_txn **txn,
                           struct fsm_inode *node)
{
    int r = store__fsm_read_begin(fsm, txn);
    if (r != 0)
        return r;
    if ((r = store__inode_get(fsm, *txn, ino, node)) != 0 || (r = regular_check(node)) != 0)
        store__fsm_read_end(fsm, *txn);
    return r;
}

int store_fsm_read(struct store_fsm *fsm, uint64_t ino, uint64_t offset, void *buf, size_t len,
                   size_t *n)
{
    struct fsm_inode node;
    MDB_txn *txn;
    *n = 0;
    int r = read_begin_file(fsm, ino, &txn, &node);
    if (r != 0)
        return r;
    if (offset >= node.size || len == 0)
        goto out;
    if (len > node.size - offset)
        len = (size_t)(node.size - offset);
    if ((r = read_range(fsm, txn, ino, offset, buf, len)) == 0)
        *n = len;
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

int store_fsm_read_file(struct store_fsm *fsm, uint64_t ino, uint64_t max,
                        struct store_fsm_attr *attr, uint8_t **data)
{
    struct fsm_inode node;
    MDB_txn *txn;
    *data = NULL;
    int r = read_begin_file(fsm, ino, &txn, &node);
    if (r != 0)
        return r;
    if (node.size > max || node.size > SIZE_MAX - 1) {
        r = EFBIG;
        goto out;
    }
    uint8_t *buf = malloc((size_t)node.size + 1); /* + 1: malloc(0) may answer NULL */
    if (buf == NULL) {
        r = ENOMEM;
        goto out;
    }
    if ((r = read_range(fsm, txn, ino, 0, buf, (size_t)node.size)) != 0) {
        free(buf);
        goto out;
    }
    store__inode_to_attr(&node, attr);
    *data = buf;
out:
    store__fsm_read_end(fsm, txn);
    return r;
}
