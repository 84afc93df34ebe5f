/* Unit tests for sidecar/reqscan.c: the one-pass scanner that finds the
 * top-level "model" and "stream" of a request body. Tricky JSON (escapes,
 * nested and quoted "model", whitespace, non-objects, truncation), and a
 * cross-check with jansson on every accepted body. */
#include "sidecar/reqscan.c"

#include <jansson.h>
#include <time.h>

#include "tests/unit/test.h"

struct accept_case {
    const char *name;
    const char *body;
    const char *model;   /* NULL: absent */
    int stream;
};

static const struct accept_case accepts[] = {
    {"plain", "{\"model\":\"m\"}", "m", 0},
    {"whitespace everywhere", " \n\t{ \"model\" : \"m\" ,\r\n \"stream\" : true } \n", "m", 1},
    {"escaped quote in the model", "{\"stream\":true,\"model\":\"a\\\"b\"}", "a\"b", 1},
    {"all simple escapes", "{\"model\":\"\\\\\\/\\b\\f\\n\\r\\t\"}", "\\/\b\f\n\r\t", 0},
    {"\\u escapes decode to UTF-8", "{\"model\":\"\\u00e9t\\u00E9\"}", "\xc3\xa9t\xc3\xa9", 0},
    {"a surrogate pair", "{\"model\":\"\\ud83d\\ude00\"}", "\xf0\x9f\x98\x80", 0},
    {"raw UTF-8 in the model", "{\"model\":\"mod\xc3\xa8le\"}", "mod\xc3\xa8le", 0},
    {"an escaped key is still \"model\"", "{\"mod\\u0065l\":\"x\"}", "x", 0},
    {"an escaped \"stream\" key", "{\"model\":\"x\",\"\\u0073tream\":true}", "x", 1},
    {"nested model does not count",
     "{\"messages\":[{\"model\":\"nested\"}],\"model\":\"top\"}", "top", 0},
    {"model in a string does not count",
     "{\"messages\":[{\"role\":\"user\",\"content\":\"\\\"model\\\":\\\"fake\\\"\"}],"
     "\"model\":\"real\"}",
     "real", 0},
    {"only nested model: absent", "{\"x\":{\"model\":\"n\"}}", NULL, 0},
    {"model as a value: absent", "{\"x\":\"model\",\"y\":\"\\\"model\\\"\"}", NULL, 0},
    {"model inside a top-level array: absent", "{\"a\":[\"model\",\"x\"]}", NULL, 0},
    {"empty object", "{}", NULL, 0},
    {"empty model", "{\"model\":\"\"}", "", 0},
    {"stream false", "{\"stream\":false,\"model\":\"m\"}", "m", 0},
    {"stream as a string is not true", "{\"stream\":\"true\",\"model\":\"m\"}", "m", 0},
    {"stream 1 is not true", "{\"stream\":1,\"model\":\"m\"}", "m", 0},
    {"the last stream wins", "{\"stream\":true,\"stream\":false,\"model\":\"m\"}", "m", 0},
    {"nested stream does not count", "{\"o\":{\"stream\":true},\"model\":\"m\"}", "m", 0},
    {"every value kind",
     "{\"a\":[1,-2.5e+3,0,0.5,1E-2,true,false,null,{\"b\":[]},[[]],\"s\"],\"model\":\"m\"}",
     "m", 0},
    {"a key that merely starts like model", "{\"models\":\"x\",\"mode\":\"y\"}", NULL, 0},
    {"escaped key longer than model", "{\"model\\u0073\":\"x\"}", NULL, 0},
};

struct reject_case {
    const char *name;
    const char *body;
    size_t len;          /* 0: strlen */
    const char *error;   /* a prefix of the expected message */
};

