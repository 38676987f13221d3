/* Differential test: seeded random filesystem operations applied both to the state machine and
 * to a real directory on tmpfs with the same system calls. Every result and errno must match,
 * and the trees must match (names, types, modes, owners, sizes, blocks, contents, link counts,
 * hard-link structure, symlink targets, xattrs, and times wherever they were set explicitly).
 *
 * The real side addresses directories through file descriptors (one per directory inode), so
 * both sides name the same inode even while a batch of several commands renames things.
 * RAFTFS_SEED=N replays one seed; RAFTFS_DIFF_OPS=N changes the total number of operations;
 * RAFTFS_DIFF_TRACE=1 prints every operation and compares the trees after each one.
 *
 * Where raftfs differs from Linux on purpose, the generator avoids the case (docs/fsm-format.md
 * lists them): CREATE without EXCL over a symlink or FIFO, writes to FIFOs, set-id bits,
 * whole-file replace larger than the size limit. */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <cmocka.h>

#include "test/unit/fsm_util.h"

#define MAXF         (256 * 1024) /* file size limit on both sides (RLIMIT_FSIZE for Linux) */
#define OPS_PER_SEED 1000
#define MAX_ENTS     400
#define MAX_DIRS     200
#define EXPLICIT     1000000000 /* explicit times are below it, "now" is above */

enum kind {
    K_CREATE,
    K_MKNOD,
    K_MKDIR,
    K_UNLINK,
    K_RMDIR,
    K_SYMLINK,
    K_RENAME, /* batchable */
    K_LINK,
    K_CHMOD,
    K_CHOWN,
    K_TRUNC,
    K_UTIMES,
    K_WRITE,
    K_REPLACE,
    K_SETX,
    K_RMX,
    K_END
};

static const unsigned weights[K_END] = {
    [K_CREATE] = 12, [K_MKNOD] = 3,   [K_MKDIR] = 8, [K_UNLINK] = 8, [K_RMDIR] = 5, [K_SYMLINK] = 4,
    [K_RENAME] = 14, [K_LINK] = 5,    [K_CHMOD] = 4, [K_CHOWN] = 3,  [K_TRUNC] = 5, [K_UTIMES] = 5,
    [K_WRITE] = 12,  [K_REPLACE] = 4, [K_SETX] = 6,  [K_RMX] = 3,
};

struct ent {
    uint64_t parent;
    char name[256];
    uint64_t ino;
    uint32_t type;
    bool is_root;
};

struct op {
    enum kind kind;
    struct store_cmd c;
    uint64_t dir, dir2; /* directories by FSM inode (real side: their fds) */
    char name[300], name2[300];
    int utime_a, utime_m; /* 0 omit, 1 now, 2 explicit */
    uint8_t data[9100];
    char desc[600];
};

struct run {
    struct fx fx;
    char base[64]; /* the tmpfs mount (or a /dev/shm folder) */
    bool is_mounted;
    bool has_atime; /* noatime mount: atime changes only when we set it */
    int basefd;
    int rootfd;
    int *fds; /* directory fd by FSM inode, -1 unknown */
    size_t nfds;
    uint64_t *real_ino; /* identity map FSM inode -> real st_ino, for hard links */
    size_t nreal;
    uint64_t seed, rng;
    long op;
    long total_ops;
    long ok[K_END], failed[K_END], batched; /* coverage, printed at the end */
    struct ent ents[MAX_ENTS];
    int nents;
    uint64_t dirs[MAX_DIRS];
    int ndirs;
    struct op batch[6];
};

static struct run run_state;

#define FAIL(r, ...)                                                                               \
    do {                                                                                           \
        print_error("seed %llu op %ld: ", (unsigned long long)(r)->seed, (r)->op);                 \
        print_error(__VA_ARGS__);                                                                  \
        print_error("\n(replay with RAFTFS_SEED=%llu)\n", (unsigned long long)(r)->seed);          \
        fail();                                                                                    \
    } while (0)

