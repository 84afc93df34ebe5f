/* The process-wide policy registry (policy.h): shared breakers, slots,
 * budgets and buckets, looked up by key when a table is installed. */
#define _GNU_SOURCE
#include "sidecar/policy.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "sidecar/sidecar.h"

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sc_shared *reg_head;

/* Finds key (taking a reference) or returns NULL. Under reg_mu. */
static struct sc_shared *reg_find(const char *key)
{
    for (struct sc_shared *s = reg_head; s; s = s->next)
        if (strcmp(s->key, key) == 0) {
            s->refs++;
            return s;
        }
    return NULL;
}

/* Adds s (with one reference, the caller's). Under reg_mu; takes key. */
static void reg_add(struct sc_shared *s, char *key, void (*destroy)(struct sc_shared *))
{
    s->key = key;
    s->refs = 1;
    s->destroy = destroy;
    s->next = reg_head;
    reg_head = s;
}

static void reg_unref_locked(struct sc_shared *s)
{
    if (!s || --s->refs > 0)
        return;
    for (struct sc_shared **pp = &reg_head; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    free(s->key);
    s->destroy(s);
}

/* ------------------------------------------------------------------------ */

static void ver_destroy(struct sc_shared *s)
{
    free(s);
}

static void route_destroy(struct sc_shared *s)
{
    struct sc_pol_route *r = (struct sc_pol_route *)s;
    if (r->key_rps)
        sc_rate_table_free(r->key_rps);
    if (r->key_tpm)
        sc_rate_table_free(r->key_tpm);
    free(r);
}

static void ep_destroy(struct sc_shared *s)
{
    struct sc_pol_ep *e = (struct sc_pol_ep *)s;
    if (e->has_breaker && sc_g.m.breaker_state) {
        const char *v[] = {e->model, e->version, e->endpoint, NULL};
        mg_metrics_remove(sc_g.m.breaker_state, v);
    }
    reg_unref_locked(&e->ver->hdr);
    free(e->model);
    free(e->version);
    free(e->endpoint);
    free(e);
}

static char *keyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *keyf(const char *fmt, ...)
{
    char *k = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&k, fmt, ap) < 0)
        k = NULL;
    va_end(ap);
    return k;
}

static struct sc_pol_route *route_get(const struct sc_route *r)
{
    const struct sc_retries *rt = r->retries;
    const struct sc_rate_cfg *rc = r->rate;
    char *key = keyf("R\x1f%s\x1f%u/%u\x1f%g/%g/%g/%g/%g/%g/%u", r->model,
                     rt ? rt->budget_percent : 0, rt ? rt->min_retries : 0, rc ? rc->rps : 0,
                     rc ? rc->burst : 0, rc ? rc->tpm : 0, rc ? rc->key_rps : 0,
                     rc ? rc->key_burst : 0, rc ? rc->key_tpm : 0, rc ? rc->key_table : 0);
    if (!key)
        return NULL;
    struct sc_shared *s = reg_find(key);
    if (s) {
        free(key);
        return (struct sc_pol_route *)s;
    }
    struct sc_pol_route *p = calloc(1, sizeof *p);
    if (!p)
        goto fail;
    if (rt) {
        p->has_budget = 1;
        sc_budget_init(&p->budget, rt->budget_percent, rt->min_retries);
    }
    if (rc && rc->rps) {
        p->has_rps = 1;
        sc_rate_init(&p->rps, rc->rps, rc->burst);
    }
    if (rc && rc->tpm) {
        p->has_tpm = 1;
        sc_rate_init(&p->tpm, rc->tpm / 60.0, rc->tpm);
    }
    if (rc && rc->key_rps && sc_rate_table_new(rc->key_table, rc->key_rps, rc->key_burst,
                                               &p->key_rps) < 0)
        goto fail;
    if (rc && rc->key_tpm && sc_rate_table_new(rc->key_table, rc->key_tpm / 60.0, rc->key_tpm,
                                               &p->key_tpm) < 0)
        goto fail;
    const char *lv[] = {r->model, NULL};
    if (sc_g.m.budget_refused)
        mg_metrics_counter_get(sc_g.m.budget_refused, lv, &p->budget_refused);
    reg_add(&p->hdr, key, route_destroy);
    return p;
fail:
    if (p)
        route_destroy(&p->hdr);
    free(key);
    return NULL;
}

