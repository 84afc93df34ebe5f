/* The HTTP/1.1 server core: accept loop, per-connection state machine,
 * request body streaming, response writing with backpressure, timeouts.
 * See httpd.h for the contract and docs/internals/http-server-client.md for
 * the design.
 *
 * A connection moves through these states (conn_set_state):
 *
 *   HEAD ──head parsed──▶ REQUEST ──response out, keep-alive──▶ HEAD
 *     │                      │  └──response out, body unread──▶ DISCARD ──▶ HEAD
 *     │ parse error, 408     │ response out, closing
 *     ▼                      ▼
 *   FLUSH (last bytes out) ──▶ LINGER (our side shut, input dropped) ──▶ CLOSED
 *
 * and to CLOSED from anywhere on an error, a timeout or mg_httpd_abort().
 * A CLOSED connection has its fd closed already; its on_end callback and
 * its memory are dealt with in the deferred callback (conn_run), never
 * inside the callback or API call that closed it.
 *
 * Input buffer: one per connection, grown while a head arrives (up to the
 * head limit plus room for a body), never moved while a request is live so
 * the parsed head's pointers stay valid: body bytes flow through the space
 * behind the head, and are slid back to just behind it when the end of the
 * buffer is reached. Pipelined requests wait in the buffer until the
 * current response has left. */
#define _GNU_SOURCE
#include "httpd.h"
#include "log.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Conn structs kept for reuse after close, so connection churn does not
 * malloc; their buffers are kept only when small. */
#define FREE_CONNS_MAX 256
#define KEEP_BUF_MAX (16 * 1024)
/* First size of an input buffer; it grows while a head needs it. */
#define IN_INITIAL 8192
/* Room behind a parsed head for body bytes and pipelined requests; the
 * buffer grows to give at least this much before the handler runs. */
#define IN_BODY_ROOM 4096
/* An unread request body up to this size is read and dropped to keep the
 * connection; a larger one closes it. */
#define DISCARD_MAX (64 * 1024)
/* Lingering close: how long we keep reading after shutting our side, so
 * the client gets our last response instead of an RST. */
#define LINGER_MS 2000
/* accept() calls per listener wakeup, so a connection storm on one worker
 * cannot starve the connections it already has (level-triggered: the rest
 * are accepted on the next iteration). */
#define ACCEPT_BATCH 256
/* Output past max_output the server itself may queue: a last chunk, a
 * 100 Continue. */
#define OUT_SLACK 64
/* Pause after EMFILE/ENFILE before accepting again. */
#define ACCEPT_RETRY_MS 100

enum conn_state {
    CS_HEAD,
    CS_REQUEST,
    CS_DISCARD,
    CS_FLUSH,
    CS_LINGER,
    CS_CLOSED,
};

static const char *const state_names[] = {
    [CS_HEAD] = "head", [CS_REQUEST] = "request", [CS_DISCARD] = "discard",
    [CS_FLUSH] = "flush", [CS_LINGER] = "linger", [CS_CLOSED] = "closed",
};

enum body_mode {
    BM_NONE,      /* the handler has not asked for the body */
    BM_STREAM,
    BM_COLLECT,
};

enum resp_state {
    RS_NONE,
    RS_STREAM,    /* head sent, body being written */
    RS_ENDED,     /* all of it queued; waiting for it to leave */
};

struct mg_httpd_conn;

struct mg_httpd_req {
    struct mg_httpd_conn *conn;
    void *data;
    mg_httpd_end_cb on_end;
    mg_httpd_writable_cb on_writable;
    mg_httpd_body_cb on_body;
    mg_httpd_collected_cb on_collected;
    size_t collect_max;
    enum body_mode bmode;
    unsigned body_paused : 1;
    unsigned body_done : 1;      /* all body bytes consumed from the input */
    unsigned body_last_sent : 1; /* the handler got last=1 / the collected body */
    unsigned sent_continue : 1;
    unsigned chunked : 1;        /* response is chunked */
    unsigned head_only : 1;      /* response to HEAD: no body bytes */
    unsigned until_close : 1;    /* response framed by closing the connection */
    unsigned has_length : 1;     /* the response declared a Content-Length */
    unsigned want_writable : 1;
    unsigned active : 1;         /* a request is with the handler */
    enum resp_state rstate;
    uint64_t remaining;          /* Content-Length bytes still to write */
    uint64_t discarded;
    struct mg_h1_msg msg;        /* last: not cleared between requests */
};

struct mg_httpd_conn {
    struct mg_httpd *srv;
    struct mg_httpd_conn *prev, *next;   /* srv->conns, or srv->free_conns */
    enum conn_state state;
    struct mg_xprt x;
    struct mg_io io;
    struct mg_timer timer;
    struct mg_defer defer;
    struct sockaddr_storage peer;  /* the client's address (accept) */
    socklen_t peer_len;

    struct mg_buf in;            /* off is always 0 (see the file comment) */
    size_t ipos;                 /* next unprocessed input byte */
    size_t head_len;             /* bytes of the live request's head */
    struct mg_buf out;
    struct mg_buf body;          /* collected request body */

    struct mg_h1_parser parser;
    struct mg_h1_body framing;

    unsigned nreq;               /* requests served on this connection */
    unsigned rejecting : 1;      /* accepted past max_conns: 503 and close */
    unsigned handshaking : 1;
    unsigned peer_eof : 1;
    unsigned close_after : 1;    /* close once the current response is out */
    unsigned head_bytes : 1;     /* a head has started arriving */
    unsigned in_process : 1;     /* conn_process() is on the stack */
    unsigned end_pending : 1;    /* on_end (if set by then) still to be called */
    enum mg_httpd_end end_reason;
    unsigned rd_want, wr_want;   /* readiness the transport waits for */

    uint64_t head_deadline;      /* 0: none */
    uint64_t idle_deadline;
    uint64_t body_deadline;
    uint64_t write_deadline;
    uint64_t linger_deadline;
    struct mg_httpd_req req;     /* last: its msg is not cleared on reuse */
};

struct mg_httpd {
    struct mg_loop *loop;
    struct mg_httpd_config cfg;
    char *listen_str;
    int lfd;
    int port;
    struct mg_io lio;
    struct mg_timer accept_timer;
    int accept_paused;           /* listener interest off */
    unsigned nconns;             /* served connections open */
    unsigned nreject;            /* rejecting connections open */
    unsigned reject_max;
    size_t in_max;
    struct mg_httpd_conn *conns;
    struct mg_httpd_conn *free_conns;
    unsigned nfree;
    struct mg_buf scratch;       /* response heads are formatted here */
    struct mg_buf errbody;       /* bodies of the server's own error responses */
    struct mg_buf errhdrs;       /* and their extra header lines */
    char date[40];               /* "Date: ...\r\n" */
    size_t date_len;
    time_t date_sec;
    struct mg_httpd_stats stats;
};

#define STAT_ADD(srv, f, n) __atomic_fetch_add(&(srv)->stats.f, (n), __ATOMIC_RELAXED)
#define STAT_SUB(srv, f, n) __atomic_fetch_sub(&(srv)->stats.f, (n), __ATOMIC_RELAXED)

static void conn_process(struct mg_httpd_conn *c);
static void conn_close(struct mg_httpd_conn *c, enum mg_httpd_end reason);
static void conn_update(struct mg_httpd_conn *c);

/* ------------------------------------------------------------------------ */
/* Configuration. */

