#!/usr/bin/env bash
# modelgate-apiserver's deletion semantics: propagationPolicy Foreground,
# Orphan and Background with a second owner, namespace deletion
# (Terminating, contents first, finalizers honoured), CRD deletion taking
# its objects and its type away, deletecollection, the metadata-only and
# Table-with-objects answers, and CRDs served again after a restart.
. "$MG_TOP/tests/integration/lib.sh"
. "$MG_TOP/tests/integration/apiserver.inc"

as_start srv || bail "apiserver did not start: $(cat "$MG_TMP/srv.log")"
NS=/api/v1/namespaces
CM=$NS/default/configmaps
JSON=(-H 'Content-Type: application/json')
MERGE=(-H 'Content-Type: application/merge-patch+json')

# mk PATH JSON: POST, prints the created object's uid.
mk() { curl -s --max-time 5 -X POST "${JSON[@]}" "$U$1" -d "$2" | jq -r .metadata.uid; }
owned() { # NAME OWNER-NAME OWNER-UID [EXTRA METADATA JSON]
    printf '{"metadata":{"name":"%s","ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"%s","uid":"%s"}]%s}}' \
        "$1" "$2" "$3" "${4:+,$4}"
}
gone() { [ "$(code GET "$1")" = 404 ]; }

# --- Foreground: the owner waits for its dependents ---------------------------

fg=$(mk "$CM" '{"metadata":{"name":"owner-fg"}}')
mk "$CM" "$(owned dep-fg owner-fg "$fg" '"finalizers":["test/hold"]')" >/dev/null
out=$(curl -s --max-time 5 -w ' %{http_code}' -X DELETE "${JSON[@]}" "$U$CM/owner-fg" -d '{"propagationPolicy":"Foreground"}')
check_eq "a Foreground delete answers 200 with the object" "${out##* }" "200"
check_eq "the owner gets the foregroundDeletion finalizer" \
    "$(jq -r '.metadata.finalizers | join(",")' <<<"${out% *}")" "foregroundDeletion"
dep_deleting() { [ -n "$(jget "$CM/dep-fg" | jq -r '.metadata.deletionTimestamp // empty')" ]; }
check "the dependent is being deleted" wait_for 5 dep_deleting
sleep 0.3
check_eq "the owner stays while a dependent is left" "$(code GET "$CM/owner-fg")" "200"
curl -s --max-time 5 -o /dev/null -X PATCH "${MERGE[@]}" "$U$CM/dep-fg" -d '{"metadata":{"finalizers":null}}'
check "the dependent goes once its finalizer is removed" wait_for 5 gone "$CM/dep-fg"
check "then the owner goes" wait_for 5 gone "$CM/owner-fg"

# --- Orphan: dependents stay, without the reference --------------------------

or=$(mk "$CM" '{"metadata":{"name":"owner-or"}}')
mk "$CM" "$(owned dep-or owner-or "$or")" >/dev/null
check_eq "an Orphan delete" "$(code DELETE "$CM/owner-or?propagationPolicy=Orphan")" "200"
sleep 0.3
check_eq "the orphan stays" "$(code GET "$CM/dep-or")" "200"
check_eq "the orphan lost its ownerReference" "$(jget "$CM/dep-or" | jq -r '.metadata.ownerReferences // "none"')" "none"

# --- Background with two owners: the dependent stays with the other ---------

