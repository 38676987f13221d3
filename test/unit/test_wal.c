/* Write-ahead log (store/wal): append, batches, conflict override, segments and compaction,
 * reopen, stable state, snapshot records, every error path (a full tmpfs, a failing sync), torn
 * and damaged tails, and a SIGKILL crash loop (RAFTFS_WAL_CRASHES rounds, default 30). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lib/error.h"
#include "store/wal/internal.h"
#include "store/wal/wal.h"
#include "test/unit/tmpdir.h"

#define SEG_SIZE (64u << 10)

struct fixture {
    char *dir;
    struct wal *wal;
    struct wal_options o;
};

static char errbuf[512];

static const char *errmsg(struct wal *wal)
{
    return wal_errmsg(wal, errbuf, sizeof errbuf);
}

/* Entries are a function of their index and term, so any reader can check them. */
static size_t payload_len(uint64_t index, uint64_t term)
{
    uint64_t s = index * 31 + term;
    return (size_t)(test_rand(&s) % 300);
}

static void payload_fill(uint8_t *buf, uint64_t index, uint64_t term, size_t len)
{
    uint64_t s = index ^ (term << 40);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)test_rand(&s);
}

static uint8_t payloads[64][300];

/* n <= 64 entries from index on, with term. */
static void make_entries(struct wal_entry *e, uint64_t index, size_t n, uint64_t term)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = payload_len(index + i, term);
        payload_fill(payloads[i], index + i, term, len);
        e[i] = (struct wal_entry){.index = index + i,
                                  .term = term,
                                  .type = (uint8_t)(index + i),
                                  .len = len,
                                  .payload = payloads[i]};
    }
}

static int append(struct wal *wal, uint64_t index, size_t n, uint64_t term)
{
    struct wal_entry e[64];
    make_entries(e, index, n, term);
    struct wal_batch b = {.entries = e, .n = n};
    return wal_write(wal, &b);
}

/* 1 if entry index holds term and its expected payload. */
static int entry_ok(struct wal *wal, uint64_t index, uint64_t term)
{
    struct wal_entry e;
    if (wal_entry_get(wal, index, &e) != 0)
        return 0;
    uint8_t want[300];
    size_t len = payload_len(index, term);
    payload_fill(want, index, term, len);
    int ok = e.index == index && e.term == term && e.type == (uint8_t)index && e.len == len &&
             (len == 0 || memcmp(e.payload, want, len) == 0);
    free((void *)e.payload);
    return ok;
}

static void expect_bounds(struct wal *wal, uint64_t first, uint64_t last)
{
    uint64_t f, l;
    wal_bounds(wal, &f, &l);
    assert_int_equal(f, first);
    assert_int_equal(l, last);
}

static void open_wal(struct fixture *f)
{
    char eb[512];
    if (wal_open(f->dir, &f->o, &f->wal, eb, sizeof eb) != 0)
        fail_msg("open: %s", eb);
}

