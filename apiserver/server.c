/* The HTTP side of modelgate-apiserver: authentication (a bearer token, or
 * loopback peers only), the URL layout of the Kubernetes API
 * (/api/v1/namespaces/NS/RESOURCE/NAME/SUB, /apis/G/V/..., /watch/...),
 * discovery and OpenAPI through the registry, list/get with selectors,
 * pagination and Table output, and the write verbs through objects.c.
 * Every error leaves as a Status object with Kubernetes' reason and code. */
#define _GNU_SOURCE
#include "apiserver/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/log.h"
#include "lib/tls.h"
#include "lib/yaml.h"

#define AS_MAX_SEGS 12
#define AS_MAX_QUERY 32
/* A whole list must fit in one response. */
#define AS_MAX_OUTPUT ((size_t)512 << 20)

struct as_qparam {
    const char *k, *v;
};

struct as_req {
    struct as_server *srv;
    struct mg_httpd_req *hreq;
    char method[12];
    char *buf;                       /* decoded path segments and query */
    const char *seg[AS_MAX_SEGS];
    unsigned nseg;
    struct as_qparam q[AS_MAX_QUERY];
    unsigned nq;
    /* The resource request, once routed. */
    const char *group, *version, *resource, *ns, *name, *sub;
    int watch_path;
    const struct as_resource *res;
    int table;                       /* Accept asks for a Table */
    int partial;                     /* Accept asks for PartialObjectMetadata */
    char ctype[160];
    const char *target;              /* the raw target, for the access log */
    uint32_t target_len;
};

static void req_free(struct as_req *r);

static const char *qget(const struct as_req *r, const char *k)
{
    for (unsigned i = 0; i < r->nq; i++)
        if (!strcmp(r->q[i].k, k))
            return r->q[i].v;
    return NULL;
}

static int qbool(const struct as_req *r, const char *k)
{
    const char *v = qget(r, k);
    return v && (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "True"));
}

/* --- responses ------------------------------------------------------------ */

/* Sends v (stolen) as JSON. warnings: strings for Warning headers. */
/* One line per answered request at debug level. */
static void access_log(const struct as_req *r, int code)
{
    mg_log(MG_LOG_DEBUG, "request", "method", MG_S(r->method), "target",
           MG_SN(r->target, r->target_len), "code", MG_I(code));
}

static void send_json(struct as_req *r, int code, json_t *v, json_t *warnings)
{
    access_log(r, code);
    if (!v) {
        mg_httpd_respond(r->hreq, 500, NULL, 0, "out of memory\n", 14);
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) {
        mg_httpd_respond(r->hreq, 500, NULL, 0, "out of memory\n", 14);
        return;
    }
    struct mg_h1_header h[12];
    unsigned nh = 0;
    h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("Content-Type", "application/json");
    h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("Cache-Control", "no-cache, private");
    char wbuf[8][640];
    size_t nw = json_array_size(warnings);
    for (size_t i = 0; i < nw && i < 8; i++) {
        /* RFC 7234 warn-text is a quoted-string: escape quotes and
         * backslashes. */
        const char *w = json_string_value(json_array_get(warnings, i));
        size_t o = 0;
        o += (size_t)snprintf(wbuf[i], sizeof wbuf[i], "299 - \"");
        for (const char *p = w ? w : ""; *p && o < sizeof wbuf[i] - 4; p++) {
            if (*p == '"' || *p == '\\')
                wbuf[i][o++] = '\\';
            wbuf[i][o++] = (*p == '\r' || *p == '\n') ? ' ' : *p;
        }
        wbuf[i][o++] = '"';
        wbuf[i][o] = 0;
        h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("Warning", wbuf[i]);
    }
    size_t len = strlen(s);
    int rc = mg_httpd_respond(r->hreq, code, h, nh, s, len);
    if (rc == -EMSGSIZE) {
        static const char tl[] =
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\","
            "\"message\":\"the response is too large; use limit and continue\","
            "\"reason\":\"InternalError\",\"code\":500}";
        mg_httpd_respond(r->hreq, 500, h, 2, tl, sizeof tl - 1);
    }
    free(s);
}

static void send_err(struct as_req *r, const struct as_err *e)
{
    json_t *st = as_status_json(e);
    if (e->code >= 500)
        mg_log(MG_LOG_WARN, "request failed", "method", MG_S(r->method), "code", MG_I(e->code),
               "message", MG_S(e->msg));
    send_json(r, e->code, st, NULL);
}

static void send_status(struct as_req *r, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void send_status(struct as_req *r, int code, const char *reason, const char *fmt, ...)
{
    struct as_err e;
    memset(&e, 0, sizeof e);
    e.code = code;
    e.reason = reason;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    send_err(r, &e);
}

static void send_not_found(struct as_req *r)
{
    struct as_err e;
    memset(&e, 0, sizeof e);
    as_errf(&e, 404, "NotFound", "the server could not find the requested resource");
    e.details = json_object();
    send_err(r, &e);
    as_err_clear(&e);
}

static void send_text(struct as_req *r, int code, const char *text)
{
    access_log(r, code);
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "text/plain; charset=utf-8"),
                               MG_HTTPD_HDR("X-Content-Type-Options", "nosniff")};
    mg_httpd_respond(r->hreq, code, h, 2, text, strlen(text));
}

