/* The transport: framed messages over mutual TLS between nodes, on the runtime's event loop
 * (raft/net/transport.h; the wire format is in docs/wire-format.md).
 *
 * Design notes:
 *  1. A connection (struct conn) belongs to one (peer, channel) once identified: outbound ones
 *     from the start (we dialled that peer), inbound ones after a valid HELLO. An inbound
 *     connection that is not identified yet has no peer and counts as a pending handshake.
 *  2. Closing a connection never frees it at once: it goes to a list freed by a zero-delay timer,
 *     so a callback further up the stack (a read loop that just delivered a frame) can still
 *     look at it and see is_closed. The same holds for removed peers.
 *  3. The send queue of a (peer, channel) belongs to the peer, not to the connection. The frame
 *     at its head may be partly written to the current outbound connection (write_off) or owed a
 *     retry with the same bytes (OpenSSL's rule after WANT_READ/WANT_WRITE); such a frame is
 *     never freed while that connection lives.
 *  4. Memory: a connection reads at most one frame at a time into a buffer that grows with the
 *     bytes actually received, up to the maximum frame size; queues are bounded in bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "raft/net/transport.h"

#define READ_BUDGET         (1u << 20) /* bytes read per readiness callback of a connection */
#define WRITE_BUDGET        (4u << 20) /* bytes written per callback */
#define PAYLOAD_CHUNK       (64u << 10)
#define HELLO_MAX           (13 + RAFT__CLUSTER_ID_MAX)
#define MAX_PENDING_INBOUND 64
#define ACCEPT_BATCH        32
#define ACCEPT_PAUSE_MS     100
#define REMOTE_MAX          64

enum conn_state {
    CONN_CONNECTING, /* outbound TCP connect in progress */
    CONN_HANDSHAKE,  /* TLS handshake */
    CONN_HELLO,      /* waiting for the HELLO (inbound) or its answer (outbound) */
    CONN_READY,
};

enum failure {
    FAIL_SETUP,    /* while setting up: counts as a handshake failure */
    FAIL_PROTOCOL, /* a malformed frame */
    FAIL_IO,       /* the connection broke */
};

struct frame {
    struct frame *next;
    uint64_t not_before; /* loop time before which it is not written (delay fault) */
    uint32_t size;       /* header + payload */
    uint8_t bytes[];
};

struct peer;

struct conn {
    struct raft__transport *t;
    struct conn *next; /* t->conns or t->dead */
    struct conn *prev;
    struct peer *peer; /* NULL: inbound and not identified yet */
    enum raft__channel ch;
    bool is_outbound;
    bool is_closed;
    enum conn_state state;
    int fd;
    struct rt_watch watch;
    struct rt_timer setup_timer;
    struct raft__tls_conn *tls;
    enum raft__tls_io handshake_want;
    uint64_t cert_id; /* inbound: the node the peer certificate names */
    char remote[REMOTE_MAX];

    /* reading one frame */
    uint8_t hdr[RAFT__FRAME_HEADER];
    size_t hdr_got;
    uint8_t *payload;
    size_t payload_cap;
    uint32_t payload_len;
    size_t payload_got;

    /* writing: the HELLO first, then (outbound) the channel's queue */
    uint8_t hello[RAFT__FRAME_HEADER + HELLO_MAX];
    size_t hello_len;
    size_t hello_sent;
    size_t write_off;      /* bytes of the queue's head frame written on this connection */
    bool is_write_retry;   /* the last write asked to be retried with the same bytes */
    bool write_wants_read; /* ... once the socket is readable */
};

struct chan {
    struct peer *peer;
    enum raft__channel id;
    struct frame *head;
    struct frame *tail;
    size_t queued;
    size_t limit;
    struct conn *out;
    struct conn *in;
    struct rt_timer retry; /* reconnect */
    struct rt_timer delay; /* the delay fault's wake-up */
    unsigned backoff;      /* ms, the next reconnect delay before jitter */
    unsigned failures;     /* consecutive failed dials, to keep the log quiet */
    char last_failure[48]; /* the start of the last failed dial's reason */
};

struct peer {
    struct raft__transport *t;
    struct peer *next;
    uint64_t id;
    bool has_address;
    char address[RAFT_ADDRESS_MAX];
    struct sockaddr_storage sa;
    unsigned salen;
    struct chan ch[RAFT__N_CHANNELS];
    struct raft__peer_stats stats;
};

struct fault {
    struct fault *next;
    uint64_t peer;
    bool drop;
    unsigned delay_ms;
};

struct raft__transport {
    struct rt_loop *loop;
    uint64_t id;
    char cluster_id[RAFT__CLUSTER_ID_MAX + 1];
    size_t cluster_len;
    struct raft__tls_ctx *tls;
    uint32_t max_frame;
    size_t queue_limit[RAFT__N_CHANNELS];
    unsigned backoff_min;
    unsigned backoff_max;
    unsigned setup_timeout;
    uint64_t rng;
    raft__transport_recv_cb recv;
    raft__transport_log_cb log;
    void *data;

    int listen_fd;
    unsigned port;
    struct rt_watch listen_watch;
    struct rt_timer listen_pause;

    struct peer *peers;
    struct conn *conns;
    struct fault *faults;
    struct conn *dead;
    struct rt_timer reaper;
    struct raft__transport_stats stats;
};

static void conn_update(struct conn *c);
static void dial(struct chan *ch);

/* --- small helpers ---------------------------------------------------------------------------- */

