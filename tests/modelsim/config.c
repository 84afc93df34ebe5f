/* modelsim's knobs. One table describes every knob once (its flag, its
 * /admin/config key, its type and bounds), so the command line, the live
 * JSON updates and GET /admin/config can never disagree on names or
 * validation.
 *
 * Live changes: POST /admin/config validates a copy of the knobs and, only
 * when every key is valid, swaps it in under the lock and bumps a generation
 * counter. Workers compare that counter (one atomic load) at the start of
 * each request and copy the knobs when it moved, so requests use one
 * consistent set and requests already running keep the values they began
 * with. */
#include "tests/modelsim/modelsim.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ms_global ms_g = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

enum knob_type {
    K_U32,
    K_U64,
    K_RATE,       /* double in [0, 1] */
    K_VERSION,
    K_MODELS,
    K_FAIL_MODE,
    K_LOG_LEVEL,
    K_ERROR_STATUS,
};

struct knob {
    const char *flag;     /* --flag */
    const char *key;      /* /admin/config key */
    enum knob_type type;
    uint64_t min, max;    /* K_U32 / K_U64 bounds */
    size_t off;
    const char *arg;      /* for --help */
    const char *help;
};

#define OFF(f) offsetof(struct ms_knobs, f)

static const struct knob knobs[] = {
    {"model", "models", K_MODELS, 0, 0, OFF(models), "NAME",
     "a model name served (repeatable; default \"modelsim\")"},
    {"version", "version", K_VERSION, 0, 0, OFF(version), "V",
     "version reported in x-modelsim-version and system_fingerprint (default v1)"},
    {"ttft-ms", "ttft_ms", K_U32, 0, 600000, OFF(ttft_ms), "N",
     "time to first token in ms (default 0)"},
    {"itl-ms", "itl_ms", K_U32, 0, 60000, OFF(itl_ms), "N",
     "inter-token latency in ms (default 0)"},
    {"jitter-pct", "jitter_pct", K_U32, 0, 100, OFF(jitter_pct), "N",
     "deterministic jitter on delays, percent (default 0)"},
    {"tokens", "tokens", K_U32, 1, 1000000, OFF(tokens), "N",
     "tokens in a reply; max_tokens caps it (default 16)"},
    {"max-running", "max_running", K_U32, 0, 1000000, OFF(max_running), "N",
     "requests generating at once, more wait in a FIFO (default 0: unlimited)"},
    {"startup-ms", "startup_ms", K_U32, 0, 3600000, OFF(startup_ms), "N",
     "/health/ready answers 503 until this much time has passed (default 0)"},
    {"error-rate", "error_rate", K_RATE, 0, 0, OFF(error_rate), "R",
     "fraction of requests answered with --error-status (default 0)"},
    {"error-status", "error_status", K_ERROR_STATUS, 0, 0, OFF(error_status), "CODE",
     "400, 429, 500 or 503 (default 500)"},
    {"fail-mode", "fail_mode", K_FAIL_MODE, 0, 0, OFF(fail_mode), "MODE",
     "none, cut, stall or malformed (default none)"},
    {"fail-after", "fail_after", K_U32, 0, 1000000, OFF(fail_after), "N",
     "tokens sent before the failure (default 0)"},
    {"fail-rate", "fail_rate", K_RATE, 0, 0, OFF(fail_rate), "R",
     "fraction of requests that fail with --fail-mode (default 1)"},
    {"seed", "seed", K_U64, 0, UINT64_MAX, OFF(seed), "S",
     "seed of all generated text and injected failures (default 0)"},
    {"log-level", "log_level", K_LOG_LEVEL, 0, 0, OFF(log_level), "L",
     "error, warn, info or debug (default info)"},
    {"max-model-len", "max_model_len", K_U32, 16, 10000000, OFF(max_model_len), "N",
     "context length: longer requests get vLLM's 400 (default 4096)"},
    {"kv-cache-tokens", "kv_cache_tokens", K_U32, 1, 1000000000, OFF(kv_cache_tokens), "N",
     "KV cache size in tokens, for vllm:kv_cache_usage_perc (default 65536)"},
};
#define NKNOBS (sizeof knobs / sizeof knobs[0])

