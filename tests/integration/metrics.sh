#!/usr/bin/env bash
# The metrics exposition as Prometheus reads it: mg-metrics-dump builds a
# registry with every metric kind (labels that need escaping, callbacks,
# histograms, a capped family) and `promtool check metrics` must accept its
# output without a single complaint. The vLLM-compatible names (with colons)
# may only draw promtool's "should not contain ':'" lint. Counts updated from
# several threads must come out exact.
. "$MG_TOP/tests/integration/lib.sh"

dump=$MG_TOOLS/mg-metrics-dump
[ -x "$dump" ] || bail "missing $dump (run make tests)"
command -v promtool >/dev/null || bail "promtool not installed (Debian package prometheus)"

# promtool itself must catch a broken exposition, or passing proves nothing.
printf '# TYPE x counter\nx{a="b"c"} 1\n' >"$MG_TMP/broken.txt"
if promtool check metrics <"$MG_TMP/broken.txt" >/dev/null 2>&1; then
    not_ok "promtool rejects a malformed exposition" "promtool accepted an unescaped quote"
else
    ok "promtool rejects a malformed exposition"
fi

# --- default names -----------------------------------------------------------
"$dump" >"$MG_TMP/default.txt" 2>"$MG_TMP/default.err"
check_eq "mg-metrics-dump exits 0" "$?" 0
out=$(cat "$MG_TMP/default.txt")
check "exposition is not empty" test -s "$MG_TMP/default.txt"
problems=$(promtool check metrics <"$MG_TMP/default.txt" 2>&1)
rc=$?
check_eq "promtool check metrics passes" "$rc" 0
check_eq "promtool reports no problems" "$problems" ""

has() { grep -qxF -- "$1" <<<"$out"; }
check "label value escaping (quote, backslash, newline)" \
    has 'modelgate_unknown_model_requests_total{model="we\"ird\\model\nname"} 1'
check "UTF-8 label value kept" has 'modelgate_unknown_model_requests_total{model="modèle-é"} 2'
check "HELP newline escaped" \
    has '# HELP modelgate_unknown_model_requests_total Requests naming a model no route serves.\nThe model label is the raw request value.'
check "histogram has +Inf bucket equal to _count" \
    has 'modelgate_request_duration_seconds_bucket{model="llama-3-8b-instruct",le="+Inf"} 9'
check "histogram _count" has 'modelgate_request_duration_seconds_count{model="llama-3-8b-instruct"} 9'
check "callback gauge value" \
    has 'modelgate_upstream_pool_connections{endpoint="127.0.0.1:8001",state="idle"} 4'
check "refused children are counted" \
    has 'modelgate_metrics_children_refused_total{metric="modelgate_client_requests_total"} 2'
lacks() { ! grep -qF -- "$1" <<<"$out"; }
check "no child past the cap" lacks 'client="c"'

# Buckets are cumulative: non-decreasing down each histogram.
cumulative=$(awk '/_bucket\{/ {
        key = $1; sub(/le="[^"]*"/, "", key)
        v = $2 + 0
        if (key in last && v < last[key]) bad = 1
        last[key] = v
    } END { print bad ? "no" : "yes" }' "$MG_TMP/default.txt")
check_eq "histogram buckets are cumulative" "$cumulative" yes

# --- vLLM-compatible names ---------------------------------------------------
"$dump" --vllm >"$MG_TMP/vllm.txt" 2>"$MG_TMP/vllm.err"
check_eq "mg-metrics-dump --vllm exits 0" "$?" 0
check "vllm:num_requests_running is exposed" \
    grep -qxF 'vllm:num_requests_running{model_name="meta-llama/Meta-Llama-3-8B-Instruct"} 5' "$MG_TMP/vllm.txt"
check "vllm histogram is exposed" \
    grep -qF 'vllm:time_to_first_token_seconds_bucket{model_name="meta-llama/Meta-Llama-3-8B-Instruct",le="+Inf"} 2' "$MG_TMP/vllm.txt"
promtool check metrics <"$MG_TMP/vllm.txt" >"$MG_TMP/vllm.lint" 2>&1
rc=$?
others=$(grep -v "metric names should not contain ':'" "$MG_TMP/vllm.lint" | grep -v '^[[:space:]]*$')
check_eq "promtool complains only about colons" "$others" ""
case $rc in
    0|3) ok "promtool exit status is 0 or lint-only ($rc)" ;;
    *) not_ok "promtool exit status is 0 or lint-only" "exit $rc: $(cat "$MG_TMP/vllm.lint")" ;;
esac

# --- updates from threads ----------------------------------------------------
"$dump" --threads >"$MG_TMP/threads.txt" 2>"$MG_TMP/threads.err"
check_eq "mg-metrics-dump --threads exits 0" "$?" 0
tout=$(cat "$MG_TMP/threads.txt")
# The value of the sample whose name and labels are exactly $1.
val() { awk -v k="$1" '$1 == k { print $2 }' <<<"$tout"; }
# 1234 before, then 6 threads x 50000 increments (4 with own shards, 2 shared).
check_eq "counter sums exactly over threads" \
    "$(val 'modelgate_requests_total{model="llama-3-8b-instruct",version="v1",code="200"}')" 301234
check_eq "counter add sums exactly" "$(val modelgate_tokens_total)" 988554321
check_eq "histogram count sums exactly" \
    "$(val 'modelgate_request_duration_seconds_count{model="llama-3-8b-instruct"}')" 300009
check_eq "gauge back to its value after inc/dec" "$(val modelgate_inflight_requests)" 3
problems=$(promtool check metrics <"$MG_TMP/threads.txt" 2>&1)
check_eq "promtool accepts the threaded exposition" "$problems" ""

finish
