/* An incremental, strict HTTP/1.1 codec (RFC 9110, RFC 9112) for requests
 * and responses. It does no I/O and allocates nothing: it reads the caller's
 * buffer and points into it.
 *
 * Heads: mg_h1_parse_head() is fed the bytes received so far (always from the
 * start of the head) and resumes its scan where the previous call stopped, so
 * a head arriving one byte at a time costs O(n) in all. Once the blank line
 * has arrived it parses and validates the whole head in one pass and fills a
 * struct mg_h1_msg whose pointers point into the caller's buffer; they stay
 * valid while those bytes do.
 *
 * Bodies: mg_h1_body_decode() frames a body (Content-Length, chunked, or
 * until close), a span at a time, without copying: chunk data is handed back
 * as pointers into the input.
 *
 * Encoding: helpers append heads, chunk framing and the last chunk to a
 * struct mg_buf.
 *
 * Strictness (request smuggling): it rejects both Content-Length and
 * Transfer-Encoding, differing or malformed Content-Length values, a
 * Transfer-Encoding whose final coding is not chunked (400) or that names an
 * unknown coding (501), Transfer-Encoding in HTTP/1.0, invalid or overflowing
 * chunk sizes, obs-fold, whitespace before the colon, bare CR, bare LF,
 * control characters in values, invalid token characters in names and
 * methods, NUL anywhere in the head, a missing or repeated Host in HTTP/1.1
 * requests, HTTP versions other than 1.0/1.1 (505). Limits give 414 (request
 * line), 431 (head bytes, header count), 413 (body). Every error in a
 * response (head or body) has status 502: the upstream is at fault.
 * docs/internals/http1.md has the full table. */
#ifndef MG_HTTP1_H
#define MG_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The most header fields any message may carry (limits can only lower it). */
#define MG_H1_MAX_HEADERS 128

enum mg_h1_kind {
    MG_H1_REQUEST,
    MG_H1_RESPONSE,
};

/* A zero field (other than max_body) means its default. */
struct mg_h1_limits {
    size_t max_request_line;  /* bytes in the request line (414), default 8 KiB */
    size_t max_head;          /* bytes of the whole head (431), default 32 KiB */
    unsigned max_headers;     /* header fields (431), default 100, <= MG_H1_MAX_HEADERS */
    uint64_t max_body;        /* body bytes (413); 0: no limit */
    size_t max_chunk_ext;     /* bytes of chunk extensions per chunk (400), default 256 */
    size_t max_trailer;       /* bytes of the trailer section (431), default 8 KiB */
};

/* Defaults as above. */
void mg_h1_limits_default(struct mg_h1_limits *l);

struct mg_h1_header {
    const char *name;
    const char *value;   /* without leading or trailing whitespace */
    uint32_t name_len;
    uint32_t value_len;
};

/* How the body of a message is framed, as RFC 9112 section 6.3 decides it. */
enum mg_h1_framing {
    MG_H1_BODY_NONE,      /* no body: CL 0, GET without CL/TE, HEAD/1xx/204/304 responses */
    MG_H1_BODY_LENGTH,    /* Content-Length bytes */
    MG_H1_BODY_CHUNKED,   /* Transfer-Encoding: chunked */
    MG_H1_BODY_EOF,       /* responses only: until the connection closes */
};

struct mg_h1_msg {
    /* Request line (requests). */
    const char *method;
    const char *target;
    uint32_t method_len;
    uint32_t target_len;
    /* Status line (responses). */
    int status;
    const char *reason;
    uint32_t reason_len;
    /* Both: 0 for HTTP/1.0, 1 for HTTP/1.1. */
    int minor;

    unsigned nheaders;
    struct mg_h1_header headers[MG_H1_MAX_HEADERS];

