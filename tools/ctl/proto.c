/* The control protocol's codec (docs/ctl-protocol.md): frames and the payload of every message
 * type, little-endian, every length checked on decode. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tools/ctl/proto.h"
#include "lib/error.h"
#include "lib/le.h"

/* --- writing ------------------------------------------------------------------------------ */

struct out {
    uint8_t *p;
    size_t cap, len;
    bool is_bad; /* out of room or a value that cannot be encoded */
};

static void put(struct out *o, const void *src, size_t n)
{
    if (o->is_bad || o->cap - o->len < n) {
        o->is_bad = true;
        return;
    }
    memcpy(o->p + o->len, src, n);
    o->len += n;
}

static void put8(struct out *o, uint8_t v)
{
    put(o, &v, 1);
}

static void put16(struct out *o, uint16_t v)
{
    uint8_t b[2];
    rfs_put_le16(b, v);
    put(o, b, 2);
}

static void put32(struct out *o, uint32_t v)
{
    uint8_t b[4];
    rfs_put_le32(b, v);
    put(o, b, 4);
}

static void put64(struct out *o, uint64_t v)
{
    uint8_t b[8];
    rfs_put_le64(b, v);
    put(o, b, 8);
}

/* A string of an array of max bytes: u8 length, then the bytes without the NUL. */
static void put_str(struct out *o, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n == max || n > 255) {
        o->is_bad = true;
        return;
    }
    put8(o, (uint8_t)n);
    put(o, s, n);
}

static void put_hist(struct out *o, const struct raft_histogram *h)
{
    put64(o, h->count);
    put64(o, h->sum_us);
    for (unsigned i = 0; i < RAFT_HISTOGRAM_BUCKETS; i++)
        put64(o, h->buckets[i]);
}

static bool is_change_op(unsigned op)
{
    return op >= RAFT_CHANGE_ADD_VOTER && op <= RAFT_CHANGE_DEMOTE;
}

static bool has_address(unsigned op)
{
    return op == RAFT_CHANGE_ADD_VOTER || op == RAFT_CHANGE_ADD_LEARNER;
}

static bool is_time(const struct ctl_time *t)
{
    return t->nsec < 1000000000u;
}

static void put_time(struct out *o, const struct ctl_time *t)
{
    if (!is_time(t))
        o->is_bad = true;
    put64(o, (uint64_t)t->sec);
    put32(o, t->nsec);
}

static bool is_lock(const struct ctl_lock *l)
{
    return l->kind >= CTL_LOCK_FLOCK && l->kind <= CTL_LOCK_POSIX && l->type >= CTL_LOCK_READ &&
           l->type <= CTL_LOCK_WRITE && l->state >= CTL_LOCK_HELD && l->state <= CTL_LOCK_DELAYED;
}

static void encode_locks(const struct ctl_locks *ls, struct out *o)
{
    if (ls->n > CTL_LOCKS_MAX) {
        o->is_bad = true;
        return;
    }
    put8(o, ls->is_truncated ? 1 : 0);
    put16(o, (uint16_t)ls->n);
    for (unsigned i = 0; i < ls->n; i++) {
        const struct ctl_lock *l = &ls->locks[i];
        if (!is_lock(l))
            o->is_bad = true;
        put64(o, l->ino);
        put64(o, l->node);
        put64(o, l->session);
        put32(o, l->pid);
        put8(o, l->kind);
        put8(o, l->type);
        put8(o, l->state);
        put64(o, l->start);
        put64(o, l->len);
        put64(o, l->token);
        put_time(o, &l->time);
    }
}

static void encode_sessions(const struct ctl_sessions *ss, struct out *o)
{
    if (ss->n > CTL_SESSIONS_MAX) {
        o->is_bad = true;
        return;
    }
    put8(o, ss->is_truncated ? 1 : 0);
    put16(o, (uint16_t)ss->n);
    for (unsigned i = 0; i < ss->n; i++) {
        const struct ctl_session *e = &ss->sessions[i];
        if (e->state != CTL_SESSION_LIVE && e->state != CTL_SESSION_ENDED)
            o->is_bad = true;
        put64(o, e->id);
        put64(o, e->node);
        put8(o, e->state);
        put_time(o, &e->opened);
        put_time(o, &e->ended);
    }
}

