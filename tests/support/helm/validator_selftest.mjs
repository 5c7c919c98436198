// Proves that validate_manifests.mjs rejects broken manifests: takes a valid rendering of the chart
// (with an MPIJob, a Service and a ServiceMonitor), applies one typical template mistake at a time
// and expects the validator to fail naming the problem.
//   node validator_selftest.mjs VALID.yaml
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const source = process.argv[2];
const original = YAML.parseAllDocuments(fs.readFileSync(source, "utf8")).map((d) => d.toJS()).filter(Boolean);
const find = (docs, kind) => {
  const o = docs.find((d) => d.kind === kind);
  if (!o) throw new Error(`${source} has no ${kind}`);
  return o;
};
const launcher = (docs) => find(docs, "MPIJob").spec.mpiReplicaSpecs.Launcher.template.spec;
const worker = (docs) => find(docs, "MPIJob").spec.mpiReplicaSpecs.Worker.template.spec;

const cases = [
  ["misspelt probe field", "unknown field", (d) => { const p = launcher(d).containers[0].readinessProbe; p.httpget = p.httpGet; delete p.httpGet; }],
  ["field one level too deep", "unknown field", (d) => { launcher(d).containers[0].ports[0].resources = { limits: { memory: "1Gi" } }; }],
  ["port as text", "containerPort", (d) => { worker(d).containers[0].ports[0].containerPort = "twenty-two"; }],
  ["container without a name", "name", (d) => { delete worker(d).containers[0].name; }],
  ["unknown MPIJob field", "unknown field", (d) => { find(d, "MPIJob").spec.slotPerWorker = 1; }],
  ["bad cleanPodPolicy", "cleanPodPolicy", (d) => { find(d, "MPIJob").spec.runPolicy.cleanPodPolicy = "Sometimes"; }],
  ["MPIJob without launcher", "Launcher: required", (d) => { delete find(d, "MPIJob").spec.mpiReplicaSpecs.Launcher; }],
  ["mount without volume", "has no volume", (d) => { launcher(d).containers[0].volumeMounts.push({ name: "nowhere", mountPath: "/x" }); }],
  ["Service selects nothing", "selects no pod template", (d) => { find(d, "Service").spec.selector["app.kubernetes.io/component"] = "nobody"; }],
  ["Service port not on the pod", "targetPort", (d) => { find(d, "Service").spec.ports[0].targetPort = "grpc"; }],
  ["probe on an unnamed port", "does not name", (d) => { launcher(d).containers[0].readinessProbe.httpGet.port = "web"; }],
  ["ServiceMonitor on a missing port", "endpoint port", (d) => { find(d, "ServiceMonitor").spec.endpoints[0].port = "prom"; }],
  ["unknown ServiceMonitor field", "unknown field", (d) => { find(d, "ServiceMonitor").spec.endpoints[0].intervall = "5s"; }],
  ["ConfigMap not rendered", "is not rendered", (d) => { d.splice(d.findIndex((o) => o.kind === "ConfigMap" && o.data && o.data["launch.sh"]), 1); }],
  ["bad label value", "bad value of label", (d) => { find(d, "Service").metadata.labels["app.kubernetes.io/version"] = "not ok!"; }],
  ["too long MPIJob name", "derived pod hostname", (d) => { find(d, "MPIJob").metadata.name = "a".repeat(60); }],
];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shardlm-validator-"));
let failed = 0;
try {
  for (const [name, expected, mutate] of cases) {
    const docs = structuredClone(original);
    mutate(docs);
    const file = path.join(dir, "case.yaml");
    fs.writeFileSync(file, docs.map((d) => YAML.stringify(d)).join("---\n"));
    const r = spawnSync(process.execPath, [path.join(here, "validate_manifests.mjs"), file], { encoding: "utf8" });
    const ok = r.status === 1 && r.stderr.includes(expected);
    if (process.env.SELFTEST_VERBOSE) console.log(`-- ${name}:\n${r.stderr.split("\n")[0]}`);
    if (!ok) {
      failed++;
      console.error(`FAIL validator accepted or misreported: ${name} (exit ${r.status}, wanted '${expected}')\n${r.stdout}${r.stderr}`);
    }
  }
  // The unmodified documents, written the same way, still pass.
  const file = path.join(dir, "case.yaml");
  fs.writeFileSync(file, original.map((d) => YAML.stringify(d)).join("---\n"));
  const r = spawnSync(process.execPath, [path.join(here, "validate_manifests.mjs"), file], { encoding: "utf8" });
  if (r.status !== 0) { failed++; console.error(`FAIL the unmodified manifests do not validate:\n${r.stderr}`); }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
if (failed) { console.error(`validator self-test: ${failed} of ${cases.length + 1} failed`); process.exit(1); }
console.log(`validator self-test: all ${cases.length} broken variants rejected, the original accepted`);
