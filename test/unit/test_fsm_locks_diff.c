/* The lock table against the kernel's own: random sequences of non-blocking lock operations by
 * several owners on a tmpfs file, each done both with the kernel (open file description locks,
 * F_OFD_SETLK/F_OFD_GETLK, which have POSIX range semantics and one owner per open file
 * description, and flock on the same descriptions) and with the state machine, compared result
 * by result: granted or EAGAIN, F_GETLK's answer, and after every change each owner's locks as
 * /proc/self/fdinfo lists them. Owners are spread over two node sessions. A failure prints its
 * seed; RAFTFS_SEED=N replays it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>

#include "store/command.h"
#include "lib/error.h"
#include "store/fsm.h"
#include "test/unit/fsm_util.h"
#include "test/unit/tmpdir.h"

#define OWNERS   4
#define SEEDS    12
#define STEPS    600
#define SPAN     48 /* offsets drawn from [0, SPAN): ranges collide often */
#define EOF_END  ((uint64_t)INT64_MAX)
#define MAX_LOCK 128

struct range_lock {
    uint8_t kind, type;
    uint64_t start, end; /* inclusive */
};

struct world {
    struct fx f;
    char path[64];
    uint64_t ino;
    uint64_t session[2];
    int fd[OWNERS];
    uint64_t owner[OWNERS]; /* a new ID each time the description is reopened */
    uint64_t next_owner;
    uint64_t seed;
    unsigned step;
};

static struct store_fsm_result apply(struct world *w, struct store_cmd *c)
{
    c->index = w->f.index + 1;
    return fx_apply(&w->f, c);
}

static uint64_t session_of(const struct world *w, int i)
{
    return w->session[i % 2];
}

#define check(w, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("seed %llu step %u: ", (unsigned long long)(w)->seed, (w)->step);          \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

/* --- the kernel's view --------------------------------------------------------------------- */

static int by_range(const void *a, const void *b)
{
    const struct range_lock *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Locks the kernel lists for descriptor fd (lines "lock:\t1: OFDLCK ADVISORY WRITE -1 dev:ino
 * 5 14" and "... FLOCK ADVISORY READ pid dev:ino 0 EOF"), sorted. */
static size_t kernel_locks(struct world *w, int fd, struct range_lock *out)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    FILE *fp = fopen(path, "r");
    check(w, fp != NULL, "open %s", path);
    size_t n = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        char cls[16], type[16], end[32];
        unsigned long long start;
        if (strncmp(line, "lock:", 5) != 0)
            continue;
        int got =
            sscanf(line, "lock: %*d: %15s %*s %15s %*s %*s %llu %31s", cls, type, &start, end);
        check(w, got == 4, "unreadable fdinfo line: %s", line);
        check(w, n < MAX_LOCK, "too many locks");
        out[n].kind = strcmp(cls, "FLOCK") == 0 ? STORE_CMD_LOCK_FLOCK : STORE_CMD_LOCK_POSIX;
        check(w, out[n].kind == STORE_CMD_LOCK_FLOCK || strcmp(cls, "OFDLCK") == 0,
              "unexpected lock class %s", cls);
        out[n].type = strcmp(type, "WRITE") == 0 ? STORE_CMD_LOCK_WRITE : STORE_CMD_LOCK_READ;
        out[n].start = start;
        out[n].end = strcmp(end, "EOF") == 0 ? EOF_END : strtoull(end, NULL, 10);
        n++;
    }
    fclose(fp);
    qsort(out, n, sizeof *out, by_range);
    return n;
}

/* --- the state machine's view -------------------------------------------------------------- */

static uint64_t end_of(uint64_t start, uint64_t len)
{
    return len == 0 ? EOF_END : start + len - 1;
}

static size_t fsm_locks_of(struct world *w, int i, struct range_lock *out)
{
    struct collected c = {.n = 0};
    check(w, store_fsm_locks(w->f.fsm, w->ino, collect_lock, &c) == 0, "list locks");
    size_t n = 0;
    for (size_t k = 0; k < c.n; k++) {
        const struct store_fsm_lock *l = &c.locks[k];
        check(w, l->state == STORE_FSM_LOCK_HELD, "a lock in state %d", l->state);
        if (l->session != session_of(w, i) || l->owner != w->owner[i])
            continue;
        out[n++] = (struct range_lock){l->kind, l->type, l->start, end_of(l->start, l->len)};
    }
    qsort(out, n, sizeof *out, by_range);
    return n;
}

