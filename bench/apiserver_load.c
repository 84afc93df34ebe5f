/* apiserver_load: the load client of bench/run-apiserver.sh. It drives
 * modelgate-apiserver over lib/httpc (keep-alive, one event loop) and times
 * the storage floor underneath it (sqlite3 itself), one mode per run:
 *
 *   apiserver_load create --connect H:P --namespace NS --count N --conns C
 *                         [--prefix P] [--data-bytes B] [--timeout-ms T]
 *                         [--start I] [--lat-file F]
 *       POSTs the namespace (201, or 409 when it exists), then N ConfigMaps
 *       named P-<I>.. P-<I+N-1> (six digits) with C requests in flight on C
 *       keep-alive connections. Every reply must be 201 with the object back
 *       (name, resourceVersion); the resourceVersions must all differ.
 *       --lat-file appends each create's latency (µs, one a line), so that
 *       a driver running in rounds gets percentiles over all of them.
 *   apiserver_load list --connect H:P --namespace NS --expect N [--limit L]
 *                       [--repeat R] [--timeout-ms T]
 *       GET the namespace's configmaps, whole (limit 0) or in pages of L
 *       following metadata.continue; R times. Every run must return exactly
 *       N items, in strictly rising name order (no duplicates across pages).
 *   apiserver_load watch --connect H:P --namespace NS --watchers W --writes K
 *                        [--pid PID] [--timeout-ms T] [--write-timeout-ms T]
 *       Reads the current resourceVersion (a list with limit=1), opens W
 *       watches from it, makes one warm-up write (a ConfigMap create) that
 *       every watcher must see (that proves every watch is registered), then
 *       K measured writes one at a time: each is timed from just before it
 *       is sent to the moment each watcher has read its ADDED event. With
 *       --pid it samples the server's VmRSS/VmHWM while the watches are open.
 *   apiserver_load sqlite --dir D --count N [--data-bytes B]
 *                         [--synchronous NORMAL|FULL|OFF] [--shape insert|store]
 *                         [--start I] [--keep] [--lat-file F]
 *       The peer: N single-row transactions on D/peer.db in WAL mode, on
 *       the store's table. insert: BEGIN IMMEDIATE; INSERT; COMMIT (the
 *       floor). store: the statements apiserver/store.c runs per create
 *       (read the object's row, read and bump the global counter, insert).
 *       --keep adds to the database of a previous round (rows from --start)
 *       instead of starting afresh.
 *
 * Each mode prints one JSON line on stdout. Failures are told on stderr
 * with the exact request and the reply (status and the start of the body),
 * the first few in full. Exit status: 0 when everything checked out, 1 when
 * the server did something wrong or the time ran out, 2 on bad usage.
 * Everything is bounded: counts are capped, every mode has a deadline. */
#define _GNU_SOURCE
#include "lib/httpc.h"
#include "lib/loop.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <jansson.h>
#include <sqlite3.h>

#define MAX_COUNT 1000000
#define MAX_CONNS 1024
#define MAX_WATCHERS 10000
#define MAX_WRITES 1000
#define MAX_DATA_BYTES 65536
#define SNIP_MAX 1024                    /* reply bytes kept for error reports */
#define LIST_BODY_MAX ((size_t)1 << 30)  /* a list reply past this is an error */
#define WATCH_LINE_MAX ((size_t)1 << 20) /* one watch event line */
#define REPORT_MAX 5                     /* failures told in full */
#define GIVE_UP_ERRORS 64                /* transport errors in a row that end a run */

/* --- small things ---------------------------------------------------------- */

static const char *prog = "apiserver_load";

struct opts {
    const char *connect, *ns, *prefix, *dir, *sync, *shape, *lat_file;
    long count, conns, data_bytes, limit, repeat, expect, watchers, writes, pid;
    long timeout_ms, write_timeout_ms;
    long start;    /* first object index (create, sqlite): runs in rounds */
    int keep;      /* sqlite: add to the database of a previous round */
};

static struct mg_loop *loop;
static struct mg_httpc *client;
static struct mg_httpc_endpoint *endpoint;
static struct mg_timer deadline;
static int timed_out;
static int reported;   /* failures told in full so far */

static void deadline_cb(struct mg_loop *l, struct mg_timer *t)
{
    timed_out = 1;
    mg_loop_stop(l);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[n], in ms (v in ns). */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return -1;
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

/* This process's CPU time so far (user + system), in seconds: tells
 * whether the client, not the server, was what limited a run. */
static double self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == -1)
        return -1;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Appends latencies (ns) to path as microseconds, one a line, for a
 * driver that runs in rounds and wants percentiles over all of them. */
static int write_lat_file(const char *path, const uint64_t *v, size_t n)
{
    if (!path)
        return 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -errno;
    }
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.1f\n", (double)v[i] / 1e3);
    if (fclose(f) == EOF) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static void proc_mem_kb(long pid, long *rss, long *hwm)
{
    char path[64], line[256];
    *rss = *hwm = -1;
    if (pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm = strtol(line + 6, NULL, 10);
    }
    fclose(f);
}

/* A byte buffer with a hard cap. */
struct cbuf {
    char *p;
    size_t len, cap, max;
    int overflow;
};

static void cbuf_add(struct cbuf *b, const char *p, size_t n)
{
    if (b->overflow)
        return;
    if (n > b->max - b->len) {
        b->overflow = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->overflow = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

/* Tells one failure in full (the first REPORT_MAX), with the request. */
static void report(const char *what, const char *method, const char *target, const char *body,
                   int status, const char *reply, size_t reply_len)
{
    if (reported++ >= REPORT_MAX) {
        if (reported == REPORT_MAX + 1)
            fprintf(stderr, "%s: (further failures are only counted)\n", prog);
        return;
    }
    fprintf(stderr, "%s: %s\n  request: %s %s%s%s\n  reply: ", prog, what, method, target,
            body ? " " : "", body ? body : "");
    if (status > 0)
        fprintf(stderr, "%d ", status);
    else
        fprintf(stderr, "(none) ");
    fprintf(stderr, "%.*s%s\n", (int)(reply_len > SNIP_MAX ? SNIP_MAX : reply_len),
            reply ? reply : "", reply_len > SNIP_MAX ? "..." : "");
}

static const struct mg_h1_header json_headers[] = {
    {"Content-Type", "application/json", 12, 16},
    {"Accept", "application/json", 6, 16},
};

static int client_start(const char *hostport, unsigned conns, uint32_t timeout_ms)
{
    struct mg_httpc_config cfg;
    const char *err = NULL;
    int rc;
    if ((rc = mg_loop_new(&loop)) < 0) {
        fprintf(stderr, "%s: cannot create an event loop: %s\n", prog, strerror(-rc));
        return rc;
    }
    mg_httpc_config_default(&cfg);
    cfg.max_idle_per_endpoint = conns + 2;
    cfg.idle_timeout_ms = 600000;
    cfg.limits.max_body = 0;
    if ((rc = mg_httpc_new(loop, &cfg, &client)) < 0) {
        fprintf(stderr, "%s: cannot create the HTTP client: %s\n", prog, strerror(-rc));
        return rc;
    }
    if ((rc = mg_httpc_endpoint(client, hostport, &endpoint, &err)) < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, hostport, err ? err : strerror(-rc));
        return rc;
    }
    mg_timer_init(&deadline, deadline_cb, NULL);
    if ((rc = mg_timer_start(loop, &deadline, timeout_ms)) < 0)
        return rc;
    return 0;
}

static void client_stop(void)
{
    if (client)
        mg_httpc_free(client);
    if (loop)
        mg_loop_free(loop);
    client = NULL;
    loop = NULL;
}

/* --- one request at a time --------------------------------------------------- */

struct one {
    struct mg_httpc_req req;
    int status;
    int done, failed;
    enum mg_httpc_error kind;
    int err;
    struct cbuf body;
};

static void one_head(struct mg_httpc_req *req, const struct mg_h1_msg *msg)
{
    struct one *o = req->data;
    o->status = msg->status;
}

static void one_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct one *o = req->data;
    cbuf_add(&o->body, p, n);
}

