#!/usr/bin/env bash
# Runs every benchmark driver (bench/run-*.sh) in turn. Each driver measures
# modelgate against a peer on this machine in the same run and rewrites its
# own section of bench/RESULTS.md. `make bench` builds first, then calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for d in bench/run-*.sh; do
    [ -e "$d" ] || continue
    echo "== $d"
    bash "$d" || { echo "bench: $d failed" >&2; status=1; }
done
exit $status
