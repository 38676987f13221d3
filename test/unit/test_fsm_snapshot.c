/* Snapshots of the inode state machine: the snapshot property of the storage issue (apply a
 * sequence to A; a prefix to B, snapshot B, restore into a fresh C, apply the rest to C: A and C
 * hold the same tree), restores racing with readers, and a damaged snapshot leaving the state
 * untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/command.h"
#include "lib/error.h"
#include "store/fsm.h"
#include "store/snapshot.h"
#include "test/unit/fsm_util.h"
#include "test/unit/tmpdir.h"

/* One random operation, chosen from (seed, k) and the store's current tree, so that two stores
 * holding the same tree make the same change. */
static void random_op(struct fx *f, uint64_t seed, unsigned k)
{
    uint64_t s = seed * 1000003u + k;
    uint64_t r = test_rand(&s);
    char name[32], other[32];
    snprintf(name, sizeof name, "f%u", (unsigned)(test_rand(&s) % 24));
    snprintf(other, sizeof other, "f%u", (unsigned)(test_rand(&s) % 24));
    uint64_t dir = ino_of(f, 1, "d");
    uint64_t parent = (r & 0x100) && dir ? dir : 1;
    uint64_t ino = ino_of(f, parent, name);
    char data[300];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)test_rand(&s);
    switch (r % 8) {
    case 0: do_create(f, parent, name, 0644, 0); break;
    case 1: do_mkdir(f, 1, "d", 0755); break;
    case 2:
        if (ino)
            do_write(f, ino, test_rand(&s) % 9000, data, 1 + test_rand(&s) % sizeof data);
        break;
    case 3: do_rename(f, parent, name, 1, other, 0); break;
    case 4: do_unlink(f, parent, name, 0); break;
    case 5:
        if (ino)
            do_setxattr(f, ino, "user.k", other, 0);
        break;
    case 6:
        if (ino)
            do_truncate(f, ino, test_rand(&s) % 5000);
        break;
    case 7: do_symlink(f, parent, other, "target/of/link"); break;
    }
}

static void digest_of(struct fx *f, uint8_t out[STORE_FSM_DIGEST_SIZE])
{
    assert_int_equal(store_fsm_digest(f->fsm, out), 0);
}

static void restored_store_continues_like_the_original(void **state)
{
    (void)state;
    uint64_t seed0 = test_seed();
    for (uint64_t seed = seed0; seed < seed0 + 12; seed++) {
        /* A directory per seed: retention keeps the newest snapshots by index. */
        char *snapdir = tmpdir_make("fsm-snap");
        struct store_snapshot_dir *sd;
        char err[256];
        assert_int_equal(store_snapshot_dir_open(snapdir, NULL, &sd, err, sizeof err), 0);
        const unsigned n = 300;
        unsigned prefix = (unsigned)(seed % n);
        struct fx a, b, c;
        assert_int_equal(fx_open(&a), 0);
        assert_int_equal(fx_open(&b), 0);
        assert_int_equal(fx_open(&c), 0);
        for (unsigned k = 0; k < n; k++)
            random_op(&a, seed, k);
        for (unsigned k = 0; k < prefix; k++)
            random_op(&b, seed, k);
        struct store_snapshot_info info;
        int r = store_fsm_snapshot(b.fsm, sd, &info);
        if (r != 0)
            fail_msg("seed %llu: snapshot: %s", (unsigned long long)seed, rfs_strerror(r));
        assert_int_equal(info.index, b.index);
        r = store_fsm_restore(c.fsm, sd, info.index, info.term);
        char msg[256];
        if (r != 0)
            fail_msg("seed %llu: restore: %s (%s)", (unsigned long long)seed, rfs_strerror(r),
                     fx_errmsg(c.fsm, msg, sizeof msg));
        c.index = b.index;
        c.clock = b.clock;
        for (unsigned k = prefix; k < n; k++)
            random_op(&c, seed, k);
        uint8_t da[STORE_FSM_DIGEST_SIZE], dc[STORE_FSM_DIGEST_SIZE];
        digest_of(&a, da);
        digest_of(&c, dc);
        if (memcmp(da, dc, sizeof da) != 0)
            fail_msg("seed %llu (prefix %u): digests differ after restore",
                     (unsigned long long)seed, prefix);
        fx_close(&a);
        fx_close(&b);
        fx_close(&c);
        store_snapshot_dir_close(sd);
        tmpdir_remove(snapdir);
    }
}

struct reader {
    struct store_fsm *fsm;
    atomic_bool stop;
    atomic_ulong reads;
};

static void *read_loop(void *arg)
{
    struct reader *rd = arg;
    while (!atomic_load(&rd->stop)) {
        struct store_fsm_attr attr;
        int r = store_fsm_getattr(rd->fsm, 1, &attr);
        if (r != 0)
            abort(); /* the root always exists, before, during and after a restore */
        atomic_fetch_add(&rd->reads, 1);
    }
    return NULL;
}

