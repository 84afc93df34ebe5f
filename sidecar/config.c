/* The route table: loading, validation and the immutable struct sc_config
 * that every worker shares (contract in sidecar/config.h, reference in
 * docs/sidecar.md).
 *
 * Validation walks the whole document and records every problem with its
 * key path instead of stopping at the first: `--check` and a refused reload
 * must name them all, or an operator fixes one mistake per round trip.
 * The document kept in cfg->doc gets every default written in, so that
 * GET /config shows the table in force rather than what was typed. */
#include "sidecar/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/loop.h"
#include "lib/yaml.h"

#define SC_CONFIG_MAX_BYTES ((size_t)4 << 20)
#define SC_NAME_MAX 63          /* version names: a header value and a metric label */
#define SC_MODEL_MAX 256
#define SC_TOKEN_MAX 128        /* header names */
#define SC_HOST_MAX 253

/* Bounds. Durations are ms; "0" on a route timeout means none. */
#define SC_TIMEOUT_MAX_MS ((uint64_t)24 * 3600 * 1000)
#define SC_CLIENT_TIMEOUT_MIN_MS 100u
#define SC_BODY_MIN ((uint64_t)1 << 10)
#define SC_BODY_MAX ((uint64_t)64 << 20)
#define SC_HEAD_MIN ((uint64_t)1 << 10)
#define SC_HEAD_MAX ((uint64_t)1 << 20)
#define SC_MAX_CONNS_MAX 1000000
#define SC_MAX_IDLE_MAX 100000

/* The public struct plus what only this file reads: an exact-match index of
 * the models, so the per-request lookup does not scan every route. */
struct sc_config_priv {
    struct sc_config pub;
    unsigned *index;            /* route index + 1; 0 = empty slot */
    size_t index_mask;
    const struct sc_route *wildcard;
};

/* Validation state: the error and warning collectors and whether anything
 * failed (counted here, since the collector does not repeat an error it
 * already holds). */
struct vctx {
    struct mg_json_errs *e, *w;
    json_t *doc;
    unsigned nerr;
};

static int chk(struct vctx *v, int rc)
{
    if (rc < 0)
        v->nerr++;
    return rc;
}

static void verr(struct vctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verr(struct vctx *v, const char *path, const char *fmt, ...)
{
    char msg[MG_JSON_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mg_json_errs_add(v->e, path, 0, 0, "%s", msg);
    v->nerr++;
}

/* --- freeing ---------------------------------------------------------------- */

static void route_free(struct sc_route *r)
{
    for (unsigned i = 0; r->versions && i < r->nversions; i++) {
        struct sc_version *ver = &r->versions[i];
        free(ver->name);
        for (unsigned j = 0; ver->endpoints && j < ver->nendpoints; j++)
            free(ver->endpoints[j]);
        free(ver->endpoints);
    }
    free(r->versions);
    for (unsigned i = 0; r->match && i < r->nmatch; i++) {
        free(r->match[i].header);
        free(r->match[i].value);
    }
    free(r->match);
    free(r->sticky_header);
    free(r->model);
}

static void config_free(struct sc_config *cfg)
{
    struct sc_config_priv *p = (struct sc_config_priv *)cfg;
    if (!cfg)
        return;
    for (unsigned i = 0; cfg->routes && i < cfg->nroutes; i++)
        route_free(&cfg->routes[i]);
    free(cfg->routes);
    free(cfg->listen);
    free(cfg->admin);
    free(cfg->source);
    json_decref(cfg->doc);
    free(p->index);
    free(p);
}

void sc_config_ref(struct sc_config *cfg)
{
    __atomic_fetch_add(&cfg->refs_, 1, __ATOMIC_RELAXED);
}

void sc_config_unref(struct sc_config *cfg)
{
    if (!cfg)
        return;
    /* Release so this thread's reads happen before the free; acquire on the
     * last one so the free sees every other thread's. */
    if (__atomic_sub_fetch(&cfg->refs_, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(cfg);
}

/* --- small validators ----------------------------------------------------- */

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A header name (RFC 9110 token); returns a lower-cased copy or NULL with
 * the error recorded (*oom set when the copy failed). */
static char *header_token(struct vctx *v, const char *path, const char *s, int *oom)
{
    size_t n = strlen(s);
    if (n == 0) {
        verr(v, path, "a header name cannot be empty");
        return NULL;
    }
    if (n > SC_TOKEN_MAX) {
        verr(v, path, "header name longer than %d bytes", SC_TOKEN_MAX);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)s[i])) {
            verr(v, path, "\"%s\" is not a valid header name (letters, digits and !#$%%&'*+-.^_`|~ only)",
                 s);
            return NULL;
        }
    }
    char *c = strdup(s);
    if (!c) {
        *oom = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (c[i] >= 'A' && c[i] <= 'Z')
            c[i] = (char)(c[i] - 'A' + 'a');
    return c;
}

static int valid_version_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SC_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return 1;
    return 0;
}

/* A host name or IPv4 literal: letters, digits, '-', '.', '_' (some internal
 * DNS names carry it). Resolution happens later, in the proxy. */
static int valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > SC_HOST_MAX || h[0] == '.' || h[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
        if (c == '.' && h[i + 1] == '.')
            return 0;
    }
    return 1;
}

