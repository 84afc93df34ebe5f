/* Unit tests for apiserver/patch.c: JSON merge patch (every example of RFC
 * 7386 appendix A), JSON patch (every example of RFC 6902 appendix A, plus
 * pointer escapes, bounds and atomicity), strategic merge patch for the
 * built-in kinds (merge keys, directives, the patches kubectl's
 * client-side apply sends) and server-side apply. Results are compared
 * whole, list order included. */
#include "apiserver/patch.c"
#include "tests/unit/test.h"

static json_t *J(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v)
        printf("# bad test JSON (%s): %s\n", e.text, s);
    return v;
}

static void show(const char *what, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    printf("#   %s: %s\n", what, s ? s : "(null)");
    free(s);
}

/* Rows that expect success leave rc and err_has out. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

struct pcase {
    const char *name;
    enum as_patch_type type;
    const char *kind;
    const char *obj, *patch;
    const char *want;      /* NULL: the patch must fail */
    int rc;                /* the failure expected (-EINVAL when 0) */
    const char *err_has;   /* a part of the error message */
};

static void run_cases(const struct pcase *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct pcase *c = &cases[i];
        json_t *obj = J(c->obj), *patch = J(c->patch), *want = c->want ? J(c->want) : NULL;
        json_t *orig = obj ? json_deep_copy(obj) : NULL;
        const char *err = NULL;
        int ok = obj && patch && (want || !c->want);
        int rc = ok ? as_patch_apply(c->type, c->kind, &obj, patch, &err) : -1;
        if (ok && c->want) {
            ok = rc == 0 && json_equal(obj, want);
            if (!ok) {
                printf("# rc %d err %s\n", rc, err ? err : "(none)");
                show("got ", obj);
                show("want", want);
            }
        } else if (ok) {
            int wrc = c->rc ? c->rc : -EINVAL;
            ok = rc == wrc && err && (!c->err_has || strstr(err, c->err_has)) && json_equal(obj, orig);
            if (!ok) {
                printf("# rc %d (want %d) err \"%s\" (want \"%s\")\n", rc, wrc, err ? err : "(none)",
                       c->err_has ? c->err_has : "");
                show("object after the failed patch", obj);
            }
        }
        char name[160];
        snprintf(name, sizeof name, "patch: %s", c->name);
        test_report(name, ok);
        json_decref(obj);
        json_decref(orig);
        json_decref(patch);
        json_decref(want);
    }
}

#define M AS_PATCH_MERGE
#define JP AS_PATCH_JSON
#define S AS_PATCH_STRATEGIC
#define A AS_PATCH_APPLY

/* RFC 7386 appendix A, as far as the target and patch are objects (the API
 * only patches objects); the others go through merge_patch() below. */
