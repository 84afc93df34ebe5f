/* Unit tests for lib/log.c: every line parses back as a JSON object with the
 * expected fields, escaping, levels (and no argument evaluation when off),
 * truncation, text mode, errno preservation, and whole lines from 4
 * concurrent threads through a pipe. */
#include "lib/log.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <jansson.h>
#include <pthread.h>
#include <unistd.h>

/* Output goes to a file in the test's directory; read_all() returns what was
 * written since capture_start(). */
static int cap_fd = -1;

static void capture_start(void)
{
    if (cap_fd != -1)
        close(cap_fd);
    cap_fd = open("log.out", O_RDWR | O_CREAT | O_TRUNC, 0600);
    mg_log_set_fd(cap_fd);
    mg_log_set_format(MG_LOG_JSON);
    mg_log_set_level(MG_LOG_DEBUG);
}

static char *read_all(size_t *len)
{
    static char buf[1 << 20];
    ssize_t n = pread(cap_fd, buf, sizeof buf - 1, 0);
    if (n < 0)
        n = 0;
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

/* Parses the only line written; NULL unless it is exactly one JSON object
 * followed by a newline. */
static json_t *one_line(void)
{
    size_t n;
    char *s = read_all(&n);
    if (n == 0 || s[n - 1] != '\n' || memchr(s, '\n', n - 1)) {
        printf("# not exactly one line: %s\n", s);
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(s, n - 1, JSON_ALLOW_NUL, &err);
    if (!v || !json_is_object(v)) {
        printf("# not a JSON object (%s): %s\n", err.text, s);
        json_decref(v);
        return NULL;
    }
    return v;
}

static void t_json_line_fields(void)
{
    capture_start();
    CHECK_EQ_INT(mg_log(MG_LOG_WARN, "upstream connect failed", "endpoint", MG_S("10.0.3.7:8080"),
                        "attempt", MG_I(-3), "bytes", MG_U(123456789012ull),
                        "ratio", MG_F(0.25), "retry", MG_B(1), "error", MG_ERRNO(-ECONNREFUSED),
                        "part", MG_SN("abcdef", 3), "none", MG_S(NULL)),
                 0);
    json_t *v = one_line();
    REQUIRE(v != NULL);
    const char *ts = json_string_value(json_object_get(v, "ts"));
    REQUIRE(ts != NULL);
    /* 2024-05-01T12:34:56.789Z */
    CHECK_EQ_INT(strlen(ts), 24);
    CHECK(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' && ts[16] == ':' &&
          ts[19] == '.' && ts[23] == 'Z');
    CHECK_EQ_STR(json_string_value(json_object_get(v, "level")), "warn");
    CHECK_EQ_STR(json_string_value(json_object_get(v, "msg")), "upstream connect failed");
    CHECK_EQ_STR(json_string_value(json_object_get(v, "endpoint")), "10.0.3.7:8080");
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "attempt")), -3);
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "bytes")), 123456789012ull);
    CHECK(json_real_value(json_object_get(v, "ratio")) == 0.25);
    CHECK(json_is_true(json_object_get(v, "retry")));
    CHECK_EQ_STR(json_string_value(json_object_get(v, "error")), strerror(ECONNREFUSED));
    CHECK_EQ_STR(json_string_value(json_object_get(v, "part")), "abc");
    CHECK(json_is_null(json_object_get(v, "none")));
    /* ts, level, msg come first, then the fields in order. */
    CHECK(strncmp(read_all(NULL), "{\"ts\":\"", 7) == 0);
    CHECK(strstr(read_all(NULL), "\"level\":\"warn\",\"msg\":\"upstream connect failed\",\"endpoint\"") != NULL);
    json_decref(v);

    /* jansson cannot hold 2^64-1 as an integer: check the text. */
    capture_start();
    mg_log(MG_LOG_INFO, "max", "u", MG_U(18446744073709551615ull));
    CHECK(strstr(read_all(NULL), "\"msg\":\"max\",\"u\":18446744073709551615}\n") != NULL);
}

static void t_escaping(void)
{
    capture_start();
    const char raw[] = "q\"b\\s/n\nr\rt\tc\x01\x1f d\x7f u\xc3\xa9 bad\xff\xfe end \xe2\x82";
    mg_log(MG_LOG_INFO, "a \"quoted\"\nmessage", "s", MG_S(raw), "nul", MG_SN("a\0b", 3),
           "k\"ey", MG_I(1));
    json_t *v = one_line();
    REQUIRE(v != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(v, "msg")), "a \"quoted\"\nmessage");
    CHECK_EQ_STR(json_string_value(json_object_get(v, "s")),
                 "q\"b\\s/n\nr\rt\tc\x01\x1f d\x7f u\xc3\xa9 bad\xef\xbf\xbd\xef\xbf\xbd end "
                 "\xef\xbf\xbd\xef\xbf\xbd");
    json_t *nul = json_object_get(v, "nul");
    CHECK_EQ_INT(json_string_length(nul), 3);
    CHECK(memcmp(json_string_value(nul), "a\0b", 3) == 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "k\"ey")), 1);
    /* Control characters are escaped, not written raw. */
    const char *s = read_all(NULL);
    CHECK(strstr(s, "\\u0001\\u001f d\\u007f") != NULL);
    CHECK(strchr(s, '\r') == NULL && strchr(s, '\t') == NULL);
    json_decref(v);
}

