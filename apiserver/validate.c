/* Validation and defaulting of built-in objects, worded as kube-apiserver
 * words them (kubectl shows these messages as they are): object names
 * (RFC 1123 subdomains and labels, RFC 1035 labels), labels and
 * annotations, and the few required fields of the built-in kinds served.
 * Custom resources get their spec checked by schema.c; their metadata goes
 * through here too. */
#include "apiserver/server.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DNS1123_SUBDOMAIN_MSG                                                                 \
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' " \
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "    \
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
#define DNS1123_LABEL_MSG                                                                    \
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', " \
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', " \
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
#define DNS1035_LABEL_MSG                                                                    \
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with " \
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "  \
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
#define QNAME_MSG                                                                            \
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and " \
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex " \
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
#define LABEL_VALUE_MSG                                                                      \
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " \
    "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "   \
    "'my_value',  or '12345', regex used for validation is "                                 \
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
#define ANNOTATIONS_MAX 262144

void as_cause_add(json_t *causes, const char *reason, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_array_append_new(causes, json_pack("{s:s, s:s, s:s}", "reason", reason, "message", msg,
                                            "field", field));
}

static int is_lower_alnum(int c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static int is_alnum(int c) { return isalnum((unsigned char)c) != 0; }

static int label_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_lower_alnum(s[i]) && s[i] != '-')
            return 0;
    return 1;
}

const char *as_check_dns1123_subdomain(const char *s)
{
    size_t n = strlen(s);
    if (n > 253)
        return "must be no more than 253 characters";
    const char *p = s;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        /* Labels inside a subdomain may be longer than 63: only the whole
         * is capped (Kubernetes' regex has no per-label length). */
        if (len == 0 || !is_lower_alnum(p[0]) || !is_lower_alnum(p[len - 1]))
            return DNS1123_SUBDOMAIN_MSG;
        for (size_t i = 0; i < len; i++)
            if (!is_lower_alnum(p[i]) && p[i] != '-')
                return DNS1123_SUBDOMAIN_MSG;
        if (!dot)
            break;
        p = dot + 1;
    }
    return NULL;
}

const char *as_check_dns1123_label(const char *s)
{
    size_t n = strlen(s);
    if (n > 63)
        return "must be no more than 63 characters";
    return label_ok(s, n) ? NULL : DNS1123_LABEL_MSG;
}

const char *as_check_dns1035_label(const char *s)
{
    size_t n = strlen(s);
    if (n > 63)
        return "must be no more than 63 characters";
    if (!label_ok(s, n) || !(s[0] >= 'a' && s[0] <= 'z'))
        return DNS1035_LABEL_MSG;
    return NULL;
}

/* A label or annotation key: [prefix/]name. NULL or the message. */
static const char *check_qualified_name(const char *k, char *buf, size_t bufn)
{
    const char *slash = strchr(k, '/');
    const char *name = k;
    if (slash) {
        if (strchr(slash + 1, '/'))
            return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyName',  or "
                   "'my.name',  or '123-abc', regex used for validation is "
                   "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
                   "prefix and '/' (e.g. 'example.com/MyName')";
        size_t pl = (size_t)(slash - k);
        char prefix[300];
        if (pl == 0 || pl >= sizeof prefix)
            return "prefix part must be non-empty";
        memcpy(prefix, k, pl);
        prefix[pl] = 0;
        const char *why = as_check_dns1123_subdomain(prefix);
        if (why) {
            snprintf(buf, bufn, "prefix part %s", why);
            return buf;
        }
        name = slash + 1;
    }
    size_t n = strlen(name);
    if (n == 0)
        return "name part must be non-empty";
    if (n > 63)
        return "name part must be no more than 63 characters";
    if (!is_alnum(name[0]) || !is_alnum(name[n - 1]))
        return QNAME_MSG;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(name[i]) && name[i] != '-' && name[i] != '_' && name[i] != '.')
            return QNAME_MSG;
    return NULL;
}

