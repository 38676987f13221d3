/* Reads of the write-ahead log from any thread: bounds, terms, entries and iterators.
 * Each read holds the shared lock while it finds an entry and reads it from its segment (the
 * writer publishes under the exclusive lock, and compaction closes segments under it), and
 * checks the record's CRC before returning a byte of it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "lib/le.h"
#include "store/wal/internal.h"

#define ENTRY_PREFIX (WAL__REC_HEADER + 16) /* header, index, term */

struct wal_iter {
    struct wal *wal;
    uint64_t next, hi;
    bool is_done;
    uint8_t *buf;
    size_t cap;
};

static bool is_present(const struct wal__log *l, uint64_t index)
{
    return index >= l->base && index - l->base < l->n;
}

/* Read entry index (present; shared lock held) with its payload into dst (loc->len bytes). */
static int read_entry(struct wal *wal, uint64_t index, uint8_t *dst, struct wal_entry *out)
{
    const struct wal__loc *loc = &wal->log.locs[index - wal->log.base];
    uint8_t h[ENTRY_PREFIX];
    struct iovec iov[2] = {{h, sizeof h}, {dst, loc->len}};
    ssize_t got = preadv(loc->seg->fd, iov, loc->len > 0 ? 2 : 1, (off_t)loc->off);
    char name[32];
    wal__seg_name(name, loc->seg->seq);
    if (got != (ssize_t)(sizeof h + loc->len)) {
        wal__set_err(wal, "reading entry %llu from segment %s in %s at offset %llu: %s",
                     (unsigned long long)index, name, wal->dir, (unsigned long long)loc->off,
                     got < 0 ? strerror(errno) : "short read");
        return RFS_EIO;
    }
    uint32_t crc = rfs_crc32c(rfs_crc32c(0, h + 4, sizeof h - 4), dst, loc->len);
    if (rfs_get_le32(h) != crc || h[4] != WAL__ENTRY || rfs_get_le32(h + 8) != 16 + loc->len ||
        rfs_get_le64(h + WAL__REC_HEADER) != index ||
        rfs_get_le64(h + WAL__REC_HEADER + 8) != loc->term) {
        wal__set_err(wal, "entry %llu in segment %s in %s at offset %llu is corrupt",
                     (unsigned long long)index, name, wal->dir, (unsigned long long)loc->off);
        return RFS_ECORRUPT;
    }
    *out = (struct wal_entry){
        .index = index, .term = loc->term, .type = h[5], .len = loc->len, .payload = dst};
    return 0;
}

void wal_bounds(struct wal *wal, uint64_t *first, uint64_t *last)
{
    pthread_rwlock_rdlock(&wal->lock);
    *first = wal->log.first;
    *last = wal__log_last(&wal->log);
    pthread_rwlock_unlock(&wal->lock);
}

int wal_term_at(struct wal *wal, uint64_t index, uint64_t *term)
{
    int rc = RFS_ENOTFOUND;
    pthread_rwlock_rdlock(&wal->lock);
    if (is_present(&wal->log, index)) {
        *term = wal->log.locs[index - wal->log.base].term;
        rc = 0;
    }
    pthread_rwlock_unlock(&wal->lock);
    return rc;
}

static int not_found(struct wal *wal, uint64_t index)
{
    wal__set_err(wal, "entry %llu is not in the log %llu..%llu", (unsigned long long)index,
                 (unsigned long long)wal->log.first, (unsigned long long)wal__log_last(&wal->log));
    return RFS_ENOTFOUND;
}

int wal_entry_get(struct wal *wal, uint64_t index, struct wal_entry *out)
{
    int rc;
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&wal->lock);
    if (!is_present(&wal->log, index)) {
        rc = not_found(wal, index);
        goto out;
    }
    uint32_t len = wal->log.locs[index - wal->log.base].len;
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL) {
        rc = RFS_ENOMEM;
        goto out;
    }
    if ((rc = read_entry(wal, index, buf, out)) != 0 || len == 0) {
        free(buf);
        out->payload = NULL;
    }
out:
    pthread_rwlock_unlock(&wal->lock);
    return rc;
}

int wal_iter_open(struct wal *wal, uint64_t lo, uint64_t hi, struct wal_iter **out)
{
    *out = NULL;
    if (lo == 0 || lo > hi) {
        wal__set_err(wal, "iterating over %llu..%llu: not a range", (unsigned long long)lo,
                     (unsigned long long)hi);
        return RFS_EINVAL;
    }
    struct wal_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return RFS_ENOMEM;
    *it = (struct wal_iter){.wal = wal, .next = lo, .hi = hi};
    *out = it;
    return 0;
}

int wal_iter_next(struct wal_iter *it, struct wal_entry *out)
{
    struct wal *wal = it->wal;
    int rc = RFS_ENOTFOUND;
    if (it->is_done || it->next > it->hi)
        return rc;
    pthread_rwlock_rdlock(&wal->lock);
    if (!is_present(&wal->log, it->next))
        goto out;
    uint32_t len = wal->log.locs[it->next - wal->log.base].len;
    if (len > it->cap) {
        uint8_t *p = realloc(it->buf, len);
        if (p == NULL) {
            rc = RFS_ENOMEM;
            goto out;
        }
        it->buf = p;
        it->cap = len;
    }
    if ((rc = read_entry(wal, it->next, it->buf, out)) == 0)
        it->next++;
    else
        it->is_done = true; /* damage ends the iteration */
out:
    pthread_rwlock_unlock(&wal->lock);
    return rc;
}

void wal_iter_close(struct wal_iter *it)
{
    if (it == NULL)
        return;
    free(it->buf);
    free(it);
}

void wal_state_get(struct wal *wal, struct wal_state *out)
{
    pthread_rwlock_rdlock(&wal->lock);
    *out = (struct wal_state){.term = wal->log.term,
                              .vote = wal->log.vote,
                              .epoch = wal->log.epoch,
                              .snapshot_index = wal->log.snap_index,
                              .snapshot_term = wal->log.snap_term};
    pthread_rwlock_unlock(&wal->lock);
}

void wal_cluster_id(struct wal *wal, char id[WAL_CLUSTER_ID_MAX + 1])
{
    memcpy(id, wal->cluster, WAL_CLUSTER_ID_MAX + 1);
}
