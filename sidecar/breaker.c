/* Circuit breakers (breaker.h): one per upstream endpoint, shared by every
 * worker thread without a lock. docs/internals/sidecar-policies.md explains
 * the algorithm; the comments here say why each step is ordered as it is.
 *
 * The invariants that make it safe without a lock:
 * - every state change is won by exactly one thread with a compare-and-swap,
 *   and only that thread counts it and calls the callback;
 * - open_until_ms is NEVER_MS except while OPEN with its timer armed. The
 *   thread that opens the breaker arms the timer last, with a release
 *   store; the way out of OPEN is a CAS on the armed value (not on the
 *   state), so a thread that read an old OPEN episode's deadline cannot
 *   half-open a newer episode (no ABA on the state);
 * - the thread that wins OPEN→HALF_OPEN resets the probe counters before
 *   it publishes HALF_OPEN (release), so probers see a fresh round. A
 *   thread stalled inside allow() across a whole OPEN period can still
 *   take a slot of the new round and have its report ignored; that slot,
 *   like a probe whose caller never reports, is recovered when the round
 *   times out (one open duration without a verdict starts a new round). */
#include "sidecar/breaker.h"

#include <stddef.h>

#define NEVER_MS UINT64_MAX

/* The unit test defines this to run another thread's step at a race
 * point (just before a CAS), so each race is replayed deterministically. */
#ifndef SC_BREAKER_RACE_POINT
#define SC_BREAKER_RACE_POINT(name) ((void)0)
#endif

static unsigned probes_wanted(const struct sc_breaker *b)
{
    return b->p.half_open_requests ? b->p.half_open_requests : 1;
}

static uint64_t bucket_ms(const struct sc_breaker *b)
{
    uint64_t w = b->p.window_ms / SC_BREAKER_BUCKETS;
    return w ? w : 1;
}

static void window_clear(struct sc_breaker *b)
{
    for (unsigned i = 0; i < SC_BREAKER_BUCKETS; i++) {
        atomic_store_explicit(&b->bucket_start[i], NEVER_MS, memory_order_relaxed);
        atomic_store_explicit(&b->bucket_total[i], 0, memory_order_relaxed);
        atomic_store_explicit(&b->bucket_fail[i], 0, memory_order_relaxed);
    }
}

void sc_breaker_group_init(struct sc_breaker_group *g, unsigned size,
                           unsigned max_ejection_percent)
{
    atomic_init(&g->open, 0);
    g->size = size;
    g->max_ejection_percent = max_ejection_percent > 100 ? 100 : max_ejection_percent;
}

void sc_breaker_init(struct sc_breaker *b, const struct sc_breaker_params *p,
                     struct sc_breaker_group *g)
{
    b->p = *p;
    b->group = g;
    atomic_init(&b->state, SC_BREAKER_CLOSED);
    atomic_init(&b->consecutive, 0);
    atomic_init(&b->open_until_ms, NEVER_MS);
    atomic_init(&b->trips, 0);
    atomic_init(&b->probes_out, 0);
    atomic_init(&b->probes_ok, 0);
    atomic_init(&b->half_open_since_ms, 0);
    for (unsigned i = 0; i < SC_BREAKER_BUCKETS; i++) {
        atomic_init(&b->bucket_start[i], NEVER_MS);
        atomic_init(&b->bucket_total[i], 0);
        atomic_init(&b->bucket_fail[i], 0);
    }
    atomic_init(&b->transitions, 0);
    atomic_init(&b->ejections_refused, 0);
}

enum sc_breaker_state sc_breaker_state(const struct sc_breaker *b)
{
    return (enum sc_breaker_state)atomic_load_explicit(&b->state, memory_order_acquire);
}

