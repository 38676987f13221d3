/* Inode state machine: every command, its effects on attributes and times, and its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>

#include "store/error_map.h"
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

static void assert_time(struct store_fsm_time t, int64_t sec, uint32_t nsec)
{
    assert_int_equal(t.sec, sec);
    assert_int_equal(t.nsec, nsec);
}

static void root_is_created(void **state)
{
    struct fx *f = *state;
    struct store_fsm_attr a = attr_of(f, R);
    assert_int_equal(a.ino, 1);
    assert_int_equal(a.mode, S_IFDIR | 0755);
    assert_int_equal(a.nlink, 2);
    assert_int_equal(a.uid, 0);
    assert_int_equal(a.gid, 0);
    assert_int_equal(a.size, 40);
    assert_time(a.mtime, T0 - 100, 5);
    assert_time(a.ctime, T0 - 100, 5);
    uint64_t idx = 9, term = 9;
    assert_int_equal(store_fsm_applied(f->fsm, &idx, &term), 0);
    assert_int_equal(idx, 0);
    assert_int_equal(term, 0);
    assert_int_equal(ino_of(f, R, ".."), 1);
    assert_int_equal(ino_of(f, R, "."), 1);
}

static void create_sets_attributes_and_parent_times(void **state)
{
    struct fx *f = *state;
    struct store_cmd c = c_named(f, STORE_CMD_CREATE, R, "a");
    c.mode = 0640;
    c.uid = 7;
    c.gid = 8;
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.ino, 2);
    assert_false(res.existed);
    assert_int_equal(res.attr.mode, S_IFREG | 0640);
    assert_int_equal(res.attr.uid, 7);
    assert_int_equal(res.attr.gid, 8);
    assert_int_equal(res.attr.nlink, 1);
    assert_int_equal(res.attr.size, 0);
    assert_time(res.attr.mtime, c.time_sec, 123);
    assert_time(res.attr.atime, c.time_sec, 123);
    struct store_fsm_attr root = attr_of(f, R);
    assert_time(root.mtime, c.time_sec, 123);
    assert_time(root.ctime, c.time_sec, 123);
    assert_int_equal(root.size, 60);
    assert_int_equal(root.nlink, 2);
    assert_int_equal(ino_of(f, R, "a"), 2);
    /* The next inode gets the next number. */
    assert_int_equal(do_create(f, R, "b", 0600, 0).ino, 3);
}

static void create_existing(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    struct store_fsm_attr before = attr_of(f, R);
    assert_int_equal(do_create(f, R, "a", 0600, STORE_CMD_EXCL).err, EEXIST);
    struct store_fsm_result res = do_create(f, R, "a", 0600, 0);
    assert_int_equal(res.err, 0);
    assert_true(res.existed);
    assert_int_equal(res.ino, a);
    /* Neither changed the parent. */
    struct store_fsm_attr after = attr_of(f, R);
    assert_attr_equal(before, after);
    do_mkdir(f, R, "d", 0755);
    assert_int_equal(do_create(f, R, "d", 0600, 0).err, EISDIR);
    assert_int_equal(do_create(f, R, "d", 0600, STORE_CMD_EXCL).err, EEXIST);
    do_symlink(f, R, "s", "a");
    assert_int_equal(do_create(f, R, "s", 0600, 0).err, EEXIST);
    assert_int_equal(do_create(f, R, ".", 0600, 0).err, EISDIR);
    assert_int_equal(do_create(f, R, "..", 0600, STORE_CMD_EXCL).err, EEXIST);
}

static void name_and_parent_errors(void **state)
{
    struct fx *f = *state;
    char name[300];
    memset(name, 'n', sizeof name);
    name[256] = '\0';
    assert_int_equal(do_create(f, R, name, 0600, 0).err, ENAMETOOLONG);
    assert_int_equal(do_mkdir(f, R, name, 0700).err, ENAMETOOLONG);
    name[255] = '\0';
    assert_int_equal(do_create(f, R, name, 0600, 0).err, 0);
    assert_int_equal(do_create(f, R, "a/b", 0600, 0).err, EINVAL);
    assert_int_equal(do_create(f, R, "", 0600, 0).err, ENOENT);
    assert_int_equal(do_create(f, 999, "x", 0600, 0).err, ENOENT);
    uint64_t file = do_create(f, R, "file", 0600, 0).ino;
    assert_int_equal(do_create(f, file, "x", 0600, 0).err, ENOTDIR);
    assert_int_equal(do_mkdir(f, file, "x", 0700).err, ENOTDIR);
    assert_int_equal(do_unlink(f, file, "x", 0).err, ENOTDIR);
    struct store_fsm_attr a;
    assert_int_equal(store_fsm_lookup(f->fsm, file, "x", 1, &a), ENOTDIR);
    assert_int_equal(store_fsm_lookup(f->fsm, R, "zz", 2, &a), ENOENT);
    assert_int_equal(store_fsm_lookup(f->fsm, R, name, 256, &a), ENAMETOOLONG);
}

static void mknod_types(void **state)
{
    struct fx *f = *state;
    struct store_fsm_result res = do_mknod(f, R, "fifo", S_IFIFO | 0644);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.mode, S_IFIFO | 0644);
    res = do_mknod(f, R, "reg", S_IFREG | 0600);
    assert_int_equal(res.attr.mode, S_IFREG | 0600);
    assert_int_equal(do_mknod(f, R, "plain", 0600).attr.mode, S_IFREG | 0600);
    /* Devices and sockets: test_fsm_special.c. */
    assert_int_equal(do_mknod(f, R, "dir", S_IFDIR | 0600).err, EINVAL);
    assert_int_equal(do_mknod(f, R, "fifo", S_IFIFO | 0600).err, EEXIST);
    assert_int_equal(ino_of(f, R, "dir"), 0);
    /* Writes and truncation need a regular file. */
    uint64_t fifo = ino_of(f, R, "fifo");
    assert_int_equal(do_write(f, fifo, 0, "x", 1).err, EINVAL);
    assert_int_equal(do_truncate(f, fifo, 1).err, EINVAL);
}

