"""The chart and the shared state store: the URL from a Secret, warnings for per-process state."""

from __future__ import annotations

import pytest

from tests.helm.support import ALL_ON, Doc, Helm
from tests.helm.test_chart import all_containers, component_of, notes, workloads

pytestmark = pytest.mark.helm

WARNING = "WARNING: state.backend is memory"


def _env(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def test_store_url_comes_from_the_secret(all_on_docs: list[Doc]) -> None:
    """With state.urlSecret every gateway container (config check included) reads REDIS_URL
    from that Secret, never from the values in clear."""
    found = 0
    for workload in workloads(all_on_docs):
        for container in all_containers(workload["spec"]["template"]["spec"]):
            variable = _env(container)["REDIS_URL"]
            assert variable["valueFrom"]["secretKeyRef"] == {"name": "gw-redis", "key": "url"}
            assert "value" not in variable
            found += 1
    assert found >= 4  # serve and worker, each with its config check


def test_config_check_is_told_the_process_count(all_on_docs: list[Doc]) -> None:
    """The serve pods' `gateway check` gets --workers and --replicas (the HPA maximum)."""
    for workload in workloads(all_on_docs):
        args = workload["spec"]["template"]["spec"]["initContainers"][0]["args"]
        if component_of(workload) == "serve":
            assert args[3:] == ["--workers", "2", "--replicas", "12"], args
        else:
            assert "--workers" not in args


def test_pods_are_told_the_replica_count(all_on_docs: list[Doc], default_docs: list[Doc]) -> None:
    """GATEWAY_REPLICAS (for the start-up warning) is the replica count, or the HPA maximum."""
    for docs, want in ((default_docs, "2"), (all_on_docs, "12")):
        for workload in workloads(docs):
            for container in all_containers(workload["spec"]["template"]["spec"]):
                assert _env(container)["GATEWAY_REPLICAS"]["value"] == want


def test_reference_without_the_secret_is_refused(helm: Helm) -> None:
    """A config whose state.url needs ${env:REDIS_URL} does not render without urlSecret."""
    result = helm.template_result(
        ALL_ON, extra=["--set", "state.urlSecret.secretName=", "--set-json", "envFrom=[]"]
    )
    assert result.returncode != 0
    assert "config references ${env:REDIS_URL}" in result.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"urlSecret": {"secretName": "s", "key": "k", "envName": "1BAD"}}', "envName"),
        ('{"urlSecret": {"secretName": "s", "key": "", "envName": "X"}}', "key"),
        ('{"url": "redis://x"}', "Additional property url is not allowed"),
    ],
)
def test_schema_rejects_bad_state_values(helm: Helm, value: str, message: str) -> None:
    """The store URL is never a plain value, and the Secret reference is checked."""
    result = helm.template_result(extra=["--set-json", f"state={value}"])
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_notes_warn_about_per_process_state(helm: Helm, fake_apiserver: str) -> None:
    """NOTES warn when backend memory meets several replicas or workers, and only then."""
    default = notes(helm, fake_apiserver)  # two replicas by default
    assert WARNING in default
    assert "serve runs 2 replica(s) x 1 process(es) each" in default
    assert "PER PROCESS" in default
    one = ("--set", "serve.replicaCount=1")
    assert WARNING not in notes(helm, fake_apiserver, extra=one)
    workers = notes(helm, fake_apiserver, extra=(*one, "--set", "serve.workers=2"))
    assert "serve runs 1 replica(s) x 2 process(es) each" in workers
    shared = notes(helm, fake_apiserver, ALL_ON)
    assert WARNING not in shared
    assert 'create secret generic gw-redis \\\n       --from-literal=url="$REDIS_URL"' in shared
