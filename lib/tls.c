/* The OpenSSL transport (mg_xprt_tls). See tls.h.
 *
 * The socket is driven through a small BIO of our own rather than OpenSSL's
 * socket BIO, because that one writes with write(2) and a peer that is gone
 * would raise SIGPIPE; ours uses send(MSG_NOSIGNAL) like mg_xprt_raw.
 *
 * OpenSSL's error queue is per thread and shared: it is cleared before every
 * SSL call so a stale entry never decides how a later call is read. */
#define _GNU_SOURCE
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "loop.h"

/* Small iovecs are copied into one buffer of this size and written with one
 * SSL_write (one record instead of one per header line). */
#define TLS_COALESCE 16384

static const unsigned char alpn_http11[] = "\x08http/1.1";

struct tls_factory {
    struct mg_xprt_factory f;   /* first: the pointer handed out */
    SSL_CTX *ctx;
    int server;
};

struct tls_conn {
    SSL *ssl;
    unsigned failed : 1;        /* fatal error seen: no SSL_shutdown */
    unsigned shut : 1;
};

/* ------------------------------------------------------------------------ */
/* The socket BIO. */

static BIO_METHOD *sock_method;

static int sock_write(BIO *b, const char *p, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = send(fd, p, (size_t)n, MSG_NOSIGNAL);
        if (r >= 0)
            return (int)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        return -1;
    }
}

static int sock_read(BIO *b, char *p, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = recv(fd, p, (size_t)n, 0);
        if (r >= 0)
            return (int)r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return -1;
    }
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Unbuffered: flushing is a no-op that succeeds; nothing else is
     * supported. */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int sock_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int sock_method_init(void)
{
    /* Factories are made at startup from one thread. */
    if (sock_method)
        return 0;
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mg_sock");
    if (!m)
        return -ENOMEM;
    BIO_meth_set_write(m, sock_write);
    BIO_meth_set_read(m, sock_read);
    BIO_meth_set_ctrl(m, sock_ctrl);
    BIO_meth_set_create(m, sock_create);
    sock_method = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The transport ops. */

/* Maps the result of an SSL call that did not succeed. */
static int tls_error(struct mg_xprt *x, struct tls_conn *t, int r, const char *what)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        x->want = MG_READ;
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        x->want = MG_WRITE;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL: {
        int saved = errno;
        t->failed = 1;
        ERR_clear_error();
        if (saved == EPIPE || saved == ECONNRESET)
            return -saved;
        return saved ? -saved : -ECONNRESET;
    }
    default: {
        char buf[256];
        unsigned long code = ERR_peek_last_error();
        ERR_error_string_n(code, buf, sizeof buf);
        mg_log(MG_LOG_DEBUG, "tls error", "op", MG_S(what), "fd", MG_I(x->fd), "error",
               MG_S(code ? buf : "unknown"));
        t->failed = 1;
        ERR_clear_error();
        return -EPROTO;
    }
    }
}

static int tls_handshake(struct mg_xprt *x)
{
    struct tls_conn *t = x->ctx;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1)
        return 0;
    int rc = tls_error(x, t, r, "handshake");
    if (rc == 0) {
        /* The peer closed during the handshake. */
        t->failed = 1;
        return -ECONNRESET;
    }
    if (rc == -EPROTO && SSL_get_verify_result(t->ssl) != X509_V_OK)
        mg_log(MG_LOG_DEBUG, "tls peer certificate rejected", "fd", MG_I(x->fd), "error",
               MG_S(X509_verify_cert_error_string(SSL_get_verify_result(t->ssl))));
    return rc;
}

static ssize_t tls_recv(struct mg_xprt *x, void *buf, size_t n)
{
    struct tls_conn *t = x->ctx;
    if (n == 0)
        return 0;
    if (n > INT_MAX)
        n = INT_MAX;
    ERR_clear_error();
    int r = SSL_read(t->ssl, buf, (int)n);
    if (r > 0)
        return r;
    return tls_error(x, t, r, "read");
}