static void mkdir_and_link_counts(void **state)
{
    struct fx *f = *state;
    struct store_fsm_result d = do_mkdir(f, R, "d", 0750);
    assert_int_equal(d.err, 0);
    assert_int_equal(d.attr.mode, S_IFDIR | 0750);
    assert_int_equal(d.attr.nlink, 2);
    assert_int_equal(attr_of(f, R).nlink, 3);
    uint64_t e = do_mkdir(f, d.ino, "e", 0700).ino;
    assert_int_equal(attr_of(f, d.ino).nlink, 3);
    assert_int_equal(ino_of(f, e, ".."), d.ino);
    do_create(f, d.ino, "file", 0600, 0);
    assert_int_equal(attr_of(f, d.ino).nlink, 3); /* files do not count */
    assert_int_equal(attr_of(f, d.ino).size, 80);
    assert_int_equal(do_mkdir(f, R, "d", 0700).err, EEXIST);
    assert_int_equal(do_mkdir(f, R, ".", 0700).err, EEXIST);
}

static void mkdir_emlink(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_options o = {.max_links = 4, .no_sync = true};
    assert_int_equal(fx_open_opts(&f, &o), 0);
    assert_int_equal(do_mkdir(&f, R, "a", 0700).err, 0);
    assert_int_equal(do_mkdir(&f, R, "b", 0700).err, 0);
    assert_int_equal(do_mkdir(&f, R, "c", 0700).err, EMLINK);
    uint64_t x = do_create(&f, R, "x", 0600, 0).ino;
    assert_int_equal(do_link(&f, x, R, "x2").err, 0);
    assert_int_equal(do_link(&f, x, R, "x3").err, 0);
    assert_int_equal(do_link(&f, x, R, "x4").err, 0);
    assert_int_equal(do_link(&f, x, R, "x5").err, EMLINK);
    /* Moving a directory into a full parent is refused too. */
    uint64_t a = ino_of(&f, R, "a");
    assert_int_equal(do_mkdir(&f, a, "sub", 0700).err, 0);
    assert_int_equal(do_rename(&f, a, "sub", R, "sub", 0).err, EMLINK);
    fx_close(&f);
}

static void unlink_file(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    do_write(f, a, 0, "hello", 5);
    do_setxattr(f, a, "user.k", "v", 0);
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    assert_int_equal(do_unlink(f, R, "d", 0).err, EISDIR);
    assert_int_equal(do_unlink(f, R, "zz", 0).err, ENOENT);
    assert_int_equal(do_unlink(f, R, ".", 0).err, EISDIR);
    assert_int_equal(do_unlink(f, R, "..", 0).err, EISDIR);
    struct store_fsm_statfs before, after;
    assert_int_equal(store_fsm_statfs(f->fsm, &before), 0);
    struct store_cmd c = c_named(f, STORE_CMD_UNLINK, R, "a");
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.dropped_ino, a);
    assert_int_equal(res.dropped_nlink, 0);
    assert_false(res.dropped_is_orphan);
    assert_int_equal(attr_of(f, a).ino, 0);
    assert_int_equal(ino_of(f, R, "a"), 0);
    assert_int_equal(store_fsm_statfs(f->fsm, &after), 0);
    assert_int_equal(after.files, before.files - 1);
    struct store_fsm_attr root = attr_of(f, R);
    assert_time(root.mtime, c.time_sec, 123);
    assert_int_equal(root.size, 60);
    (void)d;
}

static void unlink_one_of_two_links(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    struct store_fsm_result l = do_link(f, a, d, "b");
    assert_int_equal(l.err, 0);
    assert_int_equal(l.attr.nlink, 2);
    assert_int_equal(ino_of(f, d, "b"), a);
    struct store_cmd c = c_named(f, STORE_CMD_UNLINK, R, "a");
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.dropped_nlink, 1);
    struct store_fsm_attr at = attr_of(f, a);
    assert_int_equal(at.nlink, 1);
    assert_time(at.ctime, c.time_sec, 123);
}

static void rmdir_rules(void **state)
{
    struct fx *f = *state;
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    do_create(f, d, "x", 0600, 0);
    do_create(f, R, "file", 0600, 0);
    assert_int_equal(do_rmdir(f, R, "file").err, ENOTDIR);
    assert_int_equal(do_rmdir(f, R, "d").err, ENOTEMPTY);
    assert_int_equal(do_rmdir(f, R, "zz").err, ENOENT);
    assert_int_equal(do_rmdir(f, d, ".").err, EINVAL);
    assert_int_equal(do_rmdir(f, d, "..").err, ENOTEMPTY);
    assert_int_equal(attr_of(f, R).nlink, 3);
    do_unlink(f, d, "x", 0);
    struct store_fsm_result res = do_rmdir(f, R, "d");
    assert_int_equal(res.err, 0);
    assert_int_equal(res.dropped_ino, d);
    assert_int_equal(attr_of(f, R).nlink, 2);
    assert_int_equal(attr_of(f, d).ino, 0);
    /* A removed directory cannot gain entries (its inode is gone). */
    assert_int_equal(do_create(f, d, "y", 0600, 0).err, ENOENT);
}

static void symlinks(void **state)
{
    struct fx *f = *state;
    struct store_fsm_result s = do_symlink(f, R, "s", "../some/target");
    assert_int_equal(s.err, 0);
    assert_int_equal(s.attr.mode, S_IFLNK | 0777);
    assert_int_equal(s.attr.size, 14);
    char buf[64];
    size_t len;
    assert_int_equal(store_fsm_readlink(f->fsm, s.ino, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 14);
    assert_memory_equal(buf, "../some/target", 14);
    assert_int_equal(store_fsm_readlink(f->fsm, s.ino, buf, 3, &len), ERANGE);
    assert_int_equal(store_fsm_readlink(f->fsm, R, buf, sizeof buf, &len), EINVAL);
    assert_int_equal(do_symlink(f, R, "e", "").err, ENOENT);
    char big[4097];
    memset(big, 'x', sizeof big);
    big[4096] = '\0';
    assert_int_equal(do_symlink(f, R, "big", big).err, ENAMETOOLONG);
    big[4095] = '\0';
    assert_int_equal(do_symlink(f, R, "big", big).err, 0);
    assert_int_equal(do_symlink(f, R, "s", "x").err, EEXIST);
    assert_int_equal(do_write(f, s.ino, 0, "x", 1).err, EINVAL);
    /* The target goes with the inode. */
    assert_int_equal(do_unlink(f, R, "s", 0).err, 0);
    assert_int_equal(store_fsm_readlink(f->fsm, s.ino, buf, sizeof buf, &len), ENOENT);
}

static void link_rules(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    assert_int_equal(do_link(f, d, R, "d2").err, EPERM);
    assert_int_equal(do_link(f, a, R, "d").err, EEXIST);
    assert_int_equal(do_link(f, d, R, "a").err, EEXIST); /* EEXIST is decided before EPERM */
    assert_int_equal(do_link(f, 999, R, "n").err, ENOENT);
    assert_int_equal(do_link(f, a, 999, "n").err, ENOENT);
    assert_int_equal(do_link(f, a, a, "n").err, ENOTDIR);
    assert_int_equal(do_link(f, a, R, ".").err, EEXIST);
    struct store_cmd c = c_named(f, STORE_CMD_LINK, a, "b");
    c.ino2 = d;
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.nlink, 2);
    assert_time(res.attr.ctime, c.time_sec, 123);
    assert_time(attr_of(f, d).mtime, c.time_sec, 123);
    assert_int_equal(ino_of(f, d, "b"), a);
}

