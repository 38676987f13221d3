/* The logical space count of the inode state machine (docs/fsm-format.md, "Space"): what each
 * command charges, deletions that always succeed at the limit, equal decisions from equal
 * logs whatever the batching, map size or readers, the count through snapshots, reopening and
 * the upgrade of an older store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
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

#define R     STORE_FSM_ROOT_INO
#define INODE 128u
#define BLOCK 4096u

static uint64_t entry(size_t name_len)
{
    return 64 + 2 * name_len;
}

static uint64_t xattr(size_t name_len, size_t value_len)
{
    return 32 + name_len + value_len;
}

/* The count, checked against a fresh walk of the tables (the accounting's invariant). */
static uint64_t used_of(struct fx *f)
{
    struct store_fsm_statfs st;
    uint64_t walked;
    assert_int_equal(store_fsm_statfs(f->fsm, &st), 0);
    assert_int_equal(store_fsm_space_recount(f->fsm, &walked), 0);
    assert_int_equal(st.space_used, walked);
    return st.space_used;
}

static int open_limit(struct fx *f, uint64_t limit)
{
    struct store_fsm_options o = {.space_limit = limit, .root_time = {T0, 0}, .no_sync = true};
    return fx_open_opts(f, &o);
}

static void charges_of_each_command(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t u = INODE; /* the root */
    assert_int_equal(used_of(&f), u);

    uint64_t a = do_create(&f, R, "a", 0644, 0).ino;
    assert_int_equal(used_of(&f), u += INODE + entry(1));
    /* CREATE of an existing file without EXCL changes nothing. */
    assert_true(do_create(&f, R, "a", 0644, 0).existed);
    assert_int_equal(used_of(&f), u);
    uint64_t d = do_mkdir(&f, R, "dir", 0755).ino;
    assert_int_equal(used_of(&f), u += INODE + entry(3));
    assert_int_equal(do_mknod(&f, d, "fifo", S_IFIFO | 0644).err, 0);
    assert_int_equal(used_of(&f), u += INODE + entry(4));
    assert_int_equal(do_symlink(&f, d, "ln", "../a/target").err, 0);
    assert_int_equal(used_of(&f), u += INODE + entry(2) + 11);
    assert_int_equal(do_link(&f, a, d, "hard").err, 0);
    assert_int_equal(used_of(&f), u += entry(4));

    /* Data: whole blocks as stored; holes and rewrites of stored blocks cost nothing. */
    static char buf[3 * BLOCK];
    memset(buf, 'x', sizeof buf);
    assert_int_equal(do_write(&f, a, 0, buf, 10).err, 0);
    assert_int_equal(used_of(&f), u += BLOCK);
    assert_int_equal(do_write(&f, a, 100, buf, 1000).err, 0);
    assert_int_equal(used_of(&f), u);
    assert_int_equal(do_write(&f, a, 10 * BLOCK + 5, buf, BLOCK).err, 0); /* spans 2 blocks */
    assert_int_equal(used_of(&f), u += 2 * BLOCK);
    assert_int_equal(do_truncate(&f, a, 100 * BLOCK).err, 0); /* a hole */
    assert_int_equal(used_of(&f), u);
    assert_int_equal(do_truncate(&f, a, 10 * BLOCK + 1).err, 0); /* cuts the last block */
    assert_int_equal(used_of(&f), u -= BLOCK);
    assert_int_equal(do_truncate(&f, a, 5).err, 0);
    assert_int_equal(used_of(&f), u -= BLOCK);
    assert_int_equal(do_replace(&f, a, buf, 2 * BLOCK + 1).err, 0);
    assert_int_equal(used_of(&f), u += 2 * BLOCK);
    assert_int_equal(do_replace(&f, a, buf, 0).err, 0);
    assert_int_equal(used_of(&f), u -= 3 * BLOCK);
    assert_int_equal(do_write(&f, a, 0, buf, sizeof buf).err, 0);
    assert_int_equal(used_of(&f), u += 3 * BLOCK);

    /* Xattrs: name and value; a replacement charges the difference. */
    assert_int_equal(do_setxattr(&f, a, "user.k", "12345", 0).err, 0);
    assert_int_equal(used_of(&f), u += xattr(6, 5));
    assert_int_equal(do_setxattr(&f, a, "user.k", "1", 0).err, 0);
    assert_int_equal(used_of(&f), u -= 4);
    assert_int_equal(do_setxattr(&f, d, "user.long", "123456789", 0).err, 0);
    assert_int_equal(used_of(&f), u += xattr(9, 9));
    assert_int_equal(do_removexattr(&f, d, "user.long").err, 0);
    assert_int_equal(used_of(&f), u -= xattr(9, 9));

    /* Rename: a new name swaps one entry for another; over a target the target goes;
     * an exchange costs nothing. */
    assert_int_equal(do_rename(&f, d, "hard", R, "hard-longer", 0).err, 0);
    assert_int_equal(used_of(&f), u += entry(11) - entry(4));
    assert_int_equal(do_rename(&f, R, "hard-longer", d, "h", 0).err, 0);
    assert_int_equal(used_of(&f), u -= entry(11) - entry(1));
    assert_int_equal(do_rename(&f, d, "fifo", d, "ln", STORE_CMD_EXCHANGE).err, 0);
    assert_int_equal(used_of(&f), u);
    /* "fifo" now names the symlink: moved over "ln", the FIFO goes. */
    assert_int_equal(do_rename(&f, d, "fifo", d, "ln", 0).err, 0);
    assert_int_equal(used_of(&f), u -= entry(4) + INODE);

    /* Unlink of one of two links frees the entry; of the last the whole inode. */
    assert_int_equal(do_unlink(&f, d, "h", 0).err, 0);
    assert_int_equal(used_of(&f), u -= entry(1));
    assert_int_equal(do_unlink(&f, R, "a", 0).err, 0);
    assert_int_equal(used_of(&f), u -= entry(1) + INODE + 3 * BLOCK + xattr(6, 1));
    /* An orphan stays charged until its last holder forgets it. */
    uint64_t o = do_create(&f, d, "open", 0644, 0).ino;
    assert_int_equal(do_write(&f, o, 0, buf, 1).err, 0);
    assert_int_equal(used_of(&f), u += INODE + entry(4) + BLOCK);
    struct store_cmd c = c_named(&f, STORE_CMD_UNLINK, d, "open");
    c.flags = STORE_CMD_KEEP_OPEN;
    c.holders = 3;
    assert_true(fx_apply(&f, &c).dropped_is_orphan);
    assert_int_equal(used_of(&f), u -= entry(4));
    c = cmd_base(&f, STORE_CMD_FORGET);
    c.ino = o;
    c.holders = 1;
    assert_int_equal(fx_apply(&f, &c).err, 0);
    assert_int_equal(used_of(&f), u);
    c.holders = 2;
    assert_int_equal(fx_apply(&f, &c).dropped_ino, o);
    assert_int_equal(used_of(&f), u -= INODE + BLOCK);
    assert_int_equal(do_unlink(&f, d, "ln", 0).err, 0);
    assert_int_equal(used_of(&f), u -= entry(2) + INODE + 11);
    assert_int_equal(do_rmdir(&f, R, "dir").err, 0);
    assert_int_equal(used_of(&f), INODE);
    fx_close(&f);
}

