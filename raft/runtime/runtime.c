/* The runtime's loop thread and API: it feeds the core (ticks, messages, completions of the
 * other threads), carries out each update, and turns API calls into requests that complete
 * exactly once. start.c starts and stops the node, requests.c keeps the table of pending
 * requests. docs/runtime.md describes the whole. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/runtime/internal.h"
#include "lib/le.h"
#include "lib/error.h"

#define DEADLINE_EVERY 5 /* ticks between scans for expired requests */

/* Frames of the runtime's own (docs/wire-format.md, "Runtime frames"):
 *   FORWARD       the proposal as the leader should append it (envelope + command)
 *   FORWARD_RESP  u64 request id | u32 status | u64 index | u64 term
 *   CTL           u64 request id | u8 kind | u8 op | u64 server | u64 expect_index | u8 len | addr
 *   CTL_RESP      u64 request id | u32 status
 *   DIGEST, DIGEST_RESP: see verify.c */

/* --- carrying out updates ------------------------------------------------------------------- */

struct step_ctx {
    struct rt_req *req;     /* the request being stepped, if any */
    uint64_t snapshot_term; /* SNAPSHOT_TAKEN: the term of the snapshot */
};

static void stop_taking_part(struct raft_runtime *rt, int error);

/* Fill the chunk of a snapshot message from the current snapshot file into buf. */
static bool fill_chunk(struct raft_runtime *rt, struct raft_msg *m, void *buf)
{
    if (rt->reader == NULL)
        return false;
    const struct store_snapshot_meta *meta = store_snapshot_reader_meta(rt->reader);
    if (meta->index != m->snapshot.index || meta->term != m->snapshot.term)
        return false; /* replaced meanwhile: the core starts over with the new one */
    size_t n;
    if (store_snapshot_reader_read(rt->reader, m->snapshot.offset, buf, m->snapshot.len, &n) != 0 ||
        n != m->snapshot.len)
        return false;
    m->snapshot.data = buf;
    return true;
}

/* Encode m into a frame (for messages held until the hard state is durable). */
static struct rt_frame *frame_of(struct raft_runtime *rt, const struct raft_msg *msg)
{
    struct raft_msg m = *msg;
    void *chunk = NULL;
    if (m.type == RAFT_MSG_SNAPSHOT) {
        chunk = malloc(m.snapshot.len ? m.snapshot.len : 1);
        if (chunk == NULL || !fill_chunk(rt, &m, chunk)) {
            free(chunk);
            return NULL;
        }
    }
    size_t len = raft_msg_encoded_size(&m);
    struct rt_frame *f = malloc(sizeof *f + len);
    if (f != NULL) {
        f->to = m.to;
        f->channel = raft__channel_for_msg(&m);
        f->len = (uint32_t)len;
        raft_msg_encode(&m, f->data);
    }
    free(chunk);
    return f;
}

static void send_now(struct raft_runtime *rt, const struct raft_msg *msg)
{
    struct raft_msg m = *msg;
    void *chunk = NULL;
    if (m.type == RAFT_MSG_SNAPSHOT) {
        chunk = malloc(m.snapshot.len ? m.snapshot.len : 1);
        if (chunk == NULL || !fill_chunk(rt, &m, chunk)) {
            free(chunk);
            return; /* lost, as on a network: the core resends */
        }
    }
    raft__transport_send_msg(rt->transport, &m);
    free(chunk);
}

/* Copy entries (the update's are borrowed) for another thread. */
struct raft_entry *rt__copy_entries(const struct raft_entry *src, size_t n)
{
    struct raft_entry *e = calloc(n, sizeof *e);
    if (e == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        e[i] = src[i];
        e[i].data = NULL;
        if (src[i].len > 0) {
            e[i].data = malloc(src[i].len);
            if (e[i].data == NULL) {
                for (size_t k = 0; k < i; k++)
                    free(e[k].data);
                free(e);
                return NULL;
            }
            memcpy(e[i].data, src[i].data, src[i].len);
        }
    }
    return e;
}

/* Queue the update's log write for the writer, with the frames held until it is durable
 * (taken from held, which is left empty on success). */