static const char *check_label_value(const char *v)
{
    size_t n = strlen(v);
    if (n == 0)
        return NULL;
    if (n > 63)
        return "must be no more than 63 characters";
    if (!is_alnum(v[0]) || !is_alnum(v[n - 1]))
        return LABEL_VALUE_MSG;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(v[i]) && v[i] != '-' && v[i] != '_' && v[i] != '.')
            return LABEL_VALUE_MSG;
    return NULL;
}

static int bad_type(char *bad, size_t badn, const char *field, const char *want, json_t *v)
{
    const char *got = json_is_string(v)    ? "string"
                      : json_is_number(v)  ? "number"
                      : json_is_boolean(v) ? "bool"
                      : json_is_array(v)   ? "array"
                                           : "object";
    snprintf(bad, badn, "json: cannot unmarshal %s into Go struct field ObjectMeta.%s of type %s",
             got, field, want);
    return -1;
}

static int check_string_map(json_t *meta, const char *key, char *bad, size_t badn)
{
    json_t *m = json_object_get(meta, key);
    if (!m || json_is_null(m))
        return 0;
    char field[64];
    snprintf(field, sizeof field, "metadata.%s", key);
    if (!json_is_object(m))
        return bad_type(bad, badn, field, "map[string]string", m);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return bad_type(bad, badn, field, "string", v);
    }
    return 0;
}

/* Which name syntax a resource requires. */
static const char *check_name_for(const struct as_resource *res, const char *name)
{
    if (!strcmp(res->resource, "namespaces") && !*res->group)
        return as_check_dns1123_label(name);
    if (!strcmp(res->resource, "services") && !*res->group)
        return as_check_dns1035_label(name);
    return as_check_dns1123_subdomain(name);
}

int as_validate_meta(const struct as_resource *res, json_t *obj, json_t *causes, char *bad,
                     size_t badn)
{
    json_t *meta = json_object_get(obj, "metadata");
    if (meta && !json_is_object(meta)) {
        snprintf(bad, badn, "json: cannot unmarshal %s into Go struct field .metadata of type v1.ObjectMeta",
                 json_is_string(meta) ? "string" : json_is_array(meta) ? "array" : "number");
        return -1;
    }
    static const char *const str_fields[] = {"name", "generateName", "namespace",
                                             "resourceVersion", "uid", "creationTimestamp",
                                             "deletionTimestamp", NULL};
    for (unsigned i = 0; str_fields[i]; i++) {
        json_t *v = json_object_get(meta, str_fields[i]);
        if (v && !json_is_null(v) && !json_is_string(v)) {
            char field[64];
            snprintf(field, sizeof field, "metadata.%s", str_fields[i]);
            return bad_type(bad, badn, field, "string", v);
        }
    }
    if (check_string_map(meta, "labels", bad, badn) < 0 ||
        check_string_map(meta, "annotations", bad, badn) < 0)
        return -1;
    json_t *fins = json_object_get(meta, "finalizers");
    if (fins && !json_is_null(fins)) {
        if (!json_is_array(fins))
            return bad_type(bad, badn, "metadata.finalizers", "[]string", fins);
        size_t i;
        json_t *f;
        json_array_foreach(fins, i, f) {
            if (!json_is_string(f))
                return bad_type(bad, badn, "metadata.finalizers", "string", f);
        }
    }
    json_t *owners = json_object_get(meta, "ownerReferences");
    if (owners && !json_is_null(owners)) {
        if (!json_is_array(owners))
            return bad_type(bad, badn, "metadata.ownerReferences", "[]v1.OwnerReference", owners);
        size_t i;
        json_t *o;
        json_array_foreach(owners, i, o) {
            if (!json_is_object(o))
                return bad_type(bad, badn, "metadata.ownerReferences", "v1.OwnerReference", o);
            static const char *const req[] = {"apiVersion", "kind", "name", "uid", NULL};
            for (unsigned j = 0; req[j]; j++) {
                json_t *v = json_object_get(o, req[j]);
                char field[96];
                snprintf(field, sizeof field, "metadata.ownerReferences[%zu].%s", i, req[j]);
                if (v && !json_is_string(v))
                    return bad_type(bad, badn, field, "string", v);
                if (!json_string_length(v))
                    as_cause_add(causes, "FieldValueRequired", field, "Required value");
            }
        }
    }

    /* Syntax. */
    const char *name = json_string_value(json_object_get(meta, "name"));
    if (name && *name) {
        const char *why = check_name_for(res, name);
        if (why)
            as_cause_add(causes, "FieldValueInvalid", "metadata.name", "Invalid value: \"%s\": %s",
                         name, why);
    }
    json_t *labels = json_object_get(meta, "labels");
    const char *k;
    json_t *v;
    char buf[512];
    json_object_foreach(labels, k, v) {
        const char *why = check_qualified_name(k, buf, sizeof buf);
        if (why)
            as_cause_add(causes, "FieldValueInvalid", "metadata.labels",
                         "Invalid value: \"%s\": %s", k, why);
        why = check_label_value(json_string_value(v));
        if (why)
            as_cause_add(causes, "FieldValueInvalid", "metadata.labels",
                         "Invalid value: \"%s\": %s", json_string_value(v), why);
    }
    json_t *ann = json_object_get(meta, "annotations");
    size_t total = 0;
    json_object_foreach(ann, k, v) {
        const char *why = check_qualified_name(k, buf, sizeof buf);
        if (why)
            as_cause_add(causes, "FieldValueInvalid", "metadata.annotations",
                         "Invalid value: \"%s\": %s", k, why);
        total += strlen(k) + json_string_length(v);
    }
    if (total > ANNOTATIONS_MAX)
        as_cause_add(causes, "FieldValueTooLong", "metadata.annotations",
                     "Too long: must have at most %d bytes", ANNOTATIONS_MAX);
    return 0;
}

