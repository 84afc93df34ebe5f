/* Unit tests for lib/httpd.c, in one process on one loop, with raw client
 * sockets: the response API's errors, on_end reasons (done, client gone,
 * half-close), HEAD and HTTP/1.0 framing, pipelining with asynchronous
 * handlers, 413 before 100-continue, and accept() running out of file
 * descriptors without spinning. */
#define _GNU_SOURCE
#include "lib/httpd.h"
#include "lib/loop.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct mg_loop *loop;
static struct mg_httpd *srv;

/* What the handler saw, in order. */
static char events[256];
static size_t nevents;
static enum mg_httpd_end last_end = (enum mg_httpd_end)-1;
static int api_results[8];

static void ev(char c)
{
    if (nevents + 1 < sizeof events)
        events[nevents++] = c;
    events[nevents] = '\0';
}

static void on_end(struct mg_httpd_req *req, enum mg_httpd_end reason)
{
    last_end = reason;
    ev('E');
    struct mg_timer *t = mg_httpd_req_data(req);
    if (t) {
        mg_timer_stop(loop, t);
        free(t);
    }
}

static void delayed_cb(struct mg_loop *l, struct mg_timer *t)
{
    struct mg_httpd_req *req = t->data;
    ev('R');
    mg_httpd_respond(req, 200, NULL, 0, "late", 4);
}

/* Takes one span of the body, pauses, answers: the rest is discarded. */
static void readpart_body(struct mg_httpd_req *req, const char *p, size_t n, int last)
{
    mg_httpd_pause_body(req);
    mg_httpd_respond(req, 200, NULL, 0, "part", 4);
}

static char peer[64];
static int peer_len;

static void on_request(struct mg_httpd_req *req, void *data)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(req);
    mg_httpd_on_end(req, on_end);
    peer_len = mg_httpd_req_peer(req, peer, sizeof peer);
#define IS(p) (m->target_len == strlen(p) && memcmp(m->target, p, strlen(p)) == 0)
    if (IS("/api")) {
        ev('a');
        api_results[0] = mg_httpd_write(req, "x", 1);            /* not started */
        api_results[1] = mg_httpd_start(req, 200, NULL, 0, 3);
        api_results[2] = mg_httpd_write(req, "abcd", 4);         /* past the length */
        api_results[3] = mg_httpd_end(req);                      /* short */
        api_results[4] = mg_httpd_respond(req, 200, NULL, 0, NULL, 0);
        api_results[5] = mg_httpd_write(req, "abc", 3);
        api_results[6] = mg_httpd_end(req);
        api_results[7] = mg_httpd_started(req);
    } else if (IS("/delay")) {
        ev('d');
        struct mg_timer *t = malloc(sizeof *t);
        mg_timer_init(t, delayed_cb, req);
        mg_httpd_req_set_data(req, t);
        mg_timer_start(loop, t, 100);
    } else if (IS("/stream")) {
        ev('s');
        struct mg_h1_header h[] = {MG_HTTPD_HDR("X-Test", "1")};
        mg_httpd_start(req, 200, h, 1, -1);
        CHECK_EQ_INT(mg_httpd_write(req, "chunk-one", 9), 0);
        mg_httpd_end(req);
    } else if (IS("/flood")) {
        /* Writes until told to wait; on_writable never set: the client
         * does not read, so only the write timeout ends this. */
        ev('f');
        static char blob[65536];
        mg_httpd_start(req, 200, NULL, 0, -1);
        for (int i = 0; i < 1000 && mg_httpd_write(req, blob, sizeof blob) == 0; i++)
            ;
    } else if (IS("/collect")) {
        ev('c');
        mg_httpd_collect_body(req, 10, NULL);
    } else if (IS("/collect-then-on-end")) {
        /* Sets on_end after asking for the body (refused: too large). */
        ev('c');
        mg_httpd_on_end(req, NULL);
        mg_httpd_collect_body(req, 10, NULL);
        mg_httpd_on_end(req, on_end);
    } else if (IS("/start-retry")) {
        /* A streamed start refused (a header value with CR LF), then a
         * start with a Content-Length. */
        ev('t');
        struct mg_h1_header bad[] = {MG_HTTPD_HDR("X-Bad", "a\r\nb")};
        api_results[0] = mg_httpd_start(req, 200, bad, 1, -1);
        api_results[1] = mg_httpd_start(req, 200, NULL, 0, 5);
        api_results[2] = mg_httpd_write(req, "hello", 5);
        api_results[3] = mg_httpd_end(req);
    } else if (IS("/readpart")) {
        ev('p');
        mg_httpd_read_body(req, readpart_body);
    } else if (IS("/respond-collect")) {
        /* Answers, then asks for a body larger than it accepts. */
        ev('r');
        mg_httpd_respond(req, 200, NULL, 0, "now", 3);
        api_results[0] = mg_httpd_collect_body(req, 10, NULL);
    } else {
        ev('i');
        mg_httpd_respond(req, 200, NULL, 0, "now", 3);
    }