static ssize_t tls_write(struct mg_xprt *x, struct tls_conn *t, const void *p, size_t n)
{
    if (n > INT_MAX)
        n = INT_MAX;
    ERR_clear_error();
    int r = SSL_write(t->ssl, p, (int)n);
    if (r > 0)
        return r;
    int rc = tls_error(x, t, r, "write");
    return rc == 0 ? -EPIPE : rc;
}

/* Small iovecs are coalesced into one record. After -EAGAIN the caller
 * retries with the same leading bytes (its buffer is unchanged) and at least
 * as many of them, which is what SSL_write requires of a retry; the buffer
 * may move (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER). */
static ssize_t tls_sendv(struct mg_xprt *x, const struct iovec *iov, int iovcnt)
{
    struct tls_conn *t = x->ctx;
    int i = 0;
    while (i < iovcnt && iov[i].iov_len == 0)
        i++;
    if (i == iovcnt)
        return 0;
    if (iov[i].iov_len >= TLS_COALESCE || i + 1 == iovcnt)
        return tls_write(x, t, iov[i].iov_base, iov[i].iov_len);
    char tmp[TLS_COALESCE];
    size_t len = 0;
    for (; i < iovcnt && len < sizeof tmp; i++) {
        size_t k = iov[i].iov_len;
        if (k > sizeof tmp - len)
            k = sizeof tmp - len;
        memcpy(tmp + len, iov[i].iov_base, k);
        len += k;
    }
    return tls_write(x, t, tmp, len);
}

static size_t tls_pending(struct mg_xprt *x)
{
    struct tls_conn *t = x->ctx;
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

static int tls_shutdown(struct mg_xprt *x)
{
    struct tls_conn *t = x->ctx;
    if (t->failed || t->shut || !SSL_is_init_finished(t->ssl))
        return 0;
    t->shut = 1;
    /* Best effort: one close_notify attempt, no waiting for the peer's. */
    ERR_clear_error();
    int r = SSL_shutdown(t->ssl);
    ERR_clear_error();
    if (r < 0)
        return -EPROTO;
    if (shutdown(x->fd, SHUT_WR) == -1)
        return -errno;
    return 0;
}

static void tls_close(struct mg_xprt *x)
{
    struct tls_conn *t = x->ctx;
    if (t) {
        SSL_free(t->ssl);
        free(t);
    }
    x->ctx = NULL;
    if (x->fd != -1)
        close(x->fd);
    x->fd = -1;
}

const struct mg_xprt_ops mg_xprt_tls_ops = {
    .name = "tls",
    .handshake = tls_handshake,
    .recv = tls_recv,
    .sendv = tls_sendv,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* ------------------------------------------------------------------------ */
/* Factories. */

static int tls_wrap(struct mg_xprt_factory *f, struct mg_xprt *x, int fd, int server,
                    const char *peer_name)
{
    struct tls_factory *tf = (struct tls_factory *)f;
    struct tls_conn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    ERR_clear_error();
    t->ssl = SSL_new(tf->ctx);
    BIO *b = t->ssl ? BIO_new(sock_method) : NULL;
    if (!b)
        goto fail;
    BIO_set_data(b, (void *)(intptr_t)fd);
    SSL_set_bio(t->ssl, b, b);
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (peer_name && *peer_name) {
            /* "[::1]" -> "::1" */
            char host[256];
            size_t n = strlen(peer_name);
            if (n >= 2 && peer_name[0] == '[' && peer_name[n - 1] == ']') {
                peer_name++;
                n -= 2;
            }
            if (n >= sizeof host)
                goto fail;
            memcpy(host, peer_name, n);
            host[n] = 0;
            unsigned char ip[16];
            int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
            if (!is_ip && !SSL_set_tlsext_host_name(t->ssl, host))
                goto fail;
            if (SSL_get_verify_mode(t->ssl) != SSL_VERIFY_NONE) {
                if (is_ip) {
                    if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host))
                        goto fail;
                } else if (!SSL_set1_host(t->ssl, host)) {
                    goto fail;
                }
            }
        }
    }
    x->fd = fd;
    x->want = 0;
    x->ops = &mg_xprt_tls_ops;
    x->ctx = t;
    return 0;