void mg_httpd_config_default(struct mg_httpd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->reuseport = 1;
    cfg->max_conns = 10000;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->body_timeout_ms = 30000;
    cfg->write_timeout_ms = 60000;
    mg_h1_limits_default(&cfg->limits);
    cfg->high_water = 64 * 1024;
    cfg->max_output = 1024 * 1024;
    cfg->half_close_aborts = 1;
}

/* ------------------------------------------------------------------------ */
/* State. */

static void conn_set_state(struct mg_httpd_conn *c, enum conn_state s)
{
    /* Debug level: one relaxed load and a branch when it is off. */
    mg_log(MG_LOG_DEBUG, "httpd connection state", "fd", MG_I(c->x.fd),
           "from", MG_S(state_names[c->state]), "to", MG_S(state_names[s]),
           "requests", MG_U(c->nreq));
    c->state = s;
}

static void conn_kick(struct mg_httpd_conn *c)
{
    mg_defer(c->srv->loop, &c->defer);
}

/* ------------------------------------------------------------------------ */
/* Output. */

/* The cached "Date: ...\r\n" line, rebuilt when the second changes. */
static void put_date(struct mg_httpd *srv, struct mg_buf *b)
{
    time_t now = time(NULL);
    if (now != srv->date_sec || srv->date_len == 0) {
        struct tm tm;
        gmtime_r(&now, &tm);
        srv->date_len = strftime(srv->date, sizeof srv->date,
                                 "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_sec = now;
    }
    mg_buf_append(b, srv->date, srv->date_len);
}

/* Sends queued output until it is all gone or the socket is full. 0, or
 * -errno when the connection failed. */
static int conn_flush(struct mg_httpd_conn *c)
{
    while (c->out.len > 0) {
        struct iovec iov = {.iov_base = mg_buf_head(&c->out), .iov_len = c->out.len};
        ssize_t n = mg_xprt_sendv(&c->x, &iov, 1);
        if (n == -EAGAIN) {
            c->wr_want = c->x.want;
            return 0;
        }
        if (n < 0)
            return (int)n;
        mg_buf_consume(&c->out, (size_t)n);
        if (c->srv->cfg.write_timeout_ms)
            c->write_deadline = mg_loop_now(c->srv->loop) + c->srv->cfg.write_timeout_ms;
    }
    c->write_deadline = 0;
    return 0;
}

/* Writes iov after what is queued: directly when nothing is queued (no
 * copy), queuing what the socket does not take. The caller has checked that
 * it fits under max_output. 0 or -errno (connection failed). */
static int conn_sendv(struct mg_httpd_conn *c, struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    size_t sent = 0;
    if (c->out.len == 0 && !c->handshaking) {
        ssize_t r = mg_xprt_sendv(&c->x, iov, n);
        if (r == -EAGAIN) {
            c->wr_want = c->x.want;
            r = 0;
        }
        if (r < 0)
            return (int)r;
        sent = (size_t)r;
        if (sent == total)
            return 0;
    }
    /* Queue the rest. */
    int rc = mg_buf_reserve(&c->out, total - sent);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        const char *p = iov[i].iov_base;
        if (sent >= len) {
            sent -= len;
            continue;
        }
        mg_buf_append(&c->out, p + sent, len - sent);
        sent = 0;
    }
    if (c->srv->cfg.write_timeout_ms && c->write_deadline == 0)
        c->write_deadline = mg_loop_now(c->srv->loop) + c->srv->cfg.write_timeout_ms;
    return 0;
}

/* An error or rejection response the server writes itself; the connection
 * closes after it. */
static void conn_error_response(struct mg_httpd_conn *c, int status, const char *text)
{
    struct mg_httpd *srv = c->srv;
    struct mg_buf *b = &srv->scratch, *eb = &srv->errbody, *eh = &srv->errhdrs;
    const char *ctype = NULL;
    mg_buf_reset(eb);
    mg_buf_reset(eh);
    if (srv->cfg.error_body)
        ctype = srv->cfg.error_body(srv->cfg.data, status, text, eb, eh);
    if (!ctype || !*ctype) {
        mg_buf_reset(eb);
        mg_buf_reset(eh);
        ctype = "text/plain";
        if (mg_buf_printf(eb, "%s\n", text) < 0)
            mg_buf_reset(eb);
    }
    mg_buf_reset(b);
    mg_h1_put_status(b, status, NULL);
    put_date(srv, b);
    if (eh->len)
        mg_buf_append(b, mg_buf_head(eh), eh->len);
    mg_buf_printf(b, "Content-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                  ctype, eb->len);
    struct iovec iov[2] = {{.iov_base = mg_buf_head(b), .iov_len = b->len},
                           {.iov_base = mg_buf_head(eb), .iov_len = eb->len}};
    if (conn_sendv(c, iov, eb->len ? 2 : 1) < 0) {
        conn_close(c, MG_HTTPD_END_CLIENT_GONE);
        return;
    }
    c->close_after = 1;
    conn_set_state(c, CS_FLUSH);
}

/* ------------------------------------------------------------------------ */
/* Timers: one per connection, armed at the earliest deadline; when it fires
 * early (a deadline moved later) it is re-armed for the rest. */

static uint64_t conn_deadline(const struct mg_httpd_conn *c)
{
    uint64_t d = 0;
    const uint64_t all[] = {c->head_deadline, c->idle_deadline, c->body_deadline,
                            c->write_deadline, c->linger_deadline};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] && (d == 0 || all[i] < d))
            d = all[i];
    return d;
}

static void conn_arm_timer(struct mg_httpd_conn *c)
{
    struct mg_loop *loop = c->srv->loop;
    uint64_t d = conn_deadline(c);
    if (d == 0) {
        mg_timer_stop(loop, &c->timer);
        return;
    }
    if (mg_timer_armed(&c->timer) && c->timer.when <= d)
        return;
    uint64_t now = mg_loop_now(loop);
    if (mg_timer_start(loop, &c->timer, d > now ? d - now : 0) < 0)
        conn_close(c, MG_HTTPD_END_ABORTED);
}

static void conn_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct mg_httpd_conn *c = t->data;
    struct mg_httpd *srv = c->srv;
    uint64_t now = mg_loop_now(loop);
    if (c->state == CS_CLOSED)
        return;
    if (c->linger_deadline && now >= c->linger_deadline) {
        conn_close(c, MG_HTTPD_END_OK);
        return;
    }
    if (c->write_deadline && now >= c->write_deadline) {
        mg_log(MG_LOG_DEBUG, "httpd write timeout", "fd", MG_I(c->x.fd), "queued", MG_U(c->out.len));
        STAT_ADD(srv, timeouts, 1);
        conn_close(c, MG_HTTPD_END_TIMEOUT);
        return;
    }
    if (c->idle_deadline && now >= c->idle_deadline) {
        conn_close(c, MG_HTTPD_END_OK);   /* keep-alive idle: no request lost */
        return;
    }
    if (c->head_deadline && now >= c->head_deadline) {
        mg_log(MG_LOG_DEBUG, "httpd header timeout", "fd", MG_I(c->x.fd), "bytes", MG_U(c->in.len),
               "state", MG_S(state_names[c->state]));
        STAT_ADD(srv, timeouts, 1);
        c->head_deadline = 0;
        if (c->head_bytes && c->state == CS_HEAD) {
            conn_error_response(c, 408, "request head not received in time");
            conn_update(c);
        } else {
            conn_close(c, MG_HTTPD_END_OK);
        }
        return;
    }
    if (c->body_deadline && now >= c->body_deadline) {
        mg_log(MG_LOG_DEBUG, "httpd body timeout", "fd", MG_I(c->x.fd), "state",
               MG_S(state_names[c->state]), "paused", MG_B(c->req.body_paused),
               "responding", MG_B(c->req.rstate != RS_NONE), "queued", MG_U(c->out.len),
               "buffered", MG_U(c->in.len - c->ipos), "room", MG_U(mg_buf_room(&c->in)));
        STAT_ADD(srv, timeouts, 1);
        c->body_deadline = 0;
        if (c->req.rstate == RS_NONE && c->state == CS_REQUEST) {
            c->end_reason = MG_HTTPD_END_TIMEOUT;
            c->end_pending = 1;
            c->req.active = 0;
            conn_error_response(c, 408, "request body not received in time");
            conn_kick(c);
            conn_update(c);
        } else {
            conn_close(c, MG_HTTPD_END_TIMEOUT);
        }
        return;
    }
    conn_arm_timer(c);   /* fired early: a deadline moved */
}

