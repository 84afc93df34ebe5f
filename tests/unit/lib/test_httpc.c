/* Unit tests for lib/httpc.c, in one process on one loop: against lib/httpd
 * (pool reuse, caps, idle timeouts, backpressure, cancel) and against raw
 * scripted servers that misbehave on purpose (every error kind, the
 * transparent retry of a dead pooled connection and its limits, 1xx,
 * close-delimited bodies). */
#define _GNU_SOURCE
#include "lib/httpc.h"
#include "lib/httpd.h"
#include "lib/loop.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static struct mg_loop *loop;

/* ------------------------------------------------------------------------ */
/* A result collector for one request. */

struct result {
    struct mg_httpc_req req;
    int status;
    char body[1 << 16];
    size_t body_len;
    uint64_t body_total;
    int done, failed;
    enum mg_httpc_error kind;
    int err;
    int spans;
    int cancel_on_body;      /* cancel at the first span */
    int pause_on_first;      /* pause at the first span */
};

static void r_head(struct mg_httpc_req *req, const struct mg_h1_msg *m)
{
    struct result *r = req->data;
    r->status = m->status;
}

static void r_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct result *r = req->data;
    r->spans++;
    if (r->body_len + n <= sizeof r->body) {
        memcpy(r->body + r->body_len, p, n);
        r->body_len += n;
    }
    r->body_total += n;
    if (r->cancel_on_body) {
        mg_httpc_cancel(req);
        r->failed = -1;   /* "finished" by us */
    }
    if (r->pause_on_first && r->spans == 1)
        mg_httpc_pause(req);
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

static int r_finished(const struct result *r)
{
    return r->done || r->failed;
}

static void run_ms(int ms)
{
    uint64_t end = mg_now_ns() / 1000000u + (uint64_t)ms;
    while (mg_now_ns() / 1000000u < end)
        mg_loop_run_once(loop, 5);
}

static int wait_for(struct result *r, int ms)
{
    uint64_t end = mg_now_ns() / 1000000u + (uint64_t)ms;
    while (!r_finished(r) && mg_now_ns() / 1000000u < end)
        mg_loop_run_once(loop, 10);
    return r_finished(r);
}

/* ------------------------------------------------------------------------ */
/* An httpd with a few routes. */

static char big[1 << 20];

struct bigstate {
    size_t left;
};

static void big_pump(struct mg_httpd_req *req)
{
    struct bigstate *b = mg_httpd_req_data(req);
    while (b->left) {
        size_t n = b->left < 8192 ? b->left : 8192;
        int rc = mg_httpd_write(req, big, n);
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

static void echo_body(struct mg_httpd_req *req, const char *p, size_t n, int last)
{
    if (n)
        mg_httpd_write(req, p, n);
    if (last)
        mg_httpd_end(req);
}

static void on_request(struct mg_httpd_req *req, void *data)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
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
    if (m->target_len == 5 && memcmp(m->target, "/echo", 5) == 0) {
        mg_httpd_start(req, 200, NULL, 0, -1);
        mg_httpd_read_body(req, echo_body);
        return;
    }
    mg_httpd_respond(req, 200, NULL, 0, "hello", 5);
}

static struct mg_httpd *srv;
static char srv_addr[64];

static void start_httpd(uint32_t idle_ms)
{
    struct mg_httpd_config cfg;
    mg_httpd_config_default(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.on_request = on_request;
    cfg.reuseport = 0;
    if (idle_ms)
        cfg.idle_timeout_ms = idle_ms;
    const char *err;
    int rc = mg_httpd_new(loop, &cfg, &srv, &err);
    if (rc < 0) {
        printf("# httpd: %s\n", err);
        exit(1);
    }
    snprintf(srv_addr, sizeof srv_addr, "127.0.0.1:%d", mg_httpd_port(srv));
}

static struct mg_httpc *new_client(unsigned max_idle, uint32_t idle_ms)
{
    struct mg_httpc_config cfg;
    mg_httpc_config_default(&cfg);
    if (max_idle)
        cfg.max_idle_per_endpoint = max_idle;
    if (idle_ms)
        cfg.idle_timeout_ms = idle_ms;
    cfg.connect_timeout_ms = 300;
    struct mg_httpc *cl;
    if (mg_httpc_new(loop, &cfg, &cl) < 0)
        exit(1);
    return cl;
}

/* ------------------------------------------------------------------------ */
/* Against httpd. */

static void t_get_and_reuse(void)
{
    start_httpd(0);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep, *ep2;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep2, NULL) == 0);
    CHECK(ep == ep2);
    struct result r;
    for (int i = 0; i < 3; i++) {
        r_init(&r, "GET", "/");
        REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
        REQUIRE(wait_for(&r, 2000));
        CHECK_EQ_INT(r.done, 1);
        CHECK_EQ_INT(r.status, 200);
        CHECK_EQ_MEM(r.body, r.body_len, "hello");
        CHECK_EQ_INT(r.req.reused, i > 0);
        CHECK_EQ_INT(r.req.retried, 0);
    }
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.created, 1);
    CHECK_EQ_INT(st.reused, 2);
    CHECK_EQ_INT(st.requests, 3);
    CHECK_EQ_INT(st.idle, 1);
    CHECK_EQ_INT(st.active, 0);
    CHECK_EQ_INT(st.errors, 0);
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

