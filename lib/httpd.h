/* The HTTP/1.1 server core: one server per event loop. It accepts
 * connections, reads requests with the strict codec (http1.h), calls the
 * application's handler with the request head, streams the request body to
 * it and writes the response it gives, whole or streamed (SSE), with
 * keep-alive, pipelining, timeouts and backpressure in both directions.
 * Used by modelsim, the sidecar's data and admin ports and the apiserver.
 *
 * Threads: everything runs on the server's loop thread, except
 * mg_httpd_get_stats() which may be called from any thread. N worker
 * threads serve one port by each running a loop with its own server on the
 * same HOST:PORT (SO_REUSEPORT; the kernel spreads connections).
 *
 * Request life cycle, as the handler sees it:
 *
 *   on_request(req)            the head is complete; mg_httpd_req_msg(req)
 *     mg_httpd_read_body()     optional: stream the body as spans, or
 *     mg_httpd_collect_body()  collect it into a capped buffer
 *     mg_httpd_respond()       a whole response, or
 *     mg_httpd_start() + mg_httpd_write()... + mg_httpd_end()
 *   on_end(req, reason)        always last, if set: the response went out
 *                              (MG_HTTPD_END_OK) or the request failed
 *
 * The handler may answer from on_request or at any later time (a proxy
 * answers when its upstream does). Callbacks are only ever called from the
 * loop, never from inside an mg_httpd_* call, so calling the API from a
 * callback never re-enters the caller. A handler that keeps req beyond the
 * on_request call must set on_end: after on_end returns, req belongs to the
 * next request on the connection (or is freed) and must not be used.
 *
 * Errors the server handles itself (the handler never sees the request):
 * head parse errors are answered with the codec's status (400, 413, 414,
 * 417, 431, 501, 505) and a one-line text body, then the connection is
 * closed; a head that does not arrive within header_timeout_ms gets 408 and
 * a close.
 *
 * Connection limit: past max_conns, new connections are still accepted but
 * answered at once with 503 and "Connection: close" and closed (a clear
 * signal for clients and load balancers, and the accept queue keeps
 * draining); up to max_conns / 4 + 16 such rejections may be in flight, past
 * that the server stops accepting until connections close. EMFILE/ENFILE
 * from accept() pause accepting for 100 ms instead of spinning. */
#ifndef MG_HTTPD_H
#define MG_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "http1.h"
#include "loop.h"
#include "transport.h"

struct mg_httpd;
struct mg_httpd_req;

/* Why a request ended (on_end's reason). */
enum mg_httpd_end {
    MG_HTTPD_END_OK = 0,         /* the whole response was handed to the kernel */
    MG_HTTPD_END_CLIENT_GONE,    /* the client closed or reset the connection first */
    MG_HTTPD_END_TIMEOUT,        /* body or write timeout */
    MG_HTTPD_END_BAD_BODY,       /* invalid body framing or body over its limit */
    MG_HTTPD_END_ABORTED,        /* mg_httpd_abort(), a write error, or out of memory */
    MG_HTTPD_END_SHUTDOWN,       /* mg_httpd_free() */
};

/* A response header for mg_httpd_respond()/mg_httpd_start(): the codec's
 * struct mg_h1_header. MG_HTTPD_HDR("Content-Type", "text/plain") fills one
 * from NUL-terminated strings. */
#define MG_HTTPD_HDR(n, v) \
    { .name = (n), .value = (v), .name_len = (uint32_t)strlen(n), .value_len = (uint32_t)strlen(v) }

typedef void (*mg_httpd_request_cb)(struct mg_httpd_req *req, void *data);
/* A span of request body bytes (valid during the call only; copy what must
 * be kept). last is 1 on the final call, which may have n == 0. */
typedef void (*mg_httpd_body_cb)(struct mg_httpd_req *req, const char *p, size_t n, int last);
/* The collected body (mg_httpd_collect_body), valid until the request
 * ends. */
typedef void (*mg_httpd_collected_cb)(struct mg_httpd_req *req, const char *body, size_t n);
/* The output went below the low-water mark after a write reported it was
 * above the high-water mark. */
typedef void (*mg_httpd_writable_cb)(struct mg_httpd_req *req);
typedef void (*mg_httpd_end_cb)(struct mg_httpd_req *req, enum mg_httpd_end reason);
/* Formats the body of a response the server sends on its own (a head parse
 * error: 400, 413, 414, 417, 431, 501, 505; 408; 503 past max_conns), so
 * that an application with its own error format (the sidecar's
 * OpenAI-style JSON) keeps it for these too. reason is the server's
 * one-line explanation. Append the body to body and any extra header lines
 * ("Name: value\r\n") to headers (each capped at 4 KiB) and return the
 * body's Content-Type (a static string), or NULL for the plain-text body
 * after all. data is the config's data. */
