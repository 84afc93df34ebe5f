#!/usr/bin/env bash
# modelsim seen from outside with curl: every endpoint, the OpenAI/vLLM JSON
# shapes (whole and streamed), errors, every knob (timing, queueing,
# readiness, injected errors and failures), determinism, live changes
# through /admin/config, several workers, and the Prometheus exposition
# checked by promtool. Only 127.0.0.1; every process is ours, ended by PID.
. "$MG_TOP/tests/integration/lib.sh"

sim=$MG_BIN/modelsim
[ -x "$sim" ] || bail "modelsim not built"
command -v node >/dev/null || bail "node not found (mk/deps.sh node installs it)"
JS=$MG_TOP/tests/integration/modelsim-json.mjs
slow=1
[ "${MG_SANITIZE:-0}" = 1 ] && slow=2   # upper time bounds stretch under ASan

# start_sim NAME ARGS...: modelsim on a free port (port 0 + --port-file);
# sets $sim_port. Not in a subshell, so start_bg records the PID here.
start_sim() {
    local name=$1 i; shift
    sim_port=
    start_bg "$name" "$sim" --listen 127.0.0.1:0 --port-file "$MG_TMP/$name.port" "$@"
    for i in $(seq 200); do
        [ -s "$MG_TMP/$name.port" ] && break
        sleep 0.025
    done
    sim_port=$(cat "$MG_TMP/$name.port" 2>/dev/null) || return 1
    wait_port "$sim_port" 5
}

jget() { node "$JS" get "$1"; }
sse() { node "$JS" sse; }
# chat MODEL PROMPT [EXTRA_JSON_MEMBERS]: a chat request body.
chat() { printf '{"model":"%s","messages":[{"role":"user","content":"%s"}]%s}' "$1" "$2" "${3:+,$3}"; }
comp() { printf '{"model":"%s","prompt":"%s"%s}' "$1" "$2" "${3:+,$3}"; }
# post PORT PATH BODY [CURL_ARGS...]: prints the reply body.
post() { local p=$1 path=$2 body=$3; shift 3; curl -s --max-time 10 "$@" "http://127.0.0.1:$p$path" -H 'Content-Type: application/json' -d "$body"; }
code() { local p=$1 path=$2 body=$3; shift 3; curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "http://127.0.0.1:$p$path" -H 'Content-Type: application/json' -d "$body"; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | grep -F "$2" | grep -v '^#' | awk '{print $NF}' | head -n 1; }
# fge A B: A >= B (floats)
fge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
flt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# --- A: shapes, errors, determinism, admin -------------------------------------

start_sim a --model m1 --model m2 --version v7 --seed 7 --tokens 8 || bail "modelsim did not start"
A=$sim_port
U=http://127.0.0.1:$A

check_eq "GET /health is 200" "$(curl -s -o /dev/null -w '%{http_code}' "$U/health")" 200
check_eq "GET /health/ready is 200 without --startup-ms" "$(curl -s -o /dev/null -w '%{http_code}' "$U/health/ready")" 200
models=$(curl -s "$U/v1/models")
check_eq "GET /v1/models lists every --model" "$(jget 'j.object + ":" + j.data.map(m => m.id + "/" + m.object).join(",")' <<<"$models")" "list:m1/model,m2/model"
check_eq "GET /version" "$(curl -s "$U/version" | jget 'j.version')" v7

hdrs=$(curl -s -D - -o "$MG_TMP/chat.json" "$U/v1/chat/completions" -H 'Content-Type: application/json' -d "$(chat m1 'Tell me a story')")
check "chat reply carries x-modelsim-version" grep -qi '^x-modelsim-version: v7' <<<"$hdrs"
check "chat reply is application/json" grep -qi '^content-type: application/json' <<<"$hdrs"
check_eq "chat reply has OpenAI's shape" "$(jget '[j.id.startsWith("chatcmpl-"), j.object, typeof j.created, j.model, j.system_fingerprint, j.choices.length, j.choices[0].index, j.choices[0].message.role, j.choices[0].logprobs, j.choices[0].finish_reason].join("|")' <"$MG_TMP/chat.json")" "true|chat.completion|number|m1|v7|1|0|assistant||stop"
check_eq "chat usage counts the emitted tokens" "$(jget '[j.usage.completion_tokens, j.usage.total_tokens === j.usage.prompt_tokens + j.usage.completion_tokens, j.usage.prompt_tokens > 0].join("|")' <"$MG_TMP/chat.json")" "8|true|true"
content=$(jget 'j.choices[0].message.content' <"$MG_TMP/chat.json")
check_eq "the content has one word per token" "$(wc -w <<<"$content" | tr -d ' ')" 8

