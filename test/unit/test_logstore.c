/* Log store: append/read rules, truncation, reopen, format checks, stable store, full map,
 * on-disk corruption, failed commits, and a SIGKILL crash loop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "store/logstore.h"
#include "test/unit/tmpdir.h"

struct fixture {
    char *dir;
    struct store_log *log;
};

static char errbuf[512];

static const char *errmsg(struct store_log *log)
{
    return store_log_errmsg(log, errbuf, sizeof errbuf);
}

/* Deterministic payload of an entry, so any reader can check it from (index, term). */
static size_t payload_len_of(uint64_t index, uint64_t term)
{
    uint64_t s = index * 31 + term;
    return (size_t)(test_rand(&s) % 200);
}

static void payload_fill(uint8_t *buf, uint64_t index, uint64_t term, size_t len)
{
    uint64_t s = index ^ (term << 40);
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)test_rand(&s);
}

static uint8_t payload_buf[64][256];

/* Build n entries starting at index with the given term into entries[], payloads from
 * payload_buf (n <= 64). */
static void make_entries(struct store_log_entry *entries, uint64_t index, size_t n, uint64_t term)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = payload_len_of(index + i, term);
        payload_fill(payload_buf[i], index + i, term, len);
        entries[i] = (struct store_log_entry){.index = index + i,
                                              .term = term,
                                              .type = (uint8_t)(index + i),
                                              .len = len,
                                              .payload = payload_buf[i]};
    }
}

/* Delete every entry >= from, as the runtime's log writer does (a batch with nothing else). */
static int truncate_from(struct store_log *log, uint64_t from)
{
    return store_log_write(log, &(struct store_log_batch){.truncate_from = from});
}

/* Record term and vote, as the runtime's log writer does. */
static int set_hard_state(struct store_log *log, uint64_t term, uint64_t vote)
{
    return store_log_write(
        log, &(struct store_log_batch){.has_hard_state = true, .term = term, .vote = vote});
}

static int append_run(struct store_log *log, uint64_t index, size_t n, uint64_t term)
{
    struct store_log_entry e[64];
    make_entries(e, index, n, term);
    return store_log_append(log, e, n);
}

/* 1 if the entry is present with this term and the expected payload. */
static int entry_ok(struct store_log *log, uint64_t index, uint64_t term)
{
    struct store_log_entry e;
    if (store_log_get(log, index, &e) != 0)
        return 0;
    uint8_t want[256];
    size_t len = payload_len_of(index, term);
    payload_fill(want, index, term, len);
    int ok = e.index == index && e.term == term && e.type == (uint8_t)index && e.len == len &&
             (len == 0 || memcmp(e.payload, want, len) == 0);
    free((void *)e.payload);
    return ok;
}

static void open_store(struct fixture *f, const struct store_log_options *o)
{
    char eb[256];
    int rc = store_log_open(f->dir, o, &f->log, eb, sizeof eb);
    if (rc != 0)
        fail_msg("open: %s", eb);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->dir = tmpdir_make("log");
    open_store(f, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_log_close(f->log);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f, const struct store_log_options *o)
{
    store_log_close(f->log);
    f->log = NULL;
    open_store(f, o);
}

/* --- basics --------------------------------------------------------------------------------- */

static void empty_log(void **state)
{
    struct fixture *f = *state;
    uint64_t first = 9, last = 9, term = 9;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 0);
    assert_int_equal(last, 0);
    assert_int_equal(store_log_term_at(f->log, 1, &term), RFS_ENOTFOUND);
    struct store_log_entry e;
    assert_int_equal(store_log_get(f->log, 1, &e), RFS_ENOTFOUND);
    assert_non_null(strstr(errmsg(f->log), "index 1"));
}

static void append_and_read(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 10, 1), 0);
    assert_int_equal(append_run(f->log, 11, 1, 2), 0);
    assert_int_equal(append_run(f->log, 12, 40, 3), 0);
    uint64_t first, last, term;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 1);
    assert_int_equal(last, 51);
    for (uint64_t i = 1; i <= 51; i++) {
        uint64_t t = i <= 10 ? 1 : i == 11 ? 2 : 3;
        assert_true(entry_ok(f->log, i, t));
        assert_int_equal(store_log_term_at(f->log, i, &term), 0);
        assert_int_equal(term, t);
    }
    assert_int_equal(store_log_term_at(f->log, 52, &term), RFS_ENOTFOUND);
    assert_int_equal(store_log_term_at(f->log, 0, &term), RFS_ENOTFOUND);
}

static void zero_length_payload(void **state)
{
    struct fixture *f = *state;
    struct store_log_entry e = {.index = 1, .term = 1, .type = 7, .len = 0, .payload = NULL};
    assert_int_equal(store_log_append(f->log, &e, 1), 0);
    struct store_log_entry got;
    assert_int_equal(store_log_get(f->log, 1, &got), 0);
    assert_int_equal(got.len, 0);
    assert_null(got.payload);
    assert_int_equal(got.type, 7);
    free((void *)got.payload);
}

