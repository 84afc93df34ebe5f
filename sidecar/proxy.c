/* The data plane: one worker per thread, each with its own loop, HTTP
 * server (SO_REUSEPORT on the listen address), HTTP client with keep-alive
 * pools, runtime table and request pool.
 *
 * A request: the head arrives (on_request), the body is read into the
 * request's capped buffer, reqscan finds "model" and "stream", the route
 * table picks route, version and endpoint, the upstream head is built once
 * into the request's buffer and sent with the body through httpc. The
 * response streams back: its head becomes ours (hop-by-hop headers out,
 * x-modelgate-version and x-request-id in), every body span is written to
 * the client as it arrives (TCP_NODELAY: an SSE chunk leaves at once), and
 * when the client's socket is full the upstream read pauses until it
 * drains, so nothing is buffered beyond the server's high-water mark.
 *
 * The runtime table (struct sc_rt) is what a worker builds from a struct
 * sc_config: per route and version the httpc endpoints, their in-flight
 * counters and the metric children. It is reference counted without
 * atomics (only its worker touches it): the worker holds one reference,
 * every request another, so a reload swaps the worker's pointer and the
 * requests in flight finish on the table they started with. */
#define _GNU_SOURCE
#include "sidecar/sidecar.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/log.h"
#include "sidecar/reqscan.h"
#include "sidecar/sse.h"

/* Request structs kept for reuse per worker, and the buffer size a
 * recycled one may keep (larger ones are freed: a rare 1 MiB body must
 * not pin 1 MiB per pooled struct). */
#define REQ_FREE_KEEP 1024
#define REQ_BUF_KEEP (16 * 1024)
#define REQID_MAX 128
#define PATH_LOG_MAX 256
#define TRACEPARENT_LEN 55
/* Upstream head: the client's head plus what we add. */
#define UP_HEAD_EXTRA 1024
/* "upstream request failed" lines per second and worker. */
#define WARN_PER_SEC 10

const char *const sc_uperr_names[SC_UPERR_N] = {
    [SC_UPERR_CONNECT] = "connect",
    [SC_UPERR_CONNECT_TIMEOUT] = "connect_timeout",
    [SC_UPERR_RESET] = "reset",
    [SC_UPERR_RESET_MID] = "reset_mid_response",
    [SC_UPERR_PROTOCOL] = "protocol",
    [SC_UPERR_IDLE_TIMEOUT] = "idle_timeout",
    [SC_UPERR_FIRST_TOKEN_TIMEOUT] = "first_token_timeout",
    [SC_UPERR_TOTAL_TIMEOUT] = "total_timeout",
    [SC_UPERR_LOCAL] = "local",
};

/* ------------------------------------------------------------------------ */
/* Runtime tables. */

/* Passive health, per endpoint and worker: an endpoint that could not be
 * connected to (or closed before answering) is passed over for a while,
 * 1 s doubling per failure up to 30 s, while another endpoint of the
 * version is usable. Without it the picker would favour a dead endpoint:
 * its requests fail at once, so it always has the fewest in flight. */
struct ep_health {
    uint64_t down_until;              /* loop ms; 0: usable */
    unsigned fails;                   /* consecutive failures */
};
#define EP_DOWN_MIN_MS 1000u
#define EP_DOWN_MAX_MS 30000u

struct sc_rt_version {
    const struct sc_version *cv;
    struct mg_httpc_endpoint **eps;   /* NULL where the name did not resolve */
    unsigned *inflight;               /* per endpoint, for the picker */
    struct ep_health *health;         /* per endpoint */
    unsigned neps;
    struct mg_histogram *duration, *ttft, *itl;
    struct mg_counter *tokens;
    struct mg_counter *uperr[SC_UPERR_N];
    struct sc_codes codes;
};

struct sc_rt_route {
    const struct sc_route *cr;
    struct sc_rt_version *versions;
    char *json;                       /* its /v1/models object */
};

struct sc_rt {
    struct sc_config *cfg;
    struct sc_rt_route *routes;
    unsigned nroutes;
    unsigned refs;
    char *models_json;                /* GET /v1/models, rendered once */
};

static void rt_free(struct sc_rt *rt)
{
    for (unsigned i = 0; rt->routes && i < rt->nroutes; i++) {
        struct sc_rt_route *rr = &rt->routes[i];
        for (unsigned j = 0; rr->versions && j < rr->cr->nversions; j++) {
            free(rr->versions[j].eps);
            free(rr->versions[j].inflight);
            free(rr->versions[j].health);
        }
        free(rr->versions);
        free(rr->json);
    }
    free(rt->routes);
    free(rt->models_json);
    sc_config_unref(rt->cfg);
    free(rt);
}

static void rt_unref(struct sc_rt *rt)
{
    if (rt && --rt->refs == 0)
        rt_free(rt);
}

static struct mg_counter *codes_get(struct sc_codes *cc, int status)
{
    for (unsigned i = 0; i < cc->n; i++)
        if (cc->code[i] == status)
            return cc->c[i];
    char code[12];
    snprintf(code, sizeof code, "%d", status);
    const char *vals[] = {cc->model, cc->version, code, NULL};
    struct mg_counter *c = NULL;
    mg_metrics_counter_get(sc_g.m.requests, vals, &c);
    if (c && cc->n < SC_CODES_CACHE) {
        cc->code[cc->n] = status;
        cc->c[cc->n++] = c;
    }
    return c;
}

static int rt_version_init(struct sc_worker *w, struct sc_rt_version *v, const struct sc_route *cr,
                           const struct sc_version *cv)
{
    struct sc_metrics *m = &sc_g.m;
    v->cv = cv;
    v->neps = cv->nendpoints;
    v->eps = calloc(v->neps ? v->neps : 1, sizeof *v->eps);
    v->inflight = calloc(v->neps ? v->neps : 1, sizeof *v->inflight);
    v->health = calloc(v->neps ? v->neps : 1, sizeof *v->health);
    if (!v->eps || !v->inflight || !v->health)
        return -ENOMEM;
    for (unsigned k = 0; k < v->neps; k++) {
        const char *err = NULL;
        int rc = mg_httpc_endpoint(w->cl, cv->endpoints[k], &v->eps[k], &err);
        if (rc < 0) {
            v->eps[k] = NULL;
            if (w->idx == 0)
                mg_log(MG_LOG_WARN, "endpoint not usable", "model", MG_S(cr->model),
                       "version", MG_S(cv->name), "endpoint", MG_S(cv->endpoints[k]),
                       "error", MG_S(err ? err : strerror(-rc)));
        }
    }
    const char *mv[] = {cr->model, cv->name, NULL};
    mg_metrics_histogram_get(m->duration, mv, &v->duration);
    mg_metrics_histogram_get(m->ttft, mv, &v->ttft);
    mg_metrics_histogram_get(m->itl, mv, &v->itl);
    mg_metrics_counter_get(m->tokens, mv, &v->tokens);
    v->codes.model = cr->model;
    v->codes.version = cv->name;
    codes_get(&v->codes, 200);   /* exported from the start */
    return 0;
}

static json_t *model_object(const char *id, time_t created)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", id, "object", "model", "created",
                     (json_int_t)created, "owned_by", "modelgate");
}

