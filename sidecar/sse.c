/* Output-token accounting (sse.h): two small byte-at-a-time state
 * machines, the SSE line/field rules outside and the JSON member watcher
 * inside the data fields. Every state fits in the struct, so a span may
 * end anywhere. */
#include "sidecar/sse.h"

#include <string.h>
#include <strings.h>

/* SSE line states. */
enum {
    L_START,      /* at the start of a line */
    L_FIELD,      /* in a field name */
    L_DATA_SP,    /* after "data:", where one space is skipped */
    L_DATA,       /* in a data value */
    L_IGNORE,     /* in a comment or another field: skip to the line end */
    L_CR,         /* after a CR: a LF here belongs to the same line end */
};

/* JSON member states. */
enum {
    J_OUT,        /* outside strings */
    J_STR,        /* in a string, matching member names while cand != 0 */
    J_ESC,        /* after a backslash in a string */
    J_AFTER_NAME, /* after a string that may be a watched member name */
    J_VALUE,      /* after its ':' */
    J_VFIRST,     /* after the opening quote of a watched string value */
    J_NUM,        /* in completion_tokens' number */
};

enum { K_NONE, K_CONTENT, K_TEXT, K_COMPLETION };

static const struct {
    const char *name;
    uint16_t len;
} names[] = {
    {"content", 7},
    {"text", 4},
    {"completion_tokens", 17},
};
#define ALL_NAMES 0x7u
#define NUM_MAX_DIGITS 18

enum sc_body_kind sc_sse_kind(const char *ct, size_t len)
{
    size_t n = 0;
    while (n < len && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t')
        n++;
    if (n == 17 && strncasecmp(ct, "text/event-stream", 17) == 0)
        return SC_BODY_SSE;
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return SC_BODY_JSON;
    return SC_BODY_OTHER;
}

void sc_sse_init(struct sc_sse *s, enum sc_body_kind kind)
{
    memset(s, 0, offsetof(struct sc_sse, tail));
    s->kind = kind;
    s->usage = -1;
    s->line = L_START;
    s->js = J_OUT;
}

/* One byte of JSON text. */
static void json_byte(struct sc_sse *s, unsigned char c)
{
    for (;;) {
        switch (s->js) {
        case J_OUT:
            if (c == '{' || c == '[')
                s->depth++;
            else if (c == '}' || c == ']')
                s->depth--;
            if (c == '"') {
                s->js = J_STR;
                s->cand = ALL_NAMES;
                s->kpos = 0;
            }
            return;
        case J_STR:
            if (c == '"') {
                s->key = K_NONE;
                for (unsigned k = 0; k < 3; k++)
                    if ((s->cand >> k & 1) && s->kpos == names[k].len)
                        s->key = (uint8_t)(k + 1);
                s->js = s->key ? J_AFTER_NAME : J_OUT;
                return;
            }
            if (c == '\\') {
                s->cand = 0;   /* an escaped name is none of ours */
                s->js = J_ESC;
                return;
            }
            if (s->cand) {
                for (unsigned k = 0; k < 3; k++)
                    if ((s->cand >> k & 1) &&
                        (s->kpos >= names[k].len || names[k].name[s->kpos] != (char)c))
                        s->cand &= (uint8_t)~(1u << k);
                s->kpos++;
            }
            return;
        case J_ESC:
            s->js = J_STR;
            return;
        case J_AFTER_NAME:
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                return;
            if (c == ':') {
                s->js = J_VALUE;
                return;
            }
            s->js = J_OUT;   /* it was a value, not a name */
            continue;
        case J_VALUE:
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
                return;
            if (c == '"' && (s->key == K_CONTENT || s->key == K_TEXT)) {
                s->js = J_VFIRST;
                return;
            }
            if (c >= '0' && c <= '9' && s->key == K_COMPLETION) {
                s->js = J_NUM;
                s->num = (uint64_t)(c - '0');
                s->num_digits = 1;
                return;
            }
            s->js = J_OUT;
            continue;
        case J_VFIRST:
            if (c == '"') {   /* "" */
                s->js = J_OUT;
                return;
            }
            s->has_content = 1;
            s->cand = 0;
            s->js = c == '\\' ? J_ESC : J_STR;
            return;
        case J_NUM:
            if (c >= '0' && c <= '9') {
                if (s->num_digits < NUM_MAX_DIGITS) {
                    s->num = s->num * 10 + (uint64_t)(c - '0');
                    s->num_digits++;
                }
                return;
            }
            s->usage = (int64_t)s->num;
            s->js = J_OUT;
            continue;
        }
        return;
    }
}

/* JSON text in bulk: what cannot change the state (everything outside
 * strings but quotes, string contents that match no member name) is
 * skipped without the per-byte machine. */
static void json_bytes(struct sc_sse *s, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s->js == J_OUT) {
            const unsigned char *q = memchr(p + i, '"', n - i);
            if (!q)
                return;
            i = (size_t)(q - p);
        } else if (s->js == J_STR && !s->cand) {
            while (i < n && p[i] != '"' && p[i] != '\\')
                i++;
            if (i == n)
                return;
        }
        json_byte(s, p[i++]);
    }
}

