/* The control protocol's codec and frame I/O (ctl/): every message type round-trips, every
 * truncation and every malformed header or field is refused with a reason, and a frame is read
 * whole from a socket or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "tools/ctl/proto.h"
#include "lib/error.h"

/* Messages of every type, with every field set to something recognisable. */
static unsigned samples(struct ctl_msg *m)
{
    unsigned n = 0;
    memset(m, 0, 11 * sizeof *m);
    m[n++].type = CTL_REQ_STATUS;
    m[n++].type = CTL_REQ_STATS;
    m[n].type = CTL_REQ_CHANGE;
    m[n].change.op = RAFT_CHANGE_ADD_VOTER;
    m[n].change.server = 4;
    m[n].change.expect_index = 77;
    strcpy(m[n++].change.address, "127.0.0.1:7004");
    m[n].type = CTL_REQ_CHANGE;
    m[n].change.op = RAFT_CHANGE_DEMOTE;
    m[n++].change.server = 2;
    m[n].type = CTL_REQ_TRANSFER;
    m[n++].transfer.server = 3;
    m[n++].type = CTL_REQ_SNAPSHOT;
    m[n++].type = CTL_REQ_VERIFY;
    m[n].type = CTL_RESP_ERROR;
    m[n].error.code = RAFT_ENOTLEADER;
    strcpy(m[n++].error.text, "no leader");
    m[n++].type = CTL_RESP_OK;
    m[n].type = CTL_RESP_STATUS;
    struct raft_runtime_status *s = &m[n++].status;
    s->id = 1;
    s->role = RAFT_LEADER;
    s->term = 5;
    s->leader = 1;
    strcpy(s->leader_address, "127.0.0.1:7001");
    s->commit = 100;
    s->applied = 99;
    s->last_index = 101;
    s->snapshot_index = 50;
    s->snapshot_term = 4;
    s->conf_index = 3;
    s->epoch = 2;
    s->n_peers = RAFT_MAX_SERVERS;
    for (unsigned i = 0; i < RAFT_MAX_SERVERS; i++) {
        s->peers[i].id = i + 1;
        s->peers[i].suffrage = i % 2 ? RAFT_LEARNER : RAFT_VOTER;
        s->peers[i].is_connected = i % 3 == 0;
        s->peers[i].match = 1000 + i;
        s->peers[i].last_contact_ms = 10 * i;
        memset(s->peers[i].address, 'a' + (char)i, RAFT_ADDRESS_MAX - 1);
    }
    m[n].type = CTL_RESP_STATS;
    m[n].stats.proposals = 1;
    m[n].stats.snapshots_installed = 10;
    m[n].stats.commit.count = 3;
    m[n].stats.fsync.buckets[RAFT_HISTOGRAM_BUCKETS - 1] = 7;
    m[n++].stats.apply.sum_us = 9;
    return n;
}

/* The largest LOCKS and SESSIONS responses, every record different, with the largest values. */
static void full_lists(struct ctl_msg *locks, struct ctl_msg *sessions)
{
    memset(locks, 0, sizeof *locks);
    locks->type = CTL_RESP_LOCKS;
    locks->locks.is_truncated = true;
    locks->locks.n = CTL_LOCKS_MAX;
    /* Field by field: the padding stays zero, so whole structs compare. */
    for (unsigned i = 0; i < CTL_LOCKS_MAX; i++) {
        struct ctl_lock *l = &locks->locks.locks[i];
        l->ino = UINT64_MAX - i;
        l->node = i + 1;
        l->session = 1000 + i;
        l->pid = UINT32_MAX - i;
        l->kind = i % 2 ? CTL_LOCK_POSIX : CTL_LOCK_FLOCK;
        l->type = i % 3 ? CTL_LOCK_READ : CTL_LOCK_WRITE;
        l->state = (uint8_t)(1 + i % 3);
        l->start = (uint64_t)i << 40;
        l->len = i;
        l->token = UINT64_MAX / (i + 1);
        l->time.sec = INT64_MIN + i;
        l->time.nsec = 999999999 - i;
    }
    memset(sessions, 0, sizeof *sessions);
    sessions->type = CTL_RESP_SESSIONS;
    sessions->sessions.n = CTL_SESSIONS_MAX;
    for (unsigned i = 0; i < CTL_SESSIONS_MAX; i++) {
        struct ctl_session *e = &sessions->sessions.sessions[i];
        e->id = UINT64_MAX - i;
        e->node = i;
        e->state = i % 2 ? CTL_SESSION_ENDED : CTL_SESSION_LIVE;
        e->opened.sec = INT64_MAX - i;
        e->opened.nsec = i;
        e->ended.sec = -(int64_t)i;
        e->ended.nsec = 999999999;
    }
}

