/* mg-load: a closed-loop HTTP/1.1 load generator on lib/httpc, for the
 * integration tests that must send thousands of requests fast (a bounded
 * loop of curl is far too slow for a 10,000-request weight split) and count
 * what came back: per status, per x-modelgate-version, per transport error.
 *
 *   mg-load --connect HOST:PORT [--conns N] [--requests M | --duration-ms D]
 *           [--method M] [--path P] [--body S | --body-file F]
 *           [-H 'Name: value']... [--key-header NAME --keys K [--keys-out F]
 *           [--key-prefix S]] [--version-header NAME] [--backend-header NAME]
 *           [--count-header NAME]... [--request-timeout-ms T] [--timeout-ms T]
 *
 * N keep-alive connections (default 4) each carry one request at a time;
 * the next request leaves as soon as one ends. It stops after M requests
 * (default 1000), or, with --duration-ms, once D ms have passed (then waits
 * for those in flight). --timeout-ms (default 60000) bounds the whole run:
 * requests still in flight then count as "unfinished". SIGTERM or SIGINT end
 * the run early the same way as the end of --duration-ms: no new request,
 * those in flight finish, the counts are printed (a test can keep load
 * running until its steps are done).
 *
 * --key-header NAME --keys K gives request i the header "NAME: k<i mod K>"
 * (sticky-session keys); every key's version is remembered and a key that
 * came back with two versions counts in "keys_inconsistent". --keys-out F
 * writes "KEY VERSION" per key seen. --key-prefix S puts S before the key
 * in the header's value (--key-header Authorization --key-prefix 'Bearer '
 * spreads the requests over K API keys).
 *
 * --count-header NAME (up to 4 times) counts the responses by the value of
 * their NAME header ("-": absent), e.g. x-modelgate-fallback or
 * retry-after: printed as "headers":{"NAME":{"VALUE":n,..}}.
 *
 * Prints one JSON line:
 *   {"requests":M,"done":..,"ok":..(2xx),"non2xx":..,"transport_errors":..,
 *    "unfinished":..,"status":{"200":..},"versions":{"v1":..,"-":..},
 *    "errors":{"connect failed":..},"created":..,"reused":..,"retried":..,
 *    "bytes":..,"ms":..,"rps":..,"p50_ms":..,"p99_ms":..,"max_ms":..,
 *    "ok_p50_ms":..,"ok_p99_ms":..,"err_p50_ms":..,"err_p99_ms":..,
 *    "err_max_ms":..,"keys":K,"keys_seen":..,"keys_inconsistent":..}
 * Latencies are from sending a request to its end; "ok_" are those of the
 * 2xx responses, "err_" those of the others and of transport errors (0
 * when there were none).
 * "versions" counts every response by its version header ("-": none).
 * --backend-header NAME counts in "backend_mismatch" the responses whose NAME
 * header differs from (or lacks) the version header: with modelsim backends
 * started with --version equal to the route's version names,
 * x-modelsim-version proves which backend really served.
 * Exit status 0 when the run finished (whatever the statuses), 1 when it
 * could not run or hit --timeout-ms, 2 on bad usage. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/httpc.h"
#include "lib/loop.h"

#define MAX_CONNS 4096
#define MAX_HEADERS 32
#define MAX_VERSIONS 32
#define MAX_STATUS 1000
#define MAX_KEYS 1000000
#define MAX_SAMPLES 2000000
#define MAX_BODY (16u << 20)
#define MAX_COUNTED 4          /* --count-header options */
#define MAX_VALUES 64          /* distinct values counted per header */

struct slot {
    struct mg_httpc_req req;
    struct mg_h1_header hdrs[MAX_HEADERS + 2];
    char key[32];
    long key_idx;              /* -1: no key header */
    int status;
    int version;               /* index into versions, -1: none */
    int counted[MAX_COUNTED];  /* per --count-header: value index, -1: absent */
    uint64_t t0_ns;
};