/* Builds w's runtime table for cfg (a reference is taken). Endpoints are
 * declared on w's client here (resolved: a host name blocks this worker
 * once, at reload, never per request). */
static int rt_build(struct sc_worker *w, struct sc_config *cfg, struct sc_rt **out)
{
    int rc = -ENOMEM;
    struct sc_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    sc_config_ref(cfg);
    rt->cfg = cfg;
    rt->refs = 1;
    rt->nroutes = cfg->nroutes;
    rt->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *rt->routes);
    json_t *list = json_array();
    if (!rt->routes || !list)
        goto fail;
    time_t now = time(NULL);
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        struct sc_rt_route *rr = &rt->routes[i];
        const struct sc_route *cr = &cfg->routes[i];
        rr->cr = cr;
        rr->versions = calloc(cr->nversions ? cr->nversions : 1, sizeof *rr->versions);
        if (!rr->versions)
            goto fail;
        for (unsigned j = 0; j < cr->nversions; j++)
            if ((rc = rt_version_init(w, &rr->versions[j], cr, &cr->versions[j])) < 0)
                goto fail;
        rc = -ENOMEM;
        if (cr->wildcard)
            continue;
        json_t *o = model_object(cr->model, now);
        if (!o || !(rr->json = json_dumps(o, JSON_COMPACT)) || json_array_append_new(list, o) < 0)
            goto fail;
    }
    json_t *doc = json_pack("{s:s, s:O}", "object", "list", "data", list);
    if (!doc)
        goto fail;
    rt->models_json = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!rt->models_json)
        goto fail;
    json_decref(list);
    *out = rt;
    return 0;
fail:
    json_decref(list);
    rt_free(rt);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Requests. */

struct sc_req {
    /* Kept across reuse. */
    struct sc_worker *w;
    struct sc_req *next_free;
    struct mg_buf head;               /* the upstream request head */
    struct mg_buf body;               /* the request body */
    struct mg_timer timer;            /* first token and total timeouts */
    /* Cleared per request, from here to reqid. */
    struct mg_httpd_req *down;
    struct sc_rt *rt;
    const struct sc_route *route;
    struct sc_rt_version *ver;
    unsigned ep;
    struct mg_httpc_req up;
    const struct mg_h1_msg *umsg;     /* the upstream head, until the request ends */
    struct sc_sse sse;
    uint64_t t0_ns, t_sent_ns;
    uint64_t ft_deadline, total_deadline;   /* loop ms, 0: none */
    uint64_t bytes;                   /* response body bytes written */
    int status;                       /* sent to the client, 0 before */
    int uperr;                        /* enum sc_uperr, -1 none */
    unsigned up_active : 1;           /* the upstream request runs */
    unsigned started : 1;             /* our response head went out */
    unsigned ended : 1;               /* and all of it (answered whole) */
    unsigned stream : 1;              /* "stream": true */
    unsigned body_failed : 1;         /* the body was refused: ignore the rest */
    unsigned close : 1;               /* answer with Connection: close */
    uint16_t reqid_len, model_len, path_len, method_len;
    /* Filled before use. */
    char reqid[REQID_MAX + 1];
    char traceparent[TRACEPARENT_LEN + 1];
    char model[SC_REQSCAN_MODEL_MAX];
    char method[16];
    char path[PATH_LOG_MAX];
};

static void req_timer_cb(struct mg_loop *loop, struct mg_timer *t);

static struct sc_req *req_alloc(struct sc_worker *w)
{
    struct sc_req *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next_free;
        w->nfree--;
    } else {
        r = malloc(sizeof *r);
        if (!r)
            return NULL;
        r->w = w;
        mg_buf_init(&r->head, 0);
        mg_buf_init(&r->body, 0);
        mg_timer_init(&r->timer, req_timer_cb, r);
    }
    r->next_free = NULL;
    memset(&r->down, 0, offsetof(struct sc_req, reqid) - offsetof(struct sc_req, down));
    r->uperr = -1;
    return r;
}

static void req_recycle(struct sc_worker *w, struct sc_req *r)
{
    mg_timer_stop(w->loop, &r->timer);
    if (w->nfree >= REQ_FREE_KEEP) {
        mg_buf_free(&r->head);
        mg_buf_free(&r->body);
        free(r);
        return;
    }
    if (r->head.cap > REQ_BUF_KEEP)
        mg_buf_free(&r->head);
    if (r->body.cap > REQ_BUF_KEEP)
        mg_buf_free(&r->body);
    r->next_free = w->free_reqs;
    w->free_reqs = r;
    w->nfree++;
}

/* The upstream request is over (done, failed or cancelled): the endpoint's
 * in-flight count goes down. */
static void upstream_over(struct sc_req *r)
{
    if (!r->up_active)
        return;
    r->up_active = 0;
    if (r->ver && r->ver->inflight[r->ep] > 0)
        r->ver->inflight[r->ep]--;
    mg_timer_stop(r->w->loop, &r->timer);
}

static void upstream_cancel(struct sc_req *r)
{
    if (!r->up_active)
        return;
    mg_httpc_cancel(&r->up);
    upstream_over(r);
}

/* ------------------------------------------------------------------------ */
/* Responses of our own: OpenAI-style errors and the model list. */

static int json_str(struct mg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = mg_buf_reserve(b, n * 6 + 2);
    if (rc < 0)
        return rc;
    char *o = mg_buf_tail(b), *start = o;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    mg_buf_commit(b, (size_t)(o - start));
    return 0;
}

static unsigned base_headers(struct sc_req *r, struct mg_h1_header *h, const char *ctype)
{
    unsigned n = 0;
    h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("Content-Type", ctype);
    h[n++] = (struct mg_h1_header){.name = "x-request-id", .name_len = 12, .value = r->reqid,
                                   .value_len = r->reqid_len};
    if (r->ver)
        h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("x-modelgate-version", r->ver->cv->name);
    if (r->close)
        h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("Connection", "close");
    return n;
}

/* Answers with {"error":{"message","type","param","code"}}. */
static void req_error(struct sc_req *r, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void req_error(struct sc_req *r, int status, const char *type, const char *code,
                      const char *param, const char *fmt, ...)
{
    struct sc_worker *w = r->w;
    struct mg_buf *b = &w->scratch;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    int ml = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ml < 0)
        ml = 0;
    if ((size_t)ml >= sizeof msg)
        ml = sizeof msg - 1;
    mg_buf_reset(b);
    mg_buf_append_str(b, "{\"error\":{\"message\":");
    json_str(b, msg, (size_t)ml);
    mg_buf_append_str(b, ",\"type\":");
    json_str(b, type, strlen(type));
    mg_buf_append_str(b, ",\"param\":");
    if (param)
        json_str(b, param, strlen(param));
    else
        mg_buf_append_str(b, "null");
    mg_buf_append_str(b, ",\"code\":");
    if (code)
        json_str(b, code, strlen(code));
    else
        mg_buf_append_str(b, "null");
    mg_buf_append_str(b, "}}\n");
    struct mg_h1_header h[6];
    unsigned n = base_headers(r, h, "application/json");
    if (status == 503)
        h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("Retry-After", "1");
    r->status = status;
    r->bytes = b->len;
    mg_httpd_respond(r->down, status, h, n, mg_buf_head(b), b->len);
}

