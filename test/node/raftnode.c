/* raftnode: one Raft node with the real runtime, transport and inode state machine, but no
 * FUSE, for the end-to-end tests of the runtime (test/bats). It serves a line-based control
 * socket; `raftnode ctl SOCKET COMMAND...` is its client. Not installed.
 *
 *   raftnode --id N --data DIR --listen HOST:PORT --tls-dir DIR --socket PATH
 *            [--peer ID=HOST:PORT]... [--bootstrap] [--cluster-id NAME]
 *            [--election-ticks N] [--snapshot-threshold N] [--snapshot-trailing N]
 *            [--lease-reads]
 *   raftnode ctl SOCKET COMMAND [ARG]...
 *   raftnode recover --data DIR --peer ID=HOST:PORT...   (offline: force this configuration)
 *
 * Commands: status; stats; digest; count; lookup NAME; propose NAME (create NAME exclusively in the
 * root directory); read (a ReadIndex barrier); add-voter ID ADDR; add-learner ID ADDR; remove ID;
 * demote ID; transfer ID; snapshot; verify (raft_runtime_verify: "ok index=I equal=yes|no
 * nodes=ID:ok|ERROR,..."); faults [SPEC]... (replace the transport's fault hooks:
 * "drop:ID" and "delay:ID:MS" items, none to heal; raft_runtime_set_faults). Answers are one
 * line: "ok ..." or "error ...". */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fs/node/replica.h"
#include "raft/runtime/runtime.h"
#include "store/command.h"
#include "lib/error.h"
#include "store/fsm.h"

static volatile sig_atomic_t is_stopping;
static atomic_int active_conns; /* connection threads still running */

static void on_signal(int sig)
{
    (void)sig;
    is_stopping = 1;
}

struct node {
    struct raft_runtime *rt;
    struct store_fsm *fsm;
    struct fs_replica rep;
    uint64_t id;
};

/* --- waiting for a completion --------------------------------------------------------------- */

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool is_done;
    int status;
    struct store_fsm_result result;
    bool has_result;
    struct raft_runtime_verify *verify; /* verify_done_cb's result, malloc'd */
};

static void done_cb(void *arg, int status, struct raft_apply_result *result)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = status;
    if (status == 0 && result != NULL && result->data != NULL) {
        memcpy(&w->result, result->data, sizeof w->result);
        w->has_result = true;
        w->status = result->status;
    }
    if (result != NULL)
        free(result->data);
    w->is_done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void verify_done_cb(void *arg, int status, struct raft_apply_result *result)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = status;
    if (status == 0) {
        w->verify = result->data;
        result->data = NULL;
    }
    w->is_done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void waiter_init(struct waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
}

/* Wait for the callback (which always comes: the runtime guarantees it). */
static int waiter_wait(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->is_done)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    return w->status;
}

static const char *status_text(int status)
{
    if (status >= 2000)
        return raft_strerror(status);
    if (status >= 1000)
        return rfs_strerror(status);
    return strerror(status);
}

/* --- commands --------------------------------------------------------------------------------- */

static void answer_status(struct node *n, char *out, size_t len)
{
    struct raft_runtime_status s;
    raft_runtime_status(n->rt, &s);
    int off = snprintf(out, len,
                       "ok id=%llu role=%s term=%llu leader=%llu commit=%llu applied=%llu "
                       "last=%llu snapshot=%llu error=%d voters=",
                       (unsigned long long)s.id, raft_role_name(s.role), (unsigned long long)s.term,
                       (unsigned long long)s.leader, (unsigned long long)s.commit,
                       (unsigned long long)s.applied, (unsigned long long)s.last_index,
                       (unsigned long long)s.snapshot_index, s.error);
    for (unsigned i = 0; i < s.n_peers && off < (int)len; i++)
        if (s.peers[i].suffrage == RAFT_VOTER)
            off += snprintf(out + off, len - (size_t)off, "%s%llu", i ? "," : "",
                            (unsigned long long)s.peers[i].id);
    if (off < (int)len)
        off += snprintf(out + off, len - (size_t)off, " learners=");
    bool first = true;
    for (unsigned i = 0; i < s.n_peers && off < (int)len; i++)
        if (s.peers[i].suffrage == RAFT_LEARNER) {
            off += snprintf(out + off, len - (size_t)off, "%s%llu", first ? "" : ",",
                            (unsigned long long)s.peers[i].id);
            first = false;
        }
}

