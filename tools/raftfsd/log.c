/* raftfsd's log lines (see log.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/raftfsd/config.h"
#include "tools/raftfsd/log.h"

/* Whether $JOURNAL_STREAM names the device and inode of fd. */
static bool is_journal(int fd)
{
    const char *env = getenv("JOURNAL_STREAM");
    uintmax_t dev, ino;
    char end;
    struct stat st;
    if (env == NULL || sscanf(env, "%ju:%ju%c", &dev, &ino, &end) != 2 || fstat(fd, &st) != 0)
        return false;
    return (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

void logger_init(struct logger *l, uint64_t id, enum raft_log_level level)
{
    l->id = id;
    atomic_init(&l->level, (int)level);
    l->is_journal = is_journal(STDERR_FILENO);
}

enum raft_log_level logger_set_level(struct logger *l, enum raft_log_level level)
{
    return (enum raft_log_level)atomic_exchange(&l->level, (int)level);
}

void logger_write(void *ctx, enum raft_log_level level, const char *text)
{
    struct logger *l = ctx;
    if ((int)level > atomic_load(&l->level))
        return;
    /* One fprintf per line: stdio locks the stream, so lines of two threads never mix. */
    if (l->is_journal) {
        static const int priority[] = {
            [RAFT_LOG_ERROR] = 3, [RAFT_LOG_WARN] = 4, [RAFT_LOG_INFO] = 6, [RAFT_LOG_DEBUG] = 7};
        fprintf(stderr, "<%d>node %" PRIu64 ": %s\n", priority[level], l->id, text);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char date[32] = "?";
    clock_gettime(CLOCK_REALTIME, &ts);
    if (gmtime_r(&ts.tv_sec, &tm) != NULL)
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ raftfsd %" PRIu64 " %s: %s\n", date, ts.tv_nsec / 1000000, l->id,
            config_log_level_name(level), text);
}
