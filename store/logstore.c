/* Raft log and stable store in one LMDB environment: checksummed entries under integer keys,
 * single-transaction batch appends and truncations, map growth and sticky commit failures.
 *
 * Design notes (numbered invariants the code relies on):
 *
 * 1. Each mutating call is exactly one LMDB write transaction; LMDB commits are atomic and
 *    durable (data fdatasync, then the meta page through an O_DSYNC descriptor), so after a
 *    crash the log is the state of some returned or in-flight call, never a mix.
 * 2. The log sub-db holds a contiguous range of indexes [first, last]. Appends check it:
 *    entries start at last + 1, or in an empty log above the highest prefix ever dropped
 *    (kept in the meta sub-db), so a compacted index can never come back.
 * 3. Every value carries a CRC32C that is checked on every read before a byte of it reaches
 *    a caller; a mismatch is RFS_ECORRUPT with the index in the message.
 * 4. A commit that fails for any reason other than a full map may have left pages in an
 *    unknown state (a failed fsync loses the kernel's record of which pages are dirty), so
 *    the store turns sticky: all later writes fail until it is reopened. A full map is
 *    detected before anything is written, so it is not sticky.
 * 5. The map is only resized between write transactions and while no read transaction is
 *    open in this process (an LMDB requirement): readers register in `readers` for the life
 *    of their transaction and the resizer waits (bounded) until the count is zero. */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/crc32c.h"
#include "lib/error.h"
#include "lib/le.h"
#include "store/error_map.h"
#include "store/logstore.h"

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "MDB_INTEGERKEY keys are size_t: 64-bit only");

#define LOG_FORMAT_VERSION   STORE_LOG_FORMAT_VERSION
#define LOG_MAGIC            "RFSLOGv\0" /* 8 bytes, see docs/disk-format.md */
#define ENTRY_HEADER         16          /* crc32c(4) type(1) reserved(3) term(8) */
#define MAX_PAYLOAD          (1u << 30)
#define DEFAULT_MAP_SIZE     (64ull << 20)
#define DEFAULT_HEADROOM     (1ull << 20)
#define DEFAULT_GROW_WAIT_MS 2000u
#define ERRMSG_SIZE          512

/* Writes that may use the emergency headroom beyond map_size_max. */
enum write_kind { WRITE_GROWS_LOG, WRITE_MAINTENANCE };

struct store_log {
    MDB_env *env;
    MDB_dbi dbi_meta;
    MDB_dbi dbi_stable;
    MDB_dbi dbi_log;
    char *path;

    /* Writer thread only. */
    uint64_t map_size; /* current LMDB map size */
    uint64_t map_max;
    uint64_t headroom;
    unsigned grow_wait_ms;

    /* Sticky state: 0, or set once by the writer after a failed commit (invariant 4). */
    atomic_int sticky;

    /* Read transactions versus map resizing (invariant 5). */
    pthread_mutex_t rd_lock;
    pthread_cond_t rd_cond;
    unsigned readers; /* protected by rd_lock */
    bool is_resizing; /* protected by rd_lock */

    pthread_mutex_t err_lock;
    char err[ERRMSG_SIZE];        /* protected by err_lock */
    char sticky_err[ERRMSG_SIZE]; /* protected by err_lock; the failure that made us sticky */
};

struct store_log_iter {
    struct store_log *log;
    MDB_txn *txn;
    MDB_cursor *cur;
    uint64_t lo;
    uint64_t hi;
    uint64_t expect; /* next index we should see (0 before the first) */
    bool is_done;
};

/* --- little helpers ------------------------------------------------------------------------- */

static bool is_rfs_code(int rc)
{
    return rc > RFS_ERROR_BASE && rc < RFS_ERROR_END;
}

__attribute__((format(printf, 2, 3))) static void set_err(struct store_log *log, const char *fmt,
                                                          ...)
{
    va_list ap;
    pthread_mutex_lock(&log->err_lock);
    va_start(ap, fmt);
    vsnprintf(log->err, sizeof log->err, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&log->err_lock);
}

/* Convert an LMDB or errno code once (store/error_map.h), with context; returns an RFS code. */
static int from_mdb(struct store_log *log, int rc, const char *what)
{
    pthread_mutex_lock(&log->err_lock);
    int code = store__error(log->err, sizeof log->err, rc, "%s", what);
    pthread_mutex_unlock(&log->err_lock);
    return code;
}

static MDB_val key_of(uint64_t *index)
{
    return (MDB_val){.mv_size = sizeof *index, .mv_data = index};
}

static uint64_t index_of(const MDB_val *k)
{
    uint64_t v;
    memcpy(&v, k->mv_data, sizeof v);
    return v;
}

/* --- read transactions (invariant 5) -------------------------------------------------------- */