static void rename_file(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    struct store_cmd c = c_named(f, STORE_CMD_RENAME, R, "a");
    c.ino2 = d;
    c.name2 = "b";
    c.name2_len = 1;
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.ino, a);
    assert_int_equal(ino_of(f, R, "a"), 0);
    assert_int_equal(ino_of(f, d, "b"), a);
    assert_time(attr_of(f, a).ctime, c.time_sec, 123);
    assert_time(attr_of(f, R).mtime, c.time_sec, 123);
    assert_time(attr_of(f, d).mtime, c.time_sec, 123);
    assert_int_equal(attr_of(f, R).size, 60);
    assert_int_equal(attr_of(f, d).size, 60);
    assert_int_equal(do_rename(f, R, "zz", R, "y", 0).err, ENOENT);
    assert_int_equal(do_rename(f, R, ".", R, "y", 0).err, EINVAL);
    assert_int_equal(do_rename(f, d, "b", R, "..", 0).err, EINVAL);
    assert_int_equal(do_rename(f, d, "b", R, "y", STORE_CMD_NOREPLACE | STORE_CMD_EXCHANGE).err,
                     EINVAL);
    assert_int_equal(do_rename(f, d, "b", R, "y", 0x40).err, EINVAL);
}

static void rename_over_file_replaces_it(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    uint64_t b = do_create(f, R, "b", 0600, 0).ino;
    do_write(f, b, 0, "old", 3);
    assert_int_equal(do_rename(f, R, "a", R, "b", STORE_CMD_NOREPLACE).err, EEXIST);
    struct store_fsm_result res = do_rename(f, R, "a", R, "b", 0);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.dropped_ino, b);
    assert_int_equal(res.dropped_nlink, 0);
    assert_int_equal(ino_of(f, R, "b"), a);
    assert_int_equal(ino_of(f, R, "a"), 0);
    assert_int_equal(attr_of(f, b).ino, 0);
    assert_int_equal(attr_of(f, R).size, 60);
    /* A replaced file that has another link survives. */
    uint64_t c = do_create(f, R, "c", 0600, 0).ino;
    do_link(f, c, R, "c2");
    res = do_rename(f, R, "b", R, "c", 0);
    assert_int_equal(res.dropped_nlink, 1);
    assert_int_equal(attr_of(f, c).nlink, 1);
}

static void rename_types_and_directories(void **state)
{
    struct fx *f = *state;
    uint64_t d1 = do_mkdir(f, R, "d1", 0700).ino;
    uint64_t d2 = do_mkdir(f, R, "d2", 0700).ino;
    do_create(f, R, "file", 0600, 0);
    assert_int_equal(do_rename(f, R, "file", R, "d1", 0).err, EISDIR);
    assert_int_equal(do_rename(f, R, "d1", R, "file", 0).err, ENOTDIR);
    uint64_t sub = do_mkdir(f, d1, "sub", 0700).ino;
    do_create(f, d2, "x", 0600, 0);
    assert_int_equal(do_rename(f, R, "d1", R, "d2", 0).err, ENOTEMPTY);
    /* Into its own subtree. */
    assert_int_equal(do_rename(f, R, "d1", sub, "x", 0).err, EINVAL);
    assert_int_equal(do_rename(f, R, "d1", d1, "x", 0).err, EINVAL);
    /* Over an ancestor of the source. */
    assert_int_equal(do_rename(f, sub, "..", R, "d1", 0).err, EINVAL);
    uint64_t deep = do_mkdir(f, sub, "deep", 0700).ino;
    assert_int_equal(do_rename(f, sub, "deep", R, "d1", 0).err, ENOTEMPTY);
    assert_int_equal(do_rename(f, sub, "deep", R, "d1", STORE_CMD_EXCHANGE).err, EINVAL);
    /* Move a directory across parents: link counts and "..". */
    assert_int_equal(attr_of(f, R).nlink, 4);
    assert_int_equal(do_rename(f, sub, "deep", R, "deep", 0).err, 0);
    assert_int_equal(attr_of(f, R).nlink, 5);
    assert_int_equal(attr_of(f, sub).nlink, 2);
    assert_int_equal(ino_of(f, deep, ".."), R);
    /* Directory over an empty directory. */
    uint64_t empty = do_mkdir(f, d2, "empty", 0700).ino;
    assert_int_equal(attr_of(f, d2).nlink, 3);
    struct store_fsm_result res = do_rename(f, R, "deep", d2, "empty", 0);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.dropped_ino, empty);
    assert_int_equal(attr_of(f, empty).ino, 0);
    assert_int_equal(attr_of(f, R).nlink, 4);
    assert_int_equal(attr_of(f, d2).nlink, 3);
    assert_int_equal(ino_of(f, d2, "empty"), deep);
    assert_int_equal(ino_of(f, deep, ".."), d2);
}