static uint64_t next_random(struct raft__transport *t)
{
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

const char *raft__channel_name(enum raft__channel ch)
{
    return ch == RAFT__CHANNEL_BULK ? "bulk" : "control";
}

enum raft__channel raft__channel_for_msg(const struct raft_msg *m)
{
    if ((m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) || m->type == RAFT_MSG_SNAPSHOT)
        return RAFT__CHANNEL_BULK;
    return RAFT__CHANNEL_CONTROL;
}

int raft__address_parse(const char *text, void *addr, unsigned *len)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon[1] == '\0')
        return RAFT_EADDR;
    char host[64];
    size_t hlen = (size_t)(colon - text);
    bool is_v6 = hlen >= 2 && text[0] == '[' && colon[-1] == ']';
    if (is_v6) {
        text++;
        hlen -= 2;
    }
    if (hlen >= sizeof host)
        return RAFT_EADDR;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || port > 65535 || colon[1] < '0' || colon[1] > '9')
        return RAFT_EADDR;
    if (is_v6) {
        struct sockaddr_in6 *s6 = addr;
        memset(s6, 0, sizeof *s6);
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
            return RAFT_EADDR;
        *len = sizeof *s6;
        return 0;
    }
    struct sockaddr_in *s4 = addr;
    memset(s4, 0, sizeof *s4);
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    if (hlen == 0)
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return RAFT_EADDR;
    *len = sizeof *s4;
    return 0;
}

static void format_sockaddr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(out, len, "[%s]:%u", ip, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(out, len, "%s:%u", ip, ntohs(s4->sin_port));
    }
}

/* --- logging ---------------------------------------------------------------------------------- */

static void vlog_line(struct raft__transport *t, enum raft_log_level level, const char *prefix,
                      const char *fmt, va_list ap)
{
    if (t->log == NULL)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "transport %" PRIu64 ": %s", t->id, prefix);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    t->log(t->data, level, line);
}

