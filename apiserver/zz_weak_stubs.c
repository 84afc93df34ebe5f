/* TEMPORARY: weak stand-ins for the parts of the apiserver still being
 * written on other branches (schema.c, select.c, the registry's OpenAPI
 * and Table code), so that the binary links and the core can be tried
 * meanwhile. The real definitions are strong and replace these. Delete
 * this file once those branches are merged. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiserver/registry.h"
#include "apiserver/schema.h"
#include "apiserver/select.h"

#define WEAK __attribute__((weak))

WEAK void as_causes_init(struct as_causes *c)
{
    c->causes = json_array();
    c->unknown = json_array();
}

WEAK void as_causes_free(struct as_causes *c)
{
    json_decref(c->causes);
    json_decref(c->unknown);
    c->causes = c->unknown = NULL;
}

WEAK int as_schema_check(json_t *schema, const char *path, struct as_causes *c)
{
    return 0;
}

WEAK int as_schema_apply(json_t *schema, json_t *obj, struct as_causes *c)
{
    return 0;
}

/* Equality-only selectors: "k=v,k2!=v2". */
struct as_selector {
    int field;
    unsigned n;
    struct {
        char k[512], v[512];
        int neg;
    } r[16];
};

static int sel_parse(const char *s, int field, struct as_selector **out, const char **err)
{
    struct as_selector *sel = calloc(1, sizeof *sel);
    if (!sel)
        return -ENOMEM;
    sel->field = field;
    while (s && *s) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char part[512];
        if (len >= sizeof part || sel->n >= 16)
            goto bad;
        memcpy(part, s, len);
        part[len] = 0;
        char *eq = strstr(part, "!=");
        int neg = eq != NULL;
        if (!eq)
            eq = strchr(part, '=');
        if (!eq)
            goto bad;
        *eq = 0;
        const char *v = eq + (neg ? 2 : 1);
        if (*v == '=')
            v++;
        snprintf(sel->r[sel->n].k, sizeof sel->r[sel->n].k, "%s", part);
        snprintf(sel->r[sel->n].v, sizeof sel->r[sel->n].v, "%s", v);
        sel->r[sel->n].neg = neg;
        sel->n++;
        s = end ? end + 1 : NULL;
    }
    *out = sel;
    return 0;
bad:
    free(sel);
    *err = "unsupported selector";
    return -EINVAL;
}

WEAK int as_label_selector_parse(const char *s, struct as_selector **out, const char **err)
{
    return sel_parse(s, 0, out, err);
}

WEAK int as_field_selector_parse(const char *s, struct as_selector **out, const char **err)
{
    return sel_parse(s, 1, out, err);
}

WEAK void as_selector_free(struct as_selector *sel)
{
    free(sel);
}

WEAK int as_selector_match(const struct as_selector *sel, json_t *obj)
{
    if (!sel)
        return 1;
    for (unsigned i = 0; i < sel->n; i++) {
        const char *got = NULL;
        if (sel->field) {
            char path[256];
            snprintf(path, sizeof path, "%s", sel->r[i].k);
            json_t *cur = obj;
            for (char *tok = strtok(path, "."); tok && cur; tok = strtok(NULL, "."))
                cur = json_object_get(cur, tok);
            got = json_string_value(cur);
        } else {
            got = json_string_value(json_object_get(
                json_object_get(json_object_get(obj, "metadata"), "labels"), sel->r[i].k));
        }
        int eq = got && !strcmp(got, sel->r[i].v);
        if (!got && !*sel->r[i].v && sel->field)
            eq = 1;
        if (eq == sel->r[i].neg)
            return 0;
    }
    return 1;
}

WEAK int as_field_selector_check(const struct as_selector *sel, const char *const *paths,
                                 const char **err)
{
    return 0;
}

WEAK const char *as_selector_pinned(const struct as_selector *sel, const char *path)
{
    return NULL;
}

WEAK json_t *as_openapi_root(const struct as_registry *reg)
{
    return json_pack("{s:{}}", "paths");
}

WEAK json_t *as_openapi_group_version(const struct as_registry *reg, const char *group,
                                      const char *version)
{
    return NULL;
}

WEAK json_t *as_table_columns(const struct as_resource *res)
{
    return json_pack("[{s:s, s:s, s:s, s:s, s:i}, {s:s, s:s, s:s, s:s, s:i}]", "name", "Name",
                     "type", "string", "format", "name", "description", "Name", "priority", 0,
                     "name", "Age", "type", "string", "format", "", "description", "Age",
                     "priority", 0);
}

WEAK json_t *as_table_cells(const struct as_resource *res, json_t *obj, int64_t now_s)
{
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    return json_pack("[s, s]", name ? name : "", "1s");
}
