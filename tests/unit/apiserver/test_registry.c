/* Unit tests for the apiserver's registry: built-in types, CRD validation
 * and serving, discovery documents, OpenAPI v3 documents and Table
 * rendering (apiserver/registry.c, discovery.c, openapi.c, table.c). */
#include "apiserver/schema.c"
#include "apiserver/registry.c"
#include "apiserver/discovery.c"
#include "apiserver/openapi.c"
#include "apiserver/table.c"
#include "tests/unit/test.h"

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
               "spec.versions[0].schema.openAPIV3Schema", "must be a schema object");
    /* The schema's own errors come from as_schema_check, under the version's path. */
    check_edit("spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.model",
               "{\"type\":\"strin\"}",
               "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[model].type",
               "strin");
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

    /* Served at two versions, a type is still reported once per name. */
    json_t *versions = json_object_get(json_object_get(crd, "spec"), "versions");
    json_t *v2 = json_deep_copy(json_array_get(versions, 0));
    json_object_set_new(v2, "name", json_string("v1beta1"));
    json_object_set_new(v2, "storage", json_false());
    json_array_append_new(versions, v2);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    other = parse(crd_text);
    json_object_set_new(json_object_get(other, "metadata"), "name", json_string("models.modelgate.dev"));
    json_object_set_new(json_object_get(json_object_get(other, "spec"), "names"), "plural",
                        json_string("models"));
    causes = check_text(reg, other, &rc);
    json_t *ca = parse(causes);
    size_t nkind = 0, ci;
    json_t *ce;
    json_array_foreach(ca, ci, ce) nkind += !strcmp(jstr(ce, "field"), "spec.names.kind");
    CHECK_EQ_INT(nkind, 1);
    json_decref(ca);
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

/* --- OpenAPI v3 ---------------------------------------------------------------- */

/* Every served group version, as the root lists them. */
static const char *const gv_keys[] = {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                                      "apis/apiextensions.k8s.io/v1"};

static const char *root_url(json_t *root, const char *key)
{
    return jstr(json_object_get(json_object_get(root, "paths"), key), "serverRelativeURL");
}

static void t_openapi_root(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *root = as_openapi_root(reg);
    REQUIRE(root);
    CHECK_EQ_INT(json_object_size(json_object_get(root, "paths")), 4);
    char before[4][300];
    for (size_t i = 0; i < 4; i++) {
        const char *url = root_url(root, gv_keys[i]);
        REQUIRE(url);
        char prefix[128];
        snprintf(prefix, sizeof prefix, "/openapi/v3/%s?hash=", gv_keys[i]);
        CHECK(!strncmp(url, prefix, strlen(prefix)));
        const char *h = url + strlen(prefix);
        CHECK_EQ_INT(strlen(h), 128);
        for (const char *p = h; *p; p++)
            CHECK((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F'));
        snprintf(before[i], sizeof before[i], "%s", url);
    }
    /* Stable: the same registry gives the same hashes. */
    json_t *again = as_openapi_root(reg);
    CHECK(json_equal(root, again));
    json_decref(again);

    /* A CRD adds its group version; the others keep their hash. */
    json_t *crd = parse(crd_text);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    json_t *root2 = as_openapi_root(reg);
    CHECK_EQ_INT(json_object_size(json_object_get(root2, "paths")), 5);
    const char *crd_url = root_url(root2, "apis/modelgate.dev/v1alpha1");
    CHECK(crd_url && !strncmp(crd_url, "/openapi/v3/apis/modelgate.dev/v1alpha1?hash=", 45));
    for (size_t i = 0; i < 4; i++)
        CHECK_EQ_STR(root_url(root2, gv_keys[i]), before[i]);
    char crd_before[300];
    snprintf(crd_before, sizeof crd_before, "%s", crd_url ? crd_url : "");

    /* Changing the CRD's schema changes its document's hash. */
    json_t *props = json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(
        json_array_get(json_object_get(json_object_get(crd, "spec"), "versions"), 0), "schema"),
        "openAPIV3Schema"), "properties"), "spec"), "properties");
    json_object_set_new(props, "version", json_pack("{s:s}", "type", "string"));
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    json_t *root3 = as_openapi_root(reg);
    const char *u3 = root_url(root3, "apis/modelgate.dev/v1alpha1");
    CHECK(u3 && strcmp(u3, crd_before) != 0);

    as_registry_remove_crd(reg, "modeldeployments.modelgate.dev");
    json_t *root4 = as_openapi_root(reg);
    CHECK(json_equal(root, root4));
    json_decref(root4);
    json_decref(root3);
    json_decref(root2);
    json_decref(root);
    json_decref(crd);
    as_registry_free(reg);
}

/* kubectl's queryParamVerifierV3.HasSupport(gvk, "fieldValidation"): finds
 * the patch operation for the GVK and looks for the query parameter.
 * 1 supported, 0 unsupported, -1 no patch path for the GVK. */
