/* as-patch: applies a PATCH body to an object with apiserver/patch.c and
 * prints the result, so that scripts can hold it against another
 * implementation (kubectl patch --local, which carries Kubernetes' own).
 *
 *   as-patch merge|json|strategic|apply KIND OBJECT.json PATCH.json
 *
 * Prints the patched object as compact JSON with sorted keys (list order
 * kept) and exits 0, or prints "error: <why>" and exits 1 when the patch
 * is refused; 2 for bad usage or unreadable files. KIND "-" means none. */
#include "apiserver/patch.c"

#include <stdio.h>

int main(int argc, char **argv)
{
    static const char *const names[] = {"merge", "json", "strategic", "apply"};
    enum as_patch_type type = 0;
    json_error_t e;
    if (argc != 5) {
        fprintf(stderr, "usage: as-patch merge|json|strategic|apply KIND OBJECT.json PATCH.json\n");
        return 2;
    }
    for (int i = 0; i < 4; i++)
        if (strcmp(argv[1], names[i]) == 0)
            type = (enum as_patch_type)(AS_PATCH_MERGE + i);
    if (!type) {
        fprintf(stderr, "as-patch: unknown patch type %s\n", argv[1]);
        return 2;
    }
    json_t *obj = json_load_file(argv[3], JSON_DECODE_ANY, &e);
    if (!obj) {
        fprintf(stderr, "as-patch: %s:%d: %s\n", argv[3], e.line, e.text);
        return 2;
    }
    json_t *patch = json_load_file(argv[4], JSON_DECODE_ANY, &e);
    if (!patch) {
        fprintf(stderr, "as-patch: %s:%d: %s\n", argv[4], e.line, e.text);
        json_decref(obj);
        return 2;
    }
    const char *err = NULL;
    int rc = as_patch_apply(type, strcmp(argv[2], "-") == 0 ? NULL : argv[2], &obj, patch, &err);
    if (rc < 0) {
        printf("error: %s\n", err ? err : "(no message)");
    } else {
        char *s = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    json_decref(obj);
    json_decref(patch);
    return rc < 0 ? 1 : 0;
}
