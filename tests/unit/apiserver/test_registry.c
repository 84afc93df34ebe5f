/* Unit tests for the apiserver's registry: built-in types, CRD validation
 * and serving, discovery documents, OpenAPI v3 documents and Table
 * rendering (apiserver/registry.c, discovery.c, openapi.c, table.c). */
#include "apiserver/registry.c"
#include "apiserver/discovery.c"
#include "tests/unit/test.h"

/* Until apiserver/schema.c (branch as-pure) is merged: stand-ins that
 * check only that a schema is an object, enough for the registry's tests. */
void as_causes_init(struct as_causes *c)
{
    c->causes = json_array();
    c->unknown = json_array();
}

void as_causes_free(struct as_causes *c)
{
    json_decref(c->causes);
    json_decref(c->unknown);
    c->causes = c->unknown = NULL;
}

int as_schema_check(json_t *schema, const char *path, struct as_causes *c)
{
    if (json_is_object(schema))
        return 0;
    json_array_append_new(c->causes, json_pack("{s:s, s:s, s:s}", "reason", "FieldValueInvalid",
                                               "message", "must be an object", "field", path));
    return -EINVAL;
}

static json_t *parse(const char *s)
{
    json_error_t err;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &err);
    if (!v)
        printf("# JSON error: %s at %d:%d\n", err.text, err.line, err.column);
    return v;
}

/* Compares v with the JSON text want, printing both when they differ. */
static int json_eq(json_t *v, const char *want)
{
    json_t *w = parse(want);
    int ok = w && v && json_equal(v, w);
    if (!ok) {
        char *got = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        char *exp = w ? json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        printf("# got:  %s\n# want: %s\n", got ? got : "(null)", exp ? exp : "(null)");
        free(got);
        free(exp);
    }
    json_decref(w);
    return ok;
}

#define CHECK_JSON(v, want) CHECK(json_eq((v), (want)))

/* A CRD close to modelgate's own, with printer columns, status and scale. */
static const char *crd_text =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"modeldeployments.modelgate.dev\"},"
    "\"spec\":{\"group\":\"modelgate.dev\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"modeldeployments\",\"kind\":\"ModelDeployment\","
    "\"shortNames\":[\"md\",\"mdep\"],\"categories\":[\"all\",\"modelgate\"]},"
    "\"versions\":[{\"name\":\"v1alpha1\",\"served\":true,\"storage\":true,"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"properties\":{\"model\":{\"type\":\"string\"},"
    "\"replicas\":{\"type\":\"integer\"}}},"
    "\"status\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}}}},"
    "\"subresources\":{\"status\":{},\"scale\":{\"specReplicasPath\":\".spec.replicas\","
    "\"statusReplicasPath\":\".status.replicas\",\"labelSelectorPath\":\".status.selector\"}},"
    "\"additionalPrinterColumns\":["
    "{\"name\":\"Model\",\"type\":\"string\",\"jsonPath\":\".spec.model\"},"
    "{\"name\":\"Phase\",\"type\":\"string\",\"jsonPath\":\".status.phase\"},"
    "{\"name\":\"Canary\",\"type\":\"integer\",\"jsonPath\":\".status.weights.candidate\"},"
    "{\"name\":\"Ratio\",\"type\":\"number\",\"jsonPath\":\".status.ratio\",\"priority\":1},"
    "{\"name\":\"Ready\",\"type\":\"boolean\",\"jsonPath\":\".status.ready\"},"
    "{\"name\":\"First\",\"type\":\"string\",\"jsonPath\":\".spec.items[0].name\",\"priority\":1},"
    "{\"name\":\"Age\",\"type\":\"date\",\"jsonPath\":\".metadata.creationTimestamp\"}]}]}}";

static struct as_registry *new_reg(void)
{
    struct as_registry *reg = NULL;
    if (as_registry_new(&reg))
        return NULL;
    return reg;
}

/* Runs the CRD check and returns the causes as compact sorted JSON text
 * (static), "" when it passed. */
static const char *check_text(struct as_registry *reg, json_t *crd, int *rc)
{
    static char out[8192];
    struct as_causes c;
    as_causes_init(&c);
    *rc = as_registry_check_crd(reg, crd, &c);
    char *s = json_array_size(c.causes) ? json_dumps(c.causes, JSON_COMPACT) : NULL;
    snprintf(out, sizeof out, "%s", s ? s : "");
    free(s);
    as_causes_free(&c);
    return out;
}

