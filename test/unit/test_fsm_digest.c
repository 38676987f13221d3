/* State digest: known answers, equality across histories that reach the same tree, and a
 * different digest after any single change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test/unit/fsm_util.h"

#define R STORE_FSM_ROOT_INO

static void hex(const uint8_t *d, char *out)
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

/* Every command of these tests carries the same timestamp, so histories differ only in
 * order and shape, never in the times they leave behind. */
static struct store_fsm_result ap(struct fx *f, struct store_cmd c)
{
    c.time_sec = T0;
    c.time_nsec = 7;
    return fx_apply(f, &c);
}

static struct store_cmd mk(uint8_t type, uint64_t ino, const char *name)
{
    struct store_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.ino = ino;
    c.name = name;
    c.name_len = name ? strlen(name) : 0;
    c.mode = 0644;
    return c;
}

static struct store_cmd with_data(struct store_cmd c, const void *d, size_t n, uint64_t off)
{
    c.data = d;
    c.data_len = n;
    c.offset = off;
    return c;
}

static void digest_of(struct fx *f, uint8_t *d)
{
    assert_int_equal(store_fsm_digest(f->fsm, d), 0);
}

/* History A: straightforward. */
static void build_a(struct fx *f)
{
    static uint8_t zeros[8192];
    ap(f, mk(STORE_CMD_MKDIR, R, "d"));  /* 2 */
    ap(f, mk(STORE_CMD_CREATE, 2, "f")); /* 3 */
    ap(f, mk(STORE_CMD_CREATE, R, "x")); /* 4 */
    ap(f, mk(STORE_CMD_CREATE, R, "y")); /* 5 */
    ap(f, with_data(mk(STORE_CMD_WRITE, 3, NULL), "hello", 5, 0));
    ap(f, with_data(mk(STORE_CMD_SETXATTR, 3, "user.k"), "v", 1, 0));
    ap(f, with_data(mk(STORE_CMD_WRITE, 4, NULL), zeros, sizeof zeros, 0)); /* zeros */
    ap(f, with_data(mk(STORE_CMD_SYMLINK, R, "s"), "d/f", 3, 0));           /* 6 */
    struct store_cmd l = mk(STORE_CMD_LINK, 3, "g");
    l.ino2 = R;
    ap(f, l);
}

