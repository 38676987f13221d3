/* One simulated server: its core, its disk and state machine, and the processing of every
 * update in the order raft.h prescribes (hard state, log, snapshot, sends, apply, results),
 * checking the update's contract and feeding the oracle as it goes. */
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

/* --- allocator with seeded failures ---------------------------------------------------------- */

static bool alloc_fails(struct sim_alloc *a)
{
    if (a->fail_per_mille && sim_rng_chance(&a->rng, a->fail_per_mille)) {
        a->failures++;
        return true;
    }
    return false;
}

static void *sa_alloc(void *ctx, size_t size)
{
    struct sim_alloc *a = ctx;
    if (alloc_fails(a)) {
        return NULL;
    }
    void *p = malloc(size ? size : 1);
    if (p) {
        a->live++;
    }
    return p;
}

static void *sa_realloc(void *ctx, void *ptr, size_t size)
{
    struct sim_alloc *a = ctx;
    if (alloc_fails(a)) {
        return NULL;
    }
    void *p = realloc(ptr, size ? size : 1);
    if (p && ptr == NULL) {
        a->live++;
    }
    return p;
}

static void sa_free(void *ctx, void *ptr)
{
    struct sim_alloc *a = ctx;
    if (ptr) {
        a->live--;
        free(ptr);
    }
}

/* --- configuration tracking ------------------------------------------------------------------ */

bool sim_node_conf_at(const struct sim_node *n, uint64_t index, struct raft_configuration *conf,
                      uint64_t *conf_index)
{
    uint64_t last = sim_log_last(&n->shadow);
    if (index > last) {
        index = last;
    }
    for (uint64_t i = index; i > n->shadow.base; i--) {
        const struct raft_entry *e = sim_log_get(&n->shadow, i);
        if (e->type == RAFT_ENTRY_CONFIG && raft_configuration_decode(e->data, e->len, conf) == 0) {
            *conf_index = i;
            return true;
        }
    }
    if (n->has_shadow_base_conf) {
        *conf = n->shadow_base_conf;
        *conf_index = n->shadow.base;
        return true;
    }
    return false;
}

static void refresh_conf(struct sim_node *n)
{
    n->has_conf = sim_node_conf_at(n, UINT64_MAX, &n->conf, &n->conf_index);
}

/* --- lifecycle ----------------------------------------------------------------------------- */

int sim_node_start(struct sim_cluster *c, unsigned id)
{
    struct sim_node *nd = &c->nodes[id];
    struct sim_disk *d = &nd->disk;

    /* raft_new takes the entries after the snapshot: drop the trailing window (and anything
     * the snapshot supersedes) from the durable log first. */
    if (d->snap.index > 0) {
        uint64_t t = sim_log_term(&d->log, d->snap.index);
        if (sim_log_last(&d->log) >= d->snap.index && d->log.base <= d->snap.index && t != 0 &&
            t != d->snap.term) {
            sim_fail(c, "log matching",
                     "node %u: durable log has %llu/%llu but its snapshot is %llu/%llu", id,
                     (unsigned long long)d->snap.index, (unsigned long long)t,
                     (unsigned long long)d->snap.index, (unsigned long long)d->snap.term);
        }
        if (sim_log_last(&d->log) > d->snap.index && d->log.base <= d->snap.index) {
            sim_log_compact(&d->log, d->snap.index);
        } else if (d->log.base != d->snap.index || sim_log_last(&d->log) <= d->snap.index) {
            sim_log_reset(&d->log, d->snap.index, d->snap.term);
        }
        d->log.base_term = d->snap.term;
    }

    struct raft_options o = c->opts;
    o.id = id;
    o.seed = sim_rng_next(&c->rng);
    nd->allocator = (struct raft_allocator){sa_alloc, sa_realloc, sa_free, &nd->alloc};
    o.allocator = &nd->allocator;
    struct raft_initial_state st = {
        .term = d->term,
        .vote = d->vote,
        .commit = 0,
        .snapshot = d->snap,
        .entries = d->log.e,
        .n_entries = d->log.n,
        .applied = d->snap.index,
    };
    int rc = raft_new(&o, &st, &nd->core);
    if (rc != 0) {
        nd->core = NULL;
        sim_tracef(c, "n%u start failed: %s", id, raft_strerror(rc));
        if (nd->alloc.live != 0) {
            sim_fail(c, "memory", "node %u: failed raft_new leaked %ld allocations", id,
                     nd->alloc.live);
        }
        return rc;
    }
    nd->is_up = true;
    memset(&nd->kv, 0, sizeof nd->kv);
    if (d->snap.index > 0 &&
        sim_kv_restore(&nd->kv, d->snap_data, d->snap.size, d->snap.index, d->snap.term) != 0) {
        sim_fail(c, "snapshot", "node %u: stored snapshot %llu is unreadable", id,
                 (unsigned long long)d->snap.index);
    }
    sim_log_copy(&nd->shadow, &d->log);
    nd->has_shadow_base_conf = d->snap.index > 0;
    nd->shadow_base_conf = d->snap.conf;
    refresh_conf(nd);
    nd->role = RAFT_FOLLOWER;
    nd->term = d->term;
    nd->leader = 0;
    nd->commit = 0;
    nd->is_installing = false;
    sim_tracef(c, "n%u start: term %llu vote %llu snapshot %llu/%llu log (%llu..%llu]", id,
               (unsigned long long)d->term, (unsigned long long)d->vote,
               (unsigned long long)d->snap.index, (unsigned long long)d->snap.term,
               (unsigned long long)d->log.base, (unsigned long long)sim_log_last(&d->log));
    return 0;
}

