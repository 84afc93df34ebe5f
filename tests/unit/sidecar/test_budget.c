/* Unit tests for sidecar/budget.c: the floor, the percentage, refusals,
 * unpaired ends, the amplification bound under a simulated storm, and
 * racing threads never passing the cap. */
#include <string.h>

/* Replayed races: at the race point named race_at (just before a CAS),
 * race_step runs once, as another thread would in that instant. */
static const char *race_at;
static void (*race_step)(void);
static void race_point(const char *name)
{
    if (race_at && strcmp(name, race_at) == 0) {
        race_at = NULL;
        race_step();
    }
}
#define SC_BUDGET_RACE_POINT(name) race_point(name)

#include "sidecar/budget.c"
#include "tests/unit/test.h"

#include <pthread.h>

static void t_floor(void)
{
    struct sc_budget b;
    sc_budget_init(&b, 20, 3);
    /* No requests in flight: the floor alone. */
    CHECK_EQ_INT(sc_budget_retry_start(&b), 1);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 1);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 1);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    CHECK_EQ_INT(atomic_load(&b.refused), 1);
    sc_budget_retry_end(&b);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 1);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    CHECK_EQ_INT(atomic_load(&b.refused), 2);
    CHECK_EQ_INT(atomic_load(&b.retries), 3);
    /* A floor of 0 and nothing in flight: no retry at all. */
    sc_budget_init(&b, 50, 0);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    sc_budget_request_start(&b);     /* 1 retrying, 0 not: over 50% */
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    sc_budget_request_start(&b);     /* 1 retrying for 1 not: 100% */
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    sc_budget_request_start(&b);     /* 1 retrying for 2 not: 50% */
    CHECK_EQ_INT(sc_budget_retry_start(&b), 1);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    CHECK_EQ_INT(atomic_load(&b.refused), 4);
}

static void t_percent(void)
{
    struct sc_budget b;
    sc_budget_init(&b, 20, 1);
    for (int i = 0; i < 100; i++)
        sc_budget_request_start(&b);
    int granted = 0;
    for (int i = 0; i < 50; i++)
        granted += sc_budget_retry_start(&b);
    /* 16 retrying for 84 not (19%); a 17th would make 17 for 83 (20.5%). */
    CHECK_EQ_INT(granted, 16);
    CHECK_EQ_INT(atomic_load(&b.refused), 34);
    /* Load falls to 50 requests: 8 retrying would be 8 for 42 (19%),
     * 9 for 41 is over; so none until nine of the 16 have ended. */
    for (int i = 0; i < 50; i++)
        sc_budget_request_end(&b);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
    for (int i = 0; i < 8; i++)
        sc_budget_retry_end(&b);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);   /* 8 in flight: a 9th is over */
    sc_budget_retry_end(&b);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 1);
    CHECK_EQ_INT(atomic_load(&b.refused), 36);
    /* 100%: as many retrying as not. */
    sc_budget_init(&b, 100, 0);
    for (int i = 0; i < 7; i++)
        sc_budget_request_start(&b);
    granted = 0;
    for (int i = 0; i < 20; i++)
        granted += sc_budget_retry_start(&b);
    CHECK_EQ_INT(granted, 3);   /* 3 retrying, 4 not */
}

static void t_unpaired_end(void)
{
    struct sc_budget b;
    sc_budget_init(&b, 20, 0);
    sc_budget_request_end(&b);    /* a caller's bug: must not wrap */
    sc_budget_retry_end(&b);
    CHECK_EQ_INT(atomic_load(&b.requests), 0);
    CHECK_EQ_INT(atomic_load(&b.retries), 0);
    CHECK_EQ_INT(sc_budget_retry_start(&b), 0);
}

