#!/usr/bin/env bash
# modelgate-apiserver under load: create 10,000 objects, list them, deliver
# one write to 100 watchers; the server's memory and disk along the way.
#
# For each connection count C (1, then 16), on a fresh data directory:
#   1. create: BENCH_AS_COUNT ConfigMaps (a 200-byte data value each) in one
#      namespace, C requests in flight on C keep-alive connections
#      (build/bench/apiserver_load create); every one must be answered 201
#      with its object, and every resourceVersion must differ;
#   2. the peer, in the same run: there is no kube-apiserver here, so the
#      floor is sqlite itself: as many single-row INSERT transactions, WAL
#      mode, the synchronous setting apiserver/store.c uses, rows as large
#      as the objects the server stored (apiserver_load sqlite). The ratio
#      apiserver creates/s / sqlite commits/s is what HTTP + JSON +
#      validation + the store's bookkeeping cost over the storage floor.
#      The disk and the cores are shared with other work, so 1 and 2 run
#      in BENCH_AS_ROUNDS alternating rounds (peer, then apiserver, each
#      count/rounds objects added to its own growing database); the ratio
#      is the median of the rounds' ratios, rates and percentiles cover
#      all rounds. Also timed once: the store's own statements per create
#      (read the row, read and bump the counter, insert) without HTTP.
# After the last C, on that server:
#   3. list: the whole namespace in one reply, then in pages (limit 500 +
#      continue), 3 times each; exactly BENCH_AS_COUNT items, in order;
#   4. watch: BENCH_AS_WATCHERS watches from the current resourceVersion,
#      one warm-up write all of them must see, then BENCH_AS_WRITES writes
#      one at a time, each timed to its arrival at every watcher.
# Memory: VmRSS and VmHWM (/proc/PID/status) idle, after the creates, after
# the lists, with the watchers open; disk: the data directory (du) after the
# creates and after a clean stop (the WAL folded back).
#
# Rewrites the "## modelgate-apiserver: create, list, watch" section of
# bench/RESULTS.md, leaves the others. Problems (a reply other than the one
# expected, a missed event, a server that died) are written there too and
# make the script exit 1. Every process it starts is ended by PID.
#
#   bench/run-apiserver.sh            (make bench runs it after building)
#   BENCH_AS_COUNT=10000 BENCH_AS_CONNS="1 16" BENCH_AS_WATCHERS=100
#   BENCH_AS_WRITES=20 BENCH_AS_PAGE=500 BENCH_AS_STEP_SECONDS=300 BENCH_AS_ROUNDS=5
#   BENCH_AS_SERVER=build/bin/modelgate-apiserver
#   BENCH_AS_FSYNC=1   the server with --fsync (synchronous=FULL), the peer
#                      too; written to its own section, "... (--fsync)"
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD

count=${BENCH_AS_COUNT:-10000}
conns_list=${BENCH_AS_CONNS:-1 16}
nwatchers=${BENCH_AS_WATCHERS:-100}
nwrites=${BENCH_AS_WRITES:-20}
page=${BENCH_AS_PAGE:-500}
step_secs=${BENCH_AS_STEP_SECONDS:-300}
rounds=${BENCH_AS_ROUNDS:-5}
server=${BENCH_AS_SERVER:-$top/build/bin/modelgate-apiserver}
load=$top/build/bench/apiserver_load
results=$top/bench/RESULTS.md
ns=bench
fsync=${BENCH_AS_FSYNC:-0}
heading="## modelgate-apiserver: create, list, watch"
server_args=()
if [ "$fsync" = 1 ]; then
    heading+=" (--fsync)"
    server_args=(--fsync)
fi

die() { echo "run-apiserver: $*" >&2; exit 1; }
[ -x "$server" ] || die "$server not built (make): there is no apiserver to measure"
[ -x "$load" ] || die "$load not built (make tests)"
command -v curl >/dev/null || die "curl not found"
for v in "$count" "$nwatchers" "$nwrites" "$page" "$step_secs" "$rounds"; do
    [[ "$v" =~ ^[1-9][0-9]{0,6}$ ]] || die "counts must be positive integers (got '$v')"
done
[ "$rounds" -le "$count" ] || die "BENCH_AS_ROUNDS ($rounds) is more than BENCH_AS_COUNT ($count)"

