/* The strict incremental HTTP/1.1 codec: see http1.h.
 *
 * Heads are read in two steps. The scan (mg_h1_parse_head until the blank
 * line) looks only at line ends, with memchr, and keeps its position in the
 * parser so bytes are never scanned twice; it enforces the size limits, bare
 * LF, and validates the start line as soon as that line ends. Once the blank
 * line is in, one pass over the field lines validates them against a class
 * table and derives framing, keep-alive and the flags. That pass needs no
 * bounds checks in its inner loops: every line is known to end with CRLF, and
 * CR belongs to no class, so each loop stops on it at the latest.
 *
 * Bodies are framed by a byte-level state machine for the chunked framing
 * and by plain arithmetic for everything else. */
#include "http1.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------------------ */
/* Character classes. */

enum {
    C_TOKEN = 1,    /* tchar (RFC 9110 5.6.2) */
    C_VALUE = 2,    /* field-vchar, SP, HTAB, obs-text: field values, reasons */
    C_TARGET = 4,   /* VCHAR but "#": request-target */
    C_HOST = 8,     /* reg-name, IP-literal and port characters: Host */
    C_HEX = 16,     /* HEXDIG */
    C_QDTEXT = 32,  /* qdtext (RFC 9110 5.6.4) */
    C_DIGIT = 64,   /* DIGIT */
};

/* Generated from the RFC 9110 grammar; see the enum above. */
static const unsigned char ct[256] = {
      0,   0,   0,   0,   0,   0,   0,   0,   0,  34,   0,   0,   0,   0,   0,   0,  /* 0x00 */
      0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,  /* 0x10 */
     34,  47,   6,  35,  47,  47,  47,  47,  46,  46,  47,  47,  46,  47,  47,  38,  /* 0x20 */
    127, 127, 127, 127, 127, 127, 127, 127, 127, 127,  46,  46,  38,  46,  38,  38,  /* 0x30 */
     38,  63,  63,  63,  63,  63,  63,  47,  47,  47,  47,  47,  47,  47,  47,  47,  /* 0x40 */
     47,  47,  47,  47,  47,  47,  47,  47,  47,  47,  47,  46,   6,  46,  39,  47,  /* 0x50 */
     39,  63,  63,  63,  63,  63,  63,  47,  47,  47,  47,  47,  47,  47,  47,  47,  /* 0x60 */
     47,  47,  47,  47,  47,  47,  47,  47,  47,  47,  47,  38,  39,  38,  47,   0,  /* 0x70 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0x80 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0x90 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0xa0 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0xb0 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0xc0 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0xd0 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0xe0 */
     34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  34,  /* 0xf0 */
};

#define IS(c, cls) (ct[(unsigned char)(c)] & (cls))
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

/* Case-insensitive compare of n bytes of a token against a lowercase literal.
 * Setting bit 0x20 lowercases a letter and leaves every other token
 * character that could match a literal's character unchanged. */
static inline int eq_lower(const char *s, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] | 0x20) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Limits. */

void mg_h1_limits_default(struct mg_h1_limits *l)
{
    l->max_request_line = 8 * 1024;
    l->max_head = 32 * 1024;
    l->max_headers = 100;
    l->max_body = 0;
    l->max_chunk_ext = 256;
    l->max_trailer = 8 * 1024;
}

/* Zero means "the default"; the head must fit offsets in 32 bits and its
 * length in the int mg_h1_parse_head returns. */
static void limits_fix(struct mg_h1_limits *l)
{
    struct mg_h1_limits d;
    mg_h1_limits_default(&d);
    if (l->max_request_line == 0)
        l->max_request_line = d.max_request_line;
    if (l->max_head == 0)
        l->max_head = d.max_head;
    if (l->max_head > (size_t)INT_MAX)
        l->max_head = (size_t)INT_MAX;
    if (l->max_headers == 0)
        l->max_headers = d.max_headers;
    if (l->max_headers > MG_H1_MAX_HEADERS)
        l->max_headers = MG_H1_MAX_HEADERS;
    if (l->max_chunk_ext == 0)
        l->max_chunk_ext = d.max_chunk_ext;
    if (l->max_trailer == 0)
        l->max_trailer = d.max_trailer;
}

/* ------------------------------------------------------------------------ */
/* Head parser. */

enum { SC_LEADING, SC_START, SC_FIELDS, SC_DONE, SC_ERROR };

void mg_h1_parser_init(struct mg_h1_parser *p, enum mg_h1_kind kind,
                       const struct mg_h1_limits *limits)
{
    memset(p, 0, sizeof *p);
    p->kind = kind;
    if (limits)
        p->limits = *limits;
    else
        mg_h1_limits_default(&p->limits);
    limits_fix(&p->limits);
    mg_h1_parser_reset(p);
}

void mg_h1_parser_reset(struct mg_h1_parser *p)
{
    p->state = p->kind == MG_H1_REQUEST ? SC_LEADING : SC_START;
    p->scanned = 0;
    p->line_start = 0;
    p->lines = 0;
    p->sl_start = p->sl_len = p->sl_target = p->sl_tlen = p->sl_mlen = 0;
    p->sl_status = 0;
    p->sl_minor = 0;
    p->err.status = 0;
    p->err.reason = NULL;
    p->err.offset = 0;
}

/* Records an error. A response the proxy cannot use is the upstream's fault:
 * it is answered with 502 whatever the shape. */
static int fail(struct mg_h1_parser *p, int status, const char *reason, size_t off)
{
    p->err.status = p->kind == MG_H1_RESPONSE ? 502 : status;
    p->err.reason = reason;
    p->err.offset = off;
    p->state = SC_ERROR;
    return -1;
}