static int kubectl_field_validation(json_t *doc, const char *g, const char *v, const char *k)
{
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        json_t *op = json_object_get(item, "patch");
        if (!op)
            continue;
        json_t *gvk = json_object_get(op, "x-kubernetes-group-version-kind");
        if (!json_is_object(gvk) || strcmp(jstr(gvk, "group") ? jstr(gvk, "group") : "-", g) ||
            strcmp(jstr(gvk, "version") ? jstr(gvk, "version") : "-", v) ||
            strcmp(jstr(gvk, "kind") ? jstr(gvk, "kind") : "-", k))
            continue;
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(op, "parameters"), i, p) {
            if (!strcmp(jstr(p, "name") ? jstr(p, "name") : "", "fieldValidation") &&
                !strcmp(jstr(p, "in") ? jstr(p, "in") : "", "query"))
                return 1;
        }
        return 0;
    }
    return -1;
}

/* Whether every "$ref" in v points at a schema the document has. */
static int refs_resolve(json_t *doc, json_t *v)
{
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) {
            if (!strcmp(k, "$ref")) {
                const char *r = json_string_value(e);
                const char *pre = "#/components/schemas/";
                if (!r || strncmp(r, pre, strlen(pre)) ||
                    !json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"),
                                     r + strlen(pre))) {
                    printf("# dangling $ref %s\n", r ? r : "(non-string)");
                    return 0;
                }
            } else if (!refs_resolve(doc, e)) {
                return 0;
            }
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) if (!refs_resolve(doc, e)) return 0;
    }
    return 1;
}

static void t_openapi_field_validation(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    size_t it = 0;
    const struct as_resource *r;
    int n = 0;
    while ((r = as_reg_next(reg, &it))) {
        json_t *doc = as_openapi_group_version(reg, r->group, r->version);
        CHECK(doc != NULL);
        int fv = kubectl_field_validation(doc, r->group, r->version, r->kind);
        if (fv != 1)
            printf("# %s/%s %s: %d\n", r->group, r->version, r->kind, fv);
        CHECK_EQ_INT(fv, 1);
        CHECK(refs_resolve(doc, doc));
        CHECK_EQ_STR(jstr(doc, "openapi"), "3.0.0");
        n++;
        json_decref(doc);
    }
    CHECK_EQ_INT(n, 11);
    /* The namespace fallback kubectl uses for unknown group versions. */
    json_t *core = as_openapi_group_version(reg, "", "v1");
    CHECK_EQ_INT(kubectl_field_validation(core, "", "v1", "Namespace"), 1);
    CHECK_EQ_INT(kubectl_field_validation(core, "apps", "v1", "Deployment"), -1);
    /* Built-ins: no strategic merge patch content type, so kubectl computes
     * strategic patches from its own compiled-in types. */
    json_t *patch = json_object_get(json_object_get(json_object_get(core, "paths"),
                                                    "/api/v1/namespaces/{namespace}/pods/{name}"),
                                    "patch");
    REQUIRE(patch);
    json_t *ct = json_object_get(json_object_get(patch, "requestBody"), "content");
    CHECK(json_object_get(ct, "application/merge-patch+json") != NULL);
    CHECK(json_object_get(ct, "application/apply-patch+yaml") != NULL);
    CHECK(json_object_get(ct, "application/strategic-merge-patch+json") == NULL);
    CHECK_EQ_STR(jstr(patch, "operationId"), "patchCoreV1NamespacedPod");
    CHECK_EQ_STR(jstr(patch, "x-kubernetes-action"), "patch");
    /* Cluster-scoped types have no namespace in their paths. */
    CHECK(json_object_get(json_object_get(core, "paths"), "/api/v1/namespaces/{name}") != NULL);
    CHECK(json_object_get(json_object_get(core, "paths"), "/api/v1/namespaces/{name}/status") != NULL);
    json_decref(core);

    json_t *apps = as_openapi_group_version(reg, "apps", "v1");
    json_t *scale = json_object_get(json_object_get(json_object_get(apps, "paths"),
        "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"), "patch");
    REQUIRE(scale);
    CHECK_JSON(json_object_get(scale, "x-kubernetes-group-version-kind"),
               "{\"group\":\"autoscaling\",\"version\":\"v1\",\"kind\":\"Scale\"}");
    CHECK_EQ_STR(jstr(scale, "operationId"), "patchAppsV1NamespacedDeploymentScale");
    json_decref(apps);

    CHECK(as_openapi_group_version(reg, "batch", "v1") == NULL);
    CHECK(as_openapi_group_version(reg, "modelgate.dev", "v1") == NULL);
    json_decref(crd);
    as_registry_free(reg);
}