/* ------------------------------------------------------------------------ */
/* Connections. */

static struct mg_httpd_conn *conn_alloc(struct mg_httpd *srv)
{
    struct mg_httpd_conn *c = srv->free_conns;
    if (c) {
        srv->free_conns = c->next;
        srv->nfree--;
        struct mg_buf in = c->in, out = c->out, body = c->body;
        memset(c, 0, offsetof(struct mg_httpd_conn, req));
        c->in = in;
        c->out = out;
        c->body = body;
        mg_buf_reset(&c->in);
        mg_buf_reset(&c->out);
        mg_buf_reset(&c->body);
    } else {
        c = malloc(sizeof *c);
        if (!c)
            return NULL;
        memset(c, 0, offsetof(struct mg_httpd_conn, req));
        mg_buf_init(&c->in, srv->in_max);
        mg_buf_init(&c->out, srv->cfg.max_output + OUT_SLACK);
        mg_buf_init(&c->body, 0);
    }
    memset(&c->req, 0, offsetof(struct mg_httpd_req, msg));
    c->req.conn = c;
    c->srv = srv;
    return c;
}

static void conn_release(struct mg_httpd *srv, struct mg_httpd_conn *c)
{
    if (srv->nfree < FREE_CONNS_MAX) {
        if (c->in.cap > KEEP_BUF_MAX)
            mg_buf_free(&c->in);
        if (c->out.cap > KEEP_BUF_MAX)
            mg_buf_free(&c->out);
        if (c->body.cap > KEEP_BUF_MAX)
            mg_buf_free(&c->body);
        c->next = srv->free_conns;
        srv->free_conns = c;
        srv->nfree++;
        return;
    }
    mg_buf_free(&c->in);
    mg_buf_free(&c->out);
    mg_buf_free(&c->body);
    free(c);
}

static void listener_resume(struct mg_httpd *srv);

/* Frees a closed connection (from conn_run, or mg_httpd_free). */
static void conn_free(struct mg_httpd_conn *c)
{
    struct mg_httpd *srv = c->srv;
    mg_defer_cancel(srv->loop, &c->defer);
    mg_timer_stop(srv->loop, &c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rejecting)
        srv->nreject--;
    else
        srv->nconns--;
    STAT_SUB(srv, open, 1);
    conn_release(srv, c);
    if (srv->accept_paused == 1)
        listener_resume(srv);
}

/* Closes the connection now (fd, watcher, timer); on_end and the memory are
 * handled by the deferred conn_run. */
static void conn_close(struct mg_httpd_conn *c, enum mg_httpd_end reason)
{
    if (c->state == CS_CLOSED)
        return;
    struct mg_loop *loop = c->srv->loop;
    if (c->req.active) {
        c->req.active = 0;
        c->end_pending = 1;
        c->end_reason = reason;
    }
    mg_io_stop(loop, &c->io);
    mg_timer_stop(loop, &c->timer);
    conn_set_state(c, CS_CLOSED);
    mg_xprt_close(&c->x);
    conn_kick(c);
}

/* end_pending is set whether or not on_end is set yet: the callback is
 * looked up only now, so a handler that sets on_end after the API call that
 * ended its request (a refused body, a failed write) still gets it. */
static void conn_call_end(struct mg_httpd_conn *c)
{
    if (!c->end_pending)
        return;
    c->end_pending = 0;
    mg_httpd_end_cb cb = c->req.on_end;
    c->req.on_end = NULL;
    if (cb)
        cb(&c->req, c->end_reason);
}

static int conn_reading(struct mg_httpd_conn *c);
static int conn_read(struct mg_httpd_conn *c);

static void conn_run(struct mg_loop *loop, void *data)
{
    struct mg_httpd_conn *c = data;
    if (c->state == CS_CLOSED) {
        conn_call_end(c);
        conn_free(c);
        return;
    }
    /* Bytes already decoded inside the transport (TLS) never make the fd
     * readable: conn_update kicked us to read them. */
    if (!c->handshaking && conn_reading(c) && mg_xprt_pending(&c->x) > 0) {
        int rc = conn_read(c);
        if (rc < 0) {
            conn_close(c, rc == -ENOBUFS || rc == -ENOMEM ? MG_HTTPD_END_ABORTED
                                                          : MG_HTTPD_END_CLIENT_GONE);
            return;
        }
    }
    conn_process(c);
}

static int conn_reading(struct mg_httpd_conn *c)
{
    int reading;
    switch (c->state) {
    case CS_HEAD:
        reading = 1;
        break;
    case CS_REQUEST:
    case CS_DISCARD:
        /* Keep reading while there is room: body bytes, pipelined requests,
         * and the end of stream that tells the client went away. */
        reading = !c->peer_eof && (mg_buf_room(&c->in) > 0 || c->ipos > c->head_len);
        break;
    case CS_FLUSH:
    case CS_LINGER:
        reading = !c->peer_eof;
        break;
    default:
        reading = 0;
    }
    return reading;
}

/* Interest and timer after processing. */
static void conn_update(struct mg_httpd_conn *c)
{
    if (c->state == CS_CLOSED)
        return;
    unsigned ev = 0;
    int reading = conn_reading(c);
    if (c->handshaking) {
        ev = c->x.want ? c->x.want : MG_READ;
    } else {
        if (reading)
            ev |= c->rd_want ? c->rd_want : MG_READ;
        if (reading && mg_xprt_pending(&c->x) > 0)
            conn_kick(c);
        if (c->out.len > 0)
            ev |= c->wr_want ? c->wr_want : MG_WRITE;
    }
    if (mg_io_set(c->srv->loop, &c->io, ev) < 0) {
        conn_close(c, MG_HTTPD_END_ABORTED);
        return;
    }
    conn_arm_timer(c);
}

/* ------------------------------------------------------------------------ */
/* Input. */

/* Slides unconsumed body bytes back to just behind the live head (or to
 * the start when no head is live), making room at the end. */
static void in_compact(struct mg_httpd_conn *c)
{
    size_t keep = c->state == CS_REQUEST ? c->head_len : 0;
    if (c->ipos <= keep)
        return;
    size_t rest = c->in.len - c->ipos;
    if (rest)
        memmove(c->in.data + keep, c->in.data + c->ipos, rest);
    c->in.len = keep + rest;
    c->ipos = keep;
}

/* Reads what the socket has, into the room the input buffer has (growing it
 * only while a head is being received). 0, or -errno (connection failed). */
