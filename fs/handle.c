/* Open files: each handle buffers its writes in memory (bounded by the maximum file size) and
 * commits them on flush, fsync and release, one WRITE proposal per contiguous range, answering
 * once every range is committed. A range is one log entry, so no node ever sees part of it.
 *
 * Invariants (all under fs->lock):
 * 1. A handle's extents are sorted, and neither overlap nor touch: a range written in pieces is
 *    committed as one.
 * 2. At most one commit of a handle is in flight (is_flushing); flush/fsync/release requests
 *    arriving meanwhile wait in `queued` and are answered by the next commit, which starts
 *    when the current one completes. So commits of one handle apply in the order of the calls.
 * 3. A handle is freed only after its release was answered, and its release is answered only
 *    by the last commit (the kernel sends nothing on a handle after its release).
 * 4. A handle opened with O_TRUNC (is_replace) commits its first buffer as one REPLACE of the
 *    whole file, so no node ever sees the file empty or half written; until then this node
 *    shows the file as the buffer alone.
 * 5. A commit that fails gives the handle back what it did not commit (a REPLACE stays a
 *    REPLACE), under what was buffered since, so the next flush, fsync or release commits it
 *    again: a close() after a failed fsync() succeeds only if the data is then committed. If
 *    the bytes cannot be kept (no memory), the handle's next commit fails with EIO. A failed
 *    release has no caller left to tell.
 * 6. Once a lock session under which a lock was asked for through a handle is lost, writes
 *    through the handle fail with EIO and its commits drop what it buffered and fail with EIO
 *    (as Linux's NFS client does for lost locks): the writer may no longer hold the lock it
 *    wrote under, and the next holder, on any node, must not find its writes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/internal.h"

struct fs_handle *fs__handle_new(uint64_t ino)
{
    struct fs_handle *h = calloc(1, sizeof *h);
    if (h != NULL)
        h->ino = ino;
    return h;
}

void fs__handle_attach(struct fs *fs, struct fs_handle *h, uint64_t ino)
{
    pthread_mutex_lock(&fs->lock);
    h->ino = ino;
    h->next = fs->handles;
    fs->handles = h;
    pthread_mutex_unlock(&fs->lock);
}

/* Take h off fs->handles, if it is listed. Under fs->lock. */
static void detach_locked(struct fs *fs, struct fs_handle *h)
{
    struct fs_handle **p = &fs->handles;
    while (*p != NULL && *p != h)
        p = &(*p)->next;
    if (*p == h)
        *p = h->next;
}

void fs__handle_detach(struct fs *fs, struct fs_handle *h)
{
    pthread_mutex_lock(&fs->lock);
    detach_locked(fs, h);
    pthread_mutex_unlock(&fs->lock);
}

static void free_extents(struct fs_extent *ext, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ext[i].data);
    free(ext);
}

void fs__handle_free(struct fs_handle *h)
{
    if (h == NULL)
        return;
    free_extents(h->ext, h->n_ext);
    if (h->snap != NULL) {
        atomic_fetch_sub(&h->snap_fs->snap_bytes, h->snap_size);
        free(h->snap);
    }
    free(h);
}

/* End of h's buffered ranges (invariant 1: the last one ends last), or of its replacement. */
static uint64_t handle_end(const struct fs_handle *h)
{
    uint64_t end = h->is_replace ? h->replace_size : 0;
    if (h->n_ext > 0 && h->ext[h->n_ext - 1].off + h->ext[h->n_ext - 1].len > end)
        end = h->ext[h->n_ext - 1].off + h->ext[h->n_ext - 1].len;
    return end;
}

uint64_t fs__local_size(struct fs *fs, uint64_t ino, uint64_t committed)
{
    uint64_t end = 0;
    bool is_replaced = false;
    pthread_mutex_lock(&fs->lock);
    for (struct fs_handle *h = fs->handles; h != NULL; h = h->next)
        if (h->ino == ino) {
            is_replaced |= h->is_replace;
            if (handle_end(h) > end)
                end = handle_end(h);
        }
    pthread_mutex_unlock(&fs->lock);
    return is_replaced || end > committed ? end : committed;
}

