/* Unit tests for sidecar/ratelimit.c: GCRA exactness (burst, then the rate,
 * over a simulated minute), Retry-After, costs above the burst, settling
 * both ways, threads racing for the last tokens, the tokens-per-minute
 * reservation property, the bounded per-key table, and the keyed hash.
 * Clocks are parameters: no test sleeps. */
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
#define SC_RATE_RACE_POINT(name) race_point(name)

#include "sidecar/ratelimit.c"
#include "tests/unit/test.h"

#include <pthread.h>

#define US_PER_S 1000000ull

/* A greedy client: at every ms of a simulated minute, takes cost-1
 * requests until refused. Returns how many were granted. */
static uint64_t greedy_minute(struct sc_rate *r, uint64_t t0_us)
{
    uint64_t granted = 0;
    for (uint64_t ms = 0; ms <= 60000; ms++)
        while (sc_rate_take(r, 1, t0_us + ms * 1000, NULL))
            granted++;
    return granted;
}

static void t_burst_then_rate(void)
{
    static const struct { double rate, burst; } cases[] = {
        {10, 20}, {3, 5}, {7, 1}, {1000, 100}, {0.5, 3}, {333.3, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sc_rate r;
        sc_rate_init(&r, cases[i].rate, cases[i].burst);
        /* The whole burst at one instant, not one more. */
        uint64_t t0 = 5 * US_PER_S, burst = 0;
        while (sc_rate_take(&r, 1, t0, NULL) && burst < 100000)
            burst++;
        CHECK_EQ_INT(burst, (uint64_t)cases[i].burst);
        /* Then the rate: over the minute, burst + rate × 60 ± 1. */
        sc_rate_init(&r, cases[i].rate, cases[i].burst);
        uint64_t got = greedy_minute(&r, t0);
        double want = cases[i].burst + cases[i].rate * 60;
        if (fabs((double)got - want) > 1) {
            printf("# rate %g burst %g: %" PRIu64 " granted over a minute, want %.1f ± 1\n",
                   cases[i].rate, cases[i].burst, got, want);
            test_failed_ = 1;
        }
    }
}

static void t_retry_after(void)
{
    struct sc_rate r;
    sc_rate_init(&r, 10, 2);   /* a token every 100 ms */
    uint64_t t = 1000 * US_PER_S, ra = 77;
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, &ra), 1);
    CHECK_EQ_INT(ra, 0);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, &ra), 1);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, &ra), 0);
    CHECK_EQ_INT(ra, 100);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 30500, &ra), 0);
    CHECK_EQ_INT(ra, 70);                      /* 69.5 ms rounded up */
    CHECK_EQ_INT(sc_rate_take(&r, 2, t + 30500, &ra), 0);
    CHECK_EQ_INT(ra, 170);                     /* two tokens: 169.5 ms */
    /* Waiting exactly retry_after is enough; a µs less is not. */
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 99999, &ra), 0);
    CHECK_EQ_INT(ra, 1);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 100000, &ra), 1);
    /* A refusal changes nothing: the next token still at +200 ms. */
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(sc_rate_take(&r, 1, t + 100000, NULL), 0);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 199999, NULL), 0);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 200000, NULL), 1);
    /* Fractional costs and an available count that follows. */
    sc_rate_init(&r, 10, 2);
    CHECK(fabs(sc_rate_available(&r, t) - 2) < 1e-9);
    CHECK_EQ_INT(sc_rate_take(&r, 0.5, t, NULL), 1);
    CHECK(fabs(sc_rate_available(&r, t) - 1.5) < 1e-6);
    CHECK(fabs(sc_rate_available(&r, t + 25000) - 1.75) < 1e-6);
    CHECK(fabs(sc_rate_available(&r, t + 10 * US_PER_S) - 2) < 1e-9);
    CHECK_EQ_INT(sc_rate_take(&r, 0, t, NULL), 1);   /* free */
}

