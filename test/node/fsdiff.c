/* fsdiff: the differential test of raftfs (test/bats/0220-differential.bats). Runs one seeded
 * random script of filesystem operations on a reference directory (a tmpfs) and on raftfs,
 * operation k going to raftfs mount number k mod M, so successive operations hit different
 * nodes. Every operation must give the same result (errno) on both sides, and at the end the
 * trees must hold the same names, types, device numbers, modes, owners, sizes, contents, link
 * counts, xattrs and symlink targets (not times or inode numbers), as seen through every mount.
 * The reference must be mounted nodev, as FUSE mounts are: device nodes are made but must
 * never open (they are harmless ones all the same: memory devices, loop devices). Not
 * installed.
 *
 *   fsdiff [-v] [-n OPS] SEED REFDIR MOUNT...
 *
 * RAFTFS_SEED in the environment overrides SEED (replay). -v prints every operation. Exits 0
 * when everything matched, 1 at the first difference (with the seed and the operation), 2 on
 * bad usage. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_DATA   20000   /* largest write */
#define MAX_OFF    24000   /* most offsets are below it */
#define SPARSE_OFF 1000000 /* some fall below this, leaving holes */
#define READ_CAP   (SPARSE_OFF + MAX_DATA + 4096)
#define XATTR_CAP  4096

static uint64_t seed;
static bool is_verbose;

/* --- a seeded generator (splitmix64): the same script for the same seed -------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* --- operations ----------------------------------------------------------------------------- */

enum op_type {
    OP_CREATE,
    OP_CREATE_EXCL,
    OP_MKDIR,
    OP_MKFIFO,
    OP_MKNOD, /* a socket, a character or a block device */
    OP_RMDIR,
    OP_UNLINK,
    OP_RENAME,
    OP_LINK,
    OP_SYMLINK,
    OP_WRITE,
    OP_APPEND,
    OP_REWRITE, /* O_TRUNC, then a write */
    OP_TRUNCATE,
    OP_FALLOCATE,
    OP_CHMOD,
    OP_CHOWN,
    OP_UTIMENS,
    OP_SETXATTR,
    OP_REMOVEXATTR,
    OP_READ,
    OP_READLINK,
    OP_GETXATTR,
    OP_LISTXATTR,
    OP_READDIR,
    OP_STAT,
    OP_COUNT,
};

static const char *const op_names[OP_COUNT] = {
    "create",    "create-excl", "mkdir",     "mkfifo",  "mknod",    "rmdir",       "unlink",
    "rename",    "link",        "symlink",   "write",   "append",   "rewrite",     "truncate",
    "fallocate", "chmod",       "chown",     "utimens", "setxattr", "removexattr", "read",
    "readlink",  "getxattr",    "listxattr", "readdir", "stat",
};

/* Relative weights: changes dominate, reads check that every node sees them. */
static const unsigned op_weights[OP_COUNT] = {
    8, 5, 7, 1, 2, 5, 6, 9, 4, 4, 8, 3, 3, 4, 3, 3, 2, 2, 4, 2, 5, 2, 2, 2, 3, 4,
};

struct op {
    enum op_type type;
    char path[64], path2[64];
    unsigned flags;
    unsigned mode;
    uint64_t off;
    size_t len;
    uint32_t uid, gid;
    dev_t rdev;
    int64_t sec;
    long nsec;
    char name[16];
    uint8_t data[MAX_DATA];
};

/* What one side answered: errno, and the bytes of a read-type operation. */
struct outcome {
    int err;
    size_t len;
    uint8_t buf[READ_CAP];
};

static const char *const components[] = {"a", "b", "c", "d", "e"};

static void rand_path(char *out, size_t cap)
{
    unsigned depth = below(100) < 55 ? 1 : below(100) < 75 ? 2 : 3;
    size_t n = 0;
    for (unsigned i = 0; i < depth; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "/" : "",
                              components[below(sizeof components / sizeof components[0])]);
}

