/* Lifecycle of a core, the dispatch of events, and inspection. */
#include <string.h>

#include "raft/internal.h"

static const char *const error_messages[] = {
#define RAFT_MSG_(name, msg) [name - RAFT_ERROR_BASE - 1] = msg,
    RAFT_ERRORS(RAFT_MSG_)
#undef RAFT_MSG_
};

const char *raft_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code > RAFT_ERROR_BASE && code < RAFT_ERROR_END)
        return error_messages[code - RAFT_ERROR_BASE - 1];
    return "unknown raft error";
}

void raft_options_default(struct raft_options *o, uint64_t id)
{
    memset(o, 0, sizeof *o);
    o->id = id;
    o->seed = id;
    o->election_ticks = 100; /* 1 s at raftfsd's 10 ms tick */
    o->heartbeat_ticks = 10;
    o->pre_vote = true;
    o->check_quorum = true;
    o->lease_reads = false;
    o->lease_drift_ticks = 10;
    o->max_append_bytes = 1 << 20;
    o->max_inflight_bytes = 8 << 20;
    o->max_entry_bytes = 4 << 20;
    o->catchup_rounds = 10;
    o->catchup_round_ticks = 100;
    o->transfer_ticks = 300;
    o->disk_stall_ticks = 500;
    o->snapshot_threshold = 8192;
    o->snapshot_threshold_bytes = 64 << 20;
    o->snapshot_trailing = 1024;
    o->snapshot_chunk_bytes = 256 << 10;
}

static int check_options(const struct raft_options *o)
{
    if (o->id == 0 || o->election_ticks < 2 || o->heartbeat_ticks == 0 ||
        o->heartbeat_ticks >= o->election_ticks || o->max_append_bytes == 0 ||
        o->max_inflight_bytes == 0 || o->max_entry_bytes == 0 || o->snapshot_chunk_bytes == 0 ||
        o->catchup_rounds == 0 || o->catchup_round_ticks == 0 || o->transfer_ticks == 0 ||
        o->disk_stall_ticks == 0 || o->snapshot_threshold == 0)
        return RAFT_EINVAL;
    if (o->lease_reads && (!o->check_quorum || o->lease_drift_ticks >= o->election_ticks))
        return RAFT_EINVAL;
    return 0;
}

unsigned raft__quorum(unsigned voters)
{
    if (MUTANT(HALF_MAJORITY))
        return voters / 2 > 0 ? voters / 2 : 1;
    return voters / 2 + 1;
}

bool raft__is_voter(const struct raft *r, uint64_t id)
{
    const struct raft_server *s = raft_configuration_get(&r->conf, id);
    return s != NULL && s->suffrage == RAFT_VOTER;
}

