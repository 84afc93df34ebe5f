/* Unit tests for apiserver/schema.c: the structural-schema check of CRD
 * schemas, and pruning, defaulting and validation of custom resources,
 * with every cause's field path, reason and message asserted as kubectl
 * would print them. Also the RE2 → POSIX pattern translation and the
 * bounded cache of compiled patterns. */
#include "apiserver/schema.c"
#include "tests/unit/test.h"

static int re_match(const char *pattern, const char *s, size_t len, char *why, size_t whylen)
{
    return re_match_budget(pattern, s, len, why, whylen, NULL);
}

static int re_translate(const char *re, struct sbuf *out, const char **why)
{
    return re_translate_cost(re, out, why, NULL);
}

/* Rows list only the fields they need. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static json_t *J(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v)
        printf("# bad test JSON (%s): %s\n", e.text, s);
    return v;
}

static void show(const char *what, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
    printf("#   %s: %s\n", what, s ? s : "(null)");
    free(s);
}

struct cause {
    const char *field, *reason, *message;
};

struct scase {
    const char *name;
    const char *schema, *obj;
    const char *want_obj;      /* the object after apply; NULL: not checked */
    const char *unknown;       /* JSON list of pruned paths; NULL: must be [] */
    struct cause causes[4];    /* every cause expected, in order */
};

/* Compares c->causes to want exactly (count, order, each field). */
static int causes_match(json_t *got, const struct cause *want)
{
    size_t n = 0;
    while (n < 4 && want[n].field)
        n++;
    int ok = json_array_size(got) == n;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *g = json_array_get(got, i);
        ok = strcmp(json_string_value(json_object_get(g, "field")), want[i].field) == 0 &&
             strcmp(json_string_value(json_object_get(g, "reason")), want[i].reason) == 0 &&
             strcmp(json_string_value(json_object_get(g, "message")), want[i].message) == 0;
    }
    if (!ok) {
        show("causes got", got);
        for (size_t i = 0; i < n; i++)
            printf("#   want %s | %s | %s\n", want[i].field, want[i].reason, want[i].message);
    }
    return ok;
}

#define BASE_SCHEMA                                                                                   \
    "{\"type\":\"object\",\"properties\":{"                                                           \
    "\"spec\":{\"type\":\"object\",\"required\":[\"model\"],\"properties\":{"                         \
    "\"model\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":10,\"pattern\":\"^[a-z0-9-]+$\"},"  \
    "\"replicas\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100,\"default\":1},"                \
    "\"weight\":{\"type\":\"number\",\"exclusiveMaximum\":true,\"maximum\":1.5,"                      \
    "\"exclusiveMinimum\":true,\"minimum\":0},"                                                       \
    "\"mode\":{\"type\":\"string\",\"enum\":[\"a\",\"b\"]},"                                          \
    "\"level\":{\"type\":\"integer\",\"enum\":[1,2]},"                                                \
    "\"steps\":{\"type\":\"array\",\"maxItems\":3,\"minItems\":1,\"items\":{\"type\":\"object\","     \
    "\"properties\":{\"setWeight\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},"             \
    "\"pause\":{\"type\":\"object\",\"properties\":{\"duration\":{\"type\":\"string\"}}}}}},"         \
    "\"port\":{\"x-kubernetes-int-or-string\":true},"                                                 \
    "\"extra\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true},"                  \
    "\"labels\":{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\"},"                 \
    "\"maxProperties\":2,\"minProperties\":1},"                                                      \
    "\"tags\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"set\",\"items\":{\"type\":\"string\"}}," \
    "\"ports\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\","                               \
    "\"x-kubernetes-list-map-keys\":[\"name\"],\"items\":{\"type\":\"object\",\"properties\":{"       \
    "\"name\":{\"type\":\"string\"},\"port\":{\"type\":\"integer\",\"format\":\"int32\"}}}},"         \
    "\"analysis\":{\"type\":\"object\",\"default\":{},\"properties\":{"                               \
    "\"interval\":{\"type\":\"string\",\"default\":\"30s\"},"                                         \
    "\"failureLimit\":{\"type\":\"integer\",\"default\":2}}},"                                        \
    "\"enabled\":{\"type\":\"boolean\"},"                                                             \
    "\"when\":{\"type\":\"string\",\"format\":\"date-time\"},"                                        \
    "\"step\":{\"type\":\"integer\",\"multipleOf\":5},"                                               \
    "\"note\":{\"type\":\"string\",\"nullable\":true},"                                               \
    "\"closed\":{\"type\":\"object\",\"additionalProperties\":false,\"properties\":{}}"               \
    "}},"                                                                                             \
    "\"status\":{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true}"                  \
    "}}"

#define OBJ(spec) "{\"apiVersion\":\"modelgate.dev/v1alpha1\",\"kind\":\"ModelDeployment\",\"metadata\":{\"name\":\"m\"},\"spec\":" spec "}"
#define DEFAULTED "\"replicas\":1,\"analysis\":{\"interval\":\"30s\",\"failureLimit\":2}"

