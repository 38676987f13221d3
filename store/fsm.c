/* Inode state machine: opening and creating the environment, the crash marker, closing, the
 * apply dispatch (batches, no-ops, configuration) and the applied index. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/error_map.h"
#include "store/fsm_internal.h"

int store__fsm_mdb_error(struct store_fsm *fsm, int rc, const char *fmt, ...)
{
    if (fsm == NULL)
        return store__error_code(rc);
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&fsm->err_lock);
    int code = store__verror(fsm->errmsg, sizeof fsm->errmsg, rc, fmt, ap);
    pthread_mutex_unlock(&fsm->err_lock);
    va_end(ap);
    return code;
}

void store__fsm_set_errmsg(struct store_fsm *fsm, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&fsm->err_lock);
    vsnprintf(fsm->errmsg, sizeof fsm->errmsg, fmt, ap);
    pthread_mutex_unlock(&fsm->err_lock);
    va_end(ap);
}

static void clear_errmsg(struct store_fsm *fsm)
{
    pthread_mutex_lock(&fsm->err_lock);
    fsm->errmsg[0] = '\0';
    pthread_mutex_unlock(&fsm->err_lock);
}

void store_fsm_errmsg(struct store_fsm *fsm, char *buf, size_t len)
{
    if (len == 0)
        return;
    pthread_mutex_lock(&fsm->err_lock);
    snprintf(buf, len, "%s", fsm->errmsg);
    pthread_mutex_unlock(&fsm->err_lock);
}

static int put_applied(struct fsm_txn *t, uint64_t index, uint64_t term)
{
    uint8_t buf[16];
    rfs_put_le64(buf, index);
    rfs_put_le64(buf + 8, term);
    return store__meta_put(t, META_APPLIED, buf, sizeof buf);
}

/* --- open and create ----------------------------------------------------------------------- */

static uint64_t space_limit_option(const struct store_fsm_options *o)
{
    return o->space_limit ? o->space_limit : STORE_FSM_DEFAULT_SPACE;
}

static int create_env(struct store_fsm *fsm, MDB_txn *txn, const struct store_fsm_options *o)
{
    struct fsm_txn t = {.fsm = fsm, .txn = txn};
    uint8_t buf[24];
    int r;

    rfs_put_le32(buf, FSM_FORMAT_VERSION);
    if ((r = store__meta_put(&t, META_FORMAT, buf, 4)) != 0)
        return r;
    rfs_put_le64(buf, o->max_file_size ? o->max_file_size : STORE_FSM_DEFAULT_FILE_MAX);
    rfs_put_le32(buf + 8, o->max_links ? o->max_links : STORE_FSM_DEFAULT_MAX_LINKS);
    rfs_put_le32(buf + 12, FSM_BLOCK_SIZE);
    rfs_put_le32(buf + 16, STORE_FSM_NAME_MAX);
    if ((r = store__meta_put(&t, META_LIMITS, buf, 20)) != 0)
        return r;
    rfs_put_le64(buf, STORE_FSM_ROOT_INO + 1);
    if ((r = store__meta_put(&t, META_NEXT_INO, buf, 8)) != 0)
        return r;
    if ((r = put_applied(&t, 0, 0)) != 0)
        return r;
    struct fsm_inode root = {
        .ino = STORE_FSM_ROOT_INO,
        .mode = S_IFDIR | 0755,
        .nlink = 2,
        .size = 2 * FSM_DIRENT_SIZE,
        .atime = o->root_time,
        .mtime = o->root_time,
        .ctime = o->root_time,
        .parent = STORE_FSM_ROOT_INO,
        .next_cookie = FSM_FIRST_COOKIE,
    };
    if ((r = store__inode_put(&t, &root)) != 0)
        return r;
    return store__space_init(&t, space_limit_option(o));
}