static void t_numbers(void)
{
    capture_start();
    mg_log(MG_LOG_INFO, "n", "min", MG_I(-9223372036854775807LL - 1), "zero", MG_I(0),
           "third", MG_F(1.0 / 3), "big", MG_F(1e300), "nan", MG_F(NAN), "inf", MG_F(-INFINITY),
           "i", MG_I((int)-7), "u8", MG_U((unsigned char)200));
    json_t *v = one_line();
    REQUIRE(v != NULL);
    CHECK(json_integer_value(json_object_get(v, "min")) == -9223372036854775807LL - 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "zero")), 0);
    CHECK(json_real_value(json_object_get(v, "third")) == 1.0 / 3);
    CHECK(json_real_value(json_object_get(v, "big")) == 1e300);
    CHECK_EQ_STR(json_string_value(json_object_get(v, "nan")), "NaN");
    CHECK_EQ_STR(json_string_value(json_object_get(v, "inf")), "-Inf");
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "i")), -7);
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "u8")), 200);
    json_decref(v);
}

static int evaluated;
static int side_effect(void)
{
    return ++evaluated;
}

static void t_levels(void)
{
    capture_start();
    mg_log_set_level(MG_LOG_WARN);
    CHECK_EQ_INT(mg_log_get_level(), MG_LOG_WARN);
    evaluated = 0;
    CHECK_EQ_INT(mg_log(MG_LOG_DEBUG, "hidden", "n", MG_I(side_effect())), 0);
    CHECK_EQ_INT(mg_log(MG_LOG_INFO, "hidden", "n", MG_I(side_effect())), 0);
    /* A disabled level evaluates none of its arguments. */
    CHECK_EQ_INT(evaluated, 0);
    size_t n;
    read_all(&n);
    CHECK_EQ_INT(n, 0);
    mg_log(MG_LOG_ERROR, "shown", "n", MG_I(side_effect()));
    CHECK_EQ_INT(evaluated, 1);
    json_t *v = one_line();
    REQUIRE(v != NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(v, "level")), "error");
    json_decref(v);
    mg_log_set_level(MG_LOG_OFF);
    CHECK(!mg_log_enabled(MG_LOG_ERROR));
    mg_log_set_level(MG_LOG_DEBUG);
    CHECK(mg_log_enabled(MG_LOG_DEBUG));

    enum mg_log_level l;
    CHECK_EQ_INT(mg_log_level_parse("DEBUG", &l), 0);
    CHECK_EQ_INT(l, MG_LOG_DEBUG);
    CHECK_EQ_INT(mg_log_level_parse("warning", &l), 0);
    CHECK_EQ_INT(l, MG_LOG_WARN);
    CHECK_EQ_INT(mg_log_level_parse("off", &l), 0);
    CHECK_EQ_INT(l, MG_LOG_OFF);
    CHECK_EQ_INT(mg_log_level_parse("verbose", &l), -EINVAL);
    CHECK_EQ_STR(mg_log_level_name(MG_LOG_ERROR), "error");
}

static void t_truncation_keeps_json(void)
{
    capture_start();
    static char big[10000];
    memset(big, 'x', sizeof big - 1);
    /* Escapes near the cut must not be split. */
    for (size_t i = 0; i < sizeof big - 1; i += 7)
        big[i] = '"';
    mg_log(MG_LOG_INFO, "big", "before", MG_I(1), "s", MG_S(big), "after", MG_I(2));
    size_t n;
    read_all(&n);
    CHECK(n <= MG_LOG_LINE_MAX);
    CHECK(n > MG_LOG_LINE_MAX - 64);
    json_t *v = one_line();
    REQUIRE(v != NULL);
    CHECK(json_is_true(json_object_get(v, "truncated")));
    CHECK_EQ_INT(json_integer_value(json_object_get(v, "before")), 1);
    CHECK(json_object_get(v, "after") == NULL);
    const char *s = json_string_value(json_object_get(v, "s"));
    REQUIRE(s != NULL);
    CHECK(strlen(s) > 3000);
    CHECK(strncmp(s, big, strlen(s)) == 0);
    json_decref(v);

    /* Many small fields: the line ends before the field that does not fit. */
    capture_start();
    mg_log(MG_LOG_INFO, "many", "a", MG_S(big + 5000), "b", MG_S(big + 5000), "c", MG_I(3));
    v = one_line();
    REQUIRE(v != NULL);
    CHECK(json_is_true(json_object_get(v, "truncated")));
    json_decref(v);
}

