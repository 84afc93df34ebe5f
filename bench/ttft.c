/* ttft: time to first token and chunk spacing of streamed completions, as a
 * client sees them. wrk measures whole responses; a proxy in front of a
 * model server must instead add nothing to the first token and must not
 * bunch the tokens that follow, which only per-chunk timestamps show.
 *
 *   ttft --connect 127.0.0.1:PORT [--conns 32] [--duration-ms 5000]
 *        [--requests N] [--timeout-ms MS] [--path /v1/chat/completions]
 *        [--body-file F | --model NAME] [--header 'Name: value']...
 *        [--by-header NAME] [--hold-ms MS --pid PID] [--json]
 *
 * It opens --conns keep-alive connections (lib/httpc, one pool) and keeps
 * one POST in flight on each: until --requests have been started, or
 * --duration-ms has passed (whichever comes first; 0 turns a bound off, one
 * of them must be set). Per request it records, on the monotonic clock:
 *   - time to first byte: from just before the request is handed to the
 *     client to the first response body byte (modelsim sends the response
 *     head with the first token, so for a streamed reply this is the time
 *     to first token);
 *   - the gaps between SSE events: the time between the reads that
 *     completed consecutive events (an event ends with an empty line). A
 *     proxy that buffers shows gaps near 0 where the server spaced them
 *     (the share of gaps under 1 ms is reported as "bunched");
 *   - the whole request's duration.
 * Requests still running --timeout-ms after the start are cancelled and
 * counted as errors, so a run is bounded in time whatever the server does.
 *
 * --by-header NAME counts responses per value of a response header (e.g.
 * x-modelgate-version), with the time to first byte of each. --hold-ms keeps the connections open and idle after
 * the last request (they sit in the client's pool) and then samples VmRSS
 * and VmHWM of --pid: the memory a server spends on idle keep-alive clients.
 * --open-only instead opens --conns connections that send nothing, holds
 * them --hold-ms and samples --pid: the cost of a connection as such.
 *
 * Output: a summary for people, or one JSON line with --json (flat keys,
 * times in ms; -1 where there was no sample). Exit status 0 when every request got a 2xx answer, 1 when
 * some did not (non-2xx, reset, timeout) or none completed, 2 on bad usage
 * or setup failure. */
#define _GNU_SOURCE
#include "lib/httpc.h"
#include "lib/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TT_MAX_CONNS 20000
#define TT_MAX_HEADERS 16
#define TT_MAX_BODY ((size_t)1 << 20)
#define TT_MAX_SAMPLES ((size_t)1 << 22)   /* per series: 16 MiB of uint32 */
#define TT_MAX_VALUES 16                   /* distinct --by-header values */
#define TT_MAX_VALUE_LEN 64
/* Events closer than this arrived in one burst: a server spacing tokens
 * apart never sends them that close, a buffering proxy does. */
#define TT_BUNCHED_NS 1000000u

/* One series of samples in microseconds, grown on demand up to a cap:
 * past it samples are counted, not kept (the percentiles then cover the
 * first TT_MAX_SAMPLES, which a bounded run does not reach). */
struct tt_series {
    uint32_t *v;
    size_t n, cap;
    uint64_t dropped;
};

struct tt_slot {
    struct mg_httpc_req req;
    uint64_t t_send;        /* ns */
    uint64_t t_event;       /* ns, end of the previous SSE event; 0: none yet */
    int status;
    int got_body;
    int after_nl;           /* the last byte (CR aside) was a newline */
    int value;              /* --by-header value index, -1 none */
    int active;
};

static struct mg_loop *loop;
static struct mg_httpc *client;
static struct mg_httpc_endpoint *endpoint;
static struct tt_slot *slots;
static unsigned nconns = 32;
static uint64_t max_requests;       /* 0: no bound */
static uint64_t duration_ms = 5000; /* 0: no bound */
static uint64_t hold_ms;
static long server_pid = -1;
static const char *path = "/v1/chat/completions";
static struct mg_h1_header headers[TT_MAX_HEADERS + 1];
static unsigned nheaders;
static const char *by_header;
static size_t by_header_len;
static char *body;
static size_t body_len;

