/* The route table: the sidecar's whole configuration, and the contract the
 * operator renders (../shared/DESIGN.md, docs/sidecar.md). One document,
 * YAML or JSON, loaded, validated and turned into an immutable struct
 * sc_config. Validation collects every error (file, key path, what is
 * wrong), never only the first, so `--check` names them all.
 *
 * A loaded config is immutable and shared by every worker thread: it is
 * reference counted (atomically; taken only when a worker adopts a new
 * table, never per request). Workers build their own runtime state
 * (upstream endpoints, counters) from it.
 *
 * Document shape (keys are camelCase; unknown keys are errors with a
 * "did you mean"):
 *
 *   listen: 0.0.0.0:8080          required
 *   admin: 127.0.0.1:9901         optional; no admin port without it
 *   workers: 1                    1..64, default 1
 *   limits:  { requestBody: 1Mi, requestHead: 64Ki }
 *   client:  { headerTimeout: 10s, keepAliveTimeout: 60s, maxConnections: 10000 }
 *   upstream: { maxIdlePerEndpoint: 256, idleTimeout: 30s }
 *   accessLog: true               one JSON line per request on stderr
 *   routes:                       at least one
 *     - model: llama-3-8b-instruct   or "*" (any model; at most one, tried last)
 *       versions:                    at least one; names unique in the route
 *         - { name: v1, weight: 95, endpoints: [127.0.0.1:8001] }
 *       match:    [ {header: x-modelgate-version, value: v2, version: v2} ]
 *       sticky:   { header: x-session-id }
 *       timeouts: { connect: 1s, firstToken: 30s, idle: 60s, total: 10m }
 *       retries, circuitBreaker, rateLimit, fallback, mtls:
 *                 accepted as objects/arrays (issue 5 and later give them
 *                 meaning); until then --check warns that they are not
 *                 enforced.
 *
 * Weights are integers 0..10000; a version's share is weight / sum of the
 * route's weights; the sum must be > 0. A version with weight 0 gets only
 * traffic pinned to it by match rules. Endpoints are "host:port" or
 * "[v6]:port", port 1..65535. */
#ifndef SC_CONFIG_H
#define SC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lib/json.h"

#define SC_MAX_VERSIONS 16
#define SC_MAX_ENDPOINTS 256     /* per version */
#define SC_MAX_ROUTES 1024
#define SC_MAX_MATCH 64          /* match rules per route */
#define SC_MAX_WORKERS 64

struct sc_version {
    char *name;
    unsigned weight;
    char **endpoints;            /* "host:port" */
    unsigned nendpoints;
};

struct sc_match {
    char *header;                /* lower-cased */
    char *value;                 /* compared exactly */
    unsigned version;            /* index into the route's versions */
};

struct sc_timeouts {             /* ms; 0 = none */
    uint32_t connect;            /* default 1000 */
    uint32_t first_token;        /* request sent to first response body byte, default 30000 */
    uint32_t idle;               /* between response bytes, default 60000 */
    uint32_t total;              /* whole exchange, default 600000 */
};

struct sc_route {
    char *model;                 /* "*" for the wildcard route */
    unsigned wildcard : 1;
    struct sc_version *versions;
    unsigned nversions;
    unsigned total_weight;
    struct sc_match *match;
    unsigned nmatch;
    char *sticky_header;         /* lower-cased; NULL: no stickiness */
    struct sc_timeouts timeouts;
    json_t *raw;                 /* this route's document (borrowed from doc):
                                  * where later issues read retries, ... */
};

struct sc_config {
    char *listen;
    char *admin;                 /* NULL: none */
    unsigned workers;
    uint64_t max_body;           /* default 1 MiB */
    uint64_t max_head;           /* default 64 KiB */
    uint32_t header_timeout_ms;  /* client head, default 10000 */
    uint32_t keepalive_timeout_ms; /* client idle between requests, default 60000 */
    unsigned max_conns;          /* default 10000 */
    unsigned upstream_max_idle;  /* idle pooled connections per endpoint, default 256 */
    uint32_t upstream_idle_ms;   /* default 30000 */
    int access_log;              /* default 1 */
    struct sc_route *routes;     /* in document order, the wildcard last */
    unsigned nroutes;
    json_t *doc;                 /* the validated document, defaults filled in:
                                  * what GET /config shows */
    char *source;                /* file name, or "POST /config" */
    uint64_t generation;         /* set by the owner: 1, 2, ... per accepted table */
    int refs_;                   /* atomic */
};

/* Parses and validates a document. name labels errors ("routes.yaml").
 * Returns 0 with *out (one reference, the caller's), or -EINVAL with every
 * problem collected in errs (also syntax errors, with line:col), -EFBIG,
 * -ENOMEM. Warnings (keys accepted but not enforced yet) go to warns when
 * it is not NULL, and do not fail the load. */
int sc_config_parse(const char *data, size_t len, const char *name, struct sc_config **out,
                    struct mg_json_errs *errs, struct mg_json_errs *warns);
/* The same from a file (at most 4 MiB). */
int sc_config_load(const char *path, struct sc_config **out, struct mg_json_errs *errs,
                   struct mg_json_errs *warns);

void sc_config_ref(struct sc_config *cfg);
void sc_config_unref(struct sc_config *cfg);   /* frees on the last */

/* The route serving model (len bytes, not NUL-terminated): an exact match,
 * else the wildcard route, else NULL. */
const struct sc_route *sc_config_route(const struct sc_config *cfg, const char *model,
                                       size_t len);

#endif