static void reopen(struct fixture *f)
{
    wal_close(f->wal);
    f->wal = NULL;
    open_wal(f);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tmpdir_make("wal");
    f->o = (struct wal_options){.cluster_id = "test", .segment_size = SEG_SIZE};
    open_wal(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    wal_close(f->wal);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static int count_segments(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^seg-[0-9a-f]*$'", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p == NULL || fscanf(p, "%d", &n) != 1)
        n = -1;
    if (p != NULL)
        pclose(p);
    return n;
}

/* --- basic behaviour -------------------------------------------------------------------------- */

static void append_and_read(void **state)
{
    struct fixture *f = *state;
    expect_bounds(f->wal, 1, 0);
    assert_int_equal(append(f->wal, 1, 10, 1), 0);
    assert_int_equal(append(f->wal, 11, 5, 2), 0);
    expect_bounds(f->wal, 1, 15);
    for (uint64_t i = 1; i <= 15; i++)
        assert_true(entry_ok(f->wal, i, i <= 10 ? 1 : 2));
    uint64_t t;
    assert_int_equal(wal_term_at(f->wal, 12, &t), 0);
    assert_int_equal(t, 2);
    assert_int_equal(wal_term_at(f->wal, 16, &t), RFS_ENOTFOUND);

    /* Not contiguous, a term going down, an oversized payload: refused, nothing written. */
    assert_int_equal(append(f->wal, 17, 1, 2), RFS_ERANGE);
    assert_int_equal(append(f->wal, 16, 1, 1), RFS_EINVAL);
    assert_non_null(strstr(errmsg(f->wal), "term"));
    struct wal_entry big = {.index = 16, .term = 2, .len = WAL_PAYLOAD_MAX + 1, .payload = ""};
    struct wal_batch bb = {.entries = &big, .n = 1};
    assert_int_equal(wal_write(f->wal, &bb), RFS_EINVAL);
    expect_bounds(f->wal, 1, 15);

    struct wal_iter *it;
    assert_int_equal(wal_iter_open(f->wal, 5, 4, &it), RFS_EINVAL);
    assert_int_equal(wal_iter_open(f->wal, 4, UINT64_MAX, &it), 0);
    struct wal_entry x;
    uint64_t want = 4;
    int rc;
    while ((rc = wal_iter_next(it, &x)) == 0)
        assert_int_equal(x.index, want++);
    assert_int_equal(rc, RFS_ENOTFOUND);
    assert_int_equal(want, 16);
    wal_iter_close(it);

    reopen(f);
    expect_bounds(f->wal, 1, 15);
    for (uint64_t i = 1; i <= 15; i++)
        assert_true(entry_ok(f->wal, i, i <= 10 ? 1 : 2));
    assert_int_equal(append(f->wal, 16, 1, 3), 0);
}

static void stable_state(void **state)
{
    struct fixture *f = *state;
    struct wal_state st;
    wal_state_get(f->wal, &st);
    assert_int_equal(st.term + st.vote + st.epoch + st.snapshot_index, 0);
    struct wal_entry e[4];
    make_entries(e, 1, 4, 5);
    struct wal_batch b = {.has_state = true, .term = 5, .vote = 2, .entries = e, .n = 4};
    assert_int_equal(wal_write(f->wal, &b), 0);
    struct wal_batch only = {.has_state = true, .term = 6, .vote = 0};
    assert_int_equal(wal_write(f->wal, &only), 0);
    assert_int_equal(wal_set_epoch(f->wal, 7), 0);
    assert_int_equal(wal_set_epoch(f->wal, 6), RFS_EINVAL);
    struct wal_batch back = {.has_state = true, .term = 5, .vote = 1};
    assert_int_equal(wal_write(f->wal, &back), RFS_EINVAL);
    reopen(f);
    wal_state_get(f->wal, &st);
    assert_int_equal(st.term, 6);
    assert_int_equal(st.vote, 0);
    assert_int_equal(st.epoch, 7);
    expect_bounds(f->wal, 1, 4);
    char id[WAL_CLUSTER_ID_MAX + 1];
    wal_cluster_id(f->wal, id);
    assert_string_equal(id, "test");
}

static void conflict_override(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append(f->wal, 1, 10, 1), 0);
    /* Raft §5.3: a leader of term 2 overrides 6..10 with 6..8. */
    struct wal_entry e[3];
    make_entries(e, 6, 3, 2);
    struct wal_batch b = {.truncate_from = 6, .entries = e, .n = 3};
    assert_int_equal(wal_write(f->wal, &b), 0);
    expect_bounds(f->wal, 1, 8);
    /* A deletion alone, and one beyond the end (nothing to do). */
    struct wal_batch cut = {.truncate_from = 8};
    assert_int_equal(wal_write(f->wal, &cut), 0);
    struct wal_batch beyond = {.truncate_from = 100};
    assert_int_equal(wal_write(f->wal, &beyond), 0);
    expect_bounds(f->wal, 1, 7);
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 1; i <= 7; i++)
            assert_true(entry_ok(f->wal, i, i <= 5 ? 1 : 2));
        reopen(f);
        expect_bounds(f->wal, 1, 7);
    }
    /* Overriding at or below the snapshot is refused: those entries are committed. */
    assert_int_equal(wal_snapshot(f->wal, 4, 1, 2), 0);
    struct wal_batch low = {.truncate_from = 4};
    assert_int_equal(wal_write(f->wal, &low), RFS_ERANGE);
    assert_int_equal(append(f->wal, 8, 1, 3), 0);
}

