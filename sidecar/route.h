/* Routing decisions, as pure functions over a route (config.h): which
 * version serves a request, and which endpoint inside it. No I/O, no
 * allocation, no locks: called on every request.
 *
 * Version choice, in order:
 *   1. match rules, first one whose header equals its value (exactly);
 *   2. sticky: when the route names a sticky header and the request carries
 *      it, weighted rendezvous hashing of the value over the versions with
 *      weight > 0: the same value goes to the same version while the
 *      weights stay, and a weight change moves only the keys that must move
 *      (keys leave only versions whose share fell, and arrive only at
 *      versions whose share rose); exact for two versions and for a change
 *      of one version's weight. When several weights of 3+ versions change
 *      at once, versions whose share did not change may also trade keys
 *      (no stateless scheme avoids that for every change; 50/30/20 ->
 *      30/30/40 moves 25% of keys, 20% being the minimum), but keys still
 *      never arrive at a version whose weight fell nor leave one whose
 *      weight rose;
 *   3. otherwise a weighted random draw from rng.
 * A route whose weights are all 0 serves only match rules (-ENOENT).
 *
 * Endpoint choice inside a version: power of two choices on the number of
 * requests in flight per endpoint (the caller's counters), ties broken by
 * the rng; a single endpoint is taken directly. */
#ifndef SC_ROUTE_H
#define SC_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "sidecar/config.h"

/* Looks a request header up by lower-case name; returns the value and sets
 * *len, or NULL. */
typedef const char *(*sc_header_cb)(void *ctx, const char *name, size_t *len);

/* A fast per-thread generator (xoshiro/splitmix); seed it once per worker. */
struct sc_rng { uint64_t s[2]; };
void sc_rng_seed(struct sc_rng *rng, uint64_t seed);
uint64_t sc_rng_next(struct sc_rng *rng);

enum sc_pick_reason { SC_PICK_MATCH = 1, SC_PICK_STICKY, SC_PICK_WEIGHT };

/* The version index for a request, or -ENOENT when no version can take it.
 * *why (may be NULL) says which rule decided. */
int sc_route_pick_version(const struct sc_route *r, sc_header_cb hdr, void *ctx,
                          struct sc_rng *rng, enum sc_pick_reason *why);

/* The version a sticky key goes to (the rendezvous part alone, for tests
 * and for the sticky step above). -ENOENT when every weight is 0. */
int sc_route_sticky_version(const struct sc_route *r, const char *key, size_t len);

/* Power of two choices over n endpoints given their in-flight counts.
 * Returns an index in [0, n); n must be > 0. */
unsigned sc_route_pick_endpoint(const unsigned *inflight, unsigned n, struct sc_rng *rng);

#endif
