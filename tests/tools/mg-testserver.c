/* mg-testserver: an HTTP server built on lib/httpd (and lib/httpc for its
 * proxy routes) for the integration tests and quick load runs.
 *
 *   mg-testserver --listen 127.0.0.1:0 [--port-file F] [--workers N]
 *       [--max-conns N] [--header-timeout MS] [--idle-timeout MS]
 *       [--body-timeout MS] [--write-timeout MS] [--max-body BYTES]
 *       [--high-water BYTES] [--keep-half-close]
 *       [--upstream HOST:PORT] [--proxy HOST:PORT]
 *       [--upstream-max-idle N] [--upstream-idle-timeout MS]
 *
 * Routes:
 *   /                      "hello\n"
 *   /echo                  the request body, collected (max 1 MiB), back with Content-Length
 *   /echo-stream           the request body streamed back chunked, span by span
 *                          (backpressure both ways: pause/resume, on_writable)
 *   /stream?n=N&ms=M       N SSE-like chunks "data: I\n\n", one every M ms
 *   /big?bytes=N           N bytes with Content-Length, written under backpressure
 *   /slow-read?ms=M        reads the body one span every M ms, answers its size
 *   /delay?ms=M            answers "done\n" after M ms
 *   /status?code=N         an empty response with that status
 *   /close                 answers with "Connection: close"
 *   /stats                 JSON: server and upstream pool counters (all workers)
 *   /proxy/REST            forwarded as /REST to --upstream through lib/httpc,
 *                          bodies streamed both ways with backpressure
 * With --proxy HOST:PORT every request but /stats is forwarded as is.
 *
 * SIGTERM/SIGINT stop it cleanly. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/httpc.h"
#include "lib/httpd.h"
#include "lib/loop.h"

#define MAX_WORKERS 64

struct worker {
    struct mg_loop *loop;
    struct mg_httpd *srv;
    struct mg_httpc *cl;
    struct mg_httpc_endpoint *up;
    pthread_t th;
};

static struct worker workers[MAX_WORKERS];
static int nworkers = 1;
static int proxy_all;
/* Counted across workers. */
static uint64_t upstream_cancels, stream_aborts, stream_done;

static const char *query_param(const struct mg_h1_msg *m, const char *name, char *out, size_t outlen)
{
    const char *q = memchr(m->target, '?', m->target_len);
    if (!q)
        return NULL;
    const char *end = m->target + m->target_len;
    size_t nl = strlen(name);
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        if (!amp)
            amp = end;
        if ((size_t)(amp - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t vl = (size_t)(amp - p - (ptrdiff_t)nl - 1);
            if (vl >= outlen)
                vl = outlen - 1;
            memcpy(out, p + nl + 1, vl);
            out[vl] = '\0';
            return out;
        }
        p = amp + 1;
    }
    return NULL;
}

static long param_long(const struct mg_h1_msg *m, const char *name, long def)
{
    char v[32];
    if (!query_param(m, name, v, sizeof v))
        return def;
    return strtol(v, NULL, 10);
}

static int path_is(const struct mg_h1_msg *m, const char *path)
{
    size_t n = strlen(path);
    if (m->target_len < n || memcmp(m->target, path, n) != 0)
        return 0;
    return m->target_len == n || m->target[n] == '?';
}

static void respond_text(struct mg_httpd_req *req, int status, const char *text)
{
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "text/plain")};
    mg_httpd_respond(req, status, h, 1, text, strlen(text));
}

static struct worker *worker_of(struct mg_httpd_req *req)
{
    struct mg_httpd *srv = mg_httpd_req_server(req);
    for (int i = 0; i < nworkers; i++)
        if (workers[i].srv == srv)
            return &workers[i];
    return &workers[0];
}

/* ------------------------------------------------------------------------ */
/* /echo and /echo-stream */

static void echo_collected(struct mg_httpd_req *req, const char *body, size_t n)
{
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/octet-stream")};
    mg_httpd_respond(req, 200, h, 1, body, n);
}

static void echo_stream_body(struct mg_httpd_req *req, const char *p, size_t n, int last)
{
    if (n > 0 && mg_httpd_write(req, p, n) == 1)
        mg_httpd_pause_body(req);
    if (last)
        mg_httpd_end(req);
}

static void echo_stream_writable(struct mg_httpd_req *req)
{
    mg_httpd_resume_body(req);
}

/* ------------------------------------------------------------------------ */
/* /stream: SSE-like chunks on a timer. */