static void encode_payload(const struct ctl_msg *m, struct out *o)
{
    switch (m->type) {
    case CTL_REQ_STATUS:
    case CTL_REQ_STATS:
    case CTL_REQ_SNAPSHOT:
    case CTL_REQ_VERIFY:
    case CTL_REQ_LOCKS:
    case CTL_REQ_SESSIONS:
    case CTL_REQ_OWN_SESSION:
    case CTL_REQ_READ_BARRIER:
    case CTL_RESP_OK: break;
    case CTL_RESP_LOCKS: encode_locks(&m->locks, o); break;
    case CTL_RESP_SESSIONS: encode_sessions(&m->sessions, o); break;
    case CTL_REQ_FAULTS: put_str(o, m->faults.spec, sizeof m->faults.spec); break;
    case CTL_RESP_OWN_SESSION:
        if (m->own.state < CTL_OWN_OPENING || m->own.state > CTL_OWN_LOST) {
            o->is_bad = true;
            break;
        }
        put8(o, m->own.state);
        put64(o, m->own.session);
        put64(o, m->own.since_ms);
        put_str(o, m->own.reason, sizeof m->own.reason);
        break;
    case CTL_REQ_CHANGE:
        if (!is_change_op(m->change.op) || m->change.server == 0 ||
            has_address(m->change.op) != (m->change.address[0] != '\0')) {
            o->is_bad = true;
            break;
        }
        put8(o, (uint8_t)m->change.op);
        put64(o, m->change.server);
        put64(o, m->change.expect_index);
        put_str(o, m->change.address, sizeof m->change.address);
        break;
    case CTL_REQ_TRANSFER: put64(o, m->transfer.server); break;
    case CTL_RESP_ERROR:
        put32(o, (uint32_t)m->error.code);
        put_str(o, m->error.text, sizeof m->error.text);
        break;
    case CTL_RESP_STATUS: {
        const struct raft_runtime_status *s = &m->status;
        if (s->n_peers > RAFT_MAX_SERVERS) {
            o->is_bad = true;
            break;
        }
        put64(o, s->id);
        put8(o, (uint8_t)s->role);
        put64(o, s->term);
        put64(o, s->leader);
        put_str(o, s->leader_address, sizeof s->leader_address);
        put64(o, s->commit);
        put64(o, s->applied);
        put64(o, s->last_index);
        put64(o, s->snapshot_index);
        put64(o, s->snapshot_term);
        put64(o, s->conf_index);
        put64(o, s->epoch);
        put32(o, (uint32_t)s->error);
        put8(o, (uint8_t)s->n_peers);
        for (unsigned i = 0; i < s->n_peers; i++) {
            const struct raft_runtime_peer *p = &s->peers[i];
            put64(o, p->id);
            put8(o, (uint8_t)p->suffrage);
            put8(o, p->is_connected ? 1 : 0);
            put64(o, p->match);
            put64(o, p->last_contact_ms);
            put_str(o, p->address, sizeof p->address);
        }
        break;
    }
    case CTL_RESP_STATS: {
        const struct raft_runtime_stats *s = &m->stats;
        const uint64_t counters[] = {
            s->proposals,       s->proposals_failed,    s->reads,           s->log_commits,
            s->log_entries,     s->log_bytes,           s->applied_entries, s->apply_batches,
            s->snapshots_taken, s->snapshots_installed,
        };
        for (unsigned i = 0; i < sizeof counters / sizeof counters[0]; i++)
            put64(o, counters[i]);
        put_hist(o, &s->commit);
        put_hist(o, &s->fsync);
        put_hist(o, &s->apply);
        break;
    }
    case CTL_RESP_VERIFY:
        if (m->verify.n > RAFT_MAX_SERVERS) {
            o->is_bad = true;
            break;
        }
        put64(o, m->verify.index);
        put8(o, (uint8_t)m->verify.n);
        for (unsigned i = 0; i < m->verify.n; i++) {
            put64(o, m->verify.nodes[i].id);
            put32(o, (uint32_t)m->verify.nodes[i].status);
            put(o, m->verify.nodes[i].digest, CTL_DIGEST_SIZE);
        }
        break;
    default: o->is_bad = true; break;
    }
}

size_t ctl_encode(const struct ctl_msg *m, uint8_t *buf, size_t cap)
{
    if (cap < CTL_HEADER)
        return 0;
    size_t room = cap - CTL_HEADER < CTL_PAYLOAD_MAX ? cap - CTL_HEADER : CTL_PAYLOAD_MAX;
    struct out o = {.p = buf + CTL_HEADER, .cap = room};
    encode_payload(m, &o);
    if (o.is_bad)
        return 0;
    rfs_put_le32(buf, CTL_MAGIC);
    buf[4] = CTL_VERSION;
    buf[5] = (uint8_t)m->type;
    buf[6] = buf[7] = 0;
    rfs_put_le32(buf + 8, (uint32_t)o.len);
    return CTL_HEADER + o.len;
}

