/* Unit tests for sidecar/sse.c: token counting over SSE streams and usage
 * capture from SSE and JSON bodies, identical whatever the span splits
 * (every split position, byte by byte), plus the timing it records. */
#include "sidecar/sse.c"

#include "tests/unit/test.h"

#define ROLE "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0," \
             "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
#define TOK(t) "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0," \
               "\"delta\":{\"content\":\"" t "\"},\"finish_reason\":null}]}\n\n"
#define FINAL "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
#define USAGE(n) "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7," \
                 "\"completion_tokens\":" n ",\"total_tokens\":99," \
                 "\"completion_tokens_details\":{\"reasoning_tokens\":3}}}\n\n"
#define DONE "data: [DONE]\n\n"

struct sse_case {
    const char *name;
    enum sc_body_kind kind;
    const char *body;
    uint64_t events;
    int64_t usage;
};

static const struct sse_case cases[] = {
    {"vLLM chat stream, no usage", SC_BODY_SSE,
     ROLE TOK("Hello") TOK(",") TOK(" world") TOK("!") TOK(" Bye") FINAL DONE, 5, -1},
    {"vLLM chat stream with usage", SC_BODY_SSE,
     ROLE TOK("a") TOK("b") TOK("c") FINAL USAGE("42") DONE, 3, 42},
    {"completions stream (text)", SC_BODY_SSE,
     "data: {\"choices\":[{\"text\":\"Hi\",\"index\":0}]}\n\n"
     "data: {\"choices\":[{\"text\":\" there\",\"index\":0}]}\n\n"
     "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n" DONE,
     2, -1},
    {"CRLF line ends", SC_BODY_SSE,
     "data: {\"delta\":{\"content\":\"x\"}}\r\n\r\ndata: {\"delta\":{\"content\":\"y\"}}\r\n\r\n"
     "data: [DONE]\r\n\r\n",
     2, -1},
    {"CR line ends", SC_BODY_SSE,
     "data: {\"delta\":{\"content\":\"x\"}}\r\rdata: {\"delta\":{\"content\":\"y\"}}\r\r", 2, -1},
    {"comments, event, id and retry lines", SC_BODY_SSE,
     ": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: {\"content\":\"x\"}\n\n"
     ":content \"content\":\"y\"\n\n",
     1, -1},
    {"data without a space", SC_BODY_SSE, "data:{\"content\":\"x\"}\n\n", 1, -1},
    {"a JSON chunk over two data lines", SC_BODY_SSE,
     "data: {\"choices\":[{\"delta\":\ndata: {\"content\":\"x\"}}]}\n\n", 1, -1},
    {"content in a string value does not count", SC_BODY_SSE,
     "data: {\"x\":\"\\\"content\\\":\\\"y\\\"\"}\n\n", 0, -1},
    {"content null or empty does not count", SC_BODY_SSE,
     "data: {\"delta\":{\"content\":null}}\n\ndata: {\"delta\":{\"content\":\"\"}}\n\n", 0, -1},
    {"an escaped content counts", SC_BODY_SSE, "data: {\"delta\":{\"content\":\"\\n\"}}\n\n", 1,
     -1},
    {"whitespace around the colon", SC_BODY_SSE,
     "data: {\"delta\":{\"content\" :\t \"x\"}}\n\n", 1, -1},
    {"\"content\" as a value is no member", SC_BODY_SSE,
     "data: {\"role\":\"content\",\"a\":[\"text\",\"x\"]}\n\n", 0, -1},
    {"an escaped member name is not ours", SC_BODY_SSE,
     "data: {\"cont\\u0065nt\":\"x\"}\n\n", 0, -1},
    {"two choices in one event count once", SC_BODY_SSE,
     "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{\"content\":\"b\"}}]}\n\n", 1,
     -1},
    {"an event not ended by a blank line is not dispatched", SC_BODY_SSE,
     "data: {\"content\":\"x\"}\n\ndata: {\"content\":\"y\"}\n", 1, -1},
    {"another field named like data does not count", SC_BODY_SSE,
     "datax: {\"content\":\"x\"}\n\ndat: {\"content\":\"x\"}\n\n", 0, -1},
    {"usage number at the end of a line", SC_BODY_SSE,
     "data: {\"usage\":{\"completion_tokens\":1234}\n\n", 0, 1234},
    {"JSON whole reply with usage", SC_BODY_JSON,
     "{\"id\":\"x\",\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"hi\"}}],"
     "\"usage\":{\"prompt_tokens\":5,\"total_tokens\":8,\"completion_tokens\":3}}",
     0, 3},
    {"JSON: completion_tokens in a string does not count", SC_BODY_JSON,
     "{\"content\":\"\\\"completion_tokens\\\":99\",\"usage\":{\"completion_tokens\":7}}", 0, 7},
    {"JSON without usage", SC_BODY_JSON, "{\"choices\":[]}", 0, -1},
    {"other content types count nothing", SC_BODY_OTHER, TOK("a") USAGE("5"), 0, -1},
};

