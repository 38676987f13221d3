/* Clients of the simulated cluster: unique-valued writes proposed at some node and reads
 * through ReadIndex at any node, recorded as a history for the linearizability checker. An
 * operation's outcome is taken only from what its node observes (note 5 of sim.h for times);
 * writes whose node lost track of them are "unknown" (they may or may not have happened). */
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

#define READ_ID_BASE 1 /* read ids are op index + 1, never 0 */

static size_t op_new(struct sim_cluster *c, enum lin_op_kind kind, unsigned node)
{
    struct sim_clients *cl = &c->clients;
    if (cl->n == cl->cap) {
        cl->cap = cl->cap ? cl->cap * 2 : 256;
        cl->ops = realloc(cl->ops, cl->cap * sizeof *cl->ops);
        if (cl->ops == NULL) {
            abort();
        }
    }
    struct sim_op *op = &cl->ops[cl->n];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->node = node;
    op->epoch = c->nodes[node].epoch;
    op->key = (uint32_t)sim_rng_below(&c->rng, SIM_KEYS);
    op->call = sim_hist_now(c);
    return cl->n++;
}

static void pending_add(struct sim_clients *cl, size_t op)
{
    if (cl->n_pending == cl->cap_pending) {
        cl->cap_pending = cl->cap_pending ? cl->cap_pending * 2 : 32;
        cl->pending = realloc(cl->pending, cl->cap_pending * sizeof *cl->pending);
        if (cl->pending == NULL) {
            abort();
        }
    }
    cl->pending[cl->n_pending++] = op;
}

/* Drop ops that left their WAIT states from the pending list. */
static void pending_sweep(struct sim_clients *cl)
{
    size_t k = 0;
    for (size_t i = 0; i < cl->n_pending; i++) {
        enum sim_op_state s = cl->ops[cl->pending[i]].state;
        if (s == SIM_OP_WAIT_APPLY || s == SIM_OP_WAIT_READ_INDEX || s == SIM_OP_WAIT_READ_APPLY) {
            cl->pending[k++] = cl->pending[i];
        }
    }
    cl->n_pending = k;
}

static void finish(struct sim_cluster *c, struct sim_op *op, enum sim_op_state state)
{
    struct sim_clients *cl = &c->clients;
    op->state = state;
    size_t idx = (size_t)(op - cl->ops);
    switch (state) {
    case SIM_OP_DONE:
        op->ret = sim_hist_now(c);
        if (op->kind == LIN_WRITE) {
            cl->acked++;
            sim_tracef(c, "client: write #%zu k%u=%llu acked at n%u (%llu/%llu)", idx, op->key,
                       (unsigned long long)op->value, op->node, (unsigned long long)op->index,
                       (unsigned long long)op->term);
        } else {
            cl->reads_done++;
            sim_tracef(c, "client: read #%zu k%u at n%u = %llu (read index %llu)", idx, op->key,
                       op->node, (unsigned long long)op->value, (unsigned long long)op->index);
        }
        break;
    case SIM_OP_UNKNOWN:
        op->ret = LIN_NEVER;
        cl->unknown++;
        sim_tracef(c, "client: write #%zu k%u=%llu outcome unknown", idx, op->key,
                   (unsigned long long)op->value);
        break;
    default:
        cl->failed++;
        sim_tracef(c, "client: %s #%zu failed", op->kind == LIN_WRITE ? "write" : "read", idx);
        break;
    }
}

static void read_now(struct sim_cluster *c, struct sim_op *op)
{
    op->value = c->nodes[op->node].kv.values[op->key];
    finish(c, op, SIM_OP_DONE);
}

size_t sim_client_write(struct sim_cluster *c, unsigned node)
{
    struct sim_clients *cl = &c->clients;
    unsigned n = sim_rng_chance(&c->rng, 200) ? 2 + (unsigned)sim_rng_below(&c->rng, 2) : 1;
    uint8_t payload[4][SIM_CMD_BYTES];
    struct raft_buf bufs[4];
    cl->n_proposing = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t idx = op_new(c, LIN_WRITE, node);
        struct sim_op *op = &cl->ops[idx];
        op->state = SIM_OP_PROPOSING;
        op->value = ++cl->next_value;
        struct sim_cmd cmd = {.key = op->key, .value = op->value, .client = idx, .request = 1};
        sim_cmd_encode(&cmd, payload[i]);
        bufs[i].data = payload[i];
        bufs[i].len = SIM_CMD_BYTES;
        cl->proposing[cl->n_proposing++] = idx;
        sim_tracef(c, "client: write #%zu k%u=%llu at n%u", idx, op->key,
                   (unsigned long long)op->value, node);
    }
    size_t first = cl->proposing[0];
    struct raft_event e = {.type = RAFT_EVENT_PROPOSE};
    e.propose.type = RAFT_ENTRY_COMMAND;
    e.propose.bufs = bufs;
    e.propose.n = n;
    int rc = sim_node_step(c, node, &e);
    for (unsigned i = 0; i < cl->n_proposing; i++) {
        /* Still proposing: the core did not report where the entries went. */
        struct sim_op *op = &cl->ops[cl->proposing[i]];
        if (rc == 0) {
            sim_fail(c, "update contract", "node %u accepted a proposal without proposed_index",
                     node);
        }
        sim_tracef(c, "client: write refused by n%u: %s", node, raft_strerror(rc));
        finish(c, op, SIM_OP_FAILED);
    }
    cl->n_proposing = 0;
    return c->clients.ops[first].state == SIM_OP_FAILED ? SIZE_MAX : first;
}

