#!/usr/bin/env bash
# modelgate-apiserver driven by the real kubectl (the dispatcher picks
# kubectl.1.<minor> from /version): a CRD with printer columns, status and
# scale subresources, a default, an enum and a shortName, then a custom
# resource; get with columns, -o yaml, describe with events, get -w seeing a
# status patch, scale, delete waiting for a finalizer, apply unchanged,
# server-side apply, cascading deletion, a Deployment applied, edited
# (strategic merge) and made ready by --simulate-workloads, schema and
# strict-validation errors. kubectl's own output is checked.
. "$MG_TOP/tests/integration/lib.sh"
. "$MG_TOP/tests/integration/apiserver.inc"
command -v kubectl >/dev/null || { skip "kubectl" "kubectl is not installed"; finish; }

as_start srv --simulate-workloads=500ms || bail "apiserver did not start: $(cat "$MG_TMP/srv.log")"

M=$MG_TMP/manifests
mkdir -p "$M"
cat >"$M/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.modelgate.dev
spec:
  group: test.modelgate.dev
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    listKind: WidgetList
    shortNames: [wg]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: string, enum: [small, medium, large]}
              replicas: {type: integer, minimum: 0, default: 1}
              color: {type: string, default: blue}
          status:
            type: object
            properties:
              phase: {type: string}
              replicas: {type: integer}
EOF
widget() { # NAME SIZE [EXTRA SPEC LINE]
    printf 'apiVersion: test.modelgate.dev/v1\nkind: Widget\nmetadata:\n  name: %s\nspec:\n  size: %s\n%s' \
        "$1" "$2" "${3:+  $3
}"
}

# --- basics -------------------------------------------------------------------

out=$(k get ns 2>&1)
contains "kubectl get ns lists default" "$out" "default"
check_eq "kubectl get ns prints NAME and STATUS columns" "$(head -n1 <<<"$out" | awk '{print $1, $2}')" "NAME STATUS"

# kubectl's generators send protobuf bodies.
check_eq "kubectl create namespace" "$(k create namespace gen 2>&1)" "namespace/gen created"
check_eq "the generated namespace is Active" "$(k get ns gen --no-headers 2>&1 | awk '{print $1, $2}')" "gen Active"
check_eq "kubectl create configmap" "$(k -n gen create configmap gcm --from-literal=a=b 2>&1)" "configmap/gcm created"
check_eq "its data reads back" "$(k -n gen get cm gcm -o jsonpath='{.data.a}')" "b"
check_eq "kubectl create secret generic" "$(k -n gen create secret generic gs --from-literal=u=p 2>&1)" "secret/gs created"
check_eq "its data is base64 and its type Opaque" "$(k -n gen get secret gs -o jsonpath='{.data.u} {.type}')" "cA== Opaque"
check_eq "kubectl create deployment" "$(k -n gen create deployment gd --image=nginx:1.25 --replicas=2 --port=80 2>&1)" \
    "deployment.apps/gd created"
check_eq "its spec reads back" \
    "$(k -n gen get deploy gd -o jsonpath='{.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}')" \
    "2 nginx:1.25 80"
check_eq "kubectl create service clusterip" "$(k -n gen create service clusterip gsvc --tcp=80:8080 2>&1)" "service/gsvc created"
check_eq "its ports read back" "$(k -n gen get svc gsvc -o jsonpath='{.spec.ports[0].port} {.spec.ports[0].targetPort} {.spec.type}')" \
    "80 8080 ClusterIP"

# --- the CRD, then a custom resource (two steps) ----------------------------

out=$(k apply -f "$M/crd.yaml" 2>&1)
check_eq "kubectl apply of the CRD" "$out" "customresourcedefinition.apiextensions.k8s.io/widgets.test.modelgate.dev created"
served() { jget /apis/test.modelgate.dev/v1 | grep -q '"widgets"'; }
check "the CRD is served at once" wait_for 5 served
out=$(k get crd widgets.test.modelgate.dev -o jsonpath='{.status.conditions[?(@.type=="Established")].status}' 2>&1)
check_eq "the CRD is Established" "$out" "True"

