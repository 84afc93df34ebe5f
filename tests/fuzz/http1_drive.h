/* Shared by the HTTP/1 fuzz targets: runs the codec over an input the way a
 * connection does (head, body, next pipelined message) with the bytes
 * arriving in pieces, records everything it parsed as a trace, and checks
 * the codec's promises on the way, abort()ing when one is broken. Two runs
 * over the same bytes delivered differently must leave identical traces. */
#ifndef MG_FUZZ_HTTP1_DRIVE_H
#define MG_FUZZ_HTTP1_DRIVE_H

#include "lib/http1.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fz_trace {
    unsigned char buf[1 << 15];
    size_t len;
    uint64_t body_hash;   /* FNV-1a over all body bytes, in order */
    uint64_t body_len;
};

static void fz_put(struct fz_trace *t, const void *p, size_t n)
{
    if (n > sizeof t->buf - t->len)
        n = sizeof t->buf - t->len;
    memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static void fz_put_u64(struct fz_trace *t, uint64_t v)
{
    fz_put(t, &v, sizeof v);
}

static void fz_body(struct fz_trace *t, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        t->body_hash ^= (unsigned char)p[i];
        t->body_hash *= 0x100000001b3ull;
    }
    t->body_len += n;
}

static void fz_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "http1 fuzz: broken promise: %s\n", what);
        abort();
    }
}

static int fz_status_ok(enum mg_h1_kind kind, int st, int head)
{
    if (kind == MG_H1_RESPONSE)
        return st == 502;
    if (head)
        return st == 400 || st == 414 || st == 417 || st == 431 || st == 413 ||
               st == 501 || st == 505;
    return st == 400 || st == 413 || st == 431;
}

/* The promises about a parsed head. */
static void fz_check_msg(const struct mg_h1_parser *p, const char *buf, size_t avail,
                         int rc, const struct mg_h1_msg *m)
{
    fz_check((size_t)rc == m->head_len && m->head_len <= avail, "head_len");
    fz_check(m->head_len <= p->limits.max_head, "max_head");
    fz_check(m->head_len >= 4 && memcmp(buf + m->head_len - 4, "\r\n\r\n", 4) == 0,
             "head ends with CRLF CRLF");
    fz_check(m->nheaders <= p->limits.max_headers, "max_headers");
    fz_check(m->minor == 0 || m->minor == 1, "minor");
    for (unsigned i = 0; i < m->nheaders; i++) {
        const struct mg_h1_header *h = &m->headers[i];
        fz_check(h->name >= buf && h->name + h->name_len <= buf + m->head_len, "name inside");
        fz_check(h->value >= buf && h->value + h->value_len <= buf + m->head_len, "value inside");
        fz_check(mg_h1_is_token(h->name, h->name_len), "name is a token");
        for (uint32_t k = 0; k < h->value_len; k++) {
            unsigned char c = (unsigned char)h->value[k];
            fz_check(c == '\t' || (c >= 0x20 && c != 0x7f), "value characters");
        }
        if (h->value_len) {
            fz_check(h->value[0] != ' ' && h->value[0] != '\t', "value trimmed left");
            fz_check(h->value[h->value_len - 1] != ' ' && h->value[h->value_len - 1] != '\t',
                     "value trimmed right");
        }
    }
    if (p->kind == MG_H1_REQUEST) {
        fz_check(m->method_len > 0 && mg_h1_is_token(m->method, m->method_len), "method");
        fz_check(m->target_len > 0, "target");
        for (uint32_t k = 0; k < m->target_len; k++) {
            unsigned char c = (unsigned char)m->target[k];
            fz_check(c > 0x20 && c < 0x7f && c != '#', "target characters");
        }
        fz_check(m->framing != MG_H1_BODY_EOF, "no EOF framing for requests");
        int te = mg_h1_find_header(m, "transfer-encoding", 0) >= 0;
        int cl = mg_h1_find_header(m, "content-length", 0) >= 0;
        fz_check(!(te && cl), "CL and TE both accepted");
        fz_check(!te || m->minor == 1, "TE in HTTP/1.0 accepted");
        int host = mg_h1_find_header(m, "host", 0);
        fz_check(host < 0 || mg_h1_find_header(m, "host", (unsigned)host + 1) < 0,
                 "two Host accepted");
        fz_check(m->minor == 0 || host >= 0, "HTTP/1.1 without Host accepted");
        if (p->limits.max_body && m->framing == MG_H1_BODY_LENGTH)
            fz_check(m->content_length <= p->limits.max_body, "max_body");
    } else {
        fz_check(m->status >= 100 && m->status <= 599, "status range");
        if (m->status < 200 || m->status == 204 || m->status == 304 || p->request_was_head)
            fz_check(m->framing == MG_H1_BODY_NONE, "bodiless response framing");
        if (m->framing == MG_H1_BODY_EOF)
            fz_check(!m->keep_alive, "EOF framing keeps alive");
    }
    if (m->framing == MG_H1_BODY_LENGTH)
        fz_check(m->content_length > 0 && m->content_length <= (uint64_t)INT64_MAX, "CL range");
}