void sim_node_crash(struct sim_cluster *c, unsigned id)
{
    struct sim_node *nd = &c->nodes[id];
    if (!nd->is_up) {
        return;
    }
    sim_tracef(c, "n%u CRASH (role %s, term %llu)", id, raft_role_name(nd->role),
               (unsigned long long)nd->term);
    raft_free(nd->core);
    nd->core = NULL;
    if (nd->alloc.live != 0) {
        sim_fail(c, "memory", "node %u: raft_free left %ld allocations", id, nd->alloc.live);
        nd->alloc.live = 0;
    }
    sim_disk_crash(c, id);
    nd->epoch++;
    nd->is_up = false;
    nd->restarts++;
    memset(&nd->kv, 0, sizeof nd->kv);
    nd->role = RAFT_FOLLOWER;
    nd->leader = 0;
    sim_client_crashed(c, id);
}

/* --- update processing ---------------------------------------------------------------------- */

static void process_log(struct sim_cluster *c, unsigned id, const struct raft_update *u,
                        enum raft_role role, uint64_t term)
{
    struct sim_node *nd = &c->nodes[id];
    struct sim_log *sh = &nd->shadow;
    uint64_t last = sim_log_last(sh);
    bool is_leading = nd->role == RAFT_LEADER && role == RAFT_LEADER && nd->term == term;

