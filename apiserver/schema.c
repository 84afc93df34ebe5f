/* CRD structural schemas: the check a CRD's openAPIV3Schema passes before
 * the CRD is served, and the pruning, defaulting and validation every
 * custom resource goes through on write.
 *
 * The order is kube-apiserver's: unknown fields are pruned first (so a
 * field a default brings in is never mistaken for one the client sent),
 * then nulls of non-nullable fields without a default are dropped and
 * defaults applied top-down (a defaulted object gets its own nested
 * defaults), then the object is validated. Causes carry Kubernetes' field
 * paths, reasons and message wording (k8s.io/apimachinery field.Error
 * bodies around kube-openapi's messages), because kubectl prints them to
 * the user as they are.
 *
 * Patterns are POSIX extended regular expressions (regcomp). CRD authors
 * write RE2/ECMA syntax; the common shorthands (\d \w \s and their
 * negations, (?:...), escapes inside brackets) are translated, anything
 * else RE2-only (lookarounds, lazy quantifiers, \b, \p{..}, flags) is
 * refused when the CRD is created rather than misread later. Compiled
 * patterns are cached, a bounded number of them. */
#include "apiserver/schema.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting beyond this (schema or object) is an error, not more recursion. */
#define AS_SCHEMA_MAX_DEPTH 100
/* Causes and unknown-field paths kept per call: enough to fix a manifest,
 * bounded for a hostile one. */
#define AS_SCHEMA_MAX_CAUSES 100
#define AS_SCHEMA_MAX_UNKNOWN 100
#define AS_SCHEMA_PATH_MAX 1024
#define AS_SCHEMA_PATTERN_MAX 4096
#define AS_SCHEMA_REGEX_CACHE 64
/* Schema nodes visited by one validation: nested allOf/anyOf/oneOf/not
 * multiply the work, so a budget bounds it. */
#define AS_SCHEMA_BUDGET 1000000u
/* Pattern matching per validation, in bytes matched times the pattern's
 * expanded size: about a second of glibc's matcher at worst. */
#define AS_SCHEMA_RE_BUDGET 500000000ull
/* Bad values quoted in messages are cut at this many bytes. */
#define AS_SCHEMA_VALUE_SHOWN 256

void as_causes_init(struct as_causes *c)
{
    c->causes = json_array();
    c->unknown = json_array();
}

void as_causes_free(struct as_causes *c)
{
    json_decref(c->causes);
    json_decref(c->unknown);
    c->causes = NULL;
    c->unknown = NULL;
}

/* --- causes and messages ------------------------------------------------- */

/* A string in a fixed buffer: what does not fit is cut. */
struct sbuf {
    char *b;
    size_t n, cap;
};

/* A message buffer on the stack, empty. */
#define SBUF(name)                                             \
    char name##_mem[1024];                                     \
    struct sbuf name = {name##_mem, 0, sizeof name##_mem};     \
    name##_mem[0] = '\0'

static void sb_addn(struct sbuf *s, const char *p, size_t len)
{
    size_t room = s->cap - 1 - s->n;
    if (len > room)
        len = room;
    memcpy(s->b + s->n, p, len);
    s->n += len;
    s->b[s->n] = '\0';
}

static void sb_add(struct sbuf *s, const char *p)
{
    if (p)
        sb_addn(s, p, strlen(p));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *s, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_addn(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Go's strconv.Quote for the UTF-8 strings jansson holds. */
static void sb_quote(struct sbuf *s, const char *p, size_t len)
{
    size_t shown = len > AS_SCHEMA_VALUE_SHOWN ? AS_SCHEMA_VALUE_SHOWN : len;
    sb_add(s, "\"");
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)p[i];
        char esc[8];
        switch (ch) {
        case '"': sb_add(s, "\\\""); break;
        case '\\': sb_add(s, "\\\\"); break;
        case '\n': sb_add(s, "\\n"); break;
        case '\t': sb_add(s, "\\t"); break;
        case '\r': sb_add(s, "\\r"); break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                snprintf(esc, sizeof esc, "\\x%02x", ch);
                sb_add(s, esc);
            } else {
                sb_addn(s, (const char *)&p[i], 1);
            }
        }
    }
    if (shown < len)
        sb_add(s, "...");
    sb_add(s, "\"");
}

/* Numbers appear in messages as Go prints them, since kubectl users compare
 * them with what a real cluster says: Kubernetes holds bounds (minimum,
 * maximum, multipleOf) and non-integer values as float64 and prints them
 * with %v, i.e. strconv's shortest 'g' (1e+06, 1.5, 1e-05), and enum values
 * through encoding/json (1000000, 1e+21, 1e-7). */

/* The shortest decimal digits that read back as d (d finite, not 0):
 * digits without a point, *nd of them, and the decimal point position dp
 * (d = 0.digits × 10^dp). */
