/* The verbs on objects, as kube-apiserver's generic registry runs them:
 * create (names, uid, timestamps, generation), update (optimistic
 * concurrency, status subresource rules, generation bumps), patch (through
 * patch.c, then the update path), delete (finalizers, deletionTimestamp,
 * propagation policies), and /scale. No HTTP here: server.c calls these
 * for requests, gc.c and workload.c for the server's own writes, so every
 * write, whoever makes it, goes through the same rules and reaches watchers
 * through the store. */
#include "apiserver/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lib/log.h"

void as_wctx_init(struct as_wctx *c, struct as_server *srv, const struct as_resource *res,
                  const char *ns, const char *name, const char *sub)
{
    memset(c, 0, sizeof *c);
    c->srv = srv;
    c->res = res;
    c->ns = res->namespaced ? ns : NULL;
    c->name = name;
    c->sub = sub;
    c->fv = AS_FV_WARN;
}

void as_wctx_free(struct as_wctx *c)
{
    as_err_clear(&c->err);
    if (c->warnings)
        json_decref(c->warnings);
    c->warnings = NULL;
}

static const char *key_ns(const struct as_wctx *c)
{
    return c->res->namespaced && c->ns ? c->ns : "";
}

static int is_res(const struct as_resource *res, const char *group, const char *resource)
{
    return !strcmp(res->group, group) && !strcmp(res->resource, resource);
}

static int is_crd(const struct as_resource *res)
{
    return is_res(res, "apiextensions.k8s.io", "customresourcedefinitions");
}

static int is_namespace(const struct as_resource *res)
{
    return is_res(res, "", "namespaces");
}

/* Which kinds carry metadata.generation: those with a spec that
 * controllers act on (custom resources, deployments, CRDs). */
static int has_generation(const struct as_resource *res)
{
    return !res->builtin || is_res(res, "apps", "deployments") || is_crd(res);
}

json_t *as_present(const struct as_resource *res, json_t *obj)
{
    /* apiVersion and kind first, as Kubernetes writes them (people read
     * these replies). */
    char av[256];
    as_api_version(res, av, sizeof av);
    json_t *o = json_pack("{s:s, s:s}", "apiVersion", av, "kind", res->kind);
    if (!o)
        return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        if (strcmp(k, "apiVersion") && strcmp(k, "kind"))
            json_object_set(o, k, v);
    }
    return o;
}

static void now_rfc3339(char *buf, size_t n)
{
    as_rfc3339((int64_t)time(NULL), buf, n);
}

static int store_err(struct as_wctx *c, int rc, const char *name)
{
    switch (rc) {
    case -ENOENT: return as_err_not_found(&c->err, c->res, name);
    case -EEXIST: return as_err_exists(&c->err, c->res, name);
    case -ESTALE: return as_err_conflict(&c->err, c->res, name);
    default:
        mg_log(MG_LOG_ERROR, "storage error", "resource", MG_S(c->res->gr), "name", MG_S(name),
               "error", MG_ERRNO(rc));
        return as_errf(&c->err, 500, "InternalError",
                       "Internal error occurred: storage error: %s", strerror(-rc));
    }
}

int as_obj_get(struct as_wctx *c, json_t **out)
{
    json_t *obj = NULL;
    int rc = as_store_get(c->srv->store, c->res->gr, key_ns(c), c->name, &obj);
    if (rc < 0)
        return store_err(c, rc, c->name);
    *out = as_present(c->res, obj);
    json_decref(obj);
    return *out ? 0 : as_errf(&c->err, 500, "InternalError", "out of memory");
}

/* --- the checks every write goes through ---------------------------------- */

static void add_warning(struct as_wctx *c, const char *msg)
{
    if (!c->warnings)
        c->warnings = json_array();
    if (c->warnings && json_array_size(c->warnings) < 32)
        json_array_append_new(c->warnings, json_string(msg));
}

/* Unknown fields that schema pruning found, per fieldValidation. */
static int unknown_fields(struct as_wctx *c, json_t *unknown)
{
    size_t n = json_array_size(unknown);
    if (n == 0 || c->fv == AS_FV_IGNORE)
        return 0;
    char list[900];
    size_t off = 0;
    list[0] = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = json_string_value(json_array_get(unknown, i));
        if (!p)
            continue;
        if (*p == '.')
            p++;
        if (c->fv == AS_FV_WARN) {
            char w[600];
            snprintf(w, sizeof w, "unknown field \"%s\"", p);
            add_warning(c, w);
            continue;
        }
        int k = snprintf(list + off, sizeof list - off, "%sunknown field \"%s\"", i ? ", " : "", p);
        if (k < 0 || (size_t)k >= sizeof list - off)
            break;
        off += (size_t)k;
    }
    if (c->fv == AS_FV_STRICT)
        return as_errf(&c->err, 400, "BadRequest", "strict decoding error: %s", list);
    return 0;
}

