/* Encoding of Raft messages for the transport (docs/wire-format.md). Decoding treats its input
 * as hostile: every count is checked against the bytes that remain before anything is
 * allocated, so a frame can never make the daemon allocate more than its own size allows. */
#include <string.h>

#include "lib/le.h"
#include "raft/internal.h"

#define ENTRY_HEADER 13 /* u64 term | u8 type | u32 len */

struct writer {
    uint8_t *p;
};

static void w_u8(struct writer *w, uint8_t v)
{
    *w->p++ = v;
}

static void w_u32(struct writer *w, uint32_t v)
{
    rfs_put_le32(w->p, v);
    w->p += 4;
}

static void w_u64(struct writer *w, uint64_t v)
{
    rfs_put_le64(w->p, v);
    w->p += 8;
}

static void w_bytes(struct writer *w, const void *data, size_t len)
{
    if (len > 0)
        memcpy(w->p, data, len);
    w->p += len;
}

struct reader {
    const uint8_t *p;
    size_t left;
    bool is_bad;
};

static bool r_need(struct reader *r, size_t n)
{
    if (r->is_bad || r->left < n) {
        r->is_bad = true;
        return false;
    }
    return true;
}

static uint8_t r_u8(struct reader *r)
{
    if (!r_need(r, 1))
        return 0;
    r->left--;
    return *r->p++;
}

static uint32_t r_u32(struct reader *r)
{
    if (!r_need(r, 4))
        return 0;
    uint32_t v = rfs_get_le32(r->p);
    r->p += 4;
    r->left -= 4;
    return v;
}

static uint64_t r_u64(struct reader *r)
{
    if (!r_need(r, 8))
        return 0;
    uint64_t v = rfs_get_le64(r->p);
    r->p += 8;
    r->left -= 8;
    return v;
}

static const uint8_t *r_bytes(struct reader *r, size_t n)
{
    if (!r_need(r, n))
        return NULL;
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

#define HEADER 25 /* u8 type | u64 from | u64 to | u64 term */

size_t raft_msg_encoded_size(const struct raft_msg *m)
{
    size_t n = HEADER;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        n += 28;
        for (unsigned i = 0; i < m->append.n_entries; i++)
            n += ENTRY_HEADER + m->append.entries[i].len;
        break;
    case RAFT_MSG_APPEND_RESP: n += 33; break;
    case RAFT_MSG_VOTE: n += 17; break;
    case RAFT_MSG_VOTE_RESP: n += 1; break;
    case RAFT_MSG_HEARTBEAT: n += 16; break;
    case RAFT_MSG_HEARTBEAT_RESP: n += 8; break;
    case RAFT_MSG_SNAPSHOT:
        n += 16 + 4 + raft_configuration_encoded_size(&m->snapshot.conf) + 20 + m->snapshot.len;
        break;
    case RAFT_MSG_SNAPSHOT_RESP: n += 17; break;
    case RAFT_MSG_TIMEOUT_NOW: break;
    case RAFT_MSG_READ_INDEX: n += 8; break;
    case RAFT_MSG_READ_INDEX_RESP: n += 20; break;
    }
    return n;
}

