/* The Prometheus metrics registry: families, children, per-thread shards,
 * callback metrics and the text exposition. See metrics.h for the threading
 * model and the contracts. */
#include "metrics.h"
#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define CELLS_PER_LINE (CACHE_LINE / sizeof(uint64_t))
#define REFUSED_NAME "modelgate_metrics_children_refused_total"

enum kind { K_COUNTER, K_GAUGE, K_HISTOGRAM };

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* One child of a family. The public struct mg_counter / mg_gauge /
 * mg_histogram pointers are pointers to this, converted; only this type is
 * ever dereferenced. */
struct child {
    struct child *hnext;          /* hash chain */
    uint64_t hash;
    char *values;                 /* the label values, each NUL-terminated, in order */
    size_t values_len;
    char *labels;                 /* a="x",b="y" escaped for the exposition ("" without labels) */
    size_t labels_len;
    mg_metric_value_cb cb;        /* set: the value is computed at scrape */
    void *cb_arg;
    _Atomic uint64_t gauge;       /* gauges: the double's bits */
    /* Counters and histograms: nshards blocks of stride cells, each block on
     * its own cache lines. Counter: cell 0. Histogram: cells 0..nb are the
     * per-bucket (not cumulative) counts, the last one +Inf, cell nb+1 the
     * sum's bits. */
    _Atomic uint64_t *cells;
    unsigned nshards;
    unsigned stride;
    const double *bounds;         /* the family's, for observe() */
    unsigned nb;
};

struct mg_metric_family {
    struct mg_metric_family *next;    /* registration order */
    struct mg_metrics *reg;
    enum kind kind;
    char *name;
    char *help;                       /* escaped for the HELP line; NULL for none */
    unsigned nlabels;
    char **label_names;
    double *bounds;
    unsigned nb;
    char **le;                        /* formatted bounds */
    pthread_mutex_t mu;               /* children, hash, cb fields */
    struct child **children;          /* creation order */
    size_t n, cap;
    struct child **hash;
    size_t hsize;                     /* power of two */
    unsigned max_children;
    _Atomic uint64_t refused;
};

struct mg_metrics {
    pthread_mutex_t mu;               /* the family list */
    struct mg_metric_family *head, *tail;
    unsigned nshards;
    unsigned max_children;
};

/* --- thread ids ----------------------------------------------------------- */

static pthread_mutex_t ids_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char ids_taken[MG_METRICS_MAX_THREADS];
static __thread unsigned tls_id;
static pthread_key_t ids_key;
static pthread_once_t ids_once = PTHREAD_ONCE_INIT;

/* A thread that exits without unregistering gives its id back here. */
static void ids_release(void *unused)
{
    (void)unused;
    mg_metrics_thread_unregister();
}

static void ids_init(void)
{
    pthread_key_create(&ids_key, ids_release);
}

int mg_metrics_thread_register(void)
{
    if (tls_id)
        return (int)tls_id;
    pthread_once(&ids_once, ids_init);
    int id = -EBUSY;
    pthread_mutex_lock(&ids_mu);
    for (unsigned i = 1; i < MG_METRICS_MAX_THREADS; i++)
        if (!ids_taken[i]) {
            ids_taken[i] = 1;
            id = (int)i;
            break;
        }
    pthread_mutex_unlock(&ids_mu);
    if (id > 0) {
        /* The mutex orders the previous owner's last updates before ours. */
        tls_id = (unsigned)id;
        pthread_setspecific(ids_key, (void *)1);
    }
    return id;
}

void mg_metrics_thread_unregister(void)
{
    if (!tls_id)
        return;
    pthread_mutex_lock(&ids_mu);
    ids_taken[tls_id] = 0;
    pthread_mutex_unlock(&ids_mu);
    tls_id = 0;
    pthread_setspecific(ids_key, NULL);
}

unsigned mg_metrics_thread_id(void)
{
    return tls_id;
}

/* --- helpers -------------------------------------------------------------- */

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Shortest of %.15g / %.17g that reads back exactly; Prometheus spellings
 * for the non-finite values. */
static void fmt_value(double d, char *buf, size_t cap)
{
    if (isnan(d)) {
        snprintf(buf, cap, "NaN");
    } else if (isinf(d)) {
        snprintf(buf, cap, d > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, cap, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, cap, "%.17g", d);
    }
}

