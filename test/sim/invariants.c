/* The global oracle: it sees every node's updates and remembers, across crashes, what Raft
 * promises can never change: one leader per term (§5.2), one vote per server per term, an
 * (index, term) names one entry everywhere (log matching, §5.3), committed entries stay in
 * every later leader's log (leader completeness, §5.4), every state machine applies the same
 * entry at each index (§5.4.3), and a committed entry is durable on a quorum (thesis §10.2.1). */
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return p;
    }
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        n *= 2;
    }
    p = realloc(p, n * elem);
    if (p == NULL) {
        abort();
    }
    memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
    *cap = n;
    return p;
}

void sim_oracle_free(struct sim_oracle *o)
{
    free(o->leader_of_term);
    for (int i = 0; i <= SIM_MAX_NODES; i++) {
        free(o->vote_of[i]);
    }
    free(o->entries);
    free(o->committed);
    free(o->applied);
    memset(o, 0, sizeof *o);
}

/* --- log matching registry -------------------------------------------------------------------- */

static size_t slot(const struct sim_oracle *o, uint64_t index, uint64_t term)
{
    uint64_t h = (index * 0x9e3779b97f4a7c15ULL) ^ (term * 0xc2b2ae3d27d4eb4fULL);
    return (size_t)(h ^ (h >> 29)) & (o->cap_entries - 1);
}

static struct sim_entry_key *lookup(struct sim_oracle *o, uint64_t index, uint64_t term)
{
    if (o->n_entries * 2 >= o->cap_entries) {
        struct sim_entry_key *old = o->entries;
        size_t old_cap = o->cap_entries;
        o->cap_entries = old_cap ? old_cap * 2 : 1024;
        o->entries = calloc(o->cap_entries, sizeof *o->entries);
        if (o->entries == NULL) {
            abort();
        }
        for (size_t i = 0; i < old_cap; i++) {
            if (old[i].term) {
                size_t s = slot(o, old[i].index, old[i].term);
                while (o->entries[s].term) {
                    s = (s + 1) & (o->cap_entries - 1);
                }
                o->entries[s] = old[i];
            }
        }
        free(old);
    }
    size_t s = slot(o, index, term);
    while (o->entries[s].term && (o->entries[s].index != index || o->entries[s].term != term)) {
        s = (s + 1) & (o->cap_entries - 1);
    }
    return &o->entries[s];
}

void sim_check_entry(struct sim_cluster *c, const struct raft_entry *e, uint64_t prev_term,
                     const char *where)
{
    if (e->term == 0 || e->index == 0) {
        sim_fail(c, "log contract", "%s: entry %llu/%llu", where, (unsigned long long)e->index,
                 (unsigned long long)e->term);
        return;
    }
    struct sim_entry_key *k = lookup(&c->oracle, e->index, e->term);
    uint64_t hash = sim_entry_hash(e);
    if (k->term == 0) {
        k->index = e->index;
        k->term = e->term;
        k->hash = hash;
        k->prev_term = prev_term;
        c->oracle.n_entries++;
        return;
    }
    if (k->hash != hash) {
        sim_fail(c, "log matching", "%s: entry %llu/%llu seen with two different contents", where,
                 (unsigned long long)e->index, (unsigned long long)e->term);
    } else if (prev_term != UINT64_MAX && k->prev_term != UINT64_MAX && prev_term != k->prev_term) {
        sim_fail(c, "log matching",
                 "%s: entry %llu/%llu follows term %llu here, term %llu elsewhere", where,
                 (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)prev_term, (unsigned long long)k->prev_term);
    } else if (k->prev_term == UINT64_MAX) {
        k->prev_term = prev_term;
    }
}

/* --- elections ----------------------------------------------------------------------------- */

void sim_check_vote(struct sim_cluster *c, unsigned node, uint64_t term, uint64_t candidate)
{
    struct sim_oracle *o = &c->oracle;
    o->vote_of[node] = grow(o->vote_of[node], &o->n_vote_terms[node], term + 1, sizeof(uint64_t));
    uint64_t *v = &o->vote_of[node][term];
    if (*v != 0 && *v != candidate) {
        sim_fail(c, "one vote per term", "node %u voted for %llu and for %llu in term %llu", node,
                 (unsigned long long)*v, (unsigned long long)candidate, (unsigned long long)term);
        return;
    }
    *v = candidate;
}

