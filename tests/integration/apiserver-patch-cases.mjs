// Differential check of apiserver/patch.c against Kubernetes' own patch code,
// as carried by kubectl: each case's object and patch go through
// `kubectl patch --local` and through the as-patch tool, and the two results
// must be the same JSON, list order included (or both must refuse).
//
//   node apiserver-patch-cases.mjs AS_PATCH_TOOL WORKDIR
//
// Prints one line per case: "SAME<TAB>name" or "DIFF<TAB>name<TAB>details".
//
// Left out on purpose (documented differences, see docs of patch.c):
// - a list a strategic patch empties: kubectl's local result keeps [], a
//   real apiserver drops it (typed objects omit empty lists), as patch.c does;
// - directives inside a brand-new list item ($retainKeys): kubectl's local
//   result keeps them, a real apiserver's typed decoding drops them, as
//   patch.c does;
// - JSON patch leniencies of evanphx/json-patch v4 that RFC 6902 forbids
//   (replace of a missing member, leading zeros in indices, "~2", a missing
//   "value", test of a missing member against null): patch.c follows the RFC.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const [tool, work] = process.argv.slice(2);

const C = (name, extra = {}) => ({ name, image: `img-${name}`, ...extra });
const dep = (containers, spec = {}, meta = {}) => ({
  apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "web", ...meta },
  spec: { selector: { matchLabels: { app: "web" } }, ...spec,
          template: { metadata: { labels: { app: "web" } }, spec: { containers } } },
});
const tp = (spec) => ({ spec: { template: { spec } } });
const withPod = (o, f) => { const c = structuredClone(o); f(c.spec.template.spec); return c; };
const ab = [C("a"), C("b")];
const envc = [C("app", { env: [{ name: "A", value: "1" }, { name: "B", value: "2" }],
                         ports: [{ containerPort: 80, protocol: "TCP" }, { containerPort: 443 }] })];
const fin = dep(ab, {}, { finalizers: ["a", "b"] });
const svc = { apiVersion: "v1", kind: "Service", metadata: { name: "s" },
              spec: { ports: [{ port: 80, targetPort: 8080 }, { port: 443, targetPort: 8443 }], selector: { app: "web" } } };
const pod = { apiVersion: "v1", kind: "Pod", metadata: { name: "p" },
              spec: { containers: [C("a", { volumeMounts: [{ mountPath: "/d", name: "v" }] })], imagePullSecrets: [{ name: "a" }] } };
const cm = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c", labels: { x: "1" }, finalizers: ["a", "b", "c"] },
             data: { a: "1", b: "2" } };
const applied = dep([C("web", { image: "nginx:1", env: [{ name: "A", value: "1" }, { name: "B", value: "2" }],
                                ports: [{ containerPort: 80, protocol: "TCP" }] }), C("side", { image: "s:1" })],
                    { replicas: 2 }, { labels: { app: "web", tier: "x" },
                                       annotations: { "kubectl.kubernetes.io/last-applied-configuration": "old" } });

