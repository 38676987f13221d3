/* The in-memory log: a contiguous array of entries from log.offset+1 on, with a running byte
 * count so the bytes in flight to a follower are a subtraction, not a walk. */
#include <string.h>

#include "raft/internal.h"

int raft__log_init(struct raft *r, uint64_t offset)
{
    memset(&r->log, 0, sizeof r->log);
    r->log.offset = offset;
    return 0;
}

static void free_entries(struct raft *r, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        raft__free(r, r->log.entries[i].data);
}

void raft__log_close(struct raft *r)
{
    free_entries(r, 0, r->log.n);
    raft__free(r, r->log.entries);
    raft__free(r, r->log.bytes);
    memset(&r->log, 0, sizeof r->log);
}

uint64_t raft__log_last(const struct raft *r)
{
    return r->log.offset + r->log.n;
}

uint64_t raft__log_last_term(const struct raft *r)
{
    uint64_t t = 0;
    raft__log_term(r, raft__log_last(r), &t);
    return t;
}

bool raft__log_term(const struct raft *r, uint64_t index, uint64_t *term)
{
    if (index == 0) {
        *term = 0;
        return true;
    }
    if (index > r->log.offset && index <= raft__log_last(r)) {
        *term = r->log.entries[index - r->log.offset - 1].term;
        return true;
    }
    if (index == r->snapshot.index) {
        *term = r->snapshot.term;
        return true;
    }
    return false;
}

struct raft_entry *raft__log_at(const struct raft *r, uint64_t index)
{
    if (index <= r->log.offset || index > raft__log_last(r))
        return NULL;
    return &r->log.entries[index - r->log.offset - 1];
}

int raft__log_append(struct raft *r, uint64_t term, uint8_t type, const void *data, uint32_t len)
{
    size_t cap = r->log.cap;
    if (raft__grow(r, (void **)&r->log.entries, &cap, r->log.n + 1, sizeof *r->log.entries))
        return RAFT_ENOMEM;
    size_t cap_bytes = r->log.cap;
    if (raft__grow(r, (void **)&r->log.bytes, &cap_bytes, r->log.n + 1, sizeof *r->log.bytes))
        return RAFT_ENOMEM; /* entries grew, bytes did not: retried on the next append */
    r->log.cap = cap < cap_bytes ? cap : cap_bytes;

    void *copy = NULL;
    if (len > 0) {
        copy = raft__alloc(r, len);
        if (copy == NULL)
            return RAFT_ENOMEM;
        memcpy(copy, data, len);
    }
    struct raft_entry *e = &r->log.entries[r->log.n];
    e->term = term;
    e->index = raft__log_last(r) + 1;
    e->type = type;
    e->len = len;
    e->data = copy;
    uint64_t before = r->log.n ? r->log.bytes[r->log.n - 1] : r->log.bytes_base;
    r->log.bytes[r->log.n] = before + len;
    r->log.n++;
    raft__mark_new(r, e->index);
    return 0;
}

void raft__log_truncate(struct raft *r, uint64_t index)
{
    if (index > raft__log_last(r))
        return;
    size_t keep = index > r->log.offset ? (size_t)(index - r->log.offset - 1) : 0;
    free_entries(r, keep, r->log.n);
    r->log.n = keep;
}

void raft__log_compact(struct raft *r, uint64_t index)
{
    if (index <= r->log.offset)
        return;
    size_t drop = index >= raft__log_last(r) ? r->log.n : (size_t)(index - r->log.offset);
    if (drop > 0)
        r->log.bytes_base = r->log.bytes[drop - 1];
    free_entries(r, 0, drop);
    memmove(r->log.entries, r->log.entries + drop, (r->log.n - drop) * sizeof *r->log.entries);
    memmove(r->log.bytes, r->log.bytes + drop, (r->log.n - drop) * sizeof *r->log.bytes);
    r->log.n -= drop;
    r->log.offset += drop;
    if (r->log.n == 0)
        r->log.offset = index;
}

void raft__log_reset(struct raft *r, uint64_t index)
{
    free_entries(r, 0, r->log.n);
    r->log.n = 0;
    r->log.offset = index;
}

static uint64_t bytes_upto(const struct raft *r, uint64_t index)
{
    if (index <= r->log.offset || r->log.n == 0)
        return r->log.bytes_base;
    if (index > raft__log_last(r))
        index = raft__log_last(r);
    return r->log.bytes[index - r->log.offset - 1];
}

uint64_t raft__log_bytes(const struct raft *r, uint64_t from, uint64_t to)
{
    if (to <= from)
        return 0;
    return bytes_upto(r, to) - bytes_upto(r, from);
}
