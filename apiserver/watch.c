/* Watches: one chunked response per watch, one JSON event per line, each
 * written (and so flushed: TCP_NODELAY) the moment the store commits the
 * write. The store delivers events synchronously, so a watcher that
 * cannot keep up would make the server buffer without bound: past a cap of
 * queued bytes the watch is cut (the client relists, as client-go does
 * after any broken watch). Bookmarks and timeoutSeconds run on loop
 * timers. */
#include "apiserver/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"

/* Bytes a watcher may have queued past the server's high-water mark. */
#define AS_WATCH_BACKLOG_MAX ((size_t)8 << 20)

struct as_watcher {
    struct as_server *srv;
    struct mg_httpd_req *req;
    struct as_watch *sw;          /* the store's watch; NULL once stopped */
    char *group, *version, *resource, *gr, *ns, *name;
    struct as_selector *lsel, *fsel;
    int table, include_object, bookmarks;
    int columns_sent;             /* Table events: definitions go in the first */
    int replaying;                /* inside as_store_watch (see store_cb) */
    int initial;                  /* sending the current state as ADDED */
    int dead;                     /* cut: ignore further events */
    int congested;
    size_t backlog;
    /* With a selector: the keys ("ns/name") of objects the client was last
     * told match, so an object that stops matching is sent as DELETED and
     * one that starts matching as ADDED, as kube-apiserver does. */
    json_t *matching;
    struct mg_timer timeout_t, bookmark_t;
    struct as_watcher *next, *prev;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static const struct as_resource *watcher_res(struct as_watcher *w)
{
    /* Looked up per event: a CRD update may re-create the type. */
    return as_registry_find(w->srv->reg, w->group, w->version, w->resource);
}

static void stop_store_watch(struct as_watcher *w)
{
    if (w->sw)
        as_store_unwatch(w->srv->store, w->sw);
    w->sw = NULL;
}

/* Cuts a watch that failed or fell behind; on_end cleans up. */
static void cut(struct as_watcher *w, const char *why)
{
    if (w->dead)
        return;
    w->dead = 1;
    mg_log(MG_LOG_WARN, "watch cut", "resource", MG_S(w->gr), "reason", MG_S(why));
    mg_timer_stop(w->srv->loop, &w->timeout_t);
    mg_timer_stop(w->srv->loop, &w->bookmark_t);
    mg_httpd_abort(w->req);
}

static int write_line(struct as_watcher *w, json_t *ev)
{
    char *s = json_dumps(ev, JSON_COMPACT);
    if (!s) {
        cut(w, "out of memory");
        return -1;
    }
    size_t n = strlen(s);
    /* The newline goes with the event: one write, one chunk. */
    char *line = realloc(s, n + 2);
    if (!line) {
        free(s);
        cut(w, "out of memory");
        return -1;
    }
    line[n] = '\n';
    line[n + 1] = 0;
    int rc = mg_httpd_write(w->req, line, n + 1);
    free(line);
    if (rc < 0) {
        cut(w, rc == -ENOBUFS ? "too much output queued" : "write failed");
        return -1;
    }
    if (rc == 1)
        w->congested = 1;
    /* The initial state and the replay of the history go out in one loop
     * pass, so the client cannot have read any of it yet: they are bounded
     * by the collection and the history (like a list reply), not by the
     * backlog cap, which is for live events. */
    if (w->congested && !w->initial && !w->replaying) {
        w->backlog += n + 1;
        if (w->backlog > AS_WATCH_BACKLOG_MAX) {
            cut(w, "the client does not read fast enough");
            return -1;
        }
    }
    return 0;
}

static int emit(struct as_watcher *w, const char *type, json_t *obj)
{
    const struct as_resource *res = watcher_res(w);
    if (!res) {
        cut(w, "the resource is no longer served");
        return -1;
    }
    json_t *o;
    if (w->table) {
        const char *rv = as_meta_str(obj, "resourceVersion");
        o = as_table_new(res, rv ? rv : "", !w->columns_sent);
        w->columns_sent = 1;
        if (o)
            json_array_append_new(json_object_get(o, "rows"),
                                  as_table_row(w->srv, res, obj, w->include_object, (int64_t)time(NULL)));
    } else {
        o = as_present(res, obj);
    }
    json_t *ev = json_pack("{s:s, s:o}", "type", type, "object", o);
    if (!ev) {
        cut(w, "out of memory");
        return -1;
    }
    int rc = write_line(w, ev);
    json_decref(ev);
    return rc;
}

static int selected(struct as_watcher *w, const char *name, json_t *obj)
{
    if (w->name && (!name || strcmp(name, w->name)))
        return 0;
    if (w->lsel && !as_selector_match(w->lsel, obj))
        return 0;
    if (w->fsel && !as_selector_match(w->fsel, obj))
        return 0;
    return 1;
}

static void key_of(const char *ns, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", ns ? ns : "", name ? name : "");
}

/* The event type the client gets, or NULL to skip it. */
static const char *event_type(struct as_watcher *w, const struct as_event *ev)
{
    int m = selected(w, ev->name, ev->obj);
    if (!w->matching) {
        if (!m)
            return NULL;
        return ev->type == AS_ADDED ? "ADDED" : ev->type == AS_MODIFIED ? "MODIFIED" : "DELETED";
    }
    char key[600];
    key_of(ev->ns, ev->name, key, sizeof key);
    int was = json_object_get(w->matching, key) != NULL;
    switch (ev->type) {
    case AS_ADDED:
        if (!m)
            return NULL;
        json_object_set_new(w->matching, key, json_true());
        return "ADDED";
    case AS_MODIFIED:
        if (m && was)
            return "MODIFIED";
        if (m) {
            json_object_set_new(w->matching, key, json_true());
            return "ADDED";
        }
        if (was) {
            json_object_del(w->matching, key);
            return "DELETED";
        }
        return NULL;
    default:
        if (!m && !was)
            return NULL;
        json_object_del(w->matching, key);
        return "DELETED";
    }
}

static int store_cb(const struct as_event *ev, void *data)
{
    struct as_watcher *w = data;
    if (w->dead)
        return w->replaying ? 0 : (w->sw = NULL, 1);
    const char *type = event_type(w, ev);
    if (!type)
        return 0;
    if (emit(w, type, ev->obj) < 0) {
        /* During the replay inside as_store_watch the watch is not ours
         * to stop yet: it is stopped once that call returns. */
        if (w->replaying)
            return 0;
        w->sw = NULL;
        return 1;
    }
    return 0;
}

static void remember(struct as_watcher *w, json_t *obj)
{
    if (!w->matching)
        return;
    char key[600];
    key_of(as_meta_str(obj, "namespace"), as_meta_str(obj, "name"), key, sizeof key);
    json_object_set_new(w->matching, key, json_true());
}

static int initial_cb(json_t *obj, void *data)
{
    struct as_watcher *w = data;
    if (w->dead)
        return -1;
    if (!selected(w, as_meta_str(obj, "name"), obj))
        return 1;
    remember(w, obj);
    return emit(w, "ADDED", obj) < 0 ? -1 : 0;
}

/* A watch resumed from a resourceVersion: what matches now is what the
 * client is taken to know (the closest the store's events allow). */
static int seed_cb(json_t *obj, void *data)
{
    struct as_watcher *w = data;
    if (selected(w, as_meta_str(obj, "name"), obj))
        remember(w, obj);
    return 1;
}

static void on_writable(struct mg_httpd_req *req)
{
    struct as_watcher *w = mg_httpd_req_data(req);
    if (w) {
        w->congested = 0;
        w->backlog = 0;
    }
}

static void watcher_free(struct as_watcher *w)
{
    stop_store_watch(w);
    mg_timer_stop(w->srv->loop, &w->timeout_t);
    mg_timer_stop(w->srv->loop, &w->bookmark_t);
    if (w->prev)
        w->prev->next = w->next;
    else if (w->srv->watchers == w)
        w->srv->watchers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    as_selector_free(w->lsel);
    as_selector_free(w->fsel);
    if (w->matching)
        json_decref(w->matching);
    free(w->group);
    free(w->version);
    free(w->resource);
    free(w->gr);
    free(w->ns);
    free(w->name);
    free(w);
}

static void on_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    struct as_watcher *w = mg_httpd_req_data(req);
    mg_httpd_req_set_data(req, NULL);
    if (w)
        watcher_free(w);
}

