/* libFuzzer target for apiserver/schema.c. The input is two JSON
 * documents separated by a NUL byte: a CRD's openAPIV3Schema and an
 * object. The schema is checked, then the object pruned, defaulted and
 * validated against it (whether or not the check passed: a stored CRD
 * may predate a stricter check).
 *
 * Contracts checked: every cause has a reason, a message and a field;
 * success means no causes and failure at least one (or ENOMEM); for a
 * schema that passed the check, applying it again to an object it
 * accepted changes nothing and prunes nothing (defaults are pruned and
 * valid, so pruning, defaulting and validation are idempotent). */
#include "apiserver/schema.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_causes(const struct as_causes *c)
{
    for (size_t i = 0; i < json_array_size(c->causes); i++) {
        json_t *cz = json_array_get(c->causes, i);
        if (!json_is_string(json_object_get(cz, "reason")) || !json_is_string(json_object_get(cz, "message")) ||
            !json_is_string(json_object_get(cz, "field")))
            abort();
        if (json_string_length(json_object_get(cz, "message")) == 0)
            abort();
    }
    if (json_array_size(c->causes) > AS_SCHEMA_MAX_CAUSES || json_array_size(c->unknown) > AS_SCHEMA_MAX_UNKNOWN)
        abort();
    for (size_t i = 0; i < json_array_size(c->unknown); i++) {
        const char *u = json_string_value(json_array_get(c->unknown, i));
        if (!u || u[0] != '.')
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    const uint8_t *sep = memchr(data, 0, size);
    if (!sep)
        return 0;
    json_error_t e;
    json_t *schema = json_loadb((const char *)data, (size_t)(sep - data), JSON_DECODE_ANY, &e);
    json_t *obj = json_loadb((const char *)sep + 1, size - (size_t)(sep - data) - 1, JSON_DECODE_ANY, &e);
    struct as_causes c;
    if (!schema || !obj)
        goto out;

    as_causes_init(&c);
    int checked = as_schema_check(schema, "spec.versions[0].schema.openAPIV3Schema", &c);
    check_causes(&c);
    if ((checked == 0) != (json_array_size(c.causes) == 0) && checked != -ENOMEM)
        abort();
    as_causes_free(&c);

    as_causes_init(&c);
    int rc = as_schema_apply(schema, obj, &c);
    check_causes(&c);
    if (rc == 0 && json_array_size(c.causes) != 0)
        abort();
    if (rc == -EINVAL && json_array_size(c.causes) == 0)
        abort();
    as_causes_free(&c);

    if (checked == 0 && rc == 0) {
        json_t *again = json_deep_copy(obj);
        as_causes_init(&c);
        if (!again || as_schema_apply(schema, again, &c) != 0 || !json_equal(again, obj) ||
            json_array_size(c.unknown) != 0)
            abort();
        as_causes_free(&c);
        json_decref(again);
    }
out:
    json_decref(schema);
    json_decref(obj);
    return 0;
}