/* The checks of an object about to be written (created or updated):
 * apiVersion and kind, namespace, metadata, built-in defaults and required
 * fields, CRD schemas, CRD definitions. obj is modified (defaults,
 * pruning). */
static int prepare(struct as_wctx *c, json_t *obj, const char *name)
{
    const struct as_resource *res = c->res;
    char av[256], bad[512];
    as_api_version(res, av, sizeof av);
    json_t *jav = json_object_get(obj, "apiVersion");
    json_t *jkind = json_object_get(obj, "kind");
    if (jav && !json_is_null(jav)) {
        const char *s = json_string_value(jav);
        if (!s)
            return as_errf(&c->err, 400, "BadRequest", "apiVersion: expected a string");
        /* Another served version of the same group is converted (CRD
         * versions share one schema-less conversion: None). */
        if (strcmp(s, av)) {
            size_t gl = strlen(res->group);
            int same_group = *res->group ? (!strncmp(s, res->group, gl) && s[gl] == '/')
                                         : strchr(s, '/') == NULL;
            if (!same_group)
                return as_errf(&c->err, 400, "BadRequest",
                               "the API version in the data (%s) does not match the expected "
                               "API version (%s)", s, av);
        }
    }
    if (jkind && !json_is_null(jkind)) {
        const char *s = json_string_value(jkind);
        if (!s || strcmp(s, res->kind))
            return as_errf(&c->err, 400, "BadRequest",
                           "the kind in the data (%s) does not match the expected kind (%s)",
                           s ? s : "?", res->kind);
    }
    json_object_set_new(obj, "apiVersion", json_string(av));
    json_object_set_new(obj, "kind", json_string(res->kind));

    json_t *causes = json_array();
    if (!causes)
        return as_errf(&c->err, 500, "InternalError", "out of memory");
    int rc = -1;
    if (as_validate_meta(res, obj, causes, bad, sizeof bad) < 0) {
        as_errf(&c->err, 400, "BadRequest", "%s", bad);
        goto out;
    }
    json_t *meta = as_meta(obj);
    if (res->namespaced) {
        const char *ons = json_string_value(json_object_get(meta, "namespace"));
        if (ons && *ons && c->ns && strcmp(ons, c->ns)) {
            as_errf(&c->err, 400, "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request");
            goto out;
        }
        json_object_set_new(meta, "namespace", json_string(c->ns ? c->ns : "default"));
    } else {
        json_object_del(meta, "namespace");
    }
    json_t *unknown = json_array();
    if (!unknown) {
        as_errf(&c->err, 500, "InternalError", "out of memory");
        goto out;
    }
    as_unknown_fields(res, obj, unknown);
    int urc0 = unknown_fields(c, unknown);
    json_decref(unknown);
    if (urc0 < 0)
        goto out;
    as_validate_builtin(res, obj, causes);
    if (res->schema) {
        struct as_causes sc;
        as_causes_init(&sc);
        as_schema_apply(res->schema, obj, &sc);
        if (sc.causes)
            json_array_extend(causes, sc.causes);
        int urc = unknown_fields(c, sc.unknown);
        as_causes_free(&sc);
        if (urc < 0)
            goto out;
    }
    if (is_crd(res)) {
        struct as_causes cc;
        as_causes_init(&cc);
        as_registry_check_crd(c->srv->reg, obj, &cc);
        if (cc.causes)
            json_array_extend(causes, cc.causes);
        as_causes_free(&cc);
    }
    if (json_array_size(causes) > 0) {
        as_err_invalid(&c->err, res, name, causes);
        goto out;
    }
    rc = 0;
out:
    json_decref(causes);
    return rc;
}

/* Namespaced objects need their namespace, and not one being deleted. */
static int check_namespace(struct as_wctx *c, const char *name)
{
    if (!c->res->namespaced)
        return 0;
    json_t *ns = NULL;
    int rc = as_store_get(c->srv->store, "/namespaces", "", c->ns, &ns);
    if (rc == -ENOENT) {
        as_errf(&c->err, 404, "NotFound", "namespaces \"%s\" not found", c->ns);
        c->err.details = json_pack("{s:s, s:s}", "name", c->ns, "kind", "namespaces");
        return -1;
    }
    if (rc < 0)
        return store_err(c, rc, name);
    int terminating = as_meta_str(ns, "deletionTimestamp") != NULL;
    json_decref(ns);
    if (terminating) {
        char q[256];
        as_qualified_resource(c->res, q, sizeof q);
        as_errf(&c->err, 403, "Forbidden",
                "%s \"%s\" is forbidden: unable to create new content in namespace %s because "
                "it is being terminated", q, name, c->ns);
        c->err.details = json_pack("{s:s, s:s}", "name", name, "kind", c->res->resource);
        return -1;
    }
    return 0;
}

