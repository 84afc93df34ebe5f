#!/usr/bin/env bash
# modelgate-sidecar's life cycle with two workers: POST /config (token
# missing, wrong, right; an invalid table refused with its errors and the
# old table kept), the config file replaced by rename and edited in place
# (picked up without a signal), /readyz, and a SIGTERM drain that lets a
# stream in flight finish while new requests get 503, then exits 0. Only
# 127.0.0.1; every process ours, ended by PID.
. "$MG_TOP/tests/integration/lib.sh"

SC=$MG_BIN/modelgate-sidecar
SIM=$MG_BIN/modelsim
[ -x "$SC" ] || bail "modelgate-sidecar not built"
[ -x "$SIM" ] || bail "modelsim not built"
slow=1
[ "${MG_SANITIZE:-0}" = 1 ] && slow=3

start_bg sim "$SIM" --listen 127.0.0.1:0 --port-file "$MG_TMP/sim.port" --model m --version v1 \
    --tokens 20 --itl-ms 50
for i in $(seq 200); do [ -s "$MG_TMP/sim.port" ] && break; sleep 0.025; done
SIMP=$(cat "$MG_TMP/sim.port" 2>/dev/null) || bail "modelsim did not start"
wait_port "$SIMP" 5 || bail "modelsim does not accept connections"
pick_ports() {
    P=$(free_port) || bail "no free port"
    A=$(free_port) || bail "no free port"
    while [ "$A" = "$P" ]; do A=$(free_port); done
    U=http://127.0.0.1:$P
    M=http://127.0.0.1:$A
}
pick_ports

table() {   # table VERSION_NAME: the whole table, as YAML
    printf 'listen: 127.0.0.1:%s\nadmin: 127.0.0.1:%s\nworkers: 2\nroutes:\n  - model: m\n    versions:\n      - { name: %s, weight: 1, endpoints: [127.0.0.1:%s] }\n' \
        "$P" "$A" "$1" "$SIMP"
}
write_table() { table v1 >"$MG_TMP/sc.yaml"; }
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
printf '  s3cret-token \n' >"$MG_TMP/token"
start_sc --admin-token-file "$MG_TMP/token" --drain-timeout 20s || bail "sidecar did not start: $(tail -3 "$MG_TMP/sc.log")"

body='{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}'
served_by() { curl -s -D - -o /dev/null --max-time 5 "$U/v1/chat/completions" -d "$body" | tr -d '\r' | awk 'tolower($1) == "x-modelgate-version:" { print $2 }'; }
metric() { curl -s --max-time 5 "$M/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
# wait_served NAME: until 8 requests in a row (both workers, most likely) say NAME.
wait_served() {
    local i k ok
    for i in $(seq $((40 * slow))); do
        ok=1
        for k in 1 2 3 4 5 6 7 8; do [ "$(served_by)" = "$1" ] || { ok=0; break; }; done
        [ $ok = 1 ] && return 0
        sleep 0.05
    done
    return 1
}

check_eq "two workers serve the first table" "$(served_by)" v1
check_eq "/readyz: 200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$M/readyz")" 200

# --- POST /config ------------------------------------------------------------------

post() { curl -s -o "$MG_TMP/post.b" -w '%{http_code}' --max-time 5 "$M/config" "$@"; }
check_eq "POST /config without a token: 401" "$(post --data-binary "$(table v2)")" 401
check_eq "POST /config with a wrong token: 401" "$(post -H 'Authorization: Bearer s3cret' --data-binary "$(table v2)")" 401
check_eq "POST /config with a token one byte longer: 401" "$(post -H 'Authorization: Bearer s3cret-tokenx' --data-binary "$(table v2)")" 401
check_eq "...nothing changed (generation 1)" "$(metric modelgate_config_generation)" 1
st=$(post -H 'Authorization: Bearer s3cret-token' --data-binary "$(table v2 | sed 's/weight: 1/weight: -1/'; printf '    sticky: { heder: x }\n')")
check_eq "POST /config with an invalid table: 400" "$st" 400
check "...listing every error (weight and the misspelt key): $(head -c 300 "$MG_TMP/post.b")" \
    eval 'grep -q "\"errors\":\[\"POST /config: routes\[0\]\.versions\[0\]\.weight" "$MG_TMP/post.b" && grep -q heder "$MG_TMP/post.b"'