static const struct reject_case rejects[] = {
    {"empty body", "", 0, "request body is not a JSON object"},
    {"only whitespace", " \n ", 0, "request body is not a JSON object"},
    {"an array", "[{\"model\":\"m\"}]", 0, "request body is not a JSON object"},
    {"a string", "\"model\"", 0, "request body is not a JSON object"},
    {"null", "null", 0, "request body is not a JSON object"},
    {"not JSON at all", "hello", 0, "request body is not a JSON object"},
    {"truncated object", "{\"model\":\"m\"", 0, "request body is not valid JSON"},
    {"unterminated string", "{\"model\":\"m", 0, "request body is not valid JSON"},
    {"trailing comma", "{\"model\":\"m\",}", 0, "request body is not valid JSON"},
    {"content after the object", "{\"model\":\"m\"} x", 0, "request body is not valid JSON"},
    {"two objects", "{\"model\":\"m\"}{}", 0, "request body is not valid JSON"},
    {"model is a number", "{\"model\":42}", 0, "\"model\" must be a string"},
    {"model is null", "{\"model\":null}", 0, "\"model\" must be a string"},
    {"model is an array", "{\"model\":[\"m\"]}", 0, "\"model\" must be a string"},
    {"model twice", "{\"model\":\"a\",\"model\":\"b\"}", 0, "\"model\" is given more than once"},
    {"model twice, once escaped", "{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", 0,
     "\"model\" is given more than once"},
    {"a lone surrogate", "{\"model\":\"\\ud800\"}", 0, "\"model\" is not valid UTF-8"},
    {"a lone low surrogate", "{\"model\":\"\\udc00x\"}", 0, "\"model\" is not valid UTF-8"},
    {"U+0000", "{\"model\":\"a\\u0000\"}", 0, "\"model\" is not valid UTF-8"},
    {"raw invalid UTF-8", "{\"model\":\"\xff\"}", 0, "\"model\" is not valid UTF-8"},
    {"leading zero", "{\"a\":01}", 0, "request body is not valid JSON"},
    {"bare dot", "{\"a\":1.}", 0, "request body is not valid JSON: invalid value"},
    {"bare minus", "{\"a\":-}", 0, "request body is not valid JSON: invalid value"},
    {"bad literal", "{\"a\":tru}", 0, "request body is not valid JSON: invalid value"},
    {"bad escape", "{\"a\":\"\\x\"}", 0, "request body is not valid JSON: invalid escape"},
    {"short \\u", "{\"a\":\"\\u12\"}", 0, "request body is not valid JSON: invalid \\u escape"},
    {"raw newline in a string", "{\"a\":\"x\ny\"}", 0,
     "request body is not valid JSON: control character"},
    {"NUL byte", "{\"a\":\"x\0y\"}", 12, "request body is not valid JSON: control character"},
    {"unquoted key", "{model:\"m\"}", 0, "request body is not valid JSON: expected a string"},
    {"missing colon", "{\"a\" 1}", 0, "request body is not valid JSON: expected ':'"},
    {"missing comma", "{\"a\":1 \"b\":2}", 0, "request body is not valid JSON: expected ',' or '}'"},
    {"missing comma in array", "{\"a\":[1 2]}", 0,
     "request body is not valid JSON: expected ',' or ']'"},
    {"trailing comma in array", "{\"a\":[1,]}", 0, "request body is not valid JSON: invalid value"},
    {"mismatched brackets", "{\"a\":[1}", 0, "request body is not valid JSON: expected ',' or ']'"},
};

/* What jansson makes of the same body: an object, its "model" and
 * "stream". Returns 1 when jansson accepts an object. */
static int jansson_view(const char *b, size_t n, char *model, size_t cap, int *has_model,
                        int *stream)
{
    json_error_t err;
    json_t *v = json_loadb(b, n, JSON_REJECT_DUPLICATES, &err);
    if (!v)
        return 0;
    int obj = json_is_object(v);
    json_t *m = obj ? json_object_get(v, "model") : NULL;
    *has_model = m && json_is_string(m);
    if (*has_model)
        snprintf(model, cap, "%.*s", (int)json_string_length(m), json_string_value(m));
    *stream = obj && json_is_true(json_object_get(v, "stream"));
    json_decref(v);
    return obj;
}

static void t_accepts(void)
{
    for (size_t i = 0; i < sizeof accepts / sizeof accepts[0]; i++) {
        const struct accept_case *c = &accepts[i];
        struct sc_reqscan s;
        int rc = sc_reqscan(c->body, strlen(c->body), &s);
        int ok = rc == 0 && s.stream == c->stream;
        if (ok && c->model)
            ok = s.model && s.model_len == strlen(c->model) &&
                 memcmp(s.model, c->model, s.model_len) == 0;
        else if (ok)
            ok = s.model == NULL;
        /* jansson reads the same: keys differ only where duplicates are
         * refused by it (the "last stream wins" case). */
        char jm[512];
        int jhas, jstream;
        if (ok && jansson_view(c->body, strlen(c->body), jm, sizeof jm, &jhas, &jstream)) {
            ok = jhas == (c->model != NULL) && (!jhas || strcmp(jm, c->model) == 0) &&
                 jstream == c->stream;
        }
        if (!ok)
            printf("# %s: rc %d error %s model %.*s stream %d\n", c->name, rc,
                   s.error ? s.error : "-", s.model ? (int)s.model_len : 4,
                   s.model ? s.model : "NULL", s.stream);
        char name[160];
        snprintf(name, sizeof name, "accepts: %s", c->name);
        test_report(name, ok);
    }
}

