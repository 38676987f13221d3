/* raftfsd's settings: one table of keys with their setters, the parser of raftfs.conf(5), and
 * the checks made once the file and the command line are both applied. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/error.h"
#include "store/fsm.h"
#include "tools/ctl/proto.h"
#include "tools/raftfsd/config.h"

/* A setter checks value and stores it, or writes the reason to why and returns RFS_EINVAL. */
typedef int setter(struct args *a, const char *value, char *why, size_t whylen);

struct key {
    const char *name;
    setter *set;
    bool is_flag;
    bool is_repeatable;
};

static int reason(char *why, size_t whylen, const char *text)
{
    snprintf(why, whylen, "%s", text);
    return RFS_EINVAL;
}

/* A decimal unsigned integer in [min, max]. */
static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out, char *why,
                     size_t whylen)
{
    char *end;
    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        return reason(why, whylen, "not a decimal number");
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return reason(why, whylen, errno == ERANGE ? "out of range" : "not a decimal number");
    if (v < min || v > max) {
        snprintf(why, whylen, "out of range (%llu to %llu)", (unsigned long long)min,
                 (unsigned long long)max);
        return RFS_EINVAL;
    }
    *out = v;
    return 0;
}

/* HOST:PORT with a non-empty host and a port in 1..65535. */
static int check_address(const char *s, char *why, size_t whylen)
{
    const char *colon = strrchr(s, ':');
    if (strlen(s) >= RAFT_ADDRESS_MAX)
        return reason(why, whylen, "address too long");
    if (colon == NULL || colon == s)
        return reason(why, whylen, "want HOST:PORT");
    uint64_t port;
    if (parse_u64(colon + 1, 1, 65535, &port, why, whylen) != 0)
        return reason(why, whylen, "the port must be a number from 1 to 65535");
    return 0;
}

static int set_id(struct args *a, const char *v, char *why, size_t whylen)
{
    return parse_u64(v, 1, UINT64_MAX, &a->id, why, whylen);
}

static int set_path(const char **field, const char *v, char *why, size_t whylen)
{
    if (strlen(v) >= 4000)
        return reason(why, whylen, "path too long");
    *field = v;
    return 0;
}

static int set_data_dir(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_path(&a->data_dir, v, why, whylen);
}

static int set_listen(struct args *a, const char *v, char *why, size_t whylen)
{
    int rc = check_address(v, why, whylen);
    if (rc == 0)
        a->listen = v;
    return rc;
}

static int set_peer(struct args *a, const char *v, char *why, size_t whylen)
{
    const char *eq = strchr(v, '=');
    char id[24];
    size_t n = eq != NULL ? (size_t)(eq - v) : 0;
    if (eq == NULL || n == 0 || n >= sizeof id)
        return reason(why, whylen, "want ID=HOST:PORT with a numeric ID");
    memcpy(id, v, n);
    id[n] = '\0';
    uint64_t num;
    int rc;
    if ((rc = parse_u64(id, 1, UINT64_MAX, &num, why, whylen)) != 0) {
        snprintf(why, whylen, "the ID must be a number from 1");
        return rc;
    }
    if ((rc = check_address(eq + 1, why, whylen)) != 0)
        return rc;
    if (raft_configuration_get(&a->peers, num) != NULL)
        return reason(why, whylen, "this ID was already given");
    if (a->peers.n >= RAFT_MAX_SERVERS)
        return reason(why, whylen, "too many peers");
    struct raft_server *s = &a->peers.servers[a->peers.n++];
    s->id = num;
    s->suffrage = RAFT_VOTER;
    snprintf(s->address, sizeof s->address, "%s", eq + 1);
    return 0;
}

static int set_bool(bool *field, const char *v, char *why, size_t whylen)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *field = true;
            return 0;
        }
        if (strcmp(v, no[i]) == 0) {
            *field = false;
            return 0;
        }
    }
    return reason(why, whylen, "want yes or no");
}

static int set_bootstrap(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_bool(&a->bootstrap, v, why, whylen);
}

static int set_lease_reads(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_bool(&a->lease_reads, v, why, whylen);
}

static int set_cluster_id(struct args *a, const char *v, char *why, size_t whylen)
{
    if (strlen(v) == 0 || strlen(v) > RAFT_CLUSTER_ID_MAX || strchr(v, '/') != NULL) {
        snprintf(why, whylen, "want 1 to %d bytes, no '/'", RAFT_CLUSTER_ID_MAX);
        return RFS_EINVAL;
    }
    a->cluster_id = v;
    return 0;
}

static int set_tls_ca(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_path(&a->tls_ca, v, why, whylen);
}

static int set_tls_cert(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_path(&a->tls_cert, v, why, whylen);
}

static int set_tls_key(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_path(&a->tls_key, v, why, whylen);
}

