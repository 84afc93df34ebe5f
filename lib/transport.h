/* Transports: the layer under the HTTP server and client cores. A transport
 * moves bytes over a connected fd: plain TCP (mg_xprt_raw) or TLS with
 * OpenSSL (tls.h), each an ops table and a factory; the layers above only
 * call through the ops (HAProxy's xprt, curl's connection filters).
 *
 * Non-blocking throughout. When an op returns -EAGAIN it sets x->want to the
 * fd readiness it waits for (MG_READ or MG_WRITE from loop.h): a TLS read can
 * need the socket writable, a TLS write readable. */
#ifndef MG_TRANSPORT_H
#define MG_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct mg_xprt;

struct mg_xprt_ops {
    const char *name;
    /* Completes a handshake: 0 done, -EAGAIN (see want), -errno. NULL: none. */
    int (*handshake)(struct mg_xprt *x);
    /* Reads up to n bytes: >0 read, 0 orderly end of stream, -EAGAIN, -errno. */
    ssize_t (*recv)(struct mg_xprt *x, void *buf, size_t n);
    /* Writes from iov: >=0 bytes taken, -EAGAIN, -errno (-EPIPE when the peer
     * is gone). Never raises SIGPIPE. */
    ssize_t (*sendv)(struct mg_xprt *x, const struct iovec *iov, int iovcnt);
    /* Bytes already decoded inside the transport, readable without the fd
     * becoming readable (TLS records); NULL: always 0. httpd and httpc read
     * them from a deferred callback when they want input. */
    size_t (*pending)(struct mg_xprt *x);
    /* Best-effort end of our sending side (FIN, TLS close_notify). */
    int (*shutdown)(struct mg_xprt *x);
    /* Frees ctx and closes fd. */
    void (*close)(struct mg_xprt *x);
};

struct mg_xprt {
    int fd;
    unsigned want;
    const struct mg_xprt_ops *ops;
    void *ctx;
};

/* How a server or a client pool wraps a fresh fd in a transport. server is 1
 * for accepted connections; peer_name is the host the client connects to (for
 * TLS SNI and verification), NULL on the server side. 0 or -errno; on failure
 * the fd is left open for the caller. */
struct mg_xprt_factory {
    int (*wrap)(struct mg_xprt_factory *f, struct mg_xprt *x, int fd, int server,
                const char *peer_name);
    void *ctx;
};

extern const struct mg_xprt_ops mg_xprt_raw_ops;
extern struct mg_xprt_factory mg_xprt_raw_factory;
/* Wraps fd in the plain TCP transport. Always 0. */
int mg_xprt_raw_init(struct mg_xprt *x, int fd);

static inline int mg_xprt_handshake(struct mg_xprt *x)
{
    return x->ops->handshake ? x->ops->handshake(x) : 0;
}
static inline ssize_t mg_xprt_recv(struct mg_xprt *x, void *buf, size_t n)
{
    return x->ops->recv(x, buf, n);
}
static inline ssize_t mg_xprt_sendv(struct mg_xprt *x, const struct iovec *iov, int n)
{
    return x->ops->sendv(x, iov, n);
}
static inline size_t mg_xprt_pending(struct mg_xprt *x)
{
    return x->ops->pending ? x->ops->pending(x) : 0;
}
static inline int mg_xprt_shutdown(struct mg_xprt *x)
{
    return x->ops->shutdown ? x->ops->shutdown(x) : 0;
}
static inline void mg_xprt_close(struct mg_xprt *x)
{
    if (x->ops)
        x->ops->close(x);
    x->ops = NULL;
    x->fd = -1;
}

#endif
