#!/usr/bin/env bash
# modelgate-sidecar on bad input and bad upstreams, seen from a client:
# malformed HTTP (400 and close), oversize body (413) and head (431), a body
# that is not JSON or has no usable "model" (400), an unknown model (404),
# no reachable endpoint (503 + Retry-After: a closed port, and a port whose
# connects hang, for the connect timeout), the first-token (504), idle and
# total timeouts, upstream errors passed through, an upstream cut
# mid-stream, and on the client side the header-read (slowloris) and
# keep-alive idle timeouts. Every status is checked with its body: errors
# are OpenAI-style JSON. Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-lib.bash"
[ -x "$MG_TOOLS/mg-blackhole" ] || bail "mg-blackhole not built (make tests)"

start_sim ok --model m --version v1 --tokens 4 --seed 1 --max-model-len 1000000 || bail "modelsim ok did not start"
OK=$sim_port
start_sim slow --model slow --version v1 --ttft-ms 3000 --tokens 4 || bail "modelsim slow did not start"
SLOW=$sim_port
start_sim stall --model stall --version v1 --itl-ms 20 --tokens 10 --fail-mode stall --fail-after 3 || bail "modelsim stall did not start"
STALL=$sim_port
start_sim long --model long --version v1 --itl-ms 100 --tokens 50 || bail "modelsim long did not start"
LONG=$sim_port
start_sim cut --model cut --version v1 --itl-ms 20 --tokens 10 --fail-mode cut --fail-after 3 || bail "modelsim cut did not start"
CUT=$sim_port
start_bg hole "$MG_TOOLS/mg-blackhole" --listen 127.0.0.1:0 --port-file "$MG_TMP/hole.port"
for i in $(seq 100); do [ -s "$MG_TMP/hole.port" ] && break; sleep 0.05; done
HOLE=$(cat "$MG_TMP/hole.port" 2>/dev/null) || bail "mg-blackhole did not start: $(cat "$MG_TMP/hole.log")"
CLOSED=$(free_port) || bail "no free port"
sc_ports
write_config() {
    cat >"$MG_TMP/sc.yaml" <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
limits: { requestBody: 64Ki, requestHead: 8Ki }
client: { headerTimeout: 1s, keepAliveTimeout: 700ms }
routes:
  - model: m
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$OK] } ]
  - model: closed
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$CLOSED] } ]
    timeouts: { connect: 2s }
  - model: hole
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$HOLE] } ]
    timeouts: { connect: 300ms }
  - model: slow
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$SLOW] } ]
    timeouts: { firstToken: 400ms }
  - model: stall
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$STALL] } ]
    timeouts: { idle: 400ms }
  - model: long
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$LONG] } ]
    timeouts: { total: 800ms }
  - model: cut
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:$CUT] } ]
EOF
}
write_config
start_sidecar sc "$MG_TMP/sc.yaml" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"
R=$MG_TMP/r

# raw DATA SECS: sends DATA (printf %b escapes) on a new connection and reads
# until the server closes or SECS pass. The reply goes to $MG_TMP/raw.out;
# raw_rc is 124 when the server kept the connection open; raw_secs is the
# time from connect to close.
raw() {
    local t0 fd
    t0=$EPOCHREALTIME
    exec {fd}<>"/dev/tcp/127.0.0.1/$SC_PORT" || { raw_rc=99; return; }
    printf '%b' "$1" >&"$fd"
    timeout "$2" cat <&"$fd" >"$MG_TMP/raw.out"
    raw_rc=$?
    raw_secs=$(since "$t0")
    exec {fd}>&-
}
raw_status() { head -n 1 "$MG_TMP/raw.out" | awk '{ print $2 }'; }
# The body after the head (Content-Length framing).
raw_body() { awk 'f { print } /^\r?$/ { f = 1 }' "$MG_TMP/raw.out" >"$MG_TMP/raw.body"; echo "$MG_TMP/raw.body"; }
# err_case NAME WANT_STATUS CURL_ARGS...: one request, status and JSON body;
# err_secs is the time curl took (its own clock: no process start counted).
err_case() {
    local name=$1 want=$2 st; shift 2
    read -r st err_secs < <(curl -s --max-time $((10 * slow)) -D "$R.h" -o "$R.b" -w '%{http_code} %{time_total}' "$@")
    check_eq "$name: status" "$st" "$want"
    check_eq "$name: the body is an OpenAI-style error" "$(oai_error "$R.b")" ok
    check_eq "$name: the body is JSON" "$(hdr "$R.h" content-type | cut -d';' -f1)" application/json
    check "$name: x-request-id on the error response" [ -n "$(hdr "$R.h" x-request-id)" ]
}
URL=http://127.0.0.1:$SC_PORT/v1/chat/completions
J=(-H 'Content-Type: application/json')

