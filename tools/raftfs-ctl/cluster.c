/* `raftfs-ctl status|members|stats|verify|locks|sessions`: the commands that read the state of
 * the node and of the cluster, in human form or as JSON (--json). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "tools/raftfs-ctl/ctl.h"

/* The daemon's answer of type want to a request of type; an exit status. */
static int ask(const struct ctl_opts *o, enum ctl_type type, enum ctl_type want,
               struct ctl_msg *resp)
{
    struct ctl_msg req = {.type = type};
    return ctl_call(o, &req, want, resp, NULL);
}

/* This node's own lock session (OWN_SESSION); an exit status. */
static int own_session(const struct ctl_opts *o, struct ctl_own_session *own)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_OWN_SESSION, CTL_RESP_OWN_SESSION, &resp);
    if (rc == CTL_OK)
        *own = resp.own;
    return rc;
}

static const char *own_state_name(unsigned state)
{
    return state == CTL_OWN_OPEN ? "open" : state == CTL_OWN_LOST ? "lost" : "opening";
}

static void own_json(const struct ctl_own_session *own)
{
    printf("{\"state\":\"%s\",\"session\":%" PRIu64 ",\"%s\":%" PRIu64 ",\"reason\":",
           own_state_name(own->state), own->session,
           own->state == CTL_OWN_LOST ? "lost_ms" : "contact_ms", own->since_ms);
    if (own->state == CTL_OWN_LOST)
        ctl_json_string(stdout, own->reason);
    else
        printf("null");
    printf("}");
}

/* One line, after "this node's lock session: ". */
static void own_text(const struct ctl_own_session *own)
{
    if (own->state == CTL_OWN_OPEN)
        printf("%" PRIu64 ", open (confirmed contact began %" PRIu64 " ms ago)\n", own->session,
               own->since_ms);
    else if (own->state == CTL_OWN_LOST)
        printf("%" PRIu64 " LOST %" PRIu64 " ms ago: %s; opening a new one\n", own->session,
               own->since_ms, own->reason);
    else
        printf("none yet, being opened\n");
}

static const char *suffrage_name(enum raft_suffrage s)
{
    return s == RAFT_VOTER ? "voter" : "nonvoter";
}

static void members_json(const struct raft_runtime_status *s)
{
    bool is_leader = s->role == RAFT_LEADER;
    printf("[");
    for (unsigned i = 0; i < s->n_peers; i++) {
        const struct raft_runtime_peer *p = &s->peers[i];
        printf("%s{\"id\":%" PRIu64 ",\"suffrage\":\"%s\",\"address\":", i ? "," : "", p->id,
               suffrage_name(p->suffrage));
        ctl_json_string(stdout, p->address);
        if (is_leader)
            printf(",\"match_index\":%" PRIu64 ",\"last_contact_ms\":%" PRIu64, p->match,
                   p->id == s->id ? 0 : p->last_contact_ms);
        else
            printf(",\"match_index\":null,\"last_contact_ms\":null");
        printf(",\"connected\":%s}", p->is_connected ? "true" : "false");
    }
    printf("]");
}

static void members_table(const struct raft_runtime_status *s)
{
    bool is_leader = s->role == RAFT_LEADER;
    printf("%-6s %-9s %-24s %12s %13s  %s\n", "ID", "SUFFRAGE", "ADDRESS", "MATCH", "LAST CONTACT",
           "CONNECTED");
    for (unsigned i = 0; i < s->n_peers; i++) {
        const struct raft_runtime_peer *p = &s->peers[i];
        char match[24] = "-", contact[24] = "-";
        if (is_leader) {
            snprintf(match, sizeof match, "%" PRIu64, p->match);
            if (p->id == s->id)
                snprintf(contact, sizeof contact, "self");
            else
                snprintf(contact, sizeof contact, "%" PRIu64 " ms", p->last_contact_ms);
        }
        printf("%-6" PRIu64 " %-9s %-24s %12s %13s  %s\n", p->id, suffrage_name(p->suffrage),
               p->address, match, contact,
               p->id == s->id    ? "self"
               : p->is_connected ? "yes"
                                 : "no");
    }
}

