/* fsload: the load generator of `make bench` (test/bench/run-smallfile) and `make bench-locks`
 * (test/bench/run-locks). One phase of the workload per run, on any directory (a raftfs mount, a
 * local directory, a passthrough mount), by closed-loop threads that each work in their own
 * subdirectory; prints one line of figures. Also measures the replication lag between two mounts
 * of one cluster, and the handoff of one lock between two processes working through two mounts
 * of one cluster. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "usage: fsload [-t THREADS] [-s SECONDS] [-n FILES] PHASE DIR\n"                               \
    "       fsload [-n COUNT] lag WRITER_DIR READER_DIR\n"                                         \
    "       fsload [-s SECONDS] flock-handoff|fcntl-handoff DIR_A DIR_B\n"                         \
    "phases: create fsync stat read rename lock unlink flock fcntl\n"

#define FILE_SIZE    4096
#define MAX_THREADS  256
#define LAG_BOUND    10.0 /* seconds a written file may take to show on the other mount */
#define NAME_MAX_LEN 64
/* The lock phases' file and the fcntl lock's byte range: the handoff counter's record. */
#define LOCK_FILE   "lockfile"
#define RECORD_LEN  21 /* 20 digits and a newline */
#define RANGE_START 0
#define RANGE_LEN   RECORD_LEN

enum phase {
    CREATE,
    FSYNC,
    STAT,
    READ,
    RENAME,
    LOCK,
    UNLINK,
    FLOCK,
    FCNTL,
    LAG,
    FLOCK_HANDOFF,
    FCNTL_HANDOFF
};

static const char *const phase_names[] = {"create", "fsync", "stat",          "read",
                                          "rename", "lock",  "unlink",        "flock",
                                          "fcntl",  "lag",   "flock-handoff", "fcntl-handoff"};
#define N_PHASES (sizeof phase_names / sizeof phase_names[0])

static bool is_handoff(enum phase p)
{
    return p == FLOCK_HANDOFF || p == FCNTL_HANDOFF;
}

struct options {
    enum phase phase;
    unsigned threads;
    double seconds;     /* time bound of every phase but unlink and lag; 0: none */
    unsigned long n;    /* files per thread for create and fsync (0: no bound); lag samples */
    const char *dir;    /* the directory worked in; the writer's for lag; A's for a handoff */
    const char *reader; /* lag: the reader's directory; a handoff: B's */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- latency samples --------------------------------------------------------------------- */

struct samples {
    double *v; /* seconds; owned, freed by samples_free */
    size_t n, cap;
};

static int samples_add(struct samples *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 4096 : s->cap * 2;
        double *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            fprintf(stderr, "fsload: out of memory for %zu latency samples\n", cap);
            return -1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

static void samples_free(struct samples *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile (0..100) of sorted v[0..n); 0 without samples. */
static double percentile(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    return v[(size_t)(p / 100.0 * (double)(n - 1) + 0.5)];
}

/* --- file contents ------------------------------------------------------------------------ */

/* Every file's FILE_SIZE bytes are its name and a tag, repeated: a read can tell a complete file
 * from a partial, stale or foreign one. */
static void fill(char *buf, const char *name, unsigned long tag)
{
    char unit[NAME_MAX_LEN + 32];
    int len = snprintf(unit, sizeof unit, "%s:%lu;", name, tag);
    for (size_t off = 0; off < FILE_SIZE; off += (size_t)len) {
        size_t k = FILE_SIZE - off < (size_t)len ? FILE_SIZE - off : (size_t)len;
        memcpy(buf + off, unit, k);
    }
}

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "fsload: %s %s: %s\n", what, path, strerror(errno));
    return -1;
}

static int write_all(int fd, const char *buf, const char *path)
{
    for (size_t off = 0; off < FILE_SIZE;) {
        ssize_t w = write(fd, buf + off, FILE_SIZE - off);
        if (w < 0)
            return fail("write", path);
        off += (size_t)w;
    }
    return 0;
}

/* Create PATH exclusively with FILE_SIZE bytes of BUF, synced first if is_sync. */
static int create_file(const char *path, const char *buf, bool is_sync)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail("create", path);
    if (write_all(fd, buf, path) != 0 || (is_sync && fsync(fd) != 0 && fail("fsync", path))) {
        close(fd);
        return -1;
    }
    if (close(fd) != 0)
        return fail("close", path);
    return 0;
}

