/* Unit tests for lib/loop.c and lib/transport.c: timers fire in order and on
 * time, many timers are cheap, callbacks may stop and free what they own,
 * deferred work runs after events, signals and cross-thread posts wake the
 * loop, fd watchers see readiness, and the raw transport maps errors. */
#define _GNU_SOURCE
#include "lib/loop.h"
#include "lib/transport.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

/* Sanitizers slow everything down; timing checks get this much slack. */
#define SLACK_MS 60

/* ------------------------------------------------------------------------ */
/* Timers. */

struct fired {
    int order[16];
    uint64_t at[16];
    int n;
};

struct tagged_timer {
    struct mg_timer t;
    int tag;
    struct fired *log;
};

static void log_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct tagged_timer *tt = t->data;
    if (tt->log->n < 16) {
        tt->log->order[tt->log->n] = tt->tag;
        tt->log->at[tt->log->n] = mg_now_ns() / 1000000u;
        tt->log->n++;
    }
}

static void run_until(struct mg_loop *loop, int *flag, int max_ms)
{
    uint64_t end = mg_now_ns() / 1000000u + (uint64_t)max_ms;
    while (!*flag && mg_now_ns() / 1000000u < end)
        mg_loop_run_once(loop, 10);
}

static void t_timers_in_order_and_on_time(void)
{
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    struct fired log = {0};
    struct tagged_timer tt[5];
    static const uint64_t ms[5] = {60, 20, 40, 20, 0};
    /* Expected firing order: 4 (0 ms), 1 then 3 (both 20 ms, in arming
     * order), 2 (40 ms), 0 (60 ms). */
    static const int want[5] = {4, 1, 3, 2, 0};
    /* Timers count from the loop's clock; measure from the same reading. */
    mg_loop_update_time(loop);
    uint64_t start = mg_loop_now(loop);
    for (int i = 0; i < 5; i++) {
        tt[i].tag = i;
        tt[i].log = &log;
        mg_timer_init(&tt[i].t, log_timer_cb, &tt[i]);
        CHECK_EQ_INT(mg_timer_start(loop, &tt[i].t, ms[i]), 0);
        CHECK(mg_timer_armed(&tt[i].t));
    }
    uint64_t end = start + 1000;
    while (log.n < 5 && mg_now_ns() / 1000000u < end)
        mg_loop_run_once(loop, -1);
    REQUIRE(log.n == 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(log.order[i], want[i]);
        uint64_t elapsed = log.at[i] - start;
        uint64_t due = ms[want[i]];
        /* Never early; late by at most the slack. */
        if (elapsed < due || elapsed > due + SLACK_MS)
            printf("# timer %d due at %llu ms fired at %llu ms\n", want[i],
                   (unsigned long long)due, (unsigned long long)elapsed);
        CHECK(elapsed >= due);
        CHECK(elapsed <= due + SLACK_MS);
        CHECK(!mg_timer_armed(&tt[want[i]].t));
    }
    mg_loop_free(loop);
}

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

struct many {
    struct mg_timer t;
    int fired;
};

static uint64_t many_last_when;
static int many_fired, many_out_of_order;

static void many_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct many *m = t->data;
    m->fired++;
    many_fired++;
    if (t->when < many_last_when)
        many_out_of_order++;
    many_last_when = t->when;
}

static void t_fifty_thousand_timers(void)
{
    enum { N = 50000 };
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    struct many *m = calloc(N, sizeof *m);
    REQUIRE(m != NULL);
    uint64_t seed = 42;
    uint64_t t0 = mg_now_ns();
    for (int i = 0; i < N; i++) {
        mg_timer_init(&m[i].t, many_cb, &m[i]);
        CHECK_EQ_INT(mg_timer_start(loop, &m[i].t, 10 + lcg(&seed) % 90), 0);
    }
    /* Stop every other one, re-arm every third (moving it in the heap). */
    for (int i = 0; i < N; i += 2)
        mg_timer_stop(loop, &m[i].t);
    for (int i = 0; i < N; i += 3)
        CHECK_EQ_INT(mg_timer_start(loop, &m[i].t, 10 + lcg(&seed) % 90), 0);
    uint64_t took_ms = (mg_now_ns() - t0) / 1000000u;
    printf("# 50000 starts, 25000 stops, 16667 restarts: %llu ms\n",
           (unsigned long long)took_ms);
    CHECK(took_ms < 500);

    int expected = 0;
    for (int i = 0; i < N; i++)
        expected += mg_timer_armed(&m[i].t);
    /* Odd indexes and multiples of 3 stay armed. */
    int want = 0;
    for (int i = 0; i < N; i++)
        want += (i % 2 == 1) || (i % 3 == 0);
    CHECK_EQ_INT(expected, want);

    many_fired = many_out_of_order = 0;
    many_last_when = 0;
    uint64_t end = mg_now_ns() / 1000000u + 2000;
    while (many_fired < expected && mg_now_ns() / 1000000u < end)
        mg_loop_run_once(loop, -1);
    CHECK_EQ_INT(many_fired, expected);
    CHECK_EQ_INT(many_out_of_order, 0);
    int twice = 0, wrong = 0;
    for (int i = 0; i < N; i++) {
        twice += m[i].fired > 1;
        wrong += m[i].fired != ((i % 2 == 1) || (i % 3 == 0));
    }
    CHECK_EQ_INT(twice, 0);
    CHECK_EQ_INT(wrong, 0);
    free(m);
    mg_loop_free(loop);
}

