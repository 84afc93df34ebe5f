#!/usr/bin/env bash
# modelgate-sidecar in front of modelsim, the short tour: --check and the
# command line's exit codes, a whole and a streamed chat completion through
# it (version and request id headers, the stream intact), GET /v1/models,
# an unknown model, the admin port (/metrics counting those requests and
# their tokens and accepted by promtool, /healthz, /readyz, /config), a
# SIGHUP reload, a refused reload that keeps the old table, and a clean
# SIGTERM. The thorough suites are the other sidecar_*.sh. Only 127.0.0.1;
# every process ours, ended by PID.
. "$MG_TOP/tests/integration/lib.sh"

SC=$MG_BIN/modelgate-sidecar
SIM=$MG_BIN/modelsim
[ -x "$SC" ] || bail "modelgate-sidecar not built"
[ -x "$SIM" ] || bail "modelsim not built"
slow=1
[ "${MG_SANITIZE:-0}" = 1 ] && slow=3

# modelsim on a free port (port 0 + --port-file).
start_bg sim "$SIM" --listen 127.0.0.1:0 --port-file "$MG_TMP/sim.port" --model m --model half --version v7 \
    --tokens 5 --itl-ms 20 --seed 3
for i in $(seq 200); do [ -s "$MG_TMP/sim.port" ] && break; sleep 0.025; done
SIMP=$(cat "$MG_TMP/sim.port" 2>/dev/null) || bail "modelsim did not start"
wait_port "$SIMP" 5 || bail "modelsim does not accept connections"
pick_ports() {
    P=$(free_port) || bail "no free port"
    A=$(free_port) || bail "no free port"
    while [ "$A" = "$P" ]; do A=$(free_port); done
}
pick_ports
CLOSED=$(free_port) || bail "no free port"

write_cfg() {   # write_cfg WEIGHT_V1 WEIGHT_V2: replaced by rename, as editors do
    cat >"$MG_TMP/sc.yaml.tmp" <<EOF
listen: 127.0.0.1:$P
admin: 127.0.0.1:$A
routes:
  - model: m
    versions:
      - { name: v1, weight: $1, endpoints: [127.0.0.1:$SIMP] }
      - { name: v2, weight: $2, endpoints: [127.0.0.1:$SIMP] }
  - model: half
    versions:
      - { name: h1, weight: 1, endpoints: [127.0.0.1:$SIMP, 127.0.0.1:$CLOSED] }
EOF
    mv "$MG_TMP/sc.yaml.tmp" "$MG_TMP/sc.yaml"
}
write_table() { write_cfg 100 0; }
write_table
# start_sc ARGS...: starts the sidecar on $MG_TMP/sc.yaml and waits for its
# "started" line (logged once both ports are bound). free_port cannot
# reserve a port: when another process took one in between, new ports and a
# new table are tried (up to 3 times), never someone else's listener.
start_sc() {
    local try pid i
    for try in 1 2 3; do
        start_bg sc "$SC" --config "$MG_TMP/sc.yaml" "$@"
        pid=$(pid_of sc)
        for i in $(seq $((100 * slow))); do
            grep -q '"msg":"modelgate-sidecar started"' "$MG_TMP/sc.log" && return 0
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        grep -q "already in use" "$MG_TMP/sc.log" || return 1
        wait "$pid" 2>/dev/null
        pick_ports
        write_table
    done
    return 1
}

# --- the command line ---------------------------------------------------------

out=$("$SC" --check --config "$MG_TMP/sc.yaml" 2>&1)
check_eq "--check on a valid table exits 0" "$?" 0
check_eq "--check says how many routes" "$out" "$MG_TMP/sc.yaml: ok, 2 routes"
cat >"$MG_TMP/bad.yaml" <<EOF
listen: 127.0.0.1:$P
routes:
  - model: m
    versions:
      - { name: v1, weight: heavy, endpoints: [127.0.0.1:$SIMP] }
    timeoutz: {}
EOF
out=$("$SC" --check --config "$MG_TMP/bad.yaml" 2>&1)
check_eq "--check on an invalid table exits 1" "$?" 1
check "--check names the bad weight with its path ($(head -c 300 <<<"$out"))" \
    grep -q "bad.yaml.*routes\[0\]\.versions\[0\]\.weight" <<<"$out"
