/* Completion request bodies: the strict fast scanner and the jansson
 * parser behind it. See reqparse.h for why there are two and how they
 * must agree. */
#include "tests/modelsim/reqparse.h"
#include "tests/modelsim/modelsim.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Shared. */

static uint32_t clamp_u32(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* A chat template adds a few tokens around every message. */
static uint32_t chat_prompt_tokens(size_t bytes, size_t nmsg)
{
    return clamp_u32((uint64_t)ms_tokens_for_bytes(bytes) + 4 * (uint64_t)nmsg + 2);
}

static uint32_t text_prompt_tokens(size_t bytes)
{
    uint32_t t = ms_tokens_for_bytes(bytes);
    return t ? t : 1;
}

static void set_model(struct ms_parsed *p, const char *s, size_t n)
{
    p->model_given = 1;
    p->model_truncated = n >= sizeof p->model;
    if (p->model_truncated)
        n = sizeof p->model - 1;
    memcpy(p->model, s, n);
    p->model[n] = 0;
}

static void parsed_init(struct ms_parsed *p)
{
    memset(p, 0, sizeof *p);
    p->max_tokens = -1;
}

/* ------------------------------------------------------------------------ */
/* The fast scanner. Every function returns 0, or -EAGAIN when jansson must
 * decide (anything invalid, unusual or beyond what it handles). */

#define FAST_MAX_DEPTH 32

struct fp {
    const unsigned char *p, *e;
};

static void ws(struct fp *f)
{
    while (f->p < f->e && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
        f->p++;
}

static int eat(struct fp *f, unsigned char c)
{
    ws(f);
    if (f->p < f->e && *f->p == c) {
        f->p++;
        return 1;
    }
    return 0;
}

static int peek(struct fp *f)
{
    ws(f);
    return f->p < f->e ? *f->p : -1;
}

/* A string at f->p ('"'). Hashes its decoded bytes into *h when h is set,
 * adds their count to *len when len is set; *raw / *rawlen get the content
 * between the quotes and *esc whether it had escapes. Only ASCII without
 * \u escapes (jansson validates UTF-8 and surrogates). */
static int fstr(struct fp *f, uint64_t *h, size_t *len, const char **raw, size_t *rawlen,
                int *esc)
{
    if (peek(f) != '"')
        return -EAGAIN;
    const unsigned char *s = ++f->p, *run = s;
    size_t n = 0;
    int had_esc = 0;
    for (;;) {
        if (f->p >= f->e)
            return -EAGAIN;
        unsigned char c = *f->p;
        if (c == '"')
            break;
        if (c < 0x20 || c >= 0x80)
            return -EAGAIN;
        if (c != '\\') {
            f->p++;
            n++;
            continue;
        }
        if (f->p + 1 >= f->e)
            return -EAGAIN;
        char d;
        switch (f->p[1]) {
        case '"': d = '"'; break;
        case '\\': d = '\\'; break;
        case '/': d = '/'; break;
        case 'b': d = '\b'; break;
        case 'f': d = '\f'; break;
        case 'n': d = '\n'; break;
        case 'r': d = '\r'; break;
        case 't': d = '\t'; break;
        default: return -EAGAIN;   /* \u, or invalid */
        }
        if (h) {
            *h = ms_hash(*h, run, (size_t)(f->p - run));
            *h = ms_hash(*h, &d, 1);
        }
        had_esc = 1;
        n++;
        f->p += 2;
        run = f->p;
    }
    if (h)
        *h = ms_hash(*h, run, (size_t)(f->p - run));
    if (len)
        *len += n;
    if (raw) {
        *raw = (const char *)s;
        *rawlen = (size_t)(f->p - s);
    }
    if (esc)
        *esc = had_esc;
    f->p++;
    return 0;
}

/* A number. *is_int: no fraction or exponent; then *iv holds it. Numbers
 * jansson might refuse (overflowing integers or reals) are left to it. */
static int fnum(struct fp *f, long long *iv, int *is_int)
{
    ws(f);
    const unsigned char *s = f->p;
    int neg = 0, digits = 0, frac = 0;
    long long v = 0;
    if (f->p < f->e && *f->p == '-') {
        neg = 1;
        f->p++;
    }
    if (f->p >= f->e || *f->p < '0' || *f->p > '9')
        return -EAGAIN;
    if (*f->p == '0') {
        f->p++;
        digits = 1;
    } else {
        while (f->p < f->e && *f->p >= '0' && *f->p <= '9') {
            if (++digits > 15)
                return -EAGAIN;
            v = v * 10 + (*f->p - '0');
            f->p++;
        }
    }
    if (f->p < f->e && *f->p == '.') {
        f->p++;
        frac = 1;
        int fd = 0;
        while (f->p < f->e && *f->p >= '0' && *f->p <= '9') {
            if (++fd + digits > 15)
                return -EAGAIN;
            f->p++;
        }
        if (fd == 0)
            return -EAGAIN;
    }
    if (f->p < f->e && (*f->p == 'e' || *f->p == 'E'))
        return -EAGAIN;
    (void)s;
    if (is_int)
        *is_int = !frac;
    if (iv)
        *iv = neg ? -v : v;
    return 0;
}

static int flit(struct fp *f, const char *lit, size_t n)
{
    ws(f);
    if ((size_t)(f->e - f->p) < n || memcmp(f->p, lit, n) != 0)
        return -EAGAIN;
    f->p += n;
    return 0;
}

static int fskip(struct fp *f, int depth)
{
    if (depth > FAST_MAX_DEPTH)
        return -EAGAIN;
    switch (peek(f)) {
    case '"':
        return fstr(f, NULL, NULL, NULL, NULL, NULL);
    case 't':
        return flit(f, "true", 4);
    case 'f':
        return flit(f, "false", 5);
    case 'n':
        return flit(f, "null", 4);
    case '{':
        f->p++;
        if (eat(f, '}'))
            return 0;
        do {
            if (fstr(f, NULL, NULL, NULL, NULL, NULL) < 0 || !eat(f, ':') || fskip(f, depth + 1) < 0)
                return -EAGAIN;
        } while (eat(f, ','));
        return eat(f, '}') ? 0 : -EAGAIN;
    case '[':
        f->p++;
        if (eat(f, ']'))
            return 0;
        do {
            if (fskip(f, depth + 1) < 0)
                return -EAGAIN;
        } while (eat(f, ','));
        return eat(f, ']') ? 0 : -EAGAIN;
    default:
        return fnum(f, NULL, NULL);
    }
}

/* A key without escapes (an escaped key could spell a known one). */
static int fkey(struct fp *f, const char **k, size_t *kn)
{
    int esc;
    if (fstr(f, NULL, NULL, k, kn, &esc) < 0 || esc || !eat(f, ':'))
        return -EAGAIN;
    return 0;
}

#define KEY_IS(k, kn, lit) ((kn) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* null, true or false: *out -1 (null), 1, 0. */
static int fbool(struct fp *f, int *out)
{
    switch (peek(f)) {
    case 'n': *out = -1; return flit(f, "null", 4);
    case 't': *out = 1; return flit(f, "true", 4);
    case 'f': *out = 0; return flit(f, "false", 5);
    default: return -EAGAIN;
    }
}

/* null (-1) or an integer >= 1. */
static int fcount(struct fp *f, long long *out)
{
    if (peek(f) == 'n') {
        *out = -1;
        return flit(f, "null", 4);
    }
    int is_int;
    if (fnum(f, out, &is_int) < 0 || !is_int || *out < 1)
        return -EAGAIN;
    return 0;
}

/* One message content value: a string, null, or an array of part objects
 * whose (last) "text" member, when a string, counts. */
static int fcontent(struct fp *f, uint64_t *h, size_t *bytes)
{
    int c = peek(f);
    if (c == '"')
        return fstr(f, h, bytes, NULL, NULL, NULL);
    if (c == 'n')
        return flit(f, "null", 4);
    if (c != '[')
        return -EAGAIN;
    f->p++;
    if (eat(f, ']'))
        return 0;
    do {
        if (peek(f) != '{')
            return -EAGAIN;
        f->p++;
        const unsigned char *text = NULL;
        if (!eat(f, '}')) {
            do {
                const char *k;
                size_t kn;
                if (fkey(f, &k, &kn) < 0)
                    return -EAGAIN;
                if (KEY_IS(k, kn, "text")) {
                    text = peek(f) == '"' ? f->p : NULL;
                }
                if (fskip(f, 2) < 0)
                    return -EAGAIN;
            } while (eat(f, ','));
            if (!eat(f, '}'))
                return -EAGAIN;
        }
        if (text) {
            struct fp t = {text, f->e};
            if (fstr(&t, h, bytes, NULL, NULL, NULL) < 0)
                return -EAGAIN;
        }
    } while (eat(f, ','));
    return eat(f, ']') ? 0 : -EAGAIN;
}

/* "messages": hashes role, "\n", content of each message, in that order
 * whatever the order of the members (so positions are kept, then read). */
static int fmessages(struct fp *f, struct ms_parsed *p)
{
    if (peek(f) != '[')
        return -EAGAIN;
    f->p++;
    if (eat(f, ']'))
        return -EAGAIN;   /* empty: an error, jansson words it */
    uint64_t h = MS_HASH_INIT;
    size_t bytes = 0, nmsg = 0;
    do {
        if (peek(f) != '{')
            return -EAGAIN;
        f->p++;
        const unsigned char *role = NULL, *content = NULL;
        if (!eat(f, '}')) {
            do {
                const char *k;
                size_t kn;
                if (fkey(f, &k, &kn) < 0)
                    return -EAGAIN;
                ws(f);
                if (KEY_IS(k, kn, "role"))
                    role = f->p;
                else if (KEY_IS(k, kn, "content"))
                    content = f->p;
                if (fskip(f, 2) < 0)
                    return -EAGAIN;
            } while (eat(f, ','));
            if (!eat(f, '}'))
                return -EAGAIN;
        }
        if (!role || *role != '"')
            return -EAGAIN;
        struct fp r = {role, f->e};
        if (fstr(&r, &h, NULL, NULL, NULL, NULL) < 0)
            return -EAGAIN;
        h = ms_hash(h, "\n", 1);
        if (content) {
            struct fp c = {content, f->e};
            if (fcontent(&c, &h, &bytes) < 0)
                return -EAGAIN;
        }
        nmsg++;
    } while (eat(f, ','));
    if (!eat(f, ']'))
        return -EAGAIN;
    p->prompt_hash = h;
    p->prompt_tokens = chat_prompt_tokens(bytes, nmsg);
    return 0;
}

/* A non-empty array of token ids (integers >= 0), after its '['. */
static int fids(struct fp *f, struct ms_parsed *p)
{
    uint64_t h = MS_HASH_INIT;
    size_t n = 0;
    do {
        long long v;
        int is_int;
        if (fnum(f, &v, &is_int) < 0 || !is_int || v < 0)
            return -EAGAIN;
        h = ms_hash(h, &v, sizeof v);
        n++;
    } while (eat(f, ','));
    if (!eat(f, ']'))
        return -EAGAIN;
    p->prompt_hash = h;
    p->prompt_tokens = clamp_u32(n);
    return 0;
}

/* "prompt": a string, [string], [ids...] or [[ids...]]. */
static int fprompt(struct fp *f, struct ms_parsed *p)
{
    size_t bytes = 0;
    uint64_t h = MS_HASH_INIT;
    int c = peek(f);
    if (c == '"') {
        if (fstr(f, &h, &bytes, NULL, NULL, NULL) < 0)
            return -EAGAIN;
        goto text;
    }
    if (c != '[')
        return -EAGAIN;
    f->p++;
    c = peek(f);
    if (c == '"') {
        if (fstr(f, &h, &bytes, NULL, NULL, NULL) < 0 || !eat(f, ']'))
            return -EAGAIN;
        goto text;
    }
    if (c == '[') {
        f->p++;
        if (peek(f) == ']' || fids(f, p) < 0 || !eat(f, ']'))
            return -EAGAIN;
        return 0;
    }
    if (c == ']')
        return -EAGAIN;
    return fids(f, p);
text:
    p->prompt_hash = h;
    p->prompt_tokens = text_prompt_tokens(bytes);
    return 0;
}

int ms_parse_fast(const char *body, size_t n, int chat, struct ms_parsed *p)
{
    struct fp f = {(const unsigned char *)body, (const unsigned char *)body + n};
    int have_input = 0, stream = 0, so_present = 0, include_usage = 0;
    long long mt = -1, mct = -1;
    parsed_init(p);
    if (!eat(&f, '{'))
        return -EAGAIN;
    if (eat(&f, '}'))
        return -EAGAIN;
    do {
        const char *k;
        size_t kn;
        if (fkey(&f, &k, &kn) < 0)
            return -EAGAIN;
        if (KEY_IS(k, kn, "model")) {
            int c = peek(&f);
            if (c == 'n') {
                if (flit(&f, "null", 4) < 0)
                    return -EAGAIN;
                p->model_given = 0;
                p->model[0] = 0;
            } else {
                const char *s;
                size_t sl;
                int esc;
                if (fstr(&f, NULL, NULL, &s, &sl, &esc) < 0 || esc)
                    return -EAGAIN;
                set_model(p, s, sl);
            }
        } else if (chat && KEY_IS(k, kn, "messages")) {
            if (fmessages(&f, p) < 0)
                return -EAGAIN;
            have_input = 1;
        } else if (!chat && KEY_IS(k, kn, "prompt")) {
            if (fprompt(&f, p) < 0)
                return -EAGAIN;
            have_input = 1;
        } else if (KEY_IS(k, kn, "stream")) {
            int b;
            if (fbool(&f, &b) < 0)
                return -EAGAIN;
            stream = b == 1;
        } else if (KEY_IS(k, kn, "stream_options")) {
            int c = peek(&f);
            if (c == 'n') {
                if (flit(&f, "null", 4) < 0)
                    return -EAGAIN;
                so_present = 0;
                include_usage = 0;
            } else {
                if (c != '{')
                    return -EAGAIN;
                f.p++;
                so_present = 1;
                include_usage = 0;
                if (!eat(&f, '}')) {
                    do {
                        const char *k2;
                        size_t kn2;
                        if (fkey(&f, &k2, &kn2) < 0)
                            return -EAGAIN;
                        if (KEY_IS(k2, kn2, "include_usage")) {
                            int b;
                            if (fbool(&f, &b) < 0)
                                return -EAGAIN;
                            include_usage = b == 1;
                        } else if (fskip(&f, 1) < 0) {
                            return -EAGAIN;
                        }
                    } while (eat(&f, ','));
                    if (!eat(&f, '}'))
                        return -EAGAIN;
                }
            }
        } else if (KEY_IS(k, kn, "max_tokens")) {
            if (fcount(&f, &mt) < 0)
                return -EAGAIN;
        } else if (chat && KEY_IS(k, kn, "max_completion_tokens")) {
            if (fcount(&f, &mct) < 0)
                return -EAGAIN;
        } else if (KEY_IS(k, kn, "n")) {
            long long nv;
            if (fcount(&f, &nv) < 0 || (nv != -1 && nv != 1))
                return -EAGAIN;
        } else if (fskip(&f, 1) < 0) {
            return -EAGAIN;
        }
    } while (eat(&f, ','));
    if (!eat(&f, '}'))
        return -EAGAIN;
    ws(&f);
    if (f.p != f.e || !have_input || (so_present && !stream))
        return -EAGAIN;
    p->stream = stream;
    p->include_usage = include_usage;
    p->max_tokens = mct > 0 ? mct : mt;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* jansson: every body the scanner declines, and all the error messages. */

static int fail(struct ms_parse_error *e, const char *param, const char *msg)
{
    e->param = param;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return -EINVAL;
}

/* Text of a message's content: a string, null, or an array of parts of
 * which the "text" ones count. */
static int content_text(json_t *content, uint64_t *hash, size_t *bytes)
{
    if (!content || json_is_null(content))
        return 0;
    if (json_is_string(content)) {
        size_t n = json_string_length(content);
        *hash = ms_hash(*hash, json_string_value(content), n);
        *bytes += n;
        return 0;
    }
    if (!json_is_array(content))
        return -EINVAL;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        if (!json_is_object(part))
            return -EINVAL;
        json_t *text = json_object_get(part, "text");
        if (json_is_string(text)) {
            size_t n = json_string_length(text);
            *hash = ms_hash(*hash, json_string_value(text), n);
            *bytes += n;
        }
    }
    return 0;
}

static int parse_chat(json_t *root, struct ms_parsed *p, struct ms_parse_error *e)
{
    json_t *msgs = json_object_get(root, "messages");
    if (!msgs)
        return fail(e, "messages", "messages: Field required");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return fail(e, "messages", "messages: Input should be a non-empty list");
    size_t i, bytes = 0;
    json_t *m;
    uint64_t h = MS_HASH_INIT;
    json_array_foreach(msgs, i, m) {
        json_t *role = json_object_get(m, "role");
        if (!json_is_object(m) || !json_is_string(role))
            return fail(e, "messages",
                        "messages: each message must be an object with a string role");
        h = ms_hash(h, json_string_value(role), json_string_length(role));
        h = ms_hash(h, "\n", 1);
        if (content_text(json_object_get(m, "content"), &h, &bytes) < 0)
            return fail(e, "messages",
                        "messages: content must be a string, null or a list of parts");
    }
    p->prompt_tokens = chat_prompt_tokens(bytes, json_array_size(msgs));
    p->prompt_hash = h;
    json_t *mct = json_object_get(root, "max_completion_tokens");
    if (mct && !json_is_null(mct)) {
        if (!json_is_integer(mct) || json_integer_value(mct) < 1)
            return fail(e, "max_completion_tokens", "max_completion_tokens must be at least 1");
        p->max_tokens = json_integer_value(mct);
    }
    return 0;
}

static int parse_completion(json_t *root, struct ms_parsed *p, struct ms_parse_error *e)
{
    json_t *prompt = json_object_get(root, "prompt");
    uint64_t h = MS_HASH_INIT;
    if (!prompt)
        return fail(e, "prompt", "prompt: Field required");
    /* One prompt only: a string, a list of one string, a list of token ids
     * or a list of one list of token ids. */
    if (json_is_array(prompt) && json_array_size(prompt) == 1 &&
        (json_is_string(json_array_get(prompt, 0)) || json_is_array(json_array_get(prompt, 0))))
        prompt = json_array_get(prompt, 0);
    if (json_is_string(prompt)) {
        size_t n = json_string_length(prompt);
        p->prompt_hash = ms_hash(h, json_string_value(prompt), n);
        p->prompt_tokens = text_prompt_tokens(n);
        return 0;
    }
    if (json_is_array(prompt) && json_array_size(prompt) > 0) {
        size_t i;
        json_t *id;
        json_array_foreach(prompt, i, id) {
            if (!json_is_integer(id) || json_integer_value(id) < 0)
                return fail(e, "prompt",
                            "prompt: modelsim serves one prompt per request: a string or a "
                            "list of token ids");
            long long v = json_integer_value(id);
            h = ms_hash(h, &v, sizeof v);
        }
        p->prompt_hash = h;
        p->prompt_tokens = clamp_u32(json_array_size(prompt));
        return 0;
    }
    return fail(e, "prompt", "prompt: expected a non-empty string or list of token ids");
}

int ms_parse_json(const char *body, size_t n, int chat, struct ms_parsed *p,
                  struct ms_parse_error *e)
{
    json_error_t jerr;
    int rc = -EINVAL;
    parsed_init(p);
    json_t *root = json_loadb(body, n, 0, &jerr);
    if (!root) {
        e->param = NULL;
        snprintf(e->msg, sizeof e->msg, "Invalid JSON body at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        fail(e, NULL, "The request body must be a JSON object");
        goto out;
    }
    json_t *v = json_object_get(root, "model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v)) {
            fail(e, "model", "model: Input should be a valid string");
            goto out;
        }
        set_model(p, json_string_value(v), json_string_length(v));
    }
    if ((chat ? parse_chat : parse_completion)(root, p, e) < 0)
        goto out;
    v = json_object_get(root, "max_tokens");
    if (v && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1) {
            fail(e, "max_tokens", "max_tokens must be at least 1");
            goto out;
        }
        if (p->max_tokens < 0)
            p->max_tokens = json_integer_value(v);
    }
    v = json_object_get(root, "stream");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            fail(e, "stream", "stream: Input should be a valid boolean");
            goto out;
        }
        p->stream = json_is_true(v);
    }
    v = json_object_get(root, "stream_options");
    if (v && !json_is_null(v)) {
        if (!p->stream) {
            fail(e, "stream_options", "Stream options can only be defined when `stream=True`.");
            goto out;
        }
        json_t *iu = json_object_get(v, "include_usage");
        if (!json_is_object(v) || (iu && !json_is_null(iu) && !json_is_boolean(iu))) {
            fail(e, "stream_options", "stream_options: include_usage must be a boolean");
            goto out;
        }
        p->include_usage = json_is_true(iu);
    }
    v = json_object_get(root, "n");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1)) {
        fail(e, "n", "n: modelsim generates exactly one choice (n must be 1)");
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int ms_parse_request(const char *body, size_t n, int chat, struct ms_parsed *p,
                     struct ms_parse_error *e)
{
    if (ms_parse_fast(body, n, chat, p) == 0)
        return 0;
    return ms_parse_json(body, n, chat, p, e);
}
