/* Label and field selectors (select.h), parsed and applied the way
 * k8s.io/apimachinery does (pkg/labels/selector.go, pkg/fields/selector.go):
 * the same tokens, the same grammar, the same validation of keys and
 * values, and the same error texts, so that kubectl prints what it would
 * print against a real cluster ("unable to parse requirement: ...",
 * "found ',', expected: identifier after ','", ...).
 *
 * Labels: a lexer turns the string into tokens (identifiers, "in",
 * "notin", "!", "=", "==", "!=", "<", ">", "(", ")", ","), a recursive
 * descent parser builds requirements; keys must be qualified names
 * ([prefix/]name), values label values. Fields: comma-separated terms
 * (a backslash escapes ",", "=" and "\" in values), each "lhs op rhs" with
 * op "!=", "==" or "=" found first from the left. */
#include "apiserver/select.h"

#include "lib/utf8.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longer selectors are refused: they come from a query string, which the
 * HTTP layer caps anyway; this bounds the work per request. */
#define AS_SELECTOR_MAX 65536
#define AS_ERR_MAX 2048

enum as_sel_op {
    AS_SEL_EQ,          /* = and == */
    AS_SEL_NE,
    AS_SEL_IN,
    AS_SEL_NOTIN,
    AS_SEL_EXISTS,
    AS_SEL_NOT_EXISTS,
    AS_SEL_GT,
    AS_SEL_LT,
};

struct as_req {
    char *key;
    enum as_sel_op op;
    char **vals;        /* sorted, distinct */
    size_t nvals;
    long long num;      /* GT, LT */
};

struct as_selector {
    int fields;         /* a field selector (dotted paths), else labels */
    struct as_req *reqs;
    size_t n;
};

/* --- error messages ---------------------------------------------------------- */

static __thread char as_sel_errbuf[AS_ERR_MAX];

struct as_msg {
    char *p;
    size_t len, cap;
};

static void as_msg_init(struct as_msg *m)
{
    m->p = as_sel_errbuf;
    m->cap = sizeof as_sel_errbuf;
    m->len = 0;
    m->p[0] = '\0';
}

/* Appends, cutting at the buffer's end (the message stays a C string). */
static void as_msg_addn(struct as_msg *m, const char *s, size_t n)
{
    size_t room = m->cap - 1 - m->len;
    if (n > room)
        n = room;
    memcpy(m->p + m->len, s, n);
    m->len += n;
    m->p[m->len] = '\0';
}

static void as_msg_add(struct as_msg *m, const char *s)
{
    as_msg_addn(m, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void as_msg_addf(struct as_msg *m,
                                                              const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        as_msg_addn(m, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A string as Go's %q prints it: quoted, with \" \\ \n \t ... and \xNN for
 * bytes that are not printable or not valid UTF-8. */
static void as_msg_quote(struct as_msg *m, const char *s, size_t n)
{
    as_msg_add(m, "\"");
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c >= 0x80) {
            size_t k = mg_utf8_seq((const unsigned char *)s + i, n - i);
            if (k) {
                as_msg_addn(m, s + i, k);
                i += k;
                continue;
            }
            snprintf(esc, sizeof esc, "\\x%02x", c);
            as_msg_add(m, esc);
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            as_msg_addn(m, esc, 2);
        } else if (c >= 0x20 && c < 0x7f) {
            as_msg_addn(m, s + i, 1);
        } else {
            const char *named = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" :
                                c == '\a' ? "\\a" : c == '\b' ? "\\b" : c == '\f' ? "\\f" :
                                c == '\v' ? "\\v" : NULL;
            if (named) {
                as_msg_add(m, named);
            } else {
                snprintf(esc, sizeof esc, "\\x%02x", c);
                as_msg_add(m, esc);
            }
        }
        i++;
    }
    as_msg_add(m, "\"");
}

/* --- Kubernetes name validation (k8s.io/apimachinery/pkg/util/validation) --- */

#define QNAME_FMT "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
#define QNAME_MSG "must consist of alphanumeric characters, '-', '_' or '.', and must start " \
                  "and end with an alphanumeric character"
#define QNAME_EX " (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '" \
                 QNAME_FMT "')"
#define LVALUE_MSG "a valid label must be an empty string or consist of alphanumeric " \
                   "characters, '-', '_' or '.', and must start and end with an alphanumeric " \
                   "character"
#define LVALUE_EX " (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(" \
                  QNAME_FMT ")?')"
#define DNS1123_MSG "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric " \
                    "characters, '-' or '.', and must start and end with an alphanumeric character"
#define DNS1123_EX " (e.g. 'example.com', regex used for validation is " \
                   "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"

static int as_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static int as_qname_ok(const char *s, size_t n)
{
    if (n == 0 || !as_alnum((unsigned char)s[0]) || !as_alnum((unsigned char)s[n - 1]))
        return 0;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!as_alnum(c) && c != '-' && c != '_' && c != '.')
            return 0;
    }
    return 1;
}