fail:
    ERR_clear_error();
    SSL_free(t->ssl);   /* frees b once set; NULL is fine */
    free(t);
    return -ENOMEM;
}

static char err_buf[512];

static void set_err(const char **err, const char *what, const char *file)
{
    char reason[256] = "";
    unsigned long code = ERR_peek_last_error();
    if (code)
        ERR_error_string_n(code, reason, sizeof reason);
    ERR_clear_error();
    snprintf(err_buf, sizeof err_buf, "%s%s%s%s%s", what, file ? " " : "", file ? file : "",
             code ? ": " : "", reason);
    if (err)
        *err = err_buf;
}

/* ALPN on the server: http/1.1 if offered, else no ALPN answer (never h2). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, alpn_http11, sizeof alpn_http11 - 1, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int factory_new(int server, struct tls_factory **out, const char **err)
{
    if (sock_method_init() < 0) {
        set_err(err, "tls: cannot create the socket BIO", NULL);
        return -ENOMEM;
    }
    struct tls_factory *tf = calloc(1, sizeof *tf);
    if (!tf) {
        set_err(err, "tls: out of memory", NULL);
        return -ENOMEM;
    }
    ERR_clear_error();
    tf->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!tf->ctx) {
        set_err(err, "tls: cannot create a context", NULL);
        free(tf);
        return -ENOMEM;
    }
    tf->server = server;
    tf->f.wrap = tls_wrap;
    tf->f.ctx = tf;
    SSL_CTX_set_min_proto_version(tf->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(tf->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(tf->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                     SSL_OP_NO_COMPRESSION);
    *out = tf;
    return 0;
}

/* A file that cannot be opened gets the system's reason ("No such file or
 * directory"), clearer than OpenSSL's "system lib". */
static int check_readable(const char *what, const char *file, const char **err)
{
    FILE *fp = fopen(file, "re");
    if (fp) {
        fclose(fp);
        return 0;
    }
    int e = errno;
    snprintf(err_buf, sizeof err_buf, "%s %s: %s", what, file, strerror(e));
    if (err)
        *err = err_buf;
    return -e;
}

