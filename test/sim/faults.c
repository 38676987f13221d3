/* The fault schedule: the profile each seed draws (which faults, how often, which core options)
 * and the actions taken during the fault phase: partitions, crashes, network and disk quality,
 * allocation failures, membership changes, leadership transfers and forced elections. */
#include <string.h>

#include "test/sim/sim.h"

static uint64_t pick(struct sim_rng *r, const uint64_t *v, size_t n)
{
    return v[sim_rng_below(r, n)];
}
#define PICK(r, ...)                                                                               \
    pick((r), (const uint64_t[]){__VA_ARGS__}, sizeof((const uint64_t[]){__VA_ARGS__}) / 8)

enum profile_kind {
    PROFILE_MIXED,
    PROFILE_CRASHES,    /* slow leader disks, crashes (after votes too) */
    PROFILE_PARTITIONS, /* divergent logs, tiny snapshots */
    PROFILE_MEMBERSHIP, /* bursts of changes under partitions */
    PROFILE_READS,      /* reads at (stale) leaders, leader isolation */
    PROFILE_ALLOC,      /* allocation failures on top of the mix */
    PROFILE_COUNT,
};

static const char *profile_names[PROFILE_COUNT] = {"mixed",      "crashes", "partitions",
                                                   "membership", "reads",   "alloc"};

static void net_quality(struct sim_cluster *c)
{
    struct sim_rng *r = &c->rng;
    c->net.drop_per_mille = (unsigned)PICK(r, 0, 0, 10, 50, 150);
    c->net.dup_per_mille = (unsigned)PICK(r, 0, 0, 10, 50);
    c->net.delay_min = (unsigned)sim_rng_range(r, 1, 3);
    c->net.delay_max = c->net.delay_min + (unsigned)PICK(r, 2, 5, 15, 30);
    c->net.spike_per_mille = (unsigned)PICK(r, 0, 10, 50);
    c->net.spike_max = c->net.delay_max + (unsigned)sim_rng_range(r, 20, 300);
}

void sim_profile_pick(struct sim_cluster *c)
{
    struct sim_profile *p = &c->profile;
    struct sim_rng *r = &c->rng;
    struct raft_options *o = &c->opts;
    enum profile_kind kind = (enum profile_kind)((c->seed / 3) % PROFILE_COUNT);

    raft_options_default(o, 1);
    o->election_ticks = 10;
    o->heartbeat_ticks = (unsigned)sim_rng_range(r, 1, 3);
    o->pre_vote = sim_rng_chance(r, 850);
    o->check_quorum = sim_rng_chance(r, kind == PROFILE_READS ? 500 : 800);
    o->lease_reads = false;
    o->lease_drift_ticks = 2;
    /* The defaults are sized for 100-tick elections; scale them to our 10. */
    o->catchup_rounds = 10;
    o->catchup_round_ticks = 10;
    o->transfer_ticks = 30;
    o->max_append_bytes = PICK(r, 100, 300, 1000, 65536);
    o->max_inflight_bytes = o->max_append_bytes * PICK(r, 4, 16, 64);
    o->snapshot_threshold = PICK(r, 3, 6, 12, 40, 1000);
    o->snapshot_trailing = PICK(r, 0, 1, 3, 10);
    o->snapshot_chunk_bytes = (uint32_t)PICK(r, 7, 20, 64, 4096);
    o->disk_stall_ticks = (unsigned)sim_rng_range(r, 20, 40);

    memset(p, 0, sizeof *p);
    p->name = profile_names[kind];
    p->fault_ms = 6000;
    p->fault_every_min = 20;
    p->fault_every_max = 200;
    p->w_partition = 3;
    p->w_heal = 3;
    p->w_crash = 2;
    p->w_crash_leader = 1;
    p->w_net = 2;
    p->w_change = 1;
    p->w_transfer = 1;
    p->w_campaign = 1;
    p->crash_after_vote_per_mille = 20;
    p->down_min = 5;
    p->down_max = 400;
    p->disk_min = 1;
    p->disk_max = (unsigned)PICK(r, 2, 5, 10);
    p->disk_stall_per_mille = (unsigned)PICK(r, 0, 2, 10);
    p->disk_stall_ms = o->disk_stall_ticks * SIM_TICK_MS + (unsigned)sim_rng_range(r, 10, 200);
    p->leader_disk_factor = 1;
    p->client_every_min = 1;
    p->client_every_max = (unsigned)PICK(r, 5, 10, 25);
    p->read_per_mille = 350;
    p->read_leader_per_mille = 300;
    net_quality(c);

    switch (kind) {
    case PROFILE_MIXED: break;
    case PROFILE_CRASHES:
        p->w_crash = 4;
        p->w_crash_leader = 4;
        p->w_partition = 2;
        p->crash_after_vote_per_mille = 250;
        p->leader_disk_factor = (unsigned)PICK(r, 1, 3, 8);
        p->down_max = 150;
        break;
    case PROFILE_PARTITIONS:
        p->w_partition = 6;
        p->w_crash = 1;
        p->w_campaign = 2;
        o->snapshot_threshold = PICK(r, 3, 5, 8);
        o->snapshot_trailing = PICK(r, 0, 1, 2);
        break;
    case PROFILE_MEMBERSHIP:
        p->w_change = 5;
        p->w_partition = 4;
        p->w_transfer = 2;
        break;
    case PROFILE_READS:
        p->read_per_mille = 500;
        p->read_leader_per_mille = 800;
        p->w_partition = 5;
        p->w_crash = 1;
        break;
    case PROFILE_ALLOC:
        p->w_alloc = 4;
        p->alloc_fail_per_mille = (unsigned)PICK(r, 5, 20, 100);
        break;
    case PROFILE_COUNT: break;
    }
    p->script = sim_script_of(c->seed);
    if (p->script) {
        /* A quiet, fast, lossless network and disks: the scenario makes its own faults, and
         * the delay floor leaves it a millisecond to react before a message lands. */
        p->name = p->script == 1 ? "script-figure8" : "script-changes";
        o->pre_vote = true;
        o->check_quorum = true;
        o->max_append_bytes = 65536;
        o->max_inflight_bytes = 1 << 20;
        o->snapshot_threshold = 1000;
        p->disk_min = 1;
        p->disk_max = 2;
        p->disk_stall_per_mille = 0;
        p->leader_disk_factor = 1;
        p->down_min = p->down_max = 100000; /* crashed nodes come back only when healed */
        p->crash_after_vote_per_mille = 0;
        c->net.drop_per_mille = 0;
        c->net.dup_per_mille = 0;
        c->net.delay_min = 3;
        c->net.delay_max = 5;
        c->net.spike_per_mille = 0;
    }
}

