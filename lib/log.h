/* Structured logging: one JSON object per line,
 *
 *   {"ts":"2024-05-01T12:34:56.789Z","level":"warn","msg":"upstream connect failed",
 *    "endpoint":"10.0.3.7:8080","error":"Connection refused"}
 *
 * or, for humans, a text line ("2024-05-01T12:34:56.789Z WARN upstream
 * connect failed endpoint=10.0.3.7:8080 error=\"Connection refused\"").
 *
 * Fields follow the message as key, typed value pairs; the value macros
 * carry the type tag and the cast, so a wrong-width argument cannot slip
 * through varargs:
 *
 *   mg_log(MG_LOG_WARN, "upstream connect failed",
 *          "endpoint", MG_S(ep), "attempt", MG_I(n), "error", MG_ERRNO(err));
 *
 * mg_log() tests the level before evaluating anything else, so a disabled
 * debug line costs one relaxed atomic load and a branch. The level, output
 * fd and format can be changed at run time from any thread.
 *
 * Each line is formatted on the stack and written with one write(2), so lines
 * from different threads never interleave; lines are capped at
 * MG_LOG_LINE_MAX (PIPE_BUF, the size up to which writes to a pipe are
 * atomic, and container runtimes collect logs through pipes). A line that
 * does not fit is cut inside a string value or before a field and gets
 * "truncated":true; it is still valid JSON. Strings are escaped for JSON;
 * invalid UTF-8 becomes U+FFFD. Logging never changes errno. */
#ifndef MG_LOG_H
#define MG_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum mg_log_level {
    MG_LOG_DEBUG = 0,
    MG_LOG_INFO = 1,
    MG_LOG_WARN = 2,
    MG_LOG_ERROR = 3,
    MG_LOG_OFF = 4,   /* only as a threshold: nothing is logged */
};

enum mg_log_format {
    MG_LOG_JSON = 0,
    MG_LOG_TEXT = 1,
};

#define MG_LOG_LINE_MAX 4096

/* Field value tags; use the MG_S()... macros rather than these. */
enum mg_log_ft {
    MG_LOG_FT_STR = 1,   /* const char * (NUL-terminated; NULL prints null) */
    MG_LOG_FT_STRN,      /* const char *, size_t */
    MG_LOG_FT_INT,       /* long long */
    MG_LOG_FT_UINT,      /* unsigned long long */
    MG_LOG_FT_DBL,       /* double */
    MG_LOG_FT_BOOL,      /* int */
    MG_LOG_FT_ERRNO,     /* int, either sign: logged as strerror's text */
};

#define MG_S(v) MG_LOG_FT_STR, (const char *)(v)
#define MG_SN(p, n) MG_LOG_FT_STRN, (const char *)(p), (size_t)(n)
#define MG_I(v) MG_LOG_FT_INT, (long long)(v)
#define MG_U(v) MG_LOG_FT_UINT, (unsigned long long)(v)
#define MG_F(v) MG_LOG_FT_DBL, (double)(v)
#define MG_B(v) MG_LOG_FT_BOOL, (int)!!(v)
#define MG_ERRNO(v) MG_LOG_FT_ERRNO, (int)(v)

/* The threshold; read on every mg_log() call. */
extern _Atomic int mg_log_threshold_;

static inline int mg_log_enabled(enum mg_log_level level)
{
    return (int)level >= atomic_load_explicit(&mg_log_threshold_, memory_order_relaxed);
}

/* Logs msg with fields (key, MG_x(value) pairs) when level is enabled.
 * Evaluates to 0 when written or skipped, or a negative errno when the line
 * was dropped (see mg_log_write). */
#define mg_log(level, msg, ...)                                                  \
    (mg_log_enabled(level) ? mg_log_write((level), (msg), ##__VA_ARGS__, (const char *)0) : 0)

/* The function behind mg_log(): the field list must end with a NULL key. It
 * does not check the level again. Returns 0, or -EAGAIN (a non-blocking fd
 * was full) / another -errno when the line could not be written; such lines
 * are counted by mg_log_dropped(). */
int mg_log_write(enum mg_log_level level, const char *msg, ...);
int mg_log_writev(enum mg_log_level level, const char *msg, va_list ap);

/* Run-time settings, safe from any thread. A changed fd takes effect for
 * lines started after the change; the caller keeps the old fd open until
 * other threads are done with it. */
void mg_log_set_level(enum mg_log_level level);
enum mg_log_level mg_log_get_level(void);
void mg_log_set_fd(int fd);
void mg_log_set_format(enum mg_log_format format);

/* "debug", "info", "warn" (or "warning"), "error", "off" (any case) to a
 * level: 0, or -EINVAL. */
int mg_log_level_parse(const char *s, enum mg_log_level *out);
const char *mg_log_level_name(enum mg_log_level level);

/* Lines that could not be written since the start. */
uint64_t mg_log_dropped(void);

#endif
