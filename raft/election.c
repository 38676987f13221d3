/* Leader election (§5.2) with pre-vote (thesis §9.6), the disruptive-server guard (thesis
 * §4.2.3) and randomized timeouts. */
#include <string.h>

#include "raft/internal.h"

void raft__reset_election_timer(struct raft *r)
{
    unsigned e = r->opts.election_ticks;
    r->election_elapsed = 0;
    r->randomized_timeout = e + (unsigned)(raft__random(r) % e);
}

/* Leader-only state ends: pending requests learn that leadership is gone. */
static void leave_leadership(struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    raft__reads_fail_all(r, RAFT_ELEADERSHIPLOST);
    raft__change_abort(r, RAFT_ELEADERSHIPLOST);
    r->n_progress = 0;
}

/* Reads forwarded to a leader this server no longer follows (another one, a later term, or
 * none while it campaigns) may never be answered: fail them, so the caller can ask again. */
static void fail_forwarded_reads(struct raft *r)
{
    for (size_t i = 0; i < r->n_fwd_reads; i++)
        raft__read_result(r, r->fwd_reads[i], 0, RAFT_ELEADERSHIPLOST);
    r->n_fwd_reads = 0;
}

void raft__become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
    leave_leadership(r);
    bool is_new_term = term != r->term;
    raft__set_term(r, term);
    if (leader != r->leader || is_new_term)
        fail_forwarded_reads(r);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    r->n_votes = 0;
    raft__reset_election_timer(r);
}

/* Count each voter once, whichever way it answered: the network may duplicate answers. */
static void record_vote(struct raft *r, uint64_t id, bool granted)
{
    for (unsigned i = 0; i < r->n_votes; i++)
        if (r->votes[i].id == id)
            return;
    if (r->n_votes < RAFT_MAX_SERVERS)
        r->votes[r->n_votes++] = (struct raft_vote){.id = id, .is_granted = granted};
}

static unsigned count_votes(const struct raft *r, bool granted)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_votes; i++)
        n += r->votes[i].is_granted == granted && raft__is_voter(r, r->votes[i].id);
    return n;
}

static void send_vote_requests(struct raft *r, bool is_pre_vote, bool is_transfer)
{
    for (unsigned i = 0; i < r->conf.n; i++) {
        const struct raft_server *s = &r->conf.servers[i];
        if (s->id == r->opts.id || s->suffrage != RAFT_VOTER)
            continue;
        struct raft_msg *m = raft__msg(r, RAFT_MSG_VOTE, s->id);
        if (m == NULL)
            continue;
        m->term = is_pre_vote ? r->term + 1 : r->term;
        m->vote.is_pre_vote = is_pre_vote;
        m->vote.is_transfer = is_transfer;
        m->vote.last_index = raft__log_last(r);
        m->vote.last_term = raft__log_last_term(r);
    }
}

static void check_election(struct raft *r)
{
    unsigned voters = raft_configuration_voters(&r->conf);
    if (count_votes(r, true) < raft__quorum(voters))
        return;
    if (r->role == RAFT_PRE_CANDIDATE)
        raft__campaign(r, false, false);
    else if (r->role == RAFT_CANDIDATE)
        raft__become_leader(r);
}

void raft__campaign(struct raft *r, bool is_pre_vote, bool is_transfer)
{
    if (!raft__is_voter(r, r->opts.id))
        return; /* learners and servers outside the configuration never campaign */
    leave_leadership(r);
    fail_forwarded_reads(r);
    r->n_votes = 0;
    r->leader = 0;
    raft__reset_election_timer(r);
    if (is_pre_vote) {
        /* Ask first whether an election could be won, without touching the term: a server
         * that cannot win (partitioned, behind) then never disrupts the cluster. */
        r->role = RAFT_PRE_CANDIDATE;
    } else {
        r->role = RAFT_CANDIDATE;
        raft__set_term(r, r->term + 1);
        r->vote = r->opts.id;
        r->out.is_hard_state_dirty = true;
    }
    record_vote(r, r->opts.id, true);
    send_vote_requests(r, is_pre_vote, is_transfer);
    check_election(r); /* a single voter wins at once */
}