/* The end of an event (a blank line). Returns 1 when it counted. */
static unsigned dispatch(struct sc_sse *s)
{
    unsigned counted = s->has_content;
    if (s->js == J_NUM)
        s->usage = (int64_t)s->num;
    if (s->data_seen && (s->depth != 0 || s->js == J_STR || s->js == J_ESC ||
                         s->js == J_VFIRST || s->js == J_VALUE))
        s->malformed++;
    s->data_seen = 0;
    s->depth = 0;
    s->events += counted;
    s->has_content = 0;
    s->js = J_OUT;
    return counted;
}

/* The end of a line (LF, CR or CRLF). */
static unsigned line_end(struct sc_sse *s)
{
    unsigned counted = 0;
    switch (s->line) {
    case L_START:
        counted = dispatch(s);
        break;
    case L_FIELD:
        /* "data" alone is a data field with an empty value. */
        if (!s->field_bad && s->field_len == 4)
            json_byte(s, '\n');
        break;
    case L_DATA_SP:
    case L_DATA:
        json_byte(s, '\n');   /* data lines join with LF */
        break;
    default:
        break;
    }
    return counted;
}

static unsigned sse_bytes(struct sc_sse *s, const unsigned char *p, size_t n)
{
    unsigned counted = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (s->line == L_CR) {
            s->line = L_START;
            if (c == '\n')
                continue;
        }
        if (c == '\n' || c == '\r') {
            uint32_t bad = s->malformed;
            int blank = s->line == L_START;   /* an event ends here */
            counted += line_end(s);
            if (s->malformed != bad && !s->bad_end)
                s->bad_end = s->bytes - n + i + 1;
            else if (blank && !s->malformed)
                s->good_end = s->bytes - n + i + 1;
            s->line = c == '\r' ? L_CR : L_START;
            continue;
        }
        switch (s->line) {
        case L_START:
            if (c == ':') {
                s->line = L_IGNORE;
                break;
            }
            s->line = L_FIELD;
            s->field_len = 0;
            s->field_bad = 0;
            /* fallthrough */
        case L_FIELD:
            if (c == ':') {
                s->line = !s->field_bad && s->field_len == 4 ? L_DATA_SP : L_IGNORE;
                if (s->line == L_DATA_SP)
                    s->data_seen = 1;
            } else if (s->field_len < 4 && "data"[s->field_len] == c) {
                s->field_len++;
            } else {
                s->field_bad = 1;
            }
            break;
        case L_DATA_SP:
            s->line = L_DATA;
            if (c == ' ')
                break;
            /* fallthrough */
        case L_DATA:
            /* Outside strings, only quotes and brackets matter. */
            if (s->js == J_OUT && c != '"') {
                if (c == '{' || c == '[')
                    s->depth++;
                else if (c == '}' || c == ']')
                    s->depth--;
                break;
            }
            json_byte(s, c);
            break;
        case L_IGNORE:
        default:
            break;
        }
    }
    return counted;
}

