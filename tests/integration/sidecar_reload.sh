#!/usr/bin/env bash
# modelgate-sidecar route-table reloads, with 2 workers: by SIGHUP, by a
# change of the config file alone, and by POST /config with the bearer token
# (401 without it); the admin endpoints (/healthz, /readyz, GET /config,
# modelgate_config_generation, modelgate_config_reloads_total); invalid
# tables refused on every path with the old table kept (GET /config
# unchanged, traffic still flowing by the old weights, the refusal
# counted); a stream in flight finishing on the table it started with; and
# all three reload paths exercised under load with zero failed requests.
# Only 127.0.0.1; every process ours, by PID.
. "$MG_TOP/tests/integration/sidecar-lib.bash"

start_sim v1 --model m --model s --version v1 --tokens 4 --seed 1 || bail "modelsim v1 did not start"
V1=$sim_port
start_sim v2 --model m --model s --version v2 --tokens 4 --seed 1 || bail "modelsim v2 did not start"
V2=$sim_port
start_sim slow --model s --version v1 --itl-ms 100 --tokens 10 --seed 1 || bail "modelsim slow did not start"
SLOW=$sim_port
sc_ports
TOKEN=s3cret-$RANDOM$RANDOM
printf '%s\n' "$TOKEN" >"$MG_TMP/token"
# The table in a directory of its own, as a ConfigMap mount would be: the
# sidecar watches the directory, and our logs are written next door.
mkdir -p "$MG_TMP/conf"
CFG=$MG_TMP/conf/sc.yaml

