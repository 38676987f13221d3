/* Unit tests of the consensus core on a tiny lock-step cluster: instant disks, a FIFO network
 * that can be cut, every message deep-copied. The simulator (test/sim) covers faults at scale;
 * these pin down single behaviours. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "raft/raft.h"

#define N_MAX     5
#define QUEUE_MAX 4096

struct node {
    struct raft *r;
    uint64_t applied[4096]; /* term of each applied index, 0 if none */
    uint64_t last_applied;
    uint64_t reads[64];
    unsigned n_reads;
    unsigned n_read_failures; /* reads answered with an error */
    int change_status, transfer_status;
    bool has_change, has_transfer;
    bool want_snapshot;
};

struct cluster {
    unsigned n;
    struct node nodes[N_MAX];
    struct raft_msg queue[QUEUE_MAX];
    unsigned head, tail;
    bool cut[N_MAX + 1][N_MAX + 1];
};

static void copy_msg(struct raft_msg *dst, const struct raft_msg *src)
{
    *dst = *src;
    if (src->type == RAFT_MSG_APPEND && src->append.n_entries > 0) {
        dst->append.entries = calloc(src->append.n_entries, sizeof *dst->append.entries);
        for (unsigned i = 0; i < src->append.n_entries; i++) {
            const struct raft_entry *e = &src->append.entries[i];
            dst->append.entries[i] = *e;
            dst->append.entries[i].data = e->len ? malloc(e->len) : NULL;
            if (e->len)
                memcpy(dst->append.entries[i].data, e->data, e->len);
        }
    }
    if (src->type == RAFT_MSG_SNAPSHOT) {
        /* The "snapshot" of these tests is its index repeated, 8 bytes per chunk byte. */
        uint8_t *d = calloc(1, src->snapshot.len);
        dst->snapshot.data = d;
    }
}

static void free_msg(struct raft_msg *m)
{
    if (m->type == RAFT_MSG_APPEND) {
        for (unsigned i = 0; i < m->append.n_entries; i++)
            free(m->append.entries[i].data);
        free(m->append.entries);
    }
    if (m->type == RAFT_MSG_SNAPSHOT)
        free((void *)m->snapshot.data);
}

static void step(struct cluster *c, unsigned i, const struct raft_event *e);

static void process(struct cluster *c, unsigned i, const struct raft_update *u)
{
    struct node *nd = &c->nodes[i];
    for (size_t k = 0; k < u->n_msgs; k++) {
        const struct raft_msg *m = &u->msgs[k];
        if (c->cut[m->from][m->to])
            continue;
        assert_true(c->tail - c->head < QUEUE_MAX);
        copy_msg(&c->queue[c->tail++ % QUEUE_MAX], m);
    }
    for (size_t k = 0; k < u->n_apply; k++) {
        const struct raft_entry *e = &u->apply[k];
        assert_int_equal(e->index, nd->last_applied + 1);
        nd->applied[e->index] = e->term;
        nd->last_applied = e->index;
    }
    for (size_t k = 0; k < u->n_reads; k++) {
        if (u->reads[k].status == 0)
            nd->reads[nd->n_reads++] = u->reads[k].index;
        else
            nd->n_read_failures++;
    }
    for (size_t k = 0; k < u->n_changes; k++) {
        nd->has_change = true;
        nd->change_status = u->changes[k].status;
    }
    for (size_t k = 0; k < u->n_transfers; k++) {
        nd->has_transfer = true;
        nd->transfer_status = u->transfers[k].status;
    }
    if (u->want_snapshot)
        nd->want_snapshot = true;
    if (u->snapshot.install) {
        struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_INSTALLED};
        ev.snapshot_installed.index = u->snapshot.index;
        ev.snapshot_installed.term = u->snapshot.term;
        for (uint64_t x = nd->last_applied + 1; x <= u->snapshot.index; x++)
            nd->applied[x] = 0;
        nd->last_applied = u->snapshot.index;
        step(c, i, &ev);
    }
    if (u->n_entries > 0) {
        /* The disk is instant: the write is durable as soon as it is asked for. */
        struct raft_event ev = {.type = RAFT_EVENT_PERSISTED};
        ev.persisted.index = u->entries[u->n_entries - 1].index;
        ev.persisted.term = u->entries[u->n_entries - 1].term;
        step(c, i, &ev);
    }
}

