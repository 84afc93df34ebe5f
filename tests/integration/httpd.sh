#!/usr/bin/env bash
# The HTTP server and client cores (lib/httpd, lib/httpc) seen from outside:
# mg-testserver driven by the real curl and by raw sockets (bash /dev/tcp).
# Keep-alive, pipelining, the header/idle/body timeouts, the connection
# limit, request smuggling, 100-continue, chunked bodies both ways, streams
# that arrive as they are written, HEAD, error statuses, several workers on
# one port, and the proxy route (httpd -> httpc -> httpd) reusing upstream
# connections, streaming with backpressure and cancelling the upstream when
# the client leaves. Only 127.0.0.1; every process is ours and ended by PID.
. "$MG_TOP/tests/integration/lib.sh"

srvbin=$MG_TOOLS/mg-testserver
[ -x "$srvbin" ] || bail "mg-testserver not built"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# start NAME ARGS...: starts an mg-testserver on a free port (port 0, read
# back from --port-file) and sets $started_port. Not in a subshell: start_bg
# must record the PID in this shell so the cleanup ends it.
start() {
    local name=$1 i; shift
    started_port=
    start_bg "$name" "$srvbin" --listen 127.0.0.1:0 --port-file "$MG_TMP/$name.port" "$@"
    for i in $(seq 100); do
        [ -s "$MG_TMP/$name.port" ] && break
        sleep 0.05
    done
    started_port=$(cat "$MG_TMP/$name.port" 2>/dev/null) || return 1
    wait_port "$started_port" 5
}

# raw PORT SECONDS: sends stdin on a fresh connection, prints what comes back
# until the server closes (or SECONDS pass). The client never half-closes.
raw() {
    timeout "$2" bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0" || exit 1; cat >&3; cat <&3' "$1"
}

# counter PORT KEY: a counter from /stats (the first KEY in the JSON).
counter() {
    curl -s --max-time 5 "http://127.0.0.1:$1/stats" | grep -o "\"$2\":[0-9]*" | head -n 1 | cut -d: -f2
}

statuses() { grep -a -o 'HTTP/1\.1 [0-9][0-9][0-9]' | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//'; }

start main --header-timeout 1000 --idle-timeout 1500 --body-timeout 1500 --max-body 5000000 \
    || bail "mg-testserver did not start"
port=$started_port
U=http://127.0.0.1:$port

# --- basics ------------------------------------------------------------------

check_eq "GET / answers hello" "$(curl -s --max-time 5 "$U/")" "hello"
check_eq "unknown path is 404" "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$U/nope")" "404"

# --- keep-alive ----------------------------------------------------------------

before=$(counter "$port" accepted)
out=$(curl -sv --max-time 5 "$U/" "$U/hello" "$U/" 2>&1)
after=$(counter "$port" accepted)
if grep -q "Re-using existing connection" <<<"$out" && [ "$(grep -c '^hello' <<<"$out")" = 3 ]; then
    ok "curl reuses one keep-alive connection for three requests"
else
    not_ok "curl reuses one keep-alive connection for three requests" "$(grep -E '^[<*]' <<<"$out" | head -20)"
fi
# The three requests and the /stats probe: two connections in all.
check_eq "three keep-alive requests cost one accepted connection" "$((after - before))" "2"

out=$(curl -sv --max-time 5 -H 'Connection: close' "$U/" "$U/" 2>&1)
if grep -qi '^< Connection: close' <<<"$out" && ! grep -q "Re-using" <<<"$out"; then
    ok "Connection: close from the client is honoured"
else
    not_ok "Connection: close from the client is honoured" "$(grep -E '^[<*]' <<<"$out" | head)"
fi
out=$(curl -sv --max-time 5 "$U/close" "$U/" 2>&1)
if grep -qi '^< Connection: close' <<<"$out" && ! grep -q "Re-using" <<<"$out"; then
    ok "Connection: close from the handler closes the connection"
else
    not_ok "Connection: close from the handler closes the connection" "$(grep -E '^[<*]' <<<"$out" | head)"
fi

# --- pipelining ------------------------------------------------------------------

out=$(printf 'GET /status?code=201 HTTP/1.1\r\nHost: t\r\n\r\nPOST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcdeGET /status?code=202 HTTP/1.1\r\nHost: t\r\n\r\nGET /close HTTP/1.1\r\nHost: t\r\n\r\n' \
      | raw "$port" 5)
check_eq "pipelined requests are answered in order" "$(statuses <<<"$out")" "201 200 202 200"
if grep -q 'abcde' <<<"$out" && grep -q 'bye' <<<"$out"; then
    ok "pipelined request bodies stay with their request"
else
    not_ok "pipelined request bodies stay with their request" "$out"
fi

# --- slowloris: the whole head must arrive within the header timeout -------------