static int load_limits(struct store_fsm *fsm, MDB_txn *txn)
{
    MDB_val key = fsm_meta_key(META_LIMITS), val;
    int rc = mdb_get(txn, fsm->meta, &key, &val);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? RFS_ECORRUPT
                                  : store__fsm_mdb_error(fsm, rc, "get meta " META_LIMITS);
    const uint8_t *p = val.mv_data;
    if (val.mv_size < 20)
        return RFS_ECORRUPT;
    fsm->max_file_size = rfs_get_le64(p);
    fsm->max_links = rfs_get_le32(p + 8);
    fsm->block_size = rfs_get_le32(p + 12);
    if (fsm->block_size != FSM_BLOCK_SIZE)
        return RFS_EFORMAT;
    return 0;
}

static int open_tables(struct store_fsm *fsm, MDB_txn *txn)
{
    static const struct {
        const char *name;
        size_t off;
    } tables[] = {
        {"meta", offsetof(struct store_fsm, meta)},
        {"inodes", offsetof(struct store_fsm, inodes)},
        {"dirents", offsetof(struct store_fsm, dirents)},
        {"cookies", offsetof(struct store_fsm, cookies)},
        {"blocks", offsetof(struct store_fsm, blocks)},
        {"symlinks", offsetof(struct store_fsm, symlinks)},
        {"xattrs", offsetof(struct store_fsm, xattrs)},
        {"orphans", offsetof(struct store_fsm, orphans)},
        {"locks", offsetof(struct store_fsm, locks)},
        {"sessions", offsetof(struct store_fsm, sessions)},
    };
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        MDB_dbi *dbi = (MDB_dbi *)((char *)fsm + tables[i].off);
        int rc = mdb_dbi_open(txn, tables[i].name, MDB_CREATE, dbi);
        if (rc != 0)
            return store__fsm_mdb_error(fsm, rc, "open table %s", tables[i].name);
    }
    return 0;
}

/* --- unsynced apply: the crash marker (docs/disk-format.md, "Unsynced apply") -------------- */

#define MARKER             "unsynced"
#define MARKER_TMP         "unsynced.tmp"
#define MARKER_SYNC_FAILED "sync failed\n"

/* This boot's identity, as the kernel makes it up at every boot; false if unreadable. */
static bool boot_id(char *buf, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL && buf[0] != '\0' && buf[0] != '\n';
    fclose(f);
    return ok;
}

static int marker_error(struct store_fsm *fsm, const char *what)
{
    return store__fsm_mdb_error(fsm, errno, "%s/%s: %s", fsm->dir, MARKER, what);
}

static int sync_dir(struct store_fsm *fsm)
{
    int fd = open(fsm->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return marker_error(fsm, "open the directory");
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : marker_error(fsm, "sync the directory");
}

/* Make the marker say `content`, durably: write a new file, sync it, rename it over the
 * marker, sync the directory (which also makes earlier unlinks in it durable). */
static int marker_write(struct store_fsm *fsm, const char *content)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/%s", fsm->dir, MARKER_TMP);
    snprintf(path, sizeof path, "%s/%s", fsm->dir, MARKER);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return marker_error(fsm, "create");
    size_t len = strlen(content);
    bool ok = write(fd, content, len) == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok)
        return marker_error(fsm, "write");
    if (rename(tmp, path) != 0)
        return marker_error(fsm, "rename");
    return sync_dir(fsm);
}

/* 1 and the marker's content in buf, 0 if there is no marker, or RFS_EIO. */
static int marker_read(struct store_fsm *fsm, char *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fsm->dir, MARKER);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : marker_error(fsm, "open");
    ssize_t n = read(fd, buf, len - 1);
    close(fd);
    if (n < 0)
        return marker_error(fsm, "read");
    buf[n] = '\0';
    return 1;
}

/* Decide whether commits are synced and keep the crash marker. Unsynced commits survive the
 * death of the process (the page cache keeps them) but not a crash of the machine, which may
 * leave the environment torn: a marker of another boot, or of a failed sync, therefore
 * empties the environment, to be rebuilt from the snapshot and the log by the runtime. */
