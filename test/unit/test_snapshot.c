/* Snapshots of a generic LMDB environment: take, stream in chunks, receive, verify, extract
 * and compare; refusal of truncated and bit-flipped files; retention; header decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "store/snapshot.h"
#include "test/unit/tmpdir.h"

/* A stand-in for the state machine: sub-db "kv" with keys k<n>, and sub-db "meta" with the
 * applied index, its term and a configuration blob, all updated in one transaction. */
struct fixture {
    char *root;
    char *env_dir;
    MDB_env *env;
    struct store_snapshot_dir *sd; /* root/snaps */
    uint64_t applied;
};

static char errbuf[512];

static const char *errmsg(struct store_snapshot_dir *sd)
{
    return store_snapshot_errmsg(sd, errbuf, sizeof errbuf);
}

static MDB_env *env_open(const char *dir, unsigned flags)
{
    MDB_env *env;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 64 << 20), 0);
    mkdir(dir, 0700);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | flags, 0600), 0);
    return env;
}

static void value_of(uint64_t key, char *buf, size_t *len)
{
    *len = (size_t)snprintf(buf, 200, "value of %llu: ", (unsigned long long)key);
    for (size_t i = *len; i < 40 + key % 100; i++)
        buf[i] = (char)('a' + (key + i) % 26);
    if (*len < 40 + key % 100)
        *len = 40 + key % 100;
}

