/* The served types: the built-in resources and those that CRDs define.
 *
 * Built-ins are a static table. A CRD version becomes an entry allocated
 * here; entries are never freed before as_registry_free, even when the CRD
 * is deleted (the entry is only marked not served, and reused if the CRD
 * comes back). That keeps every `const struct as_resource *` the server
 * handed to a long-lived watch valid: a watch that outlives its CRD can
 * still render its last events. The number of entries is capped
 * (AS_REG_MAX_CRD_TYPES), so this cannot grow without bound.
 *
 * CRD validation follows apiextensions-apiserver's
 * ValidateCustomResourceDefinition, with its field paths and messages,
 * for the parts modelgate-apiserver supports; what it does not support
 * (conversion webhooks, preserveUnknownFields: true) is refused with a
 * message that says so. */
#include "apiserver/registry-int.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiserver/schema.h"

/* Every CRD version served at once, over the registry's lifetime. */
#define AS_REG_MAX_CRD_TYPES 4096
/* Names (plural, kind, group, ...) longer than this are refused. */
#define AS_REG_NAME_MAX 253

const char *const as_reg_verbs[] = {"create", "delete", "get", "list", "patch", "update", "watch",
                                    NULL};
const char *const as_reg_sub_verbs[] = {"get", "patch", "update", NULL};

/* --- built-in types --------------------------------------------------------- */

static const char *const none[] = {NULL};
static const char *const fp_meta[] = {"metadata.name", "metadata.namespace", NULL};
static const char *const fp_namespace[] = {"metadata.name", "metadata.namespace", "status.phase",
                                           NULL};
static const char *const fp_secret[] = {"metadata.name", "metadata.namespace", "type", NULL};
static const char *const fp_pod[] = {"metadata.name", "metadata.namespace", "spec.nodeName",
                                     "status.phase", NULL};
static const char *const fp_event[] = {
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "type",
    "source",
    NULL,
};

static const char *const sn_ns[] = {"ns", NULL};
static const char *const sn_cm[] = {"cm", NULL};
static const char *const sn_svc[] = {"svc", NULL};
static const char *const sn_sa[] = {"sa", NULL};
static const char *const sn_ev[] = {"ev", NULL};
static const char *const sn_po[] = {"po", NULL};
static const char *const sn_deploy[] = {"deploy", NULL};
static const char *const sn_crd[] = {"crd", "crds", NULL};
static const char *const cat_all[] = {"all", NULL};
static const char *const cat_apiext[] = {"api-extensions", NULL};

#define BUILTIN(g, plural, sing, k, grkey, nsd, st, sn, cat, fp)                               \
    {                                                                                      \
        .group = (g), .version = "v1", .resource = (plural), .singular = (sing), .kind = (k), \
        .list_kind = k "List", .gr = (grkey), .namespaced = (nsd), .builtin = 1,          \
        .has_status = (st), .short_names = (sn), .categories = (cat), .field_paths = (fp), \
    }

static const struct as_resource builtins[] = {
    BUILTIN("", "namespaces", "namespace", "Namespace", "/namespaces", 0, 1, sn_ns, none,
            fp_namespace),
    BUILTIN("", "configmaps", "configmap", "ConfigMap", "/configmaps", 1, 0, sn_cm, none, fp_meta),
    BUILTIN("", "secrets", "secret", "Secret", "/secrets", 1, 0, none, none, fp_secret),
    BUILTIN("", "services", "service", "Service", "/services", 1, 1, sn_svc, cat_all, fp_meta),
    BUILTIN("", "serviceaccounts", "serviceaccount", "ServiceAccount", "/serviceaccounts", 1, 0,
            sn_sa, none, fp_meta),
    BUILTIN("", "events", "event", "Event", "/events", 1, 0, sn_ev, none, fp_event),
    BUILTIN("", "pods", "pod", "Pod", "/pods", 1, 1, sn_po, cat_all, fp_pod),
    {
        .group = "apps",
        .version = "v1",
        .resource = "deployments",
        .singular = "deployment",
        .kind = "Deployment",
        .list_kind = "DeploymentList",
        .gr = "apps/deployments",
        .namespaced = 1,
        .builtin = 1,
        .has_status = 1,
        .has_scale = 1,
        .scale_spec_path = ".spec.replicas",
        .scale_status_path = ".status.replicas",
        /* An object (a LabelSelector), not a string as CRDs' selector
         * paths are: as_registry_scale renders it as the real API does. */
        .scale_selector_path = ".spec.selector",
        .short_names = sn_deploy,
        .categories = cat_all,
        .field_paths = fp_meta,
    },
    BUILTIN("coordination.k8s.io", "leases", "lease", "Lease", "coordination.k8s.io/leases", 1, 0,
            none, none, fp_meta),
    BUILTIN("apiextensions.k8s.io", "customresourcedefinitions", "customresourcedefinition",
            "CustomResourceDefinition", "apiextensions.k8s.io/customresourcedefinitions", 0, 1,
            sn_crd, cat_apiext, fp_meta),
};
#define N_BUILTINS (sizeof builtins / sizeof builtins[0])

/* --- CRD-defined types ---------------------------------------------------- */

struct crd_type {
    struct as_resource res; /* first: callers hold &res */
    char *crd_name;         /* "<plural>.<group>" */
    int served;
};

struct as_registry {
    struct crd_type **types;
    size_t n, cap;
};

int as_registry_new(struct as_registry **out)
{
    struct as_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return -ENOMEM;
    *out = reg;
    return 0;
}

static void free_list(const char *const *l)
{
    if (!l || l == none)
        return;
    for (size_t i = 0; l[i]; i++)
        free((void *)l[i]);
    free((void *)l);
}

/* Frees what an entry owns, leaving it empty (not served). */
static void crd_type_clear(struct crd_type *t)
{
    struct as_resource *r = &t->res;
    free((void *)r->group);
    free((void *)r->version);
    free((void *)r->resource);
    free((void *)r->singular);
    free((void *)r->kind);
    free((void *)r->list_kind);
    free((void *)r->gr);
    free((void *)r->scale_spec_path);
    free((void *)r->scale_status_path);
    free((void *)r->scale_selector_path);
    free_list(r->short_names);
    free_list(r->categories);
    json_decref(r->schema);
    json_decref(r->columns);
    memset(r, 0, sizeof *r);
    t->served = 0;
}

