#!/usr/bin/env bash
# modelgate-sidecar routing, seen from a client, against real modelsim
# backends: the 90/10 weight split over 10,000 requests (each backend started
# with --version equal to its route version, so x-modelsim-version proves
# which backend really served), header match rules, weight 0, sticky
# sessions over 1,000 keys and the minimal movement of keys when the weights
# go 90/10 -> 50/50 across a SIGHUP reload, balancing over a version's
# endpoints, the wildcard route, GET /v1/models, x-request-id and traceparent
# (observed upstream by an echo server), request bodies passed intact
# (Content-Length and chunked). Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-lib.bash"
command -v node >/dev/null || bail "node not found"

models=(--model m --model lb --model z --model other --tokens 4 --seed 1)
start_sim s1 "${models[@]}" --version v1 || bail "modelsim s1 did not start"
S1=$sim_port
start_sim s2 "${models[@]}" --version v2 || bail "modelsim s2 did not start"
S2=$sim_port
start_sim s3 "${models[@]}" --version v1 || bail "modelsim s3 did not start"
S3=$sim_port
start_bg echo node "$MG_TOP/tests/integration/sidecar-echo.mjs" "$MG_TMP/echo.port"
for i in $(seq 100); do [ -s "$MG_TMP/echo.port" ] && break; sleep 0.05; done
E=$(cat "$MG_TMP/echo.port" 2>/dev/null) || bail "echo server did not start"
start_bg echo2 node "$MG_TOP/tests/integration/sidecar-echo.mjs" "$MG_TMP/echo2.port" 200
for i in $(seq 100); do [ -s "$MG_TMP/echo2.port" ] && break; sleep 0.05; done
E2=$(cat "$MG_TMP/echo2.port" 2>/dev/null) || bail "echo server 2 did not start"
sc_ports

# write_cfg W1 W2: the table with route m weighted W1/W2, written atomically
# (a rename: never a half-written file).
write_cfg() {
    cat >"$MG_TMP/sc.yaml.tmp" <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
workers: 1
routes:
  - model: m
    versions:
      - { name: v1, weight: $1, endpoints: [127.0.0.1:$S1] }
      - { name: v2, weight: $2, endpoints: [127.0.0.1:$S2] }
    match:
      - { header: x-canary, value: "yes", version: v2 }
    sticky: { header: x-session-id }
  - model: lb
    versions:
      - { name: v1, weight: 1, endpoints: [127.0.0.1:$S1, 127.0.0.1:$S3] }
  - model: z
    versions:
      - { name: v1, weight: 100, endpoints: [127.0.0.1:$S1] }
      - { name: v2, weight: 0, endpoints: [127.0.0.1:$S2] }
    match:
      - { header: x-canary, value: "yes", version: v2 }
  - model: echo
    versions:
      - { name: e1, weight: 1, endpoints: [127.0.0.1:$E] }
  - model: short-keepalive
    versions:
      - { name: e2, weight: 1, endpoints: [127.0.0.1:$E2] }
  - model: "*"
    versions:
      - { name: any, weight: 1, endpoints: [127.0.0.1:$S1] }
EOF
    mv "$MG_TMP/sc.yaml.tmp" "$MG_TMP/sc.yaml"
}
write_config() { write_cfg 90 10; }
write_config
out=$("$SC" --check --config "$MG_TMP/sc.yaml" 2>&1)
check_eq "--check accepts the test's table ($out)" "$?" 0
start_sidecar sc "$MG_TMP/sc.yaml" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"

# --- one request, its headers --------------------------------------------------

st=$(sc_req "$MG_TMP/r1" "$(chat m hi)")
check_eq "POST /v1/chat/completions for model m answers 200" "$st" 200
v=$(hdr "$MG_TMP/r1.h" x-modelgate-version)
check "x-modelgate-version names a version of the route ('$v')" eval '[ "$v" = v1 ] || [ "$v" = v2 ]'
check_eq "the backend that served is the one of that version (x-modelsim-version)" "$(hdr "$MG_TMP/r1.h" x-modelsim-version)" "$v"
check_eq "the body is the backend's reply" "$(jq -r '[.object, .model, .usage.completion_tokens] | join("|")' <"$MG_TMP/r1.b")" "chat.completion|m|4"
id1=$(hdr "$MG_TMP/r1.h" x-request-id)
sc_req "$MG_TMP/r2" "$(chat m hi)" >/dev/null
id2=$(hdr "$MG_TMP/r2.h" x-request-id)
check "x-request-id is made when the client sent none ('$id1', '$id2')" eval '[ -n "$id1" ] && [ -n "$id2" ] && [ "$id1" != "$id2" ]'
sc_req "$MG_TMP/r3" "$(chat m hi)" -H 'X-Request-Id: client-id-42' >/dev/null
check_eq "x-request-id from the client is echoed" "$(hdr "$MG_TMP/r3.h" x-request-id)" client-id-42