/* Read PATH whole into buf (FILE_SIZE + 1 bytes, to see a file that is too long); the number of
 * bytes read, or -1 with errno set. */
static ssize_t read_file(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t off = 0;
    for (;;) {
        ssize_t r = read(fd, buf + off, FILE_SIZE + 1 - off);
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        off += (size_t)r;
        if (r == 0 || off == FILE_SIZE + 1)
            break;
    }
    if (close(fd) != 0)
        return -1;
    return (ssize_t)off;
}

/* --- locks -------------------------------------------------------------------------------- */

/* Take (is_take) or release the exclusive lock on FD, waiting for it if another holds it: the
 * whole file's flock, or if is_fcntl a POSIX write lock on [RANGE_START, +RANGE_LEN). */
static int lock_set(int fd, bool is_fcntl, bool is_take, const char *path)
{
    if (!is_fcntl) {
        if (flock(fd, is_take ? LOCK_EX : LOCK_UN) != 0)
            return fail(is_take ? "flock LOCK_EX" : "flock LOCK_UN", path);
        return 0;
    }
    struct flock fl = {.l_type = is_take ? F_WRLCK : F_UNLCK,
                       .l_whence = SEEK_SET,
                       .l_start = RANGE_START,
                       .l_len = RANGE_LEN};
    if (fcntl(fd, F_SETLKW, &fl) != 0)
        return fail(is_take ? "fcntl F_SETLKW F_WRLCK" : "fcntl F_SETLKW F_UNLCK", path);
    return 0;
}

/* --- the workload threads ----------------------------------------------------------------- */

struct worker {
    const struct options *opt;
    pthread_barrier_t *start; /* shared: every thread's files are listed before the clock runs */
    const double *t0;         /* written by the main thread before the barrier releases */
    const bool *is_go;        /* likewise: false if any thread's set-up failed */
    char dir[4096];           /* DIR/tK */
    char **names;             /* the regular files found in dir (stat, read, unlink); owned */
    size_t n_names;
    char lock_path[4096 + NAME_MAX_LEN]; /* flock, fcntl: DIR/tK/LOCK_FILE */
    int lock_fd;                         /* open on lock_path, or -1 */
    struct samples lat;
    unsigned long ops;
    double finished;
    int rc;
};

/* The files the create (cN) and fsync (sN) phases made in w->dir. */
static int list_files(struct worker *w)
{
    DIR *d = opendir(w->dir);
    if (d == NULL)
        return fail("opendir", w->dir);
    size_t cap = 0;
    struct dirent *e;
    errno = 0;
    while ((e = readdir(d)) != NULL) {
        bool is_ours = (e->d_name[0] == 'c' || e->d_name[0] == 's') && e->d_name[1] >= '0' &&
                       e->d_name[1] <= '9';
        if (!is_ours || (e->d_type != DT_REG && e->d_type != DT_UNKNOWN))
            continue;
        if (w->n_names == cap) {
            cap = cap == 0 ? 1024 : cap * 2;
            char **v = realloc(w->names, cap * sizeof *v);
            if (v == NULL) {
                closedir(d);
                fprintf(stderr, "fsload: out of memory listing %s\n", w->dir);
                return -1;
            }
            w->names = v;
        }
        if ((w->names[w->n_names] = strdup(e->d_name)) == NULL) {
            closedir(d);
            fprintf(stderr, "fsload: out of memory listing %s\n", w->dir);
            return -1;
        }
        w->n_names++;
        errno = 0;
    }
    int rc = errno != 0 ? fail("readdir", w->dir) : 0;
    closedir(d);
    if (rc == 0 && w->n_names == 0 && w->opt->phase != UNLINK) {
        fprintf(stderr, "fsload: %s: no files to %s (run create or fsync first)\n", w->dir,
                phase_names[w->opt->phase]);
        return -1;
    }
    return rc;
}

