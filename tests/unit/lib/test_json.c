/* Unit tests for lib/json.c: loading under limits with positioned errors,
 * the error collector, typed getters by key path, durations, sizes,
 * unknown-key detection and compact serialisation. */
#include "lib/json.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* Formats every collected error into a static string for comparisons. */
static const char *errs_text(const struct mg_json_errs *e)
{
    static char out[8192];
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

static json_t *parse(const char *s)
{
    json_t *v = NULL;
    if (mg_json_load(s, strlen(s), NULL, NULL, NULL, &v) != 0)
        return NULL;
    return v;
}

/* --- loading -------------------------------------------------------------- */

static void t_load_ok(void)
{
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    const char *doc = "{\"listen\": \"0.0.0.0:8080\", \"workers\": 2, \"ratio\": 0.5}";
    CHECK_EQ_INT(mg_json_load(doc, strlen(doc), NULL, "c.json", &e, &v), 0);
    REQUIRE(v != NULL);
    CHECK_EQ_INT(mg_json_errs_count(&e), 0);
    CHECK_EQ_STR(json_string_value(json_object_get(v, "listen")), "0.0.0.0:8080");
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "workers")), 2);
    json_decref(v);
    mg_json_errs_free(&e);
}

static void t_load_syntax_error_position(void)
{
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = (json_t *)1;
    const char *doc = "{\"a\": 1,\n \"b\": [1, 2,]\n}";
    CHECK_EQ_INT(mg_json_load(doc, strlen(doc), NULL, "c.json", &e, &v), -EINVAL);
    CHECK(v == NULL);
    REQUIRE(e.n == 1);
    CHECK_EQ_INT(e.items[0].line, 2);
    CHECK_EQ_INT(e.items[0].col, 13);
    CHECK_EQ_STR(errs_text(&e), "c.json:2:13: unexpected token near ']'\n");
    mg_json_errs_free(&e);
}

static void t_load_rejects_duplicates_nul_trailing(void)
{
    static const char *bad[] = {
        "{\"a\": 1, \"a\": 2}",
        "{\"a\": \"\\u0000\"}",
        "[1] x",
        "",
        "{\"a\": 99999999999999999999999}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mg_json_errs e;
        mg_json_errs_init(&e, 0);
        json_t *v = NULL;
        CHECK_EQ_INT(mg_json_load(bad[i], strlen(bad[i]), NULL, "x", &e, &v), -EINVAL);
        CHECK(v == NULL);
        CHECK_EQ_INT(mg_json_errs_count(&e), 1);
        mg_json_errs_free(&e);
    }
}

static void t_load_depth_bomb(void)
{
    /* 100000 nested arrays, and just-at-the-limit nesting that passes. */
    size_t n = 100000;
    char *doc = malloc(2 * n + 1);
    REQUIRE(doc != NULL);
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    doc[2 * n] = '\0';
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    struct mg_json_limits lim = {1 << 20, 32};
    CHECK_EQ_INT(mg_json_load(doc, 2 * n, &lim, "deep.json", &e, &v), -EINVAL);
    CHECK(v == NULL);
    CHECK_EQ_STR(errs_text(&e), "deep.json:1:33: nesting deeper than the limit of 32\n");
    mg_json_errs_free(&e);

    /* Brackets inside strings do not count. */
    const char *ok = "[[[\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"]]]";
    lim.max_depth = 3;
    CHECK_EQ_INT(mg_json_load(ok, strlen(ok), &lim, NULL, NULL, &v), 0);
    json_decref(v);
    lim.max_depth = 2;
    CHECK_EQ_INT(mg_json_load(ok, strlen(ok), &lim, NULL, NULL, &v), -EINVAL);
    free(doc);
}

static void t_load_size_cap(void)
{
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    struct mg_json_limits lim = {8, 10};
    CHECK_EQ_INT(mg_json_load("[1,2,3,4,5]", 11, &lim, "big.json", &e, &v), -EFBIG);
    CHECK(v == NULL);
    CHECK_EQ_STR(errs_text(&e), "big.json: document is 11 bytes, more than the limit of 8\n");
    mg_json_errs_free(&e);
}