# Determinism: the same seed and prompt give the same text, across requests,
# streaming or not, and across processes; another prompt or seed does not.
again=$(post "$A" /v1/chat/completions "$(chat m1 'Tell me a story')" | jget 'j.choices[0].message.content')
check_eq "same seed and prompt give the same content" "$again" "$content"
other=$(post "$A" /v1/chat/completions "$(chat m1 'Tell me a joke')" | jget 'j.choices[0].message.content')
check "another prompt gives other content" eval '[ -n "$other" ] && [ "$other" != "$content" ]'

s=$(post "$A" /v1/chat/completions "$(chat m1 'Tell me a story' '"stream":true,"stream_options":{"include_usage":true}')" -N | sse)
check_eq "chat stream: shape" "$(jget '[j.invalid, j.done_last, j.role_first, j.objects.join(","), j.ids.length, j.ids[0].startsWith("chatcmpl-")].join("|")' <<<"$s")" "0|true|true|chat.completion.chunk|1|true"
check_eq "chat stream: one chunk per token, finish_reason stop" "$(jget '[j.token_chunks, j.finish].join("|")' <<<"$s")" "8|stop"
check_eq "chat stream: final usage chunk" "$(jget '[j.usage.completion_tokens, j.usage.total_tokens === j.usage.prompt_tokens + 8].join("|")' <<<"$s")" "8|true"
check_eq "chat stream: the same text as the whole reply" "$(jget 'j.content' <<<"$s")" "$content"
s=$(post "$A" /v1/chat/completions "$(chat m1 'Tell me a story' '"stream":true')" -N | sse)
check_eq "chat stream without include_usage has no usage" "$(jget 'j.usage' <<<"$s")" null
raw=$(post "$A" /v1/chat/completions "$(chat m1 'x' '"stream":true')" -N -D -)
check "chat stream is text/event-stream" grep -qi '^content-type: text/event-stream' <<<"$raw"

r=$(post "$A" /v1/chat/completions "$(chat m2 'Tell me a story' '"max_tokens":3')")
check_eq "max_tokens caps the reply: finish_reason length" "$(jget '[j.model, j.usage.completion_tokens, j.choices[0].finish_reason].join("|")' <<<"$r")" "m2|3|length"
r=$(post "$A" /v1/chat/completions "$(chat m1 'Tell me a story' '"max_completion_tokens":5')")
check_eq "max_completion_tokens caps the reply" "$(jget '[j.usage.completion_tokens, j.choices[0].finish_reason].join("|")' <<<"$r")" "5|length"
r=$(post "$A" /v1/chat/completions "$(chat m1 'Tell me a story' '"max_tokens":50')")
check_eq "max_tokens above --tokens: finish_reason stop" "$(jget '[j.usage.completion_tokens, j.choices[0].finish_reason].join("|")' <<<"$r")" "8|stop"

r=$(post "$A" /v1/completions "$(comp m1 'Once upon a time' '"max_tokens":4')")
check_eq "completion reply has OpenAI's shape" "$(jget '[j.id.startsWith("cmpl-"), j.object, j.model, j.system_fingerprint, j.choices[0].index, j.choices[0].finish_reason, j.usage.completion_tokens, j.choices[0].text.split(" ").length].join("|")' <<<"$r")" "true|text_completion|m1|v7|0|length|4|4"
s=$(post "$A" /v1/completions "$(comp m1 'Once upon a time' '"stream":true,"max_tokens":4,"stream_options":{"include_usage":true}')" -N | sse)
check_eq "completion stream: shape, tokens, usage, [DONE]" "$(jget '[j.invalid, j.objects.join(","), j.token_chunks, j.finish, j.usage.completion_tokens, j.done_last].join("|")' <<<"$s")" "0|text_completion|4|length|4|true"
check_eq "completion stream: the same text as the whole reply" "$(jget 'j.content' <<<"$s")" "$(jget 'j.choices[0].text' <<<"$r")"
r=$(post "$A" /v1/completions '{"model":"m1","prompt":[1,2,3,4,5],"max_tokens":2}')
check_eq "a prompt of token ids counts them" "$(jget 'j.usage.prompt_tokens' <<<"$r")" 5