static void tail_add(struct sc_sse *s, const char *p, size_t n)
{
    if (n >= SC_SSE_TAIL) {
        memcpy(s->tail, p + n - SC_SSE_TAIL, SC_SSE_TAIL);
        s->tail_len = SC_SSE_TAIL;
        return;
    }
    if (s->tail_len + n > SC_SSE_TAIL) {
        size_t drop = s->tail_len + n - SC_SSE_TAIL;
        memmove(s->tail, s->tail + drop, s->tail_len - drop);
        s->tail_len -= drop;
    }
    memcpy(s->tail + s->tail_len, p, n);
    s->tail_len += n;
}

unsigned sc_sse_feed(struct sc_sse *s, const char *p, size_t n, uint64_t now_ns,
                     uint64_t *gap_ns)
{
    unsigned counted = 0;
    if (gap_ns)
        *gap_ns = 0;
    if (n == 0)
        return 0;
    if (!s->first_ns)
        s->first_ns = now_ns ? now_ns : 1;
    uint64_t before = s->bytes;
    s->bytes += n;
    switch (s->kind) {
    case SC_BODY_SSE:
        counted = sse_bytes(s, (const unsigned char *)p, n);
        break;
    case SC_BODY_JSON: {
        size_t head = 0;
        if (before < SC_SSE_JSON_SCAN) {
            head = SC_SSE_JSON_SCAN - before < n ? (size_t)(SC_SSE_JSON_SCAN - before) : n;
            json_bytes(s, (const unsigned char *)p, head);
        }
        if (head < n)
            tail_add(s, p + head, n - head);
        break;
    }
    default:
        break;
    }
    if (counted) {
        if (gap_ns && s->last_token_ns)
            *gap_ns = now_ns > s->last_token_ns ? now_ns - s->last_token_ns : 0;
        s->last_token_ns = now_ns;
    }
    return counted;
}

void sc_sse_finish(struct sc_sse *s)
{
    if (s->kind == SC_BODY_JSON && s->js == J_NUM) {
        s->usage = (int64_t)s->num;
        s->js = J_OUT;
    }
    if (s->kind != SC_BODY_JSON || s->tail_len == 0)
        return;
    /* The last "completion_tokens" in the tail, then : and the number.
     * Unlike the scan above this cannot tell names from string contents;
     * the tail is where the usage object sits. */
    static const char pat[] = "\"completion_tokens\"";
    const size_t pl = sizeof pat - 1;
    for (size_t i = s->tail_len >= pl ? s->tail_len - pl + 1 : 0; i-- > 0;) {
        if (memcmp(s->tail + i, pat, pl) != 0)
            continue;
        size_t j = i + pl;
        while (j < s->tail_len && (s->tail[j] == ' ' || s->tail[j] == '\n' ||
                                   s->tail[j] == '\r' || s->tail[j] == '\t'))
            j++;
        if (j >= s->tail_len || s->tail[j] != ':')
            continue;
        j++;
        while (j < s->tail_len && (s->tail[j] == ' ' || s->tail[j] == '\n' ||
                                   s->tail[j] == '\r' || s->tail[j] == '\t'))
            j++;
        uint64_t v = 0;
        unsigned d = 0;
        while (j < s->tail_len && s->tail[j] >= '0' && s->tail[j] <= '9' && d < NUM_MAX_DIGITS) {
            v = v * 10 + (uint64_t)(s->tail[j] - '0');
            j++;
            d++;
        }
        /* A number cut by the tail's end is still the whole number: the
         * tail ends where the body does. */
        if (d > 0) {
            s->usage = (int64_t)v;
            return;
        }
    }
}

uint64_t sc_sse_tokens(const struct sc_sse *s)
{
    return s->usage >= 0 ? (uint64_t)s->usage : s->events;
}

size_t sc_sse_close_event(const struct sc_sse *s, char *out)
{
    size_t n = 0;
    if (s->line != L_START)
        out[n++] = '\n';   /* ends the line */
    if (s->line != L_START || s->data_seen)
        out[n++] = '\n';   /* ends the event */
    return n;
}