    if (u->truncate_from) {
        if (u->truncate_from <= last && is_leading) {
            sim_fail(c, "leader append-only", "leader %u of term %llu truncates its log from %llu",
                     id, (unsigned long long)term, (unsigned long long)u->truncate_from);
            return;
        }
        if (u->truncate_from <= nd->commit) {
            sim_fail(c, "committed entry truncated", "node %u truncates from %llu, commit is %llu",
                     id, (unsigned long long)u->truncate_from, (unsigned long long)nd->commit);
            return;
        }
        if (u->truncate_from <= sh->base) {
            sim_fail(c, "log contract", "node %u truncates from %llu, inside its snapshot %llu", id,
                     (unsigned long long)u->truncate_from, (unsigned long long)sh->base);
            return;
        }
        if (u->truncate_from <= last) {
            sim_tracef(c, "n%u truncate from %llu (last %llu)", id,
                       (unsigned long long)u->truncate_from, (unsigned long long)last);
        }
        sim_log_truncate(sh, u->truncate_from);
        if (nd->conf_index >= u->truncate_from) {
            refresh_conf(nd);
        }
        last = sim_log_last(sh);
    }
    if (u->n_entries > 0) {
        const struct raft_entry *es = u->entries;
        if (es[0].index != last + 1) {
            sim_fail(c, "log contract",
                     "node %u appends [%llu..] but its log continues at %llu (truncate_from %llu)",
                     id, (unsigned long long)es[0].index, (unsigned long long)(last + 1),
                     (unsigned long long)u->truncate_from);
            return;
        }
        uint64_t prev_term = sim_log_term(sh, last);
        if (last < sh->base) {
            prev_term = UINT64_MAX;
        }
        for (size_t i = 0; i < u->n_entries; i++) {
            const struct raft_entry *e = &es[i];
            if (e->index != last + 1 + i || e->term == 0 || e->term > term ||
                (prev_term != UINT64_MAX && e->term < prev_term)) {
                sim_fail(c, "log contract",
                         "node %u (term %llu) appends %llu/%llu after term %llu at index %llu", id,
                         (unsigned long long)term, (unsigned long long)e->index,
                         (unsigned long long)e->term, (unsigned long long)prev_term,
                         (unsigned long long)(last + i));
                return;
            }
            if (role == RAFT_LEADER && nd->term == term && nd->role == RAFT_LEADER &&
                e->term != term) {
                sim_fail(c, "leader append-only",
                         "leader %u of term %llu appends %llu with term %llu", id,
                         (unsigned long long)term, (unsigned long long)e->index,
                         (unsigned long long)e->term);
                return;
            }
            sim_check_entry(c, e, prev_term, "append");
            prev_term = e->term;
        }
        sim_log_append(sh, es, u->n_entries);
        for (size_t i = 0; i < u->n_entries; i++) {
            if (es[i].type == RAFT_ENTRY_CONFIG) {
                if (raft_configuration_decode(es[i].data, es[i].len, &nd->conf) != 0) {
                    sim_fail(c, "log contract", "node %u: configuration entry %llu is malformed",
                             id, (unsigned long long)es[i].index);
                    return;
                }
                nd->conf_index = es[i].index;
                nd->has_conf = true;
            }
        }
        sim_tracef(c, "n%u append [%llu..%llu] t%llu", id, (unsigned long long)es[0].index,
                   (unsigned long long)es[u->n_entries - 1].index,
                   (unsigned long long)es[u->n_entries - 1].term);
    }
    sim_disk_write(c, id, u->truncate_from, u->entries, u->n_entries);
}

static void schedule_local(struct sim_cluster *c, unsigned id, uint64_t delay,
                           const struct raft_event *e)
{
    struct sim_ev ev = {.kind = SIM_EV_LOCAL, .node = id, .epoch = c->nodes[id].epoch};
    ev.at = c->now + delay;
    ev.ev = *e;
    sim_schedule(c, &ev);
}