static void t_cost_above_burst(void)
{
    struct sc_rate r;
    sc_rate_init(&r, 100, 50);
    uint64_t t = 1000 * US_PER_S, ra = 77;
    CHECK_EQ_INT(sc_rate_take(&r, 50.5, t, &ra), 0);
    CHECK_EQ_INT(ra, 0);                            /* "too large", not "later" */
    CHECK(fabs(sc_rate_available(&r, t) - 50) < 1e-9);   /* nothing taken */
    CHECK_EQ_INT(sc_rate_take(&r, 50, t, &ra), 1);  /* exactly the burst is fine */
    CHECK_EQ_INT(sc_rate_take(&r, 1e30, t + US_PER_S, &ra), 0);
    CHECK_EQ_INT(ra, 0);
    /* Bad costs are refused, never granted nor crashing. */
    CHECK_EQ_INT(sc_rate_take(&r, -1, t + US_PER_S, &ra), 0);
    CHECK_EQ_INT(sc_rate_take(&r, NAN, t + US_PER_S, &ra), 0);
    /* Bad parameters: burst < 1 is 1; a rate that is not positive never
     * refills; none divides by zero. */
    sc_rate_init(&r, 0, 0.2);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, NULL), 1);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 3600 * US_PER_S, &ra), 0);
    CHECK(ra > 3600 * 1000);
    sc_rate_init(&r, NAN, NAN);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, NULL), 1);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, NULL), 0);
    sc_rate_init(&r, INFINITY, 3);
    CHECK_EQ_INT(sc_rate_take(&r, 3, t, NULL), 1);
    CHECK_EQ_INT(sc_rate_take(&r, 3, t + 1, NULL), 1);
}

static void t_settle(void)
{
    struct sc_rate r;
    uint64_t t = 1000 * US_PER_S;
    /* TPM-style: 6000 tokens a minute (100/s), burst 6000. */
    sc_rate_init(&r, 100, 6000);
    CHECK_EQ_INT(sc_rate_take(&r, 4000, t, NULL), 1);   /* reserve max_tokens */
    CHECK(fabs(sc_rate_available(&r, t) - 2000) < 1e-6);
    sc_rate_settle(&r, 3500, t);                        /* used 500 */
    CHECK(fabs(sc_rate_available(&r, t) - 5500) < 1e-6);
    sc_rate_settle(&r, 10000, t);                       /* never past full */
    CHECK(fabs(sc_rate_available(&r, t) - 6000) < 1e-9);
    sc_rate_settle(&r, 100, t);                         /* full: nothing to give */
    CHECK(fabs(sc_rate_available(&r, t) - 6000) < 1e-9);

    /* Usage above the reservation: the excess is taken, never refused. */
    CHECK_EQ_INT(sc_rate_take(&r, 5000, t, NULL), 1);
    sc_rate_settle(&r, -3000, t);                       /* used 8000 */
    CHECK(fabs(sc_rate_available(&r, t) + 2000) < 1e-6); /* 2000 in debt */
    uint64_t ra = 0;
    CHECK_EQ_INT(sc_rate_take(&r, 1, t, &ra), 0);
    CHECK_EQ_INT(ra, 20010);                           /* 2001 tokens at 100/s */
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 20010 * 1000, &ra), 1);
    /* The debt is capped at one burst, whatever the figure. */
    sc_rate_init(&r, 100, 6000);
    sc_rate_settle(&r, -1e18, t);
    CHECK(fabs(sc_rate_available(&r, t) + 6000) < 1e-6);
    /* 6000 owed, then 1 token: 60.01 s at 100/s. */
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 60010000 - 1, NULL), 0);
    CHECK_EQ_INT(sc_rate_take(&r, 1, t + 60010000, NULL), 1);
    /* Zero and NaN deltas change nothing. */
    sc_rate_init(&r, 100, 6000);
    sc_rate_settle(&r, 0, t);
    sc_rate_settle(&r, NAN, t);
    CHECK(fabs(sc_rate_available(&r, t) - 6000) < 1e-9);
}

/* Replayed races. */

static struct sc_rate rr;
static struct sc_rate_table *rt;
static uint64_t rnow, rkey;
static struct sc_rate *rgot;
static int rgranted;

static void other_takes(void) { rgranted += sc_rate_take(&rr, 1, rnow, NULL); }
static void other_settles(void) { sc_rate_settle(&rr, -1, rnow); }
static void other_gets(void) { rgot = sc_rate_table_get(rt, rkey, rnow); }

