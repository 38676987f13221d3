/* The trace: a ring of the last events, printed after a failure, or every event live with
 * --trace. Lines are short and one event each so a failing schedule reads like a log. */
#include <stdarg.h>
#include <string.h>

#include "test/sim/sim.h"

void sim_tracef(struct sim_cluster *c, const char *fmt, ...)
{
    struct sim_trace *t = &c->trace;
    char *line = t->lines[t->n % SIM_TRACE_RING];
    int off = snprintf(line, SIM_TRACE_LINE, "%7llu.%03llu ", (unsigned long long)(c->now / 1000),
                       (unsigned long long)(c->now % 1000));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + off, SIM_TRACE_LINE - (size_t)off, fmt, ap);
    va_end(ap);
    t->n++;
    if (t->is_live) {
        fprintf(t->out, "%s\n", line);
    }
}

void sim_trace_dump(const struct sim_trace *t, FILE *f)
{
    uint64_t first = t->n > SIM_TRACE_RING ? t->n - SIM_TRACE_RING : 0;
    if (first > 0) {
        fprintf(f, "  ... %llu earlier events (replay with --seed N --trace)\n",
                (unsigned long long)first);
    }
    for (uint64_t i = first; i < t->n; i++) {
        fprintf(f, "  %s\n", t->lines[i % SIM_TRACE_RING]);
    }
}

void sim_msg_describe(const struct raft_msg *m, char *buf, size_t size)
{
    const char *name = raft_msg_type_name(m->type);
    int n =
        snprintf(buf, size, "%s %llu->%llu t%llu", name ? name : "?", (unsigned long long)m->from,
                 (unsigned long long)m->to, (unsigned long long)m->term);
    if (n < 0 || (size_t)n >= size) {
        return;
    }
    buf += n;
    size -= (size_t)n;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        snprintf(buf, size, " prev=%llu/%llu n=%u [%llu..] commit=%llu",
                 (unsigned long long)m->append.prev_index, (unsigned long long)m->append.prev_term,
                 m->append.n_entries,
                 (unsigned long long)(m->append.n_entries ? m->append.entries[0].index : 0),
                 (unsigned long long)m->append.commit);
        break;
    case RAFT_MSG_APPEND_RESP:
        snprintf(buf, size, " %s idx=%llu rej=%llu hint=%llu/%llu",
                 m->append_resp.success ? "ok" : "REJ", (unsigned long long)m->append_resp.index,
                 (unsigned long long)m->append_resp.reject_index,
                 (unsigned long long)m->append_resp.conflict_index,
                 (unsigned long long)m->append_resp.conflict_term);
        break;
    case RAFT_MSG_VOTE:
        snprintf(buf, size, "%s%s last=%llu/%llu", m->vote.is_pre_vote ? " pre" : "",
                 m->vote.is_transfer ? " transfer" : "", (unsigned long long)m->vote.last_index,
                 (unsigned long long)m->vote.last_term);
        break;
    case RAFT_MSG_VOTE_RESP:
        snprintf(buf, size, "%s %s", m->vote_resp.is_pre_vote ? " pre" : "",
                 m->vote_resp.granted ? "GRANTED" : "denied");
        break;
    case RAFT_MSG_HEARTBEAT:
        snprintf(buf, size, " commit=%llu seq=%llu", (unsigned long long)m->heartbeat.commit,
                 (unsigned long long)m->heartbeat.read_seq);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        snprintf(buf, size, " seq=%llu", (unsigned long long)m->heartbeat_resp.read_seq);
        break;
    case RAFT_MSG_SNAPSHOT:
        snprintf(buf, size, " snap=%llu/%llu off=%llu len=%u size=%llu",
                 (unsigned long long)m->snapshot.index, (unsigned long long)m->snapshot.term,
                 (unsigned long long)m->snapshot.offset, m->snapshot.len,
                 (unsigned long long)m->snapshot.size);
        break;
    case RAFT_MSG_SNAPSHOT_RESP:
        snprintf(
            buf, size, " snap=%llu received=%llu%s", (unsigned long long)m->snapshot_resp.index,
            (unsigned long long)m->snapshot_resp.received, m->snapshot_resp.is_done ? " done" : "");
        break;
    case RAFT_MSG_READ_INDEX:
        snprintf(buf, size, " id=%llu", (unsigned long long)m->read_index.id);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        snprintf(buf, size, " id=%llu idx=%llu st=%d", (unsigned long long)m->read_index_resp.id,
                 (unsigned long long)m->read_index_resp.index, m->read_index_resp.status);
        break;
    default: break;
    }
}