static void generate_name(const char *prefix, char *out, size_t n)
{
    static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char r[5];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (unsigned i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)rand();
    char suffix[6];
    for (unsigned i = 0; i < 5; i++)
        suffix[i] = alphabet[r[i] % (sizeof alphabet - 1)];
    suffix[5] = 0;
    /* Kubernetes cuts the prefix so the result stays within 63. */
    snprintf(out, n, "%.58s%s", prefix, suffix);
}

static void crd_gr(json_t *crd, char *out, size_t n)
{
    const char *group = json_string_value(as_json_path_get(crd, "spec.group"));
    const char *plural = json_string_value(as_json_path_get(crd, "spec.names.plural"));
    snprintf(out, n, "%s/%s", group ? group : "", plural ? plural : "");
}

static void after_write(struct as_wctx *c, json_t *obj)
{
    if (is_res(c->res, "apps", "deployments"))
        as_workload_note(c->srv, obj);
}

int as_obj_create(struct as_wctx *c, json_t *body, json_t **out)
{
    const struct as_resource *res = c->res;
    char bad[512], name[300], ts[40], uid[40];
    if (!json_is_object(body))
        return as_errf(&c->err, 400, "BadRequest",
                       "the body of the request was in an unknown format - accepted media types "
                       "include: application/json, application/yaml");
    json_t *obj = json_deep_copy(body);
    if (!obj)
        return as_errf(&c->err, 500, "InternalError", "out of memory");
    int rc = -1;
    json_t *causes = json_array();
    if (as_validate_meta(res, obj, causes, bad, sizeof bad) < 0) {
        as_errf(&c->err, 400, "BadRequest", "%s", bad);
        goto out;
    }
    json_t *meta = as_meta(obj);
    const char *n = json_string_value(json_object_get(meta, "name"));
    const char *gen = json_string_value(json_object_get(meta, "generateName"));
    if (n && *n) {
        snprintf(name, sizeof name, "%s", n);
    } else if (gen && *gen) {
        /* A few tries: a clash with an existing name is possible, if rare. */
        for (int i = 0; i < 8; i++) {
            generate_name(gen, name, sizeof name);
            json_t *ex = NULL;
            if (as_store_get(c->srv->store, res->gr, key_ns(c), name, &ex) == -ENOENT)
                break;
            json_decref(ex);
        }
        json_object_set_new(meta, "name", json_string(name));
    } else {
        as_cause_add(causes, "FieldValueRequired", "metadata.name",
                     "Required value: name or generateName is required");
        as_err_invalid(&c->err, res, "", causes);
        goto out;
    }
    if (strlen(name) > 253 || strchr(name, '/') || strchr(name, '%') || !strcmp(name, ".") ||
        !strcmp(name, "..")) {
        as_cause_add(causes, "FieldValueInvalid", "metadata.name",
                     "Invalid value: \"%s\": may not contain '/' or '%%', may not be '.' or '..', "
                     "and must be no more than 253 characters", name);
        as_err_invalid(&c->err, res, name, causes);
        goto out;
    }
    const char *rvs = json_string_value(json_object_get(meta, "resourceVersion"));
    if (rvs && *rvs) {
        as_errf(&c->err, 400, "BadRequest",
                "resourceVersion should not be set on objects to be created");
        goto out;
    }
    if (check_namespace(c, name) < 0)
        goto out;
    /* Exists already: said before anything changes (a CRD would otherwise
     * re-serve from a rejected body). */
    json_t *ex = NULL;
    if (as_store_get(c->srv->store, res->gr, key_ns(c), name, &ex) == 0) {
        json_decref(ex);
        as_err_exists(&c->err, res, name);
        goto out;
    }
    now_rfc3339(ts, sizeof ts);
    as_uuid4(uid, sizeof uid);
    json_object_set_new(meta, "uid", json_string(uid));
    json_object_set_new(meta, "creationTimestamp", json_string(ts));
    json_object_del(meta, "resourceVersion");
    json_object_del(meta, "deletionTimestamp");
    json_object_del(meta, "deletionGracePeriodSeconds");
    json_object_del(meta, "managedFields");
    json_object_del(meta, "selfLink");
    if (has_generation(res))
        json_object_set_new(meta, "generation", json_integer(1));
    else
        json_object_del(meta, "generation");
    /* With a status subresource, status is the controllers' to write. */
    if (res->has_status && (!res->builtin || is_res(res, "apps", "deployments")))
        json_object_del(obj, "status");
    as_default_builtin(c->srv, res, obj, 1);
    if (prepare(c, obj, name) < 0)
        goto out;
    if (c->dry_run) {
        *out = as_present(res, obj);
        rc = 0;
        goto out;
    }
    if (is_crd(res) && as_registry_add_crd(c->srv->reg, obj) < 0) {
        as_errf(&c->err, 500, "InternalError", "cannot serve the CustomResourceDefinition");
        goto out;
    }
    int src = as_store_create(c->srv->store, res->gr, key_ns(c), name, obj);
    if (src < 0) {
        if (is_crd(res))
            as_registry_remove_crd(c->srv->reg, name);
        store_err(c, src, name);
        goto out;
    }
    after_write(c, obj);
    *out = as_present(res, obj);
    rc = 0;
out:
    json_decref(causes);
    json_decref(obj);
    return rc;
}