typedef const char *(*mg_httpd_error_body_cb)(void *data, int status, const char *reason,
                                              struct mg_buf *body, struct mg_buf *headers);

struct mg_httpd_config {
    const char *listen;           /* "HOST:PORT"; port 0 picks one (mg_httpd_port) */
    int backlog;                  /* listen(2) backlog; 0: SOMAXCONN */
    int reuseport;                /* SO_REUSEPORT, default 1 */
    unsigned max_conns;           /* open connections served, default 10000 */
    /* Timeouts in ms; 0 disables one. */
    uint32_t header_timeout_ms;   /* whole head, from its first byte (or from
                                   * accept for the first request), default 10000 */
    uint32_t idle_timeout_ms;     /* keep-alive: between requests, default 60000 */
    uint32_t body_timeout_ms;     /* no request body byte for this long while
                                   * the handler reads it, default 30000 */
    uint32_t write_timeout_ms;    /* no output progress for this long while
                                   * output is pending, default 60000 */
    struct mg_h1_limits limits;   /* head and body limits (413, 414, 431) */
    size_t high_water;            /* output bytes queued past which writes
                                   * report "wait for on_writable", default 64 KiB */
    size_t max_output;            /* hard cap of queued output per connection,
                                   * default 1 MiB (-ENOBUFS past it) */
    /* The client half-closing (FIN) after sending its whole request, before
     * the response is complete, ends the request with CLIENT_GONE (nginx and
     * HAProxy's abortonclose do the same): a proxy learns at once that
     * nobody waits for the tokens. 0 keeps serving and closes afterwards.
     * Default 1. */
    int half_close_aborts;
    struct mg_xprt_factory *xprt; /* NULL: plain TCP */
    mg_httpd_request_cb on_request;
    void *data;                   /* passed to on_request and error_body */
    mg_httpd_error_body_cb error_body; /* NULL: "text\n" as text/plain */
};

/* Defaults as described above; listen and on_request are left NULL. */
void mg_httpd_config_default(struct mg_httpd_config *cfg);

/* Creates a server on loop and starts listening. The config is copied
 * (listen string included). 0 or -errno; *err (when not NULL) gets a
 * message for people. */
int mg_httpd_new(struct mg_loop *loop, const struct mg_httpd_config *cfg,
                 struct mg_httpd **out, const char **err);
/* Closes the listener and every connection; requests in flight get on_end
 * with MG_HTTPD_END_SHUTDOWN. Call it from the loop's thread, outside the
 * server's own callbacks. */
void mg_httpd_free(struct mg_httpd *srv);
/* The bound port (useful with port 0). */
int mg_httpd_port(const struct mg_httpd *srv);

struct mg_httpd_stats {
    uint64_t accepted;       /* connections accepted (rejected ones included) */
    uint64_t rejected;       /* connections answered 503 past max_conns */
    uint64_t requests;       /* request heads parsed and handed to the handler */
    uint64_t responses;      /* requests ended with MG_HTTPD_END_OK */
    uint64_t parse_errors;   /* requests refused by the codec */
    uint64_t timeouts;       /* connections cut by a timeout */
    uint64_t accept_paused;  /* times accepting paused (limit or EMFILE) */
    uint64_t open;           /* connections open now */
};
/* A snapshot; each field is read atomically. Any thread. */
void mg_httpd_get_stats(const struct mg_httpd *srv, struct mg_httpd_stats *out);

/* ------------------------------------------------------------------------ */
/* The request. */

/* The parsed head. Its pointers point into the connection's input buffer and
 * stay valid (and in place) until the request ends. */
const struct mg_h1_msg *mg_httpd_req_msg(const struct mg_httpd_req *req);
/* The value of the first header named name, or NULL; *len gets its length. */
const char *mg_httpd_req_header(const struct mg_httpd_req *req, const char *name, size_t *len);
/* The client's IP address as text ("192.0.2.7", "2001:db8::1") into buf
 * (INET6_ADDRSTRLEN bytes suffice). Returns its length or -errno. */
