/* raftfs-ctl: the administration tool of raftfs. One option parser for every command (options
 * in any position), a table of commands, one file per group, and the calls to the local raftfsd
 * over its control socket; see raftfs-ctl(8). */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/error.h"
#include "raft/net/transport.h"
#include "tools/ctl/version.h"
#include "tools/raftfs-ctl/ctl.h"

/* The daemon bounds every request (30 s for a membership change); this bounds the wait for it. */
#define RESPONSE_TIMEOUT_S 60

#define ID_OPERAND  1, 1
#define NO_OPERAND  0, 0
#define CHANGE_OPTS CTL_OPT_EXPECT_INDEX

static const struct ctl_command commands[] = {
    {"status", "[--socket path] status [--json]",
     "this node's role, term, leader, indexes and members", ctl_status, 0, NO_OPERAND, NULL},
    {"health", "[--socket path] health [--json]",
     "whether this node is a member, has a leader and a quorum, applies, and its storage is sound",
     ctl_health, 0, NO_OPERAND, NULL},
    {"members", "[--socket path] members [--json]", "the members of the configuration", ctl_members,
     0, NO_OPERAND, NULL},
    {"add-voter", "[--socket path] add-voter id host:port [--expect-index n] [--json]",
     "add a voting member (as a non-voter until it caught up)", ctl_add_voter, CHANGE_OPTS, 2, 2,
     NULL},
    {"add-nonvoter", "[--socket path] add-nonvoter id host:port [--expect-index n] [--json]",
     "add a member that receives the log but does not vote", ctl_add_nonvoter, CHANGE_OPTS, 2, 2,
     NULL},
    {"remove", "[--socket path] remove id [--expect-index n] [--json]", "remove a member",
     ctl_remove, CHANGE_OPTS, ID_OPERAND, NULL},
    {"demote", "[--socket path] demote id [--expect-index n] [--json]",
     "turn a voter into a non-voter", ctl_demote, CHANGE_OPTS, ID_OPERAND, NULL},
    {"transfer-leader", "[--socket path] transfer-leader [id] [--json]",
     "hand leadership to id, or to the most up-to-date voter", ctl_transfer_leader, 0, 0, 1, NULL},
    {"snapshot", "[--socket path] snapshot [--json]", "take a snapshot of this node's state now",
     ctl_snapshot, 0, NO_OPERAND, NULL},
    {"verify", "[--socket path] verify [--json]",
     "compare the state digests of all members at one log index", ctl_verify, 0, NO_OPERAND, NULL},
    {"stats", "[--socket path] stats [--json]", "counters and latency histograms of this node",
     ctl_stats, 0, NO_OPERAND, NULL},
    {"locks", "[--socket path] locks [--json]",
     "held and waiting locks in this node's state machine", ctl_locks, 0, NO_OPERAND, NULL},
    {"sessions", "[--socket path] sessions [--json]",
     "node sessions in this node's state machine, and this node's own", ctl_sessions, 0, NO_OPERAND,
     NULL},
    {"faults", "[--socket path] faults [drop:id | delay:id:ms] ... [--json]",
     "test hook: cut or slow this node's links to peers; no argument heals", ctl_faults, 0, 0,
     CTL_REPEAT_MAX, NULL},
    {"recover", "[--socket path] recover --data-dir dir --peer id=host:port ... [--json]",
     "offline: force a new configuration after the loss of a quorum", ctl_recover,
     CTL_OPT_DATA_DIR | CTL_OPT_PEER, NO_OPERAND,
     "Run it on a survivor with its raftfsd stopped; --peer lists the new\n"
     "configuration, usually the survivor alone. Then start raftfsd again.\n"},
    {"tls init", "tls init dir [--force] [--json]",
     "create a cluster CA: dir/ca.crt and dir/ca.key (EC P-256, 10 years)", ctl_tls_init,
     CTL_OPT_FORCE, 1, 1,
     "  --force    replace an existing CA (every node certificate must then be\n"
     "             issued again)\n"},
    {"tls issue", "tls issue dir id [--ip addr ...] [--dns name ...] [--force] [--json]",
     "issue the key and certificate of node id: dir/id.crt and dir/id.key", ctl_tls_issue,
     CTL_OPT_IP | CTL_OPT_DNS | CTL_OPT_FORCE, 2, 2,
     "The certificate names the node as raftfs-node-ID (CN and DNS name),\n"
     "signed by the CA in dir.\n\n"
     "  --ip addr    also name this IPv4 or IPv6 address (repeatable)\n"
     "  --dns name   also name this DNS name (repeatable)\n"
     "  --force      replace existing files\n"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Command c's usage and description, for --help --json. */
static json_t *usage(const struct ctl_command *c)
{
    return json_pack("{s:s, s:s+, s:s}", "command", c->name, "usage", "raftfs-ctl ", c->usage,
                     "description", c->description);
}

/* The long options, in the order of the CTL_OPT_* bits: option i is bit 1 << i. */
static const struct option long_options[] = {
    {"socket", required_argument, NULL, 0},
    {"help", no_argument, NULL, 0},
    {"json", no_argument, NULL, 0},
    {"expect-index", required_argument, NULL, 0},
    {"data-dir", required_argument, NULL, 0},
    {"peer", required_argument, NULL, 0},
    {"force", no_argument, NULL, 0},
    {"ip", required_argument, NULL, 0},
    {"dns", required_argument, NULL, 0},
    {"version", no_argument, NULL, 0},
    {0},
};

/* Every command's usage line whose name starts with group (all when ""), then their
 * descriptions; with --json an object whose "commands" are those of usage(). */
static int print_table(const struct ctl_opts *o, FILE *f, const char *group)
{
    size_t glen = strlen(group);
    json_t *a = o->is_json ? json_array() : NULL;
    for (unsigned i = 0; i < N_COMMANDS; i++)
        if (strncmp(commands[i].name, group, glen) == 0) {
            if (o->is_json)
                ctl_json_append(&a, usage(&commands[i]));
            else
                fprintf(f, "usage: raftfs-ctl %s\n", commands[i].usage);
        }
    if (o->is_json)
        return ctl_json_print(o, json_pack("{s:o}", "commands", a));
    if (*group == '\0')
        fprintf(f,
                "usage: raftfs-ctl [command ...] --help\nusage: raftfs-ctl --version [--json]\n");
    fprintf(f, "\n");
    for (unsigned i = 0; i < N_COMMANDS; i++)
        if (strncmp(commands[i].name, group, glen) == 0)
            fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].description);
    return CTL_OK;
}

