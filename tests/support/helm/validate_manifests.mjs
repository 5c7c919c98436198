// Validates rendered Kubernetes manifests offline (the output of `helm template`).
//   node validate_manifests.mjs FILE.yaml [--external Kind/name ...]
// For every object: the schema of its kind (kubernetes-models for the built-in API,
// @kubernetes-models/prometheus-operator for ServiceMonitor, mpijob_schema.mjs for MPIJob with
// its pod templates checked as Kubernetes PodTemplateSpecs), unknown fields (strict_fields.mjs),
// names and labels, and the references between objects: volumes and mounts, probe and Service
// target ports, ConfigMaps / Secrets / PVCs used by pods, Service selectors that select a pod
// template, ServiceMonitors that select a Service port. Objects named with --external are
// allowed to be referenced without being rendered. Exit 0 when everything is valid.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { TypeIndex, checkAgainst } from "./strict_fields.mjs";
import { checkMpiJobSpec } from "./mpijob_schema.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const types = new TypeIndex(path.join(here, "node_modules"));

const args = process.argv.slice(2);
const file = args[0];
if (!file) { console.error("usage: validate_manifests.mjs FILE.yaml [--external Kind/name ...]"); process.exit(2); }
const external = new Set();
for (let k = 1; k < args.length; k++) {
  if (args[k] === "--external" && args[k + 1]) external.add(args[++k]);
  else { console.error(`unknown argument ${args[k]}`); process.exit(2); }
}

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);

// ---- parse ---------------------------------------------------------------------------------------
const docs = [];
for (const doc of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"), { uniqueKeys: true })) {
  if (doc.errors.length) { for (const e of doc.errors) fail(file, `YAML: ${e.message}`); continue; }
  const obj = doc.toJS();
  if (obj === null || obj === undefined) continue;
  docs.push(obj);
}
if (docs.length === 0) fail(file, "no objects");

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function checkLabels(where, labels) {
  for (const [k, v] of Object.entries(labels || {})) {
    if (!LABEL_NAME.test(k) || k.split("/").pop().length > 63) fail(where, `bad label key '${k}'`);
    if (typeof v !== "string" || v.length > 63 || !LABEL_VALUE.test(v)) fail(where, `bad value of label ${k}: ${JSON.stringify(v)}`);
  }
}

// ---- schemas ---------------------------------------------------------------------------------------
const modulePrefix = {
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator/monitoring.coreos.com",
};
function modelModule(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (!group) return `kubernetes-models/${version}/${kind}`;
  return `${modulePrefix[group] || `kubernetes-models/${group}`}/${version}/${kind}`;
}

async function validateModel(moduleSpec, kind, value, where) {
  let mod;
  try {
    mod = await import(moduleSpec);
  } catch {
    fail(where, `no schema for ${moduleSpec} (unknown apiVersion/kind)`);
    return;
  }
  const Cls = mod[kind];
  if (!Cls) { fail(where, `no model class ${kind} in ${moduleSpec}`); return; }
  try {
    new Cls(value).validate();
  } catch (e) {
    fail(where, `schema: ${e.message}`);
  }
  for (const e of checkAgainst(types, moduleSpec, `I${kind}`, value, where)) errors.push(e);
}

