"""The Helm chart renders, lints, validates and deploys the gateway safely (SPEC §8)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes_validate import utils as kv

from tests.helm.support import ALL_ON, ALL_ON_SPOOL, BAD_TYPES, CHART, RELEASE, REPO, Doc, Helm

pytestmark = pytest.mark.helm

# The oldest Kubernetes still common in managed clusters and the newest kubernetes-validate knows.
KUBE_VERSIONS = ["1.33.0", "1.37.0"]
ENV_REF = re.compile(r"\$\{env:([^}]*)\}")
FILE_REF = re.compile(r"\$\{file:([^}]*)\}")


# --- helpers -------------------------------------------------------------------------------


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    """The manifests of one kind."""
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, component: str | None = None) -> Doc:
    """The single manifest of a kind (and component label)."""
    found = [
        d
        for d in of_kind(docs, kind)
        if component is None
        or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> list[Doc]:
    """The Deployments and StatefulSets (serve is a StatefulSet when the spool is on)."""
    return [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]


def workload(docs: list[Doc], component: str = "serve") -> Doc:
    """The Deployment or StatefulSet of one component."""
    found = [
        d for d in workloads(docs)
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]  # fmt: skip
    assert len(found) == 1, f"expected one {component} workload, got {len(found)}"
    return found[0]


def component_of(doc: Doc) -> str:
    """The `app.kubernetes.io/component` label of a manifest."""
    component: str = doc["metadata"]["labels"]["app.kubernetes.io/component"]
    return component


def pod_specs(docs: list[Doc]) -> list[tuple[str, Doc]]:
    """(name, pod spec) of every pod the chart creates: workloads and the test pod."""
    specs = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in workloads(docs)]
    specs += [(d["metadata"]["name"], d["spec"]) for d in of_kind(docs, "Pod")]
    return specs


def all_containers(spec: Doc) -> list[Doc]:
    """Init and main containers of a pod spec."""
    return [*spec.get("initContainers", []), *spec["containers"]]


def main_container(docs: list[Doc], component: str = "serve") -> Doc:
    """The `gateway` container of a workload."""
    (container,) = [
        c for c in workload(docs, component)["spec"]["template"]["spec"]["containers"]
        if c["name"] == "gateway"
    ]  # fmt: skip
    return container


def config_map(docs: list[Doc]) -> Doc:
    """The ConfigMap holding the gateway config (not the dashboard's)."""
    (found,) = [d for d in of_kind(docs, "ConfigMap") if "gateway.yaml" in d["data"]]
    return found


def config_text(docs: list[Doc]) -> str:
    """The gateway YAML in the rendered ConfigMap."""
    text: str = config_map(docs)["data"]["gateway.yaml"]
    return text


def deep_merge(base: Doc, override: Doc) -> Doc:
    """Values files layered as helm does: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def strict_yaml_docs(text: str) -> list[Doc]:
    """YAML documents parsed strictly: a repeated mapping key (decoders reject or drop) fails."""

    class Strict(yaml.SafeLoader):
        pass

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Doc:
        keys = [loader.construct_object(k) for k, _ in node.value]
        repeated = {k for k in keys if keys.count(k) > 1}
        assert not repeated, f"repeated keys {repeated} at {node.start_mark}"
        return dict(loader.construct_pairs(node))

    Strict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return [doc for doc in yaml.load_all(text, Loader=Strict) if doc]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector selects these labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def failure_text(helm: Helm, *values: Path, extra: list[str] | None = None) -> str:
    """The error output of a `helm template` that must fail."""
    result = helm.template_result(*values, extra=extra or [])
    assert result.returncode != 0, "helm template accepted values it must refuse"
    return result.stderr


def env_provided(container: Doc) -> dict[str, str]:
    """Env var name -> where its value comes from (`value`, `secret`, `field`)."""
    out: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            out[var["name"]] = "value"
        elif "secretKeyRef" in var.get("valueFrom", {}):
            out[var["name"]] = "secret"
        else:
            out[var["name"]] = "field"
    return out


def secret_files(spec: Doc, container: Doc) -> set[str]:
    """Absolute paths of the Secret-backed files a container sees (None: whole directory)."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    out: set[str] = set()
    for mount in container["volumeMounts"]:
        # A StatefulSet's claim-template volumes (the spool) are not in the pod spec.
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is None:
            continue
        if "items" in secret:
            out |= {f"{mount['mountPath']}/{item['path']}" for item in secret["items"]}
        else:
            out.add(f"{mount['mountPath']}/*")
    return out


def file_is_mounted(path: str, mounted: set[str]) -> bool:
    """Whether a `${file:}` path lies in one of the mounted Secret files or directories."""
    return path in mounted or any(
        m.endswith("/*") and path.startswith(m[:-1]) and "/" not in path[len(m) - 1 :]
        for m in mounted
    )


# --- lint, kinds, schema -------------------------------------------------------------------


@pytest.mark.parametrize(
    "values", [[], [ALL_ON], [ALL_ON, ALL_ON_SPOOL]], ids=["default", "all-on", "all-on-spool"]
)
def test_lint_strict_passes(helm: Helm, values: list[Path]) -> None:
    """`helm lint --strict` passes for the default values, every option on, and the spool on."""
    args = ["lint", "--strict", str(CHART)]
    for file in values:
        args += ["-f", str(file)]
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_defaults_render_the_minimal_set(default_docs: list[Doc]) -> None:
    """Defaults: serve Deployment, Service, ConfigMap, PDB, ServiceAccount, test pod; no extras."""
    kinds = sorted(d["kind"] for d in default_docs)
    assert kinds == sorted(
        ["ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "ServiceAccount"]
    )
    assert workload(default_docs)["spec"]["replicas"] == 2


def test_all_on_renders_every_optional_resource(all_on_docs: list[Doc]) -> None:
    """Every toggle on: worker (+ metrics Service), Ingress, two HPAs, PDBs and ServiceMonitors..."""
    kinds = sorted(d["kind"] for d in all_on_docs)
    assert kinds == sorted(
        ["ConfigMap", "ConfigMap", "Deployment", "Deployment", "HorizontalPodAutoscaler",
         "HorizontalPodAutoscaler", "Ingress", "NetworkPolicy", "Pod", "PodDisruptionBudget",
         "PodDisruptionBudget", "Service", "Service", "ServiceAccount", "ServiceMonitor",
         "ServiceMonitor"]
    )  # fmt: skip
    worker = main_container(all_on_docs, "worker")
    assert worker["args"][:3] == ["worker", "--config", "/etc/gateway/config/gateway.yaml"]
    for component in ("serve", "worker"):
        # The HPA owns the replica count; a fixed one would fight it on every upgrade.
        assert "replicas" not in workload(all_on_docs, component)["spec"]


def test_values_files_satisfy_the_schema() -> None:
    """values.yaml and the CI values files are valid under values.schema.json; it is sound."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    all_on = yaml.safe_load(ALL_ON.read_text())
    for name, values in (
        ("values.yaml", yaml.safe_load((CHART / "values.yaml").read_text())),
        (ALL_ON.name, all_on),
        (ALL_ON_SPOOL.name, deep_merge(all_on, yaml.safe_load(ALL_ON_SPOOL.read_text()))),
    ):
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(values))
        assert not errors, f"{name}: {[e.message for e in errors]}"


def test_bad_values_file_is_rejected_by_the_schema(helm: Helm) -> None:
    """helm lint and helm template refuse bad-types.values.yaml, naming every wrong field."""
    lint = helm.run("lint", "--strict", str(CHART), "-f", str(BAD_TYPES))
    assert lint.returncode != 0
    stderr = failure_text(helm, BAD_TYPES)
    for output in (lint.stdout + lint.stderr, stderr):
        assert "specifications of the schema" in output
        for field in (
            "serve.replicaCount: Invalid type. Expected: integer, given: string",
            "service.port: Invalid type. Expected: integer, given: string",
            "ingress.enabled: Invalid type. Expected: boolean, given: string",
            "shutdown.terminationGracePeriodSeconds: Invalid type. Expected: integer",
            "podSecurityContext.runAsNonRoot",
            "spool.enabled: Invalid type. Expected: boolean, given: string",
            "spool.accessModes: Invalid type. Expected: array, given: string",
            "grafanaDashboard.enabled: Invalid type. Expected: boolean, given: integer",
            "worker.port: Invalid type. Expected: integer, given: string",
            "worker.httpEnabled: Invalid type. Expected: boolean, given: string",
        ):
            assert field in output


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("serve.replicaCount", '"3"', "serve.replicaCount: Invalid type"),
        ("config", '{"sources": {}}', "config: Invalid type. Expected: string, given: object"),
        ("secretEnv", '[{"name": "PAY3_SECRET", "secretName": "s"}]', "key is required"),
        ("secretFiles", '[{"secretName": "s", "mountPath": "keys"}]', "mountPath"),
        ("ingress.hosts", '"hooks.example.com"', "ingress.hosts: Invalid type"),
        ("shutdown.preStopSleepSeconds", '"10"', "shutdown.preStopSleepSeconds: Invalid type"),
        ("serve.podDisruptionBudget.maxUnavailable", '"one"', "maxUnavailable"),
        ("image.pullPolicy", '"Sometimes"', "image.pullPolicy"),
        ("replicaCount", "2", "Additional property replicaCount is not allowed"),
        ("spool.enabled", '"yes"', "spool.enabled: Invalid type"),
        ("spool.accessModes", '["ReadWriteMany"]', "spool.accessModes.0"),
        ("spool.accessModes", "[]", "spool.accessModes: Array must have at least 1 items"),
        ("spool.mountPath", '"/"', "spool.mountPath: Does not match pattern"),
        ("spool.size", '"lots"', "spool.size"),
        ("spool.existingClaim", "true", "spool.existingClaim: Invalid type"),
        ("spool.volume", '"x"', "Additional property volume is not allowed"),
        ("grafanaDashboard.enabled", '"true"', "grafanaDashboard.enabled: Invalid type"),
        ("grafanaDashboard.labels", '{"grafana_dashboard": 1}', "grafanaDashboard.labels"),
        ("worker.port", '"8001"', "worker.port: Invalid type. Expected: integer, given: string"),
        ("worker.port", "80", "worker.port: Must be greater than or equal to 1024"),
        ("worker.httpEnabled", '"yes"', "worker.httpEnabled: Invalid type"),
        ("worker.shutdown.drainSeconds", '"45"', "worker.shutdown.drainSeconds: Invalid type"),
        ("worker.probes.startup.failureThreshold", "0", "worker.probes.startup.failureThreshold"),
        # The full-spec probe values of chart 0.2 are gone: setting them fails loudly.
        ("worker.livenessProbe", "{}", "Additional property livenessProbe is not allowed"),
        (
            "worker.podDisruptionBudget.unhealthyPodEvictionPolicy",
            '"Never"',
            "worker.podDisruptionBudget.unhealthyPodEvictionPolicy",
        ),
        (
            "networkPolicy.metricsFrom",
            '{"podSelector": {}}',
            "networkPolicy.metricsFrom: Invalid type",
        ),
    ],
)
def test_schema_rejects_wrong_values(helm: Helm, key: str, value: str, message: str) -> None:
    """Each wrong type (or unknown key) fails rendering with the offending field named."""
    stderr = failure_text(helm, extra=["--set-json", f"{key}={value}"])
    assert "specifications of the schema" in stderr
    assert message in stderr


def test_values_yaml_is_documented_line_by_line() -> None:
    """Every key in values.yaml (outside the config text) has a comment above or beside it."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented: list[str] = []
    block_indent: int | None = None  # inside a `key: |` block scalar
    for number, line in enumerate(lines, 1):
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue
            block_indent = None
        match = re.match(r"^(\s*)(?:- )?([A-Za-z_][\w.-]*):(\s|$)", line)
        if not match:
            continue
        previous = next((p for p in reversed(lines[: number - 1]) if p.strip()), "")
        if "#" not in line.split(":", 1)[1] and not previous.lstrip().startswith("#"):
            undocumented.append(f"{number}: {line.strip()}")
        if line.rstrip().endswith("|"):
            block_indent = indent
    assert not undocumented, "undocumented keys:\n" + "\n".join(undocumented)


# --- pod safety ----------------------------------------------------------------------------


def test_security_context_is_locked_down(rendered: list[Doc]) -> None:
    """Every pod: non-root, seccomp RuntimeDefault; every container: read-only, no caps, no escalation."""
    for name, spec in pod_specs(rendered):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in all_containers(spec):
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["privileged"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc.get("seccompProfile", pod["seccompProfile"]) == {"type": "RuntimeDefault"}


def test_tmp_is_a_writable_emptydir(rendered: list[Doc]) -> None:
    """With a read-only root filesystem, every container gets /tmp from a size-limited emptyDir."""
    for name, spec in pod_specs(rendered):
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in all_containers(spec):
            (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert "sizeLimit" in volumes[tmp["name"]]["emptyDir"], f"{name}/{container['name']}"
            assert not tmp.get("readOnly", False)


def test_probes_use_healthz_and_readyz(rendered: list[Doc]) -> None:
    """Liveness and startup probe /healthz, readiness /readyz, on the port `serve` listens on."""
    container = main_container(rendered)
    (port,) = container["ports"]
    assert port["name"] == "http"
    assert container["args"][container["args"].index("--port") + 1] == str(port["containerPort"])
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe


@pytest.mark.parametrize(
    "values", [[], [ALL_ON], [ALL_ON, ALL_ON_SPOOL]], ids=["default", "all-on", "all-on-spool"]
)
def test_grace_period_outlasts_prestop_and_drain(helm: Helm, values: list[Path]) -> None:
    """terminationGracePeriodSeconds exceeds the preStop sleep plus the gateway's drain budget."""
    merged: Doc = yaml.safe_load((CHART / "values.yaml").read_text())
    for file in values:
        merged = deep_merge(merged, yaml.safe_load(file.read_text()))
    docs = helm.template(*values)
    shutdown = merged["shutdown"]
    command = main_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    sleep = int(command[1])
    assert sleep == shutdown["preStopSleepSeconds"] > 0
    # The gateway's own drain: server.handoff_timeout (10s by default) plus the producer flush.
    assert shutdown["drainSeconds"] >= 20
    grace = workload(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == shutdown["terminationGracePeriodSeconds"] > sleep + shutdown["drainSeconds"]
    if merged["worker"]["enabled"]:
        worker = merged["worker"]["shutdown"]
        spec = workload(docs, "worker")["spec"]["template"]["spec"]
        # The worker's own shutdown window (uvicorn's graceful 35s) is inside its drain budget.
        assert worker["drainSeconds"] >= 35
        assert spec["terminationGracePeriodSeconds"] == worker["terminationGracePeriodSeconds"]
        assert spec["terminationGracePeriodSeconds"] > (
            worker["preStopSleepSeconds"] + worker["drainSeconds"]
        )


def test_too_short_grace_period_is_refused(helm: Helm) -> None:
    """A grace period that does not cover preStop + drain fails rendering with the reason."""
    stderr = failure_text(helm, extra=["--set", "shutdown.terminationGracePeriodSeconds=30"])
    assert "must exceed shutdown.preStopSleepSeconds + shutdown.drainSeconds" in stderr


def test_pods_roll_when_the_config_changes(
    helm: Helm, default_docs: list[Doc], tmp_path: Path
) -> None:
    """The checksum annotation is the config's SHA-256: it changes with the config and only then."""

    def checksum(docs: list[Doc]) -> str:
        value: str = workload(docs)["spec"]["template"]["metadata"]["annotations"][
            "checksum/config"
        ]
        return value

    original = checksum(default_docs)
    assert original == hashlib.sha256(config_text(default_docs).encode()).hexdigest()

    edited = tmp_path / "gateway.yaml"
    edited.write_text(config_text(default_docs).replace("dedupe_window: 24h", "dedupe_window: 12h"))
    changed = helm.template(extra=["--set-file", f"config={edited}"])
    assert checksum(changed) != original
    assert checksum(changed) == hashlib.sha256(edited.read_bytes()).hexdigest()

    unrelated = helm.template(extra=["--set", "serve.replicaCount=5"])
    assert checksum(unrelated) == original


def test_worker_pods_roll_with_the_same_config(all_on_docs: list[Doc]) -> None:
    """The worker Deployment carries the same config checksum as serve."""
    annotations = [
        workload(all_on_docs, c)["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for c in ("serve", "worker")
    ]
    assert annotations[0] == annotations[1]


# --- config, secrets and the init container ------------------------------------------------


def test_init_container_runs_gateway_check_on_the_mounted_config(rendered: list[Doc]) -> None:
    """Before the gateway starts, `gateway check` validates the very file it will load."""
    for d in workloads(rendered):
        component = d["metadata"]["labels"]["app.kubernetes.io/component"]
        spec = d["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        main = main_container(rendered, component)
        assert init["image"] == main["image"]
        assert init["args"][:2] == ["check", "--config"]
        path = init["args"][2]
        assert main["args"][main["args"].index("--config") + 1] == path
        # Same environment and mounts: references resolve in the check as in the gateway.
        assert init["env"] == main["env"]
        assert init.get("envFrom") == main.get("envFrom")
        assert init["volumeMounts"] == main["volumeMounts"]
        (mount,) = [m for m in init["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        configmap = config_map(rendered)
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert path[len(mount["mountPath"]) + 1 :] in configmap["data"]
        assert {"name": "GATEWAY_CONFIG", "value": path} in main["env"]


def test_every_config_reference_is_provided_by_the_pod(rendered: list[Doc]) -> None:
    """Each `${env:NAME}` without default is set on the container; each `${file:}` is mounted."""
    text = config_text(rendered)
    spec = workload(rendered)["spec"]["template"]["spec"]
    container = main_container(rendered)
    env = env_provided(container)
    mounted = secret_files(spec, container)
    env_refs = [r for r in ENV_REF.findall(text) if ":-" not in r]
    file_refs = FILE_REF.findall(text)
    assert env_refs and file_refs, "the example configs use both kinds of reference"
    assert [r for r in env_refs if r not in env] == []
    assert [r for r in file_refs if not file_is_mounted(r, mounted)] == []
    # Secrets come from Secrets, not from plain values in the manifest.
    for name in ("PAY3_SECRET", "WHITEPAY_TOKEN", "W3BLOCK_SIGNATURE_KEY"):
        assert env[name] == "secret"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--set-json", "secretEnv=[]"], "config references ${env:PAY3_SECRET}"),
        (["--set-json", "secretFiles=[]"], "config references ${file:/etc/gateway/keys/fatpay.pem}"),
        (
            ["--set-json", 'secretFiles=[{"secretName": "k", "mountPath": "/etc/gateway/keys",'
             ' "items": [{"key": "f", "path": "fatpay.pem"}]}]'],
            "config references ${file:/etc/gateway/keys/velafi.pem}",
        ),
        (
            ["--set-json", 'secretFiles=[{"secretName": "k", "mountPath": "/tmp"}]'],
            "mountPath /tmp is used twice",
        ),
    ],
)  # fmt: skip
def test_unprovided_reference_is_refused(helm: Helm, override: list[str], message: str) -> None:
    """A reference nothing provides (or a clashing mount) fails at render time, not in the pod."""
    assert message in failure_text(helm, extra=override)


def test_reference_check_can_be_turned_off(helm: Helm) -> None:
    """referenceCheck=false renders a config whose secrets come from elsewhere (e.g. envFrom)."""
    docs = helm.template(extra=["--set-json", "secretEnv=[]", "--set", "referenceCheck=false"])
    assert "PAY3_SECRET" not in env_provided(main_container(docs))


def test_invalid_config_yaml_is_refused(helm: Helm, tmp_path: Path) -> None:
    """A config that is not YAML fails rendering instead of reaching the pods."""
    broken = tmp_path / "gateway.yaml"
    broken.write_text("sources: [unclosed\n")
    assert "config is not valid YAML" in failure_text(
        helm, extra=["--set-file", f"config={broken}"]
    )


def _public_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_configmap_config_passes_gateway_check(rendered: list[Doc], tmp_path: Path) -> None:
    """The rendered config passes `gateway check` given exactly the env and files the pod gets."""
    text = config_text(rendered)
    container = main_container(rendered)
    revealed: list[str] = []

    # Environment as the pod has it: literal values as written, Secret values made up.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "KAFKA_"))}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            value = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
            if var["name"] == "REDIS_URL":  # state.urlSecret: a URL with its password
                value = f"rediss://:{secrets.token_urlsafe(16)}@redis.payments:6380/0"
            env[var["name"]] = value
            revealed.append(value)
        else:
            env[var["name"]] = "gw-webhook-gateway-serve-5d8f7c6b9-x2x4q"

    # Secret files under a scratch root standing in for /: keys as PEM, anything else a token.
    root = tmp_path / "root"
    pem = _public_key_pem()
    for path in set(FILE_REF.findall(text)):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        value = pem if path.endswith(".pem") else secrets.token_urlsafe(16)
        target.write_text(value)
        if not path.endswith(".pem"):
            revealed.append(value)
    config = tmp_path / "gateway.yaml"
    config.write_text(FILE_REF.sub(lambda m: f"${{file:{root}{m.group(1)}}}", text))

    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for source in yaml.safe_load(text)["sources"]:
        assert f"/webhooks/{source}" in proc.stdout
    for value in revealed:
        assert value not in proc.stdout + proc.stderr


# --- wiring between resources --------------------------------------------------------------


def test_selectors_target_the_right_pods(rendered: list[Doc]) -> None:
    """Service, PDBs, HPAs, Ingress, ServiceMonitor and NetworkPolicy all point at real targets."""
    serve_labels = workload(rendered)["spec"]["template"]["metadata"]["labels"]
    service = one(rendered, "Service", "serve")
    assert matches(service["spec"]["selector"], serve_labels)
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    deployments = {d["metadata"]["name"]: d for d in workloads(rendered)}
    for name, d in deployments.items():
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        assert matches(d["spec"]["selector"]["matchLabels"], pod_labels), name
        if d["metadata"]["labels"]["app.kubernetes.io/component"] != "serve":
            assert not matches(service["spec"]["selector"], pod_labels), f"Service selects {name}"
    for pdb in of_kind(rendered, "PodDisruptionBudget"):
        selected = [
            n for n, d in deployments.items()
            if matches(pdb["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
        ]  # fmt: skip
        assert selected == [pdb["metadata"]["name"]]
    for hpa in of_kind(rendered, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["name"] in deployments
        assert target["kind"] == deployments[target["name"]]["kind"]
        assert target["apiVersion"] == deployments[target["name"]]["apiVersion"]
    for ingress in of_kind(rendered, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            (path,) = rule["http"]["paths"]
            assert path["path"] == "/webhooks"
            assert path["backend"]["service"] == {
                "name": service["metadata"]["name"],
                "port": {"name": "http"},
            }
    for monitor in of_kind(rendered, "ServiceMonitor"):
        # Each ServiceMonitor scrapes /metrics through a port its one Service really has.
        (selected,) = [
            s for s in of_kind(rendered, "Service")
            if matches(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
        ]  # fmt: skip
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in selected["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
    for svc in of_kind(rendered, "Service"):
        # Every Service selects the pods of exactly one workload, through a declared port.
        (target,) = [
            d for d in workloads(rendered)
            if matches(svc["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]  # fmt: skip
        ports = {p["name"] for p in main_container(rendered, component_of(target))["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    for policy in of_kind(rendered, "NetworkPolicy"):
        for d in deployments.values():
            assert matches(
                policy["spec"]["podSelector"]["matchLabels"],
                d["spec"]["template"]["metadata"]["labels"],
            )


def test_ingress_exposes_only_the_webhook_path(all_on_docs: list[Doc]) -> None:
    """/metrics, the health endpoints and the OpenAPI document are not routed from outside."""
    ingress = one(all_on_docs, "Ingress")
    paths = {p["path"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert paths == {"/webhooks"}
    assert {r["host"] for r in ingress["spec"]["rules"]} == {
        "hooks.example.com",
        "hooks-dr.example.com",
    }


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_manifests_validate_against_kubernetes_schemas(rendered: list[Doc], version: str) -> None:
    """Every manifest passes kubernetes-validate --strict; only the ServiceMonitor CRD has no schema."""
    unknown: list[str] = []
    for doc in rendered:
        try:
            kv.validate(doc, version, strict=True)
        except kv.SchemaNotFoundError:
            unknown.append(doc["kind"])
        except kv.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
    assert set(unknown) <= {"ServiceMonitor"}


# --- worker: health, readiness, metrics ----------------------------------------------------

WORKER_CONFIG_PATH = "/etc/gateway/config/gateway.yaml"
# Pods listen on every interface; the kubelet probes and Prometheus scrape the pod IP.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


def validate_all(docs: list[Doc]) -> None:
    """kubernetes-validate --strict on every manifest but the ServiceMonitors (a CRD)."""
    for doc in docs:
        if doc["kind"] != "ServiceMonitor":
            for version in KUBE_VERSIONS:
                kv.validate(doc, version, strict=True)


def scrapes(docs: list[Doc]) -> list[tuple[str, str]]:
    """(component, container port) of every scrape the ServiceMonitors configure."""
    out: list[tuple[str, str]] = []
    for monitor in of_kind(docs, "ServiceMonitor"):
        for service in of_kind(docs, "Service"):
            if not matches(
                monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]
            ):
                continue
            for endpoint in monitor["spec"]["endpoints"]:
                for port in service["spec"]["ports"]:
                    if port["name"] != endpoint["port"]:
                        continue
                    out += [
                        (component_of(d), port["targetPort"]) for d in workloads(docs)
                        if matches(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
                    ]  # fmt: skip
    return sorted(out)


@pytest.mark.parametrize("port", [8001, 9102])
def test_worker_serves_health_readiness_and_metrics(helm: Helm, port: int) -> None:
    """`gateway worker --port P`: port `metrics` = P, /healthz and /readyz probes, headless Service."""
    docs = helm.template(ALL_ON, extra=["--set", f"worker.port={port}"])
    container = main_container(docs, "worker")
    args = container["args"]
    assert args[:3] == ["worker", "--config", WORKER_CONFIG_PATH]
    assert args[args.index("--port") + 1] == str(port)
    assert args[args.index("--host") + 1] == ALL_INTERFACES
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    for probe, path in (
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        # Ready only once the producer is connected and the consumer reads the queue.
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    service = one(docs, "Service", "worker")
    # Headless: a list of worker pods for Prometheus, not a load-balanced address.
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}
    ]
    worker_pods = workload(docs, "worker")["spec"]["template"]["metadata"]["labels"]
    serve_pods = workload(docs)["spec"]["template"]["metadata"]["labels"]
    assert matches(service["spec"]["selector"], worker_pods)
    assert not matches(service["spec"]["selector"], serve_pods)
    validate_all(docs)


def test_worker_defaults(helm: Helm) -> None:
    """Enabled with defaults: port 8001, a start-up window of a minute or more, no preStop."""
    docs = helm.template(extra=["--set", "worker.enabled=true"])
    container = main_container(docs, "worker")
    assert container["args"] == [
        "worker", "--config", WORKER_CONFIG_PATH, "--host", ALL_INTERFACES, "--port", "8001"
    ]  # fmt: skip
    startup = container["startupProbe"]
    # Start-up (which holds liveness back) is never what cuts a slow first connect short.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    # Nothing routes traffic to workers, so no preStop sleep delays their SIGTERM.
    assert "lifecycle" not in container
    grace = {
        component_of(d): d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for d in workloads(docs)
    }
    assert grace == {"serve": 45, "worker": 60}
    kinds = sorted(
        d["kind"] for d in docs
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"
    )  # fmt: skip
    assert kinds == ["Deployment", "PodDisruptionBudget", "Service"]
    validate_all(docs)


@pytest.mark.parametrize(
    ("values", "override", "expected"),
    [
        ([ALL_ON], [], [("serve", "http"), ("worker", "metrics")]),
        ([ALL_ON, ALL_ON_SPOOL], [], [("serve", "http"), ("worker", "metrics")]),
        ([ALL_ON], ["--set", "worker.httpEnabled=false"], [("serve", "http")]),
        ([ALL_ON], ["--set", "worker.enabled=false"], [("serve", "http")]),
    ],
    ids=["all-on", "all-on-spool", "worker-without-http", "no-worker"],
)
def test_every_pod_is_scraped_exactly_once(
    helm: Helm, values: list[Path], override: list[str], expected: list[tuple[str, str]]
) -> None:
    """The ServiceMonitors reach serve pods on `http` and worker pods on `metrics`, once each."""
    docs = helm.template(*values, extra=override)
    assert scrapes(docs) == expected
    for monitor in of_kind(docs, "ServiceMonitor"):
        # Both carry the user's settings (e.g. the label Prometheus selects on).
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["endpoints"][0]["interval"] == "15s"


def test_network_policy_admits_the_worker_scrape(helm: Helm, all_on_docs: list[Doc]) -> None:
    """Prometheus (metricsFrom, else ingressFrom) may reach the workers' `metrics` port only."""
    values = yaml.safe_load(ALL_ON.read_text())["networkPolicy"]

    def sources(docs: list[Doc]) -> dict[str, object]:
        rules = one(docs, "NetworkPolicy")["spec"]["ingress"]
        return {port["port"]: rule.get("from") for rule in rules for port in rule["ports"]}

    assert values["metricsFrom"] != values["ingressFrom"]
    assert sources(all_on_docs) == {"http": values["ingressFrom"], "metrics": values["metricsFrom"]}
    # The named port exists on worker pods only, so the rule opens nothing on serve pods.
    assert [p["name"] for p in main_container(all_on_docs, "worker")["ports"]] == ["metrics"]
    assert [p["name"] for p in main_container(all_on_docs)["ports"]] == ["http"]
    fallback = helm.template(ALL_ON, extra=["--set-json", "networkPolicy.metricsFrom=[]"])
    assert sources(fallback)["metrics"] == values["ingressFrom"]
    silent = helm.template(ALL_ON, extra=["--set", "worker.httpEnabled=false"])
    assert set(sources(silent)) == {"http"}


def test_worker_without_http_runs_bare(helm: Helm) -> None:
    """worker.httpEnabled=false: no --port, no ports or probes, no Service; HPA and PDB stay."""
    docs = helm.template(ALL_ON, extra=["--set", "worker.httpEnabled=false"])
    container = main_container(docs, "worker")
    assert container["args"] == ["worker", "--config", WORKER_CONFIG_PATH]
    for key in ("ports", "startupProbe", "livenessProbe", "readinessProbe"):
        assert key not in container, key
    assert [component_of(s) for s in of_kind(docs, "Service")] == ["serve"]
    assert [component_of(m) for m in of_kind(docs, "ServiceMonitor")] == ["serve"]
    for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert one(docs, kind, "worker")["spec"]
    validate_all(docs)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--set", "worker.shutdown.drainSeconds=30"],
         "worker.shutdown.drainSeconds (30) must be at least 35"),
        (["--set", "worker.shutdown.terminationGracePeriodSeconds=50"],
         "worker.shutdown.terminationGracePeriodSeconds (50) must exceed "
         "worker.shutdown.preStopSleepSeconds + worker.shutdown.drainSeconds (50)"),
        (["--set", "worker.shutdown.preStopSleepSeconds=15"],
         "worker.shutdown.terminationGracePeriodSeconds (60) must exceed "
         "worker.shutdown.preStopSleepSeconds + worker.shutdown.drainSeconds (60)"),
        (["--set", "worker.shutdown.drainSeconds=56"], "must exceed"),
    ],
    ids=["drain-below-own-window", "grace-equals-budget", "prestop-eats-grace", "drain-eats-grace"],
)  # fmt: skip
def test_too_short_worker_grace_is_refused(helm: Helm, override: list[str], message: str) -> None:
    """A worker grace period that cannot cover preStop + the worker's drain fails rendering."""
    # all-on: preStop 5s, drain 45s, grace 60s.
    assert message in failure_text(helm, ALL_ON, extra=override)


def test_worker_grace_boundary_and_prestop(helm: Helm, all_on_docs: list[Doc]) -> None:
    """Grace one second over preStop + drain renders; a preStop sleep renders only when set."""
    container = main_container(all_on_docs, "worker")
    assert container["lifecycle"] == {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    docs = helm.template(
        ALL_ON,
        extra=["--set", "worker.shutdown.drainSeconds=35",
               "--set", "worker.shutdown.terminationGracePeriodSeconds=41"],
    )  # fmt: skip
    spec = workload(docs, "worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 41
    # serve keeps its own grace period.
    assert workload(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60


@pytest.mark.parametrize(
    ("kube_version", "expected"),
    [("1.37.0", {"serve": "IfHealthyBudget", "worker": "AlwaysAllow"}),
     ("1.27.0", {"serve": "IfHealthyBudget", "worker": "AlwaysAllow"}),
     ("1.26.0", {"serve": None, "worker": None})],
)  # fmt: skip
def test_not_ready_workers_do_not_block_node_drains(
    helm: Helm, kube_version: str, expected: dict[str, str | None]
) -> None:
    """Workers unready in a Kafka outage stay evictable; the field is left out before 1.27."""
    result = helm.run(
        "template", RELEASE, str(CHART), "--kube-version", kube_version, "-f", str(ALL_ON)
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    policies = {
        component_of(pdb): pdb["spec"].get("unhealthyPodEvictionPolicy")
        for pdb in of_kind(docs, "PodDisruptionBudget")
    }
    assert policies == expected


def test_default_serve_pdb_keeps_the_kubernetes_eviction_default(default_docs: list[Doc]) -> None:
    """serve's PDB sets no unhealthyPodEvictionPolicy unless asked to."""
    assert "unhealthyPodEvictionPolicy" not in one(default_docs, "PodDisruptionBudget")["spec"]


# --- spool ---------------------------------------------------------------------------------

SPOOL_MOUNT = "/var/lib/gateway/spool"


def spool_config(tmp_path: Path, old: str, new: str) -> list[str]:
    """`--set-file config=` args for the all-on-spool config with `old` replaced by `new`."""
    text = yaml.safe_load(ALL_ON_SPOOL.read_text())["config"]
    assert old in text
    edited = tmp_path / "gateway.yaml"
    edited.write_text(text.replace(old, new))
    return ["--set-file", f"config={edited}"]


def mounts_by_name(container: Doc) -> dict[str, Doc]:
    """A container's volume mounts, by volume name."""
    return {m["name"]: m for m in container["volumeMounts"]}


def test_spool_ci_config_is_all_on_plus_a_spool_section() -> None:
    """The spool CI variant differs from all-on only in its spool values and `spool:` section."""
    all_on = yaml.safe_load(ALL_ON.read_text())
    overlay = yaml.safe_load(ALL_ON_SPOOL.read_text())
    assert set(overlay) == {"spool", "config"}
    config = yaml.safe_load(overlay["config"])
    assert config.pop("spool") == {
        "path": f"{SPOOL_MOUNT}/spool.db",
        "max_bytes": 2147483648,
        "drain_interval": "500ms",
    }
    assert config == yaml.safe_load(all_on["config"])


def test_spool_off_keeps_a_deployment_without_volume(rendered: list[Doc]) -> None:
    """serve is a StatefulSet exactly when the spool is on, and only serve pods mount it."""
    serve = workload(rendered)
    spool_on = serve["kind"] == "StatefulSet"
    assert spool_on == ("spool" in yaml.safe_load(config_text(rendered)))
    for d in workloads(rendered):
        spec = d["spec"]["template"]["spec"]
        is_serve = d["metadata"]["labels"]["app.kubernetes.io/component"] == "serve"
        for container in all_containers(spec):
            assert ("spool" in mounts_by_name(container)) == (spool_on and is_serve)
        assert "spool" not in {v["name"] for v in spec["volumes"]}
        assert ("volumeClaimTemplates" in d["spec"]) == (spool_on and is_serve)


def test_spool_gives_each_replica_its_own_claim(all_on_spool_docs: list[Doc]) -> None:
    """With the spool on, serve is a StatefulSet whose pods each mount their own writable claim."""
    serve = workload(all_on_spool_docs)
    assert serve["kind"] == "StatefulSet"
    assert serve["metadata"]["name"] == "gw-webhook-gateway-serve"
    spec = serve["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "spool"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOncePod"],
        "storageClassName": "gp3-encrypted",
        "resources": {"requests": {"storage": "4Gi"}},
    }
    # Claim templates are immutable: labels that move with chart or app version would make
    # every upgrade fail.
    assert claim["metadata"]["labels"] == spec["selector"]["matchLabels"]
    # Spooled events survive scale-downs and uninstalls.
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert spec["serviceName"] == one(all_on_spool_docs, "Service", "serve")["metadata"]["name"]
    assert spec["podManagementPolicy"] == "Parallel"
    assert "strategy" not in spec and spec["updateStrategy"] == {"type": "RollingUpdate"}
    # The HPA owns the replica count, as for the Deployment.
    assert "replicas" not in spec
    hpa = [
        h for h in of_kind(all_on_spool_docs, "HorizontalPodAutoscaler")
        if h["metadata"]["labels"]["app.kubernetes.io/component"] == "serve"
    ]  # fmt: skip
    assert hpa[0]["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    # The gateway and its config check see the claim where the config's spool.path points;
    # the root filesystem stays read-only.
    path = yaml.safe_load(config_text(all_on_spool_docs))["spool"]["path"]
    for container in all_containers(spec["template"]["spec"]):
        mount = mounts_by_name(container)["spool"]
        assert mount == {"name": "spool", "mountPath": SPOOL_MOUNT}
        assert path.startswith(mount["mountPath"] + "/")
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_spool_rolls_the_pods_like_the_deployment(
    all_on_docs: list[Doc], all_on_spool_docs: list[Doc]
) -> None:
    """The StatefulSet's pods are the Deployment's plus the spool: same probes, checksum, PDB."""
    deployment_pod = workload(all_on_docs)["spec"]["template"]
    statefulset_pod = workload(all_on_spool_docs)["spec"]["template"]
    assert statefulset_pod["metadata"]["labels"] == deployment_pod["metadata"]["labels"]
    assert (
        statefulset_pod["metadata"]["annotations"]["checksum/config"]
        == hashlib.sha256(config_text(all_on_spool_docs).encode()).hexdigest()
    )
    main, before = main_container(all_on_spool_docs), main_container(all_on_docs)
    for key in ("args", "ports", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle"):
        assert main[key] == before[key], key
    assert [m for m in main["volumeMounts"] if m["name"] != "spool"] == before["volumeMounts"]
    assert one(all_on_spool_docs, "PodDisruptionBudget", "serve") == one(
        all_on_docs, "PodDisruptionBudget", "serve"
    )


@pytest.mark.parametrize(
    ("override", "claim"),
    [
        (["--set", "spool.storageClassName=-"], {"storageClassName": ""}),
        (["--set", "spool.storageClassName="], {}),
    ],
    ids=["dash-means-no-class", "empty-means-default-class"],
)
def test_spool_storage_class(helm: Helm, override: list[str], claim: Doc) -> None:
    """storageClassName "-" renders an explicit empty class; empty leaves the cluster default."""
    docs = helm.template(ALL_ON, ALL_ON_SPOOL, extra=override)
    (template,) = workload(docs)["spec"]["volumeClaimTemplates"]
    assert {k: v for k, v in template["spec"].items() if k == "storageClassName"} == claim


def test_spool_existing_claim_serves_a_single_replica(helm: Helm) -> None:
    """existingClaim mounts that claim in the one serve pod instead of claim templates."""
    docs = helm.template(
        ALL_ON,
        ALL_ON_SPOOL,
        extra=["--set-json", 'spool.existingClaim="{{ .Release.Name }}-spool"',
               "--set", "serve.autoscaling.enabled=false", "--set", "serve.replicaCount=1"],
    )  # fmt: skip
    serve = workload(docs)
    assert serve["kind"] == "StatefulSet"
    assert serve["spec"]["replicas"] == 1
    assert "volumeClaimTemplates" not in serve["spec"]
    assert "persistentVolumeClaimRetentionPolicy" not in serve["spec"]
    volumes = {v["name"]: v for v in serve["spec"]["template"]["spec"]["volumes"]}
    assert volumes["spool"] == {"name": "spool", "persistentVolumeClaim": {"claimName": "gw-spool"}}
    assert mounts_by_name(main_container(docs))["spool"]["mountPath"] == SPOOL_MOUNT
    assert [
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")
    ] == ["gw-webhook-gateway-worker"]
    for doc in docs:
        if doc["kind"] != "ServiceMonitor":
            kv.validate(doc, KUBE_VERSIONS[0], strict=True)


@pytest.mark.parametrize(
    ("size", "accepted"),
    [("4Gi", True), ("2148M", True), ("2147483649", True), ("2Gi", False), ("2147M", False),
     ("2147483648", False)],
)  # fmt: skip
def test_spool_volume_must_exceed_max_bytes(helm: Helm, size: str, accepted: bool) -> None:
    """A claim no bigger than the config's max_bytes (2 GiB here) fills before the spool does."""
    result = helm.template_result(ALL_ON, ALL_ON_SPOOL, extra=["--set", f"spool.size={size}"])
    assert (result.returncode == 0) == accepted, result.stderr
    if not accepted:
        assert "must exceed the config's spool.max_bytes (2147483648)" in result.stderr


@pytest.mark.parametrize(
    ("values", "override", "edit", "message"),
    [
        pytest.param(
            [], ["--set", "spool.enabled=true"], None,
            "spool.enabled=true but the gateway config (value `config`) has no `spool:` section",
            id="enabled-without-section",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL], ["--set", "spool.mountPath=/var/lib/spool"], None,
            'the config\'s spool.path ("/var/lib/gateway/spool/spool.db") is not under '
            "spool.mountPath (/var/lib/spool)",
            id="path-outside-mount",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL], [], ("spool/spool.db", "spool/../spool.db"),
            "is not under spool.mountPath", id="path-escapes-mount",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL], [], ("spool/spool.db", "spool"),
            "is not under spool.mountPath", id="path-is-the-mount",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL], ["--set", "spool.existingClaim=gw-spool"], None,
            "spool.existingClaim (gw-spool) is one volume for every serve pod, so it needs "
            "serve.replicaCount <= 1 and serve.autoscaling.enabled=false",
            id="existing-claim-with-hpa",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL],
            ["--set", "spool.existingClaim=gw-spool", "--set", "serve.autoscaling.enabled=false"],
            None, "(got replicaCount=3, autoscaling.enabled=false)",
            id="existing-claim-with-replicas",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL], ["--set", "spool.enabled=false"], None,
            'the config has a `spool:` section (path "/var/lib/gateway/spool/spool.db") but '
            "spool.enabled=false",
            id="section-without-volume",
        ),
        pytest.param(
            [ALL_ON, ALL_ON_SPOOL], ["--set", "spool.mountPath=/etc/gateway/config"],
            ("/var/lib/gateway/spool/", "/etc/gateway/config/"),
            "spool.mountPath /etc/gateway/config clashes with configDir or /tmp",
            id="mount-clash",
        ),
    ],
)  # fmt: skip
def test_unusable_spool_is_refused(
    helm: Helm,
    tmp_path: Path,
    values: list[Path],
    override: list[str],
    edit: tuple[str, str] | None,
    message: str,
) -> None:
    """A spool the pods could not write, or a volume the gateway would not use, fails rendering."""
    extra = [*override, *(spool_config(tmp_path, *edit) if edit else [])]
    assert message in failure_text(helm, *values, extra=extra)


def test_spool_on_a_writable_extra_volume_needs_no_claim(helm: Helm, tmp_path: Path) -> None:
    """spool.enabled=false accepts a `spool:` section whose path a writable volume holds."""
    docs = helm.template(
        ALL_ON,
        extra=[
            "--set", "spool.enabled=false",
            "--set-json", 'extraVolumes=[{"name": "scratch", "emptyDir": {}}]',
            "--set-json", 'extraVolumeMounts=[{"name": "scratch", "mountPath": "/var/scratch"}]',
            *spool_config(tmp_path, "/var/lib/gateway/spool/", "/var/scratch/"),
        ],
    )  # fmt: skip
    assert workload(docs)["kind"] == "Deployment"
    assert yaml.safe_load(config_text(docs))["spool"]["path"] == "/var/scratch/spool.db"
    read_only = ["--set-json", 'extraVolumeMounts=[{"name": "scratch", "mountPath": "/var/scratch",'
                 ' "readOnly": true}]']  # fmt: skip
    stderr = failure_text(
        helm,
        ALL_ON,
        extra=["--set", "spool.enabled=false", *read_only,
               "--set-json", 'extraVolumes=[{"name": "scratch", "emptyDir": {}}]',
               *spool_config(tmp_path, "/var/lib/gateway/spool/", "/var/scratch/")],
    )  # fmt: skip
    assert "but spool.enabled=false" in stderr


def test_rendered_manifests_have_no_repeated_keys(helm: Helm) -> None:
    """No manifest repeats a key (e.g. a label given by commonLabels and a component's labels)."""
    result = helm.template_result(ALL_ON, ALL_ON_SPOOL)
    assert result.returncode == 0, result.stderr
    kinds = {d["kind"] for d in strict_yaml_docs(result.stdout)}
    assert {"StatefulSet", "ConfigMap"} <= kinds


# --- NOTES.txt -----------------------------------------------------------------------------


def notes(helm: Helm, apiserver: str, *values: Path, extra: tuple[str, ...] = ()) -> str:
    """NOTES.txt as `helm install` prints it (client-side dry run against a discovery stub)."""
    args = ["install", RELEASE, str(CHART), "--dry-run=client", "--disable-openapi-validation"]
    args += ["--kube-apiserver", apiserver, "--namespace", "payments"]
    for file in values:
        args += ["-f", str(file)]
    result = helm.run(*args, *extra)
    assert result.returncode == 0, result.stderr
    assert "NOTES:" in result.stdout
    return result.stdout.split("NOTES:", 1)[1]


def test_notes_list_each_sources_webhook_url(
    helm: Helm, fake_apiserver: str, all_on_docs: list[Doc]
) -> None:
    """With an ingress, NOTES prints https://<host>/webhooks/<source> for every configured source."""
    text = notes(helm, fake_apiserver, ALL_ON)
    sources = yaml.safe_load(config_text(all_on_docs))["sources"]
    assert len(sources) == 5
    for name, source in sources.items():
        assert f"{name} (provider {source['provider']})" in text
        for host in ("hooks.example.com", "hooks-dr.example.com"):
            assert f"https://{host}/webhooks/{name}" in text
    assert "WARNING" not in text
    # The Secrets to create, with the keys the pod reads.
    assert "create secret generic gw-provider-secrets" in text
    assert '--from-literal=pay3-secret="$PAY3_SECRET"' in text
    assert "--from-file=velafi-public-key=./velafi.pem" in text


def test_notes_without_ingress_give_paths_and_port_forward(helm: Helm, fake_apiserver: str) -> None:
    """Without an ingress, NOTES gives each source's path and how to reach the Service."""
    text = notes(helm, fake_apiserver)
    for name in ("fatpay", "velafi", "pay3", "whitepay", "w3block"):
        assert f"https://<your public host>/webhooks/{name}" in text
    assert "port-forward service/gw-webhook-gateway 8000:80" in text
    assert "--from-file=fatpay.pem=./fatpay.pem" in text


def test_notes_warn_when_fatpay_url_is_not_an_ingress_url(helm: Helm, fake_apiserver: str) -> None:
    """FaTPay signs its configured URL: NOTES warn when the ingress serves another host."""
    text = notes(
        helm, fake_apiserver, ALL_ON, extra=("--set-json", 'ingress.hosts=["pay.example.org"]')
    )
    assert "https://pay.example.org/webhooks/fatpay   (no ingress.tls for pay.example.org" in text
    assert "WARNING: that URL is not one of the ingress URLs above" in text


def test_notes_follow_the_statefulset_and_its_claims(helm: Helm, fake_apiserver: str) -> None:
    """With the spool on, NOTES name statefulset/, list the claims, warn before deleting them."""
    text = notes(helm, fake_apiserver, ALL_ON, ALL_ON_SPOOL)
    assert "deployment/gw-webhook-gateway-serve" not in text
    assert "rollout status statefulset/gw-webhook-gateway-serve" in text
    assert "rollout restart statefulset/gw-webhook-gateway-serve" in text
    assert "keep accepted events in /var/lib/gateway/spool/spool.db" in text
    assert "spool-gw-webhook-gateway-serve-<ordinal> (4Gi each)" in text
    assert "get pvc -l app.kubernetes.io/instance=gw,app.kubernetes.io/component=serve" in text
    assert "scale-down by the HPA" in text
    assert "only if gateway_spool_depth was 0" in text
    assert "Dashboard: ConfigMap gw-webhook-gateway-dashboard (namespace monitoring" in text
    default = notes(helm, fake_apiserver)
    assert "rollout status deployment/gw-webhook-gateway-serve" in default
    assert "Spool" not in default and "Dashboard" not in default


def test_notes_describe_the_worker_endpoints(helm: Helm, fake_apiserver: str) -> None:
    """NOTES name the worker rollout, its readiness and its ServiceMonitor, or say it has no HTTP."""
    text = notes(helm, fake_apiserver, ALL_ON)
    assert "rollout status deployment/gw-webhook-gateway-worker" in text
    assert "Workers turn ready (/readyz on port 8001)" in text
    assert "ServiceMonitor gw-webhook-gateway-worker (worker pods, port 8001)" in text
    bare = notes(helm, fake_apiserver, ALL_ON, extra=("--set", "worker.httpEnabled=false"))
    assert "Workers run without HTTP" in bare
    assert "gw-webhook-gateway-worker (worker pods" not in bare
    unmonitored = notes(
        helm, fake_apiserver, extra=("--set", "worker.enabled=true", "--set", "worker.port=9102")
    )
    assert "each worker pod's port 9102 (headless Service gw-webhook-gateway-worker)" in unmonitored
    assert "worker" not in notes(helm, fake_apiserver)