static const struct pcase merge_cases[] = {
    {"rfc7386 a1 replace a member", M, NULL, "{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
    {"rfc7386 a2 add a member", M, NULL, "{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}"},
    {"rfc7386 a3 null removes", M, NULL, "{\"a\":\"b\"}", "{\"a\":null}", "{}"},
    {"rfc7386 a4 null removes one", M, NULL, "{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}"},
    {"rfc7386 a5 list replaced by value", M, NULL, "{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}"},
    {"rfc7386 a6 value replaced by list", M, NULL, "{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}"},
    {"rfc7386 a7 nested merge", M, NULL, "{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
     "{\"a\":{\"b\":\"d\"}}"},
    {"rfc7386 a8 lists replaced whole", M, NULL, "{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}"},
    {"rfc7386 a13 null in target kept", M, NULL, "{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}"},
    {"rfc7386 a15 nulls in new objects dropped", M, NULL, "{}", "{\"a\":{\"bb\":{\"ccc\":null}}}",
     "{\"a\":{\"bb\":{}}}"},
    {"merge: a list patch is refused", M, NULL, "{\"a\":1}", "[1]", NULL, 0, "must be a JSON object"},
    {"merge: a value patch is refused", M, NULL, "{\"a\":1}", "\"bar\"", NULL, 0, "must be a JSON object"},
    {"merge: status patch keeps spec", M, NULL,
     "{\"spec\":{\"replicas\":2},\"status\":{\"phase\":\"A\",\"weights\":{\"stable\":100}}}",
     "{\"status\":{\"phase\":\"B\",\"weights\":{\"candidate\":5,\"stable\":95}}}",
     "{\"spec\":{\"replicas\":2},\"status\":{\"phase\":\"B\",\"weights\":{\"stable\":95,\"candidate\":5}}}"},
};

/* The RFC 7386 examples whose target or patch is not an object. */
static void t_rfc7386_non_objects(void)
{
    static const char *const rows[][3] = {
        {"[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]"},          /* a9 */
        {"{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]"},                      /* a10 */
        {"{\"a\":\"foo\"}", "null", "null"},                          /* a11 */
        {"{\"a\":\"foo\"}", "\"bar\"", "\"bar\""},                    /* a12 */
        {"[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}"},        /* a14 */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *err = NULL;
        json_t *patch = J(rows[i][1]), *want = J(rows[i][2]);
        json_t *got = merge_patch(J(rows[i][0]), patch, &err);
        if (!json_equal(got, want)) {
            printf("# row %zu\n", i);
            show("got ", got);
            show("want", want);
            CHECK(0);
        }
        json_decref(got);
        json_decref(patch);
        json_decref(want);
    }
}

static const struct pcase json_cases[] = {
    {"rfc6902 a1 add an object member", JP, NULL, "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]", "{\"baz\":\"qux\",\"foo\":\"bar\"}"},
    {"rfc6902 a2 add an array element", JP, NULL, "{\"foo\":[\"bar\",\"baz\"]}",
     "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]", "{\"foo\":[\"bar\",\"qux\",\"baz\"]}"},
    {"rfc6902 a3 remove an object member", JP, NULL, "{\"baz\":\"qux\",\"foo\":\"bar\"}",
     "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}"},
    {"rfc6902 a4 remove an array element", JP, NULL, "{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
     "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]", "{\"foo\":[\"bar\",\"baz\"]}"},
    {"rfc6902 a5 replace a value", JP, NULL, "{\"baz\":\"qux\",\"foo\":\"bar\"}",
     "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]", "{\"baz\":\"boo\",\"foo\":\"bar\"}"},
    {"rfc6902 a6 move a value", JP, NULL,
     "{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
     "[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
     "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}"},
    {"rfc6902 a7 move an array element", JP, NULL, "{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
     "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
     "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}"},
    {"rfc6902 a8 test a value: success", JP, NULL, "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
     "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
     "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}"},
    {"rfc6902 a9 test a value: error", JP, NULL, "{\"baz\":\"qux\"}",
     "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", NULL, 0, "the test operation failed at /baz"},
    {"rfc6902 a10 add a nested member object", JP, NULL, "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]",
     "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}"},
    {"rfc6902 a11 ignore unrecognized elements", JP, NULL, "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]", "{\"foo\":\"bar\",\"baz\":\"qux\"}"},
    {"rfc6902 a12 add to a nonexistent target", JP, NULL, "{\"foo\":\"bar\"}",
     "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", NULL, 0, "doc is missing path: \"/baz/bat\""},
    /* a13 (a duplicate "op") is a parse-level matter: see t_rfc6902_a13 */
    {"rfc6902 a14 ~ escape ordering", JP, NULL, "{\"/\":9,\"~1\":10}",
     "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]", "{\"/\":9,\"~1\":10}"},
    {"rfc6902 a15 strings and numbers differ", JP, NULL, "{\"/\":9,\"~1\":10}",
     "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", NULL, 0, "the test operation failed at /~01"},
    {"rfc6902 a16 add an array value", JP, NULL, "{\"foo\":[\"bar\"]}",
     "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]",
     "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}"},
    {"json: copy", JP, NULL, "{\"a\":{\"b\":1}}", "[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/c\"}]",
     "{\"a\":{\"b\":1},\"c\":{\"b\":1}}"},
    {"json: ~1 addresses a key with a slash", JP, NULL, "{\"metadata\":{\"annotations\":{\"a/b\":\"1\"}}}",
     "[{\"op\":\"replace\",\"path\":\"/metadata/annotations/a~1b\",\"value\":\"2\"}]",
     "{\"metadata\":{\"annotations\":{\"a/b\":\"2\"}}}"},
    {"json: add at the array's end by index", JP, NULL, "{\"a\":[1]}",
     "[{\"op\":\"add\",\"path\":\"/a/1\",\"value\":2}]", "{\"a\":[1,2]}"},
    {"json: add past the array's end", JP, NULL, "{\"a\":[1]}", "[{\"op\":\"add\",\"path\":\"/a/2\",\"value\":2}]",
     NULL, 0, "out of bounds"},
    {"json: - is not an element for remove", JP, NULL, "{\"a\":[1]}", "[{\"op\":\"remove\",\"path\":\"/a/-\"}]",
     NULL, 0, "missing path: \"/a/-\""},
    {"json: leading zeros are not an index", JP, NULL, "{\"a\":[1,2]}",
     "[{\"op\":\"replace\",\"path\":\"/a/01\",\"value\":3}]", NULL, 0, "missing path"},
    {"json: ~2 is not an escape", JP, NULL, "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"/~2\"}]", NULL, 0,
     "'~' must be followed by 0 or 1"},
    {"json: a pointer must start with /", JP, NULL, "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"a\"}]", NULL, 0,
     "must be empty or start with '/'"},
    {"json: move into its own child", JP, NULL, "{\"a\":{\"b\":1}}",
     "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/c\"}]", NULL, 0, "into its own child"},
    {"json: move onto itself", JP, NULL, "{\"a\":{\"b\":1}}", "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
     "{\"a\":{\"b\":1}}"},
    {"json: missing value", JP, NULL, "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\"}]", NULL, 0,
     "missing \"value\""},
    {"json: null is a value", JP, NULL, "{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/b\",\"value\":null}]",
     "{\"a\":1,\"b\":null}"},
    {"json: unknown op", JP, NULL, "{\"a\":1}", "[{\"op\":\"frob\",\"path\":\"/a\"}]", NULL, 0,
     "unknown op \"frob\""},
    {"json: not an array", JP, NULL, "{\"a\":1}", "{\"op\":\"remove\",\"path\":\"/a\"}", NULL, 0,
     "must be an array of operations"},
    {"json: replace of a missing member", JP, NULL, "{\"a\":1}",
     "[{\"op\":\"replace\",\"path\":\"/b\",\"value\":2}]", NULL, 0, "missing path: \"/b\""},
    {"json: a failure in the middle changes nothing", JP, NULL, "{\"a\":1,\"l\":[1,2]}",
     "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},{\"op\":\"remove\",\"path\":\"/l/0\"},"
     "{\"op\":\"test\",\"path\":\"/a\",\"value\":5}]",
     NULL, 0, "the test operation failed at /a"},
    {"json: test compares numbers by value", JP, NULL, "{\"a\":1}",
     "[{\"op\":\"test\",\"path\":\"/a\",\"value\":1.0}]", "{\"a\":1}"},
    {"json: test compares deeply", JP, NULL, "{\"a\":{\"x\":[1,{\"y\":true}]}}",
     "[{\"op\":\"test\",\"path\":\"/a\",\"value\":{\"x\":[1,{\"y\":false}]}}]", NULL, 0, "failed at /a"},
    {"json: replace the whole document", JP, NULL, "{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"b\":2}}]",
     "{\"b\":2}"},
    {"json: remove the whole document", JP, NULL, "{\"a\":1}", "[{\"op\":\"remove\",\"path\":\"\"}]", NULL, 0,
     "whole document"},
};

/* A13: {"op":"add",...,"op":"remove"} is an invalid document; a parser that
 * keeps the last "op" sees a remove of a missing member, which fails too. */
static void t_rfc6902_a13(void)
{
    const char *p = "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"op\":\"remove\"}]";
    json_error_t e;
    json_t *strict = json_loads(p, JSON_REJECT_DUPLICATES, &e);
    CHECK(strict == NULL);
    json_decref(strict);
    json_t *obj = J("{\"foo\":\"bar\"}"), *patch = J(p);
    const char *err = NULL;
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_JSON, NULL, &obj, patch, &err), -EINVAL);
    CHECK(err && strstr(err, "remove operation does not apply"));
    json_t *want = J("{\"foo\":\"bar\"}");
    CHECK(json_equal(obj, want));
    json_decref(want);
    json_decref(obj);
    json_decref(patch);
}