/* Apply keys applied+1 .. applied+n in one transaction, recording the new applied index. */
static void env_apply(MDB_env *env, uint64_t *applied, uint64_t n, uint64_t term)
{
    MDB_txn *txn;
    MDB_dbi kv, meta;
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "kv", MDB_CREATE, &kv), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    for (uint64_t i = 1; i <= n; i++) {
        char kb[32], vb[200];
        size_t vlen;
        uint64_t key = *applied + i;
        snprintf(kb, sizeof kb, "k%010llu", (unsigned long long)key);
        value_of(key, vb, &vlen);
        MDB_val k = {strlen(kb), kb}, v = {vlen, vb};
        assert_int_equal(mdb_put(txn, kv, &k, &v, 0), 0);
    }
    *applied += n;
    char cfg[64];
    snprintf(cfg, sizeof cfg, "voters=1,2,3;at=%llu", (unsigned long long)*applied);
    MDB_val k1 = {7, "applied"}, v1 = {8, applied};
    MDB_val k2 = {4, "term"}, v2 = {8, &term};
    MDB_val k3 = {6, "config"}, v3 = {strlen(cfg), cfg};
    assert_int_equal(mdb_put(txn, meta, &k1, &v1, 0), 0);
    assert_int_equal(mdb_put(txn, meta, &k2, &v2, 0), 0);
    assert_int_equal(mdb_put(txn, meta, &k3, &v3, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
}

/* The describe callback a state machine would provide: read what the copy holds. No cmocka
 * asserts here: it may run while another thread writes. */
static int describe(void *ctx, MDB_txn *txn, struct store_snapshot_meta *meta)
{
    int *calls = ctx;
    MDB_dbi dbi;
    MDB_val k1 = {7, "applied"}, k2 = {4, "term"}, k3 = {6, "config"}, v;
    (*calls)++;
    if (mdb_dbi_open(txn, "meta", 0, &dbi) != 0)
        return RFS_ENOTFOUND;
    if (mdb_get(txn, dbi, &k1, &v) != 0 || v.mv_size != 8)
        return RFS_ENOTFOUND;
    memcpy(&meta->index, v.mv_data, 8);
    if (mdb_get(txn, dbi, &k2, &v) != 0 || v.mv_size != 8)
        return RFS_ENOTFOUND;
    memcpy(&meta->term, v.mv_data, 8);
    if (mdb_get(txn, dbi, &k3, &v) != 0)
        return RFS_ENOTFOUND;
    meta->config = v.mv_data; /* borrowed from the copy's transaction */
    meta->config_len = v.mv_size;
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->root = tmpdir_make("snap");
    assert_true(asprintf(&f->env_dir, "%s/state", f->root) > 0);
    f->env = env_open(f->env_dir, 0);
    env_apply(f->env, &f->applied, 2000, 3);
    char *snaps;
    assert_true(asprintf(&snaps, "%s/snaps", f->root) > 0);
    char eb[256];
    if (store_snapshot_dir_open(snaps, NULL, &f->sd, eb, sizeof eb) != 0)
        fail_msg("%s", eb);
    free(snaps);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_snapshot_dir_close(f->sd);
    if (f->env)
        mdb_env_close(f->env);
    free(f->env_dir);
    tmpdir_remove(f->root);
    free(f);
    return 0;
}

static struct store_snapshot_info take(struct fixture *f)
{
    struct store_snapshot_info info;
    int calls = 0;
    int rc = store_snapshot_take(f->sd, f->env, describe, &calls, NULL, &info);
    if (rc != 0)
        fail_msg("take: %s", errmsg(f->sd));
    assert_int_equal(calls, 1);
    return info;
}

/* Every key/value of sub-db `name` in a equals b's. */
static void assert_same_db(MDB_env *a, MDB_env *b, const char *name)
{
    MDB_txn *ta, *tb;
    MDB_dbi da, db;
    MDB_cursor *ca, *cb;
    assert_int_equal(mdb_txn_begin(a, NULL, MDB_RDONLY, &ta), 0);
    assert_int_equal(mdb_txn_begin(b, NULL, MDB_RDONLY, &tb), 0);
    assert_int_equal(mdb_dbi_open(ta, name, 0, &da), 0);
    assert_int_equal(mdb_dbi_open(tb, name, 0, &db), 0);
    assert_int_equal(mdb_cursor_open(ta, da, &ca), 0);
    assert_int_equal(mdb_cursor_open(tb, db, &cb), 0);
    MDB_val ka, va, kb, vb;
    int ra, rb;
    size_t count = 0;
    for (;;) {
        ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
        rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
        assert_int_equal(ra, rb);
        if (ra != 0)
            break;
        assert_int_equal(ka.mv_size, kb.mv_size);
        assert_memory_equal(ka.mv_data, kb.mv_data, ka.mv_size);
        assert_int_equal(va.mv_size, vb.mv_size);
        assert_memory_equal(va.mv_data, vb.mv_data, va.mv_size);
        count++;
    }
    assert_int_equal(ra, MDB_NOTFOUND);
    assert_true(count > 0);
    mdb_cursor_close(ca);
    mdb_cursor_close(cb);
    mdb_txn_abort(ta);
    mdb_txn_abort(tb);
}

/* Read snapshot (index, term) from `from` in chunks and feed it to `to`. The bytes pass
 * through mutate (may be NULL) and are cut at `limit` (UINT64_MAX: whole file). */
static int stream(struct store_snapshot_dir *from, struct store_snapshot_dir *to,
                  struct store_snapshot_info info, size_t chunk, uint64_t limit,
                  void (*mutate)(uint8_t *buf, uint64_t off, size_t len, void *arg), void *arg)
{
    struct store_snapshot_reader *r;
    struct store_snapshot_receiver *w;
    assert_int_equal(store_snapshot_open(from, info.index, info.term, &r), 0);
    assert_int_equal(store_snapshot_reader_size(r), info.size);
    assert_int_equal(store_snapshot_receive_begin(to, info.index, info.term, &w), 0);
    uint8_t *buf = malloc(chunk);
    uint64_t off = 0;
    size_t n;
    while (off < limit) {
        assert_int_equal(store_snapshot_reader_read(r, off, buf, chunk, &n), 0);
        if (n == 0)
            break;
        if (off + n > limit)
            n = (size_t)(limit - off);
        if (mutate != NULL)
            mutate(buf, off, n, arg);
        assert_int_equal(store_snapshot_receive_write(w, off, buf, n), 0);
        off += n;
    }
    free(buf);
    store_snapshot_reader_close(r);
    return store_snapshot_receive_finish(w, NULL);
}

static struct store_snapshot_dir *other_dir(struct fixture *f, const char *name, unsigned keep)
{
    char *p;
    assert_true(asprintf(&p, "%s/%s", f->root, name) > 0);
    struct store_snapshot_dir *sd;
    struct store_snapshot_options o = {.keep = keep};
    assert_int_equal(store_snapshot_dir_open(p, &o, &sd, NULL, 0), 0);
    free(p);
    return sd;
}

static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* --- round trip ----------------------------------------------------------------------------- */

static void take_stream_receive_extract(void **state)
{
    struct fixture *f = *state;
    struct store_snapshot_info info = take(f);
    assert_int_equal(info.index, 2000);
    assert_int_equal(info.term, 3);
    struct store_snapshot_info *v;
    size_t count;
    assert_int_equal(store_snapshot_list(f->sd, &v, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(v[0].index, 2000);
    assert_int_equal(v[0].size, info.size);
    free(v);

    /* The reader exposes the header's meta, config included. */
    struct store_snapshot_reader *r;
    assert_int_equal(store_snapshot_open(f->sd, 2000, 3, &r), 0);
    const struct store_snapshot_meta *m = store_snapshot_reader_meta(r);
    assert_int_equal(m->index, 2000);
    assert_int_equal(m->config_len, strlen("voters=1,2,3;at=2000"));
    assert_memory_equal(m->config, "voters=1,2,3;at=2000", m->config_len);
    size_t n;
    uint8_t b[16];
    assert_int_equal(store_snapshot_reader_read(r, info.size - 3, b, sizeof b, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(store_snapshot_reader_read(r, info.size + 5, b, sizeof b, &n), 0);
    assert_int_equal(n, 0);
    store_snapshot_reader_close(r);

    /* A follower receives it in odd-sized chunks... */
    struct store_snapshot_dir *follower = other_dir(f, "follower", 2);
    if (stream(f->sd, follower, info, 4099, UINT64_MAX, NULL, NULL) != 0)
        fail_msg("receive: %s", errmsg(follower));

    /* ...and installs it as an environment equal to the source. */
    char *dest;
    assert_true(asprintf(&dest, "%s/follower-state", f->root) > 0);
    if (store_snapshot_extract(follower, 2000, 3, dest) != 0)
        fail_msg("extract: %s", errmsg(follower));
    MDB_env *copy = env_open(dest, MDB_RDONLY);
    assert_same_db(f->env, copy, "kv");
    assert_same_db(f->env, copy, "meta");
    mdb_env_close(copy);

    /* Extracting again replaces the environment in place (RENAME_EXCHANGE). */
    env_apply(f->env, &f->applied, 10, 4);
    info = take(f);
    assert_int_equal(stream(f->sd, follower, info, 65536, UINT64_MAX, NULL, NULL), 0);
    assert_int_equal(store_snapshot_extract(follower, info.index, info.term, dest), 0);
    copy = env_open(dest, MDB_RDONLY);
    assert_same_db(f->env, copy, "kv");
    mdb_env_close(copy);
    /* No temporaries left anywhere. */
    assert_int_equal(count_files(f->root, "follower-state.tmp-"), 0);
    char *p;
    assert_true(asprintf(&p, "%s/follower", f->root) > 0);
    assert_int_equal(count_files(p, "tmp-"), 0);
    free(p);
    assert_true(asprintf(&p, "%s/snaps", f->root) > 0);
    assert_int_equal(count_files(p, "tmp-"), 0);
    free(p);
    free(dest);
    store_snapshot_dir_close(follower);
}

static void take_with_given_meta(void **state)
{
    struct fixture *f = *state;
    struct store_snapshot_meta m = {.index = 77, .term = 5, .config_len = 3, .config = "abc"};
    struct store_snapshot_info info;
    assert_int_equal(store_snapshot_take(f->sd, f->env, NULL, NULL, &m, &info), 0);
    assert_int_equal(info.index, 77);
    struct store_snapshot_reader *r;
    assert_int_equal(store_snapshot_open(f->sd, 77, 5, &r), 0);
    assert_memory_equal(store_snapshot_reader_meta(r)->config, "abc", 3);
    store_snapshot_reader_close(r);
    assert_int_equal(store_snapshot_take(f->sd, f->env, NULL, NULL, NULL, &info), RFS_EINVAL);
}

/* The copy's index must match its data even while a writer keeps applying. */
struct writer {
    MDB_env *env;
    uint64_t applied;
    atomic_int stop;
    atomic_long commits;
};

static void *writer_main(void *p)
{
    struct writer *w = p;
    while (!atomic_load(&w->stop)) {
        MDB_txn *txn;
        MDB_dbi kv, meta;
        if (mdb_txn_begin(w->env, NULL, 0, &txn) != 0)
            return NULL;
        mdb_dbi_open(txn, "kv", 0, &kv);
        mdb_dbi_open(txn, "meta", 0, &meta);
        for (int i = 0; i < 5; i++) {
            char kb[32], vb[200];
            size_t vlen;
            uint64_t key = ++w->applied;
            snprintf(kb, sizeof kb, "k%010llu", (unsigned long long)key);
            value_of(key, vb, &vlen);
            MDB_val k = {strlen(kb), kb}, v = {vlen, vb};
            mdb_put(txn, kv, &k, &v, 0);
        }
        MDB_val k1 = {7, "applied"}, v1 = {8, &w->applied};
        mdb_put(txn, meta, &k1, &v1, 0);
        if (mdb_txn_commit(txn) != 0)
            return NULL;
        atomic_fetch_add(&w->commits, 1);
    }
    return NULL;
}

static void take_while_writing(void **state)
{
    struct fixture *f = *state;
    /* Make the dbi handles known to the environment before the thread uses them. */
    env_apply(f->env, &f->applied, 1, 3);
    struct writer w = {.env = f->env, .applied = f->applied};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    while (atomic_load(&w.commits) < 20)
        usleep(100);
    long before = atomic_load(&w.commits);
    struct store_snapshot_info info = take(f);
    long during = atomic_load(&w.commits) - before;
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    print_message("writer committed %ld transactions while the snapshot was taken\n", during);
    assert_true(info.index > 2001);

    char *dest;
    assert_true(asprintf(&dest, "%s/restored", f->root) > 0);
    assert_int_equal(store_snapshot_extract(f->sd, info.index, info.term, dest), 0);
    MDB_env *copy = env_open(dest, MDB_RDONLY);
    MDB_txn *txn;
    MDB_dbi kv;
    MDB_stat st;
    assert_int_equal(mdb_txn_begin(copy, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "kv", 0, &kv), 0);
    assert_int_equal(mdb_stat(txn, kv, &st), 0);
    /* Keys 1..index exactly: the header's index is the copy's applied index. */
    assert_int_equal(st.ms_entries, info.index);
    MDB_cursor *c;
    MDB_val k, v;
    assert_int_equal(mdb_cursor_open(txn, kv, &c), 0);
    assert_int_equal(mdb_cursor_get(c, &k, &v, MDB_LAST), 0);
    char want[32];
    snprintf(want, sizeof want, "k%010llu", (unsigned long long)info.index);
    assert_int_equal(k.mv_size, strlen(want));
    assert_memory_equal(k.mv_data, want, k.mv_size);
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(copy);
    free(dest);
}

/* --- refusals ------------------------------------------------------------------------------- */

/* The follower holds an older snapshot and an extracted environment; a bad transfer must not
 * touch either. */
struct follower {
    struct store_snapshot_dir *sd;
    char *state;
    struct store_snapshot_info old;
};

static void follower_init(struct fixture *f, struct follower *fo)
{
    fo->sd = other_dir(f, "follower", 2);
    fo->old = take(f);
    assert_int_equal(stream(f->sd, fo->sd, fo->old, 1 << 16, UINT64_MAX, NULL, NULL), 0);
    assert_true(asprintf(&fo->state, "%s/follower-state", f->root) > 0);
    assert_int_equal(store_snapshot_extract(fo->sd, fo->old.index, fo->old.term, fo->state), 0);
}

static void follower_check_untouched(struct fixture *f, struct follower *fo)
{
    struct store_snapshot_info *v;
    size_t n;
    assert_int_equal(store_snapshot_list(fo->sd, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].index, fo->old.index);
    free(v);
    /* The old file is intact: extracting it checks every byte of its payload. */
    char *p;
    assert_true(asprintf(&p, "%s/follower-check", f->root) > 0);
    if (store_snapshot_extract(fo->sd, fo->old.index, fo->old.term, p) != 0)
        fail_msg("extract the old snapshot: %s", errmsg(fo->sd));
    tmpdir_remove(p); /* frees p */
    assert_true(asprintf(&p, "%s/follower", f->root) > 0);
    assert_int_equal(count_files(p, "tmp-"), 0);
    free(p);
    MDB_env *env = env_open(fo->state, MDB_RDONLY);
    MDB_txn *txn;
    MDB_dbi meta;
    MDB_val k = {7, "applied"}, val;
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    assert_int_equal(mdb_get(txn, meta, &k, &val), 0);
    uint64_t applied;
    memcpy(&applied, val.mv_data, 8);
    assert_int_equal(applied, fo->old.index);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

static void follower_free(struct follower *fo)
{
    store_snapshot_dir_close(fo->sd);
    free(fo->state);
}

static void truncated_snapshot_refused(void **state)
{
    struct fixture *f = *state;
    struct follower fo;
    follower_init(f, &fo);
    env_apply(f->env, &f->applied, 100, 4);
    struct store_snapshot_info info = take(f);

    /* Cut at several places: inside the fixed header, the config, the payload, one byte
     * short of the end. */
    uint64_t cuts[] = {0, 1, 47, 50, 60, info.size / 2, info.size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        int rc = stream(f->sd, fo.sd, info, 8192, cuts[i], NULL, NULL);
        if (rc != RFS_ECORRUPT)
            fail_msg("cut at %llu: rc %d (%s)", (unsigned long long)cuts[i], rc, errmsg(fo.sd));
        assert_non_null(strstr(errmsg(fo.sd), "truncated"));
        follower_check_untouched(f, &fo);
    }
    /* Trailing garbage is refused too. */
    struct store_snapshot_receiver *w;
    assert_int_equal(store_snapshot_receive_begin(fo.sd, info.index, info.term, &w), 0);
    struct store_snapshot_reader *r;
    assert_int_equal(store_snapshot_open(f->sd, info.index, info.term, &r), 0);
    uint8_t *buf = malloc(info.size + 1);
    size_t n;
    assert_int_equal(store_snapshot_reader_read(r, 0, buf, info.size, &n), 0);
    buf[info.size] = 0;
    assert_int_equal(store_snapshot_receive_write(w, 0, buf, info.size + 1), 0);
    assert_int_equal(store_snapshot_receive_finish(w, NULL), RFS_ECORRUPT);
    free(buf);
    store_snapshot_reader_close(r);
    follower_check_untouched(f, &fo);
    follower_free(&fo);
}

struct flip {
    uint64_t pos;
    uint8_t mask;
};

static void flip_bit(uint8_t *buf, uint64_t off, size_t len, void *arg)
{
    struct flip *fl = arg;
    if (fl->pos >= off && fl->pos < off + len)
        buf[fl->pos - off] ^= fl->mask;
}

static void bit_flip_anywhere_refused(void **state)
{
    struct fixture *f = *state;
    struct follower fo;
    follower_init(f, &fo);
    env_apply(f->env, &f->applied, 100, 4);
    struct store_snapshot_info info = take(f);
    uint64_t seed = test_seed();

    /* Every bit of the header, then random bits of the payload. */
    struct store_snapshot_reader *r;
    assert_int_equal(store_snapshot_open(f->sd, info.index, info.term, &r), 0);
    uint64_t hlen = 48 + store_snapshot_reader_meta(r)->config_len + 4;
    store_snapshot_reader_close(r);
    int tried = 0;
    for (uint64_t pos = 0; pos < hlen + 200; pos++) {
        struct flip fl;
        if (pos < hlen) {
            fl = (struct flip){pos, (uint8_t)(1u << (pos % 8))};
        } else {
            fl.pos = hlen + test_rand(&seed) % (info.size - hlen);
            fl.mask = (uint8_t)(1u << (test_rand(&seed) % 8));
        }
        int rc = stream(f->sd, fo.sd, info, 1 << 16, UINT64_MAX, flip_bit, &fl);
        if (rc != RFS_ECORRUPT)
            fail_msg("flip at %llu mask %02x: rc %d (%s); seed %llu", (unsigned long long)fl.pos,
                     fl.mask, rc, errmsg(fo.sd), (unsigned long long)seed);
        tried++;
    }
    follower_check_untouched(f, &fo);
    assert_true(tried > 200);
    follower_free(&fo);
}

static void wrong_index_or_order_refused(void **state)
{
    struct fixture *f = *state;
    struct store_snapshot_info info = take(f);
    struct store_snapshot_dir *to = other_dir(f, "to", 2);
    /* Announced with another index than the header carries. */
    struct store_snapshot_info lie = info;
    lie.index++;
    struct store_snapshot_reader *r;
    struct store_snapshot_receiver *w;
    assert_int_equal(store_snapshot_open(f->sd, info.index, info.term, &r), 0);
    assert_int_equal(store_snapshot_receive_begin(to, lie.index, lie.term, &w), 0);
    uint8_t *buf = malloc(info.size);
    size_t n;
    assert_int_equal(store_snapshot_reader_read(r, 0, buf, info.size, &n), 0);
    /* Out of order chunks are refused and write nothing. */
    assert_int_equal(store_snapshot_receive_write(w, 10, buf + 10, 10), RFS_ERANGE);
    assert_non_null(strstr(errmsg(to), "expected 0"));
    assert_int_equal(store_snapshot_receive_write(w, 0, buf, 100), 0);
    assert_int_equal(store_snapshot_receive_write(w, 0, buf, 100), RFS_ERANGE);
    assert_int_equal(store_snapshot_receive_write(w, 100, buf + 100, info.size - 100), 0);
    assert_int_equal(store_snapshot_receive_finish(w, NULL), RFS_EINVAL);
    assert_non_null(strstr(errmsg(to), "header says"));
    struct store_snapshot_info *v;
    size_t count;
    assert_int_equal(store_snapshot_list(to, &v, &count), 0);
    assert_int_equal(count, 0);
    free(v);
    /* An abandoned receive leaves nothing. */
    assert_int_equal(store_snapshot_receive_begin(to, info.index, info.term, &w), 0);
    assert_int_equal(store_snapshot_receive_write(w, 0, buf, 10), 0);
    store_snapshot_receive_abort(w);
    char *p;
    assert_true(asprintf(&p, "%s/to", f->root) > 0);
    assert_int_equal(count_files(p, "tmp-"), 0);
    free(p);
    free(buf);
    store_snapshot_reader_close(r);
    store_snapshot_dir_close(to);
}

static void corrupted_stored_file_not_extracted(void **state)
{
    struct fixture *f = *state;
    struct follower fo;
    follower_init(f, &fo);
    /* Damage the stored file itself (bit rot after receive), at the end of the payload. */
    char *p;
    assert_true(asprintf(&p, "%s/follower/snap-%016llx-%016llx.rfs", f->root,
                         (unsigned long long)fo.old.index, (unsigned long long)fo.old.term) > 0);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)fo.old.size - 10), 1);
    b ^= 0x01;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)fo.old.size - 10), 1);
    close(fd);
    free(p);

    /* Extracting it over the existing state fails and leaves the state as it was. */
    assert_int_equal(store_snapshot_extract(fo.sd, fo.old.index, fo.old.term, fo.state),
                     RFS_ECORRUPT);
    assert_non_null(strstr(errmsg(fo.sd), "payload checksum"));
    assert_int_equal(count_files(f->root, "follower-state.tmp-"), 0);
    MDB_env *env = env_open(fo.state, MDB_RDONLY);
    assert_same_db(f->env, env, "kv");
    mdb_env_close(env);
    assert_int_equal(store_snapshot_extract(fo.sd, 1, 1, fo.state), RFS_ENOTFOUND);
    follower_free(&fo);
}