static uint64_t t_start, t_end;
static int stopping;                /* no new requests */
static unsigned active;
static uint64_t started, ok, non2xx, errors, events, oom;
static uint64_t gaps_bunched;       /* gaps under TT_BUNCHED_NS */
static long rss_kb = -1, hwm_kb = -1;
static struct tt_series s_ttfb, s_gap, s_dur;
static char values[TT_MAX_VALUES][TT_MAX_VALUE_LEN + 1];
static uint64_t value_count[TT_MAX_VALUES + 1];   /* the last one: other values */
static struct tt_series s_ttfb_by[TT_MAX_VALUES + 1];
static unsigned nvalues;
static struct mg_timer t_duration, t_timeout, t_hold;

static void series_add(struct tt_series *s, uint64_t ns)
{
    uint64_t us = ns / 1000;
    if (us > UINT32_MAX)
        us = UINT32_MAX;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        if (s->cap >= TT_MAX_SAMPLES) {
            s->dropped++;
            return;
        }
        if (cap > TT_MAX_SAMPLES)
            cap = TT_MAX_SAMPLES;
        uint32_t *v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            oom++;
            s->dropped++;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted series, in ms; -1 when empty. */
static double series_pct(const struct tt_series *s, double q)
{
    if (s->n == 0)
        return -1;
    size_t rank = (size_t)(q * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1] / 1000.0;
}

static long proc_status_kb(long pid, const char *key)
{
    if (pid <= 0)
        return -1;
    char file[64], line[256];
    size_t klen = strlen(key);
    snprintf(file, sizeof file, "/proc/%ld/status", pid);
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void start_next(struct tt_slot *s);

static void maybe_finish(void)
{
    if (!stopping || active > 0)
        return;
    if (!t_end)
        t_end = mg_now_ns();
    mg_timer_stop(loop, &t_duration);
    if (hold_ms > 0 && !mg_timer_armed(&t_hold)) {
        mg_timer_start(loop, &t_hold, hold_ms);
        return;
    }
    if (hold_ms == 0)
        mg_loop_stop(loop);
}

static void request_ended(struct tt_slot *s)
{
    s->active = 0;
    active--;
    if (max_requests && started >= max_requests)
        stopping = 1;
    if (!stopping)
        start_next(s);
    maybe_finish();
}

static void on_head(struct mg_httpc_req *req, const struct mg_h1_msg *msg)
{
    struct tt_slot *s = req->data;
    s->status = msg->status;
    if (!by_header)
        return;
    for (unsigned i = 0; i < msg->nheaders; i++) {
        const struct mg_h1_header *h = &msg->headers[i];
        if (h->name_len != by_header_len || strncasecmp(h->name, by_header, by_header_len) != 0)
            continue;
        size_t vl = h->value_len > TT_MAX_VALUE_LEN ? TT_MAX_VALUE_LEN : h->value_len;
        for (unsigned k = 0; k < nvalues; k++)
            if (strlen(values[k]) == vl && memcmp(values[k], h->value, vl) == 0) {
                s->value = (int)k;
                return;
            }
        if (nvalues < TT_MAX_VALUES) {
            /* Kept printable and JSON-safe: anything unusual becomes '_'. */
            for (size_t k = 0; k < vl; k++) {
                char ch = h->value[k];
                int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                            (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' ||
                            ch == ':' || ch == '/';
                values[nvalues][k] = plain ? ch : '_';
            }
            values[nvalues][vl] = '\0';
            s->value = (int)nvalues++;
        } else {
            s->value = TT_MAX_VALUES;
        }
        return;
    }
}

static void on_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct tt_slot *s = req->data;
    if (s->status < 200 || s->status > 299 || n == 0)
        return;
    uint64_t now = mg_now_ns();
    if (!s->got_body) {
        s->got_body = 1;
        series_add(&s_ttfb, now - s->t_send);
        if (s->value >= 0)
            series_add(&s_ttfb_by[s->value], now - s->t_send);
    }
    /* Every event that ends in this read ends now. */
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\r')
            continue;
        if (p[i] != '\n') {
            s->after_nl = 0;
            continue;
        }
        if (s->after_nl) {
            events++;
            if (s->t_event) {
                series_add(&s_gap, now - s->t_event);
                if (now - s->t_event < TT_BUNCHED_NS)
                    gaps_bunched++;
            }
            s->t_event = now;
            s->after_nl = 0;
        } else {
            s->after_nl = 1;
        }
    }
}

static void on_done(struct mg_httpc_req *req)
{
    struct tt_slot *s = req->data;
    if (s->status >= 200 && s->status <= 299) {
        ok++;
        series_add(&s_dur, mg_now_ns() - s->t_send);
    } else {
        non2xx++;
    }
    if (s->value >= 0)
        value_count[s->value]++;
    request_ended(s);
}

static void on_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    struct tt_slot *s = req->data;
    if (errors < 5)
        fprintf(stderr, "ttft: request failed: %s%s%s\n", mg_httpc_strerror(kind),
                err ? ": " : "", err ? strerror(err) : "");
    errors++;
    /* A server that refuses everything would make this spin until the
     * duration ends: give up early instead. */
    if (errors >= 1000 && errors > ok) {
        if (!stopping)
            fprintf(stderr, "ttft: %" PRIu64 " requests failed; stopping\n", errors);
        stopping = 1;
    }
    request_ended(s);
}

