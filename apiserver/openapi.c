/* OpenAPI v3 documents: GET /openapi/v3 (the root, one entry per served
 * group version) and GET /openapi/v3/api/v1, /openapi/v3/apis/<g>/<v>.
 *
 * What kubectl reads from them, and so what they must get right:
 * - kubectl apply/create/replace leave validation to the server (and send
 *   fieldValidation=Strict) when some path's patch operation for the
 *   object's group-version-kind (x-kubernetes-group-version-kind, a single
 *   object) lists a query parameter named fieldValidation
 *   (cli-runtime's queryParamVerifierV3).
 * - kubectl apply computes a strategic merge patch from the v3 schema only
 *   when that patch operation accepts application/strategic-merge-patch+json
 *   (Patcher.gvkSupportsPatchOpenAPIV3). The built-in types' schemas here
 *   are minimal, without the patch merge keys a strategic patch needs, so
 *   their patch operations leave that content type out on purpose: kubectl
 *   then falls back to the Go types compiled into it, which know the merge
 *   keys, and sends the same patch it sends to a real cluster. (The server
 *   still accepts strategic merge patches for them.) Custom resources never
 *   take strategic patches (kubectl sends merge patches), as on a cluster.
 * - kubectl explain finds a kind's schema in components.schemas by its
 *   x-kubernetes-group-version-kind (a list). Custom resources get their
 *   CRD's openAPIV3Schema under a name like
 *   "dev.modelgate.v1alpha1.ModelDeployment", with apiVersion, kind and
 *   metadata added as the real server adds them; built-in types get an
 *   honest minimal schema (type object, unknown fields preserved) that
 *   says where the real documentation lives.
 *
 * hash (in the root's serverRelativeURL) is the SHA-512 of the group
 * document's canonical JSON, upper-case hex as kube-apiserver writes it:
 * it changes exactly when the document does, and kubectl caches by URL. */
#include "apiserver/registry-int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define META_SCHEMA "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
#define LISTMETA_SCHEMA "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
#define STATUS_SCHEMA "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
#define PATCH_SCHEMA "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
#define SCALE_SCHEMA "io.k8s.api.autoscaling.v1.Scale"

#define DESC_API_VERSION                                                                     \
    "APIVersion defines the versioned schema of this representation of an object. Servers " \
    "should convert recognized schemas to the latest internal value, and may reject "        \
    "unrecognized values. More info: "                                                       \
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
#define DESC_KIND                                                                            \
    "Kind is a string value representing the REST resource this object represents. Servers " \
    "may infer this from the endpoint the client submits requests to. Cannot be updated. In " \
    "CamelCase. More info: "                                                                 \
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
#define DESC_METADATA                                                                        \
    "Standard object's metadata. More info: "                                                \
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
#define DESC_FIELD_VALIDATION                                                                \
    "fieldValidation instructs the server on how to handle objects in the request "          \
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: "  \
    "This will ignore any unknown fields that are silently dropped from the object, and "     \
    "will ignore all but the last duplicate field that the decoder encounters. - Warn: "     \
    "This will send a warning via the standard warning response header for each unknown "    \
    "field that is dropped from the object, and for each duplicate field that is "           \
    "encountered. - Strict: This will fail the request with a BadRequest error if any "     \
    "unknown fields would be dropped from the object, or if there are any duplicate fields " \
    "present."

/* --- names ------------------------------------------------------------------------ */

/* The schema name prefix of a group version, as kube-openapi names
 * definitions: built-in groups by their Go package, others by the
 * reversed group ("modelgate.dev" -> "dev.modelgate"). */