/* --- actions -------------------------------------------------------------------------------------
 */

static unsigned random_up(struct sim_cluster *c)
{
    unsigned up[SIM_MAX_NODES], n = 0;
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        if (c->nodes[i].is_up) {
            up[n++] = i;
        }
    }
    return n ? up[sim_rng_below(&c->rng, n)] : 0;
}

void sim_fault_crash(struct sim_cluster *c, unsigned node)
{
    struct sim_node *n = &c->nodes[node];
    if (!n->is_up) {
        return;
    }
    sim_node_crash(c, node);
    c->crashes++;
    struct sim_ev ev = {.kind = SIM_EV_RESTART, .node = node, .epoch = n->epoch};
    ev.at = c->now + sim_rng_range(&c->rng, c->profile.down_min, c->profile.down_max);
    sim_schedule(c, &ev);
}

static void change_one(struct sim_cluster *c, unsigned leader)
{
    struct sim_node *l = &c->nodes[leader];
    if (!l->has_conf) {
        return;
    }
    unsigned voters = raft_configuration_voters(&l->conf);
    unsigned min_voters = c->n_initial >= 5 ? 3 : 2;
    struct raft_event e = {.type = RAFT_EVENT_CHANGE};
    e.change.id = ++c->next_request_id;
    unsigned target = 1 + (unsigned)sim_rng_below(&c->rng, c->n_nodes);
    const struct raft_server *s = raft_configuration_get(&l->conf, target);
    static const char *names[] = {"?", "add voter", "add learner", "remove", "demote"};
    if (s == NULL) {
        e.change.op =
            sim_rng_chance(&c->rng, 700) ? RAFT_CHANGE_ADD_VOTER : RAFT_CHANGE_ADD_LEARNER;
        if (e.change.op == RAFT_CHANGE_ADD_VOTER && voters >= 7) {
            e.change.op = RAFT_CHANGE_ADD_LEARNER;
        }
    } else if (s->suffrage == RAFT_LEARNER) {
        e.change.op = sim_rng_chance(&c->rng, 500) ? RAFT_CHANGE_ADD_VOTER : RAFT_CHANGE_REMOVE;
    } else {
        if (voters <= min_voters) {
            return;
        }
        e.change.op = sim_rng_chance(&c->rng, 600) ? RAFT_CHANGE_REMOVE : RAFT_CHANGE_DEMOTE;
    }
    char address[16];
    snprintf(address, sizeof address, "n%u", target);
    e.change.server = target;
    e.change.address = address;
    /* Sometimes the compare-and-swap form, right or (rarely) stale. */
    if (sim_rng_chance(&c->rng, 300)) {
        e.change.expect_index = l->conf_index;
        if (sim_rng_chance(&c->rng, 200) && l->conf_index > 1) {
            e.change.expect_index = l->conf_index - 1;
        }
    }
    int rc = sim_node_step(c, leader, &e);
    sim_tracef(c, "change %llu at n%u: %s n%u (expect %llu): %s", (unsigned long long)e.change.id,
               leader, names[e.change.op], target, (unsigned long long)e.change.expect_index,
               rc ? raft_strerror(rc) : "accepted");
}

