/* Crash test of apply: a child applies batches of commands and reports each committed index
 * over a pipe; the parent SIGKILLs it at random moments, reopens the store and checks that the
 * applied index is at least the last one reported and that the tree is exactly the first
 * `applied` commands replayed into a fresh store (equal digests). RAFTFS_SEED picks the seed. */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "test/unit/fsm_util.h"

#define KILLS 200
#define READY UINT64_MAX /* reported by the child once the store is open */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; /* splitmix64 finaliser: command k is a pure function of k */
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static const char *const names[] = {"a", "b", "c", "d", "e"};

/* Command number k (1-based). The first four make directories 2..5 under the root; the rest
 * work on names in them and on inode numbers that may or may not exist: errors are fine,
 * they are as deterministic as successes. buf holds data for the command. */
static struct store_cmd command(uint64_t seed, uint64_t k, uint8_t *buf)
{
    struct store_cmd c;
    uint64_t x = mix(seed * 1000003 + k);
    memset(&c, 0, sizeof c);
    c.time_sec = T0 + (int64_t)k;
    c.mode = 0644;
    if (k <= 4) {
        c.type = STORE_CMD_MKDIR;
        c.ino = STORE_FSM_ROOT_INO;
        c.name = names[k - 1];
        c.name_len = 1;
        return c;
    }
    uint64_t dir = 2 + (x >> 8) % 4, ino = 2 + (x >> 16) % (k / 2 + 2);
    c.name = names[(x >> 24) % 5];
    c.name_len = 1;
    switch (x % 8) {
    case 0:
    case 1:
        c.type = STORE_CMD_CREATE;
        c.ino = dir;
        break;
    case 2:
        c.type = STORE_CMD_UNLINK;
        c.ino = dir;
        break;
    case 3:
        c.type = STORE_CMD_RENAME;
        c.ino = dir;
        c.ino2 = 2 + (x >> 32) % 4;
        c.name2 = names[(x >> 40) % 5];
        c.name2_len = 1;
        break;
    case 4:
    case 5: {
        c.type = STORE_CMD_WRITE;
        c.ino = ino;
        c.offset = (x >> 32) % 20000;
        c.data_len = (x >> 48) % 3000;
        for (size_t i = 0; i < c.data_len; i++)
            buf[i] = (uint8_t)(k + i);
        c.data = buf;
        break;
    }
    case 6:
        c.type = STORE_CMD_SETATTR;
        c.ino = ino;
        c.valid = STORE_CMD_SET_SIZE | STORE_CMD_SET_MODE;
        c.size = (x >> 32) % 10000;
        c.mode = (uint32_t)(x >> 40) & 0777;
        break;
    default:
        c.type = STORE_CMD_SETXATTR;
        c.ino = ino;
        c.name = "user.n";
        c.name_len = 6;
        memcpy(buf, &k, sizeof k);
        c.data = buf;
        c.data_len = sizeof k;
        break;
    }
    return c;
}

static uint64_t batch_size(uint64_t seed, uint64_t after)
{
    return 1 + mix(seed ^ (after * 7919)) % 16;
}

/* Apply commands from+1..to in batches of batch_size, as one would after `from`. */
static int apply_range(struct store_fsm *fsm, uint64_t seed, uint64_t from, uint64_t to,
                       int report_fd)
{
    static uint8_t bufs[16][3000];
    struct store_cmd cmds[16];
    struct store_fsm_result res[16];
    while (from < to) {
        uint64_t n = batch_size(seed, from);
        if (from + n > to)
            n = to - from;
        for (uint64_t i = 0; i < n; i++)
            cmds[i] = command(seed, from + 1 + i, bufs[i]);
        int r = store_fsm_apply_batch(fsm, from + n, 1, cmds, n, res);
        if (r != 0)
            return r;
        from += n;
        if (report_fd >= 0 && write(report_fd, &from, sizeof from) != sizeof from)
            return RFS_EIO;
    }
    return 0;
}