/* Ends the stream cleanly (timeoutSeconds, the type went away). */
static void finish(struct as_watcher *w)
{
    if (w->dead)
        return;
    w->dead = 1;
    stop_store_watch(w);
    mg_timer_stop(w->srv->loop, &w->timeout_t);
    mg_timer_stop(w->srv->loop, &w->bookmark_t);
    if (mg_httpd_end(w->req) < 0)
        mg_httpd_abort(w->req);
}

static void timeout_cb(struct mg_loop *loop, struct mg_timer *t)
{
    finish(t->data);
}

static void bookmark_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct as_watcher *w = t->data;
    if (w->dead)
        return;
    const struct as_resource *res = watcher_res(w);
    if (!res) {
        finish(w);
        return;
    }
    char av[256], rv[32];
    as_api_version(res, av, sizeof av);
    snprintf(rv, sizeof rv, "%llu", (unsigned long long)as_store_rv(w->srv->store));
    json_t *ev = json_pack("{s:s, s:{s:s, s:s, s:{s:s}}}", "type", "BOOKMARK", "object", "kind",
                           res->kind, "apiVersion", av, "metadata", "resourceVersion", rv);
    if (ev) {
        int rc = write_line(w, ev);
        json_decref(ev);
        if (rc < 0)
            return;
    }
    mg_timer_start(loop, t, w->srv->opts.bookmark_interval_ms);
}