static int queue_log_write(struct raft_runtime *rt, const struct raft_update *u,
                           struct rfs_queue *held)
{
    struct rt_write *w = calloc(1, sizeof *w);
    if (w == NULL)
        goto err;
    /* Its report is made now, so that the writer can always say a write is durable. */
    if ((w->persisted = calloc(1, sizeof *w->persisted)) == NULL)
        goto err_after_write;
    w->kind = RT_WRITE_LOG;
    w->batch.has_hard_state = u->has_hard_state;
    w->batch.term = u->term;
    w->batch.vote = u->vote;
    w->batch.truncate_from = u->truncate_from;
    struct store_log_entry *e = NULL;
    size_t i = 0;
    if (u->n_entries > 0 && (e = calloc(u->n_entries, sizeof *e)) == NULL)
        goto err_after_event;
    for (; i < u->n_entries; i++) {
        const struct raft_entry *s = &u->entries[i];
        void *copy = NULL;
        if (s->len > 0 && (copy = malloc(s->len)) == NULL)
            goto err_after_entries;
        if (s->len > 0)
            memcpy(copy, s->data, s->len);
        e[i] = (struct store_log_entry){
            .index = s->index, .term = s->term, .type = s->type, .len = s->len, .payload = copy};
    }
    w->batch.entries = e;
    w->batch.n = u->n_entries;
    rfs_queue_splice(&w->held, held);
    rt__write(rt, w);
    return 0;

err_after_entries:
    for (size_t k = 0; k < i; k++)
        free((void *)e[k].payload);
    free(e);
err_after_event:
    free(w->persisted);
err_after_write:
    free(w);
err:
    return RAFT_ENOMEM;
}

static void snapshot_chunk(struct raft_runtime *rt, const struct raft_update *u)
{
    if (u->snapshot.has_chunk) {
        if (u->snapshot.offset == 0) {
            store_snapshot_receive_abort(rt->receiver);
            rt->receiver = NULL;
            int rc = store_snapshot_receive_begin(rt->snaps, u->snapshot.index, u->snapshot.term,
                                                  &rt->receiver);
            if (rc != 0)
                rt__log(rt, RAFT_LOG_WARN, "receiving snapshot %llu: %s",
                        (unsigned long long)u->snapshot.index, rfs_strerror(rc));
        }
        if (rt->receiver != NULL &&
            store_snapshot_receive_write(rt->receiver, u->snapshot.offset, u->snapshot.data,
                                         u->snapshot.len) != 0) {
            store_snapshot_receive_abort(rt->receiver); /* install will report the failure */
            rt->receiver = NULL;
        }
    }
    if (!u->snapshot.install)
        return;
    struct rt_apply *a = calloc(1, sizeof *a);
    if (a == NULL || rt->receiver == NULL) {
        free(a);
        store_snapshot_receive_abort(rt->receiver);
        rt->receiver = NULL;
        struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_INSTALLED};
        ev.snapshot_installed.index = u->snapshot.index;
        ev.snapshot_installed.term = u->snapshot.term;
        ev.snapshot_installed.status = RAFT_EIO;
        struct rt_event *e = calloc(1, sizeof *e);
        if (e == NULL) {
            stop_taking_part(rt, RAFT_ENOMEM);
            return;
        }
        e->ev = ev;
        rt__post_event(rt, e);
        return;
    }
    a->kind = RT_APPLY_INSTALL;
    a->receiver = rt->receiver;
    a->index = u->snapshot.index;
    a->term = u->snapshot.term;
    rt->receiver = NULL;
    rt__apply(rt, a);
}

static void sync_peers(struct raft_runtime *rt)
{
    struct raft_status s;
    raft_status(rt->core, &s);
    if (s.conf_index == rt->conf_index_synced && rt->conf_index_synced != 0)
        return;
    for (unsigned i = 0; i < s.conf.n; i++) {
        const struct raft_server *sv = &s.conf.servers[i];
        if (sv->id == rt->cfg.id || sv->address[0] == '\0')
            continue;
        int rc = raft__transport_peer_set(rt->transport, sv->id, sv->address);
        if (rc != 0)
            rt__log(rt, RAFT_LOG_WARN, "peer %llu at \"%s\": %s", (unsigned long long)sv->id,
                    sv->address, raft_strerror(rc));
    }
    rt->conf_index_synced = s.conf_index;
}