static void answer_stats(struct node *n, char *out, size_t len)
{
    struct raft_runtime_stats s;
    raft_runtime_stats(n->rt, &s);
    snprintf(out, len,
             "ok proposals=%llu failed=%llu reads=%llu log_commits=%llu log_entries=%llu "
             "applied=%llu commit_p50_us=%llu commit_p99_us=%llu fsync_p50_us=%llu "
             "fsync_p99_us=%llu apply_p50_us=%llu snapshots=%llu installed=%llu",
             (unsigned long long)s.proposals, (unsigned long long)s.proposals_failed,
             (unsigned long long)s.reads, (unsigned long long)s.log_commits,
             (unsigned long long)s.log_entries, (unsigned long long)s.applied_entries,
             (unsigned long long)raft_histogram_percentile(&s.commit, 50),
             (unsigned long long)raft_histogram_percentile(&s.commit, 99),
             (unsigned long long)raft_histogram_percentile(&s.fsync, 50),
             (unsigned long long)raft_histogram_percentile(&s.fsync, 99),
             (unsigned long long)raft_histogram_percentile(&s.apply, 50),
             (unsigned long long)s.snapshots_taken, (unsigned long long)s.snapshots_installed);
}

static void answer_digest(struct node *n, char *out, size_t len)
{
    /* The digest and the applied index must describe the same state: retry until apply
     * did not move in between. */
    for (int tries = 0; tries < 100; tries++) {
        uint64_t before, after;
        uint8_t d[STORE_FSM_DIGEST_SIZE];
        if (store_fsm_applied(n->fsm, &before, NULL) != 0 || store_fsm_digest(n->fsm, d) != 0 ||
            store_fsm_applied(n->fsm, &after, NULL) != 0)
            break;
        if (before != after)
            continue;
        int off = snprintf(out, len, "ok applied=%llu digest=", (unsigned long long)after);
        for (size_t i = 0; i < sizeof d && off + 3 < (int)len; i++)
            off += snprintf(out + off, len - (size_t)off, "%02x", d[i]);
        return;
    }
    snprintf(out, len, "error digest unavailable");
}

static int count_cb(void *arg, const char *name, size_t name_len, uint64_t ino, uint32_t type,
                    uint64_t next)
{
    (void)name;
    (void)name_len;
    (void)ino;
    (void)type;
    (void)next;
    (*(unsigned long *)arg)++;
    return 0;
}

static void answer_count(struct node *n, char *out, size_t len)
{
    unsigned long count = 0;
    int rc = store_fsm_readdir(n->fsm, 1, 0, count_cb, &count);
    if (rc != 0)
        snprintf(out, len, "error %s", status_text(rc));
    else
        snprintf(out, len, "ok count=%lu", count);
}

static void answer_lookup(struct node *n, const char *name, char *out, size_t len)
{
    struct store_fsm_attr attr;
    int rc = store_fsm_lookup(n->fsm, 1, name, strlen(name), &attr);
    if (rc != 0)
        snprintf(out, len, "error %s", status_text(rc));
    else
        snprintf(out, len, "ok ino=%llu", (unsigned long long)attr.ino);
}

static void answer_propose(struct node *n, const char *name, char *out, size_t len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct store_cmd c = {.type = STORE_CMD_CREATE,
                          .time_sec = now.tv_sec,
                          .time_nsec = (uint32_t)now.tv_nsec,
                          .ino = 1,
                          .flags = STORE_CMD_EXCL,
                          .mode = 0644,
                          .name = name,
                          .name_len = strlen(name)};
    uint8_t buf[512];
    size_t blen;
    if (store_cmd_encode(&c, buf, sizeof buf, &blen) != 0) {
        snprintf(out, len, "error cannot encode");
        return;
    }
    struct waiter w;
    waiter_init(&w);
    int rc = raft_runtime_propose(n->rt, buf, blen, 0, done_cb, &w);
    if (rc != 0) {
        snprintf(out, len, "error %s", status_text(rc));
        return;
    }
    rc = waiter_wait(&w);
    if (rc != 0)
        snprintf(out, len, "error %s", status_text(rc));
    else
        snprintf(out, len, "ok ino=%llu", (unsigned long long)w.result.ino);
}

