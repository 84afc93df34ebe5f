/* Unit tests for lib/tls.c: an mg_httpd with the TLS server factory and an
 * mg_httpc with the TLS client factory on one loop. Certificates (a CA, a
 * server certificate for 127.0.0.1 and localhost, a client certificate, and
 * an unrelated CA) are made at test time with the openssl command. */
#define _GNU_SOURCE
#include "lib/httpc.h"
#include "lib/httpd.h"
#include "lib/loop.h"
#include "lib/tls.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct mg_loop *loop;
static char dir[256];

static const char *path(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static int make_certs(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; exec >openssl.log 2>&1\n"
             "EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
             "openssl req -x509 $EC -keyout ca.key -out ca.crt -days 2 -subj /CN=mg-test-ca\n"
             "openssl req -x509 $EC -keyout other.key -out other.crt -days 2 -subj /CN=other-ca\n"
             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' >srv.ext\n"
             "openssl req $EC -keyout srv.key -out srv.csr -subj /CN=localhost\n"
             "openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out srv.crt -days 2 -extfile srv.ext\n"
             "printf 'extendedKeyUsage=clientAuth\\n' >cli.ext\n"
             "openssl req $EC -keyout cli.key -out cli.csr -subj /CN=client\n"
             "openssl x509 -req -in cli.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out cli.crt -days 2 -extfile cli.ext\n"
             "printf 'not a certificate\\n' >junk.pem\n",
             dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* A result collector for one request. */

struct result {
    struct mg_httpc_req req;
    int status;
    char body[64];
    size_t body_len;
    uint64_t body_total;
    int bad_bytes;
    int done, failed;
    enum mg_httpc_error kind;
    int err;
};

static void r_head(struct mg_httpc_req *req, const struct mg_h1_msg *m)
{
    struct result *r = req->data;
    r->status = m->status;
}

static void r_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct result *r = req->data;
    for (size_t i = 0; i < n; i++) {
        /* /big is 'a'..'z' repeating: a byte out of place is corruption. */
        if (r->status == 200 && r->req.target[1] == 'b' &&
            p[i] != (char)('a' + (r->body_total + i) % 26))
            r->bad_bytes++;
    }
    if (r->body_len + n <= sizeof r->body) {
        memcpy(r->body + r->body_len, p, n);
        r->body_len += n;
    }
    r->body_total += n;
}

static void r_done(struct mg_httpc_req *req)
{
    struct result *r = req->data;
    r->done = 1;
}

static void r_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    struct result *r = req->data;
    r->failed = 1;
    r->kind = kind;
    r->err = err;
}

static void r_init(struct result *r, const char *method, const char *target)
{
    memset(r, 0, sizeof *r);
    r->req.method = method;
    r->req.target = target;
    r->req.on_head = r_head;
    r->req.on_body = r_body;
    r->req.on_done = r_done;
    r->req.on_error = r_error;
    r->req.data = r;
}

static int wait_for(struct result *r, int ms)
{
    uint64_t end = mg_now_ns() / 1000000u + (uint64_t)ms;
    while (!(r->done || r->failed) && mg_now_ns() / 1000000u < end)
        mg_loop_run_once(loop, 10);
    return r->done || r->failed;
}

/* ------------------------------------------------------------------------ */
/* An httpd over TLS. */

static char big[1 << 20];

struct bigstate {
    size_t left;
};

static void big_pump(struct mg_httpd_req *req)
{
    struct bigstate *b = mg_httpd_req_data(req);
    while (b->left) {
        size_t off = sizeof big - b->left;
        size_t n = b->left < 8192 ? b->left : 8192;
        int rc = mg_httpd_write(req, big + off, n);
        if (rc < 0)
            return;
        b->left -= n;
        if (rc == 1)
            return;
    }
    mg_httpd_end(req);
}

static void big_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    free(mg_httpd_req_data(req));
}

/* POST /count: the body is counted and checked ('a'..'z' repeating); the
 * answer is "<bytes> <bad bytes>". */
