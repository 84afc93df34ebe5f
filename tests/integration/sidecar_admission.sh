#!/usr/bin/env bash
# modelgate-sidecar load-aware admission, against modelsim: the sidecar
# polls each endpoint's /metrics; an endpoint whose
# vllm:num_requests_waiting is past maxWaiting (a modelsim with
# --max-running 1 and requests queued on it directly) gets no new request
# while its sibling is not saturated; metrics that stop coming (a modelsim
# stopped with SIGSTOP) count as saturated; when every endpoint is
# saturated, requests marked sheddable by the priority header are shed
# (fast, counted) and the others still go through.
# Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-resil.bash"

# a: 1 at a time, 1 s per reply; b: unlimited, immediate.
start_sim a --model m --version a --max-running 1 --ttft-ms 1000 --tokens 2 || bail "modelsim a did not start"
A=$sim_port
start_sim b --model m --version b --tokens 2 || bail "modelsim b did not start"
B=$sim_port
sc_ports
write_config() {
    cat >"$MG_TMP/sc.yaml" <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
accessLog: false
routes:
  - model: m
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$A, 127.0.0.1:$B] }
    admission: { interval: 50ms, staleAfter: 500ms, maxWaiting: 1, maxKvCacheUsage: 0.5, priorityHeader: x-priority, sheddable: [low, batch] }
EOF
}
write_config
start_sidecar sc "$MG_TMP/sc.yaml" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"

# seq_load N [CURL-LESS ARGS]: N short requests one after the other, counted
# by the backend that served them (x-modelsim-version: a or b).
seq_load() { local n=$1; shift; load --conns 1 --requests "$n" --path /v1/chat/completions --body "$(chat m hi '"max_tokens":1')" --version-header x-modelsim-version "$@"; }
# qdirect N: N slow requests straight to a (not through the sidecar), in
# the background, to fill its queue.
qpids=()
qdirect() {
    local port=$1 n=$2 i
    for i in $(seq "$n"); do
        curl -s -o /dev/null --max-time 20 "http://127.0.0.1:$port/v1/chat/completions" -d "$(chat m "queue $i")" &
        qpids+=($!)
    done
}
waiting() { v=$(mval "$1" vllm:num_requests_waiting); echo "${v:-0}"; }

# Not saturated: the power of two choices spreads requests over both (a
# answers in 1 s, so only a few go there before its in-flight count shows;
# any at all proves it is eligible). Sent 4 at once.
res=$(load --conns 4 --requests 8 --path /v1/chat/completions --body "$(chat m spread '"max_tokens":1')" --version-header x-modelsim-version --timeout-ms $((20000 * slow)))
check "not saturated: a gets requests too (a: $(j "$res" '.versions.a // 0'), b: $(j "$res" '.versions.b // 0'))" eval '[ "$(j "$res" ".versions.a // 0")" -ge 1 ]'

# Saturate a: 1 running + 3 waiting.
qdirect "$A" 4
check "a reports 3 requests waiting (vllm:num_requests_waiting)" wait_for $((3 * slow)) eval '[ "$(waiting "$A")" -ge 3 ]'
sleep 0.2   # > 2 polling intervals
res=$(seq_load 30)
echo "# a saturated: $res"
check_eq "a saturated (waiting 3 > maxWaiting 1): 30 new requests all go to its sibling b" "$(j "$res" '[.ok, (.versions.b // 0)] | join("|")')" "30|30"
check "GET /state shows a as saturated" eval 'sc_state | jq -e --arg e "127.0.0.1:$A" "[.. | objects | select([.[] | select(type == \"string\")] | index(\$e) != null)] | map(tostring) | join(\" \") | test(\"satur|waiting\")" >/dev/null'

# Stale metrics: b stopped (SIGSTOP), a drained and healthy again. The
# sidecar must not trust b's last good numbers past staleAfter.
wait "${qpids[@]}"; qpids=()
check "a's queue drained" wait_for $((5 * slow)) eval '[ "$(waiting "$A")" = 0 ]'
sim_set "$A" '{"ttft_ms":0}' || bail "modelsim a: ttft 0"
kill -STOP "$(pid_of b)"
sleep 0.8   # > staleAfter
res=$(seq_load 10 --timeout-ms $((10000 * slow)))
kill -CONT "$(pid_of b)"
check_eq "b's metrics stale (stopped): 10 new requests all go to a" "$(j "$res" '[.ok, (.versions.a // 0)] | join("|")')" "10|10"
sleep 0.3
res=$(load --conns 4 --requests 40 --path /v1/chat/completions --body "$(chat m back '"max_tokens":1')" --version-header x-modelsim-version)
check "b resumed: it gets traffic again (b: $(j "$res" '.versions.b // 0') of 40)" eval '[ "$(j "$res" ".versions.b // 0")" -ge 5 ]'