static void t_openapi_crd_schema(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    json_t *doc = as_openapi_group_version(reg, "modelgate.dev", "v1alpha1");
    REQUIRE(doc);
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *s = json_object_get(schemas, "dev.modelgate.v1alpha1.ModelDeployment");
    REQUIRE(s);
    CHECK_JSON(json_object_get(s, "x-kubernetes-group-version-kind"),
               "[{\"group\":\"modelgate.dev\",\"version\":\"v1alpha1\",\"kind\":\"ModelDeployment\"}]");
    json_t *props = json_object_get(s, "properties");
    CHECK_EQ_STR(jstr(json_object_get(json_object_get(json_object_get(props, "spec"), "properties"),
                                      "model"),
                      "type"),
                 "string");
    CHECK_EQ_STR(jstr(json_object_get(props, "apiVersion"), "type"), "string");
    CHECK_EQ_STR(jstr(json_object_get(props, "kind"), "type"), "string");
    CHECK(json_object_get(props, "metadata") != NULL);
    CHECK(json_is_true(json_object_get(json_object_get(props, "status"),
                                       "x-kubernetes-preserve-unknown-fields")));
    json_t *list = json_object_get(schemas, "dev.modelgate.v1alpha1.ModelDeploymentList");
    REQUIRE(list);
    CHECK_JSON(json_object_get(list, "x-kubernetes-group-version-kind"),
               "[{\"group\":\"modelgate.dev\",\"version\":\"v1alpha1\",\"kind\":\"ModelDeploymentList\"}]");
    /* The registry's own copy is not touched by publishing it. */
    const struct as_resource *r = as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments");
    CHECK(json_object_get(json_object_get(r->schema, "properties"), "apiVersion") == NULL);
    /* Custom resources take merge patches, never strategic ones. */
    json_t *patch = json_object_get(json_object_get(json_object_get(doc, "paths"),
        "/apis/modelgate.dev/v1alpha1/namespaces/{namespace}/modeldeployments/{name}"), "patch");
    REQUIRE(patch);
    CHECK_EQ_STR(jstr(patch, "operationId"), "patchModelgateDevV1alpha1NamespacedModelDeployment");
    CHECK(json_object_get(json_object_get(json_object_get(patch, "requestBody"), "content"),
                          "application/strategic-merge-patch+json") == NULL);
    CHECK(json_object_get(json_object_get(json_object_get(doc, "paths"),
        "/apis/modelgate.dev/v1alpha1/namespaces/{namespace}/modeldeployments/{name}/status"), "patch") != NULL);
    CHECK(json_object_get(schemas, "io.k8s.api.autoscaling.v1.Scale") != NULL);
    /* Built-ins: minimal, honest schemas explain can still find. */
    json_t *core = as_openapi_group_version(reg, "", "v1");
    json_t *pod = json_object_get(json_object_get(json_object_get(core, "components"), "schemas"),
                                  "io.k8s.api.core.v1.Pod");
    REQUIRE(pod);
    CHECK_EQ_STR(jstr(pod, "type"), "object");
    CHECK(json_is_true(json_object_get(pod, "x-kubernetes-preserve-unknown-fields")));
    CHECK_JSON(json_object_get(pod, "x-kubernetes-group-version-kind"),
               "[{\"group\":\"\",\"version\":\"v1\",\"kind\":\"Pod\"}]");
    json_decref(core);
    json_t *ext = as_openapi_group_version(reg, "apiextensions.k8s.io", "v1");
    CHECK(json_object_get(json_object_get(json_object_get(ext, "components"), "schemas"),
          "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition") != NULL);
    json_decref(ext);
    json_t *co = as_openapi_group_version(reg, "coordination.k8s.io", "v1");
    CHECK(json_object_get(json_object_get(json_object_get(co, "components"), "schemas"),
          "io.k8s.api.coordination.v1.Lease") != NULL);
    json_decref(co);
    json_decref(doc);
    json_decref(crd);
    as_registry_free(reg);
}

/* --- tables ------------------------------------------------------------------------ */

static void t_human_duration(void)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-3, "<invalid>"}, {-2, "<invalid>"}, {-1, "0s"}, {0, "0s"}, {1, "1s"}, {59, "59s"},
        {119, "119s"}, {120, "2m"}, {121, "2m1s"}, {200, "3m20s"}, {599, "9m59s"}, {600, "10m"},
        {601, "10m"}, {179 * 60 + 59, "179m"}, {3 * 3600, "3h"}, {3 * 3600 + 60, "3h1m"},
        {3 * 3600 + 119, "3h1m"}, {8 * 3600 - 1, "7h59m"}, {8 * 3600, "8h"}, {8 * 3600 + 3599, "8h"},
        {48 * 3600 - 1, "47h"}, {48 * 3600, "2d"}, {49 * 3600, "2d1h"}, {8 * 86400 - 1, "7d23h"},
        {8 * 86400, "8d"}, {730LL * 86400 - 1, "729d"}, {730LL * 86400, "2y"},
        {731LL * 86400, "2y1d"}, {8LL * 365 * 86400 - 1, "7y364d"}, {8LL * 365 * 86400, "8y"},
        {20LL * 365 * 86400 + 5 * 86400, "20y"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32], name[64];
        as_reg_human_duration(cases[i].s * 1000000, out, sizeof out);
        snprintf(name, sizeof name, "human_duration %llds", (long long)cases[i].s);
        if (strcmp(out, cases[i].want))
            printf("# %llds: got %s, want %s\n", (long long)cases[i].s, out, cases[i].want);
        test_report(name, !strcmp(out, cases[i].want));
    }
    char out[32];
    /* Go truncates toward zero: -1.9s is still "0s", -2.1s is not. */
    as_reg_human_duration(-1900000, out, sizeof out);
    CHECK_EQ_STR(out, "0s");
    as_reg_human_duration(-2100000, out, sizeof out);
    CHECK_EQ_STR(out, "<invalid>");
    as_reg_human_duration(119999999, out, sizeof out);
    CHECK_EQ_STR(out, "119s");
}