static int write_expired(struct as_watcher *w, uint64_t rv)
{
    char msg[128];
    snprintf(msg, sizeof msg, "too old resource version: %llu (%llu)", (unsigned long long)rv,
             (unsigned long long)as_store_rv(w->srv->store));
    json_t *ev = json_pack("{s:s, s:{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}}", "type", "ERROR",
                           "object", "kind", "Status", "apiVersion", "v1", "metadata", "status",
                           "Failure", "message", msg, "reason", "Expired", "code", 410);
    if (!ev)
        return -ENOMEM;
    int rc = write_line(w, ev);
    json_decref(ev);
    return rc;
}

int as_watch_start(struct as_server *srv, struct mg_httpd_req *req, struct as_watch_params *p)
{
    struct as_watcher *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->srv = srv;
    w->req = req;
    w->group = strdup(p->res->group);
    w->version = strdup(p->res->version);
    w->resource = strdup(p->res->resource);
    w->gr = strdup(p->res->gr);
    w->ns = dup_or_null(p->ns);
    w->name = dup_or_null(p->name);
    if (!w->group || !w->version || !w->resource || !w->gr || (p->ns && !w->ns) ||
        (p->name && !w->name)) {
        free(w->group);
        free(w->version);
        free(w->resource);
        free(w->gr);
        free(w->ns);
        free(w->name);
        free(w);
        return -ENOMEM;
    }
    w->table = p->table;
    w->include_object = p->include_object;
    w->bookmarks = p->bookmarks;
    mg_timer_init(&w->timeout_t, timeout_cb, w);
    mg_timer_init(&w->bookmark_t, bookmark_cb, w);
    struct mg_h1_header h[] = {MG_HTTPD_HDR("Content-Type", "application/json"),
                               MG_HTTPD_HDR("Cache-Control", "no-cache, private")};
    int rc = mg_httpd_start(req, 200, h, 2, -1);
    if (rc < 0) {
        /* Selectors stay the caller's on failure. */
        free(w->group);
        free(w->version);
        free(w->resource);
        free(w->gr);
        free(w->ns);
        free(w->name);
        free(w);
        return rc;
    }
    /* From here the watch owns the request and the selectors. */
    w->lsel = p->lsel;
    w->fsel = p->fsel;
    p->lsel = p->fsel = NULL;
    mg_httpd_req_set_data(req, w);
    mg_httpd_on_end(req, on_end);
    mg_httpd_on_writable(req, on_writable);
    w->next = srv->watchers;
    if (srv->watchers)
        srv->watchers->prev = w;
    srv->watchers = w;

    if (w->lsel || w->fsel) {
        w->matching = json_object();
        if (!w->matching) {
            cut(w, "out of memory");
            return 0;
        }
    }
    uint64_t since = 0;
    if (p->have_rv) {
        since = p->rv;
        if (w->matching) {
            uint64_t lrv = 0;
            char *next = NULL;
            rc = as_store_list(srv->store, w->gr, w->ns, NULL, 0, seed_cb, w, &lrv, &next);
            free(next);
            if (rc < 0) {
                cut(w, "cannot list the current state");
                return 0;
            }
        }
    } else {
        /* No resourceVersion: the current state as ADDED events first. */
        uint64_t lrv = 0;
        char *next = NULL;
        w->initial = 1;
        rc = as_store_list(srv->store, w->gr, w->ns, NULL, 0, initial_cb, w, &lrv, &next);
        w->initial = 0;
        free(next);
        if (w->dead)
            return 0;
        if (rc < 0) {
            cut(w, "cannot list the current state");
            return 0;
        }
    }
    w->replaying = 1;
    rc = as_store_watch(srv->store, w->gr, w->ns, since, store_cb, w, &w->sw);
    w->replaying = 0;
    if (rc == -ESTALE) {
        w->sw = NULL;
        if (write_expired(w, since) == 0)
            finish(w);
        return 0;
    }
    if (rc == -ERANGE) {
        /* A resourceVersion from the future (another server's, or a
         * restored backup's): kube-apiserver gives up with a 504 the
         * reflector knows to relist on. */
        w->sw = NULL;
        char msg[160];
        snprintf(msg, sizeof msg, "Too large resource version: %llu, current: %llu",
                 (unsigned long long)since, (unsigned long long)as_store_rv(srv->store));
        json_t *ev = json_pack("{s:s, s:{s:s, s:s, s:{}, s:s, s:s, s:s, s:{s:[{s:s, s:s}], s:i}, s:i}}",
                               "type", "ERROR", "object", "kind", "Status", "apiVersion", "v1",
                               "metadata", "status", "Failure", "message", msg, "reason", "Timeout",
                               "details", "causes", "reason", "ResourceVersionTooLarge", "message",
                               "Too large resource version", "retryAfterSeconds", 1, "code", 504);
        if (ev && write_line(w, ev) == 0)
            finish(w);
        else if (!ev)
            cut(w, "out of memory");
        json_decref(ev);
        return 0;
    }
    if (rc < 0) {
        w->sw = NULL;
        cut(w, "cannot start the store watch");
        return 0;
    }
    if (w->dead) {
        /* Cut during the replay: the store watch is still registered. */
        stop_store_watch(w);
        return 0;
    }
    uint64_t max_ms = srv->opts.watch_max_ms ? srv->opts.watch_max_ms : 1800000;
    uint64_t t_ms = p->timeout_s > 0 ? (uint64_t)p->timeout_s * 1000 : max_ms;
    mg_timer_start(srv->loop, &w->timeout_t, t_ms);
    if (w->bookmarks && srv->opts.bookmark_interval_ms)
        mg_timer_start(srv->loop, &w->bookmark_t, srv->opts.bookmark_interval_ms);
    return 0;
}

void as_watch_close_gr(struct as_server *srv, const char *gr)
{
    for (struct as_watcher *w = srv->watchers; w; w = w->next)
        if (!strcmp(w->gr, gr))
            finish(w);
}