# --- errors ------------------------------------------------------------------

e=$(post "$A" /v1/chat/completions '{"model":"m1","messages":')
check_eq "invalid JSON is 400 BadRequestError" "$(code "$A" /v1/chat/completions '{bad')|$(jget '[j.error.type, j.error.code, typeof j.error.message, j.error.param].join("|")' <<<"$e")" "400|BadRequestError|400|string|"
e=$(post "$A" /v1/chat/completions '{"model":"m1"}')
check_eq "missing messages is 400 naming the field" "$(code "$A" /v1/chat/completions '{"model":"m1"}')|$(jget 'j.error.param' <<<"$e")" "400|messages"
e=$(post "$A" /v1/completions '{"model":"m1"}')
check_eq "missing prompt is 400 naming the field" "$(code "$A" /v1/completions '{"model":"m1"}')|$(jget 'j.error.param' <<<"$e")" "400|prompt"
e=$(post "$A" /v1/chat/completions "$(chat nosuch hi)")
check_eq "unknown model is 404 model_not_found" "$(code "$A" /v1/chat/completions "$(chat nosuch hi)")|$(jget '[j.error.code, j.error.type, j.error.message].join("|")' <<<"$e")" '404|model_not_found|NotFoundError|The model `nosuch` does not exist.'
check_eq "max_tokens 0 is 400" "$(code "$A" /v1/chat/completions "$(chat m1 hi '"max_tokens":0')")" 400
check_eq "stream_options without stream is 400" "$(code "$A" /v1/chat/completions "$(chat m1 hi '"stream_options":{"include_usage":true}')")" 400
check_eq "GET on a completion route is 405" "$(curl -s -o /dev/null -w '%{http_code}' "$U/v1/chat/completions")" 405
check "405 says which methods are allowed" grep -qi '^allow: POST' <<<"$(curl -s -D - -o /dev/null "$U/v1/completions")"
check_eq "POST /v1/models is 405" "$(code "$A" /v1/models '{}')" 405
e=$(curl -s "$U/v2/nothing")
check_eq "unknown path is 404 with an OpenAI error" "$(curl -s -o /dev/null -w '%{http_code}' "$U/v2/nothing")|$(jget 'j.error.type' <<<"$e")" "404|NotFoundError"
head -c 5000000 /dev/zero | tr '\0' 'a' >"$MG_TMP/big"
check_eq "a body over 4 MiB is 413" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$U/v1/chat/completions" -H 'Content-Type: application/json' --data-binary @"$MG_TMP/big")" 413
long=$(head -c 20000 /dev/zero | tr '\0' 'w')
e=$(post "$A" /v1/chat/completions "$(chat m1 "$long" '"max_tokens":100')")
check "a prompt past the context is vLLM's 400" grep -q "This model's maximum context length is 4096 tokens. However, you requested" <<<"$(jget 'j.error.message' <<<"$e")"

# X-Return-Error forces an error for one request.
for st in 429 500 503; do
    e=$(post "$A" /v1/chat/completions "$(chat m1 hi)" -H "X-Return-Error: $st" -w '|%{http_code}')
    check_eq "X-Return-Error: $st" "${e##*|}|$(jget 'j.error.code' <<<"${e%|*}")" "$st|$st"
done
e=$(post "$A" /v1/chat/completions "$(chat m1 hi)" -H "X-Return-Error: 429" -D -)
check "429 carries Retry-After" grep -qi '^retry-after:' <<<"$e"
e=$(post "$A" /v1/chat/completions "$(chat m1 hi '"max_tokens":10')" -H "X-Return-Error: 400")
check_eq "X-Return-Error: 400 is vLLM's context-length error" "$(jget '[j.error.type, j.error.code, /^This model.s maximum context length is 4096 tokens\. However, you requested 4097 tokens \(4087 in the messages, 10 in the completion\)/.test(j.error.message)].join("|")' <<<"$e")" "BadRequestError|400|true"
check_eq "a malformed X-Return-Error is 400" "$(code "$A" /v1/chat/completions "$(chat m1 hi)" -H 'X-Return-Error: teapot')" 400

# --- /admin/config -----------------------------------------------------------

