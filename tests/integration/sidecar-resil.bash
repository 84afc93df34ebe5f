# Helpers of the sidecar resilience tests (sidecar_resilience.sh,
# sidecar_fallback.sh, sidecar_breaker.sh, sidecar_ratelimit.sh,
# sidecar_admission.sh), on top of sidecar-lib.bash (sourced; .bash so that
# tests/run.sh does not run it).
#
#   start_counter NAME PORT      a counting proxy in front of 127.0.0.1:PORT
#   attempts PORT                requests that proxy forwarded so far
#   sim_set PORT JSON            modelsim's POST /admin/config
#   start_flaky NAME             tests/integration/sidecar-flaky.mjs
#   hwm_kb PID / rss_kb PID      VmHWM / VmRSS of a process (KiB)
#   sc_state                     the sidecar's GET /state (JSON)
. "$MG_TOP/tests/integration/sidecar-lib.bash"

TS=$MG_TOOLS/mg-testserver
[ -x "$TS" ] || bail "mg-testserver not built (make tests)"

# start_counter NAME PORT: mg-testserver --proxy 127.0.0.1:PORT on a free
# port (sets $ctr_port). Every request that reaches it is forwarded as is,
# and counted: `attempts $ctr_port` is the number of upstream attempts the
# sidecar made to that endpoint, whatever the backend answered (modelsim's
# own metrics count only successes).
start_counter() {
    local name=$1 target=$2 i
    ctr_port=
    start_bg "$name" "$TS" --listen 127.0.0.1:0 --port-file "$MG_TMP/$name.port" --proxy "127.0.0.1:$target"
    for i in $(seq 200); do
        [ -s "$MG_TMP/$name.port" ] && break
        sleep 0.025
    done
    ctr_port=$(cat "$MG_TMP/$name.port" 2>/dev/null) || return 1
    wait_port "$ctr_port" 5
}
attempts() { curl -s --max-time 5 "http://127.0.0.1:$1/stats" | jq -r '.upstream.requests // "none"'; }

# sim_set PORT JSON: changes modelsim's knobs; fails unless it answered 200.
sim_set() {
    [ "$(curl -s --max-time 5 -o "$MG_TMP/sim_set.out" -w '%{http_code}' "http://127.0.0.1:$1/admin/config" -d "$2")" = 200 ]
}

# start_flaky NAME: the flaky upstream (node) on a free port; sets $flaky_port.
start_flaky() {
    local name=$1 i
    flaky_port=
    command -v node >/dev/null || return 1
    start_bg "$name" node "$MG_TOP/tests/integration/sidecar-flaky.mjs" "$MG_TMP/$name.port"
    for i in $(seq 200); do
        [ -s "$MG_TMP/$name.port" ] && break
        sleep 0.025
    done
    flaky_port=$(cat "$MG_TMP/$name.port" 2>/dev/null) || return 1
    wait_port "$flaky_port" 5
}

hwm_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null; }

# sc_state: GET /state on the admin port.
sc_state() { curl -s --max-time 5 "http://127.0.0.1:$SC_ADMIN/state"; }

# jcalc EXPR: awk arithmetic, printed with up to 3 decimals.
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
# ile A B: integer A <= B (both must be integers).
ile() { [ "$1" -le "$2" ] 2>/dev/null; }

# ep_state ENDPOINT: the breaker state GET /state shows for ENDPOINT
# ("closed", "open", "half_open"), "none" when it shows none.
ep_state() {
    sc_state | jq -r --arg e "$1" '[.. | objects | select(.endpoint? == $e) | .breaker.state? // empty] | first // "none"' 2>/dev/null || echo "none"
}
