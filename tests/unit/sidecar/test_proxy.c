/* Unit tests for the pure parts of sidecar/proxy.c: the upstream request
 * head (hop-by-hop headers out, ours in), x-request-id and W3C traceparent
 * handling, the JSON string escaping of error bodies; and of issue 5: the
 * model splice of model fallbacks, context-length detection, retry
 * conditions, the policy registry's reuse across tables, the admission
 * poller's /metrics parser. */
#define _GNU_SOURCE
#include "sidecar/config.c"
#include "sidecar/route.c"
#include "sidecar/proxy.c"
#include "sidecar/policy.c"
#include "sidecar/breaker.c"
#include "sidecar/budget.c"
#include "sidecar/ratelimit.c"
#include "sidecar/reqscan.c"
#include "sidecar/sse.c"
#include "sidecar/admission.c"

#include "tests/unit/test.h"

struct sc_state sc_g;

static struct mg_h1_msg msg;

static const struct mg_h1_msg *parse(const char *head)
{
    struct mg_h1_parser p;
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    int rc = mg_h1_parse_head(&p, head, strlen(head), &msg);
    if (rc <= 0) {
        printf("# parse failed: %s\n", p.err.reason);
        return NULL;
    }
    return &msg;
}

static int has_line(const struct mg_buf *b, const char *line)
{
    size_t l = strlen(line);
    const char *p = mg_buf_head(b), *end = p + b->len;
    while (p < end) {
        const char *e = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!e)
            return 0;
        if ((size_t)(e - p) == l && strncasecmp(p, line, l) == 0)
            return 1;
        p = e + 2;
    }
    return 0;
}

static int has_name(const struct mg_buf *b, const char *name)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\r\n%s:", name);
    return memmem(mg_buf_head(b), b->len, pat, strlen(pat)) != NULL;
}

