/* Benchmark of lib/http1.c on the traffic the sidecar sees: OpenAI-style
 * requests (chat completions streaming and not, with JSON bodies from 60 B to
 * 16 KiB, embeddings, model listings, a chunked upload) with the headers the
 * openai SDK and a mesh add, and SSE chunked responses through the body
 * decoder.
 *
 * It reports requests/s and MB/s for heads alone and for head + body
 * framing, and events/s and MB/s for SSE bodies. For scale, it also times a
 * naive parser written here: a byte-at-a-time state machine with the same
 * checks on the same inputs (what a first parser usually looks like). That
 * is a reference point, not a peer: the peer comparison against HAProxy is
 * end to end, in the proxy benchmark.
 *
 *   build/bench/http1_parse [seconds per round, default 0.1]
 *
 * Each of the six measurements runs 7 rounds, alternating with the others,
 * and the best round counts (about 4.5 s in all).
 *
 * Every parse is checked; a failure aborts rather than timing an error path. */
#include "lib/http1.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "http1_parse: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------------------ */
/* Inputs. */

#define MAXREQ 16

struct input {
    char *buf;
    size_t len;
    size_t head_len;
};

static struct input reqs[MAXREQ];
static int nreqs;
static unsigned max_fields;
static struct input sse;
static int sse_events;

static char *json_body(size_t target, int stream)
{
    static const char words[] = "the quick brown fox jumps over the lazy dog ";
    char *b = malloc(target + 256);
    if (!b)
        die("out of memory");
    size_t n = (size_t)sprintf(b, "{\"model\":\"llama-3-8b-instruct\",\"stream\":%s,"
                                  "\"max_tokens\":512,\"temperature\":0.7,\"messages\":["
                                  "{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
                                  "{\"role\":\"user\",\"content\":\"",
                               stream ? "true" : "false");
    for (size_t i = 0; n < target; i++)
        b[n++] = words[i % (sizeof words - 1)];
    n += (size_t)sprintf(b + n, "\"}]}");
    b[n] = 0;
    return b;
}

static void add(char *buf, size_t len)
{
    struct mg_h1_parser p;
    static struct mg_h1_msg m;
    if (nreqs == MAXREQ)
        die("too many inputs");
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    int rc = mg_h1_parse_head(&p, buf, len, &m);
    if (rc <= 0)
        die("an input does not parse");
    if (m.nheaders > max_fields)
        max_fields = m.nheaders;
    reqs[nreqs].buf = buf;
    reqs[nreqs].len = len;
    reqs[nreqs].head_len = (size_t)rc;
    nreqs++;
}

#define SDK_HEADERS                                                              \
    "Accept: application/json\r\n"                                               \
    "Accept-Encoding: gzip, deflate\r\n"                                         \
    "Authorization: Bearer sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3\r\n" \
    "Connection: keep-alive\r\n"                                                 \
    "Content-Type: application/json\r\n"                                         \
    "User-Agent: OpenAI/Python 1.51.0\r\n"                                       \
    "X-Stainless-Arch: x64\r\n"                                                  \
    "X-Stainless-Async: false\r\n"                                               \
    "X-Stainless-Lang: python\r\n"                                               \
    "X-Stainless-OS: Linux\r\n"                                                  \
    "X-Stainless-Package-Version: 1.51.0\r\n"                                    \
    "X-Stainless-Runtime: CPython\r\n"                                           \
    "X-Stainless-Runtime-Version: 3.11.9\r\n"                                    \
    "x-stainless-retry-count: 0\r\n"

static void post(const char *path, const char *body, const char *extra)
{
    size_t bl = strlen(body);
    char *b = malloc(bl + 2048);
    if (!b)
        die("out of memory");
    int n = sprintf(b,
                    "POST %s HTTP/1.1\r\n"
                    "Host: llama-3-8b-instruct.models.svc.cluster.local:8080\r\n" SDK_HEADERS
                    "x-request-id: 5b0e3c1a-8d2f-4e6b-9a7c-1f2e3d4c5b6a\r\n"
                    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
                    "%sContent-Length: %zu\r\n\r\n%s",
                    path, extra, bl, body);
    add(b, (size_t)n);
}