/* The head handed to on_head stays valid until the request ends (the
 * sidecar answers its client with it at the first body bytes): checked at
 * every span of a 1 MiB body and in on_done. */
struct kept {
    struct result r;
    const struct mg_h1_msg *msg;
    char first[256];
    int status;
    int bad;
};

static void kept_snapshot(const struct mg_h1_msg *m, char *out, size_t n)
{
    snprintf(out, n, "%d|%u|%.*s: %.*s", m->status, m->nheaders, (int)m->headers[0].name_len,
             m->headers[0].name, (int)m->headers[0].value_len, m->headers[0].value);
}

static void kept_check(struct kept *k)
{
    char now[256];
    kept_snapshot(k->msg, now, sizeof now);
    if (strcmp(now, k->first) != 0)
        k->bad++;
}

static void kept_head(struct mg_httpc_req *req, const struct mg_h1_msg *m)
{
    struct kept *k = req->data;
    k->msg = m;
    kept_snapshot(m, k->first, sizeof k->first);
    k->r.status = m->status;
}

static void kept_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct kept *k = req->data;
    kept_check(k);
    k->r.body_total += n;
}

static void kept_done(struct mg_httpc_req *req)
{
    struct kept *k = req->data;
    kept_check(k);
    k->r.done = 1;
}

static void t_head_kept_until_done(void)
{
    start_httpd(0);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    for (int i = 0; i < 2; i++) {   /* fresh, then pooled */
        struct kept k;
        memset(&k, 0, sizeof k);
        r_init(&k.r, "GET", i ? "/" : "/big");
        k.r.req.data = &k;
        k.r.req.on_head = kept_head;
        k.r.req.on_body = kept_body;
        k.r.req.on_done = kept_done;
        REQUIRE(mg_httpc_send(cl, ep, &k.r.req) == 0);
        REQUIRE(wait_for(&k.r, 3000));
        CHECK_EQ_INT(k.r.done, 1);
        CHECK_EQ_INT(k.r.status, 200);
        CHECK(k.msg != NULL);
        CHECK_EQ_INT(k.bad, 0);
        if (i == 0)
            CHECK_EQ_INT(k.r.body_total, sizeof big);
    }
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

static void t_pool_cap_and_idle_timeout(void)
{
    start_httpd(0);
    struct mg_httpc *cl = new_client(2, 150);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    static struct result r[4];
    for (int i = 0; i < 4; i++) {
        r_init(&r[i], "GET", "/");
        REQUIRE(mg_httpc_send(cl, ep, &r[i].req) == 0);
    }
    for (int i = 0; i < 4; i++)
        REQUIRE(wait_for(&r[i], 2000));
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.created, 4);    /* four at once: four connections */
    CHECK_EQ_INT(st.idle, 2);       /* the pool keeps two */
    run_ms(400);
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 0);       /* idle timeout */
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

