/* Snapshot files: header + compacted LMDB copy; take, stream, receive, verify, extract, retain.
 *
 * Design notes (numbered invariants):
 *
 * 1. A file named snap-<index>-<term>.rfs is complete and was fsynced before it got that
 *    name: every writer (take, receive) works in a tmp-* file and renames it into place only
 *    after verifying it, then fsyncs the directory. tmp-* files are garbage after a crash and
 *    are removed when the directory is opened.
 * 2. Nothing is installed from bytes that were not checked: receive verifies header and
 *    payload checksums before the rename; extract verifies the payload checksum while copying
 *    and only then renames the new environment into place.
 * 3. Taking a snapshot never holds a write lock on the source environment:
 *    mdb_env_copyfd2(MDB_CP_COMPACT) copies from a read transaction of its own. Because that
 *    transaction starts inside LMDB, what the copy contains is read back from the copy
 *    (the describe callback), never assumed.
 * 4. Memory is constant in the snapshot size: payloads are streamed in COPY_CHUNK pieces. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "lib/le.h"
#include "store/error_map.h"
#include "store/snapshot.h"

#define SNAP_MAGIC      "RFSSNAP\0"
#define SNAP_VERSION    STORE_SNAPSHOT_VERSION
#define SNAP_FIXED      48u /* header bytes before the configuration */
#define SNAP_MAX_CONFIG (1u << 20)
#define COPY_CHUNK      (1u << 20)
#define DEFAULT_KEEP    2u
#define ERRMSG_SIZE     512
#define NAME_SIZE       64

struct store_snapshot_dir {
    char *path;
    int dirfd;
    unsigned keep;
    pthread_mutex_t err_lock;
    char err[ERRMSG_SIZE]; /* protected by err_lock */
};

struct store_snapshot_reader {
    struct store_snapshot_dir *sd;
    int fd;
    uint64_t size;
    struct store_snapshot_meta meta;
    void *header; /* owns the bytes meta.config points into */
};

struct store_snapshot_receiver {
    struct store_snapshot_dir *sd;
    int fd;
    char tmp_name[NAME_SIZE];
    uint64_t index;
    uint64_t term;
    uint64_t received;
};

/* --- helpers -------------------------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static void set_err(struct store_snapshot_dir *sd,
                                                          const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&sd->err_lock);
    va_start(ap, fmt);
    vsnprintf(sd->err, sizeof sd->err, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&sd->err_lock);
}

/* Convert an errno value or an LMDB code once (store/error_map.h), with context. */
static int convert_error(struct store_snapshot_dir *sd, int err, const char *what, const char *call)
{
    pthread_mutex_lock(&sd->err_lock);
    int code = store__error(sd->err, sizeof sd->err, err, "%s: %s", what, call);
    pthread_mutex_unlock(&sd->err_lock);
    return code;
}

static void snap_name(char *buf, uint64_t index, uint64_t term)
{
    snprintf(buf, NAME_SIZE, "snap-%016" PRIx64 "-%016" PRIx64 ".rfs", index, term);
}

/* Parse a snapshot file name; false for anything else (temporaries, strangers). */
static bool parse_name(const char *name, uint64_t *index, uint64_t *term)
{
    char check[NAME_SIZE];
    if (strlen(name) != 42 ||
        sscanf(name, "snap-%16" SCNx64 "-%16" SCNx64 ".rfs", index, term) != 2)
        return false;
    snap_name(check, *index, *term);
    return strcmp(check, name) == 0;
}

static int write_full(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return EIO;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Read up to len bytes at off; *got < len only at end of file. Returns 0 or errno. */
static int read_full(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    uint8_t *p = buf;
    *got = 0;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            break;
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
        *got += (size_t)n;
    }
    return 0;
}

