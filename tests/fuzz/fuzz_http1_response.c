/* libFuzzer target: the HTTP/1 response parser (1xx, HEAD, EOF framing) and
 * the body decoder over the rest of the input, then the next response; run
 * whole and split at a fuzzer-chosen point, whose traces must match. Also
 * decodes the input as a bare chunked body both ways. */
#include "tests/fuzz/http1_drive.h"

/* The whole input as a chunked body, in one piece and in pieces of `step`. */
static void chunked_only(const char *in, size_t n, size_t step)
{
    struct mg_h1_msg m;
    struct mg_h1_body a, b;
    uint64_t ha = 0, hb = 0;
    size_t pa = 0, pb = 0;
    long ra = 0, rb = 0;
    memset(&m, 0, sizeof m);
    m.framing = MG_H1_BODY_CHUNKED;
    m.status = 200;
    mg_h1_body_init(&a, &m, NULL);
    mg_h1_body_init(&b, &m, NULL);
    while (pa < n && !a.done) {
        const char *d;
        size_t dl;
        ra = mg_h1_body_decode(&a, in + pa, n - pa, &d, &dl);
        if (ra < 0)
            break;
        for (size_t i = 0; i < dl; i++)
            ha = ha * 31 + (unsigned char)d[i];
        pa += (size_t)ra;
    }
    size_t avail = 0;
    while (pb < n && !b.done) {
        if (pb == avail)
            avail = avail + step < n ? avail + step : n;
        const char *d;
        size_t dl;
        rb = mg_h1_body_decode(&b, in + pb, avail - pb, &d, &dl);
        if (rb < 0)
            break;
        for (size_t i = 0; i < dl; i++)
            hb = hb * 31 + (unsigned char)d[i];
        pb += (size_t)rb;
    }
    fz_check(ha == hb && a.total == b.total && a.done == b.done && (ra < 0) == (rb < 0) &&
                 a.err.status == b.err.status, "chunked decode depends on the pieces");
    fz_check(ra < 0 || pa == pb, "chunked decode consumed differently");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(MG_H1_RESPONSE, data, size, NULL);
    if (size > 4)
        chunked_only((const char *)data + 4, size - 4, (size_t)(data[3] & 7) + 1);
    return 0;
}