static void answer_verify(struct node *n, char *out, size_t len)
{
    struct waiter w;
    waiter_init(&w);
    int rc = raft_runtime_verify(n->rt, 30000, verify_done_cb, &w);
    if (rc == 0)
        rc = waiter_wait(&w);
    if (rc != 0) {
        snprintf(out, len, "error %s", status_text(rc));
        return;
    }
    const struct raft_runtime_verify *v = w.verify;
    bool is_equal = v->n > 0;
    for (unsigned i = 0; i < v->n; i++)
        if (v->nodes[i].status != 0 ||
            memcmp(v->nodes[i].digest, v->nodes[0].digest, RAFT_DIGEST_SIZE) != 0)
            is_equal = false;
    int off = snprintf(out, len, "ok index=%llu equal=%s nodes=", (unsigned long long)v->index,
                       is_equal ? "yes" : "no");
    for (unsigned i = 0; i < v->n && off < (int)len; i++)
        off += snprintf(out + off, len - (size_t)off, "%s%llu:%s", i ? "," : "",
                        (unsigned long long)v->nodes[i].id,
                        v->nodes[i].status == 0 ? "ok" : status_text(v->nodes[i].status));
    free(w.verify);
}

static void answer_request(struct node *n, int kind, char **argv, int argc, char *out, size_t len)
{
    struct waiter w;
    waiter_init(&w);
    int rc;
    uint64_t id = argc > 0 ? strtoull(argv[0], NULL, 10) : 0;
    const char *addr = argc > 1 ? argv[1] : NULL;
    switch (kind) {
    case 'r': rc = raft_runtime_read_index(n->rt, 0, done_cb, &w); break;
    case 's': rc = raft_runtime_snapshot(n->rt, 0, done_cb, &w); break;
    case 't': rc = raft_runtime_transfer(n->rt, id, 0, done_cb, &w); break;
    default:
        rc = raft_runtime_change(n->rt, (enum raft_change_op)kind, id, addr, 0, 30000, done_cb, &w);
        break;
    }
    if (rc == 0)
        rc = waiter_wait(&w);
    if (rc != 0)
        snprintf(out, len, "error %s", status_text(rc));
    else
        snprintf(out, len, "ok");
}

/* faults SPEC...: the words joined by spaces are one spec; no word heals. */
static void answer_faults(struct node *n, char **argv, int argc, char *out, size_t len)
{
    char spec[1024] = "";
    size_t off = 0;
    for (int i = 0; i < argc; i++) {
        int w = snprintf(spec + off, sizeof spec - off, "%s%s", i > 0 ? " " : "", argv[i]);
        if (w < 0 || (size_t)w >= sizeof spec - off) {
            snprintf(out, len, "error fault spec too long");
            return;
        }
        off += (size_t)w;
    }
    char err[256];
    int rc = raft_runtime_set_faults(n->rt, spec, err, sizeof err);
    if (rc != 0)
        snprintf(out, len, "error %s", err);
    else
        snprintf(out, len, "ok faults=%s", off > 0 ? spec : "none");
}

#define MAX_ARGS 64

static void execute(struct node *n, char *line, char *out, size_t len)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *tok = strtok(line, " \t\r\n"); tok != NULL && argc < MAX_ARGS;
         tok = strtok(NULL, " \t\r\n"))
        argv[argc++] = tok;
    if (argc == 0) {
        snprintf(out, len, "error empty command");
        return;
    }
    const char *cmd = argv[0];
    if (strcmp(cmd, "status") == 0)
        answer_status(n, out, len);
    else if (strcmp(cmd, "stats") == 0)
        answer_stats(n, out, len);
    else if (strcmp(cmd, "digest") == 0)
        answer_digest(n, out, len);
    else if (strcmp(cmd, "count") == 0)
        answer_count(n, out, len);
    else if (strcmp(cmd, "lookup") == 0 && argc == 2)
        answer_lookup(n, argv[1], out, len);
    else if (strcmp(cmd, "propose") == 0 && argc == 2)
        answer_propose(n, argv[1], out, len);
    else if (strcmp(cmd, "read") == 0)
        answer_request(n, 'r', argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "snapshot") == 0)
        answer_request(n, 's', argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "transfer") == 0)
        answer_request(n, 't', argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "add-voter") == 0 && argc == 3)
        answer_request(n, RAFT_CHANGE_ADD_VOTER, argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "add-learner") == 0 && argc == 3)
        answer_request(n, RAFT_CHANGE_ADD_LEARNER, argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "remove") == 0 && argc == 2)
        answer_request(n, RAFT_CHANGE_REMOVE, argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "demote") == 0 && argc == 2)
        answer_request(n, RAFT_CHANGE_DEMOTE, argv + 1, argc - 1, out, len);
    else if (strcmp(cmd, "verify") == 0)
        answer_verify(n, out, len);
    else if (strcmp(cmd, "faults") == 0)
        answer_faults(n, argv + 1, argc - 1, out, len);
    else
        snprintf(out, len, "error unknown command or arguments: %s", cmd);
}

