/* Mutual TLS 1.3 over OpenSSL 3 for the transport, and the certificate tooling of
 * `raftfs-ctl tls` (raft/net/tls.h). The only file of raftfs that includes OpenSSL headers. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "raft/raft.h"
#include "raft/net/tls.h"

#define CA_DAYS   3650
#define NODE_DAYS 1825

/* --- errors ----------------------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Drain OpenSSL's error queue of this thread into text: "reason; reason". */
static void openssl_reasons(char *buf, size_t len)
{
    size_t used = 0;
    unsigned long e;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[160];
        ERR_error_string_n(e, one, sizeof one);
        if (used + 2 < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "; " : "", one);
        if (used >= len)
            used = len - 1;
    }
    if (used == 0)
        snprintf(buf, len, "no OpenSSL reason recorded");
}

/* set_err with ": <OpenSSL reasons>" appended. */
static int tls_err(char *err, size_t errlen, const char *what)
{
    char reasons[RAFT_TLS_ERROR_MAX];
    openssl_reasons(reasons, sizeof reasons);
    set_err(err, errlen, "%s: %s", what, reasons);
    return RAFT_ETLS;
}

/* --- node names ------------------------------------------------------------------------------- */

int raft_tls_node_name_parse(const char *name, size_t len, uint64_t *id)
{
    const size_t plen = sizeof RAFT_TLS_NODE_PREFIX - 1;
    if (len <= plen || memcmp(name, RAFT_TLS_NODE_PREFIX, plen) != 0)
        return RAFT_EINVAL;
    if (name[plen] == '0')
        return RAFT_EINVAL; /* no leading zero, and ID 0 is not a server */
    uint64_t v = 0;
    for (size_t i = plen; i < len; i++) {
        if (name[i] < '0' || name[i] > '9')
            return RAFT_EINVAL;
        unsigned d = (unsigned)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return RAFT_EINVAL;
        v = v * 10 + d;
    }
    *id = v;
    return 0;
}

/* --- files ------------------------------------------------------------------------------------ */

