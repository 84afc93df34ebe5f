/* Garbage collection, finalizers and namespace deletion: the work that
 * kube-controller-manager's garbage collector and namespace controller do
 * in a cluster, done here from the loop after deletions.
 *
 * A pass reads every stored object's metadata, then:
 *  - deletes dependents whose owners are all gone (propagation Background)
 *    or are being deleted in the foreground, and drops ownerReferences to
 *    owners that are gone when other owners remain;
 *  - removes the foregroundDeletion finalizer of an owner once it has no
 *    dependents left (which completes its deletion);
 *  - empties Terminating namespaces, then deletes them.
 * A pass that changed something runs again at once (cascades); one that
 * left work waiting on other finalizers polls every second. Every change
 * goes through objects.c, so watchers see each step. A restart runs a pass
 * at once: a cascade cut by kill -9 completes. */
#include "apiserver/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

#define AS_GC_POLL_MS 1000

struct as_gc {
    struct as_server *srv;
    struct mg_timer t;
    uint64_t last_pass_ms;   /* how long the last pass took */
};

/* One stored object, as a pass sees it. */
struct gc_obj {
    char *gr, *ns, *name, *uid;
    json_t *obj;          /* the stored object (a reference) */
    int deleting;         /* deletionTimestamp set */
    int foreground;       /* ... with the foregroundDeletion finalizer */
    int gone;             /* deleted during this pass */
};

struct gc_pass {
    struct as_server *srv;
    struct gc_obj *v;
    size_t n, cap;
    json_t *by_uid;       /* uid -> index (integer) */
    const char *cur_gr;
    int err;
};

static void pass_free(struct gc_pass *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].gr);
        free(p->v[i].ns);
        free(p->v[i].name);
        free(p->v[i].uid);
        json_decref(p->v[i].obj);
    }
    free(p->v);
    if (p->by_uid)
        json_decref(p->by_uid);
    memset(p, 0, sizeof *p);
}

static int has_string(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && !strcmp(json_string_value(v), s))
            return 1;
    }
    return 0;
}

static int collect_cb(json_t *obj, void *data)
{
    struct gc_pass *p = data;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 256;
        struct gc_obj *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) {
            p->err = -ENOMEM;
            return -1;
        }
        p->v = nv;
        p->cap = nc;
    }
    json_t *meta = json_object_get(obj, "metadata");
    struct gc_obj *o = &p->v[p->n];
    memset(o, 0, sizeof *o);
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *uid = json_string_value(json_object_get(meta, "uid"));
    o->gr = strdup(p->cur_gr);
    o->ns = strdup(ns ? ns : "");
    o->name = strdup(name ? name : "");
    o->uid = strdup(uid ? uid : "");
    if (!o->gr || !o->ns || !o->name || !o->uid) {
        free(o->gr);
        free(o->ns);
        free(o->name);
        free(o->uid);
        p->err = -ENOMEM;
        return -1;
    }
    o->obj = json_incref(obj);
    o->deleting = json_object_get(meta, "deletionTimestamp") != NULL;
    o->foreground = o->deleting && has_string(json_object_get(meta, "finalizers"), "foregroundDeletion");
    if (uid && *uid)
        json_object_set_new(p->by_uid, uid, json_integer((json_int_t)p->n));
    p->n++;
    return 0;
}

static void collect_gr(const char *gr, void *data)
{
    struct gc_pass *p = data;
    if (p->err)
        return;
    p->cur_gr = gr;
    uint64_t rv;
    char *next = NULL;
    int rc = as_store_list(p->srv->store, gr, NULL, NULL, 0, collect_cb, p, &rv, &next);
    free(next);
    if (rc < 0 && !p->err)
        p->err = rc;
}

static int pass_load(struct as_server *srv, struct gc_pass *p)
{
    memset(p, 0, sizeof *p);
    p->srv = srv;
    p->by_uid = json_object();
    if (!p->by_uid)
        return -ENOMEM;
    int rc = as_store_each_gr(srv->store, collect_gr, p);
    if (rc < 0)
        return rc;
    return p->err;
}

static struct gc_obj *by_uid(struct gc_pass *p, const char *uid)
{
    json_t *i = json_object_get(p->by_uid, uid);
    if (!i)
        return NULL;
    struct gc_obj *o = &p->v[json_integer_value(i)];
    return o->gone ? NULL : o;
}

/* Deletes one object through the normal delete path (finalizers
 * honoured). Returns 1 when something changed. */
