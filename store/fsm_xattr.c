/* Extended attributes of the inode state machine: (inode, name) -> value, with Linux's
 * namespace rules (user., trusted., security.; user.* only on regular files and
 * directories) and its order of checks. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/fsm_internal.h"

static const char *const namespaces[] = {"user.", "trusted.", "security."};

/* EOPNOTSUPP for an unknown namespace, EINVAL for a bare prefix ("user."). *is_user is set
 * for any name starting with "user.", even the bare prefix. */
static int namespace_check(const char *name, size_t len, bool *is_user)
{
    for (size_t i = 0; i < sizeof namespaces / sizeof namespaces[0]; i++) {
        size_t n = strlen(namespaces[i]);
        if (len >= n && memcmp(name, namespaces[i], n) == 0) {
            *is_user = i == 0;
            return len == n ? EINVAL : 0;
        }
    }
    return EOPNOTSUPP;
}

static void xattr_key(uint8_t *k, uint64_t ino, const char *name, size_t len)
{
    fsm_put_be64(k, ino);
    memcpy(k + 8, name, len);
}

int store__cmd_setxattr(struct fsm_txn *t, const struct store_cmd *c, struct store_fsm_result *res)
{
    struct fsm_inode node;
    bool is_user = false;
    int r;
    if (c->flags & ~(STORE_CMD_XATTR_CREATE | STORE_CMD_XATTR_REPLACE))
        return EINVAL;
    if (c->name_len == 0 || c->name_len > STORE_FSM_XATTR_NAME_MAX ||
        memchr(c->name, '\0', c->name_len))
        return ERANGE;
    if (c->data_len > STORE_FSM_XATTR_SIZE_MAX)
        return E2BIG;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    /* Linux decides permission (user.* only on files and directories) before it resolves
     * the namespace. */
    int ns = namespace_check(c->name, c->name_len, &is_user);
    if (is_user && !S_ISREG(node.mode) && !S_ISDIR(node.mode))
        return EPERM;
    if (ns != 0)
        return ns;
    uint8_t k[8 + STORE_FSM_XATTR_NAME_MAX];
    xattr_key(k, c->ino, c->name, c->name_len);
    MDB_val key = {8 + c->name_len, k}, val;
    int rc = mdb_get(t->txn, t->fsm->xattrs, &key, &val);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return store__fsm_mdb_error(t->fsm, rc, "get xattr of inode %llu",
                                    (unsigned long long)c->ino);
    if (rc == 0 && (c->flags & STORE_CMD_XATTR_CREATE))
        return EEXIST;
    if (rc == MDB_NOTFOUND && (c->flags & STORE_CMD_XATTR_REPLACE))
        return ENODATA;
    uint64_t old = rc == 0 ? store__charge_xattr(c->name_len, val.mv_size) : 0;
    uint64_t charge = store__charge_xattr(c->name_len, c->data_len);
    if (charge > old && (r = store__space_check(t, charge - old)) != 0)
        return r;
    if ((r = store__space_adjust(t, charge, old)) != 0)
        return r;
    val = (MDB_val){c->data_len, (void *)c->data};
    if ((rc = mdb_put(t->txn, t->fsm->xattrs, &key, &val, 0)) != 0)
        return store__fsm_mdb_error(t->fsm, rc, "put xattr of inode %llu",
                                    (unsigned long long)c->ino);
    node.ctime = t->now;
    if ((r = store__inode_put(t, &node)) != 0)
        return r;
    res->ino = node.ino;
    store__inode_to_attr(&node, &res->attr);
    return 0;
}

int store__cmd_removexattr(struct fsm_txn *t, const struct store_cmd *c,
                           struct store_fsm_result *res)
{
    struct fsm_inode node;
    bool is_user = false;
    int r;
    if (c->name_len == 0 || c->name_len > STORE_FSM_XATTR_NAME_MAX ||
        memchr(c->name, '\0', c->name_len))
        return ERANGE;
    if ((r = store__inode_get(t->fsm, t->txn, c->ino, &node)) != 0)
        return r;
    /* Linux decides permission (user.* only on files and directories) before it resolves
     * the namespace. */
    int ns = namespace_check(c->name, c->name_len, &is_user);
    if (is_user && !S_ISREG(node.mode) && !S_ISDIR(node.mode))
        return EPERM;
    if (ns != 0)
        return ns;
    uint8_t k[8 + STORE_FSM_XATTR_NAME_MAX];
    xattr_key(k, c->ino, c->name, c->name_len);
    MDB_val key = {8 + c->name_len, k}, val;
    int rc = mdb_get(t->txn, t->fsm->xattrs, &key, &val);
    if (rc == MDB_NOTFOUND)
        return ENODATA;
    if (rc == 0 &&
        (r = store__space_adjust(t, 0, store__charge_xattr(c->name_len, val.mv_size))) != 0)
        return r;
    if (rc == 0)
        rc = mdb_del(t->txn, t->fsm->xattrs, &key, NULL);
    if (rc != 0)
        return store__fsm_mdb_error(t->fsm, rc, "delete xattr of inode %llu",
                                    (unsigned long long)c->ino);
    node.ctime = t->now;
    if ((r = store__inode_put(t, &node)) != 0)
        return r;
    res->ino = node.ino;
    store__inode_to_attr(&node, &res->attr);
    return 0;
}

