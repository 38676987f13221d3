/* Log replication (§5.3), commitment (§5.4.2), heartbeats and the leader's timers. The leader
 * writes its own log in parallel with sending it (thesis §10.2.1), so it counts itself toward a
 * quorum only up to durable_index (internal.h, invariant 5). */
#include <string.h>

#include "raft/internal.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

struct raft_progress *raft__progress(struct raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_progress; i++)
        if (r->progress[i].id == id)
            return &r->progress[i];
    return NULL;
}

/* Make the progress table match the configuration: one entry per other server. */
void raft__progress_sync(struct raft *r)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < r->n_progress; i++)
        if (raft_configuration_get(&r->conf, r->progress[i].id) != NULL)
            r->progress[kept++] = r->progress[i];
    r->n_progress = kept;
    for (unsigned i = 0; i < r->conf.n; i++) {
        uint64_t id = r->conf.servers[i].id;
        if (id == r->opts.id || raft__progress(r, id) != NULL)
            continue;
        struct raft_progress *pr = &r->progress[r->n_progress++];
        memset(pr, 0, sizeof *pr);
        pr->id = id;
        pr->state = PROGRESS_PROBE;
        pr->next = raft__log_last(r) + 1;
        pr->is_recent_active = true; /* a new server gets one check-quorum period of grace */
    }
}

void raft__become_leader(struct raft *r)
{
    r->role = RAFT_LEADER;
    r->leader = r->opts.id;
    r->n_progress = 0;
    if (r->transfer.is_active) {
        /* Left over from an earlier leadership of ours: it did not move leadership away. */
        r->transfer.is_active = false;
        raft__transfer_result(r, r->transfer.id, RAFT_ELEADERSHIPLOST);
    }
    raft__progress_sync(r);
    r->heartbeat_elapsed = 0;
    r->quorum_elapsed = 0;
    r->election_elapsed = 0;
    r->stall_ticks = 0;
    r->read_seq = 0;
    /* A no-op of the new term: committing it commits everything before it (§5.4.2, §8) and
     * unlocks reads and configuration changes. */
    if (raft__log_append(r, r->term, RAFT_ENTRY_NOOP, NULL, 0) != 0) {
        raft__become_follower(r, r->term, 0);
        return;
    }
    r->term_start = raft__log_last(r);
    raft__broadcast_append(r);
    raft__maybe_commit(r);
}

void raft__send_append(struct raft *r, struct raft_progress *pr)
{
    if (pr->state == PROGRESS_SNAPSHOT || (pr->state == PROGRESS_PROBE && pr->is_probe_sent))
        return;
    uint64_t last = raft__log_last(r);
    uint64_t prev = pr->next - 1;
    uint64_t prev_term;
    if (!raft__log_term(r, prev, &prev_term) || (pr->next <= r->log.offset && pr->next <= last)) {
        /* The entries it needs are compacted away: send the snapshot instead (§7). */
        raft__send_snapshot(r, pr);
        return;
    }
    if (pr->state == PROGRESS_REPLICATE &&
        raft__log_bytes(r, pr->match, pr->next - 1) >= r->opts.max_inflight_bytes)
        return;

    unsigned n = 0;
    uint64_t bytes = 0;
    for (uint64_t i = pr->next; i <= last; i++) {
        uint64_t len = raft__log_at(r, i)->len;
        if (n > 0 && bytes + len > r->opts.max_append_bytes)
            break;
        bytes += len;
        n++;
    }
    if (n == 0 && pr->state == PROGRESS_REPLICATE)
        return; /* nothing new; heartbeats carry the commit index */

    struct raft_msg *m = raft__msg(r, RAFT_MSG_APPEND, pr->id);
    if (m == NULL)
        return;
    m->append.prev_index = prev;
    m->append.prev_term = prev_term;
    m->append.commit = r->commit;
    m->append.n_entries = n; /* entries are pointed at when the step ends */
    /* It takes the commit index only as far as the entries it holds after this one. */
    pr->commit_sent = max_u64(pr->commit_sent, min_u64(r->commit, prev + n));
    if (pr->state == PROGRESS_PROBE)
        pr->is_probe_sent = true;
    else
        pr->next = prev + n + 1;
}

