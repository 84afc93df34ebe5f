/* POST /v1/chat/completions and /v1/completions, whole and streamed (SSE),
 * in the JSON shapes vLLM sends, with vLLM's validation errors.
 *
 * A request's life (enum ms_req_state, moved only by set_state()):
 *   WAITING  queued for a running slot (--max-running)
 *   PREFILL  admitted; the time-to-first-token timer runs
 *   DECODE   tokens leave one per inter-token timer (streaming), or the
 *            whole reply leaves when the last token would have (not)
 *   STALLED  failure injection: nothing more is ever sent
 *   FINISHED the reply is out or was cut; on_end recycles the struct
 *
 * Speed: the request JSON is parsed once (reqparse.c); replies are written
 * straight into a per-worker scratch buffer from fixed pieces (no printf,
 * no JSON library), and request structs come from a per-worker free list.
 * Streams write one small chunk per token and stop emitting while the
 * server reports the client is not reading (backpressure), so a slow reader
 * holds at most one chunk beyond the server's high-water mark. */
#include "tests/modelsim/modelsim.h"
#include "tests/modelsim/req.h"
#include "tests/modelsim/reqparse.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Free structs kept per worker; past this they go back to malloc. */
#define MS_FREE_KEEP 4096
/* Bytes of stream output gathered before a write when tokens are due at
 * once (no inter-token delay). */
#define MS_STREAM_BATCH 16384
/* Room for one chunk: fixed JSON pieces plus id, model, version, a token
 * and a usage object. */
#define MS_CHUNK_ROOM (512 + 48 + MS_NAME_MAX + MS_VERSION_MAX + MS_TOKEN_MAX)

static const char *const state_names[] = {"waiting", "prefill", "decode", "stalled", "finished"};

static void set_state(struct ms_req *r, enum ms_req_state s)
{
    mg_log(MG_LOG_DEBUG, "request state", "id", MG_S(r->id), "from", MG_S(state_names[r->state]),
           "to", MG_S(state_names[s]), "emitted", MG_U(r->emitted));
    r->state = s;
}

/* ------------------------------------------------------------------------ */
/* Direct writers: the caller reserves room first, then these copy pieces. */

struct wr {
    char *p;
};

#define W_LIT(w, s) (memcpy((w)->p, (s), sizeof(s) - 1), (w)->p += sizeof(s) - 1)

static inline void w_mem(struct wr *w, const void *s, size_t n)
{
    memcpy(w->p, s, n);
    w->p += n;
}

static inline void w_u64(struct wr *w, uint64_t v)
{
    w->p += ms_u64_to_dec(w->p, v);
}

/* Reserves n bytes at the end of b and returns a writer there. */
static int w_begin(struct mg_buf *b, size_t n, struct wr *w)
{
    int rc = mg_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    w->p = mg_buf_tail(b);
    return 0;
}

static void w_end(struct mg_buf *b, struct wr *w)
{
    mg_buf_commit(b, (size_t)(w->p - mg_buf_tail(b)));
}

/* '{"id":"chatcmpl-…","object":"…","created":N,"model":"M","system_fingerprint":"V",' */
static void w_head(struct wr *w, const struct ms_req *r, const char *object, size_t olen)
{
    W_LIT(w, "{\"id\":\"");
    w_mem(w, r->id, r->id_len);
    W_LIT(w, "\",\"object\":\"");
    w_mem(w, object, olen);
    W_LIT(w, "\",\"created\":");
    w_u64(w, (uint64_t)r->created);
    W_LIT(w, ",\"model\":\"");
    w_mem(w, r->model_name, r->model_len);
    W_LIT(w, "\",\"system_fingerprint\":\"");
    w_mem(w, r->version, r->version_len);
    W_LIT(w, "\",");
}

static void w_usage(struct wr *w, const struct ms_req *r)
{
    W_LIT(w, "\"usage\":{\"prompt_tokens\":");
    w_u64(w, r->prompt_tokens);
    W_LIT(w, ",\"total_tokens\":");
    w_u64(w, (uint64_t)r->prompt_tokens + r->emitted);
    W_LIT(w, ",\"completion_tokens\":");
    w_u64(w, r->emitted);
    W_LIT(w, "}");
}