static void t_upstream_head(void)
{
    const struct mg_h1_msg *m = parse(
        "POST /v1/chat/completions?x=1 HTTP/1.1\r\n"
        "Host: api.example\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 17\r\n"
        "Connection: keep-alive, X-Secret-Hop\r\n"
        "Keep-Alive: timeout=5\r\n"
        "X-Secret-Hop: 1\r\n"
        "TE: trailers\r\n"
        "Proxy-Authorization: Basic eA==\r\n"
        "Expect: 100-continue\r\n"
        "X-Request-Id: old\r\n"
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
        "Authorization: Bearer sk-x\r\n"
        "X-Session-Id: abc\r\n"
        "\r\n");
    REQUIRE(m);
    struct mg_buf b;
    mg_buf_init(&b, 0);
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
    REQUIRE(build_upstream_head(&b, m, "10.0.0.1:8000", "rid-1", 5, tp, 17, "192.0.2.7") == 0);
    CHECK(b.len > 0 && memcmp(mg_buf_head(&b), "POST /v1/chat/completions?x=1 HTTP/1.1\r\n", 40) == 0);
    CHECK(has_line(&b, "Host: api.example"));
    CHECK(has_line(&b, "Content-Type: application/json"));
    CHECK(has_line(&b, "Authorization: Bearer sk-x"));
    CHECK(has_line(&b, "X-Session-Id: abc"));
    CHECK(has_line(&b, "x-request-id: rid-1"));
    CHECK(has_line(&b, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"));
    CHECK(has_line(&b, "Content-Length: 17"));
    CHECK(has_line(&b, "x-forwarded-for: 192.0.2.7"));
    /* Hop-by-hop, the Connection-named one, Expect, and the replaced ones. */
    CHECK(!has_name(&b, "Connection"));
    CHECK(!has_name(&b, "Keep-Alive"));
    CHECK(!has_name(&b, "X-Secret-Hop"));
    CHECK(!has_name(&b, "TE"));
    CHECK(!has_name(&b, "Proxy-Authorization"));
    CHECK(!has_name(&b, "Expect"));
    CHECK(!has_line(&b, "X-Request-Id: old"));
    CHECK(!has_line(&b, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    /* Exactly one Content-Length, and the head ends the head. */
    CHECK(memmem(mg_buf_head(&b), b.len, "Content-Length", 14) ==
          memmem(mg_buf_head(&b), b.len, "Content-Length: 17", 18));
    CHECK(b.len >= 4 && memcmp(mg_buf_head(&b) + b.len - 4, "\r\n\r\n", 4) == 0);
    /* It parses as one valid request with the body length given. */
    struct mg_h1_parser p;
    struct mg_h1_msg out;
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    CHECK_EQ_INT(mg_h1_parse_head(&p, mg_buf_head(&b), b.len, &out), (int)b.len);
    CHECK_EQ_INT(out.framing, MG_H1_BODY_LENGTH);
    CHECK_EQ_INT(out.content_length, 17);

    /* HTTP/1.0 without Host: the endpoint's name is sent. */
    m = parse("POST /v1/completions HTTP/1.0\r\nContent-Length: 2\r\n\r\n");
    REQUIRE(m);
    REQUIRE(build_upstream_head(&b, m, "[fd00::1]:8000", "r", 1, tp, 2, NULL) == 0);
    CHECK(memcmp(mg_buf_head(&b), "POST /v1/completions HTTP/1.1\r\n", 31) == 0);
    CHECK(has_line(&b, "Host: [fd00::1]:8000"));
    mg_buf_free(&b);
}

static void t_request_id(void)
{
    struct sc_rng rng;
    sc_rng_seed(&rng, 1);
    char id[REQID_MAX + 1], id2[REQID_MAX + 1];
    CHECK_EQ_INT(make_reqid(id, "client-id-42", 12, &rng), 12);
    CHECK_EQ_STR(id, "client-id-42");
    char longid[REQID_MAX + 2];
    memset(longid, 'a', sizeof longid);
    CHECK_EQ_INT(make_reqid(id, longid, REQID_MAX, &rng), REQID_MAX);
    static const char *const bad[] = {"has space", "tab\there", "caf\xc3\xa9", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(make_reqid(id, bad[i], strlen(bad[i]), &rng), 32);
        int nz;
        CHECK(lowhex(id, 32, &nz));
    }
    CHECK_EQ_INT(make_reqid(id, longid, REQID_MAX + 1, &rng), 32);
    CHECK_EQ_INT(make_reqid(id, NULL, 0, &rng), 32);
    CHECK_EQ_INT(make_reqid(id2, NULL, 0, &rng), 32);
    CHECK(strcmp(id, id2) != 0);
}

static int tp_valid(const char *t)
{
    int nz1, nz2, nz3;
    return strlen(t) == TRACEPARENT_LEN && memcmp(t, "00-", 3) == 0 && lowhex(t + 3, 32, &nz1) &&
           nz1 && t[35] == '-' && lowhex(t + 36, 16, &nz2) && nz2 && t[52] == '-' &&
           lowhex(t + 53, 2, &nz3);
}

static void t_traceparent(void)
{
    struct sc_rng rng;
    sc_rng_seed(&rng, 2);
    char t[TRACEPARENT_LEN + 1];
    const char *in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    make_traceparent(t, in, strlen(in), &rng);
    CHECK(tp_valid(t));
    CHECK(memcmp(t, in, 36) == 0);              /* same version and trace id */
    CHECK(memcmp(t + 36, in + 36, 16) != 0);    /* a new parent id */
    CHECK(memcmp(t + 52, "-01", 3) == 0);       /* the flags kept */
    /* A future version may carry more after the flags: the trace is kept,
     * written as version 00. */
    const char *fut = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
    make_traceparent(t, fut, strlen(fut), &rng);
    CHECK(tp_valid(t) && memcmp(t + 3, fut + 3, 32) == 0);
    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 with extra */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",    /* short */
        "garbage",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        make_traceparent(t, bad[i], strlen(bad[i]), &rng);
        CHECK(tp_valid(t));
        CHECK(memcmp(t + 3, "4bf92f3577b34da6a3ce929d0e0e4736", 32) != 0);
        CHECK(memcmp(t + 52, "-00", 3) == 0);
    }
    char t2[TRACEPARENT_LEN + 1];
    make_traceparent(t, NULL, 0, &rng);
    make_traceparent(t2, NULL, 0, &rng);
    CHECK(tp_valid(t) && tp_valid(t2) && memcmp(t + 3, t2 + 3, 32) != 0);
}

static void t_json_escaping(void)
{
    struct mg_buf b;
    mg_buf_init(&b, 4096);
    const char s[] = "a\"b\\c\n\x01\x7f\xc3\xa9";
    REQUIRE(json_str(&b, s, sizeof s - 1) == 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "\"a\\\"b\\\\c\\u000a\\u0001\\u007f\xc3\xa9\"");
    json_error_t err;
    json_t *v = json_loadb(mg_buf_head(&b), b.len, JSON_DECODE_ANY, &err);
    CHECK(v && json_is_string(v) && json_string_length(v) == sizeof s - 1 &&
          memcmp(json_string_value(v), s, sizeof s - 1) == 0);
    json_decref(v);
    mg_buf_free(&b);
}

static void t_header_names(void)
{
    static const char *const hop[] = {"Connection", "keep-alive", "TE", "Trailer", "Upgrade",
                                      "Transfer-Encoding", "Content-Length", "Proxy-Connection",
                                      "proxy-authenticate", "X-Request-Id"};
    static const char *const keep[] = {"Host", "Content-Type", "Authorization", "Proxy", "TEx",
                                       "Trailers", "x-request-ids", "Retry-After"};
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++) {
        struct mg_h1_header h = {.name = hop[i], .name_len = (uint32_t)strlen(hop[i])};
        if (!skip_common(&h))
            printf("# %s kept\n", hop[i]);
        CHECK(skip_common(&h));
    }
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        struct mg_h1_header h = {.name = keep[i], .name_len = (uint32_t)strlen(keep[i])};
        if (skip_common(&h))
            printf("# %s dropped\n", keep[i]);
        CHECK(!skip_common(&h));
    }
}

/* A request struct with just what body_set_model uses. */
static struct sc_worker tw;

static int do_splice(const char *body, const char *model, char *out, size_t cap)
{
    struct sc_req r;
    memset(&r, 0, sizeof r);
    r.w = &tw;
    mg_buf_init(&r.body, strlen(body));
    mg_buf_append(&r.body, body, strlen(body));
    struct sc_reqscan sc;
    if (sc_reqscan(body, strlen(body), &sc) < 0)
        return -1;
    r.model_off = sc.model_off;
    r.model_span = sc.model_span;
    int rc = body_set_model(&r, model, strlen(model));
    if (rc == 0) {
        /* The result is valid JSON whose model is the new one, and its
         * span is right for a second splice. */
        if (sc_reqscan(mg_buf_head(&r.body), r.body.len, &sc) < 0 || !sc.model ||
            sc.model_len != strlen(model) || memcmp(sc.model, model, sc.model_len) != 0 ||
            sc.model_off != r.model_off || sc.model_span != r.model_span)
            rc = -2;
        snprintf(out, cap, "%.*s", (int)r.body.len, mg_buf_head(&r.body));
    }
    mg_buf_free(&r.body);
    return rc;
}

static void t_model_splice(void)
{
    char out[512];
    mg_buf_init(&tw.scratch, 16 * 1024);
    CHECK_EQ_INT(do_splice("{\"model\":\"m\",\"stream\":true}", "mistral-7b", out, sizeof out), 0);
    CHECK_EQ_STR(out, "{\"model\":\"mistral-7b\",\"stream\":true}");
    CHECK_EQ_INT(do_splice("{\"a\":1, \"model\" : \"a-much-longer-name\" }", "b", out, sizeof out), 0);
    CHECK_EQ_STR(out, "{\"a\":1, \"model\" : \"b\" }");
    CHECK_EQ_INT(do_splice("{\"model\":\"m\\u0031\"}", "quote\"d\\", out, sizeof out), 0);
    CHECK_EQ_STR(out, "{\"model\":\"quote\\\"d\\\\\"}");
    /* Without a model member one is added. */
    CHECK_EQ_INT(do_splice("{\"messages\":[]}", "x", out, sizeof out), 0);
    CHECK_EQ_STR(out, "{\"model\":\"x\",\"messages\":[]}");
    CHECK_EQ_INT(do_splice(" { } ", "x", out, sizeof out), 0);
    CHECK_EQ_STR(out, " {\"model\":\"x\" } ");
    mg_buf_free(&tw.scratch);
}

static void t_context_errors(void)
{
    static const char *const yes[] = {
        /* vLLM (and modelsim) */
        "{\"object\":\"error\",\"message\":\"This model's maximum context length is 4096 "
        "tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the "
        "completion). Please reduce the length of the messages or completion.\"}",
        "{\"message\":\"The decoder prompt (length 5000) is longer than the maximum model "
        "length of 4096.\"}",
        /* TGI (422) */
        "{\"error\":\"Input validation error: `inputs` tokens + `max_new_tokens` must be <= "
        "4096. Given: 4000 `inputs` tokens and 1000 `max_new_tokens`\",\"error_type\":"
        "\"validation\"}",
        "{\"error\":\"Input validation error: `inputs` must have less than 4096 tokens. Given: "
        "5000\"}",
        /* OpenAI */
        "{\"error\":{\"code\":\"context_length_exceeded\"}}",
    };
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        CHECK(is_context_error(400, yes[i], strlen(yes[i])));
        CHECK(is_context_error(422, yes[i], strlen(yes[i])));
        CHECK(!is_context_error(500, yes[i], strlen(yes[i])));
        CHECK(!is_context_error(200, yes[i], strlen(yes[i])));
    }
    static const char no[] = "{\"error\":{\"message\":\"messages: Input should be a "
                             "non-empty list\"}}";
    CHECK(!is_context_error(400, no, sizeof no - 1));
    CHECK(!is_context_error(400, "", 0));
}