static int valid_metric_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MG_METRICS_MAX_NAME)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int valid_label_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MG_METRICS_MAX_NAME || (n >= 2 && s[0] == '_' && s[1] == '_'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Appends s with the exposition's escapes: \\ and \n always, \" in label
 * values. */
static int put_escaped(struct mg_buf *b, const char *s, int quote)
{
    const char *run = s;
    int rc = 0;
    for (; *s && rc == 0; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (quote && *s == '"')
            esc = "\\\"";
        if (!esc)
            continue;
        rc = mg_buf_append(b, run, (size_t)(s - run));
        if (rc == 0)
            rc = mg_buf_append(b, esc, 2);
        run = s + 1;
    }
    if (rc == 0)
        rc = mg_buf_append(b, run, (size_t)(s - run));
    return rc;
}

/* --- registry ------------------------------------------------------------- */

int mg_metrics_new(struct mg_metrics **out, unsigned shards, unsigned max_children)
{
    *out = NULL;
    if (shards == 0)
        shards = MG_METRICS_DEFAULT_SHARDS;
    if (shards > MG_METRICS_MAX_THREADS)
        return -EINVAL;
    struct mg_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return -ENOMEM;
    }
    m->nshards = shards;
    m->max_children = max_children ? max_children : MG_METRICS_DEFAULT_MAX_CHILDREN;
    *out = m;
    return 0;
}

static void child_free(struct child *c)
{
    if (!c)
        return;
    free(c->cells);
    free(c->values);
    free(c->labels);
    free(c);
}

