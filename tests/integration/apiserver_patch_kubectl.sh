#!/usr/bin/env bash
# apiserver/patch.c held against Kubernetes' own patch code: the strategic
# merge, merge and JSON patches of tests/integration/apiserver-patch-cases.mjs
# are applied by `kubectl patch --local` (kubectl carries apimachinery's
# strategicpatch and evanphx/json-patch) and by the as-patch tool, and the
# results must be identical, list order included. Nothing talks to a server.
. "$MG_TOP/tests/integration/lib.sh"

tool=$MG_TOOLS/as-patch
[ -x "$tool" ] || bail "as-patch not built (make tests)"
command -v node >/dev/null || bail "node not found (mk/deps.sh node installs it)"
if ! command -v kubectl >/dev/null; then
    skip "patch.c against kubectl patch --local" "kubectl not found"
    finish
fi

node "$MG_TOP/tests/integration/apiserver-patch-cases.mjs" "$tool" "$MG_TMP" >"$MG_TMP/results.tsv" 2>"$MG_TMP/node.log" ||
    bail "the case runner failed: $(tail -n 3 "$MG_TMP/node.log" | tr '\n' ' ')"
[ -s "$MG_TMP/results.tsv" ] || bail "the case runner printed nothing"
while IFS=$'\t' read -r verdict name detail; do
    if [ "$verdict" = SAME ]; then ok "$name"; else not_ok "$name" "$detail"; fi
done <"$MG_TMP/results.tsv"
check "every case ran" [ "$(wc -l <"$MG_TMP/results.tsv")" -ge 50 ]
finish