static void step(struct cluster *c, unsigned i, const struct raft_event *e)
{
    struct raft_update u;
    raft_step(c->nodes[i].r, e, &u);
    process(c, i, &u);
}

static int step_rv(struct cluster *c, unsigned i, const struct raft_event *e)
{
    struct raft_update u;
    int rv = raft_step(c->nodes[i].r, e, &u);
    process(c, i, &u);
    return rv;
}

static void deliver_all(struct cluster *c)
{
    while (c->head != c->tail) {
        struct raft_msg m = c->queue[c->head++ % QUEUE_MAX];
        if (!c->cut[m.from][m.to]) {
            struct raft_event e = {.type = RAFT_EVENT_RECEIVE, .receive.msg = &m};
            step(c, (unsigned)m.to - 1, &e);
        }
        free_msg(&m);
    }
}

/* Deliver the oldest message in flight; returns its type (0 if none was in flight). */
static enum raft_msg_type deliver_one(struct cluster *c)
{
    if (c->head == c->tail)
        return 0;
    struct raft_msg m = c->queue[c->head++ % QUEUE_MAX];
    enum raft_msg_type type = m.type;
    if (!c->cut[m.from][m.to]) {
        struct raft_event e = {.type = RAFT_EVENT_RECEIVE, .receive.msg = &m};
        step(c, (unsigned)m.to - 1, &e);
    }
    free_msg(&m);
    return type;
}

static void tick_all(struct cluster *c, unsigned ticks)
{
    for (unsigned t = 0; t < ticks; t++) {
        for (unsigned i = 0; i < c->n; i++) {
            struct raft_event e = {.type = RAFT_EVENT_TICK};
            step(c, i, &e);
        }
        deliver_all(c);
    }
}

static struct raft_options options(uint64_t id)
{
    struct raft_options o;
    raft_options_default(&o, id);
    o.election_ticks = 10;
    o.heartbeat_ticks = 2;
    o.catchup_round_ticks = 10;
    o.transfer_ticks = 50;
    o.disk_stall_ticks = 20;
    o.snapshot_trailing = 5;
    o.snapshot_chunk_bytes = 300; /* several chunks per snapshot */
    return o;
}

/* n servers; the first `voters` are in the bootstrap configuration. */
static struct cluster *cluster_new(unsigned n, unsigned voters)
{
    struct cluster *c = calloc(1, sizeof *c);
    c->n = n;
    struct raft_configuration conf = {0};
    for (unsigned i = 0; i < voters; i++) {
        conf.servers[conf.n].id = i + 1;
        conf.servers[conf.n].suffrage = RAFT_VOTER;
        conf.n++;
    }
    uint8_t buf[1024];
    struct raft_entry boot;
    assert_int_equal(raft_bootstrap_entry(&conf, buf, &boot), 0);
    for (unsigned i = 0; i < n; i++) {
        struct raft_options o = options(i + 1);
        struct raft_initial_state s = {0};
        if (i < voters) {
            s.entries = &boot;
            s.n_entries = 1;
        }
        assert_int_equal(raft_new(&o, &s, &c->nodes[i].r), 0);
    }
    return c;
}

static void cluster_free(struct cluster *c)
{
    while (c->head != c->tail)
        free_msg(&c->queue[c->head++ % QUEUE_MAX]);
    for (unsigned i = 0; i < c->n; i++)
        raft_free(c->nodes[i].r);
    free(c);
}

static int leader_of(struct cluster *c)
{
    int found = -1;
    for (unsigned i = 0; i < c->n; i++)
        if (raft_role(c->nodes[i].r) == RAFT_LEADER) {
            if (found >= 0 && raft_term(c->nodes[i].r) == raft_term(c->nodes[found].r))
                fail_msg("two leaders in term %llu", (unsigned long long)raft_term(c->nodes[i].r));
            if (found < 0 || raft_term(c->nodes[i].r) > raft_term(c->nodes[found].r))
                found = (int)i;
        }
    return found;
}

static int propose(struct cluster *c, unsigned i, const char *text)
{
    struct raft_buf b = {.data = text, .len = (uint32_t)strlen(text)};
    struct raft_event e = {.type = RAFT_EVENT_PROPOSE};
    e.propose.type = RAFT_ENTRY_COMMAND;
    e.propose.bufs = &b;
    e.propose.n = 1;
    return step_rv(c, i, &e);
}

