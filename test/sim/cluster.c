/* The cluster: the event queue on virtual time, one run of a seed (fault phase, then healing
 * and the liveness check, then the end-of-run checks), and its summary. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

#define LIVENESS_ELECTIONS 20 /* election timeouts allowed for recovery after healing */
/* Runaway guards: a seed normally takes some 10^4 steps with a few hundred events queued;
 * these bounds catch message storms (amplification) long before memory runs out. */
#define MAX_STEPS  3000000
#define MAX_QUEUED 200000

/* --- event queue: a binary heap ordered by (at, seq) -------------------------------------------
 */

static bool before(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_schedule(struct sim_cluster *c, const struct sim_ev *ev)
{
    if (c->n_heap == c->cap_heap) {
        c->cap_heap = c->cap_heap ? c->cap_heap * 2 : 1024;
        c->heap = realloc(c->heap, c->cap_heap * sizeof *c->heap);
        if (c->heap == NULL) {
            abort();
        }
    }
    size_t i = c->n_heap++;
    c->heap[i] = *ev;
    c->heap[i].seq = c->next_seq++;
    if (c->heap[i].at < c->now) {
        c->heap[i].at = c->now;
    }
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&c->heap[i], &c->heap[p])) {
            break;
        }
        struct sim_ev t = c->heap[i];
        c->heap[i] = c->heap[p];
        c->heap[p] = t;
        i = p;
    }
}

static struct sim_ev pop(struct sim_cluster *c)
{
    struct sim_ev top = c->heap[0];
    c->heap[0] = c->heap[--c->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->n_heap && before(&c->heap[l], &c->heap[m])) {
            m = l;
        }
        if (r < c->n_heap && before(&c->heap[r], &c->heap[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        struct sim_ev t = c->heap[i];
        c->heap[i] = c->heap[m];
        c->heap[m] = t;
        i = m;
    }
    return top;
}

/* --- helpers ------------------------------------------------------------------------------------
 */

void sim_fail(struct sim_cluster *c, const char *invariant, const char *fmt, ...)
{
    if (c->is_failed) {
        return;
    }
    c->is_failed = true;
    int n = snprintf(c->failure, sizeof c->failure, "%s: ", invariant);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->failure + n, sizeof c->failure - (size_t)n, fmt, ap);
    va_end(ap);
    sim_tracef(c, "VIOLATION %s", c->failure);
}

uint64_t sim_hist_now(struct sim_cluster *c)
{
    return ++c->hist_clock;
}

unsigned sim_find_leader(const struct sim_cluster *c)
{
    unsigned best = 0;
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        const struct sim_node *n = &c->nodes[i];
        if (n->is_up && n->role == RAFT_LEADER && (best == 0 || n->term > c->nodes[best].term)) {
            best = i;
        }
    }
    return best;
}

/* --- one event -----------------------------------------------------------------------------------
 */

