/* raft/net/transport.c: several transports on one event loop in this thread, on 127.0.0.1 with
 * ephemeral ports, with certificates made by raft/net/tls.c in a temporary directory. Frames arrive
 * in order per channel; control frames overtake a huge bulk frame; mutual TLS and the HELLO
 * refuse the wrong peers with a log line; malformed frames from a raw TLS client close only
 * that connection; reconnects; fault hooks. Waits poll a condition with a bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "raft/runtime/loop.h"
#include "raft/raft.h"
#include "raft/net/tls.h"
#include "raft/net/transport.h"
#include "lib/crc32c.h"

#define CLUSTER "test-cluster"

static char dir[64];
static char other_ca[128];
static struct rt_loop *loop;

/* --- nodes ------------------------------------------------------------------------------------ */

struct rec {
    uint64_t from;
    enum raft__channel ch;
    uint8_t type;
    uint32_t len;
    uint32_t fingerprint; /* CRC32C of the payload */
    uint64_t at_ms;
};

struct node {
    uint64_t id;
    struct raft__tls_ctx *tls;
    struct raft__transport *t;
    struct rec *recs;
    size_t n_recs;
    size_t cap_recs;
    char *log; /* every log line, one per line */
    size_t log_len;
    uint8_t last_payload[256]; /* start of the last payload received */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_recv(void *data, uint64_t from, enum raft__channel ch, uint8_t type,
                    const uint8_t *payload, uint32_t len)
{
    struct node *n = data;
    if (n->n_recs == n->cap_recs) {
        n->cap_recs = n->cap_recs ? 2 * n->cap_recs : 256;
        n->recs = realloc(n->recs, n->cap_recs * sizeof *n->recs);
    }
    n->recs[n->n_recs++] = (struct rec){.from = from,
                                        .ch = ch,
                                        .type = type,
                                        .len = len,
                                        .fingerprint = rfs_crc32c(0, payload, len),
                                        .at_ms = now_ms()};
    memcpy(n->last_payload, payload, len < sizeof n->last_payload ? len : sizeof n->last_payload);
}

static void on_log(void *data, enum raft_log_level level, const char *line)
{
    struct node *n = data;
    size_t len = strlen(line);
    n->log = realloc(n->log, n->log_len + len + 2);
    memcpy(n->log + n->log_len, line, len);
    n->log_len += len;
    n->log[n->log_len++] = '\n';
    n->log[n->log_len] = '\0';
    if (getenv("RAFTFS_TEST_VERBOSE"))
        fprintf(stderr, "[%d] %s\n", level, line);
}

static bool log_has(const struct node *n, const char *what)
{
    return n->log != NULL && strstr(n->log, what) != NULL;
}

static struct raft__tls_ctx *ctx_for(const char *ca_dir, const char *name)
{
    char ca[160], crt[160], key[160], err[RAFT_TLS_ERROR_MAX];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir); /* everyone trusts the main CA */
    snprintf(crt, sizeof crt, "%s/%s.crt", ca_dir, name ? name : "");
    snprintf(key, sizeof key, "%s/%s.key", ca_dir, name ? name : "");
    struct raft__tls_ctx *ctx = NULL;
    int rv = raft__tls_ctx_new(ca, name ? crt : NULL, name ? key : NULL, &ctx, err, sizeof err);
    if (rv != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rv, 0);
    return ctx;
}

struct node_opts {
    const char *cert_dir; /* NULL: dir */
    const char *cert;     /* NULL: the node's own ID; "" none */
    const char *cluster;  /* NULL: CLUSTER */
    unsigned port;        /* 0: any */
    size_t control_queue;
    unsigned backoff_max_ms;
};

static void node_start(struct node *n, uint64_t id, const struct node_opts *o)
{
    struct node_opts none = {0};
    if (o == NULL)
        o = &none;
    memset(n, 0, sizeof *n);
    n->id = id;
    char name[32];
    snprintf(name, sizeof name, "%llu", (unsigned long long)id);
    const char *cert = o->cert ? (o->cert[0] ? o->cert : NULL) : name;
    n->tls = ctx_for(o->cert_dir ? o->cert_dir : dir, cert);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%u", o->port);
    struct raft__transport_config cfg = {
        .id = id,
        .cluster_id = o->cluster ? o->cluster : CLUSTER,
        .listen_address = listen,
        .tls = n->tls,
        .control_queue_bytes = o->control_queue,
        .backoff_min_ms = 20,
        .backoff_max_ms = o->backoff_max_ms ? o->backoff_max_ms : 300,
        .handshake_timeout_ms = 3000,
        .seed = 7,
        .recv = on_recv,
        .log = on_log,
        .data = n,
    };
    assert_int_equal(raft__transport_new(loop, &cfg, &n->t), 0);
}

