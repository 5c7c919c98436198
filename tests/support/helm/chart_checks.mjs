// Checks what a rendering of the shardlm chart must say, beyond schema validity:
//   node chart_checks.mjs FILE.yaml --workers N --kinds Kind,Kind... [--variant V --shardlm BIN]
//        [--launch-script files/launch.sh] [--dashboard deploy/grafana/shardlm.json]
//        [--api-keys k1,k2] [--rules deploy/prometheus/alerts.yml] [--reserve-gib 2]
// - one MPIJob: 1 launcher, N workers, SHARDLM_WORKERS = N, the launcher runs launch.sh from the
//   rendered ConfigMap (identical to the chart's files/launch.sh);
// - the launcher runs `shardlm serve` with only the server's flags, and the ports, model path,
//   state dir and API-key file it names are the Service's / container's ports and mounted volumes;
// - readiness on GET /ready and liveness on GET /health of the http port;
// - threads <= the worker CPU request; with --shardlm, `shardlm plan` confirms that the model fits
//   the worker memory limit minus a reserve for the runtime (default 2 GiB);
// - the dashboard ConfigMap holds deploy/grafana/shardlm.json, the PrometheusRule the groups of
//   deploy/prometheus/alerts.yml, the API-key Secret the given keys;
// - exactly the listed kinds are rendered.
import fs from "node:fs";
import { spawnSync } from "node:child_process";
import YAML from "yaml";

const argv = process.argv.slice(2);
const file = argv.shift();
const opt = {};
while (argv.length) {
  const k = argv.shift();
  if (!k.startsWith("--") || argv.length === 0) { console.error(`bad argument ${k}`); process.exit(2); }
  opt[k.slice(2)] = argv.shift();
}
const problems = [];
const check = (cond, msg) => { if (!cond) problems.push(msg); };
const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
const ofKind = (kind) => docs.filter((d) => d.kind === kind);
// JSON with object keys sorted: equal values give equal strings whatever the key order.
const canon = (v) => JSON.stringify(v, (k, x) => (x && typeof x === "object" && !Array.isArray(x)
  ? Object.fromEntries(Object.keys(x).sort().map((key) => [key, x[key]])) : x));

// Kinds.
if (opt.kinds) {
  const want = opt.kinds.split(",").sort().join(",");
  const got = [...new Set(docs.map((d) => d.kind))].sort().join(",");
  check(want === got, `kinds rendered: ${got}; expected ${want}`);
}

const jobs = ofKind("MPIJob");
check(jobs.length === 1, `expected one MPIJob, got ${jobs.length}`);
const job = jobs[0];
const workers = Number(opt.workers);
const L = job.spec.mpiReplicaSpecs.Launcher;
const W = job.spec.mpiReplicaSpecs.Worker;
check(L.replicas === 1, "launcher replicas must be 1");
check(W.replicas === workers, `worker replicas ${W.replicas}, expected ${workers}`);
const lc = L.template.spec.containers[0];
const wc = W.template.spec.containers[0];
const env = Object.fromEntries((lc.env || []).map((e) => [e.name, e.value]));
check(env.SHARDLM_WORKERS === String(workers), `SHARDLM_WORKERS=${env.SHARDLM_WORKERS}, expected ${workers}`);

// launch.sh from the ConfigMap.
const mountAt = (container, podSpec, dir) => {
  const m = (container.volumeMounts || []).find((vm) => dir === vm.mountPath || dir.startsWith(vm.mountPath + "/"));
  return m ? { mount: m, volume: (podSpec.volumes || []).find((v) => v.name === m.name) } : null;
};
const script = lc.command && lc.command[lc.command.length - 1];
const scriptMount = script && mountAt(lc, L.template.spec, script);
check(scriptMount && scriptMount.volume && scriptMount.volume.configMap, `launcher command ${JSON.stringify(lc.command)} does not run a script from a ConfigMap`);
if (scriptMount && scriptMount.volume && scriptMount.volume.configMap) {
  const cm = ofKind("ConfigMap").find((c) => c.metadata.name === scriptMount.volume.configMap.name);
  const key = script.slice(scriptMount.mount.mountPath.length + 1);
  check(cm && cm.data && typeof cm.data[key] === "string", `ConfigMap ${scriptMount.volume.configMap.name} has no ${key}`);
  if (cm && opt["launch-script"]) check(cm.data[key] === fs.readFileSync(opt["launch-script"], "utf8"), `${key} in the ConfigMap differs from ${opt["launch-script"]}`);
}