static int read_begin(struct store_log *log, MDB_txn **txn, const char *what)
{
    pthread_mutex_lock(&log->rd_lock);
    while (log->is_resizing)
        pthread_cond_wait(&log->rd_cond, &log->rd_lock);
    log->readers++;
    pthread_mutex_unlock(&log->rd_lock);

    int rc = mdb_txn_begin(log->env, NULL, MDB_RDONLY, txn);
    if (rc != 0) {
        pthread_mutex_lock(&log->rd_lock);
        if (--log->readers == 0)
            pthread_cond_broadcast(&log->rd_cond);
        pthread_mutex_unlock(&log->rd_lock);
        return from_mdb(log, rc, what);
    }
    return 0;
}

static void read_end(struct store_log *log, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_mutex_lock(&log->rd_lock);
    if (--log->readers == 0)
        pthread_cond_broadcast(&log->rd_cond);
    pthread_mutex_unlock(&log->rd_lock);
}

/* Set the map size to `want` once no read transaction is open; waits grow_wait_ms at most.
 * Writer thread only, with no write transaction open. Returns 0 or an RFS code. */
static int resize_map(struct store_log *log, uint64_t want, const char *what)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += log->grow_wait_ms / 1000;
    deadline.tv_nsec += (long)(log->grow_wait_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }

    pthread_mutex_lock(&log->rd_lock);
    log->is_resizing = true; /* new readers wait: the resizer is not starved */
    int wait_rc = 0;
    while (log->readers > 0 && wait_rc == 0)
        wait_rc = pthread_cond_timedwait(&log->rd_cond, &log->rd_lock, &deadline);
    int rc = 0;
    if (log->readers > 0) {
        set_err(log,
                "%s: cannot resize the map to %llu bytes: %u read transaction(s) still open "
                "after %u ms",
                what, (unsigned long long)want, log->readers, log->grow_wait_ms);
        rc = RFS_ENOSPACE;
    } else {
        int mrc = mdb_env_set_mapsize(log->env, (size_t)want);
        MDB_envinfo info;
        if (mrc == 0 && mdb_env_info(log->env, &info) == 0)
            log->map_size = info.me_mapsize;
        else if (mrc != 0)
            rc = from_mdb(log, mrc, what);
    }
    log->is_resizing = false;
    pthread_cond_broadcast(&log->rd_cond);
    pthread_mutex_unlock(&log->rd_lock);
    return rc;
}

/* --- write transactions --------------------------------------------------------------------- */

/* Body of a write transaction: returns 0, an LMDB/errno code (converted by run_write, which
 * knows how to grow the map), or an RFS code it has already explained with set_err. */
typedef int (*write_body)(struct store_log *log, MDB_txn *txn, void *arg, const char *what);

static int refuse_if_sticky(struct store_log *log, const char *what)
{
    if (atomic_load(&log->sticky) == 0)
        return 0;
    char first[ERRMSG_SIZE];
    pthread_mutex_lock(&log->err_lock);
    memcpy(first, log->sticky_err, sizeof first);
    pthread_mutex_unlock(&log->err_lock);
    set_err(log,
            "%s: refused, the store is in an error state since an earlier failure (%s); "
            "restart to recover",
            what, first);
    return RFS_ESTICKY;
}

static void make_sticky(struct store_log *log)
{
    pthread_mutex_lock(&log->err_lock);
    memcpy(log->sticky_err, log->err, sizeof log->err);
    pthread_mutex_unlock(&log->err_lock);
    atomic_store(&log->sticky, 1);
}

/* Run body in one write transaction and commit it durably; grow the map and run it again
 * from scratch when it does not fit (nothing is written by an aborted transaction). */
static int run_write(struct store_log *log, enum write_kind kind, write_body body, void *arg,
                     const char *what)
{
    int rc = refuse_if_sticky(log, what);
    if (rc != 0)
        return rc;

    /* Emergency headroom is for maintenance only: give it back before growing the log. */
    if (kind == WRITE_GROWS_LOG && log->map_size > log->map_max)
        (void)resize_map(log, log->map_max, what); /* best effort; LMDB keeps used pages */

    uint64_t limit = log->map_max + (kind == WRITE_MAINTENANCE ? log->headroom : 0);
    for (;;) {
        MDB_txn *txn;
        rc = mdb_txn_begin(log->env, NULL, 0, &txn);
        if (rc != 0) {
            rc = from_mdb(log, rc, what);
            if (rc == RFS_EIO)
                make_sticky(log); /* MDB_PANIC and friends: LMDB itself gave up */
            return rc;
        }
        bool is_commit = false;
        rc = body(log, txn, arg, what);
        if (rc == 0) {
            is_commit = true;
            rc = mdb_txn_commit(txn); /* frees txn, success or not */
        } else {
            mdb_txn_abort(txn);
        }
        if (rc == 0)
            return 0;
        if (is_rfs_code(rc))
            return rc;
        if (rc == MDB_MAP_FULL) {
            /* Detected while allocating pages, before anything reached the file. */
            if (log->map_size < limit) {
                uint64_t want = log->map_size * 2;
                if (want > limit)
                    want = limit;
                int grc = resize_map(log, want, what);
                if (grc != 0)
                    return grc;
                continue;
            }
            set_err(log, "%s: MDB_MAP_FULL: the map is full at %llu bytes (maximum %llu%s)", what,
                    (unsigned long long)log->map_size, (unsigned long long)log->map_max,
                    kind == WRITE_MAINTENANCE ? " plus headroom" : "");
            return RFS_ENOSPACE;
        }
        if (is_commit) {
            char where[300];
            snprintf(where, sizeof where, "%s: commit", what);
            rc = from_mdb(log, rc, where);
            make_sticky(log);
            return rc == RFS_ENOSPACE ? RFS_ENOSPACE : RFS_EIO;
        }
        return from_mdb(log, rc, what);
    }
}

