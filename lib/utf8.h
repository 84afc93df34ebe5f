/* UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing past
 * U+10FFFF), shared by the logger, the metrics registry and the YAML loader. */
#ifndef MG_UTF8_H
#define MG_UTF8_H

#include <stddef.h>

/* Length (1..4) of the valid UTF-8 sequence at s[0..n), or 0 when it is
 * invalid or cut short. n must be at least 1. */
size_t mg_utf8_seq(const unsigned char *s, size_t n);
/* 1 when s[0..n) is entirely valid UTF-8, else 0. */
int mg_utf8_valid(const char *s, size_t n);

#endif
