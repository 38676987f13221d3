/* Scripted scenarios: a few seeds replace the random fault schedule by a sequence of
 * partitions, crashes and forced elections that random schedules reach too rarely. They use
 * only the simulator's ordinary faults, and the run is judged by the same generic invariants as
 * every other seed; nothing here knows what a correct core would do at any step.
 *
 * 1. Figure 8 of the Raft paper (§5.4.2): an entry of an old term ends up on a majority while
 *    the new leader's own entry does not, and then a server without it can win an election.
 * 2. Quick successive membership changes under a partition (thesis §4.1): two removals issued
 *    back to back by a leader cut off with one follower. */
#include <string.h>

#include "test/sim/sim.h"

#define STEP_TIMEOUT_MS 1500 /* a step that waits longer gives up: the scenario just ends */
#define QUIET_MS        250  /* > 2 election timeouts: followers forget their old leader */

int sim_script_of(uint64_t seed)
{
    switch (seed % 50) {
    case 7: return 1;
    case 32: return 2;
    default: return 0;
    }
}

/* Cut every link, then open the listed pairs both ways (0-terminated list of pairs). */
static void only_links(struct sim_cluster *c, const unsigned *pairs)
{
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        for (unsigned j = 1; j <= c->n_nodes; j++) {
            c->net.is_blocked[i][j] = i != j;
        }
    }
    char desc[96] = "";
    size_t off = 0;
    for (; pairs[0]; pairs += 2) {
        c->net.is_blocked[pairs[0]][pairs[1]] = false;
        c->net.is_blocked[pairs[1]][pairs[0]] = false;
        if (off + 12 < sizeof desc) {
            off += (size_t)snprintf(desc + off, sizeof desc - off, " %u-%u", pairs[0], pairs[1]);
        }
    }
    sim_tracef(c, "script: only links%s", desc[0] ? desc : " (none)");
}

static void split(struct sim_cluster *c, const unsigned *side_a, unsigned n_a)
{
    bool in_a[SIM_MAX_NODES + 1] = {false};
    for (unsigned i = 0; i < n_a; i++) {
        in_a[side_a[i]] = true;
    }
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        for (unsigned j = 1; j <= c->n_nodes; j++) {
            c->net.is_blocked[i][j] = in_a[i] != in_a[j];
        }
    }
    sim_tracef(c, "script: split off %u nodes around n%u", n_a, side_a[0]);
}

static void campaign(struct sim_cluster *c, unsigned node)
{
    if (!c->nodes[node].is_up) {
        return;
    }
    struct raft_event e = {.type = RAFT_EVENT_CAMPAIGN};
    int rc = sim_node_step(c, node, &e);
    sim_tracef(c, "script: campaign at n%u: %s", node, rc ? raft_strerror(rc) : "ok");
}

static void next_step(struct sim_cluster *c)
{
    c->script_step++;
    c->script_mark = c->now;
}

static void end(struct sim_cluster *c, const char *why)
{
    sim_tracef(c, "script: end (%s)", why);
    sim_net_heal(c);
    c->script_step = 1000;
}

static bool all_applied(const struct sim_cluster *c, uint64_t index)
{
    for (unsigned i = 1; i <= c->n_initial; i++) {
        if (!c->nodes[i].is_up || c->nodes[i].kv.applied_index < index) {
            return false;
        }
    }
    return true;
}

/* Steps shared by both scenarios: a leader, one write applied everywhere. Returns the leader
 * once settled, 0 while waiting. */
static unsigned settle(struct sim_cluster *c)
{
    unsigned *r = c->script_roles;
    if (c->script_step == 0) {
        unsigned l = sim_find_leader(c);
        if (c->now < 300 || l == 0) {
            return 0;
        }
        size_t op = sim_client_write(c, l);
        if (op == SIZE_MAX) {
            return 0;
        }
        r[0] = l;
        c->script_index = c->clients.ops[op].index;
        next_step(c);
        return 0;
    }
    if (c->script_step == 1) {
        if (c->nodes[r[0]].role == RAFT_LEADER && all_applied(c, c->script_index)) {
            next_step(c);
            return r[0];
        }
        if (c->now > c->script_mark + STEP_TIMEOUT_MS) {
            end(c, "no settled leader");
        }
    }
    return 0;
}

