/* Offline recovery of a node whose cluster lost its quorum for good (raft_runtime_recover). */
#include <stdio.h>
#include <stdlib.h>

#include "raft/runtime/internal.h"
#include "lib/error.h"

int raft_runtime_recover(const char *data_dir, const struct raft_configuration *conf,
                         uint64_t *epoch_out, char *err, size_t errlen)
{
    char path[4096], msg[256];
    snprintf(path, sizeof path, "%s/log", data_dir);
    struct store_log *log;
    int rc = store_log_open(path, NULL, &log, msg, sizeof msg);
    if (rc != 0) {
        snprintf(err, errlen, "opening the log in %s: %s", path, msg);
        return RAFT_ESTORAGE;
    }
    uint64_t term = 0, first = 0, last = 0, last_term = 0, snap = 0, snap_term = 0, epoch = 0;
    if ((rc = store_log_get_term(log, &term)) != 0 ||
        (rc = store_log_get_epoch(log, &epoch)) != 0 ||
        (rc = store_log_bounds(log, &first, &last)) != 0)
        goto err_store;
    rc = store_log_get_snapshot_meta(log, &snap, &snap_term);
    if (rc != 0 && rc != RFS_ENOTFOUND)
        goto err_store;
    if (last != 0) {
        if ((rc = store_log_term_at(log, last, &last_term)) != 0)
            goto err_store;
    } else {
        last = snap;
        last_term = snap_term;
    }
    if (last == 0) {
        store_log_close(log);
        snprintf(err, errlen, "%s holds no log and no snapshot: nothing to recover", data_dir);
        return RAFT_EINVAL;
    }
    /* A term above any this node has seen: the forced entry can never match an entry that a
     * lost peer holds at the same index. */
    uint64_t new_term = (term > last_term ? term : last_term) + 1;
    uint8_t buf[2 + RAFT_MAX_SERVERS * (10 + RAFT_ADDRESS_MAX)];
    struct raft_entry e;
    if ((rc = raft_recover_entry(conf, last, new_term, buf, &e)) != 0) {
        store_log_close(log);
        snprintf(err, errlen, "the new configuration: %s", raft_strerror(rc));
        return rc;
    }
    struct store_log_entry se = {
        .index = e.index, .term = e.term, .type = e.type, .len = e.len, .payload = e.data};
    struct store_log_batch b = {
        .has_hard_state = true, .term = new_term, .vote = 0, .entries = &se, .n = 1};
    if ((rc = store_log_write(log, &b)) != 0 || (rc = store_log_set_epoch(log, epoch + 1)) != 0)
        goto err_store;
    store_log_close(log);
    if (epoch_out != NULL)
        *epoch_out = epoch + 1;
    return 0;

err_store:
    store_log_errmsg(log, msg, sizeof msg);
    snprintf(err, errlen, "recovering %s: %s (%s)", data_dir, rfs_strerror(rc), msg);
    store_log_close(log);
    return RAFT_ESTORAGE;
}
