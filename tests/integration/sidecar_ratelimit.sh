#!/usr/bin/env bash
# modelgate-sidecar rate and concurrency limits, against modelsim:
# requestsPerSecond with burst grants what a token bucket grants (counted,
# refill timed); per-API-key buckets are separate (keyless requests count
# only against the route's); a refusal is a 429 with Retry-After and an
# OpenAI body; two clients racing on tokensPerMinute (slow replies, so many
# reservations are in flight at once) cannot together pass the limit by
# more than one request's reservation; defaultMaxTokens is reserved and
# the unused part given back; perKey tokensPerMinute; 10x overload past
# maxConcurrent and maxPending gets fast refusals, bounded memory, and the
# requests that are served keep their latency; overloadStatus 429.
# Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-resil.bash"

start_sim fast --model rps --model keyed --version v1 --tokens 4 || bail "modelsim fast did not start"
FAST=$sim_port
# Slow whole replies of exactly 100 tokens (max_tokens 100).
start_sim tpm --model tpm --model tpm2 --model tpmkey --version v1 --tokens 100 --ttft-ms 150 || bail "modelsim tpm did not start"
TPM=$sim_port
start_sim slow --model busy --model busy429 --version v1 --tokens 4 --ttft-ms 100 || bail "modelsim slow did not start"
SLOW=$sim_port
sc_ports
write_config() {
    cat >"$MG_TMP/sc.yaml" <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
accessLog: false
routes:
  - model: rps
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$FAST] }
    rateLimit: { requestsPerSecond: 2, burst: 20 }
  - model: keyed
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$FAST] }
    rateLimit: { requestsPerSecond: 10000, burst: 10000, perKey: { requestsPerSecond: 2, burst: 5 } }
  - model: tpm
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$TPM] }
    rateLimit: { tokensPerMinute: 3000 }
  - model: tpm2
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$TPM] }
    rateLimit: { tokensPerMinute: 3000, defaultMaxTokens: 1000 }
  - model: tpmkey
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$TPM] }
    rateLimit: { perKey: { tokensPerMinute: 1000 } }
  - model: busy
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$SLOW] }
    circuitBreaker: { maxConcurrent: 4, maxPending: 2, pendingTimeout: 50ms }
  - model: busy429
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$SLOW] }
    circuitBreaker: { maxConcurrent: 1, maxPending: 0, overloadStatus: 429 }
EOF
}
write_config
start_sidecar sc "$MG_TMP/sc.yaml" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"

# --- requestsPerSecond + burst -------------------------------------------------

rl0=$(scm modelgate_rate_limited_total)
t0=$EPOCHREALTIME
res=$(load --conns 4 --requests 200 --path /v1/chat/completions --body "$(chat rps hi)")
el=$(since "$t0")
ok=$(j "$res" .ok)
hi=$(awk -v e="$el" 'BEGIN { printf "%d", 20 + 2 * e + 1 }')
echo "# 200 requests in ${el}s against 2/s burst 20: $ok granted; $res"
check "burst 20 + 2/s: $ok of 200 granted in ${el}s (20 <= granted <= $hi)" eval '[ "$ok" -ge 20 ] && [ "$ok" -le "$hi" ]'
check_eq "...the rest refused with 429" "$(j "$res" '.status["429"] // 0')" $((200 - ok))
check_eq "...each counted in modelgate_rate_limited_total" "$(( $(scm modelgate_rate_limited_total) - rl0 ))" $((200 - ok))
# One refusal looked at closely (the bucket is empty: a token comes back
# every 500 ms).
codes=
for i in $(seq 10); do
    code=$(sc_req "$MG_TMP/rl" "$(chat rps hi)")
    t_empty=$EPOCHREALTIME   # the bucket had less than one token at this refusal
    codes+="$code "
    [ "$code" = 429 ] && break
