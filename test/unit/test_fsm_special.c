/* Device nodes and sockets in the state machine (command version 3): what they store, their
 * errors, their digest, and how a version 1 MKNOD of a device still applies as it did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>

#include "store/command.h"
#include "test/unit/fsm_util.h"

#define R STORE_FSM_ROOT_INO

static int setup(void **state)
{
    static struct fx f;
    if (fx_open(&f) != 0)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

static struct store_fsm_result mknod_dev(struct fx *f, const char *name, uint32_t mode,
                                         uint32_t rdev)
{
    struct store_cmd c = c_named(f, STORE_CMD_MKNOD, R, name);
    c.mode = mode;
    c.rdev = rdev;
    return fx_apply(f, &c);
}

static void space_is_recounted(struct fx *f)
{
    struct store_fsm_statfs st;
    uint64_t used;
    assert_int_equal(store_fsm_statfs(f->fsm, &st), 0);
    assert_int_equal(store_fsm_space_recount(f->fsm, &used), 0);
    assert_int_equal(used, st.space_used);
}

static void devices_and_sockets_are_names(void **state)
{
    struct fx *f = *state;
    struct store_fsm_result res = mknod_dev(f, "chr", S_IFCHR | 0620, 0x0103);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.mode, S_IFCHR | 0620);
    assert_int_equal(res.attr.rdev, 0x0103);
    assert_int_equal(res.attr.nlink, 1);
    assert_int_equal(res.attr.size, 0);
    uint64_t chr = res.ino;
    res = mknod_dev(f, "blk", S_IFBLK | 0600, 0x0801);
    assert_int_equal(res.err, 0);
    assert_int_equal(attr_of(f, res.ino).rdev, 0x0801);
    /* A socket, a FIFO and a file keep no device number, as on Linux. */
    res = mknod_dev(f, "sock", S_IFSOCK | 0755, 99);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.mode, S_IFSOCK | 0755);
    assert_int_equal(res.attr.rdev, 0);
    assert_int_equal(mknod_dev(f, "fifo", S_IFIFO | 0600, 99).attr.rdev, 0);
    assert_int_equal(mknod_dev(f, "chr", S_IFCHR | 0600, 1).err, EEXIST);
    assert_int_equal(mknod_dev(f, "lnk", S_IFLNK | 0600, 1).err, EINVAL);
    /* Names like any other: link, rename, chmod, unlink; no data. */
    assert_int_equal(do_link(f, chr, R, "chr2").err, 0);
    assert_int_equal(attr_of(f, chr).nlink, 2);
    assert_int_equal(do_rename(f, R, "chr2", R, "sock", 0).err, 0);
    assert_int_equal(ino_of(f, R, "sock"), chr);
    struct store_cmd c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = chr;
    c.valid = STORE_CMD_SET_MODE | STORE_CMD_SET_UID;
    c.mode = 0640;
    c.uid = 5;
    res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.mode, S_IFCHR | 0640);
    assert_int_equal(res.attr.rdev, 0x0103);
    assert_int_equal(do_write(f, chr, 0, "x", 1).err, EINVAL);
    assert_int_equal(do_truncate(f, chr, 1).err, EINVAL);
    /* Linux allows user. xattrs on files and directories only. */
    assert_int_equal(do_setxattr(f, chr, "user.a", "v", 0).err, EPERM);
    assert_int_equal(do_setxattr(f, chr, "trusted.a", "v", 0).err, 0);
    assert_int_equal(do_unlink(f, R, "chr", 0).err, 0);
    assert_int_equal(do_unlink(f, R, "sock", 0).err, 0);
    assert_int_equal(attr_of(f, chr).ino, 0);
    space_is_recounted(f);
}

/* A MKNOD of a device is encoded under version 3, so a build that predates it refuses the entry
 * instead of answering EPERM where the others made the node; a version 1 one (from an old log)
 * still decodes and applies as then. */
static void a_version_1_mknod_of_a_device_is_refused_as_before(void **state)
{
    struct fx *f = *state;
    struct store_cmd c = c_named(f, STORE_CMD_MKNOD, R, "chr"), d;
    c.mode = S_IFCHR | 0600;
    c.rdev = 7;
    uint8_t buf[128];
    size_t len;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(buf[0], 3);
    assert_int_equal(store_cmd_decode(buf, len, &d), 0);
    assert_int_equal(d.version, 3);
    buf[0] = 2;
    assert_int_equal(store_cmd_decode(buf, len, &d), RFS_EDECODE);
    buf[0] = 1;
    assert_int_equal(store_cmd_decode(buf, len, &d), 0);
    assert_int_equal(d.version, 1);
    assert_int_equal(fx_apply(f, &d).err, EPERM);
    assert_int_equal(ino_of(f, R, "chr"), 0);
    d.version = 3;
    assert_int_equal(fx_apply(f, &d).err, 0);
    assert_int_equal(attr_of(f, ino_of(f, R, "chr")).rdev, 7);
    /* A FIFO is version 1 and under no other byte. */
    c.mode = S_IFIFO | 0600;
    assert_int_equal(store_cmd_encode(&c, buf, sizeof buf, &len), 0);
    assert_int_equal(buf[0], 1);
    buf[0] = 3;
    assert_int_equal(store_cmd_decode(buf, len, &d), RFS_EDECODE);
}

/* The device number is part of the tree, so of the digest. */
static void the_digest_covers_the_device_number(void **state)
{
    (void)state;
    uint8_t d[3][32];
    uint32_t rdev[3] = {0x0103, 0x0104, 0x0103};
    for (int i = 0; i < 3; i++) {
        struct fx f;
        assert_int_equal(fx_open(&f), 0);
        assert_int_equal(mknod_dev(&f, "dev", (i == 2 ? S_IFBLK : S_IFCHR) | 0600, rdev[i]).err, 0);
        assert_int_equal(store_fsm_digest(f.fsm, d[i]), 0);
        fx_close(&f);
    }
    assert_memory_not_equal(d[0], d[1], 32);
    assert_memory_not_equal(d[0], d[2], 32);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(devices_and_sockets_are_names),
        T(a_version_1_mknod_of_a_device_is_refused_as_before),
        cmocka_unit_test(the_digest_covers_the_device_number),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