const cases = [
  ["smp: update a container", "strategic", dep(ab), tp({ containers: [{ name: "b", image: "z" }] })],
  ["smp: a new container goes first", "strategic", dep(ab), tp({ containers: [{ name: "c", image: "w" }] })],
  ["smp: $setElementOrder places a new container", "strategic", dep(ab),
   tp({ "$setElementOrder/containers": [{ name: "a" }, { name: "b" }, { name: "c" }], containers: [{ name: "c", image: "w" }] })],
  ["smp: $setElementOrder alone", "strategic", dep(ab), tp({ "$setElementOrder/containers": [{ name: "b" }, { name: "a" }] })],
  ["smp: $patch delete", "strategic", dep(ab),
   tp({ "$setElementOrder/containers": [{ name: "a" }], containers: [{ $patch: "delete", name: "b" }] })],
  ["smp: $patch replace in a list", "strategic", dep(ab), tp({ containers: [{ $patch: "replace" }, { name: "c", image: "w" }] })],
  ["smp: env merged by name", "strategic", dep(envc),
   tp({ containers: [{ name: "app", env: [{ name: "B", value: "3" }, { name: "C", value: "4" }] }] })],
  ["smp: env item deleted with order", "strategic", dep(envc),
   tp({ containers: [{ name: "app", "$setElementOrder/env": [{ name: "A" }], env: [{ $patch: "delete", name: "B" }] }] })],
  ["smp: env value to valueFrom", "strategic", dep(envc),
   tp({ containers: [{ name: "app", env: [{ name: "A", value: null, valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }] }] })],
  ["smp: ports by containerPort", "strategic", dep(envc), tp({ containers: [{ name: "app", ports: [{ containerPort: 80, name: "http" }] }] })],
  ["smp: new port", "strategic", dep(envc), tp({ containers: [{ name: "app", ports: [{ containerPort: 8080 }] }] })],
  ["smp: volume emptyDir to configMap ($retainKeys)", "strategic",
   withPod(dep(ab), (s) => { s.volumes = [{ name: "v", emptyDir: {} }, { name: "w", emptyDir: {} }]; }),
   tp({ volumes: [{ $retainKeys: ["configMap", "name"], name: "v", configMap: { name: "cm" } }] })],
  ["smp: tolerations replaced whole", "strategic", withPod(dep(ab), (s) => { s.tolerations = [{ key: "a" }]; }),
   tp({ tolerations: [{ key: "b" }] })],
  ["smp: args replaced whole", "strategic", dep([C("a", { args: ["x", "y"] })]), tp({ containers: [{ name: "a", args: ["z"] }] })],
  ["smp: finalizers union", "strategic", fin, { metadata: { finalizers: ["b", "c"] } }],
  ["smp: $deleteFromPrimitiveList", "strategic", fin, { metadata: { "$deleteFromPrimitiveList/finalizers": ["a"] } }],
  ["smp: finalizer added and removed", "strategic", fin,
   { metadata: { "$setElementOrder/finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"], finalizers: ["c"] } }],
  ["smp: ownerReferences by uid", "strategic",
   dep(ab, {}, { ownerReferences: [{ apiVersion: "v1", kind: "X", name: "x", uid: "1" }, { apiVersion: "v1", kind: "X", name: "y", uid: "2" }] }),
   { metadata: { ownerReferences: [{ apiVersion: "v1", kind: "X", uid: "2", name: "z" }] } }],
  ["smp: conditions by type", "strategic",
   { ...dep(ab), status: { conditions: [{ type: "Available", status: "False" }, { type: "Progressing", status: "True" }] } },
   { status: { conditions: [{ type: "Available", status: "True" }] } }],
  ["smp: strategy switched with $retainKeys", "strategic", dep(ab, { strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1 } } }),
   { spec: { strategy: { $retainKeys: ["type"], type: "Recreate", rollingUpdate: null } } }],
  ["smp: $patch delete on a map", "strategic", dep(ab, { strategy: { type: "Recreate" } }), { spec: { strategy: { $patch: "delete" } } }],
  ["smp: $patch replace on a map", "strategic", dep(ab), { spec: { selector: { matchLabels: { $patch: "replace", c: "3" } } } }],
  ["smp: label removed with null", "strategic", dep(ab, {}, { labels: { app: "web", tier: "x" } }), { metadata: { labels: { tier: null } } }],
  ["smp: unknown directive refused", "strategic", dep(ab), { spec: { $patch: "frob" } }],
  ["smp: item without merge key refused", "strategic", dep(ab), tp({ containers: [{ image: "x" }] })],
  ["smp: $setElementOrder mismatch refused", "strategic", dep([C("1"), C("3"), C("2")]),
   tp({ "$setElementOrder/containers": [{ name: "1" }, { name: "2" }, { name: "3" }],
        containers: [{ name: "3", image: "v3" }, { name: "1", image: "v1" }] })],
  ["smp: add and delete with order", "strategic", dep([C("1"), C("2"), C("4")]),
   tp({ "$setElementOrder/containers": [{ name: "2" }, { name: "3" }], containers: [{ name: "3", image: "i3" }, { name: "1", $patch: "delete" }] })],
  ["smp: add and delete with order, conflict", "strategic", dep([C("1"), C("4")]),
   tp({ "$setElementOrder/containers": [{ name: "2" }, { name: "3" }],
        containers: [{ name: "2", image: "i2" }, { name: "3", image: "i3" }, { name: "1", $patch: "delete" }] })],
  ["smp: add with order, conflict", "strategic", dep([C("1"), C("3")]),
   tp({ "$setElementOrder/containers": [{ name: "1" }, { name: "2" }], containers: [{ name: "1", image: "v1" }, { name: "2", image: "v2" }] })],
  ["smp: new list with a delete item", "strategic", dep(ab),
   tp({ initContainers: [{ name: "i", image: "x" }, { $patch: "delete", name: "j" }] })],
  ["smp: kubectl apply three-way patch", "strategic", applied,
   { metadata: { annotations: { "kubectl.kubernetes.io/last-applied-configuration": "new" }, labels: { tier: null } },
     spec: { replicas: 3, template: { spec: {
       "$setElementOrder/containers": [{ name: "web" }, { name: "side" }],
       containers: [{ "$setElementOrder/env": [{ name: "A" }], env: [{ $patch: "delete", name: "B" }], image: "nginx:2", name: "web" }] } } } }],
  ["smp: service ports by port", "strategic", svc, { spec: { ports: [{ port: 443, targetPort: 9443 }] } }],
  ["smp: service port added", "strategic", svc, { spec: { ports: [{ port: 8080 }] } }],
  ["smp: service port deleted", "strategic", svc, { spec: { "$setElementOrder/ports": [{ port: 443 }], ports: [{ $patch: "delete", port: 80 }] } }],
  ["smp: volumeMounts by mountPath", "strategic", pod, { spec: { containers: [{ name: "a", volumeMounts: [{ mountPath: "/d", readOnly: true }] }] } }],
  ["smp: imagePullSecrets by name", "strategic", pod, { spec: { imagePullSecrets: [{ name: "b" }] } }],
  ["smp: pod conditions by type", "strategic", { ...pod, status: { conditions: [{ type: "Ready", status: "False" }] } },
   { status: { conditions: [{ type: "Ready", status: "True" }, { type: "Initialized", status: "True" }] } }],
  ["smp: configmap data", "strategic", cm, { data: { a: null, c: "3" } }],
  ["smp: configmap $patch replace", "strategic", cm, { data: { $patch: "replace", z: "9" } }],
  ["merge: nested with nulls", "merge", cm, { data: { a: null }, metadata: { labels: { y: "2" } } }],
  ["merge: lists replaced", "merge", cm, { metadata: { finalizers: ["z"] } }],
  ["merge: new objects lose nulls", "merge", cm, { spec: { a: { b: null, c: 1 } } }],
  ["merge: list to object", "merge", cm, { metadata: { finalizers: { a: 1 } } }],
  ["json: add and remove", "json", cm, [{ op: "add", path: "/data/c", value: "3" }, { op: "remove", path: "/data/a" }]],
  ["json: failed test changes nothing", "json", cm, [{ op: "add", path: "/data/c", value: "3" }, { op: "test", path: "/data/a", value: "2" }]],
  ["json: ~1 and ~0", "json", { ...cm, metadata: { name: "c", annotations: { "a/b": "1", "c~d": "2" } } },
   [{ op: "replace", path: "/metadata/annotations/a~1b", value: "x" }, { op: "remove", path: "/metadata/annotations/c~0d" }]],
  ["json: copy and move", "json", cm, [{ op: "copy", from: "/data/a", path: "/data/z" }, { op: "move", from: "/data/b", path: "/data/y" }]],
  ["json: remove of a missing member", "json", cm, [{ op: "remove", path: "/data/nope" }]],
  ["json: add with -", "json", dep(ab), [{ op: "add", path: "/spec/template/spec/containers/-", value: { name: "c", image: "x" } }]],
  ["json: numbers compare by value", "json", dep(ab, { replicas: 1 }), [{ op: "test", path: "/spec/replicas", value: 1.0 }]],
  ["json: missing parent", "json", cm, [{ op: "add", path: "/data/x/y", value: "1" }]],
  ["json: index past the end", "json", cm, [{ op: "add", path: "/metadata/finalizers/4", value: "d" }]],
  ["json: remove -", "json", cm, [{ op: "remove", path: "/metadata/finalizers/-" }]],
  ["json: move into its own child", "json", cm, [{ op: "move", from: "/metadata", path: "/metadata/labels/m" }]],
  ["json: move in a list", "json", cm, [{ op: "move", from: "/metadata/finalizers/0", path: "/metadata/finalizers/2" }]],
  ["json: unknown op", "json", cm, [{ op: "frob", path: "/data" }]],
];