static void t_parse_time(void)
{
    int64_t us;
    CHECK_EQ_INT(as_reg_parse_time("1970-01-01T00:00:00Z", &us), 0);
    CHECK_EQ_INT(us, 0);
    CHECK_EQ_INT(as_reg_parse_time("2026-11-23T14:21:12Z", &us), 0);
    CHECK_EQ_INT(us, 1795443672LL * 1000000);
    CHECK_EQ_INT(as_reg_parse_time("2026-11-23T15:21:12.5+01:00", &us), 0);
    CHECK_EQ_INT(us, 1795443672LL * 1000000 + 500000);
    CHECK_EQ_INT(as_reg_parse_time("2024-02-29T00:00:00.123456789Z", &us), 0);
    CHECK_EQ_INT(us % 1000000, 123456);
    static const char *const bad[] = {"", "2026-11-23", "2026-11-23 14:21:12Z", "2026-13-01T00:00:00Z",
                                      "2026-11-23T24:00:00Z", "2026-11-23T14:21:12", "2026-11-23T14:21:12Zx",
                                      "2026-11-23T14:21:12.Z", "yesterday"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(as_reg_parse_time(bad[i], &us), -EINVAL);
}

/* The column names kubectl prints (upper-cased, priority 0 only), and
 * the -o wide ones. */
static void col_names(json_t *cols, char *normal, char *wide, size_t cap)
{
    normal[0] = wide[0] = '\0';
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c) {
        char up[64];
        const char *n = jstr(c, "name");
        size_t k = 0;
        for (; n && n[k] && k < sizeof up - 1; k++)
            up[k] = (char)toupper((unsigned char)n[k]);
        up[k] = '\0';
        char *dst = json_integer_value(json_object_get(c, "priority")) ? wide : normal;
        snprintf(dst + strlen(dst), cap - strlen(dst), "%s%s", *dst ? "|" : "", up);
    }
}

static void t_table_columns_builtins(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    static const struct {
        const char *g, *plural, *normal, *wide;
    } want[] = {
        {"", "pods", "NAME|READY|STATUS|RESTARTS|AGE", "IP|NODE|NOMINATED NODE|READINESS GATES"},
        {"apps", "deployments", "NAME|READY|UP-TO-DATE|AVAILABLE|AGE", "CONTAINERS|IMAGES|SELECTOR"},
        {"", "services", "NAME|TYPE|CLUSTER-IP|EXTERNAL-IP|PORT(S)|AGE", "SELECTOR"},
        {"", "configmaps", "NAME|DATA|AGE", ""},
        {"", "secrets", "NAME|TYPE|DATA|AGE", ""},
        {"", "namespaces", "NAME|STATUS|AGE", ""},
        {"", "serviceaccounts", "NAME|SECRETS|AGE", ""},
        {"", "events", "LAST SEEN|TYPE|REASON|OBJECT|MESSAGE", "SUBOBJECT|SOURCE|FIRST SEEN|COUNT|NAME"},
        {"coordination.k8s.io", "leases", "NAME|HOLDER|AGE", ""},
        {"apiextensions.k8s.io", "customresourcedefinitions", "NAME|CREATED AT", ""},
    };
    json_t *empty = json_object();
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct as_resource *r = as_registry_find(reg, want[i].g, "v1", want[i].plural);
        REQUIRE(r);
        json_t *cols = as_table_columns(r);
        REQUIRE(cols);
        char normal[256], wide[256];
        col_names(cols, normal, wide, sizeof normal);
        CHECK_EQ_STR(normal, want[i].normal);
        CHECK_EQ_STR(wide, want[i].wide);
        /* Every column has the five fields; the name column says so. */
        size_t k;
        json_t *c;
        int has_name = 0;
        json_array_foreach(cols, k, c) {
            CHECK(json_is_string(json_object_get(c, "name")) && json_is_string(json_object_get(c, "type")) &&
                  json_is_string(json_object_get(c, "format")) &&
                  json_is_string(json_object_get(c, "description")) &&
                  json_is_integer(json_object_get(c, "priority")));
            has_name |= !strcmp(jstr(c, "format"), "name") && !strcmp(jstr(c, "name"), "Name");
        }
        CHECK(has_name);
        /* An object with nothing in it still renders, one cell per column. */
        json_t *cells = as_table_cells(r, empty, 1000);
        CHECK(cells && json_array_size(cells) == json_array_size(cols));
        json_decref(cells);
        json_decref(cols);
    }
    json_decref(empty);
    as_registry_free(reg);
}

#define NOW 1795443672LL /* 2026-11-23T14:21:12Z */

static json_t *cells_of(struct as_registry *reg, const char *g, const char *plural, const char *obj)
{
    const struct as_resource *r = as_registry_find(reg, g, "v1", plural);
    json_t *o = parse(obj);
    json_t *cells = r && o ? as_table_cells(r, o, NOW) : NULL;
    json_decref(o);
    return cells;
}

