/* Rate limits shared by every worker thread, lock-free: GCRA (the
 * "virtual scheduling" form of a token bucket) keeps one atomic
 * theoretical arrival time per bucket, updated by compare-and-swap, so two
 * threads racing for the last token cannot both get it.
 *
 * Requests per second with a burst: cost 1 per request. Tokens per
 * minute: a request reserves its max_tokens (or a default) at admission,
 * all or nothing; when the response ends, sc_rate_settle() gives back
 * what was reserved and not used (or takes the excess when usage was
 * larger), so concurrent requests cannot together pass the limit by more
 * than one request's reservation.
 *
 * Per API key: buckets keyed by a 64-bit hash of the bearer token (never
 * the token), in a fixed-size open-addressing table per route; a slot
 * whose bucket is idle (full again) may be taken over by a new key, so
 * memory stays bounded whatever the number of keys; when no slot can be
 * had, the request is refused (the table is full of active keys). */
#ifndef SC_RATELIMIT_H
#define SC_RATELIMIT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct sc_rate {                 /* one bucket */
    double per_ms;               /* tokens added per ms */
    double burst;                /* capacity */
    atomic_uint_fast64_t tat_ns; /* theoretical arrival time, ns on the callers'
                                  * monotonic µs clock: finer than µs so an
                                  * interval of 333333.3 µs (3/s) loses nothing */
};

/* rate: tokens per second; burst: capacity (>= 1). */
void sc_rate_init(struct sc_rate *r, double rate_per_s, double burst);
/* Takes cost tokens now, all or nothing. 1 granted; 0 refused, with
 * *retry_after_ms (may be NULL) the wait until it would be granted. A cost
 * above the burst is never granted (retry_after = 0: the caller says the
 * request is too large for the limit). */
int sc_rate_take(struct sc_rate *r, double cost, uint64_t now_us, uint64_t *retry_after_ms);
/* Corrects a grant: delta > 0 gives tokens back (never past full), < 0
 * takes more (never refused; the debt delays later requests, and is capped
 * at one burst so an absurd usage figure cannot lock a key out for long). */
void sc_rate_settle(struct sc_rate *r, double delta, uint64_t now_us);
/* Tokens available now (for /state); negative while in debt. */
double sc_rate_available(const struct sc_rate *r, uint64_t now_us);

struct sc_rate_table;            /* per-key buckets of one route */

/* slots: a power of two (e.g. 4096), at most 2^24. 0, -EINVAL (slots not
 * a power of two, or too large) or -ENOMEM. A key is looked for in at most
 * 16 slots from its hash's position, so a lookup is bounded work. */
int sc_rate_table_new(size_t slots, double rate_per_s, double burst, struct sc_rate_table **out);
void sc_rate_table_free(struct sc_rate_table *t);
/* The bucket of key_hash, claiming an idle slot when the key has none.
 * NULL when the table is full of active keys. */
struct sc_rate *sc_rate_table_get(struct sc_rate_table *t, uint64_t key_hash, uint64_t now_us);

/* A keyed 64-bit hash of a bearer token (SipHash-like with a per-process
 * random key, so hashes are not guessable and never logged as tokens). */
uint64_t sc_rate_key_hash(const char *token, size_t len);

#endif
