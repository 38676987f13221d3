/* The runtime's transport (internal to raft/): framed messages between nodes over mutual TLS,
 * driven by the runtime's loop (struct rt_loop). docs/wire-format.md specifies the frames, the
 * HELLO exchange and the channels; this header is the API.
 *
 * Model. Each node dials the peers it sends to; a connection carries frames one way, from the
 * dialer to the acceptor (the acceptor writes only its HELLO answer). There are two outbound
 * connections per peer, one per channel: CONTROL for small messages (votes, heartbeats,
 * responses, timeout-now, read-index) and BULK for appends with entries and snapshot chunks, so
 * a heartbeat never waits behind a large append. Frames of one channel arrive in order; frames
 * of different channels may overtake each other (Raft tolerates reordering).
 *
 * Each (peer, channel) has a send queue bounded in bytes. Frames queue while the connection is
 * being set up, so the first messages to a peer are not lost; a frame that does not fit is
 * dropped and counted. When a connection fails, its queue is discarded (counted as dropped)
 * and the dialer reconnects after a capped exponential backoff with jitter.
 *
 * Threads: a transport belongs to its loop's thread; every function here must be called there
 * (other threads post work with rt__loop_post). Callbacks run on the loop thread.
 *
 * Failure: a peer that breaks the protocol (bad magic, version, flags, type, CRC, length, or a
 * HELLO that does not match its certificate or the cluster) loses that connection, with one log
 * line naming the peer and the reason. Memory per connection is bounded by the maximum frame
 * size plus the queue bounds; nothing a peer sends can make the transport block or abort. */
#ifndef RAFT_TRANSPORT_H
#define RAFT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/runtime/loop.h"
#include "raft/runtime/runtime.h"
#include "raft/raft.h"
#include "raft/net/tls.h"

/* --- frames (docs/wire-format.md) ------------------------------------------------------------ */

#define RAFT__FRAME_HEADER          16
#define RAFT__FRAME_MAGIC           0x53544652u /* the bytes "RFTS", read as a little-endian u32 */
#define RAFT__FRAME_VERSION         1
#define RAFT__HELLO_VERSION         1
#define RAFT__CLUSTER_ID_MAX        64
#define RAFT__FRAME_MAX_DEFAULT     (64u << 20)
#define RAFT__CONTROL_QUEUE_DEFAULT ((size_t)4 << 20)

enum raft__frame_type {
    RAFT__FRAME_HELLO = 1,        /* connection set-up; never delivered to the receive callback */
    RAFT__FRAME_RAFT = 2,         /* a raft_msg (raft_msg_encode) */
    RAFT__FRAME_FORWARD = 3,      /* runtime: a proposal forwarded to the leader */
    RAFT__FRAME_FORWARD_RESP = 4, /* runtime: the outcome of a forwarded proposal */
    RAFT__FRAME_CTL = 5,          /* runtime: an administrative request forwarded to a peer */
    RAFT__FRAME_CTL_RESP = 6,     /* runtime: its answer */
    RAFT__FRAME_DIGEST = 7,       /* runtime: a peer's digest at a checkpoint, please */
    RAFT__FRAME_DIGEST_RESP = 8,  /* runtime: the digest, or why there is none */
};
#define RAFT__FRAME_TYPE_MAX RAFT__FRAME_DIGEST_RESP

enum raft__channel {
    RAFT__CHANNEL_CONTROL = 0,
    RAFT__CHANNEL_BULK = 1,
};
#define RAFT__N_CHANNELS 2

/* Fill the RAFT__FRAME_HEADER bytes at h for a frame of type whose len bytes of payload follow
 * the header in memory (the CRC covers them). */
void raft__frame_seal(uint8_t *h, uint8_t type, uint32_t len);

/* Check a received header (RAFT__FRAME_HEADER bytes at h): magic, version, flags, a known type
 * and a length of at most max_frame. Returns 0 with *type and *len set, or RAFT_EPROTO with the
 * reason in err (errlen bytes, for a log line). The CRC needs the payload: see below. */
int raft__frame_header_check(const uint8_t *h, uint32_t max_frame, uint8_t *type, uint32_t *len,
                             char *err, size_t errlen);

/* Check the CRC32C of header h against the len bytes of payload. Returns 0 or RAFT_EPROTO with
 * the reason in err. */
