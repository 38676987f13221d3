/* Segment files of the write-ahead log: names, creation by zero-filling (so that a data sync in
 * steady state has no file-system metadata to flush: the blocks are allocated and written
 * before the log uses them), and the background step that keeps segments ready ahead of the
 * writer, as LogCabin, cowsql and etcd do.
 *
 * A segment is prepared under a temporary name (seg-N.prep), filled, synced, renamed to seg-N,
 * and the directory synced; a crash leaves either a complete segment or a .prep file, which the
 * next open deletes. Sequence numbers are handed out in order, and a failed preparation retries
 * the same number, so the segments on disk always have consecutive numbers. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/wal/internal.h"

#define SEG_PREFIX  "seg-"
#define PREP_SUFFIX ".prep"

void wal__seg_name(char buf[32], uint64_t seq)
{
    snprintf(buf, 32, SEG_PREFIX "%016" PRIx64, seq);
}

int wal__sync(struct wal *wal, int fd)
{
    if (wal->sync != NULL)
        return wal->sync(fd, wal->sync_ctx);
    return fdatasync(fd) == 0 ? 0 : errno;
}

static int sync_dir(struct wal *wal)
{
    if (wal->sync != NULL)
        return wal->sync(wal->dir_fd, wal->sync_ctx);
    return fsync(wal->dir_fd) == 0 ? 0 : errno;
}

static int code_of(int err)
{
    return err == ENOSPC || err == EDQUOT ? RFS_ENOSPACE : err == ENOMEM ? RFS_ENOMEM : RFS_EIO;
}

int wal__seg_list(struct wal *wal, uint64_t **seqs, size_t *n)
{
    *seqs = NULL;
    *n = 0;
    int fd = dup(wal->dir_fd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        wal__set_err(wal, "listing %s: %s", wal->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RFS_EIO;
    }
    int rc = 0;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        size_t len = strlen(name);
        if (strncmp(name, SEG_PREFIX, 4) != 0 || len < 4 + 16)
            continue;
        char *end;
        uint64_t seq = strtoull(name + 4, &end, 16);
        if (end != name + 20)
            continue;
        if (strcmp(end, PREP_SUFFIX) == 0) { /* an interrupted preparation */
            unlinkat(wal->dir_fd, name, 0);
            continue;
        }
        if (*end != '\0')
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *p = realloc(*seqs, cap * sizeof *p);
            if (p == NULL) {
                rc = RFS_ENOMEM;
                break;
            }
            *seqs = p;
        }
        (*seqs)[(*n)++] = seq;
    }
    closedir(d);
    if (rc != 0) {
        free(*seqs);
        *seqs = NULL;
        *n = 0;
        wal__set_err(wal, "listing %s: out of memory", wal->dir);
        return rc;
    }
    for (size_t i = 1; i < *n; i++) /* insertion sort: directories are small */
        for (size_t j = i; j > 0 && (*seqs)[j - 1] > (*seqs)[j]; j--) {
            uint64_t t = (*seqs)[j];
            (*seqs)[j] = (*seqs)[j - 1];
            (*seqs)[j - 1] = t;
        }
    return 0;
}

/* Write zeros over [from, to) of fd. Returns 0 or an errno value. */
static int write_zeros(int fd, uint64_t from, uint64_t to)
{
    static const uint8_t zeros[64 << 10];
    while (from < to) {
        size_t k = to - from < sizeof zeros ? (size_t)(to - from) : sizeof zeros;
        ssize_t w = pwrite(fd, zeros, k, (off_t)from);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        from += (uint64_t)w;
    }
    return 0;
}

int wal__seg_create(struct wal *wal, uint64_t seq, struct wal__seg **out, char *msg, size_t len)
{
    char name[32], tmp[40];
    wal__seg_name(name, seq);
    snprintf(tmp, sizeof tmp, "%s" PREP_SUFFIX, name);
    const char *step = "creating";
    int err = 0;
    struct wal__seg *seg = calloc(1, sizeof *seg);
    if (seg == NULL) {
        snprintf(msg, len, "preparing segment %s in %s: out of memory", name, wal->dir);
        return RFS_ENOMEM;
    }
    int fd = openat(wal->dir_fd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = errno;
        goto err_free;
    }
    uint8_t header[WAL__SEG_HEADER];
    wal__seg_header_encode(header, seq, wal->cluster);
    step = "writing";
    if (pwrite(fd, header, sizeof header, 0) != (ssize_t)sizeof header) {
        err = errno ? errno : EIO;
        goto err_close;
    }
    if ((err = write_zeros(fd, WAL__SEG_HEADER, wal->segment_size)) != 0)
        goto err_close;
    step = "syncing";
    if ((err = wal__sync(wal, fd)) != 0)
        goto err_close;
    step = "renaming";
    if (renameat(wal->dir_fd, tmp, wal->dir_fd, name) != 0) {
        err = errno;
        goto err_close;
    }
    if ((err = sync_dir(wal)) != 0) {
        step = "syncing the directory for";
        unlinkat(wal->dir_fd, name, 0);
        goto err_close;
    }
    *seg =
        (struct wal__seg){.seq = seq, .fd = fd, .size = wal->segment_size, .end = WAL__SEG_HEADER};
    *out = seg;
    return 0;

err_close:
    close(fd);
    unlinkat(wal->dir_fd, tmp, 0);
err_free:
    free(seg);
    snprintf(msg, len, "%s segment %s in %s: %s", step, name, wal->dir, strerror(err));
    return code_of(err);
}