static void tlog(struct raft__transport *t, enum raft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void tlog(struct raft__transport *t, enum raft_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_line(t, level, "", fmt, ap);
    va_end(ap);
}

static void conn_log(struct conn *c, enum raft_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Lines about a connection name the peer, the channel, the direction and the address. */
static void conn_log(struct conn *c, enum raft_log_level level, const char *fmt, ...)
{
    char prefix[160];
    if (c->peer != NULL)
        snprintf(prefix, sizeof prefix, "peer %" PRIu64 " %s %s (%s): ", c->peer->id,
                 raft__channel_name(c->ch), c->is_outbound ? "outbound" : "inbound", c->remote);
    else if (c->cert_id != 0)
        snprintf(prefix, sizeof prefix,
                 "inbound connection from %s (certificate of node %" PRIu64 "): ", c->remote,
                 c->cert_id);
    else
        snprintf(prefix, sizeof prefix, "inbound connection from %s: ", c->remote);
    va_list ap;
    va_start(ap, fmt);
    vlog_line(c->t, level, prefix, fmt, ap);
    va_end(ap);
}

/* --- peers, queues and faults ----------------------------------------------------------------- */

static struct peer *peer_find(const struct raft__transport *t, uint64_t id)
{
    for (struct peer *p = t->peers; p != NULL; p = p->next)
        if (p->id == id)
            return p;
    return NULL;
}

static const struct fault *fault_find(const struct raft__transport *t, uint64_t id)
{
    for (const struct fault *f = t->faults; f != NULL; f = f->next)
        if (f->peer == id)
            return f;
    return NULL;
}

static bool is_dropped(const struct raft__transport *t, uint64_t id)
{
    const struct fault *f = fault_find(t, id);
    return f != NULL && f->drop;
}

/* Is the head frame owed to the current outbound connection (design note 3)? */
static bool head_is_pinned(const struct chan *ch)
{
    return ch->out != NULL && (ch->out->write_off > 0 || ch->out->is_write_retry);
}

/* Drop every queued frame except a pinned head; counts them as dropped. */
static void chan_discard(struct chan *ch)
{
    struct frame *keep = head_is_pinned(ch) ? ch->head : NULL;
    struct frame *f = keep ? keep->next : ch->head;
    while (f != NULL) {
        struct frame *next = f->next;
        ch->queued -= f->size;
        ch->peer->stats.frames_dropped++;
        free(f);
        f = next;
    }
    ch->head = ch->tail = keep;
    if (keep)
        keep->next = NULL;
}

static void chan_pop(struct chan *ch)
{
    struct frame *f = ch->head;
    ch->head = f->next;
    if (ch->head == NULL)
        ch->tail = NULL;
    ch->queued -= f->size;
    free(f);
}

static void on_retry(struct rt_timer *timer)
{
    dial(timer->data);
}

static void on_delay(struct rt_timer *timer)
{
    struct chan *ch = timer->data;
    if (ch->out != NULL)
        conn_update(ch->out);
}

static void schedule_dial(struct chan *ch)
{
    struct raft__transport *t = ch->peer->t;
    unsigned b = ch->backoff;
    uint64_t delay = b / 2 + next_random(t) % (b / 2 + 1); /* "equal jitter": [b/2, b] */
    ch->backoff = b >= t->backoff_max / 2 ? t->backoff_max : b * 2;
    ch->retry.data = ch;
    if (rt__timer_start(t->loop, &ch->retry, delay, 0, on_retry) != 0)
        tlog(t, RAFT_LOG_ERROR, "peer %" PRIu64 " %s: out of memory arming the reconnect timer",
             ch->peer->id, raft__channel_name(ch->id));
}

static struct peer *peer_new(struct raft__transport *t, uint64_t id)
{
    struct peer *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->t = t;
    p->id = id;
    for (int i = 0; i < RAFT__N_CHANNELS; i++) {
        struct chan *ch = &p->ch[i];
        ch->peer = p;
        ch->id = (enum raft__channel)i;
        ch->limit = t->queue_limit[i];
        ch->backoff = t->backoff_min;
        rt__timer_init(&ch->retry);
        rt__timer_init(&ch->delay);
        ch->delay.data = ch;
    }
    p->next = t->peers;
    t->peers = p;
    return p;
}

/* --- connections: life cycle ------------------------------------------------------------------ */

static void on_reap(struct rt_timer *timer)
{
    struct raft__transport *t = timer->data;
    while (t->dead != NULL) {
        struct conn *c = t->dead;
        t->dead = c->next;
        free(c->payload); /* kept until now: a receive callback may have closed c */
        free(c);
    }
}

/* Close c (design note 2). An outbound connection takes its channel's queue with it unless
 * keep_queue (the frames were meant for a connection that failed; Raft resends what matters),
 * and the channel redials after a backoff. */
static void conn_close(struct conn *c, bool keep_queue)
{
    struct raft__transport *t = c->t;
    if (c->is_closed)
        return;
    struct chan *ch = c->peer ? &c->peer->ch[c->ch] : NULL;
    if (ch != NULL && ch->out == c && !keep_queue)
        chan_discard(ch); /* before c->write_off goes: a pinned head is dropped below */
    c->is_closed = true;
    rt__watch_stop(&c->watch);
    rt__timer_stop(&c->setup_timer);
    raft__tls_conn_free(c->tls);
    c->tls = NULL;
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = t->dead;
    t->dead = c;
    t->stats.connections--;
    if (!c->is_outbound && c->state != CONN_READY)
        t->stats.pending_handshakes--;
    if (ch != NULL && ch->out == c) {
        ch->out = NULL;
        rt__timer_stop(&ch->delay);
        if (!keep_queue && ch->head != NULL) {
            ch->peer->stats.frames_dropped++;
            chan_pop(ch); /* the head that was pinned to c */
        }
        if (ch->peer->has_address)
            schedule_dial(ch);
    }
    if (ch != NULL && ch->in == c)
        ch->in = NULL;
    rt__timer_start(t->loop, &t->reaper, 0, 0, on_reap);
}

static void conn_fail(struct conn *c, enum failure kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Log why c fails (one line naming the peer and the reason), count it, close it. */
static void conn_fail(struct conn *c, enum failure kind, const char *fmt, ...)
{
    if (c->is_closed)
        return;
    char reason[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    enum raft_log_level level = RAFT_LOG_WARN;
    struct chan *ch = c->peer ? &c->peer->ch[c->ch] : NULL;
    if (kind == FAIL_SETUP && c->is_outbound && ch != NULL) {
        /* A peer that stays down: only its first failure is a warning, and a failure for
         * another reason (it came up with a certificate this node refuses). */
        if (ch->failures++ > 0 &&
            strncmp(ch->last_failure, reason, sizeof ch->last_failure - 1) == 0)
            level = RAFT_LOG_DEBUG;
        size_t n = strnlen(reason, sizeof ch->last_failure - 1);
        memcpy(ch->last_failure, reason, n);
        ch->last_failure[n] = '\0';
    }
    if (kind == FAIL_IO)
        level = RAFT_LOG_INFO;
    const char *what = kind == FAIL_SETUP ? "connection set-up failed" : "closed";
    conn_log(c, level, "%s: %s", what, reason);
    if (kind == FAIL_PROTOCOL && c->peer != NULL)
        c->peer->stats.protocol_errors++;
    if (kind == FAIL_SETUP && c->peer != NULL)
        c->peer->stats.handshake_failures++;
    if (c->peer == NULL)
        c->t->stats.refused++;
    conn_close(c, false);
}

static void on_setup_timeout(struct rt_timer *timer)
{
    struct conn *c = timer->data;
    static const char *const names[] = {"TCP connect", "TLS handshake", "HELLO", "ready"};
    conn_fail(c, FAIL_SETUP, "set-up timed out after %u ms (in %s)", c->t->setup_timeout,
              names[c->state]);
}

static void on_conn_event(struct rt_watch *w, unsigned events);

static void set_socket_options(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Notice a peer that vanished (power loss) within seconds, not TCP's minutes: keepalive
     * probes on an idle connection, and a bound on unacknowledged data on a busy one. */
    int idle = 5, interval = 2, count = 3;
    unsigned user_timeout = 15000;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
}

/* A connection on fd (owned from now on: closed on failure too). */
static struct conn *conn_new(struct raft__transport *t, int fd, bool is_outbound,
                             enum conn_state state, unsigned events)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return NULL;
    }
    c->t = t;
    c->fd = fd;
    c->is_outbound = is_outbound;
    c->state = state;
    rt__timer_init(&c->setup_timer);
    c->watch.data = c;
    c->setup_timer.data = c;
    if (rt__watch_start(t->loop, &c->watch, fd, events, on_conn_event) != 0 ||
        rt__timer_start(t->loop, &c->setup_timer, t->setup_timeout, 0, on_setup_timeout) != 0) {
        rt__watch_stop(&c->watch);
        close(fd);
        free(c);
        return NULL;
    }
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    t->stats.connections++;
    return c;
}

static void dial(struct chan *ch)
{
    struct peer *p = ch->peer;
    struct raft__transport *t = p->t;
    if (ch->out != NULL || !p->has_address)
        return;
    rt__timer_stop(&ch->retry);
    int fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tlog(t, RAFT_LOG_WARN, "peer %" PRIu64 " %s: socket: %s", p->id, raft__channel_name(ch->id),
             strerror(errno));
        schedule_dial(ch);
        return;
    }
    set_socket_options(fd);
    int rv = connect(fd, (const struct sockaddr *)&p->sa, p->salen);
    int err = errno;
    struct conn *c = conn_new(t, fd, true, CONN_CONNECTING, RT_LOOP_WRITE);
    if (c == NULL) {
        tlog(t, RAFT_LOG_ERROR, "peer %" PRIu64 " %s: out of memory for a connection", p->id,
             raft__channel_name(ch->id));
        schedule_dial(ch);
        return;
    }
    c->peer = p;
    c->ch = ch->id;
    snprintf(c->remote, sizeof c->remote, "%s", p->address);
    ch->out = c;
    if (rv != 0 && err != EINPROGRESS)
        conn_fail(c, FAIL_SETUP, "connect: %s", strerror(err));
}

/* --- HELLO ------------------------------------------------------------------------------------ */

static void hello_prepare(struct conn *c)
{
    struct raft__transport *t = c->t;
    c->hello_len = raft__hello_encode(c->hello, c->ch, t->id, t->cluster_id, t->cluster_len);
    c->hello_sent = 0;
}

/* Check a HELLO payload: both directions check the version, the cluster and the layout;
 * *id and *channel are what the peer says. Returns false after failing c. */
static bool hello_parse(struct conn *c, const uint8_t *p, uint32_t len, uint64_t *id,
                        unsigned *channel)
{
    struct raft__transport *t = c->t;
    char err[256];
    if (raft__hello_check(p, len, t->cluster_id, t->cluster_len, id, channel, err, sizeof err) !=
        0) {
        conn_fail(c, FAIL_SETUP, "%s", err);
        return false;
    }
    return true;
}

static void hello_inbound(struct conn *c, const uint8_t *p, uint32_t len)
{
    struct raft__transport *t = c->t;
    uint64_t id;
    unsigned channel;
    if (!hello_parse(c, p, len, &id, &channel))
        return;
    if (id != c->cert_id) {
        conn_fail(c, FAIL_SETUP,
                  "the peer claims to be node %" PRIu64 " but its certificate names node %" PRIu64,
                  id, c->cert_id);
        return;
    }
    if (id == t->id) {
        conn_fail(c, FAIL_SETUP, "the peer claims our own node ID %" PRIu64, id);
        return;
    }
    struct peer *peer = peer_find(t, id);
    if (peer == NULL) {
        peer = peer_new(t, id);
        if (peer == NULL) {
            conn_fail(c, FAIL_IO, "out of memory for peer %" PRIu64, id);
            return;
        }
        tlog(t, RAFT_LOG_INFO,
             "peer %" PRIu64 " connected but has no address here: receive-only until added", id);
    }
    struct chan *ch = &peer->ch[channel];
    if (ch->in != NULL) {
        conn_log(ch->in, RAFT_LOG_INFO, "replaced by a new connection from %s", c->remote);
        conn_close(ch->in, true);
    }
    c->peer = peer;
    c->ch = (enum raft__channel)channel;
    ch->in = c;
    c->state = CONN_READY;
    t->stats.pending_handshakes--;
    rt__timer_stop(&c->setup_timer);
    hello_prepare(c);
    conn_log(c, RAFT_LOG_DEBUG, "accepted");
}

static void hello_outbound(struct conn *c, const uint8_t *p, uint32_t len)
{
    uint64_t id;
    unsigned channel;
    if (!hello_parse(c, p, len, &id, &channel))
        return;
    struct chan *ch = &c->peer->ch[c->ch];
    if (id != c->peer->id || channel != c->ch) {
        conn_fail(c, FAIL_SETUP, "HELLO answered as node %" PRIu64 " on the %s channel", id,
                  raft__channel_name((enum raft__channel)(channel & 1)));
        return;
    }
    c->state = CONN_READY;
    rt__timer_stop(&c->setup_timer);
    c->peer->stats.connects++;
    ch->backoff = c->t->backoff_min;
    conn_log(c, ch->failures > 0 ? RAFT_LOG_INFO : RAFT_LOG_DEBUG, "connected");
    ch->failures = 0;
}

/* --- connections: reading --------------------------------------------------------------------- */

static void frame_done(struct conn *c)
{
    c->hdr_got = 0;
    c->payload_got = 0;
    c->payload_len = 0;
    if (c->payload_cap > PAYLOAD_CHUNK) {
        free(c->payload);
        c->payload = NULL;
        c->payload_cap = 0;
    }
}

/* Validate a complete header; false after failing c. */
static bool header_check(struct conn *c)
{
    const uint8_t *h = c->hdr;
    uint8_t type;
    uint32_t len;
    char err[128];
    if (raft__frame_header_check(h, c->t->max_frame, &type, &len, err, sizeof err) != 0) {
        conn_fail(c, FAIL_PROTOCOL, "%s", err);
        return false;
    }
    if (c->state == CONN_HELLO && (h[5] != RAFT__FRAME_HELLO || len > HELLO_MAX)) {
        conn_fail(c, FAIL_SETUP, "expected a HELLO, got a frame of type %u and %" PRIu32 " bytes",
                  h[5], len);
        return false;
    }
    if (c->state == CONN_READY && h[5] == RAFT__FRAME_HELLO) {
        conn_fail(c, FAIL_PROTOCOL, "unexpected second HELLO");
        return false;
    }
    if (c->state == CONN_READY && c->is_outbound) {
        conn_fail(c, FAIL_PROTOCOL, "the acceptor sent a frame of type %u on a one-way connection",
                  h[5]);
        return false;
    }
    c->payload_len = len;
    return true;
}

static void frame_deliver(struct conn *c)
{
    struct raft__transport *t = c->t;
    char err[128];
    if (raft__frame_crc_check(c->hdr, c->payload, c->payload_len, err, sizeof err) != 0) {
        conn_fail(c, FAIL_PROTOCOL, "%s", err);
        return;
    }
    uint8_t type = c->hdr[5];
    if (c->state == CONN_HELLO) {
        if (c->is_outbound)
            hello_outbound(c, c->payload, c->payload_len);
        else
            hello_inbound(c, c->payload, c->payload_len);
        frame_done(c);
        return;
    }
    struct peer *p = c->peer;
    if (is_dropped(t, p->id)) {
        p->stats.frames_faulted++;
    } else {
        p->stats.frames_received++;
        /* Read the clock now, not the loop's time of this iteration: the frame may have been
         * sent after that, and whoever relies on "heard at" must never see an earlier time
         * (hence also the rounding up, which keeps 0 for "never"). */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        p->stats.received_at_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
        p->stats.bytes_received += RAFT__FRAME_HEADER + c->payload_len;
        const uint8_t *payload = c->payload_len ? c->payload : (const uint8_t *)"";
        t->recv(t->data, p->id, c->ch, type, payload, c->payload_len);
    }
    if (!c->is_closed)
        frame_done(c);
}

/* Make room for the next bytes of the payload; false after failing c. */
static bool payload_reserve(struct conn *c)
{
    if (c->payload_got < c->payload_cap)
        return true;
    size_t cap = c->payload_cap ? c->payload_cap * 2 : PAYLOAD_CHUNK;
    if (cap > c->payload_len)
        cap = c->payload_len;
    uint8_t *p = realloc(c->payload, cap);
    if (p == NULL) {
        conn_fail(c, FAIL_IO, "out of memory for a frame of %" PRIu32 " bytes", c->payload_len);
        return false;
    }
    c->payload = p;
    c->payload_cap = cap;
    return true;
}

static void conn_read(struct conn *c)
{
    size_t budget = READ_BUDGET;
    while (!c->is_closed) {
        if (budget == 0) {
            rt__watch_feed(&c->watch, RT_LOOP_READ); /* TLS may hold bytes epoll cannot see */
            return;
        }
        uint8_t *dst;
        size_t want;
        bool is_header = c->hdr_got < RAFT__FRAME_HEADER;
        if (is_header) {
            dst = c->hdr + c->hdr_got;
            want = RAFT__FRAME_HEADER - c->hdr_got;
        } else {
            if (!payload_reserve(c))
                return;
            dst = c->payload + c->payload_got;
            size_t room = c->payload_cap < c->payload_len ? c->payload_cap : c->payload_len;
            want = room - c->payload_got;
        }
        if (want > budget)
            want = budget;
        size_t n;
        enum raft__tls_io r = raft__tls_read(c->tls, dst, want, &n);
        if (r == RAFT__TLS_WANT_READ || r == RAFT__TLS_WANT_WRITE)
            return;
        if (r == RAFT__TLS_EOF) {
            if (c->hdr_got > 0)
                conn_fail(c, FAIL_PROTOCOL,
                          "truncated frame: the peer closed after %zu of %zu bytes",
                          c->hdr_got + c->payload_got, RAFT__FRAME_HEADER + (size_t)c->payload_len);
            else
                conn_fail(c, c->state == CONN_READY ? FAIL_IO : FAIL_SETUP, "%s",
                          raft__tls_conn_error(c->tls));
            return;
        }
        if (r == RAFT__TLS_FAILED) {
            conn_fail(c, c->state == CONN_READY ? FAIL_IO : FAIL_SETUP, "%s",
                      raft__tls_conn_error(c->tls));
            return;
        }
        budget -= n;
        if (is_header) {
            c->hdr_got += n;
            if (c->hdr_got < RAFT__FRAME_HEADER)
                continue;
            if (!header_check(c))
                return;
        } else {
            c->payload_got += n;
        }
        if (c->hdr_got == RAFT__FRAME_HEADER && c->payload_got == c->payload_len)
            frame_deliver(c);
    }
}

/* --- connections: writing --------------------------------------------------------------------- */

/* The bytes to write next, or NULL; arms the delay timer when the head frame must wait. */
static const uint8_t *next_bytes(struct conn *c, size_t *len)
{
    if (c->hello_sent < c->hello_len) {
        *len = c->hello_len - c->hello_sent;
        return c->hello + c->hello_sent;
    }
    if (!c->is_outbound || c->state != CONN_READY)
        return NULL;
    struct chan *ch = &c->peer->ch[c->ch];
    struct frame *f = ch->head;
    if (f == NULL)
        return NULL;
    uint64_t now = rt__loop_now(c->t->loop);
    if (c->write_off == 0 && !c->is_write_retry && f->not_before > now) {
        if (!rt__timer_is_active(&ch->delay))
            rt__timer_start(c->t->loop, &ch->delay, f->not_before - now, 0, on_delay);
        return NULL;
    }
    *len = f->size - c->write_off;
    return f->bytes + c->write_off;
}

static void conn_write(struct conn *c)
{
    size_t budget = WRITE_BUDGET;
    while (!c->is_closed && budget > 0) {
        size_t len, n;
        const uint8_t *buf = next_bytes(c, &len);
        if (buf == NULL)
            return;
        enum raft__tls_io r = raft__tls_write(c->tls, buf, len, &n);
        c->is_write_retry = r == RAFT__TLS_WANT_READ || r == RAFT__TLS_WANT_WRITE;
        c->write_wants_read = r == RAFT__TLS_WANT_READ;
        if (c->is_write_retry)
            return;
        if (r != RAFT__TLS_DONE) {
            conn_fail(c, c->state == CONN_READY ? FAIL_IO : FAIL_SETUP, "%s",
                      raft__tls_conn_error(c->tls));
            return;
        }
        budget = n < budget ? budget - n : 0;
        if (c->hello_sent < c->hello_len) {
            c->hello_sent += n;
            continue;
        }
        struct chan *ch = &c->peer->ch[c->ch];
        c->write_off += n;
        c->peer->stats.bytes_sent += n;
        if (c->write_off == ch->head->size) {
            c->write_off = 0;
            c->peer->stats.frames_sent++;
            chan_pop(ch);
        }
    }
}

/* Set the epoll interest from what the connection waits for. */
static void conn_update(struct conn *c)
{
    if (c->is_closed)
        return;
    unsigned events = RT_LOOP_READ;
    size_t len;
    if (c->state == CONN_CONNECTING)
        events = RT_LOOP_WRITE;
    else if (c->state == CONN_HANDSHAKE)
        events = c->handshake_want == RAFT__TLS_WANT_WRITE ? RT_LOOP_WRITE : RT_LOOP_READ;
    else if (c->is_write_retry ? !c->write_wants_read : next_bytes(c, &len) != NULL)
        events |= RT_LOOP_WRITE;
    if (rt__watch_set(&c->watch, events) != 0)
        conn_fail(c, FAIL_IO, "epoll_ctl: %s", strerror(errno));
}

/* --- connections: set-up ---------------------------------------------------------------------- */

static void conn_handshake(struct conn *c)
{
    enum raft__tls_io r = raft__tls_handshake(c->tls);
    c->handshake_want = r;
    if (r == RAFT__TLS_WANT_READ || r == RAFT__TLS_WANT_WRITE)
        return;
    if (r != RAFT__TLS_DONE) {
        conn_fail(c, FAIL_SETUP, "%s", raft__tls_conn_error(c->tls));
        return;
    }
    uint64_t id;
    if (raft__tls_peer_id(c->tls, &id) != 0) {
        conn_fail(c, FAIL_SETUP, "%s", raft__tls_conn_error(c->tls));
        return;
    }
    c->state = CONN_HELLO;
    if (c->is_outbound) {
        if (id != c->peer->id) {
            conn_fail(c, FAIL_SETUP,
                      "the certificate names node %" PRIu64 ", but we dialled node %" PRIu64, id,
                      c->peer->id);
            return;
        }
        hello_prepare(c);
    } else {
        c->cert_id = id;
    }
    rt__watch_feed(&c->watch, RT_LOOP_READ); /* the HELLO may have come with the handshake */
}

static void on_conn_event(struct rt_watch *w, unsigned events)
{
    struct conn *c = w->data;
    if (c->state == CONN_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err == EINPROGRESS)
            return;
        if (err != 0) {
            conn_fail(c, FAIL_SETUP, "connect: %s", strerror(err));
            return;
        }
        if (raft__tls_conn_new(c->t->tls, c->fd, false, &c->tls) != 0) {
            conn_fail(c, FAIL_SETUP, "could not start TLS");
            return;
        }
        c->state = CONN_HANDSHAKE;
    }
    if (c->state == CONN_HANDSHAKE) {
        conn_handshake(c);
    } else {
        if (events & (RT_LOOP_READ | RT_LOOP_ERROR))
            conn_read(c);
        if (events & RT_LOOP_WRITE || (c->write_wants_read && events & RT_LOOP_READ))
            conn_write(c);
    }
    /* Write whatever became ready (a HELLO to send or answer, or queued frames) at once. */
    size_t len;
    if (!c->is_closed && c->state != CONN_HANDSHAKE && !c->is_write_retry &&
        next_bytes(c, &len) != NULL)
        conn_write(c);
    conn_update(c);
}

