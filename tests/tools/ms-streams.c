/* ms-streams: opens many streaming completion requests at once against an
 * OpenAI-compatible server (modelsim) and holds them open, to measure what
 * thousands of concurrent streams cost the server. It reads (and discards)
 * everything the server sends, so the server is never blocked by it.
 *
 *   ms-streams --connect 127.0.0.1:PORT --streams 2000 [--hold-ms 2000]
 *              [--timeout-ms 30000] [--pid SERVER_PID] [--path /v1/chat/completions]
 *
 * Once every stream has received its first "data:" line it samples the
 * server's VmRSS (with --pid), holds the streams for --hold-ms, samples
 * again, closes them all and prints one JSON line:
 *
 *   {"streams":2000,"connected":2000,"first_data":2000,"closed_early":0,
 *    "bytes":..., "ms_to_all_first":..., "rss_kb_before":..., "rss_kb_open":...,
 *    "rss_kb_held":...}
 *
 * Exit status 0 when every stream got its first data and none was closed
 * before the end, 1 otherwise, 2 on bad usage. Loopback only, bounded in
 * time by --timeout-ms. */
#define _GNU_SOURCE
#include "lib/loop.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_STREAMS 100000

struct stream {
    struct mg_io io;
    int fd;
    int sent;          /* request bytes written */
    int first;         /* saw "data:" */
    int closed;
    char tail[8];      /* last bytes, to find "data:" across reads */
};

static struct mg_loop *loop;
static struct stream *streams;
static int nstreams, connected, first_data, closed_early;
static unsigned long long total_bytes;
static const char *request;
static size_t request_len;
static struct mg_timer deadline, hold;
static unsigned long hold_ms = 2000;
static long server_pid = -1;
static long rss_before = -1, rss_open = -1, rss_held = -1;
static uint64_t t_start_ns, t_all_first_ns;

