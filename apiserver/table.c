/* Table rendering (kubectl get): column definitions and cells as
 * kube-apiserver's printers make them (pkg/printers/internalversion for
 * built-in types, apiextensions-apiserver's tableconvertor for custom
 * resources, the default convertor for CRDs themselves).
 *
 * The real server renders with GenerateOptions{Wide: true}: every row
 * carries the cells of the priority-1 columns too, and kubectl drops them
 * unless -o wide. The same is done here, so a row always has exactly as
 * many cells as there are columns.
 *
 * Where the real API would have defaulted a field on write (a Service's
 * type ClusterIP, a port's protocol TCP, a Deployment's replicas 1, a
 * Secret's type Opaque), a missing field renders as that default, so an
 * object stored without defaulting still prints as kubectl users expect. */
#include "apiserver/registry-int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DESC_NAME                                                                          \
    "Name must be unique within a namespace. Is required when creating resources, although " \
    "some resources may allow a client to request the generation of a name automatically. " \
    "Name is primarily intended for creation idempotence and configuration definition. "    \
    "Cannot be updated. More info: "                                                        \
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
#define DESC_AGE                                                                             \
    "CreationTimestamp is a timestamp representing the server time when this object was "   \
    "created. It is not guaranteed to be set in happens-before order across separate "      \
    "operations. Clients may not set this value. It is represented in RFC3339 form and is " \
    "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "             \
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"

struct column {
    const char *name, *type, *format, *desc;
    int priority;
};

#define COL_NAME {"Name", "string", "name", DESC_NAME, 0}
#define COL_AGE {"Age", "string", "", DESC_AGE, 0}
#define COL(n, d) {n, "string", "", d, 0}
#define WIDE(n, d) {n, "string", "", d, 1}