cfg=$(curl -s "$U/admin/config")
check_eq "GET /admin/config shows the knobs" "$(jget '[j.tokens, j.version, j.models.join(","), j.seed, j.fail_mode, j.workers].join("|")' <<<"$cfg")" "8|v7|m1,m2|7|none|1"
check_eq "POST /admin/config changes tokens" "$(code "$A" /admin/config '{"tokens":3,"version":"v8"}')" 200
hdrs=$(curl -s -D - -o "$MG_TMP/r.json" "$U/v1/chat/completions" -d "$(chat m1 'Tell me a story')")
check_eq "the new token count applies to new requests" "$(jget 'j.usage.completion_tokens + "|" + j.system_fingerprint' <"$MG_TMP/r.json")" "3|v8"
check "the new version shows in x-modelsim-version" grep -qi '^x-modelsim-version: v8' <<<"$hdrs"
e=$(post "$A" /admin/config '{"tokens":"many"}')
check_eq "a bad value is 400 saying what was wrong" "$(code "$A" /admin/config '{"tokens":"many"}')|$(jget 'j.error.message' <<<"$e")" "400|tokens: expected a non-negative integer"
e=$(post "$A" /admin/config '{"tokens":4,"jitter_pct":101}')
check_eq "an out-of-range value is refused" "$(jget 'j.error.message' <<<"$e")" "jitter_pct: 101 is out of range [0, 100]"
check_eq "a refused change changes nothing" "$(curl -s "$U/admin/config" | jget 'j.tokens')" 3
check_eq "an unknown knob is 400" "$(post "$A" /admin/config '{"tokenz":4}' | jget 'j.error.message')" 'unknown knob "tokenz"'
check_eq "workers cannot change while running" "$(post "$A" /admin/config '{"workers":4}' | jget 'j.error.message')" "workers cannot be changed while running"
check_eq "fail_mode is validated" "$(code "$A" /admin/config '{"fail_mode":"explode"}')" 400
check_eq "error_status is validated" "$(code "$A" /admin/config '{"error_status":418}')" 400
check_eq "invalid JSON to /admin/config is 400" "$(code "$A" /admin/config '{')" 400
post "$A" /admin/config '{"models":["m3"]}' >/dev/null
check_eq "models can change: the old one is gone" "$(code "$A" /v1/chat/completions "$(chat m1 hi)")" 404
check_eq "models can change: the new one answers" "$(code "$A" /v1/chat/completions "$(chat m3 hi)")" 200
post "$A" /admin/config '{"error_rate":1,"error_status":503}' >/dev/null
check_eq "error_rate 1 answers every request with error_status" "$(code "$A" /v1/chat/completions "$(chat m3 hi)")$(code "$A" /v1/completions "$(comp m3 hi)")" 503503
post "$A" /admin/config '{"error_rate":0.5,"error_status":429}' >/dev/null
n429=0
for i in $(seq 40); do [ "$(code "$A" /v1/chat/completions "$(chat m3 hi)")" = 429 ] && n429=$((n429 + 1)); done
check "error_rate 0.5 fails some requests, not all ($n429 of 40)" eval '[ "$n429" -ge 8 ] && [ "$n429" -le 32 ]'
post "$A" /admin/config '{"error_rate":0,"models":["m1","m2"],"tokens":8,"version":"v7"}' >/dev/null
check_eq "error_rate 0 again: success" "$(code "$A" /v1/chat/completions "$(chat m1 hi)")" 200

# --- B: determinism across processes, seed --------------------------------------

start_sim b --model m1 --seed 7 --tokens 8 || bail "modelsim b did not start"
B=$sim_port
check_eq "another process with the same seed gives the same content" "$(post "$B" /v1/chat/completions "$(chat m1 'Tell me a story')" | jget 'j.choices[0].message.content')" "$content"
post "$B" /admin/config '{"seed":8}' >/dev/null
check "another seed gives other content" [ "$(post "$B" /v1/chat/completions "$(chat m1 'Tell me a story')" | jget 'j.choices[0].message.content')" != "$content" ]