/* ------------------------------------------------------------------------ */
/* Request structs. */

static struct ms_req *req_alloc(struct ms_worker *w)
{
    struct ms_req *r = w->free_reqs;
    if (r) {
        w->free_reqs = r->next_free;
        w->nfree--;
    } else {
        r = malloc(sizeof *r);
        if (!r)
            return NULL;
    }
    /* Only the fields a request relies on being zero, not the whole struct
     * (the name buffers are filled before use). */
    r->w = w;
    r->hreq = NULL;
    r->next_free = r->qprev = r->qnext = NULL;
    r->model = NULL;
    r->state = MS_RQ_WAITING;
    r->chat = r->stream = r->include_usage = r->queued = r->running = 0;
    r->headers_sent = r->blocked = r->due = r->counted = 0;
    r->fail = MS_FAIL_NONE;
    r->emitted = r->kv_held = 0;
    r->t_first_ns = r->t_last_ns = 0;
    return r;
}

static void req_recycle(struct ms_worker *w, struct ms_req *r)
{
    if (w->nfree >= MS_FREE_KEEP) {
        free(r);
        return;
    }
    r->next_free = w->free_reqs;
    w->free_reqs = r;
    w->nfree++;
}

void ms_req_pool_free(struct ms_worker *w)
{
    while (w->free_reqs) {
        struct ms_req *r = w->free_reqs;
        w->free_reqs = r->next_free;
        free(r);
    }
    w->nfree = 0;
}

static void make_id(struct ms_worker *w, struct ms_req *r)
{
    static const char hex[] = "0123456789abcdef";
    const char *prefix = r->chat ? "chatcmpl-" : "cmpl-";
    size_t n = strlen(prefix);
    memcpy(r->id, prefix, n);
    uint64_t a = ms_rng_next(&w->id_counter), b = ms_rng_next(&w->id_counter);
    for (int i = 0; i < 16; i++) {
        r->id[n + (size_t)i] = hex[(a >> (60 - 4 * i)) & 15];
        r->id[n + 16 + (size_t)i] = hex[(b >> (60 - 4 * i)) & 15];
    }
    r->id_len = (unsigned)n + 32;
    r->id[r->id_len] = 0;
}

/* ------------------------------------------------------------------------ */
/* Running slots and the KV-cache gauge. */

static void kv_add(struct ms_req *r, uint32_t n)
{
    if (r->model && n) {
        atomic_fetch_add_explicit(&r->model->kv_tokens, n, memory_order_relaxed);
        r->kv_held += n;
    }
}

static void release_running(struct ms_req *r)
{
    if (!r->running)
        return;
    r->running = 0;
    if (r->model) {
        atomic_fetch_sub_explicit(&r->model->running, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&r->model->kv_tokens, r->kv_held, memory_order_relaxed);
    }
    r->kv_held = 0;
    ms_sched_release(r->w);
}

static void count_done(struct ms_req *r, const char *reason)
{
    if (r->counted)
        return;
    r->counted = 1;
    double e2e = (double)(mg_now_ns() - r->t_arrival_ns) / 1e9;
    ms_metrics_request_done(r->model, reason, r->prompt_tokens, r->emitted, e2e);
}

/* ------------------------------------------------------------------------ */
/* Whole (non-streaming) replies. */

