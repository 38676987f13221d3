/* raftfsd's settings: the file syntax, every key's checks, the messages that name file, line,
 * key and reason, the command line overriding the file, and the checks made at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "lib/error.h"
#include "tools/raftfsd/config.h"
#include "test/unit/tmpdir.h"

static char err[512];

static int parse(struct args *a, const char *text)
{
    err[0] = '\0';
    return config_parse(a, "t.conf", text, strlen(text), err, sizeof err);
}

static void assert_err_contains(const char *want)
{
    if (strstr(err, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err, want);
}

static void test_defaults(void **state)
{
    (void)state;
    struct args a;
    config_init(&a);
    assert_int_equal(a.id, 0);
    assert_string_equal(a.cluster_id, "raftfs");
    assert_string_equal(a.ctl_socket, "/run/raftfs/ctl.sock");
    assert_int_equal(a.op_timeout_ms, 5000);
    assert_int_equal(a.session_timeout_ms, 10000);
    assert_int_equal(a.lock_delay_ms, 5000);
    assert_int_equal(a.consistency, FS_CONSISTENCY_OPEN);
    assert_int_equal(a.max_file_size, 64 << 20);
    assert_false(a.bootstrap);
    assert_false(a.lease_reads);
    assert_null(a.fuse_options);
    assert_null(a.config_file);
    assert_int_equal(a.log_level, RAFT_LOG_INFO);
    assert_false(a.is_set[CONFIG_LOG_LEVEL]);
    config_free(&a);
}

static void test_every_key(void **state)
{
    (void)state;
    struct args a;
    config_init(&a);
    const char *text = "# a node\n"
                       "\n"
                       "id = 7\n"
                       "data-dir=/var/lib/raftfs\n"
                       "  listen   =\t10.0.0.7:7000  \n"
                       "peer = 7=10.0.0.7:7000\r\n"
                       "peer = 8=node8.example:7000\n"
                       "   # indented comment\n"
                       "bootstrap = yes\n"
                       "cluster-id = prod\n"
                       "tls-ca = /etc/raftfs/tls/ca.crt\n"
                       "tls-cert = /etc/raftfs/tls/7.crt\n"
                       "tls-key = /etc/raftfs/tls/7.key\n"
                       "ctl-socket = /run/raftfs/other.sock\n"
                       "op-timeout = 9\n"
                       "session-timeout = 30\n"
                       "lock-delay = 0\n"
                       "consistency = strict\n"
                       "lease-reads = on\n"
                       "max-file-size = 1048576\n"
                       "fuse-options = ro,noatime\n"
                       "log-level = debug\n"
                       "mountpoint = /srv/raftfs"; /* no final newline */
    assert_int_equal(parse(&a, text), 0);
    assert_int_equal(a.id, 7);
    assert_string_equal(a.data_dir, "/var/lib/raftfs");
    assert_string_equal(a.listen, "10.0.0.7:7000");
    assert_int_equal(a.peers.n, 2);
    assert_int_equal(a.peers.servers[0].id, 7);
    assert_string_equal(a.peers.servers[0].address, "10.0.0.7:7000");
    assert_int_equal(a.peers.servers[1].id, 8);
    assert_string_equal(a.peers.servers[1].address, "node8.example:7000");
    assert_true(a.bootstrap);
    assert_string_equal(a.cluster_id, "prod");
    assert_string_equal(a.tls_ca, "/etc/raftfs/tls/ca.crt");
    assert_string_equal(a.tls_cert, "/etc/raftfs/tls/7.crt");
    assert_string_equal(a.tls_key, "/etc/raftfs/tls/7.key");
    assert_string_equal(a.ctl_socket, "/run/raftfs/other.sock");
    assert_int_equal(a.op_timeout_ms, 9000);
    assert_int_equal(a.session_timeout_ms, 30000);
    assert_int_equal(a.lock_delay_ms, 0);
    assert_int_equal(a.consistency, FS_CONSISTENCY_STRICT);
    assert_true(a.lease_reads);
    assert_int_equal(a.max_file_size, 1048576);
    assert_string_equal(a.fuse_options, "ro,noatime");
    assert_int_equal(a.log_level, RAFT_LOG_DEBUG);
    assert_true(a.is_set[CONFIG_LOG_LEVEL]);
    assert_string_equal(a.mountpoint, "/srv/raftfs");
    assert_string_equal(a.config_file, "t.conf");
    assert_int_equal(a.origin[CONFIG_LISTEN].line, 5);
    config_free(&a);
}

