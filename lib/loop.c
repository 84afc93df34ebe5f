/* The event loop: epoll for fds, a binary min-heap for timers, a FIFO of
 * deferred callbacks, signalfd for signals and an eventfd for cross-thread
 * posts. See loop.h for the contract; docs/internals/loop.md for the design.
 *
 * One iteration (mg_loop_run_once):
 *   1. wait in epoll_wait until an fd is ready or the next timer is due (no
 *      wait at all when deferred work is queued or a stop was asked);
 *   2. read the clock once;
 *   3. call the fd watchers of the collected events;
 *   4. fire the timers that are due (not the ones armed while doing so);
 *   5. run the deferred callbacks queued so far (entries queued while doing
 *      so run on the next iteration, which then does not wait). */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Events collected per epoll_wait; more ready fds wait for the next call. */
#define MG_LOOP_EVENTS 256
/* Signals signalfd can carry (1..64 on Linux). */
#define MG_LOOP_NSIG 65

struct mg_post_entry {
    struct mg_post_entry *next;
    mg_post_cb cb;
    void *data;
};

struct mg_loop {
    int epfd;
    uint64_t now;            /* ms, CLOCK_MONOTONIC, read once per iteration */
    atomic_int stop;

    /* The batch being dispatched, so mg_io_stop() can drop events of a
     * watcher stopped (and perhaps freed) by an earlier callback. */
    struct epoll_event events[MG_LOOP_EVENTS];
    int nevents;
    int cur_event;

    /* Timer heap, ordered by (when, seq). */
    struct mg_timer **heap;
    size_t nheap, heap_cap;
    uint64_t timer_seq;

    /* Deferred FIFO. */
    struct mg_defer *defer_head, *defer_tail;
    size_t ndefer;

    /* Cross-thread posts, and the wakeup for them and for mg_loop_stop(). */
    int evfd;
    struct mg_io evio;
    pthread_mutex_t post_lock;
    struct mg_post_entry *post_head, *post_tail;

    /* Signals. */
    int sigfd;
    struct mg_io sigio;
    sigset_t sigmask;
    struct {
        mg_signal_cb cb;
        void *data;
    } sig[MG_LOOP_NSIG];

    int ncalls;              /* callbacks run in this iteration */
};

/* ------------------------------------------------------------------------ */
/* Clock. */

uint64_t mg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t mg_loop_now(const struct mg_loop *loop)
{
    return loop->now;
}

void mg_loop_update_time(struct mg_loop *loop)
{
    loop->now = mg_now_ns() / 1000000u;
}

/* ------------------------------------------------------------------------ */
/* Internal watchers: the eventfd (posts, stop) and the signalfd. */

static void evfd_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    uint64_t v;
    /* Drain: the counter only says "something was posted". */
    while (read(loop->evfd, &v, sizeof v) == -1 && errno == EINTR)
        ;
    pthread_mutex_lock(&loop->post_lock);
    struct mg_post_entry *e = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (e) {
        struct mg_post_entry *next = e->next;
        mg_post_cb cb = e->cb;
        void *data = e->data;
        free(e);
        cb(loop, data);
        loop->ncalls++;
        e = next;
    }
}

static void sigfd_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct signalfd_siginfo si[8];
    for (;;) {
        ssize_t n = read(loop->sigfd, si, sizeof si);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            return;   /* EAGAIN: drained */
        }
        for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
            unsigned signo = si[i].ssi_signo;
            if (signo < MG_LOOP_NSIG && loop->sig[signo].cb) {
                loop->sig[signo].cb(loop, (int)signo, loop->sig[signo].data);
                loop->ncalls++;
            }
        }
        if ((size_t)n < sizeof si)
            return;
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle. */