static void listen_resume(struct rt_timer *timer)
{
    struct raft__transport *t = timer->data;
    rt__watch_set(&t->listen_watch, RT_LOOP_READ);
}

static void on_accept(struct rt_watch *w, unsigned events)
{
    (void)events;
    struct raft__transport *t = w->data;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof ss;
        int fd =
            accept4(t->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
                return;
            /* Out of descriptors or memory: pause instead of spinning on a level-triggered
             * listener that stays readable. */
            tlog(t, RAFT_LOG_ERROR, "accept: %s; pausing the listener for %d ms", strerror(errno),
                 ACCEPT_PAUSE_MS);
            rt__watch_set(&t->listen_watch, 0);
            rt__timer_start(t->loop, &t->listen_pause, ACCEPT_PAUSE_MS, 0, listen_resume);
            return;
        }
        t->stats.accepted++;
        char remote[REMOTE_MAX];
        format_sockaddr(&ss, remote, sizeof remote);
        if (t->stats.pending_handshakes >= MAX_PENDING_INBOUND) {
            tlog(t, RAFT_LOG_WARN,
                 "inbound connection from %s: refused: %d connections are already setting up",
                 remote, MAX_PENDING_INBOUND);
            t->stats.refused++;
            close(fd);
            continue;
        }
        set_socket_options(fd);
        struct conn *c = conn_new(t, fd, false, CONN_HANDSHAKE, RT_LOOP_READ);
        if (c == NULL) {
            tlog(t, RAFT_LOG_ERROR, "inbound connection from %s: out of memory", remote);
            t->stats.refused++;
            continue;
        }
        t->stats.pending_handshakes++;
        snprintf(c->remote, sizeof c->remote, "%s", remote);
        if (raft__tls_conn_new(t->tls, fd, true, &c->tls) != 0) {
            conn_fail(c, FAIL_SETUP, "could not start TLS");
            continue;
        }
        c->handshake_want = RAFT__TLS_WANT_READ;
    }
}

