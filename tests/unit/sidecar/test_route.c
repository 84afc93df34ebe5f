/* Unit tests for sidecar/route.c: the weighted split, match rules, sticky
 * keys (and how few move when weights change), and power of two choices. */
#include "sidecar/config.c"
#include "sidecar/route.c"
#include "tests/unit/test.h"

#include <errno.h>
#include <time.h>

#define DRAWS 10000

struct hdrs {
    const char *name[4], *value[4];
    unsigned n;
};

static const char *get_hdr(void *ctx, const char *name, size_t *len)
{
    struct hdrs *h = ctx;
    for (unsigned i = 0; i < h->n; i++)
        if (strcmp(h->name[i], name) == 0) {
            *len = strlen(h->value[i]);
            return h->value[i];
        }
    return NULL;
}

/* A table with one route "m" whose versions and extras are given in YAML
 * flow style. */
static struct sc_config *table(const char *versions, const char *extra)
{
    char doc[2048];
    snprintf(doc, sizeof doc, "listen: 127.0.0.1:1\nroutes:\n  - {model: m, versions: [%s]%s}\n",
             versions, extra);
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    if (sc_config_parse(doc, strlen(doc), "test", &c, &e, NULL) != 0) {
        printf("# table did not load: %s\n", e.n ? e.items[0].msg : "?");
        c = NULL;
    }
    mg_json_errs_free(&e);
    return c;
}

#define VER(n, w) "{name: " n ", weight: " #w ", endpoints: [h:1]}"

/* Each version's share over DRAWS weighted draws, in points (percent). */
static void shares(const struct sc_route *r, uint64_t seed, double *pct)
{
    unsigned count[SC_MAX_VERSIONS] = {0};
    struct sc_rng rng;
    struct hdrs none = {.n = 0};
    sc_rng_seed(&rng, seed);
    for (int i = 0; i < DRAWS; i++) {
        enum sc_pick_reason why = 0;
        int v = sc_route_pick_version(r, get_hdr, &none, &rng, &why);
        if (v >= 0 && why == SC_PICK_WEIGHT)
            count[v]++;
    }
    for (unsigned i = 0; i < r->nversions; i++)
        pct[i] = 100.0 * count[i] / DRAWS;
}

static int within(double got, double want, double tol)
{
    return got >= want - tol && got <= want + tol;
}

static void t_rng(void)
{
    struct sc_rng a, b, z;
    sc_rng_seed(&a, 42);
    sc_rng_seed(&b, 42);
    sc_rng_seed(&z, 0);
    int same = 1, zero = 1;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sc_rng_next(&a);
        same &= x == sc_rng_next(&b);
        zero &= sc_rng_next(&z) == 0;
    }
    CHECK(same);
    CHECK(!zero);
    sc_rng_seed(&b, 43);
    CHECK(sc_rng_next(&a) != sc_rng_next(&b));
    /* Every bit flips about half the time. */
    unsigned ones[64] = {0};
    for (int i = 0; i < DRAWS; i++) {
        uint64_t x = sc_rng_next(&a);
        for (int k = 0; k < 64; k++)
            ones[k] += (x >> k) & 1;
    }
    int fair = 1;
    for (int k = 1; k < 64; k++)   /* bit 0 of xoroshiro128+ is an LFSR: skipped */
        fair &= ones[k] > DRAWS * 45 / 100 && ones[k] < DRAWS * 55 / 100;
    CHECK(fair);
}

static void t_weighted_90_10(void)
{
    struct sc_config *c = table(VER("v1", 90) ", " VER("v2", 10), "");
    REQUIRE(c != NULL);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        double p[SC_MAX_VERSIONS];
        shares(&c->routes[0], seed, p);
        if (!within(p[0], 90, 2) || !within(p[1], 10, 2))
            printf("# seed %llu: %.2f / %.2f\n", (unsigned long long)seed, p[0], p[1]);
        CHECK(within(p[0], 90, 2));
        CHECK(within(p[1], 10, 2));
        CHECK(within(p[0] + p[1], 100, 0.001));
    }
    sc_config_unref(c);
}