/* One operation of the phase; i counts this thread's operations from 0. */
static int one_op(struct worker *w, unsigned long i, char *buf, char *rbuf)
{
    const struct options *opt = w->opt;
    char path[4096 + NAME_MAX_LEN], tmp[4096 + NAME_MAX_LEN], name[NAME_MAX_LEN];
    struct stat st;
    switch (opt->phase) {
    case CREATE:
    case FSYNC:
        snprintf(name, sizeof name, "%c%lu", opt->phase == CREATE ? 'c' : 's', i);
        snprintf(path, sizeof path, "%s/%s", w->dir, name);
        fill(buf, name, 0);
        return create_file(path, buf, opt->phase == FSYNC);
    case STAT:
        snprintf(path, sizeof path, "%s/%s", w->dir, w->names[i % w->n_names]);
        if (stat(path, &st) != 0)
            return fail("stat", path);
        if (st.st_size != FILE_SIZE) {
            fprintf(stderr, "fsload: stat %s: size %lld, want %d\n", path, (long long)st.st_size,
                    FILE_SIZE);
            return -1;
        }
        return 0;
    case READ: {
        const char *n = w->names[i % w->n_names];
        snprintf(path, sizeof path, "%s/%s", w->dir, n);
        ssize_t got = read_file(path, rbuf);
        if (got < 0)
            return fail("read", path);
        fill(buf, n, 0);
        if (got != FILE_SIZE || memcmp(buf, rbuf, FILE_SIZE) != 0) {
            fprintf(stderr, "fsload: read %s: %zd bytes, not the %d written\n", path, got,
                    FILE_SIZE);
            return -1;
        }
        return 0;
    }
    case RENAME: {
        /* The editor's and the config manager's safe replace: the reader of "config" sees the
         * old or the new version, never a partial one. */
        snprintf(tmp, sizeof tmp, "%s/config.tmp", w->dir);
        snprintf(path, sizeof path, "%s/config", w->dir);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("open", tmp);
        fill(buf, "config", i);
        if (write_all(fd, buf, tmp) != 0 || (fsync(fd) != 0 && fail("fsync", tmp))) {
            close(fd);
            return -1;
        }
        if (close(fd) != 0)
            return fail("close", tmp);
        if (rename(tmp, path) != 0)
            return fail("rename", tmp);
        return 0;
    }
    case LOCK: {
        /* A lock file: whoever creates it exclusively holds the lock; unlink releases it. */
        snprintf(path, sizeof path, "%s/lock", w->dir);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return fail("lock create", path);
        if (close(fd) != 0)
            return fail("close", path);
        if (unlink(path) != 0)
            return fail("unlink", path);
        return 0;
    }
    case UNLINK:
        snprintf(path, sizeof path, "%s/%s", w->dir, w->names[i]);
        if (unlink(path) != 0)
            return fail("unlink", path);
        return 0;
    case FLOCK:
    case FCNTL:
        /* The uncontended round trip: the thread's own lock file, opened once in the set-up. */
        if (lock_set(w->lock_fd, opt->phase == FCNTL, true, w->lock_path) != 0 ||
            lock_set(w->lock_fd, opt->phase == FCNTL, false, w->lock_path) != 0)
            return -1;
        return 0;
    case LAG:
    case FLOCK_HANDOFF:
    case FCNTL_HANDOFF: break;
    }
    return -1;
}