/* --- small CRC-protected records (meta and stable sub-dbs) ---------------------------------- */

/* Value: n little-endian u64 fields, then CRC32C over the key bytes and the fields. */
#define RECORD_MAX 128 /* largest record body: 4 u64 fields, or a cluster ID */

/* A record: body bytes (len <= RECORD_MAX), then CRC32C(key bytes || body). */
static int record_put_bytes(MDB_txn *txn, MDB_dbi dbi, const char *name, const uint8_t *body,
                            size_t len)
{
    uint8_t buf[RECORD_MAX + 4];
    memcpy(buf, body, len);
    uint32_t crc = rfs_crc32c(rfs_crc32c(0, name, strlen(name)), buf, len);
    rfs_put_le32(buf + len, crc);
    MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val v = {.mv_size = len + 4, .mv_data = buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int record_put(MDB_txn *txn, MDB_dbi dbi, const char *name, const uint64_t *fields, int n)
{
    uint8_t buf[8 * 4];
    for (int i = 0; i < n; i++)
        rfs_put_le64(buf + 8 * i, fields[i]);
    return record_put_bytes(txn, dbi, name, buf, (size_t)(8 * n));
}

/* The body of record name into body (cap bytes), its length in *len; want, if not 0, is the
 * only length accepted. Returns 0, RFS_ENOTFOUND, RFS_ECORRUPT or RFS_EIO (explained). */
static int record_get_bytes(struct store_log *log, MDB_txn *txn, MDB_dbi dbi, const char *name,
                            uint8_t *body, size_t cap, size_t want, size_t *len, const char *what)
{
    MDB_val k = {.mv_size = strlen(name), .mv_data = (void *)name};
    MDB_val v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return RFS_ENOTFOUND;
    if (rc != 0)
        return from_mdb(log, rc, what);
    const uint8_t *p = v.mv_data;
    if (v.mv_size < 4 || v.mv_size - 4 > cap || (want != 0 && v.mv_size != want + 4)) {
        set_err(log, "%s: record '%s' has %zu bytes, expected %zu", what, name, v.mv_size,
                want != 0 ? want + 4 : cap + 4);
        return RFS_ECORRUPT;
    }
    size_t n = v.mv_size - 4;
    uint32_t crc = rfs_crc32c(rfs_crc32c(0, name, strlen(name)), p, n);
    if (crc != rfs_get_le32(p + n)) {
        set_err(log, "%s: record '%s' failed its checksum (stored %08x, computed %08x)", what, name,
                rfs_get_le32(p + n), crc);
        return RFS_ECORRUPT;
    }
    memcpy(body, p, n);
    *len = n;
    return 0;
}

/* Returns 0, RFS_ENOTFOUND, RFS_ECORRUPT or RFS_EIO (explained). */
static int record_get(struct store_log *log, MDB_txn *txn, MDB_dbi dbi, const char *name,
                      uint64_t *fields, int n, const char *what)
{
    uint8_t buf[8 * 4];
    size_t len;
    int rc = record_get_bytes(log, txn, dbi, name, buf, sizeof buf, (size_t)(8 * n), &len, what);
    if (rc != 0)
        return rc;
    for (int i = 0; i < n; i++)
        fields[i] = rfs_get_le64(buf + 8 * i);
    return 0;
}

/* --- entries -------------------------------------------------------------------------------- */

static uint32_t entry_crc(uint64_t index, const uint8_t *after_crc, size_t len)
{
    uint8_t ib[8];
    rfs_put_le64(ib, index);
    return rfs_crc32c(rfs_crc32c(0, ib, sizeof ib), after_crc, len);
}

static void entry_encode(uint8_t *dst, const struct store_log_entry *e)
{
    dst[4] = e->type;
    dst[5] = dst[6] = dst[7] = 0;
    rfs_put_le64(dst + 8, e->term);
    if (e->len > 0)
        memcpy(dst + ENTRY_HEADER, e->payload, e->len);
    rfs_put_le32(dst, entry_crc(e->index, dst + 4, ENTRY_HEADER - 4 + e->len));
}

/* Check and decode a stored value; out->payload borrows v's memory. */
static int entry_decode(struct store_log *log, uint64_t index, const MDB_val *v,
                        struct store_log_entry *out, const char *what)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < ENTRY_HEADER) {
        set_err(log, "%s: entry %llu is corrupt: value of %zu bytes is shorter than its header",
                what, (unsigned long long)index, v->mv_size);
        return RFS_ECORRUPT;
    }
    uint32_t crc = entry_crc(index, p + 4, v->mv_size - 4);
    if (crc != rfs_get_le32(p)) {
        set_err(log, "%s: entry %llu is corrupt: checksum mismatch (stored %08x, computed %08x)",
                what, (unsigned long long)index, rfs_get_le32(p), crc);
        return RFS_ECORRUPT;
    }
    if (p[5] | p[6] | p[7]) {
        set_err(log, "%s: entry %llu uses reserved header bytes (written by a newer version?)",
                what, (unsigned long long)index);
        return RFS_EFORMAT;
    }
    out->index = index;
    out->type = p[4];
    out->term = rfs_get_le64(p + 8);
    out->len = v->mv_size - ENTRY_HEADER;
    out->payload = out->len > 0 ? p + ENTRY_HEADER : NULL;
    return 0;
}

