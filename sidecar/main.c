/* modelgate-sidecar: the command line, the threads, the signals and the
 * route-table life cycle.
 *
 *   modelgate-sidecar --config FILE [--admin-token-file F] [--log-level L]
 *                     [--drain-timeout DURATION]
 *   modelgate-sidecar --check --config FILE
 *
 * The main thread runs the admin port, the signals (SIGHUP: reload the
 * file; SIGTERM/SIGINT: drain and exit) and the watch on the config file
 * (inotify on its directory, since editors and Kubernetes replace files by
 * rename, plus a 1 s stat poll as a safety net). Only the main thread
 * parses and validates tables; a valid one becomes the next generation and
 * is posted to every worker (sidecar.h). */
#define _GNU_SOURCE
#include "sidecar/sidecar.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/log.h"

#define CONFIG_FILE_MAX ((size_t)4 << 20)
#define WATCH_DEBOUNCE_MS 100
#define POLL_MS 1000
#define DRAIN_TICK_MS 20
#define DRAIN_DEFAULT_MS 25000

struct sc_state sc_g;

static const char *config_path;
static uint32_t drain_ms = DRAIN_DEFAULT_MS;

/* What the file looked like when last read. */
static struct {
    int valid;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtim;
} file_seen;
static uint64_t file_hash;

static struct mg_timer poll_timer, debounce_timer, drain_timer;
static struct mg_io watch_io;
static int watch_fd = -1;
static uint64_t drain_deadline;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: modelgate-sidecar --config FILE [--admin-token-file FILE] [--log-level LEVEL]\n"
            "                         [--drain-timeout DURATION]\n"
            "       modelgate-sidecar --check --config FILE\n"
            "\n"
            "  --config FILE            the route table (YAML or JSON); see docs/sidecar.md\n"
            "  --check                  validate FILE, print every error, exit 0 (valid) or 1\n"
            "  --admin-token-file FILE  enables POST /config on the admin port for requests with\n"
            "                           'Authorization: Bearer <the token in FILE>'\n"
            "  --log-level LEVEL        debug, info (default), warn, error\n"
            "  --drain-timeout DURATION on SIGTERM, how long requests in flight may finish\n"
            "                           (default 25s)\n"
            "\n"
            "Signals: SIGHUP reloads FILE; SIGTERM/SIGINT stop accepting, let requests in flight\n"
            "finish (up to --drain-timeout) and exit 0. FILE is also reloaded when it changes.\n");
}

/* Prints a collector's entries as "file:line:col: [kind: ]path: message". */
static void print_list(FILE *f, const struct mg_json_errs *e, const char *kind)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct mg_json_error *x = &e->items[i];
        fputs(x->file && *x->file ? x->file : "", f);
        if (x->line)
            fprintf(f, ":%u:%u", x->line, x->col);
        fputs(x->file && *x->file ? ": " : "", f);
        if (kind)
            fprintf(f, "%s: ", kind);
        if (x->path && *x->path)
            fprintf(f, "%s: ", x->path);
        fprintf(f, "%s\n", x->msg);
    }
    if (e->dropped)
        fprintf(f, "... and %zu more\n", e->dropped);
}

static void log_list(enum mg_log_level level, const char *msg, const struct mg_json_errs *e)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct mg_json_error *x = &e->items[i];
        mg_log(level, msg, "file", MG_S(x->file), "line", MG_U(x->line), "col", MG_U(x->col),
               "path", MG_S(x->path), "message", MG_S(x->msg));
    }
}

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* ------------------------------------------------------------------------ */
/* The table in force. */

