/* Starting and stopping a node: open the log and snapshots, gather the durable state and
 * create the core, then the transport and the threads; and tear it all down again. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "raft/runtime/internal.h"
#include "lib/error.h"

#define DEFAULT_TICK_MS 10

static void transport_log(void *data, enum raft_log_level level, const char *line)
{
    rt__log(data, level, "transport: %s", line);
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void free_entries(struct raft_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
    free(e);
}

/* Read the whole log into *out (*n entries, freed with free_entries). Returns 0, RAFT_ENOMEM
 * or RAFT_ESTORAGE, with err filled in. */
static int load_log(struct raft_runtime *rt, struct raft_entry **out, size_t *n, char *err,
                    size_t errlen)
{
    uint64_t first, last;
    *out = NULL;
    *n = 0;
    int rc = store_log_bounds(rt->log, &first, &last);
    if (rc != 0)
        goto err_store;
    if (last == 0)
        return 0;
    size_t count = (size_t)(last - first + 1), k = 0;
    struct raft_entry *e = calloc(count, sizeof *e);
    if (e == NULL)
        goto err_memory;
    struct store_log_iter *it;
    if ((rc = store_log_iter_open(rt->log, first, last, &it)) != 0) {
        free(e);
        goto err_store;
    }
    struct store_log_entry se;
    bool is_out_of_memory = false;
    while (k < count && (rc = store_log_iter_next(it, &se)) == 0) {
        e[k] = (struct raft_entry){
            .index = se.index, .term = se.term, .type = se.type, .len = (uint32_t)se.len};
        if (se.len > 0 && (e[k].data = malloc(se.len)) == NULL) {
            is_out_of_memory = true;
            break;
        }
        if (se.len > 0)
            memcpy(e[k].data, se.payload, se.len);
        k++;
    }
    store_log_iter_close(it);
    if (rc == RFS_ENOTFOUND && k == count)
        rc = 0;
    if (rc != 0 || is_out_of_memory) {
        free_entries(e, k); /* a damaged entry: nothing loaded is handed out */
        if (is_out_of_memory)
            goto err_memory;
        goto err_store;
    }
    *out = e;
    *n = k;
    return 0;

err_memory:
    snprintf(err, errlen, "reading the log in %s/log: %s", rt->data_dir,
             raft_strerror(RAFT_ENOMEM));
    return RAFT_ENOMEM;
err_store:;
    char msg[256];
    snprintf(err, errlen, "reading the log in %s/log: %s (%s)", rt->data_dir, rfs_strerror(rc),
             store_log_errmsg(rt->log, msg, sizeof msg));
    return RAFT_ESTORAGE;
}

/* Gather the node's durable state, restore the state machine if it is behind the snapshot,
 * bootstrap a new cluster if asked, and create the core. */