static void fz_trace_msg(struct fz_trace *t, const struct mg_h1_msg *m)
{
    fz_put_u64(t, m->head_len);
    fz_put(t, m->method ? m->method : "", m->method_len);
    fz_put(t, m->target ? m->target : "", m->target_len);
    fz_put_u64(t, (uint64_t)m->status);
    fz_put_u64(t, (uint64_t)m->minor);
    fz_put_u64(t, m->nheaders);
    fz_put_u64(t, (uint64_t)m->framing);
    fz_put_u64(t, m->content_length);
    fz_put_u64(t, (uint64_t)(m->keep_alive | m->expect_continue << 1 | m->upgrade << 2 |
                             m->head_request << 3));
    for (unsigned i = 0; i < m->nheaders; i++) {
        fz_put(t, m->headers[i].name, m->headers[i].name_len);
        fz_put(t, ":", 1);
        fz_put(t, m->headers[i].value, m->headers[i].value_len);
    }
}

/* Runs over data[0..size) with `first` bytes available at once, then `step`
 * more at a time. Calls on_msg (may be NULL) for every complete head. */
typedef void (*fz_msg_cb)(const struct mg_h1_parser *p, const struct mg_h1_msg *m);

static void fz_drive(enum mg_h1_kind kind, const struct mg_h1_limits *lim, int was_head,
                     const char *data, size_t size, size_t first, size_t step,
                     struct fz_trace *t, fz_msg_cb on_msg)
{
    static struct mg_h1_msg msg;   /* big: keep it off the stack */
    struct mg_h1_parser p;
    struct mg_h1_body b;
    size_t avail = first < size ? first : size, pos = 0;
    if (step == 0)
        step = 1;
    memset(t, 0, sizeof *t);
    t->body_hash = 0xcbf29ce484222325ull;
    mg_h1_parser_init(&p, kind, lim);
    p.request_was_head = was_head ? 1 : 0;