static void t_server_closes_pooled_connection(void)
{
    /* The server's keep-alive timeout is shorter than the pool's: the pool
     * sees the close and drops the connection; the next request connects
     * afresh without any error. */
    start_httpd(100);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    struct result r;
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 1);
    run_ms(300);
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 0);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.req.reused, 0);
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.created, 2);
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

static void t_response_backpressure(void)
{
    start_httpd(0);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    static struct result r;
    r_init(&r, "GET", "/big");
    r.pause_on_first = 1;
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    run_ms(200);
    /* Paused after the first span: nothing more was delivered. */
    CHECK_EQ_INT(r.spans, 1);
    CHECK(!r_finished(&r));
    mg_httpc_resume(&r.req);
    REQUIRE(wait_for(&r, 5000));
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.body_total, sizeof big);
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

struct streamer {
    struct result r;
    size_t sent;
    int blocked;
};

static char chunk[10000];

static void streamer_pump(struct mg_httpc_req *req)
{
    struct streamer *s = (struct streamer *)req->data;
    while (s->sent < 500000) {
        int rc = mg_httpc_write(req, chunk, sizeof chunk);
        if (rc < 0)
            return;
        s->sent += sizeof chunk;
        if (rc == 1) {
            s->blocked++;
            return;   /* on_writable continues */
        }
    }
    mg_httpc_end_body(req);
}

static void t_streamed_request_body(void)
{
    start_httpd(0);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    for (int mode = 0; mode < 2; mode++) {
        static struct streamer s;
        r_init(&s.r, "POST", "/echo");
        s.sent = 0;
        s.blocked = 0;
        s.r.req.stream_body = 1;
        s.r.req.stream_length = mode ? 500000 : MG_HTTPC_CHUNKED;
        s.r.req.on_writable = streamer_pump;
        REQUIRE(mg_httpc_send(cl, ep, &s.r.req) == 0);
        streamer_pump(&s.r.req);
        REQUIRE(wait_for(&s.r, 5000));
        CHECK_EQ_INT(s.r.done, 1);
        CHECK_EQ_INT(s.r.body_total, 500000);
        /* 500 KB against a 64 KiB high-water mark must have waited. */
        CHECK(s.blocked > 0);
        CHECK_EQ_INT(mg_httpc_write(&s.r.req, "x", 1), -ENOTCONN);
    }
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

static void t_cancel_from_callback(void)
{
    start_httpd(0);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, srv_addr, &ep, NULL) == 0);
    static struct result r;
    r_init(&r, "GET", "/big");
    r.cancel_on_body = 1;
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    run_ms(50);
    CHECK_EQ_INT(r.spans, 1);     /* nothing after the cancel */
    CHECK_EQ_INT(r.done, 0);
    CHECK_EQ_INT(r.failed, -1);
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 0);     /* a half-read connection is not pooled */
    CHECK_EQ_INT(st.active, 0);
    mg_httpc_free(cl);
    mg_httpd_free(srv);
}

/* ------------------------------------------------------------------------ */
/* Raw scripted servers. */

enum raw_mode {
    RAW_SECOND_CLOSES,   /* answers the first request on a connection, closes on the second */
    RAW_CLOSE,           /* closes as soon as a request arrives */
    RAW_PARTIAL,         /* head and part of the body, then closes */
    RAW_BAD,             /* an invalid status line */
    RAW_SILENT,          /* never answers */
    RAW_1XX,             /* 100 then 200 */
    RAW_EOF_BODY,        /* body until close */
    RAW_CONN_CLOSE,      /* answers with Connection: close, keeps the socket */
    RAW_SECOND_100_CLOSES, /* answers the first request, sends 100 to the second, closes */
    RAW_BIG_RST,         /* head and 64 KiB of a longer body, then an RST */
};