/* --- public API ------------------------------------------------------------------------------- */

static int listen_on(struct raft__transport *t, const char *address)
{
    struct sockaddr_storage ss;
    unsigned len;
    if (raft__address_parse(address, &ss, &len) != 0)
        return RAFT_EADDR;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return RAFT_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        tlog(t, RAFT_LOG_ERROR, "listen on %s: %s", address, strerror(e));
        close(fd);
        errno = e;
        return RAFT_EIO;
    }
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    t->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    t->listen_watch.data = t;
    if (rt__watch_start(t->loop, &t->listen_watch, fd, RT_LOOP_READ, on_accept) != 0) {
        close(fd);
        return RAFT_EIO;
    }
    t->listen_fd = fd;
    return 0;
}

int raft__transport_new(struct rt_loop *loop, const struct raft__transport_config *cfg,
                        struct raft__transport **out)
{
    size_t clen = cfg->cluster_id ? strlen(cfg->cluster_id) : 0;
    if (cfg->id == 0 || clen == 0 || clen > RAFT__CLUSTER_ID_MAX || cfg->tls == NULL ||
        cfg->recv == NULL)
        return RAFT_EINVAL;
    struct raft__transport *t = calloc(1, sizeof *t);
    if (t == NULL)
        return RAFT_ENOMEM;
    t->loop = loop;
    t->id = cfg->id;
    memcpy(t->cluster_id, cfg->cluster_id, clen);
    t->cluster_len = clen;
    t->tls = cfg->tls;
    t->max_frame = cfg->max_frame_bytes ? cfg->max_frame_bytes : RAFT__FRAME_MAX_DEFAULT;
    t->queue_limit[RAFT__CHANNEL_CONTROL] =
        cfg->control_queue_bytes ? cfg->control_queue_bytes : RAFT__CONTROL_QUEUE_DEFAULT;
    t->queue_limit[RAFT__CHANNEL_BULK] =
        cfg->bulk_queue_bytes ? cfg->bulk_queue_bytes
                              : (size_t)t->max_frame + RAFT__FRAME_HEADER + (1u << 20);
    t->backoff_min = cfg->backoff_min_ms ? cfg->backoff_min_ms : 50;
    t->backoff_max = cfg->backoff_max_ms ? cfg->backoff_max_ms : 5000;
    if (t->backoff_max < t->backoff_min)
        t->backoff_max = t->backoff_min;
    t->setup_timeout = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : 10000;
    t->rng = cfg->seed ^ cfg->id;
    t->recv = cfg->recv;
    t->log = cfg->log;
    t->data = cfg->data;
    t->listen_fd = -1;
    rt__timer_init(&t->reaper);
    rt__timer_init(&t->listen_pause);
    t->reaper.data = t;
    t->listen_pause.data = t;
    if (cfg->listen_address != NULL) {
        int rv = listen_on(t, cfg->listen_address);
        if (rv != 0) {
            free(t);
            return rv;
        }
    }
    *out = t;
    return 0;
}

