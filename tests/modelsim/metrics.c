/* vLLM's Prometheus metrics, by vLLM's names, types, label and buckets, on
 * lib/metrics: each worker thread registers its own shard, so updates on
 * the hot path are plain stores and a scrape from any worker sums them.
 * The gauges are read at scrape time from the shared per-model counters
 * the scheduler keeps (callback children), so they are exact at that
 * instant, whichever worker answers. */
#include "tests/modelsim/modelsim.h"

#include <errno.h>
#include <string.h>

/* vLLM's bucket bounds (vllm/v1/metrics). */
static const double ttft_buckets[] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
};
static const double itl_buckets[] = {
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
};
static const double e2e_buckets[] = {
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
};
#define NB(a) (sizeof(a) / sizeof((a)[0]))

static const char *const reasons[3] = {"stop", "length", "abort"};

static struct mg_metrics *reg;
static struct mg_metric_family *f_running, *f_waiting, *f_kv;
static struct mg_metric_family *f_ttft, *f_itl, *f_e2e;
static struct mg_metric_family *f_prompt, *f_gen, *f_success;

int ms_metrics_init(void)
{
    static const char *const by_model[] = {"model_name", NULL};
    static const char *const by_model_reason[] = {"model_name", "finished_reason", NULL};
    int rc = mg_metrics_new(&reg, MS_MAX_WORKERS + 1, 0);
    if (rc < 0)
        return rc;
    if ((rc = mg_metrics_gauge(reg, "vllm:num_requests_running",
                               "Number of requests in model execution batches.", by_model,
                               &f_running)) < 0 ||
        (rc = mg_metrics_gauge(reg, "vllm:num_requests_waiting",
                               "Number of requests waiting to be processed.", by_model,
                               &f_waiting)) < 0 ||
        (rc = mg_metrics_gauge(reg, "vllm:kv_cache_usage_perc",
                               "KV-cache usage. 1 means 100 percent usage.", by_model, &f_kv)) < 0 ||
        (rc = mg_metrics_counter(reg, "vllm:prompt_tokens_total",
                                 "Number of prefill tokens processed.", by_model, &f_prompt)) < 0 ||
        (rc = mg_metrics_counter(reg, "vllm:generation_tokens_total",
                                 "Number of generation tokens processed.", by_model, &f_gen)) < 0 ||
        (rc = mg_metrics_counter(reg, "vllm:request_success_total",
                                 "Count of successfully processed requests.", by_model_reason,
                                 &f_success)) < 0 ||
        (rc = mg_metrics_histogram(reg, "vllm:time_to_first_token_seconds",
                                   "Histogram of time to first token in seconds.", by_model,
                                   ttft_buckets, NB(ttft_buckets), &f_ttft)) < 0 ||
        (rc = mg_metrics_histogram(reg, "vllm:inter_token_latency_seconds",
                                   "Histogram of inter-token latency in seconds.", by_model,
                                   itl_buckets, NB(itl_buckets), &f_itl)) < 0 ||
        (rc = mg_metrics_histogram(reg, "vllm:e2e_request_latency_seconds",
                                   "Histogram of e2e request latency in seconds.", by_model,
                                   e2e_buckets, NB(e2e_buckets), &f_e2e)) < 0) {
        mg_metrics_free(reg);
        reg = NULL;
        return rc;
    }
    return 0;
}

void ms_metrics_free(void)
{
    mg_metrics_free(reg);
    reg = NULL;
}

static double read_running(void *arg)
{
    const struct ms_model_stat *m = arg;
    return (double)atomic_load_explicit(&m->running, memory_order_relaxed);
}

static double read_waiting(void *arg)
{
    const struct ms_model_stat *m = arg;
    return (double)atomic_load_explicit(&m->waiting, memory_order_relaxed);
}

static double read_kv(void *arg)
{
    const struct ms_model_stat *m = arg;
    double cap = (double)atomic_load_explicit(&ms_g.kv_capacity, memory_order_relaxed);
    double used = (double)atomic_load_explicit(&m->kv_tokens, memory_order_relaxed);
    if (cap <= 0 || used <= 0)
        return 0.0;
    return used >= cap ? 1.0 : used / cap;
}

void ms_metrics_model(struct ms_model_stat *m)
{
    const char *const v[] = {m->name, NULL};
    /* A child refused (cap, memory) stays NULL; updates through NULL do
     * nothing, and the registry counts the refusal in its exposition. */
    mg_metrics_callback(f_running, v, read_running, m);
    mg_metrics_callback(f_waiting, v, read_waiting, m);
    mg_metrics_callback(f_kv, v, read_kv, m);
    mg_metrics_counter_get(f_prompt, v, &m->prompt_tokens);
    mg_metrics_counter_get(f_gen, v, &m->gen_tokens);
    for (int i = 0; i < 3; i++) {
        const char *const vr[] = {m->name, reasons[i], NULL};
        mg_metrics_counter_get(f_success, vr, &m->success[i]);
    }
    mg_metrics_histogram_get(f_ttft, v, &m->ttft);
    mg_metrics_histogram_get(f_itl, v, &m->itl);
    mg_metrics_histogram_get(f_e2e, v, &m->e2e);
}

void ms_metrics_request_done(const struct ms_model_stat *m, const char *finished_reason,
                             uint32_t prompt_tokens, uint32_t gen_tokens, double e2e_s)
{
    if (!m)
        return;
    int i = finished_reason[0] == 's' ? 0 : finished_reason[0] == 'l' ? 1 : 2;
    mg_counter_inc(m->success[i]);
    mg_counter_add(m->prompt_tokens, prompt_tokens);
    mg_counter_add(m->gen_tokens, gen_tokens);
    mg_histogram_observe(m->e2e, e2e_s);
}

void ms_metrics_ttft(const struct ms_model_stat *m, double s)
{
    if (m)
        mg_histogram_observe(m->ttft, s);
}

void ms_metrics_itl(const struct ms_model_stat *m, double s, uint32_t n)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < n; i++)
        mg_histogram_observe(m->itl, s);
}

int ms_metrics_render(struct mg_buf *out)
{
    return reg ? mg_metrics_expose(reg, out) : -EINVAL;
}
