/* Recovery of the write-ahead log at open: read every segment, replay every batch whose commit
 * record checks out, accept a torn tail only at the end of the last segment holding data (and
 * zero it), and refuse anything else with the segment and the offset. The rules a torn tail is
 * told from damage by are the design note in record.c; the rules the records obey are in
 * log.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/wal/internal.h"

struct replay {
    struct wal *wal;
    struct wal__seg *seg;
    bool is_first_batch;
    uint64_t bad_off;
    char why[160];
};

static int on_batch(void *ctx, const struct wal__rec *recs, size_t n)
{
    struct replay *c = ctx;
    if (c->is_first_batch && recs[0].kind != WAL__HEAD) {
        c->bad_off = recs[0].off;
        snprintf(c->why, sizeof c->why, "the segment does not start with a head record");
        return RFS_ECORRUPT;
    }
    c->is_first_batch = false;
    for (size_t i = 0; i < n; i++) {
        int rc = wal__log_apply(&c->wal->log, &recs[i], c->seg, c->why, sizeof c->why);
        if (rc != 0) {
            c->bad_off = recs[i].off;
            return rc;
        }
    }
    return 0;
}

/* What the scan of one segment found, kept until we know which segment is the last with data. */
struct found {
    struct wal__seg *seg;
    uint64_t data_end;
    enum wal__tail tail;
    uint64_t bad_off;
    char why[160];
};