static int unsynced_begin(struct store_fsm *fsm)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char id[64], old[64];
    fsm->is_unsynced = false;
    if (!fsm->opts.unsynced_apply || fsm->opts.no_sync || !boot_id(id, sizeof id))
        return 0;
    int r = marker_read(fsm, old, sizeof old);
    if (r < 0)
        return r;
    if (r == 1 && strcmp(old, id) != 0) {
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", fsm->dir, files[i]);
            if (unlink(path) != 0 && errno != ENOENT)
                return marker_error(fsm, "empty the environment");
        }
        fsm->was_emptied = true;
    }
    if (r == 0 || strcmp(old, id) != 0)
        if ((r = marker_write(fsm, id)) != 0)
            return r;
    fsm->is_unsynced = true;
    return 0;
}

/* Sync an unsynced environment and remove its marker; a failed sync leaves a marker that
 * empties the environment at the next open, since the kernel may have dropped the pages. */
static void unsynced_end(struct store_fsm *fsm)
{
    if (!fsm->is_unsynced || fsm->env == NULL)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", fsm->dir, MARKER);
    if (mdb_env_sync(fsm->env, 1) != 0) {
        marker_write(fsm, MARKER_SYNC_FAILED);
        return;
    }
    if (unlink(path) == 0)
        sync_dir(fsm);
}

/* Open fsm->dir's environment into fsm (creating it if new), with fsm->opts. On failure the
 * environment is closed again. Used at open and after a snapshot restore swapped the files. */
int store__fsm_env_open(struct store_fsm *fsm)
{
    const struct store_fsm_options *o = &fsm->opts;
    const char *dir = fsm->dir;
    MDB_txn *txn;
    int rc, r;

    /* The recorded limit may differ from the option: the map is set again once it is read. */
    fsm->map_size = o->map_size ? o->map_size : store__space_map_size(space_limit_option(o));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return store__fsm_mdb_error(fsm, errno, "create %s", dir);
    if ((r = unsynced_begin(fsm)) != 0)
        return r;
    if ((rc = mdb_env_create(&fsm->env)) != 0)
        return store__fsm_mdb_error(fsm, rc, "create environment");
    mdb_env_set_maxdbs(fsm->env, 16);
    mdb_env_set_maxreaders(fsm->env, 256);
    if ((rc = mdb_env_set_mapsize(fsm->env, fsm->map_size)) != 0) {
        r = store__fsm_mdb_error(fsm, rc, "set map size");
        goto err_after_env;
    }
    rc = mdb_env_open(fsm->env, dir, MDB_NOTLS | (o->no_sync || fsm->is_unsynced ? MDB_NOSYNC : 0),
                      0600);
    if (rc != 0) {
        r = store__fsm_mdb_error(fsm, rc, "open environment %s", dir);
        goto err_after_env;
    }
    if ((rc = mdb_txn_begin(fsm->env, NULL, 0, &txn)) != 0) {
        r = store__fsm_mdb_error(fsm, rc, "begin transaction");
        goto err_after_env;
    }
    if ((r = open_tables(fsm, txn)) != 0)
        goto err_after_txn;
    uint64_t format;
    r = store__meta_get_u64(fsm, txn, META_FORMAT, &format, 0);
    if (r == RFS_ENOTFOUND) {
        /* meta_get_u64 reads 8 bytes; the format is 4, so look at it directly below. */
        r = create_env(fsm, txn, o);
        if (r != 0)
            goto err_after_txn;
    } else {
        MDB_val key = fsm_meta_key(META_FORMAT), val;
        rc = mdb_get(txn, fsm->meta, &key, &val);
        if (rc != 0 || val.mv_size != 4) {
            r = RFS_ECORRUPT;
            goto err_after_txn;
        }
        uint32_t version = rfs_get_le32(val.mv_data);
        if (version == 1 || version == 2) {
            /* Version 2 only added the locks and sessions tables, which open_tables has just
             * created empty for a version 1 store; version 3 adds the space count, made here
             * by walking the tree, and the limit, which is the option's. */
            struct fsm_txn t = {.fsm = fsm, .txn = txn};
            uint8_t buf[4];
            rfs_put_le32(buf, FSM_FORMAT_VERSION);
            if ((r = store__meta_put(&t, META_FORMAT, buf, 4)) != 0 ||
                (r = store__space_init(&t, space_limit_option(o))) != 0)
                goto err_after_txn;
        } else if (version != FSM_FORMAT_VERSION) {
            r = RFS_EFORMAT;
            store__fsm_set_errmsg(fsm, "%s: format version %u, expected %u", dir, (unsigned)version,
                                  FSM_FORMAT_VERSION);
            goto err_after_txn;
        }
    }
    if ((r = load_limits(fsm, txn)) != 0)
        goto err_after_txn;
    uint64_t limit;
    if ((r = store__space_get(fsm, txn, &limit, NULL)) != 0)
        goto err_after_txn;
    if ((rc = mdb_txn_commit(txn)) != 0) {
        r = store__fsm_mdb_error(fsm, rc, "commit creation of %s", dir);
        goto err_after_env;
    }
    if (o->map_size == 0 && store__space_map_size(limit) != fsm->map_size) {
        fsm->map_size = store__space_map_size(limit);
        if ((rc = mdb_env_set_mapsize(fsm->env, fsm->map_size)) != 0) {
            r = store__fsm_mdb_error(fsm, rc, "set map size");
            goto err_after_env;
        }
    }
    fsm->is_failed = false;
    clear_errmsg(fsm);
    return 0;

err_after_txn:
    mdb_txn_abort(txn);
err_after_env:
    mdb_env_close(fsm->env);
    fsm->env = NULL;
    return r;
}