# Backpressure: a client that sends a request for a long stream and never
# reads must not make the server queue the whole stream in memory.
post "$B" /admin/config '{"tokens":300000,"max_model_len":1000000}' >/dev/null
bpid=$(pid_of b)
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$bpid/status")
(
    exec 3<>"/dev/tcp/127.0.0.1/$B"
    body=$(chat m1 'never read' '"stream":true')
    printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body" >&3
    sleep 2
) &
reader=$!
sleep 1.5
rss1=$(awk '/^VmRSS/ {print $2}' "/proc/$bpid/status")
check_eq "a stream to a client that does not read stays running" "$(metric "$B" 'vllm:num_requests_running{model_name="m1"}')" 1
check "...and the server holds little output for it (RSS +$((rss1 - rss0)) KiB for a 70 MB stream)" [ $((rss1 - rss0)) -lt 12000 ]
wait "$reader"
for i in $(seq 50); do [ "$(metric "$B" 'vllm:num_requests_running{model_name="m1"}')" = 0 ] && break; sleep 0.1; done
check_eq "the client leaving ends the stream" "$(metric "$B" 'vllm:num_requests_running{model_name="m1"}')" 0
check_eq "...counted as finished_reason abort" "$(metric "$B" 'vllm:request_success_total{model_name="m1",finished_reason="abort"}')" 1

# --- T: timing -----------------------------------------------------------------

start_sim t --ttft-ms 300 --itl-ms 50 --tokens 10 --seed 1 || bail "modelsim t did not start"
T=$sim_port
tt=$(curl -s -o /dev/null -w '%{time_starttransfer} %{time_total}' --max-time 10 "http://127.0.0.1:$T/v1/chat/completions" -d "$(chat modelsim hi '"stream":true')" -N)
check "stream: first byte no sooner than --ttft-ms (${tt% *} s)" fge "${tt% *}" 0.300
check "stream: TTFT not far above it" flt "${tt% *}" "$(awk -v s=$slow 'BEGIN{print 0.3 + 0.25 * s}')"
check "stream: total about TTFT + 9 ITL (${tt#* } s)" eval 'fge "${tt#* }" 0.75 && flt "${tt#* }" "$(awk -v s=$slow "BEGIN{print 0.75 + 0.4 * s}")"'
# Arrival time of every data line, from bash's clock (no process per line).
gaps=$(curl -sN --max-time 10 "http://127.0.0.1:$T/v1/chat/completions" -d "$(chat modelsim hi '"stream":true')" |
    while IFS= read -r line; do [[ $line == data:\ \{* ]] && echo "$EPOCHREALTIME"; done |
    awk 'NR > 2 { g = ($1 - p) * 1000; n++; s += g; if (g > mx) mx = g; if (mn == "" || g < mn) mn = g } { p = $1 } END { printf "%d %.1f %.1f %.1f", n, s / n, mn, mx }')
read -r ng gmean gmin gmax <<<"$gaps"
check_eq "stream: 9 gaps between 10 tokens" "$ng" 9
check "stream: mean inter-token gap near --itl-ms 50 ($gmean ms, min $gmin, max $gmax)" eval 'fge "$gmean" 45 && flt "$gmean" $((50 + 30 * slow))'
tt=$(curl -s -o /dev/null -w '%{time_total}' --max-time 10 "http://127.0.0.1:$T/v1/chat/completions" -d "$(chat modelsim hi)")
check "whole reply arrives after TTFT + 9 ITL ($tt s)" fge "$tt" 0.75
ttft_t=$(curl -s "http://127.0.0.1:$T/metrics")
check "TTFT of 300 ms lands above the 0.25 s bucket" [ "$(grep -F 'vllm:time_to_first_token_seconds_bucket{model_name="modelsim",le="0.25"}' <<<"$ttft_t" | awk '{print $2}')" = 0 ]
check "ITL of 50 ms lands in the 0.05-0.075 s buckets" [ "$(grep -F 'vllm:inter_token_latency_seconds_bucket{model_name="modelsim",le="0.075"}' <<<"$ttft_t" | awk '{print $2}')" -ge 9 ]
post "$T" /admin/config '{"jitter_pct":50,"ttft_ms":200,"itl_ms":40}' >/dev/null
ttfts=
for p in a b c d; do
    ttfts+="$(curl -s -o /dev/null -w '%{time_starttransfer}' --max-time 10 "http://127.0.0.1:$T/v1/chat/completions" -d "$(chat modelsim "$p" '"stream":true,"max_tokens":1')" -N) "
done
check "with jitter TTFT is still no less than configured ($ttfts)" eval 'for x in $ttfts; do fge "$x" 0.200 || exit 1; done'
check "jitter makes TTFTs differ across prompts ($ttfts)" eval 'echo $ttfts | tr " " "\n" | awk "{ if (\$1 > mx) mx = \$1; if (mn == \"\" || \$1 < mn) mn = \$1 } END { exit !(mx - mn >= 0.01) }"'
gaps=$(curl -sN --max-time 10 "http://127.0.0.1:$T/v1/chat/completions" -d "$(chat modelsim hi '"stream":true,"max_tokens":12')" |
    while IFS= read -r line; do [[ $line == data:\ \{* ]] && echo "$EPOCHREALTIME"; done |
    awk 'NR > 2 { g = ($1 - p) * 1000; n++; s += g; if (g > mx) mx = g; if (mn == "" || g < mn) mn = g } { p = $1 } END { printf "%d %.1f %.1f %.1f", n, s / n, mn, mx }')
read -r ng gmean gmin gmax <<<"$gaps"
check "with jitter 50% gaps spread around --itl-ms 40 (mean $gmean, min $gmin, max $gmax)" eval 'fge "$gmean" 25 && flt "$gmean" $((55 + 30 * slow)) && fge "$(awk -v a=$gmax -v b=$gmin "BEGIN{print a - b}")" 8'

# --- S: start-up readiness -------------------------------------------------------

t0=$(date +%s%N)
start_sim s --startup-ms 1500 || bail "modelsim s did not start"
S=$sim_port
check_eq "during start-up /health/ready is 503" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S/health/ready")" 503
check_eq "during start-up /health is 200" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S/health")" 200
check_eq "during start-up completions are 503" "$(code "$S" /v1/chat/completions "$(chat modelsim hi)")" 503
for i in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S/health/ready")" = 200 ] && break
    sleep 0.05
done
t1=$(date +%s%N)
check_eq "after --startup-ms /health/ready is 200" "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S/health/ready")" 200
check "...and not before ($(( (t1 - t0) / 1000000 )) ms)" [ $(( (t1 - t0) / 1000000 )) -ge 1450 ]
check_eq "after start-up completions answer" "$(code "$S" /v1/chat/completions "$(chat modelsim hi)")" 200