int ctl_fail(const struct ctl_opts *o, int status, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    const struct ctl_command *c = o->cmd;
    if (!o->is_json) {
        fprintf(stderr, "raftfs-ctl: %s%s%s\n", c != NULL ? c->name : "", c != NULL ? ": " : "",
                text);
        if (status == CTL_USAGE && c != NULL)
            fprintf(stderr, "usage: raftfs-ctl %s\n", c->usage);
        return status;
    }
    json_t *j = json_pack("{s:s?, s:o, s:i}", "command", c != NULL ? c->name : NULL, "error",
                          ctl_json_text(text), "exit_status", status);
    if (status == CTL_USAGE && c != NULL)
        ctl_json_set(&j, "usage", json_pack("s+", "raftfs-ctl ", c->usage));
    if (j == NULL || json_dumpf(j, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) != 0)
        fprintf(stderr, "raftfs-ctl: out of memory\n");
    else
        putchar('\n');
    json_decref(j);
    return status;
}

/* A decimal number without sign or blanks into *v. Returns 0, or -1 for anything else. */
static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0)
        return -1;
    *v = x;
    return 0;
}

int ctl_parse_id(const char *s, uint64_t *id)
{
    uint64_t v;
    if (parse_u64(s, &v) != 0 || v == 0)
        return -1;
    *id = v;
    return 0;
}

int ctl_id_operand(const struct ctl_opts *o, const char *s, uint64_t *id)
{
    if (ctl_parse_id(s, id) == 0)
        return CTL_OK;
    return ctl_fail(o, CTL_USAGE, "'%s' is not a node ID (a decimal number > 0)", s);
}

int ctl_check_address(const struct ctl_opts *o, const char *what, const char *s)
{
    const char *colon = strrchr(s, ':');
    uint64_t port = 0;
    if (strlen(s) >= RAFT_ADDRESS_MAX)
        return ctl_fail(o, CTL_USAGE, "%s '%s' is longer than %d bytes", what, s,
                        RAFT_ADDRESS_MAX - 1);
    if (colon == NULL || colon == s)
        return ctl_fail(o, CTL_USAGE, "%s '%s' is not HOST:PORT", what, s);
    if (ctl_parse_id(colon + 1, &port) != 0 || port > 65535)
        return ctl_fail(o, CTL_USAGE, "%s '%s': the port must be a number from 1 to 65535", what,
                        s);
    struct sockaddr_storage ss;
    unsigned len;
    if (raft__address_parse(s, &ss, &len) != 0)
        return ctl_fail(o, CTL_USAGE,
                        "%s '%s': the host must be a numeric IPv4 address or an IPv6 address in "
                        "brackets",
                        what, s);
    return CTL_OK;
}