static void elects_one_leader_and_replicates(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    assert_true(l >= 0);
    assert_int_equal(propose(c, (unsigned)l, "hello"), 0);
    deliver_all(c);
    tick_all(c, 3);
    struct raft_status s;
    raft_status(c->nodes[l].r, &s);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(c->nodes[i].last_applied, s.last_index);
        const struct raft_entry *e = raft_log_get(c->nodes[i].r, s.last_index);
        assert_non_null(e);
        assert_memory_equal(e->data, "hello", 5);
    }
    unsigned f = (unsigned)(l + 1) % 3;
    assert_int_equal(propose(c, f, "nope"), RAFT_ENOTLEADER);
    cluster_free(c);
}

/* A follower that acknowledges an entry after a quorum without it has committed the entry
 * learns the commit index at once, not at the next heartbeat: a proposal forwarded by that
 * follower completes only when the follower applies it, so every such proposal would wait up
 * to a heartbeat interval (with raftfsd's ticks, the 80-100 ms a close through a follower
 * took). Lock-step, no ticks: any delay shows as an entry never applied. */
static void late_acknowledger_learns_commit_without_a_tick(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    assert_true(l >= 0);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(propose(c, (unsigned)l, "x"), 0);
        struct raft_status s;
        raft_status(c->nodes[l].r, &s);
        uint64_t index = s.last_index;
        /* The appends to both followers, then the first acknowledgement: it commits the entry
         * while the other follower's acknowledgement is still in flight. */
        assert_int_equal(deliver_one(c), RAFT_MSG_APPEND);
        assert_int_equal(deliver_one(c), RAFT_MSG_APPEND);
        assert_int_equal(deliver_one(c), RAFT_MSG_APPEND_RESP);
        raft_status(c->nodes[l].r, &s);
        assert_int_equal(s.commit, index);
        uint64_t late = 0;
        for (unsigned k = 0; k < s.n_progress; k++)
            if (s.progress[k].match < index)
                late = s.progress[k].id;
        assert_int_not_equal(late, 0);
        assert_true(c->nodes[late - 1].last_applied < index);
        /* Everything in flight now, and no tick: the late follower applies the entry too. */
        deliver_all(c);
        for (unsigned i = 0; i < 3; i++)
            assert_int_equal(c->nodes[i].last_applied, index);
    }
    cluster_free(c);
}

static void minority_cannot_commit_and_old_leader_steps_down(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    assert_true(l >= 0);
    /* Isolate the leader. */
    for (unsigned i = 1; i <= 3; i++) {
        c->cut[l + 1][i] = true;
        c->cut[i][l + 1] = true;
    }
    struct raft_status before;
    raft_status(c->nodes[l].r, &before);
    assert_int_equal(propose(c, (unsigned)l, "lost"), 0);
    tick_all(c, 60);
    struct raft_status after;
    raft_status(c->nodes[l].r, &after);
    assert_int_equal(after.commit, before.commit); /* nothing committed alone */
    assert_int_not_equal(after.role, RAFT_LEADER); /* check-quorum stepped it down */
    int l2 = leader_of(c);
    assert_true(l2 >= 0 && l2 != l);
    /* Heal: the old leader's uncommitted entry is replaced by the new leader's log. */
    memset(c->cut, 0, sizeof c->cut);
    assert_int_equal(propose(c, (unsigned)l2, "kept"), 0);
    tick_all(c, 30);
    struct raft_status s;
    raft_status(c->nodes[l2].r, &s);
    const struct raft_entry *e = raft_log_get(c->nodes[l].r, s.last_index);
    assert_non_null(e);
    assert_memory_equal(e->data, "kept", 4);
    assert_int_equal(c->nodes[l].last_applied, s.last_index);
    cluster_free(c);
}

