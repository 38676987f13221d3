/* The replicated lock table at the state machine level: POSIX range semantics (split, merge,
 * upgrade, downgrade), conflicts, flock next to POSIX, fair queues, deadlock detection, node
 * sessions with their lock-delay, fencing tokens, snapshots and the digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "store/command.h"
#include "lib/error.h"
#include "store/fsm.h"
#include "store/snapshot.h"
#include "test/unit/fsm_util.h"
#include "test/unit/tmpdir.h"

#define RD   STORE_CMD_LOCK_READ
#define WR   STORE_CMD_LOCK_WRITE
#define UN   STORE_CMD_LOCK_UNLOCK
#define FL   STORE_CMD_LOCK_FLOCK
#define PX   STORE_CMD_LOCK_POSIX
#define WAIT true
#define NOW  false

/* Apply c as the next entry, with its own index (lock commands need it). */
static struct store_fsm_result apply(struct fx *f, struct store_cmd *c)
{
    c->index = f->index + 1;
    return fx_apply(f, c);
}

static uint64_t open_session(struct fx *f, uint64_t node)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_SESSION_OPEN);
    c.node = node;
    struct store_fsm_result r = apply(f, &c);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.session, f->index);
    return r.session;
}

static struct store_fsm_result end_session(struct fx *f, uint64_t session, uint32_t delay_ms)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_SESSION_END);
    c.session = session;
    c.delay_ms = delay_ms;
    return apply(f, &c);
}

static uint64_t next_request = 100;

/* A LOCK by owner of session on [start, start + len). */
static struct store_fsm_result lock(struct fx *f, uint64_t ino, uint64_t session, uint64_t owner,
                                    uint8_t kind, uint8_t type, uint64_t start, uint64_t len,
                                    bool wait)
{
    struct store_cmd c = cmd_base(f, STORE_CMD_LOCK);
    c.ino = ino;
    c.session = session;
    c.owner = owner;
    c.request = next_request++;
    c.pid = (uint32_t)(1000 + owner);
    c.lock_kind = kind;
    c.lock_type = type;
    c.start = start;
    c.len = len;
    c.flags = wait ? STORE_CMD_LOCK_WAIT : 0;
    return apply(f, &c);
}

static struct store_fsm_result px(struct fx *f, uint64_t ino, uint64_t s, uint64_t o, uint8_t type,
                                  uint64_t start, uint64_t len)
{
    return lock(f, ino, s, o, PX, type, start, len, NOW);
}

static struct collected locks_of(struct fx *f, uint64_t ino)
{
    struct collected c = {.n = 0};
    assert_int_equal(store_fsm_locks(f->fsm, ino, collect_lock, &c), 0);
    return c;
}

/* The held locks of ino as text "owner:type:start-len ..." (held ones sorted by start). */
static void held_text(struct fx *f, uint64_t ino, char *out, size_t cap)
{
    struct collected c = locks_of(f, ino);
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c.n; i++) {
        const struct store_fsm_lock *l = &c.locks[i];
        if (l->state == STORE_FSM_LOCK_WAITING)
            continue;
        at += (size_t)snprintf(out + at, cap - at, "%s%llu:%c:%llu+%llu", at ? " " : "",
                               (unsigned long long)l->owner, l->type == WR ? 'W' : 'R',
                               (unsigned long long)l->start, (unsigned long long)l->len);
    }
}

#define assert_held(f, ino, want)                                                                  \
    do {                                                                                           \
        char got_[1024];                                                                           \
        held_text(f, ino, got_, sizeof got_);                                                      \
        assert_string_equal(got_, want);                                                           \
    } while (0)

static uint64_t new_file(struct fx *f, const char *name)
{
    struct store_fsm_result r = do_create(f, 1, name, 0644, 0);
    assert_int_equal(r.err, 0);
    return r.ino;
}

static void digest_of(struct fx *f, uint8_t out[STORE_FSM_DIGEST_SIZE])
{
    assert_int_equal(store_fsm_digest(f->fsm, out), 0);
}

/* --- tests --------------------------------------------------------------------------------- */

static void posix_ranges_split_and_merge(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 100).err, 0);
    assert_held(&f, ino, "1:W:0+100");
    assert_int_equal(px(&f, ino, s, 1, UN, 40, 20).err, 0); /* a hole: split in two */
    assert_held(&f, ino, "1:W:0+40 1:W:60+40");
    assert_int_equal(px(&f, ino, s, 1, WR, 40, 20).err, 0); /* filling it merges all three */
    assert_held(&f, ino, "1:W:0+100");
    assert_int_equal(px(&f, ino, s, 1, RD, 10, 10).err, 0); /* a read inside: three pieces */
    assert_held(&f, ino, "1:W:0+10 1:R:10+10 1:W:20+80");
    assert_int_equal(px(&f, ino, s, 1, RD, 200, 10).err, 0);
    assert_int_equal(px(&f, ino, s, 1, RD, 210, 10).err, 0); /* adjacent, same type: merged */
    assert_held(&f, ino, "1:W:0+10 1:R:10+10 1:W:20+80 1:R:200+20");
    assert_int_equal(px(&f, ino, s, 1, RD, 100, 100).err, 0); /* touches both sides */
    assert_held(&f, ino, "1:W:0+10 1:R:10+10 1:W:20+80 1:R:100+120");
    assert_int_equal(px(&f, ino, s, 1, WR, 150, 0).err, 0); /* len 0: to the end */
    assert_held(&f, ino, "1:W:0+10 1:R:10+10 1:W:20+80 1:R:100+50 1:W:150+0");
    assert_int_equal(px(&f, ino, s, 1, UN, 5, 0).err, 0);
    assert_held(&f, ino, "1:W:0+5");
    assert_int_equal(px(&f, ino, s, 1, UN, 0, 0).err, 0);
    assert_held(&f, ino, "");
    assert_int_equal(locks_of(&f, 0).n, 0);
    /* Bad ranges, kinds and types, as Linux judges them. */
    assert_int_equal(px(&f, ino, s, 1, WR, (uint64_t)INT64_MAX + 1, 1).err, EINVAL);
    assert_int_equal(px(&f, ino, s, 1, WR, (uint64_t)INT64_MAX, 2).err, EOVERFLOW);
    assert_int_equal(px(&f, ino, s, 1, WR, (uint64_t)INT64_MAX, 1).err, 0);
    assert_int_equal(px(&f, ino, s, 1, 3, 0, 1).err, EINVAL);
    assert_int_equal(lock(&f, ino, s, 1, 7, WR, 0, 1, NOW).err, EINVAL);
    assert_int_equal(lock(&f, ino, s, 1, FL, WR, 0, 1, NOW).err, EINVAL); /* flock: no range */
    assert_int_equal(px(&f, 999, s, 1, WR, 0, 1).err, ENOENT);
    assert_int_equal(px(&f, ino, 12345, 1, WR, 0, 1).err, ENOLCK); /* no such session */
    fx_close(&f);
}

