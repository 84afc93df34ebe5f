/* The admission poller (admission.h): main thread, one HTTP client, one
 * poll in flight per endpoint. */
#define _GNU_SOURCE
#include "sidecar/admission.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "sidecar/sidecar.h"

#define BODY_MAX ((size_t)1 << 20)

struct adm_target {
    struct sc_pol_ep *ep;              /* the table in force holds it (A.cfg) */
    struct mg_httpc_endpoint *hep;
    struct mg_httpc_req req;
    struct mg_buf body;
    struct mg_timer timer;
    uint32_t interval_ms, timeout_ms;
    int status;
    unsigned active : 1;
    unsigned warned : 1;
    char head[320];
    size_t head_len;
};

static struct {
    struct mg_loop *loop;
    struct mg_httpc *cl;
    struct sc_config *cfg;             /* a reference: keeps the targets' objects alive */
    struct adm_target *t;
    unsigned n;
} A;

/* The value after a metric name (and its labels) on one line. */
static int line_value(const char *p, const char *end, double *v)
{
    if (p < end && *p == '{') {
        int inq = 0;
        for (p++; p < end; p++) {
            if (inq && *p == '\\') {
                p++;
                continue;
            }
            if (*p == '"')
                inq = !inq;
            else if (*p == '}' && !inq)
                break;
        }
        if (p >= end)
            return -1;
        p++;
    }
    if (p >= end || (*p != ' ' && *p != '\t'))
        return -1;
    char num[64];
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    size_t l = 0;
    while (p < end && *p != ' ' && *p != '\t' && l < sizeof num - 1)
        num[l++] = *p++;
    num[l] = '\0';
    char *e;
    *v = strtod(num, &e);
    return l && *e == '\0' ? 0 : -1;
}

int sc_admission_parse(const char *p, size_t n, double *waiting, double *kv)
{
    static const char wn[] = "vllm:num_requests_waiting", kn[] = "vllm:kv_cache_usage_perc";
    const char *end = p + n;
    int seen = 0;
    *waiting = 0;
    *kv = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        double v;
        if (le - p > (long)sizeof wn - 1 && memcmp(p, wn, sizeof wn - 1) == 0 &&
            line_value(p + sizeof wn - 1, le, &v) == 0 && v >= 0) {
            *waiting += v;
            seen |= 1;
        } else if (le - p > (long)sizeof kn - 1 && memcmp(p, kn, sizeof kn - 1) == 0 &&
                   line_value(p + sizeof kn - 1, le, &v) == 0 && v >= 0) {
            if (v > *kv)
                *kv = v;
            seen |= 2;
        }
        p = le + 1;
    }
    return seen ? 0 : -ENOENT;
}

static void poll_start(struct adm_target *t);

static void poll_again(struct adm_target *t)
{
    mg_timer_start(A.loop, &t->timer, t->interval_ms);
}

static void on_head(struct mg_httpc_req *req, const struct mg_h1_msg *m)
{
    struct adm_target *t = req->data;
    t->status = m->status;
}

static void on_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct adm_target *t = req->data;
    if (mg_buf_append(&t->body, p, n) < 0) {
        mg_httpc_cancel(req);
        t->active = 0;
        atomic_fetch_add(&t->ep->poll_errors, 1);
        poll_again(t);
    }
}

static void on_done(struct mg_httpc_req *req)
{
    struct adm_target *t = req->data;
    t->active = 0;
    atomic_fetch_add(&t->ep->polls, 1);
    double w, kv;
    if (t->status == 200 &&
        sc_admission_parse(t->body.len ? mg_buf_head(&t->body) : "", t->body.len, &w, &kv) == 0) {
        if (kv > 1)
            kv = 1;
        atomic_store(&t->ep->waiting, w > 4e9 ? 4000000000u : (unsigned)(w + 0.5));
        atomic_store(&t->ep->kv_ppm, (unsigned)(kv * 1e6 + 0.5));
        atomic_store(&t->ep->polled_ms, mg_loop_now(A.loop));
        t->warned = 0;
    } else {
        atomic_fetch_add(&t->ep->poll_errors, 1);
        if (!t->warned)
            mg_log(MG_LOG_WARN, "admission: the endpoint's /metrics has no vLLM load figures; it "
                                "counts as saturated", "endpoint", MG_S(t->ep->endpoint),
                   "status", MG_I(t->status));
        t->warned = 1;
    }
    poll_again(t);
}

