/* Helpers shared by the state machine tests: temporary stores and command builders. Every
 * function is static: each test program includes this once. */
#ifndef TEST_FSM_UTIL_H
#define TEST_FSM_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "lib/error.h"
#include "store/fsm.h"

/* Not every program uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"

#define T0 1700000000 /* base of command timestamps: far above explicit test times */

struct fx {
    char dir[64];
    struct store_fsm *fsm;
    uint64_t index;
    int64_t clock; /* seconds of the next command */
};

static void fx_rmdir(const char *dir)
{
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/unsynced", dir);
    unlink(p);
    rmdir(dir);
}

/* A fresh store under /dev/shm (tmpfs: fast, and sync is free). Returns 0 or the error. */
static int fx_open_opts(struct fx *f, const struct store_fsm_options *o)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/dev/shm/rfs-fsm-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return RFS_EIO;
    f->clock = T0;
    char err[256];
    int r = store_fsm_open(f->dir, o, &f->fsm, err, sizeof err);
    if (r != 0)
        fprintf(stderr, "open %s: %s (%s)\n", f->dir, rfs_strerror(r), err);
    return r;
}

static int fx_open(struct fx *f)
{
    struct store_fsm_options o = {.root_time = {T0 - 100, 5}, .no_sync = true};
    return fx_open_opts(f, &o);
}

static void fx_close(struct fx *f)
{
    store_fsm_close(f->fsm);
    f->fsm = NULL;
    fx_rmdir(f->dir);
}

/* fsm's message (store_fsm_errmsg) in buf, returned for printing. */
static const char *fx_errmsg(struct store_fsm *fsm, char *buf, size_t len)
{
    store_fsm_errmsg(fsm, buf, len);
    return buf;
}

static struct store_cmd cmd_base(struct fx *f, uint8_t type)
{
    struct store_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.time_sec = f->clock++;
    c.time_nsec = 123;
    return c;
}

/* Apply one command as its own batch; returns the result (aborts the test on store errors
 * through the returned err being >= 1000, which no assertion on an errno will accept). */
static struct store_fsm_result fx_apply(struct fx *f, const struct store_cmd *c)
{
    struct store_fsm_result res;
    memset(&res, 0, sizeof res);
    int r = store_fsm_apply_batch(f->fsm, ++f->index, 1, c, 1, &res);
    if (r != 0) {
        char msg[256];
        fprintf(stderr, "apply: %s (%s)\n", rfs_strerror(r), fx_errmsg(f->fsm, msg, sizeof msg));
        res.err = r;
    }
    return res;
}

static struct store_cmd c_named(struct fx *f, uint8_t type, uint64_t parent, const char *name)
{
    struct store_cmd c = cmd_base(f, type);
    c.ino = parent;
    c.name = name;
    c.name_len = strlen(name);
    return c;
}