static void conflicts_and_getlk(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_lock g;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(px(&f, ino, s1, 7, RD, 0, 10).err, 0);
    assert_int_equal(px(&f, ino, s2, 7, RD, 5, 10).err, 0); /* shared: both */
    /* Owner 7 of node 2 is not owner 7 of node 1. */
    assert_int_equal(px(&f, ino, s2, 7, WR, 0, 1).err, EAGAIN);
    assert_int_equal(px(&f, ino, s1, 8, WR, 10, 5).err, EAGAIN);
    assert_int_equal(px(&f, ino, s1, 8, WR, 15, 5).err, 0); /* just past both */
    assert_int_equal(px(&f, ino, s1, 8, WR, 15, 5).err, 0); /* its own: no conflict */
    assert_int_equal(store_fsm_getlk(f.fsm, ino, s2, 9, PX, WR, 0, 0, &g), 0);
    assert_int_equal(g.type, RD);
    assert_int_equal(g.start, 0); /* the lowest start first */
    assert_int_equal(g.len, 10);
    assert_int_equal(g.session, s1);
    assert_int_equal(g.node, 1);
    assert_int_equal(g.pid, 1007);
    assert_int_equal(g.state, STORE_FSM_LOCK_HELD);
    assert_int_equal(store_fsm_getlk(f.fsm, ino, s2, 9, PX, RD, 12, 10, &g), 0);
    assert_int_equal(g.type, WR);
    assert_int_equal(g.start, 15);
    assert_int_equal(g.owner, 8);
    assert_int_equal(store_fsm_getlk(f.fsm, ino, s2, 9, PX, RD, 20, 0, &g), 0);
    assert_int_equal(g.type, UN);
    /* The holder itself sees no conflict with its own locks. */
    assert_int_equal(store_fsm_getlk(f.fsm, ino, s1, 8, PX, WR, 15, 5, &g), 0);
    assert_int_equal(g.type, UN);
    assert_int_equal(store_fsm_getlk(f.fsm, ino, s1, 8, PX, UN, 15, 5, &g), EINVAL);
    assert_int_equal(store_fsm_getlk(f.fsm, 999, s1, 8, PX, RD, 15, 5, &g), ENOENT);
    fx_close(&f);
}

static void upgrade_and_downgrade_are_atomic(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    assert_int_equal(px(&f, ino, s, 1, RD, 0, 10).err, 0);
    assert_int_equal(px(&f, ino, s, 2, RD, 5, 10).err, 0);
    /* The upgrade conflicts with owner 2's read lock: refused, and owner 1 keeps its read. */
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 10).err, EAGAIN);
    assert_held(&f, ino, "1:R:0+10 2:R:5+10");
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 5).err, 0); /* the part no one shares */
    assert_held(&f, ino, "1:W:0+5 1:R:5+5 2:R:5+10");
    assert_int_equal(px(&f, ino, s, 2, UN, 0, 0).err, 0);
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 10).err, 0);
    assert_held(&f, ino, "1:W:0+10");
    assert_int_equal(px(&f, ino, s, 2, RD, 0, 1).err, EAGAIN);
    assert_int_equal(px(&f, ino, s, 1, RD, 0, 10).err, 0); /* downgrade */
    assert_int_equal(px(&f, ino, s, 2, RD, 0, 1).err, 0);
    assert_held(&f, ino, "1:R:0+10 2:R:0+1");
    fx_close(&f);
}

