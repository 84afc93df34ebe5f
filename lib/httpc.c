/* The HTTP/1.1 client core: endpoints with keep-alive pools, non-blocking
 * connects, requests sent with writev from the caller's memory, responses
 * decoded by the codec and streamed back with backpressure. See httpc.h for
 * the contract and docs/internals/http-server-client.md for the design.
 *
 * A connection moves through (conn_set_state):
 *
 *   CONNECTING ──▶ HANDSHAKE (TLS only) ──▶ ACTIVE ──response done, reusable──▶ IDLE
 *                                             ▲                                  │
 *                                             └──────── taken from the pool ─────┘
 *
 * and to CLOSED from anywhere (errors, timeouts, cancel, a response that
 * ends the connection). A connection exists for a request: it is created
 * for one, carries one at a time, and waits in the pool between them.
 * Closed connections are freed from a deferred callback, never inside the
 * callback that closed them. */
#define _GNU_SOURCE
#include "httpc.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define FREE_CONNS_MAX 256
#define KEEP_BUF_MAX (16 * 1024)
#define IN_INITIAL 8192
#define IN_BODY_ROOM 4096
#define HEAD_MAX (64 * 1024)
/* Queued output the client itself may add past max_output (last chunk). */
#define OUT_SLACK 64

enum conn_state {
    CC_CONNECTING,
    CC_HANDSHAKE,
    CC_ACTIVE,
    CC_IDLE,
    CC_CLOSED,
};

static const char *const state_names[] = {
    [CC_CONNECTING] = "connecting", [CC_HANDSHAKE] = "handshake", [CC_ACTIVE] = "active",
    [CC_IDLE] = "idle", [CC_CLOSED] = "closed",
};

struct mg_httpc_conn {
    struct mg_httpc *cl;
    struct mg_httpc_endpoint *ep;
    struct mg_httpc_conn *prev, *next;     /* cl->conns: every live connection */
    struct mg_httpc_conn *iprev, *inext;   /* ep->idle: the pool */
    enum conn_state state;
    struct mg_xprt x;
    struct mg_io io;
    struct mg_timer timer;
    struct mg_defer defer;

    struct mg_buf in;          /* off always 0; the response head stays at in[0] */
    size_t ipos;
    size_t head_len;
    struct mg_buf hbuf;        /* the formatted request head */
    struct mg_buf out;         /* streamed request body */
    const char *sp;            /* request head to send */
    size_t sp_len;
    const char *bp;            /* whole body to send */
    size_t bp_len;
    size_t sent;               /* bytes of sp + bp sent */

    struct mg_h1_parser parser;
    struct mg_h1_body framing;

    struct mg_httpc_req *req;
    unsigned reused : 1;       /* taken from the pool for the current request */
    unsigned got_bytes : 1;    /* a response byte arrived */
    unsigned head_done : 1;
    unsigned body_done : 1;
    unsigned peer_eof : 1;
    unsigned wfailed : 1;      /* sending failed: reading decides the outcome */
    unsigned in_process : 1;
    int rerr;                  /* read error (errno) seen, 0 none */
    unsigned rd_want, wr_want;

    uint64_t connect_deadline, head_deadline, read_deadline, idle_deadline;
    struct mg_h1_msg msg;      /* last: not cleared when the struct is reused */
};

struct mg_httpc_endpoint {
    struct mg_httpc *cl;
    struct mg_httpc_endpoint *next;
    char *name;
    struct sockaddr_storage addr;
    unsigned addrlen;
    char host[256];            /* for TLS SNI */
    struct mg_httpc_conn *idle;
    unsigned nidle;
    struct mg_httpc_stats stats;
};

struct mg_httpc {
    struct mg_loop *loop;
    struct mg_httpc_config cfg;
    struct mg_httpc_endpoint *eps;
    struct mg_httpc_conn *conns;
    struct mg_httpc_conn *free_conns;
    unsigned nfree;
    size_t in_max;
    struct mg_httpc_stats stats;
};

#define STAT_ADD(cl, ep, f, n)                                                  \
    do {                                                                        \
        __atomic_fetch_add(&(cl)->stats.f, (n), __ATOMIC_RELAXED);              \
        (ep)->stats.f += (n);                                                   \
    } while (0)
#define STAT_SUB(cl, ep, f, n)                                                  \
    do {                                                                        \
        __atomic_fetch_sub(&(cl)->stats.f, (n), __ATOMIC_RELAXED);              \
        (ep)->stats.f -= (n);                                                   \
    } while (0)

static void conn_process(struct mg_httpc_conn *c);
static void conn_update(struct mg_httpc_conn *c);
static void conn_close(struct mg_httpc_conn *c);
static int req_start(struct mg_httpc *cl, struct mg_httpc_endpoint *ep, struct mg_httpc_req *req,
                     int allow_pool);

const char *mg_httpc_strerror(enum mg_httpc_error kind)
{
    switch (kind) {
    case MG_HTTPC_ERR_CONNECT: return "connect failed";
    case MG_HTTPC_ERR_CONNECT_TIMEOUT: return "connect timed out";
    case MG_HTTPC_ERR_RESET_BEFORE_RESPONSE: return "connection closed before any response byte";
    case MG_HTTPC_ERR_RESET_MID_RESPONSE: return "connection closed in the middle of the response";
    case MG_HTTPC_ERR_PROTOCOL: return "invalid HTTP response";
    case MG_HTTPC_ERR_TIMEOUT: return "response timed out";
    case MG_HTTPC_ERR_LOCAL: return "local error";
    }
    return "unknown error";
}

