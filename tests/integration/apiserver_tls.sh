#!/usr/bin/env bash
# modelgate-apiserver over https (--tls-cert/--tls-key) with a bearer token
# (--token-file): the kubeconfig it writes (https server, the self-signed
# certificate as certificate-authority-data, the token) is used by the real
# kubectl, which verifies the server; curl checks the 401s and that plain
# HTTP to the https port gets no HTTP answer.
. "$MG_TOP/tests/integration/lib.sh"
. "$MG_TOP/tests/integration/apiserver.inc"
command -v openssl >/dev/null || { skip "openssl" "the openssl command is not installed"; finish; }

# A self-signed certificate for 127.0.0.1 (an IP SAN: kubectl checks it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$MG_TMP/tls.key" -out "$MG_TMP/tls.crt" -subj /CN=modelgate-test \
    -addext "subjectAltName=IP:127.0.0.1" >"$MG_TMP/openssl.log" 2>&1 ||
    bail "openssl could not make a certificate: $(cat "$MG_TMP/openssl.log")"
tok=tls-test-token-$RANDOM$RANDOM
echo "$tok" >"$MG_TMP/token"

as_start srv --token-file "$MG_TMP/token" --tls-cert "$MG_TMP/tls.crt" --tls-key "$MG_TMP/tls.key" ||
    bail "apiserver did not start: $(cat "$MG_TMP/srv.log")"
U=https://127.0.0.1:$AS_PORT

server=$(awk '/server:/ {print $2}' "$KUBECONFIG")
check_eq "the kubeconfig points at https" "$server" "$U"
ca=$(awk '/certificate-authority-data:/ {print $2}' "$KUBECONFIG")
check_eq "the kubeconfig's CA data is the certificate" "$(base64 -d <<<"$ca" 2>/dev/null)" "$(cat "$MG_TMP/tls.crt")"
grep -q "token: \"$tok\"" "$KUBECONFIG" && ok "the kubeconfig carries the token" ||
    not_ok "the kubeconfig carries the token" "$(cat "$KUBECONFIG")"

if command -v kubectl >/dev/null; then
    out=$(k get ns 2>&1)
    contains "kubectl get ns over https lists default" "$out" "default"
    out=$(k create configmap x --from-literal=a=b 2>&1)
    contains "kubectl create configmap over https" "$out" "configmap/x created"
    out=$(k get configmap x -o jsonpath='{.data.a}' 2>&1)
    check_eq "kubectl get configmap over https" "$out" "b"
    # Without the CA data kubectl refuses the self-signed certificate.
    grep -v certificate-authority-data "$KUBECONFIG" >"$MG_TMP/kubeconfig-noca"
    out=$(KUBECONFIG=$MG_TMP/kubeconfig-noca k get ns 2>&1)
    rc=$?
    check "kubectl without the CA data fails" test "$rc" -ne 0
    contains "kubectl without the CA data reports the certificate" "$out" "certificate"
else
    skip "kubectl" "kubectl is not installed"
fi

CURL=(curl -s --max-time 10 --cacert "$MG_TMP/tls.crt")
out=$("${CURL[@]}" -w '\n%{http_code}' "$U/api/v1/namespaces")
check_eq "curl without a token gets 401" "$(tail -n1 <<<"$out")" "401"
contains "the 401 is a Status" "$out" '"kind":"Status"'
out=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-$tok" "$U/api/v1/namespaces")
check_eq "curl with a wrong token gets 401" "$out" "401"
out=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$U/api/v1/namespaces/default")
check_eq "curl with the token gets 200 over verified https" "$out" "200"
out=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$U/version")
check "curl without the CA (verifying) fails" test "$out" = "000"
out=$(curl -sk --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" \
    "http://127.0.0.1:$AS_PORT/version")
rc=$?
check "plain http to the https port gets no HTTP answer (curl exit $rc, code $out)" \
    test "$rc" -ne 0 -a "$out" = "000"
# The server still serves https after the plain-HTTP attempt.
out=$("${CURL[@]}" -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "$U/version")
check_eq "https still works after the plain-HTTP attempt" "$out" "200"

as_stop srv
finish
