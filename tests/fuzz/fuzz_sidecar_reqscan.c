/* Differential fuzzing of the sidecar's request-body scanner
 * (sidecar/reqscan.c) against jansson: on any input the scanner must not
 * crash, and whenever jansson accepts a top-level object (duplicates
 * refused), the scanner must accept it too and agree on "model" and
 * "stream" (unless the model is over the scanner's length cap or the
 * nesting over its depth cap, which it refuses by design). An accepted
 * body is never one jansson calls a non-object. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/reqscan.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *b = (const char *)data;
    struct sc_reqscan s;
    int rc = sc_reqscan(b, size, &s);
    if (rc != 0 && rc != -EINVAL)
        abort();
    if (rc == 0 && s.model && (s.model_len > SC_REQSCAN_MODEL_MAX))
        abort();
    if (rc < 0 && (!s.error || s.error_offset > size))
        abort();

    /* jansson skips a raw NUL byte between tokens as if it were
     * whitespace; RFC 8259 (and Python's json, what backends run) refuse
     * it, as the scanner does. No differential check for those. */
    if (memchr(b, 0, size))
        return 0;
    json_error_t err;
    json_t *v = json_loadb(b, size, JSON_REJECT_DUPLICATES, &err);
    if (!v)
        return 0;
    if (!json_is_object(v)) {
        if (rc == 0)
            abort();   /* we accepted something that is not an object */
        json_decref(v);
        return 0;
    }
    json_t *m = json_object_get(v, "model");
    int stream = json_is_true(json_object_get(v, "stream"));
    if (rc < 0) {
        int excused = strcmp(s.error, "request body is not valid JSON: nested too deeply") == 0 ||
                      strcmp(s.error, "\"model\" is too long") == 0 ||
                      (m && !json_is_string(m) &&
                       strcmp(s.error, "\"model\" must be a string") == 0);
        if (!excused)
            abort();
    } else {
        if (m && !json_is_string(m))
            abort();
        if (!m != !s.model)
            abort();
        if (m && (json_string_length(m) != s.model_len ||
                  memcmp(json_string_value(m), s.model, s.model_len) != 0))
            abort();
        if (stream != s.stream)
            abort();
    }
    json_decref(v);
    return 0;
}