/* Many segments, then a snapshot deletes those below it; reopen restores the same log. */
static void compaction(void **state)
{
    struct fixture *f = *state;
    uint64_t next = 1;
    while (count_segments(f->dir) < 8 || next < 1000) {
        assert_int_equal(append(f->wal, next, 16, 1 + next / 500), 0);
        next += 16;
    }
    uint64_t last = next - 1;
    int before = count_segments(f->dir);
    uint64_t snap = last - 40, t;
    assert_int_equal(wal_term_at(f->wal, snap, &t), 0);
    /* Refused: a wrong term, dropping past the snapshot, a snapshot past the log. */
    assert_int_equal(wal_snapshot(f->wal, snap, t + 1, snap - 10), RFS_EINVAL);
    assert_int_equal(wal_snapshot(f->wal, snap, t, snap + 1), RFS_EINVAL);
    assert_int_equal(wal_snapshot(f->wal, last + 1, t, 1), RFS_EINVAL);
    assert_int_equal(wal_snapshot(f->wal, snap, t, snap - 10), 0);
    int after = count_segments(f->dir);
    if (after >= before - 3)
        fail_msg("compaction left %d of %d segments", after, before);
    expect_bounds(f->wal, snap - 9, last);
    /* Never backwards; the same snapshot again is accepted. */
    assert_int_equal(wal_snapshot(f->wal, snap - 1, t, snap - 10), RFS_EINVAL);
    assert_non_null(strstr(errmsg(f->wal), "snapshot"));
    assert_int_equal(wal_snapshot(f->wal, snap, t, snap - 10), 0);
    reopen(f);
    expect_bounds(f->wal, snap - 9, last);
    struct wal_state st;
    wal_state_get(f->wal, &st);
    assert_int_equal(st.snapshot_index, snap);
    assert_int_equal(st.snapshot_term, t);
    for (uint64_t i = snap - 9; i <= last; i++)
        assert_true(entry_ok(f->wal, i, 1 + ((i - 1) / 16 * 16 + 1) / 500));
    assert_int_equal(append(f->wal, last + 1, 3, 9), 0);
    reopen(f);
    expect_bounds(f->wal, snap - 9, last + 3);
}

static void reset_to_snapshot(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append(f->wal, 1, 20, 1), 0);
    assert_int_equal(wal_reset(f->wal, 1000, 4), 0);
    expect_bounds(f->wal, 1001, 1000);
    assert_int_equal(wal_reset(f->wal, 999, 4), RFS_EINVAL);
    assert_int_equal(append(f->wal, 1000, 1, 4), RFS_ERANGE);
    assert_int_equal(append(f->wal, 1001, 2, 3), RFS_EINVAL); /* below the snapshot's term */
    assert_int_equal(append(f->wal, 1001, 2, 4), 0);
    assert_int_equal(count_segments(f->dir), 3); /* the written one and two prepared */
    reopen(f);
    expect_bounds(f->wal, 1001, 1002);
    struct wal_state st;
    wal_state_get(f->wal, &st);
    assert_int_equal(st.snapshot_index, 1000);
    assert_true(entry_ok(f->wal, 1002, 4));
}

/* A batch larger than a whole segment gets a segment grown to fit it. */
static void batch_larger_than_segment(void **state)
{
    struct fixture *f = *state;
    size_t len = 3 * SEG_SIZE;
    uint8_t *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(i * 7);
    assert_int_equal(append(f->wal, 1, 2, 1), 0);
    struct wal_entry e = {.index = 3, .term = 1, .len = len, .payload = p};
    struct wal_batch b = {.entries = &e, .n = 1};
    assert_int_equal(wal_write(f->wal, &b), 0);
    assert_int_equal(append(f->wal, 4, 2, 1), 0);
    reopen(f);
    struct wal_entry got;
    assert_int_equal(wal_entry_get(f->wal, 3, &got), 0);
    assert_int_equal(got.len, len);
    assert_memory_equal(got.payload, p, len);
    free((void *)got.payload);
    assert_true(entry_ok(f->wal, 5, 1));
    free(p);
}