/* "host:port" / "[v6]:port". listen addresses may leave the host empty or
 * "*" (any address); endpoints need a host to connect to. */
static int check_hostport(struct vctx *v, const char *path, const char *s, int listen)
{
    char host[SC_HOST_MAX + 2];
    unsigned port = 0;
    if (strstr(s, "://")) {
        verr(v, path, "\"%s\": expected host:port without a scheme (e.g. 127.0.0.1:8000)", s);
        return -EINVAL;
    }
    if (mg_split_hostport(s, host, sizeof host, &port) < 0) {
        verr(v, path, "\"%s\" is not host:port or [ipv6]:port with a port 1-65535", s);
        return -EINVAL;
    }
    if (port < 1 || port > 65535) {
        verr(v, path, "\"%s\": port must be 1-65535", s);
        return -EINVAL;
    }
    if (s[0] == '[') {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1) {
            verr(v, path, "\"%s\": [%s] is not an IPv6 address", s, host);
            return -EINVAL;
        }
        return 0;
    }
    if (listen && (host[0] == '\0' || strcmp(host, "*") == 0))
        return 0;
    if (!valid_hostname(host)) {
        verr(v, path, "\"%s\": \"%s\" is not a valid host name or address", s, host);
        return -EINVAL;
    }
    return 0;
}

/* Whether two listen addresses would bind the same port: with SO_REUSEPORT
 * both binds succeed and connections would be split between data and admin
 * traffic, so this is caught here rather than at bind time. */
static int same_listener(const char *a, const char *b)
{
    char ha[SC_HOST_MAX + 2], hb[SC_HOST_MAX + 2];
    unsigned pa, pb;
    if (mg_split_hostport(a, ha, sizeof ha, &pa) < 0 || mg_split_hostport(b, hb, sizeof hb, &pb) < 0)
        return 0;
    if (pa != pb)
        return 0;
    static const char *const any[] = {"", "*", "0.0.0.0", "::", NULL};
    for (unsigned i = 0; any[i]; i++)
        if (strcmp(ha, any[i]) == 0 || strcmp(hb, any[i]) == 0)
            return 1;
    return strcasecmp(ha, hb) == 0;
}

/* Optional object/array that the current issue does not enforce yet. */
static void accept_later(struct vctx *v, json_t *root, const char *base, const char *key,
                         int array)
{
    json_t *o = NULL;
    int rc = array ? mg_json_opt_array(root, v->e, &o, "%s.%s", base, key)
                   : mg_json_opt_object(root, v->e, &o, "%s.%s", base, key);
    if (chk(v, rc) < 0 || !o)
        return;
    char path[96];
    snprintf(path, sizeof path, "%s.%s", base, key);
    mg_json_errs_add(v->w, path, 0, 0, "accepted but not enforced yet (issue 5)");
}

/* Writes a default into an object when the key is absent or null, so the
 * kept document shows the effective value. */
static int fill(json_t *obj, const char *key, json_t *val)
{
    if (!val)
        return -ENOMEM;
    json_t *cur = json_object_get(obj, key);
    if (cur && !json_is_null(cur)) {
        json_decref(val);
        return 0;
    }
    return json_object_set_new(obj, key, val) == 0 ? 0 : -ENOMEM;
}