static void t_retry_matches(void)
{
    struct sc_retries rt;
    memset(&rt, 0, sizeof rt);
    rt.on = SC_RETRY_CONNECT | SC_RETRY_TIMEOUT;
    rt.status[503 / 8] |= 1u << (503 % 8);
    CHECK(retry_matches(&rt, F_CONNECT, 0));
    CHECK(!retry_matches(&rt, F_RESET, 0));
    CHECK(retry_matches(&rt, F_TIMEOUT, 0));
    CHECK(retry_matches(&rt, F_STATUS, 503));
    CHECK(!retry_matches(&rt, F_STATUS, 502));
    CHECK(!retry_matches(&rt, F_STATUS, 999));
    CHECK(!retry_matches(&rt, F_CONTEXT, 400));
    CHECK(!retry_matches(&rt, F_PROTOCOL, 0));
}

static struct sc_config *cfg_of(const char *doc)
{
    struct sc_config *c = NULL;
    struct mg_json_errs e;
    mg_json_errs_init(&e, 0);
    int rc = sc_config_parse(doc, strlen(doc), "t", &c, &e, NULL);
    if (rc < 0 && e.n)
        printf("# %s\n", e.items[0].msg);
    mg_json_errs_free(&e);
    return c;
}

/* A reload keeps the breakers, budgets and buckets whose settings stay,
 * and frees what no table uses any more. */
