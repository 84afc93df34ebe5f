#!/usr/bin/env bash
# modelsim vs nginx: modelsim must never be what limits a benchmark.
#
# Side by side on this machine, with the same worker count (1, then 2):
#   - nginx answers `return 200 '<the JSON body modelsim sends>'` with the
#     same Content-Type, so both send the same bytes;
#   - modelsim (no delays) answers POST /v1/chat/completions, parsing the
#     request JSON and building the reply each time;
#   - wrk, keep-alive, the same threads, connections, duration and POST body
#     (a Lua script) against each, back to back, BENCH_ROUNDS rounds; the
#     ratio is the median of the rounds' ratios (each round's pair ran under
#     the same conditions on a machine that may be shared).
# Then the memory cost of streams: modelsim's RSS with 2000 open streams
# (tests/tools/ms-streams holds them open, slow inter-token latency).
#
# Rewrites the "## modelsim vs nginx" section of bench/RESULTS.md and leaves
# the other sections alone. Every process it starts is ended by PID.
#
#   bench/run-modelsim.sh            (make bench runs it after building)
#   BENCH_SECONDS=10 BENCH_ROUNDS=2 BENCH_CONNS=64 BENCH_THREADS=2 BENCH_STREAMS=2000
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

secs=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNS:-64}
threads=${BENCH_THREADS:-2}
nstreams=${BENCH_STREAMS:-2000}
sim=$top/build/bin/modelsim
streams_tool=$top/build/tests/bin/ms-streams
results=$top/bench/RESULTS.md

for t in wrk nginx curl; do
    command -v "$t" >/dev/null || { echo "run-modelsim: $t not found (mk/deps.sh bench installs it)" >&2; exit 1; }
done
[ -x "$sim" ] || { echo "run-modelsim: $sim not built (make)" >&2; exit 1; }
[ -x "$streams_tool" ] || { echo "run-modelsim: $streams_tool not built (make tests)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/mg-bench-modelsim.XXXXXX")
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

free_port() {
    local p
    for _ in $(seq 100); do
        p=$((10000 + RANDOM % 22000))   # below the ephemeral range (32768+)
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
stop_pid() {
    local p=$1
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

req='{"model":"llama-3-8b-instruct","messages":[{"role":"user","content":"Say hello to the benchmark."}],"max_tokens":16}'
cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$req'
wrk.headers["Content-Type"] = "application/json"
EOF

# wrk_rps URL: requests per second from one wrk run.
wrk_rps() {
    timeout $((secs + 30)) wrk -t"$threads" -c"$conns" -d"${secs}s" -s "$work/post.lua" "$1" >"$work/wrk.out" 2>&1
    if grep -q 'Non-2xx' "$work/wrk.out"; then
        echo "run-modelsim: non-2xx answers from $1:" >&2
        cat "$work/wrk.out" >&2
        return 1
    fi
    awk '/^Requests\/sec:/ {print $2}' "$work/wrk.out"
}

start_modelsim() {   # PORT WORKERS ARGS...
    local port=$1 workers=$2; shift 2
    "$sim" --listen "127.0.0.1:$port" --workers "$workers" --model llama-3-8b-instruct \
        --tokens 16 --seed 1 --log-level warn "$@" >"$work/modelsim.log" 2>&1 &
    sim_pid=$!
    pids+=("$sim_pid")
    wait_port "$port" || { echo "run-modelsim: modelsim did not start" >&2; cat "$work/modelsim.log" >&2; return 1; }
}

start_nginx() {   # PORT WORKERS BODYFILE
    local port=$1 workers=$2 body
    body=$(tr -d '\n' <"$3")
    case "$body" in *"'"*|*'\'*|*'$'*) echo "run-modelsim: body not quotable for nginx" >&2; return 1 ;; esac
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<EOF
worker_processes $workers;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type application/json;
            return 200 '$body\n';
        }
    }
}
EOF
    nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" >"$work/nginx.log" 2>&1 &
    nginx_pid=$!
    pids+=("$nginx_pid")
    wait_port "$port" || { echo "run-modelsim: nginx did not start" >&2; cat "$work/nginx.log" "$work/nginx/error.log" >&2; return 1; }
}

