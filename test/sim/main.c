/* raftsim: run the deterministic simulation over a range of seeds (in worker processes), or
 * replay one seed with its full trace.
 *
 *   raftsim --seeds COUNT --seed-start FIRST [--tap FILE] [--stop-on-failure] [--nodes N]
 *           [--jobs J]
 *   raftsim --seed N [--trace] [--nodes N]
 *
 * Output does not depend on the number of workers: results are collected per seed and printed
 * in seed order; a failing seed is replayed in the parent to print its trace. Exit status 1 when
 * any seed failed, 2 on bad usage. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test/sim/sim.h"

#define MAX_FAIL_TRACES 3 /* failing seeds whose trace is printed in a batch run */

enum seed_status {
    SEED_NOT_RUN = 0,
    SEED_PASSED,
    SEED_FAILED,
    SEED_GAVE_UP,
};

struct seed_slot {
    _Atomic int status;
    unsigned nodes;
    char reason[sizeof(((struct sim_result *)0)->reason)];
};

struct shared {
    atomic_ullong next; /* index of the next seed to hand out */
    atomic_int stop;
    struct seed_slot slots[];
};

static void usage(void)
{
    fprintf(stderr, "usage: raftsim --seeds COUNT --seed-start FIRST [--tap FILE] "
                    "[--stop-on-failure] [--nodes N] [--jobs J]\n"
                    "       raftsim --seed N [--trace] [--nodes N]\n");
    exit(2);
}

static uint64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0') {
        usage();
    }
    return v;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static unsigned nodes_of(uint64_t seed, unsigned forced)
{
    static const unsigned sizes[3] = {3, 5, 7};
    return forced ? forced : sim_script_of(seed) ? 5 : sizes[seed % 3];
}

static void worker(struct shared *sh, uint64_t count, uint64_t first, unsigned nodes,
                   bool stop_on_failure)
{
    for (;;) {
        if (atomic_load(&sh->stop)) {
            return;
        }
        uint64_t i = atomic_fetch_add(&sh->next, 1);
        if (i >= count) {
            return;
        }
        struct sim_result res;
        sim_run(first + i, nodes, NULL, NULL, &res);
        struct seed_slot *s = &sh->slots[i];
        s->nodes = nodes_of(first + i, nodes);
        memcpy(s->reason, res.reason, sizeof s->reason);
        atomic_store(&s->status, res.is_failed     ? SEED_FAILED
                                 : res.has_gave_up ? SEED_GAVE_UP
                                                   : SEED_PASSED);
        if (res.is_failed && stop_on_failure) {
            atomic_store(&sh->stop, 1);
        }
    }
}

