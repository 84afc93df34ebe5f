#!/usr/bin/env bash
# What the sidecar's resilience policies cost: requests per second with
# every policy on (retries with a budget, circuit breakers with concurrency
# limits, rate limits per route and per API key with tokensPerMinute, a
# fallback chain, load-aware admission polling the backend's /metrics),
# all with limits generous enough that none ever triggers, against the
# same sidecar with none, both in front of the same modelsim.
#
# One modelsim (1 worker, 32 tokens per reply, no delays). Two sidecars
# (workers 1, access log off), started once: "none" (the bare route) and
# "policies" (every policy). Loads (wrk keep-alive, one thread, a ~1 KB
# chat-completion POST with an Authorization header), non-streaming and
# streaming (modelsim then streams its 32 tokens at once), each at
# BENCH_CONNS connections. For every load the two run alternately,
# BENCH_ROUNDS times, "none" and "policies" swapping places each round;
# figures are medians over rounds, and the ratio is the median of the
# per-round ratios policies / none (a round's runs are seconds apart, so
# they share the machine's load; short runs and many rounds because the
# machine is shared and its load moves within seconds). Any non-2xx answer in a run is reported:
# with generous limits there must be none.
#
# Rewrites the "## sidecar policies: cost" section of bench/RESULTS.md and
# leaves the other sections alone. Every process it starts is ended by
# PID; configs live in a temporary directory.
#
#   bench/run-sidecar-policies.sh        (make bench runs it after building)
#   BENCH_SECONDS=2 BENCH_ROUNDS=9 BENCH_CONNS=32 BENCH_THREADS=1
#   BENCH_RESULTS=FILE                   (write the section there instead)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

secs=${BENCH_SECONDS:-2}
rounds=${BENCH_ROUNDS:-9}
conns=${BENCH_CONNS:-32}
threads=${BENCH_THREADS:-1}
results=${BENCH_RESULTS:-$top/bench/RESULTS.md}
sim=$top/build/bin/modelsim
sidecar=$top/build/bin/modelgate-sidecar
model=llama-3-8b-instruct
section_title="## sidecar policies: cost"

die() { echo "run-sidecar-policies: $*" >&2; exit 1; }

for t in wrk curl; do
    command -v "$t" >/dev/null || die "$t not found (mk/deps.sh bench installs it)"
done
[ -x "$sim" ] || die "$sim not built (make)"
[ -x "$sidecar" ] || die "$sidecar not built (make)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mg-bench-policies.XXXXXX")
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
        fp=$((10000 + RANDOM % 22000))   # below the ephemeral range (32768+)
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
wrk.headers["Authorization"] = "Bearer bench-key-0001"
EOF
done

# --- the processes ---------------------------------------------------------

declare -A port pid
start_modelsim() {
    free_port 'port[sim]'
    "$sim" --listen "127.0.0.1:${port[sim]}" --workers 1 --model "$model" --model "${model}-alt" \
        --tokens 32 --seed 1 --log-level warn >"$work/modelsim.log" 2>&1 &
    pid[sim]=$!
    pids+=("${pid[sim]}")
    wait_port "${port[sim]}" "${pid[sim]}" || { cat "$work/modelsim.log" >&2; die "modelsim did not start"; }
}

# The policies: every key of issue 5, at limits this load never reaches
# (wrk does far fewer than 10^6 requests per second; admission's
# thresholds are far above what an unqueued modelsim reports).
policies() {
    cat <<EOF
    retries: { attempts: 2, on: [connect-failure, reset, 503], perTryTimeout: 10s, backoff: { base: 25ms, max: 250ms }, budgetPercent: 20, minRetries: 10 }
    circuitBreaker: { consecutiveFailures: 5, failureRate: 0.5, window: 10s, minRequests: 20, openDuration: 5s, maxOpenDuration: 60s, halfOpenRequests: 2, maxEjectionPercent: 50, maxConcurrent: 100000, maxPending: 1000, pendingTimeout: 1s }
    rateLimit: { requestsPerSecond: 1000000, burst: 1000000, tokensPerMinute: 1000000000, perKey: { requestsPerSecond: 1000000, burst: 1000000 }, defaultMaxTokens: 256 }
    fallback: [ { version: v2 }, { model: ${model}-alt }, { static: { status: 503, message: "busy, retry later" } } ]
    admission: { interval: 100ms, staleAfter: 5s, maxWaiting: 1000, maxKvCacheUsage: 0.99, priorityHeader: x-priority, sheddable: [low] }
EOF
}

