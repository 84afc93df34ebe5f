/* modelsim: an OpenAI-compatible model-server simulator that behaves like
 * vLLM under load and failure, for modelgate's tests, demos and benchmarks.
 *
 * Shape of the program:
 *   main.c     command line, worker threads (one loop + server each, same
 *              port through SO_REUSEPORT), signals, shutdown
 *   config.c   the knobs: one table drives the command line, POST/GET
 *              /admin/config and validation; live changes are published to
 *              the workers through a generation counter
 *   tokens.c   deterministic text: PRNG, prompt hashing, the word list,
 *              prompt-token estimates, jitter
 *   sched.c    admission: --max-running across all workers, FIFO waiting
 *   openai.c   /v1/chat/completions, /v1/completions (whole and SSE),
 *              the request state machine, failure injection
 *   server.c   routing, /v1/models, /health, /admin/config, OpenAI errors
 *   metrics.c  vLLM's Prometheus metrics on lib/metrics (per-thread shards)
 * Logging is lib/log: one JSON object per line, per-request lines at debug.
 */
#ifndef MODELSIM_H
#define MODELSIM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/loop.h"
#include "lib/metrics.h"

#define MS_MAX_MODELS 16
#define MS_NAME_MAX 128      /* model name, NUL included */
#define MS_VERSION_MAX 64    /* --version, NUL included */
#define MS_MAX_WORKERS 64
#define MS_BODY_MAX ((size_t)4 << 20)
/* Model names ever seen (metrics keep a series per name, even after
 * /admin/config removes the model). */
#define MS_MAX_MODEL_STATS 64

enum ms_fail_mode {
    MS_FAIL_NONE = 0,
    MS_FAIL_CUT,        /* close the connection abruptly */
    MS_FAIL_STALL,      /* stop sending, keep the connection open */
    MS_FAIL_MALFORMED,  /* send invalid JSON where a chunk/reply belongs */
};

/* Everything /admin/config can change. Plain values only, so a worker can
 * copy it whole. */
struct ms_knobs {
    char models[MS_MAX_MODELS][MS_NAME_MAX];
    unsigned nmodels;
    char version[MS_VERSION_MAX];
    uint32_t ttft_ms;
    uint32_t itl_ms;
    uint32_t jitter_pct;
    uint32_t tokens;
    uint32_t max_running;      /* 0: unlimited */
    uint32_t startup_ms;
    double error_rate;
    uint32_t error_status;
    enum ms_fail_mode fail_mode;
    uint32_t fail_after;
    double fail_rate;
    uint64_t seed;
    enum mg_log_level log_level;
    uint32_t max_model_len;
    uint32_t kv_cache_tokens;
};

/* Per model name: what the gauges read (shared by all workers), and the
 * metric children labelled with it. */
struct ms_model_stat {
    char name[MS_NAME_MAX];
    _Atomic int64_t running;
    _Atomic int64_t waiting;
    _Atomic int64_t kv_tokens;
    struct mg_histogram *ttft, *itl, *e2e;
    struct mg_counter *prompt_tokens, *gen_tokens;
    struct mg_counter *success[3];   /* stop, length, abort */
};

struct ms_req;

struct ms_worker {
    unsigned idx;
    pthread_t thread;
    struct mg_loop *loop;
    struct mg_httpd *srv;
    /* This worker's copy of the knobs and the generation it was taken at. */
    struct ms_knobs knobs;
    uint64_t knobs_gen;
    /* Requests waiting for a running slot (sched.c), FIFO. */
    struct ms_req *wait_head, *wait_tail;
    _Atomic unsigned wait_len;
    _Atomic int kick_posted;
    /* Unused request structs (no malloc per request once warm). */
    struct ms_req *free_reqs;
    unsigned nfree;
    /* Deterministic per-worker draws for error and failure injection. */
    uint64_t inject_rng;
    uint64_t id_counter;
    /* Scratch for building replies (non-streaming bodies, chunks). */
    struct mg_buf out;
    char idx_str[12];
    int start_rc;    /* worker thread start-up result, read by main */
};

/* Process-wide state. */
struct ms_global {
    pthread_mutex_t lock;          /* guards knobs and the model stats' names */
    struct ms_knobs knobs;
    _Atomic uint64_t knobs_gen;
    _Atomic uint32_t max_running;  /* a copy of knobs.max_running for sched.c */
    _Atomic uint32_t kv_capacity;  /* a copy of knobs.kv_cache_tokens */
    _Atomic int stopping;          /* shutting down: admit nobody */
    uint64_t start_ms;             /* CLOCK_MONOTONIC ms at start-up */
    _Atomic int64_t running;       /* admitted requests, all models */
    _Atomic int64_t waiting;       /* queued requests, all models */
    struct ms_model_stat stats[MS_MAX_MODEL_STATS];
    _Atomic unsigned nstats;
    struct ms_worker *workers;
    unsigned nworkers;
    const char *listen;
    const char *port_file;
};

