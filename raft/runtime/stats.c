/* Counters and latency histograms of a runtime, updated lock-free by its threads. */
#include <string.h>
#include <time.h>

#include "raft/runtime/internal.h"

uint64_t rt__now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void rt__hist_add(struct rt_histogram *h, uint64_t us)
{
    unsigned b = 0;
    while (b + 1 < RAFT_HISTOGRAM_BUCKETS && us >= (2ull << b))
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

static void hist_copy(const struct rt_histogram *from, struct raft_histogram *to)
{
    to->count = atomic_load_explicit(&from->count, memory_order_relaxed);
    to->sum_us = atomic_load_explicit(&from->sum_us, memory_order_relaxed);
    for (unsigned i = 0; i < RAFT_HISTOGRAM_BUCKETS; i++)
        to->buckets[i] = atomic_load_explicit(&from->buckets[i], memory_order_relaxed);
}

uint64_t raft_histogram_percentile(const struct raft_histogram *h, double p)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < RAFT_HISTOGRAM_BUCKETS; i++)
        total += h->buckets[i];
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)((double)total * p / 100.0 + 0.999999);
    if (want == 0)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < RAFT_HISTOGRAM_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= want)
            return 2ull << i;
    }
    return 2ull << (RAFT_HISTOGRAM_BUCKETS - 1);
}

void raft_runtime_stats(struct raft_runtime *rt, struct raft_runtime_stats *out)
{
    const struct rt_stats *s = &rt->stats;
    memset(out, 0, sizeof *out);
    out->proposals = atomic_load(&s->proposals);
    out->proposals_failed = atomic_load(&s->proposals_failed);
    out->reads = atomic_load(&s->reads);
    out->log_commits = atomic_load(&s->log_commits);
    out->log_entries = atomic_load(&s->log_entries);
    out->log_bytes = atomic_load(&s->log_bytes);
    out->applied_entries = atomic_load(&s->applied_entries);
    out->apply_batches = atomic_load(&s->apply_batches);
    out->snapshots_taken = atomic_load(&s->snapshots_taken);
    out->snapshots_installed = atomic_load(&s->snapshots_installed);
    hist_copy(&s->commit, &out->commit);
    hist_copy(&s->fsync, &out->fsync);
    hist_copy(&s->apply, &out->apply);
}