static int set_ctl_socket(struct args *a, const char *v, char *why, size_t whylen)
{
    /* The path of a UNIX socket lives in sun_path, NUL included. */
    if (strlen(v) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
        snprintf(why, whylen, "longer than a socket path may be (%zu bytes)",
                 sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
        return RFS_EINVAL;
    }
    a->ctl_socket = v;
    return 0;
}

/* A duration of min to 3600 whole seconds, kept in milliseconds. */
static int set_seconds(unsigned *ms, uint64_t min, const char *v, char *why, size_t whylen)
{
    uint64_t s;
    int rc = parse_u64(v, min, 3600, &s, why, whylen);
    if (rc == 0)
        *ms = (unsigned)s * 1000;
    return rc;
}

static int set_op_timeout(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_seconds(&a->op_timeout_ms, 1, v, why, whylen);
}

static int set_session_timeout(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_seconds(&a->session_timeout_ms, 1, v, why, whylen);
}

static int set_lock_delay(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_seconds(&a->lock_delay_ms, 0, v, why, whylen);
}

static int set_consistency(struct args *a, const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "open") == 0)
        a->consistency = FS_CONSISTENCY_OPEN;
    else if (strcmp(v, "strict") == 0)
        a->consistency = FS_CONSISTENCY_STRICT;
    else if (strcmp(v, "local") == 0)
        a->consistency = FS_CONSISTENCY_LOCAL;
    else
        return reason(why, whylen, "want open, strict or local");
    return 0;
}

static int set_max_file_size(struct args *a, const char *v, char *why, size_t whylen)
{
    /* One file is committed as one log entry at most: the command format's limit. */
    return parse_u64(v, 1, STORE_FSM_DEFAULT_FILE_MAX, &a->max_file_size, why, whylen);
}

static int set_max_size(struct args *a, const char *v, char *why, size_t whylen)
{
    /* At least room for the tables and the root; at most what a 64-bit map can take. */
    return parse_u64(v, 1 << 20, (uint64_t)1 << 44, &a->max_size, why, whylen);
}

static int set_fuse_options(struct args *a, const char *v, char *why, size_t whylen)
{
    (void)why;
    (void)whylen;
    a->fuse_options = v;
    return 0;
}

static const char *const level_names[] = {
    [RAFT_LOG_ERROR] = "error",
    [RAFT_LOG_WARN] = "warn",
    [RAFT_LOG_INFO] = "info",
    [RAFT_LOG_DEBUG] = "debug",
};

const char *config_log_level_name(enum raft_log_level level)
{
    return level_names[level];
}

static int set_log_level(struct args *a, const char *v, char *why, size_t whylen)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcmp(v, level_names[i]) == 0) {
            a->log_level = (enum raft_log_level)i;
            return 0;
        }
    return reason(why, whylen, "want error, warn, info or debug");
}

static int set_mountpoint(struct args *a, const char *v, char *why, size_t whylen)
{
    return set_path(&a->mountpoint, v, why, whylen);
}

static const struct key keys[CONFIG_N_KEYS] = {
    [CONFIG_ID] = {"id", set_id, false, false},
    [CONFIG_DATA_DIR] = {"data-dir", set_data_dir, false, false},
    [CONFIG_LISTEN] = {"listen", set_listen, false, false},
    [CONFIG_PEER] = {"peer", set_peer, false, true},
    [CONFIG_BOOTSTRAP] = {"bootstrap", set_bootstrap, true, false},
    [CONFIG_CLUSTER_ID] = {"cluster-id", set_cluster_id, false, false},
    [CONFIG_TLS_CA] = {"tls-ca", set_tls_ca, false, false},
    [CONFIG_TLS_CERT] = {"tls-cert", set_tls_cert, false, false},
    [CONFIG_TLS_KEY] = {"tls-key", set_tls_key, false, false},
    [CONFIG_CTL_SOCKET] = {"ctl-socket", set_ctl_socket, false, false},
    [CONFIG_OP_TIMEOUT] = {"op-timeout", set_op_timeout, false, false},
    [CONFIG_SESSION_TIMEOUT] = {"session-timeout", set_session_timeout, false, false},
    [CONFIG_LOCK_DELAY] = {"lock-delay", set_lock_delay, false, false},
    [CONFIG_CONSISTENCY] = {"consistency", set_consistency, false, false},
    [CONFIG_LEASE_READS] = {"lease-reads", set_lease_reads, true, false},
    [CONFIG_MAX_FILE_SIZE] = {"max-file-size", set_max_file_size, false, false},
    [CONFIG_MAX_SIZE] = {"max-size", set_max_size, false, false},
    [CONFIG_FUSE_OPTIONS] = {"fuse-options", set_fuse_options, false, false},
    [CONFIG_LOG_LEVEL] = {"log-level", set_log_level, false, false},
    [CONFIG_MOUNTPOINT] = {"mountpoint", set_mountpoint, false, false},
};