static void t_replay_take(void)
{
    /* Two threads want the last token: one gets it. */
    sc_rate_init(&rr, 1, 2);
    rnow = 1000 * US_PER_S;
    CHECK_EQ_INT(sc_rate_take(&rr, 1, rnow, NULL), 1);
    rgranted = 0;
    race_at = "take";
    race_step = other_takes;
    uint64_t ra = 0;
    CHECK_EQ_INT(sc_rate_take(&rr, 1, rnow, &ra), 0);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(rgranted, 1);
    CHECK_EQ_INT(ra, 1000);
    /* A settle racing a take: both apply. */
    sc_rate_init(&rr, 1, 5);
    race_at = "take";
    race_step = other_settles;
    CHECK_EQ_INT(sc_rate_take(&rr, 2, rnow, NULL), 1);
    CHECK(race_at == NULL);
    CHECK(fabs(sc_rate_available(&rr, rnow) - 2) < 1e-9);
    race_at = "settle";
    race_step = other_takes;
    rgranted = 0;
    sc_rate_settle(&rr, 1.5, rnow);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(rgranted, 1);
    CHECK(fabs(sc_rate_available(&rr, rnow) - 2.5) < 1e-9);
}

static void t_replay_table(void)
{
    REQUIRE(sc_rate_table_new(16, 1, 1, &rt) == 0);
    rnow = 1000 * US_PER_S;
    /* The same new key claimed by two at once: one slot, one bucket. */
    rkey = 5;
    race_at = "claim";
    race_step = other_gets;
    struct sc_rate *mine = sc_rate_table_get(rt, 5, rnow);
    CHECK(race_at == NULL);
    CHECK(mine != NULL && mine == rgot);
    /* Two new keys want the same unused slot: each gets its own. */
    rkey = 6 + 16;   /* starts at slot 6 too */
    race_at = "claim";
    mine = sc_rate_table_get(rt, 6, rnow);
    CHECK(race_at == NULL);
    CHECK(mine != NULL && rgot != NULL && mine != rgot);
    CHECK(sc_rate_table_get(rt, 6, rnow) == mine);
    CHECK(sc_rate_table_get(rt, 22, rnow) == rgot);
    sc_rate_table_free(rt);

    /* A full table, an idle slot, two takers of the same new key: one
     * takeover, both end on the same bucket. */
    REQUIRE(sc_rate_table_new(4, 1, 1, &rt) == 0);
    for (uint64_t k = 100; k < 104; k++)
        CHECK_EQ_INT(sc_rate_take(sc_rate_table_get(rt, k, rnow), 1, rnow, NULL), 1);
    rnow += US_PER_S;   /* all idle again */
    rkey = 200;
    race_at = "takeover";
    race_step = other_gets;
    mine = sc_rate_table_get(rt, 200, rnow);
    CHECK(race_at == NULL);
    CHECK(mine != NULL && mine == rgot);
    unsigned holders = 0;
    for (unsigned i = 0; i < 4; i++)
        holders += atomic_load(&rt->slot[i].key) == 200;
    CHECK_EQ_INT(holders, 1);
    /* Two different new keys want the same idle slot: the loser takes
     * another one rather than the winner's. */
    rnow += US_PER_S;
    rkey = 304;   /* starts at the same slot as 300 */
    race_at = "takeover";
    mine = sc_rate_table_get(rt, 300, rnow);
    CHECK(race_at == NULL);
    CHECK(mine != NULL && rgot != NULL && mine != rgot);
    CHECK(sc_rate_table_get(rt, 300, rnow) == mine);
    CHECK(sc_rate_table_get(rt, 304, rnow) == rgot);
    sc_rate_table_free(rt);
}

/* Threads. */

#define THREADS 4
#define TRIES 100000

struct race {
    struct sc_rate *r;
    atomic_uint_fast64_t *clock;
    atomic_uint *go;
    struct sc_rate_table *table;   /* the table race */
    int ticker;
    unsigned seed;
    double reserve;          /* TPM race: tokens reserved per request */
    uint64_t granted;
    double used;
};

static void *race_take(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(r->go))
        ;
    for (unsigned i = 0; i < TRIES; i++) {
        if (r->ticker && i % 16 == 0)
            atomic_fetch_add(r->clock, 100);   /* µs */
        if (sc_rate_take(r->r, 1, atomic_load(r->clock), NULL))
            r->granted++;
    }
    return NULL;
}

static uint64_t run_race(struct sc_rate *rate, struct sc_rate_table *table,
                         atomic_uint_fast64_t *clock, int tick, void *(*fn)(void *),
                         struct race *r)
{
    atomic_uint go;
    atomic_init(&go, 0);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.r = rate, .table = table, .clock = clock, .go = &go,
                             .ticker = tick && i == 0,
                             .seed = 2654435761u * (unsigned)(i + 1)};
        if (pthread_create(&th[i], NULL, fn, &r[i]) != 0)
            return UINT64_MAX;
    }
    atomic_store(&go, 1);
    uint64_t granted = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        granted += r[i].granted;
    }
    return granted;
}