static void one_done(struct mg_httpc_req *req)
{
    struct one *o = req->data;
    o->done = 1;
    mg_loop_stop(loop);
}

static void one_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    struct one *o = req->data;
    o->done = o->failed = 1;
    o->kind = kind;
    o->err = err;
    mg_loop_stop(loop);
}

/* Sends one request and runs the loop until it ends. 0 with o filled in
 * (o->body.p is the caller's to free), or -errno (told on stderr) when there
 * was no complete reply. *ns gets the time from send to the reply's end. */
static int one_request(struct one *o, const char *method, const char *target, const char *body,
                       size_t body_max, uint64_t *ns)
{
    memset(o, 0, sizeof *o);
    o->body.max = body_max;
    o->req.method = method;
    o->req.target = target;
    o->req.headers = json_headers;
    o->req.nheaders = 2;
    o->req.body = body;
    o->req.body_len = body ? strlen(body) : 0;
    o->req.on_head = one_head;
    o->req.on_body = one_body;
    o->req.on_done = one_done;
    o->req.on_error = one_error;
    o->req.data = o;
    uint64_t t0 = mg_now_ns();
    int rc = mg_httpc_send(client, endpoint, &o->req);
    if (rc < 0) {
        fprintf(stderr, "%s: %s %s: cannot send: %s\n", prog, method, target, strerror(-rc));
        return rc;
    }
    while (!o->done && !timed_out)
        mg_loop_run(loop);
    if (ns)
        *ns = mg_now_ns() - t0;
    if (!o->done) {
        mg_httpc_cancel(&o->req);
        fprintf(stderr, "%s: %s %s: no reply before the deadline\n", prog, method, target);
        return -ETIMEDOUT;
    }
    if (o->failed) {
        fprintf(stderr, "%s: %s %s: %s%s%s\n", prog, method, target, mg_httpc_strerror(o->kind),
                o->err ? ": " : "", o->err ? strerror(o->err) : "");
        return -EIO;
    }
    if (o->body.overflow) {
        fprintf(stderr, "%s: %s %s: the reply is larger than %zu bytes (or out of memory)\n",
                prog, method, target, body_max);
        return -EMSGSIZE;
    }
    return 0;
}

/* --- create ------------------------------------------------------------------ */

struct cslot {
    struct mg_httpc_req req;
    long idx;
    uint64_t t0;
    int status;
    char body[MAX_DATA_BYTES + 512];
    size_t body_len;
    char snip[MAX_DATA_BYTES + 4096];   /* the reply, for the check and reports */
    size_t snip_len, reply_len;
};

static const struct opts *cop;
static char create_target[512];
static long c_next, c_ended, c_ok, c_bad;
static int c_transport_errors;   /* in a row */
static uint64_t *c_lat, *c_rv;
static size_t c_nlat, c_nrv;
static size_t c_obj_bytes;   /* sum of the reply bodies of good creates */

static size_t cm_body(char *out, size_t cap, const char *ns, const char *name, long data_bytes,
                      long seed)
{
    /* One data value of data_bytes letters, varying per object. */
    int n = snprintf(out, cap,
                     "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"%s\","
                     "\"namespace\":\"%s\",\"labels\":{\"app\":\"modelgate-bench\"}},"
                     "\"data\":{\"payload\":\"",
                     name, ns);
    size_t o = (size_t)n;
    for (long i = 0; i < data_bytes && o + 8 < cap; i++)
        out[o++] = (char)('a' + (seed + i) % 26);
    o += (size_t)snprintf(out + o, cap - o, "\"}}");
    return o;
}

static void cslot_start(struct cslot *s);

static void c_finish_one(struct cslot *s, int ok)
{
    c_ended++;
    if (ok)
        c_ok++;
    else
        c_bad++;
    if (c_transport_errors >= GIVE_UP_ERRORS && c_next < cop->count) {
        /* The server is gone: the rest would fail the same way. */
        fprintf(stderr, "%s: create: %d transport errors in a row, giving up with %ld creates "
                "not sent\n", prog, GIVE_UP_ERRORS, cop->count - c_next);
        c_bad += cop->count - c_next;
        c_ended += cop->count - c_next;
        c_next = cop->count;
    }
    if (c_ended == cop->count) {
        mg_loop_stop(loop);
        return;
    }
    cslot_start(s);
}

static void cslot_head(struct mg_httpc_req *req, const struct mg_h1_msg *msg)
{
    struct cslot *s = req->data;
    s->status = msg->status;
}

static void cslot_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct cslot *s = req->data;
    size_t room = sizeof s->snip - 1 - s->snip_len;
    size_t take = n < room ? n : room;
    memcpy(s->snip + s->snip_len, p, take);
    s->snip_len += take;
    s->snip[s->snip_len] = 0;
    s->reply_len += n;
}

static void cslot_done(struct mg_httpc_req *req)
{
    struct cslot *s = req->data;
    uint64_t t = mg_now_ns() - s->t0;
    char name[128];
    int ok = 0;
    snprintf(name, sizeof name, "%s-%06ld", cop->prefix, cop->start + s->idx);
    if (s->status == 201 && s->reply_len == s->snip_len) {
        /* The object comes back, named, with the RV it was stored at. */
        json_t *o = json_loadb(s->snip, s->snip_len, 0, NULL);
        json_t *md = json_object_get(o, "metadata");
        const char *n = json_string_value(json_object_get(md, "name"));
        const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
        char *end = NULL;
        uint64_t rvn = rv ? strtoull(rv, &end, 10) : 0;
        if (n && !strcmp(n, name) && rv && *rv && end && !*end && rvn) {
            ok = 1;
            c_rv[c_nrv++] = rvn;
            c_obj_bytes += s->reply_len;
        }
        json_decref(o);
        if (!ok)
            report("a 201 reply without the object's name and resourceVersion", "POST",
                   create_target, s->body, s->status, s->snip, s->reply_len);
    } else if (s->status == 201) {
        report("a 201 reply larger than expected", "POST", create_target, s->body, s->status,
               s->snip, s->reply_len);
    } else {
        report("a create was not acknowledged with 201", "POST", create_target, s->body,
               s->status, s->snip, s->reply_len);
    }
    if (ok)
        c_lat[c_nlat++] = t;
    c_transport_errors = 0;
    c_finish_one(s, ok);
}