/* --- the control socket ----------------------------------------------------------------------- */

struct conn {
    struct node *node;
    int fd;
};

static void *serve_conn(void *arg)
{
    struct conn *c = arg;
    char line[1024];
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = read(c->fd, line + n, sizeof line - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(line, '\n', n) != NULL)
            break;
    }
    line[n] = '\0';
    char out[2048];
    execute(c->node, line, out, sizeof out);
    size_t len = strlen(out);
    out[len++] = '\n';
    if (write(c->fd, out, len) != (ssize_t)len) {
        /* the client went away */
    }
    close(c->fd);
    free(c);
    atomic_fetch_sub(&active_conns, 1);
    return NULL;
}

static int listen_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "raftnode: socket path too long: %s\n", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        fprintf(stderr, "raftnode: socket %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int client(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: raftnode ctl SOCKET COMMAND [ARG]...\n");
        return 2;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", argv[0]);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "raftnode ctl: %s: %s\n", argv[0], strerror(errno));
        return 1;
    }
    char line[1024];
    int off = 0;
    for (int i = 1; i < argc && off < (int)sizeof line - 2; i++)
        off += snprintf(line + off, sizeof line - (size_t)off, "%s%s", i > 1 ? " " : "", argv[i]);
    line[off++] = '\n';
    if (write(fd, line, (size_t)off) != off) {
        close(fd);
        return 1;
    }
    char out[4096];
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(fd, out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    close(fd);
    fputs(out, stdout);
    return strncmp(out, "ok", 2) == 0 ? 0 : 1;
}