static void method_not_allowed(struct as_req *r)
{
    send_status(r, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
}

/* --- Tables ---------------------------------------------------------------- */

json_t *as_table_new(const struct as_resource *res, const char *rv, int with_columns)
{
    json_t *t = json_pack("{s:s, s:s, s:{s:s}}", "kind", "Table", "apiVersion", "meta.k8s.io/v1",
                          "metadata", "resourceVersion", rv);
    if (!t)
        return NULL;
    json_t *cols = with_columns ? as_table_columns(res) : NULL;
    json_object_set_new(t, "columnDefinitions", cols ? cols : json_array());
    json_object_set_new(t, "rows", json_array());
    return t;
}

static json_t *partial_meta(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    return json_pack("{s:s, s:s, s:O}", "kind", "PartialObjectMetadata", "apiVersion",
                     "meta.k8s.io/v1", "metadata", m ? m : json_object());
}

json_t *as_table_row(struct as_server *srv, const struct as_resource *res, json_t *obj,
                     int include_object, int64_t now)
{
    json_t *cells = as_table_cells(res, obj, now);
    json_t *row = json_pack("{s:o}", "cells", cells ? cells : json_array());
    if (!row)
        return NULL;
    if (include_object == 1)
        json_object_set_new(row, "object", partial_meta(obj));
    else if (include_object == 2)
        json_object_set_new(row, "object", as_present(res, obj));
    return row;
}

static int include_object_of(struct as_req *r, int *out)
{
    const char *v = qget(r, "includeObject");
    if (!v || !*v || !strcmp(v, "Metadata"))
        *out = 1;
    else if (!strcmp(v, "Object"))
        *out = 2;
    else if (!strcmp(v, "None"))
        *out = 0;
    else {
        send_status(r, 400, "BadRequest",
                    "includeObject: Unsupported value: \"%s\": supported values: \"Metadata\", "
                    "\"None\", \"Object\"", v);
        return -1;
    }
    return 0;
}

/* --- get and list ---------------------------------------------------------- */

struct list_ctx {
    struct as_req *r;
    struct as_selector *lsel, *fsel;
    json_t *items;      /* list items or table rows */
    int include;
    int64_t now;
};

static int list_cb(json_t *obj, void *data)
{
    struct list_ctx *lc = data;
    if (lc->lsel && !as_selector_match(lc->lsel, obj))
        return 1;
    if (lc->fsel && !as_selector_match(lc->fsel, obj))
        return 1;
    json_t *item;
    if (lc->r->table)
        item = as_table_row(lc->r->srv, lc->r->res, obj, lc->include, lc->now);
    else if (lc->r->partial)
        item = partial_meta(obj);
    else
        item = as_present(lc->r->res, obj);
    if (!item || json_array_append_new(lc->items, item) < 0)
        return -1;
    return 0;
}

static int parse_selectors(struct as_req *r, struct as_selector **lsel, struct as_selector **fsel)
{
    const char *err = NULL;
    *lsel = *fsel = NULL;
    /* No parameter, or an empty one, selects everything: leave the
     * selector NULL, so a watch does not track which objects "match" (a
     * watch with a selector lists its namespace to know that: 90 ms of CPU
     * per watch over 10,000 objects, which stalled 100 watchers). */
    const char *ls = qget(r, "labelSelector"), *fs = qget(r, "fieldSelector");
    if (ls && *ls && as_label_selector_parse(ls, lsel, &err) < 0) {
        /* select.c words it as the API does, "unable to parse requirement: ..." */
        send_status(r, 400, "BadRequest", "%s", err ? err : "invalid label selector");
        return -1;
    }
    if (fs && *fs && as_field_selector_parse(fs, fsel, &err) < 0) {
        send_status(r, 400, "BadRequest", "%s", err ? err : "invalid field selector");
        goto fail;
    }
    static const char *const dflt[] = {"metadata.name", "metadata.namespace", NULL};
    if (as_field_selector_check(*fsel, r->res->field_paths ? r->res->field_paths : dflt, &err) < 0) {
        send_status(r, 400, "BadRequest", "%s", err ? err : "field label not supported");
        goto fail;
    }
    return 0;
fail:
    as_selector_free(*lsel);
    as_selector_free(*fsel);
    *lsel = *fsel = NULL;
    return -1;
}

static void do_list(struct as_req *r)
{
    struct list_ctx lc;
    memset(&lc, 0, sizeof lc);
    lc.r = r;
    lc.now = (int64_t)time(NULL);
    if (r->table && include_object_of(r, &lc.include) < 0)
        return;
    if (parse_selectors(r, &lc.lsel, &lc.fsel) < 0)
        return;
    uint64_t limit = 0;
    const char *ls = qget(r, "limit");
    if (ls && *ls && as_parse_u64(ls, &limit) < 0) {
        send_status(r, 400, "BadRequest", "limit: invalid value \"%s\"", ls);
        goto out;
    }
    if (limit > 1000000)
        limit = 1000000;
    const char *cont = qget(r, "continue");
    if (cont && !*cont)
        cont = NULL;
    lc.items = json_array();
    uint64_t rv = 0;
    char *next = NULL;
    int rc = as_store_list(r->srv->store, r->res->gr, r->res->namespaced ? r->ns : NULL, cont,
                           (unsigned)limit, list_cb, &lc, &rv, &next);
    if (rc == -EINVAL) {
        send_status(r, 400, "BadRequest", "continue key is not valid: %s", cont ? cont : "");
        goto out;
    }
    if (rc < 0) {
        send_status(r, 500, "InternalError", "Internal error occurred: cannot list: %s",
                    strerror(-rc));
        goto out;
    }
    char rvs[32];
    snprintf(rvs, sizeof rvs, "%llu", (unsigned long long)rv);
    json_t *body;
    if (r->table) {
        body = as_table_new(r->res, rvs, 1);
        json_object_set(body, "rows", lc.items);
        if (next)
            json_object_set_new(json_object_get(body, "metadata"), "continue", json_string(next));
    } else {
        char av[256];
        as_api_version(r->res, av, sizeof av);
        body = json_pack("{s:s, s:s, s:{s:s}, s:O}", "apiVersion", r->partial ? "meta.k8s.io/v1" : av,
                         "kind", r->partial ? "PartialObjectMetadataList" : r->res->list_kind,
                         "metadata", "resourceVersion", rvs, "items", lc.items);
        if (body && next)
            json_object_set_new(json_object_get(body, "metadata"), "continue", json_string(next));
    }
    free(next);
    send_json(r, 200, body, NULL);
out:
    if (lc.items)
        json_decref(lc.items);
    as_selector_free(lc.lsel);
    as_selector_free(lc.fsel);
}

static void do_get(struct as_req *r)
{
    struct as_wctx c;
    as_wctx_init(&c, r->srv, r->res, r->ns, r->name, r->sub);
    json_t *obj = NULL;
    int rc = r->sub && !strcmp(r->sub, "scale") ? as_scale_get(&c, &obj) : as_obj_get(&c, &obj);
    if (rc < 0) {
        send_err(r, &c.err);
        as_wctx_free(&c);
        return;
    }
    if (r->table && !(r->sub && !strcmp(r->sub, "scale"))) {
        int include = 1;
        if (include_object_of(r, &include) < 0) {
            json_decref(obj);
            as_wctx_free(&c);
            return;
        }
        const char *rv = as_meta_str(obj, "resourceVersion");
        json_t *t = as_table_new(r->res, rv ? rv : "", 1);
        json_array_append_new(json_object_get(t, "rows"),
                              as_table_row(r->srv, r->res, obj, include, (int64_t)time(NULL)));
        json_decref(obj);
        send_json(r, 200, t, NULL);
    } else if (r->partial) {
        json_t *p = partial_meta(obj);
        json_decref(obj);
        send_json(r, 200, p, NULL);
    } else {
        send_json(r, 200, obj, NULL);
    }
    as_wctx_free(&c);
}

static void do_watch(struct as_req *r)
{
    struct as_watch_params p;
    memset(&p, 0, sizeof p);
    p.res = r->res;
    p.ns = r->res->namespaced ? r->ns : NULL;
    p.name = r->name;
    p.table = r->table;
    if (r->table && include_object_of(r, &p.include_object) < 0)
        return;
    if (parse_selectors(r, &p.lsel, &p.fsel) < 0)
        return;
    const char *rv = qget(r, "resourceVersion");
    if (rv && *rv && strcmp(rv, "0")) {
        if (as_parse_u64(rv, &p.rv) < 0) {
            send_status(r, 400, "BadRequest", "invalid resource version: %s", rv);
            goto fail;
        }
        p.have_rv = 1;
    }
    p.bookmarks = qbool(r, "allowWatchBookmarks");
    const char *ts = qget(r, "timeoutSeconds");
    if (ts && *ts) {
        uint64_t t;
        if (as_parse_u64(ts, &t) < 0) {
            send_status(r, 400, "BadRequest", "timeoutSeconds: invalid value \"%s\"", ts);
            goto fail;
        }
        p.timeout_s = t > 86400 * 365 ? 86400 * 365 : (int64_t)t;
    }
    access_log(r, 200);
    int rc = as_watch_start(r->srv, r->hreq, &p);
    if (rc < 0) {
        send_status(r, 500, "InternalError", "Internal error occurred: cannot start the watch: %s",
                    strerror(-rc));
        goto fail;
    }
    /* The watch took the request over (its data and on_end): this
     * request's parse is done with. Nothing touches r after dispatch. */
    req_free(r);
    return;
fail:
    as_selector_free(p.lsel);
    as_selector_free(p.fsel);
}

/* --- writes ---------------------------------------------------------------- */

/* Parses a request body as JSON, or YAML when the Content-Type says so.
 * NULL after answering 400. */
static json_t *parse_body(struct as_req *r, const char *body, size_t n, int yaml)
{
    struct mg_json_errs errs;
    mg_json_errs_init(&errs, 4);
    json_t *v = NULL;
    int rc;
    if (n == 0) {
        send_status(r, 400, "BadRequest", "the request body is empty: an object is required");
        goto out;
    }
    if (strstr(r->ctype, "protobuf")) {
        char perr[600];
        rc = as_protobuf_decode(body, n, &v, perr, sizeof perr);
        if (rc == -ENOTSUP)
            send_status(r, 415, "UnsupportedMediaType", "%s", perr);
        else if (rc == -ENOMEM)
            send_status(r, 500, "InternalError", "out of memory");
        else if (rc < 0)
            send_status(r, 400, "BadRequest", "%s", perr);
        if (rc < 0)
            v = NULL;
        goto out;
    }
    if (r->ctype[0] && !strstr(r->ctype, "json") && !strstr(r->ctype, "yaml")) {
        send_status(r, 415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json, application/yaml");
        goto out;
    }
    if (yaml) {
        struct mg_yaml_limits yl;
        mg_yaml_limits_default(&yl);
        yl.max_bytes = AS_BODY_MAX;
        rc = mg_yaml_load(body, n, &yl, "body", &errs, &v);
    } else {
        struct mg_json_limits jl;
        mg_json_limits_default(&jl);
        jl.max_bytes = AS_BODY_MAX;
        rc = mg_json_load(body, n, &jl, "body", &errs, &v);
    }
    if (rc < 0) {
        const struct mg_json_error *e = errs.n ? &errs.items[0] : NULL;
        if (rc == -EFBIG)
            send_status(r, 413, "RequestEntityTooLarge", "the request body is too large");
        else if (e)
            send_status(r, 400, "BadRequest", "the request body is not valid %s: line %u, column %u: %s",
                        yaml ? "YAML" : "JSON", e->line, e->col, e->msg);
        else
            send_status(r, 400, "BadRequest", "the request body is not valid %s", yaml ? "YAML" : "JSON");
        v = NULL;
        goto out;
    }
    if (!json_is_object(v)) {
        send_status(r, 400, "BadRequest",
                    "the body of the request was in an unknown format: expected an object, got %s",
                    mg_json_kind(v));
        json_decref(v);
        v = NULL;
    }
out:
    mg_json_errs_free(&errs);
    return v;
}

static int body_is_yaml(const struct as_req *r)
{
    return strstr(r->ctype, "yaml") != NULL;
}

/* dryRun and fieldValidation. -1 after answering 400. */
static int write_options(struct as_req *r, struct as_wctx *c)
{
    for (unsigned i = 0; i < r->nq; i++) {
        if (strcmp(r->q[i].k, "dryRun"))
            continue;
        if (!strcmp(r->q[i].v, "All"))
            c->dry_run = 1;
        else if (*r->q[i].v) {
            send_status(r, 400, "BadRequest",
                        "dryRun: Unsupported value: \"%s\": supported values: \"All\"", r->q[i].v);
            return -1;
        }
    }
    const char *fv = qget(r, "fieldValidation");
    if (!fv || !*fv || !strcmp(fv, "Warn"))
        c->fv = AS_FV_WARN;
    else if (!strcmp(fv, "Strict"))
        c->fv = AS_FV_STRICT;
    else if (!strcmp(fv, "Ignore"))
        c->fv = AS_FV_IGNORE;
    else {
        send_status(r, 400, "BadRequest", "invalid fieldValidation directive: %s", fv);
        return -1;
    }
    return 0;
}

static void do_write(struct as_req *r, const char *body, size_t n)
{
    struct as_wctx c;
    as_wctx_init(&c, r->srv, r->res, r->ns, r->name, r->sub);
    json_t *in = NULL, *out = NULL;
    int code = 200, rc = -1;
    if (write_options(r, &c) < 0)
        goto done;
    if (!strcmp(r->method, "POST")) {
        if (!(in = parse_body(r, body, n, body_is_yaml(r))))
            goto done;
        rc = as_obj_create(&c, in, &out);
        code = 201;
    } else if (!strcmp(r->method, "PUT")) {
        if (!(in = parse_body(r, body, n, body_is_yaml(r))))
            goto done;
        rc = as_obj_update(&c, in, &out);
    } else if (!strcmp(r->method, "PATCH")) {
        enum as_patch_type pt;
        if (as_patch_type_parse(r->ctype, strlen(r->ctype), &pt) < 0) {
            send_status(r, 415, "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types "
                        "include: application/json-patch+json, application/merge-patch+json, "
                        "application/apply-patch+yaml%s",
                        r->res->builtin ? ", application/strategic-merge-patch+json" : "");
            goto done;
        }
        if (pt == AS_PATCH_JSON) {
            /* A JSON patch is an array. */
            struct mg_json_errs errs;
            mg_json_errs_init(&errs, 2);
            struct mg_json_limits jl;
            mg_json_limits_default(&jl);
            jl.max_bytes = AS_BODY_MAX;
            int lrc = n ? mg_json_load(body, n, &jl, "body", &errs, &in) : -EINVAL;
            if (lrc < 0) {
                send_status(r, 400, "BadRequest", "the JSON patch is not valid JSON%s%s",
                            errs.n ? ": " : "", errs.n ? errs.items[0].msg : "");
                mg_json_errs_free(&errs);
                in = NULL;
                goto done;
            }
            mg_json_errs_free(&errs);
        } else if (!(in = parse_body(r, body, n, pt == AS_PATCH_APPLY || body_is_yaml(r)))) {
            goto done;
        }
        int created = 0;
        rc = as_obj_patch(&c, pt, in, &out, &created);
        code = created ? 201 : 200;
    } else if (!strcmp(r->method, "DELETE")) {
        if (n > 0 && !(in = parse_body(r, body, n, body_is_yaml(r))))
            goto done;
        rc = as_obj_delete(&c, in, qget(r, "propagationPolicy"), &out);
    }
    if (rc < 0)
        send_err(r, &c.err);
    else
        send_json(r, code, out, c.warnings);
done:
    if (in)
        json_decref(in);
    as_wctx_free(&c);
}

/* DELETE on a collection: every selected object, one by one. */
struct dc_ctx {
    struct as_selector *lsel, *fsel;
    json_t *keys;
};

static int dc_cb(json_t *obj, void *data)
{
    struct dc_ctx *d = data;
    if ((d->lsel && !as_selector_match(d->lsel, obj)) || (d->fsel && !as_selector_match(d->fsel, obj)))
        return 1;
    json_t *m = json_object_get(obj, "metadata");
    json_array_append_new(d->keys, json_pack("[s?, s?]", json_string_value(json_object_get(m, "namespace")),
                                             json_string_value(json_object_get(m, "name"))));
    return 0;
}

static void do_delete_collection(struct as_req *r, const char *body, size_t n)
{
    struct dc_ctx d;
    memset(&d, 0, sizeof d);
    json_t *opts = NULL;
    if (n > 0 && !(opts = parse_body(r, body, n, body_is_yaml(r))))
        return;
    if (parse_selectors(r, &d.lsel, &d.fsel) < 0) {
        json_decref(opts);
        return;
    }
    d.keys = json_array();
    uint64_t rv;
    char *next = NULL;
    int rc = as_store_list(r->srv->store, r->res->gr, r->res->namespaced ? r->ns : NULL, NULL, 0,
                           dc_cb, &d, &rv, &next);
    free(next);
    if (rc < 0) {
        send_status(r, 500, "InternalError", "Internal error occurred: cannot list: %s", strerror(-rc));
        goto out;
    }
    size_t i;
    json_t *k;
    json_array_foreach(d.keys, i, k) {
        struct as_wctx c;
        as_wctx_init(&c, r->srv, r->res, json_string_value(json_array_get(k, 0)),
                     json_string_value(json_array_get(k, 1)), NULL);
        if (write_options(r, &c) < 0) {
            as_wctx_free(&c);
            goto out;
        }
        json_t *res_obj = NULL;
        if (as_obj_delete(&c, opts, qget(r, "propagationPolicy"), &res_obj) == 0)
            json_decref(res_obj);
        as_wctx_free(&c);
    }
    send_json(r, 200, as_status_json(NULL), NULL);
out:
    json_decref(opts);
    json_decref(d.keys);
    as_selector_free(d.lsel);
    as_selector_free(d.fsel);
}

/* --- discovery and the small endpoints -------------------------------------- */

static void do_version(struct as_req *r)
{
    json_t *v = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "major", AS_KUBE_MAJOR,
                          "minor", AS_KUBE_MINOR, "gitVersion", AS_KUBE_GIT_VERSION, "gitCommit",
                          "modelgate", "gitTreeState", "clean", "buildDate",
                          "2024-12-11T00:00:00Z", "goVersion", "go1.23.0", "compiler", "gc",
                          "platform", "linux/amd64");
    send_json(r, 200, v, NULL);
}

/* GET /openapi/v2: kubectl 1.27 and 1.28 fetch it (as gnostic protobuf)
 * before apply and fail without it. The types are described in v3 only
 * (which those versions also read to leave validation to the server); this
 * document is valid and empty, so for strategic merge patches they use the
 * types compiled into them, as kubectl 1.32 does here. */
static void do_openapi_v2(struct as_req *r)
{
    size_t n = 0;
    const char *acc = mg_httpd_req_header(r->hreq, "Accept", &n);
    if (acc && memmem(acc, n, "protobuf", 8)) {
        /* Document{swagger: "2.0", info: {title, version}, paths: {}} */
        static const char doc[] = "\x0a\x03" "2.0"
                                  "\x12\x1a" "\x0a\x09" "modelgate" "\x12\x0d" "v1.32.0+mg-v2"
                                  "\x42\x00";
        struct mg_h1_header h[] = {
            MG_HTTPD_HDR("Content-Type", "application/octet-stream")};
        access_log(r, 200);
        mg_httpd_respond(r->hreq, 200, h, 1, doc, sizeof doc - 1);
        return;
    }
    send_json(r, 200,
              json_pack("{s:s, s:{s:s, s:s}, s:{}, s:{}}", "swagger", "2.0", "info", "title",
                        "modelgate", "version", AS_KUBE_GIT_VERSION, "paths", "definitions"),
              NULL);
}

static void do_openapi(struct as_req *r)
{
    /* seg: openapi v3 [api v1 | apis G V] */
    json_t *doc = NULL;
    if (r->nseg == 2) {
        doc = as_openapi_root(r->srv->reg);
    } else if (r->nseg == 4 && !strcmp(r->seg[2], "api")) {
        doc = as_openapi_group_version(r->srv->reg, "", r->seg[3]);
    } else if (r->nseg == 5 && !strcmp(r->seg[2], "apis")) {
        doc = as_openapi_group_version(r->srv->reg, r->seg[3], r->seg[4]);
    }
    if (!doc) {
        send_not_found(r);
        return;
    }
    send_json(r, 200, doc, NULL);
}

/* GET /apis/<group>: the APIGroup, from /apis's list. */
static void do_api_group(struct as_req *r, const char *group)
{
    json_t *all = as_discovery_apis(r->srv->reg);
    json_t *groups = json_object_get(all, "groups");
    size_t i;
    json_t *g;
    json_array_foreach(groups, i, g) {
        const char *name = json_string_value(json_object_get(g, "name"));
        if (name && !strcmp(name, group)) {
            json_t *out = json_deep_copy(g);
            json_object_set_new(out, "kind", json_string("APIGroup"));
            json_object_set_new(out, "apiVersion", json_string("v1"));
            json_decref(all);
            send_json(r, 200, out, NULL);
            return;
        }
    }
    json_decref(all);
    send_not_found(r);
}

/* --- routing --------------------------------------------------------------- */

static int is_get(const struct as_req *r)
{
    return !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
}

/* Splits the target into decoded segments and query parameters. */
static int parse_target(struct as_req *r, const char *t, size_t n)
{
    const char *q = memchr(t, '?', n);
    size_t plen = q ? (size_t)(q - t) : n;
    r->buf = malloc(n + AS_MAX_SEGS + AS_MAX_QUERY * 2 + 8);
    if (!r->buf)
        return -ENOMEM;
    char *o = r->buf;
    size_t room = n + AS_MAX_SEGS + AS_MAX_QUERY * 2 + 8;
    const char *p = t, *end = t + plen;
    while (p < end) {
        while (p < end && *p == '/')
            p++;
        if (p >= end)
            break;
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (r->nseg >= AS_MAX_SEGS)
            return -E2BIG;
        if (as_url_decode(s, (size_t)(p - s), 0, o, room) < 0)
            return -EINVAL;
        r->seg[r->nseg++] = o;
        size_t l = strlen(o) + 1;
        o += l;
        room -= l;
    }
    if (q) {
        p = q + 1;
        end = t + n;
        while (p < end) {
            const char *s = p;
            while (p < end && *p != '&')
                p++;
            const char *eq = memchr(s, '=', (size_t)(p - s));
            const char *ke = eq ? eq : p;
            if (ke > s && r->nq < AS_MAX_QUERY) {
                if (as_url_decode(s, (size_t)(ke - s), 1, o, room) < 0)
                    return -EINVAL;
                r->q[r->nq].k = o;
                size_t l = strlen(o) + 1;
                o += l;
                room -= l;
                const char *vs = eq ? eq + 1 : p;
                if (as_url_decode(vs, (size_t)(p - vs), 1, o, room) < 0)
                    return -EINVAL;
                r->q[r->nq].v = o;
                l = strlen(o) + 1;
                o += l;
                room -= l;
                r->nq++;
            }
            if (p < end)
                p++;
        }
    }
    return 0;
}

/* Sorts out /api/v1/... and /apis/G/V/...: group, version, resource, ns,
 * name, sub. 0, or 1 when it is a discovery path (handled), -1 after
 * answering. */
static int route_resource(struct as_req *r)
{
    unsigned i;
    if (!strcmp(r->seg[0], "api")) {
        if (r->nseg == 1) {
            if (!is_get(r))
                return method_not_allowed(r), -1;
            send_json(r, 200, as_discovery_api(r->srv->reg), NULL);
            return 1;
        }
        r->group = "";
        r->version = r->seg[1];
        i = 2;
    } else {
        if (r->nseg == 1) {
            if (!is_get(r))
                return method_not_allowed(r), -1;
            send_json(r, 200, as_discovery_apis(r->srv->reg), NULL);
            return 1;
        }
        if (r->nseg == 2) {
            if (!is_get(r))
                return method_not_allowed(r), -1;
            do_api_group(r, r->seg[1]);
            return 1;
        }
        r->group = r->seg[1];
        r->version = r->seg[2];
        i = 3;
    }
    if (i == r->nseg) {
        if (!is_get(r))
            return method_not_allowed(r), -1;
        json_t *d = as_discovery_resources(r->srv->reg, r->group, r->version);
        if (!d) {
            send_not_found(r);
            return -1;
        }
        send_json(r, 200, d, NULL);
        return 1;
    }
    if (!strcmp(r->seg[i], "watch")) {
        r->watch_path = 1;
        i++;
    }
    unsigned left = r->nseg - i;
    const char *const *s = r->seg + i;
    if (left == 0) {
        send_not_found(r);
        return -1;
    }
    if (!strcmp(s[0], "namespaces") && left >= 2) {
        if (left == 2 || (left == 3 && (!strcmp(s[2], "status") || !strcmp(s[2], "finalize")))) {
            r->resource = "namespaces";
            r->name = s[1];
            r->sub = left == 3 ? s[2] : NULL;
        } else {
            r->ns = s[1];
            s += 2;
            left -= 2;
            r->resource = s[0];
            r->name = left > 1 ? s[1] : NULL;
            r->sub = left > 2 ? s[2] : NULL;
            if (left > 3) {
                send_not_found(r);
                return -1;
            }
        }
    } else {
        r->resource = s[0];
        r->name = left > 1 ? s[1] : NULL;
        r->sub = left > 2 ? s[2] : NULL;
        if (left > 3) {
            send_not_found(r);
            return -1;
        }
    }
    r->res = as_registry_find(r->srv->reg, r->group, r->version, r->resource);
    if (!r->res) {
        send_not_found(r);
        return -1;
    }
    if (r->ns && !r->res->namespaced) {
        send_not_found(r);
        return -1;
    }
    if (r->sub) {
        int ok = (!strcmp(r->sub, "status") && r->res->has_status) ||
                 (!strcmp(r->sub, "scale") && r->res->has_scale);
        if (!ok || !r->name || r->watch_path) {
            send_not_found(r);
            return -1;
        }
    }
    /* A namespaced object is addressed with its namespace. */
    if (r->res->namespaced && r->name && !r->ns) {
        send_not_found(r);
        return -1;
    }
    return 0;
}

static void dispatch(struct as_req *r, const char *body, size_t n)
{
    if (is_get(r)) {
        if (r->watch_path || qbool(r, "watch"))
            do_watch(r);
        else if (r->name)
            do_get(r);
        else
            do_list(r);
        return;
    }
    if (r->watch_path) {
        method_not_allowed(r);
        return;
    }
    if (!strcmp(r->method, "POST")) {
        if (r->name) {
            method_not_allowed(r);
            return;
        }
        if (r->res->namespaced && !r->ns) {
            send_not_found(r);
            return;
        }
        do_write(r, body, n);
    } else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "PATCH")) {
        if (!r->name) {
            method_not_allowed(r);
            return;
        }
        do_write(r, body, n);
    } else if (!strcmp(r->method, "DELETE")) {
        if (r->sub) {
            method_not_allowed(r);
            return;
        }
        if (r->name)
            do_write(r, body, n);
        else
            do_delete_collection(r, body, n);
    } else {
        method_not_allowed(r);
    }
}

