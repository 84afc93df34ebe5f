#!/usr/bin/env bash
# modelgate-sidecar streaming pass-through and upstream pooling, against
# modelsim: chunks leave as they arrive (arrival times measured at the
# client, compared with modelsim's --ttft-ms/--itl-ms), time to first token
# through the sidecar close to direct, the same content streamed or whole,
# chunked framing to the client, token and latency metrics, upstream
# keep-alive reuse (the sidecar's counters and the sockets seen by ss), a
# client that stops reading (backpressure: the sidecar does not buffer the
# stream) and a client that leaves (the upstream request is cancelled).
# Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-lib.bash"

start_sim st --model m --version v1 --ttft-ms 200 --itl-ms 100 --tokens 10 --seed 1 || bail "modelsim st did not start"
ST=$sim_port
start_sim fast --model f --version v1 --tokens 4 --seed 1 || bail "modelsim fast did not start"
FAST=$sim_port
start_sim big --model big --version v1 --tokens 300000 --max-model-len 1000000 --seed 1 || bail "modelsim big did not start"
BIG=$sim_port
sc_ports
write_config() {
    cat >"$MG_TMP/sc.yaml" <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
routes:
  - model: m
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$ST] }
  - model: f
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$FAST] }
  - model: big
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$BIG] }
EOF
}
write_config
start_sidecar sc "$MG_TMP/sc.yaml" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"
URL=http://127.0.0.1:$SC_PORT/v1/chat/completions
DIRECT=http://127.0.0.1:$ST/v1/chat/completions

# stamp URL BODY: the arrival time (s, bash's clock) of every "data:" line of
# a stream, one per line, then "rc N" with curl's exit status.
stamp() {
    curl -sN --max-time $((10 * slow)) "$1" -H 'Content-Type: application/json' -d "$2"
    echo "rc $?"
} 
arrivals() {
    stamp "$1" "$2" | while IFS= read -r line; do
        case $line in
            data:*) echo "$EPOCHREALTIME ${line:6:40}" ;;
            rc\ *) echo "$line" ;;
        esac
    done
}

# --- chunks arrive spaced, as the backend sends them -----------------------------

t0=$EPOCHREALTIME
arrivals "$URL" "$(chat m hi '"stream":true')" >"$MG_TMP/arr.txt"
grep -v '^rc' "$MG_TMP/arr.txt" | awk -v t0="$t0" '{ printf "%.0f\n", ($1 - t0) * 1000 }' | tr '\n' ' ' >"$MG_TMP/arr.ms"
echo "# arrivals through the sidecar (ms): $(cat "$MG_TMP/arr.ms")"
check_eq "stream through the sidecar completes (curl exit 0)" "$(grep '^rc' "$MG_TMP/arr.txt")" "rc 0"
ndata=$(grep -vc '^rc' "$MG_TMP/arr.txt")
check_eq "role chunk + 10 token chunks + [DONE]" "$ndata" 12
check "the last line is [DONE]" eval 'grep -v "^rc" "$MG_TMP/arr.txt" | tail -1 | grep -q "\[DONE\]"'
# Gaps between the 10 token chunks (lines 2..11).
read -r span ng big mean <<<"$(grep -v '^rc' "$MG_TMP/arr.txt" | awk 'NR >= 2 && NR <= 11 { t[NR] = $1 } END {
    for (i = 3; i <= 11; i++) { g = (t[i] - t[i - 1]) * 1000; n++; s += g; if (g >= 60) b++ }
    printf "%.0f %d %d %.1f", (t[11] - t[2]) * 1000, n, b, s / n }')"
check "the first token chunk arrives long before the last ($span ms apart, sent 900 ms apart)" eval '[ "$span" -ge 700 ]'
check "gaps between token chunks are kept: $big of $ng gaps >= 60 ms (mean $mean ms)" eval '[ "$big" -ge 7 ]'
first=$(awk '{ print $1 }' "$MG_TMP/arr.ms")
check "the first chunk arrives after --ttft-ms 200 and well before the end ($first ms)" eval '[ "$first" -ge 190 ] && [ "$first" -lt 1000 ]'

# Time to first byte, direct and through the sidecar, alternately.
dsum=0 ssum=0
for i in 1 2 3; do
    d=$(curl -sN -o /dev/null -w '%{time_starttransfer}' --max-time 10 "$DIRECT" -d "$(chat m "p$i" '"stream":true,"max_tokens":1')")
    s=$(curl -sN -o /dev/null -w '%{time_starttransfer}' --max-time 10 "$URL" -H 'Content-Type: application/json' -d "$(chat m "p$i" '"stream":true,"max_tokens":1')")
    dsum=$(awk -v a="$dsum" -v b="$d" 'BEGIN { print a + b }'); ssum=$(awk -v a="$ssum" -v b="$s" 'BEGIN { print a + b }')
