/* modelsim's request parsers (tests/modelsim/reqparse.c): the fast scanner
 * takes the shapes clients send, declines everything else, and never
 * disagrees with jansson on a body it accepts, including on thousands of
 * mutated bodies. */
#include "tests/modelsim/reqparse.c"
#include "tests/modelsim/tokens.c"
#include "tests/modelsim/reqparse_check.h"
#include "tests/unit/test.h"

struct body {
    int chat;
    const char *json;
    int fast;   /* 1: the fast path must take it */
};

static const struct body bodies[] = {
    {1, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Say hello.\"}],\"max_tokens\":16}", 1},
    {1, " {\"messages\" : [ {\"content\":\"a\\nb \\\"q\\\" \\\\ \\/ \\t\",\"role\":\"user\"} ] } \n", 1},
    {1, "{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}],\"stream\":true,\"stream_options\":{\"include_usage\":true}}", 1},
    {1, "{\"messages\":[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"content\":\"42\"}],\"temperature\":0.7,\"top_p\":1,\"n\":1,\"stop\":null,\"seed\":-3,\"user\":\"u\"}", 1},
    {1, "{\"model\":null,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":5,\"max_tokens\":9}", 1},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":false,\"stream_options\":null,\"logprobs\":false,\"tools\":[],\"extra\":{\"a\":[1,2,{\"b\":[true,false,null]}]}}", 1},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}", 1},
    {0, "{\"model\":\"m\",\"prompt\":\"Once upon a time\",\"max_tokens\":4}", 1},
    {0, "{\"prompt\":[\"Once\"],\"stream\":true}", 1},
    {0, "{\"prompt\":[1,2,3,4,5]}", 1},
    {0, "{\"prompt\":[[7,8]],\"max_completion_tokens\":\"ignored\"}", 1},
    {0, "{\"prompt\":\"\"}", 1},
    /* Declined: jansson decides (and most are errors). */
    {1, "{\"messages\":[]}", 0},
    {1, "{\"model\":\"m\"}", 0},
    {1, "{\"messages\":[{\"content\":\"no role\"}]}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":{\"include_usage\":true}}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"\\u00e9\"}]}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"caf\xc3\xa9\"}]}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"big\":1e400}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"big\":123456789012345678901234}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]} x", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"a\":01}", 0},
    {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"tab\there\"}]}", 0},
    {1, "[1]", 0},
    {1, "", 0},
    {0, "{\"prompt\":[]}", 0},
    {0, "{\"prompt\":[\"a\",\"b\"]}", 0},
    {0, "{\"prompt\":[-1]}", 0},
    {0, "{\"prompt\":[[1],[2]]}", 0},
};

static void t_table(void)
{
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        int fast_ok;
        int agree = ms_reqparse_agree(bodies[i].json, strlen(bodies[i].json), bodies[i].chat,
                                      &fast_ok);
        char name[96];
        snprintf(name, sizeof name, "body %zu: %s, agrees with jansson", i,
                 bodies[i].fast ? "fast path" : "declined");
        int ok = agree && fast_ok == bodies[i].fast;
        if (!ok)
            printf("# body %zu: agree %d fast %d: %s\n", i, agree, fast_ok, bodies[i].json);
        test_report(name, ok);
    }
}

static void t_values(void)
{
    struct ms_parsed p;
    const char *b = "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":\"abcdefgh\"}],"
                    "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"max_tokens\":7}";
    REQUIRE(ms_parse_fast(b, strlen(b), 1, &p) == 0);
    CHECK_EQ_STR(p.model, "llama");
    CHECK_EQ_INT(p.stream, 1);
    CHECK_EQ_INT(p.include_usage, 1);
    CHECK_EQ_INT(p.max_tokens, 7);
    /* 8 bytes: 2 tokens, plus 4 for the message and 2 for the template. */
    CHECK_EQ_INT(p.prompt_tokens, 8);
    struct ms_parsed q;
    const char *c = "{\"messages\":[{\"content\":\"abcdefgh\",\"role\":\"user\"}]}";
    REQUIRE(ms_parse_fast(c, strlen(c), 1, &q) == 0);
    CHECK(q.prompt_hash == p.prompt_hash);   /* member order does not matter */
    CHECK_EQ_INT(q.model_given, 0);
}

static void t_errors_come_from_jansson(void)
{
    struct ms_parsed p;
    struct ms_parse_error e;
    const char *b = "{\"model\":\"m\"}";
    CHECK_EQ_INT(ms_parse_request(b, strlen(b), 1, &p, &e), -EINVAL);
    CHECK_EQ_STR(e.param, "messages");
    CHECK_EQ_STR(e.msg, "messages: Field required");
    b = "{bad";
    CHECK_EQ_INT(ms_parse_request(b, strlen(b), 1, &p, &e), -EINVAL);
    CHECK(strncmp(e.msg, "Invalid JSON body at line 1", 27) == 0);
}

/* Mutations of the accepted bodies: byte flips, deletions, insertions of
 * JSON-significant characters. Whatever the fast path accepts, jansson must
 * accept identically. */
static void t_mutations(void)
{
    static const char alphabet[] = "{}[]\",:\\/0123456789.eE+-tfnul \n\t\x01\x80\xff";
    uint64_t rng = 12345;
    char buf[1024];
    unsigned accepted = 0, disagreements = 0;
    for (int iter = 0; iter < 60000; iter++) {
        const struct body *src = &bodies[ms_rng_next(&rng) % 12];
        size_t n = strlen(src->json);
        memcpy(buf, src->json, n);
        int edits = 1 + (int)(ms_rng_next(&rng) % 3);
        for (int k = 0; k < edits && n > 0 && n < sizeof buf - 1; k++) {
            size_t at = ms_rng_next(&rng) % n;
            char ch = alphabet[ms_rng_next(&rng) % (sizeof alphabet - 1)];
            switch (ms_rng_next(&rng) % 3) {
            case 0: buf[at] = ch; break;
            case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
            default: memmove(buf + at + 1, buf + at, n - at); buf[at] = ch; n++; break;
            }
        }
        int fast_ok;
        if (!ms_reqparse_agree(buf, n, src->chat, &fast_ok)) {
            if (disagreements++ < 5)
                printf("# disagreement on: %.*s\n", (int)n, buf);
        }
        accepted += (unsigned)fast_ok;
    }
    printf("# %u of 60000 mutated bodies taken by the fast path\n", accepted);
    CHECK_EQ_INT(disagreements, 0);
    CHECK(accepted > 1000);
}

int main(void)
{
    t_table();
    RUN(t_values);
    RUN(t_errors_come_from_jansson);
    RUN(t_mutations);
    return test_done();
}
