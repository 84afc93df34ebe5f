/* PATCH bodies applied to stored objects: JSON merge patch (RFC 7386), JSON
 * patch (RFC 6902), Kubernetes' strategic merge patch for the built-in kinds,
 * and server-side apply without field managers.
 *
 * Every patch is applied to a deep copy of the object; only a patch that
 * succeeded as a whole is committed back, so a failure (a bad operation in
 * the middle of a JSON patch, a malformed directive deep inside a strategic
 * patch, ENOMEM) leaves the caller's object exactly as it was.
 *
 * The strategic-merge semantics follow k8s.io/apimachinery's strategicpatch
 * package (mergeMap, mergeSlice, normalizeElementOrder), because kubectl's
 * client-side apply computes its three-way patch against those semantics:
 * $setElementOrder, $retainKeys, $deleteFromPrimitiveList, "$patch: delete"
 * list items and nulls must land exactly as a real apiserver lands them. */
#include "apiserver/patch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Nesting deeper than this in an object or patch is refused rather than
 * recursed into: stored objects are far shallower, and the C stack is not. */
#define AS_PATCH_MAX_DEPTH 128
/* Kubernetes caps JSON patches at 10000 operations. */
#define AS_PATCH_MAX_OPS 10000
/* Values copied by "copy" operations, in JSON nodes, over a whole patch:
 * without a budget, 30 copies of the document into itself grow it 2^30
 * times (Kubernetes bounds the accumulated copy size the same way). */
#define AS_PATCH_MAX_COPY_NODES (1u << 20)

static __thread char patch_errbuf[320];

__attribute__((format(printf, 2, 3))) static int patch_fail(const char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(patch_errbuf, sizeof patch_errbuf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof patch_errbuf)
        memcpy(patch_errbuf + sizeof patch_errbuf - 4, "...", 4);
    if (err)
        *err = patch_errbuf;
    return -EINVAL;
}

static int patch_nomem(const char **err)
{
    if (err)
        *err = "out of memory while applying the patch";
    return -ENOMEM;
}

int as_patch_type_parse(const char *content_type, size_t len, enum as_patch_type *out)
{
    static const struct {
        const char *name;
        enum as_patch_type type;
    } types[] = {
        {"application/merge-patch+json", AS_PATCH_MERGE},
        {"application/json-patch+json", AS_PATCH_JSON},
        {"application/strategic-merge-patch+json", AS_PATCH_STRATEGIC},
        {"application/apply-patch+yaml", AS_PATCH_APPLY},
    };
    if (!content_type)
        return -EINVAL;
    const char *semi = memchr(content_type, ';', len);
    size_t n = semi ? (size_t)(semi - content_type) : len;
    while (n && (content_type[0] == ' ' || content_type[0] == '\t')) {
        content_type++;
        n--;
    }
    while (n && (content_type[n - 1] == ' ' || content_type[n - 1] == '\t'))
        n--;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strlen(types[i].name) == n && strncasecmp(types[i].name, content_type, n) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return -EINVAL;
}

/* --- helpers ---------------------------------------------------------------- */

/* Deep equality where numbers compare by value (1 == 1.0), as Go's
 * reflect.DeepEqual on decoded JSON does (every number is a float64 there). */
static int patch_equal(json_t *a, json_t *b, unsigned depth)
{
    if (a == b)
        return 1;
    if (!a || !b || depth > AS_PATCH_MAX_DEPTH)
        return 0;
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v) {
            if (!patch_equal(v, json_object_get(b, k), depth + 1))
                return 0;
        }
        return 1;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!patch_equal(json_array_get(a, i), json_array_get(b, i), depth + 1))
                return 0;
        return 1;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default: /* true, false, null: same type is equal */
        return 1;
    }
}

/* Nodes in v, counting at most cap (so a huge value costs at most cap steps). */
static size_t patch_count_nodes(json_t *v, size_t cap, unsigned depth)
{
    size_t n = 1;
    if (depth > AS_PATCH_MAX_DEPTH)
        return cap;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            if (n >= cap)
                break;
            n += patch_count_nodes(c, cap - n, depth + 1);
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            if (n >= cap)
                break;
            n += patch_count_nodes(c, cap - n, depth + 1);
        }
    }
    return n;
}

static unsigned patch_depth_of(json_t *v, unsigned depth)
{
    unsigned max = depth;
    if (depth > AS_PATCH_MAX_DEPTH)
        return depth;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;
        json_object_foreach(v, k, c) {
            unsigned d = patch_depth_of(c, depth + 1);
            if (d > max)
                max = d;
            if (max > AS_PATCH_MAX_DEPTH)
                break;
        }
    } else if (json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c) {
            unsigned d = patch_depth_of(c, depth + 1);
            if (d > max)
                max = d;
            if (max > AS_PATCH_MAX_DEPTH)
                break;
        }
    }
    return max;
}

/* --- JSON merge patch (RFC 7386) ------------------------------------------- */