exec 3<>"/dev/tcp/127.0.0.1/$port"
t0=$(now_ms)
printf 'GET / HTTP/1.1\r\nHost: t\r\n' >&3
# One header line every 200 ms for up to 8 s: each byte is progress, but
# the head as a whole never ends.
( for i in $(seq 40); do sleep 0.2; printf 'X-Slow-%d: y\r\n' "$i" >&3 2>/dev/null || exit 0; done ) 2>/dev/null &
writer=$!
out=$(timeout 10 cat <&3)
t1=$(now_ms)
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
exec 3<&-
el=$((t1 - t0))
if [ "$(statuses <<<"$out")" = 408 ] && [ "$el" -ge 900 ] && [ "$el" -lt 4000 ]; then
    ok "a slowloris head is cut off by the header timeout (408 after ${el} ms)"
else
    not_ok "a slowloris head is cut off by the header timeout" "status '$(statuses <<<"$out")' after ${el} ms"
fi

# --- idle keep-alive timeout ------------------------------------------------------

exec 3<>"/dev/tcp/127.0.0.1/$port"
t0=$(now_ms)
printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&3
out=$(timeout 10 cat <&3)
t1=$(now_ms)
exec 3<&-
el=$((t1 - t0))
if [ "$(statuses <<<"$out")" = 200 ] && [ "$el" -ge 1300 ] && [ "$el" -lt 5000 ]; then
    ok "an idle keep-alive connection is closed after the idle timeout (${el} ms)"
else
    not_ok "an idle keep-alive connection is closed after the idle timeout" "status '$(statuses <<<"$out")' after ${el} ms"
fi

# --- body timeout -------------------------------------------------------------------

t0=$(now_ms)
out=$(printf 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly-ten-b' | raw "$port" 10)
el=$(( $(now_ms) - t0 ))
if [ "$(statuses <<<"$out")" = 408 ] && [ "$el" -ge 1300 ] && [ "$el" -lt 5000 ]; then
    ok "a request body that stops arriving gets 408 after the body timeout (${el} ms)"
else
    not_ok "a request body that stops arriving gets 408 after the body timeout" "status '$(statuses <<<"$out")' after ${el} ms"
fi

# --- strictness and limits -------------------------------------------------------

out=$(printf 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n' \
      | raw "$port" 5)
rc=$?
if [ "$(statuses <<<"$out")" = 400 ] && ! grep -q hello <<<"$out" && [ $rc -ne 124 ]; then
    ok "a smuggling attempt (CL + TE) gets one 400 and the connection closed"
else
    not_ok "a smuggling attempt (CL + TE) gets one 400 and the connection closed" "rc $rc: $out"
fi
out=$(printf 'GET / HTTP/2.0\r\nHost: t\r\n\r\n' | raw "$port" 5)
check_eq "an unknown HTTP version gets 505" "$(statuses <<<"$out")" "505"
out=$(printf 'GET /%s HTTP/1.1\r\nHost: t\r\n\r\n' "$(head -c 10000 /dev/zero | tr '\0' a)" | raw "$port" 5)
check_eq "an overlong request line gets 414" "$(statuses <<<"$out")" "414"
big=$(head -c 40000 /dev/zero | tr '\0' b)
check_eq "an oversized head gets 431" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "X-Big: $big" "$U/")" "431"
out=$(printf 'GET / HTTP/1.1\r\n\r\n' | raw "$port" 5)
check_eq "an HTTP/1.1 request without Host gets 400" "$(statuses <<<"$out")" "400"
head -c 6000000 /dev/zero > "$MG_TMP/6m"
check_eq "a body over --max-body gets 413" \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --data-binary @"$MG_TMP/6m" "$U/echo")" "413"

# --- bodies ---------------------------------------------------------------------

head -c 60000 /dev/urandom > "$MG_TMP/60k"
out=$(curl -sv --max-time 10 -H 'Expect: 100-continue' --data-binary @"$MG_TMP/60k" "$U/echo" -o "$MG_TMP/echo.out" 2>&1)
if grep -q '^< HTTP/1.1 100 Continue' <<<"$out" && cmp -s "$MG_TMP/60k" "$MG_TMP/echo.out"; then
    ok "Expect: 100-continue gets 100 when the handler reads the body"
else
    not_ok "Expect: 100-continue gets 100 when the handler reads the body" "$(grep -E '^[<>*]' <<<"$out" | head)"
fi
out=$(curl -sv --max-time 10 -H 'Expect: 100-continue' --data-binary @"$MG_TMP/60k" "$U/status?code=403" 2>&1)
if ! grep -q '100 Continue' <<<"$out" && grep -q '^< HTTP/1.1 403' <<<"$out"; then
    ok "no 100 Continue when the handler answers without reading the body"