static void add_charge(void *arg, const MDB_val *key, const MDB_val *val)
{
    *(uint64_t *)arg += store__charge_xattr(key->mv_size - 8, val->mv_size);
}

int store__xattr_drop_all(struct fsm_txn *t, uint64_t ino)
{
    uint64_t charge = 0;
    int rc = store__for_prefix(t->fsm, t->txn, t->fsm->xattrs, ino, add_charge, &charge);
    if (rc != 0)
        return rc;
    if (charge == 0)
        return 0;
    int r = store__space_adjust(t, 0, charge);
    return r != 0 ? r : store__delete_prefix(t, t->fsm->xattrs, ino, false, 0, "xattrs");
}

/* The read-only attribute STORE_FSM_XATTR_LOCK_TOKEN: the newest fencing token held on ino,
 * in decimal. Same conventions as store_fsm_getxattr. */
static int lock_token_value(struct store_fsm *fsm, MDB_txn *txn, uint64_t ino, void *buf,
                            size_t cap, size_t *len)
{
    uint64_t token;
    char text[24];
    int r = store__lock_token(fsm, txn, ino, &token);
    if (r != 0)
        return r;
    *len = (size_t)snprintf(text, sizeof text, "%" PRIu64, token);
    if (cap == 0)
        return 0;
    if (cap < *len)
        return ERANGE;
    memcpy(buf, text, *len);
    return 0;
}

int store_fsm_getxattr(struct store_fsm *fsm, uint64_t ino, const char *name, void *buf, size_t cap,
                       size_t *len)
{
    struct fsm_inode node;
    MDB_txn *txn;
    bool is_user = false;
    size_t name_len = strlen(name);
    if (name_len == 0 || name_len > STORE_FSM_XATTR_NAME_MAX)
        return ERANGE;
    int rc = store__fsm_read_begin(fsm, &txn);
    if (rc != 0)
        return rc;
    int r = store__inode_get(fsm, txn, ino, &node);
    if (r != 0)
        goto out;
    if (strcmp(name, STORE_FSM_XATTR_LOCK_TOKEN) == 0) {
        r = lock_token_value(fsm, txn, ino, buf, cap, len);
        goto out;
    }
    int ns = namespace_check(name, name_len, &is_user);
    if (is_user && !S_ISREG(node.mode) && !S_ISDIR(node.mode)) {
        r = ENODATA;
        goto out;
    }
    if ((r = ns) != 0)
        goto out;
    uint8_t k[8 + STORE_FSM_XATTR_NAME_MAX];
    xattr_key(k, ino, name, name_len);
    MDB_val key = {8 + name_len, k}, val;
    rc = mdb_get(txn, fsm->xattrs, &key, &val);
    if (rc == MDB_NOTFOUND) {
        r = ENODATA;
        goto out;
    }
    if (rc != 0) {
        r = store__fsm_mdb_error(NULL, rc, "getxattr");
        goto out;
    }
    *len = val.mv_size;
    if (cap == 0)
        goto out;
    if (cap < val.mv_size) {
        r = ERANGE;
        goto out;
    }
    memcpy(buf, val.mv_data, val.mv_size);
out:
    store__fsm_read_end(fsm, txn);
    return r;
}

int store_fsm_listxattr(struct store_fsm *fsm, uint64_t ino, char *buf, size_t cap, size_t *len)
{
    struct fsm_inode node;
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = store__fsm_read_begin(fsm, &txn);
    if (rc != 0)
        return rc;
    int r = store__inode_get(fsm, txn, ino, &node);
    if (r != 0)
        goto out;
    if ((rc = mdb_cursor_open(txn, fsm->xattrs, &cur)) != 0) {
        r = store__fsm_mdb_error(NULL, rc, "listxattr cursor");
        goto out;
    }
    uint8_t k[8];
    fsm_put_be64(k, ino);
    MDB_val key = {8, k}, val;
    size_t total = 0;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        if (key.mv_size < 8 || fsm_get_be64(key.mv_data) != ino)
            break;
        size_t n = key.mv_size - 8;
        if (cap > 0 && total + n + 1 <= cap) {
            memcpy(buf + total, (const char *)key.mv_data + 8, n);
            buf[total + n] = '\0';
        }
        total += n + 1;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        r = store__fsm_mdb_error(NULL, rc, "listxattr");
    mdb_cursor_close(cur);
    *len = total;
    if (r == 0 && cap > 0 && total > cap)
        r = ERANGE;
out:
    store__fsm_read_end(fsm, txn);
    return r;
}