/* --- reading ------------------------------------------------------------------------------ */

struct in {
    const uint8_t *p;
    size_t len, off;
    char *err;
    size_t errlen;
    bool is_bad; /* err says why */
};

static void fail(struct in *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct in *in, const char *fmt, ...)
{
    if (in->is_bad)
        return;
    in->is_bad = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->err, in->errlen, fmt, ap);
    va_end(ap);
}

static const uint8_t *take(struct in *in, size_t n, const char *what)
{
    if (in->is_bad)
        return NULL;
    if (in->len - in->off < n) {
        fail(in, "payload ends inside %s (offset %zu of %zu)", what, in->off, in->len);
        return NULL;
    }
    const uint8_t *p = in->p + in->off;
    in->off += n;
    return p;
}

static uint8_t get8(struct in *in, const char *what)
{
    const uint8_t *p = take(in, 1, what);
    return p != NULL ? p[0] : 0;
}

static uint16_t get16(struct in *in, const char *what)
{
    const uint8_t *p = take(in, 2, what);
    return p != NULL ? rfs_get_le16(p) : 0;
}

static uint32_t get32(struct in *in, const char *what)
{
    const uint8_t *p = take(in, 4, what);
    return p != NULL ? rfs_get_le32(p) : 0;
}

static uint64_t get64(struct in *in, const char *what)
{
    const uint8_t *p = take(in, 8, what);
    return p != NULL ? rfs_get_le64(p) : 0;
}