else
    not_ok "no 100 Continue when the handler answers without reading the body" "$(grep -E '^[<>*]' <<<"$out" | head)"
fi

head -c 3000000 /dev/urandom > "$MG_TMP/3m"
curl -s --max-time 20 -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/3m" "$U/echo-stream" \
    -D "$MG_TMP/h.txt" -o "$MG_TMP/3m.out"
if cmp -s "$MG_TMP/3m" "$MG_TMP/3m.out" && grep -qi '^Transfer-Encoding: chunked' "$MG_TMP/h.txt"; then
    ok "3 MB chunked upload streamed back as a chunked download, byte for byte"
else
    not_ok "3 MB chunked upload streamed back as a chunked download, byte for byte" \
        "$(stat -c %s "$MG_TMP/3m.out" 2>/dev/null) bytes back"
fi
check_eq "20 MB download under backpressure arrives whole" \
    "$(curl -s --max-time 20 -o /dev/null -w '%{size_download} %{http_code}' "$U/big?bytes=20000000")" "20000000 200"
check_eq "a slow body reader still gets the whole 3 MB body" \
    "$(curl -s --max-time 20 --data-binary @"$MG_TMP/3m" "$U/slow-read?ms=2")" "3000000"
out=$(curl -sI --max-time 5 "$U/big?bytes=1234")
if grep -qi '^Content-Length: 1234' <<<"$out"; then
    ok "HEAD gets the Content-Length a GET would, and no body"
else
    not_ok "HEAD gets the Content-Length a GET would, and no body" "$out"
fi
out=$(printf 'HEAD /big?bytes=1234 HTTP/1.1\r\nHost: t\r\n\r\nGET /close HTTP/1.1\r\nHost: t\r\n\r\n' | raw "$port" 5)
check_eq "a HEAD response carries no body bytes (the next response follows at once)" \
    "$(statuses <<<"$out")" "200 200"

# --- streaming -------------------------------------------------------------------

# Each line is stamped as it arrives: the first chunk must come long before
# the last (5 chunks, 300 ms apart).
curl -sN --max-time 10 "$U/stream?n=5&ms=300" | while IFS= read -r line; do
    [ -n "$line" ] && echo "$(now_ms) $line"
done > "$MG_TMP/stream.txt"
first=$(head -n 1 "$MG_TMP/stream.txt" | cut -d' ' -f1)
last=$(tail -n 1 "$MG_TMP/stream.txt" | cut -d' ' -f1)
n=$(grep -c 'data: ' "$MG_TMP/stream.txt")
if [ "$n" = 5 ] && [ $((last - first)) -ge 1000 ]; then
    ok "stream chunks arrive as they are written (first to last: $((last - first)) ms)"
else
    not_ok "stream chunks arrive as they are written" "$n chunks, first to last $((last - first)) ms"
fi
read -r ttfb total < <(curl -sN --max-time 10 -o /dev/null -w '%{time_starttransfer} %{time_total}' \
    "$U/stream?n=3&ms=500")
if awk -v a="$ttfb" -v b="$total" 'BEGIN { exit !(a < 0.4 && b >= 0.9) }'; then
    ok "stream: first byte after ${ttfb}s of a ${total}s stream"
else
    not_ok "stream: first byte long before the end" "first byte ${ttfb}s, total ${total}s"
fi

# --- the connection limit ----------------------------------------------------------

start limited --max-conns 2 --header-timeout 10000 || bail "limited server did not start"
lport=$started_port
# Let the server see wait_port's probe connection close first, or it could
# still hold a slot when the two connections below arrive.
sleep 0.5
exec 4<>"/dev/tcp/127.0.0.1/$lport"
exec 5<>"/dev/tcp/127.0.0.1/$lport"
sleep 0.2
out=$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$lport/")
if [[ "$out" == *" 503" ]]; then
    ok "past --max-conns a new connection is answered 503"
else
    not_ok "past --max-conns a new connection is answered 503" "$out"
fi
exec 4<&- 5<&-
ok_after=
for i in $(seq 50); do
    if [ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$lport/")" = 200 ]; then
        ok_after=1; break
    fi
    sleep 0.1
done
check_eq "connections are served again once others close" "${ok_after:-0}" "1"
r=$(counter "$lport" rejected)
if [ "${r:-0}" -ge 1 ]; then ok "rejections are counted ($r)"; else not_ok "rejections are counted" "$r"; fi

# --- several workers on one port (SO_REUSEPORT) ------------------------------------