bool fs__dirty_truncate(struct fs *fs, uint64_t ino, uint64_t size)
{
    bool is_taken = false;
    pthread_mutex_lock(&fs->lock);
    for (struct fs_handle *h = fs->handles; h != NULL; h = h->next) {
        if (h->ino != ino)
            continue;
        if (h->is_replace) {
            h->replace_size = size;
            is_taken = true;
        }
        while (h->n_ext > 0 && h->ext[h->n_ext - 1].off >= size)
            free(h->ext[--h->n_ext].data);
        if (h->n_ext > 0) {
            struct fs_extent *last = &h->ext[h->n_ext - 1];
            if (last->off + last->len > size)
                last->len = (size_t)(size - last->off);
        }
    }
    pthread_mutex_unlock(&fs->lock);
    return is_taken;
}

void fs__dirty_punch(struct fs *fs, uint64_t ino, uint64_t off, uint64_t end)
{
    pthread_mutex_lock(&fs->lock);
    for (struct fs_handle *h = fs->handles; h != NULL; h = h->next) {
        if (h->ino != ino)
            continue;
        size_t kept = 0;
        for (size_t i = 0; i < h->n_ext; i++) {
            struct fs_extent *e = &h->ext[i];
            uint64_t lo = e->off > off ? e->off : off;
            uint64_t hi = e->off + e->len < end ? e->off + e->len : end;
            if (lo == e->off && hi == e->off + e->len) {
                free(e->data); /* wholly inside: invariant 1 holds without it */
                continue;
            }
            if (lo < hi)
                memset(e->data + (lo - e->off), 0, (size_t)(hi - lo));
            h->ext[kept++] = *e;
        }
        h->n_ext = kept;
    }
    pthread_mutex_unlock(&fs->lock);
}

bool fs__handle_replaced(struct fs *fs, struct fs_handle *h, uint64_t *end)
{
    if (h == NULL)
        return false;
    pthread_mutex_lock(&fs->lock);
    bool is_replace = h->is_replace;
    *end = handle_end(h);
    pthread_mutex_unlock(&fs->lock);
    return is_replace;
}

size_t fs__handle_overlay(struct fs *fs, struct fs_handle *h, uint64_t off, uint8_t *buf,
                          size_t len)
{
    size_t end = 0;
    if (h == NULL)
        return 0;
    pthread_mutex_lock(&fs->lock);
    for (size_t i = 0; i < h->n_ext; i++) {
        const struct fs_extent *e = &h->ext[i];
        uint64_t lo = e->off > off ? e->off : off;
        uint64_t hi = e->off + e->len < off + len ? e->off + e->len : off + len;
        if (lo >= hi)
            continue;
        memcpy(buf + (lo - off), e->data + (lo - e->off), (size_t)(hi - lo));
        if (hi - off > end)
            end = (size_t)(hi - off);
    }
    pthread_mutex_unlock(&fs->lock);
    return end;
}

/* Merge [off, off + len) of data into h's extents (invariant 1). Under fs->lock. Returns 0 or
 * ENOMEM (nothing changed). */
static int buffer_write(struct fs_handle *h, uint64_t off, const char *data, size_t len)
{
    uint64_t end = off + len;
    /* Extents [first, last) overlap or touch the new range. */
    size_t first = 0;
    while (first < h->n_ext && h->ext[first].off + h->ext[first].len < off)
        first++;
    size_t last = first;
    while (last < h->n_ext && h->ext[last].off <= end)
        last++;
    uint64_t lo = off, hi = end;
    if (last > first) {
        if (h->ext[first].off < lo)
            lo = h->ext[first].off;
        struct fs_extent *l = &h->ext[last - 1];
        if (l->off + l->len > hi)
            hi = l->off + l->len;
    }
    uint8_t *merged = malloc(hi - lo ? (size_t)(hi - lo) : 1);
    if (merged == NULL)
        return ENOMEM;
    if (last == first && h->n_ext == h->cap_ext) {
        size_t cap = h->cap_ext ? 2 * h->cap_ext : 4;
        struct fs_extent *ext = realloc(h->ext, cap * sizeof *ext);
        if (ext == NULL) {
            free(merged);
            return ENOMEM;
        }
        h->ext = ext;
        h->cap_ext = cap;
    }
    for (size_t i = first; i < last; i++) {
        memcpy(merged + (h->ext[i].off - lo), h->ext[i].data, h->ext[i].len);
        free(h->ext[i].data);
    }
    memcpy(merged + (off - lo), data, len);
    struct fs_extent n = {.off = lo, .len = (size_t)(hi - lo), .data = merged};
    if (last == first) {
        memmove(&h->ext[first + 1], &h->ext[first], (h->n_ext - first) * sizeof *h->ext);
        h->n_ext++;
    } else {
        memmove(&h->ext[first + 1], &h->ext[last], (h->n_ext - last) * sizeof *h->ext);
        h->n_ext -= last - first - 1;
    }
    h->ext[first] = n;
    return 0;
}

