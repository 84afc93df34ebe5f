/* Unit tests for lib/metrics.c: exact sums from concurrent threads (own and
 * shared shards), cumulative histogram buckets, label escaping, name and
 * label validation, the cap on children, callbacks, and the exposition. */
#include "lib/metrics.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>

/* The exposition as a NUL-terminated string (static). */
static const char *expose(struct mg_metrics *m)
{
    static char out[1 << 16];
    struct mg_buf b;
    mg_buf_init(&b, sizeof out - 1);
    int rc = mg_metrics_expose(m, &b);
    if (rc < 0) {
        mg_buf_free(&b);
        return "(expose failed)";
    }
    if (b.len)
        memcpy(out, mg_buf_head(&b), b.len);
    out[b.len] = '\0';
    mg_buf_free(&b);
    return out;
}

/* The value text of the sample line that starts with "series " (name and
 * labels exactly as exposed), or NULL. */
static const char *sample(const char *text, const char *series)
{
    static char val[64];
    size_t sl = strlen(series);
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        if (strncmp(l, series, sl) == 0 && l[sl] == ' ') {
            size_t n = (size_t)((nl ? nl : l + strlen(l)) - (l + sl + 1));
            if (n >= sizeof val)
                n = sizeof val - 1;
            memcpy(val, l + sl + 1, n);
            val[n] = '\0';
            return val;
        }
        l = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* --- concurrency ---------------------------------------------------------- */

#define THREADS 4
#define ITERS 200000

struct worker {
    struct mg_counter *c;
    struct mg_histogram *h;
    struct mg_gauge *g;
    int reg;              /* register for an own shard */
    int id;               /* what registration returned */
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->id = w->reg ? mg_metrics_thread_register() : 0;
    for (int i = 0; i < ITERS; i++) {
        mg_counter_inc(w->c);
        if ((i & 3) == 0)
            mg_counter_add(w->c, 2);
        mg_histogram_observe(w->h, (double)(i % 4));   /* 0,1,2,3: exact sums */
        mg_gauge_inc(w->g);
    }
    if (w->reg)
        mg_metrics_thread_unregister();
    return NULL;
}

static void run_concurrent(unsigned shards, int reg)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, shards, 0) == 0);
    struct mg_metric_family *fc, *fh, *fg;
    REQUIRE(mg_metrics_counter(m, "ops_total", "Operations.", NULL, &fc) == 0);
    const double bounds[] = {0.5, 1.5, 2.5};
    REQUIRE(mg_metrics_histogram(m, "op_size", "Sizes.", NULL, bounds, 3, &fh) == 0);
    REQUIRE(mg_metrics_gauge(m, "level", "A gauge.", NULL, &fg) == 0);
    struct mg_counter *c;
    struct mg_histogram *h;
    struct mg_gauge *g;
    REQUIRE(mg_metrics_counter_get(fc, NULL, &c) == 0);
    REQUIRE(mg_metrics_histogram_get(fh, NULL, &h) == 0);
    REQUIRE(mg_metrics_gauge_get(fg, NULL, &g) == 0);

    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){c, h, g, reg, -1};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    /* Scrape while they run: counters must never go backwards. */
    uint64_t last = 0;
    int backwards = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t v = mg_counter_value(c);
        if (v < last)
            backwards = 1;
        last = v;
        uint64_t counts[4], count;
        mg_histogram_read(h, counts, 4, &count, NULL);
        if (counts[3] != count)
            backwards = 1;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(backwards, 0);
    if (reg)
        for (int i = 0; i < THREADS; i++)
            CHECK(w[i].id >= 1);

    uint64_t per_thread = ITERS + 2 * (ITERS / 4);
    CHECK_EQ_INT(mg_counter_value(c), THREADS * per_thread);
    uint64_t counts[4], count;
    double sum;
    CHECK_EQ_INT(mg_histogram_read(h, counts, 4, &count, &sum), 4);
    CHECK_EQ_INT(count, THREADS * ITERS);
    CHECK_EQ_INT(counts[0], THREADS * ITERS / 4);
    CHECK_EQ_INT(counts[1], 2 * THREADS * ITERS / 4);
    CHECK_EQ_INT(counts[2], 3 * THREADS * ITERS / 4);
    CHECK_EQ_INT(counts[3], THREADS * ITERS);
    CHECK(sum == (double)THREADS * (ITERS / 4) * 6);
    CHECK(mg_gauge_value(g) == (double)THREADS * ITERS);

    const char *text = expose(m);
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)(THREADS * per_thread));
    CHECK_EQ_STR(sample(text, "ops_total"), want);
    snprintf(want, sizeof want, "%d", THREADS * ITERS);
    CHECK_EQ_STR(sample(text, "op_size_count"), want);
    CHECK_EQ_STR(sample(text, "op_size_bucket{le=\"+Inf\"}"), want);
    mg_metrics_free(m);
}