struct raw_conn {
    struct raw_srv *s;
    int fd;
    struct mg_io io;
    char buf[4096];
    size_t len;
    int nreq;
};

struct raw_srv {
    int lfd;
    int port;
    struct mg_io lio;
    enum raw_mode mode;
    struct raw_conn conns[16];
    int nconns;
    int accepted;
};

static void raw_close(struct raw_conn *rc)
{
    if (rc->fd < 0)
        return;
    mg_io_stop(loop, &rc->io);
    close(rc->fd);
    rc->fd = -1;
}

static void raw_send(struct raw_conn *rc, const char *s)
{
    ssize_t n = send(rc->fd, s, strlen(s), MSG_NOSIGNAL);
    (void)n;
}

static void raw_conn_cb(struct mg_loop *l, struct mg_io *io, unsigned events)
{
    struct raw_conn *rc = io->data;
    ssize_t n = recv(rc->fd, rc->buf + rc->len, sizeof rc->buf - rc->len - 1, 0);
    if (n <= 0) {
        raw_close(rc);
        return;
    }
    rc->len += (size_t)n;
    rc->buf[rc->len] = '\0';
    char *end;
    while ((end = strstr(rc->buf, "\r\n\r\n")) != NULL) {
        size_t used = (size_t)(end + 4 - rc->buf);
        memmove(rc->buf, rc->buf + used, rc->len - used + 1);
        rc->len -= used;
        rc->nreq++;
        switch (rc->s->mode) {
        case RAW_SECOND_CLOSES:
            if (rc->nreq >= 2) {
                raw_close(rc);
                return;
            }
            raw_send(rc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            break;
        case RAW_CLOSE:
            raw_close(rc);
            return;
        case RAW_PARTIAL:
            raw_send(rc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
            raw_close(rc);
            return;
        case RAW_BAD:
            raw_send(rc, "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n");
            break;
        case RAW_SILENT:
            break;
        case RAW_1XX:
            raw_send(rc, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            break;
        case RAW_EOF_BODY:
            raw_send(rc, "HTTP/1.1 200 OK\r\n\r\nuntil close");
            raw_close(rc);
            return;
        case RAW_CONN_CLOSE:
            raw_send(rc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            break;
        case RAW_BIG_RST: {
            static char blob[65536];
            memset(blob, 'z', sizeof blob);
            raw_send(rc, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
            ssize_t w = send(rc->fd, blob, sizeof blob, MSG_NOSIGNAL);
            (void)w;
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(rc->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            raw_close(rc);
            return;
        }
        case RAW_SECOND_100_CLOSES:
            if (rc->nreq >= 2) {
                raw_send(rc, "HTTP/1.1 100 Continue\r\n\r\n");
                raw_close(rc);
                return;
            }
            raw_send(rc, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            break;
        }
    }
}

static void raw_accept_cb(struct mg_loop *l, struct mg_io *io, unsigned events)
{
    struct raw_srv *s = io->data;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd == -1)
        return;
    s->accepted++;
    if (s->nconns == 16) {
        close(fd);
        return;
    }
    struct raw_conn *rc = &s->conns[s->nconns++];
    memset(rc, 0, sizeof *rc);
    rc->s = s;
    rc->fd = fd;
    mg_io_init(&rc->io, raw_conn_cb, rc);
    mg_io_start(loop, &rc->io, fd, MG_READ);
}

static void raw_start(struct raw_srv *s, enum raw_mode mode)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->lfd = mg_listen_tcp("127.0.0.1:0", 16, 0, NULL);
    if (s->lfd < 0)
        exit(1);
    s->port = mg_sock_port(s->lfd);
    mg_io_init(&s->lio, raw_accept_cb, s);
    mg_io_start(loop, &s->lio, s->lfd, MG_READ);
}

static void raw_stop(struct raw_srv *s)
{
    for (int i = 0; i < s->nconns; i++)
        raw_close(&s->conns[i]);
    mg_io_stop(loop, &s->lio);
    close(s->lfd);
}

static struct mg_httpc_endpoint *raw_ep(struct mg_httpc *cl, struct raw_srv *s)
{
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", s->port);
    struct mg_httpc_endpoint *ep = NULL;
    if (mg_httpc_endpoint(cl, a, &ep, NULL) < 0)
        exit(1);
    return ep;
}

static void t_retry_on_dead_pooled_connection(void)
{
    struct raw_srv s;
    raw_start(&s, RAW_SECOND_CLOSES);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep = raw_ep(cl, &s);
    struct result r;
    r_init(&r, "GET", "/a");
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    /* Second request: taken from the pool, the server closes it on
     * reading the request, the client retries on a fresh connection whose
     * first request is answered. */
    r_init(&r, "POST", "/b");
    r.req.body = "payload";
    r.req.body_len = 7;
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.failed, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_MEM(r.body, r.body_len, "ok");
    CHECK_EQ_INT(r.req.reused, 1);
    CHECK_EQ_INT(r.req.retried, 1);
    CHECK_EQ_INT(s.accepted, 2);
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.retried, 1);
    CHECK_EQ_INT(st.errors, 0);

    /* The same with no_retry: the caller sees the error. */
    r_init(&r, "GET", "/c");
    r.req.no_retry = 1;
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_RESET_BEFORE_RESPONSE);
    CHECK_EQ_INT(r.req.retried, 0);
    mg_httpc_free(cl);
    raw_stop(&s);
}

/* A pooled connection that sent a 100 Continue before closing did read the
 * request: sending it again could run it twice, so the caller gets the
 * error instead of a retry. */
static void t_no_retry_after_1xx_on_pooled_connection(void)
{
    struct raw_srv s;
    raw_start(&s, RAW_SECOND_100_CLOSES);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep = raw_ep(cl, &s);
    struct result r;
    r_init(&r, "GET", "/a");
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    r_init(&r, "POST", "/b");
    r.req.body = "payload";
    r.req.body_len = 7;
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.req.reused, 1);
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.req.retried, 0);
    CHECK_EQ_INT(s.accepted, 1);
    mg_httpc_free(cl);
    raw_stop(&s);
}

/* An upstream reset while its response is paused: the dead socket keeps
 * reporting HUP/ERR; the client must not spin on it while paused, and
 * resuming delivers what was buffered and then the error. */
static void t_reset_while_paused_does_not_spin(void)
{
    struct raw_srv s;
    raw_start(&s, RAW_BIG_RST);
    struct mg_httpc *cl = new_client(0, 0);
    static struct result r;
    r_init(&r, "GET", "/");
    r.pause_on_first = 1;
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    run_ms(100);
    CHECK_EQ_INT(r.spans, 1);
    int busy = 0;
    uint64_t end = mg_now_ns() / 1000000u + 200;
    while (mg_now_ns() / 1000000u < end)
        if (mg_loop_run_once(loop, 5) > 0)
            busy++;
    printf("# 200 ms paused on a reset socket: %d busy iterations\n", busy);
    CHECK(busy < 20);
    CHECK(!r_finished(&r));
    mg_httpc_resume(&r.req);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_RESET_MID_RESPONSE);
    mg_httpc_free(cl);
    raw_stop(&s);
}