static struct store_fsm_result do_create(struct fx *f, uint64_t parent, const char *name,
                                         uint32_t mode, uint32_t flags)
{
    struct store_cmd c = c_named(f, STORE_CMD_CREATE, parent, name);
    c.mode = mode;
    c.flags = flags;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_mkdir(struct fx *f, uint64_t parent, const char *name,
                                        uint32_t mode)
{
    struct store_cmd c = c_named(f, STORE_CMD_MKDIR, parent, name);
    c.mode = mode;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_mknod(struct fx *f, uint64_t parent, const char *name,
                                        uint32_t mode)
{
    struct store_cmd c = c_named(f, STORE_CMD_MKNOD, parent, name);
    c.mode = mode;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_unlink(struct fx *f, uint64_t parent, const char *name,
                                         uint32_t flags)
{
    struct store_cmd c = c_named(f, STORE_CMD_UNLINK, parent, name);
    c.flags = flags;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_rmdir(struct fx *f, uint64_t parent, const char *name)
{
    struct store_cmd c = c_named(f, STORE_CMD_RMDIR, parent, name);
    return fx_apply(f, &c);
}

static struct store_fsm_result do_symlink(struct fx *f, uint64_t parent, const char *name,
                                          const char *target)
{
    struct store_cmd c = c_named(f, STORE_CMD_SYMLINK, parent, name);
    c.data = (const uint8_t *)target;
    c.data_len = strlen(target);
    return fx_apply(f, &c);
}

static struct store_fsm_result do_link(struct fx *f, uint64_t ino, uint64_t parent,
                                       const char *name)
{
    struct store_cmd c = c_named(f, STORE_CMD_LINK, ino, name);
    c.ino2 = parent;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_rename(struct fx *f, uint64_t op, const char *on, uint64_t np,
                                         const char *nn, uint32_t flags)
{
    struct store_cmd c = c_named(f, STORE_CMD_RENAME, op, on);
    c.ino2 = np;
    c.name2 = nn;
    c.name2_len = strlen(nn);
    c.flags = flags;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_write(struct fx *f, uint64_t ino, uint64_t off, const void *data,
                                        size_t len)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_WRITE);
    c.ino = ino;
    c.offset = off;
    c.data = data;
    c.data_len = len;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_replace(struct fx *f, uint64_t ino, const void *data, size_t len)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_REPLACE);
    c.ino = ino;
    c.data = data;
    c.data_len = len;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_truncate(struct fx *f, uint64_t ino, uint64_t size)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_SETATTR);
    c.ino = ino;
    c.valid = STORE_CMD_SET_SIZE;
    c.size = size;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_setxattr(struct fx *f, uint64_t ino, const char *name,
                                           const char *value, uint32_t flags)
{
    struct store_cmd c = c_named(f, STORE_CMD_SETXATTR, ino, name);
    c.data = (const uint8_t *)value;
    c.data_len = strlen(value);
    c.flags = flags;
    return fx_apply(f, &c);
}

static struct store_fsm_result do_removexattr(struct fx *f, uint64_t ino, const char *name)
{
    struct store_cmd c = c_named(f, STORE_CMD_REMOVEXATTR, ino, name);
    return fx_apply(f, &c);
}

/* Inode of name in parent, 0 if absent. */
static uint64_t ino_of(struct fx *f, uint64_t parent, const char *name)
{
    struct store_fsm_attr a;
    if (store_fsm_lookup(f->fsm, parent, name, strlen(name), &a) != 0)
        return 0;
    return a.ino;
}

/* Make the closed state machine in dir look as an older build left it, with LMDB directly: its
 * format record set to `format`, and its meta record `drop` removed (NULL: none). */
static void fx_set_format(const char *dir, uint8_t format, const char *drop)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, 1 << 30);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t v[4] = {format, 0, 0, 0};
    MDB_val key = {6, "format"}, val = {4, v};
    assert_int_equal(mdb_put(txn, dbi, &key, &val, 0), 0);
    if (drop != NULL) {
        MDB_val dkey = {strlen(drop), (void *)drop};
        assert_int_equal(mdb_del(txn, dbi, &dkey, NULL), 0);
    }
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The lock records of one inode, as store_fsm_locks lists them (collect_lock is its callback). */
struct collected {
    struct store_fsm_lock locks[STORE_FSM_LOCKS_MAX];
    size_t n;
};

static int collect_lock(void *arg, const struct store_fsm_lock *l)
{
    struct collected *c = arg;
    if (c->n < sizeof c->locks / sizeof c->locks[0])
        c->locks[c->n++] = *l;
    return 0;
}

static struct store_fsm_attr attr_of(struct fx *f, uint64_t ino)
{
    struct store_fsm_attr a;
    memset(&a, 0, sizeof a);
    if (store_fsm_getattr(f->fsm, ino, &a) != 0)
        a.ino = 0;
    return a;
}

static void assert_attr_equal_(const struct store_fsm_attr *a, const struct store_fsm_attr *b,
                               const char *file, int line)
{
    if (a->ino != b->ino || a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
        a->nlink != b->nlink || a->size != b->size || a->blocks != b->blocks ||
        a->atime.sec != b->atime.sec || a->atime.nsec != b->atime.nsec ||
        a->mtime.sec != b->mtime.sec || a->mtime.nsec != b->mtime.nsec ||
        a->ctime.sec != b->ctime.sec || a->ctime.nsec != b->ctime.nsec) {
        print_error("attributes of inode %llu differ\n", (unsigned long long)a->ino);
        _fail(file, line);
    }
}
#define assert_attr_equal(a, b) assert_attr_equal_(&(a), &(b), __FILE__, __LINE__)

#endif