static void rename_same_inode_is_noop(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    do_link(f, a, R, "b");
    struct store_fsm_attr before = attr_of(f, R);
    assert_int_equal(do_rename(f, R, "a", R, "b", 0).err, 0);
    assert_int_equal(do_rename(f, R, "a", R, "a", 0).err, 0);
    assert_int_equal(do_rename(f, R, "a", R, "b", STORE_CMD_EXCHANGE).err, 0);
    assert_int_equal(do_rename(f, R, "a", R, "b", STORE_CMD_NOREPLACE).err, EEXIST);
    assert_int_equal(ino_of(f, R, "a"), a);
    assert_int_equal(ino_of(f, R, "b"), a);
    assert_int_equal(attr_of(f, a).nlink, 2);
    struct store_fsm_attr after = attr_of(f, R);
    assert_attr_equal(before, after);
}

static void rename_exchange(void **state)
{
    struct fx *f = *state;
    uint64_t file = do_create(f, R, "file", 0600, 0).ino;
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    uint64_t dd = do_mkdir(f, d, "dd", 0700).ino;
    assert_int_equal(do_rename(f, R, "file", R, "none", STORE_CMD_EXCHANGE).err, ENOENT);
    assert_int_equal(attr_of(f, R).nlink, 3);
    assert_int_equal(attr_of(f, d).nlink, 3);
    /* A file and a directory swap across parents: link counts follow the directory. */
    assert_int_equal(do_rename(f, R, "file", d, "dd", STORE_CMD_EXCHANGE).err, 0);
    assert_int_equal(ino_of(f, R, "file"), dd);
    assert_int_equal(ino_of(f, d, "dd"), file);
    assert_int_equal(attr_of(f, R).nlink, 4);
    assert_int_equal(attr_of(f, d).nlink, 2);
    assert_int_equal(ino_of(f, dd, ".."), R);
    /* Exchange keeps both readdir positions: the listing still has one entry each. */
    assert_int_equal(attr_of(f, d).size, 60);
}

static void setattr_fields_and_ctime(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    struct store_cmd c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = a;
    c.valid = STORE_CMD_SET_MODE | STORE_CMD_SET_UID | STORE_CMD_SET_GID;
    c.mode = S_IFDIR | 04755; /* type bits of the command are ignored */
    c.uid = 11;
    c.gid = 12;
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.mode, S_IFREG | 04755);
    assert_int_equal(res.attr.uid, 11);
    assert_int_equal(res.attr.gid, 12);
    assert_time(res.attr.ctime, c.time_sec, 123);
    /* Explicit times and "now". */
    c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = a;
    c.valid = STORE_CMD_SET_ATIME | STORE_CMD_SET_MTIME;
    c.atime_sec = 1000;
    c.atime_nsec = 1;
    c.mtime_sec = 2000;
    c.mtime_nsec = 2;
    res = fx_apply(f, &c);
    assert_time(res.attr.atime, 1000, 1);
    assert_time(res.attr.mtime, 2000, 2);
    assert_time(res.attr.ctime, c.time_sec, 123);
    c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = a;
    c.valid = STORE_CMD_SET_MTIME_NOW | STORE_CMD_SET_MTIME;
    c.mtime_sec = 5;
    res = fx_apply(f, &c);
    assert_time(res.attr.mtime, c.time_sec, 123);
    assert_time(res.attr.atime, 1000, 1);
    /* Truncating a file without data to the same size changes nothing, not even ctime. */
    struct store_fsm_attr before = attr_of(f, a);
    assert_int_equal(do_truncate(f, a, 0).err, 0);
    struct store_fsm_attr after = attr_of(f, a);
    assert_attr_equal(before, after);
    /* With data it sets mtime and ctime even at the same size (tmpfs). */
    uint64_t b = do_create(f, R, "b", 0600, 0).ino;
    do_write(f, b, 0, "xy", 2);
    c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = b;
    c.valid = STORE_CMD_SET_SIZE;
    c.size = 2;
    res = fx_apply(f, &c);
    assert_int_equal(res.attr.size, 2);
    assert_time(res.attr.mtime, c.time_sec, 123);
    assert_time(res.attr.ctime, c.time_sec, 123);
    /* A size change sets mtime and ctime. */
    c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = a;
    c.valid = STORE_CMD_SET_SIZE;
    c.size = 10;
    res = fx_apply(f, &c);
    assert_int_equal(res.attr.size, 10);
    assert_time(res.attr.mtime, c.time_sec, 123);
    assert_time(res.attr.ctime, c.time_sec, 123);
    /* Errors. */
    assert_int_equal(do_truncate(f, R, 0).err, EISDIR);
    assert_int_equal(do_truncate(f, a, STORE_FSM_DEFAULT_FILE_MAX + 1).err, EFBIG);
    assert_int_equal(do_truncate(f, a, STORE_FSM_DEFAULT_FILE_MAX).err, 0);
    assert_int_equal(do_truncate(f, 999, 0).err, ENOENT);
    c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = a;
    c.valid = 0x100;
    assert_int_equal(fx_apply(f, &c).err, EINVAL);
}

static void write_read_sparse(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    struct store_fsm_result res = do_write(f, a, 10000, "abc", 3);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.written, 3);
    assert_int_equal(res.attr.size, 10003);
    assert_int_equal(res.attr.blocks, 8); /* one 4 KiB block: the hole costs nothing */
    char buf[20000];
    size_t n;
    assert_int_equal(store_fsm_read(f->fsm, a, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 10003);
    for (size_t i = 0; i < 10000; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 10000, "abc", 3);
    /* Across block boundaries, over existing bytes. */
    char data[9000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)('a' + i % 26);
    assert_int_equal(do_write(f, a, 4000, data, sizeof data).err, 0);
    assert_int_equal(store_fsm_read(f->fsm, a, 3990, buf, 9100, &n), 0);
    assert_int_equal(n, 9010); /* clamped at the size, 13000 */
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 10, data, sizeof data);
    assert_int_equal(attr_of(f, a).size, 13000);
    assert_int_equal(store_fsm_read(f->fsm, a, 13000, buf, 10, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_fsm_read(f->fsm, R, 0, buf, 10, &n), EISDIR);
    assert_int_equal(do_write(f, R, 0, "x", 1).err, EISDIR);
    assert_int_equal(do_write(f, 999, 0, "x", 1).err, ENOENT);
}