done
echo "# single requests: $codes"
ra=$(hdr "$MG_TMP/rl.h" retry-after)
check_eq "a refusal: 429 with an OpenAI body" "$code|$(oai_error "$MG_TMP/rl.b")" "429|ok"
check "...and Retry-After in whole seconds, 1 to 2 ('$ra')" eval '[[ "$ra" =~ ^[0-9]+$ ]] && [ "$ra" -ge 1 ] && [ "$ra" -le 2 ]'
check_eq "...its error code or type says rate limit ($(jq -c .error "$MG_TMP/rl.b" 2>/dev/null))" "$(jq -r '[.error.code, .error.type] | map(tostring) | join(" ")' "$MG_TMP/rl.b" 2>/dev/null | grep -ci 'rate')" 1
sleep 1.6
t1=$EPOCHREALTIME
res=$(load --conns 4 --requests 20 --path /v1/chat/completions --body "$(chat rps hi)")
t2=$EPOCHREALTIME
ok=$(j "$res" .ok)
lo=$(awk -v a="$t_empty" -v b="$t1" 'BEGIN { printf "%d", 2 * (b - a) - 2 }')
hi=$(awk -v a="$t_empty" -v b="$t2" 'BEGIN { printf "%d", 2 * (b - a) + 1 }')
check "the refill: 20 requests at once $(calc "$t1 - $t_empty") s after the bucket emptied: $ok granted ($lo to $hi at 2/s)" eval '[ "$ok" -ge "$lo" ] && [ "$ok" -le "$hi" ]'

# --- per API key -----------------------------------------------------------------

kload() { load --conns 2 --requests "$2" --path /v1/chat/completions --body "$(chat keyed hi)" -H "Authorization: Bearer $1"; }
t0=$EPOCHREALTIME
ra=$(kload sk-alpha-1 20); rb=$(kload sk-bravo-2 20); ra2=$(kload sk-alpha-1 20)
el=$(since "$t0")
echo "# key alpha: $ra"; echo "# key bravo: $rb"; echo "# key alpha again: $ra2"
check "key alpha: burst 5 granted of 20 at once ($(j "$ra" .ok), 5 to 6)" eval '[ "$(j "$ra" .ok)" -ge 5 ] && [ "$(j "$ra" .ok)" -le 6 ]'
check "key bravo right after: its own bucket, 5 granted too ($(j "$rb" .ok))" eval '[ "$(j "$rb" .ok)" -ge 5 ] && [ "$(j "$rb" .ok)" -le 6 ]'
hi=$(awk -v e="$el" 'BEGIN { printf "%d", 2 * e + 1 }')
check "key alpha again: still limited, only the refill (2/s over ${el}s) granted ($(j "$ra2" .ok) <= $hi)" eval '[ "$(j "$ra2" .ok)" -le "$hi" ]'
# Many keys (requests i get key k<i mod 50>): 50 buckets, 5 each.
res=$(load --conns 4 --requests 500 --path /v1/chat/completions --body "$(chat keyed hi)" --key-header Authorization --key-prefix 'Bearer sk-' --keys 50)
check "50 keys x 10 requests: each key's burst of 5 granted, about 250 in all ($(j "$res" .ok))" eval '[ "$(j "$res" .ok)" -ge 250 ] && [ "$(j "$res" .ok)" -le 300 ]'
res=$(load --conns 1 --requests 10 --path /v1/chat/completions --body "$(chat keyed hi)")
check_eq "requests without an API key count only against the route's buckets: 10 of 10 granted" "$(j "$res" .ok)" 10
check "the tokens are not logged" eval '! grep -q "sk-alpha-1\|sk-bravo-2" "$MG_TMP/sc.log"'
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$SC_ADMIN/state")
check "...nor shown by GET /state" eval '[ "$code" = 200 ] && ! sc_state | grep -q "sk-alpha-1"'

# --- tokensPerMinute: two clients racing ------------------------------------------

