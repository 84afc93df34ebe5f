#!/usr/bin/env bash
# modelgate-apiserver's watches seen with curl: events after a
# resourceVersion only, the current state as ADDED without one, live events
# arriving at once, 410 Expired past the kept history, BOOKMARK events,
# timeoutSeconds closing the stream, selectors, Table events, and a client
# that stops reading being cut instead of buffered without bound.
. "$MG_TOP/tests/integration/lib.sh"
. "$MG_TOP/tests/integration/apiserver.inc"

as_start srv --watch-history 20 --bookmark-interval 300ms || bail "apiserver did not start: $(cat "$MG_TMP/srv.log")"
CM=/api/v1/namespaces/default/configmaps

mkcm() { # NAME [LABEL]
    local lab=""
    [ -n "${2:-}" ] && lab=",\"labels\":{\"app\":\"$2\"}"
    curl -s --max-time 10 -X POST -H 'Content-Type: application/json' "$U$CM" \
        -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"$1\"$lab},\"data\":{\"k\":\"v\"}}" |
        jq -r .metadata.resourceVersion
}
# watch QUERY [SECONDS]: the raw event lines of a watch (curl ends it).
watch() { curl -s -N --max-time "${2:-3}" "$U$CM?watch=true&$1"; }
names() { jq -r '"\(.type) \(.object.metadata.name)"' | tr '\n' ' ' | sed 's/ $//'; }

rv0=$(mkcm c0)
rv1=$(mkcm c1)
rv2=$(mkcm c2 blue)
check "writes return rising resourceVersions" [ "$rv0" -lt "$rv1" ] && [ "$rv1" -lt "$rv2" ]

check_eq "a watch from an RV replays only later events" "$(watch "resourceVersion=$rv0&timeoutSeconds=1" | names)" \
    "ADDED c1 ADDED c2"
check_eq "a watch from the newest RV but one resumes after it" "$(watch "resourceVersion=$rv1&timeoutSeconds=1" | names)" \
    "ADDED c2"
check_eq "a watch without an RV starts with the current state" "$(watch "timeoutSeconds=1" | names)" \
    "ADDED c0 ADDED c1 ADDED c2"
check_eq "resourceVersion=0 also starts with the current state" "$(watch "resourceVersion=0&timeoutSeconds=1" | names)" \
    "ADDED c0 ADDED c1 ADDED c2"
check_eq "a label selector filters watch events" "$(watch "labelSelector=app%3Dblue&timeoutSeconds=1" | names)" \
    "ADDED c2"
check_eq "a field selector on metadata.name filters watch events" \
    "$(watch "fieldSelector=metadata.name%3Dc1&timeoutSeconds=1" | names)" "ADDED c1"

# Live: an event is on the wire as soon as the write is acknowledged.
rvnow=$(jget "$CM" | jq -r .metadata.resourceVersion)
( curl -s -N --max-time 10 "$U$CM?watch=true&resourceVersion=$rvnow&timeoutSeconds=8" >"$MG_TMP/live.out" ) &
lpid=$!
mg_pids+=("$lpid")
sleep 0.5
t0=$(date +%s%N)
curl -s --max-time 5 -X PATCH -H 'Content-Type: application/merge-patch+json' "$U$CM/c1" -d '{"data":{"k":"v2"}}' >/dev/null
got_live() { grep -q '"MODIFIED"' "$MG_TMP/live.out"; }
if wait_for 3 got_live; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    ok "a live MODIFIED event arrives (${ms} ms after the write)"
    check "the live event arrived within 2 s (not held back)" [ "$ms" -lt 2000 ]
else
    not_ok "a live MODIFIED event arrives" "$(cat "$MG_TMP/live.out")"
fi
curl -s --max-time 5 -X DELETE "$U$CM/c0" >/dev/null
got_del() { grep -q '"DELETED"' "$MG_TMP/live.out"; }
check "a DELETED event carries the object's last state" wait_for 3 got_del
check_eq "the DELETED event names the object" "$(grep '"DELETED"' "$MG_TMP/live.out" | jq -r .object.metadata.name)" "c0"
stop_pid "$lpid"

# timeoutSeconds: the server ends the stream cleanly (curl exit 0).
t0=$(date +%s%N)
curl -s -N --max-time 10 -o /dev/null "$U$CM?watch=true&timeoutSeconds=1"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "timeoutSeconds ends the stream cleanly" "$rc" "0"
check "timeoutSeconds=1 closes after about 1 s (${ms} ms)" [ "$ms" -ge 900 ] && [ "$ms" -lt 3000 ]

