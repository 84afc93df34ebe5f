/* JSON helpers on jansson: loading with limits, an error collector, typed
 * getters by key path, durations and sizes, unknown-key checks, compact
 * serialisation. See json.h for the contracts. */
#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The longest formatted key path a getter accepts. */
#define PATH_MAX_LEN 512

/* --- error collector ------------------------------------------------------ */

void mg_json_errs_init(struct mg_json_errs *e, size_t max)
{
    memset(e, 0, sizeof *e);
    e->max = max ? max : MG_JSON_ERRS_DEFAULT_MAX;
}

void mg_json_errs_free(struct mg_json_errs *e)
{
    /* Each error is one allocation: the struct's strings point into it. */
    for (size_t i = 0; i < e->n; i++)
        free((void *)e->items[i].file);
    free(e->items);
    e->items = NULL;
    e->n = e->cap = 0;
    e->dropped = 0;
}

void mg_json_errs_set_file(struct mg_json_errs *e, const char *file)
{
    if (!e)
        return;
    if (!file) {
        e->file[0] = '\0';
        return;
    }
    snprintf(e->file, sizeof e->file, "%s", file);
}

static int errs_vadd(struct mg_json_errs *e, const char *path, unsigned line,
                     unsigned col, const char *fmt, va_list ap)
{
    if (!e)
        return 0;
    char msg[MG_JSON_ERR_MSG_MAX];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        snprintf(msg, sizeof msg, "(unprintable error)");
    else if ((size_t)n >= sizeof msg)
        memcpy(msg + sizeof msg - 4, "...", 4);
    if (!path)
        path = "";
    for (size_t i = 0; i < e->n; i++) {
        const struct mg_json_error *it = &e->items[i];
        if (it->line == line && it->col == col && strcmp(it->path, path) == 0 &&
            strcmp(it->msg, msg) == 0 && strcmp(it->file, e->file) == 0)
            return 0;
    }
    if (e->n >= e->max) {
        e->dropped++;
        return -ENOSPC;
    }
    if (e->n == e->cap) {
        size_t ncap = e->cap ? e->cap * 2 : 8;
        if (ncap > e->max)
            ncap = e->max;
        struct mg_json_error *ni = realloc(e->items, ncap * sizeof *ni);
        if (!ni) {
            e->dropped++;
            return -ENOMEM;
        }
        e->items = ni;
        e->cap = ncap;
    }
    size_t fl = strlen(e->file), pl = strlen(path), ml = strlen(msg);
    char *blk = malloc(fl + pl + ml + 3);
    if (!blk) {
        e->dropped++;
        return -ENOMEM;
    }
    memcpy(blk, e->file, fl + 1);
    memcpy(blk + fl + 1, path, pl + 1);
    memcpy(blk + fl + pl + 2, msg, ml + 1);
    struct mg_json_error *it = &e->items[e->n++];
    it->file = blk;
    it->path = blk + fl + 1;
    it->msg = blk + fl + pl + 2;
    it->line = line;
    it->col = col;
    return 0;
}