int ctl_call(const struct ctl_opts *o, const struct ctl_msg *req, enum ctl_type want,
             struct ctl_msg *resp, int *code)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(o->socket) >= sizeof sa.sun_path)
        return ctl_fail(o, CTL_USAGE, "--socket %s: path too long", o->socket);
    strcpy(sa.sun_path, o->socket);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return ctl_fail(o, CTL_ERROR, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EPERM)
            return ctl_fail(o, CTL_DENIED, "%s: %s (the control socket is root-only)", o->socket,
                            strerror(e));
        return ctl_fail(o, CTL_UNREACHABLE,
                        "cannot reach raftfsd at %s: %s (is it running? see --socket)", o->socket,
                        strerror(e));
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
    if (rc == RFS_EDECODE)
        return ctl_fail(o, CTL_ERROR, "the daemon's answer is malformed: %s", err);
    if (rc != 0)
        return ctl_fail(o, CTL_UNREACHABLE, "no answer from raftfsd at %s: %s", o->socket, err);
    if (resp->type == CTL_RESP_ERROR) {
        if (strstr(resp->error.text, "permission denied") == resp->error.text)
            return ctl_fail(o, CTL_DENIED, "%s", resp->error.text);
        if (code != NULL) {
            *code = resp->error.code;
            return CTL_ERROR;
        }
        return ctl_fail(o, CTL_ERROR, "%s", resp->error.text);
    }
    if (resp->type != want)
        return ctl_fail(o, CTL_ERROR, "unexpected answer '%s'", ctl_type_name(resp->type));
    return CTL_OK;
}

/* The command named by the first one or two operands, and how many words its name has; NULL
 * when there is none. */
static const struct ctl_command *find(int n, char **ops, int *words)
{
    for (unsigned i = 0; i < N_COMMANDS; i++) {
        const char *name = commands[i].name, *space = strchr(name, ' ');
        if (space == NULL && n >= 1 && strcmp(ops[0], name) == 0) {
            *words = 1;
            return &commands[i];
        }
        if (space != NULL && n >= 2 && strncmp(ops[0], name, (size_t)(space - name)) == 0 &&
            ops[0][space - name] == '\0' && strcmp(ops[1], space + 1) == 0) {
            *words = 2;
            return &commands[i];
        }
    }
    return NULL;
}

/* Whether word is the first word of a group of commands ("tls"). */
static bool is_group(const char *word)
{
    size_t n = strlen(word);
    for (unsigned i = 0; i < N_COMMANDS; i++)
        if (strncmp(commands[i].name, word, n) == 0 && commands[i].name[n] == ' ')
            return true;
    return false;
}

/* Parse argv into *o: every option, wherever it is. The operands are left, in their order, in
 * argv[*first..argc). Returns CTL_OK, or CTL_USAGE with the message in why (why_len bytes): it
 * is reported once the command is known. */