void as_registry_free(struct as_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        crd_type_clear(reg->types[i]);
        free(reg->types[i]->crd_name);
        free(reg->types[i]);
    }
    free(reg->types);
    free(reg);
}

const struct as_resource *as_reg_next(const struct as_registry *reg, size_t *iter)
{
    while (*iter < N_BUILTINS + reg->n) {
        size_t i = (*iter)++;
        if (i < N_BUILTINS)
            return &builtins[i];
        if (reg->types[i - N_BUILTINS]->served)
            return &reg->types[i - N_BUILTINS]->res;
    }
    return NULL;
}

const struct as_resource *as_registry_find(const struct as_registry *reg, const char *group,
                                           const char *version, const char *resource)
{
    if (!group || !version || !resource)
        return NULL;
    size_t it = 0;
    const struct as_resource *r;
    while ((r = as_reg_next(reg, &it)))
        if (!strcmp(r->group, group) && !strcmp(r->version, version) &&
            !strcmp(r->resource, resource))
            return r;
    return NULL;
}

const struct as_resource *as_registry_find_kind(const struct as_registry *reg,
                                                const char *api_version, const char *kind)
{
    if (!api_version || !kind)
        return NULL;
    const char *slash = strchr(api_version, '/');
    size_t glen = slash ? (size_t)(slash - api_version) : 0;
    const char *version = slash ? slash + 1 : api_version;
    size_t it = 0;
    const struct as_resource *r;
    while ((r = as_reg_next(reg, &it)))
        if (strlen(r->group) == glen && !strncmp(r->group, api_version, glen) &&
            !strcmp(r->version, version) && !strcmp(r->kind, kind))
            return r;
    return NULL;
}

/* --- causes ------------------------------------------------------------------ */

/* A value as Kubernetes' field errors print it: strings quoted, numbers and
 * booleans bare, anything else as compact JSON (shortened). */
