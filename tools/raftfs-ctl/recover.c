/* `raftfs-ctl recover`: offline recovery of a node after the permanent loss of a quorum
 * (raft_runtime_recover; docs/runtime.md, "Forced recovery and the cluster epoch"). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tools/raftfs-ctl/ctl.h"

/* Whether a daemon answers on the control socket: recovering a log in use would be undone. */
static bool daemon_answers(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return false;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool is_up = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return is_up;
}

int ctl_recover(const struct ctl_opts *o)
{
    struct raft_configuration conf = {0};
    if (o->data_dir == NULL || o->n_peers == 0)
        return ctl_fail(o, CTL_USAGE, "--data-dir and at least one --peer are required");
    if (o->n_peers > RAFT_MAX_SERVERS)
        return ctl_fail(o, CTL_USAGE, "at most %d --peer options", RAFT_MAX_SERVERS);
    for (unsigned i = 0; i < o->n_peers; i++) {
        const char *p = o->peers[i], *eq = strchr(p, '=');
        char id[24];
        size_t n = eq != NULL ? (size_t)(eq - p) : 0;
        struct raft_server *s = &conf.servers[conf.n];
        if (n > 0 && n < sizeof id) {
            memcpy(id, p, n);
            id[n] = '\0';
        }
        if (n == 0 || n >= sizeof id || ctl_parse_id(id, &s->id) != 0)
            return ctl_fail(o, CTL_USAGE, "--peer %s: want ID=HOST:PORT", p);
        int rc = ctl_check_address(o, "--peer", eq + 1);
        if (rc != CTL_OK)
            return rc;
        if (raft_configuration_get(&conf, s->id) != NULL)
            return ctl_fail(o, CTL_USAGE, "--peer %s: this ID was given twice", p);
        s->suffrage = RAFT_VOTER;
        strcpy(s->address, eq + 1); /* checked to fit */
        conf.n++;
    }
    if (daemon_answers(o->socket))
        return ctl_fail(o, CTL_ERROR,
                        "a raftfsd answers on %s: stop it first (recovery is offline)", o->socket);
    char err[512];
    uint64_t epoch;
    const char *dir = o->data_dir;
    if (raft_runtime_recover(dir, &conf, &epoch, err, sizeof err) != 0)
        return ctl_fail(o, CTL_ERROR, "%s", err);
    char done[4400];
    snprintf(done, sizeof done,
             "recovered %s as a cluster of %u voter%s; cluster epoch is now %" PRIu64 "\n"
             "start raftfsd on it again; servers of the old configuration will be refused",
             dir, conf.n, conf.n == 1 ? "" : "s", epoch);
    return ctl_done(o,
                    json_pack("{s:o, s:i, s:I}", "data_dir", ctl_json_text(dir), "voters", conf.n,
                              "epoch", CTL_JI(epoch)),
                    done);
}