void raft__broadcast_append(struct raft *r)
{
    for (unsigned i = 0; i < r->n_progress; i++)
        raft__send_append(r, &r->progress[i]);
}

static void send_heartbeat(struct raft *r, struct raft_progress *pr)
{
    struct raft_msg *m = raft__msg(r, RAFT_MSG_HEARTBEAT, pr->id);
    if (m == NULL)
        return;
    /* Never past what the follower is known to hold: its log beyond match may still differ. */
    m->heartbeat.commit = min_u64(r->commit, pr->match);
    m->heartbeat.read_seq = r->read_seq;
    pr->commit_sent = max_u64(pr->commit_sent, m->heartbeat.commit);
}

void raft__broadcast_heartbeat(struct raft *r)
{
    for (unsigned i = 0; i < r->n_progress; i++)
        send_heartbeat(r, &r->progress[i]);
}

static void step_down(struct raft *r)
{
    raft__become_follower(r, r->term, 0);
}

void raft__tick_leader(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->quorum_elapsed++;
    r->election_elapsed++;
    for (unsigned i = 0; i < r->n_progress; i++) {
        struct raft_progress *pr = &r->progress[i];
        pr->since_contact++;
        raft__snapshot_tick(r, pr);
        /* Entries in flight and no acknowledgement for three heartbeat intervals: they were
         * lost (a follower acknowledges as soon as its disk has them). Probe again from the
         * last known match. Counted in time, so a follower with a slow disk is not mistaken
         * for a lossy one as long as it keeps up within that. */
        if (pr->state == PROGRESS_REPLICATE && pr->next - 1 > pr->match) {
            if (++pr->ack_idle >= 3 * r->opts.heartbeat_ticks) {
                pr->state = PROGRESS_PROBE;
                pr->next = pr->match + 1;
                pr->is_probe_sent = false;
                raft__send_append(r, pr);
            }
        } else {
            pr->ack_idle = 0;
        }
    }

    /* A leader whose own disk stalls keeps its followers' clocks reset with heartbeats while
     * nothing commits; stepping down lets a healthy server take over (the hashicorp/raft and
     * etcd failure where a leader with a hung disk freezes the cluster). */
    if (r->stall_ticks >= r->opts.disk_stall_ticks) {
        raft__reads_fail_all(r, RAFT_EDISKSTALL);
        step_down(r);
        return;
    }

    /* Check-quorum (thesis §6.2): without contact with a quorum for an election timeout, a
     * leader is probably partitioned away; stepping down stops it from serving stale reads. */
    if (r->quorum_elapsed >= r->opts.election_ticks) {
        r->quorum_elapsed = 0;
        unsigned active = raft__is_voter(r, r->opts.id) ? 1 : 0;
        for (unsigned i = 0; i < r->n_progress; i++) {
            struct raft_progress *pr = &r->progress[i];
            if (pr->is_recent_active && raft__is_voter(r, pr->id))
                active++;
            pr->is_recent_active = false;
        }
        if (active >= raft__quorum(raft_configuration_voters(&r->conf))) {
            r->election_elapsed = 0;
        } else if (r->opts.check_quorum) {
            step_down(r);
            return;
        }
    }

    /* Every heartbeat is a ReadIndex round: reads waiting for one go with it, and the lease
     * of lease reads counts from when it was sent. */
    if (r->heartbeat_elapsed >= r->opts.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        raft__start_round(r);
    }
    raft__change_tick(r);
}

