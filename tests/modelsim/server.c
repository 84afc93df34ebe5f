/* modelsim's routes and the small endpoints: /v1/models, /health,
 * /health/ready, /version, /metrics, /admin/config, and the OpenAI-style
 * error replies every route shares. The completion endpoints themselves are
 * in openai.c. */
#include "tests/modelsim/modelsim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MS_ADMIN_BODY_MAX ((size_t)64 << 10)
/* /metrics and /admin/config replies. */
#define MS_PAGE_MAX ((size_t)4 << 20)

const char *ms_error_type(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 408: return "RequestTimeoutError";
    case 409: return "ConflictError";
    case 413: return "RequestEntityTooLarge";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 500: return "InternalServerError";
    case 501: return "NotImplementedError";
    case 502: return "BadGatewayError";
    case 503: return "ServiceUnavailableError";
    case 504: return "GatewayTimeoutError";
    default: return status < 500 ? "BadRequestError" : "InternalServerError";
    }
}

unsigned ms_reply_headers(struct ms_worker *w, struct mg_h1_header *h, const char *ctype,
                          const char *version)
{
    h[0] = (struct mg_h1_header)MG_HTTPD_HDR("Content-Type", ctype);
    h[1] = (struct mg_h1_header)MG_HTTPD_HDR("x-modelsim-version", version);
    h[2] = (struct mg_h1_header)MG_HTTPD_HDR("x-modelsim-worker", w->idx_str);
    return 3;
}

/* Appends s as a JSON string body (quotes excluded), escaping what JSON
 * requires. Messages quote user input (model names, parser errors). */
static size_t json_escape(char *dst, size_t room, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(dst + n, room - n, "\\u%04x", c);
        } else {
            dst[n++] = (char)c;
        }
    }
    return n;
}

void ms_send_error(struct ms_worker *w, struct mg_httpd_req *hreq, int status,
                   const char *type, const char *param, const char *code_str,
                   const char *fmt, ...)
{
    char msg[1024], body[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = (size_t)snprintf(body, sizeof body, "{\"error\":{\"message\":\"");
    n += json_escape(body + n, sizeof body - n - 300, msg);
    n += (size_t)snprintf(body + n, sizeof body - n, "\",\"type\":\"%s\",\"param\":", type);
    if (param)
        n += (size_t)snprintf(body + n, sizeof body - n, "\"%s\"", param);
    else
        n += (size_t)snprintf(body + n, sizeof body - n, "null");
    if (code_str)
        n += (size_t)snprintf(body + n, sizeof body - n, ",\"code\":\"%s\"}}\n", code_str);
    else
        n += (size_t)snprintf(body + n, sizeof body - n, ",\"code\":%d}}\n", status);
    struct mg_h1_header h[5];
    unsigned nh = ms_reply_headers(w, h, "application/json", w->knobs.version);
    /* Clients and proxies back off on these; vLLM behind a gateway says so. */
    if (status == 429 || status == 503)
        h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("Retry-After", "1");
    mg_httpd_respond(hreq, status, h, nh, body, n);
}

static void send_text(struct ms_worker *w, struct mg_httpd_req *hreq, int status,
                      const char *ctype, const void *body, size_t n)
{
    struct mg_h1_header h[4];
    unsigned nh = ms_reply_headers(w, h, ctype, w->knobs.version);
    mg_httpd_respond(hreq, status, h, nh, body, n);
}

static void method_not_allowed(struct ms_worker *w, struct mg_httpd_req *hreq, const char *allow)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"error\":{\"message\":\"Method Not Allowed\",\"type\":\"%s\","
                     "\"param\":null,\"code\":405}}\n", ms_error_type(405));
    struct mg_h1_header h[5];
    unsigned nh = ms_reply_headers(w, h, "application/json", w->knobs.version);
    h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("Allow", allow);
    mg_httpd_respond(hreq, 405, h, nh, body, (size_t)n);
}

static void send_models(struct ms_worker *w, struct mg_httpd_req *hreq)
{
    const struct ms_knobs *k = &w->knobs;
    struct mg_buf *b = &w->out;
    mg_buf_reset(b);
    long long created = (long long)time(NULL);
    int rc = mg_buf_append_str(b, "{\"object\":\"list\",\"data\":[");
    for (unsigned i = 0; rc == 0 && i < k->nmodels; i++)
        rc = mg_buf_printf(b,
                           "%s{\"id\":\"%s\",\"object\":\"model\",\"created\":%lld,"
                           "\"owned_by\":\"vllm\",\"root\":\"%s\",\"parent\":null,"
                           "\"max_model_len\":%u}",
                           i ? "," : "", k->models[i], created, k->models[i], k->max_model_len);
    if (rc == 0)
        rc = mg_buf_append_str(b, "]}\n");
    if (rc < 0) {
        ms_send_error(w, hreq, 500, ms_error_type(500), NULL, NULL, "cannot list models");
        return;
    }
    send_text(w, hreq, 200, "application/json", mg_buf_head(b), b->len);
}

