/* Unit tests for sidecar/config.c: the route table as an operator writes it
 * (YAML and JSON), the defaults it gets, and every class of mistake named by
 * its key path, all of them at once. */
#include "sidecar/config.c"
#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

static const char *errs_text(const struct mg_json_errs *e)
{
    static char out[16384];
    struct mg_buf b;
    mg_buf_init(&b, sizeof out - 1);
    if (mg_json_errs_format(e, &b) < 0) {
        mg_buf_free(&b);
        return "(format failed)";
    }
    if (b.len)
        memcpy(out, mg_buf_head(&b), b.len);
    out[b.len] = '\0';
    mg_buf_free(&b);
    return out;
}

/* The kept error at path whose message contains want, or NULL. */
static const struct mg_json_error *find_err(const struct mg_json_errs *e, const char *path,
                                            const char *want)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->items[i].path, path) == 0 && strstr(e->items[i].msg, want))
            return &e->items[i];
    return NULL;
}

static int parse_str(const char *doc, struct sc_config **cfg, struct mg_json_errs *e,
                     struct mg_json_errs *w)
{
    return sc_config_parse(doc, strlen(doc), "routes.yaml", cfg, e, w);
}

static const char FULL_YAML[] =
    "# a complete table\n"
    "listen: 0.0.0.0:8080\n"
    "admin: 127.0.0.1:9901\n"
    "workers: 4\n"
    "limits: { requestBody: 2Mi, requestHead: 32Ki }\n"
    "client: { headerTimeout: 5s, keepAliveTimeout: 2m, maxConnections: 500 }\n"
    "upstream: { maxIdlePerEndpoint: 64, idleTimeout: 15s }\n"
    "accessLog: false\n"
    "routes:\n"
    "  - model: \"*\"\n"
    "    versions:\n"
    "      - { name: any, weight: 1, endpoints: [\"[::1]:9000\"] }\n"
    "  - model: llama-3-8b-instruct\n"
    "    versions:\n"
    "      - name: v1\n"
    "        weight: 90\n"
    "        endpoints: [127.0.0.1:8001, 127.0.0.1:8002]\n"
    "      - name: v2.0_rc-1\n"
    "        weight: 10\n"
    "        endpoints: [model-v2.svc.cluster.local:8080]\n"
    "      - { name: shadow, weight: 0, endpoints: [10.0.0.9:80] }\n"
    "    match:\n"
    "      - { header: X-ModelGate-Version, value: v2, version: v2.0_rc-1 }\n"
    "      - { header: x-shadow, value: \"yes\", version: shadow }\n"
    "    sticky: { header: X-Session-ID }\n"
    "    timeouts: { connect: 250ms, firstToken: 10s, idle: 0, total: 1h }\n"
    "  - model: mistral-7b-instruct\n"
    "    versions:\n"
    "      - { name: v1, weight: 100, endpoints: [127.0.0.1:8003] }\n";

static const char FULL_JSON[] =
    "{\"listen\": \"0.0.0.0:8080\", \"admin\": \"127.0.0.1:9901\", \"workers\": 4,\n"
    " \"limits\": {\"requestBody\": \"2Mi\", \"requestHead\": 32768},\n"
    " \"client\": {\"headerTimeout\": \"5s\", \"keepAliveTimeout\": \"2m\", \"maxConnections\": 500},\n"
    " \"upstream\": {\"maxIdlePerEndpoint\": 64, \"idleTimeout\": \"15s\"},\n"
    " \"accessLog\": false,\n"
    " \"routes\": [\n"
    "  {\"model\": \"*\", \"versions\": [{\"name\": \"any\", \"weight\": 1, \"endpoints\": [\"[::1]:9000\"]}]},\n"
    "  {\"model\": \"llama-3-8b-instruct\",\n"
    "   \"versions\": [{\"name\": \"v1\", \"weight\": 90, \"endpoints\": [\"127.0.0.1:8001\", \"127.0.0.1:8002\"]},\n"
    "                {\"name\": \"v2.0_rc-1\", \"weight\": 10, \"endpoints\": [\"model-v2.svc.cluster.local:8080\"]},\n"
    "                {\"name\": \"shadow\", \"weight\": 0, \"endpoints\": [\"10.0.0.9:80\"]}],\n"
    "   \"match\": [{\"header\": \"X-ModelGate-Version\", \"value\": \"v2\", \"version\": \"v2.0_rc-1\"},\n"
    "             {\"header\": \"x-shadow\", \"value\": \"yes\", \"version\": \"shadow\"}],\n"
    "   \"sticky\": {\"header\": \"X-Session-ID\"},\n"
    "   \"timeouts\": {\"connect\": \"250ms\", \"firstToken\": \"10s\", \"idle\": \"0\", \"total\": \"1h\"}},\n"
    "  {\"model\": \"mistral-7b-instruct\",\n"
    "   \"versions\": [{\"name\": \"v1\", \"weight\": 100, \"endpoints\": [\"127.0.0.1:8003\"]}]}\n"
    " ]}\n";