static void round_trip_every_type(void **state)
{
    (void)state;
    static struct ctl_msg m[11], back, extra[9];
    unsigned n = samples(m);
    struct ctl_msg *v = &extra[0];
    memset(extra, 0, sizeof extra);
    v->type = CTL_RESP_VERIFY;
    v->verify.index = 42;
    v->verify.n = 2;
    v->verify.nodes[0].id = 1;
    memset(v->verify.nodes[0].digest, 0xab, CTL_DIGEST_SIZE);
    v->verify.nodes[1].id = 2;
    v->verify.nodes[1].status = RAFT_ETIMEDOUT;
    extra[1].type = CTL_REQ_LOCKS;
    extra[2].type = CTL_REQ_SESSIONS;
    full_lists(&extra[3], &extra[4]);
    extra[5].type = CTL_REQ_FAULTS;
    strcpy(extra[5].faults.spec, "drop:1 delay:2:50");
    extra[6].type = CTL_REQ_OWN_SESSION;
    extra[7].type = CTL_RESP_OWN_SESSION;
    extra[7].own.state = CTL_OWN_LOST;
    extra[7].own.session = 17;
    extra[7].own.since_ms = UINT64_MAX;
    strcpy(extra[7].own.reason, "no confirmed contact");
    extra[8].type = CTL_REQ_READ_BARRIER;
    for (unsigned i = 0; i < n + 9; i++) {
        const struct ctl_msg *want = i < n ? &m[i] : &extra[i - n];
        uint8_t buf[CTL_FRAME_MAX];
        size_t len = ctl_encode(want, buf, sizeof buf);
        assert_true(len >= CTL_HEADER);
        enum ctl_type type;
        uint32_t plen;
        char err[256];
        assert_int_equal(ctl_header_check(buf, &type, &plen, err, sizeof err), 0);
        assert_int_equal(type, want->type);
        assert_int_equal(plen, len - CTL_HEADER);
        assert_int_equal(ctl_decode(type, buf + CTL_HEADER, plen, &back, err, sizeof err), 0);
        /* Decoding zeroes the message first, as the samples were: whole structs compare. */
        assert_memory_equal(&back, want, sizeof back);
        /* Every shorter payload is refused, and so is one byte more. */
        for (uint32_t cut = 0; cut < plen; cut++) {
            err[0] = '\0';
            assert_int_equal(ctl_decode(type, buf + CTL_HEADER, cut, &back, err, sizeof err),
                             RFS_EDECODE);
            assert_true(err[0] != '\0');
        }
        buf[len] = 0;
        assert_int_equal(ctl_decode(type, buf + CTL_HEADER, plen + 1, &back, err, sizeof err),
                         RFS_EDECODE);
        assert_non_null(strstr(err, "after the end"));
        /* A buffer one byte too small is not enough to encode it. */
        assert_int_equal(ctl_encode(want, buf, len - 1), 0);
    }
}

