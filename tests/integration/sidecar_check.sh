#!/usr/bin/env bash
# modelgate-sidecar --check: valid tables (YAML and JSON, the full
# DESIGN.md example with the keys later issues enforce) exit 0; a table with
# many mistakes exits 1 naming every one as "file:line:col: path: message";
# syntax errors carry their position; bad usage exits 2. No process stays
# running.
. "$MG_TOP/tests/integration/sidecar-lib.bash"

D=$MG_TMP
# chk FILE: runs --check; output in $D/chk.out, prints the exit status.
chk() { "$SC" --check --config "$1" >"$D/chk.out" 2>&1; echo $?; }

cat >"$D/good.yaml" <<'EOF'
listen: 127.0.0.1:8080
admin: 127.0.0.1:9901
workers: 2
limits: { requestBody: 1Mi, requestHead: 64Ki }
client: { headerTimeout: 10s, keepAliveTimeout: 2m }
upstream: { maxIdlePerEndpoint: 64 }
routes:
  - model: llama-3-8b-instruct
    versions:
      - { name: v1, weight: 95, endpoints: [127.0.0.1:8001, "[::1]:8002"] }
      - { name: v2, weight: 5, endpoints: [127.0.0.1:8003] }
    match: [ { header: x-modelgate-version, value: v2, version: v2 } ]
    sticky: { header: x-session-id }
    timeouts: { connect: 250ms, firstToken: 30s, idle: 1m, total: 10m }
  - model: "*"
    versions: [ { name: any, weight: 1, endpoints: [localhost:8004] } ]
EOF
check_eq "a valid YAML table: exit 0 ($(head -c 300 "$D/chk.out"))" "$(chk "$D/good.yaml")" 0

cat >"$D/good.json" <<'EOF'
{"listen": "127.0.0.1:8080",
 "routes": [{"model": "m", "versions": [{"name": "v1", "weight": 1, "endpoints": ["127.0.0.1:8001"]}]}]}
EOF
check_eq "a valid JSON table: exit 0 ($(head -c 300 "$D/chk.out"))" "$(chk "$D/good.json")" 0

cat >"$D/later.yaml" <<'EOF'
listen: 0.0.0.0:8080
admin: 127.0.0.1:9901
workers: 1
routes:
  - model: llama-3-8b-instruct
    versions:
      - { name: v1, weight: 95, endpoints: [127.0.0.1:8001] }
      - { name: v2, weight: 5, endpoints: [10.0.3.7:8080] }
    fallback: [ {version: v1}, {model: mistral-7b-instruct}, {static: {status: 503, message: busy}} ]
    match: [ {header: x-modelgate-version, value: v2, version: v2} ]
    sticky: { header: x-session-id }
    timeouts: { connect: 1s, firstToken: 30s, idle: 60s, total: 10m }
    retries: { attempts: 2, on: [connect-failure, reset, 503], budgetPercent: 20 }
    circuitBreaker: { consecutiveFailures: 5, failureRate: 0.5, window: 10s, openDuration: 30s, halfOpenRequests: 3, maxConcurrent: 256, maxPending: 512 }
    rateLimit: { requestsPerSecond: 100, burst: 200, tokensPerMinute: 200000 }
EOF
# As DESIGN.md writes it, the fallback names a model no route serves.
check_eq "the DESIGN.md route table falling back to a model with no route: refused" "$(chk "$D/later.yaml")" 1
check "...naming the fallback and the missing model" grep -q 'routes\[0\]\.fallback\[1\].*mistral-7b-instruct' "$D/chk.out"
cat >>"$D/later.yaml" <<'EOF'
  - model: mistral-7b-instruct
    versions:
      - { name: m1, weight: 1, endpoints: [127.0.0.1:8003] }
EOF
check_eq "...with that model's route added: valid (policies enforced, no warning)" "$(chk "$D/later.yaml")" 0
check "...and no 'not enforced' warning any more" eval '! grep -qi "not enforced" "$D/chk.out"'

