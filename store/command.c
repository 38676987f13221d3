/* Encoding and decoding of state machine commands. Each type's body is described once, as a
 * string of field codes, so the encoder, the size function and the decoder cannot disagree
 * about the layout. */
#include <string.h>
#include <sys/stat.h>

#include "lib/error.h"
#include "lib/le.h"
#include "store/command.h"

/* Field codes (all little-endian):
 *   P ino u64      Q ino2 u64     F flags u32    M mode u32     U uid u32     G gid u32
 *   R rdev u32     V valid u32    S size u64     O offset u64   H holders u64
 *   A atime i64 sec + u32 nsec    T mtime i64 sec + u32 nsec
 *   N name (u16 length + bytes)   n name2 (u16 length + bytes)
 *   L data (u16 length + bytes)   D data (u32 length + bytes)
 * version 2 (sessions and locks):
 *   J node u64     X session u64  W owner u64    K request u64  B start u64   E len u64
 *   Y pid u32      Z delay_ms u32 k lock_kind u8 t lock_type u8
 * version 3: no new field (FALLOCATE uses O for its offset and E for its length). */
static const char *const bodies[STORE_CMD_TYPE_END] = {
    [STORE_CMD_CREATE] = "PMUGFN",     [STORE_CMD_MKNOD] = "PMUGRN",
    [STORE_CMD_MKDIR] = "PMUGN",       [STORE_CMD_UNLINK] = "PFHN",
    [STORE_CMD_RMDIR] = "PFHN",        [STORE_CMD_SYMLINK] = "PUGNL",
    [STORE_CMD_LINK] = "PQN",          [STORE_CMD_RENAME] = "PQFHNn",
    [STORE_CMD_SETATTR] = "PVMUGSAT",  [STORE_CMD_WRITE] = "POD",
    [STORE_CMD_REPLACE] = "PD",        [STORE_CMD_SETXATTR] = "PFND",
    [STORE_CMD_REMOVEXATTR] = "PN",    [STORE_CMD_FORGET] = "PH",
    [STORE_CMD_SESSION_OPEN] = "J",    [STORE_CMD_SESSION_END] = "XZ",
    [STORE_CMD_LOCK] = "PXWKYktBEF",   [STORE_CMD_LOCK_CANCEL] = "PXK",
    [STORE_CMD_LOCK_RELEASE] = "PXWk", [STORE_CMD_SESSION_RENEW] = "JZ",
    [STORE_CMD_FALLOCATE] = "PFOE",
};

/* The first type of versions 2 and 3; every type before FIRST_V2_TYPE is version 1. */
#define FIRST_V2_TYPE STORE_CMD_SESSION_OPEN
#define FIRST_V3_TYPE STORE_CMD_SESSION_RENEW

static const char *const type_names[STORE_CMD_TYPE_END] = {
    [STORE_CMD_CREATE] = "create",
    [STORE_CMD_MKNOD] = "mknod",
    [STORE_CMD_MKDIR] = "mkdir",
    [STORE_CMD_UNLINK] = "unlink",
    [STORE_CMD_RMDIR] = "rmdir",
    [STORE_CMD_SYMLINK] = "symlink",
    [STORE_CMD_LINK] = "link",
    [STORE_CMD_RENAME] = "rename",
    [STORE_CMD_SETATTR] = "setattr",
    [STORE_CMD_WRITE] = "write",
    [STORE_CMD_REPLACE] = "replace",
    [STORE_CMD_SETXATTR] = "setxattr",
    [STORE_CMD_REMOVEXATTR] = "removexattr",
    [STORE_CMD_FORGET] = "forget",
    [STORE_CMD_SESSION_OPEN] = "session-open",
    [STORE_CMD_SESSION_END] = "session-end",
    [STORE_CMD_LOCK] = "lock",
    [STORE_CMD_LOCK_CANCEL] = "lock-cancel",
    [STORE_CMD_LOCK_RELEASE] = "lock-release",
    [STORE_CMD_SESSION_RENEW] = "session-renew",
    [STORE_CMD_FALLOCATE] = "fallocate",
};

#define HEADER_SIZE 14 /* version u8, type u8, time sec i64, time nsec u32 */
#define NSEC_LIMIT  1000000000u

const char *store_cmd_type_name(unsigned type)
{
    if (type == 0 || type >= STORE_CMD_TYPE_END)
        return "unknown";
    return type_names[type];
}

unsigned store_cmd_version_of(unsigned type)
{
    if (type == 0 || type >= STORE_CMD_TYPE_END)
        return 0;
    return type < FIRST_V2_TYPE ? 1 : type < FIRST_V3_TYPE ? 2 : 3;
}

bool store_cmd_is_special_mode(uint32_t mode)
{
    uint32_t type = mode & S_IFMT;
    return type == S_IFCHR || type == S_IFBLK || type == S_IFSOCK;
}