static void t_load_file(void)
{
    const char *path = "t_load_file.json";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd != -1);
    const char *doc = "{\"workers\": 4}\n";
    REQUIRE(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc));
    close(fd);

    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    CHECK_EQ_INT(mg_json_load_file(path, NULL, &e, &v), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "workers")), 4);
    json_decref(v);

    struct mg_json_limits lim = {10, 10};
    CHECK_EQ_INT(mg_json_load_file(path, &lim, &e, &v), -EFBIG);
    CHECK_EQ_INT(mg_json_load_file("no-such-file.json", NULL, &e, &v), -ENOENT);
    CHECK_EQ_STR(errs_text(&e),
                 "t_load_file.json: file is larger than the limit of 10 bytes\n"
                 "no-such-file.json: cannot read: No such file or directory\n");
    mg_json_errs_free(&e);

    char *data;
    size_t len;
    CHECK_EQ_INT(mg_read_file(path, 15, &data, &len), 0);
    CHECK_EQ_INT(len, 15);
    CHECK_EQ_STR(data, doc);
    free(data);
    CHECK_EQ_INT(mg_read_file(path, 14, &data, &len), -EFBIG);
    CHECK(data == NULL);
    unlink(path);
}

/* --- error collector ------------------------------------------------------ */

static void t_errs_collect_all_dedupe_cap(void)
{
    struct mg_json_errs e;
    mg_json_errs_init(&e, 3);
    mg_json_errs_set_file(&e, "route.yaml");
    CHECK_EQ_INT(mg_json_errs_add(&e, "routes[0].model", 0, 0, "missing required field"), 0);
    CHECK_EQ_INT(mg_json_errs_add(&e, "", 3, 7, "bad %s", "indent"), 0);
    /* The same error again is not repeated. */
    CHECK_EQ_INT(mg_json_errs_add(&e, "routes[0].model", 0, 0, "missing required field"), 0);
    mg_json_errs_set_file(&e, NULL);
    CHECK_EQ_INT(mg_json_errs_add(&e, "workers", 0, 0, "too many"), 0);
    CHECK_EQ_INT(mg_json_errs_add(&e, "a", 0, 0, "one"), -ENOSPC);
    CHECK_EQ_INT(mg_json_errs_add(&e, "b", 0, 0, "two"), -ENOSPC);
    CHECK_EQ_INT(e.n, 3);
    CHECK_EQ_INT(mg_json_errs_count(&e), 5);
    CHECK_EQ_STR(errs_text(&e),
                 "route.yaml: routes[0].model: missing required field\n"
                 "route.yaml:3:7: bad indent\n"
                 "workers: too many\n"
                 "... and 2 more errors\n");
    mg_json_errs_free(&e);
    CHECK_EQ_INT(mg_json_errs_count(&e), 0);
}

static void t_errs_long_message_truncated(void)
{
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mg_json_errs_add(&e, "p", 0, 0, "%s", big);
    REQUIRE(e.n == 1);
    CHECK_EQ_INT(strlen(e.items[0].msg), MG_JSON_ERR_MSG_MAX - 1);
    CHECK(strcmp(e.items[0].msg + MG_JSON_ERR_MSG_MAX - 4, "...") == 0);
    mg_json_errs_free(&e);
}

/* --- getters -------------------------------------------------------------- */

static const char *route_doc =
    "{\"listen\": \"0.0.0.0:8080\", \"workers\": 2, \"debug\": true,"
    " \"timeouts\": {\"connect\": \"1s\", \"idle\": \"1m30s\", \"total\": 5},"
    " \"routes\": ["
    "  {\"model\": \"llama\", \"versions\": [{\"name\": \"v1\", \"weight\": 95}, {\"name\": \"v2\", \"weight\": 5.0}]},"
    "  {\"model\": \"mistral\", \"versions\": [{\"name\": \"v1\", \"weight\": 100}]},"
    "  {\"model\": 7, \"versions\": [{\"name\": \"v1\", \"weight\": \"ten\"}], \"maxBody\": \"1Mi\"}"
    " ],"
    " \"nothing\": null, \"version\": 1.10, \"enabled\": true, \"a.b\": {\"c\": 1}}";

