/* libFuzzer target for apiserver/patch.c. The input is a kind selector
 * byte, then two JSON documents separated by a NUL byte: the object and
 * the patch. Every patch type is tried on a copy of the object.
 *
 * Contracts checked: a failed patch says why and leaves the object exactly
 * as it was; only -EINVAL, -ENOTSUP (strategic, unknown kind) and -ENOMEM
 * are returned; merge and strategic merge results are objects; a merge
 * patch applied twice gives what it gave once (RFC 7386 is idempotent); a
 * strategic patch leaves no directive ($patch, $retainKeys,
 * $setElementOrder/, $deleteFromPrimitiveList/) in an object that had
 * none. Leaks and memory errors are caught by the sanitizers. */
#include "apiserver/patch.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const kinds[] = {"Pod",       "Deployment",     "Service", "ConfigMap",
                                    "Secret",    "ServiceAccount", "Namespace", "Event",
                                    "Lease",     "CustomResourceDefinition", "ModelDeployment", NULL};

static int has_directive(json_t *v, unsigned depth)
{
    if (depth > 200)
        return 1; /* too deep to tell: skip the check */
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            if (smp_is_directive_key(k) || has_directive(c, depth + 1))
                return 1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) if (has_directive(c, depth + 1)) return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 64 * 1024)
        return 0;
    const char *kind = kinds[data[0] % (sizeof kinds / sizeof kinds[0])];
    data++;
    size--;

    enum as_patch_type pt;
    as_patch_type_parse((const char *)data, size < 64 ? size : 64, &pt);

    const uint8_t *sep = memchr(data, 0, size);
    if (!sep)
        return 0;
    json_error_t e;
    json_t *obj = json_loadb((const char *)data, (size_t)(sep - data), JSON_DECODE_ANY, &e);
    json_t *patch = json_loadb((const char *)sep + 1, size - (size_t)(sep - data) - 1, JSON_DECODE_ANY, &e);
    if (!obj || !patch)
        goto out;
    int obj_directives = has_directive(obj, 0);

    for (int t = AS_PATCH_MERGE; t <= AS_PATCH_APPLY; t++) {
        json_t *o = json_deep_copy(obj), *keep = json_deep_copy(obj);
        const char *err = NULL;
        if (!o || !keep)
            abort();
        int rc = as_patch_apply((enum as_patch_type)t, kind, &o, patch, &err);
        if (rc < 0) {
            if (!err || !*err)
                abort();
            if (rc != -EINVAL && rc != -ENOTSUP && rc != -ENOMEM)
                abort();
            if (!json_equal(o, keep))
                abort();
        } else {
            if (!o || (t != AS_PATCH_JSON && !json_is_object(o)))
                abort();
            if (t == AS_PATCH_MERGE) {
                json_t *again = json_deep_copy(o);
                if (!again || as_patch_apply(AS_PATCH_MERGE, kind, &again, patch, &err) != 0 ||
                    !json_equal(again, o))
                    abort();
                json_decref(again);
            }
            if (t == AS_PATCH_STRATEGIC && !obj_directives && has_directive(o, 0))
                abort();
        }
        json_decref(o);
        json_decref(keep);
    }
out:
    json_decref(obj);
    json_decref(patch);
    return 0;
}
