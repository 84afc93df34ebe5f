/* libFuzzer target for the JSON configuration paths (lib/json.c, and
 * lib/yaml.c as the other way in): the input is loaded as JSON and as YAML,
 * and each document is walked the way a route-table loader walks it -- typed
 * getters by key path, durations, sizes, unknown-key checks, all errors
 * collected -- then the errors are formatted and the document is serialised
 * and read back.
 *
 * Contracts checked: getters that fail record an error; parsed durations and
 * sizes respect their bounds; a failed parse explains itself; the compact
 * serialisation reads back as an equal value. */
#include "lib/json.h"
#include "lib/yaml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ROUTES 32
#define MAX_VERSIONS 16

/* A getter's failure must leave an error behind (perhaps an identical one
 * recorded earlier: the collector does not repeat errors). */
#define MUST(expr)                                                 \
    do {                                                           \
        if ((expr) < 0 && mg_json_errs_count(e) == 0)              \
            abort();                                               \
    } while (0)

static void walk_timeouts(json_t *root, struct mg_json_errs *e, const char *base)
{
    static const char *const keys[] = {"connect", "firstToken", "idle", "total", NULL};
    uint64_t ms = 0;
    MUST(mg_json_check_keys(root, e, keys, "%s", base));
    for (size_t i = 0; keys[i]; i++) {
        ms = 5;
        MUST(mg_json_opt_duration(root, e, &ms, 1, 3600000, "%s.%s", base, keys[i]));
        if (ms != 5 && (ms < 1 || ms > 3600000))
            abort();
    }
}

static void walk_route(json_t *root, struct mg_json_errs *e, size_t i)
{
    static const char *const rkeys[] = {"model", "versions", "fallback", "timeouts", "match",
                                        "sticky", "retries", "circuitBreaker", "rateLimit", NULL};
    static const char *const vkeys[] = {"name", "weight", "endpoints", NULL};
    const char *s = NULL;
    long long n = 0;
    double d = 0;
    json_t *versions = NULL, *eps = NULL;
    char base[64];
    snprintf(base, sizeof base, "routes[%zu]", i);

    MUST(mg_json_check_keys(root, e, rkeys, "%s", base));
    MUST(mg_json_get_string(root, e, &s, "%s.model", base));
    if (mg_json_get_array(root, e, &versions, "%s.versions", base) == 0) {
        size_t nv = json_array_size(versions);
        for (size_t j = 0; j < nv && j < MAX_VERSIONS; j++) {
            MUST(mg_json_check_keys(root, e, vkeys, "%s.versions[%zu]", base, j));
            MUST(mg_json_get_string(root, e, &s, "%s.versions[%zu].name", base, j));
            n = -1;
            MUST(mg_json_get_int(root, e, &n, 0, 100, "%s.versions[%zu].weight", base, j));
            if (n != -1 && (n < 0 || n > 100))
                abort();
            eps = NULL;
            MUST(mg_json_opt_array(root, e, &eps, "%s.versions[%zu].endpoints", base, j));
            for (size_t k = 0; eps && k < json_array_size(eps) && k < 8; k++)
                MUST(mg_json_get_string(root, e, &s, "%s.versions[%zu].endpoints[%zu]", base, j, k));
        }
    }
    walk_timeouts(root, e, strcat(base, ".timeouts"));
    base[strlen(base) - strlen(".timeouts")] = '\0';
    n = 0;
    MUST(mg_json_opt_int(root, e, &n, 0, 10, "%s.retries.attempts", base));
    MUST(mg_json_opt_number(root, e, &d, 0, 100, "%s.retries.budgetPercent", base));
    MUST(mg_json_opt_number(root, e, &d, 0, 1, "%s.circuitBreaker.failureRate", base));
    uint64_t ms = 0;
    MUST(mg_json_opt_duration(root, e, &ms, 100, 600000, "%s.circuitBreaker.window", base));
    int b = 0;
    MUST(mg_json_opt_bool(root, e, &b, "%s.sticky.enabled", base));
    json_t *o = NULL;
    MUST(mg_json_opt_object(root, e, &o, "%s.rateLimit", base));
    MUST(mg_json_opt_array(root, e, &o, "%s.fallback", base));
}