/* A timer that stops another due in the same pass, one that re-arms itself
 * three times, one that frees its own memory. */
struct stopper {
    struct mg_timer a, b, rep;
    struct mg_timer *heap_owned;
    int a_fired, b_fired, rep_fired, freed_fired;
};

static void stopper_a_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct stopper *s = t->data;
    s->a_fired++;
    mg_timer_stop(loop, &s->b);
    mg_timer_stop(loop, t);   /* stopping itself after firing: harmless */
}

static void stopper_b_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct stopper *s = t->data;
    s->b_fired++;
}

static void stopper_rep_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct stopper *s = t->data;
    if (++s->rep_fired < 3)
        mg_timer_start(loop, t, 0);
}

static void stopper_free_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct stopper *s = t->data;
    s->freed_fired++;
    free(t);
}

static void t_stop_inside_callback(void)
{
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    struct stopper s = {0};
    mg_timer_init(&s.a, stopper_a_cb, &s);
    mg_timer_init(&s.b, stopper_b_cb, &s);
    mg_timer_init(&s.rep, stopper_rep_cb, &s);
    struct mg_timer *own = malloc(sizeof *own);
    REQUIRE(own != NULL);
    mg_timer_init(own, stopper_free_cb, &s);
    /* a and b are due at the same ms; a was armed first so it fires first
     * and cancels b. */
    CHECK_EQ_INT(mg_timer_start(loop, &s.a, 5), 0);
    CHECK_EQ_INT(mg_timer_start(loop, &s.b, 5), 0);
    CHECK_EQ_INT(mg_timer_start(loop, &s.rep, 0), 0);
    CHECK_EQ_INT(mg_timer_start(loop, own, 1), 0);
    /* A 0 ms self re-arm must wait for the next iteration: one pass fires
     * rep once. */
    mg_loop_run_once(loop, 0);
    CHECK_EQ_INT(s.rep_fired, 1);
    for (int i = 0; i < 50 && (s.rep_fired < 3 || !s.a_fired || !s.freed_fired); i++)
        mg_loop_run_once(loop, 10);
    CHECK_EQ_INT(s.a_fired, 1);
    CHECK_EQ_INT(s.b_fired, 0);
    CHECK(!mg_timer_armed(&s.b));
    CHECK_EQ_INT(s.rep_fired, 3);
    CHECK_EQ_INT(s.freed_fired, 1);
    /* Stopping a timer that is not armed is a no-op. */
    mg_timer_stop(loop, &s.b);
    mg_loop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* fd watchers and deferred callbacks. */

struct trace {
    char ev[64];
    int n;
    struct mg_defer d1, d2, d3;
    struct mg_io io1, io2;
    int fd1, fd2;
};

static void trace_add(struct trace *t, char c)
{
    if (t->n < 63)
        t->ev[t->n++] = c;
    t->ev[t->n] = '\0';
}

static void defer_d1(struct mg_loop *loop, void *data)
{
    struct trace *t = data;
    trace_add(t, 'D');
    /* Queued from a deferred callback: runs on the next iteration. */
    mg_defer(loop, &t->d3);
}

static void defer_d2(struct mg_loop *loop, void *data)
{
    trace_add(data, 'E');
}

static void defer_d3(struct mg_loop *loop, void *data)
{
    trace_add(data, 'F');
}

static void trace_io_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct trace *t = io->data;
    char b[16];
    ssize_t r = read(io->fd, b, sizeof b);
    (void)r;
    trace_add(t, io == &t->io1 ? '1' : '2');
    mg_defer(loop, &t->d1);
    mg_defer(loop, &t->d1);   /* already queued: no second run */
    mg_defer(loop, &t->d2);
}