static void fmt_value(json_t *v, char *out, size_t cap)
{
    if (!v || json_is_null(v)) {
        snprintf(out, cap, "null");
    } else if (json_is_string(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        snprintf(out, cap, "%s", s ? s : "\"\"");
        free(s);
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        snprintf(out, cap, "%s", s ? s : "?");
        free(s);
    }
    if (strlen(out) == cap - 1 && cap > 4)
        memcpy(out + cap - 4, "...", 4);
}

static void crd_cause(struct as_causes *c, const char *reason, const char *field, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static void crd_cause(struct as_causes *c, const char *reason, const char *field, const char *fmt,
                      ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!c->causes)
        c->causes = json_array();
    if (!c->causes)
        return;
    json_array_append_new(c->causes,
                          json_pack("{s:s, s:s, s:s}", "reason", reason, "message", msg, "field",
                                    field));
}

static void crd_required(struct as_causes *c, const char *field, const char *detail)
{
    if (detail && *detail)
        crd_cause(c, "FieldValueRequired", field, "Required value: %s", detail);
    else
        crd_cause(c, "FieldValueRequired", field, "Required value");
}

static void crd_invalid(struct as_causes *c, const char *field, json_t *value,
                          const char *detail)
{
    char v[160];
    fmt_value(value, v, sizeof v);
    crd_cause(c, "FieldValueInvalid", field, "Invalid value: %s: %s", v, detail);
}

static void crd_invalid_str(struct as_causes *c, const char *field, const char *value,
                              const char *detail)
{
    json_t *v = json_string(value);
    crd_invalid(c, field, v, detail);
    json_decref(v);
}

/* --- names ------------------------------------------------------------------- */

#define DNS1035_MSG                                                                        \
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "  \
    "with an alphabetic character, and end with an alphanumeric character (e.g. "         \
    "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
#define DNS1123_SUB_MSG                                                                    \
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, " \
    "'-' or '.', and must start and end with an alphanumeric character (e.g. "            \
    "'example.com', regex used for validation is "                                       \
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

static int is_lower_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* k8s.io/apimachinery/pkg/util/validation.IsDNS1035Label, its messages
 * joined by ","; NULL when s is valid. */
static const char *dns1035_errors(const char *s)
{
    size_t n = strlen(s);
    int ok = n > 0 && s[0] >= 'a' && s[0] <= 'z' && is_lower_alnum(s[n - 1]);
    for (size_t i = 0; ok && i < n; i++)
        ok = is_lower_alnum(s[i]) || s[i] == '-';
    if (n > 63)
        return ok ? "must be no more than 63 characters"
                  : "must be no more than 63 characters," DNS1035_MSG;
    return ok ? NULL : DNS1035_MSG;
}

/* IsDNS1123Subdomain. */
static const char *dns1123_subdomain_errors(const char *s)
{
    size_t n = strlen(s);
    int ok = n > 0;
    for (size_t i = 0; ok && i < n; i++) {
        char ch = s[i];
        if (ch == '.')
            ok = i > 0 && i + 1 < n && is_lower_alnum(s[i - 1]) && is_lower_alnum(s[i + 1]);
        else
            ok = is_lower_alnum(ch) || (ch == '-' && i > 0 && i + 1 < n);
    }
    if (ok && n)
        ok = is_lower_alnum(s[0]) && is_lower_alnum(s[n - 1]);
    if (n > 253)
        return ok ? "must be no more than 253 characters"
                  : "must be no more than 253 characters," DNS1123_SUB_MSG;
    return ok ? NULL : DNS1123_SUB_MSG;
}

static char *lower_dup(const char *s)
{
    char *d = strdup(s);
    if (d)
        for (char *p = d; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return d;
}

static const char *jstr(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* The CRD's names with the API's defaults applied (singular: lower(kind),
 * listKind: kind + "List"). Strings are borrowed from the CRD or from
 * buf. */
struct crd_names {
    const char *plural, *singular, *kind, *list_kind;
    json_t *short_names, *categories; /* arrays or NULL */
    char singular_buf[AS_REG_NAME_MAX + 1], list_kind_buf[AS_REG_NAME_MAX + 8];
};

static void crd_names_get(json_t *names, struct crd_names *n)
{
    memset(n, 0, offsetof(struct crd_names, singular_buf));
    n->singular_buf[0] = n->list_kind_buf[0] = '\0';
    n->plural = jstr(names, "plural");
    n->kind = jstr(names, "kind");
    n->singular = jstr(names, "singular");
    n->list_kind = jstr(names, "listKind");
    if ((!n->singular || !*n->singular) && n->kind && strlen(n->kind) <= AS_REG_NAME_MAX) {
        size_t i = 0;
        for (; n->kind[i]; i++)
            n->singular_buf[i] = (char)tolower((unsigned char)n->kind[i]);
        n->singular_buf[i] = '\0';
        n->singular = n->singular_buf;
    }
    if ((!n->list_kind || !*n->list_kind) && n->kind && *n->kind &&
        strlen(n->kind) <= AS_REG_NAME_MAX) {
        snprintf(n->list_kind_buf, sizeof n->list_kind_buf, "%sList", n->kind);
        n->list_kind = n->list_kind_buf;
    }
    n->short_names = json_is_array(json_object_get(names, "shortNames"))
                         ? json_object_get(names, "shortNames")
                         : NULL;
    n->categories = json_is_array(json_object_get(names, "categories"))
                        ? json_object_get(names, "categories")
                        : NULL;
}

/* --- CRD validation ------------------------------------------------------------ */

static void check_label(struct as_causes *c, const char *field, json_t *v, int required,
                        int mixed_case)
{
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) {
        if (required)
            crd_required(c, field, NULL);
        return;
    }
    if (!json_is_string(v)) {
        crd_invalid(c, field, v, "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    char *low = mixed_case ? lower_dup(s) : NULL;
    const char *errs = dns1035_errors(low ? low : s);
    if (errs) {
        char detail[600];
        snprintf(detail, sizeof detail, "%s%s",
                 mixed_case ? "may have mixed case, but should otherwise match: " : "", errs);
        crd_invalid(c, field, v, detail);
    }
    free(low);
}

static void check_label_list(struct as_causes *c, const char *field, json_t *v)
{
    if (!v || json_is_null(v))
        return;
    if (!json_is_array(v)) {
        crd_invalid(c, field, v, "must be a list of strings");
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        char f[128];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        check_label(c, f, e, 1, 0);
    }
}

static int list_has(json_t *arr, const char *s)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) if (json_is_string(e) && !strcmp(json_string_value(e), s)) return 1;
    return 0;
}

static int strlist_has(const char *const *l, const char *s)
{
    for (size_t i = 0; l && l[i]; i++)
        if (!strcmp(l[i], s))
            return 1;
    return 0;
}

/* Is s one of the resource names (plural, singular, short names) of r? */
static int resource_name_taken(const struct as_resource *r, const char *s)
{
    return !strcmp(r->resource, s) || (r->singular && !strcmp(r->singular, s)) ||
           strlist_has(r->short_names, s);
}

static const char *crd_name_of(const struct as_resource *r)
{
    return r->builtin ? NULL : ((const struct crd_type *)r)->crd_name;
}

/* Names already served in the CRD's group by another type: the API reports
 * these in the NamesAccepted condition; here they refuse the CRD, since
 * modelgate-apiserver serves a CRD at once or not at all. */
static void check_clash(const struct as_registry *reg, struct as_causes *c, const char *name,
                        const char *group, const struct crd_names *n)
{
    size_t it = 0;
    const struct as_resource *r;
    while ((r = as_reg_next(reg, &it))) {
        if (strcmp(r->group, group))
            continue;
        const char *owner = crd_name_of(r);
        if (owner && !strcmp(owner, name))
            continue; /* the CRD itself, being updated */
        /* A type served at several versions is reported once. */
        size_t it2 = 0;
        const struct as_resource *first;
        while ((first = as_reg_next(reg, &it2)) && first != r)
            if (!strcmp(first->group, group) && !strcmp(first->resource, r->resource))
                break;
        if (first != r)
            continue;
        char why[512];
        snprintf(why, sizeof why, "already in use by %s%s%s", r->resource, *r->group ? "." : "",
                 r->group);
        if (n->plural && resource_name_taken(r, n->plural))
            crd_invalid_str(c, "spec.names.plural", n->plural, why);
        if (n->singular && *n->singular && resource_name_taken(r, n->singular) &&
            !(n->plural && !strcmp(n->plural, n->singular)))
            crd_invalid_str(c, "spec.names.singular", n->singular, why);
        size_t i;
        json_t *e;
        if (n->short_names)
            json_array_foreach(n->short_names, i, e) {
                if (json_is_string(e) && resource_name_taken(r, json_string_value(e))) {
                    char f[64];
                    snprintf(f, sizeof f, "spec.names.shortNames[%zu]", i);
                    crd_invalid_str(c, f, json_string_value(e), why);
                }
            }
        if (n->kind && (!strcmp(r->kind, n->kind) || !strcmp(r->list_kind, n->kind)))
            crd_invalid_str(c, "spec.names.kind", n->kind, why);
        if (n->list_kind && (!strcmp(r->kind, n->list_kind) || !strcmp(r->list_kind, n->list_kind)))
            crd_invalid_str(c, "spec.names.listKind", n->list_kind, why);
    }
}

/* A JSONPath that must lie under one of the prefixes (".spec", ".status"). */
static void check_scale_path(struct as_causes *c, const char *field, json_t *v, int required,
                             const char *prefix1, const char *prefix2, const char *detail)
{
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) {
        if (required)
            crd_required(c, field, NULL);
        return;
    }
    if (!json_is_string(v)) {
        crd_invalid(c, field, v, "must be a string");
        return;
    }
    const char *s = json_string_value(v);
    const char *why = NULL;
    size_t l1 = strlen(prefix1), l2 = prefix2 ? strlen(prefix2) : 0;
    int under = (!strncmp(s, prefix1, l1) && s[l1] == '.' && s[l1 + 1]) ||
                (prefix2 && !strncmp(s, prefix2, l2) && s[l2] == '.' && s[l2 + 1]);
    if (!under)
        crd_invalid(c, field, v, detail);
    else if (!as_reg_jsonpath_valid(s, &why))
        crd_invalid(c, field, v, why);
}

static const char *const column_types[] = {"boolean", "date", "integer", "number", "string", NULL};
static const char *const column_formats[] = {"byte",  "date",     "date-time", "double",
                                             "float", "int32",    "int64",     "password",
                                             NULL};

static void not_supported(struct as_causes *c, const char *field, const char *value,
                          const char *const *supported)
{
    char list[512] = "";
    size_t off = 0;
    for (size_t i = 0; supported[i] && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%s\"%s\"", i ? ", " : "",
                                supported[i]);
    crd_cause(c, "FieldValueNotSupported", field, "Unsupported value: \"%s\": supported values: %s",
              value, list);
}

static void check_columns(struct as_causes *c, const char *vpath, json_t *cols)
{
    char f[256];
    snprintf(f, sizeof f, "%s.additionalPrinterColumns", vpath);
    if (!json_is_array(cols)) {
        crd_invalid(c, f, cols, "must be a list of columns");
        return;
    }
    size_t i;
    json_t *col;
    json_array_foreach(cols, i, col) {
        char p[300];
        snprintf(p, sizeof p, "%s[%zu]", f, i);
        if (!json_is_object(col)) {
            crd_invalid(c, p, col, "must be an object");
            continue;
        }
        json_t *name = json_object_get(col, "name"), *type = json_object_get(col, "type");
        json_t *format = json_object_get(col, "format"), *jp = json_object_get(col, "jsonPath");
        json_t *prio = json_object_get(col, "priority"), *desc = json_object_get(col, "description");
        char fp[340];
        snprintf(fp, sizeof fp, "%s.name", p);
        if (!json_is_string(name) || !*json_string_value(name)) {
            if (name && !json_is_null(name) && !json_is_string(name))
                crd_invalid(c, fp, name, "must be a string");
            else
                crd_required(c, fp, NULL);
        }
        snprintf(fp, sizeof fp, "%s.type", p);
        if (!json_is_string(type) || !*json_string_value(type))
            crd_required(c, fp, "must be one of boolean,date,integer,number,string");
        else if (!strlist_has(column_types, json_string_value(type)))
            not_supported(c, fp, json_string_value(type), column_types);
        snprintf(fp, sizeof fp, "%s.format", p);
        if (format && !json_is_null(format)) {
            if (!json_is_string(format))
                crd_invalid(c, fp, format, "must be a string");
            else if (*json_string_value(format) &&
                     !strlist_has(column_formats, json_string_value(format)))
                not_supported(c, fp, json_string_value(format), column_formats);
        }
        snprintf(fp, sizeof fp, "%s.jsonPath", p);
        if (!json_is_string(jp) || !*json_string_value(jp)) {
            crd_required(c, fp, NULL);
        } else {
            const char *s = json_string_value(jp), *why = NULL;
            if (s[0] != '.')
                crd_invalid(c, fp, jp, "must be a simple json path starting with .");
            else if (!as_reg_jsonpath_valid(s, &why))
                crd_invalid(c, fp, jp, why);
        }
        snprintf(fp, sizeof fp, "%s.priority", p);
        if (prio && !json_is_null(prio) && (!json_is_integer(prio) || json_integer_value(prio) < 0 ||
                                            json_integer_value(prio) > INT32_MAX))
            crd_invalid(c, fp, prio, "must be a non-negative 32-bit integer");
        snprintf(fp, sizeof fp, "%s.description", p);
        if (desc && !json_is_null(desc) && !json_is_string(desc))
            crd_invalid(c, fp, desc, "must be a string");
    }
}

static void check_version(struct as_causes *c, json_t *v, size_t i, json_t *versions,
                          int *storage, int *served)
{
    char p[64], f[256];
    snprintf(p, sizeof p, "spec.versions[%zu]", i);
    if (!json_is_object(v)) {
        crd_invalid(c, p, v, "must be an object");
        return;
    }
    json_t *name = json_object_get(v, "name");
    snprintf(f, sizeof f, "%s.name", p);
    check_label(c, f, name, 1, 0);
    if (json_is_string(name))
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_object_get(json_array_get(versions, j), "name"), name)) {
                crd_cause(c, "FieldValueDuplicate", f, "Duplicate value: \"%s\"",
                          json_string_value(name));
                break;
            }
    static const char *const flags[] = {"served", "storage"};
    for (int k = 0; k < 2; k++) {
        json_t *b = json_object_get(v, flags[k]);
        snprintf(f, sizeof f, "%s.%s", p, flags[k]);
        if (!b || json_is_null(b))
            crd_required(c, f, NULL);
        else if (!json_is_boolean(b))
            crd_invalid(c, f, b, "must be a boolean");
        else if (json_is_true(b))
            (*(k ? storage : served))++;
    }

    json_t *schema = json_object_get(json_object_get(v, "schema"), "openAPIV3Schema");
    snprintf(f, sizeof f, "%s.schema.openAPIV3Schema", p);
    if (!schema || json_is_null(schema))
        crd_required(c, f, "schemas are required");
    else
        as_schema_check(schema, f, c);

    json_t *sub = json_object_get(v, "subresources");
    if (sub && !json_is_null(sub)) {
        snprintf(f, sizeof f, "%s.subresources", p);
        if (!json_is_object(sub)) {
            crd_invalid(c, f, sub, "must be an object");
        } else {
            json_t *st = json_object_get(sub, "status"), *sc = json_object_get(sub, "scale");
            snprintf(f, sizeof f, "%s.subresources.status", p);
            if (st && !json_is_null(st) && !json_is_object(st))
                crd_invalid(c, f, st, "must be an object ({})");
            if (sc && !json_is_null(sc)) {
                snprintf(f, sizeof f, "%s.subresources.scale", p);
                if (!json_is_object(sc)) {
                    crd_invalid(c, f, sc, "must be an object");
                } else {
                    snprintf(f, sizeof f, "%s.subresources.scale.specReplicasPath", p);
                    check_scale_path(c, f, json_object_get(sc, "specReplicasPath"), 1, ".spec",
                                     NULL, "should be a json path under .spec");
                    snprintf(f, sizeof f, "%s.subresources.scale.statusReplicasPath", p);
                    check_scale_path(c, f, json_object_get(sc, "statusReplicasPath"), 1, ".status",
                                     NULL, "should be a json path under .status");
                    snprintf(f, sizeof f, "%s.subresources.scale.labelSelectorPath", p);
                    check_scale_path(c, f, json_object_get(sc, "labelSelectorPath"), 0, ".spec",
                                     ".status", "should be a json path under either .spec or .status");
                }
            }
        }
    }
    json_t *cols = json_object_get(v, "additionalPrinterColumns");
    if (cols && !json_is_null(cols))
        check_columns(c, p, cols);
}

int as_registry_check_crd(const struct as_registry *reg, json_t *crd, struct as_causes *c)
{
    if (!c->causes)
        c->causes = json_array();
    size_t before = json_array_size(c->causes);
    if (!json_is_object(crd)) {
        crd_invalid(c, "", crd, "a CustomResourceDefinition must be an object");
        return -EINVAL;
    }
    const char *name = jstr(json_object_get(crd, "metadata"), "name");
    json_t *spec = json_object_get(crd, "spec");
    if (!name || !*name)
        crd_required(c, "metadata.name", NULL);
    if (!json_is_object(spec)) {
        crd_required(c, "spec", NULL);
        return -EINVAL;
    }

    json_t *group = json_object_get(spec, "group");
    const char *g = json_string_value(group);
    int group_ok = 0;
    if (!g || !*g) {
        if (group && !json_is_null(group) && !json_is_string(group))
            crd_invalid(c, "spec.group", group, "must be a string");
        else
            crd_required(c, "spec.group", NULL);
    } else if (dns1123_subdomain_errors(g)) {
        crd_invalid(c, "spec.group", group, dns1123_subdomain_errors(g));
    } else if (!strchr(g, '.')) {
        crd_invalid(c, "spec.group", group, "should be a domain with at least one dot");
    } else {
        group_ok = 1;
    }

    json_t *names = json_object_get(spec, "names");
    struct crd_names n;
    int names_ok = 0;
    if (!json_is_object(names)) {
        crd_required(c, "spec.names", NULL);
        memset(&n, 0, sizeof n);
    } else {
        size_t b2 = json_array_size(c->causes);
        crd_names_get(names, &n);
        check_label(c, "spec.names.plural", json_object_get(names, "plural"), 1, 0);
        check_label(c, "spec.names.singular", json_object_get(names, "singular"), 0, 0);
        check_label(c, "spec.names.kind", json_object_get(names, "kind"), 1, 1);
        check_label(c, "spec.names.listKind", json_object_get(names, "listKind"), 0, 1);
        if (n.kind && n.list_kind && *n.kind && !strcmp(n.kind, n.list_kind))
            crd_invalid_str(c, "spec.names.listKind", n.list_kind,
                              "kind and listKind may not be the same");
        check_label_list(c, "spec.names.shortNames", json_object_get(names, "shortNames"));
        check_label_list(c, "spec.names.categories", json_object_get(names, "categories"));
        names_ok = json_array_size(c->causes) == b2;
    }

    if (name && *name && n.plural && g) {
        size_t lp = strlen(n.plural);
        if (strncmp(name, n.plural, lp) || name[lp] != '.' || strcmp(name + lp + 1, g))
            crd_invalid_str(c, "metadata.name", name,
                              "must be spec.names.plural+\".\"+spec.group");
    }

    static const char *const scopes[] = {"Cluster", "Namespaced", NULL};
    json_t *scope = json_object_get(spec, "scope");
    if (!scope || json_is_null(scope) || (json_is_string(scope) && !*json_string_value(scope)))
        crd_required(c, "spec.scope", NULL);
    else if (!json_is_string(scope))
        crd_invalid(c, "spec.scope", scope, "must be a string");
    else if (!strlist_has(scopes, json_string_value(scope)))
        not_supported(c, "spec.scope", json_string_value(scope), scopes);

    json_t *versions = json_object_get(spec, "versions");
    if (!json_is_array(versions) || !json_array_size(versions)) {
        if (versions && !json_is_null(versions) && !json_is_array(versions))
            crd_invalid(c, "spec.versions", versions, "must be a list of versions");
        else
            crd_required(c, "spec.versions", "must have exactly one version marked as storage version");
    } else {
        int storage = 0, served = 0;
        size_t i;
        json_t *v;
        json_array_foreach(versions, i, v) check_version(c, v, i, versions, &storage, &served);
        if (storage != 1)
            crd_cause(c, "FieldValueInvalid", "spec.versions",
                      "Invalid value: %d versions marked as storage: must have exactly one "
                      "version marked as storage version",
                      storage);
    }

    json_t *conv = json_object_get(spec, "conversion");
    if (conv && !json_is_null(conv)) {
        json_t *strategy = json_object_get(conv, "strategy");
        static const char *const strategies[] = {"None", NULL};
        if (!json_is_object(conv))
            crd_invalid(c, "spec.conversion", conv, "must be an object");
        else if (json_is_string(strategy) && strcmp(json_string_value(strategy), "None"))
            not_supported(c, "spec.conversion.strategy", json_string_value(strategy), strategies);
        else if (strategy && !json_is_null(strategy) && !json_is_string(strategy))
            crd_invalid(c, "spec.conversion.strategy", strategy, "must be a string");
    }
    json_t *puf = json_object_get(spec, "preserveUnknownFields");
    if (json_is_true(puf))
        crd_invalid(c, "spec.preserveUnknownFields", puf,
                      "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
                      "spec.versions[*].schema instead");

    if (group_ok && names_ok && name)
        check_clash(reg, c, name, g, &n);
    return json_array_size(c->causes) > before ? -EINVAL : 0;
}

/* --- serving CRDs ------------------------------------------------------------- */

static const char **dup_list(json_t *arr, int *err)
{
    size_t n = json_array_size(arr), k = 0;
    if (!n)
        return (const char **)none;
    const char **l = calloc(n + 1, sizeof *l);
    if (!l) {
        *err = 1;
        return (const char **)none;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        if (!json_is_string(e))
            continue;
        if (!(l[k] = strdup(json_string_value(e))))
            *err = 1;
        else
            k++;
    }
    return l;
}

static char *dup_or_null(const char *s, int *err)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *err = 1;
    return d;
}

