/* raftfsd: the raftfs daemon. Starts the Raft runtime (mutual TLS, the log in DATA, the inode
 * state machine in DATA/fsm) and serves the filesystem at the mount point through FUSE, in the
 * foreground, until SIGTERM or SIGINT (man/raftfsd.8). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fs/fs.h"
#include "fs/replica.h"
#include "raft/raft.h"
#include "store/error.h"
#include "store/fsm.h"

#define USAGE                                                                                      \
    "usage: raftfsd --id ID --data-dir DIR --listen HOST:PORT [--peer ID=HOST:PORT]...\n"          \
    "               [--bootstrap] [--cluster-id NAME] --tls-ca FILE --tls-cert FILE\n"             \
    "               --tls-key FILE [--op-timeout SECONDS] [--consistency open|strict|local]\n"     \
    "               [--max-file-size BYTES] [--max-size BYTES] [-f] [-o OPTIONS] MOUNTPOINT\n"

struct args {
    uint64_t id;
    const char *data_dir;
    const char *listen;
    const char *cluster_id;
    const char *tls_ca, *tls_cert, *tls_key;
    bool bootstrap;
    struct raft_configuration peers;
    unsigned op_timeout_ms;
    enum fs_consistency consistency;
    uint64_t max_file_size;
    uint64_t max_size; /* the state machine's LMDB map size */
    const char *fuse_options;
    const char *mountpoint;
};

static int bad(const char *option, const char *value, const char *why)
{
    fprintf(stderr, "raftfsd: %s %s: %s\n", option, value != NULL ? value : "", why);
    return 2;
}

/* A decimal unsigned integer in [min, max]; 0 or an exit status after a message. */
static int parse_u64(const char *option, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return bad(option, s, "not a decimal number");
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return bad(option, s, "not a decimal number");
    if (v < min || v > max) {
        char why[96];
        snprintf(why, sizeof why, "out of range (%llu to %llu)", (unsigned long long)min,
                 (unsigned long long)max);
        return bad(option, s, why);
    }
    *out = v;
    return 0;
}

/* HOST:PORT with a non-empty host and a port in 1..65535. */
static int check_address(const char *option, const char *s)
{
    const char *colon = strrchr(s, ':');
    if (strlen(s) >= RAFT_ADDRESS_MAX)
        return bad(option, s, "address too long");
    if (colon == NULL || colon == s)
        return bad(option, s, "want HOST:PORT");
    uint64_t port;
    char *end;
    errno = 0;
    port = strtoull(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port == 0 || port > 65535)
        return bad(option, s, "the port must be a number from 1 to 65535");
    return 0;
}