    for (int nmsg = 0; nmsg < 64; nmsg++) {
        int rc;
        mg_h1_parser_reset(&p);
        for (;;) {
            size_t before = p.scanned;
            rc = mg_h1_parse_head(&p, data + pos, avail - pos, &msg);
            if (rc == 0)
                fz_check(p.scanned >= before && p.scanned <= avail - pos, "scan position");
            if (rc != 0 || avail == size)
                break;
            avail = avail + step < size ? avail + step : size;
        }
        if (rc == 0) {
            fz_put(t, pos == size ? "END" : "MORE", pos == size ? 3 : 4);
            return;
        }
        if (rc < 0) {
            fz_check(rc == -1 && p.err.reason != NULL, "error has a reason");
            fz_check(fz_status_ok(kind, p.err.status, 1), "head error status");
            fz_check(p.err.offset <= avail - pos, "error offset");
            fz_put(t, "HERR", 4);
            fz_put_u64(t, (uint64_t)p.err.status);
            fz_put(t, p.err.reason, strlen(p.err.reason));
            fz_put_u64(t, p.err.offset);
            return;
        }
        fz_check_msg(&p, data + pos, avail - pos, rc, &msg);
        fz_trace_msg(t, &msg);
        if (on_msg)
            on_msg(&p, &msg);
        pos += (size_t)rc;

        mg_h1_body_init(&b, &msg, lim);
        while (!b.done) {
            if (pos == avail) {
                if (avail == size) {
                    int e = mg_h1_body_eof(&b);
                    fz_check((e == 0) == (msg.framing == MG_H1_BODY_EOF), "body_eof");
                    fz_put(t, e == 0 ? "EOF" : "CUT", 3);
                    fz_put_u64(t, b.total);
                    return;
                }
                avail = avail + step < size ? avail + step : size;
                continue;
            }
            const char *d;
            size_t dl;
            long n = mg_h1_body_decode(&b, data + pos, avail - pos, &d, &dl);
            if (n < 0) {
                fz_check(n == -1 && b.err.reason != NULL, "body error has a reason");
                fz_check(fz_status_ok(kind, b.err.status, 0), "body error status");
                fz_check(dl == 0, "no data with an error");
                fz_put(t, "BERR", 4);
                fz_put_u64(t, (uint64_t)b.err.status);
                fz_put(t, b.err.reason, strlen(b.err.reason));
                fz_put_u64(t, b.total);
                return;
            }
            fz_check((size_t)n <= avail - pos, "consumed past the input");
            fz_check(n > 0 || b.done, "no progress");
            fz_check(dl == 0 || (d >= data + pos && d + dl <= data + pos + (size_t)n),
                     "data span inside the consumed bytes");
            fz_body(t, d, dl);
            pos += (size_t)n;
        }
        if (msg.framing == MG_H1_BODY_LENGTH)
            fz_check(b.total == msg.content_length, "Content-Length body length");
        if (lim->max_body)
            fz_check(b.total <= lim->max_body, "body over max_body");
        fz_put(t, "BODY", 4);
        fz_put_u64(t, b.total);
    }
    fz_put(t, "CAP", 3);
}

/* Limits chosen by the fuzzer: the defaults, or small ones that reach every
 * limit with small inputs. */
static void fz_limits(int small, struct mg_h1_limits *l)
{
    mg_h1_limits_default(l);
    if (small) {
        l->max_request_line = 40;
        l->max_head = 300;
        l->max_headers = 6;
        l->max_body = 64;
        l->max_chunk_ext = 12;
        l->max_trailer = 40;
    }
}

/* Input layout: byte 0 flags (bit 0 small limits, bit 1 request was HEAD),
 * bytes 1-2 the split point, byte 3 the step, then the HTTP bytes. Runs it
 * whole and split, and aborts when the traces differ. */
static int fz_run(enum mg_h1_kind kind, const uint8_t *data, size_t size, fz_msg_cb on_msg)
{
    static struct fz_trace whole, split;
    if (size < 4)
        return 0;
    struct mg_h1_limits lim;
    fz_limits(data[0] & 1, &lim);
    int was_head = (data[0] >> 1) & 1;
    const char *in = (const char *)data + 4;
    size_t n = size - 4;
    size_t k = ((size_t)data[1] << 8 | data[2]) % (n + 1);
    size_t step = (size_t)(data[3] & 15) + 1;
    if (data[3] & 16)
        step = n;   /* the rest at once: exactly two pieces */

    fz_drive(kind, &lim, was_head, in, n, n, n, &whole, on_msg);
    fz_drive(kind, &lim, was_head, in, n, k, step, &split, NULL);
    if (whole.len != split.len || memcmp(whole.buf, split.buf, whole.len) != 0 ||
        whole.body_hash != split.body_hash || whole.body_len != split.body_len) {
        fprintf(stderr, "http1 fuzz: split at %zu step %zu differs from the whole input\n", k,
                step);
        abort();
    }
    return 0;
}

#endif