struct countstate {
    size_t n, bad;
};

static void count_body(struct mg_httpd_req *req, const char *p, size_t n, int last)
{
    struct countstate *cs = mg_httpd_req_data(req);
    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)('a' + (cs->n + i) % 26))
            cs->bad++;
    cs->n += n;
    if (last) {
        char out[64];
        int len = snprintf(out, sizeof out, "%zu %zu", cs->n, cs->bad);
        mg_httpd_respond(req, 200, NULL, 0, out, (size_t)len);
    }
}

static void on_request(struct mg_httpd_req *req, void *data)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    if (m->target_len == 6 && memcmp(m->target, "/count", 6) == 0) {
        struct countstate *cs = calloc(1, sizeof *cs);
        mg_httpd_req_set_data(req, cs);
        mg_httpd_on_end(req, big_end);
        mg_httpd_read_body(req, count_body);
        return;
    }
    if (m->target_len == 4 && memcmp(m->target, "/big", 4) == 0) {
        struct bigstate *b = malloc(sizeof *b);
        b->left = sizeof big;
        mg_httpd_req_set_data(req, b);
        mg_httpd_on_end(req, big_end);
        mg_httpd_on_writable(req, big_pump);
        mg_httpd_start(req, 200, NULL, 0, (int64_t)sizeof big);
        big_pump(req);
        return;
    }
    mg_httpd_respond(req, 200, NULL, 0, "hello", 5);
}

static struct mg_httpd *srv;
static struct mg_xprt_factory *srv_tls;
static char srv_addr[64];
static int srv_port;

static void start_httpd(const char *client_ca)
{
    const char *err = NULL;
    int rc = mg_tls_server_factory_new(path("srv.crt"), path("srv.key"), client_ca, &srv_tls,
                                       &err);
    if (rc < 0) {
        printf("# tls server factory: %s\n", err);
        exit(1);
    }
    struct mg_httpd_config cfg;
    mg_httpd_config_default(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.on_request = on_request;
    cfg.reuseport = 0;
    cfg.xprt = srv_tls;
    rc = mg_httpd_new(loop, &cfg, &srv, &err);
    if (rc < 0) {
        printf("# httpd: %s\n", err);
        exit(1);
    }
    srv_port = mg_httpd_port(srv);
    snprintf(srv_addr, sizeof srv_addr, "127.0.0.1:%d", srv_port);
}

static void stop_httpd(void)
{
    mg_httpd_free(srv);
    mg_tls_factory_free(srv_tls);
    srv = NULL;
    srv_tls = NULL;
}

static struct mg_httpc *new_client(struct mg_xprt_factory *f)
{
    struct mg_httpc_config cfg;
    mg_httpc_config_default(&cfg);
    cfg.connect_timeout_ms = 2000;
    cfg.xprt = f;
    struct mg_httpc *cl;
    if (mg_httpc_new(loop, &cfg, &cl) < 0)
        exit(1);
    return cl;
}

static struct mg_xprt_factory *client_factory(const char *ca, const char *cert, const char *key)
{
    struct mg_xprt_factory *f;
    const char *err = NULL;
    if (mg_tls_client_factory_new(ca, cert, key, 0, &f, &err) < 0) {
        printf("# tls client factory: %s\n", err);
        exit(1);
    }
    return f;
}

/* One GET on a fresh client; the client is freed. */
static void get_once(struct mg_xprt_factory *f, const char *hostport, const char *target,
                     struct result *r)
{
    struct mg_httpc *cl = new_client(f);
    struct mg_httpc_endpoint *ep;
    r_init(r, "GET", target);
    if (mg_httpc_endpoint(cl, hostport, &ep, NULL) == 0 && mg_httpc_send(cl, ep, &r->req) == 0)
        wait_for(r, 5000);
    else
        r->failed = 2;
    mg_httpc_free(cl);
}

/* ------------------------------------------------------------------------ */

static void t_get_big_and_reuse(void)
{
    start_httpd(NULL);
    struct mg_xprt_factory *f = client_factory(path("ca.crt"), NULL, NULL);
    struct mg_httpc *cl = new_client(f);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    struct result r;
    const char *targets[] = {"/", "/big", "/", "/big"};
    for (int i = 0; i < 4; i++) {
        r_init(&r, "GET", targets[i]);
        REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
        if (!wait_for(&r, 10000))
            printf("# request %d %s: status %d, %llu bytes\n", i, targets[i], r.status, (unsigned long long)r.body_total);
        REQUIRE(r.done || r.failed);
        CHECK_EQ_INT(r.done, 1);
        CHECK_EQ_INT(r.status, 200);
        if (i % 2 == 0) {
            CHECK_EQ_MEM(r.body, r.body_len, "hello");
        } else {
            CHECK_EQ_INT(r.body_total, sizeof big);
            CHECK_EQ_INT(r.bad_bytes, 0);
        }
        CHECK_EQ_INT(r.req.reused, i > 0);
    }
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.created, 1);
    CHECK_EQ_INT(st.reused, 3);
    CHECK_EQ_INT(st.errors, 0);
    mg_httpc_free(cl);
    mg_tls_factory_free(f);
    stop_httpd();
}