static void node_stop_transport(struct node *n)
{
    raft__transport_free(n->t);
    n->t = NULL;
    raft__tls_ctx_free(n->tls);
    n->tls = NULL;
}

static void node_free(struct node *n)
{
    node_stop_transport(n);
    free(n->recs);
    free(n->log);
}

static void connect_to(struct node *from, const struct node *to)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", raft__transport_port(to->t));
    assert_int_equal(raft__transport_peer_set(from->t, to->id, addr), 0);
}

/* Run the loop until cond(arg) or timeout_ms; returns cond's last value. */
static bool run_until(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (now_ms() > end)
            return false;
        assert_int_equal(rt__loop_run_once(loop, 5), 0);
    }
    return true;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static void run_for(unsigned ms)
{
    run_until(never, NULL, ms);
}

struct count_cond {
    const struct node *n;
    size_t want;
};

static bool has_recs(void *arg)
{
    struct count_cond *c = arg;
    return c->n->n_recs >= c->want;
}

static bool wait_recs(const struct node *n, size_t want, unsigned timeout_ms)
{
    struct count_cond c = {n, want};
    return run_until(has_recs, &c, timeout_ms);
}

struct log_cond {
    const struct node *n;
    const char *what;
};

static bool has_log(void *arg)
{
    struct log_cond *c = arg;
    return log_has(c->n, c->what);
}

static bool wait_log(const struct node *n, const char *what, unsigned timeout_ms)
{
    struct log_cond c = {n, what};
    return run_until(has_log, &c, timeout_ms);
}

/* The line of n's log that contains what, for a second check on the same line. */
static const char *log_line(const struct node *n, const char *what, char *buf, size_t len)
{
    const char *p = n->log ? strstr(n->log, what) : NULL;
    if (p == NULL)
        return "";
    const char *start = p;
    while (start > n->log && start[-1] != '\n')
        start--;
    const char *end = strchr(p, '\n');
    snprintf(buf, len, "%.*s", (int)(end - start), start);
    return buf;
}

static uint8_t *pattern(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len ? len : 1);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
    return p;
}

/* --- setup ------------------------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    char err[RAFT_TLS_ERROR_MAX];
    snprintf(dir, sizeof dir, "/tmp/raftfs-test-transport-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(other_ca, sizeof other_ca, "%s/other", dir);
    const char *ips[] = {"127.0.0.1"};
    struct raft_tls_issue_options o = {.ips = ips, .n_ips = 1};
    if (raft_tls_ca_create(dir, false, err, sizeof err) != 0 ||
        raft_tls_ca_create(other_ca, false, err, sizeof err) != 0 ||
        raft_tls_node_issue(other_ca, 3, &o, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    for (uint64_t id = 1; id <= 4; id++)
        if (raft_tls_node_issue(dir, id, &o, err, sizeof err) != 0) {
            fprintf(stderr, "setup: %s\n", err);
            return -1;
        }
    return rt__loop_new(&loop);
}

static int teardown(void **state)
{
    (void)state;
    rt__loop_free(loop);
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* --- tests ------------------------------------------------------------------------------------ */