static void t_get_ok(void)
{
    json_t *root = parse(route_doc);
    REQUIRE(root != NULL);
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    const char *s = NULL;
    long long w = -1;
    json_t *arr = NULL, *obj = NULL;
    int b = 0;
    double d = 0;
    uint64_t ms = 0, sz = 0;
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "listen"), 0);
    CHECK_EQ_STR(s, "0.0.0.0:8080");
    CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 1, 64, "workers"), 0);
    CHECK_EQ_INT(w, 2);
    CHECK_EQ_INT(mg_json_get_array(root, &e, &arr, "routes"), 0);
    CHECK_EQ_INT(json_array_size(arr), 3);
    for (size_t i = 0; i < 2; i++) {
        CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "routes[%zu].model", i), 0);
        CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 0, 100, "routes[%zu].versions[0].weight", i), 0);
    }
    /* An integral real counts as an integer. */
    CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 0, 100, "routes[0].versions[1].weight"), 0);
    CHECK_EQ_INT(w, 5);
    CHECK_EQ_INT(mg_json_get_bool(root, &e, &b, "debug"), 0);
    CHECK_EQ_INT(b, 1);
    CHECK_EQ_INT(mg_json_get_number(root, &e, &d, 0, 10, "version"), 0);
    CHECK(d > 1.09 && d < 1.11);
    CHECK_EQ_INT(mg_json_get_object(root, &e, &obj, "timeouts"), 0);
    CHECK(obj == json_object_get(root, "timeouts"));
    CHECK_EQ_INT(mg_json_get_duration(root, &e, &ms, 0, 3600000, "timeouts.idle"), 0);
    CHECK_EQ_INT(ms, 90000);
    CHECK_EQ_INT(mg_json_get_size(root, &e, &sz, 0, UINT64_MAX, "routes[2].maxBody"), 0);
    CHECK_EQ_INT(sz, 1048576);
    CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 0, 10, "[\"a.b\"].c"), 0);
    CHECK_EQ_INT(w, 1);
    CHECK_EQ_INT(mg_json_errs_count(&e), 0);
    mg_json_errs_free(&e);
    json_decref(root);
}

