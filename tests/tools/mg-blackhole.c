/* mg-blackhole: a loopback port where a TCP connect neither succeeds nor
 * fails, so that a client's connect timeout (not a refusal) is what ends the
 * attempt. It listens with a backlog of 0, never accepts, and fills the
 * accept queue with its own connections: Linux then drops further SYNs
 * (they are retried by the client after ~1 s, 3 s, ...), which is what an
 * unreachable host looks like, without leaving 127.0.0.1.
 *
 *   mg-blackhole --listen 127.0.0.1:0 [--port-file F]
 *
 * Prints "mg-blackhole: port P, queue full after N connections" and waits
 * for SIGTERM/SIGINT. Exit status 1 when the queue could not be filled
 * (the port would answer). */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/loop.h"

#define MAX_FILL 64

static volatile sig_atomic_t stop;

static void on_signal(int signo)
{
    (void)signo;
    stop = 1;
}

/* 1 when a connect to port completed within ms, 0 when it hung, -errno. */
static int try_connect(int port, int ms, int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd_out = fd;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return 1;
    if (errno != EINPROGRESS)
        return -errno;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int n = poll(&p, 1, ms);
    if (n == 0)
        return 0;
    return mg_sock_error(fd) == 0 ? 1 : -ECONNREFUSED;
}

int main(int argc, char **argv)
{
    const char *listen_on = NULL, *port_file = NULL;
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'},
        {"port-file", required_argument, 0, 'p'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen_on = optarg; break;
        case 'p': port_file = optarg; break;
        default:
            fprintf(stderr, "usage: mg-blackhole --listen HOST:PORT [--port-file F]\n");
            return 2;
        }
    }
    if (!listen_on) {
        fprintf(stderr, "usage: mg-blackhole --listen HOST:PORT [--port-file F]\n");
        return 2;
    }
    const char *err = NULL;
    int lfd = mg_listen_tcp(listen_on, 0, 0, &err);
    if (lfd < 0) {
        fprintf(stderr, "mg-blackhole: cannot listen on %s: %s\n", listen_on,
                err ? err : strerror(-lfd));
        return 1;
    }
    /* mg_listen_tcp may have asked for a larger backlog; 0 is the point. */
    if (listen(lfd, 0) == -1) {
        fprintf(stderr, "mg-blackhole: listen: %s\n", strerror(errno));
        return 1;
    }
    int port = mg_sock_port(lfd);
    int fds[MAX_FILL], nfd = 0, full = 0;
    while (nfd < MAX_FILL) {
        int fd = -1;
        int rc = try_connect(port, 300, &fd);
        if (rc < 0) {
            fprintf(stderr, "mg-blackhole: connect to self: %s\n", strerror(-rc));
            return 1;
        }
        if (rc == 0) {
            /* This one hangs: the queue is full. Drop the half-open attempt. */
            close(fd);
            full = 1;
            break;
        }
        fds[nfd++] = fd;
    }
    if (!full) {
        fprintf(stderr, "mg-blackhole: the accept queue never filled after %d connections\n", nfd);
        return 1;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) == -1) {
            fprintf(stderr, "mg-blackhole: cannot write %s: %s\n", port_file, strerror(errno));
            return 1;
        }
    }
    printf("mg-blackhole: port %d, queue full after %d connections\n", port, nfd);
    fflush(stdout);
    /* Blocked outside sigsuspend, so a signal cannot slip in between the
     * test of stop and the wait. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &old);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    while (!stop)
        sigsuspend(&old);
    for (int i = 0; i < nfd; i++)
        close(fds[i]);
    close(lfd);
    return 0;
}