static void dispatch(struct sim_cluster *c, struct sim_ev *ev)
{
    struct sim_node *nd = ev->node ? &c->nodes[ev->node] : NULL;
    switch (ev->kind) {
    case SIM_EV_TICK: {
        if (nd->is_up) {
            struct raft_event e = {.type = RAFT_EVENT_TICK};
            sim_node_step(c, ev->node, &e);
        }
        struct sim_ev next = *ev;
        next.at = c->now + SIM_TICK_MS;
        sim_schedule(c, &next);
        break;
    }
    case SIM_EV_DELIVER: {
        char what[160];
        sim_msg_describe(&ev->msg->m, what, sizeof what);
        if (!nd->is_up || !sim_net_link_up(c, (unsigned)ev->msg->m.from, ev->node)) {
            c->net.dropped++;
            sim_tracef(c, "lost %s (%s)", what, nd->is_up ? "partition" : "node down");
        } else {
            c->net.delivered++;
            sim_tracef(c, "recv %s", what);
            struct raft_event e = {.type = RAFT_EVENT_RECEIVE};
            e.receive.msg = &ev->msg->m;
            sim_node_step(c, ev->node, &e);
        }
        sim_msg_free(ev->msg);
        break;
    }
    case SIM_EV_DISK: sim_disk_complete(c, ev->node, ev->id); break;
    case SIM_EV_LOCAL:
        if (nd->is_up && ev->epoch == nd->epoch) {
            if (ev->ev.type == RAFT_EVENT_SNAPSHOT_TAKEN) {
                sim_tracef(c, "n%u <- snapshot taken %llu", ev->node,
                           (unsigned long long)ev->ev.snapshot_taken.index);
            } else if (ev->ev.type == RAFT_EVENT_SNAPSHOT_INSTALLED) {
                sim_tracef(c, "n%u <- snapshot installed %llu", ev->node,
                           (unsigned long long)ev->ev.snapshot_installed.index);
            } else if (ev->ev.type == RAFT_EVENT_PERSISTED) {
                sim_tracef(c, "n%u persisted up to %llu/%llu (flushed)", ev->node,
                           (unsigned long long)ev->ev.persisted.index,
                           (unsigned long long)ev->ev.persisted.term);
            }
            sim_node_step(c, ev->node, &ev->ev);
        }
        break;
    case SIM_EV_CLIENT:
        if (!c->is_healing) {
            sim_client_issue(c);
            struct sim_ev next = {.kind = SIM_EV_CLIENT};
            next.at = c->now + sim_rng_range(&c->rng, c->profile.client_every_min,
                                             c->profile.client_every_max);
            sim_schedule(c, &next);
        }
        break;
    case SIM_EV_FAULT:
        if (!c->is_healing) {
            sim_fault_step(c);
            struct sim_ev next = {.kind = SIM_EV_FAULT};
            next.at = c->now + sim_rng_range(&c->rng, c->profile.fault_every_min,
                                             c->profile.fault_every_max);
            sim_schedule(c, &next);
        }
        break;
    case SIM_EV_CRASH:
        if (nd->is_up && ev->epoch == nd->epoch && !c->is_healing) {
            sim_fault_crash(c, ev->node);
        }
        break;
    case SIM_EV_RESTART:
        if (!nd->is_up && ev->epoch == nd->epoch && sim_node_start(c, ev->node) != 0) {
            struct sim_ev next = *ev;
            next.at = c->now + SIM_TICK_MS;
            sim_schedule(c, &next);
        }
        break;
    case SIM_EV_SCRIPT:
        if (!c->is_healing) {
            sim_script_step(c);
            struct sim_ev next = {.kind = SIM_EV_SCRIPT};
            next.at = c->now + 1;
            sim_schedule(c, &next);
        }
        break;
    }
}

/* --- healing and liveness
 * ------------------------------------------------------------------------- */

static void heal(struct sim_cluster *c)
{
    c->is_healing = true;
    sim_tracef(c, "HEAL: no partitions, no loss, normal disks, no allocation failures");
    sim_net_heal(c);
    c->net.drop_per_mille = 0;
    c->net.dup_per_mille = 0;
    c->net.delay_min = 1;
    c->net.delay_max = 5;
    c->net.spike_per_mille = 0;
    c->profile.disk_min = 1;
    c->profile.disk_max = 3;
    c->profile.disk_stall_per_mille = 0;
    c->profile.leader_disk_factor = 1;
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        struct sim_node *n = &c->nodes[i];
        n->disk_factor = 1;
        n->alloc.fail_per_mille = 0;
        sim_disk_heal(c, i);
        if (!n->is_up) {
            struct sim_ev ev = {.kind = SIM_EV_RESTART, .node = i, .epoch = n->epoch};
            ev.at = c->now;
            sim_schedule(c, &ev);
        }
    }
}

/* After healing: is there a leader, has a fresh write been acknowledged, and have all members
 * of the configuration applied the same log? Proposes the fresh write when needed. */
static bool recovered(struct sim_cluster *c, size_t *final_op)
{
    unsigned leader = sim_find_leader(c);
    if (leader == 0) {
        return false;
    }
    struct sim_op *op = *final_op == SIZE_MAX ? NULL : &c->clients.ops[*final_op];
    /* A write stranded at a deposed leader may never be decided by its node: try again at the
     * current leader (the stranded one is settled at the end). */
    bool is_stranded =
        op && op->state == SIM_OP_WAIT_APPLY &&
        (c->nodes[op->node].role != RAFT_LEADER || c->nodes[op->node].term != op->term);
    if (op == NULL || op->state == SIM_OP_FAILED || op->state == SIM_OP_UNKNOWN || is_stranded) {
        *final_op = sim_client_write(c, leader);
        return false;
    }
    if (op->state != SIM_OP_DONE) {
        return false;
    }
    const struct sim_node *l = &c->nodes[leader];
    uint64_t applied = l->kv.applied_index;
    uint64_t digest = sim_kv_digest(&l->kv);
    for (unsigned i = 0; i < l->conf.n; i++) {
        const struct sim_node *n = &c->nodes[l->conf.servers[i].id];
        if (!n->is_up || n->kv.applied_index != applied || n->kv.applied_index < op->index) {
            return false;
        }
        if (sim_kv_digest(&n->kv) != digest) {
            sim_fail(c, "state machine safety",
                     "nodes %u and %u applied %llu with different states", leader, n->id,
                     (unsigned long long)applied);
            return false;
        }
    }
    return l->commit == applied;
}