static void schema_prefix(const struct as_resource *r, char *out, size_t cap)
{
    if (r->builtin) {
        if (!strcmp(r->group, "apiextensions.k8s.io"))
            snprintf(out, cap, "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.%s",
                     r->version);
        else if (!*r->group)
            snprintf(out, cap, "io.k8s.api.core.%s", r->version);
        else {
            /* "coordination.k8s.io" -> "coordination", "apps" -> "apps" */
            const char *dot = strchr(r->group, '.');
            int n = dot ? (int)(dot - r->group) : (int)strlen(r->group);
            snprintf(out, cap, "io.k8s.api.%.*s.%s", n, r->group, r->version);
        }
        return;
    }
    size_t off = 0;
    const char *g = r->group, *end = g + strlen(g);
    out[0] = '\0';
    while (end > g && off < cap) {
        const char *seg = end;
        while (seg > g && seg[-1] != '.')
            seg--;
        off += (size_t)snprintf(out + off, cap - off, "%s%.*s", off ? "." : "", (int)(end - seg),
                                seg);
        end = seg > g ? seg - 1 : g;
    }
    if (off < cap)
        snprintf(out + off, cap - off, ".%s", r->version);
}

static void schema_name(const struct as_resource *r, const char *kind, char *out, size_t cap)
{
    char prefix[512];
    schema_prefix(r, prefix, sizeof prefix);
    snprintf(out, cap, "%s.%s", prefix, kind);
}

static json_t *ref(const char *name)
{
    char buf[800];
    snprintf(buf, sizeof buf, "#/components/schemas/%s", name);
    return json_pack("{s:s}", "$ref", buf);
}

/* "modelgate.dev" -> "ModelgateDev", "" -> "Core", "coordination.k8s.io"
 * -> "Coordination": how operationIds spell a group. */
static void camel(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    int up = 1;
    if (!*s)
        s = "core";
    const char *k8s = strstr(s, ".k8s.io");
    size_t n = k8s && !k8s[7] ? (size_t)(k8s - s) : strlen(s);
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '.' || s[i] == '-') {
            up = 1;
            continue;
        }
        out[o++] = up ? (char)toupper((unsigned char)s[i]) : s[i];
        up = 0;
    }
    out[o] = '\0';
}

/* --- schemas -------------------------------------------------------------------------- */

static json_t *gvk_list(const char *group, const char *version, const char *kind)
{
    return json_pack("[{s:s, s:s, s:s}]", "group", group, "version", version, "kind", kind);
}

static json_t *gvk_one(const char *group, const char *version, const char *kind)
{
    return json_pack("{s:s, s:s, s:s}", "group", group, "version", version, "kind", kind);
}

static json_t *type_meta_props(void)
{
    return json_pack("{s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:[o]}}", "apiVersion", "description",
                     DESC_API_VERSION, "type", "string", "kind", "description", DESC_KIND, "type",
                     "string", "metadata", "description", DESC_METADATA, "allOf",
                     ref(META_SCHEMA));
}

/* ObjectMeta, with the fields people set and read; enough for explain. */
static json_t *object_meta_schema(void)
{
    return json_pack(
        "{s:s, s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:{s:s}}, s:{s:s, s:{s:s}},"
        " s:{s:s}, s:{s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s}, s:{s:s, s:s},"
        " s:{s:s, s:{s:s}}, s:{s:s, s:{s:s, s:b}}}}",
        "description",
        "ObjectMeta is metadata that all persisted resources must have, which includes all "
        "objects users must create.",
        "type", "object", "properties", "name", "type", "string", "generateName", "type",
        "string", "namespace", "type", "string", "labels", "type", "object",
        "additionalProperties", "type", "string", "annotations", "type", "object",
        "additionalProperties", "type", "string", "uid", "type", "string", "resourceVersion",
        "type", "string", "generation", "type", "integer", "format", "int64",
        "creationTimestamp", "type", "string", "format", "date-time", "deletionTimestamp",
        "type", "string", "format", "date-time", "deletionGracePeriodSeconds", "type",
        "integer", "format", "int64", "finalizers", "type", "array", "items", "type", "string",
        "ownerReferences", "type", "array", "items", "type", "object",
        "x-kubernetes-preserve-unknown-fields", 1);
}

static json_t *builtin_schema(const struct as_resource *r)
{
    char desc[512];
    snprintf(desc, sizeof desc,
             "%s (%s%s%s). modelgate-apiserver publishes a minimal schema and validates on the "
             "server; the full type is documented at https://kubernetes.io/docs/reference/"
             "kubernetes-api/",
             r->kind, r->group, *r->group ? "/" : "", r->version);
    return json_pack("{s:s, s:s, s:o, s:b, s:o}", "description", desc, "type", "object",
                     "properties", type_meta_props(), "x-kubernetes-preserve-unknown-fields", 1,
                     "x-kubernetes-group-version-kind", gvk_list(r->group, r->version, r->kind));
}

