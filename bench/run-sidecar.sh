#!/usr/bin/env bash
# The sidecar against HAProxy and nginx, all in front of the same modelsim.
#
# One modelsim (1 worker, 32 tokens per reply). In front of it, started once
# and kept for the whole run (so VmHWM is their peak over every load):
#   - HAProxy: nbthread 1, mode http, http-reuse always, timeouts set;
#   - nginx: one process (master_process off), upstream keepalive,
#     proxy_http_version 1.1, proxy_buffering off;
#   - modelgate-sidecar: workers 1, access log off (the peers log nothing);
# and "direct": modelsim itself, the baseline every proxy adds to.
#
# Loads (wrk keep-alive, one thread, --latency, a ~1 KB chat-completion POST
# from a Lua script), each at 32 and 256 connections:
#   - non-streaming: modelsim answers at once (no delays);
#   - streaming: modelsim streams like a model server, 50 ms to the first
#     token then one token every 10 ms (changed between loads through
#     modelsim's POST /admin/config).
# For every load and connection count the targets run alternately
# (direct, haproxy, nginx, sidecar), BENCH_ROUNDS times; figures are
# medians over the rounds, and ratios are medians of per-round ratios (a
# round's runs are seconds apart, so they share the machine's load).
# Then the streaming time to first token and the spacing of the tokens, as
# a client sees them (build/bench/ttft, BENCH_TTFT_CONNS connections,
# alternating the same way); "added" is the per-round difference to direct.
# Here a second HAProxy joins, with "option http-no-delay" (haproxy-nd):
# without it HAProxy bunches a stream's chunks (MSG_MORE).
# Last, memory: each proxy started afresh, its RSS idle and then with 256
# idle keep-alive client connections open (each has made one request).
#
# Rewrites the "## sidecar vs HAProxy and nginx" section of
# bench/RESULTS.md and leaves the other sections alone. Every process it
# starts is ended by PID; configs live in a temporary directory.
#
#   bench/run-sidecar.sh                     (make bench runs it after building)
#   BENCH_SECONDS=4 BENCH_ROUNDS=3 BENCH_CONNS="32 256" BENCH_THREADS=1
#   BENCH_TTFT_SECONDS=2 BENCH_TTFT_CONNS=32 BENCH_IDLE_CONNS=256
#   BENCH_TARGETS="direct haproxy nginx sidecar"   (a subset for a trial run;
#                                            RESULTS.md is then left alone)
#   BENCH_RESULTS=FILE                       (write the section there instead)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

secs=${BENCH_SECONDS:-4}
rounds=${BENCH_ROUNDS:-3}
conns_list=${BENCH_CONNS:-32 256}
threads=${BENCH_THREADS:-1}
ttft_secs=${BENCH_TTFT_SECONDS:-2}
ttft_conns=${BENCH_TTFT_CONNS:-32}
idle_conns=${BENCH_IDLE_CONNS:-256}
targets=${BENCH_TARGETS:-direct haproxy nginx sidecar}
results=${BENCH_RESULTS:-$top/bench/RESULTS.md}
sim=$top/build/bin/modelsim
sidecar=$top/build/bin/modelgate-sidecar
ttft=$top/build/bench/ttft
model=llama-3-8b-instruct
section_title="## sidecar vs HAProxy and nginx"

die() { echo "run-sidecar: $*" >&2; exit 1; }

for t in wrk curl; do
    command -v "$t" >/dev/null || die "$t not found (mk/deps.sh bench installs it)"
done
for t in $targets; do
    case $t in
        direct) ;;
        haproxy) command -v haproxy >/dev/null || die "haproxy not found (mk/deps.sh bench installs it)" ;;
        nginx) command -v nginx >/dev/null || die "nginx not found (mk/deps.sh bench installs nginx-light)" ;;
        sidecar) [ -x "$sidecar" ] || die "$sidecar not built (make)" ;;
        *) die "unknown target '$t' in BENCH_TARGETS (direct haproxy nginx sidecar)" ;;
    esac
done
case " $targets " in *" direct "*) ;; *) die "BENCH_TARGETS must include direct (the baseline)" ;; esac
[ -x "$sim" ] || die "$sim not built (make)"
[ -x "$ttft" ] || die "$ttft not built (make tests)"
full=0
[ "$targets" = "direct haproxy nginx sidecar" ] && full=1

