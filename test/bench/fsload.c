/* fsload: the small-file load generator of `make bench` (test/bench/run-smallfile). One phase of
 * the workload per run, on any directory (a raftfs mount, a local directory, a passthrough
 * mount), by closed-loop threads that each work in their own subdirectory; prints one line of
 * figures. Also measures the replication lag between two mounts of one cluster. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "usage: fsload [-t THREADS] [-s SECONDS] [-n FILES] PHASE DIR\n"                               \
    "       fsload [-n COUNT] lag WRITER_DIR READER_DIR\n"                                         \
    "phases: create fsync stat read rename lock unlink\n"

#define FILE_SIZE    4096
#define MAX_THREADS  256
#define LAG_BOUND    10.0 /* seconds a written file may take to show on the other mount */
#define NAME_MAX_LEN 64

enum phase { CREATE, FSYNC, STAT, READ, RENAME, LOCK, UNLINK, LAG };

static const char *const phase_names[] = {"create", "fsync", "stat",   "read",
                                          "rename", "lock",  "unlink", "lag"};
#define N_PHASES (sizeof phase_names / sizeof phase_names[0])

struct options {
    enum phase phase;
    unsigned threads;
    double seconds;     /* time bound of create, fsync, stat, read, rename, lock; 0: none */
    unsigned long n;    /* files per thread for create and fsync (0: no bound); lag samples */
    const char *dir;    /* the directory worked in; the writer's for lag */
    const char *reader; /* lag only */
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

/* --- the workload threads ----------------------------------------------------------------- */

struct worker {
    const struct options *opt;
    pthread_barrier_t *start; /* shared: every thread's files are listed before the clock runs */
    const double *t0;         /* written by the main thread before the barrier releases */
    const bool *is_go;        /* likewise: false if any thread's set-up failed */
    char dir[4096];           /* DIR/tK */
    char **names;             /* the regular files found in dir (stat, read, unlink); owned */
    size_t n_names;
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
    case LAG: break;
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
    double v;
    int c;
    while ((c = getopt(argc, argv, "t:s:n:h")) != -1) {
        switch (c) {
        case 't':
            if (parse_number("-t", optarg, 1, MAX_THREADS, true, &v) != 0)
                return 2;
            opt.threads = (unsigned)v;
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
    int want = opt.phase == LAG ? 2 : 1;
    if (argc - optind - 1 != want)
        return usage_error(opt.phase == LAG ? "lag wants WRITER_DIR READER_DIR" : "want one DIR",
                           NULL);
    opt.dir = argv[optind + 1];
    opt.reader = opt.phase == LAG ? argv[optind + 2] : NULL;
    struct stat st;
    for (int i = optind + 1; i < argc; i++)
        if (stat(argv[i], &st) != 0 || !S_ISDIR(st.st_mode))
            return usage_error("not a directory", argv[i]);
    if (opt.phase == LAG) {
        if (opt.n == 0)
            opt.n = 200;
        return run_lag(&opt) == 0 ? 0 : 1;
    }
    if (opt.seconds == 0 && !(opt.n != 0 && (opt.phase == CREATE || opt.phase == FSYNC)) &&
        opt.phase != UNLINK)
        return usage_error("-s 0 (no time bound) needs -n with create or fsync", NULL);
    return run_phase(&opt) == 0 ? 0 : 1;
}
