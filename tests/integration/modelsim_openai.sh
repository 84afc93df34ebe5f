#!/usr/bin/env bash
# The real OpenAI JavaScript client (npm package openai@4) calls modelsim:
# chat and text completions, whole and streamed, models, errors. The
# package is installed once per build tree into $MG_BUILD/node (not
# committed); when npm cannot install it, the cases are reported as skipped
# with npm's reason, never as passed.
. "$MG_TOP/tests/integration/lib.sh"

sim=$MG_BIN/modelsim
[ -x "$sim" ] || bail "modelsim not built"
command -v node >/dev/null || bail "node not found (mk/deps.sh node installs it)"
command -v npm >/dev/null || bail "npm not found (mk/deps.sh node installs it)"

pkgdir=$MG_BUILD/node
pkg=$pkgdir/node_modules/openai
if [ ! -f "$pkg/package.json" ]; then
    mkdir -p "$pkgdir"
    if ! timeout 180 npm install --prefix "$pkgdir" --no-audit --no-fund --no-save --loglevel=error \
            openai@4 >"$MG_TMP/npm.log" 2>&1; then
        # npm's first lines name the cause (code, the request that failed).
        why=$(grep -E -m 3 'code|request to|ECONN|ENOTFOUND|ETIMEDOUT|EAI_AGAIN|network' "$MG_TMP/npm.log" |
              tr '\n' ' ' | cut -c1-300)
        [ -n "$why" ] || why=$(grep -v '^\s*$' "$MG_TMP/npm.log" | tail -n 3 | tr '\n' ' ' | cut -c1-300)
        skip "OpenAI client against modelsim" "npm install openai@4 failed: ${why:-no output}"
        finish
    fi
fi
check "openai@4 is installed" grep -q '"version": "4\.' "$pkg/package.json"

port=$(free_port) || bail "no free port"
start_bg sim "$sim" --listen "127.0.0.1:$port" --model llama-3-8b-instruct --tokens 12 --seed 5
wait_port "$port" || bail "modelsim did not start"

# The client prints its own ok / not ok lines.
OPENAI_PKG=$pkg timeout 60 node "$MG_TOP/tests/integration/openai-client.mjs" \
    "http://127.0.0.1:$port/v1" llama-3-8b-instruct 12 >"$MG_TMP/client.out" 2>&1
rc=$?
cat "$MG_TMP/client.out"
mg_passed=$((mg_passed + $(grep -c '^ok - ' "$MG_TMP/client.out")))
mg_failed=$((mg_failed + $(grep -c '^not ok - ' "$MG_TMP/client.out")))
check_eq "the client script exited 0" "$rc" 0
finish
