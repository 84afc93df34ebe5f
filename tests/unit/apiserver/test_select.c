/* Unit tests for apiserver/select.c: every label operator and its
 * matching rules, Kubernetes' parse errors word for word (the texts kubectl
 * shows from a real API server), field selectors over dotted paths with
 * escapes, the supported-path check and pinned(). */
#include "apiserver/select.c"
#include "tests/unit/test.h"

static json_t *pod(void)
{
    json_error_t e;
    json_t *o = json_loads(
        "{\"apiVersion\":\"v1\",\"kind\":\"Event\","
        "\"metadata\":{\"name\":\"web-1\",\"namespace\":\"prod\","
        " \"labels\":{\"app\":\"web\",\"tier\":\"frontend\",\"replicas\":\"3\",\"empty\":\"\","
        "  \"example.com/owner\":\"team-a\",\"bogus\":7}},"
        "\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"web-1\",\"uid\":\"u-1\",\"namespace\":\"prod\"},"
        "\"spec\":{\"replicas\":3,\"paused\":false,\"note\":\"a,b=c\\\\d\"},"
        "\"status\":{\"phase\":\"Running\"}}",
        0, &e);
    if (!o)
        printf("# fixture: %s\n", e.text);
    return o;
}

/* --- labels: matching ------------------------------------------------------ */

struct match_case {
    const char *sel;
    int want;
};

static void t_label_match(void)
{
    static const struct match_case cases[] = {
        {"", 1},
        {"app=web", 1},
        {"app==web", 1},
        {"app=db", 0},
        {"app!=db", 1},
        {"app!=web", 0},
        {"missing!=x", 1},          /* != holds when the label is absent */
        {"app in (web,db)", 1},
        {"app in (db)", 0},
        {"missing in (a)", 0},
        {"app notin (db,cache)", 1},
        {"app notin (web)", 0},
        {"missing notin (web)", 1},
        {"app", 1},
        {"missing", 0},
        {"!missing", 1},
        {"!app", 0},
        {"replicas>2", 1},
        {"replicas>3", 0},
        {"replicas<4", 1},
        {"replicas<3", 0},
        {"app>1", 0},               /* not an integer label: no match */
        {"missing<9", 0},
        {"empty=", 1},               /* exists with the empty value */
        {"empty", 1},
        {"empty in ()", 1},          /* () is the set {""} */
        {"app in ()", 0},
        {"empty in (,x)", 1},
        {"example.com/owner=team-a", 1},
        {"app=web,tier=frontend", 1},
        {"app=web,tier=backend", 0},
        {"  app = web ,  tier in ( frontend , x )  ", 1},
        {"x in (foo,,baz),app,empty notin ()", 0},   /* the doc's example: empty is "" */
        {"bogus", 0},                /* a non-string label value counts as absent */
        {"!bogus", 1},
        {"in in (in),app", 0},       /* "in" as key and value */
        {"app in (in,web)", 1},
        {"notin notin (notin)", 1},
    };
    json_t *o = pod();
    REQUIRE(o);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct as_selector *sel = NULL;
        const char *err = NULL;
        int rc = as_label_selector_parse(cases[i].sel, &sel, &err);
        char name[160];
        snprintf(name, sizeof name, "label selector \"%s\" %s", cases[i].sel,
                 cases[i].want ? "matches" : "does not match");
        if (rc != 0)
            printf("# parse error: %s\n", err ? err : "?");
        test_report(name, rc == 0 && as_selector_match(sel, o) == cases[i].want);
        as_selector_free(sel);
    }
    json_decref(o);
}

static void t_label_null(void)
{
    struct as_selector *sel = (struct as_selector *)1;
    const char *err = "x";
    json_t *o = pod();
    CHECK_EQ_INT(as_label_selector_parse(NULL, &sel, &err), 0);
    CHECK(sel != NULL && err == NULL);
    CHECK_EQ_INT(as_selector_match(sel, o), 1);
    CHECK(as_selector_pinned(sel, "metadata.name") == NULL);
    as_selector_free(sel);
    CHECK_EQ_INT(as_selector_match(NULL, o), 1);
    /* an object without labels or metadata */
    CHECK_EQ_INT(as_label_selector_parse("!a,b!=c,d notin (e)", &sel, &err), 0);
    json_decref(o);
    o = json_object();
    CHECK_EQ_INT(as_selector_match(sel, o), 1);
    as_selector_free(sel);
    json_decref(o);
}

