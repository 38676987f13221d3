/* Logs held by the simulator: a node's durable log and its shadow of the core's log (sim.h,
 * note 3). Deep copies throughout, so nothing depends on the core's buffers. */
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

uint64_t sim_log_last(const struct sim_log *l)
{
    return l->base + l->n;
}

uint64_t sim_log_term(const struct sim_log *l, uint64_t index)
{
    if (index == l->base) {
        return l->base_term;
    }
    const struct raft_entry *e = sim_log_get(l, index);
    return e ? e->term : 0;
}

const struct raft_entry *sim_log_get(const struct sim_log *l, uint64_t index)
{
    if (index <= l->base || index > l->base + l->n) {
        return NULL;
    }
    return &l->e[index - l->base - 1];
}

void sim_entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len > 0) {
        dst->data = malloc(src->len);
        if (dst->data == NULL) {
            abort();
        }
        memcpy(dst->data, src->data, src->len);
    }
}

uint64_t sim_entry_hash(const struct raft_entry *e)
{
    uint64_t h = sim_hash(SIM_HASH_INIT, &e->type, 1);
    h = sim_hash(h, &e->len, sizeof e->len);
    return e->len ? sim_hash(h, e->data, e->len) : h;
}

void sim_log_truncate(struct sim_log *l, uint64_t from)
{
    uint64_t keep = from <= l->base ? 0 : from - l->base - 1;
    while (l->n > keep) {
        free(l->e[--l->n].data);
    }
}

int sim_log_append(struct sim_log *l, const struct raft_entry *entries, size_t n)
{
    size_t skip = 0;
    while (skip < n && entries[skip].index <= l->base) {
        skip++;
    }
    if (skip < n && entries[skip].index != sim_log_last(l) + 1) {
        return -1;
    }
    if (l->n + n - skip > l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        while (cap < l->n + n - skip) {
            cap *= 2;
        }
        l->e = realloc(l->e, cap * sizeof *l->e);
        if (l->e == NULL) {
            abort();
        }
        l->cap = cap;
    }
    for (size_t i = skip; i < n; i++) {
        sim_entry_copy(&l->e[l->n++], &entries[i]);
    }
    return 0;
}

void sim_log_compact(struct sim_log *l, uint64_t to)
{
    if (to <= l->base) {
        return;
    }
    if (to >= sim_log_last(l)) {
        /* Everything goes; the term at `to` is known only if it was in the log. */
        uint64_t term = to == sim_log_last(l) ? sim_log_term(l, to) : 0;
        sim_log_reset(l, to, term);
        return;
    }
    size_t drop = to - l->base;
    uint64_t term = l->e[drop - 1].term;
    for (size_t i = 0; i < drop; i++) {
        free(l->e[i].data);
    }
    memmove(l->e, l->e + drop, (l->n - drop) * sizeof *l->e);
    l->n -= drop;
    l->base = to;
    l->base_term = term;
}

void sim_log_reset(struct sim_log *l, uint64_t base, uint64_t base_term)
{
    sim_log_truncate(l, 0);
    l->base = base;
    l->base_term = base_term;
}

void sim_log_copy(struct sim_log *dst, const struct sim_log *src)
{
    sim_log_reset(dst, src->base, src->base_term);
    if (sim_log_append(dst, src->e, src->n) != 0) {
        abort(); /* src is contiguous by construction */
    }
}

void sim_log_free(struct sim_log *l)
{
    sim_log_truncate(l, 0);
    free(l->e);
    memset(l, 0, sizeof *l);
}
