/* Small helpers of the apiserver core: Status errors as Kubernetes words
 * them, RFC 3339 times, UUIDs, URL decoding and dotted JSON paths. */
#define _GNU_SOURCE
#include "apiserver/server.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void as_err_clear(struct as_err *e)
{
    if (e->details)
        json_decref(e->details);
    memset(e, 0, sizeof *e);
}

int as_errf(struct as_err *e, int code, const char *reason, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    e->reason = reason;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *as_status_json(const struct as_err *e)
{
    json_t *st = json_pack("{s:s, s:s, s:{}}", "kind", "Status", "apiVersion", "v1", "metadata");
    if (!st)
        return NULL;
    if (!e) {
        json_object_set_new(st, "status", json_string("Success"));
        return st;
    }
    json_object_set_new(st, "status", json_string("Failure"));
    json_object_set_new(st, "message", json_string(e->msg));
    if (e->reason && *e->reason)
        json_object_set_new(st, "reason", json_string(e->reason));
    if (e->details)
        json_object_set(st, "details", e->details);
    json_object_set_new(st, "code", json_integer(e->code));
    return st;
}

void as_qualified_resource(const struct as_resource *res, char *out, size_t n)
{
    if (res->group && *res->group)
        snprintf(out, n, "%s.%s", res->resource, res->group);
    else
        snprintf(out, n, "%s", res->resource);
}

void as_qualified_kind(const struct as_resource *res, char *out, size_t n)
{
    if (res->group && *res->group)
        snprintf(out, n, "%s.%s", res->kind, res->group);
    else
        snprintf(out, n, "%s", res->kind);
}

static json_t *details_for(const struct as_resource *res, const char *name, int kind_is_kind)
{
    json_t *d = json_object();
    if (!d)
        return NULL;
    if (name)
        json_object_set_new(d, "name", json_string(name));
    if (res->group && *res->group)
        json_object_set_new(d, "group", json_string(res->group));
    json_object_set_new(d, "kind", json_string(kind_is_kind ? res->kind : res->resource));
    return d;
}

int as_err_not_found(struct as_err *e, const struct as_resource *res, const char *name)
{
    char q[256];
    as_qualified_resource(res, q, sizeof q);
    as_errf(e, 404, "NotFound", "%s \"%s\" not found", q, name);
    e->details = details_for(res, name, 0);
    return -1;
}

int as_err_exists(struct as_err *e, const struct as_resource *res, const char *name)
{
    char q[256];
    as_qualified_resource(res, q, sizeof q);
    as_errf(e, 409, "AlreadyExists", "%s \"%s\" already exists", q, name);
    e->details = details_for(res, name, 0);
    return -1;
}

int as_err_conflict(struct as_err *e, const struct as_resource *res, const char *name)
{
    char q[256];
    as_qualified_resource(res, q, sizeof q);
    as_errf(e, 409, "Conflict",
            "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please "
            "apply your changes to the latest version and try again",
            q, name);
    e->details = details_for(res, name, 0);
    return -1;
}

int as_err_invalid(struct as_err *e, const struct as_resource *res, const char *name,
                   json_t *causes)
{
    char q[256];
    as_qualified_kind(res, q, sizeof q);
    /* "Widget.example.com "w1" is invalid: spec.size: Invalid value: ...",
     * several errors bracketed and comma-separated as Go's aggregate prints
     * them. */
    size_t n = json_array_size(causes);
    char list[768];
    size_t off = 0;
    list[0] = 0;
    for (size_t i = 0; i < n && off < sizeof list - 1; i++) {
        json_t *c = json_array_get(causes, i);
        const char *f = json_string_value(json_object_get(c, "field"));
        const char *m = json_string_value(json_object_get(c, "message"));
        int w = snprintf(list + off, sizeof list - off, "%s%s%s%s", i ? ", " : "",
                         f && *f ? f : "", f && *f ? ": " : "", m ? m : "");
        if (w < 0)
            break;
        off += (size_t)w;
        if (off >= sizeof list)
            off = sizeof list - 1;
    }
    if (n > 1)
        as_errf(e, 422, "Invalid", "%s \"%s\" is invalid: [%s]", q, name ? name : "", list);
    else
        as_errf(e, 422, "Invalid", "%s \"%s\" is invalid: %s", q, name ? name : "", list);
    e->details = details_for(res, name, 1);
    if (e->details)
        json_object_set(e->details, "causes", causes);
    return -1;
}

/* --- time, ids ----------------------------------------------------------- */

void as_rfc3339(int64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int as_parse_rfc3339(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p)
        return -EINVAL;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2)
            return -EINVAL;
        off = (int64_t)(hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    *out = (int64_t)timegm(&tm) - off;
    return 0;
}

void as_uuid4(char *buf, size_t n)
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r <= 0) {
            /* getrandom cannot fail this late after boot; still, never
             * hand out a fixed id. */
            uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)random();
            for (; got < sizeof b; got++, x = x * 6364136223846793005ull + 1442695040888963407ull)
                b[got] = (unsigned char)(x >> 56);
            break;
        }
        got += (size_t)r;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(buf, n,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int as_url_decode(const char *s, size_t n, int plus, char *out, size_t outn)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -EINVAL;
            c = h * 16 + l;
            if (c == 0)
                return -EINVAL;
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (o + 1 >= outn)
            return -ENOBUFS;
        out[o++] = (char)c;
    }
    if (outn == 0)
        return -ENOBUFS;
    out[o] = 0;
    return 0;
}