static void family_free(struct mg_metric_family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        child_free(f->children[i]);
    free(f->children);
    free(f->hash);
    for (unsigned i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    for (unsigned i = 0; f->le && i < f->nb; i++)
        free(f->le[i]);
    free(f->le);
    free(f->bounds);
    free(f->name);
    free(f->help);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

void mg_metrics_free(struct mg_metrics *m)
{
    if (!m)
        return;
    struct mg_metric_family *f = m->head;
    while (f) {
        struct mg_metric_family *nx = f->next;
        family_free(f);
        f = nx;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* The sample names a family produces, to refuse collisions between them. */
static size_t sample_names(const char *name, enum kind k, char out[][MG_METRICS_MAX_NAME + 16])
{
    size_t n = 0;
    snprintf(out[n++], MG_METRICS_MAX_NAME + 16, "%s", name);
    if (k == K_HISTOGRAM) {
        snprintf(out[n++], MG_METRICS_MAX_NAME + 16, "%s_bucket", name);
        snprintf(out[n++], MG_METRICS_MAX_NAME + 16, "%s_sum", name);
        snprintf(out[n++], MG_METRICS_MAX_NAME + 16, "%s_count", name);
    }
    return n;
}

/* Under m->mu: -EEXIST for the same name, -EINVAL when sample names collide. */
static int name_conflict(struct mg_metrics *m, const char *name, enum kind k)
{
    char mine[4][MG_METRICS_MAX_NAME + 16], theirs[4][MG_METRICS_MAX_NAME + 16];
    if (strcmp(name, REFUSED_NAME) == 0)
        return -EEXIST;
    size_t nm = sample_names(name, k, mine);
    for (struct mg_metric_family *f = m->head; f; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return -EEXIST;
        size_t nt = sample_names(f->name, f->kind, theirs);
        for (size_t i = 0; i < nm; i++)
            for (size_t j = 0; j < nt; j++)
                if (strcmp(mine[i], theirs[j]) == 0)
                    return -EINVAL;
    }
    return 0;
}

static int child_get(struct mg_metric_family *f, const char *const *values, struct child **out);

static int family_register(struct mg_metrics *m, enum kind k, const char *name, const char *help,
                           const char *const *labels, const double *bounds, size_t nbounds,
                           struct mg_metric_family **out)
{
    static const double def_bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
    int rc = 0;
    struct mg_metric_family *f = NULL;
    *out = NULL;
    if (!name || !valid_metric_name(name))
        return -EINVAL;
    if (help && (strlen(help) > MG_METRICS_MAX_HELP || !mg_utf8_valid(help, strlen(help))))
        return -EINVAL;
    unsigned nl = 0;
    while (labels && labels[nl]) {
        if (nl >= MG_METRICS_MAX_LABELS || !valid_label_name(labels[nl]))
            return -EINVAL;
        if (k == K_HISTOGRAM && strcmp(labels[nl], "le") == 0)
            return -EINVAL;
        for (unsigned j = 0; j < nl; j++)
            if (strcmp(labels[j], labels[nl]) == 0)
                return -EINVAL;
        nl++;
    }
    if (k == K_HISTOGRAM) {
        if (!bounds || nbounds == 0) {
            bounds = def_bounds;
            nbounds = sizeof def_bounds / sizeof def_bounds[0];
        }
        if (nbounds > MG_METRICS_MAX_BUCKETS)
            return -EINVAL;
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                return -EINVAL;
    }

    f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return -ENOMEM;
    }
    f->reg = m;
    f->kind = k;
    f->max_children = m->max_children;
    if (!(f->name = strdup(name)))
        goto nomem;
    if (help && help[0]) {
        struct mg_buf b;
        mg_buf_init(&b, 2 * MG_METRICS_MAX_HELP + 1);
        if (put_escaped(&b, help, 0) < 0 || mg_buf_append(&b, "", 1) < 0) {
            mg_buf_free(&b);
            goto nomem;
        }
        f->help = mg_buf_head(&b);   /* off is 0: nothing was consumed */
    }
    if (nl) {
        f->label_names = calloc(nl, sizeof *f->label_names);
        if (!f->label_names)
            goto nomem;
        for (unsigned i = 0; i < nl; i++) {
            if (!(f->label_names[i] = strdup(labels[i])))
                goto nomem;
            f->nlabels = i + 1;
        }
    }
    if (k == K_HISTOGRAM) {
        f->bounds = malloc(nbounds * sizeof *f->bounds);
        f->le = calloc(nbounds, sizeof *f->le);
        if (!f->bounds || !f->le)
            goto nomem;
        f->nb = (unsigned)nbounds;
        for (size_t i = 0; i < nbounds; i++) {
            char tmp[40];
            f->bounds[i] = bounds[i];
            fmt_value(bounds[i], tmp, sizeof tmp);
            if (!(f->le[i] = strdup(tmp)))
                goto nomem;
        }
    }

    pthread_mutex_lock(&m->mu);
    rc = name_conflict(m, name, k);
    if (rc == 0) {
        if (m->tail)
            m->tail->next = f;
        else
            m->head = f;
        m->tail = f;
    }
    pthread_mutex_unlock(&m->mu);
    if (rc < 0) {
        family_free(f);
        return rc;
    }
    if (nl == 0) {
        /* The only child exists from the start, so the metric is exported as
         * 0 before anything happens. The family is already registered, so a
         * failure here leaves it usable (the child is created on first use). */
        struct child *c;
        child_get(f, NULL, &c);
    }
    *out = f;
    return 0;
nomem:
    family_free(f);
    return -ENOMEM;
}

int mg_metrics_counter(struct mg_metrics *m, const char *name, const char *help,
                       const char *const *labels, struct mg_metric_family **out)
{
    return family_register(m, K_COUNTER, name, help, labels, NULL, 0, out);
}

int mg_metrics_gauge(struct mg_metrics *m, const char *name, const char *help,
                     const char *const *labels, struct mg_metric_family **out)
{
    return family_register(m, K_GAUGE, name, help, labels, NULL, 0, out);
}

int mg_metrics_histogram(struct mg_metrics *m, const char *name, const char *help,
                         const char *const *labels, const double *bounds, size_t nbounds,
                         struct mg_metric_family **out)
{
    return family_register(m, K_HISTOGRAM, name, help, labels, bounds, nbounds, out);
}

void mg_metrics_set_max_children(struct mg_metric_family *f, unsigned max_children)
{
    pthread_mutex_lock(&f->mu);
    f->max_children = max_children;
    pthread_mutex_unlock(&f->mu);
}

uint64_t mg_metrics_refused(const struct mg_metric_family *f)
{
    return atomic_load_explicit(&f->refused, memory_order_relaxed);
}

/* --- children ------------------------------------------------------------- */

static uint64_t hash_values(const char *const *values, unsigned n)
{
    uint64_t h = 1469598103934665603ull;
    for (unsigned i = 0; i < n; i++) {
        for (const char *s = values[i]; *s; s++) {
            h ^= (unsigned char)*s;
            h *= 1099511628211ull;
        }
        h ^= 0xff;   /* no UTF-8 text holds 0xff: values cannot run together */
        h *= 1099511628211ull;
    }
    return h;
}

static int values_equal(const struct child *c, const char *const *values, unsigned n)
{
    const char *p = c->values;
    for (unsigned i = 0; i < n; i++) {
        size_t l = strlen(values[i]);
        if (strcmp(p, values[i]) != 0)
            return 0;
        p += l + 1;
    }
    return 1;
}

static struct child *child_find(struct mg_metric_family *f, const char *const *values,
                                uint64_t h)
{
    if (!f->hash)
        return NULL;
    for (struct child *c = f->hash[h & (f->hsize - 1)]; c; c = c->hnext)
        if (c->hash == h && values_equal(c, values, f->nlabels))
            return c;
    return NULL;
}

static int hash_grow(struct mg_metric_family *f)
{
    size_t nsize = f->hsize ? f->hsize * 2 : 16;
    struct child **nh = calloc(nsize, sizeof *nh);
    if (!nh)
        return -ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        struct child *c = f->children[i];
        c->hnext = nh[c->hash & (nsize - 1)];
        nh[c->hash & (nsize - 1)] = c;
    }
    free(f->hash);
    f->hash = nh;
    f->hsize = nsize;
    return 0;
}

static struct child *child_new(struct mg_metric_family *f, const char *const *values, uint64_t h)
{
    struct child *c = calloc(1, sizeof *c);
    struct mg_buf lb;
    mg_buf_init(&lb, (size_t)f->nlabels * (2 * MG_METRICS_MAX_LABEL_VALUE + MG_METRICS_MAX_NAME + 8) + 1);
    if (!c)
        return NULL;
    c->hash = h;
    size_t total = 0;
    for (unsigned i = 0; i < f->nlabels; i++)
        total += strlen(values[i]) + 1;
    c->values = malloc(total ? total : 1);
    if (!c->values)
        goto fail;
    c->values_len = total;
    size_t o = 0;
    for (unsigned i = 0; i < f->nlabels; i++) {
        size_t l = strlen(values[i]);
        memcpy(c->values + o, values[i], l + 1);
        o += l + 1;
        if ((i && mg_buf_append(&lb, ",", 1) < 0) ||
            mg_buf_printf(&lb, "%s=\"", f->label_names[i]) < 0 ||
            put_escaped(&lb, values[i], 1) < 0 || mg_buf_append(&lb, "\"", 1) < 0)
            goto fail;
    }
    if (mg_buf_append(&lb, "", 1) < 0)
        goto fail;
    c->labels = mg_buf_head(&lb);
    c->labels_len = lb.len - 1;
    mg_buf_init(&lb, 0);   /* ownership moved to c->labels */

    if (f->kind != K_GAUGE) {
        unsigned need = f->kind == K_COUNTER ? 1 : f->nb + 2;
        unsigned stride = (unsigned)((need + CELLS_PER_LINE - 1) / CELLS_PER_LINE * CELLS_PER_LINE);
        size_t bytes = (size_t)f->reg->nshards * stride * sizeof(uint64_t);
        c->cells = aligned_alloc(CACHE_LINE, bytes);
        if (!c->cells)
            goto fail;
        for (size_t i = 0; i < (size_t)f->reg->nshards * stride; i++)
            atomic_init(&c->cells[i], 0);
        c->nshards = f->reg->nshards;
        c->stride = stride;
        c->bounds = f->bounds;
        c->nb = f->nb;
    }
    atomic_init(&c->gauge, dbits(0.0));
    return c;
fail:
    mg_buf_free(&lb);
    child_free(c);
    return NULL;
}

static int child_get(struct mg_metric_family *f, const char *const *values, struct child **out)
{
    static const char *const none[] = {NULL};
    int rc = 0;
    *out = NULL;
    if (!values)
        values = none;
    unsigned n = 0;
    while (values[n] && n <= f->nlabels)
        n++;
    if (n != f->nlabels)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        size_t l = strlen(values[i]);
        if (l > MG_METRICS_MAX_LABEL_VALUE || !mg_utf8_valid(values[i], l))
            return -EINVAL;
    }
    uint64_t h = hash_values(values, n);
    pthread_mutex_lock(&f->mu);
    struct child *c = child_find(f, values, h);
    if (c)
        goto done;
    if (f->n >= f->max_children) {
        atomic_fetch_add_explicit(&f->refused, 1, memory_order_relaxed);
        rc = -ENOSPC;
        goto done;
    }
    if (f->n == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 4;
        struct child **nc = realloc(f->children, ncap * sizeof *nc);
        if (!nc) {
            rc = -ENOMEM;
            goto done;
        }
        f->children = nc;
        f->cap = ncap;
    }
    if (f->n >= f->hsize && hash_grow(f) < 0) {
        rc = -ENOMEM;
        goto done;
    }
    c = child_new(f, values, h);
    if (!c) {
        rc = -ENOMEM;
        goto done;
    }
    f->children[f->n++] = c;
    c->hnext = f->hash[h & (f->hsize - 1)];
    f->hash[h & (f->hsize - 1)] = c;
done:
    pthread_mutex_unlock(&f->mu);
    if (rc == 0)
        *out = c;
    return rc;
}

int mg_metrics_counter_get(struct mg_metric_family *f, const char *const *values,
                           struct mg_counter **out)
{
    struct child *c = NULL;
    int rc = f->kind == K_COUNTER ? child_get(f, values, &c) : -EINVAL;
    *out = (struct mg_counter *)c;
    return rc;
}

int mg_metrics_gauge_get(struct mg_metric_family *f, const char *const *values,
                         struct mg_gauge **out)
{
    struct child *c = NULL;
    int rc = f->kind == K_GAUGE ? child_get(f, values, &c) : -EINVAL;
    *out = (struct mg_gauge *)c;
    return rc;
}

int mg_metrics_histogram_get(struct mg_metric_family *f, const char *const *values,
                             struct mg_histogram **out)
{
    struct child *c = NULL;
    int rc = f->kind == K_HISTOGRAM ? child_get(f, values, &c) : -EINVAL;
    *out = (struct mg_histogram *)c;
    return rc;
}

int mg_metrics_callback(struct mg_metric_family *f, const char *const *values,
                        mg_metric_value_cb cb, void *arg)
{
    if (f->kind == K_HISTOGRAM || !cb)
        return -EINVAL;
    struct child *c;
    int rc = child_get(f, values, &c);
    if (rc < 0)
        return rc;
    /* The scrape reads these under the same lock. */
    pthread_mutex_lock(&f->mu);
    c->cb = cb;
    c->cb_arg = arg;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

int mg_metrics_remove(struct mg_metric_family *f, const char *const *values)
{
    static const char *const none[] = {NULL};
    if (!values)
        values = none;
    unsigned n = 0;
    while (values[n] && n <= f->nlabels)
        n++;
    if (n != f->nlabels)
        return -EINVAL;
    uint64_t h = hash_values(values, n);
    pthread_mutex_lock(&f->mu);
    struct child *c = child_find(f, values, h);
    if (!c) {
        pthread_mutex_unlock(&f->mu);
        return -ENOENT;
    }
    struct child **pp = &f->hash[h & (f->hsize - 1)];
    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    for (size_t i = 0; i < f->n; i++)
        if (f->children[i] == c) {
            memmove(&f->children[i], &f->children[i + 1], (f->n - i - 1) * sizeof *f->children);
            f->n--;
            break;
        }
    pthread_mutex_unlock(&f->mu);
    child_free(c);
    return 0;
}

/* --- updates -------------------------------------------------------------- */

/* The block of cells this thread updates, and whether it owns it. */
static inline _Atomic uint64_t *shard_cells(const struct child *c, int *owned)
{
    unsigned id = tls_id;
    if (id && id < c->nshards) {
        *owned = 1;
        return c->cells + (size_t)id * c->stride;
    }
    *owned = 0;
    return c->cells;
}

static inline void cell_add(_Atomic uint64_t *cell, uint64_t n, int owned)
{
    if (owned)
        /* Only this thread writes the cell: no locked instruction needed. */
        atomic_store_explicit(cell, atomic_load_explicit(cell, memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(cell, n, memory_order_relaxed);
}

static inline void cell_add_double(_Atomic uint64_t *cell, double d, int owned)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    if (owned) {
        atomic_store_explicit(cell, dbits(bitsd(old) + d), memory_order_relaxed);
        return;
    }
    while (!atomic_compare_exchange_weak_explicit(cell, &old, dbits(bitsd(old) + d),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void mg_counter_add(struct mg_counter *pc, uint64_t n)
{
    struct child *c = (struct child *)pc;
    if (!c || !c->cells)
        return;
    int owned;
    _Atomic uint64_t *cells = shard_cells(c, &owned);
    cell_add(&cells[0], n, owned);
}

void mg_counter_inc(struct mg_counter *c)
{
    mg_counter_add(c, 1);
}

void mg_gauge_set(struct mg_gauge *pg, double v)
{
    struct child *c = (struct child *)pg;
    if (c)
        atomic_store_explicit(&c->gauge, dbits(v), memory_order_relaxed);
}

void mg_gauge_add(struct mg_gauge *pg, double d)
{
    struct child *c = (struct child *)pg;
    if (c)
        cell_add_double(&c->gauge, d, 0);
}

void mg_gauge_inc(struct mg_gauge *g)
{
    mg_gauge_add(g, 1.0);
}

void mg_gauge_dec(struct mg_gauge *g)
{
    mg_gauge_add(g, -1.0);
}

void mg_histogram_observe(struct mg_histogram *ph, double v)
{
    struct child *c = (struct child *)ph;
    if (!c || !c->cells || isnan(v))
        return;
    /* The first bucket whose upper bound is >= v; nb is +Inf. */
    unsigned lo = 0, hi = c->nb;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (v <= c->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    int owned;
    _Atomic uint64_t *cells = shard_cells(c, &owned);
    cell_add(&cells[lo], 1, owned);
    cell_add_double(&cells[c->nb + 1], v, owned);
}

/* --- reads ---------------------------------------------------------------- */

static uint64_t sum_cell(const struct child *c, unsigned idx)
{
    uint64_t s = 0;
    for (unsigned sh = 0; sh < c->nshards; sh++)
        s += atomic_load_explicit(&c->cells[(size_t)sh * c->stride + idx], memory_order_relaxed);
    return s;
}

static double sum_cell_double(const struct child *c, unsigned idx)
{
    double s = 0;
    for (unsigned sh = 0; sh < c->nshards; sh++)
        s += bitsd(atomic_load_explicit(&c->cells[(size_t)sh * c->stride + idx],
                                        memory_order_relaxed));
    return s;
}

uint64_t mg_counter_value(const struct mg_counter *pc)
{
    const struct child *c = (const struct child *)pc;
    return c && c->cells ? sum_cell(c, 0) : 0;
}

double mg_gauge_value(const struct mg_gauge *pg)
{
    const struct child *c = (const struct child *)pg;
    return c ? bitsd(atomic_load_explicit(&c->gauge, memory_order_relaxed)) : 0;
}

size_t mg_histogram_read(const struct mg_histogram *ph, uint64_t *counts, size_t n,
                         uint64_t *count, double *sum)
{
    const struct child *c = (const struct child *)ph;
    if (!c || !c->cells)
        return 0;
    uint64_t cum = 0;
    for (unsigned i = 0; i <= c->nb; i++) {
        cum += sum_cell(c, i);
        if (counts && i < n)
            counts[i] = cum;
    }
    if (count)
        *count = cum;
    if (sum)
        *sum = sum_cell_double(c, c->nb + 1);
    return (size_t)c->nb + 1;
}

/* --- exposition ----------------------------------------------------------- */

/* name{labels[,extra]} value\n */
static int put_sample(struct mg_buf *b, const char *name, const char *suffix,
                      const struct child *c, const char *extra, const char *value)
{
    int rc = mg_buf_append_str(b, name);
    if (rc == 0 && suffix)
        rc = mg_buf_append_str(b, suffix);
    if (rc == 0 && (c->labels_len || extra)) {
        rc = mg_buf_append(b, "{", 1);
        if (rc == 0)
            rc = mg_buf_append(b, c->labels, c->labels_len);
        if (rc == 0 && extra) {
            if (c->labels_len)
                rc = mg_buf_append(b, ",", 1);
            if (rc == 0)
                rc = mg_buf_append_str(b, extra);
        }
        if (rc == 0)
            rc = mg_buf_append(b, "}", 1);
    }
    if (rc == 0)
        rc = mg_buf_append(b, " ", 1);
    if (rc == 0)
        rc = mg_buf_append_str(b, value);
    if (rc == 0)
        rc = mg_buf_append(b, "\n", 1);
    return rc;
}

static int expose_family(struct mg_metric_family *f, struct mg_buf *b)
{
    int rc = 0;
    char val[48], extra[64];
    if (f->n == 0)
        return 0;
    if (f->help)
        rc = mg_buf_printf(b, "# HELP %s %s\n", f->name, f->help);
    if (rc == 0)
        rc = mg_buf_printf(b, "# TYPE %s %s\n", f->name, kind_names[f->kind]);
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        const struct child *c = f->children[i];
        if (c->cb) {
            fmt_value(c->cb(c->cb_arg), val, sizeof val);
            rc = put_sample(b, f->name, NULL, c, NULL, val);
            continue;
        }
        switch (f->kind) {
        case K_COUNTER:
            snprintf(val, sizeof val, "%llu", (unsigned long long)sum_cell(c, 0));
            rc = put_sample(b, f->name, NULL, c, NULL, val);
            break;
        case K_GAUGE:
            fmt_value(bitsd(atomic_load_explicit(&c->gauge, memory_order_relaxed)), val, sizeof val);
            rc = put_sample(b, f->name, NULL, c, NULL, val);
            break;
        case K_HISTOGRAM: {
            uint64_t cum = 0;
            for (unsigned k = 0; k <= f->nb && rc == 0; k++) {
                /* Each bucket cell is read once; _count is the same running
                 * total, so it always equals the +Inf bucket. */
                cum += sum_cell(c, k);
                snprintf(extra, sizeof extra, "le=\"%s\"", k < f->nb ? f->le[k] : "+Inf");
                snprintf(val, sizeof val, "%llu", (unsigned long long)cum);
                rc = put_sample(b, f->name, "_bucket", c, extra, val);
            }
            if (rc == 0) {
                fmt_value(sum_cell_double(c, f->nb + 1), val, sizeof val);
                rc = put_sample(b, f->name, "_sum", c, NULL, val);
            }
            if (rc == 0) {
                snprintf(val, sizeof val, "%llu", (unsigned long long)cum);
                rc = put_sample(b, f->name, "_count", c, NULL, val);
            }
            break;
        }
        }
    }
    return rc;
}

int mg_metrics_expose(struct mg_metrics *m, struct mg_buf *out)
{
    int rc = 0, any_refused = 0;
    pthread_mutex_lock(&m->mu);
    for (struct mg_metric_family *f = m->head; f && rc == 0; f = f->next) {
        pthread_mutex_lock(&f->mu);
        rc = expose_family(f, out);
        pthread_mutex_unlock(&f->mu);
        if (mg_metrics_refused(f))
            any_refused = 1;
    }
    if (rc == 0 && any_refused) {
        rc = mg_buf_append_str(out,
                               "# HELP " REFUSED_NAME " Label sets refused because their metric "
                               "family reached its cap on children.\n"
                               "# TYPE " REFUSED_NAME " counter\n");
        for (struct mg_metric_family *f = m->head; f && rc == 0; f = f->next) {
            uint64_t r = mg_metrics_refused(f);
            if (r)
                rc = mg_buf_printf(out, REFUSED_NAME "{metric=\"%s\"} %llu\n", f->name,
                                   (unsigned long long)r);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* --- buckets -------------------------------------------------------------- */

int mg_metrics_buckets_exponential(double start, double factor, size_t n, double *out)
{
    if (!(start > 0) || !(factor > 1) || n == 0 || n > MG_METRICS_MAX_BUCKETS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        out[i] = start;
        start *= factor;
        if (!isfinite(start) && i + 1 < n)
            return -EINVAL;
    }
    return 0;
}

int mg_metrics_buckets_linear(double start, double width, size_t n, double *out)
{
    if (!isfinite(start) || !(width > 0) || n == 0 || n > MG_METRICS_MAX_BUCKETS)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        out[i] = start + width * (double)i;
    return 0;
}
