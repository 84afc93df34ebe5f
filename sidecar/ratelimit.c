/* Rate limits (ratelimit.h): GCRA buckets with one atomic theoretical
 * arrival time (TAT) each, a bounded per-key table, and the keyed hash of
 * bearer tokens. docs/internals/sidecar-policies.md explains GCRA and why
 * it needs no lock.
 *
 * A bucket of rate r and burst b, with T = 1/r the time one token takes to
 * come back: a request of cost n at time t is granted when
 *     max(TAT, t) + n·T  ≤  t + b·T
 * and then TAT becomes max(TAT, t) + n·T. TAT ≤ t means the bucket is full.
 * The TAT is kept in nanoseconds although clocks come in µs: at 3 req/s, T
 * is 333333.3 µs, and rounding each grant to whole µs would either refuse
 * the last token of a burst or let a saturated bucket run ahead by up to
 * 1 µs per grant. Charges are rounded down to the ns and the tolerance b·T
 * too, so k grants of 1 never exceed the burst's tolerance (k·⌊T⌋ ≤ ⌊k·T⌋)
 * and a saturated bucket runs ahead by under 1 ns per grant (a few ppm). */
#include "sidecar/ratelimit.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_US 1000u
#define NS_PER_MS 1000000u
/* Every duration is clamped here (146 years): no product overflows. */
#define NS_MAX (UINT64_C(1) << 62)
/* Probes per lookup in the key table: a bound on the work per request. */
#define RATE_PROBES 16
#define RATE_TABLE_MAX_SLOTS (UINT64_C(1) << 24)

/* The unit test defines this to run another thread's step at a race
 * point (just before a CAS), so each race is replayed deterministically. */
#ifndef SC_RATE_RACE_POINT
#define SC_RATE_RACE_POINT(name) ((void)0)
#endif