static void t_registry_reuse(void)
{
    static const char a[] =
        "listen: 127.0.0.1:1\nroutes:\n - model: m\n   versions: [{name: v1, weight: 1, "
        "endpoints: [127.0.0.1:2, 127.0.0.1:3]}]\n   circuitBreaker: {consecutiveFailures: 2}\n"
        "   retries: {attempts: 1}\n   rateLimit: {requestsPerSecond: 10}\n";
    static const char b[] =   /* same policies, another weight and a new route */
        "listen: 127.0.0.1:1\nroutes:\n - model: m\n   versions: [{name: v1, weight: 5, "
        "endpoints: [127.0.0.1:2, 127.0.0.1:3]}]\n   circuitBreaker: {consecutiveFailures: 2}\n"
        "   retries: {attempts: 1}\n   rateLimit: {requestsPerSecond: 10}\n - model: other\n"
        "   versions: [{name: v1, weight: 1, endpoints: [127.0.0.1:4]}]\n";
    static const char c3[] =  /* the breaker's settings change */
        "listen: 127.0.0.1:1\nroutes:\n - model: m\n   versions: [{name: v1, weight: 5, "
        "endpoints: [127.0.0.1:2, 127.0.0.1:3]}]\n   circuitBreaker: {consecutiveFailures: 3}\n"
        "   retries: {attempts: 1}\n   rateLimit: {requestsPerSecond: 10}\n";
    struct sc_config *ca = cfg_of(a), *cb = cfg_of(b), *cc = cfg_of(c3);
    REQUIRE(ca && cb && cc);
    REQUIRE(sc_policy_attach(ca) == 0);
    REQUIRE(sc_policy_attach(cb) == 0);
    const struct sc_policy *pa = ca->policy, *pb = cb->policy;
    CHECK(pa->routes[0].route == pb->routes[0].route);
    CHECK(pa->routes[0].versions[0].eps[0] == pb->routes[0].versions[0].eps[0]);
    CHECK(pa->routes[0].versions[0].eps[1] == pb->routes[0].versions[0].eps[1]);
    CHECK(pa->routes[0].versions[0].eps[0] != pa->routes[0].versions[0].eps[1]);
    CHECK(pb->routes[1].route == NULL && pb->routes[1].versions == NULL);
    /* Open a breaker through table a: table b sees it open. */
    struct sc_pol_ep *e = pa->routes[0].versions[0].eps[0];
    for (int i = 0; i < 2; i++) {
        CHECK(sc_breaker_allow(&e->br, 1000, NULL, NULL));
        sc_breaker_report(&e->br, 0, 1000, NULL, NULL);
    }
    CHECK_EQ_INT(sc_breaker_state(&pb->routes[0].versions[0].eps[0]->br), SC_BREAKER_OPEN);
    sc_config_unref(ca);   /* b still holds them */
    CHECK_EQ_INT(sc_breaker_state(&pb->routes[0].versions[0].eps[0]->br), SC_BREAKER_OPEN);
    REQUIRE(sc_policy_attach(cc) == 0);
    const struct sc_policy *pc = cc->policy;
    CHECK(pc->routes[0].versions[0].eps[0] != pb->routes[0].versions[0].eps[0]);
    CHECK_EQ_INT(sc_breaker_state(&pc->routes[0].versions[0].eps[0]->br), SC_BREAKER_CLOSED);
    CHECK(pc->routes[0].route == pb->routes[0].route);   /* budget and buckets stay */
    sc_config_unref(cb);
    sc_config_unref(cc);
    pthread_mutex_lock(&reg_mu);
    CHECK(reg_head == NULL);   /* nothing left behind */
    pthread_mutex_unlock(&reg_mu);
}