/* Every string in the document also goes through the duration and size
 * parsers, whose results must respect their own limits. */
static void parse_strings(json_t *v, unsigned depth, size_t *budget)
{
    if (depth > 70 || *budget == 0)
        return;
    (*budget)--;
    if (json_is_string(v)) {
        uint64_t x = 0;
        const char *why = NULL;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        int rc = mg_duration_parse(s, n, &x, &why);
        if ((rc == 0 && x > MG_DURATION_MAX_MS) || (rc < 0 && !why))
            abort();
        why = NULL;
        rc = mg_size_parse(s, n, &x, &why);
        if ((rc == 0 && x > (uint64_t)INT64_MAX) || (rc < 0 && !why))
            abort();
        return;
    }
    size_t i;
    const char *k;
    json_t *c;
    if (json_is_array(v)) {
        json_array_foreach(v, i, c) parse_strings(c, depth + 1, budget);
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, c) parse_strings(c, depth + 1, budget);
    }
}

static void walk(json_t *root, struct mg_json_errs *e)
{
    static const char *const top[] = {"listen", "admin", "workers", "routes", "timeouts",
                                      "maxBodySize", "path", NULL};
    const char *s = NULL;
    long long n = 1;
    uint64_t sz = 0;
    json_t *routes = NULL;

    MUST(mg_json_check_keys(root, e, top, "%s", ""));
    MUST(mg_json_get_string(root, e, &s, "listen"));
    MUST(mg_json_opt_string(root, e, &s, "admin"));
    MUST(mg_json_opt_int(root, e, &n, 1, 256, "workers"));
    if (n < 1 || n > 256)
        abort();
    sz = 7;
    MUST(mg_json_opt_size(root, e, &sz, 1024, 1u << 30, "maxBodySize"));
    if (sz != 7 && (sz < 1024 || sz > (1u << 30)))
        abort();
    walk_timeouts(root, e, "timeouts");
    if (mg_json_get_array(root, e, &routes, "routes") == 0)
        for (size_t i = 0; i < json_array_size(routes) && i < MAX_ROUTES; i++)
            walk_route(root, e, i);

    /* A fuzzer-chosen key path exercises the path parser itself. */
    const char *path = NULL;
    if (mg_json_opt_string(root, NULL, &path, "path") == 0 && path) {
        json_t *v = NULL;
        mg_json_find(root, &v, "%s", path);
        long long x;
        mg_json_opt_int(root, e, &x, 0, 10, "%s", path);
    }
    size_t budget = 5000;
    parse_strings(root, 0, &budget);
}

static void check(json_t *root, struct mg_json_errs *e)
{
    walk(root, e);
    struct mg_buf b;
    mg_buf_init(&b, 1 << 16);
    mg_json_errs_format(e, &b);
    mg_buf_free(&b);

    mg_buf_init(&b, 16u << 20);
    if (mg_json_dump(root, &b, 0) == 0) {
        struct mg_json_limits jl = {16u << 20, MG_JSON_HARD_MAX_DEPTH};
        json_t *back = NULL;
        if (mg_json_load(b.data, b.len, &jl, NULL, NULL, &back) != 0 || !json_equal(root, back))
            abort();
        json_decref(back);
    }
    mg_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mg_json_errs e;
    json_t *root = NULL;

    mg_json_errs_init(&e, 32);
    struct mg_json_limits jl = {64 * 1024, 64};
    if (mg_json_load((const char *)data, size, &jl, "fuzz.json", &e, &root) == 0) {
        check(root, &e);
        json_decref(root);
    } else if (mg_json_errs_count(&e) == 0) {
        abort();
    }
    mg_json_errs_free(&e);

    mg_json_errs_init(&e, 32);
    struct mg_yaml_limits yl = {64 * 1024, 64, 20000, 8};
    root = NULL;
    if (mg_yaml_load((const char *)data, size, &yl, "fuzz.yaml", &e, &root) == 0) {
        check(root, &e);
        json_decref(root);
    }
    mg_json_errs_free(&e);
    return 0;
}