static void flock_and_posix_are_independent(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_result r;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    assert_int_equal(lock(&f, ino, s, 1, FL, WR, 0, 0, NOW).err, 0);
    assert_int_equal(px(&f, ino, s, 2, WR, 0, 0).err, 0); /* POSIX beside an exclusive flock */
    assert_int_equal(lock(&f, ino, s, 2, FL, RD, 0, 0, NOW).err, EAGAIN);
    assert_int_equal(px(&f, ino, s, 1, RD, 0, 1).err, EAGAIN);
    /* Re-asking for the type held changes nothing and keeps the token. */
    uint64_t token = locks_of(&f, ino).locks[0].token;
    r = lock(&f, ino, s, 1, FL, WR, 0, 0, NOW);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.token, token);
    /* Conversion as Linux: EX -> SH always works; SH -> EX with another SH holder fails and
     * the old lock is gone. */
    assert_int_equal(lock(&f, ino, s, 1, FL, RD, 0, 0, NOW).err, 0);
    assert_int_equal(lock(&f, ino, s, 2, FL, RD, 0, 0, NOW).err, 0);
    r = lock(&f, ino, s, 1, FL, WR, 0, 0, NOW);
    assert_int_equal(r.err, EAGAIN);
    struct collected c = locks_of(&f, ino);
    size_t flocks = 0;
    for (size_t i = 0; i < c.n; i++)
        if (c.locks[i].kind == FL) {
            flocks++;
            assert_int_equal(c.locks[i].owner, 2);
        }
    assert_int_equal(flocks, 1);
    /* Unlock by LOCK_RELEASE of each kind. */
    struct store_cmd rel = cmd_base(&f, STORE_CMD_LOCK_RELEASE);
    rel.ino = ino;
    rel.session = s;
    rel.owner = 2;
    rel.lock_kind = FL;
    assert_int_equal(apply(&f, &rel).err, 0);
    assert_held(&f, ino, "2:W:0+0");
    rel = cmd_base(&f, STORE_CMD_LOCK_RELEASE);
    rel.ino = ino;
    rel.session = s;
    rel.owner = 2;
    rel.lock_kind = PX;
    assert_int_equal(apply(&f, &rel).err, 0);
    assert_int_equal(locks_of(&f, 0).n, 0);
    fx_close(&f);
}

static void waiters_are_granted_in_order(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_result r;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(px(&f, ino, s1, 1, RD, 0, 0).err, 0);
    r = lock(&f, ino, s2, 2, PX, WR, 0, 0, WAIT);
    assert_int_equal(r.err, 0);
    assert_true(r.lock_queued);
    uint64_t writer = next_request - 1;
    /* A new reader would be compatible with the held read lock, but a writer waits first. */
    assert_int_equal(px(&f, ino, s1, 3, RD, 0, 1).err, EAGAIN);
    r = lock(&f, ino, s1, 3, PX, RD, 0, 1, WAIT);
    assert_true(r.lock_queued);
    uint64_t reader = next_request - 1;
    struct store_fsm_lock g;
    assert_int_equal(store_fsm_getlk(f.fsm, ino, s1, 4, PX, RD, 5, 1, &g), 0);
    assert_int_equal(g.state, STORE_FSM_LOCK_WAITING); /* the queue blocks it too */
    assert_int_equal(g.owner, 2);
    /* The holder may still change its own locks: the writer waits for it anyway. */
    assert_int_equal(px(&f, ino, s1, 1, WR, 0, 0).err, 0);
    /* The holder goes: the writer, first in line, gets it; the reader still waits. */
    r = px(&f, ino, s1, 1, UN, 0, 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].session, s2);
    assert_int_equal(r.wakeups[0].owner, 2);
    assert_int_equal(r.wakeups[0].request, writer);
    assert_int_equal(r.wakeups[0].token, f.index);
    assert_int_equal(r.wakeups[0].err, 0);
    assert_held(&f, ino, "2:W:0+0");
    r = px(&f, ino, s2, 2, UN, 0, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].request, reader);
    assert_held(&f, ino, "3:R:0+1");
    /* Waiters go in order: 7 conflicts with 6, which came first. */
    assert_int_equal(px(&f, ino, s1, 5, WR, 10, 10).err, 0);
    assert_true(lock(&f, ino, s2, 6, PX, WR, 0, 20, WAIT).lock_queued);
    assert_true(lock(&f, ino, s2, 7, PX, WR, 15, 1, WAIT).lock_queued);
    assert_true(lock(&f, ino, s2, 8, PX, WR, 30, 1, NOW).err == 0);
    r = px(&f, ino, s1, 5, UN, 0, 0);
    assert_int_equal(r.n_wakeups, 0); /* 6 still needs owner 3's [0,1) */
    r = px(&f, ino, s1, 3, UN, 0, 0);
    assert_int_equal(r.n_wakeups, 1); /* 6, and 7 stays behind it */
    assert_int_equal(r.wakeups[0].owner, 6);
    r = px(&f, ino, s2, 6, UN, 0, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].owner, 7);
    fx_close(&f);
}

static void a_downgrade_lets_readers_in(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(px(&f, ino, s1, 1, WR, 0, 10).err, 0);
    assert_true(lock(&f, ino, s2, 2, PX, RD, 5, 10, WAIT).lock_queued);
    assert_true(lock(&f, ino, s2, 3, PX, WR, 0, 1, WAIT).lock_queued);
    struct store_fsm_result r = px(&f, ino, s1, 1, RD, 0, 10);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 1); /* the reader; the writer still conflicts */
    assert_int_equal(r.wakeups[0].owner, 2);
    assert_int_equal(r.wakeups[0].token, r.token);
    assert_held(&f, ino, "1:R:0+10 2:R:5+10");
    fx_close(&f);
}

/* A waiter's grant that downgrades its owner's own lock lets an earlier waiter in. */
static void a_granted_downgrade_frees_an_earlier_waiter(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 10).err, 0);
    assert_int_equal(px(&f, ino, s, 3, WR, 20, 10).err, 0);
    assert_true(lock(&f, ino, s, 2, PX, RD, 0, 10, WAIT).lock_queued); /* behind 1's write */
    assert_true(lock(&f, ino, s, 1, PX, RD, 0, 30, WAIT).lock_queued); /* behind 3's write */
    struct store_fsm_result r = px(&f, ino, s, 3, UN, 0, 0);
    assert_int_equal(r.n_wakeups, 2);
    assert_int_equal(r.wakeups[0].owner, 1);
    assert_int_equal(r.wakeups[1].owner, 2);
    assert_held(&f, ino, "1:R:0+30 2:R:0+10");
    fx_close(&f);
}

