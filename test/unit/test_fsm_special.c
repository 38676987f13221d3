/* Device nodes, sockets and fallocate in the state machine (command version 3): what they
 * store, their errors, their space, their digest, and how a version 1 MKNOD of a device still
 * applies as it did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>

#include "store/command.h"
#include "test/unit/fsm_util.h"

#define R  STORE_FSM_ROOT_INO
#define BS 4096

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

static struct store_fsm_result falloc(struct fx *f, uint64_t ino, uint32_t flags, uint64_t off,
                                      uint64_t len)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_FALLOCATE);
    c.ino = ino;
    c.flags = flags;
    c.offset = off;
    c.len = len;
    return fx_apply(f, &c);
}

/* Every byte of [off, off + len) of ino reads as c, and the read stops at len. */
static void assert_bytes(struct fx *f, uint64_t ino, uint64_t off, size_t len, uint8_t c)
{
    static uint8_t buf[4 * BS];
    size_t n;
    assert_true(len <= sizeof buf);
    assert_int_equal(store_fsm_read(f->fsm, ino, off, buf, len, &n), 0);
    assert_int_equal(n, len);
    for (size_t i = 0; i < len; i++)
        if (buf[i] != c)
            fail_msg("byte %llu is %d, not %d", (unsigned long long)(off + i), buf[i], c);
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
    assert_int_equal(falloc(f, chr, 0, 0, 1).err, EINVAL);
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

static void fallocate_reserves_and_extends(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    assert_int_equal(do_write(f, a, 0, "abc", 3).err, 0);
    /* Mode 0: the size grows to the range's end; the range reads as zeros but is stored, so
     * it counts in st_blocks; the bytes already there stay. */
    struct store_fsm_result res = falloc(f, a, 0, 1, 3 * BS);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.size, 3 * BS + 1);
    assert_int_equal(res.attr.blocks, 4 * (BS / 512));
    assert_int_equal(res.attr.mtime.sec, f->clock - 1);
    assert_int_equal(res.attr.ctime.sec, f->clock - 1);
    uint8_t buf[8];
    size_t n;
    assert_int_equal(store_fsm_read(f->fsm, a, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, sizeof buf);
    assert_memory_equal(buf, "abc\0\0\0\0\0", 8);
    assert_bytes(f, a, 3, 3 * BS - 2, 0);
    /* A range inside the size changes no size; one already stored adds no block. */
    res = falloc(f, a, 0, 0, 10);
    assert_int_equal(res.attr.size, 3 * BS + 1);
    assert_int_equal(res.attr.blocks, 4 * (BS / 512));
    /* KEEP_SIZE reserves past the end without moving it; growing the file shows zeros. */
    res = falloc(f, a, STORE_CMD_FALLOC_KEEP_SIZE, 5 * BS, 10);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.size, 3 * BS + 1);
    assert_int_equal(res.attr.blocks, 5 * (BS / 512));
    assert_int_equal(do_truncate(f, a, 6 * BS).err, 0);
    assert_bytes(f, a, 3 * BS, 3 * BS, 0);
    assert_int_equal(attr_of(f, a).blocks, 5 * (BS / 512));
    /* Truncation takes reserved blocks away like any other. */
    assert_int_equal(do_truncate(f, a, 2).err, 0);
    assert_int_equal(attr_of(f, a).blocks, 1 * (BS / 512));
    assert_bytes(f, a, 0, 1, 'a');
    space_is_recounted(f);
}

static void punch_hole_makes_zeros_and_frees_blocks(void **state)
{
    struct fx *f = *state;
    static uint8_t data[4 * BS];
    memset(data, 'x', sizeof data);
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    assert_int_equal(do_write(f, a, 0, data, sizeof data).err, 0);
    const uint32_t punch = STORE_CMD_FALLOC_PUNCH_HOLE | STORE_CMD_FALLOC_KEEP_SIZE;
    /* From the middle of block 0 to the middle of block 2: block 1 goes, the edges get zeros. */
    struct store_fsm_result res = falloc(f, a, punch, BS / 2, 2 * BS);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.size, 4 * BS);
    assert_int_equal(res.attr.blocks, 3 * (BS / 512));
    assert_bytes(f, a, 0, BS / 2, 'x');
    assert_bytes(f, a, BS / 2, 2 * BS, 0);
    assert_bytes(f, a, 2 * BS + BS / 2, BS + BS / 2, 'x');
    /* The tail of the file, and past it: the last block is cut, the size stays. */
    res = falloc(f, a, punch, 3 * BS + 100, 10 * BS);
    assert_int_equal(res.attr.size, 4 * BS);
    assert_bytes(f, a, 3 * BS, 100, 'x');
    assert_bytes(f, a, 3 * BS + 100, BS - 100, 0);
    /* A whole block from its start, and a hole punched again. */
    res = falloc(f, a, punch, 0, BS);
    assert_int_equal(res.attr.blocks, 2 * (BS / 512));
    assert_int_equal(falloc(f, a, punch, 0, 2 * BS).err, 0);
    assert_bytes(f, a, 0, 2 * BS, 0);
    space_is_recounted(f);
    /* Reserved blocks past the end go too. */
    assert_int_equal(falloc(f, a, STORE_CMD_FALLOC_KEEP_SIZE, 8 * BS, BS).err, 0);
    assert_int_equal(attr_of(f, a).blocks, 3 * (BS / 512));
    assert_int_equal(falloc(f, a, punch, 8 * BS, 1).err, 0);
    assert_int_equal(attr_of(f, a).blocks, 3 * (BS / 512));
    assert_int_equal(falloc(f, a, punch, 8 * BS, BS).err, 0);
    assert_int_equal(attr_of(f, a).blocks, 2 * (BS / 512));
    space_is_recounted(f);
}

