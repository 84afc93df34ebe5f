/* Unit tests for lib/http1.c.
 *
 * The core is a table of RFC 9112 conformance cases: raw bytes in, the
 * messages parsed out of them (with their bodies) and how the input ends
 * (complete, needing more, or an error with its status). Every row runs on
 * the whole input, then split at every byte boundary, then fed one byte at a
 * time, through the same driver a connection would use (head, then body,
 * then the next pipelined message); all runs must give the expected result.
 * Then the encoders, a chunked round trip and the API's finer promises. */
#include "lib/http1.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <stdint.h>

#define IN(s) s, sizeof(s) - 1

enum end { END_OK, END_MORE, END_ERR, END_EOF };
enum { LIM_DEFAULT, LIM_SMALL };
enum { F_EXPECT = 1, F_UPGRADE = 2, F_HEAD = 4 };

#define NONE MG_H1_BODY_NONE
#define LEN MG_H1_BODY_LENGTH
#define CHUNKED MG_H1_BODY_CHUNKED
#define EOFB MG_H1_BODY_EOF

struct exp_msg {
    const char *method;   /* requests */
    const char *target;
    int status;           /* responses */
    int minor;
    int framing;
    uint64_t cl;
    int keep_alive;
    int nheaders;
    const char *body;     /* the decoded body */
    unsigned flags;
    const char *h0;       /* optional: "name=value" of the first field */
};

struct row {
    const char *name;
    enum mg_h1_kind kind;
    int lim;
    unsigned head_req;    /* responses: request_was_head */
    const char *in;
    size_t in_len;
    enum end end;
    int err_status;
    int nmsg;
    struct exp_msg m[3];
};

/* Request and response expectations. */
#define Q(meth, tgt, minor, fr, cl, ka, nh, body, flags) \
    { meth, tgt, 0, minor, fr, cl, ka, nh, body, flags, NULL }
#define QH(meth, tgt, minor, fr, cl, ka, nh, body, flags, h0) \
    { meth, tgt, 0, minor, fr, cl, ka, nh, body, flags, h0 }
#define S(st, minor, fr, cl, ka, nh, body, flags) \
    { NULL, NULL, st, minor, fr, cl, ka, nh, body, flags, NULL }

#define REQ MG_H1_REQUEST
#define RESP MG_H1_RESPONSE

/* A request that must be refused with status st before any message. */
#define BAD(name, in, st) { name, REQ, LIM_DEFAULT, 0, IN(in), END_ERR, st, 0, { { 0 } } }
#define BADS(name, in, st) { name, REQ, LIM_SMALL, 0, IN(in), END_ERR, st, 0, { { 0 } } }
#define RBAD(name, in, st) { name, RESP, LIM_DEFAULT, 0, IN(in), END_ERR, st, 0, { { 0 } } }

#define H "Host: api.example.com\r\n"
#define CHAT_BODY "{\"model\":\"llama-3-8b-instruct\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"
#define SSE1 "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n"
#define SSE2 "data: [DONE]\n\n"