static void addresses(void **state)
{
    (void)state;
    struct sockaddr_in6 sa;
    unsigned len;
    assert_int_equal(raft__address_parse("127.0.0.1:7000", &sa, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 7000);
    assert_int_equal(raft__address_parse("[::1]:65535", &sa, &len), 0);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(sa.sin6_family, AF_INET6);
    assert_int_equal(raft__address_parse(":9", &sa, &len), 0);
    const char *bad[] = {"127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "::1:80",
                         "localhost:80",
                         "1.2.3.4:-1",
                         "[::1]:x",
                         "[::1]",
                         "1.2.3.4:80 ",
                         "[1.2.3.4]:80",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(raft__address_parse(bad[i], &sa, &len), RAFT_EADDR);
}

static void channel_choice(void **state)
{
    (void)state;
    struct raft_entry e = {.term = 1, .index = 1, .type = RAFT_ENTRY_NOOP};
    struct raft_msg m = {.type = RAFT_MSG_APPEND};
    assert_int_equal(raft__channel_for_msg(&m), RAFT__CHANNEL_CONTROL);
    m.append.n_entries = 1;
    m.append.entries = &e;
    assert_int_equal(raft__channel_for_msg(&m), RAFT__CHANNEL_BULK);
    m = (struct raft_msg){.type = RAFT_MSG_SNAPSHOT};
    assert_int_equal(raft__channel_for_msg(&m), RAFT__CHANNEL_BULK);
    for (int type = RAFT_MSG_APPEND_RESP; type <= RAFT_MSG_TYPE_MAX; type++) {
        if (type == RAFT_MSG_SNAPSHOT)
            continue;
        m = (struct raft_msg){.type = (enum raft_msg_type)type};
        assert_int_equal(raft__channel_for_msg(&m), RAFT__CHANNEL_CONTROL);
    }
}

static const uint32_t sizes[] = {
    0,     1,     7,      15,      16,    100,           4096,          65535,
    65536, 65537, 200000, 1 << 20, 12345, (1 << 20) + 3, (3 << 20) + 1, 0,
    8};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

static void ordered_delivery(void **state)
{
    (void)state;
    struct node a, b;
    struct node_opts o = {.control_queue = 32u << 20};
    node_start(&a, 1, &o);
    node_start(&b, 2, NULL);
    connect_to(&a, &b);
    uint32_t want[2][N_SIZES];
    for (size_t i = 0; i < N_SIZES; i++) {
        for (int ch = 0; ch < 2; ch++) {
            uint32_t len = sizes[(i + (size_t)ch * 5) % N_SIZES];
            uint8_t *p = pattern(len, i * 2 + (size_t)ch);
            want[ch][i] = rfs_crc32c(0, p, len);
            uint8_t type = ch ? RAFT__FRAME_FORWARD : RAFT__FRAME_CTL;
            assert_int_equal(raft__transport_send(a.t, 2, (enum raft__channel)ch, type, p, len), 0);
            free(p);
        }
    }
    /* A Raft message, encoded straight into its frame; it goes on the bulk channel. */
    uint8_t data[3] = {1, 2, 3};
    struct raft_entry e = {
        .term = 4, .index = 11, .type = RAFT_ENTRY_COMMAND, .len = 3, .data = data};
    struct raft_msg m = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 4};
    m.append =
        (struct raft_msg_append){.prev_index = 10, .prev_term = 3, .n_entries = 1, .entries = &e};
    assert_int_equal(raft__transport_send_msg(a.t, &m), 0);

    assert_true(wait_recs(&b, 2 * N_SIZES + 1, 10000));
    size_t next[2] = {0, 0};
    bool saw_msg = false;
    for (size_t k = 0; k < b.n_recs; k++) {
        const struct rec *r = &b.recs[k];
        assert_int_equal(r->from, 1);
        if (r->type == RAFT__FRAME_RAFT) {
            assert_int_equal(r->ch, RAFT__CHANNEL_BULK);
            assert_int_equal(r->len, raft_msg_encoded_size(&m));
            saw_msg = true;
            continue;
        }
        assert_int_equal(r->type, r->ch ? RAFT__FRAME_FORWARD : RAFT__FRAME_CTL);
        size_t i = next[r->ch]++;
        assert_int_equal(r->len, sizes[(i + (size_t)r->ch * 5) % N_SIZES]);
        assert_int_equal(r->fingerprint, want[r->ch][i]);
    }
    assert_true(saw_msg);
    assert_int_equal(next[0], N_SIZES);
    assert_int_equal(next[1], N_SIZES);

    /* The message decodes into what was sent (it was the last bulk frame). */
    struct raft_msg got;
    size_t len = raft_msg_encoded_size(&m);
    assert_int_equal(raft_msg_decode(b.last_payload, len, &got, NULL), 0);
    assert_int_equal(got.append.prev_index, 10);
    assert_int_equal(got.append.entries[0].len, 3);
    raft_msg_release(&got, NULL);

    struct raft__peer_stats sa, sb;
    assert_int_equal(raft__transport_peer_stats(a.t, 2, &sa), 0);
    assert_int_equal(raft__transport_peer_stats(b.t, 1, &sb), 0);
    assert_int_equal(sa.frames_sent, 2 * N_SIZES + 1);
    assert_int_equal(sb.frames_received, 2 * N_SIZES + 1);
    assert_true(sa.bytes_sent == sb.bytes_received);
    assert_int_equal(sa.connects, 2);
    assert_true(sa.is_connected[0] && sa.is_connected[1]);
    assert_int_equal(sa.frames_dropped, 0);
    node_free(&a);
    node_free(&b);
}

static void control_overtakes_bulk(void **state)
{
    (void)state;
    struct node a, b;
    /* A control queue that could hold the big frame too, so only the channels keep them apart. */
    struct node_opts o = {.control_queue = 64u << 20};
    node_start(&a, 1, &o);
    node_start(&b, 2, NULL);
    connect_to(&a, &b);
    /* Connect both channels first, so the race is between frames, not handshakes. */
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_BULK, RAFT__FRAME_CTL, "x", 1), 0);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_CTL, "x", 1),
                     0);
    assert_true(wait_recs(&b, 2, 5000));

    size_t big = 32u << 20;
    uint8_t *p = pattern(big, 99);
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_BULK, RAFT__FRAME_RAFT, p, (uint32_t)big), 0);
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "vote", 4), 0);
    assert_true(wait_recs(&b, 4, 20000));
    /* The control frame was sent second and arrived first. */
    assert_int_equal(b.recs[2].ch, RAFT__CHANNEL_CONTROL);
    assert_int_equal(b.recs[2].len, 4);
    assert_int_equal(b.recs[3].ch, RAFT__CHANNEL_BULK);
    assert_int_equal(b.recs[3].len, big);
    assert_int_equal(b.recs[3].fingerprint, rfs_crc32c(0, p, big));
    free(p);
    node_free(&a);
    node_free(&b);
}