/* Create a temporary file in the snapshot directory; its base name goes to name. */
static int make_temp(struct store_snapshot_dir *sd, const char *kind, char *name, int *fd,
                     const char *what)
{
    char *path;
    if (asprintf(&path, "%s/tmp-%s-XXXXXX", sd->path, kind) < 0) {
        set_err(sd, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    *fd = mkostemp(path, O_CLOEXEC);
    if (*fd < 0) {
        int rc = convert_error(sd, errno, what, "create temporary file");
        free(path);
        return rc;
    }
    snprintf(name, NAME_SIZE, "%s", strrchr(path, '/') + 1);
    free(path);
    return 0;
}

static int sync_dir(struct store_snapshot_dir *sd, int dirfd, const char *what)
{
    if (fsync(dirfd) != 0)
        return convert_error(sd, errno, what, "fsync directory");
    return 0;
}

/* --- header --------------------------------------------------------------------------------- */

static size_t header_len_for(size_t config_len)
{
    return SNAP_FIXED + config_len + 4;
}

static void header_encode(uint8_t *buf, const struct store_snapshot_meta *m, uint64_t payload_len,
                          uint32_t payload_crc)
{
    size_t hlen = header_len_for(m->config_len);
    memcpy(buf, SNAP_MAGIC, 8);
    rfs_put_le32(buf + 8, SNAP_VERSION);
    rfs_put_le32(buf + 12, (uint32_t)hlen);
    rfs_put_le64(buf + 16, m->index);
    rfs_put_le64(buf + 24, m->term);
    rfs_put_le64(buf + 32, payload_len);
    rfs_put_le32(buf + 40, payload_crc);
    rfs_put_le32(buf + 44, (uint32_t)m->config_len);
    if (m->config_len > 0)
        memcpy(buf + SNAP_FIXED, m->config, m->config_len);
    rfs_put_le32(buf + hlen - 4, rfs_crc32c(0, buf, hlen - 4));
}

/* Check the fields every version keeps in place (magic, header length) and return the
 * header length, or 0 with a reason. */
static uint32_t header_peek(const uint8_t *p, size_t len, char *why, size_t wlen)
{
    if (len < SNAP_FIXED) {
        snprintf(why, wlen, "truncated header (%zu bytes)", len);
        return 0;
    }
    if (memcmp(p, SNAP_MAGIC, 8) != 0) {
        snprintf(why, wlen, "not a raftfs snapshot (bad magic)");
        return 0;
    }
    uint32_t hlen = rfs_get_le32(p + 12);
    if (hlen < SNAP_FIXED + 4 || hlen > STORE_SNAPSHOT_MAX_HEADER) {
        snprintf(why, wlen, "header length %u out of range", hlen);
        return 0;
    }
    return hlen;
}

/* The checks of store_snapshot_header_decode, with a reason for the caller's message. The
 * header checksum is checked before the version, so a damaged version field reads as
 * corruption and only an intact header of another version as RFS_EFORMAT. */
static int header_decode(const void *buf, size_t len, struct store_snapshot_header *out, char *why,
                         size_t wlen)
{
    const uint8_t *p = buf;
    memset(out, 0, sizeof *out);
    uint32_t hlen = header_peek(p, len, why, wlen);
    if (hlen == 0)
        return RFS_ECORRUPT;
    if (len < hlen) {
        snprintf(why, wlen, "truncated header (%zu of %u bytes)", len, hlen);
        return RFS_ECORRUPT;
    }
    uint32_t crc = rfs_crc32c(0, p, hlen - 4);
    if (crc != rfs_get_le32(p + hlen - 4)) {
        snprintf(why, wlen, "header checksum mismatch (stored %08x, computed %08x)",
                 rfs_get_le32(p + hlen - 4), crc);
        return RFS_ECORRUPT;
    }
    uint32_t version = rfs_get_le32(p + 8);
    if (version != SNAP_VERSION) {
        snprintf(why, wlen, "snapshot format version %u is not supported (this build reads %u)",
                 version, SNAP_VERSION);
        return RFS_EFORMAT;
    }
    uint32_t config_len = rfs_get_le32(p + 44);
    if (config_len > SNAP_MAX_CONFIG || header_len_for(config_len) != hlen) {
        snprintf(why, wlen, "configuration length %u does not match header length %u", config_len,
                 hlen);
        return RFS_ECORRUPT;
    }
    out->header_len = hlen;
    out->meta.index = rfs_get_le64(p + 16);
    out->meta.term = rfs_get_le64(p + 24);
    out->payload_len = rfs_get_le64(p + 32);
    out->payload_crc = rfs_get_le32(p + 40);
    out->meta.config_len = config_len;
    out->meta.config = config_len > 0 ? p + SNAP_FIXED : NULL;
    return 0;
}

int store_snapshot_header_decode(const void *buf, size_t len, struct store_snapshot_header *out)
{
    char why[160];
    return header_decode(buf, len, out, why, sizeof why);
}

int store_snapshot_image_verify(const void *buf, size_t len, struct store_snapshot_header *out)
{
    int rc = store_snapshot_header_decode(buf, len, out);
    if (rc != 0)
        return rc;
    if (len - out->header_len != out->payload_len)
        return RFS_ECORRUPT;
    const uint8_t *payload = (const uint8_t *)buf + out->header_len;
    if (rfs_crc32c(0, payload, out->payload_len) != out->payload_crc)
        return RFS_ECORRUPT;
    return 0;
}

/* Read and decode the header of an open snapshot file. *hbuf (malloc'd) holds the bytes the
 * decoded config points into; the caller frees it. */
static int read_header(struct store_snapshot_dir *sd, int fd, struct store_snapshot_header *hdr,
                       void **hbuf, const char *what)
{
    uint8_t fixed[SNAP_FIXED];
    char why[160];
    size_t got;
    *hbuf = NULL;
    int err = read_full(fd, fixed, sizeof fixed, 0, &got);
    if (err != 0)
        return convert_error(sd, err, what, "read header");
    uint32_t hlen = header_peek(fixed, got, why, sizeof why);
    if (hlen == 0) {
        set_err(sd, "%s: %s", what, why);
        return RFS_ECORRUPT;
    }
    uint8_t *buf = malloc(hlen);
    if (buf == NULL) {
        set_err(sd, "%s: out of memory for a %u-byte header", what, hlen);
        return RFS_ENOMEM;
    }
    if ((err = read_full(fd, buf, hlen, 0, &got)) != 0) {
        free(buf);
        return convert_error(sd, err, what, "read header");
    }
    int rc = header_decode(buf, got, hdr, why, sizeof why);
    if (rc != 0) {
        set_err(sd, "%s: %s", what, why);
        free(buf);
        return rc;
    }
    *hbuf = buf;
    return 0;
}

/* Check that the file is exactly header + payload and the payload checksum matches. If out_fd
 * is >= 0, also copy the payload there (at offset 0), so extract reads the bytes once. */
static int check_payload(struct store_snapshot_dir *sd, int fd,
                         const struct store_snapshot_header *hdr, int out_fd, const char *what)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return convert_error(sd, errno, what, "fstat");
    uint64_t size = (uint64_t)st.st_size;
    if (size != hdr->header_len + hdr->payload_len) {
        set_err(sd, "%s: %s: the file has %" PRIu64 " bytes, its header says %" PRIu64, what,
                size < hdr->header_len + hdr->payload_len ? "truncated" : "trailing bytes", size,
                hdr->header_len + hdr->payload_len);
        return RFS_ECORRUPT;
    }
    uint8_t *buf = malloc(COPY_CHUNK);
    if (buf == NULL) {
        set_err(sd, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    int rc = 0;
    uint32_t crc = 0;
    for (uint64_t off = 0; off < hdr->payload_len;) {
        size_t want =
            hdr->payload_len - off < COPY_CHUNK ? (size_t)(hdr->payload_len - off) : COPY_CHUNK;
        size_t got;
        int err = read_full(fd, buf, want, hdr->header_len + off, &got);
        if (err == 0 && got != want)
            err = EIO; /* shrank under us */
        if (err != 0) {
            rc = convert_error(sd, err, what, "read payload");
            goto out;
        }
        crc = rfs_crc32c(crc, buf, got);
        if (out_fd >= 0 && (err = write_full(out_fd, buf, got, off)) != 0) {
            rc = convert_error(sd, err, what, "write data.mdb");
            goto out;
        }
        off += got;
    }
    if (crc != hdr->payload_crc) {
        set_err(sd, "%s: payload checksum mismatch (stored %08x, computed %08x)", what,
                hdr->payload_crc, crc);
        rc = RFS_ECORRUPT;
    }
out:
    free(buf);
    return rc;
}

/* --- directory ------------------------------------------------------------------------------ */

int store_snapshot_dir_open(const char *path, const struct store_snapshot_options *opts,
                            struct store_snapshot_dir **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    struct store_snapshot_dir *sd = calloc(1, sizeof *sd);
    if (sd == NULL || (sd->path = strdup(path)) == NULL) {
        free(sd);
        if (errbuf != NULL)
            snprintf(errbuf, errlen, "open snapshot directory %s: out of memory", path);
        return RFS_ENOMEM;
    }
    pthread_mutex_init(&sd->err_lock, NULL);
    sd->keep = opts != NULL && opts->keep > 0 ? opts->keep : DEFAULT_KEEP;
    sd->dirfd = -1;
    char what[300];
    snprintf(what, sizeof what, "open snapshot directory %s", path);
    int rc;
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        rc = convert_error(sd, errno, what, "mkdir");
        goto err;
    }
    if ((sd->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = convert_error(sd, errno, what, "open");
        goto err;
    }
    /* Invariant 1: temporaries are garbage once nobody is writing them. */
    DIR *d = opendir(path);
    if (d == NULL) {
        rc = convert_error(sd, errno, what, "opendir");
        goto err;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "tmp-", 4) == 0)
            (void)unlinkat(sd->dirfd, de->d_name, 0);
    closedir(d);
    *out = sd;
    return 0;

err:
    if (errbuf != NULL)
        store_snapshot_errmsg(sd, errbuf, errlen);
    store_snapshot_dir_close(sd);
    return rc;
}

void store_snapshot_dir_close(struct store_snapshot_dir *sd)
{
    if (sd == NULL)
        return;
    if (sd->dirfd >= 0)
        close(sd->dirfd);
    pthread_mutex_destroy(&sd->err_lock);
    free(sd->path);
    free(sd);
}

char *store_snapshot_errmsg(struct store_snapshot_dir *sd, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    pthread_mutex_lock(&sd->err_lock);
    snprintf(buf, size, "%s", sd->err);
    pthread_mutex_unlock(&sd->err_lock);
    return buf;
}

static int cmp_newest_first(const void *a, const void *b)
{
    const struct store_snapshot_info *x = a, *y = b;
    if (x->index != y->index)
        return x->index > y->index ? -1 : 1;
    if (x->term != y->term)
        return x->term > y->term ? -1 : 1;
    return 0;
}

int store_snapshot_list(struct store_snapshot_dir *sd, struct store_snapshot_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int fd = dup(sd->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        int rc = convert_error(sd, errno, "list snapshots", "opendir");
        if (fd >= 0)
            close(fd);
        return rc;
    }
    rewinddir(d);
    struct store_snapshot_info *v = NULL;
    size_t count = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        struct store_snapshot_info info;
        struct stat st;
        if (!parse_name(de->d_name, &info.index, &info.term))
            continue;
        if (fstatat(sd->dirfd, de->d_name, &st, 0) != 0)
            continue; /* deleted by a concurrent retention */
        info.size = (uint64_t)st.st_size;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct store_snapshot_info *grown = realloc(v, ncap * sizeof *v);
            if (grown == NULL) {
                set_err(sd, "list snapshots: out of memory");
                rc = RFS_ENOMEM;
                break;
            }
            v = grown;
            cap = ncap;
        }
        v[count++] = info;
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (count > 1)
        qsort(v, count, sizeof *v, cmp_newest_first);
    *out = v;
    *n = count;
    return 0;
}

int store_snapshot_retain(struct store_snapshot_dir *sd, unsigned keep)
{
    if (keep == 0) {
        set_err(sd, "retain: keep must be at least 1");
        return RFS_EINVAL;
    }
    struct store_snapshot_info *v;
    size_t n;
    int rc = store_snapshot_list(sd, &v, &n);
    if (rc != 0)
        return rc;
    for (size_t i = keep; i < n; i++) {
        char name[NAME_SIZE];
        snap_name(name, v[i].index, v[i].term);
        if (unlinkat(sd->dirfd, name, 0) != 0 && errno != ENOENT) {
            rc = convert_error(sd, errno, "retain", "unlink old snapshot");
            break;
        }
    }
    free(v);
    return rc;
}

/* Open a snapshot file by (index, term) and decode its header. */
static int open_snapshot(struct store_snapshot_dir *sd, uint64_t index, uint64_t term, int *fd,
                         struct store_snapshot_header *hdr, void **hbuf, const char *what)
{
    char name[NAME_SIZE];
    snap_name(name, index, term);
    *fd = openat(sd->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT) {
            set_err(sd, "%s: no snapshot %s in %s", what, name, sd->path);
            return RFS_ENOTFOUND;
        }
        return convert_error(sd, errno, what, "open");
    }
    int rc = read_header(sd, *fd, hdr, hbuf, what);
    if (rc == 0 && (hdr->meta.index != index || hdr->meta.term != term)) {
        set_err(sd, "%s: %s holds index %" PRIu64 " term %" PRIu64, what, name, hdr->meta.index,
                hdr->meta.term);
        free(*hbuf);
        *hbuf = NULL;
        rc = RFS_ECORRUPT;
    }
    if (rc != 0) {
        close(*fd);
        *fd = -1;
    }
    return rc;
}

