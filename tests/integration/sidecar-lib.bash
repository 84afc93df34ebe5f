# Helpers shared by the sidecar_*.sh integration tests (sourced; named
# .bash so that tests/run.sh, which runs every *.sh, does not run it).
#
#   . "$MG_TOP/tests/integration/sidecar-lib.bash"
#   start_sim v1 --model m --version v1 || bail "..."; S1=$sim_port
#   sc_ports                                  # sets SC_PORT, SC_ADMIN
#   cat >"$MG_TMP/sc.yaml" <<EOF ... EOF
#   start_sidecar sc "$MG_TMP/sc.yaml" || bail "..."
#
# Everything on 127.0.0.1; every process through start_bg, ended by PID.
. "$MG_TOP/tests/integration/lib.sh"

SC=$MG_BIN/modelgate-sidecar
SIM=$MG_BIN/modelsim
LOAD=$MG_TOOLS/mg-load
[ -x "$SIM" ] || bail "modelsim not built"
[ -x "$LOAD" ] || bail "mg-load not built (make tests)"
[ -x "$SC" ] || bail "modelgate-sidecar not built"
command -v jq >/dev/null || bail "jq not found"
# Upper time bounds stretch under ASan; lower bounds never do.
slow=1
[ "${MG_SANITIZE:-0}" = 1 ] && slow=3

# start_sim NAME ARGS...: modelsim on a free port (port 0 + --port-file);
# sets $sim_port. Not in a subshell, so start_bg records the PID here.
start_sim() {
    local name=$1 i; shift
    sim_port=
    start_bg "$name" "$SIM" --listen 127.0.0.1:0 --port-file "$MG_TMP/$name.port" "$@"
    for i in $(seq 200); do
        [ -s "$MG_TMP/$name.port" ] && break
        sleep 0.025
    done
    sim_port=$(cat "$MG_TMP/$name.port" 2>/dev/null) || return 1
    wait_port "$sim_port" 5
}

# sc_ports: picks the sidecar's data and admin ports (SC_PORT, SC_ADMIN).
sc_ports() {
    SC_PORT=$(free_port) || bail "no free port"
    SC_ADMIN=$(free_port) || bail "no free port"
    while [ "$SC_ADMIN" = "$SC_PORT" ]; do SC_ADMIN=$(free_port); done
}

# start_sidecar NAME CONFIG [ARGS...]: the sidecar on SC_PORT/SC_ADMIN
# (which CONFIG must name); waits until both ports accept and the process
# still runs. When a port was taken meanwhile (free_port only says it was
# free a moment ago), it picks new ports, calls the test's write_config
# (which must rewrite CONFIG from SC_PORT/SC_ADMIN) and tries again, 3 times.
start_sidecar() {
    local name=$1 cfg=$2 try; shift 2
    for try in 1 2 3; do
        start_bg "$name" "$SC" --config "$cfg" "$@"
        wait_port "$SC_PORT" $((5 * slow)) && wait_port "$SC_ADMIN" $((5 * slow)) &&
            sc_alive "$name" && return 0
        grep -q "already in use" "$MG_TMP/$name.log" || return 1
        declare -F write_config >/dev/null || return 1
        stop_pid "$(pid_of "$name")"
        sc_ports
        write_config
    done
    return 1
}

# A chat request body: chat MODEL PROMPT [EXTRA_JSON_MEMBERS].
chat() { printf '{"model":"%s","messages":[{"role":"user","content":"%s"}]%s}' "$1" "$2" "${3:+,$3}"; }

# sc_post PATH BODY [CURL_ARGS...]: POST to the sidecar's data port, prints the body.
sc_post() { local path=$1 body=$2; shift 2; curl -s --max-time $((10 * slow)) "$@" "http://127.0.0.1:$SC_PORT$path" -H 'Content-Type: application/json' --data-binary "$body"; }
# sc_req OUTPREFIX BODY [CURL_ARGS...]: POST /v1/chat/completions; head in
# OUTPREFIX.h, body in OUTPREFIX.b; prints the status.
sc_req() {
    local out=$1 body=$2; shift 2
    curl -s --max-time $((10 * slow)) -D "$out.h" -o "$out.b" -w '%{http_code}' "$@" \
        "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' --data-binary "$body"
}
# hdr FILE NAME: a header's value from a curl -D dump (the last response's).
hdr() { tr -d '\r' <"$1" | awk -v n="$(tr 'A-Z' 'a-z' <<<"$2")" 'BEGIN { FS = ": " } /^HTTP\// { v = "" } { k = tolower($1) } k == n { v = substr($0, length($1) + 3) } END { print v }'; }

