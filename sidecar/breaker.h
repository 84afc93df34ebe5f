/* Circuit breakers, one per upstream endpoint, shared by every worker
 * thread (an endpoint that fails is failing for all of them). Lock-free:
 * state and counters are C11 atomics; a state change is a compare-and-swap
 * so exactly one thread performs (and logs, and counts) each transition.
 *
 *   CLOSED ──(consecutive failures ≥ N, or failure rate ≥ R over the
 *             window with ≥ min requests)──▶ OPEN
 *   OPEN ──(open duration elapsed)──▶ HALF_OPEN
 *   HALF_OPEN ──(half_open_requests probes all succeed)──▶ CLOSED
 *   HALF_OPEN ──(any probe fails)──▶ OPEN, for longer
 *
 * The open duration doubles with each consecutive trip (open → half-open →
 * open) up to max_open, and resets when the breaker closes. "Failure" is
 * the caller's classification: connect failure, reset, timeout, 5xx, and
 * 429/503 (overload is not success). The window is a ring of 10 buckets
 * (window / 10 each), so the rate forgets old traffic smoothly.
 *
 * Ejection cap: a breaker may open only while fewer than
 * max_ejection_percent of its group's (a version's endpoints) breakers are
 * open; past that a failing endpoint stays CLOSED (counted as a refused
 * ejection), so a version never loses all its capacity to breakers alone.
 * At least one endpoint may always be ejected when the group has 2+. */
#ifndef SC_BREAKER_H
#define SC_BREAKER_H

#include <stdatomic.h>
#include <stdint.h>

enum sc_breaker_state { SC_BREAKER_CLOSED = 0, SC_BREAKER_OPEN, SC_BREAKER_HALF_OPEN };

struct sc_breaker_params {
    unsigned consecutive_failures;  /* 0: this trigger is off */
    double failure_rate;            /* 0..1; 0: off */
    uint32_t window_ms;
    unsigned min_requests;          /* in the window, before the rate counts */
    uint32_t open_ms;               /* first trip */
    uint32_t max_open_ms;           /* cap of the doubling */
    unsigned half_open_requests;    /* probes let through, all must succeed */
    unsigned max_ejection_percent;  /* of the group */
};

struct sc_breaker_group {           /* a version's endpoints */
    atomic_uint open;               /* breakers of the group now OPEN or HALF_OPEN */
    unsigned size;
    unsigned max_ejection_percent;
};

#define SC_BREAKER_BUCKETS 10

struct sc_breaker {
    struct sc_breaker_params p;
    struct sc_breaker_group *group;
    atomic_int state;
    atomic_uint consecutive;
    atomic_uint_fast64_t open_until_ms;   /* OPEN: when it may half-open */
    atomic_uint trips;                    /* consecutive trips, for the doubling
                                           * (the last streak while CLOSED; a
                                           * trip from CLOSED restarts it at 1) */
    atomic_uint probes_out;               /* HALF_OPEN: probes let through */
    atomic_uint probes_ok;
    atomic_uint_fast64_t half_open_since_ms; /* HALF_OPEN: when this round of probes began */
    atomic_uint_fast64_t bucket_start[SC_BREAKER_BUCKETS];
    atomic_uint bucket_total[SC_BREAKER_BUCKETS];
    atomic_uint bucket_fail[SC_BREAKER_BUCKETS];
    atomic_uint_fast64_t transitions;     /* total state changes */
    atomic_uint_fast64_t ejections_refused;
};

/* Called (from whichever thread made it) on each state change, once. */
typedef void (*sc_breaker_transition_cb)(struct sc_breaker *b, enum sc_breaker_state from,
                                         enum sc_breaker_state to, void *data);

void sc_breaker_init(struct sc_breaker *b, const struct sc_breaker_params *p,
                     struct sc_breaker_group *g);
void sc_breaker_group_init(struct sc_breaker_group *g, unsigned size,
                           unsigned max_ejection_percent);

/* May a request go to this endpoint now? 1 yes (in HALF_OPEN this takes
 * one probe slot: the caller must report its outcome), 0 no. An OPEN
 * breaker whose time is up moves to HALF_OPEN here. now_ms: a monotonic
 * clock (mg_loop_now). A round of probes with no verdict after the current
 * open duration (a probe abandoned without a report) is presumed lost: a
 * new round of half_open_requests probes may start, so a lost report can
 * delay recovery but never wedge the breaker half-open. */
int sc_breaker_allow(struct sc_breaker *b, uint64_t now_ms, sc_breaker_transition_cb cb,
                     void *data);
/* The outcome of a request that sc_breaker_allow let through. */
void sc_breaker_report(struct sc_breaker *b, int success, uint64_t now_ms,
                       sc_breaker_transition_cb cb, void *data);

enum sc_breaker_state sc_breaker_state(const struct sc_breaker *b);
const char *sc_breaker_state_name(enum sc_breaker_state s);   /* "closed", ... */

#endif