/* The values seen of one --count-header. */
struct counted_header {
    const char *name;
    char *values[MAX_VALUES];
    long count[MAX_VALUES + 1];   /* last: absent */
    int nvalues;
};

static struct mg_loop *loop;
static struct mg_httpc *client;
static struct mg_httpc_endpoint *ep;
static struct slot *slots;
static int nconns = 4;
static long nrequests = 1000, started, done_count, ok_count, non2xx, transport_errors;
static long inflight;
static uint64_t duration_ms, start_ns;
static int timed_out, stopping, stop_asked;
static const char *method, *path = "/", *version_header = "x-modelgate-version";
static const char *body;
static size_t body_len;
static struct mg_h1_header user_hdrs[MAX_HEADERS];
static unsigned nuser_hdrs;
static const char *backend_header;
static long backend_mismatch;
static const char *key_header;
static long nkeys;
static unsigned char *key_version;    /* per key: version index + 1, 0 unseen */
static long keys_seen, keys_inconsistent;
static unsigned char *key_bad;
static char *versions[MAX_VERSIONS];
static int nversions;
static long version_count[MAX_VERSIONS + 1]; /* last: no header */
static long status_count[MAX_STATUS];
static long error_count[MG_HTTPC_ERR_LOCAL + 1];
static unsigned long long body_bytes;
static uint32_t *samples_us, *ok_us, *err_us;
static long nsamples, nok_samples, nerr_samples;
static struct counted_header counted[MAX_COUNTED];
static int ncounted;
static const char *key_prefix = "";
static struct mg_timer deadline;

static void start_next(struct slot *s);

static int version_index(const char *v, size_t n)
{
    for (int i = 0; i < nversions; i++)
        if (strlen(versions[i]) == n && memcmp(versions[i], v, n) == 0)
            return i;
    if (nversions == MAX_VERSIONS)
        return MAX_VERSIONS - 1;   /* lumped: more than any test uses */
    char *c = strndup(v, n);
    if (!c)
        return -1;
    /* Only what can go into JSON unescaped. */
    for (char *p = c; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    versions[nversions] = c;
    return nversions++;
}

/* The index of value v of a counted header (added when new; the last slot
 * lumps values past MAX_VALUES). */
static int counted_index(struct counted_header *c, const char *v, size_t n)
{
    for (int i = 0; i < c->nvalues; i++)
        if (strlen(c->values[i]) == n && memcmp(c->values[i], v, n) == 0)
            return i;
    if (c->nvalues == MAX_VALUES)
        return MAX_VALUES - 1;
    char *d = strndup(v, n > 200 ? 200 : n);
    if (!d)
        return -1;
    for (char *p = d; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            *p = '?';
    c->values[c->nvalues] = d;
    return c->nvalues++;
}

static int all_started(void)
{
    if (stop_asked)
        return 1;
    if (duration_ms)
        return mg_now_ns() - start_ns >= duration_ms * 1000000ull;
    return started >= nrequests;
}

static void finish_one(struct slot *s, int ok)
{
    if (stopping)
        return;   /* mg_httpc_free() cancelling what the deadline left */
    inflight--;
    done_count++;
    if (nsamples < MAX_SAMPLES) {
        uint64_t us = (mg_now_ns() - s->t0_ns) / 1000;
        uint32_t v = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        samples_us[nsamples++] = v;
        if (ok)
            ok_us[nok_samples++] = v;
        else
            err_us[nerr_samples++] = v;
    }
    if (!timed_out && !all_started())
        start_next(s);
    else if (inflight == 0)
        mg_loop_stop(loop);
}

static void on_head(struct mg_httpc_req *req, const struct mg_h1_msg *m)
{
    struct slot *s = req->data;
    s->status = m->status;
    int i = mg_h1_find_header(m, version_header, 0);
    s->version = i < 0 ? -1 : version_index(m->headers[i].value, m->headers[i].value_len);
    if (backend_header) {
        int b = mg_h1_find_header(m, backend_header, 0);
        if (i < 0 || b < 0 || m->headers[i].value_len != m->headers[b].value_len ||
            memcmp(m->headers[i].value, m->headers[b].value, m->headers[b].value_len) != 0)
            backend_mismatch++;
    }
    for (int c = 0; c < ncounted; c++) {
        int h = mg_h1_find_header(m, counted[c].name, 0);
        s->counted[c] = h < 0 ? -1
                              : counted_index(&counted[c], m->headers[h].value,
                                              m->headers[h].value_len);
    }
}

static void on_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    (void)req;
    (void)p;
    body_bytes += n;
}

static void on_done(struct mg_httpc_req *req)
{
    struct slot *s = req->data;
    if (s->status >= 0 && s->status < MAX_STATUS)
        status_count[s->status]++;
    if (s->status >= 200 && s->status < 300)
        ok_count++;
    else
        non2xx++;
    version_count[s->version < 0 ? MAX_VERSIONS : s->version]++;
    for (int c = 0; c < ncounted; c++)
        counted[c].count[s->counted[c] < 0 ? MAX_VALUES : s->counted[c]]++;
    if (s->key_idx >= 0 && s->version >= 0) {
        unsigned char v = (unsigned char)(s->version + 1);
        if (key_version[s->key_idx] == 0) {
            key_version[s->key_idx] = v;
            keys_seen++;
        } else if (key_version[s->key_idx] != v && !key_bad[s->key_idx]) {
            key_bad[s->key_idx] = 1;
            keys_inconsistent++;
        }
    }
    finish_one(s, s->status >= 200 && s->status < 300);
}

static void on_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    struct slot *s = req->data;
    (void)err;
    transport_errors++;
    if ((int)kind >= 1 && kind <= MG_HTTPC_ERR_LOCAL)
        error_count[kind]++;
    finish_one(s, 0);
}