/* node b dials node a; a must refuse with a log line containing reason (and b gets nothing
 * through). */
static void expect_refused(struct node *a, struct node *b, uint64_t b_dials_id, const char *reason)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", raft__transport_port(a->t));
    assert_int_equal(raft__transport_peer_set(b->t, b_dials_id, addr), 0);
    raft__transport_send(b->t, b_dials_id, RAFT__CHANNEL_CONTROL, RAFT__FRAME_CTL, "hi", 2);
    bool found = wait_log(a, reason, 5000);
    if (!found)
        fprintf(stderr, "log of node %llu:\n%s\n", (unsigned long long)a->id, a->log ? a->log : "");
    assert_true(found);
    char line[1024];
    /* The line names the connection and says what failed. */
    assert_non_null(
        strstr(log_line(a, reason, line, sizeof line), "inbound connection from 127.0.0.1:"));
    run_for(100);
    assert_int_equal(a->n_recs, 0);
    struct raft__transport_stats s;
    raft__transport_stats(a->t, &s);
    assert_true(s.refused >= 1);
    struct raft__peer_stats ps;
    assert_int_equal(raft__transport_peer_stats(b->t, b_dials_id, &ps), 0);
    assert_true(ps.handshake_failures >= 1);
    assert_int_equal(ps.connects, 0);
}

static void refuses_foreign_ca(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    struct node_opts o = {.cert_dir = other_ca};
    node_start(&b, 3, &o);
    expect_refused(&a, &b, 1, "certificate verify failed");
    node_free(&a);
    node_free(&b);
}

static void refuses_claim_of_another_id(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    struct node_opts o = {.cert = "2"};
    node_start(&b, 4, &o); /* says 4 in its HELLO, holds the certificate of 2 */
    expect_refused(&a, &b, 1, "claims to be node 4 but its certificate names node 2");
    node_free(&a);
    node_free(&b);
}

static void refuses_other_cluster(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    struct node_opts o = {.cluster = "another-cluster"};
    node_start(&b, 2, &o);
    expect_refused(&a, &b, 1, "cluster ID mismatch: the peer is in cluster 'another-cluster'");
    node_free(&a);
    node_free(&b);
}

static void refuses_client_without_certificate(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    struct node_opts o = {.cert = ""};
    node_start(&b, 2, &o);
    expect_refused(&a, &b, 1, "did not return a certificate");
    node_free(&a);
    node_free(&b);
}