void raft__transport_free(struct raft__transport *t)
{
    if (t == NULL)
        return;
    while (t->conns != NULL)
        conn_close(t->conns, true);
    while (t->peers != NULL) {
        struct peer *p = t->peers;
        t->peers = p->next;
        for (int i = 0; i < RAFT__N_CHANNELS; i++) {
            rt__timer_stop(&p->ch[i].retry);
            rt__timer_stop(&p->ch[i].delay);
            while (p->ch[i].head != NULL)
                chan_pop(&p->ch[i]);
        }
        free(p);
    }
    while (t->faults != NULL) {
        struct fault *f = t->faults;
        t->faults = f->next;
        free(f);
    }
    rt__timer_stop(&t->reaper);
    rt__timer_stop(&t->listen_pause);
    on_reap(&t->reaper);
    if (t->listen_fd >= 0) {
        rt__watch_stop(&t->listen_watch);
        close(t->listen_fd);
    }
    free(t);
}

unsigned raft__transport_port(const struct raft__transport *t)
{
    return t->port;
}

int raft__transport_peer_set(struct raft__transport *t, uint64_t id, const char *address)
{
    if (id == 0 || id == t->id)
        return RAFT_EINVAL;
    if (address == NULL || strlen(address) >= RAFT_ADDRESS_MAX)
        return RAFT_EADDR;
    struct sockaddr_storage ss;
    unsigned salen;
    if (raft__address_parse(address, &ss, &salen) != 0)
        return RAFT_EADDR;
    struct peer *p = peer_find(t, id);
    if (p == NULL) {
        p = peer_new(t, id);
        if (p == NULL)
            return RAFT_ENOMEM;
    } else if (p->has_address && strcmp(p->address, address) == 0) {
        return 0;
    }
    bool had_address = p->has_address;
    snprintf(p->address, sizeof p->address, "%s", address);
    memcpy(&p->sa, &ss, sizeof ss);
    p->salen = salen;
    p->has_address = true;
    for (int i = 0; i < RAFT__N_CHANNELS; i++) {
        struct chan *ch = &p->ch[i];
        if (ch->out != NULL) {
            conn_log(ch->out, RAFT_LOG_INFO, "address changed to %s", address);
            conn_close(ch->out, true);
        }
        if (had_address)
            tlog(t, RAFT_LOG_INFO, "peer %" PRIu64 " %s: now at %s", id, raft__channel_name(ch->id),
                 address);
        ch->backoff = t->backoff_min;
        ch->failures = 0;
        dial(ch);
    }
    return 0;
}