// shardlm serve arguments (after "--").
const args = lc.args || [];
const sep = args.indexOf("--");
check(sep >= 0 && args[sep + 1] === "serve", `launcher args must be [mpirun args] -- serve ...: ${JSON.stringify(args)}`);
const serveFlags = new Set(["--model", "--host", "--port", "--http-port", "--metrics-port", "--api-key-file", "--state-dir", "--max-context", "--kv-memory-per-worker", "--threads", "--tls-cert", "--tls-key"]);
const flags = {};
for (let k = sep + 2; k < args.length; k += 2) {
  check(serveFlags.has(args[k]), `'${args[k]}' is not a flag of shardlm serve`);
  check(k + 1 < args.length, `flag ${args[k]} has no value`);
  flags[args[k]] = args[k + 1];
}
for (const f of ["--model", "--host", "--port", "--http-port", "--metrics-port", "--state-dir", "--threads"]) check(f in flags, `serve is missing ${f}`);
check(flags["--host"] === "0.0.0.0", "the coordinator must listen on 0.0.0.0");

// Ports: Service, container and flags agree.
const svc = ofKind("Service")[0];
const svcPort = (name) => (svc.spec.ports.find((p) => p.name === name) || {}).port;
const ctrPort = (name) => ((lc.ports || []).find((p) => p.name === name) || {}).containerPort;
for (const [name, flag] of [["tcp", "--port"], ["http", "--http-port"], ["metrics", "--metrics-port"]]) {
  check(String(svcPort(name)) === flags[flag] && String(ctrPort(name)) === flags[flag], `port ${name}: Service ${svcPort(name)}, container ${ctrPort(name)}, ${flag} ${flags[flag]}`);
}
const probe = (p, path) => p && p.httpGet && p.httpGet.path === path && p.httpGet.port === "http";
check(probe(lc.readinessProbe, "/ready"), "readiness probe must be GET /ready on port http");
check(probe(lc.livenessProbe, "/health"), "liveness probe must be GET /health on port http");

// TLS: both files from a Secret volume of the launcher, and probes that speak HTTPS (plain HTTP
// gets no answer from a TLS port); without TLS, plain probes.
const tls = "--tls-cert" in flags || "--tls-key" in flags;
for (const f of ["--tls-cert", "--tls-key"]) {
  if (!tls) break;
  const m = flags[f] && mountAt(lc, L.template.spec, flags[f]);
  check(m && m.volume && m.volume.secret, `${f} ${flags[f]} is not in a Secret volume of the launcher`);
}
for (const [name, p] of [["startup", lc.startupProbe], ["readiness", lc.readinessProbe], ["liveness", lc.livenessProbe]]) {
  const scheme = (p && p.httpGet && p.httpGet.scheme) || "HTTP";
  check(scheme === (tls ? "HTTPS" : "HTTP"), `the ${name} probe speaks ${scheme} ${tls ? "to a TLS port" : "without TLS"}`);
}

