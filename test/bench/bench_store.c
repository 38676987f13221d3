/* bench-store: durable log appends per second against the disk's raw fdatasync rate.
 *
 *   make bench-store                  runs in $TMPDIR (or /tmp)
 *   build/test/bench/bench_store DIR  runs in DIR (put it on the disk you care about)
 *
 * Parts: the LMDB log store's append rates; the write-ahead log's append + sync latency against
 * a raw write + fdatasync into a prepared file, and whether a prepared (zero-filled) file spares
 * the data sync a metadata flush (against appending to a growing file and to a fallocated one).
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
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/logstore.h"
#include "store/wal/wal.h"

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

/* --- write-ahead log (store/wal) ------------------------------------------------------------- */

#define SYNC_ROUNDS 2000

static double usec(void)
{
    return now() * 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double p50(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Write requests the disk holding dir has completed so far (field 5 of the block device's stat
 * file), or -1 if it cannot be read (then the figure is left out). */
static long long disk_writes(const char *dir)
{
    struct stat st;
    char path[128];
    long long v[5];
    if (stat(dir, &st) != 0)
        return -1;
    snprintf(path, sizeof path, "/sys/dev/block/%u:%u/stat", major(st.st_dev), minor(st.st_dev));
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    int n = fscanf(f, "%lld %lld %lld %lld %lld", &v[0], &v[1], &v[2], &v[3], &v[4]);
    fclose(f);
    return n == 5 ? v[4] : -1;
}

enum variant_kind { V_WAL, V_PREPARED, V_GROWING, V_FALLOCATED };

/* One way of making a 256-byte entry durable, measured round after round. */
struct variant {
    enum variant_kind kind;
    const char *name;
    int fd;          /* the raw file */
    struct wal *wal; /* V_WAL */
    double lat[SYNC_ROUNDS];
    long long writes; /* disk write requests during its rounds; < 0 when unknown */
};

/* The raw file: zero-filled and synced first, empty and growing, or fallocated (unwritten
 * extents, as posix_fallocate leaves them). */
static void variant_open(const char *dir, struct variant *v)
{
    char path[1024], eb[512];
    size_t size = (size_t)SYNC_ROUNDS * ENTRY_SIZE;
    if (v->kind == V_WAL) {
        struct wal_options o = {.cluster_id = "bench"};
        snprintf(path, sizeof path, "%s/wal", dir);
        if (wal_open(path, &o, &v->wal, eb, sizeof eb) != 0) {
            fprintf(stderr, "bench: %s\n", eb);
            exit(1);
        }
        return;
    }
    snprintf(path, sizeof path, "%s/raw-%d", dir, (int)v->kind);
    v->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = v->fd < 0;
    if (rc == 0 && v->kind == V_PREPARED) {
        char *zeros = calloc(1, size);
        rc = zeros == NULL || write(v->fd, zeros, size) != (ssize_t)size;
        free(zeros);
    } else if (rc == 0 && v->kind == V_FALLOCATED) {
        rc = posix_fallocate(v->fd, 0, (off_t)size) != 0;
    }
    if (rc != 0 || fsync(v->fd) != 0) {
        fprintf(stderr, "bench: preparing %s: %s\n", path, strerror(errno));
        exit(1);
    }
    unlink(path);
}

static void variant_round(struct variant *v, int i)
{
    static uint8_t payload[ENTRY_SIZE];
    memset(payload, 'p', sizeof payload);
    char eb[512];
    if (v->kind == V_WAL) {
        struct wal_entry e = {
            .index = (uint64_t)i + 1, .term = 1, .len = sizeof payload, .payload = payload};
        struct wal_batch b = {.entries = &e, .n = 1};
        if (wal_write(v->wal, &b) != 0) {
            fprintf(stderr, "bench: %s\n", wal_errmsg(v->wal, eb, sizeof eb));
            exit(1);
        }
    } else if (pwrite(v->fd, payload, sizeof payload, (off_t)i * ENTRY_SIZE) !=
                   (ssize_t)sizeof payload ||
               fdatasync(v->fd) != 0) {
        fprintf(stderr, "bench: write/fdatasync: %s\n", strerror(errno));
        exit(1);
    }
}

static void report_wal(const char *dir)
{
    struct variant v[] = {
        {.kind = V_WAL, .name = "wal_write (pwritev + fdatasync)"},
        {.kind = V_PREPARED, .name = "raw write + fdatasync, prepared file"},
        {.kind = V_GROWING, .name = "raw write + fdatasync, growing file"},
        {.kind = V_FALLOCATED, .name = "raw write + fdatasync, fallocated file"},
    };
    const size_t nv = sizeof v / sizeof v[0];
    for (size_t k = 0; k < nv; k++)
        variant_open(dir, &v[k]);
    /* Round-robin, starting with another variant each round, so that a shared disk's changing
     * load falls on every variant alike. */
    for (int i = 0; i < SYNC_ROUNDS; i++)
        for (size_t j = 0; j < nv; j++) {
            struct variant *x = &v[(i + j) % nv];
            long long w0 = disk_writes(dir);
            double t = usec();
            variant_round(x, i);
            x->lat[i] = usec() - t;
            long long w1 = disk_writes(dir);
            x->writes = x->writes < 0 || w0 < 0 || w1 < 0 ? -1 : x->writes + (w1 - w0);
        }
    printf("\nwrite-ahead log, one %d-byte entry per batch, %d rounds each, interleaved:\n",
           ENTRY_SIZE, SYNC_ROUNDS);
    printf("  %-44s %10s %16s\n", "", "p50 (us)", "disk writes/sync");
    double p[4];
    for (size_t k = 0; k < nv; k++) {
        p[k] = p50(v[k].lat, SYNC_ROUNDS);
        printf("  %-44s %10.0f ", v[k].name, p[k]);
        if (v[k].writes < 0)
            printf("%16s\n", "-");
        else
            printf("%16.2f\n", (double)v[k].writes / SYNC_ROUNDS);
        if (v[k].kind == V_WAL)
            wal_close(v[k].wal);
        else
            close(v[k].fd);
    }
    printf("  wal / raw prepared: %.2fx (goal: at most 1.25x)\n", p[0] / p[1]);
    printf("(disk writes count every request the disk completed meanwhile, other processes' "
           "too)\n");
    char path[1024];
    snprintf(path, sizeof path, "%s/wal", dir);
    nftw(path, rm_one, 8, FTW_DEPTH | FTW_PHYS);
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
    report_wal(dir);
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