# One file, many mistakes: every one must be named, with its position.
cat >"$D/bad.yaml" <<'EOF'
admin: 127.0.0.1:9901
workers: 0
limits: { requestBody: lots }
routes:
  - model: a
    versions:
      - { name: v1, weight: -5, endpoints: [127.0.0.1:8001] }
      - { name: v2, wieght: 3, endpoints: [127.0.0.1:99999] }
  - model: b
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:8001] }
      - { name: v1, weight: 1, endpoints: [127.0.0.1:8002] }
    match: [ { header: x-v, value: "2", version: v7 } ]
    timeouts: { connect: fast }
  - model: "*"
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:8001] } ]
  - model: "*"
    versions: [ { name: v1, weight: 1, endpoints: [127.0.0.1:8001] } ]
  - model: c
    versions: [ { name: v1, weight: 0, endpoints: [127.0.0.1:8001] } ]
EOF
check_eq "a table with 11 mistakes: exit 1" "$(chk "$D/bad.yaml")" 1
echo "# --check bad.yaml said:"; sed 's/^/#   /' "$D/chk.out"
# named PATH WHAT: an error line "bad.yaml[:L:C]: PATH: ..." exists (the
# position is checked once, below).
has_path() { grep -F "bad.yaml" "$D/chk.out" | grep -qF ": $1: "; }
named() { check "names $2 ($1)" has_path "$1"; }
named workers "workers 0 (1..64)"
named limits.requestBody "a size that is not one"
named 'routes[0].versions[0].weight' "a negative weight"
named 'routes[0].versions[1].wieght' "an unknown key"
check "...suggesting the key meant (did you mean \"weight\")" grep -qi 'did you mean.*weight' "$D/chk.out"
named 'routes[0].versions[1].endpoints[0]' "a port past 65535"
named 'routes[1].versions[1].name' "a version name used twice"
named 'routes[1].match[0].version' "a match rule naming an unknown version"
named 'routes[1].timeouts.connect' "a duration that is not one"
named 'routes[3].model' "a second \"*\" route"
named 'routes[4].versions' "weights that sum to 0"
check "names the missing listen" grep -qE "bad\.yaml(:[0-9]+:[0-9]+)?: listen: " "$D/chk.out"
n=$(grep -cE "bad\.yaml:[0-9]+:[0-9]+: [^ :]+: .+" "$D/chk.out")
check "errors carry their position: at least 10 lines of the form file:line:col: path: message ($n)" [ "$n" -ge 10 ]

printf 'listen: 127.0.0.1:8080\nroutes:\n  - model: m\n    versions: [ { name: v1, weight: 1\n' >"$D/syntax.yaml"
check_eq "YAML with a syntax error: exit 1" "$(chk "$D/syntax.yaml")" 1
check "...the error has file:line:col ($(head -c 200 "$D/chk.out"))" grep -qE 'syntax\.yaml:[0-9]+:[0-9]+:' "$D/chk.out"
printf '{"listen": "127.0.0.1:8080",\n "routes": [}\n' >"$D/syntax.json"
check_eq "JSON with a syntax error: exit 1" "$(chk "$D/syntax.json")" 1
check "...the error points at line 2 ($(head -c 200 "$D/chk.out"))" grep -qE 'syntax\.json:2:[0-9]+:' "$D/chk.out"
printf 'listen: 127.0.0.1:8080\nroutes: []\n' >"$D/noroutes.yaml"
check_eq "no routes: exit 1" "$(chk "$D/noroutes.yaml")" 1
check "...naming routes" grep -q 'routes' "$D/chk.out"
: >"$D/empty.yaml"
check_eq "an empty file: exit 1" "$(chk "$D/empty.yaml")" 1
check_eq "a file that does not exist: exit 1" "$(chk "$D/nope.yaml")" 1
check "...naming the file" grep -q 'nope\.yaml' "$D/chk.out"

"$SC" --check >"$D/u.out" 2>&1
check_eq "--check without --config: exit 2" "$?" 2
"$SC" --no-such-option >"$D/u.out" 2>&1
check_eq "an unknown option: exit 2" "$?" 2
"$SC" >"$D/u.out" 2>&1
check_eq "no arguments: exit 2" "$?" 2

# The sidecar refuses to start on an invalid table, saying why.
"$SC" --config "$D/bad.yaml" >"$D/start.out" 2>&1 &
spid=$!
for i in $(seq $((50 * slow))); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$spid" 2>/dev/null; then stop_pid "$spid"; not_ok "starting on an invalid table fails" "still running"; else
    wait "$spid"; rc=$?
    check "starting on an invalid table fails (exit $rc)" [ "$rc" != 0 ]
    check "...naming the errors" grep -q 'routes\[0\]\.versions\[0\]\.weight' "$D/start.out"
fi
finish