done
added=$(awk -v d="$dsum" -v s="$ssum" 'BEGIN { printf "%.1f", (s - d) / 3 * 1000 }')
check "time to first token through the sidecar is close to direct (+$added ms mean of 3)" flt "$added" $((25 * slow))

# --- whole replies and streams carry the same content ------------------------------

whole=$(curl -s --max-time 10 "$URL" -H 'Content-Type: application/json' -D "$MG_TMP/w.h" -d "$(chat f 'Tell me a story')")
direct=$(curl -s --max-time 10 "http://127.0.0.1:$FAST/v1/chat/completions" -d "$(chat f 'Tell me a story')")
check_eq "a whole reply through the sidecar has the backend's content" "$(jq -r .choices[0].message.content <<<"$whole")" "$(jq -r .choices[0].message.content <<<"$direct")"
check "a whole reply keeps Content-Length framing" eval '[ -n "$(hdr "$MG_TMP/w.h" content-length)" ]'
curl -sN --max-time 10 "$URL" -H 'Content-Type: application/json' -D "$MG_TMP/s.h" -o "$MG_TMP/s.b" -d "$(chat f 'Tell me a story' '"stream":true')"
content=$(grep '^data: {' "$MG_TMP/s.b" | sed 's/^data: //' | jq -rj '.choices[0].delta.content // empty')
check_eq "a stream through the sidecar carries the same content" "$content" "$(jq -r .choices[0].message.content <<<"$direct")"
check_eq "a stream reaches the client as text/event-stream, chunked" "$(hdr "$MG_TMP/s.h" content-type | cut -d';' -f1)|$(hdr "$MG_TMP/s.h" transfer-encoding)" "text/event-stream|chunked"

# Large replies at full speed: nothing lost or reordered, whole or streamed.
BIGURL=http://127.0.0.1:$BIG/v1/chat/completions
curl -s --max-time $((20 * slow)) "$BIGURL" -d "$(chat big large '"max_tokens":50000')" | jq -r .choices[0].message.content >"$MG_TMP/large.direct"
curl -s --max-time $((20 * slow)) "$URL" -H 'Content-Type: application/json' -d "$(chat big large '"max_tokens":50000')" | jq -r .choices[0].message.content >"$MG_TMP/large.sc"
check "a 50,000-token whole reply arrives intact ($(wc -c <"$MG_TMP/large.sc") bytes of content)" eval '[ "$(wc -w <"$MG_TMP/large.direct")" = 50000 ] && cmp -s "$MG_TMP/large.direct" "$MG_TMP/large.sc"'
curl -sN --max-time $((20 * slow)) "$URL" -H 'Content-Type: application/json' -d "$(chat big large '"max_tokens":50000,"stream":true')" >"$MG_TMP/large.sse"
grep '^data: {' "$MG_TMP/large.sse" | sed 's/^data: //' | jq -rj '.choices[0].delta.content // empty' >"$MG_TMP/large.sse.txt"
echo >>"$MG_TMP/large.sse.txt"
check "a 50,000-chunk stream arrives intact and in order, ending in [DONE]" eval 'cmp -s "$MG_TMP/large.direct" "$MG_TMP/large.sse.txt" && [ "$(tail -n 2 "$MG_TMP/large.sse" | head -n 1)" = "data: [DONE]" ]'

# --- metrics: tokens, TTFT, ITL ---------------------------------------------------

