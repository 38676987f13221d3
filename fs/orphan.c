/* Open-but-unlinked files (DESIGN.md 5): a file whose last name is removed while a node may
 * still have it open lives on as an orphan of the state machine, readable and writable through
 * the handles open on it, until every node that may hold it has said it does not.
 *
 * 1. The removal (UNLINK, RENAME over a file) carries KEEP_OPEN and, as holders, every server
 *    of the configuration the proposer knows: it cannot know which nodes have the file open.
 * 2. Each node that applies the orphan's creation without holding the inode open proposes
 *    FORGET with its own bit at once; a node holding it proposes FORGET when its last handle is
 *    released. The state machine deletes the orphan when no holder is left.
 * 3. Both checks look at fs->handles after the state machine changed (the observer runs after
 *    the commit; the release removes its handle before it reads the link count), so at least
 *    one of them sees the other's effect: a node never holds an orphan without its bit, and a
 *    second FORGET of a bit is harmless.
 * 4. At mount the node holds nothing: it forgets every orphan still naming it (a crash, a
 *    failed FORGET, creations applied while it was not mounted).
 * Limits: node IDs above 64 cannot be named (removal then deletes at once, as before); a node
 * removed from the cluster while named keeps its orphans until it is named no more (sessions,
 * with the cluster-wide locks, will release them). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fs/internal.h"

uint64_t fs__orphan_holders(struct fs *fs)
{
    if (fs->self_bit == 0)
        return 0;
    struct raft_runtime_status *st = malloc(sizeof *st);
    if (st == NULL)
        return 0;
    raft_runtime_status(fs->rt, st);
    uint64_t mask = fs->self_bit;
    for (unsigned i = 0; i < st->n_peers; i++) {
        if (st->peers[i].id == 0 || st->peers[i].id > 64) {
            mask = 0;
            break;
        }
        mask |= (uint64_t)1 << (st->peers[i].id - 1);
    }
    free(st);
    return mask;
}

struct forget {
    struct fs *fs;
    uint64_t ino;
};

static void propose_forget(struct forget *f);

/* A FORGET that did not commit (no leader before the op timeout, a lost leadership) is proposed
 * again, until it commits or the node stops: otherwise the orphan would stay until this node
 * mounts again (note 4). One that committed twice is harmless (note 3). */
static void forget_done(void *arg, int status, struct raft_apply_result *result)
{
    struct forget *f = arg;
    fs__proposal_result(status, result, NULL);
    if (status == 0 || status == RAFT_ESHUTDOWN || status == RAFT_ESTORAGE)
        free(f);
    else
        propose_forget(f);
}

static void propose_forget(struct forget *f)
{
    struct store_cmd cmd = {.type = STORE_CMD_FORGET, .ino = f->ino, .holders = f->fs->self_bit};
    fs__now(&cmd);
    if (fs__propose(f->fs->rt, f->fs->opts.op_timeout_ms, &cmd, forget_done, f) != 0)
        free(f); /* stopping, or out of memory: the next mount's scan finds it (note 4) */
}

void fs__orphan_forget(struct fs *fs, uint64_t ino)
{
    struct forget *f = malloc(sizeof *f);
    if (f == NULL)
        return; /* the next mount's scan finds it (note 4) */
    f->fs = fs;
    f->ino = ino;
    propose_forget(f);
}

static int forget_mine(void *arg, uint64_t ino, uint64_t holders)
{
    struct fs *fs = arg;
    if (holders & fs->self_bit)
        fs__orphan_forget(fs, ino);
    return 0;
}

void fs__orphan_scan(struct fs *fs)
{
    if (fs->self_bit != 0)
        store_fsm_orphans(fs->fsm, forget_mine, fs);
}

bool fs__is_open(struct fs *fs, uint64_t ino)
{
    bool is_open = false;
    pthread_mutex_lock(&fs->lock);
    for (struct fs_handle *h = fs->handles; h != NULL && !is_open; h = h->next)
        is_open = h->ino == ino;
    pthread_mutex_unlock(&fs->lock);
    return is_open;
}

void fs__orphan_released(struct fs *fs, uint64_t ino)
{
    struct store_fsm_attr a;
    if (!fs__is_open(fs, ino) && store_fsm_getattr(fs->fsm, ino, &a) == 0 && a.nlink == 0 &&
        S_ISREG(a.mode))
        fs__orphan_forget(fs, ino);
}