void mg_httpc_config_default(struct mg_httpc_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_idle_per_endpoint = 32;
    cfg->idle_timeout_ms = 30000;
    cfg->connect_timeout_ms = 2000;
    mg_h1_limits_default(&cfg->limits);
    cfg->high_water = 64 * 1024;
    cfg->max_output = 1024 * 1024;
}

/* ------------------------------------------------------------------------ */
/* Connection bookkeeping. */

static void conn_set_state(struct mg_httpc_conn *c, enum conn_state s)
{
    mg_log(MG_LOG_DEBUG, "httpc connection state", "endpoint", MG_S(c->ep->name),
           "fd", MG_I(c->x.fd), "from", MG_S(state_names[c->state]), "to", MG_S(state_names[s]));
    c->state = s;
}

static void conn_kick(struct mg_httpc_conn *c)
{
    mg_defer(c->cl->loop, &c->defer);
}

static void idle_remove(struct mg_httpc_conn *c)
{
    struct mg_httpc_endpoint *ep = c->ep;
    if (c->iprev)
        c->iprev->inext = c->inext;
    else
        ep->idle = c->inext;
    if (c->inext)
        c->inext->iprev = c->iprev;
    c->iprev = c->inext = NULL;
    ep->nidle--;
    STAT_SUB(c->cl, ep, idle, 1);
}

static void idle_push(struct mg_httpc_conn *c)
{
    struct mg_httpc_endpoint *ep = c->ep;
    c->iprev = NULL;
    c->inext = ep->idle;
    if (ep->idle)
        ep->idle->iprev = c;
    ep->idle = c;
    ep->nidle++;
    STAT_ADD(c->cl, ep, idle, 1);
}

static void conn_release(struct mg_httpc *cl, struct mg_httpc_conn *c)
{
    if (cl->nfree < FREE_CONNS_MAX) {
        if (c->in.cap > KEEP_BUF_MAX)
            mg_buf_free(&c->in);
        if (c->out.cap > KEEP_BUF_MAX)
            mg_buf_free(&c->out);
        if (c->hbuf.cap > KEEP_BUF_MAX)
            mg_buf_free(&c->hbuf);
        c->next = cl->free_conns;
        cl->free_conns = c;
        cl->nfree++;
        return;
    }
    mg_buf_free(&c->in);
    mg_buf_free(&c->out);
    mg_buf_free(&c->hbuf);
    free(c);
}

static struct mg_httpc_conn *conn_alloc(struct mg_httpc *cl, struct mg_httpc_endpoint *ep)
{
    struct mg_httpc_conn *c = cl->free_conns;
    if (c) {
        cl->free_conns = c->next;
        cl->nfree--;
        struct mg_buf in = c->in, out = c->out, hbuf = c->hbuf;
        memset(c, 0, offsetof(struct mg_httpc_conn, msg));
        c->in = in;
        c->out = out;
        c->hbuf = hbuf;
        mg_buf_reset(&c->in);
        mg_buf_reset(&c->out);
        mg_buf_reset(&c->hbuf);
    } else {
        c = malloc(sizeof *c);
        if (!c)
            return NULL;
        memset(c, 0, offsetof(struct mg_httpc_conn, msg));
        mg_buf_init(&c->in, cl->in_max);
        mg_buf_init(&c->out, cl->cfg.max_output + OUT_SLACK);
        mg_buf_init(&c->hbuf, HEAD_MAX);
    }
    c->req = NULL;
    c->cl = cl;
    c->ep = ep;
    c->x.fd = -1;
    return c;
}