/* A copy of obj without metadata (and status when it is a subresource):
 * what a generation bump compares. */
static json_t *spec_part(const struct as_resource *res, json_t *obj)
{
    json_t *o = json_copy(obj);
    json_object_del(o, "metadata");
    if (res->has_status)
        json_object_del(o, "status");
    return o;
}

static int string_in(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return 1;
    }
    return 0;
}

/* The common end of update, patch and scale: old is the stored object,
 * next what the client wants (taken over). status_write: a /status
 * request, which changes only status. */
static int commit(struct as_wctx *c, json_t *old, json_t *next, int status_write, json_t **out)
{
    const struct as_resource *res = c->res;
    const char *name = as_meta_str(old, "name");
    json_t *result = NULL;
    int rc = -1;
    char bad[512];

    if (!json_is_object(next)) {
        json_decref(next);
        return as_errf(&c->err, 400, "BadRequest", "the object is not a JSON object");
    }
    if (status_write) {
        result = json_deep_copy(old);
        json_t *st = json_object_get(next, "status");
        if (st)
            json_object_set(result, "status", st);
        else
            json_object_del(result, "status");
        json_decref(next);
        next = NULL;
    } else {
        result = next;
        next = NULL;
        json_t *causes = json_array();
        int mrc = as_validate_meta(res, result, causes, bad, sizeof bad);
        json_decref(causes);
        if (mrc < 0) {
            as_errf(&c->err, 400, "BadRequest", "%s", bad);
            goto out;
        }
        json_t *meta = as_meta(result);
        json_t *ometa = as_meta(old);
        const char *nn = json_string_value(json_object_get(meta, "name"));
        if (nn && *nn && strcmp(nn, name)) {
            as_errf(&c->err, 400, "BadRequest",
                    "the name of the object (%s) does not match the name on the URL (%s)", nn, name);
            goto out;
        }
        json_object_set_new(meta, "name", json_string(name));
        static const char *const keep[] = {"uid", "creationTimestamp", "deletionTimestamp",
                                           "deletionGracePeriodSeconds", "generation", NULL};
        for (unsigned i = 0; keep[i]; i++) {
            json_t *v = json_object_get(ometa, keep[i]);
            if (v)
                json_object_set(meta, keep[i], v);
            else
                json_object_del(meta, keep[i]);
        }
        json_object_del(meta, "managedFields");
        json_object_del(meta, "selfLink");
        json_object_del(meta, "generateName");
        if (json_object_get(ometa, "generateName"))
            json_object_set(meta, "generateName", json_object_get(ometa, "generateName"));
        if (res->has_status) {
            json_t *ost = json_object_get(old, "status");
            if (ost)
                json_object_set(result, "status", ost);
            else
                json_object_del(result, "status");
        }
        if (is_res(res, "", "services")) {
            /* clusterIP is immutable and allocated: keep it when a client
             * leaves it out. */
            json_t *ocip = as_json_path_get(old, "spec.clusterIP");
            json_t *spec = json_object_get(result, "spec");
            if (ocip && json_is_object(spec) && !json_object_get(spec, "clusterIP"))
                json_object_set(spec, "clusterIP", ocip);
        }
        as_default_builtin(c->srv, res, result, 0);
        if (json_object_get(ometa, "deletionTimestamp")) {
            json_t *ofins = json_object_get(ometa, "finalizers");
            size_t i;
            json_t *f;
            json_array_foreach(json_object_get(meta, "finalizers"), i, f) {
                if (json_is_string(f) && !string_in(ofins, json_string_value(f))) {
                    json_t *causes2 = json_array();
                    as_cause_add(causes2, "FieldValueForbidden", "metadata.finalizers",
                                 "Forbidden: no new finalizers can be added if the object is "
                                 "being deleted, found new finalizers []string{\"%s\"}",
                                 json_string_value(f));
                    as_err_invalid(&c->err, res, name, causes2);
                    json_decref(causes2);
                    goto out;
                }
            }
        }
    }
    if (prepare(c, result, name) < 0)
        goto out;
    if (!status_write && has_generation(res)) {
        json_t *a = spec_part(res, old), *b = spec_part(res, result);
        if (a && b && !json_equal(a, b)) {
            json_int_t g = json_integer_value(json_object_get(as_meta(old), "generation"));
            json_object_set_new(as_meta(result), "generation", json_integer(g > 0 ? g + 1 : 1));
        }
        json_decref(a);
        json_decref(b);
    }
    json_t *orv = json_object_get(as_meta(old), "resourceVersion");
    if (orv)
        json_object_set(as_meta(result), "resourceVersion", orv);
    /* Nothing changed: no write, no new resourceVersion, no event. */
    json_t *oldp = as_present(res, old);
    int same = oldp && json_equal(oldp, result);
    json_decref(oldp);
    if (same) {
        *out = as_present(res, old);
        rc = 0;
        goto out;
    }
    if (c->dry_run) {
        *out = as_present(res, result);
        rc = 0;
        goto out;
    }
    uint64_t expect = as_obj_rv(old);
    json_t *meta = as_meta(result);
    if (json_object_get(meta, "deletionTimestamp") && !is_namespace(res) &&
        json_array_size(json_object_get(meta, "finalizers")) == 0) {
        /* The last finalizer went: the deletion completes now. */
        json_t *last = NULL;
        int src = as_store_delete(c->srv->store, res->gr, key_ns(c), name, expect, &last);
        if (src < 0) {
            store_err(c, src, name);
            goto out;
        }
        if (is_crd(res)) {
            char gr[300];
            crd_gr(old, gr, sizeof gr);
            as_objects_purge_gr(c->srv, gr);
            as_watch_close_gr(c->srv, gr);
            as_registry_remove_crd(c->srv->reg, name);
        }
        as_gc_kick(c->srv);
        /* The reply shows the state written last, with the finalizers
         * gone, as kube-apiserver answers. */
        json_object_set(as_meta(result), "resourceVersion",
                        json_object_get(as_meta(last), "resourceVersion"));
        json_decref(last);
        *out = as_present(res, result);
        rc = 0;
        goto out;
    }
    if (is_crd(res) && as_registry_add_crd(c->srv->reg, result) < 0) {
        as_errf(&c->err, 500, "InternalError", "cannot serve the CustomResourceDefinition");
        goto out;
    }
    int src = as_store_update(c->srv->store, res->gr, key_ns(c), name, result, expect);
    if (src < 0) {
        store_err(c, src, name);
        goto out;
    }
    if (json_object_get(meta, "deletionTimestamp"))
        as_gc_kick(c->srv);
    after_write(c, result);
    *out = as_present(res, result);
    rc = 0;
out:
    if (next)
        json_decref(next);
    if (result)
        json_decref(result);
    return rc;
}

