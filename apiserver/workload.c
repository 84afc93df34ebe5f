/* --simulate-workloads: nothing runs pods here, so deployments would never
 * become ready. With the option, a deployment whose status does not match
 * its spec gets, after a delay, the status a healthy rollout ends with
 * (replicas, updatedReplicas, readyReplicas, availableReplicas equal to
 * spec.replicas, observedGeneration equal to generation, conditions
 * Available and Progressing), written through the status path like a
 * controller would, so watchers and kubectl see it arrive. */
#include "apiserver/server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/log.h"

/* Deployments waiting for their status at once; more are dropped with a
 * warning (and caught up on at the next write to them). */
#define AS_WL_MAX 100000

struct wl_item {
    char *ns, *name;
    uint64_t due;
    struct wl_item *next;
};

struct as_workload {
    struct as_server *srv;
    struct mg_timer t;
    struct wl_item *items;
    unsigned n;
};

static json_int_t int_at(json_t *obj, const char *path, json_int_t dflt)
{
    json_t *v = as_json_path_get(obj, path);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* The status a finished rollout of d has. */
static json_t *ready_status(json_t *d)
{
    json_int_t replicas = int_at(d, "spec.replicas", 1);
    json_int_t gen = int_at(d, "metadata.generation", 1);
    char ts[40];
    as_rfc3339((int64_t)time(NULL), ts, sizeof ts);
    json_t *st = json_pack("{s:I}", "observedGeneration", gen);
    if (replicas > 0) {
        json_object_set_new(st, "replicas", json_integer(replicas));
        json_object_set_new(st, "updatedReplicas", json_integer(replicas));
        json_object_set_new(st, "readyReplicas", json_integer(replicas));
        json_object_set_new(st, "availableReplicas", json_integer(replicas));
    }
    const char *name = as_meta_str(d, "name");
    char msg[400];
    snprintf(msg, sizeof msg, "ReplicaSet \"%s\" has successfully progressed.", name ? name : "");
    json_object_set_new(
        st, "conditions",
        json_pack("[{s:s, s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s, s:s}]", "type",
                  "Available", "status", "True", "lastUpdateTime", ts, "lastTransitionTime", ts,
                  "reason", "MinimumReplicasAvailable", "message",
                  "Deployment has minimum availability.", "type", "Progressing", "status", "True",
                  "lastUpdateTime", ts, "lastTransitionTime", ts, "reason",
                  "NewReplicaSetAvailable", "message", msg));
    return st;
}

static int is_ready(json_t *d)
{
    json_int_t replicas = int_at(d, "spec.replicas", 1);
    return int_at(d, "metadata.generation", 1) == int_at(d, "status.observedGeneration", -1) &&
           int_at(d, "status.readyReplicas", 0) == replicas &&
           int_at(d, "status.availableReplicas", 0) == replicas &&
           int_at(d, "status.updatedReplicas", 0) == replicas &&
           int_at(d, "status.replicas", 0) == replicas;
}

static void arm(struct as_workload *wl)
{
    uint64_t now = mg_loop_now(wl->srv->loop), first = UINT64_MAX;
    for (struct wl_item *it = wl->items; it; it = it->next)
        if (it->due < first)
            first = it->due;
    if (first == UINT64_MAX)
        mg_timer_stop(wl->srv->loop, &wl->t);
    else
        mg_timer_start(wl->srv->loop, &wl->t, first > now ? first - now : 0);
}

static void complete(struct as_workload *wl, const char *ns, const char *name)
{
    struct as_server *srv = wl->srv;
    const struct as_resource *res = as_registry_find(srv->reg, "apps", "v1", "deployments");
    if (!res)
        return;
    struct as_wctx c;
    as_wctx_init(&c, srv, res, ns, name, "status");
    json_t *d = NULL, *out = NULL;
    if (as_obj_get(&c, &d) < 0)
        goto out;   /* deleted meanwhile */
    if (is_ready(d) || as_meta_str(d, "deletionTimestamp"))
        goto out;
    json_object_set_new(d, "status", ready_status(d));
    if (as_obj_update(&c, d, &out) < 0)
        mg_log(MG_LOG_WARN, "workload simulation: cannot write a deployment's status",
               "namespace", MG_S(ns), "name", MG_S(name), "error", MG_S(c.err.msg));
out:
    if (d)
        json_decref(d);
    if (out)
        json_decref(out);
    as_wctx_free(&c);
}

static void item_free(struct wl_item *it)
{
    free(it->ns);
    free(it->name);
    free(it);
}

static void timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct as_workload *wl = t->data;
    uint64_t now = mg_loop_now(loop);
    /* Take the due items off first: completing one writes a deployment,
     * which calls as_workload_note and may change the list. */
    struct wl_item *due = NULL, **pp = &wl->items;
    while (*pp) {
        struct wl_item *it = *pp;
        if (it->due <= now) {
            *pp = it->next;
            it->next = due;
            due = it;
            wl->n--;
        } else {
            pp = &it->next;
        }
    }
    while (due) {
        struct wl_item *it = due;
        due = it->next;
        complete(wl, it->ns, it->name);
        item_free(it);
    }
    arm(wl);
}

void as_workload_note(struct as_server *srv, json_t *deploy)
{
    struct as_workload *wl = srv->wl;
    if (!wl || is_ready(deploy) || as_meta_str(deploy, "deletionTimestamp"))
        return;
    const char *ns = as_meta_str(deploy, "namespace");
    const char *name = as_meta_str(deploy, "name");
    if (!ns || !name)
        return;
    uint64_t due = mg_loop_now(srv->loop) + srv->opts.simulate_delay_ms;
    for (struct wl_item *it = wl->items; it; it = it->next)
        if (!strcmp(it->ns, ns) && !strcmp(it->name, name)) {
            /* A newer spec restarts the "rollout". */
            it->due = due;
            arm(wl);
            return;
        }
    if (wl->n >= AS_WL_MAX) {
        mg_log(MG_LOG_WARN, "workload simulation: too many deployments waiting; one skipped",
               "namespace", MG_S(ns), "name", MG_S(name));
        return;
    }
    struct wl_item *it = calloc(1, sizeof *it);
    if (!it)
        return;
    it->ns = strdup(ns);
    it->name = strdup(name);
    if (!it->ns || !it->name) {
        item_free(it);
        return;
    }
    it->due = due;
    it->next = wl->items;
    wl->items = it;
    wl->n++;
    arm(wl);
}

static int note_cb(json_t *obj, void *data)
{
    as_workload_note(data, obj);
    return 0;
}

int as_workload_new(struct as_server *srv)
{
    struct as_workload *wl = calloc(1, sizeof *wl);
    if (!wl)
        return -ENOMEM;
    wl->srv = srv;
    mg_timer_init(&wl->t, timer_cb, wl);
    srv->wl = wl;
    /* Deployments stored before a restart catch up too. */
    uint64_t rv;
    char *next = NULL;
    int rc = as_store_list(srv->store, "apps/deployments", NULL, NULL, 0, note_cb, srv, &rv, &next);
    free(next);
    return rc < 0 ? rc : 0;
}

void as_workload_free(struct as_server *srv)
{
    struct as_workload *wl = srv->wl;
    if (!wl)
        return;
    mg_timer_stop(srv->loop, &wl->t);
    while (wl->items) {
        struct wl_item *it = wl->items;
        wl->items = it->next;
        item_free(it);
    }
    free(wl);
    srv->wl = NULL;
}
