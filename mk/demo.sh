#!/usr/bin/env bash
# `make demo`: runs what modelgate has so far, end to end on loopback. Until
# the sidecar lands (issue 4) that is modelsim, the vLLM-like model server
# every later demo routes to: a streamed chat completion arriving token by
# token, the same request whole, vLLM's metrics, and an injected failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=build/bin/modelsim
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$bin" --listen 127.0.0.1:0 --port-file "$work/port" --model llama-3-8b-instruct \
    --version v1 --ttft-ms 300 --itl-ms 40 --tokens 24 --seed 7 2>"$work/modelsim.log" &
pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
[ -s "$work/port" ] || { echo "demo: modelsim did not start:"; cat "$work/modelsim.log"; exit 1; }
url=http://127.0.0.1:$(cat "$work/port")
body='{"model":"llama-3-8b-instruct","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'

echo "modelsim (pid $pid) serves llama-3-8b-instruct on $url"
echo "  time to first token 300 ms, 40 ms between tokens, 24 tokens"
echo
echo "== a streamed chat completion, printed as the tokens arrive:"
curl -sN "$url/v1/chat/completions" -H 'Content-Type: application/json' -d "$body" |
    sed -un 's/.*"content":"\([^"]*\)".*/\1/p' |
    while IFS= read -r tok; do printf '%s' "$tok"; done
echo; echo
echo "== the same request, whole (the reply is the same for the same seed and prompt):"
curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "${body/\"stream\":true,/}" -w '\n'
echo
echo "== a forced error (X-Return-Error: 429), as vLLM formats it:"
curl -s "$url/v1/chat/completions" -H 'Content-Type: application/json' \
    -H 'X-Return-Error: 429' -d "$body" -w ' (HTTP %{http_code})\n'
echo
echo "== vLLM's metrics after those requests:"
curl -s "$url/metrics" | grep -E '^vllm:(request_success_total|generation_tokens_total|time_to_first_token_seconds_(count|sum))'
echo
echo "The sidecar, the operator and the apiserver join this demo as they land (see README.md)."
