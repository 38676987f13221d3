/* `raftfs-ctl tls`: create a cluster CA and issue node certificates (raft/net/tls.h does the work,
 * through OpenSSL, without a shell or the openssl command). */
#include <inttypes.h>
#include <stdio.h>

#include "raft/raft.h"
#include "raft/net/tls.h"
#include "tools/raftfs-ctl/ctl.h"

/* A refusal of raft/net/tls.h: RAFT_EINVAL is the caller's mistake. */
static int tls_fail(const struct ctl_opts *o, int rv, const char *err)
{
    return ctl_fail(o, rv == RAFT_EINVAL ? CTL_USAGE : CTL_ERROR, "%s", err);
}

int ctl_tls_init(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    const char *dir = argv[0];
    char err[RAFT_TLS_ERROR_MAX];
    int rv = raft_tls_ca_create(dir, o->is_forced, err, sizeof err);
    if (rv != 0)
        return tls_fail(o, rv, err);
    printf("created %s/ca.crt and %s/ca.key\n", dir, dir);
    printf("keep ca.key secret; copy ca.crt to every node\n");
    return CTL_OK;
}

int ctl_tls_issue(const struct ctl_opts *o, int argc, char **argv)
{
    (void)argc;
    struct raft_tls_issue_options io = {
        .ips = o->ips,
        .n_ips = o->n_ips,
        .dns_names = o->dns,
        .n_dns_names = o->n_dns,
        .force = o->is_forced,
    };
    const char *dir = argv[0];
    uint64_t id;
    int rv = ctl_id_operand(o, argv[1], &id);
    if (rv != CTL_OK)
        return rv;
    char err[RAFT_TLS_ERROR_MAX];
    if ((rv = raft_tls_node_issue(dir, id, &io, err, sizeof err)) != 0)
        return tls_fail(o, rv, err);
    printf("created %s/%" PRIu64 ".crt and %s/%" PRIu64 ".key for " RAFT_TLS_NODE_PREFIX "%" PRIu64
           "\n",
           dir, id, dir, id, id);
    return CTL_OK;
}