static const struct scase apply_cases[] = {
    {"valid, with nested defaults of a defaulted object", BASE_SCHEMA,
     "{\"apiVersion\":\"modelgate.dev/v1alpha1\",\"kind\":\"ModelDeployment\",\"metadata\":{\"name\":\"m\","
     "\"anything\":{\"x\":1}},\"spec\":{\"model\":\"m\"}}",
     "{\"apiVersion\":\"modelgate.dev/v1alpha1\",\"kind\":\"ModelDeployment\",\"metadata\":{\"name\":\"m\","
     "\"anything\":{\"x\":1}},\"spec\":{\"model\":\"m\"," DEFAULTED "}}"},
    {"defaults do not replace given values", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":0,\"analysis\":{\"interval\":\"1m\"}}"),
     OBJ("{\"model\":\"m\",\"replicas\":0,\"analysis\":{\"interval\":\"1m\",\"failureLimit\":2}}")},
    {"null takes the default", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":null}"), OBJ("{\"model\":\"m\"," DEFAULTED "}")},
    {"null of a non-nullable field is dropped", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"enabled\":null}"),
     OBJ("{\"model\":\"m\"," DEFAULTED "}")},
    {"null of a nullable field is kept", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"note\":null}"),
     OBJ("{\"model\":\"m\",\"note\":null," DEFAULTED "}")},
    {"required", BASE_SCHEMA, OBJ("{}"), NULL, NULL,
     {{"spec.model", "FieldValueRequired", "Required value"}}},
    {"type: string for an integer", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":\"3\"}"), NULL, NULL,
     {{"spec.replicas", "FieldValueTypeInvalid",
       "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""}}},
    {"type: a fraction for an integer", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":2.5}"), NULL, NULL,
     {{"spec.replicas", "FieldValueTypeInvalid",
       "Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\""}}},
    {"type: 2.0 is an integer, stored as 2", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":2.0}"),
     OBJ("{\"model\":\"m\",\"replicas\":2,\"analysis\":{\"interval\":\"30s\",\"failureLimit\":2}}")},
    {"type: object for a string", BASE_SCHEMA, OBJ("{\"model\":{\"a\":1}}"), NULL, NULL,
     {{"spec.model", "FieldValueTypeInvalid", "Invalid value: \"object\": spec.model in body must be of type string: \"object\""}}},
    {"type: boolean", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"enabled\":\"yes\"}"), NULL, NULL,
     {{"spec.enabled", "FieldValueTypeInvalid", "Invalid value: \"string\": spec.enabled in body must be of type boolean: \"string\""}}},
    {"type: array", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"steps\":{}}"), NULL, NULL,
     {{"spec.steps", "FieldValueTypeInvalid", "Invalid value: \"object\": spec.steps in body must be of type array: \"object\""}}},
    {"type: null in a list", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"tags\":[null]}"), NULL, NULL,
     {{"spec.tags[0]", "FieldValueTypeInvalid", "Invalid value: \"null\": spec.tags[0] in body must be of type string: \"null\""}}},
    {"minimum", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":-1}"), NULL, NULL,
     {{"spec.replicas", "FieldValueInvalid", "Invalid value: -1: spec.replicas in body should be greater than or equal to 0"}}},
    {"maximum", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"replicas\":101}"), NULL, NULL,
     {{"spec.replicas", "FieldValueInvalid", "Invalid value: 101: spec.replicas in body should be less than or equal to 100"}}},
    {"exclusiveMaximum", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"weight\":1.5}"), NULL, NULL,
     {{"spec.weight", "FieldValueInvalid", "Invalid value: 1.5: spec.weight in body should be less than 1.5"}}},
    {"exclusiveMinimum", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"weight\":0}"), NULL, NULL,
     {{"spec.weight", "FieldValueInvalid", "Invalid value: 0: spec.weight in body should be greater than 0"}}},
    {"multipleOf", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"step\":7}"), NULL, NULL,
     {{"spec.step", "FieldValueInvalid", "Invalid value: 7: spec.step in body should be a multiple of 5"}}},
    {"enum of strings", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"mode\":\"x\"}"), NULL, NULL,
     {{"spec.mode", "FieldValueNotSupported", "Unsupported value: \"x\": supported values: \"a\", \"b\""}}},
    {"enum of numbers", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"level\":3}"), NULL, NULL,
     {{"spec.level", "FieldValueNotSupported", "Unsupported value: 3: supported values: \"1\", \"2\""}}},
    {"enum matches 2.0 to 2", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"level\":2.0}"),
     OBJ("{\"model\":\"m\",\"level\":2," DEFAULTED "}")},
    {"maxLength", BASE_SCHEMA, OBJ("{\"model\":\"abcdefghijk\"}"), NULL, NULL,
     {{"spec.model", "FieldValueTooLong", "Too long: may not be more than 10 bytes"}}},
    {"maxLength counts characters", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"mode\":\"a\",\"labels\":{\"x\":\"\\u00e9\"}}"),
     OBJ("{\"model\":\"m\",\"mode\":\"a\",\"labels\":{\"x\":\"\\u00e9\"}," DEFAULTED "}")},
    {"minLength and pattern", BASE_SCHEMA, OBJ("{\"model\":\"\"}"), NULL, NULL,
     {{"spec.model", "FieldValueInvalid", "Invalid value: \"\": spec.model in body should be at least 1 chars long"},
      {"spec.model", "FieldValueInvalid", "Invalid value: \"\": spec.model in body should match '^[a-z0-9-]+$'"}}},
    {"pattern", BASE_SCHEMA, OBJ("{\"model\":\"Abc\"}"), NULL, NULL,
     {{"spec.model", "FieldValueInvalid", "Invalid value: \"Abc\": spec.model in body should match '^[a-z0-9-]+$'"}}},
    {"a list item's field", BASE_SCHEMA,
     OBJ("{\"model\":\"m\",\"steps\":[{\"setWeight\":5},{\"pause\":{}},{\"setWeight\":500}]}"), NULL, NULL,
     {{"spec.steps[2].setWeight", "FieldValueInvalid",
       "Invalid value: 500: spec.steps[2].setWeight in body should be less than or equal to 100"}}},
    {"maxItems", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"steps\":[{},{},{},{}]}"), NULL, NULL,
     {{"spec.steps", "FieldValueTooMany", "Too many: 4: must have at most 3 items"}}},
    {"minItems", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"steps\":[]}"), NULL, NULL,
     {{"spec.steps", "FieldValueInvalid", "Invalid value: []: spec.steps in body should have at least 1 items"}}},
    {"maxProperties", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"labels\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}}"), NULL, NULL,
     {{"spec.labels", "FieldValueTooMany", "Too many: 3: must have at most 2 items"}}},
    {"minProperties", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"labels\":{}}"), NULL, NULL,
     {{"spec.labels", "FieldValueInvalid", "Invalid value: {}: spec.labels in body should have at least 1 properties"}}},
    {"additionalProperties schema", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"labels\":{\"a\":\"x\",\"b\":1}}"), NULL, NULL,
     {{"spec.labels.b", "FieldValueTypeInvalid", "Invalid value: \"integer\": spec.labels.b in body must be of type string: \"integer\""}}},
    {"int-or-string: integer", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"port\":80}"), OBJ("{\"model\":\"m\",\"port\":80," DEFAULTED "}")},
    {"int-or-string: string", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"port\":\"http\"}"),
     OBJ("{\"model\":\"m\",\"port\":\"http\"," DEFAULTED "}")},
    {"int-or-string: neither", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"port\":true}"), NULL, NULL,
     {{"spec.port", "FieldValueTypeInvalid", "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\""}}},
    {"list-type set: duplicates", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"tags\":[\"a\",\"b\",\"a\"]}"), NULL, NULL,
     {{"spec.tags[2]", "FieldValueDuplicate", "Duplicate value: \"a\""}}},
    {"list-type map: duplicate keys", BASE_SCHEMA,
     OBJ("{\"model\":\"m\",\"ports\":[{\"name\":\"a\",\"port\":1},{\"name\":\"a\",\"port\":2}]}"), NULL, NULL,
     {{"spec.ports[1]", "FieldValueDuplicate", "Duplicate value: {\"name\":\"a\"}"}}},
    {"format int32", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"ports\":[{\"name\":\"a\",\"port\":3000000000}]}"), NULL, NULL,
     {{"spec.ports[0].port", "FieldValueTypeInvalid", "Invalid value: 3000000000: spec.ports[0].port in body must be of type int32"}}},
    {"format date-time: valid", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"when\":\"2024-02-29T12:00:00.5+01:00\"}"),
     OBJ("{\"model\":\"m\",\"when\":\"2024-02-29T12:00:00.5+01:00\"," DEFAULTED "}")},
    {"format date-time: no such day", BASE_SCHEMA, OBJ("{\"model\":\"m\",\"when\":\"2023-02-29T12:00:00Z\"}"), NULL, NULL,
     {{"spec.when", "FieldValueTypeInvalid",
       "Invalid value: \"2023-02-29T12:00:00Z\": spec.when in body must be of type date-time: \"2023-02-29T12:00:00Z\""}}},
    {"several causes, in document order", BASE_SCHEMA, OBJ("{\"replicas\":-5,\"mode\":\"z\"}"), NULL, NULL,
     {{"spec.model", "FieldValueRequired", "Required value"},
      {"spec.replicas", "FieldValueInvalid", "Invalid value: -5: spec.replicas in body should be greater than or equal to 0"},
      {"spec.mode", "FieldValueNotSupported", "Unsupported value: \"z\": supported values: \"a\", \"b\""}}},
    {"pruning unknown fields", BASE_SCHEMA,
     "{\"apiVersion\":\"v\",\"kind\":\"K\",\"metadata\":{\"name\":\"m\"},\"spec\":{\"model\":\"m\",\"unknownField\":1,"
     "\"steps\":[{\"setWeight\":1,\"foo\":2}],\"closed\":{\"x\":1}},\"bogus\":3}",
     "{\"apiVersion\":\"v\",\"kind\":\"K\",\"metadata\":{\"name\":\"m\"},\"spec\":{\"model\":\"m\","
     "\"steps\":[{\"setWeight\":1}],\"closed\":{}," DEFAULTED "}}",
     "[\".spec.unknownField\",\".spec.steps[0].foo\",\".spec.closed.x\",\".bogus\"]"},
    {"preserve-unknown-fields keeps them", BASE_SCHEMA,
     OBJ("{\"model\":\"m\",\"extra\":{\"anything\":{\"deep\":[1,{\"x\":2}]}}}"),
     OBJ("{\"model\":\"m\",\"extra\":{\"anything\":{\"deep\":[1,{\"x\":2}]}}," DEFAULTED "}")},
    {"status with preserve-unknown-fields", BASE_SCHEMA,
     "{\"spec\":{\"model\":\"m\"},\"status\":{\"phase\":\"Healthy\",\"weights\":{\"stable\":100}}}",
     "{\"spec\":{\"model\":\"m\"," DEFAULTED "},\"status\":{\"phase\":\"Healthy\",\"weights\":{\"stable\":100}}}"},
    {"metadata is not validated or pruned", BASE_SCHEMA,
     "{\"metadata\":{\"name\":5,\"labels\":{\"a\":{}}},\"spec\":{\"model\":\"m\"}}",
     "{\"metadata\":{\"name\":5,\"labels\":{\"a\":{}}},\"spec\":{\"model\":\"m\"," DEFAULTED "}}"},
    {"a preserving root leaves metadata alone", "{\"type\":\"object\",\"x-kubernetes-preserve-unknown-fields\":true,"
     "\"properties\":{\"metadata\":{\"type\":\"object\"},\"kind\":{\"type\":\"string\"},"
     "\"spec\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}}}}}",
     "{\"kind\":\"K\",\"metadata\":{\"name\":\"x\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"a\":\"s\",\"b\":1},\"other\":2}",
     "{\"kind\":\"K\",\"metadata\":{\"name\":\"x\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"a\":\"s\"},\"other\":2}",
     "[\".spec.b\"]"},
    {"a root declaring metadata keeps it whole", "{\"type\":\"object\",\"properties\":{\"apiVersion\":{\"type\":\"string\"},"
     "\"kind\":{\"type\":\"string\"},\"metadata\":{\"type\":\"object\"}}}",
     "{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"name\":\"x\",\"namespace\":\"d\"}}",
     "{\"apiVersion\":\"v1\",\"kind\":\"K\",\"metadata\":{\"name\":\"x\",\"namespace\":\"d\"}}"},
    {"apiVersion of the wrong type", "{\"type\":\"object\",\"properties\":{\"apiVersion\":{\"type\":\"string\"}}}",
     "{\"apiVersion\":1}", NULL, NULL,
     {{"apiVersion", "FieldValueTypeInvalid", "Invalid value: \"integer\": apiVersion in body must be of type string: \"integer\""}}},
    /* controller-gen's IntOrString */
    {"anyOf int-or-string", "{\"type\":\"object\",\"properties\":{\"p\":{\"anyOf\":[{\"type\":\"integer\"},"
     "{\"type\":\"string\"}],\"x-kubernetes-int-or-string\":true,\"pattern\":\"^[0-9]+%?$\"}}}",
     "{\"p\":\"25%\"}", "{\"p\":\"25%\"}"},
    {"anyOf: no branch passes", "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"integer\",\"anyOf\":["
     "{\"minimum\":10},{\"maximum\":2}]}}}",
     "{\"p\":5}", NULL, NULL,
     {{"p", "FieldValueInvalid", "Invalid value: 5: p in body should be greater than or equal to 10"},
      {"p", "FieldValueInvalid", "Invalid value: 5: p in body should be less than or equal to 2"},
      {"p", "FieldValueInvalid", "Invalid value: 5: p in body must validate at least one schema (anyOf)"}}},
    {"not", "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\",\"not\":{\"enum\":[\"x\"]}}}}",
     "{\"p\":\"x\"}", NULL, NULL,
     {{"p", "FieldValueInvalid", "Invalid value: \"x\": p in body must not validate the schema (not)"}}},
    {"embedded resource", "{\"type\":\"object\",\"properties\":{\"t\":{\"type\":\"object\","
     "\"x-kubernetes-embedded-resource\":true,\"properties\":{\"spec\":{\"type\":\"object\"}}}}}",
     "{\"t\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"},\"spec\":{},\"junk\":1}}",
     "{\"t\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"},\"spec\":{}}}", "[\".t.junk\"]",
     {{"t.apiVersion", "FieldValueRequired", "Required value: must not be empty"}}},
    {"additionalProperties true keeps values", "{\"type\":\"object\",\"properties\":{\"m\":{\"type\":\"object\","
     "\"additionalProperties\":true}}}",
     "{\"m\":{\"a\":{\"b\":1}}}", "{\"m\":{\"a\":{\"b\":1}}}"},
    {"defaults inside list items", "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"items\":{"
     "\"type\":\"object\",\"properties\":{\"w\":{\"type\":\"integer\",\"default\":7}}}}}}",
     "{\"l\":[{},{\"w\":1}]}", "{\"l\":[{\"w\":7},{\"w\":1}]}"},
    {"defaults under additionalProperties", "{\"type\":\"object\",\"properties\":{\"m\":{\"type\":\"object\","
     "\"additionalProperties\":{\"type\":\"object\",\"properties\":{\"w\":{\"type\":\"integer\",\"default\":7}}}}}}",
     "{\"m\":{\"a\":{},\"b\":null}}", "{\"m\":{\"a\":{\"w\":7}}}"},
};

