/* Logical space accounting of the inode state machine: the count of bytes the tree uses, kept
 * in meta "space" next to the limit, changed in the transaction of every change.
 *
 * Design note (docs/fsm-format.md, "Space"):
 *  1. The count is a function of the tree alone (its inodes, entries, stored blocks, symlink
 *     targets and xattrs, charged at the fixed rates below), so equal logs give equal counts
 *     on every node whatever LMDB's page use, batching or readers.
 *  2. The count equals store_fsm_space_recount at every commit (the unit tests check it).
 *  3. A command that raises the count past the limit answers ENOSPC, decided in its check
 *     phase from the count and the limit only; a command that lowers it (or leaves it) is
 *     never refused for space.
 *  4. The limit is recorded when the environment is created (or upgraded to format 3) and
 *     replicated with it through snapshots; the LMDB map is sized well above it, so the map
 *     does not fill before the limit does (a map that fills all the same fails the apply).
 * Locks and sessions are not charged: they exist only while processes and nodes hold them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/fsm_internal.h"

#define META_SPACE "space" /* u64 limit, u64 used */

uint64_t store__charge_entry(size_t name_len)
{
    return FSM_CHARGE_ENTRY + 2 * (uint64_t)name_len; /* the name is stored twice */
}

uint64_t store__charge_xattr(size_t name_len, size_t value_len)
{
    return FSM_CHARGE_XATTR + (uint64_t)name_len + (uint64_t)value_len;
}

uint64_t store__charge_inode(const struct fsm_inode *node)
{
    uint64_t charge = FSM_CHARGE_INODE + node->nblocks * FSM_BLOCK_SIZE;
    if (S_ISLNK(node->mode))
        charge += node->size; /* the target */
    return charge;
}

uint64_t store__space_map_size(uint64_t limit)
{
    return FSM_MAP_FACTOR * limit + FSM_MAP_SLACK;
}

int store__space_get(struct store_fsm *fsm, MDB_txn *txn, uint64_t *limit, uint64_t *used)
{
    MDB_val key = {sizeof META_SPACE - 1, META_SPACE}, val;
    int rc = mdb_get(txn, fsm->meta, &key, &val);
    if (rc == MDB_NOTFOUND)
        return RFS_ECORRUPT;
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "get meta " META_SPACE);
    if (val.mv_size != 16)
        return RFS_ECORRUPT;
    if (limit != NULL)
        *limit = rfs_get_le64(val.mv_data);
    if (used != NULL)
        *used = rfs_get_le64((const uint8_t *)val.mv_data + 8);
    return 0;
}

static int space_put(struct fsm_txn *t, uint64_t limit, uint64_t used)
{
    uint8_t buf[16];
    rfs_put_le64(buf, limit);
    rfs_put_le64(buf + 8, used);
    MDB_val key = {sizeof META_SPACE - 1, META_SPACE}, val = {sizeof buf, buf};
    int rc = mdb_put(t->txn, t->fsm->meta, &key, &val, 0);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put meta " META_SPACE);
    return 0;
}

int store__space_check(struct fsm_txn *t, uint64_t add)
{
    uint64_t limit, used;
    int r = store__space_get(t->fsm, t->txn, &limit, &used);
    if (r != 0)
        return r;
    return add > 0 && (used > limit || add > limit - used) ? ENOSPC : 0;
}

int store__space_adjust(struct fsm_txn *t, uint64_t add, uint64_t sub)
{
    uint64_t limit, used;
    if (add == sub)
        return 0;
    int r = store__space_get(t->fsm, t->txn, &limit, &used);
    if (r != 0)
        return r;
    if (sub > used + add) {
        store__fsm_set_errmsg(
            t->fsm, "space count %llu cannot give back %llu bytes: the accounting is broken",
            (unsigned long long)(used + add), (unsigned long long)sub);
        return RFS_ECORRUPT;
    }
    return space_put(t, limit, used + add - sub);
}

/* Add fn's charge of every record of dbi to *sum. */
static int sum_table(MDB_txn *txn, MDB_dbi dbi,
                     uint64_t (*fn)(const MDB_val *key, const MDB_val *val), uint64_t *sum)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "space recount cursor");
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size < 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        *sum += fn(&key, &val);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(NULL, rc, "space recount");
    return 0;
}

static uint64_t inode_charge_of(const MDB_val *key, const MDB_val *val)
{
    struct fsm_inode node = {0};
    const uint8_t *rec = val->mv_data;
    if (val->mv_size != FSM_INODE_RECORD)
        return 0; /* store__inode_get reports damaged records; the count is no judge */
    (void)key;
    node.mode = rfs_get_le32(rec + 4);
    node.size = rfs_get_le64(rec + 24);
    node.nblocks = rfs_get_le64(rec + 32);
    return store__charge_inode(&node);
}

static uint64_t entry_charge_of(const MDB_val *key, const MDB_val *val)
{
    (void)val;
    return store__charge_entry(key->mv_size - 8);
}

static uint64_t xattr_charge_of(const MDB_val *key, const MDB_val *val)
{
    return store__charge_xattr(key->mv_size - 8, val->mv_size);
}

static int recount(struct store_fsm *fsm, MDB_txn *txn, uint64_t *used)
{
    int r;
    *used = 0;
    if ((r = sum_table(txn, fsm->inodes, inode_charge_of, used)) != 0 ||
        (r = sum_table(txn, fsm->dirents, entry_charge_of, used)) != 0 ||
        (r = sum_table(txn, fsm->xattrs, xattr_charge_of, used)) != 0)
        return r;
    return 0;
}

int store__space_init(struct fsm_txn *t, uint64_t limit)
{
    uint64_t used;
    int r = recount(t->fsm, t->txn, &used);
    if (r != 0)
        return r;
    return space_put(t, limit, used);
}

int store_fsm_space_recount(struct store_fsm *fsm, uint64_t *used)
{
    MDB_txn *txn;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    r = recount(fsm, txn, used);
    store__fsm_read_end(fsm, txn);
    return r;
}
