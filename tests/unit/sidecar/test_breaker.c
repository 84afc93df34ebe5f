/* Unit tests for sidecar/breaker.c: every transition, the doubling and its
 * cap, both triggers, the window forgetting old buckets, half-open probe
 * accounting, the group's ejection cap, and races between threads (one
 * callback per transition, counters that add up). Clocks are parameters:
 * no test sleeps. */
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
#define SC_BREAKER_RACE_POINT(name) race_point(name)

#include "sidecar/breaker.c"
#include "tests/unit/test.h"

#include <pthread.h>
#include <sched.h>

/* Transition log: a count per (from, to), filled from any thread. */
struct tlog {
    atomic_uint n[3][3];
    atomic_uint total;
};

static void tlog_cb(struct sc_breaker *b, enum sc_breaker_state from, enum sc_breaker_state to,
                    void *data)
{
    (void)b;
    struct tlog *l = data;
    atomic_fetch_add(&l->n[from][to], 1);
    atomic_fetch_add(&l->total, 1);
}

static void tlog_init(struct tlog *l)
{
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            atomic_init(&l->n[i][j], 0);
    atomic_init(&l->total, 0);
}

#define C SC_BREAKER_CLOSED
#define O SC_BREAKER_OPEN
#define H SC_BREAKER_HALF_OPEN

static struct sc_breaker_params params(void)
{
    struct sc_breaker_params p = {
        .consecutive_failures = 3, .failure_rate = 0, .window_ms = 10000, .min_requests = 10,
        .open_ms = 1000, .max_open_ms = 3500, .half_open_requests = 2,
        .max_ejection_percent = 100,
    };
    return p;
}

static void fail_n(struct sc_breaker *b, unsigned n, uint64_t now, struct tlog *l)
{
    for (unsigned i = 0; i < n; i++)
        sc_breaker_report(b, 0, now, tlog_cb, l);
}

static void t_consecutive_trip_and_recover(void)
{
    struct sc_breaker b;
    struct sc_breaker_params p = params();
    struct tlog l;
    tlog_init(&l);
    sc_breaker_init(&b, &p, NULL);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    CHECK_EQ_STR(sc_breaker_state_name(sc_breaker_state(&b)), "closed");

    fail_n(&b, 2, 100, &l);
    sc_breaker_report(&b, 1, 100, tlog_cb, &l);   /* a success resets the run */
    fail_n(&b, 2, 100, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    CHECK_EQ_INT(sc_breaker_allow(&b, 100, tlog_cb, &l), 1);
    fail_n(&b, 1, 100, &l);                       /* third in a row */
    CHECK_EQ_INT(sc_breaker_state(&b), O);
    CHECK_EQ_STR(sc_breaker_state_name(O), "open");
    CHECK_EQ_INT(atomic_load(&l.n[C][O]), 1);
    CHECK_EQ_INT(atomic_load(&l.total), 1);

    /* Open: nothing goes through until open_ms has passed. */
    CHECK_EQ_INT(sc_breaker_allow(&b, 100, tlog_cb, &l), 0);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1099, tlog_cb, &l), 0);
    CHECK_EQ_INT(sc_breaker_state(&b), O);
    /* Then half-open: half_open_requests probes, not one more. */
    CHECK_EQ_INT(sc_breaker_allow(&b, 1100, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_state(&b), H);
    CHECK_EQ_STR(sc_breaker_state_name(H), "half_open");
    CHECK_EQ_INT(atomic_load(&l.n[O][H]), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1100, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1100, tlog_cb, &l), 0);
    CHECK_EQ_INT(sc_breaker_allow(&b, 2099, tlog_cb, &l), 0);
    sc_breaker_report(&b, 1, 1200, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), H);        /* one of two probes */
    sc_breaker_report(&b, 1, 1200, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    CHECK_EQ_INT(atomic_load(&l.n[H][C]), 1);
    CHECK_EQ_INT(atomic_load(&l.total), 3);
    CHECK_EQ_INT(atomic_load(&b.transitions), 3);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1200, tlog_cb, &l), 1);
    /* Closed again with a fresh run: two failures do not trip it. */
    fail_n(&b, 2, 1300, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    CHECK_EQ_INT(atomic_load(&l.total), 3);
}

/* Expects b OPEN since `since` for exactly `dur` ms: refused at
 * since + dur - 1, half-open (a probe let through) at since + dur. */