static void t_rejects(void)
{
    for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
        const struct reject_case *c = &rejects[i];
        size_t len = c->len ? c->len : strlen(c->body);
        struct sc_reqscan s;
        int rc = sc_reqscan(c->body, len, &s);
        int ok = rc == -EINVAL && s.error && strncmp(s.error, c->error, strlen(c->error)) == 0 &&
                 s.model == NULL && s.error_offset <= len;
        if (!ok)
            printf("# %s: rc %d error '%s'\n", c->name, rc, s.error ? s.error : "-");
        char name[160];
        snprintf(name, sizeof name, "rejects: %s", c->name);
        test_report(name, ok);
    }
}

/* Every strict prefix of a valid body is refused (a truncated upload must
 * never be routed), and every accepted body is a complete object. */
static void t_truncations_refused(void)
{
    for (size_t i = 0; i < sizeof accepts / sizeof accepts[0]; i++) {
        const char *b = accepts[i].body;
        size_t n = strlen(b);
        /* Trailing whitespace may go without changing the meaning. */
        while (n > 0 && (b[n - 1] == ' ' || b[n - 1] == '\n'))
            n--;
        for (size_t k = 0; k < n; k++) {
            struct sc_reqscan s;
            if (sc_reqscan(b, k, &s) != -EINVAL) {
                printf("# %s: prefix of %zu bytes accepted\n", accepts[i].name, k);
                CHECK(0);
                break;
            }
        }
    }
}

static void t_model_length_cap(void)
{
    char body[600];
    char model[SC_REQSCAN_MODEL_MAX + 2];
    memset(model, 'a', sizeof model);
    model[SC_REQSCAN_MODEL_MAX] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", model);
    struct sc_reqscan s;
    CHECK_EQ_INT(sc_reqscan(body, strlen(body), &s), 0);
    CHECK_EQ_INT(s.model_len, SC_REQSCAN_MODEL_MAX);
    model[SC_REQSCAN_MODEL_MAX] = 'a';
    model[SC_REQSCAN_MODEL_MAX + 1] = '\0';
    snprintf(body, sizeof body, "{\"model\":\"%s\"}", model);
    CHECK_EQ_INT(sc_reqscan(body, strlen(body), &s), -EINVAL);
    CHECK_EQ_STR(s.error, "\"model\" is too long");
    /* The cap counts decoded bytes: 128 escapes of 2 bytes each fit. */
    char esc[128 * 6 + 32];
    size_t o = (size_t)snprintf(esc, sizeof esc, "{\"model\":\"");
    for (int i = 0; i < 128; i++)
        o += (size_t)snprintf(esc + o, sizeof esc - o, "\\u00e9");
    o += (size_t)snprintf(esc + o, sizeof esc - o, "\"}");
    CHECK_EQ_INT(sc_reqscan(esc, o, &s), 0);
    CHECK_EQ_INT(s.model_len, 256);
}

static void t_depth(void)
{
    static char body[4096];
    for (unsigned depth = SC_REQSCAN_MAX_DEPTH - 1; depth <= SC_REQSCAN_MAX_DEPTH; depth++) {
        size_t o = 0;
        o += (size_t)sprintf(body + o, "{\"a\":");
        for (unsigned i = 1; i < depth; i++)
            body[o++] = '[';
        for (unsigned i = 1; i < depth; i++)
            body[o++] = ']';
        o += (size_t)sprintf(body + o, ",\"model\":\"deep\"}");
        struct sc_reqscan s;
        int rc = sc_reqscan(body, o, &s);
        /* Up to the limit itself is accepted. */
        CHECK_EQ_INT(rc, 0);
        CHECK(s.model && s.model_len == 4);
    }
    /* One level more: refused, whatever follows. */
    size_t o = (size_t)sprintf(body, "{\"a\":");
    for (unsigned i = 0; i < SC_REQSCAN_MAX_DEPTH; i++)
        body[o++] = '[';
    struct sc_reqscan s;
    CHECK_EQ_INT(sc_reqscan(body, o, &s), -EINVAL);
    CHECK_EQ_STR(s.error, "request body is not valid JSON: nested too deeply");
}