/* A string into dst (max bytes, NUL included); no NUL byte may appear inside it. */
static void get_str(struct in *in, char *dst, size_t max, const char *what)
{
    size_t n = get8(in, what);
    if (n >= max) {
        fail(in, "%s is %zu bytes, at most %zu allowed", what, n, max - 1);
        return;
    }
    const uint8_t *p = take(in, n, what);
    if (p == NULL)
        return;
    if (memchr(p, '\0', n) != NULL) {
        fail(in, "%s contains a NUL byte", what);
        return;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static void get_hist(struct in *in, struct raft_histogram *h)
{
    h->count = get64(in, "a histogram");
    h->sum_us = get64(in, "a histogram");
    for (unsigned i = 0; i < RAFT_HISTOGRAM_BUCKETS; i++)
        h->buckets[i] = get64(in, "a histogram");
}

static void decode_status(struct in *in, struct raft_runtime_status *s)
{
    s->id = get64(in, "the node ID");
    unsigned role = get8(in, "the role");
    if (!in->is_bad && (role < RAFT_FOLLOWER || role > RAFT_LEADER))
        fail(in, "unknown role %u", role);
    s->role = role;
    s->term = get64(in, "the term");
    s->leader = get64(in, "the leader");
    get_str(in, s->leader_address, sizeof s->leader_address, "the leader's address");
    s->commit = get64(in, "the commit index");
    s->applied = get64(in, "the applied index");
    s->last_index = get64(in, "the last index");
    s->snapshot_index = get64(in, "the snapshot index");
    s->snapshot_term = get64(in, "the snapshot term");
    s->conf_index = get64(in, "the configuration index");
    s->epoch = get64(in, "the epoch");
    s->error = (int)get32(in, "the error");
    s->n_peers = get8(in, "the member count");
    if (!in->is_bad && s->n_peers > RAFT_MAX_SERVERS)
        fail(in, "%u members, at most %d allowed", s->n_peers, RAFT_MAX_SERVERS);
    for (unsigned i = 0; i < s->n_peers && !in->is_bad; i++) {
        struct raft_runtime_peer *p = &s->peers[i];
        p->id = get64(in, "a member's ID");
        unsigned suffrage = get8(in, "a member's suffrage");
        if (!in->is_bad && suffrage != RAFT_VOTER && suffrage != RAFT_LEARNER)
            fail(in, "member %u: unknown suffrage %u", i, suffrage);
        p->suffrage = suffrage;
        unsigned connected = get8(in, "a member's connection flag");
        if (!in->is_bad && connected > 1)
            fail(in, "member %u: connection flag %u is not 0 or 1", i, connected);
        p->is_connected = connected == 1;
        p->match = get64(in, "a member's match index");
        p->last_contact_ms = get64(in, "a member's last contact");
        get_str(in, p->address, sizeof p->address, "a member's address");
    }
}

static void decode_stats(struct in *in, struct raft_runtime_stats *s)
{
    uint64_t *counters[] = {
        &s->proposals,       &s->proposals_failed,    &s->reads,           &s->log_commits,
        &s->log_entries,     &s->log_bytes,           &s->applied_entries, &s->apply_batches,
        &s->snapshots_taken, &s->snapshots_installed,
    };
    for (unsigned i = 0; i < sizeof counters / sizeof counters[0]; i++)
        *counters[i] = get64(in, "a counter");
    get_hist(in, &s->commit);
    get_hist(in, &s->fsync);
    get_hist(in, &s->apply);
}

static void decode_verify(struct in *in, struct ctl_verify *v)
{
    v->index = get64(in, "the checkpoint index");
    v->n = get8(in, "the node count");
    if (!in->is_bad && v->n > RAFT_MAX_SERVERS)
        fail(in, "%u nodes, at most %d allowed", v->n, RAFT_MAX_SERVERS);
    for (unsigned i = 0; i < v->n && !in->is_bad; i++) {
        v->nodes[i].id = get64(in, "a node ID");
        v->nodes[i].status = (int)get32(in, "a node's status");
        const uint8_t *d = take(in, CTL_DIGEST_SIZE, "a digest");
        if (d != NULL)
            memcpy(v->nodes[i].digest, d, CTL_DIGEST_SIZE);
    }
}

static void get_time(struct in *in, struct ctl_time *t, const char *what)
{
    t->sec = (int64_t)get64(in, what);
    t->nsec = get32(in, what);
    if (!in->is_bad && !is_time(t))
        fail(in, "%s: %u nanoseconds, at most 999999999 allowed", what, t->nsec);
}

/* The truncated flag and the record count of a list of at most max records. */
static unsigned get_list_head(struct in *in, bool *is_truncated, unsigned max)
{
    unsigned flag = get8(in, "the truncated flag");
    if (!in->is_bad && flag > 1)
        fail(in, "truncated flag %u is not 0 or 1", flag);
    *is_truncated = flag == 1;
    unsigned n = get16(in, "the record count");
    if (!in->is_bad && n > max)
        fail(in, "%u records, at most %u allowed", n, max);
    return in->is_bad ? 0 : n;
}

static void decode_locks(struct in *in, struct ctl_locks *ls)
{
    ls->n = get_list_head(in, &ls->is_truncated, CTL_LOCKS_MAX);
    for (unsigned i = 0; i < ls->n && !in->is_bad; i++) {
        struct ctl_lock *l = &ls->locks[i];
        l->ino = get64(in, "a lock's inode");
        l->node = get64(in, "a lock's node");
        l->session = get64(in, "a lock's session");
        l->pid = get32(in, "a lock's pid");
        l->kind = get8(in, "a lock's kind");
        l->type = get8(in, "a lock's type");
        l->state = get8(in, "a lock's state");
        if (!in->is_bad && !is_lock(l))
            fail(in, "lock %u: kind %u, type %u or state %u unknown", i, l->kind, l->type,
                 l->state);
        l->start = get64(in, "a lock's start");
        l->len = get64(in, "a lock's length");
        l->token = get64(in, "a lock's token");
        get_time(in, &l->time, "a lock's time");
    }
}

static void decode_sessions(struct in *in, struct ctl_sessions *ss)
{
    ss->n = get_list_head(in, &ss->is_truncated, CTL_SESSIONS_MAX);
    for (unsigned i = 0; i < ss->n && !in->is_bad; i++) {
        struct ctl_session *e = &ss->sessions[i];
        e->id = get64(in, "a session's ID");
        e->node = get64(in, "a session's node");
        e->state = get8(in, "a session's state");
        if (!in->is_bad && e->state != CTL_SESSION_LIVE && e->state != CTL_SESSION_ENDED)
            fail(in, "session %u: unknown state %u", i, e->state);
        get_time(in, &e->opened, "a session's opening time");
        get_time(in, &e->ended, "a session's end time");
    }
}

int ctl_decode(enum ctl_type type, const uint8_t *p, uint32_t len, struct ctl_msg *m, char *err,
               size_t errlen)
{
    struct in in = {.p = p, .len = len, .err = err, .errlen = errlen};
    memset(m, 0, sizeof *m);
    m->type = type;
    switch (type) {
    case CTL_REQ_STATUS:
    case CTL_REQ_STATS:
    case CTL_REQ_SNAPSHOT:
    case CTL_REQ_VERIFY:
    case CTL_REQ_LOCKS:
    case CTL_REQ_SESSIONS:
    case CTL_REQ_OWN_SESSION:
    case CTL_REQ_READ_BARRIER:
    case CTL_RESP_OK: break;
    case CTL_RESP_LOCKS: decode_locks(&in, &m->locks); break;
    case CTL_RESP_SESSIONS: decode_sessions(&in, &m->sessions); break;
    case CTL_REQ_FAULTS:
        get_str(&in, m->faults.spec, sizeof m->faults.spec, "the fault spec");
        break;
    case CTL_RESP_OWN_SESSION:
        m->own.state = get8(&in, "the session's state");
        if (!in.is_bad && (m->own.state < CTL_OWN_OPENING || m->own.state > CTL_OWN_LOST))
            fail(&in, "unknown own-session state %u", m->own.state);
        m->own.session = get64(&in, "the session's ID");
        m->own.since_ms = get64(&in, "the session's age");
        get_str(&in, m->own.reason, sizeof m->own.reason, "the reason");
        break;
    case CTL_REQ_CHANGE: {
        unsigned op = get8(&in, "the change");
        if (!in.is_bad && !is_change_op(op))
            fail(&in, "unknown change %u", op);
        m->change.op = op;
        m->change.server = get64(&in, "the server ID");
        if (!in.is_bad && m->change.server == 0)
            fail(&in, "server ID 0");
        m->change.expect_index = get64(&in, "the expected index");
        get_str(&in, m->change.address, sizeof m->change.address, "the address");
        if (!in.is_bad && has_address(op) != (m->change.address[0] != '\0'))
            fail(&in, has_address(op) ? "an added server needs an address"
                                      : "only an added server takes an address");
        break;
    }
    case CTL_REQ_TRANSFER: m->transfer.server = get64(&in, "the server ID"); break;
    case CTL_RESP_ERROR:
        m->error.code = (int)get32(&in, "the error code");
        get_str(&in, m->error.text, sizeof m->error.text, "the error text");
        break;
    case CTL_RESP_STATUS: decode_status(&in, &m->status); break;
    case CTL_RESP_STATS: decode_stats(&in, &m->stats); break;
    case CTL_RESP_VERIFY: decode_verify(&in, &m->verify); break;
    default: fail(&in, "unknown message type %u", (unsigned)type); break;
    }
    if (!in.is_bad && in.off != in.len)
        fail(&in, "%zu bytes after the end of a %s message", in.len - in.off, ctl_type_name(type));
    return in.is_bad ? RFS_EDECODE : 0;
}

const char *ctl_type_name(unsigned type)
{
    switch (type) {
    case CTL_REQ_STATUS: return "status";
    case CTL_REQ_STATS: return "stats";
    case CTL_REQ_CHANGE: return "change";
    case CTL_REQ_TRANSFER: return "transfer";
    case CTL_REQ_SNAPSHOT: return "snapshot";
    case CTL_REQ_VERIFY: return "verify";
    case CTL_REQ_LOCKS: return "locks";
    case CTL_REQ_SESSIONS: return "sessions";
    case CTL_REQ_FAULTS: return "faults";
    case CTL_REQ_OWN_SESSION: return "own-session";
    case CTL_REQ_READ_BARRIER: return "read-barrier";
    case CTL_RESP_ERROR: return "error";
    case CTL_RESP_OK: return "ok";
    case CTL_RESP_STATUS: return "status response";
    case CTL_RESP_STATS: return "stats response";
    case CTL_RESP_VERIFY: return "verify response";
    case CTL_RESP_LOCKS: return "locks response";
    case CTL_RESP_SESSIONS: return "sessions response";
    case CTL_RESP_OWN_SESSION: return "own-session response";
    default: return "unknown";
    }
}

int ctl_header_check(const uint8_t *h, enum ctl_type *type, uint32_t *len, char *err, size_t errlen)
{
    uint32_t magic = rfs_get_le32(h);
    if (magic != CTL_MAGIC) {
        snprintf(err, errlen, "bad magic 0x%08x (not a raftfs control frame)", magic);
        return RFS_EDECODE;
    }
    if (h[4] != CTL_VERSION) {
        snprintf(err, errlen, "protocol version %u, this program speaks %u", h[4], CTL_VERSION);
        return RFS_EDECODE;
    }
    if (strcmp(ctl_type_name(h[5]), "unknown") == 0) {
        snprintf(err, errlen, "unknown message type %u", h[5]);
        return RFS_EDECODE;
    }
    if (h[6] != 0 || h[7] != 0) {
        snprintf(err, errlen, "reserved header bytes are not zero");
        return RFS_EDECODE;
    }
    uint32_t n = rfs_get_le32(h + 8);
    if (n > CTL_PAYLOAD_MAX) {
        snprintf(err, errlen, "payload of %u bytes, at most %u allowed", n, CTL_PAYLOAD_MAX);
        return RFS_EDECODE;
    }
    *type = h[5];
    *len = n;
    return 0;
}