static void t_no_retry_on_fresh_connection(void)
{
    struct raw_srv s;
    raw_start(&s, RAW_CLOSE);
    struct mg_httpc *cl = new_client(0, 0);
    struct mg_httpc_endpoint *ep = raw_ep(cl, &s);
    struct result r;
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_RESET_BEFORE_RESPONSE);
    CHECK_EQ_INT(r.req.retried, 0);
    CHECK_EQ_INT(s.accepted, 1);
    mg_httpc_free(cl);
    raw_stop(&s);
}

static void t_error_kinds(void)
{
    struct mg_httpc *cl = new_client(0, 0);
    struct raw_srv s;
    struct result r;

    raw_start(&s, RAW_PARTIAL);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_RESET_MID_RESPONSE);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_MEM(r.body, r.body_len, "abc");
    raw_stop(&s);

    raw_start(&s, RAW_BAD);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_PROTOCOL);
    raw_stop(&s);

    raw_start(&s, RAW_SILENT);
    r_init(&r, "GET", "/");
    r.req.head_timeout_ms = 150;
    /* Timers count from the loop's clock, read once per iteration. */
    mg_loop_update_time(loop);
    uint64_t t0 = mg_now_ns();
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    uint64_t el = (mg_now_ns() - t0) / 1000000u;
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_TIMEOUT);
    if (el < 149 || el >= 1000)
        printf("# head timeout after %llu ms\n", (unsigned long long)el);
    CHECK(el >= 149 && el < 1000);
    raw_stop(&s);

    /* Connection refused: at once from send, or as on_error. */
    raw_start(&s, RAW_SILENT);
    struct mg_httpc_endpoint *ep = raw_ep(cl, &s);
    raw_stop(&s);
    r_init(&r, "GET", "/");
    int rc = mg_httpc_send(cl, ep, &r.req);
    if (rc == 0) {
        REQUIRE(wait_for(&r, 2000));
        CHECK_EQ_INT(r.failed, 1);
        CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_CONNECT);
        CHECK_EQ_INT(r.err, ECONNREFUSED);
    } else {
        CHECK_EQ_INT(rc, -ECONNREFUSED);
    }
    struct mg_httpc_stats st;
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.active, 0);
    mg_httpc_free(cl);
}

