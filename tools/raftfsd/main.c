/* raftfsd: the raftfs daemon. Starts the Raft runtime (mutual TLS, the log in DATA, the inode
 * state machine in DATA/fsm) and serves the filesystem at the mount point through FUSE, in the
 * foreground, until SIGTERM or SIGINT; SIGHUP rereads the log level (man/raftfsd.8). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "tools/ctl/proto.h"
#include "tools/ctl/version.h"
#include "fs/node/replica.h"
#include "raft/runtime/runtime.h"
#include "lib/error.h"
#include "store/fsm.h"
#include "tools/raftfsd/config.h"
#include "tools/raftfsd/ctl_server.h"
#include "tools/raftfsd/log.h"
#include "tools/raftfsd/sighup.h"

#define USAGE                                                                                      \
    "usage: raftfsd [-c FILE] [--id ID] [--data-dir DIR] [--listen HOST:PORT]\n"                   \
    "               [--peer ID=HOST:PORT]... [--bootstrap] [--cluster-id NAME]\n"                  \
    "               [--tls-ca FILE] [--tls-cert FILE] [--tls-key FILE] [--ctl-socket PATH]\n"      \
    "               [--op-timeout SECONDS] [--session-timeout SECONDS]\n"                          \
    "               [--lock-delay SECONDS] [--consistency open|strict|local] [--lease-reads]\n"    \
    "               [--max-file-size BYTES] [--max-size BYTES]\n"                                  \
    "               [--log-level error|warn|info|debug] [-f] [-o OPTIONS] [MOUNTPOINT]\n"          \
    "       raftfsd --version\n"

/* Options that are not settings: they get short codes; a setting gets 256 + its key. */
enum { OPT_KEY_BASE = 256 };

/* Fill a from the defaults, the configuration file (-c FILE, or the default one if it exists)
 * and the command line, which wins. Returns 0, or the exit status after a message. */
static int parse_args(int argc, char **argv, struct args *a)
{
    struct option longopts[CONFIG_N_KEYS + 5];
    unsigned n = 0;
    for (int k = 0; k < CONFIG_N_KEYS; k++)
        if (k != CONFIG_MOUNTPOINT) /* the last argument */
            longopts[n++] = (struct option){
                config_key_name((enum config_key)k),
                config_key_is_flag((enum config_key)k) ? no_argument : required_argument, NULL,
                OPT_KEY_BASE + k};
    longopts[n++] = (struct option){"config", required_argument, NULL, 'c'};
    longopts[n++] = (struct option){"foreground", no_argument, NULL, 'f'};
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n++] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    static const char shortopts[] = "c:fho:";

    config_init(a);
    /* First pass: the configuration file, whose settings the command line then overrides. */
    const char *file = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (ch == 'c')
            file = optarg;
        else if (ch == 'h') {
            fputs(USAGE, stdout);
            exit(0);
        } else if (ch == 'V') {
            ctl_version_print(stdout, "raftfsd", CTL_USED_BY_DAEMON);
            exit(0);
        } else if (ch == '?') {
            fputs(USAGE, stderr);
            return 2;
        }
    }
    char err[512];
    int rc = file != NULL ? config_load(a, file, false, err, sizeof err)
                          : config_load(a, CONFIG_DEFAULT_FILE, true, err, sizeof err);
    if (rc != 0)
        goto refused;

    optind = 0;
    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        if (ch >= OPT_KEY_BASE) {
            enum config_key key = (enum config_key)(ch - OPT_KEY_BASE);
            rc = config_set(a, key, config_key_is_flag(key) ? "yes" : optarg, NULL, 0, err,
                            sizeof err);
        } else if (ch == 'o') {
            rc = config_set(a, CONFIG_FUSE_OPTIONS, optarg, NULL, 0, err, sizeof err);
        }
        /* -c was read in the first pass; -f: the foreground is the only mode. */
        if (rc != 0)
            goto refused;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "raftfsd: only one mount point\n%s", USAGE);
        return 2;
    }
    if (optind < argc &&
        (rc = config_set(a, CONFIG_MOUNTPOINT, argv[optind], NULL, 0, err, sizeof err)) != 0)
        goto refused;
    if ((rc = config_check(a, err, sizeof err)) != 0)
        goto refused;
    return 0;

refused:
    fprintf(stderr, "raftfsd: %s\n", err);
    return 2;
}