/* The CRD's schema with apiVersion, kind and metadata set as the real
 * server's builder sets them. */
static json_t *crd_schema(const struct as_resource *r)
{
    json_t *s = r->schema ? json_deep_copy(r->schema) : json_pack("{s:s}", "type", "object");
    if (!s)
        return NULL;
    json_t *props = json_object_get(s, "properties");
    if (!json_is_object(props)) {
        props = json_object();
        if (json_object_set_new(s, "properties", props))
            goto fail;
    }
    json_t *tm = type_meta_props();
    if (!tm || json_object_update(props, tm)) {
        json_decref(tm);
        goto fail;
    }
    json_decref(tm);
    if (!json_object_get(s, "type") && json_object_set_new(s, "type", json_string("object")))
        goto fail;
    if (json_object_set_new(s, "x-kubernetes-group-version-kind",
                            gvk_list(r->group, r->version, r->kind)))
        goto fail;
    return s;
fail:
    json_decref(s);
    return NULL;
}

static json_t *list_schema(const struct as_resource *r, const char *item_schema)
{
    char desc[400];
    snprintf(desc, sizeof desc, "%s is a list of %s", r->list_kind, r->kind);
    return json_pack("{s:s, s:s, s:[s], s:{s:{s:s, s:s}, s:{s:s, s:o}, s:{s:s, s:s}, s:{s:s, "
                     "s:[o]}}, s:o}",
                     "description", desc, "type", "object", "required", "items", "properties",
                     "apiVersion", "description", DESC_API_VERSION, "type", "string", "items",
                     "type", "array", "items", ref(item_schema), "kind", "description", DESC_KIND,
                     "type", "string", "metadata", "description", "Standard list metadata.",
                     "allOf", ref(LISTMETA_SCHEMA), "x-kubernetes-group-version-kind",
                     gvk_list(r->group, r->version, r->list_kind));
}

static json_t *scale_schema(void)
{
    return json_pack(
        "{s:s, s:s, s:o, s:b, s:o}", "description",
        "Scale represents a scaling request for a resource.", "type", "object", "properties",
        json_pack("{s:{s:s}, s:{s:s}, s:{s:[o]}, s:{s:s, s:{s:{s:s, s:s}}}, s:{s:s, s:[s], "
                  "s:{s:{s:s, s:s}, s:{s:s}}}}",
                  "apiVersion", "type", "string", "kind", "type", "string", "metadata", "allOf",
                  ref(META_SCHEMA), "spec", "type", "object", "properties", "replicas", "type",
                  "integer", "format", "int32", "status", "type", "object", "required",
                  "replicas", "properties", "replicas", "type", "integer", "format", "int32",
                  "selector", "type", "string"),
        "x-kubernetes-preserve-unknown-fields", 0, "x-kubernetes-group-version-kind",
        gvk_list("autoscaling", "v1", "Scale"));
}

/* --- operations ------------------------------------------------------------------------ */

static json_t *query_param(const char *name, const char *type, const char *desc)
{
    return json_pack("{s:s, s:s, s:s, s:{s:s, s:b}}", "name", name, "in", "query", "description",
                     desc, "schema", "type", type, "uniqueItems", 1);
}

static json_t *write_params(int patch)
{
    json_t *p = json_pack(
        "[o, o, o]",
        query_param("dryRun", "string",
                    "When present, indicates that modifications should not be persisted."),
        query_param("fieldManager", "string",
                    "fieldManager is a name associated with the actor or entity that is making "
                    "these changes."),
        query_param("fieldValidation", "string", DESC_FIELD_VALIDATION));
    if (p && patch)
        json_array_append_new(p, query_param("force", "boolean",
                                             "Force is going to \"force\" Apply requests."));
    return p;
}

static json_t *content(const char *schema_name, const char *const *types)
{
    json_t *c = json_object();
    for (size_t i = 0; c && types[i]; i++)
        if (json_object_set_new(c, types[i], json_pack("{s:o}", "schema", ref(schema_name)))) {
            json_decref(c);
            return NULL;
        }
    return c;
}

