/* raftfsd's SIGHUP thread (see sighup.h). */
#include <signal.h>
#include <stdio.h>

#include "tools/raftfsd/sighup.h"

void sighup_block(void)
{
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
}

static void reload(struct sighup *h)
{
    const struct args *a = h->args;
    const char *file = a->config_file != NULL ? a->config_file : CONFIG_DEFAULT_FILE;
    bool is_fixed = a->is_set[CONFIG_LOG_LEVEL] && a->origin[CONFIG_LOG_LEVEL].file == NULL;
    enum raft_log_level now = (enum raft_log_level)atomic_load(&h->log->level);
    struct args next;
    char err[512], text[1200];
    config_init(&next);
    if (config_load(&next, file, a->config_file == NULL, err, sizeof err) != 0) {
        snprintf(text, sizeof text, "SIGHUP: %s; the log level stays %s", err,
                 config_log_level_name(now));
        logger_write(h->log, RAFT_LOG_WARN, text);
        config_free(&next);
        return;
    }
    enum raft_log_level level = is_fixed ? a->log_level : next.log_level;
    snprintf(text, sizeof text, "SIGHUP: %s %s: log level %s%s", next.config_file ? "reread" : "no",
             file, config_log_level_name(level),
             is_fixed ? " (--log-level was given, and wins over the file)"
                      : "; other settings take effect at the next start");
    config_free(&next);
    /* Said at the more verbose of the two levels, so that a change in either direction shows. */
    if (level < now)
        logger_write(h->log, RAFT_LOG_INFO, text);
    logger_set_level(h->log, level);
    if (level >= now)
        logger_write(h->log, RAFT_LOG_INFO, text);
}

static void *sighup_main(void *arg)
{
    struct sighup *h = arg;
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    for (;;) {
        int sig;
        if (sigwait(&hup, &sig) != 0)
            continue;
        if (atomic_load(&h->is_stopping))
            return NULL;
        reload(h);
    }
}

int sighup_start(struct sighup *h, struct logger *log, const struct args *args)
{
    h->log = log;
    h->args = args;
    atomic_init(&h->is_stopping, false);
    return pthread_create(&h->thread, NULL, sighup_main, h);
}

void sighup_stop(struct sighup *h)
{
    atomic_store(&h->is_stopping, true);
    pthread_kill(h->thread, SIGHUP); /* directed at the thread: its sigwait takes it */
    pthread_join(h->thread, NULL);
}
