/* Proposing a store command and the errno of its outcome: the one place where a command is
 * encoded for the runtime and where RAFT_E* and RFS_E* codes become errno values. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "fs/node/propose.h"
#include "lib/error.h"
#include "store/command.h"
#include "store/fsm.h"

int fs__read_errno(int rc)
{
    if (rc > 0 && rc < RFS_ERROR_BASE)
        return rc;
    return EIO;
}

/* errno for a completed proposal (fs__proposal_result); result may be NULL. */
static int proposal_errno(int status, const struct raft_apply_result *result)
{
    if (status == 0) {
        if (result == NULL || result->status == 0)
            return 0;
        return result->status > 0 && result->status < RFS_ERROR_BASE ? result->status : EIO;
    }
    switch (status) {
    /* The cluster cannot commit now: no leader, no quorum before the deadline, a leader change
     * overwrote the entry, or this node is stopping. Writes are refused as on a read-only
     * filesystem. After RAFT_ETIMEDOUT and RAFT_ELEADERSHIPLOST the change may still be applied
     * later (the outcome is unknown). */
    case RAFT_ENOTLEADER:
    case RAFT_ETIMEDOUT:
    case RAFT_ELEADERSHIPLOST:
    case RAFT_ENOTAPPLIED:
    case RAFT_ESHUTDOWN: return EROFS;
    case RAFT_ETOOBIG: return EFBIG;
    case RAFT_ENOMEM: return ENOMEM;
    default: return EIO;
    }
}

int fs__proposal_result(int status, struct raft_apply_result *result, struct store_fsm_result *out)
{
    int err = proposal_errno(status, result);
    if (out != NULL && err == 0) {
        if (result != NULL && result->data != NULL && result->len == sizeof *out)
            *out = *(const struct store_fsm_result *)result->data;
        else
            err = EIO;
    }
    if (result != NULL)
        free(result->data);
    return err;
}

void fs__now(struct store_cmd *cmd)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cmd->time_sec = ts.tv_sec;
    cmd->time_nsec = (uint32_t)ts.tv_nsec;
}

int fs__propose(struct raft_runtime *rt, unsigned timeout_ms, const struct store_cmd *cmd,
                raft_done_fn done, void *arg)
{
    size_t size = store_cmd_encoded_size(cmd);
    if (size == 0)
        return cmd->data_len > STORE_CMD_MAX_ENCODED ? EFBIG : EINVAL;
    if (size > STORE_CMD_MAX_ENCODED)
        return EFBIG;
    uint8_t *buf = malloc(size);
    if (buf == NULL)
        return ENOMEM;
    size_t len;
    int rc = store_cmd_encode(cmd, buf, size, &len);
    if (rc != 0) {
        free(buf);
        return EINVAL;
    }
    rc = raft_runtime_propose(rt, buf, len, timeout_ms, done, arg);
    free(buf);
    return rc == 0 ? 0 : proposal_errno(rc, NULL);
}
