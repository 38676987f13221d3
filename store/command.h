/* Commands of the inode state machine: one per mutating filesystem operation, and their
 * versioned little-endian binary encoding (the payload of a raft log entry). The layout is
 * documented byte by byte in docs/fsm-format.md. */
#ifndef STORE_COMMAND_H
#define STORE_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Version byte of an encoded command: the version that introduced it. Version 1 has the
 * filesystem commands (CREATE..FORGET), version 2 adds node sessions and locks (SESSION_OPEN..
 * LOCK_RELEASE), version 3 SESSION_RENEW, FALLOCATE, and MKNOD of character and block devices
 * and sockets, which version 1 refused with EPERM. Each command is encoded under exactly one
 * version byte (store_cmd_version) and a decoder refuses any other, so an encoding stays
 * canonical and a build that predates a version refuses its commands by their version byte
 * instead of applying them under older rules. The one exception: a version 1 MKNOD of a device
 * or socket still decodes (logs written before version 3 may hold one) and applies as then,
 * answering EPERM. */
#define STORE_CMD_VERSION 3 /* the newest version this build decodes */

/* Largest encoded command the decoder accepts, whatever the buffer length (64 MiB of data
 * plus headers). Keeps a hostile length from describing more than a log entry may hold. */
#define STORE_CMD_MAX_ENCODED ((size_t)64 * 1024 * 1024 + 4096)

enum store_cmd_type {
    STORE_CMD_CREATE = 1,  /* ino=parent, name, mode (permission bits), uid, gid, flags EXCL */
    STORE_CMD_MKNOD,       /* ino=parent, name, mode (any type but S_IFDIR and S_IFLNK, perms),
                              uid, gid, rdev (devices only) */
    STORE_CMD_MKDIR,       /* ino=parent, name, mode (permission bits), uid, gid */
    STORE_CMD_UNLINK,      /* ino=parent, name, flags KEEP_OPEN, holders */
    STORE_CMD_RMDIR,       /* ino=parent, name, flags KEEP_OPEN, holders */
    STORE_CMD_SYMLINK,     /* ino=parent, name, data=target, uid, gid */
    STORE_CMD_LINK,        /* ino=existing inode, ino2=new parent, name=new name */
    STORE_CMD_RENAME,      /* ino=old parent, name, ino2=new parent, name2, flags, holders */
    STORE_CMD_SETATTR,     /* ino, valid bits, mode, uid, gid, size, atime, mtime */
    STORE_CMD_WRITE,       /* ino, offset, data */
    STORE_CMD_REPLACE,     /* ino, data: truncate to zero and write data, as one change */
    STORE_CMD_SETXATTR,    /* ino, name, data=value, flags XATTR_CREATE/XATTR_REPLACE */
    STORE_CMD_REMOVEXATTR, /* ino, name */
    STORE_CMD_FORGET,      /* ino, holders: these nodes no longer hold the orphan open; it is
                              deleted once no holder is left */
    /* version 2: node sessions and locks (store/fsm_locks.c, store/fsm_session.c) */
    STORE_CMD_SESSION_OPEN, /* node: open a session, ending the node's earlier one at once */
    STORE_CMD_SESSION_END,  /* session, delay_ms: end it (lock-delay), or remove it once ended */
    STORE_CMD_LOCK,         /* ino, session, owner, request, pid, lock_kind, lock_type, start,
                               len, flags LOCK_WAIT */
    STORE_CMD_LOCK_CANCEL,  /* ino, session, request: withdraw a waiting request (interrupt) */
    STORE_CMD_LOCK_RELEASE, /* ino, session, owner, lock_kind: drop all the owner holds (close) */
    /* version 3 */
    STORE_CMD_SESSION_RENEW, /* node, delay_ms: open a session for a node that lost its earlier
                                one while running: that one ends with the lock-delay (its
                                locks block others until then) instead of at once */
    STORE_CMD_FALLOCATE,     /* ino, flags (FALLOC_FL_*), offset, len: allocate or punch */
    STORE_CMD_TYPE_END
};

/* flags of CREATE */
#define STORE_CMD_EXCL 0x1u
/* flags of UNLINK, RMDIR and RENAME: if this removes the last link, keep the inode as an
 * orphan (it may be open somewhere) instead of deleting it, with the command's `holders` as the
 * nodes that may hold it open; FORGET removes holders and deletes it when none is left. */
#define STORE_CMD_KEEP_OPEN 0x100u
/* flags of RENAME (same meaning as Linux renameat2) */
#define STORE_CMD_NOREPLACE 0x1u
#define STORE_CMD_EXCHANGE  0x2u
/* flags of SETXATTR (same meaning as Linux setxattr) */
#define STORE_CMD_XATTR_CREATE  0x1u
#define STORE_CMD_XATTR_REPLACE 0x2u

/* flags of FALLOCATE: Linux's values. 0 allocates [offset, offset + len) and extends the size
 * to its end; KEEP_SIZE allocates without changing the size; PUNCH_HOLE | KEEP_SIZE makes the
 * range a hole. Any other combination answers EOPNOTSUPP. */
#define STORE_CMD_FALLOC_KEEP_SIZE  0x1u
#define STORE_CMD_FALLOC_PUNCH_HOLE 0x2u

/* flags of LOCK: wait in the inode's queue when the lock cannot be granted now (F_SETLKW,
 * flock without LOCK_NB) instead of answering EAGAIN. */
#define STORE_CMD_LOCK_WAIT 0x1u

/* lock_kind of LOCK and LOCK_RELEASE. The two kinds never conflict with each other, as on
 * Linux's local filesystems. */
