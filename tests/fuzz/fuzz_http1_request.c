/* libFuzzer target: the HTTP/1 request parser and body decoder over
 * pipelined requests, whole and split at a fuzzer-chosen point (the traces
 * must match), plus a round trip: every HTTP/1.1 request it accepts,
 * re-encoded with the encoders, must parse back to the same message. */
#include "tests/fuzz/http1_drive.h"

static void round_trip(const struct mg_h1_parser *p, const struct mg_h1_msg *m)
{
    static char method[70000], target[70000];
    static struct mg_h1_msg again;
    struct mg_h1_parser q;
    struct mg_h1_limits big;
    struct mg_buf out;

    if (m->minor != 1)
        return;   /* the encoders write HTTP/1.1 only */
    (void)p;
    memcpy(method, m->method, m->method_len);
    method[m->method_len] = 0;
    memcpy(target, m->target, m->target_len);
    target[m->target_len] = 0;
    mg_buf_init(&out, 1 << 20);
    fz_check(mg_h1_put_request_line(&out, method, target) == 0, "encode request line");
    for (unsigned i = 0; i < m->nheaders; i++)
        fz_check(mg_h1_put_header_n(&out, m->headers[i].name, m->headers[i].name_len,
                                    m->headers[i].value, m->headers[i].value_len) == 0,
                 "encode a parsed field");
    fz_check(mg_buf_append(&out, "\r\n", 2) == 0, "encode blank line");

    mg_h1_limits_default(&big);
    big.max_request_line = 1 << 20;
    big.max_head = 1 << 20;
    big.max_headers = MG_H1_MAX_HEADERS;
    mg_h1_parser_init(&q, MG_H1_REQUEST, &big);
    int rc = mg_h1_parse_head(&q, mg_buf_head(&out), out.len, &again);
    fz_check(rc > 0 && (size_t)rc == out.len, "re-encoded request parses");
    fz_check(again.method_len == m->method_len &&
                 memcmp(again.method, m->method, m->method_len) == 0, "same method");
    fz_check(again.target_len == m->target_len &&
                 memcmp(again.target, m->target, m->target_len) == 0, "same target");
    fz_check(again.nheaders == m->nheaders, "same field count");
    for (unsigned i = 0; i < m->nheaders; i++) {
        const struct mg_h1_header *a = &again.headers[i], *b = &m->headers[i];
        fz_check(a->name_len == b->name_len && memcmp(a->name, b->name, a->name_len) == 0,
                 "same field name");
        fz_check(a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0,
                 "same field value");
    }
    fz_check(again.framing == m->framing && again.content_length == m->content_length &&
                 again.keep_alive == m->keep_alive && again.upgrade == m->upgrade &&
                 again.expect_continue == m->expect_continue &&
                 again.head_request == m->head_request, "same derived facts");
    mg_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_run(MG_H1_REQUEST, data, size, round_trip);
}
