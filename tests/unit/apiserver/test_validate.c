/* apiserver/validate.c and apiserver/util.c: Kubernetes' name and label
 * syntax with its messages, metadata shape checks, built-in required
 * fields and defaults, Status errors as Kubernetes words them, URL
 * decoding, RFC 3339 times, UUIDs and dotted JSON paths. */
#include "apiserver/util.c"
#include "apiserver/validate.c"

#include "tests/unit/test.h"

static const struct as_resource cm_res = {
    .group = "", .version = "v1", .resource = "configmaps", .kind = "ConfigMap",
    .list_kind = "ConfigMapList", .gr = "/configmaps", .namespaced = 1, .builtin = 1,
};
static const struct as_resource ns_res = {
    .group = "", .version = "v1", .resource = "namespaces", .kind = "Namespace",
    .list_kind = "NamespaceList", .gr = "/namespaces", .builtin = 1,
};
static const struct as_resource svc_res = {
    .group = "", .version = "v1", .resource = "services", .kind = "Service",
    .list_kind = "ServiceList", .gr = "/services", .namespaced = 1, .builtin = 1,
};
static const struct as_resource deploy_res = {
    .group = "apps", .version = "v1", .resource = "deployments", .kind = "Deployment",
    .list_kind = "DeploymentList", .gr = "apps/deployments", .namespaced = 1, .builtin = 1,
};

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    if (!v)
        printf("# bad test JSON: %s\n", e.text);
    return v;
}

static void t_url_decode(void)
{
    char out[32];
    CHECK_EQ_INT(as_url_decode("a%20b%2Fc", 9, 0, out, sizeof out), 0);
    CHECK_EQ_STR(out, "a b/c");
    CHECK_EQ_INT(as_url_decode("app+in+(a%2Cb)", 14, 1, out, sizeof out), 0);
    CHECK_EQ_STR(out, "app in (a,b)");
    CHECK_EQ_INT(as_url_decode("a+b", 3, 0, out, sizeof out), 0);
    CHECK_EQ_STR(out, "a+b");
    CHECK_EQ_INT(as_url_decode("%zz", 3, 0, out, sizeof out), -EINVAL);
    CHECK_EQ_INT(as_url_decode("%2", 2, 0, out, sizeof out), -EINVAL);
    CHECK_EQ_INT(as_url_decode("ab%", 3, 0, out, sizeof out), -EINVAL);
    CHECK_EQ_INT(as_url_decode("%00", 3, 0, out, sizeof out), -EINVAL);
    CHECK_EQ_INT(as_url_decode("abcdef", 6, 0, out, 4), -ENOBUFS);
    CHECK_EQ_INT(as_url_decode("", 0, 0, out, sizeof out), 0);
    CHECK_EQ_STR(out, "");
}

static void t_names(void)
{
    CHECK(as_check_dns1123_subdomain("example.com") == NULL);
    CHECK(as_check_dns1123_subdomain("a-b.c-d.e") == NULL);
    CHECK(as_check_dns1123_subdomain("Bad") != NULL);
    CHECK(as_check_dns1123_subdomain("-a") != NULL);
    CHECK(as_check_dns1123_subdomain("a-") != NULL);
    CHECK(as_check_dns1123_subdomain("a..b") != NULL);
    CHECK(as_check_dns1123_subdomain("a_b") != NULL);
    char long_name[300];
    memset(long_name, 'a', 254);
    long_name[254] = 0;
    CHECK_EQ_STR(as_check_dns1123_subdomain(long_name), "must be no more than 253 characters");
    long_name[253] = 0;
    CHECK(as_check_dns1123_subdomain(long_name) == NULL);
    CHECK(as_check_dns1123_label("web-1") == NULL);
    CHECK(as_check_dns1123_label("1web") == NULL);
    CHECK(as_check_dns1123_label("a.b") != NULL);
    long_name[64] = 0;
    CHECK_EQ_STR(as_check_dns1123_label(long_name), "must be no more than 63 characters");
    CHECK(as_check_dns1035_label("web") == NULL);
    CHECK(as_check_dns1035_label("1web") != NULL);
    const char *why = as_check_dns1123_subdomain("Foo");
    CHECK(why && strstr(why, "a lowercase RFC 1123 subdomain must consist of lower case") == why);
}