/* store_fsm_read_file: one version, its attributes and data from the same transaction. */
static void read_file_is_one_version(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    uint8_t *data;
    struct store_fsm_attr at;
    assert_int_equal(store_fsm_read_file(f->fsm, a, 0, &at, &data), 0); /* empty: fits in 0 */
    assert_non_null(data);
    assert_int_equal(at.size, 0);
    free(data);
    assert_int_equal(do_write(f, a, 5000, "xyz", 3).err, 0);
    assert_int_equal(store_fsm_read_file(f->fsm, a, 5002, &at, &data), EFBIG);
    assert_null(data);
    assert_int_equal(store_fsm_read_file(f->fsm, a, 5003, &at, &data), 0);
    assert_int_equal(at.ino, a);
    assert_int_equal(at.size, 5003);
    assert_int_equal(at.mode & 0777, 0600);
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(data[i], 0); /* the hole */
    assert_memory_equal(data + 5000, "xyz", 3);
    free(data);
    assert_int_equal(store_fsm_read_file(f->fsm, R, 1 << 20, &at, &data), EISDIR);
    assert_int_equal(store_fsm_read_file(f->fsm, 999, 1 << 20, &at, &data), ENOENT);
    assert_null(data);
}

static void truncate_then_grow_reads_zeros(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    char data[10000];
    memset(data, 'x', sizeof data);
    do_write(f, a, 0, data, sizeof data);
    assert_int_equal(do_truncate(f, a, 5000).err, 0);
    assert_int_equal(attr_of(f, a).blocks, 16);
    assert_int_equal(do_truncate(f, a, 12000).err, 0);
    char buf[12000];
    size_t n;
    assert_int_equal(store_fsm_read(f->fsm, a, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 12000);
    for (size_t i = 0; i < 5000; i++)
        assert_int_equal(buf[i], 'x');
    for (size_t i = 5000; i < 12000; i++)
        assert_int_equal(buf[i], 0);
}

static void write_limits(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_options o = {.max_file_size = 10000, .no_sync = true};
    assert_int_equal(fx_open_opts(&f, &o), 0);
    uint64_t a = do_create(&f, R, "a", 0600, 0).ino;
    assert_int_equal(do_write(&f, a, 10000, "x", 1).err, EFBIG);
    assert_int_equal(do_write(&f, a, UINT64_MAX - 1, "xyz", 3).err, EFBIG);
    struct store_fsm_result res = do_write(&f, a, 9998, "wxyz", 4);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.written, 2);
    assert_int_equal(res.attr.size, 10000);
    /* A zero-length write changes nothing, even past the limit. */
    struct store_fsm_attr before = attr_of(&f, a);
    assert_int_equal(do_write(&f, a, 20000, "", 0).err, 0);
    struct store_fsm_attr after = attr_of(&f, a);
    assert_attr_equal(before, after);
    char big[10001];
    memset(big, 'b', sizeof big);
    assert_int_equal(do_replace(&f, a, big, sizeof big).err, EFBIG);
    assert_int_equal(do_replace(&f, a, big, 10000).err, 0);
    struct store_fsm_statfs st;
    assert_int_equal(store_fsm_statfs(f.fsm, &st), 0);
    assert_int_equal(st.max_file_size, 10000);
    fx_close(&f);
}

static void replace_is_whole_file(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    char data[9000];
    memset(data, 'o', sizeof data);
    do_write(f, a, 0, data, sizeof data);
    struct store_cmd c = cmd_base(f, STORE_CMD_REPLACE);
    c.ino = a;
    c.data = (const uint8_t *)"new";
    c.data_len = 3;
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.attr.size, 3);
    assert_int_equal(res.attr.blocks, 8);
    assert_time(res.attr.mtime, c.time_sec, 123);
    char buf[16];
    size_t n;
    assert_int_equal(store_fsm_read(f->fsm, a, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "new", 3);
    res = do_replace(f, a, "", 0);
    assert_int_equal(res.attr.size, 0);
    assert_int_equal(res.attr.blocks, 0);
    assert_int_equal(do_replace(f, R, "x", 1).err, EISDIR);
}

