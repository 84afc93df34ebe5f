/* libFuzzer target for the route-table loader (sidecar/config.c): arbitrary
 * bytes go through sc_config_parse as YAML or JSON.
 *
 * Contracts checked: a refused table explains itself (at least one error)
 * and hands back nothing; an accepted table is internally consistent (every
 * route has versions with endpoints, weights sum to total_weight and are
 * positive in sum, match rules point at real versions, the wildcard is last
 * and unique, every model is found by sc_config_route) and its effective
 * document is accepted again unchanged; routing over it stays in range. */
#include "sidecar/config.c"
#include "sidecar/route.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *no_headers(void *ctx, const char *name, size_t *len)
{
    (void)ctx;
    (void)name;
    *len = 0;
    return NULL;
}

static void check_config(const struct sc_config *c)
{
    if (!c->listen || c->workers < 1 || c->workers > SC_MAX_WORKERS || c->nroutes == 0 ||
        c->refs_ != 1 || !c->doc)
        abort();
    struct sc_rng rng;
    sc_rng_seed(&rng, 1);
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct sc_route *r = &c->routes[i];
        if (!r->model || r->nversions == 0 || r->nversions > SC_MAX_VERSIONS)
            abort();
        if (r->wildcard && i != c->nroutes - 1)
            abort();
        if (sc_config_route(c, r->model, strlen(r->model)) != r)
            abort();
        unsigned sum = 0;
        for (unsigned j = 0; j < r->nversions; j++) {
            const struct sc_version *v = &r->versions[j];
            if (!v->name || v->nendpoints == 0 || v->weight > 10000)
                abort();
            sum += v->weight;
        }
        if (sum != r->total_weight || sum == 0)
            abort();
        for (unsigned j = 0; j < r->nmatch; j++)
            if (r->match[j].version >= r->nversions)
                abort();
        int v = sc_route_pick_version(r, no_headers, NULL, &rng, NULL);
        if (v < 0 || (unsigned)v >= r->nversions || r->versions[v].weight == 0)
            abort();
        v = sc_route_sticky_version(r, r->model, strlen(r->model));
        if (v < 0 || (unsigned)v >= r->nversions || r->versions[v].weight == 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mg_json_errs e, w;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 16);
    mg_json_errs_init(&w, 16);
    int rc = sc_config_parse((const char *)data, size, "fuzz.yaml", &c, &e, &w);
    if (rc < 0) {
        if (c || mg_json_errs_count(&e) == 0)
            abort();
    } else {
        if (!c || mg_json_errs_count(&e) != 0)
            abort();
        check_config(c);
        /* The effective document is a valid table that means the same. */
        struct mg_buf b;
        mg_buf_init(&b, 8u << 20);
        if (mg_json_dump(c->doc, &b, 0) == 0) {
            struct sc_config *c2 = NULL;
            if (sc_config_parse(mg_buf_head(&b), b.len, "again.json", &c2, NULL, NULL) != 0)
                abort();
            if (!json_equal(c->doc, c2->doc) || c2->nroutes != c->nroutes)
                abort();
            sc_config_unref(c2);
        }
        mg_buf_free(&b);
        sc_config_ref(c);
        sc_config_unref(c);
        sc_config_unref(c);
    }
    mg_json_errs_free(&e);
    mg_json_errs_free(&w);
    return 0;
}
