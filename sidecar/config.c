/* The route table: loading, validation and the immutable struct sc_config
 * that every worker shares (contract in sidecar/config.h, reference in
 * docs/sidecar.md).
 *
 * Validation walks the whole document and records every problem with its
 * key path instead of stopping at the first: `--check` and a refused reload
 * must name them all, or an operator fixes one mistake per round trip.
 * The document kept in cfg->doc gets every default written in, so that
 * GET /config shows the table in force rather than what was typed. */
#include "sidecar/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/loop.h"
#include "lib/yaml.h"

#define SC_CONFIG_MAX_BYTES ((size_t)4 << 20)
#define SC_NAME_MAX 63          /* version names: a header value and a metric label */
#define SC_MODEL_MAX 256
#define SC_TOKEN_MAX 128        /* header names */
#define SC_HOST_MAX 253

/* Bounds. Durations are ms; "0" on a route timeout means none. */
#define SC_TIMEOUT_MAX_MS ((uint64_t)24 * 3600 * 1000)
#define SC_CLIENT_TIMEOUT_MIN_MS 100u
#define SC_BODY_MIN ((uint64_t)1 << 10)
#define SC_BODY_MAX ((uint64_t)64 << 20)
#define SC_HEAD_MIN ((uint64_t)1 << 10)
#define SC_HEAD_MAX ((uint64_t)1 << 20)
#define SC_MAX_CONNS_MAX 1000000
#define SC_MAX_IDLE_MAX 100000

/* The public struct plus what only this file reads: an exact-match index of
 * the models, so the per-request lookup does not scan every route. */
struct sc_config_priv {
    struct sc_config pub;
    unsigned *index;            /* route index + 1; 0 = empty slot */
    size_t index_mask;
    const struct sc_route *wildcard;
};

/* Validation state: the error and warning collectors and whether anything
 * failed (counted here, since the collector does not repeat an error it
 * already holds). */
struct vctx {
    struct mg_json_errs *e, *w;
    json_t *doc;
    unsigned nerr;
};

static int chk(struct vctx *v, int rc)
{
    if (rc < 0)
        v->nerr++;
    return rc;
}

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verr(struct vctx *v, const char *path, const char *fmt, ...)
{
    char msg[MG_JSON_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mg_json_errs_add(v->e, path, 0, 0, "%s", msg);
    v->nerr++;
}

/* --- freeing ---------------------------------------------------------------- */

static void route_free(struct sc_route *r)
{
    for (unsigned i = 0; r->versions && i < r->nversions; i++) {
        struct sc_version *ver = &r->versions[i];
        free(ver->name);
        for (unsigned j = 0; ver->endpoints && j < ver->nendpoints; j++)
            free(ver->endpoints[j]);
        free(ver->endpoints);
    }
    free(r->versions);
    for (unsigned i = 0; r->match && i < r->nmatch; i++) {
        free(r->match[i].header);
        free(r->match[i].value);
    }
    free(r->match);
    free(r->sticky_header);
    free(r->model);
    free(r->retries);
    free(r->breaker);
    free(r->rate);
    for (unsigned i = 0; r->fallback && i < r->nfallback; i++) {
        free(r->fallback[i].model);
        free(r->fallback[i].message);
        free(r->fallback[i].content);
    }
    free(r->fallback);
    if (r->admission) {
        free(r->admission->priority_header);
        for (unsigned i = 0; i < r->admission->nsheddable; i++)
            free(r->admission->sheddable[i]);
        free(r->admission->sheddable);
        free(r->admission);
    }
}

static void config_free(struct sc_config *cfg)
{
    struct sc_config_priv *p = (struct sc_config_priv *)cfg;
    if (!cfg)
        return;
    if (cfg->policy && cfg->policy_free)
        cfg->policy_free(cfg->policy);
    for (unsigned i = 0; cfg->routes && i < cfg->nroutes; i++)
        route_free(&cfg->routes[i]);
    free(cfg->routes);
    free(cfg->listen);
    free(cfg->admin);
    free(cfg->source);
    json_decref(cfg->doc);
    free(p->index);
    free(p);
}

void sc_config_ref(struct sc_config *cfg)
{
    __atomic_fetch_add(&cfg->refs_, 1, __ATOMIC_RELAXED);
}

void sc_config_unref(struct sc_config *cfg)
{
    if (!cfg)
        return;
    /* Release so this thread's reads happen before the free; acquire on the
     * last one so the free sees every other thread's. */
    if (__atomic_sub_fetch(&cfg->refs_, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

/* --- small validators ----------------------------------------------------- */

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A header name (RFC 9110 token); returns a lower-cased copy or NULL with
 * the error recorded (*oom set when the copy failed). */
static char *header_token(struct vctx *v, const char *path, const char *s, int *oom)
{
    size_t n = strlen(s);
    if (n == 0) {
        verr(v, path, "a header name cannot be empty");
        return NULL;
    }
    if (n > SC_TOKEN_MAX) {
        verr(v, path, "header name longer than %d bytes", SC_TOKEN_MAX);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)s[i])) {
            verr(v, path, "\"%s\" is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)",
                 s);
            return NULL;
        }
    }
    char *c = strdup(s);
    if (!c) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (c[i] >= 'A' && c[i] <= 'Z')
            c[i] = (char)(c[i] - 'A' + 'a');
    return c;
}

static int valid_version_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

/* A host name or IPv4 literal: letters, digits, '-', '.', '_' (some internal
 * DNS names carry it). Resolution happens later, in the proxy. */
static int valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > SC_HOST_MAX || h[0] == '.' || h[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
        if (c == '.' && h[i + 1] == '.')
            return 0;
    }
    return 1;
}

/* "host:port" / "[v6]:port". listen addresses may leave the host empty or
 * "*" (any address); endpoints need a host to connect to. */
static int check_hostport(struct vctx *v, const char *path, const char *s, int listen)
{
    char host[SC_HOST_MAX + 2];
    unsigned port = 0;
    if (strstr(s, "://")) {
        verr(v, path, "\"%s\": expected host:port without a scheme (e.g. 127.0.0.1:8000)", s);
        return -EINVAL;
    }
    if (mg_split_hostport(s, host, sizeof host, &port) < 0) {
        verr(v, path, "\"%s\" is not host:port or [ipv6]:port with a port 1-65535", s);
        return -EINVAL;
    }
    if (port < 1 || port > 65535) {
        verr(v, path, "\"%s\": port must be 1-65535", s);
        return -EINVAL;
    }
    if (s[0] == '[') {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            verr(v, path, "\"%s\": [%s] is not an IPv6 address", s, host);
            return -EINVAL;
        }
        return 0;
    }
    if (listen && (host[0] == '\0' || strcmp(host, "*") == 0))
        return 0;
    if (!valid_hostname(host)) {
        verr(v, path, "\"%s\": \"%s\" is not a valid host name or address", s, host);
        return -EINVAL;
    }
    return 0;
}

/* Whether two listen addresses would bind the same port: with SO_REUSEPORT
 * both binds succeed and connections would be split between data and admin
 * traffic, so this is caught here rather than at bind time. */