work=$(mktemp -d "${TMPDIR:-/tmp}/mg-bench-sidecar.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]-}"; do
        [ -n "$p" ] || continue
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

used_ports=
free_port() {   # VAR: a port nothing listens on and this run has not handed out
    local fp
    for _ in $(seq 100); do
        fp=$((10000 + RANDOM % 22000))   # below the ephemeral range (32768+), where client sockets would collide
        case " $used_ports " in *" $fp "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$fp") 2>/dev/null; then
            used_ports+=" $fp"
            printf -v "$1" '%s' "$fp"
            return 0
        fi
    done
    die "no free port found"
}
wait_port() {   # PORT PID
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
stop_pid() {
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    for i in "${!pids[@]}"; do [ "${pids[$i]}" = "$p" ] && unset 'pids[i]'; done
    return 0
}
proc_kb() {   # PID KEY: a /proc/PID/status field in KiB
    awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status" 2>/dev/null || echo "n/a"
}
median() {   # numbers on stdin, one per line
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# --- request bodies: ~1 KB chat completions, streamed and not --------------

pad=$(printf 'Summarise the release notes of the model server in three short bullet points. %.0s' $(seq 12))
pad=${pad:0:880}
body_plain="{\"model\":\"$model\",\"max_tokens\":32,\"messages\":[{\"role\":\"system\",\"content\":\"You are a terse assistant.\"},{\"role\":\"user\",\"content\":\"$pad\"}]}"
body_stream="{\"model\":\"$model\",\"stream\":true,\"max_tokens\":32,\"messages\":[{\"role\":\"system\",\"content\":\"You are a terse assistant.\"},{\"role\":\"user\",\"content\":\"$pad\"}]}"
for kind in plain stream; do
    var=body_$kind
    printf '%s' "${!var}" >"$work/body-$kind.json"
    cat >"$work/$kind.lua" <<EOF
wrk.method = "POST"
wrk.body = '${!var}'
wrk.headers["Content-Type"] = "application/json"
EOF
done
body_bytes=$(wc -c <"$work/body-plain.json")

# --- the processes ---------------------------------------------------------

declare -A port pid
# A peer that did not come up: return 1 when another process took its port
# between free_port and its bind (the caller picks another), else stop.
start_failed() {   # NAME PID LOG...
    local name=$1 p=$2
    shift 2
    stop_pid "$p"
    if cat "$@" 2>/dev/null | grep -qi 'address already in use\|address in use'; then
        return 1
    fi
    cat "$@" >&2 2>/dev/null || true
    die "$name did not start"
}

start_modelsim() {
    free_port 'port[direct]'
    "$sim" --listen "127.0.0.1:${port[direct]}" --workers 1 --model "$model" --tokens 32 \
        --seed 1 --log-level warn >"$work/modelsim.log" 2>&1 &
    pid[direct]=$!
    pids+=("${pid[direct]}")
    wait_port "${port[direct]}" "${pid[direct]}" || start_failed modelsim "${pid[direct]}" "$work/modelsim.log"
}

start_haproxy() {   # NAME [OPTION]: config and log files carry NAME
    local name=$1 opt=${2-} p
    free_port p
    cat >"$work/$name.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    timeout http-request 10s
    http-reuse always
    $opt
frontend fe
    bind 127.0.0.1:$p
    default_backend be
backend be
    server ms 127.0.0.1:${port[direct]} maxconn 4000
EOF
    haproxy -c -q -f "$work/$name.cfg" >"$work/$name.check" 2>&1 ||
        { cat "$work/$name.check" >&2; die "haproxy refused its config"; }
    haproxy -db -f "$work/$name.cfg" >"$work/$name.log" 2>&1 &
    pid[$name]=$!
    pids+=("${pid[$name]}")
    port[$name]=$p
    wait_port "$p" "${pid[$name]}" || start_failed haproxy "${pid[$name]}" "$work/$name.log"
}

start_nginx() {   # NAME
    local name=$1 p d=$work/$1
    free_port p
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<EOF
worker_processes 1;
master_process off;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8000; }
http {
    access_log off;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    upstream ms {
        server 127.0.0.1:${port[direct]};
        keepalive 512;
        keepalive_requests 10000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$p;
        location / {
            proxy_pass http://ms;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_connect_timeout 1s;
            proxy_read_timeout 60s;
        }
    }
}
EOF
    nginx -t -q -c "$d/nginx.conf" -p "$d" >"$d/check" 2>&1 ||
        { cat "$d/check" >&2; die "nginx refused its config"; }
    nginx -c "$d/nginx.conf" -p "$d" >"$d/stdout" 2>&1 &
    pid[$name]=$!
    pids+=("${pid[$name]}")
    port[$name]=$p
    wait_port "$p" "${pid[$name]}" || start_failed nginx "${pid[$name]}" "$d/stdout" "$d/error.log"
}

start_sidecar() {   # NAME
    local name=$1 p a
    free_port p
    free_port a
    cat >"$work/$name.yaml" <<EOF
listen: 127.0.0.1:$p
admin: 127.0.0.1:$a
workers: 1
accessLog: false
routes:
  - model: $model
    versions:
      - { name: v1, weight: 100, endpoints: [127.0.0.1:${port[direct]}] }
EOF
    "$sidecar" --check --config "$work/$name.yaml" >"$work/$name.check" 2>&1 ||
        { cat "$work/$name.check" >&2; die "the sidecar refused its config"; }
    # Stopping is not measured: no need to wait out a long drain.
    "$sidecar" --config "$work/$name.yaml" --drain-timeout 1s >"$work/$name.log" 2>&1 &
    pid[$name]=$!
    pids+=("${pid[$name]}")
    port[$name]=$p
    port[$name-admin]=$a
    wait_port "$p" "${pid[$name]}" || start_failed modelgate-sidecar "${pid[$name]}" "$work/$name.log"
}

start_target() {   # haproxy|haproxy-nd|nginx|sidecar [NAME]
    for _ in 1 2 3; do
        case $1 in
            haproxy) start_haproxy "${2:-$1}" && return 0 ;;
            haproxy-nd) start_haproxy "${2:-$1}" "option http-no-delay" && return 0 ;;
            nginx) start_nginx "${2:-$1}" && return 0 ;;
            sidecar) start_sidecar "${2:-$1}" && return 0 ;;
        esac
        echo "run-sidecar: $1: its port was taken meanwhile; trying another" >&2
    done
    die "$1 could not get a port in 3 attempts"
}