static void t_json_patch_op_cap(void)
{
    json_t *obj = J("{\"a\":1}"), *patch = json_array(), *one = J("{\"op\":\"test\",\"path\":\"/a\",\"value\":1}");
    for (int i = 0; i < AS_PATCH_MAX_OPS; i++)
        json_array_append(patch, one);
    const char *err = NULL;
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_JSON, NULL, &obj, patch, &err), 0);
    json_array_append(patch, one);
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_JSON, NULL, &obj, patch, &err), -EINVAL);
    CHECK(err && strstr(err, "10001 operations"));
    json_decref(one);
    json_decref(patch);
    json_decref(obj);
}

/* 40 copies of a list into itself would hold 2^40 values. */
static void t_json_patch_copy_budget(void)
{
    json_t *obj = J("{\"a\":[0]}"), *patch = json_array(),
           *one = J("{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/a/-\"}");
    for (int i = 0; i < 40; i++)
        json_array_append(patch, one);
    const char *err = NULL;
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_JSON, NULL, &obj, patch, &err), -EINVAL);
    CHECK(err && strstr(err, "copy more than"));
    json_t *want = J("{\"a\":[0]}");
    CHECK(json_equal(obj, want));
    json_decref(want);
    json_decref(one);
    json_decref(patch);
    json_decref(obj);
}

#define POD(containers) "{\"kind\":\"Pod\",\"spec\":{\"containers\":" containers "}}"
#define AB "[{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"b\",\"image\":\"y\"}]"

