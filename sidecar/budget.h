/* The retry budget: retries in flight may be at most percent% of the
 * requests in flight, and at least min_retries (a floor, so a quiet
 * service can still retry). The requests counted are those not retrying
 * themselves (requests - retries in flight): a request on its retry does
 * not widen the budget for itself, which is what makes the bound below
 * hold (counting it would allow 1 / (1 - percent/100) attempts per request
 * under a storm). Call sc_budget_retry_end when the retry attempt ends. Shared by the workers of a route; atomics
 * only. A retry that the budget refuses is not sent: the caller moves on
 * to its fallback or fails the request, and counts the refusal. This is
 * what keeps retries from amplifying an outage: under a storm of failures
 * upstream attempts stay at or below (1 + percent/100) × requests plus the
 * floor. */
#ifndef SC_BUDGET_H
#define SC_BUDGET_H

#include <stdatomic.h>

struct sc_budget {
    unsigned percent;
    unsigned min_retries;
    atomic_uint requests;      /* client requests in flight */
    atomic_uint retries;       /* retries in flight */
    atomic_uint_fast64_t refused;
};

void sc_budget_init(struct sc_budget *b, unsigned percent, unsigned min_retries);
void sc_budget_request_start(struct sc_budget *b);
void sc_budget_request_end(struct sc_budget *b);
/* 1: a retry may start (counted in flight until sc_budget_retry_end); 0:
 * refused (counted). */
int sc_budget_retry_start(struct sc_budget *b);
void sc_budget_retry_end(struct sc_budget *b);

#endif