/* Fill a store of limit bytes with 1-block files until one is refused; returns the count. */
static unsigned fill(struct fx *f, uint64_t dir)
{
    static char block[BLOCK];
    memset(block, 'f', sizeof block);
    for (unsigned k = 0;; k++) {
        char name[16];
        snprintf(name, sizeof name, "f%u", k);
        struct store_fsm_result r = do_create(f, dir, name, 0644, 0);
        if (r.err == ENOSPC)
            return k;
        assert_int_equal(r.err, 0);
        r = do_write(f, r.ino, 0, block, sizeof block);
        if (r.err == ENOSPC)
            return k;
        assert_int_equal(r.err, 0);
    }
}

static void refusals_change_nothing_and_deletions_succeed_at_the_limit(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(open_limit(&f, 256 * 1024), 0);
    uint64_t d = do_mkdir(&f, R, "d", 0755).ino;
    uint64_t a = do_create(&f, R, "a", 0644, 0).ino;
    static char big[4 * BLOCK];
    assert_int_equal(do_write(&f, a, 0, big, sizeof big).err, 0);
    assert_int_equal(do_setxattr(&f, a, "user.x", "value", 0).err, 0);
    unsigned n = fill(&f, d);
    assert_true(n > 40 && n < 64);
    assert_true(used_of(&f) <= 256 * 1024);
    /* Use up the last bytes with links under ever shorter names until even a 3-byte name is
     * refused: then nothing that needs an entry fits. */
    char name[256], longest[256], first[256] = "";
    unsigned links = 0;
    for (int len = 255; len >= 3; len--) {
        for (;;) {
            snprintf(name, sizeof name, "%0*u", len, links);
            struct store_fsm_result r = do_link(&f, a, R, name);
            if (r.err == ENOSPC)
                break;
            assert_int_equal(r.err, 0);
            if (links++ == 0)
                memcpy(first, name, sizeof name);
        }
    }
    assert_true(links > 0 && strlen(first) > 1);
    uint64_t full = used_of(&f);
    assert_true(full <= 256 * 1024 && full + 70 > 256 * 1024);
    uint8_t before[STORE_FSM_DIGEST_SIZE], after[STORE_FSM_DIGEST_SIZE];
    assert_int_equal(store_fsm_digest(f.fsm, before), 0);

    /* Everything that would raise the count is refused, and changes nothing. */
    static char more[64 * BLOCK];
    memset(longest, 'L', 255);
    longest[255] = '\0';
    assert_int_equal(do_write(&f, a, sizeof big, more, sizeof more).err, ENOSPC);
    assert_int_equal(do_write(&f, a, 1 << 20, "x", 1).err, ENOSPC); /* one new block */
    assert_int_equal(do_replace(&f, a, more, sizeof more).err, ENOSPC);
    assert_int_equal(do_setxattr(&f, a, "user.y", "1", 0).err, ENOSPC);
    assert_int_equal(do_setxattr(&f, a, "user.x", "a longer value than before", 0).err, ENOSPC);
    assert_int_equal(do_create(&f, R, "new", 0644, 0).err, ENOSPC);
    assert_int_equal(do_mkdir(&f, R, "newdir", 0755).err, ENOSPC);
    assert_int_equal(do_symlink(&f, R, "sl", "t").err, ENOSPC);
    assert_int_equal(do_rename(&f, R, "a", R, longest, 0).err, ENOSPC);
    assert_int_equal(store_fsm_digest(f.fsm, after), 0);
    assert_memory_equal(before, after, sizeof before);
    assert_int_equal(used_of(&f), full);
    /* What needs no more room is allowed when full: rewriting stored bytes, a truncation up
     * (a hole), the same xattr value again, an exchange. */
    assert_int_equal(do_write(&f, a, 0, "over", 4).err, 0);
    assert_int_equal(do_truncate(&f, a, 1 << 20).err, 0);
    assert_int_equal(do_setxattr(&f, a, "user.x", "value", 0).err, 0);
    assert_int_equal(do_rename(&f, d, "f0", d, "f1", STORE_CMD_EXCHANGE).err, 0);
    assert_int_equal(used_of(&f), full);

    /* Everything that lowers the count goes through. */
    assert_int_equal(do_rename(&f, R, first, R, "b", 0).err, 0); /* a shorter name */
    assert_true(used_of(&f) < full);
    assert_int_equal(do_removexattr(&f, a, "user.x").err, 0);
    assert_int_equal(do_truncate(&f, a, 1).err, 0);
    assert_int_equal(do_rename(&f, d, "f0", d, "f1", 0).err, 0); /* over a file */
    struct store_cmd c = c_named(&f, STORE_CMD_UNLINK, d, "f2");
    c.flags = STORE_CMD_KEEP_OPEN;
    c.holders = 1;
    uint64_t orphan = ino_of(&f, d, "f2");
    assert_true(fx_apply(&f, &c).dropped_is_orphan);
    c = cmd_base(&f, STORE_CMD_FORGET);
    c.ino = orphan;
    c.holders = 1;
    assert_int_equal(fx_apply(&f, &c).dropped_ino, orphan);
    for (unsigned k = 3; k <= n; k++) { /* f<n> exists if its write was the refused one */
        snprintf(name, sizeof name, "f%u", k);
        int err = do_unlink(&f, d, name, 0).err;
        assert_true(err == 0 || (k == n && err == ENOENT));
    }
    assert_int_equal(do_unlink(&f, d, "f1", 0).err, 0);
    assert_int_equal(do_rmdir(&f, R, "d").err, 0);
    assert_true(used_of(&f) < full - 40 * BLOCK);
    /* And the room is there again. */
    assert_true(fill(&f, R) > 40);
    fx_close(&f);
}