static void t_concurrent_registered_threads(void)
{
    run_concurrent(16, 1);
}

static void t_concurrent_shared_shard(void)
{
    /* Unregistered threads all update shard 0 with atomic adds. */
    run_concurrent(16, 0);
}

static void t_concurrent_more_threads_than_shards(void)
{
    /* Two shards: at most one registered thread owns one, the rest share. */
    run_concurrent(2, 1);
}

static void t_thread_ids(void)
{
    CHECK_EQ_INT(mg_metrics_thread_id(), 0);
    int id = mg_metrics_thread_register();
    CHECK(id >= 1);
    CHECK_EQ_INT(mg_metrics_thread_register(), id);
    CHECK_EQ_INT(mg_metrics_thread_id(), id);
    mg_metrics_thread_unregister();
    CHECK_EQ_INT(mg_metrics_thread_id(), 0);
    /* The lowest free id is handed out again. */
    CHECK_EQ_INT(mg_metrics_thread_register(), id);
    mg_metrics_thread_unregister();
}

/* --- exposition ----------------------------------------------------------- */

static void t_histogram_cumulative(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f;
    const double bounds[] = {0.125, 0.5, 1};
    REQUIRE(mg_metrics_histogram(m, "request_duration_seconds", "Request latency.",
                                 (const char *[]){"route", NULL}, bounds, 3, &f) == 0);
    struct mg_histogram *h;
    REQUIRE(mg_metrics_histogram_get(f, (const char *[]){"chat", NULL}, &h) == 0);
    /* Binary fractions, so that the sum is exact. */
    double obs[] = {0.0625, 0.125, 0.25, 0.75, 0.875, 5, NAN, 0.5};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        mg_histogram_observe(h, obs[i]);
    const char *t = expose(m);
    CHECK_EQ_STR(t,
                 "# HELP request_duration_seconds Request latency.\n"
                 "# TYPE request_duration_seconds histogram\n"
                 "request_duration_seconds_bucket{route=\"chat\",le=\"0.125\"} 2\n"
                 "request_duration_seconds_bucket{route=\"chat\",le=\"0.5\"} 4\n"
                 "request_duration_seconds_bucket{route=\"chat\",le=\"1\"} 6\n"
                 "request_duration_seconds_bucket{route=\"chat\",le=\"+Inf\"} 7\n"
                 "request_duration_seconds_sum{route=\"chat\"} 7.5625\n"
                 "request_duration_seconds_count{route=\"chat\"} 7\n");
    mg_metrics_free(m);
}

static void t_default_buckets_and_helpers(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f;
    REQUIRE(mg_metrics_histogram(m, "h", NULL, NULL, NULL, 0, &f) == 0);
    const char *t = expose(m);
    CHECK(strstr(t, "h_bucket{le=\"0.005\"} 0\nh_bucket{le=\"0.01\"} 0\n") != NULL);
    CHECK(strstr(t, "h_bucket{le=\"10\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n") != NULL);
    /* No help given: no HELP line. */
    CHECK(strncmp(t, "# TYPE h histogram\n", 19) == 0);
    mg_metrics_free(m);

    double b[5];
    CHECK_EQ_INT(mg_metrics_buckets_exponential(0.001, 10, 5, b), 0);
    CHECK(fabs(b[4] - 10) < 1e-9);
    CHECK_EQ_INT(mg_metrics_buckets_linear(1, 2, 5, b), 0);
    CHECK(b[0] == 1 && b[4] == 9);
    CHECK_EQ_INT(mg_metrics_buckets_exponential(0, 2, 5, b), -EINVAL);
    CHECK_EQ_INT(mg_metrics_buckets_exponential(1, 1, 5, b), -EINVAL);
    CHECK_EQ_INT(mg_metrics_buckets_linear(1, 0, 5, b), -EINVAL);
}

