"""The chart's optional operator console: Deployment, ClusterIP Service, tokens Secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kv

from tests.helm.support import REPO, Doc, Helm

pytestmark = pytest.mark.helm

CONSOLE = REPO / "helm" / "ci" / "console.values.yaml"


@pytest.fixture(scope="module")
def console_docs(helm: Helm) -> list[Doc]:
    """The chart rendered with the console on (its tokens Secret created from values)."""
    return helm.template(CONSOLE)


def _component(docs: list[Doc], kind: str, component: str) -> Doc:
    (found,) = [
        d for d in docs
        if d["kind"] == kind and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]  # fmt: skip
    return found


def test_console_is_off_by_default(default_docs: list[Doc]) -> None:
    """Defaults render no console workload, Service, Secret or token volume."""
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component") for d in default_docs}
    assert "console" not in components
    text = yaml.safe_dump_all(default_docs)
    assert "console-tokens" not in text


def test_console_deployment_service_and_secret(console_docs: list[Doc]) -> None:
    """On: a Deployment running `gateway console`, a ClusterIP Service, no Ingress, a Secret."""
    deployment = _component(console_docs, "Deployment", "console")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == [
        "console", "--config", "/etc/gateway/config/gateway.yaml", "--listen", "0.0.0.0:8081"
    ]  # fmt: skip
    assert container["ports"] == [{"name": "console", "containerPort": 8081, "protocol": "TCP"}]
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "console"}, probe
    service = _component(console_docs, "Service", "console")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "console"
    assert not [d for d in console_docs if d["kind"] == "Ingress"]
    secret = _component(console_docs, "Secret", "console")
    assert set(secret["stringData"]) == {"oncall", "robot"}


def test_console_pod_is_hardened_like_the_others(console_docs: list[Doc]) -> None:
    """Same pod and container security context as serve; read-only root, no caps, no token."""
    serve = _component(console_docs, "Deployment", "serve")["spec"]["template"]["spec"]
    console = _component(console_docs, "Deployment", "console")["spec"]["template"]["spec"]
    assert console["securityContext"] == serve["securityContext"]
    assert console["automountServiceAccountToken"] is False
    (container,) = console["containers"]
    gateway = next(c for c in serve["containers"] if c["name"] == "gateway")
    assert container["securityContext"] == gateway["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["limits"]["memory"]


def test_every_pod_mounts_the_tokens_the_config_references(console_docs: list[Doc]) -> None:
    """The config (loaded whole by every pod) resolves `${file:/etc/gateway/console/...}`."""
    for component in ("serve", "console"):
        spec = _component(console_docs, "Deployment", component)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["console-tokens"]["secret"]["secretName"] == "gw-console-tokens"
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            assert mounts["/etc/gateway/console"]["readOnly"] is True, component


def test_console_config_passes_gateway_check(console_docs: list[Doc], tmp_path: Path) -> None:
    """The rendered config passes `gateway check`, token files made up where the pod has them."""
    (config_map,) = [d for d in console_docs if d["kind"] == "ConfigMap"]
    text: str = config_map["data"]["gateway.yaml"]
    secret = _component(console_docs, "Secret", "console")
    for key, token in secret["stringData"].items():
        text = text.replace(f"/etc/gateway/console/{key}", str(tmp_path / key))
        (tmp_path / key).write_text(token)
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    env = {**os.environ, "WHITEPAY_TOKEN": "whitepay-token-for-the-check"}
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "check", "--config", str(config)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for token in secret["stringData"].values():
        assert token not in proc.stdout + proc.stderr


@pytest.mark.parametrize("version", ["1.33.0", "1.37.0"])
def test_console_manifests_validate(console_docs: list[Doc], version: str) -> None:
    """The console's manifests pass kubernetes-validate --strict."""
    for doc in console_docs:
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "console":
            kv.validate(doc, version, strict=True)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "console.enabled=true"], "journal_topic"),
        (["--set", "console.port=http"], "console.port"),
        (["--set", "console.tokens.bogus=1"], "bogus"),
    ],
    ids=["no-journal-in-config", "port-type", "unknown-key"],
)
def test_broken_console_values_are_refused(helm: Helm, extra: list[str], message: str) -> None:
    """A console that could not start, or values of the wrong shape, fail to render."""
    result = helm.template_result(extra=extra)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_network_policy_opens_the_console_port(helm: Helm) -> None:
    """With the NetworkPolicy on, the console port is open to `console.networkPolicyFrom`."""
    peer = '{"namespaceSelector": {"matchLabels": {"team": "oncall"}}}'
    docs = helm.template(
        CONSOLE,
        extra=["--set", "networkPolicy.enabled=true", "--set-json",
               f"console.networkPolicyFrom=[{peer}]"],
    )  # fmt: skip
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    rules = [r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "console"]
    assert rules == [
        {
            "ports": [{"port": "console", "protocol": "TCP"}],
            "from": [{"namespaceSelector": {"matchLabels": {"team": "oncall"}}}],
        }
    ]
    assert (
        policy["spec"]["podSelector"]["matchLabels"].items()
        <= _component(docs, "Deployment", "console")["spec"]["template"]["metadata"][
            "labels"
        ].items()
    )