static void t_deferred_runs_after_events(void)
{
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    struct trace t = {0};
    int p1[2], p2[2];
    REQUIRE(pipe2(p1, O_NONBLOCK | O_CLOEXEC) == 0);
    REQUIRE(pipe2(p2, O_NONBLOCK | O_CLOEXEC) == 0);
    mg_defer_init(&t.d1, defer_d1, &t);
    mg_defer_init(&t.d2, defer_d2, &t);
    mg_defer_init(&t.d3, defer_d3, &t);
    mg_io_init(&t.io1, trace_io_cb, &t);
    mg_io_init(&t.io2, trace_io_cb, &t);
    CHECK_EQ_INT(mg_io_start(loop, &t.io1, p1[0], MG_READ), 0);
    CHECK_EQ_INT(mg_io_start(loop, &t.io2, p2[0], MG_READ), 0);
    CHECK_EQ_INT(mg_io_start(loop, &t.io2, p2[0], MG_READ), -EBUSY);
    REQUIRE(write(p1[1], "x", 1) == 1);
    REQUIRE(write(p2[1], "y", 1) == 1);
    mg_loop_run_once(loop, 1000);
    /* Both fd callbacks (in either order) before any deferred one; D and E
     * once each, in queue order; F (queued by D) not yet. */
    CHECK(t.n == 4);
    CHECK((t.ev[0] == '1' && t.ev[1] == '2') || (t.ev[0] == '2' && t.ev[1] == '1'));
    CHECK_EQ_STR(t.ev + 2, "DE");
    /* Queued work makes the next iteration not wait, even with a long
     * timeout. */
    uint64_t t0 = mg_now_ns();
    mg_loop_run_once(loop, 5000);
    CHECK((mg_now_ns() - t0) / 1000000u < 1000);
    CHECK_EQ_STR(t.ev + 2, "DEF");

    /* A cancelled entry does not run. */
    mg_defer(loop, &t.d2);
    mg_defer_cancel(loop, &t.d2);
    CHECK(!t.d2.queued);
    mg_loop_run_once(loop, 0);
    CHECK_EQ_STR(t.ev + 2, "DEF");

    mg_io_stop(loop, &t.io1);
    mg_io_stop(loop, &t.io2);
    close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]);
    mg_loop_free(loop);
}

struct pipe_state {
    struct mg_io rd, wr;
    int reads, writes, hups, eofs;
    char got[32];
    size_t got_len;
};

static void pipe_rd_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct pipe_state *ps = io->data;
    if (events & MG_HUP)
        ps->hups++;
    /* A pipe whose writer is gone reports HUP alone, without READ: read
     * anyway to see the end of stream. */
    if (events & (MG_READ | MG_HUP)) {
        ps->reads++;
        ssize_t r = read(io->fd, ps->got + ps->got_len, sizeof ps->got - ps->got_len);
        if (r > 0)
            ps->got_len += (size_t)r;
        if (r == 0) {
            ps->eofs++;
            mg_io_stop(loop, io);
        }
    }
}

static void pipe_wr_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct pipe_state *ps = io->data;
    if (events & MG_WRITE) {
        ps->writes++;
        if (write(io->fd, "hello", 5) == 5)
            mg_io_set(loop, io, 0);   /* one write, then no more interest */
    }
}

static void t_io_watcher_on_pipe(void)
{
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    struct pipe_state ps = {0};
    int p[2];
    REQUIRE(pipe2(p, O_NONBLOCK | O_CLOEXEC) == 0);
    mg_io_init(&ps.rd, pipe_rd_cb, &ps);
    mg_io_init(&ps.wr, pipe_wr_cb, &ps);
    CHECK_EQ_INT(mg_io_start(loop, &ps.rd, p[0], 0), 0);
    CHECK_EQ_INT(mg_io_start(loop, &ps.wr, p[1], MG_WRITE), 0);

    /* The write end is writable at once; it writes once then loses
     * interest. The read end has no interest yet: no read callback. */
    for (int i = 0; i < 5; i++)
        mg_loop_run_once(loop, 10);
    CHECK_EQ_INT(ps.writes, 1);
    CHECK_EQ_INT(ps.reads, 0);

    /* Interest in reading: the data is there. */
    CHECK_EQ_INT(mg_io_set(loop, &ps.rd, MG_READ), 0);
    for (int i = 0; i < 5 && ps.got_len < 5; i++)
        mg_loop_run_once(loop, 100);
    CHECK_EQ_MEM(ps.got, ps.got_len, "hello");
    int reads = ps.reads;
    /* Level-triggered, nothing more to read: no spurious callbacks. */
    mg_loop_run_once(loop, 20);
    CHECK_EQ_INT(ps.reads, reads);

    /* Closing the writer: the reader sees end of stream (read 0, then HUP). */
    mg_io_stop(loop, &ps.wr);
    close(p[1]);
    for (int i = 0; i < 10 && ps.eofs == 0; i++)
        mg_loop_run_once(loop, 100);
    CHECK_EQ_INT(ps.eofs, 1);
    CHECK_EQ_INT(ps.hups, 1);
    CHECK(!ps.rd.active);
    close(p[0]);
    mg_loop_free(loop);
}