static void t_weighted_50_30_20(void)
{
    struct sc_config *c = table(VER("a", 50) ", " VER("b", 30) ", " VER("c", 20), "");
    REQUIRE(c != NULL);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        double p[SC_MAX_VERSIONS];
        shares(&c->routes[0], seed * 7919, p);
        printf("# seed %llu: %.2f / %.2f / %.2f\n", (unsigned long long)seed * 7919, p[0], p[1], p[2]);
        CHECK(within(p[0], 50, 2));
        CHECK(within(p[1], 30, 2));
        CHECK(within(p[2], 20, 2));
    }
    sc_config_unref(c);

    /* Extreme weights: 1 in 10000 still gets traffic, and 9999 the rest. */
    c = table(VER("a", 9999) ", " VER("b", 1), "");
    REQUIRE(c != NULL);
    struct sc_rng rng;
    struct hdrs none = {.n = 0};
    sc_rng_seed(&rng, 9);
    unsigned b = 0;
    for (int i = 0; i < 1000000; i++)
        b += sc_route_pick_version(&c->routes[0], get_hdr, &none, &rng, NULL) == 1;
    printf("# weight 1 of 10000: %u of 1000000 draws\n", b);
    CHECK(b >= 60 && b <= 140);
    sc_config_unref(c);
}

static void t_match_wins(void)
{
    struct sc_config *c = table(VER("v1", 100) ", " VER("v2", 0) ", " VER("v3", 0),
                                ", match: [{header: X-Canary, value: two, version: v2},"
                                " {header: x-canary, value: three, version: v3},"
                                " {header: x-tier, value: gold, version: v3}],"
                                " sticky: {header: x-session}");
    REQUIRE(c != NULL);
    const struct sc_route *r = &c->routes[0];
    struct sc_rng rng;
    sc_rng_seed(&rng, 1);
    enum sc_pick_reason why = 0;

    struct hdrs h = {{"x-canary"}, {"two"}, 1};
    int all = 1;
    for (int i = 0; i < 1000; i++) {
        all &= sc_route_pick_version(r, get_hdr, &h, &rng, &why) == 1;
        all &= why == SC_PICK_MATCH;
    }
    CHECK(all);
    h.value[0] = "three";
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h, &rng, &why), 2);
    CHECK_EQ_INT(why, SC_PICK_MATCH);
    /* Values compare exactly: no case folding, no prefix. */
    h.value[0] = "Two";
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h, &rng, &why), 0);
    CHECK_EQ_INT(why, SC_PICK_WEIGHT);
    h.value[0] = "tw";
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h, &rng, &why), 0);
    h.value[0] = "twoo";
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h, &rng, &why), 0);
    /* The first rule that matches wins; a match beats a sticky key. */
    struct hdrs h2 = {{"x-session", "x-tier", "x-canary"}, {"s1", "gold", "two"}, 3};
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h2, &rng, &why), 1);
    CHECK_EQ_INT(why, SC_PICK_MATCH);
    h2.value[2] = "none";
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h2, &rng, &why), 2);
    CHECK_EQ_INT(why, SC_PICK_MATCH);
    h2.value[1] = "silver";
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &h2, &rng, &why), 0);
    CHECK_EQ_INT(why, SC_PICK_STICKY);
    sc_config_unref(c);
}

static void t_zero_weight_only_by_match(void)
{
    struct sc_config *c = table(VER("v1", 3) ", " VER("dark", 0) ", " VER("v3", 1),
                                ", match: [{header: x-dark, value: \"1\", version: dark}],"
                                " sticky: {header: x-session}");
    REQUIRE(c != NULL);
    const struct sc_route *r = &c->routes[0];
    struct sc_rng rng;
    sc_rng_seed(&rng, 5);
    unsigned dark = 0, n3 = 0;
    struct hdrs none = {.n = 0};
    char key[32];
    struct hdrs s = {{"x-session"}, {key}, 1};
    for (int i = 0; i < DRAWS; i++) {
        dark += sc_route_pick_version(r, get_hdr, &none, &rng, NULL) == 1;
        snprintf(key, sizeof key, "session-%d", i);
        int v = sc_route_pick_version(r, get_hdr, &s, &rng, NULL);
        dark += v == 1;
        n3 += v == 2;
        dark += sc_route_sticky_version(r, key, strlen(key)) == 1;
    }
    CHECK_EQ_INT(dark, 0);
    printf("# sticky 3:0:1 -> v3 got %.2f%%\n", 100.0 * n3 / DRAWS);
    CHECK(within(100.0 * n3 / DRAWS, 25, 2));
    struct hdrs m = {{"x-dark"}, {"1"}, 1};
    CHECK_EQ_INT(sc_route_pick_version(r, get_hdr, &m, &rng, NULL), 1);
    sc_config_unref(c);

    /* A route whose weights are all 0 (config.c refuses one; a caller
     * could still build it) serves only match rules. */
    struct sc_version vs[2] = {{"a", 0, NULL, 0}, {"b", 0, NULL, 0}};
    struct sc_route zr = {.model = "z", .versions = vs, .nversions = 2, .total_weight = 0};
    CHECK_EQ_INT(sc_route_pick_version(&zr, get_hdr, &none, &rng, NULL), -ENOENT);
    CHECK_EQ_INT(sc_route_sticky_version(&zr, "k", 1), -ENOENT);
}