/* --- taking --------------------------------------------------------------------------------- */

/* Open the copy read-only (no lock file: nobody else knows it exists) and ask describe what
 * it holds. On success *config owns a copy of the configuration bytes. */
static int describe_copy(struct store_snapshot_dir *sd, const char *copy_name,
                         store_snapshot_describe_fn describe, void *ctx,
                         struct store_snapshot_meta *meta, void **config, const char *what)
{
    char *path;
    MDB_env *env;
    MDB_txn *txn;
    int rc;
    *config = NULL;
    if (asprintf(&path, "%s/%s", sd->path, copy_name) < 0) {
        set_err(sd, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    if ((rc = mdb_env_create(&env)) != 0)
        goto err_mdb;
    if ((rc = mdb_env_set_maxdbs(env, 256)) != 0 ||
        (rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0600)) !=
            0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
        mdb_env_close(env);
        goto err_mdb;
    }
    memset(meta, 0, sizeof *meta);
    rc = describe(ctx, txn, meta);
    if (rc != 0) {
        set_err(sd, "%s: describing the copy failed: %s", what, rfs_strerror(rc));
    } else if (meta->config_len > SNAP_MAX_CONFIG) {
        set_err(sd, "%s: configuration of %zu bytes exceeds %u", what, meta->config_len,
                SNAP_MAX_CONFIG);
        rc = RFS_EINVAL;
    } else if (meta->config_len > 0) {
        if ((*config = malloc(meta->config_len)) == NULL) {
            set_err(sd, "%s: out of memory", what);
            rc = RFS_ENOMEM;
        } else {
            memcpy(*config, meta->config, meta->config_len);
            meta->config = *config;
        }
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    free(path);
    return rc;

err_mdb:
    free(path);
    return convert_error(sd, rc, what, "open the copy");
}

/* Write header + payload (streamed from copy_fd) into a new temporary file, fsync it and
 * rename it into place. */
static int write_snapshot(struct store_snapshot_dir *sd, int copy_fd,
                          const struct store_snapshot_meta *meta, struct store_snapshot_info *out,
                          const char *what)
{
    char tmp[NAME_SIZE], name[NAME_SIZE];
    int fd, rc, err;
    size_t hlen = header_len_for(meta->config_len);
    uint8_t *header = malloc(hlen);
    uint8_t *buf = malloc(COPY_CHUNK);
    if (header == NULL || buf == NULL) {
        set_err(sd, "%s: out of memory", what);
        rc = RFS_ENOMEM;
        goto err_after_alloc;
    }
    if ((rc = make_temp(sd, "snap", tmp, &fd, what)) != 0)
        goto err_after_alloc;

    uint32_t crc = 0;
    uint64_t len = 0;
    for (;;) {
        size_t got;
        if ((err = read_full(copy_fd, buf, COPY_CHUNK, len, &got)) != 0) {
            rc = convert_error(sd, err, what, "read the copy");
            goto err_after_temp;
        }
        if (got == 0)
            break;
        crc = rfs_crc32c(crc, buf, got);
        if ((err = write_full(fd, buf, got, hlen + len)) != 0) {
            rc = convert_error(sd, err, what, "write payload");
            goto err_after_temp;
        }
        len += got;
    }
    header_encode(header, meta, len, crc);
    if ((err = write_full(fd, header, hlen, 0)) != 0) {
        rc = convert_error(sd, err, what, "write header");
        goto err_after_temp;
    }
    if (fsync(fd) != 0) {
        rc = convert_error(sd, errno, what, "fsync");
        goto err_after_temp;
    }
    snap_name(name, meta->index, meta->term);
    if (renameat(sd->dirfd, tmp, sd->dirfd, name) != 0) {
        rc = convert_error(sd, errno, what, "rename into place");
        goto err_after_temp;
    }
    close(fd);
    free(buf);
    free(header);
    if (out != NULL)
        *out = (struct store_snapshot_info){meta->index, meta->term, hlen + len};
    return sync_dir(sd, sd->dirfd, what);

err_after_temp:
    close(fd);
    unlinkat(sd->dirfd, tmp, 0);
err_after_alloc:
    free(buf);
    free(header);
    return rc;
}

int store_snapshot_take(struct store_snapshot_dir *sd, struct MDB_env *env,
                        store_snapshot_describe_fn describe, void *ctx,
                        const struct store_snapshot_meta *given, struct store_snapshot_info *out)
{
    const char *what = "take snapshot";
    char copy_name[NAME_SIZE];
    int copy_fd, rc;
    struct store_snapshot_meta meta;
    void *config = NULL;
    if (describe == NULL && given == NULL) {
        set_err(sd, "%s: neither describe nor meta given", what);
        return RFS_EINVAL;
    }
    if ((rc = make_temp(sd, "copy", copy_name, &copy_fd, what)) != 0)
        return rc;
    /* Invariant 3: LMDB copies from its own read transaction; writers go on. */
    if ((rc = mdb_env_copyfd2(env, copy_fd, MDB_CP_COMPACT)) != 0) {
        rc = convert_error(sd, rc, what, "mdb_env_copyfd2");
        goto out;
    }
    if (describe != NULL) {
        if ((rc = describe_copy(sd, copy_name, describe, ctx, &meta, &config, what)) != 0)
            goto out;
    } else {
        meta = *given;
        if (meta.config_len > SNAP_MAX_CONFIG) {
            set_err(sd, "%s: configuration of %zu bytes exceeds %u", what, meta.config_len,
                    SNAP_MAX_CONFIG);
            rc = RFS_EINVAL;
            goto out;
        }
    }
    if ((rc = write_snapshot(sd, copy_fd, &meta, out, what)) != 0)
        goto out;
    rc = store_snapshot_retain(sd, sd->keep);
out:
    free(config);
    close(copy_fd);
    unlinkat(sd->dirfd, copy_name, 0);
    return rc;
}

/* --- streaming out -------------------------------------------------------------------------- */

int store_snapshot_open(struct store_snapshot_dir *sd, uint64_t index, uint64_t term,
                        struct store_snapshot_reader **out)
{
    char what[96];
    snprintf(what, sizeof what, "open snapshot %" PRIu64 "/%" PRIu64, index, term);
    *out = NULL;
    struct store_snapshot_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        set_err(sd, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    struct store_snapshot_header hdr;
    int rc = open_snapshot(sd, index, term, &r->fd, &hdr, &r->header, what);
    if (rc != 0) {
        free(r);
        return rc;
    }
    struct stat st;
    if (fstat(r->fd, &st) != 0) {
        rc = convert_error(sd, errno, what, "fstat");
        store_snapshot_reader_close(r);
        return rc;
    }
    r->sd = sd;
    r->size = (uint64_t)st.st_size;
    r->meta = hdr.meta;
    *out = r;
    return 0;
}

uint64_t store_snapshot_reader_size(const struct store_snapshot_reader *r)
{
    return r->size;
}

const struct store_snapshot_meta *store_snapshot_reader_meta(const struct store_snapshot_reader *r)
{
    return &r->meta;
}

int store_snapshot_reader_read(struct store_snapshot_reader *r, uint64_t offset, void *buf,
                               size_t len, size_t *n)
{
    *n = 0;
    if (offset >= r->size)
        return 0;
    if (len > r->size - offset)
        len = (size_t)(r->size - offset);
    int err = read_full(r->fd, buf, len, offset, n);
    if (err != 0)
        return convert_error(r->sd, err, "read snapshot chunk", "pread");
    return 0;
}

void store_snapshot_reader_close(struct store_snapshot_reader *r)
{
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->header);
    free(r);
}

/* --- receiving ------------------------------------------------------------------------------ */

int store_snapshot_receive_begin(struct store_snapshot_dir *sd, uint64_t index, uint64_t term,
                                 struct store_snapshot_receiver **out)
{
    char what[96];
    snprintf(what, sizeof what, "receive snapshot %" PRIu64 "/%" PRIu64, index, term);
    *out = NULL;
    struct store_snapshot_receiver *r = calloc(1, sizeof *r);
    if (r == NULL) {
        set_err(sd, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    int rc = make_temp(sd, "recv", r->tmp_name, &r->fd, what);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->sd = sd;
    r->index = index;
    r->term = term;
    *out = r;
    return 0;
}

int store_snapshot_receive_write(struct store_snapshot_receiver *r, uint64_t offset,
                                 const void *buf, size_t len)
{
    if (offset != r->received) {
        set_err(r->sd,
                "receive snapshot %" PRIu64 "/%" PRIu64 ": chunk at offset %" PRIu64
                ", expected %" PRIu64,
                r->index, r->term, offset, r->received);
        return RFS_ERANGE;
    }
    int err = write_full(r->fd, buf, len, offset);
    if (err != 0)
        return convert_error(r->sd, err, "receive snapshot", "write chunk");
    r->received += len;
    return 0;
}

int store_snapshot_receive_finish(struct store_snapshot_receiver *r,
                                  struct store_snapshot_info *out)
{
    struct store_snapshot_dir *sd = r->sd;
    char what[96], name[NAME_SIZE];
    snprintf(what, sizeof what, "receive snapshot %" PRIu64 "/%" PRIu64, r->index, r->term);
    struct store_snapshot_header hdr;
    void *hbuf;
    int rc = read_header(sd, r->fd, &hdr, &hbuf, what);
    if (rc != 0)
        goto err;
    if (hdr.meta.index != r->index || hdr.meta.term != r->term) {
        set_err(sd, "%s: the header says index %" PRIu64 " term %" PRIu64, what, hdr.meta.index,
                hdr.meta.term);
        rc = RFS_EINVAL;
        free(hbuf);
        goto err;
    }
    rc = check_payload(sd, r->fd, &hdr, -1, what);
    free(hbuf);
    if (rc != 0)
        goto err;
    if (fsync(r->fd) != 0) {
        rc = convert_error(sd, errno, what, "fsync");
        goto err;
    }
    snap_name(name, r->index, r->term);
    if (renameat(sd->dirfd, r->tmp_name, sd->dirfd, name) != 0) {
        rc = convert_error(sd, errno, what, "rename into place");
        goto err;
    }
    if (out != NULL)
        *out = (struct store_snapshot_info){r->index, r->term, r->received};
    close(r->fd);
    free(r);
    if ((rc = sync_dir(sd, sd->dirfd, what)) != 0)
        return rc;
    return store_snapshot_retain(sd, sd->keep);

err:
    store_snapshot_receive_abort(r);
    return rc;
}

void store_snapshot_receive_abort(struct store_snapshot_receiver *r)
{
    if (r == NULL)
        return;
    close(r->fd);
    unlinkat(r->sd->dirfd, r->tmp_name, 0);
    free(r);
}

/* --- installing ----------------------------------------------------------------------------- */

/* Remove an environment directory: its files, then itself (one level; LMDB makes no
 * subdirectories). Best effort: leftovers only waste space. */
static void remove_env_dir(const char *path)
{
    DIR *d = opendir(path);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
                (void)unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
    }
    (void)rmdir(path);
}

/* Remove <base>.tmp-* siblings of dest that an interrupted extract left behind. */
static void remove_stale_extracts(const char *parent, const char *base)
{
    DIR *d = opendir(parent);
    if (d == NULL)
        return;
    size_t blen = strlen(base);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, base, blen) != 0 || strncmp(de->d_name + blen, ".tmp-", 5) != 0)
            continue;
        char *p;
        if (asprintf(&p, "%s/%s", parent, de->d_name) >= 0) {
            remove_env_dir(p);
            free(p);
        }
    }
    closedir(d);
}