# 3000 tokens per minute, each request reserves max_tokens 100 and uses
# exactly 100; replies take 150 ms, so 2 x 16 requests are always in
# flight: a limit checked only when responses end would let them all in.
body=$(chat tpm race '"max_tokens":100')
t0=$EPOCHREALTIME
"$LOAD" --connect "127.0.0.1:$SC_PORT" --timeout-ms $((60000 * slow)) --conns 16 --duration-ms 2500 --path /v1/chat/completions --body "$body" -H 'Authorization: Bearer client-a' >"$MG_TMP/tpa.json" &
pa=$!
"$LOAD" --connect "127.0.0.1:$SC_PORT" --timeout-ms $((60000 * slow)) --conns 16 --duration-ms 2500 --path /v1/chat/completions --body "$body" -H 'Authorization: Bearer client-b' >"$MG_TMP/tpb.json" &
pb=$!
wait "$pa" "$pb"
el=$(since "$t0")
oka=$(jq -r .ok "$MG_TMP/tpa.json"); okb=$(jq -r .ok "$MG_TMP/tpb.json")
granted=$(( (oka + okb) * 100 ))
limit=$(awk -v e="$el" 'BEGIN { printf "%d", 3000 + 3000 * e / 60 }')
echo "# tokensPerMinute 3000: a got $oka, b got $okb in ${el}s; granted $granted tokens (limit $limit, +100 allowed)"
check "two racing clients: granted $granted tokens <= $limit (3000 + refill over ${el}s) + 100 (one reservation)" eval '[ "$granted" -le $((limit + 100)) ]'
check "...and the limit is not stricter than it says (granted >= 2900: $granted)" eval '[ "$granted" -ge 2900 ]'
check "...both clients were served ($oka, $okb) and refused ($(jq -r '.status["429"] // 0' "$MG_TMP/tpa.json"), $(jq -r '.status["429"] // 0' "$MG_TMP/tpb.json"))" \
    eval '[ "$oka" -ge 1 ] && [ "$okb" -ge 1 ] && [ "$(jq -r ".status[\"429\"] // 0" "$MG_TMP/tpa.json")" -ge 1 ] && [ "$(jq -r ".status[\"429\"] // 0" "$MG_TMP/tpb.json")" -ge 1 ]'
used=$(mval "$TPM" vllm:generation_tokens_total)
check_eq "modelsim generated exactly the tokens granted" "${used:-0}" "$granted"
code=$(sc_req "$MG_TMP/tpm" "$(chat tpm over '"max_tokens":5000')")
check_eq "a request reserving more than the whole limit: 429 (never grantable)" "$code|$(oai_error "$MG_TMP/tpm.b")" "429|ok"

# Reservation and settlement: without max_tokens a request reserves
# defaultMaxTokens (1000) and, when its 100-token reply ends, gets 900 back.
body=$(chat tpm2 settle)
res=$(load --conns 6 --requests 6 --path /v1/chat/completions --body "$body")
check_eq "defaultMaxTokens 1000 of 3000 per minute: 3 of 6 concurrent requests granted" "$(j "$res" '[.ok, .status["429"] // 0] | join("|")')" "3|3"
res=$(load --conns 6 --requests 6 --path /v1/chat/completions --body "$body")
check_eq "...after they ended with 100 tokens each, 3 x 900 came back: 2 of 6 granted (2700+ available)" "$(j "$res" '[.ok, .status["429"] // 0] | join("|")')" "2|4"

# Per key tokens: 1000 a minute each; 4 requests at once reserving 400.
body=$(chat tpmkey perkey '"max_tokens":400')
ra=$(load --conns 4 --requests 4 --path /v1/chat/completions --body "$body" -H 'Authorization: Bearer key-one')
rb=$(load --conns 4 --requests 4 --path /v1/chat/completions --body "$body" -H 'Authorization: Bearer key-two')
check_eq "perKey tokensPerMinute 1000, 4 x 400 at once per key: 2 granted and 2 refused for each key" \
    "$(j "$ra" '[.ok, .status["429"] // 0] | join("|")') $(j "$rb" '[.ok, .status["429"] // 0] | join("|")')" "2|2 2|2"

# --- 10x overload: maxConcurrent 4, maxPending 2 ------------------------------------

BB=$(chat busy load)
res=$(load --conns 4 --requests 40 --path /v1/chat/completions --body "$BB")
base=$(j "$res" .ok_p50_ms)
echo "# unloaded (4 connections): $res"
check_eq "unloaded: 40 of 40 served" "$(j "$res" .ok)" 40
scpid=$(pid_of sc)
hwm0=$(hwm_kb "$scpid")
sh0=$(scm modelgate_shed_total 'model="busy"')
res1=$(load --conns 60 --duration-ms 1500 --path /v1/chat/completions --body "$BB" --count-header retry-after)
hwm1=$(hwm_kb "$scpid")
load --conns 60 --duration-ms 3000 --path /v1/chat/completions --body "$BB" --count-header retry-after >"$MG_TMP/over.json" &
lpid=$!
# Meanwhile: how many requests modelsim is generating at once, 20 samples.
maxrun=0
for i in $(seq 20); do
    v=$(mval "$SLOW" vllm:num_requests_running); v=${v:-0}
    [ "$v" -gt "$maxrun" ] && maxrun=$v
    sleep 0.1