static void req_free(struct as_req *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

static void on_req_end(struct mg_httpd_req *hreq, enum mg_httpd_end reason)
{
    req_free(mg_httpd_req_data(hreq));
    mg_httpd_req_set_data(hreq, NULL);
}

static void on_body(struct mg_httpd_req *hreq, const char *body, size_t n)
{
    struct as_req *r = mg_httpd_req_data(hreq);
    if (r)
        dispatch(r, body, n);
}

/* Constant-time: a token compare must not tell how much matched. */
static int token_ok(const char *want, const char *got, size_t n)
{
    size_t wl = strlen(want);
    unsigned char diff = (unsigned char)(wl != n);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(got[i] ^ want[i < wl ? i : 0]);
    return diff == 0;
}

static int authorized(struct as_req *r)
{
    if (!r->srv->token)
        return 1;
    size_t n = 0;
    const char *h = mg_httpd_req_header(r->hreq, "Authorization", &n);
    if (!h || n < 7 || strncasecmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    n -= 7;
    while (n && *h == ' ') {
        h++;
        n--;
    }
    return token_ok(r->srv->token, h, n);
}

static int wants_body(const struct as_req *r, const struct mg_h1_msg *m)
{
    if (is_get(r))
        return 0;
    return m->framing != MG_H1_BODY_NONE;
}

static void on_request(struct mg_httpd_req *hreq, void *data)
{
    struct as_server *srv = data;
    const struct mg_h1_msg *m = mg_httpd_req_msg(hreq);
    struct as_req *r = calloc(1, sizeof *r);
    if (!r) {
        mg_httpd_respond(hreq, 500, NULL, 0, "out of memory\n", 14);
        return;
    }
    r->srv = srv;
    r->hreq = hreq;
    r->target = m->target;
    r->target_len = m->target_len;
    mg_httpd_req_set_data(hreq, r);
    mg_httpd_on_end(hreq, on_req_end);
    snprintf(r->method, sizeof r->method, "%.*s", (int)(m->method_len < 11 ? m->method_len : 11),
             m->method);
    size_t n = 0;
    const char *ct = mg_httpd_req_header(hreq, "Content-Type", &n);
    if (ct)
        snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)(n < sizeof r->ctype - 1 ? n : sizeof r->ctype - 1), ct);
    const char *acc = mg_httpd_req_header(hreq, "Accept", &n);
    if (acc) {
        if (memmem(acc, n, "as=Table", 8))
            r->table = 1;
        else if (memmem(acc, n, "as=PartialObjectMetadata", 24))
            r->partial = 1;
    }

    int prc = parse_target(r, m->target, m->target_len);
    if (prc == -E2BIG || r->nseg == 0) {
        if (r->nseg == 0 && prc == 0 && is_get(r)) {
            /* GET /: the paths served, as kube-apiserver lists them. */
            send_json(r, 200, json_pack("{s:[s,s,s,s,s,s,s]}", "paths", "/api", "/api/v1", "/apis",
                                        "/healthz", "/livez", "/openapi/v3", "/readyz"), NULL);
            return;
        }
        send_not_found(r);
        return;
    }
    if (prc < 0) {
        send_status(r, 400, "BadRequest", "the request URL is malformed (bad percent-encoding)");
        return;
    }
    const char *s0 = r->seg[0];
    int public_path = !strcmp(s0, "healthz") || !strcmp(s0, "livez") || !strcmp(s0, "readyz") ||
                      !strcmp(s0, "version");
    if (!public_path && !authorized(r)) {
        send_status(r, 401, "Unauthorized", "Unauthorized");
        return;
    }
    if (public_path) {
        if (!is_get(r)) {
            method_not_allowed(r);
            return;
        }
        if (!strcmp(s0, "version"))
            do_version(r);
        else
            send_text(r, 200, "ok");
        return;
    }
    if (!strcmp(s0, "openapi")) {
        if (!is_get(r)) {
            method_not_allowed(r);
            return;
        }
        if (r->nseg >= 2 && !strcmp(r->seg[1], "v3"))
            do_openapi(r);
        else if (r->nseg == 2 && !strcmp(r->seg[1], "v2"))
            do_openapi_v2(r);
        else
            send_not_found(r);
        return;
    }
    if (strcmp(s0, "api") && strcmp(s0, "apis")) {
        send_not_found(r);
        return;
    }
    if (route_resource(r) != 0)
        return;
    if (wants_body(r, m)) {
        if (m->framing == MG_H1_BODY_LENGTH && m->content_length > AS_BODY_MAX) {
            send_status(r, 413, "RequestEntityTooLarge",
                        "the request body is too large: %llu bytes, at most %zu are accepted",
                        (unsigned long long)m->content_length, AS_BODY_MAX);
            return;
        }
        if (mg_httpd_collect_body(hreq, AS_BODY_MAX, on_body) < 0)
            send_status(r, 500, "InternalError", "cannot read the request body");
        return;
    }
    dispatch(r, NULL, 0);
}