int main(int argc, char **argv)
{
    struct args a;
    /* Before any thread starts, so that every thread inherits the block (sighup.h). */
    sighup_block();
    int rc = parse_args(argc, argv, &a);
    if (rc != 0)
        goto err_after_args;
    struct logger log;
    logger_init(&log, a.id, a.log_level);
    struct sighup hup;
    if (sighup_start(&hup, &log, &a) != 0) {
        fprintf(stderr, "raftfsd: cannot start the SIGHUP thread\n");
        rc = 1;
        goto err_after_args;
    }

    rc = 1;
    if (mkdir(a.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "raftfsd: data-dir %s: %s\n", a.data_dir, strerror(errno));
        goto err_after_hup;
    }
    char fsm_dir[4096]; /* config.c bounds a path to fewer than 4000 bytes */
    snprintf(fsm_dir, sizeof fsm_dir, "%s/fsm", a.data_dir);
    /* Every replica must create the same root (docs/disk-format.md): its times start at the
     * epoch, not at this node's clock, or no two nodes' state digests would ever agree. */
    struct store_fsm_options fo = {
        .max_file_size = a.max_file_size,
        .space_limit = a.max_size,
        .root_time = {.sec = 0, .nsec = 0},
        .unsynced_apply = true,
    };
    struct store_fsm *fsm;
    char fsm_err[256];
    rc = store_fsm_open(fsm_dir, &fo, &fsm, fsm_err, sizeof fsm_err);
    if (rc != 0) {
        fprintf(stderr, "raftfsd: state machine %s: %s (%s)\n", fsm_dir, fsm_err, rfs_strerror(rc));
        rc = 1;
        goto err_after_hup;
    }
    if (store_fsm_was_emptied(fsm))
        logger_write(
            &log, RAFT_LOG_WARN,
            "the state machine was open when the machine went down: emptied, to be rebuilt "
            "from the snapshot and the log");
    /* The limits recorded when the state machine was created win over the options. */
    struct store_fsm_statfs sf;
    uint64_t max_file = a.max_file_size;
    if (store_fsm_statfs(fsm, &sf) == 0 && sf.max_file_size != 0) {
        max_file = sf.max_file_size;
        if (sf.space_limit != a.max_size) {
            char text[4400];
            snprintf(text, sizeof text,
                     "max-size %llu ignored: the state machine %s records %llu, which every "
                     "node shares",
                     (unsigned long long)a.max_size, fsm_dir, (unsigned long long)sf.space_limit);
            logger_write(&log, RAFT_LOG_WARN, text);
        }
    }

    struct raft_options ro;
    raft_options_default(&ro, a.id);
    ro.lease_reads = a.lease_reads;
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
        .log = logger_write,
        .log_ctx = &log,
        /* Tests partition nodes through it (docs/transport.md, "Fault hooks"). */
        .transport_faults = getenv("RAFTFS_TRANSPORT_FAULTS"),
    };
    struct fs_replica rep;
    fs_replica_init(&rep, fsm);
    struct fs_locks *locks;
    if (fs_locks_new(a.id, logger_write, &log, &locks) != 0) {
        fprintf(stderr, "raftfsd: out of memory\n");
        goto err_after_replica;
    }
    fs_replica_on_wakeups(&rep, fs_locks_wakeups, locks);
    fs_replica_fsm(&rep, &cfg.fsm);
    struct raft_runtime *rt;
    char err[512];
    rc = raft_runtime_start(&cfg, &rt, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "raftfsd: %s\n", err);
        goto err_after_locks;
    }
    struct fs_locks_config lc = {.op_timeout_ms = a.op_timeout_ms,
                                 .session_timeout_ms = a.session_timeout_ms,
                                 .lock_delay_ms = a.lock_delay_ms};
    if (fs_locks_start(locks, rt, fsm, &lc) != 0) {
        fprintf(stderr, "raftfsd: cannot start the lock session thread\n");
        goto err_after_runtime;
    }
    struct ctl_server *ctl;
    if (ctl_server_start(a.ctl_socket, rt, fsm, locks, logger_write, &log, &ctl, err, sizeof err) !=
        0) {
        fprintf(stderr, "raftfsd: %s\n", err);
        goto err_after_runtime;
    }
    struct fs_options opts = {
        .mountpoint = a.mountpoint,
        .fuse_options = a.fuse_options,
        .consistency = a.consistency,
        .op_timeout_ms = a.op_timeout_ms,
        .max_file_size = max_file,
        .locks = locks,
    };
    struct fs *fs;
    rc = fs_mount(fsm, rt, &rep, &opts, &fs, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "raftfsd: %s\n", err);
        goto err_after_ctl;
    }
    logger_write(&log, RAFT_LOG_INFO, "mounted; serving until SIGTERM or SIGINT");
    rc = fs_run(fs);
    logger_write(&log, RAFT_LOG_INFO, rc == 0 ? "stopping" : "the FUSE session failed; stopping");
    ctl_server_stop(ctl);
    /* Requests waiting for the cluster are answered (parked locks ENOLCK, the rest EROFS)
     * while the FUSE session still exists. */
    fs_locks_stop(locks);
    raft_runtime_stop(rt);
    fs_close(fs);
    fs_locks_free(locks);
    fs_replica_destroy(&rep);
    store_fsm_close(fsm);
    sighup_stop(&hup);
    config_free(&a);
    return rc == 0 ? 0 : 1;

err_after_ctl:
    ctl_server_stop(ctl);
err_after_runtime:
    fs_locks_stop(locks);
    raft_runtime_stop(rt);
err_after_locks:
    fs_locks_free(locks);
err_after_replica:
    fs_replica_destroy(&rep);
    store_fsm_close(fsm);
    rc = 1;
err_after_hup:
    sighup_stop(&hup);
err_after_args:
    config_free(&a);
    return rc;
}
