"""Checks of the deployment files, called by dev/lib/chart.sh (check_chart).

    chart_checks.py k8s-schemas WHEEL OUTDIR VERSION...   Kubernetes JSON schemas for kubeconform
    chart_checks.py crd-schemas OUTDIR                    ServiceMonitor/PrometheusRule schemas
    chart_checks.py rendered DIR                          what the rendered manifests must say
    chart_checks.py metrics DASHBOARD ALERTS              only the portal's metric names are used

Each check prints what it verified and exits non-zero on the first broken rule.
"""

import json
import re
import sys
import zipfile
from pathlib import Path


def fail(msg):
    print(f"chart check failed: {msg}", file=sys.stderr)
    sys.exit(1)


# ------------------------------------------------------------------ schemas --


def k8s_schemas(wheel, outdir, versions):
    """Kubernetes' schemas from the kubernetes-validate wheel, laid out for kubeconform.

    The wheel holds, per Kubernetes minor, one file per kind (`deployment-apps-v1.json`,
    the names kubeconform asks for) with an `$id` under https://kubernetes.io/api/ and
    `$ref`s to `/api/_definitions.json`, resolved against that `$id` by the package's own
    validator. Without the `$id` and with the relative `_definitions.json`, kubeconform
    resolves them next to the file, offline.
    """

    def local_refs(node):
        if isinstance(node, dict):
            node.pop("$id", None)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("/api/_definitions.json#"):
                node["$ref"] = ref[len("/api/"):]
            for value in node.values():
                local_refs(value)
        elif isinstance(node, list):
            for value in node:
                local_refs(value)
        return node

    out = Path(outdir)
    with zipfile.ZipFile(wheel) as z:
        for version in versions:
            prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}-local-strict/"
            names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
            if not names:
                fail(f"{wheel} has no schemas for Kubernetes {version}")
            target = out / f"v{version}-standalone-strict"
            target.mkdir(parents=True, exist_ok=True)
            for name in names:
                schema = local_refs(json.loads(z.read(name)))
                (target / name[len(prefix):]).write_text(json.dumps(schema))
            print(f"Kubernetes {version}: {len(names)} schemas")


def strict(node):
    """Refuse unknown fields everywhere, as kubeconform's -strict does for built-in kinds."""
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def crd_schemas(outdir):
    """ServiceMonitor and PrometheusRule from cloudcoil's models of the Prometheus
    Operator's CRDs (generated from the CRDs' OpenAPI schemas), made strict."""
    from cloudcoil.models.prometheus_operator import v1  # the scratch venv's package

    target = Path(outdir) / "monitoring.coreos.com"
    target.mkdir(parents=True, exist_ok=True)
    for kind in ("ServiceMonitor", "PrometheusRule"):
        schema = getattr(v1, kind).model_json_schema(by_alias=True, mode="validation")
        # Rendered manifests always carry these two.
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "spec"})
        path = target / f"{kind.lower()}_v1.json"
        path.write_text(json.dumps(strict(schema)))
        print(f"{kind}: {path}")


# ---------------------------------------------------------------- rendered --


def load(path):
    import yaml

    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    if not docs:
        fail(f"{path} renders nothing")
    return docs


def only(docs, kind, component=None):
    found = [
        d
        for d in docs
        if d["kind"] == kind
        and (component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)
    ]
    if len(found) != 1:
        fail(f"expected one {kind}{' (' + component + ')' if component else ''}, found {len(found)}")
    return found[0]


def container(workload):
    containers = workload["spec"]["template"]["spec"]["containers"]
    if len(containers) != 1:
        fail(f"{workload['kind']} should have one container, has {len(containers)}")
    return containers[0]


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def expect_secret_ref(c, name, secret, key, where):
    env = env_of(c).get(name)
    if env is None:
        fail(f"{where}: no {name}")
    if "value" in env:
        fail(f"{where}: {name} is written inline")
    ref = env.get("valueFrom", {}).get("secretKeyRef")
    if ref != {"name": secret, "key": key}:
        fail(f"{where}: {name} should come from secret {secret}/{key}, got {env.get('valueFrom')}")


SECRET_ENVS = ("OIDC_CLIENT_SECRET", "PORTAL_SECRET_KEY", "DATABASE_URL", "DATABASE_MIGRATION_URL")


def no_secret_values(docs, where):
    """Outside a Secret, nothing looks like a credential."""
    for d in docs:
        if d["kind"] == "Secret":
            fail(f"{where}: renders a Secret ({d['metadata']['name']}) though secrets.create is false")
        text = json.dumps(d)
        if re.search(r"postgres(ql)?://", text):
            fail(f"{where}: a database URL appears in {d['kind']} {d['metadata']['name']}")
        if d["kind"] == "ConfigMap":
            for k in d.get("data", {}):
                if k in SECRET_ENVS:
                    fail(f"{where}: ConfigMap carries {k}")