/* --- loopback-only transport ------------------------------------------------ */

static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            return a->sin6_addr.s6_addr[12] == 127;
    }
    if (ss->ss_family == AF_UNIX)
        return 1;
    return 0;
}

/* Without a token file nobody is authenticated: only this host may talk. */
static int loopback_wrap(struct mg_xprt_factory *f, struct mg_xprt *x, int fd, int server,
                         const char *peer_name)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == -1)
        return -errno;
    if (!is_loopback(&ss)) {
        char host[INET6_ADDRSTRLEN] = "?";
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        mg_log(MG_LOG_WARN, "refused a connection from a non-loopback peer (no --token-file)",
               "peer", MG_S(host));
        return -EACCES;
    }
    struct mg_xprt_factory *inner = f->ctx;   /* the TLS factory, or NULL */
    if (inner)
        return inner->wrap(inner, x, fd, server, peer_name);
    return mg_xprt_raw_init(x, fd);
}

/* --- start-up ----------------------------------------------------------------- */

static int read_token(const char *path, char **out, const char **err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = mg_read_file(path, 4096, &data, &len);
    if (rc < 0) {
        *err = rc == -EFBIG ? "--token-file: the file is larger than 4096 bytes"
                            : "--token-file: cannot read the file";
        return rc;
    }
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ' ||
                   data[len - 1] == '\t'))
        data[--len] = 0;
    size_t start = 0;
    while (start < len && (data[start] == ' ' || data[start] == '\t'))
        start++;
    if (start == len) {
        free(data);
        *err = "--token-file: the file holds no token";
        return -EINVAL;
    }
    for (size_t i = start; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x21 || c > 0x7e) {
            free(data);
            *err = "--token-file: the token must be one line of printable ASCII without spaces";
            return -EINVAL;
        }
    }
    memmove(data, data + start, len - start + 1);
    *out = data;
    return 0;
}

