/* CRD structural schemas (openAPIV3Schema): validation, defaulting and
 * pruning of custom resources, as kube-apiserver does them.
 *
 * Supported: type (object, array, string, integer, number, boolean),
 * properties, required, items, additionalProperties (schema or bool),
 * enum, minimum/maximum (+ exclusive*), minLength/maxLength, pattern
 * (POSIX ERE via regcomp; RE2 syntax that ERE lacks is rejected at CRD
 * creation), minItems/maxItems, minProperties/maxProperties, format
 * (int32, int64, date-time; others accepted, unchecked), nullable,
 * default, x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string,
 * x-kubernetes-embedded-resource, x-kubernetes-list-type (set: unique
 * items). apiVersion, kind and metadata at the root are the caller's
 * (never pruned, metadata not validated here).
 *
 * Causes are collected as Kubernetes reports them: field paths such as
 * "spec.strategy.canary.steps[2].setWeight", reasons FieldValueRequired,
 * FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid,
 * FieldValueTooLong, ..., and a message ("Unsupported value: \"x\":
 * supported values: \"a\", \"b\""). */
#ifndef AS_SCHEMA_H
#define AS_SCHEMA_H

#include <jansson.h>

struct as_causes {
    json_t *causes;      /* array of {"reason","message","field"} */
    json_t *unknown;     /* array of strings: paths of pruned unknown fields
                          * (".spec.foo"), for fieldValidation Strict/Warn */
};

void as_causes_init(struct as_causes *c);
void as_causes_free(struct as_causes *c);

/* Checks that a CRD version's openAPIV3Schema is structural and supported.
 * 0 or -EINVAL with causes (field paths under
 * "spec.versions[i].schema.openAPIV3Schema"). */
int as_schema_check(json_t *schema, const char *path, struct as_causes *c);

/* Applies defaults (in place, recursively, where a property is absent),
 * prunes unknown fields (in place, recording their paths), then validates.
 * Returns 0 when valid, -EINVAL with causes otherwise.
 *
 * Also (schema.c): pruning runs first, as in kube-apiserver, so fields a
 * default brings in are never recorded as unknown; nulls of non-nullable
 * fields without a default are dropped; on success, integral numbers in
 * integer fields become JSON integers (2.0 is stored as 2). Causes and
 * unknown paths are appended to c (at most 100 of each are kept); the
 * return value reflects this call's causes only. -ENOMEM possible. */
int as_schema_apply(json_t *schema, json_t *obj, struct as_causes *c);

#endif
