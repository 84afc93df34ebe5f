/* The event loop: one per thread, on epoll.
 *
 * - fd watchers (level-triggered, MG_READ/MG_WRITE), changed cheaply;
 * - timers in a binary min-heap (O(log n) start/stop, tens of thousands are
 *   cheap), millisecond resolution on CLOCK_MONOTONIC;
 * - deferred callbacks that run after the current iteration's events, which
 *   is where connections are closed and freed (never inside their own
 *   callback: libuv's uv_close, redis' freeClientAsync);
 * - signals through signalfd (the loop blocks them in its thread);
 * - mg_loop_post() from any thread, which wakes the loop through an eventfd.
 *
 * Everything but mg_loop_post() and mg_loop_stop() must be called from the
 * loop's own thread. Watcher, timer and deferred structs are owned by the
 * caller and embedded in its objects; the loop only links them. */
#ifndef MG_LOOP_H
#define MG_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct mg_loop;
struct mg_io;
struct mg_timer;
struct mg_defer;

enum {
    MG_READ = 1u << 0,
    MG_WRITE = 1u << 1,
    /* Reported only: the peer hung up or the fd has an error. */
    MG_HUP = 1u << 2,
    MG_ERR = 1u << 3,
};

typedef void (*mg_io_cb)(struct mg_loop *loop, struct mg_io *io, unsigned events);
typedef void (*mg_timer_cb)(struct mg_loop *loop, struct mg_timer *t);
typedef void (*mg_defer_cb)(struct mg_loop *loop, void *data);
typedef void (*mg_signal_cb)(struct mg_loop *loop, int signo, void *data);
typedef void (*mg_post_cb)(struct mg_loop *loop, void *data);

struct mg_io {
    int fd;
    unsigned events;   /* what is watched now */
    int active;        /* registered with epoll */
    mg_io_cb cb;
    void *data;
};

struct mg_timer {
    uint64_t when;     /* absolute, ms on the loop's monotonic clock */
    uint64_t seq;      /* arming order: timers due at the same ms fire in it */
    size_t heap_idx;   /* position in the heap, (size_t)-1 when not armed */
    mg_timer_cb cb;
    void *data;
};

struct mg_defer {
    struct mg_defer *next;
    int queued;
    mg_defer_cb cb;
    void *data;
};

/* Creates a loop for the calling thread. -errno on failure. */
int mg_loop_new(struct mg_loop **out);
/* Frees the loop. Watchers, timers and deferred entries still linked are
 * forgotten, not called. */
void mg_loop_free(struct mg_loop *loop);

/* Runs until mg_loop_stop(). Returns 0, or -errno if epoll_wait failed. */
int mg_loop_run(struct mg_loop *loop);
/* Runs one iteration, waiting at most timeout_ms (-1: until an event or the
 * next timer). Returns the number of callbacks run, or -errno. For tests. */
int mg_loop_run_once(struct mg_loop *loop, int timeout_ms);
/* Asks the loop to return from mg_loop_run() after the current iteration.
 * Safe from any thread and from signal handlers. */
void mg_loop_stop(struct mg_loop *loop);

/* The loop's clock in ms: CLOCK_MONOTONIC read once per iteration, so all
 * callbacks of one iteration see the same time. mg_loop_update_time()
 * re-reads it. */
uint64_t mg_loop_now(const struct mg_loop *loop);
void mg_loop_update_time(struct mg_loop *loop);
/* A fresh CLOCK_MONOTONIC reading in ns, for latency measurements. */
uint64_t mg_now_ns(void);

/* fd watchers. mg_io_start() registers fd for events (MG_READ|MG_WRITE, may
 * be 0 to register without interest; -EBUSY when io is already started);
 * mg_io_set() changes the interest (a no-op when unchanged); mg_io_stop()
 * unregisters (the fd stays open; closing it is the caller's job, after
 * mg_io_stop). All return 0 or -errno.
 *
 * Level-triggered: MG_READ/MG_WRITE are reported while the fd stays ready.
 * MG_HUP and MG_ERR are reported even without interest (epoll does), so a
 * callback must act on them (usually: close) or the loop keeps calling it.
 * Once mg_io_stop() returns, the callback is not called again for events
 * already collected in the current iteration, so the caller may free io
 * from then on (after the current callback returns). */