static int join_path(char *out, size_t len, const char *dir, const char *name)
{
    int n = snprintf(out, len, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= len ? RAFT_EINVAL : 0;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Key and certificate files are never overwritten unless asked: losing a CA key strands every
 * certificate it signed. */
static int refuse_overwrite(const char *key_path, const char *cert_path, bool force, char *err,
                            size_t errlen)
{
    if (force)
        return 0;
    const char *existing = file_exists(key_path)    ? key_path
                           : file_exists(cert_path) ? cert_path
                                                    : NULL;
    if (existing == NULL)
        return 0;
    set_err(err, errlen, "%s exists; pass --force to overwrite it", existing);
    return RAFT_EFILEEXISTS;
}

/* Write data to path through a synced temporary file. Without force, link(2) refuses an
 * existing path atomically; with force, rename(2) replaces it. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode, bool force,
                      char *err, size_t errlen)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
        set_err(err, errlen, "%s: path too long", path);
        return RAFT_EINVAL;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        set_err(err, errlen, "create %s: %s", tmp, strerror(errno));
        return RAFT_EIO;
    }
    const char *step = "write";
    if (fchmod(fd, mode) != 0)
        goto err_after_open;
    for (size_t done = 0; done < len;) {
        ssize_t n = write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto err_after_open;
        done += (size_t)n;
    }
    step = "sync";
    if (fsync(fd) != 0)
        goto err_after_open;
    close(fd);
    if (force) {
        if (rename(tmp, path) != 0) {
            set_err(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
            unlink(tmp);
            return RAFT_EIO;
        }
        return 0;
    }
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST) {
            set_err(err, errlen, "%s exists; pass --force to overwrite it", path);
            return RAFT_EFILEEXISTS;
        }
        set_err(err, errlen, "link %s: %s", path, strerror(e));
        return RAFT_EIO;
    }
    unlink(tmp);
    return 0;

err_after_open:
    set_err(err, errlen, "%s %s: %s", step, tmp, strerror(errno));
    close(fd);
    unlink(tmp);
    return RAFT_EIO;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* PEM of a key (PKCS#8) or a certificate into a memory BIO; NULL on failure. */
static BIO *pem_of(EVP_PKEY *key, X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NULL;
    int ok = key ? PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_bio_X509(b, cert);
    if (!ok) {
        BIO_free(b);
        return NULL;
    }
    return b;
}

/* Write key and certificate as key_path (0600) then cert_path (0644). If the second write
 * fails, the first file is removed again unless it replaced an existing one. */
static int write_pair(const char *dir, const char *key_path, EVP_PKEY *key, const char *cert_path,
                      X509 *cert, bool force, char *err, size_t errlen)
{
    int rv = RAFT_ETLS;
    BIO *kb = pem_of(key, NULL);
    BIO *cb = pem_of(NULL, cert);
    if (kb == NULL || cb == NULL) {
        rv = tls_err(err, errlen, "encode PEM");
        goto out;
    }
    char *data;
    long len = BIO_get_mem_data(kb, &data);
    rv = write_file(key_path, data, (size_t)len, 0600, force, err, errlen);
    if (rv != 0)
        goto out;
    len = BIO_get_mem_data(cb, &data);
    rv = write_file(cert_path, data, (size_t)len, 0644, force, err, errlen);
    if (rv != 0 && !force)
        unlink(key_path);
    sync_dir(dir);
out:
    BIO_free(kb);
    BIO_free(cb);
    return rv;
}

/* --- certificates ----------------------------------------------------------------------------- */

static int add_ext(X509 *cert, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    if (ex == NULL)
        return 0;
    int ok = X509_add_ext(cert, ex, -1);
    X509_EXTENSION_free(ex);
    return ok;
}

/* A certificate for key named cn, valid days, with a random positive 127-bit serial; issued by
 * issuer (NULL: self-signed) and not yet signed. */
static X509 *new_cert(EVP_PKEY *key, const char *cn, unsigned days, X509 *issuer)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *serial = NULL;
    unsigned char rnd[16];
    if (x == NULL || name == NULL || RAND_bytes(rnd, sizeof rnd) != 1)
        goto err;
    rnd[0] &= 0x7f;
    rnd[0] |= 0x40; /* positive and of full length */
    serial = BN_bin2bn(rnd, sizeof rnd, NULL);
    if (serial == NULL || !X509_set_version(x, X509_VERSION_3) ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
        !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"raftfs", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                    0) ||
        !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
        !X509_set_pubkey(x, key) ||
        /* An hour back: tolerates clocks that lag the machine that issued it. */
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL)
        goto err;
    BN_free(serial);
    X509_NAME_free(name);
    return x;
err:
    BN_free(serial);
    X509_NAME_free(name);
    X509_free(x);
    return NULL;
}

int raft_tls_ca_create(const char *dir, bool force, char *err, size_t errlen)
{
    char key_path[4096], cert_path[4096];
    if (join_path(key_path, sizeof key_path, dir, "ca.key") != 0 ||
        join_path(cert_path, sizeof cert_path, dir, "ca.crt") != 0) {
        set_err(err, errlen, "%s: path too long", dir);
        return RAFT_EINVAL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        set_err(err, errlen, "create directory %s: %s", dir, strerror(errno));
        return RAFT_EIO;
    }
    int rv = refuse_overwrite(key_path, cert_path, force, err, errlen);
    if (rv != 0)
        return rv;
    ERR_clear_error();
    X509 *x = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL) {
        rv = tls_err(err, errlen, "generate the CA key");
        goto out;
    }
    x = new_cert(key, "raftfs cluster CA", CA_DAYS, NULL);
    X509V3_CTX v3;
    if (x != NULL) {
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        X509V3_set_ctx_nodb(&v3);
    }
    if (x == NULL || !add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        rv = tls_err(err, errlen, "build the CA certificate");
        goto out;
    }
    rv = write_pair(dir, key_path, key, cert_path, x, force, err, errlen);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rv;
}