static void conn_free(struct mg_httpc_conn *c)
{
    struct mg_httpc *cl = c->cl;
    mg_defer_cancel(cl->loop, &c->defer);
    mg_timer_stop(cl->loop, &c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        cl->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    conn_release(cl, c);
}

static void conn_read(struct mg_httpc_conn *c);

static void conn_run(struct mg_loop *loop, void *data)
{
    struct mg_httpc_conn *c = data;
    if (c->state == CC_CLOSED) {
        conn_free(c);
        return;
    }
    if (c->state == CC_ACTIVE && mg_xprt_pending(&c->x) > 0)
        conn_read(c);
    conn_process(c);
}

/* Closes now; the memory goes in the deferred callback. The request, if
 * any, must have been detached. */
static void conn_close(struct mg_httpc_conn *c)
{
    if (c->state == CC_CLOSED)
        return;
    struct mg_httpc *cl = c->cl;
    if (c->state == CC_IDLE)
        idle_remove(c);
    else
        STAT_SUB(cl, c->ep, active, 1);
    mg_io_stop(cl->loop, &c->io);
    mg_timer_stop(cl->loop, &c->timer);
    conn_set_state(c, CC_CLOSED);
    mg_xprt_close(&c->x);
    conn_kick(c);
}

/* Detaches the request from its connection; the request is over for the
 * client (no callback yet). */
static struct mg_httpc_req *conn_detach(struct mg_httpc_conn *c)
{
    struct mg_httpc_req *req = c->req;
    if (!req)
        return NULL;
    c->req = NULL;
    req->conn_ = NULL;
    req->active_ = 0;
    return req;
}

static void deliver_error(struct mg_httpc *cl, struct mg_httpc_endpoint *ep,
                          struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    STAT_ADD(cl, ep, errors, 1);
    if (req->on_error)
        req->on_error(req, kind, err);
}

/* The request on c failed. A reused connection that died before any
 * response byte gets the request retried on a fresh one (see httpc.h);
 * otherwise on_error. A 1xx counts as a response byte: the server read the
 * request, so sending it again could run it twice. Loop context only. */
static void conn_fail(struct mg_httpc_conn *c, enum mg_httpc_error kind, int err)
{
    struct mg_httpc *cl = c->cl;
    struct mg_httpc_endpoint *ep = c->ep;
    int reused = c->reused;
    int got_bytes = c->got_bytes;
    struct mg_httpc_req *req = conn_detach(c);
    conn_close(c);
    if (!req)
        return;
    if (kind == MG_HTTPC_ERR_RESET_BEFORE_RESPONSE && reused && !got_bytes && !req->retried &&
        !req->no_retry && !req->stream_started_) {
        req->retried = 1;
        STAT_ADD(cl, ep, retried, 1);
        int rc = req_start(cl, ep, req, 0);
        if (rc == 0)
            return;
        kind = MG_HTTPC_ERR_CONNECT;
        err = -rc;
    }
    deliver_error(cl, ep, req, kind, err);
}

/* ------------------------------------------------------------------------ */
/* Timers. */

static uint64_t conn_deadline(const struct mg_httpc_conn *c)
{
    uint64_t d = 0;
    const uint64_t all[] = {c->connect_deadline, c->head_deadline, c->read_deadline,
                            c->idle_deadline};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] && (d == 0 || all[i] < d))
            d = all[i];
    return d;
}

static void conn_arm_timer(struct mg_httpc_conn *c)
{
    struct mg_loop *loop = c->cl->loop;
    uint64_t d = conn_deadline(c);
    if (d == 0) {
        mg_timer_stop(loop, &c->timer);
        return;
    }
    if (mg_timer_armed(&c->timer) && c->timer.when <= d)
        return;
    uint64_t now = mg_loop_now(loop);
    mg_timer_start(loop, &c->timer, d > now ? d - now : 0);
}

static void conn_timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct mg_httpc_conn *c = t->data;
    uint64_t now = mg_loop_now(loop);
    if (c->state == CC_CLOSED)
        return;
    if (c->idle_deadline && now >= c->idle_deadline) {
        conn_close(c);
        return;
    }
    if (c->connect_deadline && now >= c->connect_deadline) {
        conn_fail(c, MG_HTTPC_ERR_CONNECT_TIMEOUT, ETIMEDOUT);
        return;
    }
    if ((c->head_deadline && now >= c->head_deadline) ||
        (c->read_deadline && now >= c->read_deadline)) {
        conn_fail(c, MG_HTTPC_ERR_TIMEOUT, ETIMEDOUT);
        return;
    }
    conn_arm_timer(c);
}

/* ------------------------------------------------------------------------ */
/* Sending. */

static int req_fully_sent(const struct mg_httpc_conn *c)
{
    const struct mg_httpc_req *req = c->req;
    if (c->sent < c->sp_len + c->bp_len)
        return 0;
    if (req && req->stream_body && (!req->stream_ended_ || c->out.len > 0))
        return 0;
    return 1;
}

/* Sends the head, the whole body, then queued stream bytes, until done or
 * the socket is full. A send error marks the connection: the server may
 * have answered before closing, so reading decides what the caller sees. */
static void conn_flush(struct mg_httpc_conn *c)
{
    if (c->wfailed || c->state != CC_ACTIVE)
        return;
    for (;;) {
        struct iovec iov[3];
        int n = 0;
        size_t fixed = c->sp_len + c->bp_len;
        if (c->sent < c->sp_len)
            iov[n++] = (struct iovec){.iov_base = (void *)(c->sp + c->sent),
                                      .iov_len = c->sp_len - c->sent};
        if (c->bp_len && c->sent < fixed) {
            size_t boff = c->sent > c->sp_len ? c->sent - c->sp_len : 0;
            iov[n++] = (struct iovec){.iov_base = (void *)(c->bp + boff),
                                      .iov_len = c->bp_len - boff};
        }
        if (c->out.len)
            iov[n++] = (struct iovec){.iov_base = mg_buf_head(&c->out), .iov_len = c->out.len};
        if (n == 0)
            return;
        ssize_t r = mg_xprt_sendv(&c->x, iov, n);
        if (r == -EAGAIN) {
            c->wr_want = c->x.want;
            return;
        }
        if (r < 0) {
            c->wfailed = 1;
            return;
        }
        size_t w = (size_t)r;
        size_t f = fixed - c->sent;
        if (w <= f) {
            c->sent += w;
        } else {
            c->sent = fixed;
            mg_buf_consume(&c->out, w - f);
        }
    }
}

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

/* Prepares what c sends for req: the head (formatted into c->hbuf, or the
 * caller's) and the body. 0 or -errno. */