static const char *const json_types[] = {"application/json", "application/yaml", NULL};

static json_t *responses(const char *schema_name, int created)
{
    json_t *r = json_pack("{s:{s:s, s:o}, s:{s:s}}", "200", "description", "OK", "content",
                          content(schema_name, json_types), "401", "description", "Unauthorized");
    if (r && created)
        json_object_set_new(r, "201",
                            json_pack("{s:s, s:o}", "description", "Created", "content",
                                      content(schema_name, json_types)));
    return r;
}

struct opctx {
    const struct as_resource *r;
    const char *kind_group, *kind_version, *kind; /* the GVK of the body */
    const char *schema;                           /* its schema name */
    const char *what;                             /* "" | "status of " | "scale of " */
    const char *suffix;                           /* "" | "Status" | "Scale" */
};

static json_t *operation(const struct opctx *o, const char *action, const char *verb,
                         const char *verb_desc, int list)
{
    char gc[256], vc[64], id[700], desc[600];
    camel(o->r->group, gc, sizeof gc);
    camel(o->r->version, vc, sizeof vc);
    snprintf(id, sizeof id, "%s%s%s%s%s%s", verb, gc, vc, o->r->namespaced ? "Namespaced" : "",
             o->r->kind, o->suffix);
    snprintf(desc, sizeof desc, "%s %s%s %s", verb_desc, o->what,
             list ? "objects of kind" : "the specified", o->r->kind);
    json_t *op = json_pack("{s:s, s:s, s:s, s:o}", "description", desc, "operationId", id,
                           "x-kubernetes-action", action, "x-kubernetes-group-version-kind",
                           gvk_one(o->kind_group, o->kind_version, o->kind));
    if (!op)
        return NULL;
    int rc = 0;
    if (!strcmp(action, "list")) {
        char lname[700];
        schema_name(o->r, o->r->list_kind, lname, sizeof lname);
        rc |= json_object_set_new(
            op, "parameters",
            json_pack("[o, o, o, o, o, o]",
                      query_param("labelSelector", "string",
                                  "A selector to restrict the list of returned objects by their "
                                  "labels."),
                      query_param("fieldSelector", "string",
                                  "A selector to restrict the list of returned objects by their "
                                  "fields."),
                      query_param("limit", "integer", "limit is a maximum number of responses to "
                                                      "return for a list call."),
                      query_param("continue", "string",
                                  "The continue option should be set when retrieving more results "
                                  "from the server."),
                      query_param("resourceVersion", "string",
                                  "resourceVersion sets a constraint on what resource versions a "
                                  "request may be served from."),
                      query_param("watch", "boolean",
                                  "Watch for changes to the described resources and return them "
                                  "as a stream of add, update, and remove notifications.")));
        rc |= json_object_set_new(op, "responses", responses(lname, 0));
    } else if (!strcmp(action, "patch")) {
        static const char *const patch_builtin[] = {"application/json-patch+json",
                                                    "application/merge-patch+json",
                                                    "application/apply-patch+yaml", NULL};
        rc |= json_object_set_new(op, "parameters", write_params(1));
        rc |= json_object_set_new(op, "requestBody",
                                  json_pack("{s:o, s:b}", "content",
                                            content(PATCH_SCHEMA, patch_builtin), "required", 1));
        rc |= json_object_set_new(op, "responses", responses(o->schema, 1));
    } else if (!strcmp(action, "post") || !strcmp(action, "put")) {
        static const char *const body_types[] = {"*/*", NULL};
        rc |= json_object_set_new(op, "parameters", write_params(0));
        rc |= json_object_set_new(op, "requestBody",
                                  json_pack("{s:o, s:b}", "content", content(o->schema, body_types),
                                            "required", 1));
        rc |= json_object_set_new(op, "responses", responses(o->schema, 1));
    } else if (!strcmp(action, "delete")) {
        rc |= json_object_set_new(op, "parameters",
                                  json_pack("[o, o]",
                                            query_param("dryRun", "string",
                                                        "When present, indicates that "
                                                        "modifications should not be persisted."),
                                            query_param("propagationPolicy", "string",
                                                        "Whether and how garbage collection will "
                                                        "be performed: Orphan, Background or "
                                                        "Foreground.")));
        rc |= json_object_set_new(op, "responses", responses(STATUS_SCHEMA, 0));
        json_t *ok = json_object_get(json_object_get(op, "responses"), "200");
        rc |= json_object_set_new(json_object_get(ok, "content"), "application/json",
                                  json_pack("{s:o}", "schema", ref(o->schema)));
    } else {
        rc |= json_object_set_new(op, "responses", responses(o->schema, 0));
    }
    if (rc) {
        json_decref(op);
        return NULL;
    }
    return op;
}