static void header_refusals(void **state)
{
    (void)state;
    struct ctl_msg m = {.type = CTL_REQ_STATUS};
    uint8_t good[CTL_HEADER], h[CTL_HEADER];
    assert_int_equal(ctl_encode(&m, good, sizeof good), CTL_HEADER);
    struct {
        unsigned off;
        uint8_t value;
        const char *reason;
    } cases[] = {
        {0, 'X', "bad magic"},      {4, 2, "protocol version 2"}, {5, 0, "unknown message type"},
        {5, 12, "unknown message"}, {5, 63, "unknown message"},   {5, 72, "unknown message"},
        {6, 1, "reserved"},         {7, 1, "reserved"},           {10, 1, "at most"},
        {9, 0x40 + 1, "at most"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(h, good, sizeof h);
        h[cases[i].off] = cases[i].value;
        enum ctl_type type;
        uint32_t len;
        char err[256] = "";
        assert_int_equal(ctl_header_check(h, &type, &len, err, sizeof err), RFS_EDECODE);
        assert_non_null(strstr(err, cases[i].reason));
    }
    /* The largest allowed payload passes the header check. */
    memcpy(h, good, sizeof h);
    h[8] = (uint8_t)CTL_PAYLOAD_MAX;
    h[9] = (uint8_t)(CTL_PAYLOAD_MAX >> 8);
    enum ctl_type type;
    uint32_t len;
    char err[256];
    assert_int_equal(ctl_header_check(h, &type, &len, err, sizeof err), 0);
    assert_int_equal(len, CTL_PAYLOAD_MAX);
}

static int decode_bytes(enum ctl_type type, const uint8_t *p, uint32_t len, char *err)
{
    struct ctl_msg m;
    return ctl_decode(type, p, len, &m, err, 256);
}

/* LOCKS and SESSIONS: the flag, the count, each record's enumerations and times. */
static void list_refusals(uint8_t *buf)
{
    char err[256];
    static struct ctl_msg l, e;
    full_lists(&l, &e);
    l.locks.n = e.sessions.n = 1;
    size_t ln = ctl_encode(&l, buf, CTL_FRAME_MAX);
    assert_int_equal(ln, CTL_HEADER + 3 + 67);
    uint8_t *p = buf + CTL_HEADER;
    struct {
        unsigned off;
        uint8_t value;
        const char *reason;
    } lc[] = {
        {0, 2, "truncated flag 2"},
        {1, 201, "201 records, at most 200"},
        {3 + 28, 0, "kind 0"},
        {3 + 28, 3, "kind 3"},
        {3 + 29, 3, "type 3"},
        {3 + 30, 4, "state 4"},
        {3 + 67 - 1, 0x40, "nanoseconds"},
    };
    for (unsigned i = 0; i < sizeof lc / sizeof lc[0]; i++) {
        uint8_t saved = p[lc[i].off];
        p[lc[i].off] = lc[i].value;
        assert_int_equal(decode_bytes(CTL_RESP_LOCKS, p, (uint32_t)(ln - CTL_HEADER), err),
                         RFS_EDECODE);
        assert_non_null(strstr(err, lc[i].reason));
        p[lc[i].off] = saved;
    }
    assert_int_equal(decode_bytes(CTL_RESP_LOCKS, p, (uint32_t)(ln - CTL_HEADER), err), 0);
    size_t sn = ctl_encode(&e, buf, CTL_FRAME_MAX);
    assert_int_equal(sn, CTL_HEADER + 3 + 41);
    p[3 + 16] = 3;
    assert_int_equal(decode_bytes(CTL_RESP_SESSIONS, p, (uint32_t)(sn - CTL_HEADER), err),
                     RFS_EDECODE);
    assert_non_null(strstr(err, "unknown state 3"));
    /* Encoding refuses the same. */
    l.locks.n = CTL_LOCKS_MAX + 1;
    assert_int_equal(ctl_encode(&l, buf, CTL_FRAME_MAX), 0);
    l.locks.n = 1;
    l.locks.locks[0].type = 0;
    assert_int_equal(ctl_encode(&l, buf, CTL_FRAME_MAX), 0);
    e.sessions.sessions[0].opened.nsec = 1000000000u;
    assert_int_equal(ctl_encode(&e, buf, CTL_FRAME_MAX), 0);
    e.sessions.n = CTL_SESSIONS_MAX + 1;
    assert_int_equal(ctl_encode(&e, buf, CTL_FRAME_MAX), 0);
}

static void field_refusals(void **state)
{
    (void)state;
    char err[256];
    /* change: op, server, expect, address length, address */
    uint8_t c[1 + 8 + 8 + 1 + 4] = {RAFT_CHANGE_REMOVE, 2, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, c, 18, err), 0);
    c[0] = 9;
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, c, 18, err), RFS_EDECODE);
    assert_non_null(strstr(err, "unknown change 9"));
    c[0] = RAFT_CHANGE_ADD_VOTER;
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, c, 18, err), RFS_EDECODE);
    assert_non_null(strstr(err, "needs an address"));
    c[17] = 4;
    memcpy(c + 18, "a\0:1", 4);
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, c, 22, err), RFS_EDECODE);
    assert_non_null(strstr(err, "NUL"));
    c[0] = RAFT_CHANGE_REMOVE;
    memcpy(c + 18, "h:10", 4);
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, c, 22, err), RFS_EDECODE);
    assert_non_null(strstr(err, "only an added server"));
    c[1] = 0;
    c[17] = 0;
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, c, 18, err), RFS_EDECODE);
    assert_non_null(strstr(err, "server ID 0"));
    /* An address as long as the array (no room for the NUL). */
    uint8_t big[18 + RAFT_ADDRESS_MAX] = {RAFT_CHANGE_ADD_LEARNER, 5};
    big[17] = RAFT_ADDRESS_MAX;
    memset(big + 18, 'x', RAFT_ADDRESS_MAX);
    assert_int_equal(decode_bytes(CTL_REQ_CHANGE, big, sizeof big, err), RFS_EDECODE);
    assert_non_null(strstr(err, "at most 63"));
    /* Encoding refuses what decoding would refuse. */
    struct ctl_msg m = {.type = CTL_REQ_CHANGE};
    m.change.op = RAFT_CHANGE_REMOVE;
    m.change.server = 3;
    strcpy(m.change.address, "x:1");
    uint8_t buf[CTL_FRAME_MAX];
    assert_int_equal(ctl_encode(&m, buf, sizeof buf), 0);
    m.type = 200;
    assert_int_equal(ctl_encode(&m, buf, sizeof buf), 0);
    /* status: a role and a member count out of range. */
    struct ctl_msg s[11];
    samples(s);
    struct ctl_msg *st = &s[9];
    size_t len = ctl_encode(st, buf, sizeof buf);
    assert_true(len > 0);
    buf[CTL_HEADER + 8] = 9; /* role */
    assert_int_equal(
        decode_bytes(CTL_RESP_STATUS, buf + CTL_HEADER, (uint32_t)(len - CTL_HEADER), err),
        RFS_EDECODE);
    assert_non_null(strstr(err, "unknown role 9"));
    st->status.n_peers = RAFT_MAX_SERVERS + 1;
    assert_int_equal(ctl_encode(st, buf, sizeof buf), 0);
    struct ctl_msg v = {.type = CTL_RESP_VERIFY};
    uint8_t vp[9] = {1, 0, 0, 0, 0, 0, 0, 0, RAFT_MAX_SERVERS + 1};
    assert_int_equal(decode_bytes(CTL_RESP_VERIFY, vp, sizeof vp, err), RFS_EDECODE);
    assert_non_null(strstr(err, "nodes, at most"));
    v.verify.n = RAFT_MAX_SERVERS + 1;
    assert_int_equal(ctl_encode(&v, buf, sizeof buf), 0);
    list_refusals(buf);
    /* OWN_SESSION: a state out of range, both ways. */
    struct ctl_msg own = {.type = CTL_RESP_OWN_SESSION};
    own.own.state = CTL_OWN_LOST + 1;
    assert_int_equal(ctl_encode(&own, buf, sizeof buf), 0);
    own.own.state = CTL_OWN_OPEN;
    len = ctl_encode(&own, buf, sizeof buf);
    assert_int_equal(len, CTL_HEADER + 18);
    buf[CTL_HEADER] = 0;
    assert_int_equal(
        decode_bytes(CTL_RESP_OWN_SESSION, buf + CTL_HEADER, (uint32_t)(len - CTL_HEADER), err),
        RFS_EDECODE);
    assert_non_null(strstr(err, "unknown own-session state 0"));
}

