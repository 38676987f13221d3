/* rawpeer: a misbehaving peer for the end-to-end tests (test/bats/0120-refusals.bats). It dials a
 * node over TLS with a valid certificate, optionally completes the HELLO exchange, then sends
 * one malformed frame and checks that the node closes the connection. Frames are built here from
 * docs/wire-format.md, independently of raft/net/transport.c. Not installed.
 *
 *   rawpeer --tls-dir DIR --id N --connect HOST:PORT --send WHAT [--cluster-id NAME/EPOCH]
 *           [--timeout-ms MS]
 *
 * WHAT: bad-magic, bad-version, bad-crc, oversize (a header announcing 4 GiB - 1 of payload),
 * bad-type, no-hello (a RAFT frame where the HELLO belongs), bad-payload (a well-formed RAFT
 * frame whose payload is no Raft message: the transport must deliver it and keep the
 * connection). Every WHAT but no-hello first sends a valid HELLO as node N and waits for the
 * answer.
 *
 * Exit status: 0 when the node behaved (closed the connection within the timeout, default
 * 5000 ms; for bad-payload, kept it open that long), 1 when it did not, 2 for a usage or set-up
 * error (connect, TLS, a HELLO not answered). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "raft/net/tls.h"
#include "raft/net/transport.h"
#include "lib/crc32c.h"

#define HEADER 16

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A frame of type with len bytes of payload at buf + HEADER; returns its size. */
static size_t frame(uint8_t *buf, uint8_t type, uint32_t len)
{
    put32(buf, 0x53544652u); /* "RFTS" */
    buf[4] = 1;
    buf[5] = type;
    buf[6] = buf[7] = 0;
    put32(buf + 8, len);
    uint32_t crc = rfs_crc32c(0, buf, 12);
    put32(buf + 12, rfs_crc32c(crc, buf + HEADER, len));
    return HEADER + (size_t)len;
}

static size_t hello(uint8_t *buf, uint64_t id, const char *cluster)
{
    uint8_t *p = buf + HEADER;
    size_t n = strlen(cluster);
    p[0] = 1; /* protocol version */
    p[1] = 0; /* control channel */
    p[2] = p[3] = 0;
    put64(p + 4, id);
    p[12] = (uint8_t)n;
    memcpy(p + 13, cluster, n);
    return frame(buf, 1, (uint32_t)(13 + n));
}

static int write_all(struct raft__tls_conn *c, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n;
        if (raft__tls_write(c, buf, len, &n) != RAFT__TLS_DONE)
            return -1;
        buf += n;
        len -= n;
    }
    return 0;
}

/* Read exactly len bytes. Returns 0, or the raft__tls_io that stopped it. */
static int read_all(struct raft__tls_conn *c, uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n;
        enum raft__tls_io r = raft__tls_read(c, buf, len, &n);
        if (r != RAFT__TLS_DONE)
            return (int)r;
        buf += n;
        len -= n;
    }
    return 0;
}

/* The HELLO exchange (unless no-hello), the malformed frame, and the node's reaction.
 * Returns the exit status. */
static int talk(struct raft__tls_conn *c, const char *what, uint64_t id, const char *cluster)
{
    static uint8_t buf[HEADER + 256];
    if (strcmp(what, "no-hello") != 0) {
        size_t n = hello(buf, id, cluster);
        uint8_t answer[HEADER + 13 + RAFT__CLUSTER_ID_MAX];
        if (write_all(c, buf, n) != 0 || read_all(c, answer, HEADER + 13) != 0) {
            fprintf(stderr, "rawpeer: no HELLO answer: %s\n", raft__tls_conn_error(c));
            return 2;
        }
        printf("HELLO answered by node %" PRIu64 "\n", get64(answer + HEADER + 4));
        size_t rest = answer[HEADER + 12];
        if (rest > RAFT__CLUSTER_ID_MAX || read_all(c, answer + HEADER + 13, rest) != 0) {
            fprintf(stderr, "rawpeer: malformed HELLO answer\n");
            return 2;
        }
    }

    /* The malformed frame: a small RAFT frame, spoilt as asked. */
    memset(buf + HEADER, 0xA5, 32);
    size_t n = frame(buf, 2, 32);
    if (strcmp(what, "bad-magic") == 0) {
        memcpy(buf, "XXXX", 4);
    } else if (strcmp(what, "bad-version") == 0) {
        buf[4] = 9;
    } else if (strcmp(what, "bad-type") == 0) {
        buf[5] = 200;
    } else if (strcmp(what, "bad-crc") == 0) {
        buf[12] ^= 1;
    } else if (strcmp(what, "oversize") == 0) {
        put32(buf + 8, 0xFFFFFFFFu); /* only the header is sent */
        put32(buf + 12, rfs_crc32c(0, buf, 12));
        n = HEADER;
    }
    bool want_open = strcmp(what, "bad-payload") == 0;
    if (write_all(c, buf, n) != 0) {
        /* The node may already have closed, before we finished writing. */
        printf("closed by the node while sending\n");
        return want_open ? 1 : 0;
    }

    /* The node sends nothing after its HELLO answer: the next read ends with its close. */
    uint8_t byte;
    int r = read_all(c, &byte, 1);
    bool is_closed = r == RAFT__TLS_EOF || r == RAFT__TLS_FAILED;
    bool is_open = r == RAFT__TLS_WANT_READ || r == RAFT__TLS_WANT_WRITE;
    printf("%s\n", is_closed ? "closed by the node"
                   : is_open ? "still open"
                             : "the node sent data");
    return (want_open ? is_open : is_closed) ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: rawpeer --tls-dir DIR --id N --connect HOST:PORT --send WHAT "
                    "[--cluster-id NAME] [--timeout-ms MS]\n");
}