/* --- retention and housekeeping ------------------------------------------------------------- */

static void retention_keeps_newest(void **state)
{
    struct fixture *f = *state;
    uint64_t idx[5];
    for (int i = 0; i < 5; i++) {
        env_apply(f->env, &f->applied, 3, 3);
        idx[i] = take(f).index;
    }
    struct store_snapshot_info *v;
    size_t n;
    assert_int_equal(store_snapshot_list(f->sd, &v, &n), 0);
    assert_int_equal(n, 2); /* default keep */
    assert_int_equal(v[0].index, idx[4]);
    assert_int_equal(v[1].index, idx[3]);
    free(v);

    /* An explicit, smaller retention; a reader keeps a deleted file readable. */
    struct store_snapshot_reader *r;
    assert_int_equal(store_snapshot_open(f->sd, idx[3], 3, &r), 0);
    assert_int_equal(store_snapshot_retain(f->sd, 1), 0);
    assert_int_equal(store_snapshot_retain(f->sd, 0), RFS_EINVAL);
    assert_int_equal(store_snapshot_list(f->sd, &v, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].index, idx[4]);
    free(v);
    uint8_t b[8];
    size_t got;
    assert_int_equal(store_snapshot_reader_read(r, 0, b, sizeof b, &got), 0);
    assert_int_equal(got, 8);
    assert_memory_equal(b, "RFSSNAP", 8);
    store_snapshot_reader_close(r);

    /* keep = 3 through the options. */
    struct store_snapshot_dir *three = other_dir(f, "three", 3);
    for (int i = 0; i < 5; i++) {
        env_apply(f->env, &f->applied, 1, 3);
        int calls = 0;
        assert_int_equal(store_snapshot_take(three, f->env, describe, &calls, NULL, NULL), 0);
    }
    assert_int_equal(store_snapshot_list(three, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].index, f->applied);
    assert_int_equal(v[2].index, f->applied - 2);
    free(v);
    store_snapshot_dir_close(three);
}

