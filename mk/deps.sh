#!/usr/bin/env bash
# Checks the Debian packages modelgate needs and installs only the missing
# ones. `make` runs it with "build", `make test` with "build test", the
# benchmarks with "bench". apt-get update runs once, and only when something
# is missing. Set MG_NO_DEPS=1 to skip the check entirely (packagers).
set -euo pipefail

[ "${MG_NO_DEPS:-0}" = 1 ] && exit 0

declare -A sets
# What compiling needs: the C toolchain and the libraries found by pkg-config.
sets[build]="gcc make pkg-config libc6-dev libcurl4-openssl-dev libwebsockets-dev libyaml-dev libsqlite3-dev libjansson-dev libssl-dev"
# What the test suite needs: clang and its runtime for libFuzzer and the
# sanitizers, promtool (in prometheus) for the metrics format, curl as a
# real HTTP client, coreutils' timeout, iproute2's ss for socket checks.
sets[test]="clang libclang-rt-14-dev prometheus curl coreutils iproute2"
# Peers and load generators for bench/.
sets[bench]="haproxy nginx-light wrk curl"
# Node.js for the tests that drive modelgate with real JavaScript clients
# (the openai SDK, playwright-core). Checked by command, not by package: a
# machine may have Node from elsewhere with npm bundled, and Debian's npm
# package would conflict with it.
sets[node]="cmd:node=nodejs cmd:npm=npm"

want=()
for s in "$@"; do
    [ -n "${sets[$s]+x}" ] || { echo "deps.sh: unknown package set '$s' (known: ${!sets[*]})" >&2; exit 2; }
    for p in ${sets[$s]}; do want+=("$p"); done
done

missing=()
for p in "${want[@]}"; do
    case "$p" in
        cmd:*)  # cmd:COMMAND=PACKAGE: install PACKAGE only if COMMAND is absent
            c=${p#cmd:}; c=${c%%=*}
            command -v "$c" >/dev/null 2>&1 && continue
            p=${p#*=} ;;
    esac
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"install ok installed"*) ;;
        *) case " ${missing[*]-} " in *" $p "*) ;; *) missing+=("$p") ;; esac ;;
    esac
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "modelgate: missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "modelgate: not root and no sudo; install them with: apt-get install ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=
fi
echo "modelgate: running apt-get update, then apt-get install ${missing[*]}" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
echo "modelgate: installed ${missing[*]}" >&2