# --- Q: --max-running queueing ----------------------------------------------------

start_sim q --max-running 2 --ttft-ms 1000 --itl-ms 10 --tokens 2 || bail "modelsim q did not start"
Q=$sim_port
# One curl, five transfers started together, so the times share an origin.
qurl=http://127.0.0.1:$Q/v1/chat/completions
curl -s --parallel --parallel-immediate --parallel-max 5 --max-time 15 -w '%{time_total}\n' \
    -d "$(chat modelsim q)" -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
    "$qurl" "$qurl" "$qurl" "$qurl" "$qurl" >"$MG_TMP/q.times" 2>/dev/null &
qpid=$!
# One scrape for both gauges, once all five have arrived.
for i in $(seq 40); do
    sleep 0.05
    qm=$(curl -s --max-time 5 "http://127.0.0.1:$Q/metrics")
    [ "$(grep -F 'vllm:num_requests_waiting{model_name="modelsim"}' <<<"$qm" | awk '{print $2}')" = 3 ] && break
done
check_eq "max-running 2: two requests run" "$(grep -F 'vllm:num_requests_running{model_name="modelsim"}' <<<"$qm" | awk '{print $2}')" 2
check_eq "max-running 2: three wait, visible in num_requests_waiting" "$(grep -F 'vllm:num_requests_waiting{model_name="modelsim"}' <<<"$qm" | awk '{print $2}')" 3
wait "$qpid"
times=$(sort -n "$MG_TMP/q.times" | tr '\n' ' ')
read -r q1 q2 q3 q4 q5 <<<"$times"
check "the first two get TTFT alone ($q1 $q2)" eval 'fge "$q1" 1.0 && flt "$q2" 1.6'
check "waiting adds to the time to first token ($q3 $q4 $q5)" eval 'fge "$q3" 2.0 && fge "$q5" 3.0'
check_eq "after the queue drains nothing runs or waits" "$(metric "$Q" 'vllm:num_requests_running{model_name="modelsim"}')|$(metric "$Q" 'vllm:num_requests_waiting{model_name="modelsim"}')" "0|0"
check_eq "request_success counts all five" "$(metric "$Q" 'vllm:request_success_total{model_name="modelsim",finished_reason="stop"}')" 5
post "$Q" /admin/config '{"max_running":0}' >/dev/null
check_eq "max_running 0 via /admin/config: unlimited" "$(code "$Q" /v1/chat/completions "$(chat modelsim hi)")" 200