# mval PORT NAME [LABELS]: the sum of the samples of metric NAME on
# 127.0.0.1:PORT/metrics whose labels include every k="v" of LABELS (comma
# separated, any order); empty when no sample matches.
mval() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v name="$2" -v want="${3-}" '
        /^#/ || NF < 2 { next }
        {
            s = $1; n = s; sub(/\{.*/, "", n)
            if (n != name) next
            lab = ""
            if (match(s, /\{.*\}/)) lab = substr(s, RSTART + 1, RLENGTH - 2)
            nw = split(want, w, ",")
            for (i = 1; i <= nw; i++) if (index("," lab ",", "," w[i] ",") == 0) next
            sum += $NF; found = 1
        }
        END { if (found) print sum + 0 }'
}
# scm NAME [LABELS]: mval on the sidecar's admin port, 0 when absent.
scm() { local v; v=$(mval "$SC_ADMIN" "$@"); echo "${v:-0}"; }

# wait_for SECONDS CMD...: runs CMD every 50 ms until it succeeds (0) or the
# time is up (1).
wait_for() {
    local secs=$1 i; shift
    for i in $(seq $(awk -v s="$secs" 'BEGIN { printf "%d", s * 20 }')); do
        "$@" && return 0
        sleep 0.05
    done
    "$@"
}
# gen_above N: the sidecar's config generation is above N.
gen_above() { [ "$(scm modelgate_config_generation)" -gt "$1" ] 2>/dev/null; }

# load ARGS...: mg-load against the sidecar's data port, prints its JSON.
load() { "$LOAD" --connect "127.0.0.1:$SC_PORT" --timeout-ms $((60000 * slow)) "$@"; }
# j JSON FILTER: jq -r on a string.
j() { jq -r "$2" <<<"$1" 2>/dev/null; }

# Floats: fge A B (A >= B), flt A B (A < B), fbetween X LO HI (LO <= X <= HI).
fge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }
flt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
fbetween() { awk -v x="$1" -v a="$2" -v b="$3" 'BEGIN { exit !(x >= a && x <= b) }'; }
# now_s: wall clock in seconds with microseconds (bash's own, no process).
now_s() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# oai_error FILE: "ok" when FILE is an OpenAI-style error body
# ({"error":{"message": non-empty string, ...}}), else what it is.
oai_error() {
    local m
    m=$(jq -r 'if (.error | type) == "object" and (.error.message | type) == "string" and (.error.message | length) > 0 then "ok" else "not an OpenAI error" end' <"$1" 2>/dev/null) || m="not JSON"
    [ -n "$m" ] || m="not JSON"
    if [ "$m" != ok ]; then echo "$m: $(head -c 200 "$1")"; else echo ok; fi
}

# sc_alive NAME: the sidecar NAME is still running. sc_clean_exit NAME:
# SIGTERM ends it with exit 0 and its log has no sanitizer report.
sc_alive() { kill -0 "$(pid_of "$1")" 2>/dev/null; }
# no_sanitizer_report LOG: LOG exists and has no ASan/UBSan report.
no_sanitizer_report() { [ -f "$1" ] && ! grep -q "Sanitizer\|runtime error" "$1"; }
sc_clean_exit() {
    local name=$1 pid rc i
    pid=$(pid_of "$name")
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq $((50 * slow))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    wait "$pid"
    rc=$?
    check_eq "SIGTERM ends sidecar $name cleanly (exit status)" "$rc" 0
    check "sidecar $name logged no sanitizer report" no_sanitizer_report "$MG_TMP/$name.log"
}