/* The object at key inside parent, created (or replacing null) when absent.
 * NULL on ENOMEM. */
static json_t *sub_object(json_t *parent, const char *key)
{
    json_t *o = json_object_get(parent, key);
    if (o && json_is_object(o))
        return o;
    o = json_object();
    if (!o || json_object_set_new(parent, key, o) != 0)
        return NULL;
    return o;
}

/* --- routes ---------------------------------------------------------------- */

/* Validates routes[i] into r. Returns 0 (errors are counted in v), or
 * -ENOMEM. */
static int parse_route(struct vctx *v, json_t *rj, unsigned i, struct sc_route *r)
{
    static const char *const rkeys[] = {"model", "versions", "match", "sticky", "timeouts",
                                        "retries", "circuitBreaker", "rateLimit", "fallback",
                                        "mtls", NULL};
    static const char *const vkeys[] = {"name", "weight", "endpoints", NULL};
    static const char *const mkeys[] = {"header", "value", "version", NULL};
    static const char *const skeys[] = {"header", NULL};
    static const char *const tkeys[] = {"connect", "firstToken", "idle", "total", NULL};
    json_t *root = v->doc;
    char base[32], path[96];
    const char *s;
    json_t *arr;
    int oom = 0;

    snprintf(base, sizeof base, "routes[%u]", i);
    r->raw = rj;
    chk(v, mg_json_check_keys(root, v->e, rkeys, "%s", base));

    s = NULL;
    if (chk(v, mg_json_get_string(root, v->e, &s, "%s.model", base)) == 0) {
        snprintf(path, sizeof path, "%s.model", base);
        if (s[0] == '\0')
            verr(v, path, "a model name cannot be empty (use \"*\" for any model)");
        else if (strlen(s) > SC_MODEL_MAX)
            verr(v, path, "model name longer than %d bytes", SC_MODEL_MAX);
        else if (has_ctl(s))
            verr(v, path, "model name contains a control character");
        else if (!(r->model = strdup(s)))
            return -ENOMEM;
        else
            r->wildcard = strcmp(s, "*") == 0;
    }

    /* Versions. */
    int weights_ok = 1;
    arr = NULL;
    if (chk(v, mg_json_get_array(root, v->e, &arr, "%s.versions", base)) < 0) {
        weights_ok = 0;
    } else {
        size_t nv = json_array_size(arr);
        snprintf(path, sizeof path, "%s.versions", base);
        if (nv == 0) {
            verr(v, path, "at least one version is needed");
            weights_ok = 0;
        } else if (nv > SC_MAX_VERSIONS) {
            verr(v, path, "%zu versions; at most %d per route", nv, SC_MAX_VERSIONS);
            weights_ok = 0;
            nv = SC_MAX_VERSIONS;
        }
        if (nv && !(r->versions = calloc(nv, sizeof *r->versions)))
            return -ENOMEM;
        for (unsigned j = 0; j < nv; j++) {
            struct sc_version *ver = &r->versions[r->nversions];
            json_t *vj = NULL;
            char vbase[64];
            snprintf(vbase, sizeof vbase, "%s.versions[%u]", base, j);
            /* Each slot is kept even when it is invalid, so slot indices
             * stay document indices (for messages). */
            r->nversions++;
            if (chk(v, mg_json_get_object(root, v->e, &vj, "%s", vbase)) < 0) {
                weights_ok = 0;
                continue;
            }
            chk(v, mg_json_check_keys(root, v->e, vkeys, "%s", vbase));
            s = NULL;
            if (chk(v, mg_json_get_string(root, v->e, &s, "%s.name", vbase)) == 0) {
                snprintf(path, sizeof path, "%s.name", vbase);
                int dup = -1;
                for (unsigned k = 0; k + 1 < r->nversions; k++)
                    if (r->versions[k].name && strcmp(r->versions[k].name, s) == 0)
                        dup = (int)k;
                if (!valid_version_name(s))
                    verr(v, path, "\"%s\" is not a valid version name (1-%d characters of A-Z a-z 0-9 . _ -)",
                         s, SC_NAME_MAX);
                else if (dup >= 0)
                    verr(v, path, "duplicate version name \"%s\" (also %s.versions[%d])", s, base,
                         dup);
                else if (!(ver->name = strdup(s)))
                    return -ENOMEM;
            }
            long long w = 0;
            if (chk(v, mg_json_get_int(root, v->e, &w, 0, 10000, "%s.weight", vbase)) < 0)
                weights_ok = 0;
            else
                ver->weight = (unsigned)w;
            json_t *eps = NULL;
            if (chk(v, mg_json_get_array(root, v->e, &eps, "%s.endpoints", vbase)) < 0)
                continue;
            size_t ne = json_array_size(eps);
            snprintf(path, sizeof path, "%s.endpoints", vbase);
            if (ne == 0) {
                verr(v, path, "at least one endpoint (host:port) is needed");
                continue;
            }
            if (ne > SC_MAX_ENDPOINTS) {
                verr(v, path, "%zu endpoints; at most %d per version", ne, SC_MAX_ENDPOINTS);
                ne = SC_MAX_ENDPOINTS;
            }
            if (!(ver->endpoints = calloc(ne, sizeof *ver->endpoints)))
                return -ENOMEM;
            for (unsigned k = 0; k < ne; k++) {
                s = NULL;
                if (chk(v, mg_json_get_string(root, v->e, &s, "%s.endpoints[%u]", vbase, k)) < 0)
                    continue;
                snprintf(path, sizeof path, "%s.endpoints[%u]", vbase, k);
                if (check_hostport(v, path, s, 0) < 0)
                    continue;
                int dup = -1;
                for (unsigned m = 0; m < ver->nendpoints; m++)
                    if (strcmp(ver->endpoints[m], s) == 0)
                        dup = (int)m;
                if (dup >= 0) {
                    verr(v, path, "duplicate endpoint \"%s\" in this version", s);
                    continue;
                }
                if (!(ver->endpoints[ver->nendpoints] = strdup(s)))
                    return -ENOMEM;
                ver->nendpoints++;
            }
        }
        if (weights_ok) {
            for (unsigned j = 0; j < r->nversions; j++)
                r->total_weight += r->versions[j].weight;
            if (r->total_weight == 0) {
                snprintf(path, sizeof path, "%s.versions", base);
                verr(v, path, "every weight is 0; at least one version needs a weight > 0");
            }
        }
    }

    /* Match rules. */
    arr = NULL;
    if (chk(v, mg_json_opt_array(root, v->e, &arr, "%s.match", base)) == 0 && arr) {
        size_t nm = json_array_size(arr);
        if (nm > SC_MAX_MATCH) {
            snprintf(path, sizeof path, "%s.match", base);
            verr(v, path, "%zu rules; at most %d per route", nm, SC_MAX_MATCH);
            nm = SC_MAX_MATCH;
        }
        if (nm && !(r->match = calloc(nm, sizeof *r->match)))
            return -ENOMEM;
        for (unsigned j = 0; j < nm; j++) {
            char mbase[64];
            json_t *mj = NULL;
            const char *hdr = NULL, *val = NULL, *vn = NULL;
            snprintf(mbase, sizeof mbase, "%s.match[%u]", base, j);
            if (chk(v, mg_json_get_object(root, v->e, &mj, "%s", mbase)) < 0)
                continue;
            chk(v, mg_json_check_keys(root, v->e, mkeys, "%s", mbase));
            int ok = 1;
            char *lc = NULL;
            if (chk(v, mg_json_get_string(root, v->e, &hdr, "%s.header", mbase)) == 0) {
                snprintf(path, sizeof path, "%s.header", mbase);
                if (!(lc = header_token(v, path, hdr, &oom))) {
                    if (oom)
                        return -ENOMEM;
                    ok = 0;
                }
            } else {
                ok = 0;
            }
            if (chk(v, mg_json_get_string(root, v->e, &val, "%s.value", mbase)) == 0) {
                /* A header value never holds CR, LF or other controls but
                 * HTAB: such a rule could never match. */
                for (const char *p = val; *p; p++) {
                    if (((unsigned char)*p < 0x20 && *p != '\t') || (unsigned char)*p == 0x7f) {
                        snprintf(path, sizeof path, "%s.value", mbase);
                        verr(v, path, "contains a control character; a header value cannot");
                        ok = 0;
                        break;
                    }
                }
            } else {
                ok = 0;
            }
            int idx = -1;
            if (chk(v, mg_json_get_string(root, v->e, &vn, "%s.version", mbase)) == 0) {
                for (unsigned k = 0; k < r->nversions; k++)
                    if (r->versions[k].name && strcmp(r->versions[k].name, vn) == 0)
                        idx = (int)k;
                if (idx < 0 && r->nversions) {
                    char names[200];
                    size_t o = 0;
                    names[0] = '\0';
                    for (unsigned k = 0; k < r->nversions && o < sizeof names - 1; k++) {
                        if (!r->versions[k].name)
                            continue;
                        int n = snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "",
                                         r->versions[k].name);
                        if (n < 0)
                            break;
                        o += (size_t)n;
                    }
                    if (o >= sizeof names)
                        o = sizeof names - 1;
                    snprintf(path, sizeof path, "%s.version", mbase);
                    verr(v, path, "no version named \"%s\" in this route (versions: %s)", vn,
                         names);
                }
                if (idx < 0)
                    ok = 0;
            } else {
                ok = 0;
            }
            if (!ok) {
                free(lc);
                continue;
            }
            struct sc_match *m = &r->match[r->nmatch];
            m->header = lc;
            m->version = (unsigned)idx;
            if (!(m->value = strdup(val))) {
                free(lc);
                m->header = NULL;
                return -ENOMEM;
            }
            r->nmatch++;
        }
    }

    /* Sticky. */
    json_t *sj = NULL;
    if (chk(v, mg_json_opt_object(root, v->e, &sj, "%s.sticky", base)) == 0 && sj) {
        const char *hdr = NULL;
        chk(v, mg_json_check_keys(root, v->e, skeys, "%s.sticky", base));
        if (chk(v, mg_json_get_string(root, v->e, &hdr, "%s.sticky.header", base)) == 0) {
            snprintf(path, sizeof path, "%s.sticky.header", base);
            r->sticky_header = header_token(v, path, hdr, &oom);
            if (oom)
                return -ENOMEM;
        }
    }

    /* Timeouts, with the defaults written back into the document. */
    json_t *tj = NULL;
    uint64_t t[4] = {1000, 30000, 60000, 600000};
    static const char *const tdef[4] = {"1s", "30s", "60s", "10m"};
    if (chk(v, mg_json_opt_object(root, v->e, &tj, "%s.timeouts", base)) == 0) {
        chk(v, mg_json_check_keys(root, v->e, tkeys, "%s.timeouts", base));
        for (unsigned k = 0; k < 4; k++) {
            /* YAML reads "idle: 0" as the integer 0: the one duration that
             * needs no unit, and here it means "none". */
            json_t *tv = tj ? json_object_get(tj, tkeys[k]) : NULL;
            if (json_is_integer(tv) && json_integer_value(tv) == 0)
                t[k] = 0;
            else
                chk(v, mg_json_opt_duration(root, v->e, &t[k], 0, SC_TIMEOUT_MAX_MS,
                                            "%s.timeouts.%s", base, tkeys[k]));
        }
        if (json_is_object(rj)) {
            json_t *to = sub_object(rj, "timeouts");
            if (!to)
                return -ENOMEM;
            for (unsigned k = 0; k < 4; k++)
                if (fill(to, tkeys[k], json_string(tdef[k])) < 0)
                    return -ENOMEM;
        }
    }
    r->timeouts.connect = (uint32_t)t[0];
    r->timeouts.first_token = (uint32_t)t[1];
    r->timeouts.idle = (uint32_t)t[2];
    r->timeouts.total = (uint32_t)t[3];

    accept_later(v, root, base, "retries", 0);
    accept_later(v, root, base, "circuitBreaker", 0);
    accept_later(v, root, base, "rateLimit", 0);
    accept_later(v, root, base, "fallback", 1);
    accept_later(v, root, base, "mtls", 0);
    return 0;
}