static void make_inputs(void)
{
    static const size_t sizes[] = { 60, 400, 1500, 4000, 16000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *body = json_body(sizes[i], (int)(i & 1));
        post("/v1/chat/completions", body, i == 2 ? "x-session-id: 42\r\n" : "");
        free(body);
    }
    post("/v1/embeddings", "{\"model\":\"bge-small-en\",\"input\":[\"The food was delicious\","
                           "\"and the waiter was friendly.\"]}", "");
    post("/v1/completions", "{\"model\":\"llama-3-8b-instruct\",\"prompt\":\"Say this is a test\","
                            "\"max_tokens\":7,\"stream\":true}", "x-modelgate-version: v2\r\n");

    char *g = malloc(1024);
    if (!g)
        die("out of memory");
    int n = sprintf(g, "GET /v1/models HTTP/1.1\r\nHost: localhost:8080\r\n"
                       "Accept: application/json\r\nAuthorization: Bearer sk-local\r\n"
                       "User-Agent: OpenAI/Python 1.51.0\r\nConnection: keep-alive\r\n\r\n");
    add(g, (size_t)n);

    /* A chunked upload: the same JSON sent in 1 KiB chunks. */
    char *body = json_body(6000, 1);
    size_t bl = strlen(body);
    char *c = malloc(bl + 4096);
    if (!c)
        die("out of memory");
    size_t k = (size_t)sprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: a:8080\r\n" SDK_HEADERS
                                  "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t off = 0; off < bl; off += 1024) {
        size_t len = bl - off < 1024 ? bl - off : 1024;
        k += mg_h1_chunk_header(c + k, len);
        memcpy(c + k, body + off, len);
        k += len;
        memcpy(c + k, "\r\n", 2);
        k += 2;
    }
    memcpy(c + k, mg_h1_last_chunk, MG_H1_LAST_CHUNK_LEN);
    k += MG_H1_LAST_CHUNK_LEN;
    add(c, k);
    free(body);

    /* An SSE stream as vLLM sends it: one chunk per event, 400 tokens. */
    size_t cap = 400 * 400 + 4096;
    char *s = malloc(cap);
    if (!s)
        die("out of memory");
    size_t sl = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\ndate: Mon, 23 Nov 2026 12:00:00 GMT\r\n"
                                   "server: uvicorn\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                                   "x-request-id: 5b0e3c1a-8d2f-4e6b-9a7c-1f2e3d4c5b6a\r\n"
                                   "transfer-encoding: chunked\r\n\r\n");
    sse.head_len = sl;
    for (int i = 0; i < 400; i++) {
        char ev[512];
        int el = sprintf(ev, "data: {\"id\":\"chatcmpl-8f3a\",\"object\":\"chat.completion.chunk\","
                             "\"created\":1700000000,\"model\":\"llama-3-8b-instruct\",\"choices\":"
                             "[{\"index\":0,\"delta\":{\"content\":\" tok%d\"},\"finish_reason\":null}]}\n\n",
                         i);
        sl += mg_h1_chunk_header(s + sl, (size_t)el);
        memcpy(s + sl, ev, (size_t)el);
        sl += (size_t)el;
        memcpy(s + sl, "\r\n", 2);
        sl += 2;
    }
    memcpy(s + sl, "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n", 24);
    sl += 24;
    sse.buf = s;
    sse.len = sl;
    sse_events = 401;
}

/* ------------------------------------------------------------------------ */
/* The naive reference: a byte-at-a-time state machine with the same checks
 * (token method, target characters, version, field names and values, CRLF
 * only, Content-Length and Transfer-Encoding recognised). */

struct naive_msg {
    size_t head_len;
    int chunked;
    uint64_t cl;
    unsigned nheaders;
};

/* Token characters, filled at start: the reference gets a lookup table too. */
static unsigned char naive_tok[256];

