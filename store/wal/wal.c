/* The write-ahead log's writer side: open and close, the batch write (records encoded into one
 * pwritev, one fdatasync, then published to readers), the snapshot record and compaction.
 *
 * Design notes:
 * 1. Only the writer thread mutates wal->log and wal->segs; it publishes a batch under the
 *    exclusive lock only after the batch is synced, so readers never see an entry that a crash
 *    could take back, and never wait for a sync.
 * 2. A batch never spans segments. A batch that does not fit in the current segment goes to
 *    the next prepared one, and the first batch of every segment starts with a HEAD record
 *    (log.c, invariant 5). A batch larger than a whole segment grows its segment with written
 *    zeros first.
 * 3. A failed write or sync makes the log sticky (SQLite's pager rule: never retry a failed
 *    fsync, the kernel may have dropped the pages). ENOSPC is not sticky when it is seen before
 *    the write (no segment could be prepared) or when the bytes the failed write may have left
 *    can be zeroed again; the log then stays writable.
 * 4. Compaction deletes a prefix of the segments, oldest first, none holding a live entry and
 *    never the segment being written; it runs after the record that dropped the entries is
 *    synced, so a crash in between leaves only segments that recovery replays and drops. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "lib/le.h"
#include "store/wal/internal.h"

#define INLINE_PAYLOAD 4096 /* smaller payloads are copied next to their header */

void wal__set_err(struct wal *wal, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&wal->msg_lock);
    va_start(ap, fmt);
    vsnprintf(wal->msg, sizeof wal->msg, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&wal->msg_lock);
}

char *wal_errmsg(struct wal *wal, char *buf, size_t size)
{
    pthread_mutex_lock(&wal->msg_lock);
    snprintf(buf, size, "%s", wal->msg);
    pthread_mutex_unlock(&wal->msg_lock);
    return buf;
}

static int refuse_if_sticky(struct wal *wal, const char *what)
{
    if (!atomic_load(&wal->is_sticky))
        return 0;
    pthread_mutex_lock(&wal->msg_lock);
    char first[WAL__MSG];
    memcpy(first, wal->sticky_msg, sizeof first);
    pthread_mutex_unlock(&wal->msg_lock);
    wal__set_err(wal, "%s: refused, the log failed earlier (%s); reopen it", what, first);
    return RFS_ESTICKY;
}

static void make_sticky(struct wal *wal)
{
    pthread_mutex_lock(&wal->msg_lock);
    memcpy(wal->sticky_msg, wal->msg, sizeof wal->msg);
    pthread_mutex_unlock(&wal->msg_lock);
    atomic_store(&wal->is_sticky, true);
}

static struct wal__seg *current(struct wal *wal)
{
    return wal->segs[wal->n_segs - 1];
}

/* Make the segment the writer uses next current (writer thread; exclusive lock inside). */
static int add_segment(struct wal *wal, struct wal__seg *seg)
{
    if (wal->n_segs == wal->cap_segs) {
        size_t cap = 2 * wal->cap_segs;
        struct wal__seg **p = realloc(wal->segs, cap * sizeof *p);
        if (p == NULL)
            return RFS_ENOMEM;
        pthread_rwlock_wrlock(&wal->lock);
        wal->segs = p;
        pthread_rwlock_unlock(&wal->lock);
        wal->cap_segs = cap;
    }
    pthread_rwlock_wrlock(&wal->lock);
    wal->segs[wal->n_segs++] = seg;
    pthread_rwlock_unlock(&wal->lock);
    return 0;
}

/* Room for n more records in wal->recs (HEAD and COMMIT included by the caller's count). */
static int reserve_recs(struct wal *wal, size_t n)
{
    if (n <= wal->cap_recs)
        return 0;
    size_t cap = wal->cap_recs ? wal->cap_recs : 64;
    while (cap < n)
        cap *= 2;
    struct wal__rec *p = realloc(wal->recs, cap * sizeof *p);
    if (p == NULL)
        return RFS_ENOMEM;
    wal->recs = p;
    wal->cap_recs = cap;
    return 0;
}

/* Room for n_entries more entries in the log's index, taken before the write so that
 * publishing a synced batch cannot fail. */
static int reserve_locs(struct wal *wal, size_t n_entries)
{
    if (wal->log.n + n_entries <= wal->log.cap)
        return 0;
    pthread_rwlock_wrlock(&wal->lock); /* the array moves */
    int rc = wal__log_reserve(&wal->log, n_entries);
    pthread_rwlock_unlock(&wal->lock);
    return rc;
}