static void expect_open_for(struct sc_breaker *b, uint64_t since, uint64_t dur, struct tlog *l)
{
    CHECK_EQ_INT(sc_breaker_state(b), O);
    CHECK_EQ_INT(sc_breaker_allow(b, since + dur - 1, tlog_cb, l), 0);
    CHECK_EQ_INT(sc_breaker_allow(b, since + dur, tlog_cb, l), 1);
    CHECK_EQ_INT(sc_breaker_state(b), H);
}

static void t_doubling_and_cap(void)
{
    struct sc_breaker b;
    struct sc_breaker_params p = params();   /* open 1000, cap 3500 */
    struct tlog l;
    tlog_init(&l);
    sc_breaker_init(&b, &p, NULL);

    uint64_t t = 0;
    fail_n(&b, 3, t, &l);
    expect_open_for(&b, t, 1000, &l);
    t += 1000;
    sc_breaker_report(&b, 0, t, tlog_cb, &l);    /* the probe fails */
    CHECK_EQ_INT(atomic_load(&l.n[H][O]), 1);
    expect_open_for(&b, t, 2000, &l);
    t += 2000;
    sc_breaker_report(&b, 0, t, tlog_cb, &l);
    expect_open_for(&b, t, 3500, &l);           /* 4000 capped at 3500 */
    t += 3500;
    sc_breaker_report(&b, 0, t, tlog_cb, &l);
    expect_open_for(&b, t, 3500, &l);           /* stays at the cap */
    t += 3500;
    CHECK_EQ_INT(atomic_load(&b.trips), 4);
    /* Two probes succeed: closed, and the doubling starts over. */
    CHECK_EQ_INT(sc_breaker_allow(&b, t, tlog_cb, &l), 1);
    sc_breaker_report(&b, 1, t, tlog_cb, &l);
    sc_breaker_report(&b, 1, t, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    fail_n(&b, 3, t, &l);
    expect_open_for(&b, t, 1000, &l);
    CHECK_EQ_INT(atomic_load(&l.n[C][O]), 2);
    CHECK_EQ_INT(atomic_load(&l.n[H][O]), 3);
    CHECK_EQ_INT(atomic_load(&l.n[O][H]), 5);
    CHECK_EQ_INT(atomic_load(&l.n[H][C]), 1);
    CHECK_EQ_INT(atomic_load(&l.total), 11);
    CHECK_EQ_INT(atomic_load(&b.transitions), 11);

    /* A long doubling never overflows: 40 trips with a huge cap. */
    struct sc_breaker_params q = params();
    q.max_open_ms = UINT32_MAX;
    sc_breaker_init(&b, &q, NULL);
    CHECK_EQ_INT(open_duration(&b, 1), 1000);
    CHECK_EQ_INT(open_duration(&b, 3), 4000);
    CHECK_EQ_INT(open_duration(&b, 40), UINT32_MAX);
    /* A cap below open_ms: open_ms wins (no shorter than asked). */
    q.max_open_ms = 10;
    sc_breaker_init(&b, &q, NULL);
    CHECK_EQ_INT(open_duration(&b, 5), 1000);
}

static void t_rate_trigger_min_requests(void)
{
    struct sc_breaker b;
    struct sc_breaker_params p = params();
    p.consecutive_failures = 0;               /* the rate alone */
    p.failure_rate = 0.5;
    p.min_requests = 10;
    struct tlog l;
    tlog_init(&l);
    sc_breaker_init(&b, &p, NULL);
    /* 9 outcomes, 5 of them failures (55%): below min_requests. */
    for (int i = 0; i < 9; i++) {
        sc_breaker_report(&b, i % 2, 500, tlog_cb, &l);
        CHECK_EQ_INT(sc_breaker_state(&b), C);
    }
    /* The 10th, a success: 5/10 but only a failure can trip. */
    sc_breaker_report(&b, 1, 500, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    /* 11th, a failure: 6/11 ≥ 50% with ≥ 10 requests. */
    sc_breaker_report(&b, 0, 500, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), O);
    CHECK_EQ_INT(atomic_load(&l.n[C][O]), 1);

    /* Below the rate: 3 failures in 10 never trip. */
    sc_breaker_init(&b, &p, NULL);
    for (int i = 0; i < 100; i++)
        sc_breaker_report(&b, i % 10 >= 3, 500 + (uint64_t)i, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
    /* With the rate off (and consecutive off) nothing trips. */
    p.failure_rate = 0;
    sc_breaker_init(&b, &p, NULL);
    fail_n(&b, 1000, 500, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
}

static void t_window_forgets(void)
{
    struct sc_breaker_params p = params();
    p.consecutive_failures = 0;
    p.failure_rate = 0.5;
    p.window_ms = 1000;     /* ten buckets of 100 ms */
    p.min_requests = 4;
    struct tlog l;
    tlog_init(&l);

    /* Failures in bucket [0,100) still count at 950 (bucket [900,1000)). */
    struct sc_breaker a;
    sc_breaker_init(&a, &p, NULL);
    fail_n(&a, 3, 0, &l);
    CHECK_EQ_INT(sc_breaker_state(&a), C);        /* 3 < min_requests */
    sc_breaker_report(&a, 0, 950, tlog_cb, &l);   /* 4 of 4 */
    CHECK_EQ_INT(sc_breaker_state(&a), O);

    /* At 1050 the [0,100) bucket has left the window: 1 of 4 fail. */
    struct sc_breaker b;
    sc_breaker_init(&b, &p, NULL);
    fail_n(&b, 3, 0, &l);
    for (int i = 0; i < 3; i++)
        sc_breaker_report(&b, 1, 1050, tlog_cb, &l);
    sc_breaker_report(&b, 0, 1050, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);

    /* Smoothly: failures spread over the window, older ones drop out one
     * bucket at a time. 1 failure per bucket for 10 buckets, then
     * successes: at each later bucket one old failure is gone. */
    struct sc_breaker c;
    p.min_requests = 1;
    p.failure_rate = 0.99;   /* effectively "all failures in the window" */
    sc_breaker_init(&c, &p, NULL);
    unsigned total = 0, fail = 0;
    for (uint64_t k = 0; k < 10; k++)
        window_record(&c, 0, k * 100 + 5, &total, &fail);
    CHECK_EQ_INT(total, 10);
    CHECK_EQ_INT(fail, 10);
    window_record(&c, 1, 1005, &total, &fail);   /* replaces bucket [0,100) */
    CHECK_EQ_INT(total, 10);
    CHECK_EQ_INT(fail, 9);
    window_record(&c, 1, 1505, &total, &fail);   /* [100..500] gone */
    CHECK_EQ_INT(total, 6);
    CHECK_EQ_INT(fail, 4);
    window_record(&c, 1, 60000, &total, &fail);  /* everything old gone */
    CHECK_EQ_INT(total, 1);
    CHECK_EQ_INT(fail, 0);
    /* A clock that goes backwards counts nothing and crashes nothing. */
    window_record(&c, 0, 59000, &total, &fail);
    CHECK_EQ_INT(total, 0);
}

static void t_half_open_probes(void)
{
    struct sc_breaker b;
    struct sc_breaker_params p = params();
    p.half_open_requests = 3;
    struct tlog l;
    tlog_init(&l);
    sc_breaker_init(&b, &p, NULL);
    fail_n(&b, 3, 0, &l);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1000, tlog_cb, &l), 0);
    CHECK_EQ_INT(atomic_load(&b.probes_out), 3);
    sc_breaker_report(&b, 1, 1001, tlog_cb, &l);
    sc_breaker_report(&b, 1, 1001, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), H);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1001, tlog_cb, &l), 0);  /* slots are not recycled */
    sc_breaker_report(&b, 0, 1002, tlog_cb, &l);   /* the third fails */
    CHECK_EQ_INT(sc_breaker_state(&b), O);
    CHECK_EQ_INT(atomic_load(&l.n[H][O]), 1);
    /* A late success while OPEN changes nothing. */
    sc_breaker_report(&b, 1, 1003, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), O);
    /* Next half-open episode (2000 ms later): fresh probe slots, and a
     * success beyond the probes let through is not a probe's. */
    CHECK_EQ_INT(sc_breaker_allow(&b, 3002, tlog_cb, &l), 1);
    CHECK_EQ_INT(atomic_load(&b.probes_out), 1);
    CHECK_EQ_INT(atomic_load(&b.probes_ok), 0);
    sc_breaker_report(&b, 1, 3002, tlog_cb, &l);
    sc_breaker_report(&b, 1, 3002, tlog_cb, &l);   /* stale: not counted */
    sc_breaker_report(&b, 1, 3002, tlog_cb, &l);
    CHECK_EQ_INT(atomic_load(&b.probes_ok), 1);
    CHECK_EQ_INT(sc_breaker_state(&b), H);
    CHECK_EQ_INT(sc_breaker_allow(&b, 3002, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 3002, tlog_cb, &l), 1);
    sc_breaker_report(&b, 1, 3003, tlog_cb, &l);
    sc_breaker_report(&b, 1, 3003, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);

    /* Probes that never report (abandoned requests): after one open
     * duration without a verdict a new round starts, without a
     * transition; a late report of the old round is not a probe's. */
    unsigned before = atomic_load(&l.total);
    fail_n(&b, 3, 4000, &l);
    CHECK_EQ_INT(sc_breaker_allow(&b, 5000, tlog_cb, &l), 1);   /* half-open, 3 probes */
    CHECK_EQ_INT(sc_breaker_allow(&b, 5000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 5000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 5999, tlog_cb, &l), 0);
    CHECK_EQ_INT(sc_breaker_allow(&b, 6000, tlog_cb, &l), 1);   /* a new round */
    CHECK_EQ_INT(sc_breaker_state(&b), H);
    CHECK_EQ_INT(atomic_load(&l.total), before + 2);            /* C->O, O->H only */
    CHECK_EQ_INT(atomic_load(&b.probes_out), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 6000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 6000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 6000, tlog_cb, &l), 0);
    sc_breaker_report(&b, 1, 6001, tlog_cb, &l);
    sc_breaker_report(&b, 1, 6001, tlog_cb, &l);
    sc_breaker_report(&b, 1, 6001, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);

    /* half_open_requests 0 means one probe. */
    p.half_open_requests = 0;
    sc_breaker_init(&b, &p, NULL);
    fail_n(&b, 3, 0, &l);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1000, tlog_cb, &l), 1);
    CHECK_EQ_INT(sc_breaker_allow(&b, 1000, tlog_cb, &l), 0);
    sc_breaker_report(&b, 1, 1000, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b), C);
}

