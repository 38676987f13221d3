/* `raftfs-ctl add-voter|add-nonvoter|remove|demote|transfer-leader|snapshot|faults`: the
 * commands that change the cluster. The local daemon forwards membership changes and transfers
 * to the leader; a snapshot is taken by the local node; faults (a test hook) cut the local
 * node's links. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "tools/raftfs-ctl/ctl.h"

/* Send req; on success report done with the JSON object v (owned, or NULL). Returns an exit
 * status. */
static int run(const struct ctl_opts *o, const struct ctl_msg *req, json_t *v, const char *done)
{
    struct ctl_msg resp;
    int rc = ctl_call(o, req, CTL_RESP_OK, &resp, NULL);
    if (rc != CTL_OK) {
        json_decref(v);
        return rc;
    }
    return ctl_done(o, v, done);
}

static int change(const struct ctl_opts *o, enum raft_change_op op)
{
    struct ctl_msg req = {.type = CTL_REQ_CHANGE};
    req.change.op = op;
    req.change.expect_index = o->expect_index;
    int rc = ctl_id_operand(o, o->ops[0], &req.change.server);
    if (rc != CTL_OK)
        return rc;
    if (op == RAFT_CHANGE_ADD_VOTER || op == RAFT_CHANGE_ADD_LEARNER) {
        if ((rc = ctl_check_address(o, "address", o->ops[1])) != CTL_OK)
            return rc;
        strcpy(req.change.address, o->ops[1]); /* checked to fit */
    }
    static const char *const what[] = {
        [RAFT_CHANGE_ADD_VOTER] = "added as a voter",
        [RAFT_CHANGE_ADD_LEARNER] = "added as a non-voter",
        [RAFT_CHANGE_REMOVE] = "removed",
        [RAFT_CHANGE_DEMOTE] = "demoted to non-voter",
    };
    char done[96];
    snprintf(done, sizeof done, "node %" PRIu64 " %s", req.change.server, what[op]);
    return run(o, &req, json_pack("{s:I}", "node", CTL_JI(req.change.server)), done);
}

int ctl_add_voter(const struct ctl_opts *o)
{
    return change(o, RAFT_CHANGE_ADD_VOTER);
}

int ctl_add_nonvoter(const struct ctl_opts *o)
{
    return change(o, RAFT_CHANGE_ADD_LEARNER);
}

int ctl_remove(const struct ctl_opts *o)
{
    return change(o, RAFT_CHANGE_REMOVE);
}

int ctl_demote(const struct ctl_opts *o)
{
    return change(o, RAFT_CHANGE_DEMOTE);
}

int ctl_transfer_leader(const struct ctl_opts *o)
{
    struct ctl_msg req = {.type = CTL_REQ_TRANSFER}, resp;
    int rc;
    if (o->n_ops == 1 && (rc = ctl_id_operand(o, o->ops[0], &req.transfer.server)) != CTL_OK)
        return rc;
    int code = -1;
    rc = ctl_call(o, &req, CTL_RESP_OK, &resp, &code);
    json_t *v = json_pack("{s:o?}", "node",
                          o->n_ops == 1 ? json_integer(CTL_JI(req.transfer.server)) : NULL);
    char done[96] = "leadership transferred to the most up-to-date voter";
    if (o->n_ops == 1)
        snprintf(done, sizeof done, "leadership transferred to node %" PRIu64, req.transfer.server);
    if (rc == CTL_OK) {
        ctl_json_set(&v, "already_leader", json_false());
        return ctl_done(o, v, done);
    }
    if (code == -1) {
        json_decref(v);
        return rc; /* reported */
    }
    /* The leader refuses a transfer to itself (RAFT_EINVAL): the target already leads, which is
     * what was asked for. */
    char text[CTL_TEXT_MAX];
    memcpy(text, resp.error.text, sizeof text);
    struct ctl_msg status = {.type = CTL_REQ_STATUS};
    if (code == RAFT_EINVAL && o->n_ops == 1 &&
        ctl_call(o, &status, CTL_RESP_STATUS, &resp, NULL) == CTL_OK &&
        resp.status.leader == req.transfer.server) {
        ctl_json_set(&v, "already_leader", json_true());
        snprintf(done, sizeof done, "node %" PRIu64 " already leads", req.transfer.server);
        return ctl_done(o, v, done);
    }
    json_decref(v);
    return ctl_fail(o, CTL_ERROR, "%s", text);
}

int ctl_snapshot(const struct ctl_opts *o)
{
    struct ctl_msg req = {.type = CTL_REQ_SNAPSHOT};
    return run(o, &req, NULL, "snapshot taken");
}

int ctl_faults(const struct ctl_opts *o)
{
    struct ctl_msg req = {.type = CTL_REQ_FAULTS};
    size_t len = 0;
    for (int i = 0; i < o->n_ops; i++) {
        size_t w = strlen(o->ops[i]);
        if (len + w + (i > 0) >= sizeof req.faults.spec)
            return ctl_fail(o, CTL_USAGE, "the fault spec is longer than %zu bytes",
                            sizeof req.faults.spec - 1);
        if (i > 0)
            req.faults.spec[len++] = ' ';
        memcpy(req.faults.spec + len, o->ops[i], w);
        len += w;
    }
    return run(o, &req, json_pack("{s:s}", "faults", req.faults.spec),
               o->n_ops > 0 ? "faults set" : "faults healed");
}
