/* A Prometheus metrics registry: counters, gauges and histograms in families
 * with fixed label names, children per label values, callback metrics, and
 * the text exposition format 0.0.4.
 *
 * Threading. Counter and histogram children keep one cell block per shard;
 * each shard's block of a child sits on its own cache lines, so threads that
 * update different shards never share a line. A thread that called
 * mg_metrics_thread_register() owns a shard (ids are process-wide, 1 ..
 * MG_METRICS_MAX_THREADS - 1) and updates it with a relaxed load and store:
 * no locked instruction, no contention. Threads that did not register, or
 * whose id is past the registry's shard count, share shard 0 and update it
 * with relaxed atomic read-modify-write, which is still exact. A scrape sums
 * the shards with relaxed loads: every completed update is seen by a later
 * scrape, counters never go backwards, and a histogram's _count always equals
 * its +Inf bucket (both are computed from the same bucket cells).
 *
 * Gauges are a single atomic cell: set is a store (last writer wins), add is
 * a compare-and-swap loop. Callback children compute their value at scrape
 * (pool sizes, queue lengths); the callback runs with the family's lock held
 * and must not call into the registry.
 *
 * Children are created on first use and found again by their label values
 * under the family's mutex; callers keep the returned pointer and update
 * through it without any lookup. Update functions accept NULL and do nothing,
 * so a child refused by the cap needs no special casing. Each family holds at
 * most max_children children; past it creation fails with -ENOSPC and the
 * refusal is counted (mg_metrics_refused(), and the exposition's
 * modelgate_metrics_children_refused_total{metric="..."} once non-zero).
 *
 * Names: metric names match [a-zA-Z_:][a-zA-Z0-9_:]* (colons allowed for
 * vLLM-compatible names such as vllm:num_requests_running), label names
 * [a-zA-Z_][a-zA-Z0-9_]* and may not start with "__"; histograms may not use
 * the label "le". A family whose sample names (name, name_bucket, _sum,
 * _count) collide with another family's is refused. Label values must be
 * valid UTF-8 of at most MG_METRICS_MAX_LABEL_VALUE bytes. */
#ifndef MG_METRICS_H
#define MG_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct mg_metrics;
struct mg_metric_family;
struct mg_counter;
struct mg_gauge;
struct mg_histogram;

/* Process-wide thread ids (shards); id 0 is the shared shard. */
#define MG_METRICS_MAX_THREADS 256
#define MG_METRICS_DEFAULT_SHARDS 16
#define MG_METRICS_DEFAULT_MAX_CHILDREN 1000
#define MG_METRICS_MAX_LABELS 16
#define MG_METRICS_MAX_BUCKETS 64
#define MG_METRICS_MAX_NAME 200
#define MG_METRICS_MAX_LABEL_VALUE 1024
#define MG_METRICS_MAX_HELP 1024

#define MG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Computes a callback child's value at scrape time. */
typedef double (*mg_metric_value_cb)(void *arg);

/* shards: how many per-thread shards each counter/histogram child has
 * (0: MG_METRICS_DEFAULT_SHARDS; at most MG_METRICS_MAX_THREADS). Threads
 * whose id is >= shards use the shared shard. max_children: the default cap
 * per family (0: MG_METRICS_DEFAULT_MAX_CHILDREN). Returns 0, -EINVAL, -ENOMEM. */
int mg_metrics_new(struct mg_metrics **out, unsigned shards, unsigned max_children);
/* Frees the registry, its families and children. No thread may be updating. */
void mg_metrics_free(struct mg_metrics *m);

/* Gives the calling thread its own shard id (reused after unregister).
 * Returns the id (>= 1), or -EBUSY when all are taken (the thread then keeps
 * using the shared shard, still correctly). Calling it again returns the
 * same id. */
int mg_metrics_thread_register(void);
/* Gives the id back; the thread's past updates stay counted. */
void mg_metrics_thread_unregister(void);
/* The calling thread's id (0 when unregistered). */
unsigned mg_metrics_thread_id(void);