static void t_text_mode(void)
{
    capture_start();
    mg_log_set_format(MG_LOG_TEXT);
    mg_log(MG_LOG_INFO, "route table applied", "version", MG_I(7), "source", MG_S("websocket"),
           "note", MG_S("two words"), "empty", MG_S(""), "ok", MG_B(0), "nan", MG_F(NAN));
    mg_log_set_format(MG_LOG_JSON);
    size_t n;
    const char *s = read_all(&n);
    CHECK_EQ_INT(s[23], 'Z');
    CHECK_EQ_STR(s + 24, " INFO  route table applied version=7 source=websocket note=\"two words\" "
                         "empty=\"\" ok=false nan=NaN\n");
}

static void t_errno_preserved_and_drops(void)
{
    capture_start();
    errno = EPIPE;
    mg_log(MG_LOG_INFO, "x");
    CHECK_EQ_INT(errno, EPIPE);
    uint64_t before = mg_log_dropped();
    mg_log_set_fd(-1);
    errno = 0;
    CHECK_EQ_INT(mg_log(MG_LOG_ERROR, "to nowhere"), -EBADF);
    CHECK_EQ_INT(errno, 0);
    CHECK_EQ_INT(mg_log_dropped(), before + 1);
    mg_log_set_fd(cap_fd);
}

/* --- concurrency ---------------------------------------------------------- */

#define THREADS 4
#define LINES_PER_THREAD 3000

struct reader {
    int fd;
    char *buf;
    size_t len, cap;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    for (;;) {
        if (r->len == r->cap)
            break;
        ssize_t n = read(r->fd, r->buf + r->len, r->cap - r->len);
        if (n <= 0)
            break;
        r->len += (size_t)n;
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    long id = (long)arg;
    char pad[3000];
    memset(pad, 'a' + (int)id, sizeof pad);
    for (int i = 0; i < LINES_PER_THREAD; i++) {
        /* Lengths vary from tiny to most of a pipe buffer. */
        size_t plen = (size_t)(i * 37 + id * 11) % sizeof pad;
        mg_log(MG_LOG_INFO, "concurrent", "thread", MG_I(id), "seq", MG_I(i),
               "pad", MG_SN(pad, plen));
    }
    return NULL;
}

static void t_concurrent_whole_lines(void)
{
    int p[2];
    REQUIRE(pipe(p) == 0);
    struct reader r = {p[0], NULL, 0, (size_t)64 << 20};
    r.buf = malloc(r.cap);
    REQUIRE(r.buf != NULL);
    mg_log_set_level(MG_LOG_DEBUG);
    mg_log_set_format(MG_LOG_JSON);
    mg_log_set_fd(p[1]);
    pthread_t rt, wt[THREADS];
    pthread_create(&rt, NULL, reader_main, &r);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&wt[i], NULL, writer_main, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(wt[i], NULL);
    mg_log_set_fd(cap_fd);
    close(p[1]);
    pthread_join(rt, NULL);
    close(p[0]);

    int next[THREADS] = {0};
    size_t lines = 0, bad = 0;
    char *s = r.buf, *end = r.buf + r.len;
    while (s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl) {
            bad++;
            break;
        }
        json_error_t err;
        json_t *v = json_loadb(s, (size_t)(nl - s), 0, &err);
        long id = v ? (long)json_integer_value(json_object_get(v, "thread")) : -1;
        long seq = v ? (long)json_integer_value(json_object_get(v, "seq")) : -1;
        const char *pad = v ? json_string_value(json_object_get(v, "pad")) : NULL;
        size_t want = id >= 0 && id < THREADS ? (size_t)(seq * 37 + id * 11) % 3000 : 0;
        /* Each thread's lines arrive whole and in its own order. */
        if (!v || id < 0 || id >= THREADS || seq != next[id] || !pad || strlen(pad) != want ||
            (want && pad[0] != 'a' + id) || json_object_get(v, "truncated")) {
            if (bad++ < 3)
                printf("# bad line (%.60s...)\n", s);
        } else {
            next[id]++;
        }
        json_decref(v);
        lines++;
        s = nl + 1;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(lines, THREADS * LINES_PER_THREAD);
    for (int i = 0; i < THREADS; i++)
        CHECK_EQ_INT(next[i], LINES_PER_THREAD);
    free(r.buf);
}

/* Changing the level from another thread takes effect in this one. */
static void *set_level_main(void *arg)
{
    (void)arg;
    mg_log_set_level(MG_LOG_ERROR);
    return NULL;
}

static void t_level_from_other_thread(void)
{
    mg_log_set_level(MG_LOG_DEBUG);
    pthread_t t;
    pthread_create(&t, NULL, set_level_main, NULL);
    pthread_join(t, NULL);
    CHECK(!mg_log_enabled(MG_LOG_WARN));
    CHECK(mg_log_enabled(MG_LOG_ERROR));
    mg_log_set_level(MG_LOG_INFO);
}

int main(void)
{
    RUN(t_json_line_fields);
    RUN(t_escaping);
    RUN(t_numbers);
    RUN(t_levels);
    RUN(t_truncation_keeps_json);
    RUN(t_text_mode);
    RUN(t_errno_preserved_and_drops);
    RUN(t_concurrent_whole_lines);
    RUN(t_level_from_other_thread);
    mg_log_set_fd(2);
    if (cap_fd != -1)
        close(cap_fd);
    unlink("log.out");
    return test_done();
}