static const struct pcase strategic_cases[] = {
    {"smp: container merged by name", S, "Pod", POD(AB), "{\"spec\":{\"containers\":[{\"name\":\"b\",\"image\":\"z\"}]}}",
     POD("[{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"b\",\"image\":\"z\"}]")},
    {"smp: a new container goes first (no order given)", S, "Pod", POD(AB),
     "{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"w\"}]}}",
     POD("[{\"name\":\"c\",\"image\":\"w\"},{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"b\",\"image\":\"y\"}]")},
    {"smp: $setElementOrder places a new container", S, "Pod", POD(AB),
     "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}],"
     "\"containers\":[{\"name\":\"c\",\"image\":\"w\"}]}}",
     POD("[{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"b\",\"image\":\"y\"},{\"name\":\"c\",\"image\":\"w\"}]")},
    {"smp: $setElementOrder alone reorders", S, "Pod", POD(AB),
     "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"b\"},{\"name\":\"a\"}]}}",
     POD("[{\"name\":\"b\",\"image\":\"y\"},{\"name\":\"a\",\"image\":\"x\"}]")},
    {"smp: $patch delete removes a container", S, "Pod", POD(AB),
     "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"a\"}],\"containers\":[{\"$patch\":\"delete\",\"name\":\"b\"}]}}",
     POD("[{\"name\":\"a\",\"image\":\"x\"}]")},
    {"smp: $patch replace in a list", S, "Pod", POD(AB),
     "{\"spec\":{\"containers\":[{\"$patch\":\"replace\"},{\"name\":\"c\",\"image\":\"w\"}]}}",
     POD("[{\"name\":\"c\",\"image\":\"w\"}]")},
    {"smp: $patch delete without the merge key", S, "Pod", POD(AB),
     "{\"spec\":{\"containers\":[{\"$patch\":\"delete\",\"image\":\"x\"}]}}", NULL, 0, "no merge key \"name\""},
    {"smp: an item without its merge key", S, "Pod", POD(AB), "{\"spec\":{\"containers\":[{\"image\":\"x\"}]}}",
     NULL, 0, "spec.containers: an item has no merge key \"name\""},
    {"smp: unknown $patch directive", S, "Pod", POD(AB), "{\"spec\":{\"$patch\":\"frob\"}}", NULL, 0,
     "unknown \"$patch\" directive \"frob\""},
    {"smp: env merged by name, new ones after", S, "Deployment",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"i\",\"env\":"
     "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}]}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"env\":"
     "[{\"name\":\"B\",\"value\":\"3\"},{\"name\":\"C\",\"value\":\"4\"}]}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\",\"image\":\"i\",\"env\":"
     "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"3\"},{\"name\":\"C\",\"value\":\"4\"}]}]}}}}"},
    {"smp: null inside a merged item removes the field", S, "Pod",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":\"A\",\"value\":\"1\"}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":\"A\",\"value\":null,"
     "\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":\"A\","
     "\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}}]}]}}"},
    {"smp: deleting the last env var drops env", S, "Pod",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":\"A\",\"value\":\"1\"}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"$patch\":\"delete\",\"name\":\"A\"}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}"},
    {"smp: container ports merged by containerPort", S, "Pod",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"},{\"containerPort\":443}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerPort\":80,\"name\":\"http\"}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\",\"name\":\"http\"},"
     "{\"containerPort\":443}]}]}}"},
    {"smp: init container ports too", S, "Pod",
     "{\"spec\":{\"initContainers\":[{\"name\":\"i\",\"ports\":[{\"containerPort\":1}]}]}}",
     "{\"spec\":{\"initContainers\":[{\"name\":\"i\",\"ports\":[{\"containerPort\":1,\"name\":\"p\"}]}]}}",
     "{\"spec\":{\"initContainers\":[{\"name\":\"i\",\"ports\":[{\"containerPort\":1,\"name\":\"p\"}]}]}}"},
    {"smp: service ports merged by port", S, "Service",
     "{\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":8080},{\"port\":443,\"targetPort\":8443}]}}",
     "{\"spec\":{\"ports\":[{\"port\":443,\"targetPort\":9443}]}}",
     "{\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":8080},{\"port\":443,\"targetPort\":9443}]}}"},
    {"smp: ports of other kinds are replaced", S, "ConfigMap", "{\"spec\":{\"ports\":[{\"port\":80},{\"port\":443}]}}",
     "{\"spec\":{\"ports\":[{\"port\":443,\"x\":1}]}}", "{\"spec\":{\"ports\":[{\"port\":443,\"x\":1}]}}"},
    {"smp: volumeMounts by mountPath", S, "Pod",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"volumeMounts\":[{\"mountPath\":\"/d\",\"name\":\"v\"}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"volumeMounts\":[{\"mountPath\":\"/d\",\"readOnly\":true}]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"volumeMounts\":[{\"mountPath\":\"/d\",\"name\":\"v\",\"readOnly\":true}]}]}}"},
    {"smp: volumes by name with $retainKeys", S, "Pod", "{\"spec\":{\"volumes\":[{\"name\":\"v\",\"emptyDir\":{}}]}}",
     "{\"spec\":{\"volumes\":[{\"$retainKeys\":[\"configMap\",\"name\"],\"name\":\"v\",\"configMap\":{\"name\":\"cm\"}}]}}",
     "{\"spec\":{\"volumes\":[{\"name\":\"v\",\"configMap\":{\"name\":\"cm\"}}]}}"},
    {"smp: imagePullSecrets by name", S, "Pod", "{\"spec\":{\"imagePullSecrets\":[{\"name\":\"a\"}]}}",
     "{\"spec\":{\"imagePullSecrets\":[{\"name\":\"b\"}]}}",
     "{\"spec\":{\"imagePullSecrets\":[{\"name\":\"b\"},{\"name\":\"a\"}]}}"},
    {"smp: tolerations are replaced whole", S, "Pod", "{\"spec\":{\"tolerations\":[{\"key\":\"a\"}]}}",
     "{\"spec\":{\"tolerations\":[{\"key\":\"b\"}]}}", "{\"spec\":{\"tolerations\":[{\"key\":\"b\"}]}}"},
    {"smp: args are replaced whole", S, "Pod", "{\"spec\":{\"containers\":[{\"name\":\"a\",\"args\":[\"x\",\"y\"]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"args\":[\"z\"]}]}}",
     "{\"spec\":{\"containers\":[{\"name\":\"a\",\"args\":[\"z\"]}]}}"},
    {"smp: finalizers merge as a set", S, "ConfigMap", "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
     "{\"metadata\":{\"finalizers\":[\"b\",\"c\"]}}", "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"c\"]}}"},
    {"smp: $deleteFromPrimitiveList", S, "Deployment", "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
     "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"a\"]}}", "{\"metadata\":{\"finalizers\":[\"b\"]}}"},
    {"smp: deleting the last finalizer drops the list", S, "Deployment", "{\"metadata\":{\"finalizers\":[\"a\"]}}",
     "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"a\"]}}", "{\"metadata\":{}}"},
    {"smp: finalizers null clears them", S, "Pod", "{\"metadata\":{\"finalizers\":[\"a\"]}}",
     "{\"metadata\":{\"finalizers\":null}}", "{\"metadata\":{}}"},
    {"smp: finalizer added and removed at once", S, "Pod", "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
     "{\"metadata\":{\"$setElementOrder/finalizers\":[\"b\",\"c\"],\"$deleteFromPrimitiveList/finalizers\":[\"a\"],"
     "\"finalizers\":[\"c\"]}}",
     "{\"metadata\":{\"finalizers\":[\"b\",\"c\"]}}"},
    {"smp: ownerReferences by uid", S, "Pod",
     "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"1\",\"name\":\"x\"},{\"uid\":\"2\",\"name\":\"y\"}]}}",
     "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"2\",\"name\":\"z\"}]}}",
     "{\"metadata\":{\"ownerReferences\":[{\"uid\":\"1\",\"name\":\"x\"},{\"uid\":\"2\",\"name\":\"z\"}]}}"},
    {"smp: conditions by type", S, "Deployment",
     "{\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":\"False\"},{\"type\":\"Progressing\",\"status\":\"True\"}]}}",
     "{\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"}]}}",
     "{\"status\":{\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"},{\"type\":\"Progressing\",\"status\":\"True\"}]}}"},
    {"smp: $patch replace on a map", S, "Deployment", "{\"spec\":{\"selector\":{\"matchLabels\":{\"a\":\"1\",\"b\":\"2\"}}}}",
     "{\"spec\":{\"selector\":{\"matchLabels\":{\"$patch\":\"replace\",\"c\":\"3\"}}}}",
     "{\"spec\":{\"selector\":{\"matchLabels\":{\"c\":\"3\"}}}}"},
    {"smp: $patch delete on a map", S, "Deployment", "{\"spec\":{\"strategy\":{\"type\":\"Recreate\"},\"replicas\":1}}",
     "{\"spec\":{\"strategy\":{\"$patch\":\"delete\"}}}", "{\"spec\":{\"strategy\":{},\"replicas\":1}}"},
    {"smp: $patch merge is the default", S, "Deployment", "{\"spec\":{\"replicas\":1}}",
     "{\"spec\":{\"$patch\":\"merge\",\"paused\":true}}", "{\"spec\":{\"replicas\":1,\"paused\":true}}"},
    {"smp: $retainKeys switches the strategy type", S, "Deployment",
     "{\"spec\":{\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxSurge\":1}}}}",
     "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\",\"rollingUpdate\":null}}}",
     "{\"spec\":{\"strategy\":{\"type\":\"Recreate\"}}}"},
    {"smp: $retainKeys must list the fields set", S, "Deployment",
     "{\"spec\":{\"strategy\":{\"type\":\"RollingUpdate\"}}}",
     "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"rollingUpdate\":{\"maxSurge\":2}}}}", NULL, 0,
     "does not list"},
    {"smp: new subtrees lose directives and nulls", S, "Deployment", "{}",
     "{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"a\"}],"
     "\"containers\":[{\"name\":\"a\",\"image\":\"x\",\"args\":null}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"x\"}]}}}}"},
    {"smp: a new list is taken as sent", S, "Pod", "{\"spec\":{}}",
     "{\"spec\":{\"containers\":[{\"image\":\"x\"},{\"name\":\"a\"},{\"$patch\":\"delete\",\"name\":\"b\"}]}}",
     "{\"spec\":{\"containers\":[{\"image\":\"x\"},{\"name\":\"a\"}]}}"},
    {"smp: deletions from a primitive list come after the merge", S, "Pod", "{\"metadata\":{\"finalizers\":[\"a\"]}}",
     "{\"metadata\":{\"finalizers\":[\"b\"],\"$deleteFromPrimitiveList/finalizers\":[\"b\"]}}",
     "{\"metadata\":{\"finalizers\":[\"a\"]}}"},
    {"smp: custom kinds are refused", S, "ModelDeployment", "{}", "{\"spec\":{}}", NULL, -ENOTSUP,
     "not supported for custom resources"},
    {"smp: no kind is refused", S, NULL, "{}", "{\"spec\":{}}", NULL, -ENOTSUP, "not supported"},
    {"smp: lists of objects and values do not mix", S, "Pod", "{\"metadata\":{\"finalizers\":[\"a\"]}}",
     "{\"metadata\":{\"finalizers\":[{\"x\":1}]}}", NULL, 0, "mixes objects and values"},
    /* What kubectl apply sends after a manifest edit: image changed, env B
     * removed, label tier removed, replicas changed. */
    {"smp: kubectl apply three-way patch of a Deployment", S, "Deployment",
     "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\","
     "\"tier\":\"x\"},\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"old\"}},"
     "\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"strategy\":{\"type\":\"RollingUpdate\","
     "\"rollingUpdate\":{\"maxSurge\":\"25%\",\"maxUnavailable\":\"25%\"}},\"template\":{\"metadata\":{\"labels\":"
     "{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1\",\"env\":[{\"name\":\"A\","
     "\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}],\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}]},"
     "{\"name\":\"side\",\"image\":\"s:1\"}]}}}}",
     "{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"new\"},\"labels\":"
     "{\"tier\":null}},\"spec\":{\"replicas\":3,\"template\":{\"spec\":{\"$setElementOrder/containers\":[{\"name\":"
     "\"web\"},{\"name\":\"side\"}],\"containers\":[{\"$setElementOrder/env\":[{\"name\":\"A\"}],\"env\":[{\"$patch\":"
     "\"delete\",\"name\":\"B\"}],\"image\":\"nginx:2\",\"name\":\"web\"}]}}}}",
     "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\",\"labels\":{\"app\":\"web\"},"
     "\"annotations\":{\"kubectl.kubernetes.io/last-applied-configuration\":\"new\"}},"
     "\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"strategy\":{\"type\":\"RollingUpdate\","
     "\"rollingUpdate\":{\"maxSurge\":\"25%\",\"maxUnavailable\":\"25%\"}},\"template\":{\"metadata\":{\"labels\":"
     "{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:2\",\"env\":[{\"name\":\"A\","
     "\"value\":\"1\"}],\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}]},"
     "{\"name\":\"side\",\"image\":\"s:1\"}]}}}}"},
    /* kubectl apply of a manifest that adds a sidecar between two containers */
    {"smp: kubectl apply inserting a container in the middle", S, "Deployment",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"1\"},{\"name\":\"c\",\"image\":\"3\"}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"}],"
     "\"containers\":[{\"name\":\"b\",\"image\":\"2\"}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"1\"},{\"name\":\"b\",\"image\":\"2\"},"
     "{\"name\":\"c\",\"image\":\"3\"}]}}}}"},
};