/* A callback that stops (and frees) another watcher whose event is in the
 * same batch: the stopped watcher must not be called. */
struct pair {
    struct mg_io *io[2];
    int calls[2];
};

static void pair_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct pair *pr = io->data;
    int me = io == pr->io[0] ? 0 : 1;
    pr->calls[me]++;
    struct mg_io *other = pr->io[1 - me];
    if (other) {
        mg_io_stop(loop, other);
        free(other);
        pr->io[1 - me] = NULL;
    }
    mg_io_stop(loop, io);
}

static void t_stop_other_watcher_in_batch(void)
{
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    struct pair pr = {0};
    int p1[2], p2[2];
    REQUIRE(pipe2(p1, O_NONBLOCK | O_CLOEXEC) == 0);
    REQUIRE(pipe2(p2, O_NONBLOCK | O_CLOEXEC) == 0);
    pr.io[0] = malloc(sizeof(struct mg_io));
    pr.io[1] = malloc(sizeof(struct mg_io));
    REQUIRE(pr.io[0] && pr.io[1]);
    struct mg_io *first = pr.io[0], *second = pr.io[1];
    mg_io_init(first, pair_cb, &pr);
    mg_io_init(second, pair_cb, &pr);
    CHECK_EQ_INT(mg_io_start(loop, first, p1[0], MG_READ), 0);
    CHECK_EQ_INT(mg_io_start(loop, second, p2[0], MG_READ), 0);
    REQUIRE(write(p1[1], "a", 1) == 1);
    REQUIRE(write(p2[1], "b", 1) == 1);
    mg_loop_run_once(loop, 1000);
    /* Exactly one of them ran; under ASan a call to the freed one would
     * also be a use-after-free report. */
    CHECK_EQ_INT(pr.calls[0] + pr.calls[1], 1);
    for (int i = 0; i < 2; i++)
        free(pr.io[i]);
    close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]);
    mg_loop_free(loop);
}

/* ------------------------------------------------------------------------ */
/* Signals and posts. */

static int sig_seen;
static void sig_cb(struct mg_loop *loop, int signo, void *data)
{
    sig_seen = signo;
    *(int *)data += 1;
}

static void t_signal_delivery(void)
{
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    int count = 0;
    CHECK_EQ_INT(mg_loop_signal(loop, SIGUSR1, sig_cb, &count), 0);
    CHECK_EQ_INT(mg_loop_signal(loop, SIGUSR2, sig_cb, &count), 0);
    CHECK_EQ_INT(mg_loop_signal(loop, 0, sig_cb, &count), -EINVAL);
    /* Blocked in this thread, so it waits for the signalfd instead of
     * killing the process. */
    REQUIRE(kill(getpid(), SIGUSR2) == 0);
    run_until(loop, &count, 2000);
    CHECK_EQ_INT(count, 1);
    CHECK_EQ_INT(sig_seen, SIGUSR2);
    REQUIRE(raise(SIGUSR1) == 0);
    int before = count;
    for (int i = 0; i < 100 && count == before; i++)
        mg_loop_run_once(loop, 20);
    CHECK_EQ_INT(count, 2);
    CHECK_EQ_INT(sig_seen, SIGUSR1);
    mg_loop_free(loop);
}

struct post_state {
    struct mg_loop *loop;
    pthread_t loop_thread;
    int ran_on_loop_thread;
    int runs;
    uint64_t posted_ns;
};

static void post_cb(struct mg_loop *loop, void *data)
{
    struct post_state *ps = data;
    ps->runs++;
    ps->ran_on_loop_thread = pthread_equal(pthread_self(), ps->loop_thread);
    mg_loop_stop(loop);
}