static void append_rules(void **state)
{
    struct fixture *f = *state;
    /* An empty log accepts any start index (e.g. right after a snapshot install). */
    assert_int_equal(append_run(f->log, 100, 5, 2), 0);
    /* Gaps and overlaps are refused and change nothing. */
    assert_int_equal(append_run(f->log, 106, 1, 2), RFS_ERANGE);
    assert_non_null(strstr(errmsg(f->log), "append 106..106"));
    assert_non_null(strstr(errmsg(f->log), "104"));
    assert_int_equal(append_run(f->log, 104, 1, 2), RFS_ERANGE);
    /* A batch must be consecutive inside. */
    struct store_log_entry e[3];
    make_entries(e, 105, 3, 2);
    e[2].index = 108;
    assert_int_equal(store_log_append(f->log, e, 3), RFS_ERANGE);
    /* Terms must not go down. */
    assert_int_equal(append_run(f->log, 105, 1, 1), RFS_EINVAL);
    make_entries(e, 105, 3, 3);
    e[2].term = 2;
    assert_int_equal(store_log_append(f->log, e, 3), RFS_EINVAL);
    assert_int_equal(store_log_append(f->log, e, 0), RFS_EINVAL);
    uint64_t first, last;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 100);
    assert_int_equal(last, 104);
    assert_int_equal(append_run(f->log, 105, 2, 2), 0);
    assert_true(entry_ok(f->log, 106, 2));
}

/* The iterator (the runtime's way of reading the log) is zero-copy and covers lo..hi. */
static void iterator(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 64, 1), 0);
    assert_int_equal(append_run(f->log, 65, 36, 2), 0);

    struct store_log_iter *it;
    struct store_log_entry e;
    assert_int_equal(store_log_iter_open(f->log, 10, 80, &it), 0);
    uint64_t want = 10;
    int rc;
    while ((rc = store_log_iter_next(it, &e)) == 0) {
        uint64_t t = want <= 64 ? 1 : 2;
        uint8_t bytes[256];
        assert_int_equal(e.index, want);
        assert_int_equal(e.term, t);
        assert_int_equal(e.len, payload_len_of(want, t));
        payload_fill(bytes, want, t, e.len);
        assert_true(e.len == 0 || memcmp(e.payload, bytes, e.len) == 0);
        want++;
    }
    assert_int_equal(rc, RFS_ENOTFOUND);
    assert_int_equal(want, 81);
    store_log_iter_close(it);

    /* hi past the end stops at the last entry. */
    assert_int_equal(store_log_iter_open(f->log, 60, UINT64_MAX, &it), 0);
    for (want = 60; (rc = store_log_iter_next(it, &e)) == 0; want++)
        assert_int_equal(e.index, want);
    assert_int_equal(rc, RFS_ENOTFOUND);
    assert_int_equal(want, 101);
    store_log_iter_close(it);

    /* Nothing past the end; lo above hi is refused. */
    assert_int_equal(store_log_iter_open(f->log, 101, 200, &it), 0);
    assert_int_equal(store_log_iter_next(it, &e), RFS_ENOTFOUND);
    store_log_iter_close(it);
    assert_int_equal(store_log_iter_open(f->log, 5, 4, &it), RFS_EINVAL);
}

static void truncate_suffix_and_prefix(void **state)
{
    struct fixture *f = *state;
    uint64_t first, last;
    assert_int_equal(append_run(f->log, 1, 50, 1), 0);

    assert_int_equal(truncate_from(f->log, 41), 0);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 40);
    assert_int_equal(truncate_from(f->log, 100), 0); /* beyond the end: no-op */
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 40);

    assert_int_equal(store_log_drop_prefix(f->log, 10), 0);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 11);
    assert_int_equal(last, 40);
    struct store_log_entry e;
    assert_int_equal(store_log_get(f->log, 10, &e), RFS_ENOTFOUND);
    assert_true(entry_ok(f->log, 11, 1));
    assert_true(entry_ok(f->log, 40, 1));

    /* Appending continues after a truncated suffix. */
    assert_int_equal(append_run(f->log, 41, 5, 2), 0);
    assert_true(entry_ok(f->log, 45, 2));

    /* Dropping beyond the end (snapshot install) empties the log; the next append must start
     * after the dropped index, never at or below it. */
    assert_int_equal(store_log_drop_prefix(f->log, 70), 0);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 0);
    assert_int_equal(last, 0);
    assert_int_equal(append_run(f->log, 70, 1, 3), RFS_ERANGE);
    assert_non_null(strstr(errmsg(f->log), "compacted"));
    assert_int_equal(append_run(f->log, 71, 3, 3), 0);

    /* Truncating everything leaves an empty log; a lower drop keeps the higher mark. */
    assert_int_equal(store_log_drop_prefix(f->log, 5), 0);
    assert_int_equal(truncate_from(f->log, 71), 0);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 0);
    assert_int_equal(append_run(f->log, 60, 1, 3), RFS_ERANGE);
    assert_int_equal(append_run(f->log, 71, 1, 3), 0);
}