static void update_status(struct raft_runtime *rt)
{
    struct raft_status s;
    raft_status(rt->core, &s);
    struct raft_runtime_status st;
    memset(&st, 0, sizeof st);
    st.id = rt->cfg.id;
    st.role = s.role;
    st.term = s.term;
    st.leader = s.leader;
    const struct raft_server *ls = raft_configuration_get(&s.conf, s.leader);
    if (ls != NULL)
        memcpy(st.leader_address, ls->address, sizeof st.leader_address);
    st.commit = s.commit;
    st.applied = atomic_load(&rt->applied);
    st.last_index = s.last_index;
    st.snapshot_index = s.snapshot_index;
    st.snapshot_term = s.snapshot_term;
    st.conf_index = s.conf_index;
    st.error = rt->error;
    st.epoch = rt->epoch;
    for (unsigned i = 0; i < s.conf.n && st.n_peers < RAFT_MAX_SERVERS; i++) {
        const struct raft_server *sv = &s.conf.servers[i];
        struct raft_runtime_peer *p = &st.peers[st.n_peers++];
        p->id = sv->id;
        p->suffrage = sv->suffrage;
        memcpy(p->address, sv->address, sizeof p->address);
        for (unsigned k = 0; k < s.n_progress; k++)
            if (s.progress[k].id == sv->id) {
                p->match = s.progress[k].match;
                p->last_contact_ms = (uint64_t)s.progress[k].ticks_since_contact * rt->tick_ms;
            }
        struct raft__peer_stats ps;
        if (sv->id != rt->cfg.id && raft__transport_peer_stats(rt->transport, sv->id, &ps) == 0)
            p->is_connected = ps.is_connected[RAFT__CHANNEL_CONTROL];
        if (sv->id == rt->cfg.id) {
            p->match = s.durable_index;
            p->is_connected = true;
        }
    }
    pthread_mutex_lock(&rt->lock);
    rt->status = st;
    pthread_mutex_unlock(&rt->lock);
}

static void submit(struct raft_runtime *rt, struct rt_req *req);

/* Requests that waited for a leader go now that one is known. */
static void resubmit_waiting(struct raft_runtime *rt)
{
    struct rt_req *list[64];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&rt->lock);
        for (struct rt_req *r = rt->requests.first; r != NULL && n < 64; r = r->next)
            if (!r->is_submitted && !r->is_posted) {
                r->is_submitted = true; /* claimed: submit() decides again */
                list[n++] = r;
            }
        pthread_mutex_unlock(&rt->lock);
        for (size_t i = 0; i < n; i++) {
            list[i]->is_submitted = false;
            submit(rt, list[i]);
        }
        if (n < 64)
            return;
    }
}

static bool is_leadership_status(int status)
{
    return status == RAFT_ENOTLEADER || status == RAFT_ELEADERSHIPLOST || status == RAFT_EDISKSTALL;
}

static void role_changed(struct raft_runtime *rt, const struct raft_update *u)
{
    if (u->role != RAFT_LEADER) {
        /* Proposals this node appended as leader may still commit under the next leader, or
         * be overwritten: their outcome comes from apply, or is "unknown" at the deadline. */
        pthread_mutex_lock(&rt->lock);
        for (struct rt_req *r = rt->requests.first; r != NULL; r = r->next)
            if (r->is_submitted && rt__is_entry_req(r->kind))
                r->is_leadership_lost = true;
        pthread_mutex_unlock(&rt->lock);
    }
    rt__log(rt, RAFT_LOG_INFO, "%s in term %llu, leader %llu", raft_role_name(u->role),
            (unsigned long long)u->term, (unsigned long long)u->leader);
    update_status(rt);
    if (u->leader != 0)
        resubmit_waiting(rt);
}

static void process(struct raft_runtime *rt, const struct raft_update *u, struct step_ctx *ctx)
{
    /* 1-2. Hard state and log: messages that depend on a new hard state wait for it. */
    struct rfs_queue held = {0};
    for (size_t i = 0; i < u->n_msgs; i++) {
        if (!u->has_hard_state) {
            send_now(rt, &u->msgs[i]);
            continue;
        }
        struct rt_frame *f = frame_of(rt, &u->msgs[i]);
        if (f != NULL)
            rfs_queue_push(&held, &f->link);
    }
    if (u->has_hard_state || u->truncate_from != 0 || u->n_entries > 0) {
        if (queue_log_write(rt, u, &held) != 0) {
            rt__frames_free(&held);
            stop_taking_part(rt, RAFT_ENOMEM);
            return;
        }
    }
    /* 3. A received snapshot. */
    snapshot_chunk(rt, u);
    if (rt->error != 0)
        return; /* it stopped the node: every request is completed and freed */
    /* 5. Committed entries. */
    if (u->n_apply > 0) {
        struct rt_apply *a = calloc(1, sizeof *a);
        if (a == NULL || (a->entries = rt__copy_entries(u->apply, u->n_apply)) == NULL) {
            free(a);
            stop_taking_part(rt, RAFT_ENOMEM);
            return;
        }
        a->kind = RT_APPLY_ENTRIES;
        a->n = u->n_apply;
        rt__apply(rt, a);
    }
    /* 6. Results. */
    if (u->proposed_index != 0 && ctx != NULL && ctx->req != NULL) {
        pthread_mutex_lock(&rt->lock);
        ctx->req->index = u->proposed_index;
        ctx->req->term = u->proposed_term;
        rt__table_update(&rt->requests, ctx->req); /* not for recv_forward's probe */
        pthread_mutex_unlock(&rt->lock);
    }
    for (size_t i = 0; i < u->n_reads; i++) {
        const struct raft_read_result *r = &u->reads[i];
        if (r->status != 0) {
            if (!is_leadership_status(r->status) || !rt__retry_later(rt, r->id))
                rt__complete_id(rt, r->id, r->status, NULL);
            continue;
        }
        rt__read_wait(rt, r->id, r->index);
    }
    for (size_t i = 0; i < u->n_changes; i++)
        rt__complete_id(rt, u->changes[i].id, u->changes[i].status, NULL);
    for (size_t i = 0; i < u->n_transfers; i++)
        rt__complete_id(rt, u->transfers[i].id, u->transfers[i].status, NULL);
    /* 7. Snapshots. */
    if (u->want_snapshot && !rt->has_snapshot_thread)
        rt__snapshot_start(rt);
    if (ctx != NULL && ctx->snapshot_term != 0) {
        struct rt_write *w = calloc(1, sizeof *w);
        if (w == NULL) {
            stop_taking_part(rt, RAFT_ENOMEM);
            return;
        }
        w->kind = RT_WRITE_COMPACT;
        w->batch.truncate_from = u->compact_to;
        rt__write(rt, w);
    }
    if (u->role_changed)
        role_changed(rt, u);
    sync_peers(rt);
}

