/* Unit tests for lib/yaml.c: kubectl-compatible scalar typing, keys, tags,
 * merge keys, multi-document streams, Kubernetes manifests, errors with
 * line:column, and the limits (alias bombs, depth bombs, size, documents). */
#include "lib/yaml.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

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

static json_t *json(const char *s)
{
    json_error_t err;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &err);
    if (!v)
        printf("# bad expected JSON %s: %s\n", s, err.text);
    return v;
}

/* Loads one document; on error returns NULL and copies the error text. */
static json_t *load1(const char *doc, const struct mg_yaml_limits *lim, int *rc, char *err,
                     size_t errcap)
{
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    *rc = mg_yaml_load(doc, strlen(doc), lim, "t.yaml", &e, &v);
    if (err)
        snprintf(err, errcap, "%s", errs_text(&e));
    mg_json_errs_free(&e);
    return v;
}

/* Checks that doc loads and equals the expected JSON (types included). */
static int yaml_is(const char *doc, const char *want_json)
{
    int rc;
    char err[1024];
    json_t *got = load1(doc, NULL, &rc, err, sizeof err);
    json_t *want = json(want_json);
    int ok = rc == 0 && got && want && json_equal(got, want);
    if (!ok) {
        char *g = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        printf("# yaml %s\n#   want %s\n#   got  %s (rc %d) %s", doc, want_json, g ? g : "(none)",
               rc, rc ? err : "\n");
        free(g);
    }
    json_decref(got);
    json_decref(want);
    return ok;
}

/* Checks that doc is refused with exactly this (formatted) error. */
static int yaml_fails(const char *doc, const char *want_err)
{
    int rc;
    char err[1024];
    json_t *got = load1(doc, NULL, &rc, err, sizeof err);
    int ok = rc < 0 && !got && strcmp(err, want_err) == 0;
    if (!ok)
        printf("# yaml %s\n#   want error %s#   got rc %d: %s", doc, want_err, rc, err);
    json_decref(got);
    return ok;
}

/* --- scalar typing -------------------------------------------------------- */

struct typ {
    const char *in;     /* the value of key v */
    const char *json;   /* what it must load as; NULL: an error containing err */
    const char *err;
};

