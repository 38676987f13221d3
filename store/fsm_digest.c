/* State digest: SHA-256 over a canonical walk of the logical contents of the state machine,
 * so two stores holding the same tree agree whatever their history or page layout.
 *
 * Stream (every field length-prefixed or fixed-size, so distinct trees give distinct streams):
 *   'M' next_ino u64, max_file_size u64, max_links u32, block_size u32, space limit u64
 *   per inode, ascending:
 *     'I' ino u64, inode record (104 bytes) with nblocks and next_cookie zeroed
 *     'E' name_len u16, name, child u64, type u8          per entry, by name bytes
 *     'B' block u64, len u32, bytes                       per block, trailing zeros cut,
 *                                                         all-zero blocks skipped
 *     'L' len u32, target                                 symlinks
 *     'X' name_len u16, name, len u32, value              per xattr, by name bytes
 *     'O' len u32, the orphan value                       orphans
 *     'K' len u32, the lock list value                    inodes with locks or waiters
 *   'S' session u64, session record (48 bytes)            per session, ascending
 * Left out on purpose: the applied index and term, the configuration, readdir cookies (they
 * record the order entries were made, not what the tree holds), nblocks (a block of written
 * zeros and a hole read the same) and so the space count, which follows the blocks stored.
 *
 * The hash is libcrypto's SHA-256 through EVP (DESIGN.md section 1: store may use libcrypto's
 * hashes). */
#include <openssl/evp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "store/fsm_internal.h"

struct walk {
    EVP_MD_CTX *sha;
    bool is_failed; /* an update failed: the digest is not to be trusted */
    MDB_txn *txn;
};

/* Feed len bytes to the hash. The walk's callbacks cannot return an error, so a failure is
 * remembered and reported once, at the end. */
static void hash(struct walk *w, const void *data, size_t len)
{
    if (EVP_DigestUpdate(w->sha, data, len) != 1)
        w->is_failed = true;
}

/* The low n bytes of v, little-endian: the first n bytes of its 64-bit encoding. */
static void add_le(struct walk *w, uint64_t v, int n)
{
    uint8_t b[8];
    rfs_put_le64(b, v);
    hash(w, b, (size_t)n);
}

static void add_tag(struct walk *w, char tag)
{
    hash(w, &tag, 1);
}

static void add_entry(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct walk *w = arg;
    const uint8_t *d = v->mv_data;
    add_tag(w, 'E');
    add_le(w, k->mv_size - 8, 2);
    hash(w, (const uint8_t *)k->mv_data + 8, k->mv_size - 8);
    add_le(w, v->mv_size >= 9 ? rfs_get_le64(d) : 0, 8);
    add_le(w, v->mv_size >= 9 ? d[8] : 0, 1);
}

static void add_block(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct walk *w = arg;
    const uint8_t *d = v->mv_data;
    size_t len = v->mv_size;
    while (len > 0 && d[len - 1] == 0)
        len--;
    if (len == 0)
        return;
    add_tag(w, 'B');
    add_le(w, fsm_get_be64((const uint8_t *)k->mv_data + 8), 8);
    add_le(w, len, 4);
    hash(w, d, len);
}

static void add_xattr(void *arg, const MDB_val *k, const MDB_val *v)
{
    struct walk *w = arg;
    add_tag(w, 'X');
    add_le(w, k->mv_size - 8, 2);
    hash(w, (const uint8_t *)k->mv_data + 8, k->mv_size - 8);
    add_le(w, v->mv_size, 4);
    hash(w, v->mv_data, v->mv_size);
}

static void add_value(struct walk *w, char tag, const MDB_val *v)
{
    add_tag(w, tag);
    add_le(w, v->mv_size, 4);
    hash(w, v->mv_data, v->mv_size);
}