static void t_label_escaping_and_help(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f;
    REQUIRE(mg_metrics_counter(m, "requests_total", "Requests, by \"path\".\nSecond line \\ end.",
                               (const char *[]){"path", "model", NULL}, &f) == 0);
    struct mg_counter *c;
    REQUIRE(mg_metrics_counter_get(f, (const char *[]){"C:\\dir\\\"q\"\nx", "llama-3 \xc3\xa9", NULL},
                                   &c) == 0);
    mg_counter_add(c, 3);
    CHECK_EQ_STR(expose(m),
                 "# HELP requests_total Requests, by \"path\".\\nSecond line \\\\ end.\n"
                 "# TYPE requests_total counter\n"
                 "requests_total{path=\"C:\\\\dir\\\\\\\"q\\\"\\nx\",model=\"llama-3 \xc3\xa9\"} 3\n");
    mg_metrics_free(m);
}

static void t_kinds_and_order(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *fc, *fg, *fl;
    REQUIRE(mg_metrics_counter(m, "started_total", "Starts.", NULL, &fc) == 0);
    REQUIRE(mg_metrics_gauge(m, "temperature_celsius", "Heat.", NULL, &fg) == 0);
    /* A labelled family without children is left out. */
    REQUIRE(mg_metrics_counter(m, "errors_total", "Errors.", (const char *[]){"code", NULL}, &fl) == 0);
    /* Unlabelled families are exported as 0 from the start. */
    CHECK_EQ_STR(expose(m),
                 "# HELP started_total Starts.\n# TYPE started_total counter\nstarted_total 0\n"
                 "# HELP temperature_celsius Heat.\n# TYPE temperature_celsius gauge\n"
                 "temperature_celsius 0\n");
    struct mg_gauge *g;
    REQUIRE(mg_metrics_gauge_get(fg, NULL, &g) == 0);
    mg_gauge_set(g, 21.5);
    mg_gauge_add(g, -1.25);
    mg_gauge_dec(g);
    mg_gauge_inc(g);
    mg_gauge_inc(g);
    CHECK(mg_gauge_value(g) == 21.25);
    struct mg_counter *c1, *c2, *again;
    REQUIRE(mg_metrics_counter_get(fl, (const char *[]){"503", NULL}, &c1) == 0);
    REQUIRE(mg_metrics_counter_get(fl, (const char *[]){"502", NULL}, &c2) == 0);
    REQUIRE(mg_metrics_counter_get(fl, (const char *[]){"503", NULL}, &again) == 0);
    CHECK(again == c1);
    mg_counter_inc(c1);
    mg_counter_add(c2, 5);
    const char *t = expose(m);
    CHECK_EQ_STR(sample(t, "temperature_celsius"), "21.25");
    CHECK(strstr(t, "# TYPE errors_total counter\nerrors_total{code=\"503\"} 1\n"
                    "errors_total{code=\"502\"} 5\n") != NULL);
    /* Wrong kind of getter, wrong number of values, bad UTF-8, too long. */
    struct mg_gauge *bad;
    CHECK_EQ_INT(mg_metrics_gauge_get(fl, (const char *[]){"1", NULL}, &bad), -EINVAL);
    CHECK(bad == NULL);
    CHECK_EQ_INT(mg_metrics_counter_get(fl, NULL, &c1), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter_get(fl, (const char *[]){"1", "2", NULL}, &c1), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter_get(fl, (const char *[]){"\xff", NULL}, &c1), -EINVAL);
    static char longv[MG_METRICS_MAX_LABEL_VALUE + 2];
    memset(longv, 'v', sizeof longv - 1);
    CHECK_EQ_INT(mg_metrics_counter_get(fl, (const char *[]){longv, NULL}, &c1), -EINVAL);
    CHECK(c1 == NULL);
    mg_metrics_free(m);
}