int store_snapshot_extract(struct store_snapshot_dir *sd, uint64_t index, uint64_t term,
                           const char *dest)
{
    char what[96];
    snprintf(what, sizeof what, "extract snapshot %" PRIu64 "/%" PRIu64, index, term);
    int fd, rc, out_fd = -1, tmp_dirfd = -1, parent_fd = -1;
    struct store_snapshot_header hdr;
    void *hbuf;
    char *d1 = strdup(dest), *d2 = strdup(dest), *tmp = NULL, *data = NULL;
    if (d1 == NULL || d2 == NULL || asprintf(&tmp, "%s.tmp-XXXXXX", dest) < 0) {
        free(d1);
        free(d2);
        set_err(sd, "%s: out of memory", what);
        return RFS_ENOMEM;
    }
    const char *parent = dirname(d1), *base = basename(d2);
    if ((rc = open_snapshot(sd, index, term, &fd, &hdr, &hbuf, what)) != 0)
        goto out_paths;
    remove_stale_extracts(parent, base);
    if (mkdtemp(tmp) == NULL) {
        rc = convert_error(sd, errno, what, "create temporary directory");
        goto out_file;
    }
    if (asprintf(&data, "%s/data.mdb", tmp) < 0) {
        set_err(sd, "%s: out of memory", what);
        rc = RFS_ENOMEM;
        goto out_tmpdir;
    }
    if ((out_fd = open(data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        rc = convert_error(sd, errno, what, "create data.mdb");
        goto out_tmpdir;
    }
    /* Invariant 2: copy and verify in one pass; rename only a verified copy. */
    if ((rc = check_payload(sd, fd, &hdr, out_fd, what)) != 0)
        goto out_tmpdir;
    if (fsync(out_fd) != 0) {
        rc = convert_error(sd, errno, what, "fsync data.mdb");
        goto out_tmpdir;
    }
    if ((tmp_dirfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(tmp_dirfd) != 0) {
        rc = convert_error(sd, errno, what, "fsync temporary directory");
        goto out_tmpdir;
    }
    if ((parent_fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = convert_error(sd, errno, what, "open parent directory");
        goto out_tmpdir;
    }
    bool is_swapped = false;
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0) {
        if (errno != EEXIST) {
            rc = convert_error(sd, errno, what, "rename into place");
            goto out_tmpdir;
        }
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_EXCHANGE) != 0) {
            rc = convert_error(sd, errno, what, "swap with the existing environment");
            goto out_tmpdir;
        }
        is_swapped = true; /* tmp now names the old environment */
    }
    rc = sync_dir(sd, parent_fd, what);
    if (is_swapped)
        remove_env_dir(tmp);
    goto out_file;

out_tmpdir:
    if (out_fd >= 0)
        close(out_fd);
    out_fd = -1;
    remove_env_dir(tmp);
out_file:
    if (out_fd >= 0)
        close(out_fd);
    if (tmp_dirfd >= 0)
        close(tmp_dirfd);
    if (parent_fd >= 0)
        close(parent_fd);
    free(hbuf);
    close(fd);
out_paths:
    free(data);
    free(tmp);
    free(d1);
    free(d2);
    return rc;
}
