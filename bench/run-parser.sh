#!/usr/bin/env bash
# Runs the HTTP/1.1 parser benchmark (build/bench/http1_parse, built by
# `make tests`; this script builds nothing) and rewrites the "HTTP/1.1 parser"
# section of bench/RESULTS.md with the machine, the command and the figures.
#
#   bench/run-parser.sh [seconds per round, default 0.1]
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${MG_BUILD:-build}/bench/http1_parse
[ -x "$bin" ] || { echo "run-parser.sh: $bin is missing; run 'make tests' first" >&2; exit 2; }

load=$(cut -d' ' -f1-3 /proc/loadavg)
out=$("$bin" "$@")
echo "$out"

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
section=$(cat <<MD
## HTTP/1.1 parser

What: \`lib/http1.c\` on OpenAI-style traffic: 9 requests (chat completions
streaming and not with JSON bodies of 60 B to 16 KiB, embeddings, completions,
GET /v1/models, a chunked upload) with the headers the openai Python SDK and a
mesh send, and the body of a 401-event SSE chunked response (vLLM-style,
one chunk per event) through the body decoder, one call per event.
"naive reference" is code in the bench file: a byte-at-a-time head parser
with a token lookup table and the same syntax checks (it stores no header
array and derives no keep-alive/Host/Expect facts), and a resumable
byte-at-a-time chunked decoder with the same call contract (one span per
call) but without extensions, trailers or limits. It is a yardstick for the
parsing technique, not a peer; the peer comparison with HAProxy is end to
end, in the proxy benchmark.

- machine: $(nproc) CPUs, $cpu, $(uname -sr)
- compiler: $(${CC:-gcc} --version | head -1), \`-O2\` as \`make tests\` builds it
- run: $(date -u +%Y-%m-%dT%H:%MZ), load average before it: $load (other work on
  a shared machine slows rounds down; ratios come from alternating rounds)
- reproduce: \`make tests && bench/run-parser.sh\`

\`\`\`
$out
\`\`\`
MD
)

results=bench/RESULTS.md
[ -f "$results" ] || printf '# Benchmark results\n\nEach section is rewritten by its driver, bench/run-*.sh.\n' >"$results"
tmp=$(mktemp)
# Drop the old section (up to the next "## " heading), append the new one.
awk '/^## /{skip = ($0 == "## HTTP/1.1 parser")} !skip' "$results" >"$tmp"
printf '\n%s\n' "$section" >>"$tmp"
# Collapse runs of blank lines the cut may leave.
cat -s "$tmp" >"$results"
rm -f "$tmp"
echo "run-parser.sh: wrote the HTTP/1.1 parser section of $results"