uint64_t sc_install(struct sc_config *cfg)
{
    struct sc_config *old = sc_g.cfg;
    /* The shared breakers, budgets and buckets it uses, found by key so
     * that what stays keeps its state. */
    int prc = cfg->policy ? 0 : sc_policy_attach(cfg);
    if (prc < 0)
        mg_log(MG_LOG_ERROR, "cannot build the policy state of the new table; it runs without "
                             "breakers, budgets and rate limits", "error", MG_ERRNO(prc));
    if (old) {
        if (strcmp(old->listen, cfg->listen) != 0)
            mg_log(MG_LOG_WARN, "listen changed: it takes effect at the next restart", "was",
                   MG_S(old->listen), "now", MG_S(cfg->listen));
        if ((old->admin == NULL) != (cfg->admin == NULL) ||
            (old->admin && strcmp(old->admin, cfg->admin) != 0))
            mg_log(MG_LOG_WARN, "admin changed: it takes effect at the next restart", "was",
                   MG_S(old->admin), "now", MG_S(cfg->admin));
        if (old->workers != cfg->workers)
            mg_log(MG_LOG_WARN, "workers changed: it takes effect at the next restart", "was",
                   MG_U(old->workers), "now", MG_U(cfg->workers));
        if (old->max_head != cfg->max_head || old->header_timeout_ms != cfg->header_timeout_ms ||
            old->keepalive_timeout_ms != cfg->keepalive_timeout_ms ||
            old->max_conns != cfg->max_conns || old->upstream_max_idle != cfg->upstream_max_idle ||
            old->upstream_idle_ms != cfg->upstream_idle_ms)
            mg_log(MG_LOG_WARN, "client/upstream/limits.requestHead settings changed: they take "
                                "effect at the next restart");
    }
    cfg->generation = ++sc_g.generation;
    sc_g.cfg = cfg;
    for (unsigned i = 0; i < sc_g.nworkers && old; i++) {
        int rc = sc_worker_post_config(&sc_g.workers[i], cfg);
        if (rc < 0)
            mg_log(MG_LOG_ERROR, "cannot hand the new table to a worker", "worker", MG_U(i),
                   "error", MG_ERRNO(rc));
    }
    if (old) {
        mg_counter_inc(sc_g.m.reloads_ok);
        sc_config_unref(old);
    }
    mg_gauge_set(sc_g.m.gen, (double)cfg->generation);
    if (sc_g.main_loop && (prc = sc_admission_install(sc_g.main_loop, cfg)) < 0)
        mg_log(MG_LOG_ERROR, "cannot start the admission poller", "error", MG_ERRNO(prc));
    mg_log(MG_LOG_INFO, "route table in force", "generation", MG_U(cfg->generation), "source",
           MG_S(cfg->source), "routes", MG_U(cfg->nroutes));
    return cfg->generation;
}

void sc_count_refused(void)
{
    mg_counter_inc(sc_g.m.reloads_refused);
}

/* Reads the file and installs it, unless its bytes are those installed
 * last (force: install anyway, e.g. SIGHUP after a POST /config). */
static void reload_file(const char *why, int force)
{
    char *data = NULL;
    size_t len = 0;
    int rc = mg_read_file(config_path, CONFIG_FILE_MAX, &data, &len);
    if (rc < 0) {
        mg_log(MG_LOG_ERROR, "cannot read the route table; the old one stays", "file",
               MG_S(config_path), "reason", MG_S(why), "error", MG_ERRNO(rc));
        sc_count_refused();
        return;
    }
    uint64_t h = fnv1a(data, len);
    if (!force && h == file_hash) {
        free(data);
        return;
    }
    file_hash = h;
    struct mg_json_errs errs, warns;
    mg_json_errs_init(&errs, 0);
    mg_json_errs_init(&warns, 0);
    struct sc_config *cfg = NULL;
    rc = sc_config_parse(data, len, config_path, &cfg, &errs, &warns);
    free(data);
    if (rc < 0) {
        sc_count_refused();
        mg_log(MG_LOG_ERROR, "route table refused; the old one stays", "file", MG_S(config_path),
               "reason", MG_S(why), "errors", MG_U(mg_json_errs_count(&errs)), "error",
               MG_ERRNO(rc));
        log_list(MG_LOG_ERROR, "route table error", &errs);
    } else {
        log_list(MG_LOG_WARN, "route table warning", &warns);
        mg_log(MG_LOG_INFO, "reloading the route table", "file", MG_S(config_path), "reason",
               MG_S(why));
        sc_install(cfg);
    }
    mg_json_errs_free(&errs);
    mg_json_errs_free(&warns);
}

/* Whether the file (followed through symlinks) differs from when last
 * looked at. min_age_ms: a change younger than this is left for the next
 * look (a poll may catch a writer in the middle of its write). */
