/* modelsim's entry point: parses the command line, starts N workers (one
 * event loop and one HTTP server each, all on the same port through
 * SO_REUSEPORT, so the kernel spreads connections), writes --port-file once
 * every worker listens, and shuts down cleanly on SIGINT/SIGTERM (requests
 * in flight end, everything is freed: the sanitizer build checks that). */
#include "tests/modelsim/modelsim.h"
#include "tests/modelsim/req.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reply scratch: the largest non-streaming body (tokens max * token max). */
#define MS_OUT_MAX ((size_t)32 << 20)

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t start_cond = PTHREAD_COND_INITIALIZER;
static unsigned started;
static char listen_bound[320];   /* HOST:PORT with the port worker 0 got */

static int worker_setup(struct ms_worker *w, const char *listen)
{
    const char *err = NULL;
    int rc = mg_loop_new(&w->loop);
    if (rc < 0) {
        mg_log(MG_LOG_ERROR, "cannot create an event loop", "worker", MG_U(w->idx),
               "error", MG_ERRNO(rc));
        return rc;
    }
    struct mg_httpd_config cfg;
    mg_httpd_config_default(&cfg);
    cfg.listen = listen;
    cfg.reuseport = 1;
    cfg.on_request = ms_on_request;
    cfg.data = w;
    cfg.max_conns = 20000;
    /* A whole reply of the longest allowed length must fit. */
    cfg.max_output = MS_OUT_MAX + 4096;
    rc = mg_httpd_new(w->loop, &cfg, &w->srv, &err);
    if (rc < 0) {
        mg_log(MG_LOG_ERROR, "cannot listen", "listen", MG_S(listen), "worker", MG_U(w->idx),
               "error", MG_S(err ? err : strerror(-rc)));
        mg_loop_free(w->loop);
        w->loop = NULL;
        return rc;
    }
    return 0;
}

static void worker_teardown(struct ms_worker *w)
{
    if (w->srv)
        mg_httpd_free(w->srv);
    w->srv = NULL;
    /* Requests that ended during the shutdown left their structs here. */
    ms_req_pool_free(w);
}

static void *worker_main(void *arg)
{
    struct ms_worker *w = arg;
    mg_metrics_thread_register();
    int rc = worker_setup(w, listen_bound);
    pthread_mutex_lock(&start_lock);
    w->start_rc = rc;
    started++;
    pthread_cond_broadcast(&start_cond);
    pthread_mutex_unlock(&start_lock);
    if (rc == 0) {
        mg_loop_run(w->loop);
        worker_teardown(w);
    }
    mg_metrics_thread_unregister();
    return NULL;
}

static void stop_all(void)
{
    atomic_store(&ms_g.stopping, 1);
    for (unsigned i = 0; i < ms_g.nworkers; i++)
        if (ms_g.workers[i].loop)
            mg_loop_stop(ms_g.workers[i].loop);
}

static void on_signal(struct mg_loop *loop, int signo, void *data)
{
    mg_log(MG_LOG_INFO, "stopping", "signal", MG_S(signo == SIGINT ? "SIGINT" : "SIGTERM"));
    stop_all();
}

/* Thousands of open streams need thousands of descriptors. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int write_port_file(const char *path, int port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", port);
    if (fclose(f) == EOF)
        return -errno;
    /* Renamed into place so a reader never sees a partial number. */
    if (rename(tmp, path) == -1)
        return -errno;
    return 0;
}