/* "HTTP/" DIGIT "." DIGIT at s (8 bytes available). 0 and *minor for 1.0 and
 * 1.1, 505 for another well-formed version, 400 when malformed. */
static int parse_version(const char *s, int *minor)
{
    if (memcmp(s, "HTTP/", 5) != 0 || !IS(s[5], C_DIGIT) || s[6] != '.' ||
        !IS(s[7], C_DIGIT))
        return 400;
    if (s[5] != '1' || (s[7] != '0' && s[7] != '1'))
        return 505;
    *minor = s[7] - '0';
    return 0;
}

/* The request line s[a..b), b at its CR. */
static int parse_request_line(struct mg_h1_parser *p, const char *s, size_t a, size_t b)
{
    size_t m = a;
    while (IS(s[m], C_TOKEN))
        m++;
    if (s[m] != ' ' || m == a)
        return fail(p, 400, m == b ? "request line has no request-target"
                                   : "invalid character in method", m);
    size_t t = m + 1, q = t;
    while (IS(s[q], C_TARGET))
        q++;
    if (q == t)
        return fail(p, 400, "empty request-target", q);
    if (s[q] != ' ')
        return fail(p, 400, q == b ? "request line has no HTTP version"
                                   : "invalid character in request-target", q);
    size_t v = q + 1;
    if (b - v != 8)
        return fail(p, 400, "malformed HTTP version", v);
    int minor = 0;
    int rc = parse_version(s + v, &minor);
    if (rc == 400)
        return fail(p, 400, "malformed HTTP version", v);
    if (rc == 505)
        return fail(p, 505, "HTTP version not supported", v);

    size_t mlen = m - a, tlen = q - t;
    const char *tg = s + t;
    if (mlen == 7 && memcmp(s + a, "CONNECT", 7) == 0)
        return fail(p, 501, "CONNECT is not supported", a);
    if (tg[0] == '/') {
        /* origin-form */
    } else if (tg[0] == '*') {
        if (tlen != 1 || mlen != 7 || memcmp(s + a, "OPTIONS", 7) != 0)
            return fail(p, 400, "asterisk-form request-target outside OPTIONS *", t);
    } else {
        /* absolute-form: only http and https URIs, with an authority. */
        size_t sl;
        if (tlen > 7 && eq_lower(tg, "http://", 7))
            sl = 7;
        else if (tlen > 8 && eq_lower(tg, "https://", 8))
            sl = 8;
        else
            return fail(p, 400, "request-target is not origin-form or an http(s) URI", t);
        if (tg[sl] == '/' || tg[sl] == '?')
            return fail(p, 400, "absolute-form request-target without authority", t + sl);
    }
    p->sl_mlen = (uint32_t)mlen;
    p->sl_target = (uint32_t)t;
    p->sl_tlen = (uint32_t)tlen;
    p->sl_minor = minor;
    return 0;
}

/* The status line s[a..b), b at its CR. RFC 9112 4 asks for SP before an
 * empty reason; a status code directly followed by CRLF is accepted too, as
 * it is unambiguous and common. */
static int parse_status_line(struct mg_h1_parser *p, const char *s, size_t a, size_t b)
{
    if (b - a < 12 || s[a + 8] != ' ')
        return fail(p, 502, "malformed status line", a);
    int minor = 0;
    if (parse_version(s + a, &minor) != 0)
        return fail(p, 502, "unsupported or malformed HTTP version in response", a);
    const char *c = s + a + 9;
    if (!IS(c[0], C_DIGIT) || !IS(c[1], C_DIGIT) || !IS(c[2], C_DIGIT))
        return fail(p, 502, "malformed status code", a + 9);
    int status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
    if (status < 100 || status > 599)
        return fail(p, 502, "status code out of range", a + 9);
    size_t r = a + 12;
    if (r < b) {
        if (s[r] != ' ')
            return fail(p, 502, "malformed status line", r);
        r++;
        size_t e = r;
        while (IS(s[e], C_VALUE))
            e++;
        if (e != b)
            return fail(p, 502, "invalid character in reason phrase", e);
    }
    p->sl_status = status;
    p->sl_minor = minor;
    p->sl_target = (uint32_t)r;
    p->sl_tlen = (uint32_t)(b - r);
    return 0;
}

/* Content-Length: 1*DIGIT, or a list of identical ones ("5, 5"). */
static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    size_t i = 0;
    uint64_t first = 0;
    int have = 0;
    for (;;) {
        if (i == n || !IS(v[i], C_DIGIT))
            return -1;
        uint64_t x = 0;
        while (i < n && IS(v[i], C_DIGIT)) {
            unsigned d = (unsigned)(v[i] - '0');
            if (x > ((uint64_t)INT64_MAX - d) / 10)
                return -1;
            x = x * 10 + d;
            i++;
        }
        if (have && x != first)
            return -1;
        first = x;
        have = 1;
        while (i < n && IS_WS(v[i]))
            i++;
        if (i == n)
            break;
        if (v[i] != ',')
            return -1;
        i++;
        while (i < n && IS_WS(v[i]))
            i++;
    }
    *out = first;
    return 0;
}

/* Transfer-Encoding, accumulated over every field line in order. */
struct te_state {
    unsigned chunked;       /* times "chunked" was named */
    unsigned last_chunked;  /* the last coding so far is chunked */
    unsigned others;        /* other codings named */
    unsigned bad;           /* a syntax error */
    unsigned any;           /* a coding was named */
};

