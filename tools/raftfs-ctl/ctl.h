/* raftfs-ctl: the command table shared by the files of the tool, one file per subcommand group
 * (main.c dispatches and talks to the daemon; tls.c holds `raftfs-ctl tls ...`, cluster.c the
 * commands that read the cluster's state, change.c those that change it, recover.c the offline
 * recovery). */
#ifndef RAFTFS_CTL_H
#define RAFTFS_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/ctl/proto.h"

/* Exit statuses, documented in raftfs-ctl(8). */
enum {
    CTL_OK = 0,
    CTL_ERROR = 1,       /* the operation failed, or verify found a difference */
    CTL_USAGE = 2,       /* bad command line */
    CTL_UNREACHABLE = 3, /* no daemon answers on the socket */
    CTL_DENIED = 4,      /* the daemon's socket is root-only */
};

/* Options given before the command. */
struct ctl_opts {
    const char *socket; /* the daemon's control socket */
};

/* One subcommand: argv[0] is its own name. Returns an exit status. */
struct ctl_command {
    const char *name;
    int (*run)(const struct ctl_opts *o, int argc, char **argv);
    const char *usage;       /* the arguments after the name, as in the SYNOPSIS */
    const char *description; /* one line */
};

/* Print "usage: raftfs-ctl PREFIX NAME USAGE" and the description of every command of a table
 * of n entries to f. */
void ctl_print_table(FILE *f, const char *prefix, const struct ctl_command *table, unsigned n);

/* Find name in table and run it with argv starting at the name; print the table and return
 * CTL_USAGE when there is no such command. --help and -h print the table to stdout. */
int ctl_dispatch(const struct ctl_opts *o, const char *prefix, const struct ctl_command *table,
                 unsigned n, int argc, char **argv);

/* Print the usage line of command name to f (and its description if f is stdout). Returns
 * CTL_OK for stdout, CTL_USAGE otherwise. */
int ctl_usage(const char *name, FILE *f);

/* Parse the options of command argv[0]: --help, --json if json is not NULL, --expect-index N if
 * expect is not NULL. The operands, min to max of them, are moved to argv[1..] in their order
 * and counted in *n_operands. Returns CTL_OK; -1 after --help printed the usage (the command
 * then exits with CTL_OK); or CTL_USAGE after a message. */
int ctl_options(int argc, char **argv, bool *json, uint64_t *expect, int min, int max,
                int *n_operands);

/* A node ID: a decimal number > 0. Returns 0, or -1 for anything else. */
int ctl_parse_id(const char *s, uint64_t *id);

/* Send req to the daemon at o->socket and read its response into *resp. Returns CTL_OK, or an
 * exit status after a message naming cmd on stderr: CTL_UNREACHABLE (no daemon, or it closed
 * or timed out without answering), CTL_DENIED (not root), CTL_ERROR (the daemon answered with
 * an error). */
int ctl_call(const struct ctl_opts *o, const char *cmd, const struct ctl_msg *req,
             struct ctl_msg *resp);

/* Write s to f as a JSON string, quotes included. */
void ctl_json_string(FILE *f, const char *s);

/* The command groups. */
int ctl_tls(const struct ctl_opts *o, int argc, char **argv);
int ctl_status(const struct ctl_opts *o, int argc, char **argv);
int ctl_members(const struct ctl_opts *o, int argc, char **argv);
int ctl_stats(const struct ctl_opts *o, int argc, char **argv);
int ctl_verify(const struct ctl_opts *o, int argc, char **argv);
int ctl_locks(const struct ctl_opts *o, int argc, char **argv);
int ctl_sessions(const struct ctl_opts *o, int argc, char **argv);
int ctl_faults(const struct ctl_opts *o, int argc, char **argv);
int ctl_add_voter(const struct ctl_opts *o, int argc, char **argv);
int ctl_add_nonvoter(const struct ctl_opts *o, int argc, char **argv);
int ctl_remove(const struct ctl_opts *o, int argc, char **argv);
int ctl_demote(const struct ctl_opts *o, int argc, char **argv);
int ctl_transfer_leader(const struct ctl_opts *o, int argc, char **argv);
int ctl_snapshot(const struct ctl_opts *o, int argc, char **argv);
int ctl_recover(const struct ctl_opts *o, int argc, char **argv);

#endif