static int conn_prepare(struct mg_httpc_conn *c, struct mg_httpc_req *req)
{
    c->sent = 0;
    c->bp = req->body;
    c->bp_len = req->body ? req->body_len : 0;
    mg_buf_reset(&c->out);
    if (req->head) {
        c->sp = req->head;
        c->sp_len = req->head_len;
        return 0;
    }
    struct mg_buf *b = &c->hbuf;
    int rc;
    mg_buf_reset(b);
    if ((rc = mg_h1_put_request_line(b, req->method, req->target)) < 0)
        return rc;
    int has_host = 0;
    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct mg_h1_header *h = &req->headers[i];
        if (h->name_len == 4 && strncasecmp(h->name, "host", 4) == 0)
            has_host = 1;
        if (is_hop_header(h))
            continue;
        rc = mg_h1_put_header_n(b, h->name, h->name_len, h->value, h->value_len);
        if (rc < 0)
            return rc;
    }
    if (!has_host && (rc = mg_h1_put_header(b, "Host", c->ep->name)) < 0)
        return rc;
    if (req->stream_body) {
        if (req->stream_length >= 0)
            rc = mg_buf_printf(b, "Content-Length: %lld\r\n", (long long)req->stream_length);
        else
            rc = mg_buf_append_str(b, "Transfer-Encoding: chunked\r\n");
    } else if (c->bp_len > 0 || strcmp(req->method, "POST") == 0 ||
               strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0) {
        rc = mg_buf_printf(b, "Content-Length: %zu\r\n", c->bp_len);
    }
    if (rc < 0)
        return rc;
    if ((rc = mg_buf_append(b, "\r\n", 2)) < 0)
        return rc;
    c->sp = mg_buf_head(b);
    c->sp_len = b->len;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Receiving. */

static void in_compact(struct mg_httpc_conn *c)
{
    size_t keep = c->head_done ? c->head_len : 0;
    if (c->ipos <= keep)
        return;
    size_t rest = c->in.len - c->ipos;
    if (rest)
        memmove(c->in.data + keep, c->in.data + c->ipos, rest);
    c->in.len = keep + rest;
    c->ipos = keep;
}

/* Reads into the input buffer's room (growing it only before the head is
 * complete). Errors are kept in c->rerr for conn_process. */
static void conn_read(struct mg_httpc_conn *c)
{
    for (int rounds = 0; rounds < 4; rounds++) {
        if (mg_buf_room(&c->in) == 0) {
            in_compact(c);
            if (mg_buf_room(&c->in) == 0 && !c->head_done && c->in.len < c->cl->in_max) {
                size_t grow = c->in.cap ? c->in.cap : IN_INITIAL;
                if (grow > c->cl->in_max - c->in.len)
                    grow = c->cl->in_max - c->in.len;
                if (mg_buf_reserve(&c->in, grow) < 0) {
                    c->rerr = ENOMEM;
                    return;
                }
            }
            if (mg_buf_room(&c->in) == 0)
                return;
        }
        size_t room = mg_buf_room(&c->in);
        ssize_t n = mg_xprt_recv(&c->x, mg_buf_tail(&c->in), room);
        if (n == -EAGAIN) {
            c->rd_want = c->x.want;
            return;
        }
        if (n < 0) {
            c->rerr = (int)-n;
            return;
        }
        if (n == 0) {
            c->peer_eof = 1;
            return;
        }
        mg_buf_commit(&c->in, (size_t)n);
        c->got_bytes = c->state == CC_ACTIVE || c->got_bytes;
        if (c->read_deadline && c->req) {
            uint32_t ms = c->req->read_timeout_ms ? c->req->read_timeout_ms
                                                  : c->cl->cfg.read_timeout_ms;
            c->read_deadline = mg_loop_now(c->cl->loop) + ms;
        }
        if ((size_t)n < room && mg_xprt_pending(&c->x) == 0)
            return;
    }
}

/* The response is complete: the connection goes back to the pool when it
 * can carry another request, then on_done (last). */
static void conn_done(struct mg_httpc_conn *c)
{
    struct mg_httpc *cl = c->cl;
    struct mg_httpc_endpoint *ep = c->ep;
    int reusable = c->msg.keep_alive && req_fully_sent(c) && c->ipos == c->in.len &&
                   !c->peer_eof && !c->wfailed && !c->rerr &&
                   ep->nidle < cl->cfg.max_idle_per_endpoint;
    struct mg_httpc_req *req = conn_detach(c);
    if (reusable) {
        STAT_SUB(cl, ep, active, 1);
        c->in.len = c->ipos = c->head_len = 0;
        c->head_done = c->body_done = c->got_bytes = c->reused = 0;
        c->head_deadline = c->read_deadline = 0;
        if (cl->cfg.idle_timeout_ms)
            c->idle_deadline = mg_loop_now(cl->loop) + cl->cfg.idle_timeout_ms;
        mg_buf_reset(&c->out);
        conn_set_state(c, CC_IDLE);
        idle_push(c);
        conn_update(c);
    } else {
        conn_close(c);
    }
    if (req && req->on_done)
        req->on_done(req);
}

/* Delivers body spans until the input runs out, the caller pauses or the
 * body ends. -1 when the request is no longer c's. */
