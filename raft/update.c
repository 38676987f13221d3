/* Building the update of one step: messages, results and log changes accumulate in r->out and
 * are exposed through struct raft_update when the step ends. When memory runs out, a message is
 * dropped (Raft tolerates lost messages) and a result is lost only if its array cannot grow,
 * which the caller sees as a request that never completes before its deadline. */
#include <string.h>

#include "raft/internal.h"

struct raft_msg *raft__msg(struct raft *r, enum raft_msg_type type, uint64_t to)
{
    struct raft_out *o = &r->out;
    if (raft__grow(r, (void **)&o->msgs, &o->cap_msgs, o->n_msgs + 1, sizeof *o->msgs))
        return NULL;
    struct raft_msg *m = &o->msgs[o->n_msgs++];
    memset(m, 0, sizeof *m);
    m->type = type;
    m->from = r->opts.id;
    m->to = to;
    m->term = r->term;
    return m;
}

void raft__read_result(struct raft *r, uint64_t id, uint64_t index, int status)
{
    struct raft_out *o = &r->out;
    if (raft__grow(r, (void **)&o->reads, &o->cap_reads, o->n_reads + 1, sizeof *o->reads))
        return;
    o->reads[o->n_reads++] = (struct raft_read_result){.id = id, .index = index, .status = status};
}

static void request_result(struct raft *r, struct raft_request_result **arr, size_t *n, size_t *cap,
                           uint64_t id, int status)
{
    if (raft__grow(r, (void **)arr, cap, *n + 1, sizeof **arr))
        return;
    (*arr)[(*n)++] = (struct raft_request_result){.id = id, .status = status};
}

void raft__change_result(struct raft *r, uint64_t id, int status)
{
    request_result(r, &r->out.changes, &r->out.n_changes, &r->out.cap_changes, id, status);
}

void raft__transfer_result(struct raft *r, uint64_t id, int status)
{
    request_result(r, &r->out.transfers, &r->out.n_transfers, &r->out.cap_transfers, id, status);
}

void raft__mark_new(struct raft *r, uint64_t index)
{
    if (r->out.first_new == 0 || index < r->out.first_new)
        r->out.first_new = index;
}

void raft__out_reset(struct raft *r)
{
    struct raft_out *o = &r->out;
    o->n_msgs = 0;
    o->n_reads = 0;
    o->n_changes = 0;
    o->n_transfers = 0;
    o->first_new = 0;
    o->truncate_from = 0;
    o->is_hard_state_dirty = false;
    o->want_snapshot = false;
    o->compact_to = 0;
    o->proposed_index = 0;
    o->proposed_term = 0;
    o->has_chunk = false;
    o->install = false;
}

void raft__out_close(struct raft *r)
{
    struct raft_out *o = &r->out;
    raft__free(r, o->msgs);
    raft__free(r, o->reads);
    raft__free(r, o->changes);
    raft__free(r, o->transfers);
    raft__free(r, o->chunk);
    memset(o, 0, sizeof *o);
}

void raft__out_finish(struct raft *r, struct raft_update *u)
{
    struct raft_out *o = &r->out;
    memset(u, 0, sizeof *u);

    u->has_hard_state = o->is_hard_state_dirty;
    u->term = r->term;
    u->vote = r->vote;
    if (MUTANT(FORGET_VOTE) && r->is_vote_hidden)
        u->vote = 0;

    u->truncate_from = o->truncate_from;
    if (o->first_new != 0 && o->first_new <= raft__log_last(r)) {
        u->entries = raft__log_at(r, o->first_new);
        u->n_entries = (size_t)(raft__log_last(r) - o->first_new + 1);
    }

    /* Append messages point into the log; the log may have grown during the step, so the
     * pointers are taken only now. */
    for (size_t i = 0; i < o->n_msgs; i++) {
        struct raft_msg *m = &o->msgs[i];
        if (m->type == RAFT_MSG_APPEND && m->append.n_entries > 0)
            m->append.entries = raft__log_at(r, m->append.prev_index + 1);
    }
    u->msgs = o->msgs;
    u->n_msgs = o->n_msgs;

    raft__collect_apply(r, u);

    u->snapshot.has_chunk = o->has_chunk;
    u->snapshot.install = o->install;
    if (o->has_chunk || o->install) {
        u->snapshot.index = r->recv.index;
        u->snapshot.term = r->recv.term;
        u->snapshot.offset = o->chunk_offset;
        u->snapshot.data = o->chunk;
        u->snapshot.len = o->chunk_len;
        u->snapshot.conf = r->recv.conf;
    }
    u->want_snapshot = o->want_snapshot;
    u->compact_to = o->compact_to;
    u->proposed_index = o->proposed_index;
    u->proposed_term = o->proposed_term;

    u->reads = o->reads;
    u->n_reads = o->n_reads;
    u->changes = o->changes;
    u->n_changes = o->n_changes;
    u->transfers = o->transfers;
    u->n_transfers = o->n_transfers;

    u->role = r->role;
    u->leader = r->leader;
    u->commit = r->commit;
    u->role_changed = r->role != r->reported_role || r->term != r->reported_term ||
                      r->leader != r->reported_leader;
    r->reported_role = r->role;
    r->reported_term = r->term;
    r->reported_leader = r->leader;
}
