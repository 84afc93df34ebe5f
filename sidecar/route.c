/* Routing decisions over a validated route (contract in sidecar/route.h):
 * match rules, then sticky rendezvous hashing, then a weighted draw; and
 * power of two choices between a version's endpoints. Runs on every
 * request, so: no allocation, no locks, no I/O. */
#include "sidecar/route.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* --- rng: xoroshiro128+ seeded by splitmix64 -------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sc_rng_seed(struct sc_rng *rng, uint64_t seed)
{
    rng->s[0] = splitmix64(&seed);
    rng->s[1] = splitmix64(&seed);
    if ((rng->s[0] | rng->s[1]) == 0)   /* the one state xoroshiro never leaves */
        rng->s[0] = 1;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sc_rng_next(struct sc_rng *rng)
{
    uint64_t s0 = rng->s[0], s1 = rng->s[1];
    uint64_t r = s0 + s1;
    s1 ^= s0;
    rng->s[0] = rotl(s0, 24) ^ s1 ^ (s1 << 16);
    rng->s[1] = rotl(s1, 37);
    return r;
}

/* A uniform integer in [0, n) for n < 2^32, from the high bits (the low
 * bits of xoroshiro128+ are its weakest) by multiply-shift. */
static inline uint32_t below(uint64_t x, uint32_t n)
{
    return (uint32_t)(((x >> 32) * (uint64_t)n) >> 32);
}

/* --- hashing for stickiness ----------------------------------------------- */

static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

/* MurmurHash64A (Austin Appleby, public domain) with a final fmix64, so a
 * key hashed under two seeds gives independent-looking values. */
static uint64_t hash64(const void *key, size_t len, uint64_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ull;
    const int rsh = 47;
    const unsigned char *p = key;
    uint64_t h = seed ^ (len * m);
    size_t nblocks = len / 8;
    for (size_t i = 0; i < nblocks; i++, p += 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        k *= m;
        k ^= k >> rsh;
        k *= m;
        h ^= k;
        h *= m;
    }
    switch (len & 7) {
    case 7: h ^= (uint64_t)p[6] << 48; /* fall through */
    case 6: h ^= (uint64_t)p[5] << 40; /* fall through */
    case 5: h ^= (uint64_t)p[4] << 32; /* fall through */
    case 4: h ^= (uint64_t)p[3] << 24; /* fall through */
    case 3: h ^= (uint64_t)p[2] << 16; /* fall through */
    case 2: h ^= (uint64_t)p[1] << 8;  /* fall through */
    case 1: h ^= (uint64_t)p[0]; h *= m;
    }
    h ^= h >> rsh;
    h *= m;
    h ^= h >> rsh;
    return fmix64(h);
}

/* Weighted rendezvous hashing: each version draws u in (0, 1) from
 * hash(key, version name) and scores -weight / ln(u); the highest score wins.
 * Equivalently each version's score is an exponential variable with rate
 * 1/weight, so version i wins with probability weight_i / sum. Scores
 * depend only on the key, the name and that version's weight: raising one
 * weight only raises that version's scores (keys can only arrive there),
 * lowering one only lowers its own (keys can only leave it). */
int sc_route_sticky_version(const struct sc_route *r, const char *key, size_t len)
{
    int best = -ENOENT;
    double best_score = 0;
    for (unsigned i = 0; i < r->nversions; i++) {
        const struct sc_version *v = &r->versions[i];
        if (v->weight == 0)
            continue;
        /* Seeding by the name (not the index) keeps a version's scores when
         * versions are added, removed or reordered. */
        uint64_t seed = hash64(v->name, strlen(v->name), 0x5bd1e9955bd1e995ull);
        uint64_t h = hash64(key, len, seed);
        double u = ((double)(h >> 11) + 0.5) * (1.0 / 9007199254740992.0);  /* (0, 1) */
        double score = -(double)v->weight / log(u);
        if (best < 0 || score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

static int weighted_draw(const struct sc_route *r, struct sc_rng *rng)
{
    if (r->total_weight == 0)
        return -ENOENT;
    uint32_t x = below(sc_rng_next(rng), r->total_weight);
    for (unsigned i = 0; i < r->nversions; i++) {
        if (x < r->versions[i].weight)
            return (int)i;
        x -= r->versions[i].weight;
    }
    return -ENOENT;   /* total_weight disagrees with the versions: not from config.c */
}

int sc_route_pick_version(const struct sc_route *r, sc_header_cb hdr, void *ctx,
                          struct sc_rng *rng, enum sc_pick_reason *why)
{
    size_t len;
    const char *val;
    for (unsigned i = 0; i < r->nmatch; i++) {
        const struct sc_match *m = &r->match[i];
        val = hdr(ctx, m->header, &len);
        if (val && len == strlen(m->value) && memcmp(val, m->value, len) == 0) {
            if (why)
                *why = SC_PICK_MATCH;
            return (int)m->version;
        }
    }
    /* An empty sticky value names no session: it gets the weighted draw
     * rather than piling every such client onto one version. */
    if (r->sticky_header && (val = hdr(ctx, r->sticky_header, &len)) != NULL && len > 0) {
        int v = sc_route_sticky_version(r, val, len);
        if (v >= 0) {
            if (why)
                *why = SC_PICK_STICKY;
            return v;
        }
    }
    int v = weighted_draw(r, rng);
    if (v >= 0 && why)
        *why = SC_PICK_WEIGHT;
    return v;
}

unsigned sc_route_pick_endpoint(const unsigned *inflight, unsigned n, struct sc_rng *rng)
{
    if (n <= 1)
        return 0;
    uint64_t x = sc_rng_next(rng);
    /* Two distinct random indices; a and b are each uniform, so preferring
     * a on a tie is a random tie-break. */
    unsigned a = below(x, n);
    unsigned b = below(x << 32, n - 1);
    if (b >= a)
        b++;
    return inflight[b] < inflight[a] ? b : a;
}