# --- the weight split ------------------------------------------------------------

c1=$(scm modelgate_requests_total 'model="m",version="v1",code="200"')
c2=$(scm modelgate_requests_total 'model="m",version="v2",code="200"')
res=$(load --conns 8 --requests 10000 --path /v1/chat/completions --body "$(chat m hi)" --backend-header x-modelsim-version)
echo "# 90/10 split: $res"
n1=$(j "$res" '.versions.v1 // 0'); n2=$(j "$res" '.versions.v2 // 0')
check_eq "10,000 requests: all 200, none failed" "$(j "$res" '[.done, .ok, .transport_errors] | join("|")')" "10000|10000|0"
check "v1 (weight 90) got 90% ±2 points: $n1 of 10000" eval '[ "$n1" -ge 8800 ] && [ "$n1" -le 9200 ]'
check "v2 (weight 10) got 10% ±2 points: $n2 of 10000" eval '[ "$n2" -ge 800 ] && [ "$n2" -le 1200 ]'
check_eq "every response was labelled v1 or v2" "$((n1 + n2))" 10000
check_eq "every response came from the backend its label names" "$(j "$res" .backend_mismatch)" 0
check "the client's keep-alive connections were kept ($(j "$res" .created) made)" [ "$(j "$res" .created)" -le 8 ]
check_eq "modelgate_requests_total counted the v1 replies" "$(( $(scm modelgate_requests_total 'model="m",version="v1",code="200"') - c1 ))" "$n1"
check_eq "modelgate_requests_total counted the v2 replies" "$(( $(scm modelgate_requests_total 'model="m",version="v2",code="200"') - c2 ))" "$n2"

# --- match rules --------------------------------------------------------------------

res=$(load --requests 500 --path /v1/chat/completions --body "$(chat m hi)" -H 'x-canary: yes' --backend-header x-modelsim-version)
check_eq "x-canary: yes pins all 500 requests to v2" "$(j "$res" '[.ok, (.versions.v2 // 0), .backend_mismatch] | join("|")')" "500|500|0"
res=$(load --requests 500 --path /v1/chat/completions --body "$(chat m hi)" -H 'x-canary: YES')
n1=$(j "$res" '.versions.v1 // 0')
check "match values compare exactly: x-canary: YES is split by weight ($n1 of 500 on v1)" eval '[ "$n1" -ge 400 ] && [ "$(j "$res" .ok)" = 500 ]'
res=$(load --requests 500 --path /v1/chat/completions --body "$(chat m hi)" -H 'x-canary: yes' --key-header x-session-id --keys 100)
check_eq "a match rule wins over stickiness: 500 requests with session keys all v2" "$(j "$res" '[.ok, (.versions.v2 // 0)] | join("|")')" "500|500"
res=$(load --requests 500 --path /v1/chat/completions --body "$(chat z hi)")
check_eq "weight 0: version v2 of route z gets none of 500 requests" "$(j "$res" '[.ok, (.versions.v1 // 0), (.versions.v2 // 0)] | join("|")')" "500|500|0"
res=$(load --requests 200 --path /v1/chat/completions --body "$(chat z hi)" -H 'x-canary: yes' --backend-header x-modelsim-version)
check_eq "weight 0: a match rule still reaches v2" "$(j "$res" '[.ok, (.versions.v2 // 0), .backend_mismatch] | join("|")')" "200|200|0"

# --- stickiness and minimal movement ------------------------------------------------