# --- malformed HTTP ---------------------------------------------------------------

raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nThis is not a header\r\nContent-Length: 2\r\n\r\n{}' $((3 * slow))
check_eq "a header line without a colon: 400" "$(raw_status)" 400
check "...and the sidecar closes the connection (${raw_secs}s)" [ "$raw_rc" != 124 ]
check_eq "...with an OpenAI-style error body" "$(oai_error "$(raw_body)")" ok
raw 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' $((3 * slow))
check_eq "Content-Length with Transfer-Encoding (smuggling): 400 and close" "$(raw_status)|$([ "$raw_rc" != 124 ] && echo closed)" "400|closed"
check_eq "...with an OpenAI-style error body" "$(oai_error "$(raw_body)")" ok
raw 'GARBAGE\r\n\r\n' $((3 * slow))
check_eq "a request line that is not HTTP: 400 and close" "$(raw_status)|$([ "$raw_rc" != 124 ] && echo closed)" "400|closed"

# --- oversize ----------------------------------------------------------------------

head -c 100000 /dev/zero | tr '\0' 'a' | awk '{ printf "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", $0 }' >"$MG_TMP/big.json"
err_case "a 100 KB body over limits.requestBody 64Ki" 413 "$URL" "${J[@]}" --data-binary @"$MG_TMP/big.json"
err_case "the same body sent chunked" 413 "$URL" "${J[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/big.json"
err_case "a 10 KB header over limits.requestHead 8Ki" 431 "$URL" "${J[@]}" -H "X-Big: $(head -c 10000 /dev/zero | tr '\0' 'b')" -d "$(chat m hi)"
check_eq "control: a normal body on the same sidecar answers 200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL" "${J[@]}" -d "$(chat m hi)")" 200

# The body cap is exact: 64 KiB passes, one byte more does not.
pad() { local n=$1 pre='{"model":"m","messages":[{"role":"user","content":"' post='"}]}'; printf '%s%s%s' "$pre" "$(head -c $((n - ${#pre} - ${#post})) /dev/zero | tr '\0' 'a')" "$post"; }
pad 65536 >"$MG_TMP/b64k.json"; pad 65537 >"$MG_TMP/b64k1.json"
check_eq "a body of exactly limits.requestBody (65536 bytes) is taken" "$(stat -c %s "$MG_TMP/b64k.json")|$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL" "${J[@]}" --data-binary @"$MG_TMP/b64k.json")" "65536|200"
check_eq "one byte more is 413" "$(stat -c %s "$MG_TMP/b64k1.json")|$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$URL" "${J[@]}" --data-binary @"$MG_TMP/b64k1.json")" "65537|413"

# --- bodies that cannot be routed ---------------------------------------------------

err_case "a body that is not JSON" 400 "$URL" "${J[@]}" -d 'hello'
err_case "truncated JSON" 400 "$URL" "${J[@]}" -d '{"model":"m","messages":'
err_case "a JSON array" 400 "$URL" "${J[@]}" -d '[{"model":"m"}]'
err_case "no model (and no \"*\" route)" 400 "$URL" "${J[@]}" -d '{"messages":[{"role":"user","content":"hi"}]}'
err_case "model is not a string" 400 "$URL" "${J[@]}" -d '{"model":42,"messages":[{"role":"user","content":"hi"}]}'
err_case "an empty body" 400 "$URL" "${J[@]}" -d ''
err_case "an unknown model" 404 "$URL" "${J[@]}" -d "$(chat no-such-model hi)"
check "...the error names the model ($(jq -c .error <"$R.b" 2>/dev/null))" grep -q 'no-such-model' "$R.b"
u0=$(scm modelgate_requests_total 'code="404"')
args=()
for i in $(seq 200); do args+=(--next -s -o /dev/null "$URL" -H 'Content-Type: application/json' -d "$(chat "no-such-$i" hi)"); done
curl --max-time $((30 * slow)) "${args[@]:1}" 2>/dev/null
series=$(curl -s --max-time 5 "http://127.0.0.1:$SC_ADMIN/metrics" | grep -c '^modelgate_requests_total{')
check "200 distinct unknown model names add no metric series per name ($series requests_total series)" [ "$series" -le 40 ]
check_eq "...all 200 were answered 404" "$(( $(scm modelgate_requests_total 'code="404"') - u0 ))" 200