void as_api_version(const struct as_resource *res, char *out, size_t n)
{
    if (res->group && *res->group)
        snprintf(out, n, "%s/%s", res->group, res->version);
    else
        snprintf(out, n, "%s", res->version);
}

int as_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || strlen(s) > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* --- JSON paths ------------------------------------------------------------ */

json_t *as_json_path_get(json_t *obj, const char *path)
{
    char seg[256];
    const char *p = path;
    json_t *cur = obj;
    if (*p == '.')
        p++;
    while (cur && *p) {
        size_t n = strcspn(p, ".[");
        if (n >= sizeof seg)
            return NULL;
        if (n > 0) {
            memcpy(seg, p, n);
            seg[n] = 0;
            cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
            p += n;
        }
        while (cur && *p == '[') {
            char *end;
            unsigned long idx = strtoul(p + 1, &end, 10);
            if (*end != ']')
                return NULL;
            cur = json_is_array(cur) ? json_array_get(cur, idx) : NULL;
            p = end + 1;
        }
        if (*p == '.')
            p++;
    }
    return cur;
}

int as_json_path_set(json_t *obj, const char *path, json_t *v)
{
    char seg[256];
    const char *p = path;
    json_t *cur = obj;
    if (*p == '.')
        p++;
    if (!*p || !json_is_object(obj)) {
        json_decref(v);
        return -EINVAL;
    }
    for (;;) {
        size_t n = strcspn(p, ".[");
        if (n == 0 || n >= sizeof seg || p[n] == '[') {
            /* Indexed paths are read-only here: the scale paths never use
             * them. */
            json_decref(v);
            return -EINVAL;
        }
        memcpy(seg, p, n);
        seg[n] = 0;
        p += n;
        if (!*p)
            return json_object_set_new(cur, seg, v) == 0 ? 0 : -ENOMEM;
        p++;
        json_t *next = json_object_get(cur, seg);
        if (!json_is_object(next)) {
            next = json_object();
            if (!next || json_object_set_new(cur, seg, next) < 0) {
                json_decref(v);
                return -ENOMEM;
            }
        }
        cur = next;
    }
}

json_t *as_meta(json_t *obj)
{
    json_t *m = json_object_get(obj, "metadata");
    if (!json_is_object(m)) {
        m = json_object();
        json_object_set_new(obj, "metadata", m);
    }
    return m;
}

const char *as_meta_str(json_t *obj, const char *key)
{
    json_t *m = json_object_get(obj, "metadata");
    return json_string_value(json_object_get(m, key));
}

uint64_t as_obj_rv(json_t *obj)
{
    uint64_t rv = 0;
    const char *s = as_meta_str(obj, "resourceVersion");
    if (s)
        as_parse_u64(s, &rv);
    return rv;
}
