/* Structured logging: JSON (or text) lines built on the stack and written
 * with one write(2). See log.h. */
#include "log.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

_Atomic int mg_log_threshold_ = MG_LOG_INFO;
static _Atomic int log_fd = 2;
static _Atomic int log_format = MG_LOG_JSON;
static _Atomic uint64_t log_dropped;

/* Room kept at the end of every line for ,"truncated":true}\n */
#define TAIL_RESERVE 24

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};
static const char *const level_upper[] = {"DEBUG", "INFO ", "WARN ", "ERROR", "OFF  "};

void mg_log_set_level(enum mg_log_level level)
{
    if ((int)level < MG_LOG_DEBUG || level > MG_LOG_OFF)
        level = MG_LOG_INFO;
    atomic_store_explicit(&mg_log_threshold_, (int)level, memory_order_relaxed);
}

enum mg_log_level mg_log_get_level(void)
{
    return (enum mg_log_level)atomic_load_explicit(&mg_log_threshold_, memory_order_relaxed);
}

void mg_log_set_fd(int fd)
{
    atomic_store_explicit(&log_fd, fd, memory_order_relaxed);
}

void mg_log_set_format(enum mg_log_format format)
{
    atomic_store_explicit(&log_format, (int)format, memory_order_relaxed);
}

uint64_t mg_log_dropped(void)
{
    return atomic_load_explicit(&log_dropped, memory_order_relaxed);
}

int mg_log_level_parse(const char *s, enum mg_log_level *out)
{
    for (int i = 0; i <= MG_LOG_OFF; i++)
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum mg_log_level)i;
            return 0;
        }
    if (strcasecmp(s, "warning") == 0) {
        *out = MG_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

const char *mg_log_level_name(enum mg_log_level level)
{
    if ((int)level < MG_LOG_DEBUG || level > MG_LOG_OFF)
        return "unknown";
    return level_names[level];
}

/* --- line writer ---------------------------------------------------------- */

struct lw {
    char *p;
    size_t n;
    size_t cap;     /* usable bytes: the buffer minus TAIL_RESERVE */
    int full;       /* something did not fit: the line is truncated */
};

static int put(struct lw *w, const char *s, size_t n)
{
    if (w->full || n > w->cap - w->n) {
        w->full = 1;
        return -1;
    }
    memcpy(w->p + w->n, s, n);
    w->n += n;
    return 0;
}

static int put_str(struct lw *w, const char *s)
{
    return put(w, s, strlen(s));
}

/* Appends s escaped for a JSON string (without quotes). In text mode
 * (quote_all 0) the same escapes are used. Stops, marking the line full, at
 * the first character that does not fit in cap - reserve; never splits an
 * escape or a UTF-8 sequence. Returns 0 when all of s fit. */
static int put_escaped(struct lw *w, const char *s, size_t n, size_t reserve)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t limit = w->cap > reserve ? w->cap - reserve : 0;
    size_t i = 0;
    while (i < n) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t j = i;
        while (j < n && u[j] >= 0x20 && u[j] < 0x7f && u[j] != '"' && u[j] != '\\')
            j++;
        if (j > i) {
            size_t run = j - i;
            if (w->n + run > limit) {
                run = limit > w->n ? limit - w->n : 0;
                memcpy(w->p + w->n, s + i, run);
                w->n += run;
                w->full = 1;
                return -1;
            }
            memcpy(w->p + w->n, s + i, run);
            w->n += run;
            i = j;
            continue;
        }
        char esc[8];
        size_t el;
        size_t adv = 1;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            el = 2;
        } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
            el = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        } else {
            size_t k = mg_utf8_seq(u + i, n - i);
            if (k == 0) {
                memcpy(esc, "\xef\xbf\xbd", 3);   /* U+FFFD */
                el = 3;
            } else {
                memcpy(esc, s + i, k);
                el = k;
                adv = k;
            }
        }
        if (w->n + el > limit) {
            w->full = 1;
            return -1;
        }
        memcpy(w->p + w->n, esc, el);
        w->n += el;
        i += adv;
    }
    return 0;
}

static void fmt_double(double d, char *buf, size_t cap, int json)
{
    if (isnan(d) || isinf(d)) {
        /* JSON has no spelling for these: a string keeps them readable. */
        const char *t = isnan(d) ? "NaN" : d > 0 ? "+Inf" : "-Inf";
        snprintf(buf, cap, json ? "\"%s\"" : "%s", t);
        return;
    }
    /* The shortest of the usual precisions that reads back exactly. */
    snprintf(buf, cap, "%.15g", d);
    if (strtod(buf, NULL) != d)
        snprintf(buf, cap, "%.17g", d);
}

static size_t fmt_u64(unsigned long long v, char *buf)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static size_t fmt_i64(long long v, char *buf)
{
    if (v < 0) {
        buf[0] = '-';
        /* Negate in unsigned arithmetic: LLONG_MIN has no positive twin. */
        return 1 + fmt_u64(0ull - (unsigned long long)v, buf + 1);
    }
    return fmt_u64((unsigned long long)v, buf);
}

/* RFC 3339 UTC with milliseconds; the calendar part is cached per thread
 * for the current second. */
static void put_ts(struct lw *w)
{
    static __thread time_t cached_sec = (time_t)-1;
    static __thread char cached[24];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(cached, sizeof cached, "%Y-%m-%dT%H:%M:%S", &tm);
        cached_sec = ts.tv_sec;
    }
    char frac[8];
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    frac[0] = '.';
    frac[1] = (char)('0' + ms / 100);
    frac[2] = (char)('0' + ms / 10 % 10);
    frac[3] = (char)('0' + ms % 10);
    frac[4] = 'Z';
    put_str(w, cached);
    put(w, frac, 5);
}

