/* The process-wide policy state of the route table: circuit breakers (per
 * route, version and endpoint), concurrency slots (per route and version),
 * retry budgets and rate-limit buckets (per route) and the load figures
 * the admission poller publishes (per endpoint). Every worker shares them
 * (atomics only on the request path), and they outlive reloads: a table
 * being installed looks its objects up in a registry by key (the route's
 * model, version and endpoint names plus the settings that shape them) and
 * reuses those whose key stays, so a reload does not close an open
 * breaker or refill a drained bucket. An object changes (and starts
 * afresh) only when its own settings change.
 *
 * Lifetime: objects are reference counted; struct sc_policy (one per
 * table, attached to the struct sc_config) holds one reference to each
 * object the table uses and gives them back when the table is freed, i.e.
 * when the last worker and the last request in flight have let go of it.
 * The registry's mutex is taken only while tables are built and freed,
 * never per request.
 *
 * Built on the main thread (sc_policy_attach) before the table is posted
 * to the workers. */
#ifndef SC_POLICY_H
#define SC_POLICY_H

#include <stdatomic.h>
#include <stdint.h>

#include "lib/metrics.h"
#include "sidecar/breaker.h"
#include "sidecar/budget.h"
#include "sidecar/config.h"
#include "sidecar/ratelimit.h"

struct sc_shared {               /* registry header, first member of each object */
    struct sc_shared *next;
    char *key;
    unsigned refs;               /* under the registry mutex */
    void (*destroy)(struct sc_shared *s);
};

/* One endpoint of a version of a route. */
struct sc_pol_ep {
    struct sc_shared hdr;
    char *model, *version, *endpoint;   /* metric labels */
    struct sc_pol_ver *ver;             /* holds a reference (the breaker's group) */
    int has_breaker;
    struct sc_breaker br;
    struct mg_gauge *state_gauge;
    struct mg_counter *to[3];           /* transitions, by new state */
    atomic_uint inflight;               /* tries in flight, all workers (GET /state) */
    /* Published by the admission poller (main thread). */
    atomic_uint_fast64_t polled_ms;     /* monotonic ms of the last good poll (at first:
                                         * when the object was made) */
    atomic_uint waiting;                /* vllm:num_requests_waiting */
    atomic_uint kv_ppm;                 /* vllm:kv_cache_usage_perc, parts per million */
    atomic_uint_fast64_t polls, poll_errors;
};

/* A version of a route: its breaker group and concurrency slots. */
struct sc_pol_ver {
    struct sc_shared hdr;
    struct sc_breaker_group group;
    unsigned max_concurrent;            /* 0: no limit */
    atomic_uint inflight;               /* requests holding a slot, all workers */
};

/* A route: its retry budget and rate limits. */
struct sc_pol_route {
    struct sc_shared hdr;
    int has_budget;
    struct sc_budget budget;
    int has_rps, has_tpm;
    struct sc_rate rps, tpm;
    struct sc_rate_table *key_rps, *key_tpm;   /* NULL: no per-key limit */
    struct mg_counter *budget_refused;
};

/* What one table holds: per route (table order) and version. */
struct sc_policy_version {
    struct sc_pol_ver *ver;
    struct sc_pol_ep **eps;             /* nendpoints entries */
};
struct sc_policy_route {
    struct sc_pol_route *route;         /* NULL without retries or rateLimit */
    struct sc_policy_version *versions; /* NULL without circuitBreaker or admission */
};
struct sc_policy {
    unsigned nroutes;
    struct sc_policy_route *routes;
};

/* Builds cfg's policy state (looking up / creating the shared objects)
 * and attaches it to cfg (cfg->policy, released with cfg). Main thread,
 * after sc_metrics_init. 0 or -ENOMEM. */
int sc_policy_attach(struct sc_config *cfg);

/* The policy of a route of cfg, or NULL (no policy at all). */
static inline const struct sc_policy_route *sc_policy_route(const struct sc_config *cfg,
                                                            const struct sc_route *r)
{
    const struct sc_policy *p = cfg->policy;
    return p ? &p->routes[r - cfg->routes] : NULL;
}

/* The breaker transition callback (state gauge, transition counter, log). */
void sc_policy_breaker_cb(struct sc_breaker *b, enum sc_breaker_state from,
                          enum sc_breaker_state to, void *data);

/* Whether an endpoint is saturated for admission a (its figures over a
 * threshold, or older than staleAfter; an endpoint not polled yet is not
 * saturated for staleAfter after it was set up). */
int sc_policy_saturated(const struct sc_pol_ep *ep, const struct sc_admission *a,
                        uint64_t now_ms);

#endif