/* --- the model index ------------------------------------------------------- */

static uint64_t model_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a: model names are short */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static int build_index(struct sc_config_priv *p)
{
    struct sc_config *cfg = &p->pub;
    size_t cap = 8;
    while (cap < (size_t)cfg->nroutes * 2)
        cap <<= 1;
    if (!(p->index = calloc(cap, sizeof *p->index)))
        return -ENOMEM;
    p->index_mask = cap - 1;
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct sc_route *r = &cfg->routes[i];
        if (r->wildcard) {
            p->wildcard = r;
            continue;
        }
        size_t h = (size_t)model_hash(r->model, strlen(r->model)) & p->index_mask;
        while (p->index[h])
            h = (h + 1) & p->index_mask;
        p->index[h] = i + 1;
    }
    return 0;
}

const struct sc_route *sc_config_route(const struct sc_config *cfg, const char *model, size_t len)
{
    const struct sc_config_priv *p = (const struct sc_config_priv *)cfg;
    size_t h = (size_t)model_hash(model, len) & p->index_mask;
    for (unsigned slot; (slot = p->index[h]) != 0; h = (h + 1) & p->index_mask) {
        const struct sc_route *r = &cfg->routes[slot - 1];
        /* strnlen first: the request's bytes may hold a NUL, and r->model
         * must not be read past its end. */
        if (strnlen(r->model, len + 1) == len && memcmp(r->model, model, len) == 0)
            return r;
    }
    return p->wildcard;
}