/* Cases from apimachinery's strategicpatch tests (customStrategicMergePatch
 * and the three-way results), with Pod containers standing for their
 * mergingList (merge key name) and finalizers for mergingIntList. */
#define ML(items) "{\"spec\":{\"containers\":" items "}}"
#define ML_P(order, items) "{\"spec\":{\"$setElementOrder/containers\":" order ",\"containers\":" items "}}"
#define IL(items) "{\"metadata\":{\"finalizers\":" items "}}"
static const struct pcase k8s_cases[] = {
    {"k8s: unique scalars when merging lists", S, "Pod", IL("[1,2]"), IL("[2,3]"), IL("[1,2,3]")},
    {"k8s: delete all items from merging list", S, "Pod", ML("[{\"name\":1},{\"name\":2}]"),
     ML("[{\"$patch\":\"replace\"}]"), ML("[]")},
    {"k8s: merge empty merging lists", S, "Pod", ML("[]"), ML("[]"), ML("[]")},
    {"k8s: delete all duplicate entries in a merging list", S, "Pod",
     ML("[{\"name\":1},{\"name\":1},{\"name\":2,\"value\":\"a\"},{\"name\":3},{\"name\":3}]"),
     ML("[{\"name\":1,\"$patch\":\"delete\"},{\"name\":3,\"$patch\":\"delete\"}]"), ML("[{\"name\":2,\"value\":\"a\"}]")},
    {"k8s: preserve the order from the patch in a merging list", S, "Pod",
     ML("[{\"name\":1},{\"name\":2,\"value\":\"b\"},{\"name\":3}]"),
     ML("[{\"name\":3,\"value\":\"c\"},{\"name\":1,\"value\":\"a\"},{\"name\":2,\"other\":\"x\"}]"),
     ML("[{\"name\":3,\"value\":\"c\"},{\"name\":1,\"value\":\"a\"},{\"name\":2,\"value\":\"b\",\"other\":\"x\"}]")},
    {"k8s: preserve the order from the patch in a merging list 2", S, "Pod",
     ML("[{\"name\":1},{\"name\":2,\"value\":\"b\"},{\"name\":3}]"),
     ML("[{\"name\":3,\"value\":\"c\"},{\"name\":1,\"value\":\"a\"}]"),
     ML("[{\"name\":2,\"value\":\"b\"},{\"name\":3,\"value\":\"c\"},{\"name\":1,\"value\":\"a\"}]")},
    {"k8s: preserve the order from the patch in a merging int list", S, "Pod", IL("[1,2,3]"), IL("[3,1,2]"),
     IL("[3,1,2]")},
    {"k8s: preserve the order from the patch in a merging int list 2", S, "Pod", IL("[1,2,3]"), IL("[3,1]"),
     IL("[2,3,1]")},
    {"k8s: $setElementOrder names an item the list lacks", S, "Pod", ML("[{\"name\":1},{\"name\":3}]"),
     ML_P("[{\"name\":3},{\"name\":2},{\"name\":1}]", "[{\"name\":3,\"value\":3},{\"name\":1,\"value\":1}]"),
     ML("[{\"name\":3,\"value\":3},{\"name\":1,\"value\":1}]")},
    {"k8s: $setElementOrder names an int the list lacks", S, "Pod", IL("[1,3]"),
     "{\"metadata\":{\"$setElementOrder/finalizers\":[3,2,1]}}", IL("[3,1]")},
    {"k8s: $setElementOrder and the patch list disagree", S, "Pod", ML("[{\"name\":1},{\"name\":3},{\"name\":2}]"),
     ML_P("[{\"name\":1},{\"name\":2},{\"name\":3}]", "[{\"name\":3,\"value\":3},{\"name\":1,\"value\":1}]"), NULL, 0,
     "doesn't match"},
    {"k8s: $setElementOrder and the int patch list disagree", S, "Pod", IL("[1,3,2]"),
     "{\"metadata\":{\"$setElementOrder/finalizers\":[1,2,3],\"finalizers\":[3,1]}}", NULL, 0, "doesn't match"},
    {"k8s: missing merge key", S, "Pod", ML("[{\"name\":1,\"value\":\"a\"}]"), ML("[{\"value\":\"b\"}]"), NULL, 0,
     "no merge key"},
    {"k8s: $deleteFromPrimitiveList of a missing item", S, "Pod", IL("[1,2]"),
     "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[3]}}", IL("[1,2]")},
    {"k8s: $deleteFromPrimitiveList of a missing list", S, "Pod", "{\"metadata\":{\"foo\":[\"bar\"]}}",
     "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[3]}}", "{\"metadata\":{\"foo\":[\"bar\"]}}"},
    {"k8s: $deleteFromPrimitiveList on a list without merge strategy", S, "Pod", "{\"spec\":{\"l\":[1,2,3]}}",
     "{\"spec\":{\"$deleteFromPrimitiveList/l\":[2]}}", "{\"spec\":{\"l\":[1,3]}}"},
    {"k8s: nested patch merge with empty list", S, "Pod", "{\"name\":\"hi\",\"spec\":{\"containers\":[{\"name\":\"hello2\"}]}}",
     ML_P("[{\"name\":\"hello\"},{\"name\":\"doesntexist\"}]",
          "[{\"name\":\"hello\"},{\"$patch\":\"delete\",\"name\":\"doesntexist\"}]"),
     "{\"name\":\"hi\",\"spec\":{\"containers\":[{\"name\":\"hello\"},{\"name\":\"hello2\"}]}}"},
    {"k8s: delete items in lists of scalars", S, "Pod", IL("[1,2,3,4]"),
     "{\"metadata\":{\"$setElementOrder/finalizers\":[1,2],\"$deleteFromPrimitiveList/finalizers\":[3]}}",
     IL("[1,2,4]")},
    {"k8s: delete all duplicate items in lists of scalars", S, "Pod", IL("[1,2,3,3,4]"),
     "{\"metadata\":{\"$setElementOrder/finalizers\":[1,2],\"$deleteFromPrimitiveList/finalizers\":[3]}}",
     IL("[1,2,4]")},
    {"k8s: merge lists of maps", S, "Pod", ML("[{\"name\":1,\"other\":\"a\"},{\"name\":2,\"value\":2,\"other\":\"b\"}]"),
     ML_P("[{\"name\":4},{\"name\":1},{\"name\":2},{\"name\":3}]", "[{\"name\":4,\"value\":4},{\"name\":3,\"value\":3}]"),
     ML("[{\"name\":4,\"value\":4},{\"name\":1,\"other\":\"a\"},{\"name\":2,\"value\":2,\"other\":\"b\"},"
        "{\"name\":3,\"value\":3}]")},
    {"k8s: add field to map in merging list with conflict", S, "Pod",
     ML("[{\"name\":1,\"other\":\"a\"},{\"name\":3,\"value\":2,\"other\":\"b\"}]"),
     ML_P("[{\"name\":1},{\"name\":2}]", "[{\"name\":1,\"value\":1},{\"name\":2,\"value\":2}]"),
     ML("[{\"name\":1,\"other\":\"a\",\"value\":1},{\"name\":2,\"value\":2},{\"name\":3,\"value\":2,\"other\":\"b\"}]")},
    {"k8s: delete missing map from merging list with conflict", S, "Pod", ML("[{\"name\":3,\"other\":\"a\"}]"),
     ML_P("[{\"name\":2}]", "[{\"name\":2},{\"name\":1,\"$patch\":\"delete\"}]"),
     ML("[{\"name\":2},{\"name\":3,\"other\":\"a\"}]")},
    {"k8s: add map and delete map from merging list", S, "Pod",
     ML("[{\"name\":1},{\"name\":2,\"other\":\"b\"},{\"name\":4,\"other\":\"c\"}]"),
     ML_P("[{\"name\":2},{\"name\":3}]", "[{\"name\":3},{\"name\":1,\"$patch\":\"delete\"}]"),
     ML("[{\"name\":2,\"other\":\"b\"},{\"name\":4,\"other\":\"c\"},{\"name\":3}]")},
    {"k8s: add map and delete map from merging list with conflict", S, "Pod",
     ML("[{\"name\":1,\"other\":\"a\"},{\"name\":4,\"other\":\"c\"}]"),
     ML_P("[{\"name\":2},{\"name\":3}]", "[{\"name\":2},{\"name\":3},{\"name\":1,\"$patch\":\"delete\"}]"),
     ML("[{\"name\":4,\"other\":\"c\"},{\"name\":2},{\"name\":3}]")},
    {"k8s: delete map from merging list", S, "Pod", ML("[{\"name\":1},{\"name\":2,\"other\":\"b\"}]"),
     ML_P("[{\"name\":2}]", "[{\"name\":1,\"$patch\":\"delete\"}]"), ML("[{\"name\":2,\"other\":\"b\"}]")},
    {"k8s: replace non merging list nested in merging list", S, "Pod",
     "{\"spec\":{\"containers\":[{\"name\":1,\"other\":\"a\",\"args\":[{\"name\":1},{\"name\":2,\"value\":2}]},"
     "{\"name\":2,\"other\":\"b\"}]}}",
     ML_P("[{\"name\":1},{\"name\":2}]", "[{\"name\":1,\"args\":[{\"name\":1,\"value\":1}]}]"),
     "{\"spec\":{\"containers\":[{\"name\":1,\"other\":\"a\",\"args\":[{\"name\":1,\"value\":1}]},"
     "{\"name\":2,\"other\":\"b\"}]}}"},
};