unsigned store_cmd_version(const struct store_cmd *cmd)
{
    if (cmd->type == STORE_CMD_MKNOD && store_cmd_is_special_mode(cmd->mode))
        return 3;
    return store_cmd_version_of(cmd->type);
}

static const char *body_of(unsigned type)
{
    if (type == 0 || type >= STORE_CMD_TYPE_END)
        return NULL;
    return bodies[type];
}

/* Size of one field of cmd, or 0 if its value cannot be encoded. */
static size_t field_size(char code, const struct store_cmd *cmd)
{
    switch (code) {
    case 'P':
    case 'Q':
    case 'S':
    case 'O':
    case 'H':
    case 'J':
    case 'X':
    case 'W':
    case 'K':
    case 'B':
    case 'E': return 8;
    case 'F':
    case 'M':
    case 'U':
    case 'G':
    case 'R':
    case 'V':
    case 'Y':
    case 'Z': return 4;
    case 'k':
    case 't': return 1;
    case 'A': return cmd->atime_nsec < NSEC_LIMIT ? 12 : 0;
    case 'T': return cmd->mtime_nsec < NSEC_LIMIT ? 12 : 0;
    case 'N': return cmd->name_len <= UINT16_MAX ? 2 + cmd->name_len : 0;
    case 'n': return cmd->name2_len <= UINT16_MAX ? 2 + cmd->name2_len : 0;
    case 'L': return cmd->data_len <= UINT16_MAX ? 2 + cmd->data_len : 0;
    case 'D': return cmd->data_len <= UINT32_MAX ? 4 + cmd->data_len : 0;
    }
    return 0;
}

size_t store_cmd_encoded_size(const struct store_cmd *cmd)
{
    const char *body = body_of(cmd->type);
    if (body == NULL || cmd->time_nsec >= NSEC_LIMIT)
        return 0;
    size_t total = HEADER_SIZE;
    for (; *body; body++) {
        size_t n = field_size(*body, cmd);
        if (n == 0)
            return 0;
        total += n;
    }
    return total;
}

/* Each put writes at p and returns the position after it. */
static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    rfs_put_le16(p, v);
    return p + 2;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    rfs_put_le32(p, v);
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    rfs_put_le64(p, v);
    return p + 8;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n > 0)
        memcpy(p, src, n);
    return p + n;
}

int store_cmd_encode(const struct store_cmd *cmd, void *buf, size_t cap, size_t *len)
{
    size_t need = store_cmd_encoded_size(cmd);
    if (need == 0)
        return RFS_EINVAL;
    if (cap < need)
        return RFS_ERANGE;
    uint8_t *p = buf;
    *p++ = (uint8_t)store_cmd_version(cmd);
    *p++ = cmd->type;
    p = put_u64(p, (uint64_t)cmd->time_sec);
    p = put_u32(p, cmd->time_nsec);
    for (const char *f = body_of(cmd->type); *f; f++) {
        switch (*f) {
        case 'P': p = put_u64(p, cmd->ino); break;
        case 'Q': p = put_u64(p, cmd->ino2); break;
        case 'S': p = put_u64(p, cmd->size); break;
        case 'O': p = put_u64(p, cmd->offset); break;
        case 'H': p = put_u64(p, cmd->holders); break;
        case 'F': p = put_u32(p, cmd->flags); break;
        case 'M': p = put_u32(p, cmd->mode); break;
        case 'U': p = put_u32(p, cmd->uid); break;
        case 'G': p = put_u32(p, cmd->gid); break;
        case 'R': p = put_u32(p, cmd->rdev); break;
        case 'V': p = put_u32(p, cmd->valid); break;
        case 'J': p = put_u64(p, cmd->node); break;
        case 'X': p = put_u64(p, cmd->session); break;
        case 'W': p = put_u64(p, cmd->owner); break;
        case 'K': p = put_u64(p, cmd->request); break;
        case 'B': p = put_u64(p, cmd->start); break;
        case 'E': p = put_u64(p, cmd->len); break;
        case 'Y': p = put_u32(p, cmd->pid); break;
        case 'Z': p = put_u32(p, cmd->delay_ms); break;
        case 'k': *p++ = cmd->lock_kind; break;
        case 't': *p++ = cmd->lock_type; break;
        case 'A':
            p = put_u64(p, (uint64_t)cmd->atime_sec);
            p = put_u32(p, cmd->atime_nsec);
            break;
        case 'T':
            p = put_u64(p, (uint64_t)cmd->mtime_sec);
            p = put_u32(p, cmd->mtime_nsec);
            break;
        case 'N':
            p = put_u16(p, (uint16_t)cmd->name_len);
            p = put_bytes(p, cmd->name, cmd->name_len);
            break;
        case 'n':
            p = put_u16(p, (uint16_t)cmd->name2_len);
            p = put_bytes(p, cmd->name2, cmd->name2_len);
            break;
        case 'L':
            p = put_u16(p, (uint16_t)cmd->data_len);
            p = put_bytes(p, cmd->data, cmd->data_len);
            break;
        case 'D':
            p = put_u32(p, (uint32_t)cmd->data_len);
            p = put_bytes(p, cmd->data, cmd->data_len);
            break;
        }
    }
    *len = (size_t)(p - (uint8_t *)buf);
    return 0;
}