static void start_next(struct slot *s)
{
    unsigned nh = 0;
    for (unsigned i = 0; i < nuser_hdrs; i++)
        s->hdrs[nh++] = user_hdrs[i];
    s->key_idx = -1;
    if (key_header) {
        s->key_idx = started % nkeys;
        int n = snprintf(s->key, sizeof s->key, "%sk%ld", key_prefix, s->key_idx);
        s->hdrs[nh++] = (struct mg_h1_header){key_header, s->key, (uint32_t)strlen(key_header),
                                              (uint32_t)n};
    }
    struct mg_httpc_req *r = &s->req;
    memset(r, 0, sizeof *r);
    r->method = method;
    r->target = path;
    r->headers = s->hdrs;
    r->nheaders = nh;
    r->body = body;
    r->body_len = body_len;
    r->on_head = on_head;
    r->on_body = on_body;
    r->on_done = on_done;
    r->on_error = on_error;
    r->data = s;
    s->status = -1;
    s->version = -1;
    for (int c = 0; c < ncounted; c++)
        s->counted[c] = -1;
    s->t0_ns = mg_now_ns();
    started++;
    inflight++;
    int rc = mg_httpc_send(client, ep, r);
    if (rc < 0) {
        /* Refused at once (the kernel said so): counted as a connect
         * error, and this slot stops (retrying from here would recurse
         * without end on a dead port). */
        inflight--;
        done_count++;
        transport_errors++;
        error_count[MG_HTTPC_ERR_CONNECT]++;
        if (inflight == 0)
            mg_loop_stop(loop);
    }
}

static void deadline_cb(struct mg_loop *l, struct mg_timer *t)
{
    (void)t;
    timed_out = 1;
    mg_loop_stop(l);
}