int raft__frame_crc_check(const uint8_t *h, const uint8_t *payload, uint32_t len, char *err,
                          size_t errlen);

/* Write a whole HELLO frame (header and payload, at most RAFT__FRAME_HEADER + 13 +
 * RAFT__CLUSTER_ID_MAX bytes) into frame: channel ch, node id, cluster[0..cluster_len), with
 * 1 <= cluster_len <= RAFT__CLUSTER_ID_MAX. Returns its size. */
size_t raft__hello_encode(uint8_t *frame, enum raft__channel ch, uint64_t id, const char *cluster,
                          size_t cluster_len);

/* Check a HELLO payload p[0..len) (layout, version, channel, flags, and that its cluster ID is
 * cluster[0..cluster_len)). Returns 0 with the sender's claimed *id and *channel, or
 * RAFT_EPROTO with the reason in err. Whether the id matches a certificate is the caller's. */
int raft__hello_check(const uint8_t *p, uint32_t len, const char *cluster, size_t cluster_len,
                      uint64_t *id, unsigned *channel, char *err, size_t errlen);

/* The channel for a Raft message: BULK for appends that carry entries and for snapshot chunks,
 * CONTROL for everything else. */
enum raft__channel raft__channel_for_msg(const struct raft_msg *m);

/* "control" or "bulk". */
const char *raft__channel_name(enum raft__channel ch);

/* Parse "host:port" where host is a numeric IPv4 address, or a numeric IPv6 address in brackets
 * ("[::1]:7000"); an empty host (":7000") means 0.0.0.0. Names are not resolved, so the loop
 * never blocks on DNS. Writes a struct sockaddr_in or sockaddr_in6 into addr (at least
 * sizeof(struct sockaddr_in6) bytes) and its size into *len. Returns 0 or RAFT_EADDR. */
int raft__address_parse(const char *text, void *addr, unsigned *len);

/* --- the transport ---------------------------------------------------------------------------- */

struct raft__transport;

/* A frame arrived from the authenticated node `from` on channel ch. payload is borrowed for
 * the call. The callback may send, change peers and faults, but must not free the transport.
 * For RAFT frames the runtime decodes the message and must check that m.from == from: the
 * transport vouches for the sender, not for what the payload claims. */
typedef void (*raft__transport_recv_cb)(void *data, uint64_t from, enum raft__channel ch,
                                        uint8_t type, const uint8_t *payload, uint32_t len);

/* One log line, without a trailing newline, borrowed for the call; at the runtime's levels. */
typedef void (*raft__transport_log_cb)(void *data, enum raft_log_level level, const char *line);

struct raft__transport_config {
    uint64_t id;                   /* this node, nonzero; must be the ID in tls's certificate */
    const char *cluster_id;        /* 1..RAFT__CLUSTER_ID_MAX bytes, copied */
    const char *listen_address;    /* "host:port" (port 0: any free port); NULL: do not listen */
    struct raft__tls_ctx *tls;     /* borrowed until raft__transport_free */
    uint32_t max_frame_bytes;      /* payload bytes; 0: RAFT__FRAME_MAX_DEFAULT */
    size_t control_queue_bytes;    /* per peer; 0: RAFT__CONTROL_QUEUE_DEFAULT */
    size_t bulk_queue_bytes;       /* per peer; 0: one maximum frame plus 1 MiB */
    unsigned backoff_min_ms;       /* first reconnect delay; 0: 50 */
    unsigned backoff_max_ms;       /* cap of the doubling; 0: 5000 */
    unsigned handshake_timeout_ms; /* TCP connect + TLS + HELLO; 0: 10000 */
    uint64_t seed;                 /* of the reconnect jitter */
    raft__transport_recv_cb recv;  /* required */
    raft__transport_log_cb log;    /* NULL: no logging */
    void *data;                    /* passed to the callbacks */
};

/* Create a transport on loop and, if listen_address is set, listen on it (SO_REUSEADDR).
 * Returns 0, RAFT_EINVAL (bad configuration), RAFT_EADDR (bad listen address), RAFT_EIO (the
 * socket could not be bound: errno kept), RAFT_ENOMEM. Free with raft__transport_free. */
int raft__transport_new(struct rt_loop *loop, const struct raft__transport_config *cfg,
                        struct raft__transport **out);

/* Close every connection and the listener, drop every queued frame, free t. Not from inside a
 * transport callback. */