/* The struct both full examples must produce. */
static void check_full(const struct sc_config *c)
{
    CHECK_EQ_STR(c->listen, "0.0.0.0:8080");
    CHECK_EQ_STR(c->admin, "127.0.0.1:9901");
    CHECK_EQ_INT(c->workers, 4);
    CHECK_EQ_INT(c->max_body, 2 << 20);
    CHECK_EQ_INT(c->max_head, 32 << 10);
    CHECK_EQ_INT(c->header_timeout_ms, 5000);
    CHECK_EQ_INT(c->keepalive_timeout_ms, 120000);
    CHECK_EQ_INT(c->max_conns, 500);
    CHECK_EQ_INT(c->upstream_max_idle, 64);
    CHECK_EQ_INT(c->upstream_idle_ms, 15000);
    CHECK_EQ_INT(c->access_log, 0);
    CHECK_EQ_STR(c->source, "routes.yaml");
    REQUIRE(c->nroutes == 3);
    /* The wildcard moved last; the others kept document order. */
    const struct sc_route *r = &c->routes[0];
    CHECK_EQ_STR(r->model, "llama-3-8b-instruct");
    CHECK(!r->wildcard);
    REQUIRE(r->nversions == 3);
    CHECK_EQ_STR(r->versions[0].name, "v1");
    CHECK_EQ_INT(r->versions[0].weight, 90);
    REQUIRE(r->versions[0].nendpoints == 2);
    CHECK_EQ_STR(r->versions[0].endpoints[0], "127.0.0.1:8001");
    CHECK_EQ_STR(r->versions[0].endpoints[1], "127.0.0.1:8002");
    CHECK_EQ_STR(r->versions[1].name, "v2.0_rc-1");
    CHECK_EQ_STR(r->versions[1].endpoints[0], "model-v2.svc.cluster.local:8080");
    CHECK_EQ_INT(r->versions[2].weight, 0);
    CHECK_EQ_INT(r->total_weight, 100);
    REQUIRE(r->nmatch == 2);
    CHECK_EQ_STR(r->match[0].header, "x-modelgate-version");
    CHECK_EQ_STR(r->match[0].value, "v2");
    CHECK_EQ_INT(r->match[0].version, 1);
    CHECK_EQ_STR(r->match[1].value, "yes");
    CHECK_EQ_INT(r->match[1].version, 2);
    CHECK_EQ_STR(r->sticky_header, "x-session-id");
    CHECK_EQ_INT(r->timeouts.connect, 250);
    CHECK_EQ_INT(r->timeouts.first_token, 10000);
    CHECK_EQ_INT(r->timeouts.idle, 0);
    CHECK_EQ_INT(r->timeouts.total, 3600000);
    CHECK(r->raw == json_array_get(json_object_get(c->doc, "routes"), 1));
    CHECK_EQ_STR(c->routes[1].model, "mistral-7b-instruct");
    CHECK(c->routes[1].sticky_header == NULL);
    CHECK_EQ_INT(c->routes[1].nmatch, 0);
    CHECK_EQ_STR(c->routes[2].model, "*");
    CHECK(c->routes[2].wildcard);
    CHECK_EQ_STR(c->routes[2].versions[0].endpoints[0], "[::1]:9000");
}

static void t_full_yaml(void)
{
    struct mg_json_errs e, w;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    mg_json_errs_init(&w, 0);
    int rc = parse_str(FULL_YAML, &c, &e, &w);
    if (rc)
        printf("# %s", errs_text(&e));
    CHECK_EQ_INT(rc, 0);
    REQUIRE(c != NULL);
    CHECK_EQ_INT(mg_json_errs_count(&e), 0);
    CHECK_EQ_INT(mg_json_errs_count(&w), 0);
    check_full(c);
    sc_config_unref(c);
    mg_json_errs_free(&e);
    mg_json_errs_free(&w);
}

static void t_full_json(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL, *y = NULL;
    mg_json_errs_init(&e, 0);
    int rc = parse_str(FULL_JSON, &c, &e, NULL);
    if (rc)
        printf("# %s", errs_text(&e));
    CHECK_EQ_INT(rc, 0);
    REQUIRE(c != NULL);
    check_full(c);
    /* Same table, same effective document. */
    REQUIRE(parse_str(FULL_YAML, &y, &e, NULL) == 0);
    CHECK_EQ_INT(y->routes[0].timeouts.idle, 0);   /* YAML's integer 0 as a duration */
    json_t *h = json_object_get(json_object_get(c->doc, "limits"), "requestHead");
    CHECK(json_is_integer(h) && json_integer_value(h) == 32768);
    sc_config_unref(c);
    sc_config_unref(y);
    mg_json_errs_free(&e);
}

static void t_defaults_written(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    const char *doc = "listen: :8080\n"
                      "routes:\n"
                      "  - model: m\n"
                      "    versions: [{name: v1, weight: 1, endpoints: [localhost:8000]}]\n";
    REQUIRE(parse_str(doc, &c, &e, NULL) == 0);
    CHECK(c->admin == NULL);
    CHECK_EQ_INT(c->workers, 1);
    CHECK_EQ_INT(c->max_body, 1 << 20);
    CHECK_EQ_INT(c->max_head, 64 << 10);
    CHECK_EQ_INT(c->header_timeout_ms, 10000);
    CHECK_EQ_INT(c->keepalive_timeout_ms, 60000);
    CHECK_EQ_INT(c->max_conns, 10000);
    CHECK_EQ_INT(c->upstream_max_idle, 256);
    CHECK_EQ_INT(c->upstream_idle_ms, 30000);
    CHECK_EQ_INT(c->access_log, 1);
    CHECK_EQ_INT(c->routes[0].timeouts.connect, 1000);
    CHECK_EQ_INT(c->routes[0].timeouts.first_token, 30000);
    CHECK_EQ_INT(c->routes[0].timeouts.idle, 60000);
    CHECK_EQ_INT(c->routes[0].timeouts.total, 600000);
    CHECK(c->routes[0].sticky_header == NULL);
    CHECK_EQ_INT(c->refs_, 1);
    /* GET /config shows the effective values, explicitly. */
    struct mg_buf b;
    mg_buf_init(&b, 1 << 16);
    REQUIRE(mg_json_dump(c->doc, &b, JSON_SORT_KEYS) == 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len,
                 "{\"accessLog\":true,"
                 "\"client\":{\"headerTimeout\":\"10s\",\"keepAliveTimeout\":\"60s\",\"maxConnections\":10000},"
                 "\"limits\":{\"requestBody\":\"1Mi\",\"requestHead\":\"64Ki\"},"
                 "\"listen\":\":8080\","
                 "\"routes\":[{\"model\":\"m\",\"timeouts\":{\"connect\":\"1s\",\"firstToken\":\"30s\","
                 "\"idle\":\"60s\",\"total\":\"10m\"},"
                 "\"versions\":[{\"endpoints\":[\"localhost:8000\"],\"name\":\"v1\",\"weight\":1}]}],"
                 "\"upstream\":{\"idleTimeout\":\"30s\",\"maxIdlePerEndpoint\":256},"
                 "\"workers\":1}");
    mg_buf_free(&b);
    /* A partly written object keeps what was written and gains the rest;
     * null counts as absent. */
    sc_config_unref(c);
    doc = "listen: 127.0.0.1:1\nworkers: ~\nlimits: {requestBody: 4096}\n"
          "routes: [{model: m, timeouts: {idle: 5s, total: null},\n"
          "          versions: [{name: v1, weight: 1, endpoints: [h:1]}]}]\n";
    REQUIRE(parse_str(doc, &c, &e, NULL) == 0);
    CHECK_EQ_INT(c->workers, 1);
    CHECK_EQ_INT(c->max_body, 4096);
    CHECK_EQ_INT(c->routes[0].timeouts.idle, 5000);
    CHECK_EQ_INT(c->routes[0].timeouts.total, 600000);
    json_t *l = json_object_get(c->doc, "limits");
    CHECK_EQ_INT(json_integer_value(json_object_get(l, "requestBody")), 4096);
    CHECK_EQ_STR(json_string_value(json_object_get(l, "requestHead")), "64Ki");
    CHECK_EQ_INT(json_integer_value(json_object_get(c->doc, "workers")), 1);
    json_t *t = json_object_get(json_array_get(json_object_get(c->doc, "routes"), 0), "timeouts");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "idle")), "5s");
    CHECK_EQ_STR(json_string_value(json_object_get(t, "total")), "10m");
    sc_config_unref(c);
    mg_json_errs_free(&e);
}