static void process_snapshot(struct sim_cluster *c, unsigned id, const struct raft_update *u)
{
    struct sim_node *nd = &c->nodes[id];
    struct sim_disk *d = &nd->disk;
    if (u->snapshot.has_chunk) {
        if (u->snapshot.offset == 0) {
            d->recv_index = u->snapshot.index;
            d->recv_term = u->snapshot.term;
            d->recv_len = 0;
        } else if (d->recv_index != u->snapshot.index || d->recv_term != u->snapshot.term ||
                   u->snapshot.offset > d->recv_len) {
            sim_fail(c, "snapshot contract",
                     "node %u writes chunk at %llu of snapshot %llu/%llu, but holds %zu bytes of "
                     "%llu/%llu",
                     id, (unsigned long long)u->snapshot.offset,
                     (unsigned long long)u->snapshot.index, (unsigned long long)u->snapshot.term,
                     d->recv_len, (unsigned long long)d->recv_index,
                     (unsigned long long)d->recv_term);
            return;
        }
        size_t end = (size_t)u->snapshot.offset + u->snapshot.len;
        if (end > d->recv_cap) {
            d->recv_cap = end * 2;
            d->recv = realloc(d->recv, d->recv_cap);
            if (d->recv == NULL) {
                abort();
            }
        }
        if (u->snapshot.len) {
            memcpy(d->recv + u->snapshot.offset, u->snapshot.data, u->snapshot.len);
        }
        if (end > d->recv_len) {
            d->recv_len = end;
        }
    }
    if (!u->snapshot.install) {
        return;
    }
    uint64_t index = u->snapshot.index, term = u->snapshot.term;
    struct sim_kv kv;
    memset(&kv, 0, sizeof kv);
    if (d->recv_index != index || d->recv_term != term ||
        sim_kv_restore(&kv, d->recv, d->recv_len, index, term) != 0) {
        sim_fail(c, "snapshot contract",
                 "node %u installs snapshot %llu/%llu but the received file (%llu/%llu, %zu "
                 "bytes) is not it",
                 id, (unsigned long long)index, (unsigned long long)term,
                 (unsigned long long)d->recv_index, (unsigned long long)d->recv_term, d->recv_len);
        return;
    }
    if (index <= nd->kv.applied_index) {
        sim_fail(c, "state machine safety",
                 "node %u installs snapshot %llu over a state machine that applied %llu", id,
                 (unsigned long long)index, (unsigned long long)nd->kv.applied_index);
        return;
    }
    if (index <= nd->commit) {
        /* Not a violation by itself, but worth seeing in a trace. */
        sim_tracef(c, "n%u installs snapshot %llu at or below its commit %llu", id,
                   (unsigned long long)index, (unsigned long long)nd->commit);
    }
    /* The install is reported first, then the writes queued before it complete (reported
     * late, as a writer thread would): the core must ignore PERSISTED for a log it no longer
     * has. On disk they land before the install, which then replaces the whole stored log by
     * an empty log continuing after the snapshot. */
    struct raft_event e = {.type = RAFT_EVENT_SNAPSHOT_INSTALLED};
    e.snapshot_installed.index = index;
    e.snapshot_installed.term = term;
    e.snapshot_installed.status = 0;
    schedule_local(c, id, 0, &e);
    sim_disk_flush(c, id);
    sim_log_reset(&d->log, index, term);
    sim_log_reset(&nd->shadow, index, term);
    struct raft_snapshot_meta meta = {.index = index, .term = term, .size = d->recv_len};
    meta.conf = u->snapshot.conf;
    sim_disk_set_snapshot(d, &meta, d->recv);
    nd->shadow_base_conf = u->snapshot.conf;
    nd->has_shadow_base_conf = true;
    refresh_conf(nd);
    nd->kv = kv;
    nd->is_installing = true;
    c->snapshots_installed++;
    sim_tracef(c, "n%u INSTALL snapshot %llu/%llu (%u servers)", id, (unsigned long long)index,
               (unsigned long long)term, u->snapshot.conf.n);
    sim_check_snapshot(c, id, index, term, sim_kv_digest(&kv));
    sim_client_snapshot(c, id);
}

static void process_role(struct sim_cluster *c, unsigned id, const struct raft_update *u)
{
    struct sim_node *nd = &c->nodes[id];
    enum raft_role role = raft_role(nd->core);
    uint64_t term = raft_term(nd->core);
    uint64_t leader = raft_leader(nd->core);
    if (term < nd->term) {
        sim_fail(c, "term monotonic", "node %u: term went from %llu to %llu", id,
                 (unsigned long long)nd->term, (unsigned long long)term);
    }
    if (term > nd->disk.term) {
        sim_fail(c, "hard state", "node %u is in term %llu but only term %llu is durable", id,
                 (unsigned long long)term, (unsigned long long)nd->disk.term);
    }
    if (role != nd->role || term != nd->term || leader != nd->leader) {
        sim_tracef(c, "n%u is %s in term %llu, leader %llu", id, raft_role_name(role),
                   (unsigned long long)term, (unsigned long long)leader);
    }
    if (role != u->role || leader != u->leader) {
        sim_fail(c, "update contract",
                 "node %u: update says %s with leader %llu, raft_role/raft_leader say %s, %llu", id,
                 raft_role_name(u->role), (unsigned long long)u->leader, raft_role_name(role),
                 (unsigned long long)leader);
    }
    nd->role = role;
    nd->term = term;
    nd->leader = leader;
    if (role == RAFT_LEADER) {
        sim_check_leader(c, id, term);
    }
    if (u->commit != nd->commit) {
        uint64_t from = nd->commit;
        nd->commit = u->commit;
        sim_check_commit(c, id, from, u->commit);
    }
}