int store_fsm_open(const char *dir, const struct store_fsm_options *opts, struct store_fsm **out,
                   char *err, size_t errlen)
{
    static const struct store_fsm_options defaults;
    *out = NULL;
    struct store_fsm *fsm = calloc(1, sizeof *fsm);
    if (fsm == NULL || (fsm->dir = strdup(dir)) == NULL) {
        free(fsm);
        if (err != NULL)
            snprintf(err, errlen, "open %s: out of memory", dir);
        return RFS_ENOMEM;
    }
    fsm->opts = opts ? *opts : defaults;
    pthread_rwlock_init(&fsm->lock, NULL);
    pthread_mutex_init(&fsm->err_lock, NULL);
    int r = store__fsm_env_open(fsm);
    if (r != 0) {
        if (fsm->errmsg[0] == '\0') /* a check of our own that found no foreign error */
            store__fsm_set_errmsg(fsm, "open %s: %s", dir, rfs_strerror(r));
        if (err != NULL)
            store_fsm_errmsg(fsm, err, errlen);
        pthread_mutex_destroy(&fsm->err_lock);
        pthread_rwlock_destroy(&fsm->lock);
        free(fsm->dir);
        free(fsm);
        return r;
    }
    *out = fsm;
    return 0;
}

void store_fsm_close(struct store_fsm *fsm)
{
    if (fsm == NULL)
        return;
    unsynced_end(fsm);
    mdb_env_close(fsm->env);
    pthread_mutex_destroy(&fsm->err_lock);
    pthread_rwlock_destroy(&fsm->lock);
    free(fsm->wakeups);
    free(fsm->dir);
    free(fsm);
}

bool store_fsm_was_emptied(const struct store_fsm *fsm)
{
    return fsm->was_emptied;
}

/* --- apply: batches, no-ops, configuration ------------------------------------------------- */

int store__wakeup_add(struct fsm_txn *t, const struct store_fsm_wakeup *w)
{
    struct store_fsm *fsm = t->fsm;
    if (fsm->n_wakeups == fsm->wakeups_cap) {
        size_t cap = fsm->wakeups_cap ? 2 * fsm->wakeups_cap : 16;
        struct store_fsm_wakeup *p = realloc(fsm->wakeups, cap * sizeof *p);
        if (p == NULL) {
            store__fsm_set_errmsg(fsm, "record %zu lock wakeups: out of memory", cap);
            return RFS_ENOMEM;
        }
        fsm->wakeups = p;
        fsm->wakeups_cap = cap;
    }
    fsm->wakeups[fsm->n_wakeups++] = *w;
    return 0;
}

static bool is_lock_type(unsigned type)
{
    return type >= STORE_CMD_SESSION_OPEN && type <= STORE_CMD_SESSION_RENEW;
}