struct stream {
    struct mg_httpd_req *req;
    struct mg_timer t;
    long i, n, ms;
    int blocked;
};

static void stream_tick(struct mg_loop *loop, struct mg_timer *t)
{
    struct stream *s = t->data;
    if (s->i >= s->n) {
        mg_httpd_end(s->req);
        return;
    }
    char line[64];
    int len = snprintf(line, sizeof line, "data: %ld\n\n", s->i++);
    int rc = mg_httpd_write(s->req, line, (size_t)len);
    if (rc < 0)
        return;   /* the connection is gone; on_end follows */
    if (rc == 1) {
        s->blocked = 1;   /* resume from on_writable */
        return;
    }
    mg_timer_start(loop, &s->t, (uint64_t)s->ms);
}

static void stream_writable(struct mg_httpd_req *req)
{
    struct stream *s = mg_httpd_req_data(req);
    if (s->blocked) {
        s->blocked = 0;
        mg_timer_start(mg_httpd_loop(mg_httpd_req_server(req)), &s->t, (uint64_t)s->ms);
    }
}

static void stream_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    struct stream *s = mg_httpd_req_data(req);
    mg_timer_stop(mg_httpd_loop(mg_httpd_req_server(req)), &s->t);
    __atomic_fetch_add(reason == MG_HTTPD_END_OK ? &stream_done : &stream_aborts, 1,
                       __ATOMIC_RELAXED);
    free(s);
}

static void route_stream(struct mg_httpd_req *req)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        respond_text(req, 500, "out of memory\n");
        return;
    }
    s->req = req;
    s->n = param_long(m, "n", 10);
    s->ms = param_long(m, "ms", 100);
    mg_timer_init(&s->t, stream_tick, s);
    mg_httpd_req_set_data(req, s);
    mg_httpd_on_end(req, stream_end);
    mg_httpd_on_writable(req, stream_writable);
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "text/event-stream"),
                               MG_HTTPD_HDR("Cache-Control", "no-cache")};
    if (mg_httpd_start(req, 200, h, 2, -1) < 0)
        return;
    mg_timer_start(mg_httpd_loop(mg_httpd_req_server(req)), &s->t, 0);
}

/* ------------------------------------------------------------------------ */
/* /big: N bytes under backpressure. */

struct big {
    uint64_t left;
};

static char big_pattern[16384];

static void big_pump(struct mg_httpd_req *req)
{
    struct big *b = mg_httpd_req_data(req);
    while (b->left > 0) {
        size_t n = b->left < sizeof big_pattern ? (size_t)b->left : sizeof big_pattern;
        int rc = mg_httpd_write(req, big_pattern, n);
        if (rc < 0)
            return;
        b->left -= n;
        if (rc == 1)
            return;   /* on_writable continues */
    }
    mg_httpd_end(req);
}

static void big_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    free(mg_httpd_req_data(req));
}

static void route_big(struct mg_httpd_req *req)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    long n = param_long(m, "bytes", 1024);
    struct big *b = malloc(sizeof *b);
    if (!b || n < 0) {
        free(b);
        respond_text(req, 400, "bad size\n");
        return;
    }
    b->left = (uint64_t)n;
    mg_httpd_req_set_data(req, b);
    mg_httpd_on_end(req, big_end);
    mg_httpd_on_writable(req, big_pump);
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/octet-stream")};
    if (mg_httpd_start(req, 200, h, 1, n) < 0)
        return;
    big_pump(req);
}

/* ------------------------------------------------------------------------ */
/* /slow-read: a slow consumer of the request body. */

struct slow {
    struct mg_httpd_req *req;
    struct mg_timer t;
    long ms;
    uint64_t got;
};

static void slow_tick(struct mg_loop *loop, struct mg_timer *t)
{
    struct slow *s = t->data;
    mg_httpd_resume_body(s->req);
}

static void slow_body(struct mg_httpd_req *req, const char *p, size_t n, int last)
{
    struct slow *s = mg_httpd_req_data(req);
    s->got += n;
    if (last) {
        char txt[64];
        snprintf(txt, sizeof txt, "%llu\n", (unsigned long long)s->got);
        respond_text(req, 200, txt);
        return;
    }
    mg_httpd_pause_body(req);
    mg_timer_start(mg_httpd_loop(mg_httpd_req_server(req)), &s->t, (uint64_t)s->ms);
}