static void go_digits(double d, char *digits, int *nd, int *dp)
{
    char tmp[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    const char *c = tmp + (tmp[0] == '-');
    int n = 0;
    for (; *c && *c != 'e'; c++)
        if (*c >= '0' && *c <= '9')
            digits[n++] = *c;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    digits[n] = '\0';
    *nd = n;
    *dp = (*c == 'e' ? atoi(c + 1) : 0) + 1;
}

/* fmtE / fmtF of Go's strconv, for shortest digits. */
static void go_layout(struct sbuf *s, double d, int use_e, int json_exp)
{
    char digits[24];
    int nd, dp;
    if (d < 0)
        sb_add(s, "-");
    go_digits(d < 0 ? -d : d, digits, &nd, &dp);
    if (use_e) {
        sb_addn(s, digits, 1);
        if (nd > 1) {
            sb_add(s, ".");
            sb_add(s, digits + 1);
        }
        int e = dp - 1;
        /* strconv writes at least two exponent digits; encoding/json
         * turns e-07 back into e-7 */
        if (json_exp)
            sb_printf(s, "e%c%d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        else
            sb_printf(s, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        return;
    }
    if (dp <= 0) {
        sb_add(s, "0.");
        for (int i = 0; i < -dp; i++)
            sb_add(s, "0");
        sb_add(s, digits);
        return;
    }
    for (int i = 0; i < dp; i++)
        sb_addn(s, i < nd ? &digits[i] : "0", 1);
    if (nd > dp) {
        sb_add(s, ".");
        sb_add(s, digits + dp);
    }
}

static int go_special(struct sbuf *s, double d)
{
    if (d != d) {
        sb_add(s, "NaN");
        return 1;
    }
    if (d == 0) {
        sb_add(s, "0");
        return 1;
    }
    if (d > 1.7976931348623157e308 || d < -1.7976931348623157e308) {
        sb_add(s, d > 0 ? "+Inf" : "-Inf");
        return 1;
    }
    return 0;
}

/* fmt's %v of a float64. */
static void sb_go_float(struct sbuf *s, double d)
{
    if (go_special(s, d))
        return;
    char digits[24];
    int nd, dp;
    go_digits(d < 0 ? -d : d, digits, &nd, &dp);
    int exp = dp - 1;
    go_layout(s, d, exp < -4 || exp >= 6, 0);
}

/* encoding/json's rendering of a float64. */
static void sb_json_float(struct sbuf *s, double d)
{
    if (go_special(s, d))
        return;
    double a = d < 0 ? -d : d;
    go_layout(s, d, a < 1e-6 || a >= 1e21, 1);
}

/* A value's number as %v prints it: int64 as is, float64 as Go does. */
static void sb_number(struct sbuf *s, json_t *v)
{
    if (json_is_integer(v))
        sb_printf(s, "%lld", (long long)json_integer_value(v));
    else
        sb_go_float(s, json_number_value(v));
}

/* A bad value as field.Error prints it: strings quoted, numbers and
 * booleans bare, null as "null"; objects and lists as compact JSON. */
static void sb_value(struct sbuf *s, json_t *v)
{
    if (json_is_string(v)) {
        sb_quote(s, json_string_value(v), json_string_length(v));
    } else if (json_is_number(v)) {
        sb_number(s, v);
    } else if (json_is_boolean(v)) {
        sb_add(s, json_is_true(v) ? "true" : "false");
    } else if (!v || json_is_null(v)) {
        sb_add(s, "\"null\"");
    } else {
        char buf[AS_SCHEMA_VALUE_SHOWN + 1];
        size_t n = json_dumpb(v, buf, sizeof buf - 1, JSON_COMPACT);
        if (n > sizeof buf - 1) {
            sb_addn(s, buf, sizeof buf - 1);
            sb_add(s, "...");
        } else {
            sb_addn(s, buf, n);
        }
    }
}

static int causes_add(json_t *arr, const char *reason, const char *field, const char *msg)
{
    if (!arr || json_array_size(arr) >= AS_SCHEMA_MAX_CAUSES)
        return 0;
    json_t *o = json_pack("{s:s, s:s, s:s}", "reason", reason, "message", msg, "field", field);
    if (!o || json_array_append_new(arr, o) != 0)
        return -ENOMEM;
    return 0;
}

/* --- field paths ------------------------------------------------------------ */

struct path {
    char b[AS_SCHEMA_PATH_MAX];
    size_t n;
};

/* Appends ".key" ("key" at the start); returns the length to restore. A
 * path that does not fit ends in "..." and stays so below. */
static size_t path_key(struct path *p, const char *key)
{
    size_t saved = p->n, kl = strlen(key);
    if (p->n + kl + 2 + 4 > sizeof p->b) {
        if (p->n + 4 <= sizeof p->b && (p->n < 3 || memcmp(p->b + p->n - 3, "...", 3) != 0)) {
            memcpy(p->b + p->n, "...", 4);
            p->n += 3;
        }
        return saved;
    }
    if (p->n)
        p->b[p->n++] = '.';
    memcpy(p->b + p->n, key, kl + 1);
    p->n += kl;
    return saved;
}

/* Appends "[i]" (or "[key]" with key). */
static size_t path_index(struct path *p, size_t i, const char *key)
{
    size_t saved = p->n;
    char tmp[64];
    const char *t = tmp;
    if (key)
        t = key;
    else
        snprintf(tmp, sizeof tmp, "%zu", i);
    size_t tl = strlen(t);
    if (p->n + tl + 3 + 4 > sizeof p->b) {
        if (p->n + 4 <= sizeof p->b && (p->n < 3 || memcmp(p->b + p->n - 3, "...", 3) != 0)) {
            memcpy(p->b + p->n, "...", 4);
            p->n += 3;
        }
        return saved;
    }
    p->b[p->n++] = '[';
    memcpy(p->b + p->n, t, tl);
    p->n += tl;
    p->b[p->n++] = ']';
    p->b[p->n] = '\0';
    return saved;
}

static void path_restore(struct path *p, size_t saved)
{
    p->n = saved;
    p->b[saved] = '\0';
}

/* --- schema access ----------------------------------------------------------- */

static int s_flag(json_t *s, const char *key)
{
    return json_is_true(json_object_get(s, key));
}

static const char *s_type(json_t *s)
{
    return json_string_value(json_object_get(s, "type"));
}

/* A property schema of s, or NULL. */
static json_t *s_prop(json_t *s, const char *key)
{
    json_t *p = json_object_get(json_object_get(s, "properties"), key);
    return json_is_object(p) ? p : NULL;
}

static int is_meta_key(const char *k)
{
    return strcmp(k, "apiVersion") == 0 || strcmp(k, "kind") == 0 || strcmp(k, "metadata") == 0;
}

/* The JSON type name kube-openapi reports for a value. */
static const char *value_type(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* An integer, or a number with no fraction that fits one (2.0): Kubernetes
 * decodes both into an integer field. */
static int is_integral(json_t *v, long long *out)
{
    if (json_is_integer(v)) {
        if (out)
            *out = (long long)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v))
        return 0;
    double d = json_real_value(v);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return 0;
    long long i = (long long)d;
    if ((double)i != d)
        return 0;
    if (out)
        *out = i;
    return 1;
}

/* --- regular expressions ------------------------------------------------------ */

/* One member of a bracket expression, in translation. */
struct bracket {
    char lits[256];     /* literal bytes present */
    char ranges[512];   /* "a-z" pairs, already valid for POSIX */
    size_t nranges;
    char classes[128];  /* "[:space:]" and the like */
    size_t nclasses;
};

static int re_hex(const char *p, unsigned char *out)
{
    unsigned v = 0;
    for (int i = 0; i < 2; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = (unsigned char)v;
    return 0;
}

/* Reads one literal character of RE2 syntax at p (an escape or a byte);
 * *len gets the bytes consumed. -1 when it is not a literal (a class). */
static int re_literal(const char *p, size_t *len, unsigned char *out, const char **why)
{
    if (p[0] != '\\') {
        *out = (unsigned char)p[0];
        *len = 1;
        return 0;
    }
    char e = p[1];
    *len = 2;
    switch (e) {
    case 'n': *out = '\n'; return 0;
    case 't': *out = '\t'; return 0;
    case 'r': *out = '\r'; return 0;
    case 'f': *out = '\f'; return 0;
    case 'v': *out = '\v'; return 0;
    case 'x':
        if (re_hex(p + 2, out) == 0) {
            *len = 4;
            return 0;
        }
        *why = "\\x must be followed by two hex digits ({...} forms are not supported)";
        return -2;
    case '\0':
        *why = "the pattern ends with a backslash";
        return -2;
    default:
        if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9'))
            return -1; /* a class or an RE2-only escape */
        *out = (unsigned char)e;
        return 0;
    }
}

static int bracket_class(struct bracket *b, const char *cls)
{
    size_t l = strlen(cls);
    if (b->nclasses + l + 1 > sizeof b->classes)
        return -1;
    memcpy(b->classes + b->nclasses, cls, l + 1);
    b->nclasses += l;
    return 0;
}

/* Translates the bracket expression at *pp (just past '[') into out. */
static int re_bracket(const char **pp, struct sbuf *out, const char **why)
{
    const char *p = *pp;
    struct bracket b;
    memset(&b, 0, sizeof b);
    int neg = 0, first = 1;
    if (*p == '^') {
        neg = 1;
        p++;
    }
    for (;; first = 0) {
        if (!*p) {
            *why = "a bracket expression is not closed";
            return -1;
        }
        if (*p == ']' && !first)
            break;
        if (p[0] == '[' && p[1] == ':') {
            const char *end = strstr(p + 2, ":]");
            if (!end || end - p > 12) {
                *why = "a [: character class :] is not closed";
                return -1;
            }
            char cls[16];
            memcpy(cls, p, (size_t)(end - p) + 2);
            cls[end - p + 2] = '\0';
            if (bracket_class(&b, cls) < 0) {
                *why = "too many character classes in one bracket expression";
                return -1;
            }
            p = end + 2;
            continue;
        }
        if (p[0] == '\\' && strchr("dws", p[1]) && p[1]) {
            const char *cls = p[1] == 'd' ? "0-9" : p[1] == 'w' ? "A-Za-z0-9_" : "[:space:]";
            if (p[1] == 's') {
                if (bracket_class(&b, cls) < 0) {
                    *why = "too many character classes in one bracket expression";
                    return -1;
                }
            } else {
                size_t l = strlen(cls);
                if (b.nranges + l + 1 > sizeof b.ranges) {
                    *why = "too many ranges in one bracket expression";
                    return -1;
                }
                memcpy(b.ranges + b.nranges, cls, l + 1);
                b.nranges += l;
            }
            p += 2;
            continue;
        }
        unsigned char lo, hi;
        size_t len;
        int rc = re_literal(p, &len, &lo, why);
        if (rc == -1) {
            *why = "an escape inside [...] that POSIX regular expressions lack (only \\d \\w \\s and escaped characters are translated)";
            return -1;
        }
        if (rc < 0)
            return -1;
        p += len;
        if (p[0] == '-' && p[1] && p[1] != ']') {
            rc = re_literal(p + 1, &len, &hi, why);
            if (rc == -1) {
                *why = "a range inside [...] ends in a class";
                return -1;
            }
            if (rc < 0)
                return -1;
            if (hi < lo) {
                *why = "a range inside [...] is out of order";
                return -1;
            }
            p += 1 + len;
            if (lo == hi) {
                b.lits[lo] = 1;
                continue;
            }
            /* ranges over the bracket's special characters become literals */
            if (lo <= ']' && hi >= '-' && (hi - lo) < 96) {
                for (unsigned c = lo; c <= hi; c++)
                    b.lits[c] = 1;
                continue;
            }
            if (lo == 0) {
                *why = "a NUL byte inside [...]";
                return -1;
            }
            if (b.nranges + 4 > sizeof b.ranges) {
                *why = "too many ranges in one bracket expression";
                return -1;
            }
            b.ranges[b.nranges++] = (char)lo;
            b.ranges[b.nranges++] = '-';
            b.ranges[b.nranges++] = (char)hi;
            b.ranges[b.nranges] = '\0';
            continue;
        }
        b.lits[lo] = 1;
    }
    *pp = p + 1;

    /* POSIX: ']' first, '^' anywhere but first, '-' last, no escapes. */
    int has_other = b.nranges || b.nclasses;
    for (unsigned c = 1; c < 256; c++)
        if (b.lits[c] && c != ']' && c != '^' && c != '-')
            has_other = 1;
    if (!neg && !has_other && !b.lits[']'] && !b.lits['-'] && b.lits['^']) {
        sb_add(out, "\\^");
        return 0;
    }
    if (b.lits[0]) {
        *why = "a NUL byte inside [...]";
        return -1;
    }
    sb_add(out, neg ? "[^" : "[");
    size_t opened = out->n;
    if (b.lits[']'])
        sb_add(out, "]");
    for (unsigned c = 1; c < 256; c++) {
        if (!b.lits[c] || c == ']' || c == '^' || c == '-')
            continue;
        char ch = (char)c;
        sb_addn(out, &ch, 1);
    }
    sb_add(out, b.ranges);
    sb_add(out, b.classes);
    int dash = b.lits['-'];
    if (b.lits['^']) {
        /* a '^' right after the '[' would negate: put '-' before it */
        if (out->n == opened && !neg && dash) {
            sb_add(out, "-^");
            dash = 0;
        } else {
            sb_add(out, "^");
        }
    }
    if (dash)
        sb_add(out, "-");
    sb_add(out, "]");
    return 0;
}

/* Parses a counted repetition at p ("{n}", "{n,}", "{n,m}"): its length,
 * and the largest count (n when open-ended), or 0 when p does not start
 * one (RE2 then reads '{' as a literal). */
static size_t re_counted(const char *p, long *max)
{
    const char *q = p + 1;
    long n = 0, m = -1;
    if (*q < '0' || *q > '9')
        return 0;
    while (*q >= '0' && *q <= '9' && n < 100000)
        n = n * 10 + (*q++ - '0');
    if (*q == ',') {
        q++;
        if (*q >= '0' && *q <= '9') {
            m = 0;
            while (*q >= '0' && *q <= '9' && m < 100000)
                m = m * 10 + (*q++ - '0');
        }
    } else {
        m = n;
    }
    if (*q != '}')
        return 0;
    *max = m < 0 ? n : (m < n ? -1 : m);
    return (size_t)(q + 1 - p);
}

/* RE2's limits, which also keep glibc's compiler (which expands counted
 * repetitions and stacks epsilon closures) from running away. */
#define RE_MAX_REPEAT 1000
#define RE_MAX_COST 5000
#define RE_MAX_GROUPS 64

/* RE2/ECMA pattern → POSIX ERE, or -1 with *why. Along the way it refuses
 * what RE2 refuses and POSIX would accept at a great cost: a repetition of
 * nothing or of a repetition ("a**"), counts above 1000, and patterns
 * whose expanded size (atoms times the counts that repeat them) passes
 * RE_MAX_COST. */
static int re_translate_cost(const char *re, struct sbuf *out, const char **why, long *total)
{
    const char *p = re;
    long cost[RE_MAX_GROUPS + 1];
    long last = 0; /* size of the atom a quantifier would repeat; 0: none */
    int depth = 0;
    cost[0] = 0;
    out->n = 0;
    out->b[0] = '\0';
    while (*p) {
        if (out->n + 16 >= out->cap) {
            *why = "the pattern is too long";
            return -1;
        }
        if (cost[depth] > RE_MAX_COST) {
            *why = "the pattern is too large once its repetitions are expanded";
            return -1;
        }
        char c = *p;
        if (c == '[') {
            p++;
            if (re_bracket(&p, out, why) < 0)
                return -1;
            cost[depth] += last = 1;
            continue;
        }
        if (c == '(') {
            if (p[1] == '?' && p[2] != ':') {
                *why = "(?...) groups other than (?:...) (flags, names, lookarounds) are not supported";
                return -1;
            }
            if (depth == RE_MAX_GROUPS) {
                *why = "groups are nested too deeply";
                return -1;
            }
            sb_add(out, "(");
            p += p[1] == '?' ? 3 : 1;
            cost[++depth] = 0;
            last = 0;
            continue;
        }
        if (c == ')') {
            if (depth == 0) {
                *why = "unexpected )";
                return -1;
            }
            long inner = cost[depth--];
            cost[depth] += inner;
            last = inner > 0 ? inner : 1;
            sb_add(out, ")");
            p++;
            continue;
        }
        if (c == '*' || c == '+' || c == '?' || (c == '{' && re_counted(p, &(long){0}))) {
            long count = 1;
            size_t len = 1;
            if (c == '{') {
                len = re_counted(p, &count);
                if (count < 0) {
                    *why = "a repetition {n,m} with m below n";
                    return -1;
                }
                if (count > RE_MAX_REPEAT) {
                    *why = "a repetition count above 1000";
                    return -1;
                }
            }
            if (last == 0) {
                *why = "a repetition operator with nothing to repeat (or repeating a repetition)";
                return -1;
            }
            if (p[len] == '?') {
                *why = "lazy quantifiers (*? +? ?? {n,m}?) are not supported";
                return -1;
            }
            if (p[len] == '+') {
                *why = "possessive quantifiers are not supported";
                return -1;
            }
            if (count > 1)
                cost[depth] += last * (count - 1);
            sb_addn(out, p, len);
            p += len;
            last = 0;
            continue;
        }
        if (c == '|' || c == '^' || c == '$') {
            sb_addn(out, p, 1);
            p++;
            last = 0;
            continue;
        }
        if (c == '{' || c == '}') {
            /* not a repetition: RE2 reads a literal brace */
            sb_add(out, c == '{' ? "\\{" : "\\}");
            p++;
            cost[depth] += last = 1;
            continue;
        }
        if (c == '\\') {
            char e = p[1];
            const char *rep = NULL;
            switch (e) {
            case 'd': rep = "[0-9]"; break;
            case 'D': rep = "[^0-9]"; break;
            case 'w': rep = "[A-Za-z0-9_]"; break;
            case 'W': rep = "[^A-Za-z0-9_]"; break;
            case 's': rep = "[[:space:]]"; break;
            case 'S': rep = "[^[:space:]]"; break;
            default: break;
            }
            cost[depth] += last = 1;
            if (rep) {
                sb_add(out, rep);
                p += 2;
                continue;
            }
            unsigned char lit;
            size_t len;
            int rc = re_literal(p, &len, &lit, why);
            if (rc == -1) {
                static __thread char msg[96];
                snprintf(msg, sizeof msg, "the escape \\%c is RE2 syntax that POSIX regular expressions lack", e);
                *why = msg;
                return -1;
            }
            if (rc < 0)
                return -1;
            if (lit == 0) {
                *why = "a NUL byte in the pattern";
                return -1;
            }
            if (strchr(".[]()*+?{}|^$\\", (char)lit)) {
                char esc[3] = {'\\', (char)lit, 0};
                sb_add(out, esc);
            } else {
                char ch = (char)lit;
                sb_addn(out, &ch, 1);
            }
            p += len;
            continue;
        }
        sb_addn(out, p, 1);
        p++;
        cost[depth] += last = 1;
    }
    if (depth != 0) {
        *why = "a ( is not closed";
        return -1;
    }
    if (cost[0] > RE_MAX_COST) {
        *why = "the pattern is too large once its repetitions are expanded";
        return -1;
    }
    if (total)
        *total = cost[0] > 0 ? cost[0] : 1;
    return 0;
}

struct re_entry {
    char *pattern;       /* the pattern as the CRD has it (the key) */
    long cost;           /* its size with repetitions expanded */
    regex_t re;
    unsigned long used;  /* for evicting the least recently used */
};

static pthread_mutex_t re_lock = PTHREAD_MUTEX_INITIALIZER;
static struct re_entry re_cache[AS_SCHEMA_REGEX_CACHE];
static unsigned long re_clock;

/* Compiles pattern (translated) into re; -1 with a message in why. */
static int re_compile_cost(const char *pattern, regex_t *re, char *why, size_t whylen, long *cost)
{
    const char *w = NULL;
    size_t len = strlen(pattern);
    if (len > AS_SCHEMA_PATTERN_MAX) {
        snprintf(why, whylen, "longer than %d bytes", AS_SCHEMA_PATTERN_MAX);
        return -1;
    }
    /* a translation grows each source byte at most 12 times ("\\w" →
     * "[A-Za-z0-9_]", a bracket literal → its range) */
    struct sbuf ere = {malloc(len * 12 + 64), 0, len * 12 + 64};
    if (!ere.b) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    ere.b[0] = '\0';
    if (re_translate_cost(pattern, &ere, &w, cost) < 0) {
        snprintf(why, whylen, "%s", w);
        free(ere.b);
        return -1;
    }
    int rc = regcomp(re, ere.b, REG_EXTENDED | REG_NOSUB);
    free(ere.b);
    if (rc != 0) {
        char msg[128];
        regerror(rc, re, msg, sizeof msg);
        snprintf(why, whylen, "%s", msg);
        return -1;
    }
    return 0;
}

static int re_compile(const char *pattern, regex_t *re, char *why, size_t whylen)
{
    long cost;
    return re_compile_cost(pattern, re, why, whylen, &cost);
}

/* 1 when s (len bytes) matches pattern, 0 when not, -1 when the pattern
 * does not compile (why set). Compiled patterns are kept, at most
 * AS_SCHEMA_REGEX_CACHE of them, the least recently used going first. */
static int re_match_budget(const char *pattern, const char *s, size_t len, char *why, size_t whylen,
                           unsigned long long *budget)
{
    int rc;
    pthread_mutex_lock(&re_lock);
    struct re_entry *e = NULL, *victim = &re_cache[0];
    for (size_t i = 0; i < AS_SCHEMA_REGEX_CACHE; i++) {
        if (re_cache[i].pattern && strcmp(re_cache[i].pattern, pattern) == 0) {
            e = &re_cache[i];
            break;
        }
        if (!re_cache[i].pattern)
            victim = &re_cache[i];
        else if (victim->pattern && re_cache[i].used < victim->used)
            victim = &re_cache[i];
    }
    if (!e) {
        regex_t re;
        long cost = 1;
        if (re_compile_cost(pattern, &re, why, whylen, &cost) < 0) {
            pthread_mutex_unlock(&re_lock);
            return -1;
        }
        char *copy = strdup(pattern);
        if (!copy) {
            regfree(&re);
            pthread_mutex_unlock(&re_lock);
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        if (victim->pattern) {
            regfree(&victim->re);
            free(victim->pattern);
        }
        victim->pattern = copy;
        victim->cost = cost;
        victim->re = re;
        e = victim;
    }
    e->used = ++re_clock;
    /* glibc's matcher does work in proportion to the input times the
     * pattern's expanded size: bounded per call of as_schema_apply */
    unsigned long long work = (unsigned long long)(len + 1) * (unsigned long long)e->cost;
    if (budget && work > *budget) {
        pthread_mutex_unlock(&re_lock);
        return -2;
    }
    if (budget)
        *budget -= work;
    regmatch_t m[1] = {{0, (regoff_t)len}};
    rc = regexec(&e->re, s, 1, m, REG_STARTEND) == 0;
    pthread_mutex_unlock(&re_lock);
    return rc;
}

/* --- pruning ---------------------------------------------------------------- */

struct walk {
    struct as_causes *c;
    json_t *causes;     /* where causes go (c->causes, or a scratch list) */
    struct path path;
    int too_deep;       /* reported once */
    int no_unknown;     /* do not record pruned paths (defaults in a check) */
    size_t budget;      /* validate() calls left */
    unsigned long long re_budget; /* pattern-matching work left (see re_match_budget) */
    int over_budget;    /* reported once */
};

static int add_cause(struct walk *w, const char *reason, const char *field, struct sbuf *msg)
{
    return causes_add(w->causes, reason, field, msg->b);
}

static void too_deep(struct walk *w)
{
    if (w->too_deep)
        return;
    w->too_deep = 1;
    SBUF(m);
    sb_printf(&m, "Invalid value: \"object\": nested more than %d levels deep", AS_SCHEMA_MAX_DEPTH);
    add_cause(w, "FieldValueInvalid", w->path.b, &m);
}

static void record_unknown(struct walk *w)
{
    if (w->no_unknown || !w->c->unknown || json_array_size(w->c->unknown) >= AS_SCHEMA_MAX_UNKNOWN)
        return;
    char buf[AS_SCHEMA_PATH_MAX + 2];
    snprintf(buf, sizeof buf, ".%s", w->path.b);
    json_array_append_new(w->c->unknown, json_string(buf));
}

static void prune(struct walk *w, json_t *s, json_t *x, int root, unsigned depth);

/* Under x-kubernetes-preserve-unknown-fields: unknown fields stay, known
 * ones are still pruned below (apimachinery's skipPrune). */
static void skip_prune(struct walk *w, json_t *s, json_t *x, int root, unsigned depth)
{
    if (!s)
        return;
    if (depth > AS_SCHEMA_MAX_DEPTH) {
        too_deep(w);
        return;
    }
    int embedded = s_flag(s, "x-kubernetes-embedded-resource");
    if (json_is_object(x)) {
        const char *k;
        json_t *v;
        json_t *ap = json_object_get(s, "additionalProperties");
        json_object_foreach(x, k, v) {
            if ((embedded || root) && is_meta_key(k))
                continue;
            size_t saved = path_key(&w->path, k);
            json_t *p = s_prop(s, k);
            if (p)
                prune(w, p, v, 0, depth + 1);
            else if (json_is_object(ap))
                prune(w, ap, v, 0, depth + 1);
            path_restore(&w->path, saved);
        }
    } else if (json_is_array(x)) {
        json_t *items = json_object_get(s, "items");
        for (size_t i = 0; i < json_array_size(x); i++) {
            size_t saved = path_index(&w->path, i, NULL);
            skip_prune(w, json_is_object(items) ? items : NULL, json_array_get(x, i), 0, depth + 1);
            path_restore(&w->path, saved);
        }
    }
}

/* Removes the fields s does not know from x, recording their paths. s NULL:
 * x has no schema at all (everything in it goes). */
static void prune(struct walk *w, json_t *s, json_t *x, int root, unsigned depth)
{
    if (depth > AS_SCHEMA_MAX_DEPTH) {
        too_deep(w);
        return;
    }
    if (s && s_flag(s, "x-kubernetes-preserve-unknown-fields")) {
        skip_prune(w, s, x, root, depth);
        return;
    }
    /* a value of the wrong type is left to validation, which reports it
     * once, rather than emptied here field by field */
    const char *t = s ? s_type(s) : NULL;
    if (t && strcmp(t, json_is_object(x) ? "object" : "array") != 0)
        return;
    if (json_is_object(x)) {
        int embedded = s && s_flag(s, "x-kubernetes-embedded-resource");
        json_t *ap = s ? json_object_get(s, "additionalProperties") : NULL;
        void *it = json_object_iter(x);
        while (it) {
            const char *k = json_object_iter_key(it);
            json_t *v = json_object_iter_value(it);
            void *next = json_object_iter_next(x, it);
            json_t *p = s ? s_prop(s, k) : NULL;
            if (root && is_meta_key(k)) {
                it = next; /* the caller's: never pruned here */
                continue;
            }
            if (embedded && is_meta_key(k) && (strcmp(k, "metadata") != 0 || !p) &&
                (strcmp(k, "metadata") == 0 || json_is_string(v))) {
                it = next;
                continue;
            }
            size_t saved = path_key(&w->path, k);
            if (p) {
                prune(w, p, v, 0, depth + 1);
            } else if (json_is_object(ap)) {
                prune(w, ap, v, 0, depth + 1);
            } else if (json_is_true(ap)) {
                /* any value, kept as sent */
            } else {
                record_unknown(w);
                json_object_del(x, k);
            }
            path_restore(&w->path, saved);
            it = next;
        }
    } else if (json_is_array(x)) {
        json_t *items = s ? json_object_get(s, "items") : NULL;
        if (s && !json_is_object(items))
            return;
        for (size_t i = 0; i < json_array_size(x); i++) {
            size_t saved = path_index(&w->path, i, NULL);
            prune(w, items, json_array_get(x, i), 0, depth + 1);
            path_restore(&w->path, saved);
        }
    }
}

/* --- defaulting -------------------------------------------------------------- */

/* Drops nulls of non-nullable fields that have no default, then applies
 * defaults where a field is absent or null, top-down: a default object is
 * itself defaulted below. */
static int apply_defaults(struct walk *w, json_t *s, json_t *x, int root, unsigned depth)
{
    if (depth > AS_SCHEMA_MAX_DEPTH) {
        too_deep(w);
        return 0;
    }
    if (json_is_object(x)) {
        json_t *props = json_object_get(s, "properties");
        json_t *ap = json_object_get(s, "additionalProperties");
        const char *k;
        json_t *p;
        json_object_foreach(props, k, p) {
            if (root && strcmp(k, "metadata") == 0)
                continue;
            if (!json_is_object(p))
                continue;
            json_t *v = json_object_get(x, k);
            json_t *def = json_object_get(p, "default");
            if ((!v || json_is_null(v)) && def) {
                json_t *c = json_deep_copy(def);
                if (!c || json_object_set_new(x, k, c) != 0)
                    return -ENOMEM;
            } else if (v && json_is_null(v) && !s_flag(p, "nullable")) {
                json_object_del(x, k);
            }
        }
        void *it = json_object_iter(x);
        while (it) {
            const char *key = json_object_iter_key(it);
            json_t *v = json_object_iter_value(it);
            void *next = json_object_iter_next(x, it);
            json_t *sub = s_prop(s, key);
            if (root && strcmp(key, "metadata") == 0)
                sub = NULL;
            else if (!sub && !json_object_get(json_object_get(s, "properties"), key) && json_is_object(ap))
                sub = ap;
            if (sub == ap && sub && json_is_null(v) && !s_flag(ap, "nullable")) {
                json_object_del(x, key);
            } else if (sub) {
                size_t saved = path_key(&w->path, key);
                int rc = apply_defaults(w, sub, v, 0, depth + 1);
                path_restore(&w->path, saved);
                if (rc < 0)
                    return rc;
            }
            it = next;
        }
    } else if (json_is_array(x)) {
        json_t *items = json_object_get(s, "items");
        if (!json_is_object(items))
            return 0;
        for (size_t i = 0; i < json_array_size(x); i++) {
            size_t saved = path_index(&w->path, i, NULL);
            int rc = apply_defaults(w, items, json_array_get(x, i), 0, depth + 1);
            path_restore(&w->path, saved);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* --- validation --------------------------------------------------------------- */

static int is_leap(long y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int digits(const char *p, int n, long *out)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* RFC 3339 date-time: 2006-01-02T15:04:05(.frac)?(Z|+07:00). */
static int is_date_time(const char *s, size_t len)
{
    long y, mo, d, h, mi, sec;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (len < 20 || strlen(s) != len)
        return 0;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d))
        return 0;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return 0;
    if (digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60)
        return 0;
    if (d > mdays[mo - 1] + (mo == 2 && is_leap(y)))
        return 0;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return 1;
    long oh, om;
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && !digits(p + 1, 2, &oh) && p[3] == ':' &&
        !digits(p + 4, 2, &om) && oh <= 23 && om <= 59)
        return 1;
    return 0;
}

/* The UTF-8 characters of a string (kube-openapi counts runes). */
static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            c++;
    return c;
}

static void cause_type(struct walk *w, const char *want, json_t *x)
{
    SBUF(m);
    const char *got = value_type(x);
    sb_add(&m, "Invalid value: ");
    sb_quote(&m, got, strlen(got));
    sb_printf(&m, ": %s in body must be of type %s: ", w->path.b, want);
    sb_quote(&m, got, strlen(got));
    add_cause(w, "FieldValueTypeInvalid", w->path.b, &m);
}

/* "Invalid value: <value>: <path> in body <what>" */
__attribute__((format(printf, 4, 5))) static void cause_invalid(struct walk *w, json_t *x, const char *reason,
                                                                 const char *fmt, ...)
{
    SBUF(m);
    char tail[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    sb_add(&m, "Invalid value: ");
    sb_value(&m, x);
    sb_printf(&m, ": %s in body %s", w->path.b, tail);
    add_cause(w, reason, w->path.b, &m);
}

static void validate(struct walk *w, json_t *s, json_t *x, int root, unsigned depth);

static void check_type_of(struct walk *w, json_t *s, json_t *x, int *ok)
{
    const char *t = s_type(s);
    *ok = 1;
    if (s_flag(s, "x-kubernetes-int-or-string")) {
        if (!json_is_string(x) && !is_integral(x, NULL)) {
            cause_type(w, "integer,string", x);
            *ok = 0;
        }
        return;
    }
    if (!t)
        return;
    int good;
    if (strcmp(t, "object") == 0)
        good = json_is_object(x);
    else if (strcmp(t, "array") == 0)
        good = json_is_array(x);
    else if (strcmp(t, "string") == 0)
        good = json_is_string(x);
    else if (strcmp(t, "integer") == 0)
        good = is_integral(x, NULL);
    else if (strcmp(t, "number") == 0)
        good = json_is_number(x);
    else if (strcmp(t, "boolean") == 0)
        good = json_is_boolean(x);
    else
        good = 1;
    if (!good) {
        cause_type(w, t, x);
        *ok = 0;
    }
}

static int json_same(json_t *a, json_t *b, unsigned depth)
{
    if (json_is_number(a) && json_is_number(b))
        return json_number_value(a) == json_number_value(b) &&
               (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) == json_integer_value(b));
    if (depth > AS_SCHEMA_MAX_DEPTH || json_typeof(a) != json_typeof(b))
        return 0;
    if (json_is_object(a)) {
        const char *k;
        json_t *v;
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_foreach(a, k, v) if (!json_same(v, json_object_get(b, k), depth + 1)) return 0;
        return 1;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_same(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return 0;
        return 1;
    }
    return json_equal(a, b);
}

static void check_enum(struct walk *w, json_t *s, json_t *x)
{
    json_t *en = json_object_get(s, "enum");
    if (!json_is_array(en))
        return;
    for (size_t i = 0; i < json_array_size(en); i++)
        if (json_same(json_array_get(en, i), x, 0))
            return;
    SBUF(m);
    sb_add(&m, "Unsupported value: ");
    sb_value(&m, x);
    sb_add(&m, ": supported values: ");
    for (size_t i = 0; i < json_array_size(en); i++) {
        json_t *e = json_array_get(en, i);
        if (i)
            sb_add(&m, ", ");
        if (json_is_string(e)) {
            sb_quote(&m, json_string_value(e), json_string_length(e));
        } else if (json_is_number(e)) {
            SBUF(num);
            sb_json_float(&num, json_number_value(e));
            sb_quote(&m, num.b, num.n);
        } else {
            char buf[128];
            size_t n = json_dumpb(e, buf, sizeof buf, JSON_COMPACT | JSON_ENCODE_ANY);
            sb_quote(&m, buf, n > sizeof buf ? sizeof buf : n);
        }
    }
    add_cause(w, "FieldValueNotSupported", w->path.b, &m);
}

static void check_string(struct walk *w, json_t *s, json_t *x)
{
    const char *str = json_string_value(x);
    size_t len = json_string_length(x), runes = utf8_len(str, len);
    long long n;
    if (is_integral(json_object_get(s, "maxLength"), &n) && (long long)runes > n) {
        SBUF(m);
        sb_printf(&m, "Too long: may not be more than %lld %s", n, n == 1 ? "byte" : "bytes");
        add_cause(w, "FieldValueTooLong", w->path.b, &m);
    }
    if (is_integral(json_object_get(s, "minLength"), &n) && (long long)runes < n)
        cause_invalid(w, x, "FieldValueInvalid", "should be at least %lld chars long", n);
    const char *pat = json_string_value(json_object_get(s, "pattern"));
    if (pat) {
        char why[160];
        int m = re_match_budget(pat, str, len, why, sizeof why, &w->re_budget);
        if (m == 0)
            cause_invalid(w, x, "FieldValueInvalid", "should match '%s'", pat);
        else if (m == -2)
            cause_invalid(w, x, "FieldValueInvalid", "is too long to be checked against pattern '%s' (%zu bytes)",
                          pat, len);
        else if (m < 0)
            cause_invalid(w, x, "FieldValueInvalid", "cannot be checked against pattern '%s': %s", pat, why);
    }
    const char *fmt = json_string_value(json_object_get(s, "format"));
    if (fmt && strcmp(fmt, "date-time") == 0 && !is_date_time(str, len)) {
        SBUF(q);
        sb_quote(&q, str, len);
        cause_invalid(w, x, "FieldValueTypeInvalid", "must be of type date-time: %s", q.b);
    }
}

static void check_number(struct walk *w, json_t *s, json_t *x)
{
    double v = json_number_value(x);
    json_t *min = json_object_get(s, "minimum"), *max = json_object_get(s, "maximum");
    json_t *mul = json_object_get(s, "multipleOf");
    SBUF(b);
    if (json_is_number(min)) {
        int excl = s_flag(s, "exclusiveMinimum");
        double m = json_number_value(min);
        if (excl ? !(v > m) : !(v >= m)) {
            b.n = 0;
            b.b[0] = '\0';
            sb_go_float(&b, json_number_value(min));
            cause_invalid(w, x, "FieldValueInvalid", "should be greater than %s%s", excl ? "" : "or equal to ", b.b);
        }
    }
    if (json_is_number(max)) {
        int excl = s_flag(s, "exclusiveMaximum");
        double m = json_number_value(max);
        if (excl ? !(v < m) : !(v <= m)) {
            b.n = 0;
            b.b[0] = '\0';
            sb_go_float(&b, json_number_value(max));
            cause_invalid(w, x, "FieldValueInvalid", "should be less than %s%s", excl ? "" : "or equal to ", b.b);
        }
    }
    if (json_is_number(mul) && json_number_value(mul) > 0) {
        double q = v / json_number_value(mul);
        long long qi;
        json_t *qj = json_real(q);
        int whole = qj && is_integral(qj, &qi);
        json_decref(qj);
        if (!whole) {
            b.n = 0;
            b.b[0] = '\0';
            sb_go_float(&b, json_number_value(mul));
            cause_invalid(w, x, "FieldValueInvalid", "should be a multiple of %s", b.b);
        }
    }
    const char *fmt = json_string_value(json_object_get(s, "format"));
    long long i;
    if (fmt && strcmp(fmt, "int32") == 0 && (!is_integral(x, &i) || i < INT32_MIN || i > INT32_MAX))
        cause_invalid(w, x, "FieldValueTypeInvalid", "must be of type int32");
    if (fmt && strcmp(fmt, "int64") == 0 && !is_integral(x, &i))
        cause_invalid(w, x, "FieldValueTypeInvalid", "must be of type int64");
}

static void cause_too_many(struct walk *w, size_t have, long long max)
{
    SBUF(m);
    sb_printf(&m, "Too many: %zu: must have at most %lld %s", have, max, max == 1 ? "item" : "items");
    add_cause(w, "FieldValueTooMany", w->path.b, &m);
}

static void check_object(struct walk *w, json_t *s, json_t *x, int root, unsigned depth)
{
    long long n;
    json_t *req = json_object_get(s, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        const char *k = json_string_value(json_array_get(req, i));
        if (!k || json_object_get(x, k))
            continue;
        if (root && strcmp(k, "metadata") == 0)
            continue;
        size_t saved = path_key(&w->path, k);
        SBUF(m);
        sb_add(&m, "Required value");
        add_cause(w, "FieldValueRequired", w->path.b, &m);
        path_restore(&w->path, saved);
    }
    if (is_integral(json_object_get(s, "maxProperties"), &n) && (long long)json_object_size(x) > n)
        cause_too_many(w, json_object_size(x), n);
    if (is_integral(json_object_get(s, "minProperties"), &n) && (long long)json_object_size(x) < n)
        cause_invalid(w, x, "FieldValueInvalid", "should have at least %lld properties", n);
    if (s_flag(s, "x-kubernetes-embedded-resource")) {
        static const char *const must[] = {"apiVersion", "kind"};
        for (int i = 0; i < 2; i++) {
            json_t *v = json_object_get(x, must[i]);
            if (json_is_string(v) && json_string_length(v) > 0)
                continue;
            size_t saved = path_key(&w->path, must[i]);
            SBUF(m);
            sb_add(&m, "Required value: must not be empty");
            add_cause(w, "FieldValueRequired", w->path.b, &m);
            path_restore(&w->path, saved);
        }
    }
    json_t *ap = json_object_get(s, "additionalProperties");
    const char *k;
    json_t *v;
    json_object_foreach(x, k, v) {
        if (root && strcmp(k, "metadata") == 0)
            continue;
        json_t *sub = s_prop(s, k);
        if (!sub && json_is_object(ap))
            sub = ap;
        if (!sub)
            continue;
        size_t saved = path_key(&w->path, k);
        validate(w, sub, v, 0, depth + 1);
        path_restore(&w->path, saved);
    }
}

/* The identity of a list-map item: its keys' values. */
static json_t *list_map_id(json_t *item, json_t *keys)
{
    json_t *id = json_object();
    for (size_t i = 0; id && i < json_array_size(keys); i++) {
        const char *k = json_string_value(json_array_get(keys, i));
        json_t *v = k ? json_object_get(item, k) : NULL;
        if (v)
            json_object_set(id, k, v);
    }
    return id;
}

struct dup_slot {
    char *text;     /* the identity as canonical JSON */
    size_t index;
};

static int dup_cmp(const void *a, const void *b)
{
    const struct dup_slot *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c ? c : x->index < y->index ? -1 : x->index > y->index;
}

static int size_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* x-kubernetes-list-type set and map: the same item (or map key) twice.
 * Sorting canonical texts keeps it O(n log n) for long lists. */
static void check_duplicates(struct walk *w, json_t *x, int is_map, json_t *keys)
{
    size_t n = json_array_size(x), ndup = 0;
    struct dup_slot *slots = calloc(n, sizeof *slots);
    size_t *dups = calloc(n, sizeof *dups);
    if (!slots || !dups)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(x, i);
        json_t *id = is_map && json_is_object(it) ? list_map_id(it, keys) : json_incref(it);
        long long iv;
        /* 2.0 and 2 are the same integer */
        if (json_is_real(id) && is_integral(id, &iv)) {
            json_decref(id);
            id = json_integer(iv);
        }
        slots[i].text = id ? json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        slots[i].index = i;
        json_decref(id);
        if (!slots[i].text)
            goto out;
    }
    qsort(slots, n, sizeof *slots, dup_cmp);
    for (size_t i = 1; i < n; i++)
        if (strcmp(slots[i].text, slots[i - 1].text) == 0)
            dups[ndup++] = slots[i].index;
    qsort(dups, ndup, sizeof *dups, size_cmp);
    for (size_t i = 0; i < ndup; i++) {
        json_t *it = json_array_get(x, dups[i]);
        json_t *id = is_map && json_is_object(it) ? list_map_id(it, keys) : json_incref(it);
        size_t saved = path_index(&w->path, dups[i], NULL);
        SBUF(m);
        sb_add(&m, "Duplicate value: ");
        sb_value(&m, id);
        add_cause(w, "FieldValueDuplicate", w->path.b, &m);
        path_restore(&w->path, saved);
        json_decref(id);
    }
out:
    for (size_t i = 0; slots && i < n; i++)
        free(slots[i].text);
    free(slots);
    free(dups);
}

static void check_array(struct walk *w, json_t *s, json_t *x, unsigned depth)
{
    long long n;
    size_t size = json_array_size(x);
    if (is_integral(json_object_get(s, "maxItems"), &n) && (long long)size > n)
        cause_too_many(w, size, n);
    if (is_integral(json_object_get(s, "minItems"), &n) && (long long)size < n)
        cause_invalid(w, x, "FieldValueInvalid", "should have at least %lld items", n);
    const char *lt = json_string_value(json_object_get(s, "x-kubernetes-list-type"));
    json_t *keys = json_object_get(s, "x-kubernetes-list-map-keys");
    if (lt && (strcmp(lt, "set") == 0 || strcmp(lt, "map") == 0) && size > 1)
        check_duplicates(w, x, strcmp(lt, "map") == 0, keys);
    json_t *items = json_object_get(s, "items");
    if (!json_is_object(items))
        return;
    for (size_t i = 0; i < size; i++) {
        size_t saved = path_index(&w->path, i, NULL);
        validate(w, items, json_array_get(x, i), 0, depth + 1);
        path_restore(&w->path, saved);
    }
}

/* allOf, anyOf, oneOf, not: value validations of x against sub-schemas
 * (which in a structural schema carry no types or defaults of their own). */
static void check_combinators(struct walk *w, json_t *s, json_t *x, unsigned depth)
{
    static const char *const kws[] = {"allOf", "anyOf", "oneOf"};
    for (int k = 0; k < 3; k++) {
        json_t *list = json_object_get(s, kws[k]);
        if (!json_is_array(list) || json_array_size(list) == 0)
            continue;
        size_t passed = 0;
        json_t *scratch = json_array();
        if (!scratch)
            return;
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *saved_causes = w->causes;
            size_t before = json_array_size(scratch);
            w->causes = scratch;
            validate(w, json_array_get(list, i), x, 0, depth + 1);
            w->causes = saved_causes;
            if (json_array_size(scratch) == before)
                passed++;
        }
        int ok = k == 0 ? passed == json_array_size(list) : k == 1 ? passed > 0 : passed == 1;
        if (!ok) {
            if (k != 2 || passed == 0) {
                for (size_t i = 0; i < json_array_size(scratch); i++)
                    if (json_array_size(w->causes) < AS_SCHEMA_MAX_CAUSES)
                        json_array_append(w->causes, json_array_get(scratch, i));
            }
            if (k > 0)
                cause_invalid(w, x, "FieldValueInvalid", "must validate %s schema (%s)",
                              k == 1 ? "at least one" : "one and only one", kws[k]);
        }
        json_decref(scratch);
    }
    json_t *not = json_object_get(s, "not");
    if (json_is_object(not)) {
        json_t *scratch = json_array(), *saved_causes = w->causes;
        if (!scratch)
            return;
        w->causes = scratch;
        validate(w, not, x, 0, depth + 1);
        w->causes = saved_causes;
        if (json_array_size(scratch) == 0)
            cause_invalid(w, x, "FieldValueInvalid", "must not validate the schema (not)");
        json_decref(scratch);
    }
}

static void validate(struct walk *w, json_t *s, json_t *x, int root, unsigned depth)
{
    int ok;
    if (depth > AS_SCHEMA_MAX_DEPTH) {
        too_deep(w);
        return;
    }
    if (w->budget == 0) {
        if (!w->over_budget) {
            w->over_budget = 1;
            SBUF(m);
            sb_printf(&m, "Invalid value: \"object\": validation needs more than %u steps (allOf/anyOf/oneOf/not "
                          "nested too deeply for this object)", AS_SCHEMA_BUDGET);
            /* straight to the caller's list: w->causes may be a scratch
             * list of a combinator branch that is thrown away */
            causes_add(w->c->causes, "FieldValueInvalid", w->path.b, m.b);
        }
        return;
    }
    w->budget--;
    if (!json_is_object(s) || !x)
        return;
    if (json_is_null(x)) {
        if (s_flag(s, "nullable"))
            return;
        if (s_type(s) || s_flag(s, "x-kubernetes-int-or-string"))
            cause_type(w, s_flag(s, "x-kubernetes-int-or-string") ? "integer,string" : s_type(s), x);
        return;
    }
    check_type_of(w, s, x, &ok);
    if (!ok)
        return;
    check_enum(w, s, x);
    if (json_is_string(x))
        check_string(w, s, x);
    else if (json_is_number(x))
        check_number(w, s, x);
    else if (json_is_object(x))
        check_object(w, s, x, root, depth);
    else if (json_is_array(x))
        check_array(w, s, x, depth);
    check_combinators(w, s, x, depth);
}

/* Integral reals in integer fields become integers (2.0 is stored as 2, as
 * Kubernetes' decoding does). */
static void normalize_ints(json_t *s, json_t *x, int root, unsigned depth)
{
    if (depth > AS_SCHEMA_MAX_DEPTH || !json_is_object(s))
        return;
    if (json_is_object(x)) {
        json_t *ap = json_object_get(s, "additionalProperties");
        const char *k;
        json_t *v;
        json_object_foreach(x, k, v) {
            if (root && strcmp(k, "metadata") == 0)
                continue;
            json_t *sub = s_prop(s, k);
            if (!sub && json_is_object(ap))
                sub = ap;
            if (!sub)
                continue;
            const char *t = s_type(sub);
            long long i;
            if (json_is_real(v) && ((t && strcmp(t, "integer") == 0) || s_flag(sub, "x-kubernetes-int-or-string")) &&
                is_integral(v, &i)) {
                json_object_set_new(x, k, json_integer(i));
                continue;
            }
            normalize_ints(sub, v, 0, depth + 1);
        }
    } else if (json_is_array(x)) {
        json_t *items = json_object_get(s, "items");
        if (!json_is_object(items))
            return;
        const char *t = s_type(items);
        for (size_t i = 0; i < json_array_size(x); i++) {
            json_t *v = json_array_get(x, i);
            long long n;
            if (json_is_real(v) && ((t && strcmp(t, "integer") == 0) || s_flag(items, "x-kubernetes-int-or-string")) &&
                is_integral(v, &n))
                json_array_set_new(x, i, json_integer(n));
            else
                normalize_ints(items, v, 0, depth + 1);
        }
    }
}

/* Prune, default, validate x against s. root: x is a whole resource. */
static int schema_apply(struct walk *w, json_t *s, json_t *x, int root)
{
    size_t before = json_array_size(w->causes);
    prune(w, s, x, root, 0);
    if (apply_defaults(w, s, x, root, 0) < 0)
        return -ENOMEM;
    validate(w, s, x, root, 0);
    if (json_array_size(w->causes) == before)
        normalize_ints(s, x, root, 0);
    return json_array_size(w->causes) == before && !w->too_deep && !w->over_budget ? 0 : -EINVAL;
}

int as_schema_apply(json_t *schema, json_t *obj, struct as_causes *c)
{
    struct walk *w;
    int rc;
    if (!c->causes)
        c->causes = json_array();
    if (!c->unknown)
        c->unknown = json_array();
    if (!c->causes || !c->unknown)
        return -ENOMEM;
    if (!json_is_object(schema) || !json_is_object(obj)) {
        causes_add(c->causes, "FieldValueInvalid", "",
                   !json_is_object(obj) ? "Invalid value: the object must be a JSON object"
                                        : "Invalid value: the schema must be a JSON object");
        return -EINVAL;
    }
    w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->c = c;
    w->causes = c->causes;
    w->budget = AS_SCHEMA_BUDGET;
    w->re_budget = AS_SCHEMA_RE_BUDGET;
    rc = schema_apply(w, schema, obj, 1);
    free(w);
    return rc;
}

/* --- checking a CRD's schema --------------------------------------------------- */

static const char *const type_names[] = {"array", "boolean", "integer", "number", "object", "string"};

static void ck_cause(struct walk *w, const char *reason, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A cause at the current path plus ".key" (when key). */
static void ck_cause(struct walk *w, const char *reason, const char *key, const char *fmt, ...)
{
    size_t saved = key ? path_key(&w->path, key) : w->path.n;
    SBUF(m);
    char tmp[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_add(&m, tmp);
    add_cause(w, reason, w->path.b, &m);
    path_restore(&w->path, saved);
}

enum ck_where { CK_ROOT, CK_PROPERTY, CK_ITEMS, CK_ADDITIONAL, CK_COMBINATOR };

static void check_node(struct walk *w, json_t *s, enum ck_where where, unsigned depth);

static int is_nonneg_int(json_t *v)
{
    long long n;
    return is_integral(v, &n) && n >= 0;
}

static void check_default(struct walk *w, json_t *s)
{
    json_t *def = json_object_get(s, "default");
    if (!def)
        return;
    json_t *copy = json_deep_copy(def);
    if (!copy)
        return;
    struct walk *sub = calloc(1, sizeof *sub);
    struct as_causes scratch;
    as_causes_init(&scratch);
    if (!sub || !scratch.causes || !scratch.unknown) {
        free(sub);
        json_decref(copy);
        as_causes_free(&scratch);
        return;
    }
    sub->c = &scratch;
    sub->causes = scratch.causes;
    sub->budget = AS_SCHEMA_BUDGET;
    sub->re_budget = AS_SCHEMA_RE_BUDGET;
    /* inner paths read "default.x": the cause field is this node's path
     * plus that, the messages name "default.x in body" */
    path_key(&sub->path, "default");
    if (json_is_null(copy) && !s_flag(s, "nullable")) {
        ck_cause(w, "FieldValueInvalid", "default", "Invalid value: \"null\": must not be null, the field is not nullable");
    } else {
        prune(sub, s, copy, 0, 0);
        apply_defaults(sub, s, copy, 0, 0);
        validate(sub, s, copy, 0, 0);
        if (json_array_size(scratch.unknown) > 0) {
            SBUF(m);
            sb_add(&m, "Invalid value: must not have unknown fields:");
            for (size_t i = 0; i < json_array_size(scratch.unknown); i++) {
                sb_add(&m, " ");
                sb_add(&m, json_string_value(json_array_get(scratch.unknown, i)));
            }
            size_t saved = path_key(&w->path, "default");
            add_cause(w, "FieldValueInvalid", w->path.b, &m);
            path_restore(&w->path, saved);
        }
        for (size_t i = 0; i < json_array_size(scratch.causes); i++) {
            json_t *cz = json_array_get(scratch.causes, i);
            const char *f = json_string_value(json_object_get(cz, "field"));
            SBUF(m);
            sb_add(&m, json_string_value(json_object_get(cz, "message")));
            size_t saved = path_key(&w->path, f && *f ? f : "default");
            add_cause(w, json_string_value(json_object_get(cz, "reason")), w->path.b, &m);
            path_restore(&w->path, saved);
        }
    }
    free(sub);
    json_decref(copy);
    as_causes_free(&scratch);
}

static void check_node(struct walk *w, json_t *s, enum ck_where where, unsigned depth)
{
    const char *k;
    json_t *v;
    if (depth > AS_SCHEMA_MAX_DEPTH) {
        ck_cause(w, "FieldValueInvalid", NULL, "Invalid value: the schema is nested more than %d levels deep",
                 AS_SCHEMA_MAX_DEPTH);
        w->too_deep = 1;
        return;
    }
    if (!json_is_object(s)) {
        ck_cause(w, "FieldValueInvalid", NULL, "Invalid value: \"%s\": must be a schema object", value_type(s));
        return;
    }
    size_t before = json_array_size(w->causes);
    int preserve = s_flag(s, "x-kubernetes-preserve-unknown-fields");
    int intstr = s_flag(s, "x-kubernetes-int-or-string");
    int embedded = s_flag(s, "x-kubernetes-embedded-resource");
    const char *type = NULL;

    json_object_foreach(s, k, v) {
        if (strcmp(k, "type") == 0) {
            type = json_string_value(v);
            int known = 0;
            for (size_t i = 0; type && i < 6; i++)
                known |= strcmp(type, type_names[i]) == 0;
            if (!known) {
                SBUF(m);
                sb_add(&m, "Unsupported value: ");
                sb_value(&m, v);
                sb_add(&m, ": supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\"");
                size_t saved = path_key(&w->path, "type");
                add_cause(w, "FieldValueNotSupported", w->path.b, &m);
                path_restore(&w->path, saved);
                type = NULL;
            }
        } else if (strcmp(k, "properties") == 0) {
            if (!json_is_object(v)) {
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be an object of schemas");
                continue;
            }
            const char *pk;
            json_t *pv;
            size_t saved = path_key(&w->path, "properties");
            json_object_foreach(v, pk, pv) {
                size_t s2 = path_index(&w->path, 0, pk);
                check_node(w, pv, where == CK_COMBINATOR ? CK_COMBINATOR : CK_PROPERTY, depth + 1);
                path_restore(&w->path, s2);
            }
            path_restore(&w->path, saved);
        } else if (strcmp(k, "items") == 0) {
            if (json_is_array(v)) {
                ck_cause(w, "FieldValueForbidden", k, "Forbidden: items must be a schema object and not an array");
                continue;
            }
            size_t saved = path_key(&w->path, "items");
            check_node(w, v, where == CK_COMBINATOR ? CK_COMBINATOR : CK_ITEMS, depth + 1);
            path_restore(&w->path, saved);
        } else if (strcmp(k, "additionalProperties") == 0) {
            if (json_is_boolean(v))
                continue;
            if (json_object_get(s, "properties")) {
                ck_cause(w, "FieldValueForbidden", k,
                         "Forbidden: additionalProperties and properties are mutual exclusive");
                continue;
            }
            size_t saved = path_key(&w->path, "additionalProperties");
            check_node(w, v, where == CK_COMBINATOR ? CK_COMBINATOR : CK_ADDITIONAL, depth + 1);
            path_restore(&w->path, saved);
        } else if (strcmp(k, "allOf") == 0 || strcmp(k, "anyOf") == 0 || strcmp(k, "oneOf") == 0) {
            if (!json_is_array(v)) {
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a list of schemas");
                continue;
            }
            size_t saved = path_key(&w->path, k);
            for (size_t i = 0; i < json_array_size(v); i++) {
                size_t s2 = path_index(&w->path, i, NULL);
                check_node(w, json_array_get(v, i), CK_COMBINATOR, depth + 1);
                path_restore(&w->path, s2);
            }
            path_restore(&w->path, saved);
        } else if (strcmp(k, "not") == 0) {
            size_t saved = path_key(&w->path, k);
            check_node(w, v, CK_COMBINATOR, depth + 1);
            path_restore(&w->path, saved);
        } else if (strcmp(k, "required") == 0) {
            int good = json_is_array(v);
            for (size_t i = 0; good && i < json_array_size(v); i++)
                good = json_is_string(json_array_get(v, i));
            if (!good)
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a list of field names");
        } else if (strcmp(k, "enum") == 0) {
            if (!json_is_array(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a list of values");
        } else if (strcmp(k, "minimum") == 0 || strcmp(k, "maximum") == 0) {
            if (!json_is_number(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a number");
        } else if (strcmp(k, "multipleOf") == 0) {
            if (!json_is_number(v) || json_number_value(v) <= 0)
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a number greater than 0");
        } else if (strcmp(k, "minLength") == 0 || strcmp(k, "maxLength") == 0 || strcmp(k, "minItems") == 0 ||
                   strcmp(k, "maxItems") == 0 || strcmp(k, "minProperties") == 0 ||
                   strcmp(k, "maxProperties") == 0) {
            if (!is_nonneg_int(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a non-negative integer");
        } else if (strcmp(k, "exclusiveMinimum") == 0 || strcmp(k, "exclusiveMaximum") == 0 ||
                   strcmp(k, "nullable") == 0 || strcmp(k, "x-kubernetes-preserve-unknown-fields") == 0 ||
                   strcmp(k, "x-kubernetes-int-or-string") == 0 ||
                   strcmp(k, "x-kubernetes-embedded-resource") == 0) {
            if (!json_is_boolean(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be true or false");
        } else if (strcmp(k, "uniqueItems") == 0) {
            if (json_is_true(v))
                ck_cause(w, "FieldValueForbidden", k,
                         "Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic");
            else if (!json_is_boolean(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be true or false");
        } else if (strcmp(k, "pattern") == 0) {
            if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a string");
                continue;
            }
            regex_t re;
            char why[200];
            if (re_compile(json_string_value(v), &re, why, sizeof why) < 0) {
                SBUF(m);
                sb_add(&m, "Invalid value: ");
                sb_value(&m, v);
                sb_printf(&m, ": must be a valid regular expression, but isn't: %s", why);
                size_t saved = path_key(&w->path, "pattern");
                add_cause(w, "FieldValueInvalid", w->path.b, &m);
                path_restore(&w->path, saved);
            } else {
                regfree(&re);
            }
        } else if (strcmp(k, "format") == 0 || strcmp(k, "description") == 0 || strcmp(k, "title") == 0) {
            if (!json_is_string(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a string");
        } else if (strcmp(k, "default") == 0 || strcmp(k, "example") == 0) {
            /* checked against the node below */
        } else if (strcmp(k, "externalDocs") == 0) {
            if (!json_is_object(v))
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be an object");
        } else if (strcmp(k, "x-kubernetes-list-type") == 0) {
            const char *lt = json_string_value(v);
            if (!lt || (strcmp(lt, "atomic") != 0 && strcmp(lt, "set") != 0 && strcmp(lt, "map") != 0)) {
                SBUF(m);
                sb_add(&m, "Unsupported value: ");
                sb_value(&m, v);
                sb_add(&m, ": supported values: \"atomic\", \"set\", \"map\"");
                size_t saved = path_key(&w->path, k);
                add_cause(w, "FieldValueNotSupported", w->path.b, &m);
                path_restore(&w->path, saved);
            } else if (strcmp(lt, "map") == 0 &&
                       json_array_size(json_object_get(s, "x-kubernetes-list-map-keys")) == 0) {
                ck_cause(w, "FieldValueRequired", "x-kubernetes-list-map-keys",
                         "Required value: must not be empty if x-kubernetes-list-type is map");
            }
        } else if (strcmp(k, "x-kubernetes-list-map-keys") == 0) {
            int good = json_is_array(v);
            for (size_t i = 0; good && i < json_array_size(v); i++)
                good = json_is_string(json_array_get(v, i));
            if (!good)
                ck_cause(w, "FieldValueInvalid", k, "Invalid value: must be a list of field names");
        } else if (strcmp(k, "x-kubernetes-map-type") == 0) {
            const char *mt = json_string_value(v);
            if (!mt || (strcmp(mt, "atomic") != 0 && strcmp(mt, "granular") != 0))
                ck_cause(w, "FieldValueNotSupported", k,
                         "Unsupported value: must be \"granular\" or \"atomic\"");
        } else if (strcmp(k, "x-kubernetes-validations") == 0) {
            ck_cause(w, "FieldValueForbidden", k,
                     "Forbidden: CEL validation rules are not supported by modelgate-apiserver");
        } else if (strcmp(k, "$ref") == 0 || strcmp(k, "$schema") == 0 || strcmp(k, "id") == 0 ||
                   strcmp(k, "definitions") == 0 || strcmp(k, "dependencies") == 0 ||
                   strcmp(k, "patternProperties") == 0 || strcmp(k, "additionalItems") == 0) {
            ck_cause(w, "FieldValueForbidden", k, "Forbidden: %s is not supported", k);
        } else {
            size_t saved = path_key(&w->path, k);
            SBUF(m);
            sb_add(&m, "Forbidden: unknown schema keyword ");
            sb_quote(&m, k, strlen(k));
            add_cause(w, "FieldValueForbidden", w->path.b, &m);
            path_restore(&w->path, saved);
        }
    }

    /* structural rules */
    if (where != CK_COMBINATOR) {
        if (!type && !json_object_get(s, "type") && !intstr && !preserve) {
            const char *why = where == CK_ROOT    ? "must not be empty at the root"
                              : where == CK_ITEMS ? "must not be empty for specified array items"
                                                  : "must not be empty for specified object fields";
            ck_cause(w, "FieldValueRequired", "type", "Required value: %s", why);
        }
        if (where == CK_ROOT && type && strcmp(type, "object") != 0)
            ck_cause(w, "FieldValueInvalid", "type", "Invalid value: \"%s\": must be object at the root", type);
        if (intstr && type)
            ck_cause(w, "FieldValueInvalid", "type",
                     "Invalid value: \"%s\": must be empty if x-kubernetes-int-or-string is true", type);
        if (embedded && type && strcmp(type, "object") != 0)
            ck_cause(w, "FieldValueInvalid", "type",
                     "Invalid value: \"%s\": must be object if x-kubernetes-embedded-resource is true", type);
        if (type && strcmp(type, "array") == 0 && !json_is_object(json_object_get(s, "items")) &&
            !json_is_array(json_object_get(s, "items")))
            ck_cause(w, "FieldValueRequired", "items", "Required value: must be specified for type array");
    } else if (json_object_get(s, "default")) {
        ck_cause(w, "FieldValueForbidden", "default", "Forbidden: must not be set inside allOf, anyOf, oneOf or not");
    }

    /* a default must itself pass the node's schema (only once the node is sound) */
    if (json_array_size(w->causes) == before && where != CK_COMBINATOR)
        check_default(w, s);
}

int as_schema_check(json_t *schema, const char *path, struct as_causes *c)
{
    struct walk *w;
    if (!c->causes)
        c->causes = json_array();
    if (!c->unknown)
        c->unknown = json_array();
    if (!c->causes || !c->unknown)
        return -ENOMEM;
    w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->c = c;
    w->causes = c->causes;
    w->no_unknown = 1;
    path_key(&w->path, path ? path : "");
    size_t before = json_array_size(c->causes);
    if (!schema) {
        ck_cause(w, "FieldValueRequired", NULL, "Required value: a schema is required");
    } else {
        check_node(w, schema, CK_ROOT, 0);
    }
    int bad = json_array_size(c->causes) != before || w->too_deep;
    free(w);
    return bad ? -EINVAL : 0;
}