static int build_whole(struct ms_worker *w, struct ms_req *r, int malformed)
{
    struct mg_buf *b = &w->out;
    struct wr wr;
    mg_buf_reset(b);
    size_t room = MS_CHUNK_ROOM + 256 + (size_t)r->ntokens * MS_TOKEN_MAX;
    int rc = w_begin(b, room, &wr);
    if (rc < 0)
        return rc;
    if (r->chat)
        w_head(&wr, r, "chat.completion", 15);
    else
        w_head(&wr, r, "text_completion", 15);
    if (r->chat)
        W_LIT(&wr, "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
    else
        W_LIT(&wr, "\"choices\":[{\"index\":0,\"text\":\"");
    uint64_t rng = r->text_rng;
    for (uint32_t i = 0; i < r->ntokens; i++)
        wr.p += ms_token_text(&rng, i, wr.p);
    r->emitted = r->ntokens;
    if (malformed) {
        /* A reply cut inside a string: invalid JSON with a 200 status. */
        w_end(b, &wr);
        return 0;
    }
    if (r->chat)
        W_LIT(&wr, "\",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"");
    else
        W_LIT(&wr, "\",\"logprobs\":null,\"finish_reason\":\"");
    w_mem(&wr, r->finish, strlen(r->finish));
    W_LIT(&wr, "\",\"stop_reason\":null}],");
    w_usage(&wr, r);
    W_LIT(&wr, "}\n");
    w_end(b, &wr);
    return 0;
}

static void finish_whole(struct ms_req *r)
{
    struct ms_worker *w = r->w;
    int malformed = r->fail == MS_FAIL_MALFORMED;
    if (r->fail == MS_FAIL_CUT) {
        set_state(r, MS_RQ_FINISHED);
        release_running(r);
        mg_httpd_abort(r->hreq);
        return;
    }
    if (r->fail == MS_FAIL_STALL) {
        set_state(r, MS_RQ_STALLED);
        return;
    }
    /* Time to first token as the client would have seen it streaming:
     * arrival to the end of prefill. */
    if (r->ntokens && r->t_first_ns)
        ms_metrics_ttft(r->model, (double)(r->t_first_ns - r->t_arrival_ns) / 1e9);
    struct mg_h1_header h[4];
    unsigned nh = ms_reply_headers(w, h, "application/json", r->version);
    set_state(r, MS_RQ_FINISHED);
    if (build_whole(w, r, malformed) < 0) {
        release_running(r);
        ms_send_error(w, r->hreq, 500, "InternalServerError", NULL, NULL,
                      "reply too large to build");
        return;
    }
    release_running(r);
    count_done(r, r->finish);
    mg_httpd_respond(r->hreq, 200, h, nh, mg_buf_head(&w->out), w->out.len);
}

/* ------------------------------------------------------------------------ */
/* Streams. */

static int stream_flush(struct ms_req *r)
{
    struct ms_worker *w = r->w;
    int rc;
    if (!r->headers_sent) {
        struct mg_h1_header h[5];
        unsigned nh = ms_reply_headers(w, h, "text/event-stream", r->version);
        h[nh++] = (struct mg_h1_header)MG_HTTPD_HDR("Cache-Control", "no-cache");
        rc = mg_httpd_start(r->hreq, 200, h, nh, -1);
        if (rc < 0)
            return rc;
        r->headers_sent = 1;
    }
    if (w->out.len == 0)
        return 0;
    rc = mg_httpd_write(r->hreq, mg_buf_head(&w->out), w->out.len);
    mg_buf_reset(&w->out);
    if (rc == 1)
        r->blocked = 1;
    return rc < 0 ? rc : 0;
}

static int append_token_chunk(struct ms_req *r, uint32_t i)
{
    struct mg_buf *b = &r->w->out;
    struct wr wr;
    int rc = w_begin(b, 2 * MS_CHUNK_ROOM, &wr);
    if (rc < 0)
        return rc;
    int last = i + 1 == r->ntokens;
    if (r->chat) {
        if (i == 0) {
            /* vLLM's first chunk carries the role and empty content. */
            W_LIT(&wr, "data: ");
            w_head(&wr, r, "chat.completion.chunk", 21);
            W_LIT(&wr, "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                       "\"logprobs\":null,\"finish_reason\":null}]}\n\n");
        }
        W_LIT(&wr, "data: ");
        w_head(&wr, r, "chat.completion.chunk", 21);
        W_LIT(&wr, "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
    } else {
        W_LIT(&wr, "data: ");
        w_head(&wr, r, "text_completion", 15);
        W_LIT(&wr, "\"choices\":[{\"index\":0,\"text\":\"");
    }
    wr.p += ms_token_text(&r->text_rng, i, wr.p);
    if (r->chat)
        W_LIT(&wr, "\"}");
    else
        W_LIT(&wr, "\"");
    W_LIT(&wr, ",\"logprobs\":null,\"finish_reason\":");
    if (last) {
        W_LIT(&wr, "\"");
        w_mem(&wr, r->finish, strlen(r->finish));
        W_LIT(&wr, "\"");
    } else {
        W_LIT(&wr, "null");
    }
    if (!r->chat || last)
        W_LIT(&wr, ",\"stop_reason\":null");
    W_LIT(&wr, "}]}\n\n");
    w_end(b, &wr);
    return 0;
}

static int append_tail(struct ms_req *r)
{
    struct mg_buf *b = &r->w->out;
    struct wr wr;
    int rc = w_begin(b, MS_CHUNK_ROOM, &wr);
    if (rc < 0)
        return rc;
    if (r->include_usage) {
        W_LIT(&wr, "data: ");
        if (r->chat)
            w_head(&wr, r, "chat.completion.chunk", 21);
        else
            w_head(&wr, r, "text_completion", 15);
        W_LIT(&wr, "\"choices\":[],");
        w_usage(&wr, r);
        W_LIT(&wr, "}\n\n");
    }
    W_LIT(&wr, "data: [DONE]\n\n");
    w_end(b, &wr);
    return 0;
}

static int append_malformed(struct ms_req *r)
{
    struct mg_buf *b = &r->w->out;
    struct wr wr;
    int rc = w_begin(b, MS_CHUNK_ROOM, &wr);
    if (rc < 0)
        return rc;
    /* A chunk whose JSON stops in the middle of an object. */
    W_LIT(&wr, "data: ");
    w_head(&wr, r, r->chat ? "chat.completion.chunk" : "text_completion",
           r->chat ? 21 : 15);
    W_LIT(&wr, "\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n");
    w_end(b, &wr);
    return 0;
}

static void stream_arm(struct ms_req *r, uint32_t ms);

/* Emits every token that is due now, then arms the timer for the next one.
 * The failure point is reached when `emitted` equals fail_after (capped at
 * the reply length: past it, the failure hits after the last token, before
 * the usage chunk and [DONE]). */
static void stream_step(struct ms_req *r)
{
    struct ms_worker *w = r->w;
    uint32_t fail_at = r->fail_after < r->ntokens ? r->fail_after : r->ntokens;
    mg_buf_reset(&w->out);
    for (;;) {
        if (r->fail != MS_FAIL_NONE && r->emitted == fail_at) {
            enum ms_fail_mode f = r->fail;
            if (f == MS_FAIL_MALFORMED) {
                r->fail = MS_FAIL_NONE;
                if (append_malformed(r) < 0)
                    goto fail;
                continue;
            }
            /* Whatever is gathered leaves first, so the client sees exactly
             * fail_after tokens. */
            if (w->out.len && stream_flush(r) < 0)
                goto gone;
            if (f == MS_FAIL_CUT) {
                set_state(r, MS_RQ_FINISHED);
                release_running(r);
                mg_httpd_abort(r->hreq);
            } else {
                set_state(r, MS_RQ_STALLED);
            }
            return;
        }
        if (r->emitted == r->ntokens) {
            if (append_tail(r) < 0)
                goto fail;
            set_state(r, MS_RQ_FINISHED);
            release_running(r);
            count_done(r, r->finish);
            if (stream_flush(r) < 0)
                return;
            mg_httpd_end(r->hreq);
            return;
        }
        if (append_token_chunk(r, r->emitted) < 0)
            goto fail;
        uint64_t now = mg_now_ns();
        if (r->emitted == 0) {
            r->t_first_ns = now;
            ms_metrics_ttft(r->model, (double)(now - r->t_arrival_ns) / 1e9);
            set_state(r, MS_RQ_DECODE);
        } else {
            ms_metrics_itl(r->model, (double)(now - r->t_last_ns) / 1e9, 1);
        }
        r->t_last_ns = now;
        r->emitted++;
        kv_add(r, 1);
        if (r->emitted < r->ntokens) {
            uint32_t next = ms_jitter_itl(&r->time_rng, r->itl_ms, r->jitter_pct);
            if (next > 0) {
                if (stream_flush(r) < 0)
                    goto gone;
                stream_arm(r, next);
                return;
            }
        }
        if (w->out.len >= MS_STREAM_BATCH) {
            if (stream_flush(r) < 0)
                goto gone;
            if (r->blocked) {
                r->due = 1;
                return;
            }
        }
    }
fail:
    mg_buf_reset(&w->out);
    set_state(r, MS_RQ_FINISHED);
    release_running(r);
    mg_httpd_abort(r->hreq);
    return;
gone:
    /* The connection is gone; on_end follows and cleans up. */
    set_state(r, MS_RQ_FINISHED);
    release_running(r);
}

static void timer_cb(struct mg_loop *loop, struct mg_timer *t)
{
    struct ms_req *r = t->data;
    if (!r->stream) {
        finish_whole(r);
        return;
    }
    if (r->state == MS_RQ_PREFILL)
        set_state(r, MS_RQ_DECODE);
    if (r->blocked) {
        r->due = 1;
        return;
    }
    stream_step(r);
}

static void stream_arm(struct ms_req *r, uint32_t ms)
{
    if (mg_timer_start(mg_httpd_loop(r->w->srv), &r->timer, ms) < 0) {
        set_state(r, MS_RQ_FINISHED);
        release_running(r);
        mg_httpd_abort(r->hreq);
    }
}

static void on_writable(struct mg_httpd_req *hreq)
{
    struct ms_req *r = mg_httpd_req_data(hreq);
    if (!r)
        return;
    r->blocked = 0;
    if (r->due && r->state == MS_RQ_DECODE) {
        r->due = 0;
        stream_step(r);
    }
}

static void on_end(struct mg_httpd_req *hreq, enum mg_httpd_end reason)
{
    struct ms_req *r = mg_httpd_req_data(hreq);
    if (!r)
        return;
    struct ms_worker *w = r->w;
    mg_timer_stop(mg_httpd_loop(w->srv), &r->timer);
    ms_sched_unqueue(w, r);
    int admitted = r->state != MS_RQ_WAITING;
    release_running(r);
    if (admitted && !r->counted)
        count_done(r, "abort");
    if (r->state != MS_RQ_FINISHED)
        set_state(r, MS_RQ_FINISHED);
    mg_httpd_req_set_data(hreq, NULL);
    r->hreq = NULL;
    req_recycle(w, r);
}

void ms_req_admitted(struct ms_req *r)
{
    r->running = 1;
    if (r->model)
        atomic_fetch_add_explicit(&r->model->running, 1, memory_order_relaxed);
    kv_add(r, r->prompt_tokens);
    set_state(r, MS_RQ_PREFILL);
    uint32_t ttft = ms_jitter_ttft(&r->time_rng, r->ttft_ms, r->jitter_pct);
    /* +1 ms: the loop clock has millisecond steps and may lag the true time
     * by up to one, and the configured TTFT is a floor. */
    uint32_t first = ttft ? ttft + 1 : 0;
    if (!r->stream) {
        /* The whole reply leaves when its last token (or the failure point)
         * would have been generated. */
        uint32_t k = r->ntokens;
        if (r->fail != MS_FAIL_NONE && r->fail_after < k)
            k = r->fail_after;
        uint64_t total = first, itl_sum = 0;
        uint32_t same = 0;
        for (uint32_t i = 1; i < k; i++) {
            uint32_t d = ms_jitter_itl(&r->time_rng, r->itl_ms, r->jitter_pct);
            if (d == r->itl_ms) {
                same++;
            } else {
                ms_metrics_itl(r->model, d / 1000.0, 1);
            }
            itl_sum += d;
        }
        if (same)
            ms_metrics_itl(r->model, r->itl_ms / 1000.0, same);
        kv_add(r, k);
        total += itl_sum;
        r->t_first_ns = mg_now_ns() + (uint64_t)ttft * 1000000;
        if (total == 0) {
            finish_whole(r);
            return;
        }
        set_state(r, MS_RQ_DECODE);
        if (total > UINT32_MAX)
            total = UINT32_MAX;
        stream_arm(r, (uint32_t)total);
        return;
    }
    if (first == 0) {
        set_state(r, MS_RQ_DECODE);
        stream_step(r);
        return;
    }
    stream_arm(r, first);
}

/* ------------------------------------------------------------------------ */
/* Parsing and validation. */

static int bad_request(struct ms_worker *w, struct mg_httpd_req *hreq, const char *param,
                       const char *msg)
{
    ms_send_error(w, hreq, 400, "BadRequestError", param, NULL, "%s", msg);
    return -EINVAL;
}

static const struct ms_knobs *knobs_of(struct ms_worker *w)
{
    return &w->knobs;
}

/* The model a request names, among those served; NULL when none. */
static const char *find_model(const struct ms_knobs *k, const char *name)
{
    for (unsigned i = 0; i < k->nmodels; i++)
        if (strcmp(k->models[i], name) == 0)
            return k->models[i];
    return NULL;
}

static void send_context_error(struct ms_worker *w, struct mg_httpd_req *hreq,
                               uint32_t max_len, uint64_t prompt, long long completion)
{
    if (completion < 0)
        ms_send_error(w, hreq, 400, "BadRequestError", NULL, NULL,
                      "This model's maximum context length is %u tokens. However, your request "
                      "has %" PRIu64 " input tokens. Please reduce the length of the input "
                      "messages.", max_len, prompt);
    else
        ms_send_error(w, hreq, 400, "BadRequestError", NULL, NULL,
                      "This model's maximum context length is %u tokens. However, you requested "
                      "%" PRIu64 " tokens (%" PRIu64 " in the messages, %lld in the completion). "
                      "Please reduce the length of the messages or completion.",
                      max_len, prompt + (uint64_t)completion, prompt, completion);
}

/* An error chosen by X-Return-Error or --error-rate. */
static void send_injected(struct ms_worker *w, struct mg_httpd_req *hreq, int status,
                          const struct ms_parsed *p)
{
    const struct ms_knobs *k = knobs_of(w);
    switch (status) {
    case 400: {
        /* vLLM's context-length refusal, with numbers that make it true. */
        long long completion = p->max_tokens > 0 ? p->max_tokens : k->tokens;
        uint64_t prompt = p->prompt_tokens;
        if (prompt + (uint64_t)completion <= k->max_model_len)
            prompt = (uint64_t)k->max_model_len + 1 - (uint64_t)completion;
        send_context_error(w, hreq, k->max_model_len, prompt, completion);
        return;
    }
    case 429:
        ms_send_error(w, hreq, 429, ms_error_type(429), NULL, NULL,
                      "Too many requests: the server is at capacity, retry later "
                      "(injected by modelsim)");
        return;
    case 500:
        ms_send_error(w, hreq, 500, ms_error_type(500), NULL, NULL,
                      "Internal server error: the engine failed while generating "
                      "(injected by modelsim)");
        return;
    case 503:
        ms_send_error(w, hreq, 503, ms_error_type(503), NULL, NULL,
                      "Service unavailable: the engine is overloaded (injected by modelsim)");
        return;
    default:
        ms_send_error(w, hreq, status, ms_error_type(status), NULL, NULL,
                      "%s (injected by modelsim)", mg_h1_reason(status));
        return;
    }
}

/* X-Return-Error: an integer status in [400, 599]; 0 when absent, -1 when
 * malformed. */
static int forced_status(struct mg_httpd_req *hreq)
{
    size_t n;
    const char *v = mg_httpd_req_header(hreq, "X-Return-Error", &n);
    if (!v)
        return 0;
    if (n != 3)
        return -1;
    int s = 0;
    for (size_t i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        s = s * 10 + (v[i] - '0');
    }
    return s >= 400 && s <= 599 ? s : -1;
}

static void handle_body(struct mg_httpd_req *hreq, const char *body, size_t n, int chat)
{
    struct ms_worker *w = mg_httpd_req_data(hreq);
    mg_httpd_req_set_data(hreq, NULL);
    const struct ms_knobs *k = knobs_of(w);
    struct ms_parsed p;
    struct ms_parse_error perr;
    if (ms_parse_request(body, n, chat, &p, &perr) < 0) {
        bad_request(w, hreq, perr.param, perr.msg);
        return;
    }
    const char *model = k->models[0];
    if (p.model_given) {
        model = p.model_truncated ? NULL : find_model(k, p.model);
        if (!model) {
            ms_send_error(w, hreq, 404, "NotFoundError", "model", "model_not_found",
                          "The model `%.200s` does not exist.", p.model);
            return;
        }
    }

    /* vLLM refuses what does not fit the context before anything else. */
    if (p.max_tokens < 0 ? p.prompt_tokens >= k->max_model_len
                         : (uint64_t)p.prompt_tokens + (uint64_t)p.max_tokens > k->max_model_len) {
        send_context_error(w, hreq, k->max_model_len, p.prompt_tokens, p.max_tokens);
        return;
    }
    int forced = forced_status(hreq);
    if (forced < 0) {
        bad_request(w, hreq, NULL, "X-Return-Error: expected a status code from 400 to 599");
        return;
    }
    if (!forced && k->error_rate > 0 && ms_rng_unit(&w->inject_rng) < k->error_rate)
        forced = (int)k->error_status;
    if (forced) {
        send_injected(w, hreq, forced, &p);
        return;
    }

    struct ms_req *r = req_alloc(w);
    if (!r) {
        ms_send_error(w, hreq, 503, ms_error_type(503), NULL, NULL, "out of memory");
        return;
    }
    r->hreq = hreq;
    r->chat = chat ? 1 : 0;
    r->stream = p.stream ? 1 : 0;
    r->include_usage = p.include_usage ? 1 : 0;
    r->t_arrival_ns = mg_now_ns();
    r->created = (int64_t)time(NULL);
    r->prompt_tokens = p.prompt_tokens;
    r->ttft_ms = k->ttft_ms;
    r->itl_ms = k->itl_ms;
    r->jitter_pct = k->jitter_pct;
    r->ntokens = k->tokens;
    r->finish = "stop";
    if (p.max_tokens > 0 && (uint64_t)p.max_tokens < r->ntokens) {
        r->ntokens = (uint32_t)p.max_tokens;
        r->finish = "length";
    }
    /* Without max_tokens vLLM may use what is left of the context. */
    if (r->ntokens > k->max_model_len - p.prompt_tokens) {
        r->ntokens = k->max_model_len - p.prompt_tokens;
        r->finish = "length";
    }
    if (k->fail_mode != MS_FAIL_NONE && k->fail_rate > 0 &&
        (k->fail_rate >= 1.0 || ms_rng_unit(&w->inject_rng) < k->fail_rate)) {
        r->fail = k->fail_mode;
        r->fail_after = k->fail_after;
    }
    /* The reply is a function of the seed and the prompt only. */
    r->text_rng = k->seed ^ p.prompt_hash;
    r->time_rng = (k->seed ^ p.prompt_hash) + 0x632be59bd9b4e019ull;
    size_t ml = strlen(model), vl = strlen(k->version);
    memcpy(r->model_name, model, ml + 1);
    r->model_len = (unsigned)ml;
    memcpy(r->version, k->version, vl + 1);
    r->version_len = (unsigned)vl;
    r->model = ms_model_stat_get(model);
    make_id(w, r);
    mg_timer_init(&r->timer, timer_cb, r);
    mg_httpd_req_set_data(hreq, r);
    mg_httpd_on_end(hreq, on_end);
    if (r->stream)
        mg_httpd_on_writable(hreq, on_writable);
    if (ms_sched_submit(w, r))
        ms_req_admitted(r);
    else
        set_state(r, MS_RQ_WAITING);
}

static void collected_chat(struct mg_httpd_req *hreq, const char *body, size_t n)
{
    handle_body(hreq, body, n, 1);
}

static void collected_completion(struct mg_httpd_req *hreq, const char *body, size_t n)
{
    handle_body(hreq, body, n, 0);
}

void ms_openai_completions(struct ms_worker *w, struct mg_httpd_req *hreq, int chat)
{
    const struct mg_h1_msg *m = mg_httpd_req_msg(hreq);
    if (m->framing == MG_H1_BODY_LENGTH && m->content_length > MS_BODY_MAX) {
        ms_send_error(w, hreq, 413, ms_error_type(413), NULL, NULL,
                      "Request body too large: %" PRIu64 " bytes, the limit is %zu",
                      m->content_length, MS_BODY_MAX);
        return;
    }
    /* The worker rides in the request's data until the body is in. */
    mg_httpd_req_set_data(hreq, w);
    int rc = mg_httpd_collect_body(hreq, MS_BODY_MAX, chat ? collected_chat : collected_completion);
    if (rc < 0) {
        mg_httpd_req_set_data(hreq, NULL);
        ms_send_error(w, hreq, 500, ms_error_type(500), NULL, NULL,
                      "cannot read the request body: %s", strerror(-rc));
    }
}
