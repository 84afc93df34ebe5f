/* Differential fuzzing of the sidecar's request-body scanner
 * (sidecar/reqscan.c) against jansson: on any input the scanner must not
 * crash, and whenever jansson accepts a top-level object (duplicates
 * refused), the scanner must accept it too and agree on "model" and
 * "stream" (unless the model is over the scanner's length cap or the
 * nesting over its depth cap, which it refuses by design). An accepted
 * body is never one jansson calls a non-object. The model's span is the
 * JSON string of the model (it decodes to it), and max_tokens agrees with
 * jansson's "max_tokens" / "max_completion_tokens" when they are
 * integers in [0, 2^32). */
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
        if (m) {
            /* The span holds exactly the model's JSON string. */
            if (s.model_off + s.model_span > size || s.model_span < 2 ||
                b[s.model_off] != '"' || b[s.model_off + s.model_span - 1] != '"')
                abort();
            json_t *sv = json_loadb(b + s.model_off, s.model_span, JSON_DECODE_ANY, &err);
            if (!sv || !json_equal(sv, m))
                abort();
            json_decref(sv);
        } else if (s.model_span) {
            abort();
        }
        long long want = -1;
        static const char *const keys[] = {"max_tokens", "max_completion_tokens"};
        for (int k = 0; k < 2; k++) {
            json_t *t = json_object_get(v, keys[k]);
            if (json_is_integer(t) && json_integer_value(t) >= 0 &&
                json_integer_value(t) < 4294967296LL && json_integer_value(t) > want)
                want = json_integer_value(t);
        }
        /* jansson reads 1.0 and 1e3 as reals (not integers): both skip
         * them; it reads -0 as the integer 0, which the scanner skips. */
        if (want != s.max_tokens && !(want == 0 && s.max_tokens == -1))
            abort();
    }
    json_decref(v);
    return 0;
}
