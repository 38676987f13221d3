/* Membership changes one server at a time (thesis §4.1, §4.2) and leadership transfer (thesis
 * §3.10). A new voter first joins as a learner and is promoted only after it catches up with
 * the log in a round shorter than catchup_round_ticks (thesis §4.2.1), so adding a slow or dead
 * server never costs the cluster its availability. */
#include <string.h>

#include "raft/internal.h"

void raft__conf_appended(struct raft *r, const struct raft_entry *e)
{
    struct raft_configuration c;
    if (raft_configuration_decode(e->data, e->len, &c) != 0)
        return; /* unreadable: the previous configuration stays in force */
    r->conf = c;
    r->conf_index = e->index;
    if (r->role == RAFT_LEADER)
        raft__progress_sync(r);
}

void raft__conf_rebuild(struct raft *r)
{
    for (uint64_t i = raft__log_last(r); i > r->log.offset; i--) {
        const struct raft_entry *e = raft__log_at(r, i);
        struct raft_configuration c;
        if (e->type == RAFT_ENTRY_CONFIG && raft_configuration_decode(e->data, e->len, &c) == 0) {
            r->conf = c;
            r->conf_index = i;
            return;
        }
    }
    r->conf = r->snapshot.conf;
    r->conf_index = r->snapshot.index;
}

static int append_conf(struct raft *r, const struct raft_configuration *c)
{
    uint8_t buf[2 + RAFT_MAX_SERVERS * (10 + RAFT_ADDRESS_MAX)];
    raft_configuration_encode(c, buf);
    int rv = raft__log_append(r, r->term, RAFT_ENTRY_CONFIG, buf,
                              (uint32_t)raft_configuration_encoded_size(c));
    if (rv)
        return rv;
    raft__conf_appended(r, raft__log_at(r, raft__log_last(r)));
    raft__broadcast_append(r);
    raft__maybe_commit(r);
    return 0;
}

static void start_round(struct raft *r)
{
    r->change.round++;
    r->change.round_ticks = 0;
    r->change.round_target = raft__log_last(r);
}

int raft__change(struct raft *r, const struct raft_event *e)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    bool is_busy = r->change.phase != CHANGE_NONE || r->conf_index > r->commit;
    if ((is_busy && !MUTANT(CONCURRENT_CHANGES)) || r->commit < r->term_start ||
        r->transfer.is_active)
        return RAFT_EBUSY;
    if (e->change.expect_index != 0 && e->change.expect_index != r->conf_index)
        return RAFT_ECONFCHANGED;
    uint64_t id = e->change.server;
    if (id == 0)
        return RAFT_EINVAL;

    struct raft_configuration next = r->conf;
    struct raft_server *s = NULL;
    for (unsigned i = 0; i < next.n; i++)
        if (next.servers[i].id == id)
            s = &next.servers[i];

    enum raft_change_op op = e->change.op;
    switch (op) {
    case RAFT_CHANGE_ADD_VOTER:
    case RAFT_CHANGE_ADD_LEARNER:
        if (s != NULL && (s->suffrage == RAFT_VOTER || op == RAFT_CHANGE_ADD_LEARNER))
            return RAFT_EEXISTS;
        if (s == NULL) {
            const char *addr = e->change.address ? e->change.address : "";
            if (next.n >= RAFT_MAX_SERVERS || strlen(addr) >= RAFT_ADDRESS_MAX)
                return RAFT_EINVAL;
            s = &next.servers[next.n++];
            memset(s, 0, sizeof *s);
            s->id = id;
            s->suffrage = RAFT_LEARNER;
            strcpy(s->address, addr);
        } else {
            s = NULL; /* an existing learner to promote: nothing to append yet */
        }
        break;
    case RAFT_CHANGE_REMOVE:
        if (s == NULL)
            return RAFT_ENOTFOUND;
        *s = next.servers[--next.n];
        break;
    case RAFT_CHANGE_DEMOTE:
        if (s == NULL || s->suffrage != RAFT_VOTER)
            return RAFT_ENOTFOUND;
        s->suffrage = RAFT_LEARNER;
        break;
    default: return RAFT_EINVAL;
    }
    if (raft_configuration_voters(&next) == 0)
        return RAFT_ENOQUORUM;

    bool has_entry = op != RAFT_CHANGE_ADD_VOTER || s != NULL;
    if (has_entry) {
        int rv = append_conf(r, &next);
        if (rv)
            return rv;
    }
    memset(&r->change, 0, sizeof r->change);
    r->change.id = e->change.id;
    r->change.op = op;
    r->change.server = id;
    r->change.index = raft__log_last(r);
    if (op == RAFT_CHANGE_ADD_VOTER) {
        r->change.phase = CHANGE_CATCHUP;
        start_round(r);
    } else {
        r->change.phase = CHANGE_COMMIT;
    }
    raft__change_progress(r);
    return 0;
}