void ms_knobs_default(struct ms_knobs *k)
{
    memset(k, 0, sizeof *k);
    strcpy(k->models[0], "modelsim");
    k->nmodels = 1;
    strcpy(k->version, "v1");
    k->tokens = 16;
    k->error_status = 500;
    k->fail_rate = 1.0;
    k->log_level = MG_LOG_INFO;
    k->max_model_len = 4096;
    k->kv_cache_tokens = 65536;
}

static const char *const fail_mode_names[] = {"none", "cut", "stall", "malformed"};

/* Model names and versions go into JSON and headers unescaped, so they are
 * limited to characters that need no escaping anywhere. */
static int valid_name(const char *s, size_t max, int model)
{
    size_t n = strlen(s);
    if (n == 0 || n >= max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-' || c == ':' || c == '+')
            continue;
        if (model && (c == '/' || c == '@'))
            continue;
        return 0;
    }
    return 1;
}

/* Sets one knob from a string (command line) or a JSON value (admin; then
 * s is NULL). Returns 0 or -EINVAL with err filled. adding_model: a
 * repeated --model appends instead of replacing. */
static int knob_set(const struct knob *kn, struct ms_knobs *k, const char *s, json_t *v,
                    int adding_model, char *err, size_t errlen)
{
    char *p = (char *)k + kn->off;
    switch (kn->type) {
    case K_U32:
    case K_U64: {
        uint64_t x;
        if (s) {
            char *end;
            errno = 0;
            if (!*s || *s == '-' || *s == '+')
                goto bad_int;
            unsigned long long ull = strtoull(s, &end, 10);
            if (errno || *end)
                goto bad_int;
            x = ull;
        } else {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                goto bad_int;
            x = (uint64_t)json_integer_value(v);
        }
        if (x < kn->min || x > kn->max) {
            snprintf(err, errlen, "%s: %" PRIu64 " is out of range [%" PRIu64 ", %" PRIu64 "]",
                     kn->key, x, kn->min, kn->max);
            return -EINVAL;
        }
        if (kn->type == K_U32)
            *(uint32_t *)p = (uint32_t)x;
        else
            *(uint64_t *)p = x;
        return 0;
    bad_int:
        snprintf(err, errlen, "%s: expected a non-negative integer", kn->key);
        return -EINVAL;
    }
    case K_RATE: {
        double d;
        if (s) {
            char *end;
            errno = 0;
            d = strtod(s, &end);
            if (errno || *end || end == s)
                goto bad_rate;
        } else {
            if (!json_is_number(v))
                goto bad_rate;
            d = json_number_value(v);
        }
        if (!(d >= 0.0 && d <= 1.0))
            goto bad_rate;
        *(double *)p = d;
        return 0;
    bad_rate:
        snprintf(err, errlen, "%s: expected a number between 0 and 1", kn->key);
        return -EINVAL;
    }
    case K_ERROR_STATUS: {
        long long x = -1;
        if (s) {
            char *end;
            errno = 0;
            x = strtoll(s, &end, 10);
            if (errno || *end || end == s)
                x = -1;
        } else if (json_is_integer(v)) {
            x = json_integer_value(v);
        }
        if (x != 400 && x != 429 && x != 500 && x != 503) {
            snprintf(err, errlen, "%s: expected 400, 429, 500 or 503", kn->key);
            return -EINVAL;
        }
        k->error_status = (uint32_t)x;
        return 0;
    }
    case K_VERSION: {
        const char *str = s ? s : json_string_value(v);
        if (!str || !valid_name(str, MS_VERSION_MAX, 0)) {
            snprintf(err, errlen, "%s: expected 1 to %d characters of [A-Za-z0-9._:+-]",
                     kn->key, MS_VERSION_MAX - 1);
            return -EINVAL;
        }
        strcpy(k->version, str);
        return 0;
    }
    case K_FAIL_MODE:
    case K_LOG_LEVEL: {
        const char *str = s ? s : json_string_value(v);
        if (str && kn->type == K_FAIL_MODE) {
            for (unsigned i = 0; i < 4; i++)
                if (strcmp(str, fail_mode_names[i]) == 0) {
                    k->fail_mode = (enum ms_fail_mode)i;
                    return 0;
                }
        }
        if (str && kn->type == K_LOG_LEVEL && mg_log_level_parse(str, &k->log_level) == 0)
            return 0;
        snprintf(err, errlen, "%s: expected one of %s", kn->key,
                 kn->type == K_FAIL_MODE ? "none, cut, stall, malformed"
                                         : "error, warn, info, debug");
        return -EINVAL;
    }
    case K_MODELS: {
        if (s) {
            if (!adding_model)
                k->nmodels = 0;
            if (k->nmodels >= MS_MAX_MODELS) {
                snprintf(err, errlen, "models: at most %d models", MS_MAX_MODELS);
                return -EINVAL;
            }
            if (!valid_name(s, MS_NAME_MAX, 1))
                goto bad_model;
            strcpy(k->models[k->nmodels++], s);
            return 0;
        }
        size_t n = json_is_array(v) ? json_array_size(v) : 0;
        if (n == 0 || n > MS_MAX_MODELS) {
            snprintf(err, errlen, "models: expected an array of 1 to %d model names",
                     MS_MAX_MODELS);
            return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
            const char *str = json_string_value(json_array_get(v, i));
            if (!str || !valid_name(str, MS_NAME_MAX, 1))
                goto bad_model;
            strcpy(k->models[i], str);
        }
        k->nmodels = (unsigned)n;
        return 0;
    bad_model:
        snprintf(err, errlen, "models: a name is 1 to %d characters of [A-Za-z0-9._:+/@-]",
                 MS_NAME_MAX - 1);
        return -EINVAL;
    }
    }
    snprintf(err, errlen, "%s: unsupported", kn->key);
    return -EINVAL;
}

