/* Internal to the registry's files (registry.c, discovery.c, openapi.c,
 * table.c): iteration over the served types and the small helpers they
 * share. Not a contract: the server uses registry.h only. */
#ifndef AS_REGISTRY_INT_H
#define AS_REGISTRY_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "apiserver/registry.h"

/* The verbs every served type answers (discovery and OpenAPI say the same);
 * subresources (status, scale) answer AS_SUB_VERBS. */
extern const char *const as_reg_verbs[];
extern const char *const as_reg_sub_verbs[];

/* The served types in a stable order: built-ins first, then CRD versions
 * in the order they were first served. *iter starts at 0; NULL at the end. */
const struct as_resource *as_reg_next(const struct as_registry *reg, size_t *iter);

/* Kubernetes' version priority (k8s.io/apimachinery/pkg/version
 * CompareKubeAwareVersionStrings): v2 > v1 > v1beta2 > v1beta1 >
 * v1alpha1 > non-kube-like versions (alphabetical). <0 when a sorts
 * before b (has the higher priority). */
int as_reg_version_cmp(const char *a, const char *b);

/* Parses an RFC 3339 timestamp ("2026-11-23T14:21:12Z", fractions and
 * numeric offsets accepted) into microseconds since the epoch. 0 or
 * -EINVAL. */
int as_reg_parse_time(const char *s, int64_t *us);

/* k8s.io/apimachinery/pkg/util/duration.HumanDuration for d_us
 * microseconds, into out (at least 32 bytes). */
void as_reg_human_duration(int64_t d_us, char *out, size_t cap);

/* Evaluates a simple JSONPath (".spec.x", ".items[0].name",
 * ".metadata.labels['app.kubernetes.io/name']") against obj. Returns the
 * borrowed value, or NULL when absent (or the path is not simple). */
json_t *as_reg_jsonpath(json_t *obj, const char *path);
/* Whether path is a JSONPath that as_reg_jsonpath evaluates; *why gets a
 * static message when not. */
int as_reg_jsonpath_valid(const char *path, const char **why);

/* metav1.LabelSelectorAsSelector(sel).String() into out: requirements
 * sorted by key ("app=web,tier in (a,b),!canary"); "" for a NULL or empty
 * selector; "<invalid>" (and -1) for one the API would refuse. */
int as_reg_format_selector(json_t *sel, char *out, size_t cap);

#endif
