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

/* Report dir/base.crt and dir/base.key written, then more; v (owned, or NULL) gets "files". */
static int created(const struct ctl_opts *o, const char *dir, const char *base, const char *more,
                   json_t *v)
{
    char crt[4200], key[4200], done[8500];
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, base);
    snprintf(key, sizeof key, "%s/%s.key", dir, base);
    snprintf(done, sizeof done, "created %s and %s%s", crt, key, more);
    if (v == NULL)
        v = json_object();
    ctl_json_set(&v, "files", json_pack("[o, o]", ctl_json_text(crt), ctl_json_text(key)));
    return ctl_done(o, v, done);
}

int ctl_tls_init(const struct ctl_opts *o)
{
    const char *dir = o->ops[0];
    char err[RAFT_TLS_ERROR_MAX];
    int rv = raft_tls_ca_create(dir, o->is_forced, err, sizeof err);
    if (rv != 0)
        return tls_fail(o, rv, err);
    return created(o, dir, "ca", "\nkeep ca.key secret; copy ca.crt to every node", NULL);
}

int ctl_tls_issue(const struct ctl_opts *o)
{
    struct raft_tls_issue_options io = {
        .ips = o->ips,
        .n_ips = o->n_ips,
        .dns_names = o->dns,
        .n_dns_names = o->n_dns,
        .force = o->is_forced,
    };
    const char *dir = o->ops[0];
    uint64_t id;
    int rv = ctl_id_operand(o, o->ops[1], &id);
    if (rv != CTL_OK)
        return rv;
    char err[RAFT_TLS_ERROR_MAX];
    if ((rv = raft_tls_node_issue(dir, id, &io, err, sizeof err)) != 0)
        return tls_fail(o, rv, err);
    char base[24], what[64];
    snprintf(base, sizeof base, "%" PRIu64, id);
    snprintf(what, sizeof what, " for " RAFT_TLS_NODE_PREFIX "%" PRIu64, id);
    return created(o, dir, base, what, json_pack("{s:I}", "node", CTL_JI(id)));
}