static void log_cb(void *ctx, enum raft_log_level level, const char *text)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    struct node *n = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "%lld.%03ld node %llu %s: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
            (unsigned long long)n->id, names[level], text);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: raftnode --id N --data DIR --listen HOST:PORT --tls-dir DIR --socket PATH\n"
            "                [--peer ID=HOST:PORT]... [--bootstrap] [--cluster-id NAME]\n"
            "                [--election-ticks N] [--snapshot-threshold N] "
            "[--snapshot-trailing N] [--epoch N]\n"
            "                [--lease-reads] [--fsm-map-size BYTES]\n"
            "       raftnode ctl SOCKET COMMAND [ARG]...\n"
            "       raftnode recover --data DIR --peer ID=HOST:PORT...\n");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ctl") == 0)
        return client(argc - 2, argv + 2);

    struct node node = {0};
    const char *data = NULL, *listen_addr = NULL, *tls_dir = NULL, *sock = NULL;
    const char *cluster = "raftfs-test";
    bool bootstrap = false;
    bool is_recover = argc > 1 && strcmp(argv[1], "recover") == 0;
    uint64_t epoch = 0, fsm_map_size = 0;
    struct raft_configuration conf = {0};
    struct raft_options opts;
    raft_options_default(&opts, 1);
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 'i'},
        {"data", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"tls-dir", required_argument, NULL, 't'},
        {"socket", required_argument, NULL, 's'},
        {"peer", required_argument, NULL, 'p'},
        {"bootstrap", no_argument, NULL, 'b'},
        {"cluster-id", required_argument, NULL, 'c'},
        {"election-ticks", required_argument, NULL, 'e'},
        {"snapshot-threshold", required_argument, NULL, 'T'},
        {"snapshot-trailing", required_argument, NULL, 'R'},
        {"epoch", required_argument, NULL, 'E'},
        {"lease-reads", no_argument, NULL, 'L'},
        /* The state machine's LMDB map, far below its space limit: makes the map fill up
         * before the limit, which the sizing rule is there to prevent. */
        {"fsm-map-size", required_argument, NULL, 'M'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    if (is_recover) {
        argv++;
        argc--;
    }
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i': node.id = strtoull(optarg, NULL, 10); break;
        case 'd': data = optarg; break;
        case 'l': listen_addr = optarg; break;
        case 't': tls_dir = optarg; break;
        case 's': sock = optarg; break;
        case 'b': bootstrap = true; break;
        case 'c': cluster = optarg; break;
        case 'e': opts.election_ticks = (unsigned)atoi(optarg); break;
        case 'L': opts.lease_reads = true; break;
        case 'T': opts.snapshot_threshold = strtoull(optarg, NULL, 10); break;
        case 'R': opts.snapshot_trailing = strtoull(optarg, NULL, 10); break;
        case 'E': epoch = strtoull(optarg, NULL, 10); break;
        case 'M': fsm_map_size = strtoull(optarg, NULL, 10); break;
        case 'p': {
            const char *eq = strchr(optarg, '=');
            if (eq == NULL || conf.n >= RAFT_MAX_SERVERS || strlen(eq + 1) >= RAFT_ADDRESS_MAX) {
                fprintf(stderr, "raftnode: bad --peer %s (want ID=HOST:PORT)\n", optarg);
                return 2;
            }
            struct raft_server *s = &conf.servers[conf.n++];
            s->id = strtoull(optarg, NULL, 10);
            s->suffrage = RAFT_VOTER;
            strcpy(s->address, eq + 1);
            break;
        }
        default: usage(); return 2;
        }
    }
    if (is_recover) {
        if (data == NULL || conf.n == 0) {
            usage();
            return 2;
        }
        char err[512];
        uint64_t new_epoch;
        if (raft_runtime_recover(data, &conf, &new_epoch, err, sizeof err) != 0) {
            fprintf(stderr, "raftnode recover: %s\n", err);
            return 1;
        }
        printf("recovered %s as a cluster of %u; epoch %llu\n", data, conf.n,
               (unsigned long long)new_epoch);
        return 0;
    }
    if (node.id == 0 || data == NULL || listen_addr == NULL || tls_dir == NULL || sock == NULL) {
        usage();
        return 2;
    }
    if (opts.heartbeat_ticks >= opts.election_ticks)
        opts.heartbeat_ticks = opts.election_ticks / 10 ? opts.election_ticks / 10 : 1;
    if (bootstrap && raft_configuration_get(&conf, node.id) == NULL) {
        struct raft_server *s = &conf.servers[conf.n++];
        s->id = node.id;
        s->suffrage = RAFT_VOTER;
        snprintf(s->address, sizeof s->address, "%s", listen_addr);
    }

    char fsm_dir[4096], ca[4096], cert[4096], key[4096];
    snprintf(fsm_dir, sizeof fsm_dir, "%s/fsm", data);
    snprintf(ca, sizeof ca, "%s/ca.crt", tls_dir);
    snprintf(cert, sizeof cert, "%s/%llu.crt", tls_dir, (unsigned long long)node.id);
    snprintf(key, sizeof key, "%s/%llu.key", tls_dir, (unsigned long long)node.id);
    if (mkdir(data, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "raftnode: %s: %s\n", data, strerror(errno));
        return 1;
    }
    /* As raftfsd, but for the map size. */
    struct store_fsm_options fo = {.unsynced_apply = true, .map_size = fsm_map_size};
    char fsm_err[256];
    int rc = store_fsm_open(fsm_dir, &fo, &node.fsm, fsm_err, sizeof fsm_err);
    if (rc != 0) {
        fprintf(stderr, "raftnode: state machine %s: %s (%s)\n", fsm_dir, fsm_err,
                rfs_strerror(rc));
        return 1;
    }
    if (store_fsm_was_emptied(node.fsm))
        fprintf(stderr, "raftnode: state machine %s emptied after a machine crash\n", fsm_dir);
    struct raft_runtime_config cfg = {
        .id = node.id,
        .data_dir = data,
        .listen = listen_addr,
        .cluster_id = cluster,
        .tls_ca = ca,
        .tls_cert = cert,
        .tls_key = key,
        .options = opts,
        .bootstrap = bootstrap ? &conf : NULL,
        .peers = &conf,
        .epoch = epoch,
        .log = log_cb,
        .log_ctx = &node,
        .transport_faults = getenv("RAFTFS_TRANSPORT_FAULTS"),
    };
    fs_replica_init(&node.rep, node.fsm);
    fs_replica_fsm(&node.rep, &cfg.fsm);
    char err[512];
    rc = raft_runtime_start(&cfg, &node.rt, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "raftnode: %s\n", err);
        store_fsm_close(node.fsm);
        return 1;
    }
    int lfd = listen_socket(sock);
    if (lfd < 0) {
        raft_runtime_stop(node.rt);
        store_fsm_close(node.fsm);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!is_stopping) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* EINTR on a signal: the loop condition decides */
        struct conn *c = malloc(sizeof *c);
        pthread_t t;
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->node = &node;
        c->fd = fd;
        atomic_fetch_add(&active_conns, 1);
        if (pthread_create(&t, NULL, serve_conn, c) != 0) {
            atomic_fetch_sub(&active_conns, 1);
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    close(lfd);
    unlink(sock);
    raft_runtime_stop(node.rt); /* completes every request: connection threads finish */
    for (int i = 0; i < 500 && atomic_load(&active_conns) > 0; i++)
        usleep(10000);
    store_fsm_close(node.fsm);
    fs_replica_destroy(&node.rep);
    return 0;
}
