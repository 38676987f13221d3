/* Snapshots (§7): asking the state machine for one, compacting the log behind it while keeping a
 * trailing window, streaming it to a follower in chunks with a bound on bytes in flight, and
 * installing one received from the leader. The core never sees snapshot bytes it sends: the
 * runtime fills in each chunk from its file. */
#include <string.h>

#include "raft/internal.h"

void raft__maybe_want_snapshot(struct raft *r)
{
    if (r->is_snapshot_requested) {
        /* Asked already; ask again only if the request seems to have been dropped. */
        if (++r->snapshot_request_age < 10 * r->opts.election_ticks)
            return;
        r->is_snapshot_requested = false;
    }
    if (r->applied <= r->snapshot.index)
        return;
    if (r->applied - r->snapshot.index >= r->opts.snapshot_threshold ||
        (r->opts.snapshot_threshold_bytes &&
         r->applied_bytes >= r->opts.snapshot_threshold_bytes)) {
        r->out.want_snapshot = true;
        r->is_snapshot_requested = true;
        r->snapshot_request_age = 0;
    }
}

/* The configuration in force at index: the last configuration entry at or before it. */
static void conf_at(const struct raft *r, uint64_t index, struct raft_configuration *c)
{
    for (uint64_t i = index; i > r->log.offset; i--) {
        const struct raft_entry *e = raft__log_at(r, i);
        if (e->type == RAFT_ENTRY_CONFIG && raft_configuration_decode(e->data, e->len, c) == 0)
            return;
    }
    *c = r->snapshot.conf;
}

void raft__snapshot_taken(struct raft *r, uint64_t index, uint64_t size, int *rv)
{
    r->is_snapshot_requested = false;
    uint64_t term;
    if (index <= r->snapshot.index) {
        *rv = RAFT_ESTALE;
        return;
    }
    if (index > r->applied || size == 0 || !raft__log_term(r, index, &term)) {
        *rv = RAFT_EINVAL;
        return;
    }
    struct raft_configuration c;
    conf_at(r, index, &c);
    r->snapshot.index = index;
    r->snapshot.term = term;
    r->snapshot.conf = c;
    r->snapshot.size = size;
    r->applied_bytes = raft__log_bytes(r, index, r->applied);

    /* Keep a trailing window so that a follower slightly behind gets entries, not the whole
     * snapshot. */
    uint64_t cut = index > r->opts.snapshot_trailing ? index - r->opts.snapshot_trailing : 0;
    if (cut > r->log.offset) {
        raft__log_compact(r, cut);
        r->out.compact_to = cut;
    }
}

void raft__send_snapshot(struct raft *r, struct raft_progress *pr)
{
    if (r->snapshot.index == 0)
        return;
    if (pr->state != PROGRESS_SNAPSHOT || pr->snap_index != r->snapshot.index) {
        pr->state = PROGRESS_SNAPSHOT;
        pr->snap_index = r->snapshot.index;
        pr->snap_size = r->snapshot.size;
        pr->snap_sent = 0;
        pr->snap_acked = 0;
        pr->snap_idle = 0;
    }
    while (pr->snap_sent < pr->snap_size &&
           pr->snap_sent - pr->snap_acked < r->opts.max_inflight_bytes) {
        uint64_t len = pr->snap_size - pr->snap_sent;
        if (len > r->opts.snapshot_chunk_bytes)
            len = r->opts.snapshot_chunk_bytes;
        struct raft_msg *m = raft__msg(r, RAFT_MSG_SNAPSHOT, pr->id);
        if (m == NULL)
            return;
        m->snapshot.index = r->snapshot.index;
        m->snapshot.term = r->snapshot.term;
        m->snapshot.conf = r->snapshot.conf;
        m->snapshot.size = r->snapshot.size;
        m->snapshot.offset = pr->snap_sent;
        m->snapshot.len = (uint32_t)len;
        pr->snap_sent += len;
    }
}

void raft__snapshot_tick(struct raft *r, struct raft_progress *pr)
{
    if (pr->state != PROGRESS_SNAPSHOT)
        return;
    if (++pr->snap_idle < r->opts.election_ticks / 2)
        return;
    /* No progress for a while: chunks were lost, or the runtime replaced the snapshot we were
     * sending, or everything arrived but the answer did not (lost, or the install failed).
     * Start over with a newer snapshot; resume from the last acknowledged byte; or send the
     * last chunk again, which an installed follower answers with "done" and one that failed
     * answers with "start over". */
    pr->snap_idle = 0;
    if (pr->snap_index != r->snapshot.index)
        pr->state = PROGRESS_PROBE;
    if (pr->snap_acked >= pr->snap_size) {
        uint64_t last = pr->snap_size % r->opts.snapshot_chunk_bytes;
        pr->snap_acked = pr->snap_size - (last ? last : r->opts.snapshot_chunk_bytes);
    }
    pr->snap_sent = pr->snap_acked;
    raft__send_snapshot(r, pr);
}