/* Every acknowledged write is applied, at its index, by every member of the final
 * configuration. */
static void check_acknowledged(struct sim_cluster *c, unsigned leader)
{
    const struct sim_oracle *o = &c->oracle;
    const struct sim_node *l = &c->nodes[leader];
    for (size_t i = 0; i < c->clients.n && !c->is_failed; i++) {
        const struct sim_op *op = &c->clients.ops[i];
        if (op->kind != LIN_WRITE || op->state != SIM_OP_DONE) {
            continue;
        }
        if (op->index >= o->cap_applied || !o->applied[op->index].is_set ||
            o->applied[op->index].term != op->term) {
            sim_fail(c, "acknowledged write lost", "write #%zu (%llu/%llu) is not what was applied",
                     i, (unsigned long long)op->index, (unsigned long long)op->term);
            return;
        }
        for (unsigned k = 0; k < l->conf.n; k++) {
            const struct sim_node *n = &c->nodes[l->conf.servers[k].id];
            if (n->kv.applied_index < op->index) {
                sim_fail(c, "acknowledged write lost", "node %u never applied write #%zu at %llu",
                         n->id, i, (unsigned long long)op->index);
                return;
            }
        }
    }
}

/* --- one seed
 * ------------------------------------------------------------------------------------- */

static void setup(struct sim_cluster *c, uint64_t seed, unsigned n_initial)
{
    c->seed = seed;
    sim_rng_seed(&c->rng, seed);
    c->n_initial = n_initial;
    c->n_nodes = n_initial + 1 + (unsigned)sim_rng_below(&c->rng, 2);
    if (c->n_nodes > SIM_MAX_NODES) {
        c->n_nodes = SIM_MAX_NODES;
    }
    sim_profile_pick(c);

    struct raft_configuration conf = {0};
    for (unsigned i = 1; i <= n_initial; i++) {
        struct raft_server *s = &conf.servers[conf.n++];
        s->id = i;
        s->suffrage = RAFT_VOTER;
        snprintf(s->address, sizeof s->address, "n%u", i);
    }
    uint8_t buf[4096];
    struct raft_entry boot;
    if (raft_configuration_encoded_size(&conf) > sizeof buf ||
        raft_bootstrap_entry(&conf, buf, &boot) != 0) {
        sim_fail(c, "setup", "cannot build the bootstrap entry");
        return;
    }
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        struct sim_node *n = &c->nodes[i];
        n->id = i;
        n->disk_factor = 1;
        sim_rng_seed(&n->alloc.rng, sim_rng_next(&c->rng));
        if (i <= n_initial) {
            sim_log_append(&n->disk.log, &boot, 1);
        } else {
            n->is_spare = true;
        }
        if (sim_node_start(c, i) != 0) {
            sim_fail(c, "setup", "raft_new failed for node %u", i);
            return;
        }
        struct sim_ev tick = {.kind = SIM_EV_TICK, .node = i};
        tick.at = sim_rng_below(&c->rng, SIM_TICK_MS);
        sim_schedule(c, &tick);
    }
    struct sim_ev ev = {.kind = SIM_EV_CLIENT};
    ev.at = 50;
    if (!c->profile.script) {
        sim_schedule(c, &ev); /* scenarios write only what they need */
    }
    ev.kind = c->profile.script ? SIM_EV_SCRIPT : SIM_EV_FAULT;
    ev.at = 100;
    sim_schedule(c, &ev);
}

static void teardown(struct sim_cluster *c)
{
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        struct sim_node *n = &c->nodes[i];
        if (n->core) {
            raft_free(n->core);
        }
        sim_disk_free(&n->disk);
        sim_log_free(&n->shadow);
    }
    for (size_t i = 0; i < c->n_heap; i++) {
        sim_msg_free(c->heap[i].msg);
    }
    free(c->heap);
    sim_oracle_free(&c->oracle);
    sim_clients_free(&c->clients);
}

