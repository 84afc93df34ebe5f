/* Parsing completion request bodies into what modelsim needs of them.
 *
 * Two parsers with one result: ms_parse_fast() is a strict single-pass
 * scanner for the common shapes (plain JSON, ASCII or UTF-8 without \u
 * escapes, the field types OpenAI clients send); whenever it meets anything
 * else it gives up (-EAGAIN) and ms_parse_json() (jansson) decides, and
 * produces the error message when the body is wrong. So the fast path
 * never has to be right about errors, only about bodies it accepts, where
 * it must agree with jansson exactly (tests/unit/modelsim/test_reqparse.c
 * checks that). The scanner exists because jansson was two thirds of
 * modelsim's CPU per request. */
#ifndef MODELSIM_REQPARSE_H
#define MODELSIM_REQPARSE_H

#include <stddef.h>
#include <stdint.h>

#define MS_PARSED_MODEL_MAX 256

struct ms_parsed {
    char model[MS_PARSED_MODEL_MAX];  /* "" when absent or null */
    int model_given;
    int model_truncated;              /* longer than the buffer: matches nothing */
    int stream;
    int include_usage;
    long long max_tokens;             /* -1: not given; max_completion_tokens wins */
    uint32_t prompt_tokens;
    uint64_t prompt_hash;
};

struct ms_parse_error {
    const char *param;                /* the field at fault, or NULL */
    char msg[512];
};

/* Both: chat selects /v1/chat/completions (messages) over /v1/completions
 * (prompt). 0 with p filled; ms_parse_fast: -EAGAIN when jansson must
 * decide; ms_parse_json: -EINVAL with e filled (a 400). */
int ms_parse_fast(const char *body, size_t n, int chat, struct ms_parsed *p);
int ms_parse_json(const char *body, size_t n, int chat, struct ms_parsed *p,
                  struct ms_parse_error *e);
/* The fast path, then jansson. */
int ms_parse_request(const char *body, size_t n, int chat, struct ms_parsed *p,
                     struct ms_parse_error *e);

#endif