# --- F: failure modes -------------------------------------------------------------

start_sim f --tokens 8 --fail-mode cut --fail-after 3 || bail "modelsim f did not start"
F=$sim_port
curl -sN --max-time 5 "http://127.0.0.1:$F/v1/chat/completions" -d "$(chat modelsim hi '"stream":true')" >"$MG_TMP/cut.txt"
rc=$?
s=$(sse <"$MG_TMP/cut.txt")
check "cut: the connection is closed mid-stream (curl exit $rc)" eval '[ "$rc" = 18 ] || [ "$rc" = 56 ]'
check_eq "cut: exactly --fail-after tokens arrived, no [DONE]" "$(jget '[j.token_chunks, j.done].join("|")' <<<"$s")" "3|false"
curl -s --max-time 5 "http://127.0.0.1:$F/v1/chat/completions" -d "$(chat modelsim hi)" >/dev/null
check_eq "cut: a whole reply gets no answer at all (curl exit 52)" "$?" 52
post "$F" /admin/config '{"fail_mode":"stall","fail_after":2}' >/dev/null
t0=$(date +%s%N)
curl -sN --max-time 1.5 "http://127.0.0.1:$F/v1/chat/completions" -d "$(chat modelsim hi '"stream":true')" >"$MG_TMP/stall.txt"
rc=$?
s=$(sse <"$MG_TMP/stall.txt")
check_eq "stall: the connection stays open until the client gives up (curl exit 28)" "$rc" 28
check_eq "stall: --fail-after tokens arrived, then nothing" "$(jget '[j.token_chunks, j.done].join("|")' <<<"$s")" "2|false"
post "$F" /admin/config '{"fail_mode":"malformed","fail_after":4}' >/dev/null
s=$(post "$F" /v1/chat/completions "$(chat modelsim hi '"stream":true')" -N | sse)
check_eq "malformed: one data line is invalid JSON, the stream goes on to [DONE]" "$(jget '[j.invalid, j.token_chunks, j.done_last].join("|")' <<<"$s")" "1|8|true"
r=$(post "$F" /v1/chat/completions "$(chat modelsim hi)" -w '|%{http_code}')
check_eq "malformed: a whole reply is 200 with invalid JSON" "${r##*|}|$(jget 'j' <<<"${r%|*}")" "200|INVALID-JSON"
post "$F" /admin/config '{"fail_mode":"cut","fail_after":0,"fail_rate":0.5,"seed":3}' >/dev/null
ncut=0
for i in $(seq 30); do curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$F/v1/chat/completions" -d "$(chat modelsim hi)" || ncut=$((ncut + 1)); done
check "fail_rate 0.5 fails some requests, not all ($ncut of 30)" eval '[ "$ncut" -ge 5 ] && [ "$ncut" -le 25 ]'
post "$F" /admin/config '{"fail_mode":"none"}' >/dev/null
s=$(post "$F" /v1/chat/completions "$(chat modelsim hi '"stream":true')" -N | sse)
check_eq "fail_mode none: streams complete again" "$(jget '[j.token_chunks, j.done_last].join("|")' <<<"$s")" "8|true"

# --- W: several workers ----------------------------------------------------------

start_sim w --workers 2 --tokens 4 || bail "modelsim w did not start"
W=$sim_port
urls=()
for i in $(seq 24); do urls+=("http://127.0.0.1:$W/v1/chat/completions"); done
out=$(curl -s -D - -o /dev/null --max-time 20 -H 'Connection: close' -H 'Content-Type: application/json' -d "$(chat modelsim hi)" "${urls[@]}")
check_eq "workers 2: all 24 requests answered 200" "$(grep -c '^HTTP/1.1 200' <<<"$out")" 24
check_eq "workers 2: both workers served (x-modelsim-worker)" "$(grep -i '^x-modelsim-worker' <<<"$out" | tr -d '\r' | awk '{print $2}' | sort -u | tr '\n' ' ')" "0 1 "
check_eq "workers 2: metrics merge both workers' counts" "$(metric "$W" 'vllm:request_success_total{model_name="modelsim",finished_reason="stop"}')" 24
post "$W" /admin/config '{"tokens":2}' >/dev/null
out=$(curl -s --max-time 20 -H 'Connection: close' -H 'Content-Type: application/json' -d "$(chat modelsim hi)" "${urls[@]}" | grep -o '"completion_tokens":[0-9]*' | sort | uniq -c | awk '{print $1 " " $2}')
check_eq "workers 2: a config change reaches every worker" "$out" '24 "completion_tokens":2'

