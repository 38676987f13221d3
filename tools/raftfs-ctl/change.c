/* `raftfs-ctl add-voter|add-nonvoter|remove|demote|transfer-leader|snapshot|faults`: the
 * commands that change the cluster. The local daemon forwards membership changes and transfers
 * to the leader; a snapshot is taken by the local node; faults (a test hook) cut the local
 * node's links. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/raftfs-ctl/ctl.h"

/* Send req; on success print done. Returns an exit status. */
static int run(const struct ctl_opts *o, const char *cmd, const struct ctl_msg *req,
               const char *done)
{
    struct ctl_msg resp;
    int rc = ctl_call(o, cmd, req, &resp);
    if (rc != CTL_OK)
        return rc;
    if (resp.type != CTL_RESP_OK) {
        fprintf(stderr, "raftfs-ctl: %s: unexpected answer '%s'\n", cmd, ctl_type_name(resp.type));
        return CTL_ERROR;
    }
    printf("%s\n", done);
    return CTL_OK;
}

static int change(const struct ctl_opts *o, int argc, char **argv, enum raft_change_op op)
{
    bool is_add = op == RAFT_CHANGE_ADD_VOTER || op == RAFT_CHANGE_ADD_LEARNER;
    struct ctl_msg req = {.type = CTL_REQ_CHANGE};
    int n;
    int rc =
        ctl_options(argc, argv, NULL, &req.change.expect_index, is_add ? 2 : 1, is_add ? 2 : 1, &n);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    req.change.op = op;
    if (ctl_parse_id(argv[1], &req.change.server) != 0) {
        fprintf(stderr, "raftfs-ctl: %s: '%s' is not a node ID (a decimal number > 0)\n", argv[0],
                argv[1]);
        return CTL_USAGE;
    }
    if (is_add) {
        const char *colon = strrchr(argv[2], ':');
        if (colon == NULL || colon == argv[2] || colon[1] == '\0' ||
            strlen(argv[2]) >= sizeof req.change.address) {
            fprintf(stderr, "raftfs-ctl: %s: '%s' is not HOST:PORT (at most %zu bytes)\n", argv[0],
                    argv[2], sizeof req.change.address - 1);
            return CTL_USAGE;
        }
        strcpy(req.change.address, argv[2]);
    }
    static const char *const what[] = {
        [RAFT_CHANGE_ADD_VOTER] = "added as a voter",
        [RAFT_CHANGE_ADD_LEARNER] = "added as a non-voter",
        [RAFT_CHANGE_REMOVE] = "removed",
        [RAFT_CHANGE_DEMOTE] = "demoted to non-voter",
    };
    char done[96];
    snprintf(done, sizeof done, "node %" PRIu64 " %s", req.change.server, what[op]);
    return run(o, argv[0], &req, done);
}

int ctl_add_voter(const struct ctl_opts *o, int argc, char **argv)
{
    return change(o, argc, argv, RAFT_CHANGE_ADD_VOTER);
}

int ctl_add_nonvoter(const struct ctl_opts *o, int argc, char **argv)
{
    return change(o, argc, argv, RAFT_CHANGE_ADD_LEARNER);
}

int ctl_remove(const struct ctl_opts *o, int argc, char **argv)
{
    return change(o, argc, argv, RAFT_CHANGE_REMOVE);
}

int ctl_demote(const struct ctl_opts *o, int argc, char **argv)
{
    return change(o, argc, argv, RAFT_CHANGE_DEMOTE);
}

int ctl_transfer_leader(const struct ctl_opts *o, int argc, char **argv)
{
    struct ctl_msg req = {.type = CTL_REQ_TRANSFER};
    int n;
    int rc = ctl_options(argc, argv, NULL, NULL, 0, 1, &n);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    if (n == 1 && ctl_parse_id(argv[1], &req.transfer.server) != 0) {
        fprintf(stderr, "raftfs-ctl: %s: '%s' is not a node ID (a decimal number > 0)\n", argv[0],
                argv[1]);
        return CTL_USAGE;
    }
    char done[96] = "leadership transferred to the most up-to-date voter";
    if (n == 1)
        snprintf(done, sizeof done, "leadership transferred to node %" PRIu64, req.transfer.server);
    return run(o, argv[0], &req, done);
}

int ctl_snapshot(const struct ctl_opts *o, int argc, char **argv)
{
    struct ctl_msg req = {.type = CTL_REQ_SNAPSHOT};
    int n;
    int rc = ctl_options(argc, argv, NULL, NULL, 0, 0, &n);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    return run(o, argv[0], &req, "snapshot taken");
}

int ctl_faults(const struct ctl_opts *o, int argc, char **argv)
{
    struct ctl_msg req = {.type = CTL_REQ_FAULTS};
    int n;
    int rc = ctl_options(argc, argv, NULL, NULL, 0, 32, &n);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    size_t len = 0;
    for (int i = 1; i <= n; i++) {
        size_t w = strlen(argv[i]);
        if (len + w + (i > 1) >= sizeof req.faults.spec) {
            fprintf(stderr, "raftfs-ctl: %s: the fault spec is longer than %zu bytes\n", argv[0],
                    sizeof req.faults.spec - 1);
            return CTL_USAGE;
        }
        if (i > 1)
            req.faults.spec[len++] = ' ';
        memcpy(req.faults.spec + len, argv[i], w);
        len += w;
    }
    return run(o, argv[0], &req, n > 0 ? "faults set" : "faults healed");
}
