# shellcheck shell=bash
# Checks of the deployment files (deploy/): the Helm chart lints and renders with the
# default and the example values, its rendered manifests are valid Kubernetes objects
# (kubeconform, offline), its values schema refuses bad values, secrets are only ever
# referenced, and the Grafana dashboard and the alerts use only the portal's metrics.
#
# Tools are pinned and cached in $CACHE_BIN; the Kubernetes JSON schemas come from the
# kubernetes-validate package on PyPI (GitHub, where kubeconform looks by default, is not
# reachable here), cached in $PORTAL_CACHE.

# shellcheck source=dev/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HELM_VERSION=3.22.0
KUBECONFORM_VERSION=0.8.0
# Kubernetes 1.25 to 1.37 as JSON Schema, one file per kind (generated from each release's
# OpenAPI document by the package's author).
KUBERNETES_VALIDATE_VERSION=1.37.0
# The oldest and the newest Kubernetes the chart is checked against (Chart.yaml's
# kubeVersion says the oldest).
CHART_KUBE_VERSIONS=(1.30.0 1.37.0)
# ServiceMonitor and PrometheusRule schemas: cloudcoil's pydantic models of the
# Prometheus Operator's CRDs (0.80.1), made strict (dev/lib/chart_checks.py).
CLOUDCOIL_PROMETHEUS_OPERATOR_VERSION=0.80.1.0
CLOUDCOIL_VERSION=0.6.0
PYDANTIC_VERSION=2.14.3
PYYAML_VERSION=6.0.3

CHART_DIR="$ROOT/deploy/helm/headscale-portal"

# _scratch_dir — a fresh directory for throwaway build caches, on tmpfs when there is
# room (a Go module and build cache for Helm is about a gigabyte we do not keep).
_scratch_dir() {
  local base="${TMPDIR:-/tmp}" free
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    free=$(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}')
    if [[ -n "$free" ]] && ((free > 3 * 1024 * 1024)); then base=/dev/shm; fi
  fi
  mktemp -d "$base/hsportal-go.XXXXXX"
}

# _go_module_version BIN MODULE — the version of MODULE that BIN was built from
# (`go version -m`), empty when BIN is missing.
_go_module_version() {
  [[ -x "$1" ]] || return 0
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m {sub(/^v/, "", $3); print $3; exit}'
}

# _go_install_throwaway MODULE PKG VERSION — _go_install into $CACHE_BIN with module and
# build caches of its own, deleted afterwards: only the binary stays on disk.
_go_install_throwaway() {
  local scratch rc=0
  scratch=$(_scratch_dir)
  mkdir -p "$scratch/tmp"
  # The compiler's work directory too (GOTMPDIR, else $TMPDIR): a Helm build writes
  # several hundred megabytes there.
  # A subshell: _go_install ends with `die` (exit) on failure, and the scratch must go
  # either way.
  (GOMODCACHE="$scratch/mod" GOCACHE="$scratch/build" GOTMPDIR="$scratch/tmp" TMPDIR="$scratch/tmp" \
    GOFLAGS="-buildvcs=false -modcacherw -trimpath -ldflags=-s" \
    _go_install "$CACHE_BIN" "$@") || rc=$?
  rm -rf "$scratch"
  return "$rc"
}

# ensure_chart_tools — helm and kubeconform at the pinned versions in $CACHE_BIN.
ensure_chart_tools() {
  if [[ "$(_go_module_version "$CACHE_BIN/helm" helm.sh/helm/v3)" != "$HELM_VERSION" ]]; then
    _go_install_throwaway helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
  fi
  if [[ "$(_go_module_version "$CACHE_BIN/kubeconform" github.com/yannh/kubeconform)" != "$KUBECONFORM_VERSION" ]]; then
    _go_install_throwaway github.com/yannh/kubeconform \
      github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
  fi
}