static void slow_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    struct slow *s = mg_httpd_req_data(req);
    mg_timer_stop(mg_httpd_loop(mg_httpd_req_server(req)), &s->t);
    free(s);
}

static void route_slow_read(struct mg_httpd_req *req)
{
    struct slow *s = calloc(1, sizeof *s);
    if (!s) {
        respond_text(req, 500, "out of memory\n");
        return;
    }
    s->req = req;
    s->ms = param_long(mg_httpd_req_msg(req), "ms", 50);
    mg_timer_init(&s->t, slow_tick, s);
    mg_httpd_req_set_data(req, s);
    mg_httpd_on_end(req, slow_end);
    mg_httpd_read_body(req, slow_body);
}

/* ------------------------------------------------------------------------ */
/* /delay */

struct delay {
    struct mg_httpd_req *req;
    struct mg_timer t;
};

static void delay_tick(struct mg_loop *loop, struct mg_timer *t)
{
    struct delay *d = t->data;
    respond_text(d->req, 200, "done\n");
}

static void delay_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    struct delay *d = mg_httpd_req_data(req);
    mg_timer_stop(mg_httpd_loop(mg_httpd_req_server(req)), &d->t);
    if (reason != MG_HTTPD_END_OK)
        __atomic_fetch_add(&stream_aborts, 1, __ATOMIC_RELAXED);
    free(d);
}

static void route_delay(struct mg_httpd_req *req)
{
    struct delay *d = calloc(1, sizeof *d);
    if (!d) {
        respond_text(req, 500, "out of memory\n");
        return;
    }
    d->req = req;
    mg_timer_init(&d->t, delay_tick, d);
    mg_httpd_req_set_data(req, d);
    mg_httpd_on_end(req, delay_end);
    mg_timer_start(mg_httpd_loop(mg_httpd_req_server(req)), &d->t,
                   (uint64_t)param_long(mg_httpd_req_msg(req), "ms", 100));
}

/* ------------------------------------------------------------------------ */
/* /stats */

static void route_stats(struct mg_httpd_req *req)
{
    struct mg_httpd_stats t = {0}, s;
    struct mg_httpc_stats u = {0}, us;
    for (int i = 0; i < nworkers; i++) {
        mg_httpd_get_stats(workers[i].srv, &s);
        t.accepted += s.accepted;
        t.rejected += s.rejected;
        t.requests += s.requests;
        t.responses += s.responses;
        t.parse_errors += s.parse_errors;
        t.timeouts += s.timeouts;
        t.accept_paused += s.accept_paused;
        t.open += s.open;
        if (workers[i].cl) {
            mg_httpc_get_stats(workers[i].cl, &us);
            u.idle += us.idle;
            u.active += us.active;
            u.created += us.created;
            u.reused += us.reused;
            u.retried += us.retried;
            u.requests += us.requests;
            u.errors += us.errors;
        }
    }
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"accepted\":%llu,\"rejected\":%llu,\"requests\":%llu,\"responses\":%llu,"
                     "\"parse_errors\":%llu,\"timeouts\":%llu,\"accept_paused\":%llu,\"open\":%llu,"
                     "\"upstream\":{\"idle\":%llu,\"active\":%llu,\"created\":%llu,\"reused\":%llu,"
                     "\"retried\":%llu,\"requests\":%llu,\"errors\":%llu},"
                     "\"upstream_cancels\":%llu,\"stream_aborts\":%llu,\"stream_done\":%llu}\n",
                     (unsigned long long)t.accepted, (unsigned long long)t.rejected,
                     (unsigned long long)t.requests, (unsigned long long)t.responses,
                     (unsigned long long)t.parse_errors, (unsigned long long)t.timeouts,
                     (unsigned long long)t.accept_paused, (unsigned long long)t.open,
                     (unsigned long long)u.idle, (unsigned long long)u.active,
                     (unsigned long long)u.created, (unsigned long long)u.reused,
                     (unsigned long long)u.retried, (unsigned long long)u.requests,
                     (unsigned long long)u.errors,
                     (unsigned long long)__atomic_load_n(&upstream_cancels, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&stream_aborts, __ATOMIC_RELAXED),
                     (unsigned long long)__atomic_load_n(&stream_done, __ATOMIC_RELAXED));
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/json")};
    mg_httpd_respond(req, 200, h, 1, body, (size_t)n);
}

/* ------------------------------------------------------------------------ */
/* The proxy: downstream request (httpd) to upstream request (httpc). */