static int write_kubeconfig(struct as_server *srv, const char *path, int port, const char **err)
{
    char host[256];
    unsigned ignored;
    if (mg_split_hostport(srv->opts.listen, host, sizeof host, &ignored) < 0) {
        *err = "--listen: cannot parse HOST:PORT";
        return -EINVAL;
    }
    /* A wildcard listener is reached on loopback from this host. */
    const char *h = host;
    if (!strcmp(host, "0.0.0.0") || !*host)
        h = "127.0.0.1";
    else if (!strcmp(host, "::"))
        h = "::1";
    const char *scheme = srv->tls ? "https" : "http";
    char server[320];
    snprintf(server, sizeof server, strchr(h, ':') ? "%s://[%s]:%d" : "%s://%s:%d", scheme, h,
             port);
    /* kubectl verifies the server: a self-signed certificate is its own CA;
     * one issued by a CA is checked against the system's trust store. */
    char *ca_b64 = NULL;
    if (srv->tls) {
        int sr = mg_tls_self_signed_pem_b64(srv->opts.tls_cert, &ca_b64);
        if (sr < 0) {
            *err = "--tls-cert: cannot read the certificate for the kubeconfig";
            return sr;
        }
        if (sr == 0)
            mg_log(MG_LOG_INFO, "--kubeconfig-out: the certificate is not self-signed, so the "
                                "kubeconfig carries no certificate-authority-data (clients use "
                                "their system trust store)", "cert", MG_S(srv->opts.tls_cert));
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        *err = "--kubeconfig-out: path too long";
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1) {
        int e = errno;
        free(ca_b64);
        *err = "--kubeconfig-out: cannot create the file";
        return -e;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        free(ca_b64);
        *err = "--kubeconfig-out: cannot write the file";
        return -e;
    }
    fprintf(f,
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: modelgate\n"
            "  cluster:\n"
            "    server: %s\n",
            server);
    if (ca_b64)
        fprintf(f, "    certificate-authority-data: %s\n", ca_b64);
    free(ca_b64);
    fprintf(f,
            "users:\n"
            "- name: modelgate\n");
    if (srv->token)
        fprintf(f, "  user:\n    token: \"%s\"\n", srv->token);
    else
        fprintf(f, "  user: {}\n");
    fprintf(f,
            "contexts:\n"
            "- name: modelgate\n"
            "  context:\n"
            "    cluster: modelgate\n"
            "    user: modelgate\n"
            "    namespace: default\n"
            "current-context: modelgate\n");
    int bad = ferror(f);
    if (fclose(f) == EOF || bad) {
        unlink(tmp);
        *err = "--kubeconfig-out: cannot write the file";
        return -EIO;
    }
    if (rename(tmp, path) == -1) {
        unlink(tmp);
        *err = "--kubeconfig-out: cannot rename the file into place";
        return -errno;
    }
    return 0;
}

