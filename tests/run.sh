#!/usr/bin/env bash
# The test runner. Runs, for each --build DIR, every unit test binary
# (DIR/tests/unit/**/test_*) and every integration script
# (tests/integration/*.sh) against that build; then, with --fuzz DIR, every
# fuzz target for a bounded time. Each test runs alone, in its own temporary
# directory, under a timeout. Cases are counted from the lines the tests print
# ("ok - ", "not ok - ", "skip - "); a test that crashes, exits non-zero
# without reporting a failure, or times out counts as one failure.
#
#   tests/run.sh --build build [--build build-asan] [--fuzz build-fuzz]
#                [--fuzz-seconds 30] [--filter REGEX] [--timeout SECONDS]
#
# It ends with the line "N passed, N failed, N skipped" and exits non-zero on
# any failure. Logs of every test are kept in BUILD/test-logs/.
set -uo pipefail

cd "$(dirname "$0")/.."
top=$PWD

builds=()
fuzz_dir=
fuzz_seconds=30
filter=
unit_timeout=${MG_UNIT_TIMEOUT:-120}
integ_timeout=${MG_INTEG_TIMEOUT:-300}

while [ $# -gt 0 ]; do
    case "$1" in
        --build) builds+=("$2"); shift 2 ;;
        --fuzz) fuzz_dir=$2; shift 2 ;;
        --fuzz-seconds) fuzz_seconds=$2; shift 2 ;;
        --filter) filter=$2; shift 2 ;;
        --timeout) unit_timeout=$2; integ_timeout=$2; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ ${#builds[@]} -gt 0 ] || [ -n "$fuzz_dir" ] || builds=(build)

total_pass=0 total_fail=0 total_skip=0
failed_names=()

# run_one LABEL LOG TIMEOUT CMD...: runs a test, prints its result lines with
# the label, adds its counts to the totals.
run_one() {
    local label=$1 log=$2 tmo=$3; shift 3
    local start end rc p f s
    start=$(date +%s.%N)
    timeout -k 5 "$tmo" "$@" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    p=$(grep -c '^ok - ' "$log")
    f=$(grep -c '^not ok - ' "$log")
    s=$(grep -c '^skip - ' "$log")
    local why=
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        why="timed out after ${tmo}s"
    elif [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
        why="exited with status $rc without reporting a failed case"
    elif [ $rc -eq 0 ] && [ "$f" -gt 0 ]; then
        why="reported failures but exited 0"
    elif [ $rc -eq 0 ] && [ "$p" -eq 0 ] && [ "$s" -eq 0 ]; then
        why="ran no case"
    fi
    if [ -n "$why" ]; then
        f=$((f + 1))
        echo "not ok - $label: $why" >>"$log"
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    total_skip=$((total_skip + s))
    local secs
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [ "$f" -gt 0 ]; then
        printf 'FAIL  %-48s %4d passed %3d failed %3d skipped %6ss\n' "$label" "$p" "$f" "$s" "$secs"
        grep -E '^(not ok - |# )' "$log" | head -n 40 | sed 's/^/      /'
        echo "      (log: $log)"
        failed_names+=("$label")
    else
        printf 'ok    %-48s %4d passed %3d failed %3d skipped %6ss\n' "$label" "$p" "$f" "$s" "$secs"
    fi
}

for b in "${builds[@]}"; do
    [ -d "$b" ] || { echo "run.sh: build directory '$b' does not exist; run make tests first" >&2; exit 2; }
    logs="$b/test-logs"
    rm -rf "$logs"; mkdir -p "$logs"
    echo "== $b"
    while IFS= read -r t; do
        name=${t#"$b"/tests/}
        [ -n "$filter" ] && ! [[ "$name" =~ $filter ]] && continue
        work=$(mktemp -d "${TMPDIR:-/tmp}/mg-test.XXXXXX")
        run_one "$b:$name" "$logs/${name//\//_}.log" "$unit_timeout" \
            env MG_TOP="$top" MG_BUILD="$top/$b" MG_TMP="$work" \
                bash -c 'cd "$MG_TMP" && exec "$0"' "$top/$t"
        rm -rf "$work"
    done < <(find "$b/tests/unit" -type f -name 'test_*' ! -name '*.d' -perm -u+x 2>/dev/null | sort)

    for t in tests/integration/*.sh; do
        [ -e "$t" ] && [ "$(basename "$t")" != lib.sh ] || continue
        name=${t#tests/}
        [ -n "$filter" ] && ! [[ "$name" =~ $filter ]] && continue
        work=$(mktemp -d "${TMPDIR:-/tmp}/mg-test.XXXXXX")
        run_one "$b:$name" "$logs/${name//\//_}.log" "$integ_timeout" \
            env MG_TOP="$top" MG_BUILD="$top/$b" MG_BIN="$top/$b/bin" \
                MG_TOOLS="$top/$b/tests/bin" MG_TMP="$work" \
                MG_SANITIZE=$([ "$b" = build-asan ] && echo 1 || echo 0) \
                bash "$top/$t"
        rm -rf "$work"
    done
done

if [ -n "$fuzz_dir" ]; then
    echo "== $fuzz_dir (${fuzz_seconds}s per target)"
    logs="$fuzz_dir/test-logs"
    rm -rf "$logs"; mkdir -p "$logs"
    for fz in "$fuzz_dir"/fuzz_*; do
        [ -x "$fz" ] && [ -f "$fz" ] || continue
        case "$fz" in *.d|*.o) continue ;; esac
        name=$(basename "$fz")
        [ -n "$filter" ] && ! [[ "fuzz/$name" =~ $filter ]] && continue
        seeds="tests/fuzz/corpus/${name#fuzz_}"
        if [ ! -d "$seeds" ]; then
            # A target without its committed seeds would start from nothing
            # (and libFuzzer exits at once on a missing directory).
            run_one "fuzz:$name" "$logs/$name.log" 10 \
                bash -c 'echo "# no seed corpus at $1 (fuzz_NAME reads tests/fuzz/corpus/NAME)"; echo "not ok - $0: no seed corpus"' \
                    "$name" "$seeds"
            continue
        fi
        work=$(mktemp -d "${TMPDIR:-/tmp}/mg-fuzz.XXXXXX")
        mkdir -p "$work/corpus"
        dict=()
        [ -f "tests/fuzz/${name#fuzz_}.dict" ] && dict=(-dict="tests/fuzz/${name#fuzz_}.dict")
        # libFuzzer writes new inputs into the first corpus directory only, so
        # the committed seeds are read, never changed. A finding leaves a
        # crash-* file in the work dir; it is copied next to the log.
        run_one "fuzz:$name" "$logs/$name.log" $((fuzz_seconds + 60)) \
            bash -c 'cd "$1" && shift && "$@" && echo "ok - $(basename "$0")"' \
                "$name" "$work" "$top/$fz" -max_total_time="$fuzz_seconds" \
                -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
                "${dict[@]/#-dict=/-dict=$top/}" "$work/corpus" "$top/$seeds"
        cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$logs/" 2>/dev/null
        rm -rf "$work"
    done
fi

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed: ${failed_names[*]}"
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