sim_knobs() {   # JSON for modelsim's POST /admin/config
    local out
    out=$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:${port[direct]}/admin/config" -d "$1") ||
        die "modelsim's /admin/config did not answer"
    [ "${out##* }" = 200 ] || die "modelsim refused $1: $out"
}

# A proxy that answers wrongly would make its figures meaningless: check a
# whole reply and a stream through each before measuring anything.
check_target() {   # NAME
    local url="http://127.0.0.1:${port[$1]}/v1/chat/completions" code
    code=$(curl -s --max-time 5 -o "$work/check.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$work/body-plain.json" "$url") || true
    [ "$code" = 200 ] && grep -q '"chat.completion"' "$work/check.out" ||
        { cat "$work/check.out" >&2; die "$1: a chat completion through it failed (HTTP $code)"; }
    code=$(curl -sN --max-time 5 -o "$work/check.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary "@$work/body-stream.json" "$url") || true
    [ "$code" = 200 ] && grep -q 'data: \[DONE\]' "$work/check.out" ||
        { cat "$work/check.out" >&2; die "$1: a streamed chat completion through it failed (HTTP $code)"; }
}

# to_ms VALUE-WITH-UNIT (wrk prints 183.00us, 1.23ms, 2.01s, 1.00m)
to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        else if (u == "h") n *= 3600000; printf "%.3f", n }'
}