static int same_listener(const char *a, const char *b)
{
    char ha[SC_HOST_MAX + 2], hb[SC_HOST_MAX + 2];
    unsigned pa, pb;
    if (mg_split_hostport(a, ha, sizeof ha, &pa) < 0 || mg_split_hostport(b, hb, sizeof hb, &pb) < 0)
        return 0;
    if (pa != pb)
        return 0;
    static const char *const any[] = {"", "*", "0.0.0.0", "::", NULL};
    for (unsigned i = 0; any[i]; i++)
        if (strcmp(ha, any[i]) == 0 || strcmp(hb, any[i]) == 0)
            return 1;
    return strcasecmp(ha, hb) == 0;
}

/* Optional object/array that the current issue does not enforce yet. */
static void accept_later(struct vctx *v, json_t *root, const char *base, const char *key,
                         int array)
{
    json_t *o = NULL;
    int rc = array ? mg_json_opt_array(root, v->e, &o, "%s.%s", base, key)
                   : mg_json_opt_object(root, v->e, &o, "%s.%s", base, key);
    if (chk(v, rc) < 0 || !o)
        return;
    char path[96];
    snprintf(path, sizeof path, "%s.%s", base, key);
    mg_json_errs_add(v->w, path, 0, 0, "accepted but not enforced yet (issue 5)");
}

/* Writes a default into an object when the key is absent or null, so the
 * kept document shows the effective value. */
static int fill(json_t *obj, const char *key, json_t *val)
{
    if (!val)
        return -ENOMEM;
    json_t *cur = json_object_get(obj, key);
    if (cur && !json_is_null(cur)) {
        json_decref(val);
        return 0;
    }
    return json_object_set_new(obj, key, val) == 0 ? 0 : -ENOMEM;
}

/* The object at key inside parent, created (or replacing null) when absent.
 * NULL on ENOMEM. */
static json_t *sub_object(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);
    if (o && json_is_object(o))
        return o;
    o = json_object();
    if (!o || json_object_set_new(parent, key, o) != 0)
        return NULL;
    return o;
}

/* --- policies (issue 5) ----------------------------------------------------- */

/* The policy object at base.key when present: 0 with *o set (NULL when
 * absent), -1 when it is not an object (recorded). */
static int policy_obj(struct vctx *v, json_t *rj, const char *base, const char *key,
                      const char *const *keys, json_t **o)
{
    *o = NULL;
    if (chk(v, mg_json_opt_object(v->doc, v->e, o, "%s.%s", base, key)) < 0 || !*o)
        return -1;
    chk(v, mg_json_check_keys(v->doc, v->e, keys, "%s.%s", base, key));
    return 0;
}

/* A duration key with its default written back: 0 (also the bare YAML
 * integer 0) is allowed when min is 0. */
static int pol_duration(struct vctx *v, json_t *o, const char *base, const char *key,
                        uint32_t *out, uint64_t def, const char *def_text, uint64_t min,
                        uint64_t max)
{
    uint64_t ms = def;
    json_t *x = json_object_get(o, key);
    if (min == 0 && json_is_integer(x) && json_integer_value(x) == 0)
        ms = 0;
    else
        chk(v, mg_json_opt_duration(v->doc, v->e, &ms, min, max, "%s.%s", base, key));
    *out = (uint32_t)ms;
    return fill(o, key, json_string(def_text));
}

static int pol_int(struct vctx *v, json_t *o, const char *base, const char *key, unsigned *out,
                   long long def, long long min, long long max)
{
    long long n = def;
    chk(v, mg_json_opt_int(v->doc, v->e, &n, min, max, "%s.%s", base, key));
    *out = (unsigned)n;
    return fill(o, key, json_integer(def));
}

static int pol_num(struct vctx *v, json_t *o, const char *base, const char *key, double *out,
                   double def, double min, double max, int write_default)
{
    double d = def;
    chk(v, mg_json_opt_number(v->doc, v->e, &d, min, max, "%s.%s", base, key));
    *out = d;
    return write_default ? fill(o, key, json_real(def)) : 0;
}

static int parse_retries(struct vctx *v, json_t *rj, const char *base, struct sc_route *r)
{
    static const char *const keys[] = {"attempts", "on", "perTryTimeout", "backoff",
                                       "budgetPercent", "minRetries", NULL};
    static const char *const bkeys[] = {"base", "max", NULL};
    char b[64], path[160];
    json_t *o;
    snprintf(b, sizeof b, "%s.retries", base);
    /* YAML 1.1 reads a bare `on:` key as the boolean true: take it back. */
    json_t *ro = json_is_object(rj) ? json_object_get(rj, "retries") : NULL;
    if (json_is_object(ro) && json_object_get(ro, "true") && !json_object_get(ro, "on")) {
        json_t *x = json_object_get(ro, "true");
        if (json_object_set(ro, "on", x) < 0 || json_object_del(ro, "true") < 0)
            return -ENOMEM;
    }
    if (policy_obj(v, rj, base, "retries", keys, &o) < 0)
        return 0;
    struct sc_retries *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    r->retries = rt;
    if (pol_int(v, o, b, "attempts", &rt->attempts, 2, 0, 10) < 0)
        return -ENOMEM;
    json_t *on = NULL;
    if (chk(v, mg_json_opt_array(v->doc, v->e, &on, "%s.on", b)) == 0 && on) {
        size_t i;
        json_t *x;
        json_array_foreach(on, i, x) {
            snprintf(path, sizeof path, "%s.on[%zu]", b, i);
            long long st = -1;
            if (json_is_integer(x)) {
                st = json_integer_value(x);
            } else if (json_is_string(x)) {
                const char *s = json_string_value(x);
                char *end;
                if (strcmp(s, "connect-failure") == 0) {
                    rt->on |= SC_RETRY_CONNECT;
                    continue;
                }
                if (strcmp(s, "reset") == 0) {
                    rt->on |= SC_RETRY_RESET;
                    continue;
                }
                if (strcmp(s, "timeout") == 0) {
                    rt->on |= SC_RETRY_TIMEOUT;
                    continue;
                }
                st = strtoll(s, &end, 10);
                if (!*s || *end)
                    st = -2;
            }
            if (st == -2 || (st == -1 && !json_is_integer(x))) {
                verr(v, path, "expected connect-failure, reset, timeout or an HTTP status "
                              "400-599");
                continue;
            }
            if (st < 400 || st > 599) {
                verr(v, path, "%lld: only statuses 400-599 can be retried", st);
                continue;
            }
            rt->status[st / 8] |= (uint8_t)(1u << (st % 8));
        }
    } else if (!on) {
        static const int defs[] = {429, 502, 503, 504};
        rt->on = SC_RETRY_CONNECT | SC_RETRY_RESET | SC_RETRY_TIMEOUT;
        for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
            rt->status[defs[i] / 8] |= (uint8_t)(1u << (defs[i] % 8));
        json_t *d = json_pack("[s,s,s,i,i,i,i]", "connect-failure", "reset", "timeout", 429, 502,
                              503, 504);
        if (fill(o, "on", d) < 0)
            return -ENOMEM;
    }
    if (pol_duration(v, o, b, "perTryTimeout", &rt->per_try_ms, 2000, "2s", 0,
                     SC_TIMEOUT_MAX_MS) < 0)
        return -ENOMEM;
    json_t *bo = NULL;
    rt->backoff_base_ms = 25;
    rt->backoff_max_ms = 250;
    if (chk(v, mg_json_opt_object(v->doc, v->e, &bo, "%s.backoff", b)) == 0) {
        chk(v, mg_json_check_keys(v->doc, v->e, bkeys, "%s.backoff", b));
        if (!(bo = sub_object(o, "backoff")))
            return -ENOMEM;
        char bb[96];
        snprintf(bb, sizeof bb, "%s.backoff", b);
        if (pol_duration(v, bo, bb, "base", &rt->backoff_base_ms, 25, "25ms", 0, 60000) < 0 ||
            pol_duration(v, bo, bb, "max", &rt->backoff_max_ms, 250, "250ms", 0, 600000) < 0)
            return -ENOMEM;
        if (rt->backoff_max_ms < rt->backoff_base_ms) {
            snprintf(path, sizeof path, "%s.max", bb);
            verr(v, path, "must be at least backoff.base (%u ms)", (unsigned)rt->backoff_base_ms);
        }
    }
    if (pol_int(v, o, b, "budgetPercent", &rt->budget_percent, 20, 0, 100) < 0 ||
        pol_int(v, o, b, "minRetries", &rt->min_retries, 3, 0, 100000) < 0)
        return -ENOMEM;
    return 0;
}