static int apply_one(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    int r;
    size_t mark = t->fsm->n_wakeups;
    memset(res, 0, sizeof *res);
    t->now = (struct store_fsm_time){c->time_sec, c->time_nsec};
    t->index = c->index;
    switch (c->type) {
    case STORE_CMD_WRITE: r = store__cmd_write(t, c, res); break;
    case STORE_CMD_REPLACE: r = store__cmd_replace(t, c, res); break;
    case STORE_CMD_FALLOCATE: r = store__cmd_fallocate(t, c, res); break;
    case STORE_CMD_SETATTR: r = store__cmd_setattr(t, c, res); break;
    case STORE_CMD_SETXATTR: r = store__cmd_setxattr(t, c, res); break;
    case STORE_CMD_REMOVEXATTR: r = store__cmd_removexattr(t, c, res); break;
    case STORE_CMD_SESSION_OPEN:
    case STORE_CMD_SESSION_RENEW:
    case STORE_CMD_SESSION_END: r = store__cmd_session(t, c, res); break;
    case STORE_CMD_LOCK:
    case STORE_CMD_LOCK_CANCEL:
    case STORE_CMD_LOCK_RELEASE: r = store__cmd_lock(t, c, res); break;
    default: r = store__cmd_namespace(t, c, res); break;
    }
    if (fsm_is_store_error(r))
        return r;
    if (r != 0) {
        memset(res, 0, sizeof *res);
        res->err = r;
        t->fsm->n_wakeups = mark; /* an errno answer changed nothing, so it woke nobody */
    }
    res->n_wakeups = t->fsm->n_wakeups - mark;
    return 0;
}

/* Point each result at its wakeups, once the batch is done and the buffer stops moving. */
static void link_wakeups(struct store_fsm *fsm, struct store_fsm_result *results, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        results[i].wakeups = results[i].n_wakeups ? fsm->wakeups + at : NULL;
        at += results[i].n_wakeups;
    }
}

/* The commands' own indexes: see store_fsm_apply_batch. */
static int check_cmd_indexes(struct store_fsm *fsm, uint64_t applied, uint64_t index,
                             const struct store_cmd *cmds, size_t n)
{
    uint64_t prev = applied;
    for (size_t i = 0; i < n; i++) {
        uint64_t at = cmds[i].index;
        if (at == 0 && is_lock_type(cmds[i].type)) {
            store__fsm_set_errmsg(fsm, "apply %s at index %llu: no entry index",
                                  store_cmd_type_name(cmds[i].type), (unsigned long long)index);
            return RFS_EINVAL;
        }
        if (at == 0)
            continue;
        if (at <= prev || at > index) {
            store__fsm_set_errmsg(fsm, "apply batch up to %llu: command index %llu after %llu",
                                  (unsigned long long)index, (unsigned long long)at,
                                  (unsigned long long)prev);
            return RFS_ERANGE;
        }
        prev = at;
    }
    return 0;
}

static int check_index(struct store_fsm *fsm, MDB_txn *txn, uint64_t index, uint64_t *out)
{
    uint64_t applied;
    int r = store__meta_get_u64(fsm, txn, META_APPLIED, &applied, 0);
    if (r != 0)
        return r == RFS_ENOTFOUND ? RFS_ECORRUPT : r;
    if (index <= applied) {
        store__fsm_set_errmsg(fsm, "apply index %llu: already applied %llu",
                              (unsigned long long)index, (unsigned long long)applied);
        return RFS_ERANGE;
    }
    if (out != NULL)
        *out = applied;
    return 0;
}

static int commit(struct store_fsm *fsm, MDB_txn *txn, uint64_t index)
{
    int rc = mdb_txn_commit(txn);
    if (rc != 0) {
        fsm->is_failed = true; /* pages may be half written: never retry (SQLite's pager) */
        return store__fsm_mdb_error(fsm, rc, "commit index %llu", (unsigned long long)index);
    }
    return 0;
}