void sim_check_leader(struct sim_cluster *c, unsigned node, uint64_t term)
{
    struct sim_oracle *o = &c->oracle;
    struct sim_node *nd = &c->nodes[node];
    o->leader_of_term = grow(o->leader_of_term, &o->n_terms, term + 1, sizeof(uint64_t));
    uint64_t *l = &o->leader_of_term[term];
    if (*l != 0 && *l != node) {
        sim_fail(c, "election safety", "nodes %llu and %u are both leaders of term %llu",
                 (unsigned long long)*l, node, (unsigned long long)term);
        return;
    }
    *l = node;
    if (nd->leader_term == term) {
        return;
    }
    nd->leader_term = term;
    c->elections++;
    /* Leader completeness (§5.4.1): everything committed so far is in the new leader's log. */
    const struct sim_log *sh = &nd->shadow;
    for (uint64_t i = sh->base; i <= o->max_committed; i++) {
        if (i == 0 || i >= o->cap_committed || !o->committed[i].is_set) {
            continue;
        }
        uint64_t t = sim_log_term(sh, i);
        if (t != o->committed[i].term) {
            sim_fail(c, "leader completeness",
                     "leader %u of term %llu has %llu/%llu, but %llu/%llu was committed (log "
                     "(%llu..%llu])",
                     node, (unsigned long long)term, (unsigned long long)i, (unsigned long long)t,
                     (unsigned long long)i, (unsigned long long)o->committed[i].term,
                     (unsigned long long)sh->base, (unsigned long long)sim_log_last(sh));
            return;
        }
    }
}

/* --- commitment ------------------------------------------------------------------------------- */

static bool durable_on(const struct sim_node *v, uint64_t index, uint64_t term)
{
    if (v->disk.snap.index >= index) {
        return true;
    }
    return sim_log_term(&v->disk.log, index) == term;
}

void sim_check_commit(struct sim_cluster *c, unsigned node, uint64_t from, uint64_t to)
{
    struct sim_oracle *o = &c->oracle;
    struct sim_node *nd = &c->nodes[node];
    const struct sim_log *sh = &nd->shadow;
    if (to < from) {
        sim_fail(c, "commit monotonic", "node %u: commit went from %llu to %llu", node,
                 (unsigned long long)from, (unsigned long long)to);
        return;
    }
    if (to > sim_log_last(sh)) {
        sim_fail(c, "commit", "node %u commits %llu past the end of its log %llu", node,
                 (unsigned long long)to, (unsigned long long)sim_log_last(sh));
        return;
    }
    o->committed = grow(o->committed, &o->cap_committed, to + 1, sizeof *o->committed);
    for (uint64_t i = from + 1 > sh->base ? from + 1 : sh->base; i <= to; i++) {
        if (i == 0) {
            continue;
        }
        const struct raft_entry *e = sim_log_get(sh, i);
        uint64_t term = e ? e->term : sh->base_term;
        uint64_t hash = e ? sim_entry_hash(e) : 0;
        struct sim_index_info *ci = &o->committed[i];
        if (!ci->is_set) {
            ci->is_set = true;
            ci->term = term;
            ci->hash = hash;
        } else if (ci->term != term || (hash && ci->hash && ci->hash != hash)) {
            sim_fail(c, "state machine safety",
                     "node %u commits %llu/%llu but %llu/%llu was committed before", node,
                     (unsigned long long)i, (unsigned long long)term, (unsigned long long)i,
                     (unsigned long long)ci->term);
            return;
        } else if (!ci->hash) {
            ci->hash = hash;
        }
    }
    if (to > o->max_committed) {
        o->max_committed = to;
    }
    if (nd->role != RAFT_LEADER || !nd->has_conf) {
        return;
    }
    /* A leader commits only what a quorum of its configuration's voters holds durably: the
     * leader's own entries count once persisted (thesis §10.2.1), a follower's once it acked
     * them, which it may do only after they are durable. The configuration is the one the
     * leader used: its latest, or the one before if this very step appended a new one (a
     * commit counted under the old configuration is safe, as one-server changes keep every
     * quorum of the old and the new overlapping). */
    uint64_t term = sim_log_term(sh, to);
    const struct raft_configuration *confs[2] = {&nd->conf, &nd->conf_before};
    char who[96] = "";
    unsigned voters = 0, durable = 0;
    for (int k = 0; k < 2; k++) {
        voters = durable = 0;
        size_t off = 0;
        who[0] = '\0';
        for (unsigned i = 0; i < confs[k]->n; i++) {
            const struct raft_server *s = &confs[k]->servers[i];
            if (s->suffrage != RAFT_VOTER || s->id == 0 || s->id > c->n_nodes) {
                continue;
            }
            voters++;
            if (durable_on(&c->nodes[s->id], to, term)) {
                durable++;
                if (off + 8 < sizeof who) {
                    off += (size_t)snprintf(who + off, sizeof who - off, " %llu",
                                            (unsigned long long)s->id);
                }
            }
        }
        if (durable * 2 > voters) {
            return;
        }
    }
    sim_fail(c, "durable quorum",
             "leader %u committed %llu/%llu, durable on %u of %u voters (on:%s)", node,
             (unsigned long long)to, (unsigned long long)term, durable, voters, who);
}