void mg_io_init(struct mg_io *io, mg_io_cb cb, void *data);
int mg_io_start(struct mg_loop *loop, struct mg_io *io, int fd, unsigned events);
int mg_io_set(struct mg_loop *loop, struct mg_io *io, unsigned events);
int mg_io_stop(struct mg_loop *loop, struct mg_io *io);

/* Timers. One-shot; restart from the callback to repeat. mg_timer_start()
 * (re)arms the timer to fire ms from now (0 or -ENOMEM when the heap must
 * grow); mg_timer_stop() disarms it (safe when not armed). A timer is
 * disarmed when its callback runs. A timer may be stopped, restarted or its
 * memory freed from any callback, its own included, once it is stopped.
 * Timers due at the same millisecond fire in the order they were armed; a
 * timer armed from a timer callback never fires in the same pass, even with
 * ms 0 (it fires on the next iteration). ms counts from mg_loop_now(), the
 * clock read at the start of the iteration, in whole milliseconds: against a
 * nanosecond clock a timer can fire up to 1 ms early, and code arming one
 * outside a callback after blocking should call mg_loop_update_time() first. */
void mg_timer_init(struct mg_timer *t, mg_timer_cb cb, void *data);
int mg_timer_start(struct mg_loop *loop, struct mg_timer *t, uint64_t ms);
void mg_timer_stop(struct mg_loop *loop, struct mg_timer *t);
static inline int mg_timer_armed(const struct mg_timer *t)
{
    return t->heap_idx != (size_t)-1;
}

/* Deferred work: cb(loop, data) runs after all events of the current
 * iteration (or of the next one, if called outside a callback). Queueing an
 * entry that is already queued does nothing. */
void mg_defer_init(struct mg_defer *d, mg_defer_cb cb, void *data);
void mg_defer(struct mg_loop *loop, struct mg_defer *d);
/* Takes a queued entry back out (before its object is freed). */
void mg_defer_cancel(struct mg_loop *loop, struct mg_defer *d);

/* Signals: blocks signo in the calling thread and delivers it to cb on the
 * loop. One callback per signal per loop. 0 or -errno. */
int mg_loop_signal(struct mg_loop *loop, int signo, mg_signal_cb cb, void *data);

/* From any thread: runs cb(loop, data) on the loop's thread soon. The loop
 * copies nothing; data must stay valid until cb runs. 0 or -ENOMEM. */
int mg_loop_post(struct mg_loop *loop, mg_post_cb cb, void *data);

/* Socket helpers. mg_listen_tcp() parses "HOST:PORT" (IPv4, [IPv6], or a
 * name resolved with getaddrinfo; port 0 picks a free port), sets
 * SO_REUSEADDR, SO_REUSEPORT when reuseport, O_NONBLOCK|O_CLOEXEC, and
 * listens. Returns the fd or -errno; *err (when not NULL) gets a message
 * for people. mg_sock_port() tells the bound port. */
int mg_listen_tcp(const char *hostport, int backlog, int reuseport, const char **err);
int mg_sock_port(int fd);
/* Splits "HOST:PORT" / "[V6]:PORT" into host (NUL-terminated, in buf) and
 * port. 0 or -EINVAL. */
int mg_split_hostport(const char *hostport, char *host, size_t hostlen, unsigned *port);

/* Resolves "HOST:PORT" to one socket address (the first getaddrinfo gives;
 * blocking: call it at configuration time, never per request). 0 or -errno;
 * *err (when not NULL) gets a message for people. */
struct sockaddr;
struct sockaddr_storage;
int mg_resolve_tcp(const char *hostport, struct sockaddr_storage *ss, unsigned *sslen,
                   const char **err);
/* Starts a non-blocking connect to sa: returns the fd (O_NONBLOCK|O_CLOEXEC,
 * TCP_NODELAY set) with *in_progress 1 when the connect completes later
 * (wait for MG_WRITE, then read SO_ERROR with mg_sock_error()), 0 when it
 * already completed (loopback can). -errno on failure. */
int mg_connect_tcp(const struct sockaddr *sa, unsigned salen, int *in_progress);
/* The pending error of a socket (SO_ERROR) as -errno, 0 when none. */
int mg_sock_error(int fd);
/* Sets TCP_NODELAY: small writes (a streamed token) leave at once instead of
 * waiting for the previous segment's ACK (Nagle). 0 or -errno. */
int mg_sock_nodelay(int fd);

#endif