static int as_dns_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)* */
static int as_dns1123_ok(const char *s, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0 || !as_dns_alnum((unsigned char)s[start]) ||
                !as_dns_alnum((unsigned char)s[i - 1]))
                return 0;
            for (size_t k = start; k < i; k++)
                if (!as_dns_alnum((unsigned char)s[k]) && s[k] != '-')
                    return 0;
            start = i + 1;
        }
    }
    return 1;
}

/* Appends IsQualifiedName's errors ("; "-joined) for key; 0 when valid. */
static int as_qualified_name_errs(struct as_msg *m, const char *key)
{
    const char *slash = strchr(key, '/');
    const char *name = key;
    size_t nerr = 0;
#define ERR(text)                        \
    do {                                 \
        if (nerr++)                      \
            as_msg_add(m, "; ");         \
        as_msg_add(m, text);             \
    } while (0)
    if (slash && strchr(slash + 1, '/')) {
        ERR("a qualified name " QNAME_MSG QNAME_EX
            " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
        return 1;
    }
    if (slash) {
        size_t plen = (size_t)(slash - key);
        name = slash + 1;
        if (plen == 0) {
            ERR("prefix part must be non-empty");
        } else {
            if (plen > 253)
                ERR("prefix part must be no more than 253 characters");
            if (!as_dns1123_ok(key, plen))
                ERR("prefix part " DNS1123_MSG DNS1123_EX);
        }
    }
    if (*name == '\0')
        ERR("name part must be non-empty");
    else if (strlen(name) > 63)
        ERR("name part must be no more than 63 characters");
    if (!as_qname_ok(name, strlen(name)))
        ERR("name part " QNAME_MSG QNAME_EX);
#undef ERR
    return nerr != 0;
}

static int as_label_value_ok(const char *v)
{
    size_t n = strlen(v);
    return n <= 63 && (n == 0 || as_qname_ok(v, n));
}

static void as_label_value_errs(struct as_msg *m, const char *v)
{
    size_t n = strlen(v);
    int any = 0;
    if (n > 63) {
        as_msg_add(m, "must be no more than 63 characters");
        any = 1;
    }
    if (n != 0 && !as_qname_ok(v, n)) {
        if (any)
            as_msg_add(m, "; ");
        as_msg_add(m, LVALUE_MSG LVALUE_EX);
    }
}

/* strconv.ParseInt(s, 10, 64) */
static int as_parse_int64(const char *s, long long *out)
{
    const char *p = s;
    int neg = 0;
    unsigned long long v = 0, lim;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (!*p)
        return -EINVAL;
    lim = neg ? (unsigned long long)LLONG_MAX + 1 : (unsigned long long)LLONG_MAX;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (v > (lim - (unsigned long long)(*p - '0')) / 10)
            return -ERANGE;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    *out = neg ? (v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v) : (long long)v;
    return 0;
}

/* --- selector building -------------------------------------------------------- */

static void as_req_free(struct as_req *r)
{
    free(r->key);
    for (size_t i = 0; i < r->nvals; i++)
        free(r->vals[i]);
    free(r->vals);
}

void as_selector_free(struct as_selector *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n; i++)
        as_req_free(&sel->reqs[i]);
    free(sel->reqs);
    free(sel);
}

