/* The request-body scanner (reqscan.h): one pass, an explicit stack of
 * container kinds (one bit per level), no allocation. */
#include "sidecar/reqscan.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "lib/utf8.h"

#define NOT_JSON "request body is not valid JSON: "

enum key { K_OTHER, K_MODEL, K_STREAM, K_MAX_TOKENS };

enum state {
    S_KEY_OR_END,    /* after '{' */
    S_KEY,           /* after ',' in an object */
    S_ELEM_OR_END,   /* after '[' */
    S_VALUE,         /* after ':' or ',' in an array */
    S_AFTER_VALUE,
};

static int fail(struct sc_reqscan *o, const char *msg, size_t off)
{
    o->error = msg;
    o->error_offset = off;
    o->model = NULL;
    o->model_len = 0;
    return -EINVAL;
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    return i;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The string starting at p[i] == '"'. Returns the index after its closing
 * quote, or 0 with *why and *where set. *esc tells whether it had escapes. */
static size_t scan_string(const char *p, size_t n, size_t i, int *esc, const char **why,
                          size_t *where)
{
    *esc = 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20) {
            *why = NOT_JSON "control character in a string";
            *where = i;
            return 0;
        }
        if (c != '\\')
            continue;
        *esc = 1;
        if (++i >= n)
            break;
        switch (p[i]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            break;
        case 'u':
            if (n - i < 5)
                goto cut;
            for (int k = 1; k <= 4; k++) {
                if (hexval(p[i + k]) < 0) {
                    *why = NOT_JSON "invalid \\u escape";
                    *where = i - 1;
                    return 0;
                }
            }
            i += 4;
            break;
        default:
            *why = NOT_JSON "invalid escape in a string";
            *where = i - 1;
            return 0;
        }
    }
cut:
    *why = NOT_JSON "a string is not terminated";
    *where = n;
    return 0;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

/* Unescapes the inside of a string already checked by scan_string into
 * out (cap bytes). Returns the length, -ENOBUFS when it does not fit, or
 * -EILSEQ for a lone surrogate or U+0000 (which no name may contain). */
static long unescape(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            if (o >= cap)
                return -ENOBUFS;
            out[o++] = s[i];
            continue;
        }
        char e = s[++i];
        unsigned cp;
        switch (e) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            cp = hex4(s + i + 1);
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return -EILSEQ;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (i + 6 >= n || s[i + 1] != '\\' || s[i + 2] != 'u')
                    return -EILSEQ;
                unsigned lo = hex4(s + i + 3);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return -EILSEQ;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            }
            if (cp == 0)
                return -EILSEQ;
            break;
        default: cp = (unsigned char)e; break;   /* " \ / */
        }
        char u[4];
        size_t ul;
        if (cp < 0x80) {
            u[0] = (char)cp;
            ul = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xC0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3F));
            ul = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xE0 | cp >> 12);
            u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (char)(0x80 | (cp & 0x3F));
            ul = 3;
        } else {
            u[0] = (char)(0xF0 | cp >> 18);
            u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
            u[3] = (char)(0x80 | (cp & 0x3F));
            ul = 4;
        }
        if (cap - o < ul)
            return -ENOBUFS;
        memcpy(out + o, u, ul);
        o += ul;
    }
    return (long)o;
}

/* Which top-level key the string p[a..b) (quotes excluded) names. */
static enum key classify(const char *s, size_t n, int esc)
{
    char tmp[24];
    if (esc) {
        /* The keys are at most 21 bytes unescaped, and every escape
         * stands for at least one byte. */
        long l = n <= 21 * 12 ? unescape(s, n, tmp, sizeof tmp) : -ENOBUFS;
        if (l < 0)
            return K_OTHER;
        s = tmp;
        n = (size_t)l;
    }
    if (n == 5 && memcmp(s, "model", 5) == 0)
        return K_MODEL;
    if (n == 6 && memcmp(s, "stream", 6) == 0)
        return K_STREAM;
    if ((n == 10 && memcmp(s, "max_tokens", 10) == 0) ||
        (n == 21 && memcmp(s, "max_completion_tokens", 21) == 0))
        return K_MAX_TOKENS;
    return K_OTHER;
}