/* Check a send and find its queue. */
static int send_prepare(struct raft__transport *t, uint64_t to, enum raft__channel channel,
                        uint8_t type, uint32_t len, struct chan **out)
{
    if (type <= RAFT__FRAME_HELLO || type > RAFT__FRAME_TYPE_MAX ||
        (unsigned)channel >= RAFT__N_CHANNELS)
        return RAFT_EINVAL;
    if (len > t->max_frame)
        return RAFT_ETOOBIG;
    struct peer *p = peer_find(t, to);
    if (p == NULL)
        return RAFT_ENOTFOUND;
    if (!p->has_address)
        return RAFT_EADDR;
    struct chan *ch = &p->ch[channel];
    size_t size = RAFT__FRAME_HEADER + (size_t)len;
    if (ch->queued + size > ch->limit) {
        p->stats.frames_dropped++;
        return RAFT_EDROPPED;
    }
    *out = ch;
    return 0;
}

static void send_finish(struct raft__transport *t, struct chan *ch, struct frame *f, uint8_t type,
                        uint32_t len)
{
    raft__frame_seal(f->bytes, type, len);
    f->size = RAFT__FRAME_HEADER + len;
    f->next = NULL;
    const struct fault *fault = fault_find(t, ch->peer->id);
    f->not_before = 0;
    if (fault != NULL && fault->delay_ms > 0) {
        /* "At least delay_ms": the loop's cached time may lag, and it counts whole ms. */
        rt__loop_update_time(t->loop);
        f->not_before = rt__loop_now(t->loop) + fault->delay_ms + 1;
    }
    if (ch->tail)
        ch->tail->next = f;
    else
        ch->head = f;
    ch->tail = f;
    ch->queued += f->size;
    if (ch->out != NULL)
        conn_update(ch->out);
    else if (!rt__timer_is_active(&ch->retry))
        dial(ch);
}