static void cancel_and_deleted_file_answer_waiters(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_result r;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 0).err, 0);
    assert_true(lock(&f, ino, s, 2, PX, WR, 0, 0, WAIT).lock_queued);
    uint64_t first = next_request - 1;
    assert_true(lock(&f, ino, s, 3, PX, RD, 0, 0, WAIT).lock_queued);
    struct store_cmd c = cmd_base(&f, STORE_CMD_LOCK_CANCEL);
    c.ino = ino;
    c.session = s;
    c.request = first;
    r = apply(&f, &c);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].err, EINTR);
    assert_int_equal(r.wakeups[0].request, first);
    c.index = 0;
    assert_int_equal(apply(&f, &c).err, ENOENT); /* not waiting any more */
    /* The file goes while owner 3 waits: the waiter is answered ENOENT. */
    r = do_unlink(&f, 1, "a", 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].owner, 3);
    assert_int_equal(r.wakeups[0].err, ENOENT);
    assert_int_equal(locks_of(&f, 0).n, 0);
    fx_close(&f);
}

static void deadlocks_are_refused(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t a = new_file(&f, "a"), b = new_file(&f, "b");
    uint64_t s1 = open_session(&f, 1), s2 = open_session(&f, 2), s3 = open_session(&f, 3);
    /* Two owners on two nodes, crossing on two files. */
    assert_int_equal(px(&f, a, s1, 1, WR, 0, 10).err, 0);
    assert_int_equal(px(&f, b, s2, 1, WR, 0, 10).err, 0);
    assert_true(lock(&f, b, s1, 1, PX, WR, 0, 10, WAIT).lock_queued);
    assert_int_equal(lock(&f, a, s2, 1, PX, WR, 5, 1, WAIT).err, EDEADLK);
    /* Non-blocking: EAGAIN, as ever. */
    assert_int_equal(lock(&f, a, s2, 1, PX, WR, 5, 1, NOW).err, EAGAIN);
    /* A third owner closes a longer cycle: 3 -> 1 (file a) is fine until 2 waits for 3. */
    assert_int_equal(px(&f, a, s3, 1, RD, 20, 10).err, 0);
    assert_true(lock(&f, a, s3, 1, PX, WR, 0, 1, WAIT).lock_queued);        /* 3 waits for 1 */
    assert_int_equal(lock(&f, a, s2, 1, PX, WR, 25, 1, WAIT).err, EDEADLK); /* 2->3->1->2 */
    /* flock waits take no part (Linux does not detect them either). */
    assert_int_equal(lock(&f, a, s1, 9, FL, WR, 0, 0, NOW).err, 0);
    assert_true(lock(&f, a, s2, 9, FL, WR, 0, 0, WAIT).lock_queued);
    fx_close(&f);
}

static void session_end_releases_everything(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_result r;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(px(&f, ino, s1, 1, WR, 0, 0).err, 0);
    assert_true(lock(&f, ino, s1, 2, PX, WR, 0, 0, WAIT).lock_queued);
    assert_true(lock(&f, ino, s2, 3, PX, WR, 0, 0, WAIT).lock_queued);
    r = end_session(&f, s1, 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.delay_until.sec, 0);
    assert_int_equal(r.n_wakeups, 2); /* s1's waiter fails, then s2's is granted */
    assert_int_equal(r.wakeups[0].session, s1);
    assert_int_equal(r.wakeups[0].err, ENOLCK);
    assert_int_equal(r.wakeups[1].session, s2);
    assert_int_equal(r.wakeups[1].err, 0);
    assert_int_equal(px(&f, ino, s1, 1, WR, 0, 0).err, ENOLCK);
    assert_int_equal(end_session(&f, s1, 0).err, ENOENT);
    /* A node that opens a new session loses its old one at once, lock-delay or not. */
    uint64_t s2b = open_session(&f, 2);
    assert_int_equal(locks_of(&f, 0).n, 0);
    assert_int_equal(px(&f, ino, s2, 3, WR, 0, 0).err, ENOLCK);
    assert_int_equal(px(&f, ino, s2b, 3, WR, 0, 0).err, 0);
    struct store_cmd c = cmd_base(&f, STORE_CMD_SESSION_OPEN);
    assert_int_equal(apply(&f, &c).err, EINVAL); /* node 0 */
    fx_close(&f);
}

struct session_list {
    struct store_fsm_session s[8];
    size_t n;
};

static int collect_session(void *arg, const struct store_fsm_session *s)
{
    struct session_list *l = arg;
    if (l->n < 8)
        l->s[l->n++] = *s;
    return 0;
}