static int run_one(uint64_t seed, unsigned nodes, bool trace)
{
    struct sim_result res;
    sim_run(seed, nodes, trace ? stdout : NULL, stdout, &res);
    if (!res.is_failed) {
        printf("ok seed %llu (%u nodes): %s\n", (unsigned long long)seed, nodes_of(seed, nodes),
               res.reason);
    }
    return res.is_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    uint64_t count = 0, first = 1, seed = 0;
    bool has_seed = false, trace = false, stop_on_failure = false;
    unsigned nodes = 0, jobs = 2;
    const char *tap = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--seeds") && has_value) {
            count = parse_u64(argv[++i]);
        } else if (!strcmp(a, "--seed-start") && has_value) {
            first = parse_u64(argv[++i]);
        } else if (!strcmp(a, "--seed") && has_value) {
            seed = parse_u64(argv[++i]);
            has_seed = true;
        } else if (!strcmp(a, "--tap") && has_value) {
            tap = argv[++i];
        } else if (!strcmp(a, "--nodes") && has_value) {
            nodes = (unsigned)parse_u64(argv[++i]);
            if (nodes == 0 || nodes + 2 > SIM_MAX_NODES) {
                usage();
            }
        } else if (!strcmp(a, "--jobs") && has_value) {
            jobs = (unsigned)parse_u64(argv[++i]);
            if (jobs == 0 || jobs > 64) {
                usage();
            }
        } else if (!strcmp(a, "--trace")) {
            trace = true;
        } else if (!strcmp(a, "--stop-on-failure")) {
            stop_on_failure = true;
        } else {
            usage();
        }
    }
    if (has_seed) {
        return run_one(seed, nodes, trace);
    }
    if (count == 0) {
        usage();
    }

    size_t size = sizeof(struct shared) + count * sizeof(struct seed_slot);
    struct shared *sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("raftsim: mmap");
        return 2;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fflush(stdout);
    if (jobs > count) {
        jobs = (unsigned)count;
    }
    unsigned running = 0;
    for (unsigned j = 0; j < jobs; j++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("raftsim: fork");
            break;
        }
        if (pid == 0) {
            worker(sh, count, first, nodes, stop_on_failure);
            _exit(0);
        }
        running++;
    }
    if (running == 0) {
        worker(sh, count, first, nodes, stop_on_failure);
    }
    bool is_tty = isatty(STDOUT_FILENO);
    bool crashed = false;
    while (running > 0) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid > 0) {
            running--;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                crashed = true;
            }
            continue;
        }
        if (is_tty) {
            uint64_t done = 0;
            for (uint64_t i = 0; i < count; i++) {
                done += atomic_load(&sh->slots[i].status) != SEED_NOT_RUN;
            }
            printf("\rsim: %llu/%llu seeds", (unsigned long long)done, (unsigned long long)count);
            fflush(stdout);
        }
        struct timespec nap = {0, 100 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    if (is_tty) {
        printf("\r");
    }

    FILE *tf = NULL;
    if (tap) {
        tf = fopen(tap, "w");
        if (tf == NULL) {
            perror(tap);
            return 2;
        }
    }
    uint64_t passed = 0, failed = 0, gave_up = 0, traces = 0, ran = 0;
    for (uint64_t i = 0; i < count; i++) {
        struct seed_slot *s = &sh->slots[i];
        int status = atomic_load(&s->status);
        uint64_t sd = first + i;
        if (status == SEED_NOT_RUN) {
            continue;
        }
        ran++;
        if (status == SEED_FAILED) {
            failed++;
            if (tf) {
                fprintf(tf, "not ok %llu - seed %llu (%u nodes): %s\n", (unsigned long long)ran,
                        (unsigned long long)sd, s->nodes, s->reason);
            }
            if (traces++ < MAX_FAIL_TRACES) {
                /* Deterministic: the replay fails the same way and prints the trace. */
                fflush(stdout);
                struct sim_result res;
                sim_run(sd, nodes, NULL, stdout, &res);
                if (!res.is_failed) {
                    printf("FAIL seed %llu: %s (and the replay passed: nondeterminism!)\n",
                           (unsigned long long)sd, s->reason);
                }
            } else {
                printf("FAIL seed %llu: %s\n", (unsigned long long)sd, s->reason);
            }
        } else {
            if (status == SEED_GAVE_UP) {
                gave_up++;
            } else {
                passed++;
            }
            if (tf) {
                fprintf(tf, "ok %llu - seed %llu (%u nodes): %s%s\n", (unsigned long long)ran,
                        (unsigned long long)sd, s->nodes, s->reason,
                        status == SEED_GAVE_UP ? " # SKIP linearizability check gave up" : "");
            }
        }
    }
    if (crashed) {
        failed++;
        printf("FAIL: a worker process died (run the seeds one by one to find it)\n");
        if (tf) {
            fprintf(tf, "not ok %llu - a worker process died\n", (unsigned long long)(ran + 1));
        }
    }
    if (tf) {
        fclose(tf);
    }
    printf("sim: %llu passed, %llu failed, %llu gave up, elapsed %.1f s\n",
           (unsigned long long)passed, (unsigned long long)failed, (unsigned long long)gave_up,
           seconds_since(&t0));
    munmap(sh, size);
    return failed ? 1 : 0;
}