static int is(const struct as_resource *res, const char *group, const char *resource)
{
    return !strcmp(res->group, group) && !strcmp(res->resource, resource);
}

static void check_containers(json_t *podspec, const char *path, json_t *causes)
{
    char field[160];
    json_t *cs = json_object_get(podspec, "containers");
    snprintf(field, sizeof field, "%s.containers", path);
    if (!json_is_array(cs) || json_array_size(cs) == 0) {
        as_cause_add(causes, "FieldValueRequired", field, "Required value");
        return;
    }
    size_t i;
    json_t *c;
    json_array_foreach(cs, i, c) {
        if (!json_string_length(json_object_get(c, "name"))) {
            snprintf(field, sizeof field, "%s.containers[%zu].name", path, i);
            as_cause_add(causes, "FieldValueRequired", field, "Required value");
        }
        if (!json_string_length(json_object_get(c, "image"))) {
            snprintf(field, sizeof field, "%s.containers[%zu].image", path, i);
            as_cause_add(causes, "FieldValueRequired", field, "Required value");
        }
    }
}

static const char *const config_key_msg =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
    "'[-._a-zA-Z0-9]+')";

static void check_data_keys(json_t *obj, const char *key, json_t *causes)
{
    json_t *m = json_object_get(obj, key);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        int okk = *k != 0 && strlen(k) <= 253;
        for (const char *p = k; okk && *p; p++)
            okk = is_alnum(*p) || *p == '-' || *p == '_' || *p == '.';
        if (!okk) {
            char field[64];
            snprintf(field, sizeof field, "%s", key);
            as_cause_add(causes, "FieldValueInvalid", field, "Invalid value: \"%s\": %s", k,
                         config_key_msg);
        }
        if (!json_is_string(v)) {
            char field[300];
            snprintf(field, sizeof field, "%s[%s]", key, k);
            as_cause_add(causes, "FieldValueTypeInvalid", field,
                         "Invalid value: must be a string");
        }
    }
}