const char *config_key_name(enum config_key key)
{
    return keys[key].name;
}

bool config_key_is_flag(enum config_key key)
{
    return keys[key].is_flag;
}

void config_init(struct args *a)
{
    memset(a, 0, sizeof *a);
    a->cluster_id = "raftfs";
    a->ctl_socket = CTL_SOCKET_DEFAULT;
    a->op_timeout_ms = 5000;
    a->session_timeout_ms = 10000;
    a->lock_delay_ms = 5000;
    a->consistency = FS_CONSISTENCY_OPEN;
    a->max_file_size = STORE_FSM_DEFAULT_FILE_MAX;
    a->max_size = STORE_FSM_DEFAULT_SPACE;
    a->log_level = RAFT_LOG_INFO; /* debug only when asked for */
}

void config_free(struct args *a)
{
    free(a->text);
    a->text = NULL;
}

/* "FILE:LINE: key = value: why" for the file, "--key value: why" for the command line. */
static int refuse(enum config_key key, const struct config_origin *o, const char *value,
                  const char *why, char *err, size_t errlen)
{
    if (o->file != NULL)
        snprintf(err, errlen, "%s:%u: %s = %s: %s", o->file, o->line, keys[key].name, value, why);
    else if (key == CONFIG_MOUNTPOINT)
        snprintf(err, errlen, "mount point %s: %s", value, why);
    else
        snprintf(err, errlen, "--%s %s: %s", keys[key].name, value, why);
    return RFS_EINVAL;
}

int config_set(struct args *a, enum config_key key, const char *value, const char *file,
               unsigned line, char *err, size_t errlen)
{
    struct config_origin o = {file, line};
    char why[160];
    if (value[0] == '\0')
        return refuse(key, &o, value, "an empty value", err, errlen);
    /* Set a copy, so that a refused value leaves a as it was. */
    struct args next = *a;
    if (keys[key].is_repeatable && next.peers.n > 0 &&
        (next.origin[key].file == NULL) != (file == NULL))
        next.peers.n = 0; /* the command line's peers replace the file's */
    if (keys[key].set(&next, value, why, sizeof why) != 0)
        return refuse(key, &o, value, why, err, errlen);
    next.origin[key] = o;
    next.is_set[key] = true;
    *a = next;
    return 0;
}

