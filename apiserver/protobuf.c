/* Protobuf request bodies (application/vnd.kubernetes.protobuf) for the
 * built-in types kubectl's generators create: kubectl create namespace,
 * configmap, secret, serviceaccount, deployment, service send protobuf,
 * not JSON, and would otherwise get 415.
 *
 * The envelope is "k8s\0" then a runtime.Unknown message: typeMeta (1:
 * apiVersion 1, kind 2) and raw (2): the object, encoded by gogo-protobuf.
 * The object is turned into the JSON Kubernetes would serve, field by
 * field from the tables below (field numbers of k8s.io/api's
 * generated.proto). gogo writes every non-pointer field, zero or not: zero
 * scalars, empty strings and empty messages are dropped (Go's omitempty),
 * except for the fields marked PBF_KEEP_ZERO (pointers in Go: replicas 0 is
 * meaningful). A non-empty field that the tables do not know is refused
 * (415 naming it) rather than silently dropped: the client can send JSON. */
#include "apiserver/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PB_MAX_DEPTH 32

enum pb_kind {
    PB_STRING = 1,
    PB_BYTES,      /* base64 in JSON */
    PB_INT,        /* varint, int32/int64 */
    PB_BOOL,
    PB_MSG,
    PB_MAP_SS,     /* map<string,string> */
    PB_MAP_SB,     /* map<string,bytes> */
    PB_MAP_SQ,     /* map<string,Quantity> */
    PB_TIME,       /* meta/v1 Time: RFC 3339 */
    PB_MICROTIME,  /* meta/v1 MicroTime: RFC 3339 with microseconds */
    PB_IOS,        /* IntOrString */
    PB_QUANTITY,   /* resource.Quantity */
    PB_SKIP,       /* known, not taken over (status, managedFields) */
};

#define PBF_REPEATED 1u
#define PBF_KEEP_ZERO 2u

struct pb_field {
    unsigned num;
    const char *json;
    enum pb_kind kind;
    unsigned flags;
    const struct pb_field *sub;   /* PB_MSG: the message's fields, 0-terminated */
};

/* --- tables: k8s.io/apimachinery meta/v1 and k8s.io/api ------------------- */