static void t_names_validated(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f;
    CHECK_EQ_INT(mg_metrics_gauge(m, "vllm:num_requests_running", "vLLM.", NULL, &f), 0);
    CHECK_EQ_INT(mg_metrics_counter(m, "_under_score:total", NULL, NULL, &f), 0);
    CHECK_EQ_INT(mg_metrics_counter(m, "9starts_with_digit", NULL, NULL, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_EQ_INT(mg_metrics_counter(m, "has-dash", NULL, NULL, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "has space", NULL, NULL, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "", NULL, NULL, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "ok_total", NULL, (const char *[]){"a:b", NULL}, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "ok_total", NULL, (const char *[]){"__name", NULL}, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "ok_total", NULL, (const char *[]){"1a", NULL}, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "ok_total", NULL, (const char *[]){"a", "a", NULL}, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_histogram(m, "lat", NULL, (const char *[]){"le", NULL}, NULL, 0, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_counter(m, "le_ok_total", NULL, (const char *[]){"le", NULL}, &f), 0);
    CHECK_EQ_INT(mg_metrics_histogram(m, "lat", NULL, NULL, (const double[]){1, 1}, 2, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_histogram(m, "lat", NULL, NULL, (const double[]){2, 1}, 2, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_histogram(m, "lat", NULL, NULL, (const double[]){1, INFINITY}, 2, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_histogram(m, "lat", NULL, NULL, (const double[]){1, 2}, 2, &f), 0);
    /* Taken names, and sample names that would collide. */
    CHECK_EQ_INT(mg_metrics_gauge(m, "lat", NULL, NULL, &f), -EEXIST);
    CHECK_EQ_INT(mg_metrics_counter(m, "lat_count", NULL, NULL, &f), -EINVAL);
    CHECK_EQ_INT(mg_metrics_histogram(m, "vllm:num_requests", NULL, NULL, NULL, 0, &f), 0);
    CHECK_EQ_INT(mg_metrics_counter(m, "modelgate_metrics_children_refused_total", NULL, NULL, &f),
                 -EEXIST);
    CHECK_EQ_INT(mg_metrics_counter(m, "x_total", "bad help \xff", NULL, &f), -EINVAL);
    struct mg_metrics *m2 = (struct mg_metrics *)1;
    CHECK_EQ_INT(mg_metrics_new(&m2, MG_METRICS_MAX_THREADS + 1, 0), -EINVAL);
    CHECK(m2 == NULL);
    mg_metrics_free(m);
}

static void t_children_cap(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 3) == 0);
    struct mg_metric_family *f, *other;
    REQUIRE(mg_metrics_counter(m, "by_model_total", "Per model.", (const char *[]){"model", NULL}, &f) == 0);
    REQUIRE(mg_metrics_counter(m, "other_total", "Other.", NULL, &other) == 0);
    struct mg_counter *c;
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"a", NULL}, &c), 0);
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"b", NULL}, &c), 0);
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"c", NULL}, &c), 0);
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"d", NULL}, &c), -ENOSPC);
    CHECK(c == NULL);
    /* Updating through the NULL a refusal leaves is harmless. */
    mg_counter_inc(c);
    mg_counter_add(c, 5);
    mg_gauge_set(NULL, 1);
    mg_histogram_observe(NULL, 1);
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"e", NULL}, &c), -ENOSPC);
    /* Existing children are still found. */
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"b", NULL}, &c), 0);
    CHECK(c != NULL);
    CHECK_EQ_INT(mg_metrics_refused(f), 2);
    CHECK_EQ_INT(mg_metrics_refused(other), 0);
    const char *t = expose(m);
    CHECK(strstr(t, "# TYPE modelgate_metrics_children_refused_total counter\n"
                    "modelgate_metrics_children_refused_total{metric=\"by_model_total\"} 2\n") != NULL);
    CHECK(strstr(t, "by_model_total{model=\"d\"}") == NULL);
    /* Raising the cap lets new children in. */
    mg_metrics_set_max_children(f, 4);
    CHECK_EQ_INT(mg_metrics_counter_get(f, (const char *[]){"d", NULL}, &c), 0);
    mg_metrics_free(m);
}

static double pool_size;
static double read_pool(void *arg)
{
    return *(double *)arg;
}