void fs__write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
               struct fuse_file_info *fi)
{
    (void)ino;
    struct fs *fs = fs__of(req);
    struct fs_handle *h = fs__handle_of(fi);
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if ((uint64_t)off + size > fs->opts.max_file_size) {
        fuse_reply_err(req, EFBIG);
        return;
    }
    if (size == 0) {
        fuse_reply_write(req, 0);
        return;
    }
    if (fs__locks_lost_by(fs, h)) {
        fuse_reply_err(req, EIO); /* invariant 6 */
        return;
    }
    pthread_mutex_lock(&fs->lock);
    int err = buffer_write(h, (uint64_t)off, buf, size);
    pthread_mutex_unlock(&fs->lock);
    if (err != 0)
        fuse_reply_err(req, err);
    else
        fuse_reply_write(req, size);
}

/* --- commits ------------------------------------------------------------------------------ */

/* One commit of a handle: its ranges, proposed together; the requests it answers. */
struct commit {
    struct fs *fs;
    struct fs_handle *h;
    uint64_t ino;
    struct fs_extent *ext;
    size_t n_ext;
    struct fs_flush_req *reqs;
    bool is_replace;       /* the commit is one REPLACE of the whole file (invariant 4) */
    uint64_t replace_size; /* is_replace: the handle's replace_size when the commit began */
    pthread_mutex_t lock;  /* pending, err and is_failed */
    size_t pending;
    int err;
    bool *is_failed; /* per extent: its range was not committed (for a REPLACE: [0], all) */
};

static void start_commit(struct fs *fs, struct fs_handle *h);

/* Answer q after its commit, with err: through its continuation, or directly unless it was
 * interrupted and answered EINTR already; free it. */
static void answer(struct fs_flush_req *q, int err)
{
    if (q->then.fn != NULL)
        q->then.fn(q->then.arg, q->req, err);
    else if (q->is_release || fs__wait_claim(&q->wait))
        fuse_reply_err(q->req, err);
    free(q);
}

/* A commit failed (invariant 5): give h back the ranges that were not committed, under what it
 * buffered since the commit began, which is newer. Under fs->lock. Returns 0 or ENOMEM (some
 * bytes could not be kept). */
static int keep_failed_locked(struct fs_handle *h, struct commit *c)
{
    struct fs_extent *newer = h->ext;
    size_t n_newer = h->n_ext;
    h->ext = NULL;
    h->n_ext = h->cap_ext = 0;
    int err = 0;
    for (size_t i = 0; i < c->n_ext; i++)
        if ((c->is_replace ? c->is_failed[0] : c->is_failed[i]) &&
            buffer_write(h, c->ext[i].off, (const char *)c->ext[i].data, c->ext[i].len) != 0)
            err = ENOMEM;
    for (size_t i = 0; i < n_newer; i++)
        if (buffer_write(h, newer[i].off, (const char *)newer[i].data, newer[i].len) != 0)
            err = ENOMEM;
    free_extents(newer, n_newer);
    if (c->is_replace && c->is_failed[0]) {
        h->is_replace = true;
        h->replace_size = c->replace_size;
    }
    return err;
}

/* Answer the commit's requests; start the next commit of the handle, or free the handle after
 * its release. */