static void t_wildcard_and_lookup(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    const char *doc = "listen: 127.0.0.1:8080\n"
                      "routes:\n"
                      "  - {model: \"*\", versions: [{name: w, weight: 1, endpoints: [h:1]}]}\n"
                      "  - {model: a, versions: [{name: v, weight: 1, endpoints: [h:2]}]}\n"
                      "  - {model: ab, versions: [{name: v, weight: 1, endpoints: [h:3]}]}\n"
                      "  - {model: b, versions: [{name: v, weight: 1, endpoints: [h:4]}]}\n";
    REQUIRE(parse_str(doc, &c, &e, NULL) == 0);
    REQUIRE(c->nroutes == 4);
    CHECK_EQ_STR(c->routes[0].model, "a");
    CHECK_EQ_STR(c->routes[1].model, "ab");
    CHECK_EQ_STR(c->routes[2].model, "b");
    CHECK_EQ_STR(c->routes[3].model, "*");
    CHECK(c->routes[3].wildcard);
    /* Not NUL-terminated input: the length decides. */
    const char *body = "abc";
    CHECK(sc_config_route(c, body, 1) == &c->routes[0]);
    CHECK(sc_config_route(c, body, 2) == &c->routes[1]);
    CHECK(sc_config_route(c, body, 3) == &c->routes[3]);
    CHECK(sc_config_route(c, "b", 1) == &c->routes[2]);
    CHECK(sc_config_route(c, "", 0) == &c->routes[3]);
    CHECK(sc_config_route(c, "*", 1) == &c->routes[3]);
    /* A NUL inside the request's model is just another byte. */
    CHECK(sc_config_route(c, "a\0b", 3) == &c->routes[3]);
    CHECK(sc_config_route(c, "ab\0", 3) == &c->routes[3]);
    sc_config_unref(c);

    /* Without a wildcard an unknown model has no route. */
    doc = "listen: 127.0.0.1:8080\n"
          "routes: [{model: a, versions: [{name: v, weight: 1, endpoints: [h:2]}]}]\n";
    REQUIRE(parse_str(doc, &c, &e, NULL) == 0);
    CHECK(sc_config_route(c, "a", 1) == &c->routes[0]);
    CHECK(sc_config_route(c, "A", 1) == NULL);
    CHECK(sc_config_route(c, "ab", 2) == NULL);
    sc_config_unref(c);
    mg_json_errs_free(&e);
}

static void t_many_routes_lookup(void)
{
    /* 1000 routes: the index finds each one, and misses miss. */
    struct mg_buf b;
    mg_buf_init(&b, 1 << 20);
    mg_buf_printf(&b, "{\"listen\": \"127.0.0.1:1\", \"routes\": [");
    for (int i = 0; i < 1000; i++)
        mg_buf_printf(&b, "%s{\"model\": \"model-%d\", \"versions\": [{\"name\": \"v\", \"weight\": 1, "
                      "\"endpoints\": [\"h:1\"]}]}", i ? "," : "", i);
    mg_buf_printf(&b, "]}");
    struct sc_config *c = NULL;
    REQUIRE(sc_config_parse(mg_buf_head(&b), b.len, "big.json", &c, NULL, NULL) == 0);
    int found = 0;
    char name[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(name, sizeof name, "model-%d", i);
        const struct sc_route *r = sc_config_route(c, name, (size_t)n);
        found += r && strcmp(r->model, name) == 0;
    }
    CHECK_EQ_INT(found, 1000);
    CHECK(sc_config_route(c, "model-1000", 10) == NULL);
    sc_config_unref(c);
    mg_buf_free(&b);
}

static void *ref_worker(void *arg)
{
    struct sc_config *c = arg;
    for (int i = 0; i < 100000; i++) {
        sc_config_ref(c);
        sc_config_unref(c);
    }
    sc_config_unref(c);   /* the reference this thread was given */
    return NULL;
}