static void dialer_checks_the_acceptor(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    node_start(&b, 2, NULL);
    /* a believes node 4 listens where node 2 does. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", raft__transport_port(b.t));
    assert_int_equal(raft__transport_peer_set(a.t, 4, addr), 0);
    assert_true(wait_log(&a, "the certificate names node 2, but we dialled node 4", 5000));
    char line[1024];
    assert_non_null(strstr(log_line(&a, "we dialled node 4", line, sizeof line), "peer 4"));
    node_free(&a);
    node_free(&b);
}

/* --- a raw TLS client that speaks the protocol badly ----------------------------------------- */

struct raw {
    int fd;
    struct raft__tls_ctx *ctx;
    struct raft__tls_conn *tls;
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Our own encoding of a frame, from docs/wire-format.md. */
static size_t raw_frame(uint8_t *out, uint8_t type, const void *payload, uint32_t len)
{
    memcpy(out, "RFTS", 4);
    out[4] = 1;
    out[5] = type;
    out[6] = out[7] = 0;
    put32(out + 8, len);
    memcpy(out + 16, payload, len);
    put32(out + 12, rfs_crc32c(rfs_crc32c(0, out, 12), payload, len));
    return 16 + len;
}

static size_t raw_hello(uint8_t *out, uint64_t id, uint8_t channel)
{
    uint8_t p[13 + sizeof CLUSTER];
    p[0] = 1;
    p[1] = channel;
    p[2] = p[3] = 0;
    for (int i = 0; i < 8; i++)
        p[4 + i] = (uint8_t)(id >> (8 * i));
    p[12] = (uint8_t)strlen(CLUSTER);
    memcpy(p + 13, CLUSTER, strlen(CLUSTER));
    return raw_frame(out, RAFT__FRAME_HELLO, p, 13 + (uint32_t)strlen(CLUSTER));
}

static void raw_connect(struct raw *r, unsigned port, const char *cert)
{
    r->ctx = ctx_for(dir, cert);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(r->fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(fcntl(r->fd, F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(raft__tls_conn_new(r->ctx, r->fd, false, &r->tls), 0);
    uint64_t end = now_ms() + 5000;
    enum raft__tls_io io;
    while ((io = raft__tls_handshake(r->tls)) != RAFT__TLS_DONE) {
        assert_true(io == RAFT__TLS_WANT_READ || io == RAFT__TLS_WANT_WRITE);
        assert_true(now_ms() < end);
        rt__loop_run_once(loop, 1);
    }
}

static void raw_write(struct raw *r, const uint8_t *buf, size_t len)
{
    uint64_t end = now_ms() + 5000;
    for (size_t done = 0; done < len;) {
        size_t n;
        enum raft__tls_io io = raft__tls_write(r->tls, buf + done, len - done, &n);
        assert_true(io == RAFT__TLS_DONE || io == RAFT__TLS_WANT_WRITE);
        done += n;
        assert_true(now_ms() < end);
        rt__loop_run_once(loop, 0);
    }
}

/* Read (and discard) until the server closes; true if it did within timeout_ms. */
static bool raw_closed_by_server(struct raw *r, unsigned timeout_ms)
{
    uint64_t end = now_ms() + timeout_ms;
    uint8_t buf[256];
    while (now_ms() < end) {
        size_t n;
        enum raft__tls_io io = raft__tls_read(r->tls, buf, sizeof buf, &n);
        if (io == RAFT__TLS_EOF || io == RAFT__TLS_FAILED)
            return true;
        rt__loop_run_once(loop, 2);
    }
    return false;
}

static void raw_close(struct raw *r)
{
    raft__tls_conn_free(r->tls);
    close(r->fd);
    raft__tls_ctx_free(r->ctx);
}

struct garbage {
    const char *name;
    const char *reason; /* expected in the acceptor's log */
};

static void malformed_frames(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    node_start(&b, 2, NULL);
    connect_to(&b, &a);
    static const struct garbage cases[] = {
        {"garbage before HELLO", "expected a HELLO"},
        {"bad magic", "bad frame magic 0x58585858"},
        {"bad CRC", "bad frame CRC32C"},
        {"bad version", "unsupported frame version 9"},
        {"unknown type", "unknown frame type 77"},
        {"oversize", "exceeds the maximum of 67108864"},
        {"second HELLO", "unexpected second HELLO"},
        {"truncated", "truncated frame: the peer closed after 116 of 1016 bytes"},
        {"huge frame announced", "truncated frame: the peer closed after 65552 of 62914576"},
    };
    uint8_t buf[80000];
    uint8_t payload[65536];
    memset(payload, 0xab, sizeof payload);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct raw r;
        raw_connect(&r, raft__transport_port(a.t), "3");
        size_t n = 0;
        if (i != 0)
            n = raw_hello(buf, 3, 0);
        switch (i) {
        case 0: n += raw_frame(buf + n, RAFT__FRAME_RAFT, "hello?", 6); break;
        case 1:
            n += raw_frame(buf + n, RAFT__FRAME_RAFT, "x", 1);
            memcpy(buf + n - 17, "XXXX", 4);
            break;
        case 2:
            n += raw_frame(buf + n, RAFT__FRAME_RAFT, "abc", 3);
            buf[n - 1] ^= 1;
            break;
        case 3:
            n += raw_frame(buf + n, RAFT__FRAME_RAFT, "x", 1);
            buf[n - 17 + 4] = 9;
            break;
        case 4: n += raw_frame(buf + n, 77, "x", 1); break;
        case 5:
            n += raw_frame(buf + n, RAFT__FRAME_RAFT, "", 0);
            put32(buf + n - 16 + 8, (64u << 20) + 1);
            break;
        case 6: n += raw_hello(buf + n, 3, 1); break;
        case 7:
            n += raw_frame(buf + n, RAFT__FRAME_RAFT, payload, 1000);
            n -= 900; /* 116 of 1016 bytes, then close */
            break;
        case 8:
            /* Announces 60 MiB, sends 64 KiB: the receiver's buffer grows with what arrives. */
            n += raw_frame(buf + n, RAFT__FRAME_RAFT, payload, sizeof payload);
            put32(buf + n - sizeof payload - 16 + 8, 60u << 20);
            break;
        }
        raw_write(&r, buf, n);
        if (i == 8) {
            run_for(100);
            struct raft__transport_stats s;
            raft__transport_stats(a.t, &s);
            assert_true(s.receive_buffer_bytes <= 2 * sizeof payload);
        }
        if (i >= 7) {
            raft__tls_conn_free(r.tls);
            r.tls = NULL;
            shutdown(r.fd, SHUT_RDWR);
        } else {
            assert_true(raw_closed_by_server(&r, 3000));
        }
        bool found = wait_log(&a, cases[i].reason, 3000);
        if (!found)
            fprintf(stderr, "case %s; log:\n%s\n", cases[i].name, a.log);
        assert_true(found);
        char line[1024];
        const char *l = log_line(&a, cases[i].reason, line, sizeof line);
        assert_true(strstr(l, "peer 3 control inbound") || strstr(l, "inbound connection from"));
        raw_close(&r);

        /* The transport keeps serving the well-behaved peer. */
        size_t before = a.n_recs;
        assert_int_equal(
            raft__transport_send(b.t, 1, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "ok", 2), 0);
        assert_true(wait_recs(&a, before + 1, 5000));
        assert_int_equal(a.recs[before].from, 2);
    }
    struct raft__peer_stats ps;
    assert_int_equal(raft__transport_peer_stats(a.t, 3, &ps), 0);
    assert_true(ps.protocol_errors >= 7);
    assert_int_equal(ps.frames_received, 0);
    node_free(&a);
    node_free(&b);
}

/* Peer 2's control channel has reached the 400 ms reconnect cap of reconnects_after_restart. */
static bool backoff_capped(void *arg)
{
    struct raft__peer_stats s;
    return raft__transport_peer_stats(arg, 2, &s) == 0 &&
           s.backoff_ms[RAFT__CHANNEL_CONTROL] >= 400;
}

static void reconnects_after_restart(void **state)
{
    (void)state;
    struct node a, b;
    struct node_opts oa = {.control_queue = 1 << 20, .backoff_max_ms = 400};
    node_start(&a, 1, &oa);
    node_start(&b, 2, NULL);
    connect_to(&a, &b);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "1", 1),
                     0);
    assert_true(wait_recs(&b, 1, 5000));
    unsigned port = raft__transport_port(b.t);

    /* b goes away: a's connection breaks, its queue stays bounded and the excess is dropped. */
    node_stop_transport(&b);
    run_for(100);
    uint8_t *p = pattern(100000, 5);
    int dropped = 0;
    for (int i = 0; i < 40; i++) {
        int rv = raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, p, 100000);
        assert_true(rv == 0 || rv == RAFT_EDROPPED);
        dropped += rv == RAFT_EDROPPED;
    }
    free(p);
    struct raft__peer_stats s;
    assert_int_equal(raft__transport_peer_stats(a.t, 2, &s), 0);
    assert_int_equal(dropped, 30); /* ten frames of 100016 bytes fit in 1 MiB */
    assert_true(s.frames_dropped >= 30);
    assert_true(s.queued_bytes[RAFT__CHANNEL_CONTROL] <= 1 << 20);
    assert_false(s.is_connected[RAFT__CHANNEL_CONTROL]);
    /* Failed dials double the delay up to the cap, and more failures keep it there. (A
     * wall-clock bound on the reconnect would test the machine's load, not the transport.) */
    assert_true(run_until(backoff_capped, a.t, 10000));
    run_for(1000);
    assert_int_equal(raft__transport_peer_stats(a.t, 2, &s), 0);
    assert_int_equal(s.backoff_ms[RAFT__CHANNEL_CONTROL], 400);

    /* b comes back on the same port: traffic resumes. */
    struct node_opts ob = {.port = port};
    struct node b2;
    node_start(&b2, 2, &ob);
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "back", 4), 0);
    size_t n_before = b2.n_recs;
    assert_true(wait_recs(&b2, n_before + 1, 5000));
    /* Everything queued arrives, ending with the last frame sent. */
    uint64_t end = now_ms() + 5000;
    while ((b2.n_recs == 0 || b2.recs[b2.n_recs - 1].len != 4) && now_ms() < end)
        rt__loop_run_once(loop, 5);
    assert_int_equal(b2.recs[b2.n_recs - 1].len, 4);
    assert_int_equal(raft__transport_peer_stats(a.t, 2, &s), 0);
    assert_true(s.connects >= 2);
    node_free(&a);
    node_free(&b);
    node_free(&b2);
}