static uint64_t boottime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int step_core(struct raft_runtime *rt, const struct raft_event *e, struct step_ctx *ctx)
{
    struct raft_update u;
    int rv = raft_step(rt->core, e, &u);
    process(rt, &u, ctx);
    return rv;
}

/* With lease reads, give the core every tick that has passed on the clock before it decides
 * anything (docs/runtime.md, "Ticks and the lease"). The tick timer fires once for a stall of
 * any length (a paused process, a loaded machine), and a leader counting only those ticks
 * would trust its lease long after it ran out. CLOCK_BOOTTIME also counts a suspended
 * machine. A long stall is given at most LEASE_CATCH_UP_ELECTIONS election timeouts of ticks:
 * that already ends every lease and timeout, and the rest would only send heartbeats nobody
 * needs. */
#define LEASE_CATCH_UP_ELECTIONS 4
static void catch_up_ticks(struct raft_runtime *rt)
{
    uint64_t now = boottime_ns(), period = (uint64_t)rt->tick_ms * 1000000u;
    uint64_t due = (now - rt->ticked_ns) / period;
    uint64_t cap = (uint64_t)LEASE_CATCH_UP_ELECTIONS * rt->cfg.options.election_ticks;
    rt->ticked_ns = due > cap ? now : rt->ticked_ns + due * period;
    struct raft_event tick = {.type = RAFT_EVENT_TICK};
    for (uint64_t i = 0; i < due && i < cap && rt->error == 0; i++)
        step_core(rt, &tick, NULL);
}

/* Feed one event to the core and carry out the update. */
static int step(struct raft_runtime *rt, const struct raft_event *e, struct step_ctx *ctx)
{
    if (rt->error != 0)
        return rt->error;
    if (rt->cfg.options.lease_reads) {
        catch_up_ticks(rt);
        if (e->type == RAFT_EVENT_TICK)
            return 0; /* the timer's tick was among those */
    }
    return step_core(rt, e, ctx);
}

/* --- failure ------------------------------------------------------------------------------- */

/* A storage failure: the node keeps its last state for operators to look at, but takes no more
 * part in the cluster (a failed fsync must never be retried; see DESIGN.md, store/). */
static void stop_taking_part(struct raft_runtime *rt, int error)
{
    if (rt->error != 0)
        return;
    rt->error = error == RAFT_ENOMEM ? RAFT_ESTORAGE : error;
    rt__log(rt, RAFT_LOG_ERROR, "this node stops taking part in the cluster: %s; restart it",
            raft_strerror(rt->error));
    update_status(rt);
    rt__fail_all(rt, rt->error);
}
/* --- the loop's callbacks ------------------------------------------------------------------- */