static void t_race_last_tokens(void)
{
    struct sc_rate rate;
    struct race r[THREADS];
    atomic_uint_fast64_t clock;
    /* A frozen clock: exactly the burst, among 400,000 tries. */
    atomic_init(&clock, 1000 * US_PER_S);
    sc_rate_init(&rate, 1000, 100);
    uint64_t g = run_race(&rate, NULL, &clock, 0, race_take, r);
    CHECK_EQ_INT(g, 100);
    /* A moving clock: never more than burst + rate × elapsed. */
    sc_rate_init(&rate, 1000, 100);
    uint64_t t0 = 1000 * US_PER_S;
    atomic_init(&clock, t0);
    g = run_race(&rate, NULL, &clock, 1, race_take, r);
    uint64_t elapsed_us = atomic_load(&clock) - t0;
    double bound = 100 + 1000.0 * (double)elapsed_us / 1e6;
    printf("# granted %" PRIu64 " over %" PRIu64 " µs, bound %.1f\n", g, elapsed_us, bound);
    CHECK((double)g <= bound);
    CHECK((double)g >= bound - 1 - 4);   /* and the rate is not lost either */
}

/* TPM: each request reserves `reserve` tokens at admission; up to 8 of a
 * client's requests are in flight at once (so the two clients'
 * reservations overlap), and when one ends it settles with a usage drawn in
 * [0, reserve]. Every operation moves the shared clock on by 250 µs,
 * whichever thread runs. */
#define INFLIGHT 8

static void *race_tpm(void *arg)
{
    struct race *r = arg;
    double held[INFLIGHT];
    unsigned n = 0, head = 0;
    while (!atomic_load(r->go))
        ;
    for (unsigned i = 0; i < TRIES / 10; i++) {
        uint64_t now = atomic_fetch_add(r->clock, 250) + 250;
        r->seed = r->seed * 1103515245u + 12345u;
        unsigned dice = r->seed >> 16 & 0x7fff;
        if (n == INFLIGHT || (n > 0 && dice % 3 == 0)) {   /* the oldest ends */
            double used = held[head] * (double)(dice % 1001) / 1000.0;
            r->used += used;
            sc_rate_settle(r->r, held[head] - used, now);
            head = (head + 1) % INFLIGHT;
            n--;
            continue;
        }
        if (!sc_rate_take(r->r, r->reserve, now, NULL))
            continue;
        r->granted++;
        held[(head + n) % INFLIGHT] = r->reserve;
        n++;
    }
    while (n > 0) {   /* the last ones end, using all they reserved */
        r->used += held[head];
        head = (head + 1) % INFLIGHT;
        n--;
    }
    return NULL;
}