#undef IS
}

static uint32_t write_timeout_ms;
static mg_httpd_error_body_cb error_body;

static void start(int half_close_aborts)
{
    struct mg_httpd_config cfg;
    mg_httpd_config_default(&cfg);
    if (write_timeout_ms)
        cfg.write_timeout_ms = write_timeout_ms;
    cfg.listen = "127.0.0.1:0";
    cfg.reuseport = 0;
    cfg.on_request = on_request;
    cfg.half_close_aborts = half_close_aborts;
    cfg.error_body = error_body;
    const char *err;
    if (mg_httpd_new(loop, &cfg, &srv, &err) < 0) {
        printf("# %s\n", err);
        exit(1);
    }
    nevents = 0;
    events[0] = '\0';
    last_end = (enum mg_httpd_end)-1;
}

static int client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)mg_httpd_port(srv)),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) == -1)
        exit(1);
    return fd;
}

static void say(int fd, const char *s)
{
    if (send(fd, s, strlen(s), MSG_NOSIGNAL) != (ssize_t)strlen(s))
        exit(1);
}

/* Runs the loop and collects what fd receives until want appears count
 * times, the peer closes (returns 1 then), or ms pass. */
static int collect(int fd, char *buf, size_t cap, const char *want, int count, int ms)
{
    size_t len = strlen(buf);
    uint64_t end = mg_now_ns() / 1000000u + (uint64_t)ms;
    while (mg_now_ns() / 1000000u < end) {
        mg_loop_run_once(loop, 5);
        ssize_t n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
        if (n == 0)
            return 1;
        if (n > 0) {
            len += (size_t)n;
            buf[len] = '\0';
        }
        if (want) {
            int c = 0;
            for (const char *p = buf; (p = strstr(p, want)) != NULL; p++)
                c++;
            if (c >= count)
                return 0;
        }
    }
    return 0;
}

static void t_response_api_errors(void)
{
    start(1);
    int fd = client();
    say(fd, "GET /api HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[4096] = "";
    collect(fd, buf, sizeof buf, "abc", 1, 1000);
    CHECK_EQ_INT(api_results[0], -EINVAL);
    CHECK_EQ_INT(api_results[1], 0);
    CHECK_EQ_INT(api_results[2], -EINVAL);
    CHECK_EQ_INT(api_results[3], -EINVAL);
    CHECK_EQ_INT(api_results[4], -EALREADY);
    CHECK_EQ_INT(api_results[5], 0);
    CHECK_EQ_INT(api_results[6], 0);
    CHECK_EQ_INT(api_results[7], 1);
    CHECK_EQ_INT(peer_len, 9);
    CHECK_EQ_STR(peer, "127.0.0.1");
    CHECK(strstr(buf, "Content-Length: 3\r\n") != NULL);
    CHECK(strstr(buf, "\r\n\r\nabc") != NULL);
    for (int i = 0; i < 5 && last_end != MG_HTTPD_END_OK; i++)
        mg_loop_run_once(loop, 10);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_OK);
    close(fd);
    mg_httpd_free(srv);
}