/* --- labels: errors ------------------------------------------------------------ */

struct err_case {
    const char *sel, *msg;
};

#define QN_REGEX "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is " \
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
#define QN_TEXT "must consist of alphanumeric characters, '-', '_' or '.', and must start and " \
                "end with an alphanumeric character " QN_REGEX
#define LV_TEXT "a valid label must be an empty string or consist of alphanumeric characters, " \
                "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. " \
                "'MyValue',  or 'my_value',  or '12345', regex used for validation is " \
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"

static void t_label_errors(void)
{
    static const struct err_case cases[] = {
        {"a=b=c", "found '=', expected: ',' or 'end of string'"},
        {"a,", "found '', expected: identifier after ','"},
        {"a,,b", "found ',', expected: identifier after ','"},
        {"=a", "found '=', expected: !, identifier, or 'end of string'"},
        {"(a)", "found '(', expected: !, identifier, or 'end of string'"},
        {"a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"},
        {"a >= 3", "unable to parse requirement: found '=', expected: identifier"},
        {"a in b", "unable to parse requirement: found 'b' expected: '('"},
        {"a in (b", "unable to parse requirement: found '', expected: ',' or ')'"},
        {"a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"},
        {"a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"},
        {"a in (b,=)", "unable to parse requirement: found '=', expected: ',', or identifier"},
        {"a notin", "unable to parse requirement: found '' expected: '('"},
        {"!", "unable to parse requirement: found '', expected: identifier"},
        {"!=a", "found '!=', expected: !, identifier, or 'end of string'"},
        {"!a=b", "found '=', expected: ',' or 'end of string'"},
        {"a=(b)", "unable to parse requirement: found '(', expected: identifier"},
        /* as kubectl shows them from a real cluster */
        {"app:monolith",
         "unable to parse requirement: <nil>: Invalid value: \"app:monolith\": name part " QN_TEXT},
        {"a/b/c ?=? def",
         "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name " QN_TEXT
         " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"},
        {"app.kubernetes_io/name=vault",
         "unable to parse requirement: <nil>: Invalid value: \"app.kubernetes_io/name\": prefix "
         "part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
         "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
         "regex used for validation is "
         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"},
        {"/x", "unable to parse requirement: <nil>: Invalid value: \"/x\": prefix part must be "
               "non-empty"},
        {"x/", "unable to parse requirement: <nil>: Invalid value: \"x/\": name part must be "
               "non-empty; name part " QN_TEXT},
        {"-a", "unable to parse requirement: <nil>: Invalid value: \"-a\": name part " QN_TEXT},
        {"k\x01", "unable to parse requirement: <nil>: Invalid value: \"k\\x01\": name part " QN_TEXT},
        {"app=demo-{nginx}",
         "unable to parse requirement: values[0][app]: Invalid value: \"demo-{nginx}\": " LV_TEXT},
        {"environment>qa",
         "unable to parse requirement: values[0]: Invalid value: \"qa\": for 'Gt', 'Lt' "
         "operators, the value must be an integer"},
        {"n<99999999999999999999",
         "unable to parse requirement: values[0]: Invalid value: \"99999999999999999999\": for "
         "'Gt', 'Lt' operators, the value must be an integer"},
        {"k in (b_,a_,ok)",
         "unable to parse requirement: [values[0][k]: Invalid value: \"a_\": " LV_TEXT
         ", values[1][k]: Invalid value: \"b_\": " LV_TEXT "]"},
        {"k=\"quoted\"", "unable to parse requirement: values[0][k]: Invalid value: "
                         "\"\\\"quoted\\\"\": " LV_TEXT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct as_selector *sel = (struct as_selector *)1;
        const char *err = NULL;
        int rc = as_label_selector_parse(cases[i].sel, &sel, &err);
        char name[160];
        int ok = rc == -EINVAL && sel == NULL && err && strcmp(err, cases[i].msg) == 0;
        snprintf(name, sizeof name, "label selector error: %s", cases[i].sel);
        if (!ok)
            printf("# rc %d\n#  got: %s\n# want: %s\n", rc, err ? err : "(null)", cases[i].msg);
        test_report(name, ok);
    }
}

static void t_label_long(void)
{
    char key[128], sel[256];
    const char *err = NULL;
    struct as_selector *s = NULL;
    memset(key, 'k', 64);
    key[64] = '\0';
    snprintf(sel, sizeof sel, "%s=v", key);
    CHECK_EQ_INT(as_label_selector_parse(sel, &s, &err), -EINVAL);
    CHECK(err && strstr(err, "name part must be no more than 63 characters"));
    key[63] = '\0';
    snprintf(sel, sizeof sel, "%s=v", key);
    CHECK_EQ_INT(as_label_selector_parse(sel, &s, &err), 0);
    as_selector_free(s);
    snprintf(sel, sizeof sel, "k=%s", key);         /* 63-character value */
    CHECK_EQ_INT(as_label_selector_parse(sel, &s, &err), 0);
    as_selector_free(s);
    snprintf(sel, sizeof sel, "k=%sv", key);
    CHECK_EQ_INT(as_label_selector_parse(sel, &s, &err), -EINVAL);
    CHECK(err && strstr(err, "values[0][k]: Invalid value: ") &&
          strstr(err, ": must be no more than 63 characters") && !strstr(err, "; "));
    /* a very long selector is refused before parsing */
    {
        size_t n = AS_SELECTOR_MAX + 10;
        char *big = malloc(n + 1);
        REQUIRE(big);
        memset(big, 'a', n);
        big[n] = '\0';
        CHECK_EQ_INT(as_label_selector_parse(big, &s, &err), -EINVAL);
        CHECK(err && strstr(err, "too long"));
        CHECK_EQ_INT(as_field_selector_parse(big, &s, &err), -EINVAL);
        free(big);
    }
}

/* --- fields ---------------------------------------------------------------------- */

static void t_field_match(void)
{
    static const struct match_case cases[] = {
        {"", 1},
        {",", 1},
        {"metadata.name=web-1", 1},
        {"metadata.name==web-1", 1},
        {"metadata.name=web-2", 0},
        {"metadata.name!=web-2", 1},
        {"metadata.name!=web-1", 0},
        {"metadata.namespace=prod,metadata.name=web-1", 1},
        {"metadata.namespace=prod,metadata.name=web-1,", 1},
        {"metadata.namespace=dev,metadata.name=web-1", 0},
        {"involvedObject.kind=Pod,involvedObject.uid=u-1,involvedObject.name=web-1,"
         "involvedObject.namespace=prod", 1},
        {"involvedObject.uid=u-2", 0},
        {"status.phase=Running", 1},
        {"spec.missing=", 1},        /* a missing field compares as "" */
        {"spec.missing!=", 0},
        {"spec.missing=x", 0},
        {"spec.replicas=3", 1},      /* integers in decimal */
        {"spec.paused=false", 1},
        {"spec=", 1},                /* an object is not a value: "" */
        {"metadata.name.x=", 1},     /* a path through a string */
        {"spec.note=a\\,b\\=c\\\\d", 1},   /* escapes */
        {"spec.note!=a\\,b\\=c\\\\d", 0},
        {"metadata.name=", 0},
    };
    json_t *o = pod();
    REQUIRE(o);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct as_selector *sel = NULL;
        const char *err = NULL;
        int rc = as_field_selector_parse(cases[i].sel, &sel, &err);
        char name[200];
        snprintf(name, sizeof name, "field selector \"%s\" %s", cases[i].sel,
                 cases[i].want ? "matches" : "does not match");
        if (rc != 0)
            printf("# parse error: %s\n", err ? err : "?");
        test_report(name, rc == 0 && as_selector_match(sel, o) == cases[i].want);
        as_selector_free(sel);
    }
    json_decref(o);
}

static void t_field_errors(void)
{
    static const struct err_case cases[] = {
        {"metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"},
        {"b,a=1", "invalid selector: 'b,a=1'; can't understand 'b'"},
        {"a=1,zz", "invalid selector: 'a=1,zz'; can't understand 'zz'"},
        {"a=b=c", "invalid field selector: unescaped character in value: 61"},
        {"a==b,c=,d", "invalid selector: 'a==b,c=,d'; can't understand 'd'"},
        {"a!=b=", "invalid field selector: unescaped character in value: 61"},
        {"a=b\\x", "invalid field selector: invalid escape sequence: \\x"},
        {"a=b\\", "invalid field selector: invalid escape sequence: \\"},
        {"a=\\\xc3\xa9", "invalid field selector: invalid escape sequence: \\\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct as_selector *sel = (struct as_selector *)1;
        const char *err = NULL;
        int rc = as_field_selector_parse(cases[i].sel, &sel, &err);
        char name[160];
        int ok = rc == -EINVAL && sel == NULL && err && strcmp(err, cases[i].msg) == 0;
        snprintf(name, sizeof name, "field selector error: %s", cases[i].sel);
        if (!ok)
            printf("# rc %d\n#  got: %s\n# want: %s\n", rc, err ? err : "(null)", cases[i].msg);
        test_report(name, ok);
    }
}

static void t_field_check(void)
{
    static const char *const cr_paths[] = {"metadata.name", "metadata.namespace", NULL};
    struct as_selector *sel = NULL;
    const char *err = NULL;
    CHECK_EQ_INT(as_field_selector_parse("metadata.name=a,metadata.namespace!=b", &sel, &err), 0);
    CHECK_EQ_INT(as_field_selector_check(sel, cr_paths, &err), 0);
    as_selector_free(sel);
    CHECK_EQ_INT(as_field_selector_parse("metadata.name=a,spec.x=1", &sel, &err), 0);
    CHECK_EQ_INT(as_field_selector_check(sel, cr_paths, &err), -EINVAL);
    CHECK_EQ_STR(err, "field label not supported: spec.x");
    as_selector_free(sel);
    /* no trimming: the space is part of the path, as in Kubernetes */
    CHECK_EQ_INT(as_field_selector_parse("metadata.name =a", &sel, &err), 0);
    CHECK_EQ_INT(as_field_selector_check(sel, cr_paths, &err), -EINVAL);
    CHECK_EQ_STR(err, "field label not supported: metadata.name ");
    as_selector_free(sel);
    CHECK_EQ_INT(as_field_selector_parse("=a", &sel, &err), 0);
    CHECK_EQ_INT(as_field_selector_check(sel, cr_paths, &err), -EINVAL);
    CHECK_EQ_STR(err, "field label not supported: ");
    as_selector_free(sel);
    CHECK_EQ_INT(as_field_selector_parse("", &sel, &err), 0);
    CHECK_EQ_INT(as_field_selector_check(sel, cr_paths, &err), 0);
    as_selector_free(sel);
}

static void t_pinned(void)
{
    struct as_selector *sel = NULL;
    const char *err = NULL;
    CHECK_EQ_INT(as_field_selector_parse("metadata.namespace=prod,metadata.name==web-1", &sel,
                                         &err), 0);
    CHECK_EQ_STR(as_selector_pinned(sel, "metadata.name"), "web-1");
    CHECK_EQ_STR(as_selector_pinned(sel, "metadata.namespace"), "prod");
    CHECK(as_selector_pinned(sel, "spec.x") == NULL);
    as_selector_free(sel);
    CHECK_EQ_INT(as_field_selector_parse("metadata.name!=web-1", &sel, &err), 0);
    CHECK(as_selector_pinned(sel, "metadata.name") == NULL);
    as_selector_free(sel);
    CHECK_EQ_INT(as_field_selector_parse("metadata.name=a\\,b", &sel, &err), 0);
    CHECK_EQ_STR(as_selector_pinned(sel, "metadata.name"), "a,b");       /* unescaped */
    as_selector_free(sel);
    /* a label selector pins no field */
    CHECK_EQ_INT(as_label_selector_parse("metadata.name=x", &sel, &err), 0);
    CHECK(as_selector_pinned(sel, "metadata.name") == NULL);
    as_selector_free(sel);
    CHECK(as_selector_pinned(NULL, "metadata.name") == NULL);
}

int main(void)
{
    RUN(t_label_match);
    RUN(t_label_null);
    RUN(t_label_errors);
    RUN(t_label_long);
    RUN(t_field_match);
    RUN(t_field_errors);
    RUN(t_field_check);
    RUN(t_pinned);
    return test_done();
}
