/* Unit tests for lib/utf8.c: RFC 3629 validity, sequence lengths. */
#include "lib/utf8.h"
#include "tests/unit/test.h"

static const struct {
    const char *name;
    const char *s;
    size_t n;
    int valid;
} cases[] = {
    {"ASCII", "hello", 5, 1},
    {"empty", "", 0, 1},
    {"2-byte e-acute", "caf\xc3\xa9", 5, 1},
    {"3-byte euro sign", "\xe2\x82\xac", 3, 1},
    {"4-byte emoji", "\xf0\x9f\x98\x80", 4, 1},
    {"U+10FFFF is the last code point", "\xf4\x8f\xbf\xbf", 4, 1},
    {"past U+10FFFF", "\xf4\x90\x80\x80", 4, 0},
    {"overlong slash", "\xc0\xaf", 2, 0},
    {"overlong 3-byte NUL", "\xe0\x80\x80", 3, 0},
    {"surrogate U+D800", "\xed\xa0\x80", 3, 0},
    {"lone continuation byte", "\x80", 1, 0},
    {"truncated 3-byte at the end", "ab\xe2\x82", 4, 0},
    {"bad continuation", "\xe2\x28\xa1", 3, 0},
    {"0xFF never appears", "\xff", 1, 0},
    {"NUL is valid UTF-8", "a\0b", 3, 1},
};

static void t_seq_lengths(void)
{
    CHECK_EQ_INT(mg_utf8_seq((const unsigned char *)"a", 1), 1);
    CHECK_EQ_INT(mg_utf8_seq((const unsigned char *)"\xc3\xa9", 2), 2);
    CHECK_EQ_INT(mg_utf8_seq((const unsigned char *)"\xe2\x82\xac", 3), 3);
    CHECK_EQ_INT(mg_utf8_seq((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
    /* Cut short by n, though the bytes past n would complete it. */
    CHECK_EQ_INT(mg_utf8_seq((const unsigned char *)"\xe2\x82\xac", 2), 0);
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[96];
        snprintf(name, sizeof name, "utf8: %s", cases[i].name);
        test_report(name, mg_utf8_valid(cases[i].s, cases[i].n) == cases[i].valid);
    }
    RUN(t_seq_lengths);
    return test_done();
}