static long read_rss_kb(long pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void stream_close(struct stream *s)
{
    if (s->closed)
        return;
    s->closed = 1;
    mg_io_stop(loop, &s->io);
    close(s->fd);
    closed_early++;
}

static void hold_cb(struct mg_loop *l, struct mg_timer *t)
{
    rss_held = read_rss_kb(server_pid);
    mg_loop_stop(l);
}

static void deadline_cb(struct mg_loop *l, struct mg_timer *t)
{
    fprintf(stderr, "ms-streams: timed out: %d of %d streams got data\n", first_data, nstreams);
    mg_loop_stop(l);
}

static void saw_first(struct stream *s)
{
    s->first = 1;
    if (++first_data == nstreams) {
        t_all_first_ns = mg_now_ns();
        rss_open = read_rss_kb(server_pid);
        mg_timer_stop(loop, &deadline);
        mg_timer_start(loop, &hold, hold_ms);
    }
}

static void io_cb(struct mg_loop *l, struct mg_io *io, unsigned events)
{
    struct stream *s = io->data;
    if (events & MG_WRITE) {
        if (s->sent == 0) {
            int err = mg_sock_error(s->fd);
            if (err) {
                stream_close(s);
                return;
            }
            connected++;
        }
        ssize_t n = send(s->fd, request + s->sent, request_len - (size_t)s->sent, MSG_NOSIGNAL);
        if (n == -1 && errno != EAGAIN) {
            stream_close(s);
            return;
        }
        if (n > 0)
            s->sent += (int)n;
        if ((size_t)s->sent == request_len)
            mg_io_set(l, io, MG_READ);
        return;
    }
    if (events & (MG_READ | MG_HUP | MG_ERR)) {
        char buf[16384];
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
            stream_close(s);
            return;
        }
        if (n < 0)
            return;
        total_bytes += (unsigned long long)n;
        if (!s->first) {
            /* Look for "data:" in the previous tail plus this read. */
            char look[sizeof s->tail + 64];
            size_t tl = strnlen(s->tail, sizeof s->tail);
            memcpy(look, s->tail, tl);
            size_t take = (size_t)n < 64 ? (size_t)n : 64;
            memcpy(look + tl, buf, take);
            if (memmem(look, tl + take, "data:", 5) || memmem(buf, (size_t)n, "data:", 5))
                saw_first(s);
            else {
                size_t keep = (size_t)n < 7 ? (size_t)n : 7;
                memset(s->tail, 0, sizeof s->tail);
                memcpy(s->tail, buf + n - (ssize_t)keep, keep);
            }
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: ms-streams --connect HOST:PORT --streams N [--hold-ms MS] "
                    "[--timeout-ms MS] [--pid PID] [--path PATH] [--model NAME]\n");
}

int main(int argc, char **argv)
{
    const char *connect_to = NULL, *path = "/v1/chat/completions", *model = NULL;
    unsigned long timeout_ms = 30000;
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'c'}, {"streams", required_argument, NULL, 'n'},
        {"hold-ms", required_argument, NULL, 'h'}, {"timeout-ms", required_argument, NULL, 't'},
        {"pid", required_argument, NULL, 'p'},     {"path", required_argument, NULL, 'P'},
        {"model", required_argument, NULL, 'm'},   {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': connect_to = optarg; break;
        case 'n': nstreams = atoi(optarg); break;
        case 'h': hold_ms = strtoul(optarg, NULL, 10); break;
        case 't': timeout_ms = strtoul(optarg, NULL, 10); break;
        case 'p': server_pid = strtol(optarg, NULL, 10); break;
        case 'P': path = optarg; break;
        case 'm': model = optarg; break;
        default: usage(); return 2;
        }
    }
    if (!connect_to || nstreams < 1 || nstreams > MAX_STREAMS) {
        usage();
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_storage ss;
    unsigned sslen;
    const char *err = NULL;
    if (mg_resolve_tcp(connect_to, &ss, &sslen, &err) < 0) {
        fprintf(stderr, "ms-streams: %s: %s\n", connect_to, err ? err : "cannot resolve");
        return 2;
    }
    char body[512], req[1024];
    int bl = snprintf(body, sizeof body,
                      "{%s%s%s\"messages\":[{\"role\":\"user\",\"content\":\"hold this stream "
                      "open\"}],\"prompt\":\"hold this stream open\",\"stream\":true}",
                      model ? "\"model\":\"" : "", model ? model : "", model ? "\"," : "");
    int rl2 = snprintf(req, sizeof req,
                       "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %d\r\n\r\n%s", path, connect_to, bl, body);
    request = req;
    request_len = (size_t)rl2;

    if (mg_loop_new(&loop) < 0) {
        fprintf(stderr, "ms-streams: cannot create a loop\n");
        return 1;
    }
    streams = calloc((size_t)nstreams, sizeof *streams);
    if (!streams) {
        fprintf(stderr, "ms-streams: out of memory\n");
        return 1;
    }
    rss_before = read_rss_kb(server_pid);
    t_start_ns = mg_now_ns();
    mg_timer_init(&deadline, deadline_cb, NULL);
    mg_timer_init(&hold, hold_cb, NULL);
    mg_timer_start(loop, &deadline, timeout_ms);
    int started = 0;
    for (int i = 0; i < nstreams; i++) {
        struct stream *s = &streams[i];
        int in_progress = 0;
        int fd = mg_connect_tcp((struct sockaddr *)&ss, sslen, &in_progress);
        if (fd < 0) {
            fprintf(stderr, "ms-streams: connect %d failed: %s\n", i, strerror(-fd));
            s->closed = 1;
            closed_early++;
            continue;
        }
        s->fd = fd;
        mg_io_init(&s->io, io_cb, s);
        if (mg_io_start(loop, &s->io, fd, MG_WRITE) < 0) {
            close(fd);
            s->closed = 1;
            closed_early++;
            continue;
        }
        started++;
    }
    if (started > 0)
        mg_loop_run(loop);
    for (int i = 0; i < nstreams; i++)
        if (!streams[i].closed) {
            mg_io_stop(loop, &streams[i].io);
            close(streams[i].fd);
        }
    double ms_all = t_all_first_ns ? (double)(t_all_first_ns - t_start_ns) / 1e6 : -1;
    printf("{\"streams\":%d,\"connected\":%d,\"first_data\":%d,\"closed_early\":%d,"
           "\"bytes\":%llu,\"ms_to_all_first\":%.1f,\"rss_kb_before\":%ld,\"rss_kb_open\":%ld,"
           "\"rss_kb_held\":%ld}\n",
           nstreams, connected, first_data, closed_early, total_bytes, ms_all, rss_before,
           rss_open, rss_held);
    free(streams);
    mg_loop_free(loop);
    return first_data == nstreams && closed_early == 0 ? 0 : 1;
}