static void cslot_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    struct cslot *s = req->data;
    char what[256];
    snprintf(what, sizeof what, "a create failed: %s%s%s", mg_httpc_strerror(kind),
             err ? ": " : "", err ? strerror(err) : "");
    report(what, "POST", create_target, s->body, s->status, s->snip, s->snip_len);
    c_transport_errors++;
    c_finish_one(s, 0);
}

static void cslot_start(struct cslot *s)
{
    while (c_next < cop->count) {
        char name[128];
        memset(&s->req, 0, sizeof s->req);
        s->idx = c_next++;
        snprintf(name, sizeof name, "%s-%06ld", cop->prefix, cop->start + s->idx);
        s->body_len = cm_body(s->body, sizeof s->body, cop->ns, name, cop->data_bytes,
                              cop->start + s->idx);
        s->status = 0;
        s->snip_len = s->reply_len = 0;
        s->snip[0] = 0;
        s->req.method = "POST";
        s->req.target = create_target;
        s->req.headers = json_headers;
        s->req.nheaders = 2;
        s->req.body = s->body;
        s->req.body_len = s->body_len;
        s->req.no_retry = 1;   /* a retried create would count twice */
        s->req.on_head = cslot_head;
        s->req.on_body = cslot_body;
        s->req.on_done = cslot_done;
        s->req.on_error = cslot_error;
        s->req.data = s;
        s->t0 = mg_now_ns();
        int rc = mg_httpc_send(client, endpoint, &s->req);
        if (rc == 0)
            return;
        report(strerror(-rc), "POST", create_target, s->body, 0, NULL, 0);
        c_transport_errors++;
        c_finish_one(s, 0);   /* starts the next one (or gives up) itself */
        return;
    }
}

static int ensure_namespace(const char *ns)
{
    char body[512];
    struct one o;
    snprintf(body, sizeof body,
             "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", ns);
    int rc = one_request(&o, "POST", "/api/v1/namespaces", body, 1 << 20, NULL);
    if (rc == 0 && o.status != 201 && o.status != 409) {
        report("cannot create the namespace", "POST", "/api/v1/namespaces", body, o.status,
               o.body.p, o.body.len);
        rc = -EPROTO;
    }
    free(o.body.p);
    return rc;
}

static int mode_create(const struct opts *op)
{
    struct cslot *slots = NULL;
    int ret = 1;
    cop = op;
    snprintf(create_target, sizeof create_target, "/api/v1/namespaces/%s/configmaps", op->ns);
    c_lat = calloc((size_t)op->count, sizeof *c_lat);
    c_rv = calloc((size_t)op->count, sizeof *c_rv);
    slots = calloc((size_t)op->conns, sizeof *slots);
    if (!c_lat || !c_rv || !slots) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (client_start(op->connect, (unsigned)op->conns, (uint32_t)op->timeout_ms) < 0)
        goto out;
    if (ensure_namespace(op->ns) < 0)
        goto out;
    struct mg_httpc_stats after;
    double cpu0 = self_cpu_s();
    uint64_t t0 = mg_now_ns();
    for (long i = 0; i < op->conns && c_next < op->count; i++)
        cslot_start(&slots[i]);
    while (c_ended < op->count && !timed_out)
        mg_loop_run(loop);
    double secs = (double)(mg_now_ns() - t0) / 1e9;
    double cpu = self_cpu_s() - cpu0;
    mg_httpc_get_stats(client, &after);
    if (timed_out)
        fprintf(stderr, "%s: create: deadline of %ld ms passed with %ld of %ld creates ended\n",
                prog, op->timeout_ms, c_ended, op->count);
    qsort(c_lat, c_nlat, sizeof *c_lat, cmp_u64);
    qsort(c_rv, c_nrv, sizeof *c_rv, cmp_u64);
    long dup_rv = 0;
    for (size_t i = 1; i < c_nrv; i++)
        if (c_rv[i] == c_rv[i - 1])
            dup_rv++;
    if (dup_rv)
        fprintf(stderr, "%s: create: %ld acknowledged creates share a resourceVersion\n", prog,
                dup_rv);
    printf("{\"mode\":\"create\",\"count\":%ld,\"conns\":%ld,\"ok\":%ld,\"failed\":%ld,"
           "\"seconds\":%.3f,\"per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"connections_opened\":%" PRIu64 ",\"dup_rv\":%ld,\"avg_reply_bytes\":%.0f,"
           "\"request_bytes\":%zu,\"client_cpu_s\":%.3f}\n",
           op->count, op->conns, c_ok, c_bad + (op->count - c_ended), secs,
           secs > 0 ? (double)c_ok / secs : 0, pct_ms(c_lat, c_nlat, 0.50),
           pct_ms(c_lat, c_nlat, 0.99), c_nlat ? (double)c_lat[c_nlat - 1] / 1e6 : -1,
           after.created, dup_rv,
           c_ok ? (double)c_obj_bytes / (double)c_ok : 0, slots[0].body_len, cpu);
    ret = (c_ok == op->count && !dup_rv && !timed_out) ? 0 : 1;
    if (write_lat_file(op->lat_file, c_lat, c_nlat) < 0)
        ret = 1;
out:
    client_stop();
    free(slots);
    free(c_lat);
    free(c_rv);
    return ret;
}

/* --- list -------------------------------------------------------------------- */