static enum config_key lookup(const char *name)
{
    for (int k = 0; k < CONFIG_N_KEYS; k++)
        if (strcmp(keys[k].name, name) == 0)
            return (enum config_key)k;
    return CONFIG_N_KEYS;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Cut [s, end) of blanks on both sides, NUL-terminate it in place and return its start. */
static char *trim(char *s, char *end)
{
    while (s < end && is_blank(*s))
        s++;
    while (end > s && is_blank(end[-1]))
        end--;
    *end = '\0';
    return s;
}

/* Parse the NUL-terminated buf line by line into a. */
static int parse_lines(struct args *a, const char *file, char *buf, char *err, size_t errlen)
{
    unsigned first_line[CONFIG_N_KEYS] = {0};
    unsigned n = 0;
    char *next;
    for (char *line = buf; line != NULL; line = next) {
        n++;
        char *nl = strchr(line, '\n');
        next = nl != NULL ? nl + 1 : NULL;
        char *end = nl != NULL ? nl : line + strlen(line);
        for (const char *p = line; p < end; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t' && !(*p == '\r' && p + 1 == end)) {
                snprintf(err, errlen, "%s:%u: a control character (byte 0x%02x)", file, n,
                         (unsigned char)*p);
                return RFS_EINVAL;
            }
        char *s = trim(line, end);
        if (s[0] == '\0' || s[0] == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%u: want KEY = VALUE, not \"%s\"", file, n, s);
            return RFS_EINVAL;
        }
        char *value = trim(eq + 1, eq + 1 + strlen(eq + 1));
        char *name = trim(s, eq);
        if (name[0] == '\0') {
            snprintf(err, errlen, "%s:%u: the key is missing before '='", file, n);
            return RFS_EINVAL;
        }
        enum config_key key = lookup(name);
        if (key == CONFIG_N_KEYS) {
            snprintf(err, errlen, "%s:%u: unknown key \"%s\" (see raftfs.conf(5))", file, n, name);
            return RFS_EINVAL;
        }
        if (first_line[key] != 0 && !keys[key].is_repeatable) {
            snprintf(err, errlen, "%s:%u: %s: already set on line %u", file, n, name,
                     first_line[key]);
            return RFS_EINVAL;
        }
        if (first_line[key] == 0)
            first_line[key] = n;
        int rc = config_set(a, key, value, file, n, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int config_parse(struct args *a, const char *file, const char *text, size_t len, char *err,
                 size_t errlen)
{
    if (len > CONFIG_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", file, CONFIG_MAX_FILE_BYTES);
        return RFS_EINVAL;
    }
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        unsigned line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        snprintf(err, errlen, "%s:%u: a NUL byte", file, line);
        return RFS_EINVAL;
    }
    char *buf = malloc(len + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: %s", file, rfs_strerror(RFS_ENOMEM));
        return RFS_ENOMEM;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct args next = *a;
    int rc = parse_lines(&next, file, buf, err, errlen);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    next.config_file = file;
    next.text = buf;
    *a = next;
    return 0;
}

int config_load(struct args *a, const char *path, bool is_optional, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT && is_optional)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return RFS_EIO;
    }
    /* One byte more than the limit, so that config_parse sees a file that is too large. */
    size_t cap = CONFIG_MAX_FILE_BYTES + 1, len = 0;
    char *text = malloc(cap);
    int rc = 0;
    if (text == NULL) {
        snprintf(err, errlen, "%s: %s", path, rfs_strerror(RFS_ENOMEM));
        rc = RFS_ENOMEM;
        goto err_after_open;
    }
    while (len < cap) {
        ssize_t got = read(fd, text + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            rc = RFS_EIO;
            goto err_after_alloc;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    rc = config_parse(a, path, text, len, err, errlen);
err_after_alloc:
    free(text);
err_after_open:
    close(fd);
    return rc;
}

/* The key's origin as a message prefix when it came from the file. */
static int check_file(const struct args *a, enum config_key key, const char *path, char *err,
                      size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return refuse(key, &a->origin[key], path, strerror(errno), err, errlen);
    if (!S_ISREG(st.st_mode))
        return refuse(key, &a->origin[key], path, "not a regular file", err, errlen);
    return 0;
}

int config_check(struct args *a, char *err, size_t errlen)
{
    if (a->mountpoint == NULL) {
        snprintf(err, errlen,
                 "the mount point is missing: give it as the last argument or as mountpoint in "
                 "%s",
                 a->config_file != NULL ? a->config_file : CONFIG_DEFAULT_FILE);
        return RFS_EINVAL;
    }
    const struct {
        enum config_key key;
        bool is_set;
    } required[] = {
        {CONFIG_ID, a->id != 0},
        {CONFIG_DATA_DIR, a->data_dir != NULL},
        {CONFIG_LISTEN, a->listen != NULL},
        {CONFIG_TLS_CA, a->tls_ca != NULL},
        {CONFIG_TLS_CERT, a->tls_cert != NULL},
        {CONFIG_TLS_KEY, a->tls_key != NULL},
    };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!required[i].is_set) {
            const char *name = keys[required[i].key].name;
            snprintf(err, errlen, "--%s is required (or %s in %s)", name, name,
                     a->config_file != NULL ? a->config_file : CONFIG_DEFAULT_FILE);
            return RFS_EINVAL;
        }
    int rc;
    if ((rc = check_file(a, CONFIG_TLS_CA, a->tls_ca, err, errlen)) != 0 ||
        (rc = check_file(a, CONFIG_TLS_CERT, a->tls_cert, err, errlen)) != 0 ||
        (rc = check_file(a, CONFIG_TLS_KEY, a->tls_key, err, errlen)) != 0)
        return rc;
    struct stat st;
    if (stat(a->mountpoint, &st) != 0) {
        /* ENOTCONN: the dead mount of an earlier raftfsd, which the mount clears. */
        if (errno != ENOTCONN)
            return refuse(CONFIG_MOUNTPOINT, &a->origin[CONFIG_MOUNTPOINT], a->mountpoint,
                          strerror(errno), err, errlen);
    } else if (!S_ISDIR(st.st_mode))
        return refuse(CONFIG_MOUNTPOINT, &a->origin[CONFIG_MOUNTPOINT], a->mountpoint,
                      "not a directory", err, errlen);
    const struct raft_server *self = raft_configuration_get(&a->peers, a->id);
    if (self != NULL && strcmp(self->address, a->listen) != 0) {
        snprintf(err, errlen, "peer %llu=%s: this node's own entry differs from listen (%s)",
                 (unsigned long long)a->id, self->address, a->listen);
        return RFS_EINVAL;
    }
    if (a->bootstrap && self == NULL) {
        if (a->peers.n >= RAFT_MAX_SERVERS) {
            snprintf(err, errlen, "peer: too many peers to add this node (at most %d)",
                     RAFT_MAX_SERVERS);
            return RFS_EINVAL;
        }
        struct raft_server *s = &a->peers.servers[a->peers.n++];
        s->id = a->id;
        s->suffrage = RAFT_VOTER;
        snprintf(s->address, sizeof s->address, "%s", a->listen);
    }
    return 0;
}