/* --- write bodies --------------------------------------------------------------------------- */

struct append_args {
    uint64_t from; /* truncate_append: delete >= from first; 0: no truncation */
    const struct store_log_entry *entries;
    size_t n;
};

/* Delete entries >= from. */
static int delete_suffix(struct store_log *log, MDB_txn *txn, uint64_t from)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, log->dbi_log, &cur);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && index_of(&k) >= from) {
        mdb_cursor_close(cur);
        return mdb_drop(txn, log->dbi_log, 0); /* everything goes: cheaper than one by one */
    }
    while (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc != 0 || index_of(&k) < from)
            break;
        rc = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int append_body(struct store_log *log, MDB_txn *txn, void *arg, const char *what)
{
    struct append_args *a = arg;
    int rc;
    if (a->from != 0 && (rc = delete_suffix(log, txn, a->from)) != 0)
        return rc;
    if (a->n == 0)
        return 0;

    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, log->dbi_log, &cur)) != 0)
        return rc;
    MDB_val k, v;
    uint64_t start = a->entries[0].index;
    uint64_t prev_term = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == MDB_NOTFOUND) {
        uint64_t dropped = 0;
        rc = record_get(log, txn, log->dbi_meta, "dropped", &dropped, 1, what);
        if (rc != 0 && rc != RFS_ENOTFOUND)
            goto out;
        rc = 0;
        if (start <= dropped) {
            set_err(log,
                    "%s: the log is empty and entries up to %llu were compacted; cannot "
                    "append at %llu",
                    what, (unsigned long long)dropped, (unsigned long long)start);
            rc = RFS_ERANGE;
            goto out;
        }
    } else if (rc == 0) {
        struct store_log_entry last;
        uint64_t last_index = index_of(&k);
        if ((rc = entry_decode(log, last_index, &v, &last, what)) != 0)
            goto out;
        if (start != last_index + 1) {
            set_err(log, "%s: not contiguous with the last index %llu", what,
                    (unsigned long long)last_index);
            rc = RFS_ERANGE;
            goto out;
        }
        prev_term = last.term;
    } else {
        goto out;
    }

    for (size_t i = 0; i < a->n; i++) {
        const struct store_log_entry *e = &a->entries[i];
        if (e->index != start + i) {
            set_err(log, "%s: entry %zu of the batch has index %llu, expected %llu", what, i,
                    (unsigned long long)e->index, (unsigned long long)(start + i));
            rc = RFS_ERANGE;
            goto out;
        }
        if (e->term < prev_term) {
            set_err(log, "%s: entry %llu has term %llu, lower than the term %llu before it", what,
                    (unsigned long long)e->index, (unsigned long long)e->term,
                    (unsigned long long)prev_term);
            rc = RFS_EINVAL;
            goto out;
        }
        if (e->len > MAX_PAYLOAD || (e->len > 0 && e->payload == NULL)) {
            set_err(log, "%s: entry %llu has an invalid payload (%zu bytes)", what,
                    (unsigned long long)e->index, e->len);
            rc = RFS_EINVAL;
            goto out;
        }
        prev_term = e->term;
        uint64_t index = e->index;
        k = key_of(&index);
        v = (MDB_val){.mv_size = ENTRY_HEADER + e->len, .mv_data = NULL};
        /* MDB_RESERVE: encode straight into the page instead of through a buffer. */
        if ((rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND | MDB_RESERVE)) != 0)
            goto out;
        entry_encode(v.mv_data, e);
    }
out:
    mdb_cursor_close(cur);
    return rc;
}

static void describe_batch(char *buf, size_t size, const char *verb, uint64_t from,
                           const struct store_log_entry *entries, size_t n)
{
    int off = 0;
    if (from != 0)
        off = snprintf(buf, size, "truncate from %llu then ", (unsigned long long)from);
    if (n == 0)
        snprintf(buf + off, size - (size_t)off, "append nothing");
    else
        snprintf(buf + off, size - (size_t)off, "%s %llu..%llu", verb,
                 (unsigned long long)entries[0].index, (unsigned long long)entries[n - 1].index);
}

int store_log_append(struct store_log *log, const struct store_log_entry *entries, size_t n)
{
    char what[128];
    describe_batch(what, sizeof what, "append", 0, entries, n);
    if (n == 0 || entries == NULL) {
        set_err(log, "append: empty batch");
        return RFS_EINVAL;
    }
    struct append_args a = {.from = 0, .entries = entries, .n = n};
    return run_write(log, WRITE_GROWS_LOG, append_body, &a, what);
}