/* One full listing (all pages). 0, or 1 when the server got it wrong. */
static int list_once(const struct opts *op, long *items, long *pages, size_t *bytes,
                     uint64_t *req_ns, uint64_t *total_ns)
{
    char target[8192];
    char *cont = NULL;
    char last[256] = "";
    int ret = 1;
    *items = *pages = 0;
    *bytes = 0;
    *req_ns = 0;
    uint64_t t0 = mg_now_ns();
    for (;;) {
        struct one o;
        uint64_t ns = 0;
        int n = snprintf(target, sizeof target, "/api/v1/namespaces/%s/configmaps", op->ns);
        if (op->limit > 0)
            n += snprintf(target + n, sizeof target - (size_t)n, "?limit=%ld", op->limit);
        if (cont) {
            /* Tokens the store makes are URL-safe; escape anyway. */
            n += snprintf(target + n, sizeof target - (size_t)n, "&continue=");
            for (const char *p = cont; *p && (size_t)n + 4 < sizeof target; p++) {
                unsigned char ch = (unsigned char)*p;
                if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~')
                    target[n++] = (char)ch;
                else
                    n += snprintf(target + n, sizeof target - (size_t)n, "%%%02X", ch);
            }
            target[n] = 0;
        }
        free(cont);
        cont = NULL;
        if (one_request(&o, "GET", target, NULL, LIST_BODY_MAX, &ns) < 0) {
            free(o.body.p);
            goto out;
        }
        *req_ns += ns;
        *bytes += o.body.len;
        (*pages)++;
        if (o.status != 200) {
            report("a list was not answered with 200", "GET", target, NULL, o.status, o.body.p,
                   o.body.len);
            free(o.body.p);
            goto out;
        }
        json_error_t jerr;
        json_t *v = json_loadb(o.body.p ? o.body.p : "", o.body.len, 0, &jerr);
        json_t *arr = json_object_get(v, "items");
        const char *kind = json_string_value(json_object_get(v, "kind"));
        if (!v || !json_is_array(arr) || !kind || strcmp(kind, "ConfigMapList") != 0) {
            char what[512];
            snprintf(what, sizeof what, "a list reply is not a ConfigMapList%s%s",
                     v ? "" : ": ", v ? "" : jerr.text);
            report(what, "GET", target, NULL, o.status, o.body.p, o.body.len);
            json_decref(v);
            free(o.body.p);
            goto out;
        }
        free(o.body.p);
        size_t i;
        json_t *it;
        json_array_foreach(arr, i, it) {
            const char *name =
                json_string_value(json_object_get(json_object_get(it, "metadata"), "name"));
            if (!name || strcmp(name, last) <= 0) {
                fprintf(stderr, "%s: list: item %ld (%s) does not come after %s: a duplicate or "
                        "out of order (GET %s)\n", prog, *items, name ? name : "(no name)",
                        last[0] ? last : "the start", target);
                json_decref(v);
                goto out;
            }
            snprintf(last, sizeof last, "%s", name);
            (*items)++;
        }
        const char *c = json_string_value(
            json_object_get(json_object_get(v, "metadata"), "continue"));
        if (c && *c && !(cont = strdup(c))) {
            json_decref(v);
            goto out;
        }
        json_decref(v);
        if (!cont)
            break;
        if (op->limit <= 0) {
            fprintf(stderr, "%s: list: a list without limit returned a continue token\n", prog);
            goto out;
        }
        if (*pages > op->expect + 2) {
            fprintf(stderr, "%s: list: more pages than items: the continue tokens loop\n", prog);
            goto out;
        }
    }
    ret = 0;
out:
    free(cont);
    *total_ns = mg_now_ns() - t0;
    return ret;
}

static int mode_list(const struct opts *op)
{
    uint64_t *req = calloc((size_t)op->repeat, sizeof *req);
    uint64_t *tot = calloc((size_t)op->repeat, sizeof *tot);
    int ret = 1;
    long items = 0, pages = 0;
    size_t bytes = 0;
    long runs = 0;
    if (!req || !tot)
        goto out;
    if (client_start(op->connect, 1, (uint32_t)op->timeout_ms) < 0)
        goto out;
    for (long r = 0; r < op->repeat; r++) {
        if (list_once(op, &items, &pages, &bytes, &req[r], &tot[r]) != 0)
            goto out;
        runs++;
        if (items != op->expect) {
            fprintf(stderr, "%s: list: %ld items listed, %ld expected (limit %ld, %ld pages)\n",
                    prog, items, op->expect, op->limit, pages);
            goto out;
        }
    }
    ret = 0;
out:
    if (runs > 0) {
        qsort(req, (size_t)runs, sizeof *req, cmp_u64);
        qsort(tot, (size_t)runs, sizeof *tot, cmp_u64);
        printf("{\"mode\":\"list\",\"limit\":%ld,\"runs\":%ld,\"items\":%ld,\"pages\":%ld,"
               "\"bytes\":%zu,\"best_ms\":%.1f,\"median_ms\":%.1f,\"best_total_ms\":%.1f,"
               "\"median_total_ms\":%.1f}\n",
               op->limit, runs, items, pages, bytes, (double)req[0] / 1e6,
               (double)req[(runs - 1) / 2] / 1e6, (double)tot[0] / 1e6,
               (double)tot[(runs - 1) / 2] / 1e6);
    }
    client_stop();
    free(req);
    free(tot);
    return ret;
}

/* --- watch ------------------------------------------------------------------- */

struct watcher {
    struct mg_httpc_req req;
    int idx;
    int status;
    int ended;          /* the stream ended (it should not) */
    int failed;         /* an ERROR event, a bad line, a non-200 */
    struct cbuf in;     /* bytes not yet split into lines */
    uint64_t t_line;    /* when the pending bytes' newline arrived */
    int pending;        /* on the parse list */
    struct watcher *next_pending;
    uint64_t *got;      /* [writes + 1]: arrival of write k's event, 0: not yet */
    uint64_t *got_rv;   /* [writes + 1]: the resourceVersion in that event */
};

static const struct opts *wop;
static struct watcher *ws;
static long w_open, w_heads, w_ended, w_other, w_bad_lines;
static long heads_at_warmup = -1;   /* watch heads received before the warm-up write */
static uint64_t *w_rv;              /* [writes + 1]: the RV in each write's 201 */
static char watch_target[1024], wcreate_target[512];
static struct watcher *pending_head;
static struct mg_defer parse_defer;
static struct mg_timer step_timer, write_timer;
static struct one wreq;          /* the measured write */
static long cur = -1;            /* write being measured (0: warm-up) */
static uint64_t *w_t0, *w_reply_ns;
static long *w_count;            /* watchers that saw write k */
static int w_reply_done, w_reply_ok, w_finished, w_failed_writes;
static long rss_open = -1, hwm_open = -1;
static char wbody[MAX_DATA_BYTES + 512];

static void w_next_step(void);

static long watchers_live(void)
{
    return w_open - w_ended;
}

static void w_check_write_done(void)
{
    if (cur < 0 || cur > wop->writes || w_finished || !w_reply_done)
        return;
    /* A write the server refused produces no event: no point waiting. */
    if (w_reply_ok && w_count[cur] < watchers_live())
        return;
    mg_timer_stop(loop, &write_timer);
    w_next_step();
}

static void w_event(struct watcher *w, const char *line, size_t n, uint64_t t)
{
    json_error_t jerr;
    json_t *v = json_loadb(line, n, 0, &jerr);
    const char *type = json_string_value(json_object_get(v, "type"));
    json_t *obj = json_object_get(v, "object");
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!v || !type) {
        if (w_bad_lines++ < 3)
            fprintf(stderr, "%s: watcher %d: a line that is not a watch event (%s): %.*s\n", prog,
                    w->idx, v ? "no type" : jerr.text, (int)(n > SNIP_MAX ? SNIP_MAX : n), line);
        w->failed = 1;
    } else if (!strcmp(type, "ERROR")) {
        fprintf(stderr, "%s: watcher %d: an ERROR event: %.*s\n", prog, w->idx,
                (int)(n > SNIP_MAX ? SNIP_MAX : n), line);
        w->failed = 1;
    } else {
        size_t plen = strlen(wop->prefix);
        long k = -1;
        if (name && !strncmp(name, wop->prefix, plen) && name[plen] == '-') {
            char *end = NULL;
            k = strtol(name + plen + 1, &end, 10);
            if (!end || *end || k < 0 || k > wop->writes)
                k = -1;
        }
        if (k >= 0 && !strcmp(type, "ADDED") && !w->got[k]) {
            const char *rv = json_string_value(
                json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
            w->got[k] = t;
            w->got_rv[k] = rv ? strtoull(rv, NULL, 10) : 0;
            w_count[k]++;
            if (k == cur)
                w_check_write_done();
        } else {
            if (w_other++ < 3)
                fprintf(stderr, "%s: watcher %d: an event not expected: %.*s\n", prog, w->idx,
                        (int)(n > 300 ? 300 : n), line);
        }
    }
    json_decref(v);
}