static int conn_read(struct mg_httpd_conn *c)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        if (c->state == CS_FLUSH || c->state == CS_LINGER) {
            /* Nothing more will be served: drop what arrives. */
            c->in.len = 0;
            c->ipos = 0;
        }
        if (mg_buf_room(&c->in) == 0) {
            in_compact(c);
            if (mg_buf_room(&c->in) == 0 && c->state == CS_HEAD && c->in.len < c->srv->in_max) {
                size_t grow = c->in.cap ? c->in.cap : IN_INITIAL;
                if (grow > c->srv->in_max - c->in.len)
                    grow = c->srv->in_max - c->in.len;
                int rc = mg_buf_reserve(&c->in, grow);
                if (rc < 0)
                    return rc;
            }
            if (mg_buf_room(&c->in) == 0)
                return 0;   /* full: backpressure */
        }
        size_t room = mg_buf_room(&c->in);
        ssize_t n = mg_xprt_recv(&c->x, mg_buf_tail(&c->in), room);
        if (n == -EAGAIN) {
            c->rd_want = c->x.want;
            return 0;
        }
        if (n < 0)
            return (int)n;
        if (n == 0) {
            c->peer_eof = 1;
            return 0;
        }
        mg_buf_commit(&c->in, (size_t)n);
        if (c->req.bmode != BM_NONE && !c->req.body_paused && c->srv->cfg.body_timeout_ms &&
            c->body_deadline)
            c->body_deadline = mg_loop_now(c->srv->loop) + c->srv->cfg.body_timeout_ms;
        /* A short read drained the socket; level-triggered epoll tells us
         * when more arrives, so skip the recv that would say EAGAIN. */
        if ((size_t)n < room && mg_xprt_pending(&c->x) == 0)
            return 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Requests. */

static int conn_keep_alive(const struct mg_httpd_conn *c)
{
    return c->req.msg.keep_alive && !c->close_after && !c->peer_eof;
}

/* Starts a request whose head is complete: called with the head at in[0]. */
static void request_begin(struct mg_httpd_conn *c, size_t head_len)
{
    struct mg_httpd *srv = c->srv;
    struct mg_httpd_req *r = &c->req;

    c->head_len = head_len;
    c->ipos = head_len;
    c->head_deadline = c->idle_deadline = 0;
    c->head_bytes = 0;
    c->nreq++;
    r->active = 1;
    r->data = NULL;
    r->on_end = NULL;
    r->on_writable = NULL;
    r->on_body = NULL;
    r->on_collected = NULL;
    r->bmode = BM_NONE;
    r->body_paused = r->body_last_sent = r->sent_continue = 0;
    r->body_done = r->msg.framing == MG_H1_BODY_NONE;
    r->chunked = r->until_close = r->want_writable = 0;
    r->head_only = r->msg.head_request;
    r->rstate = RS_NONE;
    r->remaining = r->discarded = 0;
    if (!r->body_done)
        mg_h1_body_init(&c->framing, &r->msg, &srv->cfg.limits);
    conn_set_state(c, CS_REQUEST);
    STAT_ADD(srv, requests, 1);
    srv->cfg.on_request(r, srv->cfg.data);
}

/* Readies the connection for its next request once the current one is over
 * (response sent, body read or discarded): pipelined bytes move to the front
 * of the input, the parser starts afresh, and either the header timeout runs
 * (some of the next head is already here) or the keep-alive idle one does. */
static void conn_next_request(struct mg_httpd_conn *c)
{
    size_t rest = c->in.len - c->ipos;
    if (rest)
        memmove(c->in.data, c->in.data + c->ipos, rest);
    c->in.len = rest;
    c->ipos = 0;
    c->head_len = 0;
    mg_h1_parser_reset(&c->parser);
    conn_set_state(c, CS_HEAD);
    uint64_t now = mg_loop_now(c->srv->loop);
    if (rest) {
        c->head_bytes = 1;
        if (c->srv->cfg.header_timeout_ms)
            c->head_deadline = now + c->srv->cfg.header_timeout_ms;
    } else if (c->srv->cfg.idle_timeout_ms) {
        c->idle_deadline = now + c->srv->cfg.idle_timeout_ms;
    }
}

/* The response has left (and the body is consumed or given up on): end the
 * request and get ready for the next one. */
static void request_finish(struct mg_httpd_conn *c)
{
    struct mg_httpd_req *r = &c->req;
    STAT_ADD(c->srv, responses, 1);
    r->active = 0;
    c->end_reason = MG_HTTPD_END_OK;
    c->end_pending = 1;
    c->body_deadline = 0;
    int keep = conn_keep_alive(c) && !r->until_close;
    if (keep && !r->body_done) {
        /* An unread body: drop a small one to keep the connection. A client
         * that waits for 100-continue never sends it: close instead. */
        if ((r->msg.expect_continue && !r->sent_continue) ||
            (r->msg.framing == MG_H1_BODY_LENGTH &&
             c->framing.remaining > DISCARD_MAX))
            keep = 0;
    }
    conn_call_end(c);
    if (c->state == CS_CLOSED)
        return;
    if (!keep) {
        c->close_after = 1;
        conn_set_state(c, CS_FLUSH);
        return;
    }
    if (!r->body_done) {
        if (c->srv->cfg.body_timeout_ms)
            c->body_deadline = mg_loop_now(c->srv->loop) + c->srv->cfg.body_timeout_ms;
        c->head_len = 0;   /* the head is no longer needed in place */
        conn_set_state(c, CS_DISCARD);
        return;
    }
    conn_next_request(c);
}

/* A body framing error (or a collected body past its cap): answered when no
 * response was started, the connection closed either way. */
static void request_bad_body(struct mg_httpd_conn *c, int status, const char *why)
{
    struct mg_httpd_req *r = &c->req;
    if (r->rstate != RS_NONE || c->out.len >= c->srv->cfg.max_output / 2) {
        conn_close(c, MG_HTTPD_END_BAD_BODY);
        return;
    }
    r->active = 0;
    c->end_reason = MG_HTTPD_END_BAD_BODY;
    c->end_pending = 1;
    c->body_deadline = 0;
    conn_error_response(c, status, why);
    if (c->state != CS_CLOSED)
        conn_call_end(c);
}

/* Decodes body bytes from the input. deliver: hand them to the handler
 * (stream or collect); otherwise drop them (discard). Returns 0, or -1 when
 * the connection changed state under us (closed, error answered). */
static int body_pump(struct mg_httpd_conn *c, int deliver)
{
    struct mg_httpd_req *r = &c->req;
    while (!r->body_done && c->ipos < c->in.len) {
        if (deliver && r->body_paused)
            return 0;
        const char *d = NULL;
        size_t dl = 0;
        long n = mg_h1_body_decode(&c->framing, c->in.data + c->ipos, c->in.len - c->ipos, &d, &dl);
        if (n < 0) {
            if (!deliver) {
                conn_close(c, MG_HTTPD_END_BAD_BODY);
                return -1;
            }
            request_bad_body(c, c->framing.err.status ? c->framing.err.status : 400,
                             c->framing.err.reason ? c->framing.err.reason : "invalid body");
            return -1;
        }
        c->ipos += (size_t)n;
        if (c->framing.done)
            r->body_done = 1;
        if (!deliver) {
            r->discarded += dl;
            if (r->discarded > DISCARD_MAX) {
                /* The response is out: a lingering close (FLUSH, LINGER),
                 * since close(2) over unread input sends an RST that can
                 * destroy the response before the client reads it. */
                c->close_after = 1;
                c->body_deadline = 0;
                conn_set_state(c, CS_FLUSH);
                return -1;
            }
        } else if (r->bmode == BM_STREAM) {
            if (dl || r->body_done) {
                if (r->body_done)
                    r->body_last_sent = 1;
                r->on_body(r, d, dl, r->body_done);
                if (c->state != CS_REQUEST || !r->active)
                    return -1;
            }
        } else if (r->bmode == BM_COLLECT && dl) {
            if (mg_buf_append(&c->body, d, dl) < 0) {
                request_bad_body(c, 413, "request body too large");
                return -1;
            }
        }
        if (n == 0 && dl == 0)
            break;   /* need more bytes */
    }
    if (c->ipos == c->in.len)
        in_compact(c);
    return 0;
}