static void respond_json(struct sc_req *r, const char *body, size_t len)
{
    struct mg_h1_header h[6];
    unsigned n = base_headers(r, h, "application/json");
    r->status = 200;
    r->bytes = len;
    mg_httpd_respond(r->down, 200, h, n, body, len);
}

/* ------------------------------------------------------------------------ */
/* Request identity: x-request-id and traceparent. */

static void hex64(char *out, uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
}

/* The client's x-request-id (v, n; NULL when absent) when it is 1..128
 * visible ASCII characters, else 32 random hex digits. out has
 * REQID_MAX + 1 bytes; returns the length. */
static uint16_t make_reqid(char *out, const char *v, size_t n, struct sc_rng *rng)
{
    if (v && n > 0 && n <= REQID_MAX) {
        size_t i = 0;
        while (i < n && (unsigned char)v[i] > 0x20 && (unsigned char)v[i] < 0x7f)
            i++;
        if (i == n) {
            memcpy(out, v, n);
            out[n] = '\0';
            return (uint16_t)n;
        }
    }
    hex64(out, sc_rng_next(rng));
    hex64(out + 16, sc_rng_next(rng));
    out[32] = '\0';
    return 32;
}

static int lowhex(const char *p, size_t n, int *nonzero)
{
    *nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (c != '0')
            *nonzero = 1;
    }
    return 1;
}

/* W3C Trace Context: the client's traceparent (v, n; NULL when absent)
 * keeps its trace id and flags with a new parent id (ours); without a valid
 * one a new trace starts. out gets TRACEPARENT_LEN + 1 bytes. */
static void make_traceparent(char *t, const char *v, size_t n, struct sc_rng *rng)
{
    int nz;
    int ok = v && n >= TRACEPARENT_LEN && lowhex(v, 2, &nz) && memcmp(v, "ff", 2) != 0 &&
             (memcmp(v, "00", 2) != 0 || n == TRACEPARENT_LEN) && v[2] == '-' &&
             lowhex(v + 3, 32, &nz) && nz && v[35] == '-' && lowhex(v + 36, 16, &nz) && nz &&
             v[52] == '-' && lowhex(v + 53, 2, &nz) && (n == TRACEPARENT_LEN || v[55] == '-');
    memcpy(t, "00-", 3);
    if (ok) {
        memcpy(t + 3, v + 3, 32);
        memcpy(t + 53, v + 53, 2);
    } else {
        uint64_t a;
        do
            a = sc_rng_next(rng);
        while (a == 0);
        hex64(t + 3, a);
        hex64(t + 19, sc_rng_next(rng));
        memcpy(t + 53, "00", 2);
    }
    t[35] = '-';
    uint64_t p;
    do
        p = sc_rng_next(rng);
    while (p == 0);
    hex64(t + 36, p);
    t[52] = '-';
    t[TRACEPARENT_LEN] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Headers. */

static int name_is(const struct mg_h1_header *h, const char *lc, size_t n)
{
    return h->name_len == n && strncasecmp(h->name, lc, n) == 0;
}

/* Hop-by-hop (RFC 9110 7.6.1) and what we set ourselves. */
static int skip_common(const struct mg_h1_header *h)
{
    switch (h->name_len) {
    case 2: return name_is(h, "te", 2);
    case 7: return name_is(h, "trailer", 7) || name_is(h, "upgrade", 7);
    case 10: return name_is(h, "connection", 10) || name_is(h, "keep-alive", 10);
    case 12: return name_is(h, "x-request-id", 12);
    case 14: return name_is(h, "content-length", 14);
    case 17: return name_is(h, "transfer-encoding", 17);
    default: return h->name_len > 6 && strncasecmp(h->name, "proxy-", 6) == 0;
    }
}

/* A name listed in a Connection header is hop-by-hop too. */
static int listed_in_connection(const struct mg_h1_msg *m, const int *conn, unsigned nconn,
                                const struct mg_h1_header *h)
{
    for (unsigned i = 0; i < nconn; i++) {
        const struct mg_h1_header *c = &m->headers[conn[i]];
        const char *p = c->value, *end = c->value + c->value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *s = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if ((size_t)(p - s) == h->name_len && strncasecmp(s, h->name, h->name_len) == 0)
                return 1;
        }
    }
    return 0;
}

static unsigned connection_headers(const struct mg_h1_msg *m, int *conn, unsigned max)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->nheaders && n < max; i++)
        if (name_is(&m->headers[i], "connection", 10))
            conn[n++] = (int)i;
    return n;
}

static int put(struct mg_buf *b, const char *p, size_t n)
{
    return mg_buf_append(b, p, n);
}

/* The upstream head for the client's head m, built once into b (a
 * transparent retry sends it again, so it lives as long as the request):
 * the client's request line and headers minus hop-by-hop ones, Expect,
 * x-request-id and traceparent; then Host (when the client sent none),
 * ours, and the body's Content-Length. 0 or -errno. */
static int build_upstream_head(struct mg_buf *b, const struct mg_h1_msg *m, const char *epname,
                               const char *reqid, size_t reqid_len, const char *traceparent,
                               size_t body_len)
{
    mg_buf_reset(b);
    /* The client's head (a header may grow by the space after its colon),
     * plus what is added here: usually no reallocation. */
    size_t eplen = strlen(epname);
    b->max = m->head_len + UP_HEAD_EXTRA + eplen;
    int rc = mg_buf_reserve(b, m->head_len + m->nheaders + reqid_len + TRACEPARENT_LEN + eplen +
                                   128);
    if (rc < 0)
        return rc;
    int conn[8];
    unsigned nconn = connection_headers(m, conn, 8);
    int has_host = 0;
    put(b, m->method, m->method_len);
    put(b, " ", 1);
    put(b, m->target, m->target_len);
    put(b, " HTTP/1.1\r\n", 11);
    for (unsigned i = 0; i < m->nheaders; i++) {
        const struct mg_h1_header *h = &m->headers[i];
        if (skip_common(h) || name_is(h, "expect", 6) || name_is(h, "traceparent", 11) ||
            (nconn && listed_in_connection(m, conn, nconn, h)))
            continue;
        if (name_is(h, "host", 4))
            has_host = 1;
        put(b, h->name, h->name_len);
        put(b, ": ", 2);
        put(b, h->value, h->value_len);
        put(b, "\r\n", 2);
    }
    if (!has_host) {
        put(b, "Host: ", 6);
        put(b, epname, strlen(epname));
        put(b, "\r\n", 2);
    }
    put(b, "x-request-id: ", 14);
    put(b, reqid, reqid_len);
    put(b, "\r\ntraceparent: ", 15);
    put(b, traceparent, TRACEPARENT_LEN);
    return mg_buf_printf(b, "\r\nContent-Length: %zu\r\n\r\n", body_len);
}

/* ------------------------------------------------------------------------ */
/* Timers: first token and total. */

static void req_arm(struct sc_req *r)
{
    struct mg_loop *loop = r->w->loop;
    uint64_t d = r->total_deadline;
    if (r->ft_deadline && !r->sse.first_ns && (d == 0 || r->ft_deadline < d))
        d = r->ft_deadline;
    if (d == 0) {
        mg_timer_stop(loop, &r->timer);
        return;
    }
    uint64_t now = mg_loop_now(loop);
    mg_timer_start(loop, &r->timer, d > now ? d - now : 0);
}