res=$(load --conns 8 --requests 3000 --path /v1/chat/completions --body "$(chat m hi)" --key-header x-session-id --keys 1000 --keys-out "$MG_TMP/keys1" --backend-header x-modelsim-version)
echo "# sticky 90/10: $res"
check_eq "sticky: 3000 requests over 1000 session keys all 200" "$(j "$res" '[.ok, .keys_seen] | join("|")')" "3000|1000"
check_eq "sticky: no key was served by two versions" "$(j "$res" .keys_inconsistent)" 0
check_eq "sticky: every response came from the backend its label names" "$(j "$res" .backend_mismatch)" 0
k2=$(grep -c ' v2$' "$MG_TMP/keys1")
check "sticky: keys spread by weight (v2 has $k2 of 1000, want 10% ±4)" eval '[ "$k2" -ge 60 ] && [ "$k2" -le 140 ]'
res=$(load --conns 2 --requests 1000 --path /v1/chat/completions --body "$(chat m again)" --key-header x-session-id --keys 1000 --keys-out "$MG_TMP/keys1b")
check_eq "sticky: a second pass sends every key where the first did" "$(j "$res" .ok)|$(diff "$MG_TMP/keys1" "$MG_TMP/keys1b" | grep -c '^>')" "1000|0"

g0=$(scm modelgate_config_generation)
write_cfg 50 50
kill -HUP "$(pid_of sc)"
check "SIGHUP with weights 50/50: the generation goes up (was $g0)" wait_for $((5 * slow)) gen_above "$g0"
check_eq "GET /config shows the new weights" "$(curl -s "http://127.0.0.1:$SC_ADMIN/config" | jq -c '[.routes[] | select(.model == "m") | .versions[].weight]')" "[50,50]"
res=$(load --conns 8 --requests 3000 --path /v1/chat/completions --body "$(chat m hi)" --key-header x-session-id --keys 1000 --keys-out "$MG_TMP/keys2")
echo "# sticky 50/50: $res"
check_eq "after the reload: 3000 requests all 200, every key on one version" "$(j "$res" '[.ok, .keys_seen, .keys_inconsistent] | join("|")')" "3000|1000|0"
moves=$(join "$MG_TMP/keys1" "$MG_TMP/keys2" | awk '$2 == "v1" && $3 == "v2" { a++ } $2 == "v2" && $3 == "v1" { b++ } $2 == $3 { s++ } END { printf "%d %d %d", a, b, s }')
read -r m12 m21 stay <<<"$moves"
check_eq "90/10 -> 50/50: no key moved from v2 to v1" "$m21" 0
check "90/10 -> 50/50: $m12 of 1000 keys moved v1 -> v2 (want 40% ±4 points)" eval '[ "$m12" -ge 360 ] && [ "$m12" -le 440 ]'
check_eq "...and every other key stayed" "$((m12 + stay))" 1000
# Header names are case-insensitive, for sticky keys and match rules alike.
same=0
for k in k1 k7 k42 k99 k500 k777 k998 k999; do
    sc_req "$MG_TMP/cs" "$(chat m hi)" -H "X-SESSION-ID: $k" >/dev/null
    [ "$(hdr "$MG_TMP/cs.h" x-modelgate-version)" = "$(awk -v k="$k" '$1 == k { print $2 }' "$MG_TMP/keys2")" ] && same=$((same + 1))
done
check_eq "X-SESSION-ID in capitals finds the same version for 8 keys" "$same" 8
sc_req "$MG_TMP/cc" "$(chat m hi)" -H 'X-CANARY: yes' >/dev/null
check_eq "X-CANARY: yes in capitals matches the rule" "$(hdr "$MG_TMP/cc.h" x-modelgate-version)" v2

# --- endpoints inside a version ---------------------------------------------------