static struct crd_type *type_for(struct as_registry *reg, const char *crd_name, const char *version)
{
    for (size_t i = 0; i < reg->n; i++) {
        struct crd_type *t = reg->types[i];
        if (!strcmp(t->crd_name, crd_name) && t->res.version && !strcmp(t->res.version, version))
            return t;
    }
    /* A free slot left by a CRD that is gone (its version entry unserved
     * and emptied) is reused only for the same name and version, above: a
     * watch may still hold it. */
    if (reg->n >= AS_REG_MAX_CRD_TYPES)
        return NULL;
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        struct crd_type **nt = realloc(reg->types, cap * sizeof *nt);
        if (!nt)
            return NULL;
        reg->types = nt;
        reg->cap = cap;
    }
    struct crd_type *t = calloc(1, sizeof *t);
    if (!t || !(t->crd_name = strdup(crd_name))) {
        free(t);
        return NULL;
    }
    reg->types[reg->n++] = t;
    return t;
}

static void now_rfc3339(char *out, size_t cap)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A True condition, keeping its lastTransitionTime when it was True before. */
static json_t *condition(json_t *old_conds, const char *type, const char *reason, const char *msg,
                         const char *now)
{
    const char *ltt = now;
    size_t i;
    json_t *e;
    json_array_foreach(old_conds, i, e) {
        if (!strcmp(jstr(e, "type") ? jstr(e, "type") : "", type) && jstr(e, "status") &&
            !strcmp(jstr(e, "status"), "True") && jstr(e, "lastTransitionTime"))
            ltt = jstr(e, "lastTransitionTime");
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", "True",
                     "lastTransitionTime", ltt, "reason", reason, "message", msg);
}