/* A 1 MiB request body over TLS: the server reads records it has decoded
 * but not yet handed out (pending) without the fd becoming readable. */
static void t_big_upload(void)
{
    start_httpd(NULL);
    struct mg_xprt_factory *f = client_factory(path("ca.crt"), NULL, NULL);
    struct mg_httpc *cl = new_client(f);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    for (int i = 0; i < 2; i++) {
        struct result r;
        r_init(&r, "POST", "/count");
        r.req.body = big;
        r.req.body_len = sizeof big;
        REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
        wait_for(&r, 10000);
        CHECK_EQ_INT(r.done, 1);
        CHECK_EQ_INT(r.status, 200);
        CHECK_EQ_MEM(r.body, r.body_len, "1048576 0");
        CHECK_EQ_INT(r.req.reused, i > 0);
    }
    mg_httpc_free(cl);
    mg_tls_factory_free(f);
    stop_httpd();
}

/* SNI and DNS-name verification: "localhost" is in the certificate. */
static void t_dns_name_verified(void)
{
    start_httpd(NULL);
    struct mg_xprt_factory *f = client_factory(path("ca.crt"), NULL, NULL);
    char hp[64];
    snprintf(hp, sizeof hp, "localhost:%d", srv_port);
    struct result r;
    get_once(f, hp, "/", &r);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.status, 200);
    mg_tls_factory_free(f);
    stop_httpd();
}

static void t_wrong_ca_fails(void)
{
    start_httpd(NULL);
    struct mg_xprt_factory *f = client_factory(path("other.crt"), NULL, NULL);
    struct result r;
    get_once(f, srv_addr, "/", &r);
    CHECK_EQ_INT(r.done, 0);
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_CONNECT);
    CHECK_EQ_INT(r.status, 0);
    mg_tls_factory_free(f);

    /* insecure accepts any certificate */
    const char *err = NULL;
    REQUIRE(mg_tls_client_factory_new(path("other.crt"), NULL, NULL, 1, &f, &err) == 0);
    get_once(f, srv_addr, "/", &r);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.status, 200);
    mg_tls_factory_free(f);
    stop_httpd();
}

/* A plain-HTTP client on the TLS port is closed without an HTTP answer. */
static void t_plain_http_closed(void)
{
    start_httpd(NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (int)(sizeof req - 1));
    char buf[4096];
    size_t got = 0;
    int closed = 0;
    uint64_t end = mg_now_ns() / 1000000u + 3000;
    while (!closed && mg_now_ns() / 1000000u < end) {
        mg_loop_run_once(loop, 10);
        ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            closed = 1;
        if (got == sizeof buf)
            break;
    }
    CHECK_EQ_INT(closed, 1);
    CHECK(got < 5 || memcmp(buf, "HTTP/", 5) != 0);
    close(fd);
    /* The server still serves TLS afterwards. */
    struct mg_xprt_factory *f = client_factory(path("ca.crt"), NULL, NULL);
    struct result r;
    get_once(f, srv_addr, "/", &r);
    CHECK_EQ_INT(r.status, 200);
    mg_tls_factory_free(f);
    stop_httpd();
}