int ctl_status(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bool json = o->is_json;
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATUS, CTL_RESP_STATUS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct raft_runtime_status *s = &resp.status;
    struct ctl_own_session own;
    if ((rc = own_session(o, &own)) != CTL_OK)
        return rc;
    if (json) {
        printf("{\"id\":%" PRIu64 ",\"role\":\"%s\",\"term\":%" PRIu64 ",\"leader\":%" PRIu64
               ",\"leader_address\":",
               s->id, raft_role_name(s->role), s->term, s->leader);
        ctl_json_string(stdout, s->leader_address);
        printf(",\"commit_index\":%" PRIu64 ",\"applied_index\":%" PRIu64 ",\"last_index\":%" PRIu64
               ",\"snapshot_index\":%" PRIu64 ",\"snapshot_term\":%" PRIu64
               ",\"conf_index\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"error\":",
               s->commit, s->applied, s->last_index, s->snapshot_index, s->snapshot_term,
               s->conf_index, s->epoch);
        if (s->error != 0)
            ctl_json_string(stdout, raft_strerror(s->error));
        else
            printf("null");
        printf(",\"lock_session\":");
        own_json(&own);
        printf(",\"members\":");
        members_json(s);
        printf("}\n");
        return CTL_OK;
    }
    printf("id:             %" PRIu64 "\n", s->id);
    printf("role:           %s\n", raft_role_name(s->role));
    printf("term:           %" PRIu64 "\n", s->term);
    if (s->leader != 0)
        printf("leader:         %" PRIu64 " (%s)\n", s->leader, s->leader_address);
    else
        printf("leader:         none known\n");
    printf("commit index:   %" PRIu64 "\n", s->commit);
    printf("applied index:  %" PRIu64 "\n", s->applied);
    printf("last index:     %" PRIu64 "\n", s->last_index);
    printf("last snapshot:  index %" PRIu64 ", term %" PRIu64 "\n", s->snapshot_index,
           s->snapshot_term);
    printf("configuration:  index %" PRIu64 ", epoch %" PRIu64 "\n", s->conf_index, s->epoch);
    if (s->error != 0)
        printf("error:          %s\n", raft_strerror(s->error));
    printf("lock session:   ");
    own_text(&own);
    printf("members:\n");
    members_table(s);
    return CTL_OK;
}

int ctl_members(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bool json = o->is_json;
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATUS, CTL_RESP_STATUS, &resp);
    if (rc != CTL_OK)
        return rc;
    if (json) {
        members_json(&resp.status);
        printf("\n");
    } else {
        members_table(&resp.status);
    }
    return CTL_OK;
}

static const struct {
    const char *name;
    size_t offset;
} counters[] = {
#define COUNTER(f)                                                                                 \
    {                                                                                              \
#f, offsetof(struct raft_runtime_stats, f)                                                 \
    }
    COUNTER(proposals),           COUNTER(proposals_failed), COUNTER(reads),
    COUNTER(log_commits),         COUNTER(log_entries),      COUNTER(log_bytes),
    COUNTER(applied_entries),     COUNTER(apply_batches),    COUNTER(snapshots_taken),
    COUNTER(snapshots_installed),
#undef COUNTER
};

int ctl_stats(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bool json = o->is_json;
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATS, CTL_RESP_STATS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct raft_runtime_stats *s = &resp.stats;
    const struct {
        const char *name;
        const struct raft_histogram *h;
    } hists[] = {{"commit", &s->commit}, {"fsync", &s->fsync}, {"apply", &s->apply}};
    unsigned n_counters = sizeof counters / sizeof counters[0];
    if (json)
        printf("{");
    for (unsigned i = 0; i < n_counters; i++) {
        uint64_t v = *(const uint64_t *)((const char *)s + counters[i].offset);
        if (json)
            printf("%s\"%s\":%" PRIu64, i ? "," : "", counters[i].name, v);
        else
            printf("%-22s %" PRIu64 "\n", counters[i].name, v);
    }
    if (!json)
        printf("\n%-8s %10s %10s %10s %10s  (microseconds; p50 and p99 are bucket upper bounds)\n",
               "LATENCY", "COUNT", "MEAN", "P50", "P99");
    for (unsigned i = 0; i < 3; i++) {
        const struct raft_histogram *h = hists[i].h;
        uint64_t mean = h->count ? h->sum_us / h->count : 0;
        uint64_t p50 = raft_histogram_percentile(h, 50), p99 = raft_histogram_percentile(h, 99);
        if (json)
            printf(",\"%s\":{\"count\":%" PRIu64 ",\"sum_us\":%" PRIu64 ",\"mean_us\":%" PRIu64
                   ",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 "}",
                   hists[i].name, h->count, h->sum_us, mean, p50, p99);
        else
            printf("%-8s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", hists[i].name,
                   h->count, mean, p50, p99);
    }
    if (json)
        printf("}\n");
    return CTL_OK;
}

