/* Liveness of lock sessions: the rules by which a leader ends the sessions of silent nodes, and
 * how soon a node gives up its own (docs/fs.md, "Session liveness").
 *
 * Design note. Invariants:
 * 1. A LIVE session of node N is ended only by a leader that has not heard from N for a whole
 *    timeout on its own clock: since N's last frame, and since this leadership started.
 *    A frame heard before the leadership still counts (it only makes the wait longer), but a
 *    leader never ends a session sooner than timeout_ms after it took office.
 * 2. The leader's own session is never ended for silence: the node always hears itself.
 * 3. At most one SESSION_END per session is in flight from this node; a failed or refused one
 *    (EBUSY: another leader's clock stamped a later delay end) is decided again on the next
 *    pass.
 * 4. A node gives up its own session fs__liveness_self_ms(timeout) after the start of its last
 *    confirmed contact, and counts a contact probe as confirmed only if it completed within
 *    fs__liveness_probe_ms(timeout) of its start. Together they stay below seven eighths of
 *    the timeout, which is what makes the node give up before any leader may end its session
 *    (the argument and its clock assumption are in docs/fs.md). */
#include "fs/node/liveness.h"

void fs__liveness_init(struct fs_liveness *lv, uint64_t node, unsigned timeout_ms,
                       unsigned delay_ms)
{
    *lv = (struct fs_liveness){.node = node, .timeout_ms = timeout_ms, .delay_ms = delay_ms};
}

void fs__liveness_role(struct fs_liveness *lv, bool is_leader, uint64_t term, uint64_t now_ms)
{
    if (is_leader && (!lv->is_leader || lv->term != term))
        lv->office_ms = now_ms; /* invariant 1: the grace period of a new leadership */
    lv->is_leader = is_leader;
    lv->term = term;
}

static bool is_pending(const struct fs_liveness *lv, uint64_t session)
{
    for (unsigned i = 0; i < lv->n_pending; i++)
        if (lv->pending[i] == session)
            return true;
    return false;
}

/* How long node has been silent for this leader, as of now_ms. */
static uint64_t silence(const struct fs_liveness *lv, uint64_t now_ms, uint64_t node,
                        const struct fs_liveness_peer *peers, size_t n_peers)
{
    uint64_t since_office = now_ms > lv->office_ms ? now_ms - lv->office_ms : 0;
    uint64_t silent = UINT64_MAX;
    for (size_t i = 0; i < n_peers; i++)
        if (peers[i].id == node)
            silent = peers[i].silent_ms;
    return silent < since_office ? silent : since_office;
}

static bool is_reached(struct store_fsm_time wall, struct store_fsm_time until)
{
    return wall.sec > until.sec || (wall.sec == until.sec && wall.nsec >= until.nsec);
}

size_t fs__liveness_decide(struct fs_liveness *lv, uint64_t now_ms, struct store_fsm_time wall,
                           const struct fs_liveness_peer *peers, size_t n_peers,
                           const struct fs_liveness_session *sessions, size_t n_sessions,
                           struct fs_liveness_end *out, size_t cap)
{
    size_t n = 0;
    if (!lv->is_leader)
        return 0;
    for (size_t i = 0; i < n_sessions && n < cap && lv->n_pending < FS_LIVENESS_PENDING_MAX; i++) {
        const struct fs_liveness_session *s = &sessions[i];
        if (is_pending(lv, s->id))
            continue; /* invariant 3 */
        struct fs_liveness_end end = {.session = s->id};
        if (s->is_ended) {
            if (!is_reached(wall, s->delay_until))
                continue;
            end.is_final = true;
        } else {
            if (s->node == lv->node) /* invariant 2 */
                continue;
            if (silence(lv, now_ms, s->node, peers, n_peers) < lv->timeout_ms)
                continue;
            end.delay_ms = lv->delay_ms;
        }
        lv->pending[lv->n_pending++] = s->id;
        out[n++] = end;
    }
    return n;
}

void fs__liveness_done(struct fs_liveness *lv, uint64_t session)
{
    for (unsigned i = 0; i < lv->n_pending; i++)
        if (lv->pending[i] == session) {
            lv->pending[i] = lv->pending[--lv->n_pending];
            return;
        }
}

uint64_t fs__liveness_self_ms(unsigned timeout_ms)
{
    uint64_t margin = timeout_ms / 4 + 1; /* strictly less, even for the smallest timeouts */
    return timeout_ms > margin ? timeout_ms - margin : 0;
}

uint64_t fs__liveness_probe_ms(unsigned timeout_ms)
{
    return timeout_ms / 8;
}