static int fill_status(json_t *crd, const struct crd_names *n, const char *storage_version)
{
    char now[32];
    now_rfc3339(now, sizeof now);
    json_t *old = json_object_get(crd, "status");
    json_t *old_conds = json_object_get(old, "conditions");
    json_t *accepted = json_pack("{s:s, s:s, s:s, s:s}", "plural", n->plural, "singular",
                                 n->singular, "kind", n->kind, "listKind", n->list_kind);
    json_t *conds = json_array();
    json_t *stored = json_array();
    json_t *status = json_object();
    int rc = -ENOMEM;
    if (!accepted || !conds || !stored || !status)
        goto out;
    if (n->short_names && json_array_size(n->short_names) &&
        json_object_set(accepted, "shortNames", n->short_names))
        goto out;
    if (n->categories && json_array_size(n->categories) &&
        json_object_set(accepted, "categories", n->categories))
        goto out;
    if (json_array_append_new(conds, condition(old_conds, "NamesAccepted", "NoConflicts",
                                               "no conflicts found", now)) ||
        json_array_append_new(conds, condition(old_conds, "Established", "InitialNamesAccepted",
                                               "the initial names have been accepted", now)))
        goto out;
    /* storedVersions only grows: objects may still be stored at a version
     * that is no longer the storage one (the API never drops it itself). */
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(old, "storedVersions"), i, e) {
        if (json_is_string(e) && !list_has(stored, json_string_value(e)) &&
            json_array_append(stored, e))
            goto out;
    }
    if (storage_version && !list_has(stored, storage_version) &&
        json_array_append_new(stored, json_string(storage_version)))
        goto out;
    if (json_object_set(status, "conditions", conds) ||
        json_object_set(status, "acceptedNames", accepted) ||
        json_object_set(status, "storedVersions", stored) ||
        json_object_set(crd, "status", status))
        goto out;
    rc = 0;