static uint64_t rnd(struct run *r)
{
    r->rng ^= r->rng << 13; /* xorshift64 */
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static unsigned pick(struct run *r, unsigned n)
{
    return (unsigned)(rnd(r) % n);
}

/* --- file descriptors of directories -------------------------------------------------------- */

static void fd_set_for(struct run *r, uint64_t ino, int fd)
{
    if (ino >= r->nfds) {
        size_t n = (ino + 1) * 2;
        r->fds = realloc(r->fds, n * sizeof *r->fds);
        for (size_t i = r->nfds; i < n; i++)
            r->fds[i] = -1;
        r->nfds = n;
    }
    r->fds[ino] = fd;
}

static int fd_of(struct run *r, uint64_t ino)
{
    if (ino >= r->nfds || r->fds[ino] < 0)
        FAIL(r, "no descriptor for directory inode %llu", (unsigned long long)ino);
    return r->fds[ino];
}

static void fds_close(struct run *r)
{
    for (size_t i = 0; i < r->nfds; i++)
        if (r->fds[i] >= 0)
            close(r->fds[i]);
    free(r->fds);
    r->fds = NULL;
    r->nfds = 0;
}

/* --- the view: every live directory and entry of the state machine ----------------------- */

struct walk_ctx {
    struct run *r;
    uint64_t dir;
};

static int walk_cb(void *arg, const char *name, size_t len, uint64_t ino, uint32_t type,
                   uint64_t next)
{
    struct walk_ctx *w = arg;
    struct run *r = w->r;
    (void)next;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    if (r->nents < MAX_ENTS) {
        struct ent *e = &r->ents[r->nents++];
        e->parent = w->dir;
        memcpy(e->name, name, len);
        e->name[len] = '\0';
        e->ino = ino;
        e->type = type;
        e->is_root = false;
    }
    if (type == S_IFDIR && r->ndirs < MAX_DIRS)
        r->dirs[r->ndirs++] = ino;
    return 0;
}

static void view_refresh(struct run *r)
{
    r->nents = 0;
    r->ndirs = 0;
    r->dirs[r->ndirs++] = STORE_FSM_ROOT_INO;
    struct ent *root = &r->ents[r->nents++];
    *root = (struct ent){.parent = STORE_FSM_ROOT_INO,
                         .name = ".",
                         .ino = STORE_FSM_ROOT_INO,
                         .type = S_IFDIR,
                         .is_root = true};
    for (int i = 0; i < r->ndirs; i++) {
        struct walk_ctx w = {r, r->dirs[i]};
        int rc = store_fsm_readdir(r->fx.fsm, r->dirs[i], 0, walk_cb, &w);
        if (rc != 0)
            FAIL(r, "readdir %llu: %s", (unsigned long long)r->dirs[i], rfs_strerror(rc));
    }
}

/* --- generation ------------------------------------------------------------------------------ */

static const char *const pool[] = {"a", "b", "c", "d", "e", "f"};

static void rand_name(struct run *r, char *out)
{
    unsigned k = pick(r, 200);
    if (k == 0) {
        memset(out, 'L', 256); /* ENAMETOOLONG */
        out[256] = '\0';
    } else if (k == 1) {
        memset(out, 'M', 255);
        out[255] = '\0';
    } else {
        strcpy(out, pool[pick(r, sizeof pool / sizeof pool[0])]);
    }
}

static uint64_t rand_dir(struct run *r)
{
    return r->dirs[pick(r, (unsigned)r->ndirs)];
}

/* An existing entry (not the root) or, one time in five, a name that may not exist. */
static void rand_source(struct run *r, uint64_t *dir, char *name, struct ent **e)
{
    *e = NULL;
    if (r->nents > 1 && pick(r, 5) != 0) {
        *e = &r->ents[1 + pick(r, (unsigned)r->nents - 1)];
        *dir = (*e)->parent;
        strcpy(name, (*e)->name);
        return;
    }
    *dir = rand_dir(r);
    rand_name(r, name);
}

static struct ent *find_ent(struct run *r, uint64_t dir, const char *name)
{
    for (int i = 1; i < r->nents; i++)
        if (r->ents[i].parent == dir && strcmp(r->ents[i].name, name) == 0)
            return &r->ents[i];
    return NULL;
}

/* An entry for an inode-addressed operation; the root counts. NULL if none fits. */
static struct ent *rand_target(struct run *r, bool no_symlink, bool no_special, bool want_reg)
{
    for (int tries = 0; tries < 8; tries++) {
        struct ent *e = &r->ents[pick(r, (unsigned)r->nents)];
        if (want_reg && e->type != S_IFREG && tries < 6)
            continue; /* mostly regular files; sometimes the error cases */
        if (no_symlink && e->type == S_IFLNK)
            continue;
        if (no_special && e->type != S_IFREG && e->type != S_IFDIR && e->type != S_IFLNK)
            continue; /* never open a FIFO, a device or a socket */
        return e;
    }
    return NULL;
}

static enum kind rand_kind(struct run *r, bool batchable)
{
    unsigned total = 0, limit = batchable ? K_LINK : K_END;
    for (unsigned k = 0; k < limit; k++)
        total += weights[k];
    /* A crowded tree shrinks: removal gets more likely. */
    unsigned x = pick(r, total + (r->nents > 120 ? 40 : 0));
    if (x >= total)
        return pick(r, 2) ? K_UNLINK : K_RMDIR;
    for (unsigned k = 0; k < limit; k++) {
        if (x < weights[k])
            return (enum kind)k;
        x -= weights[k];
    }
    return K_CREATE;
}

static void describe(struct op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void describe(struct op *o, const char *fmt, ...)
{
    char buf[sizeof o->desc];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(o->desc, buf, sizeof buf);
}

static void set_name(struct op *o, const char *n)
{
    strcpy(o->name, n);
    o->c.name = o->name;
    o->c.name_len = strlen(o->name);
}

static void set_name2(struct op *o, const char *n)
{
    strcpy(o->name2, n);
    o->c.name2 = o->name2;
    o->c.name2_len = strlen(o->name2);
}

static void rand_bytes(struct run *r, uint8_t *p, size_t n)
{
    uint8_t b = (uint8_t)pick(r, 256);
    for (size_t i = 0; i < n; i++) /* compressible but not constant */
        p[i] = (uint8_t)(b + (i % 7 == 0 ? pick(r, 256) : 0));
}

/* Fill o with a random operation; false if none could be made from the view. */
static bool gen_op(struct run *r, struct op *o, bool in_batch)
{
    struct store_fsm_attr a;
    struct ent *e;
    char name[300];
    memset(&o->c, 0, sizeof o->c);
    o->kind = rand_kind(r, in_batch);
    o->c.time_sec = T0 + r->op;
    o->c.time_nsec = (uint32_t)pick(r, 1000000000);
    o->utime_a = o->utime_m = 0;
    switch (o->kind) {
    case K_CREATE:
    case K_MKNOD:
    case K_MKDIR:
    case K_SYMLINK:
        o->dir = rand_dir(r);
        rand_name(r, name);
        set_name(o, name);
        o->c.ino = o->dir;
        o->c.mode = (uint32_t)pick(r, 01000);
        if (o->kind == K_CREATE) {
            o->c.type = STORE_CMD_CREATE;
            e = find_ent(r, o->dir, name);
            bool must_excl = in_batch || (e && e->type != S_IFREG && e->type != S_IFDIR);
            o->c.flags = must_excl || pick(r, 2) ? STORE_CMD_EXCL : 0;
        } else if (o->kind == K_MKNOD) {
            static const uint32_t types[] = {S_IFIFO, S_IFREG, S_IFCHR, S_IFBLK, S_IFSOCK};
            o->c.type = STORE_CMD_MKNOD;
            o->c.mode |= types[pick(r, 5)];
            /* Linux's encoding of device numbers below major 4096 and minor 2^20 is the
             * 32-bit one FUSE carries. No device is ever opened here. */
            o->c.rdev = (uint32_t)makedev(1 + pick(r, 300), pick(r, 300));
        } else if (o->kind == K_MKDIR) {
            if (r->ndirs > 40)
                return false;
            o->c.type = STORE_CMD_MKDIR;
        } else {
            o->c.type = STORE_CMD_SYMLINK;
            unsigned k = pick(r, 50);
            size_t len = k == 0 ? 4096 : k == 1 ? 0 : 1 + pick(r, 40);
            for (size_t i = 0; i < len; i++)
                o->data[i] = (uint8_t) "abc/.."[pick(r, 6)];
            o->c.data = o->data;
            o->c.data_len = len;
        }
        describe(o, "%s(%llu, '%.20s', mode %o, flags %x)", store_cmd_type_name(o->c.type),
                 (unsigned long long)o->dir, name, o->c.mode, o->c.flags);
        return true;
    case K_UNLINK:
    case K_RMDIR:
        rand_source(r, &o->dir, name, &e);
        o->c.type = o->kind == K_UNLINK ? STORE_CMD_UNLINK : STORE_CMD_RMDIR;
        o->c.ino = o->dir;
        set_name(o, name);
        describe(o, "%s(%llu, '%.20s')", store_cmd_type_name(o->c.type), (unsigned long long)o->dir,
                 name);
        return true;
    case K_RENAME:
        rand_source(r, &o->dir, name, &e);
        set_name(o, name);
        if (r->nents > 1 && pick(r, 2)) {
            e = &r->ents[1 + pick(r, (unsigned)r->nents - 1)];
            o->dir2 = e->parent;
            strcpy(name, e->name);
        } else {
            o->dir2 = rand_dir(r);
            rand_name(r, name);
        }
        set_name2(o, name);
        o->c.type = STORE_CMD_RENAME;
        o->c.ino = o->dir;
        o->c.ino2 = o->dir2;
        unsigned f = pick(r, 10);
        o->c.flags = f < 6 ? 0 : f < 8 ? STORE_CMD_NOREPLACE : STORE_CMD_EXCHANGE;
        describe(o, "rename(%llu '%.20s' -> %llu '%.20s', flags %x)", (unsigned long long)o->dir,
                 o->name, (unsigned long long)o->dir2, o->name2, o->c.flags);
        return true;
    default: break;
    }

    /* Inode-addressed operations: the real side uses the entry's directory and name. */
    bool no_lnk =
        o->kind == K_CHMOD || o->kind == K_TRUNC || o->kind == K_WRITE || o->kind == K_REPLACE;
    bool no_special = o->kind == K_WRITE || o->kind == K_REPLACE;
    bool want_reg = (o->kind == K_TRUNC || o->kind == K_WRITE || o->kind == K_REPLACE ||
                     o->kind == K_SETX || o->kind == K_RMX) &&
                    pick(r, 5) != 0;
    if ((e = rand_target(r, no_lnk, no_special, want_reg)) == NULL)
        return false;
    if (store_fsm_getattr(r->fx.fsm, e->ino, &a) != 0)
        FAIL(r, "getattr of listed inode %llu", (unsigned long long)e->ino);
    o->dir = e->parent;
    set_name(o, e->name);
    o->c.ino = e->ino;
    switch (o->kind) {
    case K_LINK:
        if (e->is_root)
            return false;
        o->c.type = STORE_CMD_LINK;
        o->dir2 = rand_dir(r);
        o->c.ino2 = o->dir2;
        rand_name(r, name);
        set_name2(o, name);
        o->c.name = o->name2; /* the command carries only the new name */
        o->c.name_len = strlen(o->name2);
        o->c.name2 = NULL;
        o->c.name2_len = 0;
        break;
    case K_CHMOD:
        o->c.type = STORE_CMD_SETATTR;
        o->c.valid = STORE_CMD_SET_MODE;
        o->c.mode = (uint32_t)pick(r, 01000);
        break;
    case K_CHOWN: {
        static const uint32_t ids[] = {0, 1000, 1001, 65534};
        o->c.type = STORE_CMD_SETATTR;
        unsigned which = 1 + pick(r, 3);
        if (which & 1) {
            o->c.valid |= STORE_CMD_SET_UID;
            o->c.uid = ids[pick(r, 4)];
        }
        if (which & 2) {
            o->c.valid |= STORE_CMD_SET_GID;
            o->c.gid = ids[pick(r, 4)];
        }
        break;
    }
    case K_TRUNC: {
        o->c.type = STORE_CMD_SETATTR;
        o->c.valid = STORE_CMD_SET_SIZE;
        unsigned k = pick(r, 20);
        o->c.size = k == 0   ? MAXF
                    : k == 1 ? MAXF + 1
                    : k < 5  ? 0
                             : pick(r, (unsigned)a.size + 9000);
        break;
    }
    case K_UTIMES:
        o->c.type = STORE_CMD_SETATTR;
        o->utime_a = (int)pick(r, 3);
        o->utime_m = (int)pick(r, 3);
        if (o->utime_a == 0 && o->utime_m == 0)
            o->utime_m = 2;
        if (o->utime_a == 1)
            o->c.valid |= STORE_CMD_SET_ATIME_NOW;
        if (o->utime_a == 2) {
            o->c.valid |= STORE_CMD_SET_ATIME;
            o->c.atime_sec = 1 + pick(r, 100000000);
            o->c.atime_nsec = pick(r, 1000000000);
        }
        if (o->utime_m == 1)
            o->c.valid |= STORE_CMD_SET_MTIME_NOW;
        if (o->utime_m == 2) {
            o->c.valid |= STORE_CMD_SET_MTIME;
            o->c.mtime_sec = 1 + pick(r, 100000000);
            o->c.mtime_nsec = pick(r, 1000000000);
        }
        break;
    case K_WRITE: {
        o->c.type = STORE_CMD_WRITE;
        unsigned k = pick(r, 20);
        size_t len = pick(r, 10) == 0 ? 0 : 1 + pick(r, 9000);
        o->c.offset = k == 0   ? MAXF - pick(r, 200)
                      : k == 1 ? MAXF + pick(r, 10)
                      : k < 4  ? pick(r, 200000)
                               : pick(r, (unsigned)a.size + 5000);
        rand_bytes(r, o->data, len);
        o->c.data = o->data;
        o->c.data_len = len;
        break;
    }
    case K_REPLACE: {
        o->c.type = STORE_CMD_REPLACE;
        size_t len = pick(r, 6) == 0 ? 0 : pick(r, 9000);
        rand_bytes(r, o->data, len);
        o->c.data = o->data;
        o->c.data_len = len;
        break;
    }
    case K_SETX:
    case K_RMX: {
        static const char *const names[] = {"user.x", "user.y", "user.z",  "trusted.t",
                                            "user.",  "bad.x",  "user.x2", "user.y"};
        o->c.type = o->kind == K_SETX ? STORE_CMD_SETXATTR : STORE_CMD_REMOVEXATTR;
        set_name(o, e->name);
        strcpy(o->name2, names[pick(r, 8)]);
        char list[1024];
        size_t llen = 0;
        if (o->kind == K_RMX && pick(r, 4) != 0 &&
            store_fsm_listxattr(r->fx.fsm, e->ino, list, sizeof list, &llen) == 0 && llen > 0)
            strcpy(o->name2, list); /* mostly one that exists */
        o->c.name = o->name2;       /* the command's name is the attribute's */
        o->c.name_len = strlen(o->name2);
        if (o->kind == K_SETX) {
            size_t len = pick(r, 200);
            rand_bytes(r, o->data, len);
            o->c.data = o->data;
            o->c.data_len = len;
            unsigned fl = pick(r, 8); /* includes CREATE|REPLACE together */
            o->c.flags = fl < 4 ? 0 : fl - 4;
        }
        break;
    }
    default: return false;
    }
    describe(o, "%s(ino %llu = %llu '%.20s', valid %x, size %llu, off %llu, len %zu, '%.20s', %x)",
             store_cmd_type_name(o->c.type), (unsigned long long)e->ino, (unsigned long long)o->dir,
             o->name, o->c.valid, (unsigned long long)o->c.size, (unsigned long long)o->c.offset,
             o->c.data_len, o->name2, o->c.flags);
    return true;
}

/* --- the real side --------------------------------------------------------------------------- */

static void fsize_limit(bool on)
{
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    rl.rlim_cur = on ? MAXF : rl.rlim_max;
    setrlimit(RLIMIT_FSIZE, &rl);
}

static char *proc_path(struct run *r, uint64_t dir, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "/proc/self/fd/%d/%s", fd_of(r, dir), name);
    return buf;
}

/* Run o on the real tree; return 0 or errno, and bytes written in *count. */
static int real_exec(struct run *r, struct op *o, const struct store_fsm_result *res, long *count)
{
    char path[400];
    int fd, rc = 0, dfd = fd_of(r, o->dir);
    *count = 0;
    switch (o->kind) {
    case K_CREATE:
        fd = openat(dfd, o->name,
                    O_CREAT | O_RDONLY | O_NONBLOCK | O_NOFOLLOW |
                        (o->c.flags & STORE_CMD_EXCL ? O_EXCL : 0),
                    o->c.mode);
        if (fd < 0)
            return errno;
        close(fd);
        return 0;
    case K_MKNOD: rc = mknodat(dfd, o->name, o->c.mode, o->c.rdev); break;
    case K_MKDIR:
        rc = mkdirat(dfd, o->name, o->c.mode);
        if (rc == 0 && res->err == 0) {
            fd = openat(dfd, o->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
            if (fd < 0)
                FAIL(r, "open new directory: %s", strerror(errno));
            fd_set_for(r, res->ino, fd);
        }
        break;
    case K_UNLINK: rc = unlinkat(dfd, o->name, 0); break;
    case K_RMDIR: rc = unlinkat(dfd, o->name, AT_REMOVEDIR); break;
    case K_SYMLINK: {
        char target[4200];
        memcpy(target, o->data, o->c.data_len);
        target[o->c.data_len] = '\0';
        rc = symlinkat(target, dfd, o->name);
        break;
    }
    case K_RENAME: {
        unsigned fl = (o->c.flags & STORE_CMD_NOREPLACE ? RENAME_NOREPLACE : 0) |
                      (o->c.flags & STORE_CMD_EXCHANGE ? RENAME_EXCHANGE : 0);
        rc = (int)syscall(SYS_renameat2, dfd, o->name, fd_of(r, o->dir2), o->name2, fl);
        break;
    }
    case K_LINK: rc = linkat(dfd, o->name, fd_of(r, o->dir2), o->name2, 0); break;
    case K_CHMOD: rc = fchmodat(dfd, o->name, o->c.mode, 0); break;
    case K_CHOWN:
        rc = fchownat(dfd, o->name, o->c.valid & STORE_CMD_SET_UID ? o->c.uid : (uid_t)-1,
                      o->c.valid & STORE_CMD_SET_GID ? o->c.gid : (gid_t)-1, AT_SYMLINK_NOFOLLOW);
        break;
    case K_TRUNC:
        fsize_limit(true);
        rc = truncate(proc_path(r, o->dir, o->name, path, sizeof path), (off_t)o->c.size);
        if (rc != 0)
            rc = errno;
        fsize_limit(false);
        return rc;
    case K_UTIMES: {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
        if (o->utime_a == 1)
            ts[0].tv_nsec = UTIME_NOW;
        if (o->utime_a == 2)
            ts[0] = (struct timespec){o->c.atime_sec, o->c.atime_nsec};
        if (o->utime_m == 1)
            ts[1].tv_nsec = UTIME_NOW;
        if (o->utime_m == 2)
            ts[1] = (struct timespec){o->c.mtime_sec, o->c.mtime_nsec};
        rc = utimensat(dfd, o->name, ts, AT_SYMLINK_NOFOLLOW);
        break;
    }
    case K_WRITE:
    case K_REPLACE:
        fd = openat(dfd, o->name, O_WRONLY | O_NOFOLLOW | (o->kind == K_REPLACE ? O_TRUNC : 0));
        if (fd < 0)
            return errno;
        fsize_limit(true);
        ssize_t n = o->kind == K_WRITE ? pwrite(fd, o->data, o->c.data_len, (off_t)o->c.offset)
                                       : write(fd, o->data, o->c.data_len);
        rc = n < 0 ? errno : 0;
        fsize_limit(false);
        close(fd);
        *count = n < 0 ? 0 : n;
        return rc;
    case K_SETX:
        rc = lsetxattr(proc_path(r, o->dir, o->name, path, sizeof path), o->name2, o->data,
                       o->c.data_len, (int)o->c.flags);
        break;
    case K_RMX:
        rc = lremovexattr(proc_path(r, o->dir, o->name, path, sizeof path), o->name2);
        break;
    default: break;
    }
    return rc != 0 ? errno : 0;
}

/* --- comparing trees -------------------------------------------------------------------------- */

struct name_list {
    char (*names)[256];
    uint64_t *inos;
    int n, cap;
};

static void list_add(struct name_list *l, const char *name, size_t len, uint64_t ino)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->names = realloc(l->names, (size_t)l->cap * sizeof *l->names);
        l->inos = realloc(l->inos, (size_t)l->cap * sizeof *l->inos);
    }
    memcpy(l->names[l->n], name, len);
    l->names[l->n][len] = '\0';
    l->inos[l->n++] = ino;
}