static void t_tpm_two_clients(void)
{
    /* 60,000 tokens a minute (1000/s), a burst of one minute; two clients
     * race, each request reserving 500. */
    struct sc_rate rate;
    struct race r[2];
    atomic_uint_fast64_t clock;
    uint64_t t0 = 1000 * US_PER_S;
    atomic_init(&clock, t0);
    sc_rate_init(&rate, 1000, 60000);
    atomic_uint go;
    atomic_init(&go, 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        r[i] = (struct race){.r = &rate, .clock = &clock, .go = &go,
                             .seed = 12345u + (unsigned)i, .reserve = 500};
        REQUIRE(pthread_create(&th[i], NULL, race_tpm, &r[i]) == 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    double used = r[0].used + r[1].used;
    double elapsed_s = (double)(atomic_load(&clock) - t0) / 1e6;
    double limit = 60000 + 1000 * elapsed_s;
    printf("# two clients: %" PRIu64 " + %" PRIu64 " requests, %.0f tokens used over %.1f s,"
           " limit %.0f (over by %.0f)\n", r[0].granted, r[1].granted, used, elapsed_s, limit,
           used - limit);
    CHECK(r[0].granted > 0 && r[1].granted > 0);
    CHECK(used <= limit + 500);   /* the property: one reservation at most */
    CHECK(used >= 0.5 * limit);   /* and the test was not idle */
}

/* The per-key table. */

static void t_table_basics(void)
{
    struct sc_rate_table *t;
    CHECK_EQ_INT(sc_rate_table_new(0, 1, 1, &t), -EINVAL);
    CHECK(t == NULL);
    CHECK_EQ_INT(sc_rate_table_new(100, 1, 1, &t), -EINVAL);
    CHECK_EQ_INT(sc_rate_table_new((size_t)1 << 30, 1, 1, &t), -EINVAL);
    REQUIRE(sc_rate_table_new(4096, 1, 2, &t) == 0);
    uint64_t now = 1000 * US_PER_S;
    uint64_t ka = sc_rate_key_hash("sk-a", 4), kb = sc_rate_key_hash("sk-b", 4);
    struct sc_rate *a = sc_rate_table_get(t, ka, now), *b = sc_rate_table_get(t, kb, now);
    REQUIRE(a && b);
    CHECK(a != b);
    CHECK(sc_rate_table_get(t, ka, now) == a);
    /* Keys have separate buckets. */
    CHECK_EQ_INT(sc_rate_take(a, 2, now, NULL), 1);
    CHECK_EQ_INT(sc_rate_take(a, 1, now, NULL), 0);
    CHECK_EQ_INT(sc_rate_take(b, 2, now, NULL), 1);
    CHECK(sc_rate_table_get(t, ka, now + 10) == a);   /* active: stays */
    /* Hash 0 is a key like any other. */
    struct sc_rate *z = sc_rate_table_get(t, 0, now);
    CHECK(z != NULL && sc_rate_table_get(t, 0, now) == z);
    sc_rate_table_free(t);
}

/* Keys whose hashes all start at slot 0 of a 4096-slot table. */
static uint64_t colliding(unsigned i)
{
    return (uint64_t)(i + 1) << 20;
}

static void t_table_bounded(void)
{
    struct sc_rate_table *t;
    REQUIRE(sc_rate_table_new(4096, 1, 1, &t) == 0);   /* a token a second */
    uint64_t now = 1000 * US_PER_S;
    struct sc_rate *s[17];
    /* 16 active keys fill the probe window of their position ... */
    for (unsigned i = 0; i < 16; i++) {
        s[i] = sc_rate_table_get(t, colliding(i), now);
        REQUIRE(s[i] != NULL);
        CHECK_EQ_INT(sc_rate_take(s[i], 1, now, NULL), 1);
        CHECK(s[i] >= &t->slot[0].rate && s[i] <= &t->slot[15].rate);
    }
    /* ... so a 17th is refused (the table is full of active keys there),
     * while the old keys still find their buckets. */
    CHECK(sc_rate_table_get(t, colliding(16), now) == NULL);
    CHECK(sc_rate_table_get(t, colliding(16), now + 999999) == NULL);
    for (unsigned i = 0; i < 16; i++)
        CHECK(sc_rate_table_get(t, colliding(i), now) == s[i]);
    /* A second later every bucket is full again, hence idle: the new key
     * takes the first one over, fresh. */
    s[16] = sc_rate_table_get(t, colliding(16), now + 1000000);
    CHECK(s[16] == s[0]);
    CHECK_EQ_INT(sc_rate_take(s[16], 1, now + 1000000, NULL), 1);
    /* The old key 0 has lost its slot: it gets another idle one. */
    struct sc_rate *again = sc_rate_table_get(t, colliding(0), now + 1000000);
    CHECK(again != NULL && again != s[16]);

    /* Many keys over time, each active for a moment: the table never
     * holds more than its slots, and every key is served. */
    sc_rate_table_free(t);
    REQUIRE(sc_rate_table_new(64, 10, 1, &t) == 0);   /* refills in 100 ms */
    unsigned served = 0, refused = 0;
    for (unsigned k = 0; k < 100000; k++) {
        uint64_t when = now + (uint64_t)k * 10000;   /* a new key every 10 ms */
        char tok[32];
        int n = snprintf(tok, sizeof tok, "sk-%u", k);
        struct sc_rate *r = sc_rate_table_get(t, sc_rate_key_hash(tok, (size_t)n), when);
        if (!r) {
            refused++;
            continue;
        }
        CHECK(r >= &t->slot[0].rate && r <= &t->slot[63].rate);
        served += (unsigned)sc_rate_take(r, 1, when, NULL);
    }
    printf("# 100000 keys through 64 slots: %u served, %u refused\n", served, refused);
    CHECK_EQ_INT(served, 100000);   /* ~10 active at a time: all fit */
    CHECK_EQ_INT(refused, 0);
    sc_rate_table_free(t);

    /* A full table: 8 slots, 8 active keys, the 9th is refused. */
    REQUIRE(sc_rate_table_new(8, 1, 1, &t) == 0);
    for (unsigned i = 0; i < 8; i++) {
        struct sc_rate *r = sc_rate_table_get(t, 1000 + i, now);
        REQUIRE(r != NULL);
        CHECK_EQ_INT(sc_rate_take(r, 1, now, NULL), 1);
    }
    CHECK(sc_rate_table_get(t, 2000, now) == NULL);
    CHECK(sc_rate_table_get(t, 2000, now + 1000000) != NULL);
    sc_rate_table_free(t);
}

static void *race_table(void *arg)
{
    struct race *r = arg;
    struct sc_rate_table *t = r->table;
    while (!atomic_load(r->go))
        ;
    for (unsigned i = 0; i < TRIES; i++) {
        uint64_t key = 1 + (i % 8);   /* 8 keys shared by every thread */
        struct sc_rate *b = sc_rate_table_get(t, key, atomic_load(r->clock));
        if (b && sc_rate_take(b, 1, atomic_load(r->clock), NULL))
            r->granted++;
    }
    return NULL;
}

static void t_table_race(void)
{
    /* 4 threads claim slots for the same 8 keys at once: each key ends up
     * with one bucket, so with a frozen clock exactly 8 × burst grants. */
    struct sc_rate_table *t;
    REQUIRE(sc_rate_table_new(16, 1, 5, &t) == 0);
    atomic_uint_fast64_t clock;
    atomic_init(&clock, 1000 * US_PER_S);
    struct race r[THREADS];
    uint64_t g = run_race(NULL, t, &clock, 0, race_table, r);
    CHECK_EQ_INT(g, 8 * 5);
    unsigned used = 0;
    for (unsigned i = 0; i < 16; i++)
        used += atomic_load(&t->slot[i].key) != 0;
    CHECK_EQ_INT(used, 8);
    sc_rate_table_free(t);
}

static void t_key_hash(void)
{
    uint64_t a = sc_rate_key_hash("sk-abc", 6);
    CHECK(a == sc_rate_key_hash("sk-abc", 6));
    CHECK(a != sc_rate_key_hash("sk-abd", 6));
    CHECK(a != sc_rate_key_hash("sk-abc", 5));
    CHECK(sc_rate_key_hash("a\0b", 3) != sc_rate_key_hash("a\0c", 3));
    CHECK(sc_rate_key_hash("", 0) != sc_rate_key_hash("\0", 1));
    /* Keyed: not SipHash under the all-zero key (the key came from
     * getrandom), and the reference vector of SipHash-2-4 holds for the
     * implementation itself (key 00..0f, input 00..0e). */
    uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    unsigned char in[15];
    for (unsigned i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)i;
    CHECK(siphash24(k, in, 15) == 0xa129ca6149be45e5ull);
    CHECK(siphash24(k, in, 0) == 0x726fdb47dd0e0e31ull);
    CHECK(siphash24(k, in, 8) == 0x93f5f5799a932462ull);
    uint64_t zero[2] = {0, 0};
    CHECK(a != siphash24(zero, (const unsigned char *)"sk-abc", 6));
    CHECK(hash_key[0] != 0 || hash_key[1] != 0);
    /* Spread: 64k tokens into 4096 slots, no slot with more than 40. */
    static unsigned count[4096];
    unsigned worst = 0;
    for (unsigned i = 0; i < 65536; i++) {
        char tok[32];
        int n = snprintf(tok, sizeof tok, "sk-%08u", i);
        unsigned c = ++count[sc_rate_key_hash(tok, (size_t)n) & 4095];
        if (c > worst)
            worst = c;
    }
    CHECK(worst <= 40);
}

int main(void)
{
    RUN(t_burst_then_rate);
    RUN(t_retry_after);
    RUN(t_cost_above_burst);
    RUN(t_settle);
    RUN(t_replay_take);
    RUN(t_replay_table);
    RUN(t_race_last_tokens);
    RUN(t_tpm_two_clients);
    RUN(t_table_basics);
    RUN(t_table_bounded);
    RUN(t_table_race);
    RUN(t_key_hash);
    return test_done();
}
