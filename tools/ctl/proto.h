/* The control protocol between raftfsd and raftfs-ctl (docs/ctl-protocol.md): versioned,
 * length-checked binary messages over a root-only UNIX stream socket. One request, one
 * response. This module is the codec (pure: no I/O) and the blocking frame I/O both ends use;
 * it depends only on the plain types of raft/raft.h. */
#ifndef CTL_PROTO_H
#define CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/runtime/runtime.h"

#define CTL_MAGIC       0x4c544352u /* the bytes "RCTL", read as a little-endian u32 */
#define CTL_VERSION     1
#define CTL_HEADER      12
#define CTL_PAYLOAD_MAX 16384u /* larger frames are refused before anything is allocated */
#define CTL_FRAME_MAX   (CTL_HEADER + CTL_PAYLOAD_MAX)
#define CTL_TEXT_MAX    256 /* error text, NUL included */
#define CTL_DIGEST_SIZE 32

/* How long a READ_BARRIER waits for the leader's quorum and this node's apply (ms). */
#define CTL_READ_BARRIER_TIMEOUT_MS 3000

/* The default socket of raftfsd, and so of raftfs-ctl. */
#define CTL_SOCKET_DEFAULT "/run/raftfs/ctl.sock"

enum ctl_type {
    /* requests */
    CTL_REQ_STATUS = 1,
    CTL_REQ_STATS = 2,
    CTL_REQ_CHANGE = 3,        /* a membership change: forwarded to the leader */
    CTL_REQ_TRANSFER = 4,      /* a leadership transfer: forwarded to the leader */
    CTL_REQ_SNAPSHOT = 5,      /* a snapshot of this node now */
    CTL_REQ_VERIFY = 6,        /* a checkpoint, then every member's digest at its index */
    CTL_REQ_LOCKS = 7,         /* the lock records of this node's state machine */
    CTL_REQ_SESSIONS = 8,      /* the node sessions of this node's state machine */
    CTL_REQ_FAULTS = 9,        /* test hook: replace the transport's fault hooks */
    CTL_REQ_OWN_SESSION = 10,  /* this node's own lock session, as the node sees it */
    CTL_REQ_READ_BARRIER = 11, /* a read barrier: the leader confirms a quorum, this node applies */
    /* responses */
    CTL_RESP_ERROR = 64,
    CTL_RESP_OK = 65,
    CTL_RESP_STATUS = 66,
    CTL_RESP_STATS = 67,
    CTL_RESP_VERIFY = 68,
    CTL_RESP_LOCKS = 69,
    CTL_RESP_SESSIONS = 70,
    CTL_RESP_OWN_SESSION = 71,
};

/* At most this many records in a LOCKS or SESSIONS response (both fit CTL_PAYLOAD_MAX); the
 * daemon sets is_truncated when it had more. */
#define CTL_LOCKS_MAX    200
#define CTL_SESSIONS_MAX 200

/* Wire values of a lock's kind, type and state and of a session's state. */
enum { CTL_LOCK_FLOCK = 1, CTL_LOCK_POSIX = 2 };
enum { CTL_LOCK_READ = 1, CTL_LOCK_WRITE = 2 };
enum { CTL_LOCK_HELD = 1, CTL_LOCK_WAITING = 2, CTL_LOCK_DELAYED = 3 };
enum { CTL_SESSION_LIVE = 1, CTL_SESSION_ENDED = 2 };
enum { CTL_OWN_OPENING = 1, CTL_OWN_OPEN = 2, CTL_OWN_LOST = 3 };

/* A wall-clock time from the log (the leader's clock when the entry was proposed). */
struct ctl_time {
    int64_t sec;
    uint32_t nsec; /* < 10^9 */
};

/* One lock record, held or waiting. */
struct ctl_lock {
    uint64_t ino;
    uint64_t node;
    uint64_t session;
    uint32_t pid; /* 0: unknown */
    uint8_t kind, type, state;
    uint64_t start;
    uint64_t len;         /* 0: to the end of the file */
    uint64_t token;       /* held: fencing token; waiting: 0 */
    struct ctl_time time; /* held: when granted; waiting: when asked */
};

struct ctl_locks {
    bool is_truncated;
    unsigned n;
    struct ctl_lock locks[CTL_LOCKS_MAX];
};