static void feed_all(struct sc_sse *s, enum sc_body_kind kind, const char *b, size_t n,
                     size_t split, int bytewise)
{
    sc_sse_init(s, kind);
    if (bytewise) {
        for (size_t i = 0; i < n; i++)
            sc_sse_feed(s, b + i, 1, 1000 + i, NULL);
    } else {
        sc_sse_feed(s, b, split, 1000, NULL);
        sc_sse_feed(s, b + split, n - split, 2000, NULL);
    }
    sc_sse_finish(s);
}

static void t_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct sse_case *c = &cases[i];
        size_t n = strlen(c->body);
        struct sc_sse s;
        int ok = 1;
        /* Whole, split at every position, and byte by byte. */
        for (size_t split = 0; split <= n + 1 && ok; split++) {
            feed_all(&s, c->kind, c->body, n, split > n ? 0 : split, split > n);
            if (s.events != c->events || s.usage != c->usage || s.bytes != n) {
                printf("# %s: split %zu: events %llu usage %lld, want %llu %lld\n", c->name, split,
                       (unsigned long long)s.events, (long long)s.usage,
                       (unsigned long long)c->events, (long long)c->usage);
                ok = 0;
            }
        }
        uint64_t want = c->usage >= 0 ? (uint64_t)c->usage : c->events;
        if (ok && sc_sse_tokens(&s) != want) {
            printf("# %s: tokens %llu, want %llu\n", c->name, (unsigned long long)sc_sse_tokens(&s),
                   (unsigned long long)want);
            ok = 0;
        }
        char name[160];
        snprintf(name, sizeof name, "counts: %s", c->name);
        test_report(name, ok);
    }
}

/* Three-way splits of a stream with usage: every pair of cut points. */
static void t_three_way_splits(void)
{
    static const char b[] = ROLE TOK("a") TOK("\\\"b\\\"") FINAL USAGE("9") DONE;
    size_t n = sizeof b - 1;
    for (size_t i = 0; i <= n; i += 3) {
        for (size_t j = i; j <= n; j += 5) {
            struct sc_sse s;
            sc_sse_init(&s, SC_BODY_SSE);
            sc_sse_feed(&s, b, i, 1, NULL);
            sc_sse_feed(&s, b + i, j - i, 2, NULL);
            sc_sse_feed(&s, b + j, n - j, 3, NULL);
            sc_sse_finish(&s);
            if (s.events != 2 || s.usage != 9) {
                printf("# cuts %zu %zu: events %llu usage %lld\n", i, j,
                       (unsigned long long)s.events, (long long)s.usage);
                CHECK(0);
                return;
            }
        }
    }
}

/* The first body byte's time, and the gaps between spans that completed
 * token events (what becomes TTFT and inter-token latency). */
static void t_timing(void)
{
    struct sc_sse s;
    uint64_t gap = 99;
    sc_sse_init(&s, SC_BODY_SSE);
    CHECK_EQ_INT(sc_sse_feed(&s, "", 0, 50, &gap), 0);
    CHECK_EQ_INT(s.first_ns, 0);
    CHECK_EQ_INT(sc_sse_feed(&s, ROLE, strlen(ROLE), 100, &gap), 0);
    CHECK_EQ_INT(s.first_ns, 100);
    CHECK_EQ_INT(gap, 0);
    CHECK_EQ_INT(sc_sse_feed(&s, TOK("a"), strlen(TOK("a")), 200, &gap), 1);
    CHECK_EQ_INT(gap, 0);   /* the first token has no predecessor */
    /* Half a token event: nothing completes, no gap. */
    static const char t2[] = TOK("b");
    CHECK_EQ_INT(sc_sse_feed(&s, t2, 10, 250, &gap), 0);
    CHECK_EQ_INT(gap, 0);
    CHECK_EQ_INT(sc_sse_feed(&s, t2 + 10, sizeof t2 - 11, 300, &gap), 1);
    CHECK_EQ_INT(gap, 100);
    static const char two[] = TOK("c") TOK("d");
    CHECK_EQ_INT(sc_sse_feed(&s, two, sizeof two - 1, 450, &gap), 2);
    CHECK_EQ_INT(gap, 150);
    CHECK_EQ_INT(s.first_ns, 100);
    CHECK_EQ_INT(sc_sse_tokens(&s), 4);
}

/* Past SC_SSE_JSON_SCAN bytes a JSON body is no longer scanned, only its
 * tail kept, where usage sits. */