int mg_json_errs_add(struct mg_json_errs *e, const char *path, unsigned line,
                     unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = errs_vadd(e, path, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

/* Internal: records and hands back the error code for the caller to return. */
static int fail(struct mg_json_errs *e, int rc, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct mg_json_errs *e, int rc, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errs_vadd(e, path, 0, 0, fmt, ap);
    va_end(ap);
    return rc;
}

size_t mg_json_errs_count(const struct mg_json_errs *e)
{
    return e ? e->n + e->dropped : 0;
}

int mg_json_errs_format(const struct mg_json_errs *e, struct mg_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < e->n && rc == 0; i++) {
        const struct mg_json_error *it = &e->items[i];
        if (it->file[0] && it->line)
            rc = mg_buf_printf(out, "%s:%u:%u: ", it->file, it->line, it->col);
        else if (it->file[0])
            rc = mg_buf_printf(out, "%s: ", it->file);
        else if (it->line)
            rc = mg_buf_printf(out, "%u:%u: ", it->line, it->col);
        if (rc == 0 && it->path[0])
            rc = mg_buf_printf(out, "%s: ", it->path);
        if (rc == 0)
            rc = mg_buf_printf(out, "%s\n", it->msg);
    }
    if (rc == 0 && e->dropped)
        rc = mg_buf_printf(out, "... and %zu more error%s\n", e->dropped,
                           e->dropped == 1 ? "" : "s");
    return rc;
}

/* --- loading -------------------------------------------------------------- */

void mg_json_limits_default(struct mg_json_limits *l)
{
    l->max_bytes = MG_JSON_DEFAULT_MAX_BYTES;
    l->max_depth = MG_JSON_DEFAULT_MAX_DEPTH;
}

/* Finds the first bracket nested deeper than max, outside strings, so a depth
 * bomb is refused before jansson recurses into it. Returns 0 or -1 with the
 * bracket's 1-based line and byte column. */
static int scan_depth(const char *d, size_t n, unsigned max, unsigned *line, unsigned *col)
{
    unsigned depth = 0, ln = 1;
    size_t line_start = 0;
    int in_str = 0, esc = 0;
    for (size_t i = 0; i < n; i++) {
        char c = d[i];
        if (in_str) {
            if (esc)
                esc = 0;
            else if (c == '\\')
                esc = 1;
            else if (c == '"')
                in_str = 0;
            else if (c == '\n') {
                ln++;
                line_start = i + 1;
            }
            continue;
        }
        switch (c) {
        case '"':
            in_str = 1;
            break;
        case '[':
        case '{':
            if (++depth > max) {
                *line = ln;
                *col = (unsigned)(i - line_start + 1);
                return -1;
            }
            break;
        case ']':
        case '}':
            if (depth)
                depth--;
            break;
        case '\n':
            ln++;
            line_start = i + 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

int mg_json_load(const char *data, size_t len, const struct mg_json_limits *lim,
                 const char *name, struct mg_json_errs *e, json_t **out)
{
    struct mg_json_limits def;
    if (!lim) {
        mg_json_limits_default(&def);
        lim = &def;
    }
    *out = NULL;
    if (e && name)
        mg_json_errs_set_file(e, name);
    if (len > lim->max_bytes)
        return fail(e, -EFBIG, "", "document is %zu bytes, more than the limit of %zu",
                    len, lim->max_bytes);
    unsigned max_depth = lim->max_depth;
    if (max_depth == 0 || max_depth > MG_JSON_HARD_MAX_DEPTH)
        max_depth = MG_JSON_HARD_MAX_DEPTH;
    unsigned line, col;
    if (scan_depth(data, len, max_depth, &line, &col) < 0) {
        mg_json_errs_add(e, "", line, col, "nesting deeper than the limit of %u", max_depth);
        return -EINVAL;
    }
    json_error_t err;
    json_t *v = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!v) {
        if (json_error_code(&err) == json_error_out_of_memory)
            return fail(e, -ENOMEM, "", "out of memory");
        mg_json_errs_add(e, "", err.line > 0 ? (unsigned)err.line : 0,
                         err.column > 0 ? (unsigned)err.column : 0, "%s", err.text);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int mg_read_file(const char *path, size_t max, char **data, size_t *len)
{
    int rc = 0;
    char *buf = NULL;
    size_t n = 0, cap;
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1)
        return -errno;
    struct stat st;
    /* The size is only a hint for the first allocation: it is re-checked
     * against max while reading. */
    cap = 4096;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uintmax_t)st.st_size < (uintmax_t)max)
        cap = (size_t)st.st_size + 1;
    if (cap > max + 1 && max < SIZE_MAX)
        cap = max + 1;
    buf = malloc(cap + 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    for (;;) {
        if (n == cap) {
            if (n > max) {
                rc = -EFBIG;
                goto out;
            }
            size_t ncap = cap * 2;
            if (ncap > max + 1)
                ncap = max + 1;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                rc = -ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            rc = -EFBIG;
            goto out;
        }
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

int mg_json_load_file(const char *path, const struct mg_json_limits *lim,
                      struct mg_json_errs *e, json_t **out)
{
    struct mg_json_limits def;
    if (!lim) {
        mg_json_limits_default(&def);
        lim = &def;
    }
    *out = NULL;
    mg_json_errs_set_file(e, path);
    char *data;
    size_t len;
    int rc = mg_read_file(path, lim->max_bytes, &data, &len);
    if (rc == -EFBIG)
        return fail(e, rc, "", "file is larger than the limit of %zu bytes", lim->max_bytes);
    if (rc < 0)
        return fail(e, rc, "", "cannot read: %s", strerror(-rc));
    rc = mg_json_load(data, len, lim, NULL, e, out);
    free(data);
    return rc;
}

/* --- serialisation -------------------------------------------------------- */

struct dump_ctx {
    struct mg_buf *b;
    int rc;
};

static int dump_cb(const char *p, size_t n, void *data)
{
    struct dump_ctx *c = data;
    c->rc = mg_buf_append(c->b, p, n);
    return c->rc < 0 ? -1 : 0;
}

int mg_json_dump(const json_t *v, struct mg_buf *out, size_t flags)
{
    size_t saved = out->len;
    struct dump_ctx c = {out, 0};
    if (json_dump_callback(v, dump_cb, &c, flags | JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        /* mg_buf may compact while growing, which keeps len meaningful. */
        out->len = saved;
        return c.rc < 0 ? c.rc : -EINVAL;
    }
    return 0;
}

/* --- lookup --------------------------------------------------------------- */

const char *mg_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

/* Walks path from root. Returns 0 with *out, -ENOENT (absent or null on the
 * way), -EINVAL (bad syntax), -ENAMETOOLONG (a quoted key over 255 bytes) or
 * -ENOTDIR with *bad_len the length of the prefix naming the container of
 * the wrong kind and *want what it should have been. */
static int walk(json_t *root, const char *path, json_t **out, size_t *bad_len,
                const char **want)
{
    json_t *cur = root;
    const char *p = path;
    if (!cur || json_is_null(cur))
        return -ENOENT;
    while (*p) {
        size_t seg_start = (size_t)(p - path);
        if (*p == '[' && p[1] == '"') {
            char key[256];
            size_t kl = 0;
            p += 2;
            while (*p && *p != '"') {
                char c = *p++;
                if (c == '\\') {
                    c = *p++;
                    if (c != '"' && c != '\\')
                        return -EINVAL;
                }
                if (kl >= sizeof key)
                    return -ENAMETOOLONG;
                key[kl++] = c;
            }
            if (p[0] != '"' || p[1] != ']')
                return -EINVAL;
            p += 2;
            if (!json_is_object(cur)) {
                *bad_len = seg_start;
                *want = "an object";
                return -ENOTDIR;
            }
            cur = json_object_getn(cur, key, kl);
        } else if (*p == '[') {
            size_t idx = 0;
            const char *d = ++p;
            while (*p >= '0' && *p <= '9') {
                if (idx > (SIZE_MAX - 9) / 10)
                    return -EINVAL;
                idx = idx * 10 + (size_t)(*p++ - '0');
            }
            if (p == d || *p != ']')
                return -EINVAL;
            p++;
            if (!json_is_array(cur)) {
                *bad_len = seg_start;
                *want = "an array";
                return -ENOTDIR;
            }
            cur = json_array_get(cur, idx);
        } else {
            if (p != path) {
                if (*p != '.')
                    return -EINVAL;
                p++;
            }
            const char *k = p;
            while (*p && *p != '.' && *p != '[' && *p != ']')
                p++;
            if (p == k || *p == ']')
                return -EINVAL;
            if (!json_is_object(cur)) {
                *bad_len = seg_start;
                *want = "an object";
                return -ENOTDIR;
            }
            cur = json_object_getn(cur, k, (size_t)(p - k));
        }
        if (!cur || json_is_null(cur))
            return -ENOENT;
    }
    *out = cur;
    return 0;
}

int mg_json_find(json_t *root, json_t **out, const char *fmt, ...)
{
    char path[PATH_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof path)
        return -ENAMETOOLONG;
    size_t bad_len;
    const char *want;
    return walk(root, path, out, &bad_len, &want);
}

/* Formats the path and finds its value. Returns 0 (*v set), 1 (absent:
 * recorded as missing when required), or a negative error already recorded. */
static int resolve(json_t *root, struct mg_json_errs *e, int required, char *path,
                   const char *fmt, va_list ap, json_t **v)
{
    int n = vsnprintf(path, PATH_MAX_LEN, fmt, ap);
    if (n < 0 || (size_t)n >= PATH_MAX_LEN) {
        path[0] = '\0';
        return fail(e, -ENAMETOOLONG, "", "key path longer than %d bytes", PATH_MAX_LEN - 1);
    }
    size_t bad_len = 0;
    const char *want = "";
    int rc = walk(root, path, v, &bad_len, &want);
    if (rc == 0)
        return 0;
    if (rc == -ENOENT) {
        if (required)
            return fail(e, -ENOENT, path, "missing required field");
        return 1;
    }
    if (rc == -ENOTDIR) {
        /* Name the container that has the wrong kind, found again by its
         * prefix (the walk succeeded up to there). */
        char prefix[PATH_MAX_LEN];
        memcpy(prefix, path, bad_len);
        prefix[bad_len] = '\0';
        json_t *c = NULL;
        size_t bl2;
        const char *w2;
        if (walk(root, prefix, &c, &bl2, &w2) != 0 || !c)
            c = NULL;
        return fail(e, -EINVAL, prefix, "expected %s, got %s", want, c ? mg_json_kind(c) : "?");
    }
    return fail(e, rc, path, "malformed key path");
}

/* A short, escaped, quoted copy of a string for error messages. */
static const char *quote(const char *s, size_t n, char *dst, size_t cap)
{
    size_t o = 0;
    dst[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            dst[o++] = '\\';
            dst[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        } else {
            dst[o++] = (char)c;
        }
    }
    dst[o++] = '"';
    dst[o] = '\0';
    return dst;
}

static int type_error(struct mg_json_errs *e, const char *path, const char *want, const json_t *v)
{
    return fail(e, -EINVAL, path, "expected %s, got %s", want, mg_json_kind(v));
}

static int get_object(json_t *root, struct mg_json_errs *e, json_t **out, int req,
                      const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!json_is_object(v))
        return type_error(e, path, "an object", v);
    *out = v;
    return 0;
}

static int get_array(json_t *root, struct mg_json_errs *e, json_t **out, int req,
                     const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!json_is_array(v))
        return type_error(e, path, "an array", v);
    *out = v;
    return 0;
}

static int get_string(json_t *root, struct mg_json_errs *e, const char **out, int req,
                      const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (json_is_boolean(v) || json_is_number(v))
        /* The classic YAML surprise: version: 1.10 or enabled: on. */
        return fail(e, -EINVAL, path, "expected a string, got %s (quote the value if it is meant as text)",
                    mg_json_kind(v));
    if (!json_is_string(v))
        return type_error(e, path, "a string", v);
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return fail(e, -EINVAL, path, "string contains a NUL character");
    *out = s;
    return 0;
}

static int get_int(json_t *root, struct mg_json_errs *e, long long *out, long long min,
                   long long max, int req, const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* -2^63 and 2^63 bound the doubles that convert exactly. */
        if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return fail(e, -EINVAL, path, "expected an integer, got %g", d);
        x = (long long)d;
    } else {
        return type_error(e, path, "an integer", v);
    }
    if (x < min || x > max)
        return fail(e, -EINVAL, path, "%lld is out of range [%lld, %lld]", x, min, max);
    *out = x;
    return 0;
}

static int get_number(json_t *root, struct mg_json_errs *e, double *out, double min,
                      double max, int req, const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!json_is_number(v))
        return type_error(e, path, "a number", v);
    double x = json_number_value(v);
    if (!(x >= min && x <= max))
        return fail(e, -EINVAL, path, "%g is out of range [%g, %g]", x, min, max);
    *out = x;
    return 0;
}

static int get_bool(json_t *root, struct mg_json_errs *e, int *out, int req,
                    const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!json_is_boolean(v))
        return type_error(e, path, "a boolean", v);
    *out = json_is_true(v);
    return 0;
}

/* "1h2m3s4ms"-style text for range messages. */
static const char *fmt_ms(uint64_t ms, char *dst, size_t cap)
{
    if (ms == 0) {
        snprintf(dst, cap, "0s");
        return dst;
    }
    static const struct { const char *u; uint64_t m; } parts[] = {
        {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1},
    };
    size_t o = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && o < cap; i++) {
        uint64_t q = ms / parts[i].m;
        ms %= parts[i].m;
        if (q) {
            int n = snprintf(dst + o, cap - o, "%llu%s", (unsigned long long)q, parts[i].u);
            if (n < 0)
                break;
            o += (size_t)n;
        }
    }
    return dst;
}