# CPU time a process has used: "NS UTICKS STICKS" (ns on CPU summed over its
# threads from schedstat; user and system clock ticks from stat).
cpu_of() {
    local ns=0 t v
    for t in /proc/"$1"/task/*/schedstat; do
        read -r v _ <"$t" 2>/dev/null || continue
        ns=$((ns + v))
    done
    echo "$ns $(sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }')"
}

# run_wrk TARGET KIND CONNS: sets w_rps w_p50 w_p99 w_err, and w_cpu (CPU
# microseconds the target's process spent per request) and w_user (the
# user-space share of it, %)
run_wrk() {
    local out=$work/wrk.out c0 c1 n
    c0=$(cpu_of "${pid[$1]}")
    timeout $((secs + 30)) wrk -t"$threads" -c"$3" -d"${secs}s" --latency --timeout 10s \
        -s "$work/$2.lua" "http://127.0.0.1:${port[$1]}/v1/chat/completions" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk against $1 failed"; }
    w_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    w_p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    w_p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    w_err=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } END { print n + 0 }' "$out")
    [ -n "$w_rps" ] || { cat "$out" >&2; die "no result from wrk against $1"; }
    c1=$(cpu_of "${pid[$1]}")
    n=$(awk '/ requests in / { print $1; exit }' "$out")
    read -r w_cpu w_user < <(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN {
        split(a, x, " "); split(b, y, " "); u = y[2] - x[2]; k = y[3] - x[3]
        printf "%.1f %.0f\n", (n > 0 ? (y[1] - x[1]) / 1000 / n : 0), (u + k > 0 ? 100 * u / (u + k) : 0) }')
}

jnum() { grep -o "\"$1\":[-0-9.]*" <<<"$2" | cut -d: -f2; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
t0=$(date +%s)
start_modelsim || start_modelsim || die "modelsim could not get a port"
for t in $targets; do
    [ "$t" = direct ] || start_target "$t"
done
# HAProxy out of the box sends a stream's chunks with MSG_MORE, which lets
# the kernel hold them (up to 200 ms) and bunch them; "option http-no-delay"
# is its documented cure for interactive traffic. Both are measured for
# streams: haproxy-nd is HAProxy configured for token streaming.
ttft_targets=
for t in $targets; do
    ttft_targets+="${ttft_targets:+ }$t"
    if [ "$t" = haproxy ]; then
        start_target haproxy-nd
        ttft_targets+=" haproxy-nd"
    fi
done
for t in $ttft_targets; do check_target "$t"; done
echo "run-sidecar: modelsim on ${port[direct]}; $(for t in $ttft_targets; do
    [ "$t" = direct ] || printf '%s on %s (pid %s) ' "$t" "${port[$t]}" "${pid[$t]}"; done)"

# --- throughput and latency (wrk) ------------------------------------------

declare -A R   # R[kind,conns,target,round,field]
for kind in plain stream; do
    if [ "$kind" = plain ]; then
        sim_knobs '{"ttft_ms":0,"itl_ms":0}'
    else
        sim_knobs '{"ttft_ms":50,"itl_ms":10}'
    fi
    for c in $conns_list; do
        for r in $(seq "$rounds"); do
            line="$kind c=$c round $r:"
            for t in $targets; do
                run_wrk "$t" "$kind" "$c"
                R[$kind,$c,$t,$r,rps]=$w_rps
                R[$kind,$c,$t,$r,p50]=$w_p50
                R[$kind,$c,$t,$r,p99]=$w_p99
                R[$kind,$c,$t,$r,err]=$w_err
                R[$kind,$c,$t,$r,cpu]=$w_cpu
                R[$kind,$c,$t,$r,user]=$w_user
                line+=" $t ${w_rps}/s p50 ${w_p50} p99 ${w_p99} ${w_cpu}us/req"
                [ "$w_err" = 0 ] || line+=" ($w_err errors)"
            done
            echo "$line"
        done
    done
done

# --- time to first token and token spacing (ttft) --------------------------

sim_knobs '{"ttft_ms":50,"itl_ms":10}'
for r in $(seq "$rounds"); do
    line="ttft round $r:"
    for t in $ttft_targets; do
        json=$("$ttft" --connect "127.0.0.1:${port[$t]}" --conns "$ttft_conns" \
            --duration-ms $((ttft_secs * 1000)) --timeout-ms $((ttft_secs * 1000 + 20000)) \
            --body-file "$work/body-stream.json" --json) ||
            { echo "$json" >&2; die "ttft against $t had failed requests"; }
        for f in ttft_p50_ms ttft_p99_ms gap_p50_ms gap_p99_ms gaps_under_1ms_pct events_per_request; do
            R[ttft,$t,$r,$f]=$(jnum "$f" "$json")
        done
        line+=" $t ${R[ttft,$t,$r,ttft_p50_ms]}/${R[ttft,$t,$r,ttft_p99_ms]} ms"
    done
    echo "$line"
done

# Peak memory of the long-running proxies, over every load above.
declare -A HWM
for t in $targets; do
    [ "$t" = direct ] && continue
    HWM[$t]=$(proc_kb "${pid[$t]}" VmHWM)
done

# --- memory with idle keep-alive clients -----------------------------------

sim_knobs '{"ttft_ms":0,"itl_ms":0}'
declare -A RSS0 RSSS RSSI
for t in $targets; do
    [ "$t" = direct ] && continue
    start_target "$t" "$t-idle"
    check_target "$t-idle"
    sleep 0.2
    RSS0[$t]=$(proc_kb "${pid[$t-idle]}" VmRSS)
    json=$("$ttft" --connect "127.0.0.1:${port[$t-idle]}" --conns "$idle_conns" --open-only \
        --hold-ms 500 --pid "${pid[$t-idle]}" --json) ||
        { echo "$json" >&2; die "$t: $idle_conns silent connections could not all be opened"; }
    RSSS[$t]=$(jnum rss_kb "$json")
    sleep 0.3
    json=$("$ttft" --connect "127.0.0.1:${port[$t-idle]}" --conns "$idle_conns" --requests "$idle_conns" \
        --duration-ms 0 --timeout-ms 20000 --hold-ms 1000 --pid "${pid[$t-idle]}" \
        --body-file "$work/body-plain.json" --json) ||
        { echo "$json" >&2; die "ttft --hold-ms against $t had failed requests"; }
    opened=$(jnum conns_opened "$json")
    [ "$opened" = "$idle_conns" ] || die "$t: $opened client connections opened, expected $idle_conns"
    RSSI[$t]=$(jnum rss_kb "$json")
    echo "idle $t: ${RSS0[$t]} KiB fresh, ${RSSS[$t]} KiB with $idle_conns silent connections, ${RSSI[$t]} KiB with $idle_conns idle keep-alive clients"
    stop_pid "${pid[$t-idle]}"
done

# --- syscalls per request (strace -c) --------------------------------------
# What a proxy costs per request is mostly its system calls (loopback: each
# send/recv is a trip through the kernel's TCP stack). strace slows the
# traced process a lot, so this only counts; it runs after everything timed.

declare -A SYS
if [ "${BENCH_STRACE:-1}" = 1 ] && command -v strace >/dev/null; then
    for kind in plain stream; do
        if [ "$kind" = plain ]; then
            sim_knobs '{"ttft_ms":0,"itl_ms":0}'; n=2000
        else
            sim_knobs '{"ttft_ms":50,"itl_ms":10}'; n=128
        fi
        for t in $targets; do
            [ "$t" = direct ] && continue
            # Warm: 32 client and upstream connections open before counting.
            "$ttft" --connect "127.0.0.1:${port[$t]}" --conns 32 --requests 32 --duration-ms 0 \
                --body-file "$work/body-$kind.json" >/dev/null || die "warm-up against $t failed"
            strace -c -f -q -p "${pid[$t]}" -o "$work/strace.$t.$kind" 2>"$work/strace.err" &
            st=$!
            pids+=("$st")
            sleep 0.5
            "$ttft" --connect "127.0.0.1:${port[$t]}" --conns 32 --requests "$n" --duration-ms 0 \
                --timeout-ms 60000 --body-file "$work/body-$kind.json" >/dev/null ||
                die "the strace run against $t failed"
            sleep 0.2
            stop_pid "$st"
            SYS[$t,$kind]=$(awk -v n="$n" '$4 ~ /^[0-9]+$/ && $NF != "total" { printf "%s %.2f\n", $NF, $4 / n }' \
                "$work/strace.$t.$kind" | sort -k2,2gr | head -6 | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
            SYS[$t,$kind,total]=$(awk -v n="$n" '$NF == "total" { printf "%.2f", $4 / n }' "$work/strace.$t.$kind")
            echo "syscalls $kind $t: ${SYS[$t,$kind,total]} per request (${SYS[$t,$kind]})"
        done
    done
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(( $(date +%s) - t0 ))
echo "run-sidecar: measured in ${elapsed}s"

# --- the report -------------------------------------------------------------

med() {   # KIND CONNS TARGET FIELD: median over rounds
    local r
    for r in $(seq "$rounds"); do echo "${R[$1,$2,$3,$r,$4]}"; done | median
}
med_ratio() {   # KIND CONNS TARGET FIELD BASE: median of per-round TARGET/BASE
    local r
    for r in $(seq "$rounds"); do
        awk -v a="${R[$1,$2,$3,$r,$4]}" -v b="${R[$1,$2,$5,$r,$4]}" 'BEGIN { if (b > 0) printf "%.4f\n", a / b }'
    done | median
}
sum_err() {
    local r n=0
    for r in $(seq "$rounds"); do n=$((n + ${R[$1,$2,$3,$r,err]})); done
    echo "$n"
}
med_ttft() {   # TARGET FIELD
    local r
    for r in $(seq "$rounds"); do echo "${R[ttft,$1,$r,$2]}"; done | median
}
med_added() {   # TARGET FIELD: median of per-round TARGET - direct
    local r
    for r in $(seq "$rounds"); do
        awk -v a="${R[ttft,$1,$r,$2]}" -v b="${R[ttft,direct,$r,$2]}" 'BEGIN { printf "%.3f\n", a - b }'
    done | median
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "n/a" || v == "") print "n/a"; else printf f, v }'; }

tables=
for kind in plain stream; do
    if [ "$kind" = plain ]; then
        tables+=$'\n'"Non-streaming (modelsim answers at once, 32 tokens):"$'\n\n'
    else
        tables+=$'\n'"Streaming (modelsim: 50 ms to the first token, then 10 ms per token, 32 tokens; a request lasts ~360 ms, so req/s is bound by the connections and the latency columns show what a proxy adds):"$'\n\n'
    fi
    tables+="| conns | target | req/s | p50 ms | p99 ms | req/s vs HAProxy | CPU µs/req (user) | errors | req/s per round |"$'\n'
    tables+="| --- | --- | --- | --- | --- | --- | --- | --- | --- |"$'\n'
    for c in $conns_list; do
        for t in $targets; do
            rr=
            for r in $(seq "$rounds"); do rr+="${rr:+, }${R[$kind,$c,$t,$r,rps]}"; done
            vs=n/a
            case " $targets " in *" haproxy "*) vs=$(fmt "$(med_ratio "$kind" "$c" "$t" rps haproxy)" '%.2f') ;; esac
            tables+="| $c | $t | $(fmt "$(med "$kind" "$c" "$t" rps)" '%.0f') | $(fmt "$(med "$kind" "$c" "$t" p50)" '%.3f') | $(fmt "$(med "$kind" "$c" "$t" p99)" '%.3f') | $vs | $(fmt "$(med "$kind" "$c" "$t" cpu)" '%.1f') ($(fmt "$(med "$kind" "$c" "$t" user)" '%.0f')%) | $(sum_err "$kind" "$c" "$t") | $rr |"$'\n'
        done
    done
done

ttft_table="| target | TTFT p50 ms | TTFT p99 ms | added p50 ms | added p99 ms | gap p50 ms | gap p99 ms | gaps < 1 ms | events/request |"$'\n'
ttft_table+="| --- | --- | --- | --- | --- | --- | --- | --- | --- |"$'\n'
for t in $ttft_targets; do
    if [ "$t" = direct ]; then a50=—; a99=—; else
        a50=$(fmt "$(med_added "$t" ttft_p50_ms)" '%+.3f'); a99=$(fmt "$(med_added "$t" ttft_p99_ms)" '%+.3f'); fi
    ttft_table+="| $t | $(fmt "$(med_ttft "$t" ttft_p50_ms)" '%.3f') | $(fmt "$(med_ttft "$t" ttft_p99_ms)" '%.3f') | $a50 | $a99 | $(fmt "$(med_ttft "$t" gap_p50_ms)" '%.3f') | $(fmt "$(med_ttft "$t" gap_p99_ms)" '%.3f') | $(fmt "$(med_ttft "$t" gaps_under_1ms_pct)" '%.1f')% | $(fmt "$(med_ttft "$t" events_per_request)" '%.1f') |"$'\n'
done

mem_table="| target | peak RSS over the run (VmHWM) | RSS fresh | with $idle_conns silent connections | with $idle_conns idle keep-alive clients |"$'\n'
mem_table+="| --- | --- | --- | --- | --- |"$'\n'
for t in $targets; do
    [ "$t" = direct ] && continue
    mem_table+="| $t | ${HWM[$t]} KiB | ${RSS0[$t]} KiB | ${RSSS[$t]} KiB | ${RSSI[$t]} KiB |"$'\n'
done

# The targets of issue 4, judged on this run's figures.
verdicts=
if case " $targets " in *" sidecar "*) true ;; *) false ;; esac &&
   case " $targets " in *" haproxy "*) true ;; *) false ;; esac; then
    for c in $conns_list; do
        ratio=$(med_ratio plain "$c" sidecar rps haproxy)
        sp99=$(med plain "$c" sidecar p99); hp99=$(med plain "$c" haproxy p99)
        ok=$(awk -v r="$ratio" -v s="$sp99" -v h="$hp99" 'BEGIN { print (r >= 1.0 && s <= h) ? "met" : "MISSED" }')
        verdicts+="- non-streaming, $c connections: req/s $(fmt "$ratio" '%.2f')× HAProxy's (target ≥ 1.0), p99 $(fmt "$sp99" '%.3f') ms vs HAProxy's $(fmt "$hp99" '%.3f') ms (target: no worse): **$ok**"$'\n'
    done
    a99=$(med_added sidecar ttft_p99_ms)
    ok=$(awk -v a="$a99" 'BEGIN { print (a < 1.0) ? "met" : "MISSED" }')
    verdicts+="- streaming: time to first token added over direct at p99: $(fmt "$a99" '%+.3f') ms (target < 1 ms): **$ok**"$'\n'
    g50s=$(med_ttft sidecar gap_p50_ms); g50d=$(med_ttft direct gap_p50_ms)
    bs=$(med_ttft sidecar gaps_under_1ms_pct); bd=$(med_ttft direct gaps_under_1ms_pct)
    ok=$(awk -v a="$g50s" -v b="$g50d" -v c="$bs" -v d="$bd" 'BEGIN {
        x = a - b; if (x < 0) x = -x; print (x < 1 && c <= d + 2) ? "met" : "MISSED" }')
    verdicts+="- streaming: chunk spacing preserved: gaps between events p50 $(fmt "$g50s" '%.3f') ms (direct $(fmt "$g50d" '%.3f') ms), $(fmt "$bs" '%.1f')% of gaps under 1 ms (direct $(fmt "$bd" '%.1f')%); preserved = p50 within 1 ms of direct's and at most 2 points more gaps under 1 ms: **$ok**"$'\n'
    ok=$(awk -v k="${RSSI[sidecar]}" 'BEGIN { print (k + 0 > 0 && k < 8192) ? "met" : "MISSED" }')
    verdicts+="- memory: RSS with $idle_conns idle keep-alive clients (after $idle_conns concurrent requests) ${RSSI[sidecar]} KiB, with $idle_conns silent connections ${RSSS[sidecar]} KiB (target < 8 MiB = 8192 KiB, judged on the first): **$ok**"$'\n'
fi

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
peers=
case " $targets " in *" haproxy "*) peers+="$(haproxy -v 2>&1 | awk 'NR == 1 { print "HAProxy " $3 }'), " ;; esac
case " $targets " in *" nginx "*) peers+="$(nginx -v 2>&1 | sed 's/^nginx version: //'), " ;; esac
section=$(cat <<EOF
$section_title

Measured $(date -u +%Y-%m-%dT%H:%MZ) by \`bench/run-sidecar.sh\` (modelgate $rev) on $(uname -srm),
${cpu:-unknown CPU}, $(nproc) cores, $mem; ${peers}wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}').
Load average before the run: $load_before; after: $load_after (${elapsed} s).
Reproduce: \`make bench\` or \`make tests && bench/run-sidecar.sh\`.

Setup: one modelsim (1 worker, 32 tokens per reply) behind each target;
HAProxy (\`nbthread 1\`, \`http-reuse always\`, mode http), nginx (one
process: \`master_process off\`, upstream \`keepalive\`, \`proxy_http_version
1.1\`, \`proxy_buffering off\`), the sidecar (\`workers: 1\`, \`accessLog: false\`
as the peers log nothing); "direct" is modelsim without a proxy. wrk keep-alive,
one thread, a ${body_bytes}-byte chat-completion POST (Lua script), ${secs} s per run:

    wrk -t$threads -c\$CONNS -d${secs}s --latency -s post.lua http://127.0.0.1:PORT/v1/chat/completions

For each load and connection count the targets ran alternately (direct,
haproxy, nginx, sidecar) in $rounds rounds; figures are medians over the
rounds, "vs HAProxy" is the median of the per-round ratios. "CPU µs/req" is
the CPU time the target's process used during the run (all its threads,
from /proc/PID/task/*/schedstat) over the requests wrk completed, with the
user-space share from /proc/PID/stat; for direct it is modelsim's own cost.
$tables
Time to first token and token spacing of streams as a client sees them
(\`build/bench/ttft\`, $ttft_conns keep-alive connections, ${ttft_secs} s per run, the
same alternating rounds): TTFT is the time from sending the request to the
first body byte (modelsim sends its head with the first token); "added" is
the median over rounds of (target − direct) in the same round; gaps are the
times between the arrival of consecutive SSE events (modelsim spaces tokens
10 ms apart; a proxy that bunches them shows gaps under 1 ms; direct has a
few, where modelsim sends two events at once). haproxy-nd is
the same HAProxy with \`option http-no-delay\`: out of the box HAProxy sends
a response's chunks with MSG_MORE while more is expected, so the kernel
holds them (up to its 200 ms cork timeout) and they arrive bunched:

$ttft_table
Memory: the peak over every load above (VmHWM of the long-running
process); then a fresh process of each proxy: idle, with $idle_conns client
connections open that have sent nothing, and with $idle_conns keep-alive
client connections idle after one request each (all $idle_conns in flight
at once, so the proxy also opened and pooled $idle_conns upstream
connections):

$mem_table
EOF
)
if [ -n "${SYS[haproxy,plain,total]-}${SYS[nginx,plain,total]-}${SYS[sidecar,plain,total]-}" ]; then
    sys_table="| target | non-streaming: syscalls per request | streaming: syscalls per request (34 SSE events each) |"$'\n'
    sys_table+="| --- | --- | --- |"$'\n'
    for t in $targets; do
        [ "$t" = direct ] && continue
        sys_table+="| $t | ${SYS[$t,plain,total]-n/a}: ${SYS[$t,plain]-} | ${SYS[$t,stream,total]-n/a}: ${SYS[$t,stream]-} |"$'\n'
    done
    section+=$'\n\n'"System calls per request in the proxy (\`strace -c -f\` attached after warm-up, 2000
non-streaming and 128 streamed requests over 32 keep-alive connections; the
six most frequent calls):"$'\n\n'"$sys_table"
fi
if [ -n "$verdicts" ]; then
    section+=$'\n\n'"Targets (issue 4), on this run:"$'\n\n'"$verdicts"
fi
section+=$'\n\n'"The machine is shared with other work (see the load averages), so
absolute figures are noisy and differ from run to run; the comparisons hold
within rounds. Figures for a quiet machine come from a re-run."

if [ "$full" != 1 ] && [ -z "${BENCH_RESULTS-}" ]; then
    echo "$section"
    echo "run-sidecar: a trial with BENCH_TARGETS=\"$targets\": bench/RESULTS.md left alone"
    exit 0
fi

touch "$results"
awk -v sec="$section" -v title="$section_title" '
    BEGIN { skip = 0; done = 0 }
    /^## / {
        if ($0 == title) { skip = 1; if (!done) { print sec; print ""; done = 1 }; next }
        skip = 0
    }
    !skip { print }
    END { if (!done) { print ""; print sec } }
' "$results" >"$work/RESULTS.md"
cp "$work/RESULTS.md" "$results"
echo "run-sidecar: wrote the sidecar section of $results"