static unsigned xorshift(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* A storm: every upstream attempt fails, every request wants 3 attempts.
 * One wave of concurrent requests: all start, then each retries while the
 * budget lets it, holding its retries until it ends. */
static void t_storm_wave(void)
{
    enum { N = 1000, ATTEMPTS = 3 };
    const unsigned pct = 20, floor = 5;
    struct sc_budget b;
    sc_budget_init(&b, pct, floor);
    unsigned held[N] = {0};
    uint64_t attempts = 0;
    for (int i = 0; i < N; i++) {
        sc_budget_request_start(&b);
        attempts++;                      /* the first try, not a retry */
    }
    for (int round = 1; round < ATTEMPTS; round++)
        for (int i = 0; i < N; i++)
            if (sc_budget_retry_start(&b)) {
                attempts++;
                held[i]++;
            }
    for (int i = 0; i < N; i++) {
        while (held[i]--)
            sc_budget_retry_end(&b);
        sc_budget_request_end(&b);
    }
    printf("# %d requests, %" PRIu64 " attempts, %" PRIu64 " retries refused\n", N, attempts,
           (uint64_t)atomic_load(&b.refused));
    CHECK(attempts * 100 <= (uint64_t)N * (100 + pct) + floor * 100);
    /* The budget is used, not wasted: r retries with r ≤ pct% of N - r. */
    const unsigned r = N * pct / (100 + pct);
    CHECK_EQ_INT(attempts, N + r);
    CHECK_EQ_INT(atomic_load(&b.refused), N * (ATTEMPTS - 1) - r);
    CHECK_EQ_INT(atomic_load(&b.requests), 0);
    CHECK_EQ_INT(atomic_load(&b.retries), 0);
}

/* A continuous storm: requests arrive and leave in a random order (about
 * 500 in flight); each failing attempt may be followed by a retry, which
 * holds its slot until the retry attempt ends. Each grant leaves the
 * retries in flight within pct% of the requests in flight not retrying
 * (or within the floor), and over the whole storm attempts stay within
 * (1 + pct) × requests + floor. */
static void t_storm_continuous(void)
{
    enum { SLOTS = 500, STEPS = 200000 };
    const unsigned pct = 20, floor = 5;
    struct sc_budget b;
    sc_budget_init(&b, pct, floor);
    struct { int live, tries, retrying; } r[SLOTS] = {{0}};
    unsigned seed = 12345, live = 0, retrying = 0;
    uint64_t requests = 0, attempts = 0, worst_ok = 1;
    for (int step = 0; step < STEPS; step++) {
        unsigned i = xorshift(&seed) % SLOTS;
        if (!r[i].live) {              /* a new client request, first try */
            sc_budget_request_start(&b);
            r[i].live = 1;
            r[i].tries = 1;
            requests++;
            attempts++;
            live++;
        } else {                        /* its current attempt failed */
            if (r[i].retrying) {
                sc_budget_retry_end(&b);
                r[i].retrying = 0;
                retrying--;
            }
            if (r[i].tries < 3 && sc_budget_retry_start(&b)) {
                r[i].retrying = 1;
                r[i].tries++;
                retrying++;
                attempts++;
                /* When granted: within the cap of the moment. */
                if ((uint64_t)retrying * 100 > (uint64_t)(live - retrying) * pct &&
                    retrying > floor)
                    worst_ok = 0;
            } else {                    /* out of attempts or budget */
                sc_budget_request_end(&b);
                r[i].live = 0;
                live--;
            }
        }
    }
    printf("# %" PRIu64 " requests, %" PRIu64 " attempts (%.3f per request), %" PRIu64
           " refused\n", requests, attempts, (double)attempts / (double)requests,
           (uint64_t)atomic_load(&b.refused));
    CHECK(worst_ok);
    CHECK(attempts * 100 <= requests * (100 + pct) + floor * 100);
    CHECK(atomic_load(&b.refused) > 0);
}

static struct sc_budget rb;
static int rgranted;
static void other_retries(void) { rgranted += sc_budget_retry_start(&rb); }

static void t_replay_last_retry(void)
{
    /* Two requests want the last retry slot at once: one gets it. */
    sc_budget_init(&rb, 50, 0);
    for (int i = 0; i < 3; i++)
        sc_budget_request_start(&rb);   /* room for 1 retrying (1 for 2) */
    rgranted = 0;
    race_at = "retry";
    race_step = other_retries;
    CHECK_EQ_INT(sc_budget_retry_start(&rb), 0);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(rgranted, 1);
    CHECK_EQ_INT(atomic_load(&rb.retries), 1);
    CHECK_EQ_INT(atomic_load(&rb.refused), 1);
}

#define THREADS 4
#define TRIES 100000

struct race {
    struct sc_budget *b;
    atomic_uint *go, *max_seen;
    uint64_t granted;
};

static void *race_main(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(r->go))
        ;
    for (unsigned i = 0; i < TRIES; i++) {
        if (sc_budget_retry_start(r->b)) {
            r->granted++;
            unsigned now = atomic_load(&r->b->retries), m = atomic_load(r->max_seen);
            while (now > m && !atomic_compare_exchange_weak(r->max_seen, &m, now))
                ;
            for (volatile int k = 0; k < 1000; k++)   /* hold it a while */
                ;
            sc_budget_retry_end(r->b);
        }
    }
    return NULL;
}

static void t_race_cap(void)
{
    struct sc_budget b;
    sc_budget_init(&b, 10, 0);
    for (int i = 0; i < 15; i++)   /* cap: 1 retrying for 14 not (2 for 13 is over) */
        sc_budget_request_start(&b);
    atomic_uint go, max_seen;
    atomic_init(&go, 0);
    atomic_init(&max_seen, 0);
    pthread_t th[THREADS];
    struct race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.b = &b, .go = &go, .max_seen = &max_seen};
        REQUIRE(pthread_create(&th[i], NULL, race_main, &r[i]) == 0);
    }
    atomic_store(&go, 1);
    uint64_t granted = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        granted += r[i].granted;
    }
    printf("# granted %" PRIu64 ", refused %" PRIu64 ", most in flight %u\n", granted,
           (uint64_t)atomic_load(&b.refused), atomic_load(&max_seen));
    CHECK(atomic_load(&max_seen) <= 1);
    CHECK(atomic_load(&b.refused) > 0);   /* the cap was contended */
    CHECK_EQ_INT(granted + atomic_load(&b.refused), (uint64_t)THREADS * TRIES);
    CHECK_EQ_INT(atomic_load(&b.retries), 0);
}

int main(void)
{
    RUN(t_floor);
    RUN(t_percent);
    RUN(t_unpaired_end);
    RUN(t_storm_wave);
    RUN(t_storm_continuous);
    RUN(t_replay_last_retry);
    RUN(t_race_cap);
    return test_done();
}