static void fault_hooks(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    node_start(&b, 2, NULL);
    connect_to(&a, &b);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "1", 1),
                     0);
    assert_true(wait_recs(&b, 1, 5000));

    /* Outbound drop: sends succeed, nothing arrives. */
    assert_int_equal(raft__transport_fault_set(a.t, 2, true, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "x", 1), 0);
    run_for(200);
    assert_int_equal(b.n_recs, 1);
    struct raft__peer_stats s;
    assert_int_equal(raft__transport_peer_stats(a.t, 2, &s), 0);
    assert_int_equal(s.frames_faulted, 5);

    /* Heal: delivery resumes at once. */
    assert_int_equal(raft__transport_fault_set(a.t, 2, false, 0), 0);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "2", 1),
                     0);
    assert_true(wait_recs(&b, 2, 2000));

    /* Inbound drop, set through the spec string on the receiver. */
    char err[128];
    assert_int_equal(raft__transport_faults_parse(b.t, "drop:1", err, sizeof err), 0);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "3", 1),
                     0);
    run_for(200);
    assert_int_equal(b.n_recs, 2);
    assert_int_equal(raft__transport_peer_stats(b.t, 1, &s), 0);
    assert_int_equal(s.frames_faulted, 1);
    assert_int_equal(raft__transport_faults_parse(b.t, "", err, sizeof err), 0);

    /* Delay: long enough that a healed send beats it even on a loaded machine. */
    assert_int_equal(raft__transport_faults_parse(a.t, "delay:2:1000", err, sizeof err), 0);
    uint64_t start = now_ms();
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "4", 1),
                     0);
    assert_true(wait_recs(&b, 3, 5000));
    assert_true(b.recs[2].at_ms - start >= 1000);
    assert_int_equal(raft__transport_faults_parse(a.t, "", err, sizeof err), 0);
    start = now_ms();
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "5", 1),
                     0);
    assert_true(wait_recs(&b, 4, 5000));
    assert_true(b.recs[3].at_ms - start < 1000);

    /* Bad specs change nothing. */
    assert_int_equal(raft__transport_faults_parse(a.t, "drop:2 drop:x", err, sizeof err),
                     RAFT_EINVAL);
    assert_non_null(strstr(err, "drop:x"));
    assert_int_equal(raft__transport_faults_parse(a.t, "delay:2", err, sizeof err), RAFT_EINVAL);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "6", 1),
                     0);
    assert_true(wait_recs(&b, 5, 2000));
    node_free(&a);
    node_free(&b);
}