static int get_stored(struct as_wctx *c, json_t **old)
{
    int rc = as_store_get(c->srv->store, c->res->gr, key_ns(c), c->name, old);
    if (rc < 0)
        return store_err(c, rc, c->name);
    return 0;
}

/* A resourceVersion the client sent must be the stored one. */
static int check_rv(struct as_wctx *c, json_t *old, json_t *obj)
{
    const char *rv = as_meta_str(obj, "resourceVersion");
    if (!rv || !*rv)
        return 0;
    const char *orv = as_meta_str(old, "resourceVersion");
    if (!orv || strcmp(rv, orv))
        return as_err_conflict(&c->err, c->res, c->name);
    return 0;
}

/* --- /scale ------------------------------------------------------------- */

static json_t *scale_of(const struct as_resource *res, json_t *obj)
{
    return as_registry_scale(res, obj);
}

int as_scale_get(struct as_wctx *c, json_t **out)
{
    json_t *old = NULL;
    if (get_stored(c, &old) < 0)
        return -1;
    *out = scale_of(c->res, old);
    json_decref(old);
    return *out ? 0 : as_errf(&c->err, 404, "NotFound", "the server could not find the requested resource");
}

/* Writes scale's spec.replicas into the object, through commit. */
static int scale_write(struct as_wctx *c, json_t *old, json_t *scale, json_t **out)
{
    json_t *r = as_json_path_get(scale, "spec.replicas");
    if (!json_is_integer(r) || json_integer_value(r) < 0) {
        json_t *causes = json_array();
        as_cause_add(causes, "FieldValueInvalid", "spec.replicas",
                     "Invalid value: %s: must be greater than or equal to 0",
                     json_is_integer(r) ? "negative" : "non-integer");
        as_errf(&c->err, 422, "Invalid", "Scale.autoscaling \"%s\" is invalid: spec.replicas: %s",
                c->name, json_string_value(json_object_get(json_array_get(causes, 0), "message")));
        c->err.details = json_pack("{s:s, s:s, s:s, s:o}", "name", c->name, "group",
                                   "autoscaling", "kind", "Scale", "causes", causes);
        return -1;
    }
    if (check_rv(c, old, scale) < 0)
        return -1;
    if (!c->res->scale_spec_path)
        return as_errf(&c->err, 404, "NotFound", "the server could not find the requested resource");
    json_t *next = json_deep_copy(old);
    as_json_path_set(next, c->res->scale_spec_path, json_integer(json_integer_value(r)));
    json_t *res_obj = NULL;
    const char *saved = c->sub;
    c->sub = NULL;
    int rc = commit(c, old, next, 0, &res_obj);
    c->sub = saved;
    if (rc < 0)
        return -1;
    *out = scale_of(c->res, res_obj);
    json_decref(res_obj);
    return 0;
}