static void t_sticky_same_key_same_version(void)
{
    struct sc_config *c = table(VER("v1", 50) ", " VER("v2", 30) ", " VER("v3", 20),
                                ", sticky: {header: X-Session-Id}");
    REQUIRE(c != NULL);
    const struct sc_route *r = &c->routes[0];
    CHECK_EQ_STR(r->sticky_header, "x-session-id");
    struct sc_rng rng;
    sc_rng_seed(&rng, 77);
    char key[32];
    struct hdrs h = {{"x-session-id"}, {key}, 1};
    unsigned count[3] = {0};
    int stable = 1;
    for (int i = 0; i < DRAWS; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        enum sc_pick_reason why = 0;
        int v = sc_route_pick_version(r, get_hdr, &h, &rng, &why);
        stable &= why == SC_PICK_STICKY && v >= 0;
        for (int k = 0; k < 5 && v >= 0; k++)
            stable &= sc_route_pick_version(r, get_hdr, &h, &rng, NULL) == v;
        stable &= sc_route_sticky_version(r, key, strlen(key)) == v;
        if (v >= 0 && v < 3)
            count[v]++;
    }
    CHECK(stable);
    /* Sticky keys still follow the weights. */
    printf("# sticky shares: %.2f / %.2f / %.2f\n", 100.0 * count[0] / DRAWS,
           100.0 * count[1] / DRAWS, 100.0 * count[2] / DRAWS);
    CHECK(within(100.0 * count[0] / DRAWS, 50, 2));
    CHECK(within(100.0 * count[1] / DRAWS, 30, 2));
    CHECK(within(100.0 * count[2] / DRAWS, 20, 2));

    /* An empty key names no session: weighted draws, not one version. */
    h.value[0] = "";
    unsigned seen[3] = {0};
    enum sc_pick_reason why = 0;
    for (int i = 0; i < 1000; i++) {
        int v = sc_route_pick_version(r, get_hdr, &h, &rng, &why);
        if (v >= 0 && v < 3)
            seen[v]++;
    }
    CHECK_EQ_INT(why, SC_PICK_WEIGHT);
    CHECK(seen[0] && seen[1] && seen[2]);
    /* A key's version does not depend on the versions' order. */
    struct sc_config *c2 = table(VER("v3", 20) ", " VER("v1", 50) ", " VER("v2", 30),
                                 ", sticky: {header: x-session-id}");
    REQUIRE(c2 != NULL);
    int same = 1;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "user-%d", i);
        int a = sc_route_sticky_version(r, key, strlen(key));
        int b = sc_route_sticky_version(&c2->routes[0], key, strlen(key));
        same &= strcmp(r->versions[a].name, c2->routes[0].versions[b].name) == 0;
    }
    CHECK(same);
    sc_config_unref(c2);
    sc_config_unref(c);
}

/* Keys that change version between two tables, by version name. */
static void movement(const struct sc_route *before, const struct sc_route *after,
                     unsigned moved[SC_MAX_VERSIONS][SC_MAX_VERSIONS], unsigned *total)
{
    char key[32];
    memset(moved, 0, sizeof(unsigned) * SC_MAX_VERSIONS * SC_MAX_VERSIONS);
    *total = 0;
    for (int i = 0; i < DRAWS; i++) {
        int n = snprintf(key, sizeof key, "%08x-session", (unsigned)i * 2654435761u);
        int a = sc_route_sticky_version(before, key, (size_t)n);
        int b = sc_route_sticky_version(after, key, (size_t)n);
        if (a < 0 || b < 0)
            continue;
        if (a != b) {
            moved[a][b]++;
            (*total)++;
        }
    }
}