/* History B: the same tree by another road, in one batch, at another index. */
static void build_b(struct fx *f)
{
    struct store_cmd c[16];
    struct store_fsm_result res[16];
    int n = 0;
    c[n++] = mk(STORE_CMD_MKDIR, R, "d");
    c[n++] = mk(STORE_CMD_CREATE, 2, "f");
    c[n++] = mk(STORE_CMD_CREATE, R, "x");
    c[n++] = mk(STORE_CMD_CREATE, R, "y");
    /* Set the xattr before the data, and write the data in a longer form then cut it. */
    c[n++] = with_data(mk(STORE_CMD_SETXATTR, 3, "user.k"), "old", 3, 0);
    c[n++] = with_data(mk(STORE_CMD_SETXATTR, 3, "user.k"), "v", 1, 0);
    c[n++] = with_data(mk(STORE_CMD_WRITE, 3, NULL), "hello, world", 12, 0);
    struct store_cmd t = mk(STORE_CMD_SETATTR, 3, NULL);
    t.valid = STORE_CMD_SET_SIZE;
    t.size = 5;
    c[n++] = t;
    /* A hole instead of written zeros. */
    t.ino = 4;
    t.size = 8192;
    c[n++] = t;
    c[n++] = with_data(mk(STORE_CMD_SYMLINK, R, "s"), "d/f", 3, 0);
    struct store_cmd l = mk(STORE_CMD_LINK, 3, "g");
    l.ino2 = R;
    c[n++] = l;
    /* Move x away and back: a new readdir position, the same tree. */
    struct store_cmd rn = mk(STORE_CMD_RENAME, R, "x");
    rn.ino2 = 2;
    rn.name2 = "tmp";
    rn.name2_len = 3;
    c[n++] = rn;
    rn = mk(STORE_CMD_RENAME, 2, "tmp");
    rn.ino2 = R;
    rn.name2 = "x";
    rn.name2_len = 1;
    c[n++] = rn;
    for (int i = 0; i < n; i++) {
        c[i].time_sec = T0;
        c[i].time_nsec = 7;
    }
    assert_int_equal(store_fsm_apply_batch(f->fsm, 1000, 5, c, (size_t)n, res), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(res[i].err, 0);
    assert_int_equal(store_fsm_apply_config(f->fsm, 1001, 5, "conf", 4), 0);
}

static void same_tree_same_digest(void **state)
{
    (void)state;
    struct fx a, b;
    uint8_t da[32], db[32];
    assert_int_equal(fx_open(&a), 0);
    assert_int_equal(fx_open(&b), 0);
    build_a(&a);
    build_b(&b);
    /* The stores really did take different roads. */
    assert_int_not_equal(attr_of(&a, 4).blocks, attr_of(&b, 4).blocks);
    digest_of(&a, da);
    digest_of(&b, db);
    assert_memory_equal(da, db, 32);
    /* And the digest is stable across a reopen. */
    store_fsm_close(b.fsm);
    assert_int_equal(store_fsm_open(b.dir, NULL, &b.fsm, NULL, 0), 0);
    digest_of(&b, db);
    assert_memory_equal(da, db, 32);
    fx_close(&a);
    fx_close(&b);
}

/* One small change to the tree of history A. */
static void change(struct fx *f, int which)
{
    struct store_cmd c;
    switch (which) {
    case 0:
        c = mk(STORE_CMD_SETATTR, 3, NULL);
        c.valid = STORE_CMD_SET_MODE;
        c.mode = 0645;
        break;
    case 1:
        c = mk(STORE_CMD_SETATTR, 3, NULL);
        c.valid = STORE_CMD_SET_UID;
        c.uid = 1;
        break;
    case 2:
        c = mk(STORE_CMD_SETATTR, 5, NULL);
        c.valid = STORE_CMD_SET_MTIME;
        c.mtime_sec = T0;
        c.mtime_nsec = 8;
        break;
    case 3: c = with_data(mk(STORE_CMD_WRITE, 3, NULL), "j", 1, 0); break;
    case 4: c = with_data(mk(STORE_CMD_WRITE, 4, NULL), "\1", 1, 8191); break;
    case 5: c = with_data(mk(STORE_CMD_SETXATTR, 3, "user.k"), "w", 1, 0); break;
    case 6: c = with_data(mk(STORE_CMD_SETXATTR, 2, "user.k"), "v", 1, 0); break;
    case 7:
        c = mk(STORE_CMD_RENAME, R, "y");
        c.ino2 = R;
        c.name2 = "z";
        c.name2_len = 1;
        break;
    case 8: c = mk(STORE_CMD_UNLINK, R, "g"); break;
    case 9: c = with_data(mk(STORE_CMD_REPLACE, 3, NULL), "hellp", 5, 0); break;
    case 10:
        c = mk(STORE_CMD_SETATTR, 4, NULL);
        c.valid = STORE_CMD_SET_SIZE;
        c.size = 8193;
        break;
    case 11: c = mk(STORE_CMD_UNLINK, 2, "f"); break; /* f survives as g: one link fewer */
    case 12:
        c = mk(STORE_CMD_UNLINK, R, "y");
        c.flags = STORE_CMD_KEEP_OPEN; /* y lives on as an orphan */
        break;
    case 13: c = with_data(mk(STORE_CMD_REMOVEXATTR, 3, "user.k"), NULL, 0, 0); break;
    default: fail();
    }
    struct store_fsm_result res = ap(f, c);
    assert_int_equal(res.err, 0);
}

static void any_change_changes_digest(void **state)
{
    (void)state;
    enum { N = 14 };
    uint8_t base[32], d[N][32];
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    build_a(&f);
    digest_of(&f, base);
    fx_close(&f);
    for (int i = 0; i < N; i++) {
        assert_int_equal(fx_open(&f), 0);
        build_a(&f);
        change(&f, i);
        digest_of(&f, d[i]);
        fx_close(&f);
        assert_memory_not_equal(d[i], base, 32);
        for (int j = 0; j < i; j++)
            assert_memory_not_equal(d[i], d[j], 32);
    }
    /* A command that fails changes nothing, so neither does the digest. */
    assert_int_equal(fx_open(&f), 0);
    build_a(&f);
    assert_int_equal(ap(&f, mk(STORE_CMD_MKDIR, R, "d")).err, EEXIST);
    assert_int_equal(store_fsm_apply_index(f.fsm, 5000, 9), 0);
    uint8_t again[32];
    digest_of(&f, again);
    assert_memory_equal(again, base, 32);
    fx_close(&f);
}

/* Known answers, computed by the implementation that first shipped: nodes of different builds
 * compare digests, so the stream and the hash must never change by accident. */
static void digest_known_answers(void **state)
{
    (void)state;
    struct fx f;
    uint8_t d[32];
    char h[65];
    assert_int_equal(fx_open(&f), 0);
    digest_of(&f, d);
    hex(d, h);
    assert_string_equal(h, "fd881d34eda6633e3c4c3798098f978375d058e14272ca58fcc3ebff3502140e");
    build_a(&f);
    digest_of(&f, d);
    hex(d, h);
    assert_string_equal(h, "cc45f001339da38e4cfc2bc3475322096bad0f8b8683b9ab989bfd5e7536ca9b");
    fx_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_tree_same_digest),
        cmocka_unit_test(any_change_changes_digest),
        cmocka_unit_test(digest_known_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