/* Merges patch (an object) into target (an object) in place. */
static int merge_object(json_t *target, json_t *patch, unsigned depth, const char **err)
{
    const char *k;
    json_t *v;
    if (depth > AS_PATCH_MAX_DEPTH)
        return patch_fail(err, "the patch is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);
    json_object_foreach(patch, k, v) {
        if (json_is_null(v)) {
            json_object_del(target, k);
            continue;
        }
        if (json_is_object(v)) {
            json_t *t = json_object_get(target, k);
            if (!json_is_object(t)) {
                t = json_object();
                if (!t || json_object_set_new(target, k, t) != 0)
                    return patch_nomem(err);
            }
            int rc = merge_object(t, v, depth + 1, err);
            if (rc < 0)
                return rc;
            continue;
        }
        json_t *c = json_deep_copy(v);
        if (!c || json_object_set_new(target, k, c) != 0)
            return patch_nomem(err);
    }
    return 0;
}

/* RFC 7386 MergePatch(target, patch) in full generality (any JSON values):
 * returns the new document, consuming target. NULL on error (err set). */
static json_t *merge_patch(json_t *target, json_t *patch, const char **err)
{
    if (!json_is_object(patch)) {
        json_decref(target);
        json_t *c = json_deep_copy(patch);
        if (!c)
            patch_nomem(err);
        return c;
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
        if (!target) {
            patch_nomem(err);
            return NULL;
        }
    }
    if (merge_object(target, patch, 0, err) < 0) {
        json_decref(target);
        return NULL;
    }
    return target;
}

/* --- JSON patch (RFC 6902) ------------------------------------------------- */

#define JP_MAX_TOKENS 256

struct jp_ptr {
    char *buf;                    /* the unescaped tokens, NUL-separated */
    const char *tok[JP_MAX_TOKENS];
    size_t n;
};

/* Parses a JSON pointer (RFC 6901). ptr is shown in errors as given. */
static int jp_parse(json_t *jstr, const char *what, struct jp_ptr *p, const char **err)
{
    p->buf = NULL;
    p->n = 0;
    if (!json_is_string(jstr))
        return patch_fail(err, "invalid JSON patch operation: \"%s\" must be a string", what);
    const char *s = json_string_value(jstr);
    size_t len = json_string_length(jstr);
    if (strlen(s) != len)
        return patch_fail(err, "invalid JSON pointer in \"%s\": it contains a NUL byte", what);
    if (len == 0)
        return 0;
    if (s[0] != '/')
        return patch_fail(err, "invalid JSON pointer \"%.200s\": it must be empty or start with '/'", s);
    p->buf = malloc(len + 1);
    if (!p->buf)
        return patch_nomem(err);
    char *o = p->buf;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '/') {
            if (p->n == JP_MAX_TOKENS)
                return patch_fail(err, "JSON pointer \"%.200s\" has more than %d parts", s,
                                  JP_MAX_TOKENS);
            if (i > 0)
                *o++ = '\0';
            p->tok[p->n++] = o;
        } else if (s[i] == '~') {
            if (i + 1 < len && s[i + 1] == '0')
                *o++ = '~';
            else if (i + 1 < len && s[i + 1] == '1')
                *o++ = '/';
            else
                return patch_fail(err, "invalid JSON pointer \"%.200s\": '~' must be followed by 0 or 1",
                                  s);
            i++;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return 0;
}

static void jp_free(struct jp_ptr *p)
{
    free(p->buf);
    p->buf = NULL;
}

/* An array index token: decimal without leading zeros. -1 when not one. */
static long long jp_index(const char *t)
{
    if (!t[0] || (t[0] == '0' && t[1]))
        return -1;
    long long v = 0;
    for (const char *c = t; *c; c++) {
        if (*c < '0' || *c > '9' || v > 100000000LL)
            return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

/* The value at tokens [0, upto) of p, or NULL when absent. */
static json_t *jp_walk(json_t *root, const struct jp_ptr *p, size_t upto)
{
    json_t *cur = root;
    for (size_t i = 0; i < upto && cur; i++) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, p->tok[i]);
        } else if (json_is_array(cur)) {
            long long ix = jp_index(p->tok[i]);
            cur = ix < 0 || (size_t)ix >= json_array_size(cur) ? NULL : json_array_get(cur, (size_t)ix);
        } else {
            cur = NULL;
        }
    }
    return cur;
}

/* Adds value (a new reference, consumed) at p. */
static int jp_add(json_t **root, const struct jp_ptr *p, const char *path, json_t *value,
                  const char *op, const char **err)
{
    if (p->n == 0) {
        json_decref(*root);
        *root = value;
        return 0;
    }
    json_t *parent = jp_walk(*root, p, p->n - 1);
    const char *last = p->tok[p->n - 1];
    int rc;
    if (json_is_object(parent)) {
        rc = json_object_set_new(parent, last, value);
    } else if (json_is_array(parent)) {
        size_t size = json_array_size(parent);
        long long ix = strcmp(last, "-") == 0 ? (long long)size : jp_index(last);
        if (ix < 0 || (size_t)ix > size) {
            json_decref(value);
            return patch_fail(err, "%s operation does not apply: index \"%.40s\" is out of bounds at %.200s",
                              op, last, path);
        }
        rc = json_array_insert_new(parent, (size_t)ix, value);
    } else {
        json_decref(value);
        return patch_fail(err, "%s operation does not apply: doc is missing path: \"%.200s\"", op, path);
    }
    return rc == 0 ? 0 : patch_nomem(err);
}

/* Removes the value at p; *taken (when not NULL) gets it (a new reference). */
static int jp_remove(json_t *root, const struct jp_ptr *p, const char *path, json_t **taken,
                     const char *op, const char **err)
{
    if (p->n == 0)
        return patch_fail(err, "%s operation does not apply: the whole document cannot be removed", op);
    json_t *parent = jp_walk(root, p, p->n - 1);
    const char *last = p->tok[p->n - 1];
    json_t *v = NULL;
    if (json_is_object(parent)) {
        v = json_object_get(parent, last);
        if (v) {
            if (taken)
                *taken = json_incref(v);
            json_object_del(parent, last);
            return 0;
        }
    } else if (json_is_array(parent)) {
        long long ix = jp_index(last);
        if (ix >= 0 && (size_t)ix < json_array_size(parent)) {
            if (taken)
                *taken = json_incref(json_array_get(parent, (size_t)ix));
            json_array_remove(parent, (size_t)ix);
            return 0;
        }
    }
    return patch_fail(err, "%s operation does not apply: doc is missing path: \"%.200s\"", op, path);
}