static int open_state(struct raft_runtime *rt, char *err, size_t errlen)
{
    struct raft_initial_state st = {0};
    int rc;
    if ((rc = store_log_get_term(rt->log, &st.term)) != 0 ||
        (rc = store_log_get_vote(rt->log, &st.vote)) != 0) {
        snprintf(err, errlen, "reading term and vote: %s", rfs_strerror(rc));
        return RAFT_ESTORAGE;
    }
    uint64_t si = 0, stt = 0;
    rc = store_log_get_snapshot_meta(rt->log, &si, &stt);
    if (rc != 0 && rc != RFS_ENOTFOUND) {
        snprintf(err, errlen, "reading the snapshot record: %s", rfs_strerror(rc));
        return RAFT_ESTORAGE;
    }
    if (si != 0) {
        if ((rc = store_snapshot_open(rt->snaps, si, stt, &rt->reader)) != 0) {
            char msg[256];
            snprintf(err, errlen, "opening snapshot %llu/%llu: %s (%s)", (unsigned long long)si,
                     (unsigned long long)stt, rfs_strerror(rc),
                     store_snapshot_errmsg(rt->snaps, msg, sizeof msg));
            return RAFT_ESTORAGE;
        }
        const struct store_snapshot_meta *m = store_snapshot_reader_meta(rt->reader);
        st.snapshot.index = si;
        st.snapshot.term = stt;
        st.snapshot.size = store_snapshot_reader_size(rt->reader);
        if (m->config_len > 0 &&
            raft_configuration_decode(m->config, m->config_len, &st.snapshot.conf) != 0) {
            snprintf(err, errlen, "snapshot %llu holds an unreadable configuration",
                     (unsigned long long)si);
            return RAFT_ESTORAGE;
        }
    }
    uint64_t applied = 0, applied_term = 0;
    char why[512];
    if ((rc = rt->cfg.fsm.applied(rt->cfg.fsm.ctx, &applied, &applied_term)) != 0) {
        rt__fsm_error(rt, rc, why, sizeof why);
        snprintf(err, errlen, "reading the state machine's applied index: %s", why);
        return RAFT_ESTORAGE;
    }
    if (applied < si) {
        /* The log was reset for an installed snapshot, but the state machine was not replaced
         * before a crash: finish the install. */
        rt__log(rt, RAFT_LOG_INFO, "restoring the state machine from snapshot %llu/%llu",
                (unsigned long long)si, (unsigned long long)stt);
        if ((rc = rt->cfg.fsm.restore(rt->cfg.fsm.ctx, rt->snaps, si, stt)) != 0) {
            rt__fsm_error(rt, rc, why, sizeof why);
            snprintf(err, errlen, "restoring snapshot %llu: %s", (unsigned long long)si, why);
            return RAFT_ESTORAGE;
        }
        applied = si;
    }
    struct raft_entry *entries;
    size_t n;
    if ((rc = load_log(rt, &entries, &n, err, errlen)) != 0)
        return rc;
    uint8_t boot_buf[2 + RAFT_MAX_SERVERS * (10 + RAFT_ADDRESS_MAX)];
    struct raft_entry boot;
    bool is_new = st.term == 0 && n == 0 && si == 0 && applied == 0;
    if (is_new && rt->cfg.bootstrap != NULL) {
        if ((rc = raft_bootstrap_entry(rt->cfg.bootstrap, boot_buf, &boot)) != 0) {
            snprintf(err, errlen, "bootstrap configuration: %s", raft_strerror(rc));
            return rc;
        }
        struct store_log_entry se = {.index = boot.index,
                                     .term = boot.term,
                                     .type = boot.type,
                                     .len = boot.len,
                                     .payload = boot.data};
        if ((rc = store_log_append(rt->log, &se, 1)) != 0) {
            snprintf(err, errlen, "writing the bootstrap configuration: %s", rfs_strerror(rc));
            free_entries(entries, n);
            return RAFT_ESTORAGE;
        }
        free(entries);
        entries = rt__copy_entries(&boot, 1);
        n = entries != NULL ? 1 : 0;
        rt__log(rt, RAFT_LOG_INFO, "bootstrapped a new cluster of %u servers",
                rt->cfg.bootstrap->n);
    } else if (!is_new && rt->cfg.bootstrap != NULL) {
        rt__log(rt, RAFT_LOG_INFO, "the node has state: bootstrap ignored");
    }
    if ((rc = store_log_get_epoch(rt->log, &rt->epoch)) != 0) {
        snprintf(err, errlen, "reading the cluster epoch: %s", rfs_strerror(rc));
        free_entries(entries, n);
        return RAFT_ESTORAGE;
    }
    if (is_new && rt->cfg.epoch != 0 && rt->epoch == 0) {
        if ((rc = store_log_set_epoch(rt->log, rt->cfg.epoch)) != 0) {
            snprintf(err, errlen, "recording the cluster epoch: %s", rfs_strerror(rc));
            free_entries(entries, n);
            return RAFT_ESTORAGE;
        }
        rt->epoch = rt->cfg.epoch;
    } else if (rt->cfg.epoch != 0 && rt->cfg.epoch != rt->epoch) {
        rt__log(rt, RAFT_LOG_WARN, "the node has state of cluster epoch %llu: epoch %llu ignored",
                (unsigned long long)rt->epoch, (unsigned long long)rt->cfg.epoch);
    }
    st.entries = entries;
    st.n_entries = n;
    st.applied = applied;
    st.commit = applied;
    struct raft_options o = rt->cfg.options;
    o.id = rt->cfg.id;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    o.seed = rt->cfg.id * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
    rc = raft_new(&o, &st, &rt->core);
    free_entries(entries, n);
    if (rc != 0) {
        snprintf(err, errlen, "starting the consensus core: %s", raft_strerror(rc));
        return rc;
    }
    atomic_store(&rt->applied, applied);
    return 0;
}

/* A data directory serves one cluster: its name is recorded at the first start (or the first
 * start of a build that knows the record), and a start under another name is refused before
 * anything is written, so two clusters never mix their logs by a mistyped --data-dir. */
static int check_cluster_id(struct raft_runtime *rt, char *err, size_t errlen)
{
    char recorded[STORE_LOG_CLUSTER_ID_MAX + 1];
    int rc = store_log_get_cluster_id(rt->log, recorded);
    if (rc == RFS_ENOTFOUND) {
        if ((rc = store_log_set_cluster_id(rt->log, rt->cluster_id)) == 0)
            return 0;
        snprintf(err, errlen, "recording the cluster ID in %s: %s", rt->data_dir, rfs_strerror(rc));
        return rc == RFS_EINVAL ? RAFT_EINVAL : RAFT_ESTORAGE;
    }
    if (rc != 0) {
        snprintf(err, errlen, "reading the cluster ID of %s: %s", rt->data_dir, rfs_strerror(rc));
        return RAFT_ESTORAGE;
    }
    if (strcmp(recorded, rt->cluster_id) != 0) {
        snprintf(err, errlen,
                 "the data directory %s belongs to cluster '%s', not to cluster '%s': start it "
                 "with its own cluster ID or use another data directory",
                 rt->data_dir, recorded, rt->cluster_id);
        return RAFT_EINVAL;
    }
    return 0;
}