static int add_inode(struct store_fsm *fsm, struct walk *w, const struct fsm_inode *node)
{
    uint8_t rec[FSM_INODE_RECORD], k[8];
    struct fsm_inode canon = *node;
    canon.nblocks = 0;
    canon.next_cookie = 0;
    store__inode_encode(&canon, rec);
    add_tag(w, 'I');
    add_le(w, node->ino, 8);
    hash(w, rec, sizeof rec);
    int r = 0;
    if (S_ISDIR(node->mode))
        r = store__for_prefix(NULL, w->txn, fsm->dirents, node->ino, add_entry, w);
    else if (S_ISREG(node->mode))
        r = store__for_prefix(NULL, w->txn, fsm->blocks, node->ino, add_block, w);
    if (r != 0)
        return r;
    fsm_put_be64(k, node->ino);
    MDB_val key = {8, k}, val;
    int rc;
    if (S_ISLNK(node->mode)) {
        if ((rc = mdb_get(w->txn, fsm->symlinks, &key, &val)) != 0)
            return rc == MDB_NOTFOUND ? RFS_ECORRUPT : store__fsm_mdb_error(NULL, rc, "digest");
        add_value(w, 'L', &val);
    }
    if ((r = store__for_prefix(NULL, w->txn, fsm->xattrs, node->ino, add_xattr, w)) != 0)
        return r;
    rc = mdb_get(w->txn, fsm->orphans, &key, &val);
    if (rc == 0)
        add_value(w, 'O', &val);
    else if (rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(NULL, rc, "digest");
    /* The lock list value is canonical (store/fsm_locks.c, invariant 1). */
    rc = mdb_get(w->txn, fsm->locks, &key, &val);
    if (rc == 0)
        add_value(w, 'K', &val);
    else if (rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(NULL, rc, "digest");
    return 0;
}

static int add_sessions(struct store_fsm *fsm, struct walk *w)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(w->txn, fsm->sessions, &cur);
    if (rc != 0)
        return store__fsm_mdb_error(NULL, rc, "digest cursor");
    MDB_val key, val;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        add_tag(w, 'S');
        hash(w, key.mv_data, key.mv_size);
        hash(w, val.mv_data, val.mv_size);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(NULL, rc, "digest walk");
    return 0;
}

int store_fsm_digest(struct store_fsm *fsm, uint8_t out[STORE_FSM_DIGEST_SIZE])
{
    struct walk w = {.sha = EVP_MD_CTX_new()};
    MDB_cursor *cur;
    int rc, r;
    if (w.sha == NULL)
        return RFS_ENOMEM;
    /* libcrypto failing to hash has no better code than RFS_EIO: no digest was made. */
    if (EVP_DigestInit_ex(w.sha, EVP_sha256(), NULL) != 1) {
        r = RFS_EIO;
        goto out_ctx;
    }
    if ((r = store__fsm_read_begin(fsm, &w.txn)) != 0)
        goto out_ctx;
    MDB_val key = fsm_meta_key(META_NEXT_INO), val;
    if ((rc = mdb_get(w.txn, fsm->meta, &key, &val)) != 0 || val.mv_size != 8) {
        r = rc == 0 || rc == MDB_NOTFOUND ? RFS_ECORRUPT : store__fsm_mdb_error(NULL, rc, "digest");
        goto out;
    }
    add_tag(&w, 'M');
    add_le(&w, rfs_get_le64(val.mv_data), 8);
    add_le(&w, fsm->max_file_size, 8);
    add_le(&w, fsm->max_links, 4);
    add_le(&w, fsm->block_size, 4);
    uint64_t limit;
    if ((r = store__space_get(fsm, w.txn, &limit, NULL)) != 0)
        goto out;
    add_le(&w, limit, 8);
    if ((rc = mdb_cursor_open(w.txn, fsm->inodes, &cur)) != 0) {
        r = store__fsm_mdb_error(NULL, rc, "digest cursor");
        goto out;
    }
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && r == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        struct fsm_inode node;
        if (key.mv_size != 8) {
            r = RFS_ECORRUPT;
            break;
        }
        uint64_t ino = fsm_get_be64(key.mv_data);
        if ((r = store__inode_get(fsm, w.txn, ino, &node)) == 0)
            r = add_inode(fsm, &w, &node);
    }
    if (r == 0 && rc != 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(NULL, rc, "digest walk");
    mdb_cursor_close(cur);
    if (r == 0)
        r = add_sessions(fsm, &w);
    if (r == 0 && (w.is_failed || EVP_DigestFinal_ex(w.sha, out, NULL) != 1))
        r = RFS_EIO;
out:
    store__fsm_read_end(fsm, w.txn);
out_ctx:
    EVP_MD_CTX_free(w.sha);
    return r;
}