static void child(const char *dir, uint64_t seed, int fd)
{
    struct store_fsm *fsm;
    uint64_t applied;
    /* As in production: unsynced commits, which a process crash must not lose. */
    struct store_fsm_options o = {.root_time = {T0, 0}, .unsynced_apply = true};
    uint64_t ready = READY;
    if (store_fsm_open(dir, &o, &fsm, NULL, 0) != 0 ||
        store_fsm_applied(fsm, &applied, NULL) != 0 ||
        write(fd, &ready, sizeof ready) != sizeof ready)
        _exit(2);
    apply_range(fsm, seed, applied, UINT64_MAX / 2, fd);
    _exit(3);
}

static void crash_and_recover(void **state)
{
    (void)state;
    const char *env = getenv("RAFTFS_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : 1;
    char dir[64];
    snprintf(dir, sizeof dir, "/dev/shm/rfs-crash-XXXXXX");
    assert_non_null(mkdtemp(dir));
    struct fx ref; /* the reference: the same commands, never crashed */
    struct store_fsm_options ro = {.root_time = {T0, 0}, .no_sync = true};
    assert_int_equal(fx_open_opts(&ref, &ro), 0);
    uint64_t ref_applied = 0, last_reported = 0, grew = 0, prev = 0;
    unsigned rng = (unsigned)seed;

    /* Most kills must land after some progress, or the test proves nothing: on a slow machine
     * (sanitizers, other jobs) the child progresses less per kill, so kill until it has grown
     * KILLS / 2 times, up to four times KILLS. */
    int kill_no;
    for (kill_no = 0; kill_no < KILLS || (grew <= KILLS / 2 && kill_no < 4 * KILLS); kill_no++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child(dir, seed, p[1]);
        }
        close(p[1]);
        /* Nine kills in ten land while it applies: wait until it has opened the store (its
         * start after fork is slow and uneven), then up to 3 ms. The rest land anywhere in its
         * first 2 ms, opening and recovery included. */
        uint64_t idx;
        long us = rand_r(&rng) % 10 ? 0 : 1;
        if (us == 0) {
            if (read(p[0], &idx, sizeof idx) != sizeof idx || idx != READY)
                fail_msg("seed %llu kill %d: child did not start", (unsigned long long)seed,
                         kill_no);
            us = rand_r(&rng) % 3000;
        } else {
            us = rand_r(&rng) % 2000;
        }
        struct timespec ts = {0, us * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFSIGNALED(status))
            fail_msg("seed %llu kill %d: child exited with %d before the kill",
                     (unsigned long long)seed, kill_no, WEXITSTATUS(status));
        while (read(p[0], &idx, sizeof idx) == sizeof idx)
            if (idx != READY)
                last_reported = idx;
        close(p[0]);

        struct store_fsm *fsm;
        uint64_t applied;
        /* The same options as the child: it may have died before creating the store. */
        struct store_fsm_options co = {.root_time = {T0, 0}, .unsynced_apply = true};
        assert_int_equal(store_fsm_open(dir, &co, &fsm, NULL, 0), 0);
        assert_false(store_fsm_was_emptied(fsm)); /* the same boot: nothing may be dropped */
        assert_int_equal(store_fsm_applied(fsm, &applied, NULL), 0);
        if (applied < last_reported)
            fail_msg("seed %llu kill %d: applied %llu < reported %llu", (unsigned long long)seed,
                     kill_no, (unsigned long long)applied, (unsigned long long)last_reported);
        grew += applied > prev;
        prev = applied;
        /* Bring the reference to the same index and compare trees. */
        assert_int_equal(apply_range(ref.fsm, seed, ref_applied, applied, -1), 0);
        ref_applied = applied;
        uint8_t d1[32], d2[32];
        assert_int_equal(store_fsm_digest(fsm, d1), 0);
        assert_int_equal(store_fsm_digest(ref.fsm, d2), 0);
        store_fsm_close(fsm);
        if (memcmp(d1, d2, 32) != 0)
            fail_msg("seed %llu kill %d: tree at index %llu differs from the replay",
                     (unsigned long long)seed, kill_no, (unsigned long long)applied);
    }
    printf("# %d kills, applied index grew %llu times, reached %llu\n", kill_no,
           (unsigned long long)grew, (unsigned long long)ref_applied);
    assert_true(grew > KILLS / 2);
    fx_close(&ref);
    fx_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_and_recover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