static void *poster(void *arg)
{
    struct post_state *ps = arg;
    usleep(50 * 1000);
    __atomic_store_n(&ps->posted_ns, mg_now_ns(), __ATOMIC_SEQ_CST);
    if (mg_loop_post(ps->loop, post_cb, ps) != 0)
        return (void *)1;
    return NULL;
}

static void *stopper_thread(void *arg)
{
    usleep(50 * 1000);
    mg_loop_stop(arg);
    return NULL;
}

static void t_post_from_other_thread(void)
{
    struct post_state ps = {0};
    REQUIRE(mg_loop_new(&ps.loop) == 0);
    ps.loop_thread = pthread_self();
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, poster, &ps) == 0);
    /* No timers, no fds of ours: only the post can end this run. */
    uint64_t t0 = mg_now_ns();
    CHECK_EQ_INT(mg_loop_run(ps.loop), 0);
    uint64_t woke = mg_now_ns();
    void *ret;
    pthread_join(th, &ret);
    CHECK(ret == NULL);
    CHECK_EQ_INT(ps.runs, 1);
    CHECK(ps.ran_on_loop_thread);
    uint64_t posted = __atomic_load_n(&ps.posted_ns, __ATOMIC_SEQ_CST);
    printf("# post -> callback: %llu us\n", (unsigned long long)((woke - posted) / 1000));
    CHECK(woke - t0 < 2000000000ull);
    CHECK((woke - posted) / 1000000u < SLACK_MS);

    /* mg_loop_stop() from another thread ends mg_loop_run() too. */
    REQUIRE(pthread_create(&th, NULL, stopper_thread, ps.loop) == 0);
    t0 = mg_now_ns();
    CHECK_EQ_INT(mg_loop_run(ps.loop), 0);
    CHECK((mg_now_ns() - t0) / 1000000u < 2000);
    pthread_join(th, NULL);
    mg_loop_free(ps.loop);
}

/* ------------------------------------------------------------------------ */
/* Sockets and the raw transport. */