static int file_changed(unsigned min_age_ms)
{
    struct stat st;
    if (stat(config_path, &st) == -1)
        return 0;
    if (file_seen.valid && st.st_dev == file_seen.dev && st.st_ino == file_seen.ino &&
        st.st_size == file_seen.size && st.st_mtim.tv_sec == file_seen.mtim.tv_sec &&
        st.st_mtim.tv_nsec == file_seen.mtim.tv_nsec)
        return 0;
    if (min_age_ms) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t age = (int64_t)(now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                      (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
        if (age >= 0 && age < (int64_t)min_age_ms)
            return 0;
    }
    file_seen.valid = 1;
    file_seen.dev = st.st_dev;
    file_seen.ino = st.st_ino;
    file_seen.size = st.st_size;
    file_seen.mtim = st.st_mtim;
    return 1;
}

static void poll_cb(struct mg_loop *loop, struct mg_timer *t)
{
    if (!atomic_load(&sc_g.draining) && file_changed(500))
        reload_file("file changed", 0);
    mg_timer_start(loop, &poll_timer, POLL_MS);
}

static void debounce_cb(struct mg_loop *loop, struct mg_timer *t)
{
    if (!atomic_load(&sc_g.draining) && file_changed(0))
        reload_file("file changed", 0);
}

static void watch_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(io->fd, buf, sizeof buf);
        if (n <= 0)
            break;
    }
    /* Any event in the directory: the file may have been replaced by a
     * rename, or a symlink above it swapped (Kubernetes ConfigMaps). */
    mg_timer_start(loop, &debounce_timer, WATCH_DEBOUNCE_MS);
}

static void watch_start(struct mg_loop *loop)
{
    mg_timer_init(&poll_timer, poll_cb, NULL);
    mg_timer_init(&debounce_timer, debounce_cb, NULL);
    file_changed(0);
    mg_timer_start(loop, &poll_timer, POLL_MS);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", config_path);
    const char *dir = dirname(tmp);
    watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (watch_fd == -1 ||
        inotify_add_watch(watch_fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE |
                                             IN_ATTRIB | IN_MODIFY) == -1) {
        mg_log(MG_LOG_WARN, "cannot watch the config directory; polling it every second",
               "dir", MG_S(dir), "error", MG_ERRNO(errno));
        if (watch_fd != -1)
            close(watch_fd);
        watch_fd = -1;
        return;
    }
    mg_io_init(&watch_io, watch_cb, NULL);
    if (mg_io_start(loop, &watch_io, watch_fd, MG_READ) < 0) {
        close(watch_fd);
        watch_fd = -1;
    }
}

static void watch_stop(struct mg_loop *loop)
{
    mg_timer_stop(loop, &poll_timer);
    mg_timer_stop(loop, &debounce_timer);
    if (watch_fd != -1) {
        mg_io_stop(loop, &watch_io);
        close(watch_fd);
        watch_fd = -1;
    }
}

/* ------------------------------------------------------------------------ */
/* Signals and the drain. */

static void stop_all(struct mg_loop *loop)
{
    for (unsigned i = 0; i < sc_g.nworkers; i++)
        if (sc_g.workers[i].loop)
            mg_loop_stop(sc_g.workers[i].loop);
    mg_loop_stop(loop);
}

static void drain_cb(struct mg_loop *loop, struct mg_timer *t)
{
    unsigned left = 0;
    for (unsigned i = 0; i < sc_g.nworkers; i++)
        if (!atomic_load(&sc_g.workers[i].drained))
            left++;
    if (left == 0 || mg_loop_now(loop) >= drain_deadline) {
        if (left)
            mg_log(MG_LOG_WARN, "drain timeout: ending the requests still in flight",
                   "workers_busy", MG_U(left));
        stop_all(loop);
        return;
    }
    mg_timer_start(loop, &drain_timer, DRAIN_TICK_MS);
}

static void on_signal(struct mg_loop *loop, int signo, void *data)
{
    if (signo == SIGHUP) {
        mg_log(MG_LOG_INFO, "SIGHUP: reloading the route table", "file", MG_S(config_path));
        reload_file("SIGHUP", 1);
        return;
    }
    if (atomic_load(&sc_g.draining)) {
        mg_log(MG_LOG_WARN, "second stop signal: exiting now");
        stop_all(loop);
        return;
    }
    mg_log(MG_LOG_INFO, "stopping: draining requests in flight", "signal",
           MG_S(signo == SIGINT ? "SIGINT" : "SIGTERM"), "timeout_ms", MG_U(drain_ms));
    atomic_store(&sc_g.draining, 1);
    for (unsigned i = 0; i < sc_g.nworkers; i++)
        if (sc_worker_post_drain(&sc_g.workers[i]) < 0)
            atomic_store(&sc_g.workers[i].drained, 1);
    drain_deadline = mg_loop_now(loop) + drain_ms;
    mg_timer_init(&drain_timer, drain_cb, NULL);
    mg_timer_start(loop, &drain_timer, 0);
}

