/* libFuzzer target for apiserver/select.c: the input is parsed as a label
 * selector and as a field selector (both come straight from query strings),
 * and each parsed selector is matched against fixed objects.
 *
 * Contracts checked: a parse either succeeds with no message or fails with
 * -EINVAL (or -ENOMEM), no selector and a non-empty message; a parsed label
 * selector has valid keys and values; a selector printed back the way
 * Kubernetes prints it parses again and selects the same objects; pinned()
 * returns a value only for an equality on that path. */
#include "apiserver/select.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *objs[3];

static void init_objs(void)
{
    static const char *const texts[] = {
        "{\"metadata\":{\"name\":\"web-1\",\"namespace\":\"prod\",\"labels\":{\"app\":\"web\","
        "\"tier\":\"frontend\",\"n\":\"3\",\"e\":\"\",\"example.com/x\":\"in\",\"a\":\"b\"}},"
        "\"involvedObject\":{\"kind\":\"Pod\",\"uid\":\"u\"},\"spec\":{\"r\":3,\"p\":true,"
        "\"s\":\"a,b=c\\\\d\"}}",
        "{\"metadata\":{\"name\":\"x\",\"labels\":{\"notin\":\"notin\",\"k\":\"-5\",\"bad\":1}}}",
        "{}",
    };
    for (size_t i = 0; i < 3; i++)
        objs[i] = json_loads(texts[i], 0, NULL);
}

/* Prints sel the way Requirement.String() does (fields: key op escaped
 * value). Returns a malloc'd string. */
static char *print_selector(const struct as_selector *sel)
{
    size_t cap = 64;
    for (size_t i = 0; i < sel->n; i++) {
        cap += strlen(sel->reqs[i].key) + 16;
        for (size_t k = 0; k < sel->reqs[i].nvals; k++)
            cap += 2 * strlen(sel->reqs[i].vals[k]) + 2;
    }
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < sel->n; i++) {
        const struct as_req *r = &sel->reqs[i];
        if (i)
            *p++ = ',';
        if (r->op == AS_SEL_NOT_EXISTS)
            *p++ = '!';
        p += sprintf(p, "%s", r->key);
        switch (r->op) {
        case AS_SEL_EQ: p += sprintf(p, "="); break;
        case AS_SEL_NE: p += sprintf(p, "!="); break;
        case AS_SEL_IN: p += sprintf(p, " in ("); break;
        case AS_SEL_NOTIN: p += sprintf(p, " notin ("); break;
        case AS_SEL_GT: p += sprintf(p, ">"); break;
        case AS_SEL_LT: p += sprintf(p, "<"); break;
        case AS_SEL_EXISTS:
        case AS_SEL_NOT_EXISTS: continue;
        }
        for (size_t k = 0; k < r->nvals; k++) {
            if (k)
                *p++ = ',';
            for (const char *v = r->vals[k]; *v; v++) {
                if (sel->fields && (*v == ',' || *v == '=' || *v == '\\'))
                    *p++ = '\\';
                *p++ = *v;
            }
        }
        if (r->op == AS_SEL_IN || r->op == AS_SEL_NOTIN)
            *p++ = ')';
    }
    *p = '\0';
    return out;
}

static void check_one(const char *s, int fields)
{
    struct as_selector *sel = (struct as_selector *)1, *again = NULL;
    const char *err = (const char *)1;
    int rc = fields ? as_field_selector_parse(s, &sel, &err) : as_label_selector_parse(s, &sel, &err);
    char *printed;
    if (rc != 0) {
        if ((rc != -EINVAL && rc != -ENOMEM) || sel != NULL || !err || !*err)
            abort();
        if (strlen(err) >= AS_ERR_MAX)
            abort();
        return;
    }
    if (!sel || err != NULL)
        abort();
    for (size_t i = 0; i < sel->n; i++) {
        const struct as_req *r = &sel->reqs[i];
        if (!fields) {
            struct as_msg m;
            as_msg_init(&m);
            if (as_qualified_name_errs(&m, r->key))
                abort();
            for (size_t k = 0; k < r->nvals; k++)
                if (!as_label_value_ok(r->vals[k]))
                    abort();
        }
        for (size_t k = 1; k < r->nvals; k++)
            if (strcmp(r->vals[k - 1], r->vals[k]) >= 0)
                abort();    /* sorted and distinct */
    }
    {
        const char *pin = as_selector_pinned(sel, "metadata.name");
        if (pin && !fields)
            abort();
        static const char *const paths[] = {"metadata.name", "metadata.namespace", NULL};
        const char *cerr = NULL;
        if (as_field_selector_check(sel, paths, &cerr) != 0 && !cerr)
            abort();
        if (pin) {
            /* an object whose name is pin satisfies that requirement at least */
            json_t *o = json_pack("{s:{s:s}}", "metadata", "name", pin);
            struct as_selector one = {1, NULL, 0};
            for (size_t i = 0; i < sel->n; i++)
                if (sel->reqs[i].op == AS_SEL_EQ && strcmp(sel->reqs[i].key, "metadata.name") == 0) {
                    one.reqs = &sel->reqs[i];
                    one.n = 1;
                    break;
                }
            if (o && one.n && !as_selector_match(&one, o))
                abort();
            json_decref(o);
        }
    }
    printed = print_selector(sel);
    if (printed) {
        const char *e2 = NULL;
        int rc2 = fields ? as_field_selector_parse(printed, &again, &e2)
                         : as_label_selector_parse(printed, &again, &e2);
        if (rc2 == -ENOMEM) {
            free(printed);
            as_selector_free(sel);
            return;
        }
        if (rc2 != 0)
            abort();
        for (size_t i = 0; i < 3; i++)
                if (objs[i] && as_selector_match(sel, objs[i]) != as_selector_match(again, objs[i]))
                    abort();
        as_selector_free(again);
        free(printed);
    }
    for (size_t i = 0; i < 3; i++)
        if (objs[i])
            (void)as_selector_match(sel, objs[i]);
    as_selector_free(sel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    if (!objs[0])
        init_objs();
    if (size > 4096)
        return 0;
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check_one(s, 0);
    check_one(s, 1);
    free(s);
    return 0;
}