/* Delivers what the request's body mode wants. -1 when the request or the
 * connection ended under us. */
static int request_body(struct mg_httpd_conn *c)
{
    struct mg_httpd_req *r = &c->req;
    if (r->bmode == BM_NONE || r->body_paused)
        return 0;
    if (!r->body_done && body_pump(c, 1) < 0)
        return -1;
    if (r->body_done && !r->body_last_sent) {
        r->body_last_sent = 1;
        c->body_deadline = 0;
        if (r->bmode == BM_STREAM) {
            r->on_body(r, NULL, 0, 1);
        } else {
            r->on_collected(r, c->body.data ? mg_buf_head(&c->body) : "", c->body.len);
        }
        if (c->state != CS_REQUEST || !r->active)
            return -1;
    }
    if (!r->body_done && !r->body_paused && c->srv->cfg.body_timeout_ms && !c->body_deadline)
        c->body_deadline = mg_loop_now(c->srv->loop) + c->srv->cfg.body_timeout_ms;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The connection's engine: runs after reads, writes and API calls. */

static void conn_process(struct mg_httpd_conn *c)
{
    struct mg_httpd *srv = c->srv;
    struct mg_httpd_req *r = &c->req;
    if (c->in_process)
        return;
    c->in_process = 1;
    /* Bounded, so a flood of pipelined requests cannot keep one connection
     * on the CPU; each round changes state or breaks. */
    int round;
    for (round = 0; round < 64 && c->state != CS_CLOSED; round++) {
        if (c->end_pending && !r->active) {
            conn_call_end(c);
            continue;
        }
        if (c->state == CS_HEAD) {
            if (c->in.len == 0) {
                if (c->peer_eof)
                    conn_close(c, MG_HTTPD_END_OK);
                break;
            }
            if (!c->head_bytes) {
                c->head_bytes = 1;
                c->idle_deadline = 0;
                if (srv->cfg.header_timeout_ms && c->nreq > 0)
                    c->head_deadline = mg_loop_now(srv->loop) + srv->cfg.header_timeout_ms;
            }
            int rc = mg_h1_parse_head(&c->parser, c->in.data, c->in.len, &r->msg);
            if (rc < 0) {
                STAT_ADD(srv, parse_errors, 1);
                int st = c->parser.err.status ? c->parser.err.status : 400;
                conn_error_response(c, st, c->parser.err.reason ? c->parser.err.reason
                                                                : "bad request");
                continue;
            }
            if (rc == 0) {
                if (c->peer_eof)
                    conn_close(c, MG_HTTPD_END_OK);
                else if (c->in.len >= srv->in_max) {
                    STAT_ADD(srv, parse_errors, 1);
                    conn_error_response(c, 431, "request head too large");
                    continue;
                }
                break;
            }
            /* Give the body room behind the head now: the buffer must not
             * move once the handler holds msg's pointers. When it has to
             * grow, parse the head again in its new place (rare: only
             * heads that nearly fill the buffer). */
            size_t want = IN_BODY_ROOM;
            if (want > srv->in_max - c->in.len)
                want = srv->in_max - c->in.len;
            if (mg_buf_room(&c->in) < want) {
                const char *old = c->in.data;
                if (mg_buf_reserve(&c->in, want) < 0) {
                    conn_close(c, MG_HTTPD_END_ABORTED);
                    break;
                }
                if (c->in.data != old) {
                    mg_h1_parser_reset(&c->parser);
                    rc = mg_h1_parse_head(&c->parser, c->in.data, c->in.len, &r->msg);
                    if (rc <= 0) {   /* cannot happen: the same bytes parsed */
                        conn_close(c, MG_HTTPD_END_ABORTED);
                        break;
                    }
                }
            }
            if (r->msg.framing == MG_H1_BODY_LENGTH && srv->cfg.limits.max_body &&
                r->msg.content_length > srv->cfg.limits.max_body) {
                /* Refused before the handler or the body: 413, close. */
                STAT_ADD(srv, parse_errors, 1);
                conn_error_response(c, 413, "request body larger than the server accepts");
                continue;
            }
            request_begin(c, (size_t)rc);
            continue;
        }
        if (c->state == CS_REQUEST) {
            if (r->active && request_body(c) < 0)
                continue;
            if (c->state != CS_REQUEST)
                continue;
            if (r->active && r->want_writable && c->out.len < srv->cfg.high_water / 4) {
                r->want_writable = 0;
                if (r->on_writable) {
                    r->on_writable(r);
                    continue;
                }
            }
            if (r->active && r->rstate == RS_ENDED && c->out.len == 0) {
                request_finish(c);
                continue;
            }
            if (!r->active && c->out.len == 0) {
                /* Ended by the server (408/413 answered): close. */
                conn_set_state(c, CS_FLUSH);
                continue;
            }
            if (c->peer_eof && r->active) {
                /* The client sent FIN. Before its body ended, or (by
                 * default) before the response ended: it has gone. A
                 * Content-Length body already whole in the buffer counts
                 * as ended even if the handler has not read it (yet). */
                int body_in = r->body_done ||
                              (r->msg.framing == MG_H1_BODY_LENGTH &&
                               c->framing.remaining <= c->in.len - c->ipos);
                if (!body_in || (srv->cfg.half_close_aborts && r->rstate != RS_ENDED)) {
                    conn_close(c, MG_HTTPD_END_CLIENT_GONE);
                    break;
                }
                c->close_after = 1;
            }
            break;
        }
        if (c->state == CS_DISCARD) {
            if (body_pump(c, 0) < 0)
                continue;
            if (r->body_done) {
                c->body_deadline = 0;
                conn_next_request(c);
                continue;
            }
            if (c->peer_eof)
                conn_close(c, MG_HTTPD_END_OK);
            break;
        }
        if (c->state == CS_FLUSH) {
            if (c->out.len > 0)
                break;
            /* All out: shut our side and read until the client closes, so
             * unread input does not turn our close into an RST that could
             * destroy the response before the client reads it. */
            mg_xprt_shutdown(&c->x);
            c->head_deadline = c->idle_deadline = c->body_deadline = c->write_deadline = 0;
            c->linger_deadline = mg_loop_now(srv->loop) + LINGER_MS;
            conn_set_state(c, CS_LINGER);
            continue;
        }
        if (c->state == CS_LINGER) {
            c->in.len = c->ipos = 0;
            if (c->peer_eof)
                conn_close(c, MG_HTTPD_END_OK);
            break;
        }
        break;
    }
    c->in_process = 0;
    if (round == 64)
        conn_kick(c);   /* more to do: continue on the next iteration */
    conn_update(c);
}

static void conn_io_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct mg_httpd_conn *c = io->data;
    if (c->state == CS_CLOSED)
        return;
    if (c->handshaking) {
        int rc = mg_xprt_handshake(&c->x);
        if (rc == -EAGAIN) {
            conn_update(c);
            return;
        }
        if (rc < 0) {
            conn_close(c, MG_HTTPD_END_CLIENT_GONE);
            return;
        }
        c->handshaking = 0;
    }
    if (c->out.len > 0) {
        int rc = conn_flush(c);
        if (rc < 0) {
            conn_close(c, MG_HTTPD_END_CLIENT_GONE);
            return;
        }
    }
    if (events & (MG_READ | MG_HUP | MG_ERR)) {
        int reading = (c->io.events & MG_READ) || c->state == CS_HEAD;
        if (!reading && (events & (MG_HUP | MG_ERR))) {
            /* Not reading (input full) and the socket is dead. */
            conn_close(c, MG_HTTPD_END_CLIENT_GONE);
            return;
        }
        int rc = conn_read(c);
        if (rc < 0) {
            conn_close(c, rc == -ENOBUFS || rc == -ENOMEM ? MG_HTTPD_END_ABORTED
                                                          : MG_HTTPD_END_CLIENT_GONE);
            return;
        }
    }
    conn_process(c);
}

