/* The HTTP/1.1 client core: one client per event loop, with a keep-alive
 * connection pool per endpoint ("host:port", resolved once when it is
 * declared). The sidecar sends its upstream requests through it, the
 * operator its calls to sidecars, tests their load.
 *
 * A request is a struct mg_httpc_req the caller owns (embed it in the
 * object that tracks the request: no allocation per request). Fill its
 * "what to send" fields and callbacks, then mg_httpc_send(). Then, from the
 * loop:
 *
 *   on_head(req, msg)        the final response head (1xx are skipped)
 *   on_body(req, p, n)...    body bytes, decoded from Content-Length,
 *                            chunked or until-close framing
 *   on_done(req)  or  on_error(req, kind, err)    exactly one, last
 *
 * No callback runs inside an mg_httpc_* call. After on_done or on_error
 * (or mg_httpc_cancel) the client does not touch req again: the caller may
 * free or reuse it, even from inside that callback.
 *
 * Pooling: a connection returns to its endpoint's pool only when the
 * response was complete, the request was fully sent, the server did not say
 * "Connection: close" (or speak HTTP/1.0 without keep-alive) and no stray
 * byte followed the response. Otherwise it is closed. The pool keeps at most
 * max_idle_per_endpoint idle connections (the most recently used are taken
 * first and kept; one returned to a full pool is closed), each for at most
 * idle_timeout_ms; an idle connection the server closes leaves the pool at
 * once.
 *
 * Transparent retry: a request sent on a connection taken from the pool
 * that is closed or reset by the server before any response byte arrives
 * (the server timed out the idle connection as we reused it) is sent again,
 * once, on a freshly connected connection, and the caller sees nothing but
 * req->retried = 1. This also applies to non-idempotent methods (the usual
 * keep-alive race: the server closed without reading); set no_retry to
 * forbid it. It never happens when the connection was fresh, when response
 * bytes had arrived, when the request was already retried, or when a
 * streamed body has started (its bytes are gone): those end with on_error.
 *
 * Threads: a client and its endpoints belong to their loop's thread.
 * mg_httpc_get_stats() may be called from any thread. */
#ifndef MG_HTTPC_H
#define MG_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "http1.h"
#include "loop.h"
#include "transport.h"

struct mg_httpc;
struct mg_httpc_endpoint;
struct mg_httpc_conn;
struct mg_httpc_req;

enum mg_httpc_error {
    MG_HTTPC_ERR_CONNECT = 1,          /* connect failed (refused, unreachable, TLS handshake) */
    MG_HTTPC_ERR_CONNECT_TIMEOUT,      /* connect did not complete in connect_timeout_ms */
    MG_HTTPC_ERR_RESET_BEFORE_RESPONSE,/* closed or reset before any response byte */
    MG_HTTPC_ERR_RESET_MID_RESPONSE,   /* closed or reset after part of the response */
    MG_HTTPC_ERR_PROTOCOL,             /* the response is not valid HTTP/1.x */
    MG_HTTPC_ERR_TIMEOUT,              /* head or read timeout */
    MG_HTTPC_ERR_LOCAL,                /* out of memory or another local failure */
};

/* "connect failed", ... for logs. */
const char *mg_httpc_strerror(enum mg_httpc_error kind);

/* The final response head. msg and the bytes it points to stay valid (and
 * unchanged) until the request ends: through on_done or on_error, or until
 * mg_httpc_cancel(). A proxy may so answer its own client later, e.g. with
 * the first body bytes. */
typedef void (*mg_httpc_head_cb)(struct mg_httpc_req *req, const struct mg_h1_msg *msg);
/* Body bytes, valid during the call only. */
typedef void (*mg_httpc_body_cb)(struct mg_httpc_req *req, const char *p, size_t n);
typedef void (*mg_httpc_done_cb)(struct mg_httpc_req *req);
/* err: the errno behind it when there is one (ECONNREFUSED, ECONNRESET),
 * else 0. */
typedef void (*mg_httpc_error_cb)(struct mg_httpc_req *req, enum mg_httpc_error kind, int err);
typedef void (*mg_httpc_writable_cb)(struct mg_httpc_req *req);

/* Stream length for a chunked request body. */
#define MG_HTTPC_CHUNKED (-1)

struct mg_httpc_req {
    /* What to send. Everything pointed to must stay valid until the request
     * ends (a retry sends it again). Either method + target + headers (the
     * client adds Host unless given, and the framing header; headers named
     * Content-Length, Transfer-Encoding, Connection or Keep-Alive are not
     * copied), or head: a complete head ending in an empty line, sent as
     * is, framing header included. */
    const char *method;
    const char *target;
    const struct mg_h1_header *headers;
    unsigned nheaders;
    const char *head;
    size_t head_len;
    /* The body given whole (sent without copying). */
    const void *body;
    size_t body_len;
    /* Or streamed with mg_httpc_write() / mg_httpc_end_body():
     * stream_length >= 0 bytes (Content-Length), or MG_HTTPC_CHUNKED. */
    unsigned stream_body : 1;
    unsigned no_retry : 1;
    int64_t stream_length;
    /* 0: the client's defaults. connect_timeout_ms applies when the request
     * opens a new connection (a pooled one is already connected); a
     * transparent retry's connect gets it too. */
    uint32_t connect_timeout_ms;
    uint32_t head_timeout_ms;
    uint32_t read_timeout_ms;