int as_obj_update(struct as_wctx *c, json_t *body, json_t **out)
{
    if (!json_is_object(body))
        return as_errf(&c->err, 400, "BadRequest",
                       "the body of the request was in an unknown format - accepted media types "
                       "include: application/json, application/yaml");
    json_t *old = NULL;
    if (get_stored(c, &old) < 0)
        return -1;
    int rc = -1;
    if (c->sub && !strcmp(c->sub, "scale")) {
        rc = scale_write(c, old, body, out);
        goto out;
    }
    const char *rv = as_meta_str(body, "resourceVersion");
    if ((!rv || !*rv) && !c->res->builtin) {
        json_t *causes = json_array();
        as_cause_add(causes, "FieldValueInvalid", "metadata.resourceVersion",
                     "Invalid value: 0x0: must be specified for an update");
        as_err_invalid(&c->err, c->res, c->name, causes);
        json_decref(causes);
        goto out;
    }
    if (check_rv(c, old, body) < 0)
        goto out;
    rc = commit(c, old, json_deep_copy(body), c->sub && !strcmp(c->sub, "status"), out);
out:
    json_decref(old);
    return rc;
}

int as_obj_patch(struct as_wctx *c, enum as_patch_type type, json_t *patch, json_t **out,
                 int *created)
{
    json_t *old = NULL;
    *created = 0;
    int grc = as_store_get(c->srv->store, c->res->gr, key_ns(c), c->name, &old);
    if (grc == -ENOENT && type == AS_PATCH_APPLY && !c->sub) {
        /* Server-side apply creates what is missing. */
        if (!json_is_object(patch))
            return as_errf(&c->err, 400, "BadRequest", "the apply patch is not an object");
        json_t *meta = as_meta(patch);
        const char *pn = json_string_value(json_object_get(meta, "name"));
        if (pn && strcmp(pn, c->name))
            return as_errf(&c->err, 400, "BadRequest",
                           "the name of the object (%s) does not match the name on the URL (%s)",
                           pn, c->name);
        json_object_set_new(meta, "name", json_string(c->name));
        if (as_obj_create(c, patch, out) < 0)
            return -1;
        *created = 1;
        return 0;
    }
    if (grc < 0)
        return store_err(c, grc, c->name);
    int rc = -1;
    const char *err = NULL;
    if (type == AS_PATCH_STRATEGIC && !c->res->builtin) {
        as_errf(&c->err, 415, "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml");
        goto out;
    }
    int is_scale = c->sub && !strcmp(c->sub, "scale");
    json_t *work = is_scale ? scale_of(c->res, old) : as_present(c->res, old);
    if (!work) {
        as_errf(&c->err, 404, "NotFound", "the server could not find the requested resource");
        goto out;
    }
    json_t *work_deep = json_deep_copy(work);
    json_decref(work);
    work = work_deep;
    /* A Scale has no lists: a strategic patch of it is a merge patch. */
    enum as_patch_type t = is_scale && type == AS_PATCH_STRATEGIC ? AS_PATCH_MERGE : type;
    int prc = as_patch_apply(t, c->res->builtin && !is_scale ? c->res->kind : NULL, &work, patch,
                             &err);
    if (prc == -ENOTSUP) {
        as_errf(&c->err, 415, "UnsupportedMediaType", "%s",
                err ? err : "strategic merge patch is not supported for custom resources");
        json_decref(work);
        goto out;
    }
    if (prc < 0) {
        if (prc == -ENOMEM)
            as_errf(&c->err, 500, "InternalError", "out of memory");
        else
            as_errf(&c->err, 422, "Invalid", "the patch could not be applied: %s",
                    err ? err : "invalid patch");
        json_decref(work);
        goto out;
    }
    if (is_scale) {
        rc = scale_write(c, old, work, out);
        json_decref(work);
        goto out;
    }
    if (check_rv(c, old, work) < 0) {
        json_decref(work);
        goto out;
    }
    rc = commit(c, old, work, c->sub && !strcmp(c->sub, "status"), out);
out:
    json_decref(old);
    return rc;
}