done
wait "$lpid"
res=$(cat "$MG_TMP/over.json")
hwm2=$(hwm_kb "$scpid")
echo "# 60 connections (10x), 1.5 s: $res1"
echo "# 60 connections (10x), 3 s: $res"
echo "# VmHWM: before $hwm0 KiB, after 1.5 s $hwm1 KiB, after 3 s more $hwm2 KiB"
ok=$(j "$res" .ok); ref=$(( $(j "$res" '(.status["503"] // 0) + (.status["429"] // 0)') ))
check_eq "10x overload: every request answered, none failed otherwise" "$(j "$res" '[.transport_errors, .unfinished, .done - .ok - (.status["503"] // 0) - (.status["429"] // 0)] | join("|")')" "0|0|0"
check "...some served ($ok), many refused ($ref)" eval '[ "$ok" -ge 20 ] && [ "$ref" -ge $((ok * 3)) ]'
check "...modelsim never ran more than maxConcurrent 4 at once (max of 20 samples: $maxrun)" eval '[ "$maxrun" -ge 1 ] && [ "$maxrun" -le 4 ]'
cap=$(awk -v ms="$(j "$res" .ms)" 'BEGIN { printf "%d", 4 * ms / 100 + 4 }')
check "...at most 4 at once reach the backend: served $ok in $(j "$res" .ms) ms at 100 ms each <= $cap" eval '[ "$ok" -le "$cap" ]'
p99=$(j "$res" .err_p99_ms)
check "...refusals are fast: p99 $p99 ms < $((20 * slow)) ms" eval '[ "$ref" -gt 0 ] && flt "$p99" $((20 * slow))'
check_eq "...every refusal carries Retry-After" "$(j "$res" '.headers["retry-after"]["-"] // 0')" "$ok"
served=$(j "$res" .ok_p50_ms)
check "...served requests keep their latency: p50 $served ms vs $base ms unloaded (<= +50 ms pendingTimeout + 30)" flt "$served" "$(calc "$base + 80 * $slow")"
# (ASan keeps freed memory in quarantine: looser bounds there.)
b1=16384 b2=2048
[ "${MG_SANITIZE:-0}" = 1 ] && b1=65536 b2=16384
check "...sidecar memory bounded: VmHWM +$((hwm1 - hwm0)) KiB in 1.5 s (< $((b1 / 1024)) MiB)" [ $((hwm1 - hwm0)) -lt $b1 ]
check "...and flat while the overload goes on: +$((hwm2 - hwm1)) KiB in 3 s more (< $((b2 / 1024)) MiB)" [ $((hwm2 - hwm1)) -lt $b2 ]
ref1=$(j "$res1" '(.status["503"] // 0) + (.status["429"] // 0)')
check_eq "...every refusal of both runs counted in modelgate_shed_total{model=\"busy\"} (max_concurrent, pending_timeout)" \
    "$(( $(scm modelgate_shed_total 'model="busy"') - sh0 ))" "$((ref1 + ref))"
res=$(load --conns 4 --requests 40 --path /v1/chat/completions --body "$BB")
check_eq "after the overload: 40 of 40 served again" "$(j "$res" .ok)" 40

# overloadStatus 429, no waiting room: 4 at once, 1 served, 3 refused at once.
res=$(load --conns 4 --requests 4 --path /v1/chat/completions --body "$(chat busy429 load)" --count-header retry-after)
check_eq "maxConcurrent 1, maxPending 0, overloadStatus 429: 4 at once: 1 served, 3 refused with 429 and Retry-After" \
    "$(j "$res" '[.ok, .status["429"] // 0, .headers["retry-after"]["-"] // 0] | join("|")')" "1|3|1"
check "...the refusals did not wait for the served one (p99 $(j "$res" .err_p99_ms) ms < 50)" flt "$(j "$res" .err_p99_ms)" $((50 * slow))

check "the sidecar is still running" sc_alive sc
sc_clean_exit sc
finish