void sim_client_proposed(struct sim_cluster *c, unsigned node, uint64_t index, uint64_t term)
{
    struct sim_clients *cl = &c->clients;
    for (unsigned i = 0; i < cl->n_proposing; i++) {
        struct sim_op *op = &cl->ops[cl->proposing[i]];
        if (op->node != node) {
            sim_fail(c, "update contract", "node %u reports a proposal made at node %u", node,
                     op->node);
            return;
        }
        op->index = index + i;
        op->term = term;
        op->state = SIM_OP_WAIT_APPLY;
        pending_add(cl, cl->proposing[i]);
    }
    cl->n_proposing = 0;
}

static void issue_read(struct sim_cluster *c, unsigned node)
{
    struct sim_clients *cl = &c->clients;
    size_t idx = op_new(c, LIN_READ, node);
    cl->ops[idx].state = SIM_OP_WAIT_READ_INDEX;
    pending_add(cl, idx);
    sim_tracef(c, "client: read #%zu k%u at n%u", idx, cl->ops[idx].key, node);
    struct raft_event e = {.type = RAFT_EVENT_READ_INDEX};
    e.read_index.id = idx + READ_ID_BASE;
    int rc = sim_node_step(c, node, &e);
    struct sim_op *op = &cl->ops[idx];
    if (rc != 0 && op->state == SIM_OP_WAIT_READ_INDEX) {
        sim_tracef(c, "client: read refused by n%u: %s", node, raft_strerror(rc));
        finish(c, op, SIM_OP_FAILED);
        pending_sweep(cl);
    }
}

void sim_client_read_result(struct sim_cluster *c, unsigned node, const struct raft_read_result *r)
{
    struct sim_clients *cl = &c->clients;
    if (r->id < READ_ID_BASE || r->id - READ_ID_BASE >= cl->n) {
        sim_fail(c, "update contract", "node %u returns a read with unknown id %llu", node,
                 (unsigned long long)r->id);
        return;
    }
    struct sim_op *op = &cl->ops[r->id - READ_ID_BASE];
    if (op->kind != LIN_READ || op->node != node || op->state != SIM_OP_WAIT_READ_INDEX ||
        op->epoch != c->nodes[node].epoch) {
        sim_tracef(c, "n%u read result %llu for no waiting read: ignored", node,
                   (unsigned long long)r->id);
        return;
    }
    if (r->status != 0) {
        sim_tracef(c, "client: read #%llu at n%u: %s", (unsigned long long)(r->id - READ_ID_BASE),
                   node, raft_strerror(r->status));
        finish(c, op, SIM_OP_FAILED);
        pending_sweep(cl);
        return;
    }
    op->index = r->index;
    op->state = SIM_OP_WAIT_READ_APPLY;
    if (c->nodes[node].kv.applied_index >= r->index) {
        read_now(c, op);
        pending_sweep(cl);
    }
}

void sim_client_applied(struct sim_cluster *c, unsigned node, const struct raft_entry *e)
{
    struct sim_clients *cl = &c->clients;
    bool changed = false;
    for (size_t i = 0; i < cl->n_pending; i++) {
        struct sim_op *op = &cl->ops[cl->pending[i]];
        if (op->node != node) {
            continue;
        }
        if (op->state == SIM_OP_WAIT_APPLY && op->index == e->index) {
            /* The entry at the proposed index decides: ours (same term) or another one, in
             * which case ours can never be committed anywhere (log matching). */
            finish(c, op, e->term == op->term ? SIM_OP_DONE : SIM_OP_FAILED);
            changed = true;
        } else if (op->state == SIM_OP_WAIT_READ_APPLY && op->index <= e->index) {
            read_now(c, op);
            changed = true;
        }
    }
    if (changed) {
        pending_sweep(cl);
    }
}