static void open_removes_temporaries(void **state)
{
    struct fixture *f = *state;
    take(f);
    char *p, *dir;
    assert_true(asprintf(&dir, "%s/snaps", f->root) > 0);
    assert_true(asprintf(&p, "%s/tmp-recv-abcdef", dir) > 0);
    int fd = open(p, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    close(fd);
    free(p);
    assert_true(asprintf(&p, "%s/unrelated", dir) > 0);
    fd = open(p, O_CREAT | O_WRONLY, 0600);
    close(fd);
    free(p);
    store_snapshot_dir_close(f->sd);
    assert_int_equal(store_snapshot_dir_open(dir, NULL, &f->sd, NULL, 0), 0);
    assert_int_equal(count_files(dir, "tmp-"), 0);
    assert_int_equal(count_files(dir, "unrelated"), 1);
    assert_int_equal(count_files(dir, "snap-"), 1);
    struct store_snapshot_info *v;
    size_t n;
    assert_int_equal(store_snapshot_list(f->sd, &v, &n), 0);
    assert_int_equal(n, 1); /* strangers are not snapshots */
    free(v);
    free(dir);
}

/* --- decoding ------------------------------------------------------------------------------- */

static size_t build_image(uint8_t *buf, uint32_t version, const char *config, const char *payload)
{
    size_t clen = strlen(config), plen = strlen(payload), hlen = 48 + clen + 4;
    memset(buf, 0, hlen);
    memcpy(buf, "RFSSNAP", 8);
    uint64_t fields[] = {version, hlen, 42, 7, plen, rfs_crc32c(0, payload, plen), clen};
    /* version u32 @8, hlen u32 @12, index u64 @16, term u64 @24, plen u64 @32, crc u32 @40,
     * config_len u32 @44 */
    int offs[] = {8, 12, 16, 24, 32, 40, 44}, sizes[] = {4, 4, 8, 8, 8, 4, 4};
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < sizes[i]; j++)
            buf[offs[i] + j] = (uint8_t)(fields[i] >> (8 * j));
    memcpy(buf + 48, config, clen);
    uint32_t crc = rfs_crc32c(0, buf, hlen - 4);
    for (int j = 0; j < 4; j++)
        buf[hlen - 4 + j] = (uint8_t)(crc >> (8 * j));
    memcpy(buf + hlen, payload, plen);
    return hlen + plen;
}