/* A bounds-checked reader: every get fails once the input is exhausted, and stays failed. */
struct reader {
    const uint8_t *p;
    size_t left;
    int bad;
};

static const void *get_bytes(struct reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const void *s = r->p;
    r->p += n;
    r->left -= n;
    return s;
}

/* A little-endian integer of n bytes (1, 2, 4 or 8); 0 once the input is exhausted. */
static uint64_t get_le(struct reader *r, size_t n)
{
    const uint8_t *p = get_bytes(r, n);
    if (p == NULL)
        return 0;
    switch (n) {
    case 1: return p[0];
    case 2: return rfs_get_le16(p);
    case 4: return rfs_get_le32(p);
    default: return rfs_get_le64(p);
    }
}

static void get_time(struct reader *r, int64_t *sec, uint32_t *nsec)
{
    *sec = (int64_t)get_le(r, 8);
    *nsec = (uint32_t)get_le(r, 4);
    if (*nsec >= NSEC_LIMIT)
        r->bad = 1;
}

int store_cmd_decode(const void *buf, size_t len, struct store_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    if (buf == NULL || len < HEADER_SIZE || len > STORE_CMD_MAX_ENCODED)
        return RFS_EDECODE;
    struct reader r = {.p = buf, .left = len, .bad = 0};
    unsigned version = (unsigned)get_le(&r, 1);
    unsigned type = (unsigned)get_le(&r, 1);
    const char *body = body_of(type);
    if (body == NULL || version < store_cmd_version_of(type) || version > STORE_CMD_VERSION)
        return RFS_EDECODE;
    cmd->type = (uint8_t)type;
    get_time(&r, &cmd->time_sec, &cmd->time_nsec);
    for (; *body && !r.bad; body++) {
        switch (*body) {
        case 'P': cmd->ino = get_le(&r, 8); break;
        case 'Q': cmd->ino2 = get_le(&r, 8); break;
        case 'S': cmd->size = get_le(&r, 8); break;
        case 'O': cmd->offset = get_le(&r, 8); break;
        case 'H': cmd->holders = get_le(&r, 8); break;
        case 'F': cmd->flags = (uint32_t)get_le(&r, 4); break;
        case 'M': cmd->mode = (uint32_t)get_le(&r, 4); break;
        case 'U': cmd->uid = (uint32_t)get_le(&r, 4); break;
        case 'G': cmd->gid = (uint32_t)get_le(&r, 4); break;
        case 'R': cmd->rdev = (uint32_t)get_le(&r, 4); break;
        case 'V': cmd->valid = (uint32_t)get_le(&r, 4); break;
        case 'J': cmd->node = get_le(&r, 8); break;
        case 'X': cmd->session = get_le(&r, 8); break;
        case 'W': cmd->owner = get_le(&r, 8); break;
        case 'K': cmd->request = get_le(&r, 8); break;
        case 'B': cmd->start = get_le(&r, 8); break;
        case 'E': cmd->len = get_le(&r, 8); break;
        case 'Y': cmd->pid = (uint32_t)get_le(&r, 4); break;
        case 'Z': cmd->delay_ms = (uint32_t)get_le(&r, 4); break;
        case 'k': cmd->lock_kind = (uint8_t)get_le(&r, 1); break;
        case 't': cmd->lock_type = (uint8_t)get_le(&r, 1); break;
        case 'A': get_time(&r, &cmd->atime_sec, &cmd->atime_nsec); break;
        case 'T': get_time(&r, &cmd->mtime_sec, &cmd->mtime_nsec); break;
        case 'N':
            cmd->name_len = (size_t)get_le(&r, 2);
            cmd->name = get_bytes(&r, cmd->name_len);
            break;
        case 'n':
            cmd->name2_len = (size_t)get_le(&r, 2);
            cmd->name2 = get_bytes(&r, cmd->name2_len);
            break;
        case 'L':
            cmd->data_len = (size_t)get_le(&r, 2);
            cmd->data = get_bytes(&r, cmd->data_len);
            break;
        case 'D':
            cmd->data_len = (size_t)get_le(&r, 4);
            cmd->data = get_bytes(&r, cmd->data_len);
            break;
        }
    }
    /* The version byte must be the command's own (store_cmd_version), but for the version 1
     * MKNOD of a device or socket that logs from before version 3 may hold. */
    bool is_old_mknod = type == STORE_CMD_MKNOD && version == 1;
    if (r.bad || r.left != 0 || (version != store_cmd_version(cmd) && !is_old_mknod)) {
        memset(cmd, 0, sizeof *cmd);
        return RFS_EDECODE;
    }
    cmd->version = (uint8_t)version;
    return 0;
}