static int parse_breaker(struct vctx *v, json_t *rj, const char *base, struct sc_route *r)
{
    static const char *const keys[] = {"consecutiveFailures", "failureRate", "window",
                                       "minRequests", "openDuration", "maxOpenDuration",
                                       "halfOpenRequests", "maxEjectionPercent",
                                       "maxConcurrent", "maxPending", "pendingTimeout",
                                       "overloadStatus", NULL};
    char b[64], path[160];
    json_t *o;
    snprintf(b, sizeof b, "%s.circuitBreaker", base);
    if (policy_obj(v, rj, base, "circuitBreaker", keys, &o) < 0)
        return 0;
    struct sc_breaker_cfg *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    r->breaker = c;
    unsigned st = 503;
    if (pol_int(v, o, b, "consecutiveFailures", &c->consecutive_failures, 5, 0, 100000) < 0 ||
        pol_num(v, o, b, "failureRate", &c->failure_rate, 0.5, 0, 1, 1) < 0 ||
        pol_duration(v, o, b, "window", &c->window_ms, 10000, "10s", 100, 3600 * 1000) < 0 ||
        pol_int(v, o, b, "minRequests", &c->min_requests, 20, 1, 1000000) < 0 ||
        pol_duration(v, o, b, "openDuration", &c->open_ms, 30000, "30s", 10, 3600 * 1000) < 0 ||
        pol_duration(v, o, b, "maxOpenDuration", &c->max_open_ms, 300000, "5m", 10,
                     SC_TIMEOUT_MAX_MS) < 0 ||
        pol_int(v, o, b, "halfOpenRequests", &c->half_open_requests, 3, 1, 10000) < 0 ||
        pol_int(v, o, b, "maxEjectionPercent", &c->max_ejection_percent, 50, 0, 100) < 0 ||
        pol_int(v, o, b, "maxConcurrent", &c->max_concurrent, 256, 0, 10000000) < 0 ||
        pol_int(v, o, b, "maxPending", &c->max_pending, 512, 0, 1000000) < 0 ||
        pol_duration(v, o, b, "pendingTimeout", &c->pending_timeout_ms, 1000, "1s", 0,
                     600000) < 0 ||
        pol_int(v, o, b, "overloadStatus", &st, 503, 100, 599) < 0)
        return -ENOMEM;
    if (c->max_open_ms < c->open_ms) {
        snprintf(path, sizeof path, "%s.maxOpenDuration", b);
        verr(v, path, "must be at least openDuration (%u ms)", (unsigned)c->open_ms);
    }
    if (st != 503 && st != 429) {
        snprintf(path, sizeof path, "%s.overloadStatus", b);
        verr(v, path, "%u: must be 503 or 429", st);
    }
    c->overload_status = (int)st;
    return 0;
}

static int parse_rate(struct vctx *v, json_t *rj, const char *base, struct sc_route *r)
{
    static const char *const keys[] = {"requestsPerSecond", "burst", "tokensPerMinute",
                                       "perKey", "defaultMaxTokens", "keyTable", NULL};
    static const char *const kkeys[] = {"requestsPerSecond", "burst", "tokensPerMinute", NULL};
    char b[64], path[160];
    json_t *o;
    snprintf(b, sizeof b, "%s.rateLimit", base);
    if (policy_obj(v, rj, base, "rateLimit", keys, &o) < 0)
        return 0;
    struct sc_rate_cfg *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    r->rate = c;
    if (pol_num(v, o, b, "requestsPerSecond", &c->rps, 0, 0.001, 1e7, 0) < 0 ||
        pol_num(v, o, b, "burst", &c->burst, 0, 1, 1e9, 0) < 0 ||
        pol_num(v, o, b, "tokensPerMinute", &c->tpm, 0, 1, 1e12, 0) < 0 ||
        pol_int(v, o, b, "defaultMaxTokens", &c->default_max_tokens, 256, 1, 10000000) < 0 ||
        pol_int(v, o, b, "keyTable", &c->key_table, 4096, 16, 1 << 20) < 0)
        return -ENOMEM;
    if (c->key_table & (c->key_table - 1)) {
        snprintf(path, sizeof path, "%s.keyTable", b);
        verr(v, path, "%u is not a power of two (e.g. 4096)", c->key_table);
    }
    if (c->burst && !c->rps) {
        snprintf(path, sizeof path, "%s.burst", b);
        verr(v, path, "burst needs requestsPerSecond");
    }
    if (c->rps && !c->burst) {
        c->burst = c->rps < 1 ? 1 : c->rps;
        if (fill(o, "burst", json_real(c->burst)) < 0)
            return -ENOMEM;
    }
    json_t *k = NULL;
    if (chk(v, mg_json_opt_object(v->doc, v->e, &k, "%s.perKey", b)) == 0 && k) {
        char kb[96];
        snprintf(kb, sizeof kb, "%s.perKey", b);
        chk(v, mg_json_check_keys(v->doc, v->e, kkeys, "%s", kb));
        if (pol_num(v, k, kb, "requestsPerSecond", &c->key_rps, 0, 0.001, 1e7, 0) < 0 ||
            pol_num(v, k, kb, "burst", &c->key_burst, 0, 1, 1e9, 0) < 0 ||
            pol_num(v, k, kb, "tokensPerMinute", &c->key_tpm, 0, 1, 1e12, 0) < 0)
            return -ENOMEM;
        if (c->key_burst && !c->key_rps) {
            snprintf(path, sizeof path, "%s.burst", kb);
            verr(v, path, "burst needs requestsPerSecond");
        }
        if (c->key_rps && !c->key_burst) {
            c->key_burst = c->key_rps < 1 ? 1 : c->key_rps;
            if (fill(k, "burst", json_real(c->key_burst)) < 0)
                return -ENOMEM;
        }
    }
    return 0;
}

