/* A completion request inside modelsim: its state machine and what it
 * needs to produce its reply. Shared by openai.c (which drives it) and
 * sched.c (which queues it). */
#ifndef MODELSIM_REQ_H
#define MODELSIM_REQ_H

#include "tests/modelsim/modelsim.h"

enum ms_req_state {
    MS_RQ_WAITING,    /* queued for a running slot */
    MS_RQ_PREFILL,    /* admitted; the time-to-first-token timer runs */
    MS_RQ_DECODE,     /* emitting tokens, one per inter-token timer */
    MS_RQ_STALLED,    /* failure injection: sends nothing more, ever */
    MS_RQ_FINISHED,   /* the reply is out (or was cut); waiting for on_end */
};

struct ms_req {
    struct ms_worker *w;
    struct mg_httpd_req *hreq;
    struct ms_req *next_free;
    struct ms_req *qprev, *qnext;       /* sched.c's FIFO */
    struct mg_timer timer;
    struct ms_model_stat *model;
    enum ms_req_state state;
    unsigned chat : 1;                  /* chat.completion vs text_completion */
    unsigned stream : 1;
    unsigned include_usage : 1;
    unsigned queued : 1;
    unsigned running : 1;               /* holds a sched slot */
    unsigned headers_sent : 1;
    unsigned blocked : 1;               /* output above high water */
    unsigned due : 1;                   /* a token fell due while blocked */
    unsigned counted : 1;               /* request_success counted */
    enum ms_fail_mode fail;             /* injected failure for this request */
    uint32_t fail_after;
    uint32_t ttft_ms, itl_ms, jitter_pct;
    uint32_t ntokens;                   /* tokens this reply has */
    uint32_t emitted;
    uint32_t prompt_tokens;
    uint32_t kv_held;                   /* tokens counted in model->kv_tokens */
    const char *finish;                 /* "stop" or "length" */
    uint64_t text_rng;                  /* draws the words */
    uint64_t time_rng;                  /* draws the jitter */
    uint64_t t_arrival_ns, t_first_ns, t_last_ns;
    int64_t created;
    char id[48];                        /* "chatcmpl-<32 hex>" / "cmpl-<32 hex>" */
    unsigned id_len;
    char model_name[MS_NAME_MAX];
    unsigned model_len;
    char version[MS_VERSION_MAX];
    unsigned version_len;
};

#endif