void raft_msg_encode(const struct raft_msg *m, uint8_t *buf)
{
    struct writer w = {buf};
    w_u8(&w, (uint8_t)m->type);
    w_u64(&w, m->from);
    w_u64(&w, m->to);
    w_u64(&w, m->term);
    switch (m->type) {
    case RAFT_MSG_APPEND:
        w_u64(&w, m->append.prev_index);
        w_u64(&w, m->append.prev_term);
        w_u64(&w, m->append.commit);
        w_u32(&w, m->append.n_entries);
        for (unsigned i = 0; i < m->append.n_entries; i++) {
            const struct raft_entry *e = &m->append.entries[i];
            w_u64(&w, e->term);
            w_u8(&w, e->type);
            w_u32(&w, e->len);
            w_bytes(&w, e->data, e->len);
        }
        break;
    case RAFT_MSG_APPEND_RESP:
        w_u8(&w, m->append_resp.success);
        w_u64(&w, m->append_resp.index);
        w_u64(&w, m->append_resp.reject_index);
        w_u64(&w, m->append_resp.conflict_index);
        w_u64(&w, m->append_resp.conflict_term);
        break;
    case RAFT_MSG_VOTE:
        w_u8(&w, (uint8_t)(m->vote.is_pre_vote | m->vote.is_transfer << 1));
        w_u64(&w, m->vote.last_index);
        w_u64(&w, m->vote.last_term);
        break;
    case RAFT_MSG_VOTE_RESP:
        w_u8(&w, (uint8_t)(m->vote_resp.is_pre_vote | m->vote_resp.granted << 1));
        break;
    case RAFT_MSG_HEARTBEAT:
        w_u64(&w, m->heartbeat.commit);
        w_u64(&w, m->heartbeat.read_seq);
        break;
    case RAFT_MSG_HEARTBEAT_RESP: w_u64(&w, m->heartbeat_resp.read_seq); break;
    case RAFT_MSG_SNAPSHOT: {
        size_t clen = raft_configuration_encoded_size(&m->snapshot.conf);
        w_u64(&w, m->snapshot.index);
        w_u64(&w, m->snapshot.term);
        w_u32(&w, (uint32_t)clen);
        raft_configuration_encode(&m->snapshot.conf, w.p);
        w.p += clen;
        w_u64(&w, m->snapshot.size);
        w_u64(&w, m->snapshot.offset);
        w_u32(&w, m->snapshot.len);
        w_bytes(&w, m->snapshot.data, m->snapshot.len);
        break;
    }
    case RAFT_MSG_SNAPSHOT_RESP:
        w_u64(&w, m->snapshot_resp.index);
        w_u64(&w, m->snapshot_resp.received);
        w_u8(&w, m->snapshot_resp.is_done);
        break;
    case RAFT_MSG_TIMEOUT_NOW: break;
    case RAFT_MSG_READ_INDEX: w_u64(&w, m->read_index.id); break;
    case RAFT_MSG_READ_INDEX_RESP:
        w_u64(&w, m->read_index_resp.id);
        w_u64(&w, m->read_index_resp.index);
        w_u32(&w, (uint32_t)m->read_index_resp.status);
        break;
    }
}

static bool flag_ok(uint8_t v, uint8_t mask)
{
    return (v & ~mask) == 0;
}