static void t_group_cap(void)
{
    struct sc_breaker_params p = params();
    struct tlog l;
    tlog_init(&l);

    /* 4 endpoints, 50%: two may be open at once, the third stays closed
     * and counts a refused ejection per failure past its threshold. */
    struct sc_breaker_group g;
    struct sc_breaker b[4];
    sc_breaker_group_init(&g, 4, 50);
    for (int i = 0; i < 4; i++)
        sc_breaker_init(&b[i], &p, &g);
    fail_n(&b[0], 3, 0, &l);
    fail_n(&b[1], 3, 0, &l);
    fail_n(&b[2], 5, 0, &l);
    CHECK_EQ_INT(sc_breaker_state(&b[0]), O);
    CHECK_EQ_INT(sc_breaker_state(&b[1]), O);
    CHECK_EQ_INT(sc_breaker_state(&b[2]), C);
    CHECK_EQ_INT(atomic_load(&b[2].ejections_refused), 3);
    CHECK_EQ_INT(atomic_load(&g.open), 2);
    CHECK_EQ_INT(sc_breaker_allow(&b[2], 0, tlog_cb, &l), 1);
    /* Half-open still holds the slot; closing frees it. */
    CHECK_EQ_INT(sc_breaker_allow(&b[0], 1000, tlog_cb, &l), 1);
    fail_n(&b[2], 1, 1000, &l);
    CHECK_EQ_INT(sc_breaker_state(&b[2]), C);
    CHECK_EQ_INT(sc_breaker_allow(&b[0], 1000, tlog_cb, &l), 1);
    sc_breaker_report(&b[0], 1, 1000, tlog_cb, &l);
    sc_breaker_report(&b[0], 1, 1000, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b[0]), C);
    CHECK_EQ_INT(atomic_load(&g.open), 1);
    fail_n(&b[2], 1, 1000, &l);   /* its run is still ≥ 3: trips now */
    CHECK_EQ_INT(sc_breaker_state(&b[2]), O);
    CHECK_EQ_INT(atomic_load(&g.open), 2);
    /* A half-open probe failing goes back to OPEN without a new slot. */
    CHECK_EQ_INT(sc_breaker_allow(&b[1], 1000, tlog_cb, &l), 1);
    sc_breaker_report(&b[1], 0, 1000, tlog_cb, &l);
    CHECK_EQ_INT(sc_breaker_state(&b[1]), O);
    CHECK_EQ_INT(atomic_load(&g.open), 2);

    /* The cap by size and percent. */
    static const struct { unsigned size, pct, cap; } caps[] = {
        {4, 50, 2}, {3, 50, 1}, {2, 0, 1}, {10, 10, 1}, {10, 19, 1}, {10, 100, 10},
        {1, 50, 0}, {1, 99, 0}, {1, 100, 1}, {0, 100, 0}, {5, 200, 5},
    };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        sc_breaker_group_init(&g, caps[i].size, caps[i].pct);
        if (group_cap(&g) != caps[i].cap) {
            printf("# size %u pct %u: cap %u, want %u\n", caps[i].size, caps[i].pct,
                   group_cap(&g), caps[i].cap);
            test_failed_ = 1;
        }
    }

    /* A group of one at less than 100%: its endpoint is never ejected. */
    sc_breaker_group_init(&g, 1, 50);
    sc_breaker_init(&b[0], &p, &g);
    fail_n(&b[0], 10, 0, &l);
    CHECK_EQ_INT(sc_breaker_state(&b[0]), C);
    CHECK_EQ_INT(atomic_load(&b[0].ejections_refused), 8);
    /* Two endpoints at 0%: the floor of one. */
    sc_breaker_group_init(&g, 2, 0);
    sc_breaker_init(&b[0], &p, &g);
    sc_breaker_init(&b[1], &p, &g);
    fail_n(&b[0], 3, 0, &l);
    fail_n(&b[1], 3, 0, &l);
    CHECK_EQ_INT(sc_breaker_state(&b[0]), O);
    CHECK_EQ_INT(sc_breaker_state(&b[1]), C);
}