int store_log_truncate_append(struct store_log *log, uint64_t from,
                              const struct store_log_entry *entries, size_t n)
{
    char what[160];
    describe_batch(what, sizeof what, "append", from, entries, n);
    if (from == 0 || (n > 0 && entries == NULL)) {
        set_err(log, "%s: invalid arguments", what);
        return RFS_EINVAL;
    }
    struct append_args a = {.from = from, .entries = entries, .n = n};
    return run_write(log, n > 0 ? WRITE_GROWS_LOG : WRITE_MAINTENANCE, append_body, &a, what);
}

static int drop_body(struct store_log *log, MDB_txn *txn, void *arg, const char *what)
{
    uint64_t through = *(uint64_t *)arg;
    uint64_t dropped = 0;
    int rc = record_get(log, txn, log->dbi_meta, "dropped", &dropped, 1, what);
    if (rc != 0 && rc != RFS_ENOTFOUND)
        return rc;
    if (through > dropped && (rc = record_put(txn, log->dbi_meta, "dropped", &through, 1)) != 0)
        return rc;

    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, log->dbi_log, &cur)) != 0)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && index_of(&k) <= through) {
        mdb_cursor_close(cur);
        return mdb_drop(txn, log->dbi_log, 0);
    }
    while (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc != 0 || index_of(&k) > through)
            break;
        rc = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int store_log_drop_prefix(struct store_log *log, uint64_t through)
{
    char what[64];
    snprintf(what, sizeof what, "drop prefix through %llu", (unsigned long long)through);
    return run_write(log, WRITE_MAINTENANCE, drop_body, &through, what);
}

struct batch_args {
    const struct store_log_batch *batch;
};

static int batch_body(struct store_log *log, MDB_txn *txn, void *arg, const char *what)
{
    const struct store_log_batch *b = ((struct batch_args *)arg)->batch;
    int rc;
    if (b->has_hard_state) {
        uint64_t term = b->term, vote = b->vote;
        if ((rc = record_put(txn, log->dbi_stable, "term", &term, 1)) != 0 ||
            (rc = record_put(txn, log->dbi_stable, "vote", &vote, 1)) != 0)
            return rc;
    }
    struct append_args a = {.from = b->truncate_from, .entries = b->entries, .n = b->n};
    return append_body(log, txn, &a, what);
}

int store_log_write(struct store_log *log, const struct store_log_batch *batch)
{
    char what[160];
    describe_batch(what, sizeof what, "append", batch->truncate_from, batch->entries, batch->n);
    if (batch->n > 0 && batch->entries == NULL) {
        set_err(log, "%s: invalid arguments", what);
        return RFS_EINVAL;
    }
    if (!batch->has_hard_state && batch->truncate_from == 0 && batch->n == 0)
        return 0;
    struct batch_args a = {.batch = batch};
    return run_write(log, batch->n > 0 ? WRITE_GROWS_LOG : WRITE_MAINTENANCE, batch_body, &a, what);
}

struct reset_args {
    uint64_t index;
    uint64_t term;
};

static int reset_body(struct store_log *log, MDB_txn *txn, void *arg, const char *what)
{
    struct reset_args *a = arg;
    int rc = delete_suffix(log, txn, 1);
    if (rc != 0)
        return rc;
    uint64_t through = a->index;
    if ((rc = drop_body(log, txn, &through, what)) != 0)
        return rc;
    uint64_t fields[2] = {a->index, a->term};
    return record_put(txn, log->dbi_stable, "snapshot", fields, 2);
}

int store_log_reset(struct store_log *log, uint64_t index, uint64_t term)
{
    char what[80];
    snprintf(what, sizeof what, "reset the log after snapshot %llu/%llu", (unsigned long long)index,
             (unsigned long long)term);
    struct reset_args a = {.index = index, .term = term};
    return run_write(log, WRITE_MAINTENANCE, reset_body, &a, what);
}

/* --- reads ---------------------------------------------------------------------------------- */

int store_log_bounds(struct store_log *log, uint64_t *first, uint64_t *last)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    *first = *last = 0;
    int rc = read_begin(log, &txn, "log bounds");
    if (rc != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, log->dbi_log, &cur)) != 0)
        goto err;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0) {
        *first = index_of(&k);
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0)
            *last = index_of(&k);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
err:
    read_end(log, txn);
    if (rc != 0) {
        *first = *last = 0;
        return from_mdb(log, rc, "log bounds");
    }
    return 0;
}

/* Look up one entry inside txn; out borrows the map. */
static int get_in_txn(struct store_log *log, MDB_txn *txn, uint64_t index,
                      struct store_log_entry *out, const char *what)
{
    MDB_val k = key_of(&index), v;
    int rc = mdb_get(txn, log->dbi_log, &k, &v);
    if (rc == MDB_NOTFOUND) {
        set_err(log, "%s: no entry at index %llu", what, (unsigned long long)index);
        return RFS_ENOTFOUND;
    }
    if (rc != 0)
        return from_mdb(log, rc, what);
    return entry_decode(log, index, &v, out, what);
}

