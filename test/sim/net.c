/* The simulated network: every message is deep-copied into flight with a seeded delay, and may
 * be dropped, duplicated or held back (which reorders it); partitions cut links one way or both
 * ways and are checked both when a message is sent and when it would arrive. */
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

struct sim_msg *sim_msg_copy(const struct raft_msg *m, const void *chunk)
{
    struct sim_msg *sm = calloc(1, sizeof *sm);
    if (sm == NULL) {
        abort();
    }
    sm->m = *m;
    if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0) {
        struct raft_entry *e = calloc(m->append.n_entries, sizeof *e);
        if (e == NULL) {
            abort();
        }
        for (unsigned i = 0; i < m->append.n_entries; i++) {
            sim_entry_copy(&e[i], &m->append.entries[i]);
        }
        sm->m.append.entries = e;
    } else if (m->type == RAFT_MSG_APPEND) {
        sm->m.append.entries = NULL;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        void *data = NULL;
        if (m->snapshot.len > 0) {
            data = malloc(m->snapshot.len);
            if (data == NULL) {
                abort();
            }
            memcpy(data, chunk ? chunk : m->snapshot.data, m->snapshot.len);
        }
        sm->m.snapshot.data = data;
    }
    return sm;
}

void sim_msg_free(struct sim_msg *sm)
{
    if (sm == NULL) {
        return;
    }
    if (sm->m.type == RAFT_MSG_APPEND) {
        for (unsigned i = 0; i < sm->m.append.n_entries; i++) {
            free(sm->m.append.entries[i].data);
        }
        free(sm->m.append.entries);
    }
    if (sm->m.type == RAFT_MSG_SNAPSHOT) {
        free((void *)sm->m.snapshot.data);
    }
    free(sm);
}

bool sim_net_link_up(const struct sim_cluster *c, unsigned from, unsigned to)
{
    return !c->net.is_blocked[from][to];
}

static uint64_t delay(struct sim_cluster *c)
{
    struct sim_net *n = &c->net;
    if (n->spike_per_mille && sim_rng_chance(&c->rng, n->spike_per_mille)) {
        return sim_rng_range(&c->rng, n->delay_max, n->spike_max);
    }
    return sim_rng_range(&c->rng, n->delay_min, n->delay_max);
}

void sim_net_send(struct sim_cluster *c, const struct raft_msg *m)
{
    char what[160];
    sim_msg_describe(m, what, sizeof what);
    c->net.sent++;
    unsigned from = (unsigned)m->from, to = (unsigned)m->to;
    if (to == 0 || to > c->n_nodes || from == to) {
        sim_fail(c, "message contract", "message to an unknown node: %s", what);
        return;
    }
    const void *chunk = NULL;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        /* The core leaves the chunk to the runtime: read it from the sender's stored snapshot,
         * which must still be the one the message names. */
        const struct sim_disk *d = &c->nodes[from].disk;
        if (d->snap.index != m->snapshot.index || d->snap.term != m->snapshot.term ||
            m->snapshot.offset + m->snapshot.len > d->snap.size ||
            m->snapshot.size != d->snap.size) {
            c->net.dropped++;
            sim_tracef(c, "drop %s (sender has snapshot %llu/%llu size %llu)", what,
                       (unsigned long long)d->snap.index, (unsigned long long)d->snap.term,
                       (unsigned long long)d->snap.size);
            return;
        }
        chunk = d->snap_data + m->snapshot.offset;
    }
    if (!sim_net_link_up(c, from, to) || sim_rng_chance(&c->rng, c->net.drop_per_mille)) {
        c->net.dropped++;
        sim_tracef(c, "drop %s", what);
        return;
    }
    unsigned copies = sim_rng_chance(&c->rng, c->net.dup_per_mille) ? 2 : 1;
    for (unsigned i = 0; i < copies; i++) {
        struct sim_ev ev = {.kind = SIM_EV_DELIVER, .node = to};
        ev.at = c->now + delay(c);
        ev.msg = sim_msg_copy(m, chunk);
        sim_schedule(c, &ev);
    }
    sim_tracef(c, "send %s%s", what, copies > 1 ? " (dup)" : "");
}

void sim_net_heal(struct sim_cluster *c)
{
    memset(c->net.is_blocked, 0, sizeof c->net.is_blocked);
    sim_tracef(c, "partition healed");
}

static void block(struct sim_cluster *c, unsigned a, unsigned b, bool both)
{
    c->net.is_blocked[a][b] = true;
    if (both) {
        c->net.is_blocked[b][a] = true;
    }
}

void sim_net_partition(struct sim_cluster *c)
{
    unsigned n = c->n_nodes;
    char desc[128] = "";
    size_t off = 0;
    unsigned kind = (unsigned)sim_rng_below(&c->rng, 4);
    if (kind < 3) {
        /* A new split replaces the old one; one-way cuts pile up on whatever is there. */
        memset(c->net.is_blocked, 0, sizeof c->net.is_blocked);
    }
    switch (kind) {
    case 0: { /* isolate the leader (or a random node), both ways */
        unsigned victim = sim_find_leader(c);
        if (victim == 0) {
            victim = 1 + (unsigned)sim_rng_below(&c->rng, n);
        }
        for (unsigned j = 1; j <= n; j++) {
            if (j != victim) {
                block(c, victim, j, true);
            }
        }
        snprintf(desc, sizeof desc, "isolate %u", victim);
        break;
    }
    case 1:
    case 2: { /* random split into two sides */
        bool side[SIM_MAX_NODES + 1];
        for (unsigned i = 1; i <= n; i++) {
            side[i] = sim_rng_chance(&c->rng, 500);
        }
        for (unsigned i = 1; i <= n; i++) {
            for (unsigned j = 1; j <= n; j++) {
                if (side[i] != side[j]) {
                    block(c, i, j, false);
                }
            }
            if (side[i] && off + 4 < sizeof desc) {
                off += (size_t)snprintf(desc + off, sizeof desc - off, "%u ", i);
            }
        }
        if (off + 4 < sizeof desc) {
            snprintf(desc + off, sizeof desc - off, "| rest");
        }
        break;
    }
    default: { /* a few one-way cuts */
        unsigned k = 1 + (unsigned)sim_rng_below(&c->rng, n);
        for (unsigned i = 0; i < k; i++) {
            unsigned a = 1 + (unsigned)sim_rng_below(&c->rng, n);
            unsigned b = 1 + (unsigned)sim_rng_below(&c->rng, n);
            if (a != b) {
                block(c, a, b, false);
                if (off + 12 < sizeof desc) {
                    off += (size_t)snprintf(desc + off, sizeof desc - off, "%u-/->%u ", a, b);
                }
            }
        }
        break;
    }
    }
    sim_tracef(c, "partition: %s", desc);
}