static void t_pipelined_async_in_order(void)
{
    start(1);
    int fd = client();
    /* The second request is not given to the handler until the first
     * (answered 100 ms later) has been answered. */
    say(fd, "GET /delay HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[4096] = "";
    collect(fd, buf, sizeof buf, "HTTP/1.1 200", 2, 2000);
    CHECK_EQ_STR(events, "dREiE");
    char *late = strstr(buf, "late"), *now = strstr(buf, "now");
    CHECK(late && now && late < now);
    close(fd);
    mg_httpd_free(srv);
}

static void t_client_gone_and_half_close(void)
{
    /* The client closes while its response is pending: CLIENT_GONE. */
    start(1);
    int fd = client();
    say(fd, "GET /delay HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 10 && nevents == 0; i++)
        mg_loop_run_once(loop, 10);
    close(fd);
    for (int i = 0; i < 20 && last_end == (enum mg_httpd_end)-1; i++)
        mg_loop_run_once(loop, 10);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_CLIENT_GONE);
    CHECK_EQ_STR(events, "dE");   /* the timer was stopped by on_end: no R */
    for (int i = 0; i < 15; i++)
        mg_loop_run_once(loop, 10);
    CHECK_EQ_STR(events, "dE");

    /* Half-close (FIN after the request): by default the same. */
    nevents = 0;
    last_end = (enum mg_httpd_end)-1;
    fd = client();
    say(fd, "GET /delay HTTP/1.1\r\nHost: t\r\n\r\n");
    shutdown(fd, SHUT_WR);
    char buf[4096] = "";
    int closed = collect(fd, buf, sizeof buf, NULL, 0, 500);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_CLIENT_GONE);
    CHECK_EQ_INT(closed, 1);
    CHECK(strstr(buf, "late") == NULL);
    close(fd);
    mg_httpd_free(srv);

    /* With half_close_aborts off the response still comes, then a close. */
    start(0);
    fd = client();
    say(fd, "GET /delay HTTP/1.1\r\nHost: t\r\n\r\n");
    shutdown(fd, SHUT_WR);
    buf[0] = '\0';
    closed = collect(fd, buf, sizeof buf, NULL, 0, 1000);
    CHECK_EQ_INT(closed, 1);
    CHECK(strstr(buf, "late") != NULL);
    CHECK(strstr(buf, "Connection: close") != NULL);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_OK);
    close(fd);

    /* The same with a whole body the handler has not read when the FIN
     * comes: the request was complete, so it is still served. */
    nevents = 0;
    last_end = (enum mg_httpd_end)-1;
    fd = client();
    say(fd, "POST /delay HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    shutdown(fd, SHUT_WR);
    buf[0] = '\0';
    closed = collect(fd, buf, sizeof buf, NULL, 0, 1000);
    CHECK_EQ_INT(closed, 1);
    CHECK(strstr(buf, "late") != NULL);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_OK);
    close(fd);
    mg_httpd_free(srv);
}

