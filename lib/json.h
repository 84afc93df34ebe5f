/* JSON helpers on jansson for configuration and manifest handling.
 *
 * - Loading from a buffer or a file with a size cap and a nesting-depth cap;
 *   jansson's error position becomes "file:line:col: message".
 * - An error collector (struct mg_json_errs) that keeps every error of a
 *   document (file, path, line:col, message) so a config check prints all of
 *   them at once, not just the first.
 * - Typed getters addressed by a key path such as
 *   "routes[2].versions[0].weight" (printf-formatted, so loops pass indices),
 *   whose errors name the path: "routes[2].versions[0].weight: expected an
 *   integer, got string". Required (mg_json_get_*) and optional
 *   (mg_json_opt_*: absent or null leaves *out untouched) variants.
 * - Duration ("250ms", "1m30s") and size ("512Ki", "1Mi", plain bytes)
 *   parsing with bounds.
 * - Strict unknown-key detection with "did you mean" suggestions.
 * - Compact serialisation into a capped struct mg_buf.
 *
 * Path syntax: keys separated by '.', array indices as [N], and keys that
 * contain '.', '[' or ']' as ["key"] (with \" and \\ escapes). The empty
 * path is the root. A path segment that is absent or JSON null makes the
 * whole path absent; a segment of the wrong kind (indexing a string) is an
 * error naming that segment's path.
 *
 * Every function taking a struct mg_json_errs * accepts NULL (errors are then
 * only returned, not collected). */
#ifndef MG_JSON_H
#define MG_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"

/* --- error collector ------------------------------------------------------ */

struct mg_json_error {
    const char *file;   /* "" when none was set */
    const char *path;   /* "" for document-level errors (syntax, limits) */
    const char *msg;
    unsigned line, col; /* 1-based; 0 when unknown */
};

struct mg_json_errs {
    struct mg_json_error *items;
    size_t n, cap;
    size_t max;        /* errors kept; past it they are only counted */
    size_t dropped;    /* errors past max (or lost to ENOMEM) */
    char file[256];    /* the document name stamped on errors added now */
};

#define MG_JSON_ERRS_DEFAULT_MAX 100
/* Messages longer than this are truncated (with "..."). */
#define MG_JSON_ERR_MSG_MAX 512

/* max 0 means MG_JSON_ERRS_DEFAULT_MAX. Allocates nothing until the first
 * error. */
void mg_json_errs_init(struct mg_json_errs *e, size_t max);
void mg_json_errs_free(struct mg_json_errs *e);
/* Names the document that the next errors belong to (copied, truncated to
 * 255 bytes); NULL clears it. */
void mg_json_errs_set_file(struct mg_json_errs *e, const char *file);
/* Records one error. An error identical to one already kept (same file, path,
 * position and message) is not repeated. Returns 0, or -ENOSPC/-ENOMEM when
 * it could not be kept (it is then counted in dropped). */