void as_validate_builtin(const struct as_resource *res, json_t *obj, json_t *causes)
{
    if (!res->builtin)
        return;
    json_t *spec = json_object_get(obj, "spec");
    if (is(res, "apps", "deployments")) {
        json_t *sel = json_object_get(spec, "selector");
        if (!json_is_object(sel)) {
            as_cause_add(causes, "FieldValueRequired", "spec.selector", "Required value");
        } else {
            json_t *ml = json_object_get(sel, "matchLabels");
            json_t *tl = as_json_path_get(spec, "template.metadata.labels");
            const char *k;
            json_t *v;
            int match = json_object_size(ml) > 0 || json_array_size(json_object_get(sel, "matchExpressions")) > 0;
            json_object_foreach(ml, k, v) {
                json_t *tv = json_object_get(tl, k);
                if (!json_is_string(tv) || !json_equal(tv, v))
                    match = 0;
            }
            if (!json_object_size(ml) && !json_array_size(json_object_get(sel, "matchExpressions")))
                as_cause_add(causes, "FieldValueInvalid", "spec.selector",
                             "Invalid value: \"null\": empty selector is invalid for deployment");
            else if (!match)
                as_cause_add(causes, "FieldValueInvalid", "spec.template.metadata.labels",
                             "Invalid value: `selector` does not match template `labels`");
        }
        json_t *r = json_object_get(spec, "replicas");
        if (r && !json_is_integer(r))
            as_cause_add(causes, "FieldValueTypeInvalid", "spec.replicas",
                         "Invalid value: must be an integer");
        else if (r && json_integer_value(r) < 0)
            as_cause_add(causes, "FieldValueInvalid", "spec.replicas",
                         "Invalid value: %lld: must be greater than or equal to 0",
                         (long long)json_integer_value(r));
        check_containers(as_json_path_get(spec, "template.spec"), "spec.template.spec", causes);
    } else if (is(res, "", "pods")) {
        check_containers(spec, "spec", causes);
    } else if (is(res, "", "services")) {
        const char *type = json_string_value(json_object_get(spec, "type"));
        const char *cip = json_string_value(json_object_get(spec, "clusterIP"));
        int headless = cip && !strcmp(cip, "None");
        if (type && strcmp(type, "ClusterIP") && strcmp(type, "NodePort") &&
            strcmp(type, "LoadBalancer") && strcmp(type, "ExternalName"))
            as_cause_add(causes, "FieldValueNotSupported", "spec.type",
                         "Unsupported value: \"%s\": supported values: \"ClusterIP\", "
                         "\"ExternalName\", \"LoadBalancer\", \"NodePort\"", type);
        if (!(type && !strcmp(type, "ExternalName")) && !headless &&
            json_array_size(json_object_get(spec, "ports")) == 0)
            as_cause_add(causes, "FieldValueRequired", "spec.ports", "Required value");
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(spec, "ports"), i, p) {
            json_t *port = json_object_get(p, "port");
            if (!json_is_integer(port) || json_integer_value(port) < 1 ||
                json_integer_value(port) > 65535) {
                char field[64];
                snprintf(field, sizeof field, "spec.ports[%zu].port", i);
                as_cause_add(causes, "FieldValueInvalid", field,
                             "Invalid value: %lld: must be between 1 and 65535, inclusive",
                             (long long)json_integer_value(port));
            }
        }
    } else if (is(res, "", "configmaps")) {
        check_data_keys(obj, "data", causes);
        check_data_keys(obj, "binaryData", causes);
    } else if (is(res, "", "secrets")) {
        check_data_keys(obj, "data", causes);
    }
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64(const char *s, size_t n)
{
    size_t outn = (n + 2) / 3 * 4;
    char *out = malloc(outn + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)s[i + 2];
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64chars[v & 63] : '=';
    }
    out[o] = 0;
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

static json_t *obj_child(json_t *o, const char *key)
{
    json_t *c = json_object_get(o, key);
    if (!json_is_object(c)) {
        c = json_object();
        json_object_set_new(o, key, c);
    }
    return c;
}