a=$(mk "$CM" '{"metadata":{"name":"owner-a"}}')
b=$(mk "$CM" '{"metadata":{"name":"owner-b"}}')
curl -s --max-time 5 -o /dev/null -X POST "${JSON[@]}" "$U$CM" -d "{\"metadata\":{\"name\":\"dep-ab\",\"ownerReferences\":[
    {\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"owner-a\",\"uid\":\"$a\"},
    {\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"name\":\"owner-b\",\"uid\":\"$b\"}]}}"
check_eq "a Background delete of one owner" "$(code DELETE "$CM/owner-a")" "200"
one_ref() { [ "$(jget "$CM/dep-ab" | jq -r '[.metadata.ownerReferences[].name] | join(",")')" = owner-b ]; }
check "a dependent with another owner stays, with only that reference" wait_for 5 one_ref
check_eq "deleting the last owner" "$(code DELETE "$CM/owner-b")" "200"
check "removes the dependent" wait_for 5 gone "$CM/dep-ab"

# --- namespace deletion ---------------------------------------------------------

mk "$NS" '{"metadata":{"name":"doomed"}}' >/dev/null
mk "$NS/doomed/configmaps" '{"metadata":{"name":"plain"}}' >/dev/null
mk "$NS/doomed/configmaps" '{"metadata":{"name":"held","finalizers":["test/hold"]}}' >/dev/null
out=$(curl -s --max-time 5 -w ' %{http_code}' -X DELETE "$U$NS/doomed")
check_eq "deleting a namespace answers it Terminating" "$(jq -r .status.phase <<<"${out% *}") ${out##* }" "Terminating 200"
check "its content goes" wait_for 5 gone "$NS/doomed/configmaps/plain"
check_eq "content with a finalizer waits" "$(code GET "$NS/doomed/configmaps/held")" "200"
check_eq "the namespace is still there, Terminating" "$(jget "$NS/doomed" | jq -r .status.phase)" "Terminating"
out=$(curl -s --max-time 5 -w ' %{http_code}' -X POST "${JSON[@]}" "$U$NS/doomed/configmaps" -d '{"metadata":{"name":"late"}}')
check_eq "nothing new can be created in it" "$(jq -r .reason <<<"${out% *}") ${out##* }" "Forbidden 403"
curl -s --max-time 5 -o /dev/null -X PATCH "${MERGE[@]}" "$U$NS/doomed/configmaps/held" -d '{"metadata":{"finalizers":[]}}'
check "the namespace goes once its content is gone" wait_for 5 gone "$NS/doomed"

if command -v kubectl >/dev/null; then
    k create -f - >/dev/null 2>&1 <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: scratch}
EOF
    k -n scratch create -f - >/dev/null 2>&1 <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
EOF
    out=$(k delete ns scratch 2>&1)
    check_eq "kubectl delete ns waits until the namespace is gone" "$out" 'namespace "scratch" deleted'
    check_eq "and it is gone" "$(code GET "$NS/scratch")" "404"
fi

# --- CRDs: deletion takes the objects and the type away ---------------------------

crd='{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
 "metadata":{"name":"gadgets.test.modelgate.dev"},
 "spec":{"group":"test.modelgate.dev","scope":"Namespaced",
  "names":{"plural":"gadgets","singular":"gadget","kind":"Gadget","listKind":"GadgetList"},
  "versions":[{"name":"v1","served":true,"storage":true,
   "schema":{"openAPIV3Schema":{"type":"object","properties":{"spec":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}}}]}}'
CRDS=/apis/apiextensions.k8s.io/v1/customresourcedefinitions
G=/apis/test.modelgate.dev/v1/namespaces/default/gadgets
check_eq "a CRD is created" "$(code POST "$CRDS" "${JSON[@]}" -d "$crd")" "201"
check_eq "a custom resource is created at once" \
    "$(code POST "$G" "${JSON[@]}" -d '{"apiVersion":"test.modelgate.dev/v1","kind":"Gadget","metadata":{"name":"g1"},"spec":{"anything":{"goes":1}}}')" "201"
check_eq "x-kubernetes-preserve-unknown-fields keeps unknown fields" "$(jget "$G/g1" | jq -c .spec)" '{"anything":{"goes":1}}'
check_eq "a strategic merge patch of a custom resource is 415" \
    "$(code PATCH "$G/g1" -H 'Content-Type: application/strategic-merge-patch+json' -d '{"spec":{"a":1}}')" "415"
check_eq "a JSON merge patch of it works" "$(code PATCH "$G/g1" "${MERGE[@]}" -d '{"spec":{"a":1}}')" "200"
check_eq "PUT to a missing custom resource is 404" \
    "$(code PUT "$G/nope" "${JSON[@]}" -d '{"apiVersion":"test.modelgate.dev/v1","kind":"Gadget","metadata":{"name":"nope","resourceVersion":"1"}}')" "404"
check_eq "deleting the CRD" "$(code DELETE "$CRDS/gadgets.test.modelgate.dev")" "200"
check_eq "its resource is no longer served" "$(code GET "$G")" "404"
check_eq "discovery no longer lists its group version" "$(code GET /apis/test.modelgate.dev/v1)" "404"
check_eq "re-creating the CRD" "$(code POST "$CRDS" "${JSON[@]}" -d "$crd")" "201"
check_eq "does not bring the old objects back" "$(jget "$G" | jq '.items | length')" "0"
curl -s --max-time 5 -o /dev/null -X POST "${JSON[@]}" "$U$G" -d '{"apiVersion":"test.modelgate.dev/v1","kind":"Gadget","metadata":{"name":"g2"}}'

# --- deletecollection, metadata-only and Table answers ------------------------------

for i in 1 2 3; do mk "$CM" "{\"metadata\":{\"name\":\"batch$i\",\"labels\":{\"batch\":\"yes\"}}}" >/dev/null; done
check_eq "deletecollection with a label selector" "$(code DELETE "$CM?labelSelector=batch%3Dyes")" "200"
check_eq "removes exactly the selected objects" "$(jget "$CM?labelSelector=batch%3Dyes" | jq '.items | length') $(code GET "$CM/dep-or")" "0 200"
out=$(jget "$CM" -H 'Accept: application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io')
check_eq "a metadata-only list" "$(jq -r '"\(.kind) \(.items[0].kind) \(.items[0].data // "no-data")"' <<<"$out")" \
    "PartialObjectMetadataList PartialObjectMetadata no-data"
out=$(jget "$CM/dep-or?includeObject=Object" -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io')
check_eq "a Table row with includeObject=Object carries the object" "$(jq -r '"\(.kind) \(.rows[0].object.kind)"' <<<"$out")" \
    "Table ConfigMap"
out=$(jget "$CM/dep-or" -H 'Accept: application/json;as=Table;v=v1;g=meta.k8s.io')
check_eq "a Table row carries PartialObjectMetadata by default" "$(jq -r '.rows[0].object.kind' <<<"$out")" \
    "PartialObjectMetadata"

# --- a restart serves the stored CRDs again ------------------------------------------

as_stop srv
as_start srv2 || bail "apiserver did not restart: $(cat "$MG_TMP/srv2.log")"
check_eq "a stored CRD is served after a restart, with its objects" "$(jget "$G/g2" | jq -r .metadata.name)" "g2"
as_stop srv2
finish