    /* Derived from the headers. */
    enum mg_h1_framing framing;
    uint64_t content_length;   /* when framing == MG_H1_BODY_LENGTH */
    unsigned keep_alive : 1;   /* the connection may carry another message */
    unsigned expect_continue : 1;  /* request: Expect: 100-continue */
    unsigned upgrade : 1;      /* Connection: upgrade with an Upgrade header */
    unsigned head_request : 1; /* request: method is HEAD */
    size_t head_len;           /* bytes of the head, blank line included */
};

/* Parser error: the status to answer with (requests) and what was wrong. */
struct mg_h1_error {
    int status;          /* 400, 413, 414, 417, 431, 501, 505; 502 for a bad response */
    const char *reason;  /* static, for people: "Content-Length and Transfer-Encoding both present" */
    size_t offset;       /* byte offset in the input where it was found */
};

struct mg_h1_parser {
    enum mg_h1_kind kind;
    struct mg_h1_limits limits;
    /* Responses: the request was HEAD (no body follows), set by the caller
     * before parsing the response to it. mg_h1_parser_reset() keeps it (a
     * 1xx and the final response answer the same request); set it again for
     * every request. */
    unsigned request_was_head : 1;
    /* Responses to CONNECT are not supported: modelgate never sends one. */
    /* Scan state, private. */
    int state;           /* where the scan is: leading CRLFs, start line, fields, done, error */
    size_t scanned;      /* bytes already scanned for the end of the head */
    size_t line_start;   /* where the current line began */
    unsigned lines;      /* field lines seen so far */
    /* The start line, validated as soon as it ends (offsets into the head). */
    uint32_t sl_start;   /* first byte of the start line (after leading CRLFs) */
    uint32_t sl_len;     /* its length without CRLF */
    uint32_t sl_target;  /* requests: target offset; responses: reason offset */
    uint32_t sl_tlen;    /* requests: target length; responses: reason length */
    uint32_t sl_mlen;    /* requests: method length */
    int sl_status;       /* responses: the status code */
    int sl_minor;
    struct mg_h1_error err;
};

/* Prepares a parser for the first message on a connection (limits NULL: the
 * defaults), or, with reset, for the next one; reset keeps kind, limits and
 * request_was_head. After an error the parser keeps failing until reset; the
 * caller should close the connection instead. */
void mg_h1_parser_init(struct mg_h1_parser *p, enum mg_h1_kind kind,
                       const struct mg_h1_limits *limits);
void mg_h1_parser_reset(struct mg_h1_parser *p);

/* Feeds the head bytes received so far: buf[0..len) always starts at the
 * first byte of the head (the bytes of earlier messages removed). Leading
 * empty lines before a request line are skipped (RFC 9112 2.2) and counted
 * in head_len.
 *
 * Returns
 *   > 0  the head is complete: msg is filled, the value is msg->head_len,
 *        and the body (if any) starts at buf + head_len;
 *     0  need more bytes (call again with the same bytes plus the new ones);
 *    -1  the head is invalid: p->err says why and with which status. The
 *        connection cannot be trusted any more and must be closed after
 *        answering.
 * Limits and bare LF are enforced while the head arrives, and the start line
 * is validated as soon as it ends (414, 505, a non-HTTP first byte are
 * refused at once); field lines are validated once the head is complete.
 * The result never depends on how the bytes were split across calls.
 * A response parser returns 1xx heads as complete messages too (framing
 * NONE); the caller resets and parses again for the final response.
 * CONNECT requests are refused with 501. */
int mg_h1_parse_head(struct mg_h1_parser *p, const char *buf, size_t len,
                     struct mg_h1_msg *msg);

/* Finds a header by name (case-insensitive). Returns its index, or -1.
 * Start at from (0 first) to find repeats. */
int mg_h1_find_header(const struct mg_h1_msg *msg, const char *name, unsigned from);
/* Looks for token in a comma-separated header list value (case-insensitive),
 * e.g. "close" in Connection: keep-alive, close. */
int mg_h1_list_has(const char *value, size_t len, const char *token);

/* ------------------------------------------------------------------------ */
/* Body framing. */