/* ns that `tokens` take to come back, rounded down, clamped. */
static uint64_t tokens_ns(const struct sc_rate *r, double tokens)
{
    double ns = tokens * 1e6 / r->per_ms;
    if (!(ns > 0))
        return 0;
    if (ns >= (double)NS_MAX)
        return NS_MAX;
    return (uint64_t)ns;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t us_to_ns(uint64_t us)
{
    return us > UINT64_MAX / NS_PER_US ? UINT64_MAX : us * NS_PER_US;
}

void sc_rate_init(struct sc_rate *r, double rate_per_s, double burst)
{
    /* A rate that is not a positive number never refills (the config
     * layer rejects it first; this keeps bad input from dividing by 0). */
    if (!(rate_per_s > 0) || isinf(rate_per_s))
        rate_per_s = isinf(rate_per_s) && rate_per_s > 0 ? 1e12 : 1e-12;
    if (!(burst >= 1))
        burst = 1;
    if (burst > 1e12)
        burst = 1e12;
    r->per_ms = rate_per_s / 1000.0;
    r->burst = burst;
    atomic_init(&r->tat_ns, 0);   /* in the past: full */
}

int sc_rate_take(struct sc_rate *r, double cost, uint64_t now_us, uint64_t *retry_after_ms)
{
    if (retry_after_ms)
        *retry_after_ms = 0;
    if (!(cost >= 0) || cost > r->burst)
        return 0;   /* NaN, negative, or larger than the bucket can ever hold */
    uint64_t now = us_to_ns(now_us);
    uint64_t charge = tokens_ns(r, cost), tol = tokens_ns(r, r->burst);
    uint64_t tat = atomic_load_explicit(&r->tat_ns, memory_order_relaxed);
    for (;;) {
        uint64_t next = sat_add(tat > now ? tat : now, charge);
        if (next - now > tol) {
            if (retry_after_ms) {
                uint64_t wait = next - now - tol;
                *retry_after_ms = wait / NS_PER_MS + (wait % NS_PER_MS != 0);
            }
            return 0;
        }
        /* relaxed is enough: the TAT is the only shared datum and a CAS
         * on one location is totally ordered; nothing else is published. */
        SC_RATE_RACE_POINT("take");
        if (atomic_compare_exchange_weak_explicit(&r->tat_ns, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 1;
    }
}

void sc_rate_settle(struct sc_rate *r, double delta, uint64_t now_us)
{
    if (!(delta == delta) || delta == 0)
        return;
    uint64_t now = us_to_ns(now_us);
    uint64_t tol = tokens_ns(r, r->burst);
    uint64_t amount = tokens_ns(r, fabs(delta));
    uint64_t tat = atomic_load_explicit(&r->tat_ns, memory_order_relaxed), next;
    do {
        uint64_t base = tat > now ? tat : now;
        if (delta > 0) {
            /* Give back, but never past full: a bucket whose TAT is
             * already in the past has nothing to receive. */
            if (tat <= now)
                return;
            next = tat - now > amount ? tat - amount : now;
        } else {
            /* Take more, never refused. The debt is capped at one burst
             * (TAT ≤ now + 2·burst·T): a usage figure that is absurd (a
             * buggy upstream) delays the key by at most burst/rate, and
             * does not lock it out for years. */
            next = sat_add(base, amount);
            uint64_t cap = sat_add(now, sat_add(tol, tol));
            if (next > cap)
                next = cap > base ? cap : base;
        }
        if (next == tat)
            return;
        SC_RATE_RACE_POINT("settle");
    } while (!atomic_compare_exchange_weak_explicit(&r->tat_ns, &tat, next, memory_order_relaxed,
                                                    memory_order_relaxed));
}

double sc_rate_available(const struct sc_rate *r, uint64_t now_us)
{
    uint64_t now = us_to_ns(now_us);
    uint64_t tat = atomic_load_explicit(&r->tat_ns, memory_order_relaxed);
    if (tat <= now)
        return r->burst;
    return r->burst - (double)(tat - now) * r->per_ms / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Per-key table. */

struct sc_rate_slot {
    atomic_uint_fast64_t key;   /* 0: never used */
    struct sc_rate rate;
};

struct sc_rate_table {
    size_t mask;
    unsigned probes;
    struct sc_rate_slot slot[];
};

int sc_rate_table_new(size_t slots, double rate_per_s, double burst, struct sc_rate_table **out)
{
    *out = NULL;
    if (slots == 0 || (slots & (slots - 1)) != 0 || slots > RATE_TABLE_MAX_SLOTS)
        return -EINVAL;
    struct sc_rate_table *t = calloc(1, sizeof *t + slots * sizeof t->slot[0]);
    if (!t)
        return -ENOMEM;
    t->mask = slots - 1;
    t->probes = slots < RATE_PROBES ? (unsigned)slots : RATE_PROBES;
    for (size_t i = 0; i < slots; i++) {
        atomic_init(&t->slot[i].key, 0);
        sc_rate_init(&t->slot[i].rate, rate_per_s, burst);
    }
    *out = t;
    return 0;
}

void sc_rate_table_free(struct sc_rate_table *t)
{
    free(t);
}

/* A slot whose bucket is full again holds nothing worth keeping: its key
 * would get the same full bucket back from any other slot. */
static int slot_idle(const struct sc_rate_slot *s, uint64_t now_ns)
{
    return atomic_load_explicit(&s->rate.tat_ns, memory_order_relaxed) <= now_ns;
}

struct sc_rate *sc_rate_table_get(struct sc_rate_table *t, uint64_t key_hash, uint64_t now_us)
{
    uint64_t key = key_hash ? key_hash : 1;   /* 0 marks an unused slot */
    uint64_t now = us_to_ns(now_us);
    /* Two rounds: a takeover that loses its CAS looks again (the winner
     * may have been this same key), passing over the slot just lost: its
     * new key, idle until its first charge, is about to use it. */
    struct sc_rate_slot *lost = NULL;
    for (int round = 0; round < 2; round++) {
        struct sc_rate_slot *idle = NULL;
        uint64_t idle_key = 0;
        for (unsigned p = 0; p < t->probes; p++) {
            struct sc_rate_slot *s = &t->slot[(key + p) & t->mask];
            uint64_t k = atomic_load_explicit(&s->key, memory_order_acquire);
            if (k == key)
                return &s->rate;
            if (k == 0) {
                /* Slots never become unused again, so the key is not
                 * further along: claim this one. */
                SC_RATE_RACE_POINT("claim");
                if (atomic_compare_exchange_strong_explicit(&s->key, &k, key,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire))
                    return &s->rate;
                if (k == key)
                    return &s->rate;   /* a racing request of the same key */
            }
            if (!idle && s != lost && slot_idle(s, now)) {
                idle = s;
                idle_key = k;
            }
        }
        if (!idle)
            return NULL;   /* every slot in reach is in use */
        /* Take over the first idle slot. A request of the old key that
         * already holds this bucket may still charge it once: that is one
         * request counted against the new key, in a race, at most. */
        SC_RATE_RACE_POINT("takeover");
        if (atomic_compare_exchange_strong_explicit(&idle->key, &idle_key, key,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            return &idle->rate;
        lost = idle;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* SipHash-2-4 (Aumasson and Bernstein), keyed once per process. */

static uint64_t hash_key[2];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_key_init(void)
{
    unsigned char k[16];
    size_t got = 0;
    while (got < sizeof k) {
        ssize_t n = getrandom(k + got, sizeof k - got, 0);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof k) {
        /* No getrandom (old kernel, seccomp): the clock and pid. Weak, but
         * the hash still never reveals a token; only guessability suffers. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
        uint64_t b = ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&got;
        memcpy(k, &a, 8);
        memcpy(k + 8, &b, 8);
    }
    memcpy(&hash_key[0], k, 8);
    memcpy(&hash_key[1], k + 8, 8);
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                       \
    do {                                                               \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);      \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                         \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                         \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);      \
    } while (0)

static uint64_t siphash24(const uint64_t k[2], const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ k[0], v1 = 0x646f72616e646f6dull ^ k[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ k[0], v3 = 0x7465646279746573ull ^ k[1];
    size_t whole = len - len % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = (m << 8) | in[i + (size_t)j];   /* little-endian, any host */
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t j = len % 8; j > 0; j--)
        b |= (uint64_t)in[whole + j - 1] << (8 * (j - 1));
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t sc_rate_key_hash(const char *token, size_t len)
{
    pthread_once(&hash_once, hash_key_init);
    return siphash24(hash_key, (const unsigned char *)token, len);
}
