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

static json_t *own_json(const struct ctl_own_session *own)
{
    bool is_lost = own->state == CTL_OWN_LOST;
    return json_pack("{s:s, s:I, s:I, s:o?}", "state", own_state_name(own->state), "session",
                     CTL_JI(own->session), is_lost ? "lost_ms" : "contact_ms",
                     CTL_JI(own->since_ms), "reason", is_lost ? ctl_json_text(own->reason) : NULL);
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

static json_t *members_json(const struct raft_runtime_status *s)
{
    bool is_leader = s->role == RAFT_LEADER;
    json_t *a = json_array();
    for (unsigned i = 0; i < s->n_peers; i++) {
        const struct raft_runtime_peer *p = &s->peers[i];
        uint64_t contact = p->id == s->id ? 0 : p->last_contact_ms;
        ctl_json_append(
            &a, json_pack("{s:I, s:s, s:o, s:o?, s:o?, s:b}", "id", CTL_JI(p->id), "suffrage",
                          suffrage_name(p->suffrage), "address", ctl_json_text(p->address),
                          "match_index", is_leader ? json_integer(CTL_JI(p->match)) : NULL,
                          "last_contact_ms", is_leader ? json_integer(CTL_JI(contact)) : NULL,
                          "connected", p->is_connected));
    }
    return a;
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

int ctl_status(const struct ctl_opts *o)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATUS, CTL_RESP_STATUS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct raft_runtime_status *s = &resp.status;
    struct ctl_own_session own;
    if ((rc = own_session(o, &own)) != CTL_OK)
        return rc;
    /* A node whose storage failed no longer takes part: a script must not read it as healthy. */
    int status = s->error != 0 ? CTL_STORAGE : CTL_OK;
    if (o->is_json) {
        rc = ctl_json_print(
            o, json_pack("{s:I, s:s, s:I, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o?, "
                         "s:o, s:o}",
                         "id", CTL_JI(s->id), "role", raft_role_name(s->role), "term",
                         CTL_JI(s->term), "leader", CTL_JI(s->leader), "leader_address",
                         ctl_json_text(s->leader_address), "commit_index", CTL_JI(s->commit),
                         "applied_index", CTL_JI(s->applied), "last_index", CTL_JI(s->last_index),
                         "snapshot_index", CTL_JI(s->snapshot_index), "snapshot_term",
                         CTL_JI(s->snapshot_term), "conf_index", CTL_JI(s->conf_index), "epoch",
                         CTL_JI(s->epoch), "error",
                         s->error != 0 ? json_string(raft_strerror(s->error)) : NULL,
                         "lock_session", own_json(&own), "members", members_json(s)));
        return rc != CTL_OK ? rc : status;
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
    return status;
}

int ctl_members(const struct ctl_opts *o)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATUS, CTL_RESP_STATUS, &resp);
    if (rc != CTL_OK)
        return rc;
    if (o->is_json)
        return ctl_json_print(o, members_json(&resp.status));
    members_table(&resp.status);
    return CTL_OK;
}

/* The checks of `health`, in the order they are made; the first that fails decides the exit
 * status. */
struct health {
    int status; /* CTL_OK or the first failure's exit status */
    const char *reason;
    const char *storage_error;            /* NULL: sound */
    const struct raft_runtime_peer *self; /* NULL: not a member */
    bool has_quorum, is_applying;         /* meaningful once the read barrier ran */
    bool did_barrier;
    uint64_t commit, applied; /* after the barrier, or from the status */
};

static void unhealthy(struct health *h, int status, const char *reason)
{
    if (h->status == CTL_OK) {
        h->status = status;
        h->reason = reason;
    }
}

/* The checks up to the read barrier, from a status. */
static void health_status(struct health *h, const struct raft_runtime_status *s)
{
    h->commit = s->commit;
    h->applied = s->applied;
    if (s->error != 0) {
        h->storage_error = raft_strerror(s->error);
        unhealthy(h, CTL_STORAGE, "the node's storage failed");
    }
    for (unsigned i = 0; i < s->n_peers; i++)
        if (s->peers[i].id == s->id)
            h->self = &s->peers[i];
    if (h->self == NULL)
        unhealthy(h, CTL_NOT_MEMBER, "this node is not in the configuration");
    if (s->leader == 0)
        unhealthy(h, CTL_NO_LEADER, "no leader is known");
}