static void lock_delay_holds_an_ended_sessions_locks(void **state)
{
    (void)state;
    struct fx f;
    struct store_fsm_result r;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(lock(&f, ino, s1, 1, FL, WR, 0, 0, NOW).err, 0);
    assert_true(lock(&f, ino, s2, 2, FL, WR, 0, 0, WAIT).lock_queued);
    int64_t t_end = f.clock;
    r = end_session(&f, s1, 5500);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 0);
    assert_int_equal(r.delay_until.sec, t_end + 5);
    assert_int_equal(r.delay_until.nsec, 500000123);
    struct session_list sl = {.n = 0};
    assert_int_equal(store_fsm_sessions(f.fsm, collect_session, &sl), 0);
    assert_int_equal(sl.n, 2);
    assert_int_equal(sl.s[0].id, s1);
    assert_int_equal(sl.s[0].state, STORE_FSM_SESSION_ENDED);
    assert_int_equal(sl.s[0].ended.sec, t_end);
    assert_int_equal(sl.s[1].state, STORE_FSM_SESSION_LIVE);
    struct collected c = locks_of(&f, ino);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.locks[0].state, STORE_FSM_LOCK_DELAYED);
    assert_int_equal(c.locks[1].state, STORE_FSM_LOCK_WAITING);
    /* Nobody gets it during the delay; the session takes no new requests. */
    assert_int_equal(lock(&f, ino, s2, 3, FL, RD, 0, 0, NOW).err, EAGAIN);
    assert_int_equal(lock(&f, ino, s1, 1, FL, UN, 0, 0, NOW).err, ENOLCK);
    f.clock = t_end + 5;
    assert_int_equal(end_session(&f, s1, 0).err, EBUSY); /* 5.000000123 < 5.5 */
    f.clock = t_end + 6;
    r = end_session(&f, s1, 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].owner, 2);
    /* A session holding nothing is removed at once, whatever the delay. */
    r = end_session(&f, s2, 5000);
    assert_int_equal(r.err, 0); /* it held the flock it was just granted: delayed */
    assert_int_equal(r.delay_until.sec, f.clock - 1 + 5);
    uint64_t s3 = open_session(&f, 3);
    r = end_session(&f, s3, 5000);
    assert_int_equal(r.delay_until.sec, 0);
    sl.n = 0;
    assert_int_equal(store_fsm_sessions(f.fsm, collect_session, &sl), 0);
    assert_int_equal(sl.n, 1);
    fx_close(&f);
}

/* A node that lost its session while running renews it: the old one ends with the lock-delay
 * (its lock keeps blocking others), an ENDED one keeps its delay, and a plain SESSION_OPEN (a
 * restart) still removes every earlier session of the node at once. */
static void a_renewed_session_ends_the_old_one_with_the_lock_delay(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(lock(&f, ino, s1, 1, FL, WR, 0, 0, NOW).err, 0);
    assert_true(lock(&f, ino, s2, 2, FL, WR, 0, 0, WAIT).lock_queued);
    int64_t t_renew = f.clock;
    struct store_cmd c = cmd_base(&f, STORE_CMD_SESSION_RENEW);
    c.node = 1;
    c.delay_ms = 3000;
    struct store_fsm_result r = apply(&f, &c);
    assert_int_equal(r.err, 0);
    uint64_t s1b = r.session;
    assert_int_equal(s1b, f.index);
    assert_int_equal(r.n_wakeups, 0); /* nobody gets the lock yet */
    struct session_list sl = {.n = 0};
    assert_int_equal(store_fsm_sessions(f.fsm, collect_session, &sl), 0);
    assert_int_equal(sl.n, 3);
    assert_int_equal(sl.s[0].id, s1);
    assert_int_equal(sl.s[0].state, STORE_FSM_SESSION_ENDED);
    assert_int_equal(sl.s[0].delay_until.sec, t_renew + 3);
    assert_int_equal(sl.s[2].id, s1b);
    assert_int_equal(sl.s[2].state, STORE_FSM_SESSION_LIVE);
    assert_int_equal(lock(&f, ino, s1b, 1, FL, WR, 0, 0, NOW).err, EAGAIN);
    /* A second renewal leaves the ENDED session and its delay alone. */
    c = cmd_base(&f, STORE_CMD_SESSION_RENEW);
    c.node = 1;
    c.delay_ms = 3000;
    r = apply(&f, &c);
    assert_int_equal(r.err, 0);
    sl.n = 0;
    assert_int_equal(store_fsm_sessions(f.fsm, collect_session, &sl), 0);
    assert_int_equal(sl.n, 3); /* s1 ENDED, s2, the newest of node 1 (s1b held nothing) */
    assert_int_equal(sl.s[0].delay_until.sec, t_renew + 3);
    /* After the delay the leader's SESSION_END hands the lock on. */
    f.clock = t_renew + 4;
    r = end_session(&f, s1, 0);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.n_wakeups, 1);
    assert_int_equal(r.wakeups[0].session, s2);
    /* A restart of node 2 (SESSION_OPEN) removes its sessions at once, lock and all. */
    uint64_t s2b = open_session(&f, 2);
    assert_int_equal(locks_of(&f, ino).n, 0);
    assert_int_equal(lock(&f, ino, s2b, 2, FL, WR, 0, 0, NOW).err, 0);
    fx_close(&f);
}