static void t_table_cells_pods(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *c = cells_of(reg, "", "pods",
        "{\"metadata\":{\"name\":\"web-1\",\"creationTimestamp\":\"2026-11-23T14:16:12Z\"},"
        "\"spec\":{\"nodeName\":\"node-1\",\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]},"
        "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.1.2.3\",\"containerStatuses\":["
        "{\"name\":\"a\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}},"
        "\"lastState\":{\"terminated\":{\"exitCode\":1,\"finishedAt\":\"2026-11-23T14:18:12Z\"}}},"
        "{\"name\":\"b\",\"ready\":false,\"restartCount\":1,\"state\":{\"running\":{}}}]}}");
    CHECK_JSON(c, "[\"web-1\",\"1/2\",\"Running\",\"3 (3m ago)\",\"5m\",\"10.1.2.3\",\"node-1\","
                  "\"<none>\",\"<none>\"]");
    json_decref(c);
    c = cells_of(reg, "", "pods",
        "{\"metadata\":{\"name\":\"p\",\"creationTimestamp\":\"2026-11-23T14:21:02Z\"},"
        "\"spec\":{\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Pending\","
        "\"containerStatuses\":[{\"name\":\"a\",\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\"}}}]}}");
    CHECK_JSON(c, "[\"p\",\"0/1\",\"ImagePullBackOff\",\"0\",\"10s\",\"<none>\",\"<none>\",\"<none>\",\"<none>\"]");
    json_decref(c);
    c = cells_of(reg, "", "pods",
        "{\"metadata\":{\"name\":\"p\",\"creationTimestamp\":\"2026-11-20T14:21:12Z\","
        "\"deletionTimestamp\":\"2026-11-23T14:21:00Z\"},\"spec\":{\"containers\":[{\"name\":\"a\"}]},"
        "\"status\":{\"phase\":\"Running\"}}");
    CHECK_JSON(c, "[\"p\",\"0/1\",\"Terminating\",\"0\",\"3d\",\"<none>\",\"<none>\",\"<none>\",\"<none>\"]");
    json_decref(c);
    c = cells_of(reg, "", "pods",
        "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"initContainers\":[{\"name\":\"i1\"},{\"name\":\"i2\"}],"
        "\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
        "{\"name\":\"i1\",\"state\":{\"terminated\":{\"exitCode\":0}}},{\"name\":\"i2\",\"state\":{\"running\":{}}}]}}");
    CHECK_JSON(c, "[\"p\",\"0/1\",\"Init:1/2\",\"0\",\"<unknown>\",\"<none>\",\"<none>\",\"<none>\",\"<none>\"]");
    json_decref(c);
    as_registry_free(reg);
}