int raft__propose(struct raft *r, const struct raft_event *e)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->transfer.is_active)
        return RAFT_EBUSY;
    if (e->propose.n == 0 || (e->propose.bufs == NULL) ||
        (e->propose.type != RAFT_ENTRY_COMMAND && e->propose.type != RAFT_ENTRY_NOOP))
        return RAFT_EINVAL;
    for (unsigned i = 0; i < e->propose.n; i++)
        if (e->propose.bufs[i].len > r->opts.max_entry_bytes)
            return RAFT_ETOOBIG;

    uint64_t first = raft__log_last(r) + 1;
    for (unsigned i = 0; i < e->propose.n; i++) {
        const struct raft_buf *b = &e->propose.bufs[i];
        if (raft__log_append(r, r->term, (uint8_t)e->propose.type, b->data, b->len) != 0) {
            raft__log_truncate(r, first);
            return RAFT_ENOMEM;
        }
    }
    r->out.proposed_index = first;
    r->out.proposed_term = r->term;
    raft__broadcast_append(r);
    raft__maybe_commit(r);
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void sort_desc(uint64_t *v, unsigned n)
{
    for (unsigned i = 1; i < n; i++) /* insertion sort: n <= RAFT_MAX_SERVERS */
        for (unsigned j = i; j > 0 && cmp_desc(&v[j - 1], &v[j]) > 0; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

static void commit_advanced(struct raft *r)
{
    raft__reads_advance(r);
    raft__change_progress(r);
    /* A leader removed or demoted by a committed configuration leaves (thesis §4.2.2). */
    if (r->role == RAFT_LEADER && !raft__is_voter(r, r->opts.id) && r->conf_index <= r->commit) {
        step_down(r);
        return;
    }
    /* Tell the followers now rather than at the next heartbeat, so that their reads, which
     * wait for the leader's commit index, do not wait a heartbeat interval. */
    for (unsigned i = 0; i < r->n_progress; i++) {
        struct raft_progress *pr = &r->progress[i];
        if (pr->state == PROGRESS_REPLICATE && pr->next <= raft__log_last(r))
            raft__send_append(r, pr);
        else
            send_heartbeat(r, pr);
    }
}

void raft__maybe_commit(struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    uint64_t match[RAFT_MAX_SERVERS];
    unsigned n = 0;
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server *s = &r->conf.servers[i];
        if (s->suffrage != RAFT_VOTER)
            continue;
        if (s->id == r->opts.id) {
            match[n++] = MUTANT(UNDURABLE_SELF_VOTE) ? raft__log_last(r) : r->durable_index;
        } else {
            const struct raft_progress *pr = raft__progress(r, s->id);
            match[n++] = pr ? pr->match : 0;
        }
    }
    if (n == 0)
        return;
    sort_desc(match, n);
    uint64_t index = match[raft__quorum(n) - 1];
    if (index <= r->commit)
        return;
    uint64_t term;
    if (!raft__log_term(r, index, &term))
        return;
    /* §5.4.2: only an entry of the current term is committed by counting replicas; earlier
     * ones are committed with it (Figure 8 shows what goes wrong otherwise). */
    if (term != r->term && !MUTANT(COMMIT_OLD_TERM))
        return;
    r->commit = index;
    commit_advanced(r);
}

void raft__send_ack(struct raft *r)
{
    if (r->role != RAFT_FOLLOWER || r->leader == 0)
        return;
    uint64_t index = min_u64(r->durable_index, r->ack_limit);
    if (index <= r->acked)
        return;
    struct raft_msg *m = raft__msg(r, RAFT_MSG_APPEND_RESP, r->leader);
    if (m == NULL)
        return;
    m->append_resp.success = true;
    m->append_resp.index = index;
    r->acked = index;
}

static void force_ack(struct raft *r, uint64_t index)
{
    struct raft_msg *m = raft__msg(r, RAFT_MSG_APPEND_RESP, r->leader);
    if (m == NULL)
        return;
    m->append_resp.success = true;
    m->append_resp.index = index;
    r->acked = max_u64(r->acked, index);
}

static void reject_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg *resp = raft__msg(r, RAFT_MSG_APPEND_RESP, m->from);
    if (resp == NULL)
        return;
    uint64_t prev = m->append.prev_index;
    uint64_t last = raft__log_last(r);
    resp->append_resp.success = false;
    resp->append_resp.reject_index = prev;
    if (prev > last) {
        resp->append_resp.conflict_index = last + 1;
        resp->append_resp.conflict_term = 0;
        return;
    }
    /* Fast backtracking: name the conflicting term and where it starts in our log, so the
     * leader skips the whole term in one round trip instead of one entry per round trip. */
    uint64_t term = 0;
    raft__log_term(r, prev, &term);
    uint64_t first = prev;
    uint64_t t;
    while (first - 1 > r->commit && raft__log_term(r, first - 1, &t) && t == term)
        first--;
    resp->append_resp.conflict_index = first;
    resp->append_resp.conflict_term = term;
}