struct mg_h1_body {
    enum mg_h1_framing framing;
    uint64_t remaining;     /* LENGTH: bytes left; CHUNKED: bytes left in the chunk */
    uint64_t total;         /* body bytes delivered so far */
    uint64_t max_body;      /* 0: none */
    size_t max_chunk_ext;
    size_t max_trailer;
    size_t trailer_bytes;
    int state;              /* private */
    unsigned ext_bytes;     /* private */
    unsigned size_digits;   /* private */
    unsigned ext_ws;        /* private: whitespace seen where only ";" may follow */
    unsigned response;      /* private: a response body (errors are 502) */
    int done;               /* the body has ended (last chunk and trailers read) */
    struct mg_h1_error err;
};

/* Prepares to frame the body of msg under limits (NULL: the defaults); give
 * the parser's limits. A response's errors get status 502. */
void mg_h1_body_init(struct mg_h1_body *b, const struct mg_h1_msg *msg,
                     const struct mg_h1_limits *limits);

/* Consumes framing and body bytes from in[0..len); keeps its own state, so
 * in never has to hold more than the bytes not consumed yet.
 * Returns the number of input bytes consumed (>= 0), and sets *data and
 * *data_len to at most one span of body bytes found in them (pointing into
 * in; NULL and 0 when the consumed bytes were only framing). After a span it
 * also consumes the framing that follows, up to the next chunk's data or the
 * end of the body. Call again with the rest of the input while b->done is 0;
 * it returns 0 only for empty input or a finished body. The return is < len
 * when a span ended before the input did, or when the body ended (b->done)
 * with bytes of the next message left over. Chunk extensions and trailer
 * fields are validated and dropped. For MG_H1_BODY_EOF the body ends when
 * the caller sees end of stream: call mg_h1_body_eof().
 * Returns -1 on invalid framing; b->err says why (400, 413 past max_body, 431
 * for a trailer section past max_trailer; 502 for every response error).
 * When the error comes after a span in the same input, that call returns
 * the span and the next call returns -1, so a span is never lost and the
 * bytes delivered never depend on how the input was split. */
long mg_h1_body_decode(struct mg_h1_body *b, const char *in, size_t len,
                       const char **data, size_t *data_len);

/* The peer closed the connection. Returns 0 when that ends the body
 * properly (EOF framing, or already done), -1 when the body was cut short
 * (b->err: 400, or 502 for a response). */
int mg_h1_body_eof(struct mg_h1_body *b);

/* ------------------------------------------------------------------------ */
/* Encoding. All append to out and return 0, or -ENOBUFS / -ENOMEM. */

/* "HTTP/1.1 200 OK\r\n" (reason from mg_h1_reason() when NULL). */
int mg_h1_put_status(struct mg_buf *out, int status, const char *reason);
/* "METHOD TARGET HTTP/1.1\r\n" */
int mg_h1_put_request_line(struct mg_buf *out, const char *method, const char *target);
/* "Name: value\r\n". The name must be a token and the value free of CR, LF
 * and NUL: -EINVAL otherwise (no header injection). */
int mg_h1_put_header(struct mg_buf *out, const char *name, const char *value);
int mg_h1_put_header_n(struct mg_buf *out, const char *name, size_t name_len,
                       const char *value, size_t value_len);
/* The chunk-size line for n bytes of data ("1a\r\n"), written to buf
 * (at least MG_H1_CHUNK_HDR_MAX bytes); returns its length. The chunk data
 * must be followed by "\r\n". */
#define MG_H1_CHUNK_HDR_MAX 20
size_t mg_h1_chunk_header(char *buf, size_t n);
/* "0\r\n\r\n": the last chunk and an empty trailer. */
extern const char mg_h1_last_chunk[];
#define MG_H1_LAST_CHUNK_LEN 5

/* The standard reason phrase for a status ("Not Found"), or "Unknown". */
const char *mg_h1_reason(int status);
/* Token characters (RFC 9110 5.6.2). */
int mg_h1_is_token(const char *s, size_t n);

#endif
