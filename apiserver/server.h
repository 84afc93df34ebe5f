/* modelgate-apiserver's core: the HTTP side (routing, authentication,
 * discovery, errors as Status objects), the verbs on objects (objects.c),
 * watches (watch.c), garbage collection and namespace deletion (gc.c) and
 * the workload simulation (workload.c). Everything runs on one loop thread;
 * the store, the registry and the watchers are owned by struct as_server.
 *
 * The pieces talk through this header only: objects.c does not know about
 * HTTP (gc.c and workload.c call it directly), server.c turns its results
 * and errors into responses. */
#ifndef AS_SERVER_H
#define AS_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "apiserver/patch.h"
#include "apiserver/registry.h"
#include "apiserver/select.h"
#include "apiserver/store.h"
#include "lib/httpd.h"
#include "lib/loop.h"

/* Request bodies past this are refused with 413. */
#define AS_BODY_MAX ((size_t)3 << 20)
/* The answer to GET /version: kubectl's dispatcher runs kubectl.1.<minor>. */
#define AS_KUBE_MAJOR "1"
#define AS_KUBE_MINOR "32"
#define AS_KUBE_GIT_VERSION "v1.32.0"

struct as_opts {
    const char *listen;
    const char *data_dir;
    const char *token_file;
    const char *kubeconfig_out;
    const char *tls_cert;          /* both or neither: serve https */
    const char *tls_key;
    int fsync;                     /* fsync every commit (power-loss safe) */
    int simulate_workloads;
    uint64_t simulate_delay_ms;
    unsigned watch_history;        /* events kept for watches; 0: the store's default */
    uint64_t bookmark_interval_ms; /* allowWatchBookmarks: one BOOKMARK per interval */
    uint64_t watch_max_ms;         /* a watch without timeoutSeconds ends after this */
};

struct as_watcher;
struct as_gc;
struct as_workload;

struct as_server {
    struct mg_loop *loop;
    struct mg_httpd *httpd;
    struct as_store *store;
    struct as_registry *reg;
    struct as_opts opts;
    char *token;                  /* NULL: no token file, loopback peers only */
    struct as_watcher *watchers;  /* open watches */
    struct as_gc *gc;
    struct as_workload *wl;
    uint64_t service_ip_seq;      /* the next ClusterIP handed out */
    char errbuf[1024];            /* as_server_start's message */
    struct mg_xprt_factory *tls;  /* --tls-cert/--tls-key; NULL: plain HTTP */
    struct mg_xprt_factory loopback; /* no token: loopback peers only, over tls if set */
};

/* An error for the client, turned into a Status by the HTTP side. */
struct as_err {
    int code;              /* HTTP status */
    const char *reason;    /* Status reason: "NotFound", "Invalid", ... */
    char msg[1024];
    json_t *details;       /* owned; NULL: none */
};