static void req_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct sc_req *r = t->data;
    uint64_t now = mg_loop_now(loop);
    if (!r->up_active)
        return;
    enum sc_uperr k;
    if (r->total_deadline && now >= r->total_deadline)
        k = SC_UPERR_TOTAL_TIMEOUT;
    else if (r->ft_deadline && !r->sse.first_ns && now >= r->ft_deadline)
        k = SC_UPERR_FIRST_TOKEN_TIMEOUT;
    else {
        req_arm(r);
        return;
    }
    upstream_cancel(r);
    r->uperr = (int)k;
    if (r->started) {
        mg_httpd_abort(r->down);   /* the client sees the stream stop short */
        return;
    }
    if (k == SC_UPERR_TOTAL_TIMEOUT)
        req_error(r, 504, "upstream_error", "total_timeout", NULL,
                  "the upstream did not complete the response within the route's total "
                  "timeout (%u ms)", (unsigned)r->route->timeouts.total);
    else
        req_error(r, 504, "upstream_error", "first_token_timeout", NULL,
                  "the upstream sent no response within the route's firstToken "
                  "timeout (%u ms)", (unsigned)r->route->timeouts.first_token);
}

/* ------------------------------------------------------------------------ */
/* The upstream exchange. */

/* The upstream head is kept, not passed on yet: our response starts with
 * the first body bytes, so that a body that came whole with its head
 * leaves in one write (head and body together), and a first-token timeout
 * can still be answered with a clean 504. */
static void ep_failed(struct sc_req *r)
{
    struct ep_health *h = &r->ver->health[r->ep];
    unsigned shift = h->fails < 5 ? h->fails : 5;
    uint64_t ms = (uint64_t)EP_DOWN_MIN_MS << shift;
    if (ms > EP_DOWN_MAX_MS)
        ms = EP_DOWN_MAX_MS;
    h->fails++;
    h->down_until = mg_loop_now(r->w->loop) + ms;
}

static void up_head(struct mg_httpc_req *up, const struct mg_h1_msg *m)
{
    struct sc_req *r = up->data;
    struct ep_health *h = &r->ver->health[r->ep];
    h->fails = 0;   /* it answers */
    h->down_until = 0;
    enum sc_body_kind kind = SC_BODY_OTHER;
    int i = mg_h1_find_header(m, "content-type", 0);
    if (i >= 0)
        kind = sc_sse_kind(m->headers[i].value, m->headers[i].value_len);
    sc_sse_init(&r->sse, kind);
    r->umsg = m;
}

/* Starts our response from the upstream head: its status and headers
 * (hop-by-hop ones out, ours in). With whole, the body p[0..n) is the
 * whole response body and goes out with the head. 0, or -1 when the
 * request was given up (answered or aborted; the upstream cancelled). */
static int down_start(struct sc_req *r, const char *p, size_t n, int whole)
{
    struct sc_worker *w = r->w;
    const struct mg_h1_msg *m = r->umsg;
    struct mg_h1_header *h = w->hdrs;
    int conn[8];
    unsigned nconn = connection_headers(m, conn, 8);
    unsigned nh = 0;
    for (unsigned i = 0; i < m->nheaders; i++) {
        const struct mg_h1_header *uh = &m->headers[i];
        if (skip_common(uh) || name_is(uh, "x-modelgate-version", 19) ||
            (nconn && listed_in_connection(m, conn, nconn, uh)))
            continue;
        h[nh++] = *uh;
    }
    h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("x-modelgate-version", r->ver->cv->name);
    h[nh++] = (struct mg_h1_header){.name = "x-request-id", .name_len = 12, .value = r->reqid,
                                    .value_len = r->reqid_len};
    int rc;
    if (whole) {
        rc = mg_httpd_respond(r->down, m->status, h, nh, p, n);
        if (rc == 0) {
            r->status = m->status;
            r->started = r->ended = 1;
            r->bytes += n;
            return 0;
        }
        if (rc != -EMSGSIZE)
            goto fail;
    }
    int64_t len = m->framing == MG_H1_BODY_LENGTH ? (int64_t)m->content_length
                  : m->framing == MG_H1_BODY_NONE  ? 0
                                                   : -1;
    rc = mg_httpd_start(r->down, m->status, h, nh, len);
    if (rc == 0) {
        r->status = m->status;
        r->started = 1;
        return 0;
    }
fail:
    upstream_cancel(r);
    if (rc == -ENOTCONN)
        return -1;   /* the client is gone: on_end follows */
    r->uperr = SC_UPERR_PROTOCOL;
    req_error(r, 502, "upstream_error", "upstream_protocol_error", NULL,
              "the upstream's response head cannot be passed on (%s)", strerror(-rc));
    return -1;
}

static void up_body(struct mg_httpc_req *up, const char *p, size_t n)
{
    struct sc_req *r = up->data;
    int first = r->sse.first_ns == 0;
    uint64_t gap;
    uint64_t now = mg_now_ns();
    unsigned k = sc_sse_feed(&r->sse, p, n, now, &gap);
    if (first && r->ft_deadline)
        req_arm(r);   /* only the total timeout is left */
    if (k && gap && r->ver->itl) {
        /* k tokens that arrived together share the gap. */
        double per = (double)gap / 1e9 / k;
        for (unsigned i = 0; i < k && i < 64; i++)
            mg_histogram_observe(r->ver->itl, per);
    }
    if (!r->started) {
        const struct mg_h1_msg *m = r->umsg;
        int whole = m->framing == MG_H1_BODY_LENGTH && m->content_length == n;
        if (down_start(r, p, n, whole) < 0 || r->ended)
            return;
    }
    int rc = mg_httpd_write(r->down, p, n);
    if (rc >= 0)
        r->bytes += n;
    if (rc == 1) {
        mg_httpc_pause(up);
    } else if (rc < 0) {
        upstream_cancel(r);
        if (rc != -ENOTCONN)
            mg_httpd_abort(r->down);
    }
}

static void down_writable(struct mg_httpd_req *hr)
{
    struct sc_req *r = mg_httpd_req_data(hr);
    if (r && r->up_active)
        mg_httpc_resume(&r->up);
}

static void up_done(struct mg_httpc_req *up)
{
    struct sc_req *r = up->data;
    upstream_over(r);
    sc_sse_finish(&r->sse);
    if (r->ended)
        return;   /* answered whole with the body */
    if (!r->started) {
        if (!r->umsg) {
            r->uperr = SC_UPERR_PROTOCOL;
            req_error(r, 502, "upstream_error", "upstream_protocol_error", NULL,
                      "the upstream ended without a response");
            return;
        }
        down_start(r, "", 0, 1);   /* a response without a body */
        return;
    }
    int rc = mg_httpd_end(r->down);
    if (rc < 0 && rc != -ENOTCONN)
        mg_httpd_abort(r->down);
}