void raft__recv_snapshot_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *pr = r->role == RAFT_LEADER ? raft__progress(r, m->from) : NULL;
    if (pr == NULL)
        return;
    const struct raft_msg_snapshot_resp *s = &m->snapshot_resp;
    pr->is_recent_active = true;
    pr->since_contact = 0;
    if (s->is_done) {
        /* Answers to earlier chunks and duplicates arrive late: one that tells nothing new
         * must not restart anything, or every stale answer would set off a new stream. */
        if (s->index <= pr->match ||
            (s->index > raft__log_last(r) && s->index != r->snapshot.index))
            return;
        pr->match = s->index;
        if (pr->state == PROGRESS_SNAPSHOT && s->index != pr->snap_index &&
            pr->match < r->log.offset)
            return; /* an older snapshot: the entries after it are gone, keep streaming */
        pr->state = PROGRESS_REPLICATE;
        pr->next = pr->match + 1;
        pr->is_probe_sent = false;
        raft__maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
        raft__change_progress(r);
        raft__transfer_check(r, pr);
        raft__send_append(r, pr);
        return;
    }
    if (pr->state != PROGRESS_SNAPSHOT || s->index != pr->snap_index)
        return;
    if (s->received < pr->snap_acked || s->received > pr->snap_sent) {
        /* The follower started over (it restarted, or lost the partial file). */
        pr->snap_acked = s->received <= pr->snap_size ? s->received : 0;
        pr->snap_sent = pr->snap_acked;
    } else if (s->received > pr->snap_acked) {
        pr->snap_acked = s->received;
        pr->snap_idle = 0;
    }
    raft__send_snapshot(r, pr);
}

static void respond(struct raft *r, uint64_t to, uint64_t index, uint64_t received, bool done)
{
    struct raft_msg *m = raft__msg(r, RAFT_MSG_SNAPSHOT_RESP, to);
    if (m == NULL)
        return;
    m->snapshot_resp.index = index;
    m->snapshot_resp.received = received;
    m->snapshot_resp.is_done = done;
}

void raft__recv_snapshot(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_FOLLOWER)
        raft__become_follower(r, r->term, m->from);
    r->leader = m->from;
    raft__reset_election_timer(r);

    const struct raft_msg_snapshot *s = &m->snapshot;
    if (s->index == 0 || s->term == 0 || s->size == 0 || s->len == 0 || s->offset > s->size ||
        s->len > s->size - s->offset || s->data == NULL)
        return; /* malformed: drop */

    uint64_t term;
    if (!r->recv.is_installing &&
        (s->index <= r->commit || (raft__log_term(r, s->index, &term) && term == s->term))) {
        /* We hold everything it covers, and it is committed (a snapshot holds only applied
         * entries): no need to install it. It is acknowledged like an append, only once it is
         * durable here (invariant 4): a leader that believed otherwise could later tell this
         * follower to commit stale entries that a crash brought back. */
        if (s->index > r->commit)
            r->commit = s->index;
        if (s->index > r->ack_limit)
            r->ack_limit = s->index;
        if (r->durable_index >= s->index)
            respond(r, m->from, s->index, s->size, true);
        else
            raft__send_ack(r);
        return;
    }
    struct snapshot_recv *rc = &r->recv;
    if (rc->is_installing) {
        if (rc->index == s->index)
            respond(r, m->from, s->index, rc->received, false);
        return;
    }
    if (!rc->is_active || rc->index != s->index || rc->term != s->term || rc->from != m->from ||
        rc->from_term != m->term || s->offset == 0) {
        if (s->offset != 0) {
            respond(r, m->from, s->index, 0, false); /* ask for the start */
            return;
        }
        memset(rc, 0, sizeof *rc);
        rc->is_active = true;
        rc->from = m->from;
        rc->from_term = m->term;
        rc->index = s->index;
        rc->term = s->term;
        rc->size = s->size;
        rc->conf = s->conf;
    }
    if (s->offset != rc->received || s->size != rc->size) {
        respond(r, m->from, s->index, rc->received, false);
        return;
    }
    size_t cap = r->out.chunk_cap;
    if (raft__grow(r, &r->out.chunk, &cap, s->len, 1))
        return;
    r->out.chunk_cap = cap;
    memcpy(r->out.chunk, s->data, s->len);
    r->out.has_chunk = true;
    r->out.chunk_offset = s->offset;
    r->out.chunk_len = s->len;
    rc->received += s->len;
    if (rc->received == rc->size) {
        r->out.install = true;
        rc->is_installing = true;
    }
    respond(r, m->from, s->index, rc->received, false);
}

void raft__snapshot_installed(struct raft *r, uint64_t index, uint64_t term, int status)
{
    struct snapshot_recv *rc = &r->recv;
    if (!rc->is_installing || rc->index != index || rc->term != term)
        return;
    rc->is_installing = false;
    rc->is_active = false;
    if (status != 0)
        return; /* the leader will send it again */

    r->snapshot.index = index;
    r->snapshot.term = term;
    r->snapshot.conf = rc->conf;
    r->snapshot.size = rc->size;
    /* The state machine now holds everything up to index; our log may disagree with it, so it
     * goes entirely (§7: "the follower discards its entire log"). */
    bool keep_log = MUTANT(SNAPSHOT_KEEP_LOG) && raft__log_last(r) > index;
    if (keep_log)
        raft__log_compact(r, index);
    else
        raft__log_reset(r, index);
    if (!keep_log || r->durable_index < index)
        r->durable_index = index;
    r->ack_limit = index;
    r->acked = index;
    if (r->commit < index)
        r->commit = index;
    r->applied = index;
    r->applied_bytes = 0;
    raft__conf_rebuild(r);
    if (r->leader != 0)
        respond(r, r->leader, index, rc->size, true);
}