static int get_duration(json_t *root, struct mg_json_errs *e, uint64_t *out, uint64_t min,
                        uint64_t max, int req, const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN], q[80], a[48], b[48], c[48];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!json_is_string(v))
        return fail(e, -EINVAL, path, "expected a duration such as \"500ms\", \"30s\" or \"1m30s\", got %s",
                    mg_json_kind(v));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    uint64_t ms;
    const char *why = NULL;
    rc = mg_duration_parse(s, n, &ms, &why);
    if (rc < 0)
        return fail(e, -EINVAL, path, "invalid duration %s: %s", quote(s, n, q, sizeof q), why);
    if (ms < min || ms > max)
        return fail(e, -EINVAL, path, "duration %s is out of range [%s, %s]",
                    fmt_ms(ms, a, sizeof a), fmt_ms(min, b, sizeof b), fmt_ms(max, c, sizeof c));
    *out = ms;
    return 0;
}

static int get_size(json_t *root, struct mg_json_errs *e, uint64_t *out, uint64_t min,
                    uint64_t max, int req, const char *fmt, va_list ap)
{
    char path[PATH_MAX_LEN], q[80];
    json_t *v;
    int rc = resolve(root, e, req, path, fmt, ap, &v);
    if (rc)
        return rc > 0 ? 0 : rc;
    uint64_t x;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return fail(e, -EINVAL, path, "a size cannot be negative");
        x = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *why = NULL;
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (mg_size_parse(s, n, &x, &why) < 0)
            return fail(e, -EINVAL, path, "invalid size %s: %s", quote(s, n, q, sizeof q), why);
    } else {
        return fail(e, -EINVAL, path, "expected a size such as 1048576, \"512Ki\" or \"1Mi\", got %s",
                    mg_json_kind(v));
    }
    if (x < min || x > max)
        return fail(e, -EINVAL, path, "%llu bytes is out of range [%llu, %llu]",
                    (unsigned long long)x, (unsigned long long)min, (unsigned long long)max);
    *out = x;
    return 0;
}