static void address_change(void **state)
{
    (void)state;
    struct node a, b;
    node_start(&a, 1, NULL);
    node_start(&b, 2, NULL);
    /* First a wrong address (nothing listens on port 1), then the right one. */
    assert_int_equal(raft__transport_peer_set(a.t, 2, "127.0.0.1:1"), 0);
    assert_true(wait_log(&a,
                         "peer 2 control outbound (127.0.0.1:1): connection set-up failed: "
                         "connect: Connection refused",
                         3000));
    connect_to(&a, &b);
    assert_true(wait_log(&a, "peer 2 control: now at 127.0.0.1:", 100));
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "moved", 5), 0);
    assert_true(wait_recs(&b, 1, 3000));
    struct raft__peer_stats s;
    assert_int_equal(raft__transport_peer_stats(a.t, 2, &s), 0);
    assert_true(s.handshake_failures >= 2); /* both channels failed at the old address */
    assert_int_equal(s.connects, 2);
    node_free(&a);
    node_free(&b);
}

static void over_ipv6(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool has_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (probe >= 0)
        close(probe);
    if (!has_v6) {
        fprintf(stderr, "over_ipv6: skipped: this machine has no IPv6 loopback (::1)\n");
        skip();
    }
    struct node a, b;
    node_start(&a, 1, NULL);
    char err[RAFT_TLS_ERROR_MAX], ca[160], crt[160], key[160];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/2.crt", dir);
    snprintf(key, sizeof key, "%s/2.key", dir);
    memset(&b, 0, sizeof b);
    b.id = 2;
    assert_int_equal(raft__tls_ctx_new(ca, crt, key, &b.tls, err, sizeof err), 0);
    struct raft__transport_config cfg = {.id = 2,
                                         .cluster_id = CLUSTER,
                                         .listen_address = "[::1]:0",
                                         .tls = b.tls,
                                         .recv = on_recv,
                                         .log = on_log,
                                         .data = &b};
    assert_int_equal(raft__transport_new(loop, &cfg, &b.t), 0);
    char addr[32];
    snprintf(addr, sizeof addr, "[::1]:%u", raft__transport_port(b.t));
    assert_int_equal(raft__transport_peer_set(a.t, 2, addr), 0);
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "six", 3), 0);
    assert_true(wait_recs(&b, 1, 5000));
    assert_int_equal(b.recs[0].from, 1);
    node_free(&a);
    node_free(&b);
}