/* A reader that holds one read transaction (and so the pages it sees) until told to stop. */
struct pin {
    struct store_fsm *fsm;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_held, is_done;
};

static int pin_wait(void *arg, const char *name, size_t len, uint64_t ino, uint32_t type,
                    uint64_t next)
{
    (void)name, (void)len, (void)ino, (void)type, (void)next;
    struct pin *p = arg;
    pthread_mutex_lock(&p->lock);
    p->is_held = true;
    pthread_cond_broadcast(&p->cond);
    while (!p->is_done)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return 1;
}

static void *pin_main(void *arg)
{
    struct pin *p = arg;
    assert_int_equal(store_fsm_readdir(p->fsm, R, 0, pin_wait, p), 0);
    return NULL;
}

#define N_CMDS 1500

/* A seeded log of commands over a small tree of guessed inode numbers and names: many are
 * refused for other reasons, which is as good a test of equal decisions as any. */
struct script {
    struct store_cmd cmds[N_CMDS];
    char names[N_CMDS][2][16];
};

static void script_make(struct script *s, uint64_t seed)
{
    static char data[40000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)(i * 7 + 1);
    uint64_t st = seed;
    for (unsigned i = 0; i < N_CMDS; i++) {
        struct store_cmd *c = &s->cmds[i];
        memset(c, 0, sizeof *c);
        c->time_sec = T0 + i;
        uint64_t r = test_rand(&st);
        for (int k = 0; k < 2; k++)
            snprintf(s->names[i][k], sizeof s->names[i][k], "%.*s%u", (int)(test_rand(&st) % 6),
                     "nnnnnn", (unsigned)(test_rand(&st) % 12));
        c->name = s->names[i][0];
        c->name_len = strlen(c->name);
        c->name2 = s->names[i][1];
        c->name2_len = strlen(c->name2);
        uint64_t dirs[] = {R, 2, 3};
        c->ino = dirs[test_rand(&st) % 3];
        c->ino2 = dirs[test_rand(&st) % 3];
        uint64_t any = 1 + test_rand(&st) % 60;
        c->mode = 0644;
        switch (r % 12) {
        case 0:
        case 1: c->type = STORE_CMD_CREATE; break;
        case 2: c->type = STORE_CMD_MKDIR; break;
        case 3:
            c->type = STORE_CMD_SYMLINK;
            c->data = (const uint8_t *)data;
            c->data_len = 1 + test_rand(&st) % 300;
            break;
        case 4:
        case 5:
            c->type = STORE_CMD_WRITE;
            c->ino = any;
            c->offset = test_rand(&st) % 60000;
            c->data = (const uint8_t *)data;
            c->data_len = 1 + test_rand(&st) % sizeof data;
            break;
        case 6:
            c->type = STORE_CMD_REPLACE;
            c->ino = any;
            c->data = (const uint8_t *)data;
            c->data_len = test_rand(&st) % sizeof data;
            break;
        case 7:
            c->type = STORE_CMD_SETATTR;
            c->ino = any;
            c->valid = STORE_CMD_SET_SIZE;
            c->size = test_rand(&st) % 70000;
            break;
        case 8:
            c->type = STORE_CMD_SETXATTR;
            c->ino = any;
            snprintf(s->names[i][0], sizeof s->names[i][0], "user.%u",
                     (unsigned)(test_rand(&st) % 3));
            c->name_len = strlen(c->name);
            c->data = (const uint8_t *)data;
            c->data_len = test_rand(&st) % 2000;
            break;
        case 9: c->type = (r >> 8) & 1 ? STORE_CMD_UNLINK : STORE_CMD_RMDIR; break;
        case 10:
            c->type = STORE_CMD_RENAME;
            c->flags = (r >> 8) % 3 == 0 ? STORE_CMD_EXCHANGE : 0;
            break;
        case 11:
            c->type = STORE_CMD_LINK;
            c->ino = any;
            break;
        }
    }
}