static bool is_done(const struct worker *w, unsigned long i, double t)
{
    const struct options *opt = w->opt;
    switch (opt->phase) {
    case UNLINK: return i >= w->n_names;
    case CREATE:
    case FSYNC:
        if (opt->n != 0 && i >= opt->n)
            return true;
        break;
    default: break;
    }
    return opt->seconds > 0 && t >= *w->t0 + opt->seconds;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char *buf = malloc(FILE_SIZE), *rbuf = malloc(FILE_SIZE + 1);
    if (buf == NULL || rbuf == NULL) {
        fprintf(stderr, "fsload: out of memory\n");
        w->rc = -1;
    }
    /* Set-up (not timed): the thread's directory and, for the phases that use existing files,
     * their names. Every thread waits at the barrier even after a failure. */
    if (w->rc == 0 && mkdir(w->dir, 0755) != 0 && errno != EEXIST)
        w->rc = fail("mkdir", w->dir);
    if (w->rc == 0 && (w->opt->phase == STAT || w->opt->phase == READ || w->opt->phase == UNLINK))
        w->rc = list_files(w);
    if (w->rc == 0 && (w->opt->phase == FLOCK || w->opt->phase == FCNTL)) {
        snprintf(w->lock_path, sizeof w->lock_path, "%s/%s", w->dir, LOCK_FILE);
        w->lock_fd = open(w->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (w->lock_fd < 0)
            w->rc = fail("open", w->lock_path);
    }
    pthread_barrier_wait(w->start);
    pthread_barrier_wait(w->start); /* the main thread has read the clock and checked errors */
    double t = *w->t0;
    for (unsigned long i = 0; *w->is_go && w->rc == 0 && !is_done(w, i, t); i++) {
        double begin = t;
        if (one_op(w, i, buf, rbuf) != 0) {
            w->rc = -1;
            break;
        }
        t = now();
        w->ops++;
        if (samples_add(&w->lat, t - begin) != 0)
            w->rc = -1;
    }
    w->finished = t;
    if (w->lock_fd >= 0 && close(w->lock_fd) != 0 && w->rc == 0)
        w->rc = fail("close", w->lock_path);
    free(buf);
    free(rbuf);
    return NULL;
}

static int run_phase(const struct options *opt)
{
    struct worker *ws = calloc(opt->threads, sizeof *ws);
    pthread_t *ts = calloc(opt->threads, sizeof *ts);
    pthread_barrier_t start;
    double t0 = 0;
    bool is_go = true;
    int rc = -1;
    if (ws == NULL || ts == NULL) {
        fprintf(stderr, "fsload: out of memory\n");
        goto out_free;
    }
    pthread_barrier_init(&start, NULL, opt->threads + 1);
    unsigned started = 0;
    for (; started < opt->threads; started++) {
        struct worker *w = &ws[started];
        w->opt = opt;
        w->start = &start;
        w->t0 = &t0;
        w->is_go = &is_go;
        w->lock_fd = -1;
        snprintf(w->dir, sizeof w->dir, "%s/t%u", opt->dir, started);
        if (pthread_create(&ts[started], NULL, worker_main, w) != 0) {
            fprintf(stderr, "fsload: cannot start thread %u\n", started);
            break;
        }
    }
    if (started < opt->threads) {
        /* The barrier counts every thread: those started wait forever. Nothing to clean up in
         * a process that exits now. */
        exit(1);
    }
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < opt->threads; i++)
        if (ws[i].rc != 0)
            is_go = false;
    t0 = now();
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < opt->threads; i++)
        pthread_join(ts[i], NULL);
    pthread_barrier_destroy(&start);

    struct samples all = {0};
    unsigned long ops = 0;
    double end = t0;
    rc = is_go ? 0 : -1;
    for (unsigned i = 0; i < opt->threads; i++) {
        struct worker *w = &ws[i];
        if (w->rc != 0)
            rc = -1;
        ops += w->ops;
        if (w->finished > end)
            end = w->finished;
        for (size_t k = 0; rc == 0 && k < w->lat.n; k++)
            if (samples_add(&all, w->lat.v[k]) != 0)
                rc = -1;
    }
    if (rc == 0) {
        qsort(all.v, all.n, sizeof *all.v, cmp_double);
        double elapsed = end - t0;
        printf("%s threads=%u ops=%lu seconds=%.3f ops_per_sec=%.1f p50_us=%.1f p99_us=%.1f\n",
               phase_names[opt->phase], opt->threads, ops, elapsed,
               elapsed > 0 ? (double)ops / elapsed : 0, percentile(all.v, all.n, 50) * 1e6,
               percentile(all.v, all.n, 99) * 1e6);
    }
    samples_free(&all);
    for (unsigned i = 0; i < opt->threads; i++) {
        samples_free(&ws[i].lat);
        for (size_t k = 0; k < ws[i].n_names; k++)
            free(ws[i].names[k]);
        free(ws[i].names);
    }
out_free:
    free(ts);
    free(ws);
    return rc;
}

/* --- replication lag ---------------------------------------------------------------------- */

/* For each sample: create a file through the writer's mount and close it, then open and read it
 * through the reader's mount until its whole content is there. The lag is the time from the
 * close returning to the reader's read returning the content. */
