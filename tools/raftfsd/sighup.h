/* raftfsd's SIGHUP: reread what can change without a restart (the log level) and never stop. */
#ifndef RAFTFSD_SIGHUP_H
#define RAFTFSD_SIGHUP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tools/raftfsd/config.h"
#include "tools/raftfsd/log.h"

/* The thread that takes SIGHUP. SIGHUP must be blocked in every thread of the process (block
 * it in main before any thread starts; threads inherit the mask): it then waits, pending, for
 * this thread's sigwait, and no handler runs, libfuse's included (whose handler would end the
 * FUSE session and so the daemon). */
struct sighup {
    pthread_t thread;
    struct logger *log;
    const struct args *args; /* the settings at start: the file read, --log-level given or not */
    atomic_bool is_stopping;
};

/* Block SIGHUP in the calling thread, and so in every thread it starts afterwards. */
void sighup_block(void);

/* Start the thread. log and args are borrowed until sighup_stop. Each SIGHUP rereads the
 * configuration file of args (the one given with -c, else the default one if it exists): its
 * log-level becomes log's level, unless --log-level was given on the command line, which wins
 * as it did at start; the file's other settings are checked but take effect at the next start.
 * A file that cannot be read or parsed changes nothing. Every reread is logged. Returns 0 or
 * an errno value from pthread_create. */
int sighup_start(struct sighup *h, struct logger *log, const struct args *args);

/* Stop and join the thread. */
void sighup_stop(struct sighup *h);

#endif