static const struct row rows[] = {
    /* ---- requests that parse ---- */
    { "GET origin-form, HTTP/1.1 keep-alive by default", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { QH("GET", "/", 1, NONE, 0, 1, 1, "", 0, "Host=api.example.com") } },
    { "OpenAI chat completion POST with Content-Length body", REQ, 0, 0,
      IN("POST /v1/chat/completions HTTP/1.1\r\n" H
         "Authorization: Bearer sk-test-1234567890abcdef\r\n"
         "Content-Type: application/json\r\nUser-Agent: OpenAI/Python 1.51.0\r\n"
         "X-Request-Id: 7f3a\r\nContent-Length: 75\r\n\r\n" CHAT_BODY),
      END_OK, 0, 1,
      { Q("POST", "/v1/chat/completions", 1, LEN, 75, 1, 6, CHAT_BODY, 0) } },
    { "HTTP/1.0 closes by default", REQ, 0, 0,
      IN("GET /v1/models HTTP/1.0\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/v1/models", 0, NONE, 0, 0, 0, "", 0) } },
    { "HTTP/1.0 with Connection: keep-alive stays open", REQ, 0, 0,
      IN("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 0, NONE, 0, 1, 1, "", 0) } },
    { "HTTP/1.0 Connection: Keep-Alive is case-insensitive", REQ, 0, 0,
      IN("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 0, NONE, 0, 1, 1, "", 0) } },
    { "HTTP/1.0 keep-alive and close together close", REQ, 0, 0,
      IN("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 0, NONE, 0, 0, 1, "", 0) } },
    { "HTTP/1.1 Connection: close closes", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 1, NONE, 0, 0, 2, "", 0) } },
    { "Connection is a comma list: 'TE, close'", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H "Connection: TE,close \r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 1, NONE, 0, 0, 2, "", 0) } },
    { "Connection repeated, close in the second field", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H "Connection: keep-alive\r\nConnection: close\r\n\r\n"),
      END_OK, 0, 1, { Q("GET", "/", 1, NONE, 0, 0, 3, "", 0) } },
    { "Connection: closed is not close", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H "Connection: closed\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 1, NONE, 0, 1, 2, "", 0) } },
    { "empty lines before the request line are skipped", REQ, 0, 0,
      IN("\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 1, NONE, 0, 1, 1, "", 0) } },
    { "OWS around a field value is trimmed", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\nHost: \t api.example.com \t \r\n\r\n"), END_OK, 0, 1,
      { QH("GET", "/", 1, NONE, 0, 1, 1, "", 0, "Host=api.example.com") } },
    { "no whitespace after the colon", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\nHost:a\r\n\r\n"), END_OK, 0, 1,
      { QH("GET", "/", 1, NONE, 0, 1, 1, "", 0, "Host=a") } },
    { "empty field value", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\nX-Empty:\r\n" H "\r\n"), END_OK, 0, 1,
      { QH("GET", "/", 1, NONE, 0, 1, 2, "", 0, "X-Empty=") } },
    { "obs-text and HTAB inside a value", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\nX-Name: caf\xc3\xa9\tau lait\r\n" H "\r\n"), END_OK, 0, 1,
      { QH("GET", "/", 1, NONE, 0, 1, 2, "", 0, "X-Name=caf\xc3\xa9\tau lait") } },
    { "Content-Length: 0 means no body", REQ, 0, 0,
      IN("POST /v1/embeddings HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n"), END_OK, 0, 1,
      { Q("POST", "/v1/embeddings", 1, NONE, 0, 1, 2, "", 0) } },
    { "Content-Length list of identical values '5, 5'", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\nhello"), END_OK, 0, 1,
      { Q("POST", "/", 1, LEN, 5, 1, 2, "hello", 0) } },
    { "two identical Content-Length fields", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
      END_OK, 0, 1, { Q("POST", "/", 1, LEN, 5, 1, 3, "hello", 0) } },
    { "Content-Length with leading zeros", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Content-Length: 005\r\n\r\nhello"), END_OK, 0, 1,
      { Q("POST", "/", 1, LEN, 5, 1, 2, "hello", 0) } },
    { "GET with a Content-Length body", REQ, 0, 0,
      IN("GET /search HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\n{}"), END_OK, 0, 1,
      { Q("GET", "/search", 1, LEN, 2, 1, 2, "{}", 0) } },
    { "chunked body", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), END_OK, 0, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "Wikipedia", 0) } },
    { "chunked: uppercase hex and leading zeros in sizes", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "00A\r\n0123456789\r\n000\r\n\r\n"), END_OK, 0, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "0123456789", 0) } },
    { "chunked with extensions (token, quoted, BWS)", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "4;name=value\r\nWiki\r\n5 ; a = \"q\\\"x;y\" ; b\r\npedia\r\n0;last\r\n\r\n"),
      END_OK, 0, 1, { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "Wikipedia", 0) } },
    { "chunked with trailer fields", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\t1 \r\n\r\n"), END_OK, 0, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "hello", 0) } },
    { "Transfer-Encoding value is case-insensitive", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"),
      END_OK, 0, 1, { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "", 0) } },
    { "Transfer-Encoding empty list elements ignored", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: , chunked ,\r\n\r\n0\r\n\r\n"),
      END_OK, 0, 1, { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "", 0) } },
    { "Expect: 100-continue is flagged", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 2\r\n\r\nok"),
      END_OK, 0, 1, { Q("POST", "/", 1, LEN, 2, 1, 3, "ok", F_EXPECT) } },
    { "Expect in HTTP/1.0 is ignored", REQ, 0, 0,
      IN("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok"),
      END_OK, 0, 1, { Q("POST", "/", 0, LEN, 2, 0, 2, "ok", 0) } },
    { "Upgrade with Connection: upgrade is flagged", REQ, 0, 0,
      IN("GET /ws HTTP/1.1\r\n" H "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
      END_OK, 0, 1, { Q("GET", "/ws", 1, NONE, 0, 1, 3, "", F_UPGRADE) } },
    { "Upgrade without Connection: upgrade is not flagged", REQ, 0, 0,
      IN("GET /ws HTTP/1.1\r\n" H "Upgrade: websocket\r\n\r\n"),
      END_OK, 0, 1, { Q("GET", "/ws", 1, NONE, 0, 1, 2, "", 0) } },
    { "Upgrade in HTTP/1.0 is ignored", REQ, 0, 0,
      IN("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"),
      END_OK, 0, 1, { Q("GET", "/ws", 0, NONE, 0, 0, 2, "", 0) } },
    { "HEAD request is flagged", REQ, 0, 0,
      IN("HEAD /v1/models HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { Q("HEAD", "/v1/models", 1, NONE, 0, 1, 1, "", F_HEAD) } },
    { "OPTIONS * (asterisk-form)", REQ, 0, 0,
      IN("OPTIONS * HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { Q("OPTIONS", "*", 1, NONE, 0, 1, 1, "", 0) } },
    { "absolute-form http URI", REQ, 0, 0,
      IN("GET http://api.example.com/v1/models?x=1 HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { Q("GET", "http://api.example.com/v1/models?x=1", 1, NONE, 0, 1, 1, "", 0) } },
    { "target with query and percent-encoding", REQ, 0, 0,
      IN("GET /v1/files?purpose=fine-tune&after=a%20b HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { Q("GET", "/v1/files?purpose=fine-tune&after=a%20b", 1, NONE, 0, 1, 1, "", 0) } },
    { "Host with IPv6 literal and port", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), END_OK, 0, 1,
      { QH("GET", "/", 1, NONE, 0, 1, 1, "", 0, "Host=[::1]:8080") } },
    { "empty Host is allowed", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 1, NONE, 0, 1, 1, "", 0) } },
    { "field names are case-insensitive (hOsT, CONTENT-LENGTH)", REQ, 0, 0,
      IN("PUT /x HTTP/1.1\r\nhOsT: a\r\nCONTENT-LENGTH: 3\r\n\r\nabc"), END_OK, 0, 1,
      { Q("PUT", "/x", 1, LEN, 3, 1, 2, "abc", 0) } },
    { "extension method token", REQ, 0, 0,
      IN("M-SEARCH_2 / HTTP/1.1\r\n" H "\r\n"), END_OK, 0, 1,
      { Q("M-SEARCH_2", "/", 1, NONE, 0, 1, 1, "", 0) } },
    { "pipelined: three GETs in one buffer", REQ, 0, 0,
      IN("GET /a HTTP/1.1\r\n" H "\r\nGET /b HTTP/1.1\r\n" H "\r\nGET /c HTTP/1.1\r\n" H
         "Connection: close\r\n\r\n"), END_OK, 0, 3,
      { Q("GET", "/a", 1, NONE, 0, 1, 1, "", 0), Q("GET", "/b", 1, NONE, 0, 1, 1, "", 0),
        Q("GET", "/c", 1, NONE, 0, 0, 2, "", 0) } },
    { "pipelined: POST with body, GET, chunked POST", REQ, 0, 0,
      IN("POST /v1/completions HTTP/1.1\r\n" H "Content-Length: 11\r\n\r\nhello world"
         "GET /v1/models HTTP/1.1\r\n" H "\r\n"
         "POST /v1/chat/completions HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
         "29\r\n{\"model\":\"m\",\"stream\":true,\"messages\":[]}\r\n0\r\n\r\n"),
      END_OK, 0, 3,
      { Q("POST", "/v1/completions", 1, LEN, 11, 1, 2, "hello world", 0),
        Q("GET", "/v1/models", 1, NONE, 0, 1, 1, "", 0),
        Q("POST", "/v1/chat/completions", 1, CHUNKED, 0, 1, 2,
          "{\"model\":\"m\",\"stream\":true,\"messages\":[]}", 0) } },
    { "pipelined: a valid request, then a smuggling one", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\nokGET / HTTP/1.1\r\n" H
         "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), END_ERR, 400, 1,
      { Q("POST", "/", 1, LEN, 2, 1, 2, "ok", 0) } },
    { "incomplete head needs more", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H), END_MORE, 0, 0, { { 0 } } },
    { "incomplete head ending in CR needs more", REQ, 0, 0,
      IN("GET / HTTP/1.1\r\n" H "\r"), END_MORE, 0, 0, { { 0 } } },
    { "incomplete Content-Length body needs more", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Content-Length: 10\r\n\r\nhello"), END_MORE, 0, 1,
      { Q("POST", "/", 1, LEN, 10, 1, 2, "hello", 0) } },
    { "incomplete chunked body needs more", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"),
      END_MORE, 0, 1, { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "hello", 0) } },
    { "Content-Length 2^63-1 is accepted (body then needs more)", REQ, 0, 0,
      IN("POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775807\r\n\r\n"),
      END_MORE, 0, 1, { Q("POST", "/", 1, LEN, 9223372036854775807ull, 1, 2, "", 0) } },
    { "limits: request line exactly at the limit", REQ, LIM_SMALL, 0,
      IN("GET /aaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/aaaaaaaaaaaaaaaaaa", 1, NONE, 0, 1, 1, "", 0) } },
    { "limits: header count exactly at the limit", REQ, LIM_SMALL, 0,
      IN("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), END_OK, 0, 1,
      { Q("GET", "/", 1, NONE, 0, 1, 4, "", 0) } },
    { "limits: body exactly at the limit", REQ, LIM_SMALL, 0,
      IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n0123456789abcdef"),
      END_OK, 0, 1, { Q("POST", "/", 1, LEN, 16, 1, 2, "0123456789abcdef", 0) } },
    { "limits: chunked body exactly at the limit", REQ, LIM_SMALL, 0,
      IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n"),
      END_OK, 0, 1, { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "0123456789abcdef", 0) } },

    /* ---- request smuggling shapes ---- */
    BAD("Content-Length and Transfer-Encoding both present",
        "POST / HTTP/1.1\r\n" H "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("Transfer-Encoding then Content-Length",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n", 400),
    BAD("Content-Length list with differing values",
        "POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\n", 400),
    BAD("two Content-Length fields with differing values",
        "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
    BAD("Content-Length with a plus sign", "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 400),
    BAD("Content-Length negative", "POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 400),
    BAD("Content-Length with a space inside", "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n", 400),
    BAD("Content-Length empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 400),
    BAD("Content-Length hexadecimal", "POST / HTTP/1.1\r\n" H "Content-Length: 0x10\r\n\r\n", 400),
    BAD("Content-Length trailing comma", "POST / HTTP/1.1\r\n" H "Content-Length: 5,\r\n\r\n", 400),
    BAD("Content-Length 2^63 overflows",
        "POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", 400),
    BAD("Content-Length 2^64+5 overflows",
        "POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551621\r\n\r\n", 400),
    BAD("Transfer-Encoding gzip alone (final not chunked)",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 400),
    BAD("Transfer-Encoding 'chunked, gzip'",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", 400),
    BAD("Transfer-Encoding 'gzip, chunked' is an unknown coding",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    BAD("Transfer-Encoding 'x-custom, chunked' is an unknown coding",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: x-custom, chunked\r\n\r\n", 501),
    BAD("Transfer-Encoding 'chunked, chunked'",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    BAD("two Transfer-Encoding: chunked fields",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("Transfer-Encoding split over fields, chunked not last",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    BAD("Transfer-Encoding identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 400),
    BAD("Transfer-Encoding 'chunked;q=1' (parameters on chunked)",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    BAD("Transfer-Encoding empty", "POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 400),
    BAD("Transfer-Encoding 'chunked x' (not a list)",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked x\r\n\r\n", 400),
    BAD("Transfer-Encoding with a vertical tab",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \x0b" "chunked\r\n\r\n", 400),
    BAD("Transfer-Encoding in HTTP/1.0",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    BAD("obs-fold continuation line",
        "GET / HTTP/1.1\r\n" H "X-Long: a\r\n b\r\n\r\n", 400),
    BAD("obs-fold with HTAB", "GET / HTTP/1.1\r\n" H "X-Long: a\r\n\tb\r\n\r\n", 400),
    BAD("whitespace before the first field line",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    BAD("space between field name and colon",
        "POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n", 400),
    BAD("tab between field name and colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    BAD("bare CR inside a value", "GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", 400),
    BAD("bare CR at the end of a value", "GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n", 400),
    BAD("bare LF ending a field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    BAD("bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    BAD("LF-only head", "GET / HTTP/1.1\nHost: a\n\n", 400),
    BAD("bare LF as the blank line", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    BAD("bare LF before the request line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("bare CR before the request line", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    BAD("control character in a value", "GET / HTTP/1.1\r\n" H "X: a\x01" "b\r\n\r\n", 400),
    BAD("DEL in a value", "GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", 400),
    BAD("NUL in a value", "GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", 400),
    BAD("NUL in a field name", "GET / HTTP/1.1\r\n" H "X\0Y: b\r\n\r\n", 400),
    BAD("NUL in the method", "G\0T / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("NUL in the target", "GET /\0 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("NUL in the version", "GET / HTTP/1\0.1\r\n" H "\r\n", 400),
    BAD("NUL as the first byte", "\0GET / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("invalid character in a field name", "GET / HTTP/1.1\r\n" H "X(a): b\r\n\r\n", 400),
    BAD("non-ASCII in a field name", "GET / HTTP/1.1\r\n" H "X\xc3\xa9: b\r\n\r\n", 400),
    BAD("empty field name", "GET / HTTP/1.1\r\n" H ": b\r\n\r\n", 400),
    BAD("field line without a colon", "GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", 400),
    BAD("invalid character in the method", "G@T / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("TLS ClientHello on a plain port (refused at once)", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    BAD("lowercase HTTP version", "GET / http/1.1\r\n" H "\r\n", 400),
    BAD("two-digit minor version", "GET / HTTP/1.10\r\n" H "\r\n", 400),
    BAD("version without minor", "GET / HTTP/2\r\n" H "\r\n", 400),
    BAD("HTTP/0.9 request without version", "GET /\r\n\r\n", 400),
    BAD("request line without target", "GET\r\n" H "\r\n", 400),
    BAD("two spaces after the method", "GET  / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("space after the version", "GET / HTTP/1.1 \r\n" H "\r\n", 400),
    BAD("tab as the request line separator", "GET\t/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("space inside the target", "GET /a b HTTP/1.1\r\n" H "\r\n", 400),
    BAD("control character in the target", "GET /a\x01 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("DEL in the target", "GET /a\x7f HTTP/1.1\r\n" H "\r\n", 400),
    BAD("non-ASCII in the target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("fragment in the target", "GET /a#b HTTP/1.1\r\n" H "\r\n", 400),
    BAD("relative target", "GET a/b HTTP/1.1\r\n" H "\r\n", 400),
    BAD("asterisk-form with GET", "GET * HTTP/1.1\r\n" H "\r\n", 400),
    BAD("absolute-form with a non-http scheme", "GET ftp://a/b HTTP/1.1\r\n" H "\r\n", 400),
    BAD("absolute-form without authority", "GET http:///b HTTP/1.1\r\n" H "\r\n", 400),
    BAD("HTTP/2.0 is not supported", "GET / HTTP/2.0\r\n" H "\r\n", 505),
    BAD("HTTP/1.2 is not supported", "GET / HTTP/1.2\r\n" H "\r\n", 505),
    BAD("HTTP/0.9 is not supported", "GET / HTTP/0.9\r\n" H "\r\n", 505),
    BAD("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    BAD("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    BAD("two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    BAD("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    BAD("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    BAD("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    BAD("Expect other than 100-continue", "POST / HTTP/1.1\r\n" H "Expect: 200-ok\r\n\r\n", 417),
    BAD("Expect list with an unknown expectation",
        "POST / HTTP/1.1\r\n" H "Expect: 100-continue, foo\r\n\r\n", 417),
    BAD("CONNECT is not supported", "CONNECT api.example.com:443 HTTP/1.1\r\n" H "\r\n", 501),

    /* ---- chunked framing errors ---- */
#define TECH "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
#define BADC(name, chunks, st) { name, REQ, LIM_DEFAULT, 0, IN(TECH chunks), END_ERR, st, 1, \
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "", 0) } }
    BADC("chunk size not hex", "x\r\n", 400),
    BADC("chunk size negative", "-1\r\nx\r\n", 400),
    BADC("chunk size with a plus sign", "+5\r\nhello\r\n", 400),
    BADC("chunk size 2^64 overflows", "10000000000000000\r\n", 400),
    BADC("chunk size 2^63 overflows", "8000000000000000\r\n", 400),
    BADC("chunk size with trailing whitespace", "5 \r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk size with leading whitespace", " 5\r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk size line ends with bare LF", "5\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk size line with bare CR", "5\rhello\r\n0\r\n\r\n", 400),
    BADC("empty chunk size line", "\r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk extension without a name", "5;=x\r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk extension with an empty value", "5;a=\r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk extension with trailing whitespace", "5;a=b \r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk extension with a control character", "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", 400),
    BADC("chunk extension with an unterminated quote", "5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
    BADC("last chunk never ends its trailer with CRLF", "0\r\n\n", 400),
    BADC("trailer with obs-fold", "0\r\nX: a\r\n b\r\n\r\n", 400),
    BADC("trailer with whitespace before the colon", "0\r\nX : a\r\n\r\n", 400),
    BADC("trailer with a control character", "0\r\nX: a\x01\r\n\r\n", 400),
    BADC("trailer with a bare LF", "0\r\nX: a\n\r\n", 400),
    BADC("trailer without a colon", "0\r\nXa\r\n\r\n", 400),
    { "chunk data longer than its size", REQ, LIM_DEFAULT, 0,
      IN(TECH "5\r\nhelloXX\r\n0\r\n\r\n"), END_ERR, 400, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "hello", 0) } },
    { "chunk data shorter than its size", REQ, LIM_DEFAULT, 0,
      IN(TECH "6\r\nhello\r\n0\r\n\r\n"), END_ERR, 400, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "hello\r", 0) } },

    /* ---- limits ---- */
    BADS("414: request line one byte over the limit",
         "GET /aaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    BADS("414: request line over the limit, not yet terminated",
         "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 414),
    BADS("431: one header field over the count limit",
         "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 431),
    BADS("431: head over the byte limit",
         "GET / HTTP/1.1\r\nHost: a\r\nX-Big: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
         431),
    BADS("431: endless empty lines before the request line",
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
         "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 431),
    BADS("413: Content-Length over the body limit",
         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n", 413),
    { "413: chunked body over the body limit", REQ, LIM_SMALL, 0,
      IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "8\r\n01234567\r\n9\r\n89abcdefg\r\n0\r\n\r\n"), END_ERR, 413, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "01234567", 0) } },
    { "chunk extensions over the limit", REQ, LIM_SMALL, 0,
      IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;abcdefgh\r\nx\r\n0\r\n\r\n"), END_ERR, 400, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "", 0) } },
    { "chunk extensions exactly at the limit", REQ, LIM_SMALL, 0,
      IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "1;abcdefg\r\nx\r\n0\r\n\r\n"), END_OK, 0, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "x", 0) } },
    { "trailer section over the limit", REQ, LIM_SMALL, 0,
      IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\nX-Trailer: 0123456789012345678901\r\n\r\n"), END_ERR, 431, 1,
      { Q("POST", "/", 1, CHUNKED, 0, 1, 2, "", 0) } },

    /* ---- responses ---- */
    { "200 with Content-Length", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\nhello world"),
      END_OK, 0, 1, { S(200, 1, LEN, 11, 1, 2, "hello world", 0) } },
    { "200 SSE stream, chunked", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
         "Transfer-Encoding: chunked\r\n\r\n31\r\n" SSE1 "\r\ne\r\n" SSE2 "\r\n0\r\n\r\n"),
      END_OK, 0, 1, { S(200, 1, CHUNKED, 0, 1, 3, SSE1 SSE2, 0) } },
    { "200 chunked with trailers", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
         "Server-Timing: total;dur=12\r\n\r\n"),
      END_OK, 0, 1, { S(200, 1, CHUNKED, 0, 1, 1, "hello", 0) } },
    { "200 without length is framed by EOF", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until close"),
      END_EOF, 0, 1, { S(200, 1, EOFB, 0, 0, 1, "all of this until close", 0) } },
    { "HTTP/1.0 200 framed by EOF", RESP, 0, 0,
      IN("HTTP/1.0 200 OK\r\n\r\nbody"), END_EOF, 0, 1,
      { S(200, 0, EOFB, 0, 0, 0, "body", 0) } },
    { "HTTP/1.0 response with keep-alive and Content-Length", RESP, 0, 0,
      IN("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
      END_OK, 0, 1, { S(200, 0, LEN, 2, 1, 2, "ok", 0) } },
    { "response with Connection: close and Content-Length", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
      END_OK, 0, 1, { S(200, 1, LEN, 2, 0, 2, "ok", 0) } },
    { "200 with Content-Length: 0", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), END_OK, 0, 1,
      { S(200, 1, NONE, 0, 1, 1, "", 0) } },
    { "204 has no body", RESP, 0, 0,
      IN("HTTP/1.1 204 No Content\r\n\r\n"), END_OK, 0, 1,
      { S(204, 1, NONE, 0, 1, 0, "", 0) } },
    { "304 with Content-Length has no body", RESP, 0, 0,
      IN("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"), END_OK, 0, 1,
      { S(304, 1, NONE, 0, 1, 1, "", 0) } },
    { "response to HEAD with Content-Length has no body", RESP, 0, 1,
      IN("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), END_OK, 0, 1,
      { S(200, 1, NONE, 0, 1, 1, "", 0) } },
    { "response to HEAD with chunked has no body", RESP, 0, 1,
      IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), END_OK, 0, 1,
      { S(200, 1, NONE, 0, 1, 1, "", 0) } },
    { "100 Continue, then the final response", RESP, 0, 0,
      IN("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
      END_OK, 0, 2, { S(100, 1, NONE, 0, 1, 0, "", 0), S(200, 1, LEN, 2, 1, 1, "ok", 0) } },
    { "103 Early Hints, then the final response", RESP, 0, 0,
      IN("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
         "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
      END_OK, 0, 2, { S(103, 1, NONE, 0, 1, 1, "", 0), S(200, 1, NONE, 0, 1, 1, "", 0) } },
    { "101 Switching Protocols is flagged", RESP, 0, 0,
      IN("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
      END_OK, 0, 1, { S(101, 1, NONE, 0, 1, 2, "", F_UPGRADE) } },
    { "status line without a reason phrase", RESP, 0, 0,
      IN("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), END_OK, 0, 1,
      { S(200, 1, NONE, 0, 1, 1, "", 0) } },
    { "status line with an empty reason phrase", RESP, 0, 0,
      IN("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"), END_OK, 0, 1,
      { S(404, 1, NONE, 0, 1, 1, "", 0) } },
    { "pipelined responses: Content-Length, then chunked, then 204", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
         "HTTP/1.1 204 No Content\r\n\r\n"),
      END_OK, 0, 3, { S(200, 1, LEN, 2, 1, 1, "ok", 0), S(200, 1, CHUNKED, 0, 1, 1, "abc", 0),
                      S(204, 1, NONE, 0, 1, 0, "", 0) } },
    { "response body cut short needs more", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"), END_MORE, 0, 1,
      { S(200, 1, LEN, 5, 1, 1, "hel", 0) } },
    RBAD("response: HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", 502),
    RBAD("response: lowercase version", "http/1.1 200 OK\r\n\r\n", 502),
    RBAD("response: two-digit status", "HTTP/1.1 99 Odd\r\n\r\n", 502),
    RBAD("response: status 600", "HTTP/1.1 600 Odd\r\n\r\n", 502),
    RBAD("response: status 099", "HTTP/1.1 099 Odd\r\n\r\n", 502),
    RBAD("response: no space after the version", "HTTP/1.1200 OK\r\n\r\n", 502),
    RBAD("response: two spaces before the status code", "HTTP/1.1  200 OK\r\n\r\n", 502),
    RBAD("response: status code followed by a letter", "HTTP/1.1 200OK\r\n\r\n", 502),
    RBAD("response: control character in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n", 502),
    RBAD("response: empty lines before the status line", "\r\nHTTP/1.1 200 OK\r\n\r\n", 502),
    RBAD("response: Content-Length and Transfer-Encoding",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 502),
    RBAD("response: Transfer-Encoding gzip",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 502),
    RBAD("response: Transfer-Encoding 'gzip, chunked'",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 502),
    RBAD("response: differing Content-Length",
         "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 502),
    RBAD("response: obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 502),
    RBAD("response: bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", 502),
    RBAD("response: NUL in a value", "HTTP/1.1 200 OK\r\nX: \0\r\n\r\n", 502),
    RBAD("response: Transfer-Encoding in a 204",
         "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 502),
    RBAD("response: not HTTP at all", "SSH-2.0-OpenSSH_9.2\r\n", 502),
    { "response: invalid chunk size in the body", RESP, 0, 0,
      IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), END_ERR, 502, 1,
      { S(200, 1, CHUNKED, 0, 1, 1, "", 0) } },
};

/* ------------------------------------------------------------------------ */
/* The driver: parses pipelined messages and their bodies out of in[0..len),
 * with bytes arriving first (the first arrival) and then step at a time, as
 * they would from a socket. */

#define MAXMSG 4

struct got_msg {
    char method[64], target[128];
    int status, minor, framing, keep_alive, nheaders;
    uint64_t cl;
    unsigned flags;
    char h0[128];
    char body[512];
    size_t body_len;
};

struct result {
    int nmsg;
    struct got_msg m[MAXMSG];
    enum end end;
    int err_status;
    const char *why;   /* a driver-level inconsistency */
};

static void copy_span(char *dst, size_t cap, const char *p, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, p, n);
    dst[n] = 0;
}

static void limits_for(int which, struct mg_h1_limits *l)
{
    mg_h1_limits_default(l);
    if (which == LIM_SMALL) {
        l->max_request_line = 32;
        l->max_head = 256;
        l->max_headers = 4;
        l->max_body = 16;
        l->max_chunk_ext = 8;
        l->max_trailer = 32;
    }
}

static void drive(const struct row *r, size_t first, size_t step, struct result *res)
{
    struct mg_h1_limits lim;
    struct mg_h1_parser p;
    struct mg_h1_msg msg;
    struct mg_h1_body b;
    const char *in = r->in;
    size_t len = r->in_len, avail = first < len ? first : len, pos = 0;

    memset(res, 0, sizeof *res);
    limits_for(r->lim, &lim);
    mg_h1_parser_init(&p, r->kind, &lim);
    p.request_was_head = r->head_req;
    for (;;) {
        int rc;
        mg_h1_parser_reset(&p);
        for (;;) {
            rc = mg_h1_parse_head(&p, in + pos, avail - pos, &msg);
            if (rc != 0)
                break;
            if (avail == len) {
                res->end = pos == len ? END_OK : END_MORE;
                return;
            }
            avail = avail + step < len ? avail + step : len;
        }
        if (rc < 0) {
            res->end = END_ERR;
            res->err_status = p.err.status;
            if (p.err.reason == NULL)
                res->why = "error without a reason";
            return;
        }
        if ((size_t)rc != msg.head_len || (size_t)rc > avail - pos) {
            res->why = "head length inconsistent";
            return;
        }
        if (res->nmsg == MAXMSG) {
            res->why = "too many messages";
            return;
        }
        struct got_msg *g = &res->m[res->nmsg++];
        copy_span(g->method, sizeof g->method, msg.method, msg.method_len);
        copy_span(g->target, sizeof g->target, msg.target, msg.target_len);
        g->status = msg.status;
        g->minor = msg.minor;
        g->framing = msg.framing;
        g->cl = msg.content_length;
        g->keep_alive = msg.keep_alive;
        g->nheaders = (int)msg.nheaders;
        g->flags = (msg.expect_continue ? F_EXPECT : 0) | (msg.upgrade ? F_UPGRADE : 0) |
                   (msg.head_request ? F_HEAD : 0);
        if (msg.nheaders) {
            char tmp[128];
            int n = snprintf(tmp, sizeof tmp, "%.*s=%.*s", (int)msg.headers[0].name_len,
                             msg.headers[0].name, (int)msg.headers[0].value_len,
                             msg.headers[0].value);
            copy_span(g->h0, sizeof g->h0, tmp, n < 0 ? 0 : (size_t)n);
        }
        pos += (size_t)rc;

        mg_h1_body_init(&b, &msg, &lim);
        while (!b.done) {
            if (pos == avail) {
                if (avail == len) {
                    if (msg.framing == MG_H1_BODY_EOF) {
                        if (mg_h1_body_eof(&b) != 0)
                            res->why = "EOF did not end an EOF-framed body";
                        res->end = END_EOF;
                    } else {
                        res->end = END_MORE;
                    }
                    return;
                }
                avail = avail + step < len ? avail + step : len;
                continue;
            }
            const char *d;
            size_t dl;
            long n = mg_h1_body_decode(&b, in + pos, avail - pos, &d, &dl);
            if (n < 0) {
                res->end = END_ERR;
                res->err_status = b.err.status;
                return;
            }
            if (n == 0 && !b.done) {
                res->why = "body decoder made no progress";
                return;
            }
            if (dl && (d < in + pos || d + dl > in + pos + (size_t)n)) {
                res->why = "data span outside the consumed bytes";
                return;
            }
            if (g->body_len + dl >= sizeof g->body) {
                res->why = "body too long for the test";
                return;
            }
            if (dl)
                memcpy(g->body + g->body_len, d, dl);
            g->body_len += dl;
            pos += (size_t)n;
        }
        if (b.total != g->body_len)
            res->why = "total differs from the bytes delivered";
    }
}

/* Compares a result with the row; prints why it differs under label. */
static int check_row(const struct row *r, const struct result *res, const char *label)
{
    int ok = 1;
#define DIFF(...) do { printf("# %s [%s]: ", r->name, label); printf(__VA_ARGS__); printf("\n"); ok = 0; } while (0)
    if (res->why)
        DIFF("%s", res->why);
    if (res->end != r->end)
        DIFF("end %d, want %d (error status %d)", res->end, r->end, res->err_status);
    if (r->end == END_ERR && res->err_status != r->err_status)
        DIFF("status %d, want %d", res->err_status, r->err_status);
    if (res->nmsg != r->nmsg)
        DIFF("%d messages, want %d", res->nmsg, r->nmsg);
    for (int i = 0; i < r->nmsg && i < res->nmsg; i++) {
        const struct exp_msg *e = &r->m[i];
        const struct got_msg *g = &res->m[i];
        if (r->kind == MG_H1_REQUEST) {
            if (strcmp(g->method, e->method) != 0)
                DIFF("msg %d method '%s', want '%s'", i, g->method, e->method);
            if (strcmp(g->target, e->target) != 0)
                DIFF("msg %d target '%s', want '%s'", i, g->target, e->target);
        } else if (g->status != e->status) {
            DIFF("msg %d status %d, want %d", i, g->status, e->status);
        }
        if (g->minor != e->minor)
            DIFF("msg %d minor %d, want %d", i, g->minor, e->minor);
        if (g->framing != e->framing)
            DIFF("msg %d framing %d, want %d", i, g->framing, e->framing);
        if (g->cl != e->cl)
            DIFF("msg %d content_length %llu, want %llu", i, (unsigned long long)g->cl,
                 (unsigned long long)e->cl);
        if (g->keep_alive != e->keep_alive)
            DIFF("msg %d keep_alive %d, want %d", i, g->keep_alive, e->keep_alive);
        if (g->nheaders != e->nheaders)
            DIFF("msg %d nheaders %d, want %d", i, g->nheaders, e->nheaders);
        if (g->flags != e->flags)
            DIFF("msg %d flags %u, want %u", i, g->flags, e->flags);
        if (e->h0 && strcmp(g->h0, e->h0) != 0)
            DIFF("msg %d first field '%s', want '%s'", i, g->h0, e->h0);
        if (g->body_len != strlen(e->body) || memcmp(g->body, e->body, g->body_len) != 0)
            DIFF("msg %d body '%.*s', want '%s'", i, (int)g->body_len, g->body, e->body);
    }
#undef DIFF
    return ok;
}

static void t_conformance_table(void)
{
    size_t nrows = sizeof rows / sizeof rows[0];
    int nvalid = 0;
    for (size_t i = 0; i < nrows; i++) {
        const struct row *r = &rows[i];
        struct result res;
        char name[256];
        if (r->end != END_ERR)
            nvalid++;

        drive(r, r->in_len, r->in_len, &res);
        snprintf(name, sizeof name, "%s: %s", r->kind == MG_H1_REQUEST ? "request" : "response",
                 r->name);
        test_report(name, check_row(r, &res, "whole"));

        /* The same input split in two at every byte, and byte by byte. */
        int ok = 1;
        for (size_t k = 0; k <= r->in_len && ok; k++) {
            char label[32];
            snprintf(label, sizeof label, "split at %zu", k);
            drive(r, k, r->in_len, &res);
            ok = check_row(r, &res, label);
        }
        if (ok) {
            drive(r, 1, 1, &res);
            ok = check_row(r, &res, "byte at a time");
        }
        snprintf(name, sizeof name, "%s: %s [every split, byte at a time]",
                 r->kind == MG_H1_REQUEST ? "request" : "response", r->name);
        test_report(name, ok);
    }
    printf("# conformance table: %zu rows, %d valid or incomplete, %zu errors\n", nrows,
           nvalid, nrows - (size_t)nvalid);
    test_report("conformance table has at least 100 rows", nrows >= 100);
}

/* ------------------------------------------------------------------------ */
/* The API's finer promises. */

static void t_pointers_into_buffer(void)
{
    static const char in[] = "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\n"
                             "Content-Length: 2\r\nX-Trim:  v  \r\n\r\n{}";
    struct mg_h1_parser p;
    struct mg_h1_msg m;
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    int rc = mg_h1_parse_head(&p, in, sizeof in - 1, &m);
    REQUIRE(rc > 0);
    CHECK_EQ_INT(rc, sizeof in - 1 - 2);
    CHECK(m.method == in);
    CHECK(m.target == in + 5);
    CHECK_EQ_INT(m.nheaders, 3);
    CHECK(m.headers[2].name == strstr(in, "X-Trim"));
    CHECK_EQ_MEM(m.headers[2].value, m.headers[2].value_len, "v");
    CHECK_EQ_INT(mg_h1_find_header(&m, "x-trim", 0), 2);
    CHECK_EQ_INT(mg_h1_find_header(&m, "CONTENT-LENGTH", 0), 1);
    CHECK_EQ_INT(mg_h1_find_header(&m, "host", 1), -1);
    CHECK_EQ_INT(mg_h1_find_header(&m, "missing", 0), -1);
    /* Calling again after completion gives the same answer. */
    CHECK_EQ_INT(mg_h1_parse_head(&p, in, sizeof in - 1, &m), rc);
}

static void t_scan_resumes(void)
{
    /* Growing input is scanned once: the scan position only moves forward
     * and a long head fed byte by byte is not rescanned from its start. */
    char in[8192];
    size_t n = 0;
    n += (size_t)sprintf(in + n, "GET / HTTP/1.1\r\nHost: a\r\n");
    while (n < sizeof in - 64)
        n += (size_t)sprintf(in + n, "X-Field-%zu: value\r\n", n);
    n += (size_t)sprintf(in + n, "\r\n");
    struct mg_h1_limits l;
    mg_h1_limits_default(&l);
    l.max_headers = MG_H1_MAX_HEADERS;
    struct mg_h1_parser p;
    struct mg_h1_msg m;
    mg_h1_parser_init(&p, MG_H1_REQUEST, &l);
    /* Too many fields for 128: use only the first 2000 bytes. */
    size_t cut = 2000;
    while (in[cut - 1] != '\n')
        cut--;
    memcpy(in + cut, "\r\n", 2);
    int rc = 0;
    for (size_t k = 1; k <= cut + 2; k++) {
        size_t before = p.scanned;
        rc = mg_h1_parse_head(&p, in, k, &m);
        if (rc != 0)
            break;
        CHECK(p.scanned >= before);
        CHECK(p.scanned <= k);
        if (p.scanned + 1 < k)
            CHECK(!"scan fell behind the input");
    }
    CHECK_EQ_INT(rc, (int)(cut + 2));
}

static void t_head_limits_default(void)
{
    static char big[40000];
    struct mg_h1_parser p;
    struct mg_h1_msg m;
    struct mg_h1_limits l;
    mg_h1_limits_default(&l);
    CHECK_EQ_INT(l.max_request_line, 8192);
    CHECK_EQ_INT(l.max_head, 32768);
    CHECK_EQ_INT(l.max_headers, 100);
    CHECK_EQ_INT(l.max_body, 0);

    /* A request line of 8192 bytes passes, 8193 is 414. */
    for (int extra = 0; extra <= 1; extra++) {
        size_t tl = 8192 - strlen("GET  HTTP/1.1") + (size_t)extra;
        size_t n = 0;
        memcpy(big, "GET /", 5);
        n = 5;
        memset(big + n, 'a', tl - 1);
        n += tl - 1;
        n += (size_t)sprintf(big + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
        mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
        int rc = mg_h1_parse_head(&p, big, n, &m);
        if (extra == 0) {
            CHECK(rc > 0);
        } else {
            CHECK_EQ_INT(rc, -1);
            CHECK_EQ_INT(p.err.status, 414);
        }
    }
    /* 100 fields pass, 101 are 431. */
    for (int count = 100; count <= 101; count++) {
        size_t n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < count; i++)
            n += (size_t)sprintf(big + n, "%s: v\r\n", i == 0 ? "Host" : "X-A");
        n += (size_t)sprintf(big + n, "\r\n");
        mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
        int rc = mg_h1_parse_head(&p, big, n, &m);
        if (count == 100) {
            CHECK(rc > 0);
            CHECK_EQ_INT(m.nheaders, 100);
        } else {
            CHECK_EQ_INT(rc, -1);
            CHECK_EQ_INT(p.err.status, 431);
        }
    }
    /* A 32 KiB head passes, one byte more is 431, also before it ends. */
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
        size_t fill = 32768 - n - 4 + (size_t)extra;
        memset(big + n, 'b', fill);
        n += fill;
        memcpy(big + n, "\r\n\r\n", 4);
        n += 4;
        mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
        int rc = mg_h1_parse_head(&p, big, n, &m);
        if (extra == 0) {
            CHECK_EQ_INT(rc, 32768);
        } else {
            CHECK_EQ_INT(rc, -1);
            CHECK_EQ_INT(p.err.status, 431);
            mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
            CHECK_EQ_INT(mg_h1_parse_head(&p, big, 32768, &m), -1);
            CHECK_EQ_INT(p.err.status, 431);
        }
    }
}

static void t_error_details(void)
{
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n";
    struct mg_h1_parser p;
    struct mg_h1_msg m;
    mg_h1_parser_init(&p, MG_H1_REQUEST, NULL);
    CHECK_EQ_INT(mg_h1_parse_head(&p, in, sizeof in - 1, &m), -1);
    CHECK_EQ_INT(p.err.status, 400);
    CHECK_EQ_INT(p.err.offset, strstr(in, " Name") - in);
    REQUIRE(p.err.reason != NULL);
    CHECK_EQ_STR(p.err.reason, "whitespace in field name");
    /* Which of the three a whitespace after a name means. */
    static const char *const lines[][2] = {
        {"Name : x", "whitespace between field name and colon"},
        {"just some words", "field line without a colon (expected \"name: value\")"},
        {"Bad Name: x", "whitespace in field name"},
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\nHost: a\r\n%s\r\n\r\n", lines[i][0]);
        struct mg_h1_parser q;
        mg_h1_parser_init(&q, MG_H1_REQUEST, NULL);
        CHECK_EQ_INT(mg_h1_parse_head(&q, buf, (size_t)n, &m), -1);
        CHECK_EQ_INT(q.err.status, 400);
        REQUIRE(q.err.reason != NULL);
        CHECK_EQ_STR(q.err.reason, lines[i][1]);
    }
    /* The parser stays failed until reset. */
    CHECK_EQ_INT(mg_h1_parse_head(&p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, &m), -1);
    mg_h1_parser_reset(&p);
    CHECK_EQ_INT(mg_h1_parse_head(&p, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, &m), 27);
    /* A caller that hands back fewer bytes than before is refused, not
     * trusted with a stale scan position. */
    mg_h1_parser_reset(&p);
    CHECK_EQ_INT(mg_h1_parse_head(&p, "GET / HTTP/1.1\r\nHo", 18, &m), 0);
    CHECK_EQ_INT(mg_h1_parse_head(&p, "GET / HTTP/1.1\r\nHo", 10, &m), -1);
    CHECK_EQ_INT(p.err.status, 400);
}

static void t_body_decode_api(void)
{
    struct mg_h1_msg m;
    struct mg_h1_body b;
    const char *d;
    size_t dl;
    memset(&m, 0, sizeof m);

    /* Content-Length: leftover bytes of the next message are not consumed. */
    m.framing = MG_H1_BODY_LENGTH;
    m.content_length = 3;
    mg_h1_body_init(&b, &m, NULL);
    static const char in1[] = "abcGET";
    CHECK_EQ_INT(mg_h1_body_decode(&b, in1, 6, &d, &dl), 3);
    CHECK(d == in1);
    CHECK_EQ_INT(dl, 3);
    CHECK(b.done);
    CHECK_EQ_INT(mg_h1_body_decode(&b, in1 + 3, 3, &d, &dl), 0);
    CHECK_EQ_INT(dl, 0);

    /* Chunked: one data span per call, pointing into the input; the framing
     * after it is consumed up to the next chunk's data. */
    m.framing = MG_H1_BODY_CHUNKED;
    mg_h1_body_init(&b, &m, NULL);
    static const char in2[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\nNEXT";
    long n = mg_h1_body_decode(&b, in2, sizeof in2 - 1, &d, &dl);
    CHECK_EQ_INT(n, 11);   /* "3\r\nabc\r\n2\r\n" */
    CHECK(d == in2 + 3);
    CHECK_EQ_INT(dl, 3);
    CHECK(!b.done);
    long n2 = mg_h1_body_decode(&b, in2 + n, sizeof in2 - 1 - (size_t)n, &d, &dl);
    CHECK_EQ_INT(n2, 2 + 2 + 5);   /* "de" "\r\n" "0\r\n\r\n" */
    CHECK_EQ_MEM(d, dl, "de");
    CHECK(b.done);
    CHECK_EQ_INT(b.total, 5);
    CHECK_EQ_MEM(in2 + n + n2, 4, "NEXT");

    /* An error after a span: the span is delivered, the error comes next. */
    mg_h1_body_init(&b, &m, NULL);
    static const char in3[] = "3\r\nabcXY";
    n = mg_h1_body_decode(&b, in3, sizeof in3 - 1, &d, &dl);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_MEM(d, dl, "abc");
    CHECK_EQ_INT(mg_h1_body_decode(&b, in3 + 6, 2, &d, &dl), -1);
    CHECK_EQ_INT(b.err.status, 400);
    CHECK(b.err.reason != NULL);
    CHECK_EQ_INT(dl, 0);

    /* EOF: a chunked body cut short is an error, EOF framing ends fine. */
    mg_h1_body_init(&b, &m, NULL);
    CHECK_EQ_INT(mg_h1_body_decode(&b, "5\r\nab", 5, &d, &dl), 5);
    CHECK_EQ_INT(mg_h1_body_eof(&b), -1);
    m.framing = MG_H1_BODY_EOF;
    m.status = 200;
    mg_h1_body_init(&b, &m, NULL);
    CHECK_EQ_INT(mg_h1_body_decode(&b, "xyz", 3, &d, &dl), 3);
    CHECK_EQ_INT(mg_h1_body_eof(&b), 0);
    CHECK(b.done);

    /* A response body cut short is the upstream's fault: 502. */
    m.framing = MG_H1_BODY_LENGTH;
    m.content_length = 10;
    mg_h1_body_init(&b, &m, NULL);
    CHECK_EQ_INT(mg_h1_body_decode(&b, "abc", 3, &d, &dl), 3);
    CHECK_EQ_INT(mg_h1_body_eof(&b), -1);
    CHECK_EQ_INT(b.err.status, 502);

    /* EOF framing past max_body is 413 for requests' limits too. */
    struct mg_h1_limits l;
    mg_h1_limits_default(&l);
    l.max_body = 4;
    m.framing = MG_H1_BODY_EOF;
    m.status = 0;
    mg_h1_body_init(&b, &m, &l);
    CHECK_EQ_INT(mg_h1_body_decode(&b, "abc", 3, &d, &dl), 3);
    /* Up to the limit whatever the reads, then the error. */
    CHECK_EQ_INT(mg_h1_body_decode(&b, "defg", 4, &d, &dl), 1);
    CHECK_EQ_MEM(d, dl, "d");
    CHECK_EQ_INT(mg_h1_body_decode(&b, "efg", 3, &d, &dl), -1);
    CHECK_EQ_INT(b.err.status, 413);
}

/* ------------------------------------------------------------------------ */
/* Encoders. */

static void t_put_header_rejects_injection(void)
{
    struct mg_buf out;
    mg_buf_init(&out, 4096);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X-Request-Id", "abc 123"), 0);
    CHECK_EQ_MEM(mg_buf_head(&out), out.len, "X-Request-Id: abc 123\r\n");
    size_t before = out.len;
    CHECK_EQ_INT(mg_h1_put_header(&out, "X", "a\r\nSet-Cookie: evil"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X", "a\nb"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X", "a\rb"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header_n(&out, "X", 1, "a\0b", 3), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X", "a\x01" "b"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "Bad Name", "v"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "Bad:Name", "v"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X\r\nY", "v"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_header(&out, "", "v"), -EINVAL);
    CHECK_EQ_INT(out.len, before);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X-Tab", "a\tb"), 0);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X-Empty", ""), 0);
    CHECK_EQ_MEM(mg_buf_head(&out) + before, out.len - before, "X-Tab: a\tb\r\nX-Empty: \r\n");
    mg_buf_free(&out);

    /* The cap is honoured. */
    mg_buf_init(&out, 8);
    CHECK_EQ_INT(mg_h1_put_header(&out, "X-Long", "value"), -ENOBUFS);
    CHECK_EQ_INT(out.len, 0);
    mg_buf_free(&out);
}

static void t_put_lines(void)
{
    struct mg_buf out;
    mg_buf_init(&out, 4096);
    CHECK_EQ_INT(mg_h1_put_status(&out, 200, NULL), 0);
    CHECK_EQ_INT(mg_h1_put_status(&out, 503, "busy, retry later"), 0);
    CHECK_EQ_INT(mg_h1_put_status(&out, 799, NULL), 0);
    CHECK_EQ_MEM(mg_buf_head(&out), out.len,
                 "HTTP/1.1 200 OK\r\nHTTP/1.1 503 busy, retry later\r\nHTTP/1.1 799 Unknown\r\n");
    size_t before = out.len;
    CHECK_EQ_INT(mg_h1_put_status(&out, 42, NULL), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_status(&out, 200, "OK\r\nX: y"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_request_line(&out, "GET", "/a b"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_request_line(&out, "G T", "/"), -EINVAL);
    CHECK_EQ_INT(mg_h1_put_request_line(&out, "GET", ""), -EINVAL);
    CHECK_EQ_INT(out.len, before);
    mg_buf_reset(&out);
    CHECK_EQ_INT(mg_h1_put_request_line(&out, "POST", "/v1/chat/completions"), 0);
    CHECK_EQ_MEM(mg_buf_head(&out), out.len, "POST /v1/chat/completions HTTP/1.1\r\n");
    mg_buf_free(&out);

    CHECK_EQ_STR(mg_h1_reason(404), "Not Found");
    CHECK_EQ_STR(mg_h1_reason(431), "Request Header Fields Too Large");
    CHECK_EQ_STR(mg_h1_reason(299), "Unknown");
    CHECK(mg_h1_is_token("x-request-id", 12));
    CHECK(!mg_h1_is_token("", 0));
    CHECK(!mg_h1_is_token("a b", 3));
    CHECK(!mg_h1_is_token("a:b", 3));
    CHECK(mg_h1_list_has("keep-alive, Upgrade", 19, "upgrade"));
    CHECK(mg_h1_list_has(" close ", 7, "close"));
    CHECK(!mg_h1_list_has("closed, xclose", 14, "close"));
    CHECK(!mg_h1_list_has("", 0, "close"));
}

static void t_chunk_header(void)
{
    char b[MG_H1_CHUNK_HDR_MAX];
    size_t n = mg_h1_chunk_header(b, 0);
    CHECK_EQ_MEM(b, n, "0\r\n");
    n = mg_h1_chunk_header(b, 26);
    CHECK_EQ_MEM(b, n, "1a\r\n");
    n = mg_h1_chunk_header(b, 4096);
    CHECK_EQ_MEM(b, n, "1000\r\n");
    n = mg_h1_chunk_header(b, SIZE_MAX);
    CHECK_EQ_INT(n, sizeof(size_t) * 2 + 2);
    CHECK(n <= MG_H1_CHUNK_HDR_MAX);
    CHECK_EQ_MEM(mg_h1_last_chunk, MG_H1_LAST_CHUNK_LEN, "0\r\n\r\n");
    CHECK_EQ_INT(strlen(mg_h1_last_chunk), MG_H1_LAST_CHUNK_LEN);
}

/* Encodes a streamed response with the helpers, chunk sizes from a fixed
 * pseudo-random sequence, and decodes it back in uneven reads. */
static void t_chunked_round_trip(void)
{
    struct mg_buf out;
    mg_buf_init(&out, 1 << 20);
    char body[20000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof body; i++) {
        x = x * 1103515245u + 12345u;
        body[i] = (char)(x >> 16);   /* any byte, CR, LF and NUL included */
    }
    REQUIRE(mg_h1_put_status(&out, 200, NULL) == 0);
    REQUIRE(mg_h1_put_header(&out, "Content-Type", "text/event-stream") == 0);
    REQUIRE(mg_h1_put_header(&out, "Transfer-Encoding", "chunked") == 0);
    REQUIRE(mg_buf_append(&out, "\r\n", 2) == 0);
    size_t off = 0;
    while (off < sizeof body) {
        x = x * 1103515245u + 12345u;
        size_t n = (x >> 16) % 700 + 1;
        if (n > sizeof body - off)
            n = sizeof body - off;
        char h[MG_H1_CHUNK_HDR_MAX];
        size_t hl = mg_h1_chunk_header(h, n);
        REQUIRE(mg_buf_append(&out, h, hl) == 0);
        REQUIRE(mg_buf_append(&out, body + off, n) == 0);
        REQUIRE(mg_buf_append(&out, "\r\n", 2) == 0);
        off += n;
    }
    REQUIRE(mg_buf_append(&out, mg_h1_last_chunk, MG_H1_LAST_CHUNK_LEN) == 0);

    const char *in = mg_buf_head(&out);
    size_t len = out.len;
    struct mg_h1_parser p;
    struct mg_h1_msg m;
    mg_h1_parser_init(&p, MG_H1_RESPONSE, NULL);
    int rc = mg_h1_parse_head(&p, in, len, &m);
    REQUIRE(rc > 0);
    CHECK_EQ_INT(m.status, 200);
    CHECK_EQ_INT(m.framing, MG_H1_BODY_CHUNKED);
    struct mg_h1_body b;
    mg_h1_body_init(&b, &m, NULL);
    static char got[sizeof body];
    size_t glen = 0, pos = (size_t)rc;
    while (!b.done && pos < len) {
        x = x * 1103515245u + 12345u;
        size_t avail = (x >> 16) % 97 + 1;
        if (avail > len - pos)
            avail = len - pos;
        const char *d;
        size_t dl;
        long n = mg_h1_body_decode(&b, in + pos, avail, &d, &dl);
        REQUIRE(n >= 0);
        REQUIRE(glen + dl <= sizeof got);
        if (dl)
            memcpy(got + glen, d, dl);
        glen += dl;
        pos += (size_t)n;
    }
    CHECK(b.done);
    CHECK_EQ_INT(pos, len);
    CHECK_EQ_INT(glen, sizeof body);
    CHECK(memcmp(got, body, sizeof body) == 0);
    mg_buf_free(&out);
}

int main(void)
{
    RUN(t_conformance_table);
    RUN(t_pointers_into_buffer);
    RUN(t_scan_resumes);
    RUN(t_head_limits_default);
    RUN(t_error_details);
    RUN(t_body_decode_api);
    RUN(t_put_header_rejects_injection);
    RUN(t_put_lines);
    RUN(t_chunk_header);
    RUN(t_chunked_round_trip);
    return test_done();
}