int store_log_term_at(struct store_log *log, uint64_t index, uint64_t *term)
{
    char what[64];
    snprintf(what, sizeof what, "term at %llu", (unsigned long long)index);
    MDB_txn *txn;
    int rc = read_begin(log, &txn, what);
    if (rc != 0)
        return rc;
    struct store_log_entry e;
    rc = get_in_txn(log, txn, index, &e, what);
    if (rc == 0)
        *term = e.term;
    read_end(log, txn);
    return rc;
}

int store_log_get(struct store_log *log, uint64_t index, struct store_log_entry *out)
{
    char what[64];
    snprintf(what, sizeof what, "read entry %llu", (unsigned long long)index);
    memset(out, 0, sizeof *out);
    MDB_txn *txn;
    int rc = read_begin(log, &txn, what);
    if (rc != 0)
        return rc;
    struct store_log_entry e;
    if ((rc = get_in_txn(log, txn, index, &e, what)) != 0)
        goto out;
    void *copy = NULL;
    if (e.len > 0) {
        if ((copy = malloc(e.len)) == NULL) {
            set_err(log, "%s: out of memory for %zu bytes", what, e.len);
            rc = RFS_ENOMEM;
            goto out;
        }
        memcpy(copy, e.payload, e.len);
    }
    *out = e;
    out->payload = copy;
out:
    read_end(log, txn);
    return rc;
}

int store_log_iter_open(struct store_log *log, uint64_t lo, uint64_t hi,
                        struct store_log_iter **out)
{
    *out = NULL;
    if (lo == 0 || lo > hi) {
        set_err(log, "iterate %llu..%llu: invalid range", (unsigned long long)lo,
                (unsigned long long)hi);
        return RFS_EINVAL;
    }
    struct store_log_iter *it = calloc(1, sizeof *it);
    if (it == NULL) {
        set_err(log, "iterate: out of memory");
        return RFS_ENOMEM;
    }
    int rc = read_begin(log, &it->txn, "iterate");
    if (rc != 0)
        goto err_after_alloc;
    if ((rc = mdb_cursor_open(it->txn, log->dbi_log, &it->cur)) != 0) {
        rc = from_mdb(log, rc, "iterate: open cursor");
        goto err_after_txn;
    }
    it->log = log;
    it->lo = lo;
    it->hi = hi;
    *out = it;
    return 0;

err_after_txn:
    read_end(log, it->txn);
err_after_alloc:
    free(it);
    return rc;
}