static int run_lag(const struct options *opt)
{
    struct samples lat = {0};
    char buf[FILE_SIZE], rbuf[FILE_SIZE + 1], name[NAME_MAX_LEN];
    char wpath[4096 + NAME_MAX_LEN], rpath[4096 + NAME_MAX_LEN];
    unsigned long retries = 0;
    int rc = 0;
    for (unsigned long i = 0; rc == 0 && i < opt->n; i++) {
        snprintf(name, sizeof name, "lag%lu", i);
        snprintf(wpath, sizeof wpath, "%s/%s", opt->dir, name);
        snprintf(rpath, sizeof rpath, "%s/%s", opt->reader, name);
        fill(buf, name, i);
        if (create_file(wpath, buf, false) != 0) {
            rc = -1;
            break;
        }
        double closed = now();
        for (;;) {
            ssize_t got = read_file(rpath, rbuf);
            if (got < 0 && errno != ENOENT) {
                rc = fail("read", rpath);
                break;
            }
            double t = now();
            if (got == FILE_SIZE && memcmp(buf, rbuf, FILE_SIZE) == 0) {
                rc = samples_add(&lat, t - closed);
                break;
            }
            if (t - closed > LAG_BOUND) {
                fprintf(stderr, "fsload: lag: %s not visible with its content after %.0f s\n",
                        rpath, LAG_BOUND);
                rc = -1;
                break;
            }
            retries++;
        }
        if (unlink(wpath) != 0 && rc == 0)
            rc = fail("unlink", wpath);
    }
    if (rc == 0) {
        qsort(lat.v, lat.n, sizeof *lat.v, cmp_double);
        printf("lag samples=%zu p50_us=%.1f p99_us=%.1f max_us=%.1f retries=%lu\n", lat.n,
               percentile(lat.v, lat.n, 50) * 1e6, percentile(lat.v, lat.n, 99) * 1e6,
               lat.n > 0 ? lat.v[lat.n - 1] * 1e6 : 0, retries);
    }
    samples_free(&lat);
    return rc;
}

/* --- lock handoff ------------------------------------------------------------------------- */

/* Two processes take turns holding one exclusive lock on DIR/LOCK_FILE: process 0 through
 * DIR_A, process 1 through DIR_B (one directory seen through two mounts of a cluster, or the same
 * path twice). Processes, not threads: fcntl locks belong to the process.
 *
 * The protocol, over a pipe each way:
 * 1. A process that is granted the lock tells the other at once ('g'), and the other asks for the
 *    lock right away, so that it is waiting when the holder releases (through raftfs a release
 *    is a commit, milliseconds away; on local locks the other may ask only after the release).
 *    Every grant but process 0's first is a handoff; the wait measured is request to grant.
 * 2. A process asks again only once the other has said it holds the lock, so the turns alternate
 *    strictly whatever the lock's fairness (the kernel's own locks are not fair). Process p's k-th
 *    increment (from 0) therefore finds the counter at 2k + p.
 * 3. Under the lock, the holder reads the counter record at offset 0 (inside the fcntl range),
 *    checks it, writes it plus one, and releases. A wrong value is a lost update: the lock did not
 *    exclude, or the last holder's write was not visible to the next; the run fails.
 * 4. The first holder granted at or after the deadline says 'x' instead of 'g': it makes its
 *    increment and stops, and the other stops without asking again. A process that fails exits;
 *    the other sees the end of its pipe (or EPIPE) and fails too, so nothing waits forever. */

struct handoff_shared {      /* a MAP_SHARED page of the parent and both children */
    pthread_barrier_t start; /* process-shared: the children's set-up is done, then the go */
    double t0;               /* written by the parent between the two waits */
    bool is_ready[2];        /* written by each child before the first wait */
    bool is_go;              /* written by the parent before the second wait */
};

struct handoff_result { /* what a child sends the parent through its result pipe */
    int rc;
    unsigned long increments;
    unsigned long handoffs;
    double finished;
    size_t n_samples; /* followed by that many doubles: the waits, in seconds */
};