void sim_run(uint64_t seed, unsigned n_nodes, FILE *live, FILE *report, struct sim_result *res)
{
    static const unsigned sizes[3] = {3, 5, 7};
    struct sim_cluster *c = calloc(1, sizeof *c);
    if (c == NULL) {
        abort();
    }
    memset(res, 0, sizeof *res);
    c->trace.is_live = live != NULL;
    c->trace.out = live;
    if (n_nodes == 0) {
        n_nodes = sim_script_of(seed) ? 5 : sizes[seed % 3];
    }
    setup(c, seed, n_nodes);

    uint64_t fault_end = c->profile.fault_ms;
    uint64_t deadline = 0, next_check = 0;
    size_t final_op = SIZE_MAX;
    bool is_done = false;
    while (!c->is_failed && c->n_heap > 0) {
        if (!c->is_healing && c->heap[0].at >= fault_end) {
            c->now = fault_end;
            heal(c);
            deadline = c->now + (uint64_t)LIVENESS_ELECTIONS * c->opts.election_ticks * SIM_TICK_MS;
            next_check = c->now;
        }
        if (c->steps > MAX_STEPS || c->n_heap > MAX_QUEUED) {
            sim_fail(c, "liveness",
                     "runaway: %llu steps, %zu events queued at %llu ms (%llu "
                     "messages sent, %llu delivered)",
                     (unsigned long long)c->steps, c->n_heap, (unsigned long long)c->now,
                     (unsigned long long)c->net.sent, (unsigned long long)c->net.delivered);
            break;
        }
        struct sim_ev ev = pop(c);
        c->now = ev.at;
        dispatch(c, &ev);
        if (c->is_healing && !c->is_failed && c->now >= next_check) {
            next_check = c->now + SIM_TICK_MS;
            if (recovered(c, &final_op)) {
                is_done = true;
                break;
            }
            if (c->now > deadline) {
                unsigned l = sim_find_leader(c);
                char who[200] = "";
                size_t off = 0;
                for (unsigned i = 1; i <= c->n_nodes && off + 40 < sizeof who; i++) {
                    const struct sim_node *n = &c->nodes[i];
                    off += (size_t)snprintf(
                        who + off, sizeof who - off, " n%u:%s/t%llu/applied %llu/commit %llu", i,
                        n->is_up ? raft_role_name(n->role) : "down", (unsigned long long)n->term,
                        (unsigned long long)n->kv.applied_index, (unsigned long long)n->commit);
                }
                sim_fail(c, "liveness",
                         "no recovery %u election timeouts after healing (leader %u, final write "
                         "%s;%s)",
                         LIVENESS_ELECTIONS, l,
                         final_op == SIZE_MAX                            ? "not accepted"
                         : c->clients.ops[final_op].state == SIM_OP_DONE ? "acknowledged"
                                                                         : "pending",
                         who);
            }
        }
    }
    if (!c->is_failed && !is_done) {
        sim_fail(c, "liveness", "the simulation ran out of events");
    }
    if (!c->is_failed) {
        check_acknowledged(c, sim_find_leader(c));
    }
    char detail[300] = "";
    if (!c->is_failed) {
        int lr = sim_client_check(c, detail, sizeof detail);
        if (lr == LIN_VIOLATION) {
            sim_fail(c, "linearizability", "%s", detail);
        } else if (lr == LIN_BAD_HISTORY) {
            sim_fail(c, "history", "the simulator recorded a malformed history: %s", detail);
        } else if (lr == LIN_GAVE_UP) {
            res->has_gave_up = true;
        }
    }
    res->steps = c->steps;
    res->is_failed = c->is_failed;
    if (c->is_failed) {
        snprintf(res->reason, sizeof res->reason, "%s", c->failure);
    } else {
        snprintf(res->reason, sizeof res->reason,
                 "%s: %llu steps, %llu ms, %llu elections, %llu crashes, %llu/%llu snapshots "
                 "taken/installed, %llu changes, writes %llu acked/%llu unknown, %llu reads%s%s",
                 c->profile.name, (unsigned long long)c->steps, (unsigned long long)c->now,
                 (unsigned long long)c->elections, (unsigned long long)c->crashes,
                 (unsigned long long)c->snapshots_taken, (unsigned long long)c->snapshots_installed,
                 (unsigned long long)c->changes_done, (unsigned long long)c->clients.acked,
                 (unsigned long long)c->clients.unknown, (unsigned long long)c->clients.reads_done,
                 res->has_gave_up ? "; lincheck " : "", res->has_gave_up ? detail : "");
    }
    if (c->is_failed && report != NULL) {
        fprintf(report, "FAIL seed %llu: %s\n", (unsigned long long)seed, c->failure);
        if (live == NULL) {
            sim_trace_dump(&c->trace, report);
        }
    }
    teardown(c);
    free(c);
}
