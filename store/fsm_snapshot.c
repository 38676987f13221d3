/* Snapshots of the inode state machine: taking one without stopping apply, and replacing the
 * whole state with one received from the leader. The file format is store/snapshot.c's; what a
 * snapshot holds (applied index, term, raft configuration) is read back from the copy itself,
 * since the copy's read transaction starts inside LMDB. */

#include "store/fsm_internal.h"
#include "store/snapshot.h"

/* What the copy holds, from its meta records (fsm_internal.h, "Meta keys"). */
static int describe(void *ctx, MDB_txn *txn, struct store_snapshot_meta *meta)
{
    (void)ctx;
    MDB_dbi dbi;
    if (mdb_dbi_open(txn, "meta", 0, &dbi) != 0)
        return RFS_ECORRUPT;
    MDB_val key = fsm_meta_key(META_APPLIED), val;
    if (mdb_get(txn, dbi, &key, &val) != 0 || val.mv_size != 16)
        return RFS_ECORRUPT;
    meta->index = rfs_get_le64(val.mv_data);
    meta->term = rfs_get_le64((const uint8_t *)val.mv_data + 8);
    key = fsm_meta_key(META_CONFIG);
    int rc = mdb_get(txn, dbi, &key, &val);
    if (rc == MDB_NOTFOUND) {
        meta->config = NULL;
        meta->config_len = 0;
    } else if (rc != 0 || val.mv_size < 8) {
        return RFS_ECORRUPT;
    } else {
        meta->config = (const uint8_t *)val.mv_data + 8;
        meta->config_len = val.mv_size - 8;
    }
    return 0;
}

int store_fsm_snapshot(struct store_fsm *fsm, struct store_snapshot_dir *sd,
                       struct store_snapshot_info *out)
{
    /* Shared, like a reader: a restore must not close the environment under the copy. */
    pthread_rwlock_rdlock(&fsm->lock);
    int r = store_snapshot_take(sd, fsm->env, describe, NULL, NULL, out);
    pthread_rwlock_unlock(&fsm->lock);
    return r;
}

int store_fsm_restore(struct store_fsm *fsm, struct store_snapshot_dir *sd, uint64_t index,
                      uint64_t term)
{
    pthread_rwlock_wrlock(&fsm->lock);
    mdb_env_close(fsm->env);
    fsm->env = NULL;
    int r = store_snapshot_extract(sd, index, term, fsm->dir);
    /* Reopen whatever is there now: the snapshot, or the old state if the extract failed (it
     * leaves the directory untouched then). */
    int r2 = store__fsm_env_open(fsm);
    pthread_rwlock_unlock(&fsm->lock);
    if (r == 0 && r2 == 0) {
        uint64_t applied;
        if ((r = store_fsm_applied(fsm, &applied, NULL)) == 0 && applied != index) {
            store__fsm_set_errmsg(fsm, "restored snapshot %llu holds applied index %llu",
                                  (unsigned long long)index, (unsigned long long)applied);
            r = RFS_ECORRUPT;
        }
    }
    return r != 0 ? r : r2;
}