static void t_refcount_threads(void)
{
    /* Workers adopt and drop the table concurrently; the last unref frees
     * it exactly once (ASan reports a leak or a double free otherwise). */
    struct sc_config *c = NULL;
    REQUIRE(parse_str("listen: 127.0.0.1:1\nroutes: [{model: m, versions: [{name: v, weight: 1, "
                      "endpoints: [h:1]}]}]\n",
                      &c, NULL, NULL) == 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        sc_config_ref(c);
    for (int i = 0; i < 4; i++)
        REQUIRE(pthread_create(&th[i], NULL, ref_worker, c) == 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ_INT(c->refs_, 1);
    sc_config_unref(c);
}

static void t_refcount(void)
{
    struct sc_config *c = NULL;
    REQUIRE(parse_str("listen: 127.0.0.1:1\nroutes: [{model: m, versions: [{name: v, weight: 1, "
                      "endpoints: [h:1]}]}]\n",
                      &c, NULL, NULL) == 0);
    CHECK_EQ_INT(c->refs_, 1);
    sc_config_ref(c);
    sc_config_ref(c);
    CHECK_EQ_INT(c->refs_, 3);
    sc_config_unref(c);
    sc_config_unref(c);
    CHECK_EQ_INT(c->refs_, 1);
    CHECK_EQ_STR(c->routes[0].model, "m");  /* still alive */
    sc_config_unref(c);                     /* freed: ASan reports a leak otherwise */
    sc_config_unref(NULL);
}

/* One mistake per row, inside an otherwise valid table: the parse fails and
 * the error sits at exactly that path. */
struct err_case {
    const char *name, *doc, *path, *msg;
};

#define LISTEN "listen: 127.0.0.1:8080\n"
#define V1 "{name: v1, weight: 1, endpoints: [h:1]}"
#define ROUTE(extra) "routes:\n  - {model: m, versions: [" V1 "]" extra "}\n"

static const struct err_case ERR_CASES[] = {
    {"unknown top-level key", "listne: 127.0.0.1:1\n" LISTEN ROUTE(""), "listne",
     "unknown field (did you mean \"listen\"?)"},
    {"listen missing", ROUTE(""), "listen", "missing required field"},
    {"listen not host:port", "listen: localhost\n" ROUTE(""), "listen",
     "\"localhost\" is not host:port or [ipv6]:port"},
    {"listen port 0", "listen: 127.0.0.1:0\n" ROUTE(""), "listen", "port must be 1-65535"},
    {"admin port too big", LISTEN "admin: 127.0.0.1:65536\n" ROUTE(""), "admin",
     "is not host:port"},
    {"admin same port as listen", "listen: 0.0.0.0:8080\nadmin: 127.0.0.1:8080\n" ROUTE(""), "admin",
     "overlaps listen \"0.0.0.0:8080\""},
    {"admin not a string", LISTEN "admin: 9901\n" ROUTE(""), "admin", "expected a string, got integer"},
    {"workers 0", LISTEN "workers: 0\n" ROUTE(""), "workers", "0 is out of range [1, 64]"},
    {"workers 65", LISTEN "workers: 65\n" ROUTE(""), "workers", "65 is out of range [1, 64]"},
    {"requestBody too small", LISTEN "limits: {requestBody: 512}\n" ROUTE(""), "limits.requestBody",
     "512 bytes is out of range [1024, 67108864]"},
    {"requestBody too big", LISTEN "limits: {requestBody: 65Mi}\n" ROUTE(""), "limits.requestBody",
     "out of range"},
    {"requestHead too big", LISTEN "limits: {requestHead: 2Mi}\n" ROUTE(""), "limits.requestHead",
     "2097152 bytes is out of range [1024, 1048576]"},
    {"size not a size", LISTEN "limits: {requestBody: lots}\n" ROUTE(""), "limits.requestBody",
     "invalid size \"lots\""},
    {"unknown limits key", LISTEN "limits: {requestbody: 2048}\n" ROUTE(""), "limits.requestbody",
     "did you mean \"requestBody\""},
    {"headerTimeout not a duration", LISTEN "client: {headerTimeout: 5x}\n" ROUTE(""),
     "client.headerTimeout", "invalid duration \"5x\""},
    {"headerTimeout too short", LISTEN "client: {headerTimeout: 1ms}\n" ROUTE(""),
     "client.headerTimeout", "out of range"},
    {"maxConnections 0", LISTEN "client: {maxConnections: 0}\n" ROUTE(""), "client.maxConnections",
     "out of range"},
    {"upstream idleTimeout", LISTEN "upstream: {idleTimeout: 5}\n" ROUTE(""), "upstream.idleTimeout",
     "expected a duration"},
    {"accessLog not bool", LISTEN "accessLog: \"true\"\n" ROUTE(""), "accessLog",
     "expected a boolean, got string"},
    {"routes missing", LISTEN, "routes", "missing required field"},
    {"routes empty", LISTEN "routes: []\n", "routes", "at least one route is needed"},
    {"routes not array", LISTEN "routes: {model: m}\n", "routes", "expected an array, got object"},
    {"route not object", LISTEN "routes: [m]\n", "routes[0]", "expected an object, got string"},
    {"unknown route key", LISTEN ROUTE(", stiky: {header: x}"), "routes[0].stiky",
     "did you mean \"sticky\""},
    {"model missing", LISTEN "routes: [{versions: [" V1 "]}]\n", "routes[0].model",
     "missing required field"},
    {"model empty", LISTEN "routes: [{model: \"\", versions: [" V1 "]}]\n", "routes[0].model",
     "cannot be empty"},
    {"model a number", LISTEN "routes: [{model: 1.10, versions: [" V1 "]}]\n", "routes[0].model",
     "quote the value"},
    {"duplicate model", LISTEN "routes: [{model: m, versions: [" V1 "]}, {model: m, versions: [" V1 "]}]\n",
     "routes[1].model", "model \"m\" is already served by routes[0]"},
    {"second wildcard",
     LISTEN "routes: [{model: \"*\", versions: [" V1 "]}, {model: m, versions: [" V1 "]},"
            " {model: \"*\", versions: [" V1 "]}]\n",
     "routes[2].model", "a second \"*\" route (the first is routes[0])"},
    {"versions missing", LISTEN "routes: [{model: m}]\n", "routes[0].versions", "missing required field"},
    {"versions empty", LISTEN "routes: [{model: m, versions: []}]\n", "routes[0].versions",
     "at least one version is needed"},
    {"too many versions",
     LISTEN "routes: [{model: m, versions: [" V1 "," V1 "," V1 "," V1 "," V1 "," V1 "," V1 "," V1 ","
            V1 "," V1 "," V1 "," V1 "," V1 "," V1 "," V1 "," V1 "," V1 "]}]\n",
     "routes[0].versions", "17 versions; at most 16 per route"},
    {"version not object", LISTEN "routes: [{model: m, versions: [v1]}]\n", "routes[0].versions[0]",
     "expected an object, got string"},
    {"unknown version key",
     LISTEN "routes: [{model: m, versions: [{name: v1, wieght: 1, weight: 1, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].wieght", "did you mean \"weight\""},
    {"version name missing", LISTEN "routes: [{model: m, versions: [{weight: 1, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].name", "missing required field"},
    {"version name bad chars",
     LISTEN "routes: [{model: m, versions: [{name: \"v 1\", weight: 1, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].name", "\"v 1\" is not a valid version name"},
    {"version name empty",
     LISTEN "routes: [{model: m, versions: [{name: \"\", weight: 1, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].name", "is not a valid version name"},
    {"version name duplicate",
     LISTEN "routes: [{model: m, versions: [" V1 ", {name: v2, weight: 1, endpoints: [h:2]}, " V1 "]}]\n",
     "routes[0].versions[2].name", "duplicate version name \"v1\" (also routes[0].versions[0])"},
    {"weight negative", LISTEN "routes: [{model: m, versions: [{name: v1, weight: -5, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].weight", "-5 is out of range [0, 10000]"},
    {"weight too big",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 10001, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].weight", "10001 is out of range [0, 10000]"},
    {"weight fraction", LISTEN "routes: [{model: m, versions: [{name: v1, weight: 2.5, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].weight", "expected an integer"},
    {"weight missing", LISTEN "routes: [{model: m, versions: [{name: v1, endpoints: [h:1]}]}]\n",
     "routes[0].versions[0].weight", "missing required field"},
    {"weights all zero",
     LISTEN "routes: [{model: m, versions: [{name: a, weight: 0, endpoints: [h:1]},"
            " {name: b, weight: 0, endpoints: [h:1]}]}]\n",
     "routes[0].versions", "every weight is 0"},
    {"endpoints missing", LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1}]}]\n",
     "routes[0].versions[0].endpoints", "missing required field"},
    {"endpoints empty", LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: []}]}]\n",
     "routes[0].versions[0].endpoints", "at least one endpoint"},
    {"endpoint no port",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [h:1, localhost]}]}]\n",
     "routes[0].versions[0].endpoints[1]", "\"localhost\" is not host:port"},
    {"endpoint port 0", LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [h:0]}]}]\n",
     "routes[0].versions[0].endpoints[0]", "port must be 1-65535"},
    {"endpoint port 70000",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [h:70000]}]}]\n",
     "routes[0].versions[0].endpoints[0]", "is not host:port"},
    {"endpoint with scheme",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [\"http://h:80\"]}]}]\n",
     "routes[0].versions[0].endpoints[0]", "without a scheme"},
    {"endpoint bad v6",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [\"[fe80::zz]:80\"]}]}]\n",
     "routes[0].versions[0].endpoints[0]", "is not an IPv6 address"},
    {"endpoint bare v6",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [\"::1:80\"]}]}]\n",
     "routes[0].versions[0].endpoints[0]", "is not host:port"},
    {"endpoint wildcard host",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [\"*:80\"]}]}]\n",
     "routes[0].versions[0].endpoints[0]", "is not a valid host name"},
    {"endpoint duplicate",
     LISTEN "routes: [{model: m, versions: [{name: v1, weight: 1, endpoints: [h:1, h:2, h:1]}]}]\n",
     "routes[0].versions[0].endpoints[2]", "duplicate endpoint \"h:1\""},
    {"match not array", LISTEN ROUTE(", match: {header: x, value: z, version: v1}"), "routes[0].match",
     "expected an array, got object"},
    {"match unknown version", LISTEN ROUTE(", match: [{header: x, value: z, version: v3}]"),
     "routes[0].match[0].version", "no version named \"v3\" in this route (versions: v1)"},
    {"match bad header", LISTEN ROUTE(", match: [{header: \"x y\", value: z, version: v1}]"),
     "routes[0].match[0].header", "\"x y\" is not a valid header name"},
    {"match empty header", LISTEN ROUTE(", match: [{header: \"\", value: z, version: v1}]"),
     "routes[0].match[0].header", "cannot be empty"},
    {"match value missing", LISTEN ROUTE(", match: [{header: x, version: v1}]"),
     "routes[0].match[0].value", "missing required field"},
    {"match value with newline", LISTEN ROUTE(", match: [{header: x, value: \"a\\nb\", version: v1}]"),
     "routes[0].match[0].value", "control character"},
    {"match unknown key", LISTEN ROUTE(", match: [{header: x, value: z, versoin: v1, version: v1}]"),
     "routes[0].match[0].versoin", "did you mean \"version\""},
    {"sticky not object", LISTEN ROUTE(", sticky: x-session-id"), "routes[0].sticky",
     "expected an object, got string"},
    {"sticky header missing", LISTEN ROUTE(", sticky: {}"), "routes[0].sticky.header",
     "missing required field"},
    {"sticky bad header", LISTEN ROUTE(", sticky: {header: \"x:y\"}"), "routes[0].sticky.header",
     "is not a valid header name"},
    {"timeouts bad", LISTEN ROUTE(", timeouts: {connect: fast}"), "routes[0].timeouts.connect",
     "invalid duration \"fast\""},
    {"timeouts too long", LISTEN ROUTE(", timeouts: {total: 25h}"), "routes[0].timeouts.total",
     "out of range"},
    {"timeouts unknown key", LISTEN ROUTE(", timeouts: {firsttoken: 1s}"), "routes[0].timeouts.firsttoken",
     "did you mean \"firstToken\""},
    {"retries not object", LISTEN ROUTE(", retries: 3"), "routes[0].retries",
     "expected an object, got integer"},
    {"fallback not array", LISTEN ROUTE(", fallback: {version: v1}"), "routes[0].fallback",
     "expected an array, got object"},
    {"mtls not object", LISTEN ROUTE(", mtls: STRICT"), "routes[0].mtls", "expected an object, got string"},
    {"root not object", "[1, 2]\n", "", "expected an object (the route table), got array"},
    {"empty document", "# nothing\n", "", "the route table is empty"},
};

static void t_error_classes(void)
{
    for (size_t i = 0; i < sizeof ERR_CASES / sizeof ERR_CASES[0]; i++) {
        const struct err_case *tc = &ERR_CASES[i];
        struct mg_json_errs e;
        struct sc_config *c = (struct sc_config *)1;
        mg_json_errs_init(&e, 0);
        int rc = parse_str(tc->doc, &c, &e, NULL);
        const struct mg_json_error *it = find_err(&e, tc->path, tc->msg);
        int ok = rc == -EINVAL && c == NULL && it && strcmp(it->file, "routes.yaml") == 0;
        if (!ok)
            printf("# %s: rc %d, want path \"%s\" msg \"%s\"; got:\n%s", tc->name, rc, tc->path,
                   tc->msg, errs_text(&e));
        char name[160];
        snprintf(name, sizeof name, "error class: %s", tc->name);
        test_report(name, ok);
        if (rc == 0)
            sc_config_unref(c);
        mg_json_errs_free(&e);
    }
}

static void t_all_errors_collected(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    const char *doc =
        "listen: nowhere\n"                                              /* 1 */
        "workers: 100\n"                                                 /* 2 */
        "colour: blue\n"                                                 /* 3 */
        "routes:\n"
        "  - model: m\n"
        "    versions:\n"
        "      - {name: v1, weight: -5, endpoints: [h:1]}\n"             /* 4 */
        "      - {name: v1, weight: 5, endpoints: []}\n"                 /* 5, 6 */
        "    match: [{header: x, value: z, version: v9}]\n"              /* 7 */
        "    timeouts: {idle: forever}\n"                                /* 8 */
        "  - model: m\n"                                                 /* 9 */
        "    versions: [{name: ok, weight: 1, endpoints: [\"h:1:2\"]}]\n"; /* 10 */
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), -EINVAL);
    CHECK(c == NULL);
    const char *txt = errs_text(&e);
    CHECK_EQ_INT(mg_json_errs_count(&e), 10);
    if (mg_json_errs_count(&e) != 10)
        printf("# %s", txt);
    CHECK(find_err(&e, "listen", "\"nowhere\" is not host:port") != NULL);
    CHECK(find_err(&e, "workers", "100 is out of range") != NULL);
    CHECK(find_err(&e, "colour", "unknown field") != NULL);
    CHECK(find_err(&e, "routes[0].versions[0].weight", "-5 is out of range [0, 10000]") != NULL);
    CHECK(find_err(&e, "routes[0].versions[1].name", "duplicate version name") != NULL);
    CHECK(find_err(&e, "routes[0].versions[1].endpoints", "at least one endpoint") != NULL);
    CHECK(find_err(&e, "routes[0].match[0].version", "no version named \"v9\"") != NULL);
    CHECK(find_err(&e, "routes[0].timeouts.idle", "invalid duration") != NULL);
    CHECK(find_err(&e, "routes[1].model", "already served by routes[0]") != NULL);
    CHECK(find_err(&e, "routes[1].versions[0].endpoints[0]", "\"h:1:2\"") != NULL);
    /* The formatted form names the file, the key's line:col and the path
     * on each line; a missing key points at the mapping that lacks it. */
    CHECK(strstr(txt, "routes.yaml:7:20: routes[0].versions[0].weight: -5 is out of range [0, 10000]\n") != NULL);
    CHECK(strstr(txt, "routes.yaml:3:1: colour: unknown field") != NULL);
    CHECK(strstr(txt, "routes.yaml:10:16: routes[0].timeouts.idle: ") != NULL);
    mg_json_errs_free(&e);
}

static void t_warnings(void)
{
    struct mg_json_errs e, w;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    mg_json_errs_init(&w, 0);
    const char *doc = LISTEN
        "routes:\n"
        "  - model: m\n"
        "    versions: [" V1 "]\n"
        "    retries: {attempts: 2, on: [reset, 503]}\n"
        "    circuitBreaker: {consecutiveFailures: 5}\n"
        "    rateLimit: {requestsPerSecond: 100}\n"
        "    fallback: [{version: v1}, {static: {status: 503, message: busy}}]\n"
        "    mtls: {mode: STRICT}\n";
    int rc = parse_str(doc, &c, &e, &w);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(mg_json_errs_count(&e), 0);
    /* Issue 5 enforces retries, circuitBreaker, rateLimit and fallback:
     * only mtls is still accepted without effect. */
    CHECK_EQ_INT(mg_json_errs_count(&w), 1);
    const struct mg_json_error *it = find_err(&w, "routes[0].mtls",
                                              "accepted but not enforced yet (issue 5)");
    CHECK(it != NULL);
    if (it)
        CHECK_EQ_STR(it->file, "routes.yaml");
    CHECK(find_err(&w, "routes[0].retries", "accepted") == NULL);
    if (c) {
        REQUIRE(c->routes[0].retries != NULL);
        CHECK_EQ_INT(c->routes[0].retries->attempts, 2);
        CHECK_EQ_INT(c->routes[0].nfallback, 2);
    }
    /* Their documents stay reachable for the issues that enforce them. */
    if (c) {
        CHECK(json_is_object(json_object_get(c->routes[0].raw, "retries")));
        sc_config_unref(c);
    }
    /* Warnings are optional: NULL is fine. */
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), 0);
    sc_config_unref(c);
    mg_json_errs_free(&e);
    mg_json_errs_free(&w);
}