/* Registers a family. labels is a NULL-terminated list of label names (NULL
 * for none). A family without labels gets its only child at once, so it is
 * exported (as 0) from the start. help may be NULL. The registry owns the
 * family. Returns 0, -EINVAL (bad or colliding name, bad labels: see above),
 * -EEXIST (the name is taken), -ENOMEM. */
int mg_metrics_counter(struct mg_metrics *m, const char *name, const char *help,
                       const char *const *labels, struct mg_metric_family **out);
int mg_metrics_gauge(struct mg_metrics *m, const char *name, const char *help,
                     const char *const *labels, struct mg_metric_family **out);
/* bounds: nbounds finite upper bounds in strictly increasing order (the +Inf
 * bucket is implicit); NULL and 0 for the Prometheus defaults
 * (.005 .01 .025 .05 .1 .25 .5 1 2.5 5 10). */
int mg_metrics_histogram(struct mg_metrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds, size_t nbounds,
                         struct mg_metric_family **out);

/* Changes a family's cap on children (existing ones stay). */
void mg_metrics_set_max_children(struct mg_metric_family *f, unsigned max_children);
/* Children refused by the cap so far. */
uint64_t mg_metrics_refused(const struct mg_metric_family *f);

/* Finds or creates the child for the label values (a NULL-terminated list
 * with one value per label name; NULL for a family without labels). The
 * child lives as long as the registry (or until mg_metrics_remove). Returns
 * 0, -EINVAL (wrong kind of family, wrong number of values, invalid UTF-8,
 * value too long), -ENOSPC (the family's cap; counted), -ENOMEM. *out is
 * NULL on failure. */
int mg_metrics_counter_get(struct mg_metric_family *f, const char *const *values,
                           struct mg_counter **out);
int mg_metrics_gauge_get(struct mg_metric_family *f, const char *const *values,
                         struct mg_gauge **out);
int mg_metrics_histogram_get(struct mg_metric_family *f, const char *const *values,
                             struct mg_histogram **out);
/* Makes the child for these values (creating it if needed) report cb(arg)
 * at scrape instead of stored values. Counter and gauge families only. */
int mg_metrics_callback(struct mg_metric_family *f, const char *const *values,
                        mg_metric_value_cb cb, void *arg);
/* Removes a child (e.g. the pool of an endpoint that went away). The caller
 * guarantees nobody uses a pointer to it any more. -ENOENT when absent. */
int mg_metrics_remove(struct mg_metric_family *f, const char *const *values);

/* Updates. All accept NULL. Counters only go up. */
void mg_counter_inc(struct mg_counter *c);
void mg_counter_add(struct mg_counter *c, uint64_t n);
void mg_gauge_set(struct mg_gauge *g, double v);
void mg_gauge_add(struct mg_gauge *g, double d);
void mg_gauge_inc(struct mg_gauge *g);
void mg_gauge_dec(struct mg_gauge *g);
/* NaN observations are ignored (they would poison _sum for good). */
void mg_histogram_observe(struct mg_histogram *h, double v);

/* Reads, summed over the shards (for tests and for code that acts on its
 * own metrics, e.g. the sidecar's analysis reports). These read the stored
 * values: a callback child's callback runs only at scrape. */
uint64_t mg_counter_value(const struct mg_counter *c);
double mg_gauge_value(const struct mg_gauge *g);
/* counts[i] gets the cumulative count of bucket i (nbounds + 1 entries, the
 * last one +Inf) for up to n entries; returns the number of buckets. */
size_t mg_histogram_read(const struct mg_histogram *h, uint64_t *counts, size_t n,
                         uint64_t *count, double *sum);

/* Appends the text exposition (format 0.0.4) of every family, in
 * registration order, children in creation order; families without children
 * are left out. Returns 0, -ENOBUFS when out's cap is reached (out then holds
 * a partial exposition the caller should discard), -ENOMEM. */
int mg_metrics_expose(struct mg_metrics *m, struct mg_buf *out);

/* Fills out[0..n) with start, start*factor, ... (start > 0, factor > 1) or
 * start, start+width, ... (width > 0). Return 0 or -EINVAL. */
int mg_metrics_buckets_exponential(double start, double factor, size_t n, double *out);
int mg_metrics_buckets_linear(double start, double width, size_t n, double *out);

#endif