static void cluster_and_lock(void **state)
{
    struct fixture *f = *state;
    struct wal *other;
    char eb[512];
    assert_int_equal(wal_open(f->dir, &f->o, &other, eb, sizeof eb), RFS_EINVAL);
    assert_non_null(strstr(eb, "in use"));
    assert_null(other);
    wal_close(f->wal);
    f->wal = NULL;
    struct wal_options o = f->o;
    o.cluster_id = "another";
    assert_int_equal(wal_open(f->dir, &o, &other, eb, sizeof eb), RFS_EINVAL);
    assert_non_null(strstr(eb, "belongs to cluster 'test'"));
    o.cluster_id = NULL;
    assert_int_equal(wal_open(f->dir, &o, &other, eb, sizeof eb), 0);
    wal_close(other);
    char *empty = tmpdir_make("wal-new");
    assert_int_equal(wal_open(empty, &o, &other, eb, sizeof eb), RFS_EINVAL);
    tmpdir_remove(empty);
    open_wal(f);
}

struct reader {
    struct wal *wal;
    atomic_bool is_stopping;
    atomic_int bad; /* 0, or the index of an entry read wrong */
    long reads;
};

/* Reads entries that the bounds say are present; compaction may remove them in between. */
static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint64_t rng = 42;
    while (!atomic_load(&r->is_stopping)) {
        uint64_t first, last;
        wal_bounds(r->wal, &first, &last);
        if (last < first)
            continue;
        uint64_t i = first + test_rand(&rng) % (last - first + 1);
        struct wal_entry e;
        int rc = wal_entry_get(r->wal, i, &e);
        if (rc == RFS_ENOTFOUND)
            continue;
        free((void *)e.payload);
        if (rc != 0 || !entry_ok(r->wal, i, 1)) {
            uint64_t f2, l2;
            wal_bounds(r->wal, &f2, &l2);
            if (i >= f2) /* not compacted meanwhile: a wrong read */
                atomic_store(&r->bad, (int)i);
        }
        r->reads++;
    }
    return NULL;
}

/* Readers on another thread while the writer appends, rolls segments and compacts. */
static void reads_while_writing(void **state)
{
    struct fixture *f = *state;
    struct reader r = {.wal = f->wal};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
    for (uint64_t next = 1; next < 4000; next += 8) {
        assert_int_equal(append(f->wal, next, 8, 1), 0);
        if (next % 400 == 1 && next > 100)
            assert_int_equal(wal_snapshot(f->wal, next, 1, next - 100), 0);
    }
    atomic_store(&r.is_stopping, true);
    pthread_join(t, NULL);
    if (atomic_load(&r.bad) != 0)
        fail_msg("entry %d read wrong while the writer was busy", atomic_load(&r.bad));
    assert_true(r.reads > 0);
}

/* --- error paths ------------------------------------------------------------------------------ */

struct sync_hook {
    atomic_bool is_failing;
    atomic_int calls;
};

static int failing_sync(int fd, void *ctx)
{
    struct sync_hook *h = ctx;
    atomic_fetch_add(&h->calls, 1);
    if (atomic_load(&h->is_failing))
        return EIO;
    return fdatasync(fd) == 0 ? 0 : errno;
}