static void te_add(struct te_state *te, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (IS_WS(v[i]) || v[i] == ','))
            i++;   /* empty list elements are ignored (RFC 9110 5.6.1) */
        if (i == n)
            break;
        size_t s = i;
        while (i < n && IS(v[i], C_TOKEN))
            i++;
        size_t tl = i - s;
        if (tl == 0) {
            te->bad = 1;
            return;
        }
        size_t e = i;
        while (e < n && IS_WS(v[e]))
            e++;
        int params = e < n && v[e] == ';';
        if (params) {
            /* Parameters: skip to the next element; their syntax only
             * matters for codings we refuse anyway. */
            while (e < n && v[e] != ',')
                e++;
        } else if (e < n && v[e] != ',') {
            te->bad = 1;
            return;
        }
        i = e;
        te->any = 1;
        if (tl == 7 && eq_lower(v + s, "chunked", 7)) {
            if (params)
                te->bad = 1;
            te->chunked++;
            te->last_chunked = 1;
        } else {
            te->others++;
            te->last_chunked = 0;
        }
    }
}

/* Connection options that matter here. */
enum { CONN_CLOSE = 1, CONN_KEEP_ALIVE = 2, CONN_UPGRADE = 4 };

static unsigned connection_flags(const char *v, size_t n)
{
    unsigned f = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (IS_WS(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && IS_WS(v[e - 1]))
            e--;
        size_t l = e - s;
        if (l == 5 && eq_lower(v + s, "close", 5))
            f |= CONN_CLOSE;
        else if (l == 10 && eq_lower(v + s, "keep-alive", 10))
            f |= CONN_KEEP_ALIVE;
        else if (l == 7 && eq_lower(v + s, "upgrade", 7))
            f |= CONN_UPGRADE;
    }
    return f;
}

/* The first LF in [s, end), or NULL. Inline SSE2 rather than memchr: heads
 * are lines of a few dozen bytes, where a call per line costs more than the
 * search. */
static inline const char *find_lf(const char *s, const char *end)
{
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n');
    while (end - s >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf));
        if (m)
            return s + __builtin_ctz(m);
        s += 16;
    }
#endif
    return memchr(s, '\n', (size_t)(end - s));
}

/* Scans a value from q to its end (the CR of the line), 16 bytes at a time
 * where the line is long enough: most head bytes are in values. */
static inline const char *scan_value(const char *q, const char *lim)
{
#if defined(__SSE2__)
    const __m128i sp = _mm_set1_epi8(0x20);
    const __m128i tab = _mm_set1_epi8(0x09);
    const __m128i del = _mm_set1_epi8(0x7f);
    while (lim - q >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)q);
        /* v >= 0x20 (unsigned) */
        __m128i ge = _mm_cmpeq_epi8(_mm_max_epu8(v, sp), v);
        __m128i ok = _mm_or_si128(ge, _mm_cmpeq_epi8(v, tab));
        ok = _mm_andnot_si128(_mm_cmpeq_epi8(v, del), ok);
        unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
        if (bad)
            return q + __builtin_ctz(bad);
        q += 16;
    }
#else
    (void)lim;
#endif
    while (IS(*q, C_VALUE))
        q++;
    return q;
}

/* The field lines s[a..end), end at the CR of the blank line; every line ends
 * with CRLF (the scan saw to that, bare CR aside). Fills msg. */
static int parse_fields(struct mg_h1_parser *p, const char *s, size_t a, size_t end,
                        struct mg_h1_msg *msg)
{
    const int req = p->kind == MG_H1_REQUEST;
    const char *q = s + a, *lim = s + end;
    unsigned n = 0;
    unsigned hosts = 0, conn = 0, upgrade_hdr = 0, expect_bad = 0, expect_100 = 0;
    int have_cl = 0, have_te = 0, bad_host = 0;
    size_t cl_off = 0, te_off = 0, host_off = 0, expect_off = 0;
    uint64_t cl = 0;
    struct te_state te = { 0, 0, 0, 0, 0 };