/* A read barrier proves both remaining conditions at once: the leader confirmed its leadership
 * with a quorum (ReadIndex, thesis §6.4), and this node applied everything the leader had
 * committed. When it fails, a node whose applied index lags its commit index is not applying;
 * otherwise the leader had no quorum. */
static int health_barrier(const struct ctl_opts *o, struct health *h)
{
    struct ctl_msg req = {.type = CTL_REQ_READ_BARRIER}, resp;
    int code = -1;
    int rc = ctl_call(o, &req, CTL_RESP_OK, &resp, &code);
    h->did_barrier = true;
    if (rc == CTL_OK) {
        h->has_quorum = h->is_applying = true;
        return CTL_OK;
    }
    if (code == -1)
        return rc; /* reported: no answer at all */
    if ((rc = ask(o, CTL_REQ_STATUS, CTL_RESP_STATUS, &resp)) != CTL_OK)
        return rc;
    h->commit = resp.status.commit;
    h->applied = resp.status.applied;
    if (h->applied < h->commit) {
        h->has_quorum = true;
        unhealthy(h, CTL_NOT_APPLYING, "this node did not apply what was committed in time");
    } else {
        h->is_applying = true;
        unhealthy(h, CTL_NO_QUORUM, "the leader did not confirm a quorum in time");
    }
    return CTL_OK;
}

static const char *yes_no(bool is_yes)
{
    return is_yes ? "yes" : "no";
}

int ctl_health(const struct ctl_opts *o)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATUS, CTL_RESP_STATUS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct raft_runtime_status *s = &resp.status;
    struct health h = {.status = CTL_OK};
    health_status(&h, s);
    if (h.status == CTL_OK && (rc = health_barrier(o, &h)) != CTL_OK)
        return rc;
    /* Members this node has no connection to: not a failure of this node, but worth seeing. */
    json_t *down = json_array();
    char down_text[RAFT_MAX_SERVERS * 22] = "";
    for (unsigned i = 0; i < s->n_peers; i++)
        if (s->peers[i].id != s->id && !s->peers[i].is_connected) {
            ctl_json_append(&down, json_integer(CTL_JI(s->peers[i].id)));
            snprintf(down_text + strlen(down_text), sizeof down_text - strlen(down_text),
                     " %" PRIu64, s->peers[i].id);
        }
    if (o->is_json) {
        rc = ctl_json_print(
            o, json_pack(
                   "{s:b, s:i, s:s?, s:s?, s:b, s:s?, s:I, s:o?, s:o?, s:I, s:I, s:o}", "healthy",
                   h.status == CTL_OK, "exit_status", h.status, "reason", h.reason, "storage_error",
                   h.storage_error, "member", h.self != NULL, "suffrage",
                   h.self != NULL ? suffrage_name(h.self->suffrage) : NULL, "leader",
                   CTL_JI(s->leader), "quorum", h.did_barrier ? json_boolean(h.has_quorum) : NULL,
                   "applying", h.did_barrier ? json_boolean(h.is_applying) : NULL, "commit_index",
                   CTL_JI(h.commit), "applied_index", CTL_JI(h.applied), "disconnected", down));
        return rc != CTL_OK ? rc : h.status;
    }
    json_decref(down);
    printf("storage:       %s\n", h.storage_error != NULL ? h.storage_error : "sound");
    printf("member:        %s\n", h.self != NULL ? suffrage_name(h.self->suffrage) : "no");
    if (s->leader != 0)
        printf("leader:        %" PRIu64 " (%s)\n", s->leader, s->leader_address);
    else
        printf("leader:        none known\n");
    printf("quorum:        %s\n", h.did_barrier ? yes_no(h.has_quorum) : "not checked");
    printf("applying:      %s (applied %" PRIu64 " of %" PRIu64 " committed)\n",
           h.did_barrier ? yes_no(h.is_applying) : "not checked", h.applied, h.commit);
    printf("disconnected: %s\n", down_text[0] != '\0' ? down_text : " none");
    if (h.status == CTL_OK)
        printf("healthy\n");
    else
        printf("UNHEALTHY: %s\n", h.reason);
    return h.status;
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

