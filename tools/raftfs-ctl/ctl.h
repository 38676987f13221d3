/* raftfs-ctl: the command table shared by the files of the tool, one file per subcommand group
 * (main.c dispatches; tls.c holds `raftfs-ctl tls ...`). */
#ifndef RAFTFS_CTL_H
#define RAFTFS_CTL_H

#include <stdio.h>

/* Exit statuses, documented in raftfs-ctl(8). */
enum {
    CTL_OK = 0,
    CTL_ERROR = 1,
    CTL_USAGE = 2,
};

/* One subcommand: argv[0] is its own name. Returns an exit status. */
struct ctl_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;       /* the arguments after the name, as in the SYNOPSIS */
    const char *description; /* one line */
};

/* Print "usage: raftfs-ctl PREFIX NAME USAGE" and the description of every command of a table
 * of n entries to f. */
void ctl_print_table(FILE *f, const char *prefix, const struct ctl_command *table, unsigned n);

/* Find name in table and run it with argv starting at the name; print the table and return
 * CTL_USAGE when there is no such command. --help and -h print the table to stdout. */
int ctl_dispatch(const char *prefix, const struct ctl_command *table, unsigned n, int argc,
                 char **argv);

/* `raftfs-ctl tls ...` (tls.c). */
int ctl_tls(int argc, char **argv);

#endif