static int write_full(int fd, const void *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* 0 once len bytes are read; -1 on an error or an early end of file (errno 0). */
static int read_full(int fd, void *buf, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t r = read(fd, (char *)buf + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        off += (size_t)r;
    }
    return 0;
}

/* Under the lock: the counter must be `want`; it becomes want + 1. */
static int bump_counter(int fd, const char *path, uint64_t want)
{
    char rec[RECORD_LEN + 1];
    ssize_t r = pread(fd, rec, RECORD_LEN, 0);
    if (r < 0)
        return fail("read the counter of", path);
    rec[r] = '\0';
    char *end;
    errno = 0;
    uint64_t v = strtoull(rec, &end, 10);
    if (r != RECORD_LEN || errno != 0 || end != rec + RECORD_LEN - 1 || *end != '\n') {
        fprintf(stderr, "fsload: %s: the counter record is damaged: %zd bytes \"%.*s\"\n", path, r,
                (int)r, rec);
        return -1;
    }
    if (v != want) {
        fprintf(stderr,
                "fsload: %s: counter %" PRIu64 " read under the lock, want %" PRIu64
                ": a lost update (the lock did not exclude, or the last holder's write was not "
                "visible to the next)\n",
                path, v, want);
        return -1;
    }
    snprintf(rec, sizeof rec, "%020" PRIu64 "\n", v + 1);
    if (pwrite(fd, rec, RECORD_LEN, 0) != RECORD_LEN)
        return fail("write the counter of", path);
    return 0;
}

/* Process `me`'s turns, from the go to the stop (the protocol above). */
static int handoff_turns(const struct options *opt, unsigned me, int fd, const char *path,
                         int to_other, int from_other, const struct handoff_shared *sh,
                         struct handoff_result *res, struct samples *waits)
{
    bool is_fcntl = opt->phase == FCNTL_HANDOFF;
    double deadline = sh->t0 + opt->seconds;
    char word = 'g';
    if (me == 1 && read_full(from_other, &word, 1) != 0)
        goto err_other;
    for (bool is_first = me == 0; word == 'g'; is_first = false) {
        double begin = now();
        if (lock_set(fd, is_fcntl, true, path) != 0)
            return -1;
        double granted = now();
        if (!is_first) {
            res->handoffs++;
            if (samples_add(waits, granted - begin) != 0)
                return -1;
        }
        bool is_last = granted >= deadline;
        if (write_full(to_other, is_last ? "x" : "g", 1) != 0) {
            fprintf(stderr, "fsload: %s: the other process is gone: %s\n", phase_names[opt->phase],
                    strerror(errno));
            return -1;
        }
        if (bump_counter(fd, path, 2 * (uint64_t)res->increments + me) != 0 ||
            lock_set(fd, is_fcntl, false, path) != 0)
            return -1;
        res->increments++;
        res->finished = now();
        if (is_last)
            return 0;
        if (read_full(from_other, &word, 1) != 0)
            goto err_other;
    }
    return 0;
err_other:
    fprintf(stderr, "fsload: %s: no word from the other process: %s\n", phase_names[opt->phase],
            errno != 0 ? strerror(errno) : "it ended");
    return -1;
}

/* The child process `me`: open its path, wait for the go, take its turns, send its figures to
 * the parent. Never returns. */
static void handoff_child(const struct options *opt, unsigned me, const int turn[2][2],
                          const int result[2][2], struct handoff_shared *sh)
{
    signal(SIGPIPE, SIG_IGN); /* a write to a dead peer is EPIPE, reported */
    for (unsigned i = 0; i < 2; i++) {
        close(turn[i][i == me ? 0 : 1]); /* keep: turn[me][1] to write, turn[other][0] */
        close(result[i][0]);
        if (i != me)
            close(result[i][1]);
    }
    char path[4096 + NAME_MAX_LEN];
    snprintf(path, sizeof path, "%s/%s", me == 0 ? opt->dir : opt->reader, LOCK_FILE);
    struct handoff_result res = {.rc = 0};
    struct samples waits = {0};
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        fail("open", path);
    sh->is_ready[me] = fd >= 0;
    pthread_barrier_wait(&sh->start);
    pthread_barrier_wait(&sh->start);
    res.rc = -1;
    if (sh->is_go)
        res.rc = handoff_turns(opt, me, fd, path, turn[me][1], turn[1 - me][0], sh, &res, &waits);
    if (fd >= 0 && close(fd) != 0 && res.rc == 0)
        res.rc = fail("close", path);
    res.n_samples = waits.n;
    int rc = write_full(result[me][1], &res, sizeof res) != 0 ||
                     write_full(result[me][1], waits.v, waits.n * sizeof *waits.v) != 0
                 ? fail("send the figures of", path)
                 : res.rc;
    _exit(rc == 0 ? 0 : 1);
}

/* The counter's value read through DIR/LOCK_FILE, or -1 after a message. */
static int read_counter(const char *dir, uint64_t *out)
{
    char path[4096 + NAME_MAX_LEN], rec[FILE_SIZE + 2];
    snprintf(path, sizeof path, "%s/%s", dir, LOCK_FILE);
    ssize_t got = read_file(path, rec);
    if (got < 0)
        return fail("read", path);
    rec[got] = '\0';
    char *end;
    errno = 0;
    *out = strtoull(rec, &end, 10);
    if (got != RECORD_LEN || errno != 0 || *end != '\n') {
        fprintf(stderr, "fsload: %s: the counter record is damaged: %zd bytes\n", path, got);
        return -1;
    }
    return 0;
}

static int run_handoff(const struct options *opt)
{
    char path[4096 + NAME_MAX_LEN], rec[RECORD_LEN + 1];
    snprintf(path, sizeof path, "%s/%s", opt->dir, LOCK_FILE);
    snprintf(rec, sizeof rec, "%020d\n", 0);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail("create", path);
    if (write(fd, rec, RECORD_LEN) != RECORD_LEN) {
        fail("write", path);
        close(fd);
        return -1;
    }
    if (close(fd) != 0)
        return fail("close", path);

    struct handoff_shared *sh =
        mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        return fail("mmap a shared page for", "the handoff");
    pthread_barrierattr_t attr;
    pthread_barrierattr_init(&attr);
    pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&sh->start, &attr, 3);
    pthread_barrierattr_destroy(&attr);

    int rc = -1;
    int turn[2][2], result[2][2];
    for (unsigned i = 0; i < 2; i++)
        if (pipe(turn[i]) != 0 || pipe(result[i]) != 0) {
            /* Nothing to clean up in a process that exits now. */
            fail("pipe for", "the handoff");
            exit(1);
        }
    pid_t pids[2];
    for (unsigned i = 0; i < 2; i++) {
        fflush(NULL);
        pids[i] = fork();
        if (pids[i] < 0) {
            /* The barrier counts both children: one started waits forever without us. */
            fail("fork for", "the handoff");
            if (i == 1)
                kill(pids[0], SIGKILL);
            exit(1);
        }
        if (pids[i] == 0)
            handoff_child(opt, i, turn, result, sh);
    }
    for (unsigned i = 0; i < 2; i++) {
        close(turn[i][0]);
        close(turn[i][1]);
        close(result[i][1]);
    }
    pthread_barrier_wait(&sh->start);
    sh->is_go = sh->is_ready[0] && sh->is_ready[1];
    sh->t0 = now();
    pthread_barrier_wait(&sh->start);

    struct samples all = {0};
    struct handoff_result res[2] = {{.rc = -1}, {.rc = -1}};
    bool is_ok = sh->is_go;
    for (unsigned i = 0; i < 2; i++) {
        if (read_full(result[i][0], &res[i], sizeof res[i]) != 0) {
            res[i].rc = -1; /* the child died before it could say: its exit status tells */
            is_ok = false;
        }
        for (size_t k = 0; res[i].rc == 0 && k < res[i].n_samples; k++) {
            double x;
            if (read_full(result[i][0], &x, sizeof x) != 0 || samples_add(&all, x) != 0) {
                res[i].rc = -1;
                is_ok = false;
            }
        }
        close(result[i][0]);
    }
    for (unsigned i = 0; i < 2; i++) {
        int status = 0;
        if (waitpid(pids[i], &status, 0) != pids[i]) {
            fail("wait for", "a handoff process");
            is_ok = false;
        } else if (WIFSIGNALED(status)) {
            fprintf(stderr, "fsload: handoff process %u killed by signal %d\n", i,
                    WTERMSIG(status));
            is_ok = false;
        } else if (WEXITSTATUS(status) != 0 || res[i].rc != 0) {
            is_ok = false;
        }
    }
    /* Both mounts must show every increment once both processes are done. */
    unsigned long increments = res[0].increments + res[1].increments;
    for (unsigned i = 0; is_ok && i < 2; i++) {
        const char *dir = i == 0 ? opt->dir : opt->reader;
        uint64_t v;
        if (read_counter(dir, &v) != 0) {
            is_ok = false;
        } else if (v != increments) {
            fprintf(stderr,
                    "fsload: %s/%s: counter %" PRIu64 " after the run, want %lu (the increments "
                    "made): a lost or extra update\n",
                    dir, LOCK_FILE, v, increments);
            is_ok = false;
        }
    }
    if (is_ok) {
        qsort(all.v, all.n, sizeof *all.v, cmp_double);
        double end = res[0].finished > res[1].finished ? res[0].finished : res[1].finished;
        double elapsed = end - sh->t0;
        unsigned long handoffs = res[0].handoffs + res[1].handoffs;
        printf("%s threads=2 ops=%lu seconds=%.3f ops_per_sec=%.1f p50_us=%.1f p99_us=%.1f "
               "increments=%lu\n",
               phase_names[opt->phase], handoffs, elapsed,
               elapsed > 0 ? (double)handoffs / elapsed : 0, percentile(all.v, all.n, 50) * 1e6,
               percentile(all.v, all.n, 99) * 1e6, increments);
        rc = 0;
    }
    samples_free(&all);
    pthread_barrier_destroy(&sh->start);
    munmap(sh, sizeof *sh);
    return rc;
}

