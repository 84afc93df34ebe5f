/* mg-metrics-dump: builds a metrics registry with every kind of metric and
 * prints its text exposition, for tests/integration/metrics.sh to feed to
 * `promtool check metrics`.
 *
 *   mg-metrics-dump            modelgate-style names: counters, gauges,
 *                              callback gauges, histograms (default and
 *                              custom buckets), label values that need
 *                              escaping, a family past its children cap
 *   mg-metrics-dump --vllm     vLLM-compatible names with colons
 *   mg-metrics-dump --threads  the default set, updated from 4 registered
 *                              and 2 unregistered threads first
 *
 * Exit status 0 when the exposition was printed, 1 on any error. */
#include "lib/metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TRY(expr)                                                                  \
    do {                                                                           \
        int rc_ = (expr);                                                          \
        if (rc_ < 0) {                                                             \
            fprintf(stderr, "mg-metrics-dump: %s: %s\n", #expr, strerror(-rc_));   \
            return -1;                                                             \
        }                                                                          \
    } while (0)

static double idle_conns = 4;
static double busy_conns = 2;

static double read_double(void *arg)
{
    return *(const double *)arg;
}

struct handles {
    struct mg_counter *req_ok, *req_err, *tokens;
    struct mg_histogram *latency, *ttft;
    struct mg_gauge *inflight;
};

static int build_default(struct mg_metrics *m, struct handles *h)
{
    struct mg_metric_family *f;

    TRY(mg_metrics_counter(m, "modelgate_requests_total",
                           "Requests proxied, by model, version and status code.",
                           (const char *[]){"model", "version", "code", NULL}, &f));
    TRY(mg_metrics_counter_get(f, (const char *[]){"llama-3-8b-instruct", "v1", "200", NULL}, &h->req_ok));
    TRY(mg_metrics_counter_get(f, (const char *[]){"llama-3-8b-instruct", "v2", "503", NULL}, &h->req_err));
    mg_counter_add(h->req_ok, 1234);
    mg_counter_add(h->req_err, 7);

    /* Label values a client controls: quotes, backslashes, newlines, UTF-8. */
    TRY(mg_metrics_counter(m, "modelgate_unknown_model_requests_total",
                           "Requests naming a model no route serves.\nThe model label is the raw request value.",
                           (const char *[]){"model", NULL}, &f));
    struct mg_counter *c;
    TRY(mg_metrics_counter_get(f, (const char *[]){"we\"ird\\model\nname", NULL}, &c));
    mg_counter_inc(c);
    TRY(mg_metrics_counter_get(f, (const char *[]){"modèle-é", NULL}, &c));
    mg_counter_add(c, 2);
    TRY(mg_metrics_counter_get(f, (const char *[]){"", NULL}, &c));
    mg_counter_inc(c);

    TRY(mg_metrics_counter(m, "modelgate_tokens_total", "Completion tokens streamed.", NULL, &f));
    TRY(mg_metrics_counter_get(f, NULL, &h->tokens));
    mg_counter_add(h->tokens, 987654321);

    TRY(mg_metrics_gauge(m, "modelgate_inflight_requests", "Requests in flight.", NULL, &f));
    TRY(mg_metrics_gauge_get(f, NULL, &h->inflight));
    mg_gauge_set(h->inflight, 3);

    TRY(mg_metrics_gauge(m, "modelgate_route_weight_ratio", "Traffic share per version (0..1).",
                         (const char *[]){"model", "version", NULL}, &f));
    struct mg_gauge *g;
    TRY(mg_metrics_gauge_get(f, (const char *[]){"llama-3-8b-instruct", "v1", NULL}, &g));
    mg_gauge_set(g, 0.95);
    TRY(mg_metrics_gauge_get(f, (const char *[]){"llama-3-8b-instruct", "v2", NULL}, &g));
    mg_gauge_set(g, 0.05);

    /* Callback gauges: computed at scrape. */
    TRY(mg_metrics_gauge(m, "modelgate_upstream_pool_connections",
                         "Upstream keep-alive connections, by endpoint and state.",
                         (const char *[]){"endpoint", "state", NULL}, &f));
    TRY(mg_metrics_callback(f, (const char *[]){"127.0.0.1:8001", "idle", NULL}, read_double, &idle_conns));
    TRY(mg_metrics_callback(f, (const char *[]){"127.0.0.1:8001", "busy", NULL}, read_double, &busy_conns));

    TRY(mg_metrics_gauge(m, "modelgate_build_info", "Build information (always 1).",
                         (const char *[]){"version", NULL}, &f));
    TRY(mg_metrics_gauge_get(f, (const char *[]){"0.1.0-dev", NULL}, &g));
    mg_gauge_set(g, 1);

    /* Histograms: default buckets, and custom ones. */
    TRY(mg_metrics_histogram(m, "modelgate_request_duration_seconds",
                             "Whole request latency.", (const char *[]){"model", NULL}, NULL, 0, &f));
    TRY(mg_metrics_histogram_get(f, (const char *[]){"llama-3-8b-instruct", NULL}, &h->latency));
    const double lat[] = {0.003, 0.02, 0.02, 0.2, 0.7, 1.5, 3, 12, 45};
    for (size_t i = 0; i < sizeof lat / sizeof lat[0]; i++)
        mg_histogram_observe(h->latency, lat[i]);

    double ttft_bounds[8];
    TRY(mg_metrics_buckets_exponential(0.01, 2.5, 8, ttft_bounds));
    TRY(mg_metrics_histogram(m, "modelgate_time_to_first_token_seconds",
                             "Time from request to the first streamed token.", NULL, ttft_bounds, 8, &f));
    TRY(mg_metrics_histogram_get(f, NULL, &h->ttft));
    mg_histogram_observe(h->ttft, 0.08);
    mg_histogram_observe(h->ttft, 0.4);

    /* A family at its cap: the refusal shows up as its own counter. */
    TRY(mg_metrics_counter(m, "modelgate_client_requests_total", "Requests per client (capped).",
                           (const char *[]){"client", NULL}, &f));
    mg_metrics_set_max_children(f, 2);
    const char *clients[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < 4; i++) {
        int rc = mg_metrics_counter_get(f, (const char *[]){clients[i], NULL}, &c);
        if (rc < 0 && rc != -ENOSPC) {
            fprintf(stderr, "mg-metrics-dump: unexpected error %d\n", rc);
            return -1;
        }
        mg_counter_inc(c);   /* NULL past the cap: a no-op */
    }
    return 0;
}

static int build_vllm(struct mg_metrics *m)
{
    struct mg_metric_family *f;
    struct mg_gauge *g;
    struct mg_counter *c;
    struct mg_histogram *h;
    const char *const model[] = {"model_name", NULL};
    const char *const name[] = {"meta-llama/Meta-Llama-3-8B-Instruct", NULL};

    TRY(mg_metrics_gauge(m, "vllm:num_requests_running", "Number of requests currently running on GPU.", model, &f));
    TRY(mg_metrics_gauge_get(f, name, &g));
    mg_gauge_set(g, 5);
    TRY(mg_metrics_gauge(m, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", model, &f));
    TRY(mg_metrics_gauge_get(f, name, &g));
    mg_gauge_set(g, 1);
    TRY(mg_metrics_gauge(m, "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage.", model, &f));
    TRY(mg_metrics_gauge_get(f, name, &g));
    mg_gauge_set(g, 0.42);
    TRY(mg_metrics_counter(m, "vllm:prompt_tokens_total", "Number of prefill tokens processed.", model, &f));
    TRY(mg_metrics_counter_get(f, name, &c));
    mg_counter_add(c, 123456);
    TRY(mg_metrics_counter(m, "vllm:generation_tokens_total", "Number of generation tokens processed.", model, &f));
    TRY(mg_metrics_counter_get(f, name, &c));
    mg_counter_add(c, 654321);
    const double ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0};
    TRY(mg_metrics_histogram(m, "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.",
                             model, ttft, sizeof ttft / sizeof ttft[0], &f));
    TRY(mg_metrics_histogram_get(f, name, &h));
    mg_histogram_observe(h, 0.03);
    mg_histogram_observe(h, 0.3);
    const double tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};
    TRY(mg_metrics_histogram(m, "vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.",
                             model, tpot, sizeof tpot / sizeof tpot[0], &f));
    TRY(mg_metrics_histogram_get(f, name, &h));
    mg_histogram_observe(h, 0.02);
    TRY(mg_metrics_histogram(m, "vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.",
                             model, NULL, 0, &f));
    TRY(mg_metrics_histogram_get(f, name, &h));
    mg_histogram_observe(h, 4.2);
    return 0;
}

#define UPDATES 50000

static void *update_main(void *arg)
{
    struct handles *h = arg;
    static _Atomic int which;
    int me = atomic_fetch_add(&which, 1);
    if (me < 4)
        mg_metrics_thread_register();
    for (int i = 0; i < UPDATES; i++) {
        mg_counter_inc(h->req_ok);
        mg_counter_add(h->tokens, 3);
        mg_histogram_observe(h->latency, (i % 100) / 10.0);
        mg_gauge_inc(h->inflight);
        mg_gauge_dec(h->inflight);
    }
    mg_metrics_thread_unregister();
    return NULL;
}

int main(int argc, char **argv)
{
    int vllm = 0, threads = 0, rc = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--vllm") == 0)
            vllm = 1;
        else if (strcmp(argv[i], "--threads") == 0)
            threads = 1;
        else {
            fprintf(stderr, "usage: mg-metrics-dump [--vllm | --threads]\n");
            return 2;
        }
    }
    struct mg_metrics *m;
    if (mg_metrics_new(&m, 8, 0) < 0)
        return 1;
    struct handles h;
    memset(&h, 0, sizeof h);
    if ((vllm ? build_vllm(m) : build_default(m, &h)) < 0)
        goto out;
    if (threads && !vllm) {
        pthread_t t[6];
        for (int i = 0; i < 6; i++)
            pthread_create(&t[i], NULL, update_main, &h);
        for (int i = 0; i < 6; i++)
            pthread_join(t[i], NULL);
    }
    struct mg_buf b;
    mg_buf_init(&b, 1 << 20);
    if (mg_metrics_expose(m, &b) < 0) {
        fprintf(stderr, "mg-metrics-dump: exposition failed\n");
        mg_buf_free(&b);
        goto out;
    }
    size_t off = 0;
    while (off < b.len) {
        ssize_t n = write(1, mg_buf_head(&b) + off, b.len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    rc = off == b.len ? 0 : 1;
    mg_buf_free(&b);
out:
    mg_metrics_free(m);
    return rc;
}