static void tokens_increase_and_are_readable(void **state)
{
    (void)state;
    struct fx f;
    char buf[32];
    size_t len;
    assert_int_equal(fx_open(&f), 0);
    f.index = 1000; /* tokens of four digits, to see a short buffer refused */
    uint64_t ino = new_file(&f, "a"), s1 = open_session(&f, 1), s2 = open_session(&f, 2);
    assert_int_equal(
        store_fsm_getxattr(f.fsm, ino, STORE_FSM_XATTR_LOCK_TOKEN, buf, sizeof buf, &len), ENODATA);
    uint64_t last = 0;
    for (int i = 0; i < 10; i++) {
        uint64_t s = i % 2 ? s1 : s2;
        struct store_fsm_result r = lock(&f, ino, s, 1, FL, WR, 0, 0, NOW);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.token, f.index); /* the granting entry's index */
        assert_true(r.token > last);
        last = r.token;
        assert_int_equal(store_fsm_getxattr(f.fsm, ino, STORE_FSM_XATTR_LOCK_TOKEN, NULL, 0, &len),
                         0);
        assert_int_equal(
            store_fsm_getxattr(f.fsm, ino, STORE_FSM_XATTR_LOCK_TOKEN, buf, sizeof buf, &len), 0);
        char want[32];
        snprintf(want, sizeof want, "%llu", (unsigned long long)r.token);
        assert_int_equal(len, strlen(want));
        assert_memory_equal(buf, want, len);
        assert_int_equal(store_fsm_getxattr(f.fsm, ino, STORE_FSM_XATTR_LOCK_TOKEN, buf, 3, &len),
                         ERANGE);
        assert_int_equal(lock(&f, ino, s, 1, FL, UN, 0, 0, NOW).err, 0);
    }
    /* Not settable, not listed. */
    assert_int_equal(do_setxattr(&f, ino, STORE_FSM_XATTR_LOCK_TOKEN, "1", 0).err, EOPNOTSUPP);
    assert_int_equal(store_fsm_listxattr(f.fsm, ino, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 0);
    /* Lock commands need their entry's index. */
    struct store_cmd c = cmd_base(&f, STORE_CMD_SESSION_OPEN);
    c.node = 4;
    struct store_fsm_result res;
    assert_int_equal(store_fsm_apply_batch(f.fsm, f.index + 1, 1, &c, 1, &res), RFS_EINVAL);
    c.index = f.index + 2;
    assert_int_equal(store_fsm_apply_batch(f.fsm, f.index + 1, 1, &c, 1, &res), RFS_ERANGE);
    fx_close(&f);
}

/* A state with held, delayed and waiting locks of both kinds. */
static void build_lock_state(struct fx *f, uint64_t *ino_out, uint64_t *s2_out)
{
    uint64_t ino = new_file(f, "a"), s1 = open_session(f, 1), s2 = open_session(f, 2);
    assert_int_equal(px(f, ino, s1, 1, WR, 0, 10).err, 0);
    assert_int_equal(px(f, ino, s2, 2, RD, 20, 0).err, 0);
    assert_int_equal(lock(f, ino, s1, 1, FL, RD, 0, 0, NOW).err, 0);
    assert_true(lock(f, ino, s2, 3, PX, WR, 5, 10, WAIT).lock_queued);
    assert_true(lock(f, ino, s2, 4, FL, WR, 0, 0, WAIT).lock_queued);
    assert_int_equal(end_session(f, s1, 60000).err, 0);
    *ino_out = ino;
    *s2_out = s2;
}

static void snapshot_keeps_locks_and_digest_covers_them(void **state)
{
    (void)state;
    struct fx a, b;
    uint8_t d0[STORE_FSM_DIGEST_SIZE], d1[STORE_FSM_DIGEST_SIZE], d2[STORE_FSM_DIGEST_SIZE];
    assert_int_equal(fx_open(&a), 0);
    assert_int_equal(fx_open(&b), 0);
    uint64_t ino, s2;
    build_lock_state(&a, &ino, &s2);
    digest_of(&a, d0);
    /* Snapshot a, restore into b: same locks, same digest. */
    char *snapdir = tmpdir_make("fsm-locks-snap");
    struct store_snapshot_dir *sd;
    char err[256];
    assert_int_equal(store_snapshot_dir_open(snapdir, NULL, &sd, err, sizeof err), 0);
    struct store_snapshot_info info;
    assert_int_equal(store_fsm_snapshot(a.fsm, sd, &info), 0);
    assert_int_equal(store_fsm_restore(b.fsm, sd, info.index, info.term), 0);
    b.index = a.index;
    b.clock = a.clock;
    digest_of(&b, d1);
    assert_memory_equal(d0, d1, sizeof d0);
    struct collected la = locks_of(&a, 0), lb = locks_of(&b, 0);
    assert_int_equal(la.n, 5);
    assert_int_equal(lb.n, la.n);
    for (size_t i = 0; i < la.n; i++) {
        const struct store_fsm_lock *x = &la.locks[i], *y = &lb.locks[i];
        assert_int_equal(x->ino, y->ino);
        assert_int_equal(x->session, y->session);
        assert_int_equal(x->node, y->node);
        assert_int_equal(x->owner, y->owner);
        assert_int_equal(x->request, y->request);
        assert_int_equal(x->start, y->start);
        assert_int_equal(x->len, y->len);
        assert_int_equal(x->token, y->token);
        assert_int_equal(x->time.sec, y->time.sec);
        assert_int_equal(x->time.nsec, y->time.nsec);
        assert_int_equal(x->pid, y->pid);
        assert_int_equal(x->kind, y->kind);
        assert_int_equal(x->type, y->type);
        assert_int_equal(x->state, y->state);
    }
    assert_int_equal(la.locks[0].state, STORE_FSM_LOCK_DELAYED);
    assert_int_equal(la.locks[4].state, STORE_FSM_LOCK_WAITING);
    /* Both continue alike: the same release grants the same waiter with the same token. */
    struct store_fsm_result ra = px(&a, ino, s2, 2, UN, 0, 0);
    next_request--;
    struct store_fsm_result rb = px(&b, ino, s2, 2, UN, 0, 0);
    assert_int_equal(ra.n_wakeups, rb.n_wakeups);
    digest_of(&a, d1);
    digest_of(&b, d2);
    assert_memory_equal(d1, d2, sizeof d1);
    assert_memory_not_equal(d0, d1, sizeof d0); /* and the digest saw the change */
    store_snapshot_dir_close(sd);
    tmpdir_remove(snapdir);
    fx_close(&a);
    fx_close(&b);
}