static void up_error(struct mg_httpc_req *up, enum mg_httpc_error kind, int err)
{
    struct sc_req *r = up->data;
    upstream_over(r);
    enum sc_uperr k;
    switch (kind) {
    case MG_HTTPC_ERR_CONNECT: k = SC_UPERR_CONNECT; break;
    case MG_HTTPC_ERR_CONNECT_TIMEOUT: k = SC_UPERR_CONNECT_TIMEOUT; break;
    case MG_HTTPC_ERR_RESET_BEFORE_RESPONSE: k = SC_UPERR_RESET; break;
    case MG_HTTPC_ERR_RESET_MID_RESPONSE: k = SC_UPERR_RESET_MID; break;
    case MG_HTTPC_ERR_PROTOCOL: k = SC_UPERR_PROTOCOL; break;
    case MG_HTTPC_ERR_TIMEOUT: k = SC_UPERR_IDLE_TIMEOUT; break;
    default: k = SC_UPERR_LOCAL; break;
    }
    r->uperr = (int)k;
    /* A dead backend fails every request: at most WARN_PER_SEC lines per
     * second per worker, then a count of the ones left out (the access
     * log still has every request with its error kind). */
    struct sc_worker *w = r->w;
    uint64_t sec = mg_loop_now(w->loop) / 1000;
    if (sec != w->warn_sec) {
        if (w->warn_dropped)
            mg_log(MG_LOG_WARN, "upstream failures not logged", "count", MG_U(w->warn_dropped),
                   "worker", MG_U(w->idx));
        w->warn_sec = sec;
        w->warn_count = 0;
        w->warn_dropped = 0;
    }
    if (w->warn_count++ < WARN_PER_SEC) {
        const char *ep = mg_httpc_endpoint_name(r->ver->eps[r->ep]);
        mg_log(MG_LOG_WARN, "upstream request failed", "request_id", MG_S(r->reqid), "endpoint",
               MG_S(ep), "version", MG_S(r->ver->cv->name), "error",
               MG_S(mg_httpc_strerror(kind)), "errno", MG_ERRNO(err), "response_started",
               MG_B(r->started));
    } else {
        w->warn_dropped++;
    }
    if (r->started) {
        mg_httpd_abort(r->down);
        return;
    }
    if (k == SC_UPERR_CONNECT || k == SC_UPERR_CONNECT_TIMEOUT || k == SC_UPERR_RESET)
        ep_failed(r);
    switch (k) {
    case SC_UPERR_CONNECT:
    case SC_UPERR_CONNECT_TIMEOUT:
    case SC_UPERR_RESET:
        req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                  "no endpoint of model %s version %s is reachable: %s (%s)", r->route->model,
                  r->ver->cv->name, mg_httpc_strerror(kind), err ? strerror(err) : "no detail");
        break;
    case SC_UPERR_IDLE_TIMEOUT:
        req_error(r, 504, "upstream_error", "upstream_timeout", NULL,
                  "the upstream stopped sending for longer than the route's idle timeout "
                  "(%u ms)", (unsigned)r->route->timeouts.idle);
        break;
    default:
        req_error(r, 502, "upstream_error", "upstream_protocol_error", NULL,
                  "the upstream's response is not valid: %s", mg_httpc_strerror(kind));
        break;
    }
}

static const char *req_header_cb(void *ctx, const char *name, size_t *len)
{
    return mg_httpd_req_header(ctx, name, len);
}

/* The whole body is here: find the model, route, send upstream. */
static void req_forward(struct sc_req *r)
{
    struct sc_worker *w = r->w;
    const struct sc_config *cfg = r->rt->cfg;
    struct sc_reqscan scan;
    const char *body = r->body.len ? mg_buf_head(&r->body) : "";
    if (sc_reqscan(body, r->body.len, &scan) < 0) {
        if (strncmp(scan.error, "request body is not valid JSON", 30) == 0)
            req_error(r, 400, "invalid_request_error", "invalid_json", NULL, "%s (at byte %zu)",
                      scan.error, scan.error_offset);
        else
            req_error(r, 400, "invalid_request_error", NULL,
                      strncmp(scan.error, "\"model\"", 7) == 0 ? "model" : NULL, "%s",
                      scan.error);
        return;
    }
    r->stream = scan.stream != 0;
    if (scan.model) {
        memcpy(r->model, scan.model, scan.model_len);
        r->model_len = (uint16_t)scan.model_len;
    }
    const struct sc_route *route = sc_config_route(cfg, scan.model ? scan.model : "",
                                                   scan.model ? scan.model_len : 0);
    if (!scan.model && (!route || !route->wildcard)) {
        req_error(r, 400, "invalid_request_error", "missing_model", "model",
                  "you must provide a model parameter");
        return;
    }
    if (!route) {
        req_error(r, 404, "invalid_request_error", "model_not_found", "model",
                  "The model `%.*s` does not exist.", (int)r->model_len, r->model);
        return;
    }
    r->route = route;
    struct sc_rt_route *rr = &r->rt->routes[route - cfg->routes];
    int vi = sc_route_pick_version(route, req_header_cb, r->down, &w->rng, NULL);
    if (vi < 0 || (unsigned)vi >= route->nversions) {
        req_error(r, 503, "upstream_error", "no_version", NULL,
                  "no version of model %s takes traffic (every weight is 0 and no match rule "
                  "applies)", route->model);
        return;
    }
    struct sc_rt_version *v = &rr->versions[vi];
    r->ver = v;
    unsigned ep = v->neps ? sc_route_pick_endpoint(v->inflight, v->neps, &w->rng) : 0;
    uint64_t now_ms = mg_loop_now(w->loop);
    if (v->neps && (!v->eps[ep] || v->health[ep].down_until > now_ms)) {
        /* The next usable one after it; else the next resolved one (all
         * are down: try anyway rather than refuse). */
        unsigned alt = ep, found = 0;
        for (unsigned k = 1; k <= v->neps && !found; k++) {
            unsigned e = (ep + k) % v->neps;
            if (v->eps[e] && v->health[e].down_until <= now_ms) {
                alt = e;
                found = 1;
            }
        }
        for (unsigned k = 0; k < v->neps && !found && !v->eps[alt]; k++)
            alt = (ep + k) % v->neps;
        ep = alt;
    }
    if (!v->neps || !v->eps[ep]) {
        r->uperr = SC_UPERR_CONNECT;
        req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                  "no endpoint of model %s version %s could be resolved", route->model,
                  v->cv->name);
        return;
    }
    r->ep = ep;
    size_t tl = 0;
    const char *tv = mg_httpd_req_header(r->down, "traceparent", &tl);
    make_traceparent(r->traceparent, tv, tl, &w->rng);
    int rc = build_upstream_head(&r->head, mg_httpd_req_msg(r->down),
                                 mg_httpc_endpoint_name(v->eps[ep]), r->reqid, r->reqid_len,
                                 r->traceparent, r->body.len);
    if (rc < 0) {
        req_error(r, 500, "server_error", NULL, NULL, "cannot build the upstream request: %s",
                  strerror(-rc));
        return;
    }
    struct mg_httpc_req *up = &r->up;
    up->head = mg_buf_head(&r->head);
    up->head_len = r->head.len;
    up->body = r->body.len ? mg_buf_head(&r->body) : NULL;
    up->body_len = r->body.len;
    up->connect_timeout_ms = route->timeouts.connect;
    up->read_timeout_ms = route->timeouts.idle;
    up->on_head = up_head;
    up->on_body = up_body;
    up->on_done = up_done;
    up->on_error = up_error;
    up->data = r;
    r->t_sent_ns = mg_now_ns();
    rc = mg_httpc_send(w->cl, v->eps[ep], up);
    if (rc < 0) {
        r->uperr = rc == -ENOMEM ? SC_UPERR_LOCAL : SC_UPERR_CONNECT;
        if (rc != -ENOMEM)
            ep_failed(r);
        req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                  "no endpoint of model %s version %s is reachable: connect failed (%s)",
                  route->model, v->cv->name, strerror(-rc));
        return;
    }
    r->up_active = 1;
    v->inflight[ep]++;
    uint64_t now = mg_loop_now(w->loop);
    r->ft_deadline = route->timeouts.first_token ? now + route->timeouts.first_token : 0;
    r->total_deadline = route->timeouts.total ? now + route->timeouts.total : 0;
    req_arm(r);
}