#define STORE_CMD_LOCK_FLOCK 1 /* flock(2): whole file, one lock per open file description */
#define STORE_CMD_LOCK_POSIX 2 /* fcntl(2) byte ranges: classic POSIX and OFD locks */

/* lock_type of LOCK: the values of Linux's F_RDLCK, F_WRLCK and F_UNLCK (asm-generic). */
#define STORE_CMD_LOCK_READ   0
#define STORE_CMD_LOCK_WRITE  1
#define STORE_CMD_LOCK_UNLOCK 2

/* valid bits of SETATTR. *_NOW means "the command's timestamp" and wins over the explicit
 * value bit of the same time. */
#define STORE_CMD_SET_MODE      0x01u
#define STORE_CMD_SET_UID       0x02u
#define STORE_CMD_SET_GID       0x04u
#define STORE_CMD_SET_SIZE      0x08u
#define STORE_CMD_SET_ATIME     0x10u
#define STORE_CMD_SET_MTIME     0x20u
#define STORE_CMD_SET_ATIME_NOW 0x40u
#define STORE_CMD_SET_MTIME_NOW 0x80u
#define STORE_CMD_SET_ALL       0xffu

/* One decoded command. Which fields matter depends on the type (see the enum). Pointers are
 * borrowed: after store_cmd_decode they point into the decoded buffer and are valid as long
 * as it is; for store_cmd_encode they are only read. Lengths are in bytes; names and targets
 * are not NUL-terminated. */
struct store_cmd {
    uint8_t type;     /* enum store_cmd_type */
    int64_t time_sec; /* proposer's clock: the only source of "now" for apply */
    uint32_t time_nsec;
    uint64_t ino;
    uint64_t ino2;
    uint32_t flags;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t rdev;
    uint32_t valid;  /* SETATTR */
    uint64_t size;   /* SETATTR */
    uint64_t offset; /* WRITE, FALLOCATE */
    /* UNLINK, RMDIR, RENAME (with KEEP_OPEN) and FORGET: a set of nodes, bit i - 1 for node
     * ID i (IDs 1 to 64) */
    uint64_t holders;
    int64_t atime_sec;
    uint32_t atime_nsec;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    const char *name;
    size_t name_len;
    const char *name2;
    size_t name2_len;
    const uint8_t *data;
    size_t data_len;
    /* sessions and locks (version 2) */
    uint64_t node;     /* SESSION_OPEN, SESSION_RENEW: raft ID of the node */
    uint64_t session;  /* the node session the lock command acts for */
    uint64_t owner;    /* lock owner within the session (FUSE lock_owner) */
    uint64_t request;  /* request ID, unique within the session: names a waiter */
    uint64_t start;    /* LOCK: first byte */
    uint64_t len;      /* LOCK: bytes, 0 meaning to the end of the file (and beyond);
                          FALLOCATE: bytes (version 3) */
    uint32_t pid;      /* LOCK: process asking, for F_GETLK and listings */
    uint32_t delay_ms; /* SESSION_END, SESSION_RENEW: lock-delay */
    uint8_t lock_kind; /* STORE_CMD_LOCK_FLOCK or STORE_CMD_LOCK_POSIX */
    uint8_t lock_type; /* STORE_CMD_LOCK_READ, _WRITE or _UNLOCK */
    /* Not encoded: the version byte the command was decoded from (store_cmd_decode), which
     * decides the rules it applies under; 0 for a command made in memory, which applies under
     * the newest ones. store_cmd_encode writes store_cmd_version(cmd) whatever it holds. */
    uint8_t version;
    /* Not encoded: the raft log index of the entry carrying the command, set by whoever
     * applies it (store_fsm_apply_batch). Session IDs and fencing tokens are made from it. */
    uint64_t index;
};

/* Bytes store_cmd_encode needs for cmd; 0 if cmd cannot be encoded (unknown type, a name
 * longer than 65535 bytes, data longer than 4 GiB - 1, nanoseconds >= 10^9). */
size_t store_cmd_encoded_size(const struct store_cmd *cmd);

/* Encode cmd into buf (cap bytes) and set *len to the bytes written. Errors: RFS_EINVAL if
 * cmd cannot be encoded (see store_cmd_encoded_size), RFS_ERANGE if cap is too small (nothing
 * meaningful is written). cmd and what it points to are only read. */
int store_cmd_encode(const struct store_cmd *cmd, void *buf, size_t cap, size_t *len);

/* Decode len bytes of buf into *cmd. Never reads outside buf and accepts any bytes: anything
 * but a well-formed command of a known version and type, with no trailing bytes, gives
 * RFS_EDECODE. Names are not validated here (apply decides ENAMETOOLONG etc.). On success
 * cmd's pointers borrow buf, which must outlive their use. */
int store_cmd_decode(const void *buf, size_t len, struct store_cmd *cmd);

/* Version byte of type (see STORE_CMD_VERSION): the version that introduced it; 0 for an
 * unknown type. */
unsigned store_cmd_version_of(unsigned type);

/* Version byte cmd is encoded under: its type's, or 3 for a MKNOD of a device or socket; 0 for
 * an unknown type. */
unsigned store_cmd_version(const struct store_cmd *cmd);

/* Whether mode's type is one that only version 3 makes with MKNOD: a character or block device
 * or a socket. */
bool store_cmd_is_special_mode(uint32_t mode);

/* Name of a command type for messages ("create", ...); "unknown" otherwise. Static string. */
const char *store_cmd_type_name(unsigned type);

#endif