static void send_errors(void **state)
{
    (void)state;
    struct node a;
    node_start(&a, 1, NULL);
    assert_int_equal(raft__transport_send(a.t, 9, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "x", 1),
                     RAFT_ENOTFOUND);
    assert_int_equal(raft__transport_peer_set(a.t, 1, "127.0.0.1:1"), RAFT_EINVAL);
    assert_int_equal(raft__transport_peer_set(a.t, 2, "nowhere:1"), RAFT_EADDR);
    assert_int_equal(raft__transport_peer_set(a.t, 2, "127.0.0.1:1"), 0);
    assert_int_equal(raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_HELLO, "x", 1),
                     RAFT_EINVAL);
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_TYPE_MAX + 1, "x", 1),
        RAFT_EINVAL);
    assert_int_equal(
        raft__transport_send(a.t, 2, RAFT__CHANNEL_CONTROL, RAFT__FRAME_RAFT, "x", (64u << 20) + 1),
        RAFT_ETOOBIG);
    run_for(20);
    node_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses),
        cmocka_unit_test(channel_choice),
        cmocka_unit_test(ordered_delivery),
        cmocka_unit_test(control_overtakes_bulk),
        cmocka_unit_test(refuses_foreign_ca),
        cmocka_unit_test(refuses_claim_of_another_id),
        cmocka_unit_test(refuses_other_cluster),
        cmocka_unit_test(refuses_client_without_certificate),
        cmocka_unit_test(dialer_checks_the_acceptor),
        cmocka_unit_test(malformed_frames),
        cmocka_unit_test(reconnects_after_restart),
        cmocka_unit_test(fault_hooks),
        cmocka_unit_test(address_change),
        cmocka_unit_test(over_ipv6),
        cmocka_unit_test(send_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