static int read_all(int fd, uint8_t **buf, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    *len = (size_t)st.st_size;
    if ((*buf = malloc(*len ? *len : 1)) == NULL)
        return ENOMEM;
    for (size_t got = 0; got < *len;) {
        ssize_t r = pread(fd, *buf + got, *len - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int err = r < 0 ? errno : EIO;
            free(*buf);
            *buf = NULL;
            return err;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Open, read and scan segment seq into *f (the log replays as a side effect). */
static int scan_segment(struct wal *wal, uint64_t seq, bool is_first, const char *want_cluster,
                        struct found *f)
{
    char name[32], cluster[WAL_CLUSTER_ID_MAX + 1], why[160];
    wal__seg_name(name, seq);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc, err;
    struct wal__seg *seg = calloc(1, sizeof *seg);
    if (seg == NULL)
        return RFS_ENOMEM;
    seg->fd = openat(wal->dir_fd, name, O_RDWR | O_CLOEXEC);
    err = seg->fd < 0 ? errno : read_all(seg->fd, &buf, &len);
    if (err != 0) {
        wal__set_err(wal, "reading segment %s in %s: %s", name, wal->dir, strerror(err));
        rc = err == ENOMEM ? RFS_ENOMEM : RFS_EIO;
        goto err_seg;
    }
    uint64_t got_seq;
    if ((rc = wal__seg_header_decode(buf, len, &got_seq, cluster, why, sizeof why)) != 0) {
        wal__set_err(wal, "segment %s in %s, offset 0: %s", name, wal->dir, why);
        goto err_buf;
    }
    if (got_seq != seq) {
        rc = RFS_ECORRUPT;
        wal__set_err(wal, "segment %s in %s, offset 0: its header names segment %llu", name,
                     wal->dir, (unsigned long long)got_seq);
        goto err_buf;
    }
    if (is_first && want_cluster != NULL && strcmp(cluster, want_cluster) != 0) {
        rc = RFS_EINVAL;
        wal__set_err(wal,
                     "the log in %s belongs to cluster '%s', not to cluster '%s': start with its "
                     "own cluster ID or use another data directory",
                     wal->dir, cluster, want_cluster);
        goto err_buf;
    }
    if (is_first) {
        memcpy(wal->cluster, cluster, sizeof cluster);
    } else if (strcmp(cluster, wal->cluster) != 0) {
        rc = RFS_ECORRUPT;
        wal__set_err(wal, "segment %s in %s, offset 0: belongs to cluster '%s', the log to '%s'",
                     name, wal->dir, cluster, wal->cluster);
        goto err_buf;
    }
    seg->seq = seq;
    seg->size = len;
    struct replay c = {.wal = wal, .seg = seg, .is_first_batch = true};
    struct wal__scan s = {.batch = on_batch, .ctx = &c};
    if ((rc = wal__scan(buf, len, &s)) != 0) {
        wal__set_err(wal, "segment %s in %s, offset %llu: %s", name, wal->dir,
                     (unsigned long long)(rc == RFS_ENOMEM ? s.bad_off : c.bad_off),
                     rc == RFS_ENOMEM ? s.why : c.why);
        goto err_buf;
    }
    free(buf);
    seg->end = s.end;
    *f = (struct found){.seg = seg, .data_end = s.data_end, .tail = s.tail, .bad_off = s.bad_off};
    memcpy(f->why, s.why, sizeof f->why);
    return 0;

err_buf:
    free(buf);
err_seg:
    if (seg->fd >= 0)
        close(seg->fd);
    free(seg);
    return rc;
}

/* Report what follows the last good batch of f as damage. Returns RFS_ECORRUPT. */
static int damaged(struct wal *wal, const struct found *f)
{
    char name[32];
    wal__seg_name(name, f->seg->seq);
    wal__set_err(wal,
                 "segment %s in %s, offset %llu: %s%s; the log is damaged before its end and is "
                 "not used",
                 name, wal->dir, (unsigned long long)f->bad_off, f->why,
                 f->tail == WAL__TAIL_TORN ? " (an unfinished batch before later data)" : "");
    return RFS_ECORRUPT;
}

/* Zero [from, to) of the last segment and sync: a torn batch must not be read again as the
 * start of a later one. */
static int zero_tail(struct wal *wal, struct wal__seg *seg, uint64_t from, uint64_t to)
{
    uint8_t *zeros = calloc(1, (size_t)(to - from));
    int err = zeros == NULL ? ENOMEM : 0;
    if (err == 0 &&
        pwrite(seg->fd, zeros, (size_t)(to - from), (off_t)from) != (ssize_t)(to - from))
        err = errno ? errno : EIO;
    free(zeros);
    if (err == 0)
        err = wal__sync(wal, seg->fd);
    if (err != 0) {
        char name[32];
        wal__seg_name(name, seg->seq);
        wal__set_err(wal, "zeroing the torn tail of segment %s in %s at offset %llu: %s", name,
                     wal->dir, (unsigned long long)from, strerror(err));
        return err == ENOSPC ? RFS_ENOSPACE : RFS_EIO;
    }
    return 0;
}

static int create_first(struct wal *wal, const char *want_cluster)
{
    if (want_cluster == NULL) {
        wal__set_err(wal, "%s holds no log, and no cluster ID was given to create one", wal->dir);
        return RFS_EINVAL;
    }
    snprintf(wal->cluster, sizeof wal->cluster, "%s", want_cluster);
    if ((wal->segs = calloc(1, sizeof *wal->segs)) == NULL)
        return RFS_ENOMEM;
    wal->cap_segs = 1;
    char msg[WAL__MSG];
    int rc = wal__seg_create(wal, 1, &wal->segs[0], msg, sizeof msg);
    if (rc != 0) {
        wal__set_err(wal, "%s", msg);
        return rc;
    }
    wal->n_segs = 1;
    wal->next_seq = 2;
    return 0;
}

int wal__recover(struct wal *wal, const char *want_cluster)
{
    uint64_t *seqs;
    size_t n, n_found = 0;
    struct found *found = NULL;
    int rc = wal__seg_list(wal, &seqs, &n);
    if (rc != 0)
        return rc;
    wal->log = (struct wal__log){.first = 1, .base = 1, .is_fresh = n > 0};
    if (n == 0) {
        rc = create_first(wal, want_cluster);
        goto done;
    }
    for (size_t i = 1; i < n; i++)
        if (seqs[i] != seqs[i - 1] + 1) {
            char a[32], b[32];
            wal__seg_name(a, seqs[i - 1]);
            wal__seg_name(b, seqs[i]);
            wal__set_err(wal, "log in %s: segments between %s and %s are missing", wal->dir, a, b);
            rc = RFS_ECORRUPT;
            goto done;
        }
    if ((found = calloc(n, sizeof *found)) == NULL) {
        rc = RFS_ENOMEM;
        goto done;
    }
    size_t last_data = 0;
    for (; n_found < n; n_found++) {
        rc = scan_segment(wal, seqs[n_found], n_found == 0, want_cluster, &found[n_found]);
        if (rc == RFS_ECORRUPT) { /* damage at the end of an earlier segment is the cause */
            for (size_t i = 0; i < n_found; i++)
                if (found[i].tail != WAL__TAIL_CLEAN) {
                    rc = damaged(wal, &found[i]);
                    break;
                }
        }
        if (rc != 0)
            goto done;
        if (found[n_found].data_end > WAL__SEG_HEADER)
            last_data = n_found;
    }
    for (size_t i = 0; i <= last_data; i++) {
        struct found *f = &found[i];
        if (f->tail == WAL__TAIL_CLEAN || (i == last_data && f->tail == WAL__TAIL_TORN))
            continue;
        rc = damaged(wal, f);
        goto done;
    }
    if (wal->log.base != wal->log.first) {
        char name[32];
        wal__seg_name(name, seqs[0]);
        wal__set_err(wal, "log in %s: entries %llu..%llu are missing (segments before %s lost)",
                     wal->dir, (unsigned long long)wal->log.first,
                     (unsigned long long)wal->log.base - 1, name);
        rc = RFS_ECORRUPT;
        goto done;
    }
    struct found *w = &found[last_data];
    if (w->data_end > w->seg->end && (rc = zero_tail(wal, w->seg, w->seg->end, w->data_end)) != 0)
        goto done;
    if ((wal->segs = calloc(last_data + 1, sizeof *wal->segs)) == NULL ||
        (wal->ready = calloc(n - last_data, sizeof *wal->ready)) == NULL) {
        rc = RFS_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (i <= last_data)
            wal->segs[wal->n_segs++] = found[i].seg;
        else
            wal->ready[wal->n_ready++] = found[i].seg;
        found[i].seg = NULL;
    }
    wal->cap_segs = last_data + 1;
    wal->cap_ready = n - last_data;
    wal->next_seq = seqs[n - 1] + 1;
    wal->log.is_fresh = false; /* segments without a batch hold an empty log */
done:
    for (size_t i = 0; i < n_found; i++)
        if (found[i].seg != NULL)
            wal__seg_free(found[i].seg);
    free(found);
    free(seqs);
    if (rc == RFS_ENOMEM)
        wal__set_err(wal, "recovering the log in %s: out of memory", wal->dir);
    if (rc == 0)
        wal->log.has_batch = true; /* batch 0 when no batch was found */
    return rc;
}