static void req_body(struct mg_httpd_req *hr, const char *p, size_t n, int last)
{
    struct sc_req *r = mg_httpd_req_data(hr);
    if (r->body_failed)
        return;
    if (n > 0) {
        int rc = mg_buf_append(&r->body, p, n);
        if (rc < 0) {
            r->body_failed = 1;
            r->close = 1;
            if (rc == -ENOBUFS)
                req_error(r, 413, "invalid_request_error", "request_too_large", NULL,
                          "request body is larger than limits.requestBody (%llu bytes)",
                          (unsigned long long)r->rt->cfg->max_body);
            else
                req_error(r, 500, "server_error", NULL, NULL, "out of memory");
            return;
        }
    }
    if (last)
        req_forward(r);
}

/* ------------------------------------------------------------------------ */
/* The end of a request: metrics and the access log. */

static double ms_between(uint64_t a, uint64_t b)
{
    return b > a ? (double)(b - a) / 1e6 : 0.0;
}

static void req_account(struct sc_req *r, enum mg_httpd_end reason)
{
    struct sc_worker *w = r->w;
    int status = r->status;
    if (!status) {
        switch (reason) {
        case MG_HTTPD_END_BAD_BODY: status = 413; break;
        case MG_HTTPD_END_TIMEOUT: status = 408; break;
        case MG_HTTPD_END_SHUTDOWN: status = 503; break;
        default: status = 499; break;   /* the client left first (nginx's code) */
        }
    }
    uint64_t end = mg_now_ns();
    struct sc_rt_version *v = r->ver;
    mg_counter_inc(codes_get(v ? &v->codes : &w->pre, status));
    uint64_t tokens = 0;
    if (v) {
        mg_histogram_observe(v->duration, (double)(end - r->t0_ns) / 1e9);
        if (r->sse.first_ns && status >= 200 && status < 300)
            mg_histogram_observe(v->ttft, (double)(r->sse.first_ns - r->t_sent_ns) / 1e9);
        tokens = sc_sse_tokens(&r->sse);
        if (tokens)
            mg_counter_add(v->tokens, tokens);
        if (r->uperr >= 0) {
            /* Made at the first failure of its kind (most never happen). */
            if (!v->uperr[r->uperr]) {
                const char *kv[] = {v->codes.model, v->codes.version, sc_uperr_names[r->uperr],
                                    NULL};
                mg_metrics_counter_get(sc_g.m.uperr, kv, &v->uperr[r->uperr]);
            }
            mg_counter_inc(v->uperr[r->uperr]);
        }
    }
    if (!r->rt->cfg->access_log)
        return;
    const char *ep = v && r->t_sent_ns ? mg_httpc_endpoint_name(v->eps[r->ep]) : NULL;
    double dur = ms_between(r->t0_ns, end);
    if (r->sse.first_ns)
        mg_log_write(MG_LOG_INFO, "access", "request_id", MG_SN(r->reqid, r->reqid_len), "method",
                     MG_SN(r->method, r->method_len), "path", MG_SN(r->path, r->path_len), "model",
                     MG_SN(r->model, r->model_len), "version", MG_S(v ? v->cv->name : NULL),
                     "endpoint", MG_S(ep), "status", MG_I(status), "bytes", MG_U(r->bytes),
                     "ttft_ms", MG_F(ms_between(r->t_sent_ns, r->sse.first_ns)), "duration_ms",
                     MG_F(dur), "tokens", MG_U(tokens), "stream", MG_B(r->stream),
                     "error", MG_S(r->uperr >= 0 ? sc_uperr_names[r->uperr] : NULL), (char *)0);
    else
        mg_log_write(MG_LOG_INFO, "access", "request_id", MG_SN(r->reqid, r->reqid_len), "method",
                     MG_SN(r->method, r->method_len), "path", MG_SN(r->path, r->path_len), "model",
                     MG_SN(r->model, r->model_len), "version", MG_S(v ? v->cv->name : NULL),
                     "endpoint", MG_S(ep), "status", MG_I(status), "bytes", MG_U(r->bytes),
                     "ttft_ms", MG_S(NULL), "duration_ms", MG_F(dur), "tokens", MG_U(tokens),
                     "stream", MG_B(r->stream),
                     "error", MG_S(r->uperr >= 0 ? sc_uperr_names[r->uperr] : NULL), (char *)0);
}

static void down_end(struct mg_httpd_req *hr, enum mg_httpd_end reason)
{
    struct sc_req *r = mg_httpd_req_data(hr);
    struct sc_worker *w = r->w;
    upstream_cancel(r);   /* nobody waits for the tokens any more */
    req_account(r, reason);
    rt_unref(r->rt);
    req_recycle(w, r);
    w->inflight--;
    if (w->draining && w->inflight == 0)
        atomic_store(&w->drained, 1);
}

/* ------------------------------------------------------------------------ */
/* Request dispatch. */

static int path_eq(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n == l && memcmp(p, lit, l) == 0;
}

static int method_is(const struct mg_h1_msg *m, const char *lit)
{
    size_t l = strlen(lit);
    return m->method_len == l && memcmp(m->method, lit, l) == 0;
}

static void method_not_allowed(struct sc_req *r, const char *allow)
{
    r->status = 405;
    struct mg_buf *b = &r->w->scratch;
    mg_buf_reset(b);
    mg_buf_printf(b, "{\"error\":{\"message\":\"%s is not allowed here; use %s\","
                     "\"type\":\"invalid_request_error\",\"param\":null,"
                     "\"code\":\"method_not_allowed\"}}\n",
                  r->method, allow);
    struct mg_h1_header h[7];
    unsigned n = base_headers(r, h, "application/json");
    h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("Allow", allow);
    r->bytes = b->len;
    mg_httpd_respond(r->down, 405, h, n, mg_buf_head(b), b->len);
}