static const struct column pod_cols[] = {
    COL_NAME,
    COL("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    COL("Status", "The aggregate status of the containers in this pod."),
    COL("Restarts", "The number of times the containers in this pod have been restarted and "
                    "when the last container in this pod has restarted."),
    COL_AGE,
    WIDE("IP", "podIP address allocated to the pod."),
    WIDE("Node", "NodeName indicates in which node this pod is scheduled."),
    WIDE("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on "
                           "the node."),
    WIDE("Readiness Gates", "If specified, all readiness gates will be evaluated for pod "
                            "readiness."),
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column deployment_cols[] = {
    COL_NAME,
    COL("Ready", "Number of the pod with ready state"),
    COL("Up-to-date", "Total number of non-terminated pods targeted by this deployment that "
                      "have the desired template spec."),
    COL("Available", "Total number of available pods (ready for at least minReadySeconds) "
                     "targeted by this deployment."),
    COL_AGE,
    WIDE("Containers", "Names of each container in the template."),
    WIDE("Images", "Images referenced by each container in the template."),
    WIDE("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by "
                     "this will be the ones affected by this deployment."),
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column service_cols[] = {
    COL_NAME,
    COL("Type", "type determines how the Service is exposed."),
    COL("Cluster-IP", "clusterIP is the IP address of the service."),
    COL("External-IP", "externalIPs is a list of IP addresses for which nodes in the cluster "
                       "will also accept traffic for this service."),
    COL("Port(s)", "The list of ports that are exposed by this service."),
    COL_AGE,
    WIDE("Selector", "Route service traffic to pods with label keys and values matching this "
                     "selector."),
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column configmap_cols[] = {
    COL_NAME,
    COL("Data", "Data contains the configuration data."),
    COL_AGE,
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column secret_cols[] = {
    COL_NAME,
    COL("Type", "Used to facilitate programmatic handling of secret data."),
    COL("Data", "Data contains the secret data."),
    COL_AGE,
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column namespace_cols[] = {
    COL_NAME,
    COL("Status", "The status of the namespace"),
    COL_AGE,
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column serviceaccount_cols[] = {
    COL_NAME,
    COL("Secrets", "Secrets is a list of the secrets in the same namespace that pods running "
                   "using this ServiceAccount are allowed to use."),
    COL_AGE,
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column event_cols[] = {
    COL("Last Seen", "The time at which the most recent occurrence of this event was recorded."),
    COL("Type", "Type of this event (Normal, Warning), new types could be added in the future"),
    COL("Reason", "This should be a short, machine understandable string that gives the reason "
                  "for the transition into the object's current status."),
    COL("Object", "The object that this event is about."),
    WIDE("Subobject", "If referring to a piece of an object instead of an entire object, this "
                      "string should contain a valid JSON/Go field access statement."),
    WIDE("Source", "The component reporting this event."),
    COL("Message", "A human-readable description of the status of this operation."),
    WIDE("First Seen", "The time at which the event was first recorded."),
    WIDE("Count", "The number of times this event has occurred."),
    {"Name", "string", "name", DESC_NAME, 1},
    {NULL, NULL, NULL, NULL, 0},
};

static const struct column lease_cols[] = {
    COL_NAME,
    COL("Holder", "holderIdentity contains the identity of the holder of a current lease."),
    COL_AGE,
    {NULL, NULL, NULL, NULL, 0},
};

/* rest.NewDefaultTableConvertor, which the CRD type itself uses. */
static const struct column default_cols[] = {
    COL_NAME,
    {"Created At", "date", "", DESC_AGE, 0},
    {NULL, NULL, NULL, NULL, 0},
};

/* --- value helpers --------------------------------------------------------- */

static json_t *at(json_t *obj, const char *path)
{
    return as_reg_jsonpath(obj, path);
}

static const char *str_at(json_t *obj, const char *path, const char *dflt)
{
    const char *s = json_string_value(at(obj, path));
    return s ? s : dflt;
}

static long long int_at(json_t *obj, const char *path, long long dflt)
{
    json_t *v = at(obj, path);
    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_real(v))
        return (long long)json_real_value(v);
    return dflt;
}

static size_t size_at(json_t *obj, const char *path)
{
    json_t *v = at(obj, path);
    return json_is_object(v) ? json_object_size(v) : json_is_array(v) ? json_array_size(v) : 0;
}

/* translateTimestampSince: "<unknown>" for an absent timestamp. */
static void age_of(json_t *ts, int64_t now_s, char *out, size_t cap)
{
    int64_t us;
    const char *s = json_string_value(ts);
    if (!s || !*s || as_reg_parse_time(s, &us)) {
        snprintf(out, cap, "<unknown>");
        return;
    }
    as_reg_human_duration(now_s * 1000000 - us, out, cap);
}

static int64_t time_at(json_t *obj, const char *path)
{
    int64_t us;
    const char *s = json_string_value(at(obj, path));
    return s && *s && !as_reg_parse_time(s, &us) ? us : 0;
}

/* A bounded string builder for cells: past the cap it stops growing and
 * ends in "...", the way a long cell would be cut anyway. */
struct cellbuf {
    char buf[4096];
    size_t len;
};

static void cell_add(struct cellbuf *b, const char *s)
{
    size_t n = strlen(s), room = sizeof b->buf - 1 - b->len;
    if (n > room) {
        n = room;
        if (room >= 3)
            memcpy(b->buf + sizeof b->buf - 4, "...", 3);
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void cell_addf(struct cellbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cell_addf(struct cellbuf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    cell_add(b, tmp);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* labels.FormatLabels: "k=v,k2=v2" sorted by key, "<none>" when empty. */
static void format_labels(json_t *map, struct cellbuf *b)
{
    const char *keys[256];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v) if (json_is_string(v) && n < 256) keys[n++] = k;
    if (!n) {
        cell_add(b, "<none>");
        return;
    }
    qsort(keys, n, sizeof *keys, cmp_cstr);
    for (size_t i = 0; i < n; i++)
        cell_addf(b, "%s%s=%s", i ? "," : "", keys[i],
                json_string_value(json_object_get(map, keys[i])));
}

/* a + b + c in a new string. */
static char *str_join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *s = malloc(la + lb + lc + 1);
    if (s) {
        memcpy(s, a, la);
        memcpy(s + la, b, lb);
        memcpy(s + la + lb, c, lc + 1);
    }
    return s;
}

struct req {
    const char *key;
    char *text;
};

static int cmp_req(const void *a, const void *b)
{
    const struct req *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->text, y->text);
}

/* metav1.LabelSelectorAsSelector(sel).String(): requirements sorted by key,
 * "k=v", "k in (a,b)", "k notin (a,b)", "k", "!k"; "" for nil or empty,
 * "<invalid>" for what the API would refuse. */
int as_reg_format_selector(json_t *sel, char *out, size_t cap)
{
    struct req *reqs = NULL;
    size_t n = 0;
    int rc = 0;
    out[0] = '\0';
    if (!json_is_object(sel))
        return 0;
    json_t *ml = json_object_get(sel, "matchLabels"), *me = json_object_get(sel, "matchExpressions");
    size_t max = (json_is_object(ml) ? json_object_size(ml) : 0) +
                 (json_is_array(me) ? json_array_size(me) : 0);
    if (!max)
        return 0;
    if (max > 256 || !(reqs = calloc(max, sizeof *reqs)))
        goto invalid;
    const char *k;
    json_t *v;
    json_object_foreach(ml, k, v) {
        if (!json_is_string(v))
            goto invalid;
        reqs[n].key = k;
        if (!(reqs[n].text = str_join(k, "=", json_string_value(v))))
            goto invalid;
        n++;
    }
    size_t i;
    json_t *e;
    json_array_foreach(me, i, e) {
        const char *key = json_string_value(json_object_get(e, "key"));
        const char *op = json_string_value(json_object_get(e, "operator"));
        json_t *vals = json_object_get(e, "values");
        size_t nv = json_is_array(vals) ? json_array_size(vals) : 0;
        if (!key || !op)
            goto invalid;
        reqs[n].key = key;
        if (!strcmp(op, "In") || !strcmp(op, "NotIn")) {
            const char *vs[64];
            if (!nv || nv > 64)
                goto invalid;
            for (size_t j = 0; j < nv; j++)
                if (!(vs[j] = json_string_value(json_array_get(vals, j))))
                    goto invalid;
            qsort(vs, nv, sizeof *vs, cmp_cstr);
            struct cellbuf b = {.len = 0};
            b.buf[0] = '\0';
            cell_addf(&b, "%s %s (", key, !strcmp(op, "In") ? "in" : "notin");
            for (size_t j = 0; j < nv; j++)
                cell_addf(&b, "%s%s", j ? "," : "", vs[j]);
            cell_add(&b, ")");
            if (!(reqs[n].text = strdup(b.buf)))
                goto invalid;
        } else if (!strcmp(op, "Exists") || !strcmp(op, "DoesNotExist")) {
            if (nv)
                goto invalid;
            if (!(reqs[n].text = str_join(op[0] == 'D' ? "!" : "", "", key)))
                goto invalid;
        } else {
            goto invalid;
        }
        n++;
    }
    qsort(reqs, n, sizeof *reqs, cmp_req);
    size_t off = 0;
    for (size_t j = 0; j < n && off < cap; j++)
        off += (size_t)snprintf(out + off, cap - off, "%s%s", j ? "," : "", reqs[j].text);
    goto done;
invalid:
    snprintf(out, cap, "<invalid>");
    rc = -1;
done:
    for (size_t j = 0; reqs && j < max; j++)
        free(reqs[j].text);
    free(reqs);
    return rc;
}

/* Go's fmt %v of a float64 (strconv 'g' with the shortest precision):
 * the fewest digits that round-trip, in %e form when the decimal exponent
 * is < -4 or >= 6 ("1e+06", "1.5e-05"), plain otherwise ("0.5", "123456"). */
static void go_float(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char digits[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(digits, sizeof digits, "%.*e", prec - 1, v);
        if (strtod(digits, NULL) == v)
            break;
    }
    /* digits: "-d.ddde±XX" */
    char *e = strchr(digits, 'e');
    int exp = e ? atoi(e + 1) : 0;
    if (exp < -4 || exp >= 6) {
        /* Go prints the exponent with at least two digits: 1e+21, 1e-05. */
        char mant[32];
        size_t ml = e ? (size_t)(e - digits) : strlen(digits);
        if (ml >= sizeof mant)
            ml = sizeof mant - 1;
        memcpy(mant, digits, ml);
        mant[ml] = '\0';
        snprintf(out, cap, "%se%c%02d", mant, exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    int decimals = prec - 1 - exp;
    snprintf(out, cap, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* --- built-in printers ------------------------------------------------------- */

static int push(json_t *cells, json_t *v)
{
    return json_array_append_new(cells, v);
}

static int push_str(json_t *cells, const char *s)
{
    return push(cells, json_string(s));
}

static int push_int(json_t *cells, long long v)
{
    return push(cells, json_integer(v));
}

static int push_age(json_t *cells, json_t *obj, int64_t now_s)
{
    char age[32];
    age_of(at(obj, ".metadata.creationTimestamp"), now_s, age, sizeof age);
    return push_str(cells, age);
}

static const char *name_of(json_t *obj)
{
    return str_at(obj, ".metadata.name", "");
}

static int cond_true(json_t *conds, const char *type)
{
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && !strcmp(t, type))
            return !strcmp(str_at(c, ".status", ""), "True");
    }
    return 0;
}

/* printPod, for the fields the API stores. */
static int cells_pod(json_t *cells, json_t *obj, int64_t now_s)
{
    json_t *spec = json_object_get(obj, "spec"), *status = json_object_get(obj, "status");
    json_t *conds = json_object_get(status, "conditions");
    json_t *inits = json_object_get(spec, "initContainers");
    long long restarts = 0, init_restarts = 0;
    long long total = (long long)size_at(obj, ".spec.containers"), ready = 0;
    int64_t last_restart = 0, last_init_restart = 0;
    const char *phase = str_at(status, ".phase", "");
    char reason[300];
    snprintf(reason, sizeof reason, "%s", str_at(status, ".reason", "") [0] ? str_at(status, ".reason", "") : phase);

    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c) {
        if (!strcmp(str_at(c, ".type", ""), "PodScheduled") &&
            !strcmp(str_at(c, ".reason", ""), "SchedulingGated"))
            snprintf(reason, sizeof reason, "SchedulingGated");
    }
    /* Sidecar (restartable) init containers count as containers. */
    json_array_foreach(inits, i, c) if (!strcmp(str_at(c, ".restartPolicy", ""), "Always")) total++;

    int initializing = 0;
    json_t *ics = json_object_get(status, "initContainerStatuses");
    json_array_foreach(ics, i, c) {
        const char *cname = str_at(c, ".name", "");
        int restartable = 0;
        size_t j;
        json_t *ic;
        json_array_foreach(inits, j, ic) if (!strcmp(str_at(ic, ".name", ""), cname) &&
                                             !strcmp(str_at(ic, ".restartPolicy", ""), "Always")) restartable = 1;
        long long rc = int_at(c, ".restartCount", 0);
        int64_t fin = time_at(c, ".lastState.terminated.finishedAt");
        restarts += rc;
        if (fin > last_restart)
            last_restart = fin;
        if (restartable) {
            init_restarts += rc;
            if (fin > last_init_restart)
                last_init_restart = fin;
        }
        json_t *term = at(c, ".state.terminated"), *wait = at(c, ".state.waiting");
        if (term && int_at(term, ".exitCode", 0) == 0)
            continue;
        if (restartable && json_is_true(json_object_get(c, "started"))) {
            if (json_is_true(json_object_get(c, "ready")))
                ready++;
            continue;
        }
        if (term) {
            const char *r = str_at(term, ".reason", "");
            if (!*r && int_at(term, ".signal", 0))
                snprintf(reason, sizeof reason, "Init:Signal:%lld", int_at(term, ".signal", 0));
            else if (!*r)
                snprintf(reason, sizeof reason, "Init:ExitCode:%lld", int_at(term, ".exitCode", 0));
            else
                snprintf(reason, sizeof reason, "Init:%s", r);
        } else if (wait && *str_at(wait, ".reason", "") &&
                   strcmp(str_at(wait, ".reason", ""), "PodInitializing")) {
            snprintf(reason, sizeof reason, "Init:%s", str_at(wait, ".reason", ""));
        } else {
            snprintf(reason, sizeof reason, "Init:%zu/%zu", i, json_array_size(inits));
        }
        initializing = 1;
        break;
    }

    if (!initializing || cond_true(conds, "Initialized")) {
        restarts = init_restarts;
        last_restart = last_init_restart;
        int has_running = 0;
        json_t *cs = json_object_get(status, "containerStatuses");
        for (size_t k = json_array_size(cs); k-- > 0;) {
            c = json_array_get(cs, k);
            restarts += int_at(c, ".restartCount", 0);
            int64_t fin = time_at(c, ".lastState.terminated.finishedAt");
            if (fin > last_restart)
                last_restart = fin;
            json_t *term = at(c, ".state.terminated"), *wait = at(c, ".state.waiting");
            if (wait && *str_at(wait, ".reason", "")) {
                snprintf(reason, sizeof reason, "%s", str_at(wait, ".reason", ""));
            } else if (term && *str_at(term, ".reason", "")) {
                snprintf(reason, sizeof reason, "%s", str_at(term, ".reason", ""));
            } else if (term) {
                if (int_at(term, ".signal", 0))
                    snprintf(reason, sizeof reason, "Signal:%lld", int_at(term, ".signal", 0));
                else
                    snprintf(reason, sizeof reason, "ExitCode:%lld", int_at(term, ".exitCode", 0));
            } else if (json_is_true(json_object_get(c, "ready")) && at(c, ".state.running")) {
                has_running = 1;
                ready++;
            }
        }
        if (!strcmp(reason, "Completed") && has_running)
            snprintf(reason, sizeof reason, "%s", cond_true(conds, "Ready") ? "Running" : "NotReady");
    }
    if (at(obj, ".metadata.deletionTimestamp")) {
        if (!strcmp(str_at(status, ".reason", ""), "NodeLost"))
            snprintf(reason, sizeof reason, "Unknown");
        else if (strcmp(phase, "Succeeded") && strcmp(phase, "Failed"))
            snprintf(reason, sizeof reason, "Terminating");
    }

    char ready_s[64], restarts_s[64], ago[32];
    snprintf(ready_s, sizeof ready_s, "%lld/%lld", ready, total);
    if (restarts && last_restart) {
        as_reg_human_duration(now_s * 1000000 - last_restart, ago, sizeof ago);
        snprintf(restarts_s, sizeof restarts_s, "%lld (%s ago)", restarts, ago);
    } else {
        snprintf(restarts_s, sizeof restarts_s, "%lld", restarts);
    }

    const char *ip = str_at(status, ".podIPs[0].ip", str_at(status, ".podIP", ""));
    const char *node = str_at(spec, ".nodeName", "");
    const char *nominated = str_at(status, ".nominatedNodeName", "");
    char gates[64] = "<none>";
    json_t *rg = json_object_get(spec, "readinessGates");
    if (json_array_size(rg)) {
        size_t t = 0;
        json_t *g;
        json_array_foreach(rg, i, g) {
            const char *ct = str_at(g, ".conditionType", "");
            size_t k;
            json_t *cc;
            json_array_foreach(conds, k, cc) if (!strcmp(str_at(cc, ".type", ""), ct)) {
                t += !strcmp(str_at(cc, ".status", ""), "True");
                break;
            }
        }
        snprintf(gates, sizeof gates, "%zu/%zu", t, json_array_size(rg));
    }
    return push_str(cells, name_of(obj)) || push_str(cells, ready_s) || push_str(cells, reason) ||
           push_str(cells, restarts_s) || push_age(cells, obj, now_s) ||
           push_str(cells, *ip ? ip : "<none>") || push_str(cells, *node ? node : "<none>") ||
           push_str(cells, *nominated ? nominated : "<none>") || push_str(cells, gates);
}

/* layoutContainerCells: names and images joined by ",". */
static void containers_cells(json_t *containers, struct cellbuf *names, struct cellbuf *images)
{
    size_t i;
    json_t *c;
    json_array_foreach(containers, i, c) {
        cell_addf(names, "%s%s", i ? "," : "", str_at(c, ".name", ""));
        cell_addf(images, "%s%s", i ? "," : "", str_at(c, ".image", ""));
    }
}

static int cells_deployment(json_t *cells, json_t *obj, int64_t now_s)
{
    char ready[64], sel[2048];
    snprintf(ready, sizeof ready, "%lld/%lld", int_at(obj, ".status.readyReplicas", 0),
             int_at(obj, ".spec.replicas", 1));
    struct cellbuf names = {.len = 0}, images = {.len = 0};
    names.buf[0] = images.buf[0] = '\0';
    containers_cells(at(obj, ".spec.template.spec.containers"), &names, &images);
    as_reg_format_selector(at(obj, ".spec.selector"), sel, sizeof sel);
    return push_str(cells, name_of(obj)) || push_str(cells, ready) ||
           push_int(cells, int_at(obj, ".status.updatedReplicas", 0)) ||
           push_int(cells, int_at(obj, ".status.availableReplicas", 0)) ||
           push_age(cells, obj, now_s) || push_str(cells, names.buf) ||
           push_str(cells, images.buf) || push_str(cells, sel);
}

/* getServiceExternalIP with wide output (no clipping). */
static void service_external_ip(json_t *obj, const char *type, struct cellbuf *b)
{
    json_t *ext = at(obj, ".spec.externalIPs");
    size_t i;
    json_t *e;
    if (!strcmp(type, "ClusterIP") || !strcmp(type, "NodePort")) {
        if (!json_array_size(ext)) {
            cell_add(b, "<none>");
            return;
        }
        json_array_foreach(ext, i, e) cell_addf(b, "%s%s", i ? "," : "", json_string_value(e) ? json_string_value(e) : "");
    } else if (!strcmp(type, "LoadBalancer")) {
        const char *lb[64];
        size_t n = 0;
        json_array_foreach(at(obj, ".status.loadBalancer.ingress"), i, e) {
            const char *s = str_at(e, ".ip", "");
            if (!*s)
                s = str_at(e, ".hostname", "");
            int dup = 0;
            for (size_t k = 0; k < n; k++)
                dup |= !strcmp(lb[k], s);
            if (*s && !dup && n < 64)
                lb[n++] = s;
        }
        qsort(lb, n, sizeof *lb, cmp_cstr);
        for (size_t k = 0; k < n; k++)
            cell_addf(b, "%s%s", k ? "," : "", lb[k]);
        json_array_foreach(ext, i, e) cell_addf(b, "%s%s", b->len ? "," : "", json_string_value(e) ? json_string_value(e) : "");
        if (!b->len)
            cell_add(b, "<pending>");
    } else if (!strcmp(type, "ExternalName")) {
        cell_add(b, str_at(obj, ".spec.externalName", ""));
    } else {
        cell_add(b, "<unknown>");
    }
}

static int cells_service(json_t *cells, json_t *obj, int64_t now_s)
{
    const char *type = str_at(obj, ".spec.type", "ClusterIP");
    const char *cip = str_at(obj, ".spec.clusterIPs[0]", str_at(obj, ".spec.clusterIP", ""));
    struct cellbuf ext = {.len = 0}, ports = {.len = 0}, sel = {.len = 0};
    ext.buf[0] = ports.buf[0] = sel.buf[0] = '\0';
    service_external_ip(obj, type, &ext);
    size_t i;
    json_t *p;
    json_array_foreach(at(obj, ".spec.ports"), i, p) {
        long long node = int_at(p, ".nodePort", 0);
        const char *proto = str_at(p, ".protocol", "TCP");
        if (node > 0)
            cell_addf(&ports, "%s%lld:%lld/%s", i ? "," : "", int_at(p, ".port", 0), node, proto);
        else
            cell_addf(&ports, "%s%lld/%s", i ? "," : "", int_at(p, ".port", 0), proto);
    }
    format_labels(at(obj, ".spec.selector"), &sel);
    return push_str(cells, name_of(obj)) || push_str(cells, type) ||
           push_str(cells, *cip ? cip : "<none>") || push_str(cells, ext.buf) ||
           push_str(cells, ports.len ? ports.buf : "<none>") || push_age(cells, obj, now_s) ||
           push_str(cells, sel.buf);
}

static int cells_configmap(json_t *cells, json_t *obj, int64_t now_s)
{
    return push_str(cells, name_of(obj)) ||
           push_int(cells, (long long)(size_at(obj, ".data") + size_at(obj, ".binaryData"))) ||
           push_age(cells, obj, now_s);
}

static int cells_secret(json_t *cells, json_t *obj, int64_t now_s)
{
    return push_str(cells, name_of(obj)) || push_str(cells, str_at(obj, ".type", "Opaque")) ||
           push_int(cells, (long long)size_at(obj, ".data")) || push_age(cells, obj, now_s);
}

static int cells_namespace(json_t *cells, json_t *obj, int64_t now_s)
{
    return push_str(cells, name_of(obj)) || push_str(cells, str_at(obj, ".status.phase", "Active")) ||
           push_age(cells, obj, now_s);
}

static int cells_serviceaccount(json_t *cells, json_t *obj, int64_t now_s)
{
    return push_str(cells, name_of(obj)) || push_int(cells, (long long)size_at(obj, ".secrets")) ||
           push_age(cells, obj, now_s);
}

static int cells_lease(json_t *cells, json_t *obj, int64_t now_s)
{
    return push_str(cells, name_of(obj)) ||
           push_str(cells, str_at(obj, ".spec.holderIdentity", "")) || push_age(cells, obj, now_s);
}

/* printEvent (wide). */
static int cells_event(json_t *cells, json_t *obj, int64_t now_s)
{
    char first[32], last[32], target[600];
    json_t *ft = at(obj, ".firstTimestamp"), *lt = at(obj, ".lastTimestamp");
    age_of(ft ? ft : at(obj, ".eventTime"), now_s, first, sizeof first);
    if (lt)
        age_of(lt, now_s, last, sizeof last);
    else
        snprintf(last, sizeof last, "%s", first);
    long long count = int_at(obj, ".count", 0);
    if (at(obj, ".series")) {
        age_of(at(obj, ".series.lastObservedTime"), now_s, last, sizeof last);
        count = int_at(obj, ".series.count", 0);
    } else if (count == 0) {
        count = 1; /* singleton events of the new API have no count */
    }
    const char *kind = str_at(obj, ".involvedObject.kind", ""), *iname = str_at(obj, ".involvedObject.name", "");
    char lkind[256];
    size_t k = 0;
    for (; kind[k] && k < sizeof lkind - 1; k++)
        lkind[k] = (char)((kind[k] >= 'A' && kind[k] <= 'Z') ? kind[k] + 32 : kind[k]);
    lkind[k] = '\0';
    if (*iname)
        snprintf(target, sizeof target, "%s/%s", lkind, iname);
    else
        snprintf(target, sizeof target, "%s", lkind);
    const char *comp = str_at(obj, ".source.component", "");
    const char *host = str_at(obj, ".source.host", "");
    if (!*comp)
        comp = str_at(obj, ".reportingComponent", "");
    if (!*host)
        host = str_at(obj, ".reportingInstance", "");
    char source[600];
    if (*host)
        snprintf(source, sizeof source, "%s, %s", comp, host);
    else
        snprintf(source, sizeof source, "%s", comp);
    /* strings.TrimSpace(message) */
    const char *msg = str_at(obj, ".message", "");
    while (*msg == ' ' || *msg == '\t' || *msg == '\n' || *msg == '\r' || *msg == '\v' || *msg == '\f')
        msg++;
    size_t ml = strlen(msg);
    while (ml && strchr(" \t\n\r\v\f", msg[ml - 1]))
        ml--;
    json_t *m = json_stringn(msg, ml);
    return push_str(cells, last) || push_str(cells, str_at(obj, ".type", "")) ||
           push_str(cells, str_at(obj, ".reason", "")) || push_str(cells, target) ||
           push_str(cells, str_at(obj, ".involvedObject.fieldPath", "")) ||
           push_str(cells, source) || push(cells, m) || push_str(cells, first) ||
           push_int(cells, count) || push_str(cells, name_of(obj));
}

/* The default convertor: name and creationTimestamp in RFC 3339 (UTC). */
static int cells_default(json_t *cells, json_t *obj, int64_t now_s)
{
    (void)now_s;
    char ts[32] = "0001-01-01T00:00:00Z";
    int64_t us = time_at(obj, ".metadata.creationTimestamp");
    if (us) {
        time_t t = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    return push_str(cells, name_of(obj)) || push_str(cells, ts);
}

typedef int (*cells_cb)(json_t *cells, json_t *obj, int64_t now_s);

static const struct printer {
    const char *group, *kind;
    const struct column *cols;
    cells_cb cells;
} printers[] = {
    {"", "Pod", pod_cols, cells_pod},
    {"apps", "Deployment", deployment_cols, cells_deployment},
    {"", "Service", service_cols, cells_service},
    {"", "ConfigMap", configmap_cols, cells_configmap},
    {"", "Secret", secret_cols, cells_secret},
    {"", "Namespace", namespace_cols, cells_namespace},
    {"", "ServiceAccount", serviceaccount_cols, cells_serviceaccount},
    {"", "Event", event_cols, cells_event},
    {"coordination.k8s.io", "Lease", lease_cols, cells_lease},
};

static const struct printer *printer_for(const struct as_resource *res)
{
    if (!res->builtin)
        return NULL;
    for (size_t i = 0; i < sizeof printers / sizeof printers[0]; i++)
        if (!strcmp(printers[i].group, res->group) && !strcmp(printers[i].kind, res->kind))
            return &printers[i];
    return NULL;
}

/* --- custom resources ------------------------------------------------------------ */

/* The columns of a CRD version: additionalPrinterColumns, or Age when it
 * has none (apiextensions-apiserver's serveDefaultColumnsIfEmpty). */
static json_t *crd_columns(const struct as_resource *res)
{
    if (json_array_size(res->columns))
        return json_incref(res->columns);
    return json_pack("[{s:s, s:s, s:s, s:s}]", "name", "Age", "type", "date", "jsonPath",
                     ".metadata.creationTimestamp", "description", DESC_AGE);
}

/* cellForJSONValue and the string column's jsonpath printing. */
static json_t *custom_cell(const char *type, json_t *v, int64_t now_s)
{
    if (!v)
        return json_null();
    if (!strcmp(type, "string")) {
        char buf[64];
        if (json_is_string(v))
            return json_incref(v);
        if (json_is_integer(v)) {
            snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
            return json_string(buf);
        }
        if (json_is_real(v)) {
            go_float(json_real_value(v), buf, sizeof buf);
            return json_string(buf);
        }
        if (json_is_boolean(v))
            return json_string(json_is_true(v) ? "true" : "false");
        /* Objects and arrays print as compact JSON (Go sorts map keys). */
        char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
        json_t *out = s ? json_string(s) : json_null();
        free(s);
        return out;
    }
    if (!strcmp(type, "integer")) {
        if (json_is_integer(v))
            return json_incref(v);
        if (json_is_real(v)) {
            double d = json_real_value(v);
            if (d >= -9.2e18 && d <= 9.2e18)
                return json_integer((json_int_t)d);
        }
        return json_null();
    }
    if (!strcmp(type, "number")) {
        if (json_is_number(v))
            return json_incref(v);
        return json_null();
    }
    if (!strcmp(type, "boolean"))
        return json_is_boolean(v) ? json_incref(v) : json_null();
    if (!strcmp(type, "date")) {
        if (!json_is_string(v))
            return json_null();
        int64_t us;
        const char *s = json_string_value(v);
        if (as_reg_parse_time(s, &us))
            return json_string("<invalid>");
        char age[32];
        as_reg_human_duration(now_s * 1000000 - us, age, sizeof age);
        return json_string(age);
    }
    return json_null();
}

/* --- the contract ---------------------------------------------------------------- */

static json_t *column_def(const char *name, const char *type, const char *format, const char *desc,
                          long long priority)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "name", name, "type", type, "format",
                     format ? format : "", "description", desc ? desc : "", "priority",
                     (json_int_t)priority);
}

json_t *as_table_columns(const struct as_resource *res)
{
    if (!res)
        return NULL;
    json_t *out = json_array();
    if (!out)
        return NULL;
    const struct printer *p = printer_for(res);
    const struct column *cols = p ? p->cols : res->builtin ? default_cols : NULL;
    if (cols) {
        for (size_t i = 0; cols[i].name; i++)
            if (json_array_append_new(out, column_def(cols[i].name, cols[i].type, cols[i].format,
                                                      cols[i].desc, cols[i].priority)))
                goto fail;
        return out;
    }
    if (json_array_append_new(out, column_def("Name", "string", "name", DESC_NAME, 0)))
        goto fail;
    json_t *ccols = crd_columns(res);
    size_t i;
    json_t *c;
    json_array_foreach(ccols, i, c) {
        const char *jp = json_string_value(json_object_get(c, "jsonPath"));
        const char *desc = json_string_value(json_object_get(c, "description"));
        char dflt[512];
        if (!desc || !*desc) {
            snprintf(dflt, sizeof dflt, "Custom resource definition column (in JSONPath format): %s",
                     jp ? jp : "");
            desc = dflt;
        }
        json_t *prio = json_object_get(c, "priority");
        if (json_array_append_new(out, column_def(json_string_value(json_object_get(c, "name"))
                                                      ? json_string_value(json_object_get(c, "name"))
                                                      : "",
                                                  json_string_value(json_object_get(c, "type"))
                                                      ? json_string_value(json_object_get(c, "type"))
                                                      : "string",
                                                  json_string_value(json_object_get(c, "format")),
                                                  desc,
                                                  json_is_integer(prio) ? json_integer_value(prio) : 0))) {
            json_decref(ccols);
            goto fail;
        }
    }
    json_decref(ccols);
    return out;
fail:
    json_decref(out);
    return NULL;
}

json_t *as_table_cells(const struct as_resource *res, json_t *obj, int64_t now_s)
{
    if (!res || !json_is_object(obj))
        return NULL;
    json_t *cells = json_array();
    if (!cells)
        return NULL;
    const struct printer *p = printer_for(res);
    if (p || res->builtin) {
        if ((p ? p->cells : cells_default)(cells, obj, now_s))
            goto fail;
        return cells;
    }
    if (push_str(cells, name_of(obj)))
        goto fail;
    json_t *ccols = crd_columns(res);
    size_t i;
    json_t *c;
    json_array_foreach(ccols, i, c) {
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *jp = json_string_value(json_object_get(c, "jsonPath"));
        json_t *v = jp ? as_reg_jsonpath(obj, jp) : NULL;
        if (push(cells, custom_cell(type ? type : "string", v, now_s))) {
            json_decref(ccols);
            goto fail;
        }
    }
    json_decref(ccols);
    return cells;
fail:
    json_decref(cells);
    return NULL;
}