static int gc_delete(struct as_server *srv, struct gc_obj *o, const char *policy)
{
    const struct as_resource *res = as_resource_of(srv, o->obj);
    if (!res) {
        /* Its type is no longer served: remove the row itself. */
        int rc = as_store_delete(srv->store, o->gr, o->ns, o->name, 0, NULL);
        o->gone = rc == 0;
        return rc == 0;
    }
    struct as_wctx c;
    as_wctx_init(&c, srv, res, o->ns, o->name, NULL);
    json_t *out = NULL;
    int rc = as_obj_delete(&c, NULL, policy, &out);
    if (rc < 0) {
        if (c.err.code != 404)
            mg_log(MG_LOG_WARN, "garbage collector: cannot delete", "resource", MG_S(o->gr),
                   "namespace", MG_S(o->ns), "name", MG_S(o->name), "error", MG_S(c.err.msg));
    } else {
        /* A Status means it is gone; an object means it waits on
         * finalizers. */
        const char *kind = json_string_value(json_object_get(out, "kind"));
        if (kind && !strcmp(kind, "Status"))
            o->gone = 1;
        else
            o->deleting = 1;
        json_decref(out);
    }
    as_wctx_free(&c);
    return rc == 0;
}

/* Writes obj (a modified copy of o's object) back through the update
 * path. */
static int gc_update(struct as_server *srv, struct gc_obj *o, json_t *obj)
{
    const struct as_resource *res = as_resource_of(srv, obj);
    if (!res)
        return 0;
    struct as_wctx c;
    as_wctx_init(&c, srv, res, o->ns, o->name, NULL);
    c.fv = AS_FV_IGNORE;
    json_t *out = NULL;
    int rc = as_obj_update(&c, obj, &out);
    if (rc < 0)
        mg_log(MG_LOG_WARN, "garbage collector: cannot update", "resource", MG_S(o->gr),
               "namespace", MG_S(o->ns), "name", MG_S(o->name), "error", MG_S(c.err.msg));
    else
        json_decref(out);
    as_wctx_free(&c);
    return rc == 0;
}

/* One pass. Returns 1 when it changed something, 0 when idle, 2 when work
 * waits on others (poll). */
static int gc_pass(struct as_server *srv)
{
    struct gc_pass p;
    int changed = 0, waiting = 0;
    int rc = pass_load(srv, &p);
    if (rc < 0) {
        mg_log(MG_LOG_ERROR, "garbage collector: cannot read the objects", "error", MG_ERRNO(rc));
        pass_free(&p);
        return 2;
    }

    /* Dependents of owners that are gone or going in the foreground. */
    for (size_t i = 0; i < p.n; i++) {
        struct gc_obj *o = &p.v[i];
        json_t *refs = json_object_get(json_object_get(o->obj, "metadata"), "ownerReferences");
        size_t nref = json_array_size(refs);
        if (nref == 0 || o->gone)
            continue;
        size_t dangling = 0, fg = 0;
        for (size_t j = 0; j < nref; j++) {
            const char *uid = json_string_value(json_object_get(json_array_get(refs, j), "uid"));
            struct gc_obj *owner = uid ? by_uid(&p, uid) : NULL;
            if (!owner)
                dangling++;
            else if (owner->foreground)
                fg++;
        }
        if (dangling + fg == nref) {
            if (!o->deleting)
                changed |= gc_delete(srv, o, "Background");
            else
                waiting = 1;
        } else if (dangling > 0) {
            json_t *copy = json_deep_copy(o->obj);
            json_t *nrefs = json_array();
            for (size_t j = 0; j < nref; j++) {
                json_t *ref = json_array_get(refs, j);
                const char *uid = json_string_value(json_object_get(ref, "uid"));
                if (uid && by_uid(&p, uid))
                    json_array_append(nrefs, ref);
            }
            json_object_set_new(as_meta(copy), "ownerReferences", nrefs);
            changed |= gc_update(srv, o, copy);
            json_decref(copy);
        }
    }

    /* Owners deleted in the foreground: done once no dependent is left. */
    for (size_t i = 0; i < p.n; i++) {
        struct gc_obj *o = &p.v[i];
        if (!o->foreground || o->gone)
            continue;
        int deps = 0;
        for (size_t j = 0; j < p.n && !deps; j++) {
            if (p.v[j].gone)
                continue;
            json_t *refs = json_object_get(json_object_get(p.v[j].obj, "metadata"), "ownerReferences");
            size_t k;
            json_t *ref;
            json_array_foreach(refs, k, ref) {
                const char *uid = json_string_value(json_object_get(ref, "uid"));
                if (uid && !strcmp(uid, o->uid))
                    deps = 1;
            }
        }
        if (deps) {
            waiting = 1;
            continue;
        }
        json_t *copy = json_deep_copy(o->obj);
        json_t *fins = json_object_get(as_meta(copy), "finalizers");
        json_t *nf = json_array();
        size_t k;
        json_t *f;
        json_array_foreach(fins, k, f) {
            if (!json_is_string(f) || strcmp(json_string_value(f), "foregroundDeletion"))
                json_array_append(nf, f);
        }
        json_object_set_new(as_meta(copy), "finalizers", nf);
        changed |= gc_update(srv, o, copy);
        json_decref(copy);
    }

    /* Terminating namespaces: their content first, then themselves. */
    for (size_t i = 0; i < p.n; i++) {
        struct gc_obj *ns = &p.v[i];
        if (strcmp(ns->gr, "/namespaces") || !ns->deleting || ns->gone)
            continue;
        for (size_t j = 0; j < p.n; j++) {
            struct gc_obj *o = &p.v[j];
            if (o->gone || !*o->ns || strcmp(o->ns, ns->name))
                continue;
            if (!o->deleting)
                changed |= gc_delete(srv, o, "Background");
        }
        int still = 0;
        for (size_t j = 0; j < p.n; j++)
            if (!p.v[j].gone && *p.v[j].ns && !strcmp(p.v[j].ns, ns->name))
                still = 1;
        if (still) {
            waiting = 1;
            continue;
        }
        int drc = as_store_delete(srv->store, "/namespaces", "", ns->name, as_obj_rv(ns->obj), NULL);
        if (drc == 0) {
            ns->gone = 1;
            changed = 1;
        } else if (drc != -ENOENT) {
            mg_log(MG_LOG_WARN, "garbage collector: cannot remove a namespace", "name",
                   MG_S(ns->name), "error", MG_ERRNO(drc));
            waiting = 1;
        }
    }
    pass_free(&p);
    return changed ? 1 : waiting ? 2 : 0;
}