int mg_httpd_req_peer(const struct mg_httpd_req *req, char *buf, size_t n);
/* Request-scoped user data, NULL at the start of every request. */
void mg_httpd_req_set_data(struct mg_httpd_req *req, void *data);
void *mg_httpd_req_data(const struct mg_httpd_req *req);
/* The server (for its loop and stats). */
struct mg_httpd *mg_httpd_req_server(const struct mg_httpd_req *req);
struct mg_loop *mg_httpd_loop(const struct mg_httpd *srv);
/* Called once when the request ends, whatever the reason; see above. */
void mg_httpd_on_end(struct mg_httpd_req *req, mg_httpd_end_cb cb);
/* Called when queued output drops below a quarter of high_water, after a
 * write returned 1. */
void mg_httpd_on_writable(struct mg_httpd_req *req, mg_httpd_writable_cb cb);

/* ------------------------------------------------------------------------ */
/* The request body. A handler that reads neither is answered as usual; the
 * unread body is then discarded (up to 64 KiB, past that the connection is
 * closed after the response), and a request that asked for 100-continue
 * gets no 100 and its connection is closed after the response. */

/* Streams the body to cb as spans, starting from the loop (never inside
 * this call). Sends "100 Continue" first when the client asked for it; call
 * it before starting the response, since no 1xx may follow a response head
 * (a client waiting for 100 then sends its body only after its own timeout,
 * curl's is 1 s).
 * -EALREADY when the body is already being read, -ENOTCONN when the request
 * is over. */
int mg_httpd_read_body(struct mg_httpd_req *req, mg_httpd_body_cb cb);
/* Backpressure: no more spans until resume. While paused the body timeout
 * does not run and the server stops reading once its input buffer is
 * full. Resume delivers from the loop, never inside the call. */
void mg_httpd_pause_body(struct mg_httpd_req *req);
void mg_httpd_resume_body(struct mg_httpd_req *req);
/* Collects the whole body (at most max bytes) and calls cb with it. A body
 * declared longer than max is refused with 413 without reading it (and
 * without 100-continue); a chunked body growing past max gets 413 and the
 * connection closed; either way the request ends with BAD_BODY. The buffer
 * belongs to the connection and is reused by its next requests. */
int mg_httpd_collect_body(struct mg_httpd_req *req, size_t max, mg_httpd_collected_cb cb);

/* ------------------------------------------------------------------------ */
/* The response. Headers are the handler's; the server adds Content-Length
 * or Transfer-Encoding, and "Connection: close" when the connection will
 * close. Handler headers named Content-Length, Transfer-Encoding,
 * Connection or Keep-Alive are not copied (a proxy can pass its upstream's
 * headers through); a "Connection: close" among them makes the server close
 * after this response. Output is written at once (TCP_NODELAY: each write
 * leaves without waiting), what the socket does not take is queued. For a
 * HEAD request the head is sent (with the Content-Length a GET would get)
 * and body bytes are dropped. */

/* A whole response. The body is copied only when the socket does not take
 * it at once. -EMSGSIZE when head and body exceed max_output (stream it
 * instead), -EINVAL for a header name that is not a token or a value with
 * CR, LF or NUL (no header injection), -EALREADY when a response was
 * started, -ENOTCONN when the connection is already gone (on_end
 * follows). Nothing is sent on -EMSGSIZE, -EINVAL or -EALREADY. */
int mg_httpd_respond(struct mg_httpd_req *req, int status, const struct mg_h1_header *hdrs,
                     unsigned nhdrs, const void *body, size_t len);
/* Starts a streamed response: length >= 0 sends Content-Length: length,
 * -1 streams chunked (HTTP/1.0 clients: until close). */
int mg_httpd_start(struct mg_httpd_req *req, int status, const struct mg_h1_header *hdrs,
                   unsigned nhdrs, int64_t length);
/* Writes body bytes (one chunk when chunked; n == 0 writes nothing).
 * Returns 0, or 1 when queued output is now at or above high_water: stop
 * writing until on_writable. -ENOBUFS past max_output (nothing written);
 * -EINVAL past a declared Content-Length or without mg_httpd_start();
 * -ENOTCONN when the connection is gone (on_end follows). */
int mg_httpd_write(struct mg_httpd_req *req, const void *p, size_t n);
/* Ends a streamed response (the last chunk when chunked). -EINVAL when a
 * declared Content-Length was not reached. on_end(OK) follows once the
 * output has left. */
int mg_httpd_end(struct mg_httpd_req *req);
/* Gives up on the request: the connection is closed at once (a streamed
 * response stops short, so the client sees the failure) and on_end
 * follows with MG_HTTPD_END_ABORTED. */
void mg_httpd_abort(struct mg_httpd_req *req);
/* Whether a response was started. */
int mg_httpd_started(const struct mg_httpd_req *req);

#endif
