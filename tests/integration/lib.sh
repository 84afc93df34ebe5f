# Shared helpers for integration tests (sourced, not run). tests/run.sh gives
# each script MG_TOP, MG_BUILD, MG_BIN, MG_TOOLS, MG_TMP (its own temporary
# directory) and MG_SANITIZE.
#
#   . "$MG_TOP/tests/integration/lib.sh"
#   port=$(free_port)
#   start_bg srv "$MG_TOOLS/mg-testserver" --listen 127.0.0.1:$port
#   wait_port $port || bail "server did not start"
#   check "GET / answers 200" [ "$(curl -s -o /dev/null -w '%{http_code}' ...)" = 200 ]
#   finish
#
# Every process started with start_bg is ended by PID when the script exits,
# and only those.

set -u
: "${MG_TOP:?run through tests/run.sh}"
: "${MG_TMP:=$(mktemp -d)}"
: "${MG_BIN:=$MG_BUILD/bin}"
: "${MG_TOOLS:=$MG_BUILD/tests/bin}"

mg_pids=()
mg_failed=0
mg_passed=0

# ok NAME / not_ok NAME [WHY]: report one case.
ok() { echo "ok - $1"; mg_passed=$((mg_passed + 1)); }
not_ok() {
    echo "not ok - $1"
    [ $# -gt 1 ] && echo "# $2"
    mg_failed=$((mg_failed + 1))
}
skip() { echo "skip - $1: $2"; }

# check NAME CMD...: runs CMD; success is ok.
check() {
    local name=$1; shift
    if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}

# check_eq NAME GOT WANT
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1" "got '$2', want '$3'"; fi
}

# bail WHY: a setup step failed; report it and stop.
bail() { not_ok "setup" "$1"; finish; }

# start_bg NAME CMD...: starts CMD in the background with its output in
# $MG_TMP/NAME.log; its PID is remembered (and echoed to $MG_TMP/NAME.pid).
# Call it directly, never inside $(...): a subshell would remember the PID
# where the cleanup cannot see it, and the process would outlive the test.
start_bg() {
    local name=$1; shift
    "$@" >"$MG_TMP/$name.log" 2>&1 &
    local pid=$!
    mg_pids+=("$pid")
    echo "$pid" >"$MG_TMP/$name.pid"
}

# pid_of NAME
pid_of() { cat "$MG_TMP/$1.pid"; }

# stop_pid PID [SIGNAL]: ends one of our processes and waits for it (5 s, then KILL).
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

mg_cleanup() {
    local pid
    for pid in "${mg_pids[@]-}"; do
        [ -n "$pid" ] && stop_pid "$pid"
    done
}
trap mg_cleanup EXIT

# free_port: a TCP port on 127.0.0.1 that nothing listens on now, taken
# outside the kernel's ephemeral range (ip_local_port_range): a port inside
# it can be taken by any outgoing connection between this check and the
# server's bind ("address already in use").
free_port() {
    local p i lo=32768 hi=60999 base span
    read -r lo hi < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    if [ "$lo" -gt 12000 ]; then
        base=10000 span=$((lo - 10000))
    else
        base=$((hi + 1)) span=$((65535 - hi))
    fi
    for i in $(seq 100); do
        p=$((base + RANDOM % span))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# wait_port PORT [SECONDS]: waits until 127.0.0.1:PORT accepts connections.
wait_port() {
    local port=$1 secs=${2:-10} i
    for i in $(seq $((secs * 20))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# finish: prints the case count and exits non-zero when a case failed.
finish() {
    echo "# $mg_passed passed, $mg_failed failed"
    [ "$mg_failed" -eq 0 ] && exit 0
    exit 1
}