const char *sc_breaker_state_name(enum sc_breaker_state s)
{
    switch (s) {
    case SC_BREAKER_CLOSED: return "closed";
    case SC_BREAKER_OPEN: return "open";
    case SC_BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

/* How many of the group may be ejected at once: max_ejection_percent of
 * its size rounded down (never more than the share asked for), but at
 * least one when the group has two or more endpoints. A group of one
 * follows the percentage alone: only 100 lets its sole endpoint go, since
 * ejecting it leaves the version nothing (the fallback chain takes over). */
static unsigned group_cap(const struct sc_breaker_group *g)
{
    unsigned cap = (unsigned)(((uint64_t)g->size * g->max_ejection_percent) / 100);
    if (cap == 0 && g->size >= 2)
        cap = 1;
    return cap;
}

/* Takes one ejection slot of the group; 0 when the cap is reached. */
static int group_claim(struct sc_breaker_group *g)
{
    if (!g)
        return 1;
    unsigned cap = group_cap(g);
    unsigned cur = atomic_load_explicit(&g->open, memory_order_relaxed);
    do {
        if (cur >= cap)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&g->open, &cur, cur + 1,
                                                    memory_order_acq_rel,
                                                    memory_order_relaxed));
    return 1;
}

static void group_release(struct sc_breaker_group *g)
{
    if (g)
        atomic_fetch_sub_explicit(&g->open, 1, memory_order_acq_rel);
}

static uint64_t open_duration(const struct sc_breaker *b, unsigned trips)
{
    uint64_t d = b->p.open_ms, cap = b->p.max_open_ms;
    if (cap < d)
        cap = d;
    /* Doubling by steps rather than a shift: no overflow whatever trips. */
    for (unsigned i = 1; i < trips && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

static void notify(struct sc_breaker *b, enum sc_breaker_state from, enum sc_breaker_state to,
                   sc_breaker_transition_cb cb, void *data)
{
    atomic_fetch_add_explicit(&b->transitions, 1, memory_order_relaxed);
    if (cb)
        cb(b, from, to, data);
}

/* The thread that won the CAS into OPEN: forget the window, then arm the
 * timer last (release) so whoever sees it armed sees the rest. */
static void enter_open(struct sc_breaker *b, enum sc_breaker_state from, uint64_t now_ms,
                       sc_breaker_transition_cb cb, void *data)
{
    unsigned trips;
    if (from == SC_BREAKER_CLOSED) {
        trips = 1;
        atomic_store_explicit(&b->trips, 1, memory_order_relaxed);
    } else {
        trips = atomic_fetch_add_explicit(&b->trips, 1, memory_order_relaxed) + 1;
    }
    atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
    window_clear(b);
    atomic_store_explicit(&b->open_until_ms, now_ms + open_duration(b, trips),
                          memory_order_release);
    notify(b, from, SC_BREAKER_OPEN, cb, data);
}

static void trip_closed(struct sc_breaker *b, uint64_t now_ms, sc_breaker_transition_cb cb,
                        void *data)
{
    /* The ejection slot first: opening and then finding the group full
     * would mean a visible OPEN→CLOSED flap. A thread that claims a slot
     * and then loses the state CAS gives it back; meanwhile another
     * breaker of the group may see one slot too few and stay closed for
     * this failure (it retries on its next one). */
    if (!group_claim(b->group)) {
        atomic_fetch_add_explicit(&b->ejections_refused, 1, memory_order_relaxed);
        return;
    }
    int expect = SC_BREAKER_CLOSED;
    SC_BREAKER_RACE_POINT("trip");
    if (!atomic_compare_exchange_strong_explicit(&b->state, &expect, SC_BREAKER_OPEN,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        group_release(b->group);
        return;
    }
    enter_open(b, SC_BREAKER_CLOSED, now_ms, cb, data);
}

/* Records one outcome in the bucket of now and returns the window's
 * totals. A bucket that holds an older period is recycled by whoever
 * swaps its start first; outcomes other threads add in the instant
 * between that swap and the reset are lost, which only blurs a statistic. */
static void window_record(struct sc_breaker *b, int success, uint64_t now_ms, unsigned *total,
                          unsigned *fail)
{
    uint64_t bw = bucket_ms(b), epoch = now_ms / bw, start = epoch * bw;
    unsigned i = (unsigned)(epoch % SC_BREAKER_BUCKETS);
    uint64_t seen = atomic_load_explicit(&b->bucket_start[i], memory_order_acquire);
    if (seen != start) {
        if (seen != NEVER_MS && seen > start) {
            /* A clock that went backwards (a caller's bug): count nothing. */
            *total = *fail = 0;
            return;
        }
        if (atomic_compare_exchange_strong_explicit(&b->bucket_start[i], &seen, start,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            atomic_store_explicit(&b->bucket_total[i], 0, memory_order_relaxed);
            atomic_store_explicit(&b->bucket_fail[i], 0, memory_order_relaxed);
        }
    }
    atomic_fetch_add_explicit(&b->bucket_total[i], 1, memory_order_relaxed);
    if (!success)
        atomic_fetch_add_explicit(&b->bucket_fail[i], 1, memory_order_relaxed);

    /* The window: the buckets whose period started less than
     * SC_BREAKER_BUCKETS periods ago (the current one included). */
    unsigned t = 0, f = 0;
    for (unsigned k = 0; k < SC_BREAKER_BUCKETS; k++) {
        uint64_t s = atomic_load_explicit(&b->bucket_start[k], memory_order_acquire);
        if (s == NEVER_MS || s > start || (start - s) / bw >= SC_BREAKER_BUCKETS)
            continue;
        t += atomic_load_explicit(&b->bucket_total[k], memory_order_relaxed);
        f += atomic_load_explicit(&b->bucket_fail[k], memory_order_relaxed);
    }
    *total = t;
    *fail = f;
}

int sc_breaker_allow(struct sc_breaker *b, uint64_t now_ms, sc_breaker_transition_cb cb,
                     void *data)
{
    for (;;) {
        int s = atomic_load_explicit(&b->state, memory_order_acquire);
        if (s == SC_BREAKER_CLOSED)
            return 1;
        if (s == SC_BREAKER_OPEN) {
            uint64_t until = atomic_load_explicit(&b->open_until_ms, memory_order_acquire);
            if (until == NEVER_MS || now_ms < until)
                return 0;
            /* Disarming the timer is the claim on OPEN→HALF_OPEN: it
             * succeeds only on this episode's deadline. */
            SC_BREAKER_RACE_POINT("half_open");
            if (!atomic_compare_exchange_strong_explicit(&b->open_until_ms, &until, NEVER_MS,
                                                         memory_order_acq_rel,
                                                         memory_order_acquire))
                continue;   /* another thread moved it: look again */
            atomic_store_explicit(&b->half_open_since_ms, now_ms, memory_order_relaxed);
            atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
            atomic_store_explicit(&b->probes_out, 0, memory_order_relaxed);
            atomic_store_explicit(&b->state, SC_BREAKER_HALF_OPEN, memory_order_release);
            notify(b, SC_BREAKER_OPEN, SC_BREAKER_HALF_OPEN, cb, data);
            continue;       /* and take a probe slot like anyone else */
        }
        /* HALF_OPEN: one probe slot each, up to half_open_requests. */
        unsigned want = probes_wanted(b);
        unsigned out = atomic_load_explicit(&b->probes_out, memory_order_relaxed);
        while (out < want) {
            SC_BREAKER_RACE_POINT("probe");
            if (atomic_compare_exchange_weak_explicit(&b->probes_out, &out, out + 1,
                                                      memory_order_acq_rel,
                                                      memory_order_relaxed))
                return 1;
        }
        /* Every slot is out. A round without a verdict for one open
         * duration has lost a report: whoever moves the round's start
         * first opens a new round (no state change, no callback). */
        uint64_t since = atomic_load_explicit(&b->half_open_since_ms, memory_order_acquire);
        uint64_t round = open_duration(b, atomic_load_explicit(&b->trips, memory_order_relaxed));
        if (now_ms < since || now_ms - since < round)
            return 0;
        SC_BREAKER_RACE_POINT("round");
        if (!atomic_compare_exchange_strong_explicit(&b->half_open_since_ms, &since, now_ms,
                                                     memory_order_acq_rel,
                                                     memory_order_relaxed))
            continue;
        atomic_store_explicit(&b->probes_ok, 0, memory_order_relaxed);
        atomic_store_explicit(&b->probes_out, 0, memory_order_release);
        /* and loop: this caller takes the new round's first slot (or a
         * racing one does) */
    }
}

void sc_breaker_report(struct sc_breaker *b, int success, uint64_t now_ms,
                       sc_breaker_transition_cb cb, void *data)
{
    int s = atomic_load_explicit(&b->state, memory_order_acquire);
    if (s == SC_BREAKER_OPEN)
        return;   /* a request that began before the trip: the trip already counted */

    if (s == SC_BREAKER_HALF_OPEN) {
        if (!success) {
            int expect = SC_BREAKER_HALF_OPEN;
            SC_BREAKER_RACE_POINT("reopen");
            if (atomic_compare_exchange_strong_explicit(&b->state, &expect, SC_BREAKER_OPEN,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire))
                enter_open(b, SC_BREAKER_HALF_OPEN, now_ms, cb, data);
            return;
        }
        /* A success counts as a probe's only while fewer successes than
         * probes let through have been counted, so a late report from a
         * request that began while CLOSED cannot close the breaker alone. */
        unsigned ok = atomic_load_explicit(&b->probes_ok, memory_order_relaxed);
        do {
            if (ok >= atomic_load_explicit(&b->probes_out, memory_order_relaxed))
                return;
        } while (!atomic_compare_exchange_weak_explicit(&b->probes_ok, &ok, ok + 1,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed));
        if (ok + 1 < probes_wanted(b))
            return;
        int expect = SC_BREAKER_HALF_OPEN;
        SC_BREAKER_RACE_POINT("close");
        if (!atomic_compare_exchange_strong_explicit(&b->state, &expect, SC_BREAKER_CLOSED,
                                                     memory_order_acq_rel, memory_order_acquire))
            return;
        /* trips is left alone: the next CLOSED→OPEN sets it to 1 (that is
         * the reset of the doubling), and a store of 0 here could land
         * after a racing trip's 1 and cost the next re-open its doubling. */
        atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
        group_release(b->group);
        notify(b, SC_BREAKER_HALF_OPEN, SC_BREAKER_CLOSED, cb, data);
        return;
    }

    /* CLOSED */
    unsigned total = 0, fail = 0;
    int rate_on = b->p.failure_rate > 0 && b->p.window_ms > 0;
    if (rate_on)
        window_record(b, success, now_ms, &total, &fail);
    if (success) {
        atomic_store_explicit(&b->consecutive, 0, memory_order_relaxed);
        return;
    }
    unsigned run = atomic_fetch_add_explicit(&b->consecutive, 1, memory_order_relaxed) + 1;
    int trip = b->p.consecutive_failures && run >= b->p.consecutive_failures;
    if (!trip && rate_on && total > 0 && total >= b->p.min_requests &&
        (double)fail >= b->p.failure_rate * (double)total)
        trip = 1;
    if (trip)
        trip_closed(b, now_ms, cb, data);
}