# table W1 W2 [SVER]: the route table, route m weighted W1/W2; route s is
# served by version v1 on the slow backend, or with SVER=v9 by v9 on v2's.
table() {
    local s_ep=$SLOW
    [ "${3:-v1}" = v9 ] && s_ep=$V2
    cat <<EOF
listen: 127.0.0.1:$SC_PORT
admin: 127.0.0.1:$SC_ADMIN
workers: 2
routes:
  - model: m
    versions:
      - { name: v1, weight: $1, endpoints: [127.0.0.1:$V1] }
      - { name: v2, weight: $2, endpoints: [127.0.0.1:$V2] }
  - model: s
    versions:
      - { name: ${3:-v1}, weight: 1, endpoints: [127.0.0.1:$s_ep] }
EOF
}
# write_cfg ARGS...: the table written atomically (a rename).
write_cfg() { table "$@" >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"; }
# json_table W1 W2 [SVER]: the same table as JSON, for POST /config.
json_table() {
    local s_ep=$SLOW
    [ "${3:-v1}" = v9 ] && s_ep=$V2
    printf '{"listen":"127.0.0.1:%s","admin":"127.0.0.1:%s","workers":2,"routes":[{"model":"m","versions":[{"name":"v1","weight":%s,"endpoints":["127.0.0.1:%s"]},{"name":"v2","weight":%s,"endpoints":["127.0.0.1:%s"]}]},{"model":"s","versions":[{"name":"%s","weight":1,"endpoints":["127.0.0.1:%s"]}]}]}' \
        "$SC_PORT" "$SC_ADMIN" "$1" "$V1" "$2" "$V2" "${3:-v1}" "$s_ep"
}
# post_config BODY [CURL_ARGS...]: POST /config; body in $MG_TMP/pc.b, prints the status.
post_config() {
    local b=$1; shift
    curl -s --max-time $((5 * slow)) -o "$MG_TMP/pc.b" -w '%{http_code}' "$@" "http://127.0.0.1:$SC_ADMIN/config" \
        -H 'Content-Type: application/json' --data-binary "$b"
}
auth=(-H "Authorization: Bearer $TOKEN")
shown() { curl -s --max-time 5 "http://127.0.0.1:$SC_ADMIN/config" | jq -c '[.routes[] | select(.model == "m") | .versions[].weight]' 2>/dev/null; }
# split N: N requests for model m over 8 connections; prints "ok v1 v2".
split() { load --conns 8 --requests "$1" --path /v1/chat/completions --body "$(chat m hi)" --backend-header x-modelsim-version | jq -r '"\(.ok) \(.versions.v1 // 0) \(.versions.v2 // 0) \(.backend_mismatch)"'; }
# Reload outcomes, whatever the label values are called.
reloads() {
    curl -s --max-time 5 "http://127.0.0.1:$SC_ADMIN/metrics" | awk -v want="$1" '
        $1 ~ /^modelgate_config_reloads_total\{/ {
            r = $1; sub(/.*result="/, "", r); sub(/".*/, "", r)
            good = (r ~ /^(ok|success|succeeded|accepted|applied)$/)
            if ((want == "ok" && good) || (want == "refused" && !good)) s += $NF
        }
        END { print s + 0 }'
}

write_config() { write_cfg 100 0; }
write_config
start_sidecar sc "$CFG" --admin-token-file "$MG_TMP/token" || bail "sidecar did not start: $(tail -5 "$MG_TMP/sc.log")"
A=http://127.0.0.1:$SC_ADMIN

# --- admin endpoints ----------------------------------------------------------------

check_eq "GET /healthz is 200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$A/healthz")" 200
check_eq "GET /readyz is 200" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$A/readyz")" 200
cfg=$(curl -s --max-time 5 "$A/config")
check_eq "GET /config shows the table in force (JSON)" "$(jq -c '[.listen, .workers, [.routes[].model], [.routes[0].versions[].name]]' <<<"$cfg" 2>/dev/null)" "[\"127.0.0.1:$SC_PORT\",2,[\"m\",\"s\"],[\"v1\",\"v2\"]]"
check "GET /config fills in the defaults (route timeouts: $(jq -c .routes[0].timeouts <<<"$cfg" 2>/dev/null))" \
    eval '[ "$(jq -r ".routes[0].timeouts | has(\"connect\") and has(\"firstToken\") and has(\"idle\") and has(\"total\")" <<<"$cfg")" = true ]'
check_eq "modelgate_config_generation starts at 1" "$(mval "$SC_ADMIN" modelgate_config_generation)" 1
read -r ok n1 n2 mm <<<"$(split 400)"
check_eq "weights 100/0: 400 requests all on v1" "$ok|$n1|$n2|$mm" "400|400|0|0"

# --- SIGHUP -------------------------------------------------------------------------------

g=$(scm modelgate_config_generation); ok0=$(reloads ok)
write_cfg 0 100
kill -HUP "$(pid_of sc)"
check "SIGHUP: the new table is taken (generation above $g)" wait_for $((5 * slow)) gen_above "$g"
check "SIGHUP: the sidecar is still running" sc_alive sc
check_eq "SIGHUP: GET /config shows weights 0/100" "$(shown)" "[0,100]"
read -r ok n1 n2 mm <<<"$(split 400)"
check_eq "SIGHUP: 400 requests over both workers all on v2 now" "$ok|$n1|$n2|$mm" "400|0|400|0"
check "SIGHUP: modelgate_config_reloads_total counts an accepted reload" [ "$(reloads ok)" -gt "$ok0" ]

# --- the file changes, no signal -----------------------------------------------------------

g=$(scm modelgate_config_generation)
write_cfg 100 0
check "file change alone: the new table is taken (generation above $g)" wait_for $((5 * slow)) gen_above "$g"
check_eq "file change alone: GET /config shows weights 100/0" "$(shown)" "[100,0]"
read -r ok n1 n2 mm <<<"$(split 400)"
check_eq "file change alone: 400 requests all on v1" "$ok|$n1|$n2|$mm" "400|400|0|0"
# Rewritten in place (not renamed): the sidecar must end up on the whole new file.
g=$(scm modelgate_config_generation)
table 0 100 >"$CFG"
check "file rewritten in place: taken" wait_for $((5 * slow)) eval '[ "$(shown)" = "[0,100]" ]'
check "file rewritten in place: the generation went up" gen_above "$g"

# --- POST /config -----------------------------------------------------------------------------

g=$(scm modelgate_config_generation)
st=$(post_config "$(json_table 100 0)")
check_eq "POST /config without a token: 401" "$st" 401
check_eq "...with an OpenAI-style error body" "$(oai_error "$MG_TMP/pc.b")" ok
check_eq "POST /config with a wrong token: 401" "$(post_config "$(json_table 100 0)" -H 'Authorization: Bearer wrong')" 401
check_eq "POST /config with the token in another scheme: 401" "$(post_config "$(json_table 100 0)" -H "Authorization: Basic $TOKEN")" 401
check_eq "...and none of them changed the table" "$(scm modelgate_config_generation)|$(shown)" "$g|[0,100]"
st=$(post_config "$(json_table 100 0)" "${auth[@]}")
check_eq "POST /config with the token: 200" "$st" 200
check "POST /config: the generation went up at once" gen_above "$g"
check_eq "POST /config: GET /config shows weights 100/0" "$(shown)" "[100,0]"
read -r ok n1 n2 mm <<<"$(split 400)"
check_eq "POST /config: 400 requests all on v1" "$ok|$n1|$n2|$mm" "400|400|0|0"

# --- invalid tables are refused, the old one stays ------------------------------------------

g=$(scm modelgate_config_generation); r0=$(reloads refused)
bad=$(json_table 100 0 | jq -c '.routes[0].versions[0].weight = -5 | .routes[0].versions[1].wieght = 3 | .routes[1].versions[0].endpoints = ["127.0.0.1:99999"]')
st=$(post_config "$bad" "${auth[@]}")
check_eq "POST /config with an invalid table: 400" "$st" 400
check "...naming routes[0].versions[0].weight" grep -q 'routes\[0\]\.versions\[0\]\.weight' "$MG_TMP/pc.b"
check "...and the unknown key routes[0].versions[1].wieght" grep -q 'routes\[0\]\.versions\[1\]\.wieght' "$MG_TMP/pc.b"
check "...and the bad endpoint routes[1].versions[0].endpoints[0]" grep -q 'routes\[1\]\.versions\[0\]\.endpoints\[0\]' "$MG_TMP/pc.b"
check_eq "...the body is JSON" "$(jq -e . "$MG_TMP/pc.b" >/dev/null 2>&1 && echo json)" json
check_eq "POST /config that is not JSON: 400" "$(post_config '{"routes": [' "${auth[@]}")" 400
check_eq "an empty POST /config: 400" "$(post_config '' "${auth[@]}")" 400
head -c 6000000 /dev/zero | tr '\0' ' ' >"$MG_TMP/huge.json"
st=$(curl -s --max-time $((10 * slow)) -o "$MG_TMP/pc.b" -w '%{http_code}' "${auth[@]}" "http://127.0.0.1:$SC_ADMIN/config" -H 'Content-Type: application/json' --data-binary @"$MG_TMP/huge.json")
check "a 6 MB POST /config is refused (413 or 400: $st) and the sidecar lives" eval '{ [ "$st" = 413 ] || [ "$st" = 400 ]; } && sc_alive sc'
check_eq "refused POSTs: generation and GET /config unchanged" "$(scm modelgate_config_generation)|$(shown)" "$g|[100,0]"
check "refused POSTs: counted in modelgate_config_reloads_total ($r0 -> $(reloads refused))" [ "$(reloads refused)" -ge $((r0 + 3)) ]

r0=$(reloads refused)
printf 'listen: 127.0.0.1:%s\nroutes: [ { model: m, versions: [ {name: v1 ' "$SC_PORT" >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
kill -HUP "$(pid_of sc)"
check "a file with a YAML syntax error + SIGHUP: refused and counted" wait_for $((5 * slow)) eval '[ "$(reloads refused)" -gt "$r0" ]'
check "...the sidecar is still running" sc_alive sc
check_eq "...generation and GET /config unchanged" "$(scm modelgate_config_generation)|$(shown)" "$g|[100,0]"
read -r ok n1 n2 mm <<<"$(split 400)"
check_eq "...and traffic still flows by the old table: 400 requests all on v1" "$ok|$n1|$n2|$mm" "400|400|0|0"

r0=$(reloads refused); w0=$(grep -ci weight "$MG_TMP/sc.log")
table 0 0 >"$CFG.tmp" && mv "$CFG.tmp" "$CFG"
check "a file whose weights sum to 0, no signal: refused and counted" wait_for $((5 * slow)) eval '[ "$(reloads refused)" -gt "$r0" ]'
check_eq "...generation and GET /config unchanged" "$(scm modelgate_config_generation)|$(shown)" "$g|[100,0]"
check "...the refusal is logged with its reason (a new line naming the weights)" eval '[ "$(grep -ci weight "$MG_TMP/sc.log")" -gt "$w0" ]'
read -r ok n1 n2 mm <<<"$(split 200)"
check_eq "...and traffic still flows by the old table" "$ok|$n1|$n2" "200|200|0"
write_cfg 50 50
check "a valid file after the invalid ones is taken" wait_for $((5 * slow)) eval '[ "$(shown)" = "[50,50]" ]'

# --- a stream in flight finishes on its table -----------------------------------------------

g=$(scm modelgate_config_generation)
{ curl -sN -D "$MG_TMP/fl.h" --max-time $((10 * slow)) "http://127.0.0.1:$SC_PORT/v1/chat/completions" \
      -H 'Content-Type: application/json' -d "$(chat s hi '"stream":true')"; echo "rc $?"; } >"$MG_TMP/fl.txt" &
flight=$!
sleep 0.3
write_cfg 50 50 v9
kill -HUP "$(pid_of sc)"
wait_for $((5 * slow)) gen_above "$g"
st=$(sc_req "$MG_TMP/after" "$(chat s hi)")
check_eq "after the reload, model s goes to its new version v9" "$st|$(hdr "$MG_TMP/after.h" x-modelgate-version)|$(hdr "$MG_TMP/after.h" x-modelsim-version)" "200|v9|v2"
wait "$flight"
check_eq "the stream that started before the reload finished on its table: 10 tokens, [DONE], curl exit 0" \
    "$(grep -c '"content":"[^"]' "$MG_TMP/fl.txt")|$(grep -c '^data: \[DONE\]' "$MG_TMP/fl.txt")|$(tail -n 1 "$MG_TMP/fl.txt")" "10|1|rc 0"
check_eq "...served by the version it started on" "$(hdr "$MG_TMP/fl.h" x-modelgate-version)" v1

# --- reloads under load: zero failed requests -------------------------------------------------

write_cfg 90 10
wait_for $((5 * slow)) eval '[ "$(shown)" = "[90,10]" ]'
g=$(scm modelgate_config_generation)
# The load runs until told to stop (SIGTERM: it finishes what is in flight
# and prints its counts), so every reload below happens under it.
start_bg load "$LOAD" --connect "127.0.0.1:$SC_PORT" --conns 4 --duration-ms $((15000 * slow)) --timeout-ms $((20000 * slow)) \
    --path /v1/chat/completions --body "$(chat m hi)" --backend-header x-modelsim-version
lpid=$(pid_of load)
sleep 0.4
write_cfg 50 50
kill -HUP "$(pid_of sc)"
wait_for $((2 * slow)) gen_above "$g"
g1=$(scm modelgate_config_generation)
sleep 0.4
write_cfg 10 90
wait_for $((2 * slow)) gen_above "$g1"
g2=$(scm modelgate_config_generation)
sleep 0.4
st=$(post_config "$(json_table 70 30)" "${auth[@]}")
g3=$(scm modelgate_config_generation)
sleep 0.4
# Last, v2 leaves the table altogether (its pooled connections with it).
st2=$(post_config "$(json_table 70 30 | jq -c 'del(.routes[0].versions[1])')" "${auth[@]}")
kill -0 "$lpid" 2>/dev/null
running=$?
sleep 0.4
kill -TERM "$lpid"
wait "$lpid"
lrc=$?
res=$(grep '^{' "$MG_TMP/load.log" | tail -n 1)
echo "# load during reloads: $res"
check_eq "under load: the load tool finished (exit 0)" "$lrc" 0
check_eq "under load: POST /config answered 200" "$st" 200
check "under load: SIGHUP was taken (generation $g -> $g1)" [ "$g1" -gt "$g" ]
check "under load: the file change alone was taken within $((2 * slow)) s (generation $g1 -> $g2)" [ "$g2" -gt "$g1" ]
check "under load: POST /config was taken (generation $g2 -> $g3)" [ "$g3" -gt "$g2" ]
check_eq "under load: a POST /config removing v2 answered 200, taken while the load still ran" "$st2|$running|$(scm modelgate_config_generation)" "200|0|$((g3 + 1))"
check_eq "under load: GET /config shows the last table (v1 alone)" "$(shown)" "[70]"
check "under load: thousands of requests ran ($(j "$res" .done))" [ "$(j "$res" .done)" -ge $((1000 / slow)) ]
check_eq "under load: zero non-2xx, zero transport errors, none unfinished" "$(j "$res" '[.non2xx, .transport_errors, .unfinished] | join("|")')" "0|0|0"
check_eq "under load: every response from the backend its label names" "$(j "$res" .backend_mismatch)" 0
check "under load: both versions served as the weights moved ($(jq -c .versions <<<"$res"))" eval '[ "$(j "$res" ".versions.v1 // 0")" -gt 0 ] && [ "$(j "$res" ".versions.v2 // 0")" -gt 0 ]'

check "the sidecar is still running" sc_alive sc
sc_clean_exit sc
finish