# ensure_chart_python — PyYAML for the checks of the rendered manifests (they read
# YAML), in a small cached directory put on PYTHONPATH (a few MB; a virtualenv would be
# ten times that). Sets CHART_PYTHONPATH.
ensure_chart_python() {
  CHART_PYTHONPATH="$PORTAL_CACHE/pylib-chart"
  if [[ "$(PYTHONPATH="$CHART_PYTHONPATH" python3 -c 'import yaml; print(yaml.__version__)' 2>/dev/null)" != "$PYYAML_VERSION" ]]; then
    log "installing PyYAML $PYYAML_VERSION for the chart checks (once)"
    command -v python3 >/dev/null || ensure_apt python3
    rm -rf "$CHART_PYTHONPATH"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$CHART_PYTHONPATH" "PyYAML==$PYYAML_VERSION" >&2 \
      || die "could not install PyYAML $PYYAML_VERSION"
  fi
}

# ensure_kube_schemas — the JSON schemas kubeconform validates against, in
# $KUBE_SCHEMAS/k8s (Kubernetes' own kinds) and $KUBE_SCHEMAS/crds (Prometheus
# Operator kinds). Made once from two PyPI packages; only the schemas are kept.
ensure_kube_schemas() {
  KUBE_SCHEMAS="$PORTAL_CACHE/kube-schemas/kv$KUBERNETES_VALIDATE_VERSION-po$CLOUDCOIL_PROMETHEUS_OPERATOR_VERSION"
  local v stale=0 scratch
  for v in "${CHART_KUBE_VERSIONS[@]}"; do
    [[ -f "$KUBE_SCHEMAS/k8s/v$v-standalone-strict/deployment-apps-v1.json" ]] || stale=1
  done
  if ((stale)); then
    log "extracting Kubernetes ${CHART_KUBE_VERSIONS[*]} schemas from kubernetes-validate $KUBERNETES_VALIDATE_VERSION (once)"
    scratch=$(_scratch_dir)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$scratch" \
      "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 \
      || { rm -rf "$scratch"; die "could not download kubernetes-validate $KUBERNETES_VALIDATE_VERSION"; }
    rm -rf "$KUBE_SCHEMAS/k8s"
    python3 "$DEV_LIB/chart_checks.py" k8s-schemas "$scratch"/kubernetes_validate-*.whl \
      "$KUBE_SCHEMAS/k8s" "${CHART_KUBE_VERSIONS[@]}" >&2 || { rm -rf "$scratch"; die "extracting schemas failed"; }
    rm -rf "$scratch"
  fi
  if [[ ! -f "$KUBE_SCHEMAS/crds/monitoring.coreos.com/servicemonitor_v1.json" ]]; then
    log "generating ServiceMonitor/PrometheusRule schemas from cloudcoil-models-prometheus-operator $CLOUDCOIL_PROMETHEUS_OPERATOR_VERSION (once)"
    scratch=$(_scratch_dir)
    # shellcheck disable=SC2015 # the rm must run whichever step failed
    python3 -m venv "$scratch/venv" >&2 \
      && "$scratch/venv/bin/pip" install --quiet --disable-pip-version-check \
        "cloudcoil-models-prometheus-operator==$CLOUDCOIL_PROMETHEUS_OPERATOR_VERSION" \
        "cloudcoil==$CLOUDCOIL_VERSION" "pydantic==$PYDANTIC_VERSION" >&2 \
      && "$scratch/venv/bin/python" "$DEV_LIB/chart_checks.py" crd-schemas "$KUBE_SCHEMAS/crds" >&2 \
      || { rm -rf "$scratch" "$KUBE_SCHEMAS/crds"; die "generating the CRD schemas failed"; }
    rm -rf "$scratch"
  fi
}

# _chart_render NAME KUBE_VERSION helm-template-args... — renders into $CHART_OUT/NAME.yaml.
_chart_render() {
  local name="$1" kube="$2"; shift 2
  "$CACHE_BIN/helm" template portal "$CHART_DIR" --namespace headscale-portal \
    --kube-version "$kube" "$@" >"$CHART_OUT/$name.yaml" \
    || die "helm template ($name) failed"
}

