/* Label and field selectors, as the Kubernetes API parses and applies them
 * (labelSelector=, fieldSelector= query parameters).
 *
 * Labels: comma-separated requirements, all of which must hold:
 *   k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k
 * and, as Kubernetes also accepts, k>N and k<N (integer label values).
 * != and notin hold when the label is absent. Keys follow Kubernetes'
 * label-key syntax (optional DNS prefix "/"), values its label-value syntax; anything else is a parse error with a
 * message like the real API's ("unable to parse requirement: ...").
 * Fields: k=v, k==v, k!=v over dotted paths (metadata.name,
 * metadata.namespace, involvedObject.uid, ...), values with the escapes
 * \, \= \\ as in Kubernetes; which paths a resource supports is the
 * caller's decision (as_field_selector_check). Selectors longer than 64 KiB
 * are refused. */
#ifndef AS_SELECT_H
#define AS_SELECT_H

#include <jansson.h>

struct as_selector;

/* Parses s (NULL or "" selects everything). 0, or -EINVAL with *err (a
 * static or thread-local message) set. */
int as_label_selector_parse(const char *s, struct as_selector **out, const char **err);
int as_field_selector_parse(const char *s, struct as_selector **out, const char **err);
void as_selector_free(struct as_selector *sel);

/* Whether obj (a full object) is selected: labels from metadata.labels,
 * fields from the dotted paths (a missing field compares as ""). */
int as_selector_match(const struct as_selector *sel, json_t *obj);

/* Checks that a field selector uses only the given paths (NULL-terminated);
 * -EINVAL with *err naming the first unsupported one ("field label not
 * supported: spec.x"). */
int as_field_selector_check(const struct as_selector *sel, const char *const *paths,
                            const char **err);

/* When the selector pins metadata.name= or metadata.namespace= (an
 * equality), the value, else NULL: lets a list touch one key. */
const char *as_selector_pinned(const struct as_selector *sel, const char *path);

#endif