out:
    json_decref(accepted);
    json_decref(conds);
    json_decref(stored);
    json_decref(status);
    return rc;
}

/* Fills t from one version of the CRD; on failure t is left empty (not
 * served). */
static int fill_type(struct crd_type *t, const char *group, const struct crd_names *n,
                     int namespaced, json_t *ver)
{
    crd_type_clear(t);
    struct as_resource *r = &t->res;
    int err = 0;
    char gr[2 * AS_REG_NAME_MAX + 2];
    snprintf(gr, sizeof gr, "%s/%s", group, n->plural);
    r->group = dup_or_null(group, &err);
    r->version = dup_or_null(jstr(ver, "name"), &err);
    r->resource = dup_or_null(n->plural, &err);
    r->singular = dup_or_null(n->singular, &err);
    r->kind = dup_or_null(n->kind, &err);
    r->list_kind = dup_or_null(n->list_kind, &err);
    r->gr = dup_or_null(gr, &err);
    r->namespaced = namespaced;
    r->builtin = 0;
    json_t *sub = json_object_get(ver, "subresources");
    r->has_status = json_is_object(json_object_get(sub, "status"));
    json_t *scale = json_object_get(sub, "scale");
    if (json_is_object(scale)) {
        r->has_scale = 1;
        r->scale_spec_path = dup_or_null(jstr(scale, "specReplicasPath"), &err);
        r->scale_status_path = dup_or_null(jstr(scale, "statusReplicasPath"), &err);
        const char *sel = jstr(scale, "labelSelectorPath");
        r->scale_selector_path = sel && *sel ? dup_or_null(sel, &err) : NULL;
    }
    r->short_names = dup_list(n->short_names, &err);
    r->categories = dup_list(n->categories, &err);
    r->field_paths = fp_meta;
    json_t *schema = json_object_get(json_object_get(ver, "schema"), "openAPIV3Schema");
    if (schema && !(r->schema = json_deep_copy(schema)))
        err = 1;
    json_t *cols = json_object_get(ver, "additionalPrinterColumns");
    if (json_is_array(cols) && json_array_size(cols) && !(r->columns = json_deep_copy(cols)))
        err = 1;
    if (err) {
        crd_type_clear(t);
        return -ENOMEM;
    }
    t->served = 1;
    return 0;
}

/* The API's defaults for a CRD spec, applied in place as it stores one. */
static int default_spec(json_t *spec, const struct crd_names *n)
{
    json_t *names = json_object_get(spec, "names");
    if (!jstr(names, "singular") || !*jstr(names, "singular"))
        if (json_object_set_new(names, "singular", json_string(n->singular)))
            return -ENOMEM;
    if (!jstr(names, "listKind") || !*jstr(names, "listKind"))
        if (json_object_set_new(names, "listKind", json_string(n->list_kind)))
            return -ENOMEM;
    if (!json_is_object(json_object_get(spec, "conversion")))
        if (json_object_set_new(spec, "conversion", json_pack("{s:s}", "strategy", "None")))
            return -ENOMEM;
    return 0;
}

