/* Fuzzing of the sidecar's output-token scanner (sidecar/sse.c): the
 * counts (token events, usage) and byte totals must not depend on how the
 * body is split into spans. The first byte picks the body kind and a split
 * position; the rest is fed whole, split in two there, and byte by byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sidecar/sse.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void run(struct sc_sse *s, enum sc_body_kind kind, const char *p, size_t n, size_t split,
                int bytewise)
{
    sc_sse_init(s, kind);
    uint64_t t = 1;
    if (bytewise) {
        for (size_t i = 0; i < n; i++)
            sc_sse_feed(s, p + i, 1, t++, NULL);
    } else {
        sc_sse_feed(s, p, split, t++, NULL);
        sc_sse_feed(s, p + split, n - split, t++, NULL);
    }
    sc_sse_finish(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum sc_body_kind kind = data[0] % 3 == 0 ? SC_BODY_JSON : SC_BODY_SSE;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    size_t split = n ? (size_t)data[0] * 7919 % (n + 1) : 0;
    static struct sc_sse a, b, c;
    run(&a, kind, p, n, n, 0);
    run(&b, kind, p, n, split, 0);
    if (a.events != b.events || a.usage != b.usage || a.bytes != n || b.bytes != n)
        abort();
    /* Byte by byte too (bounded, so a run stays fast). */
    if (n <= 4096) {
        run(&c, kind, p, n, 0, 1);
        if (a.events != c.events || a.usage != c.usage)
            abort();
    }
    if (sc_sse_tokens(&a) != (a.usage >= 0 ? (uint64_t)a.usage : a.events))
        abort();
    return 0;
}