static void start_next(struct tt_slot *s)
{
    memset(&s->req, 0, sizeof s->req);
    s->req.method = "POST";
    s->req.target = path;
    s->req.headers = headers;
    s->req.nheaders = nheaders;
    s->req.body = body;
    s->req.body_len = body_len;
    s->req.on_head = on_head;
    s->req.on_body = on_body;
    s->req.on_done = on_done;
    s->req.on_error = on_error;
    s->req.data = s;
    s->t_event = 0;
    s->status = 0;
    s->got_body = 0;
    s->after_nl = 0;
    s->value = -1;
    s->t_send = mg_now_ns();
    int rc = mg_httpc_send(client, endpoint, &s->req);
    if (rc < 0) {
        if (errors < 5)
            fprintf(stderr, "ttft: cannot send a request: %s\n", strerror(-rc));
        errors++;
        /* A refused send would fail again at once: stop starting new ones
         * rather than spin. */
        stopping = 1;
        return;
    }
    s->active = 1;
    active++;
    started++;
}

static void duration_cb(struct mg_loop *l, struct mg_timer *t)
{
    stopping = 1;
    maybe_finish();
}

static void timeout_cb(struct mg_loop *l, struct mg_timer *t)
{
    if (active > 0)
        fprintf(stderr, "ttft: timed out with %u requests in flight; cancelled\n", active);
    for (unsigned i = 0; i < nconns; i++)
        if (slots[i].active) {
            mg_httpc_cancel(&slots[i].req);
            slots[i].active = 0;
            errors++;
        }
    active = 0;
    stopping = 1;
    if (!t_end)
        t_end = mg_now_ns();
    mg_timer_stop(l, &t_hold);
    mg_loop_stop(l);
}

static void hold_cb(struct mg_loop *l, struct mg_timer *t)
{
    rss_kb = proc_status_kb(server_pid, "VmRSS");
    hwm_kb = proc_status_kb(server_pid, "VmHWM");
    mg_loop_stop(l);
}