struct proxy {
    struct mg_httpd_req *down;
    struct mg_httpc_req up;
    int up_active;
    char method[32];
    char *target;
    struct mg_h1_header hdrs[MG_H1_MAX_HEADERS];
};

/* The client side failed first (it left, or its response cannot be
 * written): stop the upstream work too. */
static void proxy_cancel_upstream(struct proxy *p)
{
    if (!p->up_active)
        return;
    mg_httpc_cancel(&p->up);
    p->up_active = 0;
    __atomic_fetch_add(&upstream_cancels, 1, __ATOMIC_RELAXED);
}

static void up_writable(struct mg_httpc_req *up)
{
    struct proxy *p = up->data;
    mg_httpd_resume_body(p->down);
}

static void down_body(struct mg_httpd_req *req, const char *d, size_t n, int last)
{
    struct proxy *p = mg_httpd_req_data(req);
    if (!p->up_active)
        return;   /* upstream failed; the response is on its way */
    if (n > 0 && mg_httpc_write(&p->up, d, n) == 1)
        mg_httpd_pause_body(req);
    if (last)
        mg_httpc_end_body(&p->up);
}

static void up_head(struct mg_httpc_req *up, const struct mg_h1_msg *m)
{
    struct proxy *p = up->data;
    int64_t len = m->framing == MG_H1_BODY_LENGTH ? (int64_t)m->content_length
                  : m->framing == MG_H1_BODY_NONE ? 0 : -1;
    if (mg_httpd_start(p->down, m->status, m->headers, m->nheaders, len) < 0) {
        proxy_cancel_upstream(p);
        mg_httpd_abort(p->down);
    }
}

static void up_body(struct mg_httpc_req *up, const char *d, size_t n)
{
    struct proxy *p = up->data;
    int rc = mg_httpd_write(p->down, d, n);
    if (rc == 1)
        mg_httpc_pause(up);
    else if (rc < 0) {
        proxy_cancel_upstream(p);   /* the client is gone: on_end follows */
        mg_httpd_abort(p->down);
    }
}

static void down_writable(struct mg_httpd_req *req)
{
    struct proxy *p = mg_httpd_req_data(req);
    if (p->up_active)
        mg_httpc_resume(&p->up);
}

static void up_done(struct mg_httpc_req *up)
{
    struct proxy *p = up->data;

    p->up_active = 0;
    mg_httpd_end(p->down);
}

static void up_error(struct mg_httpc_req *up, enum mg_httpc_error kind, int err)
{
    struct proxy *p = up->data;
    p->up_active = 0;
    if (mg_httpd_started(p->down)) {
        mg_httpd_abort(p->down);   /* the client sees the stream stop short */
        return;
    }
    char txt[160];
    snprintf(txt, sizeof txt, "upstream: %s (%s)\n", mg_httpc_strerror(kind), strerror(err));
    respond_text(p->down, kind == MG_HTTPC_ERR_TIMEOUT ? 504 : 502, txt);
}

static void down_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    struct proxy *p = mg_httpd_req_data(req);
    proxy_cancel_upstream(p);
    free(p->target);
    free(p);
}

static void route_proxy(struct mg_httpd_req *req, size_t strip)
{
    struct worker *w = worker_of(req);
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    if (!w->up) {
        respond_text(req, 502, "no upstream configured (--upstream)\n");
        return;
    }
    struct proxy *p = calloc(1, sizeof *p);
    if (!p || m->method_len >= sizeof p->method) {
        free(p);
        respond_text(req, 500, "cannot proxy this\n");
        return;
    }
    size_t tl = m->target_len - strip;
    p->target = malloc(tl + 2);
    if (!p->target) {
        free(p);
        respond_text(req, 500, "out of memory\n");
        return;
    }
    if (tl == 0 || m->target[strip] != '/') {
        p->target[0] = '/';
        memcpy(p->target + 1, m->target + strip, tl);
        p->target[tl + 1] = '\0';
    } else {
        memcpy(p->target, m->target + strip, tl);
        p->target[tl] = '\0';
    }
    memcpy(p->method, m->method, m->method_len);
    p->method[m->method_len] = '\0';
    p->down = req;
    unsigned nh = 0;
    for (unsigned i = 0; i < m->nheaders; i++) {
        const struct mg_h1_header *h = &m->headers[i];
        /* Expect is answered here (100-continue), not forwarded. */
        if (h->name_len == 6 && strncasecmp(h->name, "expect", 6) == 0)
            continue;
        p->hdrs[nh++] = *h;
    }
    struct mg_httpc_req *up = &p->up;
    up->method = p->method;
    up->target = p->target;
    up->headers = p->hdrs;
    up->nheaders = nh;
    if (m->framing != MG_H1_BODY_NONE) {
        up->stream_body = 1;
        up->stream_length = m->framing == MG_H1_BODY_LENGTH ? (int64_t)m->content_length
                                                            : MG_HTTPC_CHUNKED;
    }
    up->on_head = up_head;
    up->on_body = up_body;
    up->on_done = up_done;
    up->on_error = up_error;
    up->on_writable = up_writable;
    up->data = p;
    mg_httpd_req_set_data(req, p);
    mg_httpd_on_end(req, down_end);
    mg_httpd_on_writable(req, down_writable);
    int rc = mg_httpc_send(w->cl, w->up, up);
    if (rc < 0) {
        char txt[128];
        snprintf(txt, sizeof txt, "upstream: connect failed (%s)\n", strerror(-rc));
        respond_text(req, 502, txt);
        return;
    }
    p->up_active = 1;
    if (m->framing != MG_H1_BODY_NONE)
        mg_httpd_read_body(req, down_body);
}