# Bookmarks: only when asked for, carrying the current resourceVersion.
out=$(watch "resourceVersion=$rv2&allowWatchBookmarks=true&timeoutSeconds=1")
cur=$(jget "$CM" | jq -r .metadata.resourceVersion)
bm=$(grep '"BOOKMARK"' <<<"$out" | head -n 1)
check "allowWatchBookmarks brings BOOKMARK events" [ -n "$bm" ]
check_eq "a BOOKMARK carries kind and the current resourceVersion" \
    "$(jq -r '"\(.object.kind) \(.object.metadata.resourceVersion)"' <<<"$bm")" "ConfigMap $cur"
check_eq "no BOOKMARK without allowWatchBookmarks" \
    "$(watch "resourceVersion=$rv2&timeoutSeconds=1" | grep -c BOOKMARK)" "0"

# An object leaving a label selector is DELETED for that watch; one
# entering it is ADDED.
rvnow=$(jget "$CM" | jq -r .metadata.resourceVersion)
( curl -s -N --max-time 10 "$U$CM?watch=true&labelSelector=app%3Dblue&resourceVersion=$rvnow&timeoutSeconds=3" >"$MG_TMP/sel.out" ) &
spid=$!
mg_pids+=("$spid")
sleep 0.5
curl -s --max-time 5 -o /dev/null -X PATCH -H 'Content-Type: application/merge-patch+json' "$U$CM/c2" -d '{"metadata":{"labels":{"app":"red"}}}'
curl -s --max-time 5 -o /dev/null -X PATCH -H 'Content-Type: application/merge-patch+json' "$U$CM/c1" -d '{"metadata":{"labels":{"app":"blue"}}}'
curl -s --max-time 5 -o /dev/null -X PATCH -H 'Content-Type: application/merge-patch+json' "$U$CM/c1" -d '{"data":{"k":"v3"}}'
wait "$spid"
check_eq "a selector watch sees objects leave (DELETED) and enter (ADDED) it" "$(names <"$MG_TMP/sel.out")" \
    "DELETED c2 ADDED c1 MODIFIED c1"

# Table events for kubectl get -w.
out=$(curl -s -N --max-time 3 -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json' \
    "$U$CM?watch=true&fieldSelector=metadata.name%3Dc2&timeoutSeconds=1")
check_eq "Table watch events carry a one-row Table" "$(jq -r '"\(.object.kind) \(.object.rows | length) \(.object.rows[0].cells[0])"' <<<"$out")" \
    "Table 1 c2"

# 410 Expired: the history keeps 20 events; 30 more writes push rv2 out.
for i in $(seq 30); do mkcm "x$i" >/dev/null; done
t0=$(date +%s%N)
out=$(watch "resourceVersion=$rv2" 10)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "a watch older than the history gets one ERROR event" "$(wc -l <<<"$out" | tr -d ' ')" "1"
check_eq "the ERROR is a 410 Expired Status" "$(jq -r '"\(.type) \(.object.kind) \(.object.code) \(.object.reason)"' <<<"$out")" \
    "ERROR Status 410 Expired"
check "the stream closes after the 410 (${ms} ms)" [ "$ms" -lt 3000 ]

out=$(watch "resourceVersion=999999999" 5)
check_eq "a watch from a future resourceVersion gets a 504 ERROR, then the end" \
    "$(jq -r '"\(.type) \(.object.code) \(.object.details.causes[0].reason)"' <<<"$out")" "ERROR 504 ResourceVersionTooLarge"

# A client that stops reading is cut, not buffered without bound.
big=$(head -c 1000000 /dev/zero | tr '\0' 'a')
exec 3<>"/dev/tcp/127.0.0.1/$AS_PORT"
printf 'GET %s?watch=true HTTP/1.1\r\nHost: x\r\n\r\n' "$CM" >&3
sleep 0.3
for i in $(seq 60); do
    printf '{"metadata":{"name":"big%d"},"data":{"k":"%s"}}' "$i" "$big" >"$MG_TMP/big.json"
    curl -s --max-time 10 -o /dev/null -X POST -H 'Content-Type: application/json' "$U$CM" --data-binary @"$MG_TMP/big.json"
    grep -q '"watch cut"' "$MG_TMP/srv.log" && break
done
echo "# the watcher was cut after $i writes of 1 MB"
exec 3>&-
check "a watcher that does not read is cut" grep -q '"watch cut"' "$MG_TMP/srv.log"
check_eq "the server still answers after cutting it" "$(code GET /healthz)" "200"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$(pid_of srv)/status" 2>/dev/null)
check "the server's memory stays bounded (${rss} KiB)" [ -n "$rss" ] && [ "$rss" -lt 400000 ]

as_stop srv
finish