# _chart_refuses WHAT-THE-ERROR-NAMES helm-template-args... — the chart must refuse these
# values, with an error that names the offending setting.
_chart_refuses() {
  local needle="$1" out; shift
  if out=$("$CACHE_BIN/helm" template portal "$CHART_DIR" --kube-version "${CHART_KUBE_VERSIONS[-1]}" "$@" 2>&1 >/dev/null); then
    die "the chart accepted $* (it must refuse it)"
  fi
  grep -qF -- "$needle" <<<"$out" || die "the chart refused $* but its error does not name $needle: $out"
  log "refused as it should: $* ($(grep -m1 -F -- "$needle" <<<"$out" | sed -E 's/^[[:space:]]+//' | cut -c1-110))"
}

# check_chart — every check of deploy/ (see the top of this file).
check_chart() {
  local started=$SECONDS kube values="$CHART_DIR/values-external-postgres.yaml"
  ensure_chart_tools
  ensure_chart_python
  ensure_kube_schemas
  CHART_OUT=$(mktemp -d "${TMPDIR:-/tmp}/hsportal-chart.XXXXXX")

  log "helm lint --strict (default values, values-external-postgres.yaml)"
  "$CACHE_BIN/helm" lint --strict "$CHART_DIR" >&2 || die "helm lint failed (default values)"
  "$CACHE_BIN/helm" lint --strict "$CHART_DIR" -f "$values" >&2 || die "helm lint failed ($values)"

  log "helm template: default, external Postgres, migrations at start, dev Secret, one replica, ServiceMonitor"
  for kube in "${CHART_KUBE_VERSIONS[@]}"; do
    _chart_render "default-$kube" "$kube"
    _chart_render "external-postgres-$kube" "$kube" -f "$values"
  done
  kube="${CHART_KUBE_VERSIONS[-1]}"
  cp "$CHART_OUT/default-$kube.yaml" "$CHART_OUT/default.yaml"
  cp "$CHART_OUT/external-postgres-$kube.yaml" "$CHART_OUT/external-postgres.yaml"
  _chart_render startup "$kube" --set migrations.mode=startup
  # Throwaway values of the right shapes (a file: --set would split the URLs at commas).
  cat >"$CHART_OUT/dev-values.yaml" <<'VALUES'
secrets:
  create: true
  values:
    oidcClientSecret: dev-client-secret
    secretKey: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
    databaseUrl: postgres://portal_app:dev@postgres:5432/portal
    databaseMigrationUrl: postgres://portal_owner:dev@postgres:5432/portal
VALUES
  _chart_render dev-secret "$kube" -f "$CHART_OUT/dev-values.yaml"
  _chart_render single "$kube" --set replicaCount=1
  _chart_render servicemonitor "$kube" --set metrics.serviceMonitor.enabled=true \
    --set metrics.serviceMonitor.labels.release=prometheus

  log "kubeconform (strict, offline schemas) against Kubernetes ${CHART_KUBE_VERSIONS[*]}"
  for kube in "${CHART_KUBE_VERSIONS[@]}"; do
    "$CACHE_BIN/kubeconform" -strict -summary -kubernetes-version "$kube" \
      -schema-location "$KUBE_SCHEMAS/k8s/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
      -schema-location "$KUBE_SCHEMAS/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
      "$CHART_OUT/default-$kube.yaml" "$CHART_OUT/external-postgres-$kube.yaml" \
      "$CHART_OUT/startup.yaml" "$CHART_OUT/dev-secret.yaml" "$CHART_OUT/single.yaml" \
      "$CHART_OUT/servicemonitor.yaml" "$ROOT/deploy/prometheus/alerts.yaml" >&2 \
      || die "kubeconform found invalid manifests (Kubernetes $kube)"
  done

  # The schemas must bite: an unknown field in a Deployment and in a ServiceMonitor.
  cat >"$CHART_OUT/broken.yaml" <<'BROKEN'
apiVersion: apps/v1
kind: Deployment
metadata: {name: broken}
spec:
  replica: 2
  selector: {matchLabels: {app: broken}}
  template:
    metadata: {labels: {app: broken}}
    spec: {containers: [{name: c, image: x}]}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: broken}