    while (q < lim) {
        const char *name = q;
        /* Each byte is read only when the one before it was a token
         * character, so never past the line's CR. */
        for (;;) {
            if (!IS(q[0], C_TOKEN))
                break;
            if (!IS(q[1], C_TOKEN)) {
                q += 1;
                break;
            }
            if (!IS(q[2], C_TOKEN)) {
                q += 2;
                break;
            }
            if (!IS(q[3], C_TOKEN)) {
                q += 3;
                break;
            }
            q += 4;
        }
        if (*q != ':' || q == name) {
            size_t off = (size_t)(q - s);
            if (q == name && IS_WS(*q))
                return fail(p, 400, "obs-fold (field line starting with whitespace)", off);
            if (q == name && *q == ':')
                return fail(p, 400, "empty field name", off);
            if (IS_WS(*q)) {
                /* "Name : v" (smuggling-prone, RFC 9112 5.1) or no colon at
                 * all ("just some words"): say which. The line ends in CR
                 * or LF, so the scan stops. */
                const char *r = q;
                while (IS_WS(*r))
                    r++;
                if (*r == ':')
                    return fail(p, 400, "whitespace between field name and colon", off);
                while (*r != '\r' && *r != '\n' && *r != ':')
                    r++;
                if (*r == ':')
                    return fail(p, 400, "whitespace in field name", off);
                return fail(p, 400, "field line without a colon (expected \"name: value\")", off);
            }
            return fail(p, 400, "invalid character in field name", off);
        }
        uint32_t nlen = (uint32_t)(q - name);
        q++;
        while (IS_WS(*q))
            q++;
        const char *v = q;
        q = scan_value(q, lim);
        if (*q != '\r')
            return fail(p, 400, *q == '\n' ? "bare LF in field line"
                                           : "control character in field value",
                        (size_t)(q - s));
        if (q[1] != '\n')
            return fail(p, 400, "bare CR in field line", (size_t)(q - s));
        const char *ve = q;
        while (ve > v && IS_WS(ve[-1]))
            ve--;
        uint32_t vlen = (uint32_t)(ve - v);
        struct mg_h1_header *h = &msg->headers[n++];
        h->name = name;
        h->name_len = nlen;
        h->value = v;
        h->value_len = vlen;
        q += 2;

        /* The fields that decide framing and connection handling. */
        switch (nlen) {
        case 4:
            if (eq_lower(name, "host", 4)) {
                if (hosts++ == 0)
                    host_off = (size_t)(name - s);
                for (uint32_t i = 0; i < vlen; i++)
                    if (!IS(v[i], C_HOST))
                        bad_host = 1;
            }
            break;
        case 6:
            if (eq_lower(name, "expect", 6)) {
                if (vlen == 12 && eq_lower(v, "100-continue", 12))
                    expect_100 = 1;
                else if (!expect_bad) {
                    expect_bad = 1;
                    expect_off = (size_t)(name - s);
                }
            }
            break;
        case 7:
            if (eq_lower(name, "upgrade", 7))
                upgrade_hdr = 1;
            break;
        case 10:
            if (eq_lower(name, "connection", 10))
                conn |= connection_flags(v, vlen);
            break;
        case 14:
            if (eq_lower(name, "content-length", 14)) {
                uint64_t x;
                if (parse_content_length(v, vlen, &x) != 0)
                    return fail(p, 400, "invalid Content-Length", (size_t)(v - s));
                if (have_cl && x != cl)
                    return fail(p, 400, "differing Content-Length values", (size_t)(name - s));
                if (!have_cl)
                    cl_off = (size_t)(name - s);
                have_cl = 1;
                cl = x;
            }
            break;
        case 17:
            if (eq_lower(name, "transfer-encoding", 17)) {
                if (!have_te)
                    te_off = (size_t)(name - s);
                have_te = 1;
                te_add(&te, v, vlen);
            }
            break;
        default:
            break;
        }
    }
    msg->nheaders = n;

    /* Framing (RFC 9112 6.3), strictest reading. */
    const int minor = p->sl_minor;
    enum mg_h1_framing framing;
    if (req) {
        if (have_te && minor == 0)
            return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request", te_off);
        if (have_te && have_cl)
            return fail(p, 400, "Content-Length and Transfer-Encoding both present", te_off);
        if (have_te) {
            if (te.bad)
                return fail(p, 400, "malformed Transfer-Encoding", te_off);
            if (te.chunked > 1)
                return fail(p, 400, "chunked applied more than once", te_off);
            if (!te.last_chunked)
                return fail(p, 400, "Transfer-Encoding does not end with chunked", te_off);
            if (te.others)
                return fail(p, 501, "unsupported transfer coding", te_off);
            framing = MG_H1_BODY_CHUNKED;
        } else if (have_cl) {
            if (p->limits.max_body && cl > p->limits.max_body)
                return fail(p, 413, "Content-Length exceeds the body limit", cl_off);
            framing = cl ? MG_H1_BODY_LENGTH : MG_H1_BODY_NONE;
        } else {
            framing = MG_H1_BODY_NONE;
        }
        if (hosts > 1)
            return fail(p, 400, "more than one Host field", host_off);
        if (hosts == 0 && minor == 1)
            return fail(p, 400, "HTTP/1.1 request without Host", p->sl_start);
        if (bad_host)
            return fail(p, 400, "invalid Host value", host_off);
        if (minor == 1 && expect_bad)
            return fail(p, 417, "unsupported expectation", expect_off);
    } else {
        const int st = p->sl_status;
        if (have_te && have_cl)
            return fail(p, 502, "Content-Length and Transfer-Encoding both present", te_off);
        if (have_te && (te.bad || te.chunked != 1 || te.others || !te.last_chunked))
            return fail(p, 502, "Transfer-Encoding other than chunked in a response", te_off);
        if (have_te && (st < 200 || st == 204))
            return fail(p, 502, "Transfer-Encoding in a 1xx or 204 response", te_off);
        if (st < 200 || st == 204 || st == 304 || p->request_was_head)
            framing = MG_H1_BODY_NONE;
        else if (have_te)
            framing = MG_H1_BODY_CHUNKED;
        else if (have_cl) {
            if (p->limits.max_body && cl > p->limits.max_body)
                return fail(p, 502, "response Content-Length exceeds the body limit", cl_off);
            framing = cl ? MG_H1_BODY_LENGTH : MG_H1_BODY_NONE;
        } else
            framing = MG_H1_BODY_EOF;
    }

    msg->framing = framing;
    msg->content_length = framing == MG_H1_BODY_LENGTH ? cl : 0;
    if (minor == 1)
        msg->keep_alive = !(conn & CONN_CLOSE);
    else
        msg->keep_alive = (conn & CONN_KEEP_ALIVE) && !(conn & CONN_CLOSE);
    if (framing == MG_H1_BODY_EOF)
        msg->keep_alive = 0;
    /* An HTTP/1.0 request's Upgrade and Expect are ignored (RFC 9110 7.8, 10.1.1). */
    msg->upgrade = (conn & CONN_UPGRADE) && upgrade_hdr && (!req || minor == 1);
    msg->expect_continue = req && minor == 1 && expect_100;
    return 0;
}