# lb_split CONNS N: N requests for model lb; sets lb_ok, b1, b3 (requests each
# backend served).
lb_split() {
    local c1 c3
    c1=$(mval "$S1" vllm:request_success_total 'model_name="lb"'); c3=$(mval "$S3" vllm:request_success_total 'model_name="lb"')
    lb_ok=$(load --conns "$1" --requests "$2" --path /v1/chat/completions --body "$(chat lb hi)" | jq -r .ok)
    b1=$(( $(mval "$S1" vllm:request_success_total 'model_name="lb"') - ${c1:-0} ))
    b3=$(( $(mval "$S3" vllm:request_success_total 'model_name="lb"') - ${c3:-0} ))
}
# One at a time both endpoints have nothing in flight: the tie is broken at
# random, so each gets about half.
lb_split 1 1000
check_eq "two endpoints in one version: 1000 sequential requests all 200" "$lb_ok|$((b1 + b3))" "1000|1000"
check "...ties split about evenly (s1 $b1, s3 $b3; each >= 40%)" eval '[ "$b1" -ge 400 ] && [ "$b3" -ge 400 ]'
# 8 at a time the least busy is preferred: a slower backend may get less,
# but both serve.
lb_split 8 2000
check "8 at a time: 2000 requests all 200, both endpoints serve (s1 $b1, s3 $b3; each >= 10%)" eval '[ "$lb_ok" = 2000 ] && [ "$b1" -ge 200 ] && [ "$b3" -ge 200 ]'

# --- wildcard, /v1/models -------------------------------------------------------------

st=$(sc_req "$MG_TMP/w" "$(chat other hi)")
check_eq "a model without its own route goes to the \"*\" route" "$st|$(hdr "$MG_TMP/w.h" x-modelgate-version)|$(jq -r .model <"$MG_TMP/w.b")" "200|any|other"
models_json=$(curl -s --max-time 5 "http://127.0.0.1:$SC_PORT/v1/models")
check_eq "GET /v1/models lists the routes' models" "$(jq -r '.object + ":" + ([.data[].id | select(. != "*")] | sort | join(","))' <<<"$models_json" 2>/dev/null)" "list:echo,lb,m,short-keepalive,z"
check_eq "GET /v1/models entries are OpenAI model objects" "$(jq -r '[.data[] | .object] | unique | join(",")' <<<"$models_json" 2>/dev/null)" model

# Client-chosen model names must not grow the metrics without bound: 200
# distinct names through the "*" route (sidecar_errors.sh: names no route
# takes).
w0=$(scm modelgate_requests_total 'version="any"')
args=()
for i in $(seq 200); do args+=(--next -s -o /dev/null "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' -d "$(chat "other-$i" hi)"); done
curl --max-time $((30 * slow)) "${args[@]:1}" 2>/dev/null
series=$(curl -s --max-time 5 "http://127.0.0.1:$SC_ADMIN/metrics" | grep -c '^modelgate_requests_total{')
check "200 model names through the \"*\" route add no series per name ($series requests_total series)" [ "$series" -le 40 ]
check_eq "...all 200 were answered through it" "$(( $(scm modelgate_requests_total 'version="any"') - w0 ))" 200
st=$(sc_req "$MG_TMP/o" "$(chat other-1 hi)")
check_eq "...while each is still routed by the \"*\" route (the backend does not know it: its 404)" "$st|$(hdr "$MG_TMP/o.h" x-modelgate-version)|$(jq -r .error.code <"$MG_TMP/o.b")" "404|any|model_not_found"

# --- what the upstream receives -----------------------------------------------------

tp=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
st=$(sc_req "$MG_TMP/e1" "$(chat echo hi)" -H "traceparent: $tp" -H 'X-Request-Id: trace-me-1')
up=$(cat "$MG_TMP/e1.b")
check_eq "echo route answers 200 with the upstream's view" "$st|$(jq -r .method <<<"$up")|$(jq -r .url <<<"$up")" "200|POST|/v1/chat/completions"
check "traceparent is passed on with the client's trace id ($(jq -r .headers.traceparent <<<"$up"))" \
    eval '[[ "$(jq -r .headers.traceparent <<<"$up")" =~ ^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-[0-9a-f]{2}$ ]]'
check_eq "x-request-id is passed upstream" "$(jq -r '.headers["x-request-id"]' <<<"$up")" trace-me-1
sc_req "$MG_TMP/e2" "$(chat echo hi)" >/dev/null
sc_req "$MG_TMP/e3" "$(chat echo hi)" >/dev/null
t2=$(jq -r .headers.traceparent <"$MG_TMP/e2.b"); t3=$(jq -r .headers.traceparent <"$MG_TMP/e3.b")
check "without one, a valid traceparent is made ($t2)" eval '[[ "$t2" =~ ^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$ ]] && [[ "$t2" != 00-00000000000000000000000000000000-* ]]'
check "...with a new trace id per request" [ "${t2:3:32}" != "${t3:3:32}" ]
check_eq "the made x-request-id is the one the upstream saw" "$(jq -r '.headers["x-request-id"]' <"$MG_TMP/e2.b")" "$(hdr "$MG_TMP/e2.h" x-request-id)"

# A 600 KB body (under the 1 MiB default cap) whose "model" comes last: the
# sidecar must read past the messages to route it, and pass it intact.
big=$(head -c 600000 /dev/zero | tr '\0' 'a')
printf '{"messages":[{"role":"user","content":"%s"}],"stream":false,"model":"echo"}' "$big" >"$MG_TMP/big.json"
sum=$(sha256sum "$MG_TMP/big.json" | cut -d' ' -f1)
len=$(stat -c %s "$MG_TMP/big.json")
st=$(curl -s --max-time $((10 * slow)) -o "$MG_TMP/big.out" -w '%{http_code}' "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' --data-binary @"$MG_TMP/big.json")
check_eq "a 600 KB body with model last is routed and arrives intact (Content-Length)" "$st|$(jq -r '"\(.body_len)|\(.body_sha256)"' <"$MG_TMP/big.out")" "200|$len|$sum"
st=$(curl -s --max-time $((10 * slow)) -o "$MG_TMP/big.out" -w '%{http_code}' "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/big.json")
check_eq "the same body sent chunked arrives intact" "$st|$(jq -r '"\(.body_len)|\(.body_sha256)"' <"$MG_TMP/big.out")" "200|$len|$sum"

# Only the top-level "model" routes: not one nested deeper, not the text
# "model" inside a string; keys and values are read unescaped, as the
# backend will read them; a repeated "model" is refused.
# route_of BODY: "STATUS VERSION" for a request with that body.
route_of() { local st; st=$(sc_req "$MG_TMP/ro" "$1"); echo "$st $(hdr "$MG_TMP/ro.h" x-modelgate-version)"; }
check_eq "a nested \"model\" and the text \"model\" in a string do not route" \
    "$(route_of '{"messages":[{"role":"user","content":"\"model\":\"m\"","model":"m"}],"metadata":{"model":"m"},"model":"echo"}')" "200 e1"