/* --- command line --------------------------------------------------------------------------- */

static int usage_error(const char *what, const char *value)
{
    fprintf(stderr, "fsload: %s%s%s\n%s", what, value != NULL ? ": " : "",
            value != NULL ? value : "", USAGE);
    return 2;
}

/* A number in [min, max], whole if is_whole; 0, or 2 after a message naming the option. */
static int parse_number(const char *option, const char *s, double min, double max, bool is_whole,
                        double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max) ||
        (is_whole && v != (double)(unsigned long)v)) {
        fprintf(stderr, "fsload: %s %s: want a %snumber from %g to %g\n%s", option, s,
                is_whole ? "whole " : "", min, max, USAGE);
        return 2;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt = {.threads = 1, .seconds = 3, .n = 0};
    bool has_threads = false, has_n = false;
    double v;
    int c;
    while ((c = getopt(argc, argv, "t:s:n:h")) != -1) {
        switch (c) {
        case 't':
            if (parse_number("-t", optarg, 1, MAX_THREADS, true, &v) != 0)
                return 2;
            opt.threads = (unsigned)v;
            has_threads = true;
            break;
        case 's':
            if (parse_number("-s", optarg, 0, 86400, false, &v) != 0)
                return 2;
            opt.seconds = v;
            break;
        case 'n':
            if (parse_number("-n", optarg, 0, 1e9, true, &v) != 0)
                return 2;
            opt.n = (unsigned long)v;
            has_n = true;
            break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: return usage_error("bad option", NULL);
        }
    }
    if (optind >= argc)
        return usage_error("missing PHASE", NULL);
    size_t p = 0;
    while (p < N_PHASES && strcmp(argv[optind], phase_names[p]) != 0)
        p++;
    if (p == N_PHASES)
        return usage_error("unknown phase", argv[optind]);
    opt.phase = (enum phase)p;
    bool is_pair = opt.phase == LAG || is_handoff(opt.phase);
    if (argc - optind - 1 != (is_pair ? 2 : 1))
        return usage_error(opt.phase == LAG        ? "lag wants WRITER_DIR READER_DIR"
                           : is_handoff(opt.phase) ? "a handoff wants DIR_A DIR_B"
                                                   : "want one DIR",
                           NULL);
    opt.dir = argv[optind + 1];
    opt.reader = is_pair ? argv[optind + 2] : NULL;
    struct stat st;
    for (int i = optind + 1; i < argc; i++)
        if (stat(argv[i], &st) != 0 || !S_ISDIR(st.st_mode))
            return usage_error("not a directory", argv[i]);
    if (opt.phase == LAG) {
        if (opt.n == 0)
            opt.n = 200;
        return run_lag(&opt) == 0 ? 0 : 1;
    }
    if (is_handoff(opt.phase)) {
        if (has_threads || has_n)
            return usage_error("a handoff runs two processes for -s SECONDS; -t and -n do not "
                               "apply",
                               argv[optind]);
        if (opt.seconds == 0)
            return usage_error("a handoff needs a time bound", "-s 0");
        return run_handoff(&opt) == 0 ? 0 : 1;
    }
    if (opt.seconds == 0 && !(opt.n != 0 && (opt.phase == CREATE || opt.phase == FSYNC)) &&
        opt.phase != UNLINK)
        return usage_error("-s 0 (no time bound) needs -n with create or fsync", NULL);
    return run_phase(&opt) == 0 ? 0 : 1;
}