static bool dns_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 253)
        return false;
    if (strncmp(s, "*.", 2) == 0)
        s += 2;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* "DNS:raftfs-node-<id>,IP:...,DNS:..." after checking every name: the text goes through
 * OpenSSL's configuration syntax, where a comma would start another name. */
static int san_text(uint64_t id, const struct raft_tls_issue_options *o, char *out, size_t len,
                    char *err, size_t errlen)
{
    size_t used = (size_t)snprintf(out, len, "DNS:" RAFT_TLS_NODE_PREFIX "%" PRIu64, id);
    for (size_t i = 0; o != NULL && i < o->n_ips; i++) {
        unsigned char bin[16];
        if (inet_pton(AF_INET, o->ips[i], bin) != 1 && inet_pton(AF_INET6, o->ips[i], bin) != 1) {
            set_err(err, errlen, "'%s' is not an IPv4 or IPv6 address", o->ips[i]);
            return RAFT_EINVAL;
        }
        used += (size_t)snprintf(out + used, used < len ? len - used : 0, ",IP:%s", o->ips[i]);
    }
    for (size_t i = 0; o != NULL && i < o->n_dns_names; i++) {
        if (!dns_name_ok(o->dns_names[i])) {
            set_err(err, errlen, "'%s' is not a DNS name", o->dns_names[i]);
            return RAFT_EINVAL;
        }
        used +=
            (size_t)snprintf(out + used, used < len ? len - used : 0, ",DNS:%s", o->dns_names[i]);
    }
    if (used >= len) {
        set_err(err, errlen, "too many subject alternative names");
        return RAFT_EINVAL;
    }
    return 0;
}

