/* raftfs error codes shared by store/, fs/ and tools/ (raft/ has its own RAFT_E* codes).
 * Codes are positive and start at 1000 so they never collide with errno values. */
#ifndef RFS_ERROR_H
#define RFS_ERROR_H

/* X(name, message): one table generates the enum and the strings. */
#define RFS_ERRORS(X)                                                                              \
    X(RFS_ENOMEM, "out of memory")                                                                 \
    X(RFS_EINVAL, "invalid argument")                                                              \
    X(RFS_EIO, "I/O error")                                                                        \
    X(RFS_ECORRUPT, "stored data failed its checksum")                                             \
    X(RFS_EFORMAT, "unknown or unsupported on-disk format version")                                \
    X(RFS_ENOSPACE, "storage is full")                                                             \
    X(RFS_ESTICKY, "store is in an error state after a failed commit; restart the daemon")         \
    X(RFS_ENOTFOUND, "not found")                                                                  \
    X(RFS_ERANGE, "index out of range")                                                            \
    X(RFS_EDECODE, "malformed encoding")

enum rfs_error {
    RFS_OK = 0,
    RFS_ERROR_BASE = 999,
#define RFS_ENUM_(name, msg) name,
    RFS_ERRORS(RFS_ENUM_)
#undef RFS_ENUM_
        RFS_ERROR_END
};

/* Text for a code of enum rfs_error, or for an errno value (< RFS_ERROR_BASE). Returns a
 * static string; never NULL. */
const char *rfs_strerror(int code);

#endif