static void t_split_hostport(void)
{
    char host[64];
    unsigned port;
    CHECK_EQ_INT(mg_split_hostport("127.0.0.1:8080", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "127.0.0.1");
    CHECK_EQ_INT(port, 8080);
    CHECK_EQ_INT(mg_split_hostport("[::1]:0", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "::1");
    CHECK_EQ_INT(port, 0);
    CHECK_EQ_INT(mg_split_hostport(":9", host, sizeof host, &port), 0);
    CHECK_EQ_STR(host, "");
    CHECK_EQ_INT(mg_split_hostport("localhost", host, sizeof host, &port), -EINVAL);
    CHECK_EQ_INT(mg_split_hostport("h:65536", host, sizeof host, &port), -EINVAL);
    CHECK_EQ_INT(mg_split_hostport("h:", host, sizeof host, &port), -EINVAL);
    CHECK_EQ_INT(mg_split_hostport("h:1x", host, sizeof host, &port), -EINVAL);
    CHECK_EQ_INT(mg_split_hostport("::1:80", host, sizeof host, &port), -EINVAL);
    CHECK_EQ_INT(mg_split_hostport("averyveryverylonghostname:1", host, 8, &port), -EINVAL);
}

static void t_listen_connect_transport(void)
{
    const char *err = NULL;
    int lfd = mg_listen_tcp("127.0.0.1:0", 16, 1, &err);
    REQUIRE(lfd >= 0);
    int port = mg_sock_port(lfd);
    CHECK(port > 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    /* A second listener on the same port works with SO_REUSEPORT... */
    int lfd2 = mg_listen_tcp(addr, 16, 1, &err);
    CHECK(lfd2 >= 0);
    /* ...and fails without it, with a message. */
    err = NULL;
    CHECK_EQ_INT(mg_listen_tcp(addr, 16, 0, &err), -EADDRINUSE);
    CHECK(err != NULL);
    CHECK(mg_listen_tcp("nonsense", 16, 0, &err) == -EINVAL);

    struct sockaddr_storage ss;
    unsigned sslen;
    REQUIRE(mg_resolve_tcp(addr, &ss, &sslen, &err) == 0);
    int inprog;
    int cfd = mg_connect_tcp((struct sockaddr *)&ss, sslen, &inprog);
    REQUIRE(cfd >= 0);
    /* Accept on whichever listener got it. */
    int sfd = -1;
    for (int i = 0; i < 200 && sfd == -1; i++) {
        sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (sfd == -1 && lfd2 >= 0)
            sfd = accept4(lfd2, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (sfd == -1)
            usleep(5000);
    }
    REQUIRE(sfd >= 0);
    CHECK_EQ_INT(mg_sock_error(cfd), 0);

    struct mg_xprt c, s;
    CHECK_EQ_INT(mg_xprt_raw_factory.wrap(&mg_xprt_raw_factory, &c, cfd, 0, "127.0.0.1"), 0);
    CHECK_EQ_INT(mg_xprt_raw_init(&s, sfd), 0);
    CHECK_EQ_INT(mg_xprt_handshake(&c), 0);
    CHECK_EQ_INT(mg_xprt_pending(&c), 0);

    /* Nothing to read yet: -EAGAIN and want = MG_READ. */
    char buf[64];
    CHECK_EQ_INT(mg_xprt_recv(&s, buf, sizeof buf), -EAGAIN);
    CHECK_EQ_INT(s.want, MG_READ);

    struct iovec iov[2] = {{.iov_base = "GET ", .iov_len = 4},
                           {.iov_base = "/x", .iov_len = 2}};
    CHECK_EQ_INT(mg_xprt_sendv(&c, iov, 2), 6);
    ssize_t got = 0;
    for (int i = 0; i < 100 && got < 6; i++) {
        ssize_t r = mg_xprt_recv(&s, buf + got, sizeof buf - (size_t)got);
        if (r > 0)
            got += r;
        else
            usleep(1000);
    }
    CHECK_EQ_MEM(buf, got, "GET /x");

    /* Fill the socket: -EAGAIN with want = MG_WRITE. */
    static char big[65536];
    struct iovec biov = {.iov_base = big, .iov_len = sizeof big};
    ssize_t r = 0;
    for (int i = 0; i < 10000; i++) {
        r = mg_xprt_sendv(&c, &biov, 1);
        if (r < 0)
            break;
    }
    CHECK_EQ_INT(r, -EAGAIN);
    CHECK_EQ_INT(c.want, MG_WRITE);

    /* Orderly shutdown of c's sending side: s reads until end of stream. */
    CHECK_EQ_INT(mg_xprt_shutdown(&c), 0);
    long total = 0;
    for (int i = 0; i < 100000; i++) {
        r = mg_xprt_recv(&s, big, sizeof big);
        if (r == 0)
            break;
        if (r > 0)
            total += r;
        else if (r == -EAGAIN)
            usleep(100);
        else
            break;
    }
    CHECK_EQ_INT(r, 0);
    CHECK(total > 0);

    /* The peer is gone: a write fails with -EPIPE or -ECONNRESET, and no
     * SIGPIPE kills the test. */
    mg_xprt_close(&c);
    CHECK_EQ_INT(c.fd, -1);
    CHECK(c.ops == NULL);
    ssize_t w = 0;
    for (int i = 0; i < 100 && w >= 0; i++) {
        w = mg_xprt_sendv(&s, &biov, 1);
        if (w >= 0)
            usleep(1000);
    }
    CHECK(w == -EPIPE || w == -ECONNRESET);
    mg_xprt_close(&s);
    close(lfd);
    if (lfd2 >= 0)
        close(lfd2);
}

static void t_connect_refused(void)
{
    /* A port with no listener: the connect fails, now or via SO_ERROR. */
    const char *err;
    int lfd = mg_listen_tcp("127.0.0.1:0", 1, 0, &err);
    REQUIRE(lfd >= 0);
    int port = mg_sock_port(lfd);
    close(lfd);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int inprog;
    int fd = mg_connect_tcp((struct sockaddr *)&sin, sizeof sin, &inprog);
    if (fd < 0) {
        CHECK_EQ_INT(fd, -ECONNREFUSED);
        return;
    }
    struct mg_loop *loop;
    REQUIRE(mg_loop_new(&loop) == 0);
    usleep(20000);
    CHECK_EQ_INT(mg_sock_error(fd), -ECONNREFUSED);
    close(fd);
    mg_loop_free(loop);
}

int main(void)
{
    RUN(t_timers_in_order_and_on_time);
    RUN(t_fifty_thousand_timers);
    RUN(t_stop_inside_callback);
    RUN(t_deferred_runs_after_events);
    RUN(t_io_watcher_on_pipe);
    RUN(t_stop_other_watcher_in_batch);
    RUN(t_signal_delivery);
    RUN(t_post_from_other_thread);
    RUN(t_split_hostport);
    RUN(t_listen_connect_transport);
    RUN(t_connect_refused);
    return test_done();
}