static void t_yaml_syntax_error(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    const char *doc = "listen: 127.0.0.1:8080\n"
                      "routes:\n"
                      "  - model: m\n"
                      "    versions: [{name: v1, weight: 1\n"
                      "  endpoints: [h:1]}\n";
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), -EINVAL);
    CHECK(c == NULL);
    REQUIRE(e.n >= 1);
    CHECK_EQ_STR(e.items[0].file, "routes.yaml");
    /* Where libyaml notices: the unclosed flow mapping, line 5 column 12. */
    CHECK_EQ_INT(e.items[0].line, 5);
    CHECK_EQ_INT(e.items[0].col, 12);
    CHECK(strncmp(errs_text(&e), "routes.yaml:5:12: ", 18) == 0);
    mg_json_errs_free(&e);

    /* JSON syntax errors too, with the exact position. */
    mg_json_errs_init(&e, 0);
    doc = "{\"listen\": \"127.0.0.1:1\",\n \"routes\": [}\n";
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), -EINVAL);
    REQUIRE(e.n >= 1);
    CHECK_EQ_INT(e.items[0].line, 2);
    CHECK(e.items[0].col > 0);
    mg_json_errs_free(&e);

    /* Duplicate keys are a mistake, not "the last one wins". */
    mg_json_errs_init(&e, 0);
    doc = LISTEN "listen: 127.0.0.1:2\n" ROUTE("");
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), -EINVAL);
    CHECK(e.n >= 1 && e.items[0].line == 2);
    mg_json_errs_free(&e);
}