static void test_empty_file(void **state)
{
    (void)state;
    struct args a, before;
    config_init(&a);
    config_init(&before);
    assert_int_equal(parse(&a, "\n# nothing\n\n   \n"), 0);
    assert_int_equal(a.op_timeout_ms, before.op_timeout_ms);
    assert_null(a.data_dir);
    config_free(&a);
}

/* Each bad line is refused with "t.conf:LINE:" and the text given, and the settings stay as
 * they were. */
static void test_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *want;
    } cases[] = {
        {"id = 0", "id = 0: out of range"},
        {"id = -1", "id = -1: not a decimal number"},
        {"id = 12abc", "id = 12abc: not a decimal number"},
        {"id = 99999999999999999999999", "out of range"},
        {"id =", "id = : an empty value"},
        {"listen = localhost", "listen = localhost: want HOST:PORT"},
        {"log-level = loud", "log-level = loud: want error, warn, info or debug"},
        {"log-level = DEBUG", "want error, warn, info or debug"},
        {"listen = :80", "want HOST:PORT"},
        {"listen = h:0", "the port must be a number from 1 to 65535"},
        {"listen = h:65536", "the port must be a number from 1 to 65535"},
        {"listen = h:http", "the port must be a number"},
        {"listen = 0123456789012345678901234567890123456789012345678901234567890123:1",
         "address too long"},
        {"peer = 2", "peer = 2: want ID=HOST:PORT"},
        {"peer = =h:1", "want ID=HOST:PORT"},
        {"peer = x=h:1", "the ID must be a number"},
        {"peer = 0=h:1", "the ID must be a number"},
        {"peer = 2=nowhere", "peer = 2=nowhere: want HOST:PORT"},
        {"bootstrap = maybe", "bootstrap = maybe: want yes or no"},
        {"lease-reads = 2", "lease-reads = 2: want yes or no"},
        {"cluster-id = a/b", "cluster-id = a/b: want 1 to 43 bytes"},
        {"cluster-id = 01234567890123456789012345678901234567890123", "want 1 to 43 bytes"},
        {"ctl-socket = /0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/"
         "0123456789/0123456789/0123456789/0123456789/0123456789",
         "longer than a socket path may be"},
        {"op-timeout = 0", "op-timeout = 0: out of range (1 to 3600)"},
        {"op-timeout = 3601", "out of range (1 to 3600)"},
        {"op-timeout = 5s", "not a decimal number"},
        {"session-timeout = 0", "session-timeout = 0: out of range (1 to 3600)"},
        {"session-timeout = 2.5", "not a decimal number"},
        {"lock-delay = 3601", "lock-delay = 3601: out of range (0 to 3600)"},
        {"lock-delay = -1", "not a decimal number"},
        {"consistency = sometimes", "consistency = sometimes: want open, strict or local"},
        {"consistency = OPEN", "want open, strict or local"},
        {"max-file-size = 1G", "max-file-size = 1G: not a decimal number"},
        {"max-file-size = 67108865", "out of range (1 to 67108864)"},
        {"max-file-size = 0", "out of range"},
        {"tls-ca =    ", "tls-ca = : an empty value"},
        {"mountpoint =", "an empty value"},
        {"nosuchkey = 1", "unknown key \"nosuchkey\""},
        {"Id = 1", "unknown key \"Id\""},
        {"id 1", "want KEY = VALUE"},
        {"= 1", "the key is missing"},
        {"id = 1\x01", "a control character (byte 0x01)"},
        {"id = 1\r2", "a control character (byte 0x0d)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct args a;
        config_init(&a);
        char text[512];
        snprintf(text, sizeof text, "# line 1\nfuse-options = ro\n%s\n", cases[i].line);
        int rc = parse(&a, text);
        if (rc != RFS_EINVAL)
            fail_msg("\"%s\" gave %d, not RFS_EINVAL", cases[i].line, rc);
        assert_err_contains("t.conf:3: ");
        assert_err_contains(cases[i].want);
        /* Nothing of the file was kept, not even its good lines. */
        assert_null(a.fuse_options);
        assert_int_equal(a.op_timeout_ms, 5000);
        assert_null(a.text);
        assert_null(a.config_file);
        config_free(&a);
    }
}