static int read_body_file(const char *file)
{
    int rc = 0;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        fprintf(stderr, "ttft: %s: %s\n", file, strerror(errno));
        return -errno;
    }
    body = malloc(TT_MAX_BODY + 1);
    if (!body) {
        rc = -ENOMEM;
        goto out;
    }
    body_len = 0;
    for (;;) {
        ssize_t n = read(fd, body + body_len, TT_MAX_BODY + 1 - body_len);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            fprintf(stderr, "ttft: %s: %s\n", file, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        body_len += (size_t)n;
        if (body_len > TT_MAX_BODY) {
            fprintf(stderr, "ttft: %s: larger than %zu bytes\n", file, TT_MAX_BODY);
            rc = -EFBIG;
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

static int parse_u64(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > max) {
        fprintf(stderr, "ttft: --%s: expected an integer 0..%" PRIu64 ", got '%s'\n", opt, max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int add_header(const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || nheaders >= TT_MAX_HEADERS) {
        fprintf(stderr, "ttft: --header: expected 'Name: value' (at most %d), got '%s'\n",
                TT_MAX_HEADERS, arg);
        return -EINVAL;
    }
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    headers[nheaders].name = arg;
    headers[nheaders].name_len = (uint32_t)(colon - arg);
    headers[nheaders].value = v;
    headers[nheaders].value_len = (uint32_t)strlen(v);
    nheaders++;
    return 0;
}

/* --open-only: connections that never send, held open while --pid is
 * sampled. 0, or 1 when some did not connect. */
static int run_open_only(const char *connect_to, int json)
{
    struct sockaddr_storage ss;
    unsigned sslen;
    const char *err = NULL;
    if (mg_resolve_tcp(connect_to, &ss, &sslen, &err) < 0) {
        fprintf(stderr, "ttft: %s: %s\n", connect_to, err ? err : "cannot resolve");
        return 2;
    }
    int *fds = calloc(nconns, sizeof *fds);
    if (!fds) {
        fprintf(stderr, "ttft: out of memory\n");
        return 2;
    }
    unsigned opened = 0;
    for (unsigned i = 0; i < nconns; i++) {
        int in_progress = 0;
        fds[i] = mg_connect_tcp((struct sockaddr *)&ss, sslen, &in_progress);
        if (fds[i] < 0) {
            fprintf(stderr, "ttft: connect %u: %s\n", i, strerror(-fds[i]));
            continue;
        }
        if (in_progress) {
            struct pollfd pfd = {.fd = fds[i], .events = POLLOUT};
            if (poll(&pfd, 1, 2000) != 1 || mg_sock_error(fds[i]) != 0) {
                fprintf(stderr, "ttft: connect %u did not complete\n", i);
                close(fds[i]);
                fds[i] = -1;
                continue;
            }
        }
        opened++;
    }
    /* Let the server accept and register them all, then look. */
    struct timespec ts = {.tv_sec = (time_t)(hold_ms / 1000), .tv_nsec = (long)(hold_ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
    rss_kb = proc_status_kb(server_pid, "VmRSS");
    hwm_kb = proc_status_kb(server_pid, "VmHWM");
    if (json)
        printf("{\"conns\":%u,\"opened\":%u,\"rss_kb\":%ld,\"hwm_kb\":%ld}\n", nconns, opened,
               rss_kb, hwm_kb);
    else
        printf("%u of %u connections open and silent for %" PRIu64 " ms; pid %ld: VmRSS %ld KiB, "
               "VmHWM %ld KiB\n", opened, nconns, hold_ms, server_pid, rss_kb, hwm_kb);
    for (unsigned i = 0; i < nconns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return opened == nconns ? 0 : 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ttft --connect HOST:PORT [--conns N] [--duration-ms MS] [--requests N]\n"
            "            [--timeout-ms MS] [--path PATH] [--body-file F | --model NAME]\n"
            "            [--header 'Name: value']... [--by-header NAME]\n"
            "            [--hold-ms MS --pid PID] [--open-only] [--json]\n");
}

static void print_results(int json)
{
    double secs = (double)(t_end - t_start) / 1e9;
    double rps = secs > 0 ? (double)(ok + non2xx) / secs : 0;
    uint64_t conns_opened = 0, reused = 0;
    struct mg_httpc_stats st;
    mg_httpc_get_stats(client, &st);
    conns_opened = st.created;
    reused = st.reused;
    double epr = ok ? (double)events / (double)ok : 0;
    uint64_t ngaps = s_gap.n + s_gap.dropped;
    double bunched_pct = ngaps ? 100.0 * (double)gaps_bunched / (double)ngaps : 0;
    if (json) {
        printf("{\"requests\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"non2xx\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"conns\":%u,\"conns_opened\":%" PRIu64
               ",\"reused\":%" PRIu64 ",\"seconds\":%.3f,\"rps\":%.1f",
               ok + non2xx + errors, ok, non2xx, errors, nconns, conns_opened, reused, secs, rps);
        printf(",\"ttft_p50_ms\":%.3f,\"ttft_p90_ms\":%.3f,\"ttft_p99_ms\":%.3f,\"ttft_max_ms\":%.3f",
               series_pct(&s_ttfb, 0.50), series_pct(&s_ttfb, 0.90), series_pct(&s_ttfb, 0.99),
               series_pct(&s_ttfb, 1.0));
        printf(",\"gap_p10_ms\":%.3f,\"gap_p50_ms\":%.3f,\"gap_p90_ms\":%.3f,\"gap_p99_ms\":%.3f"
               ",\"gap_max_ms\":%.3f,\"gaps\":%zu,\"gaps_under_1ms_pct\":%.2f"
               ",\"events_per_request\":%.2f",
               series_pct(&s_gap, 0.10), series_pct(&s_gap, 0.50), series_pct(&s_gap, 0.90),
               series_pct(&s_gap, 0.99), series_pct(&s_gap, 1.0), s_gap.n, bunched_pct, epr);
        printf(",\"dur_p50_ms\":%.3f,\"dur_p99_ms\":%.3f,\"rss_kb\":%ld,\"hwm_kb\":%ld",
               series_pct(&s_dur, 0.50), series_pct(&s_dur, 0.99), rss_kb, hwm_kb);
        if (by_header) {
            printf(",\"by_header\":{");
            for (unsigned k = 0; k <= TT_MAX_VALUES; k++) {
                if (k == nvalues && k < TT_MAX_VALUES)
                    k = TT_MAX_VALUES;
                if (k == TT_MAX_VALUES && !value_count[k])
                    break;
                printf("%s\"%s\":{\"responses\":%" PRIu64 ",\"ttft_p50_ms\":%.3f,"
                       "\"ttft_p99_ms\":%.3f}",
                       k ? "," : "", k < TT_MAX_VALUES ? values[k] : "(other)", value_count[k],
                       series_pct(&s_ttfb_by[k], 0.50), series_pct(&s_ttfb_by[k], 0.99));
            }
            printf("}");
        }
        printf("}\n");
        return;
    }
    printf("%" PRIu64 " requests in %.2f s (%.1f/s) on %u connections (%" PRIu64
           " opened): %" PRIu64 " ok, %" PRIu64 " non-2xx, %" PRIu64 " failed\n",
           ok + non2xx + errors, secs, rps, nconns, conns_opened, ok, non2xx, errors);
    if (s_ttfb.n)
        printf("time to first byte   p50 %8.3f ms  p90 %8.3f ms  p99 %8.3f ms  max %8.3f ms\n",
               series_pct(&s_ttfb, 0.50), series_pct(&s_ttfb, 0.90), series_pct(&s_ttfb, 0.99),
               series_pct(&s_ttfb, 1.0));
    if (s_gap.n)
        printf("gap between events   p10 %8.3f ms  p50 %8.3f ms  p90 %8.3f ms  p99 %8.3f ms"
               "\n                     %zu gaps, %.1f%% under 1 ms (bunched); %.1f events per request\n",
               series_pct(&s_gap, 0.10), series_pct(&s_gap, 0.50), series_pct(&s_gap, 0.90),
               series_pct(&s_gap, 0.99), s_gap.n, bunched_pct, epr);
    if (s_dur.n)
        printf("request duration     p50 %8.3f ms  p99 %8.3f ms\n", series_pct(&s_dur, 0.50),
               series_pct(&s_dur, 0.99));
    if (rss_kb >= 0)
        printf("pid %ld after %" PRIu64 " ms with %u idle connections: VmRSS %ld KiB, VmHWM %ld KiB\n",
               server_pid, hold_ms, nconns, rss_kb, hwm_kb);
    if (by_header) {
        printf("by %s:\n", by_header);
        for (unsigned k = 0; k <= TT_MAX_VALUES; k++) {
            if (k == nvalues && k < TT_MAX_VALUES)
                k = TT_MAX_VALUES;
            if (k == TT_MAX_VALUES && !value_count[k])
                break;
            printf("  %-16s %8" PRIu64 " responses", k < TT_MAX_VALUES ? values[k] : "(other)",
                   value_count[k]);
            if (s_ttfb_by[k].n)
                printf(", time to first byte p50 %8.3f ms  p99 %8.3f ms",
                       series_pct(&s_ttfb_by[k], 0.50), series_pct(&s_ttfb_by[k], 0.99));
            printf("\n");
        }
    }
    if (s_ttfb.dropped || s_gap.dropped || s_dur.dropped)
        printf("(samples past %zu per series were counted but not kept)\n", TT_MAX_SAMPLES);
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *body_file = NULL, *model = "llama-3-8b-instruct";
    uint64_t timeout_ms = 0, v;
    int json = 0, open_only = 0, rc = 2;
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'c'},   {"conns", required_argument, NULL, 'n'},
        {"duration-ms", required_argument, NULL, 'd'}, {"requests", required_argument, NULL, 'r'},
        {"timeout-ms", required_argument, NULL, 't'}, {"path", required_argument, NULL, 'P'},
        {"body-file", required_argument, NULL, 'b'}, {"model", required_argument, NULL, 'm'},
        {"header", required_argument, NULL, 'H'},    {"by-header", required_argument, NULL, 'B'},
        {"hold-ms", required_argument, NULL, 'h'},   {"pid", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},            {"help", no_argument, NULL, '?'},
        {"open-only", no_argument, NULL, 'O'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': connect_to = optarg; break;
        case 'n':
            if (parse_u64("conns", optarg, TT_MAX_CONNS, &v) < 0 || v == 0) {
                fprintf(stderr, "ttft: --conns: expected 1..%d\n", TT_MAX_CONNS);
                return 2;
            }
            nconns = (unsigned)v;
            break;
        case 'd': if (parse_u64("duration-ms", optarg, 86400000, &duration_ms) < 0) return 2; break;
        case 'r': if (parse_u64("requests", optarg, UINT32_MAX, &max_requests) < 0) return 2; break;
        case 't': if (parse_u64("timeout-ms", optarg, 86400000, &timeout_ms) < 0) return 2; break;
        case 'h': if (parse_u64("hold-ms", optarg, 3600000, &hold_ms) < 0) return 2; break;
        case 'p':
            if (parse_u64("pid", optarg, INT_MAX, &v) < 0 || v == 0)
                return 2;
            server_pid = (long)v;
            break;
        case 'P': path = optarg; break;
        case 'b': body_file = optarg; break;
        case 'm': model = optarg; break;
        case 'H': if (add_header(optarg) < 0) return 2; break;
        case 'B':
            by_header = optarg;
            by_header_len = strlen(optarg);
            break;
        case 'j': json = 1; break;
        case 'O': open_only = 1; break;
        default: usage(); return 2;
        }
    }
    if (optind < argc || !connect_to) {
        usage();
        return 2;
    }
    if (open_only) {
        struct rlimit orl;
        if (getrlimit(RLIMIT_NOFILE, &orl) == 0 && orl.rlim_cur < orl.rlim_max) {
            orl.rlim_cur = orl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &orl);
        }
        return run_open_only(connect_to, json);
    }
    if (duration_ms == 0 && max_requests == 0) {
        fprintf(stderr, "ttft: set --duration-ms or --requests (a run must be bounded)\n");
        return 2;
    }
    if (timeout_ms == 0)
        timeout_ms = (duration_ms ? duration_ms : 60000) + 30000;
    if (body_file) {
        if (read_body_file(body_file) < 0)
            return 2;
    } else {
        if (strpbrk(model, "\"\\") || strlen(model) > 256) {
            fprintf(stderr, "ttft: --model: a plain name of at most 256 characters, please\n");
            return 2;
        }
        body = malloc(1024);
        if (!body)
            return 2;
        int bl = snprintf(body, 1024,
                          "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                          "\"content\":\"How long until the first token?\"}]}",
                          model);
        body_len = (size_t)bl;
    }
    headers[nheaders].name = "Content-Type";
    headers[nheaders].name_len = 12;
    headers[nheaders].value = "application/json";
    headers[nheaders].value_len = 16;
    nheaders++;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    slots = calloc(nconns, sizeof *slots);
    if (!slots) {
        fprintf(stderr, "ttft: out of memory\n");
        goto out;
    }
    if (mg_loop_new(&loop) < 0) {
        fprintf(stderr, "ttft: cannot create an event loop\n");
        goto out;
    }
    struct mg_httpc_config cfg;
    mg_httpc_config_default(&cfg);
    cfg.max_idle_per_endpoint = nconns;
    cfg.idle_timeout_ms = (uint32_t)(hold_ms + 60000);
    cfg.read_timeout_ms = 30000;
    if (mg_httpc_new(loop, &cfg, &client) < 0) {
        fprintf(stderr, "ttft: cannot create the HTTP client\n");
        goto out;
    }
    const char *err = NULL;
    int erc = mg_httpc_endpoint(client, connect_to, &endpoint, &err);
    if (erc < 0) {
        fprintf(stderr, "ttft: %s: %s\n", connect_to, err ? err : strerror(-erc));
        goto out;
    }
    mg_timer_init(&t_duration, duration_cb, NULL);
    mg_timer_init(&t_timeout, timeout_cb, NULL);
    mg_timer_init(&t_hold, hold_cb, NULL);
    mg_loop_update_time(loop);
    if (duration_ms)
        mg_timer_start(loop, &t_duration, duration_ms);
    mg_timer_start(loop, &t_timeout, timeout_ms + hold_ms);
    t_start = mg_now_ns();
    for (unsigned i = 0; i < nconns && !stopping; i++) {
        if (max_requests && started >= max_requests)
            break;
        start_next(&slots[i]);
    }
    if (max_requests && started >= max_requests)
        stopping = 1;
    if (active > 0)
        mg_loop_run(loop);
    if (!t_end)
        t_end = mg_now_ns();

    struct tt_series *all[] = {&s_ttfb, &s_gap, &s_dur};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->n > 0)
            qsort(all[i]->v, all[i]->n, sizeof *all[i]->v, cmp_u32);
    for (size_t i = 0; i <= TT_MAX_VALUES; i++)
        if (s_ttfb_by[i].n > 0)
            qsort(s_ttfb_by[i].v, s_ttfb_by[i].n, sizeof *s_ttfb_by[i].v, cmp_u32);
    print_results(json);
    if (oom)
        fprintf(stderr, "ttft: out of memory for %" PRIu64 " samples\n", oom);
    rc = (ok > 0 && non2xx == 0 && errors == 0) ? 0 : 1;
out:
    if (client)
        mg_httpc_free(client);
    if (loop)
        mg_loop_free(loop);
    free(slots);
    free(body);
    free(s_ttfb.v);
    for (size_t i = 0; i <= TT_MAX_VALUES; i++)
        free(s_ttfb_by[i].v);
    free(s_gap.v);
    free(s_dur.v);
    return rc;
}
