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
/* An upstream error response held to decide on a retry or a fallback; a
 * larger one is passed on as it is. */
#define HELD_MAX (64 * 1024)
/* The longest SSE event held back until it is complete; a longer one is
 * passed on as it comes (unchecked). */
#define SSE_PEND_MAX (64 * 1024)
/* How often a worker re-checks its pending queue for slots freed by other
 * workers. */
#define PEND_TICK_MS 5

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
    [SC_UPERR_PER_TRY_TIMEOUT] = "per_try_timeout",
    [SC_UPERR_MALFORMED] = "malformed_stream",
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
    unsigned npend;                   /* requests waiting for a slot (this worker) */
};

struct sc_rt_route {
    const struct sc_route *cr;
    struct sc_rt_version *versions;
    char *json;                       /* its /v1/models object */
    struct sc_codes static_codes;     /* answered by a static fallback */
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
        rr->static_codes.model = cr->model;
        rr->static_codes.version = "static";
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

enum req_phase { PH_IDLE = 0, PH_PENDING, PH_BACKOFF, PH_UP };

struct sc_req {
    /* Kept across reuse. */
    struct sc_worker *w;
    struct sc_req *next_free;
    struct mg_buf head;               /* the upstream request head */
    struct mg_buf body;               /* the request body */
    struct mg_buf held;               /* an upstream error response held for a decision */
    struct mg_buf pend;               /* the incomplete SSE event not passed on yet */
    struct mg_timer timer;            /* timeouts, back-off, the pending wait */
    /* Cleared per request, from here to reqid. */
    struct mg_httpd_req *down;
    struct sc_rt *rt;
    const struct sc_route *route0;    /* the route the request's model picked */
    const struct sc_policy_route *pol0;
    const struct sc_route *route;     /* the route serving now (another after a model hop) */
    struct sc_rt_route *rr;
    const struct sc_policy_route *pol;
    struct sc_rt_version *ver;
    struct sc_rt_version *pver;       /* the version whose queue it waits in */
    unsigned vi;
    unsigned ep;
    struct sc_pol_ep *brk;            /* the breaker of the current try */
    struct sc_pol_ep *pep;            /* the shared endpoint of the current try */
    struct sc_pol_ver *slot;          /* the concurrency slot the current try holds */
    struct sc_req *pend_prev, *pend_next;
    struct mg_httpc_req up;
    const struct mg_h1_msg *umsg;     /* the upstream head, until the try ends */
    struct sc_sse sse;
    struct sc_rate *tpm_route, *tpm_key;   /* token reservations to settle */
    double tpm_cost;
    uint64_t t0_ns, t_sent_ns, t_try_ns;
    uint64_t ft_deadline, try_deadline, total_deadline;   /* loop ms, 0: none */
    uint64_t bytes;                   /* response body bytes written */
    uint64_t tried[SC_MAX_ENDPOINTS / 64];   /* endpoints of the version tried */
    int status;                       /* sent to the client, 0 before */
    int uperr;                        /* enum sc_uperr, -1 none */
    int held_status;                  /* the held upstream answer, 0 none */
    int retry_after;                  /* our 503/429's Retry-After: 0 default, <0 none */
    int fb_next;                      /* the next hop of route0's fallback chain */
    unsigned tries, retries, nhops;
    uint8_t phase;                    /* enum req_phase */
    uint8_t last_cls;                 /* enum fail_cls of the last failed try */
    unsigned up_active : 1;           /* the upstream request runs */
    unsigned started : 1;             /* our response head went out */
    unsigned ended : 1;               /* and all of it (answered whole) */
    unsigned stream : 1;              /* "stream": true */
    unsigned body_failed : 1;         /* the body was refused: ignore the rest */
    unsigned close : 1;               /* answer with Connection: close */
    unsigned holding : 1;             /* the current response is held, not passed on */
    unsigned got_body : 1;            /* the current try's first body byte came */
    unsigned budgeted : 1;            /* counted in route0's retry budget */
    unsigned retry_budget : 1;        /* the current try is a retry the budget let through */
    unsigned reported : 1;            /* the breaker heard this try's outcome */
    unsigned spliced : 1;             /* the body's model was rewritten */
    unsigned is_static : 1;           /* answered by a static fallback */
    unsigned breaker_refused : 1;     /* some endpoint's breaker said no */
    unsigned sse_out : 1;             /* our response is a chunked event stream */
    unsigned stream_error : 1;        /* it broke off mid-way */
    unsigned sse_hold : 1;            /* events are passed on whole (pend) */
    uint16_t reqid_len, model_len, path_len, method_len, hops_len, held_ctype_len, held_ra_len;
    size_t model_off, model_span;     /* the "model" value in body */
    /* Filled before use. */
    char reqid[REQID_MAX + 1];
    char traceparent[TRACEPARENT_LEN + 1];
    char model[SC_REQSCAN_MODEL_MAX];
    char method[16];
    char path[PATH_LOG_MAX];
    char hops[192];
    char retries_s[12];
    char held_ctype[96], held_ra[16];
    char uperr_detail[96];
};

static void req_timer_cb(struct mg_loop *loop, struct mg_timer *t);
static void up_head(struct mg_httpc_req *up, const struct mg_h1_msg *m);
static void up_body(struct mg_httpc_req *up, const char *p, size_t n);
static void up_done(struct mg_httpc_req *up);
static void up_error(struct mg_httpc_req *up, enum mg_httpc_error kind, int err);
static void ep_failed(struct sc_req *r);
static const char *req_header_cb(void *ctx, const char *name, size_t *len);
static unsigned policy_headers(struct sc_req *r, struct mg_h1_header *h);

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
        mg_buf_init(&r->held, HELD_MAX);
        mg_buf_init(&r->pend, SSE_PEND_MAX);
        mg_timer_init(&r->timer, req_timer_cb, r);
    }
    r->next_free = NULL;
    memset(&r->down, 0, offsetof(struct sc_req, reqid) - offsetof(struct sc_req, down));
    r->uperr = -1;
    r->uperr_detail[0] = '\0';
    return r;
}