static int reserve_scratch(struct wal *wal, size_t n)
{
    if (n <= wal->scratch_cap)
        return 0;
    uint8_t *p = realloc(wal->scratch, n);
    if (p == NULL)
        return RFS_ENOMEM;
    wal->scratch = p;
    wal->scratch_cap = n;
    return 0;
}

/* The segment the batch of `body` bytes (HEAD excluded) goes to, rolled or grown as needed. */
static int place(struct wal *wal, uint64_t body, const char *what)
{
    uint32_t head = wal__rec_size(WAL__HEAD, 0);
    struct wal__seg *seg = current(wal);
    bool is_fresh = seg->end == WAL__SEG_HEADER;
    if (seg->end + body + (is_fresh ? head : 0) > seg->size && !is_fresh) {
        int rc = wal__seg_take(wal, &seg);
        if (rc == 0 && (rc = add_segment(wal, seg)) != 0) {
            wal__seg_free(seg);
            wal__set_err(wal, "%s: out of memory", what);
        }
        if (rc != 0)
            return rc;
    }
    if (seg->end + body + head > seg->size && seg->end == WAL__SEG_HEADER) {
        char msg[WAL__MSG];
        uint64_t size = (WAL__SEG_HEADER + body + head + 4095) / 4096 * 4096;
        int rc = wal__seg_grow(wal, seg, size, msg, sizeof msg);
        if (rc != 0) {
            wal__set_err(wal, "%s: %s", what, msg);
            return rc;
        }
    }
    return 0;
}

/* Write bytes that a failed write may have left back to zeros (design note 3). */
static int unwrite(struct wal__seg *seg, uint64_t off, uint64_t len)
{
    uint8_t *zeros = calloc(1, (size_t)len);
    bool ok = zeros != NULL && pwrite(seg->fd, zeros, (size_t)len, (off_t)off) == (ssize_t)len;
    free(zeros);
    return ok ? 0 : -1;
}