static void run_apply_cases(void)
{
    for (size_t i = 0; i < sizeof apply_cases / sizeof apply_cases[0]; i++) {
        const struct scase *c = &apply_cases[i];
        struct as_causes cz;
        as_causes_init(&cz);
        json_t *schema = J(c->schema), *obj = J(c->obj);
        json_t *want = c->want_obj ? J(c->want_obj) : NULL;
        json_t *unknown = J(c->unknown ? c->unknown : "[]");
        int ok = schema && obj && unknown && (want || !c->want_obj);
        if (ok) {
            int rc = as_schema_apply(schema, obj, &cz);
            int want_rc = c->causes[0].field ? -EINVAL : 0;
            if (rc != want_rc) {
                printf("# rc %d, want %d\n", rc, want_rc);
                ok = 0;
            }
            if (!causes_match(cz.causes, c->causes))
                ok = 0;
            if (want && !json_equal(obj, want)) {
                show("object got ", obj);
                show("object want", want);
                ok = 0;
            }
            if (!json_equal(cz.unknown, unknown)) {
                show("unknown got ", cz.unknown);
                show("unknown want", unknown);
                ok = 0;
            }
        }
        char name[160];
        snprintf(name, sizeof name, "apply: %s", c->name);
        test_report(name, ok);
        json_decref(schema);
        json_decref(obj);
        json_decref(want);
        json_decref(unknown);
        as_causes_free(&cz);
    }
}