static void list_free(struct name_list *l)
{
    free(l->names);
    free(l->inos);
}

static void list_sort(struct name_list *l)
{
    for (int i = 1; i < l->n; i++) /* insertion sort: lists are short */
        for (int j = i; j > 0 && strcmp(l->names[j - 1], l->names[j]) > 0; j--) {
            char tmp[256];
            memcpy(tmp, l->names[j], 256);
            memcpy(l->names[j], l->names[j - 1], 256);
            memcpy(l->names[j - 1], tmp, 256);
            uint64_t t = l->inos[j];
            l->inos[j] = l->inos[j - 1];
            l->inos[j - 1] = t;
        }
}

static int list_cb(void *arg, const char *name, size_t len, uint64_t ino, uint32_t type,
                   uint64_t next)
{
    (void)type;
    (void)next;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    list_add(arg, name, len, ino);
    return 0;
}

static void compare_time(struct run *r, const char *path, const char *what, struct store_fsm_time t,
                         struct timespec ts)
{
    if ((t.sec < EXPLICIT || ts.tv_sec < EXPLICIT) &&
        (t.sec != ts.tv_sec || t.nsec != (uint32_t)ts.tv_nsec))
        FAIL(r, "%s: %s %lld.%09u in raftfs, %lld.%09ld in Linux", path, what, (long long)t.sec,
             t.nsec, (long long)ts.tv_sec, ts.tv_nsec);
}