/* The model points into the body when it had no escapes (no copy), into
 * the result's buffer otherwise. */
static void t_model_storage(void)
{
    const char *b = "{\"model\":\"plain\"}";
    struct sc_reqscan s;
    REQUIRE(sc_reqscan(b, strlen(b), &s) == 0);
    CHECK(s.model == b + 10);
    const char *e = "{\"model\":\"pl\\u0061in\"}";
    REQUIRE(sc_reqscan(e, strlen(e), &s) == 0);
    CHECK(s.model == s.buf);
    CHECK_EQ_MEM(s.model, s.model_len, "plain");
}

/* A typical 1 KB chat body scans quickly: this guards against a scanner
 * that slipped into something quadratic. */
static void t_large_body_linear(void)
{
    size_t n = 4 << 20;
    char *b = malloc(n + 64);
    REQUIRE(b);
    size_t o = (size_t)sprintf(b, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    while (o < n)
        b[o++] = 'x';
    o += (size_t)sprintf(b + o, "\"}],\"model\":\"m\"}");
    struct sc_reqscan s;
    uint64_t t0 = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    int rc = sc_reqscan(b, o, &s);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t el = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - t0;
    CHECK_EQ_INT(rc, 0);
    CHECK(s.model && s.model_len == 1 && s.model[0] == 'm');
    printf("# 4 MiB body scanned in %.2f ms\n", (double)el / 1e6);
    CHECK(el < 2000000000u);
    free(b);
}

/* The "model" value's span (quotes included) and max_tokens, for model
 * fallbacks and token rate limits. */
static void t_model_span_and_max_tokens(void)
{
    struct sc_reqscan s;
    const char *b = "{\"messages\":[{\"model\":\"x\"}], \"model\" : \"llama\\u0031\", \"max_tokens\":128}";
    REQUIRE(sc_reqscan(b, strlen(b), &s) == 0);
    CHECK_EQ_MEM(b + s.model_off, s.model_span, "\"llama\\u0031\"");
    CHECK_EQ_MEM(s.model, s.model_len, "llama1");
    CHECK_EQ_INT(s.max_tokens, 128);

    b = "{\"model\":\"m\",\"max_completion_tokens\":7,\"max_tokens\":3}";
    REQUIRE(sc_reqscan(b, strlen(b), &s) == 0);
    CHECK_EQ_INT(s.max_tokens, 7);   /* the larger of the two */
    CHECK_EQ_MEM(b + s.model_off, s.model_span, "\"m\"");

    /* Not a plain non-negative integer below 2^32, or nested: absent. */
    static const char *const none[] = {
        "{\"model\":\"m\"}",
        "{\"model\":\"m\",\"max_tokens\":-1}",
        "{\"model\":\"m\",\"max_tokens\":1.5}",
        "{\"model\":\"m\",\"max_tokens\":1e3}",
        "{\"model\":\"m\",\"max_tokens\":\"100\"}",
        "{\"model\":\"m\",\"max_tokens\":4294967296}",
        "{\"model\":\"m\",\"x\":{\"max_tokens\":100}}",
        "{\"model\":\"m\",\"max_tokens\":null}",
    };
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        REQUIRE(sc_reqscan(none[i], strlen(none[i]), &s) == 0);
        if (s.max_tokens != -1)
            printf("# %s: max_tokens %lld\n", none[i], s.max_tokens);
        CHECK_EQ_INT(s.max_tokens, -1);
    }
    b = "{\"model\":\"m\",\"max_tokens\":4294967295}";
    REQUIRE(sc_reqscan(b, strlen(b), &s) == 0);
    CHECK(s.max_tokens == 4294967295LL);
    /* An escaped key is still the key. */
    b = "{\"model\":\"m\",\"max_\\u0074okens\":9}";
    REQUIRE(sc_reqscan(b, strlen(b), &s) == 0);
    CHECK_EQ_INT(s.max_tokens, 9);
    /* No model: no span. */
    b = "{\"max_tokens\":9}";
    REQUIRE(sc_reqscan(b, strlen(b), &s) == 0);
    CHECK(s.model == NULL && s.model_span == 0);
}

int main(void)
{
    RUN(t_model_span_and_max_tokens);
    t_accepts();
    t_rejects();
    RUN(t_truncations_refused);
    RUN(t_model_length_cap);
    RUN(t_depth);
    RUN(t_model_storage);
    RUN(t_large_body_linear);
    return test_done();
}