static void events_cb(struct rt_work *w)
{
    struct raft_runtime *rt = w->data;
    struct rfs_queue q = {0};
    pthread_mutex_lock(&rt->events_lock);
    rfs_queue_splice(&q, &rt->events);
    rt->is_events_posted = false;
    pthread_mutex_unlock(&rt->events_lock);
    struct rfs_qlink *l;
    while ((l = rfs_queue_pop(&q)) != NULL) {
        struct rt_event *e = RFS_QUEUE_ITEM(l, struct rt_event, link);
        if (e->error != 0)
            stop_taking_part(rt, e->error);
        for (struct rfs_qlink *fl = e->frames.head; fl != NULL && rt->error == 0; fl = fl->next) {
            struct rt_frame *f = RFS_QUEUE_ITEM(fl, struct rt_frame, link);
            raft__transport_send(rt->transport, f->to, f->channel, RAFT__FRAME_RAFT, f->data,
                                 f->len);
        }
        rt__frames_free(&e->frames);
        struct step_ctx ctx = {0};
        switch (e->ev.type) {
        case RAFT_EVENT_PERSISTED: step(rt, &e->ev, NULL); break;
        case RAFT_EVENT_SNAPSHOT_INSTALLED:
            if (e->ev.snapshot_installed.status == 0) {
                store_snapshot_reader_close(rt->reader);
                rt->reader = NULL;
                store_snapshot_open(rt->snaps, e->ev.snapshot_installed.index,
                                    e->ev.snapshot_installed.term, &rt->reader);
            }
            step(rt, &e->ev, NULL);
            break;
        case RAFT_EVENT_SNAPSHOT_TAKEN: {
            rt__snapshot_join(rt);
            uint64_t index = e->ev.snapshot_taken.index, term = e->snapshot_term;
            int rv = index == 0 ? RAFT_EIO : 0;
            if (rv == 0) {
                ctx.snapshot_term = term;
                rv = step(rt, &e->ev, &ctx);
            }
            if (rv == 0) {
                /* Record it for restarts and send followers this one from now on. */
                struct rt_write *wr = calloc(1, sizeof *wr);
                if (wr != NULL) {
                    wr->kind = RT_WRITE_COMPACT;
                    wr->index = index;
                    wr->term = term;
                    rt__write(rt, wr);
                }
                struct store_snapshot_reader *rd;
                if (store_snapshot_open(rt->snaps, index, term, &rd) == 0) {
                    store_snapshot_reader_close(rt->reader);
                    rt->reader = rd;
                }
                atomic_fetch_add(&rt->stats.snapshots_taken, 1);
                rt__log(rt, RAFT_LOG_INFO, "took snapshot %llu/%llu (%llu bytes)",
                        (unsigned long long)index, (unsigned long long)term,
                        (unsigned long long)e->ev.snapshot_taken.size);
            }
            if (rt->snapshot_req != 0) {
                rt__complete_id(rt, rt->snapshot_req, rv == RAFT_ESTALE ? 0 : rv, NULL);
                rt->snapshot_req = 0;
            }
            break;
        }
        default: break;
        }
        if (!e->is_embedded)
            free(e);
    }
}

static void tick_cb(struct rt_timer *t)
{
    struct raft_runtime *rt = t->data;
    if (rt->error == 0) {
        struct raft_event e = {.type = RAFT_EVENT_TICK};
        step(rt, &e, NULL);
    }
    if (++rt->ticks % DEADLINE_EVERY == 0) {
        rt__expire(rt);
        rt__verify_retry(rt);
        update_status(rt);
        /* Requests put back by retry_later while a leader was known: this bounds how often
         * one that a stale leader keeps refusing is sent. */
        if (rt->error == 0 && raft_leader(rt->core) != 0)
            resubmit_waiting(rt);
    }
}

/* Answer a peer's change request that ran here. */
void rt__send_ctl_resp(struct raft_runtime *rt, uint64_t to, uint64_t id, int status)
{
    uint8_t buf[12];
    rfs_put_le64(buf, id);
    rfs_put_le32(buf + 8, (uint32_t)status);
    raft__transport_send(rt->transport, to, RAFT__CHANNEL_CONTROL, RAFT__FRAME_CTL_RESP, buf,
                         sizeof buf);
}

/* Authority (DESIGN.md section 3): a certificate proves who a peer is, not that it may act. */

/* Refusals are logged at most once every REFUSED_LOG_MS, with the count of those not logged. */
#define REFUSED_LOG_MS 10000

static void refuse(struct raft_runtime *rt, uint64_t from, const char *what, const char *why)
{
    uint64_t now = rt__loop_now(rt->loop);
    if (rt->refused_ms != 0 && now - rt->refused_ms < REFUSED_LOG_MS) {
        rt->refused++;
        return;
    }
    rt__log(rt, RAFT_LOG_WARN,
            "refused %s from node %llu (the node its certificate names): %s; %llu more refusals "
            "not logged since the last one",
            what, (unsigned long long)from, why, (unsigned long long)rt->refused);
    rt->refused_ms = now;
    rt->refused = 0;
}

/* May peer from act on the cluster: is it a server (voter or not) of the latest
 * configuration? */
static bool may_act(struct raft_runtime *rt, uint64_t from, const char *what)
{
    if (raft_configuration_get(raft_configuration_latest(rt->core), from) != NULL)
        return true;
    refuse(rt, from, what, "not a server of the configuration");
    return false;
}