/* Replayed races: the other thread's step runs at the racing CAS. */

static struct sc_breaker rb;
static struct sc_breaker_group rg;
static struct tlog rl;
static uint64_t rnow;

static void other_fails(void) { sc_breaker_report(&rb, 0, rnow, tlog_cb, &rl); }
static void other_succeeds(void) { sc_breaker_report(&rb, 1, rnow, tlog_cb, &rl); }
static void other_allows(void) { CHECK_EQ_INT(sc_breaker_allow(&rb, rnow, tlog_cb, &rl), 1); }
static void other_half_opens_and_fails(void)
{
    CHECK_EQ_INT(sc_breaker_allow(&rb, rnow, tlog_cb, &rl), 1);
    sc_breaker_report(&rb, 0, rnow, tlog_cb, &rl);
}

static void replay_setup(unsigned group_size)
{
    struct sc_breaker_params p = params();   /* 3 failures, open 1000, 2 probes */
    tlog_init(&rl);
    sc_breaker_group_init(&rg, group_size, 100);
    sc_breaker_init(&rb, &p, &rg);
}

static void t_replay_trip(void)
{
    /* Two threads see the third failure at once: one trip, one slot. */
    replay_setup(4);
    rnow = 10;
    fail_n(&rb, 2, rnow, &rl);
    race_at = "trip";
    race_step = other_fails;
    fail_n(&rb, 1, rnow, &rl);
    CHECK(race_at == NULL);   /* the race point was reached */
    CHECK_EQ_INT(sc_breaker_state(&rb), O);
    CHECK_EQ_INT(atomic_load(&rl.n[C][O]), 1);
    CHECK_EQ_INT(atomic_load(&rl.total), 1);
    CHECK_EQ_INT(atomic_load(&rg.open), 1);   /* the loser gave its slot back */
    CHECK_EQ_INT(atomic_load(&rb.open_until_ms), 1010);
}