static void batch_write_is_one_transaction(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 10, 1), 0);
    struct store_log_entry e[4];
    make_entries(e, 8, 4, 3);
    struct store_log_batch b = {
        .has_hard_state = true, .term = 3, .vote = 7, .truncate_from = 8, .entries = e, .n = 4};
    assert_int_equal(store_log_write(f->log, &b), 0);
    uint64_t first, last, term, vote;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 11);
    assert_true(entry_ok(f->log, 7, 1));
    assert_true(entry_ok(f->log, 8, 3));
    assert_int_equal(store_log_get_term(f->log, &term), 0);
    assert_int_equal(store_log_get_vote(f->log, &vote), 0);
    assert_int_equal(term, 3);
    assert_int_equal(vote, 7);

    /* A refused append leaves the hard state and the truncation undone too. */
    make_entries(e, 20, 1, 4); /* gap */
    b = (struct store_log_batch){
        .has_hard_state = true, .term = 9, .vote = 1, .truncate_from = 5, .entries = e, .n = 1};
    assert_int_equal(store_log_write(f->log, &b), RFS_ERANGE);
    assert_int_equal(store_log_get_term(f->log, &term), 0);
    assert_int_equal(term, 3);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 11);

    /* Hard state alone. */
    b = (struct store_log_batch){.has_hard_state = true, .term = 4, .vote = 0};
    assert_int_equal(store_log_write(f->log, &b), 0);
    assert_int_equal(store_log_get_term(f->log, &term), 0);
    assert_int_equal(term, 4);
}

static void reset_after_snapshot_install(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 20, 2), 0);
    assert_int_equal(store_log_reset(f->log, 15, 3), 0);
    uint64_t first, last, index, term;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 0);
    assert_int_equal(last, 0);
    assert_int_equal(store_log_get_snapshot_meta(f->log, &index, &term), 0);
    assert_int_equal(index, 15);
    assert_int_equal(term, 3);
    /* The log continues after the snapshot, never at or below it. */
    assert_int_equal(append_run(f->log, 15, 1, 3), RFS_ERANGE);
    assert_int_equal(append_run(f->log, 16, 3, 3), 0);
    assert_true(entry_ok(f->log, 16, 3));
}

static void truncate_then_append(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 30, 1), 0);
    struct store_log_entry e[8];
    make_entries(e, 21, 8, 2);
    assert_int_equal(store_log_truncate_append(f->log, 21, e, 8), 0);
    uint64_t first, last;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 28);
    assert_true(entry_ok(f->log, 20, 1));
    assert_true(entry_ok(f->log, 21, 2));
    assert_true(entry_ok(f->log, 28, 2));

    /* One transaction: when the append part is refused, the truncation did not happen. */
    make_entries(e, 23, 2, 1); /* term 1 after a term-2 entry */
    assert_int_equal(store_log_truncate_append(f->log, 23, e, 2), RFS_EINVAL);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 28);
    make_entries(e, 25, 2, 3); /* gap after truncating at 23 */
    assert_int_equal(store_log_truncate_append(f->log, 23, e, 2), RFS_ERANGE);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, 28);
    assert_true(entry_ok(f->log, 24, 2));

    /* Truncating from the first index replaces the whole log. */
    make_entries(e, 1, 2, 4);
    assert_int_equal(store_log_truncate_append(f->log, 1, e, 2), 0);
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 1);
    assert_int_equal(last, 2);
    assert_true(entry_ok(f->log, 2, 4));
}