static void *loop_main(void *arg)
{
    struct raft_runtime *rt = arg;
    rt__loop_run(rt->loop);
    return NULL;
}

static void destroy(struct raft_runtime *rt)
{
    if (rt->transport != NULL)
        raft__transport_free(rt->transport);
    raft__tls_ctx_free(rt->tls);
    if (rt->loop != NULL)
        rt__loop_free(rt->loop);
    raft_free(rt->core);
    store_snapshot_reader_close(rt->reader);
    store_snapshot_receive_abort(rt->receiver);
    store_snapshot_dir_close(rt->snaps);
    store_log_close(rt->log);
    struct rfs_qlink *l;
    while ((l = rfs_queue_pop(&rt->events)) != NULL) {
        struct rt_event *e = RFS_QUEUE_ITEM(l, struct rt_event, link);
        rt__frames_free(&e->frames);
        if (!e->is_embedded)
            free(e);
    }
    rt__table_free(&rt->requests); /* empty: every request completed */
    pthread_mutex_destroy(&rt->lock);
    pthread_mutex_destroy(&rt->events_lock);
    rt__worker_destroy(&rt->writer);
    rt__worker_destroy(&rt->apply);
    free(rt->data_dir);
    free(rt->listen);
    free(rt->cluster_id);
    free(rt->tls_ca);
    free(rt->tls_cert);
    free(rt->tls_key);
    free(rt);
}

