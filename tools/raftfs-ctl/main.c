/* raftfs-ctl: the administration tool of raftfs. Dispatches from a table of subcommands, one
 * file per group, and talks to the local raftfsd over its control socket; see raftfs-ctl(8). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/error.h"
#include "tools/raftfs-ctl/ctl.h"

/* The daemon bounds every request (30 s for a membership change); this bounds the wait for it. */
#define RESPONSE_TIMEOUT_S 60

static const struct ctl_command commands[] = {
    {"status", ctl_status, "[--json]", "this node's role, term, leader, indexes and members"},
    {"members", ctl_members, "[--json]", "the members of the configuration"},
    {"add-voter", ctl_add_voter, "ID HOST:PORT [--expect-index N]",
     "add a voting member (as a non-voter until it caught up)"},
    {"add-nonvoter", ctl_add_nonvoter, "ID HOST:PORT [--expect-index N]",
     "add a member that receives the log but does not vote"},
    {"remove", ctl_remove, "ID [--expect-index N]", "remove a member"},
    {"demote", ctl_demote, "ID [--expect-index N]", "turn a voter into a non-voter"},
    {"transfer-leader", ctl_transfer_leader, "[ID]",
     "hand leadership to ID, or to the most up-to-date voter"},
    {"snapshot", ctl_snapshot, "", "take a snapshot of this node's state now"},
    {"verify", ctl_verify, "[--json]", "compare the state digests of all members at one log index"},
    {"locks", ctl_locks, "[--json]", "held and waiting locks in this node's state machine"},
    {"sessions", ctl_sessions, "[--json]",
     "node sessions in this node's state machine, and this node's own"},
    {"faults", ctl_faults, "[drop:ID | delay:ID:MS]...",
     "test hook: cut or slow this node's links to peers; no argument heals"},
    {"stats", ctl_stats, "[--json]", "counters and latency histograms of this node"},
    {"recover", ctl_recover, "--data-dir DIR --peer ID=HOST:PORT...",
     "offline: force a new configuration after the loss of a quorum"},
    {"tls", ctl_tls, "init|issue ...", "create a cluster CA and node certificates"},
};

#define MAIN_USAGE "usage: raftfs-ctl [--socket PATH] COMMAND [ARGS]\n"

void ctl_print_table(FILE *f, const char *prefix, const struct ctl_command *table, unsigned n)
{
    if (*prefix == '\0')
        fprintf(f, MAIN_USAGE);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "usage: raftfs-ctl %s%s%s%s%s\n", prefix, *prefix ? " " : "", table[i].name,
                *table[i].usage ? " " : "", table[i].usage);
    fprintf(f, "\n");
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "  %-16s %s\n", table[i].name, table[i].description);
}

int ctl_dispatch(const struct ctl_opts *o, const char *prefix, const struct ctl_command *table,
                 unsigned n, int argc, char **argv)
{
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        ctl_print_table(stdout, prefix, table, n);
        return CTL_OK;
    }
    for (unsigned i = 0; argc >= 1 && i < n; i++)
        if (strcmp(argv[0], table[i].name) == 0)
            return table[i].run(o, argc, argv);
    if (argc >= 1)
        fprintf(stderr, "raftfs-ctl: unknown command '%s%s%s'\n", prefix, *prefix ? " " : "",
                argv[0]);
    ctl_print_table(stderr, prefix, table, n);
    return CTL_USAGE;
}

int ctl_usage(const char *name, FILE *f)
{
    for (unsigned i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0) {
            fprintf(f, "usage: raftfs-ctl [--socket PATH] %s%s%s\n", name,
                    *commands[i].usage ? " " : "", commands[i].usage);
            if (f == stdout)
                fprintf(f, "\n%s.\n", commands[i].description);
        }
    return f == stdout ? CTL_OK : CTL_USAGE;
}