void raft__transport_free(struct raft__transport *t);

/* The port the listener is bound to (useful after port 0), or 0 without a listener. */
unsigned raft__transport_port(const struct raft__transport *t);

/* Add peer id at address ("host:port", see raft__address_parse), or change its address: a
 * change closes its outbound connections and dials the new address (queued frames are kept).
 * Connections are dialled at once. Returns 0, RAFT_EINVAL (id 0 or this node), RAFT_EADDR,
 * RAFT_ENOMEM. */
int raft__transport_peer_set(struct raft__transport *t, uint64_t id, const char *address);

/* Queue a frame of type (RAFT__FRAME_RAFT .. RAFT__FRAME_TYPE_MAX) with len bytes of payload
 * (copied) to peer `to` on channel ch. Returns 0 (queued, or silently dropped by a fault hook,
 * as a network would), RAFT_EDROPPED (the queue is full: dropped and counted), RAFT_ETOOBIG
 * (len above the maximum frame size), RAFT_ENOTFOUND (unknown peer), RAFT_EADDR (the peer has
 * no address), RAFT_EINVAL, RAFT_ENOMEM. */
int raft__transport_send(struct raft__transport *t, uint64_t to, enum raft__channel ch,
                         uint8_t type, const void *payload, uint32_t len);

/* Encode m (a RAFT_MSG_SNAPSHOT with its chunk data filled in) straight into a RAFT frame to
 * m->to on raft__channel_for_msg(m). Same returns as raft__transport_send. */
int raft__transport_send_msg(struct raft__transport *t, const struct raft_msg *m);

/* --- fault hooks (tests) ---------------------------------------------------------------------
 * drop: frames to the peer are discarded when sent (as if lost; send still returns 0) and
 * frames from it are discarded when received. Connections stay up, so healing is immediate.
 * delay_ms: each frame sent to the peer waits at least this long before it is written (order is
 * kept). Faults of a peer survive reconnects; they apply to peers added later by ID. */
int raft__transport_fault_set(struct raft__transport *t, uint64_t peer, bool drop,
                              unsigned delay_ms);

/* Replace all faults with those of spec: space- or comma-separated items "drop:ID" and
 * "delay:ID:MS" ("" heals everything). raftfsd reads it from RAFTFS_TRANSPORT_FAULTS. Returns 0
 * or RAFT_EINVAL with err filled in (nothing changed). */
int raft__transport_faults_parse(struct raft__transport *t, const char *spec, char *err,
                                 size_t errlen);

/* --- statistics ------------------------------------------------------------------------------- */

struct raft__peer_stats {
    uint64_t bytes_sent; /* frame bytes (header included) written to TLS */
    uint64_t frames_sent;
    uint64_t bytes_received;
    uint64_t frames_received;    /* delivered to the receive callback */
    uint64_t received_at_ms;     /* CLOCK_MONOTONIC ms of the last one delivered; 0: none yet */
    uint64_t frames_dropped;     /* queue full, or discarded with a failed connection */
    uint64_t frames_faulted;     /* discarded by the drop fault, either direction */
    uint64_t connects;           /* outbound connections that completed the HELLO exchange */
    uint64_t handshake_failures; /* TCP, TLS or HELLO failures while setting up, both ways */
    uint64_t protocol_errors;    /* connections closed for a malformed frame */
    size_t queued_bytes[RAFT__N_CHANNELS];
    bool is_connected[RAFT__N_CHANNELS];   /* outbound connection ready */
    unsigned backoff_ms[RAFT__N_CHANNELS]; /* bound of the next reconnect delay (jittered) */
};

/* Counters of peer id. Returns 0 or RAFT_ENOTFOUND. */
int raft__transport_peer_stats(const struct raft__transport *t, uint64_t id,
                               struct raft__peer_stats *s);

struct raft__transport_stats {
    uint64_t accepted;           /* inbound TCP connections */
    uint64_t refused;            /* inbound connections closed before they were identified */
    unsigned pending_handshakes; /* inbound connections not yet identified */
    unsigned connections;        /* open connections of every kind */
    size_t receive_buffer_bytes; /* held by connections for frames being received */
};

/* Counters of the whole transport. Never fails. */
void raft__transport_stats(const struct raft__transport *t, struct raft__transport_stats *s);

#endif
