/* `raftfs-ctl recover`: offline recovery of a node after the permanent loss of a quorum
 * (raft_runtime_recover; docs/runtime.md, "Forced recovery and the cluster epoch"). */
#include <getopt.h>
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

int ctl_recover(const struct ctl_opts *o, int argc, char **argv)
{
    static const struct option options[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"peer", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *dir = NULL;
    struct raft_configuration conf = {0};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'p': {
            const char *eq = strchr(optarg, '=');
            char id[24];
            size_t n = eq != NULL ? (size_t)(eq - optarg) : 0;
            struct raft_server *s = &conf.servers[conf.n];
            if (n > 0 && n < sizeof id) {
                memcpy(id, optarg, n);
                id[n] = '\0';
            }
            if (n == 0 || n >= sizeof id || ctl_parse_id(id, &s->id) != 0 ||
                strchr(eq + 1, ':') == NULL || strlen(eq + 1) >= sizeof s->address) {
                fprintf(stderr, "raftfs-ctl: recover: --peer %s: want ID=HOST:PORT\n", optarg);
                return CTL_USAGE;
            }
            if (raft_configuration_get(&conf, s->id) != NULL || conf.n == RAFT_MAX_SERVERS) {
                fprintf(stderr, "raftfs-ctl: recover: --peer %s: %s\n", optarg,
                        conf.n == RAFT_MAX_SERVERS ? "too many peers" : "this ID was given twice");
                return CTL_USAGE;
            }
            s->suffrage = RAFT_VOTER;
            strcpy(s->address, eq + 1);
            conf.n++;
            break;
        }
        case 'h':
            ctl_usage("recover", stdout);
            printf("\nRun it on a survivor with its raftfsd stopped; --peer lists the new\n"
                   "configuration, usually the survivor alone. Then start raftfsd again.\n");
            return CTL_OK;
        default: return ctl_usage("recover", stderr);
        }
    }
    if (dir == NULL || conf.n == 0 || optind != argc) {
        fprintf(stderr, "raftfs-ctl: recover: %s\n",
                optind != argc ? "unexpected arguments"
                               : "--data-dir and at least one --peer are required");
        return ctl_usage("recover", stderr);
    }
    if (daemon_answers(o->socket)) {
        fprintf(stderr,
                "raftfs-ctl: recover: a raftfsd answers on %s: stop it first (recovery is "
                "offline)\n",
                o->socket);
        return CTL_ERROR;
    }
    char err[512];
    uint64_t epoch;
    if (raft_runtime_recover(dir, &conf, &epoch, err, sizeof err) != 0) {
        fprintf(stderr, "raftfs-ctl: recover: %s\n", err);
        return CTL_ERROR;
    }
    printf("recovered %s as a cluster of %u voter%s; cluster epoch is now %" PRIu64 "\n", dir,
           conf.n, conf.n == 1 ? "" : "s", epoch);
    printf("start raftfsd on it again; servers of the old configuration will be refused\n");
    return CTL_OK;
}