/* Is from the peer that request id (forwarded) went to? Only its answer counts. */
static bool answers_own(struct raft_runtime *rt, uint64_t from, uint64_t id, const char *what)
{
    pthread_mutex_lock(&rt->lock);
    struct rt_req *req = rt__table_find(&rt->requests, id);
    bool is_own = req == NULL || req->sent_to == from; /* unknown: nothing to complete */
    pthread_mutex_unlock(&rt->lock);
    if (!is_own)
        refuse(rt, from, what, "the request went to another node");
    return is_own;
}

static void recv_forward(struct raft_runtime *rt, uint64_t from, const uint8_t *p, uint32_t len)
{
    if (len < RT_ENVELOPE || rfs_get_le64(p) != from)
        return; /* a proposal names its proposer: no node proposes for another */
    uint64_t id = rfs_get_le64(p + 8);
    uint8_t resp[28];
    int rv = RAFT_ENOTLEADER;
    uint64_t index = 0, term = 0;
    if (raft_role(rt->core) == RAFT_LEADER && rt->error == 0) {
        struct raft_buf b = {.data = p, .len = len};
        struct raft_event e = {.type = RAFT_EVENT_PROPOSE};
        e.propose.type = RAFT_ENTRY_COMMAND;
        e.propose.bufs = &b;
        e.propose.n = 1;
        struct rt_req probe = {0};
        struct step_ctx ctx = {.req = &probe};
        rv = step(rt, &e, &ctx);
        index = probe.index;
        term = probe.term;
    }
    rfs_put_le64(resp, id);
    rfs_put_le32(resp + 8, (uint32_t)rv);
    rfs_put_le64(resp + 12, index);
    rfs_put_le64(resp + 20, term);
    raft__transport_send(rt->transport, from, RAFT__CHANNEL_CONTROL, RAFT__FRAME_FORWARD_RESP, resp,
                         sizeof resp);
}

static void recv_forward_resp(struct raft_runtime *rt, uint64_t from, const uint8_t *p,
                              uint32_t len)
{
    if (len != 28)
        return;
    uint64_t id = rfs_get_le64(p);
    if (!answers_own(rt, from, id, "an answer to a forwarded proposal"))
        return;
    int status = (int)rfs_get_le32(p + 8);
    if (status != 0) {
        /* RAFT_ENOTLEADER: the receiver appended nothing, so sending it again is safe. */
        if (status != RAFT_ENOTLEADER || !rt__retry_later(rt, id))
            rt__complete_id(rt, id, status, NULL);
        return;
    }
    /* Accepted at (index, term). If this node already applied that index and the request is
     * still here, the entry there was another one: ours was overwritten. */
    pthread_mutex_lock(&rt->lock);
    struct rt_req *req = rt__table_find(&rt->requests, id);
    bool is_gone = false;
    if (req != NULL) {
        req->index = rfs_get_le64(p + 12);
        req->term = rfs_get_le64(p + 20);
        if (atomic_load(&rt->applied) >= req->index) {
            rt__table_remove(&rt->requests, req);
            is_gone = true;
        } else {
            rt__table_update(&rt->requests, req);
        }
    }
    pthread_mutex_unlock(&rt->lock);
    if (is_gone)
        rt__complete(rt, req, RAFT_ENOTAPPLIED, NULL);
}

static void recv_ctl(struct raft_runtime *rt, uint64_t from, const uint8_t *p, uint32_t len)
{
    if (len < 27)
        return;
    uint64_t id = rfs_get_le64(p);
    size_t alen = p[26];
    if (len != 27 + alen || alen >= RAFT_ADDRESS_MAX)
        return;
    struct rt_req *req = calloc(1, sizeof *req);
    if (req == NULL)
        return;
    req->kind = p[8] == RT_TRANSFER ? RT_TRANSFER : RT_CHANGE;
    req->op = p[9];
    req->server = rfs_get_le64(p + 10);
    req->expect_index = rfs_get_le64(p + 18);
    memcpy(req->address, p + 27, alen);
    req->is_remote = true;
    req->origin = from;
    req->peer_req = id;
    req->id = atomic_fetch_add(&rt->next_id, 1);
    req->deadline = rt__loop_now(rt->loop) + RT_DEFAULT_TIMEOUT_MS;
    req->is_submitted = true;
    pthread_mutex_lock(&rt->lock);
    int rv = rt__table_insert(&rt->requests, req);
    pthread_mutex_unlock(&rt->lock);
    if (rv != 0) {
        free(req); /* as if lost: the peer's request meets its deadline */
        return;
    }
    if (raft_role(rt->core) != RAFT_LEADER) {
        rt__complete_id(rt, req->id, RAFT_ENOTLEADER, NULL);
        return;
    }
    submit(rt, req);
}