static int jp_one(json_t **root, json_t *op, size_t i, size_t *copied, const char **err)
{
    struct jp_ptr p = {0}, from = {0};
    int rc = 0;
    if (!json_is_object(op))
        return patch_fail(err, "invalid JSON patch operation %zu: not an object", i);
    json_t *jop = json_object_get(op, "op");
    if (!json_is_string(jop))
        return patch_fail(err, "invalid JSON patch operation %zu: missing \"op\"", i);
    const char *name = json_string_value(jop);
    json_t *jpath = json_object_get(op, "path");
    if (!jpath)
        return patch_fail(err, "invalid JSON patch operation %zu (%.20s): missing \"path\"", i, name);
    if ((rc = jp_parse(jpath, "path", &p, err)) < 0)
        goto out;
    const char *path = json_string_value(jpath);
    json_t *value = json_object_get(op, "value");

    if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0 || strcmp(name, "test") == 0) {
        if (!value) {
            rc = patch_fail(err, "invalid JSON patch operation %zu (%s at %.200s): missing \"value\"", i,
                            name, path);
            goto out;
        }
    }
    if (strcmp(name, "add") == 0) {
        json_t *c = json_deep_copy(value);
        rc = c ? jp_add(root, &p, path, c, "add", err) : patch_nomem(err);
    } else if (strcmp(name, "remove") == 0) {
        rc = jp_remove(*root, &p, path, NULL, "remove", err);
    } else if (strcmp(name, "replace") == 0) {
        json_t *c = json_deep_copy(value);
        if (!c) {
            rc = patch_nomem(err);
            goto out;
        }
        if (p.n == 0) {
            json_decref(*root);
            *root = c;
            goto out;
        }
        json_t *parent = jp_walk(*root, &p, p.n - 1);
        const char *last = p.tok[p.n - 1];
        long long ix = json_is_array(parent) ? jp_index(last) : -1;
        if (json_is_object(parent) && json_object_get(parent, last)) {
            rc = json_object_set_new(parent, last, c) == 0 ? 0 : patch_nomem(err);
        } else if (ix >= 0 && (size_t)ix < json_array_size(parent)) {
            rc = json_array_set_new(parent, (size_t)ix, c) == 0 ? 0 : patch_nomem(err);
        } else {
            json_decref(c);
            rc = patch_fail(err, "replace operation does not apply: doc is missing path: \"%.200s\"", path);
        }
    } else if (strcmp(name, "test") == 0) {
        json_t *cur = jp_walk(*root, &p, p.n);
        if (!patch_equal(cur, value, 0))
            rc = patch_fail(err, "the test operation failed at %.200s", path[0] ? path : "/ (the whole document)");
    } else if (strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) {
        json_t *jfrom = json_object_get(op, "from");
        if (!jfrom) {
            rc = patch_fail(err, "invalid JSON patch operation %zu (%s to %.200s): missing \"from\"", i,
                            name, path);
            goto out;
        }
        if ((rc = jp_parse(jfrom, "from", &from, err)) < 0)
            goto out;
        const char *fpath = json_string_value(jfrom);
        json_t *src = jp_walk(*root, &from, from.n);
        if (!src) {
            rc = patch_fail(err, "%s operation does not apply: doc is missing from path: \"%.200s\"", name,
                            fpath);
            goto out;
        }
        if (name[0] == 'c') {
            *copied += patch_count_nodes(src, AS_PATCH_MAX_COPY_NODES + 1, 0);
            if (*copied > AS_PATCH_MAX_COPY_NODES) {
                rc = patch_fail(err, "the copy operations of the patch copy more than %u values",
                                AS_PATCH_MAX_COPY_NODES);
                goto out;
            }
            json_t *c = json_deep_copy(src);
            rc = c ? jp_add(root, &p, path, c, "copy", err) : patch_nomem(err);
        } else {
            size_t fl = strlen(fpath);
            if (strcmp(fpath, path) == 0)
                goto out; /* moving a value onto itself changes nothing */
            if (strncmp(path, fpath, fl) == 0 && path[fl] == '/') {
                rc = patch_fail(err, "move operation does not apply: %.150s cannot be moved into its own child %.150s",
                                fpath, path);
                goto out;
            }
            json_t *v = NULL;
            if ((rc = jp_remove(*root, &from, fpath, &v, "move", err)) < 0)
                goto out;
            rc = jp_add(root, &p, path, v, "move", err);
        }
    } else {
        rc = patch_fail(err, "invalid JSON patch operation %zu: unknown op \"%.40s\"", i, name);
    }
out:
    jp_free(&p);
    jp_free(&from);
    return rc;
}