# Refusals answered by the sidecar keep the client's connection open.
res=$(load --conns 2 --requests 200 --path /v1/chat/completions --body "$(chat no-such-model hi)")
check_eq "200 requests for an unknown model: all 404 on 2 kept-alive connections" "$(j "$res" '[(.status["404"] // 0), .transport_errors, .created] | join("|")')" "200|0|2"
res=$(load --conns 2 --requests 200 --path /v1/chat/completions --body 'not json')
check_eq "200 requests with a body that is not JSON: all 400 on 2 kept-alive connections" "$(j "$res" '[(.status["400"] // 0), .transport_errors, .created] | join("|")')" "200|0|2"
# Pipelining: three requests in one write, three replies in order.
b1=$(chat m one) b2=$(chat no-such-model two) b3=$(chat m three)
pl=""
for b in "$b1" "$b2" "$b3"; do pl+="POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Request-Id: pl-${#pl}\r\nContent-Length: ${#b}\r\n\r\n$b"; done
raw "${pl}" 2
check_eq "three pipelined requests get three replies in order" "$(grep -ao 'HTTP/1.1 [0-9]*' "$MG_TMP/raw.out" | awk '{ print $2 }' | tr '\n' ' ')" "200 404 200 "

# --- upstream errors: passed through as the backend sent them ----------------------

st=$(curl -s --max-time 10 -D "$R.h" -o "$R.b" -w '%{http_code}' "$URL" "${J[@]}" -H 'X-Return-Error: 429' -d "$(chat m hi)")
check_eq "a backend 429 reaches the client as is (status, type, Retry-After)" "$st|$(jq -r .error.type <"$R.b" 2>/dev/null)|$(hdr "$R.h" retry-after)" "429|RateLimitError|1"
check_eq "...labelled with the version that answered" "$(hdr "$R.h" x-modelgate-version)" v1
st=$(curl -s --max-time 10 -o "$R.b" -w '%{http_code}' "$URL" "${J[@]}" -H 'X-Return-Error: 500' -d "$(chat m hi)")
check_eq "a backend 500 reaches the client as is" "$st|$(jq -r .error.type <"$R.b" 2>/dev/null)" "500|InternalServerError"
check "modelgate_requests_total counts the 429 under its code" [ "$(scm modelgate_requests_total 'model="m",version="v1",code="429"')" -ge 1 ]

# --- no endpoint reachable, connect timeout ------------------------------------------

err_case "an endpoint that refuses connections" 503 "$URL" "${J[@]}" -d "$(chat closed hi)"
el=$err_secs
check "...answered at once, not after the 2 s connect timeout (${el}s)" flt "$el" $((1 * slow))
check "...with Retry-After" [ -n "$(hdr "$R.h" retry-after)" ]
err_case "an endpoint whose connects hang (connect: 300ms)" 503 "$URL" "${J[@]}" -d "$(chat hole hi)"
el=$err_secs
check "...answered after the connect timeout, not before (${el}s)" eval 'fge "$el" 0.28 && flt "$el" $(awk -v s=$slow "BEGIN { print 0.3 + 0.7 * s }")'
check "...with Retry-After" [ -n "$(hdr "$R.h" retry-after)" ]

# --- first token, idle, total ---------------------------------------------------------

err_case "no first byte within firstToken 400ms (backend TTFT 3 s)" 504 "$URL" "${J[@]}" -d "$(chat slow hi)"
el=$err_secs
check "...answered at about 400 ms (${el}s)" eval 'fge "$el" 0.38 && flt "$el" $(awk -v s=$slow "BEGIN { print 0.4 + 0.6 * s }")'
err_case "the same for a stream (no head sent yet)" 504 "$URL" "${J[@]}" -d "$(chat slow hi '"stream":true')"
el=$err_secs
check "...answered at about 400 ms (${el}s)" eval 'fge "$el" 0.38 && flt "$el" $(awk -v s=$slow "BEGIN { print 0.4 + 0.6 * s }")'
check "modelgate_requests_total counts the 504s" [ "$(scm modelgate_requests_total 'model="slow",code="504"')" -ge 2 ]

