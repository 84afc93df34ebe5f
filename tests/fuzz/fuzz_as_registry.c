/* libFuzzer target for the apiserver's registry (apiserver/registry.c,
 * discovery.c, openapi.c, table.c): CRDs and custom resources come from
 * users, and so do the JSONPaths and timestamps inside them.
 *
 * The input is used three ways:
 * - as JSON: a CRD for as_registry_check_crd; one it accepts is served
 *   (as_registry_add_crd) and the input is then rendered as one of its
 *   objects (Table columns and cells, Scale), published (discovery,
 *   OpenAPI root and group document) and removed again; it is also
 *   rendered as every built-in type and formatted as a label selector;
 * - as a JSONPath (.a.b[0]['k']) evaluated against a fixed object;
 * - as an RFC 3339 timestamp, turned into an age.
 *
 * Contracts checked: a refused CRD says why (at least one cause, each with
 * reason, message and field); an accepted one is served under its
 * group/version/plural and gone after removal; a Table row has as many
 * cells as there are columns; a path the validator accepts evaluates. */
#include "apiserver/schema.c"
#include "apiserver/registry.c"
#include "apiserver/discovery.c"
#include "apiserver/openapi.c"
#include "apiserver/table.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1795443672LL

static void check_table(const struct as_resource *r, json_t *obj)
{
    json_t *cols = as_table_columns(r), *cells = as_table_cells(r, obj, NOW);
    if (!cols || !cells || json_array_size(cols) != json_array_size(cells))
        abort();
    json_decref(cols);
    json_decref(cells);
    json_decref(as_registry_scale(r, obj));
}

static void fuzz_crd(struct as_registry *reg, json_t *doc)
{
    struct as_causes c;
    as_causes_init(&c);
    int rc = as_registry_check_crd(reg, doc, &c);
    if (rc != 0) {
        if (rc != -EINVAL || !json_array_size(c.causes))
            abort();
        size_t i;
        json_t *e;
        json_array_foreach(c.causes, i, e) {
            if (!json_is_string(json_object_get(e, "reason")) ||
                !json_is_string(json_object_get(e, "message")) ||
                !json_is_string(json_object_get(e, "field")))
                abort();
        }
        as_causes_free(&c);
        return;
    }
    as_causes_free(&c);
    json_t *crd = json_deep_copy(doc);
    if (!crd || as_registry_add_crd(reg, crd) != 0)
        abort();
    json_t *spec = json_object_get(crd, "spec");
    const char *group = json_string_value(json_object_get(spec, "group"));
    const char *plural = json_string_value(json_object_get(json_object_get(spec, "names"), "plural"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(spec, "versions"), i, v) {
        const char *ver = json_string_value(json_object_get(v, "name"));
        const struct as_resource *r = as_registry_find(reg, group, ver, plural);
        if (json_is_true(json_object_get(v, "served")) != (r != NULL))
            abort();
        if (!r)
            continue;
        check_table(r, doc);
        json_decref(as_discovery_resources(reg, group, ver));
        json_decref(as_openapi_group_version(reg, group, ver));
    }
    json_decref(as_openapi_root(reg));
    json_decref(as_discovery_apis(reg));
    const char *name = json_string_value(json_object_get(json_object_get(crd, "metadata"), "name"));
    as_registry_remove_crd(reg, name);
    json_array_foreach(json_object_get(spec, "versions"), i, v) {
        const char *ver = json_string_value(json_object_get(v, "name"));
        if (as_registry_find(reg, group, ver, plural))
            abort();
    }
    json_decref(crd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *fixed;
    if (!fixed) {
        fixed = json_loads("{\"a\":{\"b\":[{\"c\":1},{\"c\":\"x\"}],\"d.e\":{\"f\":null}},"
                           "\"spec\":{\"replicas\":3}}",
                           0, NULL);
    }
    if (size > 65536)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    const char *why = NULL;
    if (as_reg_jsonpath_valid(s, &why)) {
        json_t *v = as_reg_jsonpath(fixed, s);
        (void)v;
    } else if (!why) {
        abort();
    }
    int64_t us;
    if (as_reg_parse_time(s, &us) == 0) {
        char age[32];
        as_reg_human_duration(NOW * 1000000 - us, age, sizeof age);
        if (!age[0])
            abort();
    }

    /* A registry per input: entries of removed CRDs are kept until it is
     * freed (and capped), so one shared across inputs would fill up. */
    struct as_registry *reg;
    if (as_registry_new(&reg))
        abort();
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (json_is_object(doc)) {
        fuzz_crd(reg, doc);
        size_t it = 0;
        const struct as_resource *r;
        while ((r = as_reg_next(reg, &it)))
            check_table(r, doc);
        char sel[512];
        as_reg_format_selector(doc, sel, sizeof sel);
    }
    json_decref(doc);
    as_registry_free(reg);
    free(s);
    return 0;
}