static void on_request(struct mg_httpd_req *hr, void *data)
{
    struct sc_worker *w = data;
    const struct mg_h1_msg *m = mg_httpd_req_msg(hr);
    struct sc_req *r = req_alloc(w);
    if (!r) {
        struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/json"),
                                   MG_HTTPD_HDR("Retry-After", "1")};
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":"
                                  "\"server_error\",\"param\":null,\"code\":null}}\n";
        mg_httpd_respond(hr, 503, h, 2, oom, sizeof oom - 1);
        return;
    }
    r->down = hr;
    r->t0_ns = mg_now_ns();
    r->rt = w->rt;
    r->rt->refs++;
    w->inflight++;
    mg_httpd_req_set_data(hr, r);
    mg_httpd_on_end(hr, down_end);
    mg_httpd_on_writable(hr, down_writable);
    size_t il = 0;
    const char *iv = mg_httpd_req_header(hr, "x-request-id", &il);
    r->reqid_len = make_reqid(r->reqid, iv, il, &w->rng);
    size_t ml = m->method_len < sizeof r->method - 1 ? m->method_len : sizeof r->method - 1;
    memcpy(r->method, m->method, ml);
    r->method[ml] = '\0';
    r->method_len = (uint16_t)ml;
    const char *q = memchr(m->target, '?', m->target_len);
    size_t plen = q ? (size_t)(q - m->target) : m->target_len;
    size_t pl = plen < sizeof r->path ? plen : sizeof r->path;
    memcpy(r->path, m->target, pl);
    r->path_len = (uint16_t)pl;

    if (w->draining) {
        r->close = 1;
        req_error(r, 503, "server_error", "shutting_down", NULL,
                  "the sidecar is shutting down; retry on another instance");
        return;
    }
    const char *path = m->target;
    if (path_eq(path, plen, "/v1/models")) {
        if (method_is(m, "GET") || method_is(m, "HEAD"))
            respond_json(r, r->rt->models_json, strlen(r->rt->models_json));
        else
            method_not_allowed(r, "GET");
        return;
    }
    if (plen > 11 && memcmp(path, "/v1/models/", 11) == 0) {
        if (!method_is(m, "GET") && !method_is(m, "HEAD")) {
            method_not_allowed(r, "GET");
            return;
        }
        const struct sc_config *cfg = r->rt->cfg;
        const struct sc_route *route = sc_config_route(cfg, path + 11, plen - 11);
        if (!route || route->wildcard) {
            req_error(r, 404, "invalid_request_error", "model_not_found", "model",
                      "The model `%.*s` does not exist.", (int)(plen - 11 < 256 ? plen - 11 : 256),
                      path + 11);
            return;
        }
        const char *js = r->rt->routes[route - cfg->routes].json;
        respond_json(r, js, strlen(js));
        return;
    }
    if (plen >= 4 && memcmp(path, "/v1/", 4) == 0) {
        if (!method_is(m, "POST")) {
            method_not_allowed(r, "POST");
            return;
        }
        uint64_t max = r->rt->cfg->max_body;
        if (m->framing == MG_H1_BODY_LENGTH && m->content_length > max) {
            /* Refused before reading it (and without 100 Continue). */
            r->close = 1;
            req_error(r, 413, "invalid_request_error", "request_too_large", NULL,
                      "request body is larger than limits.requestBody (%llu bytes)",
                      (unsigned long long)max);
            return;
        }
        mg_buf_reset(&r->body);
        r->body.max = (size_t)max;
        if (m->framing == MG_H1_BODY_NONE) {
            req_forward(r);
            return;
        }
        if (m->framing == MG_H1_BODY_LENGTH && mg_buf_reserve(&r->body, m->content_length) < 0) {
            req_error(r, 500, "server_error", NULL, NULL, "out of memory");
            return;
        }
        if (mg_httpd_read_body(hr, req_body) < 0)
            return;   /* the connection is gone: on_end follows */
        return;
    }
    req_error(r, 404, "invalid_request_error", "unknown_url", NULL,
              "Unknown request URL: %s %.*s", r->method, (int)r->path_len, r->path);
}

/* ------------------------------------------------------------------------ */
/* Workers. */

static uint64_t seed64(unsigned idx)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return s ^ (0x9e3779b97f4a7c15ull * (idx + 1));
}

int sc_worker_init(struct sc_worker *w, struct sc_config *cfg, const char *listen,
                   const char **err)
{
    int rc = mg_loop_new(&w->loop);
    if (rc < 0) {
        *err = "cannot create an event loop";
        return rc;
    }
    struct mg_httpd_config hc;
    mg_httpd_config_default(&hc);
    hc.listen = listen;
    hc.reuseport = 1;
    hc.max_conns = cfg->max_conns;
    hc.header_timeout_ms = cfg->header_timeout_ms;
    hc.idle_timeout_ms = cfg->keepalive_timeout_ms;
    if (cfg->max_head)
        hc.limits.max_head = (size_t)cfg->max_head;
    if (hc.limits.max_request_line > hc.limits.max_head)
        hc.limits.max_request_line = hc.limits.max_head;
    hc.on_request = on_request;
    hc.data = w;
    if ((rc = mg_httpd_new(w->loop, &hc, &w->srv, err)) < 0)
        return rc;
    struct mg_httpc_config cc;
    mg_httpc_config_default(&cc);
    cc.max_idle_per_endpoint = cfg->upstream_max_idle;
    cc.idle_timeout_ms = cfg->upstream_idle_ms;
    cc.connect_timeout_ms = 0;   /* per request: the route's timeouts.connect */
    if ((rc = mg_httpc_new(w->loop, &cc, &w->cl)) < 0) {
        *err = "cannot create the upstream client";
        return rc;
    }
    sc_rng_seed(&w->rng, seed64(w->idx));
    mg_buf_init(&w->scratch, 16 * 1024);
    w->pre.model = "";
    w->pre.version = "";
    if ((rc = rt_build(w, cfg, &w->rt)) < 0) {
        *err = "cannot build the runtime table";
        return rc;
    }
    atomic_store(&w->generation, cfg->generation);
    return 0;
}

struct cfg_msg {
    struct sc_worker *w;
    struct sc_config *cfg;
};

static void adopt_cb(struct mg_loop *loop, void *data)
{
    struct cfg_msg *msg = data;
    struct sc_worker *w = msg->w;
    struct sc_rt *rt;
    int rc = rt_build(w, msg->cfg, &rt);
    if (rc < 0) {
        mg_log(MG_LOG_ERROR, "worker cannot adopt the new table; it keeps the old one",
               "worker", MG_U(w->idx), "generation", MG_U(msg->cfg->generation), "error",
               MG_ERRNO(rc));
    } else {
        struct sc_rt *old = w->rt;
        w->rt = rt;
        rt_unref(old);
        atomic_store(&w->generation, rt->cfg->generation);
    }
    sc_config_unref(msg->cfg);
    free(msg);
}

int sc_worker_post_config(struct sc_worker *w, struct sc_config *cfg)
{
    struct cfg_msg *msg = malloc(sizeof *msg);
    if (!msg)
        return -ENOMEM;
    msg->w = w;
    msg->cfg = cfg;
    sc_config_ref(cfg);
    int rc = mg_loop_post(w->loop, adopt_cb, msg);
    if (rc < 0) {
        sc_config_unref(cfg);
        free(msg);
    }
    return rc;
}

static void drain_cb(struct mg_loop *loop, void *data)
{
    struct sc_worker *w = data;
    w->draining = 1;
    atomic_store(&w->ready, 0);
    if (w->inflight == 0)
        atomic_store(&w->drained, 1);
}

int sc_worker_post_drain(struct sc_worker *w)
{
    return mg_loop_post(w->loop, drain_cb, w);
}