/* Splits and parses after all of this loop iteration's reads, so that the
 * arrival times of watchers read in one iteration are not delayed by the
 * parsing of the others. */
static void parse_pending(struct mg_loop *l, void *data)
{
    while (pending_head) {
        struct watcher *w = pending_head;
        pending_head = w->next_pending;
        w->pending = 0;
        size_t start = 0;
        for (size_t i = 0; i < w->in.len; i++)
            if (w->in.p[i] == '\n') {
                if (i > start)
                    w_event(w, w->in.p + start, i - start, w->t_line);
                start = i + 1;
            }
        if (start > 0) {
            memmove(w->in.p, w->in.p + start, w->in.len - start);
            w->in.len -= start;
        }
    }
}

static void wt_head(struct mg_httpc_req *req, const struct mg_h1_msg *msg)
{
    struct watcher *w = req->data;
    w->status = msg->status;
    w_heads++;
    if (msg->status != 200) {
        w->failed = 1;
        fprintf(stderr, "%s: watcher %d: GET %s answered %d\n", prog, w->idx, watch_target,
                msg->status);
    }
}

static void wt_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    struct watcher *w = req->data;
    if (memchr(p, '\n', n) && !w->pending)
        w->t_line = mg_now_ns();
    cbuf_add(&w->in, p, n);
    if (w->in.overflow && !w->failed) {
        fprintf(stderr, "%s: watcher %d: an event line longer than %zu bytes\n", prog, w->idx,
                WATCH_LINE_MAX);
        w->failed = 1;
        w->in.overflow = 0;
        w->in.len = 0;
    }
    if (!w->pending && w->in.len && memchr(w->in.p, '\n', w->in.len)) {
        w->pending = 1;
        w->next_pending = pending_head;
        pending_head = w;
        mg_defer(loop, &parse_defer);
    }
}

static void wt_end(struct watcher *w, const char *why)
{
    if (w->ended)
        return;
    w->ended = 1;
    w_ended++;
    if (!w_finished)
        fprintf(stderr, "%s: watcher %d: the watch ended early (%s; status %d)%s%.*s\n", prog,
                w->idx, why, w->status, w->in.len ? ", last bytes: " : "",
                (int)(w->in.len > 300 ? 300 : w->in.len), w->in.p ? w->in.p : "");
    w_check_write_done();
}

static void wt_done(struct mg_httpc_req *req)
{
    wt_end(req->data, "the server ended the response");
}

static void wt_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    wt_end(req->data, mg_httpc_strerror(kind));
}

/* The measured write: a ConfigMap create, sent on a pooled connection. */
static void wr_head(struct mg_httpc_req *req, const struct mg_h1_msg *msg)
{
    wreq.status = msg->status;
}

static void wr_body(struct mg_httpc_req *req, const char *p, size_t n)
{
    cbuf_add(&wreq.body, p, n);
}

static void wr_end(int ok)
{
    w_reply_ns[cur] = mg_now_ns() - w_t0[cur];
    w_reply_done = 1;
    w_reply_ok = ok;
    if (!ok) {
        report("a watched write was not acknowledged with 201", "POST", wcreate_target, wbody,
               wreq.status, wreq.body.p, wreq.body.len);
        w_failed_writes++;
    }
    free(wreq.body.p);
    wreq.body.p = NULL;
    wreq.body.len = wreq.body.cap = 0;
    w_check_write_done();
}

static void wr_done(struct mg_httpc_req *req)
{
    if (wreq.status == 201 && wreq.body.p) {
        json_t *v = json_loadb(wreq.body.p, wreq.body.len, 0, NULL);
        const char *rv = json_string_value(
            json_object_get(json_object_get(v, "metadata"), "resourceVersion"));
        w_rv[cur] = rv ? strtoull(rv, NULL, 10) : 0;
        json_decref(v);
    }
    wr_end(wreq.status == 201);
}

static void wr_error(struct mg_httpc_req *req, enum mg_httpc_error kind, int err)
{
    wreq.status = 0;
    wr_end(0);
}

static void write_timeout_cb(struct mg_loop *l, struct mg_timer *t)
{
    fprintf(stderr, "%s: write %ld: %ld of %ld live watchers saw it within %ld ms%s\n", prog, cur,
            w_count[cur], watchers_live(), wop->write_timeout_ms,
            w_reply_done ? "" : " (and the write itself was not answered)");
    if (!w_reply_done) {
        mg_httpc_cancel(&wreq.req);
        wreq.status = 0;
        w_reply_done = 1;
        w_failed_writes++;
        free(wreq.body.p);
        wreq.body.p = NULL;
    }
    w_next_step();
}

static void send_write(struct mg_loop *l, struct mg_timer *t)
{
    char name[128];
    snprintf(name, sizeof name, "%s-%03ld", wop->prefix, cur);
    size_t len = cm_body(wbody, sizeof wbody, wop->ns, name, wop->data_bytes, cur);
    memset(&wreq, 0, sizeof wreq);
    wreq.body.max = 1 << 20;
    wreq.req.method = "POST";
    wreq.req.target = wcreate_target;
    wreq.req.headers = json_headers;
    wreq.req.nheaders = 2;
    wreq.req.body = wbody;
    wreq.req.body_len = len;
    wreq.req.no_retry = 1;
    wreq.req.on_head = wr_head;
    wreq.req.on_body = wr_body;
    wreq.req.on_done = wr_done;
    wreq.req.on_error = wr_error;
    w_reply_done = 0;
    mg_loop_update_time(loop);
    mg_timer_start(loop, &write_timer, (uint64_t)wop->write_timeout_ms);
    w_t0[cur] = mg_now_ns();
    int rc = mg_httpc_send(client, endpoint, &wreq.req);
    if (rc < 0) {
        fprintf(stderr, "%s: write %ld: cannot send: %s\n", prog, cur, strerror(-rc));
        w_reply_done = 1;
        w_failed_writes++;
        mg_timer_stop(loop, &write_timer);
        w_next_step();
    }
}

/* Moves to the next write (or the end) after the current one completed or
 * timed out; called once per write. */
static void w_next_step(void)
{
    if (cur == 0)   /* every watch is registered and flowing */
        proc_mem_kb(wop->pid, &rss_open, &hwm_open);
    cur++;
    if (cur > wop->writes || watchers_live() == 0 || (cur == 1 && w_count[0] == 0)) {
        if (cur == 1 && w_count[0] == 0)
            fprintf(stderr, "%s: no watcher saw the warm-up write: nothing to measure\n", prog);
        w_finished = 1;
        mg_loop_stop(loop);
        return;
    }
    /* A short gap: each write meets an idle server. */
    mg_timer_start(loop, &step_timer, 20);
}

