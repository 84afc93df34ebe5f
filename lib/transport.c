/* The plain TCP transport (mg_xprt_raw): recv/sendmsg on a non-blocking
 * socket. sendmsg with MSG_NOSIGNAL rather than writev so a peer that is gone
 * gives -EPIPE instead of killing the process with SIGPIPE. See transport.h. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

static ssize_t raw_recv(struct mg_xprt *x, void *buf, size_t n)
{
    for (;;) {
        ssize_t r = recv(x->fd, buf, n, 0);
        if (r != -1)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            x->want = MG_READ;
            return -EAGAIN;
        }
        return -errno;
    }
}

static ssize_t raw_sendv(struct mg_xprt *x, const struct iovec *iov, int iovcnt)
{
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)(iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
    for (;;) {
        ssize_t r = sendmsg(x->fd, &mh, MSG_NOSIGNAL);
        if (r != -1)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            x->want = MG_WRITE;
            return -EAGAIN;
        }
        return -errno;
    }
}

static int raw_shutdown(struct mg_xprt *x)
{
    if (shutdown(x->fd, SHUT_WR) == -1)
        return -errno;
    return 0;
}

static void raw_close(struct mg_xprt *x)
{
    if (x->fd != -1)
        close(x->fd);
    x->fd = -1;
}

const struct mg_xprt_ops mg_xprt_raw_ops = {
    .name = "tcp",
    .handshake = NULL,
    .recv = raw_recv,
    .sendv = raw_sendv,
    .pending = NULL,
    .shutdown = raw_shutdown,
    .close = raw_close,
};

int mg_xprt_raw_init(struct mg_xprt *x, int fd)
{
    x->fd = fd;
    x->want = 0;
    x->ops = &mg_xprt_raw_ops;
    x->ctx = NULL;
    return 0;
}

static int raw_wrap(struct mg_xprt_factory *f, struct mg_xprt *x, int fd, int server,
                    const char *peer_name)
{
    return mg_xprt_raw_init(x, fd);
}

struct mg_xprt_factory mg_xprt_raw_factory = {
    .wrap = raw_wrap,
    .ctx = NULL,
};