static void rand_op(struct op *o)
{
    unsigned total = 0;
    for (int i = 0; i < OP_COUNT; i++)
        total += op_weights[i];
    unsigned pick = below(total);
    int t = 0;
    while (pick >= op_weights[t])
        pick -= op_weights[t++];
    memset(o, 0, offsetof(struct op, data));
    o->type = (enum op_type)t;
    rand_path(o->path, sizeof o->path);
    rand_path(o->path2, sizeof o->path2);
    static const unsigned modes[] = {0644, 0600, 0755, 0700, 0444, 02755, 01777, 04711};
    o->mode = modes[below(sizeof modes / sizeof modes[0])];
    o->off = below(8) == 0 ? below(SPARSE_OFF) : below(MAX_OFF);
    o->len = 1 + below(below(4) == 0 ? MAX_DATA : 300);
    for (size_t i = 0; i < o->len; i++)
        o->data[i] = (uint8_t)rnd();
    static const uint32_t ids[] = {0, 1000, 65534};
    o->uid = ids[below(3)];
    o->gid = ids[below(3)];
    o->sec = 1000000000 + (int64_t)below(1000000000);
    o->nsec = (long)below(1000000000);
    snprintf(o->name, sizeof o->name, "user.k%u", below(3));
    switch (o->type) {
    case OP_RENAME: {
        static const unsigned flags[] = {0, 0, 0, RENAME_NOREPLACE, RENAME_EXCHANGE};
        o->flags = flags[below(5)];
        break;
    }
    case OP_SETXATTR: {
        static const unsigned flags[] = {0, 0, XATTR_CREATE, XATTR_REPLACE};
        o->flags = flags[below(4)];
        o->len = below(40);
        break;
    }
    case OP_SYMLINK: {
        /* Targets that resolve sometimes: sibling names, paths and dangling ones. */
        static const char *const targets[] = {"a", "b", "c/d", "../a", "nowhere", "e/a/b"};
        snprintf(o->path2, sizeof o->path2, "%s", targets[below(6)]);
        break;
    }
    case OP_TRUNCATE: o->off = below(8) == 0 ? below(SPARSE_OFF) : below(MAX_OFF + MAX_DATA); break;
    case OP_MKNOD: {
        static const unsigned types[] = {S_IFSOCK, S_IFCHR, S_IFBLK};
        o->mode |= types[below(3)];
        o->rdev = S_ISCHR(o->mode) ? makedev(1, 3 + below(7)) : makedev(7, 200 + below(50));
        break;
    }
    case OP_FALLOCATE: {
        /* ZERO_RANGE: neither supports it. */
        static const unsigned flags[] = {
            0, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, FALLOC_FL_ZERO_RANGE};
        o->flags = flags[below(5)];
        break;
    }
    default: break;
    }
}

