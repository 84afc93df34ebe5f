/* The retry budget (budget.h): retries in flight capped at a share of the
 * requests in flight, with a floor. A retry takes its slot with a
 * compare-and-swap on the retry count, so racing workers cannot together
 * pass the cap. docs/internals/sidecar-policies.md has the reasoning. */
#include "sidecar/budget.h"

#include <stdint.h>

/* The unit test defines this to run another thread's step just before the
 * CAS, so the race is replayed deterministically. */
#ifndef SC_BUDGET_RACE_POINT
#define SC_BUDGET_RACE_POINT(name) ((void)0)
#endif

void sc_budget_init(struct sc_budget *b, unsigned percent, unsigned min_retries)
{
    b->percent = percent;
    b->min_retries = min_retries;
    atomic_init(&b->requests, 0);
    atomic_init(&b->retries, 0);
    atomic_init(&b->refused, 0);
}

void sc_budget_request_start(struct sc_budget *b)
{
    atomic_fetch_add_explicit(&b->requests, 1, memory_order_relaxed);
}

/* Saturating decrement: an unpaired end (a caller's bug) must not wrap
 * the count to 4 billion and open the budget wide. */
static void dec_floor0(atomic_uint *v)
{
    unsigned cur = atomic_load_explicit(v, memory_order_relaxed);
    while (cur > 0 && !atomic_compare_exchange_weak_explicit(v, &cur, cur - 1,
                                                             memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

void sc_budget_request_end(struct sc_budget *b)
{
    dec_floor0(&b->requests);
}

int sc_budget_retry_start(struct sc_budget *b)
{
    unsigned cur = atomic_load_explicit(&b->retries, memory_order_relaxed);
    for (;;) {
        /* Checked as it will be once granted: after ≤ percent% of base.
         * The base is the requests in flight that are not retrying
         * (each retry in flight belongs to one request in flight). With
         * every request in the base, retrying requests would raise their
         * own cap and a storm would reach 1 / (1 - percent/100) attempts
         * per request (1.25 at 20%) instead of 1 + percent/100. Re-read
         * on each try: the cap follows the load. */
        uint64_t req = atomic_load_explicit(&b->requests, memory_order_relaxed);
        uint64_t after = (uint64_t)cur + 1;   /* retries once this one starts */
        uint64_t base = req > after ? req - after : 0;
        if (after > b->min_retries && after * 100 > base * b->percent) {
            atomic_fetch_add_explicit(&b->refused, 1, memory_order_relaxed);
            return 0;
        }
        SC_BUDGET_RACE_POINT("retry");
        if (atomic_compare_exchange_weak_explicit(&b->retries, &cur, cur + 1,
                                                  memory_order_relaxed, memory_order_relaxed))
            return 1;
    }
}

void sc_budget_retry_end(struct sc_budget *b)
{
    dec_floor0(&b->retries);
}
