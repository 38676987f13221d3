/* raft/net/tls.c: certificate tooling (files, modes, refusal to overwrite, names) and mutual TLS
 * between two in-process endpoints over a socketpair: node IDs from certificates, and refusal
 * of a foreign CA, of a missing client certificate, and of a certificate naming two nodes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "raft/raft.h"
#include "raft/net/tls.h"

static char dir[64];
static char other[128]; /* a second CA */
static char err[RAFT_TLS_ERROR_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/raftfs-test-tls-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(other, sizeof other, "%s/other", dir);
    if (raft_tls_ca_create(dir, false, err, sizeof err) != 0 ||
        raft_tls_ca_create(other, false, err, sizeof err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    const char *ips[] = {"127.0.0.1", "::1"};
    struct raft_tls_issue_options o = {.ips = ips, .n_ips = 2};
    for (uint64_t id = 1; id <= 2; id++)
        if (raft_tls_node_issue(dir, id, &o, err, sizeof err) != 0 ||
            raft_tls_node_issue(other, id, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "setup: %s\n", err);
            return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static mode_t mode_of(const char *d, const char *name)
{
    char path[256];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", d, name);
    if (stat(path, &st) != 0)
        return 0;
    return st.st_mode & 07777;
}

static void node_names(void **state)
{
    (void)state;
    uint64_t id = 0;
    assert_int_equal(raft_tls_node_name_parse("raftfs-node-7", 13, &id), 0);
    assert_int_equal(id, 7);
    assert_int_equal(raft_tls_node_name_parse("raftfs-node-18446744073709551615", 32, &id), 0);
    assert_true(id == UINT64_MAX);
    const char *bad[] = {"raftfs-node-",   "raftfs-node-0",  "raftfs-node-07",
                         "raftfs-node-1x", "raftfs-node--1", "raftfs-node-18446744073709551616",
                         "raftfs-nod-1",   "RAFTFS-NODE-1",  "raftfs-node-1 "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(raft_tls_node_name_parse(bad[i], strlen(bad[i]), &id), RAFT_EINVAL);
    /* Only len bytes count: an embedded NUL cannot hide a suffix. */
    assert_int_equal(raft_tls_node_name_parse("raftfs-node-1\0evil", 18, &id), RAFT_EINVAL);
}

static void files_and_modes(void **state)
{
    (void)state;
    assert_int_equal(mode_of(dir, "ca.key"), 0600);
    assert_int_equal(mode_of(dir, "ca.crt"), 0644);
    assert_int_equal(mode_of(dir, "1.key"), 0600);
    assert_int_equal(mode_of(dir, "1.crt"), 0644);
    /* No temporary file is left behind. */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        assert_null(strstr(e->d_name, ".tmp"));
    closedir(d);
}

static void refuses_to_overwrite(void **state)
{
    (void)state;
    char before[4096], after[4096];
    char path[256];
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    FILE *f = fopen(path, "r");
    size_t n1 = fread(before, 1, sizeof before, f);
    fclose(f);

    assert_int_equal(raft_tls_ca_create(dir, false, err, sizeof err), RAFT_EFILEEXISTS);
    assert_non_null(strstr(err, "exists"));
    assert_int_equal(raft_tls_node_issue(dir, 1, NULL, err, sizeof err), RAFT_EFILEEXISTS);
    f = fopen(path, "r");
    size_t n2 = fread(after, 1, sizeof after, f);
    fclose(f);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);

    /* force replaces a node's files. */
    struct raft_tls_issue_options o = {.force = true};
    assert_int_equal(raft_tls_node_issue(dir, 9, NULL, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/9.crt", dir);
    f = fopen(path, "r");
    n1 = fread(before, 1, sizeof before, f);
    fclose(f);
    assert_int_equal(raft_tls_node_issue(dir, 9, &o, err, sizeof err), 0);
    f = fopen(path, "r");
    n2 = fread(after, 1, sizeof after, f);
    fclose(f);
    assert_true(n1 != n2 || memcmp(before, after, n1) != 0);
}

static void bad_arguments(void **state)
{
    (void)state;
    const char *bad_ip[] = {"127.0.0.1,DNS:evil"};
    struct raft_tls_issue_options o = {.ips = bad_ip, .n_ips = 1};
    assert_int_equal(raft_tls_node_issue(dir, 5, &o, err, sizeof err), RAFT_EINVAL);
    assert_non_null(strstr(err, "not an IPv4 or IPv6 address"));
    const char *bad_dns[] = {"a,IP:1.2.3.4"};
    o = (struct raft_tls_issue_options){.dns_names = bad_dns, .n_dns_names = 1};
    assert_int_equal(raft_tls_node_issue(dir, 5, &o, err, sizeof err), RAFT_EINVAL);
    assert_int_equal(raft_tls_node_issue(dir, 0, NULL, err, sizeof err), RAFT_EINVAL);
    assert_int_equal(mode_of(dir, "5.key"), 0); /* nothing written */

    char nowhere[128];
    snprintf(nowhere, sizeof nowhere, "%s/no-ca", dir);
    mkdir(nowhere, 0700);
    assert_int_equal(raft_tls_node_issue(nowhere, 5, NULL, err, sizeof err), RAFT_ETLS);
    assert_non_null(strstr(err, "ca.crt"));

    /* A certificate with another node's key. */
    char ca[128], crt[128], key[128];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(crt, sizeof crt, "%s/1.crt", dir);
    snprintf(key, sizeof key, "%s/2.key", dir);
    struct raft__tls_ctx *ctx = NULL;
    assert_int_equal(raft__tls_ctx_new(ca, crt, key, &ctx, err, sizeof err), RAFT_ETLS);
    assert_null(ctx);
    assert_non_null(strstr(err, "mismatch"));
}

/* --- handshakes over a socketpair ------------------------------------------------------------ */

static struct raft__tls_ctx *ctx_for(const char *d, const char *node)
{
    char ca[160], crt[160], key[160];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir); /* always trust the main CA */
    snprintf(crt, sizeof crt, "%s/%s.crt", d, node);
    snprintf(key, sizeof key, "%s/%s.key", d, node);
    struct raft__tls_ctx *ctx = NULL;
    int rv = raft__tls_ctx_new(ca, node ? crt : NULL, node ? key : NULL, &ctx, err, sizeof err);
    if (rv != 0)
        fprintf(stderr, "ctx: %s\n", err);
    assert_int_equal(rv, 0);
    return ctx;
}

struct pair {
    int fds[2];
    struct raft__tls_conn *server;
    struct raft__tls_conn *client;
    enum raft__tls_io rs;
    enum raft__tls_io rc;
};

/* Drive both handshakes until each is done or failed. */
static void handshake(struct pair *p, struct raft__tls_ctx *sctx, struct raft__tls_ctx *cctx)
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
    assert_int_equal(raft__tls_conn_new(sctx, p->fds[0], true, &p->server), 0);
    assert_int_equal(raft__tls_conn_new(cctx, p->fds[1], false, &p->client), 0);
    p->rs = p->rc = RAFT__TLS_WANT_READ;
    for (int i = 0; i < 100; i++) {
        bool s_busy = p->rs == RAFT__TLS_WANT_READ || p->rs == RAFT__TLS_WANT_WRITE;
        bool c_busy = p->rc == RAFT__TLS_WANT_READ || p->rc == RAFT__TLS_WANT_WRITE;
        if (!s_busy && !c_busy)
            break;
        if (c_busy)
            p->rc = raft__tls_handshake(p->client);
        if (s_busy)
            p->rs = raft__tls_handshake(p->server);
    }
}

static void pair_free(struct pair *p)
{
    raft__tls_conn_free(p->server);
    raft__tls_conn_free(p->client);
    close(p->fds[0]);
    close(p->fds[1]);
}

static void mutual_ids_and_data(void **state)
{
    (void)state;
    struct raft__tls_ctx *a = ctx_for(dir, "1"), *b = ctx_for(dir, "2");
    struct pair p;
    handshake(&p, a, b);
    assert_int_equal(p.rs, RAFT__TLS_DONE);
    assert_int_equal(p.rc, RAFT__TLS_DONE);
    uint64_t id = 0;
    assert_int_equal(raft__tls_peer_id(p.server, &id), 0);
    assert_int_equal(id, 2);
    assert_int_equal(raft__tls_peer_id(p.client, &id), 0);
    assert_int_equal(id, 1);

    /* 200 KiB through a socketpair whose buffer is smaller: partial writes and WANT_WRITE, with
     * the same bytes passed again on retry. */
    size_t total = 200 << 10;
    uint8_t *out = malloc(total), *in = malloc(total);
    for (size_t i = 0; i < total; i++)
        out[i] = (uint8_t)(i * 31 + 7);
    size_t sent = 0, got = 0;
    int spins = 0;
    while (got < total && spins++ < 100000) {
        size_t n;
        if (sent < total) {
            enum raft__tls_io r = raft__tls_write(p.client, out + sent, total - sent, &n);
            assert_true(r == RAFT__TLS_DONE || r == RAFT__TLS_WANT_WRITE);
            sent += n;
        }
        enum raft__tls_io r = raft__tls_read(p.server, in + got, total - got, &n);
        assert_true(r == RAFT__TLS_DONE || r == RAFT__TLS_WANT_READ);
        got += n;
    }
    assert_int_equal(got, total);
    assert_memory_equal(in, out, total);
    free(in);
    free(out);

    /* A close_notify reads as EOF. */
    raft__tls_conn_free(p.client);
    p.client = NULL;
    size_t n;
    uint8_t byte;
    assert_int_equal(raft__tls_read(p.server, &byte, 1, &n), RAFT__TLS_EOF);
    pair_free(&p);
    raft__tls_ctx_free(a);
    raft__tls_ctx_free(b);
}

static void foreign_ca_refused(void **state)
{
    (void)state;
    struct raft__tls_ctx *a = ctx_for(dir, "1");
    struct raft__tls_ctx *stranger = ctx_for(other, "2"); /* trusts our CA, signed by another */
    struct pair p;
    handshake(&p, a, stranger);
    assert_int_equal(p.rs, RAFT__TLS_FAILED);
    assert_non_null(strstr(raft__tls_conn_error(p.server), "certificate verify failed"));
    assert_true(p.rc == RAFT__TLS_FAILED || p.rc == RAFT__TLS_DONE);
    pair_free(&p);
    raft__tls_ctx_free(a);
    raft__tls_ctx_free(stranger);
}

static void client_without_certificate_refused(void **state)
{
    (void)state;
    struct raft__tls_ctx *a = ctx_for(dir, "1");
    struct raft__tls_ctx *anon = ctx_for(dir, NULL);
    struct pair p;
    handshake(&p, a, anon);
    assert_int_equal(p.rs, RAFT__TLS_FAILED);
    assert_non_null(strstr(raft__tls_conn_error(p.server), "did not return a certificate"));
    pair_free(&p);
    raft__tls_ctx_free(a);
    raft__tls_ctx_free(anon);
}

static void certificate_naming_two_nodes(void **state)
{
    (void)state;
    const char *dns[] = {"raftfs-node-7"};
    struct raft_tls_issue_options o = {.dns_names = dns, .n_dns_names = 1};
    assert_int_equal(raft_tls_node_issue(dir, 3, &o, err, sizeof err), 0);
    struct raft__tls_ctx *a = ctx_for(dir, "1"), *two = ctx_for(dir, "3");
    struct pair p;
    handshake(&p, a, two);
    assert_int_equal(p.rs, RAFT__TLS_DONE); /* the chain is fine; the name is not */
    uint64_t id = 0;
    assert_int_equal(raft__tls_peer_id(p.server, &id), RAFT_ETLS);
    assert_non_null(strstr(raft__tls_conn_error(p.server), "names two nodes"));
    pair_free(&p);
    raft__tls_ctx_free(a);
    raft__tls_ctx_free(two);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(node_names),
        cmocka_unit_test(files_and_modes),
        cmocka_unit_test(refuses_to_overwrite),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(mutual_ids_and_data),
        cmocka_unit_test(foreign_ca_refused),
        cmocka_unit_test(client_without_certificate_refused),
        cmocka_unit_test(certificate_naming_two_nodes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