/* --- the document ---------------------------------------------------------- */

/* Validates the whole document into cfg. Returns 0 (errors counted in v) or
 * -ENOMEM. */
static int parse_doc(struct vctx *v, struct sc_config *cfg)
{
    static const char *const top[] = {"listen", "admin", "workers", "limits", "client",
                                      "upstream", "accessLog", "routes", NULL};
    static const char *const lkeys[] = {"requestBody", "requestHead", NULL};
    static const char *const ckeys[] = {"headerTimeout", "keepAliveTimeout", "maxConnections",
                                        NULL};
    static const char *const ukeys[] = {"maxIdlePerEndpoint", "idleTimeout", NULL};
    json_t *root = v->doc;
    const char *s;
    long long n;
    uint64_t u;
    json_t *o;

    chk(v, mg_json_check_keys(root, v->e, top, "%s", ""));

    s = NULL;
    if (chk(v, mg_json_get_string(root, v->e, &s, "listen")) == 0 &&
        check_hostport(v, "listen", s, 1) == 0 && !(cfg->listen = strdup(s)))
        return -ENOMEM;
    s = NULL;
    if (chk(v, mg_json_opt_string(root, v->e, &s, "admin")) == 0 && s &&
        check_hostport(v, "admin", s, 1) == 0 && !(cfg->admin = strdup(s)))
        return -ENOMEM;
    if (cfg->listen && cfg->admin && same_listener(cfg->listen, cfg->admin))
        verr(v, "admin", "\"%s\" overlaps listen \"%s\"; the admin port must be another port",
             cfg->admin, cfg->listen);
    n = 1;
    chk(v, mg_json_opt_int(root, v->e, &n, 1, SC_MAX_WORKERS, "workers"));
    cfg->workers = (unsigned)n;
    if (fill(root, "workers", json_integer(n)) < 0)
        return -ENOMEM;

    cfg->max_body = (uint64_t)1 << 20;
    cfg->max_head = (uint64_t)64 << 10;
    if (chk(v, mg_json_opt_object(root, v->e, &o, "limits")) == 0) {
        chk(v, mg_json_check_keys(root, v->e, lkeys, "limits"));
        chk(v, mg_json_opt_size(root, v->e, &cfg->max_body, SC_BODY_MIN, SC_BODY_MAX,
                                "limits.requestBody"));
        chk(v, mg_json_opt_size(root, v->e, &cfg->max_head, SC_HEAD_MIN, SC_HEAD_MAX,
                                "limits.requestHead"));
        if (!(o = sub_object(root, "limits")) || fill(o, "requestBody", json_string("1Mi")) < 0 ||
            fill(o, "requestHead", json_string("64Ki")) < 0)
            return -ENOMEM;
    }

    cfg->header_timeout_ms = 10000;
    cfg->keepalive_timeout_ms = 60000;
    cfg->max_conns = 10000;
    if (chk(v, mg_json_opt_object(root, v->e, &o, "client")) == 0) {
        chk(v, mg_json_check_keys(root, v->e, ckeys, "client"));
        u = cfg->header_timeout_ms;
        chk(v, mg_json_opt_duration(root, v->e, &u, SC_CLIENT_TIMEOUT_MIN_MS, SC_TIMEOUT_MAX_MS,
                                    "client.headerTimeout"));
        cfg->header_timeout_ms = (uint32_t)u;
        u = cfg->keepalive_timeout_ms;
        chk(v, mg_json_opt_duration(root, v->e, &u, SC_CLIENT_TIMEOUT_MIN_MS, SC_TIMEOUT_MAX_MS,
                                    "client.keepAliveTimeout"));
        cfg->keepalive_timeout_ms = (uint32_t)u;
        n = cfg->max_conns;
        chk(v, mg_json_opt_int(root, v->e, &n, 1, SC_MAX_CONNS_MAX, "client.maxConnections"));
        cfg->max_conns = (unsigned)n;
        if (!(o = sub_object(root, "client")) || fill(o, "headerTimeout", json_string("10s")) < 0 ||
            fill(o, "keepAliveTimeout", json_string("60s")) < 0 ||
            fill(o, "maxConnections", json_integer(10000)) < 0)
            return -ENOMEM;
    }

    cfg->upstream_max_idle = 256;
    cfg->upstream_idle_ms = 30000;
    if (chk(v, mg_json_opt_object(root, v->e, &o, "upstream")) == 0) {
        chk(v, mg_json_check_keys(root, v->e, ukeys, "upstream"));
        n = cfg->upstream_max_idle;
        chk(v, mg_json_opt_int(root, v->e, &n, 0, SC_MAX_IDLE_MAX, "upstream.maxIdlePerEndpoint"));
        cfg->upstream_max_idle = (unsigned)n;
        u = cfg->upstream_idle_ms;
        chk(v, mg_json_opt_duration(root, v->e, &u, SC_CLIENT_TIMEOUT_MIN_MS, SC_TIMEOUT_MAX_MS,
                                    "upstream.idleTimeout"));
        cfg->upstream_idle_ms = (uint32_t)u;
        if (!(o = sub_object(root, "upstream")) ||
            fill(o, "maxIdlePerEndpoint", json_integer(256)) < 0 ||
            fill(o, "idleTimeout", json_string("30s")) < 0)
            return -ENOMEM;
    }

    cfg->access_log = 1;
    chk(v, mg_json_opt_bool(root, v->e, &cfg->access_log, "accessLog"));
    if (fill(root, "accessLog", json_true()) < 0)
        return -ENOMEM;

    json_t *routes = NULL;
    if (chk(v, mg_json_get_array(root, v->e, &routes, "routes")) < 0)
        return 0;
    size_t nr = json_array_size(routes);
    if (nr == 0) {
        verr(v, "routes", "at least one route is needed");
        return 0;
    }
    if (nr > SC_MAX_ROUTES) {
        verr(v, "routes", "%zu routes; at most %d", nr, SC_MAX_ROUTES);
        nr = SC_MAX_ROUTES;
    }
    if (!(cfg->routes = calloc(nr, sizeof *cfg->routes)))
        return -ENOMEM;
    int wild = -1;
    for (unsigned i = 0; i < nr; i++) {
        json_t *rj = NULL;
        /* As for versions: slot i is routes[i] until the wildcard moves. */
        struct sc_route *r = &cfg->routes[cfg->nroutes++];
        if (chk(v, mg_json_get_object(root, v->e, &rj, "routes[%u]", i)) < 0)
            continue;
        int rc = parse_route(v, rj, i, r);
        if (rc < 0)
            return rc;
        if (!r->model)
            continue;
        char path[48];
        snprintf(path, sizeof path, "routes[%u].model", i);
        if (r->wildcard) {
            if (wild >= 0)
                verr(v, path, "a second \"*\" route (the first is routes[%d]); at most one route may match any model",
                     wild);
            else
                wild = (int)i;
            continue;
        }
        for (unsigned k = 0; k + 1 < cfg->nroutes; k++) {
            const struct sc_route *q = &cfg->routes[k];
            if (q->model && strcmp(q->model, r->model) == 0) {
                verr(v, path, "model \"%s\" is already served by routes[%u]", r->model, k);
                break;
            }
        }
    }
    /* The wildcard is tried last; keep the others in document order. */
    for (unsigned i = 0; i + 1 < cfg->nroutes; i++) {
        if (cfg->routes[i].wildcard) {
            struct sc_route w = cfg->routes[i];
            memmove(&cfg->routes[i], &cfg->routes[i + 1],
                    (cfg->nroutes - i - 1) * sizeof *cfg->routes);
            cfg->routes[cfg->nroutes - 1] = w;
            break;
        }
    }
    return 0;
}