static void heads_grace_cb(struct mg_loop *l, struct mg_timer *t)
{
    /* Heads in, or a server that sends the head with the first event only:
     * the warm-up write tells either way. */
    mg_timer_init(&step_timer, send_write, NULL);
    heads_at_warmup = w_heads;
    cur = 0;
    send_write(l, t);
}

static int mode_watch(const struct opts *op)
{
    int ret = 1;
    struct one o;
    memset(&o, 0, sizeof o);
    wop = op;
    size_t nk = (size_t)op->writes + 1;
    ws = calloc((size_t)op->watchers, sizeof *ws);
    w_t0 = calloc(nk, sizeof *w_t0);
    w_reply_ns = calloc(nk, sizeof *w_reply_ns);
    w_count = calloc(nk, sizeof *w_count);
    w_rv = calloc(nk, sizeof *w_rv);
    uint64_t *lat = calloc(nk * (size_t)op->watchers, sizeof *lat);
    uint64_t *last = calloc(nk, sizeof *last);
    uint64_t *reply = calloc(nk, sizeof *reply);
    if (!ws || !w_t0 || !w_reply_ns || !w_count || !w_rv || !lat || !last || !reply) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (client_start(op->connect, 4, (uint32_t)op->timeout_ms) < 0)
        goto out;
    snprintf(wcreate_target, sizeof wcreate_target, "/api/v1/namespaces/%s/configmaps", op->ns);

    /* The current resourceVersion. */
    char target[512];
    snprintf(target, sizeof target, "/api/v1/namespaces/%s/configmaps?limit=1", op->ns);
    if (one_request(&o, "GET", target, NULL, 1 << 20, NULL) < 0)
        goto out;
    json_t *v = json_loadb(o.body.p ? o.body.p : "", o.body.len, 0, NULL);
    const char *rv = json_string_value(json_object_get(json_object_get(v, "metadata"),
                                                       "resourceVersion"));
    if (o.status != 200 || !rv || !*rv || strlen(rv) > 30) {
        report("cannot read the current resourceVersion", "GET", target, NULL, o.status,
               o.body.p, o.body.len);
        json_decref(v);
        goto out;
    }
    snprintf(watch_target, sizeof watch_target,
             "/api/v1/namespaces/%s/configmaps?watch=true&resourceVersion=%s&timeoutSeconds=%ld",
             op->ns, rv, op->timeout_ms / 1000 + 60);
    json_decref(v);

    mg_defer_init(&parse_defer, parse_pending, NULL);
    mg_timer_init(&write_timer, write_timeout_cb, NULL);
    mg_timer_init(&step_timer, heads_grace_cb, NULL);
    for (long i = 0; i < op->watchers; i++) {
        struct watcher *w = &ws[i];
        w->idx = (int)i;
        w->in.max = WATCH_LINE_MAX;
        w->got = calloc(nk, sizeof *w->got);
        w->got_rv = calloc(nk, sizeof *w->got_rv);
        if (!w->got || !w->got_rv) {
            fprintf(stderr, "%s: out of memory\n", prog);
            goto out;
        }
        w->req.method = "GET";
        w->req.target = watch_target;
        w->req.headers = json_headers + 1;
        w->req.nheaders = 1;
        w->req.on_head = wt_head;
        w->req.on_body = wt_body;
        w->req.on_done = wt_done;
        w->req.on_error = wt_error;
        w->req.data = w;
        int rc = mg_httpc_send(client, endpoint, &w->req);
        if (rc < 0) {
            fprintf(stderr, "%s: watcher %ld: cannot send: %s\n", prog, i, strerror(-rc));
            goto out;
        }
        w_open++;
    }
    /* Heads first (up to 3 s), then the warm-up write. */
    uint64_t t_heads = mg_now_ns();
    mg_timer_start(loop, &step_timer, 3000);
    while (!w_finished && !timed_out) {
        if (cur < 0 && w_heads == w_open) {
            mg_timer_stop(loop, &step_timer);
            heads_grace_cb(loop, &step_timer);
        }
        mg_loop_run_once(loop, 100);
    }
    double heads_ms = (double)(mg_now_ns() - t_heads) / 1e6;
    w_finished = 1;
    if (timed_out)
        fprintf(stderr, "%s: watch: the deadline of %ld ms passed at write %ld\n", prog,
                op->timeout_ms, cur);
    long rss_end, hwm_end;
    proc_mem_kb(op->pid, &rss_end, &hwm_end);

    /* Deliveries of the measured writes (1..K); the warm-up is not counted.
     * A write never sent (the run was cut short) misses every watcher. */
    size_t nl = 0, nlast = 0, nreply = 0;
    long missing = 0, failed_watchers = 0, rv_mismatch = 0;
    for (long k = 0; k <= op->writes; k++)
        for (long i = 0; i < op->watchers; i++)
            if (ws[i].got[k] && w_rv[k] && ws[i].got_rv[k] != w_rv[k]) {
                if (rv_mismatch++ < 3)
                    fprintf(stderr, "%s: watcher %ld: write %ld came with resourceVersion %"
                            PRIu64 ", its 201 said %" PRIu64 "\n", prog, i, k, ws[i].got_rv[k],
                            w_rv[k]);
            }
    for (long k = 1; k <= op->writes; k++) {
        uint64_t mx = 0;
        int all = 1;
        for (long i = 0; i < op->watchers; i++) {
            uint64_t t = ws[i].got[k];
            if (!t || !w_t0[k]) {
                missing++;
                all = 0;
                continue;
            }
            uint64_t d = t > w_t0[k] ? t - w_t0[k] : 0;
            lat[nl++] = d;
            if (d > mx)
                mx = d;
        }
        if (all)
            last[nlast++] = mx;
        if (w_reply_ns[k])
            reply[nreply++] = w_reply_ns[k];
    }
    for (long i = 0; i < op->watchers; i++)
        failed_watchers += ws[i].failed;
    qsort(lat, nl, sizeof *lat, cmp_u64);
    qsort(last, nlast, sizeof *last, cmp_u64);
    qsort(reply, nreply, sizeof *reply, cmp_u64);
    printf("{\"mode\":\"watch\",\"watchers\":%ld,\"writes\":%ld,\"deliveries\":%zu,"
           "\"missing\":%ld,\"ended_early\":%ld,\"failed_watchers\":%ld,\"other_events\":%ld,"
           "\"warmup_seen\":%ld,\"heads_before_first_event\":%ld,\"rv_mismatch\":%ld,"
           "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
           "\"last_watcher_p50_ms\":%.3f,\"last_watcher_max_ms\":%.3f,"
           "\"write_reply_p50_ms\":%.3f,\"write_reply_max_ms\":%.3f,"
           "\"rss_kb_watchers\":%ld,\"hwm_kb_watchers\":%ld,\"rss_kb_end\":%ld,"
           "\"hwm_kb_end\":%ld,\"seconds_total\":%.3f}\n",
           op->watchers, op->writes, nl, missing, w_ended, failed_watchers, w_other,
           w_count[0], heads_at_warmup, rv_mismatch, pct_ms(lat, nl, 0.50), pct_ms(lat, nl, 0.99),
           nl ? (double)lat[nl - 1] / 1e6 : -1, pct_ms(last, nlast, 0.50),
           nlast ? (double)last[nlast - 1] / 1e6 : -1, pct_ms(reply, nreply, 0.50),
           nreply ? (double)reply[nreply - 1] / 1e6 : -1, rss_open, hwm_open, rss_end, hwm_end,
           heads_ms / 1e3);
    ret = (!missing && !w_ended && !failed_watchers && !w_failed_writes && !w_other &&
           !rv_mismatch && !timed_out) ? 0 : 1;
out:
    free(o.body.p);
    client_stop();   /* cancels the watches */
    if (ws)
        for (long i = 0; i < op->watchers; i++) {
            free(ws[i].got);
            free(ws[i].got_rv);
            free(ws[i].in.p);
        }
    free(ws);
    free(w_t0);
    free(w_reply_ns);
    free(w_count);
    free(w_rv);
    free(lat);
    free(last);
    free(reply);
    return ret;
}