static int write_all(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwritev(fd, iov, n < IOV_MAX ? n : IOV_MAX, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        off += (uint64_t)w;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

/* Encode the batch wal->recs[from..n] (n is its COMMIT record, whose count, length and CRC are
 * filled here) for offset off of its segment: headers and small payloads go to wal->scratch,
 * large payloads are referenced where they are. *iov_out is a malloc'd array for the caller to
 * free. Returns the iovec count, or -1 without memory. */
static int encode(struct wal *wal, size_t from, size_t n, uint64_t off, struct iovec **iov_out)
{
    static const uint8_t pad[WAL__ALIGN];
    size_t scratch = 0, n_iov = 1;
    for (size_t i = from; i <= n; i++) {
        struct wal__rec *r = &wal->recs[i];
        uint32_t len = r->kind == WAL__ENTRY ? r->len : 0;
        scratch += wal__rec_size(r->kind, 0) + (len < INLINE_PAYLOAD ? len + WAL__ALIGN : 0);
        n_iov += len >= INLINE_PAYLOAD ? 3 : 0;
    }
    struct iovec *iov = calloc(n_iov, sizeof *iov);
    if (iov == NULL || reserve_scratch(wal, scratch) != 0) {
        free(iov);
        return -1;
    }
    uint8_t *s = wal->scratch, *run = s;
    int k = 0;
    uint32_t batch_crc = 0;
    uint64_t start = off;
    for (size_t i = from; i <= n; i++) {
        struct wal__rec *r = &wal->recs[i];
        if (r->kind == WAL__COMMIT) {
            r->count = (uint32_t)(n - from);
            r->length = (uint32_t)(off - start);
            r->batch_crc = batch_crc;
        }
        r->off = off;
        size_t h = wal__rec_encode(s, r);
        uint8_t le[4];
        rfs_put_le32(le, r->crc);
        batch_crc = rfs_crc32c(batch_crc, le, 4);
        uint32_t len = r->kind == WAL__ENTRY ? r->len : 0, padding = r->size - (uint32_t)h - len;
        s += h;
        if (len < INLINE_PAYLOAD) {
            if (len > 0)
                memcpy(s, r->payload, len);
            memset(s + len, 0, padding);
            s += len + padding;
        } else {
            iov[k++] = (struct iovec){run, (size_t)(s - run)};
            iov[k++] = (struct iovec){(void *)r->payload, len};
            iov[k++] = (struct iovec){(void *)pad, padding};
            run = s;
        }
        off += r->size;
    }
    if (s > run)
        iov[k++] = (struct iovec){run, (size_t)(s - run)};
    *iov_out = iov;
    return k;
}

/* Write the n records in wal->recs[1..n] as one batch: HEAD (recs[0]) if the segment is fresh,
 * COMMIT (recs[n + 1]), one write, one sync, then publish. */
static int commit(struct wal *wal, size_t n, size_t n_entries, const char *what)
{
    int rc;
    char why[160];
    if ((rc = reserve_locs(wal, n_entries)) != 0) {
        wal__set_err(wal, "%s: out of memory", what);
        return rc;
    }
    uint64_t body = wal__rec_size(WAL__COMMIT, 0);
    for (size_t i = 1; i <= n; i++)
        body += wal->recs[i].size = wal__rec_size(wal->recs[i].kind, wal->recs[i].len);
    if ((rc = place(wal, body, what)) != 0)
        return rc;
    struct wal__seg *seg = current(wal);
    size_t from = seg->end == WAL__SEG_HEADER ? 0 : 1;
    wal__log_head(&wal->log, &wal->recs[0]);
    wal->recs[n + 1] = (struct wal__rec){.kind = WAL__COMMIT, .batch = wal->log.batch + 1};
    struct iovec *iov;
    int n_iov = encode(wal, from, n + 1, seg->end, &iov);
    if (n_iov < 0) {
        wal__set_err(wal, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    uint64_t size = wal->recs[n + 1].off + wal->recs[n + 1].size - seg->end;
    char name[32];
    wal__seg_name(name, seg->seq);
    int err = write_all(seg->fd, iov, n_iov, seg->end);
    free(iov);
    if (err != 0) {
        wal__set_err(wal, "%s: writing %llu bytes to segment %s in %s at offset %llu: %s", what,
                     (unsigned long long)size, name, wal->dir, (unsigned long long)seg->end,
                     strerror(err));
        if ((err == ENOSPC || err == EDQUOT) && unwrite(seg, seg->end, size) == 0)
            return RFS_ENOSPACE;
        make_sticky(wal);
        return RFS_EIO;
    }
    if ((err = wal__sync(wal, seg->fd)) != 0) {
        wal__set_err(wal, "%s: fdatasync of segment %s in %s after writing at offset %llu: %s",
                     what, name, wal->dir, (unsigned long long)seg->end, strerror(err));
        make_sticky(wal);
        return RFS_EIO;
    }
    pthread_rwlock_wrlock(&wal->lock);
    for (size_t i = from; i <= n + 1 && rc == 0; i++)
        rc = wal__log_apply(&wal->log, &wal->recs[i], seg, why, sizeof why);
    if (rc == 0)
        seg->end += size;
    pthread_rwlock_unlock(&wal->lock);
    if (rc != 0) { /* our own checks let through what replay refuses: a bug */
        wal__set_err(wal, "%s: the written batch breaks a rule of the log: %s", what, why);
        make_sticky(wal);
        return RFS_EIO;
    }
    return 0;
}

/* The API rules of wal_write (wal.h), checked before anything is written. */
static int check_batch(struct wal *wal, const struct wal_batch *b, uint64_t *truncate)
{
    const struct wal__log *l = &wal->log;
    uint64_t last = wal__log_last(l), prev_term = 0;
    *truncate = 0;
    if (b->truncate_from != 0 && b->truncate_from <= last) {
        if (b->truncate_from < l->first || b->truncate_from <= l->snap_index) {
            wal__set_err(wal,
                         "write: deleting from %llu would reach below the log %llu..%llu "
                         "or its snapshot %llu",
                         (unsigned long long)b->truncate_from, (unsigned long long)l->first,
                         (unsigned long long)last, (unsigned long long)l->snap_index);
            return RFS_ERANGE;
        }
        *truncate = b->truncate_from;
        last = b->truncate_from - 1;
    }
    if (b->has_state && b->term < l->term) {
        wal__set_err(wal, "write: term %llu is below the recorded term %llu",
                     (unsigned long long)b->term, (unsigned long long)l->term);
        return RFS_EINVAL;
    }
    wal__log_term(l, last, &prev_term);
    for (size_t i = 0; i < b->n; i++) {
        const struct wal_entry *e = &b->entries[i];
        if (e->index != last + 1 + i) {
            wal__set_err(wal, "write: entry %zu of the batch has index %llu, expected %llu", i,
                         (unsigned long long)e->index, (unsigned long long)(last + 1 + i));
            return RFS_ERANGE;
        }
        if (e->term < prev_term) {
            wal__set_err(wal, "write: entry %llu has term %llu, below the term %llu before it",
                         (unsigned long long)e->index, (unsigned long long)e->term,
                         (unsigned long long)prev_term);
            return RFS_EINVAL;
        }
        if (e->len > WAL_PAYLOAD_MAX || (e->len > 0 && e->payload == NULL)) {
            wal__set_err(wal, "write: entry %llu has an invalid payload (%zu bytes)",
                         (unsigned long long)e->index, e->len);
            return RFS_EINVAL;
        }
        prev_term = e->term;
    }
    return 0;
}

int wal_write(struct wal *wal, const struct wal_batch *b)
{
    uint64_t truncate;
    int rc = refuse_if_sticky(wal, "write");
    if (rc == 0)
        rc = check_batch(wal, b, &truncate);
    if (rc != 0)
        return rc;
    if (!b->has_state && truncate == 0 && b->n == 0)
        return 0;
    if ((rc = reserve_recs(wal, b->n + 4)) != 0) {
        wal__set_err(wal, "write: out of memory");
        return rc;
    }
    size_t n = 0;
    if (b->has_state)
        wal->recs[++n] = (struct wal__rec){
            .kind = WAL__STATE, .term = b->term, .vote = b->vote, .epoch = wal->log.epoch};
    if (truncate != 0)
        wal->recs[++n] = (struct wal__rec){.kind = WAL__TRUNCATE, .index = truncate};
    for (size_t i = 0; i < b->n; i++) {
        const struct wal_entry *e = &b->entries[i];
        wal->recs[++n] = (struct wal__rec){.kind = WAL__ENTRY,
                                           .index = e->index,
                                           .term = e->term,
                                           .type = e->type,
                                           .payload = e->payload,
                                           .len = (uint32_t)e->len};
    }
    return commit(wal, n, b->n, "write");
}

/* Write one record that wal__log_check accepts (refused as RFS_EINVAL otherwise). */
static int commit_one(struct wal *wal, const struct wal__rec *r, const char *what)
{
    char why[160];
    int rc = refuse_if_sticky(wal, what);
    if (rc != 0)
        return rc;
    if (wal__log_check(&wal->log, r, why, sizeof why) != 0) {
        wal__set_err(wal, "%s: refused: %s", what, why);
        return RFS_EINVAL;
    }
    if ((rc = reserve_recs(wal, 3)) != 0) {
        wal__set_err(wal, "%s: out of memory", what);
        return rc;
    }
    wal->recs[1] = *r;
    return commit(wal, 1, 0, what);
}

int wal_set_epoch(struct wal *wal, uint64_t epoch)
{
    struct wal__rec r = {
        .kind = WAL__STATE, .term = wal->log.term, .vote = wal->log.vote, .epoch = epoch};
    return commit_one(wal, &r, "set epoch");
}

/* Delete the oldest segments that hold no live entry (design note 4). */
static int compact(struct wal *wal, const char *what)
{
    struct wal__seg *keep = wal->log.n > 0 ? wal->log.locs[0].seg : current(wal);
    size_t k = 0;
    while (k + 1 < wal->n_segs && wal->segs[k] != keep)
        k++;
    if (k == 0)
        return 0;
    struct wal__seg **gone = malloc(k * sizeof *gone);
    if (gone == NULL)
        return 0; /* the segments stay until the next compaction */
    pthread_rwlock_wrlock(&wal->lock);
    memcpy(gone, wal->segs, k * sizeof *gone);
    memmove(wal->segs, wal->segs + k, (wal->n_segs - k) * sizeof *wal->segs);
    wal->n_segs -= k;
    pthread_rwlock_unlock(&wal->lock);
    int err = 0;
    char name[32] = "";
    for (size_t i = 0; i < k; i++) {
        if (err == 0) {
            wal__seg_name(name, gone[i]->seq);
            if (unlinkat(wal->dir_fd, name, 0) != 0)
                err = errno;
        }
        wal__seg_free(gone[i]);
    }
    free(gone);
    if (err == 0 && (err = wal__sync(wal, wal->dir_fd)) != 0)
        snprintf(name, sizeof name, "the directory");
    if (err != 0) {
        wal__set_err(wal, "%s: deleting segments in %s (%s): %s; the log stays usable", what,
                     wal->dir, name, strerror(err));
        return RFS_EIO;
    }
    return 0;
}

int wal_snapshot(struct wal *wal, uint64_t index, uint64_t term, uint64_t drop_through)
{
    struct wal__rec r = {
        .kind = WAL__SNAPSHOT, .index = index, .term = term, .through = drop_through};
    int rc = commit_one(wal, &r, "snapshot");
    return rc != 0 ? rc : compact(wal, "snapshot");
}

int wal_reset(struct wal *wal, uint64_t index, uint64_t term)
{
    struct wal__rec r = {.kind = WAL__RESET, .index = index, .term = term};
    int rc = commit_one(wal, &r, "reset");
    return rc != 0 ? rc : compact(wal, "reset");
}

static int check_options(const struct wal_options *o, char *err, size_t len)
{
    size_t n = o->cluster_id != NULL ? strlen(o->cluster_id) : 1;
    if (n == 0 || n > WAL_CLUSTER_ID_MAX) {
        snprintf(err, len, "a cluster ID has 1 to %d bytes, not %zu", WAL_CLUSTER_ID_MAX, n);
        return RFS_EINVAL;
    }
    if (o->segment_size % 4096 != 0 || (o->segment_size != 0 && o->segment_size < 65536)) {
        snprintf(err, len, "segment size %llu is not a multiple of 4096 of at least 64 KiB",
                 (unsigned long long)o->segment_size);
        return RFS_EINVAL;
    }
    return 0;
}

int wal_open(const char *dir, const struct wal_options *opts, struct wal **out, char *errbuf,
             size_t errlen)
{
    static const struct wal_options defaults;
    const struct wal_options *o = opts != NULL ? opts : &defaults;
    char scratch[8];
    if (errbuf == NULL) {
        errbuf = scratch;
        errlen = sizeof scratch;
    }
    *out = NULL;
    int rc = check_options(o, errbuf, errlen);
    if (rc != 0)
        return rc;
    struct wal *wal = calloc(1, sizeof *wal);
    if (wal == NULL || (wal->dir = strdup(dir)) == NULL) {
        free(wal);
        snprintf(errbuf, errlen, "opening the log in %s: out of memory", dir);
        return RFS_ENOMEM;
    }
    wal->dir_fd = -1;
    wal->segment_size = o->segment_size ? o->segment_size : WAL_SEGMENT_DEFAULT;
    wal->prepare_ahead = o->prepare_ahead ? o->prepare_ahead : 2;
    wal->sync = o->sync;
    wal->sync_ctx = o->sync_ctx;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Readers come and go all the time; the writer must not starve behind them. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&wal->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&wal->msg_lock, NULL);
    pthread_mutex_init(&wal->prep_lock, NULL);
    pthread_cond_init(&wal->prep_cond, NULL);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        wal__set_err(wal, "creating %s: %s", dir, strerror(errno));
        rc = errno == ENOSPC ? RFS_ENOSPACE : RFS_EIO;
        goto err;
    }
    if ((wal->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        wal__set_err(wal, "opening %s: %s", dir, strerror(errno));
        rc = RFS_EIO;
        goto err;
    }
    if (flock(wal->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        wal__set_err(wal, "the log in %s is in use by another process (or open twice): %s", dir,
                     strerror(errno));
        rc = RFS_EINVAL;
        goto err;
    }
    if ((rc = wal__recover(wal, o->cluster_id)) != 0 || (rc = wal__prep_start(wal)) != 0)
        goto err;
    *out = wal;
    return 0;
err:
    wal_errmsg(wal, errbuf, errlen);
    wal_close(wal);
    return rc;
}

void wal_close(struct wal *wal)
{
    if (wal == NULL)
        return;
    wal__prep_stop(wal);
    for (size_t i = 0; i < wal->n_segs; i++)
        wal__seg_free(wal->segs[i]);
    free(wal->segs);
    wal__log_free(&wal->log);
    free(wal->scratch);
    free(wal->recs);
    if (wal->dir_fd >= 0)
        close(wal->dir_fd);
    pthread_rwlock_destroy(&wal->lock);
    pthread_mutex_destroy(&wal->msg_lock);
    pthread_mutex_destroy(&wal->prep_lock);
    pthread_cond_destroy(&wal->prep_cond);
    free(wal->dir);
    free(wal);
}