static void compare_identity(struct run *r, const char *path, uint64_t ino, uint64_t real)
{
    if (ino >= r->nreal) {
        size_t n = (ino + 1) * 2;
        r->real_ino = realloc(r->real_ino, n * sizeof *r->real_ino);
        memset(r->real_ino + r->nreal, 0, (n - r->nreal) * sizeof *r->real_ino);
        r->nreal = n;
    }
    if (r->real_ino[ino] == 0) {
        for (size_t i = 0; i < r->nreal; i++)
            if (r->real_ino[i] == real)
                FAIL(r, "%s: two raftfs inodes (%zu, %llu) are one Linux inode", path, i,
                     (unsigned long long)ino);
        r->real_ino[ino] = real;
    } else if (r->real_ino[ino] != real) {
        FAIL(r, "%s: one raftfs inode %llu is two Linux inodes", path, (unsigned long long)ino);
    }
}

static void compare_xattrs(struct run *r, const char *path, uint64_t ino, const char *ppath)
{
    char fl[4096], rl[4096];
    size_t flen = 0;
    int rc = store_fsm_listxattr(r->fx.fsm, ino, fl, sizeof fl, &flen);
    ssize_t rlen = llistxattr(ppath, rl, sizeof rl);
    if (rc != 0 || rlen < 0)
        FAIL(r, "%s: listxattr %d / %s", path, rc, strerror(errno));
    /* raftfs lists in byte order; Linux in its own: compare as sorted sets. */
    struct name_list a = {0}, b = {0};
    for (size_t i = 0; i < flen; i += strlen(fl + i) + 1)
        list_add(&a, fl + i, strlen(fl + i), 0);
    for (ssize_t i = 0; i < rlen; i += (ssize_t)strlen(rl + i) + 1)
        list_add(&b, rl + i, strlen(rl + i), 0);
    list_sort(&a);
    list_sort(&b);
    bool same = a.n == b.n;
    for (int i = 0; same && i < a.n; i++)
        same = strcmp(a.names[i], b.names[i]) == 0;
    if (!same) {
        int an = a.n, bn = b.n;
        list_free(&a);
        list_free(&b);
        FAIL(r, "%s: %d xattrs in raftfs, %d in Linux", path, an, bn);
    }
    for (int i = 0; i < a.n; i++) {
        char fv[256], rv[256];
        size_t fvl = 0;
        rc = store_fsm_getxattr(r->fx.fsm, ino, a.names[i], fv, sizeof fv, &fvl);
        ssize_t rvl = lgetxattr(ppath, a.names[i], rv, sizeof rv);
        if (rc != 0 || rvl < 0 || (size_t)rvl != fvl || memcmp(fv, rv, fvl) != 0) {
            list_free(&a);
            list_free(&b);
            FAIL(r, "%s: xattr value differs", path);
        }
    }
    list_free(&a);
    list_free(&b);
}