/* Text mode quotes a value when a reader could not tell where it ends. */
static int needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            return 1;
    }
    return 0;
}

/* Appends a string value: quoted (always in JSON), possibly cut, but always
 * with its closing quote. The caller makes sure 2 bytes are free. */
static void put_string_value(struct lw *w, const char *s, size_t n, int json)
{
    if (!s) {
        put_str(w, json ? "null" : "(null)");
        return;
    }
    if (!json && !needs_quotes(s, n)) {
        put_escaped(w, s, n, 0);
        return;
    }
    if (w->cap - w->n < 2) {
        w->full = 1;
        return;
    }
    w->p[w->n++] = '"';
    /* One byte stays free for the closing quote even when the value is cut. */
    put_escaped(w, s, n, 1);
    w->p[w->n++] = '"';
}

int mg_log_writev(enum mg_log_level level, const char *msg, va_list ap)
{
    int saved_errno = errno;
    char line[MG_LOG_LINE_MAX];
    struct lw w = {line, 0, sizeof line - TAIL_RESERVE, 0};
    int json = atomic_load_explicit(&log_format, memory_order_relaxed) == MG_LOG_JSON;
    if ((int)level < MG_LOG_DEBUG || level >= MG_LOG_OFF)
        level = MG_LOG_ERROR;
    if (!msg)
        msg = "";

    if (json) {
        put_str(&w, "{\"ts\":\"");
        put_ts(&w);
        put_str(&w, "\",\"level\":\"");
        put_str(&w, level_names[level]);
        put_str(&w, "\",\"msg\":");
    } else {
        put_ts(&w);
        put(&w, " ", 1);
        put_str(&w, level_upper[level]);
        put(&w, " ", 1);
    }
    if (json) {
        put_string_value(&w, msg, strlen(msg), 1);
    } else {
        put_escaped(&w, msg, strlen(msg), 0);
    }

    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key)
            break;
        int ft = va_arg(ap, int);
        /* Pull the value even when the line is full: the list must be read
         * in step to stay aligned, and to reach the terminator. */
        const char *sv = NULL;
        size_t sn = 0;
        long long iv = 0;
        unsigned long long uv = 0;
        double dv = 0;
        switch (ft) {
        case MG_LOG_FT_STR:
            sv = va_arg(ap, const char *);
            sn = sv ? strlen(sv) : 0;
            break;
        case MG_LOG_FT_STRN:
            sv = va_arg(ap, const char *);
            sn = va_arg(ap, size_t);
            break;
        case MG_LOG_FT_INT:
            iv = va_arg(ap, long long);
            break;
        case MG_LOG_FT_UINT:
            uv = va_arg(ap, unsigned long long);
            break;
        case MG_LOG_FT_DBL:
            dv = va_arg(ap, double);
            break;
        case MG_LOG_FT_BOOL:
        case MG_LOG_FT_ERRNO:
            iv = va_arg(ap, int);
            break;
        default:
            /* An unknown tag means the list is malformed: stop reading it. */
            goto done;
        }
        if (w.full)
            continue;
        size_t mark = w.n;
        if (json) {
            put(&w, ",\"", 2);
            put_escaped(&w, key, strlen(key), 2);
            put(&w, "\":", 2);
        } else {
            put(&w, " ", 1);
            put_escaped(&w, key, strlen(key), 1);
            put(&w, "=", 1);
        }
        if (w.full) {
            w.n = mark;
            continue;
        }
        char num[48];
        size_t nl;
        switch (ft) {
        case MG_LOG_FT_STR:
        case MG_LOG_FT_STRN:
            /* A cut string keeps what fit; anything smaller than the quotes
             * drops the field. */
            if (w.cap - w.n < 3) {
                w.n = mark;
                w.full = 1;
                break;
            }
            put_string_value(&w, sv, sn, json);
            break;
        case MG_LOG_FT_INT:
            nl = fmt_i64(iv, num);
            if (put(&w, num, nl) < 0)
                w.n = mark;
            break;
        case MG_LOG_FT_UINT:
            nl = fmt_u64(uv, num);
            if (put(&w, num, nl) < 0)
                w.n = mark;
            break;
        case MG_LOG_FT_DBL:
            fmt_double(dv, num, sizeof num, json);
            if (put_str(&w, num) < 0)
                w.n = mark;
            break;
        case MG_LOG_FT_BOOL:
            if (put_str(&w, iv ? "true" : "false") < 0)
                w.n = mark;
            break;
        case MG_LOG_FT_ERRNO: {
            char eb[128];
            int en = (int)(iv < 0 ? -iv : iv);
            const char *es = eb;
            /* The XSI strerror_r fills eb; unknown numbers get a fallback. */
            if (strerror_r(en, eb, sizeof eb) != 0)
                snprintf(eb, sizeof eb, "errno %d", en);
            put_string_value(&w, es, strlen(es), json);
            break;
        }
        }
    }
done:;
    /* The reserve always holds the tail. */
    int truncated = w.full;
    w.cap = sizeof line;
    w.full = 0;
    if (truncated)
        put_str(&w, json ? ",\"truncated\":true" : " truncated=true");
    if (json)
        put(&w, "}", 1);
    put(&w, "\n", 1);

    int rc = 0;
    int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
    size_t off = 0;
    while (off < w.n) {
        ssize_t r = write(fd, line + off, w.n - off);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            atomic_fetch_add_explicit(&log_dropped, 1, memory_order_relaxed);
            break;
        }
        off += (size_t)r;
    }
    errno = saved_errno;
    return rc;
}

int mg_log_write(enum mg_log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    int rc = mg_log_writev(level, msg, ap);
    va_end(ap);
    return rc;
}