static void t_sticky_minimal_movement(void)
{
    unsigned moved[SC_MAX_VERSIONS][SC_MAX_VERSIONS], total;
    struct sc_config *c1 = table(VER("v1", 90) ", " VER("v2", 10), ", sticky: {header: s}");
    struct sc_config *c2 = table(VER("v1", 50) ", " VER("v2", 50), ", sticky: {header: s}");
    REQUIRE(c1 && c2);
    movement(&c1->routes[0], &c2->routes[0], moved, &total);
    /* 90/10 -> 50/50: exactly the 40% of all keys that v1 must give up
     * move, all from v1 to v2. */
    double pct = 100.0 * total / DRAWS;
    printf("# 90/10 -> 50/50: %.2f%% of keys moved (theory 40%%), v1->v2 %u, v2->v1 %u\n", pct,
           moved[0][1], moved[1][0]);
    CHECK(within(pct, 40, 3));
    CHECK_EQ_INT(moved[1][0], 0);
    CHECK_EQ_INT(moved[0][1], total);
    /* And back: the same keys return. */
    movement(&c2->routes[0], &c1->routes[0], moved, &total);
    CHECK_EQ_INT(moved[0][1], 0);
    CHECK(within(100.0 * total / DRAWS, 40, 3));
    sc_config_unref(c1);
    sc_config_unref(c2);

    /* One weight changed among three, 50/30/20 -> 50/30/60: only v3's
     * share rose (20% -> 60/140 = 42.86%), so keys only arrive at v3, and
     * 22.86% of all keys move. */
    c1 = table(VER("v1", 50) ", " VER("v2", 30) ", " VER("v3", 20), ", sticky: {header: s}");
    c2 = table(VER("v1", 50) ", " VER("v2", 30) ", " VER("v3", 60), ", sticky: {header: s}");
    REQUIRE(c1 && c2);
    movement(&c1->routes[0], &c2->routes[0], moved, &total);
    printf("# 50/30/20 -> 50/30/60: %.2f%% moved (theory 22.86%%)\n", 100.0 * total / DRAWS);
    CHECK(within(100.0 * total / DRAWS, 100.0 * 60 / 140 - 20, 3));
    CHECK_EQ_INT(moved[0][2] + moved[1][2], total);
    sc_config_unref(c1);
    sc_config_unref(c2);

    /* Two weights changed at once among three, 50/30/20 -> 30/30/40. No
     * stateless scheme moves only the 20% that must move for every such
     * change; rendezvous hashing keeps the direction (nothing arrives at
     * v1, whose share fell; nothing leaves v3, whose share rose) and stays
     * under the consistent-sampling bound 2d/(1+d) = 33% for d = 20%.
     * v2 (unchanged) trades keys: some to v3, as many from v1. */
    c1 = table(VER("v1", 50) ", " VER("v2", 30) ", " VER("v3", 20), ", sticky: {header: s}");
    c2 = table(VER("v1", 30) ", " VER("v2", 30) ", " VER("v3", 40), ", sticky: {header: s}");
    REQUIRE(c1 && c2);
    movement(&c1->routes[0], &c2->routes[0], moved, &total);
    printf("# 50/30/20 -> 30/30/40: %.2f%% moved (minimum 20%%): v1->v2 %u v1->v3 %u v2->v3 %u\n",
           100.0 * total / DRAWS, moved[0][1], moved[0][2], moved[1][2]);
    CHECK(100.0 * total / DRAWS >= 17 && 100.0 * total / DRAWS <= 33.3);
    CHECK_EQ_INT(moved[1][0] + moved[2][0], 0);
    CHECK_EQ_INT(moved[2][0] + moved[2][1], 0);
    CHECK(within(100.0 * moved[0][1] / DRAWS, 100.0 * moved[1][2] / DRAWS, 1.5));
    sc_config_unref(c1);
    sc_config_unref(c2);

    /* A new version with 25% of the weight takes 25% of the keys, from
     * every old version, and no key moves between the old ones. */
    c1 = table(VER("v1", 60) ", " VER("v2", 40), ", sticky: {header: s}");
    c2 = table(VER("v1", 60) ", " VER("v2", 40) ", " VER("v3", 33), ", sticky: {header: s}");
    REQUIRE(c1 && c2);
    movement(&c1->routes[0], &c2->routes[0], moved, &total);
    double theory = 100.0 * 33 / 133;
    printf("# adding v3 at 33/133: %.2f%% moved (theory %.2f%%)\n", 100.0 * total / DRAWS, theory);
    CHECK(within(100.0 * total / DRAWS, theory, 3));
    CHECK_EQ_INT(moved[0][2] + moved[1][2], total);
    CHECK(moved[0][2] > moved[1][2]);
    sc_config_unref(c1);
    sc_config_unref(c2);
}