static int parse(int argc, char **argv, struct ctl_opts *o, int *first, char *why, size_t why_len)
{
    int c, index, rc = CTL_OK;
    opterr = 0; /* messages are ours, and name the command */
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", long_options, &index)) != -1) {
        if (c == 'h')
            index = 1; /* --help */
        else if (c == '?' || c == ':') {
            if (rc == CTL_OK)
                snprintf(why, why_len, "%s %s", c == ':' ? "missing value for" : "unknown option",
                         argv[optind - 1]);
            rc = CTL_USAGE;
            continue;
        }
        unsigned bit = 1u << index;
        o->given |= bit;
        unsigned *count = bit == CTL_OPT_PEER  ? &o->n_peers
                          : bit == CTL_OPT_IP  ? &o->n_ips
                          : bit == CTL_OPT_DNS ? &o->n_dns
                                               : NULL;
        if (count != NULL && *count == CTL_REPEAT_MAX) {
            if (rc == CTL_OK)
                snprintf(why, why_len, "at most %d --%s options", CTL_REPEAT_MAX,
                         long_options[index].name);
            rc = CTL_USAGE;
            continue;
        }
        switch (bit) {
        case CTL_OPT_SOCKET: o->socket = optarg; break;
        case CTL_OPT_JSON: o->is_json = true; break;
        case CTL_OPT_EXPECT_INDEX:
            if (parse_u64(optarg, &o->expect_index) != 0 && rc == CTL_OK) {
                snprintf(why, why_len, "--expect-index %s: want a log index", optarg);
                rc = CTL_USAGE;
            }
            break;
        case CTL_OPT_DATA_DIR: o->data_dir = optarg; break;
        case CTL_OPT_PEER: o->peers[o->n_peers++] = optarg; break;
        case CTL_OPT_FORCE: o->is_forced = true; break;
        case CTL_OPT_IP: o->ips[o->n_ips++] = optarg; break;
        case CTL_OPT_DNS: o->dns[o->n_dns++] = optarg; break;
        default: break;
        }
    }
    if (rc == CTL_OK && o->socket[0] == '\0') {
        snprintf(why, why_len, "--socket needs a path");
        rc = CTL_USAGE;
    }
    *first = optind;
    return rc;
}

/* --version: this build and the formats this program reads and writes. */
static int version(const struct ctl_opts *o)
{
    if (!o->is_json) {
        ctl_version_print(stdout, "raftfs-ctl", CTL_USED_BY_CTL);
        return CTL_OK;
    }
    unsigned n;
    const struct ctl_format *f = ctl_formats(&n);
    json_t *a = json_array();
    for (unsigned i = 0; i < n; i++)
        if (f[i].used_by & CTL_USED_BY_CTL)
            ctl_json_append(&a, json_pack("{s:s, s:s, s:i}", "kind", f[i].kind, "name", f[i].name,
                                          "version", f[i].version));
    return ctl_json_print(o, json_pack("{s:s, s:s, s:o}", "program", "raftfs-ctl", "version",
                                       ctl_build_version(), "formats", a));
}

int main(int argc, char **argv)
{
    struct ctl_opts o = {.socket = CTL_SOCKET_DEFAULT};
    char why[160];
    int first;
    int rc = parse(argc, argv, &o, &first, why, sizeof why);
    int n = argc - first, words = 0;
    char **ops = argv + first;
    if (rc == CTL_OK && (o.given & CTL_OPT_VERSION))
        return version(&o);
    const struct ctl_command *c = find(n, ops, &words);
    if (c == NULL) {
        const char *group = n >= 1 && is_group(ops[0]) ? ops[0] : "";
        if (n == 0 || (n == 1 && *group != '\0')) {
            if (rc == CTL_OK && (o.given & CTL_OPT_HELP))
                return print_table(&o, stdout, group);
            if (rc == CTL_OK)
                snprintf(why, sizeof why, "a command is missing");
        } else {
            snprintf(why, sizeof why, "unknown command '%s%s%s'", ops[0], *group != '\0' ? " " : "",
                     *group != '\0' ? ops[1] : "");
        }
        ctl_fail(&o, CTL_USAGE, "%s", why);
        if (!o.is_json)
            print_table(&o, stderr, group);
        return CTL_USAGE;
    }
    o.cmd = c;
    if (rc != CTL_OK)
        return ctl_fail(&o, rc, "%s", why);
    unsigned extra =
        o.given & ~(c->options | CTL_OPT_SOCKET | CTL_OPT_HELP | CTL_OPT_JSON | CTL_OPT_VERSION);
    if (extra != 0)
        return ctl_fail(&o, CTL_USAGE, "--%s does not apply to %s",
                        long_options[__builtin_ctz(extra)].name, c->name);
    if (o.given & CTL_OPT_HELP) {
        if (o.is_json)
            return ctl_json_print(&o, usage(c));
        printf("usage: raftfs-ctl %s\n\n%c%s.\n", c->usage, toupper(c->description[0]),
               c->description + 1);
        if (c->details != NULL)
            printf("\n%s", c->details);
        return CTL_OK;
    }
    n -= words;
    if (n < c->min || n > c->max)
        return ctl_fail(&o, CTL_USAGE, "%s",
                        n < c->min ? "missing arguments" : "too many arguments");
    o.n_ops = n;
    o.ops = ops + words;
    return c->run(&o);
}