/* --- delete -------------------------------------------------------------- */

static json_t *deleted_status(const struct as_resource *res, const char *name, json_t *old)
{
    json_t *st = as_status_json(NULL);
    json_t *d = json_pack("{s:s, s:s}", "name", name, "kind", res->resource);
    if (*res->group)
        json_object_set_new(d, "group", json_string(res->group));
    const char *uid = as_meta_str(old, "uid");
    if (uid)
        json_object_set_new(d, "uid", json_string(uid));
    json_object_set_new(st, "details", d);
    return st;
}

int as_obj_delete(struct as_wctx *c, json_t *opts, const char *policy, json_t **out)
{
    const struct as_resource *res = c->res;
    json_t *old = NULL, *result = NULL;
    int rc = -1;
    if (get_stored(c, &old) < 0)
        return -1;
    json_t *meta = as_meta(old);
    const char *uid = json_string_value(json_object_get(meta, "uid"));
    const char *orv = json_string_value(json_object_get(meta, "resourceVersion"));

    if (json_is_object(opts)) {
        json_t *pre = json_object_get(opts, "preconditions");
        const char *puid = json_string_value(json_object_get(pre, "uid"));
        const char *prv = json_string_value(json_object_get(pre, "resourceVersion"));
        if (puid && (!uid || strcmp(puid, uid))) {
            as_errf(&c->err, 409, "Conflict",
                    "Precondition failed: UID in precondition: %s, UID in object meta: %s", puid,
                    uid ? uid : "");
            goto out;
        }
        if (prv && (!orv || strcmp(prv, orv))) {
            as_errf(&c->err, 409, "Conflict",
                    "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion "
                    "in object meta: %s", prv, orv ? orv : "");
            goto out;
        }
        const char *p = json_string_value(json_object_get(opts, "propagationPolicy"));
        if (p)
            policy = p;
        json_t *orphan = json_object_get(opts, "orphanDependents");
        if (!policy && json_is_boolean(orphan))
            policy = json_is_true(orphan) ? "Orphan" : "Background";
        json_t *dry = json_object_get(opts, "dryRun");
        size_t i;
        json_t *d;
        json_array_foreach(dry, i, d) {
            if (json_is_string(d) && !strcmp(json_string_value(d), "All"))
                c->dry_run = 1;
        }
    }
    if (!policy || !*policy)
        policy = "Background";
    if (strcmp(policy, "Background") && strcmp(policy, "Foreground") && strcmp(policy, "Orphan")) {
        json_t *causes = json_array();
        as_cause_add(causes, "FieldValueNotSupported", "propagationPolicy",
                     "Unsupported value: \"%s\": supported values: \"Foreground\", "
                     "\"Background\", \"Orphan\"", policy);
        as_errf(&c->err, 422, "Invalid",
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: "
                "\"%s\": supported values: \"Foreground\", \"Background\", \"Orphan\"", policy);
        c->err.details = json_pack("{s:s, s:s, s:o}", "group", "meta.k8s.io", "kind",
                                   "DeleteOptions", "causes", causes);
        goto out;
    }

    if (is_namespace(res)) {
        if (!strcmp(c->name, "default") || !strcmp(c->name, "kube-system") ||
            !strcmp(c->name, "kube-public")) {
            as_errf(&c->err, 403, "Forbidden",
                    "namespaces \"%s\" is forbidden: this namespace may not be deleted", c->name);
            c->err.details = json_pack("{s:s, s:s}", "name", c->name, "kind", "namespaces");
            goto out;
        }
        if (json_object_get(meta, "deletionTimestamp")) {
            *out = as_present(res, old);
            rc = 0;
            goto out;
        }
        result = json_deep_copy(old);
        char ts[40];
        now_rfc3339(ts, sizeof ts);
        json_object_set_new(as_meta(result), "deletionTimestamp", json_string(ts));
        json_t *st = json_object_get(result, "status");
        if (!json_is_object(st)) {
            st = json_object();
            json_object_set_new(result, "status", st);
        }
        json_object_set_new(st, "phase", json_string("Terminating"));
        if (!c->dry_run) {
            int src = as_store_update(c->srv->store, res->gr, "", c->name, result, as_obj_rv(old));
            if (src < 0) {
                store_err(c, src, c->name);
                goto out;
            }
            as_gc_kick(c->srv);
        }
        *out = as_present(res, result);
        rc = 0;
        goto out;
    }

    json_t *fins = json_object_get(meta, "finalizers");
    json_t *newfins = json_is_array(fins) ? json_deep_copy(fins) : json_array();
    if (!strcmp(policy, "Foreground") && !string_in(newfins, "foregroundDeletion"))
        json_array_append_new(newfins, json_string("foregroundDeletion"));
    if (!strcmp(policy, "Orphan") && !c->dry_run && uid)
        as_gc_orphan(c->srv, uid);

    if (json_array_size(newfins) > 0) {
        if (json_object_get(meta, "deletionTimestamp") && json_equal(newfins, fins)) {
            json_decref(newfins);
            *out = as_present(res, old);
            rc = 0;
            goto out;
        }
        result = json_deep_copy(old);
        json_t *rmeta = as_meta(result);
        if (!json_object_get(rmeta, "deletionTimestamp")) {
            char ts[40];
            now_rfc3339(ts, sizeof ts);
            json_object_set_new(rmeta, "deletionTimestamp", json_string(ts));
            json_object_set_new(rmeta, "deletionGracePeriodSeconds", json_integer(0));
        }
        json_object_set_new(rmeta, "finalizers", newfins);
        if (!c->dry_run) {
            int src = as_store_update(c->srv->store, res->gr, key_ns(c), c->name, result,
                                      as_obj_rv(old));
            if (src < 0) {
                store_err(c, src, c->name);
                goto out;
            }
            as_gc_kick(c->srv);
        }
        *out = as_present(res, result);
        rc = 0;
        goto out;
    }
    json_decref(newfins);
    if (!c->dry_run) {
        json_t *last = NULL;
        int src = as_store_delete(c->srv->store, res->gr, key_ns(c), c->name, as_obj_rv(old), &last);
        if (src < 0) {
            store_err(c, src, c->name);
            goto out;
        }
        json_decref(last);
        if (is_crd(res)) {
            char gr[300];
            crd_gr(old, gr, sizeof gr);
            as_objects_purge_gr(c->srv, gr);
            as_watch_close_gr(c->srv, gr);
            as_registry_remove_crd(c->srv->reg, c->name);
        }
        as_gc_kick(c->srv);
    }
    *out = deleted_status(res, c->name, old);
    rc = 0;
out:
    if (result)
        json_decref(result);
    json_decref(old);
    return rc;
}

