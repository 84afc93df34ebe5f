/* A minimal unit-test harness. Each test binary prints one line per case:
 *   ok - NAME
 *   not ok - NAME
 *   skip - NAME: why
 * and "# file:line: ..." diagnostics above a failing case. tests/run.sh
 * counts those lines; a binary that crashes or times out counts as a failure.
 *
 *   static void t_parse_simple(void) { CHECK(x == 1); CHECK_EQ_INT(a, b); }
 *   int main(void) { RUN(t_parse_simple); return test_done(); }
 */
#ifndef MG_TEST_H
#define MG_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_;          /* the current case failed */
static int test_passed_total_, test_failed_total_, test_skipped_total_;
static const char *test_skip_why_;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            printf("# %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                   \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_) {                                                      \
            printf("# %s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__,  \
                   #a, #b, a_, b_);                                          \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                   \
    do {                                                                     \
        const char *a_ = (a), *b_ = (b);                                     \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                             \
            printf("# %s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__,        \
                   __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

/* Compare a (pointer, length) span against a C string. */
#define CHECK_EQ_MEM(p, n, s)                                                \
    do {                                                                     \
        const char *p_ = (const char *)(p), *s_ = (s);                       \
        size_t n_ = (size_t)(n);                                             \
        if (!p_ || n_ != strlen(s_) || memcmp(p_, s_, n_) != 0) {            \
            printf("# %s:%d: %s == \"%s\": got \"%.*s\"\n", __FILE__,        \
                   __LINE__, #p, s_, p_ ? (int)n_ : 6, p_ ? p_ : "(null)");  \
            test_failed_ = 1;                                                \
        }                                                                    \
    } while (0)

/* Stop the current case early (after a failed CHECK that later code needs). */
#define REQUIRE(cond)                                                        \
    do {                                                                     \
        CHECK(cond);                                                         \
        if (test_failed_) return;                                            \
    } while (0)

#define SKIP(why)                                                            \
    do {                                                                     \
        test_skip_why_ = (why);                                              \
        return;                                                              \
    } while (0)

static inline void test_run_(const char *name, void (*fn)(void))
{
    test_failed_ = 0;
    test_skip_why_ = NULL;
    fn();
    if (test_failed_) {
        printf("not ok - %s\n", name);
        test_failed_total_++;
    } else if (test_skip_why_) {
        printf("skip - %s: %s\n", name, test_skip_why_);
        test_skipped_total_++;
    } else {
        printf("ok - %s\n", name);
        test_passed_total_++;
    }
    fflush(stdout);
}

#define RUN(fn) test_run_(#fn, fn)

/* Report a case whose result was computed elsewhere (table-driven tests). */
static inline void test_report(const char *name, int ok)
{
    if (ok) {
        printf("ok - %s\n", name);
        test_passed_total_++;
    } else {
        printf("not ok - %s\n", name);
        test_failed_total_++;
    }
    fflush(stdout);
}

static inline int test_done(void)
{
    printf("# %d passed, %d failed, %d skipped\n", test_passed_total_,
           test_failed_total_, test_skipped_total_);
    return test_failed_total_ ? 1 : 0;
}

#endif