/* --- state machines -----------------------------------------------------------------------------
 */

void sim_check_apply(struct sim_cluster *c, unsigned node, const struct raft_entry *e,
                     uint64_t digest)
{
    struct sim_oracle *o = &c->oracle;
    uint64_t hash = sim_entry_hash(e);
    if (e->index < o->cap_committed && o->committed[e->index].is_set &&
        (o->committed[e->index].term != e->term ||
         (o->committed[e->index].hash && o->committed[e->index].hash != hash))) {
        sim_fail(c, "state machine safety", "node %u applies %llu/%llu but %llu/%llu is committed",
                 node, (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)e->index, (unsigned long long)o->committed[e->index].term);
        return;
    }
    o->applied = grow(o->applied, &o->cap_applied, e->index + 1, sizeof *o->applied);
    struct sim_index_info *a = &o->applied[e->index];
    if (!a->is_set) {
        a->is_set = true;
        a->term = e->term;
        a->hash = hash;
        a->digest = digest;
        return;
    }
    if (a->term != e->term || (a->hash && a->hash != hash)) {
        sim_fail(c, "state machine safety",
                 "node %u applies %llu/%llu, another node applied %llu/%llu there", node,
                 (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)e->index, (unsigned long long)a->term);
    } else if (a->digest != digest) {
        sim_fail(c, "state machine safety",
                 "node %u: state after applying %llu differs from another node's", node,
                 (unsigned long long)e->index);
    } else if (!a->hash) {
        a->hash = hash;
    }
}

void sim_check_snapshot(struct sim_cluster *c, unsigned node, uint64_t index, uint64_t term,
                        uint64_t digest)
{
    struct sim_oracle *o = &c->oracle;
    o->applied = grow(o->applied, &o->cap_applied, index + 1, sizeof *o->applied);
    struct sim_index_info *a = &o->applied[index];
    if (!a->is_set) {
        /* The content of the entry is unknown here; only its term and the state after it. */
        a->is_set = true;
        a->term = term;
        a->digest = digest;
        return;
    }
    if (a->term != term || a->digest != digest) {
        sim_fail(c, "state machine safety",
                 "node %u: snapshot %llu/%llu differs from the state applied at %llu (term %llu)",
                 node, (unsigned long long)index, (unsigned long long)term,
                 (unsigned long long)index, (unsigned long long)a->term);
    }
}

void sim_check_core_log(struct sim_cluster *c, unsigned node)
{
    struct sim_node *nd = &c->nodes[node];
    const struct sim_log *sh = &nd->shadow;
    struct raft_status st;
    raft_status(nd->core, &st);
    uint64_t last = sim_log_last(sh);
    if (st.last_index != last) {
        sim_fail(c, "storage contract",
                 "node %u: the core's log ends at %llu, the log it told us to store at %llu", node,
                 (unsigned long long)st.last_index, (unsigned long long)last);
        return;
    }
    if (st.commit != nd->commit) {
        sim_fail(c, "update contract", "node %u: raft_status commit %llu, update commit %llu", node,
                 (unsigned long long)st.commit, (unsigned long long)nd->commit);
        return;
    }
    /* Compare the last entry and one random entry of the core's log with the shadow. */
    uint64_t probe[2] = {last, 0};
    uint64_t lo = st.first_index > sh->base + 1 ? st.first_index : sh->base + 1;
    if (last >= lo) {
        probe[1] = lo + sim_rng_below(&c->rng, last - lo + 1);
    }
    for (int i = 0; i < 2; i++) {
        if (probe[i] <= sh->base || probe[i] < st.first_index) {
            continue;
        }
        const struct raft_entry *ce = raft_log_get(nd->core, probe[i]);
        const struct raft_entry *se = sim_log_get(sh, probe[i]);
        if (ce == NULL || ce->term != se->term || sim_entry_hash(ce) != sim_entry_hash(se)) {
            sim_fail(c, "storage contract",
                     "node %u: the core's entry %llu is %llu, the stored one %llu", node,
                     (unsigned long long)probe[i], (unsigned long long)(ce ? ce->term : 0),
                     (unsigned long long)se->term);
            return;
        }
    }
}
