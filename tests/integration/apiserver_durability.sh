#!/usr/bin/env bash
# modelgate-apiserver keeps what it acknowledged: a stream of writes, kill
# -9 in the middle, a restart on the same --data, every acknowledged object
# there and the resourceVersion still rising. Two writers with the same
# resourceVersion: exactly one wins, the other gets 409. Bad input gets the
# right Status (400, 404, 409, 413, 415, 422), a token file makes 401, and
# TLS flags are refused clearly.
. "$MG_TOP/tests/integration/lib.sh"
. "$MG_TOP/tests/integration/apiserver.inc"

CM=/api/v1/namespaces/default/configmaps
JSON=(-H 'Content-Type: application/json')

# --- durability: kill -9 during a stream of writes -------------------------

as_start srv1 || bail "apiserver did not start: $(cat "$MG_TMP/srv1.log")"
acked=$MG_TMP/acked
: >"$acked"
writer() {
    local i out
    for i in $(seq 5000); do
        out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM" \
            -d "{\"metadata\":{\"name\":\"d$i\"},\"data\":{\"i\":\"$i\"}}") || break
        [ "${out##* }" = 201 ] || break
        [[ "$out" =~ \"resourceVersion\":\"([0-9]+)\" ]] || break
        printf 'd%s %s\n' "$i" "${BASH_REMATCH[1]}" >>"$acked"
    done
}
writer &
wpid=$!
mg_pids+=("$wpid")
enough() { [ "$(wc -l <"$acked")" -ge 100 ]; }
wait_for 30 enough
stop_pid "$(pid_of srv1)" KILL
wait "$wpid" 2>/dev/null
n=$(wc -l <"$acked")
echo "# $n writes acknowledged before kill -9"
check "writes were acknowledged before the kill" [ "$n" -ge 100 ]
maxrv=$(awk '{print $2}' "$acked" | sort -n | tail -n 1)

as_start srv2 --fsync || bail "apiserver did not restart: $(cat "$MG_TMP/srv2.log")"
jget "$CM" | jq -r '.items[] | "\(.metadata.name) \(.metadata.resourceVersion)"' | sort >"$MG_TMP/stored"
missing=$(sort "$acked" | comm -23 - "$MG_TMP/stored" | head -n 5)
check_eq "every acknowledged write survived kill -9 (same name and resourceVersion)" "$missing" ""
rv=$(curl -s --max-time 5 -X POST "${JSON[@]}" "$U$CM" -d '{"metadata":{"name":"after-restart"}}' | jq -r .metadata.resourceVersion)
check "the resourceVersion keeps rising after the restart ($maxrv -> $rv)" [ "$rv" -gt "$maxrv" ]
check "the restarted server runs with --fsync" grep -q '"fsync":true' "$MG_TMP/srv2.log"
listrv=$(jget "$CM" | jq -r .metadata.resourceVersion)
check_eq "a list's resourceVersion is the newest write's" "$listrv" "$rv"

# --- race: two writers with the same resourceVersion -------------------------

curl -s --max-time 5 -o /dev/null -X POST "${JSON[@]}" "$U$CM" -d '{"metadata":{"name":"race"},"data":{"w":"0"}}'
for round in 1 2 3; do
    cur=$(jget "$CM/race")
    rv=$(jq -r .metadata.resourceVersion <<<"$cur")
    for w in a b; do
        jq -c --arg w "$w$round" '.data.w = $w' <<<"$cur" >"$MG_TMP/put-$w"
    done
    curl -s --max-time 5 -o "$MG_TMP/out-a" -w '%{http_code}\n' -X PUT "${JSON[@]}" "$U$CM/race" --data-binary @"$MG_TMP/put-a" >"$MG_TMP/code-a" &
    p1=$!
    curl -s --max-time 5 -o "$MG_TMP/out-b" -w '%{http_code}\n' -X PUT "${JSON[@]}" "$U$CM/race" --data-binary @"$MG_TMP/put-b" >"$MG_TMP/code-b" &
    p2=$!
    wait "$p1" "$p2"
    codes=$(cat "$MG_TMP/code-a" "$MG_TMP/code-b" | sort | tr '\n' ' ' | sed 's/ $//')
    check_eq "race round $round: one PUT wins, the other gets 409" "$codes" "200 409"
    loser=$([ "$(cat "$MG_TMP/code-a")" = 409 ] && echo a || echo b)
    winner=$([ "$loser" = a ] && echo b || echo a)
    check_eq "race round $round: the loser's Status is a Conflict" "$(jq -r .reason "$MG_TMP/out-$loser")" "Conflict"
    check_eq "race round $round: the winner's write is stored" "$(jget "$CM/race" | jq -r .data.w)" "$winner$round"
done
out=$(curl -s --max-time 5 -X PUT "${JSON[@]}" "$U$CM/race" --data-binary @"$MG_TMP/put-a")
contains "a stale resourceVersion gets Kubernetes' conflict message" "$out" \
    'Operation cannot be fulfilled on configmaps \"race\": the object has been modified; please apply your changes to the latest version and try again'

# --- bad input ------------------------------------------------------------------

out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM" -d '{"metadata": {"name": "x",}')
check_eq "malformed JSON is a 400 BadRequest Status" "$(jq -r '"\(.kind) \(.reason) \(.code)"' <<<"${out% *}") ${out##* }" \
    "Status BadRequest 400 400"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST -H 'Content-Type: application/yaml' "$U$CM" \
    --data-binary $'metadata:\n  name: [x\n')
check_eq "malformed YAML is a 400 BadRequest Status" "$(jq -r '"\(.kind) \(.reason)"' <<<"${out% *}") ${out##* }" \
    "Status BadRequest 400"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST -H 'Content-Type: application/yaml' "$U$CM" \
    --data-binary $'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n')