check "--check names the unknown key too (every error, not the first)" grep -q "timeoutz" <<<"$out"
"$SC" --check >/dev/null 2>&1
check_eq "no --config: usage, exit 2" "$?" 2
"$SC" --config "$MG_TMP/sc.yaml" --no-such-flag >/dev/null 2>&1
check_eq "an unknown option: usage, exit 2" "$?" 2
"$SC" --config "$MG_TMP/sc.yaml" --log-level loud >/dev/null 2>&1
check_eq "a bad --log-level: exit 2" "$?" 2
"$SC" --config "$MG_TMP/bad.yaml" >"$MG_TMP/badrun.log" 2>&1
check_eq "starting on an invalid table exits 1" "$?" 1

# --- proxying -----------------------------------------------------------------

start_sc || bail "sidecar did not start: $(tail -3 "$MG_TMP/sc.log")"
U=http://127.0.0.1:$P
body='{"model":"m","messages":[{"role":"user","content":"Tell me a story"}]}'
sbody='{"model":"m","stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}'
hv() { tr -d '\r' <"$1" | awk -v n="$2" 'tolower($1) == n":" { sub(/^[^:]*: /, ""); print }' | tail -n 1; }

st=$(curl -s --max-time 10 -D "$MG_TMP/w.h" -o "$MG_TMP/w.b" -w '%{http_code}' "$U/v1/chat/completions" -H 'Content-Type: application/json' -d "$body")
check_eq "a whole chat completion through the sidecar: 200" "$st" 200
check_eq "...with x-modelgate-version naming the version" "$(hv "$MG_TMP/w.h" x-modelgate-version)" v1
check "...with a made x-request-id" grep -Eq '^[0-9a-f]{32}$' <<<"$(hv "$MG_TMP/w.h" x-request-id)"
check_eq "...from the backend (x-modelsim-version)" "$(hv "$MG_TMP/w.h" x-modelsim-version)" v7
check "...framed by Content-Length" [ -n "$(hv "$MG_TMP/w.h" content-length)" ]
check "...the backend's body (usage 5 tokens)" grep -q '"completion_tokens":5' "$MG_TMP/w.b"

st=$(curl -sN --max-time 10 -D "$MG_TMP/s.h" -o "$MG_TMP/s.b" -w '%{http_code}' "$U/v1/chat/completions" -H 'Content-Type: application/json' -H 'X-Request-Id: smoke-1' -d "$sbody")
check_eq "a streamed chat completion: 200" "$st" 200
check_eq "...text/event-stream" "$(hv "$MG_TMP/s.h" content-type)" text/event-stream
check_eq "...chunked" "$(hv "$MG_TMP/s.h" transfer-encoding)" chunked
check_eq "...the client's x-request-id echoed" "$(hv "$MG_TMP/s.h" x-request-id)" smoke-1
check_eq "...x-modelgate-version" "$(hv "$MG_TMP/s.h" x-modelgate-version)" v1
check_eq "...role chunk, 5 token chunks and [DONE]" "$(grep -c '^data: ' "$MG_TMP/s.b")" 7
check_eq "...ending in [DONE]" "$(grep '^data: ' "$MG_TMP/s.b" | tail -n 1)" "data: [DONE]"

models=$(curl -s --max-time 5 "$U/v1/models")
check "GET /v1/models lists m ($models)" grep -q '"object":"list".*"id":"m","object":"model"' <<<"$models"
st=$(curl -s --max-time 5 -o "$MG_TMP/e.b" -w '%{http_code}' "$U/v1/chat/completions" -d '{"model":"nope"}')
check_eq "an unknown model: 404" "$st" 404
check "...an OpenAI-style error naming it" grep -q '"error":{"message":"The model `nope` does not exist.","type":"invalid_request_error","param":"model","code":"model_not_found"}' "$MG_TMP/e.b"
st=$(curl -s --max-time 5 -o "$MG_TMP/e.b" -w '%{http_code}' "$U/v1/chat/completions" -d '[1]')
check_eq "a body that is not a JSON object: 400" "$st" 400
check "...says so" grep -q 'request body is not a JSON object' "$MG_TMP/e.b"

# --- admin --------------------------------------------------------------------