static struct sc_pol_ver *ver_get(const struct sc_route *r, const struct sc_version *v)
{
    const struct sc_breaker_cfg *b = r->breaker;
    char *key = keyf("V\x1f%s\x1f%s\x1f%u/%u/%u", r->model, v->name, v->nendpoints,
                     b ? b->max_ejection_percent : 0, b ? b->max_concurrent : 0);
    if (!key)
        return NULL;
    struct sc_shared *s = reg_find(key);
    if (s) {
        free(key);
        return (struct sc_pol_ver *)s;
    }
    struct sc_pol_ver *p = calloc(1, sizeof *p);
    if (!p) {
        free(key);
        return NULL;
    }
    /* The ejection cap keeps a version from losing all its endpoints to
     * breakers; a version of one endpoint would then never open its
     * breaker at all (the usual sidecar: one local model server), so its
     * breaker may always open and the fallback chain takes over. */
    unsigned pct = b ? b->max_ejection_percent : 100;
    if (v->nendpoints == 1)
        pct = 100;
    sc_breaker_group_init(&p->group, v->nendpoints, pct);
    p->max_concurrent = b ? b->max_concurrent : 0;
    reg_add(&p->hdr, key, ver_destroy);
    return p;
}

static struct sc_pol_ep *ep_get(const struct sc_route *r, const struct sc_version *v,
                                const char *endpoint, struct sc_pol_ver *pv)
{
    const struct sc_breaker_cfg *b = r->breaker;
    char *key = b ? keyf("E\x1f%s\x1f%s\x1f%s\x1f%p\x1f%u/%g/%u/%u/%u/%u/%u", r->model,
                         v->name, endpoint, (void *)pv, b->consecutive_failures,
                         b->failure_rate, (unsigned)b->window_ms, b->min_requests,
                         (unsigned)b->open_ms, (unsigned)b->max_open_ms, b->half_open_requests)
                  : keyf("E\x1f%s\x1f%s\x1f%s\x1f%p\x1f-", r->model, v->name, endpoint,
                         (void *)pv);
    if (!key)
        return NULL;
    struct sc_shared *s = reg_find(key);
    if (s) {
        free(key);
        return (struct sc_pol_ep *)s;
    }
    struct sc_pol_ep *e = calloc(1, sizeof *e);
    if (!e || !(e->model = strdup(r->model)) || !(e->version = strdup(v->name)) ||
        !(e->endpoint = strdup(endpoint))) {
        if (e) {
            free(e->model);
            free(e->version);
            free(e->endpoint);
        }
        free(e);
        free(key);
        return NULL;
    }
    pv->hdr.refs++;
    e->ver = pv;
    /* Not polled yet: unsaturated until staleAfter has passed, so a new
     * table (or a start) does not shed before the first poll. */
    atomic_store(&e->polled_ms, mg_now_ns() / 1000000);
    if (b) {
        struct sc_breaker_params bp = {
            .consecutive_failures = b->consecutive_failures,
            .failure_rate = b->failure_rate,
            .window_ms = b->window_ms,
            .min_requests = b->min_requests,
            .open_ms = b->open_ms,
            .max_open_ms = b->max_open_ms,
            .half_open_requests = b->half_open_requests,
            .max_ejection_percent = b->max_ejection_percent,
        };
        e->has_breaker = 1;
        sc_breaker_init(&e->br, &bp, &pv->group);
        const char *lv[] = {e->model, e->version, e->endpoint, NULL};
        if (sc_g.m.breaker_state)
            mg_metrics_gauge_get(sc_g.m.breaker_state, lv, &e->state_gauge);
        mg_gauge_set(e->state_gauge, 0);
        static const char *const names[3] = {"closed", "open", "half_open"};
        for (unsigned i = 0; i < 3 && sc_g.m.breaker_trans; i++) {
            const char *tv[] = {e->model, e->version, e->endpoint, names[i], NULL};
            mg_metrics_counter_get(sc_g.m.breaker_trans, tv, &e->to[i]);
        }
    }
    reg_add(&e->hdr, key, ep_destroy);
    return e;
}