const sorted = (v) => Array.isArray(v) ? v.map(sorted)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v;

const run = (cmd, args, env) => {
  try {
    return { ok: true, out: execFileSync(cmd, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60000 }) };
  } catch (e) {
    return { ok: false, out: `${e.stdout || ""}${e.stderr || ""}`.trim().slice(0, 300) };
  }
};

const env = { ...process.env, HOME: work, KUBECONFIG: join(work, "no-kubeconfig") };
const obj = join(work, "object.json"), patch = join(work, "patch.json");
for (const [name, type, o, p] of cases) {
  writeFileSync(obj, JSON.stringify(o));
  writeFileSync(patch, JSON.stringify(p));
  const mine = run(tool, [type, o.kind, obj, patch], env);
  const kube = run("kubectl", ["patch", "-f", obj, "--local", "--type", type, "-p", JSON.stringify(p), "-o", "json"], env);
  let same = mine.ok === kube.ok, detail = "";
  if (same && mine.ok) {
    const a = JSON.stringify(sorted(JSON.parse(mine.out))), b = JSON.stringify(sorted(JSON.parse(kube.out)));
    same = a === b;
    if (!same) detail = `patch.c: ${a} | kubectl: ${b}`;
  } else if (!same) {
    detail = `patch.c ${mine.ok ? "applied it" : "refused it"} (${mine.out.slice(0, 150)}); kubectl ${kube.ok ? "applied it" : "refused it"} (${kube.out.slice(0, 150)})`;
  }
  console.log(same ? `SAME\t${name}` : `DIFF\t${name}\t${detail}`);
}