uint64_t raft__random(struct raft *r)
{
    /* splitmix64: small, fast and good enough for election jitter. */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void raft__set_term(struct raft *r, uint64_t term)
{
    if (term != r->term) {
        r->term = term;
        r->vote = 0;
        r->acked = 0;
        r->ack_limit = 0;
        r->out.is_hard_state_dirty = true;
    }
}

int raft_new(const struct raft_options *opts, const struct raft_initial_state *s, struct raft **out)
{
    int rv = check_options(opts);
    if (rv)
        return rv;
    const struct raft_allocator *a = opts->allocator ? opts->allocator : &raft_libc_allocator;
    struct raft *r = a->alloc(a->ctx, sizeof *r);
    if (r == NULL)
        return RAFT_ENOMEM;
    memset(r, 0, sizeof *r);
    r->opts = *opts;
    r->alloc = *a;
    r->opts.allocator = NULL;
    r->rng = opts->seed;

    r->term = s->term;
    r->vote = s->vote;
    r->snapshot = s->snapshot;
    r->conf = s->snapshot.conf;
    r->conf_index = s->snapshot.index;

    /* The stored log may keep a trailing window below the snapshot; it must reach past it. */
    uint64_t first = s->n_entries ? s->entries[0].index : s->snapshot.index + 1;
    if (first == 0 || first > s->snapshot.index + 1) {
        rv = RAFT_EINVAL;
        goto err_after_alloc;
    }
    raft__log_init(r, first - 1);
    for (size_t i = 0; i < s->n_entries; i++) {
        const struct raft_entry *e = &s->entries[i];
        if (e->index != first + i || e->term == 0 || (i > 0 && e->term < s->entries[i - 1].term)) {
            rv = RAFT_EINVAL;
            goto err_after_log;
        }
        rv = raft__log_append(r, e->term, e->type, e->data, e->len);
        if (rv)
            goto err_after_log;
    }
    /* A log that does not contain the snapshot's last entry (it ends before it, or holds another
     * term there) is left over from before the snapshot was installed: it contradicts the
     * state machine, so it goes, and the log continues after the snapshot. */
    if (s->snapshot.index > 0) {
        const struct raft_entry *at = raft__log_at(r, s->snapshot.index);
        bool is_behind = raft__log_last(r) < s->snapshot.index;
        bool is_other = at != NULL && at->term != s->snapshot.term;
        if (is_behind || is_other)
            raft__log_reset(r, s->snapshot.index);
    }
    r->durable_index = raft__log_last(r);
    raft__conf_rebuild(r);

    r->applied = s->applied > s->snapshot.index ? s->applied : s->snapshot.index;
    if (r->applied > raft__log_last(r) && r->applied > s->snapshot.index) {
        rv = RAFT_EINVAL; /* the state machine is ahead of the log and no snapshot covers it */
        goto err_after_log;
    }
    /* Never more than the caller knows to be committed: the rest of the local log may be
     * uncommitted leftovers that a leader will overwrite. */
    r->commit = s->commit < raft__log_last(r) ? s->commit : raft__log_last(r);
    if (r->commit < r->applied)
        r->commit = r->applied;

    r->role = RAFT_FOLLOWER;
    r->reported_role = RAFT_FOLLOWER;
    r->reported_term = r->term;
    raft__reset_election_timer(r);
    raft__out_reset(r);
    *out = r;
    return 0;

err_after_log:
    raft__log_close(r);
err_after_alloc:
    a->free(a->ctx, r);
    return rv;
}

void raft_free(struct raft *r)
{
    if (r == NULL)
        return;
    raft__log_close(r);
    raft__out_close(r);
    raft__free(r, r->reads);
    raft__free(r, r->fwd_reads);
    struct raft_allocator a = r->alloc;
    a.free(a.ctx, r);
}

static void tick(struct raft *r)
{
    r->ticks++;
    /* A log write that makes no progress for too long is a stalled disk, whatever the role. */
    if (r->durable_index < raft__log_last(r))
        r->stall_ticks++;
    else
        r->stall_ticks = 0;
    if (r->role == RAFT_LEADER)
        raft__tick_leader(r);
    else
        raft__tick_election(r);
    raft__transfer_tick(r);
    raft__maybe_want_snapshot(r);
}

static void receive(struct raft *r, const struct raft_msg *m)
{
    if (m->to != r->opts.id || m->from == 0 || m->from == r->opts.id || m->type < RAFT_MSG_APPEND ||
        m->type > RAFT_MSG_TYPE_MAX)
        return;

    if (m->type == RAFT_MSG_VOTE) {
        raft__recv_vote(r, m); /* its own term rules: pre-votes never change ours */
        return;
    }
    if (m->type == RAFT_MSG_VOTE_RESP && m->vote_resp.is_pre_vote && m->vote_resp.granted) {
        raft__recv_vote_resp(r, m); /* granted pre-votes carry the proposed term */
        return;
    }

    if (m->term > r->term) {
        bool from_leader = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                           m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_TIMEOUT_NOW;
        raft__become_follower(r, m->term, from_leader ? m->from : 0);
    } else if (m->term < r->term) {
        /* A stale leader learns of the newer term from our answer and steps down; without this
         * a leader cut off by a one-way partition could keep followers from electing. The
         * answer is a heartbeat response, which tells a leader re-elected meanwhile (same id,
         * newer term) nothing about our log, unlike a rejected append would. */
        if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
            m->type == RAFT_MSG_SNAPSHOT) {
            raft__msg(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
        } else if (m->type == RAFT_MSG_READ_INDEX) {
            struct raft_msg *resp = raft__msg(r, RAFT_MSG_READ_INDEX_RESP, m->from);
            if (resp != NULL) {
                resp->read_index_resp.id = m->read_index.id;
                resp->read_index_resp.status = RAFT_ENOTLEADER;
            }
        }
        return;
    }

    switch (m->type) {
    case RAFT_MSG_APPEND: raft__recv_append(r, m); break;
    case RAFT_MSG_APPEND_RESP: raft__recv_append_resp(r, m); break;
    case RAFT_MSG_VOTE_RESP: raft__recv_vote_resp(r, m); break;
    case RAFT_MSG_HEARTBEAT: raft__recv_heartbeat(r, m); break;
    case RAFT_MSG_HEARTBEAT_RESP: raft__recv_heartbeat_resp(r, m); break;
    case RAFT_MSG_SNAPSHOT: raft__recv_snapshot(r, m); break;
    case RAFT_MSG_SNAPSHOT_RESP: raft__recv_snapshot_resp(r, m); break;
    case RAFT_MSG_TIMEOUT_NOW: raft__recv_timeout_now(r, m); break;
    case RAFT_MSG_READ_INDEX: raft__recv_read_index(r, m); break;
    case RAFT_MSG_READ_INDEX_RESP: raft__recv_read_index_resp(r, m); break;
    case RAFT_MSG_VOTE: break; /* handled above */
    }
}

int raft_step(struct raft *r, const struct raft_event *e, struct raft_update *u)
{
    int rv = 0;
    raft__out_reset(r);
    switch (e->type) {
    case RAFT_EVENT_TICK: tick(r); break;
    case RAFT_EVENT_RECEIVE:
        if (e->receive.msg == NULL)
            rv = RAFT_EINVAL;
        else
            receive(r, e->receive.msg);
        break;
    case RAFT_EVENT_PERSISTED: raft__persisted(r, e->persisted.index, e->persisted.term); break;
    case RAFT_EVENT_PROPOSE: rv = raft__propose(r, e); break;
    case RAFT_EVENT_READ_INDEX: rv = raft__read_index(r, e->read_index.id); break;
    case RAFT_EVENT_CHANGE: rv = raft__change(r, e); break;
    case RAFT_EVENT_TRANSFER: rv = raft__transfer(r, e); break;
    case RAFT_EVENT_SNAPSHOT_TAKEN:
        raft__snapshot_taken(r, e->snapshot_taken.index, e->snapshot_taken.size, &rv);
        break;
    case RAFT_EVENT_SNAPSHOT_INSTALLED:
        raft__snapshot_installed(r, e->snapshot_installed.index, e->snapshot_installed.term,
                                 e->snapshot_installed.status);
        break;
    case RAFT_EVENT_CAMPAIGN:
        if (r->role == RAFT_LEADER || !raft__is_voter(r, r->opts.id) || r->recv.is_installing)
            rv = RAFT_EINVAL;
        else
            raft__campaign(r, r->opts.pre_vote, false);
        break;
    default: rv = RAFT_EINVAL; break;
    }
    raft__out_finish(r, u);
    return rv;
}

enum raft_role raft_role(const struct raft *r)
{
    return r->role;
}

const struct raft_configuration *raft_configuration_latest(const struct raft *r)
{
    return &r->conf;
}

uint64_t raft_leader(const struct raft *r)
{
    return r->leader;
}

uint64_t raft_term(const struct raft *r)
{
    return r->term;
}

const struct raft_entry *raft_log_get(const struct raft *r, uint64_t index)
{
    return raft__log_at(r, index);
}

void raft_status(const struct raft *r, struct raft_status *s)
{
    memset(s, 0, sizeof *s);
    s->id = r->opts.id;
    s->role = r->role;
    s->term = r->term;
    s->vote = r->vote;
    s->leader = r->leader;
    s->commit = r->commit;
    s->applied = r->applied;
    s->first_index = r->log.offset + 1;
    s->last_index = raft__log_last(r);
    s->durable_index = r->durable_index;
    s->snapshot_index = r->snapshot.index;
    s->snapshot_term = r->snapshot.term;
    s->conf_index = r->conf_index;
    s->conf = r->conf;
    if (r->role == RAFT_LEADER) {
        for (unsigned i = 0; i < r->n_progress; i++) {
            const struct raft_progress *pr = &r->progress[i];
            const struct raft_server *sv = raft_configuration_get(&r->conf, pr->id);
            s->progress[i] = (struct raft_progress_info){
                .id = pr->id,
                .suffrage = sv ? sv->suffrage : RAFT_LEARNER,
                .match = pr->match,
                .next = pr->next,
                .ticks_since_contact = pr->since_contact,
            };
        }
        s->n_progress = r->n_progress;
    }
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_PRE_CANDIDATE: return "pre-candidate";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    }
    return "unknown";
}

const char *raft_msg_type_name(enum raft_msg_type type)
{
    switch (type) {
    case RAFT_MSG_APPEND: return "append";
    case RAFT_MSG_APPEND_RESP: return "append-resp";
    case RAFT_MSG_VOTE: return "vote";
    case RAFT_MSG_VOTE_RESP: return "vote-resp";
    case RAFT_MSG_HEARTBEAT: return "heartbeat";
    case RAFT_MSG_HEARTBEAT_RESP: return "heartbeat-resp";
    case RAFT_MSG_SNAPSHOT: return "snapshot";
    case RAFT_MSG_SNAPSHOT_RESP: return "snapshot-resp";
    case RAFT_MSG_TIMEOUT_NOW: return "timeout-now";
    case RAFT_MSG_READ_INDEX: return "read-index";
    case RAFT_MSG_READ_INDEX_RESP: return "read-index-resp";
    }
    return "unknown";
}