/* --- sqlite (the peer) --------------------------------------------------------- */

static int sql_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "%s: sqlite: %s: %s\n", prog, sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int sql_step_done(sqlite3 *db, sqlite3_stmt *s, int want)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != want) {
        fprintf(stderr, "%s: sqlite: %s: %s\n", prog, sqlite3_sql(s), sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

static int mode_sqlite(const struct opts *op)
{
    char path[4096], wal[4200], sql[128];
    sqlite3 *db = NULL;
    enum { BEGIN, INS, COMMIT, GETOBJ, GETRV, SETRV, NSTMT };
    static const char *const text[NSTMT] = {
        [BEGIN] = "BEGIN IMMEDIATE",
        [INS] = "INSERT INTO objects (gr, ns, name, rv, data) VALUES (?1, ?2, ?3, ?4, ?5)",
        [COMMIT] = "COMMIT",
        [GETOBJ] = "SELECT rv, data FROM objects WHERE gr = ?1 AND ns = ?2 AND name = ?3",
        [GETRV] = "SELECT v FROM meta WHERE k = 'rv'",
        [SETRV] = "UPDATE meta SET v = ?1 WHERE k = 'rv'",
    };
    sqlite3_stmt *st[NSTMT] = {0};
    uint64_t *lat = calloc((size_t)op->count, sizeof *lat);
    char *data = malloc((size_t)op->data_bytes + 1);
    int store_shape = !strcmp(op->shape, "store");
    int ret = 1;
    if (!lat || !data)
        goto out;
    for (long i = 0; i < op->data_bytes; i++)
        data[i] = (char)('a' + i % 26);
    data[op->data_bytes] = 0;
    if (mkdir(op->dir, 0755) == -1 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: %s\n", prog, op->dir, strerror(errno));
        goto out;
    }
    if (strlen(op->dir) > sizeof path - 16) {
        fprintf(stderr, "%s: --dir: too long\n", prog);
        goto out;
    }
    snprintf(path, sizeof path, "%s/peer.db", op->dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    /* A fresh database, unless this round adds to the last one's. */
    if (!op->keep) {
        remove(path);
        remove(wal);
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                        SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        fprintf(stderr, "%s: cannot open %s: %s\n", prog, path,
                db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", op->sync);
    /* The pragmas and tables apiserver/store.c opens its database with
     * (keep them in step with it). */
    if (sql_exec(db, "PRAGMA journal_mode=WAL") < 0 || sql_exec(db, sql) < 0 ||
        sql_exec(db, "PRAGMA journal_size_limit=67108864") < 0 ||
        sql_exec(db, "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
                     "CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL,"
                     " name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL,"
                     " PRIMARY KEY (gr, ns, name));"
                     "INSERT OR IGNORE INTO meta (k, v) VALUES ('rv', 0);") < 0)
        goto out;
    {
        /* WAL must really be on, as the store insists. */
        sqlite3_stmt *s = NULL;
        int ok = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) == SQLITE_OK &&
                 sqlite3_step(s) == SQLITE_ROW &&
                 !strcmp((const char *)sqlite3_column_text(s, 0), "wal");
        sqlite3_finalize(s);
        if (!ok) {
            fprintf(stderr, "%s: %s: not in WAL mode\n", prog, path);
            goto out;
        }
    }
    for (int i = 0; i < NSTMT; i++)
        if (sqlite3_prepare_v3(db, text[i], -1, SQLITE_PREPARE_PERSISTENT, &st[i], NULL) !=
            SQLITE_OK) {
            fprintf(stderr, "%s: sqlite: %s: %s\n", prog, text[i], sqlite3_errmsg(db));
            goto out;
        }
    double cpu0 = self_cpu_s();
    uint64_t t0 = mg_now_ns();
    for (long i = 0; i < op->count; i++) {
        char name[64];
        uint64_t t = mg_now_ns();
        long idx = op->start + i;
        snprintf(name, sizeof name, "%s-%06ld", op->prefix, idx);
        data[0] = (char)('a' + idx % 26);
        if (sql_step_done(db, st[BEGIN], SQLITE_DONE) < 0)
            goto out;
        if (store_shape) {
            sqlite3_bind_text(st[GETOBJ], 1, "/configmaps", -1, SQLITE_STATIC);
            sqlite3_bind_text(st[GETOBJ], 2, op->ns, -1, SQLITE_STATIC);
            sqlite3_bind_text(st[GETOBJ], 3, name, -1, SQLITE_TRANSIENT);
            if (sql_step_done(db, st[GETOBJ], SQLITE_DONE) < 0 ||
                sql_step_done(db, st[GETRV], SQLITE_ROW) < 0)
                goto out;
        }
        sqlite3_bind_text(st[INS], 1, "/configmaps", -1, SQLITE_STATIC);
        sqlite3_bind_text(st[INS], 2, op->ns, -1, SQLITE_STATIC);
        sqlite3_bind_text(st[INS], 3, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st[INS], 4, idx + 1);
        sqlite3_bind_text(st[INS], 5, data, (int)op->data_bytes, SQLITE_STATIC);
        if (sql_step_done(db, st[INS], SQLITE_DONE) < 0)
            goto out;
        if (store_shape) {
            sqlite3_bind_int64(st[SETRV], 1, idx + 1);
            if (sql_step_done(db, st[SETRV], SQLITE_DONE) < 0)
                goto out;
        }
        if (sql_step_done(db, st[COMMIT], SQLITE_DONE) < 0)
            goto out;
        lat[i] = mg_now_ns() - t;
    }
    double secs = (double)(mg_now_ns() - t0) / 1e9;
    double cpu = self_cpu_s() - cpu0;
    if (write_lat_file(op->lat_file, lat, (size_t)op->count) < 0)
        goto out;
    qsort(lat, (size_t)op->count, sizeof *lat, cmp_u64);
    printf("{\"mode\":\"sqlite\",\"shape\":\"%s\",\"synchronous\":\"%s\",\"count\":%ld,"
           "\"row_bytes\":%ld,\"seconds\":%.3f,\"per_s\":%.1f,\"p50_ms\":%.4f,\"p99_ms\":%.4f,"
           "\"max_ms\":%.4f,\"cpu_s\":%.3f}\n",
           store_shape ? "store" : "insert", op->sync, op->count, op->data_bytes, secs,
           secs > 0 ? (double)op->count / secs : 0, pct_ms(lat, (size_t)op->count, 0.50),
           pct_ms(lat, (size_t)op->count, 0.99), (double)lat[op->count - 1] / 1e6, cpu);
    ret = 0;
out:
    for (int i = 0; i < NSTMT; i++)
        sqlite3_finalize(st[i]);
    if (db)
        sqlite3_close(db);
    free(lat);
    free(data);
    return ret;
}

/* --- main -------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr,
            "usage: %s create --connect H:P --namespace NS --count N --conns C [--prefix P]\n"
            "                 [--data-bytes B] [--timeout-ms T] [--start I] [--lat-file F]\n"
            "       %s list --connect H:P --namespace NS --expect N [--limit L] [--repeat R]\n"
            "       %s watch --connect H:P --namespace NS --watchers W --writes K [--pid PID]\n"
            "                 [--write-timeout-ms T] [--prefix P]\n"
            "       %s sqlite --dir D --count N [--data-bytes B] [--synchronous NORMAL|FULL|OFF]\n"
            "                 [--shape insert|store] [--start I] [--keep] [--lat-file F]\n",
            prog, prog, prog, prog);
}

static int num_opt(const char *name, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "%s: --%s: expected a number from %ld to %ld, got \"%s\"\n", prog, name,
                lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts op = {
        .prefix = "bench", .sync = "NORMAL", .shape = "insert", .count = 10000, .conns = 1,
        .data_bytes = 200, .limit = 0, .repeat = 3, .expect = -1, .watchers = 100,
        .writes = 20, .pid = 0, .timeout_ms = 300000, .write_timeout_ms = 10000,
    };
    static const struct option lopts[] = {
        {"connect", required_argument, NULL, 'c'},    {"namespace", required_argument, NULL, 'n'},
        {"count", required_argument, NULL, 'N'},      {"conns", required_argument, NULL, 'C'},
        {"prefix", required_argument, NULL, 'p'},     {"data-bytes", required_argument, NULL, 'b'},
        {"timeout-ms", required_argument, NULL, 't'}, {"limit", required_argument, NULL, 'l'},
        {"repeat", required_argument, NULL, 'r'},     {"expect", required_argument, NULL, 'e'},
        {"watchers", required_argument, NULL, 'W'},   {"writes", required_argument, NULL, 'K'},
        {"pid", required_argument, NULL, 'P'},        {"dir", required_argument, NULL, 'd'},
        {"synchronous", required_argument, NULL, 's'}, {"shape", required_argument, NULL, 'S'},
        {"write-timeout-ms", required_argument, NULL, 'w'}, {"start", required_argument, NULL, 'A'},
        {"lat-file", required_argument, NULL, 'L'},   {"keep", no_argument, NULL, 'k'},
        {0, 0, 0, 0},
    };
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *mode = argv[1];
    optind = 2;
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (c) {
        case 'c': op.connect = optarg; break;
        case 'n': op.ns = optarg; break;
        case 'p': op.prefix = optarg; break;
        case 'd': op.dir = optarg; break;
        case 's': op.sync = optarg; break;
        case 'S': op.shape = optarg; break;
        case 'L': op.lat_file = optarg; break;
        case 'k': op.keep = 1; break;
        case 'A': bad |= num_opt("start", optarg, 0, MAX_COUNT, &op.start); break;
        case 'N': bad |= num_opt("count", optarg, 1, MAX_COUNT, &op.count); break;
        case 'C': bad |= num_opt("conns", optarg, 1, MAX_CONNS, &op.conns); break;
        case 'b': bad |= num_opt("data-bytes", optarg, 1, MAX_DATA_BYTES, &op.data_bytes); break;
        case 't': bad |= num_opt("timeout-ms", optarg, 100, 3600000, &op.timeout_ms); break;
        case 'l': bad |= num_opt("limit", optarg, 0, MAX_COUNT, &op.limit); break;
        case 'r': bad |= num_opt("repeat", optarg, 1, 100, &op.repeat); break;
        case 'e': bad |= num_opt("expect", optarg, 0, MAX_COUNT, &op.expect); break;
        case 'W': bad |= num_opt("watchers", optarg, 1, MAX_WATCHERS, &op.watchers); break;
        case 'K': bad |= num_opt("writes", optarg, 1, MAX_WRITES, &op.writes); break;
        case 'P': bad |= num_opt("pid", optarg, 1, 1L << 30, &op.pid); break;
        case 'w':
            bad |= num_opt("write-timeout-ms", optarg, 10, 600000, &op.write_timeout_ms);
            break;
        default: usage(); return 2;
        }
    }
    if (bad || optind != argc) {
        if (!bad)
            usage();
        return 2;
    }
    if (strlen(op.prefix) > 64 || strspn(op.prefix, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
                                      strlen(op.prefix) || !*op.prefix) {
        fprintf(stderr, "%s: --prefix: lower-case letters, digits and '-', at most 64\n", prog);
        return 2;
    }
    if (op.ns && (strlen(op.ns) > 63 || !*op.ns ||
                  strspn(op.ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(op.ns))) {
        fprintf(stderr, "%s: --namespace: a DNS label (lower-case letters, digits, '-')\n",
                prog);
        return 2;
    }
    int net = strcmp(mode, "sqlite") != 0;
    if (net && (!op.connect || !op.ns)) {
        fprintf(stderr, "%s %s: --connect and --namespace are required\n", prog, mode);
        return 2;
    }
    if (!strcmp(mode, "create"))
        return mode_create(&op);
    if (!strcmp(mode, "list")) {
        if (op.expect < 0) {
            fprintf(stderr, "%s list: --expect is required\n", prog);
            return 2;
        }
        return mode_list(&op);
    }
    if (!strcmp(mode, "watch"))
        return mode_watch(&op);
    if (!strcmp(mode, "sqlite")) {
        if (!op.dir) {
            fprintf(stderr, "%s sqlite: --dir is required\n", prog);
            return 2;
        }
        if (strcmp(op.sync, "NORMAL") && strcmp(op.sync, "FULL") && strcmp(op.sync, "OFF")) {
            fprintf(stderr, "%s sqlite: --synchronous: NORMAL, FULL or OFF\n", prog);
            return 2;
        }
        if (strcmp(op.shape, "insert") && strcmp(op.shape, "store")) {
            fprintf(stderr, "%s sqlite: --shape: insert or store\n", prog);
            return 2;
        }
        if (!op.ns)
            op.ns = "bench";
        return mode_sqlite(&op);
    }
    fprintf(stderr, "%s: unknown mode \"%s\"\n", prog, mode);
    usage();
    return 2;
}
