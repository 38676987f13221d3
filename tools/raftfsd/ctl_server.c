/* raftfsd's control server (docs/ctl-protocol.md): an accept thread on a root-only UNIX socket
 * and one thread per connection, at most MAX_CONNS. A connection thread reads a request, asks
 * the runtime, waits for the completion on a waiter of its own and answers. Neither the FUSE
 * threads nor the runtime's threads ever wait for a client: the runtime only calls a completion
 * that signals a waiter.
 *
 * Invariants:
 *  1. Runtime calls are made with srv->lock held and only while !srv->is_stopping, so once
 *     ctl_server_stop has set is_stopping no new call reaches the runtime.
 *  2. A waiter is freed by the last of its two holders (the connection thread and the runtime's
 *     completion): the completion may come after the server is gone, and touches only it.
 *  3. A conn slot is reused only after its thread has been joined. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs.h"
#include "tools/ctl/proto.h"
#include "store/command.h"
#include "lib/error.h"
#include "store/fsm.h"
#include "tools/raftfsd/ctl_server.h"

#define MAX_CONNS       16
#define IO_TIMEOUT_S    5     /* for a client to send a request or take a response */
#define CHANGE_TIMEOUT  30000 /* ms: adding a voter waits for it to catch up */
#define REQUEST_TIMEOUT 10000 /* ms: transfer, snapshot, verify */

struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned refs;     /* protected by lock */
    bool is_done;      /* protected by lock */
    bool is_abandoned; /* protected by lock: the server is stopping */
    int status;
    void *data; /* the runtime's result data, malloc'd */
};

struct conn {
    struct ctl_server *srv;
    int fd;
    pthread_t thread;
    bool is_used;        /* protected by srv->lock */
    bool is_finished;    /* protected by srv->lock: the thread returned, join it */
    struct waiter *wait; /* protected by srv->lock: the request being waited for */
};

struct ctl_server {
    struct raft_runtime *rt;
    struct store_fsm *fsm;
    struct fs_locks *locks;
    ctl_server_log_fn *log;
    void *log_ctx;
    char *path;
    int fd;
    pthread_t accept_thread;
    pthread_mutex_t lock;
    bool is_stopping;             /* protected by lock */
    struct conn conns[MAX_CONNS]; /* protected by lock */
};

/* --- waiters ------------------------------------------------------------------------------ */

static void waiter_unref(struct waiter *w)
{
    pthread_mutex_lock(&w->lock);
    bool is_last = --w->refs == 0;
    pthread_mutex_unlock(&w->lock);
    if (!is_last)
        return;
    free(w->data);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* The runtime's completion (any runtime thread). */
static void waiter_done(void *arg, int status, struct raft_apply_result *result)
{
    struct waiter *w = arg;
    pthread_mutex_lock(&w->lock);
    w->status = status;
    if (status == 0 && result != NULL) {
        w->data = result->data;
        result->data = NULL;
    }
    w->is_done = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    waiter_unref(w);
}

static struct waiter *waiter_new(void)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->refs = 2;
    return w;
}

/* --- requests ------------------------------------------------------------------------------ */

static void set_error(struct ctl_msg *resp, int code, const char *text)
{
    memset(resp, 0, sizeof *resp);
    resp->type = CTL_RESP_ERROR;
    resp->error.code = code;
    snprintf(resp->error.text, sizeof resp->error.text, "%s", text);
}

/* Start the runtime request of req with waiter w as its completion's argument. */
static int start_request(struct raft_runtime *rt, const struct ctl_msg *req, struct waiter *w)
{
    switch (req->type) {
    case CTL_REQ_CHANGE:
        return raft_runtime_change(rt, req->change.op, req->change.server,
                                   req->change.address[0] != '\0' ? req->change.address : NULL,
                                   req->change.expect_index, CHANGE_TIMEOUT, waiter_done, w);
    case CTL_REQ_TRANSFER:
        return raft_runtime_transfer(rt, req->transfer.server, REQUEST_TIMEOUT, waiter_done, w);
    case CTL_REQ_SNAPSHOT: return raft_runtime_snapshot(rt, REQUEST_TIMEOUT, waiter_done, w);
    case CTL_REQ_VERIFY: return raft_runtime_verify(rt, REQUEST_TIMEOUT, waiter_done, w);
    case CTL_REQ_READ_BARRIER:
        return raft_runtime_read_index(rt, CTL_READ_BARRIER_TIMEOUT_MS, waiter_done, w);
    default: return RAFT_EINVAL;
    }
}

static struct ctl_time wire_time(struct store_fsm_time t)
{
    return (struct ctl_time){.sec = t.sec, .nsec = t.nsec};
}