static void describe(const struct op *o, char *out, size_t cap)
{
    switch (o->type) {
    case OP_RENAME:
        snprintf(out, cap, "rename %s %s flags %s", o->path, o->path2,
                 o->flags == RENAME_NOREPLACE  ? "NOREPLACE"
                 : o->flags == RENAME_EXCHANGE ? "EXCHANGE"
                                               : "0");
        break;
    case OP_LINK: snprintf(out, cap, "link %s %s", o->path, o->path2); break;
    case OP_SYMLINK: snprintf(out, cap, "symlink %s -> %s", o->path, o->path2); break;
    case OP_WRITE:
    case OP_REWRITE:
        snprintf(out, cap, "%s %s %zu bytes at %llu", op_names[o->type], o->path, o->len,
                 (unsigned long long)o->off);
        break;
    case OP_APPEND: snprintf(out, cap, "append %s %zu bytes", o->path, o->len); break;
    case OP_TRUNCATE:
        snprintf(out, cap, "truncate %s to %llu", o->path, (unsigned long long)o->off);
        break;
    case OP_MKNOD:
        snprintf(out, cap, "mknod %s %06o %u:%u", o->path, o->mode, major(o->rdev), minor(o->rdev));
        break;
    case OP_FALLOCATE:
        snprintf(out, cap, "fallocate %s mode %#x %zu bytes at %llu", o->path, o->flags, o->len,
                 (unsigned long long)o->off);
        break;
    case OP_CREATE:
    case OP_CREATE_EXCL:
    case OP_MKDIR:
    case OP_MKFIFO:
    case OP_CHMOD: snprintf(out, cap, "%s %s %04o", op_names[o->type], o->path, o->mode); break;
    case OP_CHOWN: snprintf(out, cap, "chown %s %u:%u", o->path, o->uid, o->gid); break;
    case OP_UTIMENS:
        snprintf(out, cap, "utimens %s %lld.%09ld", o->path, (long long)o->sec, o->nsec);
        break;
    case OP_SETXATTR:
        snprintf(out, cap, "setxattr %s %s (%zu bytes) flags %u", o->path, o->name, o->len,
                 o->flags);
        break;
    case OP_REMOVEXATTR:
    case OP_GETXATTR: snprintf(out, cap, "%s %s %s", op_names[o->type], o->path, o->name); break;
    default: snprintf(out, cap, "%s %s", op_names[o->type], o->path); break;
    }
}

/* The write-type operations through one open file: open, pwrite (or write), close; the first
 * failure counts. */
static int write_file(const char *p, int flags, const struct op *o, bool at_offset)
{
    int fd = open(p, flags | O_NONBLOCK); /* a FIFO fails (ENXIO) instead of waiting */
    if (fd < 0)
        return errno;
    ssize_t n = at_offset ? pwrite(fd, o->data, o->len, (off_t)o->off) : write(fd, o->data, o->len);
    int err = n < 0 ? errno : (size_t)n != o->len ? EIO : 0;
    if (close(fd) != 0 && err == 0)
        err = errno;
    return err;
}

/* A stat reduced to what must agree (no times, no inode numbers, not the device it is on). */
static size_t stat_bytes(const struct stat *st, uint8_t *buf)
{
    uint64_t v[6] = {st->st_mode,
                     st->st_nlink,
                     st->st_uid,
                     st->st_gid,
                     S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size,
                     st->st_rdev};
    memcpy(buf, v, sizeof v);
    return sizeof v;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort the NUL-terminated names in buf[0..len) in place: the order of listxattr is the
 * filesystem's own (tmpfs: as added; raftfs: by bytes). */
static void sort_names(char *buf, size_t len)
{
    char *names[256], copy[XATTR_CAP];
    size_t n = 0;
    if (len > sizeof copy)
        return;
    memcpy(copy, buf, len);
    for (size_t off = 0; off < len && n < 256; off += strlen(copy + off) + 1)
        names[n++] = copy + off;
    qsort(names, n, sizeof names[0], cmp_names);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        memcpy(buf + at, names[i], l);
        at += l;
    }
}

/* Sorted names of directory p (no "." or ".."), NUL-separated into buf. */
static int list_dir(const char *p, uint8_t *buf, size_t cap, size_t *len)
{
    DIR *d = opendir(p);
    if (d == NULL)
        return errno;
    char *names[1024];
    size_t n = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL && n < 1024)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            names[n++] = strdup(e->d_name);
    int err = errno;
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_names);
    *len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]) + 1;
        if (*len + l <= cap) {
            memcpy(buf + *len, names[i], l);
            *len += l;
        }
        free(names[i]);
    }
    return err;
}