/* Why a member has no digest, in the words of raft_runtime_verify's contract. */
static const char *digest_error(int status)
{
    switch (status) {
    case RAFT_ETIMEDOUT: return "no answer in time (down, cut off, or far behind)";
    case RAFT_ESTALE:
        return "it skipped the checkpoint (installed a snapshot past it) or forgot it "
               "(restarted); run verify again";
    case RAFT_EINVAL: return "its state machine keeps no digest";
    default: return raft_strerror(status);
    }
}

static void hex(const uint8_t *d, char *out)
{
    for (unsigned i = 0; i < CTL_DIGEST_SIZE; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

int ctl_verify(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bool json = o->is_json;
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_VERIFY, CTL_RESP_VERIFY, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct ctl_verify *v = &resp.verify;
    bool is_equal = v->n > 0;
    for (unsigned i = 0; i < v->n; i++)
        if (v->nodes[i].status != 0 ||
            memcmp(v->nodes[i].digest, v->nodes[0].digest, CTL_DIGEST_SIZE) != 0)
            is_equal = false;
    if (json)
        printf("{\"index\":%" PRIu64 ",\"equal\":%s,\"nodes\":[", v->index,
               is_equal ? "true" : "false");
    else
        printf("checkpoint at log index %" PRIu64 "\n", v->index);
    for (unsigned i = 0; i < v->n; i++) {
        const struct ctl_digest *d = &v->nodes[i];
        char text[2 * CTL_DIGEST_SIZE + 1] = "";
        if (d->status == 0)
            hex(d->digest, text);
        if (json) {
            printf("%s{\"id\":%" PRIu64 ",\"digest\":", i ? "," : "", d->id);
            if (d->status == 0)
                printf("\"%s\",\"error\":null}", text);
            else {
                printf("null,\"error\":");
                ctl_json_string(stdout, digest_error(d->status));
                printf("}");
            }
        } else if (d->status == 0) {
            printf("  node %-6" PRIu64 " %s\n", d->id, text);
        } else {
            printf("  node %-6" PRIu64 " no digest: %s\n", d->id, digest_error(d->status));
        }
    }
    if (json)
        printf("]}\n");
    else
        printf(is_equal ? "all %u digests are equal\n"
                        : "MISMATCH: the %u nodes differ or did "
                          "not all answer\n",
               v->n);
    return is_equal ? CTL_OK : CTL_ERROR;
}

/* Milliseconds from t to now (0 if t is in the future: the leader's clock may run ahead). */
static uint64_t age_ms(const struct ctl_time *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (now.tv_sec - t->sec) * 1000 + ((int64_t)now.tv_nsec - t->nsec) / 1000000;
    return ms > 0 ? (uint64_t)ms : 0;
}

/* t as UTC "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf. */
static void format_time(const struct ctl_time *t, char *buf, size_t cap)
{
    time_t sec = (time_t)t->sec;
    struct tm tm;
    char date[32];
    if (gmtime_r(&sec, &tm) == NULL || strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        snprintf(date, sizeof date, "@%" PRId64, t->sec);
    snprintf(buf, cap, "%s.%03uZ", date, t->nsec / 1000000);
}

static const char *lock_state_name(unsigned state)
{
    return state == CTL_LOCK_HELD ? "held" : state == CTL_LOCK_WAITING ? "waiting" : "delayed";
}

int ctl_locks(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bool json = o->is_json;
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_LOCKS, CTL_RESP_LOCKS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct ctl_locks *ls = &resp.locks;
    /* A node that lost its session still has that session's locks in its state machine (it
     * cannot hear the end): mark them. */
    struct ctl_own_session own;
    if ((rc = own_session(o, &own)) != CTL_OK)
        return rc;
    uint64_t lost = own.state == CTL_OWN_LOST ? own.session : 0;
    if (json)
        printf("{\"truncated\":%s,\"locks\":[", ls->is_truncated ? "true" : "false");
    else
        printf("%-10s %-5s %-8s %-8s %-5s %-5s %-20s %-20s %-8s %11s  %s\n", "INODE", "NODE",
               "SESSION", "PID", "KIND", "TYPE", "START", "LEN", "TOKEN", "AGE", "STATE");
    for (unsigned i = 0; i < ls->n; i++) {
        const struct ctl_lock *l = &ls->locks[i];
        const char *kind = l->kind == CTL_LOCK_FLOCK ? "flock" : "posix";
        const char *type = l->type == CTL_LOCK_WRITE ? "write" : "read";
        uint64_t age = age_ms(&l->time);
        if (json) {
            printf("%s{\"ino\":%" PRIu64 ",\"node\":%" PRIu64 ",\"session\":%" PRIu64
                   ",\"pid\":%" PRIu32 ",\"kind\":\"%s\",\"type\":\"%s\",\"start\":%" PRIu64
                   ",\"len\":%" PRIu64 ",\"token\":%" PRIu64 ",\"age_ms\":%" PRIu64
                   ",\"state\":\"%s\",\"lost_here\":%s}",
                   i ? "," : "", l->ino, l->node, l->session, l->pid, kind, type, l->start, l->len,
                   l->token, age, lock_state_name(l->state), l->session == lost ? "true" : "false");
            continue;
        }
        char len[24] = "eof", token[24] = "-";
        if (l->len != 0)
            snprintf(len, sizeof len, "%" PRIu64, l->len);
        if (l->token != 0)
            snprintf(token, sizeof token, "%" PRIu64, l->token);
        printf("%-10" PRIu64 " %-5" PRIu64 " %-8" PRIu64 " %-8" PRIu32 " %-5s %-5s %-20" PRIu64
               " %-20s %-8s %7" PRIu64 ".%01" PRIu64 " s  %s%s\n",
               l->ino, l->node, l->session, l->pid, kind, type, l->start, len, token, age / 1000,
               age % 1000 / 100, lock_state_name(l->state),
               l->session == lost ? ", lost here" : "");
    }
    if (json)
        printf("]}\n");
    else if (ls->is_truncated)
        printf("(only the first %u locks are shown)\n", CTL_LOCKS_MAX);
    return CTL_OK;
}

int ctl_sessions(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bool json = o->is_json;
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_SESSIONS, CTL_RESP_SESSIONS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct ctl_sessions *ss = &resp.sessions;
    struct ctl_own_session own;
    if ((rc = own_session(o, &own)) != CTL_OK)
        return rc;
    if (json)
        printf("{\"truncated\":%s,\"sessions\":[", ss->is_truncated ? "true" : "false");
    else
        printf("%-10s %-5s %-6s %-24s %s\n", "SESSION", "NODE", "STATE", "OPENED", "ENDED");
    for (unsigned i = 0; i < ss->n; i++) {
        const struct ctl_session *e = &ss->sessions[i];
        bool is_ended = e->state == CTL_SESSION_ENDED;
        char opened[48], ended[48] = "-";
        format_time(&e->opened, opened, sizeof opened);
        if (is_ended)
            format_time(&e->ended, ended, sizeof ended);
        if (json)
            printf("%s{\"id\":%" PRIu64 ",\"node\":%" PRIu64
                   ",\"state\":\"%s\",\"opened\":\"%s\",\"ended\":%s%s%s}",
                   i ? "," : "", e->id, e->node, is_ended ? "ended" : "live", opened,
                   is_ended ? "\"" : "", is_ended ? ended : "null", is_ended ? "\"" : "");
        else
            printf("%-10" PRIu64 " %-5" PRIu64 " %-6s %-24s %s\n", e->id, e->node,
                   is_ended ? "ended" : "live", opened, ended);
    }
    if (json) {
        printf("],\"own\":");
        own_json(&own);
        printf("}\n");
        return CTL_OK;
    }
    if (ss->is_truncated)
        printf("(only the first %u sessions are shown)\n", CTL_SESSIONS_MAX);
    printf("this node's lock session: ");
    own_text(&own);
    return CTL_OK;
}