tok0=$(scm modelgate_output_tokens_total 'model="m",version="v1"')
ttft0=$(scm modelgate_time_to_first_token_seconds_count 'model="m",version="v1"')
ttfts0=$(scm modelgate_time_to_first_token_seconds_sum 'model="m",version="v1"')
itl0=$(scm modelgate_inter_token_latency_seconds_count 'model="m",version="v1"')
# Four at once (each takes 1.1 s); waited for by PID (a bare wait would
# wait for the servers too).
cpids=()
for i in 1 2; do curl -sN -o /dev/null --max-time 10 "$URL" -H 'Content-Type: application/json' -d "$(chat m "q$i" '"stream":true')" & cpids+=($!); done
curl -s -o /dev/null --max-time 10 "$URL" -H 'Content-Type: application/json' -d "$(chat m q3 '"stream":true,"stream_options":{"include_usage":true}')" & cpids+=($!)
curl -s -o /dev/null --max-time 10 "$URL" -H 'Content-Type: application/json' -d "$(chat m q4)" & cpids+=($!)
wait "${cpids[@]}"
check_eq "modelgate_output_tokens_total counts 10 per reply (3 streams, 1 whole)" "$(( $(scm modelgate_output_tokens_total 'model="m",version="v1"') - tok0 ))" 40
check "modelgate_time_to_first_token_seconds observed the streams" [ "$(( $(scm modelgate_time_to_first_token_seconds_count 'model="m",version="v1"') - ttft0 ))" -ge 3 ]
check "...with TTFTs of about 0.2 s each" fge "$(awk -v a="$(scm modelgate_time_to_first_token_seconds_sum 'model="m",version="v1"')" -v b="$ttfts0" 'BEGIN { print a - b }')" 0.57
check "modelgate_inter_token_latency_seconds observed 9 gaps per stream" [ "$(( $(scm modelgate_inter_token_latency_seconds_count 'model="m",version="v1"') - itl0 ))" -ge 27 ]
le=$(mval "$SC_ADMIN" modelgate_time_to_first_token_seconds_bucket 'model="m",version="v1",le="0.1"')
check_eq "no stream with a 200 ms TTFT lands in the le=0.1 bucket" "$le" 0

d0=$(scm modelgate_request_duration_seconds_count 'model="m",version="v1"')
curl -s -o /dev/null --max-time 10 "$URL" -H 'Content-Type: application/json' -H 'X-Request-Id: acc-whole-1' -d "$(chat f acc)" &
cpid=$!
curl -sN -o /dev/null --max-time 10 "$URL" -H 'Content-Type: application/json' -H 'X-Request-Id: acc-stream-1' -d "$(chat m acc '"stream":true')"
wait "$cpid"
check_eq "modelgate_request_duration_seconds observed the stream" "$(( $(scm modelgate_request_duration_seconds_count 'model="m",version="v1"') - d0 ))" 1
# The access log: one JSON line per request on stderr.
acc_line() { grep -F "\"$1\"" "$MG_TMP/sc.log" | grep -F '"access"'; }
wait_for $((2 * slow)) eval '[ -n "$(acc_line acc-whole-1)" ]'
line=$(acc_line acc-stream-1)
check_eq "access log: one line for the stream" "$(grep -c . <<<"$line")" 1
check_eq "access log: request id, model, version, endpoint, status, tokens, stream" \
    "$(jq -r '[.request_id, .model, .version, .endpoint, .status, .tokens, .stream] | map(tostring) | join("|")' <<<"$line" 2>/dev/null)" \
    "acc-stream-1|m|v1|127.0.0.1:$ST|200|10|true"
check "access log: ttft_ms about 200, duration_ms about 1100, bytes counted ($(jq -c '[.ttft_ms, .duration_ms, .bytes]' <<<"$line" 2>/dev/null))" \
    eval '[ "$(jq -r "(.ttft_ms >= 190 and .ttft_ms < 200 + 150 * $slow) and (.duration_ms >= 1000) and (.bytes > 1000)" <<<"$line")" = true ]'
line=$(acc_line acc-whole-1)
check_eq "access log: a whole reply's line (tokens from usage)" \
    "$(jq -r '[.request_id, .model, .status, .tokens, .stream] | map(tostring) | join("|")' <<<"$line" 2>/dev/null)" "acc-whole-1|f|200|4|false"
if command -v promtool >/dev/null; then
    curl -s --max-time 5 "http://127.0.0.1:$SC_ADMIN/metrics" >"$MG_TMP/metrics.txt"
    lint=$(promtool check metrics <"$MG_TMP/metrics.txt" 2>&1)
    check_eq "promtool check metrics finds nothing wrong in /metrics" "$lint" ""
else
    skip "promtool check metrics" "promtool not installed"
fi

# --- upstream connection reuse -----------------------------------------------------