/* A number per RFC 8259 from p[i]; returns the index after it, or 0. */
static size_t scan_number(const char *p, size_t n, size_t i)
{
    if (i < n && p[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (p[i] == '0') {
        i++;
    } else if (p[i] >= '1' && p[i] <= '9') {
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    } else {
        return 0;
    }
    if (i < n && p[i] == '.') {
        size_t d = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i;
}

static int set_model(struct sc_reqscan *o, const char *s, size_t n, int esc, size_t at)
{
    if (o->model)
        return fail(o, "\"model\" is given more than once", at);
    if (esc) {
        long l = unescape(s, n, o->buf, sizeof o->buf);
        if (l == -ENOBUFS)
            return fail(o, "\"model\" is too long", at);
        if (l < 0)
            return fail(o, "\"model\" is not valid UTF-8", at);
        s = o->buf;
        n = (size_t)l;
    } else if (n > sizeof o->buf) {
        return fail(o, "\"model\" is too long", at);
    }
    if (n > 0 && !mg_utf8_valid(s, n))
        return fail(o, "\"model\" is not valid UTF-8", at);
    o->model = s;
    o->model_len = n;
    return 0;
}

int sc_reqscan(const char *p, size_t n, struct sc_reqscan *o)
{
    unsigned char stack[SC_REQSCAN_MAX_DEPTH / 8];   /* bit set: an array */
    unsigned depth = 0;
    enum key key = K_OTHER;
    enum state st;
    const char *why;
    size_t where;
    int esc;

    o->model = NULL;
    o->model_len = 0;
    o->stream = 0;
    o->error = NULL;
    o->error_offset = 0;
    o->model_off = o->model_span = 0;
    o->max_tokens = -1;

    size_t i = skip_ws(p, n, 0);
    if (i >= n || p[i] != '{')
        return fail(o, "request body is not a JSON object", i);
    stack[0] = 0;
    depth = 1;
    i++;
    st = S_KEY_OR_END;

    for (;;) {
        i = skip_ws(p, n, i);
        if (depth == 0) {
            if (i != n)
                return fail(o, NOT_JSON "unexpected content after the object", i);
            return 0;
        }
        if (i >= n)
            return fail(o, NOT_JSON "the body ends before the object does", i);
        char c = p[i];
        int in_array = (stack[(depth - 1) / 8] >> ((depth - 1) % 8)) & 1;
        switch (st) {
        case S_KEY_OR_END:
            if (c == '}') {
                depth--;
                i++;
                st = S_AFTER_VALUE;
                break;
            }
            /* fallthrough */
        case S_KEY: {
            if (c != '"')
                return fail(o, NOT_JSON "expected a string as object key", i);
            size_t j = scan_string(p, n, i, &esc, &why, &where);
            if (!j)
                return fail(o, why, where);
            key = depth == 1 ? classify(p + i + 1, j - i - 2, esc) : K_OTHER;
            i = skip_ws(p, n, j);
            if (i >= n || p[i] != ':')
                return fail(o, NOT_JSON "expected ':' after an object key", i);
            i++;
            st = S_VALUE;
            break;
        }
        case S_ELEM_OR_END:
            if (c == ']') {
                depth--;
                i++;
                st = S_AFTER_VALUE;
                break;
            }
            /* fallthrough */
        case S_VALUE: {
            enum key k = depth == 1 && !in_array ? key : K_OTHER;
            key = K_OTHER;
            if (c == '"') {
                size_t j = scan_string(p, n, i, &esc, &why, &where);
                if (!j)
                    return fail(o, why, where);
                if (k == K_MODEL) {
                    if (set_model(o, p + i + 1, j - i - 2, esc, i) < 0)
                        return -EINVAL;
                    o->model_off = i;
                    o->model_span = j - i;
                }
                if (k == K_STREAM)
                    o->stream = 0;
                i = j;
                st = S_AFTER_VALUE;
                break;
            }
            if (k == K_MODEL)
                return fail(o, "\"model\" must be a string", i);
            if (c == '{' || c == '[') {
                if (depth >= SC_REQSCAN_MAX_DEPTH)
                    return fail(o, NOT_JSON "nested too deeply", i);
                unsigned b = depth % 8;
                unsigned char *slot = &stack[depth / 8];
                *slot = (unsigned char)((*slot & ~(1u << b)) | ((c == '[') << b));
                depth++;
                i++;
                st = c == '{' ? S_KEY_OR_END : S_ELEM_OR_END;
                break;
            }
            size_t j = 0;
            if (c == 't' && n - i >= 4 && memcmp(p + i, "true", 4) == 0)
                j = i + 4;
            else if (c == 'f' && n - i >= 5 && memcmp(p + i, "false", 5) == 0)
                j = i + 5;
            else if (c == 'n' && n - i >= 4 && memcmp(p + i, "null", 4) == 0)
                j = i + 4;
            else if (c == '-' || (c >= '0' && c <= '9'))
                j = scan_number(p, n, i);
            if (!j)
                return fail(o, NOT_JSON "invalid value", i);
            if (k == K_STREAM)
                o->stream = c == 't';
            if (k == K_MAX_TOKENS && c >= '0' && c <= '9' && j - i <= 10) {
                long long v = 0;
                size_t d = i;
                while (d < j && p[d] >= '0' && p[d] <= '9')
                    v = v * 10 + (p[d++] - '0');
                if (d == j && v < 4294967296LL && v > o->max_tokens)
                    o->max_tokens = v;
            }
            i = j;
            st = S_AFTER_VALUE;
            break;
        }
        case S_AFTER_VALUE:
            if (c == ',') {
                i++;
                st = in_array ? S_VALUE : S_KEY;
            } else if (c == (in_array ? ']' : '}')) {
                depth--;
                i++;
            } else {
                return fail(o, in_array ? NOT_JSON "expected ',' or ']' in an array"
                                        : NOT_JSON "expected ',' or '}' in an object", i);
            }
            break;
        }
    }
}