/* Whether the causes text holds a cause for field whose message contains msg. */
static int has_cause(const char *causes, const char *field, const char *msg)
{
    json_t *a = parse(causes);
    size_t i;
    json_t *e;
    int found = 0;
    json_array_foreach(a, i, e) {
        const char *f = json_string_value(json_object_get(e, "field"));
        const char *m = json_string_value(json_object_get(e, "message"));
        if (f && m && !strcmp(f, field) && strstr(m, msg))
            found = 1;
    }
    json_decref(a);
    if (!found)
        printf("# no cause %s: ...%s... in %s\n", field, msg, causes);
    return found;
}

/* --- built-ins ------------------------------------------------------------ */

static void t_builtins_by_plural(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    static const struct {
        const char *g, *v, *plural, *kind, *gr;
        int namespaced;
    } want[] = {
        {"", "v1", "namespaces", "Namespace", "/namespaces", 0},
        {"", "v1", "configmaps", "ConfigMap", "/configmaps", 1},
        {"", "v1", "secrets", "Secret", "/secrets", 1},
        {"", "v1", "services", "Service", "/services", 1},
        {"", "v1", "serviceaccounts", "ServiceAccount", "/serviceaccounts", 1},
        {"", "v1", "events", "Event", "/events", 1},
        {"", "v1", "pods", "Pod", "/pods", 1},
        {"apps", "v1", "deployments", "Deployment", "apps/deployments", 1},
        {"coordination.k8s.io", "v1", "leases", "Lease", "coordination.k8s.io/leases", 1},
        {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
         "apiextensions.k8s.io/customresourcedefinitions", 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct as_resource *r = as_registry_find(reg, want[i].g, want[i].v, want[i].plural);
        CHECK(r != NULL);
        if (!r)
            continue;
        CHECK_EQ_STR(r->kind, want[i].kind);
        CHECK_EQ_STR(r->gr, want[i].gr);
        CHECK_EQ_INT(r->namespaced, want[i].namespaced);
        CHECK_EQ_INT(r->builtin, 1);
        char lk[64];
        snprintf(lk, sizeof lk, "%sList", want[i].kind);
        CHECK_EQ_STR(r->list_kind, lk);
        CHECK(r->field_paths && !strcmp(r->field_paths[0], "metadata.name") &&
              !strcmp(r->field_paths[1], "metadata.namespace"));
    }
    CHECK(as_registry_find(reg, "", "v1", "deployments") == NULL);
    CHECK(as_registry_find(reg, "apps", "v2", "deployments") == NULL);
    CHECK(as_registry_find(reg, "", "v1", "nodes") == NULL);
    CHECK(as_registry_find(reg, "", "v1", "Pods") == NULL);
    as_registry_free(reg);
}

static void t_builtins_by_kind(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    const struct as_resource *r = as_registry_find_kind(reg, "apps/v1", "Deployment");
    REQUIRE(r);
    CHECK_EQ_STR(r->resource, "deployments");
    r = as_registry_find_kind(reg, "v1", "Pod");
    REQUIRE(r);
    CHECK_EQ_STR(r->resource, "pods");
    r = as_registry_find_kind(reg, "coordination.k8s.io/v1", "Lease");
    CHECK(r && !strcmp(r->resource, "leases"));
    r = as_registry_find_kind(reg, "apiextensions.k8s.io/v1", "CustomResourceDefinition");
    CHECK(r && !strcmp(r->resource, "customresourcedefinitions"));
    CHECK(as_registry_find_kind(reg, "v1", "Deployment") == NULL);
    CHECK(as_registry_find_kind(reg, "apps/v1", "Pod") == NULL);
    CHECK(as_registry_find_kind(reg, "extensions/v1beta1", "Deployment") == NULL);
    as_registry_free(reg);
}

static void t_builtins_short_names_categories(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    static const struct {
        const char *g, *plural, *shorts, *cats, *singular;
    } want[] = {
        {"", "namespaces", "ns", "", "namespace"},
        {"", "configmaps", "cm", "", "configmap"},
        {"", "secrets", "", "", "secret"},
        {"", "services", "svc", "all", "service"},
        {"", "serviceaccounts", "sa", "", "serviceaccount"},
        {"", "events", "ev", "", "event"},
        {"", "pods", "po", "all", "pod"},
        {"apps", "deployments", "deploy", "all", "deployment"},
        {"coordination.k8s.io", "leases", "", "", "lease"},
        {"apiextensions.k8s.io", "customresourcedefinitions", "crd,crds", "api-extensions",
         "customresourcedefinition"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct as_resource *r = as_registry_find(reg, want[i].g, "v1", want[i].plural);
        REQUIRE(r);
        char got[128] = "";
        for (size_t k = 0; r->short_names && r->short_names[k]; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? "," : "",
                     r->short_names[k]);
        CHECK_EQ_STR(got, want[i].shorts);
        got[0] = '\0';
        for (size_t k = 0; r->categories && r->categories[k]; k++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? "," : "",
                     r->categories[k]);
        CHECK_EQ_STR(got, want[i].cats);
        CHECK_EQ_STR(r->singular, want[i].singular);
    }
    as_registry_free(reg);
}

static void t_builtins_subresources_and_fields(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    const struct as_resource *d = as_registry_find(reg, "apps", "v1", "deployments");
    REQUIRE(d);
    CHECK(d->has_status && d->has_scale);
    CHECK_EQ_STR(d->scale_spec_path, ".spec.replicas");
    CHECK_EQ_STR(d->scale_status_path, ".status.replicas");
    CHECK_EQ_STR(d->scale_selector_path, ".spec.selector");
    const struct as_resource *p = as_registry_find(reg, "", "v1", "pods");
    REQUIRE(p);
    CHECK(p->has_status && !p->has_scale);
    CHECK(strlist_has(p->field_paths, "spec.nodeName") && strlist_has(p->field_paths, "status.phase"));
    const struct as_resource *ev = as_registry_find(reg, "", "v1", "events");
    REQUIRE(ev);
    static const char *const ev_fields[] = {
        "involvedObject.kind",       "involvedObject.namespace",       "involvedObject.name",
        "involvedObject.uid",        "involvedObject.apiVersion",      "involvedObject.resourceVersion",
        "involvedObject.fieldPath",  "reason",                         "type",
        "source",
    };
    for (size_t i = 0; i < sizeof ev_fields / sizeof ev_fields[0]; i++)
        CHECK(strlist_has(ev->field_paths, ev_fields[i]));
    CHECK(!strlist_has(p->field_paths, "involvedObject.kind"));
    const struct as_resource *cm = as_registry_find(reg, "", "v1", "configmaps");
    REQUIRE(cm);
    CHECK(!cm->has_status && !cm->has_scale);
    CHECK(!strlist_has(cm->field_paths, "spec.nodeName"));
    as_registry_free(reg);
}

/* --- CRD validation --------------------------------------------------------- */

static void t_crd_valid(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    int rc;
    const char *causes = check_text(reg, crd, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(causes, "");
    json_decref(crd);
    as_registry_free(reg);
}

/* Applies a JSON merge patch-like edit: sets path (dotted, [N] indices) to
 * the JSON value text, or deletes it when value is NULL. */
static json_t *edited(const char *path, const char *value)
{
    json_t *crd = parse(crd_text);
    json_t *cur = crd;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL, *seg = strtok_r(buf, ".", &save);
    while (seg) {
        char *next = strtok_r(NULL, ".", &save);
        char *br = strchr(seg, '[');
        long idx = -1;
        if (br) {
            idx = strtol(br + 1, NULL, 10);
            *br = '\0';
        }
        if (!next) {
            if (idx >= 0) {
                cur = json_object_get(cur, seg);
                if (value)
                    json_array_set_new(cur, (size_t)idx, parse(value));
                else
                    json_array_remove(cur, (size_t)idx);
            } else if (value) {
                json_object_set_new(cur, seg, parse(value));
            } else {
                json_object_del(cur, seg);
            }
            break;
        }
        cur = json_object_get(cur, seg);
        if (idx >= 0)
            cur = json_array_get(cur, (size_t)idx);
        seg = next;
    }
    return crd;
}

static void check_edit(const char *path, const char *value, const char *field, const char *msg)
{
    struct as_registry *reg = new_reg();
    json_t *crd = edited(path, value);
    if (!reg || !crd) {
        CHECK(0);
        return;
    }
    int rc;
    const char *causes = check_text(reg, crd, &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK(has_cause(causes, field, msg));
    json_decref(crd);
    as_registry_free(reg);
}

static void t_crd_missing_storage_version(void)
{
    check_edit("spec.versions[0].storage", "false", "spec.versions",
               "must have exactly one version marked as storage version");
    /* Two storage versions are as wrong as none. */
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    json_t *versions = json_object_get(json_object_get(crd, "spec"), "versions");
    json_t *v2 = json_deep_copy(json_array_get(versions, 0));
    json_object_set_new(v2, "name", json_string("v1beta1"));
    json_array_append_new(versions, v2);
    int rc;
    const char *causes = check_text(reg, crd, &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK(has_cause(causes, "spec.versions", "must have exactly one version marked as storage"));
    json_decref(crd);
    as_registry_free(reg);
    check_edit("spec.versions", "[]", "spec.versions", "Required value");
}

static void t_crd_name_mismatch(void)
{
    check_edit("metadata.name", "\"models.modelgate.dev\"", "metadata.name",
               "Invalid value: \"models.modelgate.dev\": must be spec.names.plural+\".\"+spec.group");
    check_edit("spec.group", "\"modelgate.io\"", "metadata.name",
               "must be spec.names.plural+\".\"+spec.group");
    check_edit("spec.group", "\"modelgate\"", "spec.group", "should be a domain with at least one dot");
    check_edit("spec.group", "\"Model_Gate.dev\"", "spec.group", "a lowercase RFC 1123 subdomain");
}

static void t_crd_bad_scope(void)
{
    check_edit("spec.scope", "\"Global\"", "spec.scope",
               "Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"");
    check_edit("spec.scope", NULL, "spec.scope", "Required value");
}

static void t_crd_bad_names(void)
{
    check_edit("spec.names.plural", "\"Model_Deployments\"", "spec.names.plural",
               "a DNS-1035 label must consist of lower case alphanumeric characters");
    check_edit("spec.names.kind", NULL, "spec.names.kind", "Required value");
    check_edit("spec.names.kind", "\"Model.Deployment\"", "spec.names.kind",
               "may have mixed case, but should otherwise match: a DNS-1035 label");
    check_edit("spec.names.listKind", "\"ModelDeployment\"", "spec.names.listKind",
               "kind and listKind may not be the same");
    check_edit("spec.names.shortNames[1]", "\"m d\"", "spec.names.shortNames[1]",
               "a DNS-1035 label");
    check_edit("spec.names.categories[0]", "\"1all\"", "spec.names.categories[0]",
               "a DNS-1035 label");
    check_edit("spec.versions[0].name", "\"V1\"", "spec.versions[0].name", "a DNS-1035 label");
}

static void t_crd_bad_versions(void)
{
    check_edit("spec.versions[0].schema", NULL, "spec.versions[0].schema.openAPIV3Schema",
               "Required value: schemas are required");
    check_edit("spec.versions[0].schema.openAPIV3Schema", "\"x\"",
               "spec.versions[0].schema.openAPIV3Schema", "must be an object");
    check_edit("spec.versions[0].served", NULL, "spec.versions[0].served", "Required value");
    check_edit("spec.versions[0].subresources.scale.specReplicasPath", "\".status.replicas\"",
               "spec.versions[0].subresources.scale.specReplicasPath",
               "should be a json path under .spec");
    check_edit("spec.versions[0].subresources.scale.statusReplicasPath", NULL,
               "spec.versions[0].subresources.scale.statusReplicasPath", "Required value");
    check_edit("spec.versions[0].subresources.scale.labelSelectorPath", "\".metadata.labels\"",
               "spec.versions[0].subresources.scale.labelSelectorPath",
               "should be a json path under either .spec or .status");
    check_edit("spec.versions[0].additionalPrinterColumns[0].type", "\"text\"",
               "spec.versions[0].additionalPrinterColumns[0].type",
               "Unsupported value: \"text\": supported values: \"boolean\", \"date\", "
               "\"integer\", \"number\", \"string\"");
    check_edit("spec.versions[0].additionalPrinterColumns[1].jsonPath", "\"status.phase\"",
               "spec.versions[0].additionalPrinterColumns[1].jsonPath",
               "must be a simple json path starting with .");
    check_edit("spec.versions[0].additionalPrinterColumns[1].jsonPath", "\".status.items[*].x\"",
               "spec.versions[0].additionalPrinterColumns[1].jsonPath",
               "only simple paths are supported");
    check_edit("spec.versions[0].additionalPrinterColumns[2].priority", "-1",
               "spec.versions[0].additionalPrinterColumns[2].priority", "must be a non-negative");
    check_edit("spec.versions[0].additionalPrinterColumns[2].name", NULL,
               "spec.versions[0].additionalPrinterColumns[2].name", "Required value");
    check_edit("spec.conversion", "{\"strategy\":\"Webhook\"}", "spec.conversion.strategy",
               "Unsupported value: \"Webhook\": supported values: \"None\"");
    check_edit("spec.preserveUnknownFields", "true", "spec.preserveUnknownFields",
               "cannot set to true");
}

static void t_crd_clash(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    /* Another CRD of the same group taking the kind, and a short name. */
    json_t *other = parse(crd_text);
    json_t *spec = json_object_get(other, "spec");
    json_object_set_new(json_object_get(other, "metadata"), "name",
                        json_string("models.modelgate.dev"));
    json_object_set_new(json_object_get(spec, "names"), "plural", json_string("models"));
    int rc;
    const char *causes = check_text(reg, other, &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK(has_cause(causes, "spec.names.kind",
                    "\"ModelDeployment\": already in use by modeldeployments.modelgate.dev"));
    CHECK(has_cause(causes, "spec.names.shortNames[0]", "\"md\": already in use"));
    json_decref(other);

    /* A built-in type's names in its group. */
    other = parse(crd_text);
    spec = json_object_get(other, "spec");
    json_object_set_new(json_object_get(other, "metadata"), "name", json_string("deployments.apps"));
    json_object_set_new(spec, "group", json_string("apps"));
    json_object_set_new(json_object_get(spec, "names"), "plural", json_string("deployments"));
    causes = check_text(reg, other, &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK(has_cause(causes, "spec.group", "should be a domain with at least one dot"));
    json_decref(other);

    other = parse(crd_text);
    spec = json_object_get(other, "spec");
    json_object_set_new(json_object_get(other, "metadata"), "name",
                        json_string("leases.coordination.k8s.io"));
    json_object_set_new(spec, "group", json_string("coordination.k8s.io"));
    json_object_set_new(json_object_get(spec, "names"), "plural", json_string("leases"));
    causes = check_text(reg, other, &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK(has_cause(causes, "spec.names.plural", "\"leases\": already in use by leases.coordination.k8s.io"));
    json_decref(other);

    /* The CRD itself, updated, does not clash with itself. */
    causes = check_text(reg, crd, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(causes, "");
    /* Once removed, its names are free again. */
    as_registry_remove_crd(reg, "modeldeployments.modelgate.dev");
    other = parse(crd_text);
    json_object_set_new(json_object_get(other, "metadata"), "name",
                        json_string("models.modelgate.dev"));
    json_object_set_new(json_object_get(json_object_get(other, "spec"), "names"), "plural",
                        json_string("models"));
    causes = check_text(reg, other, &rc);
    CHECK_EQ_INT(rc, 0);
    json_decref(other);
    json_decref(crd);
    as_registry_free(reg);
}

/* --- serving CRDs -------------------------------------------------------------- */

static void t_crd_add_remove(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    CHECK(as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments") == NULL);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    const struct as_resource *r = as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments");
    REQUIRE(r);
    CHECK(as_registry_find_kind(reg, "modelgate.dev/v1alpha1", "ModelDeployment") == r);
    CHECK_EQ_STR(r->kind, "ModelDeployment");
    CHECK_EQ_STR(r->list_kind, "ModelDeploymentList");
    CHECK_EQ_STR(r->singular, "modeldeployment");
    CHECK_EQ_STR(r->gr, "modelgate.dev/modeldeployments");
    CHECK_EQ_INT(r->namespaced, 1);
    CHECK_EQ_INT(r->builtin, 0);
    CHECK(r->has_status && r->has_scale);
    CHECK_EQ_STR(r->scale_spec_path, ".spec.replicas");
    CHECK_EQ_STR(r->scale_status_path, ".status.replicas");
    CHECK_EQ_STR(r->scale_selector_path, ".status.selector");
    CHECK(r->short_names && !strcmp(r->short_names[0], "md") && !strcmp(r->short_names[1], "mdep") &&
          !r->short_names[2]);
    CHECK(r->categories && !strcmp(r->categories[0], "all") && !strcmp(r->categories[1], "modelgate"));
    CHECK(r->field_paths && !strcmp(r->field_paths[0], "metadata.name") &&
          !strcmp(r->field_paths[1], "metadata.namespace") && !r->field_paths[2]);
    CHECK(json_is_object(r->schema) && json_is_array(r->columns) && json_array_size(r->columns) == 7);

    /* The CRD's status and defaulted names, as the API fills them. */
    json_t *status = json_object_get(crd, "status");
    CHECK_JSON(json_object_get(status, "acceptedNames"),
               "{\"plural\":\"modeldeployments\",\"singular\":\"modeldeployment\","
               "\"kind\":\"ModelDeployment\",\"listKind\":\"ModelDeploymentList\","
               "\"shortNames\":[\"md\",\"mdep\"],\"categories\":[\"all\",\"modelgate\"]}");
    CHECK_JSON(json_object_get(status, "storedVersions"), "[\"v1alpha1\"]");
    json_t *conds = json_object_get(status, "conditions");
    CHECK_EQ_INT(json_array_size(conds), 2);
    json_t *na = json_array_get(conds, 0), *est = json_array_get(conds, 1);
    CHECK_EQ_STR(jstr(na, "type"), "NamesAccepted");
    CHECK_EQ_STR(jstr(na, "status"), "True");
    CHECK_EQ_STR(jstr(na, "reason"), "NoConflicts");
    CHECK_EQ_STR(jstr(na, "message"), "no conflicts found");
    CHECK_EQ_STR(jstr(est, "type"), "Established");
    CHECK_EQ_STR(jstr(est, "status"), "True");
    CHECK_EQ_STR(jstr(est, "reason"), "InitialNamesAccepted");
    CHECK_EQ_STR(jstr(est, "message"), "the initial names have been accepted");
    int64_t us;
    const char *ltt = jstr(est, "lastTransitionTime");
    CHECK(ltt && strlen(ltt) == 20 && ltt[19] == 'Z' && as_reg_parse_time(ltt, &us) == 0);
    json_t *names = json_object_get(json_object_get(crd, "spec"), "names");
    CHECK_EQ_STR(jstr(names, "listKind"), "ModelDeploymentList");
    CHECK_EQ_STR(jstr(names, "singular"), "modeldeployment");
    CHECK_EQ_STR(jstr(json_object_get(json_object_get(crd, "spec"), "conversion"), "strategy"), "None");

    /* An update: a second served version becomes the storage one; the
     * entry of the first is the same pointer (watches may hold it). */
    json_t *versions = json_object_get(json_object_get(crd, "spec"), "versions");
    json_t *v2 = json_deep_copy(json_array_get(versions, 0));
    json_object_set_new(v2, "name", json_string("v1beta1"));
    json_object_set_new(json_array_get(versions, 0), "storage", json_false());
    json_object_del(v2, "additionalPrinterColumns");
    json_array_append_new(versions, v2);
    json_object_set_new(na, "lastTransitionTime", json_string("2020-01-01T00:00:00Z"));
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    CHECK(as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments") == r);
    const struct as_resource *r2 = as_registry_find(reg, "modelgate.dev", "v1beta1", "modeldeployments");
    REQUIRE(r2);
    CHECK(r2->columns == NULL);
    CHECK_JSON(json_object_get(json_object_get(crd, "status"), "storedVersions"),
               "[\"v1alpha1\",\"v1beta1\"]");
    /* A condition that stayed True keeps its transition time. */
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(json_object_get(crd, "status"), "conditions"), 0),
                      "lastTransitionTime"),
                 "2020-01-01T00:00:00Z");

    /* A version no longer served disappears. */
    json_object_set_new(json_array_get(versions, 0), "served", json_false());
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    CHECK(as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments") == NULL);
    CHECK(as_registry_find(reg, "modelgate.dev", "v1beta1", "modeldeployments") == r2);

    as_registry_remove_crd(reg, "modeldeployments.modelgate.dev");
    CHECK(as_registry_find(reg, "modelgate.dev", "v1beta1", "modeldeployments") == NULL);
    CHECK(as_registry_find_kind(reg, "modelgate.dev/v1beta1", "ModelDeployment") == NULL);
    /* The removed entry stays readable for whoever held it. */
    CHECK_EQ_STR(r2->kind, "ModelDeployment");
    /* Built-ins are untouched; removing an unknown CRD is harmless. */
    as_registry_remove_crd(reg, "nothing.example.com");
    CHECK(as_registry_find(reg, "", "v1", "pods") != NULL);
    /* Re-adding serves it again, in the same entry. */
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    CHECK(as_registry_find(reg, "modelgate.dev", "v1beta1", "modeldeployments") == r2);
    json_decref(crd);
    as_registry_free(reg);
}

static void t_crd_cluster_scoped(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = edited("spec.scope", "\"Cluster\"");
    REQUIRE(reg && crd);
    int rc;
    check_text(reg, crd, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    const struct as_resource *r = as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments");
    REQUIRE(r);
    CHECK_EQ_INT(r->namespaced, 0);
    json_decref(crd);
    as_registry_free(reg);
}

static void t_crd_add_refuses_garbage(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    static const char *const bad[] = {
        "{}",
        "{\"metadata\":{\"name\":\"a.b.c\"}}",
        "{\"metadata\":{\"name\":\"a.b.c\"},\"spec\":{\"group\":\"b.c\",\"scope\":\"Cluster\","
        "\"names\":{},\"versions\":[]}}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *crd = parse(bad[i]);
        CHECK_EQ_INT(as_registry_add_crd(reg, crd), -EINVAL);
        int rc;
        check_text(reg, crd, &rc);
        CHECK_EQ_INT(rc, -EINVAL);
        json_decref(crd);
    }
    size_t it = 0, n = 0;
    while (as_reg_next(reg, &it))
        n++;
    CHECK_EQ_INT(n, N_BUILTINS);
    as_registry_free(reg);
}

/* --- discovery ---------------------------------------------------------------- */

static void t_discovery_api(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *d = as_discovery_api(reg);
    CHECK_JSON(d, "{\"kind\":\"APIVersions\",\"versions\":[\"v1\"],\"serverAddressByClientCIDRs\":"
                  "[{\"clientCIDR\":\"0.0.0.0/0\",\"serverAddress\":\"\"}]}");
    json_decref(d);
    as_registry_free(reg);
}

static void t_discovery_apis(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *d = as_discovery_apis(reg);
    CHECK_JSON(d,
               "{\"kind\":\"APIGroupList\",\"apiVersion\":\"v1\",\"groups\":["
               "{\"name\":\"apps\",\"versions\":[{\"groupVersion\":\"apps/v1\",\"version\":\"v1\"}],"
               "\"preferredVersion\":{\"groupVersion\":\"apps/v1\",\"version\":\"v1\"}},"
               "{\"name\":\"coordination.k8s.io\",\"versions\":[{\"groupVersion\":"
               "\"coordination.k8s.io/v1\",\"version\":\"v1\"}],\"preferredVersion\":"
               "{\"groupVersion\":\"coordination.k8s.io/v1\",\"version\":\"v1\"}},"
               "{\"name\":\"apiextensions.k8s.io\",\"versions\":[{\"groupVersion\":"
               "\"apiextensions.k8s.io/v1\",\"version\":\"v1\"}],\"preferredVersion\":"
               "{\"groupVersion\":\"apiextensions.k8s.io/v1\",\"version\":\"v1\"}}]}");
    json_decref(d);

    /* A CRD group with two versions: the GA-most one is preferred. */
    json_t *crd = parse(crd_text);
    json_t *versions = json_object_get(json_object_get(crd, "spec"), "versions");
    json_t *v2 = json_deep_copy(json_array_get(versions, 0));
    json_object_set_new(v2, "name", json_string("v1beta1"));
    json_object_set_new(v2, "storage", json_false());
    json_array_append_new(versions, v2);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    d = as_discovery_apis(reg);
    json_t *groups = json_object_get(d, "groups");
    CHECK_EQ_INT(json_array_size(groups), 4);
    CHECK_JSON(json_array_get(groups, 3),
               "{\"name\":\"modelgate.dev\",\"versions\":["
               "{\"groupVersion\":\"modelgate.dev/v1beta1\",\"version\":\"v1beta1\"},"
               "{\"groupVersion\":\"modelgate.dev/v1alpha1\",\"version\":\"v1alpha1\"}],"
               "\"preferredVersion\":{\"groupVersion\":\"modelgate.dev/v1beta1\",\"version\":\"v1beta1\"}}");
    json_decref(d);
    as_registry_remove_crd(reg, "modeldeployments.modelgate.dev");
    d = as_discovery_apis(reg);
    CHECK_EQ_INT(json_array_size(json_object_get(d, "groups")), 3);
    json_decref(d);
    json_decref(crd);
    as_registry_free(reg);
}

static void t_discovery_core_resources(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *d = as_discovery_resources(reg, "", "v1");
    REQUIRE(d);
    CHECK_EQ_STR(jstr(d, "kind"), "APIResourceList");
    CHECK_EQ_STR(jstr(d, "groupVersion"), "v1");
    CHECK(json_object_get(d, "apiVersion") == NULL);
    json_t *res = json_object_get(d, "resources");
    static const char *const names[] = {"configmaps",      "events",          "namespaces",
                                        "namespaces/status", "pods",          "pods/status",
                                        "secrets",         "serviceaccounts", "services",
                                        "services/status"};
    CHECK_EQ_INT(json_array_size(res), sizeof names / sizeof names[0]);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_EQ_STR(jstr(json_array_get(res, i), "name"), names[i]);
    CHECK_JSON(json_array_get(res, 4),
               "{\"name\":\"pods\",\"singularName\":\"pod\",\"namespaced\":true,\"kind\":\"Pod\","
               "\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\",\"update\",\"watch\"],"
               "\"shortNames\":[\"po\"],\"categories\":[\"all\"]}");
    CHECK_JSON(json_array_get(res, 5),
               "{\"name\":\"pods/status\",\"singularName\":\"\",\"namespaced\":true,\"kind\":\"Pod\","
               "\"verbs\":[\"get\",\"patch\",\"update\"]}");
    CHECK_JSON(json_array_get(res, 6),
               "{\"name\":\"secrets\",\"singularName\":\"secret\",\"namespaced\":true,\"kind\":\"Secret\","
               "\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\",\"update\",\"watch\"]}");
    CHECK_EQ_INT(json_is_false(json_object_get(json_array_get(res, 2), "namespaced")), 1);
    json_decref(d);
    CHECK(as_discovery_resources(reg, "", "v2") == NULL);
    CHECK(as_discovery_resources(reg, "batch", "v1") == NULL);
    as_registry_free(reg);
}

static void t_discovery_group_resources(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *d = as_discovery_resources(reg, "apps", "v1");
    CHECK_JSON(d,
               "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":\"apps/v1\","
               "\"resources\":["
               "{\"name\":\"deployments\",\"singularName\":\"deployment\",\"namespaced\":true,"
               "\"kind\":\"Deployment\",\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\","
               "\"update\",\"watch\"],\"shortNames\":[\"deploy\"],\"categories\":[\"all\"]},"
               "{\"name\":\"deployments/scale\",\"singularName\":\"\",\"namespaced\":true,"
               "\"group\":\"autoscaling\",\"version\":\"v1\",\"kind\":\"Scale\","
               "\"verbs\":[\"get\",\"patch\",\"update\"]},"
               "{\"name\":\"deployments/status\",\"singularName\":\"\",\"namespaced\":true,"
               "\"kind\":\"Deployment\",\"verbs\":[\"get\",\"patch\",\"update\"]}]}");
    json_decref(d);

    json_t *crd = parse(crd_text);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    d = as_discovery_resources(reg, "modelgate.dev", "v1alpha1");
    CHECK_JSON(d,
               "{\"kind\":\"APIResourceList\",\"apiVersion\":\"v1\",\"groupVersion\":"
               "\"modelgate.dev/v1alpha1\",\"resources\":["
               "{\"name\":\"modeldeployments\",\"singularName\":\"modeldeployment\",\"namespaced\":true,"
               "\"kind\":\"ModelDeployment\",\"verbs\":[\"create\",\"delete\",\"get\",\"list\",\"patch\","
               "\"update\",\"watch\"],\"shortNames\":[\"md\",\"mdep\"],\"categories\":[\"all\",\"modelgate\"]},"
               "{\"name\":\"modeldeployments/scale\",\"singularName\":\"\",\"namespaced\":true,"
               "\"group\":\"autoscaling\",\"version\":\"v1\",\"kind\":\"Scale\","
               "\"verbs\":[\"get\",\"patch\",\"update\"]},"
               "{\"name\":\"modeldeployments/status\",\"singularName\":\"\",\"namespaced\":true,"
               "\"kind\":\"ModelDeployment\",\"verbs\":[\"get\",\"patch\",\"update\"]}]}");
    json_decref(d);
    d = as_discovery_resources(reg, "apiextensions.k8s.io", "v1");
    CHECK_EQ_INT(json_array_size(json_object_get(d, "resources")), 2);
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(d, "resources"), 1), "name"),
                 "customresourcedefinitions/status");
    json_decref(d);
    as_registry_remove_crd(reg, "modeldeployments.modelgate.dev");
    CHECK(as_discovery_resources(reg, "modelgate.dev", "v1alpha1") == NULL);
    json_decref(crd);
    as_registry_free(reg);
}

static void t_version_priority(void)
{
    static const char *const order[] = {"v10",     "v2",       "v1",       "v11beta2", "v10beta3",
                                        "v3beta1", "v12alpha1", "v11alpha2", "foo1",    "foo10"};
    size_t n = sizeof order / sizeof order[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int c = as_reg_version_cmp(order[i], order[j]);
            int ok = i < j ? c < 0 : i > j ? c > 0 : c == 0;
            if (!ok)
                printf("# %s vs %s: %d\n", order[i], order[j], c);
            CHECK(ok);
        }
}

int main(void)
{
    RUN(t_builtins_by_plural);
    RUN(t_builtins_by_kind);
    RUN(t_builtins_short_names_categories);
    RUN(t_builtins_subresources_and_fields);
    RUN(t_crd_valid);
    RUN(t_crd_missing_storage_version);
    RUN(t_crd_name_mismatch);
    RUN(t_crd_bad_scope);
    RUN(t_crd_bad_names);
    RUN(t_crd_bad_versions);
    RUN(t_crd_clash);
    RUN(t_crd_add_remove);
    RUN(t_crd_cluster_scoped);
    RUN(t_crd_add_refuses_garbage);
    RUN(t_discovery_api);
    RUN(t_discovery_apis);
    RUN(t_discovery_core_resources);
    RUN(t_discovery_group_resources);
    RUN(t_version_priority);
    return test_done();
}