created0=$(scm modelgate_upstream_connections_created_total)
reused0=$(scm modelgate_upstream_requests_reused_total)
res=$(load --conns 1 --requests 200 --path /v1/chat/completions --body "$(chat f hi)")
created=$(( $(scm modelgate_upstream_connections_created_total) - created0 ))
reused=$(( $(scm modelgate_upstream_requests_reused_total) - reused0 ))
check_eq "200 sequential keep-alive requests all 200" "$(j "$res" '[.ok, .created] | join("|")')" "200|1"
check "...opened at most 2 upstream connections ($created)" [ "$created" -le 2 ]
check "...and reused them for the rest ($reused of 200)" [ "$reused" -ge 198 ]
conns=$(ss -Htn state established "( dport = :$FAST )" 2>/dev/null | wc -l)
check "the sidecar holds few connections to the backend (ss: $conns)" eval '[ "$conns" -ge 1 ] && [ "$conns" -le 2 ]'
check "modelgate_upstream_connections{state=\"idle\"} shows the pooled connection ($(scm modelgate_upstream_connections 'state="idle"'))" [ "$(scm modelgate_upstream_connections 'state="idle"')" -ge 1 ]
created0=$(scm modelgate_upstream_connections_created_total)
for i in $(seq 20); do curl -s -o /dev/null --max-time 5 "$URL" -H 'Content-Type: application/json' -d "$(chat f hi)"; done
created=$(( $(scm modelgate_upstream_connections_created_total) - created0 ))
check "20 requests on 20 client connections share pooled upstream connections ($created new)" [ "$created" -le 1 ]
res=$(load --conns 8 --requests 2000 --path /v1/chat/completions --body "$(chat f hi)")
conns=$(ss -Htn state established "( dport = :$FAST )" 2>/dev/null | wc -l)
check "8 client connections x 2000 requests: all 200, at most 8 upstream connections (ss: $conns)" eval '[ "$(j "$res" .ok)" = 2000 ] && [ "$conns" -le 8 ]'

# --- backpressure: a client that does not read --------------------------------------

scpid=$(pid_of sc)
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$scpid/status")
# The connection is held by this shell (no child process keeps it open),
# and closed once the checks are done.
exec {cfd}<>"/dev/tcp/127.0.0.1/$SC_PORT"
body=$(chat big 'never read' '"stream":true')
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body" >&"$cfd"
sleep 2
rss1=$(awk '/^VmRSS/ { print $2 }' "/proc/$scpid/status")
running=$(mval "$BIG" vllm:num_requests_running 'model_name="big"')
check_eq "a stream to a client that does not read stays open upstream" "$running" 1
check "modelgate_client_connections counts the open client connection ($(scm modelgate_client_connections))" [ "$(scm modelgate_client_connections)" -ge 1 ]
check "modelgate_upstream_connections{state=\"active\"} counts the busy upstream connection ($(scm modelgate_upstream_connections 'state="active"'))" [ "$(scm modelgate_upstream_connections 'state="active"')" -ge 1 ]
check "...and the sidecar does not buffer it (RSS +$((rss1 - rss0)) KiB for a 70 MB stream)" [ $((rss1 - rss0)) -lt $((12000 * slow)) ]
exec {cfd}>&-
check "the client leaving ends the upstream request" wait_for $((5 * slow)) eval '[ "$(mval "$BIG" vllm:num_requests_running "model_name=\"big\"")" = 0 ]'
check_eq "...which the backend counts as aborted" "$(mval "$BIG" vllm:request_success_total 'model_name="big",finished_reason="abort"')" 1

# A client that leaves a slow stream early: the upstream is cancelled too.
a0=$(mval "$ST" vllm:request_success_total 'model_name="m",finished_reason="abort"')
curl -sN -o /dev/null --max-time 0.5 "$URL" -H 'Content-Type: application/json' -d "$(chat m leave '"stream":true')"
check "a client leaving mid-stream aborts the upstream request" wait_for $((5 * slow)) eval '[ "$(mval "$ST" vllm:request_success_total "model_name=\"m\",finished_reason=\"abort\"")" = $(( ${a0:-0} + 1 )) ]'

check "the sidecar is still running" sc_alive sc

# SIGTERM with a stream in flight: the stream finishes, then the sidecar exits 0.
{ curl -sN --max-time $((10 * slow)) "$URL" -H 'Content-Type: application/json' -d "$(chat m drain '"stream":true')"; echo "rc $?"; } >"$MG_TMP/drain.txt" &
flight=$!
sleep 0.4
scpid=$(pid_of sc)
kill -TERM "$scpid"
sleep 0.2
check "after SIGTERM the sidecar takes no new request" eval '[ "$(curl -s -o /dev/null -w "%{http_code}" --max-time 2 "$URL" -H "Content-Type: application/json" -d "$(chat f late)")" != 200 ]'
wait "$flight"
check_eq "SIGTERM: the stream in flight still ends with its 10 tokens and [DONE]" "$(grep -c '"content":"[^"]' "$MG_TMP/drain.txt")|$(grep -c '^data: \[DONE\]' "$MG_TMP/drain.txt")|$(tail -n 1 "$MG_TMP/drain.txt")" "10|1|rc 0"
for i in $(seq $((30 * slow))); do kill -0 "$scpid" 2>/dev/null || break; sleep 0.1; done
wait "$scpid"
check_eq "SIGTERM: then the sidecar exits 0" "$?" 0
check "the sidecar logged no sanitizer report" no_sanitizer_report "$MG_TMP/sc.log"
finish