static void naive_init(void)
{
    for (int c = 0; c < 256; c++)
        naive_tok[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

#define naive_tchar(c) naive_tok[(unsigned char)(c)]

static int naive_ieq(const char *a, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((a[i] | 0x20) != lit[i])
            return 0;
    return 1;
}

static int naive_parse(const char *buf, size_t len, struct naive_msg *m)
{
    enum { METHOD, TARGET, VERSION, VERSION_LF, LINE, NAME, OWS, VALUE, VALUE_LF, END_LF } st = METHOD;
    size_t name = 0, name_len = 0, value = 0, vstart = 0;
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        switch (st) {
        case METHOD:
            if (c == ' ' && i > 0)
                st = TARGET, vstart = i + 1;
            else if (!naive_tchar(c))
                return -1;
            break;
        case TARGET:
            if (c == ' ' && i > vstart)
                st = VERSION, vstart = i + 1;
            else if (c <= 0x20 || c >= 0x7f || c == '#')
                return -1;
            break;
        case VERSION:
            if (c == '\r') {
                if (i - vstart != 8 || memcmp(buf + vstart, "HTTP/1.", 7) != 0)
                    return -1;
                st = VERSION_LF;
            }
            break;
        case VERSION_LF:
            if (c != '\n')
                return -1;
            st = LINE;
            break;
        case LINE:
            if (c == '\r') {
                st = END_LF;
            } else if (naive_tchar(c)) {
                name = i;
                st = NAME;
            } else {
                return -1;
            }
            break;
        case NAME:
            if (c == ':') {
                name_len = i - name;
                st = OWS;
            } else if (!naive_tchar(c)) {
                return -1;
            }
            break;
        case OWS:
            if (c == ' ' || c == '\t')
                break;
            value = i;
            st = VALUE;
            /* fall through */
        case VALUE:
            if (c == '\r') {
                size_t e = i;
                while (e > value && (buf[e - 1] == ' ' || buf[e - 1] == '\t'))
                    e--;
                if (naive_ieq(buf + name, name_len, "content-length")) {
                    uint64_t v = 0;
                    for (size_t k = value; k < e; k++) {
                        if (buf[k] < '0' || buf[k] > '9')
                            return -1;
                        v = v * 10 + (uint64_t)(buf[k] - '0');
                    }
                    m->cl = v;
                } else if (naive_ieq(buf + name, name_len, "transfer-encoding")) {
                    m->chunked = naive_ieq(buf + value, e - value, "chunked");
                }
                m->nheaders++;
                st = VALUE_LF;
            } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return -1;
            }
            break;
        case VALUE_LF:
            if (c != '\n')
                return -1;
            st = LINE;
            break;
        case END_LF:
            if (c != '\n')
                return -1;
            m->head_len = i + 1;
            return 0;
        }
    }
    return 1;   /* need more */
}

/* ------------------------------------------------------------------------ */
/* Measurements. */

/* Each measurement: ROUNDS rounds of `seconds`, alternating with the others. */
#define ROUNDS 7
static double seconds = 0.1;
static volatile uint64_t sink;

struct figures {
    double msgs_per_s, mb_per_s;
};

/* Heads only: every request head in turn. */
static struct figures bench_heads(int naive)
{
    struct mg_h1_parser p;
    static struct mg_h1_msg m;
    struct naive_msg nm;
    uint64_t msgs = 0, bytes = 0;
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    double t0 = now(), t;
    do {
        for (int r = 0; r < 1000; r++) {
            for (int i = 0; i < nreqs; i++) {
                const struct input *in = &reqs[i];
                if (naive) {
                    if (naive_parse(in->buf, in->len, &nm) != 0 || nm.head_len != in->head_len)
                        die("naive head parse failed");
                    sink += nm.nheaders;
                } else {
                    mg_h1_parser_reset(&p);
                    if (mg_h1_parse_head(&p, in->buf, in->len, &m) != (int)in->head_len)
                        die("head parse failed");
                    sink += m.nheaders;
                }
                bytes += in->head_len;
            }
            msgs += (uint64_t)nreqs;
        }
        t = now() - t0;
    } while (t < seconds);
    struct figures f = { (double)msgs / t, (double)bytes / t / 1e6 };
    return f;
}

/* The naive chunked decoder, with the same contract as mg_h1_body_decode
 * (resumable, one data span per call): framing byte by byte through a
 * switch, data handed over in bulk, returning right after each span. */
struct naive_chunk {
    enum { N_SIZE, N_SIZE_LF, N_DATA, N_DATA_CR, N_DATA_LF, N_END_CR, N_END_LF, N_DONE } st;
    uint64_t size;
    int digits;
};