// Volumes behind the paths.
const modelL = mountAt(lc, L.template.spec, flags["--model"]);
const modelW = mountAt(wc, W.template.spec, flags["--model"]);
check(modelL && modelW, `--model ${flags["--model"]} is not mounted in both launcher and workers`);
if (modelL && modelW) {
  const src = (v) => JSON.stringify({ ...v, name: undefined });
  check(src(modelL.volume) === src(modelW.volume), "launcher and workers mount different model volumes");
  check(modelL.mount.readOnly === true && modelW.mount.readOnly === true, "the model must be mounted read-only");
}
check(mountAt(lc, L.template.spec, flags["--state-dir"]), `--state-dir ${flags["--state-dir"]} is not a mounted volume`);
if (opt["api-keys"] !== undefined) {
  const keyFile = flags["--api-key-file"];
  check(keyFile, "API keys enabled but no --api-key-file");
  const m = keyFile && mountAt(lc, L.template.spec, keyFile);
  check(m && m.volume && m.volume.secret, `--api-key-file ${keyFile} is not in a Secret volume`);
  // Every rank gets the same command line (the coordinator alone reads the file): the workers mount it too.
  const mw = keyFile && mountAt(wc, W.template.spec, keyFile);
  check(mw && mw.volume && m && m.volume && JSON.stringify(mw.volume.secret) === JSON.stringify(m.volume.secret),
    `--api-key-file ${keyFile} is not mounted from the same Secret in the workers`);
  if (m && m.volume && m.volume.secret) {
    const secret = ofKind("Secret").find((s) => s.metadata.name === m.volume.secret.secretName);
    const key = keyFile.slice(m.mount.mountPath.length + 1);
    const text = secret && secret.stringData && secret.stringData[key];
    check(typeof text === "string", `Secret ${m.volume.secret.secretName} has no ${key}`);
    if (typeof text === "string") {
      const lines = text.split("\n").filter((l) => l !== "");
      check(JSON.stringify(lines) === JSON.stringify(opt["api-keys"].split(",")), `API keys file holds ${JSON.stringify(lines)}`);
    }
  }
} else {
  check(!("--api-key-file" in flags), "API keys not enabled but --api-key-file given");
}

// Threads vs CPU, memory vs plan.
const cpu = (q) => (q === undefined ? NaN : String(q).endsWith("m") ? parseFloat(q) / 1000 : parseFloat(q));
const gib = (q) => {
  const m = /^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  if (!m) return NaN;
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] || 1;
  return (parseFloat(m[1]) * unit) / 2 ** 30;
};
const wres = wc.resources || {};
const threads = Number(flags["--threads"]);
check(threads <= cpu(wres.requests && wres.requests.cpu), `--threads ${threads} exceeds the worker CPU request ${wres.requests && wres.requests.cpu}`);
const limitGiB = gib(wres.limits && wres.limits.memory);
check(limitGiB > 0, "workers need a memory limit");
if (opt.shardlm && opt.variant) {
  const reserve = Number(opt["reserve-gib"] || 2);
  const budget = `${(limitGiB - reserve).toFixed(3)}GiB`;
  const planArgs = ["plan", "--variant", opt.variant, "--workers", String(workers), "--memory-per-worker", budget];
  if (flags["--max-context"]) planArgs.push("--context", flags["--max-context"]);
  const r = spawnSync(opt.shardlm, planArgs, { encoding: "utf8" });
  const largest = (r.stdout.match(/^Largest worker: .*$/m) || [""])[0];
  check(r.status === 0, `shardlm ${planArgs.join(" ")} says the model does not fit: ${(r.stderr || r.stdout).trim()}`);
  if (r.status === 0) console.log(`plan ${opt.variant} on ${workers} workers, limit ${wres.limits.memory} - ${reserve} GiB: ${largest}`);
}

// Dashboard.
if (opt.dashboard) {
  const cms = ofKind("ConfigMap").filter((c) => c.data && "shardlm.json" in c.data);
  check(cms.length === 1, "expected one dashboard ConfigMap");
  if (cms.length === 1) {
    let same = false;
    try {
      same = canon(JSON.parse(cms[0].data["shardlm.json"])) === canon(JSON.parse(fs.readFileSync(opt.dashboard, "utf8")));
    } catch (e) {
      problems.push(`dashboard JSON: ${e.message}`);
    }
    check(same, `the dashboard ConfigMap differs from ${opt.dashboard}`);
  }
}

// Alerting rules.
if (opt.rules) {
  const prs = ofKind("PrometheusRule");
  check(prs.length === 1, "expected one PrometheusRule");
  if (prs.length === 1) {
    const want = YAML.parse(fs.readFileSync(opt.rules, "utf8")).groups;
    check(canon(prs[0].spec.groups) === canon(want), `the PrometheusRule groups differ from ${opt.rules}`);
  }
}

if (problems.length) {
  for (const p of problems) console.error(`CHECK FAILED ${file}: ${p}`);
  process.exit(1);
}
console.log(`${file}: chart checks passed (${workers} workers, serve ${Object.keys(flags).join(" ")})`);