static int check_file(const char *option, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return bad(option, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return bad(option, path, "not a regular file");
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"id", required_argument, NULL, 'i'},
        {"data-dir", required_argument, NULL, 'd'},
        {"listen", required_argument, NULL, 'l'},
        {"peer", required_argument, NULL, 'p'},
        {"bootstrap", no_argument, NULL, 'b'},
        {"cluster-id", required_argument, NULL, 'c'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"op-timeout", required_argument, NULL, 't'},
        {"consistency", required_argument, NULL, 'n'},
        {"max-file-size", required_argument, NULL, 'm'},
        {"max-size", required_argument, NULL, 's'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->cluster_id = "raftfs";
    a->op_timeout_ms = 5000;
    a->consistency = FS_CONSISTENCY_OPEN;
    a->max_file_size = STORE_FSM_DEFAULT_FILE_MAX;
    a->max_size = STORE_FSM_DEFAULT_MAP_SIZE;
    int ch, rc;
    uint64_t v;
    while ((ch = getopt_long(argc, argv, "fho:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'i':
            if ((rc = parse_u64("--id", optarg, 1, UINT64_MAX, &a->id)) != 0)
                return rc;
            break;
        case 'd': a->data_dir = optarg; break;
        case 'l':
            if ((rc = check_address("--listen", optarg)) != 0)
                return rc;
            a->listen = optarg;
            break;
        case 'p': {
            const char *eq = strchr(optarg, '=');
            if (eq == NULL)
                return bad("--peer", optarg, "want ID=HOST:PORT");
            char id[32];
            size_t n = (size_t)(eq - optarg);
            if (n == 0 || n >= sizeof id)
                return bad("--peer", optarg, "want ID=HOST:PORT with a numeric ID");
            memcpy(id, optarg, n);
            id[n] = '\0';
            if ((rc = parse_u64("--peer", id, 1, UINT64_MAX, &v)) != 0)
                return rc;
            if ((rc = check_address("--peer", eq + 1)) != 0)
                return rc;
            if (raft_configuration_get(&a->peers, v) != NULL)
                return bad("--peer", optarg, "this ID was already given");
            if (a->peers.n >= RAFT_MAX_SERVERS)
                return bad("--peer", optarg, "too many peers");
            struct raft_server *s = &a->peers.servers[a->peers.n++];
            s->id = v;
            s->suffrage = RAFT_VOTER;
            snprintf(s->address, sizeof s->address, "%s", eq + 1);
            break;
        }
        case 'b': a->bootstrap = true; break;
        case 'c':
            if (optarg[0] == '\0' || strlen(optarg) > 64 || strchr(optarg, '/') != NULL)
                return bad("--cluster-id", optarg, "want 1 to 64 characters, no '/'");
            a->cluster_id = optarg;
            break;
        case 'A': a->tls_ca = optarg; break;
        case 'C': a->tls_cert = optarg; break;
        case 'K': a->tls_key = optarg; break;
        case 't':
            if ((rc = parse_u64("--op-timeout", optarg, 1, 3600, &v)) != 0)
                return rc;
            a->op_timeout_ms = (unsigned)v * 1000;
            break;
        case 'n':
            if (strcmp(optarg, "open") == 0)
                a->consistency = FS_CONSISTENCY_OPEN;
            else if (strcmp(optarg, "strict") == 0)
                a->consistency = FS_CONSISTENCY_STRICT;
            else if (strcmp(optarg, "local") == 0)
                a->consistency = FS_CONSISTENCY_LOCAL;
            else
                return bad("--consistency", optarg, "want open, strict or local");
            break;
        case 'm':
            /* One file is committed as one log entry at most: the command format's limit. */
            if ((rc = parse_u64("--max-file-size", optarg, 1, STORE_FSM_DEFAULT_FILE_MAX,
                                &a->max_file_size)) != 0)
                return rc;
            break;
        case 's':
            /* At least room for the tables and the root; at most what a 64-bit map can take. */
            if ((rc = parse_u64("--max-size", optarg, 1 << 20, (uint64_t)1 << 44, &a->max_size)) !=
                0)
                return rc;
            break;
        case 'o': a->fuse_options = optarg; break;
        case 'f': break; /* the foreground is the only mode */
        case 'h': fputs(USAGE, stdout); exit(0);
        default: fputs(USAGE, stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "raftfsd: %s\n%s",
                optind >= argc ? "the mount point is missing" : "only one mount point", USAGE);
        return 2;
    }
    a->mountpoint = argv[optind];
    struct {
        const char *option;
        const void *value;
    } required[] = {
        {"--id", a->id ? "" : NULL}, {"--data-dir", a->data_dir}, {"--listen", a->listen},
        {"--tls-ca", a->tls_ca},     {"--tls-cert", a->tls_cert}, {"--tls-key", a->tls_key},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (required[i].value == NULL)
            return bad(required[i].option, NULL, "required");
    if ((rc = check_file("--tls-ca", a->tls_ca)) != 0 ||
        (rc = check_file("--tls-cert", a->tls_cert)) != 0 ||
        (rc = check_file("--tls-key", a->tls_key)) != 0)
        return rc;
    struct stat st;
    if (stat(a->mountpoint, &st) != 0)
        return bad("mount point", a->mountpoint, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return bad("mount point", a->mountpoint, "not a directory");
    const struct raft_server *self = raft_configuration_get(&a->peers, a->id);
    if (self != NULL && strcmp(self->address, a->listen) != 0)
        return bad("--peer", self->address, "this node's own entry differs from --listen");
    if (a->bootstrap && self == NULL) {
        if (a->peers.n >= RAFT_MAX_SERVERS)
            return bad("--peer", NULL, "too many peers");
        struct raft_server *s = &a->peers.servers[a->peers.n++];
        s->id = a->id;
        s->suffrage = RAFT_VOTER;
        snprintf(s->address, sizeof s->address, "%s", a->listen);
    }
    return 0;
}

static void log_cb(void *ctx, enum raft_log_level level, const char *text)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const struct args *a = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(stderr, "%lld.%03ld raftfsd %llu %s: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
            (unsigned long long)a->id, names[level], text);
}

int main(int argc, char **argv)
{
    struct args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        return rc;

    if (mkdir(a.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "raftfsd: --data-dir %s: %s\n", a.data_dir, strerror(errno));
        return 1;
    }
    char fsm_dir[4096];
    if ((size_t)snprintf(fsm_dir, sizeof fsm_dir, "%s/fsm", a.data_dir) >= sizeof fsm_dir)
        return bad("--data-dir", a.data_dir, "path too long");
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct store_fsm_options fo = {
        .map_size = a.max_size,
        .max_file_size = a.max_file_size,
        .root_time = {.sec = now.tv_sec, .nsec = (uint32_t)now.tv_nsec},
    };
    struct store_fsm *fsm;
    rc = store_fsm_open(fsm_dir, &fo, &fsm);
    if (rc != 0) {
        fprintf(stderr, "raftfsd: state machine %s: %s\n", fsm_dir, rfs_strerror(rc));
        return 1;
    }
    /* The limit recorded when the state machine was created wins over the option. */
    struct store_fsm_statfs sf;
    uint64_t max_file = a.max_file_size;
    if (store_fsm_statfs(fsm, &sf) == 0 && sf.max_file_size != 0)
        max_file = sf.max_file_size;

    struct raft_options ro;
    raft_options_default(&ro, a.id);
    /* A commit is one WRITE of up to a whole file: let such an entry through. Every node of a
     * cluster must use the same --max-file-size. */
    uint64_t entry_max = max_file + 64 * 1024;
    if (entry_max > ro.max_entry_bytes)
        ro.max_entry_bytes = (uint32_t)entry_max;
    uint64_t frame_max = (uint64_t)ro.max_entry_bytes + 1024 * 1024;
    struct raft_runtime_config cfg = {
        .id = a.id,
        .data_dir = a.data_dir,
        .listen = a.listen,
        .cluster_id = a.cluster_id,
        .tls_ca = a.tls_ca,
        .tls_cert = a.tls_cert,
        .tls_key = a.tls_key,
        .options = ro,
        .bootstrap = a.bootstrap ? &a.peers : NULL,
        .peers = &a.peers,
        .max_frame_bytes = frame_max > (64u << 20) ? frame_max : 0,
        .max_pending_bytes = 2 * frame_max > (64u << 20) ? 2 * frame_max : 0,
        .log = log_cb,
        .log_ctx = &a,
    };
    fs_replica_fsm(fsm, &cfg.fsm);
    struct raft_runtime *rt;
    char err[512];
    rc = raft_runtime_start(&cfg, &rt, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "raftfsd: %s\n", err);
        goto err_after_fsm;
    }
    struct fs_options opts = {
        .mountpoint = a.mountpoint,
        .fuse_options = a.fuse_options,
        .consistency = a.consistency,
        .op_timeout_ms = a.op_timeout_ms,
        .max_file_size = max_file,
    };
    struct fs *fs;
    rc = fs_mount(fsm, rt, &opts, &fs, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "raftfsd: %s\n", err);
        goto err_after_runtime;
    }
    log_cb(&a, RAFT_LOG_INFO, "mounted; serving until SIGTERM or SIGINT");
    rc = fs_run(fs);
    log_cb(&a, RAFT_LOG_INFO, rc == 0 ? "stopping" : "the FUSE session failed; stopping");
    /* Requests waiting for the cluster are answered (EROFS) while the session still exists. */
    raft_runtime_stop(rt);
    fs_close(fs);
    store_fsm_close(fsm);
    return rc == 0 ? 0 : 1;

err_after_runtime:
    raft_runtime_stop(rt);
err_after_fsm:
    store_fsm_close(fsm);
    return 1;
}