#define P "spec.versions[0].schema.openAPIV3Schema"

struct ccase {
    const char *name;
    const char *schema;
    struct cause causes[4];
};

static const struct ccase check_cases[] = {
    {"the base schema is structural", BASE_SCHEMA},
    {"controller-gen int-or-string", "{\"type\":\"object\",\"properties\":{\"p\":{\"anyOf\":[{\"type\":\"integer\"},"
     "{\"type\":\"string\"}],\"x-kubernetes-int-or-string\":true}}}"},
    {"RE2 shorthands are translated", "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\","
     "\"pattern\":\"^\\\\d+(?:\\\\.\\\\d+)?[\\\\w-]*\\\\s?$\"}}}"},
    {"missing type of a property", "{\"type\":\"object\",\"properties\":{\"spec\":{\"properties\":{}}}}",
     {{P ".properties[spec].type", "FieldValueRequired", "Required value: must not be empty for specified object fields"}}},
    {"missing type at the root", "{\"properties\":{}}",
     {{P ".type", "FieldValueRequired", "Required value: must not be empty at the root"}}},
    {"the root must be an object", "{\"type\":\"string\"}",
     {{P ".type", "FieldValueInvalid", "Invalid value: \"string\": must be object at the root"}}},
    {"missing type of items", "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"items\":{}}}}",
     {{P ".properties[l].items.type", "FieldValueRequired", "Required value: must not be empty for specified array items"}}},
    {"array without items", "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\"}}}",
     {{P ".properties[l].items", "FieldValueRequired", "Required value: must be specified for type array"}}},
    {"items as a list", "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}}}",
     {{P ".properties[l].items", "FieldValueForbidden", "Forbidden: items must be a schema object and not an array"}}},
    {"unknown type", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"int\"}}}",
     {{P ".properties[a].type", "FieldValueNotSupported",
       "Unsupported value: \"int\": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""}}},
    {"$ref", "{\"type\":\"object\",\"properties\":{\"spec\":{\"$ref\":\"#/definitions/x\"}}}",
     {{P ".properties[spec].$ref", "FieldValueForbidden", "Forbidden: $ref is not supported"},
      {P ".properties[spec].type", "FieldValueRequired", "Required value: must not be empty for specified object fields"}}},
    {"unknown keyword", "{\"type\":\"object\",\"foo\":1}",
     {{P ".foo", "FieldValueForbidden", "Forbidden: unknown schema keyword \"foo\""}}},
    {"CEL rules", "{\"type\":\"object\",\"x-kubernetes-validations\":[{\"rule\":\"true\"}]}",
     {{P ".x-kubernetes-validations", "FieldValueForbidden",
       "Forbidden: CEL validation rules are not supported by modelgate-apiserver"}}},
    {"uniqueItems", "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"uniqueItems\":true,\"items\":{\"type\":\"string\"}}}}",
     {{P ".properties[l].uniqueItems", "FieldValueForbidden",
       "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic"}}},
    {"properties and additionalProperties", "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
     "\"additionalProperties\":{\"type\":\"string\"}}",
     {{P ".additionalProperties", "FieldValueForbidden", "Forbidden: additionalProperties and properties are mutual exclusive"}}},
    {"int-or-string with a type", "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\",\"x-kubernetes-int-or-string\":true}}}",
     {{P ".properties[p].type", "FieldValueInvalid", "Invalid value: \"string\": must be empty if x-kubernetes-int-or-string is true"}}},
    {"list-type map needs keys", "{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"map\","
     "\"items\":{\"type\":\"object\"}}}}",
     {{P ".properties[l].x-kubernetes-list-map-keys", "FieldValueRequired",
       "Required value: must not be empty if x-kubernetes-list-type is map"}}},
    {"bad keyword values", "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"maxLength\":-1,"
     "\"minimum\":\"0\",\"nullable\":\"yes\",\"required\":[1]}}}",
     {{P ".properties[s].maxLength", "FieldValueInvalid", "Invalid value: must be a non-negative integer"},
      {P ".properties[s].minimum", "FieldValueInvalid", "Invalid value: must be a number"},
      {P ".properties[s].nullable", "FieldValueInvalid", "Invalid value: must be true or false"},
      {P ".properties[s].required", "FieldValueInvalid", "Invalid value: must be a list of field names"}}},
    {"a lookahead", "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"(?=a)b\"}}}",
     {{P ".properties[s].pattern", "FieldValueInvalid",
       "Invalid value: \"(?=a)b\": must be a valid regular expression, but isn't: (?...) groups other than (?:...) "
       "(flags, names, lookarounds) are not supported"}}},
    {"a word boundary", "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"\\\\bx\"}}}",
     {{P ".properties[s].pattern", "FieldValueInvalid",
       "Invalid value: \"\\\\bx\": must be a valid regular expression, but isn't: the escape \\b is RE2 syntax that "
       "POSIX regular expressions lack"}}},
    {"an unbalanced pattern", "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"(a\"}}}",
     {{P ".properties[s].pattern", "FieldValueInvalid",
       "Invalid value: \"(a\": must be a valid regular expression, but isn't: a ( is not closed"}}},
    {"a default that fails its schema", "{\"type\":\"object\",\"properties\":{\"r\":{\"type\":\"integer\",\"minimum\":0,\"default\":-1}}}",
     {{P ".properties[r].default", "FieldValueInvalid", "Invalid value: -1: default in body should be greater than or equal to 0"}}},
    {"a default of the wrong type, nested", "{\"type\":\"object\",\"properties\":{\"o\":{\"type\":\"object\","
     "\"properties\":{\"n\":{\"type\":\"integer\"}},\"default\":{\"n\":\"x\"}}}}",
     {{P ".properties[o].default.n", "FieldValueTypeInvalid",
       "Invalid value: \"string\": default.n in body must be of type integer: \"string\""}}},
    {"a default with unknown fields", "{\"type\":\"object\",\"properties\":{\"o\":{\"type\":\"object\","
     "\"properties\":{\"a\":{\"type\":\"string\"}},\"default\":{\"b\":1}}}}",
     {{P ".properties[o].default", "FieldValueInvalid", "Invalid value: must not have unknown fields: .default.b"}}},
    {"not a schema", "{\"type\":\"object\",\"properties\":{\"a\":\"string\"}}",
     {{P ".properties[a]", "FieldValueInvalid", "Invalid value: \"string\": must be a schema object"}}},
};

static void run_check_cases(void)
{
    for (size_t i = 0; i < sizeof check_cases / sizeof check_cases[0]; i++) {
        const struct ccase *c = &check_cases[i];
        struct as_causes cz;
        as_causes_init(&cz);
        json_t *schema = J(c->schema);
        int ok = schema != NULL;
        if (ok) {
            int rc = as_schema_check(schema, P, &cz);
            int want_rc = c->causes[0].field ? -EINVAL : 0;
            if (rc != want_rc) {
                printf("# rc %d, want %d\n", rc, want_rc);
                ok = 0;
            }
            if (!causes_match(cz.causes, c->causes))
                ok = 0;
        }
        char name[160];
        snprintf(name, sizeof name, "check: %s", c->name);
        test_report(name, ok);
        json_decref(schema);
        as_causes_free(&cz);
    }
}

/* Patterns: RE2 as CRDs write them, strings that must and must not match. */
static void t_patterns(void)
{
    static const struct {
        const char *re, *yes, *no;
    } rows[] = {
        {"^\\d+$", "123", "12a"},
        {"^\\D+$", "abc", "a1"},
        {"^[\\w.-]+$", "a.b-c_D9", "a b"},
        {"^\\W$", "-", "a"},
        {"^\\S+\\s\\S+$", "a b", "ab"},
        {"^(?:ab)+$", "abab", "aba"},
        {"^[^\\s]+$", "ab", "a b"},
        {"^[\\]a]+$", "]a]", "b"},
        {"^[a\\-z]+$", "a-z", "b"},
        {"^[\\^x]+$", "^x^", "y"},
        {"^[\\^]$", "^", "a"},
        {"^[\\^-]+$", "^-", "a"},
        {"^\\.$", ".", "a"},
        {"^[\\.]$", ".", "\\"},
        {"^[\\d\\s]+$", "1 2", "a"},
        {"^a\\tb$", "a\tb", "atb"},
        {"^\\x41$", "A", "B"},
        {"^[!-/]$", "-", "a"},
        {"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "my-app", "-app"},
        {"^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$", "1m30s", "1x"},
        {"^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$",
         "1Gi", "1GiB"},
        {"^https?://[^/]+(/.*)?$", "http://10.0.0.5:8000/v1", "ftp://x"},
        {"^a{2,3}$", "aaa", "a"},
        {"^x{$", "x{", "x"},
        {"^{foo}$", "{foo}", "foo"},
        {"^[a-z0-9]{1,63}(\\.[a-z0-9]{1,63})*$", "a.b9", "a..b"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char why[200] = "";
        int y = re_match(rows[i].re, rows[i].yes, strlen(rows[i].yes), why, sizeof why);
        int n = re_match(rows[i].re, rows[i].no, strlen(rows[i].no), why, sizeof why);
        if (y != 1 || n != 0) {
            SBUF(e);
            const char *w = NULL;
            re_translate(rows[i].re, &e, &w);
            printf("# %s (as %s): \"%s\" -> %d, \"%s\" -> %d %s\n", rows[i].re, e.b, rows[i].yes, y, rows[i].no, n,
                   why);
            CHECK(0);
        }
    }
    static const char *const refused[] = {"(?i)abc", "a*?", "a+?", "\\bword", "\\p{L}", "(?P<n>x)", "(?=x)",
                                          "(?!x)", "a++", "[\\p{L}]", "\\Qa\\E", "\\1", "[a", "a\\",
                                          /* what RE2 refuses and glibc would grind on */
                                          "a**", "\\+*****", "*a", "^*", "a|*b", "a{1001}", "a{3,2}",
                                          "((a{1000}){1000}){1000}", "(a"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        regex_t re;
        char why[200] = "";
        if (re_compile(refused[i], &re, why, sizeof why) == 0) {
            printf("# %s was accepted\n", refused[i]);
            regfree(&re);
            CHECK(0);
        } else {
            CHECK(why[0] != '\0');
        }
    }
    /* long patterns (IPv6 and hostname patterns run to hundreds of bytes) */
    char longpat[4096] = "^(?:";
    for (int i = 0; i < 400; i++)
        snprintf(longpat + strlen(longpat), sizeof longpat - strlen(longpat), "%sa\\d%d", i ? "|" : "", i);
    strcat(longpat, ")$");
    CHECK(strlen(longpat) > 2000);
    char why[200] = "";
    CHECK_EQ_INT(re_match(longpat, "a7150", 5, why, sizeof why), 1);
    CHECK_EQ_INT(re_match(longpat, "a7400", 5, why, sizeof why), 0);
    /* a NUL byte in the value does not end the match early */
    CHECK_EQ_INT(re_match("^a$", "a\0b", 3, NULL, 0), 0);
}

static size_t cache_used(void)
{
    size_t n = 0;
    for (size_t i = 0; i < AS_SCHEMA_REGEX_CACHE; i++)
        n += re_cache[i].pattern != NULL;
    return n;
}

/* Numbers in messages are printed as Go prints them (kube-apiserver's
 * %v of a float64, and encoding/json for enum values). */
static void t_go_numbers(void)
{
    static const struct {
        double d;
        const char *g, *json;
    } rows[] = {
        {0, "0", "0"},
        {1, "1", "1"},
        {100, "100", "100"},
        {999999, "999999", "999999"},
        {1e6, "1e+06", "1000000"},
        {1234567, "1.234567e+06", "1234567"},
        {1.5, "1.5", "1.5"},
        {-2.25, "-2.25", "-2.25"},
        {0.1, "0.1", "0.1"},
        {0.0001, "0.0001", "0.0001"},
        {0.00001, "1e-05", "0.00001"},
        {-2.5e-7, "-2.5e-07", "-2.5e-7"},
        {123456.789, "123456.789", "123456.789"},
        {1e20, "1e+20", "100000000000000000000"},
        {1e21, "1e+21", "1e+21"},
        {1e100, "1e+100", "1e+100"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        SBUF(g);
        SBUF(js);
        sb_go_float(&g, rows[i].d);
        sb_json_float(&js, rows[i].d);
        CHECK_EQ_STR(g.b, rows[i].g);
        CHECK_EQ_STR(js.b, rows[i].json);
    }
    json_t *schema = J("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"number\",\"maximum\":1000000},"
                       "\"e\":{\"type\":\"number\",\"enum\":[1000000,0.1]}}}");
    json_t *obj = J("{\"n\":2500000.5,\"e\":3}");
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), -EINVAL);
    REQUIRE(json_array_size(cz.causes) == 2);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(cz.causes, 0), "message")),
                 "Invalid value: 2.5000005e+06: n in body should be less than or equal to 1e+06");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(cz.causes, 1), "message")),
                 "Unsupported value: 3: supported values: \"1000000\", \"0.1\"");
    as_causes_free(&cz);
    json_decref(obj);
    json_decref(schema);
}