/* Fills msg from the validated start line and the field lines. */
static int finish_head(struct mg_h1_parser *p, const char *buf, size_t head_len,
                       struct mg_h1_msg *msg)
{
    const size_t fields = (size_t)p->sl_start + p->sl_len + 2;
    msg->head_len = head_len;
    msg->minor = p->sl_minor;
    msg->expect_continue = 0;
    msg->upgrade = 0;
    msg->head_request = 0;
    if (p->kind == MG_H1_REQUEST) {
        msg->method = buf + p->sl_start;
        msg->method_len = p->sl_mlen;
        msg->target = buf + p->sl_target;
        msg->target_len = p->sl_tlen;
        msg->status = 0;
        msg->reason = NULL;
        msg->reason_len = 0;
        msg->head_request = p->sl_mlen == 4 && memcmp(msg->method, "HEAD", 4) == 0;
    } else {
        msg->method = msg->target = NULL;
        msg->method_len = msg->target_len = 0;
        msg->status = p->sl_status;
        msg->reason = buf + p->sl_target;
        msg->reason_len = p->sl_tlen;
    }
    if (parse_fields(p, buf, fields, head_len - 2, msg) != 0)
        return -1;
    p->state = SC_DONE;
    return (int)head_len;
}

int mg_h1_parse_head(struct mg_h1_parser *p, const char *buf, size_t len,
                     struct mg_h1_msg *msg)
{
    if (p->state == SC_ERROR)
        return -1;
    const size_t max_head = p->limits.max_head;
    const size_t max_line = p->limits.max_request_line;
    const size_t lim = len < max_head ? len : max_head;
    size_t i = p->scanned;

    if (i > len)
        return fail(p, 400, "head bytes removed between calls", len);
    if (p->state == SC_DONE)
        return finish_head(p, buf, p->line_start + 2, msg);

    if (p->state == SC_LEADING) {
        /* Empty lines before a request line are skipped (RFC 9112 2.2). */
        while (i < lim && buf[i] == '\r') {
            if (i + 1 == lim)
                break;
            if (buf[i + 1] != '\n')
                return fail(p, 400, "bare CR before the request line", i);
            i += 2;
        }
        if (i < lim && buf[i] == '\n')
            return fail(p, 400, "bare LF before the request line", i);
        if (i == lim || buf[i] == '\r') {
            p->scanned = i;
            goto more;
        }
        p->state = SC_START;
        p->line_start = i;
    }
    if (p->state == SC_START && i == p->line_start && i < lim) {
        /* Refuse what is not HTTP at its first byte (a TLS ClientHello on a
         * plain port) instead of waiting for a blank line that never comes. */
        if (p->kind == MG_H1_REQUEST ? !IS(buf[i], C_TOKEN) : buf[i] != 'H')
            return fail(p, 400, p->kind == MG_H1_REQUEST ? "invalid character in method"
                                                         : "not an HTTP response",
                        i);
    }

    if (p->state == SC_START) {
        const char *nl = find_lf(buf + i, buf + lim);
        if (!nl) {
            i = lim;
            goto partial;
        }
        size_t e = (size_t)(nl - buf);
        size_t ls = p->line_start;
        if (e - ls > max_line + 1)
            return fail(p, 414, "request line too long", ls);
        if (e == ls || buf[e - 1] != '\r')
            return fail(p, 400, "bare LF in the start line", e);
        p->sl_start = (uint32_t)ls;
        p->sl_len = (uint32_t)(e - 1 - ls);
        int rc = p->kind == MG_H1_REQUEST ? parse_request_line(p, buf, ls, e - 1)
                                          : parse_status_line(p, buf, ls, e - 1);
        if (rc != 0)
            return -1;
        p->state = SC_FIELDS;
        i = e + 1;
        p->line_start = i;
    }

    /* Field lines: every LF in a block of 16 bytes at once, from a bit mask. */
    size_t ls = p->line_start;
    unsigned lines = p->lines;
    const unsigned max_headers = p->limits.max_headers;
    while (i < lim) {
        unsigned m = 0;
        size_t span = lim - i;
#if defined(__SSE2__)
        if (span >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
            m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
            span = 16;
        } else
#endif
        {
            if (span > 16)
                span = 16;
            for (size_t k = 0; k < span; k++)
                if (buf[i + k] == '\n')
                    m |= 1u << k;
        }
        while (m) {
            size_t e = i + (size_t)__builtin_ctz(m);
            m &= m - 1;
            if (buf[e - 1] != '\r' || e == ls)
                return fail(p, 400, "bare LF in a field line", e);
            if (e - 1 == ls) {
                p->scanned = e + 1;
                p->line_start = ls;   /* the blank line: head_len = ls + 2 */
                p->lines = lines;
                if (finish_head(p, buf, e + 1, msg) < 0)
                    return -1;
                return (int)(e + 1);
            }
            if (++lines > max_headers)
                return fail(p, 431, "too many header fields", ls);
            ls = e + 1;
        }
        i += span;
    }
    p->line_start = ls;
    p->lines = lines;
partial:
    p->scanned = i;
    if (p->state == SC_START && i - p->line_start > max_line + 1)
        return fail(p, 414, "request line too long", p->line_start);
more:
    if (len >= max_head)
        return fail(p, 431, "head too large", max_head);
    return 0;
}