static void t_replay_half_open(void)
{
    /* Two threads find the time up at once: one transition, and the
     * loser takes the second probe slot. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    rnow = 1000;
    race_at = "half_open";
    race_step = other_allows;
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(atomic_load(&rl.n[O][H]), 1);
    CHECK_EQ_INT(atomic_load(&rb.probes_out), 2);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 0);

    /* ABA: a thread read the first episode's deadline (1000); before its
     * CAS another half-opens, fails its probe and re-opens (until 3000).
     * The stale thread must not half-open the new episode at 1500. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    rnow = 1000;
    race_at = "half_open";
    race_step = other_half_opens_and_fails;
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1500, tlog_cb, &rl), 0);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(sc_breaker_state(&rb), O);
    CHECK_EQ_INT(atomic_load(&rl.n[O][H]), 1);
    CHECK_EQ_INT(atomic_load(&rl.n[H][O]), 1);
    CHECK_EQ_INT(atomic_load(&rb.open_until_ms), 3000);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 2999, tlog_cb, &rl), 0);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 3000, tlog_cb, &rl), 1);
}

static void t_replay_probe(void)
{
    /* The last probe slot, wanted by two: one gets it. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    rnow = 1000;
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    race_at = "probe";
    race_step = other_allows;
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 0);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(atomic_load(&rb.probes_out), 2);
}

static void t_replay_close_vs_reopen(void)
{
    /* The last probe succeeds while another fails: whichever CAS lands
     * first wins, and the other changes nothing. Here the failure lands
     * first: OPEN, the group slot still held, no H->C. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    rnow = 1000;
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    sc_breaker_report(&rb, 1, 1000, tlog_cb, &rl);
    race_at = "close";
    race_step = other_fails;
    sc_breaker_report(&rb, 1, 1000, tlog_cb, &rl);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(sc_breaker_state(&rb), O);
    CHECK_EQ_INT(atomic_load(&rl.n[H][C]), 0);
    CHECK_EQ_INT(atomic_load(&rl.n[H][O]), 1);
    CHECK_EQ_INT(atomic_load(&rg.open), 1);
    CHECK_EQ_INT(atomic_load(&rb.trips), 2);

    /* The success lands first: CLOSED, the failure is a closed one. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    sc_breaker_report(&rb, 1, 1000, tlog_cb, &rl);
    race_at = "reopen";
    race_step = other_succeeds;
    sc_breaker_report(&rb, 0, 1000, tlog_cb, &rl);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(sc_breaker_state(&rb), C);
    CHECK_EQ_INT(atomic_load(&rl.n[H][C]), 1);
    CHECK_EQ_INT(atomic_load(&rl.n[H][O]), 0);
    CHECK_EQ_INT(atomic_load(&rg.open), 0);

    /* Two probes fail at once: one re-open, one doubling. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    race_at = "reopen";
    race_step = other_fails;
    sc_breaker_report(&rb, 0, 1000, tlog_cb, &rl);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(atomic_load(&rl.n[H][O]), 1);
    CHECK_EQ_INT(atomic_load(&rb.trips), 2);
    CHECK_EQ_INT(atomic_load(&rb.open_until_ms), 3000);
}

static void t_replay_round(void)
{
    /* Two threads find a round of probes timed out at once: one new
     * round; both get a slot of it. */
    replay_setup(4);
    fail_n(&rb, 3, 0, &rl);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 1000, tlog_cb, &rl), 1);
    rnow = 2000;
    race_at = "round";
    race_step = other_allows;
    CHECK_EQ_INT(sc_breaker_allow(&rb, 2000, tlog_cb, &rl), 1);
    CHECK(race_at == NULL);
    CHECK_EQ_INT(atomic_load(&rb.probes_out), 2);
    CHECK_EQ_INT(atomic_load(&rb.half_open_since_ms), 2000);
    CHECK_EQ_INT(sc_breaker_allow(&rb, 2000, tlog_cb, &rl), 0);
    CHECK_EQ_INT(atomic_load(&rl.total), 2);   /* C->O, O->H: a round is no transition */
}