static int conn_body(struct mg_httpc_conn *c)
{
    struct mg_httpc_req *req = c->req;
    while (!c->body_done && c->ipos < c->in.len && !req->paused_) {
        const char *d = NULL;
        size_t dl = 0;
        long n = mg_h1_body_decode(&c->framing, c->in.data + c->ipos, c->in.len - c->ipos,
                                   &d, &dl);
        if (n < 0) {
            conn_fail(c, MG_HTTPC_ERR_PROTOCOL, EPROTO);
            return -1;
        }
        c->ipos += (size_t)n;
        if (c->framing.done)
            c->body_done = 1;
        if (dl && req->on_body) {
            req->on_body(req, d, dl);
            if (c->req != req || c->state != CC_ACTIVE)
                return -1;
        }
        if (n == 0 && dl == 0)
            break;
    }
    if (c->ipos == c->in.len)
        in_compact(c);
    return 0;
}

static void conn_process(struct mg_httpc_conn *c)
{
    if (c->in_process)
        return;
    c->in_process = 1;
    for (int round = 0; round < 16 && c->state != CC_CLOSED; round++) {
        if (c->state == CC_IDLE) {
            /* A pooled connection that speaks or ends is done for. */
            if (c->in.len > 0 || c->peer_eof || c->rerr)
                conn_close(c);
            break;
        }
        if (c->state != CC_ACTIVE)
            break;
        struct mg_httpc_req *req = c->req;
        if (!req) {
            conn_close(c);
            break;
        }
        if (!c->head_done) {
            if (c->in.len == 0) {
                if (c->peer_eof || c->rerr)
                    conn_fail(c, MG_HTTPC_ERR_RESET_BEFORE_RESPONSE,
                              c->rerr ? c->rerr : ECONNRESET);
                break;
            }
            int rc = mg_h1_parse_head(&c->parser, c->in.data, c->in.len, &c->msg);
            if (rc < 0) {
                conn_fail(c, MG_HTTPC_ERR_PROTOCOL, EPROTO);
                break;
            }
            if (rc == 0) {
                if (c->peer_eof || c->rerr)
                    conn_fail(c, MG_HTTPC_ERR_RESET_MID_RESPONSE,
                              c->rerr ? c->rerr : ECONNRESET);
                else if (c->in.len >= c->cl->in_max)
                    conn_fail(c, MG_HTTPC_ERR_PROTOCOL, EMSGSIZE);
                break;
            }
            if (c->msg.status >= 100 && c->msg.status < 200) {
                if (c->msg.status == 101) {   /* we never ask to upgrade */
                    conn_fail(c, MG_HTTPC_ERR_PROTOCOL, EPROTO);
                    break;
                }
                size_t rest = c->in.len - (size_t)rc;
                memmove(c->in.data, c->in.data + rc, rest);
                c->in.len = rest;
                mg_h1_parser_reset(&c->parser);
                c->parser.request_was_head = req->is_head_;
                continue;
            }
            /* Room for the body behind the head, before the caller sees
             * msg's pointers (see the server's twin in httpd.c). */
            size_t want = IN_BODY_ROOM;
            if (want > c->cl->in_max - c->in.len)
                want = c->cl->in_max - c->in.len;
            if (mg_buf_room(&c->in) < want) {
                const char *old = c->in.data;
                if (mg_buf_reserve(&c->in, want) < 0) {
                    conn_fail(c, MG_HTTPC_ERR_LOCAL, ENOMEM);
                    break;
                }
                if (c->in.data != old) {
                    mg_h1_parser_reset(&c->parser);
                    c->parser.request_was_head = req->is_head_;
                    rc = mg_h1_parse_head(&c->parser, c->in.data, c->in.len, &c->msg);
                    if (rc <= 0) {
                        conn_fail(c, MG_HTTPC_ERR_LOCAL, EPROTO);
                        break;
                    }
                }
            }
            c->head_done = 1;
            c->head_len = (size_t)rc;
            c->ipos = (size_t)rc;
            c->head_deadline = 0;
            c->body_done = c->msg.framing == MG_H1_BODY_NONE;
            if (!c->body_done)
                mg_h1_body_init(&c->framing, &c->msg, &c->cl->cfg.limits);
            if (req->on_head) {
                req->on_head(req, &c->msg);
                if (c->req != req || c->state != CC_ACTIVE)
                    continue;
            }
            continue;
        }
        if (!c->body_done && conn_body(c) < 0)
            continue;
        if (c->body_done) {
            conn_done(c);
            continue;
        }
        if (req->paused_) {
            c->read_deadline = 0;
            break;
        }
        if (c->peer_eof || c->rerr) {
            if (c->peer_eof && !c->rerr && c->msg.framing == MG_H1_BODY_EOF &&
                mg_h1_body_eof(&c->framing) == 0) {
                c->body_done = 1;
                conn_done(c);
                continue;
            }
            conn_fail(c, MG_HTTPC_ERR_RESET_MID_RESPONSE, c->rerr ? c->rerr : ECONNRESET);
            break;
        }
        uint32_t ms = req->read_timeout_ms ? req->read_timeout_ms : c->cl->cfg.read_timeout_ms;
        if (ms && !c->read_deadline)
            c->read_deadline = mg_loop_now(c->cl->loop) + ms;
        break;
    }
    c->in_process = 0;
    conn_update(c);
}