static void fallocate_errors_change_nothing(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_options o = {.max_file_size = 10 * BS, .no_sync = true};
    assert_int_equal(fx_open_opts(&f, &o), 0);
    uint64_t a = do_create(&f, R, "a", 0600, 0).ino;
    uint64_t d = do_mkdir(&f, R, "d", 0700).ino;
    struct store_fsm_attr before = attr_of(&f, a);
    assert_int_equal(falloc(&f, a, 0, 0, 0).err, EINVAL);
    assert_int_equal(falloc(&f, a, 0, (uint64_t)INT64_MAX + 1, 1).err, EINVAL);
    assert_int_equal(falloc(&f, a, STORE_CMD_FALLOC_PUNCH_HOLE, 0, 1).err, EOPNOTSUPP);
    assert_int_equal(falloc(&f, a, 0x10 /* ZERO_RANGE */, 0, 1).err, EOPNOTSUPP);
    assert_int_equal(falloc(&f, a, 0x8 /* COLLAPSE_RANGE */, 0, BS).err, EOPNOTSUPP);
    assert_int_equal(falloc(&f, a, 0, 10 * BS, 1).err, EFBIG);
    assert_int_equal(falloc(&f, a, 0, 1, UINT64_MAX).err, EFBIG);
    assert_int_equal(falloc(&f, d, 0, 0, 1).err, EISDIR);
    assert_int_equal(falloc(&f, 999, 0, 0, 1).err, ENOENT);
    struct store_fsm_attr after = attr_of(&f, a);
    assert_attr_equal(before, after);
    assert_int_equal(falloc(&f, a, 0, 0, 10 * BS).err, 0);
    assert_int_equal(attr_of(&f, a).size, 10 * BS);
    fx_close(&f);
}

/* Space fallocate reserved is charged when reserved, so a write into it succeeds when the
 * filesystem is full; a reservation that does not fit is refused whole. */
static void reserved_space_is_writable_when_full(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_options o = {.space_limit = 64 * 1024, .no_sync = true};
    assert_int_equal(fx_open_opts(&f, &o), 0);
    uint64_t a = do_create(&f, R, "a", 0600, 0).ino;
    struct store_fsm_statfs st;
    assert_int_equal(store_fsm_statfs(f.fsm, &st), 0);
    uint64_t room = (st.space_limit - st.space_used) / BS;
    assert_true(room > 2);
    struct store_fsm_attr before = attr_of(&f, a);
    assert_int_equal(falloc(&f, a, 0, 0, (room + 1) * BS).err, ENOSPC);
    struct store_fsm_attr after = attr_of(&f, a);
    assert_attr_equal(before, after);
    assert_int_equal(falloc(&f, a, 0, 0, room * BS).err, 0);
    uint64_t b = do_create(&f, R, "b", 0600, 0).ino;
    assert_int_equal(do_write(&f, b, 0, "x", 1).err, ENOSPC);
    static uint8_t data[BS];
    memset(data, 'y', sizeof data);
    for (uint64_t i = 0; i < room; i++)
        assert_int_equal(do_write(&f, a, i * BS, data, BS).err, 0);
    assert_bytes(&f, a, (room - 1) * BS, BS, 'y');
    space_is_recounted(&f);
    fx_close(&f);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(devices_and_sockets_are_names),
        T(a_version_1_mknod_of_a_device_is_refused_as_before),
        cmocka_unit_test(the_digest_covers_the_device_number),
        T(fallocate_reserves_and_extends),
        T(punch_hole_makes_zeros_and_frees_blocks),
        cmocka_unit_test(fallocate_errors_change_nothing),
        cmocka_unit_test(reserved_space_is_writable_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