/* Races. */

static unsigned xorshift(unsigned *s)
{
    unsigned x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}


#define THREADS 4
#define REPORTS 100000

struct race {
    struct sc_breaker *b;
    struct tlog *l;
    atomic_uint_fast64_t *clock;   /* NULL: fixed at 0 */
    atomic_uint *go;
    void *ctx;                     /* the round-based test's shared state */
    unsigned seed;
    int ticker;   /* this thread moves the clock on */
    uint64_t allowed, reported;
};

/* Rounds: the breaker is reset, the threads are released together, each
 * reports failures past the threshold; every round must see exactly one
 * CLOSED→OPEN. ROUNDS × FAILS = REPORTS per thread. */
#define ROUNDS 1000
#define FAILS (REPORTS / ROUNDS)

struct rounds {
    struct sc_breaker b;
    struct sc_breaker_group g;
    struct sc_breaker_params p;
    struct tlog l;
    pthread_barrier_t start, end;
    atomic_uint arrived;   /* spun on after the barrier: a simultaneous start */
    unsigned bad_rounds, trips_total;
};

static void *race_rounds(void *arg)
{
    struct race *r = arg;
    struct rounds *s = r->ctx;
    for (unsigned k = 0; k < ROUNDS; k++) {
        if (r->ticker) {
            sc_breaker_group_init(&s->g, 4, 100);   /* the cap must not serialize */
            sc_breaker_init(&s->b, &s->p, &s->g);
            tlog_init(&s->l);
        }
        pthread_barrier_wait(&s->start);
        atomic_fetch_add(&s->arrived, 1);
        for (unsigned spin = 0; atomic_load(&s->arrived) < THREADS * (k + 1); spin++)
            if (spin % 1024 == 1023)
                sched_yield();
        for (unsigned i = 0; i < FAILS; i++)
            sc_breaker_report(&s->b, 0, k, tlog_cb, &s->l);
        pthread_barrier_wait(&s->end);
        if (r->ticker) {
            unsigned co = atomic_load(&s->l.n[C][O]);
            s->trips_total += co;
            if (co != 1 || atomic_load(&s->l.total) != 1 ||
                atomic_load(&s->b.transitions) != 1 || atomic_load(&s->g.open) != 1 ||
                atomic_load(&s->b.trips) != 1 || atomic_load(&s->b.open_until_ms) != k + 1000 ||
                sc_breaker_state(&s->b) != O)
                s->bad_rounds++;
        }
    }
    return NULL;
}