/* The cache never holds more than its size, and evicted patterns still
 * match correctly when they come back. */
static void t_pattern_cache_bounded(void)
{
    char pat[32], val[32];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3 * AS_SCHEMA_REGEX_CACHE; i++) {
            snprintf(pat, sizeof pat, "^x%d$", i);
            snprintf(val, sizeof val, "x%d", i);
            char why[64];
            CHECK_EQ_INT(re_match(pat, val, strlen(val), why, sizeof why), 1);
            CHECK_EQ_INT(re_match(pat, "y", 1, why, sizeof why), 0);
        }
        CHECK(cache_used() <= AS_SCHEMA_REGEX_CACHE);
    }
    CHECK_EQ_INT(cache_used(), AS_SCHEMA_REGEX_CACHE);
}

/* Nesting past the cap: an error, not a stack overflow. */
static void t_depth_cap(void)
{
    json_t *schema = J("{\"type\":\"object\"}"), *cur = schema;
    for (int i = 0; i < 150; i++) {
        json_t *n = J("{\"type\":\"object\"}");
        json_object_set_new(cur, "properties", json_pack("{s:o}", "a", n));
        cur = n;
    }
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_check(schema, P, &cz), -EINVAL);
    CHECK(json_array_size(cz.causes) == 1);
    CHECK(strstr(json_string_value(json_object_get(json_array_get(cz.causes, 0), "message")), "nested more than"));
    as_causes_free(&cz);

    json_t *obj = json_object();
    cur = obj;
    for (int i = 0; i < 150; i++) {
        json_t *n = json_object();
        json_object_set_new(cur, "a", n);
        cur = n;
    }
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), -EINVAL);
    CHECK(json_array_size(cz.causes) >= 1);
    as_causes_free(&cz);
    json_decref(obj);
    json_decref(schema);
}