int mg_h1_find_header(const struct mg_h1_msg *msg, const char *name, unsigned from)
{
    size_t n = strlen(name);
    for (unsigned i = from; i < msg->nheaders; i++) {
        const struct mg_h1_header *h = &msg->headers[i];
        if (h->name_len != n)
            continue;
        size_t k = 0;
        while (k < n && ((unsigned char)h->name[k] | 0x20) == ((unsigned char)name[k] | 0x20))
            k++;
        if (k == n)
            return (int)i;
    }
    return -1;
}

int mg_h1_list_has(const char *value, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (IS_WS(value[i]) || value[i] == ','))
            i++;
        size_t s = i;
        while (i < len && value[i] != ',')
            i++;
        size_t e = i;
        while (e > s && IS_WS(value[e - 1]))
            e--;
        if (e - s == tl) {
            size_t k = 0;
            while (k < tl && ((unsigned char)value[s + k] | 0x20) ==
                                 ((unsigned char)token[k] | 0x20))
                k++;
            if (k == tl)
                return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Body framing. */

enum {
    B_SIZE_FIRST,   /* the first hex digit of a chunk size */
    B_SIZE,         /* more digits, ";", BWS or CR */
    B_EXT_SEMI,     /* BWS; only ";" (or CR right after a complete ext) may follow */
    B_EXT_NAME0,    /* BWS after ";", then the first name character */
    B_EXT_NAME,
    B_EXT_EQ,       /* BWS after a name: "=", ";" or CR */
    B_EXT_VAL0,     /* BWS after "=", then a token or a quoted string */
    B_EXT_TOKEN,
    B_EXT_QUOTED,
    B_EXT_QESC,
    B_SIZE_LF,      /* the LF ending the chunk-size line */
    B_DATA,
    B_DATA_CR,
    B_DATA_LF,
    B_TR_LINE,      /* the start of a trailer line, or the final CRLF */
    B_TR_NAME,
    B_TR_VALUE,
    B_TR_LF,
    B_TR_END_LF,
    B_ERROR,
};

void mg_h1_body_init(struct mg_h1_body *b, const struct mg_h1_msg *msg,
                     const struct mg_h1_limits *limits)
{
    struct mg_h1_limits l;
    if (limits)
        l = *limits;
    else
        mg_h1_limits_default(&l);
    limits_fix(&l);
    memset(b, 0, sizeof *b);
    b->framing = msg->framing;
    b->max_body = l.max_body;
    b->max_chunk_ext = l.max_chunk_ext;
    b->max_trailer = l.max_trailer;
    b->state = B_SIZE_FIRST;
    b->response = msg->status != 0;
    switch (msg->framing) {
    case MG_H1_BODY_NONE:
        b->done = 1;
        break;
    case MG_H1_BODY_LENGTH:
        b->remaining = msg->content_length;
        b->done = b->remaining == 0;
        if (b->max_body && b->remaining > b->max_body) {
            b->err.status = b->response ? 502 : 413;
            b->err.reason = "Content-Length exceeds the body limit";
            b->state = B_ERROR;
        }
        break;
    default:
        break;
    }
}

static long body_fail(struct mg_h1_body *b, int status, const char *reason, size_t off)
{
    b->err.status = b->response ? 502 : status;
    b->err.reason = reason;
    b->err.offset = off;
    b->state = B_ERROR;
    return -1;
}

/* The chunked framing. Consumes framing bytes around at most one data span;
 * stops before the data of the next chunk, or after the last CRLF. */
static long chunked_decode(struct mg_h1_body *b, const char *in, size_t len,
                           const char **data, size_t *data_len)
{
    size_t i = 0;
    const char *err = NULL;
    int status = 400;
    int st = b->state;
    /* Locals, not the caller's pointers: stores through those would be
     * reloaded on every byte, as they may alias *b. */
    const char *dp = NULL;
    size_t dn = 0;

    while (i < len) {
        /* Fast path for the common framing: the CRLF after chunk data and a
         * plain size line, when whole in the input. Anything else (split,
         * extensions, long sizes, errors) takes the byte-level path below
         * from the same position, with the same results. */
        if (st == B_DATA_CR && len - i >= 2 && in[i] == '\r' && in[i + 1] == '\n') {
            i += 2;
            st = B_SIZE_FIRST;
            continue;
        }
        if (st == B_SIZE_FIRST) {
            size_t j = i;
            uint64_t v = 0;
            while (j < len && j - i < 15 && IS(in[j], C_HEX)) {
                unsigned char h = (unsigned char)in[j];
                v = v << 4 | (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                j++;
            }
            if (j > i && len - j >= 2 && in[j] == '\r' && in[j + 1] == '\n') {
                b->size_digits = (unsigned)(j - i);
                b->ext_bytes = 0;
                b->remaining = v;
                if (v == 0) {
                    st = B_TR_LINE;
                } else if (b->max_body && (v > b->max_body || b->total > b->max_body - v)) {
                    i = j + 1;
                    status = 413;
                    err = "chunked body exceeds the body limit";
                    goto bad;
                } else {
                    st = B_DATA;
                }
                i = j + 2;
                continue;
            }
        }
        unsigned char c = (unsigned char)in[i];
        switch (st) {
        case B_DATA: {
            if (dn)
                goto out;
            size_t n = len - i;
            if ((uint64_t)n > b->remaining)
                n = (size_t)b->remaining;
            dp = in + i;
            dn = n;
            b->remaining -= n;
            b->total += n;
            i += n;
            if (b->remaining == 0)
                st = B_DATA_CR;
            continue;
        }
        case B_SIZE_FIRST:
            if (!IS(c, C_HEX)) {
                err = "invalid chunk size";
                goto bad;
            }
            b->remaining = 0;
            b->size_digits = 0;
            b->ext_bytes = 0;
            st = B_SIZE;
            __attribute__((fallthrough));
        case B_SIZE:
            if (IS(c, C_HEX)) {
                unsigned d = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
                if (b->remaining >> 59) {
                    err = "chunk size overflows";
                    goto bad;
                }
                if (++b->size_digits > 64) {
                    err = "chunk size too long";
                    goto bad;
                }
                b->remaining = b->remaining << 4 | d;
                break;
            }
            if (c == '\r') {
                st = B_SIZE_LF;
                break;
            }
            if (c == ';') {
                st = B_EXT_NAME0;
            } else if (IS_WS(c)) {
                st = B_EXT_SEMI;
                b->ext_ws = 1;
            } else {
                err = "invalid chunk size";
                goto bad;
            }
            goto ext_count;
        case B_EXT_SEMI:
            if (c == ';') {
                st = B_EXT_NAME0;
            } else if (c == '\r' && !b->ext_ws) {
                st = B_SIZE_LF;
                break;
            } else if (IS_WS(c)) {
                b->ext_ws = 1;
            } else {
                err = "invalid chunk extension";
                goto bad;
            }
            goto ext_count;
        case B_EXT_NAME0:
            if (IS(c, C_TOKEN))
                st = B_EXT_NAME;
            else if (!IS_WS(c)) {
                err = "invalid chunk extension";
                goto bad;
            }
            goto ext_count;
        case B_EXT_NAME:
            if (IS(c, C_TOKEN))
                goto ext_count;
            b->ext_ws = 0;
            __attribute__((fallthrough));
        case B_EXT_EQ:
            if (c == '=') {
                st = B_EXT_VAL0;
            } else if (c == ';') {
                st = B_EXT_NAME0;
            } else if (c == '\r' && !b->ext_ws) {
                st = B_SIZE_LF;
                break;
            } else if (IS_WS(c)) {
                st = B_EXT_EQ;
                b->ext_ws = 1;
            } else {
                err = "invalid chunk extension";
                goto bad;
            }
            goto ext_count;
        case B_EXT_VAL0:
            if (IS(c, C_TOKEN))
                st = B_EXT_TOKEN;
            else if (c == '"')
                st = B_EXT_QUOTED;
            else if (!IS_WS(c)) {
                err = "invalid chunk extension value";
                goto bad;
            }
            goto ext_count;
        case B_EXT_TOKEN:
            if (IS(c, C_TOKEN))
                goto ext_count;
            b->ext_ws = 0;
            goto after_value;
        case B_EXT_QUOTED:
            if (c == '"') {
                b->ext_ws = 0;
                st = B_EXT_SEMI;
            } else if (c == '\\') {
                st = B_EXT_QESC;
            } else if (!IS(c, C_QDTEXT)) {
                err = "invalid character in chunk extension";
                goto bad;
            }
            goto ext_count;
        case B_EXT_QESC:
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            if (!IS(c, C_VALUE)) {
                err = "invalid character in chunk extension";
                goto bad;
            }
            st = B_EXT_QUOTED;
            goto ext_count;
        after_value:
            if (c == ';') {
                st = B_EXT_NAME0;
            } else if (c == '\r') {
                st = B_SIZE_LF;
                break;
            } else if (IS_WS(c)) {
                st = B_EXT_SEMI;
                b->ext_ws = 1;
            } else {
                err = "invalid chunk extension value";
                goto bad;
            }
            goto ext_count;
        ext_count:
            if (++b->ext_bytes > b->max_chunk_ext) {
                err = "chunk extensions too long";
                goto bad;
            }
            break;
        case B_SIZE_LF:
            if (c != '\n') {
                err = "bare CR in chunk-size line";
                goto bad;
            }
            b->ext_ws = 0;
            if (b->remaining == 0) {
                st = B_TR_LINE;
                break;
            }
            if (b->max_body && (b->remaining > b->max_body ||
                                b->total > b->max_body - b->remaining)) {
                status = 413;
                err = "chunked body exceeds the body limit";
                goto bad;
            }
            st = B_DATA;
            break;
        case B_DATA_CR:
            if (c != '\r') {
                err = "chunk data not followed by CRLF";
                goto bad;
            }
            st = B_DATA_LF;
            break;
        case B_DATA_LF:
            if (c != '\n') {
                err = "chunk data not followed by CRLF";
                goto bad;
            }
            st = B_SIZE_FIRST;
            break;
        case B_TR_LINE:
            if (c == '\r')
                st = B_TR_END_LF;
            else if (IS(c, C_TOKEN))
                st = B_TR_NAME;
            else if (IS_WS(c)) {
                err = "obs-fold in trailer section";
                goto bad;
            } else {
                err = c == ':' ? "empty trailer field name" : "invalid character in trailer field name";
                goto bad;
            }
            goto tr_count;
        case B_TR_NAME:
            if (c == ':')
                st = B_TR_VALUE;
            else if (!IS(c, C_TOKEN)) {
                err = IS_WS(c) ? "whitespace between trailer field name and colon"
                               : "invalid character in trailer field name";
                goto bad;
            }
            goto tr_count;
        case B_TR_VALUE:
            if (c == '\r')
                st = B_TR_LF;
            else if (!IS(c, C_VALUE)) {
                err = "control character in trailer field value";
                goto bad;
            }
            goto tr_count;
        case B_TR_LF:
            if (c != '\n') {
                err = "bare CR in trailer section";
                goto bad;
            }
            st = B_TR_LINE;
            goto tr_count;
        case B_TR_END_LF:
            if (c != '\n') {
                err = "bare CR in trailer section";
                goto bad;
            }
            i++;
            b->done = 1;
            goto out;
        tr_count:
            if (++b->trailer_bytes > b->max_trailer) {
                status = 431;
                err = "trailer section too large";
                goto bad;
            }
            break;
        default:
            err = "chunked decoder in an invalid state";
            goto bad;
        }
        i++;
    }
out:
    b->state = st;
    *data = dp;
    *data_len = dn;
    return (long)i;
bad:
    body_fail(b, status, err, i);
    /* A span already found is handed over; the error comes on the next call. */
    if (dn) {
        *data = dp;
        *data_len = dn;
        return (long)i;
    }
    return -1;
}

long mg_h1_body_decode(struct mg_h1_body *b, const char *in, size_t len,
                       const char **data, size_t *data_len)
{
    *data = NULL;
    *data_len = 0;
    if (b->state == B_ERROR)
        return -1;
    if (b->done)
        return 0;
    switch (b->framing) {
    case MG_H1_BODY_LENGTH: {
        size_t n = len;
        if ((uint64_t)n > b->remaining)
            n = (size_t)b->remaining;
        b->remaining -= n;
        b->total += n;
        if (b->remaining == 0)
            b->done = 1;
        *data = n ? in : NULL;
        *data_len = n;
        return (long)n;
    }
    case MG_H1_BODY_EOF: {
        /* Up to the limit, then an error: the same bytes whatever the reads. */
        size_t n = len;
        if (b->max_body && (uint64_t)n > b->max_body - b->total) {
            n = (size_t)(b->max_body - b->total);
            if (n == 0)
                return body_fail(b, 413, "body exceeds the body limit", 0);
        }
        b->total += n;
        *data = n ? in : NULL;
        *data_len = n;
        return (long)n;
    }
    case MG_H1_BODY_CHUNKED:
        return chunked_decode(b, in, len, data, data_len);
    default:
        b->done = 1;
        return 0;
    }
}

int mg_h1_body_eof(struct mg_h1_body *b)
{
    if (b->state == B_ERROR)
        return -1;
    if (b->done)
        return 0;
    if (b->framing == MG_H1_BODY_EOF) {
        b->done = 1;
        return 0;
    }
    body_fail(b, 400, "connection closed before the end of the body", 0);
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Encoding. */

const char mg_h1_last_chunk[] = "0\r\n\r\n";

int mg_h1_is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!IS(s[i], C_TOKEN))
            return 0;
    return 1;
}

/* A value our own parser would accept: no CR, LF, NUL or other control. */
static int is_value(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(s[i], C_VALUE))
            return 0;
    return 1;
}

