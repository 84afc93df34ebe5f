/* Growable byte buffers with a hard cap set at creation (curl's dynbuf).
 * Input past the cap is an error (-ENOBUFS) for the caller to turn into a
 * clear status (413, 431, ...), never unbounded growth.
 *
 * Bytes live in data[off .. off+len). Consuming from the front advances off;
 * the space is reclaimed (memmove) only when appending needs it. */
#ifndef MG_BUF_H
#define MG_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct mg_buf {
    char *data;
    size_t off;   /* start of the unread bytes */
    size_t len;   /* unread bytes */
    size_t cap;   /* allocated */
    size_t max;   /* hard cap on len (the bytes held at once) */
};

/* Prepares an empty buffer that will hold at most max bytes. Allocates
 * nothing until the first append. */
void mg_buf_init(struct mg_buf *b, size_t max);
void mg_buf_free(struct mg_buf *b);

/* Makes room for n more bytes at the end; -ENOBUFS past the cap, -ENOMEM. */
int mg_buf_reserve(struct mg_buf *b, size_t n);
int mg_buf_append(struct mg_buf *b, const void *p, size_t n);
int mg_buf_append_str(struct mg_buf *b, const char *s);
int mg_buf_printf(struct mg_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int mg_buf_vprintf(struct mg_buf *b, const char *fmt, va_list ap);

/* The unread bytes, and the free space after them (valid until the next
 * reserve/append). After writing into the tail, mg_buf_commit() counts it. */
/* An empty, never-allocated buffer has data == NULL: no arithmetic on it
 * (NULL + 0 is undefined behaviour in C). */
static inline char *mg_buf_head(const struct mg_buf *b) { return b->data ? b->data + b->off : b->data; }
static inline char *mg_buf_tail(const struct mg_buf *b) { return b->data ? b->data + b->off + b->len : b->data; }
static inline size_t mg_buf_room(const struct mg_buf *b) { return b->cap - b->off - b->len; }
void mg_buf_commit(struct mg_buf *b, size_t n);

/* Drops n bytes from the front (n <= len). Resets off when empty. */
void mg_buf_consume(struct mg_buf *b, size_t n);
/* Empties it, keeping the allocation. */
void mg_buf_reset(struct mg_buf *b);
/* Moves the unread bytes to the start of the allocation. */
void mg_buf_compact(struct mg_buf *b);

#endif
