/* Throughput of the inode state machine: commands applied per second (create + 1 KiB write of
 * small files, in batches) and read operations per second, on tmpfs and on the data disk; then
 * the time and size of a snapshot of 100,000 small files, and the time to restore it. */
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/fsm.h"
#include "store/snapshot.h"

#define FILES      20000
#define SNAP_FILES 100000
#define BATCH      64

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void rm_store(const char *dir)
{
    char p[256];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static void check(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "bench_fsm: %s: %s\n", what, rfs_strerror(r));
        exit(1);
    }
}

/* Create and write FILES files, BATCH commands per transaction; return commands/s. */
static double apply_rate_n(struct store_fsm *fsm, int batch, int files);

static double apply_rate(struct store_fsm *fsm, int batch)
{
    return apply_rate_n(fsm, batch, FILES);
}

static double apply_rate_n(struct store_fsm *fsm, int batch, int files)
{
    static uint8_t data[1024];
    struct store_cmd cmds[BATCH];
    struct store_fsm_result res[BATCH];
    char names[BATCH][16];
    uint64_t index = 0, ino = 2; /* inode numbers are handed out in order from 2 */
    memset(data, 'x', sizeof data);
    double t0 = now();
    int n = 0;
    for (int i = 0; i < files; i++) {
        struct store_cmd c = {
            .type = STORE_CMD_CREATE, .time_sec = 1700000000, .ino = 1, .mode = 0644};
        snprintf(names[n], sizeof names[n], "f%d", i);
        c.name = names[n];
        c.name_len = strlen(names[n]);
        cmds[n++] = c;
        struct store_cmd w = {.type = STORE_CMD_WRITE,
                              .time_sec = 1700000000,
                              .ino = ino++,
                              .data = data,
                              .data_len = sizeof data};
        cmds[n++] = w;
        if (n + 2 > batch || i == files - 1) {
            check(store_fsm_apply_batch(fsm, ++index, 1, cmds, (size_t)n, res), "apply");
            for (int k = 0; k < n; k++)
                if (res[k].err)
                    check(RFS_EIO, "command failed");
            n = 0;
        }
    }
    return 2.0 * files / (now() - t0);
}

/* Snapshot of a tree of SNAP_FILES files of 1 KiB: time and size to take, time to restore. */
static void snapshot_figures(void)
{
    char dir[64] = "/var/tmp/rfs-bench-XXXXXX", snaps[64] = "/var/tmp/rfs-snaps-XXXXXX";
    char fresh[64] = "/var/tmp/rfs-bench-XXXXXX";
    if (mkdtemp(dir) == NULL || mkdtemp(snaps) == NULL || mkdtemp(fresh) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    struct store_fsm *fsm, *other;
    struct store_fsm_options o = {.no_sync = true};
    check(store_fsm_open(dir, &o, &fsm, NULL, 0), "open");
    apply_rate_n(fsm, BATCH, SNAP_FILES);
    struct store_snapshot_dir *sd;
    char err[256];
    if (store_snapshot_dir_open(snaps, NULL, &sd, err, sizeof err) != 0) {
        fprintf(stderr, "bench_fsm: %s\n", err);
        exit(1);
    }
    struct stat st;
    char path[128];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    stat(path, &st);
    double t0 = now();
    struct store_snapshot_info info;
    check(store_fsm_snapshot(fsm, sd, &info), "snapshot");
    double take = now() - t0;
    check(store_fsm_open(fresh, &o, &other, NULL, 0), "open");
    t0 = now();
    check(store_fsm_restore(other, sd, info.index, info.term), "restore");
    double restore = now() - t0;
    printf("snapshot of %d files of 1 KiB (environment %.1f MiB): %.1f MiB, taken in %.2f s, "
           "restored in %.2f s\n",
           SNAP_FILES, (double)st.st_size / (1 << 20), (double)info.size / (1 << 20), take,
           restore);
    store_fsm_close(other);
    store_fsm_close(fsm);
    store_snapshot_dir_close(sd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s", dir, snaps, fresh);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_fsm: could not remove %s\n", dir);
}

static void read_rates(struct store_fsm *fsm, double *getattr, double *lookup, double *read)
{
    struct store_fsm_attr a;
    char name[16], buf[1024];
    size_t n;
    unsigned seed = 1;
    const int ops = 200000;
    double t0 = now();
    for (int i = 0; i < ops; i++)
        check(store_fsm_getattr(fsm, 2 + (uint64_t)(rand_r(&seed) % FILES), &a), "getattr");
    *getattr = ops / (now() - t0);
    t0 = now();
    for (int i = 0; i < ops; i++) {
        int len = snprintf(name, sizeof name, "f%d", rand_r(&seed) % FILES);
        check(store_fsm_lookup(fsm, 1, name, (size_t)len, &a), "lookup");
    }
    *lookup = ops / (now() - t0);
    t0 = now();
    for (int i = 0; i < ops; i++)
        check(store_fsm_read(fsm, 2 + (uint64_t)(rand_r(&seed) % FILES), 0, buf, sizeof buf, &n),
              "read");
    *read = ops / (now() - t0);
}

int main(void)
{
    static const struct {
        const char *where;
        const char *tmpl;
        int batch;
        bool no_sync;
    } runs[] = {
        {"tmpfs", "/dev/shm/rfs-bench-XXXXXX", BATCH, false},
        {"tmpfs", "/dev/shm/rfs-bench-XXXXXX", 2, false},
        {"disk", "/var/tmp/rfs-bench-XXXXXX", BATCH, false},
        {"disk", "/var/tmp/rfs-bench-XXXXXX", 2, false},
        {"disk", "/var/tmp/rfs-bench-XXXXXX", BATCH, true},
    };
    printf("%-6s %-7s %6s %12s %12s %12s %12s\n", "where", "sync", "batch", "commands/s",
           "getattr/s", "lookup/s", "read 1K/s");
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        char dir[64];
        struct store_fsm *fsm;
        snprintf(dir, sizeof dir, "%s", runs[i].tmpl);
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        struct store_fsm_options o = {.no_sync = runs[i].no_sync};
        check(store_fsm_open(dir, &o, &fsm, NULL, 0), "open");
        double rate = apply_rate(fsm, runs[i].batch), g, l, r;
        read_rates(fsm, &g, &l, &r);
        printf("%-6s %-7s %6d %12.0f %12.0f %12.0f %12.0f\n", runs[i].where,
               runs[i].no_sync ? "nosync" : "fsync", runs[i].batch, rate, g, l, r);
        store_fsm_close(fsm);
        rm_store(dir);
    }
    snapshot_figures();
    return 0;
}
