/* ReadIndex (thesis §6.4): a linearizable read without writing the log. The leader records its
 * commit index, confirms it is still the leader with one heartbeat round, and answers with the
 * index; the caller reads once its state machine has applied that far. Reads are batched: all
 * reads that arrive while a round is in flight share the next round. A follower forwards its
 * reads to the leader and relays the answer. */
#include "raft/internal.h"

/* Highest round confirmed by a quorum of voters (the leader confirms its own rounds). */
static uint64_t confirmed_seq(struct raft *r)
{
    uint64_t seqs[RAFT_MAX_SERVERS];
    unsigned n = 0;
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server *s = &r->conf.servers[i];
        if (s->suffrage != RAFT_VOTER)
            continue;
        if (s->id == r->opts.id) {
            seqs[n++] = r->read_seq;
        } else {
            const struct raft_progress *pr = raft__progress(r, s->id);
            seqs[n++] = pr ? pr->read_seq : 0;
        }
    }
    if (n == 0)
        return 0;
    /* the quorum-th largest */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && seqs[j - 1] < seqs[j]; j--) {
            uint64_t t = seqs[j];
            seqs[j] = seqs[j - 1];
            seqs[j - 1] = t;
        }
    return seqs[raft__quorum(n) - 1];
}

/* Leader lease (opt-in): a quorum heard from within the election timeout less the drift bound
 * means no other leader can have been elected yet (requires check-quorum). */
static bool lease_valid(const struct raft *r)
{
    if (!r->opts.lease_reads)
        return false;
    unsigned bound = r->opts.election_ticks - r->opts.lease_drift_ticks;
    unsigned live = raft__is_voter(r, r->opts.id) ? 1 : 0;
    for (unsigned i = 0; i < r->n_progress; i++)
        if (raft__is_voter(r, r->progress[i].id) && r->progress[i].since_contact < bound)
            live++;
    return live >= raft__quorum(raft_configuration_voters(&r->conf));
}

static void answer(struct raft *r, const struct pending_read *p, int status)
{
    if (p->from == 0) {
        raft__read_result(r, p->id, p->index, status);
        return;
    }
    struct raft_msg *m = raft__msg(r, RAFT_MSG_READ_INDEX_RESP, p->from);
    if (m == NULL)
        return;
    m->read_index_resp.id = p->id;
    m->read_index_resp.index = status ? 0 : p->index;
    m->read_index_resp.status = status;
}

static void start_round(struct raft *r)
{
    r->read_seq++;
    raft__broadcast_heartbeat(r);
}

/* Queue a read on the leader. */
static int leader_read(struct raft *r, uint64_t id, uint64_t from)
{
    bool has_committed = r->commit >= r->term_start; /* an entry of this term (thesis §6.4) */
    struct pending_read p = {.id = id, .from = from, .index = r->commit};

    if (has_committed &&
        (raft_configuration_voters(&r->conf) <= 1 || lease_valid(r) || MUTANT(UNCONFIRMED_READ))) {
        answer(r, &p, 0);
        return 0;
    }
    if (raft__grow(r, (void **)&r->reads, &r->cap_reads, r->n_reads + 1, sizeof *r->reads))
        return RAFT_ENOMEM;
    /* Join the round after the one in flight: a round already sent may be confirmed by
     * heartbeats that left before this read arrived, which would prove nothing about it. */
    p.seq = has_committed ? r->read_seq + 1 : 0;
    r->reads[r->n_reads++] = p;
    if (has_committed && confirmed_seq(r) >= r->read_seq)
        start_round(r);
    return 0;
}

void raft__reads_advance(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->n_reads == 0)
        return;
    bool has_committed = r->commit >= r->term_start;
    uint64_t confirmed = confirmed_seq(r);
    size_t kept = 0;
    bool want_round = false;
    for (size_t i = 0; i < r->n_reads; i++) {
        struct pending_read *p = &r->reads[i];
        if (p->seq == 0 && has_committed) {
            p->index = r->commit; /* the first commit of the term is the read index */
            p->seq = r->read_seq + 1;
        }
        if (p->seq != 0 && p->seq <= confirmed) {
            answer(r, p, 0);
            continue;
        }
        if (p->seq > r->read_seq)
            want_round = true;
        r->reads[kept++] = *p;
    }
    r->n_reads = kept;
    /* The round these reads wait for starts once the one in flight is confirmed. */
    if (want_round && confirmed >= r->read_seq)
        start_round(r);
}

void raft__reads_fail_all(struct raft *r, int status)
{
    for (size_t i = 0; i < r->n_reads; i++)
        answer(r, &r->reads[i], status);
    r->n_reads = 0;
}

int raft__read_index(struct raft *r, uint64_t id)
{
    if (r->role == RAFT_LEADER)
        return leader_read(r, id, 0);
    if (r->leader == 0)
        return RAFT_ENOTLEADER;
    if (raft__grow(r, (void **)&r->fwd_reads, &r->cap_fwd_reads, r->n_fwd_reads + 1,
                   sizeof *r->fwd_reads))
        return RAFT_ENOMEM;
    struct raft_msg *m = raft__msg(r, RAFT_MSG_READ_INDEX, r->leader);
    if (m == NULL)
        return RAFT_ENOMEM;
    m->read_index.id = id;
    r->fwd_reads[r->n_fwd_reads++] = id;
    return 0;
}

void raft__recv_read_index(struct raft *r, const struct raft_msg *m)
{
    struct pending_read p = {.id = m->read_index.id, .from = m->from};
    if (r->role != RAFT_LEADER) {
        answer(r, &p, RAFT_ENOTLEADER);
        return;
    }
    if (leader_read(r, m->read_index.id, m->from) != 0)
        answer(r, &p, RAFT_ENOMEM);
}

void raft__recv_read_index_resp(struct raft *r, const struct raft_msg *m)
{
    for (size_t i = 0; i < r->n_fwd_reads; i++) {
        if (r->fwd_reads[i] != m->read_index_resp.id)
            continue;
        r->fwd_reads[i] = r->fwd_reads[--r->n_fwd_reads];
        raft__read_result(r, m->read_index_resp.id, m->read_index_resp.index,
                          m->read_index_resp.status);
        return;
    }
}