static void compare_owner(struct world *w, int i)
{
    struct range_lock k[MAX_LOCK], m[MAX_LOCK];
    size_t nk = kernel_locks(w, w->fd[i], k), nm = fsm_locks_of(w, i, m);
    for (size_t j = 0; j < nk || j < nm; j++) {
        bool same = j < nk && j < nm && k[j].kind == m[j].kind && k[j].type == m[j].type &&
                    k[j].start == m[j].start && k[j].end == m[j].end;
        if (!same) {
            for (size_t x = 0; x < nk; x++)
                print_error("kernel %d: kind %d type %d %llu-%llu\n", i, k[x].kind, k[x].type,
                            (unsigned long long)k[x].start, (unsigned long long)k[x].end);
            for (size_t x = 0; x < nm; x++)
                print_error("fsm    %d: kind %d type %d %llu-%llu\n", i, m[x].kind, m[x].type,
                            (unsigned long long)m[x].start, (unsigned long long)m[x].end);
            check(w, false, "owner %d: locks differ at %zu", i, j);
        }
    }
}

/* --- operations ---------------------------------------------------------------------------- */

static struct store_fsm_result fsm_lock(struct world *w, int i, uint8_t kind, uint8_t type,
                                        uint64_t start, uint64_t len)
{
    struct store_cmd c = cmd_base(&w->f, STORE_CMD_LOCK);
    c.ino = w->ino;
    c.session = session_of(w, i);
    c.owner = w->owner[i];
    c.request = w->step + 1;
    c.pid = (uint32_t)getpid();
    c.lock_kind = kind;
    c.lock_type = type;
    c.start = start;
    c.len = len;
    return apply(w, &c);
}

static const short ftypes[] = {F_RDLCK, F_WRLCK, F_UNLCK};

static void op_setlk(struct world *w, int i, uint8_t type, uint64_t start, uint64_t len)
{
    struct flock fl = {
        .l_type = ftypes[type], .l_whence = SEEK_SET, .l_start = (off_t)start, .l_len = (off_t)len};
    int kr = fcntl(w->fd[i], F_OFD_SETLK, &fl) == 0 ? 0 : errno;
    struct store_fsm_result r = fsm_lock(w, i, STORE_CMD_LOCK_POSIX, type, start, len);
    check(w, kr == r.err, "owner %d setlk type %d %llu+%llu: kernel %d, fsm %d", i, type,
          (unsigned long long)start, (unsigned long long)len, kr, r.err);
    check(w, r.n_wakeups == 0, "a wakeup without waiters");
}

static void op_flock(struct world *w, int i, uint8_t type)
{
    static const int ops[] = {LOCK_SH, LOCK_EX, LOCK_UN};
    int kr = flock(w->fd[i], ops[type] | LOCK_NB) == 0 ? 0 : errno;
    if (kr == EWOULDBLOCK)
        kr = EAGAIN;
    struct store_fsm_result r = fsm_lock(w, i, STORE_CMD_LOCK_FLOCK, type, 0, 0);
    check(w, kr == r.err, "owner %d flock %d: kernel %d, fsm %d", i, type, kr, r.err);
}

/* F_OFD_GETLK: the same verdict; the lock the kernel names must be one that conflicts in the
 * state machine (the kernel reports the first of its list, whose order differs from ours). */
static void op_getlk(struct world *w, int i, uint8_t type, uint64_t start, uint64_t len)
{
    struct flock fl = {
        .l_type = ftypes[type], .l_whence = SEEK_SET, .l_start = (off_t)start, .l_len = (off_t)len};
    check(w, fcntl(w->fd[i], F_OFD_GETLK, &fl) == 0, "F_OFD_GETLK: %s", strerror(errno));
    struct store_fsm_lock g;
    int r = store_fsm_getlk(w->f.fsm, w->ino, session_of(w, i), w->owner[i], STORE_CMD_LOCK_POSIX,
                            type, start, len, &g);
    check(w, r == 0, "getlk: %d", r);
    bool k_free = fl.l_type == F_UNLCK, m_free = g.type == STORE_CMD_LOCK_UNLOCK;
    check(w, k_free == m_free, "owner %d getlk %llu+%llu: kernel %s, fsm %s", i,
          (unsigned long long)start, (unsigned long long)len, k_free ? "free" : "locked",
          m_free ? "free" : "locked");
    if (k_free)
        return;
    struct collected c = {.n = 0};
    check(w, store_fsm_locks(w->f.fsm, w->ino, collect_lock, &c) == 0, "list locks");
    uint64_t k_start = (uint64_t)fl.l_start, k_end = end_of(k_start, (uint64_t)fl.l_len);
    uint64_t end = end_of(start, len);
    bool found = false;
    for (size_t k = 0; k < c.n && !found; k++) {
        const struct store_fsm_lock *l = &c.locks[k];
        uint64_t l_end = end_of(l->start, l->len);
        found = l->kind == STORE_CMD_LOCK_POSIX && l->start == k_start && l_end == k_end &&
                l->type == (fl.l_type == F_WRLCK ? STORE_CMD_LOCK_WRITE : STORE_CMD_LOCK_READ) &&
                !(l->session == session_of(w, i) && l->owner == w->owner[i]) && l->start <= end &&
                start <= l_end;
    }
    check(w, found, "the kernel's conflicting lock %llu-%llu is not one of the state machine's",
          (unsigned long long)k_start, (unsigned long long)k_end);
    check(w, g.kind == STORE_CMD_LOCK_POSIX && g.start <= end && start <= end_of(g.start, g.len),
          "the state machine's answer does not overlap");
}