int as_registry_add_crd(struct as_registry *reg, json_t *crd)
{
    const char *name = jstr(json_object_get(crd, "metadata"), "name");
    json_t *spec = json_object_get(crd, "spec");
    const char *group = jstr(spec, "group");
    const char *scope = jstr(spec, "scope");
    json_t *names = json_object_get(spec, "names");
    json_t *versions = json_object_get(spec, "versions");
    if (!name || !group || !scope || !json_is_object(names) || !json_is_array(versions))
        return -EINVAL;
    struct crd_names n;
    crd_names_get(names, &n);
    if (!n.plural || !n.kind || !n.singular || !n.list_kind || strlen(group) > AS_REG_NAME_MAX ||
        strlen(n.plural) > AS_REG_NAME_MAX)
        return -EINVAL;

    /* Copies: defaulting the spec below may free what n borrows. */
    struct crd_names nc = n;
    char plural[AS_REG_NAME_MAX + 1], kind[AS_REG_NAME_MAX + 1];
    char singular[AS_REG_NAME_MAX + 1], list_kind[AS_REG_NAME_MAX + 8];
    snprintf(plural, sizeof plural, "%s", n.plural);
    snprintf(kind, sizeof kind, "%s", n.kind);
    snprintf(singular, sizeof singular, "%s", n.singular);
    snprintf(list_kind, sizeof list_kind, "%s", n.list_kind);
    nc.plural = plural;
    nc.kind = kind;
    nc.singular = singular;
    nc.list_kind = list_kind;
    int rc = default_spec(spec, &nc);
    if (rc)
        return rc;

    for (size_t i = 0; i < reg->n; i++)
        if (!strcmp(reg->types[i]->crd_name, name))
            reg->types[i]->served = 0;
    const char *storage = NULL;
    int namespaced = !strcmp(scope, "Namespaced");
    size_t i;
    json_t *v;
    json_array_foreach(versions, i, v) {
        const char *vn = jstr(v, "name");
        if (!vn)
            continue;
        if (json_is_true(json_object_get(v, "storage")))
            storage = vn;
        if (!json_is_true(json_object_get(v, "served")))
            continue;
        struct crd_type *t = type_for(reg, name, vn);
        if (!t) {
            rc = reg->n >= AS_REG_MAX_CRD_TYPES ? -ENOSPC : -ENOMEM;
            continue;
        }
        int r = fill_type(t, group, &nc, namespaced, v);
        if (r)
            rc = r;
    }
    int r = fill_status(crd, &nc, storage);
    return rc ? rc : r;
}

void as_registry_remove_crd(struct as_registry *reg, const char *name)
{
    if (!name)
        return;
    for (size_t i = 0; i < reg->n; i++)
        if (!strcmp(reg->types[i]->crd_name, name))
            reg->types[i]->served = 0;
}

/* --- versions ---------------------------------------------------------------- */

/* Parses "v<major>[(alpha|beta)<minor>]"; stage 3 GA, 2 beta, 1 alpha, 0 when
 * the version is not kube-like. */
static int kube_version(const char *s, long *major, int *stage, long *minor)
{
    if (s[0] != 'v' || !isdigit((unsigned char)s[1]) || s[1] == '0')
        return 0;
    char *end;
    *major = strtol(s + 1, &end, 10);
    *minor = 0;
    if (!*end) {
        *stage = 3;
        return 1;
    }
    if (!strncmp(end, "beta", 4)) {
        *stage = 2;
        end += 4;
    } else if (!strncmp(end, "alpha", 5)) {
        *stage = 1;
        end += 5;
    } else {
        return 0;
    }
    if (!isdigit((unsigned char)*end) || *end == '0')
        return 0;
    *minor = strtol(end, &end, 10);
    return *end ? 0 : *stage;
}

int as_reg_version_cmp(const char *a, const char *b)
{
    long amaj = 0, amin = 0, bmaj = 0, bmin = 0;
    int ast = 0, bst = 0;
    int ak = kube_version(a, &amaj, &ast, &amin), bk = kube_version(b, &bmaj, &bst, &bmin);
    if (!ak || !bk) {
        if (ak != bk)
            return ak ? -1 : 1;
        return strcmp(a, b);
    }
    if (ast != bst)
        return bst - ast;
    if (amaj != bmaj)
        return amaj > bmaj ? -1 : 1;
    if (amin != bmin)
        return amin > bmin ? -1 : 1;
    return 0;
}

/* --- time ---------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int time_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int as_reg_parse_time(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec;
    if (!s || strlen(s) < 20 || time_digits(s, 4, &y) || s[4] != '-' || time_digits(s + 5, 2, &mo) ||
        s[7] != '-' || time_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        time_digits(s + 11, 2, &h) || s[13] != ':' || time_digits(s + 14, 2, &mi) || s[16] != ':' ||
        time_digits(s + 17, 2, &sec))
        return -EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        int nd = 0;
        p++;
        if (!isdigit((unsigned char)*p))
            return -EINVAL;
        for (; isdigit((unsigned char)*p); p++, nd++)
            if (nd < 6)
                frac = frac * 10 + (*p - '0');
        for (; nd < 6; nd++)
            frac *= 10;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (time_digits(p + 1, 2, &oh) || p[3] != ':' || time_digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -EINVAL;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
                   sec - off;
    *us = secs * 1000000 + frac;
    return 0;
}

void as_reg_human_duration(int64_t d_us, char *out, size_t cap)
{
    int64_t seconds = d_us / 1000000;
    if (seconds < -1) {
        snprintf(out, cap, "<invalid>");
        return;
    }
    if (seconds < 0) {
        snprintf(out, cap, "0s");
        return;
    }
    if (seconds < 60 * 2) {
        snprintf(out, cap, "%llds", (long long)seconds);
        return;
    }
    long long minutes = (long long)(d_us / (60 * 1000000LL));
    if (minutes < 10) {
        long long s = seconds % 60;
        if (s == 0)
            snprintf(out, cap, "%lldm", minutes);
        else
            snprintf(out, cap, "%lldm%llds", minutes, s);
        return;
    }
    if (minutes < 60 * 3) {
        snprintf(out, cap, "%lldm", minutes);
        return;
    }
    long long hours = (long long)(d_us / (3600 * 1000000LL));
    if (hours < 8) {
        long long m = minutes % 60;
        if (m == 0)
            snprintf(out, cap, "%lldh", hours);
        else
            snprintf(out, cap, "%lldh%lldm", hours, m);
    } else if (hours < 48) {
        snprintf(out, cap, "%lldh", hours);
    } else if (hours < 24 * 8) {
        long long h = hours % 24;
        if (h == 0)
            snprintf(out, cap, "%lldd", hours / 24);
        else
            snprintf(out, cap, "%lldd%lldh", hours / 24, h);
    } else if (hours < 24 * 365 * 2) {
        snprintf(out, cap, "%lldd", hours / 24);
    } else if (hours < 24 * 365 * 8) {
        long long dy = (hours / 24) % 365;
        if (dy == 0)
            snprintf(out, cap, "%lldy", hours / 24 / 365);
        else
            snprintf(out, cap, "%lldy%lldd", hours / 24 / 365, dy);
    } else {
        snprintf(out, cap, "%lldy", hours / 24 / 365);
    }
}

/* --- JSONPath ------------------------------------------------------------------- */