static long naive_chunk_decode(struct naive_chunk *c, const char *in, size_t len,
                               const char **data, size_t *data_len)
{
    size_t i = 0;
    *data = NULL;
    *data_len = 0;
    while (i < len && c->st != N_DONE) {
        char ch = in[i];
        switch (c->st) {
        case N_SIZE: {
            int d = ch >= '0' && ch <= '9' ? ch - '0'
                  : (ch | 0x20) >= 'a' && (ch | 0x20) <= 'f' ? (ch | 0x20) - 'a' + 10 : -1;
            if (ch == '\r' && c->digits > 0) {
                c->st = N_SIZE_LF;
            } else {
                if (d < 0 || ++c->digits > 15)
                    return -1;
                c->size = c->size << 4 | (uint64_t)d;
            }
            break;
        }
        case N_SIZE_LF:
            if (ch != '\n')
                return -1;
            c->st = c->size ? N_DATA : N_END_CR;
            break;
        case N_DATA: {
            size_t n = len - i < c->size ? len - i : (size_t)c->size;
            *data = in + i;
            *data_len = n;
            c->size -= n;
            if (c->size == 0)
                c->st = N_DATA_CR;
            return (long)(i + n);
        }
        case N_DATA_CR:
            if (ch != '\r')
                return -1;
            c->st = N_DATA_LF;
            break;
        case N_DATA_LF:
            if (ch != '\n')
                return -1;
            c->st = N_SIZE;
            c->digits = 0;
            break;
        case N_END_CR:
            if (ch != '\r')
                return -1;
            c->st = N_END_LF;
            break;
        case N_END_LF:
            if (ch != '\n')
                return -1;
            c->st = N_DONE;
            break;
        case N_DONE:
            break;
        }
        i++;
    }
    return (long)i;
}

/* Runs a naive chunked body to its end; returns the bytes consumed. */
static size_t naive_chunked(const char *in, size_t len, int *spans)
{
    struct naive_chunk c = { N_SIZE, 0, 0 };
    size_t pos = 0;
    *spans = 0;
    while (c.st != N_DONE) {
        const char *d;
        size_t dl;
        long n = naive_chunk_decode(&c, in + pos, len - pos, &d, &dl);
        if (n <= 0)
            die("naive chunked decode failed");
        *spans += dl != 0;
        sink += dl;
        pos += (size_t)n;
    }
    return pos;
}

/* Head and body framing: what a proxy does with each request. */
static struct figures bench_full(int naive)
{
    struct mg_h1_parser p;
    static struct mg_h1_msg m;
    struct mg_h1_body b;
    struct naive_msg nm;
    uint64_t msgs = 0, bytes = 0;
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    double t0 = now(), t;
    do {
        for (int r = 0; r < 200; r++) {
            for (int i = 0; i < nreqs; i++) {
                const struct input *in = &reqs[i];
                size_t pos;
                if (naive) {
                    if (naive_parse(in->buf, in->len, &nm) != 0)
                        die("naive head parse failed");
                    pos = nm.head_len;
                    if (nm.chunked) {
                        int spans;
                        if (pos + naive_chunked(in->buf + pos, in->len - pos, &spans) != in->len)
                            die("naive chunked failed");
                    } else {
                        if (nm.cl != in->len - pos)
                            die("naive length mismatch");
                        sink += nm.cl;
                    }
                } else {
                    mg_h1_parser_reset(&p);
                    int rc = mg_h1_parse_head(&p, in->buf, in->len, &m);
                    if (rc <= 0)
                        die("head parse failed");
                    pos = (size_t)rc;
                    mg_h1_body_init(&b, &m, &p.limits);
                    while (!b.done) {
                        const char *d;
                        size_t dl;
                        long n = mg_h1_body_decode(&b, in->buf + pos, in->len - pos, &d, &dl);
                        if (n <= 0 && !b.done)
                            die("body decode failed");
                        sink += dl;
                        pos += (size_t)n;
                    }
                    if (pos != in->len)
                        die("body length mismatch");
                }
                bytes += in->len;
            }
            msgs += (uint64_t)nreqs;
        }
        t = now() - t0;
    } while (t < seconds);
    struct figures f = { (double)msgs / t, (double)bytes / t / 1e6 };
    return f;
}