static void t_connect_timeout(void)
{
    /* A listener with a full accept queue drops SYNs: the connect hangs. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0);
    REQUIRE(listen(lfd, 0) == 0);
    socklen_t sl = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
    }
    usleep(50000);
    struct mg_httpc *cl = new_client(0, 0);   /* connect timeout 300 ms */
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", ntohs(sin.sin_port));
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, a, &ep, NULL) == 0);
    struct result r;
    r_init(&r, "GET", "/");
    mg_loop_update_time(loop);   /* the usleep above made it stale */
    uint64_t t0 = mg_now_ns();
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 3000));
    uint64_t el = (mg_now_ns() - t0) / 1000000u;
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_CONNECT_TIMEOUT);
    if (el < 299 || el >= 1500)
        printf("# connect timeout after %llu ms\n", (unsigned long long)el);
    CHECK(el >= 299 && el < 1500);
    mg_httpc_free(cl);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* The request's own connect timeout wins over the client's (the sidecar
 * sets one per route). */
static void t_connect_timeout_per_request(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    REQUIRE(bind(lfd, (struct sockaddr *)&sin, sizeof sin) == 0);
    REQUIRE(listen(lfd, 0) == 0);
    socklen_t sl = sizeof sin;
    getsockname(lfd, (struct sockaddr *)&sin, &sl);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&sin, sizeof sin);
    }
    usleep(50000);
    struct mg_httpc_config cfg;
    mg_httpc_config_default(&cfg);
    cfg.connect_timeout_ms = 5000;
    struct mg_httpc *cl;
    REQUIRE(mg_httpc_new(loop, &cfg, &cl) == 0);
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%d", ntohs(sin.sin_port));
    struct mg_httpc_endpoint *ep;
    REQUIRE(mg_httpc_endpoint(cl, a, &ep, NULL) == 0);
    struct result r;
    r_init(&r, "GET", "/");
    r.req.connect_timeout_ms = 150;
    mg_loop_update_time(loop);
    uint64_t t0 = mg_now_ns();
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    REQUIRE(wait_for(&r, 3000));
    uint64_t el = (mg_now_ns() - t0) / 1000000u;
    CHECK_EQ_INT(r.failed, 1);
    CHECK_EQ_INT(r.kind, MG_HTTPC_ERR_CONNECT_TIMEOUT);
    if (el < 149 || el >= 1000)
        printf("# connect timeout after %llu ms\n", (unsigned long long)el);
    CHECK(el >= 149 && el < 1000);
    mg_httpc_free(cl);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