static const struct pcase apply_cases[] = {
    {"apply: creates from nothing", A, "ConfigMap", "{}",
     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"},\"data\":{\"a\":\"1\"}}",
     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"x\"},\"data\":{\"a\":\"1\"}}"},
    {"apply: maps merge", A, "ConfigMap", "{\"data\":{\"a\":\"1\",\"b\":\"2\"}}", "{\"data\":{\"b\":\"3\"}}",
     "{\"data\":{\"a\":\"1\",\"b\":\"3\"}}"},
    {"apply: null removes", A, "ConfigMap", "{\"data\":{\"a\":\"1\",\"b\":\"2\"}}", "{\"data\":{\"a\":null}}",
     "{\"data\":{\"b\":\"2\"}}"},
    {"apply: lists of custom kinds are replaced", A, "ModelDeployment",
     "{\"spec\":{\"strategy\":{\"canary\":{\"steps\":[{\"setWeight\":5},{\"setWeight\":50}]}},\"replicas\":2}}",
     "{\"spec\":{\"strategy\":{\"canary\":{\"steps\":[{\"setWeight\":10}]}}}}",
     "{\"spec\":{\"strategy\":{\"canary\":{\"steps\":[{\"setWeight\":10}]}},\"replicas\":2}}"},
    {"apply: no kind means no merge keys", A, NULL, "{\"a\":[1,2]}", "{\"a\":[3]}", "{\"a\":[3]}"},
    {"apply: containers merge by name", A, "Deployment",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"1\",\"resources\":{\"limits\":"
     "{\"cpu\":\"1\"}}},{\"name\":\"side\",\"image\":\"s\"}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"2\"}]}}}}",
     "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"2\",\"resources\":{\"limits\":"
     "{\"cpu\":\"1\"}}},{\"name\":\"side\",\"image\":\"s\"}]}}}}"},
    {"apply: new containers are appended", A, "Pod", POD(AB),
     "{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"w\"}]}}",
     POD("[{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"b\",\"image\":\"y\"},{\"name\":\"c\",\"image\":\"w\"}]")},
    {"apply: finalizers are a set", A, "Pod", "{\"metadata\":{\"finalizers\":[\"a\"]}}",
     "{\"metadata\":{\"finalizers\":[\"b\",\"a\"]}}", "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}"},
    {"apply: an item without its merge key", A, "Pod", POD(AB), "{\"spec\":{\"containers\":[{\"image\":\"w\"}]}}",
     NULL, 0, "spec.containers[0]: the item has no \"name\""},
    {"apply: type change replaces", A, "ConfigMap", "{\"data\":{\"a\":{\"b\":1}}}", "{\"data\":{\"a\":\"s\"}}",
     "{\"data\":{\"a\":\"s\"}}"},
    {"apply: a list patch is refused", A, "ConfigMap", "{}", "[]", NULL, 0, "must be a JSON object"},
};

