#!/usr/bin/env bash
# modelgate-sidecar circuit breakers, against modelsim behind counting
# proxies (so every upstream attempt is counted by someone other than the
# sidecar): a breaker opens at exactly its consecutive-failure threshold
# (503 and 429 count as failures), sends nothing while open (the requests
# go to the fallback and succeed), half-opens after openDuration, closes
# when its probes succeed, re-opens for twice as long when a probe fails;
# the failure-rate trigger waits for minRequests; at most
# maxEjectionPercent of a version's endpoints are ejected; GET /state and
# the metrics show the states and transitions.
# Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-resil.bash"

start_sim b1 --model m --version v1 || bail "modelsim b1 did not start"
B1=$sim_port
start_counter cb "$B1" || bail "counter cb did not start"
CB=$ctr_port
start_sim b2 --model m --version v2 || bail "modelsim b2 did not start"
B2=$sim_port
start_sim rate --model r --version v1 --error-rate 1 --error-status 500 --seed 7 || bail "modelsim rate did not start"
RATE=$sim_port
start_counter cr "$RATE" || bail "counter cr did not start"
CR=$ctr_port
start_sim ej --model e --version v1 --error-rate 1 --error-status 503 || bail "modelsim ej did not start"
EJ=$sim_port
start_counter ce1 "$EJ" || bail "counter ce1 did not start"
CE1=$ctr_port
start_counter ce2 "$EJ" || bail "counter ce2 did not start"
CE2=$ctr_port
OPEN_S=3
sc_ports
write_config() {
    cat >"$MG_TMP/sc.yaml" <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
accessLog: false
routes:
  - model: m
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$CB] }
      - { name: v2, weight: 0, endpoints: [127.0.0.1:$B2] }
    circuitBreaker: { consecutiveFailures: 5, openDuration: ${OPEN_S}s, maxOpenDuration: 30s, halfOpenRequests: 2, maxEjectionPercent: 100 }
    fallback: [ { version: v2 } ]
  - model: r
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$CR] }
    circuitBreaker: { consecutiveFailures: 0, failureRate: 0.5, window: 30s, minRequests: 20, openDuration: 30s, maxEjectionPercent: 100 }
  - model: e
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$CE1, 127.0.0.1:$CE2] }
    circuitBreaker: { consecutiveFailures: 3, openDuration: 30s, maxEjectionPercent: 50 }
EOF
}
write_config
start_sidecar sc "$MG_TMP/sc.yaml" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"
EP=127.0.0.1:$CB

# seq_load N MODEL: N requests one after the other (so a breaker sees them in order).
seq_load() { load --conns 1 --requests "$1" --path /v1/chat/completions --body "$(chat "$2" hi)" --backend-header x-modelsim-version; }

res=$(seq_load 3 m)
check_eq "healthy: 3 requests served by v1, 3 attempts upstream" "$(j "$res" '[.ok, .versions.v1] | join("|")')|$(attempts "$CB")" "3|3|3"
check_eq "GET /state: the endpoint's breaker is closed" "$(ep_state "$EP")" closed

# --- opens at the threshold; no traffic while open ------------------------------

sim_set "$B1" '{"error_rate":1,"error_status":503}' || bail "modelsim b1: error_rate"
a0=$(attempts "$CB")
t0=$EPOCHREALTIME
res=$(seq_load 30 m)
t_open=$EPOCHREALTIME
att=$(( $(attempts "$CB") - a0 ))
echo "# 30 requests with v1 failing: $att attempts to v1; $res"
check_eq "v1 answering 503: the breaker opens after exactly 5 attempts (consecutiveFailures: 5)" "$att" 5
check_eq "...and all 30 client requests succeed through the fallback v2" "$(j "$res" '[.ok, .versions.v2, .backend_mismatch] | join("|")')" "30|30|0"
check_eq "GET /state: open" "$(ep_state "$EP")" open
check "modelgate_breaker_transitions_total counts the trip ($(scm modelgate_breaker_transitions_total))" eval '[ "$(scm modelgate_breaker_transitions_total)" -ge 1 ]'
check "modelgate_breaker_state for the endpoint is not 0 (closed) ($(scm modelgate_breaker_state "endpoint=\"$EP\""))" eval '[ "$(scm modelgate_breaker_state "endpoint=\"$EP\"")" != 0 ]'
# A reload (SIGHUP: the same table again, a new generation) keeps the
# open breaker open.
kill -HUP "$(pid_of sc)"
check "SIGHUP: a new generation of the table" wait_for $((3 * slow)) gen_above 1
check_eq "...and the breaker is still open (GET /state)" "$(ep_state "$EP")" open
sim_set "$B1" '{"error_rate":0}' || bail "modelsim b1: heal"
a0=$(attempts "$CB")
res=$(load --conns 4 --requests 200 --path /v1/chat/completions --body "$(chat m open)")
t1=$EPOCHREALTIME
if flt "$(awk -v a="$t_open" -v b="$t1" 'BEGIN { print b - a }')" "$OPEN_S"; then
    check_eq "while open (even healed): 200 requests, 0 attempts to v1, all served by v2" "$(( $(attempts "$CB") - a0 ))|$(j "$res" '[.ok, .versions.v2] | join("|")')" "0|200|200"
else
    skip "no traffic while open" "the 200 requests took past openDuration on this machine"