static void set_default(json_t *o, const char *key, json_t *v)
{
    if (!json_object_get(o, key))
        json_object_set_new(o, key, v);
    else
        json_decref(v);
}

static void default_podspec(json_t *ps)
{
    if (!json_is_object(ps))
        return;
    set_default(ps, "restartPolicy", json_string("Always"));
    set_default(ps, "dnsPolicy", json_string("ClusterFirst"));
    set_default(ps, "schedulerName", json_string("default-scheduler"));
    set_default(ps, "terminationGracePeriodSeconds", json_integer(30));
    set_default(ps, "securityContext", json_object());
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ps, "containers"), i, c) {
        if (!json_is_object(c))
            continue;
        const char *img = json_string_value(json_object_get(c, "image"));
        int latest = img && (!strchr(img, ':') || strstr(img, ":latest"));
        set_default(c, "imagePullPolicy", json_string(latest ? "Always" : "IfNotPresent"));
        set_default(c, "terminationMessagePath", json_string("/dev/termination-log"));
        set_default(c, "terminationMessagePolicy", json_string("File"));
        set_default(c, "resources", json_object());
        size_t j;
        json_t *port;
        json_array_foreach(json_object_get(c, "ports"), j, port) {
            if (json_is_object(port))
                set_default(port, "protocol", json_string("TCP"));
        }
    }
}

void as_default_builtin(struct as_server *srv, const struct as_resource *res, json_t *obj,
                        int create)
{
    if (!res->builtin)
        return;
    if (is(res, "", "namespaces")) {
        json_t *meta = as_meta(obj);
        json_t *labels = obj_child(meta, "labels");
        const char *name = json_string_value(json_object_get(meta, "name"));
        if (name)
            json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name));
        json_t *spec = obj_child(obj, "spec");
        set_default(spec, "finalizers", json_pack("[s]", "kubernetes"));
        if (create) {
            json_t *status = obj_child(obj, "status");
            json_object_set_new(status, "phase", json_string("Active"));
        }
    } else if (is(res, "", "services")) {
        json_t *spec = obj_child(obj, "spec");
        set_default(spec, "type", json_string("ClusterIP"));
        const char *type = json_string_value(json_object_get(spec, "type"));
        if (create && type && strcmp(type, "ExternalName") && !json_object_get(spec, "clusterIP")) {
            /* 10.96.0.0/12 like kubeadm's default; no allocator: the
             * address is for show, nothing routes it. */
            uint64_t n = ++srv->service_ip_seq;
            char ip[32];
            snprintf(ip, sizeof ip, "10.96.%u.%u", (unsigned)((n >> 8) & 255), (unsigned)(n & 255 ? n & 255 : 1));
            json_object_set_new(spec, "clusterIP", json_string(ip));
        }
        json_t *cip = json_object_get(spec, "clusterIP");
        if (json_is_string(cip) && !json_object_get(spec, "clusterIPs"))
            json_object_set_new(spec, "clusterIPs", json_pack("[O]", cip));
        set_default(spec, "sessionAffinity", json_string("None"));
        if (type && strcmp(type, "ExternalName")) {
            set_default(spec, "ipFamilies", json_pack("[s]", "IPv4"));
            set_default(spec, "ipFamilyPolicy", json_string("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json_string("Cluster"));
        }
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(spec, "ports"), i, p) {
            if (!json_is_object(p))
                continue;
            set_default(p, "protocol", json_string("TCP"));
            json_t *port = json_object_get(p, "port");
            if (port)
                set_default(p, "targetPort", json_copy(port));
        }
        if (create)
            json_object_set_new(obj, "status", json_pack("{s:{}}", "loadBalancer"));
    } else if (is(res, "", "secrets")) {
        set_default(obj, "type", json_string("Opaque"));
        json_t *sd = json_object_get(obj, "stringData");
        if (json_is_object(sd)) {
            json_t *data = obj_child(obj, "data");
            const char *k;
            json_t *v;
            json_object_foreach(sd, k, v) {
                if (json_is_string(v))
                    json_object_set_new(data, k, base64(json_string_value(v), json_string_length(v)));
            }
        }
        json_object_del(obj, "stringData");
    } else if (is(res, "", "pods")) {
        default_podspec(json_object_get(obj, "spec"));
        if (create)
            json_object_set_new(obj, "status",
                                json_pack("{s:s, s:s}", "phase", "Pending", "qosClass", "BestEffort"));
    } else if (is(res, "apps", "deployments")) {
        json_t *spec = obj_child(obj, "spec");
        set_default(spec, "replicas", json_integer(1));
        set_default(spec, "revisionHistoryLimit", json_integer(10));
        set_default(spec, "progressDeadlineSeconds", json_integer(600));
        set_default(spec, "strategy",
                    json_pack("{s:s, s:{s:s, s:s}}", "type", "RollingUpdate", "rollingUpdate",
                              "maxUnavailable", "25%", "maxSurge", "25%"));
        default_podspec(as_json_path_get(spec, "template.spec"));
    }
}

