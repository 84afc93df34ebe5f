/* The admin port, served on the main thread: /metrics, /healthz, /readyz,
 * GET /config (the table in force), POST /config (a new table, behind a
 * bearer token) and GET /state (breakers, slots, saturation, budgets and
 * rate limits, JSON). Everything here reads the main thread's state (sc_g.cfg,
 * sc_g.generation) without locks, since only the main thread changes it;
 * the workers are read through their atomics. */
#define _GNU_SOURCE
#include "sidecar/sidecar.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/json.h"
#include "lib/log.h"

/* A scrape of many routes is large; a posted table is at most what a file
 * may hold. */
#define METRICS_MAX ((size_t)64 << 20)
#define CONFIG_POST_MAX ((size_t)4 << 20)
#define TOKEN_FILE_MAX 4096

static struct mg_httpd *admin_srv;

static void respond(struct mg_httpd_req *req, int status, const char *ctype, const void *body,
                    size_t len)
{
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", ctype),
                               MG_HTTPD_HDR("Cache-Control", "no-store")};
    mg_httpd_respond(req, status, h, 2, body, len);
}

static void respond_str(struct mg_httpd_req *req, int status, const char *text)
{
    respond(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* {"error":{"message":...,"type":...}} for admin errors too: one shape for
 * every error modelgate sends. */
static void respond_error(struct mg_httpd_req *req, int status, const char *type, const char *msg)
{
    json_t *o = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type", type,
                          "param", "code");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        respond_str(req, 500, "out of memory\n");
        return;
    }
    respond(req, status, "application/json", s, strlen(s));
    free(s);
}

static void respond_json(struct mg_httpd_req *req, int status, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    if (!s) {
        respond_error(req, 500, "server_error", "out of memory");
        return;
    }
    respond(req, status, "application/json", s, strlen(s));
    free(s);
}

/* ------------------------------------------------------------------------ */

static void get_metrics(struct mg_httpd_req *req)
{
    struct mg_buf b;
    mg_buf_init(&b, METRICS_MAX);
    int rc = mg_metrics_expose(sc_g.m.reg, &b);
    if (rc < 0) {
        mg_buf_free(&b);
        respond_error(req, 500, "server_error",
                      rc == -ENOBUFS ? "the exposition is larger than 64 MiB" : "out of memory");
        return;
    }
    respond(req, 200, MG_METRICS_CONTENT_TYPE, b.len ? mg_buf_head(&b) : "", b.len);
    mg_buf_free(&b);
}

static void get_readyz(struct mg_httpd_req *req)
{
    char why[256];
    if (atomic_load(&sc_g.draining)) {
        respond_str(req, 503, "shutting down\n");
        return;
    }
    for (unsigned i = 0; i < sc_g.nworkers; i++) {
        struct sc_worker *w = &sc_g.workers[i];
        if (!atomic_load(&w->ready)) {
            snprintf(why, sizeof why, "worker %u is not serving\n", i);
            respond_str(req, 503, why);
            return;
        }
        uint64_t g = atomic_load(&w->generation);
        if (g != sc_g.generation) {
            snprintf(why, sizeof why, "worker %u serves generation %llu, not %llu yet\n", i,
                     (unsigned long long)g, (unsigned long long)sc_g.generation);
            respond_str(req, 503, why);
            return;
        }
    }
    respond_str(req, 200, "ready\n");
}

/* The document in force with its generation and source beside the keys
 * of the table (a shallow copy: the document itself stays untouched). */
static void get_config(struct mg_httpd_req *req)
{
    struct sc_config *cfg = sc_g.cfg;
    json_t *o = json_copy(cfg->doc);
    if (!o || json_object_set_new(o, "generation", json_integer((json_int_t)cfg->generation)) < 0 ||
        json_object_set_new(o, "source", json_string(cfg->source ? cfg->source : "")) < 0) {
        json_decref(o);
        respond_error(req, 500, "server_error", "out of memory");
        return;
    }
    respond_json(req, 200, o);
    json_decref(o);
}

/* GET /state: the policy state of every route, version and endpoint of
 * the table in force (breakers, slots, saturation, budgets, buckets). The
 * figures are atomics read one by one: each is exact, together they are
 * a snapshot within a few microseconds. */