/* A hostile object yields a bounded number of causes and unknown paths. */
static void t_causes_bounded(void)
{
    json_t *schema = J("{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}}}");
    json_t *obj = json_object(), *l = json_array();
    for (int i = 0; i < 1000; i++) {
        json_array_append_new(l, json_integer(i));
        char k[16];
        snprintf(k, sizeof k, "u%d", i);
        json_object_set_new(obj, k, json_true());
    }
    json_object_set_new(obj, "l", l);
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), -EINVAL);
    CHECK_EQ_INT(json_array_size(cz.causes), AS_SCHEMA_MAX_CAUSES);
    CHECK_EQ_INT(json_array_size(cz.unknown), AS_SCHEMA_MAX_UNKNOWN);
    CHECK_EQ_INT(json_object_size(obj), 1); /* every unknown field pruned all the same */
    as_causes_free(&cz);
    json_decref(obj);
    json_decref(schema);
}

/* A long set is checked for duplicates in O(n log n), each reported once. */
static void t_long_set(void)
{
    json_t *schema = J("{\"type\":\"object\",\"properties\":{\"l\":{\"type\":\"array\",\"x-kubernetes-list-type\":\"set\","
                       "\"items\":{\"type\":\"integer\"}}}}");
    json_t *obj = json_object(), *l = json_array();
    for (int i = 0; i < 50000; i++)
        json_array_append_new(l, json_integer(i));
    json_array_append_new(l, json_real(7.0));
    json_array_append_new(l, json_integer(3));
    json_object_set_new(obj, "l", l);
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), -EINVAL);
    REQUIRE(json_array_size(cz.causes) == 2);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(cz.causes, 0), "field")), "l[50000]");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(cz.causes, 0), "message")), "Duplicate value: 7");
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(cz.causes, 1), "field")), "l[50001]");
    as_causes_free(&cz);
    json_decref(obj);
    json_decref(schema);
}