static void on_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    struct adm_target *t = req->data;
    t->active = 0;
    atomic_fetch_add(&t->ep->poll_errors, 1);
    if (!t->warned)
        mg_log(MG_LOG_WARN, "admission: cannot poll the endpoint's /metrics; it counts as "
                            "saturated once its figures are stale", "endpoint",
               MG_S(t->ep->endpoint), "error", MG_S(mg_httpc_strerror(kind)), "errno",
               MG_ERRNO(err));
    t->warned = 1;
    poll_again(t);
}

static void poll_start(struct adm_target *t)
{
    if (t->active)
        return;
    memset(&t->req, 0, sizeof t->req);
    mg_buf_reset(&t->body);
    t->status = 0;
    t->req.head = t->head;
    t->req.head_len = t->head_len;
    t->req.connect_timeout_ms = t->timeout_ms;
    t->req.head_timeout_ms = t->timeout_ms;
    t->req.read_timeout_ms = t->timeout_ms;
    t->req.on_head = on_head;
    t->req.on_body = on_body;
    t->req.on_done = on_done;
    t->req.on_error = on_error;
    t->req.data = t;
    int rc = mg_httpc_send(A.cl, t->hep, &t->req);
    if (rc < 0) {
        atomic_fetch_add(&t->ep->poll_errors, 1);
        poll_again(t);
        return;
    }
    t->active = 1;
}

static void timer_cb(struct mg_loop *loop, struct mg_timer *tm)
{
    poll_start(tm->data);
}

static void targets_free(void)
{
    for (unsigned i = 0; i < A.n; i++) {
        struct adm_target *t = &A.t[i];
        if (t->active)
            mg_httpc_cancel(&t->req);
        mg_timer_stop(A.loop, &t->timer);
        mg_buf_free(&t->body);
    }
    free(A.t);
    A.t = NULL;
    A.n = 0;
    sc_config_unref(A.cfg);
    A.cfg = NULL;
}

int sc_admission_install(struct mg_loop *loop, struct sc_config *cfg)
{
    targets_free();
    A.loop = loop;
    const struct sc_policy *p = cfg->policy;
    unsigned n = 0;
    for (unsigned i = 0; p && i < cfg->nroutes; i++)
        if (cfg->routes[i].admission && p->routes[i].versions)
            for (unsigned j = 0; j < cfg->routes[i].nversions; j++)
                n += cfg->routes[i].versions[j].nendpoints;
    if (!n)
        return 0;
    if (!A.cl) {
        struct mg_httpc_config cc;
        mg_httpc_config_default(&cc);
        cc.max_idle_per_endpoint = 2;
        int rc = mg_httpc_new(loop, &cc, &A.cl);
        if (rc < 0)
            return rc;
    }
    if (!(A.t = calloc(n, sizeof *A.t)))
        return -ENOMEM;
    sc_config_ref(cfg);
    A.cfg = cfg;
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct sc_route *r = &cfg->routes[i];
        if (!r->admission || !p->routes[i].versions)
            continue;
        for (unsigned j = 0; j < r->nversions; j++) {
            for (unsigned k = 0; k < r->versions[j].nendpoints; k++) {
                struct adm_target *t = &A.t[A.n];
                const char *err = NULL;
                t->ep = p->routes[i].versions[j].eps[k];
                if (mg_httpc_endpoint(A.cl, r->versions[j].endpoints[k], &t->hep, &err) < 0) {
                    mg_log(MG_LOG_WARN, "admission: endpoint not usable", "endpoint",
                           MG_S(r->versions[j].endpoints[k]), "error", MG_S(err));
                    continue;
                }
                mg_buf_init(&t->body, BODY_MAX);
                mg_timer_init(&t->timer, timer_cb, t);
                t->interval_ms = r->admission->interval_ms;
                t->timeout_ms = r->admission->stale_ms;
                int l = snprintf(t->head, sizeof t->head,
                                 "GET /metrics HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\n"
                                 "User-Agent: modelgate-sidecar\r\n\r\n",
                                 r->versions[j].endpoints[k]);
                t->head_len = l > 0 && (size_t)l < sizeof t->head ? (size_t)l : 0;
                A.n++;
                /* Spread the first polls over the interval. */
                mg_timer_start(loop, &t->timer, (uint64_t)A.n * 7 % (t->interval_ms + 1));
            }
        }
    }
    return 0;
}

void sc_admission_stop(void)
{
    targets_free();
    if (A.cl)
        mg_httpc_free(A.cl);
    A.cl = NULL;
}