/* An SSE response body: every event through the body decoder. The head is
 * parsed once, outside the timing (the naive parser reads requests only). */
static struct figures bench_sse(int naive)
{
    struct mg_h1_parser p;
    static struct mg_h1_msg m;
    struct mg_h1_body b;
    uint64_t events = 0, bytes = 0;
    const char *body = sse.buf + sse.head_len;
    size_t blen = sse.len - sse.head_len;
    mg_h1_parser_init(&p, MG_H1_RESPONSE, NULL);
    if (mg_h1_parse_head(&p, sse.buf, sse.len, &m) != (int)sse.head_len ||
        m.framing != MG_H1_BODY_CHUNKED)
        die("sse head parse failed");
    double t0 = now(), t;
    do {
        for (int r = 0; r < 20; r++) {
            int spans = 0;
            size_t pos = 0;
            if (naive) {
                pos = naive_chunked(body, blen, &spans);
            } else {
                mg_h1_body_init(&b, &m, &p.limits);
                while (!b.done) {
                    const char *d;
                    size_t dl;
                    long n = mg_h1_body_decode(&b, body + pos, blen - pos, &d, &dl);
                    if (n <= 0)
                        die("sse decode failed");
                    spans += dl != 0;
                    sink += dl;
                    pos += (size_t)n;
                }
            }
            if (spans != sse_events || pos != blen)
                die("sse event count mismatch");
            events += (uint64_t)sse_events;
            bytes += blen;
        }
        t = now() - t0;
    } while (t < seconds);
    struct figures f = { (double)events / t, (double)bytes / t / 1e6 };
    return f;
}

static void best(struct figures *b, struct figures f)
{
    if (f.msgs_per_s > b->msgs_per_s)
        *b = f;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        seconds = atof(argv[1]);
        if (seconds <= 0 || seconds > 2)
            die("seconds per round must be in (0, 2]");
    }
    naive_init();
    make_inputs();
    size_t head_bytes = 0, all_bytes = 0;
    for (int i = 0; i < nreqs; i++) {
        head_bytes += reqs[i].head_len;
        all_bytes += reqs[i].len;
    }
    printf("inputs: %d requests, heads %zu B on average (%zu fields max), messages %zu B on average;\n"
           "        SSE response body of %d events, %zu B\n",
           nreqs, head_bytes / (size_t)nreqs, (size_t)max_fields, all_bytes / (size_t)nreqs, sse_events,
           sse.len - sse.head_len);

    /* Short alternating rounds, best of each: this machine may be shared,
     * and noise only ever slows a round down. */
    struct figures h = { 0, 0 }, hn = h, f = h, fn = h, s = h, sn = h;
    for (int r = 0; r < ROUNDS; r++) {
        best(&h, bench_heads(0));
        best(&hn, bench_heads(1));
        best(&f, bench_full(0));
        best(&fn, bench_full(1));
        best(&s, bench_sse(0));
        best(&sn, bench_sse(1));
    }
    printf("%-28s %14s %10s %16s %10s %8s\n", "measurement", "modelgate", "MB/s", "naive reference",
           "MB/s", "ratio");
    printf("%-28s %10.0f r/s %10.0f %12.0f r/s %10.0f %7.2fx\n", "request heads", h.msgs_per_s,
           h.mb_per_s, hn.msgs_per_s, hn.mb_per_s, h.msgs_per_s / hn.msgs_per_s);
    printf("%-28s %10.0f r/s %10.0f %12.0f r/s %10.0f %7.2fx\n", "requests, head + body framing",
           f.msgs_per_s, f.mb_per_s, fn.msgs_per_s, fn.mb_per_s, f.msgs_per_s / fn.msgs_per_s);
    printf("%-28s %10.0f e/s %10.0f %12.0f e/s %10.0f %7.2fx\n", "SSE response, events",
           s.msgs_per_s, s.mb_per_s, sn.msgs_per_s, sn.mb_per_s, s.msgs_per_s / sn.msgs_per_s);
    printf("(r/s: requests per second; e/s: SSE events per second, body only; one core,\n"
           " best of %d alternating rounds of %.2f s each)\n", ROUNDS, seconds);
    return sink == 42 ? 1 : 0;
}