static void compare_contents(struct run *r, const char *path, uint64_t ino, int dfd,
                             const char *name, uint64_t size)
{
    static uint8_t fb[65536], rb[65536];
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW);
    if (fd < 0)
        FAIL(r, "%s: open: %s", path, strerror(errno));
    for (uint64_t off = 0; off < size; off += sizeof fb) {
        size_t n = 0;
        int rc = store_fsm_read(r->fx.fsm, ino, off, fb, sizeof fb, &n);
        ssize_t m = pread(fd, rb, sizeof rb, (off_t)off);
        if (rc != 0 || m < 0 || (size_t)m != n || memcmp(fb, rb, n) != 0) {
            close(fd);
            FAIL(r, "%s: contents differ near offset %llu", path, (unsigned long long)off);
        }
    }
    close(fd);
}

static void compare_node(struct run *r, const char *path, uint64_t ino, int dfd, const char *name,
                         bool contents);

static void compare_dir(struct run *r, const char *path, uint64_t ino, int fd, bool contents)
{
    struct name_list f = {0}, l = {0};
    int rc = store_fsm_readdir(r->fx.fsm, ino, 0, list_cb, &f);
    if (rc != 0)
        FAIL(r, "%s: readdir: %s", path, rfs_strerror(rc));
    int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY);
    DIR *d = fdopendir(dup_fd);
    if (d == NULL)
        FAIL(r, "%s: opendir: %s", path, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            list_add(&l, de->d_name, strlen(de->d_name), de->d_ino);
    closedir(d);
    list_sort(&f);
    list_sort(&l);
    int i = 0;
    for (; i < f.n && i < l.n; i++)
        if (strcmp(f.names[i], l.names[i]) != 0)
            break;
    if (i < f.n || i < l.n) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: entries differ: raftfs '%.40s', Linux '%.40s'", path,
                 i < f.n ? f.names[i] : "(end)", i < l.n ? l.names[i] : "(end)");
        list_free(&f);
        list_free(&l);
        FAIL(r, "%s", msg);
    }
    for (i = 0; i < f.n; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%.40s", path, f.names[i]);
        compare_node(r, sub, f.inos[i], fd, f.names[i], contents);
    }
    list_free(&f);
    list_free(&l);
}