fi

# --- half-open after openDuration, closed after good probes -----------------------

# Wait out openDuration (measured from the end of the trip).
left=$(awk -v a="$t_open" -v b="$EPOCHREALTIME" -v o="$OPEN_S" 'BEGIN { l = o - (b - a) + 0.2; print (l > 0 ? l : 0) }')
sleep "$left"
a0=$(attempts "$CB")
res=$(seq_load 10 m)
check_eq "after openDuration: probes reach v1, succeed, the breaker closes: 10 of 10 served by v1" "$(( $(attempts "$CB") - a0 ))|$(j "$res" '[.ok, (.versions.v1 // 0)] | join("|")')" "10|10|10"
check_eq "GET /state: closed again" "$(ep_state "$EP")" closed
tr=$(scm modelgate_breaker_transitions_total)
check_eq "transitions: closed->open, open->half_open, half_open->closed" "$tr" 3

# --- 429 is a failure; a failed probe re-opens for twice as long ---------------------

sim_set "$B1" '{"error_rate":1,"error_status":429}' || bail "modelsim b1: 429"
a0=$(attempts "$CB")
res=$(seq_load 12 m)
t_open=$EPOCHREALTIME
check_eq "v1 answering 429 (overload is not success): open after exactly 5 attempts, all served by v2" "$(( $(attempts "$CB") - a0 ))|$(j "$res" '[.ok, .versions.v2] | join("|")')" "5|12|12"
sleep "$(awk -v a="$t_open" -v b="$EPOCHREALTIME" -v o="$OPEN_S" 'BEGIN { l = o - (b - a) + 0.2; print (l > 0 ? l : 0) }')"
a0=$(attempts "$CB")
res=$(seq_load 1 m)
t_open=$EPOCHREALTIME
check_eq "after openDuration a probe goes to v1 (and fails: the client still gets v2's reply)" "$(( $(attempts "$CB") - a0 ))|$(j "$res" '[.ok, .versions.v2] | join("|")')" "1|1|1"
check_eq "GET /state: open again after the failed probe" "$(ep_state "$EP")" open
sim_set "$B1" '{"error_rate":0}' || bail "modelsim b1: heal"
# Doubled: 2 x openDuration. At 1.5 x nothing goes to v1; after 2 x it does.
sleep "$(awk -v a="$t_open" -v b="$EPOCHREALTIME" -v o="$OPEN_S" 'BEGIN { l = 1.5 * o - (b - a); print (l > 0 ? l : 0) }')"
a0=$(attempts "$CB")
res=$(seq_load 3 m)
if flt "$(awk -v a="$t_open" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" $((2 * OPEN_S)); then
    check_eq "re-opened for 2 x openDuration: at 1.5 x still no attempt to v1" "$(( $(attempts "$CB") - a0 ))|$(j "$res" .versions.v2)" "0|3"
else
    skip "re-open doubling, early probe" "the requests ran past 2 x openDuration on this machine"
fi
sleep "$(awk -v a="$t_open" -v b="$EPOCHREALTIME" -v o="$OPEN_S" 'BEGIN { l = 2 * o - (b - a) + 0.3; print (l > 0 ? l : 0) }')"
a0=$(attempts "$CB")
res=$(seq_load 5 m)
check_eq "after 2 x openDuration: the probes succeed and v1 serves again" "$(( $(attempts "$CB") - a0 ))|$(j "$res" '.versions.v1 // 0')" "5|5"
check_eq "GET /state: closed" "$(ep_state "$EP")" closed

# --- the failure-rate trigger ----------------------------------------------------

res=$(seq_load 40 r)
check_eq "failureRate 0.5 with minRequests 20, every answer a 500: opens at exactly 20 attempts" "$(attempts "$CR")" 20
check_eq "...the other 20 requests were refused by the open breaker (no fallback: 503)" "$(j "$res" '[.status["500"], .status["503"]] | join("|")')" "20|20"
check_eq "GET /state: the r endpoint is open" "$(ep_state "127.0.0.1:$CR")" open

# --- the ejection cap ---------------------------------------------------------------

res=$(load --conns 2 --requests 60 --path /v1/chat/completions --body "$(chat e hi)")
s1=$(ep_state "127.0.0.1:$CE1"); s2=$(ep_state "127.0.0.1:$CE2")
check_eq "maxEjectionPercent 50, both endpoints failing: one breaker open, the other kept closed" "$(printf '%s\n' "$s1" "$s2" | sort | tr '\n' ' ')" "closed open "
a1=$(attempts "$CE1"); a2=$(attempts "$CE2")
res=$(load --conns 2 --requests 30 --path /v1/chat/completions --body "$(chat e hi)")
d1=$(( $(attempts "$CE1") - a1 )); d2=$(( $(attempts "$CE2") - a2 ))
check "...the kept endpoint takes all the traffic (+$d1, +$d2 of 30)" eval '[ $((d1 + d2)) = 30 ] && { [ $d1 = 0 ] || [ $d2 = 0 ]; }'

st=$(sc_state)
echo "# GET /state: $(head -c 1500 <<<"$st")"
check "GET /state is JSON" eval 'jq -e . >/dev/null <<<"$st"'
check "the sidecar is still running" sc_alive sc
sc_clean_exit sc
finish
