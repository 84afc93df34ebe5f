/* libFuzzer target for apiserver/protobuf.c: kubectl's protobuf request
 * bodies (runtime.Unknown around a built-in object) come straight from the
 * network. Contracts checked: a decode either succeeds with a JSON object
 * carrying apiVersion and kind (which serialises), or fails with -EINVAL,
 * -ENOTSUP or -ENOMEM and a message; nothing is read out of bounds (ASan). */
#include "apiserver/protobuf.c"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *out = NULL;
    char err[600];
    int rc = as_protobuf_decode((const char *)data, size, &out, err, sizeof err);
    if (rc == 0) {
        if (!json_is_object(out) || !json_is_string(json_object_get(out, "apiVersion")) ||
            !json_is_string(json_object_get(out, "kind")))
            abort();
        char *s = json_dumps(out, JSON_COMPACT);
        if (!s)
            abort();
        free(s);
        json_decref(out);
    } else {
        if (rc != -EINVAL && rc != -ENOTSUP && rc != -ENOMEM)
            abort();
        if (out || !err[0])
            abort();
    }
    return 0;
}