# Other work on the machine lowers both figures; alternating rounds keep
# the ratio fair, and the load is recorded with the results.
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A rps_sim rps_ngx ratio rounds_txt
for workers in 1 2; do
    sport=$(free_port); start_modelsim "$sport" "$workers"
    curl -s --max-time 5 "http://127.0.0.1:$sport/v1/chat/completions" -H 'Content-Type: application/json' \
        -d "$req" >"$work/body.json"
    nport=$(free_port); start_nginx "$nport" "$workers" "$work/body.json"
    slen=$(curl -s -o /dev/null -w '%{size_download}' -X POST -H 'Content-Type: application/json' -d "$req" "http://127.0.0.1:$sport/v1/chat/completions")
    nlen=$(curl -s -o /dev/null -w '%{size_download}' -X POST -H 'Content-Type: application/json' -d "$req" "http://127.0.0.1:$nport/v1/chat/completions")
    [ "$slen" = "$nlen" ] || { echo "run-modelsim: body sizes differ: modelsim $slen, nginx $nlen" >&2; exit 1; }
    bodylen=$slen
    best_s=0 best_n=0 ratios= txt=
    for r in $(seq "$rounds"); do
        n=$(wrk_rps "http://127.0.0.1:$nport/v1/chat/completions")
        s=$(wrk_rps "http://127.0.0.1:$sport/v1/chat/completions")
        echo "workers $workers round $r: nginx $n req/s, modelsim $s req/s"
        best_n=$(awk -v a="$best_n" -v b="$n" 'BEGIN { print (b > a) ? b : a }')
        best_s=$(awk -v a="$best_s" -v b="$s" 'BEGIN { print (b > a) ? b : a }')
        ratios+="$(awk -v s="$s" -v n="$n" 'BEGIN { printf "%.3f", s / n }') "
        txt+="${txt:+, }$(printf '%.0f/%.0f' "$n" "$s")"
    done
    rps_ngx[$workers]=$best_n
    rps_sim[$workers]=$best_s
    ratio[$workers]=$(tr ' ' '\n' <<<"$ratios" | grep . | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    rounds_txt[$workers]=$txt
    stop_pid "$nginx_pid"
    stop_pid "$sim_pid"
done

# Streams: RSS with N open streams, one worker, a token a second.
sport=$(free_port)
start_modelsim "$sport" 1 --itl-ms 1000 --tokens 100000 --max-model-len 1000000
stream_json=$("$streams_tool" --connect "127.0.0.1:$sport" --streams "$nstreams" --hold-ms 3000 \
    --timeout-ms 60000 --pid "$sim_pid" --model llama-3-8b-instruct)
echo "streams: $stream_json"
stop_pid "$sim_pid"
jnum() { grep -o "\"$1\":[-0-9.]*" <<<"$stream_json" | cut -d: -f2; }
rss_before=$(jnum rss_kb_before)
rss_open=$(jnum rss_kb_open)
rss_held=$(jnum rss_kb_held)
opened=$(jnum first_data)
per_stream=$(awk -v a="$rss_held" -v b="$rss_before" -v n="$opened" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "n/a" }')

ratio1=${ratio[1]}
ratio2=${ratio[2]}
echo "1 worker : nginx ${rps_ngx[1]} req/s, modelsim ${rps_sim[1]} req/s, ratio $ratio1"
echo "2 workers: nginx ${rps_ngx[2]} req/s, modelsim ${rps_sim[2]} req/s, ratio $ratio2"
echo "RSS at $opened open streams: ${rss_held} KiB (idle ${rss_before} KiB, $per_stream KiB per stream)"

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
section=$(cat <<EOF
## modelsim vs nginx

Measured $(date -u +%Y-%m-%d) by \`bench/run-modelsim.sh\` on $(uname -srm), ${cpu:-unknown CPU},
$(nproc) cores, $mem; $(nginx -v 2>&1 | sed 's/^nginx version: //'), wrk $(wrk -v 2>&1 | awk 'NR == 1 {print $2}');
load average before the run: $load_before. Reproduce: \`make bench\` or \`bench/run-modelsim.sh\`.

Non-streaming chat completions: modelsim (no delays, 16 tokens) parses each
request and builds each reply; nginx answers \`return 200\` with the same
${bodylen}-byte JSON body and Content-Type. wrk keep-alive, same POST body
for both (Lua script), nginx then modelsim in each of $rounds rounds; req/s
are the best round of each, the ratio is the median of the rounds' ratios
(both in a round ran under the same load):

    wrk -t$threads -c$conns -d${secs}s -s post.lua http://127.0.0.1:PORT/v1/chat/completions

| workers | nginx req/s | modelsim req/s | modelsim / nginx | rounds (nginx/modelsim) |
| --- | --- | --- | --- | --- |
| 1 | ${rps_ngx[1]} | ${rps_sim[1]} | $ratio1 | ${rounds_txt[1]} |
| 2 | ${rps_ngx[2]} | ${rps_sim[2]} | $ratio2 | ${rounds_txt[2]} |

Open streams (1 worker, \`--itl-ms 1000\`, \`tests/tools/ms-streams --streams $nstreams\`):
modelsim's RSS is ${rss_held} KiB with $opened streams open and flowing
(${rss_open} KiB when the last one got its first token, ${rss_before} KiB
idle): about $per_stream KiB per stream, server connection buffers included.
EOF
)

# Replace our section (from its heading to the next "## " heading), keep the rest.
touch "$results"
awk -v sec="$section" '
    BEGIN { skip = 0; done = 0 }
    /^## / {
        if ($0 == "## modelsim vs nginx") { skip = 1; if (!done) { print sec; print ""; done = 1 }; next }
        skip = 0
    }
    !skip { print }
    END { if (!done) { print ""; print sec } }
' "$results" >"$work/RESULTS.md"
if ! grep -q '^# ' "$work/RESULTS.md"; then
    { echo "# Benchmark results"; echo; echo "Each section is rewritten by its driver in bench/ (make bench)."; echo; cat "$work/RESULTS.md"; } >"$work/R2.md"
    mv "$work/R2.md" "$work/RESULTS.md"
fi
cp "$work/RESULTS.md" "$results"
echo "run-modelsim: wrote the modelsim section of $results"