/* Nested anyOf multiplies work; the budget ends it with a cause. */
static void t_combinator_budget(void)
{
    json_t *schema = J("{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"}}}");
    json_t *v = json_object_get(json_object_get(schema, "properties"), "v");
    json_t *cur = v;
    for (int i = 0; i < 30; i++) {
        json_t *a = json_object();
        json_object_set_new(cur, "anyOf", json_pack("[O,o]", a, a)); /* both branches: 2^30 paths */
        cur = a;
    }
    json_object_set_new(cur, "minimum", json_integer(1000));
    json_t *obj = J("{\"v\":1}");
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), -EINVAL);
    int found = 0;
    for (size_t i = 0; i < json_array_size(cz.causes); i++)
        found |= strstr(json_string_value(json_object_get(json_array_get(cz.causes, i), "message")),
                        "validation needs more than") != NULL;
    CHECK(found);
    as_causes_free(&cz);
    json_decref(obj);
    json_decref(schema);
}

/* Matching a huge value against a large pattern would hold the loop for
 * seconds in glibc's matcher: past a budget the value is refused instead. */
static void t_pattern_work_bounded(void)
{
    json_t *schema = J("{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"pattern\":\"^a{0,1000}$\"}}}");
    size_t n = 600000;
    char *big = malloc(n + 1);
    REQUIRE(big != NULL);
    memset(big, 'a', n);
    big[n] = '\0';
    json_t *obj = json_pack("{s:s}", "s", big);
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), -EINVAL);
    const char *msg = json_string_value(json_object_get(json_array_get(cz.causes, 0), "message"));
    CHECK(msg && strstr(msg, "s in body is too long to be checked against pattern '^a{0,1000}$' (600000 bytes)"));
    as_causes_free(&cz);
    json_decref(obj);
    obj = J("{\"s\":\"aaa\"}");
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, obj, &cz), 0);
    as_causes_free(&cz);
    json_decref(obj);
    json_decref(schema);
    free(big);
}

/* Causes accumulate across calls on the same collector; the result of each
 * call reflects only its own. */
static void t_causes_accumulate(void)
{
    json_t *schema = J(BASE_SCHEMA);
    json_t *bad = J(OBJ("{}")), *good = J(OBJ("{\"model\":\"m\"}"));
    struct as_causes cz;
    as_causes_init(&cz);
    CHECK_EQ_INT(as_schema_apply(schema, bad, &cz), -EINVAL);
    CHECK_EQ_INT(as_schema_apply(schema, good, &cz), 0);
    CHECK_EQ_INT(json_array_size(cz.causes), 1);
    as_causes_free(&cz);
    CHECK(cz.causes == NULL && cz.unknown == NULL);
    json_decref(schema);
    json_decref(bad);
    json_decref(good);
}

int main(void)
{
    run_apply_cases();
    run_check_cases();
    RUN(t_patterns);
    RUN(t_go_numbers);
    RUN(t_pattern_work_bounded);
    RUN(t_pattern_cache_bounded);
    RUN(t_depth_cap);
    RUN(t_causes_bounded);
    RUN(t_causes_accumulate);
    RUN(t_long_set);
    RUN(t_combinator_budget);
    return test_done();
}