# --- metrics -----------------------------------------------------------------------

curl -s "$U/metrics" >"$MG_TMP/metrics.txt"
for m in 'vllm:num_requests_running{model_name="m1"}' 'vllm:num_requests_waiting{model_name="m1"}' \
         'vllm:kv_cache_usage_perc{model_name="m1"}' 'vllm:prompt_tokens_total{model_name="m1"}' \
         'vllm:generation_tokens_total{model_name="m1"}' \
         'vllm:request_success_total{model_name="m1",finished_reason="stop"}' \
         'vllm:request_success_total{model_name="m1",finished_reason="length"}' \
         'vllm:time_to_first_token_seconds_bucket{model_name="m1",le="0.001"}' \
         'vllm:time_to_first_token_seconds_bucket{model_name="m1",le="2560"}' \
         'vllm:inter_token_latency_seconds_bucket{model_name="m1",le="80"}' \
         'vllm:e2e_request_latency_seconds_bucket{model_name="m1",le="7680"}' \
         'vllm:e2e_request_latency_seconds_count{model_name="m1"}'; do
    check "/metrics has $m" grep -qF "$m " "$MG_TMP/metrics.txt"
done
check "request_success length counted" [ "$(metric "$A" 'vllm:request_success_total{model_name="m1",finished_reason="length"}')" -ge 3 ]
check "generation tokens counted" [ "$(metric "$A" 'vllm:generation_tokens_total{model_name="m1"}')" -ge 40 ]
check "TTFT observations were made" [ "$(metric "$A" 'vllm:time_to_first_token_seconds_count{model_name="m1"}')" -ge 5 ]
if command -v promtool >/dev/null; then
    lint=$(promtool check metrics <"$MG_TMP/metrics.txt" 2>&1)
    colons=$(grep -c "metric names should not contain ':'" <<<"$lint")
    rest=$(grep -v "metric names should not contain ':'" <<<"$lint" | grep -v '^$')
    check_eq "promtool: nothing wrong but the colons in vLLM's names" "$rest" ""
    check_eq "promtool: one colon complaint per vLLM family" "$colons" 9
else
    skip "promtool check metrics" "promtool not installed (mk/deps.sh test installs prometheus)"
fi

# --- many streams --------------------------------------------------------------------

start_sim m --itl-ms 200 --tokens 1000 || bail "modelsim m did not start"
M=$sim_port
res=$("$MG_TOOLS/ms-streams" --connect "127.0.0.1:$M" --streams 300 --hold-ms 500 --timeout-ms 20000 --pid "$(pid_of m)")
check "300 concurrent streams all open and flowing ($res)" [ "$?" = 0 ]
check_eq "ms-streams saw all 300 streams" "$(jget '[j.first_data, j.closed_early].join("|")' <<<"$res")" "300|0"
for i in $(seq 50); do [ "$(metric "$M" 'vllm:num_requests_running{model_name="modelsim"}')" = 0 ] && break; sleep 0.1; done
check_eq "their clients leaving ends all 300" "$(metric "$M" 'vllm:num_requests_running{model_name="modelsim"}')|$(metric "$M" 'vllm:request_success_total{model_name="modelsim",finished_reason="abort"}')" "0|300"

# --- shutdown ------------------------------------------------------------------------

# Every instance, whatever it went through, ends cleanly on SIGTERM: exit 0
# and (in the sanitizer build) no leak or error report.
for name in a b t s q f w m; do
    pid=$(pid_of "$name")
    kill -TERM "$pid"
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid"
    check_eq "SIGTERM ends modelsim $name cleanly" "$?" 0
    check "modelsim $name logged no error or sanitizer report" eval '! grep -q "\"level\":\"error\"\|Sanitizer\|runtime error" "$MG_TMP/$name.log"'
done

finish