static void t_table_cells_builtins(void)
{
    struct as_registry *reg = new_reg();
    REQUIRE(reg);
    json_t *c = cells_of(reg, "apps", "deployments",
        "{\"metadata\":{\"name\":\"web\",\"creationTimestamp\":\"2026-11-23T12:21:12Z\"},"
        "\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":"
        "[{\"key\":\"tier\",\"operator\":\"In\",\"values\":[\"b\",\"a\"]},{\"key\":\"canary\",\"operator\":\"DoesNotExist\"}]},"
        "\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1\"},"
        "{\"name\":\"proxy\",\"image\":\"modelgate:0.1\"}]}}},"
        "\"status\":{\"readyReplicas\":2,\"updatedReplicas\":3,\"availableReplicas\":2}}");
    CHECK_JSON(c, "[\"web\",\"2/3\",3,2,\"120m\",\"web,proxy\",\"nginx:1,modelgate:0.1\","
                  "\"app=web,!canary,tier in (a,b)\"]");
    json_decref(c);
    c = cells_of(reg, "apps", "deployments", "{\"metadata\":{\"name\":\"d\"},\"spec\":{}}");
    CHECK_JSON(c, "[\"d\",\"0/1\",0,0,\"<unknown>\",\"\",\"\",\"\"]");
    json_decref(c);

    c = cells_of(reg, "", "services",
        "{\"metadata\":{\"name\":\"web\",\"creationTimestamp\":\"2026-11-23T14:20:00Z\"},"
        "\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.96.0.10\",\"ports\":[{\"port\":80,\"protocol\":\"TCP\"},"
        "{\"port\":443,\"nodePort\":30443}],\"selector\":{\"tier\":\"fe\",\"app\":\"web\"}}}");
    CHECK_JSON(c, "[\"web\",\"NodePort\",\"10.96.0.10\",\"<none>\",\"80/TCP,443:30443/TCP\",\"72s\","
                  "\"app=web,tier=fe\"]");
    json_decref(c);
    c = cells_of(reg, "", "services",
        "{\"metadata\":{\"name\":\"lb\"},\"spec\":{\"type\":\"LoadBalancer\",\"clusterIPs\":[\"10.0.0.2\"]}}");
    CHECK_JSON(c, "[\"lb\",\"LoadBalancer\",\"10.0.0.2\",\"<pending>\",\"<none>\",\"<unknown>\",\"<none>\"]");
    json_decref(c);
    c = cells_of(reg, "", "services",
        "{\"metadata\":{\"name\":\"lb\"},\"spec\":{\"type\":\"LoadBalancer\",\"externalIPs\":[\"1.2.3.4\"]},"
        "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"5.6.7.8\"},{\"hostname\":\"lb.example.com\"}]}}}");
    CHECK_EQ_STR(json_string_value(json_array_get(c, 3)), "5.6.7.8,lb.example.com,1.2.3.4");
    json_decref(c);
    c = cells_of(reg, "", "services", "{\"metadata\":{\"name\":\"s\"},\"spec\":{\"ports\":[{\"port\":53,\"protocol\":\"UDP\"}]}}");
    CHECK_JSON(c, "[\"s\",\"ClusterIP\",\"<none>\",\"<none>\",\"53/UDP\",\"<unknown>\",\"<none>\"]");
    json_decref(c);

    c = cells_of(reg, "", "configmaps",
        "{\"metadata\":{\"name\":\"cfg\",\"creationTimestamp\":\"2026-11-22T14:21:12Z\"},"
        "\"data\":{\"a\":\"1\",\"b\":\"2\"},\"binaryData\":{\"c\":\"AA==\"}}");
    CHECK_JSON(c, "[\"cfg\",3,\"24h\"]");
    json_decref(c);
    c = cells_of(reg, "", "secrets",
        "{\"metadata\":{\"name\":\"tls\",\"creationTimestamp\":\"2026-11-23T14:21:12Z\"},"
        "\"type\":\"kubernetes.io/tls\",\"data\":{\"tls.crt\":\"\",\"tls.key\":\"\"}}");
    CHECK_JSON(c, "[\"tls\",\"kubernetes.io/tls\",2,\"0s\"]");
    json_decref(c);
    c = cells_of(reg, "", "secrets", "{\"metadata\":{\"name\":\"s\"}}");
    CHECK_JSON(c, "[\"s\",\"Opaque\",0,\"<unknown>\"]");
    json_decref(c);
    c = cells_of(reg, "", "namespaces",
        "{\"metadata\":{\"name\":\"prod\",\"creationTimestamp\":\"2026-11-13T14:21:12Z\"},"
        "\"status\":{\"phase\":\"Terminating\"}}");
    CHECK_JSON(c, "[\"prod\",\"Terminating\",\"10d\"]");
    json_decref(c);
    c = cells_of(reg, "", "serviceaccounts",
        "{\"metadata\":{\"name\":\"default\",\"creationTimestamp\":\"2026-11-23T14:19:12Z\"},"
        "\"secrets\":[{\"name\":\"t\"}]}");
    CHECK_JSON(c, "[\"default\",1,\"2m\"]");
    json_decref(c);
    c = cells_of(reg, "coordination.k8s.io", "leases",
        "{\"metadata\":{\"name\":\"modelgate-operator\",\"creationTimestamp\":\"2026-11-23T14:11:12Z\"},"
        "\"spec\":{\"holderIdentity\":\"op-1_abc\",\"leaseDurationSeconds\":15}}");
    CHECK_JSON(c, "[\"modelgate-operator\",\"op-1_abc\",\"10m\"]");
    json_decref(c);
    c = cells_of(reg, "apiextensions.k8s.io", "customresourcedefinitions",
        "{\"metadata\":{\"name\":\"modeldeployments.modelgate.dev\","
        "\"creationTimestamp\":\"2026-11-23T15:00:00.25+01:00\"}}");
    CHECK_JSON(c, "[\"modeldeployments.modelgate.dev\",\"2026-11-23T14:00:00Z\"]");
    json_decref(c);

    c = cells_of(reg, "", "events",
        "{\"metadata\":{\"name\":\"web.1800\",\"namespace\":\"default\"},"
        "\"involvedObject\":{\"kind\":\"ModelDeployment\",\"name\":\"llama\",\"fieldPath\":\"spec\"},"
        "\"reason\":\"RolloutStarted\",\"message\":\"  canary v2 at 5%\\n\",\"type\":\"Normal\","
        "\"firstTimestamp\":\"2026-11-23T14:01:12Z\",\"lastTimestamp\":\"2026-11-23T14:20:12Z\","
        "\"count\":4,\"source\":{\"component\":\"modelgate-operator\",\"host\":\"node-1\"}}");
    CHECK_JSON(c, "[\"60s\",\"Normal\",\"RolloutStarted\",\"modeldeployment/llama\",\"spec\","
                  "\"modelgate-operator, node-1\",\"canary v2 at 5%\",\"20m\",4,\"web.1800\"]");
    json_decref(c);
    c = cells_of(reg, "", "events",
        "{\"metadata\":{\"name\":\"e\"},\"involvedObject\":{\"kind\":\"Node\"},\"reason\":\"R\","
        "\"eventTime\":\"2026-11-23T14:21:00.000000Z\",\"reportingComponent\":\"ctl\"}");
    CHECK_JSON(c, "[\"12s\",\"\",\"R\",\"node\",\"\",\"ctl\",\"\",\"12s\",1,\"e\"]");
    json_decref(c);
    as_registry_free(reg);
}