static void reopen_keeps_everything(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 20, 1), 0);
    assert_int_equal(store_log_drop_prefix(f->log, 5), 0);
    assert_int_equal(truncate_from(f->log, 19), 0);
    assert_int_equal(set_hard_state(f->log, 7, 3), 0);
    assert_int_equal(store_log_set_epoch(f->log, 2), 0);
    assert_int_equal(store_log_set_snapshot_meta(f->log, 5, 1), 0);
    reopen(f, NULL);
    uint64_t first, last, v;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 6);
    assert_int_equal(last, 18);
    for (uint64_t i = 6; i <= 18; i++)
        assert_true(entry_ok(f->log, i, 1));
    assert_int_equal(store_log_get_term(f->log, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(store_log_get_vote(f->log, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(store_log_get_epoch(f->log, &v), 0);
    assert_int_equal(v, 2);
    uint64_t si, st;
    assert_int_equal(store_log_get_snapshot_meta(f->log, &si, &st), 0);
    assert_int_equal(si, 5);
    assert_int_equal(st, 1);
    /* The compaction mark survives too. */
    assert_int_equal(truncate_from(f->log, 6), 0);
    assert_int_equal(append_run(f->log, 5, 1, 1), RFS_ERANGE);
    assert_int_equal(append_run(f->log, 6, 1, 1), 0);
}

static void stable_store_round_trip(void **state)
{
    struct fixture *f = *state;
    uint64_t v = 99, si, st;
    assert_int_equal(store_log_get_term(f->log, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(store_log_get_vote(f->log, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(store_log_get_epoch(f->log, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(store_log_get_snapshot_meta(f->log, &si, &st), RFS_ENOTFOUND);

    assert_int_equal(set_hard_state(f->log, 5, 0xfedcba9876543210ull), 0);
    assert_int_equal(store_log_set_epoch(f->log, UINT64_MAX), 0);
    assert_int_equal(store_log_get_term(f->log, &v), 0);
    assert_int_equal(v, 5);
    assert_int_equal(store_log_get_vote(f->log, &v), 0);
    assert_int_equal(v, 0xfedcba9876543210ull);
    assert_int_equal(store_log_get_epoch(f->log, &v), 0);
    assert_int_equal(v, UINT64_MAX);
    /* A new term alone keeps the vote. */
    assert_int_equal(store_log_set_term(f->log, 6), 0);
    assert_int_equal(store_log_get_term(f->log, &v), 0);
    assert_int_equal(v, 6);
    assert_int_equal(store_log_get_vote(f->log, &v), 0);
    assert_int_equal(v, 0xfedcba9876543210ull);
    assert_int_equal(set_hard_state(f->log, 7, 0), 0);
    assert_int_equal(store_log_get_term(f->log, &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(store_log_get_vote(f->log, &v), 0);
    assert_int_equal(v, 0);
}

/* --- format --------------------------------------------------------------------------------- */

/* Rewrite the format record with another version, as a future release would. */
static void write_format_version(const char *dir, uint32_t version)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t v[16] = "RFSLOGv";
    for (int i = 0; i < 4; i++)
        v[8 + i] = (uint8_t)(version >> (8 * i));
    uint32_t crc = rfs_crc32c(0, v, 12);
    for (int i = 0; i < 4; i++)
        v[12 + i] = (uint8_t)(crc >> (8 * i));
    MDB_val k = {6, "format"}, val = {16, v};
    assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void unknown_version_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 3, 1), 0);
    store_log_close(f->log);
    f->log = NULL;

    write_format_version(f->dir, 2);
    char eb[256] = "";
    struct store_log *log = (void *)1;
    assert_int_equal(store_log_open(f->dir, NULL, &log, eb, sizeof eb), RFS_EFORMAT);
    assert_null(log);
    assert_non_null(strstr(eb, "version 2"));
    assert_non_null(strstr(eb, f->dir));

    /* Writing version 1 back the same way opens again: the test's encoding is the real one. */
    write_format_version(f->dir, 1);
    open_store(f, NULL);
    assert_true(entry_ok(f->log, 3, 1));
}

static void foreign_environment_refused(void **state)
{
    (void)state;
    char *dir = tmpdir_make("foreign");
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "inodes", MDB_CREATE, &dbi), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    char eb[256] = "";
    struct store_log *log;
    assert_int_equal(store_log_open(dir, NULL, &log, eb, sizeof eb), RFS_EFORMAT);
    assert_non_null(strstr(eb, "not a raftfs log"));
    tmpdir_remove(dir);
}

/* --- full map ------------------------------------------------------------------------------- */

/* Decision (docs/disk-format.md): a full map refuses the write with RFS_ENOSPACE, writes
 * nothing, and is not sticky. Compaction (prefix drop) still works thanks to the headroom,
 * and appends that fit afterwards succeed. */
static void map_full_refuses_and_recovers(void **state)
{
    struct fixture *f = *state;
    struct store_log_options o = {.map_size = 256 * 1024, .map_size_max = 256 * 1024};
    reopen(f, &o);

    uint64_t next = 1;
    int rc;
    struct store_log_entry e[16];
    static uint8_t big[16][1024];
    for (;;) {
        for (int i = 0; i < 16; i++) {
            memset(big[i], (int)((next + (uint64_t)i) & 0xff), sizeof big[i]);
            e[i] = (struct store_log_entry){
                .index = next + (uint64_t)i, .term = 1, .len = sizeof big[i], .payload = big[i]};
        }
        rc = store_log_append(f->log, e, 16);
        if (rc != 0)
            break;
        next += 16;
        assert_true(next < 100000);
    }
    assert_int_equal(rc, RFS_ENOSPACE);
    assert_non_null(strstr(errmsg(f->log), "MDB_MAP_FULL"));
    char want[64];
    snprintf(want, sizeof want, "append %llu..%llu", (unsigned long long)next,
             (unsigned long long)(next + 15));
    assert_non_null(strstr(errmsg(f->log), want));
    assert_true(next > 16); /* something fitted before */

    /* Nothing of the refused batch is there; everything before it is intact. */
    uint64_t first, last;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, 1);
    assert_int_equal(last, next - 1);
    for (uint64_t i = 1; i < next; i++) {
        struct store_log_entry g;
        assert_int_equal(store_log_get(f->log, i, &g), 0);
        assert_int_equal(g.len, 1024);
        assert_int_equal(((const uint8_t *)g.payload)[1023], i & 0xff);
        free((void *)g.payload);
    }
    /* Not sticky: stable writes and compaction work on a full map... */
    assert_int_equal(store_log_set_term(f->log, 2), 0);
    if (store_log_drop_prefix(f->log, next / 2) != 0)
        fail_msg("drop prefix on a full map: %s", errmsg(f->log));
    /* ...and appends fit again once compaction freed pages. LMDB reuses pages freed by a
     * transaction only after one more commit (the previous state stays intact for crash
     * safety), which the snapshot-meta write of a real compaction provides. */
    assert_int_equal(store_log_set_snapshot_meta(f->log, next / 2, 1), 0);
    if (store_log_append(f->log, e, 16) != 0)
        fail_msg("append after compaction: %s", errmsg(f->log));
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(first, next / 2 + 1);
    assert_int_equal(last, next + 15);
}

static void map_grows_up_to_maximum(void **state)
{
    struct fixture *f = *state;
    struct store_log_options o = {.map_size = 128 * 1024, .map_size_max = 4 * 1024 * 1024};
    reopen(f, &o);
    static uint8_t big[1024];
    memset(big, 0xab, sizeof big);
    struct store_log_entry e[16];
    uint64_t next = 1;
    int rc = 0;
    /* 1 MiB of payload: several times the initial map. */
    while (next < 1024) {
        for (int i = 0; i < 16; i++)
            e[i] = (struct store_log_entry){
                .index = next + (uint64_t)i, .term = 1, .len = sizeof big, .payload = big};
        if ((rc = store_log_append(f->log, e, 16)) != 0)
            break;
        next += 16;
    }
    assert_int_equal(rc, 0);
    /* Then the maximum is reached and refused cleanly. */
    while (rc == 0 && next < 100000) {
        for (int i = 0; i < 16; i++)
            e[i] = (struct store_log_entry){
                .index = next + (uint64_t)i, .term = 1, .len = sizeof big, .payload = big};
        if ((rc = store_log_append(f->log, e, 16)) == 0)
            next += 16;
    }
    assert_int_equal(rc, RFS_ENOSPACE);
    uint64_t first, last;
    assert_int_equal(store_log_bounds(f->log, &first, &last), 0);
    assert_int_equal(last, next - 1);
    assert_true((last - first + 1) * 1024 > 2 * 1024 * 1024); /* ~3 entries per 4 KiB page */
}

/* A reader thread keeps read transactions coming while the writer grows the map: growth
 * must wait for them (LMDB may not remap under a live transaction) and both make progress. */
struct reader_arg {
    struct store_log *log;
    atomic_int stop;
    long reads;
    int bad;
};

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    while (!atomic_load(&a->stop)) {
        struct store_log_iter *it;
        if (store_log_iter_open(a->log, 1, UINT64_MAX, &it) != 0) {
            a->bad++;
            continue;
        }
        struct store_log_entry e;
        uint64_t want = 1;
        int rc;
        while ((rc = store_log_iter_next(it, &e)) == 0) {
            if (e.index != want++ || e.len != 512 || ((const uint8_t *)e.payload)[0] != 0x5a)
                a->bad++;
        }
        if (rc != RFS_ENOTFOUND)
            a->bad++;
        store_log_iter_close(it);
        a->reads++;
    }
    return NULL;
}

static void map_grows_under_readers(void **state)
{
    struct fixture *f = *state;
    struct store_log_options o = {.map_size = 64 * 1024, .map_size_max = 64 * 1024 * 1024};
    reopen(f, &o);
    struct reader_arg a = {.log = f->log};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &a), 0);
    static uint8_t buf[512];
    memset(buf, 0x5a, sizeof buf);
    struct store_log_entry e[32];
    for (uint64_t next = 1; next < 32 * 64; next += 32) {
        for (int i = 0; i < 32; i++)
            e[i] = (struct store_log_entry){
                .index = next + (uint64_t)i, .term = 1, .len = sizeof buf, .payload = buf};
        int rc = store_log_append(f->log, e, 32);
        if (rc != 0)
            fail_msg("append: %s", errmsg(f->log));
    }
    atomic_store(&a.stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(a.bad, 0);
    assert_true(a.reads > 0);
}

/* --- corruption ----------------------------------------------------------------------------- */

/* Flip one byte in every copy of `needle` inside data.mdb (stale copies in free pages are
 * harmless to flip). Returns how many copies were found. */
static int flip_in_file(const char *dir, const void *needle, size_t len, size_t at)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(map != MAP_FAILED);
    int found = 0;
    uint8_t *p = map, *end = map + st.st_size;
    while ((p = memmem(p, (size_t)(end - p), needle, len)) != NULL) {
        p[at] ^= 0x10;
        found++;
        p += len;
    }
    msync(map, (size_t)st.st_size, MS_SYNC);
    munmap(map, (size_t)st.st_size);
    close(fd);
    return found;
}

static void corrupted_entry_detected(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(append_run(f->log, 1, 10, 1), 0);
    char marker[64];
    snprintf(marker, sizeof marker, "<<payload of entry eleven, find me in data.mdb>>");
    struct store_log_entry e = {
        .index = 11, .term = 1, .type = 11, .len = strlen(marker), .payload = marker};
    assert_int_equal(store_log_append(f->log, &e, 1), 0);
    assert_int_equal(append_run(f->log, 12, 10, 1), 0);
    store_log_close(f->log);
    f->log = NULL;

    assert_true(flip_in_file(f->dir, marker, strlen(marker), 20) >= 1);
    open_store(f, NULL);

    struct store_log_entry g;
    assert_int_equal(store_log_get(f->log, 11, &g), RFS_ECORRUPT);
    assert_null(g.payload);
    assert_non_null(strstr(errmsg(f->log), "entry 11 "));
    uint64_t term;
    assert_int_equal(store_log_term_at(f->log, 11, &term), RFS_ECORRUPT);
    assert_true(entry_ok(f->log, 10, 1));
    assert_true(entry_ok(f->log, 12, 1));

    /* The iterator hands out 1..10, then reports the corruption, then stays at the end. */
    struct store_log_iter *it;
    assert_int_equal(store_log_iter_open(f->log, 1, UINT64_MAX, &it), 0);
    for (int i = 1; i <= 10; i++)
        assert_int_equal(store_log_iter_next(it, &g), 0);
    assert_int_equal(store_log_iter_next(it, &g), RFS_ECORRUPT);
    assert_non_null(strstr(errmsg(f->log), "entry 11 "));
    assert_int_equal(store_log_iter_next(it, &g), RFS_ENOTFOUND);
    store_log_iter_close(it);

    /* Appending after a corrupt last entry is refused too (its term is unknown). */
    assert_int_equal(truncate_from(f->log, 12), 0);
    assert_int_equal(append_run(f->log, 12, 1, 1), RFS_ECORRUPT);
    /* Raft's answer to a corrupt tail: truncate it and take the entries again. */
    assert_int_equal(truncate_from(f->log, 11), 0);
    assert_int_equal(append_run(f->log, 11, 2, 1), 0);
    assert_true(entry_ok(f->log, 11, 1));
}

static void cluster_id_recorded(void **state)
{
    struct fixture *f = *state;
    char id[STORE_LOG_CLUSTER_ID_MAX + 1];
    assert_int_equal(store_log_get_cluster_id(f->log, id), RFS_ENOTFOUND);
    assert_string_equal(id, "");
    char longest[STORE_LOG_CLUSTER_ID_MAX + 2];
    memset(longest, 'c', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_int_equal(store_log_set_cluster_id(f->log, longest), RFS_EINVAL);
    assert_int_equal(store_log_set_cluster_id(f->log, ""), RFS_EINVAL);
    longest[STORE_LOG_CLUSTER_ID_MAX] = '\0';
    assert_int_equal(store_log_set_cluster_id(f->log, longest), 0);
    assert_int_equal(store_log_get_cluster_id(f->log, id), 0);
    assert_string_equal(id, longest);
    assert_int_equal(store_log_set_cluster_id(f->log, "prod-eu"), 0);
    reopen(f, NULL);
    assert_int_equal(store_log_get_cluster_id(f->log, id), 0);
    assert_string_equal(id, "prod-eu");

    /* A flipped byte of the name fails the record's checksum. */
    store_log_close(f->log);
    f->log = NULL;
    assert_true(flip_in_file(f->dir, (const uint8_t *)"prod-eu", 7, 2) >= 1);
    open_store(f, NULL);
    assert_int_equal(store_log_get_cluster_id(f->log, id), RFS_ECORRUPT);
    assert_non_null(strstr(errmsg(f->log), "cluster"));
}

static void corrupted_header_and_stable_detected(void **state)
{
    struct fixture *f = *state;
    /* A term no other value in the file shares, to find the header bytes. */
    const uint64_t odd_term = 0x5eed5eed12345678ull;
    struct store_log_entry e = {.index = 1, .term = odd_term, .len = 0};
    assert_int_equal(store_log_append(f->log, &e, 1), 0);
    const uint64_t odd_epoch = 0x0badcafe87654321ull;
    assert_int_equal(store_log_set_epoch(f->log, odd_epoch), 0);
    store_log_close(f->log);
    f->log = NULL;

    uint8_t needle[8];
    for (int i = 0; i < 8; i++)
        needle[i] = (uint8_t)(odd_term >> (8 * i));
    assert_true(flip_in_file(f->dir, needle, 8, 3) >= 1);
    for (int i = 0; i < 8; i++)
        needle[i] = (uint8_t)(odd_epoch >> (8 * i));
    assert_true(flip_in_file(f->dir, needle, 8, 0) >= 1);

    open_store(f, NULL);
    uint64_t v;
    assert_int_equal(store_log_term_at(f->log, 1, &v), RFS_ECORRUPT);
    assert_non_null(strstr(errmsg(f->log), "entry 1 "));
    assert_int_equal(store_log_get_epoch(f->log, &v), RFS_ECORRUPT);
    assert_non_null(strstr(errmsg(f->log), "epoch"));
}

/* --- failed commit -------------------------------------------------------------------------- */

/* The child runs with a file-size limit, so a commit fails writing pages (EFBIG, or EIO for a
 * short write). Exit codes: 0 as expected, 10+ which check failed. */
static int sticky_child(const char *dir)
{
    struct store_log *log;
    if (store_log_open(dir, NULL, &log, NULL, 0) != 0)
        return 10;
    char path[512];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return 11;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = (rlim_t)st.st_size, .rlim_max = RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 12;

    uint64_t next = 1;
    int rc;
    while ((rc = append_run(log, next, 16, 1)) == 0) {
        next += 16;
        if (next > 100000)
            return 13;
    }
    if (rc != RFS_ENOSPACE && rc != RFS_EIO)
        return 14;
    char eb[512];
    store_log_errmsg(log, eb, sizeof eb);
    if (strstr(eb, "commit") == NULL)
        return 15;
    /* Sticky: every write is refused now, even one that would fit... */
    if (append_run(log, next, 1, 1) != RFS_ESTICKY || store_log_set_term(log, 3) != RFS_ESTICKY ||
        store_log_drop_prefix(log, 1) != RFS_ESTICKY)
        return 16;
    store_log_errmsg(log, eb, sizeof eb);
    if (strstr(eb, "error state") == NULL || strstr(eb, "commit") == NULL)
        return 17;
    /* ...but reads work. */
    uint64_t first, last;
    if (store_log_bounds(log, &first, &last) != 0 || last != next - 1)
        return 18;
    for (uint64_t i = 1; i < next; i++)
        if (!entry_ok(log, i, 1))
            return 19;
    store_log_close(log);
    return 0;
}

static void failed_commit_is_sticky(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Start the child's log from scratch to keep its arithmetic simple. */
        char *dir = tmpdir_make("sticky");
        int code = sticky_child(dir);
        tmpdir_remove(dir);
        _exit(code);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("sticky child failed check %d", WEXITSTATUS(status));
}

/* --- crash loop ----------------------------------------------------------------------------- */

/* Model of what a sequence of operations leaves in the store. Both the child (which performs
 * the operations) and the parent (which checks the store after SIGKILL) derive the operations
 * from the same generator state and the same model, so the parent knows exactly which states
 * are allowed: the one after the k operations the child reported durable, or the one after
 * k + 1 (committed, killed before reporting). */
struct model {
    uint64_t first, last, dropped, term;
    uint64_t *terms; /* terms[i] for first <= i <= last */
    size_t cap;
};

enum op_kind { OP_APPEND, OP_TRUNC_APPEND, OP_TRUNCATE, OP_DROP, OP_TERM };

struct op {
    enum op_kind kind;
    uint64_t at; /* first index appended, truncation point, or drop-through */
    uint64_t n;  /* entries appended */
};

static void model_reserve(struct model *m, uint64_t index)
{
    if (index < m->cap)
        return;
    size_t ncap = m->cap ? m->cap : 1024;
    while (ncap <= index)
        ncap *= 2;
    m->terms = realloc(m->terms, ncap * sizeof *m->terms);
    assert_non_null(m->terms);
    m->cap = ncap;
}

static void model_copy(struct model *dst, const struct model *src)
{
    *dst = *src;
    dst->terms = malloc(src->cap * sizeof *src->terms);
    assert_true(src->cap == 0 || dst->terms != NULL);
    if (src->cap)
        memcpy(dst->terms, src->terms, src->cap * sizeof *src->terms);
}

static struct op next_op(uint64_t *rng, const struct model *m)
{
    struct op op = {0};
    uint64_t r = test_rand(rng) % 100;
    bool empty = m->last == 0;
    uint64_t span = empty ? 0 : m->last - m->first + 1;
    if (!empty && span > 600) {
        op.kind = OP_DROP;
        op.at = m->first + span / 2;
    } else if (r < 60 || (empty && r < 85)) {
        op.kind = OP_APPEND;
        op.at = empty ? m->dropped + 1 : m->last + 1;
        op.n = 1 + test_rand(rng) % 32;
    } else if (!empty && r < 72) {
        op.kind = OP_TRUNC_APPEND;
        op.at = m->first + test_rand(rng) % span;
        op.n = 1 + test_rand(rng) % 8;
    } else if (!empty && r < 80) {
        op.kind = OP_TRUNCATE;
        op.at = m->first + test_rand(rng) % (span + 1);
    } else if (r < 92) {
        op.kind = OP_DROP;
        op.at = empty ? m->dropped + test_rand(rng) % 4 : m->first + test_rand(rng) % (span + 2);
    } else {
        op.kind = OP_TERM;
    }
    return op;
}

static void model_apply(struct model *m, const struct op *op)
{
    switch (op->kind) {
    case OP_TRUNC_APPEND:
    case OP_TRUNCATE:
        if (m->last != 0 && op->at <= m->last)
            m->last = op->at - 1;
        if (m->last < m->first)
            m->first = m->last = 0;
        if (op->kind == OP_TRUNCATE)
            break;
        /* fall through */
    case OP_APPEND:
        model_reserve(m, op->at + op->n);
        if (m->last == 0)
            m->first = op->at;
        for (uint64_t i = 0; i < op->n; i++)
            m->terms[op->at + i] = m->term;
        m->last = op->at + op->n - 1;
        break;
    case OP_DROP:
        if (op->at > m->dropped)
            m->dropped = op->at;
        if (m->last != 0 && op->at >= m->last)
            m->first = m->last = 0;
        else if (m->last != 0 && op->at >= m->first)
            m->first = op->at + 1;
        break;
    case OP_TERM: m->term++; break;
    }
}

static int op_run(struct store_log *log, const struct model *m, const struct op *op)
{
    struct store_log_entry e[32];
    switch (op->kind) {
    case OP_APPEND: make_entries(e, op->at, op->n, m->term); return store_log_append(log, e, op->n);
    case OP_TRUNC_APPEND:
        make_entries(e, op->at, op->n, m->term);
        return store_log_truncate_append(log, op->at, e, op->n);
    case OP_TRUNCATE: return truncate_from(log, op->at);
    case OP_DROP: return store_log_drop_prefix(log, op->at);
    case OP_TERM: return store_log_set_term(log, m->term + 1);
    }
    return RFS_EINVAL;
}

/* Does the store hold exactly the model's visible state? Explains a mismatch in why. */
static bool store_matches(struct store_log *log, const struct model *m, char *why, size_t size)
{
    uint64_t first, last, term;
    int rc = store_log_bounds(log, &first, &last);
    if (rc != 0 || first != m->first || last != m->last) {
        snprintf(why, size, "bounds %llu..%llu, model %llu..%llu (rc %d)",
                 (unsigned long long)first, (unsigned long long)last, (unsigned long long)m->first,
                 (unsigned long long)m->last, rc);
        return false;
    }
    if (store_log_get_term(log, &term) != 0 || term != m->term) {
        snprintf(why, size, "term %llu, model %llu", (unsigned long long)term,
                 (unsigned long long)m->term);
        return false;
    }
    if (last == 0)
        return true;
    struct store_log_iter *it;
    if (store_log_iter_open(log, first, last, &it) != 0) {
        snprintf(why, size, "iter open failed");
        return false;
    }
    struct store_log_entry e;
    uint64_t want = first;
    uint8_t buf[256];
    while ((rc = store_log_iter_next(it, &e)) == 0) {
        uint64_t t = m->terms[want];
        size_t len = payload_len_of(want, t);
        payload_fill(buf, want, t, len);
        if (e.index != want || e.term != t || e.len != len ||
            (len && memcmp(buf, e.payload, len) != 0)) {
            snprintf(why, size, "entry %llu: index %llu term %llu len %zu, model term %llu",
                     (unsigned long long)want, (unsigned long long)e.index,
                     (unsigned long long)e.term, e.len, (unsigned long long)t);
            store_log_iter_close(it);
            return false;
        }
        want++;
    }
    store_log_iter_close(it);
    if (rc != RFS_ENOTFOUND || want != last + 1) {
        snprintf(why, size, "iteration stopped at %llu with %s", (unsigned long long)want,
                 rfs_strerror(rc));
        return false;
    }
    return true;
}

#define CRASH_ROUNDS  220
#define CRASH_MAX_OPS 400

static void crash_child(const char *dir, struct model *m, uint64_t rng, int fd)
{
    struct store_log *log;
    if (store_log_open(dir, NULL, &log, NULL, 0) != 0)
        _exit(3);
    char c = 'o';
    if (write(fd, &c, 1) != 1)
        _exit(5);
    for (int i = 0; i < CRASH_MAX_OPS; i++) {
        struct op op = next_op(&rng, m);
        if (op_run(log, m, &op) != 0)
            _exit(4);
        model_apply(m, &op);
        c = 'a';
        if (write(fd, &c, 1) != 1)
            _exit(5);
    }
    store_log_close(log);
    _exit(0);
}

static void crash_loop(void **state)
{
    struct fixture *f = *state;
    store_log_close(f->log);
    f->log = NULL;
    uint64_t seed = test_seed();
    struct model m = {0};
    model_reserve(&m, 1);
    long total_ops = 0;
    int killed = 0;

    for (int round = 0; round < CRASH_ROUNDS; round++) {
        uint64_t rs = seed ^ ((uint64_t)round * 0x9e3779b97f4a7c15ull);
        uint64_t op_rng = test_rand(&rs);
        unsigned delay_us = (unsigned)(test_rand(&rs) % 15000);
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            crash_child(f->dir, &m, op_rng, p[1]);
        }
        close(p[1]);
        /* Most rounds let the child report a random number of operations and then kill it
         * a random moment later, so kills land inside operations whatever the disk's speed;
         * every tenth kills at a random moment from the fork, which can hit the open. */
        char buf[CRASH_MAX_OPS + 2];
        size_t k = 0;
        ssize_t r;
        if (round % 10 != 0) {
            unsigned reports = (unsigned)(test_rand(&rs) % 24);
            while (k < reports && read(p[0], buf, 1) == 1)
                k += buf[0] == 'a';
            delay_us %= 3000;
        }
        usleep(delay_us);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        while ((r = read(p[0], buf, sizeof buf)) > 0)
            for (ssize_t i = 0; i < r; i++)
                k += buf[i] == 'a';
        close(p[0]);
        if (WIFSIGNALED(status))
            killed++;
        else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("crash child failed on its own (status %d), seed %llu (RAFTFS_SEED)", status,
                     (unsigned long long)seed);

        /* The two states allowed after k reported operations. */
        struct model after_k, after_k1;
        model_copy(&after_k, &m);
        uint64_t g = op_rng;
        for (size_t i = 0; i < k; i++) {
            struct op op = next_op(&g, &after_k);
            model_apply(&after_k, &op);
        }
        model_copy(&after_k1, &after_k);
        struct op op = next_op(&g, &after_k1);
        model_apply(&after_k1, &op);
        total_ops += (long)k;

        open_store(f, NULL);
        char why_k[200], why_k1[200];
        bool is_k1 = k < CRASH_MAX_OPS && store_matches(f->log, &after_k1, why_k1, sizeof why_k1);
        bool is_k = store_matches(f->log, &after_k, why_k, sizeof why_k);
        store_log_close(f->log);
        f->log = NULL;
        if (!is_k && !is_k1)
            fail_msg("round %d after %zu reported ops: store matches neither state (%s | %s); "
                     "seed %llu (replay with RAFTFS_SEED)",
                     round, k, why_k, k < CRASH_MAX_OPS ? why_k1 : "-", (unsigned long long)seed);
        /* When both match visibly, prefer k + 1: its compaction mark is the higher one, and
         * appending above a lower real mark is still allowed. */
        free(m.terms);
        if (is_k1) {
            m = after_k1;
            free(after_k.terms);
        } else {
            m = after_k;
            free(after_k1.terms);
        }
    }
    free(m.terms);
    open_store(f, NULL);
    print_message("crash loop: %d rounds, %d killed, %ld durable operations, seed %llu\n",
                  CRASH_ROUNDS, killed, total_ops, (unsigned long long)seed);
    assert_true(killed >= 200);
    assert_true(total_ops > CRASH_ROUNDS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(empty_log, setup, teardown),
        cmocka_unit_test_setup_teardown(append_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(cluster_id_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(zero_length_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(append_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(iterator, setup, teardown),
        cmocka_unit_test_setup_teardown(truncate_suffix_and_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(truncate_then_append, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_write_is_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_after_snapshot_install, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(stable_store_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_version_refused, setup, teardown),
        cmocka_unit_test(foreign_environment_refused),
        cmocka_unit_test_setup_teardown(map_full_refuses_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(map_grows_up_to_maximum, setup, teardown),
        cmocka_unit_test_setup_teardown(map_grows_under_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupted_entry_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupted_header_and_stable_detected, setup, teardown),
        cmocka_unit_test(failed_commit_is_sticky),
        cmocka_unit_test_setup_teardown(crash_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