static void on_stop_signal(struct mg_loop *l, int signo, void *data)
{
    (void)signo;
    (void)data;
    stop_asked = 1;
    if (inflight == 0)
        mg_loop_stop(l);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *v, long n, double q)
{
    if (n == 0)
        return 0;
    long i = (long)(q * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

static int read_file(const char *name, char **out, size_t *len)
{
    FILE *f = fopen(name, "rb");
    if (!f)
        return -errno;
    char *b = malloc(MAX_BODY);
    if (!b) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(b, 1, MAX_BODY, f);
    int over = !feof(f);
    fclose(f);
    if (over) {
        free(b);
        return -EFBIG;
    }
    *out = b;
    *len = n;
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: mg-load --connect HOST:PORT [--conns N] [--requests M | --duration-ms D]\n"
            "  [--method M] [--path P] [--body S | --body-file F] [-H 'Name: value']...\n"
            "  [--key-header NAME --keys K [--keys-out F] [--key-prefix S]]\n"
            "  [--version-header NAME] [--backend-header NAME] [--count-header NAME]...\n"
            "  [--request-timeout-ms T] [--timeout-ms T]\n");
}

static int add_header(const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || nuser_hdrs == MAX_HEADERS)
        return -1;
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    user_hdrs[nuser_hdrs++] = (struct mg_h1_header){arg, v, (uint32_t)(colon - arg),
                                                    (uint32_t)strlen(v)};
    return 0;
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *body_file = NULL, *keys_out = NULL;
    unsigned long timeout_ms = 60000, req_timeout_ms = 10000;
    int have_ctype = 0;
    static const struct option opts[] = {
        {"connect", required_argument, 0, 'c'},
        {"conns", required_argument, 0, 'n'},
        {"requests", required_argument, 0, 'r'},
        {"duration-ms", required_argument, 0, 'd'},
        {"method", required_argument, 0, 'm'},
        {"path", required_argument, 0, 'p'},
        {"body", required_argument, 0, 'b'},
        {"body-file", required_argument, 0, 'B'},
        {"header", required_argument, 0, 'H'},
        {"key-header", required_argument, 0, 'k'},
        {"keys", required_argument, 0, 'K'},
        {"keys-out", required_argument, 0, 'o'},
        {"key-prefix", required_argument, 0, 'P'},
        {"count-header", required_argument, 0, 'C'},
        {"version-header", required_argument, 0, 'v'},
        {"backend-header", required_argument, 0, 'E'},
        {"request-timeout-ms", required_argument, 0, 'R'},
        {"timeout-ms", required_argument, 0, 't'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "H:", opts, NULL)) != -1) {
        switch (o) {
        case 'c': connect_to = optarg; break;
        case 'n': nconns = atoi(optarg); break;
        case 'r': nrequests = atol(optarg); break;
        case 'd': duration_ms = strtoull(optarg, NULL, 10); break;
        case 'm': method = optarg; break;
        case 'p': path = optarg; break;
        case 'b': body = optarg; body_len = strlen(optarg); break;
        case 'B': body_file = optarg; break;
        case 'H':
            if (add_header(optarg) < 0) {
                fprintf(stderr, "mg-load: bad header '%s' (want 'Name: value', at most %d)\n",
                        optarg, MAX_HEADERS);
                return 2;
            }
            if (strncasecmp(optarg, "content-type:", 13) == 0)
                have_ctype = 1;
            break;
        case 'k': key_header = optarg; break;
        case 'K': nkeys = atol(optarg); break;
        case 'o': keys_out = optarg; break;
        case 'P':
            if (strlen(optarg) > 16) {
                fprintf(stderr, "mg-load: --key-prefix: at most 16 bytes\n");
                return 2;
            }
            key_prefix = optarg;
            break;
        case 'C':
            if (ncounted == MAX_COUNTED) {
                fprintf(stderr, "mg-load: at most %d --count-header\n", MAX_COUNTED);
                return 2;
            }
            counted[ncounted++].name = optarg;
            break;
        case 'v': version_header = optarg; break;
        case 'E': backend_header = optarg; break;
        case 'R': req_timeout_ms = strtoul(optarg, NULL, 10); break;
        case 't': timeout_ms = strtoul(optarg, NULL, 10); break;
        default: usage(); return 2;
        }
    }
    if (!connect_to || nconns < 1 || nconns > MAX_CONNS || nrequests < 1 ||
        (key_header && (nkeys < 1 || nkeys > MAX_KEYS)) || (!key_header && (nkeys || keys_out)) ||
        (body && body_file) || timeout_ms == 0) {
        usage();
        return 2;
    }
    if (body_file) {
        char *b = NULL;
        int rc = read_file(body_file, &b, &body_len);
        if (rc < 0) {
            fprintf(stderr, "mg-load: cannot read %s: %s\n", body_file, strerror(-rc));
            return 1;
        }
        body = b;
    }
    if (!method)
        method = body ? "POST" : "GET";
    if (body && !have_ctype)
        add_header("Content-Type: application/json");

    slots = calloc((size_t)nconns, sizeof *slots);
    samples_us = calloc(MAX_SAMPLES, sizeof *samples_us);
    ok_us = calloc(MAX_SAMPLES, sizeof *ok_us);
    err_us = calloc(MAX_SAMPLES, sizeof *err_us);
    if (key_header) {
        key_version = calloc((size_t)nkeys, 1);
        key_bad = calloc((size_t)nkeys, 1);
    }
    if (!slots || !samples_us || !ok_us || !err_us || (key_header && (!key_version || !key_bad))) {
        fprintf(stderr, "mg-load: out of memory\n");
        return 1;
    }

    struct mg_httpc_config ccfg;
    mg_httpc_config_default(&ccfg);
    ccfg.max_idle_per_endpoint = (unsigned)nconns;
    ccfg.head_timeout_ms = (uint32_t)req_timeout_ms;
    ccfg.read_timeout_ms = (uint32_t)req_timeout_ms;
    const char *err = NULL;
    int rc;
    if ((rc = mg_loop_new(&loop)) < 0 || (rc = mg_httpc_new(loop, &ccfg, &client)) < 0 ||
        (rc = mg_httpc_endpoint(client, connect_to, &ep, &err)) < 0) {
        fprintf(stderr, "mg-load: %s: %s\n", connect_to, err ? err : strerror(-rc));
        return 1;
    }
    if ((rc = mg_loop_signal(loop, SIGTERM, on_stop_signal, NULL)) < 0 ||
        (rc = mg_loop_signal(loop, SIGINT, on_stop_signal, NULL)) < 0) {
        fprintf(stderr, "mg-load: cannot watch signals: %s\n", strerror(-rc));
        return 1;
    }
    mg_timer_init(&deadline, deadline_cb, NULL);
    mg_timer_start(loop, &deadline, timeout_ms);

    start_ns = mg_now_ns();
    for (int i = 0; i < nconns && !all_started(); i++)
        start_next(&slots[i]);
    if (inflight > 0)
        mg_loop_run(loop);
    uint64_t elapsed_ns = mg_now_ns() - start_ns;

    struct mg_httpc_stats st;
    mg_httpc_get_stats(client, &st);
    qsort(samples_us, (size_t)nsamples, sizeof *samples_us, cmp_u32);
    qsort(ok_us, (size_t)nok_samples, sizeof *ok_us, cmp_u32);
    qsort(err_us, (size_t)nerr_samples, sizeof *err_us, cmp_u32);
    double ms = (double)elapsed_ns / 1e6;

    printf("{\"requests\":%ld,\"done\":%ld,\"ok\":%ld,\"non2xx\":%ld,\"transport_errors\":%ld,"
           "\"unfinished\":%ld,\"status\":{",
           started, done_count, ok_count, non2xx, transport_errors, inflight);
    int first = 1;
    for (int i = 0; i < MAX_STATUS; i++)
        if (status_count[i]) {
            printf("%s\"%d\":%ld", first ? "" : ",", i, status_count[i]);
            first = 0;
        }
    printf("},\"versions\":{");
    first = 1;
    for (int i = 0; i < nversions; i++) {
        printf("%s\"%s\":%ld", first ? "" : ",", versions[i], version_count[i]);
        first = 0;
    }
    if (version_count[MAX_VERSIONS])
        printf("%s\"-\":%ld", first ? "" : ",", version_count[MAX_VERSIONS]);
    printf("},\"errors\":{");
    first = 1;
    for (int k = 1; k <= MG_HTTPC_ERR_LOCAL; k++)
        if (error_count[k]) {
            printf("%s\"%s\":%ld", first ? "" : ",", mg_httpc_strerror((enum mg_httpc_error)k),
                   error_count[k]);
            first = 0;
        }
    printf("},\"created\":%llu,\"reused\":%llu,\"retried\":%llu,\"bytes\":%llu,"
           "\"ms\":%.1f,\"rps\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f",
           (unsigned long long)st.created, (unsigned long long)st.reused,
           (unsigned long long)st.retried, body_bytes, ms,
           ms > 0 ? (double)done_count * 1000.0 / ms : 0.0, pct_ms(samples_us, nsamples, 0.5),
           pct_ms(samples_us, nsamples, 0.99), pct_ms(samples_us, nsamples, 1.0));
    printf(",\"ok_p50_ms\":%.3f,\"ok_p99_ms\":%.3f,\"err_p50_ms\":%.3f,\"err_p99_ms\":%.3f,"
           "\"err_max_ms\":%.3f",
           pct_ms(ok_us, nok_samples, 0.5), pct_ms(ok_us, nok_samples, 0.99),
           pct_ms(err_us, nerr_samples, 0.5), pct_ms(err_us, nerr_samples, 0.99),
           pct_ms(err_us, nerr_samples, 1.0));
    if (ncounted) {
        printf(",\"headers\":{");
        for (int c = 0; c < ncounted; c++) {
            printf("%s\"%s\":{", c ? "," : "", counted[c].name);
            int f = 1;
            for (int i = 0; i < counted[c].nvalues; i++) {
                printf("%s\"%s\":%ld", f ? "" : ",", counted[c].values[i], counted[c].count[i]);
                f = 0;
            }
            if (counted[c].count[MAX_VALUES])
                printf("%s\"-\":%ld", f ? "" : ",", counted[c].count[MAX_VALUES]);
            printf("}");
        }
        printf("}");
    }
    if (backend_header)
        printf(",\"backend_mismatch\":%ld", backend_mismatch);
    if (key_header)
        printf(",\"keys\":%ld,\"keys_seen\":%ld,\"keys_inconsistent\":%ld", nkeys, keys_seen,
               keys_inconsistent);
    printf("}\n");
    fflush(stdout);

    if (keys_out) {
        FILE *f = fopen(keys_out, "w");
        if (!f) {
            fprintf(stderr, "mg-load: cannot write %s: %s\n", keys_out, strerror(errno));
            return 1;
        }
        for (long k = 0; k < nkeys; k++)
            if (key_version[k])
                fprintf(f, "k%ld %s\n", k, versions[key_version[k] - 1]);
        if (fclose(f) != 0) {
            fprintf(stderr, "mg-load: cannot write %s: %s\n", keys_out, strerror(errno));
            return 1;
        }
    }

    stopping = 1;
    mg_httpc_free(client);
    mg_loop_free(loop);
    for (int i = 0; i < nversions; i++)
        free(versions[i]);
    free(slots);
    free(samples_us);
    free(ok_us);
    free(err_us);
    for (int c = 0; c < ncounted; c++)
        for (int i = 0; i < counted[c].nvalues; i++)
            free(counted[c].values[i]);
    free(key_version);
    free(key_bad);
    if (body_file)
        free((char *)body);
    return timed_out ? 1 : 0;
}
