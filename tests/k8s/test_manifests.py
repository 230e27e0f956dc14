"""Offline checks of k8s/ and spark-operator/: render, strict schema validation, consistency with
the code, shellcheck and checkov. The checking tools live in .venv-k8s (scripts/setup-k8s-tools.sh,
run by `make test`); the CRD schemas are read from ../shared/k8s-schemas, never copied here.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO.parent / "shared" / "k8s-schemas"
TOOLS = REPO / ".venv-k8s" / "bin"
OVERLAY = REPO / "k8s" / "overlays" / "minikube"
HERE = Path(__file__).resolve().parent
# The newest Kubernetes kubernetes-validate knows, and a typical minikube's.
K8S_VERSIONS = ("1.37.0", "1.33.0")
# Batch jobs the manifests already schedule whose code lands with another issue: until it does the
# job-name check reports them (xfail, said in the summary); once registered they are checked as all.
PENDING_BATCH_JOBS: dict[str, str] = {}
CRD_KINDS = {"SparkApplication", "ScheduledSparkApplication", "Kafka", "KafkaTopic", "KafkaNodePool"}
SCRIPTS = sorted([*REPO.glob("k8s/*.sh"), *REPO.glob("spark-operator/*.sh"), *REPO.glob("scripts/*.sh"),
                  REPO / ".ci" / "run"])
DOCKERFILES = sorted([REPO / "spark-operator" / "image" / "Dockerfile", *REPO.glob("k8s/images/*/Dockerfile")])


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup-k8s-tools.sh (make test does)")
    return str(path)


def need_schemas():
    if not SCHEMAS.is_dir():
        pytest.skip(f"{SCHEMAS} is absent: the CRD schemas live beside the checkout in ../shared")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is not on PATH: it renders the kustomize overlay")
    out = subprocess.run(["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    path = tmp_path_factory.mktemp("k8s") / "minikube.yaml"
    path.write_text(out.stdout)
    return path


@pytest.fixture(scope="module")
def docs(rendered) -> list[dict]:
    return [d for d in yaml.safe_load_all(rendered.read_text()) if d]


def by_kind(docs, kind) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def validate(files: list[Path], version: str) -> list[dict]:
    out = subprocess.run([tool("python"), str(HERE / "validate.py"), "--schemas", str(SCHEMAS),
                          "--k8s-version", version, *map(str, files)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode in (0, 1), out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


# --- render and validate --------------------------------------------------------------------------

def test_overlay_renders_every_component(docs):
    kinds = {d["kind"] for d in docs}
    assert CRD_KINDS <= kinds
    assert {"Namespace", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "Job",
            "NetworkPolicy", "PersistentVolumeClaim", "ServiceAccount", "Role", "RoleBinding"} <= kinds
    assert set(by_kind(docs, "Deployment")) == {"minio", "mlflow", "producer", "serving", "dashboard"}
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"tickcast"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_document_validates_strictly(rendered, version):
    need_schemas()
    results = validate([rendered], version)
    assert results, "nothing was validated"
    failed = [f"{r['kind']}/{r['name']} ({r['validator']}): {r['errors']}" for r in results if not r["ok"]]
    assert not failed, "\n".join(failed)
    # Every kind was checked by something that knows it: CRD kinds by their CRD, the rest by
    # kubernetes-validate (a kind it does not know comes back as `none`, i.e. failed above).
    for r in results:
        assert r["validator"] == ("crd" if r["kind"] in CRD_KINDS else "kubernetes-validate"), r


def test_negative_fixtures_are_all_rejected_by_the_right_check():
    need_schemas()
    files = sorted((HERE / "negative").glob("*.yaml"))
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    results = validate(files, K8S_VERSIONS[0])
    assert len(results) == len(docs) >= 10
    for r, d in zip(results, docs):
        validator, needle = d["metadata"]["annotations"]["tickcast.io/expect"].split("|", 1)
        assert not r["ok"], f"{r['kind']}/{r['name']} passed but must fail"
        assert r["validator"] == validator, r
        assert any(needle in e for e in r["errors"]), (needle, r["errors"])
    kinds = {d["kind"] for d in docs}
    assert CRD_KINDS <= kinds                                  # every CRD kind has a negative case


# --- consistency with the code --------------------------------------------------------------------

def spark_apps(docs) -> dict[str, dict]:
    """name -> SparkApplication spec, for plain and scheduled ones."""
    apps = {n: d["spec"] for n, d in by_kind(docs, "SparkApplication").items()}
    apps.update({n: d["spec"]["template"] for n, d in by_kind(docs, "ScheduledSparkApplication").items()})
    return apps


def job_of(spec: dict) -> str:
    args = spec["arguments"]
    return args[args.index("--job") + 1]


def test_every_spark_application_runs_an_existing_job(docs):
    from jobs.main import BATCH_JOBS
    from jobs.runner import job_starters

    streaming = set(job_starters())
    streamed = {n: job_of(d["spec"]) for n, d in by_kind(docs, "SparkApplication").items()}
    scheduled = {n: job_of(d["spec"]["template"]) for n, d in by_kind(docs, "ScheduledSparkApplication").items()}
    assert set(streamed.values()) <= streaming, f"not streaming jobs: {set(streamed.values()) - streaming}"
    unknown = set(scheduled.values()) - set(BATCH_JOBS)
    pending = {j: why for j, why in PENDING_BATCH_JOBS.items() if j in unknown}
    assert unknown <= set(pending), f"not batch jobs: {unknown - set(pending)}"
    # ... and every streaming job has its SparkApplication (a new job brings its manifest).
    assert streaming <= set(streamed.values()), f"streaming jobs without a SparkApplication: {streaming - set(streamed.values())}"
    for name, job in streamed.items():
        assert name == job
    for spec in spark_apps(docs).values():
        assert spec["mainApplicationFile"] == "local:///opt/tickcast/jobs/main.py"
    if pending:   # everything else held; these are named in the issue plan and land with their issue
        pytest.xfail("; ".join(f"batch job {j!r} not registered yet: {why}" for j, why in pending.items()))


def test_every_tickcast_variable_is_a_real_setting_and_the_configmap_loads():
    import dataclasses

    from tickcast.settings import PREFIX, Settings, load

    fields = {PREFIX + f.name.upper() for f in dataclasses.fields(Settings)}
    used = {}
    for f in [*REPO.glob("k8s/**/*"), *REPO.glob("spark-operator/**/*")]:
        if f.is_file():
            for var in re.findall(r"\bTICKCAST_[A-Z0-9_]+\b", f.read_text(errors="replace")):
                used.setdefault(var, f.relative_to(REPO))
    assert used, "no TICKCAST_ variable found at all"
    unknown = {v: str(f) for v, f in used.items() if v not in fields}
    assert not unknown, f"not settings (tickcast/settings.py): {unknown}"
    [cm] = [d for d in yaml.safe_load_all((REPO / "k8s/base/settings.yaml").read_text())
            if d["metadata"]["name"] == "tickcast-settings"]
    s = load(cm["data"])                                        # every value is valid
    assert s.lake_uri == "s3a://tickcast/delta" and s.checkpoint_uri == "s3a://tickcast/checkpoints"


def settings_from(docs):
    from tickcast.settings import load

    return load(by_kind(docs, "ConfigMap")["tickcast-settings"]["data"])


def test_kafka_topic_bootstrap_and_services_match_the_settings(docs):
    s = settings_from(docs)
    kafka = by_kind(docs, "Kafka")["tickcast"]
    [listener] = kafka["spec"]["kafka"]["listeners"]
    assert s.kafka_bootstrap == f"tickcast-kafka-bootstrap.tickcast.svc:{listener['port']}"
    topic = by_kind(docs, "KafkaTopic")["ticks"]["spec"]
    assert topic["topicName"] == s.topic
    assert topic["partitions"] == s.topic_partitions
    assert topic["config"]["retention.ms"] == int(s.topic_retention_hours * 3600 * 1000)
    assert by_kind(docs, "KafkaTopic")["ticks"]["metadata"]["labels"]["strimzi.io/cluster"] == "tickcast"
    assert by_kind(docs, "KafkaNodePool")["dual"]["metadata"]["labels"]["strimzi.io/cluster"] == "tickcast"
    assert set(by_kind(docs, "KafkaNodePool")["dual"]["spec"]["roles"]) == {"controller", "broker"}
    mlflow_port = by_kind(docs, "Service")["mlflow"]["spec"]["ports"][0]["port"]
    assert s.mlflow_uri == f"http://mlflow.tickcast.svc:{mlflow_port}"
    assert s.spark_master.startswith("k8s://")
    producer = by_kind(docs, "Deployment")["producer"]["spec"]["template"]
    [port] = producer["spec"]["containers"][0]["ports"]
    assert port["containerPort"] == s.producer_metrics_port == int(producer["metadata"]["annotations"]["prometheus.io/port"])


def test_s3_endpoint_bucket_and_credentials_agree(docs):
    s = settings_from(docs)
    endpoint = by_kind(docs, "ConfigMap")["s3-endpoint"]["data"]["AWS_ENDPOINT_URL"]
    minio_port = by_kind(docs, "Service")["minio"]["spec"]["ports"][0]["port"]
    assert endpoint == f"http://minio.tickcast.svc:{minio_port}"
    bucket_job = by_kind(docs, "Job")["minio-buckets"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    for uri in (s.lake_uri, s.checkpoint_uri):
        bucket = uri.split("/")[2]
        assert f"mc mb --ignore-existing local/{bucket}" in bucket_job
    for name, spec in spark_apps(docs).items():
        conf = spec["sparkConf"]
        assert conf["spark.hadoop.fs.s3a.endpoint"] == endpoint, name
        assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true", name
        for role in ("driver", "executor"):
            refs = {next(iter(e.values()))["name"] for e in spec[role]["envFrom"]}
            # s3-endpoint: delta-rs on the driver (small appends, transaction lookups) finds MinIO.
            assert {"tickcast-settings", "tickcast-s3", "s3-endpoint"} <= refs, (name, role)
    assert by_kind(docs, "ConfigMap")["s3-endpoint"]["data"]["AWS_S3_ALLOW_UNSAFE_RENAME"] == "true"
    # The Secrets every manifest names are the ones k8s/up.sh generates; none is in a committed file.
    up = (REPO / "k8s/up.sh").read_text()
    for secret in ("tickcast-s3", "minio-root"):
        assert f"create secret generic {secret}" in up
    assert "Secret" not in {d["kind"] for d in docs}


def test_streaming_and_scheduled_apps_share_one_definition_and_fit_their_kind(docs):
    common = yaml.safe_load((REPO / "spark-operator/apps/common-streaming.yaml").read_text())["spec"]
    sched = yaml.safe_load((REPO / "spark-operator/apps/common-scheduled.yaml").read_text())["spec"]["template"]
    differs = {"restartPolicy", "sparkConf", "timeToLiveSeconds"}
    # Only a stream's driver serves tickcast's metrics port (a batch job's has none to serve).
    common = {**common, "driver": {k: v for k, v in common["driver"].items() if k != "ports"}}
    assert {k: v for k, v in common.items() if k not in differs} == {k: v for k, v in sched.items() if k not in differs}
    assert {k: v for k, v in common["sparkConf"].items() if "autoCompact" not in k} == sched["sparkConf"]
    for name, d in by_kind(docs, "SparkApplication").items():
        rp = d["spec"]["restartPolicy"]
        assert rp["type"] == "Always" and rp["onFailureRetryInterval"] > 0, name   # a stream never ends
        assert d["spec"]["sparkConf"]["spark.ui.prometheus.enabled"] == "true"
    for name, d in by_kind(docs, "ScheduledSparkApplication").items():
        assert d["spec"]["concurrencyPolicy"] == "Forbid" and d["spec"]["timeZone"] == "UTC", name
        assert d["spec"]["template"]["restartPolicy"]["type"] == "OnFailure", name


def test_maintain_never_optimizes_a_table_a_stream_writes(docs):
    from tickcast import tables

    spec = by_kind(docs, "ScheduledSparkApplication")["maintain"]["spec"]["template"]
    args = spec["arguments"]
    vacuum_only = set(args[args.index("--vacuum-only") + 1].split(","))
    assert vacuum_only <= set(tables.ALL)
    # Every registered table has a streaming writer today; a table that only a batch job writes
    # goes here (maintain may OPTIMIZE it, scheduled clear of its writer: scheduled.yaml).
    batch_written: set[str] = set()
    assert set(tables.ALL) - batch_written <= vacuum_only
    assert spec["sparkConf"]["spark.databricks.delta.vacuum.logging.enabled"] == "false"


def _pom_props(path: Path) -> dict[str, str]:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    props = ET.parse(path).getroot().find("m:properties", ns)
    return {el.tag.split("}")[1]: el.text for el in props}


def _pin(name: str) -> str:
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.split("==")[0].strip().lower() == name:
            return line.split("==")[1].split("#")[0].strip()
    raise AssertionError(f"{name} is not pinned in requirements.txt")


def test_image_spark_jar_and_tool_versions_match_the_pins(docs):
    spark = _pin("pyspark")
    dockerfile = (REPO / "spark-operator/image/Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert f"apache/spark:{spark}-python3" in froms
    for name, spec in spark_apps(docs).items():
        assert spec["sparkVersion"] == spark, name
        assert spec["image"] == "tickcast-spark:dev", name
    image_pom, jvm_pom = _pom_props(REPO / "spark-operator/image/pom.xml"), _pom_props(REPO / "jvm/pom.xml")
    assert image_pom["spark.version"] == jvm_pom["spark.version"] == spark
    assert image_pom["delta.version"] == jvm_pom["delta.version"] == _pin("delta-spark")
    assert image_pom["scala.binary"] == jvm_pom["scala.binary"]
    # S3A must be the Hadoop Spark ships (hadoop-aws against another hadoop-client-api breaks).
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    [api] = jars.glob("hadoop-client-api-*.jar")
    assert image_pom["hadoop.version"] == api.name[len("hadoop-client-api-"):-len(".jar")]
    assert "mlflow==" + _pin("mlflow") in (REPO / "k8s/images/mlflow/Dockerfile").read_text()
    values = yaml.safe_load((REPO / "spark-operator/values.yaml").read_text())
    assert values["spark"]["jobNamespaces"] == ["tickcast"]
    assert values["spark"]["serviceAccount"]["name"] == "tickcast-spark"
    for spec in spark_apps(docs).values():
        assert spec["driver"]["serviceAccount"] == "tickcast-spark"
    # The chart version is the release the CRDs come from.
    install = (REPO / "spark-operator/install.sh").read_text()
    chart = re.search(r"^CHART_VERSION=(\S+)", install, re.M).group(1)
    if SCHEMAS.is_dir():
        assert f"version {chart}" in (SCHEMAS / "README.md").read_text()
        strimzi = re.search(r"^STRIMZI_CHART_VERSION=(\S+)", (REPO / "k8s/lib.sh").read_text(), re.M).group(1)
        assert f"release tag `{strimzi}`" in (SCHEMAS / "README.md").read_text()


def _pod_specs(docs):
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]


def test_every_pod_meets_the_restricted_profile(docs):
    ns = by_kind(docs, "Namespace")["tickcast"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, spec in _pod_specs(docs):
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert "limits" in c["resources"] and "requests" in c["resources"], name
    for name, spec in spark_apps(docs).items():
        for role in ("driver", "executor"):
            psc, sc = spec[role]["podSecurityContext"], spec[role]["securityContext"]
            assert psc["runAsNonRoot"] is True and psc["seccompProfile"]["type"] == "RuntimeDefault", (name, role)
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], (name, role)
    np = by_kind(docs, "NetworkPolicy")
    assert np["default-deny-ingress"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}


def test_the_session_leaves_the_driver_address_to_spark_submit_on_kubernetes(docs):
    from tickcast.spark import conf

    c = conf(settings_from(docs))
    assert "spark.driver.host" not in c and "spark.driver.bindAddress" not in c


# --- scripts and scanners -------------------------------------------------------------------------

def test_every_script_passes_shellcheck():
    out = subprocess.run([tool("shellcheck"), "-x", *map(str, SCRIPTS)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.parent.name in ("k8s", "spark-operator")
                                    and s.name != "lib.sh"], ids=lambda p: str(p.relative_to(REPO)))
def test_every_k8s_script_has_help_and_names_what_is_missing(script, tmp_path):
    bash = shutil.which("bash")
    out = subprocess.run([bash, str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Usage" in out.stdout, out.stdout + out.stderr
    if script.name in ("up.sh", "status.sh", "install.sh"):
        # With the basic utilities but none of the cluster tools on PATH, the script says which
        # are missing (and touches nothing).
        for util in ("dirname", "basename", "sed", "grep", "cat", "tr", "head"):
            (tmp_path / util).symlink_to(shutil.which(util))
        out = subprocess.run([bash, str(script)], capture_output=True, text=True, timeout=30,
                             env={"PATH": str(tmp_path)}, stdin=subprocess.DEVNULL)
        assert out.returncode != 0 and "missing:" in out.stderr, out.stdout + out.stderr
        for needed in ("kubectl", "helm") if script.name != "status.sh" else ("minikube", "kubectl"):
            assert needed in out.stderr


def test_checkov_passes_offline_with_every_skip_justified(rendered):
    cfg = REPO / "k8s" / "checkov.yaml"
    lines = cfg.read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]
    assert skips
    for i in skips:                       # each skipped check has its reason right above it
        assert lines[i - 1].strip().startswith("#"), lines[i]
    out = subprocess.run([tool("checkov"), "--skip-download", "--compact", "--quiet", "-o", "json",
                          "--config-file", str(cfg), "--framework", "kubernetes", "dockerfile",
                          "-f", str(rendered), *[x for f in DOCKERFILES for x in ("-f", str(f))]],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    assert {r["check_type"] for r in reports} == {"kubernetes", "dockerfile"}, out.stderr
    failed = [f"{r['check_type']}: {c['check_id']} {c['resource']}: {c['check_name']}"
              for r in reports for c in r["results"]["failed_checks"]]
    assert not failed, "\n".join(failed)
    assert all(r["summary"]["parsing_errors"] == 0 and r["summary"]["passed"] > 0 for r in reports)
    assert out.returncode == 0


def test_every_streaming_driver_exposes_tickcast_metrics_where_prometheus_scrapes(docs):
    """jobs/main.py serves tickcast.metrics on TICKCAST_METRICS_PORT (0.0.0.0 in a pod): each streaming
    driver declares that port, the annotated Service selects the drivers and names the port, and the
    scrape NetworkPolicy lets Prometheus in; Spark's own servlet keeps the pod annotations."""
    s = settings_from(docs)
    assert s.metrics_port and s.metrics_host == "0.0.0.0"
    svc = by_kind(docs, "Service")["tickcast-stream-metrics"]
    ann = svc["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and int(ann["prometheus.io/port"]) == s.metrics_port
    assert ann["prometheus.io/path"] == "/metrics"
    [port] = svc["spec"]["ports"]
    assert port["port"] == s.metrics_port and port["targetPort"] == "tickcast-metrics"
    apps = by_kind(docs, "SparkApplication")
    assert apps
    for name, app in apps.items():
        d = app["spec"]["driver"]
        labels = {**d["labels"], "spark-role": "driver"}          # the operator labels driver pods spark-role
        assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()), name
        assert {"name": "tickcast-metrics", "containerPort": s.metrics_port, "protocol": "TCP"} in d["ports"], name
        assert d["annotations"]["prometheus.io/port"] == "4040", name
    policy = by_kind(docs, "NetworkPolicy")["prometheus-scrape"]
    allowed = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert {4040, s.metrics_port} <= allowed
