/* Checkpoints and verify (docs/runtime.md, "Checkpoints and verify"): a checkpoint is a command
 * entry whose payload after the envelope is a reserved marker. Every node that applies one takes
 * the state machine's digest right after it, so all digests describe the state at the same log
 * index, and keeps the last RT_CHECKPOINTS of them. raft_runtime_verify commits a checkpoint and
 * then asks every member for its digest at that index:
 *
 *   DIGEST       u64 request id | u64 index
 *   DIGEST_RESP  u64 request id | u64 index | u32 status | 32 bytes digest (zero unless status 0)
 *
 * A member that has not applied the index yet answers RAFT_EBUSY and is asked again a few ticks
 * later, until the request's deadline. */
#include <stdlib.h>
#include <string.h>

#include "raft/runtime/internal.h"
#include "lib/le.h"

#define DIGEST_REQ  16
#define DIGEST_RESP (28 + RAFT_DIGEST_SIZE)

/* raft_runtime_propose refuses exactly these bytes, so no command can pass for a checkpoint;
 * the leading zero is never a valid first byte of a raftfs command (its version). */
static const uint8_t marker[8] = {0, 'c', 'h', 'e', 'c', 'k', 'p', 't'};

bool rt__is_checkpoint(const void *data, size_t len)
{
    return len == sizeof marker && memcmp(data, marker, sizeof marker) == 0;
}

int raft_runtime_verify(struct raft_runtime *rt, unsigned timeout_ms, raft_done_fn done, void *arg)
{
    return rt__propose(rt, RT_VERIFY, marker, sizeof marker, timeout_ms, done, arg);
}

void rt__checkpoint_record(struct raft_runtime *rt, uint64_t index)
{
    struct rt_checkpoint c = {.index = index, .status = RAFT_EINVAL};
    if (rt->cfg.fsm.digest != NULL) {
        int rc = rt->cfg.fsm.digest(rt->cfg.fsm.ctx, c.digest);
        c.status = rc == 0 ? 0 : RAFT_EIO;
        if (rc != 0)
            rt__log(rt, RAFT_LOG_ERROR, "checkpoint %llu: the state machine's digest failed (%d)",
                    (unsigned long long)index, rc);
    }
    pthread_mutex_lock(&rt->lock);
    rt->checkpoints[rt->checkpoint_next++ % RT_CHECKPOINTS] = c;
    pthread_mutex_unlock(&rt->lock);
}

/* With rt->lock held: this node's digest at index, or why there is none. */
static int lookup_locked(struct raft_runtime *rt, uint64_t index, uint8_t *digest)
{
    memset(digest, 0, RAFT_DIGEST_SIZE);
    for (unsigned i = 0; i < RT_CHECKPOINTS; i++) {
        const struct rt_checkpoint *c = &rt->checkpoints[i];
        if (c->index != index)
            continue;
        if (c->status == 0)
            memcpy(digest, c->digest, RAFT_DIGEST_SIZE);
        return c->status;
    }
    /* Not applied yet (ask again), or skipped or forgotten: it will never be here. */
    return atomic_load(&rt->applied) < index ? RAFT_EBUSY : RAFT_ESTALE;
}

void rt__verify_begin_locked(struct raft_runtime *rt, struct rt_req *req, uint64_t index)
{
    struct raft_runtime_verify *v = req->verify; /* allocated with the request */
    v->index = index;
    uint32_t waiting = 0;
    for (unsigned i = 0; i < rt->status.n_peers; i++) {
        v->nodes[i].id = rt->status.peers[i].id;
        if (v->nodes[i].id == rt->cfg.id) {
            v->nodes[i].status = lookup_locked(rt, index, v->nodes[i].digest);
        } else {
            v->nodes[i].status = RAFT_ETIMEDOUT; /* until it answers */
            waiting |= 1u << i;
        }
    }
    v->n = rt->status.n_peers;
    req->is_verifying = true;
    req->verify_waiting = waiting;
    rt__table_update(&rt->requests, req); /* its index is its own: no longer watched */
}

/* Remove req from the table and answer it with the digests (rt->lock not held). */
static void finish(struct raft_runtime *rt, struct rt_req *req)
{
    struct raft_apply_result result = {.data = req->verify, .len = sizeof *req->verify};
    req->verify = NULL;
    rt__complete(rt, req, 0, &result);
}

void rt__verify_retry(struct raft_runtime *rt)
{
    struct rt_req *done = NULL;
    pthread_mutex_lock(&rt->lock);
    for (struct rt_req *req = rt->requests.first, *next; req != NULL; req = next) {
        next = req->next;
        if (!req->is_verifying)
            continue;
        if (req->verify_waiting == 0) {
            rt__table_remove(&rt->requests, req);
            req->next = done;
            done = req;
            continue;
        }
        uint8_t buf[DIGEST_REQ];
        rfs_put_le64(buf, req->id);
        rfs_put_le64(buf + 8, req->verify->index);
        for (unsigned i = 0; i < req->verify->n; i++)
            if (req->verify_waiting & (1u << i))
                raft__transport_send(rt->transport, req->verify->nodes[i].id, RAFT__CHANNEL_CONTROL,
                                     RAFT__FRAME_DIGEST, buf, sizeof buf);
    }
    pthread_mutex_unlock(&rt->lock);
    while (done != NULL) {
        struct rt_req *req = done;
        done = req->next;
        finish(rt, req);
    }
}

static void recv_digest_resp(struct raft_runtime *rt, uint64_t from, const uint8_t *p)
{
    uint64_t id = rfs_get_le64(p), index = rfs_get_le64(p + 8);
    int status = (int)rfs_get_le32(p + 16);
    bool is_done = false;
    pthread_mutex_lock(&rt->lock);
    struct rt_req *req = rt__table_find(&rt->requests, id);
    if (req != NULL && req->is_verifying && req->verify->index == index && status != RAFT_EBUSY) {
        struct raft_runtime_verify *v = req->verify;
        for (unsigned i = 0; i < v->n; i++) {
            if (v->nodes[i].id != from || !(req->verify_waiting & (1u << i)))
                continue;
            v->nodes[i].status = status;
            if (status == 0)
                memcpy(v->nodes[i].digest, p + 20, RAFT_DIGEST_SIZE);
            req->verify_waiting &= ~(1u << i);
        }
        if (req->verify_waiting == 0) {
            rt__table_remove(&rt->requests, req);
            is_done = true;
        }
    }
    pthread_mutex_unlock(&rt->lock);
    if (is_done)
        finish(rt, req);
}

void rt__verify_recv(struct raft_runtime *rt, uint64_t from, uint8_t type, const uint8_t *p,
                     uint32_t len)
{
    if (type == RAFT__FRAME_DIGEST_RESP) {
        if (len == DIGEST_RESP)
            recv_digest_resp(rt, from, p);
        return;
    }
    if (len != DIGEST_REQ)
        return;
    uint8_t resp[DIGEST_RESP];
    memcpy(resp, p, DIGEST_REQ); /* request id and index, echoed */
    pthread_mutex_lock(&rt->lock);
    int status = lookup_locked(rt, rfs_get_le64(p + 8), resp + 20);
    pthread_mutex_unlock(&rt->lock);
    rfs_put_le32(resp + 16, (uint32_t)status);
    raft__transport_send(rt->transport, from, RAFT__CHANNEL_CONTROL, RAFT__FRAME_DIGEST_RESP, resp,
                         sizeof resp);
}