/* ------------------------------------------------------------------------ */
/* Accepting. */

static void listener_pause(struct mg_httpd *srv, int why)
{
    if (srv->accept_paused)
        return;
    if (mg_io_set(srv->loop, &srv->lio, 0) < 0)
        return;
    srv->accept_paused = why;
    STAT_ADD(srv, accept_paused, 1);
}

static void listener_resume(struct mg_httpd *srv)
{
    if (!srv->accept_paused || srv->lfd == -1)
        return;
    if (mg_io_set(srv->loop, &srv->lio, MG_READ) == 0)
        srv->accept_paused = 0;
}

static void accept_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct mg_httpd *srv = t->data;
    if (srv->accept_paused == 2)
        listener_resume(srv);
}

static void conn_start(struct mg_httpd *srv, int fd, int rejecting,
                       const struct sockaddr_storage *peer, socklen_t peer_len)
{
    struct mg_httpd_conn *c = conn_alloc(srv);
    if (!c) {
        close(fd);
        return;
    }
    if (peer_len > sizeof c->peer)
        peer_len = sizeof c->peer;
    memcpy(&c->peer, peer, peer_len);
    c->peer_len = peer_len;
    mg_io_init(&c->io, conn_io_cb, c);
    mg_timer_init(&c->timer, conn_timer_cb, c);
    mg_defer_init(&c->defer, conn_run, c);
    mg_h1_parser_init(&c->parser, MG_H1_REQUEST, &srv->cfg.limits);
    struct mg_xprt_factory *f = srv->cfg.xprt ? srv->cfg.xprt : &mg_xprt_raw_factory;
    if (f->wrap(f, &c->x, fd, 1, NULL) < 0) {
        close(fd);
        conn_release(srv, c);
        return;
    }
    if (mg_io_start(srv->loop, &c->io, fd, MG_READ) < 0) {
        mg_xprt_close(&c->x);
        conn_release(srv, c);
        return;
    }
    c->handshaking = c->x.ops->handshake != NULL;
    c->state = CS_HEAD;
    c->rejecting = rejecting;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    if (rejecting)
        srv->nreject++;
    else
        srv->nconns++;
    STAT_ADD(srv, open, 1);
    STAT_ADD(srv, accepted, 1);
    if (rejecting) {
        STAT_ADD(srv, rejected, 1);
        conn_error_response(c, 503, "server at its connection limit, retry later");
        conn_process(c);
        return;
    }
    if (srv->cfg.header_timeout_ms)
        c->head_deadline = mg_loop_now(srv->loop) + srv->cfg.header_timeout_ms;
    conn_update(c);
}

static void listener_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct mg_httpd *srv = io->data;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int rejecting = srv->nconns >= srv->cfg.max_conns;
        if (rejecting && srv->nreject >= srv->reject_max) {
            if (!srv->accept_paused)
                mg_log(MG_LOG_WARN, "httpd: connection limit and rejection slots full, "
                       "pausing accepts until connections close",
                       "listen", MG_S(srv->cfg.listen), "port", MG_I(srv->port),
                       "max_conns", MG_U(srv->cfg.max_conns));
            listener_pause(srv, 1);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(srv->lfd, (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: retrying now would spin. At most one
                 * line per pause, so at most ten a second. */
                mg_log(MG_LOG_WARN, "httpd: accept failed, pausing accepts",
                       "listen", MG_S(srv->cfg.listen), "port", MG_I(srv->port), "error", MG_ERRNO(errno),
                       "pause_ms", MG_I(ACCEPT_RETRY_MS), "open", MG_U(srv->nconns + srv->nreject));
                listener_pause(srv, 2);
                mg_timer_start(loop, &srv->accept_timer, ACCEPT_RETRY_MS);
            }
            return;   /* EAGAIN: the queue is empty */
        }
        mg_sock_nodelay(fd);
        conn_start(srv, fd, rejecting, &peer, peer_len);
    }
}

/* ------------------------------------------------------------------------ */
/* Server. */

int mg_httpd_new(struct mg_loop *loop, const struct mg_httpd_config *cfg,
                 struct mg_httpd **out, const char **err)
{
    int rc;
    if (!cfg->listen || !cfg->on_request) {
        if (err)
            *err = "listen address and on_request are required";
        return -EINVAL;
    }
    struct mg_httpd *srv = calloc(1, sizeof *srv);
    if (!srv) {
        if (err)
            *err = "out of memory";
        return -ENOMEM;
    }
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->listen_str = strdup(cfg->listen);
    if (!srv->listen_str) {
        rc = -ENOMEM;
        goto fail;
    }
    srv->cfg.listen = srv->listen_str;
    if (srv->cfg.max_conns == 0)
        srv->cfg.max_conns = 1;
    if (srv->cfg.high_water == 0)
        srv->cfg.high_water = 64 * 1024;
    if (srv->cfg.max_output < srv->cfg.high_water)
        srv->cfg.max_output = srv->cfg.high_water;
    srv->reject_max = srv->cfg.max_conns / 4 + 16;
    srv->in_max = srv->cfg.limits.max_head + 16 * 1024;
    mg_buf_init(&srv->scratch, 64 * 1024);
    mg_buf_init(&srv->errbody, 4 * 1024);
    mg_buf_init(&srv->errhdrs, 4 * 1024);
    mg_timer_init(&srv->accept_timer, accept_timer_cb, srv);
    srv->lfd = mg_listen_tcp(cfg->listen, cfg->backlog, cfg->reuseport, err);
    if (srv->lfd < 0) {
        rc = srv->lfd;
        goto fail_str;
    }
    rc = mg_sock_port(srv->lfd);
    if (rc < 0)
        goto fail_fd;
    srv->port = rc;
    mg_io_init(&srv->lio, listener_cb, srv);
    rc = mg_io_start(loop, &srv->lio, srv->lfd, MG_READ);
    if (rc < 0)
        goto fail_fd;
    *out = srv;
    return 0;

fail_fd:
    close(srv->lfd);
fail_str:
    free(srv->listen_str);
fail:
    free(srv);
    if (err && rc == -ENOMEM)
        *err = "out of memory";
    return rc;
}