static void restore_under_concurrent_reads(void **state)
{
    (void)state;
    char *snapdir = tmpdir_make("fsm-snap");
    struct store_snapshot_dir *sd;
    char err[256];
    assert_int_equal(store_snapshot_dir_open(snapdir, NULL, &sd, err, sizeof err), 0);
    struct fx a, b;
    assert_int_equal(fx_open(&a), 0);
    assert_int_equal(fx_open(&b), 0);
    for (unsigned k = 0; k < 100; k++)
        random_op(&a, 7, k);
    struct store_snapshot_info info;
    assert_int_equal(store_fsm_snapshot(a.fsm, sd, &info), 0);
    struct reader rd = {.fsm = b.fsm};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_loop, &rd), 0);
    /* At least 20 restores, and on until the reader has read during them (a loaded machine may
     * not run it at once), within a bound. */
    for (int i = 0; i < 20 || (atomic_load(&rd.reads) == 0 && i < 20000); i++)
        assert_int_equal(store_fsm_restore(b.fsm, sd, info.index, info.term), 0);
    atomic_store(&rd.stop, true);
    pthread_join(t, NULL);
    assert_true(atomic_load(&rd.reads) > 0);
    uint8_t da[STORE_FSM_DIGEST_SIZE], db[STORE_FSM_DIGEST_SIZE];
    digest_of(&a, da);
    digest_of(&b, db);
    assert_memory_equal(da, db, sizeof da);
    fx_close(&a);
    fx_close(&b);
    store_snapshot_dir_close(sd);
    tmpdir_remove(snapdir);
}

static void damaged_snapshot_leaves_state_alone(void **state)
{
    (void)state;
    char *snapdir = tmpdir_make("fsm-snap");
    struct store_snapshot_dir *sd;
    char err[256];
    assert_int_equal(store_snapshot_dir_open(snapdir, NULL, &sd, err, sizeof err), 0);
    struct fx a, b;
    assert_int_equal(fx_open(&a), 0);
    assert_int_equal(fx_open(&b), 0);
    for (unsigned k = 0; k < 50; k++) {
        random_op(&a, 3, k);
        random_op(&b, 4, k);
    }
    struct store_snapshot_info info;
    assert_int_equal(store_fsm_snapshot(a.fsm, sd, &info), 0);
    uint8_t before[STORE_FSM_DIGEST_SIZE], after[STORE_FSM_DIGEST_SIZE];
    digest_of(&b, before);

    /* Flip one byte in the middle of the snapshot file. */
    struct store_snapshot_info *list;
    size_t n;
    assert_int_equal(store_snapshot_list(sd, &list, &n), 0);
    assert_int_equal(n, 1);
    free(list);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "f=$(ls %s/* | head -n 1); printf '\\377' | dd of=\"$f\" bs=1 seek=%llu "
             "conv=notrunc status=none",
             snapdir, (unsigned long long)(info.size / 2));
    assert_int_equal(system(cmd), 0);
    int r = store_fsm_restore(b.fsm, sd, info.index, info.term);
    assert_int_equal(r, RFS_ECORRUPT);
    digest_of(&b, after);
    assert_memory_equal(before, after, sizeof before);
    /* And it still works. */
    random_op(&b, 4, 50);
    fx_close(&a);
    fx_close(&b);
    store_snapshot_dir_close(sd);
    tmpdir_remove(snapdir);
}

/* The configuration meta of snapshot (index, term) of sd must be want (NULL: none). */
static void assert_snapshot_config(struct store_snapshot_dir *sd, struct store_snapshot_info info,
                                   uint64_t index, const char *want)
{
    struct store_snapshot_reader *r;
    assert_int_equal(info.index, index);
    assert_int_equal(store_snapshot_open(sd, info.index, info.term, &r), 0);
    const struct store_snapshot_meta *m = store_snapshot_reader_meta(r);
    assert_int_equal(m->index, index);
    assert_int_equal(m->config_len, want ? strlen(want) : 0);
    if (want != NULL)
        assert_memory_equal(m->config, want, strlen(want));
    store_snapshot_reader_close(r);
}

/* The configuration that store_fsm_apply_config records is what a snapshot carries (the
 * runtime reads it from there at start), the last one winning, across a reopen. */
static void snapshot_carries_the_configuration(void **state)
{
    (void)state;
    char *snapdir = tmpdir_make("fsm-snap");
    struct store_snapshot_dir *sd;
    char err[256];
    assert_int_equal(store_snapshot_dir_open(snapdir, NULL, &sd, err, sizeof err), 0);
    struct fx f;
    struct store_snapshot_info info;
    assert_int_equal(fx_open(&f), 0);
    do_create(&f, STORE_FSM_ROOT_INO, "a", 0644, 0);
    assert_int_equal(store_fsm_snapshot(f.fsm, sd, &info), 0);
    assert_snapshot_config(sd, info, f.index, NULL);
    assert_int_equal(store_fsm_apply_config(f.fsm, ++f.index, 1, "cfg-1", 5), 0);
    assert_int_equal(store_fsm_apply_config(f.fsm, ++f.index, 1, "cfg-22", 6), 0);
    do_create(&f, STORE_FSM_ROOT_INO, "b", 0644, 0);
    store_fsm_close(f.fsm);
    assert_int_equal(store_fsm_open(f.dir, NULL, &f.fsm, err, sizeof err), 0);
    assert_int_equal(store_fsm_snapshot(f.fsm, sd, &info), 0);
    assert_snapshot_config(sd, info, f.index, "cfg-22");
    fx_close(&f);
    store_snapshot_dir_close(sd);
    tmpdir_remove(snapdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(restored_store_continues_like_the_original),
        cmocka_unit_test(restore_under_concurrent_reads),
        cmocka_unit_test(damaged_snapshot_leaves_state_alone),
        cmocka_unit_test(snapshot_carries_the_configuration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