static void digest_changes_with_locks(void **state)
{
    (void)state;
    struct fx f;
    uint8_t before[STORE_FSM_DIGEST_SIZE], with_session[STORE_FSM_DIGEST_SIZE],
        locked[STORE_FSM_DIGEST_SIZE], after[STORE_FSM_DIGEST_SIZE];
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a");
    digest_of(&f, before);
    uint64_t s = open_session(&f, 1);
    digest_of(&f, with_session);
    assert_memory_not_equal(before, with_session, sizeof before);
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 10).err, 0);
    digest_of(&f, locked);
    assert_memory_not_equal(with_session, locked, sizeof locked);
    assert_int_equal(px(&f, ino, s, 1, RD, 0, 10).err, 0); /* same range, other type */
    digest_of(&f, after);
    assert_memory_not_equal(locked, after, sizeof locked);
    assert_int_equal(px(&f, ino, s, 1, UN, 0, 0).err, 0);
    digest_of(&f, after);
    assert_memory_equal(with_session, after, sizeof after); /* the lock table is empty again */
    assert_int_equal(end_session(&f, s, 0).err, 0);
    digest_of(&f, after);
    assert_memory_equal(before, after, sizeof after); /* ...and so are the sessions */
    fx_close(&f);
}

static void the_lock_table_has_a_limit(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    for (uint64_t i = 0; i < STORE_FSM_LOCKS_MAX; i++)
        assert_int_equal(px(&f, ino, s, 1, i % 2 ? RD : WR, i, 1).err, 0);
    assert_int_equal(px(&f, ino, s, 2, RD, 5000, 1).err, ENOLCK);
    /* Changes that do not add records still work: unlocking a record, or merging. */
    assert_int_equal(px(&f, ino, s, 1, UN, 0, 1).err, 0);
    assert_int_equal(px(&f, ino, s, 2, RD, 5000, 1).err, 0);
    assert_int_equal(px(&f, ino, s, 1, WR, 0, 2000).err, 0);
    assert_held(&f, ino, "1:W:0+2000 2:R:5000+1");
    fx_close(&f);
}

/* Several entries in one batch: each result points at its own wakeups. */
static void one_batch_many_entries(void **state)
{
    (void)state;
    struct fx f;
    assert_int_equal(fx_open(&f), 0);
    uint64_t ino = new_file(&f, "a"), s = open_session(&f, 1);
    struct store_cmd c[5];
    struct store_fsm_result res[5];
    for (int i = 0; i < 5; i++) {
        c[i] = cmd_base(&f, STORE_CMD_LOCK);
        c[i].ino = ino;
        c[i].session = s;
        c[i].lock_kind = PX;
        c[i].flags = STORE_CMD_LOCK_WAIT;
        c[i].request = (uint64_t)i + 1;
        c[i].index = f.index + 2 * (uint64_t)i + 1; /* no-op entries in between */
    }
    c[0].owner = 1, c[0].lock_type = WR;
    c[1].owner = 2, c[1].lock_type = RD;
    c[2].owner = 3, c[2].lock_type = RD;
    c[3].owner = 1, c[3].lock_type = UN;
    c[4].owner = 2, c[4].lock_type = UN;
    uint64_t last = c[4].index + 1;
    assert_int_equal(store_fsm_apply_batch(f.fsm, last, 1, c, 5, res), 0);
    f.index = last;
    assert_int_equal(res[0].token, c[0].index);
    assert_true(res[1].lock_queued && res[2].lock_queued);
    assert_int_equal(res[3].n_wakeups, 2); /* both readers */
    assert_ptr_not_equal(res[3].wakeups, NULL);
    assert_int_equal(res[3].wakeups[0].request, 2);
    assert_int_equal(res[3].wakeups[1].request, 3);
    assert_int_equal(res[3].wakeups[0].token, c[3].index);
    assert_int_equal(res[4].n_wakeups, 0);
    assert_null(res[4].wakeups);
    assert_held(&f, ino, "3:R:0+0");
    /* Indexes out of order are refused, nothing applied. */
    c[0].index = last + 2;
    c[1].index = last + 1;
    assert_int_equal(store_fsm_apply_batch(f.fsm, last + 2, 1, c, 2, res), RFS_ERANGE);
    assert_held(&f, ino, "3:R:0+0");
    fx_close(&f);
}

/* Random blocking and non-blocking requests, unlocks, cancels, releases and session ends and
 * reopens by several owners of three nodes on three files. After every command: no two held
 * locks conflict, every waiter conflicts with a held lock or an earlier waiter (else it should
 * have been granted), and the queue is what it was, plus the request just queued, minus exactly
 * the waiters the command's wakeups reported. RAFTFS_SEED=N replays a seed. */
struct waiter_key {
    uint64_t session, request;
};

static bool lock_conflicts(const struct store_fsm_lock *a, const struct store_fsm_lock *b)
{
    uint64_t ae = a->len ? a->start + a->len - 1 : UINT64_MAX;
    uint64_t be = b->len ? b->start + b->len - 1 : UINT64_MAX;
    return a->ino == b->ino && a->kind == b->kind &&
           !(a->session == b->session && a->owner == b->owner) && a->start <= be &&
           b->start <= ae && (a->type == WR || b->type == WR);
}