static int parse_fallback(struct vctx *v, json_t *rj, const char *base, struct sc_route *r)
{
    static const char *const keys[] = {"version", "model", "static", "longContext", NULL};
    static const char *const skeys[] = {"status", "message", "content", NULL};
    char b[96], path[192];
    json_t *arr = NULL;
    if (chk(v, mg_json_opt_array(v->doc, v->e, &arr, "%s.fallback", base)) < 0 || !arr)
        return 0;
    size_t n = json_array_size(arr);
    if (n > SC_MAX_FALLBACK) {
        snprintf(path, sizeof path, "%s.fallback", base);
        verr(v, path, "%zu hops; at most %d", n, SC_MAX_FALLBACK);
        n = SC_MAX_FALLBACK;
    }
    if (n && !(r->fallback = calloc(n, sizeof *r->fallback)))
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        json_t *o = NULL;
        snprintf(b, sizeof b, "%s.fallback[%u]", base, i);
        if (chk(v, mg_json_get_object(v->doc, v->e, &o, "%s", b)) < 0)
            continue;
        chk(v, mg_json_check_keys(v->doc, v->e, keys, "%s", b));
        struct sc_fallback *f = &r->fallback[r->nfallback];
        f->index = i;
        int lc = 0;
        chk(v, mg_json_opt_bool(v->doc, v->e, &lc, "%s.longContext", b));
        f->long_context = lc != 0;
        int kinds = !!json_object_get(o, "version") + !!json_object_get(o, "model") +
                    !!json_object_get(o, "static");
        if (kinds != 1) {
            verr(v, b, "a hop is exactly one of {version: NAME}, {model: NAME} or "
                       "{static: {status, message|content}}");
            continue;
        }
        const char *s = NULL;
        if (json_object_get(o, "version")) {
            if (chk(v, mg_json_get_string(v->doc, v->e, &s, "%s.version", b)) < 0)
                continue;
            int idx = -1;
            for (unsigned k = 0; k < r->nversions; k++)
                if (r->versions[k].name && strcmp(r->versions[k].name, s) == 0)
                    idx = (int)k;
            if (idx < 0) {
                snprintf(path, sizeof path, "%s.version", b);
                verr(v, path, "no version named \"%s\" in this route", s);
                continue;
            }
            f->kind = SC_FB_VERSION;
            f->version = (unsigned)idx;
        } else if (json_object_get(o, "model")) {
            if (chk(v, mg_json_get_string(v->doc, v->e, &s, "%s.model", b)) < 0)
                continue;
            snprintf(path, sizeof path, "%s.model", b);
            if (!s[0] || strlen(s) > SC_MODEL_MAX || has_ctl(s) || strcmp(s, "*") == 0) {
                verr(v, path, "\"%s\" is not a model name another route serves", s);
                continue;
            }
            f->kind = SC_FB_MODEL;
            if (!(f->model = strdup(s)))
                return -ENOMEM;
        } else {
            json_t *so = NULL;
            char sb[128];
            snprintf(sb, sizeof sb, "%s.static", b);
            if (chk(v, mg_json_get_object(v->doc, v->e, &so, "%s", sb)) < 0)
                continue;
            chk(v, mg_json_check_keys(v->doc, v->e, skeys, "%s", sb));
            long long st = 0;
            if (chk(v, mg_json_get_int(v->doc, v->e, &st, 200, 599, "%s.status", sb)) < 0)
                continue;
            f->kind = SC_FB_STATIC;
            f->status = (int)st;
            const char *msg = NULL, *content = NULL;
            chk(v, mg_json_opt_string(v->doc, v->e, &msg, "%s.message", sb));
            chk(v, mg_json_opt_string(v->doc, v->e, &content, "%s.content", sb));
            if (st < 300) {
                if (!content) {
                    snprintf(path, sizeof path, "%s.content", sb);
                    verr(v, path, "a static %lld reply needs content (the assistant's text)",
                         st);
                    continue;
                }
                if (msg) {
                    snprintf(path, sizeof path, "%s.message", sb);
                    verr(v, path, "a static %lld reply takes content, not message", st);
                }
            } else if (content) {
                snprintf(path, sizeof path, "%s.content", sb);
                verr(v, path, "a static error (%lld) takes message, not content", st);
            }
            if (content && strlen(content) > 65536) {
                snprintf(path, sizeof path, "%s.content", sb);
                verr(v, path, "longer than 64 KiB");
            }
            if (msg && strlen(msg) > 1024) {
                snprintf(path, sizeof path, "%s.message", sb);
                verr(v, path, "longer than 1 KiB");
            }
            if ((content && !(f->content = strdup(content))) ||
                !(f->message = strdup(msg ? msg : "the model is unavailable; retry later")))
                return -ENOMEM;
        }
        r->nfallback++;
    }
    return 0;
}

static int parse_admission(struct vctx *v, json_t *rj, const char *base, struct sc_route *r)
{
    static const char *const keys[] = {"interval", "staleAfter", "maxWaiting",
                                       "maxKvCacheUsage", "priorityHeader", "sheddable", NULL};
    char b[64], path[160];
    json_t *o;
    int oom = 0;
    snprintf(b, sizeof b, "%s.admission", base);
    if (policy_obj(v, rj, base, "admission", keys, &o) < 0)
        return 0;
    struct sc_admission *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    r->admission = a;
    if (pol_duration(v, o, b, "interval", &a->interval_ms, 100, "100ms", 10, 60000) < 0 ||
        pol_duration(v, o, b, "staleAfter", &a->stale_ms, 1000, "1s", 10, 3600 * 1000) < 0 ||
        pol_int(v, o, b, "maxWaiting", &a->max_waiting, 8, 0, 1000000) < 0 ||
        pol_num(v, o, b, "maxKvCacheUsage", &a->max_kv, 0.9, 0, 1, 1) < 0)
        return -ENOMEM;
    if (a->stale_ms < a->interval_ms) {
        snprintf(path, sizeof path, "%s.staleAfter", b);
        verr(v, path, "must be at least interval (%u ms)", (unsigned)a->interval_ms);
    }
    const char *h = "x-priority";
    chk(v, mg_json_opt_string(v->doc, v->e, &h, "%s.priorityHeader", b));
    snprintf(path, sizeof path, "%s.priorityHeader", b);
    a->priority_header = header_token(v, path, h, &oom);
    if (oom)
        return -ENOMEM;
    if (fill(o, "priorityHeader", json_string("x-priority")) < 0)
        return -ENOMEM;
    json_t *sh = NULL;
    if (chk(v, mg_json_opt_array(v->doc, v->e, &sh, "%s.sheddable", b)) < 0)
        return 0;
    if (!sh) {
        if (fill(o, "sheddable", json_pack("[s,s]", "low", "batch")) < 0)
            return -ENOMEM;
        sh = json_object_get(o, "sheddable");
    }
    size_t n = json_array_size(sh);
    if (n > 64) {
        snprintf(path, sizeof path, "%s.sheddable", b);
        verr(v, path, "%zu values; at most 64", n);
        n = 64;
    }
    if (n && !(a->sheddable = calloc(n, sizeof *a->sheddable)))
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        const char *s = NULL;
        if (chk(v, mg_json_get_string(v->doc, v->e, &s, "%s.sheddable[%u]", b, i)) < 0)
            continue;
        if (!*s || strlen(s) > 256 || has_ctl(s)) {
            snprintf(path, sizeof path, "%s.sheddable[%u]", b, i);
            verr(v, path, "a priority value is 1-256 bytes without control characters");
            continue;
        }
        if (!(a->sheddable[a->nsheddable++] = strdup(s)))
            return -ENOMEM;
    }
    return 0;
}