void raft__tick_election(struct raft *r)
{
    r->election_elapsed++;
    if (r->election_elapsed < r->randomized_timeout)
        return;
    /* Learners and servers outside the configuration never campaign; neither does a server
     * installing a snapshot, nor one whose disk stalls: it would only win to step down again. */
    if (!raft__is_voter(r, r->opts.id) || r->recv.is_installing ||
        r->stall_ticks >= r->opts.disk_stall_ticks) {
        raft__reset_election_timer(r);
        return;
    }
    raft__campaign(r, r->opts.pre_vote, false);
}

/* §5.4.1: a vote goes only to a candidate whose log is at least as up to date. */
static bool log_up_to_date(const struct raft *r, uint64_t last_index, uint64_t last_term)
{
    if (MUTANT(NO_UP_TO_DATE_CHECK))
        return true;
    uint64_t my_term = raft__log_last_term(r);
    return last_term > my_term || (last_term == my_term && last_index >= raft__log_last(r));
}

void raft__recv_vote(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_vote *v = &m->vote;
    bool granted = false;

    if (m->term > r->term) {
        /* Disruptive-server guard: while a leader is known and recently heard from, a vote
         * request (from a removed server, or one that was partitioned) is ignored outright,
         * unless the leader itself asked for the election by a transfer. */
        bool in_lease = r->leader != 0 && (r->role != RAFT_LEADER || r->opts.check_quorum) &&
                        r->election_elapsed < r->opts.election_ticks;
        /* With lease reads, a leader counts on us not voting for an election timeout after we
         * heard from it, and a restart must not shorten that: we wait one out first. */
        if (r->opts.lease_reads && r->ticks < r->opts.election_ticks)
            in_lease = true;
        if (in_lease && !v->is_transfer)
            return;
        if (!v->is_pre_vote)
            raft__become_follower(r, m->term, 0);
    }

    /* The candidate need not be a voter in our configuration: it may know a newer one that
     * promoted it (thesis §4.1). Servers outside their own configuration never campaign, and
     * pre-vote with the guard above keeps removed ones from disrupting. */
    if (m->term >= r->term && log_up_to_date(r, v->last_index, v->last_term)) {
        if (v->is_pre_vote)
            granted = m->term > r->term;
        else
            granted = r->vote == 0 || r->vote == m->from || MUTANT(DOUBLE_VOTE);
    }

    if (granted && !v->is_pre_vote) {
        r->vote = m->from;
        r->out.is_hard_state_dirty = true;
        r->is_vote_hidden = MUTANT(FORGET_VOTE);
        raft__reset_election_timer(r);
    }

    struct raft_msg *resp = raft__msg(r, RAFT_MSG_VOTE_RESP, m->from);
    if (resp == NULL)
        return;
    /* A granted pre-vote answers in the term it was asked for; anything else carries our own
     * term, so a candidate behind us learns of it. */
    resp->term = granted && v->is_pre_vote ? m->term : r->term;
    resp->vote_resp.is_pre_vote = v->is_pre_vote;
    resp->vote_resp.granted = granted;
}

void raft__recv_vote_resp(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_vote_resp *v = &m->vote_resp;
    if (v->is_pre_vote) {
        if (r->role != RAFT_PRE_CANDIDATE || m->term != r->term + 1)
            return;
    } else if (r->role != RAFT_CANDIDATE || m->term != r->term) {
        return;
    }
    record_vote(r, m->from, v->granted);
    check_election(r);
    unsigned voters = raft_configuration_voters(&r->conf);
    if (count_votes(r, false) >= raft__quorum(voters))
        raft__become_follower(r, r->term, 0); /* lost; wait for a new timeout */
}
