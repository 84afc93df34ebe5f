/* modelgate-apiserver's entry point: the command line, one event loop on
 * the main thread, and a clean shutdown on SIGINT/SIGTERM (watches end,
 * the store closes; every acknowledged write was committed already). */
#include "apiserver/server.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "lib/json.h"
#include "lib/log.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: modelgate-apiserver --listen HOST:PORT --data DIR [options]\n"
            "\n"
            "A Kubernetes-API-compatible server on sqlite3 that kubectl drives.\n"
            "\n"
            "  --listen HOST:PORT          address to serve on (port 0 picks one)\n"
            "  --data DIR                  where the database lives (created if missing)\n"
            "  --token-file F              require 'Authorization: Bearer <token in F>';\n"
            "                              without it only loopback peers are accepted\n"
            "  --tls-cert F --tls-key F    serve https with this PEM certificate (chain) and key\n"
            "  --kubeconfig-out F          write a kubeconfig for kubectl (server, token)\n"
            "  --fsync                     fsync every write: survive power loss, not only kill -9\n"
            "  --simulate-workloads[=D]    deployments report ready after D (default 2s)\n"
            "  --watch-history N           events kept for watches to resume from (default 10000)\n"
            "  --bookmark-interval D       BOOKMARK events for allowWatchBookmarks (default 30s)\n"
            "  --log-level L               debug, info, warn, error (default info)\n"
            "  --help\n");
}

static struct mg_loop *g_loop;

static void on_signal(struct mg_loop *loop, int signo, void *data)
{
    mg_log(MG_LOG_INFO, "stopping", "signal", MG_S(signo == SIGINT ? "SIGINT" : "SIGTERM"));
    mg_loop_stop(loop);
}

static int parse_duration_arg(const char *opt, const char *s, uint64_t *ms)
{
    const char *why = NULL;
    /* A bare number is seconds. */
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s && !*end && v < 86400ull * 365) {
        *ms = v * 1000;
        return 0;
    }
    if (mg_duration_parse(s, strlen(s), ms, &why) < 0) {
        fprintf(stderr, "modelgate-apiserver: %s: invalid duration '%s': %s\n", opt, s,
                why ? why : "expected e.g. 500ms, 2s, 1m");
        return -1;
    }
    return 0;
}

/* Thousands of watches need thousands of descriptors. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    enum { O_LISTEN = 1000, O_DATA, O_TOKEN, O_CERT, O_KEY, O_KUBECONFIG, O_SIM, O_HISTORY,
           O_LOGLEVEL, O_BOOKMARK, O_FSYNC, O_HELP };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, O_LISTEN},
        {"data", required_argument, NULL, O_DATA},
        {"token-file", required_argument, NULL, O_TOKEN},
        {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY},
        {"kubeconfig-out", required_argument, NULL, O_KUBECONFIG},
        {"fsync", no_argument, NULL, O_FSYNC},
        {"simulate-workloads", optional_argument, NULL, O_SIM},
        {"watch-history", required_argument, NULL, O_HISTORY},
        {"bookmark-interval", required_argument, NULL, O_BOOKMARK},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    struct as_opts o;
    memset(&o, 0, sizeof o);
    o.simulate_delay_ms = 2000;
    o.bookmark_interval_ms = 30000;
    o.watch_max_ms = 1800000;
    const char *tls_cert = NULL, *tls_key = NULL;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case O_LISTEN: o.listen = optarg; break;
        case O_DATA: o.data_dir = optarg; break;
        case O_TOKEN: o.token_file = optarg; break;
        case O_CERT: tls_cert = optarg; break;
        case O_KEY: tls_key = optarg; break;
        case O_KUBECONFIG: o.kubeconfig_out = optarg; break;
        case O_FSYNC: o.fsync = 1; break;
        case O_SIM:
            o.simulate_workloads = 1;
            if (optarg && parse_duration_arg("--simulate-workloads", optarg, &o.simulate_delay_ms) < 0)
                return 2;
            break;
        case O_HISTORY: {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 10000000) {
                fprintf(stderr, "modelgate-apiserver: --watch-history: expected a count from 1 "
                                "to 10000000, got '%s'\n", optarg);
                return 2;
            }
            o.watch_history = (unsigned)v;
            break;
        }
        case O_BOOKMARK:
            if (parse_duration_arg("--bookmark-interval", optarg, &o.bookmark_interval_ms) < 0)
                return 2;
            if (o.bookmark_interval_ms < 100) {
                fprintf(stderr, "modelgate-apiserver: --bookmark-interval: at least 100ms\n");
                return 2;
            }
            break;
        case O_LOGLEVEL: {
            enum mg_log_level lv;
            if (mg_log_level_parse(optarg, &lv) < 0) {
                fprintf(stderr, "modelgate-apiserver: --log-level: expected debug, info, warn, "
                                "error or off, got '%s'\n", optarg);
                return 2;
            }
            mg_log_set_level(lv);
            break;
        }
        case O_HELP: usage(stdout); return 0;
        default:
            fprintf(stderr, "modelgate-apiserver: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "modelgate-apiserver: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o.listen || !o.data_dir) {
        fprintf(stderr, "modelgate-apiserver: --listen and --data are required\n");
        usage(stderr);
        return 2;
    }
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "modelgate-apiserver: --tls-cert and --tls-key go together\n");
        return 2;
    }
    o.tls_cert = tls_cert;
    o.tls_key = tls_key;

    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    struct as_server srv;
    memset(&srv, 0, sizeof srv);
    int rc = mg_loop_new(&g_loop);
    if (rc < 0) {
        fprintf(stderr, "modelgate-apiserver: cannot create the event loop: %s\n", strerror(-rc));
        return 1;
    }
    srv.loop = g_loop;
    int status = 1;
    const char *err = NULL;
    if ((rc = mg_loop_signal(g_loop, SIGINT, on_signal, NULL)) < 0 ||
        (rc = mg_loop_signal(g_loop, SIGTERM, on_signal, NULL)) < 0) {
        fprintf(stderr, "modelgate-apiserver: cannot watch signals: %s\n", strerror(-rc));
        goto out;
    }
    if ((rc = as_server_start(&srv, &o, &err)) < 0) {
        if (err)
            fprintf(stderr, "modelgate-apiserver: %s\n", err);
        else
            fprintf(stderr, "modelgate-apiserver: cannot start: %s\n", strerror(-rc));
        goto out;
    }
    rc = mg_loop_run(g_loop);
    status = rc < 0 ? 1 : 0;
out:
    as_server_stop(&srv);
    mg_loop_free(g_loop);
    return status;
}