int ctl_stats(const struct ctl_opts *o)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_STATS, CTL_RESP_STATS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct raft_runtime_stats *s = &resp.stats;
    const struct {
        const char *name;
        const struct raft_histogram *h;
    } hists[] = {{"commit", &s->commit}, {"fsync", &s->fsync}, {"apply", &s->apply}};
    json_t *j = o->is_json ? json_object() : NULL;
    for (unsigned i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t v = *(const uint64_t *)((const char *)s + counters[i].offset);
        if (!o->is_json)
            printf("%-22s %" PRIu64 "\n", counters[i].name, v);
        else if (j != NULL)
            ctl_json_set(&j, counters[i].name, json_integer(CTL_JI(v)));
    }
    if (!o->is_json)
        printf("\n%-8s %10s %10s %10s %10s  (microseconds; p50 and p99 are bucket upper bounds)\n",
               "LATENCY", "COUNT", "MEAN", "P50", "P99");
    for (unsigned i = 0; i < 3; i++) {
        const struct raft_histogram *h = hists[i].h;
        uint64_t mean = h->count ? h->sum_us / h->count : 0;
        uint64_t p50 = raft_histogram_percentile(h, 50), p99 = raft_histogram_percentile(h, 99);
        if (!o->is_json)
            printf("%-8s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", hists[i].name,
                   h->count, mean, p50, p99);
        else if (j != NULL)
            ctl_json_set(&j, hists[i].name,
                         json_pack("{s:I, s:I, s:I, s:I, s:I}", "count", CTL_JI(h->count), "sum_us",
                                   CTL_JI(h->sum_us), "mean_us", CTL_JI(mean), "p50_us",
                                   CTL_JI(p50), "p99_us", CTL_JI(p99)));
    }
    return o->is_json ? ctl_json_print(o, j) : CTL_OK;
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

int ctl_verify(const struct ctl_opts *o)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_VERIFY, CTL_RESP_VERIFY, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct ctl_verify *v = &resp.verify;
    /* Digests that differ are a divergence (CTL_ERROR); a member without a digest only leaves
     * the check incomplete (CTL_INCOMPLETE): run it again. */
    const uint8_t *first = NULL;
    unsigned n_answered = 0;
    bool do_differ = false;
    for (unsigned i = 0; i < v->n; i++) {
        if (v->nodes[i].status != 0)
            continue;
        n_answered++;
        if (first == NULL)
            first = v->nodes[i].digest;
        else if (memcmp(v->nodes[i].digest, first, CTL_DIGEST_SIZE) != 0)
            do_differ = true;
    }
    bool is_equal = n_answered == v->n && v->n > 0 && !do_differ;
    json_t *nodes = o->is_json ? json_array() : NULL;
    if (!o->is_json)
        printf("checkpoint at log index %" PRIu64 "\n", v->index);
    for (unsigned i = 0; i < v->n; i++) {
        const struct ctl_digest *d = &v->nodes[i];
        char text[2 * CTL_DIGEST_SIZE + 1] = "";
        if (d->status == 0)
            hex(d->digest, text);
        if (o->is_json)
            ctl_json_append(&nodes, json_pack("{s:I, s:s?, s:s?}", "id", CTL_JI(d->id), "digest",
                                              d->status == 0 ? text : NULL, "error",
                                              d->status == 0 ? NULL : digest_error(d->status)));
        else if (d->status == 0)
            printf("  node %-6" PRIu64 " %s\n", d->id, text);
        else
            printf("  node %-6" PRIu64 " no digest: %s\n", d->id, digest_error(d->status));
    }
    int status = do_differ ? CTL_ERROR : is_equal ? CTL_OK : CTL_INCOMPLETE;
    if (o->is_json)
        rc = ctl_json_print(o, json_pack("{s:I, s:b, s:b, s:i, s:o}", "index", CTL_JI(v->index),
                                         "equal", is_equal, "differ", do_differ, "answered",
                                         n_answered, "nodes", nodes));
    else if (do_differ)
        printf("MISMATCH: the digests differ (%u of %u nodes answered)\n", n_answered, v->n);
    else if (!is_equal)
        printf("INCOMPLETE: %u of %u nodes answered; their digests are equal\n", n_answered, v->n);
    else
        printf("all %u digests are equal\n", v->n);
    return rc != CTL_OK ? rc : status;
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