int raft_runtime_start(const struct raft_runtime_config *cfg, struct raft_runtime **out, char *err,
                       size_t errlen)
{
    snprintf(err, errlen, "out of memory");
    if (cfg->id == 0 || cfg->data_dir == NULL || cfg->cluster_id == NULL ||
        cfg->fsm.apply == NULL || cfg->fsm.applied == NULL || cfg->fsm.snapshot == NULL ||
        cfg->fsm.restore == NULL) {
        snprintf(err, errlen, "incomplete runtime configuration");
        return RAFT_EINVAL;
    }
    size_t id_len = strlen(cfg->cluster_id);
    if (id_len == 0 || id_len > RAFT_CLUSTER_ID_MAX || strchr(cfg->cluster_id, '/') != NULL) {
        /* Before anything is written: a bootstrap must not record an ID it cannot use. */
        snprintf(err, errlen, "cluster ID '%s': want 1 to %d bytes, no '/'", cfg->cluster_id,
                 RAFT_CLUSTER_ID_MAX);
        return RAFT_EINVAL;
    }
    struct raft_runtime *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        return RAFT_ENOMEM;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_mutex_init(&rt->events_lock, NULL);
    rt__worker_init(&rt->writer);
    rt__worker_init(&rt->apply);
    atomic_store(&rt->next_id, 1);
    rt->cfg = *cfg;
    rt->data_dir = strdup(cfg->data_dir);
    rt->listen = dup_or_null(cfg->listen);
    rt->cluster_id = strdup(cfg->cluster_id);
    rt->tls_ca = dup_or_null(cfg->tls_ca);
    rt->tls_cert = dup_or_null(cfg->tls_cert);
    rt->tls_key = dup_or_null(cfg->tls_key);
    rt->tick_ms = cfg->tick_ms ? cfg->tick_ms : DEFAULT_TICK_MS;
    if (rt->data_dir == NULL || rt->cluster_id == NULL) {
        destroy(rt);
        return RAFT_ENOMEM;
    }
    if (rt->cfg.options.election_ticks == 0)
        raft_options_default(&rt->cfg.options, cfg->id);

    int rv = RAFT_ESTORAGE;
    char msg[256];
    if (mkdir(rt->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "creating %s: %s", rt->data_dir, strerror(errno));
        goto err;
    }
    char *log_dir = join_path(rt->data_dir, "log");
    char *snap_dir = join_path(rt->data_dir, "snapshots");
    if (log_dir == NULL || snap_dir == NULL) {
        free(log_dir);
        free(snap_dir);
        rv = RAFT_ENOMEM;
        goto err;
    }
    struct store_log_options lo = {.map_size = cfg->log_map_size, .map_size_max = cfg->log_map_max};
    int rc = store_log_open(log_dir, &lo, &rt->log, msg, sizeof msg);
    if (rc == 0)
        rc = store_snapshot_dir_open(snap_dir, NULL, &rt->snaps, msg, sizeof msg);
    free(log_dir);
    free(snap_dir);
    if (rc != 0) {
        snprintf(err, errlen, "%s", msg);
        goto err;
    }
    if ((rv = check_cluster_id(rt, err, errlen)) != 0)
        goto err;
    if ((rv = open_state(rt, err, errlen)) != 0)
        goto err;

    if ((rv = rt__loop_new(&rt->loop)) != 0) {
        snprintf(err, errlen, "creating the event loop: %s", strerror(errno));
        goto err;
    }
    if ((rv = raft__tls_ctx_new(rt->tls_ca, rt->tls_cert, rt->tls_key, &rt->tls, err, errlen)) != 0)
        goto err;
    /* Peers of another cluster, or of this cluster before a recovery, are refused when they
     * connect: the transport compares this identity. */
    char identity[RAFT__CLUSTER_ID_MAX + 1];
    int idlen = snprintf(identity, sizeof identity, "%s/%llu", rt->cluster_id,
                         (unsigned long long)rt->epoch);
    _Static_assert(RAFT_CLUSTER_ID_MAX + 21 <= RAFT__CLUSTER_ID_MAX,
                   "the transport's identity holds the cluster ID, '/' and a 20-digit epoch");
    if (idlen < 0 || (size_t)idlen >= sizeof identity) {
        snprintf(err, errlen, "cluster identity '%s/%llu' too long", rt->cluster_id,
                 (unsigned long long)rt->epoch);
        rv = RAFT_EINVAL;
        goto err;
    }
    struct raft__transport_config tc = {
        .id = cfg->id,
        .cluster_id = identity,
        .listen_address = rt->listen,
        .tls = rt->tls,
        .max_frame_bytes = (uint32_t)cfg->max_frame_bytes,
        .seed = cfg->id,
        .recv = rt__recv_cb,
        .log = transport_log,
        .data = rt,
    };
    if ((rv = raft__transport_new(rt->loop, &tc, &rt->transport)) != 0) {
        snprintf(err, errlen, "listening on %s: %s", rt->listen ? rt->listen : "(none)",
                 rv == RAFT_EIO ? strerror(errno) : raft_strerror(rv));
        goto err;
    }
    if (cfg->transport_faults != NULL &&
        (rv = raft__transport_faults_parse(rt->transport, cfg->transport_faults, err, errlen)) != 0)
        goto err;
    for (unsigned i = 0; cfg->peers != NULL && i < cfg->peers->n; i++) {
        const struct raft_server *p = &cfg->peers->servers[i];
        if (p->id != cfg->id &&
            (rv = raft__transport_peer_set(rt->transport, p->id, p->address)) != 0) {
            snprintf(err, errlen, "peer %llu at \"%s\": %s", (unsigned long long)p->id, p->address,
                     raft_strerror(rv));
            goto err;
        }
    }
    if ((rv = rt__loop_prepare(rt)) != 0)
        goto err;
    if ((rv = rt__worker_start(&rt->writer, rt__writer_main, rt)) != 0)
        goto err;
    if ((rv = rt__worker_start(&rt->apply, rt__apply_main, rt)) != 0) {
        rt__worker_stop(&rt->writer);
        goto err;
    }
    /* Said before the loop thread owns the core and the status. */
    rt__log(rt, RAFT_LOG_INFO, "node %llu started: term %llu, log up to %llu, applied %llu",
            (unsigned long long)cfg->id, (unsigned long long)raft_term(rt->core),
            (unsigned long long)rt->status.last_index, (unsigned long long)rt->status.applied);
    if (pthread_create(&rt->loop_thread, NULL, loop_main, rt) != 0) {
        rt__worker_stop(&rt->apply);
        rt__worker_stop(&rt->writer);
        rv = RAFT_ENOMEM;
        goto err;
    }
    err[0] = '\0';
    *out = rt;
    return 0;

err:
    destroy(rt);
    return rv;
}

void raft_runtime_stop(struct raft_runtime *rt)
{
    pthread_mutex_lock(&rt->lock);
    rt->is_stopping = true;
    pthread_mutex_unlock(&rt->lock);
    rt__loop_stop(rt->loop);
    pthread_join(rt->loop_thread, NULL);
    rt__calls_fail(rt);
    /* The loop is gone; the other threads finish what they hold, then everything left fails. */
    rt__snapshot_join(rt);
    rt__worker_stop(&rt->apply);
    rt__worker_stop(&rt->writer);
    rt__fail_all(rt, RAFT_ESHUTDOWN);
    rt__log(rt, RAFT_LOG_INFO, "node %llu stopped", (unsigned long long)rt->cfg.id);
    destroy(rt);
}