static void t_mtls(void)
{
    start_httpd(path("ca.crt"));
    struct result r;
    /* With a client certificate signed by the CA. */
    struct mg_xprt_factory *f = client_factory(path("ca.crt"), path("cli.crt"), path("cli.key"));
    get_once(f, srv_addr, "/", &r);
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.status, 200);
    mg_tls_factory_free(f);
    /* Without one: the handshake (TLS 1.2) or the first read (TLS 1.3, the
     * server rejects after the client finished) fails; never a 200. */
    f = client_factory(path("ca.crt"), NULL, NULL);
    get_once(f, srv_addr, "/", &r);
    CHECK_EQ_INT(r.done, 0);
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.status, 0);
    mg_tls_factory_free(f);
    /* With a certificate from another CA (self-signed "other"). */
    f = client_factory(path("ca.crt"), path("other.crt"), path("other.key"));
    get_once(f, srv_addr, "/", &r);
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.status, 0);
    mg_tls_factory_free(f);
    stop_httpd();
}

static void t_bad_files(void)
{
    struct mg_xprt_factory *f = NULL;
    const char *err = NULL;
    CHECK_EQ_INT(mg_tls_server_factory_new(path("missing.crt"), path("srv.key"), NULL, &f, &err),
                 -ENOENT);
    CHECK(err && strstr(err, "certificate") && strstr(err, "missing.crt") &&
          strstr(err, "No such file"));
    err = NULL;
    CHECK_EQ_INT(mg_tls_server_factory_new(path("junk.pem"), path("srv.key"), NULL, &f, &err),
                 -EINVAL);
    CHECK(err && strstr(err, "junk.pem"));
    err = NULL;
    CHECK_EQ_INT(mg_tls_server_factory_new(path("srv.crt"), path("junk.pem"), NULL, &f, &err),
                 -EINVAL);
    CHECK(err && strstr(err, "private key") && strstr(err, "junk.pem"));
    err = NULL;
    CHECK_EQ_INT(mg_tls_server_factory_new(path("srv.crt"), path("cli.key"), NULL, &f, &err),
                 -EINVAL);
    /* OpenSSL checks the pair when loading the key: "key values mismatch". */
    CHECK(err && strstr(err, "private key") && strstr(err, "mismatch"));
    err = NULL;
    CHECK_EQ_INT(mg_tls_server_factory_new(path("srv.crt"), path("srv.key"), path("junk.pem"), &f,
                                           &err),
                 -EINVAL);
    CHECK(err && strstr(err, "CA") && strstr(err, "junk.pem"));
    err = NULL;
    CHECK_EQ_INT(mg_tls_client_factory_new(path("junk.pem"), NULL, NULL, 0, &f, &err), -EINVAL);
    CHECK(err && strstr(err, "junk.pem"));
    err = NULL;
    CHECK_EQ_INT(mg_tls_client_factory_new(NULL, path("cli.crt"), NULL, 0, &f, &err), -EINVAL);
    CHECK(err != NULL);
    mg_tls_factory_free(NULL);
}

int main(void)
{
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_tls.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir) || make_certs() < 0) {
        printf("# cannot make test certificates in %s (see openssl.log)\n", dir);
        return 1;
    }
    if (mg_loop_new(&loop) < 0)
        return 1;
    RUN(t_get_big_and_reuse);
    RUN(t_big_upload);
    RUN(t_dns_name_verified);
    RUN(t_wrong_ca_fails);
    RUN(t_plain_http_closed);
    RUN(t_mtls);
    RUN(t_bad_files);
    mg_loop_run_once(loop, 0);
    mg_loop_free(loop);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return test_done();
}