static void test_repeats(void **state)
{
    (void)state;
    struct args a;
    config_init(&a);
    assert_int_equal(parse(&a, "id = 1\nlisten = h:1\n\nid = 2\n"), RFS_EINVAL);
    assert_string_equal(err, "t.conf:4: id: already set on line 1");
    assert_int_equal(parse(&a, "peer = 2=h:2\npeer = 3=h:3\npeer = 2=h:4\n"), RFS_EINVAL);
    assert_string_equal(err, "t.conf:3: peer = 2=h:4: this ID was already given");
    assert_int_equal(a.peers.n, 0);

    char text[2048] = "";
    for (int i = 1; i <= RAFT_MAX_SERVERS + 1; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "peer = %d=h:%d\n", i, i);
    assert_int_equal(parse(&a, text), RFS_EINVAL);
    assert_err_contains("too many peers");
    config_free(&a);
}

static void test_nul_and_size(void **state)
{
    (void)state;
    struct args a;
    config_init(&a);
    static const char text[] = "id = 1\nlisten = h:1\0\n";
    assert_int_equal(config_parse(&a, "t.conf", text, sizeof text - 1, err, sizeof err),
                     RFS_EINVAL);
    assert_string_equal(err, "t.conf:2: a NUL byte");

    size_t big = CONFIG_MAX_FILE_BYTES + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, '#', big);
    assert_int_equal(config_parse(&a, "t.conf", huge, big, err, sizeof err), RFS_EINVAL);
    assert_err_contains("larger than");
    /* At the limit, a file of comment is fine. */
    assert_int_equal(config_parse(&a, "t.conf", huge, big - 1, err, sizeof err), 0);
    free(huge);
    config_free(&a);
}