# Stream that stalls after 3 tokens; idle 400ms ends it. Bytes already
# reached the client, so (issue 5) the stream ends with one OpenAI error
# event and data: [DONE], cleanly, instead of being cut.
t0=$EPOCHREALTIME
{ curl -sN --max-time $((5 * slow)) "$URL" "${J[@]}" -d "$(chat stall hi '"stream":true')"; echo "rc $?"; } |
    while IFS= read -r line; do
        case $line in data:*) echo "$EPOCHREALTIME $line" ;; rc\ *) echo "$EPOCHREALTIME $line" ;; esac
    done >"$MG_TMP/stall.txt"
rc=$(awk '$2 == "rc" { print $3 }' "$MG_TMP/stall.txt")
tokens=$(grep -c '"content":"[^"]' "$MG_TMP/stall.txt")
gap=$(awk '$2 == "data:" && $0 ~ /"content":"[^"]/ { last = $1 } $2 == "data:" && $0 ~ /"error"/ { printf "%.3f", $1 - last; exit }' "$MG_TMP/stall.txt")
check_eq "idle: a stream that stalls after 3 tokens delivers them" "$tokens" 3
check_eq "idle: ...then ends cleanly (curl exit 0)" "$rc" 0
check_eq "idle: ...with exactly one error event" "$(grep -c '^[0-9.]* data: {"error"' "$MG_TMP/stall.txt")" 1
check "idle: ...then data: [DONE], last" eval 'grep "data:" "$MG_TMP/stall.txt" | tail -n 1 | grep -q "data: \[DONE\]"'
check "idle: the error event comes about 400 ms after the last token, not before (${gap}s)" eval 'fge "$gap" 0.37 && flt "$gap" $(awk -v s=$slow "BEGIN { print 0.4 + 0.6 * s }")'

# A 5 s stream (50 tokens, 100 ms apart) under total 800ms.
{ curl -sN --max-time $((5 * slow)) -w '\ntime %{time_total}\n' "$URL" "${J[@]}" -d "$(chat long hi '"stream":true')"; echo "rc $?"; } >"$MG_TMP/long.txt"
el=$(awk '$1 == "time" { print $2 }' "$MG_TMP/long.txt")
rc=$(awk '$1 == "rc" { print $2 }' "$MG_TMP/long.txt")
tokens=$(grep -c '"content":"[^"]' "$MG_TMP/long.txt")
check_eq "total: a 5 s stream is ended at the limit with an error event and [DONE] (curl exit 0)" "$rc" 0
check "total: ...the error event then [DONE]" eval 'grep -q "data: {\"error\"" "$MG_TMP/long.txt" && grep "^data:" "$MG_TMP/long.txt" | tail -n 1 | grep -q "\[DONE\]"'
check "total: ended at about 800 ms (${el}s)" eval 'fge "$el" 0.75 && flt "$el" $(awk -v s=$slow "BEGIN { print 0.8 + 0.6 * s }")'
check "total: the tokens before the cut were delivered ($tokens)" eval '[ "$tokens" -ge 4 ] && [ "$tokens" -le 9 ]'
err_case "total: a whole reply that would take 5 s" 504 "$URL" "${J[@]}" -d "$(chat long hi)"
el=$err_secs
check "...answered at about 800 ms (${el}s)" eval 'fge "$el" 0.75 && flt "$el" $(awk -v s=$slow "BEGIN { print 0.8 + 0.6 * s }")'

# --- an upstream that cuts the connection -------------------------------------------------