static void failed_sync_is_sticky(void **state)
{
    struct fixture *f = *state;
    struct sync_hook h = {0};
    wal_close(f->wal);
    f->o.sync = failing_sync;
    f->o.sync_ctx = &h;
    open_wal(f);
    assert_int_equal(append(f->wal, 1, 5, 1), 0);
    assert_true(atomic_load(&h.calls) > 0);
    atomic_store(&h.is_failing, true);
    assert_int_equal(append(f->wal, 6, 5, 1), RFS_EIO);
    assert_non_null(strstr(errmsg(f->wal), "fdatasync of segment seg-"));
    atomic_store(&h.is_failing, false);
    /* Never retried: every later write is refused, reads keep working. */
    assert_int_equal(append(f->wal, 6, 5, 1), RFS_ESTICKY);
    assert_int_equal(wal_set_epoch(f->wal, 3), RFS_ESTICKY);
    assert_non_null(strstr(errmsg(f->wal), "fdatasync"));
    expect_bounds(f->wal, 1, 5);
    assert_true(entry_ok(f->wal, 5, 1));
    /* After a reopen the failed batch may be there or not (its bytes reached the page cache),
     * and the log is writable again. */
    f->o.sync = NULL;
    f->o.sync_ctx = NULL;
    reopen(f);
    uint64_t first, last;
    wal_bounds(f->wal, &first, &last);
    assert_true(last == 5 || last == 10);
    assert_int_equal(append(f->wal, last + 1, 1, 1), 0);
}

/* ENOSPC from a small tmpfs: appends are refused with a clear error, the log stays usable, and
 * writes resume once compaction frees space. */
static void full_disk(void **state)
{
    struct fixture *f = *state;
    wal_close(f->wal);
    f->wal = NULL;
    if (mount("tmpfs", f->dir, "tmpfs", 0, "size=320k") != 0) {
        if (errno == EPERM)
            skip(); /* needs root: said here, since cmocka prints only the name */
        fail_msg("mount tmpfs on %s: %s", f->dir, strerror(errno));
    }
    open_wal(f);
    uint64_t next = 1;
    int rc;
    while ((rc = append(f->wal, next, 8, 1)) == 0)
        next += 8;
    assert_int_equal(rc, RFS_ENOSPACE);
    assert_non_null(strstr(errmsg(f->wal), "No space left"));
    uint64_t last = next - 1;
    assert_true(last > 100);
    assert_int_equal(append(f->wal, next, 8, 1), RFS_ENOSPACE); /* still full, not sticky */
    size_t big_len = 2 * SEG_SIZE; /* needs a segment grown to fit: refused too */
    uint8_t *big = calloc(1, big_len);
    struct wal_entry be = {.index = next, .term = 1, .len = big_len, .payload = big};
    struct wal_batch bb = {.entries = &be, .n = 1};
    assert_int_equal(wal_write(f->wal, &bb), RFS_ENOSPACE);
    free(big);
    expect_bounds(f->wal, 1, last);
    assert_true(entry_ok(f->wal, 1, 1));
    assert_true(entry_ok(f->wal, last, 1));
    assert_int_equal(wal_snapshot(f->wal, last, 1, last), 0);
    assert_int_equal(append(f->wal, next, 8, 1), 0);
    reopen(f);
    expect_bounds(f->wal, last + 1, last + 8);
    wal_close(f->wal);
    f->wal = NULL;
    assert_int_equal(umount(f->dir), 0);
    open_wal(f); /* for the teardown: a new log in the emptied directory */
}

/* --- torn and damaged tails ------------------------------------------------------------------- */

struct layout {
    uint64_t commit_end[16]; /* end of each batch */
    uint64_t rec_off[256];   /* every record of the last batch */
    size_t n_batches, n_recs;
};

static uint8_t *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

/* Put segment 1 back (and remove the later ones a previous round may have written to). */
static void write_file(const char *path, const uint8_t *b, size_t len)
{
    char later[600];
    for (unsigned seq = 2; seq < 8; seq++) {
        snprintf(later, sizeof later, "%.*s%016x", (int)(strlen(path) - 16), path, seq);
        unlink(later);
    }
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
    close(fd);
}