int mg_loop_new(struct mg_loop **out)
{
    int rc;
    struct mg_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return -ENOMEM;
    loop->epfd = loop->evfd = loop->sigfd = -1;
    sigemptyset(&loop->sigmask);
    atomic_init(&loop->stop, 0);

    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1) {
        rc = -errno;
        goto fail;
    }
    loop->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->evfd == -1) {
        rc = -errno;
        goto fail_ep;
    }
    rc = pthread_mutex_init(&loop->post_lock, NULL);
    if (rc != 0) {
        rc = -rc;
        goto fail_ev;
    }
    mg_io_init(&loop->evio, evfd_cb, NULL);
    rc = mg_io_start(loop, &loop->evio, loop->evfd, MG_READ);
    if (rc < 0)
        goto fail_mutex;
    mg_io_init(&loop->sigio, sigfd_cb, NULL);
    mg_loop_update_time(loop);
    *out = loop;
    return 0;

fail_mutex:
    pthread_mutex_destroy(&loop->post_lock);
fail_ev:
    close(loop->evfd);
fail_ep:
    close(loop->epfd);
fail:
    free(loop);
    return rc;
}

void mg_loop_free(struct mg_loop *loop)
{
    if (!loop)
        return;
    /* Forget what is still linked so callers' structs do not look armed. */
    for (size_t i = 0; i < loop->nheap; i++)
        loop->heap[i]->heap_idx = (size_t)-1;
    free(loop->heap);
    for (struct mg_defer *d = loop->defer_head; d;) {
        struct mg_defer *next = d->next;
        d->queued = 0;
        d->next = NULL;
        d = next;
    }
    loop->defer_head = loop->defer_tail = NULL;
    loop->ndefer = 0;
    for (struct mg_post_entry *e = loop->post_head; e;) {
        struct mg_post_entry *next = e->next;
        free(e);
        e = next;
    }
    if (loop->sigfd != -1)
        close(loop->sigfd);
    close(loop->evfd);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop);
}

void mg_loop_stop(struct mg_loop *loop)
{
    /* Only async-signal-safe operations: an atomic store and write(2). */
    atomic_store(&loop->stop, 1);
    uint64_t one = 1;
    ssize_t n = write(loop->evfd, &one, sizeof one);
    (void)n;   /* EAGAIN means the counter is already non-zero: awake anyway */
}

/* ------------------------------------------------------------------------ */
/* fd watchers. */

static uint32_t to_epoll(unsigned events)
{
    uint32_t e = 0;
    if (events & MG_READ)
        e |= EPOLLIN;
    if (events & MG_WRITE)
        e |= EPOLLOUT;
    return e;
}

void mg_io_init(struct mg_io *io, mg_io_cb cb, void *data)
{
    io->fd = -1;
    io->events = 0;
    io->active = 0;
    io->cb = cb;
    io->data = data;
}

int mg_io_start(struct mg_loop *loop, struct mg_io *io, int fd, unsigned events)
{
    if (io->active)
        return -EBUSY;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
        return -errno;
    io->fd = fd;
    io->events = events & (MG_READ | MG_WRITE);
    io->active = 1;
    return 0;
}

int mg_io_set(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    events &= MG_READ | MG_WRITE;
    if (!io->active)
        return -EINVAL;
    if (events == io->events)
        return 0;
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
        return -errno;
    io->events = events;
    return 0;
}

int mg_io_stop(struct mg_loop *loop, struct mg_io *io)
{
    if (!io->active)
        return 0;
    io->active = 0;
    io->events = 0;
    /* Drop this watcher's events still to be dispatched in this batch. */
    for (int i = loop->cur_event + 1; i < loop->nevents; i++)
        if (loop->events[i].data.ptr == io)
            loop->events[i].data.ptr = NULL;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) == -1)
        return -errno;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Timers: a binary min-heap of pointers, each timer knowing its index. */