static void run_op(const struct op *o, const char *root, struct outcome *out)
{
    char p[PATH_MAX], p2[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", root, o->path);
    snprintf(p2, sizeof p2, "%s/%s", root, o->path2);
    int rc = 0, fd;
    ssize_t n;
    struct stat st;
    out->len = 0;
    switch (o->type) {
    case OP_CREATE:
    case OP_CREATE_EXCL:
        fd = open(p, O_WRONLY | O_NONBLOCK | O_CREAT | (o->type == OP_CREATE_EXCL ? O_EXCL : 0),
                  o->mode);
        rc = fd < 0 ? -1 : close(fd);
        break;
    case OP_MKDIR: rc = mkdir(p, o->mode); break;
    case OP_MKFIFO: rc = mkfifo(p, o->mode & 0777); break;
    case OP_MKNOD: rc = mknod(p, o->mode, o->rdev); break;
    case OP_RMDIR: rc = rmdir(p); break;
    case OP_UNLINK: rc = unlink(p); break;
    case OP_RENAME: rc = (int)syscall(SYS_renameat2, AT_FDCWD, p, AT_FDCWD, p2, o->flags); break;
    case OP_LINK: rc = link(p, p2); break;
    case OP_SYMLINK: rc = symlink(o->path2, p); break;
    case OP_WRITE: out->err = write_file(p, O_WRONLY, o, true); return;
    case OP_APPEND: out->err = write_file(p, O_WRONLY | O_APPEND, o, false); return;
    case OP_REWRITE: out->err = write_file(p, O_WRONLY | O_TRUNC, o, true); return;
    case OP_TRUNCATE: rc = truncate(p, (off_t)o->off); break;
    case OP_FALLOCATE:
        fd = open(p, O_WRONLY | O_NONBLOCK);
        if (fd < 0) {
            rc = -1;
            break;
        }
        rc = fallocate(fd, (int)o->flags, (off_t)o->off, (off_t)o->len);
        if (rc != 0) {
            int e = errno;
            close(fd);
            errno = e;
        } else {
            rc = close(fd);
        }
        break;
    case OP_CHMOD: rc = chmod(p, o->mode); break;
    case OP_CHOWN: rc = lchown(p, o->uid, o->gid); break;
    case OP_UTIMENS: {
        struct timespec ts[2] = {{o->sec, o->nsec}, {o->sec + 1, o->nsec}};
        rc = utimensat(AT_FDCWD, p, ts, 0);
        if (rc == 0 && (rc = stat(p, &st)) == 0) {
            /* Nanosecond times are kept: compare what stat gives back. */
            int64_t t[4] = {st.st_atim.tv_sec, st.st_atim.tv_nsec, st.st_mtim.tv_sec,
                            st.st_mtim.tv_nsec};
            memcpy(out->buf, t, sizeof t);
            out->len = sizeof t;
        }
        break;
    }
    case OP_SETXATTR: rc = setxattr(p, o->name, o->data, o->len, (int)o->flags); break;
    case OP_REMOVEXATTR: rc = removexattr(p, o->name); break;
    case OP_READ:
        fd = open(p, O_RDONLY | O_NONBLOCK); /* a FIFO opens without a writer */
        if (fd < 0) {
            rc = -1;
            break;
        }
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
            close(fd);
            break;
        }
        while ((n = read(fd, out->buf + out->len, READ_CAP - out->len)) > 0)
            out->len += (size_t)n;
        rc = n < 0 ? -1 : 0;
        if (rc != 0) {
            int e = errno;
            close(fd);
            errno = e;
        } else {
            close(fd);
        }
        break;
    case OP_READLINK:
        n = readlink(p, (char *)out->buf, READ_CAP);
        rc = n < 0 ? -1 : 0;
        out->len = n < 0 ? 0 : (size_t)n;
        break;
    case OP_GETXATTR:
        n = getxattr(p, o->name, out->buf, XATTR_CAP);
        rc = n < 0 ? -1 : 0;
        out->len = n < 0 ? 0 : (size_t)n;
        break;
    case OP_LISTXATTR:
        n = listxattr(p, (char *)out->buf, XATTR_CAP);
        rc = n < 0 ? -1 : 0;
        out->len = n < 0 ? 0 : (size_t)n;
        sort_names((char *)out->buf, out->len);
        break;
    case OP_READDIR: out->err = list_dir(p, out->buf, READ_CAP, &out->len); return;
    case OP_STAT:
        rc = lstat(p, &st);
        if (rc == 0)
            out->len = stat_bytes(&st, out->buf);
        break;
    case OP_COUNT: break;
    }
    out->err = rc == 0 ? 0 : errno;
}