/* Five batches of 3 entries (index 1..15) in segment 1; where its batches and records are. */
static void torn_setup(struct fixture *f, char *path, struct layout *lay, uint8_t **pristine,
                       size_t *len)
{
    for (uint64_t i = 0; i < 5; i++)
        assert_int_equal(append(f->wal, 1 + 3 * i, 3, 1), 0);
    wal_close(f->wal);
    f->wal = NULL;
    snprintf(path, 600, "%s/seg-%016x", f->dir, 1);
    *pristine = read_file(path, len);
    memset(lay, 0, sizeof *lay);
    uint64_t off = WAL__SEG_HEADER;
    for (;;) {
        struct wal__rec r;
        uint64_t claimed;
        char why[160];
        if (wal__rec_decode(*pristine + off, *len - off, &r, &claimed, why, sizeof why) !=
            WAL__REC_OK)
            break;
        if (lay->n_batches == 4)
            lay->rec_off[lay->n_recs++] = off;
        off += r.size;
        if (r.kind == WAL__COMMIT)
            lay->commit_end[lay->n_batches++] = off;
    }
    assert_int_equal(lay->n_batches, 5);
}

/* Open after damage: either the first four batches exactly, or a refusal naming the position. */
static void expect_four_or_refusal(struct fixture *f, bool may_refuse, const char *what)
{
    char eb[512];
    int rc = wal_open(f->dir, &f->o, &f->wal, eb, sizeof eb);
    if (rc != 0) {
        if (!may_refuse || rc != RFS_ECORRUPT || strstr(eb, "offset") == NULL)
            fail_msg("%s: open refused: %s (%s)", what, rfs_strerror(rc), eb);
        return;
    }
    uint64_t first, last;
    wal_bounds(f->wal, &first, &last);
    if (last != 12)
        fail_msg("%s: recovered up to %llu, expected 12", what, (unsigned long long)last);
    for (uint64_t i = 1; i <= 12; i++)
        assert_true(entry_ok(f->wal, i, 1));
    /* The torn tail was zeroed: a new batch goes where it was and survives a reopen. */
    assert_int_equal(append(f->wal, 13, 2, 2), 0);
    reopen(f);
    expect_bounds(f->wal, 1, 14);
    assert_true(entry_ok(f->wal, 14, 2));
    wal_close(f->wal);
    f->wal = NULL;
}

static void torn_tail(void **state)
{
    struct fixture *f = *state;
    char path[600];
    struct layout lay;
    uint8_t *pristine;
    size_t len;
    torn_setup(f, path, &lay, &pristine, &len);
    uint64_t seed = test_seed(), rs = seed;
    uint64_t cuts[300];
    size_t n_cuts = 0;
    for (size_t i = 0; i < lay.n_recs; i++)
        cuts[n_cuts++] = lay.rec_off[i];
    uint64_t lo = lay.commit_end[3], hi = lay.commit_end[4], data_hi = hi;
    while (pristine[data_hi - 1] == 0) /* a cut among trailing zeros would change nothing */
        data_hi--;
    for (int i = 0; i < 40; i++)
        cuts[n_cuts++] = lo + test_rand(&rs) % (data_hi - lo);
    for (size_t i = 0; i < n_cuts; i++) {
        char what[128];
        for (int mode = 0; mode < 2; mode++) { /* cut the file short, or zero its end */
            snprintf(what, sizeof what, "%s at %llu (seed %llu)", mode ? "zeroed" : "cut",
                     (unsigned long long)cuts[i], (unsigned long long)seed);
            write_file(path, pristine, len);
            if (mode == 0)
                assert_int_equal(truncate(path, (off_t)cuts[i]), 0);
            else {
                uint8_t *b = malloc(len);
                memcpy(b, pristine, len);
                memset(b + cuts[i], 0, hi - cuts[i]);
                write_file(path, b, len);
                free(b);
            }
            expect_four_or_refusal(f, false, what);
        }
    }
    write_file(path, pristine, len);
    free(pristine);
    open_wal(f);
}