static void t_get_errors_name_the_path(void)
{
    json_t *root = parse(route_doc);
    REQUIRE(root != NULL);
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    mg_json_errs_set_file(&e, "route.json");
    const char *s = "untouched";
    long long w = 42;
    uint64_t ms = 7;
    json_t *arr = NULL;
    int b = 0;

    CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 0, 100, "routes[2].versions[0].weight"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "routes[2].model"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 3, 64, "workers"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "routes[1].name"), -ENOENT);
    CHECK_EQ_INT(mg_json_get_array(root, &e, &arr, "routes[0].versions[0].name[1]"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_duration(root, &e, &ms, 0, 60000, "timeouts.total"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_duration(root, &e, &ms, 0, 60000, "timeouts.idle"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "nothing"), -ENOENT);
    CHECK_EQ_INT(mg_json_get_bool(root, &e, &b, "listen"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "enabled"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_int(root, &e, &w, 0, 10, "version"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "routes..model"), -EINVAL);
    /* Failures leave the outputs alone. */
    CHECK_EQ_STR(s, "untouched");
    CHECK_EQ_INT(w, 42);
    CHECK_EQ_INT(ms, 7);
    CHECK_EQ_STR(errs_text(&e),
                 "route.json: routes[2].versions[0].weight: expected an integer, got string\n"
                 "route.json: routes[2].model: expected a string, got integer (quote the value if it is meant as text)\n"
                 "route.json: workers: 2 is out of range [3, 64]\n"
                 "route.json: routes[1].name: missing required field\n"
                 "route.json: routes[0].versions[0].name: expected an array, got string\n"
                 "route.json: timeouts.total: expected a duration such as \"500ms\", \"30s\" or \"1m30s\", got integer\n"
                 "route.json: timeouts.idle: duration 1m30s is out of range [0s, 1m]\n"
                 "route.json: nothing: missing required field\n"
                 "route.json: listen: expected a boolean, got string\n"
                 "route.json: enabled: expected a string, got boolean (quote the value if it is meant as text)\n"
                 "route.json: version: expected an integer, got 1.1\n"
                 "route.json: routes..model: malformed key path\n");
    mg_json_errs_free(&e);
    json_decref(root);
}

static void t_opt_absent_and_null(void)
{
    json_t *root = parse(route_doc);
    REQUIRE(root != NULL);
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    long long w = 8;
    uint64_t ms = 30000;
    const char *s = "default";
    json_t *o = (json_t *)1;
    /* Absent, null, an index past the end, and a path under a null value. */
    CHECK_EQ_INT(mg_json_opt_int(root, &e, &w, 0, 100, "maxConnections"), 0);
    CHECK_EQ_INT(mg_json_opt_string(root, &e, &s, "nothing"), 0);
    CHECK_EQ_INT(mg_json_opt_duration(root, &e, &ms, 0, 60000, "timeouts.firstToken"), 0);
    CHECK_EQ_INT(mg_json_opt_int(root, &e, &w, 0, 100, "routes[9].versions[0].weight"), 0);
    CHECK_EQ_INT(mg_json_opt_string(root, &e, &s, "nothing.deeper"), 0);
    CHECK_EQ_INT(mg_json_opt_object(root, &e, &o, "rateLimit"), 0);
    CHECK_EQ_INT(w, 8);
    CHECK_EQ_INT(ms, 30000);
    CHECK_EQ_STR(s, "default");
    CHECK(o == (json_t *)1);
    /* Present values are still checked. */
    CHECK_EQ_INT(mg_json_opt_duration(root, &e, &ms, 0, 60000, "timeouts.connect"), 0);
    CHECK_EQ_INT(ms, 1000);
    CHECK_EQ_INT(mg_json_opt_int(root, &e, &w, 0, 1, "workers"), -EINVAL);
    CHECK_EQ_INT(mg_json_errs_count(&e), 1);
    mg_json_errs_free(&e);
    json_decref(root);
}

static void t_find(void)
{
    json_t *root = parse("{\"a\": {\"b.c\": [10, {\"x\\\"y\": 3}]}, \"n\": null}");
    REQUIRE(root != NULL);
    json_t *v = NULL;
    CHECK_EQ_INT(mg_json_find(root, &v, "a[\"b.c\"][1][\"x\\\"y\"]"), 0);
    CHECK_EQ_INT(json_integer_value(v), 3);
    CHECK_EQ_INT(mg_json_find(root, &v, "%s", ""), 0);
    CHECK(v == root);
    CHECK_EQ_INT(mg_json_find(root, &v, "a.missing"), -ENOENT);
    CHECK_EQ_INT(mg_json_find(root, &v, "n.x"), -ENOENT);
    CHECK_EQ_INT(mg_json_find(root, &v, "a[0]"), -ENOTDIR);
    CHECK_EQ_INT(mg_json_find(root, &v, "a[x]"), -EINVAL);
    CHECK_EQ_INT(mg_json_find(root, &v, "a["), -EINVAL);
    CHECK_EQ_INT(mg_json_find(root, &v, "a.]"), -EINVAL);
    CHECK_EQ_INT(mg_json_find(root, &v, ".a"), -EINVAL);
    json_decref(root);
}

static void t_string_with_nul_refused(void)
{
    json_t *root = json_object();
    json_object_set_new(root, "s", json_stringn("a\0b", 3));
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    const char *s = NULL;
    CHECK_EQ_INT(mg_json_get_string(root, &e, &s, "s"), -EINVAL);
    CHECK_EQ_STR(errs_text(&e), "s: string contains a NUL character\n");
    mg_json_errs_free(&e);
    json_decref(root);
}

/* --- unknown keys --------------------------------------------------------- */

static void t_check_keys(void)
{
    json_t *root = parse("{\"listen\": \"x\", \"wokers\": 2, \"routes\": [{\"model\": \"m\","
                         " \"weigth\": 5, \"zzz\": 1, \"a.b\": 2}]}");
    REQUIRE(root != NULL);
    static const char *const top[] = {"listen", "admin", "workers", "routes", NULL};
    static const char *const route[] = {"model", "versions", "weight", NULL};
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    CHECK_EQ_INT(mg_json_check_keys(root, &e, top, "%s", ""), -EINVAL);
    CHECK_EQ_INT(mg_json_check_keys(root, &e, route, "routes[%d]", 0), -EINVAL);
    CHECK_EQ_INT(mg_json_check_keys(root, &e, route, "routes[%d]", 5), 0);
    CHECK_EQ_INT(mg_json_check_keys(root, &e, route, "listen"), -EINVAL);
    CHECK_EQ_STR(errs_text(&e),
                 "wokers: unknown field (did you mean \"workers\"?)\n"
                 "routes[0].weigth: unknown field (did you mean \"weight\"?)\n"
                 "routes[0].zzz: unknown field (allowed: model, versions, weight)\n"
                 "routes[0][\"a.b\"]: unknown field (allowed: model, versions, weight)\n"
                 "listen: expected an object, got string\n");
    mg_json_errs_free(&e);

    json_t *clean = parse("{\"listen\": \"x\", \"workers\": 1}");
    CHECK_EQ_INT(mg_json_check_keys(clean, NULL, top, "%s", ""), 0);
    json_decref(clean);
    json_decref(root);
}

/* --- durations and sizes -------------------------------------------------- */

struct dur_case {
    const char *in;
    int rc;
    uint64_t ms;
    const char *why;
};

static void t_durations_table(void)
{
    static const struct dur_case cases[] = {
        {"0", 0, 0, NULL},
        {"250ms", 0, 250, NULL},
        {"1s", 0, 1000, NULL},
        {"2m", 0, 120000, NULL},
        {"1h", 0, 3600000, NULL},
        {"1m30s", 0, 90000, NULL},
        {"1h2m3s4ms", 0, 3723004, NULL},
        {"1.5s", 0, 1500, NULL},
        {".5s", 0, 500, NULL},
        {"0.25h", 0, 900000, NULL},
        {"0s", 0, 0, NULL},
        {"", -EINVAL, 0, "empty duration"},
        {"10", -EINVAL, 0, "missing unit (use ms, s, m or h, e.g. 500ms or 30s)"},
        {"1x", -EINVAL, 0, "unknown unit (use ms, s, m or h)"},
        {"1d", -EINVAL, 0, "unknown unit (use ms, s, m or h)"},
        {"5us", -EINVAL, 0, "unknown unit (use ms, s, m or h)"},
        {"-1s", -EINVAL, 0, "negative durations are not allowed"},
        {"30s1m", -EINVAL, 0, "units must go from largest to smallest, each at most once (e.g. 1m30s)"},
        {"1s1s", -EINVAL, 0, "units must go from largest to smallest, each at most once (e.g. 1m30s)"},
        {"1.0005s", -EINVAL, 0, "finer than the 1ms resolution"},
        {"0.5ms", -EINVAL, 0, "finer than the 1ms resolution"},
        {"1.s", -EINVAL, 0, "digits expected after '.'"},
        {"1 s", -EINVAL, 0, "expected a duration such as 500ms, 30s, 1m30s or 2h"},
        {"s", -EINVAL, 0, "expected a duration such as 500ms, 30s, 1m30s or 2h"},
        {"+1s", -EINVAL, 0, "expected a duration such as 500ms, 30s, 1m30s or 2h"},
        {"876001h", -ERANGE, 0, "too large (at most 100 years)"},
        {"99999999999999999999999h", -ERANGE, 0, "too large"},
        {"876000h", 0, 876000ull * 3600000, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct dur_case *c = &cases[i];
        uint64_t ms = 12345;
        const char *why = NULL;
        int rc = mg_duration_parse(c->in, strlen(c->in), &ms, &why);
        int ok = rc == c->rc && (rc != 0 || ms == c->ms) &&
                 (rc == 0 || (why && strcmp(why, c->why) == 0));
        if (!ok)
            printf("# duration \"%s\": rc %d ms %llu why %s\n", c->in, rc,
                   (unsigned long long)ms, why ? why : "(null)");
        char name[80];
        snprintf(name, sizeof name, "duration \"%s\"", c->in);
        test_report(name, ok);
    }
}

struct size_case {
    const char *in;
    int rc;
    uint64_t bytes;
};

static void t_sizes_table(void)
{
    static const struct size_case cases[] = {
        {"0", 0, 0},
        {"4096", 0, 4096},
        {"512Ki", 0, 524288},
        {"1Mi", 0, 1048576},
        {"2Gi", 0, 2147483648ull},
        {"1Ti", 0, 1099511627776ull},
        {"1.5Ki", 0, 1536},
        {"10k", 0, 10000},
        {"3M", 0, 3000000},
        {"1G", 0, 1000000000},
        {"7Ei", 0, 7ull << 60},
        {"8Ei", -ERANGE, 0},
        {"0.1Ki", -EINVAL, 0},
        {"1.5", -EINVAL, 0},
        {"1K", -EINVAL, 0},
        {"1MB", -EINVAL, 0},
        {"-1", -EINVAL, 0},
        {"", -EINVAL, 0},
        {"Mi", -EINVAL, 0},
        {"1 Mi", -EINVAL, 0},
        {"99999999999999999999", -ERANGE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct size_case *c = &cases[i];
        uint64_t b = 12345;
        const char *why = NULL;
        int rc = mg_size_parse(c->in, strlen(c->in), &b, &why);
        int ok = rc == c->rc && (rc != 0 || b == c->bytes) && (rc == 0 || why != NULL);
        if (!ok)
            printf("# size \"%s\": rc %d bytes %llu\n", c->in, rc, (unsigned long long)b);
        char name[80];
        snprintf(name, sizeof name, "size \"%s\"", c->in);
        test_report(name, ok);
    }
}

static void t_size_getter(void)
{
    json_t *root = parse("{\"a\": 1024, \"b\": \"64Ki\", \"c\": -1, \"d\": true, \"e\": \"1x\"}");
    REQUIRE(root != NULL);
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    uint64_t v = 0;
    CHECK_EQ_INT(mg_json_get_size(root, &e, &v, 0, 1 << 20, "a"), 0);
    CHECK_EQ_INT(v, 1024);
    CHECK_EQ_INT(mg_json_get_size(root, &e, &v, 0, 1 << 20, "b"), 0);
    CHECK_EQ_INT(v, 65536);
    CHECK_EQ_INT(mg_json_get_size(root, &e, &v, 0, 1000, "b"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_size(root, &e, &v, 0, 1000, "c"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_size(root, &e, &v, 0, 1000, "d"), -EINVAL);
    CHECK_EQ_INT(mg_json_get_size(root, &e, &v, 0, 1000, "e"), -EINVAL);
    CHECK_EQ_STR(errs_text(&e),
                 "b: 65536 bytes is out of range [0, 1000]\n"
                 "c: a size cannot be negative\n"
                 "d: expected a size such as 1048576, \"512Ki\" or \"1Mi\", got boolean\n"
                 "e: invalid size \"1x\": unknown suffix (use Ki, Mi, Gi, Ti, or k, M, G, T)\n");
    mg_json_errs_free(&e);
    json_decref(root);
}

/* --- serialisation -------------------------------------------------------- */

static void t_dump_compact_and_capped(void)
{
    json_t *v = parse("{ \"b\" : [1, 2, {\"c\": \"x\\ny\"}], \"a\": null, \"t\": true }");
    REQUIRE(v != NULL);
    struct mg_buf b;
    mg_buf_init(&b, 1024);
    CHECK_EQ_INT(mg_json_dump(v, &b, 0), 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "{\"b\":[1,2,{\"c\":\"x\\ny\"}],\"a\":null,\"t\":true}");
    mg_buf_reset(&b);
    CHECK_EQ_INT(mg_json_dump(v, &b, JSON_SORT_KEYS), 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "{\"a\":null,\"b\":[1,2,{\"c\":\"x\\ny\"}],\"t\":true}");
    mg_buf_free(&b);

    /* Past the cap: -ENOBUFS and the buffer keeps what it held. */
    mg_buf_init(&b, 20);
    mg_buf_append_str(&b, "keep:");
    CHECK_EQ_INT(mg_json_dump(v, &b, 0), -ENOBUFS);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "keep:");
    json_t *s = json_string("ok");
    CHECK_EQ_INT(mg_json_dump(s, &b, 0), 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "keep:\"ok\"");
    json_decref(s);
    mg_buf_free(&b);
    json_decref(v);
}

static void t_kind_names(void)
{
    json_t *v = parse("[{}, [], \"s\", 1, 1.5, true, false, null]");
    REQUIRE(v != NULL);
    static const char *want[] = {"object", "array", "string", "integer", "number",
                                 "boolean", "boolean", "null"};
    for (size_t i = 0; i < 8; i++)
        CHECK_EQ_STR(mg_json_kind(json_array_get(v, i)), want[i]);
    json_decref(v);
}

int main(void)
{
    RUN(t_load_ok);
    RUN(t_load_syntax_error_position);
    RUN(t_load_rejects_duplicates_nul_trailing);
    RUN(t_load_depth_bomb);
    RUN(t_load_size_cap);
    RUN(t_load_file);
    RUN(t_errs_collect_all_dedupe_cap);
    RUN(t_errs_long_message_truncated);
    RUN(t_get_ok);
    RUN(t_get_errors_name_the_path);
    RUN(t_opt_absent_and_null);
    RUN(t_find);
    RUN(t_string_with_nul_refused);
    RUN(t_check_keys);
    t_durations_table();
    t_sizes_table();
    RUN(t_size_getter);
    RUN(t_dump_compact_and_capped);
    RUN(t_kind_names);
    return test_done();
}