static void xattrs(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    struct store_cmd c = c_named(f, STORE_CMD_SETXATTR, a, "user.one");
    c.data = (const uint8_t *)"1";
    c.data_len = 1;
    struct store_fsm_result res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_time(res.attr.ctime, c.time_sec, 123);
    assert_int_equal(do_setxattr(f, a, "user.two", "22", 0).err, 0);
    assert_int_equal(do_setxattr(f, a, "trusted.t", "", 0).err, 0);
    assert_int_equal(do_setxattr(f, a, "user.one", "x", STORE_CMD_XATTR_CREATE).err, EEXIST);
    assert_int_equal(do_setxattr(f, a, "user.new", "x", STORE_CMD_XATTR_REPLACE).err, ENODATA);
    assert_int_equal(do_setxattr(f, a, "user.one", "111", STORE_CMD_XATTR_REPLACE).err, 0);
    assert_int_equal(do_setxattr(f, a, "other.x", "1", 0).err, EOPNOTSUPP);
    assert_int_equal(do_setxattr(f, a, "user.", "1", 0).err, EINVAL);
    assert_int_equal(do_setxattr(f, a, "", "1", 0).err, ERANGE);
    assert_int_equal(do_setxattr(f, a, "user.x", "1", 4).err, EINVAL);
    assert_int_equal(do_setxattr(f, 999, "user.x", "1", 0).err, ENOENT);
    char name[300] = "user.";
    memset(name + 5, 'n', 251);
    name[256] = '\0';
    assert_int_equal(do_setxattr(f, a, name, "1", 0).err, ERANGE);
    static char big[STORE_FSM_XATTR_SIZE_MAX + 1];
    c = c_named(f, STORE_CMD_SETXATTR, a, "user.big");
    c.data = (const uint8_t *)big;
    c.data_len = sizeof big;
    assert_int_equal(fx_apply(f, &c).err, E2BIG);
    c.data_len = sizeof big - 1;
    assert_int_equal(fx_apply(f, &c).err, 0);
    char buf[128];
    size_t len;
    assert_int_equal(store_fsm_getxattr(f->fsm, a, "user.one", buf, sizeof buf, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "111", 3);
    assert_int_equal(store_fsm_getxattr(f->fsm, a, "user.one", NULL, 0, &len), 0);
    assert_int_equal(len, 3);
    assert_int_equal(store_fsm_getxattr(f->fsm, a, "user.one", buf, 2, &len), ERANGE);
    assert_int_equal(store_fsm_getxattr(f->fsm, a, "user.none", buf, 2, &len), ENODATA);
    assert_int_equal(store_fsm_getxattr(f->fsm, a, "bad.x", buf, 2, &len), EOPNOTSUPP);
    assert_int_equal(store_fsm_listxattr(f->fsm, a, buf, sizeof buf, &len), 0);
    static const char list[] = "trusted.t\0user.big\0user.one\0user.two";
    assert_int_equal(len, sizeof list);
    assert_memory_equal(buf, list, sizeof list);
    assert_int_equal(store_fsm_listxattr(f->fsm, a, buf, 5, &len), ERANGE);
    assert_int_equal(store_fsm_listxattr(f->fsm, a, NULL, 0, &len), 0);
    assert_int_equal(len, sizeof list);
    assert_int_equal(do_removexattr(f, a, "user.two").err, 0);
    assert_int_equal(do_removexattr(f, a, "user.two").err, ENODATA);
    assert_int_equal(store_fsm_getxattr(f->fsm, a, "user.two", buf, 2, &len), ENODATA);
    /* user.* only on regular files and directories, as Linux. */
    uint64_t s = do_symlink(f, R, "s", "a").ino;
    assert_int_equal(do_setxattr(f, s, "user.x", "1", 0).err, EPERM);
    assert_int_equal(do_setxattr(f, s, "trusted.x", "1", 0).err, 0);
    assert_int_equal(do_setxattr(f, R, "user.x", "1", 0).err, 0);
}

struct listing {
    char names[64][16];
    uint64_t next[64];
    int n;
    int stop_after;
};

static int collect(void *arg, const char *name, size_t len, uint64_t ino, uint32_t type,
                   uint64_t next)
{
    struct listing *l = arg;
    (void)ino;
    (void)type;
    if (l->n == l->stop_after)
        return 1;
    snprintf(l->names[l->n], sizeof l->names[0], "%.*s", (int)len, name);
    l->next[l->n++] = next;
    return 0;
}

static void readdir_offsets_survive_changes(void **state)
{
    struct fx *f = *state;
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    const char *names[] = {"e0", "e1", "e2", "e3", "e4", "e5"};
    for (int i = 0; i < 6; i++)
        do_create(f, d, names[i], 0600, 0);
    struct listing l = {.stop_after = 4};
    assert_int_equal(store_fsm_readdir(f->fsm, d, 0, collect, &l), 0);
    assert_int_equal(l.n, 4);
    assert_string_equal(l.names[0], ".");
    assert_string_equal(l.names[1], "..");
    assert_string_equal(l.names[2], "e0");
    assert_string_equal(l.names[3], "e1");
    uint64_t resume = l.next[3];
    /* Remove one already listed and one not yet listed, add one, rename one in place. */
    do_unlink(f, d, "e0", 0);
    do_unlink(f, d, "e3", 0);
    do_create(f, d, "new", 0600, 0);
    do_rename(f, d, "e2", d, "e4", 0); /* e4 keeps its position, now naming e2's inode */
    struct listing m = {.stop_after = 64};
    assert_int_equal(store_fsm_readdir(f->fsm, d, resume, collect, &m), 0);
    assert_int_equal(m.n, 3);
    assert_string_equal(m.names[0], "e4");
    assert_string_equal(m.names[1], "e5");
    assert_string_equal(m.names[2], "new");
    /* Resuming after the last entry lists nothing; a file is not a directory. */
    struct listing z = {.stop_after = 64};
    assert_int_equal(store_fsm_readdir(f->fsm, d, m.next[2], collect, &z), 0);
    assert_int_equal(z.n, 0);
    assert_int_equal(store_fsm_readdir(f->fsm, ino_of(f, d, "new"), 0, collect, &z), ENOTDIR);
    assert_int_equal(store_fsm_readdir(f->fsm, 999, 0, collect, &z), ENOENT);
}

static void batch_is_atomic_and_ordered(void **state)
{
    struct fx *f = *state;
    struct store_cmd cmds[4];
    struct store_fsm_result res[4];
    cmds[0] = c_named(f, STORE_CMD_MKDIR, R, "d");
    cmds[0].mode = 0700;
    cmds[1] = c_named(f, STORE_CMD_CREATE, 2, "x"); /* inode 2 is the directory just made */
    cmds[1].mode = 0600;
    cmds[2] = c_named(f, STORE_CMD_MKDIR, R, "d"); /* fails: changes nothing */
    cmds[3] = c_named(f, STORE_CMD_CREATE, R, "y");
    assert_int_equal(store_fsm_apply_batch(f->fsm, 10, 3, cmds, 4, res), 0);
    assert_int_equal(res[0].err, 0);
    assert_int_equal(res[1].err, 0);
    assert_int_equal(res[2].err, EEXIST);
    assert_int_equal(res[2].ino, 0);
    assert_int_equal(res[3].err, 0);
    assert_int_equal(res[3].ino, 4);
    uint64_t idx, term;
    assert_int_equal(store_fsm_applied(f->fsm, &idx, &term), 0);
    assert_int_equal(idx, 10);
    assert_int_equal(term, 3);
    /* The index only moves forward. */
    assert_int_equal(store_fsm_apply_batch(f->fsm, 10, 3, cmds, 1, res), RFS_ERANGE);
    assert_int_equal(store_fsm_apply_index(f->fsm, 9, 3), RFS_ERANGE);
    assert_int_equal(store_fsm_apply_index(f->fsm, 11, 4), 0);
    assert_int_equal(store_fsm_applied(f->fsm, &idx, &term), 0);
    assert_int_equal(idx, 11);
    assert_int_equal(term, 4);
    /* A configuration entry advances the index like any other (what it records is read
     * back through snapshots: test_fsm_snapshot.c). */
    assert_int_equal(store_fsm_apply_config(f->fsm, 12, 4, "cfg-1", 5), 0);
    assert_int_equal(store_fsm_apply_config(f->fsm, 12, 4, "cfg-2", 5), RFS_ERANGE);
    /* Everything survives a reopen. */
    store_fsm_close(f->fsm);
    assert_int_equal(store_fsm_open(f->dir, NULL, &f->fsm, NULL, 0), 0);
    assert_int_equal(store_fsm_applied(f->fsm, &idx, NULL), 0);
    assert_int_equal(idx, 12);
    assert_int_equal(ino_of(f, 2, "x"), 3);
}

/* A map that fills up anyway (here: made far smaller than the limit) is not a filesystem
 * answer: deciding ENOSPC from LMDB's page use would let nodes disagree. The batch fails as a
 * store error, nothing of it is applied, and smaller batches still go in. */
static void map_full_fails_the_batch(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_options o = {.map_size = 1 << 20, .no_sync = true};
    assert_int_equal(fx_open_opts(&f, &o), 0);
    uint64_t a = do_create(&f, R, "a", 0600, 0).ino;
    static char big[2 << 20];
    memset(big, 'z', sizeof big);
    struct store_cmd cmds[3];
    struct store_fsm_result res[3];
    cmds[0] = c_named(&f, STORE_CMD_CREATE, R, "before");
    cmds[1] = cmd_base(&f, STORE_CMD_WRITE);
    cmds[1].ino = a;
    cmds[1].data = (const uint8_t *)big;
    cmds[1].data_len = sizeof big;
    cmds[2] = c_named(&f, STORE_CMD_CREATE, R, "after");
    assert_int_equal(store_fsm_apply_batch(f.fsm, 100, 1, cmds, 3, res), RFS_ENOSPACE);
    char msg[256];
    assert_non_null(strstr(fx_errmsg(f.fsm, msg, sizeof msg), "MDB_MAP_FULL"));
    assert_int_equal(attr_of(&f, a).size, 0);
    assert_int_equal(ino_of(&f, R, "before"), 0);
    assert_int_equal(ino_of(&f, R, "after"), 0);
    uint64_t idx, used;
    assert_int_equal(store_fsm_applied(f.fsm, &idx, NULL), 0);
    assert_int_equal(idx, f.index);
    struct store_fsm_statfs st;
    assert_int_equal(store_fsm_statfs(f.fsm, &st), 0);
    assert_int_equal(store_fsm_space_recount(f.fsm, &used), 0);
    assert_int_equal(st.space_used, used);
    /* The store still works afterwards. */
    f.index = 100;
    assert_int_equal(do_write(&f, a, 0, "small", 5).err, 0);
    fx_close(&f);
}

struct orphan_list {
    size_t n;
    uint64_t ino[4], holders[4];
};

static int list_orphan(void *arg, uint64_t ino, uint64_t holders)
{
    struct orphan_list *l = arg;
    if (l->n == 4)
        return 1;
    l->ino[l->n] = ino;
    l->holders[l->n++] = holders;
    return 0;
}

static void orphans_live_until_forgotten(void **state)
{
    struct fx *f = *state;
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    do_write(f, a, 0, "data", 4);
    struct store_fsm_result res = do_unlink(f, R, "a", STORE_CMD_KEEP_OPEN);
    assert_int_equal(res.err, 0);
    assert_true(res.dropped_is_orphan);
    assert_int_equal(ino_of(f, R, "a"), 0);
    struct store_fsm_attr at = attr_of(f, a);
    assert_int_equal(at.ino, a);
    assert_int_equal(at.nlink, 0);
    /* Still readable and writable through its inode number, but cannot be linked back. */
    assert_int_equal(do_write(f, a, 4, "more", 4).err, 0);
    char buf[8];
    size_t n;
    assert_int_equal(store_fsm_read(f->fsm, a, 0, buf, sizeof buf, &n), 0);
    assert_int_equal(n, 8);
    assert_memory_equal(buf, "datamore", 8);
    assert_int_equal(do_link(f, a, R, "back").err, ENOENT);
    struct store_cmd c = cmd_base(f, STORE_CMD_FORGET);
    c.ino = a;
    assert_int_equal(fx_apply(f, &c).err, 0);
    assert_int_equal(attr_of(f, a).ino, 0);
    assert_int_equal(fx_apply(f, &c).err, ENOENT);
    /* Held by nodes 1 and 3: deleted when both forgot it, in any order, repeats allowed. */
    uint64_t h = do_create(f, R, "h", 0600, 0).ino;
    struct store_cmd u = c_named(f, STORE_CMD_UNLINK, R, "h");
    u.flags = STORE_CMD_KEEP_OPEN;
    u.holders = 0x5;
    assert_true(fx_apply(f, &u).dropped_is_orphan);
    struct orphan_list ol = {0};
    assert_int_equal(store_fsm_orphans(f->fsm, list_orphan, &ol), 0);
    assert_int_equal(ol.n, 1);
    assert_int_equal(ol.ino[0], h);
    assert_int_equal(ol.holders[0], 0x5);
    c.ino = h;
    c.holders = 0x4;
    res = fx_apply(f, &c);
    assert_int_equal(res.err, 0);
    assert_int_equal(res.dropped_ino, 0);
    assert_int_equal(fx_apply(f, &c).dropped_ino, 0);
    assert_int_equal(attr_of(f, h).ino, h);
    c.holders = 0x1;
    assert_int_equal(fx_apply(f, &c).dropped_ino, h);
    assert_int_equal(attr_of(f, h).ino, 0);
    ol.n = 0;
    assert_int_equal(store_fsm_orphans(f->fsm, list_orphan, &ol), 0);
    assert_int_equal(ol.n, 0);
    c.holders = 0;
    c.ino = R;
    assert_int_equal(fx_apply(f, &c).err, ENOENT);
    /* A directory removed while open: no new entries in it. */
    uint64_t d = do_mkdir(f, R, "d", 0700).ino;
    struct store_cmd rm = c_named(f, STORE_CMD_RMDIR, R, "d");
    rm.flags = STORE_CMD_KEEP_OPEN;
    assert_int_equal(fx_apply(f, &rm).err, 0);
    assert_int_equal(attr_of(f, d).nlink, 0);
    assert_int_equal(do_create(f, d, "x", 0600, 0).err, ENOENT);
    /* Rename over an open file keeps it too. */
    uint64_t t = do_create(f, R, "t", 0600, 0).ino;
    do_create(f, R, "s", 0600, 0);
    res = do_rename(f, R, "s", R, "t", STORE_CMD_KEEP_OPEN);
    assert_true(res.dropped_is_orphan);
    assert_int_equal(attr_of(f, t).nlink, 0);
}

static void statfs_counts(void **state)
{
    struct fx *f = *state;
    struct store_fsm_statfs st;
    assert_int_equal(store_fsm_statfs(f->fsm, &st), 0);
    assert_int_equal(st.files, 1);
    assert_int_equal(st.namemax, 255);
    assert_int_equal(st.bsize, 4096);
    /* The logical limit and count: the root inode alone is charged. */
    assert_int_equal(st.blocks, STORE_FSM_DEFAULT_SPACE / 4096);
    assert_int_equal(st.space_limit, STORE_FSM_DEFAULT_SPACE);
    assert_int_equal(st.space_used, 128);
    assert_int_equal(st.bfree, st.blocks - 1);
    uint64_t a = do_create(f, R, "a", 0600, 0).ino;
    static char data[1 << 20];
    do_write(f, a, 0, data, sizeof data);
    struct store_fsm_statfs st2;
    assert_int_equal(store_fsm_statfs(f->fsm, &st2), 0);
    assert_int_equal(st2.files, 2);
    assert_int_equal(st2.space_used, 128 + 128 + 64 + 2 + (1 << 20));
    assert_int_equal(st2.bfree, (STORE_FSM_DEFAULT_SPACE - st2.space_used) / 4096);
}

static void reopen_refuses_other_format(void **state)
{
    struct fx *f = *state;
    store_fsm_close(f->fsm);
    f->fsm = NULL;
    fx_set_format(f->dir, 4, NULL);
    struct store_fsm *fsm = NULL;
    char err[256];
    assert_int_equal(store_fsm_open(f->dir, NULL, &fsm, err, sizeof err), RFS_EFORMAT);
    assert_null(fsm);
    assert_non_null(strstr(err, "format version 4, expected 3"));
    /* Format 1 (before locks, sessions and the space count) is upgraded to 3 in place. */
    fx_set_format(f->dir, 1, NULL);
    assert_int_equal(store_fsm_open(f->dir, NULL, &fsm, NULL, 0), 0);
    assert_int_equal(store_fsm_getattr(fsm, STORE_FSM_ROOT_INO, &(struct store_fsm_attr){0}), 0);
    store_fsm_close(fsm);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val key = {6, "format"}, val;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    assert_int_equal(mdb_env_open(env, f->dir, MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    assert_int_equal(mdb_get(txn, dbi, &key, &val), 0);
    assert_int_equal(val.mv_size, 4);
    assert_int_equal(((const uint8_t *)val.mv_data)[0], 3);
    assert_int_equal(mdb_dbi_open(txn, "locks", 0, &dbi), 0);
    assert_int_equal(mdb_dbi_open(txn, "sessions", 0, &dbi), 0);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    /* A fresh store for teardown. */
    fx_rmdir(f->dir);
    assert_int_equal(fx_open(f), 0);
}

/* An environment LMDB cannot read: open fails with the code and the message says why. */
static void open_reports_lmdb_errors(void **state)
{
    (void)state;
    char dir[] = "/dev/shm/rfs-fsm-XXXXXX", path[64], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 8192; i++)
        fputc('x', f);
    fclose(f);
    struct store_fsm *fsm = (struct store_fsm *)&fsm; /* not NULL: a failed open clears it */
    assert_int_equal(store_fsm_open(dir, NULL, &fsm, err, sizeof err), RFS_EFORMAT);
    assert_null(fsm);
    assert_non_null(strstr(err, "open environment"));
    assert_non_null(strstr(err, "MDB_INVALID"));
    fx_rmdir(dir);
}

/* store/ converts foreign errors in one place (store/error_map.h): the log store, the state
 * machine and the snapshots answer alike, with the context first. */
static void store_errors_convert_once(void **state)
{
    (void)state;
    char buf[128];
    assert_int_equal(store__error(buf, sizeof buf, MDB_MAP_FULL, "put inode %d", 42), RFS_ENOSPACE);
    assert_int_equal(strncmp(buf, "put inode 42: MDB_MAP_FULL", 26), 0);
    assert_int_equal(store__error(buf, sizeof buf, ENOSPC, "write %s", "x"), RFS_ENOSPACE);
    assert_string_equal(buf, "write x: No space left on device");
    assert_int_equal(store__error(buf, 8, EIO, "%s", "a long context"), RFS_EIO);
    assert_string_equal(buf, "a long ");
    assert_int_equal(store__error_code(MDB_TXN_FULL), RFS_ENOSPACE);
    assert_int_equal(store__error_code(EDQUOT), RFS_ENOSPACE);
    assert_int_equal(store__error_code(MDB_NOTFOUND), RFS_ENOTFOUND);
    assert_int_equal(store__error_code(ENOENT), RFS_ENOTFOUND);
    assert_int_equal(store__error_code(MDB_BAD_VALSIZE), RFS_EINVAL);
    assert_int_equal(store__error_code(MDB_CORRUPTED), RFS_ECORRUPT);
    assert_int_equal(store__error_code(MDB_INCOMPATIBLE), RFS_EFORMAT);
    assert_int_equal(store__error_code(ENOMEM), RFS_ENOMEM);
    assert_int_equal(store__error_code(MDB_PANIC), RFS_EIO);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(root_is_created),
        T(create_sets_attributes_and_parent_times),
        T(create_existing),
        T(name_and_parent_errors),
        T(mknod_types),
        T(mkdir_and_link_counts),
        cmocka_unit_test(mkdir_emlink),
        T(unlink_file),
        T(unlink_one_of_two_links),
        T(rmdir_rules),
        T(symlinks),
        T(link_rules),
        T(rename_file),
        T(rename_over_file_replaces_it),
        T(rename_types_and_directories),
        T(rename_same_inode_is_noop),
        T(rename_exchange),
        T(setattr_fields_and_ctime),
        T(write_read_sparse),
        T(read_file_is_one_version),
        T(truncate_then_grow_reads_zeros),
        cmocka_unit_test(write_limits),
        T(replace_is_whole_file),
        T(xattrs),
        T(readdir_offsets_survive_changes),
        T(batch_is_atomic_and_ordered),
        cmocka_unit_test(map_full_fails_the_batch),
        T(orphans_live_until_forgotten),
        T(statfs_counts),
        T(reopen_refuses_other_format),
        cmocka_unit_test(open_reports_lmdb_errors),
        cmocka_unit_test(store_errors_convert_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