int store_fsm_apply_batch(struct store_fsm *fsm, uint64_t index, uint64_t term,
                          const struct store_cmd *cmds, size_t n, struct store_fsm_result *results)
{
    MDB_txn *txn;
    int rc, r;
    if (fsm->is_failed)
        return RFS_ESTICKY;
    clear_errmsg(fsm);
    if ((rc = mdb_txn_begin(fsm->env, NULL, 0, &txn)) != 0)
        return store__fsm_mdb_error(fsm, rc, "begin transaction");
    struct fsm_txn t = {.fsm = fsm, .txn = txn};
    uint64_t applied;
    if ((r = check_index(fsm, txn, index, &applied)) != 0)
        goto err_after_txn;
    if ((r = check_cmd_indexes(fsm, applied, index, cmds, n)) != 0)
        goto err_after_txn;
    if ((r = put_applied(&t, index, term)) != 0)
        goto err_after_txn;
    fsm->n_wakeups = 0;
    for (size_t i = 0; i < n; i++) {
        if ((r = apply_one(&t, &cmds[i], &results[i])) != 0)
            goto err_after_txn;
    }
    if ((r = commit(fsm, txn, index)) == 0)
        link_wakeups(fsm, results, n);
    return r;

err_after_txn:
    mdb_txn_abort(txn);
    return r;
}

int store_fsm_apply_index(struct store_fsm *fsm, uint64_t index, uint64_t term)
{
    return store_fsm_apply_batch(fsm, index, term, NULL, 0, NULL);
}

int store_fsm_apply_config(struct store_fsm *fsm, uint64_t index, uint64_t term, const void *blob,
                           size_t len)
{
    MDB_txn *txn;
    int rc, r;
    if (fsm->is_failed)
        return RFS_ESTICKY;
    if ((rc = mdb_txn_begin(fsm->env, NULL, 0, &txn)) != 0)
        return store__fsm_mdb_error(fsm, rc, "begin transaction");
    struct fsm_txn t = {.fsm = fsm, .txn = txn};
    if ((r = check_index(fsm, txn, index, NULL)) != 0)
        goto err_after_txn;
    if ((r = put_applied(&t, index, term)) != 0)
        goto err_after_txn;
    MDB_val key = fsm_meta_key(META_CONFIG), val = {8 + len, NULL};
    if ((rc = mdb_put(txn, fsm->meta, &key, &val, MDB_RESERVE)) != 0) {
        r = store__fsm_mdb_error(fsm, rc, "put configuration of index %llu",
                                 (unsigned long long)index);
        goto err_after_txn;
    }
    rfs_put_le64(val.mv_data, index);
    if (len > 0)
        memcpy((uint8_t *)val.mv_data + 8, blob, len);
    return commit(fsm, txn, index);

err_after_txn:
    mdb_txn_abort(txn);
    return r;
}

/* --- reads --------------------------------------------------------------------------------- */

/* Readers share fsm->lock; store_fsm_restore takes it exclusively while it swaps the
 * environment, so no read ever sees a closed one. */
int store__fsm_read_begin(struct store_fsm *fsm, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&fsm->lock);
    int rc = mdb_txn_begin(fsm->env, NULL, MDB_RDONLY, txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&fsm->lock);
        return store__fsm_mdb_error(NULL, rc, "begin read transaction");
    }
    return 0;
}

void store__fsm_read_end(struct store_fsm *fsm, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&fsm->lock);
}

int store_fsm_applied(struct store_fsm *fsm, uint64_t *index, uint64_t *term)
{
    MDB_txn *txn;
    uint64_t i = 0, tm = 0;
    int r = store__fsm_read_begin(fsm, &txn);
    if (r != 0)
        return r;
    r = store__meta_get_u64(fsm, txn, META_APPLIED, &i, 0);
    if (r == 0)
        r = store__meta_get_u64(fsm, txn, META_APPLIED, &tm, 8);
    store__fsm_read_end(fsm, txn);
    if (r != 0)
        return r == RFS_ENOTFOUND ? RFS_ECORRUPT : r;
    if (index)
        *index = i;
    if (term)
        *term = tm;
    return 0;
}