static void send_metrics(struct ms_worker *w, struct mg_httpd_req *hreq)
{
    struct mg_buf page;
    mg_buf_init(&page, MS_PAGE_MAX);
    if (ms_metrics_render(&page) < 0) {
        ms_send_error(w, hreq, 500, ms_error_type(500), NULL, NULL, "cannot render metrics");
    } else {
        send_text(w, hreq, 200, MG_METRICS_CONTENT_TYPE, mg_buf_head(&page), page.len);
    }
    mg_buf_free(&page);
}

static void send_config(struct ms_worker *w, struct mg_httpd_req *hreq)
{
    struct mg_buf page;
    mg_buf_init(&page, MS_PAGE_MAX);
    if (ms_config_dump(&page) < 0)
        ms_send_error(w, hreq, 500, ms_error_type(500), NULL, NULL, "cannot show the config");
    else
        send_text(w, hreq, 200, "application/json", mg_buf_head(&page), page.len);
    mg_buf_free(&page);
}

static void admin_config_body(struct mg_httpd_req *hreq, const char *body, size_t n)
{
    struct ms_worker *w = mg_httpd_req_data(hreq);
    mg_httpd_req_set_data(hreq, NULL);
    char err[512];
    if (ms_config_apply_json(body, n, err, sizeof err) < 0) {
        ms_send_error(w, hreq, 400, "BadRequestError", NULL, NULL, "%s", err);
        return;
    }
    ms_worker_sync_knobs(w);
    send_config(w, hreq);
}

/* The path without its query, compared exactly. */
static int path_is(const char *p, size_t n, const char *want)
{
    size_t wl = strlen(want);
    return n == wl && memcmp(p, want, n) == 0;
}

static int method_is(const struct mg_h1_msg *m, const char *want)
{
    size_t wl = strlen(want);
    return m->method_len == wl && memcmp(m->method, want, wl) == 0;
}

void ms_on_request(struct mg_httpd_req *hreq, void *data)
{
    struct ms_worker *w = data;
    const struct mg_h1_msg *m = mg_httpd_req_msg(hreq);
    ms_worker_sync_knobs(w);
    const char *path = m->target;
    size_t plen = m->target_len;
    const char *q = memchr(path, '?', plen);
    if (q)
        plen = (size_t)(q - path);
    int get = method_is(m, "GET") || method_is(m, "HEAD");
    int post = method_is(m, "POST");

    int chat = path_is(path, plen, "/v1/chat/completions");
    if (chat || path_is(path, plen, "/v1/completions")) {
        if (!post) {
            method_not_allowed(w, hreq, "POST");
            return;
        }
        if (!ms_ready(w)) {
            ms_send_error(w, hreq, 503, ms_error_type(503), NULL, NULL,
                          "The model is still loading; retry when /health/ready answers 200");
            return;
        }
        ms_openai_completions(w, hreq, chat);
        return;
    }
    if (path_is(path, plen, "/v1/models")) {
        if (!get)
            method_not_allowed(w, hreq, "GET");
        else
            send_models(w, hreq);
        return;
    }
    if (path_is(path, plen, "/health")) {
        if (!get)
            method_not_allowed(w, hreq, "GET");
        else
            send_text(w, hreq, 200, "application/json", "", 0);
        return;
    }
    if (path_is(path, plen, "/health/ready")) {
        if (!get)
            method_not_allowed(w, hreq, "GET");
        else if (ms_ready(w))
            send_text(w, hreq, 200, "application/json", "{\"status\":\"ready\"}\n", 19);
        else
            send_text(w, hreq, 503, "application/json", "{\"status\":\"loading\"}\n", 21);
        return;
    }
    if (path_is(path, plen, "/version")) {
        if (!get) {
            method_not_allowed(w, hreq, "GET");
        } else {
            char body[MS_VERSION_MAX + 32];
            int n = snprintf(body, sizeof body, "{\"version\":\"%s\"}\n", w->knobs.version);
            send_text(w, hreq, 200, "application/json", body, (size_t)n);
        }
        return;
    }
    if (path_is(path, plen, "/metrics")) {
        if (!get)
            method_not_allowed(w, hreq, "GET");
        else
            send_metrics(w, hreq);
        return;
    }
    if (path_is(path, plen, "/admin/config")) {
        if (get) {
            send_config(w, hreq);
        } else if (post) {
            mg_httpd_req_set_data(hreq, w);
            if (mg_httpd_collect_body(hreq, MS_ADMIN_BODY_MAX, admin_config_body) < 0) {
                mg_httpd_req_set_data(hreq, NULL);
                ms_send_error(w, hreq, 500, ms_error_type(500), NULL, NULL,
                              "cannot read the request body");
            }
        } else {
            method_not_allowed(w, hreq, "GET, POST");
        }
        return;
    }
    ms_send_error(w, hreq, 404, ms_error_type(404), NULL, NULL, "Not Found");
}