/* Interest and timer. */
static void conn_update(struct mg_httpc_conn *c)
{
    if (c->state == CC_CLOSED)
        return;
    unsigned ev = 0;
    switch (c->state) {
    case CC_CONNECTING:
        ev = MG_WRITE;
        break;
    case CC_HANDSHAKE:
        ev = c->x.want ? c->x.want : MG_READ;
        break;
    case CC_IDLE:
        ev = MG_READ;
        break;
    case CC_ACTIVE: {
        int reading = !c->peer_eof && !c->rerr &&
                      (mg_buf_room(&c->in) > 0 || c->ipos > (c->head_done ? c->head_len : 0) ||
                       (!c->head_done && c->in.len < c->cl->in_max));
        if (c->req && c->req->paused_ && c->head_done && mg_buf_room(&c->in) == 0)
            reading = 0;
        if (reading)
            ev |= c->rd_want ? c->rd_want : MG_READ;
        /* Bytes decoded inside the transport (TLS) never make the fd
         * readable: read them from the deferred callback. */
        if (reading && mg_xprt_pending(&c->x) > 0)
            conn_kick(c);
        if (!c->wfailed && (c->sent < c->sp_len + c->bp_len || c->out.len > 0))
            ev |= c->wr_want ? c->wr_want : MG_WRITE;
        break;
    }
    default:
        break;
    }
    if (!c->io.active) {
        /* Taken out of epoll, dead (conn_io_cb): only timers remain. */
        conn_arm_timer(c);
        return;
    }
    if (mg_io_set(c->cl->loop, &c->io, ev) < 0) {
        conn_fail(c, MG_HTTPC_ERR_LOCAL, EIO);
        return;
    }
    conn_arm_timer(c);
}

/* The connection is established (and through the handshake). */
static void conn_ready(struct mg_httpc_conn *c)
{
    c->connect_deadline = 0;
    conn_set_state(c, CC_ACTIVE);
    conn_flush(c);
}

static void conn_io_cb(struct mg_loop *loop, struct mg_io *io, unsigned events)
{
    struct mg_httpc_conn *c = io->data;
    if (c->state == CC_CLOSED)
        return;
    if (c->state == CC_CONNECTING) {
        int e = mg_sock_error(c->x.fd);
        if (e < 0 || (events & (MG_ERR | MG_HUP))) {
            conn_fail(c, MG_HTTPC_ERR_CONNECT, e < 0 ? -e : ECONNREFUSED);
            return;
        }
        if (!(events & MG_WRITE))
            return;
        if (c->x.ops->handshake) {
            conn_set_state(c, CC_HANDSHAKE);
        } else {
            conn_ready(c);
        }
    }
    if (c->state == CC_HANDSHAKE) {
        int rc = mg_xprt_handshake(&c->x);
        if (rc == -EAGAIN) {
            conn_update(c);
            return;
        }
        if (rc < 0) {
            conn_fail(c, MG_HTTPC_ERR_CONNECT, -rc);
            return;
        }
        conn_ready(c);
    }
    struct mg_httpc_req *req = c->req;
    if (c->state == CC_ACTIVE) {
        conn_flush(c);
        if (req && req->want_writable_ && c->out.len < c->cl->cfg.high_water / 4) {
            req->want_writable_ = 0;
            if (req->on_writable) {
                req->on_writable(req);
                if (c->req != req || c->state == CC_CLOSED)
                    return;
            }
        }
    }
    if (events & (MG_READ | MG_HUP | MG_ERR))
        conn_read(c);
    /* A dead socket reports HUP/ERR whatever the interest. Once nothing more
     * will be read from it (an error or the end seen, or a paused response
     * with a full buffer), take it out of epoll, or a paused request would
     * spin the loop until resumed; the buffered bytes are still delivered,
     * then the error. */
    if ((events & (MG_HUP | MG_ERR)) && c->state == CC_ACTIVE &&
        (c->rerr || c->peer_eof || !(c->io.events & MG_READ))) {
        if (!c->rerr && !c->peer_eof) {
            int e = mg_sock_error(c->x.fd);
            c->rerr = e < 0 ? -e : ECONNRESET;
        }
        mg_io_stop(loop, &c->io);
    }
    conn_process(c);
}

/* ------------------------------------------------------------------------ */
/* Starting requests. */

static int conn_connect(struct mg_httpc *cl, struct mg_httpc_endpoint *ep,
                        struct mg_httpc_conn **out)
{
    int rc;
    struct mg_httpc_conn *c = conn_alloc(cl, ep);
    if (!c)
        return -ENOMEM;
    int inprog;
    int fd = mg_connect_tcp((struct sockaddr *)&ep->addr, ep->addrlen, &inprog);
    if (fd < 0) {
        rc = fd;
        goto fail;
    }
    struct mg_xprt_factory *f = cl->cfg.xprt ? cl->cfg.xprt : &mg_xprt_raw_factory;
    rc = f->wrap(f, &c->x, fd, 0, ep->host);
    if (rc < 0) {
        close(fd);
        goto fail;
    }
    mg_io_init(&c->io, conn_io_cb, c);
    mg_timer_init(&c->timer, conn_timer_cb, c);
    mg_defer_init(&c->defer, conn_run, c);
    rc = mg_io_start(cl->loop, &c->io, fd, MG_WRITE);
    if (rc < 0) {
        mg_xprt_close(&c->x);
        goto fail;
    }
    c->state = CC_CONNECTING;
    if (cl->cfg.connect_timeout_ms)
        c->connect_deadline = mg_loop_now(cl->loop) + cl->cfg.connect_timeout_ms;
    c->prev = NULL;
    c->next = cl->conns;
    if (cl->conns)
        cl->conns->prev = c;
    cl->conns = c;
    STAT_ADD(cl, ep, created, 1);
    STAT_ADD(cl, ep, active, 1);
    *out = c;
    return 0;
fail:
    conn_release(cl, c);
    return rc;
}

