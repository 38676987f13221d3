/* The message codec: every type round-trips, every truncation and a range of corruptions are
 * refused, and counts in a frame cannot make the decoder allocate beyond the frame's size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "raft/raft.h"

static uint64_t rng = 42;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint8_t payload[3][100];
static struct raft_entry entries[3];

static struct raft_msg sample(enum raft_msg_type type)
{
    struct raft_msg m = {.type = type, .from = 1 + rnd() % 9, .to = 1 + rnd() % 9};
    m.term = 5 + rnd() % 100;
    switch (type) {
    case RAFT_MSG_APPEND:
        m.append.prev_index = rnd() % 1000;
        m.append.prev_term = 3;
        m.append.commit = rnd();
        m.append.n_entries = 3;
        for (unsigned i = 0; i < 3; i++) {
            for (size_t k = 0; k < sizeof payload[i]; k++)
                payload[i][k] = (uint8_t)rnd();
            entries[i] = (struct raft_entry){.term = 4 + i,
                                             .index = m.append.prev_index + 1 + i,
                                             .type = RAFT_ENTRY_COMMAND,
                                             .len = (uint32_t)(i * 40),
                                             .data = i ? payload[i] : NULL};
        }
        m.append.entries = entries;
        break;
    case RAFT_MSG_APPEND_RESP:
        m.append_resp.success = rnd() & 1;
        m.append_resp.index = rnd();
        m.append_resp.reject_index = rnd();
        m.append_resp.conflict_index = rnd();
        m.append_resp.conflict_term = rnd();
        break;
    case RAFT_MSG_VOTE:
        m.vote.is_pre_vote = true;
        m.vote.is_transfer = rnd() & 1;
        m.vote.last_index = rnd();
        m.vote.last_term = rnd();
        break;
    case RAFT_MSG_VOTE_RESP: m.vote_resp.granted = true; break;
    case RAFT_MSG_HEARTBEAT:
        m.heartbeat.commit = rnd();
        m.heartbeat.read_seq = rnd();
        break;
    case RAFT_MSG_HEARTBEAT_RESP: m.heartbeat_resp.read_seq = rnd(); break;
    case RAFT_MSG_SNAPSHOT:
        m.snapshot.index = rnd();
        m.snapshot.term = 2;
        m.snapshot.conf.n = 2;
        m.snapshot.conf.servers[0] = (struct raft_server){.id = 1, .suffrage = RAFT_VOTER};
        m.snapshot.conf.servers[1] = (struct raft_server){.id = 7, .suffrage = RAFT_LEARNER};
        strcpy(m.snapshot.conf.servers[1].address, "node7:7000");
        m.snapshot.size = 1000;
        m.snapshot.offset = 900;
        m.snapshot.len = 100;
        m.snapshot.data = payload[0];
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        m.snapshot_resp.index = rnd();
        m.snapshot_resp.received = rnd();
        m.snapshot_resp.is_done = true;
        break;
    case RAFT_MSG_TIMEOUT_NOW: break;
    case RAFT_MSG_READ_INDEX: m.read_index.id = rnd(); break;
    case RAFT_MSG_READ_INDEX_RESP:
        m.read_index_resp.id = rnd();
        m.read_index_resp.index = rnd();
        m.read_index_resp.status = RAFT_ENOTLEADER;
        break;
    }
    return m;
}

static uint8_t *encode(const struct raft_msg *m, size_t *len)
{
    *len = raft_msg_encoded_size(m);
    uint8_t *buf = malloc(*len);
    raft_msg_encode(m, buf);
    return buf;
}

static void every_type_round_trips(void **state)
{
    (void)state;
    for (int t = RAFT_MSG_APPEND; t <= RAFT_MSG_TYPE_MAX; t++) {
        struct raft_msg m = sample((enum raft_msg_type)t);
        size_t len;
        uint8_t *buf = encode(&m, &len);
        struct raft_msg d;
        assert_int_equal(raft_msg_decode(buf, len, &d, NULL), 0);
        assert_int_equal(d.type, m.type);
        assert_int_equal(d.from, m.from);
        assert_int_equal(d.to, m.to);
        assert_int_equal(d.term, m.term);
        /* Re-encoding gives the same bytes: every field survived. */
        size_t len2;
        uint8_t *buf2 = encode(&d, &len2);
        assert_int_equal(len2, len);
        assert_memory_equal(buf2, buf, len);
        if (t == RAFT_MSG_APPEND) {
            assert_int_equal(d.append.n_entries, 3);
            assert_int_equal(d.append.entries[2].index, m.append.prev_index + 3);
            assert_memory_equal(d.append.entries[2].data, payload[2], 80);
        }
        if (t == RAFT_MSG_SNAPSHOT)
            assert_string_equal(d.snapshot.conf.servers[1].address, "node7:7000");
        raft_msg_release(&d, NULL);
        free(buf2);
        free(buf);
    }
}