void sim_client_snapshot(struct sim_cluster *c, unsigned node)
{
    struct sim_clients *cl = &c->clients;
    const struct sim_oracle *o = &c->oracle;
    uint64_t applied = c->nodes[node].kv.applied_index;
    for (size_t i = 0; i < cl->n_pending; i++) {
        struct sim_op *op = &cl->ops[cl->pending[i]];
        if (op->node != node) {
            continue;
        }
        if (op->state == SIM_OP_WAIT_APPLY && op->index <= applied) {
            /* The snapshot covers the index: the oracle knows which entry was applied there
             * (before now, so acknowledging now is sound). */
            if (op->index < o->cap_applied && o->applied[op->index].is_set) {
                finish(c, op, o->applied[op->index].term == op->term ? SIM_OP_DONE : SIM_OP_FAILED);
            } else {
                finish(c, op, SIM_OP_UNKNOWN);
            }
        } else if (op->state == SIM_OP_WAIT_READ_APPLY && op->index <= applied) {
            read_now(c, op);
        }
    }
    pending_sweep(cl);
}

void sim_client_crashed(struct sim_cluster *c, unsigned node)
{
    struct sim_clients *cl = &c->clients;
    for (size_t i = 0; i < cl->n_pending; i++) {
        struct sim_op *op = &cl->ops[cl->pending[i]];
        if (op->node == node) {
            finish(c, op, op->kind == LIN_WRITE ? SIM_OP_UNKNOWN : SIM_OP_FAILED);
        }
    }
    pending_sweep(cl);
}

void sim_client_issue(struct sim_cluster *c)
{
    const struct sim_profile *p = &c->profile;
    unsigned up[SIM_MAX_NODES], n_up = 0, leaders[SIM_MAX_NODES], n_leaders = 0;
    for (unsigned i = 1; i <= c->n_nodes; i++) {
        if (c->nodes[i].is_up) {
            up[n_up++] = i;
            if (c->nodes[i].role == RAFT_LEADER) {
                leaders[n_leaders++] = i;
            }
        }
    }
    if (n_up == 0) {
        return;
    }
    unsigned node = up[sim_rng_below(&c->rng, n_up)];
    if (sim_rng_chance(&c->rng, p->read_per_mille)) {
        /* Any node that believes it leads, stale ones included: that is where an unconfirmed
         * read would return old data. */
        if (n_leaders && sim_rng_chance(&c->rng, p->read_leader_per_mille)) {
            node = leaders[sim_rng_below(&c->rng, n_leaders)];
        }
        issue_read(c, node);
        return;
    }
    unsigned leader = sim_find_leader(c);
    if (leader && sim_rng_chance(&c->rng, 700)) {
        node = leader;
    }
    sim_client_write(c, node);
}

int sim_client_check(struct sim_cluster *c, char *detail, size_t size)
{
    struct sim_clients *cl = &c->clients;
    const struct sim_oracle *o = &c->oracle;
    for (size_t i = 0; i < cl->n_pending; i++) {
        struct sim_op *op = &cl->ops[cl->pending[i]];
        if (op->state == SIM_OP_WAIT_APPLY) {
            /* Settle from the oracle what no client saw: an entry of another term at the
             * index means the write never happened; otherwise it may have. */
            if (op->index < o->cap_applied && o->applied[op->index].is_set &&
                o->applied[op->index].term != op->term) {
                finish(c, op, SIM_OP_FAILED);
            } else {
                finish(c, op, SIM_OP_UNKNOWN);
            }
        } else {
            finish(c, op, SIM_OP_FAILED);
        }
    }
    cl->n_pending = 0;
    struct lin_op *h = calloc(cl->n + 1, sizeof *h);
    if (h == NULL) {
        abort();
    }
    size_t n = 0;
    for (size_t i = 0; i < cl->n; i++) {
        const struct sim_op *op = &cl->ops[i];
        if (op->state != SIM_OP_DONE && op->state != SIM_OP_UNKNOWN) {
            continue;
        }
        h[n++] = (struct lin_op){.client = i,
                                 .kind = op->kind,
                                 .key = op->key,
                                 .value = op->value,
                                 .call = op->call,
                                 .ret = op->ret};
    }
    struct lin_report rep;
    memset(&rep, 0, sizeof rep);
    int res = lin_check(h, n, 10000000, &rep);
    free(h);
    if (res == LIN_VIOLATION) {
        snprintf(detail, size, "key %u (%zu ops): %s", rep.key, rep.n_ops, rep.detail);
    } else if (res == LIN_BAD_HISTORY) {
        snprintf(detail, size, "%s", rep.detail);
    } else if (res == LIN_GAVE_UP) {
        snprintf(detail, size, "gave up after %llu steps", (unsigned long long)rep.steps);
    }
    return res;
}

void sim_clients_free(struct sim_clients *cl)
{
    free(cl->ops);
    free(cl->pending);
    memset(cl, 0, sizeof *cl);
}