/* Walks path over obj (obj NULL: only checks the syntax). Returns 0 and
 * *out (NULL when absent), or -1 with *why for a path outside the subset. */
static int jsonpath_walk(json_t *obj, const char *path, json_t **out, const char **why)
{
    const char *p = path;
    json_t *cur = obj;
    *why = NULL;
    if (*p == '{') {
        /* Kubernetes wraps column paths in {} itself; accept both spellings. */
        size_t n = strlen(p);
        if (n < 2 || p[n - 1] != '}') {
            *why = "unbalanced braces";
            return -1;
        }
    }
    int braced = *p == '{';
    if (braced)
        p++;
    if (*p != '.') {
        *why = "must be a simple json path starting with .";
        return -1;
    }
    if (p[1] == '\0' || (braced && p[1] == '}')) {
        *out = cur;
        return 0;
    }
    while (*p && !(braced && *p == '}' && p[1] == '\0')) {
        if (*p == '.') {
            const char *k = ++p;
            while (*p && *p != '.' && *p != '[' && !(braced && *p == '}'))
                p++;
            size_t kl = (size_t)(p - k);
            if (!kl) {
                *why = "must be a json path in the dot notation (empty field name)";
                return -1;
            }
            for (size_t i = 0; i < kl; i++)
                if (k[i] == '*' || k[i] == '@' || k[i] == '?' || k[i] == '(' || k[i] == ' ') {
                    *why = "only simple paths are supported (.field, [N], ['key'])";
                    return -1;
                }
            if (cur) {
                char key[256];
                if (kl >= sizeof key) {
                    cur = NULL;
                } else {
                    memcpy(key, k, kl);
                    key[kl] = '\0';
                    cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
                }
            }
        } else if (*p == '[') {
            p++;
            if (*p == '\'' || *p == '"') {
                char q = *p++;
                const char *k = p;
                while (*p && *p != q)
                    p++;
                if (*p != q || p[1] != ']') {
                    *why = "unterminated ['key']";
                    return -1;
                }
                size_t kl = (size_t)(p - k);
                if (cur) {
                    char key[256];
                    if (kl >= sizeof key) {
                        cur = NULL;
                    } else {
                        memcpy(key, k, kl);
                        key[kl] = '\0';
                        cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
                    }
                }
                p += 2;
            } else {
                int neg = *p == '-';
                if (neg)
                    p++;
                if (!isdigit((unsigned char)*p)) {
                    *why = "only simple paths are supported (.field, [N], ['key'])";
                    return -1;
                }
                long long idx = 0;
                while (isdigit((unsigned char)*p)) {
                    if (idx < 1000000000)
                        idx = idx * 10 + (*p - '0');
                    p++;
                }
                if (*p != ']') {
                    *why = "only simple paths are supported (.field, [N], ['key'])";
                    return -1;
                }
                p++;
                if (cur) {
                    long long n = json_is_array(cur) ? (long long)json_array_size(cur) : 0;
                    if (neg)
                        idx = n - idx;
                    cur = json_is_array(cur) && idx >= 0 && idx < n ? json_array_get(cur, (size_t)idx)
                                                                    : NULL;
                }
            }
        } else {
            *why = "must be a json path in the dot notation";
            return -1;
        }
    }
    *out = cur;
    return 0;
}

json_t *as_reg_jsonpath(json_t *obj, const char *path)
{
    json_t *out = NULL;
    const char *why;
    if (!obj || !path || jsonpath_walk(obj, path, &out, &why))
        return NULL;
    return json_is_null(out) ? NULL : out;
}

int as_reg_jsonpath_valid(const char *path, const char **why)
{
    json_t *out;
    return jsonpath_walk(NULL, path, &out, why) == 0;
}

/* --- scale ------------------------------------------------------------------------ */

json_t *as_registry_scale(const struct as_resource *res, json_t *obj)
{
    if (!res || !res->has_scale || !json_is_object(obj))
        return NULL;
    json_t *meta = json_object_get(obj, "metadata");
    json_t *m = json_object();
    json_t *scale = NULL;
    static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp"};
    for (size_t i = 0; m && i < sizeof keep / sizeof keep[0]; i++) {
        json_t *v = json_object_get(meta, keep[i]);
        if (v && !json_is_null(v) && json_object_set(m, keep[i], v))
            goto out;
    }
    json_t *sv = res->scale_spec_path ? as_reg_jsonpath(obj, res->scale_spec_path) : NULL;
    json_t *st = res->scale_status_path ? as_reg_jsonpath(obj, res->scale_status_path) : NULL;
    json_t *sel = res->scale_selector_path ? as_reg_jsonpath(obj, res->scale_selector_path) : NULL;
    json_int_t spec_replicas = json_is_integer(sv) ? json_integer_value(sv) : 0;
    json_int_t status_replicas = json_is_integer(st) ? json_integer_value(st) : 0;
    char selector[2048] = "";
    if (json_is_string(sel))
        snprintf(selector, sizeof selector, "%s", json_string_value(sel));
    else if (json_is_object(sel))
        as_reg_format_selector(sel, selector, sizeof selector);
    scale = json_pack("{s:s, s:s, s:O, s:{}, s:{s:I}}", "kind", "Scale", "apiVersion",
                      "autoscaling/v1", "metadata", m, "spec", "status", "replicas",
                      status_replicas);
    if (!scale)
        goto out;
    if ((spec_replicas &&
         json_object_set_new(json_object_get(scale, "spec"), "replicas", json_integer(spec_replicas))) ||
        (*selector && json_object_set_new(json_object_get(scale, "status"), "selector",
                                          json_string(selector)))) {
        json_decref(scale);
        scale = NULL;
    }
out:
    json_decref(m);
    return scale;
}