static json_t *state_rate(const struct sc_rate *r, uint64_t now_us, double burst)
{
    return json_pack("{s:f, s:f}", "available", sc_rate_available(r, now_us), "burst", burst);
}

static json_t *state_endpoint(const struct sc_route *r, const char *name,
                              const struct sc_pol_ep *e, uint64_t now)
{
    json_t *o = json_pack("{s:s}", "endpoint", name);
    if (!o || !e)
        return o;
    json_object_set_new(o, "inflight", json_integer(atomic_load(&e->inflight)));
    if (e->has_breaker) {
        enum sc_breaker_state st = sc_breaker_state(&e->br);
        uint64_t until = atomic_load(&e->br.open_until_ms);
        json_t *b = json_pack("{s:s, s:i, s:I, s:I, s:I}", "state", sc_breaker_state_name(st),
                              "stateCode", (int)st, "consecutiveFailures",
                              (json_int_t)atomic_load(&e->br.consecutive), "trips",
                              (json_int_t)atomic_load(&e->br.trips), "transitions",
                              (json_int_t)atomic_load(&e->br.transitions));
        if (b && st == SC_BREAKER_OPEN)
            json_object_set_new(b, "openForMs",
                                json_integer(until > now ? (json_int_t)(until - now) : 0));
        json_object_set_new(o, "breaker", b ? b : json_null());
    } else {
        json_object_set_new(o, "breaker", json_null());
    }
    if (r->admission) {
        uint64_t at = atomic_load(&e->polled_ms);
        json_t *a = json_pack("{s:b, s:I, s:f, s:I, s:I}", "saturated",
                              sc_policy_saturated(e, r->admission, now), "waiting",
                              (json_int_t)atomic_load(&e->waiting), "kvCacheUsage",
                              atomic_load(&e->kv_ppm) / 1e6, "polls",
                              (json_int_t)atomic_load(&e->polls), "pollErrors",
                              (json_int_t)atomic_load(&e->poll_errors));
        if (a)
            json_object_set_new(a, "ageMs", at && atomic_load(&e->polls)
                                                ? json_integer((json_int_t)(now > at ? now - at : 0))
                                                : json_null());
        json_object_set_new(o, "admission", a ? a : json_null());
    }
    return o;
}

static void get_state(struct mg_httpd_req *req)
{
    struct sc_config *cfg = sc_g.cfg;
    const struct sc_policy *p = cfg->policy;
    mg_loop_update_time(sc_g.main_loop);
    uint64_t now = mg_loop_now(sc_g.main_loop);
    uint64_t now_us = mg_now_ns() / 1000;
    json_t *routes = json_array();
    json_t *doc = json_pack("{s:I, s:o}", "generation", (json_int_t)cfg->generation, "routes",
                            routes ? routes : json_array());
    for (unsigned i = 0; doc && i < cfg->nroutes; i++) {
        const struct sc_route *r = &cfg->routes[i];
        const struct sc_policy_route *pr = p ? &p->routes[i] : NULL;
        json_t *ro = json_pack("{s:s}", "model", r->model);
        if (!ro)
            break;
        struct sc_pol_route *sr = pr ? pr->route : NULL;
        if (sr && sr->has_budget)
            json_object_set_new(ro, "retryBudget",
                                json_pack("{s:i, s:i, s:I, s:I, s:I}", "budgetPercent",
                                          (int)sr->budget.percent, "minRetries",
                                          (int)sr->budget.min_retries, "requestsInFlight",
                                          (json_int_t)atomic_load(&sr->budget.requests),
                                          "retriesInFlight",
                                          (json_int_t)atomic_load(&sr->budget.retries),
                                          "refused", (json_int_t)atomic_load(&sr->budget.refused)));
        if (sr && r->rate) {
            json_t *rl = json_object();
            if (rl && sr->has_rps)
                json_object_set_new(rl, "requestsPerSecond", state_rate(&sr->rps, now_us, r->rate->burst));
            if (rl && sr->has_tpm)
                json_object_set_new(rl, "tokensPerMinute", state_rate(&sr->tpm, now_us, r->rate->tpm));
            if (rl) {
                json_object_set_new(rl, "perKeyRequests", json_boolean(sr->key_rps != NULL));
                json_object_set_new(rl, "perKeyTokens", json_boolean(sr->key_tpm != NULL));
                json_object_set_new(rl, "keyTable", json_integer(r->rate->key_table));
            }
            json_object_set_new(ro, "rateLimit", rl ? rl : json_null());
        }
        json_t *vs = json_array();
        for (unsigned j = 0; vs && j < r->nversions; j++) {
            const struct sc_version *v = &r->versions[j];
            const struct sc_policy_version *pv = pr && pr->versions ? &pr->versions[j] : NULL;
            json_t *vo = json_pack("{s:s, s:i}", "name", v->name, "weight", (int)v->weight);
            if (!vo)
                break;
            if (pv) {
                json_object_set_new(vo, "inflight", json_integer(atomic_load(&pv->ver->inflight)));
                json_object_set_new(vo, "maxConcurrent", json_integer(pv->ver->max_concurrent));
                json_object_set_new(vo, "breakersOpen",
                                    json_integer(atomic_load(&pv->ver->group.open)));
            }
            json_t *es = json_array();
            for (unsigned k = 0; es && k < v->nendpoints; k++)
                json_array_append_new(es, state_endpoint(r, v->endpoints[k],
                                                         pv ? pv->eps[k] : NULL, now));
            json_object_set_new(vo, "endpoints", es ? es : json_array());
            json_array_append_new(vs, vo);
        }
        json_object_set_new(ro, "versions", vs ? vs : json_array());
        json_array_append_new(routes, ro);
    }
    if (!doc) {
        respond_error(req, 500, "server_error", "out of memory");
        return;
    }
    respond_json(req, 200, doc);
    json_decref(doc);
}