static struct as_req *as_sel_add(struct as_selector *sel, size_t *cap)
{
    struct as_req *r;
    if (sel->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct as_req *n = realloc(sel->reqs, ncap * sizeof *n);
        if (!n)
            return NULL;
        sel->reqs = n;
        *cap = ncap;
    }
    r = &sel->reqs[sel->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static int as_strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds a value to r's set (kept sorted and distinct after as_vals_done). */
static int as_val_add(struct as_req *r, size_t *cap, const char *s, size_t n)
{
    char *v;
    if (r->nvals == *cap) {
        size_t ncap = *cap ? *cap * 2 : 2;
        char **nv = realloc(r->vals, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        r->vals = nv;
        *cap = ncap;
    }
    v = malloc(n + 1);
    if (!v)
        return -ENOMEM;
    memcpy(v, s, n);
    v[n] = '\0';
    r->vals[r->nvals++] = v;
    return 0;
}

static void as_vals_done(struct as_req *r)
{
    size_t o = 0;
    if (r->nvals < 2)
        return;
    qsort(r->vals, r->nvals, sizeof *r->vals, as_strp_cmp);
    for (size_t i = 0; i < r->nvals; i++) {
        if (o && strcmp(r->vals[o - 1], r->vals[i]) == 0)
            free(r->vals[i]);
        else
            r->vals[o++] = r->vals[i];
    }
    r->nvals = o;
}

/* --- label selector: lexer ---------------------------------------------------- */

enum as_tok {
    T_END = 1, T_CLOSE, T_COMMA, T_NOT, T_EQEQ, T_EQ, T_GT, T_ID, T_IN, T_LT, T_NE, T_NOTIN, T_OPEN,
};

struct as_token {
    enum as_tok type;
    const char *s;
    size_t len;
};

static int as_special(unsigned char c)
{
    return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static int as_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static enum as_tok as_symbol(const char *s, size_t n)
{
    if (n == 1) {
        switch (s[0]) {
        case ')': return T_CLOSE;
        case ',': return T_COMMA;
        case '!': return T_NOT;
        case '=': return T_EQ;
        case '>': return T_GT;
        case '<': return T_LT;
        case '(': return T_OPEN;
        }
    } else if (n == 2 && s[1] == '=') {
        if (s[0] == '=')
            return T_EQEQ;
        if (s[0] == '!')
            return T_NE;
    }
    return 0;
}

/* Tokenises all of s into toks (room for strlen(s) + 1). Special symbols
 * are taken longest-match over the table ("!=" and "==" are the only
 * two-character ones); every single special character is a token, so the
 * lexer never fails. */
static size_t as_lex(const char *s, struct as_token *toks)
{
    size_t n = 0, i = 0;
    for (;;) {
        while (as_space((unsigned char)s[i]))
            i++;
        if (!s[i]) {
            toks[n].type = T_END;
            toks[n].s = s + i;
            toks[n].len = 0;
            return n + 1;
        }
        if (as_special((unsigned char)s[i])) {
            size_t len = 1;
            if (s[i + 1] && as_symbol(s + i, 2))
                len = 2;
            toks[n].type = as_symbol(s + i, len);
            toks[n].s = s + i;
            toks[n].len = len;
            i += len;
        } else {
            size_t st = i;
            while (s[i] && !as_special((unsigned char)s[i]) && !as_space((unsigned char)s[i]))
                i++;
            toks[n].s = s + st;
            toks[n].len = i - st;
            toks[n].type = (i - st == 2 && memcmp(s + st, "in", 2) == 0)      ? T_IN
                           : (i - st == 5 && memcmp(s + st, "notin", 5) == 0) ? T_NOTIN
                                                                              : T_ID;
        }
        n++;
    }
}

/* --- label selector: parser ---------------------------------------------------- */

struct as_parser {
    struct as_token *toks;
    size_t pos;
    struct as_msg msg;
};

/* In the Values context "in" and "notin" are identifiers ("x in (in)"). */
static const struct as_token *as_peek(struct as_parser *p, int values, enum as_tok *type)
{
    const struct as_token *t = &p->toks[p->pos];
    *type = t->type;
    if (values && (*type == T_IN || *type == T_NOTIN))
        *type = T_ID;
    return t;
}

static const struct as_token *as_next(struct as_parser *p, int values, enum as_tok *type)
{
    const struct as_token *t = as_peek(p, values, type);
    if (t->type != T_END)
        p->pos++;
    return t;
}

/* "found '<lit>', expected: <what>" */
static int as_found(struct as_parser *p, const struct as_token *t, const char *what)
{
    as_msg_add(&p->msg, "found '");
    as_msg_addn(&p->msg, t->s, t->len);
    as_msg_add(&p->msg, what);
    return -EINVAL;
}

static int as_parse_values(struct as_parser *p, struct as_req *r, size_t *vcap)
{
    enum as_tok type;
    const struct as_token *t = as_next(p, 1, &type);
    if (type != T_OPEN)
        return as_found(p, t, "' expected: '('");
    t = as_peek(p, 1, &type);
    if (type == T_CLOSE) {              /* "()" is the set {""} */
        as_next(p, 1, &type);
        return as_val_add(r, vcap, "", 0);
    }
    if (type != T_ID && type != T_COMMA)
        return as_found(p, t, "', expected: ',', ')' or identifier");
    for (;;) {
        t = as_next(p, 1, &type);
        if (type == T_ID) {
            const struct as_token *t2;
            if (as_val_add(r, vcap, t->s, t->len))
                return -ENOMEM;
            t2 = as_peek(p, 1, &type);
            if (type == T_COMMA)
                continue;
            if (type == T_CLOSE)
                break;
            return as_found(p, t2, "', expected: ',' or ')'");
        } else if (type == T_COMMA) {
            /* empty values: "(,a", "a,)", "a,,b" each add "" */
            if (r->nvals == 0 && as_val_add(r, vcap, "", 0))
                return -ENOMEM;
            as_peek(p, 1, &type);
            if (type == T_CLOSE) {
                if (as_val_add(r, vcap, "", 0))
                    return -ENOMEM;
                break;
            }
            if (type == T_COMMA) {
                as_next(p, 1, &type);
                if (as_val_add(r, vcap, "", 0))
                    return -ENOMEM;
            }
        } else {
            return as_found(p, t, "', expected: ',', or identifier");
        }
    }
    as_next(p, 1, &type);               /* the ')' seen above */
    return 0;
}

/* NewRequirement's checks once the values are known: Gt/Lt integers, then
 * each value's syntax; several errors are shown as "[e1, e2]". */
static int as_check_values(struct as_parser *p, struct as_req *r)
{
    char errs[8][AS_ERR_MAX / 4];
    size_t nerr = 0;
    struct as_msg save = p->msg;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->nvals; i++) {
            struct as_msg one = {errs[nerr < 8 ? nerr : 7], 0, sizeof errs[0]};
            one.p[0] = '\0';
            if (pass == 0) {
                if (r->op != AS_SEL_GT && r->op != AS_SEL_LT)
                    break;
                if (as_parse_int64(r->vals[i], &r->num) == 0)
                    continue;
                as_msg_addf(&one, "values[%zu]: Invalid value: ", i);
                as_msg_quote(&one, r->vals[i], strlen(r->vals[i]));
                as_msg_add(&one, ": for 'Gt', 'Lt' operators, the value must be an integer");
            } else {
                if (as_label_value_ok(r->vals[i]))
                    continue;
                as_msg_addf(&one, "values[%zu][", i);
                as_msg_add(&one, r->key);
                as_msg_add(&one, "]: Invalid value: ");
                as_msg_quote(&one, r->vals[i], strlen(r->vals[i]));
                as_msg_add(&one, ": ");
                as_label_value_errs(&one, r->vals[i]);
            }
            if (nerr < 8)
                nerr++;
        }
    }
    if (nerr == 0)
        return 0;
    p->msg = save;
    if (nerr > 1)
        as_msg_add(&p->msg, "[");
    for (size_t i = 0; i < nerr; i++) {
        int dup = 0;
        for (size_t k = 0; k < i; k++)
            dup |= strcmp(errs[k], errs[i]) == 0;
        if (dup)
            continue;
        if (i)
            as_msg_add(&p->msg, ", ");
        as_msg_add(&p->msg, errs[i]);
    }
    if (nerr > 1)
        as_msg_add(&p->msg, "]");
    return -EINVAL;
}

static int as_parse_requirement(struct as_parser *p, struct as_selector *sel, size_t *rcap)
{
    enum as_tok type;
    const struct as_token *t = as_next(p, 1, &type);
    struct as_req *r;
    size_t vcap = 0;
    int not = 0, ret;
    if (type == T_NOT) {
        not = 1;
        t = as_next(p, 1, &type);
    }
    if (type != T_ID)
        return as_found(p, t, "', expected: identifier");
    r = as_sel_add(sel, rcap);
    if (!r || !(r->key = strndup(t->s, t->len)))
        return -ENOMEM;
    {
        struct as_msg save = p->msg;
        as_msg_add(&p->msg, "<nil>: Invalid value: ");
        as_msg_quote(&p->msg, r->key, strlen(r->key));
        as_msg_add(&p->msg, ": ");
        if (as_qualified_name_errs(&p->msg, r->key))
            return -EINVAL;
        p->msg = save;
        p->msg.p[p->msg.len] = '\0';
    }
    as_peek(p, 1, &type);
    if (type == T_END || type == T_COMMA || not) {
        r->op = not ? AS_SEL_NOT_EXISTS : AS_SEL_EXISTS;
        return 0;
    }
    t = as_next(p, 0, &type);
    switch (type) {
    case T_IN: r->op = AS_SEL_IN; break;
    case T_NOTIN: r->op = AS_SEL_NOTIN; break;
    case T_EQ:
    case T_EQEQ: r->op = AS_SEL_EQ; break;
    case T_NE: r->op = AS_SEL_NE; break;
    case T_GT: r->op = AS_SEL_GT; break;
    case T_LT: r->op = AS_SEL_LT; break;
    default:
        return as_found(p, t, "', expected: in, notin, =, ==, !=, gt, lt");
    }
    if (r->op == AS_SEL_IN || r->op == AS_SEL_NOTIN) {
        ret = as_parse_values(p, r, &vcap);
    } else {
        t = as_peek(p, 1, &type);
        if (type == T_END || type == T_COMMA) {
            ret = as_val_add(r, &vcap, "", 0);
        } else {
            t = as_next(p, 1, &type);
            ret = type == T_ID ? as_val_add(r, &vcap, t->s, t->len)
                               : as_found(p, t, "', expected: identifier");
        }
    }
    if (ret)
        return ret;
    as_vals_done(r);
    return as_check_values(p, r);
}

static int as_parse_labels(const char *s, struct as_selector *sel, struct as_msg *msg)
{
    struct as_parser p = {0};
    size_t rcap = 0;
    int ret = 0;
    p.toks = calloc(strlen(s) + 1, sizeof *p.toks);
    if (!p.toks)
        return -ENOMEM;
    p.msg = *msg;
    as_lex(s, p.toks);
    for (;;) {
        enum as_tok type;
        const struct as_token *t = as_peek(&p, 1, &type);
        if (type == T_END)
            break;
        if (type != T_ID && type != T_NOT) {
            ret = as_found(&p, t, "', expected: !, identifier, or 'end of string'");
            break;
        }
        as_msg_add(&p.msg, "unable to parse requirement: ");
        ret = as_parse_requirement(&p, sel, &rcap);
        if (ret)
            break;
        p.msg.len = 0;
        p.msg.p[0] = '\0';
        t = as_next(&p, 1, &type);
        if (type == T_END)
            break;
        if (type != T_COMMA) {
            ret = as_found(&p, t, "', expected: ',' or 'end of string'");
            break;
        }
        t = as_peek(&p, 1, &type);
        if (type != T_ID && type != T_NOT) {
            ret = as_found(&p, t, "', expected: identifier after ','");
            break;
        }
    }
    *msg = p.msg;
    free(p.toks);
    return ret;
}

/* --- field selector ---------------------------------------------------------- */

static int as_cmp_terms(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* UnescapeValue: "\\", "\," and "\=" are the only escapes; a bare "," or
 * "=" is an error. */
static int as_unescape(const char *s, char *out, struct as_msg *m)
{
    size_t o = 0;
    for (size_t i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            unsigned char d = (unsigned char)s[i + 1];
            if (d == '\\' || d == ',' || d == '=') {
                out[o++] = (char)d;
                i++;
                continue;
            }
            as_msg_add(m, "invalid field selector: invalid escape sequence: \\");
            if (d) {
                size_t k = d >= 0x80 ? mg_utf8_seq((const unsigned char *)s + i + 1,
                                                   strlen(s + i + 1)) : 1;
                if (k)
                    as_msg_addn(m, s + i + 1, k);
                else
                    as_msg_add(m, "\xef\xbf\xbd");      /* Go's U+FFFD for a bad byte */
            }
            return -EINVAL;
        }
        if (c == ',' || c == '=') {
            /* Kubernetes prints the rune as a number here. */
            as_msg_addf(m, "invalid field selector: unescaped character in value: %d", c);
            return -EINVAL;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int as_parse_fields(const char *s, struct as_selector *sel, struct as_msg *msg)
{
    size_t n = strlen(s), nterms = 1, rcap = 0, start = 0, k = 0;
    char *copy = NULL, **terms = NULL;
    int in_slash = 0, ret = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_slash)
            in_slash = 0;
        else if (s[i] == '\\')
            in_slash = 1;
        else if (s[i] == ',')
            nterms++;
    }
    copy = strdup(s);
    terms = calloc(nterms, sizeof *terms);
    if (!copy || !terms) {
        ret = -ENOMEM;
        goto out;
    }
    in_slash = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && in_slash) {
            in_slash = 0;
        } else if (i < n && copy[i] == '\\') {
            in_slash = 1;
        } else if (i == n || copy[i] == ',') {
            copy[i] = '\0';
            terms[k++] = copy + start;
            start = i + 1;
        }
    }
    qsort(terms, k, sizeof *terms, as_cmp_terms);
    for (size_t t = 0; t < k; t++) {
        const char *term = terms[t], *op = NULL;
        size_t oplen = 0;
        struct as_req *r;
        size_t vcap = 0;
        char *val;
        if (!*term)
            continue;
        for (const char *q = term; *q && !op; q++) {
            if (q[0] == '!' && q[1] == '=')
                op = q, oplen = 2;
            else if (q[0] == '=' && q[1] == '=')
                op = q, oplen = 2;
            else if (q[0] == '=')
                op = q, oplen = 1;
        }
        if (!op) {
            as_msg_add(msg, "invalid selector: '");
            as_msg_add(msg, s);
            as_msg_add(msg, "'; can't understand '");
            as_msg_add(msg, term);
            as_msg_add(msg, "'");
            ret = -EINVAL;
            goto out;
        }
        val = malloc(strlen(op + oplen) + 1);
        if (!val) {
            ret = -ENOMEM;
            goto out;
        }
        if ((ret = as_unescape(op + oplen, val, msg)) != 0) {
            free(val);
            goto out;
        }
        r = as_sel_add(sel, &rcap);
        if (!r || !(r->key = strndup(term, (size_t)(op - term))) ||
            as_val_add(r, &vcap, val, strlen(val))) {
            free(val);
            ret = -ENOMEM;
            goto out;
        }
        free(val);
        r->op = op[0] == '!' ? AS_SEL_NE : AS_SEL_EQ;
    }
out:
    free(terms);
    free(copy);
    return ret;
}

/* --- public ------------------------------------------------------------------ */

static int as_selector_parse(const char *s, int fields, struct as_selector **out,
                             const char **err)
{
    struct as_selector *sel;
    struct as_msg msg;
    int ret;
    *out = NULL;
    *err = NULL;
    as_msg_init(&msg);
    if (s && strlen(s) > AS_SELECTOR_MAX) {
        as_msg_addf(&msg, "%s selector too long (%zu bytes, at most %d)",
                    fields ? "field" : "label", strlen(s), AS_SELECTOR_MAX);
        *err = msg.p;
        return -EINVAL;
    }
    sel = calloc(1, sizeof *sel);
    if (!sel) {
        *err = "out of memory";
        return -ENOMEM;
    }
    sel->fields = fields;
    if (!s || !*s)
        ret = 0;
    else
        ret = fields ? as_parse_fields(s, sel, &msg) : as_parse_labels(s, sel, &msg);
    if (ret) {
        as_selector_free(sel);
        *err = ret == -ENOMEM ? "out of memory" : msg.p;
        return ret;
    }
    *out = sel;
    return 0;
}

int as_label_selector_parse(const char *s, struct as_selector **out, const char **err)
{
    return as_selector_parse(s, 0, out, err);
}

int as_field_selector_parse(const char *s, struct as_selector **out, const char **err)
{
    return as_selector_parse(s, 1, out, err);
}

static int as_has_val(const struct as_req *r, const char *v)
{
    for (size_t i = 0; i < r->nvals; i++)
        if (strcmp(r->vals[i], v) == 0)
            return 1;
    return 0;
}

/* The field at a dotted path as a string: strings as they are, integers in
 * decimal, booleans as true/false; anything else (and a missing field) "". */
static const char *as_field_value(json_t *obj, const char *path, char *buf, size_t cap)
{
    json_t *v = obj;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(v))
            return "";
        v = json_object_getn(v, p, len);
        if (!v)
            return "";
        if (!dot)
            break;
        p = dot + 1;
    }
    if (json_is_string(v))
        return json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    return "";
}

