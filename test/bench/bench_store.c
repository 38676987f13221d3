/* bench-store: durable log appends per second against the disk's raw fdatasync rate.
 *
 *   make bench-store                  runs in $TMPDIR (or /tmp)
 *   build/test/bench/bench_store DIR  runs in DIR (put it on the disk you care about)
 *
 * Each part is a function called from main, so the state machine's benchmarks (store/fsm.c)
 * slot in beside them. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/logstore.h"

#define ENTRY_SIZE  256
#define RUN_SECONDS 1.0

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* The physical limit: one 256-byte write and one fdatasync per round trip to the disk. */
static double bench_raw_fdatasync(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fdatasync-probe", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "bench: open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char buf[ENTRY_SIZE];
    memset(buf, 'x', sizeof buf);
    long n = 0;
    double start = now(), t;
    do {
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd) != 0) {
            fprintf(stderr, "bench: write/fdatasync: %s\n", strerror(errno));
            exit(1);
        }
        n++;
    } while ((t = now() - start) < RUN_SECONDS);
    close(fd);
    unlink(path);
    return (double)n / t;
}

struct append_result {
    size_t batch;
    double commits_per_sec;
    double entries_per_sec;
    double mb_per_sec; /* payload bytes */
};

/* Durable appends of `batch` entries of ENTRY_SIZE bytes per transaction, for RUN_SECONDS. */
static struct append_result bench_log_append(const char *dir, size_t batch)
{
    char path[1024], eb[512];
    snprintf(path, sizeof path, "%s/log-%zu", dir, batch);
    struct store_log_options o = {.map_size = 256ull << 20, .map_size_max = 4ull << 30};
    struct store_log *log;
    if (store_log_open(path, &o, &log, eb, sizeof eb) != 0) {
        fprintf(stderr, "bench: %s\n", eb);
        exit(1);
    }
    static uint8_t payload[ENTRY_SIZE];
    memset(payload, 'p', sizeof payload);
    struct store_log_entry *e = calloc(batch, sizeof *e);
    uint64_t next = 1;
    long commits = 0;
    double start = now(), t;
    do {
        for (size_t i = 0; i < batch; i++)
            e[i] = (struct store_log_entry){
                .index = next + i, .term = 1, .len = sizeof payload, .payload = payload};
        if (store_log_append(log, e, batch) != 0) {
            fprintf(stderr, "bench: %s\n", store_log_errmsg(log, eb, sizeof eb));
            exit(1);
        }
        next += batch;
        commits++;
    } while ((t = now() - start) < RUN_SECONDS);
    free(e);
    store_log_close(log);
    nftw(path, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    double entries = (double)(next - 1);
    return (struct append_result){batch, (double)commits / t, entries / t,
                                  entries * ENTRY_SIZE / t / 1e6};
}

static void report_log(const char *dir)
{
    /* The disk may be shared: sample the raw rate before and after, and show both. */
    double raw_before = bench_raw_fdatasync(dir);
    struct append_result r[3];
    const size_t batches[] = {1, 16, 256};
    for (size_t i = 0; i < 3; i++)
        r[i] = bench_log_append(dir, batches[i]);
    double raw_after = bench_raw_fdatasync(dir);
    double raw = (raw_before + raw_after) / 2;

    printf("raw write(%d B) + fdatasync: %.0f /s before, %.0f /s after (the physical limit)\n\n",
           ENTRY_SIZE, raw_before, raw_after);
    printf("durable log appends, %d-byte entries, one transaction per batch:\n", ENTRY_SIZE);
    printf("  %-6s %12s %12s %10s %16s\n", "batch", "commits/s", "appends/s", "MB/s",
           "commits/raw-sync");
    for (size_t i = 0; i < 3; i++)
        printf("  %-6zu %12.0f %12.0f %10.2f %16.2f\n", r[i].batch, r[i].commits_per_sec,
               r[i].entries_per_sec, r[i].mb_per_sec, r[i].commits_per_sec / raw);
    printf("\n(each LMDB commit is an fdatasync of the data pages plus an O_DSYNC write of the\n"
           " meta page; batching is what buys throughput)\n");
}

/* State machine benchmarks (store/fsm.c, applied batches per second) belong here, as a
 * report_fsm(dir) called from main. */

int main(int argc, char **argv)
{
    char dir[512];
    const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/raftfs-bench-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    printf("bench-store in %s\n\n", dir);
    report_log(dir);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