static void t_null_collectors(void)
{
    struct sc_config *c = (struct sc_config *)1;
    CHECK_EQ_INT(parse_str("listen: x\nroutes: []\n", &c, NULL, NULL), -EINVAL);
    CHECK(c == NULL);
    CHECK_EQ_INT(parse_str("{", &c, NULL, NULL), -EINVAL);
    CHECK(c == NULL);
}

static void t_size_limit(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    size_t n = ((size_t)4 << 20) + 1;
    char *big = malloc(n);
    REQUIRE(big != NULL);
    memset(big, ' ', n);
    mg_json_errs_init(&e, 0);
    CHECK_EQ_INT(sc_config_parse(big, n, "big.yaml", &c, &e, NULL), -EFBIG);
    CHECK(c == NULL);
    CHECK(e.n == 1 && strstr(e.items[0].msg, "larger than the limit"));
    free(big);
    mg_json_errs_free(&e);
}

static void t_load_file(void)
{
    char dir[] = "/tmp/sc-config-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/routes.yaml", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(FULL_YAML, f);
    fclose(f);

    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    CHECK_EQ_INT(sc_config_load(path, &c, &e, NULL), 0);
    if (c) {
        CHECK_EQ_STR(c->source, path);
        CHECK_EQ_INT(c->nroutes, 3);
        sc_config_unref(c);
    }
    /* Errors name the file. */
    f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("listen: 127.0.0.1:1\nworkers: 0\nroutes: [{model: m, versions: [" V1 "]}]\n", f);
    fclose(f);
    CHECK_EQ_INT(sc_config_load(path, &c, &e, NULL), -EINVAL);
    CHECK(e.n == 1 && strcmp(e.items[0].file, path) == 0 && strcmp(e.items[0].path, "workers") == 0);
    unlink(path);
    mg_json_errs_free(&e);

    /* A missing file. */
    mg_json_errs_init(&e, 0);
    CHECK_EQ_INT(sc_config_load(path, &c, &e, NULL), -ENOENT);
    CHECK(c == NULL);
    CHECK(e.n == 1 && strcmp(e.items[0].file, path) == 0 && strstr(e.items[0].msg, "cannot read"));
    mg_json_errs_free(&e);
    rmdir(dir);
}