static const struct pb_field owner_ref[] = {
    {1, "kind", PB_STRING, 0, NULL},
    {3, "name", PB_STRING, 0, NULL},
    {4, "uid", PB_STRING, 0, NULL},
    {5, "apiVersion", PB_STRING, 0, NULL},
    {6, "controller", PB_BOOL, PBF_KEEP_ZERO, NULL},
    {7, "blockOwnerDeletion", PB_BOOL, PBF_KEEP_ZERO, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field object_meta[] = {
    {1, "name", PB_STRING, 0, NULL},
    {2, "generateName", PB_STRING, 0, NULL},
    {3, "namespace", PB_STRING, 0, NULL},
    {4, "selfLink", PB_SKIP, 0, NULL},
    {5, "uid", PB_STRING, 0, NULL},
    {6, "resourceVersion", PB_STRING, 0, NULL},
    {7, "generation", PB_INT, 0, NULL},
    {8, "creationTimestamp", PB_TIME, 0, NULL},
    {9, "deletionTimestamp", PB_TIME, 0, NULL},
    {10, "deletionGracePeriodSeconds", PB_INT, PBF_KEEP_ZERO, NULL},
    {11, "labels", PB_MAP_SS, 0, NULL},
    {12, "annotations", PB_MAP_SS, 0, NULL},
    {13, "ownerReferences", PB_MSG, PBF_REPEATED, owner_ref},
    {14, "finalizers", PB_STRING, PBF_REPEATED, NULL},
    {17, "managedFields", PB_SKIP, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field label_req[] = {
    {1, "key", PB_STRING, 0, NULL},
    {2, "operator", PB_STRING, 0, NULL},
    {3, "values", PB_STRING, PBF_REPEATED, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field label_selector[] = {
    {1, "matchLabels", PB_MAP_SS, 0, NULL},
    {2, "matchExpressions", PB_MSG, PBF_REPEATED, label_req},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field local_obj_ref[] = {
    {1, "name", PB_STRING, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field object_ref[] = {
    {1, "kind", PB_STRING, 0, NULL},
    {2, "namespace", PB_STRING, 0, NULL},
    {3, "name", PB_STRING, 0, NULL},
    {4, "uid", PB_STRING, 0, NULL},
    {5, "apiVersion", PB_STRING, 0, NULL},
    {6, "resourceVersion", PB_STRING, 0, NULL},
    {7, "fieldPath", PB_STRING, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field container_port[] = {
    {1, "name", PB_STRING, 0, NULL},
    {2, "hostPort", PB_INT, 0, NULL},
    {3, "containerPort", PB_INT, 0, NULL},
    {4, "protocol", PB_STRING, 0, NULL},
    {5, "hostIP", PB_STRING, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field env_var[] = {
    {1, "name", PB_STRING, 0, NULL},
    {2, "value", PB_STRING, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field resources[] = {
    {1, "limits", PB_MAP_SQ, 0, NULL},
    {2, "requests", PB_MAP_SQ, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field container[] = {
    {1, "name", PB_STRING, 0, NULL},
    {2, "image", PB_STRING, 0, NULL},
    {3, "command", PB_STRING, PBF_REPEATED, NULL},
    {4, "args", PB_STRING, PBF_REPEATED, NULL},
    {5, "workingDir", PB_STRING, 0, NULL},
    {6, "ports", PB_MSG, PBF_REPEATED, container_port},
    {7, "env", PB_MSG, PBF_REPEATED, env_var},
    {8, "resources", PB_MSG, 0, resources},
    {13, "terminationMessagePath", PB_STRING, 0, NULL},
    {14, "imagePullPolicy", PB_STRING, 0, NULL},
    {16, "stdin", PB_BOOL, 0, NULL},
    {17, "stdinOnce", PB_BOOL, 0, NULL},
    {18, "tty", PB_BOOL, 0, NULL},
    {20, "terminationMessagePolicy", PB_STRING, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field pod_spec[] = {
    {2, "containers", PB_MSG, PBF_REPEATED, container},
    {3, "restartPolicy", PB_STRING, 0, NULL},
    {4, "terminationGracePeriodSeconds", PB_INT, PBF_KEEP_ZERO, NULL},
    {6, "dnsPolicy", PB_STRING, 0, NULL},
    {7, "nodeSelector", PB_MAP_SS, 0, NULL},
    {8, "serviceAccountName", PB_STRING, 0, NULL},
    {9, "serviceAccount", PB_STRING, 0, NULL},
    {10, "nodeName", PB_STRING, 0, NULL},
    {11, "hostNetwork", PB_BOOL, 0, NULL},
    {15, "imagePullSecrets", PB_MSG, PBF_REPEATED, local_obj_ref},
    {16, "hostname", PB_STRING, 0, NULL},
    {17, "subdomain", PB_STRING, 0, NULL},
    {19, "schedulerName", PB_STRING, 0, NULL},
    {20, "initContainers", PB_MSG, PBF_REPEATED, container},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field pod_template[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "spec", PB_MSG, 0, pod_spec},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field rolling_update[] = {
    {1, "maxUnavailable", PB_IOS, 0, NULL},
    {2, "maxSurge", PB_IOS, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field deploy_strategy[] = {
    {1, "type", PB_STRING, 0, NULL},
    {2, "rollingUpdate", PB_MSG, 0, rolling_update},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field deploy_spec[] = {
    {1, "replicas", PB_INT, PBF_KEEP_ZERO, NULL},
    {2, "selector", PB_MSG, 0, label_selector},
    {3, "template", PB_MSG, 0, pod_template},
    {4, "strategy", PB_MSG, 0, deploy_strategy},
    {5, "minReadySeconds", PB_INT, 0, NULL},
    {6, "revisionHistoryLimit", PB_INT, PBF_KEEP_ZERO, NULL},
    {7, "paused", PB_BOOL, 0, NULL},
    {9, "progressDeadlineSeconds", PB_INT, PBF_KEEP_ZERO, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field deployment[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "spec", PB_MSG, 0, deploy_spec},
    {3, "status", PB_SKIP, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field service_port[] = {
    {1, "name", PB_STRING, 0, NULL},
    {2, "protocol", PB_STRING, 0, NULL},
    {3, "port", PB_INT, 0, NULL},
    {4, "targetPort", PB_IOS, 0, NULL},
    {5, "nodePort", PB_INT, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field service_spec[] = {
    {1, "ports", PB_MSG, PBF_REPEATED, service_port},
    {2, "selector", PB_MAP_SS, 0, NULL},
    {3, "clusterIP", PB_STRING, 0, NULL},
    {4, "type", PB_STRING, 0, NULL},
    {5, "externalIPs", PB_STRING, PBF_REPEATED, NULL},
    {7, "sessionAffinity", PB_STRING, 0, NULL},
    {8, "loadBalancerIP", PB_STRING, 0, NULL},
    {10, "externalName", PB_STRING, 0, NULL},
    {11, "externalTrafficPolicy", PB_STRING, 0, NULL},
    {13, "publishNotReadyAddresses", PB_BOOL, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field service[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "spec", PB_MSG, 0, service_spec},
    {3, "status", PB_SKIP, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field namespace_spec[] = {
    {1, "finalizers", PB_STRING, PBF_REPEATED, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field namespace_[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "spec", PB_MSG, 0, namespace_spec},
    {3, "status", PB_SKIP, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field configmap[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "data", PB_MAP_SS, 0, NULL},
    {3, "binaryData", PB_MAP_SB, 0, NULL},
    {4, "immutable", PB_BOOL, PBF_KEEP_ZERO, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field secret[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "data", PB_MAP_SB, 0, NULL},
    {3, "type", PB_STRING, 0, NULL},
    {4, "stringData", PB_MAP_SS, 0, NULL},
    {5, "immutable", PB_BOOL, PBF_KEEP_ZERO, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field service_account[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "secrets", PB_MSG, PBF_REPEATED, object_ref},
    {3, "imagePullSecrets", PB_MSG, PBF_REPEATED, local_obj_ref},
    {4, "automountServiceAccountToken", PB_BOOL, PBF_KEEP_ZERO, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field lease_spec[] = {
    {1, "holderIdentity", PB_STRING, PBF_KEEP_ZERO, NULL},
    {2, "leaseDurationSeconds", PB_INT, PBF_KEEP_ZERO, NULL},
    {3, "acquireTime", PB_MICROTIME, 0, NULL},
    {4, "renewTime", PB_MICROTIME, 0, NULL},
    {5, "leaseTransitions", PB_INT, PBF_KEEP_ZERO, NULL},
    {6, "strategy", PB_STRING, 0, NULL},
    {7, "preferredHolder", PB_STRING, 0, NULL},
    {0, NULL, 0, 0, NULL},
};

static const struct pb_field lease[] = {
    {1, "metadata", PB_MSG, 0, object_meta},
    {2, "spec", PB_MSG, 0, lease_spec},
    {0, NULL, 0, 0, NULL},
};

static const struct {
    const char *api_version, *kind;
    const struct pb_field *fields;
} pb_types[] = {
    {"v1", "Namespace", namespace_},
    {"v1", "ConfigMap", configmap},
    {"v1", "Secret", secret},
    {"v1", "ServiceAccount", service_account},
    {"v1", "Service", service},
    {"apps/v1", "Deployment", deployment},
    {"coordination.k8s.io/v1", "Lease", lease},
};

/* --- the wire format ------------------------------------------------------ */

struct pb_in {
    const unsigned char *p, *end;
};

struct pb_ctx {
    char *err;
    size_t errn;
    char path[512];
};

static int pb_varint(struct pb_in *in, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (in->p >= in->end)
            return -EINVAL;
        unsigned char c = *in->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -EINVAL;
}

/* One field: its number, wire type, and value (varint or span). */
struct pb_val {
    unsigned num, wire;
    uint64_t u;
    const unsigned char *data;
    size_t len;
};

static int pb_next(struct pb_in *in, struct pb_val *v)
{
    uint64_t key;
    if (pb_varint(in, &key) < 0 || key >> 3 == 0 || key >> 3 > 536870911)
        return -EINVAL;
    v->num = (unsigned)(key >> 3);
    v->wire = (unsigned)(key & 7);
    v->data = NULL;
    v->len = 0;
    v->u = 0;
    switch (v->wire) {
    case 0: return pb_varint(in, &v->u);
    case 1:
        if (in->end - in->p < 8)
            return -EINVAL;
        v->data = in->p;
        v->len = 8;
        in->p += 8;
        return 0;
    case 5:
        if (in->end - in->p < 4)
            return -EINVAL;
        v->data = in->p;
        v->len = 4;
        in->p += 4;
        return 0;
    case 2: {
        uint64_t len;
        if (pb_varint(in, &len) < 0 || len > (uint64_t)(in->end - in->p))
            return -EINVAL;
        v->data = in->p;
        v->len = (size_t)len;
        in->p += len;
        return 0;
    }
    default: return -EINVAL;
    }
}

/* Whether a value holds nothing: 0, "", or a message of such values. */
static int pb_is_zero(const struct pb_val *v, unsigned depth)
{
    if (v->wire == 0)
        return v->u == 0;
    if (v->wire != 2)
        return 0;
    if (v->len == 0)
        return 1;
    if (depth > PB_MAX_DEPTH)
        return 0;
    struct pb_in in = {v->data, v->data + v->len};
    while (in.p < in.end) {
        struct pb_val sub;
        if (pb_next(&in, &sub) < 0 || !pb_is_zero(&sub, depth + 1))
            return 0;
    }
    return 1;
}

static int fail(struct pb_ctx *c, const char *why, unsigned num)
{
    snprintf(c->err, c->errn, "protobuf body: %s%s%s (field %u)", c->path[0] ? c->path : "",
             c->path[0] ? ": " : "", why, num);
    return -EINVAL;
}

static json_t *b64(const unsigned char *s, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t outn = (n + 2) / 3 * 4;
    char *out = malloc(outn + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

static json_t *pb_string(const struct pb_val *v)
{
    return json_stringn((const char *)v->data, v->len);   /* NULL when not UTF-8 */
}

/* Time / MicroTime: {seconds 1, nanos 2}. */
static json_t *pb_time(const struct pb_val *v, int micro)
{
    struct pb_in in = {v->data, v->data + v->len};
    int64_t secs = 0, nanos = 0;
    while (in.p < in.end) {
        struct pb_val f;
        if (pb_next(&in, &f) < 0 || f.wire != 0)
            return NULL;
        if (f.num == 1)
            secs = (int64_t)f.u;
        else if (f.num == 2)
            nanos = (int64_t)f.u;
    }
    char buf[64];
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return NULL;
    if (micro) {
        char base[40];
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf, sizeof buf, "%s.%06dZ", base, (int)((nanos / 1000) % 1000000));
    } else {
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    return json_string(buf);
}

/* IntOrString: {type 1 (0 int, 1 string), intVal 2, strVal 3}. */
static json_t *pb_ios(const struct pb_val *v)
{
    struct pb_in in = {v->data, v->data + v->len};
    uint64_t type = 0, iv = 0;
    const unsigned char *s = NULL;
    size_t sl = 0;
    while (in.p < in.end) {
        struct pb_val f;
        if (pb_next(&in, &f) < 0)
            return NULL;
        if (f.num == 1 && f.wire == 0)
            type = f.u;
        else if (f.num == 2 && f.wire == 0)
            iv = f.u;
        else if (f.num == 3 && f.wire == 2) {
            s = f.data;
            sl = f.len;
        }
    }
    if (type == 1)
        return json_stringn(s ? (const char *)s : "", sl);
    return json_integer((json_int_t)(int32_t)(uint32_t)iv);
}

/* Quantity: {string 1}. */
static json_t *pb_quantity(const struct pb_val *v)
{
    struct pb_in in = {v->data, v->data + v->len};
    while (in.p < in.end) {
        struct pb_val f;
        if (pb_next(&in, &f) < 0)
            return NULL;
        if (f.num == 1 && f.wire == 2)
            return json_stringn((const char *)f.data, f.len);
    }
    return json_string("0");
}

static int pb_message(struct pb_ctx *c, const struct pb_field *fields, const unsigned char *p,
                      size_t n, unsigned depth, json_t *out);

/* A map entry {key 1, value 2} into obj. */
static int pb_map_entry(struct pb_ctx *c, enum pb_kind kind, const struct pb_val *v, json_t *obj)
{
    struct pb_in in = {v->data, v->data + v->len};
    struct pb_val key = {0}, val = {0};
    int have_val = 0;
    while (in.p < in.end) {
        struct pb_val f;
        if (pb_next(&in, &f) < 0)
            return fail(c, "malformed map entry", v->num);
        if (f.num == 1 && f.wire == 2)
            key = f;
        else if (f.num == 2 && f.wire == 2) {
            val = f;
            have_val = 1;
        }
    }
    char *k = strndup(key.data ? (const char *)key.data : "", key.len);
    if (!k)
        return -ENOMEM;
    json_t *jv;
    if (!have_val)
        jv = kind == PB_MAP_SQ ? json_string("0") : json_string("");
    else if (kind == PB_MAP_SS)
        jv = pb_string(&val);
    else if (kind == PB_MAP_SB)
        jv = b64(val.data, val.len);
    else
        jv = pb_quantity(&val);
    if (!jv || memchr(k, 0, key.len)) {
        free(k);
        json_decref(jv);
        return fail(c, "map key or value is not valid UTF-8", v->num);
    }
    json_object_set_new(obj, k, jv);
    free(k);
    return 0;
}

static json_t *child(json_t *obj, const char *key, int array)
{
    json_t *c = json_object_get(obj, key);
    if (!c) {
        c = array ? json_array() : json_object();
        json_object_set_new(obj, key, c);
    }
    return c;
}

static int pb_field_value(struct pb_ctx *c, const struct pb_field *f, const struct pb_val *v,
                          unsigned depth, json_t *out)
{
    int keep = (f->flags & PBF_KEEP_ZERO) != 0;
    if (f->kind == PB_SKIP)
        return 0;
    if (!(f->flags & PBF_REPEATED) && !keep && f->kind != PB_MAP_SS && f->kind != PB_MAP_SB &&
        f->kind != PB_MAP_SQ && pb_is_zero(v, depth))
        return 0;
    int want_wire = (f->kind == PB_INT || f->kind == PB_BOOL) ? 0 : 2;
    if ((int)v->wire != want_wire)
        return fail(c, "unexpected wire type", v->num);
    json_t *jv = NULL;
    switch (f->kind) {
    case PB_STRING:
        jv = pb_string(v);
        if (!jv)
            return fail(c, "string is not valid UTF-8", v->num);
        break;
    case PB_BYTES: jv = b64(v->data, v->len); break;
    case PB_INT: jv = json_integer((json_int_t)v->u); break;
    case PB_BOOL: jv = json_boolean(v->u != 0); break;
    case PB_TIME:
    case PB_MICROTIME:
        jv = pb_time(v, f->kind == PB_MICROTIME);
        if (!jv)
            return fail(c, "malformed time", v->num);
        break;
    case PB_IOS:
        jv = pb_ios(v);
        if (!jv)
            return fail(c, "malformed IntOrString", v->num);
        break;
    case PB_QUANTITY: jv = pb_quantity(v); break;
    case PB_MAP_SS:
    case PB_MAP_SB:
    case PB_MAP_SQ:
        return pb_map_entry(c, f->kind, v, child(out, f->json, 0));
    case PB_MSG: {
        if (depth >= PB_MAX_DEPTH)
            return fail(c, "nested too deeply", v->num);
        size_t plen = strlen(c->path);
        snprintf(c->path + plen, sizeof c->path - plen, "%s%s", plen ? "." : "", f->json);
        jv = json_object();
        int rc = jv ? pb_message(c, f->sub, v->data, v->len, depth + 1, jv) : -ENOMEM;
        c->path[plen] = 0;
        if (rc < 0) {
            json_decref(jv);
            return rc;
        }
        break;
    }
    case PB_SKIP: return 0;
    }
    if (!jv)
        return -ENOMEM;
    if (f->flags & PBF_REPEATED)
        json_array_append_new(child(out, f->json, 1), jv);
    else
        json_object_set_new(out, f->json, jv);
    return 0;
}

/* Drops what Go's omitempty would leave out: empty objects and arrays. */
static void prune_empty(json_t *obj)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(obj, tmp, k, v) {
        if (json_is_object(v))
            prune_empty(v);
        else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (json_is_object(e))
                    prune_empty(e);
            }
        }
        if ((json_is_object(v) && json_object_size(v) == 0) ||
            (json_is_array(v) && json_array_size(v) == 0))
            json_object_del(obj, k);
    }
}

static int pb_message(struct pb_ctx *c, const struct pb_field *fields, const unsigned char *p,
                      size_t n, unsigned depth, json_t *out)
{
    struct pb_in in = {p, p + n};
    while (in.p < in.end) {
        struct pb_val v;
        if (pb_next(&in, &v) < 0)
            return fail(c, "malformed message", 0);
        const struct pb_field *f = NULL;
        for (const struct pb_field *it = fields; it->num; it++)
            if (it->num == v.num) {
                f = it;
                break;
            }
        if (!f) {
            if (pb_is_zero(&v, depth))
                continue;
            fail(c, "a field this server does not take from protobuf; send JSON", v.num);
            return -ENOTSUP;
        }
        int rc = pb_field_value(c, f, &v, depth, out);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int as_protobuf_decode(const char *body, size_t n, json_t **out, char *err, size_t errn)
{
    struct pb_ctx c = {.err = err, .errn = errn};
    err[0] = 0;
    if (n < 4 || memcmp(body, "k8s\0", 4)) {
        snprintf(err, errn, "protobuf body: missing the \"k8s\\0\" prefix");
        return -EINVAL;
    }
    struct pb_in in = {(const unsigned char *)body + 4, (const unsigned char *)body + n};
    struct pb_val tm = {0}, raw = {0};
    while (in.p < in.end) {
        struct pb_val v;
        if (pb_next(&in, &v) < 0) {
            snprintf(err, errn, "protobuf body: malformed envelope");
            return -EINVAL;
        }
        if (v.num == 1 && v.wire == 2)
            tm = v;
        else if (v.num == 2 && v.wire == 2)
            raw = v;
        else if (v.num == 3 && v.wire == 2 && v.len) {
            snprintf(err, errn, "protobuf body: content encodings are not supported");
            return -EINVAL;
        }
    }
    char av[128] = "", kind[128] = "";
    static const unsigned char none[1];
    if (!tm.data)
        tm.data = none;
    if (!raw.data)
        raw.data = none;
    struct pb_in tin = {tm.data, tm.data + tm.len};
    while (tin.p < tin.end) {
        struct pb_val v;
        if (pb_next(&tin, &v) < 0 || v.wire != 2) {
            snprintf(err, errn, "protobuf body: malformed type meta");
            return -EINVAL;
        }
        if (v.num == 1 && v.len < sizeof av)
            snprintf(av, sizeof av, "%.*s", (int)v.len, (const char *)v.data);
        else if (v.num == 2 && v.len < sizeof kind)
            snprintf(kind, sizeof kind, "%.*s", (int)v.len, (const char *)v.data);
    }
    const struct pb_field *fields = NULL;
    for (size_t i = 0; i < sizeof pb_types / sizeof pb_types[0]; i++)
        if (!strcmp(av, pb_types[i].api_version) && !strcmp(kind, pb_types[i].kind))
            fields = pb_types[i].fields;
    if (!fields) {
        snprintf(err, errn,
                 "protobuf bodies are accepted for Namespace, ConfigMap, Secret, ServiceAccount, "
                 "Service, Deployment and Lease only, not %s %s: send JSON or YAML",
                 av[0] ? av : "?", kind[0] ? kind : "?");
        return -ENOTSUP;
    }
    json_t *obj = json_pack("{s:s, s:s}", "apiVersion", av, "kind", kind);
    if (!obj)
        return -ENOMEM;
    int rc = pb_message(&c, fields, raw.data, raw.len, 0, obj);
    if (rc < 0) {
        json_decref(obj);
        return rc;
    }
    prune_empty(obj);
    *out = obj;
    return 0;
}