/* Each line of a formatted error list as one JSON string. */
static json_t *errs_array(const struct mg_json_errs *e)
{
    json_t *a = json_array();
    struct mg_buf b;
    mg_buf_init(&b, 1 << 20);
    if (a && mg_json_errs_format(e, &b) == 0 && b.len) {
        const char *p = mg_buf_head(&b), *end = p + b.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            if (n)
                json_array_append_new(a, json_stringn(p, n));
            p += n + 1;
        }
    }
    mg_buf_free(&b);
    return a;
}

/* Constant time in the length of the expected token, so a wrong guess
 * does not tell how much of it was right. */
static int token_equal(const char *got, size_t gl, const char *want, size_t wl)
{
    unsigned char d = gl != wl;
    for (size_t i = 0; i < wl; i++)
        d |= (unsigned char)(want[i] ^ (i < gl ? got[i] : 0));
    return d == 0;
}

/* 0 when the request carries the token; otherwise it was answered. */
static int check_token(struct mg_httpd_req *req)
{
    if (!sc_g.token_file) {
        respond_error(req, 403, "permission_error",
                      "POST /config is disabled: start the sidecar with --admin-token-file FILE "
                      "and send 'Authorization: Bearer <the token in FILE>'");
        return -1;
    }
    char *tok = NULL;
    size_t tl = 0;
    int rc = mg_read_file(sc_g.token_file, TOKEN_FILE_MAX, &tok, &tl);
    if (rc < 0) {
        mg_log(MG_LOG_ERROR, "cannot read the admin token file", "file", MG_S(sc_g.token_file),
               "error", MG_ERRNO(rc));
        respond_error(req, 500, "server_error", "the admin token file cannot be read");
        return -1;
    }
    while (tl > 0 && isspace((unsigned char)tok[tl - 1]))
        tl--;
    size_t start = 0;
    while (start < tl && isspace((unsigned char)tok[start]))
        start++;
    size_t hl = 0;
    const char *h = mg_httpd_req_header(req, "authorization", &hl);
    int ok = 0;
    if (tl > start && h && hl > 7 && strncasecmp(h, "Bearer ", 7) == 0) {
        const char *g = h + 7;
        size_t gl = hl - 7;
        while (gl > 0 && *g == ' ') {
            g++;
            gl--;
        }
        ok = token_equal(g, gl, tok + start, tl - start);
    }
    free(tok);
    if (!ok) {
        struct mg_h1_header hh[] = {MG_HTTPD_HDR("Content-Type", "application/json"),
                                    MG_HTTPD_HDR("WWW-Authenticate", "Bearer")};
        static const char body[] =
            "{\"error\":{\"message\":\"a valid 'Authorization: Bearer <token>' header is "
            "required\",\"type\":\"authentication_error\",\"param\":null,\"code\":null}}";
        mg_httpd_respond(req, 401, hh, 2, body, sizeof body - 1);
        return -1;
    }
    return 0;
}