const podTemplates = [];  // { where, template, owner }
const byKind = new Map();
for (const [n, obj] of docs.entries()) {
  const where = `${obj.kind || "?"}/${(obj.metadata && obj.metadata.name) || `#${n}`}`;
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") { fail(where, "apiVersion and kind are required"); continue; }
  const name = obj.metadata && obj.metadata.name;
  if (typeof name !== "string" || !DNS1123_SUBDOMAIN.test(name) || name.length > 253) fail(where, `bad metadata.name ${JSON.stringify(name)}`);
  if (!byKind.has(obj.kind)) byKind.set(obj.kind, []);
  byKind.get(obj.kind).push(obj);
  if (obj.metadata) checkLabels(`${where} metadata.labels`, obj.metadata.labels);

  if (obj.apiVersion === "kubeflow.org/v2beta1" && obj.kind === "MPIJob") {
    for (const k of Object.keys(obj)) if (!["apiVersion", "kind", "metadata", "spec"].includes(k)) fail(where, `unknown top-level field ${k}`);
    for (const e of checkAgainst(types, "@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta", "IObjectMeta", obj.metadata, `${where}.metadata`)) errors.push(e);
    const { errors: specErrors, podTemplates: templates } = checkMpiJobSpec(obj.spec, `${where}.spec`);
    errors.push(...specErrors);
    for (const t of templates) {
      await validateModel("kubernetes-models/v1/PodTemplateSpec", "PodTemplateSpec", t.template, t.where);
      podTemplates.push({ ...t, owner: obj });
    }
    // Hostnames the operator derives: <name>-launcher, <name>-worker-<i> (DNS labels, <= 63).
    if (DNS1035_LABEL.test(name || "")) {
      const workers = obj.spec && obj.spec.mpiReplicaSpecs && obj.spec.mpiReplicaSpecs.Worker;
      const last = workers && Number.isInteger(workers.replicas) ? Math.max(0, workers.replicas - 1) : 0;
      for (const derived of [`${name}-launcher`, `${name}-worker-${last}`]) {
        if (derived.length > 63 || !DNS1123_LABEL.test(derived)) fail(where, `derived pod hostname '${derived}' is not a DNS label of <= 63 characters`);
      }
    } else {
      fail(where, `MPIJob name ${JSON.stringify(name)} must be a DNS-1035 label`);
    }
    continue;
  }
  await validateModel(modelModule(obj.apiVersion, obj.kind), obj.kind, obj, where);
  if (obj.kind === "Service" && !(DNS1035_LABEL.test(name || "") && name.length <= 63)) fail(where, "Service names must be DNS-1035 labels of <= 63 characters");
  const tpl = obj.spec && obj.spec.template;
  if (["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind) && tpl) podTemplates.push({ where: `${where}.spec.template`, template: tpl, owner: obj });
}

// ---- references ------------------------------------------------------------------------------------
const has = (kind, name) => external.has(`${kind}/${name}`) || (byKind.get(kind) || []).some((o) => o.metadata.name === name);

for (const { where, template } of podTemplates) {
  const meta = template.metadata || {};
  checkLabels(`${where}.metadata.labels`, meta.labels);
  const spec = template.spec || {};
  const volumes = new Map((spec.volumes || []).map((v) => [v.name, v]));
  if (volumes.size !== (spec.volumes || []).length) fail(where, "duplicate volume names");
  const mounted = new Set();
  const containers = [...(spec.initContainers || []), ...(spec.containers || [])];
  const names = new Set();
  for (const c of containers) {
    const at = `${where} container ${c.name}`;
    if (names.has(c.name)) fail(at, "duplicate container name");
    names.add(c.name);
    const ports = new Map();
    for (const p of c.ports || []) {
      if (p.name !== undefined) {
        if (!PORT_NAME.test(p.name) || p.name.length > 15) fail(at, `bad port name '${p.name}'`);
        if (ports.has(p.name)) fail(at, `duplicate port name '${p.name}'`);
        ports.set(p.name, p.containerPort);
      }
    }
    for (const m of c.volumeMounts || []) {
      if (!volumes.has(m.name)) fail(at, `volumeMount '${m.name}' has no volume`);
      mounted.add(m.name);
    }
    for (const probeName of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const probe = c[probeName];
      if (!probe) continue;
      const port = (probe.httpGet && probe.httpGet.port) ?? (probe.tcpSocket && probe.tcpSocket.port);
      if (typeof port === "string" && !ports.has(port)) fail(at, `${probeName} uses port '${port}' the container does not name`);
    }
  }
  for (const name of volumes.keys()) if (!mounted.has(name)) fail(where, `volume '${name}' is mounted by no container`);
  for (const v of volumes.values()) {
    if (v.configMap && !v.configMap.optional && !has("ConfigMap", v.configMap.name)) fail(where, `volume '${v.name}': ConfigMap ${v.configMap.name} is not rendered`);
    if (v.secret && !v.secret.optional && !has("Secret", v.secret.secretName)) fail(where, `volume '${v.name}': Secret ${v.secret.secretName} is not rendered`);
    if (v.persistentVolumeClaim && !has("PersistentVolumeClaim", v.persistentVolumeClaim.claimName)) fail(where, `volume '${v.name}': PersistentVolumeClaim ${v.persistentVolumeClaim.claimName} is not rendered`);
  }
}

const selects = (selector, labels) => Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);

for (const svc of byKind.get("Service") || []) {
  const where = `Service/${svc.metadata.name}`;
  const selector = svc.spec && svc.spec.selector;
  if (!selector || Object.keys(selector).length === 0) continue;
  const targets = podTemplates.filter((t) => selects(selector, t.template.metadata && t.template.metadata.labels));
  if (targets.length === 0) { fail(where, `selector ${JSON.stringify(selector)} selects no pod template`); continue; }
  for (const p of svc.spec.ports || []) {
    if (typeof p.targetPort !== "string") continue;
    for (const t of targets) {
      const named = (t.template.spec.containers || []).some((c) => (c.ports || []).some((cp) => cp.name === p.targetPort));
      if (!named) fail(where, `targetPort '${p.targetPort}' is no container port of ${t.where}`);
    }
  }
}

for (const sm of byKind.get("ServiceMonitor") || []) {
  const where = `ServiceMonitor/${sm.metadata.name}`;
  const matchLabels = sm.spec && sm.spec.selector && sm.spec.selector.matchLabels;
  const services = (byKind.get("Service") || []).filter((s) => selects(matchLabels, s.metadata.labels));
  if (!matchLabels || services.length === 0) { fail(where, "selector matches no rendered Service"); continue; }
  const jobLabel = sm.spec.jobLabel;
  if (jobLabel && !services.every((s) => s.metadata.labels && s.metadata.labels[jobLabel])) fail(where, `jobLabel '${jobLabel}' is not a label of every selected Service`);
  for (const ep of sm.spec.endpoints || []) {
    if (ep.port && !services.some((s) => (s.spec.ports || []).some((p) => p.name === ep.port))) fail(where, `endpoint port '${ep.port}' is on no selected Service`);
  }
}

if (errors.length) {
  for (const e of errors) console.error(`INVALID ${e}`);
  console.error(`${path.basename(file)}: ${errors.length} problem(s) in ${docs.length} object(s)`);
  process.exit(1);
}
const kinds = [...byKind.entries()].map(([k, v]) => `${v.length} ${k}`).join(", ");
console.log(`${path.basename(file)}: ${docs.length} object(s) valid (${kinds}; ${podTemplates.length} pod template(s))`);