static void finish(struct raft *r, int status)
{
    uint64_t id = r->change.id;
    memset(&r->change, 0, sizeof r->change);
    raft__change_result(r, id, status);
}

static void promote(struct raft *r)
{
    struct raft_configuration next = r->conf;
    for (unsigned i = 0; i < next.n; i++)
        if (next.servers[i].id == r->change.server)
            next.servers[i].suffrage = RAFT_VOTER;
    if (append_conf(r, &next) != 0)
        return; /* out of memory: tried again at the next progress or tick */
    r->change.phase = CHANGE_COMMIT;
    r->change.index = raft__log_last(r);
}

void raft__change_progress(struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    switch (r->change.phase) {
    case CHANGE_NONE: return;
    case CHANGE_CATCHUP: {
        const struct raft_server *s = raft_configuration_get(&r->conf, r->change.server);
        if (s == NULL) {
            finish(r, RAFT_ENOTFOUND); /* removed meanwhile */
            return;
        }
        const struct raft_progress *pr = raft__progress(r, r->change.server);
        if (pr == NULL || pr->match < r->change.round_target)
            return;
        /* Caught up within the round. Promote once the learner's own entry is committed
         * (one change at a time); otherwise measure another round. */
        if (r->conf_index <= r->commit)
            promote(r);
        else
            start_round(r);
        return;
    }
    case CHANGE_COMMIT:
        if (r->commit >= r->change.index)
            finish(r, 0);
        return;
    }
}

void raft__change_tick(struct raft *r)
{
    if (r->change.phase != CHANGE_CATCHUP)
        return;
    if (++r->change.round_ticks < r->opts.catchup_round_ticks)
        return;
    if (r->change.round >= r->opts.catchup_rounds) {
        finish(r, RAFT_ECATCHUP); /* it stays a learner; the operator may remove it */
        return;
    }
    start_round(r);
}

void raft__change_abort(struct raft *r, int status)
{
    if (r->change.phase != CHANGE_NONE)
        finish(r, status);
}

/* --- leadership transfer ------------------------------------------------------------------- */

static void send_timeout_now(struct raft *r)
{
    struct raft_msg *m = raft__msg(r, RAFT_MSG_TIMEOUT_NOW, r->transfer.target);
    if (m != NULL) {
        r->transfer.is_timeout_now_sent = true;
        r->transfer.since_timeout_now = 0;
    }
}

int raft__transfer(struct raft *r, const struct raft_event *e)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->transfer.is_active || r->change.phase != CHANGE_NONE)
        return RAFT_EBUSY;
    uint64_t target = e->transfer.server;
    if (target == 0) {
        uint64_t best = 0;
        for (unsigned i = 0; i < r->n_progress; i++) {
            const struct raft_progress *pr = &r->progress[i];
            if (raft__is_voter(r, pr->id) && (target == 0 || pr->match > best)) {
                target = pr->id;
                best = pr->match;
            }
        }
        if (target == 0)
            return RAFT_ENOTFOUND;
    }
    if (target == r->opts.id)
        return RAFT_EINVAL;
    struct raft_progress *pr = raft__progress(r, target);
    if (pr == NULL || !raft__is_voter(r, target))
        return RAFT_ENOTFOUND;
    r->transfer = (struct pending_transfer){
        .is_active = true, .id = e->transfer.id, .target = target, .term = r->term};
    /* Proposals are refused from now on, so the target can catch up with a log that stops
     * growing; then it is told to start an election at once. */
    if (pr->match == raft__log_last(r))
        send_timeout_now(r);
    else
        raft__send_append(r, pr);
    return 0;
}

void raft__transfer_check(struct raft *r, struct raft_progress *pr)
{
    if (r->transfer.is_active && r->role == RAFT_LEADER && pr->id == r->transfer.target &&
        pr->match == raft__log_last(r) && !r->transfer.is_timeout_now_sent)
        send_timeout_now(r);
}

void raft__transfer_tick(struct raft *r)
{
    struct pending_transfer *t = &r->transfer;
    if (!t->is_active)
        return;
    if (r->term > t->term && r->leader != 0) {
        t->is_active = false;
        raft__transfer_result(r, t->id, r->leader == t->target ? 0 : RAFT_ELEADERSHIPLOST);
        return;
    }
    if (++t->elapsed >= r->opts.transfer_ticks) {
        t->is_active = false;
        raft__transfer_result(r, t->id, RAFT_ETIMEDOUT);
        return;
    }
    if (r->role != RAFT_LEADER)
        return;
    /* TimeoutNow may be lost: send it again every half election timeout. */
    if (++t->since_timeout_now >= r->opts.election_ticks / 2) {
        struct raft_progress *pr = raft__progress(r, t->target);
        if (pr != NULL && pr->match == raft__log_last(r))
            send_timeout_now(r);
    }
}

void raft__recv_timeout_now(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_FOLLOWER || m->from != r->leader || r->recv.is_installing)
        return;
    raft__campaign(r, false, true);
}