int ctl_locks(const struct ctl_opts *o)
{
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
    json_t *locks = o->is_json ? json_array() : NULL;
    if (!o->is_json)
        printf("%-10s %-5s %-8s %-8s %-5s %-5s %-20s %-20s %-8s %11s  %s\n", "INODE", "NODE",
               "SESSION", "PID", "KIND", "TYPE", "START", "LEN", "TOKEN", "AGE", "STATE");
    for (unsigned i = 0; i < ls->n; i++) {
        const struct ctl_lock *l = &ls->locks[i];
        const char *kind = l->kind == CTL_LOCK_FLOCK ? "flock" : "posix";
        const char *type = l->type == CTL_LOCK_WRITE ? "write" : "read";
        uint64_t age = age_ms(&l->time);
        if (o->is_json) {
            ctl_json_append(
                &locks, json_pack("{s:I, s:I, s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:b}",
                                  "ino", CTL_JI(l->ino), "node", CTL_JI(l->node), "session",
                                  CTL_JI(l->session), "pid", CTL_JI(l->pid), "kind", kind, "type",
                                  type, "start", CTL_JI(l->start), "len", CTL_JI(l->len), "token",
                                  CTL_JI(l->token), "age_ms", CTL_JI(age), "state",
                                  lock_state_name(l->state), "lost_here", l->session == lost));
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
    if (o->is_json)
        return ctl_json_print(
            o, json_pack("{s:b, s:o}", "truncated", ls->is_truncated, "locks", locks));
    if (ls->is_truncated)
        printf("(only the first %u locks are shown)\n", CTL_LOCKS_MAX);
    return CTL_OK;
}

int ctl_sessions(const struct ctl_opts *o)
{
    struct ctl_msg resp;
    int rc = ask(o, CTL_REQ_SESSIONS, CTL_RESP_SESSIONS, &resp);
    if (rc != CTL_OK)
        return rc;
    const struct ctl_sessions *ss = &resp.sessions;
    struct ctl_own_session own;
    if ((rc = own_session(o, &own)) != CTL_OK)
        return rc;
    json_t *sessions = o->is_json ? json_array() : NULL;
    if (!o->is_json)
        printf("%-10s %-5s %-6s %-24s %s\n", "SESSION", "NODE", "STATE", "OPENED", "ENDED");
    for (unsigned i = 0; i < ss->n; i++) {
        const struct ctl_session *e = &ss->sessions[i];
        bool is_ended = e->state == CTL_SESSION_ENDED;
        char opened[48], ended[48] = "-";
        format_time(&e->opened, opened, sizeof opened);
        if (is_ended)
            format_time(&e->ended, ended, sizeof ended);
        if (o->is_json)
            ctl_json_append(&sessions,
                            json_pack("{s:I, s:I, s:s, s:s, s:s?}", "id", CTL_JI(e->id), "node",
                                      CTL_JI(e->node), "state", is_ended ? "ended" : "live",
                                      "opened", opened, "ended", is_ended ? ended : NULL));
        else
            printf("%-10" PRIu64 " %-5" PRIu64 " %-6s %-24s %s\n", e->id, e->node,
                   is_ended ? "ended" : "live", opened, ended);
    }
    if (o->is_json)
        return ctl_json_print(o, json_pack("{s:b, s:o, s:o}", "truncated", ss->is_truncated,
                                           "sessions", sessions, "own", own_json(&own)));
    if (ss->is_truncated)
        printf("(only the first %u sessions are shown)\n", CTL_SESSIONS_MAX);
    printf("this node's lock session: ");
    own_text(&own);
    return CTL_OK;
}