int wal__seg_grow(struct wal *wal, struct wal__seg *seg, uint64_t size, char *msg, size_t len)
{
    int err = write_zeros(seg->fd, seg->size, size);
    if (err == 0)
        err = wal__sync(wal, seg->fd);
    if (err != 0) {
        char name[32];
        wal__seg_name(name, seg->seq);
        snprintf(msg, len, "growing segment %s in %s to %llu bytes: %s", name, wal->dir,
                 (unsigned long long)size, strerror(err));
        return code_of(err);
    }
    seg->size = size;
    return 0;
}

void wal__seg_free(struct wal__seg *seg)
{
    if (seg == NULL)
        return;
    close(seg->fd);
    free(seg);
}

static void *prep_main(void *arg)
{
    struct wal *wal = arg;
    pthread_mutex_lock(&wal->prep_lock);
    for (;;) {
        while (!wal->is_prep_stopping && (wal->n_ready >= wal->prepare_ahead || wal->prep_err != 0))
            pthread_cond_wait(&wal->prep_cond, &wal->prep_lock);
        if (wal->is_prep_stopping)
            break;
        char msg[sizeof wal->prep_msg];
        struct wal__seg *seg = NULL;
        int rc = 0;
        if (wal->n_ready == wal->cap_ready) { /* room first: a prepared segment is never lost */
            size_t cap = wal->cap_ready ? 2 * wal->cap_ready : 4;
            struct wal__seg **p = realloc(wal->ready, cap * sizeof *p);
            if (p == NULL) {
                rc = RFS_ENOMEM;
                snprintf(msg, sizeof msg, "preparing a segment: out of memory");
            } else {
                wal->ready = p;
                wal->cap_ready = cap;
            }
        }
        if (rc == 0) {
            uint64_t seq = wal->next_seq;
            pthread_mutex_unlock(&wal->prep_lock);
            rc = wal__seg_create(wal, seq, &seg, msg, sizeof msg);
            pthread_mutex_lock(&wal->prep_lock);
        }
        if (rc == 0) {
            wal->ready[wal->n_ready++] = seg;
            wal->next_seq++;
        } else {
            wal->prep_err = rc;
            memcpy(wal->prep_msg, msg, sizeof msg);
        }
        pthread_cond_broadcast(&wal->prep_cond);
    }
    pthread_mutex_unlock(&wal->prep_lock);
    return NULL;
}

int wal__prep_start(struct wal *wal)
{
    if (pthread_create(&wal->prep_thread, NULL, prep_main, wal) != 0) {
        wal__set_err(wal, "starting the segment preparation thread: out of resources");
        return RFS_ENOMEM;
    }
    wal->has_prep_thread = true;
    return 0;
}

void wal__prep_stop(struct wal *wal)
{
    if (wal->has_prep_thread) {
        pthread_mutex_lock(&wal->prep_lock);
        wal->is_prep_stopping = true;
        pthread_cond_broadcast(&wal->prep_cond);
        pthread_mutex_unlock(&wal->prep_lock);
        pthread_join(wal->prep_thread, NULL);
        wal->has_prep_thread = false;
    }
    for (size_t i = 0; i < wal->n_ready; i++)
        wal__seg_free(wal->ready[i]);
    free(wal->ready);
    wal->ready = NULL;
    wal->n_ready = wal->cap_ready = 0;
}

int wal__seg_take(struct wal *wal, struct wal__seg **out)
{
    int rc = 0;
    pthread_mutex_lock(&wal->prep_lock);
    if (wal->prep_err != 0) { /* an old failure: the background step tries again now */
        wal->prep_err = 0;
        pthread_cond_broadcast(&wal->prep_cond);
    }
    while (wal->n_ready == 0 && wal->prep_err == 0)
        pthread_cond_wait(&wal->prep_cond, &wal->prep_lock);
    if (wal->n_ready > 0) {
        *out = wal->ready[0];
        memmove(wal->ready, wal->ready + 1, --wal->n_ready * sizeof *wal->ready);
    } else {
        rc = wal->prep_err; /* kept: the background step waits until the next take */
        wal__set_err(wal, "%s", wal->prep_msg);
    }
    pthread_cond_broadcast(&wal->prep_cond);
    pthread_mutex_unlock(&wal->prep_lock);
    return rc;
}
