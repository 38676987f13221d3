/* raftfs-ctl: the command table and the helpers shared by the files of the tool, one file per
 * subcommand group (main.c parses the command line, dispatches and talks to the daemon; tls.c
 * holds `raftfs-ctl tls ...`, cluster.c the commands that read the cluster's state, change.c
 * those that change it, recover.c the offline recovery). */
#ifndef RAFTFS_CTL_H
#define RAFTFS_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "tools/ctl/proto.h"

/* Exit statuses, documented in raftfs-ctl(8). */
enum {
    CTL_OK = 0,
    CTL_ERROR = 1,         /* the operation failed, or verify found digests that differ */
    CTL_USAGE = 2,         /* bad command line */
    CTL_UNREACHABLE = 3,   /* no daemon answers on the socket */
    CTL_DENIED = 4,        /* the daemon's socket is root-only */
    CTL_STORAGE = 5,       /* status, health: the node's storage failed */
    CTL_INCOMPLETE = 6,    /* verify: a member gave no digest; those that did agree */
    CTL_NOT_MEMBER = 7,    /* health: the node is not in the configuration */
    CTL_NO_LEADER = 8,     /* health: the node knows no leader */
    CTL_NO_QUORUM = 9,     /* health: the leader did not confirm a quorum in time */
    CTL_NOT_APPLYING = 10, /* health: this node did not apply what was committed in time */
};

/* The options of the command line, each a bit of ctl_opts.given and ctl_command.options.
 * --socket, --help, --json and --version are taken by every command. */
enum {
    CTL_OPT_SOCKET = 1u << 0,
    CTL_OPT_HELP = 1u << 1,
    CTL_OPT_JSON = 1u << 2,
    CTL_OPT_EXPECT_INDEX = 1u << 3,
    CTL_OPT_DATA_DIR = 1u << 4,
    CTL_OPT_PEER = 1u << 5,
    CTL_OPT_FORCE = 1u << 6,
    CTL_OPT_IP = 1u << 7,
    CTL_OPT_DNS = 1u << 8,
    CTL_OPT_VERSION = 1u << 9,
};

#define CTL_REPEAT_MAX 32 /* --peer, --ip and --dns may each be given this many times */

struct ctl_command;

/* The parsed command line. Strings are borrowed from argv. */
struct ctl_opts {
    const struct ctl_command *cmd; /* the command being run */
    unsigned given;                /* CTL_OPT_* bits of the options given */
    const char *socket;            /* the daemon's control socket */
    bool is_json;
    uint64_t expect_index; /* 0: no check */
    const char *data_dir;
    bool is_forced;
    unsigned n_peers, n_ips, n_dns;
    const char *peers[CTL_REPEAT_MAX]; /* --peer ID=HOST:PORT, unchecked */
    const char *ips[CTL_REPEAT_MAX];
    const char *dns[CTL_REPEAT_MAX];
    int n_ops; /* the command's operands: the words after its name */
    char **ops;
};

/* One command: run gets its operands in o->ops (between min and max of them) and returns an
 * exit status. */
struct ctl_command {
    const char *name;  /* one word, or a group and a word ("tls init") */
    const char *usage; /* what follows "raftfs-ctl ", as in the manual's SYNOPSIS */
    const char *description;
    int (*run)(const struct ctl_opts *o);
    unsigned options;    /* CTL_OPT_* it takes besides --socket and --help */
    int min, max;        /* how many operands */
    const char *details; /* more text for --help, or NULL */
};

/* Report a failure of o->cmd and return status: "raftfs-ctl: NAME: MESSAGE" on stderr, and for
 * CTL_USAGE the command's usage line after it. */
int ctl_fail(const struct ctl_opts *o, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A node ID: a decimal number > 0. Returns 0, or -1 for anything else. */
int ctl_parse_id(const char *s, uint64_t *id);

/* The node ID operand s into *id. Returns CTL_OK, or CTL_USAGE after a message. */
int ctl_id_operand(const struct ctl_opts *o, const char *s, uint64_t *id);

/* Check that s is an address a node can be reached at, as the transport parses it
 * (raft__address_parse: a numeric IPv4 address or a bracketed IPv6 one, a port from 1 to
 * 65535) and that it fits RAFT_ADDRESS_MAX. what names it in the message. Returns CTL_OK, or
 * CTL_USAGE after a message. */
int ctl_check_address(const struct ctl_opts *o, const char *what, const char *s);

/* Send req to the daemon at o->socket and read its response into *resp. Returns CTL_OK, or an
 * exit status after a message: CTL_UNREACHABLE (no daemon, or it closed or timed out without
 * answering), CTL_DENIED (not root), CTL_ERROR (the daemon answered with an error, or with
 * another type than want). When code is not NULL, an error answer is not reported: CTL_ERROR is
 * returned with its code in *code (0 when the daemon gave only a text, in resp->error.text) for
 * the caller to report; *code is left alone otherwise. */
int ctl_call(const struct ctl_opts *o, const struct ctl_msg *req, enum ctl_type want,
             struct ctl_msg *resp, int *code);

/* --- --json (json.c) ---------------------------------------------------------------------- */

/* A JSON integer of an unsigned value (json_pack's "I" wants a json_int_t). */
#define CTL_JI(x) ((json_int_t)(x))

/* A new JSON string of s (borrowed); bytes of 0x80 and above in text that is not UTF-8 become
 * U+FFFD. NULL when out of memory. The caller owns the reference. */
json_t *ctl_json_text(const char *s);

/* Print v (owned: it is released) on one line of stdout. NULL is out of memory, reported.
 * Returns CTL_OK, or an exit status. */
int ctl_json_print(const struct ctl_opts *o, json_t *v);

/* Append item (owned) to the array *a, or set key of the object *obj to value (owned). When
 * either is NULL (out of memory) or the call fails, both are released and *a or *obj is NULL,
 * which ctl_json_print reports: a builder can go on and check once at the end. */
void ctl_json_append(json_t **a, json_t *item);
void ctl_json_set(json_t **obj, const char *key, json_t *value);

/* The success of a command that changes something: message on stdout, or with --json the
 * object v (owned; NULL: an empty one) with "message" added. Returns an exit status. */
int ctl_done(const struct ctl_opts *o, json_t *v, const char *message);

/* The commands. */
int ctl_tls_init(const struct ctl_opts *o);
int ctl_tls_issue(const struct ctl_opts *o);
int ctl_status(const struct ctl_opts *o);
int ctl_members(const struct ctl_opts *o);
int ctl_health(const struct ctl_opts *o);
int ctl_stats(const struct ctl_opts *o);
int ctl_verify(const struct ctl_opts *o);
int ctl_locks(const struct ctl_opts *o);
int ctl_sessions(const struct ctl_opts *o);
int ctl_faults(const struct ctl_opts *o);
int ctl_add_voter(const struct ctl_opts *o);
int ctl_add_nonvoter(const struct ctl_opts *o);
int ctl_remove(const struct ctl_opts *o);
int ctl_demote(const struct ctl_opts *o);
int ctl_transfer_leader(const struct ctl_opts *o);
int ctl_snapshot(const struct ctl_opts *o);
int ctl_recover(const struct ctl_opts *o);

#endif