/* Apply the script in batches of 1..max_batch commands. */
static void script_apply(struct fx *f, const struct script *s, unsigned max_batch, uint64_t seed,
                         struct store_fsm_result *res)
{
    uint64_t st = seed;
    for (unsigned i = 0; i < N_CMDS;) {
        unsigned n = 1 + (unsigned)(test_rand(&st) % max_batch);
        if (n > N_CMDS - i)
            n = N_CMDS - i;
        int r = store_fsm_apply_batch(f->fsm, f->index + i + n, 1, s->cmds + i, n, res + i);
        char msg[256];
        if (r != 0)
            fail_msg("apply: %s (%s)", rfs_strerror(r), fx_errmsg(f->fsm, msg, sizeof msg));
        i += n;
    }
    f->index += N_CMDS;
}

static void equal_logs_equal_decisions(void **state)
{
    (void)state;
    uint64_t seed = test_seed();
    printf("seed %llu (replay with RAFTFS_SEED)\n", (unsigned long long)seed);
    struct script *s = malloc(sizeof *s);
    struct store_fsm_result *ra = calloc(N_CMDS, sizeof *ra), *rb = calloc(N_CMDS, sizeof *rb);
    assert_non_null(s);
    script_make(s, seed);
    /* A: each command alone, a huge map. B: batches of up to 64, the map sized from the
     * limit, and a reader holding the pages of the empty tree all along. */
    struct fx a, b;
    const uint64_t limit = 300 * 1024;
    struct store_fsm_options oa = {
        .space_limit = limit, .map_size = 1 << 30, .root_time = {T0, 0}, .no_sync = true};
    struct store_fsm_options ob = {.space_limit = limit, .root_time = {T0, 0}, .no_sync = true};
    assert_int_equal(fx_open_opts(&a, &oa), 0);
    assert_int_equal(fx_open_opts(&b, &ob), 0);
    script_apply(&a, s, 1, seed, ra);
    struct pin p = {.fsm = b.fsm};
    pthread_mutex_init(&p.lock, NULL);
    pthread_cond_init(&p.cond, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pin_main, &p), 0);
    pthread_mutex_lock(&p.lock);
    while (!p.is_held)
        pthread_cond_wait(&p.cond, &p.lock);
    pthread_mutex_unlock(&p.lock);
    script_apply(&b, s, 64, seed ^ 1, rb);
    pthread_mutex_lock(&p.lock);
    p.is_done = true;
    pthread_cond_broadcast(&p.cond);
    pthread_mutex_unlock(&p.lock);
    pthread_join(t, NULL);
    unsigned nospc = 0, freed_after = 0;
    for (unsigned i = 0; i < N_CMDS; i++) {
        if (ra[i].err != rb[i].err || ra[i].ino != rb[i].ino)
            fail_msg("seed %llu: command %u (%s): %d/%llu against %d/%llu",
                     (unsigned long long)seed, i, store_cmd_type_name(s->cmds[i].type), ra[i].err,
                     (unsigned long long)ra[i].ino, rb[i].err, (unsigned long long)rb[i].ino);
        nospc += ra[i].err == ENOSPC;
        freed_after += nospc > 0 && ra[i].err == 0 && s->cmds[i].type == STORE_CMD_CREATE;
    }
    printf("%u refused for space, %u creates after the first refusal\n", nospc, freed_after);
    assert_true(nospc > 0);
    assert_true(freed_after > 0);
    uint8_t da[STORE_FSM_DIGEST_SIZE], db[STORE_FSM_DIGEST_SIZE];
    assert_int_equal(store_fsm_digest(a.fsm, da), 0);
    assert_int_equal(store_fsm_digest(b.fsm, db), 0);
    assert_memory_equal(da, db, sizeof da);
    assert_int_equal(used_of(&a), used_of(&b));
    assert_true(used_of(&a) <= limit);
    fx_close(&a);
    fx_close(&b);
    free(ra);
    free(rb);
    free(s);
}