void as_err_clear(struct as_err *e);
/* Sets the error and returns -1 (so a caller writes "return as_errf(...)"). */
int as_errf(struct as_err *e, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A Status object (new reference) for e, or for success when e is NULL. */
json_t *as_status_json(const struct as_err *e);

/* Resource naming in messages, as Kubernetes prints them: "configmaps",
 * "deployments.apps" (qualified resource), "Deployment.apps" (qualified
 * kind). */
void as_qualified_resource(const struct as_resource *res, char *out, size_t n);
void as_qualified_kind(const struct as_resource *res, char *out, size_t n);
/* NotFound / AlreadyExists / Conflict / Invalid errors with their details. */
int as_err_not_found(struct as_err *e, const struct as_resource *res, const char *name);
int as_err_exists(struct as_err *e, const struct as_resource *res, const char *name);
int as_err_conflict(struct as_err *e, const struct as_resource *res, const char *name);
/* causes: an array of {reason, message, field} (borrowed). */
int as_err_invalid(struct as_err *e, const struct as_resource *res, const char *name,
                   json_t *causes);

/* --- utilities (util.c) --------------------------------------------------- */

/* "2026-11-23T14:21:12Z" for t (Unix seconds). buf at least 32 bytes. */
void as_rfc3339(int64_t t, char *buf, size_t n);
/* Parses an RFC 3339 time to Unix seconds; -EINVAL. */
int as_parse_rfc3339(const char *s, int64_t *out);
/* A random RFC 4122 version 4 UUID. buf at least 37 bytes. */
void as_uuid4(char *buf, size_t n);
/* Decodes %XX escapes (and '+' as space when plus is set) from s[0..n)
 * into out (NUL-terminated). -EINVAL for a bad escape or %00, -ENOBUFS. */
int as_url_decode(const char *s, size_t n, int plus, char *out, size_t outn);
/* The apiVersion of res: "v1", "apps/v1". */
void as_api_version(const struct as_resource *res, char *out, size_t n);
/* A uint64 from a decimal string; -EINVAL. */
int as_parse_u64(const char *s, uint64_t *out);

/* Dotted paths as CRDs spell them (".spec.replicas"; the leading dot is
 * optional). get: borrowed or NULL. set: creates intermediate objects;
 * steals v. */
json_t *as_json_path_get(json_t *obj, const char *path);
int as_json_path_set(json_t *obj, const char *path, json_t *v);

/* The object's metadata (created when absent or not an object). */
json_t *as_meta(json_t *obj);
const char *as_meta_str(json_t *obj, const char *key);
uint64_t as_obj_rv(json_t *obj);

/* --- protobuf request bodies (protobuf.c) -------------------------------- */

/* Decodes an application/vnd.kubernetes.protobuf body of a built-in type
 * that kubectl's generators send into the JSON object. 0; -EINVAL for a
 * malformed body (400); -ENOTSUP for a type or field not supported (415);
 * -ENOMEM. err gets a message for people. */
int as_protobuf_decode(const char *body, size_t n, json_t **out, char *err, size_t errn);

/* --- validation of built-in objects (validate.c) ------------------------- */

/* Kubernetes' name syntaxes; NULL when valid, else the message. */
const char *as_check_dns1123_subdomain(const char *s);
const char *as_check_dns1123_label(const char *s);
const char *as_check_dns1035_label(const char *s);
/* Checks the shape and syntax of obj's metadata (types: 400 via *bad_request
 * when a field has the wrong JSON type; syntax: causes for a 422). */
int as_validate_meta(const struct as_resource *res, json_t *obj, json_t *causes,
                     char *bad, size_t badn);
/* The minimal required fields of built-in kinds (causes for a 422). */
void as_validate_builtin(const struct as_resource *res, json_t *obj, json_t *causes);
/* Defaults of built-in kinds applied on create (and on update where
 * Kubernetes does). */
void as_default_builtin(struct as_server *srv, const struct as_resource *res, json_t *obj,
                        int create);
/* Unknown fields of metadata (any type) and at the top level of built-in
 * types: removed from obj (typed decoding drops them) and their paths
 * (".metadata.nmae", ".dat") appended to unknown, for fieldValidation. */
void as_unknown_fields(const struct as_resource *res, json_t *obj, json_t *unknown);
/* Adds a cause {reason, message, field} to causes. */
void as_cause_add(json_t *causes, const char *reason, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- verbs on objects (objects.c) ---------------------------------------- */

enum as_field_validation { AS_FV_IGNORE = 0, AS_FV_WARN, AS_FV_STRICT };

/* One write's context. ns/name: from the URL (ns NULL for cluster-scoped
 * types); sub: "status", "scale" or NULL. */
struct as_wctx {
    struct as_server *srv;
    const struct as_resource *res;
    const char *ns;
    const char *name;
    const char *sub;
    int dry_run;
    enum as_field_validation fv;
    json_t *warnings;      /* array of strings for Warning headers (owned) */
    struct as_err err;
};

void as_wctx_init(struct as_wctx *c, struct as_server *srv, const struct as_resource *res,
                  const char *ns, const char *name, const char *sub);
void as_wctx_free(struct as_wctx *c);

/* Each returns 0 with *out a new reference, or -1 with c->err set. */
int as_obj_get(struct as_wctx *c, json_t **out);
int as_obj_create(struct as_wctx *c, json_t *body, json_t **out);
int as_obj_update(struct as_wctx *c, json_t *body, json_t **out);
/* *created: 1 when an apply patch created the object (201). */
int as_obj_patch(struct as_wctx *c, enum as_patch_type type, json_t *patch, json_t **out,
                 int *created);
/* opts: DeleteOptions (may be NULL); policy: the query's propagationPolicy
 * (may be NULL). *out: the object (200, still there with a
 * deletionTimestamp) or a Status (deleted). */
int as_obj_delete(struct as_wctx *c, json_t *opts, const char *policy, json_t **out);
/* The Scale of an object (kind Scale, autoscaling/v1). */
int as_scale_get(struct as_wctx *c, json_t **out);
/* The object as the client sees it: apiVersion and kind of the request's
 * version (a multi-version CRD stores one). New reference. */
json_t *as_present(const struct as_resource *res, json_t *obj);

/* Removes every stored object of a CRD's resource (the CRD is going). */
void as_objects_purge_gr(struct as_server *srv, const char *gr);

/* --- watches (watch.c) --------------------------------------------------- */

struct as_watch_params {
    const struct as_resource *res;
    const char *ns;             /* NULL: all namespaces */
    const char *name;           /* /watch/.../NAME: one object */
    struct as_selector *lsel;   /* taken over */
    struct as_selector *fsel;   /* taken over */
    int have_rv;                /* resourceVersion given and not "0" */
    uint64_t rv;
    int bookmarks;
    int64_t timeout_s;          /* 0: the server's maximum */
    int table;                  /* Table events */
    int include_object;         /* Table rows: 0 none, 1 metadata, 2 object */
};

/* Starts a watch response on req (200, chunked, one event per line). 0, or
 * -errno when it could not start (the caller answers 500). */
int as_watch_start(struct as_server *srv, struct mg_httpd_req *req, struct as_watch_params *p);
/* Ends every watch of gr (its CRD went away or changed). */
void as_watch_close_gr(struct as_server *srv, const char *gr);

/* Table helpers shared by list, get and watch (server.c). */
json_t *as_table_row(struct as_server *srv, const struct as_resource *res, json_t *obj,
                     int include_object, int64_t now);
json_t *as_table_new(const struct as_resource *res, const char *rv, int with_columns);

/* --- garbage collection (gc.c) -------------------------------------------- */

int as_gc_new(struct as_server *srv);
void as_gc_free(struct as_server *srv);
/* Something was deleted or began deleting: run a pass soon. */
void as_gc_kick(struct as_server *srv);
/* Removes ownerReferences to uid from every object (propagationPolicy
 * Orphan). */
int as_gc_orphan(struct as_server *srv, const char *uid);

/* --- workload simulation (workload.c) ------------------------------------ */

int as_workload_new(struct as_server *srv);
void as_workload_free(struct as_server *srv);
/* A deployment was written: schedule its status if needed. */
void as_workload_note(struct as_server *srv, json_t *deploy);

/* --- server (server.c) ---------------------------------------------------- */

int as_server_start(struct as_server *srv, const struct as_opts *opts, const char **err);
void as_server_stop(struct as_server *srv);
/* The port the server listens on. */
int as_server_port(const struct as_server *srv);

/* Looks up a served type by the object's apiVersion and kind, or by gr. */
const struct as_resource *as_resource_of(struct as_server *srv, json_t *obj);

#endif
