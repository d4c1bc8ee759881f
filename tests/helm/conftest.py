"""Fixtures that run the real helm binary against helm/webhook-gateway."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helm.support import ALL_ON, ALL_ON_SPOOL, REPO, Doc, Helm, discovery_server


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm binary from $HELM_BIN or .tools/bin/helm; fails (never skips) without one."""
    configured = os.environ.get("HELM_BIN")
    binary = Path(configured) if configured else REPO / ".tools" / "bin" / "helm"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(
            f"helm not found at {binary}: run `make helm-tools` (or point HELM_BIN at a helm 3)",
            pytrace=False,
        )
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def default_docs(helm: Helm) -> list[Doc]:
    """The chart rendered with its default values."""
    return helm.template()


@pytest.fixture(scope="session")
def all_on_docs(helm: Helm) -> list[Doc]:
    """The chart rendered with every option turned on."""
    return helm.template(ALL_ON)


@pytest.fixture(scope="session")
def all_on_spool_docs(helm: Helm) -> list[Doc]:
    """Every option on plus the spool: serve as a StatefulSet with per-replica claims."""
    return helm.template(ALL_ON, ALL_ON_SPOOL)


@pytest.fixture(scope="session", params=["default", "all-on", "all-on-spool"])
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    """Each of the three renderings in turn."""
    name = request.param.replace("-", "_") + "_docs"
    docs: list[Doc] = request.getfixturevalue(name)
    return docs


@pytest.fixture(scope="session")
def fake_apiserver() -> Iterator[str]:
    """URL of a discovery-only Kubernetes API on 127.0.0.1 (for `helm install --dry-run`)."""
    with discovery_server() as url:
        yield url