/* ------------------------------------------------------------------------ */

static void on_request(struct mg_httpd_req *req, void *data)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    if (path_is(m, "/stats"))
        route_stats(req);
    else if (proxy_all)
        route_proxy(req, 0);
    else if (m->target_len >= 7 && memcmp(m->target, "/proxy/", 7) == 0)
        route_proxy(req, 6);
    else if (path_is(m, "/") || path_is(m, "/hello"))
        respond_text(req, 200, "hello\n");
    else if (path_is(m, "/echo"))
        mg_httpd_collect_body(req, 1 << 20, echo_collected);
    else if (path_is(m, "/echo-stream")) {
        mg_httpd_on_writable(req, echo_stream_writable);
        struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/octet-stream")};
        if (mg_httpd_start(req, 200, h, 1, -1) == 0)
            mg_httpd_read_body(req, echo_stream_body);
    } else if (path_is(m, "/stream"))
        route_stream(req);
    else if (path_is(m, "/big"))
        route_big(req);
    else if (path_is(m, "/slow-read"))
        route_slow_read(req);
    else if (path_is(m, "/delay"))
        route_delay(req);
    else if (path_is(m, "/status")) {
        long code = param_long(m, "code", 200);
        mg_httpd_respond(req, (int)code, NULL, 0, NULL, 0);
    } else if (path_is(m, "/close")) {
        struct mg_h1_header h[] = {MG_HTTPD_HDR("Connection", "close")};
        mg_httpd_respond(req, 200, h, 1, "bye\n", 4);
    } else
        respond_text(req, 404, "not found\n");
}

/* ------------------------------------------------------------------------ */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    mg_loop_run(w->loop);
    return NULL;
}

static void on_signal(struct mg_loop *loop, int signo, void *data)
{
    for (int i = 0; i < nworkers; i++)
        mg_loop_stop(workers[i].loop);
    mg_loop_stop(loop);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mg-testserver --listen HOST:PORT [--port-file F] [--workers N]\n"
            "  [--max-conns N] [--header-timeout MS] [--idle-timeout MS] [--body-timeout MS]\n"
            "  [--write-timeout MS] [--max-body BYTES] [--high-water BYTES] [--keep-half-close]\n"
            "  [--upstream HOST:PORT] [--proxy HOST:PORT] [--upstream-max-idle N]\n"
            "  [--upstream-idle-timeout MS]\n");
}