static void check_queues(struct fx *f, uint64_t seed, unsigned step, struct waiter_key *expect,
                         size_t n_expect)
{
    struct collected c = locks_of(f, 0);
    size_t n_wait = 0;
    for (size_t i = 0; i < c.n; i++) {
        const struct store_fsm_lock *a = &c.locks[i];
        if (a->state == STORE_FSM_LOCK_WAITING) {
            bool blocked = false, known = false;
            for (size_t j = 0; j < c.n && !blocked; j++)
                blocked = (j < i || c.locks[j].state != STORE_FSM_LOCK_WAITING) &&
                          lock_conflicts(a, &c.locks[j]);
            for (size_t k = 0; k < n_expect && !known; k++)
                known = expect[k].session == a->session && expect[k].request == a->request;
            if (!blocked || !known)
                fail_msg("seed %llu step %u: waiter %llu/%llu %s", (unsigned long long)seed, step,
                         (unsigned long long)a->session, (unsigned long long)a->request,
                         !blocked ? "could be granted" : "is not expected");
            n_wait++;
            continue;
        }
        for (size_t j = i + 1; j < c.n; j++)
            if (c.locks[j].state != STORE_FSM_LOCK_WAITING && lock_conflicts(a, &c.locks[j]))
                fail_msg("seed %llu step %u: held locks conflict", (unsigned long long)seed, step);
    }
    if (n_wait != n_expect)
        fail_msg("seed %llu step %u: %zu waiters, expected %zu", (unsigned long long)seed, step,
                 n_wait, n_expect);
}

static void random_queues_keep_their_invariants(void **state)
{
    (void)state;
    uint64_t seed0 = test_seed();
    for (uint64_t seed = seed0; seed < seed0 + 6; seed++) {
        struct fx f;
        assert_int_equal(fx_open(&f), 0);
        uint64_t files[3] = {new_file(&f, "a"), new_file(&f, "b"), new_file(&f, "c")};
        uint64_t sessions[3];
        for (int n = 0; n < 3; n++)
            sessions[n] = open_session(&f, (uint64_t)n + 1);
        struct waiter_key expect[64];
        size_t n_expect = 0;
        uint64_t rng = seed;
        for (unsigned step = 0; step < 400; step++) {
            int node = (int)(test_rand(&rng) % 3);
            uint64_t s = sessions[node], owner = 1 + test_rand(&rng) % 3;
            uint64_t ino = files[test_rand(&rng) % 3];
            unsigned what = (unsigned)(test_rand(&rng) % 100);
            struct store_fsm_result r;
            if (what < 70 && n_expect < 60) {
                uint8_t kind = test_rand(&rng) % 4 ? PX : FL;
                uint8_t type = (uint8_t)(test_rand(&rng) % 3);
                uint64_t start = kind == FL ? 0 : test_rand(&rng) % 20;
                uint64_t len = kind == FL ? 0 : test_rand(&rng) % 8;
                r = lock(&f, ino, s, owner, kind, type, start, len, test_rand(&rng) % 2);
                if (r.lock_queued)
                    expect[n_expect++] = (struct waiter_key){s, next_request - 1};
            } else if (what < 80 && n_expect > 0) {
                struct waiter_key w = expect[test_rand(&rng) % n_expect];
                struct collected c = locks_of(&f, 0);
                for (size_t i = 0; i < c.n; i++)
                    if (c.locks[i].session == w.session && c.locks[i].request == w.request)
                        ino = c.locks[i].ino;
                struct store_cmd cmd = cmd_base(&f, STORE_CMD_LOCK_CANCEL);
                cmd.ino = ino;
                cmd.session = w.session;
                cmd.request = w.request;
                r = apply(&f, &cmd);
            } else if (what < 92) {
                struct store_cmd cmd = cmd_base(&f, STORE_CMD_LOCK_RELEASE);
                cmd.ino = ino;
                cmd.session = s;
                cmd.owner = owner;
                cmd.lock_kind = test_rand(&rng) % 2 ? PX : FL;
                r = apply(&f, &cmd);
            } else if (what < 96) {
                r = end_session(&f, s, 0);
                sessions[node] = open_session(&f, (uint64_t)node + 1);
            } else {
                struct store_cmd cmd = cmd_base(&f, STORE_CMD_SESSION_OPEN);
                cmd.node = (uint64_t)node + 1;
                r = apply(&f, &cmd);
                sessions[node] = r.session;
            }
            if (r.err >= RFS_ERROR_BASE)
                fail_msg("seed %llu step %u: store error %d", (unsigned long long)seed, step,
                         r.err);
            for (size_t k = 0; k < r.n_wakeups; k++) {
                size_t at = n_expect;
                for (size_t i = 0; i < n_expect; i++)
                    if (expect[i].session == r.wakeups[k].session &&
                        expect[i].request == r.wakeups[k].request)
                        at = i;
                if (at == n_expect)
                    fail_msg("seed %llu step %u: wakeup of a request not waiting",
                             (unsigned long long)seed, step);
                expect[at] = expect[--n_expect];
            }
            check_queues(&f, seed, step, expect, n_expect);
        }
        fx_close(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posix_ranges_split_and_merge),
        cmocka_unit_test(conflicts_and_getlk),
        cmocka_unit_test(upgrade_and_downgrade_are_atomic),
        cmocka_unit_test(flock_and_posix_are_independent),
        cmocka_unit_test(waiters_are_granted_in_order),
        cmocka_unit_test(a_downgrade_lets_readers_in),
        cmocka_unit_test(a_granted_downgrade_frees_an_earlier_waiter),
        cmocka_unit_test(cancel_and_deleted_file_answer_waiters),
        cmocka_unit_test(deadlocks_are_refused),
        cmocka_unit_test(session_end_releases_everything),
        cmocka_unit_test(lock_delay_holds_an_ended_sessions_locks),
        cmocka_unit_test(a_renewed_session_ends_the_old_one_with_the_lock_delay),
        cmocka_unit_test(tokens_increase_and_are_readable),
        cmocka_unit_test(snapshot_keeps_locks_and_digest_covers_them),
        cmocka_unit_test(digest_changes_with_locks),
        cmocka_unit_test(the_lock_table_has_a_limit),
        cmocka_unit_test(one_batch_many_entries),
        cmocka_unit_test(random_queues_keep_their_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