void rt__recv_cb(void *data, uint64_t from, enum raft__channel ch, uint8_t type,
                 const uint8_t *payload, uint32_t len)
{
    (void)ch;
    struct raft_runtime *rt = data;
    if (rt->error != 0)
        return;
    switch (type) {
    case RAFT__FRAME_RAFT: {
        struct raft_msg m;
        if (raft_msg_decode(payload, len, &m, NULL) != 0) {
            rt__log(rt, RAFT_LOG_WARN, "malformed raft message from node %llu dropped",
                    (unsigned long long)from);
            return;
        }
        if (m.from != from || m.to != rt->cfg.id) {
            rt__log(rt, RAFT_LOG_WARN,
                    "message from node %llu claims to be from %llu to %llu: dropped",
                    (unsigned long long)from, (unsigned long long)m.from, (unsigned long long)m.to);
        } else {
            struct raft_event e = {.type = RAFT_EVENT_RECEIVE, .receive.msg = &m};
            step(rt, &e, NULL);
        }
        raft_msg_release(&m, NULL);
        break;
    }
    case RAFT__FRAME_FORWARD:
        if (may_act(rt, from, "a forwarded proposal"))
            recv_forward(rt, from, payload, len);
        break;
    case RAFT__FRAME_FORWARD_RESP: recv_forward_resp(rt, from, payload, len); break;
    case RAFT__FRAME_CTL:
        if (may_act(rt, from, "a control request"))
            recv_ctl(rt, from, payload, len);
        break;
    case RAFT__FRAME_CTL_RESP:
        if (len == 12 && answers_own(rt, from, rfs_get_le64(payload), "a control answer")) {
            uint64_t id = rfs_get_le64(payload);
            int status = (int)rfs_get_le32(payload + 8);
            /* Refused as not the leader: nothing was started there. */
            if (status != RAFT_ENOTLEADER || !rt__retry_later(rt, id))
                rt__complete_id(rt, id, status, NULL);
        }
        break;
    case RAFT__FRAME_DIGEST:
        if (may_act(rt, from, "a digest request"))
            rt__verify_recv(rt, from, type, payload, len);
        break;
    case RAFT__FRAME_DIGEST_RESP: rt__verify_recv(rt, from, type, payload, len); break;
    default: break;
    }
}

int rt__loop_prepare(struct raft_runtime *rt)
{
    rt->events_work.cb = events_cb;
    rt->events_work.data = rt;
    sync_peers(rt);
    update_status(rt);
    rt__timer_init(&rt->tick);
    rt->tick.data = rt;
    rt->ticked_ns = boottime_ns();
    return rt__timer_start(rt->loop, &rt->tick, rt->tick_ms, rt->tick_ms, tick_cb);
}

/* --- submitting requests (loop thread) ------------------------------------------------------ */

static void send_ctl(struct raft_runtime *rt, struct rt_req *req, uint64_t leader)
{
    uint8_t buf[27 + RAFT_ADDRESS_MAX];
    size_t alen = strnlen(req->address, RAFT_ADDRESS_MAX - 1);
    rfs_put_le64(buf, req->id);
    buf[8] = (uint8_t)req->kind;
    buf[9] = (uint8_t)req->op;
    rfs_put_le64(buf + 10, req->server);
    rfs_put_le64(buf + 18, req->expect_index);
    buf[26] = (uint8_t)alen;
    memcpy(buf + 27, req->address, alen);
    req->sent_to = leader;
    raft__transport_send(rt->transport, leader, RAFT__CHANNEL_CONTROL, RAFT__FRAME_CTL, buf,
                         27 + alen);
}