start_sidecar() {   # NAME WITH_POLICIES(0|1)
    local name=$1 with=$2 p a attempt
    for attempt in 1 2 3; do
        free_port p
        free_port a
        {
            cat <<EOF
listen: 127.0.0.1:$p
admin: 127.0.0.1:$a
workers: 1
accessLog: false
routes:
  - model: $model
    versions:
      - { name: v1, weight: 100, endpoints: [127.0.0.1:${port[sim]}] }
EOF
            if [ "$with" = 1 ]; then
                echo "      - { name: v2, weight: 0, endpoints: [127.0.0.1:${port[sim]}] }"
                policies
                cat <<EOF
  - model: ${model}-alt
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:${port[sim]}] }
EOF
            fi
        } >"$work/$name.yaml"
        "$sidecar" --check --config "$work/$name.yaml" >"$work/$name.check" 2>&1 ||
            { cat "$work/$name.check" >&2; die "the sidecar refused its config"; }
        if grep -q 'not enforced' "$work/$name.check"; then
            cat "$work/$name.check" >&2
            die "this sidecar does not enforce every policy yet: nothing to measure"
        fi
        "$sidecar" --config "$work/$name.yaml" >"$work/$name.log" 2>&1 &
        pid[$name]=$!
        pids+=("${pid[$name]}")
        port[$name]=$p
        port[$name-admin]=$a
        wait_port "$p" "${pid[$name]}" && return 0
        stop_pid "${pid[$name]}"
        grep -qi 'address already in use\|address in use' "$work/$name.log" || { cat "$work/$name.log" >&2; die "$name did not start"; }
    done
    die "$name could not get a port in 3 attempts"
}