static void flipped_bits(void **state)
{
    struct fixture *f = *state;
    char path[600];
    struct layout lay;
    uint8_t *pristine;
    size_t len;
    torn_setup(f, path, &lay, &pristine, &len);
    uint64_t seed = test_seed(), rs = seed;
    uint64_t lo = lay.commit_end[3], hi = lay.commit_end[4];
    uint8_t *b = malloc(len);
    for (int i = 0; i < 60; i++) {
        /* In the last batch: its records or the commit; before it: acknowledged batches. */
        bool in_tail = i % 2 == 0;
        uint64_t at = in_tail ? lo + test_rand(&rs) % (hi - lo)
                              : WAL__SEG_HEADER + test_rand(&rs) % (lo - WAL__SEG_HEADER);
        memcpy(b, pristine, len);
        b[at] ^= (uint8_t)(1u << (test_rand(&rs) % 8));
        write_file(path, b, len);
        char what[128];
        snprintf(what, sizeof what, "bit flipped at %llu (seed %llu)", (unsigned long long)at,
                 (unsigned long long)seed);
        if (in_tail) {
            expect_four_or_refusal(f, true, what);
            continue;
        }
        char eb[512];
        int rc = wal_open(f->dir, &f->o, &f->wal, eb, sizeof eb);
        if (rc != RFS_ECORRUPT || strstr(eb, "offset") == NULL)
            fail_msg("%s: damage before the tail not reported: %s (%s)", what, rfs_strerror(rc),
                     eb);
    }
    free(b);
    write_file(path, pristine, len);
    free(pristine);
    open_wal(f);
    expect_bounds(f->wal, 1, 15);
}

/* A missing segment in the middle of the log, and a segment of another cluster. */
static void missing_and_foreign_segments(void **state)
{
    struct fixture *f = *state;
    uint64_t next = 1;
    while (count_segments(f->dir) < 6) {
        assert_int_equal(append(f->wal, next, 16, 1), 0);
        next += 16;
    }
    wal_close(f->wal);
    f->wal = NULL;
    char a[600], b[600], eb[512];
    snprintf(a, sizeof a, "%s/seg-%016x", f->dir, 2);
    snprintf(b, sizeof b, "%s/moved", f->dir);
    assert_int_equal(rename(a, b), 0);
    assert_int_equal(wal_open(f->dir, &f->o, &f->wal, eb, sizeof eb), RFS_ECORRUPT);
    assert_non_null(strstr(eb, "missing"));
    /* Segment 2 of another cluster's log put in its place. */
    char *other = tmpdir_make("wal-other");
    struct wal_options o = f->o;
    o.cluster_id = "other";
    struct wal *w;
    assert_int_equal(wal_open(other, &o, &w, eb, sizeof eb), 0);
    for (uint64_t i = 1; count_segments(other) < 4; i += 16)
        assert_int_equal(append(w, i, 16, 1), 0);
    wal_close(w);
    char c[600];
    snprintf(c, sizeof c, "%s/seg-%016x", other, 2);
    assert_int_equal(rename(c, a), 0);
    tmpdir_remove(other);
    assert_int_equal(wal_open(f->dir, &f->o, &f->wal, eb, sizeof eb), RFS_ECORRUPT);
    assert_non_null(strstr(eb, "cluster 'other'"));
    assert_int_equal(rename(b, a), 0);
    open_wal(f);
    expect_bounds(f->wal, 1, next - 1);
}

/* --- crash loop ------------------------------------------------------------------------------- */

/* The child appends batches (sometimes a large entry, sometimes a snapshot that compacts) and
 * reports each synced batch's last index through the pipe, until it is killed. */
static void crash_child(struct fixture *f, uint64_t rng, int out)
{
    struct wal *wal;
    char eb[512];
    if (wal_open(f->dir, &f->o, &wal, eb, sizeof eb) != 0)
        _exit(2);
    uint64_t first, last;
    wal_bounds(wal, &first, &last);
    static uint8_t big[20000];
    for (uint64_t k = 0;; k++) {
        struct wal_entry e[64];
        size_t n = 1 + test_rand(&rng) % 12;
        uint64_t term = 1 + (last + 1) / 200;
        make_entries(e, last + 1, n, term);
        for (size_t i = 0; i < n; i++) /* terms rise with the index, as in make_entries */
            e[i].term = term;
        if (test_rand(&rng) % 8 == 0) {
            payload_fill(big, e[0].index, term, sizeof big);
            e[0].len = sizeof big;
            e[0].payload = big;
        }
        struct wal_batch b = {.entries = e, .n = n};
        if (wal_write(wal, &b) != 0)
            _exit(3);
        last += n;
        if (write(out, &last, sizeof last) != (ssize_t)sizeof last)
            _exit(4);
        if (k % 16 == 15 && last > 100) {
            uint64_t t;
            if (wal_term_at(wal, last - 20, &t) != 0 ||
                wal_snapshot(wal, last - 20, t, last - 60) != 0)
                _exit(5);
        }
    }
}