int main(int argc, char **argv)
{
    struct ms_knobs k;
    unsigned nworkers;
    const char *listen, *port_file;
    int rc, status = 1;
    ms_knobs_default(&k);
    rc = ms_config_parse_args(argc, argv, &k, &nworkers, &listen, &port_file);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return 2;

    ms_g.knobs = k;
    atomic_store(&ms_g.knobs_gen, 1);
    atomic_store(&ms_g.max_running, k.max_running);
    atomic_store(&ms_g.kv_capacity, k.kv_cache_tokens);
    mg_log_set_level(k.log_level);
    ms_g.start_ms = 0;
    ms_g.start_ms = ms_uptime_ms();
    ms_g.listen = listen;
    ms_g.port_file = port_file;
    raise_nofile();

    /* Blocked here, before any thread starts, so every worker inherits the
     * mask and only worker 0's loop receives them (signalfd). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = ms_metrics_init()) < 0) {
        fprintf(stderr, "modelsim: cannot set up metrics: %s\n", strerror(-rc));
        return 1;
    }
    /* Series for the served models exist (at 0) from the start. */
    for (unsigned i = 0; i < k.nmodels; i++)
        ms_model_stat_get(k.models[i]);

    struct ms_worker *workers = calloc(nworkers, sizeof *workers);
    if (!workers) {
        fprintf(stderr, "modelsim: out of memory\n");
        goto out_metrics;
    }
    for (unsigned i = 0; i < nworkers; i++) {
        struct ms_worker *w = &workers[i];
        w->idx = i;
        snprintf(w->idx_str, sizeof w->idx_str, "%u", i);
        w->knobs = k;
        w->knobs_gen = 1;
        w->inject_rng = k.seed ^ (0x9e3779b97f4a7c15ull * (i + 1));
        w->id_counter = ((uint64_t)getpid() << 20) ^ ((uint64_t)time(NULL) << 32) ^
                        ((uint64_t)i << 56);
        mg_buf_init(&w->out, MS_OUT_MAX + 4096);
    }
    ms_g.workers = workers;
    ms_g.nworkers = nworkers;

    /* Worker 0 runs on this thread and binds first: with port 0 the others
     * must join the port it got. */
    mg_metrics_thread_register();
    struct ms_worker *w0 = &workers[0];
    if (worker_setup(w0, listen) < 0)
        goto out_workers;
    int port = mg_httpd_port(w0->srv);
    char host[256];
    unsigned ignored;
    if (mg_split_hostport(listen, host, sizeof host, &ignored) < 0) {
        fprintf(stderr, "modelsim: --listen: cannot parse '%s'\n", listen);
        goto out_w0;
    }
    snprintf(listen_bound, sizeof listen_bound, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
             port);
    unsigned spawned = 0;
    for (unsigned i = 1; i < nworkers; i++) {
        if ((rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) != 0) {
            fprintf(stderr, "modelsim: cannot start worker %u: %s\n", i, strerror(rc));
            break;
        }
        spawned++;
    }
    pthread_mutex_lock(&start_lock);
    while (started < spawned)
        pthread_cond_wait(&start_cond, &start_lock);
    pthread_mutex_unlock(&start_lock);
    int all_ok = spawned == nworkers - 1;
    for (unsigned i = 1; i <= spawned; i++)
        all_ok &= workers[i].start_rc == 0;
    if (!all_ok)
        goto out_threads;
    if (port_file && (rc = write_port_file(port_file, port)) < 0) {
        fprintf(stderr, "modelsim: cannot write --port-file %s: %s\n", port_file, strerror(-rc));
        goto out_threads;
    }
    if ((rc = mg_loop_signal(w0->loop, SIGINT, on_signal, NULL)) < 0 ||
        (rc = mg_loop_signal(w0->loop, SIGTERM, on_signal, NULL)) < 0) {
        fprintf(stderr, "modelsim: cannot watch signals: %s\n", strerror(-rc));
        goto out_threads;
    }
    mg_log(MG_LOG_INFO, "listening", "listen", MG_S(listen_bound), "workers", MG_U(nworkers),
           "models", MG_U(k.nmodels), "version", MG_S(k.version));
    rc = mg_loop_run(w0->loop);
    status = rc < 0 ? 1 : 0;

out_threads:
    stop_all();
    for (unsigned i = 1; i <= spawned; i++)
        pthread_join(workers[i].thread, NULL);
out_w0:
    worker_teardown(w0);
    for (unsigned i = 0; i < nworkers; i++) {
        if (workers[i].loop)
            mg_loop_free(workers[i].loop);
        workers[i].loop = NULL;
        mg_buf_free(&workers[i].out);
    }
out_workers:
    ms_g.workers = NULL;
    ms_g.nworkers = 0;
    free(workers);
out_metrics:
    mg_metrics_thread_unregister();
    ms_metrics_free();
    return status;
}