int ctl_options(int argc, char **argv, bool *json, uint64_t *expect, int min, int max,
                int *n_operands)
{
    if (json != NULL)
        *json = false;
    if (expect != NULL)
        *expect = 0;
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ctl_usage(argv[0], stdout);
            return -1;
        } else if (json != NULL && strcmp(a, "--json") == 0) {
            *json = true;
        } else if (expect != NULL && strcmp(a, "--expect-index") == 0) {
            char *end;
            errno = 0;
            if (i + 1 == argc || argv[i + 1][0] < '0' || argv[i + 1][0] > '9' ||
                (*expect = strtoull(argv[i + 1], &end, 10), *end != '\0' || errno != 0)) {
                fprintf(stderr, "raftfs-ctl: %s: --expect-index wants a log index\n", argv[0]);
                return ctl_usage(argv[0], stderr);
            }
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "raftfs-ctl: %s: unknown option %s\n", argv[0], a);
            return ctl_usage(argv[0], stderr);
        } else {
            /* Operands keep their order, moved in front of the options. */
            memmove(argv + 1 + n + 1, argv + 1 + n, (size_t)(i - 1 - n) * sizeof *argv);
            argv[1 + n++] = (char *)a;
        }
    }
    if (n < min || n > max) {
        fprintf(stderr, "raftfs-ctl: %s: %s\n", argv[0],
                n < min ? "missing arguments" : "too many arguments");
        return ctl_usage(argv[0], stderr);
    }
    *n_operands = n;
    return CTL_OK;
}

int ctl_parse_id(const char *s, uint64_t *id)
{
    char *end;
    errno = 0;
    if (*s < '1' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v == 0)
        return -1;
    *id = v;
    return 0;
}

void ctl_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int ctl_call(const struct ctl_opts *o, const char *cmd, const struct ctl_msg *req,
             struct ctl_msg *resp)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(o->socket) >= sizeof sa.sun_path) {
        fprintf(stderr, "raftfs-ctl: --socket %s: path too long\n", o->socket);
        return CTL_USAGE;
    }
    strcpy(sa.sun_path, o->socket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "raftfs-ctl: %s: socket: %s\n", cmd, strerror(errno));
        return CTL_ERROR;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EPERM) {
            fprintf(stderr, "raftfs-ctl: %s: %s: %s (the control socket is root-only)\n", cmd,
                    o->socket, strerror(e));
            return CTL_DENIED;
        }
        fprintf(stderr,
                "raftfs-ctl: %s: cannot reach raftfsd at %s: %s (is it running? see --socket)\n",
                cmd, o->socket, strerror(e));
        return CTL_UNREACHABLE;
    }
    struct timeval tv = {.tv_sec = RESPONSE_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char err[256];
    /* Read an answer even when the send failed: a daemon that refuses the caller answers and
     * closes at once, and the request may then find the connection closed. */
    int send_errno = ctl_send(fd, req) != 0 ? errno : 0;
    int rc = ctl_recv(fd, resp, err, sizeof err);
    if (rc != 0 && send_errno != 0)
        snprintf(err, sizeof err, "sending the request: %s", strerror(send_errno));
    close(fd);
    if (rc == RFS_EDECODE) {
        fprintf(stderr, "raftfs-ctl: %s: the daemon's answer is malformed: %s\n", cmd, err);
        return CTL_ERROR;
    }
    if (rc != 0) {
        fprintf(stderr, "raftfs-ctl: %s: no answer from raftfsd at %s: %s\n", cmd, o->socket, err);
        return CTL_UNREACHABLE;
    }
    if (resp->type == CTL_RESP_ERROR) {
        fprintf(stderr, "raftfs-ctl: %s: %s\n", cmd, resp->error.text);
        return strstr(resp->error.text, "permission denied") == resp->error.text ? CTL_DENIED
                                                                                 : CTL_ERROR;
    }
    return CTL_OK;
}

int main(int argc, char **argv)
{
    struct ctl_opts o = {.socket = CTL_SOCKET_DEFAULT};
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0) {
            if (i + 1 == argc || argv[i + 1][0] == '\0') {
                fprintf(stderr, "raftfs-ctl: --socket needs a path\n" MAIN_USAGE);
                return CTL_USAGE;
            }
            o.socket = argv[++i];
        } else if (strncmp(argv[i], "--socket=", 9) == 0 && argv[i][9] != '\0') {
            o.socket = argv[i] + 9;
        } else {
            break;
        }
    }
    return ctl_dispatch(&o, "", commands, sizeof commands / sizeof commands[0], argc - i, argv + i);
}