static void finish_commit(struct commit *c)
{
    struct fs *fs = c->fs;
    struct fs_handle *h = c->h;
    bool is_release = false;
    for (struct fs_flush_req *q = c->reqs; q != NULL; q = q->next)
        is_release |= q->is_release;
    if (c->err != 0)
        fs__notify_pages_stale(fs, c->ino); /* they hold bytes that were not committed */
    pthread_mutex_lock(&fs->lock);
    h->is_flushing = false;
    if (c->err != 0 && !is_release && keep_failed_locked(h, c) != 0)
        h->lost_err = EIO; /* reported by the next commit of this handle */
    if (is_release) {
        detach_locked(fs, h); /* invariant 3: nothing can be queued after the release */
    } else if (h->queued != NULL) {
        start_commit(fs, h); /* unlocks */
        pthread_mutex_lock(&fs->lock);
    }
    pthread_mutex_unlock(&fs->lock);
    while (c->reqs != NULL) {
        struct fs_flush_req *q = c->reqs;
        c->reqs = q->next;
        answer(q, c->err);
    }
    if (is_release) {
        fs__handle_free(h);
        fs__orphan_released(fs, c->ino);
    }
    free_extents(c->ext, c->n_ext);
    free(c->is_failed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Range i is done with err (i == SIZE_MAX: not a range); the last one finishes the commit. */
static void range_done(struct commit *c, size_t i, int err)
{
    pthread_mutex_lock(&c->lock);
    if (err != 0 && i != SIZE_MAX)
        c->is_failed[i] = true;
    if (err != 0 && c->err == 0)
        c->err = err;
    bool is_last = --c->pending == 0;
    pthread_mutex_unlock(&c->lock);
    if (is_last)
        finish_commit(c);
}

struct range {
    struct commit *commit;
    size_t i; /* the extent of the commit (0 for a REPLACE) */
    size_t len;
};

static void write_done(void *arg, int status, struct raft_apply_result *result)
{
    struct range *r = arg;
    struct store_fsm_result res;
    int err = fs__proposal_result(status, result, &res);
    if (err == 0 && res.written < r->len)
        err = EFBIG; /* cut by the state machine's size limit */
    struct commit *c = r->commit;
    size_t i = r->i;
    free(r);
    range_done(c, i, err);
}

/* Propose range i of commit c: a WRITE of len bytes of data at off, or a REPLACE of the file by
 * them (off 0, i 0). The range counts in c->pending already. */
static void propose_range(struct commit *c, size_t i, uint8_t type, uint64_t off,
                          const uint8_t *data, size_t len)
{
    struct range *r = malloc(sizeof *r);
    if (r == NULL) {
        range_done(c, i, ENOMEM);
        return;
    }
    r->commit = c;
    r->i = i;
    r->len = len;
    struct store_cmd cmd = {
        .type = type, .ino = c->ino, .offset = off, .data = data, .data_len = len};
    fs__now(&cmd);
    int err = fs__propose(c->fs->rt, c->fs->opts.op_timeout_ms, &cmd, write_done, r);
    if (err != 0) {
        free(r);
        range_done(c, i, err);
    }
}

/* The first commit of a handle opened with O_TRUNC: the whole file, size bytes, is the buffer
 * with zeros between its ranges. */
static void propose_replace(struct commit *c, uint64_t size)
{
    uint8_t *data = calloc(1, size ? (size_t)size : 1);
    if (data == NULL) {
        range_done(c, 0, ENOMEM);
        return;
    }
    for (size_t i = 0; i < c->n_ext; i++)
        memcpy(data + c->ext[i].off, c->ext[i].data, c->ext[i].len);
    propose_range(c, 0, STORE_CMD_REPLACE, 0, data, (size_t)size);
    free(data); /* fs__propose copied it */
}

/* Take h's buffer and queued requests into a new commit and propose its ranges. Called with
 * fs->lock held and h->is_flushing false; returns with it released. */
static void start_commit(struct fs *fs, struct fs_handle *h)
{
    struct commit *c = calloc(1, sizeof *c);
    bool *is_failed = calloc(h->n_ext ? h->n_ext : 1, sizeof *is_failed);
    if (c == NULL || is_failed == NULL) {
        free(c);
        free(is_failed);
        /* Answer the queued requests with ENOMEM; the buffer stays for a later flush. */
        struct fs_flush_req *q = h->queued;
        h->queued = NULL;
        bool is_release = false;
        for (struct fs_flush_req *p = q; p != NULL; p = p->next)
            is_release |= p->is_release;
        if (is_release)
            detach_locked(fs, h);
        pthread_mutex_unlock(&fs->lock);
        while (q != NULL) {
            struct fs_flush_req *next = q->next;
            answer(q, ENOMEM);
            q = next;
        }
        if (is_release)
            fs__handle_free(h);
        return;
    }
    int lost_err = h->lost_err;
    h->lost_err = 0;
    if (fs__locks_lost_by(fs, h)) { /* invariant 6: what it buffered goes nowhere */
        lost_err = EIO;
        free_extents(h->ext, h->n_ext);
        h->ext = NULL;
        h->n_ext = h->cap_ext = 0;
        h->is_replace = false;
    }
    h->is_flushing = true;
    c->fs = fs;
    c->h = h;
    c->ext = h->ext;
    c->n_ext = h->n_ext;
    c->reqs = h->queued;
    c->is_failed = is_failed;
    c->is_replace = h->is_replace;
    c->replace_size = h->replace_size;
    uint64_t replace_end = handle_end(h);
    h->is_replace = false; /* invariant 4: later commits write ranges */
    h->ext = NULL;
    h->n_ext = h->cap_ext = 0;
    h->queued = NULL;
    c->ino = h->ino;
    pthread_mutex_unlock(&fs->lock);

    pthread_mutex_init(&c->lock, NULL);
    if (c->is_replace) {
        c->pending = 2; /* the REPLACE, and this function */
        propose_replace(c, replace_end);
    } else {
        c->pending = c->n_ext + 1; /* one for this function, so the commit cannot finish early */
        for (size_t i = 0; i < c->n_ext; i++)
            propose_range(c, i, STORE_CMD_WRITE, c->ext[i].off, c->ext[i].data, c->ext[i].len);
    }
    range_done(c, SIZE_MAX, lost_err);
}

/* Queue req for the next commit of h, and start it unless one is in flight (invariant 2).
 * then as in struct fs_flush_req. */
static void commit(fuse_req_t req, struct fuse_file_info *fi, bool is_release, struct fs_then then)
{
    struct fs *fs = fs__of(req);
    struct fs_handle *h = fs__handle_of(fi);
    struct fs_flush_req *q = malloc(sizeof *q);
    if (q == NULL) {
        if (then.fn != NULL)
            then.fn(then.arg, req, ENOMEM);
        else
            fuse_reply_err(req, ENOMEM);
        return;
    }
    q->req = req;
    q->is_release = is_release;
    q->then = then;
    /* A flush that releases locks is not interruptible: the release must be proposed. */
    if (!is_release && then.fn == NULL && !fs__wait_start(&q->wait, req)) {
        fuse_reply_err(req, EINTR);
        free(q);
        return;
    }
    pthread_mutex_lock(&fs->lock);
    q->next = h->queued;
    h->queued = q;
    if (h->is_flushing) {
        pthread_mutex_unlock(&fs->lock);
        return;
    }
    start_commit(fs, h);
}

void fs__handle_flush(fuse_req_t req, struct fuse_file_info *fi, struct fs_then then)
{
    struct fs *fs = fs__of(req);
    struct fs_handle *h = fs__handle_of(fi);
    /* A shell redirection opens with O_TRUNC, moves the descriptor and closes the original
     * (a flush) before anything is written: committing the truncation then would show the
     * file empty. It waits for data, fsync or the release (invariant 4). */
    pthread_mutex_lock(&fs->lock);
    bool is_deferred = h->is_replace && h->n_ext == 0 && !h->is_flushing;
    pthread_mutex_unlock(&fs->lock);
    if (is_deferred && then.fn != NULL)
        then.fn(then.arg, req, 0); /* nothing to commit first */
    else if (is_deferred)
        fuse_reply_err(req, 0);
    else
        commit(req, fi, false, then);
}

void fs__fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
    (void)ino;
    (void)datasync;
    commit(req, fi, false, (struct fs_then){0});
}

void fs__handle_release(fuse_req_t req, struct fuse_file_info *fi, struct fs_then then)
{
    commit(req, fi, true, then);
}

void fs__handle_commit_then(fuse_req_t req, struct fuse_file_info *fi, struct fs_then then)
{
    commit(req, fi, false, then);
}