int store_log_iter_next(struct store_log_iter *it, struct store_log_entry *out)
{
    if (it->is_done)
        return RFS_ENOTFOUND;
    MDB_val k, v;
    int rc;
    if (it->expect == 0) {
        uint64_t lo = it->lo;
        k = key_of(&lo);
        rc = mdb_cursor_get(it->cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(it->cur, &k, &v, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) {
        it->is_done = true;
        return RFS_ENOTFOUND;
    }
    if (rc != 0) {
        it->is_done = true;
        return from_mdb(it->log, rc, "iterate");
    }
    uint64_t index = index_of(&k);
    if (index > it->hi) {
        it->is_done = true;
        return RFS_ENOTFOUND;
    }
    if (it->expect != 0 && index != it->expect) {
        set_err(it->log, "iterate: the log has a gap: expected index %llu, found %llu",
                (unsigned long long)it->expect, (unsigned long long)index);
        it->is_done = true;
        return RFS_ECORRUPT;
    }
    rc = entry_decode(it->log, index, &v, out, "iterate");
    if (rc != 0) {
        it->is_done = true;
        return rc;
    }
    it->expect = index + 1;
    if (index == UINT64_MAX)
        it->is_done = true;
    return 0;
}

void store_log_iter_close(struct store_log_iter *it)
{
    if (it == NULL)
        return;
    mdb_cursor_close(it->cur);
    read_end(it->log, it->txn);
    free(it);
}

/* --- stable store --------------------------------------------------------------------------- */

/* One record of the stable sub-db: name and its nfields values. */
struct stable_args {
    const char *name;
    uint64_t values[2];
    int nfields;
};

static int stable_body(struct store_log *log, MDB_txn *txn, void *arg, const char *what)
{
    (void)what;
    struct stable_args *a = arg;
    return record_put(txn, log->dbi_stable, a->name, a->values, a->nfields);
}

static int stable_set(struct store_log *log, const char *name, uint64_t a, uint64_t b, int nfields)
{
    char what[64];
    snprintf(what, sizeof what, "set %s", name);
    struct stable_args args = {.name = name, .values = {a, b}, .nfields = nfields};
    return run_write(log, WRITE_MAINTENANCE, stable_body, &args, what);
}

int store_log_set_term(struct store_log *log, uint64_t term)
{
    return stable_set(log, "term", term, 0, 1);
}

int store_log_set_epoch(struct store_log *log, uint64_t epoch)
{
    return stable_set(log, "epoch", epoch, 0, 1);
}

struct cluster_id_args {
    const char *id;
};

static int cluster_id_body(struct store_log *log, MDB_txn *txn, void *arg, const char *what)
{
    (void)what;
    const char *id = ((struct cluster_id_args *)arg)->id;
    return record_put_bytes(txn, log->dbi_stable, "cluster", (const uint8_t *)id, strlen(id));
}

int store_log_set_cluster_id(struct store_log *log, const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len > STORE_LOG_CLUSTER_ID_MAX) {
        set_err(log, "set cluster ID: %zu bytes, want 1 to %d", len, STORE_LOG_CLUSTER_ID_MAX);
        return RFS_EINVAL;
    }
    struct cluster_id_args args = {.id = id};
    return run_write(log, WRITE_MAINTENANCE, cluster_id_body, &args, "set cluster ID");
}

int store_log_set_snapshot_meta(struct store_log *log, uint64_t index, uint64_t term)
{
    return stable_set(log, "snapshot", index, term, 2);
}

static int stable_get(struct store_log *log, const char *name, uint64_t *fields, int n)
{
    char what[64];
    snprintf(what, sizeof what, "read %s", name);
    MDB_txn *txn;
    int rc = read_begin(log, &txn, what);
    if (rc != 0)
        return rc;
    rc = record_get(log, txn, log->dbi_stable, name, fields, n, what);
    read_end(log, txn);
    return rc;
}

static int stable_get_u64(struct store_log *log, const char *name, uint64_t *value)
{
    int rc = stable_get(log, name, value, 1);
    if (rc == RFS_ENOTFOUND) {
        *value = 0;
        return 0;
    }
    return rc;
}

int store_log_get_term(struct store_log *log, uint64_t *term)
{
    return stable_get_u64(log, "term", term);
}

int store_log_get_vote(struct store_log *log, uint64_t *node_id)
{
    return stable_get_u64(log, "vote", node_id);
}

int store_log_get_epoch(struct store_log *log, uint64_t *epoch)
{
    return stable_get_u64(log, "epoch", epoch);
}

int store_log_get_cluster_id(struct store_log *log, char id[STORE_LOG_CLUSTER_ID_MAX + 1])
{
    MDB_txn *txn;
    size_t len;
    int rc = read_begin(log, &txn, "read cluster ID");
    if (rc != 0)
        return rc;
    rc = record_get_bytes(log, txn, log->dbi_stable, "cluster", (uint8_t *)id,
                          STORE_LOG_CLUSTER_ID_MAX, 0, &len, "read cluster ID");
    read_end(log, txn);
    if (rc == 0 && len == 0) {
        set_err(log, "read cluster ID: the record is empty");
        rc = RFS_ECORRUPT;
    }
    id[rc == 0 ? len : 0] = '\0';
    return rc;
}

int store_log_get_snapshot_meta(struct store_log *log, uint64_t *index, uint64_t *term)
{
    uint64_t f[2];
    int rc = stable_get(log, "snapshot", f, 2);
    if (rc == RFS_ENOTFOUND)
        set_err(log, "read snapshot meta: none recorded");
    if (rc != 0)
        return rc;
    *index = f[0];
    *term = f[1];
    return 0;
}

/* --- open and close ------------------------------------------------------------------------- */

/* Check the format record, or create the sub-dbs and the record in a new environment. */
static int open_dbs(struct store_log *log)
{
    MDB_txn *txn;
    MDB_dbi main_dbi;
    MDB_stat st;
    uint8_t fmt[16];
    MDB_val k = {.mv_size = 6, .mv_data = "format"}, v;
    int rc = mdb_txn_begin(log->env, NULL, 0, &txn);
    if (rc != 0)
        return from_mdb(log, rc, "open: begin transaction");
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
        (rc = mdb_stat(txn, main_dbi, &st)) != 0) {
        rc = from_mdb(log, rc, "open: main database");
        goto err;
    }
    rc = mdb_dbi_open(txn, "meta", 0, &log->dbi_meta);
    if (rc == MDB_NOTFOUND) {
        if (st.ms_entries != 0) {
            set_err(log, "open %s: not a raftfs log environment (it has other databases)",
                    log->path);
            rc = RFS_EFORMAT;
            goto err;
        }
        /* A new environment: write the format record. */
        if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &log->dbi_meta)) != 0)
            goto err_mdb;
        memcpy(fmt, LOG_MAGIC, 8);
        rfs_put_le32(fmt + 8, LOG_FORMAT_VERSION);
        rfs_put_le32(fmt + 12, rfs_crc32c(0, fmt, 12));
        v = (MDB_val){.mv_size = sizeof fmt, .mv_data = fmt};
        if ((rc = mdb_put(txn, log->dbi_meta, &k, &v, 0)) != 0)
            goto err_mdb;
    } else if (rc != 0) {
        goto err_mdb;
    } else {
        rc = mdb_get(txn, log->dbi_meta, &k, &v);
        if (rc == MDB_NOTFOUND) {
            set_err(log, "open %s: not a raftfs log environment (no format record)", log->path);
            rc = RFS_EFORMAT;
            goto err;
        }
        if (rc != 0)
            goto err_mdb;
        const uint8_t *p = v.mv_data;
        if (v.mv_size != 16 || memcmp(p, LOG_MAGIC, 8) != 0) {
            set_err(log, "open %s: not a raftfs log environment (bad format record)", log->path);
            rc = RFS_EFORMAT;
            goto err;
        }
        if (rfs_crc32c(0, p, 12) != rfs_get_le32(p + 12)) {
            set_err(log, "open %s: the format record failed its checksum", log->path);
            rc = RFS_ECORRUPT;
            goto err;
        }
        if (rfs_get_le32(p + 8) != LOG_FORMAT_VERSION) {
            set_err(log,
                    "open %s: log format version %u is not supported (this build reads version "
                    "%u); use the raftfs release that wrote it",
                    log->path, rfs_get_le32(p + 8), LOG_FORMAT_VERSION);
            rc = RFS_EFORMAT;
            goto err;
        }
    }
    if ((rc = mdb_dbi_open(txn, "stable", MDB_CREATE, &log->dbi_stable)) != 0 ||
        (rc = mdb_dbi_open(txn, "log", MDB_CREATE | MDB_INTEGERKEY, &log->dbi_log)) != 0)
        goto err_mdb;
    if ((rc = mdb_txn_commit(txn)) != 0)
        return from_mdb(log, rc, "open: commit");
    return 0;