static int load_pair(struct tls_factory *tf, const char *cert_file, const char *key_file,
                     const char **err)
{
    int rc;
    if ((rc = check_readable("tls: cannot load the certificate", cert_file, err)) < 0 ||
        (rc = check_readable("tls: cannot load the private key", key_file, err)) < 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(tf->ctx, cert_file) != 1) {
        set_err(err, "tls: cannot load the certificate", cert_file);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(tf->ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        set_err(err, "tls: cannot load the private key", key_file);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(tf->ctx) != 1) {
        set_err(err, "tls: the private key does not match the certificate", key_file);
        return -EINVAL;
    }
    return 0;
}

int mg_tls_server_factory_new(const char *cert_file, const char *key_file, const char *ca_file,
                              struct mg_xprt_factory **out, const char **err)
{
    if (!cert_file || !*cert_file || !key_file || !*key_file) {
        set_err(err, "tls: a server needs both a certificate and a key file", NULL);
        return -EINVAL;
    }
    struct tls_factory *tf;
    int rc = factory_new(1, &tf, err);
    if (rc < 0)
        return rc;
    rc = load_pair(tf, cert_file, key_file, err);
    if (rc < 0)
        goto fail;
    SSL_CTX_set_alpn_select_cb(tf->ctx, alpn_select, NULL);
    /* Sessions resumed across our own contexts only. */
    static const unsigned char sid[] = "modelgate";
    SSL_CTX_set_session_id_context(tf->ctx, sid, sizeof sid - 1);
    if (ca_file && *ca_file) {
        if ((rc = check_readable("tls: cannot load the client CA file", ca_file, err)) < 0)
            goto fail;
        if (SSL_CTX_load_verify_locations(tf->ctx, ca_file, NULL) != 1) {
            set_err(err, "tls: cannot load the client CA file", ca_file);
            rc = -EINVAL;
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(tf->ctx, names);
        ERR_clear_error();
        SSL_CTX_set_verify(tf->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    *out = &tf->f;
    return 0;
fail:
    mg_tls_factory_free(&tf->f);
    return rc;
}

int mg_tls_client_factory_new(const char *ca_file, const char *cert_file, const char *key_file,
                              int insecure, struct mg_xprt_factory **out, const char **err)
{
    int have_cert = cert_file && *cert_file, have_key = key_file && *key_file;
    if (have_cert != have_key) {
        set_err(err, "tls: a client certificate needs both a certificate and a key file", NULL);
        return -EINVAL;
    }
    struct tls_factory *tf;
    int rc = factory_new(0, &tf, err);
    if (rc < 0)
        return rc;
    if (SSL_CTX_set_alpn_protos(tf->ctx, alpn_http11, sizeof alpn_http11 - 1) != 0) {
        set_err(err, "tls: cannot set ALPN", NULL);
        rc = -ENOMEM;
        goto fail;
    }
    if (have_cert) {
        rc = load_pair(tf, cert_file, key_file, err);
        if (rc < 0)
            goto fail;
    }
    if (insecure) {
        SSL_CTX_set_verify(tf->ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (ca_file && *ca_file) {
            if ((rc = check_readable("tls: cannot load the CA file", ca_file, err)) < 0)
                goto fail;
            if (SSL_CTX_load_verify_locations(tf->ctx, ca_file, NULL) != 1) {
                set_err(err, "tls: cannot load the CA file", ca_file);
                rc = -EINVAL;
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(tf->ctx) != 1) {
            set_err(err, "tls: cannot load the system trust store", NULL);
            rc = -EINVAL;
            goto fail;
        }
        SSL_CTX_set_verify(tf->ctx, SSL_VERIFY_PEER, NULL);
    }
    *out = &tf->f;
    return 0;
fail:
    mg_tls_factory_free(&tf->f);
    return rc;
}

void mg_tls_factory_free(struct mg_xprt_factory *f)
{
    if (!f)
        return;
    struct tls_factory *tf = (struct tls_factory *)f;
    SSL_CTX_free(tf->ctx);   /* each SSL holds its own reference */
    free(tf);
}

int mg_tls_self_signed_pem_b64(const char *cert_file, char **out_b64)
{
    *out_b64 = NULL;
    FILE *fp = fopen(cert_file, "re");
    if (!fp)
        return -errno;
    ERR_clear_error();
    X509 *cert = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    if (!cert) {
        ERR_clear_error();
        return -EINVAL;
    }
    int rc = 0;
    char *pem = NULL;
    BIO *mem = NULL;
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    if (X509_check_issued(cert, cert) != X509_V_OK || !pub || X509_verify(cert, pub) != 1)
        goto out;   /* not self-signed: 0 */
    mem = BIO_new(BIO_s_mem());
    if (!mem || PEM_write_bio_X509(mem, cert) != 1) {
        rc = -ENOMEM;
        goto out;
    }
    char *p;
    long n = BIO_get_mem_data(mem, &p);
    if (n <= 0 || n > (1 << 20)) {
        rc = -EINVAL;
        goto out;
    }
    /* 4 output bytes per 3 input bytes, plus the NUL. */
    pem = malloc((size_t)(n + 2) / 3 * 4 + 1);
    if (!pem) {
        rc = -ENOMEM;
        goto out;
    }
    EVP_EncodeBlock((unsigned char *)pem, (const unsigned char *)p, (int)n);
    *out_b64 = pem;
    rc = 1;
out:
    ERR_clear_error();
    BIO_free(mem);
    X509_free(cert);
    return rc;
}