static void t_race_one_trip(void)
{
    static struct rounds s;
    s.p = params();
    s.p.consecutive_failures = 5;
    s.p.failure_rate = 0.5;   /* both triggers fire at once */
    s.p.min_requests = 5;
    s.bad_rounds = s.trips_total = 0;
    atomic_init(&s.arrived, 0);
    REQUIRE(pthread_barrier_init(&s.start, NULL, THREADS) == 0);
    REQUIRE(pthread_barrier_init(&s.end, NULL, THREADS) == 0);
    pthread_t th[THREADS];
    struct race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.ctx = &s, .ticker = i == 0};
        REQUIRE(pthread_create(&th[i], NULL, race_rounds, &r[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&s.start);
    pthread_barrier_destroy(&s.end);
    CHECK_EQ_INT(s.trips_total, ROUNDS);
    CHECK_EQ_INT(s.bad_rounds, 0);
}

/* Churn: a clock every thread moves on, a breaker that trips after two
 * failures and half-opens after 1-4 ms, outcomes at random: thousands of
 * transitions racing each other. */
static void *race_churn(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(r->go))
        ;
    for (unsigned i = 0; i < REPORTS; i++) {
        uint64_t now = atomic_fetch_add(r->clock, 1) / 16;
        if (!sc_breaker_allow(r->b, now, tlog_cb, r->l))
            continue;
        sc_breaker_report(r->b, xorshift(&r->seed) % 2, now, tlog_cb, r->l);
    }
    return NULL;
}

/* The transitions seen add up: no impossible edge, and each state's
 * entries and exits balance given the final state (so no transition was
 * reported twice or lost). */
static void check_chain(struct sc_breaker *b, struct sc_breaker_group *g, struct tlog *l,
                        const struct sc_breaker_params *p, uint64_t clock, unsigned min_cycles)
{
    unsigned co = atomic_load(&l->n[C][O]), oh = atomic_load(&l->n[O][H]);
    unsigned ho = atomic_load(&l->n[H][O]), hc = atomic_load(&l->n[H][C]);
    int fin = sc_breaker_state(b);
    printf("# %u C->O, %u O->H, %u H->O, %u H->C over clock %" PRIu64 ", final %s\n", co, oh,
           ho, hc, clock, sc_breaker_state_name((enum sc_breaker_state)fin));
    CHECK(co >= min_cycles);   /* the test exercised the cycle */
    CHECK(hc >= min_cycles);
    CHECK(ho >= 1);
    CHECK_EQ_INT(atomic_load(&l->n[C][H]), 0);
    CHECK_EQ_INT(atomic_load(&l->n[O][C]), 0);
    CHECK_EQ_INT(atomic_load(&l->n[C][C]) + atomic_load(&l->n[O][O]) +
                     atomic_load(&l->n[H][H]), 0);
    CHECK_EQ_INT(co, hc + 1 - (fin == C));
    CHECK_EQ_INT(oh, co + ho - (fin == O));
    CHECK_EQ_INT(ho + hc, oh - (fin == H));
    CHECK_EQ_INT(atomic_load(&b->transitions), co + oh + ho + hc);
    CHECK_EQ_INT(atomic_load(&l->total), co + oh + ho + hc);
    CHECK_EQ_INT(atomic_load(&g->open), fin != C);
    CHECK(atomic_load(&b->probes_out) <= (p->half_open_requests ? p->half_open_requests : 1));
}