/* Model fallbacks name another route: checked once every route is known. */
static void check_model_fallbacks(struct vctx *v, struct sc_config *cfg)
{
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        struct sc_route *r = &cfg->routes[i];
        for (unsigned j = 0; j < r->nfallback; j++) {
            struct sc_fallback *f = &r->fallback[j];
            if (f->kind != SC_FB_MODEL || !f->model)
                continue;
            int found = 0;
            for (unsigned k = 0; k < cfg->nroutes; k++)
                if (cfg->routes[k].model && !cfg->routes[k].wildcard &&
                    strcmp(cfg->routes[k].model, f->model) == 0)
                    found = 1;
            char path[96];
            /* The document index: routes keep document order but the
             * wildcard, so find it by the raw object. */
            unsigned di = i;
            json_t *routes = json_object_get(v->doc, "routes");
            for (unsigned k = 0; k < json_array_size(routes); k++)
                if (json_array_get(routes, k) == r->raw)
                    di = k;
            snprintf(path, sizeof path, "routes[%u].fallback[%u].model", di, f->index);
            if (r->model && strcmp(f->model, r->model) == 0)
                verr(v, path, "\"%s\" is this route's own model; a model fallback names "
                              "another route",
                     f->model);
            else if (!found)
                verr(v, path, "no route serves model \"%s\"", f->model);
        }
    }
}

/* --- routes ---------------------------------------------------------------- */

/* Validates routes[i] into r. Returns 0 (errors are counted in v), or
 * -ENOMEM. */
