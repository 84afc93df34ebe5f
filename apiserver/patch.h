/* The patch types of PATCH requests, applied to a JSON object in place:
 *   application/merge-patch+json           RFC 7386
 *   application/json-patch+json            RFC 6902 (add, remove, replace,
 *                                          move, copy, test)
 *   application/strategic-merge-patch+json Kubernetes' strategic merge patch
 *                                          for built-in types: lists merged
 *                                          by their patchMergeKey (containers
 *                                          and env by name, ports by
 *                                          containerPort/port, volumes, ...),
 *                                          $patch: replace/delete/merge,
 *                                          $retainKeys, $deleteFromPrimitiveList,
 *                                          $setElementOrder (accepted, order
 *                                          applied where it can be)
 *   application/apply-patch+yaml           server-side apply without field
 *                                          managers: the applied object
 *                                          merged into the live one (maps
 *                                          merged, lists replaced except
 *                                          those with a merge key for
 *                                          built-in types)
 * The merge keys of built-in types come from a table in patch.c keyed by
 * the JSON path's shape (kind + field path). */
#ifndef AS_PATCH_H
#define AS_PATCH_H

#include <jansson.h>

enum as_patch_type {
    AS_PATCH_MERGE = 1,
    AS_PATCH_JSON,
    AS_PATCH_STRATEGIC,
    AS_PATCH_APPLY,
};

/* From a Content-Type value (parameters ignored); -EINVAL when unknown
 * (the caller answers 415). */
int as_patch_type_parse(const char *content_type, size_t len, enum as_patch_type *out);

/* Applies patch to *obj (which may be replaced: JSON patch on the root).
 * kind is the object's kind ("Deployment"), used for strategic merge keys;
 * NULL or a custom kind: strategic patches are refused (-ENOTSUP, the
 * API answers 415 "strategic merge patch is not supported for custom
 * resources"). 0, or -EINVAL with *err (static or thread-local) naming
 * what failed ("the test operation failed at /spec/x", "invalid JSON patch
 * operation"), -ENOMEM. On failure *obj is unchanged. */
int as_patch_apply(enum as_patch_type type, const char *kind, json_t **obj, json_t *patch,
                   const char **err);

#endif