# The peer commits as the store does: read its synchronous setting from
# store.c (the PRAGMA it runs at open), NORMAL unless it says otherwise.
sync=$(grep -o 'as_exec_sql(st, "PRAGMA synchronous=[A-Z]*"' apiserver/store.c 2>/dev/null |
       head -1 | sed 's/.*synchronous=\([A-Z]*\)"/\1/')
sync=${sync:-NORMAL}
[ "$fsync" = 1 ] && sync=FULL   # what --fsync switches the store to

work=$(mktemp -d "${TMPDIR:-/tmp}/mg-bench-apiserver.XXXXXX")
srv_pid=   # the one server running now; emptied once it is stopped and reaped
cleanup() {
    if [ -n "$srv_pid" ] && kill -TERM "$srv_pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$srv_pid" 2>/dev/null || true
        wait "$srv_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    local p
    for _ in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
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
# stop_pid PID: TERM, then KILL after 5 s; returns the exit status.
stop_pid() {
    local p=$1 st=0
    kill -TERM "$p" 2>/dev/null || { wait "$p" 2>/dev/null || st=$?; return $st; }
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null && echo "run-apiserver: pid $p ignored TERM for 5 s, killed" >&2
    wait "$p" 2>/dev/null || st=$?
    return $st
}
jnum() { { grep -o "\"$1\":[-0-9.]*" <<<"$2" || true; } | head -1 | cut -d: -f2; }
mem() { # PID -> "RSS HWM" in KiB
    awk '/^VmRSS:/ {r = $2} /^VmHWM:/ {h = $2} END {print r + 0, h + 0}' "/proc/$1/status" 2>/dev/null || echo "- -"
}
cpu_s() { # PID -> user + system CPU seconds so far
    awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}
pctl() { # FILE P -> nearest-rank percentile of the numbers in FILE (µs), in ms
    sort -n "$1" 2>/dev/null | awk -v p="$2" '{ v[NR] = $1 }
        END { if (NR == 0) { print "n/a"; exit } r = int(p * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; printf "%.3f", v[r] / 1000 }'
}
mib() { awk -v k="$1" 'BEGIN { if (k ~ /^[0-9]+$/) printf "%.1f", k / 1024; else print "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }

problems=()
problem() { problems+=("$1"); echo "run-apiserver: PROBLEM: $1" >&2; }

# run_step NAME OUTVAR CMD...: runs a load step under a time limit; its JSON
# line goes to OUTVAR, its stderr (the exact requests and replies of any
# failure) into the problems list when it fails.
run_step() {
    local _name=$1 _var=$2 _rc=0 _out
    shift 2
    _out=$(timeout "$step_secs" "$@" 2>"$work/$_name.err") || _rc=$?
    printf -v "$_var" '%s' "$_out"
    echo "$_name: ${_out:-(no result)}"
    if [ "$_rc" -ne 0 ]; then
        local why="exit $_rc"
        [ "$_rc" -eq 124 ] && why="no result within $step_secs s"
        problem "$_name failed ($why): $(head -c 3000 "$work/$_name.err" | sed 's/$/ /' | tr -d '\n')"
    elif [ -s "$work/$_name.err" ]; then
        cat "$work/$_name.err" >&2
    fi
    return 0
}

start_server() { # DATA_DIR LOG
    local port
    port=$(free_port) || die "no free port"
    "$server" --listen "127.0.0.1:$port" --data "$1" --log-level warn ${server_args[@]+"${server_args[@]}"} >"$2" 2>&1 &
    srv_pid=$!
    if ! wait_port "$port"; then
        cat "$2" >&2
        die "the apiserver did not listen on 127.0.0.1:$port within 10 s"
    fi
    srv_addr=127.0.0.1:$port
    curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$srv_addr/api/v1/namespaces/default" |
        grep -q 200 || { cat "$2" >&2; die "the apiserver does not answer GET /api/v1/namespaces/default with 200"; }
}
server_alive() { # STEP
    local st=0 how
    kill -0 "$srv_pid" 2>/dev/null && return 0
    wait "$srv_pid" 2>/dev/null || st=$?
    srv_pid=
    how="exit status $st"
    [ "$st" -gt 128 ] && how="killed by signal $((st - 128))"
    problem "the apiserver died during $1 ($how); its log ends: $(tail -c 2000 "$srv_log" | tr '\n' ' ')"
    return 1
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A cr_rate cr_okn cr_client_cpu cr_conns_c cr_p50 cr_p99 cr_max peer_txt peer_mean peer_store srv_cpu srv_us peer_us per_obj rss_idle rss_created du_created du_stopped ratio_c conns_opened
last_c=
for c in $conns_list; do
    [[ "$c" =~ ^[1-9][0-9]{0,3}$ ]] || die "BENCH_AS_CONNS: connection counts (got '$c')"
    last_c=$c
done
[ -n "$last_c" ] || die "BENCH_AS_CONNS is empty"

for c in $conns_list; do
    data=$work/data-c$c
    srv_log=$work/apiserver-c$c.log
    mkdir -p "$data"
    start_server "$data" "$srv_log"
    sleep 0.5
    rss_idle[$c]=$(mem "$srv_pid")
    echo "== C=$c: apiserver pid $srv_pid on $srv_addr, idle RSS/HWM ${rss_idle[$c]} KiB"

    # The size of a stored object (the 201 reply is the stored object): one
    # create in another namespace, so that "$ns" holds exactly $count.
    run_step "probe-c$c" out "$load" create --connect "$srv_addr" --namespace probe \
        --count 1 --conns 1 --prefix cm --timeout-ms 10000
    rowb=$(jnum avg_reply_bytes "$out")
    [[ "${rowb:-0}" =~ ^[1-9][0-9]*$ ]] || rowb=500
    row_bytes=$rowb

    # Rounds: the peer, then the apiserver, each adding count/rounds objects.
    per=$((count / rounds))
    rm -f "$work/lat-cr" "$work/lat-peer"
    cr_secs=0 cr_ok=0 cr_ccpu=0 cr_conns=0 peer_secs=0 peer_cpu=0 srv_cpu_sum=0
    round_ratios= round_txt= cr_fail=0
    for r in $(seq "$rounds"); do
        n=$per
        [ "$r" -eq "$rounds" ] && n=$((count - per * (rounds - 1)))
        first=$((per * (r - 1)))
        keep=()
        [ "$r" -gt 1 ] && keep=(--keep)
        run_step "sqlite-c$c-r$r" pa "$load" sqlite --dir "$work/peer-c$c" --count "$n" \
            --start "$first" ${keep[@]+"${keep[@]}"} --data-bytes "$rowb" --synchronous "$sync" \
            --shape insert --lat-file "$work/lat-peer"
        cpu0=$(cpu_s "$srv_pid")
        run_step "create-c$c-r$r" out "$load" create --connect "$srv_addr" --namespace "$ns" \
            --count "$n" --start "$first" --conns "$c" --prefix cm --lat-file "$work/lat-cr" \
            --timeout-ms $((step_secs * 1000 - 5000))
        cpu1=$(cpu_s "$srv_pid")
        [ "$(jnum ok "$out")" = "$n" ] || cr_fail=1
        read -r cr_secs cr_ok cr_ccpu peer_secs peer_cpu srv_cpu_sum < <(awk \
            -v a="$cr_secs" -v b="$(jnum seconds "$out")" -v c="$cr_ok" -v d="$(jnum ok "$out")" \
            -v e="$cr_ccpu" -v f="$(jnum client_cpu_s "$out")" -v g="$peer_secs" \
            -v h="$(jnum seconds "$pa")" -v i="$peer_cpu" -v j="$(jnum cpu_s "$pa")" \
            -v k="$srv_cpu_sum" -v l="$cpu0" -v m="$cpu1" \
            'BEGIN { print a + b, c + d, e + f, g + h, i + j, k + (m - l) }')
        cr_conns=$(jnum connections_opened "$out")
        rr=$(ratio "$(jnum per_s "$out")" "$(jnum per_s "$pa")")
        round_ratios+="$rr "
        round_txt+="${round_txt:+, }$(awk -v a="$(jnum per_s "$out")" -v b="$(jnum per_s "$pa")" \
            'BEGIN { printf "%.0f/%.0f", a, b }')"
        echo "C=$c round $r: apiserver $(jnum per_s "$out") creates/s, sqlite $(jnum per_s "$pa") commits/s, ratio $rr"
        server_alive "create (C=$c, round $r)" || break
    done
    [ -n "$srv_pid" ] || continue
    srv_cpu[$c]=$(awk -v s="$srv_cpu_sum" 'BEGIN { printf "%.2f", s }')
    rss_created[$c]=$(mem "$srv_pid")
    du_created[$c]=$(du -sk "$data" | cut -f1)
    run_step "sqlite-store-c$c" out "$load" sqlite --dir "$work/peer-store-c$c" --count "$count" \
        --data-bytes "$rowb" --synchronous "$sync" --shape store
    peer_store[$c]=$out
    rm -rf "$work/peer-c$c" "$work/peer-store-c$c"

    cr_rate[$c]=$(awk -v n="$cr_ok" -v t="$cr_secs" 'BEGIN { if (t > 0) printf "%.1f", n / t; else print "n/a" }')
    cr_okn[$c]=$cr_ok
    cr_client_cpu[$c]=$(awk -v s="$cr_ccpu" 'BEGIN { printf "%.2f", s }')
    cr_conns_c[$c]=$cr_conns
    cr_p50[$c]=$(pctl "$work/lat-cr" 0.50)
    cr_p99[$c]=$(pctl "$work/lat-cr" 0.99)
    cr_max[$c]=$(pctl "$work/lat-cr" 1)
    peer_mean[$c]=$(awk -v n="$count" -v t="$peer_secs" 'BEGIN { if (t > 0) printf "%.1f", n / t; else print "n/a" }')
    peer_txt[$c]=$round_txt
    ratio_c[$c]=$(tr ' ' '\n' <<<"$round_ratios" | grep -E '^[0-9.]+$' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    # CPU time per operation depends far less on the machine's other load
    # than throughput does (a starved process waits, it does not burn CPU).
    srv_us[$c]=$(awk -v s="$srv_cpu_sum" -v n="$count" 'BEGIN { printf "%.0f", s * 1e6 / n }')
    peer_us[$c]=$(awk -v s="$peer_cpu" -v n="$count" 'BEGIN { printf "%.0f", s * 1e6 / n }')
    per_obj[$c]=$(awk -v a="${rss_idle[$c]%% *}" -v b="${rss_created[$c]%% *}" -v n="$count" \
        'BEGIN { printf "%.1f", (b - a) / n }')
    [ "$cr_fail" = 0 ] || problem "not every create of the C=$c run was acknowledged (see above)"
    echo "C=$c: apiserver ${cr_rate[$c]} creates/s (server CPU ${srv_cpu[$c]} s), sqlite ${peer_mean[$c]} commits/s, ratio ${ratio_c[$c]} (median of rounds)"

    if [ "$c" = "$last_c" ]; then
        cpu0=$(cpu_s "$srv_pid")
        run_step list-full list_full "$load" list --connect "$srv_addr" --namespace "$ns" \
            --expect "$count" --limit 0 --repeat 3 --timeout-ms $((step_secs * 1000 - 5000))
        cpu1=$(cpu_s "$srv_pid")
        run_step list-paged list_paged "$load" list --connect "$srv_addr" --namespace "$ns" \
            --expect "$count" --limit "$page" --repeat 3 --timeout-ms $((step_secs * 1000 - 5000))
        cpu2=$(cpu_s "$srv_pid")
        list_cpu_full=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.0f", (b - a) / 3 * 1000 }')
        list_cpu_paged=$(awk -v a="$cpu1" -v b="$cpu2" 'BEGIN { printf "%.0f", (b - a) / 3 * 1000 }')
        server_alive "list" && rss_listed=$(mem "$srv_pid")
        [ -n "$srv_pid" ] && run_step watch watch_out "$load" watch --connect "$srv_addr" --namespace "$ns" \
            --watchers "$nwatchers" --writes "$nwrites" --prefix watch --pid "$srv_pid" \
            --timeout-ms $((step_secs * 1000 - 5000))
        [ -n "$srv_pid" ] && server_alive "watch" && rss_after_watch=$(mem "$srv_pid")
    fi

    if [ -n "$srv_pid" ] && kill -0 "$srv_pid" 2>/dev/null; then
        st=0
        stop_pid "$srv_pid" || st=$?
        [ "$st" -eq 0 ] || problem "the apiserver (C=$c) exited with status $st on SIGTERM"
        du_stopped[$c]=$(du -sk "$data" | cut -f1)
    elif [ -n "$srv_pid" ]; then
        server_alive "the end of the C=$c run" || true
    fi
    srv_pid=
    # Warnings and errors the server logged under load.
    if grep -qiE '"level":"(warn|error)"|level=(warn|error)| (WARN|ERROR) ' "$srv_log"; then
        problem "the apiserver (C=$c) logged: $(grep -iE 'warn|error' "$srv_log" | cut -d' ' -f2- | sort | uniq -c | sort -rn | head -5 | tr '\n' ' ')"
    fi
done

# --- the section ---------------------------------------------------------------
fsync_env=
fsync_note=": a commit is in the OS's page cache when it returns, kill -9 loses nothing, a power loss may lose the last commits"
if [ "$fsync" = 1 ]; then
    fsync_env="BENCH_AS_FSYNC=1 "
    fsync_note=": every commit is fsync'd before the reply, surviving power loss"
fi
f() { # KEY JSON -> the figure, "n/a" when the step had none (-1) or did not run
    local v
    v=$(jnum "$1" "$2")
    case "$v" in ""|-1|-1.0*) echo n/a ;; *) echo "$v" ;; esac
}
mem_txt() { # "RSS HWM"
    local r h
    read -r r h <<<"${1:-- -}"
    echo "$(mib "$r") / $(mib "$h")"
}
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
memtotal=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

create_rows=
for c in $conns_list; do
    create_rows+="| $c | ${cr_okn[$c]-0}/$count | ${cr_rate[$c]-} | ${cr_p50[$c]-} | ${cr_p99[$c]-} | ${cr_max[$c]-} | ${cr_conns_c[$c]-} | ${peer_mean[$c]-} | **${ratio_c[$c]-n/a}** | ${peer_txt[$c]-} | $(f per_s "${peer_store[$c]-}") | ${srv_us[$c]-} / ${peer_us[$c]-} | ${cr_client_cpu[$c]-} |
"
done
mem_rows=
for c in $conns_list; do
    mem_rows+="| C=$c run: idle | $(mem_txt "${rss_idle[$c]-}") | |
| C=$c run: after $count creates | $(mem_txt "${rss_created[$c]-}") (${per_obj[$c]-} KiB per object) | $(mib "${du_created[$c]-}") (db + WAL), $(mib "${du_stopped[$c]-}") after a clean stop |
"
done
wl=${watch_out-}
problems_txt="none: every create was acknowledged 201 with a distinct resourceVersion, every list
returned all $count items in order, every watcher got every write."
if [ ${#problems[@]} -gt 0 ]; then
    problems_txt=$'\n'
    for p in "${problems[@]}"; do problems_txt+="
- ${p//|/\\|}"; done
fi

section=$(cat <<EOF
$heading

Measured $(date -u +%Y-%m-%dT%H:%MZ) by \`bench/run-apiserver.sh\` on $(uname -srm), ${cpu:-unknown CPU},
$(nproc) cores, $memtotal; sqlite $(sqlite3 --version 2>/dev/null | cut -d' ' -f1 || echo '?') (the peer links the same libsqlite3 as the server);
load average before the run: $load_before, after: $load_after. **The machine is shared
with other engineers' builds and tests during this session: the figures are noisy**
(latency tails most of all); the ratio to sqlite is the steadier figure, its two sides
alternating in rounds under the same load, and CPU time per operation steadier still. Reproduce: \`make tests && ${fsync_env}bench/run-apiserver.sh\`.
Server: \`modelgate-apiserver --listen 127.0.0.1:PORT --data DIR --log-level warn${server_args[*]+ ${server_args[*]}}\`
(sqlite \`synchronous=$sync\`${fsync_note}).

**Create** $count ConfigMaps (one data value of 200 bytes; ${row_bytes:-?} bytes stored per
object) in one namespace, C requests in flight on C keep-alive connections
(\`build/bench/apiserver_load create\`, lib/httpc); every reply checked: 201, the
object's name, a resourceVersion no other reply had. Fresh data directory per C.
**Peer**: there is no kube-apiserver here, so the floor is sqlite itself: $count
single-row \`BEGIN IMMEDIATE; INSERT; COMMIT\` transactions on the store's table,
WAL, \`synchronous=$sync\` as the store runs it, rows of the stored objects' size.
The two alternate in $rounds rounds (sqlite, then the apiserver, $((count / rounds)) objects
each, both databases growing); the ratio apiserver creates/s over sqlite commits/s
is the median of the rounds' ratios (each pair ran under the same load): what HTTP,
JSON, validation and the store's bookkeeping cost over the storage floor. Rates and
latency percentiles are over all rounds.
"store's SQL" runs the statements store.c runs per create (read the row, read and
bump the global counter, insert) without HTTP: the share of the gap that is SQL.
CPU µs per create: the server process's CPU time (utime + stime) over the creates,
and the sqlite loop's own, per operation; far less sensitive to the other load on
the machine than the rates (a process waiting for a core burns none). The sqlite
floor is mostly waiting for the disk (fsync at WAL checkpoints): its rate is well
below 1 / its CPU time. Load client CPU: what the client (it parses every reply)
used, to show it was not the limit.

| C | 201s | apiserver creates/s | p50 ms | p99 ms | max ms | connections | sqlite commits/s | apiserver / sqlite | rounds: apiserver/sqlite per s | store's SQL alone, commits/s | CPU µs per create: apiserver / sqlite | load client CPU s |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${create_rows}
**List** the $count objects (C=$last_c run's server), 3 times each way; the client parses
each reply and checks exactly $count items in strictly rising name order:

| how | pages | bytes | best ms | median ms | best ms incl. client parsing | server CPU ms per listing |
| --- | --- | --- | --- | --- | --- | --- |
| one reply (no limit) | $(f pages "${list_full-}") | $(f bytes "${list_full-}") | $(f best_ms "${list_full-}") | $(f median_ms "${list_full-}") | $(f best_total_ms "${list_full-}") | ${list_cpu_full-} |
| limit=$page + continue | $(f pages "${list_paged-}") | $(f bytes "${list_paged-}") | $(f best_ms "${list_paged-}") | $(f median_ms "${list_paged-}") | $(f best_total_ms "${list_paged-}") | ${list_cpu_paged-} |

**Watch**: $nwatchers watches of the namespace's configmaps (\`watch=true\` from the
list's resourceVersion, one connection each), a warm-up write all of them must see,
then $nwrites writes (ConfigMap creates) one at a time, 20 ms apart; each delivery
timed from just before the write is sent to the moment the watcher has read its
ADDED event (\`build/bench/apiserver_load watch\`, one client loop for all):

| watchers | deliveries | missing | p50 ms | p99 ms | max ms | last watcher, p50 ms | last watcher, max ms | write's 201, p50 ms |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
| $nwatchers | $(jnum deliveries "$wl")/$((nwatchers * nwrites)) | $(f missing "$wl") | $(f p50_ms "$wl") | $(f p99_ms "$wl") | $(f max_ms "$wl") | $(f last_watcher_p50_ms "$wl") | $(f last_watcher_max_ms "$wl") | $(f write_reply_p50_ms "$wl") |

Watches whose \`200\` head came before any event: $(f heads_before_first_event "$wl") of $nwatchers (client-go's
watch call returns only once it has the head). Events whose resourceVersion differed
from the one in their write's 201 reply: $(f rv_mismatch "$wl").

**Memory and disk** of the server (MiB; VmRSS / VmHWM from /proc/PID/status; the
memory after the creates includes the watch history, the last 10,000 events by default):

| when | RSS / HWM | data directory |
| --- | --- | --- |
${mem_rows}| C=$last_c run: after the lists | $(mem_txt "${rss_listed-}") | |
| C=$last_c run: $nwatchers watchers open | $(mib "$(f rss_kb_watchers "$wl")") / $(mib "$(f hwm_kb_watchers "$wl")") | |
| C=$last_c run: after the watch test | $(mem_txt "${rss_after_watch-}") | |

Problems seen: ${problems_txt}
EOF
)

# Replace our section (from its heading to the next "## " heading), keep the rest.
touch "$results"
SEC=$section HEAD=$heading awk '
    BEGIN { sec = ENVIRON["SEC"]; head = ENVIRON["HEAD"]; skip = 0; done = 0 }
    /^## / {
        if ($0 == head) { skip = 1; if (!done) { print sec; print ""; done = 1 }; next }
        skip = 0
    }
    !skip { print }
    END { if (!done) { print ""; print sec } }
' "$results" >"$work/RESULTS.md"
cp "$work/RESULTS.md" "$results"
echo "run-apiserver: wrote the apiserver section of $results"
if [ ${#problems[@]} -gt 0 ]; then
    echo "run-apiserver: ${#problems[@]} problem(s), see above and in $results" >&2
    exit 1
fi