void mg_httpd_free(struct mg_httpd *srv)
{
    if (!srv)
        return;
    mg_timer_stop(srv->loop, &srv->accept_timer);
    if (srv->lfd != -1) {
        mg_io_stop(srv->loop, &srv->lio);
        close(srv->lfd);
        srv->lfd = -1;
    }
    while (srv->conns) {
        struct mg_httpd_conn *c = srv->conns;
        conn_close(c, MG_HTTPD_END_SHUTDOWN);
        conn_call_end(c);
        c->nreq = 0;
        conn_free(c);
    }
    while (srv->free_conns) {
        struct mg_httpd_conn *c = srv->free_conns;
        srv->free_conns = c->next;
        mg_buf_free(&c->in);
        mg_buf_free(&c->out);
        mg_buf_free(&c->body);
        free(c);
    }
    mg_buf_free(&srv->scratch);
    mg_buf_free(&srv->errbody);
    mg_buf_free(&srv->errhdrs);
    free(srv->listen_str);
    free(srv);
}

int mg_httpd_port(const struct mg_httpd *srv)
{
    return srv->port;
}

struct mg_loop *mg_httpd_loop(const struct mg_httpd *srv)
{
    return srv->loop;
}

void mg_httpd_get_stats(const struct mg_httpd *srv, struct mg_httpd_stats *out)
{
    out->accepted = __atomic_load_n(&srv->stats.accepted, __ATOMIC_RELAXED);
    out->rejected = __atomic_load_n(&srv->stats.rejected, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&srv->stats.requests, __ATOMIC_RELAXED);
    out->responses = __atomic_load_n(&srv->stats.responses, __ATOMIC_RELAXED);
    out->parse_errors = __atomic_load_n(&srv->stats.parse_errors, __ATOMIC_RELAXED);
    out->timeouts = __atomic_load_n(&srv->stats.timeouts, __ATOMIC_RELAXED);
    out->accept_paused = __atomic_load_n(&srv->stats.accept_paused, __ATOMIC_RELAXED);
    out->open = __atomic_load_n(&srv->stats.open, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------------------ */
/* Request accessors. */

const struct mg_h1_msg *mg_httpd_req_msg(const struct mg_httpd_req *req)
{
    return &req->msg;
}

const char *mg_httpd_req_header(const struct mg_httpd_req *req, const char *name, size_t *len)
{
    int i = mg_h1_find_header(&req->msg, name, 0);
    if (i < 0)
        return NULL;
    if (len)
        *len = req->msg.headers[i].value_len;
    return req->msg.headers[i].value;
}

int mg_httpd_req_peer(const struct mg_httpd_req *req, char *buf, size_t n)
{
    const struct mg_httpd_conn *c = req->conn;
    const void *a;
    int af = c->peer_len ? c->peer.ss_family : AF_UNSPEC;
    if (af == AF_INET)
        a = &((const struct sockaddr_in *)&c->peer)->sin_addr;
    else if (af == AF_INET6)
        a = &((const struct sockaddr_in6 *)&c->peer)->sin6_addr;
    else
        return -EAFNOSUPPORT;
    if (!inet_ntop(af, a, buf, (socklen_t)n))
        return -errno;
    return (int)strlen(buf);
}

void mg_httpd_req_set_data(struct mg_httpd_req *req, void *data)
{
    req->data = data;
}

void *mg_httpd_req_data(const struct mg_httpd_req *req)
{
    return req->data;
}

struct mg_httpd *mg_httpd_req_server(const struct mg_httpd_req *req)
{
    return req->conn->srv;
}

void mg_httpd_on_end(struct mg_httpd_req *req, mg_httpd_end_cb cb)
{
    req->on_end = cb;
}

void mg_httpd_on_writable(struct mg_httpd_req *req, mg_httpd_writable_cb cb)
{
    req->on_writable = cb;
}

int mg_httpd_started(const struct mg_httpd_req *req)
{
    return req->rstate != RS_NONE;
}

/* ------------------------------------------------------------------------ */
/* Request body. */

/* "100 Continue" when the client waits for it and no response has begun. */
static int maybe_continue(struct mg_httpd_conn *c)
{
    struct mg_httpd_req *r = &c->req;
    if (!r->msg.expect_continue || r->sent_continue || r->rstate != RS_NONE ||
        r->msg.minor == 0 || r->body_done)
        return 0;
    r->sent_continue = 1;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec iov = {.iov_base = (void *)cont, .iov_len = sizeof cont - 1};
    int rc = conn_sendv(c, &iov, 1);
    if (rc < 0) {
        conn_close(c, MG_HTTPD_END_CLIENT_GONE);
        return -ENOTCONN;
    }
    return 0;
}

static int req_usable(const struct mg_httpd_req *req)
{
    return req->active && req->conn->state == CS_REQUEST;
}

int mg_httpd_read_body(struct mg_httpd_req *req, mg_httpd_body_cb cb)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req_usable(req))
        return -ENOTCONN;
    if (req->bmode != BM_NONE)
        return -EALREADY;
    req->bmode = BM_STREAM;
    req->on_body = cb;
    int rc = maybe_continue(c);
    if (rc < 0)
        return rc;
    conn_kick(c);
    return 0;
}

void mg_httpd_pause_body(struct mg_httpd_req *req)
{
    struct mg_httpd_conn *c = req->conn;
    req->body_paused = 1;
    c->body_deadline = 0;
}

void mg_httpd_resume_body(struct mg_httpd_req *req)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req->body_paused)
        return;
    req->body_paused = 0;
    if (req_usable(req))
        conn_kick(c);
}

int mg_httpd_collect_body(struct mg_httpd_req *req, size_t max, mg_httpd_collected_cb cb)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req_usable(req))
        return -ENOTCONN;
    if (req->bmode != BM_NONE)
        return -EALREADY;
    req->bmode = BM_COLLECT;
    req->on_collected = cb;
    req->collect_max = max;
    mg_buf_reset(&c->body);
    c->body.max = max;
    if (req->msg.framing == MG_H1_BODY_LENGTH && req->msg.content_length > max) {
        /* A response already begun cannot be followed by a 413 (the client
         * would take it for the next request's): close, as
         * request_bad_body() does. */
        if (req->rstate != RS_NONE) {
            conn_close(c, MG_HTTPD_END_BAD_BODY);
            return 0;
        }
        /* Refused before reading (and without 100-continue): 413, close. */
        req->active = 0;
        c->end_reason = MG_HTTPD_END_BAD_BODY;
        c->end_pending = 1;
        conn_error_response(c, 413, "request body too large");
        conn_kick(c);
        return 0;
    }
    int rc = maybe_continue(c);
    if (rc < 0)
        return rc;
    conn_kick(c);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Response. */

static int is_hop_header(const struct mg_h1_header *h)
{
    static const struct {
        const char *n;
        uint32_t l;
    } skip[] = {{"content-length", 14}, {"transfer-encoding", 17},
                {"connection", 10}, {"keep-alive", 10}};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (h->name_len == skip[i].l && strncasecmp(h->name, skip[i].n, skip[i].l) == 0)
            return 1;
    return 0;
}

/* Formats the response head into srv->scratch. length >= 0: Content-Length;
 * -1: chunked (or until close for HTTP/1.0). */