/* close(2) and open again: the kernel drops the description's locks; the node proposes
 * LOCK_RELEASE of both kinds, and the new description is a new owner. */
static void op_reopen(struct world *w, int i)
{
    close(w->fd[i]);
    w->fd[i] = open(w->path, O_RDWR);
    check(w, w->fd[i] >= 0, "reopen: %s", strerror(errno));
    for (uint8_t kind = STORE_CMD_LOCK_FLOCK; kind <= STORE_CMD_LOCK_POSIX; kind++) {
        struct store_cmd c = cmd_base(&w->f, STORE_CMD_LOCK_RELEASE);
        c.ino = w->ino;
        c.session = session_of(w, i);
        c.owner = w->owner[i];
        c.lock_kind = kind;
        check(w, apply(w, &c).err == 0, "release");
    }
    w->owner[i] = ++w->next_owner;
}

static void run_seed(uint64_t seed)
{
    struct world w;
    memset(&w, 0, sizeof w);
    w.seed = seed;
    assert_int_equal(fx_open(&w.f), 0);
    w.ino = do_create(&w.f, 1, "f", 0644, 0).ino;
    for (int s = 0; s < 2; s++) {
        struct store_cmd c = cmd_base(&w.f, STORE_CMD_SESSION_OPEN);
        c.node = (uint64_t)s + 1;
        w.session[s] = apply(&w, &c).session;
    }
    snprintf(w.path, sizeof w.path, "/dev/shm/rfs-locks-XXXXXX");
    int fd = mkstemp(w.path);
    assert_true(fd >= 0);
    close(fd);
    for (int i = 0; i < OWNERS; i++) {
        w.fd[i] = open(w.path, O_RDWR);
        assert_true(w.fd[i] >= 0);
        w.owner[i] = ++w.next_owner;
    }
    uint64_t rng = seed;
    for (w.step = 0; w.step < STEPS; w.step++) {
        int i = (int)(test_rand(&rng) % OWNERS);
        unsigned what = (unsigned)(test_rand(&rng) % 100);
        uint8_t type = (uint8_t)(test_rand(&rng) % 3);
        uint64_t start = test_rand(&rng) % SPAN;
        uint64_t len = test_rand(&rng) % 5 == 0 ? 0 : 1 + test_rand(&rng) % (SPAN / 2);
        if (what < 50) {
            op_setlk(&w, i, type, start, len);
        } else if (what < 72) {
            op_getlk(&w, i, type % 2, start, len);
        } else if (what < 96) {
            op_flock(&w, i, type);
        } else {
            op_reopen(&w, i);
        }
        for (int k = 0; k < OWNERS; k++)
            compare_owner(&w, k);
    }
    for (int i = 0; i < OWNERS; i++)
        close(w.fd[i]);
    unlink(w.path);
    fx_close(&w.f);
}

static void random_operations_match_the_kernel(void **state)
{
    (void)state;
    uint64_t seed0 = test_seed();
    for (uint64_t seed = seed0; seed < seed0 + SEEDS; seed++)
        run_seed(seed);
}

/* The premise of the model, checked on this kernel: flock and OFD locks of the same file
 * ignore each other, and a refused flock conversion loses the old lock. */
static void kernel_keeps_flock_and_posix_apart(void **state)
{
    (void)state;
    char path[] = "/dev/shm/rfs-locks-XXXXXX";
    int a = mkstemp(path), b = open(path, O_RDWR);
    assert_true(a >= 0 && b >= 0);
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    assert_int_equal(flock(a, LOCK_EX | LOCK_NB), 0);
    assert_int_equal(fcntl(b, F_OFD_SETLK, &fl), 0);
    assert_int_equal(flock(b, LOCK_SH | LOCK_NB), -1);
    assert_int_equal(fcntl(a, F_OFD_SETLK, &fl), -1);
    assert_int_equal(flock(a, LOCK_SH | LOCK_NB), 0);
    assert_int_equal(flock(b, LOCK_SH | LOCK_NB), 0);
    assert_int_equal(flock(a, LOCK_EX | LOCK_NB), -1);
    assert_int_equal(errno, EWOULDBLOCK);
    assert_int_equal(flock(b, LOCK_EX | LOCK_NB), 0); /* a's shared lock went with its attempt */
    close(a);
    close(b);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernel_keeps_flock_and_posix_apart),
        cmocka_unit_test(random_operations_match_the_kernel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