/* store_fsm_locks' callback: one record into a LOCKS response; stops when it is full. */
static int add_lock(void *arg, const struct store_fsm_lock *l)
{
    struct ctl_locks *ls = arg;
    if (ls->n == CTL_LOCKS_MAX) {
        ls->is_truncated = true;
        return 1;
    }
    ls->locks[ls->n++] = (struct ctl_lock){
        .ino = l->ino,
        .node = l->node,
        .session = l->session,
        .pid = l->pid,
        .kind = l->kind == STORE_CMD_LOCK_FLOCK ? CTL_LOCK_FLOCK : CTL_LOCK_POSIX,
        .type = l->type == STORE_CMD_LOCK_WRITE ? CTL_LOCK_WRITE : CTL_LOCK_READ,
        .state = l->state == STORE_FSM_LOCK_HELD      ? CTL_LOCK_HELD
                 : l->state == STORE_FSM_LOCK_WAITING ? CTL_LOCK_WAITING
                                                      : CTL_LOCK_DELAYED,
        .start = l->start,
        .len = l->len,
        .token = l->token,
        .time = wire_time(l->time),
    };
    return 0;
}

static int add_session(void *arg, const struct store_fsm_session *e)
{
    struct ctl_sessions *ss = arg;
    if (ss->n == CTL_SESSIONS_MAX) {
        ss->is_truncated = true;
        return 1;
    }
    bool is_ended = e->state == STORE_FSM_SESSION_ENDED;
    ss->sessions[ss->n++] = (struct ctl_session){
        .id = e->id,
        .node = e->node,
        .state = is_ended ? CTL_SESSION_ENDED : CTL_SESSION_LIVE,
        .opened = wire_time(e->opened),
        .ended = is_ended ? wire_time(e->ended) : (struct ctl_time){0},
    };
    return 0;
}

/* Answer LOCKS or SESSIONS from the local state machine (its last applied state). */
static void read_fsm(struct store_fsm *fsm, enum ctl_type type, struct ctl_msg *resp)
{
    int rc;
    if (type == CTL_REQ_LOCKS) {
        resp->type = CTL_RESP_LOCKS;
        rc = store_fsm_locks(fsm, 0, add_lock, &resp->locks);
    } else {
        resp->type = CTL_RESP_SESSIONS;
        rc = store_fsm_sessions(fsm, add_session, &resp->sessions);
    }
    if (rc != 0)
        set_error(resp, rc, rfs_strerror(rc));
}

/* Answer OWN_SESSION from the node's lock state. */
static void own_session(struct fs_locks *locks, struct ctl_msg *resp)
{
    struct fs_locks_local own;
    fs_locks_local(locks, &own);
    resp->type = CTL_RESP_OWN_SESSION;
    resp->own.state = own.state == FS_LOCKS_OPEN   ? CTL_OWN_OPEN
                      : own.state == FS_LOCKS_LOST ? CTL_OWN_LOST
                                                   : CTL_OWN_OPENING;
    resp->own.session = own.session;
    resp->own.since_ms = own.since_ms;
    snprintf(resp->own.reason, sizeof resp->own.reason, "%s", own.reason);
}

