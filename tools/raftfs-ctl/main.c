/* raftfs-ctl: the administration tool of raftfs. Dispatches from a table of subcommands, one
 * file per group; see raftfs-ctl(8). */
#include <stdio.h>
#include <string.h>

#include "tools/raftfs-ctl/ctl.h"

static const struct ctl_command commands[] = {
    {"tls", ctl_tls, "init|issue ...", "create a cluster CA and node certificates"},
};

void ctl_print_table(FILE *f, const char *prefix, const struct ctl_command *table, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "usage: raftfs-ctl %s%s%s %s\n", prefix, *prefix ? " " : "", table[i].name,
                table[i].usage);
    fprintf(f, "\n");
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "  %-10s %s\n", table[i].name, table[i].description);
}

int ctl_dispatch(const char *prefix, const struct ctl_command *table, unsigned n, int argc,
                 char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        ctl_print_table(stdout, prefix, table, n);
        return CTL_OK;
    }
    for (unsigned i = 0; argc >= 1 && i < n; i++)
        if (strcmp(argv[0], table[i].name) == 0)
            return table[i].run(argc, argv);
    if (argc >= 1)
        fprintf(stderr, "raftfs-ctl: unknown command '%s%s%s'\n", prefix, *prefix ? " " : "",
                argv[0]);
    ctl_print_table(stderr, prefix, table, n);
    return CTL_USAGE;
}

int main(int argc, char **argv)
{
    return ctl_dispatch("", commands, sizeof commands / sizeof commands[0], argc - 1, argv + 1);
}