static void t_1xx_eof_body_and_connection_close(void)
{
    struct mg_httpc *cl = new_client(0, 0);
    struct raw_srv s;
    struct result r;
    struct mg_httpc_stats st;

    raw_start(&s, RAW_1XX);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_MEM(r.body, r.body_len, "ok");
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 1);
    raw_stop(&s);
    run_ms(20);

    raw_start(&s, RAW_EOF_BODY);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    CHECK_EQ_MEM(r.body, r.body_len, "until close");
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 0);   /* the first pool entry died with its server; this one closed */
    raw_stop(&s);

    raw_start(&s, RAW_CONN_CLOSE);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, raw_ep(cl, &s), &r.req) == 0);
    REQUIRE(wait_for(&r, 2000));
    CHECK_EQ_INT(r.done, 1);
    mg_httpc_get_stats(cl, &st);
    CHECK_EQ_INT(st.idle, 0);   /* Connection: close is not pooled */
    raw_stop(&s);
    mg_httpc_free(cl);
}

static void t_send_argument_errors(void)
{
    struct mg_httpc *cl = new_client(0, 0);
    struct raw_srv s;
    raw_start(&s, RAW_SILENT);
    struct mg_httpc_endpoint *ep = raw_ep(cl, &s);
    struct result r;
    r_init(&r, NULL, NULL);
    CHECK_EQ_INT(mg_httpc_send(cl, ep, &r.req), -EINVAL);
    r_init(&r, "GET", "/");
    REQUIRE(mg_httpc_send(cl, ep, &r.req) == 0);
    CHECK_EQ_INT(mg_httpc_send(cl, ep, &r.req), -EBUSY);
    CHECK_EQ_INT(mg_httpc_write(&r.req, "x", 1), -EINVAL);   /* not a streamed body */
    mg_httpc_cancel(&r.req);
    run_ms(20);
    CHECK(!r_finished(&r));   /* cancel calls nothing */
    const char *err = NULL;
    CHECK(mg_httpc_endpoint(cl, "no-port", &ep, &err) == -EINVAL);
    CHECK(err != NULL);
    mg_httpc_free(cl);
    raw_stop(&s);
}

int main(void)
{
    memset(big, 'b', sizeof big);
    memset(chunk, 'c', sizeof chunk);
    if (mg_loop_new(&loop) < 0)
        return 1;
    RUN(t_get_and_reuse);
    RUN(t_head_kept_until_done);
    RUN(t_pool_cap_and_idle_timeout);
    RUN(t_server_closes_pooled_connection);
    RUN(t_response_backpressure);
    RUN(t_streamed_request_body);
    RUN(t_cancel_from_callback);
    RUN(t_retry_on_dead_pooled_connection);
    RUN(t_no_retry_after_1xx_on_pooled_connection);
    RUN(t_no_retry_on_fresh_connection);
    RUN(t_reset_while_paused_does_not_spin);
    RUN(t_error_kinds);
    RUN(t_connect_timeout);
    RUN(t_connect_timeout_per_request);
    RUN(t_1xx_eof_body_and_connection_close);
    RUN(t_send_argument_errors);
    mg_loop_run_once(loop, 0);
    mg_loop_free(loop);
    return test_done();
}