int main(int argc, char **argv)
{
    struct mg_httpd_config cfg;
    struct mg_httpc_config ccfg;
    mg_httpd_config_default(&cfg);
    mg_httpc_config_default(&ccfg);
    const char *listen = NULL, *port_file = NULL, *upstream = NULL;
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"port-file", required_argument, 0, 'p'},
        {"workers", required_argument, 0, 'w'},
        {"max-conns", required_argument, 0, 'c'},
        {"header-timeout", required_argument, 0, 'H'},
        {"idle-timeout", required_argument, 0, 'I'},
        {"body-timeout", required_argument, 0, 'B'},
        {"write-timeout", required_argument, 0, 'W'},
        {"max-body", required_argument, 0, 'm'},
        {"high-water", required_argument, 0, 'h'},
        {"keep-half-close", no_argument, 0, 'k'},
        {"upstream", required_argument, 0, 'u'},
        {"proxy", required_argument, 0, 'P'},
        {"upstream-max-idle", required_argument, 0, 'i'},
        {"upstream-idle-timeout", required_argument, 0, 't'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen = optarg; break;
        case 'p': port_file = optarg; break;
        case 'w': nworkers = atoi(optarg); break;
        case 'c': cfg.max_conns = (unsigned)atoi(optarg); break;
        case 'H': cfg.header_timeout_ms = (uint32_t)atoi(optarg); break;
        case 'I': cfg.idle_timeout_ms = (uint32_t)atoi(optarg); break;
        case 'B': cfg.body_timeout_ms = (uint32_t)atoi(optarg); break;
        case 'W': cfg.write_timeout_ms = (uint32_t)atoi(optarg); break;
        case 'm': cfg.limits.max_body = strtoull(optarg, NULL, 10); break;
        case 'h': cfg.high_water = strtoull(optarg, NULL, 10); break;
        case 'k': cfg.half_close_aborts = 0; break;
        case 'u': upstream = optarg; break;
        case 'P': upstream = optarg; proxy_all = 1; break;
        case 'i': ccfg.max_idle_per_endpoint = (unsigned)atoi(optarg); break;
        case 't': ccfg.idle_timeout_ms = (uint32_t)atoi(optarg); break;
        default: usage(); return 2;
        }
    }
    if (!listen || nworkers < 1 || nworkers > MAX_WORKERS) {
        usage();
        return 2;
    }
    memset(big_pattern, 'x', sizeof big_pattern);
    cfg.on_request = on_request;

    struct mg_loop *main_loop;
    int rc = mg_loop_new(&main_loop);
    if (rc < 0) {
        fprintf(stderr, "mg-testserver: cannot create the event loop: %s\n", strerror(-rc));
        return 1;
    }
    /* Blocked here before the workers start, so they inherit the mask and
     * the signals reach the main loop's signalfd. */
    if (mg_loop_signal(main_loop, SIGTERM, on_signal, NULL) < 0 ||
        mg_loop_signal(main_loop, SIGINT, on_signal, NULL) < 0) {
        fprintf(stderr, "mg-testserver: cannot watch signals\n");
        return 1;
    }

    char addr[300];
    snprintf(addr, sizeof addr, "%s", listen);
    for (int i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        const char *err = NULL;
        if ((rc = mg_loop_new(&w->loop)) < 0) {
            fprintf(stderr, "mg-testserver: event loop: %s\n", strerror(-rc));
            return 1;
        }
        cfg.listen = addr;
        if ((rc = mg_httpd_new(w->loop, &cfg, &w->srv, &err)) < 0) {
            fprintf(stderr, "mg-testserver: cannot listen on %s: %s\n", addr,
                    err ? err : strerror(-rc));
            return 1;
        }
        if (i == 0) {
            /* The other workers bind the port the first one got. */
            char host[256];
            unsigned port;
            if (mg_split_hostport(listen, host, sizeof host, &port) == 0)
                snprintf(addr, sizeof addr, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                         mg_httpd_port(w->srv));
        }
        if (upstream) {
            if ((rc = mg_httpc_new(w->loop, &ccfg, &w->cl)) < 0 ||
                (rc = mg_httpc_endpoint(w->cl, upstream, &w->up, &err)) < 0) {
                fprintf(stderr, "mg-testserver: upstream %s: %s\n", upstream,
                        err ? err : strerror(-rc));
                return 1;
            }
        }
    }
    int port = mg_httpd_port(workers[0].srv);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) == -1) {
            fprintf(stderr, "mg-testserver: cannot write %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    printf("mg-testserver: listening on port %d, %d worker(s)\n", port, nworkers);
    fflush(stdout);

    for (int i = 0; i < nworkers; i++) {
        if ((rc = pthread_create(&workers[i].th, NULL, worker_main, &workers[i])) != 0) {
            fprintf(stderr, "mg-testserver: cannot start a worker: %s\n", strerror(rc));
            return 1;
        }
    }
    mg_loop_run(main_loop);
    for (int i = 0; i < nworkers; i++) {
        mg_loop_stop(workers[i].loop);
        pthread_join(workers[i].th, NULL);
    }
    for (int i = 0; i < nworkers; i++) {
        mg_httpd_free(workers[i].srv);
        mg_httpc_free(workers[i].cl);
        mg_loop_free(workers[i].loop);
    }
    mg_loop_free(main_loop);
    return 0;
}