static void gc_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct as_gc *gc = t->data;
    uint64_t t0 = mg_now_ns();
    int r = gc_pass(gc->srv);
    gc->last_pass_ms = (mg_now_ns() - t0) / 1000000;
    mg_loop_update_time(loop);
    if (r == 1)
        mg_timer_start(loop, &gc->t, 0);
    else if (r == 2)
        mg_timer_start(loop, &gc->t, AS_GC_POLL_MS);
}

int as_gc_new(struct as_server *srv)
{
    struct as_gc *gc = calloc(1, sizeof *gc);
    if (!gc)
        return -ENOMEM;
    gc->srv = srv;
    mg_timer_init(&gc->t, gc_timer_cb, gc);
    srv->gc = gc;
    /* A cascade that a crash cut short completes now. */
    return mg_timer_start(srv->loop, &gc->t, 0);
}

void as_gc_free(struct as_server *srv)
{
    if (!srv->gc)
        return;
    mg_timer_stop(srv->loop, &srv->gc->t);
    free(srv->gc);
    srv->gc = NULL;
}

void as_gc_kick(struct as_server *srv)
{
    if (!srv->gc)
        return;
    /* Soon, not now: the reply to the deleting request goes out first, and
     * a burst of deletions shares one pass. A pass reads every object, so
     * passes are spaced by twice the last one's duration: a stream of
     * deletions over a large store leaves the loop at least two thirds of
     * its time for requests. */
    uint64_t delay = srv->gc->last_pass_ms * 2;
    if (delay < 10)
        delay = 10;
    if (!mg_timer_armed(&srv->gc->t) || srv->gc->t.when > mg_loop_now(srv->loop) + delay)
        mg_timer_start(srv->loop, &srv->gc->t, delay);
}

struct orphan_ctx {
    struct as_server *srv;
    const char *uid;
    json_t *todo;     /* objects to rewrite */
};

static int orphan_cb(json_t *obj, void *data)
{
    struct orphan_ctx *oc = data;
    json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
    size_t i;
    json_t *ref;
    json_array_foreach(refs, i, ref) {
        const char *uid = json_string_value(json_object_get(ref, "uid"));
        if (uid && !strcmp(uid, oc->uid)) {
            json_array_append(oc->todo, obj);
            break;
        }
    }
    return 0;
}

static void orphan_gr(const char *gr, void *data)
{
    struct orphan_ctx *oc = data;
    uint64_t rv;
    char *next = NULL;
    as_store_list(oc->srv->store, gr, NULL, NULL, 0, orphan_cb, oc, &rv, &next);
    free(next);
}

int as_gc_orphan(struct as_server *srv, const char *uid)
{
    struct orphan_ctx oc = {.srv = srv, .uid = uid, .todo = json_array()};
    if (!oc.todo)
        return -ENOMEM;
    int rc = as_store_each_gr(srv->store, orphan_gr, &oc);
    size_t i;
    json_t *obj;
    json_array_foreach(oc.todo, i, obj) {
        json_t *copy = json_deep_copy(obj);
        json_t *meta = as_meta(copy);
        json_t *refs = json_object_get(meta, "ownerReferences");
        json_t *nrefs = json_array();
        size_t k;
        json_t *ref;
        json_array_foreach(refs, k, ref) {
            const char *u = json_string_value(json_object_get(ref, "uid"));
            if (!u || strcmp(u, uid))
                json_array_append(nrefs, ref);
        }
        if (json_array_size(nrefs))
            json_object_set_new(meta, "ownerReferences", nrefs);
        else {
            json_decref(nrefs);
            json_object_del(meta, "ownerReferences");
        }
        struct gc_obj o = {0};
        const char *ns = json_string_value(json_object_get(meta, "namespace"));
        o.ns = (char *)(ns ? ns : "");
        o.name = (char *)json_string_value(json_object_get(meta, "name"));
        o.gr = (char *)"";
        if (o.name)
            gc_update(srv, &o, copy);
        json_decref(copy);
    }
    json_decref(oc.todo);
    return rc;
}
