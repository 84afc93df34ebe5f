#!/usr/bin/env bash
# `make demo`: a canary behind the sidecar, on loopback. Two versions of one
# model (modelsim: v1, and v2 slower to its first token and a little
# flaky), modelgate-sidecar splitting requests 90/10 between them, ~20 s of
# streaming load, then what the sidecar measured per version, read from its
# /metrics: the figures a canary analysis judges a new version by.
# Everything it starts is stopped by PID on exit, Ctrl-C included.
#
#   mk/demo.sh        (make demo builds first)
#   DEMO_SECONDS=20 DEMO_CONNS=16
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
sim=$build/bin/modelsim
sidecar=$build/bin/modelgate-sidecar
load=$build/bench/ttft
secs=${DEMO_SECONDS:-20}
conns=${DEMO_CONNS:-16}
model=llama-3-8b-instruct

die() { echo "demo: $*" >&2; exit 1; }
[ -x "$sim" ] || die "$sim is not built (run make)"
[ -x "$sidecar" ] || die "$sidecar is not built (run make)"
command -v curl >/dev/null || die "curl not found (mk/deps.sh test installs it)"
# The load generator is bench/ttft (lib/httpc, keep-alive, per-request
# timing); `make` alone does not build benches.
if [ ! -x "$load" ]; then
    make --no-print-directory "$load" >/dev/null || die "cannot build $load"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mg-demo.XXXXXX")
