/* The YAML loader: libyaml events in, jansson values out, with kubectl's
 * scalar typing and limits on size, depth, documents and (alias-expanded)
 * nodes. See yaml.h for the typing rules and the contracts.
 *
 * The loader is a recursive descent over libyaml's event stream; recursion
 * is bounded by max_depth, which is itself capped by MG_YAML_HARD_MAX_DEPTH.
 * Anchored values are kept in a hash table for the current document; an
 * alias deep-copies its anchor's value (so no value is shared inside the
 * result) after the node budget has been charged with the anchor's full
 * expanded size, which is what stops alias bombs before any copying. */
#include "yaml.h"
#include "utf8.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

struct anchor {
    struct anchor *next;   /* hash chain; newer definitions first */
    json_t *v;             /* NULL while the anchored node is being built */
    size_t nodes;          /* its size in nodes, aliases inside expanded */
    unsigned height;       /* collection levels inside it (0: a scalar) */
    char name[];
};

struct ctx {
    yaml_parser_t p;
    const char *data;
    size_t len;
    struct mg_yaml_limits lim;
    struct mg_json_errs *e;
    size_t nodes;           /* over the whole stream */
    struct anchor **tab;
    size_t tab_size;        /* a power of two */
    size_t nanchors;
    struct mg_yaml_pos *pos; /* NULL: positions not wanted */
    struct mg_buf path;      /* the path of the node being built (with pos) */
};

struct pos_entry {
    char *path;
    unsigned line, col;
};

struct mg_yaml_pos {
    struct pos_entry *v;
    size_t n, cap;
};

/* Paths are written as lib/json.h's getters write them: keys joined by
 * '.', indices as [N], keys holding '.', '[', ']' or '"' (or empty) as
 * ["key"]. Returns the path length before the push, to pop back to. */
static size_t path_push_key(struct ctx *c, const char *k, size_t n)
{
    size_t old = c->path.len;
    int plain = n > 0;
    for (size_t i = 0; i < n && plain; i++)
        if (k[i] == '.' || k[i] == '[' || k[i] == ']' || k[i] == '"' || k[i] == '\\')
            plain = 0;
    int rc;
    if (plain) {
        rc = mg_buf_printf(&c->path, "%s%.*s", old ? "." : "", (int)n, k);
    } else {
        rc = mg_buf_append_str(&c->path, "[\"");
        for (size_t i = 0; i < n && rc == 0; i++) {
            if (k[i] == '"' || k[i] == '\\')
                rc = mg_buf_append(&c->path, "\\", 1);
            if (rc == 0)
                rc = mg_buf_append(&c->path, &k[i], 1);
        }
        if (rc == 0)
            rc = mg_buf_append_str(&c->path, "\"]");
    }
    if (rc < 0)
        c->path.len = old;   /* too long or no memory: positions are best effort */
    return old;
}

static size_t path_push_index(struct ctx *c, size_t i)
{
    size_t old = c->path.len;
    if (mg_buf_printf(&c->path, "[%zu]", i) < 0)
        c->path.len = old;
    return old;
}

static void path_pop(struct ctx *c, size_t len)
{
    c->path.len = len;
}

/* Records where the node at the current path starts. Best effort: a
 * failure only loses a position. */
static void pos_record(struct ctx *c, const yaml_mark_t *m)
{
    struct mg_yaml_pos *p = c->pos;
    if (!p)
        return;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        struct pos_entry *v = realloc(p->v, cap * sizeof *v);
        if (!v)
            return;
        p->v = v;
        p->cap = cap;
    }
    char *s = strndup(mg_buf_head(&c->path) ? mg_buf_head(&c->path) : "", c->path.len);
    if (!s)
        return;
    p->v[p->n++] = (struct pos_entry){s, (unsigned)m->line + 1, (unsigned)m->column + 1};
}

/* What a scalar's text resolves to. */
enum sv_kind { SV_STR, SV_NULL, SV_BOOL, SV_INT, SV_UINT, SV_FLOAT };

struct sval {
    enum sv_kind kind;
    int b;
    long long i;
    unsigned long long u;
    double d;
};

void mg_yaml_limits_default(struct mg_yaml_limits *l)
{
    l->max_bytes = MG_YAML_DEFAULT_MAX_BYTES;
    l->max_depth = MG_YAML_DEFAULT_MAX_DEPTH;
    l->max_nodes = MG_YAML_DEFAULT_MAX_NODES;
    l->max_docs = MG_YAML_DEFAULT_MAX_DOCS;
}

/* --- errors --------------------------------------------------------------- */