void sim_fault_change(struct sim_cluster *c)
{
    unsigned leader = sim_find_leader(c);
    if (leader == 0) {
        return;
    }
    change_one(c, leader);
    /* Quick successive changes, the case thesis §4.1 forbids the core to overlap. */
    while (!c->is_failed && c->nodes[leader].is_up && sim_rng_chance(&c->rng, 400)) {
        change_one(c, leader);
    }
}

static void transfer(struct sim_cluster *c)
{
    unsigned leader = sim_find_leader(c);
    if (leader == 0) {
        return;
    }
    struct raft_event e = {.type = RAFT_EVENT_TRANSFER};
    e.transfer.id = ++c->next_request_id;
    e.transfer.server = sim_rng_chance(&c->rng, 500) ? 0 : 1 + sim_rng_below(&c->rng, c->n_nodes);
    int rc = sim_node_step(c, leader, &e);
    sim_tracef(c, "transfer %llu at n%u to n%llu: %s", (unsigned long long)e.transfer.id, leader,
               (unsigned long long)e.transfer.server, rc ? raft_strerror(rc) : "accepted");
}

static void campaign(struct sim_cluster *c)
{
    /* One or two at once: simultaneous candidates split votes and test vote uniqueness. */
    unsigned k = sim_rng_chance(&c->rng, 400) ? 2 : 1;
    for (unsigned i = 0; i < k; i++) {
        unsigned node = random_up(c);
        if (node == 0) {
            return;
        }
        struct raft_event e = {.type = RAFT_EVENT_CAMPAIGN};
        int rc = sim_node_step(c, node, &e);
        sim_tracef(c, "campaign at n%u: %s", node, rc ? raft_strerror(rc) : "ok");
    }
}

void sim_fault_step(struct sim_cluster *c)
{
    const struct sim_profile *p = &c->profile;
    unsigned w[] = {p->w_partition, p->w_heal,     p->w_crash,    p->w_crash_leader, p->w_net,
                    p->w_change,    p->w_transfer, p->w_campaign, p->w_alloc};
    unsigned total = 0;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        total += w[i];
    }
    unsigned x = (unsigned)sim_rng_below(&c->rng, total);
    size_t action = 0;
    while (x >= w[action]) {
        x -= w[action++];
    }
    switch (action) {
    case 0: sim_net_partition(c); break;
    case 1: sim_net_heal(c); break;
    case 2: {
        unsigned node = random_up(c);
        if (node) {
            sim_fault_crash(c, node);
        }
        break;
    }
    case 3: {
        unsigned node = sim_find_leader(c);
        if (node) {
            sim_fault_crash(c, node);
        }
        break;
    }
    case 4: {
        net_quality(c);
        unsigned node = 1 + (unsigned)sim_rng_below(&c->rng, c->n_nodes);
        c->nodes[node].disk_factor = (unsigned)PICK(&c->rng, 1, 1, 3, 10);
        sim_tracef(c, "network: drop %u‰ dup %u‰ delay %u-%u ms (spikes %u‰ to %u); n%u disk x%u",
                   c->net.drop_per_mille, c->net.dup_per_mille, c->net.delay_min, c->net.delay_max,
                   c->net.spike_per_mille, c->net.spike_max, node, c->nodes[node].disk_factor);
        break;
    }
    case 5: sim_fault_change(c); break;
    case 6: transfer(c); break;
    case 7: campaign(c); break;
    case 8: {
        unsigned node = 1 + (unsigned)sim_rng_below(&c->rng, c->n_nodes);
        struct sim_alloc *a = &c->nodes[node].alloc;
        a->fail_per_mille = sim_rng_chance(&c->rng, 600) ? p->alloc_fail_per_mille : 0;
        sim_tracef(c, "n%u allocations fail %u‰", node, a->fail_per_mille);
        break;
    }
    default: break;
    }
}
