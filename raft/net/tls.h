/* Mutual TLS 1.3 for the transport, and the certificate tooling of `raftfs-ctl tls`.
 * raft/net/tls.c is the only file of raftfs that includes OpenSSL; this header exposes plain C.
 *
 * Node names: a node's certificate names it as "raftfs-node-<id>", <id> its decimal server ID
 * (nonzero, no leading zero, at most 2^64-1), in the subject CN or in a DNS subjectAltName.
 * A certificate must name exactly one node ID (it may repeat it); see raft__tls_peer_id. */
#ifndef RAFT_TLS_H
#define RAFT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_TLS_NODE_PREFIX "raftfs-node-"
#define RAFT_TLS_ERROR_MAX   256 /* bytes of an error text buffer, NUL included */

/* --- certificate tooling (any thread; blocking file I/O) --------------------------------------
 * Files are written to a temporary file, synced, then linked into place, so a reader never sees
 * half a file and a failure leaves nothing behind. Keys are mode 0600, certificates 0644.
 * Errors also fill err (errlen bytes, may be 0) with a sentence naming the file and the reason. */

/* Create a cluster CA in dir (created 0700 if missing): an EC P-256 key and a self-signed
 * certificate (CN "raftfs cluster CA", CA:TRUE, keyCertSign and cRLSign, valid 10 years),
 * written as dir/ca.key and dir/ca.crt. Refuses with RAFT_EFILEEXISTS, writing nothing, if either
 * exists and force is false. Errors: RAFT_EFILEEXISTS, RAFT_EIO, RAFT_ETLS, RAFT_EINVAL. */
int raft_tls_ca_create(const char *dir, bool force, char *err, size_t errlen);

struct raft_tls_issue_options {
    const char *const *ips; /* extra IP SANs, IPv4 or IPv6 text; borrowed for the call */
    size_t n_ips;
    const char *const *dns_names; /* extra DNS SANs: letters, digits, '-', '.', a leading "*." */
    size_t n_dns_names;
    unsigned days; /* validity; 0: 1825 (5 years) */
    bool force;    /* overwrite existing files */
};

/* Issue a node certificate for id with the CA in dir (dir/ca.crt, dir/ca.key): a new EC P-256
 * key, CN and DNS SAN "raftfs-node-<id>", the extra SANs of opts (NULL: none), CA:FALSE,
 * digitalSignature, extendedKeyUsage serverAuth and clientAuth; written as dir/<id>.key and
 * dir/<id>.crt. Errors: RAFT_EINVAL (id 0, a malformed IP or DNS name), RAFT_EFILEEXISTS,
 * RAFT_EIO, RAFT_ETLS (the CA cannot be read, or its key does not match its certificate). */
int raft_tls_node_issue(const char *dir, uint64_t id, const struct raft_tls_issue_options *opts,
                        char *err, size_t errlen);

/* Parse name[0..len) as "raftfs-node-<id>". Returns 0 and sets *id, or RAFT_EINVAL. */
int raft_tls_node_name_parse(const char *name, size_t len, uint64_t *id);

/* --- connections (internal to raft/) -----------------------------------------------------------
 * A context holds the cluster CA, the node's certificate and key, and the policy: TLS 1.3 only,
 * peer certificate required and verified against the CA on both sides, no session resumption.
 * A context is immutable once created and may be shared by connections of any thread; a
 * connection belongs to one thread at a time. */

struct raft__tls_ctx;
struct raft__tls_conn;

/* Outcome of a non-blocking operation. */
enum raft__tls_io {
    RAFT__TLS_DONE = 0,   /* completed (read/write: *n > 0 bytes) */
    RAFT__TLS_WANT_READ,  /* retry when the socket is readable */
    RAFT__TLS_WANT_WRITE, /* retry when the socket is writable */
    RAFT__TLS_EOF,        /* the peer closed the connection */
    RAFT__TLS_FAILED,     /* fatal; raft__tls_conn_error says why; only free the connection */
};

/* Load ca_file (PEM, the cluster CA), cert_file (PEM, the node certificate, optionally followed
 * by intermediates) and key_file. cert_file and key_file may both be NULL for a context without
 * an identity (tests of refusal). Returns 0, RAFT_ENOMEM, or RAFT_ETLS with err filled in
 * (file and OpenSSL reason). Free with raft__tls_ctx_free. */
int raft__tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
                      struct raft__tls_ctx **out, char *err, size_t errlen);

/* Free a context. Free its connections first: they use it until raft__tls_conn_free. */
void raft__tls_ctx_free(struct raft__tls_ctx *ctx);

/* Start TLS on a connected socket fd (blocking or not) as server (accepting side) or client.
 * The fd stays the caller's: raft__tls_conn_free does not close it. Writes never raise SIGPIPE.
 * Returns 0, RAFT_ENOMEM or RAFT_ETLS. */
int raft__tls_conn_new(struct raft__tls_ctx *ctx, int fd, bool is_server,
                       struct raft__tls_conn **out);

/* Free a connection; sends a close_notify first if the connection is established and healthy
 * (best effort, never blocks on a non-blocking fd). */
void raft__tls_conn_free(struct raft__tls_conn *c);

/* Advance the handshake. DONE once it has completed, with the peer's certificate verified. */
enum raft__tls_io raft__tls_handshake(struct raft__tls_conn *c);

/* Read up to len bytes into buf; *n is set to the bytes read (0 unless DONE). */
enum raft__tls_io raft__tls_read(struct raft__tls_conn *c, void *buf, size_t len, size_t *n);

/* Write up to len (> 0) bytes of buf; *n is set to the bytes written, which may be fewer than
 * len. After WANT_READ or WANT_WRITE, retry with the same buf and len (OpenSSL's rule); the
 * buffer may move but its contents must not change. */
enum raft__tls_io raft__tls_write(struct raft__tls_conn *c, const void *buf, size_t len, size_t *n);

/* The node ID the verified peer certificate names (see the top of this file). Returns 0, or
 * RAFT_ETLS with the reason in raft__tls_conn_error: no certificate, no node name, or names of
 * different nodes. Only after the handshake completed. */
int raft__tls_peer_id(struct raft__tls_conn *c, uint64_t *id);

/* Why the last operation failed, as a sentence for a log line ("" if nothing failed). Borrowed
 * until the next operation on c. */
const char *raft__tls_conn_error(const struct raft__tls_conn *c);

#endif
