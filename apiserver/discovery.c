/* Discovery documents, shaped as kube-apiserver answers them with plain
 * application/json (not the aggregated apidiscovery.k8s.io/v2 form: kubectl
 * accepts these and then fetches each group version's resource list).
 *
 *   GET /api          {"kind":"APIVersions","versions":["v1"],
 *                      "serverAddressByClientCIDRs":[...]}
 *   GET /apis         {"kind":"APIGroupList","apiVersion":"v1","groups":[...]}
 *   GET /api/v1,
 *   GET /apis/<g>/<v> {"kind":"APIResourceList","groupVersion":...,
 *                      "resources":[...]}
 *
 * Resources are listed by name, subresources ("deployments/scale",
 * "deployments/status") right after their parent, as the real server does. */
#include "apiserver/registry-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *as_discovery_api(const struct as_registry *reg)
{
    (void)reg;
    return json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind", "APIVersions", "versions", "v1",
                     "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0", "serverAddress", "");
}

static json_t *str_array(const char *const *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && l && l[i]; i++)
        if (json_array_append_new(a, json_string(l[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *group_version(const char *group, const char *version)
{
    char gv[600];
    snprintf(gv, sizeof gv, "%s%s%s", group, *group ? "/" : "", version);
    return json_pack("{s:s, s:s}", "groupVersion", gv, "version", version);
}

/* The groups in the order the real server lists them: built-in groups in
 * their fixed order, then CRD groups by name. */
static const char *const builtin_groups[] = {"apps", "coordination.k8s.io", "apiextensions.k8s.io",
                                             NULL};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_version(const void *a, const void *b)
{
    return as_reg_version_cmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends the distinct values of f(r) to a (a set of borrowed strings). */
static int add_unique(const char ***arr, size_t *n, size_t *cap, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*arr)[i], s))
            return 0;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        const char **na = realloc(*arr, nc * sizeof *na);
        if (!na)
            return -1;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = s;
    return 0;
}

static json_t *api_group(const struct as_registry *reg, const char *group)
{
    const char **vers = NULL;
    size_t nv = 0, cap = 0;
    size_t it = 0;
    const struct as_resource *r;
    json_t *g = NULL, *versions = NULL;
    while ((r = as_reg_next(reg, &it)))
        if (!strcmp(r->group, group) && add_unique(&vers, &nv, &cap, r->version))
            goto fail;
    if (!nv)
        goto fail;
    qsort(vers, nv, sizeof *vers, cmp_version);
    if (!(versions = json_array()))
        goto fail;
    for (size_t i = 0; i < nv; i++)
        if (json_array_append_new(versions, group_version(group, vers[i])))
            goto fail;
    g = json_pack("{s:s, s:O, s:o}", "name", group, "versions", versions, "preferredVersion",
                  group_version(group, vers[0]));
fail:
    json_decref(versions);
    free(vers);
    return g;
}

json_t *as_discovery_apis(const struct as_registry *reg)
{
    const char **groups = NULL;
    size_t n = 0, cap = 0, nbuiltin = 0;
    json_t *list = json_array(), *doc = NULL;
    if (!list)
        return NULL;
    for (size_t i = 0; builtin_groups[i]; i++)
        if (add_unique(&groups, &n, &cap, builtin_groups[i]))
            goto out;
    nbuiltin = n;
    size_t it = 0;
    const struct as_resource *r;
    while ((r = as_reg_next(reg, &it)))
        if (*r->group && add_unique(&groups, &n, &cap, r->group))
            goto out;
    qsort(groups + nbuiltin, n - nbuiltin, sizeof *groups, cmp_str);
    for (size_t i = 0; i < n; i++) {
        json_t *g = api_group(reg, groups[i]);
        if (!g || json_array_append_new(list, g))
            goto out;
    }
    doc = json_pack("{s:s, s:s, s:O}", "kind", "APIGroupList", "apiVersion", "v1", "groups", list);
out:
    json_decref(list);
    free(groups);
    return doc;
}

static json_t *api_resource(const struct as_resource *r)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:o, s:o, s:o}", "name", r->resource, "singularName",
                     r->singular ? r->singular : "", "namespaced", r->namespaced, "kind", r->kind,
                     "verbs", str_array(as_reg_verbs), "shortNames", str_array(r->short_names),
                     "categories", str_array(r->categories));
}

static json_t *sub_resource(const struct as_resource *r, const char *sub)
{
    char name[600];
    snprintf(name, sizeof name, "%s/%s", r->resource, sub);
    if (!strcmp(sub, "scale"))
        return json_pack("{s:s, s:s, s:b, s:s, s:s, s:s, s:o}", "name", name, "singularName", "",
                         "namespaced", r->namespaced, "group", "autoscaling", "version", "v1",
                         "kind", "Scale", "verbs", str_array(as_reg_sub_verbs));
    return json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", name, "singularName", "", "namespaced",
                     r->namespaced, "kind", r->kind, "verbs", str_array(as_reg_sub_verbs));
}

static int cmp_resource(const void *a, const void *b)
{
    return strcmp((*(const struct as_resource *const *)a)->resource,
                  (*(const struct as_resource *const *)b)->resource);
}

json_t *as_discovery_resources(const struct as_registry *reg, const char *group,
                               const char *version)
{
    if (!group || !version)
        return NULL;
    const struct as_resource **rs = NULL;
    size_t n = 0, cap = 0, it = 0;
    const struct as_resource *r;
    json_t *list = NULL, *doc = NULL;
    while ((r = as_reg_next(reg, &it))) {
        if (strcmp(r->group, group) || strcmp(r->version, version))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            const struct as_resource **na = realloc(rs, nc * sizeof *na);
            if (!na)
                goto out;
            rs = na;
            cap = nc;
        }
        rs[n++] = r;
    }
    if (!n)
        goto out;
    qsort(rs, n, sizeof *rs, cmp_resource);
    if (!(list = json_array()))
        goto out;
    for (size_t i = 0; i < n; i++) {
        /* Empty shortNames/categories are left out, as the API's omitempty does. */
        json_t *e = api_resource(rs[i]);
        if (!e || json_array_append_new(list, e))
            goto out;
        if (!json_array_size(json_object_get(e, "shortNames")))
            json_object_del(e, "shortNames");
        if (!json_array_size(json_object_get(e, "categories")))
            json_object_del(e, "categories");
        /* "scale" sorts before "status". */
        if (rs[i]->has_scale && json_array_append_new(list, sub_resource(rs[i], "scale")))
            goto out;
        if (rs[i]->has_status && json_array_append_new(list, sub_resource(rs[i], "status")))
            goto out;
    }
    char gv[600];
    snprintf(gv, sizeof gv, "%s%s%s", group, *group ? "/" : "", version);
    /* The core group's list has no apiVersion in the real API (a quirk
     * kubectl does not mind); named groups carry "v1". */
    if (*group)
        doc = json_pack("{s:s, s:s, s:s, s:O}", "kind", "APIResourceList", "apiVersion", "v1",
                        "groupVersion", gv, "resources", list);
    else
        doc = json_pack("{s:s, s:s, s:O}", "kind", "APIResourceList", "groupVersion", gv,
                        "resources", list);
out:
    json_decref(list);
    free(rs);
    return doc;
}