/* The public getters: a required and an optional face for each. */
#define GETTER_PAIR(name, impl, outtype)                                          \
    int mg_json_get_##name(json_t *root, struct mg_json_errs *e, outtype *out,    \
                           const char *fmt, ...)                                  \
    {                                                                             \
        va_list ap;                                                               \
        va_start(ap, fmt);                                                        \
        int rc = impl(root, e, out, 1, fmt, ap);                                  \
        va_end(ap);                                                               \
        return rc;                                                                \
    }                                                                             \
    int mg_json_opt_##name(json_t *root, struct mg_json_errs *e, outtype *out,    \
                           const char *fmt, ...)                                  \
    {                                                                             \
        va_list ap;                                                               \
        va_start(ap, fmt);                                                        \
        int rc = impl(root, e, out, 0, fmt, ap);                                  \
        va_end(ap);                                                               \
        return rc;                                                                \
    }

#define GETTER_PAIR_RANGE(name, impl, outtype, rtype)                             \
    int mg_json_get_##name(json_t *root, struct mg_json_errs *e, outtype *out,    \
                           rtype min, rtype max, const char *fmt, ...)            \
    {                                                                             \
        va_list ap;                                                               \
        va_start(ap, fmt);                                                        \
        int rc = impl(root, e, out, min, max, 1, fmt, ap);                        \
        va_end(ap);                                                               \
        return rc;                                                                \
    }                                                                             \
    int mg_json_opt_##name(json_t *root, struct mg_json_errs *e, outtype *out,    \
                           rtype min, rtype max, const char *fmt, ...)            \
    {                                                                             \
        va_list ap;                                                               \
        va_start(ap, fmt);                                                        \
        int rc = impl(root, e, out, min, max, 0, fmt, ap);                        \
        va_end(ap);                                                               \
        return rc;                                                                \
    }