/* Applies a whole JSON patch to *root (a working copy the caller owns). */
static int json_patch(json_t **root, json_t *patch, const char **err)
{
    if (!json_is_array(patch))
        return patch_fail(err, "invalid JSON patch: it must be an array of operations");
    if (json_array_size(patch) > AS_PATCH_MAX_OPS)
        return patch_fail(err, "the JSON patch has %zu operations, more than the %d allowed",
                          json_array_size(patch), AS_PATCH_MAX_OPS);
    size_t copied = 0;
    for (size_t i = 0; i < json_array_size(patch); i++) {
        int rc = jp_one(root, json_array_get(patch, i), i, &copied, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- merge keys of the built-in kinds --------------------------------------- */

/* A list field that is merged rather than replaced. key: the merge key of
 * its items (maps); NULL for lists of primitives merged as sets
 * (patchStrategy "merge" without patchMergeKey, e.g. finalizers). Paths are
 * the map keys from the object's root joined by '.'; list items add
 * nothing (containers' env is "spec.containers.env"). */
struct smp_rule {
    const char *path;
    const char *key;
};

static const struct smp_rule smp_meta_rules[] = {
    {"finalizers", NULL},
    {"ownerReferences", "uid"},
};

static const struct smp_rule smp_podspec_rules[] = {
    {"containers", "name"},
    {"initContainers", "name"},
    {"ephemeralContainers", "name"},
    {"volumes", "name"},
    {"imagePullSecrets", "name"},
    {"hostAliases", "ip"},
    {"topologySpreadConstraints", "topologyKey"},
    {"schedulingGates", "name"},
    {"resourceClaims", "name"},
};

/* Lists inside each of containers, initContainers, ephemeralContainers. */
static const struct smp_rule smp_container_rules[] = {
    {"ports", "containerPort"},
    {"env", "name"},
    {"volumeMounts", "mountPath"},
    {"volumeDevices", "devicePath"},
};

static const struct smp_rule smp_pod_rules[] = {
    {"status.conditions", "type"},
    {"status.podIPs", "ip"},
    {"status.hostIPs", "ip"},
};
static const struct smp_rule smp_deployment_rules[] = {
    {"status.conditions", "type"},
};
static const struct smp_rule smp_service_rules[] = {
    {"spec.ports", "port"},
    {"status.conditions", "type"},
};
static const struct smp_rule smp_namespace_rules[] = {
    {"status.conditions", "type"},
};
static const struct smp_rule smp_serviceaccount_rules[] = {
    {"secrets", "name"},
};

struct smp_kind {
    const char *kind;
    const char *podspec;      /* where a PodSpec sits ("spec."), or NULL */
    const char *pod_meta;     /* where a pod template's metadata sits, or NULL */
    const struct smp_rule *rules;
    size_t nrules;
};

#define RULES(r) r, sizeof r / sizeof r[0]
static const struct smp_kind smp_kinds[] = {
    {"Pod", "spec.", NULL, RULES(smp_pod_rules)},
    {"Deployment", "spec.template.spec.", "spec.template.metadata.", RULES(smp_deployment_rules)},
    {"Service", NULL, NULL, RULES(smp_service_rules)},
    {"Namespace", NULL, NULL, RULES(smp_namespace_rules)},
    {"ServiceAccount", NULL, NULL, RULES(smp_serviceaccount_rules)},
    {"ConfigMap", NULL, NULL, NULL, 0},
    {"Secret", NULL, NULL, NULL, 0},
    {"Event", NULL, NULL, NULL, 0},
    {"Lease", NULL, NULL, NULL, 0},
    {"CustomResourceDefinition", NULL, NULL, NULL, 0},
};
#undef RULES

static const struct smp_kind *smp_kind_find(const char *kind)
{
    if (!kind)
        return NULL;
    for (size_t i = 0; i < sizeof smp_kinds / sizeof smp_kinds[0]; i++)
        if (strcmp(smp_kinds[i].kind, kind) == 0)
            return &smp_kinds[i];
    return NULL;
}

/* Strips prefix from s; NULL when s does not start with it. */
static const char *smp_after(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

static const struct smp_rule *smp_in(const struct smp_rule *r, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(r[i].path, path) == 0)
            return &r[i];
    return NULL;
}

/* The rule for the list at path, or NULL: the list is replaced whole. */
static const struct smp_rule *smp_lookup(const struct smp_kind *k, const char *path)
{
    const char *rest;
    const struct smp_rule *r;
    if (!k)
        return NULL;
    if ((rest = smp_after(path, "metadata.")) && (r = smp_in(smp_meta_rules, 2, rest)))
        return r;
    if (k->pod_meta && (rest = smp_after(path, k->pod_meta)) && (r = smp_in(smp_meta_rules, 2, rest)))
        return r;
    if (k->podspec && (rest = smp_after(path, k->podspec))) {
        if ((r = smp_in(smp_podspec_rules, sizeof smp_podspec_rules / sizeof smp_podspec_rules[0], rest)))
            return r;
        static const char *const cs[] = {"containers.", "initContainers.", "ephemeralContainers."};
        for (size_t i = 0; i < 3; i++) {
            const char *sub = smp_after(rest, cs[i]);
            if (sub && (r = smp_in(smp_container_rules, 4, sub)))
                return r;
        }
    }
    return smp_in(k->rules, k->nrules, path);
}

/* --- strategic merge patch ------------------------------------------------- */

#define SMP_PATH_MAX 512

struct smp {
    const struct smp_kind *kind;
    const char **err;
    char path[SMP_PATH_MAX];   /* map keys from the root, '.'-joined */
    size_t plen;
    int overflow;              /* path did not fit: no rule applies below */
    int apply;                 /* server-side apply rather than a strategic patch */
};

static size_t smp_push(struct smp *x, const char *key)
{
    size_t saved = x->plen;
    size_t kl = strlen(key);
    if (x->overflow || x->plen + kl + 2 > sizeof x->path) {
        x->overflow++;
        return saved;
    }
    if (x->plen)
        x->path[x->plen++] = '.';
    memcpy(x->path + x->plen, key, kl + 1);
    x->plen += kl;
    return saved;
}

static void smp_pop(struct smp *x, size_t saved)
{
    if (x->overflow) {
        x->overflow--;
        return;
    }
    x->plen = saved;
    x->path[saved] = '\0';
}

static const struct smp_rule *smp_rule_here(struct smp *x)
{
    return x->overflow ? NULL : smp_lookup(x->kind, x->path);
}

static const char *smp_where(struct smp *x)
{
    return x->plen ? x->path : "the object";
}

static int smp_map(struct smp *x, json_t *orig, json_t *patch, unsigned depth);
static int smp_list(struct smp *x, json_t *orig, json_t *patch, const struct smp_rule *rule,
                    json_t *order, unsigned depth);
static int apply_map(struct smp *x, json_t *live, json_t *applied, unsigned depth);

/* A patch value for a field the object does not have: merged into an empty
 * value of its type, so that directives and nulls in it do not end up
 * stored (Kubernetes drops them when it decodes into the typed object). */
static json_t *smp_fresh(struct smp *x, json_t *v, unsigned depth)
{
    json_t *out = NULL;
    int rc;
    if (json_is_object(v)) {
        out = json_object();
        if (!out) {
            patch_nomem(x->err);
            return NULL;
        }
        rc = x->apply ? apply_map(x, out, v, depth) : smp_map(x, out, v, depth);
    } else if (json_is_array(v)) {
        /* Kubernetes takes a new list as sent: items are not merged with
         * each other, only their directives go ("$patch": "delete" items,
         * a lone "$patch": "replace" marker) */
        out = json_array();
        if (!out) {
            patch_nomem(x->err);
            return NULL;
        }
        rc = 0;
        for (size_t i = 0; i < json_array_size(v) && rc == 0; i++) {
            json_t *e = json_array_get(v, i);
            const char *d = json_string_value(json_object_get(e, "$patch"));
            if (!x->apply && d && (strcmp(d, "delete") == 0 || json_object_size(e) == 1))
                continue;
            json_t *c = smp_fresh(x, e, depth + 1);
            rc = !c ? -EINVAL : json_array_append_new(out, c) == 0 ? 0 : patch_nomem(x->err);
        }
    } else {
        out = json_copy(v);
        if (!out)
            patch_nomem(x->err);
        return out;
    }
    if (rc < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* Sets orig[key] to a fresh copy of v. */
static int smp_set_fresh(struct smp *x, json_t *orig, const char *key, json_t *v, unsigned depth)
{
    json_t *c = smp_fresh(x, v, depth + 1);
    if (!c)
        return -EINVAL;
    if (json_object_set_new(orig, key, c) != 0)
        return patch_nomem(x->err);
    return 0;
}

/* The merge key's value of a list item, or the item itself for primitives. */
static json_t *smp_item_id(json_t *item, const char *key)
{
    return key && json_is_object(item) ? json_object_get(item, key) : item;
}

/* List items are found by their identity (merge key value, or the value
 * itself) through an index: a jansson object from a canonical text of the
 * identity to the item's position. Lists of thousands of containers or
 * finalizers then merge in O(n), not O(n^2). */

/* Equal identities give equal texts; 1 and 1.0 are the same number. */
static char *smp_id_text(json_t *id)
{
    if (!id)
        return NULL;
    if (json_is_real(id)) {
        double d = json_real_value(id);
        if (d >= -9.2e18 && d <= 9.2e18 && (double)(long long)d == d) {
            json_t *i = json_integer((long long)d);
            char *t = i ? json_dumps(i, JSON_ENCODE_ANY) : NULL;
            json_decref(i);
            return t;
        }
    }
    return json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* Records item (its identity) at pos unless an earlier item has it.
 * Items without an identity are not indexed. */
static int smp_index_add(struct smp *x, json_t *idx, json_t *item, const char *key, size_t pos)
{
    json_t *id = smp_item_id(item, key);
    if (!id)
        return 0;
    char *t = smp_id_text(id);
    if (!t)
        return patch_nomem(x->err);
    int rc = 0;
    if (!json_object_get(idx, t) && json_object_set_new(idx, t, json_integer((json_int_t)pos)) != 0)
        rc = patch_nomem(x->err);
    free(t);
    return rc;
}

static json_t *smp_index_new(struct smp *x, json_t *list, const char *key)
{
    json_t *idx = json_object();
    if (!idx) {
        patch_nomem(x->err);
        return NULL;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        if (smp_index_add(x, idx, json_array_get(list, i), key, i) < 0) {
            json_decref(idx);
            return NULL;
        }
    }
    return idx;
}

/* Position of the identity id in the indexed list, or -1. */
static long smp_index_find(json_t *idx, json_t *id)
{
    char *t = smp_id_text(id);
    if (!t)
        return -1;
    json_t *p = json_object_get(idx, t);
    free(t);
    return p ? (long)json_integer_value(p) : -1;
}

/* Removes from list (in place) the items whose identity is in drop. */
static void smp_remove_ids(json_t *list, json_t *drop, const char *key)
{
    for (size_t j = json_array_size(list); j-- > 0;) {
        json_t *id = smp_item_id(json_array_get(list, j), key);
        if (id && smp_index_find(drop, id) >= 0)
            json_array_remove(list, j);
    }
}

struct smp_slot {
    json_t *item;
    long pos;     /* position in the order list; -1: not in it */
    long server;  /* position in the server's list; -1: not in it */
    size_t seq;   /* position in the merged list, for a stable sort */
};

static int smp_slot_cmp(const void *a, const void *b)
{
    const struct smp_slot *x = a, *y = b;
    unsigned long px = x->pos < 0 ? ~0ul : (unsigned long)x->pos;
    unsigned long py = y->pos < 0 ? ~0ul : (unsigned long)y->pos;
    if (px != py)
        return px < py ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Reorders merged (in place) as Kubernetes' normalizeElementOrder does:
 * the items named in order (the patch list, or $setElementOrder) come in
 * that order, and the items only the server had are slotted in between by
 * their position in server (the list before the patch). */
static int smp_reorder(struct smp *x, json_t *merged, json_t *order, json_t *server, const char *key)
{
    size_t n = json_array_size(merged), np = 0, ns = 0;
    if (n < 2)
        return 0;
    struct smp_slot *ps = calloc(n, sizeof *ps), *ss = calloc(n, sizeof *ss);
    json_t *out = json_array();
    json_t *oidx = smp_index_new(x, order, key), *sidx = smp_index_new(x, server, key);
    int rc = 0;
    if (!ps || !ss || !out || !oidx || !sidx) {
        rc = patch_nomem(x->err);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(merged, i);
        json_t *id = smp_item_id(it, key);
        long p = id ? smp_index_find(oidx, id) : -1;
        struct smp_slot *slot = p >= 0 ? &ps[np++] : &ss[ns++];
        slot->item = it;
        slot->seq = i;
        slot->server = id ? smp_index_find(sidx, id) : -1;
        slot->pos = p >= 0 ? p : slot->server;
    }
    qsort(ps, np, sizeof *ps, smp_slot_cmp);
    qsort(ss, ns, sizeof *ss, smp_slot_cmp);
    /* mergeSortedSlice: a server-only item goes first only when both it and
     * the next patch item are in the server list and it came before it. */
    size_t i = 0, j = 0;
    while (i < ns || j < np) {
        json_t *next;
        if (i >= ns) {
            next = ps[j++].item;
        } else if (j >= np) {
            next = ss[i++].item;
        } else if (ss[i].server >= 0 && ps[j].server >= 0 && ss[i].server < ps[j].server) {
            next = ss[i++].item;
        } else {
            next = ps[j++].item;
        }
        if (json_array_append(out, next) != 0) {
            rc = patch_nomem(x->err);
            goto out;
        }
    }
    if (json_array_clear(merged) != 0 || json_array_extend(merged, out) != 0)
        rc = patch_nomem(x->err);
out:
    free(ps);
    free(ss);
    json_decref(out);
    json_decref(oidx);
    json_decref(sidx);
    return rc;
}

/* apimachinery's validatePatchWithSetOrderList: the patch list's items
 * (deletions and directives aside) must appear in $setElementOrder, in the
 * same relative order. */
static int smp_check_order(struct smp *x, json_t *list, json_t *order, const char *key)
{
    size_t pi = 0, oi = 0, n = json_array_size(list), no = json_array_size(order);
    if (n == 0 || no == 0)
        return 0;
    while (pi < n && oi < no) {
        json_t *e = json_array_get(list, pi);
        if (key && json_is_object(e) && json_object_get(e, "$patch")) {
            pi++;
            continue;
        }
        json_t *a = smp_item_id(e, key), *b = smp_item_id(json_array_get(order, oi), key);
        if (!a || !b || (key && (!json_is_object(e) || !json_is_object(json_array_get(order, oi)))))
            return patch_fail(x->err, "%s: an item of the list or of its $setElementOrder has no merge key \"%s\"",
                              smp_where(x), key ? key : "");
        if (patch_equal(a, b, 0))
            pi++;
        oi++;
    }
    while (pi < n && key && json_is_object(json_array_get(list, pi)) &&
           json_object_get(json_array_get(list, pi), "$patch"))
        pi++;
    if (pi < n)
        return patch_fail(x->err, "%s: the order in the patch list doesn't match its $setElementOrder list",
                          smp_where(x));
    return 0;
}

/* Merges the patch list into orig (in place) for a list with a merge
 * strategy. order: the $setElementOrder list for this field, or NULL (the
 * patch list gives the order). */
static int smp_list(struct smp *x, json_t *orig, json_t *patch, const struct smp_rule *rule,
                    json_t *order, unsigned depth)
{
    int rc = 0, maps = 0, scalars = 0, replace = 0;
    json_t *server = NULL, *plain = NULL, *idx = NULL, *drop = NULL;
    if (depth > AS_PATCH_MAX_DEPTH)
        return patch_fail(x->err, "the patch is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);
    for (int pass = 0; pass < 2; pass++) {
        json_t *l = pass ? patch : orig;
        for (size_t i = 0; i < json_array_size(l); i++) {
            json_t *e = json_array_get(l, i);
            if (json_is_object(e))
                maps = 1;
            else if (json_is_array(e))
                return patch_fail(x->err, "%s: lists of lists cannot be merged", smp_where(x));
            else
                scalars = 1;
        }
    }
    if (maps && scalars)
        return patch_fail(x->err, "%s: the list mixes objects and values and cannot be merged",
                          smp_where(x));
    server = json_array();
    plain = json_array();
    drop = json_object();
    if (!server || !plain || !drop || json_array_extend(server, orig) != 0) {
        rc = patch_nomem(x->err);
        goto out;
    }
    if (scalars || !maps) {
        /* a set of primitives: union, each value once */
        if (!(idx = smp_index_new(x, orig, NULL))) {
            rc = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < json_array_size(patch); i++) {
            json_t *e = json_array_get(patch, i);
            if (json_array_append(plain, e) != 0) {
                rc = patch_nomem(x->err);
                goto out;
            }
            if (smp_index_find(idx, e) < 0) {
                json_t *c = json_copy(e);
                if (!c || json_array_append_new(orig, c) != 0 ||
                    smp_index_add(x, idx, c, NULL, json_array_size(orig) - 1) < 0) {
                    rc = patch_nomem(x->err);
                    goto out;
                }
            }
        }
        rc = smp_reorder(x, orig, order ? order : plain, server, NULL);
        goto out;
    }
    const char *key = rule->key;
    if (!key) {
        rc = patch_fail(x->err, "%s: cannot merge lists of objects without a merge key", smp_where(x));
        goto out;
    }
    /* special items first: $patch delete removes by key, replace drops orig */
    for (size_t i = 0; i < json_array_size(patch); i++) {
        json_t *e = json_array_get(patch, i);
        json_t *d = json_object_get(e, "$patch");
        if (!d) {
            if (json_array_append(plain, e) != 0) {
                rc = patch_nomem(x->err);
                goto out;
            }
            continue;
        }
        const char *ds = json_string_value(d);
        if (ds && strcmp(ds, "delete") == 0) {
            if (!json_object_get(e, key)) {
                rc = patch_fail(x->err, "%s: an item with \"$patch\": \"delete\" has no merge key \"%s\"",
                                smp_where(x), key);
                goto out;
            }
            if ((rc = smp_index_add(x, drop, e, key, i)) < 0)
                goto out;
        } else if (ds && strcmp(ds, "replace") == 0) {
            replace = 1;
        } else if (!ds || strcmp(ds, "merge") != 0) {
            rc = patch_fail(x->err, "%s: unknown \"$patch\" directive %s%.40s%s in a list item",
                            smp_where(x), ds ? "\"" : "", ds ? ds : "(not a string)", ds ? "\"" : "");
            goto out;
        } else if (json_object_size(e) > 1) {
            /* "$patch": "merge" is the default: an ordinary item */
            if (json_array_append(plain, e) != 0) {
                rc = patch_nomem(x->err);
                goto out;
            }
        }
    }
    size_t deleted = 0;
    if (replace) {
        json_array_clear(orig);
    } else if (json_object_size(drop)) {
        size_t before = json_array_size(orig);
        smp_remove_ids(orig, drop, key);
        deleted = before - json_array_size(orig);
    }
    /* The server order Kubernetes uses with $setElementOrder is the live
     * list as apimachinery leaves it in memory: the items that remain,
     * then, in the slots deleted items freed, the first new items (its
     * slices share their backing array). Mirrored so that kubectl apply
     * orders items exactly as a real apiserver does. */
    json_array_clear(server);
    if (json_array_extend(server, orig) != 0) {
        rc = patch_nomem(x->err);
        goto out;
    }
    if (!(idx = smp_index_new(x, orig, key))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < json_array_size(plain); i++) {
        json_t *e = json_array_get(plain, i);
        json_t *id = json_object_get(e, key);
        if (!id) {
            rc = patch_fail(x->err, "%s: an item has no merge key \"%s\"", smp_where(x), key);
            goto out;
        }
        long at = smp_index_find(idx, id);
        if (at >= 0) {
            json_t *o = json_array_get(orig, (size_t)at);
            if ((rc = smp_map(x, o, e, depth + 1)) < 0)
                goto out;
        } else {
            json_t *c = smp_fresh(x, e, depth + 1);
            if (!c) {
                rc = -EINVAL;
                goto out;
            }
            if (json_array_append_new(orig, c) != 0 ||
                smp_index_add(x, idx, e, key, json_array_size(orig) - 1) < 0) {
                rc = patch_nomem(x->err);
                goto out;
            }
            if (order && deleted > 0) {
                deleted--;
                if (json_array_append(server, c) != 0) {
                    rc = patch_nomem(x->err);
                    goto out;
                }
            }
        }
    }
    if (!replace)
        rc = smp_reorder(x, orig, order ? order : plain, server, key);
out:
    json_decref(server);
    json_decref(plain);
    json_decref(idx);
    json_decref(drop);
    return rc;
}

static int smp_has_replace(json_t *list)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *d = json_string_value(json_object_get(json_array_get(list, i), "$patch"));
        if (d && strcmp(d, "replace") == 0)
            return 1;
    }
    return 0;
}

static int smp_is_directive_key(const char *k)
{
    return strcmp(k, "$patch") == 0 || strcmp(k, "$retainKeys") == 0 ||
           strncmp(k, "$deleteFromPrimitiveList/", 25) == 0 || strncmp(k, "$setElementOrder/", 17) == 0;
}

static int smp_map(struct smp *x, json_t *orig, json_t *patch, unsigned depth)
{
    const char *k;
    json_t *v;
    int rc;
    if (depth > AS_PATCH_MAX_DEPTH)
        return patch_fail(x->err, "the patch is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);

    json_t *d = json_object_get(patch, "$patch");
    if (d) {
        const char *ds = json_string_value(d);
        if (ds && strcmp(ds, "delete") == 0) {
            json_object_clear(orig);
            return 0;
        }
        if (ds && strcmp(ds, "replace") == 0) {
            json_object_clear(orig);
        } else if (!ds || strcmp(ds, "merge") != 0) {
            return patch_fail(x->err, "%s: unknown \"$patch\" directive %s%.40s%s", smp_where(x),
                              ds ? "\"" : "", ds ? ds : "(not a string)", ds ? "\"" : "");
        }
    }

    json_t *retain = json_object_get(patch, "$retainKeys");
    if (retain) {
        if (!json_is_array(retain))
            return patch_fail(x->err, "%s: \"$retainKeys\" must be a list of field names", smp_where(x));
        for (size_t i = 0; i < json_array_size(retain); i++)
            if (!json_is_string(json_array_get(retain, i)))
                return patch_fail(x->err, "%s: \"$retainKeys\" must be a list of field names",
                                  smp_where(x));
        json_t *keep = json_object();
        if (!keep)
            return patch_nomem(x->err);
        for (size_t i = 0; i < json_array_size(retain); i++)
            if (json_object_set(keep, json_string_value(json_array_get(retain, i)), json_null()) != 0) {
                json_decref(keep);
                return patch_nomem(x->err);
            }
        /* every field the patch sets must be one of the retained keys */
        json_object_foreach(patch, k, v) {
            if (json_is_null(v) || smp_is_directive_key(k) || json_object_get(keep, k))
                continue;
            json_decref(keep);
            return patch_fail(x->err, "%s: the patch sets \"%.100s\", which \"$retainKeys\" does not list",
                              smp_where(x), k);
        }
        void *it = json_object_iter(orig);
        while (it) {
            const char *ok = json_object_iter_key(it);
            void *next = json_object_iter_next(orig, it);
            if (!json_object_get(keep, ok))
                json_object_del(orig, ok);
            it = next;
        }
        json_decref(keep);
    }

    json_object_foreach(patch, k, v) {
        if (smp_is_directive_key(k))
            continue;
        if (json_is_null(v)) {
            json_object_del(orig, k);
            continue;
        }
        size_t saved = smp_push(x, k);
        json_t *o = json_object_get(orig, k);
        if (json_is_array(v) && strlen(k) < SMP_PATH_MAX) {
            char ok[SMP_PATH_MAX + 20];
            snprintf(ok, sizeof ok, "$setElementOrder/%s", k);
            json_t *order = json_object_get(patch, ok);
            const struct smp_rule *rule = smp_rule_here(x);
            if (rule && json_is_array(order) && (rc = smp_check_order(x, v, order, rule->key)) < 0) {
                smp_pop(x, saved);
                return rc;
            }
        }
        if (!o || json_typeof(o) != json_typeof(v) || (!json_is_object(v) && !json_is_array(v))) {
            if (!o && json_is_object(v)) {
                json_t *dv = json_object_get(v, "$patch");
                if (json_is_string(dv) && strcmp(json_string_value(dv), "delete") == 0) {
                    smp_pop(x, saved);
                    continue;
                }
            }
            rc = smp_set_fresh(x, orig, k, v, depth);
        } else if (json_is_object(v)) {
            rc = smp_map(x, o, v, depth + 1);
        } else {
            const struct smp_rule *rule = smp_rule_here(x);
            if (rule) {
                size_t before = json_array_size(o);
                char ok[SMP_PATH_MAX + 20];
                json_t *order = NULL;
                if (strlen(k) < SMP_PATH_MAX) {
                    snprintf(ok, sizeof ok, "$setElementOrder/%s", k);
                    order = json_object_get(patch, ok);
                }
                rc = smp_list(x, o, v, rule, json_is_array(order) ? order : NULL, depth + 1);
                /* emptied by deletions: gone, as the typed object's
                 * omitempty field would be; "$patch": "replace" with
                 * nothing else leaves [] as asked */
                if (rc == 0 && before && json_array_size(o) == 0 && !smp_has_replace(v))
                    json_object_del(orig, k);
            } else {
                rc = smp_set_fresh(x, orig, k, v, depth);
            }
        }
        smp_pop(x, saved);
        if (rc < 0)
            return rc;
    }

    /* deletions from primitive lists after merges into them, as
     * apimachinery's mergeMap does */
    json_object_foreach(patch, k, v) {
        const char *field = smp_after(k, "$deleteFromPrimitiveList/");
        if (!field)
            continue;
        if (!json_is_array(v))
            return patch_fail(x->err, "%s: \"%.100s\" must be a list", smp_where(x), k);
        json_t *l = json_object_get(orig, field);
        if (!json_is_array(l))
            continue;
        size_t before = json_array_size(l);
        json_t *drop = smp_index_new(x, v, NULL);
        if (!drop)
            return -ENOMEM;
        smp_remove_ids(l, drop, NULL);
        json_decref(drop);
        if (before && json_array_size(l) == 0)
            json_object_del(orig, field);
    }

    /* $setElementOrder of lists the patch did not otherwise touch */
    json_object_foreach(patch, k, v) {
        const char *field = smp_after(k, "$setElementOrder/");
        if (!field)
            continue;
        if (!json_is_array(v))
            return patch_fail(x->err, "%s: \"%.100s\" must be a list", smp_where(x), k);
        json_t *l = json_object_get(orig, field);
        if (!json_is_array(l) || json_is_array(json_object_get(patch, field)))
            continue; /* absent, or already ordered when its patch list merged */
        size_t saved = smp_push(x, field);
        const struct smp_rule *rule = smp_rule_here(x);
        smp_pop(x, saved);
        const char *key = rule ? rule->key : NULL;
        json_t *server = json_array();
        if (!server)
            return patch_nomem(x->err);
        rc = json_array_extend(server, l) == 0 ? smp_reorder(x, l, v, server, key) : patch_nomem(x->err);
        json_decref(server);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- server-side apply (no field managers) ---------------------------------- */

/* Lists merged by key, or as sets of primitives, for the built-in kinds;
 * every other list is replaced by the applied one. Items only the live
 * object has are kept: without managedFields nothing says whether they
 * were applied before, so removing them could take what another writer
 * (a controller, kubectl patch) set. */
static int apply_list(struct smp *x, json_t *live, json_t *applied, const struct smp_rule *rule,
                      unsigned depth)
{
    int rc = 0;
    if (depth > AS_PATCH_MAX_DEPTH)
        return patch_fail(x->err, "the object is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);
    json_t *idx = smp_index_new(x, live, rule->key);
    if (!idx)
        return -ENOMEM;
    for (size_t i = 0; i < json_array_size(applied) && rc == 0; i++) {
        json_t *e = json_array_get(applied, i);
        json_t *id = smp_item_id(e, rule->key);
        if (rule->key && (!json_is_object(e) || !id)) {
            rc = patch_fail(x->err, "%s[%zu]: the item has no \"%s\" (its merge key)", smp_where(x), i,
                            rule->key);
            break;
        }
        long at = smp_index_find(idx, id);
        if (at >= 0 && rule->key && json_is_object(json_array_get(live, (size_t)at))) {
            rc = apply_map(x, json_array_get(live, (size_t)at), e, depth + 1);
        } else if (at < 0) {
            json_t *c = smp_fresh(x, e, depth + 1);
            if (!c)
                rc = -EINVAL;
            else if (json_array_append_new(live, c) != 0 ||
                     smp_index_add(x, idx, e, rule->key, json_array_size(live) - 1) < 0)
                rc = patch_nomem(x->err);
        }
    }
    json_decref(idx);
    return rc;
}

static int apply_map(struct smp *x, json_t *live, json_t *applied, unsigned depth)
{
    const char *k;
    json_t *v;
    if (depth > AS_PATCH_MAX_DEPTH)
        return patch_fail(x->err, "the object is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);
    json_object_foreach(applied, k, v) {
        int rc;
        if (json_is_null(v)) {
            json_object_del(live, k);
            continue;
        }
        size_t saved = smp_push(x, k);
        json_t *o = json_object_get(live, k);
        if (o && json_is_object(o) && json_is_object(v)) {
            rc = apply_map(x, o, v, depth + 1);
        } else if (o && json_is_array(o) && json_is_array(v) && smp_rule_here(x)) {
            rc = apply_list(x, o, v, smp_rule_here(x), depth + 1);
        } else {
            rc = smp_set_fresh(x, live, k, v, depth);
        }
        smp_pop(x, saved);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* --- entry point ----------------------------------------------------------- */

/* The patched copy replaces the caller's object only once the whole patch
 * succeeded: updating the object in place could fail half-way (ENOMEM). */
static void patch_commit(json_t **obj, json_t *work)
{
    json_decref(*obj);
    *obj = work;
}

int as_patch_apply(enum as_patch_type type, const char *kind, json_t **obj, json_t *patch,
                   const char **err)
{
    const char *dummy = NULL;
    json_t *work = NULL;
    int rc = 0;
    if (!err)
        err = &dummy;
    *err = NULL;
    if (!obj || !*obj || !patch)
        return patch_fail(err, "no object or no patch");
    if (patch_depth_of(patch, 0) > AS_PATCH_MAX_DEPTH)
        return patch_fail(err, "the patch is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);
    if (type == AS_PATCH_STRATEGIC && !smp_kind_find(kind))
        return *err = "strategic merge patch is not supported for custom resources", -ENOTSUP;
    if (type != AS_PATCH_JSON && !json_is_object(patch))
        return patch_fail(err, "the patch must be a JSON object, not %s",
                          json_is_array(patch) ? "a list" : "a value");
    if (type < AS_PATCH_MERGE || type > AS_PATCH_APPLY)
        return patch_fail(err, "unknown patch type");
    work = json_is_object(*obj) || type == AS_PATCH_JSON ? json_deep_copy(*obj) : json_object();
    if (!work)
        return patch_nomem(err);

    switch (type) {
    case AS_PATCH_MERGE:
        work = merge_patch(work, patch, err);
        rc = work ? 0 : -EINVAL;
        break;
    case AS_PATCH_JSON:
        rc = json_patch(&work, patch, err);
        break;
    case AS_PATCH_STRATEGIC:
    case AS_PATCH_APPLY: {
        struct smp *x = calloc(1, sizeof *x);
        if (!x) {
            rc = patch_nomem(err);
            break;
        }
        x->kind = smp_kind_find(kind);
        x->err = err;
        x->apply = type == AS_PATCH_APPLY;
        rc = x->apply ? apply_map(x, work, patch, 0) : smp_map(x, work, patch, 0);
        free(x);
        break;
    }
    }
    if (rc == 0 && patch_depth_of(work, 0) > AS_PATCH_MAX_DEPTH)
        rc = patch_fail(err, "the patched object is nested more than %d levels deep", AS_PATCH_MAX_DEPTH);
    if (rc < 0) {
        json_decref(work);
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    patch_commit(obj, work);
    return 0;
}