static void compare_node(struct run *r, const char *path, uint64_t ino, int dfd, const char *name,
                         bool contents)
{
    struct store_fsm_attr a;
    struct stat st;
    char ppath[400];
    int rc = store_fsm_getattr(r->fx.fsm, ino, &a);
    if (rc != 0)
        FAIL(r, "%s: getattr: %s", path, rfs_strerror(rc));
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        FAIL(r, "%s: stat: %s", path, strerror(errno));
    if (a.mode != st.st_mode || a.uid != st.st_uid || a.gid != st.st_gid ||
        a.nlink != st.st_nlink || a.size != (uint64_t)st.st_size)
        FAIL(r,
             "%s: raftfs mode %o uid %u gid %u nlink %u size %llu; "
             "Linux mode %o uid %u gid %u nlink %u size %llu",
             path, a.mode, a.uid, a.gid, a.nlink, (unsigned long long)a.size, st.st_mode, st.st_uid,
             st.st_gid, (unsigned)st.st_nlink, (unsigned long long)st.st_size);
    if (a.rdev != st.st_rdev)
        FAIL(r, "%s: raftfs rdev %#x, Linux %#llx", path, a.rdev, (unsigned long long)st.st_rdev);
    if (S_ISREG(a.mode) && a.blocks != (uint64_t)st.st_blocks)
        FAIL(r, "%s: raftfs %llu blocks, Linux %llu", path, (unsigned long long)a.blocks,
             (unsigned long long)st.st_blocks);
    compare_identity(r, path, ino, st.st_ino);
    compare_time(r, path, "mtime", a.mtime, st.st_mtim);
    if (r->has_atime)
        compare_time(r, path, "atime", a.atime, st.st_atim);
    snprintf(ppath, sizeof ppath, "/proc/self/fd/%d/%s", dfd, name);
    compare_xattrs(r, path, ino, ppath);
    if (S_ISLNK(a.mode)) {
        char ft[4200], rt[4200];
        size_t flen = 0;
        rc = store_fsm_readlink(r->fx.fsm, ino, ft, sizeof ft, &flen);
        ssize_t rlen = readlinkat(dfd, name, rt, sizeof rt);
        if (rc != 0 || rlen < 0 || (size_t)rlen != flen || memcmp(ft, rt, flen) != 0)
            FAIL(r, "%s: symlink targets differ", path);
    } else if (S_ISREG(a.mode) && contents) {
        compare_contents(r, path, ino, dfd, name, a.size);
    } else if (S_ISDIR(a.mode)) {
        int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd < 0)
            FAIL(r, "%s: open: %s", path, strerror(errno));
        compare_dir(r, path, ino, fd, contents);
        close(fd);
    }
}

