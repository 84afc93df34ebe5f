/* Load-aware admission: the poller of the model servers' /metrics.
 *
 * For every endpoint of a route with `admission`, the main thread polls
 * GET /metrics every admission.interval with its own HTTP client (once
 * per process, not per worker) and publishes vllm:num_requests_waiting
 * (summed over its series) and vllm:kv_cache_usage_perc (the largest) in
 * the endpoint's shared struct sc_pol_ep, with the time of the poll. The
 * workers read those atomics when they pick an endpoint
 * (sc_policy_saturated): over a threshold, or older than staleAfter (a
 * server that does not answer, or has no such metrics, counts as
 * saturated), the endpoint is passed over while a sibling is not.
 *
 * A poll that takes longer than the interval is not overlapped: the next
 * one starts when it ends. Bodies are capped (1 MiB). */
#ifndef SC_ADMISSION_H
#define SC_ADMISSION_H

#include <stddef.h>
#include <stdint.h>

/* Parses a Prometheus text exposition for the two vLLM gauges. Returns 0
 * with *waiting (sum over series) and *kv (max over series) set, or
 * -ENOENT when neither is present. */
int sc_admission_parse(const char *p, size_t n, double *waiting, double *kv);

#endif