/* --- the final trees ------------------------------------------------------------------------- */

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fsdiff: seed %llu: ", (unsigned long long)seed);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

static struct outcome ref_out, fs_out;

/* Compare the file, directory or link rel under both roots, recursively. */
static int compare_tree(const char *ref, const char *mnt, const char *rel)
{
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s%s", ref, rel);
    snprintf(b, sizeof b, "%s%s", mnt, rel);
    struct stat sa, sb;
    if (lstat(a, &sa) != 0)
        return fail("final tree: lstat %s: %s", a, strerror(errno));
    if (lstat(b, &sb) != 0)
        return fail("final tree: lstat %s: %s", b, strerror(errno));
    const char *what = rel[0] ? rel : "/";
    if (sa.st_mode != sb.st_mode || sa.st_nlink != sb.st_nlink || sa.st_uid != sb.st_uid ||
        sa.st_gid != sb.st_gid || sa.st_size != sb.st_size || sa.st_rdev != sb.st_rdev)
        return fail("final tree: %s: tmpfs mode %o nlink %lu owner %u:%u size %lld rdev %#llx, "
                    "%s: mode %o nlink %lu owner %u:%u size %lld rdev %#llx",
                    what, sa.st_mode, (unsigned long)sa.st_nlink, sa.st_uid, sa.st_gid,
                    (long long)sa.st_size, (unsigned long long)sa.st_rdev, mnt, sb.st_mode,
                    (unsigned long)sb.st_nlink, sb.st_uid, sb.st_gid, (long long)sb.st_size,
                    (unsigned long long)sb.st_rdev);
    /* xattrs (not on symlinks: user.* is refused there on both sides) */
    if (!S_ISLNK(sa.st_mode)) {
        char la[XATTR_CAP], lb[XATTR_CAP];
        ssize_t na = listxattr(a, la, sizeof la), nb = listxattr(b, lb, sizeof lb);
        if (na > 0)
            sort_names(la, (size_t)na);
        if (nb > 0)
            sort_names(lb, (size_t)nb);
        if (na != nb || (na > 0 && memcmp(la, lb, (size_t)na) != 0))
            return fail("final tree: %s: xattr names differ (%zd and %zd bytes)", what, na, nb);
        for (ssize_t off = 0; off < na; off += (ssize_t)strlen(la + off) + 1) {
            char va[XATTR_CAP], vb[XATTR_CAP];
            ssize_t xa = getxattr(a, la + off, va, sizeof va);
            ssize_t xb = getxattr(b, la + off, vb, sizeof vb);
            if (xa != xb || (xa > 0 && memcmp(va, vb, (size_t)xa) != 0))
                return fail("final tree: %s: xattr %s differs", what, la + off);
        }
    }
    if (S_ISLNK(sa.st_mode)) {
        char ta[PATH_MAX], tb[PATH_MAX];
        ssize_t na = readlink(a, ta, sizeof ta), nb = readlink(b, tb, sizeof tb);
        if (na != nb || na < 0 || memcmp(ta, tb, (size_t)na) != 0)
            return fail("final tree: %s: symlink targets differ", what);
    } else if (S_ISREG(sa.st_mode)) {
        struct op o = {.type = OP_READ};
        snprintf(o.path, sizeof o.path, "%s", rel + 1);
        run_op(&o, ref, &ref_out);
        run_op(&o, mnt, &fs_out);
        if (ref_out.err != fs_out.err || ref_out.len != fs_out.len ||
            memcmp(ref_out.buf, fs_out.buf, ref_out.len) != 0)
            return fail("final tree: %s: contents differ (%zu and %zu bytes)", what, ref_out.len,
                        fs_out.len);
    } else if (S_ISDIR(sa.st_mode)) {
        int ea = list_dir(a, ref_out.buf, READ_CAP, &ref_out.len);
        int eb = list_dir(b, fs_out.buf, READ_CAP, &fs_out.len);
        if (ea != 0 || eb != 0)
            return fail("final tree: listing %s: %s / %s", what, strerror(ea), strerror(eb));
        if (ref_out.len != fs_out.len || memcmp(ref_out.buf, fs_out.buf, ref_out.len) != 0)
            return fail("final tree: %s: entries differ", what);
        size_t len = ref_out.len;
        char *copy = malloc(len ? len : 1);
        if (copy == NULL)
            return fail("out of memory");
        memcpy(copy, ref_out.buf, len);
        int rc = 0;
        for (size_t off = 0; off < len && rc == 0; off += strlen(copy + off) + 1) {
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", rel, copy + off);
            rc = compare_tree(ref, mnt, sub);
        }
        free(copy);
        return rc;
    }
    return 0;
}