static void t_scalar_typing_table(void)
{
    static const struct typ cases[] = {
        /* booleans: YAML 1.1 as kubectl (go-yaml v2) reads them */
        {"true", "true", NULL}, {"True", "true", NULL}, {"TRUE", "true", NULL},
        {"false", "false", NULL}, {"FALSE", "false", NULL},
        {"yes", "true", NULL}, {"Yes", "true", NULL}, {"YES", "true", NULL},
        {"no", "false", NULL}, {"No", "false", NULL}, {"NO", "false", NULL},
        {"on", "true", NULL}, {"On", "true", NULL}, {"ON", "true", NULL},
        {"off", "false", NULL}, {"Off", "false", NULL}, {"OFF", "false", NULL},
        {"y", "true", NULL}, {"Y", "true", NULL}, {"n", "false", NULL}, {"N", "false", NULL},
        {"tRUE", "\"tRUE\"", NULL}, {"oN", "\"oN\"", NULL}, {"yES", "\"yES\"", NULL},
        /* null */
        {"", "null", NULL}, {"~", "null", NULL}, {"null", "null", NULL}, {"Null", "null", NULL},
        {"NULL", "null", NULL}, {"nULL", "\"nULL\"", NULL},
        /* integers */
        {"0", "0", NULL}, {"-0", "0", NULL}, {"+7", "7", NULL}, {"42", "42", NULL},
        {"-17", "-17", NULL}, {"0x1F", "31", NULL}, {"0X1f", "31", NULL}, {"-0x10", "-16", NULL},
        {"0o17", "15", NULL}, {"0O17", "15", NULL}, {"0644", "420", NULL}, {"0755", "493", NULL},
        {"0b101", "5", NULL}, {"-0b11", "-3", NULL}, {"1_000", "1000", NULL},
        {"9223372036854775807", "9223372036854775807", NULL},
        {"-9223372036854775808", "-9223372036854775808", NULL},
        /* past 64 bits: a JSON number all the same */
        {"9223372036854775808", "9223372036854775808.0", NULL},
        {"18446744073709551615", "18446744073709551615.0", NULL},
        /* floats */
        {"1.5", "1.5", NULL}, {"-2.5E-3", "-0.0025", NULL}, {".5", "0.5", NULL},
        {"-.5", "-0.5", NULL}, {"1.", "1.0", NULL}, {"1e3", "1000.0", NULL},
        {"1E+3", "1000.0", NULL}, {"08", "8.0", NULL}, {"09.5", "9.5", NULL},
        {"1.10", "1.1", NULL}, {"1_000.5", "1000.5", NULL},
        {".inf", NULL, "infinity and NaN cannot be represented in JSON"},
        {"-.Inf", NULL, "infinity and NaN cannot be represented in JSON"},
        {".NaN", NULL, "infinity and NaN cannot be represented in JSON"},
        /* strings */
        {"1e999", "\"1e999\"", NULL}, {"_1", "\"_1\"", NULL}, {"0x", "\"0x\"", NULL},
        {"+", "\"+\"", NULL}, {".", "\".\"", NULL}, {"1.2.3", "\"1.2.3\"", NULL},
        {"v1.10", "\"v1.10\"", NULL}, {"12:30", "\"12:30\"", NULL},
        {"2001-12-14", "\"2001-12-14\"", NULL},
        {"2001-12-14T21:59:43.10Z", "\"2001-12-14T21:59:43.10Z\"", NULL},
        {"hello world", "\"hello world\"", NULL}, {"._5", "\"._5\"", NULL},
        /* quoted scalars stay strings */
        {"\"yes\"", "\"yes\"", NULL}, {"'0644'", "\"0644\"", NULL}, {"\"1.5\"", "\"1.5\"", NULL},
        {"'null'", "\"null\"", NULL}, {"\"\"", "\"\"", NULL}, {"'~'", "\"~\"", NULL},
        {"\"a\\tb\\u00e9\"", "\"a\\tb\\u00e9\"", NULL},
        /* tags */
        {"!!str 5", "\"5\"", NULL}, {"!!str true", "\"true\"", NULL}, {"!!str", "\"\"", NULL},
        {"!!int \"7\"", "7", NULL}, {"!!float 1", "1.0", NULL}, {"!!bool yes", "true", NULL},
        {"!!null \"\"", "null", NULL}, {"! 5", "\"5\"", NULL},
        {"!!binary aGVsbG8=", "\"aGVsbG8=\"", NULL},
        {"!!timestamp 2001-12-14", "\"2001-12-14\"", NULL},
        {"!!int 1.5", NULL, "cannot read \"1.5\" as !!int"},
        {"!!bool maybe", NULL, "cannot read \"maybe\" as !!bool"},
        {"!!null x", NULL, "cannot read \"x\" as !!null"},
        {"!!float abc", NULL, "cannot read \"abc\" as !!float"},
        {"!custom x", NULL, "unsupported tag !custom"},
        {"!Ref MyBucket", NULL, "unsupported tag !Ref"},
        {"!!set {a}", NULL, "unsupported tag !!set on a mapping"},
        {"!!map [a]", NULL, "unsupported tag !!map on a sequence"},
        {"!!seq [a]", "[\"a\"]", NULL}, {"!!map {a: 1}", "{\"a\": 1}", NULL},
        {"!!merge x", NULL, "unsupported tag !!merge on a scalar"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct typ *c = &cases[i];
        char doc[256], want[256], name[128];
        snprintf(doc, sizeof doc, "v: %s\n", c->in);
        int ok;
        if (c->json) {
            snprintf(want, sizeof want, "{\"v\": %s}", c->json);
            ok = yaml_is(doc, want);
        } else {
            int rc;
            char err[1024];
            json_t *v = load1(doc, NULL, &rc, err, sizeof err);
            ok = rc == -EINVAL && !v && strstr(err, c->err) && strncmp(err, "t.yaml:1:4: ", 12) == 0;
            if (!ok)
                printf("# yaml %s#   want error containing %s\n#   got rc %d: %s", doc, c->err, rc, err);
            json_decref(v);
        }
        snprintf(name, sizeof name, "scalar v: %s", c->in);
        test_report(name, ok);
    }
}

/* --- keys ------------------------------------------------------------------ */

static void t_keys_typed_then_stringified(void)
{
    /* As kubectl: keys are typed like values, then written as strings, so
     * yes and on are the same key. */
    CHECK(yaml_fails("yes: 1\non: 3\n", "t.yaml:2:1: duplicate key \"true\"\n"));
    CHECK(yaml_fails("1: a\n'1': b\n", "t.yaml:2:1: duplicate key \"1\"\n"));
    CHECK(yaml_is("x: 1\ny: 2\n", "{\"x\": 1, \"true\": 2}"));
    CHECK(yaml_is("1: a\n0x10: b\n0644: c\n1.5: d\n100000.0: e\n1e6: f\n0.0001: g\n"
                  "\"yes\": h\nfalse: i\n",
                  "{\"1\": \"a\", \"16\": \"b\", \"420\": \"c\", \"1.5\": \"d\", \"100000\": \"e\","
                  " \"1e+06\": \"f\", \"0.0001\": \"g\", \"yes\": \"h\", \"false\": \"i\"}"));
    CHECK(yaml_fails("~: 1\n",
                     "t.yaml:1:1: a mapping key cannot be null (quote it for a string key)\n"));
    CHECK(yaml_fails("null: 1\n",
                     "t.yaml:1:1: a mapping key cannot be null (quote it for a string key)\n"));
    CHECK(yaml_is("\"\": 1\n", "{\"\": 1}"));
}

static void t_keys_complex_and_duplicate(void)
{
    CHECK(yaml_fails("? [a, b]\n: 1\n",
                     "t.yaml:1:3: a sequence used as a mapping key is not supported (keys must be scalars)\n"));
    CHECK(yaml_fails("{? {a: 1} : 2}\n",
                     "t.yaml:1:4: a mapping used as a mapping key is not supported (keys must be scalars)\n"));
    CHECK(yaml_fails("apiVersion: v1\nkind: ConfigMap\ndata:\n  a: \"1\"\n  b: \"2\"\n  a: \"3\"\n",
                     "t.yaml:6:3: duplicate key \"a\"\n"));
    /* A key that is an alias to a scalar is fine; to a collection it is not. */
    CHECK(yaml_is("k: &name app\n*name : web\n", "{\"k\": \"app\", \"app\": \"web\"}"));
    CHECK(yaml_fails("k: &c [1]\n*c : web\n",
                     "t.yaml:2:1: alias *c is a sequence: mapping keys must be scalars\n"));
    /* An anchored key can be aliased as a value. */
    CHECK(yaml_is("&k name: x\nother: *k\n", "{\"name\": \"x\", \"other\": \"name\"}"));
}

/* --- merge keys ----------------------------------------------------------- */

static void t_merge_keys(void)
{
    CHECK(yaml_is("base: &b {a: 1, b: 2}\n"
                  "x:\n  <<: *b\n  b: 3\n  c: 4\n",
                  "{\"base\": {\"a\": 1, \"b\": 2}, \"x\": {\"a\": 1, \"b\": 3, \"c\": 4}}"));
    /* Explicit keys win wherever they are written; earlier merges win. */
    CHECK(yaml_is("one: &one {a: 1, b: 1}\ntwo: &two {b: 2, c: 2}\n"
                  "x:\n  c: 9\n  <<: [*one, *two]\n",
                  "{\"one\": {\"a\": 1, \"b\": 1}, \"two\": {\"b\": 2, \"c\": 2},"
                  " \"x\": {\"c\": 9, \"a\": 1, \"b\": 1}}"));
    CHECK(yaml_is("x:\n  <<: {a: 1}\n  b: 2\n", "{\"x\": {\"a\": 1, \"b\": 2}}"));
    /* A quoted "<<" is an ordinary key. */
    CHECK(yaml_is("x:\n  \"<<\": {a: 1}\n", "{\"x\": {\"<<\": {\"a\": 1}}}"));
    CHECK(yaml_fails("x:\n  <<: 5\n",
                     "t.yaml:2:3: merge key << needs a mapping or a sequence of mappings, got integer\n"));
    CHECK(yaml_fails("x:\n  <<: [{a: 1}, 2]\n",
                     "t.yaml:2:3: merge key <<: item 1 of the sequence is integer, not a mapping\n"));
    /* Merged mappings are copies: changing one result leaves the others. */
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    /* (Not x/y/n as keys: kubectl's YAML 1.1 reads y and n as booleans.) */
    const char *doc = "b: &b {k: {count: 1}}\none: {<<: *b}\ntwo: {<<: *b}\n";
    json_t *v = NULL;
    REQUIRE(mg_yaml_load(doc, strlen(doc), NULL, NULL, &e, &v) == 0);
    json_t *xk = json_object_get(json_object_get(v, "one"), "k");
    json_t *yk = json_object_get(json_object_get(v, "two"), "k");
    CHECK(xk != NULL && yk != NULL && xk != yk);
    json_object_set_new(xk, "count", json_integer(2));
    CHECK_EQ_INT(json_integer_value(json_object_get(yk, "count")), 1);
    json_decref(v);
    mg_json_errs_free(&e);
}

/* --- anchors and limits --------------------------------------------------- */

static void t_aliases(void)
{
    CHECK(yaml_is("a: &x [1, 2]\nb: *x\nc: *x\n", "{\"a\": [1, 2], \"b\": [1, 2], \"c\": [1, 2]}"));
    /* A redefined anchor shadows the old one for later aliases. */
    CHECK(yaml_is("a: &x 1\nb: *x\nc: &x 2\nd: *x\n", "{\"a\": 1, \"b\": 1, \"c\": 2, \"d\": 2}"));
    CHECK(yaml_fails("a: *nope\n", "t.yaml:1:4: unknown alias *nope\n"));
    CHECK(yaml_fails("a: &x [1, *x]\n",
                     "t.yaml:1:11: alias *x refers to a node that contains it (recursive structures "
                     "cannot be represented in JSON)\n"));
    /* Anchors do not cross documents. */
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    const char *doc = "a: &x 1\n---\nb: *x\n";
    json_t *v = NULL;
    CHECK_EQ_INT(mg_yaml_load_all(doc, strlen(doc), NULL, "m.yaml", &e, &v), -EINVAL);
    CHECK_EQ_STR(errs_text(&e), "m.yaml:3:4: unknown alias *x\n");
    mg_json_errs_free(&e);
}

static void t_billion_laughs_refused(void)
{
    const char *doc =
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
        "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
        "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    CHECK_EQ_INT(mg_yaml_load(doc, strlen(doc), NULL, "lol.yaml", &e, &v), -EINVAL);
    CHECK(v == NULL);
    CHECK_EQ_STR(errs_text(&e),
                 "lol.yaml:7:8: alias *f expands to 597871 nodes, which takes the stream past the "
                 "limit of 1000000 nodes (an alias bomb such as \"billion laughs\"?)\n");
    mg_json_errs_free(&e);
}

static void t_node_budget_exact(void)
{
    /* a: &x [1,2,3]  -> key a, seq, 3 items = 5 nodes; b: *x -> key + 4 = 5;
     * the top mapping is 1: 11 nodes in all. */
    const char *doc = "a: &x [1, 2, 3]\nb: *x\n";
    struct mg_yaml_limits lim;
    mg_yaml_limits_default(&lim);
    lim.max_nodes = 11;
    int rc;
    char err[1024];
    json_t *v = load1(doc, &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    json_decref(v);
    lim.max_nodes = 10;
    v = load1(doc, &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK(v == NULL);
    CHECK(strstr(err, "t.yaml:2:4: alias *x expands to 4 nodes") != NULL);
    lim.max_nodes = 3;
    v = load1("[1, 2, 3]", &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_EQ_STR(err, "t.yaml:1:8: more than 3 nodes in the stream\n");
}

static void t_depth_bomb_refused(void)
{
    /* Flow style, 100000 deep: refused at the first level past the limit. */
    size_t n = 100000;
    char *doc = malloc(2 * n + 1);
    REQUIRE(doc != NULL);
    memset(doc, '[', n);
    memset(doc + n, ']', n);
    doc[2 * n] = '\0';
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    CHECK_EQ_INT(mg_yaml_load(doc, 2 * n, NULL, "deep.yaml", &e, &v), -EINVAL);
    CHECK(v == NULL);
    CHECK_EQ_STR(errs_text(&e), "deep.yaml:1:101: nesting deeper than the limit of 100\n");
    mg_json_errs_free(&e);
    free(doc);

    /* Block style at exactly the limit passes, one more fails. */
    struct mg_yaml_limits lim;
    mg_yaml_limits_default(&lim);
    lim.max_depth = 5;
    const char *five = "a:\n b:\n  c:\n   d:\n    e: 1\n";
    int rc;
    char err[1024];
    v = load1(five, &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    json_decref(v);
    v = load1("a:\n b:\n  c:\n   d:\n    e:\n     f: 1\n", &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_EQ_STR(err, "t.yaml:6:6: nesting deeper than the limit of 5\n");

    /* Depth through an alias counts what it expands to. */
    v = load1("x: &x [[[1]]]\ny: [*x]\n", &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, 0);
    json_decref(v);
    v = load1("x: &x [[[1]]]\ny: [[[*x]]]\n", &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_EQ_STR(err, "t.yaml:2:7: alias *x expands to nesting deeper than the limit of 5\n");
}

static void t_size_and_doc_limits(void)
{
    struct mg_yaml_limits lim;
    mg_yaml_limits_default(&lim);
    lim.max_bytes = 10;
    int rc;
    char err[1024];
    json_t *v = load1("a: 123456789\n", &lim, &rc, err, sizeof err);
    CHECK_EQ_INT(rc, -EFBIG);
    CHECK(v == NULL);
    CHECK_EQ_STR(err, "t.yaml: document is 13 bytes, more than the limit of 10\n");

    mg_yaml_limits_default(&lim);
    lim.max_docs = 2;
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    const char *doc = "a: 1\n---\nb: 2\n---\nc: 3\n";
    CHECK_EQ_INT(mg_yaml_load_all(doc, strlen(doc), &lim, "d.yaml", &e, &v), -EINVAL);
    CHECK_EQ_STR(errs_text(&e), "d.yaml:4:1: more than 2 documents in the stream\n");
    mg_json_errs_free(&e);
}

/* --- streams and manifests ------------------------------------------------ */

static void t_multi_document(void)
{
    const char *doc =
        "# leading comment\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: Namespace\n"
        "metadata: {name: ml}\n"
        "---\n"
        "# an empty document, skipped as kubectl skips it\n"
        "---\n"
        "null\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        "  name: cfg\n"
        "  namespace: ml\n"
        "data:\n"
        "  enabled: \"yes\"\n"
        "...\n";
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *docs = NULL;
    CHECK_EQ_INT(mg_yaml_load_all(doc, strlen(doc), NULL, "all.yaml", &e, &docs), 0);
    REQUIRE(docs != NULL);
    json_t *want = json("[{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"ml\"}},"
                        " {\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\","
                        "  \"metadata\": {\"name\": \"cfg\", \"namespace\": \"ml\"},"
                        "  \"data\": {\"enabled\": \"yes\"}}]");
    CHECK(json_equal(docs, want));
    json_decref(want);
    json_decref(docs);

    /* The single-document helper refuses two, and gives null for none. */
    json_t *v = NULL;
    CHECK_EQ_INT(mg_yaml_load(doc, strlen(doc), NULL, "all.yaml", &e, &v), -EINVAL);
    CHECK(v == NULL);
    CHECK_EQ_STR(errs_text(&e), "all.yaml: expected a single YAML document, found 2\n");
    CHECK_EQ_INT(mg_yaml_load("", 0, NULL, NULL, NULL, &v), 0);
    CHECK(json_is_null(v));
    json_decref(v);
    CHECK_EQ_INT(mg_yaml_load("# nothing\n---\n", 14, NULL, NULL, NULL, &v), 0);
    CHECK(json_is_null(v));
    json_decref(v);
    CHECK_EQ_INT(mg_yaml_load_all("", 0, NULL, NULL, NULL, &docs), 0);
    CHECK_EQ_INT(json_array_size(docs), 0);
    json_decref(docs);
    mg_json_errs_free(&e);
}

static void t_kubernetes_deployment(void)
{
    const char *doc =
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        "  name: llama-v2\n"
        "  namespace: models\n"
        "  labels:\n"
        "    app.kubernetes.io/name: llama\n"
        "    modelgate.dev/version: \"2\"\n"
        "  annotations:\n"
        "    modelgate.dev/managed: \"true\"\n"
        "spec:\n"
        "  replicas: 2\n"
        "  selector:\n"
        "    matchLabels: {app: llama, version: v2}\n"
        "  strategy:\n"
        "    type: RollingUpdate\n"
        "    rollingUpdate: {maxSurge: 25%, maxUnavailable: 0}\n"
        "  template:\n"
        "    metadata:\n"
        "      labels:\n"
        "        app: llama\n"
        "        version: v2\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: vllm\n"
        "          image: vllm/vllm-openai:v0.4.2\n"
        "          args: [\"--model\", \"meta-llama/Meta-Llama-3-8B-Instruct\", --port, \"8000\"]\n"
        "          ports:\n"
        "            - containerPort: 8000\n"
        "              name: http\n"
        "          env:\n"
        "            - name: VLLM_ATTENTION_BACKEND\n"
        "              value: FLASHINFER\n"
        "            - name: ENABLE_FEATURE\n"
        "              value: \"on\"\n"
        "          resources:\n"
        "            limits:\n"
        "              nvidia.com/gpu: 1\n"
        "              memory: 32Gi\n"
        "          readinessProbe:\n"
        "            httpGet: {path: /health, port: 8000}\n"
        "            periodSeconds: 5\n"
        "      volumes:\n"
        "        - name: tls\n"
        "          secret:\n"
        "            secretName: modelgate-tls\n"
        "            defaultMode: 0400\n"
        "      # a literal block\n"
        "      terminationGracePeriodSeconds: 30\n"
        "      nodeSelector:\n"
        "        gpu: \"true\"\n";
    const char *want =
        "{\"apiVersion\": \"apps/v1\", \"kind\": \"Deployment\","
        " \"metadata\": {\"name\": \"llama-v2\", \"namespace\": \"models\","
        "  \"labels\": {\"app.kubernetes.io/name\": \"llama\", \"modelgate.dev/version\": \"2\"},"
        "  \"annotations\": {\"modelgate.dev/managed\": \"true\"}},"
        " \"spec\": {\"replicas\": 2,"
        "  \"selector\": {\"matchLabels\": {\"app\": \"llama\", \"version\": \"v2\"}},"
        "  \"strategy\": {\"type\": \"RollingUpdate\", \"rollingUpdate\": {\"maxSurge\": \"25%\", \"maxUnavailable\": 0}},"
        "  \"template\": {\"metadata\": {\"labels\": {\"app\": \"llama\", \"version\": \"v2\"}},"
        "   \"spec\": {\"containers\": [{\"name\": \"vllm\", \"image\": \"vllm/vllm-openai:v0.4.2\","
        "     \"args\": [\"--model\", \"meta-llama/Meta-Llama-3-8B-Instruct\", \"--port\", \"8000\"],"
        "     \"ports\": [{\"containerPort\": 8000, \"name\": \"http\"}],"
        "     \"env\": [{\"name\": \"VLLM_ATTENTION_BACKEND\", \"value\": \"FLASHINFER\"},"
        "              {\"name\": \"ENABLE_FEATURE\", \"value\": \"on\"}],"
        "     \"resources\": {\"limits\": {\"nvidia.com/gpu\": 1, \"memory\": \"32Gi\"}},"
        "     \"readinessProbe\": {\"httpGet\": {\"path\": \"/health\", \"port\": 8000}, \"periodSeconds\": 5}}],"
        "    \"volumes\": [{\"name\": \"tls\", \"secret\": {\"secretName\": \"modelgate-tls\", \"defaultMode\": 256}}],"
        "    \"terminationGracePeriodSeconds\": 30,"
        "    \"nodeSelector\": {\"gpu\": \"true\"}}}}}";
    CHECK(yaml_is(doc, want));
}

static void t_kubernetes_crd(void)
{
    const char *doc =
        "apiVersion: apiextensions.k8s.io/v1\n"
        "kind: CustomResourceDefinition\n"
        "metadata:\n"
        "  name: modeldeployments.modelgate.dev\n"
        "spec:\n"
        "  group: modelgate.dev\n"
        "  names: {kind: ModelDeployment, plural: modeldeployments, singular: modeldeployment,\n"
        "          shortNames: [md]}\n"
        "  scope: Namespaced\n"
        "  versions:\n"
        "  - name: v1alpha1\n"
        "    served: true\n"
        "    storage: true\n"
        "    subresources: {status: {}}\n"
        "    additionalPrinterColumns:\n"
        "    - {name: Phase, type: string, jsonPath: .status.phase}\n"
        "    - name: Weight\n"
        "      type: integer\n"
        "      jsonPath: .status.weights.candidate\n"
        "    schema:\n"
        "      openAPIV3Schema:\n"
        "        type: object\n"
        "        required: [spec]\n"
        "        properties:\n"
        "          spec:\n"
        "            type: object\n"
        "            properties:\n"
        "              replicas: {type: integer, minimum: 0, default: 1}\n"
        "              version: {type: string, pattern: '^[a-z0-9.-]+$'}\n"
        "              analysis:\n"
        "                type: object\n"
        "                properties:\n"
        "                  interval: {type: string, default: 30s}\n"
        "                  metrics:\n"
        "                    type: object\n"
        "                    x-kubernetes-preserve-unknown-fields: true\n"
        "          status:\n"
        "            type: object\n"
        "            x-kubernetes-preserve-unknown-fields: true\n";
    const char *want =
        "{\"apiVersion\": \"apiextensions.k8s.io/v1\", \"kind\": \"CustomResourceDefinition\","
        " \"metadata\": {\"name\": \"modeldeployments.modelgate.dev\"},"
        " \"spec\": {\"group\": \"modelgate.dev\","
        "  \"names\": {\"kind\": \"ModelDeployment\", \"plural\": \"modeldeployments\","
        "            \"singular\": \"modeldeployment\", \"shortNames\": [\"md\"]},"
        "  \"scope\": \"Namespaced\","
        "  \"versions\": [{\"name\": \"v1alpha1\", \"served\": true, \"storage\": true,"
        "    \"subresources\": {\"status\": {}},"
        "    \"additionalPrinterColumns\": [{\"name\": \"Phase\", \"type\": \"string\", \"jsonPath\": \".status.phase\"},"
        "                                 {\"name\": \"Weight\", \"type\": \"integer\", \"jsonPath\": \".status.weights.candidate\"}],"
        "    \"schema\": {\"openAPIV3Schema\": {\"type\": \"object\", \"required\": [\"spec\"],"
        "      \"properties\": {\"spec\": {\"type\": \"object\", \"properties\": {"
        "         \"replicas\": {\"type\": \"integer\", \"minimum\": 0, \"default\": 1},"
        "         \"version\": {\"type\": \"string\", \"pattern\": \"^[a-z0-9.-]+$\"},"
        "         \"analysis\": {\"type\": \"object\", \"properties\": {"
        "            \"interval\": {\"type\": \"string\", \"default\": \"30s\"},"
        "            \"metrics\": {\"type\": \"object\", \"x-kubernetes-preserve-unknown-fields\": true}}}}},"
        "       \"status\": {\"type\": \"object\", \"x-kubernetes-preserve-unknown-fields\": true}}}}}]}}";
    CHECK(yaml_is(doc, want));
}

static void t_block_scalars_and_json_input(void)
{
    CHECK(yaml_is("script: |\n  line one\n  line two\nfolded: >\n  a\n  b\nkeep: |+\n  x\n\n",
                  "{\"script\": \"line one\\nline two\\n\", \"folded\": \"a b\\n\", \"keep\": \"x\\n\\n\"}"));
    /* JSON is YAML: including "key":value without a space and \/ escapes. */
    CHECK(yaml_is("{\"a\":1,\"b\":[true,null,\"x\\/y\",-1.5e2],\"c\":{\"d\":\"\\u00e9\"}}",
                  "{\"a\": 1, \"b\": [true, null, \"x/y\", -150.0], \"c\": {\"d\": \"\\u00e9\"}}"));
}

/* --- errors ----------------------------------------------------------------- */

static void t_syntax_errors_have_positions(void)
{
    CHECK(yaml_fails("a: [1, 2\nb: 3\n",
                     "t.yaml:2:2: did not find expected ',' or ']' (while parsing a flow sequence "
                     "at line 1, column 4)\n"));
    CHECK(yaml_fails("a: 1\n b: 2\n",
                     "t.yaml:2:3: mapping values are not allowed in this context\n"));
    CHECK(yaml_fails("a:\n\t- 1\n",
                     "t.yaml:2:1: found character that cannot start any token (while scanning for "
                     "the next token at line 2, column 1)\n"));
    CHECK(yaml_fails("a: \"\\ud800\"\n",
                     "t.yaml:1:7: found invalid Unicode character escape code (while parsing a "
                     "quoted scalar at line 1, column 4)\n"));
    CHECK(yaml_fails("a: ok\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet (byte 0xff)\n"));
    CHECK(yaml_fails("a: \"x\\0y\"\n",
                     "t.yaml:1:4: NUL characters in scalars are not supported\n"));
}

static void t_load_file(void)
{
    const char *path = "t_load_file.yaml";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd != -1);
    const char *doc = "workers: 4\n---\nworkers: 5\n";
    REQUIRE(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc));
    close(fd);
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    CHECK_EQ_INT(mg_yaml_load_all_file(path, NULL, &e, &v), 0);
    CHECK_EQ_INT(json_array_size(v), 2);
    json_decref(v);
    CHECK_EQ_INT(mg_yaml_load_file(path, NULL, &e, &v), -EINVAL);
    CHECK_EQ_INT(mg_yaml_load_file("missing.yaml", NULL, &e, &v), -ENOENT);
    CHECK_EQ_STR(errs_text(&e),
                 "t_load_file.yaml: expected a single YAML document, found 2\n"
                 "missing.yaml: cannot read: No such file or directory\n");
    mg_json_errs_free(&e);
    unlink(path);
}

/* Positions recorded by path let errors found by walking the JSON name
 * line:col, falling back to the nearest ancestor for absent keys. */
static void t_positions_by_path(void)
{
    static const char doc[] =
        "listen: 0.0.0.0:8080\n"                      /* 1 */
        "routes:\n"                                   /* 2 */
        "  - model: m\n"                              /* 3 */
        "    versions:\n"                             /* 4 */
        "      - name: v1\n"                          /* 5 */
        "        weight: -5\n"                        /* 6 */
        "      - {name: v2, weight: 1}\n"             /* 7 */
        "    \"a.b\": {x: 1}\n"                       /* 8 */
        "    base: &b {k: 1}\n"                       /* 9 */
        "    other: *b\n";                            /* 10 */
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    json_t *v = NULL;
    struct mg_yaml_pos *pos = NULL;
    REQUIRE(mg_yaml_load_pos(doc, strlen(doc), NULL, "r.yaml", &e, &v, &pos) == 0);
    unsigned l = 0, c = 0;
    CHECK(mg_yaml_pos_find(pos, "routes[0].versions[0].weight", &l, &c) == 0);
    CHECK_EQ_INT(l, 6);
    CHECK_EQ_INT(c, 9);
    CHECK(mg_yaml_pos_find(pos, "routes[0].versions[1]", &l, &c) == 0);
    CHECK_EQ_INT(l, 7);
    CHECK_EQ_INT(c, 9);
    CHECK(mg_yaml_pos_find(pos, "routes[0].versions[1].weight", &l, &c) == 0);
    CHECK_EQ_INT(l, 7);
    CHECK_EQ_INT(c, 20);
    /* an absent key: the mapping that lacks it */
    CHECK(mg_yaml_pos_find(pos, "routes[0].versions[0].endpoints", &l, &c) == 0);
    CHECK_EQ_INT(l, 5);
    CHECK_EQ_INT(c, 9);
    CHECK(mg_yaml_pos_find(pos, "routes[0][\"a.b\"].x", &l, &c) == 0);
    CHECK_EQ_INT(l, 8);
    CHECK_EQ_INT(c, 13);
    CHECK(mg_yaml_pos_find(pos, "routes[0][\"a.b\"].nope", &l, &c) == 0);
    CHECK_EQ_INT(l, 8);
    CHECK_EQ_INT(c, 5);
    /* through an alias: the alias's key */
    CHECK(mg_yaml_pos_find(pos, "routes[0].other.k", &l, &c) == 0);
    CHECK_EQ_INT(l, 10);
    /* unknown top-level key: the document's start */
    CHECK(mg_yaml_pos_find(pos, "nothing", &l, &c) == 0);
    CHECK_EQ_INT(l, 1);
    CHECK_EQ_INT(c, 1);

    mg_json_errs_add(&e, "routes[0].versions[0].weight", 0, 0, "must be 0..10000");
    mg_json_errs_add(&e, "", 0, 0, "document level");
    mg_yaml_pos_locate(pos, &e);
    struct mg_buf out;
    mg_buf_init(&out, 4096);
    REQUIRE(mg_json_errs_format(&e, &out) == 0);
    CHECK(strstr(mg_buf_head(&out), "r.yaml:6:9: routes[0].versions[0].weight: must be 0..10000\n") != NULL);
    CHECK(strstr(mg_buf_head(&out), "r.yaml: document level\n") != NULL);
    mg_buf_free(&out);
    json_decref(v);
    mg_yaml_pos_free(pos);

    /* failure: no positions, no leak */
    pos = (struct mg_yaml_pos *)1;
    CHECK(mg_yaml_load_pos("a: [", 4, NULL, "x", &e, &v, &pos) == -EINVAL);
    CHECK(pos == NULL);
    mg_json_errs_free(&e);
}

int main(void)
{
    t_scalar_typing_table();
    RUN(t_keys_typed_then_stringified);
    RUN(t_keys_complex_and_duplicate);
    RUN(t_merge_keys);
    RUN(t_aliases);
    RUN(t_billion_laughs_refused);
    RUN(t_node_budget_exact);
    RUN(t_depth_bomb_refused);
    RUN(t_size_and_doc_limits);
    RUN(t_multi_document);
    RUN(t_kubernetes_deployment);
    RUN(t_kubernetes_crd);
    RUN(t_block_scalars_and_json_input);
    RUN(t_syntax_errors_have_positions);
    RUN(t_load_file);
    RUN(t_positions_by_path);
    return test_done();
}