{ curl -sN --max-time $((5 * slow)) "$URL" "${J[@]}" -d "$(chat cut hi '"stream":true')"; echo "rc $?"; } >"$MG_TMP/cut.txt"
rc=$(awk '$1 == "rc" { print $2 }' "$MG_TMP/cut.txt")
check_eq "an upstream cut mid-stream: the client gets the 3 tokens" "$(grep -c '"content":"[^"]' "$MG_TMP/cut.txt")" 3
check_eq "...then one error event and [DONE], a clean end (curl exit 0)" "$rc" 0
check_eq "...exactly one error event" "$(grep -c '^data: {"error"' "$MG_TMP/cut.txt")" 1
check "...[DONE] last" eval 'grep "^data:" "$MG_TMP/cut.txt" | tail -n 1 | grep -q "\[DONE\]"'
st=$(curl -s --max-time $((5 * slow)) -D "$R.h" -o "$R.b" -w '%{http_code}' "$URL" "${J[@]}" -d "$(chat cut hi)")
check "an upstream that closes before answering: 502 or 503 ($st)" eval '[ "$st" = 502 ] || [ "$st" = 503 ]'
check_eq "...with an OpenAI-style error body" "$(oai_error "$R.b")" ok

# --- client side timeouts -------------------------------------------------------------------

# Slowloris: a head that never ends, one header line every 150 ms. The
# header timeout (1 s) counts from the first byte, so dripping does not
# extend it.
t0=$EPOCHREALTIME
exec {fd}<>"/dev/tcp/127.0.0.1/$SC_PORT"
printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n' >&"$fd"
( for i in $(seq 40); do printf 'X-Drip-%d: x\r\n' "$i" >&"$fd" || exit 0; sleep 0.15; done ) 2>/dev/null &
drip=$!
timeout $((6 * slow)) cat <&"$fd" >"$MG_TMP/slowloris.out"
rc=$?
el=$(since "$t0")
exec {fd}>&-
kill "$drip" 2>/dev/null; wait "$drip" 2>/dev/null
st=$(head -n 1 "$MG_TMP/slowloris.out" | awk '{ print $2 }')
check "slowloris: the sidecar closes a head still incomplete after headerTimeout 1s (closed: rc $rc)" [ "$rc" != 124 ]
check "slowloris: ...at about 1 s, dripping does not extend it (${el}s)" eval 'fge "$el" 0.95 && flt "$el" $(awk -v s=$slow "BEGIN { print 1 + 0.8 * s }")'
check "slowloris: ...with 408 or nothing ('$st')" eval '[ "$st" = 408 ] || [ -z "$st" ]'
if [ "$st" = 408 ]; then
    awk 'f { print } /^\r?$/ { f = 1 }' "$MG_TMP/slowloris.out" >"$MG_TMP/slowloris.body"
    check_eq "slowloris: ...the 408 has an OpenAI-style error body" "$(oai_error "$MG_TMP/slowloris.body")" ok
fi

# Keep-alive idle: a request, 400 ms of silence, another on the same
# connection, then silence: closed keepAliveTimeout 700ms after the second.
body=$(chat m hi)
t0=$EPOCHREALTIME
exec {fd}<>"/dev/tcp/127.0.0.1/$SC_PORT"
( printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body"
  sleep 0.4
  printf 'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' "${#body}" "$body" ) >&"$fd" 2>/dev/null &
writer=$!
timeout $((6 * slow)) cat <&"$fd" >"$MG_TMP/ka.out"
rc=$?
el=$(since "$t0")
exec {fd}>&-
wait "$writer" 2>/dev/null
check_eq "keep-alive: two requests 400 ms apart on one connection are both answered" "$(grep -o 'HTTP/1.1 200 ' "$MG_TMP/ka.out" | wc -l)" 2
check "keep-alive: the idle connection is then closed (rc $rc)" [ "$rc" != 124 ]
check "keep-alive: ...about 700 ms after the second reply (${el}s from the start)" eval 'fge "$el" 1.05 && flt "$el" $(awk -v s=$slow "BEGIN { print 1.1 + 0.8 * s }")'

# --- every failure counted by kind ---------------------------------------------------------

for kv in closed:connect:1 hole:connect_timeout:1 slow:first_token_timeout:2 stall:idle_timeout:1 \
          long:total_timeout:2 cut:reset_mid_response:1 cut:reset:1; do
    IFS=: read -r mdl kind n <<<"$kv"
    got=$(scm modelgate_upstream_errors_total "model=\"$mdl\",kind=\"$kind\"")
    check "modelgate_upstream_errors_total{model=\"$mdl\",kind=\"$kind\"} counted $n ($got)" [ "$got" -ge "$n" ]
done

# --- still serving ------------------------------------------------------------------------------

check_eq "after all that, a normal request still answers 200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL" "${J[@]}" -d "$(chat m hi)")" 200
check "the sidecar is still running" sc_alive sc
sc_clean_exit sc
finish