static void t_callbacks_and_remove(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f, *h;
    REQUIRE(mg_metrics_gauge(m, "pool_idle_connections", "Idle upstream connections.",
                             (const char *[]){"endpoint", NULL}, &f) == 0);
    REQUIRE(mg_metrics_histogram(m, "hh", NULL, NULL, NULL, 0, &h) == 0);
    pool_size = 3;
    CHECK_EQ_INT(mg_metrics_callback(f, (const char *[]){"10.0.0.5:8000", NULL}, read_pool, &pool_size), 0);
    CHECK_EQ_STR(sample(expose(m), "pool_idle_connections{endpoint=\"10.0.0.5:8000\"}"), "3");
    pool_size = 7.5;
    CHECK_EQ_STR(sample(expose(m), "pool_idle_connections{endpoint=\"10.0.0.5:8000\"}"), "7.5");
    CHECK_EQ_INT(mg_metrics_callback(h, NULL, read_pool, &pool_size), -EINVAL);
    CHECK_EQ_INT(mg_metrics_remove(f, (const char *[]){"10.0.0.5:8000", NULL}), 0);
    CHECK_EQ_INT(mg_metrics_remove(f, (const char *[]){"10.0.0.5:8000", NULL}), -ENOENT);
    CHECK(strstr(expose(m), "pool_idle_connections") == NULL);
    /* The removed label set can come back. */
    struct mg_gauge *g;
    CHECK_EQ_INT(mg_metrics_gauge_get(f, (const char *[]){"10.0.0.5:8000", NULL}, &g), 0);
    mg_gauge_set(g, -2);
    CHECK_EQ_STR(sample(expose(m), "pool_idle_connections{endpoint=\"10.0.0.5:8000\"}"), "-2");
    mg_metrics_free(m);
}

static void t_special_values(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f;
    REQUIRE(mg_metrics_gauge(m, "g", "G.", (const char *[]){"k", NULL}, &f) == 0);
    struct mg_gauge *a, *b, *c, *d;
    mg_metrics_gauge_get(f, (const char *[]){"nan", NULL}, &a);
    mg_metrics_gauge_get(f, (const char *[]){"pinf", NULL}, &b);
    mg_metrics_gauge_get(f, (const char *[]){"ninf", NULL}, &c);
    mg_metrics_gauge_get(f, (const char *[]){"third", NULL}, &d);
    mg_gauge_set(a, NAN);
    mg_gauge_set(b, INFINITY);
    mg_gauge_set(c, -INFINITY);
    mg_gauge_set(d, 1.0 / 3);
    const char *t = expose(m);
    CHECK_EQ_STR(sample(t, "g{k=\"nan\"}"), "NaN");
    CHECK_EQ_STR(sample(t, "g{k=\"pinf\"}"), "+Inf");
    CHECK_EQ_STR(sample(t, "g{k=\"ninf\"}"), "-Inf");
    CHECK(strtod(sample(t, "g{k=\"third\"}"), NULL) == 1.0 / 3);
    mg_metrics_free(m);
}

static void t_expose_cap(void)
{
    struct mg_metrics *m;
    REQUIRE(mg_metrics_new(&m, 0, 0) == 0);
    struct mg_metric_family *f;
    REQUIRE(mg_metrics_counter(m, "a_fairly_long_metric_name_total", "Some help text.", NULL, &f) == 0);
    struct mg_buf b;
    mg_buf_init(&b, 40);
    CHECK_EQ_INT(mg_metrics_expose(m, &b), -ENOBUFS);
    mg_buf_free(&b);
    mg_metrics_free(m);
}

int main(void)
{
    RUN(t_thread_ids);
    RUN(t_concurrent_registered_threads);
    RUN(t_concurrent_shared_shard);
    RUN(t_concurrent_more_threads_than_shards);
    RUN(t_histogram_cumulative);
    RUN(t_default_buckets_and_helpers);
    RUN(t_label_escaping_and_help);
    RUN(t_kinds_and_order);
    RUN(t_names_validated);
    RUN(t_children_cap);
    RUN(t_callbacks_and_remove);
    RUN(t_special_values);
    RUN(t_expose_cap);
    return test_done();
}