spec:
  selector: {matchLabels: {app: broken}}
  endpoints: [{port: metrics, scrapeInterval: 30s}]
BROKEN
  local invalid
  invalid=$("$CACHE_BIN/kubeconform" -strict -output json -kubernetes-version "$kube" \
    -schema-location "$KUBE_SCHEMAS/k8s/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$KUBE_SCHEMAS/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$CHART_OUT/broken.yaml" | grep -c '"status": "statusInvalid"' || true)
  [[ "$invalid" == 2 ]] || die "kubeconform's schemas let an unknown field through ($invalid of 2 broken objects refused)"

  log "what the manifests must say (secrets by reference, migration Job, probes, drain budget)"
  PYTHONPATH="$CHART_PYTHONPATH" python3 "$DEV_LIB/chart_checks.py" rendered "$CHART_OUT" >&2 || die "the rendered manifests break a rule"

  # NOTES.txt is rendered only by a real install; render it here through a copy of the
  # chart with a template that includes it, so a mistake in it cannot break an install.
  log "NOTES.txt renders (default, migrations at start, dev Secret, one replica)"
  cp -r "$CHART_DIR" "$CHART_OUT/chart"
  printf '%s\n' 'notes: |' '{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 2 }}' \
    >"$CHART_OUT/chart/templates/zz-notes-check.yaml"
  local notes args
  for args in "" "--set migrations.mode=startup" "-f $CHART_OUT/dev-values.yaml" "--set replicaCount=1 --set publicUrl=http://admin.example.com"; do
    # shellcheck disable=SC2086 # word splitting of the flag list is intended
    notes=$("$CACHE_BIN/helm" template portal "$CHART_OUT/chart" --kube-version "$kube" $args \
      --show-only templates/zz-notes-check.yaml) || die "NOTES.txt does not render with: ${args:-default values}"
    grep -qF "/auth/callback" <<<"$notes" || die "NOTES.txt lacks the redirect URI (${args:-default values})"
  done

  log "values the chart must refuse"
  _chart_refuses replicaCount --set replicaCount=-1
  _chart_refuses replicaCont --set replicaCont=2
  _chart_refuses publicUrl --set publicUrl=null
  _chart_refuses publicUrl --set publicUrl=https://admin.example.com/portal
  _chart_refuses publicUrl --set publicUrl=admin.example.com
  _chart_refuses issuerUrl --set oidc.issuerUrl=null
  _chart_refuses clientId --set oidc.clientId=
  _chart_refuses databaseUrl --set secrets.databaseUrl=null
  _chart_refuses /secrets/secretKey --set secrets.secretKey.name=null
  _chart_refuses databaseUrl --set secrets.values.databaseUrl=postgres://inline
  _chart_refuses /secrets/values/ --set secrets.create=true
  _chart_refuses secretKey -f "$CHART_OUT/dev-values.yaml" --set secrets.values.secretKey=short
  _chart_refuses mode --set migrations.mode=sometimes
  _chart_refuses syncConcurrency --set config.syncConcurrency=65
  _chart_refuses digest --set image.digest=sha256:abc
  _chart_refuses terminationGracePeriodSeconds --set config.shutdownGraceSeconds=30

  log "Grafana dashboard and alerts use only the portal's metrics"
  PYTHONPATH="$CHART_PYTHONPATH" python3 "$DEV_LIB/chart_checks.py" metrics "$ROOT/deploy/grafana/portal-dashboard.json" \
    "$ROOT/deploy/prometheus/alerts.yaml" >&2 || die "dashboard or alerts check failed"

  rm -rf "$CHART_OUT"
  log "chart checks passed ($((SECONDS - started)) s)"
}