check_eq "...counted as refused" "$(metric 'modelgate_config_reloads_total{result="refused"}')" 1
check_eq "...the old table serves on" "$(served_by)" v1
st=$(post -H 'Authorization: Bearer s3cret-token' -H 'Content-Type: application/json' --data-binary \
    "{\"listen\":\"127.0.0.1:$P\",\"admin\":\"127.0.0.1:$A\",\"workers\":2,\"routes\":[{\"model\":\"m\",\"versions\":[{\"name\":\"v2\",\"weight\":1,\"endpoints\":[\"127.0.0.1:$SIMP\"]}]}]}")
check_eq "POST /config with a valid JSON table: 200" "$st|$(cat "$MG_TMP/post.b")" '200|{"generation":2,"warnings":[]}'
check "...every worker serves it" wait_served v2
check_eq "...GET /config shows it with its source" "$(curl -s --max-time 5 "$M/config" | grep -o '"generation":2,"source":"POST /config"')" '"generation":2,"source":"POST /config"'
check_eq "...counted as ok" "$(metric 'modelgate_config_reloads_total{result="ok"}')" 1

# --- the file, replaced and edited ----------------------------------------------------

table v3 >"$MG_TMP/sc.yaml.new" && mv "$MG_TMP/sc.yaml.new" "$MG_TMP/sc.yaml"
check "the file replaced by rename is picked up without a signal" wait_served v3
check_eq "...as generation 3" "$(metric modelgate_config_generation)" 3
sed -i 's/name: v3/name: v4/' "$MG_TMP/sc.yaml"
check "the file edited in place is picked up" wait_served v4
touch "$MG_TMP/sc.yaml"
sleep $((2 * slow))
check_eq "touching it without changing it reloads nothing (generation 4)" "$(metric modelgate_config_generation)" 4
printf 'listen: [' >"$MG_TMP/sc.yaml.new" && mv "$MG_TMP/sc.yaml.new" "$MG_TMP/sc.yaml"
for i in $(seq $((40 * slow))); do [ "$(metric 'modelgate_config_reloads_total{result="refused"}')" = 2 ] && break; sleep 0.05; done
check_eq "a broken file is refused" "$(metric 'modelgate_config_reloads_total{result="refused"}')" 2
check "...its syntax error logged with line and column" grep -q '"msg":"route table error","file":"[^"]*sc.yaml","line":[1-9][0-9]*,"col":[1-9]' "$MG_TMP/sc.log"
check_eq "...and v4 serves on" "$(served_by)" v4

# --- drain -------------------------------------------------------------------------------

# A stream of 20 tokens, 50 ms apart (about 1 s), then SIGTERM in its middle.
( curl -sN --max-time $((10 * slow)) "$U/v1/chat/completions" -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}' >"$MG_TMP/drain.out"
  echo "rc $?" >>"$MG_TMP/drain.out" ) &
reader=$!
sleep 0.3
pid=$(pid_of sc)
kill -TERM "$pid"
sleep 0.1
st=$(curl -s -o "$MG_TMP/late.b" -D "$MG_TMP/late.h" -w '%{http_code}' --max-time 5 "$U/v1/chat/completions" -d "$body")
check "a request during the drain: 503 shutting_down, Connection: close ($st)" \
    eval '[ "$st" = 503 ] && grep -q shutting_down "$MG_TMP/late.b" && grep -qi "^connection: close" "$MG_TMP/late.h"'
check_eq "/readyz during the drain: 503" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$M/readyz")" 503
wait "$reader"
check_eq "the stream in flight ran to its end (20 tokens, [DONE], curl exit 0)" \
    "$(grep -c '"content":"[^"]' "$MG_TMP/drain.out")|$(grep -c '^data: \[DONE\]' "$MG_TMP/drain.out")|$(tail -n 1 "$MG_TMP/drain.out")" "20|1|rc 0"
for i in $(seq $((50 * slow))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
wait "$pid"
check_eq "then the sidecar exits 0" "$?" 0
check "...and logged no sanitizer report" eval '! grep -q "Sanitizer\|runtime error" "$MG_TMP/sc.log"'
finish