/* The count and the limit travel with snapshots; a store keeps the limit it was made with
 * whatever the option says later. */
static void snapshot_and_reopen_keep_count_and_limit(void **state)
{
    (void)state;
    char *snapdir = tmpdir_make("fsm-space");
    struct store_snapshot_dir *sd;
    char err[256];
    assert_int_equal(store_snapshot_dir_open(snapdir, NULL, &sd, err, sizeof err), 0);
    struct fx a, b;
    assert_int_equal(open_limit(&a, 300 * 1024), 0);
    assert_int_equal(open_limit(&b, 10 << 20), 0);
    unsigned n = fill(&a, R);
    uint64_t used = used_of(&a);
    struct store_snapshot_info info;
    assert_int_equal(store_fsm_snapshot(a.fsm, sd, &info), 0);
    assert_int_equal(store_fsm_restore(b.fsm, sd, info.index, info.term), 0);
    struct store_fsm_statfs st;
    assert_int_equal(store_fsm_statfs(b.fsm, &st), 0);
    assert_int_equal(st.space_limit, 300 * 1024);
    assert_int_equal(used_of(&b), used);
    b.index = a.index;
    assert_int_equal(do_create(&b, R, "one-more", 0644, 0).err,
                     do_create(&a, R, "one-more", 0644, 0).err);
    /* Reopen with another limit: the recorded one stays, and so do its decisions. */
    store_fsm_close(a.fsm);
    struct store_fsm_options o = {.space_limit = 1 << 30, .no_sync = true};
    assert_int_equal(store_fsm_open(a.dir, &o, &a.fsm, NULL, 0), 0);
    assert_int_equal(store_fsm_statfs(a.fsm, &st), 0);
    assert_int_equal(st.space_limit, 300 * 1024);
    assert_int_equal(st.blocks, 300 * 1024 / 4096);
    static char two[2 * BLOCK];
    assert_true(n > 0);
    assert_int_equal(do_write(&a, ino_of(&a, R, "f0"), 1 << 20, two, sizeof two).err, ENOSPC);
    fx_close(&a);
    fx_close(&b);
    store_snapshot_dir_close(sd);
    tmpdir_remove(snapdir);
}