static void process_msgs(struct sim_cluster *c, unsigned id, const struct raft_update *u)
{
    struct sim_node *nd = &c->nodes[id];
    for (size_t i = 0; i < u->n_msgs; i++) {
        const struct raft_msg *m = &u->msgs[i];
        bool is_pre = (m->type == RAFT_MSG_VOTE && m->vote.is_pre_vote) ||
                      (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.is_pre_vote);
        if (m->from != id) {
            sim_fail(c, "message contract", "node %u sends a message from %llu", id,
                     (unsigned long long)m->from);
            return;
        }
        /* Raft's persistence rule: a server's current term (and vote) are on disk before it
         * says anything in that term. Pre-votes carry a hypothetical term and bind no one. */
        if (!is_pre && m->term > nd->disk.term) {
            sim_fail(c, "hard state", "node %u sends %s in term %llu, durable term is %llu", id,
                     raft_msg_type_name(m->type), (unsigned long long)m->term,
                     (unsigned long long)nd->disk.term);
            return;
        }
        if (m->type == RAFT_MSG_VOTE_RESP && !is_pre && m->vote_resp.granted) {
            if (nd->disk.term != m->term || nd->disk.vote != m->to) {
                sim_fail(c, "hard state",
                         "node %u grants its vote to %llu in term %llu but the durable vote is "
                         "%llu in term %llu",
                         id, (unsigned long long)m->to, (unsigned long long)m->term,
                         (unsigned long long)nd->disk.vote, (unsigned long long)nd->disk.term);
                return;
            }
            sim_check_vote(c, id, m->term, m->to);
            if (!c->is_healing && c->profile.crash_after_vote_per_mille &&
                sim_rng_chance(&c->rng, c->profile.crash_after_vote_per_mille)) {
                struct sim_ev ev = {.kind = SIM_EV_CRASH, .node = id, .epoch = nd->epoch};
                ev.at = c->now + sim_rng_range(&c->rng, 0, 3);
                sim_schedule(c, &ev);
            }
        }
        if (m->type == RAFT_MSG_APPEND) {
            uint64_t prev = m->append.prev_term;
            for (unsigned k = 0; k < m->append.n_entries; k++) {
                const struct raft_entry *e = &m->append.entries[k];
                if (e->index != m->append.prev_index + 1 + k) {
                    sim_fail(c, "message contract", "node %u sends entries out of sequence", id);
                    return;
                }
                sim_check_entry(c, e, prev, "message");
                prev = e->term;
            }
        }
        sim_net_send(c, m);
    }
}

static void process_apply(struct sim_cluster *c, unsigned id, const struct raft_update *u)
{
    struct sim_node *nd = &c->nodes[id];
    for (size_t i = 0; i < u->n_apply && !c->is_failed; i++) {
        const struct raft_entry *e = &u->apply[i];
        if (e->index != nd->kv.applied_index + 1) {
            sim_fail(c, "apply order", "node %u applies %llu after %llu", id,
                     (unsigned long long)e->index, (unsigned long long)nd->kv.applied_index);
            return;
        }
        if (e->index > nd->commit) {
            sim_fail(c, "state machine safety", "node %u applies %llu/%llu beyond its commit %llu",
                     id, (unsigned long long)e->index, (unsigned long long)e->term,
                     (unsigned long long)nd->commit);
            return;
        }
        sim_kv_apply(&nd->kv, e);
        sim_check_apply(c, id, e, sim_kv_digest(&nd->kv));
        sim_client_applied(c, id, e);
    }
    if (u->n_apply > 0) {
        sim_tracef(c, "n%u apply [%llu..%llu]", id, (unsigned long long)u->apply[0].index,
                   (unsigned long long)u->apply[u->n_apply - 1].index);
    }
}