static json_t *path_param(const char *name, const char *desc)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:{s:s, s:b}}", "name", name, "in", "path",
                     "description", desc, "required", 1, "schema", "type", "string", "uniqueItems",
                     1);
}

static json_t *path_params(int namespaced, int named)
{
    json_t *a = json_array();
    if (a && named)
        json_array_append_new(a, path_param("name", "name of the object"));
    if (a && namespaced)
        json_array_append_new(a, path_param("namespace",
                                            "object name and auth scope, such as for teams and "
                                            "projects"));
    return a;
}

/* Adds the paths of one served type to paths. */
static int add_paths(json_t *paths, const struct as_resource *r, const char *kind_schema)
{
    char base[700], coll[900], item[1000], sub[1100];
    if (*r->group)
        snprintf(base, sizeof base, "/apis/%s/%s", r->group, r->version);
    else
        snprintf(base, sizeof base, "/api/%s", r->version);
    if (r->namespaced)
        snprintf(coll, sizeof coll, "%s/namespaces/{namespace}/%s", base, r->resource);
    else
        snprintf(coll, sizeof coll, "%s/%s", base, r->resource);
    snprintf(item, sizeof item, "%s/{name}", coll);

    struct opctx o = {r, r->group, r->version, r->kind, kind_schema, "", ""};
    int rc = 0;
    rc |= json_object_set_new(paths, coll,
                              json_pack("{s:o, s:o, s:o}", "get",
                                        operation(&o, "list", "list", "list or watch", 1), "post",
                                        operation(&o, "post", "create", "create", 0),
                                        "parameters", path_params(r->namespaced, 0)));
    rc |= json_object_set_new(
        paths, item,
        json_pack("{s:o, s:o, s:o, s:o, s:o}", "get", operation(&o, "get", "read", "read", 0),
                  "put", operation(&o, "put", "replace", "replace", 0), "patch",
                  operation(&o, "patch", "patch", "partially update", 0), "delete",
                  operation(&o, "delete", "delete", "delete", 0), "parameters",
                  path_params(r->namespaced, 1)));
    if (r->namespaced) {
        char all[900];
        snprintf(all, sizeof all, "%s/%s", base, r->resource);
        struct opctx oa = o;
        rc |= json_object_set_new(paths, all,
                                  json_pack("{s:o}", "get",
                                            operation(&oa, "list", "list", "list or watch", 1)));
    }
    if (r->has_status) {
        struct opctx os = {r, r->group, r->version, r->kind, kind_schema, "status of ", "Status"};
        snprintf(sub, sizeof sub, "%s/status", item);
        rc |= json_object_set_new(
            paths, sub,
            json_pack("{s:o, s:o, s:o, s:o}", "get", operation(&os, "get", "read", "read", 0),
                      "put", operation(&os, "put", "replace", "replace", 0), "patch",
                      operation(&os, "patch", "patch", "partially update", 0), "parameters",
                      path_params(r->namespaced, 1)));
    }
    if (r->has_scale) {
        struct opctx osc = {r, "autoscaling", "v1", "Scale", SCALE_SCHEMA, "scale of ", "Scale"};
        snprintf(sub, sizeof sub, "%s/scale", item);
        rc |= json_object_set_new(
            paths, sub,
            json_pack("{s:o, s:o, s:o, s:o}", "get", operation(&osc, "get", "read", "read", 0),
                      "put", operation(&osc, "put", "replace", "replace", 0), "patch",
                      operation(&osc, "patch", "patch", "partially update", 0), "parameters",
                      path_params(r->namespaced, 1)));
    }
    return rc ? -1 : 0;
}