check_eq "whitespace and newlines around the members" "$(route_of "$(printf '{\n  "model"  :\t"echo" ,\n  "messages" : [ ]\n}\n')")" "200 e1"
check_eq "an escaped model name is routed by its value (\\u0065cho is echo)" "$(route_of '{"model":"\u0065cho","messages":[]}')" "200 e1"
check_eq "an escaped key (mod\\u0065l) is the model key" "$(route_of '{"mod\u0065l":"echo","messages":[]}')" "200 e1"
st=$(sc_req "$MG_TMP/dup" '{"model":"m","messages":[],"model":"echo"}')
check_eq "a repeated \"model\" is refused with 400 and an OpenAI-style error" "$st|$(oai_error "$MG_TMP/dup.b")" "400|ok"
st=$(curl -s --max-time $((10 * slow)) -o "$MG_TMP/big.out" -w '%{http_code}' "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' -H 'Expect: 100-continue' --data-binary @"$MG_TMP/big.json")
check_eq "a body sent after Expect: 100-continue arrives intact" "$st|$(jq -r '"\(.body_len)|\(.body_sha256)"' <"$MG_TMP/big.out")" "200|$len|$sum"
check "...and the upstream did not see the Expect header" [ "$(jq -r '.headers.expect // "none"' <"$MG_TMP/big.out")" = none ]

# A backend that closes idle keep-alive connections after 200 ms: pooled
# connections it closed are not used, also when a request races the close.
n=0
for d in 0.3 0.25 0.2 0.19 0.21 0.2 0.18 0.22; do
    sleep "$d"
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$SC_PORT/v1/chat/completions" -H 'Content-Type: application/json' -d "$(chat short-keepalive hi)")" = 200 ] && n=$((n + 1))
done
check_eq "a backend closing idle connections after 200 ms: 8 requests spaced about that much all 200" "$n" 8

check "the sidecar is still running" sc_alive sc
sc_clean_exit sc
finish
