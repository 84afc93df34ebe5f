/* Growable byte buffers with a cap: see buf.h. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void mg_buf_init(struct mg_buf *b, size_t max)
{
    b->data = NULL;
    b->off = b->len = b->cap = 0;
    b->max = max;
}

void mg_buf_free(struct mg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void mg_buf_compact(struct mg_buf *b)
{
    if (b->off == 0)
        return;
    if (b->len)
        memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
}

int mg_buf_reserve(struct mg_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return -ENOBUFS;
    if (b->cap - b->off - b->len >= n)
        return 0;
    /* Reclaim consumed space first when that alone makes room. */
    if (b->cap - b->len >= n && b->off > 0) {
        mg_buf_compact(b);
        return 0;
    }
    size_t need = b->len + n;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max && need <= b->max)
        ncap = b->max;
    mg_buf_compact(b);
    char *nd = realloc(b->data, ncap);
    if (!nd)
        return -ENOMEM;
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int mg_buf_append(struct mg_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = mg_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    memcpy(b->data + b->off + b->len, p, n);
    b->len += n;
    return 0;
}

int mg_buf_append_str(struct mg_buf *b, const char *s)
{
    return mg_buf_append(b, s, strlen(s));
}

int mg_buf_vprintf(struct mg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    int rc = mg_buf_reserve(b, (size_t)n + 1);
    if (rc < 0)
        return rc;
    if ((size_t)n < sizeof small)
        memcpy(mg_buf_tail(b), small, (size_t)n);
    else
        vsnprintf(mg_buf_tail(b), (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int mg_buf_printf(struct mg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = mg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void mg_buf_commit(struct mg_buf *b, size_t n)
{
    b->len += n;
}

void mg_buf_consume(struct mg_buf *b, size_t n)
{
    if (n >= b->len) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
    b->len -= n;
}

void mg_buf_reset(struct mg_buf *b)
{
    b->off = b->len = 0;
}