err_mdb:
    rc = from_mdb(log, rc, "open: sub-databases");
err:
    mdb_txn_abort(txn);
    return rc;
}

int store_log_open(const char *path, const struct store_log_options *opts, struct store_log **out,
                   char *errbuf, size_t errlen)
{
    struct store_log_options o = {0};
    if (opts != NULL)
        o = *opts;
    if (o.map_size == 0)
        o.map_size = DEFAULT_MAP_SIZE;
    if (o.map_size_max < o.map_size)
        o.map_size_max = o.map_size;
    if (o.map_headroom == 0)
        o.map_headroom = DEFAULT_HEADROOM;
    if (o.grow_wait_ms == 0)
        o.grow_wait_ms = DEFAULT_GROW_WAIT_MS;

    *out = NULL;
    int rc;
    struct store_log *log = calloc(1, sizeof *log);
    if (log == NULL || (log->path = strdup(path)) == NULL) {
        free(log);
        if (errbuf != NULL)
            snprintf(errbuf, errlen, "open %s: out of memory", path);
        return RFS_ENOMEM;
    }
    pthread_mutex_init(&log->err_lock, NULL);
    pthread_mutex_init(&log->rd_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->rd_cond, &ca);
    pthread_condattr_destroy(&ca);
    log->map_max = o.map_size_max;
    log->headroom = o.map_headroom;
    log->grow_wait_ms = o.grow_wait_ms;

    char what[300];
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        int err = errno;
        snprintf(what, sizeof what, "open %s: mkdir", path);
        rc = from_mdb(log, err, what);
        goto err_after_alloc;
    }
    if ((rc = mdb_env_create(&log->env)) != 0) {
        rc = from_mdb(log, rc, "open: mdb_env_create");
        goto err_after_alloc;
    }
    if ((rc = mdb_env_set_maxdbs(log->env, 4)) != 0 ||
        (rc = mdb_env_set_mapsize(log->env, (size_t)o.map_size)) != 0) {
        rc = from_mdb(log, rc, "open: configure environment");
        goto err_after_env;
    }
    /* MDB_NOTLS: read transactions are not tied to a thread, so an iterator may be closed by
     * another thread and one thread may hold several. No MDB_WRITEMAP: write errors then
     * come back as return codes instead of SIGBUS. */
    if ((rc = mdb_env_open(log->env, path, MDB_NOTLS, 0600)) != 0) {
        snprintf(what, sizeof what, "open %s", path);
        rc = from_mdb(log, rc, what);
        goto err_after_env;
    }
    MDB_envinfo info;
    mdb_env_info(log->env, &info);
    log->map_size = info.me_mapsize;
    if (log->map_max < log->map_size)
        log->map_max = log->map_size; /* the data already needs more than configured */

    if ((rc = open_dbs(log)) != 0)
        goto err_after_env;
    *out = log;
    return 0;

err_after_env:
    mdb_env_close(log->env);
err_after_alloc:
    if (errbuf != NULL)
        store_log_errmsg(log, errbuf, errlen);
    pthread_cond_destroy(&log->rd_cond);
    pthread_mutex_destroy(&log->rd_lock);
    pthread_mutex_destroy(&log->err_lock);
    free(log->path);
    free(log);
    return rc;
}

void store_log_close(struct store_log *log)
{
    if (log == NULL)
        return;
    mdb_env_close(log->env);
    pthread_cond_destroy(&log->rd_cond);
    pthread_mutex_destroy(&log->rd_lock);
    pthread_mutex_destroy(&log->err_lock);
    free(log->path);
    free(log);
}

char *store_log_errmsg(struct store_log *log, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    pthread_mutex_lock(&log->err_lock);
    snprintf(buf, size, "%s", log->err);
    pthread_mutex_unlock(&log->err_lock);
    return buf;
}