GETTER_PAIR(object, get_object, json_t *)
GETTER_PAIR(array, get_array, json_t *)
GETTER_PAIR(string, get_string, const char *)
GETTER_PAIR(bool, get_bool, int)
GETTER_PAIR_RANGE(int, get_int, long long, long long)
GETTER_PAIR_RANGE(number, get_number, double, double)
GETTER_PAIR_RANGE(duration, get_duration, uint64_t, uint64_t)
GETTER_PAIR_RANGE(size, get_size, uint64_t, uint64_t)

/* --- unknown keys --------------------------------------------------------- */

/* Edit distance, for "did you mean"; keys longer than 63 bytes get none. */
static unsigned edit_distance(const char *a, size_t an, const char *b, size_t bn)
{
    unsigned row[64];
    if (an >= 64 || bn >= 64)
        return UINT_MAX;
    for (size_t j = 0; j <= bn; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= an; i++) {
        unsigned prev = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= bn; j++) {
            unsigned cur = row[j];
            unsigned cost = a[i - 1] == b[j - 1] ? 0 : 1;
            unsigned best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[bn];
}

/* Appends key to path the way the path syntax reads it back. */
static void path_join(char *dst, size_t cap, const char *path, const char *key, size_t kl)
{
    int simple = kl > 0;
    for (size_t i = 0; i < kl && simple; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '.' || c == '[' || c == ']' || c == '"' || c == '\\' || c < 0x20 || c == 0x7f)
            simple = 0;
    }
    size_t o = (size_t)snprintf(dst, cap, "%s", path);
    if (o >= cap)
        return;
    if (simple) {
        snprintf(dst + o, cap - o, "%s%.*s", path[0] ? "." : "", (int)kl, key);
        return;
    }
    char q[256];
    size_t qo = 0;
    for (size_t i = 0; i < kl && qo + 5 < sizeof q; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '"' || c == '\\')
            q[qo++] = '\\';
        q[qo++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    q[qo] = '\0';
    snprintf(dst + o, cap - o, "[\"%s\"]", q);
}

int mg_json_check_keys(json_t *root, struct mg_json_errs *e, const char *const *allowed,
                       const char *fmt, ...)
{
    char path[PATH_MAX_LEN], kpath[PATH_MAX_LEN + 64];
    json_t *obj;
    va_list ap;
    va_start(ap, fmt);
    int rc = resolve(root, e, 0, path, fmt, ap, &obj);
    va_end(ap);
    if (rc)
        return rc > 0 ? 0 : rc;
    if (!json_is_object(obj))
        return type_error(e, path, "an object", obj);
    const char *key;
    size_t kl;
    json_t *val;
    int bad = 0;
    json_object_keylen_foreach(obj, key, kl, val) {
        const char *best = NULL;
        unsigned best_d = UINT_MAX;
        int known = 0;
        for (const char *const *a = allowed; a && *a; a++) {
            size_t al = strlen(*a);
            if (al == kl && memcmp(*a, key, kl) == 0) {
                known = 1;
                break;
            }
            unsigned d = edit_distance(key, kl, *a, al);
            if (d < best_d) {
                best_d = d;
                best = *a;
            }
        }
        if (known)
            continue;
        bad = 1;
        path_join(kpath, sizeof kpath, path, key, kl);
        if (best && best_d <= 2 && best_d < strlen(best)) {
            fail(e, -EINVAL, kpath, "unknown field (did you mean \"%s\"?)", best);
            continue;
        }
        /* No near miss: list what is allowed, as far as it fits. */
        char list[300];
        size_t o = 0;
        list[0] = '\0';
        for (const char *const *a = allowed; a && *a; a++) {
            size_t al = strlen(*a);
            /* Keep room for the ", ..." that says the list goes on. */
            if (o + al + 2 + 6 >= sizeof list) {
                memcpy(list + o, ", ...", 6);
                break;
            }
            if (o) {
                memcpy(list + o, ", ", 2);
                o += 2;
            }
            memcpy(list + o, *a, al + 1);
            o += al;
        }
        if (list[0])
            fail(e, -EINVAL, kpath, "unknown field (allowed: %s)", list);
        else
            fail(e, -EINVAL, kpath, "unknown field (no fields are allowed here)");
    }
    (void)val;
    return bad ? -EINVAL : 0;
}

/* --- durations and sizes -------------------------------------------------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* Reads digits[.digits] at s[*i]: integer part, and up to 9 fraction digits
 * as frac/scale; a nonzero digit past the 9th sets *fine. Returns the number
 * of digits read, or -ERANGE when the integer part overflows. */
static int read_decimal(const char *s, size_t len, size_t *i, uint64_t *ip,
                        uint64_t *frac, uint64_t *scale, int *fine, int *had_dot)
{
    int nd = 0;
    *ip = 0;
    *frac = 0;
    *scale = 1;
    *fine = 0;
    *had_dot = 0;
    while (*i < len && is_digit(s[*i])) {
        unsigned d = (unsigned)(s[*i] - '0');
        if (*ip > (UINT64_MAX - d) / 10)
            return -ERANGE;
        *ip = *ip * 10 + d;
        nd++;
        (*i)++;
    }
    if (*i < len && s[*i] == '.') {
        *had_dot = 1;
        (*i)++;
        int fd = 0;
        while (*i < len && is_digit(s[*i])) {
            unsigned d = (unsigned)(s[*i] - '0');
            if (fd < 9) {
                *frac = *frac * 10 + d;
                *scale *= 10;
            } else if (d) {
                *fine = 1;
            }
            fd++;
            nd++;
            (*i)++;
        }
        if (fd == 0)
            return 0;   /* "1." : the caller reports it */
    }
    return nd;
}

int mg_duration_parse(const char *s, size_t len, uint64_t *ms, const char **why)
{
    static const struct { const char *u; size_t ul; uint64_t mult; } units[] = {
        {"h", 1, 3600000}, {"m", 1, 60000}, {"s", 1, 1000}, {"ms", 2, 1},
    };
    static const char *const shape =
        "expected a duration such as 500ms, 30s, 1m30s or 2h";
    const char *dummy;
    if (!why)
        why = &dummy;
    if (len == 0) {
        *why = "empty duration";
        return -EINVAL;
    }
    if (len == 1 && s[0] == '0') {
        *ms = 0;
        return 0;
    }
    if (s[0] == '-') {
        *why = "negative durations are not allowed";
        return -EINVAL;
    }
    size_t i = 0;
    int last = -1;
    uint64_t total = 0;
    while (i < len) {
        uint64_t ip, frac, scale;
        int fine, dot;
        int nd = read_decimal(s, len, &i, &ip, &frac, &scale, &fine, &dot);
        if (nd == -ERANGE) {
            *why = "too large";
            return -ERANGE;
        }
        if (nd <= 0) {
            *why = dot ? "digits expected after '.'" : shape;
            return -EINVAL;
        }
        size_t us = i;
        while (i < len && is_alpha(s[i]))
            i++;
        if (i == us) {
            *why = i < len ? shape : "missing unit (use ms, s, m or h, e.g. 500ms or 30s)";
            return -EINVAL;
        }
        int u = -1;
        for (int k = 0; k < 4; k++)
            if (units[k].ul == i - us && memcmp(units[k].u, s + us, i - us) == 0)
                u = k;
        if (u < 0) {
            *why = "unknown unit (use ms, s, m or h)";
            return -EINVAL;
        }
        if (u <= last) {
            *why = "units must go from largest to smallest, each at most once (e.g. 1m30s)";
            return -EINVAL;
        }
        last = u;
        uint64_t mult = units[u].mult;
        /* frac < 1e9 and mult <= 3.6e6: the product fits in 64 bits. */
        if (fine || (frac * mult) % scale) {
            *why = "finer than the 1ms resolution";
            return -EINVAL;
        }
        if (ip > MG_DURATION_MAX_MS / mult) {
            *why = "too large (at most 100 years)";
            return -ERANGE;
        }
        total += ip * mult + frac * mult / scale;
        if (total > MG_DURATION_MAX_MS) {
            *why = "too large (at most 100 years)";
            return -ERANGE;
        }
    }
    *ms = total;
    return 0;
}

int mg_size_parse(const char *s, size_t len, uint64_t *bytes, const char **why)
{
    static const struct { const char *u; size_t ul; uint64_t mult; } sfx[] = {
        {"", 0, 1},
        {"k", 1, 1000ull}, {"M", 1, 1000000ull}, {"G", 1, 1000000000ull},
        {"T", 1, 1000000000000ull}, {"P", 1, 1000000000000000ull},
        {"E", 1, 1000000000000000000ull},
        {"Ki", 2, 1ull << 10}, {"Mi", 2, 1ull << 20}, {"Gi", 2, 1ull << 30},
        {"Ti", 2, 1ull << 40}, {"Pi", 2, 1ull << 50}, {"Ei", 2, 1ull << 60},
    };
    const char *dummy;
    if (!why)
        why = &dummy;
    if (len == 0) {
        *why = "empty size";
        return -EINVAL;
    }
    if (s[0] == '-') {
        *why = "a size cannot be negative";
        return -EINVAL;
    }
    size_t i = 0;
    uint64_t ip, frac, scale;
    int fine, dot;
    int nd = read_decimal(s, len, &i, &ip, &frac, &scale, &fine, &dot);
    if (nd == -ERANGE) {
        *why = "too large";
        return -ERANGE;
    }
    if (nd <= 0) {
        *why = dot ? "digits expected after '.'" : "expected a size such as 1048576, 512Ki or 1Mi";
        return -EINVAL;
    }
    size_t sl = len - i;
    int u = -1;
    for (size_t k = 0; k < sizeof sfx / sizeof sfx[0]; k++)
        if (sfx[k].ul == sl && memcmp(sfx[k].u, s + i, sl) == 0)
            u = (int)k;
    if (u < 0) {
        *why = "unknown suffix (use Ki, Mi, Gi, Ti, or k, M, G, T)";
        return -EINVAL;
    }
    uint64_t mult = sfx[u].mult;
    unsigned __int128 whole = (unsigned __int128)ip * mult;
    unsigned __int128 part = (unsigned __int128)frac * mult;
    if (fine || part % scale) {
        *why = "not a whole number of bytes";
        return -EINVAL;
    }
    whole += part / scale;
    if (whole > (unsigned __int128)INT64_MAX) {
        *why = "too large";
        return -ERANGE;
    }
    *bytes = (uint64_t)whole;
    return 0;
}
