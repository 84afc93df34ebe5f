/* TEMPORARY weak stand-ins for breaker.c, budget.c and ratelimit.c (branch
 * sc5-policy) so this branch links before they are merged; the real
 * definitions override these. Removed once sc5-policy is merged. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/breaker.h"
#include "sidecar/budget.h"
#include "sidecar/ratelimit.h"

#define WEAK __attribute__((weak))

WEAK void sc_breaker_init(struct sc_breaker *b, const struct sc_breaker_params *p,
                          struct sc_breaker_group *g)
{
    memset(b, 0, sizeof *b);
    b->p = *p;
    b->group = g;
}
WEAK void sc_breaker_group_init(struct sc_breaker_group *g, unsigned size, unsigned pct)
{
    memset(g, 0, sizeof *g);
    g->size = size;
    g->max_ejection_percent = pct;
}
WEAK int sc_breaker_allow(struct sc_breaker *b, uint64_t now_ms, sc_breaker_transition_cb cb,
                          void *data)
{
    return 1;
}
WEAK void sc_breaker_report(struct sc_breaker *b, int success, uint64_t now_ms,
                            sc_breaker_transition_cb cb, void *data)
{
}
WEAK enum sc_breaker_state sc_breaker_state(const struct sc_breaker *b)
{
    return SC_BREAKER_CLOSED;
}
WEAK const char *sc_breaker_state_name(enum sc_breaker_state s)
{
    return s == SC_BREAKER_OPEN ? "open" : s == SC_BREAKER_HALF_OPEN ? "half_open" : "closed";
}
WEAK void sc_budget_init(struct sc_budget *b, unsigned percent, unsigned min_retries)
{
    memset(b, 0, sizeof *b);
    b->percent = percent;
    b->min_retries = min_retries;
}
WEAK void sc_budget_request_start(struct sc_budget *b)
{
    atomic_fetch_add(&b->requests, 1);
}
WEAK void sc_budget_request_end(struct sc_budget *b)
{
    atomic_fetch_sub(&b->requests, 1);
}
WEAK int sc_budget_retry_start(struct sc_budget *b)
{
    atomic_fetch_add(&b->retries, 1);
    return 1;
}
WEAK void sc_budget_retry_end(struct sc_budget *b)
{
    atomic_fetch_sub(&b->retries, 1);
}
WEAK void sc_rate_init(struct sc_rate *r, double rate_per_s, double burst)
{
    r->per_ms = rate_per_s / 1000;
    r->burst = burst;
    atomic_store(&r->tat_us, 0);
}
WEAK int sc_rate_take(struct sc_rate *r, double cost, uint64_t now_us, uint64_t *retry_after_ms)
{
    return 1;
}
WEAK void sc_rate_settle(struct sc_rate *r, double delta, uint64_t now_us)
{
}
WEAK double sc_rate_available(const struct sc_rate *r, uint64_t now_us)
{
    return r->burst;
}
struct sc_rate_table {
    struct sc_rate one;
};
WEAK int sc_rate_table_new(size_t slots, double rate_per_s, double burst,
                           struct sc_rate_table **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    sc_rate_init(&(*out)->one, rate_per_s, burst);
    return 0;
}
WEAK void sc_rate_table_free(struct sc_rate_table *t)
{
    free(t);
}
WEAK struct sc_rate *sc_rate_table_get(struct sc_rate_table *t, uint64_t key_hash,
                                       uint64_t now_us)
{
    return &t->one;
}
WEAK uint64_t sc_rate_key_hash(const char *token, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 1099511628211ull;
    return h;
}