def check_web(docs, where, grace_below=True):
    dep = only(docs, "Deployment", "web")
    c = container(dep)
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    if spec["strategy"]["rollingUpdate"]["maxUnavailable"] != 0:
        fail(f"{where}: rolling update must keep maxUnavailable 0")
    if c["args"] != ["serve"]:
        fail(f"{where}: the portal container should run `serve`")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    if ports.get("http") != 3000:
        fail(f"{where}: container port http should be 3000, got {ports}")
    if c["livenessProbe"]["httpGet"]["path"] != "/healthz" or c["readinessProbe"]["httpGet"]["path"] != "/readyz":
        fail(f"{where}: liveness must ask /healthz and readiness /readyz")
    sleep = c["lifecycle"]["preStop"]["exec"]["command"]
    if sleep[0] != "sleep" or int(sleep[1]) < 1:
        fail(f"{where}: preStop should sleep, got {sleep}")
    sc = c["securityContext"]
    if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"]):
        fail(f"{where}: container securityContext must be read-only, no escalation, drop ALL")
    if not pod["securityContext"].get("runAsNonRoot"):
        fail(f"{where}: pod must run as non-root")
    if pod.get("automountServiceAccountToken") is not False:
        fail(f"{where}: the portal needs no Kubernetes API token")
    cm = only(docs, "ConfigMap")
    data = cm["data"]
    if data["PORTAL_BIND"] != "0.0.0.0:3000":
        fail(f"{where}: PORTAL_BIND should be 0.0.0.0:3000, got {data['PORTAL_BIND']}")
    for name in ("PORTAL_PUBLIC_URL", "OIDC_ISSUER_URL", "OIDC_CLIENT_ID", "PORTAL_SITE_ROOT",
                 "PORTAL_LOG_FORMAT", "PORTAL_TRUST_FORWARDED_FOR", "PORTAL_SHUTDOWN_GRACE_SECONDS",
                 "PORTAL_REQUEST_TIMEOUT_SECONDS"):
        if not data.get(name):
            fail(f"{where}: ConfigMap lacks {name}")
    if c["envFrom"] != [{"configMapRef": {"name": cm["metadata"]["name"]}}]:
        fail(f"{where}: the container should read the ConfigMap {cm['metadata']['name']}")
    drain = int(sleep[1]) + int(data["PORTAL_SHUTDOWN_GRACE_SECONDS"])
    if grace_below and drain >= pod["terminationGracePeriodSeconds"]:
        fail(f"{where}: preStop + shutdown grace ({drain}s) must be below terminationGracePeriodSeconds")
    svc = only(docs, "Service")
    http = [p for p in svc["spec"]["ports"] if p["name"] == "http"]
    if not http or http[0]["port"] != 80 or http[0]["targetPort"] != "http":
        fail(f"{where}: Service should map port 80 to the container's http port")
    if svc["spec"]["selector"].get("app.kubernetes.io/component") != "web":
        fail(f"{where}: the Service must select only the portal's pods, not the migration Job's")
    return dep, c, data


def check_job(docs, secret, key, where):
    job = only(docs, "Job", "migrations")
    ann = job["metadata"]["annotations"]
    if ann.get("helm.sh/hook") != "pre-install,pre-upgrade":
        fail(f"{where}: migration Job must be a pre-install,pre-upgrade hook, got {ann}")
    if ann.get("helm.sh/hook-delete-policy") != "before-hook-creation":
        fail(f"{where}: migration Job's delete policy should be before-hook-creation")
    spec = job["spec"]
    if not (spec.get("backoffLimit", -1) >= 0 and spec.get("activeDeadlineSeconds", 0) > 0):
        fail(f"{where}: migration Job needs backoffLimit and activeDeadlineSeconds")
    c = container(job)
    if c["args"] != ["migrate"]:
        fail(f"{where}: migration Job should run `portal migrate`, runs {c['args']}")
    expect_secret_ref(c, "DATABASE_MIGRATION_URL", secret, key, where + " Job")
    if set(env_of(c)) != {"DATABASE_MIGRATION_URL"}:
        fail(f"{where}: migration Job needs only DATABASE_MIGRATION_URL, has {sorted(env_of(c))}")
    return job


