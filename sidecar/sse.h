/* Output-token accounting over a response body as it streams through, and
 * its timing: an incremental scanner fed each span the upstream delivers,
 * byte-split-agnostic (the counts never depend on where the spans break).
 *
 * text/event-stream (SC_BODY_SSE): the events of the stream (RFC 8895's
 * line rules: LF, CRLF or CR line ends, "data:" fields, comments, an event
 * ends at a blank line) are watched for JSON members, without parsing the
 * JSON: an event counts as one generated token when its data carries a
 * "content" or "text" member whose value is a non-empty string (the chat
 * and completions deltas; vLLM's first chunk with "content":"" and the
 * final empty delta do not count, nor does "[DONE]"). A "completion_tokens"
 * member (the usage object, sent with stream_options.include_usage) is
 * captured, and wins over the count when present.
 *
 * application/json (SC_BODY_JSON): only usage.completion_tokens, looked for
 * in the first SC_SSE_JSON_SCAN bytes and, past them, in the last bytes of
 * the body (where OpenAI servers put usage), so a huge body is not scanned
 * whole.
 *
 * Each SSE event's data is also checked for balance (objects and arrays
 * closed, strings terminated, no member left without a value), so a
 * stream that breaks mid-event is seen at the event's end (malformed).
 *
 * Strings are tracked (quotes and escapes), so member names are only
 * recognised as names, never inside a string value. No allocation. */
#ifndef SC_SSE_H
#define SC_SSE_H

#include <stddef.h>
#include <stdint.h>

#define SC_SSE_JSON_SCAN (256u * 1024)
#define SC_SSE_TAIL 192

enum sc_body_kind {
    SC_BODY_OTHER = 0,   /* nothing counted; timing only */
    SC_BODY_SSE,
    SC_BODY_JSON,
};

struct sc_sse {
    enum sc_body_kind kind;
    /* Results. */
    uint64_t events;        /* events that carried generated content */
    int64_t usage;          /* completion_tokens seen, -1 when none */
    uint64_t bytes;         /* body bytes fed */
    uint64_t first_ns;      /* time of the first body byte, 0 before */
    uint64_t last_token_ns; /* time of the last span that completed a token event */
    /* SSE: events whose data is not well-formed JSON text (an object or
     * array left open, a string not terminated, a member without its
     * value) — a backend that broke mid-stream. "[DONE]" and other
     * non-JSON tokens pass. */
    uint32_t malformed;
    uint64_t bad_end;       /* body offset just past the first malformed event, 0 none */
    uint64_t good_end;      /* body offset just past the last complete event before any
                             * malformed one (what may be passed on whole) */
    /* Private scan state. */
    uint8_t line;           /* SSE line state */
    uint8_t field_len;      /* bytes of the field name matched against "data" */
    uint8_t field_bad;      /* the field name is not "data" */
    uint8_t js;             /* JSON member state */
    uint8_t cand;           /* member names still matching (bit mask) */
    uint8_t key;            /* the member whose value comes next */
    uint8_t has_content;    /* the current event carries content */
    uint8_t num_digits;
    uint8_t data_seen;      /* the current event has a data field */
    int32_t depth;          /* open objects and arrays in the current event */
    uint16_t kpos;          /* bytes of the current string matched so far */
    uint64_t num;
    size_t tail_len;
    char tail[SC_SSE_TAIL];
};

/* The body kind for a Content-Type value (parameters and case ignored). */
enum sc_body_kind sc_sse_kind(const char *ctype, size_t len);

void sc_sse_init(struct sc_sse *s, enum sc_body_kind kind);
/* Feeds a span that arrived at now_ns. Returns how many token events it
 * completed; *gap_ns (may be NULL) gets the time since the previous span
 * that completed one (0 for the first), the inter-token gap. */
unsigned sc_sse_feed(struct sc_sse *s, const char *p, size_t n, uint64_t now_ns,
                     uint64_t *gap_ns);
/* The body ended: looks at the JSON tail. */
void sc_sse_finish(struct sc_sse *s);
/* The bytes ("", "\n" or "\n\n", into out: at least 2 bytes) that end
 * the line and event the stream stopped in, so an event appended after
 * them stands on its own. */
size_t sc_sse_close_event(const struct sc_sse *s, char *out);
/* Output tokens: usage when the backend sent it, else the counted events. */
uint64_t sc_sse_tokens(const struct sc_sse *s);

#endif