static void header_decoding(void **state)
{
    (void)state;
    uint8_t img[256];
    struct store_snapshot_header h;
    /* The documented layout, built by hand, is what the decoder accepts. */
    size_t len = build_image(img, 1, "cfg", "payload bytes");
    assert_int_equal(store_snapshot_image_verify(img, len, &h), 0);
    assert_int_equal(h.meta.index, 42);
    assert_int_equal(h.meta.term, 7);
    assert_int_equal(h.meta.config_len, 3);
    assert_memory_equal(h.meta.config, "cfg", 3);
    assert_int_equal(h.payload_len, 13);
    assert_int_equal(h.header_len, 55);
    /* Every prefix is refused, never read past. */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, img, cut);
        assert_int_equal(store_snapshot_image_verify(copy, cut, &h), RFS_ECORRUPT);
        free(copy);
    }
    /* An intact header of another version is a format error, not corruption. */
    len = build_image(img, 2, "cfg", "payload bytes");
    assert_int_equal(store_snapshot_header_decode(img, len, &h), RFS_EFORMAT);
    /* Empty config and payload are fine. */
    len = build_image(img, 1, "", "");
    assert_int_equal(store_snapshot_image_verify(img, len, &h), 0);
    assert_null(h.meta.config);
    /* Header length out of range. */
    len = build_image(img, 1, "", "");
    img[15] = 0x7f;
    assert_int_equal(store_snapshot_header_decode(img, len, &h), RFS_ECORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(take_stream_receive_extract, setup, teardown),
        cmocka_unit_test_setup_teardown(take_with_given_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(take_while_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(truncated_snapshot_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bit_flip_anywhere_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_index_or_order_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupted_stored_file_not_extracted, setup, teardown),
        cmocka_unit_test_setup_teardown(retention_keeps_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(open_removes_temporaries, setup, teardown),
        cmocka_unit_test(header_decoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