/* --- CRD cleanup --------------------------------------------------------- */

static int collect_key(json_t *obj, void *data)
{
    json_t *keys = data;
    json_t *meta = json_object_get(obj, "metadata");
    json_array_append_new(keys, json_pack("[s?, s?]", json_string_value(json_object_get(meta, "namespace")),
                                          json_string_value(json_object_get(meta, "name"))));
    return 0;
}

void as_objects_purge_gr(struct as_server *srv, const char *gr)
{
    json_t *keys = json_array();
    uint64_t rv;
    char *next = NULL;
    if (!keys)
        return;
    if (as_store_list(srv->store, gr, NULL, NULL, 0, collect_key, keys, &rv, &next) < 0) {
        mg_log(MG_LOG_ERROR, "cannot list the objects of a deleted CRD", "resource", MG_S(gr));
        json_decref(keys);
        return;
    }
    free(next);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *ns = json_string_value(json_array_get(k, 0));
        const char *name = json_string_value(json_array_get(k, 1));
        if (!name)
            continue;
        int rc = as_store_delete(srv->store, gr, ns ? ns : "", name, 0, NULL);
        if (rc < 0 && rc != -ENOENT)
            mg_log(MG_LOG_ERROR, "cannot delete a custom resource of a deleted CRD", "resource",
                   MG_S(gr), "name", MG_S(name), "error", MG_ERRNO(rc));
    }
    json_decref(keys);
}
