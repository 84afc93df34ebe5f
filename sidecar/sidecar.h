/* The sidecar process: its workers, its metrics and the table in force,
 * shared by main.c (threads, signals, reloads), proxy.c (the data plane,
 * one worker per thread) and admin.c (the admin port, on the main thread).
 *
 * Threads and ownership:
 * - sc_g.cfg, sc_g.generation and the admin server belong to the main
 *   thread: only it parses, validates and installs tables.
 * - each worker owns its loop, server, client, request pool and runtime
 *   table (struct sc_rt, proxy.c); a new table reaches it as a message
 *   (mg_loop_post), and the worker builds its own runtime table from it
 *   and swaps its pointer. Nothing on the per-request path takes a lock.
 * - the fields the main thread reads from workers (generation, ready,
 *   drained) are atomics. */
#ifndef SC_SIDECAR_H
#define SC_SIDECAR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/httpc.h"
#include "lib/httpd.h"
#include "lib/loop.h"
#include "lib/metrics.h"
#include "sidecar/config.h"
#include "sidecar/policy.h"
#include "sidecar/route.h"

struct sc_rt;
struct sc_req;

/* A small per-worker cache of requests_total children by status code, so
 * the registry (and its mutex) is asked once per (labels, code). */
#define SC_CODES_CACHE 12
struct sc_codes {
    const char *model, *version;
    unsigned n;
    int code[SC_CODES_CACHE];
    struct mg_counter *c[SC_CODES_CACHE];
};

struct sc_worker {
    unsigned idx;
    struct mg_loop *loop;
    struct mg_httpd *srv;
    struct mg_httpc *cl;
    pthread_t thread;
    int thread_started;
    struct sc_rt *rt;              /* the table new requests take */
    struct sc_rng rng;
    struct sc_req *free_reqs;      /* recycled request structs */
    unsigned nfree;
    unsigned inflight;             /* requests not ended yet */
    int draining;                  /* stopping: new requests get 503 */
    struct sc_codes pre;           /* requests refused before routing */
    atomic_uint_fast64_t generation;  /* of the table w->rt was built from */
    atomic_int ready;              /* listening, with a table */
    atomic_int drained;            /* draining and nothing in flight */
    struct mg_buf scratch;         /* error bodies */
    uint64_t warn_sec;             /* rate limit of upstream failure lines */
    unsigned warn_count, warn_dropped;
    struct mg_h1_header hdrs[MG_H1_MAX_HEADERS + 8];   /* response heads */
    /* Requests waiting for a concurrency slot (circuitBreaker.maxPending),
     * oldest first, every version of every table of this worker. */
    struct sc_req *pend_head, *pend_tail;
    unsigned npend;
    struct mg_timer pend_timer;    /* re-checks the queue while it is not empty */
};

struct sc_metrics {
    struct mg_metrics *reg;
    struct mg_metric_family *requests, *duration, *ttft, *itl, *tokens, *uperr;
    struct mg_metric_family *client_conns, *up_conns, *up_created, *up_reused;
    struct mg_metric_family *reloads, *generation;
    /* Issue 5: resilience. */
    struct mg_metric_family *retries, *budget_refused, *fallbacks, *breaker_state,
        *breaker_trans, *rate_limited, *shed, *stream_errors;
    struct mg_counter *reloads_ok, *reloads_refused;
    struct mg_gauge *gen;
};

struct sc_state {
    struct sc_config *cfg;         /* the table in force (main thread) */
    uint64_t generation;
    struct sc_worker *workers;
    unsigned nworkers;
    struct sc_metrics m;
    const char *token_file;        /* --admin-token-file, NULL: POST /config refused */
    atomic_int draining;
    struct mg_loop *main_loop;
};

extern struct sc_state sc_g;

/* Upstream failure kinds, the "kind" label of modelgate_upstream_errors_total. */
enum sc_uperr {
    SC_UPERR_CONNECT,
    SC_UPERR_CONNECT_TIMEOUT,
    SC_UPERR_RESET,            /* closed before any response byte */
    SC_UPERR_RESET_MID,        /* closed in the middle of the response */
    SC_UPERR_PROTOCOL,
    SC_UPERR_IDLE_TIMEOUT,
    SC_UPERR_FIRST_TOKEN_TIMEOUT,
    SC_UPERR_TOTAL_TIMEOUT,
    SC_UPERR_LOCAL,
    SC_UPERR_PER_TRY_TIMEOUT,  /* retries.perTryTimeout before the first body byte */
    SC_UPERR_MALFORMED,        /* an SSE stream whose event is not JSON */
    SC_UPERR_N
};
extern const char *const sc_uperr_names[SC_UPERR_N];

/* proxy.c ------------------------------------------------------------------ */

/* Registers every metric family (once, before the workers start). */
int sc_metrics_init(unsigned nworkers);
/* Sets up worker w on the calling thread (before its thread runs): loop,
 * server on listen, client, and the runtime table of cfg. 0 or -errno with
 * *err for people. */
int sc_worker_init(struct sc_worker *w, struct sc_config *cfg, const char *listen,
                   const char **err);
/* The worker thread: runs w's loop until it is stopped. */
void *sc_worker_main(void *arg);
/* From the main thread: hands cfg (a new reference is taken) to worker w,
 * which adopts it on its own thread. 0 or -ENOMEM. */
int sc_worker_post_config(struct sc_worker *w, struct sc_config *cfg);
/* From the main thread: the worker stops taking requests (503, close). */
int sc_worker_post_drain(struct sc_worker *w);
/* After the worker's loop has stopped: frees it all (requests still in
 * flight end with SHUTDOWN). */
void sc_worker_free(struct sc_worker *w);

/* admission.c -------------------------------------------------------------- */

/* (Re)starts the /metrics poller of the admission endpoints of cfg (the
 * table in force), on the main loop. Main thread. */
int sc_admission_install(struct mg_loop *loop, struct sc_config *cfg);
void sc_admission_stop(void);

/* admin.c ------------------------------------------------------------------ */

int sc_admin_start(struct mg_loop *loop, const char *listen, const char **err);
int sc_admin_port(void);
void sc_admin_stop(void);

/* main.c ------------------------------------------------------------------- */

/* Installs cfg (its reference is taken over) as the table in force: a new
 * generation, posted to every worker. Main thread. Returns the generation. */
uint64_t sc_install(struct sc_config *cfg);
/* Counts a refused table (reload or POST). */
void sc_count_refused(void);

#endif