static void t_table_crd_columns(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    const struct as_resource *r = as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments");
    REQUIRE(r);
    json_t *cols = as_table_columns(r);
    char normal[256], wide[256];
    col_names(cols, normal, wide, sizeof normal);
    CHECK_EQ_STR(normal, "NAME|MODEL|PHASE|CANARY|READY|AGE");
    CHECK_EQ_STR(wide, "RATIO|FIRST");
    CHECK_JSON(json_array_get(cols, 1),
               "{\"name\":\"Model\",\"type\":\"string\",\"format\":\"\",\"description\":"
               "\"Custom resource definition column (in JSONPath format): .spec.model\",\"priority\":0}");
    CHECK_JSON(json_array_get(cols, 4),
               "{\"name\":\"Ratio\",\"type\":\"number\",\"format\":\"\",\"description\":"
               "\"Custom resource definition column (in JSONPath format): .status.ratio\",\"priority\":1}");
    CHECK_EQ_STR(jstr(json_array_get(cols, 0), "format"), "name");
    json_decref(cols);

    json_t *obj = parse(
        "{\"apiVersion\":\"modelgate.dev/v1alpha1\",\"kind\":\"ModelDeployment\","
        "\"metadata\":{\"name\":\"llama\",\"creationTimestamp\":\"2026-11-23T14:16:12Z\"},"
        "\"spec\":{\"model\":\"llama-3-8b\",\"items\":[{\"name\":\"first\"},{\"name\":\"second\"}]},"
        "\"status\":{\"weights\":{\"stable\":95,\"candidate\":5},\"ratio\":0.25,\"ready\":true}}");
    json_t *cells = as_table_cells(r, obj, NOW);
    /* Phase is missing: the real server sends null, kubectl prints "". */
    CHECK_JSON(cells, "[\"llama\",\"llama-3-8b\",null,5,0.25,true,\"first\",\"5m\"]");
    json_decref(cells);
    json_decref(obj);

    /* Type-aware rendering of odd values. */
    obj = parse("{\"metadata\":{\"name\":\"x\",\"creationTimestamp\":\"not a time\"},"
                "\"spec\":{\"model\":{\"b\":1,\"a\":[true]},\"items\":[]},"
                "\"status\":{\"phase\":12,\"weights\":{\"candidate\":7.9},\"ratio\":\"high\",\"ready\":\"yes\"}}");
    cells = as_table_cells(r, obj, NOW);
    CHECK_JSON(cells, "[\"x\",\"{\\\"a\\\":[true],\\\"b\\\":1}\",\"12\",7,null,null,null,\"<invalid>\"]");
    json_decref(cells);
    json_decref(obj);

    /* A version without printer columns: Name and Age. */
    json_t *v = json_array_get(json_object_get(json_object_get(crd, "spec"), "versions"), 0);
    json_object_del(v, "additionalPrinterColumns");
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    cols = as_table_columns(r);
    col_names(cols, normal, wide, sizeof normal);
    CHECK_EQ_STR(normal, "NAME|AGE");
    CHECK_EQ_STR(jstr(json_array_get(cols, 1), "type"), "date");
    json_decref(cols);
    obj = parse("{\"metadata\":{\"name\":\"y\",\"creationTimestamp\":\"2026-11-21T10:21:12Z\"}}");
    cells = as_table_cells(r, obj, NOW);
    CHECK_JSON(cells, "[\"y\",\"2d4h\"]");
    json_decref(cells);
    json_decref(obj);
    json_decref(crd);
    as_registry_free(reg);
}

static void t_go_float(void)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {{0.25, "0.25"}, {0.1, "0.1"}, {123456, "123456"}, {1e6, "1e+06"},
                 {1234567, "1.234567e+06"}, {0.0001, "0.0001"}, {0.00001, "1e-05"},
                 {-2.5, "-2.5"}, {0, "0"}, {1e21, "1e+21"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        go_float(cases[i].v, out, sizeof out);
        CHECK_EQ_STR(out, cases[i].want);
    }
}

static void t_jsonpath(void)
{
    json_t *o = parse("{\"a\":{\"b\":[{\"c\":1},{\"c\":2}],\"d.e\":\"x\",\"n\":null}}");
    CHECK_EQ_INT(json_integer_value(as_reg_jsonpath(o, ".a.b[1].c")), 2);
    CHECK_EQ_INT(json_integer_value(as_reg_jsonpath(o, ".a.b[-1].c")), 2);
    CHECK_EQ_INT(json_integer_value(as_reg_jsonpath(o, "{.a.b[0].c}")), 1);
    CHECK_EQ_STR(json_string_value(as_reg_jsonpath(o, ".a['d.e']")), "x");
    CHECK(as_reg_jsonpath(o, ".a.b[2].c") == NULL);
    CHECK(as_reg_jsonpath(o, ".a.n") == NULL);
    CHECK(as_reg_jsonpath(o, ".a.b.c") == NULL);
    CHECK(as_reg_jsonpath(o, ".") == o);
    const char *why;
    CHECK(as_reg_jsonpath_valid(".spec.x", &why));
    CHECK(!as_reg_jsonpath_valid("spec.x", &why));
    CHECK(!as_reg_jsonpath_valid(".spec..x", &why));
    CHECK(!as_reg_jsonpath_valid(".spec[*]", &why));
    CHECK(!as_reg_jsonpath_valid(".spec[?(@.x)]", &why));
    CHECK(!as_reg_jsonpath_valid(".spec['x", &why));
    json_decref(o);
}