static void post_config_body(struct mg_httpd_req *req, const char *body, size_t n)
{
    struct mg_json_errs errs, warns;
    mg_json_errs_init(&errs, 0);
    mg_json_errs_init(&warns, 0);
    struct sc_config *cfg = NULL;
    int rc = sc_config_parse(body, n, "POST /config", &cfg, &errs, &warns);
    if (rc < 0) {
        sc_count_refused();
        if (mg_json_errs_count(&errs) == 0)
            mg_json_errs_add(&errs, "", 0, 0, "%s", strerror(-rc));
        json_t *a = errs_array(&errs);
        mg_log(MG_LOG_WARN, "route table refused", "source", MG_S("POST /config"), "errors",
               MG_U(mg_json_errs_count(&errs)));
        json_t *o = json_pack("{s:o}", "errors", a ? a : json_array());
        respond_json(req, 400, o);
        json_decref(o);
        goto out;
    }
    uint64_t gen = sc_install(cfg);
    json_t *o = json_pack("{s:I, s:o}", "generation", (json_int_t)gen, "warnings",
                          errs_array(&warns));
    respond_json(req, 200, o);
    json_decref(o);
out:
    mg_json_errs_free(&errs);
    mg_json_errs_free(&warns);
}

/* ------------------------------------------------------------------------ */

static int target_is(const struct mg_h1_msg *m, const char *path)
{
    size_t n = strlen(path);
    if (m->target_len < n || memcmp(m->target, path, n) != 0)
        return 0;
    return m->target_len == n || m->target[n] == '?';
}

static int method_is(const struct mg_h1_msg *m, const char *lit)
{
    size_t l = strlen(lit);
    return m->method_len == l && memcmp(m->method, lit, l) == 0;
}

static void on_admin_request(struct mg_httpd_req *req, void *data)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    int get = method_is(m, "GET") || method_is(m, "HEAD");
    if (target_is(m, "/config") && method_is(m, "POST")) {
        if (check_token(req) == 0)
            mg_httpd_collect_body(req, CONFIG_POST_MAX, post_config_body);
        return;
    }
    const char *allow = NULL;
    if (target_is(m, "/metrics")) {
        if (get)
            get_metrics(req);
        else
            allow = "GET";
    } else if (target_is(m, "/healthz")) {
        if (get)
            respond_str(req, 200, "ok\n");
        else
            allow = "GET";
    } else if (target_is(m, "/readyz")) {
        if (get)
            get_readyz(req);
        else
            allow = "GET";
    } else if (target_is(m, "/config")) {
        if (get)
            get_config(req);
        else
            allow = "GET, POST";
    } else if (target_is(m, "/state")) {
        if (get)
            get_state(req);
        else
            allow = "GET";
    } else {
        respond_error(req, 404, "invalid_request_error",
                      "not found: the admin port serves /metrics, /healthz, /readyz, /config "
                      "and /state");
        return;
    }
    if (allow) {
        struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/json"),
                                   MG_HTTPD_HDR("Allow", allow)};
        static const char body[] = "{\"error\":{\"message\":\"method not allowed\",\"type\":"
                                   "\"invalid_request_error\",\"param\":null,\"code\":null}}";
        mg_httpd_respond(req, 405, h, 2, body, sizeof body - 1);
    }
}

int sc_admin_start(struct mg_loop *loop, const char *listen, const char **err)
{
    struct mg_httpd_config hc;
    mg_httpd_config_default(&hc);
    hc.listen = listen;
    hc.reuseport = 0;   /* one admin port per process: a second one must fail */
    hc.max_conns = 256;
    hc.max_output = METRICS_MAX + 64 * 1024;
    hc.on_request = on_admin_request;
    return mg_httpd_new(loop, &hc, &admin_srv, err);
}

int sc_admin_port(void)
{
    return admin_srv ? mg_httpd_port(admin_srv) : 0;
}

void sc_admin_stop(void)
{
    if (admin_srv)
        mg_httpd_free(admin_srv);
    admin_srv = NULL;
}