static int load_ca(const char *dir, X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
    char path[4096];
    int rv = RAFT_ETLS;
    *cert = NULL;
    *key = NULL;
    BIO *b = NULL;
    if (join_path(path, sizeof path, dir, "ca.crt") != 0 || (b = BIO_new_file(path, "r")) == NULL ||
        (*cert = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
        char what[4200];
        snprintf(what, sizeof what, "read the CA certificate %s", path);
        rv = tls_err(err, errlen, what);
        goto err;
    }
    BIO_free(b);
    b = NULL;
    if (join_path(path, sizeof path, dir, "ca.key") != 0 || (b = BIO_new_file(path, "r")) == NULL ||
        (*key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
        char what[4200];
        snprintf(what, sizeof what, "read the CA key %s", path);
        rv = tls_err(err, errlen, what);
        goto err;
    }
    BIO_free(b);
    if (X509_check_private_key(*cert, *key) != 1) {
        ERR_clear_error();
        set_err(err, errlen, "%s/ca.key does not belong to %s/ca.crt", dir, dir);
        goto err_after_read;
    }
    return 0;
err:
    BIO_free(b);
err_after_read:
    X509_free(*cert);
    EVP_PKEY_free(*key);
    *cert = NULL;
    *key = NULL;
    return rv;
}

int raft_tls_node_issue(const char *dir, uint64_t id, const struct raft_tls_issue_options *opts,
                        char *err, size_t errlen)
{
    if (id == 0) {
        set_err(err, errlen, "node ID 0 is not a server ID");
        return RAFT_EINVAL;
    }
    char key_path[4096], cert_path[4096], name[64], san[8192];
    snprintf(name, sizeof name, "%" PRIu64 ".key", id);
    int rv = join_path(key_path, sizeof key_path, dir, name);
    snprintf(name, sizeof name, "%" PRIu64 ".crt", id);
    if (rv != 0 || join_path(cert_path, sizeof cert_path, dir, name) != 0) {
        set_err(err, errlen, "%s: path too long", dir);
        return RAFT_EINVAL;
    }
    rv = san_text(id, opts, san, sizeof san, err, errlen);
    if (rv != 0)
        return rv;
    bool force = opts != NULL && opts->force;
    if ((rv = refuse_overwrite(key_path, cert_path, force, err, errlen)) != 0)
        return rv;
    ERR_clear_error();
    X509 *ca;
    EVP_PKEY *ca_key;
    rv = load_ca(dir, &ca, &ca_key, err, errlen);
    if (rv != 0)
        return rv;
    X509 *x = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    if (key == NULL) {
        rv = tls_err(err, errlen, "generate the node key");
        goto out;
    }
    snprintf(name, sizeof name, RAFT_TLS_NODE_PREFIX "%" PRIu64, id);
    unsigned days = opts != NULL && opts->days ? opts->days : NODE_DAYS;
    x = new_cert(key, name, days, ca);
    X509V3_CTX v3;
    if (x != NULL) {
        X509V3_set_ctx(&v3, ca, x, NULL, NULL, 0);
        X509V3_set_ctx_nodb(&v3);
    }
    if (x == NULL || !add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth") ||
        !add_ext(x, &v3, NID_subject_alt_name, san) ||
        !add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &v3, NID_authority_key_identifier, "keyid:always") ||
        X509_sign(x, ca_key, EVP_sha256()) <= 0) {
        rv = tls_err(err, errlen, "build the node certificate");
        goto out;
    }
    rv = write_pair(dir, key_path, key, cert_path, x, force, err, errlen);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return rv;
}

/* --- contexts and connections ----------------------------------------------------------------- */

struct raft__tls_ctx {
    SSL_CTX *ssl_ctx;
    BIO_METHOD *bio_method; /* socket I/O with MSG_NOSIGNAL */
};

struct raft__tls_conn {
    SSL *ssl;
    int fd;
    bool is_eof;         /* recv returned 0 */
    bool is_established; /* handshake done */
    bool is_failed;      /* a fatal error: no close_notify */
    char error[2 * RAFT_TLS_ERROR_MAX];
};

/* A socket BIO of our own: OpenSSL's uses write(2), which raises SIGPIPE on a closed
 * connection; a library must not change the process's signal dispositions to avoid it. */
static int bio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    struct raft__tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
        *written = (size_t)n;
        return 1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_write(b);
    return 0;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *nread)
{
    struct raft__tls_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(c->fd, data, len, 0);
    if (n > 0) {
        *nread = (size_t)n;
        return 1;
    }
    if (n == 0)
        c->is_eof = true;
    else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        BIO_set_retry_read(b);
    return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct raft__tls_conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return c != NULL && c->is_eof;
    default: return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

int raft__tls_ctx_new(const char *ca_file, const char *cert_file, const char *key_file,
                      struct raft__tls_ctx **out, char *err, size_t errlen)
{
    struct raft__tls_ctx *t = calloc(1, sizeof *t);
    if (t == NULL)
        return RAFT_ENOMEM;
    ERR_clear_error();
    char what[4200];
    t->ssl_ctx = SSL_CTX_new(TLS_method());
    if (t->ssl_ctx == NULL) {
        tls_err(err, errlen, "create a TLS context");
        goto err;
    }
    SSL_CTX *s = t->ssl_ctx;
    if (!SSL_CTX_set_min_proto_version(s, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION)) {
        tls_err(err, errlen, "restrict the TLS context to TLS 1.3");
        goto err;
    }
    if (SSL_CTX_load_verify_file(s, ca_file) != 1) {
        snprintf(what, sizeof what, "load the cluster CA %s", ca_file);
        tls_err(err, errlen, what);
        goto err;
    }
    if (cert_file != NULL && SSL_CTX_use_certificate_chain_file(s, cert_file) != 1) {
        snprintf(what, sizeof what, "load the certificate %s", cert_file);
        tls_err(err, errlen, what);
        goto err;
    }
    if (key_file != NULL && SSL_CTX_use_PrivateKey_file(s, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof what, "load the key %s", key_file);
        tls_err(err, errlen, what);
        goto err;
    }
    if (cert_file != NULL && key_file != NULL && SSL_CTX_check_private_key(s) != 1) {
        snprintf(what, sizeof what, "the key %s does not belong to %s", key_file, cert_file);
        tls_err(err, errlen, what);
        goto err;
    }
    /* Both sides verify: the acceptor asks for the dialer's certificate and fails the handshake
     * without one. OpenSSL also checks extendedKeyUsage against the side (client or server). */
    SSL_CTX_set_verify(s, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(s, 4);
    SSL_CTX_set_mode(s, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    /* A peer that closes without close_notify reads as EOF: frames carry their own lengths, so
     * truncation cannot go unnoticed. No tickets: nothing resumes, and an acceptor then writes
     * nothing after the handshake but its HELLO. */
    SSL_CTX_set_options(s, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(s, 0);
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);

    t->bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "raftfs socket");
    if (t->bio_method == NULL || !BIO_meth_set_write_ex(t->bio_method, bio_write) ||
        !BIO_meth_set_read_ex(t->bio_method, bio_read) ||
        !BIO_meth_set_ctrl(t->bio_method, bio_ctrl) ||
        !BIO_meth_set_create(t->bio_method, bio_create)) {
        tls_err(err, errlen, "create the socket BIO method");
        goto err;
    }
    *out = t;
    return 0;
err:
    raft__tls_ctx_free(t);
    return RAFT_ETLS;
}

void raft__tls_ctx_free(struct raft__tls_ctx *t)
{
    if (t == NULL)
        return;
    SSL_CTX_free(t->ssl_ctx);
    BIO_meth_free(t->bio_method);
    free(t);
}

int raft__tls_conn_new(struct raft__tls_ctx *t, int fd, bool is_server, struct raft__tls_conn **out)
{
    struct raft__tls_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return RAFT_ENOMEM;
    c->fd = fd;
    ERR_clear_error();
    c->ssl = SSL_new(t->ssl_ctx);
    BIO *b = BIO_new(t->bio_method);
    if (c->ssl == NULL || b == NULL) {
        BIO_free(b);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return RAFT_ETLS;
    }
    BIO_set_data(b, c);
    SSL_set_bio(c->ssl, b, b);
    if (is_server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    *out = c;
    return 0;
}

void raft__tls_conn_free(struct raft__tls_conn *c)
{
    if (c == NULL)
        return;
    if (c->is_established && !c->is_failed) {
        ERR_clear_error();
        SSL_shutdown(c->ssl);
    }
    ERR_clear_error();
    SSL_free(c->ssl);
    free(c);
}

/* Classify the result rv of an SSL call and, if fatal, record why. errno_saved is errno right
 * after the call. */
static enum raft__tls_io classify(struct raft__tls_conn *c, int rv, int errno_saved,
                                  const char *what)
{
    int e = SSL_get_error(c->ssl, rv);
    switch (e) {
    case SSL_ERROR_WANT_READ: return RAFT__TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE: return RAFT__TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(c->error, sizeof c->error, "%s: connection closed by the peer", what);
        ERR_clear_error();
        return RAFT__TLS_EOF;
    case SSL_ERROR_SYSCALL:
        c->is_failed = true;
        if (ERR_peek_error() == 0 && (errno_saved == 0 || c->is_eof)) {
            snprintf(c->error, sizeof c->error, "%s: connection closed by the peer", what);
            return RAFT__TLS_EOF;
        }
        if (ERR_peek_error() == 0) {
            snprintf(c->error, sizeof c->error, "%s: %s", what, strerror(errno_saved));
            return RAFT__TLS_FAILED;
        }
        break;
    default: c->is_failed = true; break;
    }
    char reasons[RAFT_TLS_ERROR_MAX];
    openssl_reasons(reasons, sizeof reasons);
    long verify = SSL_get_verify_result(c->ssl);
    if (verify != X509_V_OK)
        snprintf(c->error, sizeof c->error, "%s: %s (certificate: %s)", what, reasons,
                 X509_verify_cert_error_string(verify));
    else
        snprintf(c->error, sizeof c->error, "%s: %s", what, reasons);
    return RAFT__TLS_FAILED;
}

enum raft__tls_io raft__tls_handshake(struct raft__tls_conn *c)
{
    c->error[0] = '\0';
    ERR_clear_error();
    errno = 0;
    int rv = SSL_do_handshake(c->ssl);
    if (rv == 1) {
        c->is_established = true;
        return RAFT__TLS_DONE;
    }
    return classify(c, rv, errno, "TLS handshake failed");
}

enum raft__tls_io raft__tls_read(struct raft__tls_conn *c, void *buf, size_t len, size_t *n)
{
    c->error[0] = '\0';
    *n = 0;
    ERR_clear_error();
    errno = 0;
    int rv = SSL_read_ex(c->ssl, buf, len, n);
    if (rv == 1)
        return RAFT__TLS_DONE;
    *n = 0;
    return classify(c, rv, errno, "TLS read");
}

enum raft__tls_io raft__tls_write(struct raft__tls_conn *c, const void *buf, size_t len, size_t *n)
{
    c->error[0] = '\0';
    *n = 0;
    ERR_clear_error();
    errno = 0;
    int rv = SSL_write_ex(c->ssl, buf, len, n);
    if (rv == 1)
        return RAFT__TLS_DONE;
    *n = 0;
    return classify(c, rv, errno, "TLS write");
}

const char *raft__tls_conn_error(const struct raft__tls_conn *c)
{
    return c->error;
}

/* Record in *id the node an ASN.1 string names; 0 if it names none; -1 on a second node. */
static int note_name(const unsigned char *s, int len, uint64_t *id, bool *has_id, uint64_t *other)
{
    uint64_t v;
    if (s == NULL || len <= 0 || raft_tls_node_name_parse((const char *)s, (size_t)len, &v) != 0)
        return 0;
    if (*has_id && v != *id) {
        *other = v;
        return -1;
    }
    *id = v;
    *has_id = true;
    return 0;
}

int raft__tls_peer_id(struct raft__tls_conn *c, uint64_t *id)
{
    c->error[0] = '\0';
    X509 *cert = SSL_get1_peer_certificate(c->ssl);
    if (cert == NULL) {
        snprintf(c->error, sizeof c->error, "the peer sent no certificate");
        return RAFT_ETLS;
    }
    bool has_id = false;
    uint64_t found = 0, other = 0;
    int clash = 0;
    X509_NAME *subject = X509_get_subject_name(cert);
    for (int i = -1;
         clash == 0 && (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        clash = note_name(ASN1_STRING_get0_data(d), ASN1_STRING_length(d), &found, &has_id, &other);
    }
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; clash == 0 && i < sk_GENERAL_NAME_num(sans); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        clash = note_name(ASN1_STRING_get0_data(g->d.dNSName), ASN1_STRING_length(g->d.dNSName),
                          &found, &has_id, &other);
    }
    GENERAL_NAMES_free(sans);
    X509_free(cert);
    ERR_clear_error();
    if (clash != 0) {
        snprintf(c->error, sizeof c->error,
                 "the peer certificate names two nodes (" RAFT_TLS_NODE_PREFIX "%" PRIu64
                 " and " RAFT_TLS_NODE_PREFIX "%" PRIu64 ")",
                 found, other);
        return RAFT_ETLS;
    }
    if (!has_id) {
        snprintf(c->error, sizeof c->error,
                 "the peer certificate names no node (expected CN or DNS name " RAFT_TLS_NODE_PREFIX
                 "<id>)");
        return RAFT_ETLS;
    }
    *id = found;
    return 0;
}
