/* The agreement check between modelsim's two request parsers, shared by the
 * unit test and the fuzz target: whatever the fast scanner accepts, jansson
 * must accept with the very same result. Returns 1 when they agree. */
#ifndef MODELSIM_REQPARSE_CHECK_H
#define MODELSIM_REQPARSE_CHECK_H

#include <string.h>

#include "tests/modelsim/reqparse.h"

static inline int ms_reqparse_agree(const char *body, size_t n, int chat, int *fast_ok)
{
    struct ms_parsed a, b;
    struct ms_parse_error e;
    *fast_ok = ms_parse_fast(body, n, chat, &a) == 0;
    if (!*fast_ok)
        return 1;
    if (ms_parse_json(body, n, chat, &b, &e) != 0)
        return 0;
    return a.model_given == b.model_given && a.model_truncated == b.model_truncated &&
           strcmp(a.model, b.model) == 0 && a.stream == b.stream &&
           a.include_usage == b.include_usage && a.max_tokens == b.max_tokens &&
           a.prompt_tokens == b.prompt_tokens && a.prompt_hash == b.prompt_hash;
}

#endif