int mg_h1_put_status(struct mg_buf *out, int status, const char *reason)
{
    if (status < 100 || status > 999)
        return -EINVAL;
    if (!reason)
        reason = mg_h1_reason(status);
    size_t rl = strlen(reason);
    if (!is_value(reason, rl))
        return -EINVAL;
    int rc = mg_buf_reserve(out, 13 + rl + 2);
    if (rc < 0)
        return rc;
    char *t = mg_buf_tail(out);
    memcpy(t, "HTTP/1.1 ", 9);
    t[9] = (char)('0' + status / 100);
    t[10] = (char)('0' + status / 10 % 10);
    t[11] = (char)('0' + status % 10);
    t[12] = ' ';
    memcpy(t + 13, reason, rl);
    memcpy(t + 13 + rl, "\r\n", 2);
    mg_buf_commit(out, 13 + rl + 2);
    return 0;
}

int mg_h1_put_request_line(struct mg_buf *out, const char *method, const char *target)
{
    size_t ml = strlen(method), tl = strlen(target);
    if (!mg_h1_is_token(method, ml) || tl == 0)
        return -EINVAL;
    for (size_t i = 0; i < tl; i++)
        if (!IS(target[i], C_TARGET))
            return -EINVAL;
    size_t n = ml + 1 + tl + 11;
    int rc = mg_buf_reserve(out, n);
    if (rc < 0)
        return rc;
    char *t = mg_buf_tail(out);
    memcpy(t, method, ml);
    t[ml] = ' ';
    memcpy(t + ml + 1, target, tl);
    memcpy(t + ml + 1 + tl, " HTTP/1.1\r\n", 11);
    mg_buf_commit(out, n);
    return 0;
}

int mg_h1_put_header_n(struct mg_buf *out, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    if (!mg_h1_is_token(name, name_len) || !is_value(value, value_len))
        return -EINVAL;
    size_t n = name_len + 2 + value_len + 2;
    int rc = mg_buf_reserve(out, n);
    if (rc < 0)
        return rc;
    char *t = mg_buf_tail(out);
    memcpy(t, name, name_len);
    t[name_len] = ':';
    t[name_len + 1] = ' ';
    memcpy(t + name_len + 2, value, value_len);
    t[n - 2] = '\r';
    t[n - 1] = '\n';
    mg_buf_commit(out, n);
    return 0;
}

int mg_h1_put_header(struct mg_buf *out, const char *name, const char *value)
{
    return mg_h1_put_header_n(out, name, strlen(name), value, strlen(value));
}

size_t mg_h1_chunk_header(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 15];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < k; i++)
        buf[i] = tmp[k - 1 - i];
    buf[k] = '\r';
    buf[k + 1] = '\n';
    return k + 2;
}

const char *mg_h1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