int sc_config_parse(const char *data, size_t len, const char *name, struct sc_config **out,
                    struct mg_json_errs *errs, struct mg_json_errs *warns)
{
    struct mg_json_errs local_e, local_w;
    char saved_e[sizeof local_e.file], saved_w[sizeof local_w.file];
    struct sc_config_priv *p = NULL;
    json_t *doc = NULL;
    int rc;

    *out = NULL;
    if (!name)
        name = "";
    /* Errors are always collected (the count decides the result), into the
     * caller's collectors when given. */
    mg_json_errs_init(&local_e, 1);
    mg_json_errs_init(&local_w, 1);
    struct vctx v = {errs ? errs : &local_e, warns ? warns : &local_w, NULL, 0};
    memcpy(saved_e, v.e->file, sizeof saved_e);
    memcpy(saved_w, v.w->file, sizeof saved_w);
    mg_json_errs_set_file(v.e, name);
    mg_json_errs_set_file(v.w, name);

    if (len > SC_CONFIG_MAX_BYTES) {
        mg_json_errs_add(v.e, "", 0, 0, "the route table is larger than the limit of %zu bytes",
                         SC_CONFIG_MAX_BYTES);
        rc = -EFBIG;
        goto out;
    }
    struct mg_yaml_limits lim;
    mg_yaml_limits_default(&lim);
    lim.max_bytes = SC_CONFIG_MAX_BYTES;
    lim.max_depth = 32;    /* the deepest key is 5 levels down */
    lim.max_nodes = 200000;
    rc = mg_yaml_load(data, len, &lim, name, v.e, &doc);
    mg_json_errs_set_file(v.e, name);
    if (rc < 0) {
        if (mg_json_errs_count(v.e) == 0)
            mg_json_errs_add(v.e, "", 0, 0, "cannot parse the route table");
        goto out;
    }
    if (json_is_null(doc)) {
        mg_json_errs_add(v.e, "", 0, 0, "the route table is empty");
        rc = -EINVAL;
        goto out;
    }
    if (!json_is_object(doc)) {
        mg_json_errs_add(v.e, "", 0, 0, "expected an object (the route table), got %s",
                         mg_json_kind(doc));
        rc = -EINVAL;
        goto out;
    }
    if (!(p = calloc(1, sizeof *p))) {
        rc = -ENOMEM;
        goto out;
    }
    p->pub.refs_ = 1;
    p->pub.doc = doc;
    doc = NULL;
    v.doc = p->pub.doc;
    rc = parse_doc(&v, &p->pub);
    if (rc == 0 && v.nerr)
        rc = -EINVAL;
    if (rc == 0 && !(p->pub.source = strdup(name)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = build_index(p);
    if (rc == -ENOMEM)
        mg_json_errs_add(v.e, "", 0, 0, "out of memory");
    if (rc < 0)
        goto out;
    *out = &p->pub;
    p = NULL;
out:
    config_free(p ? &p->pub : NULL);
    json_decref(doc);
    mg_json_errs_set_file(v.e, saved_e);
    mg_json_errs_set_file(v.w, saved_w);
    mg_json_errs_free(&local_e);
    mg_json_errs_free(&local_w);
    return rc;
}

int sc_config_load(const char *path, struct sc_config **out, struct mg_json_errs *errs,
                   struct mg_json_errs *warns)
{
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = mg_read_file(path, SC_CONFIG_MAX_BYTES, &data, &len);
    if (rc < 0) {
        char saved[sizeof errs->file];
        if (errs) {
            memcpy(saved, errs->file, sizeof saved);
            mg_json_errs_set_file(errs, path);
            if (rc == -EFBIG)
                mg_json_errs_add(errs, "", 0, 0, "file is larger than the limit of %zu bytes",
                                 SC_CONFIG_MAX_BYTES);
            else
                mg_json_errs_add(errs, "", 0, 0, "cannot read: %s", strerror(-rc));
            mg_json_errs_set_file(errs, saved);
        }
        return rc;
    }
    rc = sc_config_parse(data, len, path, out, errs, warns);
    free(data);
    return rc;
}
