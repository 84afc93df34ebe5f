/* The request-body scanner: what the sidecar needs of an OpenAI request
 * body ("model" and "stream" of the top-level object) in one pass over the
 * bytes, without building a JSON tree (a tree costs more than the rest of
 * the proxying put together).
 *
 * It checks the whole body's JSON syntax on the way (RFC 8259: strings,
 * escapes, numbers, literals, nesting, nothing after the object), so what it
 * accepts a strict JSON parser accepts too, and only members of the
 * top-level object count: a "model" key nested deeper, or the text "model"
 * inside a string, is not the model. Keys are compared after unescaping
 * ("mod\u0065l" is "model", as the backend will read it). A repeated
 * "model" is refused: the backend would take the last one and could be
 * served another model than the one routed. It also reports where the
 * "model" value lies (for a splice) and "max_tokens" /
 * "max_completion_tokens" (for token rate limits). No allocation; the decoded
 * model lives in the result. */
#ifndef SC_REQSCAN_H
#define SC_REQSCAN_H

#include <stddef.h>

/* The longest model name accepted (bytes, after unescaping). */
#define SC_REQSCAN_MODEL_MAX 256
/* Nesting of objects and arrays accepted (Python's json stops near 1000). */
#define SC_REQSCAN_MAX_DEPTH 512

struct sc_reqscan {
    const char *model;      /* the model (into the body, or into buf when it
                             * had escapes); NULL when absent */
    size_t model_len;
    int stream;             /* "stream": true at the top level */
    /* The "model" value as it stands in the body, quotes included
     * (body[model_off .. model_off + model_span)), so a model fallback
     * can splice another name in without reparsing; 0/0 when absent. */
    size_t model_off, model_span;
    /* The top-level "max_tokens" or "max_completion_tokens" (the larger
     * when both are given) when it is a non-negative integer below 2^32;
     * -1 otherwise. */
    long long max_tokens;
    /* On -EINVAL: a static message for the client, and where. */
    const char *error;
    size_t error_offset;
    char buf[SC_REQSCAN_MODEL_MAX];
};

/* Scans body[0..len). Returns 0 with out filled (out->model NULL when the
 * object has no "model"; it may be "" when the body says so), or -EINVAL
 * with out->error: "request body is not a JSON object" (also for an empty
 * body), "request body is not valid JSON: ...", "\"model\" must be a
 * string", "\"model\" is given more than once", "\"model\" is too long",
 * "\"model\" is not valid UTF-8". */
int sc_reqscan(const char *body, size_t len, struct sc_reqscan *out);

#endif