int main(int argc, char **argv)
{
    const char *tls_dir = NULL, *address = NULL, *what = NULL, *cluster = "raftfs-test/0";
    uint64_t id = 0;
    long timeout_ms = 5000;
    static const struct option longopts[] = {
        {"tls-dir", required_argument, NULL, 't'},
        {"id", required_argument, NULL, 'i'},
        {"connect", required_argument, NULL, 'c'},
        {"send", required_argument, NULL, 's'},
        {"cluster-id", required_argument, NULL, 'C'},
        {"timeout-ms", required_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 't': tls_dir = optarg; break;
        case 'i': id = strtoull(optarg, NULL, 10); break;
        case 'c': address = optarg; break;
        case 's': what = optarg; break;
        case 'C': cluster = optarg; break;
        case 'T': timeout_ms = strtol(optarg, NULL, 10); break;
        default: usage(); return 2;
        }
    }
    static const char *const kinds[] = {"bad-magic", "bad-version", "bad-type",    "bad-crc",
                                        "oversize",  "no-hello",    "bad-payload", NULL};
    bool is_known = false;
    for (int i = 0; what != NULL && kinds[i] != NULL; i++)
        is_known = is_known || strcmp(what, kinds[i]) == 0;
    if (tls_dir == NULL || id == 0 || address == NULL || !is_known || timeout_ms <= 0 ||
        strlen(cluster) == 0 || strlen(cluster) > RAFT__CLUSTER_ID_MAX) {
        usage();
        return 2;
    }

    char ca[4096], cert[4096], key[4096], err[RAFT_TLS_ERROR_MAX];
    snprintf(ca, sizeof ca, "%s/ca.crt", tls_dir);
    snprintf(cert, sizeof cert, "%s/%" PRIu64 ".crt", tls_dir, id);
    snprintf(key, sizeof key, "%s/%" PRIu64 ".key", tls_dir, id);
    struct raft__tls_ctx *ctx;
    if (raft__tls_ctx_new(ca, cert, key, &ctx, err, sizeof err) != 0) {
        fprintf(stderr, "rawpeer: %s\n", err);
        return 2;
    }
    struct sockaddr_storage ss;
    unsigned salen;
    int fd = -1;
    if (raft__address_parse(address, &ss, &salen) != 0 ||
        (fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&ss, salen) != 0) {
        fprintf(stderr, "rawpeer: connect %s: %s\n", address, strerror(errno));
        if (fd >= 0)
            close(fd);
        raft__tls_ctx_free(ctx);
        return 2;
    }
    /* Blocking I/O with a bound: a read that times out reports "want read". */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct raft__tls_conn *c = NULL;
    if (raft__tls_conn_new(ctx, fd, false, &c) != 0 || raft__tls_handshake(c) != RAFT__TLS_DONE) {
        fprintf(stderr, "rawpeer: TLS handshake with %s failed: %s\n", address,
                c != NULL ? raft__tls_conn_error(c) : "out of memory");
        raft__tls_conn_free(c);
        close(fd);
        raft__tls_ctx_free(ctx);
        return 2;
    }

    int status = talk(c, what, id, cluster);
    raft__tls_conn_free(c);
    close(fd);
    raft__tls_ctx_free(ctx);
    return status;
}