/* Remove a conflicting suffix starting at index (§5.3). Entries up to commit never conflict. */
static void truncate_suffix(struct raft *r, uint64_t index)
{
    raft__log_truncate(r, index);
    if (r->out.truncate_from == 0 || index < r->out.truncate_from)
        r->out.truncate_from = index;
    raft__mark_new(r, index);
    if (r->durable_index >= index)
        r->durable_index = index - 1;
    if (r->ack_limit >= index)
        r->ack_limit = index - 1;
    if (r->conf_index >= index)
        raft__conf_rebuild(r);
}

void raft__recv_append(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_FOLLOWER)
        raft__become_follower(r, r->term, m->from);
    r->leader = m->from;
    raft__reset_election_timer(r);
    if (r->recv.is_installing)
        return; /* the log is about to be replaced; the leader will retry */

    const struct raft_msg_append *a = &m->append;
    uint64_t prev = a->prev_index;
    uint64_t prev_term = a->prev_term;
    const struct raft_entry *entries = a->entries;
    unsigned n = a->n_entries;
    uint64_t last_new = a->prev_index + n;

    /* Entries up to our commit index are committed, hence identical to the leader's (Log
     * Matching); skip them rather than compare, since they may be compacted away. */
    if (prev < r->commit) {
        unsigned skip = (unsigned)min_u64(n, r->commit - prev);
        if (skip > 0)
            prev_term = entries[skip - 1].term;
        prev += skip;
        entries += skip;
        n -= skip;
        if (prev < r->commit) {
            /* Everything in the message is already committed here. */
            r->ack_limit = max_u64(r->ack_limit, last_new);
            force_ack(r, min_u64(r->durable_index, r->ack_limit));
            return;
        }
        raft__log_term(r, prev, &prev_term); /* prev == commit: ours is the leader's */
    }

    uint64_t term;
    if (prev > raft__log_last(r) || !raft__log_term(r, prev, &term) || term != prev_term) {
        reject_append(r, m);
        return;
    }

    uint64_t index = prev;
    for (unsigned i = 0; i < n; i++) {
        index = prev + 1 + i;
        uint64_t have;
        if (index <= raft__log_last(r) && raft__log_term(r, index, &have)) {
            if (have == entries[i].term || MUTANT(NO_TRUNCATE))
                continue;
            truncate_suffix(r, index);
        }
        const struct raft_entry *e = &entries[i];
        if (raft__log_append(r, e->term, e->type, e->data, e->len) != 0) {
            index--; /* out of memory: keep what fits, the leader resends the rest */
            break;
        }
        if (e->type == RAFT_ENTRY_CONFIG)
            raft__conf_appended(r, raft__log_at(r, index));
    }
    last_new = n > 0 ? index : prev;

    r->ack_limit = max_u64(r->ack_limit, last_new);
    uint64_t commit = min_u64(a->commit, last_new);
    if (commit > r->commit)
        r->commit = commit;

    if (MUTANT(ACK_UNDURABLE))
        force_ack(r, last_new);
    else if (r->durable_index >= last_new)
        force_ack(r, last_new); /* a retransmission or a probe: answer now */
    else
        raft__send_ack(r); /* the rest is acknowledged when it is persisted */
}

