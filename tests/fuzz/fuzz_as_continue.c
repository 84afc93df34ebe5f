/* libFuzzer target for the list continue token (apiserver/store.c): the
 * token comes back from clients in ?continue=, so it is outside input. The
 * input is decoded as a token for a fixed resource, with and without a
 * namespace.
 *
 * Contracts checked: a token is either refused with -EINVAL or yields a
 * key of that resource (and namespace) and an RV; an accepted token made
 * again from what it yielded is accepted again with the same key and RV. */
#include "apiserver/store.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *tok, const char *ns)
{
    json_t *j = NULL, *j2 = NULL;
    const char *tns = NULL, *tname = NULL, *ns2 = NULL, *name2 = NULL;
    uint64_t rv = 0, rv2 = 0;
    char *again;
    int rc = as_cont_parse(tok, "apps/deployments", ns, &j, &tns, &tname, &rv);
    if (rc != 0) {
        if (rc != -EINVAL || j)
            abort();
        return;
    }
    if (!j || !tns || !tname || !*tname || (ns && strcmp(ns, tns) != 0) || rv > INT64_MAX)
        abort();
    again = as_cont_make("apps/deployments", tns, tname, rv);
    if (again) {
        if (as_cont_parse(again, "apps/deployments", ns, &j2, &ns2, &name2, &rv2) != 0)
            abort();
        if (strcmp(ns2, tns) != 0 || strcmp(name2, tname) != 0 || rv2 != rv)
            abort();
        json_decref(j2);
        j2 = NULL;
        /* bound to its resource */
        if (as_cont_parse(again, "/pods", NULL, &j2, &ns2, &name2, &rv2) == 0)
            abort();
        free(again);
    }
    json_decref(j2);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;
    if (size > 8192)
        return 0;
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    check(s, NULL);
    check(s, "default");
    free(s);
    return 0;
}