# KV cache: a holds one long prompt (about 150 tokens of a 200-token
# cache: vllm:kv_cache_usage_perc 0.75 > maxKvCacheUsage 0.5), nothing waiting.
sim_set "$A" '{"kv_cache_tokens":200,"ttft_ms":2000}' || bail "modelsim a: kv_cache_tokens"
long=$(printf 'a long prompt that fills the cache %.0s' $(seq 16))
curl -s -o /dev/null --max-time 20 "http://127.0.0.1:$A/v1/chat/completions" -d "$(chat m "$long" '"max_tokens":1')" &
qpids+=($!)
kv() { v=$(mval "$A" vllm:kv_cache_usage_perc); echo "${v:-0}"; }
wait_for $((3 * slow)) eval 'fge "$(kv)" 0.6'
check "a reports its KV cache over half full ($(kv)) with nothing waiting ($(waiting "$A"))" eval 'fge "$(kv)" 0.6 && [ "$(waiting "$A")" = 0 ]'
sleep 0.2
res=$(seq_load 20)
check_eq "a's KV cache over maxKvCacheUsage (nothing waiting): 20 new requests all go to b" "$(j "$res" '[.ok, (.versions.b // 0)] | join("|")')" "20|20"
wait "${qpids[@]}"; qpids=()
sim_set "$A" '{"kv_cache_tokens":65536}' || bail "modelsim a: kv_cache_tokens back"

# --- shedding when every endpoint is saturated -------------------------------------

sim_set "$A" '{"ttft_ms":1000}' || bail "modelsim a: ttft"
sim_set "$B" '{"max_running":1,"ttft_ms":1000}' || bail "modelsim b: max_running"
qdirect "$A" 4; qdirect "$B" 4
check "both report 3 requests waiting" wait_for $((3 * slow)) eval '[ "$(waiting "$A")" -ge 3 ] && [ "$(waiting "$B")" -ge 3 ]'
sleep 0.2
# (Saturated for 2 s: until a second request has left each queue.)
code=$(sc_req "$MG_TMP/shed" "$(chat m shed '"max_tokens":1')" -H 'x-priority: batch')
check "a shed request (x-priority: batch) gets 503 or 429 and an OpenAI-style error body ($code, $(oai_error "$MG_TMP/shed.b"))" \
    eval '{ [ "$code" = 503 ] || [ "$code" = 429 ]; } && [ "$(oai_error "$MG_TMP/shed.b")" = ok ]'
sh0=$(scm modelgate_shed_total)
t0=$EPOCHREALTIME
res=$(load --conns 2 --requests 20 --path /v1/chat/completions --body "$(chat m shed '"max_tokens":1')" -H 'x-priority: low' --count-header retry-after)
el=$(since "$t0")
echo "# all saturated, sheddable: $res"
check_eq "all saturated: 20 sheddable requests (x-priority: low) shed" "$(j "$res" '(.status["503"] // 0) + (.status["429"] // 0)')" 20
check "...fast (20 in ${el}s, p99 $(j "$res" .err_p99_ms) ms)" flt "$(j "$res" .err_p99_ms)" $((50 * slow))
check_eq "...each with Retry-After" "$(j "$res" '.headers["retry-after"]["-"] // 0')" 0
check_eq "...counted in modelgate_shed_total" "$(( $(scm modelgate_shed_total) - sh0 ))" 20
code=$(curl -s --max-time $((20 * slow)) -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' -H 'x-priority: high' -d "$(chat m important '"max_tokens":1')")
check_eq "...while a request not marked sheddable still goes through (it waits its turn: 200)" "$code" 200
wait "${qpids[@]}"; qpids=()

check "the sidecar is still running" sc_alive sc
sc_clean_exit sc
finish