static int parse_route(struct vctx *v, json_t *rj, unsigned i, struct sc_route *r)
{
    static const char *const rkeys[] = {"model", "versions", "match", "sticky", "timeouts",
                                        "retries", "circuitBreaker", "rateLimit", "fallback",
                                        "admission", "mtls", NULL};
    static const char *const vkeys[] = {"name", "weight", "endpoints", NULL};
    static const char *const mkeys[] = {"header", "value", "version", NULL};
    static const char *const skeys[] = {"header", NULL};
    static const char *const tkeys[] = {"connect", "firstToken", "idle", "total", NULL};
    json_t *root = v->doc;
    char base[32], path[96];
    const char *s;
    json_t *arr;
    int oom = 0;

    snprintf(base, sizeof base, "routes[%u]", i);
    r->raw = rj;
    chk(v, mg_json_check_keys(root, v->e, rkeys, "%s", base));

    s = NULL;
    if (chk(v, mg_json_get_string(root, v->e, &s, "%s.model", base)) == 0) {
        snprintf(path, sizeof path, "%s.model", base);
        if (s[0] == '\0')
            verr(v, path, "a model name cannot be empty (use \"*\" for any model)");
        else if (strlen(s) > SC_MODEL_MAX)
            verr(v, path, "model name longer than %d bytes", SC_MODEL_MAX);
        else if (has_ctl(s))
            verr(v, path, "model name contains a control character");
        else if (!(r->model = strdup(s)))
            return -ENOMEM;
        else
            r->wildcard = strcmp(s, "*") == 0;
    }

    /* Versions. */
    int weights_ok = 1;
    arr = NULL;
    if (chk(v, mg_json_get_array(root, v->e, &arr, "%s.versions", base)) < 0) {
        weights_ok = 0;
    } else {
        size_t nv = json_array_size(arr);
        snprintf(path, sizeof path, "%s.versions", base);
        if (nv == 0) {
            verr(v, path, "at least one version is needed");
            weights_ok = 0;
        } else if (nv > SC_MAX_VERSIONS) {
            verr(v, path, "%zu versions; at most %d per route", nv, SC_MAX_VERSIONS);
            weights_ok = 0;
            nv = SC_MAX_VERSIONS;
        }
        if (nv && !(r->versions = calloc(nv, sizeof *r->versions)))
            return -ENOMEM;
        for (unsigned j = 0; j < nv; j++) {
            struct sc_version *ver = &r->versions[r->nversions];
            json_t *vj = NULL;
            char vbase[64];
            snprintf(vbase, sizeof vbase, "%s.versions[%u]", base, j);
            /* Each slot is kept even when it is invalid, so slot indices
             * stay document indices (for messages). */
            r->nversions++;
            if (chk(v, mg_json_get_object(root, v->e, &vj, "%s", vbase)) < 0) {
                weights_ok = 0;
                continue;
            }
            chk(v, mg_json_check_keys(root, v->e, vkeys, "%s", vbase));
            s = NULL;
            if (chk(v, mg_json_get_string(root, v->e, &s, "%s.name", vbase)) == 0) {
                snprintf(path, sizeof path, "%s.name", vbase);
                int dup = -1;
                for (unsigned k = 0; k + 1 < r->nversions; k++)
                    if (r->versions[k].name && strcmp(r->versions[k].name, s) == 0)
                        dup = (int)k;
                if (!valid_version_name(s))
                    verr(v, path, "\"%s\" is not a valid version name (1-%d characters of A-Z a-z 0-9 . _ -)",
                         s, SC_NAME_MAX);
                else if (dup >= 0)
                    verr(v, path, "duplicate version name \"%s\" (also %s.versions[%d])", s, base,
                         dup);
                else if (!(ver->name = strdup(s)))
                    return -ENOMEM;
            }
            long long w = 0;
            if (chk(v, mg_json_get_int(root, v->e, &w, 0, 10000, "%s.weight", vbase)) < 0)
                weights_ok = 0;
            else
                ver->weight = (unsigned)w;
            json_t *eps = NULL;
            if (chk(v, mg_json_get_array(root, v->e, &eps, "%s.endpoints", vbase)) < 0)
                continue;
            size_t ne = json_array_size(eps);
            snprintf(path, sizeof path, "%s.endpoints", vbase);
            if (ne == 0) {
                verr(v, path, "at least one endpoint (host:port) is needed");
                continue;
            }
            if (ne > SC_MAX_ENDPOINTS) {
                verr(v, path, "%zu endpoints; at most %d per version", ne, SC_MAX_ENDPOINTS);
                ne = SC_MAX_ENDPOINTS;
            }
            if (!(ver->endpoints = calloc(ne, sizeof *ver->endpoints)))
                return -ENOMEM;
            for (unsigned k = 0; k < ne; k++) {
                s = NULL;
                if (chk(v, mg_json_get_string(root, v->e, &s, "%s.endpoints[%u]", vbase, k)) < 0)
                    continue;
                snprintf(path, sizeof path, "%s.endpoints[%u]", vbase, k);
                if (check_hostport(v, path, s, 0) < 0)
                    continue;
                int dup = -1;
                for (unsigned m = 0; m < ver->nendpoints; m++)
                    if (strcmp(ver->endpoints[m], s) == 0)
                        dup = (int)m;
                if (dup >= 0) {
                    verr(v, path, "duplicate endpoint \"%s\" in this version", s);
                    continue;
                }
                if (!(ver->endpoints[ver->nendpoints] = strdup(s)))
                    return -ENOMEM;
                ver->nendpoints++;
            }
        }
        if (weights_ok) {
            for (unsigned j = 0; j < r->nversions; j++)
                r->total_weight += r->versions[j].weight;
            if (r->total_weight == 0) {
                snprintf(path, sizeof path, "%s.versions", base);
                verr(v, path, "every weight is 0; at least one version needs a weight > 0");
            }
        }
    }

    /* Match rules. */
    arr = NULL;
    if (chk(v, mg_json_opt_array(root, v->e, &arr, "%s.match", base)) == 0 && arr) {
        size_t nm = json_array_size(arr);
        if (nm > SC_MAX_MATCH) {
            snprintf(path, sizeof path, "%s.match", base);
            verr(v, path, "%zu rules; at most %d per route", nm, SC_MAX_MATCH);
            nm = SC_MAX_MATCH;
        }
        if (nm && !(r->match = calloc(nm, sizeof *r->match)))
            return -ENOMEM;
        for (unsigned j = 0; j < nm; j++) {
            char mbase[64];
            json_t *mj = NULL;
            const char *hdr = NULL, *val = NULL, *vn = NULL;
            snprintf(mbase, sizeof mbase, "%s.match[%u]", base, j);
            if (chk(v, mg_json_get_object(root, v->e, &mj, "%s", mbase)) < 0)
                continue;
            chk(v, mg_json_check_keys(root, v->e, mkeys, "%s", mbase));
            int ok = 1;
            char *lc = NULL;
            if (chk(v, mg_json_get_string(root, v->e, &hdr, "%s.header", mbase)) == 0) {
                snprintf(path, sizeof path, "%s.header", mbase);
                if (!(lc = header_token(v, path, hdr, &oom))) {
                    if (oom)
                        return -ENOMEM;
                    ok = 0;
                }
            } else {
                ok = 0;
            }
            if (chk(v, mg_json_get_string(root, v->e, &val, "%s.value", mbase)) == 0) {
                /* A header value never holds CR, LF or other controls but
                 * HTAB: such a rule could never match. */
                for (const char *p = val; *p; p++) {
                    if (((unsigned char)*p < 0x20 && *p != '\t') || (unsigned char)*p == 0x7f) {
                        snprintf(path, sizeof path, "%s.value", mbase);
                        verr(v, path, "contains a control character; a header value cannot");
                        ok = 0;
                        break;
                    }
                }
            } else {
                ok = 0;
            }
            int idx = -1;
            if (chk(v, mg_json_get_string(root, v->e, &vn, "%s.version", mbase)) == 0) {
                for (unsigned k = 0; k < r->nversions; k++)
                    if (r->versions[k].name && strcmp(r->versions[k].name, vn) == 0)
                        idx = (int)k;
                if (idx < 0 && r->nversions) {
                    char names[200];
                    size_t o = 0;
                    names[0] = '\0';
                    for (unsigned k = 0; k < r->nversions && o < sizeof names - 1; k++) {
                        if (!r->versions[k].name)
                            continue;
                        int n = snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "",
                                         r->versions[k].name);
                        if (n < 0)
                            break;
                        o += (size_t)n;
                    }
                    if (o >= sizeof names)
                        o = sizeof names - 1;
                    snprintf(path, sizeof path, "%s.version", mbase);
                    verr(v, path, "no version named \"%s\" in this route (versions: %s)", vn,
                         names);
                }
                if (idx < 0)
                    ok = 0;
            } else {
                ok = 0;
            }
            if (!ok) {
                free(lc);
                continue;
            }
            struct sc_match *m = &r->match[r->nmatch];
            m->header = lc;
            m->version = (unsigned)idx;
            if (!(m->value = strdup(val))) {
                free(lc);
                m->header = NULL;
                return -ENOMEM;
            }
            r->nmatch++;
        }
    }

    /* Sticky. */
    json_t *sj = NULL;
    if (chk(v, mg_json_opt_object(root, v->e, &sj, "%s.sticky", base)) == 0 && sj) {
        const char *hdr = NULL;
        chk(v, mg_json_check_keys(root, v->e, skeys, "%s.sticky", base));
        if (chk(v, mg_json_get_string(root, v->e, &hdr, "%s.sticky.header", base)) == 0) {
            snprintf(path, sizeof path, "%s.sticky.header", base);
            r->sticky_header = header_token(v, path, hdr, &oom);
            if (oom)
                return -ENOMEM;
        }
    }

    /* Timeouts, with the defaults written back into the document. */
    json_t *tj = NULL;
    uint64_t t[4] = {1000, 30000, 60000, 600000};
    static const char *const tdef[4] = {"1s", "30s", "60s", "10m"};
    if (chk(v, mg_json_opt_object(root, v->e, &tj, "%s.timeouts", base)) == 0) {
        chk(v, mg_json_check_keys(root, v->e, tkeys, "%s.timeouts", base));
        for (unsigned k = 0; k < 4; k++) {
            /* YAML reads "idle: 0" as the integer 0: the one duration that
             * needs no unit, and here it means "none". */
            json_t *tv = tj ? json_object_get(tj, tkeys[k]) : NULL;
            if (json_is_integer(tv) && json_integer_value(tv) == 0)
                t[k] = 0;
            else
                chk(v, mg_json_opt_duration(root, v->e, &t[k], 0, SC_TIMEOUT_MAX_MS,
                                            "%s.timeouts.%s", base, tkeys[k]));
        }
        if (json_is_object(rj)) {
            json_t *to = sub_object(rj, "timeouts");
            if (!to)
                return -ENOMEM;
            for (unsigned k = 0; k < 4; k++)
                if (fill(to, tkeys[k], json_string(tdef[k])) < 0)
                    return -ENOMEM;
        }
    }
    r->timeouts.connect = (uint32_t)t[0];
    r->timeouts.first_token = (uint32_t)t[1];
    r->timeouts.idle = (uint32_t)t[2];
    r->timeouts.total = (uint32_t)t[3];

    int rc;
    if ((rc = parse_retries(v, rj, base, r)) < 0 || (rc = parse_breaker(v, rj, base, r)) < 0 ||
        (rc = parse_rate(v, rj, base, r)) < 0 || (rc = parse_fallback(v, rj, base, r)) < 0 ||
        (rc = parse_admission(v, rj, base, r)) < 0)
        return rc;
    accept_later(v, root, base, "mtls", 0);
    return 0;
}