int mg_json_errs_add(struct mg_json_errs *e, const char *path, unsigned line,
                     unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Every error seen, including dropped ones. */
size_t mg_json_errs_count(const struct mg_json_errs *e);
/* Appends one line per kept error: "file:line:col: path: message\n" (parts
 * that are unknown are left out), then "... and N more errors\n" when some
 * were dropped. -ENOBUFS when out's cap is reached. */
int mg_json_errs_format(const struct mg_json_errs *e, struct mg_buf *out);

/* --- loading -------------------------------------------------------------- */

struct mg_json_limits {
    size_t max_bytes;    /* input size, default MG_JSON_DEFAULT_MAX_BYTES */
    unsigned max_depth;  /* nesting of arrays/objects, default MG_JSON_DEFAULT_MAX_DEPTH */
};

#define MG_JSON_DEFAULT_MAX_BYTES ((size_t)4 << 20)
#define MG_JSON_DEFAULT_MAX_DEPTH 100u
/* jansson's own parser stops at this depth whatever the limits say. */
#define MG_JSON_HARD_MAX_DEPTH 2000u

void mg_json_limits_default(struct mg_json_limits *l);

/* Parses one JSON value (any type) from data[0..len). Duplicate object keys,
 * NUL characters (\u0000) and trailing garbage are refused. name labels the
 * errors (may be NULL). lim NULL means the defaults. On success *out is a new
 * reference the caller owns.
 * Returns 0, -EFBIG (over max_bytes), -EINVAL (syntax, depth; the error is
 * collected with line:col), -ENOMEM. */
int mg_json_load(const char *data, size_t len, const struct mg_json_limits *lim,
                 const char *name, struct mg_json_errs *e, json_t **out);
/* The same from a file, which is read up to max_bytes (more is -EFBIG,
 * whatever stat says: pipes and /proc files have no reliable size).
 * Returns also -errno from open/read, with a message collected. */
int mg_json_load_file(const char *path, const struct mg_json_limits *lim,
                      struct mg_json_errs *e, json_t **out);

/* Reads a whole file, at most max bytes, into a new NUL-terminated buffer the
 * caller frees. Returns 0, -EFBIG when the file holds more than max bytes,
 * -ENOMEM, or -errno. */
int mg_read_file(const char *path, size_t max, char **data, size_t *len);

/* --- serialisation -------------------------------------------------------- */

/* Appends v as compact JSON (no spaces, object keys in insertion order,
 * JSON_SORT_KEYS etc. may be added through flags) to out. On failure out is
 * left as it was. Returns 0, -ENOBUFS (out's cap), -ENOMEM, -EINVAL (jansson
 * refused the value). */
int mg_json_dump(const json_t *v, struct mg_buf *out, size_t flags);

/* --- lookup and typed getters ------------------------------------------- */

/* The kind of a value as error messages name it: "object", "array",
 * "string", "integer", "number", "boolean", "null". */
const char *mg_json_kind(const json_t *v);

/* Finds the value at a path. Returns 0 (*out set), -ENOENT (absent or null),
 * -ENOTDIR (a segment has the wrong kind), -EINVAL (malformed path),
 * -ENAMETOOLONG. Records nothing. */
int mg_json_find(json_t *root, json_t **out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Typed getters. get: the value must be present and non-null ("missing
 * required field" otherwise). opt: absent or null returns 0 and leaves *out
 * untouched (set the default first). Any other mismatch is recorded in e and
 * returned as -EINVAL (-ENOENT for a missing required field). */
int mg_json_get_object(json_t *root, struct mg_json_errs *e, json_t **out,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int mg_json_opt_object(json_t *root, struct mg_json_errs *e, json_t **out,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int mg_json_get_array(json_t *root, struct mg_json_errs *e, json_t **out,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int mg_json_opt_array(json_t *root, struct mg_json_errs *e, json_t **out,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Strings are borrowed from the document. Strings holding NUL are refused. */
int mg_json_get_string(json_t *root, struct mg_json_errs *e, const char **out,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int mg_json_opt_string(json_t *root, struct mg_json_errs *e, const char **out,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Integers in [min, max]; a real with an integral value (5.0, 1e3) counts. */
int mg_json_get_int(json_t *root, struct mg_json_errs *e, long long *out,
                    long long min, long long max, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int mg_json_opt_int(json_t *root, struct mg_json_errs *e, long long *out,
                    long long min, long long max, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Any number (integer or real) in [min, max]. */
int mg_json_get_number(json_t *root, struct mg_json_errs *e, double *out,
                       double min, double max, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int mg_json_opt_number(json_t *root, struct mg_json_errs *e, double *out,
                       double min, double max, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int mg_json_get_bool(json_t *root, struct mg_json_errs *e, int *out,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int mg_json_opt_bool(json_t *root, struct mg_json_errs *e, int *out,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A duration string (see mg_duration_parse) in [min_ms, max_ms]. */
int mg_json_get_duration(json_t *root, struct mg_json_errs *e, uint64_t *ms,
                         uint64_t min_ms, uint64_t max_ms, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int mg_json_opt_duration(json_t *root, struct mg_json_errs *e, uint64_t *ms,
                         uint64_t min_ms, uint64_t max_ms, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* A size: a non-negative integer (bytes) or a string (see mg_size_parse), in
 * [min, max]. */
int mg_json_get_size(json_t *root, struct mg_json_errs *e, uint64_t *bytes,
                     uint64_t min, uint64_t max, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int mg_json_opt_size(json_t *root, struct mg_json_errs *e, uint64_t *bytes,
                     uint64_t min, uint64_t max, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Reports every key of the object at the path that is not in allowed (a
 * NULL-terminated list), each as "PATH.key: unknown field" with a "did you
 * mean" hint for near misses. An absent or null object passes; a non-object
 * is an error. Returns 0, or -EINVAL when anything was reported. */
int mg_json_check_keys(json_t *root, struct mg_json_errs *e,
                       const char *const *allowed, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- durations and sizes -------------------------------------------------- */

/* Parses a duration: "0", or one or more <number><unit> with units h, m, s,
 * ms in decreasing order, each at most once ("1h", "1m30s", "250ms",
 * "1.5s"). Numbers are decimal with an optional fraction; the result must be
 * a whole number of milliseconds and at most MG_DURATION_MAX_MS. No sign, no
 * spaces. On error returns -EINVAL (-ERANGE for overflow) and sets *why to a
 * static explanation. */
int mg_duration_parse(const char *s, size_t len, uint64_t *ms, const char **why);
/* 100 years: anything larger is a typo, and it keeps sums far from overflow. */
#define MG_DURATION_MAX_MS ((uint64_t)100 * 365 * 24 * 3600 * 1000)

/* Parses a size as Kubernetes quantities spell bytes: digits with an optional
 * fraction, then an optional suffix: Ki Mi Gi Ti (powers of 1024) or k M G T
 * (powers of 1000). "1.5Ki" is 1536; the result must be a whole number of
 * bytes that fits in 63 bits. Errors as mg_duration_parse. */
int mg_size_parse(const char *s, size_t len, uint64_t *bytes, const char **why);

#endif