int raft__transport_send(struct raft__transport *t, uint64_t to, enum raft__channel channel,
                         uint8_t type, const void *payload, uint32_t len)
{
    struct chan *ch;
    int rv = send_prepare(t, to, channel, type, len, &ch);
    if (rv != 0)
        return rv;
    if (is_dropped(t, to)) {
        ch->peer->stats.frames_faulted++;
        return 0;
    }
    struct frame *f = malloc(sizeof *f + RAFT__FRAME_HEADER + len);
    if (f == NULL)
        return RAFT_ENOMEM;
    if (len > 0)
        memcpy(f->bytes + RAFT__FRAME_HEADER, payload, len);
    send_finish(t, ch, f, type, len);
    return 0;
}

int raft__transport_send_msg(struct raft__transport *t, const struct raft_msg *m)
{
    size_t size = raft_msg_encoded_size(m);
    if (size > t->max_frame)
        return RAFT_ETOOBIG;
    uint32_t len = (uint32_t)size;
    struct chan *ch;
    int rv = send_prepare(t, m->to, raft__channel_for_msg(m), RAFT__FRAME_RAFT, len, &ch);
    if (rv != 0)
        return rv;
    if (is_dropped(t, m->to)) {
        ch->peer->stats.frames_faulted++;
        return 0;
    }
    struct frame *f = malloc(sizeof *f + RAFT__FRAME_HEADER + len);
    if (f == NULL)
        return RAFT_ENOMEM;
    raft_msg_encode(m, f->bytes + RAFT__FRAME_HEADER);
    send_finish(t, ch, f, RAFT__FRAME_RAFT, len);
    return 0;
}

int raft__transport_fault_set(struct raft__transport *t, uint64_t peer, bool drop,
                              unsigned delay_ms)
{
    struct fault **fp = &t->faults;
    while (*fp != NULL && (*fp)->peer != peer)
        fp = &(*fp)->next;
    struct fault *f = *fp;
    if (!drop && delay_ms == 0) {
        if (f != NULL) {
            *fp = f->next;
            free(f);
        }
    } else {
        if (f == NULL) {
            f = calloc(1, sizeof *f);
            if (f == NULL)
                return RAFT_ENOMEM;
            f->peer = peer;
            f->next = t->faults;
            t->faults = f;
        }
        f->drop = drop;
        f->delay_ms = delay_ms;
    }
    tlog(t, RAFT_LOG_INFO, "fault for peer %" PRIu64 ": %s, delay %u ms", peer,
         drop ? "drop all traffic" : "deliver", delay_ms);
    return 0;
}

int raft__transport_faults_parse(struct raft__transport *t, const char *spec, char *err,
                                 size_t errlen)
{
    struct item {
        uint64_t peer;
        bool drop;
        unsigned delay;
    } items[64];
    size_t n = 0;
    const char *s = spec ? spec : "";
    while (*s) {
        if (*s == ' ' || *s == ',') {
            s++;
            continue;
        }
        const char *end = s + strcspn(s, " ,");
        char word[64];
        size_t wlen = (size_t)(end - s);
        if (wlen >= sizeof word || n == sizeof items / sizeof items[0])
            goto bad;
        memcpy(word, s, wlen);
        word[wlen] = '\0';
        unsigned long long peer;
        unsigned delay;
        char extra;
        struct item it = {0};
        if (sscanf(word, "drop:%llu%c", &peer, &extra) == 1 && peer != 0) {
            it.peer = peer;
            it.drop = true;
        } else if (sscanf(word, "delay:%llu:%u%c", &peer, &delay, &extra) == 2 && peer != 0) {
            it.peer = peer;
            it.delay = delay;
        } else {
            goto bad;
        }
        /* Merge items of the same peer ("drop:2 delay:2:50"). */
        size_t i = 0;
        while (i < n && items[i].peer != it.peer)
            i++;
        if (i == n)
            items[n++] = it;
        else if (it.drop)
            items[i].drop = true;
        else
            items[i].delay = it.delay;
        s = end;
        continue;
    bad:
        snprintf(err, errlen, "bad fault item '%.*s' (expected drop:ID or delay:ID:MS)",
                 (int)(wlen > 40 ? 40 : wlen), s);
        return RAFT_EINVAL;
    }
    while (t->faults != NULL)
        raft__transport_fault_set(t, t->faults->peer, false, 0);
    for (size_t i = 0; i < n; i++) {
        int rv = raft__transport_fault_set(t, items[i].peer, items[i].drop, items[i].delay);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int raft__transport_peer_stats(const struct raft__transport *t, uint64_t id,
                               struct raft__peer_stats *s)
{
    const struct peer *p = peer_find(t, id);
    if (p == NULL)
        return RAFT_ENOTFOUND;
    *s = p->stats;
    for (int i = 0; i < RAFT__N_CHANNELS; i++) {
        s->queued_bytes[i] = p->ch[i].queued;
        s->is_connected[i] = p->ch[i].out != NULL && p->ch[i].out->state == CONN_READY;
        s->backoff_ms[i] = p->ch[i].backoff;
    }
    return 0;
}

void raft__transport_stats(const struct raft__transport *t, struct raft__transport_stats *s)
{
    *s = t->stats;
    s->receive_buffer_bytes = 0;
    for (const struct conn *c = t->conns; c != NULL; c = c->next)
        s->receive_buffer_bytes += c->payload_cap;
}