M=http://127.0.0.1:$A
metric() { curl -s --max-time 5 "$M/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
check_eq "/metrics: 2 requests counted for m/v1 with code 200" "$(metric 'modelgate_requests_total{model="m",version="v1",code="200"}')" 2
check_eq "/metrics: 10 output tokens (usage of the whole reply, events of the stream)" "$(metric 'modelgate_output_tokens_total{model="m",version="v1"}')" 10
check_eq "/metrics: the 404 counted before routing" "$(metric 'modelgate_requests_total{model="",version="",code="404"}')" 1
check_eq "/metrics: 2 time-to-first-token observations" "$(metric 'modelgate_time_to_first_token_seconds_count{model="m",version="v1"}')" 2
check_eq "/metrics: 4 inter-token gaps of the stream" "$(metric 'modelgate_inter_token_latency_seconds_count{model="m",version="v1"}')" 4
check_eq "/metrics: one upstream connection opened" "$(metric modelgate_upstream_connections_created_total)" 1
check_eq "/metrics: ...and reused" "$(metric modelgate_upstream_requests_reused_total)" 1
if command -v promtool >/dev/null; then
    curl -s --max-time 5 "$M/metrics" >"$MG_TMP/metrics.txt"
    lint=$(promtool check metrics <"$MG_TMP/metrics.txt" 2>&1)
    check_eq "promtool check metrics accepts the exposition without a remark" "$?|$lint" "0|"
else
    skip "promtool check metrics" "promtool not installed"
fi
check_eq "/healthz" "$(curl -s --max-time 5 "$M/healthz")" ok
check_eq "/readyz: 200 once every worker serves the table" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$M/readyz")" 200
cfg=$(curl -s --max-time 5 "$M/config")
check "GET /config: the table with its generation and source" grep -q '"generation":1,"source":"'"$MG_TMP/sc.yaml"'"' <<<"$cfg"
st=$(curl -s -o "$MG_TMP/p.b" -w '%{http_code}' --max-time 5 "$M/config" -d "listen: x")
check_eq "POST /config without --admin-token-file: 403" "$st" 403
check "...saying how to enable it" grep -q 'admin-token-file' "$MG_TMP/p.b"

# One endpoint of two refuses connections: after its first failure it is
# passed over (1 s, then 2 s, ...) instead of drawing the requests, which
# fail fastest.
for i in $(seq 60); do
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 5 "$U/v1/chat/completions" \
        -d '{"model":"half","max_tokens":1,"messages":[{"role":"user","content":"x"}]}'
done >"$MG_TMP/half.codes"
n200=$(grep -c '^200$' "$MG_TMP/half.codes"); n503=$(grep -c '^503$' "$MG_TMP/half.codes")
check "a dead endpoint beside a live one: at most 4 of 60 requests fail (200: $n200, 503: $n503)" \
    eval '[ "$n503" -le 4 ] && [ $((n200 + n503)) = 60 ]'

# --- reloads ------------------------------------------------------------------

write_cfg 0 100
kill -HUP "$(pid_of sc)"
for i in $(seq $((50 * slow))); do
    [ "$(metric modelgate_config_generation)" = 2 ] && break
    sleep 0.1
done
check_eq "SIGHUP with new weights: generation 2" "$(metric modelgate_config_generation)" 2
check_eq "...and the next request goes to v2" "$(curl -s -D - -o /dev/null --max-time 5 "$U/v1/chat/completions" -d "$body" | hv /dev/stdin x-modelgate-version)" v2
sed -i 's/weight: 100/weight: lots/' "$MG_TMP/sc.yaml"
kill -HUP "$(pid_of sc)"
for i in $(seq $((50 * slow))); do
    [ "$(metric 'modelgate_config_reloads_total{result="refused"}')" = 1 ] && break
    sleep 0.1
done
check_eq "an invalid table is refused and counted" "$(metric 'modelgate_config_reloads_total{result="refused"}')" 1
check_eq "...the old table stays (generation 2)" "$(metric modelgate_config_generation)" 2
check "...and its errors are logged" grep -q 'route table error.*weight' "$MG_TMP/sc.log"
check_eq "...still serving v2" "$(curl -s -D - -o /dev/null --max-time 5 "$U/v1/chat/completions" -d "$body" | hv /dev/stdin x-modelgate-version)" v2

# --- access log, stop -----------------------------------------------------------

check "one JSON access line per request (request id, model, version, status, tokens)" \
    grep -q '"msg":"access","request_id":"smoke-1","method":"POST","path":"/v1/chat/completions","model":"m","version":"v1","endpoint":"127.0.0.1:'"$SIMP"'","status":200,.*"tokens":5' "$MG_TMP/sc.log"
pid=$(pid_of sc)
kill -TERM "$pid"
for i in $(seq $((50 * slow))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"
check_eq "SIGTERM: the sidecar exits 0" "$?" 0
check "...and logged no sanitizer report" eval '! grep -q "Sanitizer\|runtime error" "$MG_TMP/sc.log"'
finish