static void t_json_large_tail(void)
{
    size_t n = SC_SSE_JSON_SCAN * 3;
    char *b = malloc(n + 200);
    REQUIRE(b);
    size_t o = (size_t)sprintf(b, "{\"choices\":[{\"message\":{\"content\":\"");
    while (o < n)
        b[o++] = 'x';
    o += (size_t)sprintf(b + o, "\"}}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":"
                                "31337,\"total_tokens\":31338}}");
    for (size_t chunk = 1000; chunk <= 70000; chunk *= 7) {
        struct sc_sse s;
        sc_sse_init(&s, SC_BODY_JSON);
        for (size_t i = 0; i < o; i += chunk)
            sc_sse_feed(&s, b + i, i + chunk <= o ? chunk : o - i, 1, NULL);
        sc_sse_finish(&s);
        CHECK_EQ_INT(s.usage, 31337);
        CHECK_EQ_INT(s.bytes, o);
    }
    /* Usage that falls off the tail (far from the end) is not found. */
    o = (size_t)sprintf(b, "{\"usage\":{\"completion_tokens\":5},\"pad\":\"");
    while (o < n)
        b[o++] = 'y';
    o += (size_t)sprintf(b + o, "\"}");
    struct sc_sse s;
    sc_sse_init(&s, SC_BODY_JSON);
    sc_sse_feed(&s, b, o, 1, NULL);
    sc_sse_finish(&s);
    CHECK_EQ_INT(s.usage, 5);   /* it was in the scanned head */
    free(b);
}

static void t_kind(void)
{
    CHECK_EQ_INT(sc_sse_kind("text/event-stream", 17), SC_BODY_SSE);
    CHECK_EQ_INT(sc_sse_kind("Text/Event-Stream; charset=utf-8", 32), SC_BODY_SSE);
    CHECK_EQ_INT(sc_sse_kind("application/json", 16), SC_BODY_JSON);
    CHECK_EQ_INT(sc_sse_kind("application/json;charset=utf-8", 30), SC_BODY_JSON);
    CHECK_EQ_INT(sc_sse_kind("application/jsonl", 17), SC_BODY_OTHER);
    CHECK_EQ_INT(sc_sse_kind("text/plain", 10), SC_BODY_OTHER);
    CHECK_EQ_INT(sc_sse_kind("", 0), SC_BODY_OTHER);
}

/* Malformed events (a backend that broke mid-event) are counted at the
 * event's end, wherever the spans split; well-formed ones never are. */
static void t_malformed(void)
{
    static const struct {
        const char *body;
        uint32_t bad;
    } mcases[] = {
        {ROLE TOK("a") FINAL DONE, 0},
        {"data: {\"a\":[1,2,{\"b\":\"}]\"}]}\n\n" DONE, 0},
        {"data: {\"x\":1}\ndata: \n\n", 0},
        {": comment {\n\nevent: x\ndata: {}\n\n", 0},
        /* modelsim's --fail-mode malformed: the object stops after a name. */
        {ROLE "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n" TOK("b"), 1},
        {"data: {\"a\":\"unterminated\n\n", 1},
        {"data: {\"a\":1}}\n\n", 1},
        {"data: {\"a\":1\n\ndata: [1\n\n", 2},
    };
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
        const char *b = mcases[i].body;
        size_t n = strlen(b);
        for (size_t cut = 0; cut <= n; cut += (n / 7) + 1) {
            struct sc_sse s;
            sc_sse_init(&s, SC_BODY_SSE);
            sc_sse_feed(&s, b, cut, 1, NULL);
            sc_sse_feed(&s, b + cut, n - cut, 2, NULL);
            if (mcases[i].bad) {
                /* bad_end is just past the blank line of the first broken event. */
                const char *e = b + s.bad_end;
                CHECK(s.bad_end >= 2 && s.bad_end <= n && e[-1] == '\n' && e[-2] == '\n');
                /* What may be passed on ends before the broken event. */
                CHECK(s.good_end < s.bad_end);
                CHECK(s.good_end == 0 || (b[s.good_end - 1] == '\n' && b[s.good_end - 2] == '\n'));
            } else {
                CHECK(s.bad_end == 0);
            }
            if (s.malformed != mcases[i].bad)
                printf("# case %zu cut %zu: %u malformed\n", i, cut, s.malformed);
            CHECK_EQ_INT(s.malformed, mcases[i].bad);
        }
    }
}

/* What ends the event a stream stopped in, so an appended event stands
 * alone. */
static void t_close_event(void)
{
    static const struct {
        const char *body, *close;
    } mcases[] = {
        {"", ""},
        {TOK("a"), ""},
        {"data: {\"a\"", "\n\n"},
        {"data: {\"a\":1}\n", "\n"},
        {"data: {\"a\":1}\r", "\n\n"},
        {": keep-alive\n\n", ""},
    };
    for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
        struct sc_sse s;
        char out[4];
        sc_sse_init(&s, SC_BODY_SSE);
        sc_sse_feed(&s, mcases[i].body, strlen(mcases[i].body), 1, NULL);
        size_t n = sc_sse_close_event(&s, out);
        CHECK_EQ_MEM(out, n, mcases[i].close);
    }
}

int main(void)
{
    RUN(t_malformed);
    RUN(t_close_event);
    t_cases();
    RUN(t_three_way_splits);
    RUN(t_timing);
    RUN(t_json_large_tail);
    RUN(t_kind);
    return test_done();
}