    mg_httpc_head_cb on_head;
    mg_httpc_body_cb on_body;
    mg_httpc_done_cb on_done;
    mg_httpc_error_cb on_error;
    mg_httpc_writable_cb on_writable;
    void *data;

    /* Filled by the client. */
    unsigned reused : 1;       /* sent on a pooled connection */
    unsigned retried : 1;      /* sent a second time on a fresh connection */

    /* Private. */
    struct mg_httpc *client_;
    struct mg_httpc_endpoint *ep_;
    struct mg_httpc_conn *conn_;
    unsigned active_ : 1;
    unsigned paused_ : 1;
    unsigned stream_started_ : 1;
    unsigned stream_ended_ : 1;
    unsigned want_writable_ : 1;
    unsigned is_head_ : 1;
    uint64_t stream_left_;
};

struct mg_httpc_config {
    unsigned max_idle_per_endpoint;  /* default 32 */
    uint32_t idle_timeout_ms;        /* pooled connection lifetime unused, default 30000 */
    uint32_t connect_timeout_ms;     /* default 2000; 0: none */
    uint32_t head_timeout_ms;        /* request start to response head, default 0: none */
    uint32_t read_timeout_ms;        /* no response byte for this long (not
                                      * while paused), default 0: none */
    struct mg_h1_limits limits;      /* response head limits */
    size_t high_water;               /* streamed request body queued past which
                                      * writes say "wait", default 64 KiB */
    size_t max_output;               /* hard cap of queued request body, default 1 MiB */
    struct mg_xprt_factory *xprt;    /* NULL: plain TCP */
};

void mg_httpc_config_default(struct mg_httpc_config *cfg);

/* 0 or -errno. The config is copied. */
int mg_httpc_new(struct mg_loop *loop, const struct mg_httpc_config *cfg, struct mg_httpc **out);
/* Closes every connection. Requests still in flight get on_error with
 * MG_HTTPC_ERR_LOCAL and err ECANCELED. Not from inside the client's own
 * callbacks. */
void mg_httpc_free(struct mg_httpc *cl);

/* Declares an endpoint "HOST:PORT" ([V6]:PORT), resolving it now with
 * getaddrinfo (blocking: call it at configuration time). The same string
 * twice gives the same endpoint. Endpoints live as long as the client.
 * 0 or -errno; *err (when not NULL) gets a message for people. */
int mg_httpc_endpoint(struct mg_httpc *cl, const char *hostport, struct mg_httpc_endpoint **out,
                      const char **err);
const char *mg_httpc_endpoint_name(const struct mg_httpc_endpoint *ep);

/* Starts req on ep: takes an idle pooled connection or connects a new one.
 * 0 (callbacks follow), or -errno when nothing was started (no callback):
 * -EINVAL (req incomplete), -EBUSY (req already in flight), -ENOMEM,
 * -EMFILE, or a connect error the kernel reported at once
 * (-ECONNREFUSED, -ENETUNREACH). */
int mg_httpc_send(struct mg_httpc *cl, struct mg_httpc_endpoint *ep, struct mg_httpc_req *req);
/* Stops req: no callback after this. Its connection is closed unless the
 * response was already complete. Safe from any callback, req's own
 * included. */
void mg_httpc_cancel(struct mg_httpc_req *req);

/* Streamed request body: queues n bytes (one chunk when chunked). Returns
 * 0, or 1 when queued bytes are above high_water: wait for on_writable.
 * -ENOBUFS past max_output, -EINVAL past stream_length or after
 * mg_httpc_end_body, -ENOTCONN when the request is over. */
int mg_httpc_write(struct mg_httpc_req *req, const void *p, size_t n);
/* Ends the streamed body (the last chunk). -EINVAL when stream_length
 * bytes were not written. */
int mg_httpc_end_body(struct mg_httpc_req *req);

/* Backpressure on the response body: no on_body until resume (the read
 * timeout does not run while paused). Resume delivers from the loop. */
void mg_httpc_pause(struct mg_httpc_req *req);
void mg_httpc_resume(struct mg_httpc_req *req);

struct mg_httpc_stats {
    uint64_t idle;            /* pooled connections now */
    uint64_t active;          /* connections carrying a request (or connecting) now */
    uint64_t created;         /* connections opened */
    uint64_t reused;          /* requests sent on a pooled connection */
    uint64_t retried;         /* requests retried on a fresh connection */
    uint64_t requests;        /* requests started */
    uint64_t errors;          /* requests ended with on_error */
};
/* Totals over all endpoints. Any thread; each field read atomically. */
void mg_httpc_get_stats(const struct mg_httpc *cl, struct mg_httpc_stats *out);
/* One endpoint's. Loop thread. */
void mg_httpc_endpoint_stats(const struct mg_httpc_endpoint *ep, struct mg_httpc_stats *out);

#endif