/* Issue 5's policies: defaults (in the struct and written into the
 * document), the bare YAML `on:` key, and a value of each kind. */
static void t_policies(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    const char *doc = LISTEN
        "routes:\n"
        "  - model: m\n"
        "    versions: [" V1 ", {name: v2, weight: 0, endpoints: [h:2]}]\n"
        "    retries: {attempts: 3, on: [connect-failure, 500, \"429\"], perTryTimeout: 0,\n"
        "              backoff: {base: 10ms, max: 1s}, budgetPercent: 50, minRetries: 1}\n"
        "    circuitBreaker: {consecutiveFailures: 0, overloadStatus: 429, maxConcurrent: 0}\n"
        "    rateLimit: {requestsPerSecond: 0.5, tokensPerMinute: 1000, perKey: {requestsPerSecond: 2}}\n"
        "    fallback: [{version: v2}, {model: other, longContext: true},\n"
        "               {static: {status: 200, content: \"hello\"}}]\n"
        "    admission: {maxWaiting: 2, sheddable: [bulk]}\n"
        "  - model: other\n"
        "    versions: [" V1 "]\n"
        "    retries: {}\n"
        "    circuitBreaker: {}\n"
        "    admission: {}\n"
        "    retries:\n"
        "      on: [reset]\n";
    /* (the second retries key above is a duplicate: refused) */
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), -EINVAL);
    CHECK(strstr(errs_text(&e), "retries") != NULL);
    mg_json_errs_free(&e);
    mg_json_errs_init(&e, 0);
    doc = LISTEN
        "routes:\n"
        "  - model: m\n"
        "    versions: [" V1 ", {name: v2, weight: 0, endpoints: [h:2]}]\n"
        "    retries: {attempts: 3, on: [connect-failure, 500, \"429\"], perTryTimeout: 0,\n"
        "              backoff: {base: 10ms, max: 1s}, budgetPercent: 50, minRetries: 1}\n"
        "    circuitBreaker: {consecutiveFailures: 0, overloadStatus: 429, maxConcurrent: 0}\n"
        "    rateLimit: {requestsPerSecond: 0.5, tokensPerMinute: 1000, perKey: {requestsPerSecond: 2}}\n"
        "    fallback: [{version: v2}, {model: other, longContext: true},\n"
        "               {static: {status: 200, content: \"hello\"}}]\n"
        "    admission: {maxWaiting: 2, sheddable: [bulk]}\n"
        "  - model: other\n"
        "    versions: [" V1 "]\n"
        "    circuitBreaker: {}\n"
        "    admission: {}\n"
        "    retries:\n"
        "      on: [reset]\n";
    int rc = parse_str(doc, &c, &e, NULL);
    if (rc < 0)
        printf("# %s", errs_text(&e));
    REQUIRE(rc == 0);
    const struct sc_route *r = &c->routes[0];
    REQUIRE(r->retries && r->breaker && r->rate && r->admission && r->nfallback == 3);
    CHECK_EQ_INT(r->retries->attempts, 3);
    CHECK_EQ_INT(r->retries->on, SC_RETRY_CONNECT);
    CHECK(r->retries->status[500 / 8] & (1u << (500 % 8)));
    CHECK(r->retries->status[429 / 8] & (1u << (429 % 8)));
    CHECK(!(r->retries->status[503 / 8] & (1u << (503 % 8))));
    CHECK_EQ_INT(r->retries->per_try_ms, 0);
    CHECK_EQ_INT(r->retries->backoff_base_ms, 10);
    CHECK_EQ_INT(r->retries->backoff_max_ms, 1000);
    CHECK_EQ_INT(r->breaker->consecutive_failures, 0);
    CHECK_EQ_INT(r->breaker->overload_status, 429);
    CHECK_EQ_INT(r->breaker->max_pending, 512);
    CHECK(r->rate->rps == 0.5 && r->rate->burst == 1 && r->rate->tpm == 1000);
    CHECK(r->rate->key_rps == 2 && r->rate->key_burst == 2 && r->rate->key_tpm == 0);
    CHECK_EQ_INT(r->rate->default_max_tokens, 256);
    CHECK_EQ_INT(r->fallback[0].kind, SC_FB_VERSION);
    CHECK_EQ_INT(r->fallback[0].version, 1);
    CHECK_EQ_INT(r->fallback[1].kind, SC_FB_MODEL);
    CHECK_EQ_STR(r->fallback[1].model, "other");
    CHECK(r->fallback[1].long_context && !r->fallback[0].long_context);
    CHECK_EQ_INT(r->fallback[2].status, 200);
    CHECK_EQ_STR(r->fallback[2].content, "hello");
    CHECK_EQ_INT(r->admission->max_waiting, 2);
    CHECK_EQ_INT(r->admission->nsheddable, 1);
    CHECK_EQ_STR(r->admission->priority_header, "x-priority");
    /* Defaults of the second route, and in the document. */
    const struct sc_route *o = &c->routes[1];
    REQUIRE(o->retries && o->breaker && o->admission);
    CHECK_EQ_INT(o->retries->on, SC_RETRY_RESET);   /* the bare YAML `on` key */
    CHECK_EQ_INT(o->retries->attempts, 2);
    CHECK_EQ_INT(o->retries->per_try_ms, 2000);
    CHECK_EQ_INT(o->retries->budget_percent, 20);
    CHECK_EQ_INT(o->retries->min_retries, 3);
    CHECK_EQ_INT(o->breaker->consecutive_failures, 5);
    CHECK(o->breaker->failure_rate == 0.5);
    CHECK_EQ_INT(o->breaker->window_ms, 10000);
    CHECK_EQ_INT(o->breaker->open_ms, 30000);
    CHECK_EQ_INT(o->breaker->max_open_ms, 300000);
    CHECK_EQ_INT(o->breaker->max_concurrent, 256);
    CHECK_EQ_INT(o->breaker->pending_timeout_ms, 1000);
    CHECK_EQ_INT(o->breaker->overload_status, 503);
    CHECK_EQ_INT(o->admission->interval_ms, 100);
    CHECK_EQ_INT(o->admission->stale_ms, 1000);
    CHECK_EQ_INT(o->admission->nsheddable, 2);
    json_t *rd = json_array_get(json_object_get(c->doc, "routes"), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(rd, "retries"), "perTryTimeout")), "2s");
    CHECK(json_object_get(json_object_get(rd, "retries"), "true") == NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(rd, "circuitBreaker"), "openDuration")), "30s");
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(rd, "admission"), "priorityHeader")), "x-priority");
    sc_config_unref(c);
    mg_json_errs_free(&e);
}