static int format_head(struct mg_httpd_conn *c, int status, const struct mg_h1_header *hdrs,
                       unsigned nhdrs, int64_t length)
{
    struct mg_httpd_req *r = &c->req;
    struct mg_buf *b = &c->srv->scratch;
    int rc;
    mg_buf_reset(b);
    /* A refused earlier attempt (-EINVAL, -EMSGSIZE) must not leave its
     * framing behind for this one. */
    r->chunked = r->until_close = 0;
    int has_date = 0;
    for (unsigned i = 0; i < nhdrs; i++) {
        const struct mg_h1_header *h = &hdrs[i];
        if (h->name_len == 10 && strncasecmp(h->name, "connection", 10) == 0 &&
            mg_h1_list_has(h->value, h->value_len, "close"))
            c->close_after = 1;
        /* A proxied response keeps its origin's Date (one Date only). */
        if (h->name_len == 4 && strncasecmp(h->name, "date", 4) == 0)
            has_date = 1;
    }
    if (length < 0) {
        if (r->msg.minor == 1)
            r->chunked = !r->head_only;
        else
            r->until_close = 1;
    }
    /* A body the handler never read keeps the connection only if it can be
     * dropped cheaply; decide now, so the head can say so. */
    if (!r->body_done && r->bmode == BM_NONE &&
        ((r->msg.expect_continue && !r->sent_continue) ||
         r->msg.framing == MG_H1_BODY_CHUNKED ||
         (r->msg.framing == MG_H1_BODY_LENGTH && r->msg.content_length > DISCARD_MAX)))
        c->close_after = 1;
    int keep = conn_keep_alive(c) && !r->until_close;
    if ((rc = mg_h1_put_status(b, status, NULL)) < 0)
        return rc;
    if (!has_date)
        put_date(c->srv, b);
    for (unsigned i = 0; i < nhdrs; i++) {
        if (is_hop_header(&hdrs[i]))
            continue;
        rc = mg_h1_put_header_n(b, hdrs[i].name, hdrs[i].name_len, hdrs[i].value,
                                hdrs[i].value_len);
        if (rc < 0)
            return rc;
    }
    /* 1xx, 204 and 304 carry no framing headers. */
    int bodyless = status < 200 || status == 204 || status == 304;
    if (!bodyless) {
        if (length >= 0)
            rc = mg_buf_printf(b, "Content-Length: %lld\r\n", (long long)length);
        else if (r->msg.minor == 1)
            rc = mg_buf_append_str(b, "Transfer-Encoding: chunked\r\n");
        if (rc < 0)
            return rc;
    }
    if (!keep)
        rc = mg_buf_append_str(b, "Connection: close\r\n");
    else if (r->msg.minor == 0)
        rc = mg_buf_append_str(b, "Connection: keep-alive\r\n");
    if (rc < 0)
        return rc;
    if (!keep)
        c->close_after = 1;
    return mg_buf_append(b, "\r\n", 2);
}

int mg_httpd_respond(struct mg_httpd_req *req, int status, const struct mg_h1_header *hdrs,
                     unsigned nhdrs, const void *body, size_t len)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req_usable(req))
        return -ENOTCONN;
    if (req->rstate != RS_NONE)
        return -EALREADY;
    int bodyless = status < 200 || status == 204 || status == 304;
    if (bodyless)
        len = 0;
    int rc = format_head(c, status, hdrs, nhdrs, (int64_t)len);
    if (rc < 0)
        return rc == -ENOBUFS ? -EMSGSIZE : rc;
    struct mg_buf *b = &c->srv->scratch;
    size_t blen = req->head_only ? 0 : len;
    if (b->len + blen + c->out.len > c->srv->cfg.max_output)
        return -EMSGSIZE;
    struct iovec iov[2] = {{.iov_base = mg_buf_head(b), .iov_len = b->len},
                           {.iov_base = (void *)body, .iov_len = blen}};
    req->rstate = RS_ENDED;
    rc = conn_sendv(c, iov, blen ? 2 : 1);
    if (rc < 0) {
        conn_close(c, rc == -ENOMEM ? MG_HTTPD_END_ABORTED : MG_HTTPD_END_CLIENT_GONE);
        return -ENOTCONN;
    }
    conn_kick(c);
    return 0;
}

int mg_httpd_start(struct mg_httpd_req *req, int status, const struct mg_h1_header *hdrs,
                   unsigned nhdrs, int64_t length)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req_usable(req))
        return -ENOTCONN;
    if (req->rstate != RS_NONE)
        return -EALREADY;
    int bodyless = status < 200 || status == 204 || status == 304;
    if (bodyless)
        length = 0;
    int rc = format_head(c, status, hdrs, nhdrs, length);
    if (rc < 0)
        return rc == -ENOBUFS ? -EMSGSIZE : rc;
    struct mg_buf *b = &c->srv->scratch;
    if (b->len + c->out.len > c->srv->cfg.max_output)
        return -ENOBUFS;
    req->remaining = length >= 0 ? (uint64_t)length : 0;
    req->has_length = length >= 0;
    if (bodyless)
        req->head_only = 1;
    struct iovec iov = {.iov_base = mg_buf_head(b), .iov_len = b->len};
    req->rstate = RS_STREAM;
    rc = conn_sendv(c, &iov, 1);
    if (rc < 0) {
        conn_close(c, rc == -ENOMEM ? MG_HTTPD_END_ABORTED : MG_HTTPD_END_CLIENT_GONE);
        return -ENOTCONN;
    }
    conn_kick(c);
    return 0;
}

int mg_httpd_write(struct mg_httpd_req *req, const void *p, size_t n)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req_usable(req))
        return -ENOTCONN;
    if (req->rstate != RS_STREAM)
        return -EINVAL;
    if (req->has_length) {
        if (n > req->remaining)
            return -EINVAL;
        req->remaining -= n;
    }
    if (n == 0 || req->head_only)
        return 0;
    char hdr[MG_H1_CHUNK_HDR_MAX];
    struct iovec iov[3];
    int cnt = 0;
    size_t total = n;
    if (req->chunked) {
        size_t hl = mg_h1_chunk_header(hdr, n);
        iov[cnt++] = (struct iovec){.iov_base = hdr, .iov_len = hl};
        total += hl + 2;
    }
    iov[cnt++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    if (req->chunked)
        iov[cnt++] = (struct iovec){.iov_base = "\r\n", .iov_len = 2};
    if (c->out.len + total > c->srv->cfg.max_output) {
        if (req->has_length)
            req->remaining += n;
        return -ENOBUFS;
    }
    int rc = conn_sendv(c, iov, cnt);
    if (rc < 0) {
        conn_close(c, rc == -ENOMEM ? MG_HTTPD_END_ABORTED : MG_HTTPD_END_CLIENT_GONE);
        return -ENOTCONN;
    }
    if (c->out.len > 0)
        conn_update(c);
    if (c->out.len >= c->srv->cfg.high_water) {
        req->want_writable = 1;
        return 1;
    }
    return 0;
}

int mg_httpd_end(struct mg_httpd_req *req)
{
    struct mg_httpd_conn *c = req->conn;
    if (!req_usable(req))
        return -ENOTCONN;
    if (req->rstate != RS_STREAM)
        return -EINVAL;
    if (req->has_length && req->remaining > 0 && !req->head_only)
        return -EINVAL;
    req->rstate = RS_ENDED;
    if (req->chunked) {
        struct iovec iov = {.iov_base = (void *)mg_h1_last_chunk, .iov_len = MG_H1_LAST_CHUNK_LEN};
        int rc = conn_sendv(c, &iov, 1);
        if (rc < 0) {
            conn_close(c, rc == -ENOMEM || rc == -ENOBUFS ? MG_HTTPD_END_ABORTED
                                                          : MG_HTTPD_END_CLIENT_GONE);
            return -ENOTCONN;
        }
    }
    conn_kick(c);
    return 0;
}

void mg_httpd_abort(struct mg_httpd_req *req)
{
    struct mg_httpd_conn *c = req->conn;
    if (c->state == CS_CLOSED || !req->active)
        return;
    conn_close(c, MG_HTTPD_END_ABORTED);
}