static void pre_vote_keeps_partitioned_server_from_raising_term(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    unsigned f = (unsigned)(l + 1) % 3;
    uint64_t term = raft_term(c->nodes[l].r);
    for (unsigned i = 1; i <= 3; i++) {
        c->cut[f + 1][i] = true;
        c->cut[i][f + 1] = true;
    }
    tick_all(c, 200);
    assert_int_equal(raft_term(c->nodes[f].r), term); /* pre-votes never succeeded */
    memset(c->cut, 0, sizeof c->cut);
    tick_all(c, 20);
    assert_int_equal(leader_of(c), l); /* the rejoining server did not disrupt */
    assert_int_equal(raft_term(c->nodes[l].r), term);
    cluster_free(c);
}

static void read_index_waits_for_confirmation(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    struct raft_event e = {.type = RAFT_EVENT_READ_INDEX, .read_index.id = 7};
    /* Cut the leader off: the read must not be answered. */
    for (unsigned i = 1; i <= 3; i++) {
        c->cut[l + 1][i] = true;
        c->cut[i][l + 1] = true;
    }
    assert_int_equal(step_rv(c, (unsigned)l, &e), 0);
    tick_all(c, 5);
    assert_int_equal(c->nodes[l].n_reads, 0);
    memset(c->cut, 0, sizeof c->cut);
    tick_all(c, 3);
    if (raft_role(c->nodes[l].r) == RAFT_LEADER)
        assert_int_equal(c->nodes[l].n_reads, 1);
    /* A follower's read goes through the leader. */
    l = leader_of(c);
    unsigned f = (unsigned)(l + 1) % 3;
    assert_int_equal(step_rv(c, f, &e), 0);
    tick_all(c, 3);
    assert_int_equal(c->nodes[f].n_reads, 1);
    struct raft_status s;
    raft_status(c->nodes[l].r, &s);
    assert_true(c->nodes[f].reads[0] <= s.commit && c->nodes[f].reads[0] >= 1);
    cluster_free(c);
}

/* Reads that followers forwarded to a leader that then vanished must be answered (failed, for
 * the caller to ask again), whether the follower ends up following another leader or leading
 * itself: one of the two surviving followers does each. */
static void forwarded_reads_are_answered_when_the_leader_vanishes(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    for (unsigned i = 1; i <= 3; i++) {
        c->cut[l + 1][i] = true;
        c->cut[i][l + 1] = true;
    }
    unsigned f[2] = {(unsigned)(l + 1) % 3, (unsigned)(l + 2) % 3};
    for (unsigned k = 0; k < 2; k++) {
        struct raft_event e = {.type = RAFT_EVENT_READ_INDEX, .read_index.id = 20 + k};
        assert_int_equal(step_rv(c, f[k], &e), 0);
    }
    tick_all(c, 60);
    int l2 = leader_of(c);
    assert_true(l2 == (int)f[0] || l2 == (int)f[1]);
    for (unsigned k = 0; k < 2; k++)
        assert_int_equal(c->nodes[f[k]].n_reads + c->nodes[f[k]].n_read_failures, 1);
    cluster_free(c);
}