void sc_policy_breaker_cb(struct sc_breaker *b, enum sc_breaker_state from,
                          enum sc_breaker_state to, void *data)
{
    struct sc_pol_ep *e = data;
    if (!e || (unsigned)to > 2)
        return;
    mg_gauge_set(e->state_gauge, (double)to);
    mg_counter_inc(e->to[to]);
    mg_log(to == SC_BREAKER_OPEN ? MG_LOG_WARN : MG_LOG_INFO, "circuit breaker", "model",
           MG_S(e->model), "version", MG_S(e->version), "endpoint", MG_S(e->endpoint), "from",
           MG_S(sc_breaker_state_name(from)), "to", MG_S(sc_breaker_state_name(to)));
}

int sc_policy_saturated(const struct sc_pol_ep *ep, const struct sc_admission *a, uint64_t now_ms)
{
    uint64_t at = atomic_load_explicit(&ep->polled_ms, memory_order_relaxed);
    if (!at || now_ms > at + a->stale_ms)
        return 1;
    if (atomic_load_explicit(&ep->waiting, memory_order_relaxed) > a->max_waiting)
        return 1;
    return (double)atomic_load_explicit(&ep->kv_ppm, memory_order_relaxed) / 1e6 > a->max_kv;
}

/* ------------------------------------------------------------------------ */

static void policy_free(void *arg)
{
    struct sc_policy *p = arg;
    if (!p)
        return;
    pthread_mutex_lock(&reg_mu);
    for (unsigned i = 0; p->routes && i < p->nroutes; i++) {
        struct sc_policy_route *pr = &p->routes[i];
        if (pr->route)
            reg_unref_locked(&pr->route->hdr);
        /* versions was sized by the route's versions; a NULL ver ends it. */
        for (unsigned j = 0; pr->versions && pr->versions[j].ver; j++) {
            struct sc_policy_version *pv = &pr->versions[j];
            for (unsigned k = 0; pv->eps && pv->eps[k]; k++)
                reg_unref_locked(&pv->eps[k]->hdr);
            free(pv->eps);
            reg_unref_locked(&pv->ver->hdr);
        }
        free(pr->versions);
    }
    pthread_mutex_unlock(&reg_mu);
    free(p->routes);
    free(p);
}

int sc_policy_attach(struct sc_config *cfg)
{
    struct sc_policy *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->nroutes = cfg->nroutes;
    p->routes = calloc(cfg->nroutes ? cfg->nroutes : 1, sizeof *p->routes);
    if (!p->routes) {
        free(p);
        return -ENOMEM;
    }
    int rc = 0;
    pthread_mutex_lock(&reg_mu);
    for (unsigned i = 0; i < cfg->nroutes && rc == 0; i++) {
        const struct sc_route *r = &cfg->routes[i];
        struct sc_policy_route *pr = &p->routes[i];
        if ((r->retries || r->rate) && !(pr->route = route_get(r))) {
            rc = -ENOMEM;
            break;
        }
        if (!r->breaker && !r->admission)
            continue;
        /* One spare entry: a NULL ver marks the end for policy_free. */
        if (!(pr->versions = calloc(r->nversions + 1, sizeof *pr->versions))) {
            rc = -ENOMEM;
            break;
        }
        for (unsigned j = 0; j < r->nversions && rc == 0; j++) {
            const struct sc_version *v = &r->versions[j];
            struct sc_policy_version *pv = &pr->versions[j];
            if (!(pv->ver = ver_get(r, v)) ||
                !(pv->eps = calloc(v->nendpoints + 1, sizeof *pv->eps))) {
                rc = -ENOMEM;
                break;
            }
            for (unsigned k = 0; k < v->nendpoints; k++)
                if (!(pv->eps[k] = ep_get(r, v, v->endpoints[k], pv->ver))) {
                    rc = -ENOMEM;
                    break;
                }
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (rc < 0) {
        policy_free(p);
        return rc;
    }
    cfg->policy = p;
    cfg->policy_free = policy_free;
    return 0;
}