static void t_meta_types_and_syntax(void)
{
    char bad[512];
    json_t *causes = json_array();
    json_t *o = parse("{\"metadata\":{\"name\":\"ok\",\"labels\":{\"app\":1}}}");
    CHECK_EQ_INT(as_validate_meta(&cm_res, o, causes, bad, sizeof bad), -1);
    CHECK(strstr(bad, "metadata.labels") != NULL);
    json_decref(o);

    o = parse("{\"metadata\":\"x\"}");
    CHECK_EQ_INT(as_validate_meta(&cm_res, o, causes, bad, sizeof bad), -1);
    json_decref(o);

    o = parse("{\"metadata\":{\"name\":\"Bad_Name\",\"labels\":{\"a/b/c\":\"x\",\"ok\":\"not ok!\","
              "\"example.com/fine\":\"v-1.2_3\"},\"annotations\":{\"-x\":\"1\"}}}");
    CHECK_EQ_INT(as_validate_meta(&cm_res, o, causes, bad, sizeof bad), 0);
    CHECK_EQ_INT(json_array_size(causes), 4);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(causes, 0), "field")), "metadata.name");
    const char *msg = json_string_value(json_object_get(json_array_get(causes, 0), "message"));
    CHECK(msg && strncmp(msg, "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain", 56) == 0);
    json_decref(o);
    json_array_clear(causes);

    /* Namespaces are labels, services RFC 1035 labels. */
    o = parse("{\"metadata\":{\"name\":\"a.b\"}}");
    as_validate_meta(&ns_res, o, causes, bad, sizeof bad);
    CHECK_EQ_INT(json_array_size(causes), 1);
    json_array_clear(causes);
    as_validate_meta(&cm_res, o, causes, bad, sizeof bad);
    CHECK_EQ_INT(json_array_size(causes), 0);
    json_decref(o);
    o = parse("{\"metadata\":{\"name\":\"1svc\"}}");
    as_validate_meta(&svc_res, o, causes, bad, sizeof bad);
    CHECK_EQ_INT(json_array_size(causes), 1);
    json_decref(o);
    json_array_clear(causes);

    o = parse("{\"metadata\":{\"name\":\"x\",\"ownerReferences\":[{\"kind\":\"A\",\"name\":\"a\"}]}}");
    as_validate_meta(&cm_res, o, causes, bad, sizeof bad);
    CHECK_EQ_INT(json_array_size(causes), 2);   /* apiVersion and uid required */
    json_decref(o);
    json_decref(causes);
}

static void t_builtin_required(void)
{
    json_t *causes = json_array();
    json_t *d = parse("{\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"a\"}},"
                      "\"template\":{\"metadata\":{\"labels\":{\"app\":\"b\"}},"
                      "\"spec\":{\"containers\":[{\"name\":\"c\"}]}}}}");
    as_validate_builtin(&deploy_res, d, causes);
    CHECK_EQ_INT(json_array_size(causes), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(causes, 0), "field")),
                 "spec.template.metadata.labels");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(causes, 1), "field")),
                 "spec.template.spec.containers[0].image");
    json_decref(d);
    json_array_clear(causes);
    d = parse("{\"spec\":{\"selector\":{\"matchLabels\":{\"app\":\"a\"}},\"replicas\":-1,"
              "\"template\":{\"metadata\":{\"labels\":{\"app\":\"a\",\"x\":\"y\"}},"
              "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}}");
    as_validate_builtin(&deploy_res, d, causes);
    CHECK_EQ_INT(json_array_size(causes), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(causes, 0), "field")), "spec.replicas");
    json_decref(d);
    json_array_clear(causes);
    json_t *s = parse("{\"spec\":{}}");
    as_validate_builtin(&svc_res, s, causes);
    CHECK_EQ_INT(json_array_size(causes), 1);
    json_decref(s);
    json_array_clear(causes);
    s = parse("{\"spec\":{\"clusterIP\":\"None\"}}");
    as_validate_builtin(&svc_res, s, causes);
    CHECK_EQ_INT(json_array_size(causes), 0);
    json_decref(s);
    json_t *cm = parse("{\"data\":{\"ok.key\":\"v\",\"bad key\":\"v\",\"n\":1}}");
    as_validate_builtin(&cm_res, cm, causes);
    CHECK_EQ_INT(json_array_size(causes), 2);
    json_decref(cm);
    json_decref(causes);
}