pids=()
cleanup() {
    local p
    for p in "${pids[@]-}"; do
        [ -n "$p" ] || continue
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, stopping what it started"; exit 130' INT TERM

used_ports=
free_port() {   # VAR
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
wait_http() {   # URL PID LOG
    for _ in $(seq 100); do
        curl -sf --max-time 1 -o /dev/null "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    cat "$3" >&2
    die "$1 did not come up"
}

# Two versions of the model. v2 is the canary: slower to its first token,
# and it fails 5% of its requests. (No jitter: modelsim draws it from the
# prompt, and the load repeats one prompt.)
free_port p1; free_port p2; free_port pdata; free_port padmin
"$sim" --listen "127.0.0.1:$p1" --model "$model" --version v1 --ttft-ms 80 --itl-ms 20 \
    --tokens 24 --seed 1 --log-level warn >"$work/v1.log" 2>&1 &
pids+=($!); pid_v1=$!
"$sim" --listen "127.0.0.1:$p2" --model "$model" --version v2 --ttft-ms 250 --itl-ms 20 \
    --tokens 24 --error-rate 0.05 --error-status 500 --seed 2 \
    --log-level warn >"$work/v2.log" 2>&1 &
pids+=($!); pid_v2=$!
wait_http "http://127.0.0.1:$p1/health" "$pid_v1" "$work/v1.log"
wait_http "http://127.0.0.1:$p2/health" "$pid_v2" "$work/v2.log"

cat >"$work/routes.yaml" <<EOF
listen: 127.0.0.1:$pdata
admin: 127.0.0.1:$padmin
workers: 1
accessLog: false
routes:
  - model: $model
    versions:
      - { name: v1, weight: 90, endpoints: [127.0.0.1:$p1] }
      - { name: v2, weight: 10, endpoints: [127.0.0.1:$p2] }
EOF
"$sidecar" --check --config "$work/routes.yaml" >"$work/check.log" 2>&1 ||
    { cat "$work/check.log" >&2; die "the sidecar refused the demo's route table"; }
"$sidecar" --config "$work/routes.yaml" >"$work/sidecar.log" 2>&1 &
pids+=($!); pid_sc=$!
wait_http "http://127.0.0.1:$padmin/readyz" "$pid_sc" "$work/sidecar.log"
url=http://127.0.0.1:$pdata
admin=http://127.0.0.1:$padmin

echo "modelgate demo: a canary release of $model behind the sidecar"
echo
echo "  v1  modelsim (pid $pid_v1) on :$p1   80 ms to the first token, 20 ms per token"
echo "  v2  modelsim (pid $pid_v2) on :$p2 250 ms to the first token, 20 ms per token, 5% errors"
echo "  modelgate-sidecar (pid $pid_sc) on $url sends 90% of requests to v1, 10% to v2;"
echo "  its metrics are on $admin/metrics. The route table:"
echo
sed 's/^/    /' "$work/routes.yaml"
echo
echo "== one streamed chat completion through the sidecar, printed as the tokens arrive:"
body='{"model":"'$model'","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'
curl -sN --max-time 10 -D "$work/head" "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "$body" | sed -un 's/.*"content":"\([^"]*\)".*/\1/p' |
    while IFS= read -r tok; do printf '%s' "$tok"; done
echo
served=$(awk -F': *' 'tolower($1) == "x-modelgate-version" { sub(/\r$/, "", $2); print $2 }' "$work/head")
rid=$(awk -F': *' 'tolower($1) == "x-request-id" { sub(/\r$/, "", $2); print $2 }' "$work/head")
echo "   (served by ${served:-?}: the response says so in x-modelgate-version; x-request-id ${rid:-?})"
echo

# --- load -------------------------------------------------------------------

printf '%s' '{"model":"'$model'","stream":true,"messages":[{"role":"user","content":"Write a haiku about canary releases."}]}' \
    >"$work/body.json"
echo "== streaming load: $conns keep-alive connections for $secs s (bench/ttft)"
"$load" --connect "127.0.0.1:$pdata" --conns "$conns" --duration-ms $((secs * 1000)) \
    --timeout-ms $((secs * 1000 + 15000)) --body-file "$work/body.json" \
    --by-header x-modelgate-version >"$work/load.out" 2>"$work/load.err" &
pid_load=$!
pids+=("$pid_load")

# requests per version so far, from modelgate_requests_total
requests_by_version() {
    curl -s --max-time 2 "$admin/metrics" | awk '
        /^modelgate_requests_total\{/ {
            v = $0; sub(/.*version="/, "", v); sub(/".*/, "", v)
            n[v] += $NF
        }
        END { for (v in n) printf "%s %d\n", v, n[v] }' | sort | paste -sd, - | sed 's/,/, /g'
}
t=0
while kill -0 "$pid_load" 2>/dev/null; do
    sleep 1
    t=$((t + 1))
    if [ $((t % 5)) = 0 ] && [ "$t" -le "$secs" ]; then
        echo "   ${t} s: $(requests_by_version)"
    fi
done
wait "$pid_load" 2>/dev/null || true   # non-2xx answers (v2's errors) are expected

# --- what the sidecar saw ----------------------------------------------------

curl -s --max-time 5 "$admin/metrics" >"$work/metrics.txt" || die "cannot read $admin/metrics"
echo
echo "== per version, from the sidecar's /metrics:"
echo
# Requests and errors from modelgate_requests_total{model,version,code};
# TTFT quantiles from the modelgate_time_to_first_token_seconds histogram,
# interpolated linearly inside the bucket that holds the rank, as
# Prometheus' histogram_quantile() does.
awk -v model="$model" '
    function label(line, name,    i, s) {   # plain string search: mawk and gawk alike
        i = index(line, "{" name "=\"")
        if (!i) i = index(line, "," name "=\"")
        if (!i) return ""
        s = substr(line, i + length(name) + 3)
        return substr(s, 1, index(s, "\"") - 1)
    }
    function quantile(v, q,    i, j, n, k, keys, les, rank, lo, hi, clo, chi, tmp) {
        n = 0
        for (k in bucket) {
            split(k, keys, SUBSEP)
            if (keys[1] != v) continue
            les[++n] = keys[2]
        }
        if (n == 0) return -1
        for (i = 2; i <= n; i++)   # insertion sort by bound, +Inf last
            for (j = i; j > 1 && bound(les[j - 1]) > bound(les[j]); j--) {
                tmp = les[j]; les[j] = les[j - 1]; les[j - 1] = tmp
            }
        total = bucket[v, les[n]]
        if (total == 0) return -1
        rank = q * total
        lo = 0; clo = 0
        for (i = 1; i <= n; i++) {
            hi = bound(les[i]); chi = bucket[v, les[i]]
            if (chi >= rank) {
                if (les[i] == "+Inf") return lo   # the highest finite bound
                if (chi == clo) return hi
                return lo + (hi - lo) * (rank - clo) / (chi - clo)
            }
            lo = hi; clo = chi
        }
        return lo
    }
    function bound(le) { return le == "+Inf" ? 1e300 : le + 0 }
    function ms(x) { return x < 0 ? "n/a" : sprintf("%.0f ms", x * 1000) }
    label($0, "model") != model && /^modelgate_/ { next }
    /^modelgate_requests_total\{/ {
        v = label($0, "version"); c = label($0, "code")
        req[v] += $NF
        if (c !~ /^2/) err[v] += $NF
        seen[v] = 1
    }
    /^modelgate_time_to_first_token_seconds_bucket\{/ {
        v = label($0, "version"); le = label($0, "le")
        bucket[v, le] += $NF
        seen[v] = 1
    }
    END {
        for (v in req) all += req[v]
        printf "  %-8s %9s %7s %8s %10s %10s\n", "version", "requests", "share", "errors", "TTFT p50", "TTFT p99"
        nv = 0
        for (v in seen) names[++nv] = v
        for (i = 2; i <= nv; i++)
            for (j = i; j > 1 && names[j - 1] > names[j]; j--) { t = names[j]; names[j] = names[j - 1]; names[j - 1] = t }
        for (i = 1; i <= nv; i++) {
            v = names[i]
            printf "  %-8s %9d %6.1f%% %8d %10s %10s\n", v, req[v], all ? 100 * req[v] / all : 0,
                err[v], ms(quantile(v, 0.50)), ms(quantile(v, 0.99))
        }
        if (nv == 0) print "  (no modelgate_ metrics for " model ": did the load reach the sidecar?)"
    }' "$work/metrics.txt"
echo
echo "  requests and errors: modelgate_requests_total{version,code} (errors: non-2xx answers);"
buckets=$(sed -n 's/^modelgate_time_to_first_token_seconds_bucket{.*le="\([^"]*\)".*/\1/p' \
    "$work/metrics.txt" | awk '!seen[$0]++' | paste -sd' ' -)
echo "  TTFT: modelgate_time_to_first_token_seconds{model,version}; each quantile is interpolated"
echo "  inside its bucket, as Prometheus' histogram_quantile() does, so it is only as fine as the"
echo "  buckets (upper bounds, s: ${buckets:-?})."
echo "  The client's own measurement follows."
echo
echo "== the load generator's view (bench/ttft: time from sending to the first byte, per version):"
sed 's/^/  /' "$work/load.out"
[ -s "$work/load.err" ] && sed 's/^/  /' "$work/load.err"
echo
echo "v2 is slower to its first token and fails some requests: the figures a canary analysis"
echo "(errorRate, ttftRatioToStable in a ModelDeployment) judges a new version by."