struct ctl_session {
    uint64_t id;
    uint64_t node;
    uint8_t state;
    struct ctl_time opened;
    struct ctl_time ended; /* ENDED only; zero otherwise */
};

struct ctl_sessions {
    bool is_truncated;
    unsigned n;
    struct ctl_session sessions[CTL_SESSIONS_MAX];
};

/* This node's own lock session (fs_locks_local). */
struct ctl_own_session {
    uint8_t state;     /* CTL_OWN_* */
    uint64_t session;  /* OPEN: its ID; LOST: the lost one's; OPENING: 0 */
    uint64_t since_ms; /* OPEN: since its last confirmed contact began; LOST: since the loss */
    char reason[CTL_TEXT_MAX]; /* LOST: why; "" otherwise */
};

/* One member's answer to a verify. */
struct ctl_digest {
    uint64_t id;
    int status; /* 0, or a RAFT_E* code: no digest from this member */
    uint8_t digest[CTL_DIGEST_SIZE];
};

struct ctl_verify {
    uint64_t index; /* the checkpoint's log index */
    unsigned n;
    struct ctl_digest nodes[RAFT_MAX_SERVERS];
};

/* A decoded message; type says which member of the union is meaningful (none for STATUS,
 * STATS, SNAPSHOT, VERIFY, LOCKS, SESSIONS, OWN_SESSION and READ_BARRIER requests and for OK). */
struct ctl_msg {
    enum ctl_type type;
    union {
        struct {
            enum raft_change_op op;
            uint64_t server;
            uint64_t expect_index;          /* 0: no check */
            char address[RAFT_ADDRESS_MAX]; /* ADD_VOTER, ADD_LEARNER: "HOST:PORT"; else "" */
        } change;
        struct {
            uint64_t server; /* 0: the most up-to-date voter */
        } transfer;
        struct {
            char spec[CTL_TEXT_MAX]; /* raft_runtime_set_faults' spec; "" heals */
        } faults;
        struct {
            int code; /* a RAFT_E* or RFS_E* code, or 0 when only the text applies */
            char text[CTL_TEXT_MAX];
        } error;
        struct raft_runtime_status status;
        struct raft_runtime_stats stats;
        struct ctl_verify verify;
        struct ctl_locks locks;
        struct ctl_sessions sessions;
        struct ctl_own_session own;
    };
};

/* Encode m as one frame (header and payload) into buf (cap bytes; CTL_FRAME_MAX always
 * suffices). Returns the frame's size, or 0 when m cannot be encoded (an unknown type or op, an
 * address or text without a NUL in its array, too many peers, nodes or records, a value out of
 * its range). */
size_t ctl_encode(const struct ctl_msg *m, uint8_t *buf, size_t cap);

/* Check a frame header (CTL_HEADER bytes): magic, version, reserved bytes, a known type and a
 * payload length of at most CTL_PAYLOAD_MAX. Returns 0 with *type and *len set, or RFS_EDECODE
 * with the reason in err (errlen bytes). */
int ctl_header_check(const uint8_t *h, enum ctl_type *type, uint32_t *len, char *err,
                     size_t errlen);

/* Decode the payload p[0..len) of a frame of type into *m. Every length and value is checked:
 * anything but the exact layout of docs/ctl-protocol.md gives RFS_EDECODE with the reason in
 * err; nothing is allocated. */
int ctl_decode(enum ctl_type type, const uint8_t *p, uint32_t len, struct ctl_msg *m, char *err,
               size_t errlen);

/* Name of a message type for messages ("status", ...); "unknown" otherwise. */
const char *ctl_type_name(unsigned type);

/* --- blocking I/O on a connected socket (ctl/io.c) ------------------------------------------ */

/* Write m as one frame to fd. Returns 0, RFS_EINVAL (m cannot be encoded) or RFS_EIO (errno
 * kept; a peer that went away included). */
int ctl_send(int fd, const struct ctl_msg *m);

/* Read one frame from fd into *m, header first, then exactly the payload it announces; the
 * socket's SO_RCVTIMEO, if set, bounds the whole frame (and is restored for the next one).
 * Returns 0; RFS_ENOTFOUND for an end of stream before the first byte (the peer closed);
 * RFS_EIO for a read error, a timeout or a stream cut inside a frame; RFS_EDECODE for a frame
 * that fails its checks. err (errlen bytes) says which. */
int ctl_recv(int fd, struct ctl_msg *m, char *err, size_t errlen);

#endif