/* Threads share a clock that thread 0 moves on; each asks allow() and
 * reports an outcome (failures in bursts so the breaker cycles through
 * every state many times). */
static void *race_cycle(void *arg)
{
    struct race *r = arg;
    while (!atomic_load(r->go))
        ;
    for (unsigned i = 0; i < REPORTS; i++) {
        if (r->ticker && i % 64 == 0)
            atomic_fetch_add(r->clock, 7);
        uint64_t now = atomic_load(r->clock);
        if (!sc_breaker_allow(r->b, now, tlog_cb, r->l))
            continue;
        r->allowed++;
        /* Phases of 2000 ms: mostly failing, then all succeeding. */
        int ok = (now / 2000) % 2 ? 1 : (xorshift(&r->seed) % 4 == 0);
        sc_breaker_report(r->b, ok, atomic_load(r->clock), tlog_cb, r->l);
        r->reported++;
    }
    return NULL;
}

static void t_race_cycles(void)
{
    struct sc_breaker_group g;
    struct sc_breaker b;
    struct sc_breaker_params p = params();
    p.consecutive_failures = 5;
    p.failure_rate = 0.5;
    p.window_ms = 1000;
    p.min_requests = 20;
    p.open_ms = 50;
    p.max_open_ms = 400;
    p.half_open_requests = 3;
    struct tlog l;
    tlog_init(&l);
    sc_breaker_group_init(&g, 2, 50);
    sc_breaker_init(&b, &p, &g);
    atomic_uint go;
    atomic_init(&go, 0);
    atomic_uint_fast64_t clock;
    atomic_init(&clock, 0);
    pthread_t th[THREADS];
    struct race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.b = &b, .l = &l, .go = &go, .clock = &clock,
                             .seed = (unsigned)i + 1, .ticker = i == 0};
        REQUIRE(pthread_create(&th[i], NULL, race_cycle, &r[i]) == 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    check_chain(&b, &g, &l, &p, atomic_load(&clock), 3);
}

static void t_race_churn(void)
{
    struct sc_breaker_group g;
    struct sc_breaker b;
    struct sc_breaker_params p = params();
    p.consecutive_failures = 2;
    p.failure_rate = 0.5;
    p.window_ms = 100;
    p.min_requests = 4;
    p.open_ms = 1;
    p.max_open_ms = 4;
    p.half_open_requests = 2;
    struct tlog l;
    tlog_init(&l);
    sc_breaker_group_init(&g, 2, 50);
    sc_breaker_init(&b, &p, &g);
    atomic_uint go;
    atomic_init(&go, 0);
    atomic_uint_fast64_t clock;
    atomic_init(&clock, 0);
    pthread_t th[THREADS];
    struct race r[THREADS];
    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct race){.b = &b, .l = &l, .go = &go, .clock = &clock,
                             .seed = 77u * (unsigned)i + 1};
        REQUIRE(pthread_create(&th[i], NULL, race_churn, &r[i]) == 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    check_chain(&b, &g, &l, &p, atomic_load(&clock), 100);
}

int main(void)
{
    RUN(t_consecutive_trip_and_recover);
    RUN(t_doubling_and_cap);
    RUN(t_rate_trigger_min_requests);
    RUN(t_window_forgets);
    RUN(t_half_open_probes);
    RUN(t_group_cap);
    RUN(t_replay_trip);
    RUN(t_replay_half_open);
    RUN(t_replay_probe);
    RUN(t_replay_close_vs_reopen);
    RUN(t_replay_round);
    RUN(t_race_one_trip);
    RUN(t_race_cycles);
    RUN(t_race_churn);
    return test_done();
}