/* Attaches req to a pooled connection (allow_pool) or a new one. No
 * callback. */
static int req_start(struct mg_httpc *cl, struct mg_httpc_endpoint *ep, struct mg_httpc_req *req,
                     int allow_pool)
{
    struct mg_httpc_conn *c = allow_pool ? ep->idle : NULL;
    int rc;
    if (c) {
        idle_remove(c);
        STAT_ADD(cl, ep, active, 1);
        STAT_ADD(cl, ep, reused, 1);
        c->idle_deadline = 0;
        c->reused = 1;
        req->reused = 1;
        conn_set_state(c, CC_ACTIVE);
    } else {
        rc = conn_connect(cl, ep, &c);
        if (rc < 0)
            return rc;
        if (req->connect_timeout_ms)
            c->connect_deadline = mg_loop_now(cl->loop) + req->connect_timeout_ms;
    }
    rc = conn_prepare(c, req);
    if (rc < 0) {
        conn_close(c);
        return rc;
    }
    c->req = req;
    req->conn_ = c;
    req->active_ = 1;
    c->head_done = c->body_done = c->got_bytes = c->peer_eof = c->wfailed = 0;
    c->rerr = 0;
    c->in.len = c->ipos = c->head_len = 0;
    mg_h1_parser_init(&c->parser, MG_H1_RESPONSE, &cl->cfg.limits);
    c->parser.request_was_head = req->is_head_;
    uint32_t hms = req->head_timeout_ms ? req->head_timeout_ms : cl->cfg.head_timeout_ms;
    c->head_deadline = hms ? mg_loop_now(cl->loop) + hms : 0;
    c->read_deadline = 0;
    if (c->state == CC_ACTIVE)
        conn_flush(c);
    conn_update(c);
    if (c->wfailed)
        conn_kick(c);   /* let the loop read what the dead socket says */
    return 0;
}

int mg_httpc_send(struct mg_httpc *cl, struct mg_httpc_endpoint *ep, struct mg_httpc_req *req)
{
    if (req->active_)
        return -EBUSY;
    if (!req->head && (!req->method || !req->target))
        return -EINVAL;
    if (req->head && req->head_len < 4)
        return -EINVAL;
    req->client_ = cl;
    req->ep_ = ep;
    req->conn_ = NULL;
    req->reused = req->retried = 0;
    req->paused_ = req->stream_started_ = req->stream_ended_ = req->want_writable_ = 0;
    req->stream_left_ = req->stream_length >= 0 ? (uint64_t)req->stream_length : 0;
    if (req->head)
        req->is_head_ = req->head_len > 5 && memcmp(req->head, "HEAD ", 5) == 0;
    else
        req->is_head_ = strcmp(req->method, "HEAD") == 0;
    int rc = req_start(cl, ep, req, 1);
    if (rc < 0)
        return rc;
    STAT_ADD(cl, ep, requests, 1);
    return 0;
}

void mg_httpc_cancel(struct mg_httpc_req *req)
{
    if (!req->active_)
        return;
    struct mg_httpc_conn *c = req->conn_;
    req->active_ = 0;
    req->conn_ = NULL;
    if (c) {
        c->req = NULL;
        conn_close(c);
    }
}

/* ------------------------------------------------------------------------ */
/* Streamed request bodies and response backpressure. */

int mg_httpc_write(struct mg_httpc_req *req, const void *p, size_t n)
{
    struct mg_httpc_conn *c = req->conn_;
    if (!req->active_ || !c)
        return -ENOTCONN;
    if (!req->stream_body || req->stream_ended_)
        return -EINVAL;
    if (req->stream_length >= 0 && n > req->stream_left_)
        return -EINVAL;
    if (n == 0)
        return 0;
    int rc;
    if (req->stream_length < 0) {
        char hdr[MG_H1_CHUNK_HDR_MAX];
        size_t hl = mg_h1_chunk_header(hdr, n);
        if (c->out.len + hl + n + 2 > c->cl->cfg.max_output)
            return -ENOBUFS;
        rc = mg_buf_reserve(&c->out, hl + n + 2);
        if (rc < 0)
            return rc;
        mg_buf_append(&c->out, hdr, hl);
        mg_buf_append(&c->out, p, n);
        mg_buf_append(&c->out, "\r\n", 2);
    } else {
        if (c->out.len + n > c->cl->cfg.max_output)
            return -ENOBUFS;
        rc = mg_buf_append(&c->out, p, n);
        if (rc < 0)
            return rc;
        req->stream_left_ -= n;
    }
    req->stream_started_ = 1;
    conn_flush(c);
    conn_update(c);
    if (c->wfailed)
        conn_kick(c);
    if (c->out.len >= c->cl->cfg.high_water) {
        req->want_writable_ = 1;
        return 1;
    }
    return 0;
}

