/* libFuzzer target for the YAML loader (lib/yaml.c) under tight limits.
 *
 * Besides memory safety it checks the loader's contracts: a refused input
 * always comes with a collected error; a loaded stream is an array of
 * non-null documents whose compact JSON serialisation reads back (through
 * lib/json.c) as an equal value. */
#include "lib/json.h"
#include "lib/yaml.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mg_yaml_limits lim = {
        .max_bytes = 64 * 1024,
        .max_depth = 64,
        .max_nodes = 20000,
        .max_docs = 64,
    };
    struct mg_json_errs e;
    mg_json_errs_init(&e, 8);
    json_t *docs = NULL;
    int rc = mg_yaml_load_all((const char *)data, size, &lim, "fuzz.yaml", &e, &docs);
    if (rc < 0) {
        if (docs || (rc != -ENOMEM && mg_json_errs_count(&e) == 0))
            abort();
    } else {
        if (!json_is_array(docs))
            abort();
        for (size_t i = 0; i < json_array_size(docs); i++)
            if (json_is_null(json_array_get(docs, i)))
                abort();
        struct mg_buf b;
        mg_buf_init(&b, 64u << 20);
        if (mg_json_dump(docs, &b, 0) == 0) {
            struct mg_json_limits jl = {64u << 20, MG_JSON_HARD_MAX_DEPTH};
            json_t *back = NULL;
            if (mg_json_load(b.data, b.len, &jl, NULL, NULL, &back) != 0)
                abort();
            if (!json_equal(docs, back))
                abort();
            json_decref(back);
        }
        mg_buf_free(&b);
    }
    /* The single-document face, on the same input. */
    json_t *one = NULL;
    rc = mg_yaml_load((const char *)data, size, &lim, NULL, &e, &one);
    if (rc == 0 && !one)
        abort();
    /* With positions recorded: the same document, and every top-level
     * member of a mapping has a position. */
    json_t *withpos = NULL;
    struct mg_yaml_pos *pos = NULL;
    int rc2 = mg_yaml_load_pos((const char *)data, size, &lim, NULL, &e, &withpos, &pos);
    if ((rc2 == 0) != (rc == 0) || (rc2 == 0 && (!pos || !json_equal(one, withpos))) ||
        (rc2 < 0 && pos))
        abort();
    if (rc2 == 0 && json_is_object(withpos)) {
        const char *k;
        json_t *v;
        json_object_foreach(withpos, k, v) {
            unsigned l = 0, c = 0;
            /* keys with '.', '[', ']', '"' or '\\' need quoting: skip them */
            if (k[strcspn(k, ".[]\"\\")] != '\0' || !*k)
                continue;
            if (mg_yaml_pos_find(pos, k, &l, &c) != 0 || l == 0 || c == 0)
                abort();
        }
    }
    mg_yaml_pos_locate(pos, &e);
    mg_yaml_pos_free(pos);
    json_decref(withpos);
    json_decref(one);

    struct mg_buf eb;
    mg_buf_init(&eb, 1 << 16);
    mg_json_errs_format(&e, &eb);
    mg_buf_free(&eb);
    mg_json_errs_free(&e);
    json_decref(docs);
    return 0;
}
