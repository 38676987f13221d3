/* `raftfs-ctl tls`: create a cluster CA and issue node certificates (raft/net/tls.h does the work,
 * through OpenSSL, without a shell or the openssl command). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "raft/net/tls.h"
#include "tools/raftfs-ctl/ctl.h"

#define MAX_NAMES 32

static int tls_init(const struct ctl_opts *o, int argc, char **argv);
static int tls_issue(const struct ctl_opts *opts, int argc, char **argv);

static const struct ctl_command tls_commands[] = {
    {"init", tls_init, "DIR [--force]",
     "create a cluster CA: DIR/ca.crt and DIR/ca.key (EC P-256, 10 years)"},
    {"issue", tls_issue, "DIR ID [--ip ADDR]... [--dns NAME]... [--force]",
     "issue the key and certificate of node ID: DIR/ID.crt and DIR/ID.key"},
};

int ctl_tls(const struct ctl_opts *o, int argc, char **argv)
{
    return ctl_dispatch(o, "tls", tls_commands, sizeof tls_commands / sizeof tls_commands[0],
                        argc - 1, argv + 1);
}

static int usage(int i, FILE *f)
{
    fprintf(f, "usage: raftfs-ctl tls %s %s\n", tls_commands[i].name, tls_commands[i].usage);
    return f == stdout ? CTL_OK : CTL_USAGE;
}

static int tls_init(const struct ctl_opts *o, int argc, char **argv)
{
    (void)o;
    static const struct option options[] = {
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool force = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "fh", options, NULL)) != -1) {
        switch (c) {
        case 'f': force = true; break;
        case 'h':
            usage(0, stdout);
            printf("\n%s.\n\n"
                   "  --force    replace an existing CA (every node certificate must then be\n"
                   "             issued again)\n",
                   tls_commands[0].description);
            return CTL_OK;
        default: return usage(0, stderr);
        }
    }
    if (argc - optind != 1)
        return usage(0, stderr);
    const char *dir = argv[optind];
    char err[RAFT_TLS_ERROR_MAX];
    int rv = raft_tls_ca_create(dir, force, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "raftfs-ctl: tls init: %s\n", err);
        return rv == RAFT_EINVAL ? CTL_USAGE : CTL_ERROR;
    }
    printf("created %s/ca.crt and %s/ca.key\n", dir, dir);
    printf("keep ca.key secret; copy ca.crt to every node\n");
    return CTL_OK;
}

static int tls_issue(const struct ctl_opts *opts, int argc, char **argv)
{
    (void)opts;
    static const struct option options[] = {
        {"ip", required_argument, NULL, 'i'},
        {"dns", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *ips[MAX_NAMES], *dns[MAX_NAMES];
    struct raft_tls_issue_options o = {.ips = ips, .dns_names = dns};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "i:d:fh", options, NULL)) != -1) {
        switch (c) {
        case 'i':
        case 'd':
            if ((c == 'i' ? o.n_ips : o.n_dns_names) == MAX_NAMES) {
                fprintf(stderr, "raftfs-ctl: tls issue: at most %d --%s options\n", MAX_NAMES,
                        c == 'i' ? "ip" : "dns");
                return CTL_USAGE;
            }
            if (c == 'i')
                ips[o.n_ips++] = optarg;
            else
                dns[o.n_dns_names++] = optarg;
            break;
        case 'f': o.force = true; break;
        case 'h':
            usage(1, stdout);
            printf("\n%s, signed by the CA in DIR.\n"
                   "The certificate names the node as raftfs-node-ID (CN and DNS name).\n\n"
                   "  --ip ADDR    also name this IPv4 or IPv6 address (repeatable)\n"
                   "  --dns NAME   also name this DNS name (repeatable)\n"
                   "  --force      replace existing files\n",
                   tls_commands[1].description);
            return CTL_OK;
        default: return usage(1, stderr);
        }
    }
    if (argc - optind != 2)
        return usage(1, stderr);
    const char *dir = argv[optind];
    uint64_t id;
    if (ctl_parse_id(argv[optind + 1], &id) != 0) {
        fprintf(stderr, "raftfs-ctl: tls issue: '%s' is not a node ID (a decimal number > 0)\n",
                argv[optind + 1]);
        return CTL_USAGE;
    }
    char err[RAFT_TLS_ERROR_MAX];
    int rv = raft_tls_node_issue(dir, id, &o, err, sizeof err);
    if (rv != 0) {
        fprintf(stderr, "raftfs-ctl: tls issue: %s\n", err);
        return rv == RAFT_EINVAL ? CTL_USAGE : CTL_ERROR;
    }
    printf("created %s/%" PRIu64 ".crt and %s/%" PRIu64 ".key for " RAFT_TLS_NODE_PREFIX "%" PRIu64
           "\n",
           dir, id, dir, id, id);
    return CTL_OK;
}