def rendered(directory):
    d = Path(directory)

    # Defaults: existing Secrets by reference, migrations in the hook Job.
    docs = load(d / "default.yaml")
    where = "default values"
    no_secret_values(docs, where)
    dep, c, _ = check_web(docs, where)
    expect_secret_ref(c, "OIDC_CLIENT_SECRET", "headscale-portal", "OIDC_CLIENT_SECRET", where)
    expect_secret_ref(c, "PORTAL_SECRET_KEY", "headscale-portal", "PORTAL_SECRET_KEY", where)
    expect_secret_ref(c, "DATABASE_URL", "headscale-portal-db", "DATABASE_URL", where)
    if "DATABASE_MIGRATION_URL" in env_of(c):
        fail(f"{where}: the Deployment must not get DATABASE_MIGRATION_URL when the Job migrates")
    check_job(docs, "headscale-portal-db", "DATABASE_MIGRATION_URL", where)
    if only(docs, "PodDisruptionBudget")["spec"]["minAvailable"] != 1:
        fail(f"{where}: PDB should keep one pod available")
    ing = only(docs, "Ingress")
    if ing["spec"]["rules"][0]["host"] != "admin.example.com" or ing["spec"]["tls"][0]["hosts"] != ["admin.example.com"]:
        fail(f"{where}: Ingress should serve admin.example.com with TLS")
    if any(x["kind"] == "ServiceMonitor" for x in docs):
        fail(f"{where}: ServiceMonitor should be off by default")
    print(f"{where}: secrets by reference, Job migrates, Deployment has no owner URL, PDB, Ingress")

    # External Postgres example: its own Secret, the CA mounted in both pods.
    docs = load(d / "external-postgres.yaml")
    where = "values-external-postgres.yaml"
    no_secret_values(docs, where)
    dep, c, data = check_web(docs, where)
    expect_secret_ref(c, "DATABASE_URL", "portal-postgres", "DATABASE_URL", where)
    if "DATABASE_MIGRATION_URL" in env_of(c):
        fail(f"{where}: the Deployment must not get DATABASE_MIGRATION_URL")
    job = check_job(docs, "portal-postgres", "DATABASE_MIGRATION_URL", where)
    for w in (dep, job):
        mounts = {m["name"]: m["mountPath"] for m in container(w)["volumeMounts"]}
        if mounts.get("postgres-ca") != "/etc/portal/postgres-ca":
            fail(f"{where}: {w['kind']} should mount the database CA, mounts {mounts}")
    print(f"{where}: own database Secret, CA mounted in the portal and the Job")

    # Migrations at start: no Job; the pods get the owner URL.
    docs = load(d / "startup.yaml")
    where = "migrations.mode=startup"
    no_secret_values(docs, where)
    if any(x["kind"] == "Job" for x in docs):
        fail(f"{where}: no migration Job expected")
    _, c, _ = check_web(docs, where)
    expect_secret_ref(c, "DATABASE_MIGRATION_URL", "headscale-portal-db", "DATABASE_MIGRATION_URL", where)
    print(f"{where}: no Job, the Deployment reads DATABASE_MIGRATION_URL from its Secret")

    # Development: the chart's Secret, made as a hook before the migration Job.
    docs = load(d / "dev-secret.yaml")
    where = "secrets.create=true"
    secret = only(docs, "Secret")
    name = secret["metadata"]["name"]
    if set(secret["stringData"]) != set(SECRET_ENVS):
        fail(f"{where}: dev Secret should hold {SECRET_ENVS}")
    if int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) >= 0:
        fail(f"{where}: dev Secret must be created before the migration Job")
    _, c, _ = check_web(docs, where)
    for env in SECRET_ENVS[:3]:
        expect_secret_ref(c, env, name, env, where)
    check_job(docs, name, "DATABASE_MIGRATION_URL", where)
    print(f"{where}: every reference points into {name}, created before the Job")

    # One replica: no PDB (it would block node drains).
    docs = load(d / "single.yaml")
    if any(x["kind"] == "PodDisruptionBudget" for x in docs):
        fail("replicaCount=1: no PodDisruptionBudget expected")
    print("replicaCount=1: no PodDisruptionBudget")

    # ServiceMonitor: scrapes the metrics port of the portal's Service.
    docs = load(d / "servicemonitor.yaml")
    sm = only(docs, "ServiceMonitor")
    svc = only(docs, "Service")
    ep = sm["spec"]["endpoints"][0]
    if ep["port"] != "metrics" or ep["path"] != "/metrics":
        fail("ServiceMonitor should scrape port metrics, path /metrics")
    if not any(p["name"] == "metrics" for p in svc["spec"]["ports"]):
        fail("Service lacks the metrics port")
    labels = svc["metadata"]["labels"]
    if any(labels.get(k) != v for k, v in sm["spec"]["selector"]["matchLabels"].items()):
        fail("ServiceMonitor's selector does not match the Service")
    if sm["metadata"]["labels"].get("release") != "prometheus":
        fail("ServiceMonitor should carry metrics.serviceMonitor.labels")
    _, _, data = check_web(docs, "metrics")
    if data.get("PORTAL_METRICS_BIND") != "0.0.0.0:9464":
        fail("PORTAL_METRICS_BIND should be 0.0.0.0:9464")
    print("metrics.serviceMonitor.enabled=true: ServiceMonitor selects the Service's metrics port")