void raft__recv_append_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *pr = r->role == RAFT_LEADER ? raft__progress(r, m->from) : NULL;
    if (pr == NULL)
        return;
    const struct raft_msg_append_resp *a = &m->append_resp;
    pr->is_recent_active = true;
    pr->since_contact = 0;

    if (a->success) {
        if (a->index > raft__log_last(r))
            return; /* from a log we never sent: ignore */
        if (a->index > pr->match) {
            pr->match = a->index;
            pr->ack_idle = 0;
        }
        if (pr->state == PROGRESS_PROBE ||
            (pr->state == PROGRESS_SNAPSHOT && pr->match >= pr->snap_index)) {
            pr->state = PROGRESS_REPLICATE;
            pr->next = pr->match + 1;
            pr->is_probe_sent = false;
        }
        if (pr->next <= pr->match)
            pr->next = pr->match + 1;
        raft__maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
        raft__transfer_check(r, pr);
        raft__change_progress(r);
        raft__send_append(r, pr);
        /* A quorum without this follower may have committed the entries it acknowledges only
         * now: commit_advanced then told it the commit index capped at its old match, and the
         * append above (if any) carries it only up to its last entry. Nothing else would tell
         * it before the next heartbeat, and a proposal this follower forwarded completes only
         * when it applies the entry: a heartbeat interval per change made through it. */
        if (min_u64(r->commit, pr->match) > pr->commit_sent)
            send_heartbeat(r, pr);
        return;
    }

    if (pr->state == PROGRESS_SNAPSHOT || a->reject_index < pr->match ||
        a->reject_index >= pr->next)
        return; /* stale: about an older message */
    /* The refused append taught it nothing: it can have learned the commit only up to match. */
    pr->commit_sent = min_u64(pr->commit_sent, pr->match);
    if (a->conflict_term == 0 && a->conflict_index <= pr->match) {
        /* The follower's log is shorter than what it acknowledged: its disk lost acknowledged
         * entries, which the protocol assumes never happens. Believe it rather than probe at
         * match + 1 forever. */
        pr->match = a->conflict_index - 1;
    }
    uint64_t next = a->conflict_index;
    if (a->conflict_term != 0) {
        uint64_t t;
        for (uint64_t j = min_u64(a->reject_index, raft__log_last(r));
             j > r->log.offset && raft__log_term(r, j, &t) && t >= a->conflict_term; j--) {
            if (t == a->conflict_term) {
                next = j + 1;
                break;
            }
        }
    }
    if (next > a->reject_index)
        next = a->reject_index;
    if (next <= pr->match)
        next = pr->match + 1;
    pr->next = next;
    pr->state = PROGRESS_PROBE;
    pr->is_probe_sent = false;
    raft__send_append(r, pr);
}

void raft__recv_heartbeat(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_FOLLOWER)
        raft__become_follower(r, r->term, m->from);
    r->leader = m->from;
    raft__reset_election_timer(r);
    uint64_t commit = min_u64(m->heartbeat.commit, raft__log_last(r));
    if (commit > r->commit && !r->recv.is_installing)
        r->commit = commit;
    struct raft_msg *resp = raft__msg(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    if (resp != NULL)
        resp->heartbeat_resp.read_seq = m->heartbeat.read_seq;
}

void raft__recv_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *pr = r->role == RAFT_LEADER ? raft__progress(r, m->from) : NULL;
    if (pr == NULL)
        return;
    pr->is_recent_active = true;
    pr->since_contact = 0;
    if (m->heartbeat_resp.read_seq > pr->read_seq) {
        pr->read_seq = m->heartbeat_resp.read_seq;
        raft__reads_advance(r);
    }
    if (pr->state == PROGRESS_PROBE)
        pr->is_probe_sent = false; /* the probe or its answer was lost: probe again */
    if (pr->match < raft__log_last(r))
        raft__send_append(r, pr);
}

void raft__persisted(struct raft *r, uint64_t index, uint64_t term)
{
    uint64_t t;
    if (index <= r->durable_index || !raft__log_term(r, index, &t) || t != term)
        return; /* an older write, superseded by a truncation */
    r->durable_index = index;
    r->stall_ticks = 0;
    if (r->role == RAFT_LEADER) {
        raft__maybe_commit(r);
    } else {
        raft__send_ack(r);
    }
}

void raft__collect_apply(struct raft *r, struct raft_update *u)
{
    uint64_t limit =
        MUTANT(APPLY_UNCOMMITTED) ? raft__log_last(r) : min_u64(r->commit, r->durable_index);
    limit = min_u64(limit, raft__log_last(r));
    /* While a snapshot is being installed the state machine is being replaced: nothing may be
     * applied to it until the install is reported, after which applied jumps past it. */
    if (limit <= r->applied || r->applied < r->log.offset || r->recv.is_installing)
        return;
    u->apply = raft__log_at(r, r->applied + 1);
    u->n_apply = (size_t)(limit - r->applied);
    r->applied_bytes += raft__log_bytes(r, r->applied, limit);
    r->applied = limit;
}