static void req_recycle(struct sc_worker *w, struct sc_req *r)
{
    mg_timer_stop(w->loop, &r->timer);
    if (w->nfree >= REQ_FREE_KEEP) {
        mg_buf_free(&r->head);
        mg_buf_free(&r->body);
        mg_buf_free(&r->held);
        mg_buf_free(&r->pend);
        free(r);
        return;
    }
    if (r->held.cap > REQ_BUF_KEEP)
        mg_buf_free(&r->held);
    if (r->pend.cap > REQ_BUF_KEEP)
        mg_buf_free(&r->pend);
    mg_buf_reset(&r->pend);
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
static void slot_release(struct sc_req *r);
static void budget_give(struct sc_req *r);

static void upstream_over(struct sc_req *r)
{
    if (!r->up_active)
        return;
    r->up_active = 0;
    r->phase = PH_IDLE;
    if (r->ver && r->ver->inflight[r->ep] > 0)
        r->ver->inflight[r->ep]--;
    if (r->pep) {
        atomic_fetch_sub_explicit(&r->pep->inflight, 1, memory_order_relaxed);
        r->pep = NULL;
    }
    mg_timer_stop(r->w->loop, &r->timer);
    slot_release(r);
    budget_give(r);
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

/* x-modelgate-version (the serving version), x-modelgate-fallback (the
 * hops taken, "v2>v1>static") and x-modelgate-retries (routes with
 * retries): at most 3 headers. */
static unsigned policy_headers(struct sc_req *r, struct mg_h1_header *h)
{
    unsigned n = 0;
    if (r->ver && !r->is_static)
        h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("x-modelgate-version", r->ver->cv->name);
    if (r->nhops)
        h[n++] = (struct mg_h1_header){.name = "x-modelgate-fallback", .name_len = 20,
                                       .value = r->hops, .value_len = r->hops_len};
    if (r->route0 && r->route0->retries) {
        int l = snprintf(r->retries_s, sizeof r->retries_s, "%u", r->retries);
        h[n++] = (struct mg_h1_header){.name = "x-modelgate-retries", .name_len = 19,
                                       .value = r->retries_s, .value_len = (uint32_t)l};
    }
    return n;
}

static unsigned base_headers(struct sc_req *r, struct mg_h1_header *h, const char *ctype)
{
    unsigned n = 0;
    h[n++] = (struct mg_h1_header)MG_HTTPD_HDR("Content-Type", ctype);
    h[n++] = (struct mg_h1_header){.name = "x-request-id", .name_len = 12, .value = r->reqid,
                                   .value_len = r->reqid_len};
    n += policy_headers(r, h + n);
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
    struct mg_h1_header h[10];
    unsigned n = base_headers(r, h, "application/json");
    char ra[12];
    int secs = r->retry_after > 0 ? r->retry_after : r->retry_after == 0 && status == 503 ? 1 : 0;
    if ((status == 503 || status == 429) && secs > 0) {
        int l = snprintf(ra, sizeof ra, "%d", secs);
        h[n++] = (struct mg_h1_header){.name = "Retry-After", .name_len = 11, .value = ra,
                                       .value_len = (uint32_t)l};
    }
    r->status = status;
    r->bytes = b->len;
    mg_httpd_respond(r->down, status, h, n, mg_buf_head(b), b->len);
}

static void respond_json(struct sc_req *r, const char *body, size_t len)
{
    struct mg_h1_header h[10];
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

/* The errors the HTTP layer answers itself (a malformed head, 408, 431,
 * ...), in the same OpenAI shape. */
static const char *http_error_body(void *data, int status, const char *reason,
                                   struct mg_buf *out, struct mg_buf *headers)
{
    struct sc_worker *w = data;
    char id[REQID_MAX + 1];
    uint16_t idl = make_reqid(id, NULL, 0, &w->rng);
    if (mg_buf_append_str(headers, "x-request-id: ") < 0 || mg_buf_append(headers, id, idl) < 0 ||
        mg_buf_append_str(headers, "\r\n") < 0)
        return NULL;
    const char *code = status == 408 ? "request_timeout"
                       : status == 413 ? "request_too_large"
                       : status == 431 ? "request_header_fields_too_large"
                       : status == 503 ? "too_many_connections"
                                       : "invalid_http";
    if (mg_buf_append_str(out, "{\"error\":{\"message\":") < 0 ||
        json_str(out, reason, strlen(reason)) < 0 ||
        mg_buf_printf(out, ",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}\n",
                      status >= 500 ? "server_error" : "invalid_request_error", code) < 0)
        return NULL;
    return "application/json";
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
                               size_t body_len, const char *peer)
{
    int xff_seen = 0;
    mg_buf_reset(b);
    /* The client's head (a header may grow by the space after its colon),
     * plus what is added here: usually no reallocation. */
    size_t eplen = strlen(epname);
    b->max = m->head_len + UP_HEAD_EXTRA + eplen + 2 * 64;
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
        if (peer && name_is(h, "x-forwarded-for", 15)) {
            xff_seen = 1;   /* the client's list, with the client appended */
            put(b, h->name, h->name_len);
            put(b, ": ", 2);
            put(b, h->value, h->value_len);
            put(b, ", ", 2);
            put(b, peer, strlen(peer));
            put(b, "\r\n", 2);
            continue;
        }
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
    if (peer && !xff_seen) {
        put(b, "x-forwarded-for: ", 17);
        put(b, peer, strlen(peer));
        put(b, "\r\n", 2);
    }
    put(b, "x-request-id: ", 14);
    put(b, reqid, reqid_len);
    put(b, "\r\ntraceparent: ", 15);
    put(b, traceparent, TRACEPARENT_LEN);
    return mg_buf_printf(b, "\r\nContent-Length: %zu\r\n\r\n", body_len);
}

/* ------------------------------------------------------------------------ */
/* Timers: first token, per try, total; back-off; the pending wait. */

static void req_arm(struct sc_req *r)
{
    struct mg_loop *loop = r->w->loop;
    uint64_t d = r->total_deadline;
    if (!r->got_body) {
        if (r->ft_deadline && (d == 0 || r->ft_deadline < d))
            d = r->ft_deadline;
        if (r->try_deadline && (d == 0 || r->try_deadline < d))
            d = r->try_deadline;
    }
    if (d == 0) {
        mg_timer_stop(loop, &r->timer);
        return;
    }
    uint64_t now = mg_loop_now(loop);
    mg_timer_start(loop, &r->timer, d > now ? d - now : 0);
}

/* ------------------------------------------------------------------------ */
/* Policy helpers. */

enum fail_cls { F_NONE, F_CONNECT, F_RESET, F_TIMEOUT, F_STATUS, F_CONTEXT, F_PROTOCOL };

static void count4(struct mg_metric_family *f, const char *a, const char *b, const char *c,
                   const char *d)
{
    const char *v[] = {a, b, c, d, NULL};
    struct mg_counter *x = NULL;
    if (f && mg_metrics_counter_get(f, v, &x) == 0)
        mg_counter_inc(x);
}

static void count2(struct mg_metric_family *f, const char *a, const char *b)
{
    const char *v[] = {a, b, NULL};
    struct mg_counter *x = NULL;
    if (f && mg_metrics_counter_get(f, v, &x) == 0)
        mg_counter_inc(x);
}

static void count3(struct mg_metric_family *f, const char *a, const char *b, const char *c)
{
    const char *v[] = {a, b, c, NULL};
    struct mg_counter *x = NULL;
    if (f && mg_metrics_counter_get(f, v, &x) == 0)
        mg_counter_inc(x);
}

/* A failed try of the current version, counted by kind (every try: a
 * request that succeeded after retries counts its failures too). */
static void uperr_count(struct sc_req *r, enum sc_uperr k)
{
    struct sc_rt_version *v = r->ver;
    r->uperr = (int)k;
    if (!v)
        return;
    /* Made at the first failure of its kind (most never happen). */
    if (!v->uperr[k]) {
        const char *kv[] = {v->codes.model, v->codes.version, sc_uperr_names[k], NULL};
        mg_metrics_counter_get(sc_g.m.uperr, kv, &v->uperr[k]);
    }
    mg_counter_inc(v->uperr[k]);
}

/* The breaker hears the outcome of the current try, once. */
static void try_report(struct sc_req *r, int success)
{
    struct sc_pol_ep *e = r->brk;
    if (!e || r->reported)
        return;
    r->reported = 1;
    sc_breaker_report(&e->br, success, mg_loop_now(r->w->loop), sc_policy_breaker_cb, e);
}

static struct sc_budget *req_budget(const struct sc_req *r)
{
    struct sc_pol_route *pr = r->pol0 ? r->pol0->route : NULL;
    return pr && pr->has_budget ? &pr->budget : NULL;
}

/* A retry (hop 0) or a fallback hop to an upstream (hop 1): within
 * route0's retry budget? Free: anything after a failed connect (nothing
 * reached a server, so nothing is amplified), a hop after a reset (the
 * server went away without answering: a killed backend resets every
 * request in flight at once, and the hop goes elsewhere), a hop after a
 * context-length refusal (an answer, not a failure), and everything
 * without a budget. Overload signals (429, 5xx, timeouts) are charged. */
static int budget_take(struct sc_req *r, int hop)
{
    struct sc_budget *b = req_budget(r);
    if (!b || r->tries == 0 || r->last_cls == F_CONNECT || r->last_cls == F_CONTEXT ||
        (hop && r->last_cls == F_RESET))
        return 1;
    if (sc_budget_retry_start(b)) {
        r->retry_budget = 1;
        return 1;
    }
    mg_counter_inc(r->pol0->route->budget_refused);
    return 0;
}

static void budget_give(struct sc_req *r)
{
    if (!r->retry_budget)
        return;
    r->retry_budget = 0;
    sc_budget_retry_end(req_budget(r));
}

static void pend_kick(struct sc_worker *w)
{
    if (w->npend && !mg_timer_armed(&w->pend_timer))
        mg_timer_start(w->loop, &w->pend_timer, 0);
}

static void slot_release(struct sc_req *r)
{
    if (!r->slot)
        return;
    atomic_fetch_sub_explicit(&r->slot->inflight, 1, memory_order_release);
    r->slot = NULL;
    pend_kick(r->w);
}

/* A concurrency slot of the current version (maxConcurrent), or 1 when
 * there is no limit. */
static int slot_take(struct sc_req *r)
{
    const struct sc_policy_route *p = r->pol;
    struct sc_pol_ver *pv = p && p->versions ? p->versions[r->vi].ver : NULL;
    if (!pv || !pv->max_concurrent || r->slot)
        return 1;
    unsigned cur = atomic_load_explicit(&pv->inflight, memory_order_relaxed);
    while (cur < pv->max_concurrent)
        if (atomic_compare_exchange_weak_explicit(&pv->inflight, &cur, cur + 1,
                                                  memory_order_acquire, memory_order_relaxed)) {
            r->slot = pv;
            return 1;
        }
    return 0;
}

static void pend_remove(struct sc_req *r)
{
    struct sc_worker *w = r->w;
    if (r->phase != PH_PENDING)
        return;
    if (r->pend_prev)
        r->pend_prev->pend_next = r->pend_next;
    else
        w->pend_head = r->pend_next;
    if (r->pend_next)
        r->pend_next->pend_prev = r->pend_prev;
    else
        w->pend_tail = r->pend_prev;
    r->pend_prev = r->pend_next = NULL;
    w->npend--;
    r->pver->npend--;
    r->phase = PH_IDLE;
    mg_timer_stop(w->loop, &r->timer);
}

static void pend_push(struct sc_req *r, uint32_t timeout_ms)
{
    struct sc_worker *w = r->w;
    r->phase = PH_PENDING;
    r->pver = r->ver;
    r->pend_next = NULL;
    r->pend_prev = w->pend_tail;
    if (w->pend_tail)
        w->pend_tail->pend_next = r;
    else
        w->pend_head = r;
    w->pend_tail = r;
    w->npend++;
    r->ver->npend++;
    mg_timer_start(w->loop, &r->timer, timeout_ms);
    if (!mg_timer_armed(&w->pend_timer))
        mg_timer_start(w->loop, &w->pend_timer, PEND_TICK_MS);
}

static int retry_after_s(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

/* Overload answers: maxConcurrent/maxPending, saturation, pending timeout. */
static void overload(struct sc_req *r, const char *reason, const char *fmt, const char *what)
{
    const struct sc_breaker_cfg *bc = r->route->breaker;
    int status = bc ? bc->overload_status : 503;
    count2(sc_g.m.shed, r->route->model, reason);
    r->retry_after = 1;
    if (status == 429)
        req_error(r, 429, "rate_limit_error", "overloaded", NULL, fmt, r->route->model, what);
    else
        req_error(r, 503, "server_error", "overloaded", NULL, fmt, r->route->model, what);
}

static int sheddable(struct sc_req *r, const struct sc_admission *a)
{
    size_t n = 0;
    const char *v = mg_httpd_req_header(r->down, a->priority_header, &n);
    if (!v)
        return 0;
    for (unsigned i = 0; i < a->nsheddable; i++)
        if (strlen(a->sheddable[i]) == n && memcmp(a->sheddable[i], v, n) == 0)
            return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Endpoint choice. */

#define EP_TRIED(r, e) ((r)->tried[(e) / 64] >> ((e) % 64) & 1)

enum { PICK_NONE = -1, PICK_BREAKER = -2, PICK_SHED = -3 };

/* Power of two choices over the endpoints in set (n > 0). */
static unsigned p2c(struct sc_req *r, const unsigned *set, unsigned n)
{
    struct sc_rt_version *v = r->ver;
    if (n == 1)
        return set[0];
    unsigned a = set[sc_rng_next(&r->w->rng) % n], b = set[sc_rng_next(&r->w->rng) % n];
    return v->inflight[b] < v->inflight[a] ? b : a;
}

/* The endpoint for the next try of the current version, or PICK_*:
 * skips unresolved endpoints, endpoints whose breaker does not allow,
 * endpoints passive health put aside, saturated ones and ones this request
 * already tried — each of the last three only while another is left. */
static int pick_endpoint(struct sc_req *r)
{
    struct sc_worker *w = r->w;
    struct sc_rt_version *v = r->ver;
    uint64_t now = mg_loop_now(w->loop);
    const struct sc_policy_route *p = r->pol;
    const struct sc_policy_version *pv = p && p->versions ? &p->versions[r->vi] : NULL;
    if (!v->neps)
        return PICK_NONE;
    if (!pv && r->tries == 0) {
        /* No policy: part 1's choice, as cheap as it was. */
        unsigned ep = sc_route_pick_endpoint(v->inflight, v->neps, &w->rng);
        if (!v->eps[ep] || v->health[ep].down_until > now) {
            unsigned alt = ep, found = 0;
            for (unsigned k = 1; k <= v->neps && !found; k++) {
                unsigned e = (ep + k) % v->neps;
                if (v->eps[e] && v->health[e].down_until <= now) {
                    alt = e;
                    found = 1;
                }
            }
            for (unsigned k = 0; k < v->neps && !found && !v->eps[alt]; k++)
                alt = (ep + k) % v->neps;
            ep = alt;
        }
        return v->eps[ep] ? (int)ep : PICK_NONE;
    }
    const struct sc_admission *adm = r->route->admission;
    unsigned set[SC_MAX_ENDPOINTS];
    int breaker_refused = 0;
    /* Relaxation levels: 0 all filters, 1 tried ones allowed, 2 also down
     * ones, 3 also saturated ones (only for requests that may not be
     * shed). */
    int all_sat = -1;
    for (int level = 0; level < 4; level++) {
        if (level == 3) {
            if (!adm)
                break;
            if (all_sat < 0) {
                all_sat = 1;
                for (unsigned e = 0; e < v->neps && all_sat; e++)
                    if (v->eps[e] && !sc_policy_saturated(pv->eps[e], adm, now))
                        all_sat = 0;
            }
            if (!all_sat)
                break;
            if (sheddable(r, adm))
                return PICK_SHED;
        }
        unsigned n = 0;
        for (unsigned e = 0; e < v->neps; e++) {
            if (!v->eps[e])
                continue;
            if (level < 1 && EP_TRIED(r, e))
                continue;
            if (level < 2 && v->health[e].down_until > now)
                continue;
            if (level < 3 && adm && pv && sc_policy_saturated(pv->eps[e], adm, now))
                continue;
            set[n++] = e;
        }
        while (n > 0) {
            unsigned e = p2c(r, set, n);
            struct sc_pol_ep *pe = pv ? pv->eps[e] : NULL;
            if (!pe || !pe->has_breaker ||
                sc_breaker_allow(&pe->br, now, sc_policy_breaker_cb, pe)) {
                r->brk = pe && pe->has_breaker ? pe : NULL;
                return (int)e;
            }
            breaker_refused = 1;
            for (unsigned i = 0; i < n; i++)
                if (set[i] == e) {
                    set[i] = set[--n];
                    break;
                }
        }
    }
    return breaker_refused ? PICK_BREAKER : PICK_NONE;
}

/* ------------------------------------------------------------------------ */
/* The request body's model, for model fallbacks. */

/* Replaces the body's "model" value with the JSON string of name (or adds
 * the member when the body had none). 0 or -errno. */
static int body_set_model(struct sc_req *r, const char *name, size_t nlen)
{
    struct mg_buf *t = &r->w->scratch;
    size_t off = r->model_off, old = r->model_span, pre = 0;
    int comma = 0, rc;
    if (!old) {
        /* No "model" member: one goes right after the object's '{'. */
        const char *b = r->body.len ? mg_buf_head(&r->body) : "";
        size_t i = 0;
        while (i < r->body.len && b[i] != '{')
            i++;
        if (i >= r->body.len)
            return -EINVAL;
        size_t j = i + 1;
        while (j < r->body.len && (b[j] == ' ' || b[j] == '\n' || b[j] == '\r' || b[j] == '\t'))
            j++;
        comma = j < r->body.len && b[j] != '}';   /* an empty object needs no separator */
        off = i + 1;
        pre = 8;
    }
    mg_buf_reset(t);
    if ((pre && (rc = mg_buf_append_str(t, "\"model\":")) < 0) ||
        (rc = json_str(t, name, nlen)) < 0 || (comma && (rc = mg_buf_append_str(t, ",")) < 0))
        return rc;
    size_t add = t->len;
    size_t grow = add > old ? add - old : 0;
    r->body.max = r->body.len + grow + 1;
    if (grow && (rc = mg_buf_reserve(&r->body, grow)) < 0)
        return rc;
    char *b = mg_buf_head(&r->body);
    memmove(b + off + add, b + off + old, r->body.len - off - old);
    memcpy(b + off, mg_buf_head(t), add);
    r->body.len = r->body.len - old + add;
    r->model_off = off + pre;
    r->model_span = add - pre - (size_t)comma;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Answers of the fallback chain's end. */

static void hop_add(struct sc_req *r, const char *prefix, const char *name)
{
    int n = snprintf(r->hops + r->hops_len, sizeof r->hops - r->hops_len, "%s%s%s",
                     r->hops_len ? ">" : "", prefix, name);
    if (n > 0)
        r->hops_len = (uint16_t)(r->hops_len + (size_t)n < sizeof r->hops
                                     ? r->hops_len + (size_t)n
                                     : sizeof r->hops - 1);
}

static void respond_static(struct sc_req *r, const struct sc_fallback *f)
{
    struct sc_worker *w = r->w;
    r->is_static = 1;
    r->ver = NULL;
    if (f->status >= 300) {
        r->retry_after = 1;
        req_error(r, f->status, f->status == 429 ? "rate_limit_error" : "server_error",
                  "static_fallback", NULL, "%s", f->message);
        return;
    }
    struct mg_buf *b = &w->scratch;
    mg_buf_reset(b);
    char id[40];
    snprintf(id, sizeof id, "chatcmpl-%.24s", r->reqid);
    long long now = (long long)time(NULL);
    const char *model = r->model_len ? r->model : r->route0->model;
    size_t ml = r->model_len ? r->model_len : strlen(r->route0->model);
    if (r->stream) {
        mg_buf_printf(b, "data: {\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
                         "\"model\":", id, now);
        json_str(b, model, ml);
        mg_buf_append_str(b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                             "\"content\":");
        json_str(b, f->content, strlen(f->content));
        mg_buf_printf(b, "},\"finish_reason\":null}]}\n\ndata: {\"id\":\"%s\",\"object\":"
                         "\"chat.completion.chunk\",\"created\":%lld,\"model\":", id, now);
        json_str(b, model, ml);
        mg_buf_append_str(b, ",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"
                             "\n\ndata: [DONE]\n\n");
    } else {
        mg_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,\"model\":",
                      id, now);
        json_str(b, model, ml);
        mg_buf_append_str(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                             "\"content\":");
        json_str(b, f->content, strlen(f->content));
        mg_buf_append_str(b, "},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":0,"
                             "\"completion_tokens\":0,\"total_tokens\":0}}\n");
    }
    struct mg_h1_header h[10];
    unsigned n = base_headers(r, h, r->stream ? "text/event-stream" : "application/json");
    r->status = f->status;
    r->bytes = b->len;
    mg_httpd_respond(r->down, f->status, h, n, mg_buf_head(b), b->len);
}

/* The last failure, as the client gets it when nothing else is left. */
static void answer_failure(struct sc_req *r)
{
    if (r->held_status) {
        struct sc_worker *w = r->w;
        struct mg_h1_header h[10];
        unsigned n = base_headers(r, h, r->held_ctype_len ? r->held_ctype : "application/json");
        if (r->held_ra_len)
            h[n++] = (struct mg_h1_header){.name = "Retry-After", .name_len = 11,
                                           .value = r->held_ra, .value_len = r->held_ra_len};
        r->status = r->held_status;
        r->bytes = r->held.len;
        (void)w;
        mg_httpd_respond(r->down, r->held_status, h, n, r->held.len ? mg_buf_head(&r->held) : "",
                         r->held.len);
        return;
    }
    const char *vname = r->ver ? r->ver->cv->name : "-";
    switch (r->uperr) {
    case SC_UPERR_IDLE_TIMEOUT:
        req_error(r, 504, "upstream_error", "upstream_timeout", NULL,
                  "the upstream stopped sending for longer than the route's idle timeout "
                  "(%u ms)", (unsigned)r->route->timeouts.idle);
        break;
    case SC_UPERR_FIRST_TOKEN_TIMEOUT:
        req_error(r, 504, "upstream_error", "first_token_timeout", NULL,
                  "the upstream sent no response within the route's firstToken "
                  "timeout (%u ms)", (unsigned)r->route->timeouts.first_token);
        break;
    case SC_UPERR_PER_TRY_TIMEOUT:
        req_error(r, 504, "upstream_error", "upstream_timeout", NULL,
                  "no try got a response within retries.perTryTimeout (%u ms)",
                  r->route->retries ? (unsigned)r->route->retries->per_try_ms : 0u);
        break;
    case SC_UPERR_TOTAL_TIMEOUT:
        req_error(r, 504, "upstream_error", "total_timeout", NULL,
                  "the upstream did not complete the response within the route's total "
                  "timeout (%u ms)", (unsigned)r->route->timeouts.total);
        break;
    case SC_UPERR_PROTOCOL:
        req_error(r, 502, "upstream_error", "upstream_protocol_error", NULL,
                  "the upstream's response is not valid HTTP");
        break;
    case SC_UPERR_LOCAL:
        req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                  "model %s version %s: a local failure (out of memory or file descriptors)",
                  r->route->model, vname);
        break;
    case -1:
        if (r->breaker_refused)
            req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                      "model %s version %s: every endpoint's circuit breaker is open",
                      r->route->model, vname);
        else
            req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                      "no endpoint of model %s version %s could be resolved", r->route->model,
                      vname);
        break;
    default:
        req_error(r, 503, "upstream_error", "upstream_unavailable", NULL,
                  "no endpoint of model %s version %s is reachable: %s", r->route->model, vname,
                  r->uperr_detail[0] ? r->uperr_detail : sc_uperr_names[r->uperr]);
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Tries, retries and the fallback chain. */

static void try_start(struct sc_req *r);

static void set_version(struct sc_req *r, unsigned vi)
{
    r->vi = vi;
    r->ver = &r->rr->versions[vi];
    memset(r->tried, 0, sizeof r->tried);
}

/* Takes the next usable hop of route0's fallback chain for reason
 * (long_only: only hops marked longContext). 1 when the request went on
 * (or was answered by a static hop), 0 when the chain has nothing left. */
static int fallback_next(struct sc_req *r, const char *reason, int long_only)
{
    const struct sc_route *r0 = r->route0;
    const struct sc_config *cfg = r->rt->cfg;
    char from[80];
    snprintf(from, sizeof from, "%s%s", r->route != r0 ? "model:" : "",
             r->route != r0 ? r->route->model : r->ver ? r->ver->cv->name : "");
    while (r->fb_next < (int)r0->nfallback) {
        const struct sc_fallback *f = &r0->fallback[r->fb_next++];
        if (long_only && !f->long_context)
            continue;
        if (f->kind == SC_FB_STATIC) {
            hop_add(r, "", "static");
            r->nhops++;
            count4(sc_g.m.fallbacks, r0->model, from, "static", reason);
            respond_static(r, f);
            return 1;
        }
        const struct sc_route *to = r0;
        if (f->kind == SC_FB_VERSION) {
            if (r->route == r0 && r->ver && f->version == r->vi && !long_only)
                continue;   /* the version that just failed */
        } else {
            to = sc_config_route(cfg, f->model, strlen(f->model));
            if (!to || to->wildcard)
                continue;
        }
        if (!budget_take(r, 1))
            continue;   /* only a static hop may follow */
        if (to != r->route || (to == r0 && r->spliced)) {
            const char *name = to == r0 ? r->model : to->model;
            size_t nl = to == r0 ? r->model_len : strlen(to->model);
            if (to == r0 && !r->model_len)
                name = NULL;
            if (name && body_set_model(r, name, nl) < 0) {
                budget_give(r);
                continue;
            }
            r->spliced = to != r0;
        }
        r->route = to;
        r->rr = &r->rt->routes[to - cfg->routes];
        r->pol = sc_policy_route(cfg, to);
        unsigned vi = f->version;
        if (f->kind == SC_FB_MODEL) {
            int pv = sc_route_pick_version(to, req_header_cb, r->down, &r->w->rng, NULL);
            if (pv < 0 || (unsigned)pv >= to->nversions) {
                budget_give(r);
                continue;
            }
            vi = (unsigned)pv;
        }
        set_version(r, vi);
        char toname[300];
        if (f->kind == SC_FB_MODEL)
            snprintf(toname, sizeof toname, "model:%s", to->model);
        else
            snprintf(toname, sizeof toname, "%s", r->ver->cv->name);
        hop_add(r, "", toname);
        r->nhops++;
        count4(sc_g.m.fallbacks, r0->model, from, toname, reason);
        r->held_status = 0;
        try_start(r);
        return 1;
    }
    return 0;
}

static int retry_matches(const struct sc_retries *rt, enum fail_cls cls, int status)
{
    switch (cls) {
    case F_CONNECT: return (rt->on & SC_RETRY_CONNECT) != 0;
    case F_RESET: return (rt->on & SC_RETRY_RESET) != 0;
    case F_TIMEOUT: return (rt->on & SC_RETRY_TIMEOUT) != 0;
    case F_STATUS:
        return status > 0 && status < SC_STATUS_MAX && (rt->status[status / 8] >> (status % 8) & 1);
    default: return 0;
    }
}

static const char *cls_reason(enum fail_cls cls, int status, char *buf, size_t n)
{
    switch (cls) {
    case F_CONNECT: return "connect-failure";
    case F_RESET: return "reset";
    case F_TIMEOUT: return "timeout";
    case F_CONTEXT: return "context_length";
    case F_PROTOCOL: return "protocol";
    case F_STATUS: snprintf(buf, n, "%d", status); return buf;
    default: return "unavailable";
    }
}

/* A try failed before any byte reached the client: retry, fall back or
 * answer. The upstream request is over (upstream_over ran). */
static void try_failed(struct sc_req *r, enum fail_cls cls, int status)
{
    char rb[16];
    const char *reason = cls_reason(cls, status, rb, sizeof rb);
    r->last_cls = (uint8_t)cls;
    if (cls == F_CONTEXT) {
        if (!fallback_next(r, "context_length", 1))
            answer_failure(r);
        return;
    }
    const struct sc_retries *rt = r->route->retries;
    if (rt && r->retries < rt->attempts && retry_matches(rt, cls, status)) {
        if (budget_take(r, 0)) {
            r->retries++;
            count3(sc_g.m.retries, r->route->model, r->ver->cv->name, reason);
            /* Full jitter: uniform in [0, min(max, base * 2^(n-1))]. */
            uint64_t cap = (uint64_t)rt->backoff_base_ms << (r->retries - 1 < 16 ? r->retries - 1 : 16);
            if (cap > rt->backoff_max_ms)
                cap = rt->backoff_max_ms;
            uint64_t d = cap ? sc_rng_next(&r->w->rng) % (cap + 1) : 0;
            r->phase = PH_BACKOFF;
            mg_timer_start(r->w->loop, &r->timer, d);
            return;
        }
        /* Refused by the budget: a fallback may still answer (a static
         * one; upstream hops need the budget too). */
    }
    /* The chain takes failures and overload (5xx, 429), not a 4xx that
     * was only listed for retries. */
    int eligible = cls != F_STATUS || status >= 500 || status == 429;
    if (eligible && r->route0->nfallback && fallback_next(r, reason, 0))
        return;
    answer_failure(r);
}

/* Sends the current try to endpoint ep. */
static void try_send(struct sc_req *r, unsigned ep)
{
    struct sc_worker *w = r->w;
    struct sc_rt_version *v = r->ver;
    const struct sc_route *route = r->route;
    r->ep = ep;
    r->tried[ep / 64] |= (uint64_t)1 << (ep % 64);
    char peer[64];
    int pl = mg_httpd_req_peer(r->down, peer, sizeof peer);
    int rc = build_upstream_head(&r->head, mg_httpd_req_msg(r->down),
                                 mg_httpc_endpoint_name(v->eps[ep]), r->reqid, r->reqid_len,
                                 r->traceparent, r->body.len, pl > 0 ? peer : NULL);
    if (rc < 0) {
        slot_release(r);
        budget_give(r);
        req_error(r, 500, "server_error", NULL, NULL, "cannot build the upstream request: %s",
                  strerror(-rc));
        return;
    }
    struct mg_httpc_req *up = &r->up;
    memset(up, 0, sizeof *up);
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
    uint64_t now_ns = mg_now_ns();
    if (!r->t_sent_ns)
        r->t_sent_ns = now_ns;
    r->t_try_ns = now_ns;
    r->umsg = NULL;
    r->got_body = 0;
    r->holding = 0;
    r->reported = 0;
    r->uperr = -1;   /* the outcome of this try from now on */
    r->tries++;
    rc = mg_httpc_send(w->cl, v->eps[ep], up);
    if (rc < 0) {
        uperr_count(r, rc == -ENOMEM ? SC_UPERR_LOCAL : SC_UPERR_CONNECT);
        snprintf(r->uperr_detail, sizeof r->uperr_detail, "connect failed (%s)", strerror(-rc));
        if (rc != -ENOMEM)
            ep_failed(r);
        try_report(r, 0);
        slot_release(r);
        budget_give(r);
        try_failed(r, F_CONNECT, 0);
        return;
    }
    r->up_active = 1;
    r->phase = PH_UP;
    v->inflight[ep]++;
    if (r->pol && r->pol->versions) {
        r->pep = r->pol->versions[r->vi].eps[ep];
        atomic_fetch_add_explicit(&r->pep->inflight, 1, memory_order_relaxed);
    }
    uint64_t now = mg_loop_now(w->loop);
    r->ft_deadline = route->timeouts.first_token ? now + route->timeouts.first_token : 0;
    r->try_deadline = route->retries && route->retries->per_try_ms
                          ? now + route->retries->per_try_ms
                          : 0;
    if (!r->total_deadline && route->timeouts.total)
        r->total_deadline = now + route->timeouts.total;
    req_arm(r);
}

/* The next try on the current version: a slot, an endpoint, the send. */
static void try_start(struct sc_req *r)
{
    r->phase = PH_IDLE;
    if (!slot_take(r)) {
        const struct sc_breaker_cfg *bc = r->route->breaker;
        if (bc->max_pending && bc->pending_timeout_ms && r->ver->npend < bc->max_pending) {
            pend_push(r, bc->pending_timeout_ms);
            return;
        }
        budget_give(r);
        overload(r, "max_concurrent",
                 "model %s version %s is at its concurrency limit (circuitBreaker.maxConcurrent "
                 "and maxPending); retry later", r->ver->cv->name);
        return;
    }
    int ep = pick_endpoint(r);
    if (ep < 0) {
        slot_release(r);
        budget_give(r);
        if (ep == PICK_SHED) {
            overload(r, "saturated",
                     "every endpoint of model %s version %s is saturated and the request's "
                     "priority is sheddable", r->ver->cv->name);
            return;
        }
        if (ep == PICK_BREAKER)
            r->breaker_refused = 1;
        const char *reason = ep == PICK_BREAKER ? "breaker_open" : "unavailable";
        if (r->route0->nfallback && fallback_next(r, reason, 0))
            return;
        answer_failure(r);
        return;
    }
    try_send(r, (unsigned)ep);
}

static void pend_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct sc_worker *w = t->data;
    /* Oldest first; a version with no free slot keeps its waiters. */
    for (struct sc_req *r = w->pend_head, *next; r; r = next) {
        next = r->pend_next;
        if (!slot_take(r))
            continue;
        pend_remove(r);
        try_start(r);
    }
    if (w->npend)
        mg_timer_start(loop, &w->pend_timer, PEND_TICK_MS);
}

/* ------------------------------------------------------------------------ */
/* Mid-stream failures: once bytes reached the client. */

static void midstream_fail(struct sc_req *r, enum sc_uperr k)
{
    struct sc_rt_version *v = r->ver;
    count3(sc_g.m.stream_errors, r->route->model, v ? v->cv->name : "", sc_uperr_names[k]);
    r->stream_error = 1;
    if (!r->sse_out || r->ended) {
        mg_httpd_abort(r->down);   /* no way to say it in this framing */
        return;
    }
    struct mg_buf *b = &r->w->scratch;
    mg_buf_reset(b);
    char close[4];
    /* Held back, the client's stream stops between events. */
    size_t cl = r->sse_hold ? 0 : sc_sse_close_event(&r->sse, close);
    mg_buf_reset(&r->pend);
    mg_buf_append(b, close, cl);
    mg_buf_append_str(b, "data: {\"error\":{\"message\":");
    char msg[200];
    int ml = snprintf(msg, sizeof msg, "the model server's stream broke off (%s); the reply is "
                                       "incomplete", sc_uperr_names[k]);
    json_str(b, msg, (size_t)(ml > 0 ? ml : 0));
    mg_buf_printf(b, ",\"type\":\"upstream_error\",\"param\":null,\"code\":\"%s\"}}\n\n"
                     "data: [DONE]\n\n", sc_uperr_names[k]);
    int rc = mg_httpd_write(r->down, mg_buf_head(b), b->len);
    if (rc >= 0) {
        r->bytes += b->len;
        rc = mg_httpd_end(r->down);
    }
    if (rc < 0 && rc != -ENOTCONN)
        mg_httpd_abort(r->down);
}

/* ------------------------------------------------------------------------ */
/* The upstream exchange. */

static void req_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct sc_req *r = t->data;
    uint64_t now = mg_loop_now(loop);
    switch (r->phase) {
    case PH_PENDING:
        pend_remove(r);
        overload(r, "pending_timeout",
                 "model %s version %s: no concurrency slot freed within "
                 "circuitBreaker.pendingTimeout", r->ver->cv->name);
        return;
    case PH_BACKOFF:
        try_start(r);
        return;
    case PH_UP:
        break;
    default:
        return;
    }
    if (!r->up_active)
        return;
    enum sc_uperr k;
    if (r->total_deadline && now >= r->total_deadline)
        k = SC_UPERR_TOTAL_TIMEOUT;
    else if (!r->got_body && r->ft_deadline && now >= r->ft_deadline)
        k = SC_UPERR_FIRST_TOKEN_TIMEOUT;
    else if (!r->got_body && r->try_deadline && now >= r->try_deadline)
        k = SC_UPERR_PER_TRY_TIMEOUT;
    else {
        req_arm(r);
        return;
    }
    upstream_cancel(r);
    uperr_count(r, k);
    if (r->started) {
        midstream_fail(r, k);
        return;
    }
    try_report(r, 0);
    r->held_status = 0;
    if (k == SC_UPERR_TOTAL_TIMEOUT) {
        answer_failure(r);
        return;
    }
    try_failed(r, F_TIMEOUT, 0);
}

/* The upstream head is kept, not passed on yet: our response starts with
 * the first body bytes, so that a body that came whole with its head
 * leaves in one write (head and body together), a first-token timeout
 * can still be answered with a clean 504, and an error status can still
 * be retried or fall back. */
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

/* Whether a response of this status is held (read whole, up to
 * HELD_MAX, before anything is passed on) because a retry or a fallback
 * may replace it. */
static int should_hold(const struct sc_req *r, int st)
{
    const struct sc_retries *rt = r->route->retries;
    if (st < 400)
        return 0;
    if (rt && r->retries < rt->attempts && st < SC_STATUS_MAX && (rt->status[st / 8] >> (st % 8) & 1))
        return 1;
    const struct sc_route *r0 = r->route0;
    for (int i = r->fb_next; i < (int)r0->nfallback; i++) {
        if ((st >= 500 || st == 429))
            return 1;
        if ((st == 400 || st == 413 || st == 422) && r0->fallback[i].long_context)
            return 1;
    }
    return 0;
}

/* A context-length refusal: vLLM ("This model's maximum context length is
 * N tokens", "... longer than the maximum model length of N"), TGI
 * ("`inputs` tokens + `max_new_tokens` must be <= N", "`inputs` must have
 * less than N tokens"), OpenAI ("context_length_exceeded"), modelsim
 * (vLLM's text). */
static int is_context_error(int st, const char *b, size_t n)
{
    static const char *const pats[] = {"maximum context length", "context_length_exceeded",
                                       "maximum model length", "must be <=",
                                       "must have less than", "context length", NULL};
    if (st != 400 && st != 413 && st != 422)
        return 0;
    for (unsigned i = 0; pats[i]; i++)
        if (n && memmem(b, n, pats[i], strlen(pats[i])))
            return 1;
    return 0;
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
    r->sse_hold = kind == SC_BODY_SSE && m->framing != MG_H1_BODY_LENGTH;
    mg_buf_reset(&r->pend);
    /* 429 and 5xx mean overload or failure to the breaker; any other
     * answer is the endpoint working. */
    try_report(r, !(m->status == 429 || m->status >= 500));
    if (should_hold(r, m->status)) {
        r->holding = 1;
        mg_buf_reset(&r->held);
        r->held.max = HELD_MAX;
    }
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
    for (unsigned i = 0; i < m->nheaders && nh < MG_H1_MAX_HEADERS; i++) {
        const struct mg_h1_header *uh = &m->headers[i];
        if (skip_common(uh) || name_is(uh, "x-modelgate-version", 19) ||
            name_is(uh, "x-modelgate-fallback", 20) || name_is(uh, "x-modelgate-retries", 19) ||
            (nconn && listed_in_connection(m, conn, nconn, uh)))
            continue;
        h[nh++] = *uh;
    }
    nh += policy_headers(r, h + nh);
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
        r->sse_out = r->sse.kind == SC_BODY_SSE && len < 0;
        return 0;
    }
fail:
    upstream_cancel(r);
    if (rc == -ENOTCONN)
        return -1;   /* the client is gone: on_end follows */
    uperr_count(r, SC_UPERR_PROTOCOL);
    req_error(r, 502, "upstream_error", "upstream_protocol_error", NULL,
              "the upstream's response head cannot be passed on (%s)", strerror(-rc));
    return -1;
}

/* Writes to the client (starting the response at the first bytes). 0,
 * 1 (paused: the client is slow), or -1 when the request was given up. */
static int down_write(struct sc_req *r, const char *p, size_t n, int whole_ok)
{
    if (!r->started) {
        const struct mg_h1_msg *m = r->umsg;
        int whole = whole_ok && m->framing == MG_H1_BODY_LENGTH && m->content_length == n;
        if (down_start(r, p, n, whole) < 0)
            return -1;
        if (r->ended)
            return 0;
    }
    if (!n)
        return 0;
    int rc = mg_httpd_write(r->down, p, n);
    if (rc >= 0)
        r->bytes += n;
    if (rc < 0) {
        upstream_cancel(r);
        if (rc != -ENOTCONN)
            mg_httpd_abort(r->down);
        return -1;
    }
    return rc;
}

/* Body bytes on their way to the client (not held). An event stream is
 * passed on whole events at a time: the tail of an event not complete
 * yet waits (at most SSE_PEND_MAX) for the rest, so a broken event is
 * never passed on — the client gets the events before it, then the error
 * event. Events arrive whole from vLLM and TGI (one span each), so this
 * costs nothing in the usual case. */
static void body_out(struct sc_req *r, const char *p, size_t n)
{
    int first = r->sse.first_ns == 0;
    uint64_t gap;
    uint64_t now = mg_now_ns();
    uint32_t bad = r->sse.malformed;
    unsigned k = sc_sse_feed(&r->sse, p, n, now, &gap);
    if (first && (r->ft_deadline || r->try_deadline))
        req_arm(r);   /* only the total timeout is left */
    if (k && gap && r->ver->itl) {
        /* k tokens that arrived together share the gap. */
        double per = (double)gap / 1e9 / k;
        for (unsigned i = 0; i < k && i < 64; i++)
            mg_histogram_observe(r->ver->itl, per);
    }
    if (!r->sse_hold) {
        int rc = down_write(r, p, n, 1);
        if (rc == 1)
            mg_httpc_pause(&r->up);
        return;
    }
    uint64_t base = r->sse.bytes - n;              /* body offset of p[0] */
    uint64_t start = base - r->pend.len;           /* of the first byte not sent */
    uint64_t upto = r->sse.good_end > start ? r->sse.good_end : start;
    int rc = 0;
    if (upto > start) {
        size_t from_pend = upto - start < r->pend.len ? (size_t)(upto - start) : r->pend.len;
        if (from_pend)
            rc = down_write(r, mg_buf_head(&r->pend), from_pend, 0);
        if (rc >= 0)
            mg_buf_consume(&r->pend, from_pend);
        if (rc >= 0 && upto > base) {
            size_t k2 = (size_t)(upto - base);
            int rc2 = down_write(r, p, k2, 0);
            rc = rc2 < 0 ? rc2 : rc | rc2;
            p += k2;
            n -= k2;
        }
        if (rc < 0)
            return;
    }
    if (r->sse.malformed != bad) {
        /* A broken event: the stream cannot be trusted past it. */
        mg_buf_reset(&r->pend);
        upstream_cancel(r);
        uperr_count(r, SC_UPERR_MALFORMED);
        if (!r->started) {
            /* Nothing reached the client: a failed try like any other. */
            try_report(r, 0);
            try_failed(r, F_PROTOCOL, 0);
            return;
        }
        midstream_fail(r, SC_UPERR_MALFORMED);
        return;
    }
    if (n && mg_buf_append(&r->pend, p, n) < 0) {
        /* An event larger than we hold: pass it on as it comes. */
        r->sse_hold = 0;
        rc = r->pend.len ? down_write(r, mg_buf_head(&r->pend), r->pend.len, 0) : 0;
        mg_buf_reset(&r->pend);
        if (rc >= 0) {
            int rc2 = down_write(r, p, n, 0);
            rc = rc2 < 0 ? rc2 : rc | rc2;
        }
        if (rc < 0)
            return;
    }
    if (rc == 1)
        mg_httpc_pause(&r->up);
}

static void up_body(struct mg_httpc_req *up, const char *p, size_t n)
{
    struct sc_req *r = up->data;
    r->got_body = 1;
    if (r->holding) {
        if (mg_buf_append(&r->held, p, n) == 0)
            return;
        /* Too large to hold: it is the answer after all, as it came. */
        r->holding = 0;
        if (r->held.len) {
            body_out(r, mg_buf_head(&r->held), r->held.len);
            mg_buf_reset(&r->held);
            if (!r->up_active || r->ended)
                return;
        }
    }
    body_out(r, p, n);
}

static void down_writable(struct mg_httpd_req *hr)
{
    struct sc_req *r = mg_httpd_req_data(hr);
    if (r && r->up_active)
        mg_httpc_resume(&r->up);
}

/* Keeps what answer_failure needs of a held response once the upstream
 * request (and its head) is gone. */
static void hold_meta(struct sc_req *r, const struct mg_h1_msg *m)
{
    r->held_status = m->status;
    r->held_ctype_len = r->held_ra_len = 0;
    int i = mg_h1_find_header(m, "content-type", 0);
    if (i >= 0 && m->headers[i].value_len < sizeof r->held_ctype) {
        memcpy(r->held_ctype, m->headers[i].value, m->headers[i].value_len);
        r->held_ctype[m->headers[i].value_len] = '\0';
        r->held_ctype_len = (uint16_t)m->headers[i].value_len;
    }
    i = mg_h1_find_header(m, "retry-after", 0);
    if (i >= 0 && m->headers[i].value_len < sizeof r->held_ra) {
        memcpy(r->held_ra, m->headers[i].value, m->headers[i].value_len);
        r->held_ra[m->headers[i].value_len] = '\0';
        r->held_ra_len = (uint16_t)m->headers[i].value_len;
    }
}

static void up_done(struct mg_httpc_req *up)
{
    struct sc_req *r = up->data;
    if (r->holding) {
        const struct mg_h1_msg *m = r->umsg;
        hold_meta(r, m);
        upstream_over(r);
        r->holding = 0;
        int ctx = is_context_error(m->status, mg_buf_head(&r->held), r->held.len);
        try_failed(r, ctx ? F_CONTEXT : F_STATUS, m->status);
        return;
    }
    upstream_over(r);
    sc_sse_finish(&r->sse);
    if (r->ended)
        return;   /* answered whole with the body */
    if (r->pend.len) {
        /* The stream ended inside an event: pass the rest on as it is. */
        int rc = down_write(r, mg_buf_head(&r->pend), r->pend.len, 0);
        mg_buf_reset(&r->pend);
        if (rc < 0)
            return;
    }
    if (!r->started) {
        if (!r->umsg) {
            uperr_count(r, SC_UPERR_PROTOCOL);
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
    uperr_count(r, k);
    snprintf(r->uperr_detail, sizeof r->uperr_detail, "%s (%s)", mg_httpc_strerror(kind),
             err ? strerror(err) : "no detail");
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
        midstream_fail(r, k);
        return;
    }
    try_report(r, 0);
    r->holding = 0;
    r->held_status = 0;
    if (k == SC_UPERR_CONNECT || k == SC_UPERR_CONNECT_TIMEOUT || k == SC_UPERR_RESET)
        ep_failed(r);
    enum fail_cls cls;
    switch (k) {
    case SC_UPERR_CONNECT:
    case SC_UPERR_CONNECT_TIMEOUT: cls = F_CONNECT; break;
    case SC_UPERR_RESET: cls = F_RESET; break;
    case SC_UPERR_RESET_MID: cls = F_RESET; break;   /* mid-head or held body: nothing sent */
    case SC_UPERR_IDLE_TIMEOUT: cls = F_TIMEOUT; break;
    case SC_UPERR_LOCAL:
        answer_failure(r);
        return;
    default: cls = F_PROTOCOL; break;
    }
    try_failed(r, cls, 0);
}

static const char *req_header_cb(void *ctx, const char *name, size_t *len)
{
    return mg_httpd_req_header(ctx, name, len);
}

/* ------------------------------------------------------------------------ */
/* Rate limits (route0's): 0 admitted, -1 answered 429. */

static int rate_refuse(struct sc_req *r, const char *scope, uint64_t ra_ms, const char *what)
{
    count2(sc_g.m.rate_limited, r->route0->model, scope);
    r->retry_after = ra_ms ? retry_after_s(ra_ms) : 0;
    if (ra_ms)
        req_error(r, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                  "Rate limit reached for model %s (%s); retry after %d s", r->route0->model,
                  what, r->retry_after);
    else
        req_error(r, 429, "rate_limit_error", "rate_limit_exceeded", NULL,
                  "Request too large for model %s: it reserves more tokens than %s allows in "
                  "a minute; lower max_tokens", r->route0->model, what);
    return -1;
}

static int rate_admit(struct sc_req *r, long long max_tokens)
{
    struct sc_pol_route *pr = r->pol0 ? r->pol0->route : NULL;
    const struct sc_rate_cfg *rc = r->route0->rate;
    if (!pr || !rc)
        return 0;
    uint64_t now_us = mg_now_ns() / 1000, ra = 0;
    struct sc_rate *krps = NULL, *ktpm = NULL;
    if (pr->key_rps || pr->key_tpm) {
        size_t al = 0;
        const char *a = mg_httpd_req_header(r->down, "authorization", &al);
        if (a && al > 7 && strncasecmp(a, "Bearer ", 7) == 0) {
            const char *t = a + 7;
            size_t tl = al - 7;
            while (tl && *t == ' ')
                t++, tl--;
            uint64_t h = sc_rate_key_hash(t, tl);
            if (pr->key_rps && !(krps = sc_rate_table_get(pr->key_rps, h, now_us)))
                return rate_refuse(r, "key_table", 1000, "too many API keys are active at once");
            if (pr->key_tpm && !(ktpm = sc_rate_table_get(pr->key_tpm, h, now_us)))
                return rate_refuse(r, "key_table", 1000, "too many API keys are active at once");
        }
    }
    if (pr->has_rps && !sc_rate_take(&pr->rps, 1, now_us, &ra))
        return rate_refuse(r, "route", ra, "rateLimit.requestsPerSecond");
    if (krps && !sc_rate_take(krps, 1, now_us, &ra)) {
        if (pr->has_rps)
            sc_rate_settle(&pr->rps, 1, now_us);
        return rate_refuse(r, "key", ra, "rateLimit.perKey.requestsPerSecond");
    }
    double cost = max_tokens >= 0 ? (double)max_tokens : (double)rc->default_max_tokens;
    if (pr->has_tpm && cost > 0) {
        if (!sc_rate_take(&pr->tpm, cost, now_us, &ra)) {
            if (pr->has_rps)
                sc_rate_settle(&pr->rps, 1, now_us);
            if (krps)
                sc_rate_settle(krps, 1, now_us);
            return rate_refuse(r, "route_tokens", ra, "rateLimit.tokensPerMinute");
        }
        r->tpm_route = &pr->tpm;
    }
    if (ktpm && cost > 0) {
        if (!sc_rate_take(ktpm, cost, now_us, &ra)) {
            if (pr->has_rps)
                sc_rate_settle(&pr->rps, 1, now_us);
            if (krps)
                sc_rate_settle(krps, 1, now_us);
            if (r->tpm_route)
                sc_rate_settle(r->tpm_route, cost, now_us);
            r->tpm_route = NULL;
            return rate_refuse(r, "key_tokens", ra, "rateLimit.perKey.tokensPerMinute");
        }
        r->tpm_key = ktpm;
    }
    r->tpm_cost = cost;
    return 0;
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
    r->model_off = scan.model_off;
    r->model_span = scan.model_span;
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
    r->route = r->route0 = route;
    r->rr = &r->rt->routes[route - cfg->routes];
    r->pol = r->pol0 = sc_policy_route(cfg, route);
    if (r->pol0 && rate_admit(r, scan.max_tokens) < 0)
        return;
    struct sc_budget *bud = req_budget(r);
    if (bud) {
        sc_budget_request_start(bud);
        r->budgeted = 1;
    }
    size_t tl = 0;
    const char *tv = mg_httpd_req_header(r->down, "traceparent", &tl);
    make_traceparent(r->traceparent, tv, tl, &w->rng);
    int vi = sc_route_pick_version(route, req_header_cb, r->down, &w->rng, NULL);
    if (vi < 0 || (unsigned)vi >= route->nversions) {
        req_error(r, 503, "upstream_error", "no_version", NULL,
                  "no version of model %s takes traffic (every weight is 0 and no match rule "
                  "applies)", route->model);
        return;
    }
    set_version(r, (unsigned)vi);
    if (route->nfallback)
        hop_add(r, "", r->ver->cv->name);
    try_start(r);
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
    struct sc_codes *cc = v ? &v->codes : &w->pre;
    if (r->is_static)
        cc = &r->rt->routes[r->route0 - r->rt->cfg->routes].static_codes;
    mg_counter_inc(codes_get(cc, status));
    uint64_t tokens = 0;
    if (v) {
        mg_histogram_observe(v->duration, (double)(end - r->t0_ns) / 1e9);
        if (r->sse.first_ns && status >= 200 && status < 300)
            mg_histogram_observe(v->ttft, (double)(r->sse.first_ns - r->t_sent_ns) / 1e9);
        tokens = sc_sse_tokens(&r->sse);
        if (tokens)
            mg_counter_add(v->tokens, tokens);
    }
    if (!r->rt->cfg->access_log)
        return;
    const char *ep = v && r->tries && v->eps[r->ep] ? mg_httpc_endpoint_name(v->eps[r->ep]) : NULL;
    double dur = ms_between(r->t0_ns, end);
    const char *vname = r->is_static ? "static" : v ? v->cv->name : NULL;
    const char *err = r->uperr >= 0 ? sc_uperr_names[r->uperr] : NULL;
    const char *fb = r->nhops ? r->hops : NULL;
    if (r->sse.first_ns)
        mg_log_write(MG_LOG_INFO, "access", "request_id", MG_SN(r->reqid, r->reqid_len), "method",
                     MG_SN(r->method, r->method_len), "path", MG_SN(r->path, r->path_len), "model",
                     MG_SN(r->model, r->model_len), "version", MG_S(vname),
                     "endpoint", MG_S(ep), "status", MG_I(status), "bytes", MG_U(r->bytes),
                     "ttft_ms", MG_F(ms_between(r->t_sent_ns, r->sse.first_ns)), "duration_ms",
                     MG_F(dur), "tokens", MG_U(tokens), "stream", MG_B(r->stream),
                     "error", MG_S(err), "fallback", MG_S(fb), "retries", MG_U(r->retries), "attempts",
                     MG_U(r->tries), (char *)0);
    else
        mg_log_write(MG_LOG_INFO, "access", "request_id", MG_SN(r->reqid, r->reqid_len), "method",
                     MG_SN(r->method, r->method_len), "path", MG_SN(r->path, r->path_len), "model",
                     MG_SN(r->model, r->model_len), "version", MG_S(vname),
                     "endpoint", MG_S(ep), "status", MG_I(status), "bytes", MG_U(r->bytes),
                     "ttft_ms", MG_S(NULL), "duration_ms", MG_F(dur), "tokens", MG_U(tokens),
                     "stream", MG_B(r->stream), "error", MG_S(err), "fallback", MG_S(fb), "retries",
                     MG_U(r->retries), "attempts", MG_U(r->tries), (char *)0);
}

/* Gives back what the request held of the shared policy state: its
 * queue place, breaker probe, slot, budget and token reservations. */
static void req_release(struct sc_req *r)
{
    pend_remove(r);
    upstream_cancel(r);   /* nobody waits for the tokens any more */
    if (r->brk && !r->reported && r->tries)
        try_report(r, 1); /* the client left before an answer: not the endpoint's fault */
    slot_release(r);
    budget_give(r);
    mg_timer_stop(r->w->loop, &r->timer);
    r->phase = PH_IDLE;
    struct sc_budget *b = r->budgeted ? req_budget(r) : NULL;
    if (b)
        sc_budget_request_end(b);
    if (r->tpm_route || r->tpm_key) {
        /* Settled with the real usage; all of it back when nothing was
         * generated upstream (failed before, refused, static). */
        double used = r->tries && !r->is_static ? (double)sc_sse_tokens(&r->sse) : 0;
        uint64_t now_us = mg_now_ns() / 1000;
        if (r->tpm_route)
            sc_rate_settle(r->tpm_route, r->tpm_cost - used, now_us);
        if (r->tpm_key)
            sc_rate_settle(r->tpm_key, r->tpm_cost - used, now_us);
    }
}

static void down_end(struct mg_httpd_req *hr, enum mg_httpd_end reason)
{
    struct sc_req *r = mg_httpd_req_data(hr);
    struct sc_worker *w = r->w;
    req_release(r);
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
    struct mg_h1_header h[10];
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
    hc.error_body = http_error_body;
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
    mg_timer_init(&w->pend_timer, pend_timer_cb, w);
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
        mg_buf_free(&r->held);
        mg_buf_free(&r->pend);
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
    static const char *const mvr[] = {"model", "version", "reason", NULL};
    static const char *const mo[] = {"model", NULL};
    static const char *const mftr[] = {"model", "from", "to", "reason", NULL};
    static const char *const mve[] = {"model", "version", "endpoint", NULL};
    static const char *const mvet[] = {"model", "version", "endpoint", "to", NULL};
    static const char *const ms[] = {"model", "scope", NULL};
    static const char *const mr[] = {"model", "reason", NULL};
    if ((rc = mg_metrics_counter(m->reg, "modelgate_retries_total",
                                 "Retries sent, by the reason of the failed try (connect-failure, "
                                 "reset, timeout or the status).", mvr, &m->retries)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_retry_budget_refused_total",
                                 "Retries and fallback hops the retry budget refused.", mo,
                                 &m->budget_refused)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_fallbacks_total",
                                 "Fallback hops taken, from a version (or model:NAME) to a "
                                 "version, model:NAME or static, by reason.", mftr,
                                 &m->fallbacks)) < 0 ||
        (rc = mg_metrics_gauge(m->reg, "modelgate_breaker_state",
                               "Circuit breaker state per endpoint: 0 closed, 1 open, 2 "
                               "half-open.", mve, &m->breaker_state)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_breaker_transitions_total",
                                 "Circuit breaker state changes, by the new state.", mvet,
                                 &m->breaker_trans)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_rate_limited_total",
                                 "Requests refused 429 by a rate limit, by scope (route, key, "
                                 "route_tokens, key_tokens, key_table).", ms,
                                 &m->rate_limited)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_shed_total",
                                 "Requests refused for overload (max_concurrent, "
                                 "pending_timeout, saturated).", mr, &m->shed)) < 0 ||
        (rc = mg_metrics_counter(m->reg, "modelgate_stream_errors_total",
                                 "Responses that broke off after bytes reached the client, by "
                                 "kind.", mvk, &m->stream_errors)) < 0)
        return rc;
    static const char *const idle[] = {"idle", NULL}, *const active[] = {"active", NULL};
    static const char *const ok[] = {"ok", NULL}, *const refused[] = {"refused", NULL};
    /* Children per route and version: far more than the registry's default
     * cap may be legitimate (1024 routes of 16 versions). */
    struct mg_metric_family *per_route[] = {m->requests, m->duration, m->ttft, m->itl, m->tokens,
                                            m->uperr, m->retries, m->budget_refused,
                                            m->fallbacks, m->breaker_state, m->breaker_trans,
                                            m->rate_limited, m->shed, m->stream_errors};
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