int as_selector_match(const struct as_selector *sel, json_t *obj)
{
    json_t *labels = NULL;
    if (!sel)
        return 1;
    if (!sel->fields)
        labels = json_object_get(json_object_get(obj, "metadata"), "labels");
    for (size_t i = 0; i < sel->n; i++) {
        const struct as_req *r = &sel->reqs[i];
        const char *v;
        char buf[32];
        int has;
        long long num;
        if (sel->fields) {
            v = as_field_value(obj, r->key, buf, sizeof buf);
            has = 1;
        } else {
            v = json_string_value(json_object_get(labels, r->key));
            has = v != NULL;
        }
        switch (r->op) {
        case AS_SEL_EQ:
        case AS_SEL_IN:
            if (!has || !as_has_val(r, v))
                return 0;
            break;
        case AS_SEL_NE:
        case AS_SEL_NOTIN:
            if (has && as_has_val(r, v))
                return 0;
            break;
        case AS_SEL_EXISTS:
            if (!has)
                return 0;
            break;
        case AS_SEL_NOT_EXISTS:
            if (has)
                return 0;
            break;
        case AS_SEL_GT:
        case AS_SEL_LT:
            if (!has || as_parse_int64(v, &num) != 0)
                return 0;
            if (r->op == AS_SEL_GT ? !(num > r->num) : !(num < r->num))
                return 0;
            break;
        }
    }
    return 1;
}

int as_field_selector_check(const struct as_selector *sel, const char *const *paths,
                            const char **err)
{
    struct as_msg msg;
    *err = NULL;
    if (!sel)
        return 0;
    for (size_t i = 0; i < sel->n; i++) {
        int ok = 0;
        for (size_t k = 0; paths && paths[k] && !ok; k++)
            ok = strcmp(paths[k], sel->reqs[i].key) == 0;
        if (!ok) {
            as_msg_init(&msg);
            as_msg_add(&msg, "field label not supported: ");
            as_msg_add(&msg, sel->reqs[i].key);
            *err = msg.p;
            return -EINVAL;
        }
    }
    return 0;
}

const char *as_selector_pinned(const struct as_selector *sel, const char *path)
{
    if (!sel || !sel->fields)
        return NULL;
    for (size_t i = 0; i < sel->n; i++)
        if (sel->reqs[i].op == AS_SEL_EQ && strcmp(sel->reqs[i].key, path) == 0)
            return sel->reqs[i].vals[0];
    return NULL;
}