static int load_crd_cb(json_t *obj, void *data)
{
    struct as_server *srv = data;
    struct as_causes c;
    as_causes_init(&c);
    const char *name = as_meta_str(obj, "name");
    /* A CRD stored by an earlier run is served again; one the registry no
     * longer accepts is logged and left stored (its objects stay). */
    if (as_registry_check_crd(srv->reg, obj, &c) < 0 || as_registry_add_crd(srv->reg, obj) < 0)
        mg_log(MG_LOG_WARN, "a stored CustomResourceDefinition cannot be served", "name",
               MG_S(name));
    as_causes_free(&c);
    return 0;
}

static int ensure_namespace(struct as_server *srv, const char *name)
{
    const struct as_resource *res = as_registry_find(srv->reg, "", "v1", "namespaces");
    if (!res)
        return -ENOENT;
    json_t *ex = NULL;
    if (as_store_get(srv->store, "/namespaces", "", name, &ex) == 0) {
        json_decref(ex);
        return 0;
    }
    struct as_wctx c;
    as_wctx_init(&c, srv, res, NULL, NULL, NULL);
    json_t *body = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace",
                             "metadata", "name", name);
    json_t *out = NULL;
    int rc = as_obj_create(&c, body, &out);
    if (rc < 0)
        mg_log(MG_LOG_ERROR, "cannot create a namespace", "name", MG_S(name), "error",
               MG_S(c.err.msg));
    json_decref(body);
    if (out)
        json_decref(out);
    as_wctx_free(&c);
    return rc < 0 ? -EIO : 0;
}