/* ------------------------------------------------------------------------ */

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int check_only(const char *path)
{
    struct mg_json_errs errs, warns;
    mg_json_errs_init(&errs, 0);
    mg_json_errs_init(&warns, 0);
    struct sc_config *cfg = NULL;
    int rc = sc_config_load(path, &cfg, &errs, &warns);
    print_list(stderr, &warns, "warning");
    if (rc < 0) {
        print_list(stderr, &errs, NULL);
        if (mg_json_errs_count(&errs) == 0)
            fprintf(stderr, "%s: %s\n", path, strerror(-rc));
    } else {
        printf("%s: ok, %u route%s\n", path, cfg->nroutes, cfg->nroutes == 1 ? "" : "s");
        sc_config_unref(cfg);
    }
    mg_json_errs_free(&errs);
    mg_json_errs_free(&warns);
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    int check = 0, status = 1, rc;
    const char *err = NULL;
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},
        {"check", no_argument, 0, 'k'},
        {"admin-token-file", required_argument, 0, 't'},
        {"log-level", required_argument, 0, 'l'},
        {"drain-timeout", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int o;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config_path = optarg; break;
        case 'k': check = 1; break;
        case 't': sc_g.token_file = optarg; break;
        case 'l': {
            enum mg_log_level lv;
            if (mg_log_level_parse(optarg, &lv) < 0) {
                fprintf(stderr, "modelgate-sidecar: --log-level: '%s' is not debug, info, warn "
                                "or error\n", optarg);
                usage(stderr);
                return 2;
            }
            mg_log_set_level(lv);
            break;
        }
        case 'd': {
            uint64_t ms;
            const char *why = NULL;
            if (mg_duration_parse(optarg, strlen(optarg), &ms, &why) < 0 || ms > 3600 * 1000) {
                fprintf(stderr, "modelgate-sidecar: --drain-timeout: '%s': %s\n", optarg,
                        why ? why : "at most 1h");
                usage(stderr);
                return 2;
            }
            drain_ms = (uint32_t)ms;
            break;
        }
        case 'h': usage(stdout); return 0;
        default:
            if (optopt)
                fprintf(stderr, "modelgate-sidecar: option -%c: unknown or missing its value\n",
                        optopt);
            else
                fprintf(stderr, "modelgate-sidecar: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "modelgate-sidecar: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!config_path) {
        fprintf(stderr, "modelgate-sidecar: --config FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (check)
        return check_only(config_path);

    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    struct mg_json_errs errs, warns;
    mg_json_errs_init(&errs, 0);
    mg_json_errs_init(&warns, 0);
    struct sc_config *cfg = NULL;
    rc = sc_config_load(config_path, &cfg, &errs, &warns);
    print_list(stderr, &warns, "warning");
    if (rc < 0) {
        print_list(stderr, &errs, NULL);
        if (mg_json_errs_count(&errs) == 0)
            fprintf(stderr, "%s: %s\n", config_path, strerror(-rc));
        mg_json_errs_free(&errs);
        mg_json_errs_free(&warns);
        return 1;
    }
    mg_json_errs_free(&errs);
    mg_json_errs_free(&warns);
    {
        char *data;
        size_t len;
        if (mg_read_file(config_path, CONFIG_FILE_MAX, &data, &len) == 0) {
            file_hash = fnv1a(data, len);
            free(data);
        }
    }
    if (sc_g.token_file) {
        char *tok = NULL;
        size_t tl = 0;
        rc = mg_read_file(sc_g.token_file, 4096, &tok, &tl);
        size_t nonspace = 0;
        for (size_t i = 0; rc == 0 && i < tl; i++)
            nonspace += tok[i] != ' ' && tok[i] != '\n' && tok[i] != '\r' && tok[i] != '\t';
        free(tok);
        if (rc < 0 || nonspace == 0) {
            fprintf(stderr, "modelgate-sidecar: --admin-token-file %s: %s\n", sc_g.token_file,
                    rc < 0 ? strerror(-rc) : "the file holds no token");
            sc_config_unref(cfg);
            return 1;
        }
    }

    /* Signals are blocked here, before any worker thread exists, so the
     * workers inherit the mask and only the main loop receives them. */
    rc = mg_loop_new(&sc_g.main_loop);
    if (rc < 0) {
        fprintf(stderr, "modelgate-sidecar: cannot create the event loop: %s\n", strerror(-rc));
        sc_config_unref(cfg);
        return 1;
    }
    struct mg_loop *loop = sc_g.main_loop;
    if (mg_loop_signal(loop, SIGHUP, on_signal, NULL) < 0 ||
        mg_loop_signal(loop, SIGTERM, on_signal, NULL) < 0 ||
        mg_loop_signal(loop, SIGINT, on_signal, NULL) < 0) {
        fprintf(stderr, "modelgate-sidecar: cannot watch signals\n");
        goto out_loop;
    }
    sc_g.nworkers = cfg->workers ? cfg->workers : 1;
    sc_g.workers = calloc(sc_g.nworkers, sizeof *sc_g.workers);
    if (!sc_g.workers) {
        fprintf(stderr, "modelgate-sidecar: out of memory\n");
        goto out_loop;
    }
    if ((rc = sc_metrics_init(sc_g.nworkers)) < 0) {
        fprintf(stderr, "modelgate-sidecar: cannot set up metrics: %s\n", strerror(-rc));
        goto out_workers;
    }
    mg_metrics_thread_register();
    if ((rc = sc_policy_attach(cfg)) < 0) {
        fprintf(stderr, "modelgate-sidecar: cannot build the policy state: %s\n", strerror(-rc));
        goto out_workers;
    }
    cfg->generation = sc_g.generation = 1;
    sc_g.cfg = cfg;
    mg_gauge_set(sc_g.m.gen, 1);

    char bound[320];
    snprintf(bound, sizeof bound, "%s", cfg->listen);
    for (unsigned i = 0; i < sc_g.nworkers; i++) {
        struct sc_worker *w = &sc_g.workers[i];
        w->idx = i;
        err = NULL;
        if ((rc = sc_worker_init(w, cfg, bound, &err)) < 0) {
            fprintf(stderr, "modelgate-sidecar: worker %u: %s (%s): %s\n", i, err ? err : "setup",
                    bound, strerror(-rc));
            goto out_workers;
        }
        if (i == 0) {
            /* With port 0 the other workers join the port the first got. */
            char host[256];
            unsigned port;
            if (mg_split_hostport(cfg->listen, host, sizeof host, &port) == 0)
                snprintf(bound, sizeof bound, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                         mg_httpd_port(w->srv));
        }
    }
    if (cfg->admin && (rc = sc_admin_start(loop, cfg->admin, &err)) < 0) {
        fprintf(stderr, "modelgate-sidecar: cannot listen on admin %s: %s\n", cfg->admin,
                err ? err : strerror(-rc));
        goto out_workers;
    }
    for (unsigned i = 0; i < sc_g.nworkers; i++) {
        struct sc_worker *w = &sc_g.workers[i];
        if ((rc = pthread_create(&w->thread, NULL, sc_worker_main, w)) != 0) {
            fprintf(stderr, "modelgate-sidecar: cannot start worker %u: %s\n", i, strerror(rc));
            stop_all(loop);
            goto out_threads;
        }
        w->thread_started = 1;
    }
    watch_start(loop);
    if ((rc = sc_admission_install(loop, cfg)) < 0)
        mg_log(MG_LOG_ERROR, "cannot start the admission poller", "error", MG_ERRNO(rc));
    mg_log(MG_LOG_INFO, "modelgate-sidecar started", "listen", MG_S(bound), "admin_port",
           MG_I(sc_admin_port()), "workers", MG_U(sc_g.nworkers), "routes", MG_U(cfg->nroutes),
           "config", MG_S(config_path), "post_config", MG_B(sc_g.token_file != NULL));

    rc = mg_loop_run(loop);
    status = rc < 0 ? 1 : 0;
    watch_stop(loop);
    if (rc < 0)
        stop_all(loop);
out_threads:
    for (unsigned i = 0; i < sc_g.nworkers; i++)
        if (sc_g.workers[i].thread_started)
            pthread_join(sc_g.workers[i].thread, NULL);
out_workers:
    sc_admission_stop();
    sc_admin_stop();
    for (unsigned i = 0; sc_g.workers && i < sc_g.nworkers; i++)
        sc_worker_free(&sc_g.workers[i]);
    free(sc_g.workers);
    sc_g.workers = NULL;
    sc_g.nworkers = 0;
    /* The table goes before the metrics: freeing its policy state removes
     * the breakers' metric children. */
    sc_config_unref(sc_g.cfg ? sc_g.cfg : cfg);
    sc_g.cfg = cfg = NULL;
    if (sc_g.m.reg)
        mg_metrics_free(sc_g.m.reg);
    memset(&sc_g.m, 0, sizeof sc_g.m);
    mg_metrics_thread_unregister();
out_loop:
    mg_loop_free(loop);
    sc_config_unref(sc_g.cfg ? sc_g.cfg : cfg);
    if (status == 0)
        mg_log(MG_LOG_INFO, "modelgate-sidecar stopped");
    return status;
}