/* --- documents ------------------------------------------------------------------------- */

static json_t *status_schema(void)
{
    return json_pack("{s:s, s:s, s:b, s:o}", "description",
                     "Status is a return value for calls that don't return other objects.", "type",
                     "object", "x-kubernetes-preserve-unknown-fields", 1,
                     "x-kubernetes-group-version-kind", gvk_list("", "v1", "Status"));
}

json_t *as_openapi_group_version(const struct as_registry *reg, const char *group,
                                 const char *version)
{
    if (!group || !version)
        return NULL;
    json_t *paths = json_object(), *schemas = json_object(), *doc = NULL;
    int found = 0, scale = 0, rc = 0;
    if (!paths || !schemas)
        goto out;
    size_t it = 0;
    const struct as_resource *r;
    while ((r = as_reg_next(reg, &it))) {
        if (strcmp(r->group, group) || strcmp(r->version, version))
            continue;
        found = 1;
        char kname[700], lname[700];
        schema_name(r, r->kind, kname, sizeof kname);
        schema_name(r, r->list_kind, lname, sizeof lname);
        rc |= json_object_set_new(schemas, kname, r->builtin ? builtin_schema(r) : crd_schema(r));
        rc |= json_object_set_new(schemas, lname, list_schema(r, kname));
        rc |= add_paths(paths, r, kname);
        scale |= r->has_scale;
    }
    if (!found || rc)
        goto out;
    rc |= json_object_set_new(schemas, META_SCHEMA, object_meta_schema());
    rc |= json_object_set_new(schemas, LISTMETA_SCHEMA,
                              json_pack("{s:s, s:s, s:b}", "description",
                                        "ListMeta describes metadata that synthetic resources "
                                        "must have, including lists.",
                                        "type", "object", "x-kubernetes-preserve-unknown-fields",
                                        1));
    rc |= json_object_set_new(schemas, STATUS_SCHEMA, status_schema());
    rc |= json_object_set_new(schemas, PATCH_SCHEMA,
                              json_pack("{s:s, s:s}", "description",
                                        "Patch is provided to give a concrete name and type to "
                                        "the Kubernetes PATCH request body.",
                                        "type", "object"));
    if (scale)
        rc |= json_object_set_new(schemas, SCALE_SCHEMA, scale_schema());
    if (rc)
        goto out;
    doc = json_pack("{s:s, s:{s:s, s:s}, s:O, s:{s:O}}", "openapi", "3.0.0", "info", "title",
                    "Kubernetes", "version", "unversioned", "paths", paths, "components",
                    "schemas", schemas);
out:
    json_decref(paths);
    json_decref(schemas);
    return doc;
}

/* SHA-512 of the document's canonical form, upper-case hex. */
static int doc_hash(json_t *doc, char out[129])
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = s && EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha512(), NULL) == 1 && mdlen == 64;
    free(s);
    if (!ok)
        return -1;
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02X", md[i]);
    return 0;
}

json_t *as_openapi_root(const struct as_registry *reg)
{
    json_t *paths = json_object(), *doc = NULL;
    if (!paths)
        return NULL;
    /* Distinct group versions, each documented once. */
    size_t it = 0;
    const struct as_resource *r;
    while ((r = as_reg_next(reg, &it))) {
        char key[600], hash[129], url[800];
        if (*r->group)
            snprintf(key, sizeof key, "apis/%s/%s", r->group, r->version);
        else
            snprintf(key, sizeof key, "api/%s", r->version);
        if (json_object_get(paths, key))
            continue;
        json_t *gv = as_openapi_group_version(reg, r->group, r->version);
        int rc = !gv || doc_hash(gv, hash);
        json_decref(gv);
        if (rc)
            goto out;
        snprintf(url, sizeof url, "/openapi/v3/%s?hash=%s", key, hash);
        if (json_object_set_new(paths, key, json_pack("{s:s}", "serverRelativeURL", url)))
            goto out;
    }
    doc = json_pack("{s:O}", "paths", paths);
out:
    json_decref(paths);
    return doc;
}