/* A format 2 store (no space record) is upgraded in place: its count is made by walking the
 * tree and its limit is the option's. */
static void upgrade_counts_the_tree(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t a = do_create(&f, R, "a", 0644, 0).ino;
    static char data[3 * BLOCK];
    assert_int_equal(do_write(&f, a, 0, data, sizeof data).err, 0);
    assert_int_equal(do_setxattr(&f, a, "user.k", "v", 0).err, 0);
    assert_int_equal(do_symlink(&f, R, "s", "target").err, 0);
    uint64_t used = used_of(&f);
    store_fsm_close(f.fsm);
    fx_set_format(f.dir, 2, "space");
    struct store_fsm_options o = {.space_limit = 2 << 20, .no_sync = true};
    assert_int_equal(store_fsm_open(f.dir, &o, &f.fsm, NULL, 0), 0);
    struct store_fsm_statfs st;
    assert_int_equal(store_fsm_statfs(f.fsm, &st), 0);
    assert_int_equal(st.space_limit, 2 << 20);
    assert_int_equal(used_of(&f), used);
    assert_int_equal(used, INODE * 3 + entry(1) * 2 + 3 * BLOCK + xattr(6, 1) + 6);
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(charges_of_each_command),
        cmocka_unit_test(refusals_change_nothing_and_deletions_succeed_at_the_limit),
        cmocka_unit_test(equal_logs_equal_decisions),
        cmocka_unit_test(snapshot_and_reopen_keep_count_and_limit),
        cmocka_unit_test(upgrade_counts_the_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