static void truncations_and_trailing_bytes_are_refused(void **state)
{
    (void)state;
    for (int t = RAFT_MSG_APPEND; t <= RAFT_MSG_TYPE_MAX; t++) {
        struct raft_msg m = sample((enum raft_msg_type)t);
        size_t len;
        uint8_t *buf = encode(&m, &len);
        struct raft_msg d;
        for (size_t cut = 0; cut < len; cut++)
            assert_int_equal(raft_msg_decode(buf, cut, &d, NULL), RAFT_EINVAL);
        uint8_t *longer = malloc(len + 1);
        memcpy(longer, buf, len);
        longer[len] = 0;
        assert_int_equal(raft_msg_decode(longer, len + 1, &d, NULL), RAFT_EINVAL);
        free(longer);
        free(buf);
    }
}

static void bad_fields_are_refused(void **state)
{
    (void)state;
    struct raft_msg m = sample(RAFT_MSG_VOTE);
    size_t len;
    uint8_t *buf = encode(&m, &len);
    struct raft_msg d;
    buf[0] = 0; /* unknown type */
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EINVAL);
    buf[0] = RAFT_MSG_TYPE_MAX + 1;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EINVAL);
    buf[0] = RAFT_MSG_VOTE;
    buf[25] = 0x80; /* unknown flag */
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EINVAL);
    free(buf);

    m = sample(RAFT_MSG_APPEND);
    buf = encode(&m, &len);
    /* Entry terms must not decrease: make the second entry's term lower than the first's. */
    size_t second = 25 + 28 + 13 + 0;
    buf[second] = 1;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EINVAL);
    free(buf);
}

static void huge_counts_do_not_allocate(void **state)
{
    (void)state;
    struct raft_msg m = sample(RAFT_MSG_APPEND);
    m.append.n_entries = 0;
    size_t len;
    uint8_t *buf = encode(&m, &len);
    /* Claim 2^32-1 entries in a frame that holds none. */
    memset(buf + len - 4, 0xff, 4);
    struct raft_msg d;
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EINVAL);
    free(buf);

    m = sample(RAFT_MSG_SNAPSHOT);
    buf = encode(&m, &len);
    memset(buf + len - 104, 0xff, 4); /* chunk length far beyond the frame */
    assert_int_equal(raft_msg_decode(buf, len, &d, NULL), RAFT_EINVAL);
    free(buf);
}

static void random_bytes_never_crash(void **state)
{
    (void)state;
    uint8_t buf[256];
    unsigned decoded = 0;
    for (int i = 0; i < 200000; i++) {
        size_t len = rnd() % sizeof buf;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rnd();
        if (len > 0)
            buf[0] = (uint8_t)(1 + rnd() % RAFT_MSG_TYPE_MAX);
        struct raft_msg d;
        if (raft_msg_decode(buf, len, &d, NULL) == 0) {
            decoded++;
            raft_msg_release(&d, NULL);
        }
    }
    (void)decoded; /* almost all are refused; the point is that none crashes (ASan run) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_round_trips),
        cmocka_unit_test(truncations_and_trailing_bytes_are_refused),
        cmocka_unit_test(bad_fields_are_refused),
        cmocka_unit_test(huge_counts_do_not_allocate),
        cmocka_unit_test(random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