static void t_type_parse(void)
{
    static const struct {
        const char *ct;
        int rc;
        enum as_patch_type type;
    } rows[] = {
        {"application/merge-patch+json", 0, AS_PATCH_MERGE},
        {"application/merge-patch+json; charset=utf-8", 0, AS_PATCH_MERGE},
        {" application/json-patch+json ", 0, AS_PATCH_JSON},
        {"APPLICATION/STRATEGIC-MERGE-PATCH+JSON", 0, AS_PATCH_STRATEGIC},
        {"application/apply-patch+yaml", 0, AS_PATCH_APPLY},
        {"application/json", -EINVAL, 0},
        {"application/merge-patch+jsonx", -EINVAL, 0},
        {"", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum as_patch_type t = 0;
        int rc = as_patch_type_parse(rows[i].ct, strlen(rows[i].ct), &t);
        CHECK_EQ_INT(rc, rows[i].rc);
        if (rc == 0)
            CHECK_EQ_INT(t, rows[i].type);
    }
    /* only len bytes count */
    enum as_patch_type t = 0;
    CHECK_EQ_INT(as_patch_type_parse("application/merge-patch+jsonXYZ", 28, &t), 0);
    CHECK_EQ_INT(t, AS_PATCH_MERGE);
    CHECK_EQ_INT(as_patch_type_parse(NULL, 0, &t), -EINVAL);
}

/* Nesting past the cap is an error, not a stack overflow. */
static void t_depth_cap(void)
{
    enum as_patch_type types[] = {AS_PATCH_MERGE, AS_PATCH_STRATEGIC, AS_PATCH_APPLY};
    for (size_t t = 0; t < 3; t++) {
        json_t *patch = json_object(), *cur = patch;
        for (int i = 0; i < 300; i++) {
            json_t *n = json_object();
            json_object_set_new(cur, "a", n);
            cur = n;
        }
        json_t *obj = J("{\"x\":1}");
        const char *err = NULL;
        CHECK_EQ_INT(as_patch_apply(types[t], "Pod", &obj, patch, &err), -EINVAL);
        CHECK(err && strstr(err, "nested more than"));
        json_t *want = J("{\"x\":1}");
        CHECK(json_equal(obj, want));
        json_decref(want);
        json_decref(obj);
        json_decref(patch);
    }
}

/* Long keyed lists merge in linear time, in Kubernetes' order. */
static void t_long_lists(void)
{
    json_t *obj = J("{\"spec\":{\"containers\":[]}}"), *patch = J("{\"spec\":{\"containers\":[]}}");
    json_t *oc = json_object_get(json_object_get(obj, "spec"), "containers");
    json_t *pc = json_object_get(json_object_get(patch, "spec"), "containers");
    char name[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(name, sizeof name, "o%d", i);
        json_array_append_new(oc, json_pack("{s:s}", "name", name));
        snprintf(name, sizeof name, "p%d", i);
        json_array_append_new(pc, json_pack("{s:s}", "name", name));
    }
    const char *err = NULL;
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_STRATEGIC, "Pod", &obj, patch, &err), 0);
    json_t *l = json_object_get(json_object_get(obj, "spec"), "containers");
    CHECK_EQ_INT(json_array_size(l), 40000);
    /* new items first (the patch's order), then the server's */
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 0), "name")), "p0");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 20000), "name")), "o0");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(l, 39999), "name")), "o19999");
    /* update every 7th old item, delete every 11th */
    json_array_clear(pc);
    for (int i = 0; i < 20000; i += 7) {
        snprintf(name, sizeof name, "o%d", i);
        json_array_append_new(pc, json_pack("{s:s,s:s}", "name", name, "image", "x"));
    }
    for (int i = 1; i < 20000; i += 11) {
        snprintf(name, sizeof name, "o%d", i);
        json_array_append_new(pc, json_pack("{s:s,s:s}", "name", name, "$patch", "delete"));
    }
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_STRATEGIC, "Pod", &obj, patch, &err), 0);
    l = json_object_get(json_object_get(obj, "spec"), "containers");
    /* deleted first, then merged: an item both deleted and updated comes back */
    size_t deleted = 0;
    for (int i = 1; i < 20000; i += 11)
        deleted += i % 7 != 0;
    CHECK_EQ_INT(json_array_size(l), 40000 - deleted);
    size_t images = 0;
    for (size_t i = 0; i < json_array_size(l); i++)
        images += json_object_get(json_array_get(l, i), "image") != NULL;
    size_t updated = 0;
    for (int i = 0; i < 20000; i += 7)
        updated++;
    CHECK_EQ_INT(images, updated);
    json_decref(obj);
    json_decref(patch);
}