static void socket_io(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct ctl_msg m[11], back;
    samples(m);
    char err[256];
    /* Two frames back to back are read one at a time. */
    assert_int_equal(ctl_send(sv[0], &m[2]), 0);
    assert_int_equal(ctl_send(sv[0], &m[9]), 0);
    assert_int_equal(ctl_recv(sv[1], &back, err, sizeof err), 0);
    assert_memory_equal(&back, &m[2], sizeof back);
    assert_int_equal(ctl_recv(sv[1], &back, err, sizeof err), 0);
    assert_memory_equal(&back, &m[9], sizeof back);
    /* Half a header, then nothing: a timeout, reported as such. */
    uint8_t frame[CTL_FRAME_MAX];
    size_t n = ctl_encode(&m[2], frame, sizeof frame);
    assert_int_equal(write(sv[0], frame, 5), 5);
    assert_int_equal(ctl_recv(sv[1], &back, err, sizeof err), RFS_EIO);
    assert_non_null(strstr(err, "timed out"));
    /* A header whose payload is cut by the end of the stream. */
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(write(sp[0], frame, n - 1), (ssize_t)(n - 1));
    close(sp[0]);
    assert_int_equal(ctl_recv(sp[1], &back, err, sizeof err), RFS_EIO);
    assert_non_null(strstr(err, "closed inside"));
    /* A clean end of stream before a frame. */
    assert_int_equal(ctl_recv(sp[1], &back, err, sizeof err), RFS_ENOTFOUND);
    close(sp[1]);
    /* A bad header is refused without reading a payload. */
    memcpy(frame, "JUNKJUNKJUNK", CTL_HEADER);
    close(sv[0]);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    assert_int_equal(write(sp[0], frame, CTL_HEADER), CTL_HEADER);
    assert_int_equal(ctl_recv(sp[1], &back, err, sizeof err), RFS_EDECODE);
    assert_non_null(strstr(err, "bad magic"));
    /* Sending to a closed peer fails instead of raising SIGPIPE. */
    close(sp[1]);
    assert_int_equal(ctl_send(sp[0], &m[9]), RFS_EIO);
    close(sp[0]);
    close(sv[1]);
}