check_eq "a YAML body is accepted" "${out##* }" "201"
head -c $((3 * 1024 * 1024 + 10)) /dev/zero | tr '\0' 'a' >"$MG_TMP/huge"
out=$(curl -s --max-time 10 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM" --data-binary @"$MG_TMP/huge")
check_eq "a body past 3 MiB is refused with 413" "${out##* }" "413"
check_eq "the 413 is a Status" "$(jq -r .reason <<<"${out% *}" 2>/dev/null)" "RequestEntityTooLarge"
out=$(curl -s --max-time 5 -w ' %{http_code}' "$U/api/v1/namespaces/default/gadgets")
check_eq "an unknown resource is a 404 NotFound Status" "$(jq -r '"\(.kind) \(.reason)"' <<<"${out% *}") ${out##* }" \
    "Status NotFound 404"
check_eq "an unknown group is 404" "$(code GET /apis/nope.example.com/v1/things)" "404"
out=$(curl -s --max-time 5 -w ' %{http_code}' "$U$CM/nope")
check_eq "a missing object is 404 with its name" "$(jq -r .message <<<"${out% *}") ${out##* }" 'configmaps "nope" not found 404'
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U/api/v1/namespaces/ghost/configmaps" -d '{"metadata":{"name":"x"}}')
check_eq "create in a missing namespace is 404 naming the namespace" "$(jq -r .message <<<"${out% *}") ${out##* }" \
    'namespaces "ghost" not found 404'
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM" -d '{"metadata":{"name":"race"}}')
check_eq "create of an existing name is 409 AlreadyExists" "$(jq -r .reason <<<"${out% *}") ${out##* }" "AlreadyExists 409"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM" -d '{"metadata":{"name":"Bad_Name"}}')
check_eq "an invalid name is 422 Invalid with a cause on metadata.name" \
    "$(jq -r '"\(.reason) \(.details.causes[0].field)"' <<<"${out% *}") ${out##* }" "Invalid metadata.name 422"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM" -d '{"metadata":{"name":"l","labels":{"a":"not ok!"}}}')
check_eq "an invalid label value is 422" "${out##* }" "422"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$CM?dryRun=All" -d '{"metadata":{"name":"dry"}}')
check_eq "dryRun=All answers as a create would" "${out##* }" "201"
check_eq "dryRun=All stores nothing" "$(code GET "$CM/dry")" "404"
gen=$(curl -s --max-time 5 -X POST "${JSON[@]}" "$U$CM" -d '{"metadata":{"generateName":"gen-"}}' | jq -r .metadata.name)
if [[ "$gen" =~ ^gen-[a-z0-9]{5}$ ]]; then ok "generateName adds a random suffix ($gen)"; else
    not_ok "generateName adds a random suffix" "got '$gen'"; fi
check_eq "an unknown dryRun value is refused" "$(code POST "$CM?dryRun=Some" "${JSON[@]}" -d '{"metadata":{"name":"dry"}}')" "400"
check_eq "an unknown patch type is 415" "$(code PATCH "$CM/race" -H 'Content-Type: text/plain' -d 'x')" "415"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X PATCH -H 'Content-Type: application/json-patch+json' "$U$CM/race" \
    -d '[{"op":"test","path":"/data/w","value":"nope"}]')