extern struct ms_global ms_g;

/* config.c */
void ms_knobs_default(struct ms_knobs *k);
/* Parses the command line into k and the process options. 0, 1 (help was
 * printed: exit 0), or -EINVAL (a message was printed). */
int ms_config_parse_args(int argc, char **argv, struct ms_knobs *k, unsigned *workers,
                         const char **listen, const char **port_file);
/* Applies a JSON object of knob changes to a copy of the live knobs and, if
 * every key and value is valid, publishes it. On failure nothing changes
 * and err gets what was wrong. 0 or -EINVAL. */
int ms_config_apply_json(const char *body, size_t len, char *err, size_t errlen);
/* Appends the live knobs as a JSON object. */
int ms_config_dump(struct mg_buf *out);
/* Refreshes the worker's copy of the knobs when they changed. One atomic
 * load when they did not. */
void ms_worker_sync_knobs(struct ms_worker *w);
/* The model stat for name, registered on first use; NULL when the table is
 * full. Any thread. */
struct ms_model_stat *ms_model_stat_get(const char *name);
/* Milliseconds since start-up; whether the start-up delay has passed. */
uint64_t ms_uptime_ms(void);
int ms_ready(const struct ms_worker *w);

/* tokens.c */
uint64_t ms_rng_next(uint64_t *state);
/* A double in [0, 1). */
double ms_rng_unit(uint64_t *state);
uint64_t ms_hash(uint64_t h, const void *p, size_t n);
#define MS_HASH_INIT 0xcbf29ce484222325ull
/* Appends the text of token i (0-based) drawn from *state: a word, with a
 * leading space after the first, sometimes punctuation. Returns its length.
 * dst must have MS_TOKEN_MAX bytes. The text never needs JSON escaping. */
#define MS_TOKEN_MAX 24
size_t ms_token_text(uint64_t *state, uint32_t i, char *dst);
/* Prompt tokens for n bytes of prompt text (deterministic, ~4 bytes each). */
uint32_t ms_tokens_for_bytes(size_t n);
/* Delay in ms of a step of base ms with jitter pct: TTFT (never below
 * base) and inter-token (around base). */
uint32_t ms_jitter_ttft(uint64_t *state, uint32_t base, uint32_t pct);
uint32_t ms_jitter_itl(uint64_t *state, uint32_t base, uint32_t pct);
/* Writes v in decimal at dst (room for 20 digits); returns the length. */
size_t ms_u64_to_dec(char *dst, uint64_t v);

/* sched.c */
/* Admits req now (1) or queues it (0); the queued request gets
 * ms_req_admitted() called later on its worker. */
int ms_sched_submit(struct ms_worker *w, struct ms_req *req);
/* A running request ended: frees its slot and admits waiters. */
void ms_sched_release(struct ms_worker *w);
/* Takes a queued request out (it ended while waiting). */
void ms_sched_unqueue(struct ms_worker *w, struct ms_req *req);
/* Wakes every worker to admit waiters (max_running was raised). */
void ms_sched_kick_all(void);

/* openai.c */
void ms_openai_completions(struct ms_worker *w, struct mg_httpd_req *hreq, int chat);
void ms_req_admitted(struct ms_req *req);
void ms_req_pool_free(struct ms_worker *w);

/* server.c */
void ms_on_request(struct mg_httpd_req *hreq, void *data);
/* Answers with an OpenAI-style error: {"error":{"message","type","param",
 * "code"}}. param may be NULL (null); code_str NULL means the status as a
 * number. */
void ms_send_error(struct ms_worker *w, struct mg_httpd_req *hreq, int status,
                   const char *type, const char *param, const char *code_str,
                   const char *fmt, ...) __attribute__((format(printf, 7, 8)));
/* The error type vLLM names for a status ("BadRequestError", ...). */
const char *ms_error_type(int status);
/* The standard reply headers (content type, version, worker) into h, which
 * has room for 4. Returns how many. */
unsigned ms_reply_headers(struct ms_worker *w, struct mg_h1_header *h, const char *ctype,
                          const char *version);

/* metrics.c */
int ms_metrics_init(void);
void ms_metrics_free(void);
/* Creates the metric children of a newly registered model name. */
void ms_metrics_model(struct ms_model_stat *m);
/* Request-level observations (NULL model: not counted). */
void ms_metrics_request_done(const struct ms_model_stat *m, const char *finished_reason,
                             uint32_t prompt_tokens, uint32_t gen_tokens, double e2e_s);
void ms_metrics_ttft(const struct ms_model_stat *m, double s);
/* n inter-token gaps of s seconds each. */
void ms_metrics_itl(const struct ms_model_stat *m, double s, uint32_t n);
/* The exposition text. */
int ms_metrics_render(struct mg_buf *out);

#endif