static void add_voter_catches_up_then_promotes(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(4, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    for (int k = 0; k < 20; k++)
        propose(c, (unsigned)l, "x");
    tick_all(c, 5);
    struct raft_event e = {.type = RAFT_EVENT_CHANGE};
    e.change.id = 1;
    e.change.op = RAFT_CHANGE_ADD_VOTER;
    e.change.server = 4;
    e.change.address = "127.0.0.1:4";
    assert_int_equal(step_rv(c, (unsigned)l, &e), 0);
    /* A second change while one is in flight is refused. */
    e.change.op = RAFT_CHANGE_REMOVE;
    e.change.server = 2;
    assert_int_equal(step_rv(c, (unsigned)l, &e), RAFT_EBUSY);
    tick_all(c, 40);
    assert_true(c->nodes[l].has_change);
    assert_int_equal(c->nodes[l].change_status, 0);
    struct raft_status s;
    raft_status(c->nodes[3].r, &s);
    assert_int_equal(s.conf.n, 4);
    assert_int_equal(raft_configuration_get(&s.conf, 4)->suffrage, RAFT_VOTER);
    assert_string_equal(raft_configuration_get(&s.conf, 4)->address, "127.0.0.1:4");
    /* The expected-index check refuses a change based on a stale view. */
    e.change.expect_index = 1;
    assert_int_equal(step_rv(c, (unsigned)l, &e), RAFT_ECONFCHANGED);
    cluster_free(c);
}

static void add_voter_that_never_answers_fails_and_stays_learner(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(4, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    for (unsigned i = 1; i <= 4; i++) {
        c->cut[4][i] = true;
        c->cut[i][4] = true;
    }
    struct raft_event e = {.type = RAFT_EVENT_CHANGE};
    e.change.id = 9;
    e.change.op = RAFT_CHANGE_ADD_VOTER;
    e.change.server = 4;
    assert_int_equal(step_rv(c, (unsigned)l, &e), 0);
    tick_all(c, 200);
    assert_true(c->nodes[l].has_change);
    assert_int_equal(c->nodes[l].change_status, RAFT_ECATCHUP);
    struct raft_status s;
    raft_status(c->nodes[l].r, &s);
    assert_int_equal(raft_configuration_get(&s.conf, 4)->suffrage, RAFT_LEARNER);
    assert_int_equal(raft_configuration_voters(&s.conf), 3);
    cluster_free(c);
}

static void transfer_moves_leadership(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    unsigned target = (unsigned)(l + 1) % 3 + 1;
    struct raft_event e = {.type = RAFT_EVENT_TRANSFER};
    e.transfer.id = 5;
    e.transfer.server = target;
    assert_int_equal(step_rv(c, (unsigned)l, &e), 0);
    assert_int_equal(propose(c, (unsigned)l, "blocked"), RAFT_EBUSY);
    tick_all(c, 20);
    assert_int_equal(leader_of(c), (int)target - 1);
    assert_true(c->nodes[l].has_transfer);
    assert_int_equal(c->nodes[l].transfer_status, 0);
    cluster_free(c);
}

static void transfer_to_unreachable_times_out(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    unsigned target = (unsigned)(l + 1) % 3 + 1;
    c->cut[l + 1][target] = true;
    struct raft_event e = {.type = RAFT_EVENT_TRANSFER};
    e.transfer.id = 6;
    e.transfer.server = target;
    assert_int_equal(step_rv(c, (unsigned)l, &e), 0);
    tick_all(c, 60);
    assert_true(c->nodes[l].has_transfer);
    assert_int_equal(c->nodes[l].transfer_status, RAFT_ETIMEDOUT);
    cluster_free(c);
}

static void stalled_leader_disk_steps_down(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    /* Propose on the leader without reporting its write durable. */
    struct raft_buf b = {.data = "s", .len = 1};
    struct raft_event e = {.type = RAFT_EVENT_PROPOSE};
    e.propose.type = RAFT_ENTRY_COMMAND;
    e.propose.bufs = &b;
    e.propose.n = 1;
    struct raft_update u;
    assert_int_equal(raft_step(c->nodes[l].r, &e, &u), 0);
    for (unsigned t = 0; t < 25; t++) {
        struct raft_event tick = {.type = RAFT_EVENT_TICK};
        assert_int_equal(raft_step(c->nodes[l].r, &tick, &u), 0);
    }
    assert_int_not_equal(raft_role(c->nodes[l].r), RAFT_LEADER);
    cluster_free(c);
}

static void snapshot_compacts_and_lagging_follower_installs(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(3, 3);
    tick_all(c, 40);
    int l = leader_of(c);
    unsigned f = (unsigned)(l + 1) % 3;
    for (unsigned i = 1; i <= 3; i++) {
        c->cut[f + 1][i] = true;
        c->cut[i][f + 1] = true;
    }
    for (int k = 0; k < 50; k++)
        propose(c, (unsigned)l, "y");
    tick_all(c, 3);
    struct raft_status s;
    raft_status(c->nodes[l].r, &s);
    struct raft_event e = {.type = RAFT_EVENT_SNAPSHOT_TAKEN};
    e.snapshot_taken.index = s.applied;
    e.snapshot_taken.size = 1000;
    assert_int_equal(step_rv(c, (unsigned)l, &e), 0);
    /* Stale and impossible snapshots are refused. */
    assert_int_equal(step_rv(c, (unsigned)l, &e), RAFT_ESTALE);
    raft_status(c->nodes[l].r, &s);
    assert_int_equal(s.snapshot_index, e.snapshot_taken.index);
    memset(c->cut, 0, sizeof c->cut);
    tick_all(c, 30);
    struct raft_status fs;
    raft_status(c->nodes[f].r, &fs);
    raft_status(c->nodes[l].r, &s);
    assert_int_equal(fs.snapshot_index, s.snapshot_index); /* installed, not replayed */
    assert_int_equal(fs.commit, s.commit);
    assert_int_equal(c->nodes[f].last_applied, s.commit);
    cluster_free(c);
}

/* Thesis §4.1: a server votes for an up-to-date candidate even if its own configuration does not
 * list the candidate as a voter yet. Voters {1,2,3} promote learner 4; server 3 misses the
 * promotion and the leader's last entry reaches only 4; after the leader dies, 4 is the only
 * electable server and needs 3's vote. */
static void candidate_promoted_in_a_newer_configuration_gets_votes(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(4, 3);
    struct raft_event campaign = {.type = RAFT_EVENT_CAMPAIGN};
    step(c, 0, &campaign);
    deliver_all(c);
    tick_all(c, 5);
    assert_int_equal(leader_of(c), 0);
    struct raft_event e = {.type = RAFT_EVENT_CHANGE};
    e.change.id = 1;
    e.change.op = RAFT_CHANGE_ADD_LEARNER;
    e.change.server = 4;
    assert_int_equal(step_rv(c, 0, &e), 0);
    tick_all(c, 5);
    assert_true(c->nodes[0].has_change);
    c->cut[1][3] = true; /* 3 misses everything from now on */
    e.change.id = 2;
    e.change.op = RAFT_CHANGE_ADD_VOTER; /* promote the learner */
    c->nodes[0].has_change = false;
    assert_int_equal(step_rv(c, 0, &e), 0);
    tick_all(c, 15);
    assert_true(c->nodes[0].has_change);
    assert_int_equal(c->nodes[0].change_status, 0);
    c->cut[1][2] = true; /* the next entry reaches 4 only */
    assert_int_equal(propose(c, 0, "x"), 0);
    deliver_all(c);
    for (unsigned i = 1; i <= 4; i++) { /* the leader dies */
        c->cut[1][i] = true;
        c->cut[i][1] = true;
    }
    struct raft_status s3;
    raft_status(c->nodes[2].r, &s3);
    assert_int_equal(raft_configuration_get(&s3.conf, 4)->suffrage, RAFT_LEARNER);
    for (unsigned t = 0; t < 100 && (leader_of(c) <= 0); t++) {
        for (unsigned i = 1; i < 4; i++) {
            struct raft_event tick = {.type = RAFT_EVENT_TICK};
            step(c, i, &tick);
        }
        deliver_all(c);
    }
    assert_int_equal(leader_of(c), 3);
    cluster_free(c);
}

/* Voters {1, 2}: leader 1 removes itself; 2 takes the new configuration, then the two are cut
 * apart and 2 leads alone. Server 1, still leader of its term, must not answer a read without
 * hearing from 2. */
static void leader_leaving_the_configuration_confirms_reads(void **state)
{
    (void)state;
    struct cluster *c = cluster_new(2, 2);
    struct raft_event campaign = {.type = RAFT_EVENT_CAMPAIGN};
    step(c, 0, &campaign);
    deliver_all(c);
    tick_all(c, 3);
    assert_int_equal(leader_of(c), 0);
    c->cut[2][1] = true; /* 2 hears 1, 1 never hears back */
    struct raft_event e = {.type = RAFT_EVENT_CHANGE};
    e.change.id = 1;
    e.change.op = RAFT_CHANGE_REMOVE;
    e.change.server = 1;
    assert_int_equal(step_rv(c, 0, &e), 0);
    deliver_all(c);
    c->cut[1][2] = true;
    struct raft_status s;
    raft_status(c->nodes[1].r, &s);
    assert_int_equal(raft_configuration_voters(&s.conf), 1);
    for (unsigned t = 0; t < 40; t++) {
        struct raft_event tick = {.type = RAFT_EVENT_TICK};
        step(c, 1, &tick);
    }
    assert_int_equal(raft_role(c->nodes[1].r), RAFT_LEADER);
    assert_int_equal(raft_role(c->nodes[0].r), RAFT_LEADER); /* has not noticed yet */
    struct raft_event read = {.type = RAFT_EVENT_READ_INDEX, .read_index.id = 3};
    assert_int_equal(step_rv(c, 0, &read), 0);
    deliver_all(c);
    assert_int_equal(c->nodes[0].n_reads, 0);
    cluster_free(c);
}

/* A stored log that contradicts the snapshot is left over from before an install: raft_new
 * drops it rather than trust it. */
static void log_contradicting_the_snapshot_is_discarded(void **state)
{
    (void)state;
    struct raft_options o = options(1);
    struct raft_entry entries[5];
    for (unsigned i = 0; i < 5; i++)
        entries[i] = (struct raft_entry){.index = i + 1, .term = 2, .type = RAFT_ENTRY_NOOP};
    struct raft_initial_state s = {.term = 3, .entries = entries, .n_entries = 5};
    s.snapshot.index = 8; /* the log ends before it */
    s.snapshot.term = 3;
    s.snapshot.conf.n = 1;
    s.snapshot.conf.servers[0] = (struct raft_server){.id = 1, .suffrage = RAFT_VOTER};
    s.snapshot.size = 10;
    s.commit = 5;
    struct raft *r;
    assert_int_equal(raft_new(&o, &s, &r), 0);
    struct raft_status st;
    raft_status(r, &st);
    assert_int_equal(st.last_index, 8);
    assert_int_equal(st.commit, 8);
    raft_free(r);

    s.snapshot.index = 4; /* covered, but by another term */
    assert_int_equal(raft_new(&o, &s, &r), 0);
    raft_status(r, &st);
    assert_int_equal(st.last_index, 4);
    raft_free(r);

    s.snapshot.term = 2; /* agrees: the log after it is kept */
    s.commit = 0;
    assert_int_equal(raft_new(&o, &s, &r), 0);
    raft_status(r, &st);
    assert_int_equal(st.last_index, 5);
    assert_int_equal(st.commit, 4); /* the snapshot, not the whole log */
    raft_free(r);
}

static void configuration_encoding_round_trips_and_refuses_garbage(void **state)
{
    (void)state;
    struct raft_configuration c = {.n = 2};
    c.servers[0] = (struct raft_server){.id = 1, .suffrage = RAFT_VOTER};
    strcpy(c.servers[0].address, "10.0.0.1:7000");
    c.servers[1] = (struct raft_server){.id = 99, .suffrage = RAFT_LEARNER};
    uint8_t buf[512];
    size_t len = raft_configuration_encoded_size(&c);
    raft_configuration_encode(&c, buf);
    struct raft_configuration d;
    assert_int_equal(raft_configuration_decode(buf, len, &d), 0);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.servers[0].address, "10.0.0.1:7000");
    assert_int_equal(d.servers[1].suffrage, RAFT_LEARNER);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(raft_configuration_decode(buf, cut, &d), RAFT_EINVAL);
    buf[10] = 7; /* bad suffrage */
    assert_int_equal(raft_configuration_decode(buf, len, &d), RAFT_EINVAL);
    struct raft_configuration none = {0};
    struct raft_entry e;
    assert_int_equal(raft_bootstrap_entry(&none, buf, &e), RAFT_ENOQUORUM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(elects_one_leader_and_replicates),
        cmocka_unit_test(late_acknowledger_learns_commit_without_a_tick),
        cmocka_unit_test(minority_cannot_commit_and_old_leader_steps_down),
        cmocka_unit_test(pre_vote_keeps_partitioned_server_from_raising_term),
        cmocka_unit_test(read_index_waits_for_confirmation),
        cmocka_unit_test(forwarded_reads_are_answered_when_the_leader_vanishes),
        cmocka_unit_test(add_voter_catches_up_then_promotes),
        cmocka_unit_test(add_voter_that_never_answers_fails_and_stays_learner),
        cmocka_unit_test(transfer_moves_leadership),
        cmocka_unit_test(transfer_to_unreachable_times_out),
        cmocka_unit_test(stalled_leader_disk_steps_down),
        cmocka_unit_test(snapshot_compacts_and_lagging_follower_installs),
        cmocka_unit_test(candidate_promoted_in_a_newer_configuration_gets_votes),
        cmocka_unit_test(leader_leaving_the_configuration_confirms_reads),
        cmocka_unit_test(log_contradicting_the_snapshot_is_discarded),
        cmocka_unit_test(configuration_encoding_round_trips_and_refuses_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