/* Every mistake in the policies, named by its path, all at once. */
static void t_policy_errors(void)
{
    struct mg_json_errs e;
    struct sc_config *c = NULL;
    mg_json_errs_init(&e, 0);
    const char *doc = LISTEN
        "routes:\n"
        "  - model: m\n"
        "    versions: [" V1 "]\n"
        "    retries: {attempts: 11, on: [reset, 302, bogus], backoff: {base: 1s, max: 10ms}, tries: 1}\n"
        "    circuitBreaker: {failureRate: 2, overloadStatus: 500, openDuration: 1m, maxOpenDuration: 1s}\n"
        "    rateLimit: {burst: 5, keyTable: 1000}\n"
        "    fallback: [{version: v9}, {model: m}, {model: nowhere}, {static: {status: 700}},\n"
        "               {static: {status: 200, message: x}}, {version: v1, model: m},\n"
        "               {static: {status: 503, content: x}}]\n"
        "    admission: {interval: 1s, staleAfter: 100ms, maxKvCacheUsage: 1.5, priorityHeader: \"a b\"}\n";
    CHECK_EQ_INT(parse_str(doc, &c, &e, NULL), -EINVAL);
    CHECK(c == NULL);
    const char *txt = errs_text(&e);
    static const char *const want[] = {
        "routes[0].retries.attempts: 11 is out of range [0, 10]",
        "routes[0].retries.on[1]: 302: only statuses 400-599 can be retried",
        "routes[0].retries.on[2]: expected connect-failure, reset, timeout or an HTTP status",
        "routes[0].retries.backoff.max: must be at least backoff.base",
        "routes[0].retries.tries: unknown field",
        "routes[0].circuitBreaker.failureRate: ",
        "routes[0].circuitBreaker.overloadStatus: 500: must be 503 or 429",
        "routes[0].circuitBreaker.maxOpenDuration: must be at least openDuration",
        "routes[0].rateLimit.burst: burst needs requestsPerSecond",
        "routes[0].rateLimit.keyTable: 1000 is not a power of two",
        "routes[0].fallback[0].version: no version named \"v9\" in this route",
        "routes[0].fallback[1].model: \"m\" is this route's own model",
        "routes[0].fallback[2].model: no route serves model \"nowhere\"",
        "routes[0].fallback[3].static.status: 700 is out of range [200, 599]",
        "routes[0].fallback[4].static.content: a static 200 reply needs content",
        "routes[0].fallback[5]: a hop is exactly one of",
        "routes[0].fallback[6].static.content: a static error (503) takes message",
        "routes[0].admission.staleAfter: must be at least interval",
        "routes[0].admission.maxKvCacheUsage: ",
        "routes[0].admission.priorityHeader: \"a b\" is not a valid header name",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(txt, want[i]))
            printf("# missing: %s\n", want[i]);
        CHECK(strstr(txt, want[i]) != NULL);
    }
    mg_json_errs_free(&e);
}

int main(void)
{
    RUN(t_policies);
    RUN(t_policy_errors);
    RUN(t_full_yaml);
    RUN(t_full_json);
    RUN(t_defaults_written);
    RUN(t_wildcard_and_lookup);
    RUN(t_many_routes_lookup);
    RUN(t_refcount);
    RUN(t_refcount_threads);
    t_error_classes();
    RUN(t_all_errors_collected);
    RUN(t_warnings);
    RUN(t_yaml_syntax_error);
    RUN(t_null_collectors);
    RUN(t_size_limit);
    RUN(t_load_file);
    return test_done();
}
