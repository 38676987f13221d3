/* raftfsd's log: one line per message on stderr, at or above a level that SIGHUP can change;
 * ISO 8601 timestamps for a person, or sd-daemon(3)'s "<N>" priority prefixes when stderr is
 * the journal (which stamps lines itself). */
#ifndef RAFTFSD_LOG_H
#define RAFTFSD_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "raft/runtime/runtime.h"

/* Shared by every thread that logs: level is the only field that changes after logger_init. */
struct logger {
    uint64_t id;      /* the node, named on every line */
    atomic_int level; /* enum raft_log_level: less urgent lines are dropped */
    bool is_journal;
};

/* Set up l for node id at level. stderr is the journal when $JOURNAL_STREAM names its device
 * and inode ("DEV:INO", systemd.exec(5)). */
void logger_init(struct logger *l, uint64_t id, enum raft_log_level level);

/* Write one line of text at level, unless it is less urgent than l's level. The signature of
 * raft_runtime_config.log: ctx is the struct logger. Any thread. */
void logger_write(void *ctx, enum raft_log_level level, const char *text);

/* Change the level (any thread); returns the previous one. */
enum raft_log_level logger_set_level(struct logger *l, enum raft_log_level level);

#endif
