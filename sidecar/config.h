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
 *       retries:        { attempts: 2, on: [connect-failure, reset, timeout, 429, 502,
 *                         503, 504], perTryTimeout: 2s, backoff: {base: 25ms, max: 250ms},
 *                         budgetPercent: 20, minRetries: 3 }
 *       circuitBreaker: { consecutiveFailures: 5, failureRate: 0.5, window: 10s,
 *                         minRequests: 20, openDuration: 30s, maxOpenDuration: 5m,
 *                         halfOpenRequests: 3, maxEjectionPercent: 50, maxConcurrent: 256,
 *                         maxPending: 512, pendingTimeout: 1s, overloadStatus: 503 }
 *       rateLimit:      { requestsPerSecond, burst, tokensPerMinute,
 *                         perKey: {requestsPerSecond, burst, tokensPerMinute},
 *                         defaultMaxTokens: 256, keyTable: 4096 }
 *       fallback:       [ {version: v1}, {model: other}, {version: v3, longContext: true},
 *                         {static: {status: 503, message: busy}} ]
 *       admission:      { interval: 100ms, staleAfter: 1s, maxWaiting: 8,
 *                         maxKvCacheUsage: 0.9, priorityHeader: x-priority,
 *                         sheddable: [low, batch] }
 *       mtls:           accepted, not enforced yet (--check warns).
 *   Each policy object is optional; a route without it has no such policy
 *   (and pays nothing for it on the request path). Defaults are written
 *   into the document (GET /config). Bounds: docs/sidecar.md.
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

/* Retry conditions besides statuses. */
#define SC_RETRY_CONNECT 1u      /* connect refused, unreachable or timed out */
#define SC_RETRY_RESET 2u        /* closed before any response byte */
#define SC_RETRY_TIMEOUT 4u      /* perTryTimeout / firstToken before any byte */
#define SC_STATUS_MAX 600

struct sc_retries {
    unsigned attempts;           /* retries after the first try (Istio's meaning) */
    unsigned on;                 /* SC_RETRY_* */
    uint8_t status[SC_STATUS_MAX / 8];   /* bit set: retry on this status */
    uint32_t per_try_ms;         /* first byte of one try; 0: none */
    uint32_t backoff_base_ms, backoff_max_ms;
    unsigned budget_percent, min_retries;
};

struct sc_breaker_cfg {
    unsigned consecutive_failures;   /* 0: off */
    double failure_rate;             /* 0: off */
    uint32_t window_ms;
    unsigned min_requests;
    uint32_t open_ms, max_open_ms;
    unsigned half_open_requests;
    unsigned max_ejection_percent;
    unsigned max_concurrent;         /* per version, across workers; 0: none */
    unsigned max_pending;            /* waiting per worker and version */
    uint32_t pending_timeout_ms;
    int overload_status;             /* 503 or 429 */
};

struct sc_rate_cfg {             /* 0: that limit is off */
    double rps, burst, tpm;
    double key_rps, key_burst, key_tpm;
    unsigned default_max_tokens;
    unsigned key_table;          /* slots, a power of two */
};

enum sc_fallback_kind { SC_FB_VERSION, SC_FB_MODEL, SC_FB_STATIC };

struct sc_fallback {
    enum sc_fallback_kind kind;
    unsigned long_context : 1;   /* the only hops a context-length error takes */
    unsigned version;            /* SC_FB_VERSION: index into the route's versions */
    char *model;                 /* SC_FB_MODEL: another route's model */
    int status;                  /* SC_FB_STATIC */
    char *message;               /* static error message (status >= 300) */
    char *content;               /* static reply text (status < 300) */
    unsigned index;              /* its place in the document's list (messages) */
};

struct sc_admission {
    uint32_t interval_ms, stale_ms;
    unsigned max_waiting;        /* vllm:num_requests_waiting above this: saturated */
    double max_kv;               /* vllm:kv_cache_usage_perc above this: saturated */
    char *priority_header;       /* lower-cased */
    char **sheddable;            /* priority values that may be shed */
    unsigned nsheddable;
};

#define SC_MAX_FALLBACK 8

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
    struct sc_retries *retries;  /* NULL: none (one try) */
    struct sc_breaker_cfg *breaker;   /* NULL: no breakers, no concurrency limit */
    struct sc_rate_cfg *rate;    /* NULL: no rate limits */
    struct sc_fallback *fallback;
    unsigned nfallback;
    struct sc_admission *admission;   /* NULL: no load-aware admission */
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
    /* The process-wide policy state (breakers, buckets, budgets) this
     * table uses, attached by the sidecar before the table is handed to
     * the workers and released with the table (policy_free). */
    void *policy;
    void (*policy_free)(void *policy);
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
