/* Unit tests for lib/buf.c: the cap is enforced, consumed space is reused. */
#include "lib/buf.h"
#include "tests/unit/test.h"

#include <errno.h>

static void t_append_and_consume(void)
{
    struct mg_buf b;
    mg_buf_init(&b, 64);
    CHECK_EQ_INT(mg_buf_append_str(&b, "hello "), 0);
    CHECK_EQ_INT(mg_buf_printf(&b, "%s %d", "world", 42), 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "hello world 42");
    mg_buf_consume(&b, 6);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "world 42");
    mg_buf_consume(&b, 100);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(b.off, 0);
    mg_buf_free(&b);
}

static void t_cap_enforced(void)
{
    struct mg_buf b;
    mg_buf_init(&b, 10);
    CHECK_EQ_INT(mg_buf_append(&b, "0123456789", 10), 0);
    CHECK_EQ_INT(mg_buf_append(&b, "x", 1), -ENOBUFS);
    CHECK_EQ_INT(b.len, 10);
    /* Consuming makes room again, without growing past the cap. */
    mg_buf_consume(&b, 4);
    CHECK_EQ_INT(mg_buf_append(&b, "abcd", 4), 0);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "456789abcd");
    CHECK(b.cap <= 256);
    CHECK_EQ_INT(mg_buf_printf(&b, "%d", 1), -ENOBUFS);
    mg_buf_free(&b);
}

static void t_huge_reserve_refused(void)
{
    struct mg_buf b;
    mg_buf_init(&b, (size_t)-1);
    CHECK_EQ_INT(mg_buf_append(&b, "a", 1), 0);
    CHECK(mg_buf_reserve(&b, (size_t)-1) < 0);
    CHECK_EQ_INT(b.len, 1);
    mg_buf_free(&b);
}

static void t_tail_commit(void)
{
    struct mg_buf b;
    mg_buf_init(&b, 1024);
    REQUIRE(mg_buf_reserve(&b, 100) == 0);
    CHECK(mg_buf_room(&b) >= 100);
    memcpy(mg_buf_tail(&b), "abc", 3);
    mg_buf_commit(&b, 3);
    CHECK_EQ_MEM(mg_buf_head(&b), b.len, "abc");
    mg_buf_free(&b);
}

int main(void)
{
    RUN(t_append_and_consume);
    RUN(t_cap_enforced);
    RUN(t_huge_reserve_refused);
    RUN(t_tail_commit);
    return test_done();
}