/* --- unknown fields of typed objects ---------------------------------------- */

static const char *const meta_fields[] = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields", NULL,
};

struct top_fields {
    const char *group, *resource;
    const char *const *fields;
};

static const char *const f_spec_status[] = {"spec", "status", NULL};
static const char *const f_spec[] = {"spec", NULL};
static const char *const f_configmap[] = {"data", "binaryData", "immutable", NULL};
static const char *const f_secret[] = {"data", "stringData", "type", "immutable", NULL};
static const char *const f_sa[] = {"secrets", "imagePullSecrets", "automountServiceAccountToken",
                                   NULL};
static const char *const f_event[] = {
    "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
    "type", "eventTime", "series", "action", "related", "reportingComponent",
    "reportingInstance", NULL,
};

static const struct top_fields top_fields[] = {
    {"", "namespaces", f_spec_status},
    {"", "configmaps", f_configmap},
    {"", "secrets", f_secret},
    {"", "services", f_spec_status},
    {"", "serviceaccounts", f_sa},
    {"", "events", f_event},
    {"", "pods", f_spec_status},
    {"apps", "deployments", f_spec_status},
    {"coordination.k8s.io", "leases", f_spec},
    {"apiextensions.k8s.io", "customresourcedefinitions", f_spec_status},
};

static int listed(const char *const *l, const char *s)
{
    for (; *l; l++)
        if (!strcmp(*l, s))
            return 1;
    return 0;
}

void as_unknown_fields(const struct as_resource *res, json_t *obj, json_t *unknown)
{
    void *tmp;
    const char *k;
    json_t *v;
    char path[300];
    json_t *meta = json_object_get(obj, "metadata");
    if (json_is_object(meta)) {
        json_object_foreach_safe(meta, tmp, k, v) {
            if (!listed(meta_fields, k)) {
                snprintf(path, sizeof path, ".metadata.%s", k);
                json_array_append_new(unknown, json_string(path));
                json_object_del(meta, k);
            }
        }
    }
    if (!res->builtin)
        return;   /* the CRD's schema judges the rest */
    const char *const *fields = NULL;
    for (size_t i = 0; i < sizeof top_fields / sizeof top_fields[0]; i++)
        if (!strcmp(res->group, top_fields[i].group) &&
            !strcmp(res->resource, top_fields[i].resource))
            fields = top_fields[i].fields;
    if (!fields)
        return;
    json_object_foreach_safe(obj, tmp, k, v) {
        if (strcmp(k, "apiVersion") && strcmp(k, "kind") && strcmp(k, "metadata") &&
            !listed(fields, k)) {
            snprintf(path, sizeof path, ".%s", k);
            json_array_append_new(unknown, json_string(path));
            json_object_del(obj, k);
        }
    }
}