void *sc_worker_main(void *arg)
{
    struct sc_worker *w = arg;
    mg_metrics_thread_register();
    atomic_store(&w->ready, 1);
    int rc = mg_loop_run(w->loop);
    if (rc < 0)
        mg_log(MG_LOG_ERROR, "worker loop failed", "worker", MG_U(w->idx), "error", MG_ERRNO(rc));
    atomic_store(&w->ready, 0);
    mg_metrics_thread_unregister();
    return NULL;
}

void sc_worker_free(struct sc_worker *w)
{
    /* A table posted just before the stop holds a reference: deliver it
     * (one last iteration) rather than leak it. */
    if (w->loop && w->rt)
        mg_loop_run_once(w->loop, 0);
    if (w->srv)
        mg_httpd_free(w->srv);   /* requests in flight end (SHUTDOWN) */
    w->srv = NULL;
    if (w->cl)
        mg_httpc_free(w->cl);
    w->cl = NULL;
    while (w->free_reqs) {
        struct sc_req *r = w->free_reqs;
        w->free_reqs = r->next_free;
        mg_buf_free(&r->head);
        mg_buf_free(&r->body);
        free(r);
    }
    w->nfree = 0;
    rt_unref(w->rt);
    w->rt = NULL;
    mg_buf_free(&w->scratch);
    if (w->loop)
        mg_loop_free(w->loop);
    w->loop = NULL;
}

/* ------------------------------------------------------------------------ */
/* Metrics. */

static double client_conns_cb(void *arg)
{
    double n = 0;
    for (unsigned i = 0; i < sc_g.nworkers; i++) {
        if (!sc_g.workers[i].srv)
            continue;
        struct mg_httpd_stats st;
        mg_httpd_get_stats(sc_g.workers[i].srv, &st);
        n += (double)st.open;
    }
    return n;
}

static double upstream_stat_cb(void *arg)
{
    const char *which = arg;
    double n = 0;
    for (unsigned i = 0; i < sc_g.nworkers; i++) {
        if (!sc_g.workers[i].cl)
            continue;
        struct mg_httpc_stats st;
        mg_httpc_get_stats(sc_g.workers[i].cl, &st);
        if (strcmp(which, "idle") == 0)
            n += (double)st.idle;
        else if (strcmp(which, "active") == 0)
            n += (double)st.active;
        else if (strcmp(which, "created") == 0)
            n += (double)st.created;
        else
            n += (double)st.reused;
    }
    return n;
}

int sc_metrics_init(unsigned nworkers)
{
    struct sc_metrics *m = &sc_g.m;
    /* One shard per thread that updates: the main thread (id 1, registered
     * first) and the workers (2 ..), shard 0 being the shared one. */
    int rc = mg_metrics_new(&m->reg, nworkers + 2, 0);
    if (rc < 0)
        return rc;
    static const char *const mv[] = {"model", "version", NULL};
    static const char *const mvc[] = {"model", "version", "code", NULL};
    static const char *const mvk[] = {"model", "version", "kind", NULL};
    static const char *const st[] = {"state", NULL};
    static const char *const res[] = {"result", NULL};
    static const double dur_b[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
                                   5, 10, 30, 60, 120, 300, 600};
    static const double ttft_b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                    0.5, 0.75, 1, 2.5, 5, 10, 30, 60};
    static const double itl_b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05,
                                   0.075, 0.1, 0.25, 0.5, 1, 2.5};
    if ((rc = mg_metrics_counter(m->reg, "modelgate_requests_total",
                                 "Requests answered, by model, version and status code "
                                 "(refused before routing: model and version empty).",
                                 mvc, &m->requests)) < 0 ||
        (rc = mg_metrics_histogram(m->reg, "modelgate_request_duration_seconds",
                                   "Time from the request head to the end of the response.", mv,
                                   dur_b, sizeof dur_b / sizeof dur_b[0], &m->duration)) < 0 ||
        (rc = mg_metrics_histogram(m->reg, "modelgate_time_to_first_token_seconds",
                                   "Time from sending the request upstream to the first "
                                   "response body byte (successful responses).",
                                   mv, ttft_b, sizeof ttft_b / sizeof ttft_b[0], &m->ttft)) < 0 ||
        (rc = mg_metrics_histogram(m->reg, "modelgate_inter_token_latency_seconds",
                                   "Gaps between streamed token events.", mv, itl_b,
                                   sizeof itl_b / sizeof itl_b[0], &m->itl)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_output_tokens_total",
                                 "Generated tokens: the backend's usage.completion_tokens, "
                                 "else the streamed token events.",
                                 mv, &m->tokens)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_upstream_errors_total",
                                 "Upstream requests that failed, by kind.", mvk, &m->uperr)) < 0 ||
        (rc = mg_metrics_gauge(m->reg, "modelgate_client_connections",
                               "Client connections open on the data port.", NULL,
                               &m->client_conns)) < 0 ||
        (rc = mg_metrics_gauge(m->reg, "modelgate_upstream_connections",
                               "Upstream connections, idle in the pools or carrying a request.",
                               st, &m->up_conns)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_upstream_connections_created_total",
                                 "Upstream connections opened.", NULL, &m->up_created)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_upstream_requests_reused_total",
                                 "Upstream requests sent on a pooled keep-alive connection.",
                                 NULL, &m->up_reused)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_config_reloads_total",
                                 "Route tables offered after the first (file change, SIGHUP, "
                                 "POST /config), by result.",
                                 res, &m->reloads)) < 0 ||
        (rc = mg_metrics_gauge(m->reg, "modelgate_config_generation",
                               "Generation of the route table in force (1 for the first).",
                               NULL, &m->generation)) < 0)
        return rc;
    static const char *const idle[] = {"idle", NULL}, *const active[] = {"active", NULL};
    static const char *const ok[] = {"ok", NULL}, *const refused[] = {"refused", NULL};
    /* Children per route and version: far more than the registry's default
     * cap may be legitimate (1024 routes of 16 versions). */
    struct mg_metric_family *per_route[] = {m->requests, m->duration, m->ttft, m->itl, m->tokens,
                                            m->uperr};
    for (size_t i = 0; i < sizeof per_route / sizeof per_route[0]; i++)
        mg_metrics_set_max_children(per_route[i], 100000);
    if ((rc = mg_metrics_callback(m->client_conns, NULL, client_conns_cb, NULL)) < 0 ||
        (rc = mg_metrics_callback(m->up_conns, idle, upstream_stat_cb, (void *)"idle")) < 0 ||
        (rc = mg_metrics_callback(m->up_conns, active, upstream_stat_cb, (void *)"active")) < 0 ||
        (rc = mg_metrics_callback(m->up_created, NULL, upstream_stat_cb, (void *)"created")) < 0 ||
        (rc = mg_metrics_callback(m->up_reused, NULL, upstream_stat_cb, (void *)"reused")) < 0 ||
        (rc = mg_metrics_counter_get(m->reloads, ok, &m->reloads_ok)) < 0 ||
        (rc = mg_metrics_counter_get(m->reloads, refused, &m->reloads_refused)) < 0 ||
        (rc = mg_metrics_gauge_get(m->generation, NULL, &m->gen)) < 0)
        return rc;
    return 0;
}