start workers --workers 4 || bail "4-worker server did not start"
wport=$started_port
good=0
for i in $(seq 40); do
    [ "$(curl -s --max-time 5 "http://127.0.0.1:$wport/")" = hello ] && good=$((good + 1))
done
check_eq "4 workers on one port answer 40 of 40 requests" "$good" "40"
check_eq "the stats sum over workers" "$(counter "$wport" responses)" "40"

# --- the proxy route: httpd -> httpc -> upstream ------------------------------------

start proxy --upstream "127.0.0.1:$port" --upstream-max-idle 4 || bail "proxy did not start"
pport=$started_port
P=http://127.0.0.1:$pport
check_eq "proxy forwards a GET" "$(curl -s --max-time 5 "$P/proxy/hello")" "hello"
check_eq "a proxied response carries one Date header (the origin's)" \
    "$(curl -s -D - -o /dev/null --max-time 5 "$P/proxy/hello" | grep -ci '^date:')" "1"
created0=$(counter "$pport" created)
urls=()
for i in $(seq 200); do urls+=("$P/proxy/status?code=204"); done
codes=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}\n' "${urls[@]}" | sort | uniq -c | awk '{print $1 ":" $2}')
check_eq "200 requests through the proxy all get 204" "$codes" "200:204"
created=$(counter "$pport" created)
reused=$(counter "$pport" reused)
if [ "$((created - created0))" -le 1 ] && [ "${reused:-0}" -ge 200 ]; then
    ok "the proxy reuses upstream connections (created $created, reused $reused)"
else
    not_ok "the proxy reuses upstream connections" "created $created (was $created0), reused $reused"
fi
# Separate client connections (one curl each) share the upstream pool too.
for i in $(seq 20); do curl -s --max-time 5 -o /dev/null "$P/proxy/hello"; done
created2=$(counter "$pport" created)
check_eq "20 client connections, no new upstream connection" "$created2" "$created"

curl -s --max-time 20 -H 'Transfer-Encoding: chunked' --data-binary @"$MG_TMP/3m" "$P/proxy/echo-stream" -o "$MG_TMP/p3m.out"
if cmp -s "$MG_TMP/3m" "$MG_TMP/p3m.out"; then
    ok "3 MB chunked upload through the proxy comes back byte for byte"
else
    not_ok "3 MB chunked upload through the proxy comes back byte for byte"
fi
check_eq "20 MB through the proxy under backpressure" \
    "$(curl -s --max-time 30 -o /dev/null -w '%{size_download} %{http_code}' "$P/proxy/big?bytes=20000000")" "20000000 200"

curl -sN --max-time 10 "$P/proxy/stream?n=4&ms=300" | while IFS= read -r line; do
    [ -n "$line" ] && echo "$(now_ms) $line"
done > "$MG_TMP/pstream.txt"
first=$(head -n 1 "$MG_TMP/pstream.txt" | cut -d' ' -f1)
last=$(tail -n 1 "$MG_TMP/pstream.txt" | cut -d' ' -f1)
n=$(grep -c 'data: ' "$MG_TMP/pstream.txt")
if [ "$n" = 4 ] && [ $((last - first)) -ge 700 ]; then
    ok "a stream through the proxy is not buffered (first to last: $((last - first)) ms)"
else
    not_ok "a stream through the proxy is not buffered" "$n chunks, first to last $((last - first)) ms"
fi

# The client leaves mid-stream: the proxy cancels its upstream request and
# the upstream server sees its client (the proxy) go.
cancels0=$(counter "$pport" upstream_cancels)
aborts0=$(counter "$port" stream_aborts)
curl -sN --max-time 1 "$P/proxy/stream?n=100&ms=100" > /dev/null
cancelled=
for i in $(seq 50); do
    c=$(counter "$pport" upstream_cancels)
    a=$(counter "$port" stream_aborts)
    if [ "$c" -gt "$cancels0" ] && [ "$a" -gt "$aborts0" ]; then cancelled=1; break; fi
    sleep 0.1
done
check_eq "a client leaving mid-stream cancels the upstream stream" "${cancelled:-0}" "1"

# An upstream that is down: 502 with a reason, quickly.
dead=$(free_port)
start deadproxy --upstream "127.0.0.1:$dead" || bail "dead-upstream proxy did not start"
dport=$started_port
out=$(curl -s --max-time 5 -w ' %{http_code}' "http://127.0.0.1:$dport/proxy/hello")
if [[ "$out" == *"connect failed"*" 502" ]]; then
    ok "an unreachable upstream gives 502 naming the connect failure"
else
    not_ok "an unreachable upstream gives 502 naming the connect failure" "$out"
fi

# --- shutdown ------------------------------------------------------------------------

stop_pid "$(pid_of proxy)"
if grep -qi 'sanitizer\|leak' "$MG_TMP/proxy.log"; then
    not_ok "the proxy stops cleanly on SIGTERM" "$(head -20 "$MG_TMP/proxy.log")"
else
    ok "the proxy stops cleanly on SIGTERM"
fi

finish