static void t_defaults(void)
{
    struct as_server srv;
    memset(&srv, 0, sizeof srv);
    json_t *d = parse("{\"metadata\":{\"name\":\"d\"},\"spec\":{\"template\":{\"spec\":{"
                      "\"containers\":[{\"name\":\"c\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":80}]}]}}}}");
    as_default_builtin(&srv, &deploy_res, d, 1);
    CHECK_EQ_INT(json_integer_value(as_json_path_get(d, ".spec.replicas")), 1);
    CHECK_EQ_STR(json_string_value(as_json_path_get(d, "spec.strategy.type")), "RollingUpdate");
    CHECK_EQ_STR(json_string_value(as_json_path_get(d, "spec.template.spec.containers[0].imagePullPolicy")),
                 "Always");
    CHECK_EQ_STR(json_string_value(as_json_path_get(d, "spec.template.spec.containers[0].ports[0].protocol")),
                 "TCP");
    json_decref(d);
    json_t *sec = parse("{\"stringData\":{\"u\":\"p\"},\"data\":{\"x\":\"eA==\"}}");
    as_default_builtin(&srv, &(struct as_resource){.group = "", .resource = "secrets", .builtin = 1}, sec, 1);
    CHECK_EQ_STR(json_string_value(as_json_path_get(sec, "data.u")), "cA==");
    CHECK_EQ_STR(json_string_value(as_json_path_get(sec, "data.x")), "eA==");
    CHECK_EQ_STR(json_string_value(json_object_get(sec, "type")), "Opaque");
    CHECK(json_object_get(sec, "stringData") == NULL);
    json_decref(sec);
    json_t *ns = parse("{\"metadata\":{\"name\":\"team\"}}");
    as_default_builtin(&srv, &ns_res, ns, 1);
    json_t *labels = as_json_path_get(ns, "metadata.labels");
    CHECK_EQ_STR(json_string_value(json_object_get(labels, "kubernetes.io/metadata.name")), "team");
    CHECK_EQ_STR(json_string_value(as_json_path_get(ns, "status.phase")), "Active");
    json_decref(ns);
}

static void t_status_errors(void)
{
    struct as_err e;
    memset(&e, 0, sizeof e);
    as_err_not_found(&e, &deploy_res, "web");
    CHECK_EQ_STR(e.msg, "deployments.apps \"web\" not found");
    json_t *st = as_status_json(&e);
    CHECK_EQ_STR(json_string_value(json_object_get(st, "reason")), "NotFound");
    CHECK_EQ_INT(json_integer_value(json_object_get(st, "code")), 404);
    CHECK_EQ_STR(json_string_value(as_json_path_get(st, "details.kind")), "deployments");
    CHECK_EQ_STR(json_string_value(as_json_path_get(st, "details.group")), "apps");
    json_decref(st);
    as_err_clear(&e);
    as_err_conflict(&e, &cm_res, "c");
    CHECK_EQ_STR(e.msg, "Operation cannot be fulfilled on configmaps \"c\": the object has been "
                        "modified; please apply your changes to the latest version and try again");
    as_err_clear(&e);
    json_t *causes = json_array();
    as_cause_add(causes, "FieldValueRequired", "spec.size", "Required value");
    as_err_invalid(&e, &deploy_res, "w", causes);
    CHECK_EQ_STR(e.msg, "Deployment.apps \"w\" is invalid: spec.size: Required value");
    as_err_clear(&e);
    as_cause_add(causes, "FieldValueInvalid", "spec.x", "Invalid value: 1: bad");
    as_err_invalid(&e, &cm_res, "c", causes);
    CHECK_EQ_STR(e.msg, "ConfigMap \"c\" is invalid: [spec.size: Required value, spec.x: Invalid value: 1: bad]");
    CHECK_EQ_INT(json_array_size(json_object_get(e.details, "causes")), 2);
    as_err_clear(&e);
    json_decref(causes);
    st = as_status_json(NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(st, "status")), "Success");
    json_decref(st);
}