# ----------------------------------------------------------------- metrics --

# The portal's metrics (server/src/metrics.rs); histograms add _bucket, _sum, _count.
COUNTERS_GAUGES = {
    "portal_http_requests_total",
    "portal_http_requests_in_flight",
    "portal_db_pool_connections",
    "portal_db_pool_max_connections",
    "portal_db_unavailable_total",
    "portal_shard_sync_total",
    "portal_shard_sync_lag_seconds",
    "portal_shard_up",
    "portal_policy_push_total",
    "portal_background_jobs_running",
    "portal_build_info",
}
HISTOGRAMS = {"portal_http_request_duration_seconds", "portal_shard_sync_duration_seconds"}
ALLOWED = COUNTERS_GAUGES | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "bool", "offset", "inf", "nan", "le"}


def metric_names(expr):
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names (inside {} or by/without/on(...)), strings or durations."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                  # strings
    e = re.sub(r"\{[^}]*\}", "", e)                                 # label matchers
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", "", e)                                # ranges
    e = re.sub(r"\$\{?\w+\}?", " ", e)                              # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def walk_exprs(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "definition") and isinstance(v, str):
                found.append(v)
            elif k == "query" and isinstance(v, str):
                found.append(v)
            else:
                walk_exprs(v, found)
    elif isinstance(node, list):
        for v in node:
            walk_exprs(v, found)
    return found


def check_exprs(exprs, where):
    used = set()
    for expr in exprs:
        # Grafana's label_values(selector, label): the label is not a metric.
        names = metric_names(re.sub(r"^label_values\((.*?)(,\s*\w+)?\)$", r"\1", expr.strip()))
        unknown = names - ALLOWED
        if unknown:
            fail(f"{where}: unknown metric(s) {sorted(unknown)} in: {expr}")
        used |= names
    return used


def metrics(dashboard, alerts):
    import yaml

    dash = json.loads(Path(dashboard).read_text())
    if dash.get("title") != "Headscale Portal" or not dash.get("uid"):
        fail(f"{dashboard}: needs the title 'Headscale Portal' and a uid")
    if not any(i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"
               for i in dash.get("__inputs", [])):
        fail(f"{dashboard}: needs a DS_PROMETHEUS datasource input")
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${DS_PROMETHEUS}":
            fail(f"{dashboard}: panel {p['title']!r} does not use ${{DS_PROMETHEUS}}")
        if not p.get("targets"):
            fail(f"{dashboard}: panel {p['title']!r} has no query")
    ids = [p["id"] for p in dash["panels"]]
    if len(ids) != len(set(ids)):
        fail(f"{dashboard}: panel ids are not unique")
    used = check_exprs(walk_exprs(dash["panels"], []) + walk_exprs(dash["templating"], []), dashboard)
    base = {re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) and
            re.sub(r"_(bucket|sum|count)$", "", n) in HISTOGRAMS else n for n in used}
    missing = (COUNTERS_GAUGES | HISTOGRAMS) - base
    if missing:
        fail(f"{dashboard}: no panel shows {sorted(missing)}")
    print(f"{dashboard}: {len(dash['panels'])} panels, every metric known, all {len(base)} metrics shown")

    rule = yaml.safe_load(Path(alerts).read_text())
    if rule.get("kind") != "PrometheusRule":
        fail(f"{alerts}: should be a PrometheusRule")
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    for r in rules:
        for field in ("alert", "expr", "labels", "annotations"):
            if field not in r:
                fail(f"{alerts}: rule {r.get('alert')} lacks {field}")
        if r["labels"].get("severity") not in ("warning", "critical"):
            fail(f"{alerts}: rule {r['alert']} needs severity warning or critical")
    check_exprs([r["expr"] for r in rules], alerts)
    print(f"{alerts}: {len(rules)} alerts, every metric known")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "k8s-schemas":
        k8s_schemas(args[0], args[1], args[2:])
    elif cmd == "crd-schemas":
        crd_schemas(args[0])
    elif cmd == "rendered":
        rendered(args[0])
    elif cmd == "metrics":
        metrics(args[0], args[1])
    else:
        fail(f"unknown command {cmd}")