/* Run one request and fill resp. Returns false when the server is stopping (no answer). */
static bool handle(struct conn *c, const struct ctl_msg *req, struct ctl_msg *resp)
{
    struct ctl_server *srv = c->srv;
    memset(resp, 0, sizeof *resp);
    struct waiter *w = NULL;
    if (req->type >= CTL_RESP_ERROR) {
        set_error(resp, 0, "a response type where a request was expected");
        return true;
    }
    if (req->type == CTL_REQ_LOCKS || req->type == CTL_REQ_SESSIONS) {
        /* The state machine outlives the server (closed after ctl_server_stop). */
        read_fsm(srv->fsm, req->type, resp);
        return true;
    }
    if (req->type == CTL_REQ_OWN_SESSION) {
        own_session(srv->locks, resp); /* the lock state outlives the server too */
        return true;
    }
    bool is_now =
        req->type == CTL_REQ_STATUS || req->type == CTL_REQ_STATS || req->type == CTL_REQ_FAULTS;
    if (!is_now && (w = waiter_new()) == NULL) {
        set_error(resp, RFS_ENOMEM, rfs_strerror(RFS_ENOMEM));
        return true;
    }
    pthread_mutex_lock(&srv->lock);
    if (srv->is_stopping) {
        pthread_mutex_unlock(&srv->lock);
        free(w);
        return false;
    }
    int rc = 0;
    if (req->type == CTL_REQ_STATUS) {
        resp->type = CTL_RESP_STATUS;
        raft_runtime_status(srv->rt, &resp->status);
    } else if (req->type == CTL_REQ_STATS) {
        resp->type = CTL_RESP_STATS;
        raft_runtime_stats(srv->rt, &resp->stats);
    } else if (req->type == CTL_REQ_FAULTS) {
        /* Waits only for the loop thread, which never waits for this server. */
        char why[CTL_TEXT_MAX];
        rc = raft_runtime_set_faults(srv->rt, req->faults.spec, why, sizeof why);
        if (rc == 0)
            resp->type = CTL_RESP_OK;
        else
            set_error(resp, rc, rc == RAFT_EINVAL ? why : raft_strerror(rc));
        rc = 0;
    } else if ((rc = start_request(srv->rt, req, w)) == 0) {
        c->wait = w;
    }
    pthread_mutex_unlock(&srv->lock);
    if (w == NULL)
        return true;
    if (rc != 0) {
        free(w); /* refused now: the runtime will not call waiter_done */
        set_error(resp, rc, raft_strerror(rc));
        return true;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->is_done && !w->is_abandoned)
        pthread_cond_wait(&w->cond, &w->lock);
    bool is_done = w->is_done;
    pthread_mutex_unlock(&w->lock);
    pthread_mutex_lock(&srv->lock);
    c->wait = NULL;
    pthread_mutex_unlock(&srv->lock);
    if (!is_done) {
        waiter_unref(w);
        return false;
    }
    if (w->status != 0) {
        set_error(resp, w->status, raft_strerror(w->status));
    } else if (req->type == CTL_REQ_VERIFY) {
        const struct raft_runtime_verify *v = w->data;
        resp->type = CTL_RESP_VERIFY;
        resp->verify.index = v->index;
        resp->verify.n = v->n;
        for (unsigned i = 0; i < v->n; i++) {
            resp->verify.nodes[i].id = v->nodes[i].id;
            resp->verify.nodes[i].status = v->nodes[i].status;
            memcpy(resp->verify.nodes[i].digest, v->nodes[i].digest, CTL_DIGEST_SIZE);
        }
    } else {
        resp->type = CTL_RESP_OK;
    }
    waiter_unref(w);
    return true;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct ucred cred;
    socklen_t clen = sizeof cred;
    struct ctl_msg req, resp;
    char err[CTL_TEXT_MAX - 32]; /* room for the prefix below */
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || cred.uid != 0) {
        set_error(&resp, 0, "permission denied: raftfs-ctl must run as root");
        ctl_send(c->fd, &resp);
        goto out;
    }
    for (;;) {
        int rc = ctl_recv(c->fd, &req, err, sizeof err);
        if (rc == RFS_EDECODE) {
            char text[CTL_TEXT_MAX];
            snprintf(text, sizeof text, "bad control frame: %s", err);
            set_error(&resp, 0, text);
            ctl_send(c->fd, &resp);
        }
        if (rc == 0) {
            char line[64];
            snprintf(line, sizeof line, "control request: %s", ctl_type_name(req.type));
            c->srv->log(c->srv->log_ctx, RAFT_LOG_DEBUG, line);
        }
        if (rc != 0 || !handle(c, &req, &resp) || ctl_send(c->fd, &resp) != 0)
            break;
    }
out:
    /* The client sees the end of the stream now; the descriptor is closed when the thread is
     * joined (reap_locked, ctl_server_stop). */
    shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_lock(&c->srv->lock);
    c->is_finished = true;
    pthread_mutex_unlock(&c->srv->lock);
    return NULL;
}

/* --- the socket ---------------------------------------------------------------------------- */

/* With srv->lock held: join the threads of finished connections and free their slots. */
static void reap_locked(struct ctl_server *srv)
{
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &srv->conns[i];
        if (!c->is_used || !c->is_finished)
            continue;
        pthread_join(c->thread, NULL);
        close(c->fd);
        c->is_used = false;
    }
}

static void refuse(int fd, const char *text)
{
    struct ctl_msg resp;
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    set_error(&resp, 0, text);
    ctl_send(fd, &resp);
    close(fd);
}

static void *accept_main(void *arg)
{
    struct ctl_server *srv = arg;
    for (;;) {
        int fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
        pthread_mutex_lock(&srv->lock);
        if (srv->is_stopping) {
            pthread_mutex_unlock(&srv->lock);
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        if (fd < 0) {
            int e = errno;
            pthread_mutex_unlock(&srv->lock);
            /* Out of descriptors or memory: give the process a moment instead of spinning.
             * Anything else is a client that left before accept, or EINTR. */
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM)
                nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
            continue;
        }
        reap_locked(srv);
        struct conn *c = NULL;
        for (unsigned i = 0; i < MAX_CONNS && c == NULL; i++)
            if (!srv->conns[i].is_used)
                c = &srv->conns[i];
        struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
        if (c != NULL) {
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            *c = (struct conn){.srv = srv, .fd = fd, .is_used = true};
            if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
                c->is_used = false;
                c = NULL;
            }
        }
        pthread_mutex_unlock(&srv->lock);
        if (c == NULL)
            refuse(fd, "too many control connections; try again");
    }
}