/* The command line's values replace the file's, and its peers replace the file's peers. */
static void test_command_line_overrides(void **state)
{
    (void)state;
    struct args a;
    config_init(&a);
    assert_int_equal(parse(&a, "id = 1\nop-timeout = 9\npeer = 1=h:1\npeer = 2=h:2\n"
                               "consistency = local\n"),
                     0);
    assert_int_equal(config_set(&a, CONFIG_OP_TIMEOUT, "3", NULL, 0, err, sizeof err), 0);
    assert_int_equal(a.op_timeout_ms, 3000);
    assert_null(a.origin[CONFIG_OP_TIMEOUT].file);
    assert_int_equal(config_set(&a, CONFIG_PEER, "5=h:5", NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_set(&a, CONFIG_PEER, "6=h:6", NULL, 0, err, sizeof err), 0);
    assert_int_equal(a.peers.n, 2);
    assert_int_equal(a.peers.servers[0].id, 5);
    assert_int_equal(a.peers.servers[1].id, 6);
    /* A refused value keeps the one from the file, and the message names the option. */
    assert_int_equal(config_set(&a, CONFIG_CONSISTENCY, "eventual", NULL, 0, err, sizeof err),
                     RFS_EINVAL);
    assert_string_equal(err, "--consistency eventual: want open, strict or local");
    assert_int_equal(a.consistency, FS_CONSISTENCY_LOCAL);
    assert_int_equal(config_set(&a, CONFIG_BOOTSTRAP, "yes", NULL, 0, err, sizeof err), 0);
    assert_true(a.bootstrap);
    /* The command line's log level is marked as such: SIGHUP keeps it over the file's. */
    assert_int_equal(config_set(&a, CONFIG_LOG_LEVEL, "warn", NULL, 0, err, sizeof err), 0);
    assert_int_equal(a.log_level, RAFT_LOG_WARN);
    assert_true(a.is_set[CONFIG_LOG_LEVEL]);
    assert_null(a.origin[CONFIG_LOG_LEVEL].file);
    assert_string_equal(config_log_level_name(RAFT_LOG_WARN), "warn");
    assert_int_equal(config_set(&a, CONFIG_MOUNTPOINT, "/nonexistent", NULL, 0, err, sizeof err),
                     0);
    config_free(&a);
}

static void test_key_table(void **state)
{
    (void)state;
    assert_string_equal(config_key_name(CONFIG_CTL_SOCKET), "ctl-socket");
    assert_string_equal(config_key_name(CONFIG_MAX_FILE_SIZE), "max-file-size");
    assert_true(config_key_is_flag(CONFIG_BOOTSTRAP));
    assert_false(config_key_is_flag(CONFIG_ID));
    for (int k = 0; k < CONFIG_N_KEYS; k++)
        assert_non_null(config_key_name((enum config_key)k));
}

static char *write_file(const char *dir, const char *name, const char *text)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_load(void **state)
{
    (void)state;
    char *dir = tmpdir_make("config");
    char *missing;
    assert_true(asprintf(&missing, "%s/missing.conf", dir) > 0);
    struct args a;
    config_init(&a);
    /* The default file may be absent; a file asked for may not. */
    assert_int_equal(config_load(&a, missing, true, err, sizeof err), 0);
    assert_null(a.config_file);
    assert_int_equal(config_load(&a, missing, false, err, sizeof err), RFS_EIO);
    assert_err_contains(missing);
    assert_err_contains("No such file or directory");
    /* A directory cannot be read as a file. */
    assert_int_equal(config_load(&a, dir, true, err, sizeof err), RFS_EIO);
    assert_err_contains(dir);

    char *bad = write_file(dir, "bad.conf", "id = 1\nop-timeout = never\n");
    assert_int_equal(config_load(&a, bad, false, err, sizeof err), RFS_EINVAL);
    assert_err_contains(":2: op-timeout = never: not a decimal number");
    assert_true(strncmp(err, bad, strlen(bad)) == 0);

    char *good = write_file(dir, "good.conf", "id = 3\ndata-dir = /d\n");
    assert_int_equal(config_load(&a, good, false, err, sizeof err), 0);
    assert_int_equal(a.id, 3);
    assert_string_equal(a.data_dir, "/d");
    assert_string_equal(a.config_file, good);
    config_free(&a);
    free(good);
    free(bad);
    free(missing);
    tmpdir_remove(dir);
}

/* A complete set of settings in dir, as a file: the TLS files and mount point exist. */
static void full_settings(struct args *a, const char *dir, const char *more)
{
    char *ca = write_file(dir, "ca.crt", "x"), *crt = write_file(dir, "1.crt", "x");
    char *key = write_file(dir, "1.key", "x");
    char text[2048];
    snprintf(text, sizeof text,
             "id = 1\ndata-dir = %s/data\nlisten = 127.0.0.1:7001\ntls-ca = %s\ntls-cert = %s\n"
             "tls-key = %s\nmountpoint = %s\n%s",
             dir, ca, crt, key, dir, more);
    config_init(a);
    assert_int_equal(parse(a, text), 0);
    free(ca);
    free(crt);
    free(key);
}

static void test_check(void **state)
{
    (void)state;
    char *dir = tmpdir_make("config");
    struct args a;

    full_settings(&a, dir, "peer = 2=127.0.0.1:7002\nbootstrap = yes\n");
    assert_int_equal(config_check(&a, err, sizeof err), 0);
    /* Bootstrap adds this node to its peers. */
    assert_int_equal(a.peers.n, 2);
    assert_int_equal(a.peers.servers[1].id, 1);
    assert_string_equal(a.peers.servers[1].address, "127.0.0.1:7001");
    config_free(&a);

    full_settings(&a, dir, "peer = 1=127.0.0.1:9999\n");
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_err_contains("peer 1=127.0.0.1:9999: this node's own entry differs from listen");
    config_free(&a);

    /* A TLS file that does not exist is named with the line that gave it. */
    full_settings(&a, dir, "");
    char *gone;
    assert_true(asprintf(&gone, "%s/gone.key", dir) > 0);
    assert_int_equal(config_set(&a, CONFIG_TLS_KEY, gone, "t.conf", 9, err, sizeof err), 0);
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_err_contains("t.conf:9: tls-key = ");
    assert_err_contains("No such file or directory");
    /* From the command line, the option is named. */
    assert_int_equal(config_set(&a, CONFIG_TLS_KEY, dir, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_err_contains("--tls-key ");
    assert_err_contains("not a regular file");
    config_free(&a);
    free(gone);

    full_settings(&a, dir, "");
    char *file;
    assert_true(asprintf(&file, "%s/ca.crt", dir) > 0);
    assert_int_equal(config_set(&a, CONFIG_MOUNTPOINT, file, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_err_contains("mount point ");
    assert_err_contains("not a directory");
    config_free(&a);
    free(file);

    /* Required settings, in the order of the synopsis. */
    config_init(&a);
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_string_equal(err, "the mount point is missing: give it as the last argument or as "
                             "mountpoint in /etc/raftfs/raftfs.conf");
    assert_int_equal(config_set(&a, CONFIG_MOUNTPOINT, dir, NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_string_equal(err, "--id is required (or id in /etc/raftfs/raftfs.conf)");
    assert_int_equal(config_set(&a, CONFIG_ID, "4", NULL, 0, err, sizeof err), 0);
    assert_int_equal(config_check(&a, err, sizeof err), RFS_EINVAL);
    assert_err_contains("--data-dir is required");
    config_free(&a);
    tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_repeats),
        cmocka_unit_test(test_nul_and_size),
        cmocka_unit_test(test_command_line_overrides),
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