check_eq "a failed JSON patch test is 422" "${out##* }" "422"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X DELETE "${JSON[@]}" "$U$CM/race" -d '{"propagationPolicy":"Sometimes"}')
check_eq "an unknown propagationPolicy is 422" "${out##* }" "422"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X DELETE "$U/api/v1/namespaces/default")
check_eq "the default namespace cannot be deleted" "$(jq -r .reason <<<"${out% *}") ${out##* }" "Forbidden 403"
check_eq "a bad label selector is 400" "$(code GET "$CM?labelSelector=a%20in%20(")" "400"
check_eq "an unsupported field selector is 400" "$(code GET "$CM?fieldSelector=spec.x%3Dy")" "400"

# limit and continue walk the whole list once.
names=""
cont=""
pages=0
for i in $(seq 100); do
    page=$(jget "$CM?limit=40&continue=$cont")
    names+=$(jq -r '.items[].metadata.name' <<<"$page")$'\n'
    cont=$(jq -r '.metadata.continue // empty' <<<"$page")
    pages=$((pages + 1))
    [ -z "$cont" ] && break
done
all=$(jget "$CM" | jq -r '.items[].metadata.name' | sort)
check_eq "limit/continue pages cover the list exactly once" "$(grep -v '^$' <<<"$names" | sort)" "$all"
check "limit=40 made several pages ($pages)" [ "$pages" -ge 3 ]

as_stop srv2

# --- a token file: 401 without it ------------------------------------------------

echo "s3cret-token" >"$MG_TMP/token"
AS_PORT=$(free_port)
U=http://127.0.0.1:$AS_PORT
as_start srv3 --token-file "$MG_TMP/token" || bail "apiserver with a token did not start: $(cat "$MG_TMP/srv3.log")"
out=$(curl -s --max-time 5 -w ' %{http_code}' "$U/api/v1/namespaces")
check_eq "no token: 401 Unauthorized Status" "$(jq -r '"\(.kind) \(.reason)"' <<<"${out% *}") ${out##* }" "Status Unauthorized 401"
check_eq "a wrong token: 401" "$(code GET /api/v1/namespaces -H 'Authorization: Bearer wrong')" "401"
check_eq "the right token: 200" "$(code GET /api/v1/namespaces -H 'Authorization: Bearer s3cret-token')" "200"
check_eq "/version answers without a token (kubectl's dispatcher asks it first)" "$(code GET /version)" "200"
# kubectl (client-go's clientcmd) sends kubeconfig credentials only over
# TLS, which is not served yet: the token is for other clients (curl, the
# operator). The kubeconfig must still carry it, usable as is.
tok=$(awk '/token:/ {gsub(/"/, "", $2); print $2}' "$KUBECONFIG")
check_eq "the written kubeconfig carries the token" "$tok" "s3cret-token"
check_eq "the kubeconfig's server and token work" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $tok" \
        "$(awk '/server:/ {print $2}' "$KUBECONFIG")/api/v1/namespaces/default")" "200"
as_stop srv3
grep -q "only loopback peers" "$MG_TMP/srv2.log" && ok "without a token file the server says it accepts loopback only" ||
    not_ok "without a token file the server says it accepts loopback only" "$(head -3 "$MG_TMP/srv2.log")"

out=$("$AS_BIN" --listen 127.0.0.1:0 --data "$MG_TMP/tls" --tls-cert a --tls-key b 2>&1)
rc=$?
check_eq "--tls-cert with a missing file fails to start (exit 1)" "$rc" "1"
contains "--tls-cert with a missing file names the file" "$out" "cannot load the certificate a: No such file or directory"
out=$("$AS_BIN" --listen 127.0.0.1:0 --data "$MG_TMP/tls" --tls-cert a 2>&1)
rc=$?
check_eq "--tls-cert without --tls-key is refused (exit 2)" "$rc" "2"
contains "--tls-cert without --tls-key says they go together" "$out" "go together"

finish