static void t_p2c(void)
{
    struct sc_rng rng;
    sc_rng_seed(&rng, 3);
    /* A single endpoint is taken directly. */
    unsigned one = 7;
    CHECK_EQ_INT(sc_route_pick_endpoint(&one, 1, &rng), 0);
    /* Two endpoints: the less loaded one, always. */
    unsigned two[2] = {10, 3};
    int always = 1;
    for (int i = 0; i < 1000; i++)
        always &= sc_route_pick_endpoint(two, 2, &rng) == 1;
    CHECK(always);
    /* The most loaded of several is never chosen; an idle one is chosen
     * whenever it is among the two sampled: 1 - C(3,2)/C(4,2) = 50%. */
    unsigned four[4] = {0, 5, 5, 9};
    unsigned count[4] = {0};
    for (int i = 0; i < DRAWS; i++) {
        unsigned k = sc_route_pick_endpoint(four, 4, &rng);
        REQUIRE(k < 4);
        count[k]++;
    }
    printf("# P2C {0,5,5,9}: %u %u %u %u\n", count[0], count[1], count[2], count[3]);
    CHECK_EQ_INT(count[3], 0);
    CHECK(within(100.0 * count[0] / DRAWS, 50, 3));
    /* Equal loads spread evenly. */
    unsigned eq[5] = {2, 2, 2, 2, 2}, ce[5] = {0};
    for (int i = 0; i < DRAWS; i++)
        ce[sc_route_pick_endpoint(eq, 5, &rng)]++;
    int even = 1;
    for (int k = 0; k < 5; k++)
        even &= within(100.0 * ce[k] / DRAWS, 20, 2);
    CHECK(even);
    /* A simulated run: requests arrive and finish; P2C keeps the
     * spread within a few requests although endpoint 0 drains 8x slower. */
    unsigned inflight[8] = {0};
    for (int i = 0; i < 100000; i++) {
        inflight[sc_route_pick_endpoint(inflight, 8, &rng)]++;
        if (i % 8 == 7) {   /* an uneven drain: endpoint 0 is slow */
            for (int k = 1; k < 8; k++)
                if (inflight[k])
                    inflight[k]--;
            if (i % 64 == 63 && inflight[0])
                inflight[0]--;
        }
    }
    printf("# simulated inflight: %u %u %u %u %u %u %u %u\n", inflight[0], inflight[1],
           inflight[2], inflight[3], inflight[4], inflight[5], inflight[6], inflight[7]);
    unsigned max = 0, min = UINT32_MAX;
    for (int k = 0; k < 8; k++) {
        max = inflight[k] > max ? inflight[k] : max;
        min = inflight[k] < min ? inflight[k] : min;
    }
    CHECK(max - min <= 8);
}

static void t_speed(void)
{
    /* Not a benchmark: a guard that the per-request path stays cheap
     * (16 versions, a sticky key: the worst case). */
    char vs[1024] = "";
    for (int i = 0; i < 16; i++)
        snprintf(vs + strlen(vs), sizeof vs - strlen(vs), "%s{name: version-%d, weight: %d, endpoints: [h:1]}",
                 i ? ", " : "", i, i + 1);
    struct sc_config *c = table(vs, ", sticky: {header: s}");
    REQUIRE(c != NULL);
    struct hdrs h = {{"s"}, {"0123456789abcdef0123456789abcdef"}, 1};
    struct sc_rng rng;
    sc_rng_seed(&rng, 1);
    struct timespec t0, t1;
    unsigned sum = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100000; i++)
        sum += (unsigned)sc_route_pick_version(&c->routes[0], get_hdr, &h, &rng, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 100000;
    printf("# sticky pick over 16 versions: %.0f ns (checksum %u)\n", ns, sum);
    CHECK(ns < 20000);   /* generous: sanitizers and a loaded machine */
    sc_config_unref(c);
}

int main(void)
{
    RUN(t_rng);
    RUN(t_weighted_90_10);
    RUN(t_weighted_50_30_20);
    RUN(t_match_wins);
    RUN(t_zero_weight_only_by_match);
    RUN(t_sticky_same_key_same_version);
    RUN(t_sticky_minimal_movement);
    RUN(t_p2c);
    RUN(t_speed);
    return test_done();
}