/* A peer that sends one byte every 60 ms never completes a frame within a 200 ms receive
 * timeout: the timeout bounds the whole frame, not each byte. */
static void slow_peer_times_out(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct ctl_msg m = {.type = CTL_REQ_STATUS}, back;
    uint8_t frame[CTL_HEADER];
    assert_int_equal(ctl_encode(&m, frame, sizeof frame), CTL_HEADER);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        for (unsigned i = 0; i < CTL_HEADER; i++) {
            struct timespec ts = {.tv_nsec = 60 * 1000 * 1000};
            nanosleep(&ts, NULL);
            if (write(sv[0], frame + i, 1) != 1)
                _exit(0);
        }
        _exit(0);
    }
    close(sv[0]);
    char err[256];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ctl_recv(sv[1], &back, err, sizeof err), RFS_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(strstr(err, "timed out"));
    /* Well before the 720 ms the whole header takes to arrive. */
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms < 600);
    /* The socket's timeout is the same for the next frame. */
    struct timeval after;
    socklen_t len = sizeof after;
    assert_int_equal(getsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &after, &len), 0);
    assert_int_equal(after.tv_sec, 0);
    assert_int_equal(after.tv_usec, 200000);
    close(sv[1]);
    waitpid(pid, NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_type), cmocka_unit_test(header_refusals),
        cmocka_unit_test(field_refusals),        cmocka_unit_test(socket_io),
        cmocka_unit_test(slow_peer_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