int mg_httpc_end_body(struct mg_httpc_req *req)
{
    struct mg_httpc_conn *c = req->conn_;
    if (!req->active_ || !c)
        return -ENOTCONN;
    if (!req->stream_body || req->stream_ended_)
        return -EINVAL;
    if (req->stream_length >= 0 && req->stream_left_ > 0)
        return -EINVAL;
    if (req->stream_length < 0) {
        int rc = mg_buf_append(&c->out, mg_h1_last_chunk, MG_H1_LAST_CHUNK_LEN);
        if (rc < 0)
            return rc;
        req->stream_started_ = 1;
    }
    req->stream_ended_ = 1;
    conn_flush(c);
    conn_update(c);
    conn_kick(c);
    return 0;
}

void mg_httpc_pause(struct mg_httpc_req *req)
{
    req->paused_ = 1;
    if (req->conn_)
        req->conn_->read_deadline = 0;
}

void mg_httpc_resume(struct mg_httpc_req *req)
{
    if (!req->paused_)
        return;
    req->paused_ = 0;
    if (req->active_ && req->conn_)
        conn_kick(req->conn_);
}

/* ------------------------------------------------------------------------ */
/* Client and endpoints. */

int mg_httpc_new(struct mg_loop *loop, const struct mg_httpc_config *cfg, struct mg_httpc **out)
{
    struct mg_httpc *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->loop = loop;
    cl->cfg = *cfg;
    if (cl->cfg.high_water == 0)
        cl->cfg.high_water = 64 * 1024;
    if (cl->cfg.max_output < cl->cfg.high_water)
        cl->cfg.max_output = cl->cfg.high_water;
    cl->in_max = cl->cfg.limits.max_head + 16 * 1024;
    *out = cl;
    return 0;
}

void mg_httpc_free(struct mg_httpc *cl)
{
    if (!cl)
        return;
    while (cl->conns) {
        struct mg_httpc_conn *c = cl->conns;
        struct mg_httpc_endpoint *ep = c->ep;
        struct mg_httpc_req *req = conn_detach(c);
        conn_close(c);
        conn_free(c);
        if (req)
            deliver_error(cl, ep, req, MG_HTTPC_ERR_LOCAL, ECANCELED);
    }
    while (cl->free_conns) {
        struct mg_httpc_conn *c = cl->free_conns;
        cl->free_conns = c->next;
        mg_buf_free(&c->in);
        mg_buf_free(&c->out);
        mg_buf_free(&c->hbuf);
        free(c);
    }
    while (cl->eps) {
        struct mg_httpc_endpoint *ep = cl->eps;
        cl->eps = ep->next;
        free(ep->name);
        free(ep);
    }
    free(cl);
}

int mg_httpc_endpoint(struct mg_httpc *cl, const char *hostport, struct mg_httpc_endpoint **out,
                      const char **err)
{
    for (struct mg_httpc_endpoint *ep = cl->eps; ep; ep = ep->next) {
        if (strcmp(ep->name, hostport) == 0) {
            *out = ep;
            return 0;
        }
    }
    struct mg_httpc_endpoint *ep = calloc(1, sizeof *ep);
    if (!ep) {
        if (err)
            *err = "out of memory";
        return -ENOMEM;
    }
    unsigned port;
    int rc = mg_split_hostport(hostport, ep->host, sizeof ep->host, &port);
    if (rc < 0) {
        if (err)
            *err = "endpoint must be HOST:PORT or [IPV6]:PORT";
        goto fail;
    }
    rc = mg_resolve_tcp(hostport, &ep->addr, &ep->addrlen, err);
    if (rc < 0)
        goto fail;
    ep->name = strdup(hostport);
    if (!ep->name) {
        rc = -ENOMEM;
        if (err)
            *err = "out of memory";
        goto fail;
    }
    ep->cl = cl;
    ep->next = cl->eps;
    cl->eps = ep;
    *out = ep;
    return 0;
fail:
    free(ep);
    return rc;
}

const char *mg_httpc_endpoint_name(const struct mg_httpc_endpoint *ep)
{
    return ep->name;
}

void mg_httpc_get_stats(const struct mg_httpc *cl, struct mg_httpc_stats *out)
{
    out->idle = __atomic_load_n(&cl->stats.idle, __ATOMIC_RELAXED);
    out->active = __atomic_load_n(&cl->stats.active, __ATOMIC_RELAXED);
    out->created = __atomic_load_n(&cl->stats.created, __ATOMIC_RELAXED);
    out->reused = __atomic_load_n(&cl->stats.reused, __ATOMIC_RELAXED);
    out->retried = __atomic_load_n(&cl->stats.retried, __ATOMIC_RELAXED);
    out->requests = __atomic_load_n(&cl->stats.requests, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&cl->stats.errors, __ATOMIC_RELAXED);
}

void mg_httpc_endpoint_stats(const struct mg_httpc_endpoint *ep, struct mg_httpc_stats *out)
{
    *out = ep->stats;
}