static void print_err(char *out, size_t cap, int err)
{
    if (err == 0)
        snprintf(out, cap, "success");
    else
        snprintf(out, cap, "%s (%s)", strerrorname_np(err), strerror(err));
}

int main(int argc, char **argv)
{
    unsigned long ops = 2000;
    int ch;
    while ((ch = getopt(argc, argv, "vn:")) != -1) {
        switch (ch) {
        case 'v': is_verbose = true; break;
        case 'n': ops = strtoul(optarg, NULL, 10); break;
        default: goto usage;
        }
    }
    if (argc - optind < 3)
        goto usage;
    seed = strtoull(argv[optind], NULL, 10);
    const char *env = getenv("RAFTFS_SEED");
    if (env != NULL && env[0] != '\0')
        seed = strtoull(env, NULL, 10);
    const char *ref = argv[optind + 1];
    char **mounts = argv + optind + 2;
    int n_mounts = argc - optind - 2;
    rng_state = seed;
    umask(0);

    static struct op o;
    for (unsigned long k = 0; k < ops; k++) {
        rand_op(&o);
        const char *mnt = mounts[k % (unsigned long)n_mounts];
        char desc[256];
        describe(&o, desc, sizeof desc);
        run_op(&o, ref, &ref_out);
        run_op(&o, mnt, &fs_out);
        if (is_verbose) {
            char e[96];
            print_err(e, sizeof e, fs_out.err);
            printf("%lu mount %lu: %s: %s\n", k, k % (unsigned long)n_mounts, desc, e);
        }
        if (ref_out.err != fs_out.err || ref_out.len != fs_out.len ||
            memcmp(ref_out.buf, fs_out.buf, ref_out.len) != 0) {
            char ea[96], eb[96];
            print_err(ea, sizeof ea, ref_out.err);
            print_err(eb, sizeof eb, fs_out.err);
            fail("operation %lu through %s: %s: tmpfs %s with %zu bytes, raftfs %s with %zu "
                 "bytes",
                 k, mnt, desc, ea, ref_out.len, eb, fs_out.len);
            fprintf(stderr, "fsdiff: replay with RAFTFS_SEED=%llu (and -v for a trace)\n",
                    (unsigned long long)seed);
            return 1;
        }
    }
    for (int i = 0; i < n_mounts; i++) {
        if (compare_tree(ref, mounts[i], "") != 0) {
            fprintf(stderr, "fsdiff: replay with RAFTFS_SEED=%llu (and -v for a trace)\n",
                    (unsigned long long)seed);
            return 1;
        }
    }
    printf("fsdiff: seed %llu: %lu operations, same results and same tree on %d mounts\n",
           (unsigned long long)seed, ops, n_mounts);
    return 0;

usage:
    fprintf(stderr, "usage: fsdiff [-v] [-n OPS] SEED REFDIR MOUNT...\n");
    return 2;
}