const struct as_resource *as_resource_of(struct as_server *srv, json_t *obj)
{
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (!av || !kind)
        return NULL;
    return as_registry_find_kind(srv->reg, av, kind);
}

/* The responses lib/httpd sends on its own (a malformed head, 408, 413,
 * 431, 503 at the connection limit) as Status objects, like every other
 * error here: clients decode them as they decode ours. */
static const char *http_error_status(void *data, int status, const char *reason,
                                     struct mg_buf *body, struct mg_buf *headers)
{
    struct as_err e;
    memset(&e, 0, sizeof e);
    e.code = status;
    e.reason = status == 408 ? "Timeout"
               : status == 413 ? "RequestEntityTooLarge"
               : status == 503 ? "ServiceUnavailable"
                               : "BadRequest";
    snprintf(e.msg, sizeof e.msg, "%s", reason);
    json_t *st = as_status_json(&e);
    int rc = st ? mg_json_dump(st, body, 0) : -ENOMEM;
    json_decref(st);
    return rc == 0 ? "application/json" : NULL;
}

int as_server_start(struct as_server *srv, const struct as_opts *opts, const char **err)
{
    int rc;
    srv->opts = *opts;
    if (opts->token_file && (rc = read_token(opts->token_file, &srv->token, err)) < 0) {
        snprintf(srv->errbuf, sizeof srv->errbuf, "%s (%s)%s%s", *err, opts->token_file,
                 rc != -EINVAL && rc != -EFBIG ? ": " : "",
                 rc != -EINVAL && rc != -EFBIG ? strerror(-rc) : "");
        *err = srv->errbuf;
        return rc;
    }
    /* --data names a directory to use: created when missing (its parent
     * must exist). */
    if (mkdir(opts->data_dir, 0700) == -1 && errno != EEXIST) {
        rc = -errno;
        snprintf(srv->errbuf, sizeof srv->errbuf, "--data %s: cannot create the directory: %s",
                 opts->data_dir, strerror(-rc));
        *err = srv->errbuf;
        return rc;
    }
    if ((rc = as_store_open(opts->data_dir, opts->watch_history, &srv->store, err)) < 0)
        return rc;
    if (opts->fsync && (rc = as_store_set_sync(srv->store, 1)) < 0) {
        *err = "--fsync: cannot switch the database to synchronous=FULL";
        return rc;
    }
    if ((rc = as_registry_new(&srv->reg)) < 0) {
        *err = "cannot set up the registry of served types";
        return rc;
    }
    uint64_t rv;
    char *next = NULL;
    rc = as_store_list(srv->store, "apiextensions.k8s.io/customresourcedefinitions", NULL, NULL, 0,
                       load_crd_cb, srv, &rv, &next);
    free(next);
    if (rc < 0) {
        *err = "cannot read the stored CustomResourceDefinitions";
        return rc;
    }
    static const char *const system_ns[] = {"default", "kube-system", "kube-public",
                                            "kube-node-lease", NULL};
    for (unsigned i = 0; system_ns[i]; i++)
        if ((rc = ensure_namespace(srv, system_ns[i])) < 0) {
            *err = "cannot create the system namespaces";
            return rc;
        }
    /* ClusterIPs are for show (nothing routes them), but two services
     * should not share one across restarts: start the sequence anywhere. */
    if (getrandom(&srv->service_ip_seq, sizeof srv->service_ip_seq, 0) != sizeof srv->service_ip_seq)
        srv->service_ip_seq = (uint64_t)time(NULL);
    srv->service_ip_seq &= 0xffff;
    if ((rc = as_gc_new(srv)) < 0) {
        *err = "cannot start the garbage collector";
        return rc;
    }
    if (opts->simulate_workloads && (rc = as_workload_new(srv)) < 0) {
        *err = "cannot start the workload simulation";
        return rc;
    }
    struct mg_httpd_config cfg;
    mg_httpd_config_default(&cfg);
    cfg.listen = opts->listen;
    cfg.on_request = on_request;
    cfg.error_body = http_error_status;
    cfg.data = srv;
    cfg.max_output = AS_MAX_OUTPUT;
    cfg.reuseport = 0;
    /* Watches stay open for long: only output progress is timed. */
    cfg.limits.max_head = 64 << 10;
    if (opts->tls_cert || opts->tls_key) {
        if (!opts->tls_cert || !opts->tls_key) {
            *err = "--tls-cert and --tls-key go together";
            return -EINVAL;
        }
        const char *terr = NULL;
        if ((rc = mg_tls_server_factory_new(opts->tls_cert, opts->tls_key, NULL, &srv->tls,
                                            &terr)) < 0) {
            snprintf(srv->errbuf, sizeof srv->errbuf, "--tls-cert/--tls-key: %s",
                     terr ? terr : strerror(-rc));
            *err = srv->errbuf;
            return rc;
        }
        cfg.xprt = srv->tls;
    }
    if (!srv->token) {
        srv->loopback.wrap = loopback_wrap;
        srv->loopback.ctx = srv->tls;
        cfg.xprt = &srv->loopback;
    }
    if ((rc = mg_httpd_new(srv->loop, &cfg, &srv->httpd, err)) < 0) {
        snprintf(srv->errbuf, sizeof srv->errbuf, "--listen %s: %s", opts->listen,
                 *err ? *err : strerror(-rc));
        *err = srv->errbuf;
        return rc;
    }
    int port = mg_httpd_port(srv->httpd);
    if (opts->kubeconfig_out && (rc = write_kubeconfig(srv, opts->kubeconfig_out, port, err)) < 0) {
        snprintf(srv->errbuf, sizeof srv->errbuf, "%s (%s): %s", *err, opts->kubeconfig_out,
                 strerror(-rc));
        *err = srv->errbuf;
        return rc;
    }
    if (!srv->token)
        mg_log(MG_LOG_INFO, "no --token-file: requests are not authenticated, so only loopback "
                            "peers are accepted");
    mg_log(MG_LOG_INFO, "listening", "listen", MG_S(opts->listen), "port", MG_I(port), "tls",
           MG_B(srv->tls != NULL), "data",
           MG_S(opts->data_dir), "resourceVersion", MG_U(as_store_rv(srv->store)),
           "simulate_workloads", MG_B(opts->simulate_workloads), "fsync", MG_B(opts->fsync));
    return 0;
}

void as_server_stop(struct as_server *srv)
{
    if (srv->httpd)
        mg_httpd_free(srv->httpd);
    srv->httpd = NULL;
    mg_tls_factory_free(srv->tls);   /* after the connections that use it */
    srv->tls = NULL;
    as_workload_free(srv);
    as_gc_free(srv);
    if (srv->reg)
        as_registry_free(srv->reg);
    srv->reg = NULL;
    if (srv->store)
        as_store_close(srv->store);
    srv->store = NULL;
    free(srv->token);
    srv->token = NULL;
}

int as_server_port(const struct as_server *srv)
{
    return srv->httpd ? mg_httpd_port(srv->httpd) : -1;
}