/* --- the model index ------------------------------------------------------- */

static uint64_t model_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a: model names are short */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static int build_index(struct sc_config_priv *p)
{
    struct sc_config *cfg = &p->pub;
    size_t cap = 8;
    while (cap < (size_t)cfg->nroutes * 2)
        cap <<= 1;
    if (!(p->index = calloc(cap, sizeof *p->index)))
        return -ENOMEM;
    p->index_mask = cap - 1;
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct sc_route *r = &cfg->routes[i];
        if (r->wildcard) {
            p->wildcard = r;
            continue;
        }
        size_t h = (size_t)model_hash(r->model, strlen(r->model)) & p->index_mask;
        while (p->index[h])
            h = (h + 1) & p->index_mask;
        p->index[h] = i + 1;
    }
    return 0;
}

const struct sc_route *sc_config_route(const struct sc_config *cfg, const char *model, size_t len)
{
    const struct sc_config_priv *p = (const struct sc_config_priv *)cfg;
    size_t h = (size_t)model_hash(model, len) & p->index_mask;
    for (unsigned slot; (slot = p->index[h]) != 0; h = (h + 1) & p->index_mask) {
        const struct sc_route *r = &cfg->routes[slot - 1];
        /* strnlen first: the request's bytes may hold a NUL, and r->model
         * must not be read past its end. */
        if (strnlen(r->model, len + 1) == len && memcmp(r->model, model, len) == 0)
            return r;
    }
    return p->wildcard;
}

/* --- the document ---------------------------------------------------------- */

/* Validates the whole document into cfg. Returns 0 (errors counted in v) or
 * -ENOMEM. */
static int parse_doc(struct vctx *v, struct sc_config *cfg)
{
    static const char *const top[] = {"listen", "admin", "workers", "limits", "client",
                                      "upstream", "accessLog", "routes", NULL};
    static const char *const lkeys[] = {"requestBody", "requestHead", NULL};
    static const char *const ckeys[] = {"headerTimeout", "keepAliveTimeout", "maxConnections",
                                        NULL};
    static const char *const ukeys[] = {"maxIdlePerEndpoint", "idleTimeout", NULL};
    json_t *root = v->doc;
    const char *s;
    long long n;
    uint64_t u;
    json_t *o;

    chk(v, mg_json_check_keys(root, v->e, top, "%s", ""));

    s = NULL;
    if (chk(v, mg_json_get_string(root, v->e, &s, "listen")) == 0 &&
        check_hostport(v, "listen", s, 1) == 0 && !(cfg->listen = strdup(s)))
        return -ENOMEM;
    s = NULL;
    if (chk(v, mg_json_opt_string(root, v->e, &s, "admin")) == 0 && s &&
        check_hostport(v, "admin", s, 1) == 0 && !(cfg->admin = strdup(s)))
        return -ENOMEM;
    if (cfg->listen && cfg->admin && same_listener(cfg->listen, cfg->admin))
        verr(v, "admin", "\"%s\" overlaps listen \"%s\"; the admin port must be another port",
             cfg->admin, cfg->listen);
    n = 1;
    chk(v, mg_json_opt_int(root, v->e, &n, 1, SC_MAX_WORKERS, "workers"));
    cfg->workers = (unsigned)n;
    if (fill(root, "workers", json_integer(n)) < 0)
        return -ENOMEM;

    cfg->max_body = (uint64_t)1 << 20;
    cfg->max_head = (uint64_t)64 << 10;
    if (chk(v, mg_json_opt_object(root, v->e, &o, "limits")) == 0) {
        chk(v, mg_json_check_keys(root, v->e, lkeys, "limits"));
        chk(v, mg_json_opt_size(root, v->e, &cfg->max_body, SC_BODY_MIN, SC_BODY_MAX,
                                "limits.requestBody"));
        chk(v, mg_json_opt_size(root, v->e, &cfg->max_head, SC_HEAD_MIN, SC_HEAD_MAX,
                                "limits.requestHead"));
        if (!(o = sub_object(root, "limits")) || fill(o, "requestBody", json_string("1Mi")) < 0 ||
            fill(o, "requestHead", json_string("64Ki")) < 0)
            return -ENOMEM;
    }

    cfg->header_timeout_ms = 10000;
    cfg->keepalive_timeout_ms = 60000;
    cfg->max_conns = 10000;
    if (chk(v, mg_json_opt_object(root, v->e, &o, "client")) == 0) {
        chk(v, mg_json_check_keys(root, v->e, ckeys, "client"));
        u = cfg->header_timeout_ms;
        chk(v, mg_json_opt_duration(root, v->e, &u, SC_CLIENT_TIMEOUT_MIN_MS, SC_TIMEOUT_MAX_MS,
                                    "client.headerTimeout"));
        cfg->header_timeout_ms = (uint32_t)u;
        u = cfg->keepalive_timeout_ms;
        chk(v, mg_json_opt_duration(root, v->e, &u, SC_CLIENT_TIMEOUT_MIN_MS, SC_TIMEOUT_MAX_MS,
                                    "client.keepAliveTimeout"));
        cfg->keepalive_timeout_ms = (uint32_t)u;
        n = cfg->max_conns;
        chk(v, mg_json_opt_int(root, v->e, &n, 1, SC_MAX_CONNS_MAX, "client.maxConnections"));
        cfg->max_conns = (unsigned)n;
        if (!(o = sub_object(root, "client")) || fill(o, "headerTimeout", json_string("10s")) < 0 ||
            fill(o, "keepAliveTimeout", json_string("60s")) < 0 ||
            fill(o, "maxConnections", json_integer(10000)) < 0)
            return -ENOMEM;
    }

    cfg->upstream_max_idle = 256;
    cfg->upstream_idle_ms = 30000;
    if (chk(v, mg_json_opt_object(root, v->e, &o, "upstream")) == 0) {
        chk(v, mg_json_check_keys(root, v->e, ukeys, "upstream"));
        n = cfg->upstream_max_idle;
        chk(v, mg_json_opt_int(root, v->e, &n, 0, SC_MAX_IDLE_MAX, "upstream.maxIdlePerEndpoint"));
        cfg->upstream_max_idle = (unsigned)n;
        u = cfg->upstream_idle_ms;
        chk(v, mg_json_opt_duration(root, v->e, &u, SC_CLIENT_TIMEOUT_MIN_MS, SC_TIMEOUT_MAX_MS,
                                    "upstream.idleTimeout"));
        cfg->upstream_idle_ms = (uint32_t)u;
        if (!(o = sub_object(root, "upstream")) ||
            fill(o, "maxIdlePerEndpoint", json_integer(256)) < 0 ||
            fill(o, "idleTimeout", json_string("30s")) < 0)
            return -ENOMEM;
    }

    cfg->access_log = 1;
    chk(v, mg_json_opt_bool(root, v->e, &cfg->access_log, "accessLog"));
    if (fill(root, "accessLog", json_true()) < 0)
        return -ENOMEM;

    json_t *routes = NULL;
    if (chk(v, mg_json_get_array(root, v->e, &routes, "routes")) < 0)
        return 0;
    size_t nr = json_array_size(routes);
    if (nr == 0) {
        verr(v, "routes", "at least one route is needed");
        return 0;
    }
    if (nr > SC_MAX_ROUTES) {
        verr(v, "routes", "%zu routes; at most %d", nr, SC_MAX_ROUTES);
        nr = SC_MAX_ROUTES;
    }
    if (!(cfg->routes = calloc(nr, sizeof *cfg->routes)))
        return -ENOMEM;
    int wild = -1;
    for (unsigned i = 0; i < nr; i++) {
        json_t *rj = NULL;
        /* As for versions: slot i is routes[i] until the wildcard moves. */
        struct sc_route *r = &cfg->routes[cfg->nroutes++];
        if (chk(v, mg_json_get_object(root, v->e, &rj, "routes[%u]", i)) < 0)
            continue;
        int rc = parse_route(v, rj, i, r);
        if (rc < 0)
            return rc;
        if (!r->model)
            continue;
        char path[48];
        snprintf(path, sizeof path, "routes[%u].model", i);
        if (r->wildcard) {
            if (wild >= 0)
                verr(v, path, "a second \"*\" route (the first is routes[%d]); at most one route may match any model",
                     wild);
            else
                wild = (int)i;
            continue;
        }
        for (unsigned k = 0; k + 1 < cfg->nroutes; k++) {
            const struct sc_route *q = &cfg->routes[k];
            if (q->model && strcmp(q->model, r->model) == 0) {
                verr(v, path, "model \"%s\" is already served by routes[%u]", r->model, k);
                break;
            }
        }
    }
    check_model_fallbacks(v, cfg);
    /* The wildcard is tried last; keep the others in document order. */
    for (unsigned i = 0; i + 1 < cfg->nroutes; i++) {
        if (cfg->routes[i].wildcard) {
            struct sc_route w = cfg->routes[i];
            memmove(&cfg->routes[i], &cfg->routes[i + 1],
                    (cfg->nroutes - i - 1) * sizeof *cfg->routes);
            cfg->routes[cfg->nroutes - 1] = w;
            break;
        }
    }
    return 0;
}