static bool crash_entry_ok(struct wal *wal, uint64_t index)
{
    struct wal_entry e;
    if (wal_entry_get(wal, index, &e) != 0)
        return false;
    uint8_t want[20000];
    size_t len = e.len == sizeof want ? sizeof want : payload_len(index, e.term);
    payload_fill(want, index, e.term, len);
    bool ok = e.len == len && e.term >= 1 && (len == 0 || memcmp(e.payload, want, len) == 0);
    free((void *)e.payload);
    return ok;
}

static void crash_loop(void **state)
{
    struct fixture *f = *state;
    wal_close(f->wal);
    f->wal = NULL;
    const char *env = getenv("RAFTFS_WAL_CRASHES");
    int rounds = env != NULL ? atoi(env) : 30, killed = 0;
    uint64_t seed = test_seed(), max_reported = 0;
    for (int round = 0; round < rounds; round++) {
        uint64_t rs = seed ^ ((uint64_t)round * 0x9e3779b97f4a7c15ull);
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(f, test_rand(&rs), p[1]);
        }
        close(p[1]);
        /* Let the child report some batches, then kill it a random moment later. */
        unsigned reports = (unsigned)(test_rand(&rs) % 40);
        uint64_t got;
        for (unsigned i = 0; i < reports && read(p[0], &got, sizeof got) == sizeof got; i++)
            max_reported = got > max_reported ? got : max_reported;
        usleep((unsigned)(test_rand(&rs) % 4000));
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        while (read(p[0], &got, sizeof got) == sizeof got)
            max_reported = got > max_reported ? got : max_reported;
        close(p[0]);
        if (!WIFSIGNALED(status))
            fail_msg("crash child failed on its own (status %d), seed %llu (RAFTFS_SEED)", status,
                     (unsigned long long)seed);
        killed++;
        char eb[512];
        if (wal_open(f->dir, &f->o, &f->wal, eb, sizeof eb) != 0)
            fail_msg("round %d: reopen failed: %s; seed %llu (RAFTFS_SEED)", round, eb,
                     (unsigned long long)seed);
        uint64_t first, last;
        wal_bounds(f->wal, &first, &last);
        if (last < max_reported || first > max_reported + 1)
            fail_msg("round %d: log %llu..%llu lost reported batch ending at %llu; seed %llu",
                     round, (unsigned long long)first, (unsigned long long)last,
                     (unsigned long long)max_reported, (unsigned long long)seed);
        for (uint64_t i = first; i <= last; i++)
            if (!crash_entry_ok(f->wal, i))
                fail_msg("round %d: entry %llu is wrong; seed %llu", round, (unsigned long long)i,
                         (unsigned long long)seed);
        max_reported = last; /* what a later round must keep, reported or not */
        wal_close(f->wal);
        f->wal = NULL;
    }
    print_message("crash loop: %d kills, log up to %llu, seed %llu\n", killed,
                  (unsigned long long)max_reported, (unsigned long long)seed);
    open_wal(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(append_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(stable_state, setup, teardown),
        cmocka_unit_test_setup_teardown(conflict_override, setup, teardown),
        cmocka_unit_test_setup_teardown(compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_to_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_larger_than_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(cluster_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_sync_is_sticky, setup, teardown),
        cmocka_unit_test_setup_teardown(full_disk, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(flipped_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_and_foreign_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(crash_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
