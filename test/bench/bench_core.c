/* bench_core: throughput of the consensus core alone. Three cores in one process, disks that
 * persist at once, messages handed over directly (FIFO), proposals of 128-byte entries in
 * batches of 64. Prints entries committed per second and CPU ns per entry, then the
 * simulator's speed on a typical seed. Target for the core: >= 1,000,000 entries/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/raft.h"
#include "test/sim/sim.h"

#define N             3
#define BATCH         64
#define ENTRY_BYTES   128
#define TOTAL_ENTRIES 2000000

struct queued {
    struct sim_msg *msg;
};

struct bench {
    struct raft *cores[N + 1];
    struct queued *q; /* FIFO of messages in flight */
    size_t head, tail, cap;
    uint64_t applied[N + 1];
    struct raft_event pending[N + 1]; /* a PERSISTED to feed back, per node */
    bool has_pending[N + 1];
};

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void push(struct bench *b, const struct raft_msg *m)
{
    if (b->tail == b->cap) {
        if (b->head > 0) {
            memmove(b->q, b->q + b->head, (b->tail - b->head) * sizeof *b->q);
            b->tail -= b->head;
            b->head = 0;
        }
        if (b->tail == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 1024;
            b->q = realloc(b->q, b->cap * sizeof *b->q);
            if (b->q == NULL) {
                abort();
            }
        }
    }
    b->q[b->tail++].msg = sim_msg_copy(m, NULL);
}

/* Carry out an update: the log write is durable at once, messages go to the FIFO. */
static void carry_out(struct bench *b, unsigned id, const struct raft_update *u)
{
    if (u->n_entries > 0) {
        b->pending[id].type = RAFT_EVENT_PERSISTED;
        b->pending[id].persisted.index = u->entries[u->n_entries - 1].index;
        b->pending[id].persisted.term = u->entries[u->n_entries - 1].term;
        b->has_pending[id] = true;
    }
    for (size_t i = 0; i < u->n_msgs; i++) {
        push(b, &u->msgs[i]);
    }
    if (u->n_apply > 0) {
        b->applied[id] = u->apply[u->n_apply - 1].index;
    }
    if (u->want_snapshot) {
        /* No state machine to serialize: report a one-byte snapshot at the applied index. */
        b->pending[0].type = RAFT_EVENT_SNAPSHOT_TAKEN;
        b->pending[0].snapshot_taken.index = b->applied[id];
        b->pending[0].snapshot_taken.size = 1;
        struct raft_update u2;
        int rv = raft_step(b->cores[id], &b->pending[0], &u2);
        if (rv != 0) {
            fprintf(stderr, "bench-core: snapshot refused: %s\n", raft_strerror(rv));
            exit(1);
        }
    }
}

static void step(struct bench *b, unsigned id, const struct raft_event *e)
{
    struct raft_update u;
    raft_step(b->cores[id], e, &u);
    carry_out(b, id, &u);
    while (b->has_pending[id]) {
        b->has_pending[id] = false;
        struct raft_event p = b->pending[id];
        raft_step(b->cores[id], &p, &u);
        carry_out(b, id, &u);
    }
}

static void drain(struct bench *b)
{
    while (b->head < b->tail) {
        struct sim_msg *m = b->q[b->head++].msg;
        struct raft_event e = {.type = RAFT_EVENT_RECEIVE};
        e.receive.msg = &m->m;
        step(b, (unsigned)m->m.to, &e);
        sim_msg_free(m);
    }
}

static unsigned leader_of(struct bench *b)
{
    for (unsigned i = 1; i <= N; i++) {
        if (raft_role(b->cores[i]) == RAFT_LEADER) {
            return i;
        }
    }
    return 0;
}

static int bench_core(void)
{
    struct bench b;
    memset(&b, 0, sizeof b);
    struct raft_configuration conf = {0};
    for (unsigned i = 1; i <= N; i++) {
        conf.servers[conf.n].id = i;
        conf.servers[conf.n].suffrage = RAFT_VOTER;
        snprintf(conf.servers[conf.n].address, RAFT_ADDRESS_MAX, "n%u", i);
        conf.n++;
    }
    uint8_t buf[4096];
    struct raft_entry boot;
    if (raft_bootstrap_entry(&conf, buf, &boot) != 0) {
        return 1;
    }
    for (unsigned i = 1; i <= N; i++) {
        struct raft_options o;
        raft_options_default(&o, i);
        o.seed = i;
        o.snapshot_threshold = 100000;
        o.snapshot_trailing = 1000;
        struct raft_initial_state st = {.entries = &boot, .n_entries = 1};
        if (raft_new(&o, &st, &b.cores[i]) != 0) {
            return 1;
        }
    }
    struct raft_event campaign = {.type = RAFT_EVENT_CAMPAIGN};
    step(&b, 1, &campaign);
    drain(&b);
    unsigned l = leader_of(&b);
    if (l == 0) {
        fprintf(stderr, "bench-core: no leader\n");
        return 1;
    }
    uint8_t payload[ENTRY_BYTES];
    memset(payload, 0xab, sizeof payload);
    struct raft_buf bufs[BATCH];
    for (unsigned i = 0; i < BATCH; i++) {
        bufs[i].data = payload;
        bufs[i].len = ENTRY_BYTES;
    }
    uint64_t start_applied = b.applied[l];
    double t0 = cpu_seconds();
    struct raft_event tick = {.type = RAFT_EVENT_TICK};
    uint64_t proposed = 0;
    while (b.applied[l] - start_applied < TOTAL_ENTRIES) {
        struct raft_event e = {.type = RAFT_EVENT_PROPOSE};
        e.propose.type = RAFT_ENTRY_COMMAND;
        e.propose.bufs = bufs;
        e.propose.n = BATCH;
        step(&b, l, &e);
        proposed += BATCH;
        drain(&b);
        if (proposed % (BATCH * 64) == 0) {
            for (unsigned i = 1; i <= N; i++) {
                step(&b, i, &tick);
            }
            drain(&b);
        }
    }
    double secs = cpu_seconds() - t0;
    uint64_t n = b.applied[l] - start_applied;
    printf("bench-core: %llu entries of %d bytes committed in %.2f s CPU: %.0f entries/s, "
           "%.0f ns/entry (target >= 1000000 entries/s)\n",
           (unsigned long long)n, ENTRY_BYTES, secs, (double)n / secs, secs * 1e9 / (double)n);
    for (unsigned i = 1; i <= N; i++) {
        raft_free(b.cores[i]);
    }
    free(b.q);
    return 0;
}

static void bench_sim(void)
{
    double t0 = cpu_seconds();
    uint64_t steps = 0;
    const int seeds = 20;
    for (int s = 1; s <= seeds; s++) {
        struct sim_result res;
        sim_run((uint64_t)s, 0, NULL, NULL, &res);
        steps += res.steps;
    }
    double secs = cpu_seconds() - t0;
    printf("bench-core: simulation: %d seeds, %.1f ms CPU per seed, %.0f core steps/s (with "
           "all checks)\n",
           seeds, secs * 1000 / seeds, (double)steps / secs);
}

int main(void)
{
    if (bench_core() != 0) {
        return 1;
    }
    bench_sim();
    return 0;
}
