/* raftfsd's settings (raftfs.conf(5)): the defaults, the configuration file and the command line.
 * Both sources go through the same setters, so a value is checked the same way wherever it
 * comes from, and every refusal names where the value came from, the key and the reason. */
#ifndef RAFTFSD_CONFIG_H
#define RAFTFSD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/fs.h"
#include "raft/raft.h"
#include "raft/runtime/runtime.h"

#define CONFIG_DEFAULT_FILE   "/etc/raftfs/raftfs.conf"
#define CONFIG_MAX_FILE_BYTES (1024 * 1024) /* a larger configuration file is refused */

/* Every key of the file; each but CONFIG_MOUNTPOINT is also the long option --NAME (the mount
 * point is the last argument on the command line). */
enum config_key {
    CONFIG_ID,
    CONFIG_DATA_DIR,
    CONFIG_LISTEN,
    CONFIG_PEER, /* repeatable */
    CONFIG_BOOTSTRAP,
    CONFIG_CLUSTER_ID,
    CONFIG_TLS_CA,
    CONFIG_TLS_CERT,
    CONFIG_TLS_KEY,
    CONFIG_CTL_SOCKET,
    CONFIG_OP_TIMEOUT,
    CONFIG_SESSION_TIMEOUT,
    CONFIG_LOCK_DELAY,
    CONFIG_CONSISTENCY,
    CONFIG_LEASE_READS,
    CONFIG_MAX_FILE_SIZE,
    CONFIG_MAX_SIZE,
    CONFIG_FUSE_OPTIONS,
    CONFIG_LOG_LEVEL, /* the one setting SIGHUP rereads */
    CONFIG_MOUNTPOINT,
    CONFIG_N_KEYS
};

/* Where a setting was given: line `line` of `file`, or the command line when file is NULL. */
struct config_origin {
    const char *file;
    unsigned line;
};

/* The settings of one raftfsd. Strings are borrowed: from argv, or from the file's text, which
 * the struct owns (config_free). */
struct args {
    uint64_t id;          /* 0 until set; required */
    const char *data_dir; /* required */
    const char *listen;   /* HOST:PORT; required */
    struct raft_configuration peers;
    bool bootstrap;
    const char *cluster_id;
    const char *tls_ca, *tls_cert, *tls_key; /* required */
    const char *ctl_socket;                  /* the control socket of raftfs-ctl */
    unsigned op_timeout_ms;
    unsigned session_timeout_ms; /* lock sessions: silence after which the leader ends one */
    unsigned lock_delay_ms;      /* how long an ended session's locks keep blocking others */
    enum fs_consistency consistency;
    bool lease_reads; /* the leader answers read barriers from its lease */
    uint64_t max_file_size;
    uint64_t max_size;        /* the state machine's space limit, recorded when it is created */
    const char *fuse_options; /* extra -o options, or NULL */
    enum raft_log_level log_level; /* lines of a lower priority are not written */
    const char *mountpoint;        /* required */

    const char *config_file; /* the file read, or NULL (borrowed) */
    char *text;              /* that file's contents, owned; values point into it */
    struct config_origin origin[CONFIG_N_KEYS];
    bool is_set[CONFIG_N_KEYS]; /* given by the file or the command line (see origin) */
};

/* The defaults: nothing owned yet. */
void config_init(struct args *a);

/* Free what a owns (the file's text): every string that came from the file dies with it. */
void config_free(struct args *a);

/* The name of a key, as in the file and as the long option without its dashes. */
const char *config_key_name(enum config_key key);

/* A yes/no key: a flag without argument on the command line (the value "yes"). */
bool config_key_is_flag(enum config_key key);

/* The name of a log level as log-level takes it ("error", "warn", "info", "debug"). */
const char *config_log_level_name(enum raft_log_level level);

/* Check value for key and store it in a, replacing an earlier value (the first --peer from
 * another origin than the earlier peers replaces them all). value and file are borrowed for
 * the life of a. Returns 0, or RFS_EINVAL with "ORIGIN KEY VALUE: reason" in err (errlen bytes)
 * and a unchanged. */
int config_set(struct args *a, enum config_key key, const char *value, const char *file,
               unsigned line, char *err, size_t errlen);

/* Parse the text of a configuration file named file (len bytes, need not be NUL-terminated):
 * "key = value" lines, blank lines and lines starting with '#'. Keys may not repeat, except
 * peer. The text is copied and owned by a; file is borrowed. At most once per a. Returns 0; or
 * RFS_EINVAL (any bad line: "FILE:LINE: ..." in err) or RFS_ENOMEM, with a unchanged. */
int config_parse(struct args *a, const char *file, const char *text, size_t len, char *err,
                 size_t errlen);

/* Read and parse the file at path. A missing file is not an error when is_optional (0 is
 * returned and a is unchanged). Returns as config_parse does, or RFS_EIO if the file cannot be
 * read; err names the file. */
int config_load(struct args *a, const char *path, bool is_optional, char *err, size_t errlen);

/* Once every source is applied: check that the required settings are there, that the TLS
 * files are regular files and the mount point a directory, and that this node's own peer entry
 * matches listen; with bootstrap, add this node to the peers if it is not one. Returns 0 or
 * RFS_EINVAL with a message in err. */
int config_check(struct args *a, char *err, size_t errlen);

#endif