static const struct knob *knob_by_key(const char *key)
{
    for (size_t i = 0; i < NKNOBS; i++)
        if (strcmp(knobs[i].key, key) == 0 || strcmp(knobs[i].flag, key) == 0)
            return &knobs[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: modelsim --listen HOST:PORT [options]\n"
            "An OpenAI-compatible model-server simulator that behaves like vLLM.\n\n"
            "  --listen HOST:PORT   where to listen (port 0 picks a free port)\n"
            "  --port-file F        write the bound port to F once listening\n"
            "  --workers N          worker threads, each with its own loop (default 1)\n");
    for (size_t i = 0; i < NKNOBS; i++) {
        char left[48];
        snprintf(left, sizeof left, "--%s %s", knobs[i].flag, knobs[i].arg);
        fprintf(f, "  %-20s %s\n", left, knobs[i].help);
    }
    fprintf(f, "\nEvery option but --listen, --port-file and --workers can be changed while\n"
               "running with POST /admin/config (JSON keys as the options, '-' as '_').\n"
               "See docs/modelsim.md.\n");
}

int ms_config_parse_args(int argc, char **argv, struct ms_knobs *k, unsigned *workers,
                         const char **listen, const char **port_file)
{
    enum { OPT_LISTEN = 1000, OPT_PORT_FILE, OPT_WORKERS, OPT_HELP };
    struct option opts[NKNOBS + 5];
    size_t n = 0;
    for (size_t i = 0; i < NKNOBS; i++)
        opts[n++] = (struct option){knobs[i].flag, required_argument, NULL, (int)i};
    opts[n++] = (struct option){"listen", required_argument, NULL, OPT_LISTEN};
    opts[n++] = (struct option){"port-file", required_argument, NULL, OPT_PORT_FILE};
    opts[n++] = (struct option){"workers", required_argument, NULL, OPT_WORKERS};
    opts[n++] = (struct option){"help", no_argument, NULL, OPT_HELP};
    opts[n] = (struct option){0, 0, 0, 0};

    int models_given = 0;
    *workers = 1;
    *listen = NULL;
    *port_file = NULL;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "h", opts, NULL);
        if (c == -1)
            break;
        char err[256];
        switch (c) {
        case OPT_LISTEN:
            *listen = optarg;
            break;
        case OPT_PORT_FILE:
            *port_file = optarg;
            break;
        case OPT_WORKERS: {
            char *end;
            errno = 0;
            unsigned long w = strtoul(optarg, &end, 10);
            if (errno || *end || w < 1 || w > MS_MAX_WORKERS || optarg[0] == '-') {
                fprintf(stderr, "modelsim: --workers: expected 1 to %d\n", MS_MAX_WORKERS);
                return -EINVAL;
            }
            *workers = (unsigned)w;
            break;
        }
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 1;
        case '?':
        case ':':
            if (optopt)
                fprintf(stderr, "modelsim: option needs a valid argument: -%c\n", optopt);
            else
                fprintf(stderr, "modelsim: unknown option or missing argument: %s\n",
                        argv[optind - 1]);
            usage(stderr);
            return -EINVAL;
        default: {
            const struct knob *kn = &knobs[c];
            if (knob_set(kn, k, optarg, NULL, kn->type == K_MODELS && models_given, err,
                         sizeof err) < 0) {
                fprintf(stderr, "modelsim: --%s: %s\n", kn->flag, err);
                return -EINVAL;
            }
            if (kn->type == K_MODELS)
                models_given = 1;
        }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "modelsim: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (!*listen) {
        fprintf(stderr, "modelsim: --listen HOST:PORT is required\n");
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

static void publish(const struct ms_knobs *k)
{
    /* Called with the lock held. */
    uint32_t old_max = ms_g.knobs.max_running;
    ms_g.knobs = *k;
    atomic_store(&ms_g.max_running, k->max_running);
    atomic_store(&ms_g.kv_capacity, k->kv_cache_tokens);
    mg_log_set_level(k->log_level);
    atomic_fetch_add(&ms_g.knobs_gen, 1);
    if (k->max_running == 0 || k->max_running > old_max)
        ms_sched_kick_all();
}

int ms_config_apply_json(const char *body, size_t len, char *err, size_t errlen)
{
    static const char *const fixed[] = {"listen", "port_file", "port-file", "workers"};
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -EINVAL;
    if (!root) {
        snprintf(err, errlen, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                 jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "expected a JSON object of knobs");
        goto out;
    }
    pthread_mutex_lock(&ms_g.lock);
    struct ms_knobs k = ms_g.knobs;
    const char *key;
    json_t *v;
    int bad = 0;
    json_object_foreach(root, key, v) {
        const struct knob *kn = knob_by_key(key);
        if (!kn) {
            int is_fixed = 0;
            for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
                is_fixed |= strcmp(key, fixed[i]) == 0;
            if (is_fixed)
                snprintf(err, errlen, "%s cannot be changed while running", key);
            else
                snprintf(err, errlen, "unknown knob \"%.64s\"", key);
            bad = 1;
            break;
        }
        if (knob_set(kn, &k, NULL, v, 0, err, errlen) < 0) {
            bad = 1;
            break;
        }
    }
    if (!bad) {
        publish(&k);
        rc = 0;
    }
    pthread_mutex_unlock(&ms_g.lock);
    if (rc == 0)
        mg_log(MG_LOG_INFO, "config changed", "generation",
               MG_U(atomic_load(&ms_g.knobs_gen)));
out:
    json_decref(root);
    return rc;
}

int ms_config_dump(struct mg_buf *out)
{
    json_t *o = json_object();
    if (!o)
        return -ENOMEM;
    pthread_mutex_lock(&ms_g.lock);
    struct ms_knobs k = ms_g.knobs;
    pthread_mutex_unlock(&ms_g.lock);
    for (size_t i = 0; i < NKNOBS; i++) {
        const struct knob *kn = &knobs[i];
        const char *p = (const char *)&k + kn->off;
        json_t *v = NULL;
        switch (kn->type) {
        case K_U32:
        case K_ERROR_STATUS:
            v = json_integer(*(const uint32_t *)p);
            break;
        case K_U64:
            /* JSON integers are signed 64-bit in jansson; seeds past that
             * show as their two's complement, as they were set. */
            v = json_integer((json_int_t)*(const uint64_t *)p);
            break;
        case K_RATE:
            v = json_real(*(const double *)p);
            break;
        case K_VERSION:
            v = json_string(k.version);
            break;
        case K_FAIL_MODE:
            v = json_string(fail_mode_names[k.fail_mode]);
            break;
        case K_LOG_LEVEL:
            v = json_string(mg_log_level_name(k.log_level));
            break;
        case K_MODELS:
            v = json_array();
            for (unsigned m = 0; v && m < k.nmodels; m++)
                json_array_append_new(v, json_string(k.models[m]));
            break;
        }
        json_object_set_new(o, kn->key, v ? v : json_null());
    }
    json_object_set_new(o, "listen", json_string(ms_g.listen ? ms_g.listen : ""));
    json_object_set_new(o, "workers", json_integer(ms_g.nworkers));
    json_object_set_new(o, "ready", json_boolean(ms_uptime_ms() >= k.startup_ms));
    json_object_set_new(o, "generation", json_integer((json_int_t)atomic_load(&ms_g.knobs_gen)));
    size_t need = json_dumpb(o, NULL, 0, JSON_COMPACT);
    int rc = mg_buf_reserve(out, need + 1);
    if (rc == 0) {
        json_dumpb(o, mg_buf_tail(out), need, JSON_COMPACT);
        mg_buf_commit(out, need);
        rc = mg_buf_append(out, "\n", 1);
    }
    json_decref(o);
    return rc;
}

void ms_worker_sync_knobs(struct ms_worker *w)
{
    uint64_t gen = atomic_load_explicit(&ms_g.knobs_gen, memory_order_acquire);
    if (gen == w->knobs_gen)
        return;
    pthread_mutex_lock(&ms_g.lock);
    w->knobs = ms_g.knobs;
    w->knobs_gen = atomic_load(&ms_g.knobs_gen);
    pthread_mutex_unlock(&ms_g.lock);
}

struct ms_model_stat *ms_model_stat_get(const char *name)
{
    unsigned n = atomic_load_explicit(&ms_g.nstats, memory_order_acquire);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(ms_g.stats[i].name, name) == 0)
            return &ms_g.stats[i];
    struct ms_model_stat *m = NULL;
    pthread_mutex_lock(&ms_g.lock);
    n = atomic_load(&ms_g.nstats);
    for (unsigned i = 0; i < n; i++)
        if (strcmp(ms_g.stats[i].name, name) == 0) {
            m = &ms_g.stats[i];
            goto out;
        }
    if (n < MS_MAX_MODEL_STATS) {
        m = &ms_g.stats[n];
        snprintf(m->name, sizeof m->name, "%s", name);
        ms_metrics_model(m);
        /* Readers only look at entries below nstats: publish after the name. */
        atomic_store_explicit(&ms_g.nstats, n + 1, memory_order_release);
    }
out:
    pthread_mutex_unlock(&ms_g.lock);
    return m;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t ms_uptime_ms(void)
{
    return mono_ms() - ms_g.start_ms;
}

int ms_ready(const struct ms_worker *w)
{
    return w->knobs.startup_ms == 0 || ms_uptime_ms() >= w->knobs.startup_ms;
}