static void t_admission_parse(void)
{
    static const char m[] =
        "# HELP vllm:num_requests_waiting Requests waiting.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        "vllm:num_requests_waiting{model_name=\"a\"} 3\n"
        "vllm:num_requests_waiting{model_name=\"b\\\"}\"} 2.0\n"
        "vllm:num_requests_waiting_total 99\n"
        "vllm:kv_cache_usage_perc{model_name=\"a\"} 0.25\n"
        "vllm:kv_cache_usage_perc{model_name=\"b\"} 0.75\n"
        "vllm:num_requests_running 7\n";
    double w = -1, kv = -1;
    CHECK_EQ_INT(sc_admission_parse(m, sizeof m - 1, &w, &kv), 0);
    CHECK(w == 5);
    CHECK(kv == 0.75);
    static const char plain[] = "vllm:num_requests_waiting 1\nvllm:kv_cache_usage_perc 0.5";
    CHECK_EQ_INT(sc_admission_parse(plain, sizeof plain - 1, &w, &kv), 0);
    CHECK(w == 1 && kv == 0.5);
    static const char none[] = "up 1\nvllm:num_requests_waiting nan-ish\n";
    CHECK_EQ_INT(sc_admission_parse(none, sizeof none - 1, &w, &kv), -ENOENT);
    CHECK_EQ_INT(sc_admission_parse("", 0, &w, &kv), -ENOENT);
}

static void t_saturated(void)
{
    struct sc_pol_ep e;
    memset(&e, 0, sizeof e);
    struct sc_admission a = {.interval_ms = 100, .stale_ms = 1000, .max_waiting = 8, .max_kv = 0.9};
    CHECK(sc_policy_saturated(&e, &a, 5000));   /* never polled */
    atomic_store(&e.polled_ms, 4500);
    atomic_store(&e.waiting, 8);
    atomic_store(&e.kv_ppm, 900000);
    CHECK(!sc_policy_saturated(&e, &a, 5000));
    CHECK(sc_policy_saturated(&e, &a, 5501));    /* stale */
    atomic_store(&e.waiting, 9);
    CHECK(sc_policy_saturated(&e, &a, 5000));
    atomic_store(&e.waiting, 0);
    atomic_store(&e.kv_ppm, 900001);
    CHECK(sc_policy_saturated(&e, &a, 5000));
}

int main(void)
{
    RUN(t_model_splice);
    RUN(t_context_errors);
    RUN(t_retry_matches);
    RUN(t_registry_reuse);
    RUN(t_admission_parse);
    RUN(t_saturated);
    RUN(t_upstream_head);
    RUN(t_request_id);
    RUN(t_traceparent);
    RUN(t_json_escaping);
    RUN(t_header_names);
    return test_done();
}