static void t_head_and_http10_framing(void)
{
    start(1);
    int fd = client();
    /* HEAD of a chunked stream: the head says chunked, no chunk follows,
     * and the next response comes right after. */
    say(fd, "HEAD /stream HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[4096] = "";
    collect(fd, buf, sizeof buf, "now", 1, 1000);
    CHECK(strstr(buf, "Transfer-Encoding: chunked\r\n") != NULL);
    CHECK(strstr(buf, "X-Test: 1\r\n") != NULL);
    CHECK(strstr(buf, "chunk-one") == NULL);
    char *second = strstr(buf, "\r\n\r\nHTTP/1.1 200");
    CHECK(second != NULL);
    close(fd);

    /* HTTP/1.0: a streamed response is delimited by the close. */
    fd = client();
    say(fd, "GET /stream HTTP/1.0\r\n\r\n");
    buf[0] = '\0';
    int closed = collect(fd, buf, sizeof buf, NULL, 0, 1000);
    CHECK_EQ_INT(closed, 1);
    CHECK(strstr(buf, "Transfer-Encoding") == NULL);
    CHECK(strstr(buf, "Connection: close\r\n") != NULL);
    CHECK(strstr(buf, "\r\n\r\nchunk-one") != NULL);
    close(fd);

    /* HTTP/1.0 keep-alive is answered in kind. */
    fd = client();
    say(fd, "GET /now HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    buf[0] = '\0';
    collect(fd, buf, sizeof buf, "now", 1, 1000);
    CHECK(strstr(buf, "Connection: keep-alive\r\n") != NULL);
    CHECK(strstr(buf, "Content-Length: 3\r\n") != NULL);
    close(fd);
    mg_httpd_free(srv);
}

static void t_collect_refuses_before_continue(void)
{
    start(1);
    int fd = client();
    say(fd, "POST /collect HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n");
    char buf[4096] = "";
    int closed = collect(fd, buf, sizeof buf, NULL, 0, 1000);
    CHECK_EQ_INT(closed, 1);
    CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
    CHECK(strstr(buf, "100 Continue") == NULL);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_BAD_BODY);
    close(fd);
    mg_httpd_free(srv);
}

/* on_end set after an API call that ended the request (a refused body)
 * is still called: the request ends after on_request returns. */
static void t_on_end_set_after_refusal(void)
{
    start(1);
    int fd = client();
    say(fd, "POST /collect-then-on-end HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n");
    char buf[4096] = "";
    collect(fd, buf, sizeof buf, NULL, 0, 500);
    CHECK(strncmp(buf, "HTTP/1.1 413", 12) == 0);
    CHECK_EQ_STR(events, "cE");
    CHECK_EQ_INT(last_end, MG_HTTPD_END_BAD_BODY);
    close(fd);
    mg_httpd_free(srv);
}

/* A refused mg_httpd_start() leaves no trace: the next start frames the
 * body by its Content-Length, not as chunks. */
static void t_failed_start_leaves_no_framing(void)
{
    start(1);
    int fd = client();
    say(fd, "GET /start-retry HTTP/1.1\r\nHost: t\r\n\r\nGET /now HTTP/1.1\r\nHost: t\r\n\r\n");
    char buf[4096] = "";
    collect(fd, buf, sizeof buf, "now", 1, 1000);
    CHECK_EQ_INT(api_results[0], -EINVAL);
    CHECK_EQ_INT(api_results[1], 0);
    CHECK_EQ_INT(api_results[2], 0);
    CHECK_EQ_INT(api_results[3], 0);
    CHECK(strstr(buf, "Content-Length: 5\r\n") != NULL);
    CHECK(strstr(buf, "\r\n\r\nhelloHTTP/1.1 200") != NULL);
    close(fd);
    mg_httpd_free(srv);
}

/* A body refused after the response was given must not add a second
 * response (a 413 the client would take for its next request's). */
static void t_collect_refused_after_response(void)
{
    start(1);
    int fd = client();
    say(fd, "POST /respond-collect HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n");
    char buf[4096] = "";
    collect(fd, buf, sizeof buf, NULL, 0, 500);
    CHECK(strstr(buf, "413") == NULL);
    CHECK(strstr(buf, "HTTP/1.1 200") == buf);
    CHECK_EQ_INT(last_end, MG_HTTPD_END_BAD_BODY);
    close(fd);
    mg_httpd_free(srv);
}

/* A partly read chunked body too large to discard: the connection closes
 * after the response, with a lingering close (our FIN, the rest of the body
 * read and dropped), not a close(2) over unread input whose RST can destroy
 * the response before the client reads it. */
static void t_discard_overflow_lingers(void)
{
    start(1);
    int fd = client();
    say(fd, "POST /readpart HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[4096 + 16];
    memcpy(chunk, "1000\r\n", 6);
    memset(chunk + 6, 'x', 4096);
    memcpy(chunk + 6 + 4096, "\r\n", 2);
    size_t clen = 6 + 4096 + 2, total = 0, want = 100 * clen, off = 0;
    char buf[4096] = "";
    size_t len = 0;
    int eof = 0, reset = 0;
    uint64_t end = mg_now_ns() / 1000000u + 2000;
    while (mg_now_ns() / 1000000u < end && !eof && !reset) {
        while (total < want) {
            ssize_t n = send(fd, chunk + off, clen - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n <= 0)
                break;
            total += (size_t)n;
            off = (off + (size_t)n) % clen;
        }
        mg_loop_run_once(loop, 5);
        ssize_t n = recv(fd, buf + len, sizeof buf - len - 1, MSG_DONTWAIT);
        if (n == 0)
            eof = 1;
        else if (n > 0)
            len += (size_t)n, buf[len] = '\0';
        else if (errno == ECONNRESET)
            reset = 1;
    }
    CHECK(strstr(buf, "\r\n\r\npart") != NULL);
    CHECK_EQ_INT(reset, 0);
    CHECK_EQ_INT(eof, 1);
    close(fd);
    mg_httpd_free(srv);
}

static void t_write_timeout(void)
{
    write_timeout_ms = 200;
    start(1);
    write_timeout_ms = 0;
    int fd = client();
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    say(fd, "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n");
    uint64_t t0 = mg_now_ns();
    for (int i = 0; i < 300 && last_end == (enum mg_httpd_end)-1; i++)
        mg_loop_run_once(loop, 10);
    uint64_t el = (mg_now_ns() - t0) / 1000000u;
    CHECK_EQ_INT(last_end, MG_HTTPD_END_TIMEOUT);
    CHECK(el >= 190 && el < 2000);
    struct mg_httpd_stats st;
    mg_httpd_get_stats(srv, &st);
    CHECK_EQ_INT(st.timeouts, 1);
    close(fd);
    mg_httpd_free(srv);
}

static void t_emfile_does_not_spin(void)
{
    start(1);
    int port = mg_httpd_port(srv);
    /* Clients in a child process, so the fd limit below is ours alone. */
    pid_t pid = fork();
    if (pid == 0) {
        int fds[5];
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        for (int i = 0; i < 5; i++) {
            fds[i] = socket(AF_INET, SOCK_STREAM, 0);
            if (connect(fds[i], (struct sockaddr *)&sin, sizeof sin) == -1)
                _exit(1);
        }
        sleep(5);
        _exit(0);
    }
    REQUIRE(pid > 0);
    struct rlimit old, low;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    /* No descriptor left for accept(). */
    int probe = dup(0);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    close(probe);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
    int iterations = 0;
    uint64_t end = mg_now_ns() / 1000000u + 500;
    while (mg_now_ns() / 1000000u < end) {
        mg_loop_run_once(loop, 50);
        iterations++;
    }
    struct mg_httpd_stats st;
    mg_httpd_get_stats(srv, &st);
    printf("# 500 ms at EMFILE: %d loop iterations, %llu pauses\n", iterations,
           (unsigned long long)st.accept_paused);
    CHECK(iterations < 100);
    CHECK(st.accept_paused >= 1);
    CHECK_EQ_INT(st.accepted, 0);
    /* Descriptors again: the waiting connections are accepted. */
    REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
    end = mg_now_ns() / 1000000u + 2000;
    while (st.accepted < 5 && mg_now_ns() / 1000000u < end) {
        mg_loop_run_once(loop, 20);
        mg_httpd_get_stats(srv, &st);
    }
    CHECK_EQ_INT(st.accepted, 5);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    mg_httpd_free(srv);
}

static const char *json_error_body(void *data, int status, const char *text, struct mg_buf *out,
                                   struct mg_buf *headers)
{
    if (status == 505)
        return NULL;   /* falls back to text */
    if (mg_buf_append_str(headers, "x-test: 1\r\n") < 0 ||
        mg_buf_printf(out, "{\"error\":{\"code\":%d,\"message\":\"%s\"}}", status, text) < 0)
        return NULL;
    return "application/json";
}

/* The server's own error responses take the application's body format when
 * it gives one, and fall back to text when the formatter declines. */
static void t_error_body_hook(void)
{
    error_body = json_error_body;
    start(1);
    int fd = client();
    say(fd, "GET / HTTP/1.1\r\nHost: t\r\nThis is not a header\r\n\r\n");
    char buf[4096] = "";
    CHECK_EQ_INT(collect(fd, buf, sizeof buf, NULL, 0, 1000), 1);
    CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0);
    CHECK(strstr(buf, "Content-Type: application/json\r\n") != NULL);
    CHECK(strstr(buf, "Connection: close\r\n") != NULL);
    CHECK(strstr(buf, "\r\nx-test: 1\r\n") != NULL);
    const char *body = strstr(buf, "\r\n\r\n");
    REQUIRE(body != NULL);
    body += 4;
    static const char want[] = "{\"error\":{\"code\":400,\"message\":\"";
    CHECK(strncmp(body, want, sizeof want - 1) == 0);
    char cl[64];
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", strlen(body));
    CHECK(strstr(buf, cl) != NULL);
    close(fd);

    fd = client();
    say(fd, "GET / HTTP/2.0\r\nHost: t\r\n\r\n");
    buf[0] = '\0';
    CHECK_EQ_INT(collect(fd, buf, sizeof buf, NULL, 0, 1000), 1);
    CHECK(strncmp(buf, "HTTP/1.1 505 ", 13) == 0);
    CHECK(strstr(buf, "Content-Type: text/plain\r\n") != NULL);
    CHECK(strstr(buf, "x-test") == NULL);
    close(fd);
    mg_httpd_free(srv);
    error_body = NULL;
}

int main(void)
{
    if (mg_loop_new(&loop) < 0)
        return 1;
    RUN(t_response_api_errors);
    RUN(t_pipelined_async_in_order);
    RUN(t_client_gone_and_half_close);
    RUN(t_head_and_http10_framing);
    RUN(t_collect_refuses_before_continue);
    RUN(t_collect_refused_after_response);
    RUN(t_failed_start_leaves_no_framing);
    RUN(t_on_end_set_after_refusal);
    RUN(t_discard_overflow_lingers);
    RUN(t_write_timeout);
    RUN(t_emfile_does_not_spin);
    RUN(t_error_body_hook);
    mg_loop_run_once(loop, 0);
    mg_loop_free(loop);
    return test_done();
}