/* Make room for the socket at path: a stale socket is removed; a socket a live server answers
 * on, or any other file, is an error. */
static int clear_path(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "--ctl-socket %s: %s", path, strerror(errno));
        return RFS_EIO;
    }
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "--ctl-socket %s: exists and is not a socket; not touching it", path);
        return RFS_EINVAL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return RFS_EIO;
    }
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof *sa);
    int e = errno;
    close(fd);
    if (rc == 0) {
        snprintf(err, errlen, "--ctl-socket %s: another daemon is serving it", path);
        return RFS_EINVAL;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "--ctl-socket %s: %s", path, strerror(e));
        return RFS_EIO;
    }
    if (unlink(path) != 0) {
        snprintf(err, errlen, "--ctl-socket %s: removing the stale socket: %s", path,
                 strerror(errno));
        return RFS_EIO;
    }
    return 0;
}

/* Create the parent directory of path (mode 0700) if it is missing. */
static int make_parent(const char *path, char *err, size_t errlen)
{
    char dir[sizeof((struct sockaddr_un *)0)->sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "--ctl-socket %s: creating %s: %s", path, dir, strerror(errno));
        return RFS_EIO;
    }
    return 0;
}

int ctl_server_start(const char *path, struct raft_runtime *rt, struct store_fsm *fsm,
                     struct fs_locks *locks, ctl_server_log_fn *log, void *log_ctx,
                     struct ctl_server **out, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path[0] == '\0' || strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "--ctl-socket %s: want a path of 1 to %zu bytes", path,
                 sizeof sa.sun_path - 1);
        return RFS_EINVAL;
    }
    strcpy(sa.sun_path, path);
    int rc;
    if ((rc = make_parent(path, err, errlen)) != 0 || (rc = clear_path(path, &sa, err, errlen)))
        return rc;
    struct ctl_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL || (srv->path = strdup(path)) == NULL) {
        free(srv);
        snprintf(err, errlen, "out of memory");
        return RFS_ENOMEM;
    }
    srv->rt = rt;
    srv->fsm = fsm;
    srv->locks = locks;
    srv->log = log;
    srv->log_ctx = log_ctx;
    srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto err_after_alloc;
    }
    if (bind(srv->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "--ctl-socket %s: %s", path, strerror(errno));
        goto err_after_socket;
    }
    /* Root only: the mode, and the peer's uid checked on every connection. */
    if (chmod(path, 0600) != 0 || listen(srv->fd, MAX_CONNS) != 0) {
        snprintf(err, errlen, "--ctl-socket %s: %s", path, strerror(errno));
        goto err_after_bind;
    }
    pthread_mutex_init(&srv->lock, NULL);
    /* The server's threads (the connection threads inherit it from the accept thread) take no
     * signals: SIGTERM and SIGINT must reach the FUSE session's threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = pthread_create(&srv->accept_thread, NULL, accept_main, srv);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the control server's thread");
        pthread_mutex_destroy(&srv->lock);
        goto err_after_bind;
    }
    *out = srv;
    return 0;

err_after_bind:
    unlink(path);
err_after_socket:
    close(srv->fd);
err_after_alloc:
    free(srv->path);
    free(srv);
    return RFS_EIO;
}

void ctl_server_stop(struct ctl_server *srv)
{
    if (srv == NULL)
        return;
    pthread_mutex_lock(&srv->lock);
    srv->is_stopping = true;
    for (unsigned i = 0; i < MAX_CONNS; i++) {
        struct conn *c = &srv->conns[i];
        if (!c->is_used)
            continue;
        shutdown(c->fd, SHUT_RDWR); /* wakes a read or a write */
        if (c->wait != NULL) {
            pthread_mutex_lock(&c->wait->lock);
            c->wait->is_abandoned = true;
            pthread_cond_signal(&c->wait->cond);
            pthread_mutex_unlock(&c->wait->lock);
        }
    }
    pthread_mutex_unlock(&srv->lock);
    shutdown(srv->fd, SHUT_RDWR); /* wakes accept */
    pthread_join(srv->accept_thread, NULL);
    for (unsigned i = 0; i < MAX_CONNS; i++)
        if (srv->conns[i].is_used) {
            pthread_join(srv->conns[i].thread, NULL);
            close(srv->conns[i].fd);
        }
    close(srv->fd);
    unlink(srv->path);
    pthread_mutex_destroy(&srv->lock);
    free(srv->path);
    free(srv);
}