static void submit(struct raft_runtime *rt, struct rt_req *req)
{
    if (rt->error != 0) {
        rt__complete_id(rt, req->id, rt->error, NULL);
        return;
    }
    bool is_leader = raft_role(rt->core) == RAFT_LEADER;
    uint64_t leader = raft_leader(rt->core);
    if (req->kind == RT_SNAPSHOT) {
        if (rt->has_snapshot_thread || rt->snapshot_req != 0) {
            rt__complete_id(rt, req->id, RAFT_EBUSY, NULL);
            return;
        }
        req->is_submitted = true;
        rt->snapshot_req = req->id;
        int rc = rt__snapshot_start(rt);
        if (rc != 0) {
            rt->snapshot_req = 0;
            rt__complete_id(rt, req->id, rc, NULL);
        }
        return;
    }
    if (!is_leader && leader == 0)
        return; /* waits for a leader (resubmit_waiting), or for its deadline */
    req->is_submitted = true;
    struct step_ctx ctx = {.req = req};
    int rv = 0;
    switch (req->kind) {
    case RT_PROPOSE:
    case RT_VERIFY:
        if (is_leader) {
            struct raft_buf b = {.data = req->buf, .len = (uint32_t)req->len};
            struct raft_event e = {.type = RAFT_EVENT_PROPOSE};
            e.propose.type = RAFT_ENTRY_COMMAND;
            e.propose.bufs = &b;
            e.propose.n = 1;
            rv = step(rt, &e, &ctx);
        } else {
            req->sent_to = leader;
            rv = raft__transport_send(rt->transport, leader, RAFT__CHANNEL_BULK,
                                      RAFT__FRAME_FORWARD, req->buf, (uint32_t)req->len);
            if (rv == RAFT_EDROPPED)
                rv = RAFT_EBUSY;
        }
        break;
    case RT_READ: {
        struct raft_event e = {.type = RAFT_EVENT_READ_INDEX, .read_index.id = req->id};
        rv = step(rt, &e, &ctx);
        break;
    }
    case RT_CHANGE:
        if (is_leader) {
            struct raft_event e = {.type = RAFT_EVENT_CHANGE};
            e.change.id = req->id;
            e.change.op = req->op;
            e.change.server = req->server;
            e.change.address = req->address;
            e.change.expect_index = req->expect_index;
            rv = step(rt, &e, &ctx);
        } else {
            send_ctl(rt, req, leader);
        }
        break;
    case RT_TRANSFER:
        if (is_leader) {
            struct raft_event e = {.type = RAFT_EVENT_TRANSFER};
            e.transfer.id = req->id;
            e.transfer.server = req->server;
            rv = step(rt, &e, &ctx);
        } else {
            send_ctl(rt, req, leader);
        }
        break;
    case RT_SNAPSHOT: break;
    }
    if (rv != 0)
        rt__complete_id(rt, req->id, rv, NULL);
}

void rt__submit_cb(struct rt_work *w)
{
    struct rt_req *req = w->data;
    pthread_mutex_lock(&req->rt->lock);
    req->is_posted = false;
    pthread_mutex_unlock(&req->rt->lock);
    submit(req->rt, req);
}

/* --- API ------------------------------------------------------------------------------------ */

int raft_runtime_propose(struct raft_runtime *rt, const void *data, size_t len, unsigned timeout_ms,
                         raft_done_fn done, void *arg)
{
    if (len == 0 || rt__is_checkpoint(data, len))
        return RAFT_EINVAL; /* how barriers and checkpoints look */
    return rt__propose(rt, RT_PROPOSE, data, len, timeout_ms, done, arg);
}

int raft_runtime_read_index(struct raft_runtime *rt, unsigned timeout_ms, raft_done_fn done,
                            void *arg)
{
    struct rt_req *req;
    int rv = rt__req_new(rt, RT_READ, timeout_ms, done, arg, &req);
    if (rv == 0 && (rv = rt__req_post(rt, req)) == 0)
        atomic_fetch_add(&rt->stats.reads, 1);
    return rv;
}

int raft_runtime_change(struct raft_runtime *rt, enum raft_change_op op, uint64_t server,
                        const char *address, uint64_t expect_index, unsigned timeout_ms,
                        raft_done_fn done, void *arg)
{
    if (address != NULL && strlen(address) >= RAFT_ADDRESS_MAX)
        return RAFT_EINVAL;
    struct rt_req *req;
    int rv = rt__req_new(rt, RT_CHANGE, timeout_ms, done, arg, &req);
    if (rv != 0)
        return rv;
    req->op = op;
    req->server = server;
    req->expect_index = expect_index;
    if (address != NULL)
        strcpy(req->address, address);
    return rt__req_post(rt, req);
}

int raft_runtime_transfer(struct raft_runtime *rt, uint64_t server, unsigned timeout_ms,
                          raft_done_fn done, void *arg)
{
    struct rt_req *req;
    int rv = rt__req_new(rt, RT_TRANSFER, timeout_ms, done, arg, &req);
    if (rv != 0)
        return rv;
    req->server = server;
    return rt__req_post(rt, req);
}

int raft_runtime_snapshot(struct raft_runtime *rt, unsigned timeout_ms, raft_done_fn done,
                          void *arg)
{
    struct rt_req *req;
    int rv = rt__req_new(rt, RT_SNAPSHOT, timeout_ms ? timeout_ms : 60000, done, arg, &req);
    return rv != 0 ? rv : rt__req_post(rt, req);
}

void raft_runtime_status(struct raft_runtime *rt, struct raft_runtime_status *out)
{
    pthread_mutex_lock(&rt->lock);
    *out = rt->status;
    pthread_mutex_unlock(&rt->lock);
}