/* The caller's object is replaced only on success: another reference to
 * the old one still sees the old state. */
static void t_replaced_on_success(void)
{
    json_t *obj = J("{\"a\":1}"), *keep = json_incref(obj), *patch = J("{\"a\":2}");
    const char *err = NULL;
    CHECK_EQ_INT(as_patch_apply(AS_PATCH_MERGE, NULL, &obj, patch, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(obj, "a")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(keep, "a")), 1);
    json_decref(keep);
    json_decref(obj);
    json_decref(patch);
}

int main(void)
{
    run_cases(merge_cases, sizeof merge_cases / sizeof merge_cases[0]);
    RUN(t_rfc7386_non_objects);
    run_cases(json_cases, sizeof json_cases / sizeof json_cases[0]);
    RUN(t_rfc6902_a13);
    RUN(t_json_patch_op_cap);
    RUN(t_json_patch_copy_budget);
    run_cases(strategic_cases, sizeof strategic_cases / sizeof strategic_cases[0]);
    run_cases(k8s_cases, sizeof k8s_cases / sizeof k8s_cases[0]);
    run_cases(apply_cases, sizeof apply_cases / sizeof apply_cases[0]);
    RUN(t_type_parse);
    RUN(t_depth_cap);
    RUN(t_replaced_on_success);
    RUN(t_long_lists);
    return test_done();
}