static int timer_less(const struct mg_timer *a, const struct mg_timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void heap_set(struct mg_loop *loop, size_t i, struct mg_timer *t)
{
    loop->heap[i] = t;
    t->heap_idx = i;
}

static void heap_up(struct mg_loop *loop, size_t i)
{
    struct mg_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_less(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(struct mg_loop *loop, size_t i)
{
    struct mg_timer *t = loop->heap[i];
    size_t n = loop->nheap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && timer_less(loop->heap[c + 1], loop->heap[c]))
            c++;
        if (!timer_less(loop->heap[c], t))
            break;
        heap_set(loop, i, loop->heap[c]);
        i = c;
    }
    heap_set(loop, i, t);
}

static void heap_remove(struct mg_loop *loop, size_t i)
{
    struct mg_timer *t = loop->heap[i];
    t->heap_idx = (size_t)-1;
    loop->nheap--;
    if (i == loop->nheap)
        return;
    heap_set(loop, i, loop->heap[loop->nheap]);
    /* The moved timer may belong above or below its new place. */
    if (i > 0 && timer_less(loop->heap[i], loop->heap[(i - 1) / 2]))
        heap_up(loop, i);
    else
        heap_down(loop, i);
}

void mg_timer_init(struct mg_timer *t, mg_timer_cb cb, void *data)
{
    t->when = 0;
    t->seq = 0;
    t->heap_idx = (size_t)-1;
    t->cb = cb;
    t->data = data;
}

int mg_timer_start(struct mg_loop *loop, struct mg_timer *t, uint64_t ms)
{
    if (!mg_timer_armed(t) && loop->nheap == loop->heap_cap) {
        size_t ncap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct mg_timer **nh = realloc(loop->heap, ncap * sizeof *nh);
        if (!nh)
            return -ENOMEM;
        loop->heap = nh;
        loop->heap_cap = ncap;
    }
    if (mg_timer_armed(t))
        heap_remove(loop, t->heap_idx);
    t->when = ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + ms;
    t->seq = loop->timer_seq++;
    heap_set(loop, loop->nheap++, t);
    heap_up(loop, t->heap_idx);
    return 0;
}

void mg_timer_stop(struct mg_loop *loop, struct mg_timer *t)
{
    if (mg_timer_armed(t))
        heap_remove(loop, t->heap_idx);
}

static void run_timers(struct mg_loop *loop)
{
    /* Timers armed from now on (seq >= limit) wait for the next iteration,
     * so a callback re-arming itself with 0 ms cannot starve the loop. */
    uint64_t limit = loop->timer_seq;
    while (loop->nheap > 0) {
        struct mg_timer *t = loop->heap[0];
        if (t->when > loop->now || t->seq >= limit)
            break;
        heap_remove(loop, 0);
        t->cb(loop, t);
        loop->ncalls++;
    }
}

/* Milliseconds until the next timer, capped to fit epoll_wait; -1: none. */
static int next_timeout(const struct mg_loop *loop)
{
    if (loop->nheap == 0)
        return -1;
    uint64_t when = loop->heap[0]->when;
    if (when <= loop->now)
        return 0;
    uint64_t d = when - loop->now;
    return d > INT_MAX ? INT_MAX : (int)d;
}

/* ------------------------------------------------------------------------ */
/* Deferred callbacks. */

void mg_defer_init(struct mg_defer *d, mg_defer_cb cb, void *data)
{
    d->next = NULL;
    d->queued = 0;
    d->cb = cb;
    d->data = data;
}

void mg_defer(struct mg_loop *loop, struct mg_defer *d)
{
    if (d->queued)
        return;
    d->queued = 1;
    d->next = NULL;
    loop->ndefer++;
    if (loop->defer_tail)
        loop->defer_tail->next = d;
    else
        loop->defer_head = d;
    loop->defer_tail = d;
}

void mg_defer_cancel(struct mg_loop *loop, struct mg_defer *d)
{
    if (!d->queued)
        return;
    struct mg_defer *prev = NULL;
    for (struct mg_defer *p = loop->defer_head; p; prev = p, p = p->next) {
        if (p != d)
            continue;
        if (prev)
            prev->next = d->next;
        else
            loop->defer_head = d->next;
        if (loop->defer_tail == d)
            loop->defer_tail = prev;
        loop->ndefer--;
        break;
    }
    d->queued = 0;
    d->next = NULL;
}

static void run_deferred(struct mg_loop *loop)
{
    /* Only as many as are queued now, so an entry that queues itself again
     * (or another) runs on the next iteration instead of starving the loop. */
    size_t n = loop->ndefer;
    while (n-- > 0 && loop->defer_head) {
        struct mg_defer *d = loop->defer_head;
        loop->defer_head = d->next;
        if (!loop->defer_head)
            loop->defer_tail = NULL;
        loop->ndefer--;
        d->next = NULL;
        d->queued = 0;
        d->cb(loop, d->data);   /* may free d */
        loop->ncalls++;
    }
}

/* ------------------------------------------------------------------------ */
/* Running. */

int mg_loop_run_once(struct mg_loop *loop, int timeout_ms)
{
    loop->ncalls = 0;
    mg_loop_update_time(loop);
    int wait = next_timeout(loop);
    if (timeout_ms >= 0 && (wait < 0 || timeout_ms < wait))
        wait = timeout_ms;
    if (loop->defer_head || atomic_load(&loop->stop))
        wait = 0;

    int n = epoll_wait(loop->epfd, loop->events, MG_LOOP_EVENTS, wait);
    if (n == -1) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    mg_loop_update_time(loop);

    loop->nevents = n;
    for (loop->cur_event = 0; loop->cur_event < n; loop->cur_event++) {
        struct epoll_event *ev = &loop->events[loop->cur_event];
        struct mg_io *io = ev->data.ptr;
        if (!io || !io->active)
            continue;
        unsigned what = 0;
        if (ev->events & EPOLLIN)
            what |= MG_READ;
        if (ev->events & EPOLLOUT)
            what |= MG_WRITE;
        if (ev->events & EPOLLHUP)
            what |= MG_HUP;
        if (ev->events & EPOLLERR)
            what |= MG_ERR;
        io->cb(loop, io, what);
        if (io != &loop->evio && io != &loop->sigio)
            loop->ncalls++;
    }
    loop->nevents = 0;
    loop->cur_event = 0;

    run_timers(loop);
    run_deferred(loop);
    return loop->ncalls;
}

int mg_loop_run(struct mg_loop *loop)
{
    /* A stop asked before the run started (another thread was quick) is
     * kept: the run returns after one iteration. */
    while (!atomic_load(&loop->stop)) {
        int rc = mg_loop_run_once(loop, -1);
        if (rc < 0)
            return rc;
    }
    atomic_store(&loop->stop, 0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Signals and posts. */

int mg_loop_signal(struct mg_loop *loop, int signo, mg_signal_cb cb, void *data)
{
    if (signo <= 0 || signo >= MG_LOOP_NSIG || !cb)
        return -EINVAL;
    sigset_t mask = loop->sigmask;
    if (sigaddset(&mask, signo) == -1)
        return -errno;
    int rc = pthread_sigmask(SIG_BLOCK, &mask, NULL);
    if (rc != 0)
        return -rc;
    /* signalfd(-1, ...) makes one; an existing fd gets the new mask. */
    int fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd == -1)
        return -errno;
    if (loop->sigfd == -1) {
        rc = mg_io_start(loop, &loop->sigio, fd, MG_READ);
        if (rc < 0) {
            close(fd);
            return rc;
        }
        loop->sigfd = fd;
    }
    loop->sigmask = mask;
    loop->sig[signo].cb = cb;
    loop->sig[signo].data = data;
    return 0;
}

int mg_loop_post(struct mg_loop *loop, mg_post_cb cb, void *data)
{
    struct mg_post_entry *e = malloc(sizeof *e);
    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->cb = cb;
    e->data = data;
    pthread_mutex_lock(&loop->post_lock);
    if (loop->post_tail)
        loop->post_tail->next = e;
    else
        loop->post_head = e;
    loop->post_tail = e;
    pthread_mutex_unlock(&loop->post_lock);
    uint64_t one = 1;
    ssize_t n = write(loop->evfd, &one, sizeof one);
    (void)n;   /* EAGAIN: the counter is saturated, the loop wakes anyway */
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sockets. */

int mg_split_hostport(const char *hostport, char *host, size_t hostlen, unsigned *port)
{
    const char *colon;
    const char *hs = hostport;
    size_t hl;
    if (!hostport)
        return -EINVAL;
    if (hostport[0] == '[') {
        const char *close_br = strchr(hostport, ']');
        if (!close_br || close_br[1] != ':')
            return -EINVAL;
        hs = hostport + 1;
        hl = (size_t)(close_br - hs);
        colon = close_br + 1;
    } else {
        colon = strrchr(hostport, ':');
        if (!colon)
            return -EINVAL;
        hl = (size_t)(colon - hostport);
        /* An unbracketed IPv6 address is ambiguous: refuse it. */
        if (memchr(hostport, ':', hl))
            return -EINVAL;
    }
    if (hl >= hostlen)
        return -EINVAL;
    const char *p = colon + 1;
    if (*p == '\0')
        return -EINVAL;
    unsigned v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*p - '0');
        if (v > 65535)
            return -EINVAL;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = v;
    return 0;
}

/* getaddrinfo for "HOST:PORT"; an empty host or "*" means any address when
 * passive. On failure *err says why. */
static int resolve(const char *hostport, int passive, struct addrinfo **res, const char **err)
{
    char host[256], port_s[8];
    unsigned port;
    if (mg_split_hostport(hostport, host, sizeof host, &port) < 0) {
        if (err)
            *err = "address must be HOST:PORT or [IPV6]:PORT with a port 0-65535";
        return -EINVAL;
    }
    snprintf(port_s, sizeof port_s, "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
    };
    const char *h = host;
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        if (!passive) {
            if (err)
                *err = "a host is needed to connect to";
            return -EINVAL;
        }
        h = "0.0.0.0";
    }
    int rc = getaddrinfo(h, port_s, &hints, res);
    if (rc != 0) {
        if (err)
            *err = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
        return rc == EAI_MEMORY ? -ENOMEM : -EADDRNOTAVAIL;
    }
    return 0;
}

int mg_listen_tcp(const char *hostport, int backlog, int reuseport, const char **err)
{
    struct addrinfo *res;
    int rc = resolve(hostport, 1, &res, err);
    if (rc < 0)
        return rc;
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    res->ai_protocol);
    if (fd == -1) {
        rc = -errno;
        if (err)
            *err = "socket() failed";
        goto out;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) {
        rc = -errno;
        if (err)
            *err = "setsockopt(SO_REUSEADDR) failed";
        goto fail_fd;
    }
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == -1) {
        rc = -errno;
        if (err)
            *err = "setsockopt(SO_REUSEPORT) failed";
        goto fail_fd;
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) == -1) {
        rc = -errno;
        if (err)
            *err = rc == -EADDRINUSE ? "address already in use" : "bind() failed";
        goto fail_fd;
    }
    if (listen(fd, backlog > 0 ? backlog : SOMAXCONN) == -1) {
        rc = -errno;
        if (err)
            *err = "listen() failed";
        goto fail_fd;
    }
    freeaddrinfo(res);
    return fd;

fail_fd:
    close(fd);
out:
    freeaddrinfo(res);
    return rc;
}

int mg_sock_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

int mg_resolve_tcp(const char *hostport, struct sockaddr_storage *ss, unsigned *sslen,
                   const char **err)
{
    struct addrinfo *res;
    int rc = resolve(hostport, 0, &res, err);
    if (rc < 0)
        return rc;
    if (res->ai_addrlen > sizeof *ss) {
        freeaddrinfo(res);
        if (err)
            *err = "address too long";
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = (unsigned)res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int mg_sock_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
        return -errno;
    return 0;
}

int mg_connect_tcp(const struct sockaddr *sa, unsigned salen, int *in_progress)
{
    int rc;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    rc = mg_sock_nodelay(fd);
    if (rc < 0)
        goto fail;
    *in_progress = 0;
    if (connect(fd, sa, (socklen_t)salen) == -1) {
        if (errno != EINPROGRESS) {
            rc = -errno;
            goto fail;
        }
        *in_progress = 1;
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int mg_sock_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
        return -errno;
    return -e;
}