/* Roles: 0 L (old leader), 1 A (holds X with L), 2 B (wins without X), 3 C, 4 D. */
static void figure8(struct sim_cluster *c)
{
    unsigned *r = c->script_roles;
    const unsigned L = 0, A = 1, B = 2, C = 3, D = 4;
    struct sim_node *n = c->nodes;
    uint64_t waited = c->now - c->script_mark;
    switch (c->script_step) {
    case 0:
    case 1:
        if (settle(c)) {
            for (unsigned k = 1; k < 5; k++) {
                r[k] = 1 + (r[L] - 1 + k) % 5;
            }
            /* L replicates X to A only. */
            unsigned side[2] = {r[L], r[A]};
            split(c, side, 2);
            size_t op = sim_client_write(c, r[L]);
            if (op == SIZE_MAX) {
                end(c, "X refused");
                return;
            }
            c->script_index = c->clients.ops[op].index;
        }
        break;
    case 2:
        if (waited >= 30) {
            if (sim_log_term(&n[r[A]].disk.log, c->script_index) == 0) {
                end(c, "X not durable on A");
                return;
            }
            /* L and A alone; B, C, D elect a leader that lacks X. */
            unsigned pairs[] = {r[B], r[C], r[B], r[D], r[C], r[D], 0};
            only_links(c, pairs);
            next_step(c);
        }
        break;
    case 3:
        if (waited == QUIET_MS) {
            campaign(c, r[B]);
        }
        for (unsigned k = B; k <= D; k++) {
            if (n[r[k]].role == RAFT_LEADER) {
                unsigned t = r[B];
                r[B] = r[k];
                r[k] = t;
                /* Its own entry at X's index stays with it alone. */
                unsigned pairs[] = {r[C], r[D], 0};
                only_links(c, pairs);
                next_step(c);
                return;
            }
        }
        if (waited > STEP_TIMEOUT_MS) {
            end(c, "no leader without X");
        }
        break;
    case 4:
        if (waited >= 30 && sim_log_term(&n[r[B]].disk.log, c->script_index) != 0) {
            sim_fault_crash(c, r[B]);
            /* L, A and C talk; A's disk is slow so that it holds X durably but not what the
             * next leader appends after it. */
            unsigned pairs[] = {r[L], r[A], r[L], r[C], r[A], r[C], 0};
            only_links(c, pairs);
            n[r[A]].disk_factor = 1000;
            next_step(c);
        } else if (waited > STEP_TIMEOUT_MS) {
            end(c, "B's entry never durable");
        }
        break;
    case 5:
        if (waited == QUIET_MS) {
            campaign(c, r[L]);
        }
        if (n[r[L]].role == RAFT_LEADER || n[r[A]].role == RAFT_LEADER) {
            if (n[r[A]].role == RAFT_LEADER) {
                unsigned t = r[L];
                r[L] = r[A];
                r[A] = t;
                n[r[L]].disk_factor = 1;
                n[r[A]].disk_factor = 1000;
            }
            next_step(c);
        } else if (waited > STEP_TIMEOUT_MS) {
            end(c, "no second leader with X");
        }
        break;
    case 6:
        if (waited >= 60) {
            /* The new leader and A go down (A loses its pending writes); B comes back and
             * asks A and D for votes. */
            n[r[A]].is_losing_all = true;
            sim_fault_crash(c, r[L]);
            sim_fault_crash(c, r[A]);
            n[r[A]].is_losing_all = false;
            n[r[A]].disk_factor = 1;
            sim_node_start(c, r[A]);
            sim_node_start(c, r[B]);
            unsigned pairs[] = {r[B], r[A], r[B], r[D], r[A], r[D], 0};
            only_links(c, pairs);
            next_step(c);
        }
        break;
    case 7:
        if (waited == QUIET_MS) {
            campaign(c, r[B]);
        }
        if (waited > QUIET_MS + 500) {
            end(c, "done");
        }
        break;
    default: break;
    }
}

/* Roles: 0 L (leader), 1 P (stays with L), 2 Q, 3 R, 4 S (the other side). */
static void changes(struct sim_cluster *c)
{
    unsigned *r = c->script_roles;
    uint64_t waited = c->now - c->script_mark;
    switch (c->script_step) {
    case 0:
    case 1:
        if (settle(c)) {
            for (unsigned k = 1; k < 5; k++) {
                r[k] = 1 + (r[0] - 1 + k) % 5;
            }
            unsigned side[2] = {r[0], r[1]};
            split(c, side, 2);
            /* Two removals back to back, then a write, all at the cut-off leader. */
            for (unsigned k = 2; k <= 3; k++) {
                struct raft_event e = {.type = RAFT_EVENT_CHANGE};
                e.change.id = ++c->next_request_id;
                e.change.op = RAFT_CHANGE_REMOVE;
                e.change.server = r[k];
                int rc = sim_node_step(c, r[0], &e);
                sim_tracef(c, "script: remove n%u at n%u: %s", r[k], r[0],
                           rc ? raft_strerror(rc) : "accepted");
            }
            sim_client_write(c, r[0]);
        }
        break;
    case 2:
        if (waited == QUIET_MS) {
            campaign(c, r[2]);
        }
        if (waited == QUIET_MS + 300) {
            unsigned l = 0;
            for (unsigned k = 2; k <= 4; k++) {
                l = c->nodes[r[k]].role == RAFT_LEADER ? r[k] : l;
            }
            if (l) {
                sim_client_write(c, l);
            }
        }
        if (waited > QUIET_MS + 600) {
            end(c, "done");
        }
        break;
    default: break;
    }
}

void sim_script_step(struct sim_cluster *c)
{
    if (c->script_step >= 1000 || c->is_failed) {
        return;
    }
    if (c->profile.script == 1) {
        figure8(c);
    } else if (c->profile.script == 2) {
        changes(c);
    }
}