/* --- driving one seed ------------------------------------------------------------------------- */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void run_seed(struct run *r, uint64_t seed, long ops)
{
    char rootname[64];
    r->seed = seed;
    r->rng = seed * 0x9e3779b97f4a7c15ull + 1;
    r->op = 0;
    struct store_fsm_options o = {.max_file_size = MAXF, .no_sync = true, .root_time = {T0 - 1, 0}};
    int rc = fx_open_opts(&r->fx, &o);
    if (rc != 0)
        FAIL(r, "open store: %s", rfs_strerror(rc));
    snprintf(rootname, sizeof rootname, "s%llu", (unsigned long long)seed);
    if (mkdirat(r->basefd, rootname, 0755) != 0)
        FAIL(r, "mkdir %s: %s", rootname, strerror(errno));
    r->rootfd = openat(r->basefd, rootname, O_RDONLY | O_DIRECTORY);
    fd_set_for(r, STORE_FSM_ROOT_INO, r->rootfd);

    while (r->op < ops) {
        view_refresh(r);
        int n = pick(r, 5) == 0 ? 2 + (int)pick(r, 4) : 1;
        int made = 0;
        for (int i = 0; i < n; i++)
            if (gen_op(r, &r->batch[made], n > 1))
                made++;
        if (made == 0)
            continue;
        struct store_cmd cmds[6];
        struct store_fsm_result res[6];
        for (int i = 0; i < made; i++)
            cmds[i] = r->batch[i].c;
        rc = store_fsm_apply_batch(r->fx.fsm, ++r->fx.index, 1, cmds, (size_t)made, res);
        char msg[256];
        if (rc != 0)
            FAIL(r, "apply: %s (%s)", rfs_strerror(rc), fx_errmsg(r->fx.fsm, msg, sizeof msg));
        for (int i = 0; i < made; i++, r->op++) {
            struct op *op = &r->batch[i];
            long count;
            if (getenv("RAFTFS_DIFF_TRACE"))
                printf("# op %ld: %s -> %d\n", r->op, op->desc, res[i].err);
            int err = real_exec(r, op, &res[i], &count);
            if (err != res[i].err)
                FAIL(r, "%s%s: raftfs %s, Linux %s", op->desc, made > 1 ? " (in a batch)" : "",
                     res[i].err ? strerror(res[i].err) : "success",
                     err ? strerror(err) : "success");
            if (err == 0)
                r->ok[op->kind]++;
            else
                r->failed[op->kind]++;
            r->batched += made > 1;
            if (op->kind == K_WRITE && err == 0 && (long)res[i].written != count)
                FAIL(r, "%s: raftfs wrote %llu, Linux %ld", op->desc,
                     (unsigned long long)res[i].written, count);
        }
        if (r->op % 97 < (long)made || getenv("RAFTFS_DIFF_TRACE"))
            compare_dir(r, "", STORE_FSM_ROOT_INO, r->rootfd, false);
    }
    compare_node(r, "", STORE_FSM_ROOT_INO, r->basefd, rootname, true);
    r->total_ops += r->op;

    fds_close(r);
    free(r->real_ino);
    r->real_ino = NULL;
    r->nreal = 0;
    fx_close(&r->fx);
    char full[128];
    snprintf(full, sizeof full, "%s/%s", r->base, rootname);
    nftw(full, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int group_setup(void **state)
{
    struct run *r = &run_state;
    memset(r, 0, sizeof *r);
    umask(0);
    signal(SIGXFSZ, SIG_IGN);
    snprintf(r->base, sizeof r->base, "/tmp/rfs-diff-XXXXXX");
    if (mkdtemp(r->base) == NULL)
        return -1;
    if (mount("tmpfs", r->base, "tmpfs", MS_NOATIME, "size=1g,mode=0755") == 0) {
        r->is_mounted = true;
        r->has_atime = true;
    } else {
        /* Not root: /dev/shm is relatime, so reading during the comparison moves atimes. */
        fprintf(stderr,
                "test_fsm_diff: cannot mount tmpfs (%s); using /dev/shm without "
                "atime checks\n",
                strerror(errno));
        rmdir(r->base);
        snprintf(r->base, sizeof r->base, "/dev/shm/rfs-diff-XXXXXX");
        if (mkdtemp(r->base) == NULL)
            return -1;
    }
    r->basefd = open(r->base, O_RDONLY | O_DIRECTORY);
    *state = r;
    return r->basefd < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
    struct run *r = *state;
    fds_close(r);
    free(r->real_ino);
    if (r->fx.fsm)
        fx_close(&r->fx);
    close(r->basefd);
    if (r->is_mounted)
        umount2(r->base, MNT_DETACH);
    else
        nftw(r->base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    rmdir(r->base);
    return 0;
}

static void differential(void **state)
{
    struct run *r = *state;
    const char *one = getenv("RAFTFS_SEED");
    const char *ops_env = getenv("RAFTFS_DIFF_OPS");
    long total = ops_env ? atol(ops_env) : 100000;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (one) {
        run_seed(r, strtoull(one, NULL, 10), total < OPS_PER_SEED ? total : OPS_PER_SEED);
    } else {
        for (uint64_t seed = 1; r->total_ops < total; seed++)
            run_seed(r, seed, OPS_PER_SEED);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("# %ld operations in %.1f s\n", r->total_ops,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    static const char *const kinds[K_END] = {
        "create", "mknod", "mkdir",    "unlink",  "rmdir", "symlink", "rename",   "link",
        "chmod",  "chown", "truncate", "utimens", "write", "replace", "setxattr", "removexattr"};
    printf("# %ld in batches; succeeded/failed:", r->batched);
    for (int k = 0; k < K_END; k++)
        printf(" %s %ld/%ld", kinds[k], r->ok[k], r->failed[k]);
    printf("\n");
    assert_true(r->total_ops >= (one ? 1 : total));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(differential),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