static void t_time_uuid(void)
{
    char buf[40];
    as_rfc3339(1795444685, buf, sizeof buf);
    CHECK_EQ_STR(buf, "2026-11-23T14:38:05Z");
    int64_t t = 0;
    CHECK_EQ_INT(as_parse_rfc3339("2026-11-23T14:38:05Z", &t), 0);
    CHECK_EQ_INT(t, 1795444685);
    CHECK_EQ_INT(as_parse_rfc3339("2026-11-23T16:38:05.123456+02:00", &t), 0);
    CHECK_EQ_INT(t, 1795444685);
    CHECK_EQ_INT(as_parse_rfc3339("2026-11-23 14:38:05", &t), -EINVAL);
    CHECK_EQ_INT(as_parse_rfc3339("2026-11-23T14:38:05Zjunk", &t), -EINVAL);
    char u1[40], u2[40];
    as_uuid4(u1, sizeof u1);
    as_uuid4(u2, sizeof u2);
    CHECK_EQ_INT(strlen(u1), 36);
    CHECK(u1[8] == '-' && u1[13] == '-' && u1[18] == '-' && u1[23] == '-');
    CHECK(u1[14] == '4');
    CHECK(strchr("89ab", u1[19]) != NULL);
    CHECK(strcmp(u1, u2) != 0);
}

static void t_json_path(void)
{
    json_t *o = parse("{\"spec\":{\"list\":[{\"a\":1},{\"a\":2}]}}");
    CHECK_EQ_INT(json_integer_value(as_json_path_get(o, ".spec.list[1].a")), 2);
    CHECK(as_json_path_get(o, ".spec.list[5].a") == NULL);
    CHECK(as_json_path_get(o, ".spec.nope.deeper") == NULL);
    CHECK_EQ_INT(as_json_path_set(o, ".spec.replicas", json_integer(3)), 0);
    CHECK_EQ_INT(as_json_path_set(o, "status.scale.n", json_integer(4)), 0);
    CHECK_EQ_INT(json_integer_value(as_json_path_get(o, "spec.replicas")), 3);
    CHECK_EQ_INT(json_integer_value(as_json_path_get(o, "status.scale.n")), 4);
    CHECK_EQ_INT(as_json_path_set(o, ".spec.list[0].a", json_integer(9)), -EINVAL);
    CHECK_EQ_INT(as_json_path_set(o, "", json_integer(9)), -EINVAL);
    uint64_t v;
    CHECK_EQ_INT(as_parse_u64("18446744073709551615", &v), 0);
    CHECK_EQ_INT(as_parse_u64("18446744073709551616", &v), -EINVAL);
    CHECK_EQ_INT(as_parse_u64("12a", &v), -EINVAL);
    CHECK_EQ_INT(as_parse_u64("", &v), -EINVAL);
    json_decref(o);
}

int main(void)
{
    RUN(t_url_decode);
    RUN(t_names);
    RUN(t_meta_types_and_syntax);
    RUN(t_builtin_required);
    RUN(t_defaults);
    RUN(t_status_errors);
    RUN(t_time_uuid);
    RUN(t_json_path);
    return test_done();
}