widget w1 small >"$M/w1.yaml"
out=$(k apply -f "$M/w1.yaml" 2>&1)
check_eq "kubectl apply of a custom resource" "$out" "widget.test.modelgate.dev/w1 created"

out=$(k get widgets 2>&1)
check_eq "kubectl get prints the printer columns" "$(head -n1 <<<"$out" | awk '{print $1, $2, $3, $4, $5}')" \
    "NAME SIZE REPLICAS PHASE AGE"
check_eq "kubectl get prints the row's values (default replicas 1)" "$(awk 'NR==2 {print $1, $2, $3}' <<<"$out")" "w1 small 1"
out=$(k get wg 2>&1)
check_eq "the shortName works" "$(awk 'NR==2 {print $1}' <<<"$out")" "w1"

out=$(k get widget w1 -o yaml 2>&1)
contains "get -o yaml shows the defaulted color" "$out" "color: blue"
contains "get -o yaml shows the defaulted replicas" "$out" "replicas: 1"
contains "get -o yaml shows generation 1" "$out" "generation: 1"
uid=$(k get widget w1 -o jsonpath='{.metadata.uid}')
if [[ "$uid" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]; then
    ok "uid is an RFC 4122 v4 UUID"
else
    not_ok "uid is an RFC 4122 v4 UUID" "got '$uid'"
fi
ts=$(k get widget w1 -o jsonpath='{.metadata.creationTimestamp}')
if [[ "$ts" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]]; then
    ok "creationTimestamp is RFC 3339 with Z"
else
    not_ok "creationTimestamp is RFC 3339 with Z" "got '$ts'"
fi

# --- describe with an event -------------------------------------------------

cat >"$M/event.yaml" <<EOF
apiVersion: v1
kind: Event
metadata:
  name: w1.17a0c0ffee
type: Warning
reason: SizeTooSmall
message: the widget is rather small
involvedObject:
  apiVersion: test.modelgate.dev/v1
  kind: Widget
  name: w1
  namespace: default
  uid: $uid
source:
  component: widget-controller
count: 1
firstTimestamp: "$ts"
lastTimestamp: "$ts"
EOF
out=$(k create -f "$M/event.yaml" 2>&1)
check_eq "kubectl create -f of an Event" "$out" "event/w1.17a0c0ffee created"
out=$(k describe widget w1 2>&1)
contains "describe names the object" "$out" "Name:         w1"
contains "describe shows the event's reason" "$out" "SizeTooSmall"
contains "describe shows the event's message" "$out" "the widget is rather small"

# --- get -w sees a status patch ---------------------------------------------

( k get widgets -w >"$MG_TMP/watch.out" 2>&1 ) &
wpid=$!
mg_pids+=("$wpid")
first_line() { [ -s "$MG_TMP/watch.out" ]; }
wait_for 10 first_line || not_ok "get -w printed the list" "$(cat "$MG_TMP/watch.out")"
out=$(k patch widget w1 --subresource=status --type=merge -p '{"status":{"phase":"Ready","replicas":1}}' 2>&1)
check_eq "kubectl patch --subresource=status" "$out" "widget.test.modelgate.dev/w1 patched"
seen() { awk '$1 == "w1" && $4 == "Ready"' "$MG_TMP/watch.out" | grep -q .; }
if wait_for 10 seen; then ok "get -w shows the new Phase column value"; else
    not_ok "get -w shows the new Phase column value" "$(cat "$MG_TMP/watch.out")"; fi
stop_pid "$wpid"
check_eq "a status write leaves generation alone" "$(k get widget w1 -o jsonpath='{.metadata.generation} {.status.phase}')" "1 Ready"

# --- scale ------------------------------------------------------------------

out=$(k scale widget w1 --replicas=3 2>&1)
check_eq "kubectl scale" "$out" "widget.test.modelgate.dev/w1 scaled"
check_eq "the scaled replicas read back (and generation bumped)" \
    "$(k get widget w1 -o jsonpath='{.spec.replicas} {.metadata.generation}')" "3 2"
out=$(k get --raw /apis/test.modelgate.dev/v1/namespaces/default/widgets/w1/scale 2>&1)
check_eq "/scale is an autoscaling/v1 Scale" "$(jq -r '"\(.kind) \(.apiVersion) \(.spec.replicas) \(.status.replicas)"' <<<"$out")" \
    "Scale autoscaling/v1 3 1"
check_eq "the status survives a write to the main resource" "$(k get widget w1 -o jsonpath='{.status.phase}')" "Ready"

# --- apply again: unchanged -------------------------------------------------

out=$(k apply -f "$M/w1.yaml" 2>&1)
check_eq "kubectl apply of the same manifest" "$out" "widget.test.modelgate.dev/w1 unchanged"
widget w1 medium >"$M/w1.yaml"
out=$(k apply -f "$M/w1.yaml" 2>&1)
check_eq "kubectl apply of a changed manifest" "$out" "widget.test.modelgate.dev/w1 configured"
check_eq "the applied change reads back" "$(k get widget w1 -o jsonpath='{.spec.size}')" "medium"

# --- server-side apply --------------------------------------------------------

widget w3 large >"$M/w3.yaml"
out=$(k apply --server-side -f "$M/w3.yaml" 2>&1)
check_eq "kubectl apply --server-side creates" "$out" "widget.test.modelgate.dev/w3 serverside-applied"
widget w3 small "color: red" >"$M/w3.yaml"
out=$(k apply --server-side -f "$M/w3.yaml" 2>&1)
check_eq "kubectl apply --server-side updates" "$out" "widget.test.modelgate.dev/w3 serverside-applied"
check_eq "the server-side applied fields read back" "$(k get widget w3 -o jsonpath='{.spec.size} {.spec.color} {.spec.replicas}')" "small red 1"

# --- delete that waits for a finalizer ----------------------------------------

k patch widget w3 --type=merge -p '{"metadata":{"finalizers":["test.modelgate.dev/hold"]}}' >/dev/null 2>&1
rm -f "$MG_TMP/del.rc"
( k delete widget w3 --wait --timeout=25s >"$MG_TMP/del.out" 2>&1; echo $? >"$MG_TMP/del.rc" ) &
dpid=$!
mg_pids+=("$dpid")
sleep 1.5
check "kubectl delete still waits while the finalizer is there" [ ! -e "$MG_TMP/del.rc" ]
check "the object has a deletionTimestamp meanwhile" \
    [ -n "$(k get widget w3 -o jsonpath='{.metadata.deletionTimestamp}' 2>/dev/null)" ]
k patch widget w3 --type=json -p '[{"op":"remove","path":"/metadata/finalizers"}]' >/dev/null 2>&1
del_done() { [ -s "$MG_TMP/del.rc" ]; }
wait_for 15 del_done
check_eq "kubectl delete returns once the finalizer is removed" "$(cat "$MG_TMP/del.rc" 2>/dev/null)" "0"
contains "kubectl delete said deleted" "$(cat "$MG_TMP/del.out")" 'widget.test.modelgate.dev "w3" deleted'
out=$(k get widget w3 2>&1)
contains "the object is gone" "$out" 'widgets.test.modelgate.dev "w3" not found'

# --- cascading deletion ---------------------------------------------------------

uid=$(k get widget w1 -o jsonpath='{.metadata.uid}')
cat >"$M/owned.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned-by-w1
  ownerReferences:
  - {apiVersion: test.modelgate.dev/v1, kind: Widget, name: w1, uid: "$uid"}
data: {k: v}
EOF
out=$(k apply -f "$M/owned.yaml" 2>&1)
check_eq "an owned ConfigMap is created" "$out" "configmap/owned-by-w1 created"
out=$(k delete widget w1 2>&1)
check_eq "kubectl delete of the owner" "$out" 'widget.test.modelgate.dev "w1" deleted'
cm_gone() { k get cm owned-by-w1 2>&1 | grep -q 'not found'; }
check "the owned ConfigMap is garbage-collected" wait_for 10 cm_gone

# --- a Deployment: apply, edit (strategic merge), simulated readiness ---------------

cat >"$M/deploy.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
      - name: sidecar
        image: busybox:1.36
EOF
out=$(k apply -f "$M/deploy.yaml" 2>&1)
check_eq "kubectl apply of a Deployment" "$out" "deployment.apps/web created"
ready() { [ "$(k get deploy web --no-headers 2>/dev/null | awk '{print $2, $3, $4}')" = "$1" ]; }
if wait_for 10 ready "2/2 2 2"; then ok "get deploy shows READY 2/2 after the simulated delay"; else
    not_ok "get deploy shows READY 2/2 after the simulated delay" "$(k get deploy web 2>&1)"; fi
check_eq "get deploy prints kubectl's columns" "$(k get deploy web | head -n1 | awk '{print $1, $2, $3, $4, $5}')" \
    "NAME READY UP-TO-DATE AVAILABLE AGE"
out=$(KUBE_EDITOR="sed -i -e s/nginx:1.25/nginx:1.26/ -e s/replicas:\ 2/replicas:\ 3/" k edit deploy web 2>&1)
check_eq "kubectl edit (a strategic merge patch)" "$out" "deployment.apps/web edited"
check_eq "the edit changed one container and kept the other" \
    "$(k get deploy web -o jsonpath='{.spec.template.spec.containers[*].image}')" "nginx:1.26 busybox:1.36"
if wait_for 10 ready "3/3 3 3"; then ok "the edited replica count becomes ready"; else
    not_ok "the edited replica count becomes ready" "$(k get deploy web 2>&1)"; fi
check_eq "observedGeneration follows generation" \
    "$(k get deploy web -o jsonpath='{.metadata.generation} {.status.observedGeneration}')" "2 2"

# --- schema violations and strict validation -----------------------------------

widget bad huge >"$M/bad.yaml"
out=$(k apply -f "$M/bad.yaml" 2>&1)
contains "a schema violation is refused with the field" "$out" 'The Widget "bad" is invalid: spec.size: Unsupported value: "huge"'
widget bad2 small "foo: 1" >"$M/bad2.yaml"
out=$(k apply -f "$M/bad2.yaml" 2>&1)
contains "an unknown field is refused under strict validation" "$out" 'strict decoding error: unknown field "spec.foo"'
out=$(k apply --validate=warn -f "$M/bad2.yaml" 2>&1)
contains "--validate=warn warns about the unknown field" "$out" 'unknown field "spec.foo"'
contains "--validate=warn creates the object" "$out" "widget.test.modelgate.dev/bad2 created"
check_eq "the unknown field was pruned" "$(k get widget bad2 -o jsonpath='{.spec}')" '{"color":"blue","replicas":1,"size":"small"}'

printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  lables: {a: b}\ndat:\n  k: v\n' >"$M/typo.yaml"
out=$(k apply -f "$M/typo.yaml" 2>&1)
contains "typos in a built-in object are refused under strict validation" "$out" \
    'strict decoding error: unknown field "metadata.lables", unknown field "dat"'

# Every kubectl the dispatcher can run (1.27 to 1.33 here), called
# directly: apply, get with columns, delete.
kdir=$(dirname "$(readlink -f "$(command -v kubectl)")")
nver=0
for kv in "$kdir"/kubectl.1.*; do
    [ -x "$kv" ] || continue
    v=${kv##*/kubectl.}
    n=w-${v//./-}
    nver=$((nver + 1))
    widget "$n" large >"$M/$n.yaml"
    out=$(timeout 30 "$kv" --cache-dir "$KCACHE-$v" apply -f "$M/$n.yaml" 2>&1)
    check_eq "kubectl $v: apply" "$out" "widget.test.modelgate.dev/$n created"
    out=$(timeout 30 "$kv" --cache-dir "$KCACHE-$v" get widget "$n" 2>&1)
    check_eq "kubectl $v: get prints the columns" "$(awk 'NR==1 {print $1, $2, $3} NR==2 {print $1, $2, $3}' <<<"$out" | tr '\n' ' ')" \
        "NAME SIZE REPLICAS $n large 1 "
    out=$(timeout 30 "$kv" --cache-dir "$KCACHE-$v" delete widget "$n" 2>&1)
    check_eq "kubectl $v: delete" "$out" "widget.test.modelgate.dev \"$n\" deleted"
done
[ "$nver" -gt 0 ] || skip "other kubectl versions" "no kubectl.1.* next to $(command -v kubectl)"

as_stop srv
finish