static void locate(const struct mg_yaml_pos *pos, struct mg_json_errs *e, size_t from)
{
    for (size_t i = from; i < e->n; i++) {
        struct mg_json_error *err = &e->items[i];
        unsigned line, col;
        if (!err->line && err->path && *err->path &&
            mg_yaml_pos_find(pos, err->path, &line, &col) == 0) {
            err->line = line;
            err->col = col;
        }
    }
}

int sc_config_parse(const char *data, size_t len, const char *name, struct sc_config **out,
                    struct mg_json_errs *errs, struct mg_json_errs *warns)
{
    struct mg_json_errs local_e, local_w;
    char saved_e[sizeof local_e.file], saved_w[sizeof local_w.file];
    struct sc_config_priv *p = NULL;
    json_t *doc = NULL;
    struct mg_yaml_pos *pos = NULL;
    int rc;

    *out = NULL;
    if (!name)
        name = "";
    /* Errors are always collected (the count decides the result), into the
     * caller's collectors when given. */
    mg_json_errs_init(&local_e, 1);
    mg_json_errs_init(&local_w, 1);
    struct vctx v = {errs ? errs : &local_e, warns ? warns : &local_w, NULL, 0};
    memcpy(saved_e, v.e->file, sizeof saved_e);
    memcpy(saved_w, v.w->file, sizeof saved_w);
    mg_json_errs_set_file(v.e, name);
    mg_json_errs_set_file(v.w, name);

    if (len > SC_CONFIG_MAX_BYTES) {
        mg_json_errs_add(v.e, "", 0, 0, "the route table is larger than the limit of %zu bytes",
                         SC_CONFIG_MAX_BYTES);
        rc = -EFBIG;
        goto out;
    }
    struct mg_yaml_limits lim;
    mg_yaml_limits_default(&lim);
    lim.max_bytes = SC_CONFIG_MAX_BYTES;
    lim.max_depth = 32;    /* the deepest key is 5 levels down */
    lim.max_nodes = 200000;
    rc = mg_yaml_load_pos(data, len, &lim, name, v.e, &doc, &pos);
    mg_json_errs_set_file(v.e, name);
    if (rc < 0) {
        if (mg_json_errs_count(v.e) == 0)
            mg_json_errs_add(v.e, "", 0, 0, "cannot parse the route table");
        goto out;
    }
    if (json_is_null(doc)) {
        mg_json_errs_add(v.e, "", 0, 0, "the route table is empty");
        rc = -EINVAL;
        goto out;
    }
    if (!json_is_object(doc)) {
        mg_json_errs_add(v.e, "", 0, 0, "expected an object (the route table), got %s",
                         mg_json_kind(doc));
        rc = -EINVAL;
        goto out;
    }
    if (!(p = calloc(1, sizeof *p))) {
        rc = -ENOMEM;
        goto out;
    }
    p->pub.refs_ = 1;
    p->pub.doc = doc;
    doc = NULL;
    v.doc = p->pub.doc;
    size_t e0 = v.e->n, w0 = v.w->n;
    rc = parse_doc(&v, &p->pub);
    /* Errors found walking the document name the line:col of their key. */
    locate(pos, v.e, e0);
    locate(pos, v.w, w0);
    if (rc == 0 && v.nerr)
        rc = -EINVAL;
    if (rc == 0 && !(p->pub.source = strdup(name)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = build_index(p);
    if (rc == -ENOMEM)
        mg_json_errs_add(v.e, "", 0, 0, "out of memory");
    if (rc < 0)
        goto out;
    *out = &p->pub;
    p = NULL;
out:
    config_free(p ? &p->pub : NULL);
    json_decref(doc);
    mg_yaml_pos_free(pos);
    mg_json_errs_set_file(v.e, saved_e);
    mg_json_errs_set_file(v.w, saved_w);
    mg_json_errs_free(&local_e);
    mg_json_errs_free(&local_w);
    return rc;
}

int sc_config_load(const char *path, struct sc_config **out, struct mg_json_errs *errs,
                   struct mg_json_errs *warns)
{
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = mg_read_file(path, SC_CONFIG_MAX_BYTES, &data, &len);
    if (rc < 0) {
        char saved[sizeof errs->file];
        if (errs) {
            memcpy(saved, errs->file, sizeof saved);
            mg_json_errs_set_file(errs, path);
            if (rc == -EFBIG)
                mg_json_errs_add(errs, "", 0, 0, "file is larger than the limit of %zu bytes",
                                 SC_CONFIG_MAX_BYTES);
            else
                mg_json_errs_add(errs, "", 0, 0, "cannot read: %s", strerror(-rc));
            mg_json_errs_set_file(errs, saved);
        }
        return rc;
    }
    rc = sc_config_parse(data, len, path, out, errs, warns);
    free(data);
    return rc;
}