int raft_msg_decode(const uint8_t *buf, size_t len, struct raft_msg *m,
                    const struct raft_allocator *a)
{
    if (a == NULL)
        a = &raft_libc_allocator;
    struct reader r = {buf, len, false};
    memset(m, 0, sizeof *m);
    uint8_t type = r_u8(&r);
    m->from = r_u64(&r);
    m->to = r_u64(&r);
    m->term = r_u64(&r);
    if (r.is_bad || type < RAFT_MSG_APPEND || type > RAFT_MSG_TYPE_MAX || m->from == 0 ||
        m->to == 0)
        return RAFT_EINVAL;
    m->type = type;
    uint8_t flags;
    switch (m->type) {
    case RAFT_MSG_APPEND: {
        m->append.prev_index = r_u64(&r);
        m->append.prev_term = r_u64(&r);
        m->append.commit = r_u64(&r);
        uint32_t n = r_u32(&r);
        if (r.is_bad || n > r.left / ENTRY_HEADER)
            return RAFT_EINVAL;
        if (n == 0)
            break;
        struct raft_entry *entries = a->alloc(a->ctx, n * sizeof *entries);
        if (entries == NULL)
            return RAFT_ENOMEM;
        uint64_t prev_term = m->append.prev_term;
        for (uint32_t i = 0; i < n; i++) {
            struct raft_entry *e = &entries[i];
            e->index = m->append.prev_index + 1 + i;
            e->term = r_u64(&r);
            e->type = r_u8(&r);
            e->len = r_u32(&r);
            e->data = (void *)r_bytes(&r, e->len);
            /* Terms never decrease along a log, and entries have known types. */
            if (r.is_bad || e->term == 0 || e->term < prev_term || e->term > m->term ||
                e->type < RAFT_ENTRY_COMMAND || e->type > RAFT_ENTRY_CONFIG) {
                a->free(a->ctx, entries);
                return RAFT_EINVAL;
            }
            if (e->len == 0)
                e->data = NULL;
            prev_term = e->term;
        }
        m->append.entries = entries;
        m->append.n_entries = n;
        break;
    }
    case RAFT_MSG_APPEND_RESP:
        flags = r_u8(&r);
        m->append_resp.success = flags & 1;
        m->append_resp.index = r_u64(&r);
        m->append_resp.reject_index = r_u64(&r);
        m->append_resp.conflict_index = r_u64(&r);
        m->append_resp.conflict_term = r_u64(&r);
        if (!flag_ok(flags, 1))
            return RAFT_EINVAL;
        break;
    case RAFT_MSG_VOTE:
        flags = r_u8(&r);
        m->vote.is_pre_vote = flags & 1;
        m->vote.is_transfer = flags & 2;
        m->vote.last_index = r_u64(&r);
        m->vote.last_term = r_u64(&r);
        if (!flag_ok(flags, 3))
            return RAFT_EINVAL;
        break;
    case RAFT_MSG_VOTE_RESP:
        flags = r_u8(&r);
        m->vote_resp.is_pre_vote = flags & 1;
        m->vote_resp.granted = flags & 2;
        if (!flag_ok(flags, 3))
            return RAFT_EINVAL;
        break;
    case RAFT_MSG_HEARTBEAT:
        m->heartbeat.commit = r_u64(&r);
        m->heartbeat.read_seq = r_u64(&r);
        break;
    case RAFT_MSG_HEARTBEAT_RESP: m->heartbeat_resp.read_seq = r_u64(&r); break;
    case RAFT_MSG_SNAPSHOT: {
        m->snapshot.index = r_u64(&r);
        m->snapshot.term = r_u64(&r);
        uint32_t clen = r_u32(&r);
        const uint8_t *conf = r_bytes(&r, clen);
        if (r.is_bad || raft_configuration_decode(conf, clen, &m->snapshot.conf) != 0)
            return RAFT_EINVAL;
        m->snapshot.size = r_u64(&r);
        m->snapshot.offset = r_u64(&r);
        m->snapshot.len = r_u32(&r);
        m->snapshot.data = r_bytes(&r, m->snapshot.len);
        if (r.is_bad || m->snapshot.offset > m->snapshot.size ||
            m->snapshot.len > m->snapshot.size - m->snapshot.offset)
            return RAFT_EINVAL;
        break;
    }
    case RAFT_MSG_SNAPSHOT_RESP:
        m->snapshot_resp.index = r_u64(&r);
        m->snapshot_resp.received = r_u64(&r);
        flags = r_u8(&r);
        m->snapshot_resp.is_done = flags & 1;
        if (!flag_ok(flags, 1))
            return RAFT_EINVAL;
        break;
    case RAFT_MSG_TIMEOUT_NOW: break;
    case RAFT_MSG_READ_INDEX: m->read_index.id = r_u64(&r); break;
    case RAFT_MSG_READ_INDEX_RESP:
        m->read_index_resp.id = r_u64(&r);
        m->read_index_resp.index = r_u64(&r);
        m->read_index_resp.status = (int)r_u32(&r);
        break;
    }
    if (r.is_bad || r.left != 0) {
        raft_msg_release(m, a);
        return RAFT_EINVAL;
    }
    return 0;
}

void raft_msg_release(struct raft_msg *m, const struct raft_allocator *a)
{
    if (a == NULL)
        a = &raft_libc_allocator;
    if (m->type == RAFT_MSG_APPEND && m->append.entries != NULL) {
        a->free(a->ctx, m->append.entries);
        m->append.entries = NULL;
        m->append.n_entries = 0;
    }
}