static int err_at(struct ctx *c, const yaml_mark_t *m, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int err_at(struct ctx *c, const yaml_mark_t *m, int rc, const char *fmt, ...)
{
    char msg[MG_JSON_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mg_json_errs_add(c->e, "", m ? (unsigned)m->line + 1 : 0, m ? (unsigned)m->column + 1 : 0,
                     "%s", msg);
    return rc;
}

/* Turns libyaml's error into a collected message with a position. */
static int parser_error(struct ctx *c)
{
    if (c->p.error == YAML_MEMORY_ERROR)
        return err_at(c, NULL, -ENOMEM, "out of memory");
    const char *problem = c->p.problem ? c->p.problem : "syntax error";
    if (c->p.error == YAML_READER_ERROR) {
        /* Reader errors (bad UTF-8, control characters) carry a byte offset
         * rather than a mark: count lines up to it. */
        yaml_mark_t m = {0, 0, 0};
        size_t off = c->p.problem_offset < c->len ? c->p.problem_offset : c->len;
        size_t ls = 0;
        for (size_t i = 0; i < off; i++)
            if (c->data[i] == '\n') {
                m.line++;
                ls = i + 1;
            }
        m.column = off - ls;
        if (c->p.problem_value != -1)
            return err_at(c, &m, -EINVAL, "%s (byte 0x%02x)", problem, c->p.problem_value & 0xff);
        return err_at(c, &m, -EINVAL, "%s", problem);
    }
    if (c->p.context)
        return err_at(c, &c->p.problem_mark, -EINVAL, "%s (%s at line %zu, column %zu)", problem,
                      c->p.context, c->p.context_mark.line + 1, c->p.context_mark.column + 1);
    return err_at(c, &c->p.problem_mark, -EINVAL, "%s", problem);
}

static int next_event(struct ctx *c, yaml_event_t *ev)
{
    memset(ev, 0, sizeof *ev);
    if (!yaml_parser_parse(&c->p, ev))
        return parser_error(c);
    return 0;
}

/* Charges n nodes to the stream's budget. */
static int charge(struct ctx *c, size_t n, const yaml_mark_t *m, const char *alias)
{
    if (n > c->lim.max_nodes || c->nodes > c->lim.max_nodes - n) {
        if (alias)
            return err_at(c, m, -EINVAL,
                          "alias *%s expands to %zu nodes, which takes the stream past the "
                          "limit of %zu nodes (an alias bomb such as \"billion laughs\"?)",
                          alias, n, c->lim.max_nodes);
        return err_at(c, m, -EINVAL, "more than %zu nodes in the stream", c->lim.max_nodes);
    }
    c->nodes += n;
    return 0;
}

/* --- anchors -------------------------------------------------------------- */

static size_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

static struct anchor *anchor_find(struct ctx *c, const char *name)
{
    if (!c->tab)
        return NULL;
    for (struct anchor *a = c->tab[hash_name(name) & (c->tab_size - 1)]; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static int anchor_grow(struct ctx *c)
{
    size_t nsize = c->tab_size ? c->tab_size * 2 : 64;
    struct anchor **nt = calloc(nsize, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    /* Rehashing in reverse chain order would flip shadowing; walk each chain
     * and append at the tail of the new chain to keep newest-first. */
    for (size_t i = 0; i < c->tab_size; i++) {
        struct anchor *a = c->tab[i];
        while (a) {
            struct anchor *nx = a->next;
            struct anchor **slot = &nt[hash_name(a->name) & (nsize - 1)];
            while (*slot)
                slot = &(*slot)->next;
            a->next = NULL;
            *slot = a;
            a = nx;
        }
    }
    free(c->tab);
    c->tab = nt;
    c->tab_size = nsize;
    return 0;
}

/* Registers a definition (in progress: v NULL) that shadows older ones. */
static int anchor_add(struct ctx *c, const char *name, struct anchor **out)
{
    if (c->nanchors >= c->tab_size) {
        int rc = anchor_grow(c);
        if (rc < 0)
            return rc;
    }
    size_t nl = strlen(name);
    struct anchor *a = calloc(1, sizeof *a + nl + 1);
    if (!a)
        return -ENOMEM;
    memcpy(a->name, name, nl + 1);
    struct anchor **slot = &c->tab[hash_name(name) & (c->tab_size - 1)];
    a->next = *slot;
    *slot = a;
    c->nanchors++;
    *out = a;
    return 0;
}

static void anchors_clear(struct ctx *c)
{
    for (size_t i = 0; i < c->tab_size; i++) {
        struct anchor *a = c->tab[i];
        while (a) {
            struct anchor *nx = a->next;
            json_decref(a->v);
            free(a);
            a = nx;
        }
        c->tab[i] = NULL;
    }
    c->nanchors = 0;
}

/* --- scalar typing -------------------------------------------------------- */

static int in_list(const char *s, size_t n, const char *const *list)
{
    for (; *list; list++)
        if (strlen(*list) == n && memcmp(*list, s, n) == 0)
            return 1;
    return 0;
}

static int isdig(char c) { return c >= '0' && c <= '9'; }

/* Go's strconv.ParseInt/ParseUint with base 0, as go-yaml v2 calls them:
 * optional sign, then 0x/0o/0b prefixes or a leading 0 for octal. Returns 1
 * when s is an integer that fits in int64 (SV_INT) or, unsigned, in uint64
 * (SV_UINT); 0 otherwise. */
static int parse_go_int(const char *s, size_t n, struct sval *v)
{
    size_t i = 0;
    int neg = 0, sign = 0;
    if (n && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        sign = 1;
        i = 1;
    }
    unsigned base = 10;
    if (n - i >= 2 && s[i] == '0') {
        char p = s[i + 1];
        if (p == 'x' || p == 'X') {
            base = 16;
            i += 2;
        } else if (p == 'o' || p == 'O') {
            base = 8;
            i += 2;
        } else if (p == 'b' || p == 'B') {
            base = 2;
            i += 2;
        } else {
            base = 8;
            i += 1;
        }
    }
    if (i >= n)
        return 0;
    unsigned long long x = 0;
    for (; i < n; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            d = (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F')
            d = (unsigned)(ch - 'A' + 10);
        else
            return 0;
        if (d >= base)
            return 0;
        if (x > (ULLONG_MAX - d) / base)
            return 0;
        x = x * base + d;
    }
    if (neg) {
        if (x > (unsigned long long)LLONG_MAX + 1)
            return 0;
        v->kind = SV_INT;
        v->i = x == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)x;
        return 1;
    }
    if (x <= (unsigned long long)LLONG_MAX) {
        v->kind = SV_INT;
        v->i = (long long)x;
        return 1;
    }
    if (sign)   /* ParseUint takes no sign */
        return 0;
    v->kind = SV_UINT;
    v->u = x;
    return 1;
}

/* ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int float_shape(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i < n && s[i] == '.') {
        i++;
        size_t d = i;
        while (i < n && isdig(s[i]))
            i++;
        if (i == d)
            return 0;
    } else {
        size_t d = i;
        while (i < n && isdig(s[i]))
            i++;
        if (i == d)
            return 0;
        if (i < n && s[i] == '.') {
            i++;
            while (i < n && isdig(s[i]))
                i++;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && isdig(s[i]))
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* strtod on a bounded copy; an overflow to infinity is not a float (Go's
 * ParseFloat fails with ErrRange and go-yaml then keeps the string). */
static int to_double(const char *s, size_t n, double *d)
{
    char tmp[400];
    if (n >= sizeof tmp)
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    double x = strtod(tmp, &end);
    if (*end || isinf(x))
        return 0;
    *d = x;
    return 1;
}

/* Resolves a plain scalar's text as go-yaml v2 does for untyped targets. */
static void resolve_plain(const char *s, size_t n, struct sval *v)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"y", "Y", "yes", "Yes", "YES", "true", "True",
                                        "TRUE", "on", "On", "ON", NULL};
    static const char *const falses[] = {"n", "N", "no", "No", "NO", "false", "False",
                                         "FALSE", "off", "Off", "OFF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    static const char *const pinfs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
    static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};

    v->kind = SV_STR;
    /* Most scalars are names and text: only these first characters can
     * start a null, boolean or number (go-yaml's resolve table). */
    if (n && !strchr("yYnNtTfFoO~.+-0123456789", s[0]))
        return;
    if (in_list(s, n, nulls)) {
        v->kind = SV_NULL;
    } else if (in_list(s, n, trues)) {
        v->kind = SV_BOOL;
        v->b = 1;
    } else if (in_list(s, n, falses)) {
        v->kind = SV_BOOL;
        v->b = 0;
    } else if (in_list(s, n, nans)) {
        v->kind = SV_FLOAT;
        v->d = NAN;
    } else if (in_list(s, n, pinfs)) {
        v->kind = SV_FLOAT;
        v->d = INFINITY;
    } else if (in_list(s, n, ninfs)) {
        v->kind = SV_FLOAT;
        v->d = -INFINITY;
    } else if (s[0] == '.') {
        /* go-yaml hands these to ParseFloat as they are: no underscores. */
        double d;
        if (float_shape(s, n) && to_double(s, n, &d)) {
            v->kind = SV_FLOAT;
            v->d = d;
        }
    } else if (isdig(s[0]) || s[0] == '+' || s[0] == '-') {
        /* Underscores are dropped before the number parsers see the text. */
        char plain[400];
        size_t pn = 0;
        if (n >= sizeof plain)
            return;
        for (size_t i = 0; i < n; i++)
            if (s[i] != '_')
                plain[pn++] = s[i];
        double d;
        if (parse_go_int(plain, pn, v))
            return;
        if (float_shape(plain, pn) && to_double(plain, pn, &d)) {
            v->kind = SV_FLOAT;
            v->d = d;
        }
    }
}

static const char *shorten_tag(const char *tag)
{
    static __thread char buf[64];
    if (strncmp(tag, TAG_PREFIX, sizeof TAG_PREFIX - 1) == 0) {
        snprintf(buf, sizeof buf, "!!%s", tag + sizeof TAG_PREFIX - 1);
        return buf;
    }
    return tag;
}

/* Resolves a scalar event (tag, style, text) into v. */
static int scalar_resolve(struct ctx *c, const yaml_event_t *ev, struct sval *v)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

    if (memchr(s, '\0', n))
        return err_at(c, &ev->start_mark, -EINVAL, "NUL characters in scalars are not supported");
    v->kind = SV_STR;
    if (!tag)
        goto untagged;
    if (strcmp(tag, "!") == 0)
        return 0;
    if (strncmp(tag, TAG_PREFIX, sizeof TAG_PREFIX - 1) != 0)
        return err_at(c, &ev->start_mark, -EINVAL,
                      "unsupported tag %s (only YAML core tags such as !!str and !!int are allowed)",
                      tag);
    const char *t = tag + sizeof TAG_PREFIX - 1;
    if (!strcmp(t, "str") || !strcmp(t, "binary") || !strcmp(t, "timestamp"))
        return 0;
    if (strcmp(t, "int") && strcmp(t, "float") && strcmp(t, "bool") && strcmp(t, "null"))
        return err_at(c, &ev->start_mark, -EINVAL, "unsupported tag %s on a scalar",
                      shorten_tag(tag));
    resolve_plain(s, n, v);
    int ok = (!strcmp(t, "int") && (v->kind == SV_INT || v->kind == SV_UINT)) ||
             (!strcmp(t, "float") && (v->kind == SV_INT || v->kind == SV_UINT || v->kind == SV_FLOAT)) ||
             (!strcmp(t, "bool") && v->kind == SV_BOOL) ||
             (!strcmp(t, "null") && v->kind == SV_NULL);
    if (!ok)
        return err_at(c, &ev->start_mark, -EINVAL, "cannot read \"%.*s\" as %s", (int)(n > 64 ? 64 : n),
                      s, shorten_tag(tag));
    if (!strcmp(t, "float") && v->kind == SV_INT) {
        v->kind = SV_FLOAT;
        v->d = (double)v->i;
    }
    return 0;

untagged:
    if (plain)
        resolve_plain(s, n, v);
    return 0;
}

static int new_string(struct ctx *c, const yaml_mark_t *m, const char *s, size_t n, json_t **out)
{
    *out = json_stringn(s, n);
    if (*out)
        return 0;
    if (!mg_utf8_valid(s, n))
        return err_at(c, m, -EINVAL, "scalar is not valid UTF-8");
    return err_at(c, m, -ENOMEM, "out of memory");
}

static int scalar_json(struct ctx *c, const yaml_event_t *ev, json_t **out)
{
    struct sval v;
    int rc = scalar_resolve(c, ev, &v);
    if (rc < 0)
        return rc;
    switch (v.kind) {
    case SV_STR:
        return new_string(c, &ev->start_mark, (const char *)ev->data.scalar.value,
                          ev->data.scalar.length, out);
    case SV_NULL:
        *out = json_null();
        break;
    case SV_BOOL:
        *out = json_boolean(v.b);
        break;
    case SV_INT:
        *out = json_integer(v.i);
        break;
    case SV_UINT:
        /* JSON numbers have no 64-bit limit but jansson integers do. */
        *out = json_real((double)v.u);
        break;
    case SV_FLOAT:
        if (!isfinite(v.d))
            return err_at(c, &ev->start_mark, -EINVAL,
                          "%.*s: infinity and NaN cannot be represented in JSON (quote it for a string)",
                          (int)(ev->data.scalar.length > 16 ? 16 : ev->data.scalar.length),
                          (const char *)ev->data.scalar.value);
        *out = json_real(v.d);
        break;
    }
    if (!*out)
        return err_at(c, &ev->start_mark, -ENOMEM, "out of memory");
    return 0;
}

/* --- keys ------------------------------------------------------------------ */

/* A float key as kubectl writes it: Go's strconv.FormatFloat(f, 'g', -1,
 * 32), the shortest digits that read back as the same float32, in exponent
 * form when the exponent is below -4 or at least 6. */
static void float_key(double d, char *dst, size_t cap)
{
    if (isnan(d)) {
        snprintf(dst, cap, ".nan");
        return;
    }
    if (isinf(d)) {
        snprintf(dst, cap, d > 0 ? ".inf" : "-.inf");
        return;
    }
    float f = (float)d;
    if (isinf(f)) {
        snprintf(dst, cap, f > 0 ? ".inf" : "-.inf");
        return;
    }
    char e[48];
    int p;
    for (p = 1; p < 9; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, (double)f);
        if ((float)strtod(e, NULL) == f)
            break;
    }
    snprintf(e, sizeof e, "%.*e", p - 1, (double)f);
    const char *x = strchr(e, 'e');
    int exp = x ? atoi(x + 1) : 0;
    if (f == 0 || (exp >= -4 && exp < 6)) {
        int dec = p - 1 - exp;
        snprintf(dst, cap, "%.*f", dec > 0 ? dec : 0, (double)f);
    } else {
        snprintf(dst, cap, "%s", e);
    }
}

/* The JSON key for a resolved scalar, into buf or pointing at the text. */
static int key_text(struct ctx *c, const yaml_mark_t *m, const struct sval *v, const char *s,
                    size_t n, char *buf, size_t cap, const char **key, size_t *kl)
{
    switch (v->kind) {
    case SV_STR:
        *key = s;
        *kl = n;
        return 0;
    case SV_NULL:
        return err_at(c, m, -EINVAL, "a mapping key cannot be null (quote it for a string key)");
    case SV_BOOL:
        snprintf(buf, cap, "%s", v->b ? "true" : "false");
        break;
    case SV_INT:
        snprintf(buf, cap, "%lld", v->i);
        break;
    case SV_UINT:
        snprintf(buf, cap, "%llu", v->u);
        break;
    case SV_FLOAT:
        float_key(v->d, buf, cap);
        break;
    }
    *key = buf;
    *kl = strlen(buf);
    return 0;
}

/* --- nodes ---------------------------------------------------------------- */

static int parse_node(struct ctx *c, const yaml_event_t *ev, unsigned depth, json_t **out,
                      unsigned *height);

static int check_collection_tag(struct ctx *c, const yaml_event_t *ev, const char *tag,
                                const char *want)
{
    if (!tag || strcmp(tag, "!") == 0)
        return 0;
    if (strncmp(tag, TAG_PREFIX, sizeof TAG_PREFIX - 1) == 0 &&
        strcmp(tag + sizeof TAG_PREFIX - 1, want) == 0)
        return 0;
    return err_at(c, &ev->start_mark, -EINVAL, "unsupported tag %s on a %s", shorten_tag(tag),
                  strcmp(want, "seq") == 0 ? "sequence" : "mapping");
}

static int parse_sequence(struct ctx *c, unsigned depth, json_t **out, unsigned *height)
{
    int rc = 0;
    unsigned h = 0;
    json_t *arr = json_array();
    if (!arr)
        return err_at(c, NULL, -ENOMEM, "out of memory");
    for (;;) {
        yaml_event_t ev;
        rc = next_event(c, &ev);
        if (rc < 0)
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        json_t *item;
        unsigned ih;
        size_t mark = 0;
        if (c->pos) {
            mark = path_push_index(c, json_array_size(arr));
            pos_record(c, &ev.start_mark);
        }
        rc = parse_node(c, &ev, depth + 1, &item, &ih);
        if (c->pos)
            path_pop(c, mark);
        yaml_event_delete(&ev);
        if (rc < 0)
            goto fail;
        if (ih > h)
            h = ih;
        if (json_array_append_new(arr, item) != 0) {
            rc = err_at(c, NULL, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    *out = arr;
    *height = h + 1;
    return 0;
fail:
    json_decref(arr);
    return rc;
}

/* Adds a merge key's value (a mapping, or a sequence of mappings) to the
 * list applied when the mapping ends. Takes ownership of val. */
static int add_merge(struct ctx *c, const yaml_mark_t *m, json_t **merges, json_t *val)
{
    int rc = 0;
    if (!*merges && !(*merges = json_array())) {
        rc = err_at(c, m, -ENOMEM, "out of memory");
        goto out;
    }
    if (json_is_object(val)) {
        if (json_array_append(*merges, val) != 0)
            rc = err_at(c, m, -ENOMEM, "out of memory");
        goto out;
    }
    if (json_is_array(val)) {
        size_t i;
        json_t *it;
        json_array_foreach(val, i, it) {
            if (!json_is_object(it)) {
                rc = err_at(c, m, -EINVAL,
                            "merge key <<: item %zu of the sequence is %s, not a mapping", i,
                            mg_json_kind(it));
                goto out;
            }
            if (json_array_append(*merges, it) != 0) {
                rc = err_at(c, m, -ENOMEM, "out of memory");
                goto out;
            }
        }
        goto out;
    }
    rc = err_at(c, m, -EINVAL, "merge key << needs a mapping or a sequence of mappings, got %s",
                mg_json_kind(val));
out:
    json_decref(val);
    return rc;
}

static int parse_mapping(struct ctx *c, unsigned depth, json_t **out, unsigned *height)
{
    int rc = 0;
    unsigned h = 0;
    json_t *merges = NULL;
    json_t *obj = json_object();
    if (!obj)
        return err_at(c, NULL, -ENOMEM, "out of memory");
    for (;;) {
        yaml_event_t kev;
        char kbuf[64];
        const char *key = NULL;
        size_t kl = 0;
        int is_merge = 0;
        json_t *kval = NULL;   /* a key's text lives here when it came from an alias */

        rc = next_event(c, &kev);
        if (rc < 0)
            goto fail;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            break;
        }
        yaml_mark_t km = kev.start_mark;
        if (kev.type == YAML_SCALAR_EVENT) {
            const char *s = (const char *)kev.data.scalar.value;
            size_t n = kev.data.scalar.length;
            const char *tag = (const char *)kev.data.scalar.tag;
            if (n == 2 && memcmp(s, "<<", 2) == 0 &&
                ((kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag) ||
                 (tag && strcmp(tag, TAG_PREFIX "merge") == 0))) {
                is_merge = 1;
            } else {
                struct sval v;
                rc = scalar_resolve(c, &kev, &v);
                if (rc == 0)
                    rc = key_text(c, &km, &v, s, n, kbuf, sizeof kbuf, &key, &kl);
                /* Keep the text: the event owns it and is deleted below. */
                if (rc == 0 && !(kval = json_stringn(key, kl)))
                    rc = new_string(c, &km, key, kl, &kval);
            }
            if (rc == 0 && kev.data.scalar.anchor) {
                /* An anchored key can be aliased later as a value. */
                json_t *kv = NULL;
                rc = scalar_json(c, &kev, &kv);
                struct anchor *a;
                if (rc == 0 && (rc = anchor_add(c, (const char *)kev.data.scalar.anchor, &a)) == 0) {
                    a->v = kv;
                    a->nodes = 1;
                    kv = NULL;
                } else if (rc == -ENOMEM) {
                    err_at(c, &km, rc, "out of memory");
                }
                json_decref(kv);
            }
        } else if (kev.type == YAML_ALIAS_EVENT) {
            const char *name = (const char *)kev.data.alias.anchor;
            struct anchor *a = anchor_find(c, name);
            if (!a || !a->v) {
                rc = err_at(c, &km, -EINVAL, a ? "alias *%s used as a key inside its own anchor"
                                              : "unknown alias *%s", name);
            } else if (json_is_object(a->v) || json_is_array(a->v)) {
                rc = err_at(c, &km, -EINVAL,
                            "alias *%s is a %s: mapping keys must be scalars", name,
                            json_is_object(a->v) ? "mapping" : "sequence");
            } else {
                struct sval v = {SV_STR, 0, 0, 0, 0};
                const char *s = NULL;
                size_t n = 0;
                switch (json_typeof(a->v)) {
                case JSON_STRING:
                    s = json_string_value(a->v);
                    n = json_string_length(a->v);
                    break;
                case JSON_INTEGER:
                    v.kind = SV_INT;
                    v.i = json_integer_value(a->v);
                    break;
                case JSON_REAL:
                    v.kind = SV_FLOAT;
                    v.d = json_real_value(a->v);
                    break;
                case JSON_TRUE:
                case JSON_FALSE:
                    v.kind = SV_BOOL;
                    v.b = json_is_true(a->v);
                    break;
                default:
                    v.kind = SV_NULL;
                    break;
                }
                rc = key_text(c, &km, &v, s, n, kbuf, sizeof kbuf, &key, &kl);
                if (rc == 0 && !(kval = json_stringn(key, kl)))
                    rc = err_at(c, &km, -ENOMEM, "out of memory");
            }
        } else {
            rc = err_at(c, &km, -EINVAL,
                        "a %s used as a mapping key is not supported (keys must be scalars)",
                        kev.type == YAML_SEQUENCE_START_EVENT ? "sequence" : "mapping");
        }
        yaml_event_delete(&kev);
        if (rc == 0)
            rc = charge(c, 1, &km, NULL);
        if (rc < 0) {
            json_decref(kval);
            goto fail;
        }

        yaml_event_t vev;
        json_t *val;
        unsigned vh;
        rc = next_event(c, &vev);
        if (rc < 0) {
            json_decref(kval);
            goto fail;
        }
        size_t mark = 0;
        if (c->pos && !is_merge) {
            /* A member's position is its key's: errors point at "key:". */
            mark = path_push_key(c, json_string_value(kval), json_string_length(kval));
            pos_record(c, &km);
        }
        rc = parse_node(c, &vev, depth + 1, &val, &vh);
        if (c->pos && !is_merge)
            path_pop(c, mark);
        yaml_event_delete(&vev);
        if (rc < 0) {
            json_decref(kval);
            goto fail;
        }
        if (vh > h)
            h = vh;
        if (is_merge) {
            rc = add_merge(c, &km, &merges, val);
            if (rc < 0)
                goto fail;
            continue;
        }
        key = json_string_value(kval);
        kl = json_string_length(kval);
        if (json_object_getn(obj, key, kl)) {
            rc = err_at(c, &km, -EINVAL, "duplicate key \"%.*s\"", (int)(kl > 128 ? 128 : kl), key);
            json_decref(kval);
            json_decref(val);
            goto fail;
        }
        rc = json_object_setn_new_nocheck(obj, key, kl, val);
        json_decref(kval);
        if (rc != 0) {
            rc = err_at(c, &km, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (merges) {
        /* Keys of the mapping itself win, then earlier merged mappings win
         * over later ones: only absent keys are filled in, in order. */
        size_t i;
        json_t *src;
        json_array_foreach(merges, i, src) {
            const char *k;
            size_t kl;
            json_t *v;
            json_object_keylen_foreach(src, k, kl, v) {
                if (json_object_getn(obj, k, kl))
                    continue;
                if (json_object_setn_nocheck(obj, k, kl, v) != 0) {
                    rc = err_at(c, NULL, -ENOMEM, "out of memory");
                    goto fail;
                }
            }
        }
        json_decref(merges);
    }
    *out = obj;
    *height = h + 1;
    return 0;
fail:
    json_decref(merges);
    json_decref(obj);
    return rc;
}

/* Builds the node that starts with ev (which the caller deletes). depth is
 * the nesting level the node has if it is a collection (1 at the top). */
static int parse_node(struct ctx *c, const yaml_event_t *ev, unsigned depth, json_t **out,
                      unsigned *height)
{
    int rc;
    const char *anchor_name = NULL;
    struct anchor *a = NULL;
    size_t nodes_before = c->nodes;

    *out = NULL;
    *height = 0;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        struct anchor *al = anchor_find(c, name);
        if (!al)
            return err_at(c, &ev->start_mark, -EINVAL, "unknown alias *%s", name);
        if (!al->v)
            return err_at(c, &ev->start_mark, -EINVAL,
                          "alias *%s refers to a node that contains it (recursive structures "
                          "cannot be represented in JSON)", name);
        if (al->height && depth - 1 + al->height > c->lim.max_depth)
            return err_at(c, &ev->start_mark, -EINVAL,
                          "alias *%s expands to nesting deeper than the limit of %u", name,
                          c->lim.max_depth);
        rc = charge(c, al->nodes, &ev->start_mark, name);
        if (rc < 0)
            return rc;
        *out = json_deep_copy(al->v);
        if (!*out)
            return err_at(c, &ev->start_mark, -ENOMEM, "out of memory");
        *height = al->height;
        return 0;
    }
    case YAML_SCALAR_EVENT:
        anchor_name = (const char *)ev->data.scalar.anchor;
        rc = charge(c, 1, &ev->start_mark, NULL);
        if (rc == 0)
            rc = scalar_json(c, ev, out);
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int seq = ev->type == YAML_SEQUENCE_START_EVENT;
        if (depth > c->lim.max_depth)
            return err_at(c, &ev->start_mark, -EINVAL, "nesting deeper than the limit of %u",
                          c->lim.max_depth);
        anchor_name = (const char *)(seq ? ev->data.sequence_start.anchor
                                         : ev->data.mapping_start.anchor);
        rc = check_collection_tag(c, ev,
                                  (const char *)(seq ? ev->data.sequence_start.tag
                                                     : ev->data.mapping_start.tag),
                                  seq ? "seq" : "map");
        if (rc == 0)
            rc = charge(c, 1, &ev->start_mark, NULL);
        if (rc == 0 && anchor_name) {
            /* Registered before the children so that an alias to it from
             * inside is recognised as recursive. */
            rc = anchor_add(c, anchor_name, &a);
            if (rc < 0)
                return err_at(c, &ev->start_mark, rc, "out of memory");
        }
        if (rc == 0)
            rc = seq ? parse_sequence(c, depth, out, height) : parse_mapping(c, depth, out, height);
        break;
    }
    default:
        return err_at(c, &ev->start_mark, -EINVAL, "unexpected YAML event %d", (int)ev->type);
    }
    if (rc < 0)
        return rc;
    if (anchor_name) {
        if (!a && (rc = anchor_add(c, anchor_name, &a)) < 0) {
            json_decref(*out);
            *out = NULL;
            return err_at(c, &ev->start_mark, rc, "out of memory");
        }
        a->v = json_incref(*out);
        a->nodes = c->nodes - nodes_before;
        a->height = *height;
    }
    return 0;
}

/* --- streams -------------------------------------------------------------- */

static int load_stream(struct ctx *c, json_t *docs)
{
    yaml_event_t ev;
    size_t ndocs = 0;
    int rc = next_event(c, &ev);
    if (rc < 0)
        return rc;
    yaml_event_delete(&ev);   /* STREAM-START */
    for (;;) {
        rc = next_event(c, &ev);
        if (rc < 0)
            return rc;
        if (ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_DOCUMENT_START_EVENT) {
            rc = err_at(c, &ev.start_mark, -EINVAL, "unexpected YAML event %d", (int)ev.type);
            yaml_event_delete(&ev);
            return rc;
        }
        if (++ndocs > c->lim.max_docs) {
            rc = err_at(c, &ev.start_mark, -EINVAL, "more than %zu documents in the stream",
                        c->lim.max_docs);
            yaml_event_delete(&ev);
            return rc;
        }
        yaml_event_delete(&ev);

        json_t *v;
        unsigned h;
        rc = next_event(c, &ev);
        if (rc < 0)
            return rc;
        if (c->pos && ndocs == 1)
            pos_record(c, &ev.start_mark);   /* the root: "" */
        rc = parse_node(c, &ev, 1, &v, &h);
        yaml_event_delete(&ev);
        if (rc < 0)
            return rc;
        rc = next_event(c, &ev);   /* DOCUMENT-END */
        if (rc < 0) {
            json_decref(v);
            return rc;
        }
        yaml_event_delete(&ev);
        /* Anchors do not cross document boundaries. */
        anchors_clear(c);
        if (json_is_null(v)) {
            json_decref(v);
            continue;
        }
        if (json_array_append_new(docs, v) != 0)
            return err_at(c, NULL, -ENOMEM, "out of memory");
    }
}

static int load_all(const char *data, size_t len, const struct mg_yaml_limits *lim,
                    const char *name, struct mg_json_errs *e, json_t **docs,
                    struct mg_yaml_pos *pos)
{
    struct ctx c;
    int rc;
    memset(&c, 0, sizeof c);
    c.pos = pos;
    mg_buf_init(&c.path, 4096);
    *docs = NULL;
    if (lim)
        c.lim = *lim;
    else
        mg_yaml_limits_default(&c.lim);
    if (c.lim.max_depth == 0 || c.lim.max_depth > MG_YAML_HARD_MAX_DEPTH)
        c.lim.max_depth = MG_YAML_HARD_MAX_DEPTH;
    c.e = e;
    c.data = data;
    c.len = len;
    if (e && name)
        mg_json_errs_set_file(e, name);
    if (len > c.lim.max_bytes)
        return err_at(&c, NULL, -EFBIG, "document is %zu bytes, more than the limit of %zu", len,
                      c.lim.max_bytes);
    json_t *arr = json_array();
    if (!arr)
        return err_at(&c, NULL, -ENOMEM, "out of memory");
    if (!yaml_parser_initialize(&c.p)) {
        json_decref(arr);
        return err_at(&c, NULL, -ENOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&c.p, (const unsigned char *)data, len);
    rc = load_stream(&c, arr);
    anchors_clear(&c);
    free(c.tab);
    mg_buf_free(&c.path);
    yaml_parser_delete(&c.p);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *docs = arr;
    return 0;
}

int mg_yaml_load_all(const char *data, size_t len, const struct mg_yaml_limits *lim,
                     const char *name, struct mg_json_errs *e, json_t **docs)
{
    return load_all(data, len, lim, name, e, docs, NULL);
}

static int load_one(const char *data, size_t len, const struct mg_yaml_limits *lim,
                    const char *name, struct mg_json_errs *e, json_t **doc,
                    struct mg_yaml_pos *pos)
{
    json_t *docs;
    *doc = NULL;
    int rc = load_all(data, len, lim, name, e, &docs, pos);
    if (rc < 0)
        return rc;
    size_t n = json_array_size(docs);
    if (n > 1) {
        json_decref(docs);
        mg_json_errs_add(e, "", 0, 0, "expected a single YAML document, found %zu", n);
        return -EINVAL;
    }
    *doc = n ? json_incref(json_array_get(docs, 0)) : json_null();
    json_decref(docs);
    return 0;
}

int mg_yaml_load(const char *data, size_t len, const struct mg_yaml_limits *lim,
                 const char *name, struct mg_json_errs *e, json_t **doc)
{
    return load_one(data, len, lim, name, e, doc, NULL);
}

int mg_yaml_load_pos(const char *data, size_t len, const struct mg_yaml_limits *lim,
                     const char *name, struct mg_json_errs *e, json_t **doc,
                     struct mg_yaml_pos **pos)
{
    *pos = calloc(1, sizeof **pos);
    if (!*pos) {
        *doc = NULL;
        if (e && name)
            mg_json_errs_set_file(e, name);
        mg_json_errs_add(e, "", 0, 0, "out of memory");
        return -ENOMEM;
    }
    int rc = load_one(data, len, lim, name, e, doc, *pos);
    if (rc < 0) {
        mg_yaml_pos_free(*pos);
        *pos = NULL;
    }
    return rc;
}

void mg_yaml_pos_free(struct mg_yaml_pos *pos)
{
    if (!pos)
        return;
    for (size_t i = 0; i < pos->n; i++)
        free(pos->v[i].path);
    free(pos->v);
    free(pos);
}

/* The parent of a path: "a.b[2]" -> "a.b", "a.b" -> "a", "a" -> "". */
static size_t path_parent(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (p[n - 1] == ']') {
        /* [N] or ["key"]: find the '[' that opens it (quoted keys may hold
         * ']' only escaped-free inside quotes, so scan for [" first). */
        size_t i = n - 1;
        if (n >= 2 && p[n - 2] == '"') {
            size_t j = n - 2;
            while (j > 0) {
                j--;
                if (p[j] == '"' && j > 0 && p[j - 1] == '[') {
                    size_t k = j, bs = 0;
                    while (k > 0 && p[k - 1] == '\\') {
                        bs++;
                        k--;
                    }
                    if (bs % 2 == 0)
                        return j - 1;
                }
            }
            return 0;
        }
        while (i > 0 && p[i] != '[')
            i--;
        return i;
    }
    size_t i = n;
    while (i > 0 && p[i - 1] != '.' && p[i - 1] != ']')
        i--;
    if (i > 0 && p[i - 1] == '.')
        return i - 1;
    return i;
}

int mg_yaml_pos_find(const struct mg_yaml_pos *pos, const char *path, unsigned *line,
                     unsigned *col)
{
    if (!pos || !path)
        return -ENOENT;
    size_t n = strlen(path);
    for (;;) {
        for (size_t i = 0; i < pos->n; i++) {
            if (strlen(pos->v[i].path) == n && memcmp(pos->v[i].path, path, n) == 0) {
                *line = pos->v[i].line;
                *col = pos->v[i].col;
                return 0;
            }
        }
        if (n == 0)
            return -ENOENT;
        n = path_parent(path, n);
    }
}

void mg_yaml_pos_locate(const struct mg_yaml_pos *pos, struct mg_json_errs *e)
{
    if (!pos || !e)
        return;
    for (size_t i = 0; i < e->n; i++) {
        struct mg_json_error *err = &e->items[i];
        if (err->line || !err->path || !*err->path)
            continue;
        unsigned line, col;
        if (mg_yaml_pos_find(pos, err->path, &line, &col) == 0) {
            err->line = line;
            err->col = col;
        }
    }
}

static int load_file(const char *path, const struct mg_yaml_limits *lim, struct mg_json_errs *e,
                     json_t **out, int all)
{
    struct mg_yaml_limits def;
    if (!lim) {
        mg_yaml_limits_default(&def);
        lim = &def;
    }
    *out = NULL;
    mg_json_errs_set_file(e, path);
    char *data;
    size_t len;
    int rc = mg_read_file(path, lim->max_bytes, &data, &len);
    if (rc == -EFBIG) {
        mg_json_errs_add(e, "", 0, 0, "file is larger than the limit of %zu bytes", lim->max_bytes);
        return rc;
    }
    if (rc < 0) {
        mg_json_errs_add(e, "", 0, 0, "cannot read: %s", strerror(-rc));
        return rc;
    }
    rc = all ? mg_yaml_load_all(data, len, lim, NULL, e, out)
             : mg_yaml_load(data, len, lim, NULL, e, out);
    free(data);
    return rc;
}

int mg_yaml_load_all_file(const char *path, const struct mg_yaml_limits *lim,
                          struct mg_json_errs *e, json_t **docs)
{
    return load_file(path, lim, e, docs, 1);
}

int mg_yaml_load_file(const char *path, const struct mg_yaml_limits *lim,
                      struct mg_json_errs *e, json_t **doc)
{
    return load_file(path, lim, e, doc, 0);
}