static void take_snapshot(struct sim_cluster *c, unsigned id)
{
    struct sim_node *nd = &c->nodes[id];
    struct sim_disk *d = &nd->disk;
    if (nd->kv.applied_index <= d->snap.index) {
        return;
    }
    struct raft_snapshot_meta meta = {
        .index = nd->kv.applied_index, .term = nd->kv.applied_term, .size = SIM_SNAP_BYTES};
    uint64_t conf_index;
    if (!sim_node_conf_at(nd, meta.index, &meta.conf, &conf_index)) {
        sim_fail(c, "snapshot", "node %u has no configuration at its applied index %llu", id,
                 (unsigned long long)meta.index);
        return;
    }
    uint8_t buf[SIM_SNAP_BYTES];
    sim_kv_snapshot(&nd->kv, buf);
    sim_disk_set_snapshot(d, &meta, buf);
    c->snapshots_taken++;
    sim_tracef(c, "n%u snapshot taken at %llu/%llu", id, (unsigned long long)meta.index,
               (unsigned long long)meta.term);
    sim_check_snapshot(c, id, meta.index, meta.term, sim_kv_digest(&nd->kv));
    struct raft_event e = {.type = RAFT_EVENT_SNAPSHOT_TAKEN};
    e.snapshot_taken.index = meta.index;
    e.snapshot_taken.size = meta.size;
    schedule_local(c, id, sim_rng_range(&c->rng, 0, 5), &e);
}

static void process_results(struct sim_cluster *c, unsigned id, const struct raft_update *u)
{
    for (size_t i = 0; i < u->n_reads; i++) {
        sim_client_read_result(c, id, &u->reads[i]);
    }
    for (size_t i = 0; i < u->n_changes; i++) {
        c->changes_done += u->changes[i].status == 0;
        sim_tracef(c, "n%u change %llu finished: %s", id, (unsigned long long)u->changes[i].id,
                   u->changes[i].status ? raft_strerror(u->changes[i].status) : "ok");
    }
    for (size_t i = 0; i < u->n_transfers; i++) {
        sim_tracef(c, "n%u transfer %llu finished: %s", id, (unsigned long long)u->transfers[i].id,
                   u->transfers[i].status ? raft_strerror(u->transfers[i].status) : "ok");
    }
}

static void process_update(struct sim_cluster *c, unsigned id, const struct raft_update *u)
{
    struct sim_node *nd = &c->nodes[id];
    struct sim_disk *d = &nd->disk;

    if (u->proposed_index) {
        sim_client_proposed(c, id, u->proposed_index, u->proposed_term);
    }
    /* 1. Hard state, durable before anything of this update leaves the node. */
    if (u->has_hard_state) {
        if (u->term < d->term || (u->term == d->term && d->vote != 0 && u->vote != d->vote)) {
            sim_fail(c, "hard state", "node %u: hard state %llu/vote %llu after %llu/vote %llu", id,
                     (unsigned long long)u->term, (unsigned long long)u->vote,
                     (unsigned long long)d->term, (unsigned long long)d->vote);
            return;
        }
        d->term = u->term;
        d->vote = u->vote;
    }
    /* 2. The log change. */
    nd->conf_before = nd->conf;
    if (u->truncate_from || u->n_entries) {
        process_log(c, id, u, raft_role(nd->core), raft_term(nd->core));
    }
    /* 3. Snapshot chunk and install. */
    if (!c->is_failed) {
        process_snapshot(c, id, u);
    }
    if (!c->is_failed) {
        process_role(c, id, u);
    }
    /* 4. Messages. */
    if (!c->is_failed) {
        process_msgs(c, id, u);
    }
    /* 5. Apply, then snapshots of the state machine. */
    if (!c->is_failed) {
        process_apply(c, id, u);
    }
    if (!c->is_failed && u->want_snapshot) {
        take_snapshot(c, id);
    }
    if (!c->is_failed && u->compact_to) {
        if (u->compact_to > d->snap.index) {
            sim_fail(c, "log contract", "node %u may compact to %llu, past its snapshot %llu", id,
                     (unsigned long long)u->compact_to, (unsigned long long)d->snap.index);
            return;
        }
        sim_log_compact(&d->log, u->compact_to);
    }
    /* 6. Results. */
    if (!c->is_failed) {
        process_results(c, id, u);
    }
    if (!c->is_failed && !nd->is_installing) {
        sim_check_core_log(c, id);
    }
}

int sim_node_step(struct sim_cluster *c, unsigned id, const struct raft_event *e)
{
    struct sim_node *nd = &c->nodes[id];
    struct raft_update u;
    memset(&u, 0, sizeof u);
    nd->steps++;
    c->steps++;
    int rc = raft_step(nd->core, e, &u);
    if (e->type == RAFT_EVENT_SNAPSHOT_INSTALLED) {
        nd->is_installing = false;
    }
    process_update(c, id, &u);
    return rc;
}