check_target() {   # NAME
    local url="http://127.0.0.1:${port[$1]}/v1/chat/completions" code
    code=$(curl -s --max-time 5 -o "$work/check.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-key-0001' --data-binary "@$work/body-plain.json" "$url") || true
    [ "$code" = 200 ] && grep -q '"chat.completion"' "$work/check.out" ||
        { cat "$work/check.out" >&2; die "$1: a chat completion through it failed (HTTP $code)"; }
    code=$(curl -sN --max-time 5 -o "$work/check.out" -w '%{http_code}' -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer bench-key-0001' --data-binary "@$work/body-stream.json" "$url") || true
    [ "$code" = 200 ] && grep -q 'data: \[DONE\]' "$work/check.out" ||
        { cat "$work/check.out" >&2; die "$1: a streamed chat completion through it failed (HTTP $code)"; }
}

to_ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# run_wrk NAME KIND: one run; sets w_rps w_p50 w_p99 w_err
run_wrk() {
    local name=$1 kind=$2 out=$work/wrk.out
    wrk -t"$threads" -c"$conns" -d"${secs}s" --latency -s "$work/$kind.lua" \
        "http://127.0.0.1:${port[$name]}/v1/chat/completions" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed against $name"; }
    w_rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    w_p50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
    w_p99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
    w_err=$(awk '/Non-2xx or 3xx responses:/ { n += $NF } /Socket errors:/ { for (i = 4; i <= NF; i += 2) n += $i + 0 } END { print n + 0 }' "$out")
}

start_modelsim
start_sidecar none 0
start_sidecar policies 1
for t in none policies; do check_target "$t"; done

# Warm-up: connections, pools, the admission poller's first scrapes.
for t in none policies; do
    wrk -t1 -c"$conns" -d1s -s "$work/plain.lua" "http://127.0.0.1:${port[$t]}/v1/chat/completions" >/dev/null 2>&1 || true
done

declare -A RPS P50 P99 ERR
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for kind in plain stream; do
    for r in $(seq "$rounds"); do
        order="none policies"
        [ $((r % 2)) = 0 ] && order="policies none"
        for t in $order; do
            run_wrk "$t" "$kind"
            RPS[$t,$kind]+="$w_rps "
            P50[$t,$kind]+="$w_p50 "
            P99[$t,$kind]+="$w_p99 "
            ERR[$t,$kind]=$(( ${ERR[$t,$kind]:-0} + w_err ))
            echo "run-sidecar-policies: $kind round $r $t: $w_rps req/s, p50 $w_p50 ms, p99 $w_p99 ms, non-2xx/errors $w_err" >&2
        done
    done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# Per-round ratios policies / none.
declare -A RATIO RATIOS
for kind in plain stream; do
    read -r -a a <<<"${RPS[none,$kind]}"
    read -r -a b <<<"${RPS[policies,$kind]}"
    RATIOS[$kind]=$(for i in "${!a[@]}"; do awk -v x="${b[$i]}" -v y="${a[$i]}" 'BEGIN { if (y > 0) printf "%.2f\n", x / y }'; done | tr '\n' ' ')
    RATIO[$kind]=$(for i in "${!a[@]}"; do awk -v x="${b[$i]}" -v y="${a[$i]}" 'BEGIN { if (y > 0) printf "%.3f\n", x / y }'; done | median)
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }

table="| load | target | req/s (median) | p50 ms | p99 ms | non-2xx + socket errors | req/s per round |"$'\n'
table+="| --- | --- | --- | --- | --- | --- | --- |"$'\n'
verdicts=
for kind in plain stream; do
    label="non-streaming"; [ "$kind" = stream ] && label="streaming (32 SSE events)"
    for t in none policies; do
        table+="| $label | $t | $(med "${RPS[$t,$kind]}") | $(med "${P50[$t,$kind]}") | $(med "${P99[$t,$kind]}") | ${ERR[$t,$kind]} | ${RPS[$t,$kind]% } |"$'\n'
    done
    verdict=met
    awk -v r="${RATIO[$kind]}" 'BEGIN { exit !(r >= 0.9) }' || verdict="NOT met"
    verdicts+="- $label: policies / none = ${RATIO[$kind]} (median of the per-round ratios ${RATIOS[$kind]% }); target >= 0.9: $verdict"$'\n'
done
# The policies were in force and never triggered: their counters, summed
# over labels, from the policies sidecar's /metrics.
curl -s --max-time 5 "http://127.0.0.1:${port[policies-admin]}/metrics" >"$work/metrics.txt" || true
msum() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF; f = 1 } END { if (f) print s + 0; else print "absent" }' "$work/metrics.txt"; }
counters=""
for m in modelgate_retries_total modelgate_fallbacks_total modelgate_rate_limited_total modelgate_shed_total modelgate_breaker_transitions_total; do
    counters+="\`$m\` $(msum "$m"), "
done
counters=${counters%, }
hwm_none=$(proc_kb "${pid[none]}" VmHWM)
hwm_pol=$(proc_kb "${pid[policies]}" VmHWM)

section=$(cat <<EOF
$section_title

Requests per second of the sidecar with every resilience policy of issue 5
on (retries with a 20 % budget, circuit breakers with maxConcurrent and
maxPending, rateLimit per route and per API key with tokensPerMinute, a
three-step fallback chain, admission polling modelsim's /metrics every
100 ms), all with limits this load never reaches, against the same sidecar
with none. Both are workers: 1, access log off, in front of the same
modelsim (1 worker, 32 tokens per reply, no delays). wrk, $threads thread,
$conns keep-alive connections, ${secs} s per run, a ~1 KB chat completion
with an Authorization header; $rounds rounds, the two alternating (order
swapped each round); medians over rounds. Run on $(date -u +%Y-%m-%d), load average
$load0 before and $load1 after (2 cores shared with other work).

$table
Peak memory (VmHWM) over the whole run: none $hwm_none KiB, policies $hwm_pol KiB.
The policies sidecar's counters after the run (absent or 0: no policy triggered; a labelled counter appears with its first event):
$counters.

Target (issue 5): req/s with every policy on at least 0.9 x req/s with
none, same run:

$verdicts
Produced by \`bench/run-sidecar-policies.sh\`. The machine is shared, so
absolute figures move between runs; the ratio is taken within rounds.
EOF
)

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
echo "$section"
echo "run-sidecar-policies: wrote its section of $results"
