/* Simulated disks: hard state and snapshots are durable at once; log writes queue in a FIFO
 * and complete in order after a seeded latency (sometimes a long stall). A crash loses the
 * writes that have not completed, except a random prefix that made it just in time. */
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

static void write_free(struct sim_write *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->entries[i].data);
    }
    free(w->entries);
}

uint64_t sim_disk_write(struct sim_cluster *c, unsigned node, uint64_t truncate_from,
                        const struct raft_entry *entries, size_t n)
{
    struct sim_node *nd = &c->nodes[node];
    struct sim_disk *d = &nd->disk;
    const struct sim_profile *p = &c->profile;
    if (d->n_pending == d->cap_pending) {
        d->cap_pending = d->cap_pending ? 2 * d->cap_pending : 16;
        d->pending = realloc(d->pending, d->cap_pending * sizeof *d->pending);
        if (d->pending == NULL) {
            abort();
        }
    }
    struct sim_write *w = &d->pending[d->n_pending++];
    memset(w, 0, sizeof *w);
    w->id = ++d->next_write_id;
    w->truncate_from = truncate_from;
    w->n = n;
    if (n > 0) {
        w->entries = calloc(n, sizeof *w->entries);
        if (w->entries == NULL) {
            abort();
        }
        for (size_t i = 0; i < n; i++) {
            sim_entry_copy(&w->entries[i], &entries[i]);
        }
    }
    uint64_t lat = sim_rng_range(&c->rng, p->disk_min, p->disk_max) * nd->disk_factor;
    if (nd->role == RAFT_LEADER && p->leader_disk_factor > 1) {
        lat *= p->leader_disk_factor;
    }
    if (p->disk_stall_per_mille && sim_rng_chance(&c->rng, p->disk_stall_per_mille)) {
        lat += p->disk_stall_ms;
    }
    /* Writes complete in order: never before the one queued ahead of this one. */
    uint64_t at = c->now + (lat ? lat : 1);
    if (at < d->last_complete_at) {
        at = d->last_complete_at;
    }
    d->last_complete_at = at;
    w->complete_at = at;
    struct sim_ev ev = {.kind = SIM_EV_DISK, .node = node, .epoch = nd->epoch, .id = w->id};
    ev.at = at;
    sim_schedule(c, &ev);
    return w->id;
}

/* Make the oldest pending write durable; returns whether it appended entries (and if so the
 * last one's index and term). */
static bool complete_head(struct sim_cluster *c, unsigned node, uint64_t *index, uint64_t *term)
{
    struct sim_disk *d = &c->nodes[node].disk;
    struct sim_write *w = &d->pending[0];
    if (w->truncate_from) {
        sim_log_truncate(&d->log, w->truncate_from);
    }
    bool has_entries = w->n > 0;
    if (has_entries) {
        if (sim_log_append(&d->log, w->entries, w->n) != 0) {
            sim_fail(c, "log contract",
                     "node %u: durable write of [%llu..%llu] does not follow the durable log "
                     "(base %llu, last %llu)",
                     node, (unsigned long long)w->entries[0].index,
                     (unsigned long long)w->entries[w->n - 1].index,
                     (unsigned long long)d->log.base, (unsigned long long)sim_log_last(&d->log));
        }
        *index = w->entries[w->n - 1].index;
        *term = w->entries[w->n - 1].term;
    }
    write_free(w);
    d->n_pending--;
    memmove(d->pending, d->pending + 1, d->n_pending * sizeof *d->pending);
    return has_entries;
}

static void report(struct sim_cluster *c, unsigned node, uint64_t index, uint64_t term)
{
    sim_tracef(c, "n%u persisted up to %llu/%llu", node, (unsigned long long)index,
               (unsigned long long)term);
    struct raft_event e = {.type = RAFT_EVENT_PERSISTED};
    e.persisted.index = index;
    e.persisted.term = term;
    sim_node_step(c, node, &e);
}

void sim_disk_complete(struct sim_cluster *c, unsigned node, uint64_t id)
{
    struct sim_disk *d = &c->nodes[node].disk;
    if (d->n_pending == 0 || d->pending[0].id != id) {
        return; /* completed early by a flush, or lost in a crash */
    }
    uint64_t index = 0, term = 0;
    if (complete_head(c, node, &index, &term) && c->nodes[node].is_up) {
        report(c, node, index, term);
    }
}

void sim_disk_flush(struct sim_cluster *c, unsigned node)
{
    /* Called while an update of this node is being processed, so the core cannot be stepped
     * here: the completions are reported as events of their own, right away and in order. */
    struct sim_disk *d = &c->nodes[node].disk;
    while (d->n_pending > 0) {
        uint64_t index = 0, term = 0;
        if (complete_head(c, node, &index, &term)) {
            struct sim_ev ev = {.kind = SIM_EV_LOCAL, .node = node, .epoch = c->nodes[node].epoch};
            ev.at = c->now;
            ev.ev.type = RAFT_EVENT_PERSISTED;
            ev.ev.persisted.index = index;
            ev.ev.persisted.term = term;
            sim_schedule(c, &ev);
        }
    }
}

void sim_disk_crash(struct sim_cluster *c, unsigned node)
{
    struct sim_disk *d = &c->nodes[node].disk;
    size_t survive = d->n_pending ? (size_t)sim_rng_below(&c->rng, d->n_pending + 1) : 0;
    if (c->nodes[node].is_losing_all) {
        survive = 0; /* a scripted crash in which no pending write made it */
    }
    for (size_t i = 0; i < survive; i++) {
        uint64_t index, term;
        complete_head(c, node, &index, &term);
    }
    if (d->n_pending > 0) {
        sim_tracef(c, "n%u crash: %zu log writes completed, %zu lost", node, survive, d->n_pending);
    }
    for (size_t i = 0; i < d->n_pending; i++) {
        write_free(&d->pending[i]);
    }
    d->n_pending = 0;
    d->last_complete_at = 0;
    free(d->recv);
    d->recv = NULL;
    d->recv_len = d->recv_cap = 0;
    d->recv_index = d->recv_term = 0;
}

void sim_disk_heal(struct sim_cluster *c, unsigned node)
{
    struct sim_disk *d = &c->nodes[node].disk;
    uint64_t at = c->now;
    for (size_t i = 0; i < d->n_pending; i++) {
        struct sim_write *w = &d->pending[i];
        at = at + 1 > w->complete_at ? w->complete_at : at + 1;
        if (at < w->complete_at) {
            /* The earlier event completes the write; the old one then finds it gone. */
            w->complete_at = at;
            struct sim_ev ev = {.kind = SIM_EV_DISK, .node = node, .id = w->id};
            ev.epoch = c->nodes[node].epoch;
            ev.at = at;
            sim_schedule(c, &ev);
        }
    }
    d->last_complete_at = at;
}

void sim_disk_set_snapshot(struct sim_disk *d, const struct raft_snapshot_meta *meta,
                           const uint8_t *data)
{
    uint8_t *copy = malloc(meta->size ? meta->size : 1);
    if (copy == NULL) {
        abort();
    }
    memcpy(copy, data, meta->size);
    free(d->snap_data);
    d->snap_data = copy;
    d->snap = *meta;
}

void sim_disk_free(struct sim_disk *d)
{
    for (size_t i = 0; i < d->n_pending; i++) {
        write_free(&d->pending[i]);
    }
    free(d->pending);
    free(d->recv);
    free(d->snap_data);
    sim_log_free(&d->log);
    memset(d, 0, sizeof *d);
}