static void t_scale(void)
{
    struct as_registry *reg = new_reg();
    json_t *crd = parse(crd_text);
    REQUIRE(reg && crd);
    const struct as_resource *d = as_registry_find(reg, "apps", "v1", "deployments");
    json_t *obj = parse("{\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\",\"uid\":\"u-1\","
                        "\"resourceVersion\":\"42\",\"creationTimestamp\":\"2026-11-23T14:00:00Z\","
                        "\"labels\":{\"x\":\"y\"}},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":"
                        "{\"app\":\"web\"}}},\"status\":{\"replicas\":2}}");
    json_t *s = as_registry_scale(d, obj);
    CHECK_JSON(s, "{\"kind\":\"Scale\",\"apiVersion\":\"autoscaling/v1\",\"metadata\":{\"name\":\"web\","
                  "\"namespace\":\"prod\",\"uid\":\"u-1\",\"resourceVersion\":\"42\","
                  "\"creationTimestamp\":\"2026-11-23T14:00:00Z\"},\"spec\":{\"replicas\":3},"
                  "\"status\":{\"replicas\":2,\"selector\":\"app=web\"}}");
    json_decref(s);
    json_decref(obj);
    CHECK_EQ_INT(as_registry_add_crd(reg, crd), 0);
    const struct as_resource *r = as_registry_find(reg, "modelgate.dev", "v1alpha1", "modeldeployments");
    obj = parse("{\"metadata\":{\"name\":\"m\",\"namespace\":\"d\"},\"spec\":{\"replicas\":0},"
                "\"status\":{\"selector\":\"app=m,version in (v1,v2)\"}}");
    s = as_registry_scale(r, obj);
    CHECK_JSON(s, "{\"kind\":\"Scale\",\"apiVersion\":\"autoscaling/v1\",\"metadata\":{\"name\":\"m\","
                  "\"namespace\":\"d\"},\"spec\":{},\"status\":{\"replicas\":0,"
                  "\"selector\":\"app=m,version in (v1,v2)\"}}");
    json_decref(s);
    CHECK(as_registry_scale(as_registry_find(reg, "", "v1", "pods"), obj) == NULL);
    json_decref(obj);
    json_decref(crd);
    as_registry_free(reg);
}

/* Every value of the CRD replaced by every JSON type: the check never
 * crashes, and whatever it accepts can be served, discovered, published and
 * rendered. */
static size_t count_mutations;

static void try_crd(json_t *crd)
{
    struct as_registry *reg = new_reg();
    struct as_causes c;
    as_causes_init(&c);
    int rc = as_registry_check_crd(reg, crd, &c);
    CHECK(rc == 0 || (rc == -EINVAL && json_array_size(c.causes) > 0));
    if (rc == 0) {
        json_t *copy = json_deep_copy(crd);
        CHECK_EQ_INT(as_registry_add_crd(reg, copy), 0);
        json_decref(copy);
        size_t it = 0;
        const struct as_resource *r;
        while ((r = as_reg_next(reg, &it))) {
            if (r->builtin)
                continue;
            json_t *cols = as_table_columns(r), *cells = as_table_cells(r, crd, NOW);
            CHECK(cols && cells && json_array_size(cols) == json_array_size(cells));
            json_decref(cols);
            json_decref(cells);
            json_t *d = as_discovery_resources(reg, r->group, r->version);
            CHECK(d != NULL);
            json_decref(d);
        }
        json_t *d = as_openapi_root(reg);
        CHECK(d != NULL);
        json_decref(d);
        d = as_discovery_apis(reg);
        CHECK(d != NULL);
        json_decref(d);
    } else {
        /* Refused CRDs are still safe to hand to add (garbage in, -EINVAL or served). */
        json_t *copy = json_deep_copy(crd);
        int arc = as_registry_add_crd(reg, copy);
        CHECK(arc == 0 || arc == -EINVAL);
        json_decref(copy);
    }
    as_causes_free(&c);
    as_registry_free(reg);
    count_mutations++;
}

static void mutate_walk(json_t *root, json_t *v)
{
    static const char *const repl[] = {"null", "1", "-1.5", "\"x\"", "\"\"", "[]", "{}", "true",
                                       "[\"a\",\"B_\"]"};
    if (json_is_object(v)) {
        /* A snapshot of the keys: the loop deletes and re-adds them. */
        char *keys[64];
        size_t n = 0;
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e) if (n < 64) keys[n++] = strdup(k);
        for (size_t ki = 0; ki < n; ki++) {
            e = json_incref(json_object_get(v, keys[ki]));
            for (size_t i = 0; i < sizeof repl / sizeof repl[0]; i++) {
                json_object_set_new(v, keys[ki], parse(repl[i]));
                try_crd(root);
            }
            json_object_del(v, keys[ki]);
            try_crd(root);
            json_object_set_new(v, keys[ki], e);
            mutate_walk(root, e);
            free(keys[ki]);
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_incref(json_array_get(v, i));
            for (size_t j = 0; j < sizeof repl / sizeof repl[0]; j++) {
                json_array_set_new(v, i, parse(repl[j]));
                try_crd(root);
            }
            json_array_set_new(v, i, e);
            mutate_walk(root, e);
        }
    }
}

static void t_crd_every_field_any_type(void)
{
    json_t *crd = parse(crd_text);
    REQUIRE(crd);
    count_mutations = 0;
    mutate_walk(crd, crd);
    printf("# %zu mutated CRDs checked\n", count_mutations);
    CHECK(count_mutations > 500);
    /* The walk restored every value. */
    json_t *orig = parse(crd_text);
    CHECK(json_equal(crd, orig));
    json_decref(orig);
    json_decref(crd);
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
    RUN(t_openapi_root);
    RUN(t_openapi_field_validation);
    RUN(t_openapi_crd_schema);
    RUN(t_human_duration);
    RUN(t_parse_time);
    RUN(t_table_columns_builtins);
    RUN(t_table_cells_pods);
    RUN(t_table_cells_builtins);
    RUN(t_table_crd_columns);
    RUN(t_go_float);
    RUN(t_jsonpath);
    RUN(t_scale);
    RUN(t_crd_every_field_any_type);
    return test_done();
}
