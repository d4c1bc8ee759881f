"""Running the real helm binary against helm/webhook-gateway, and a discovery-only API stub."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "webhook-gateway"
ALL_ON = REPO / "helm" / "ci" / "all-on.values.yaml"
# Layered over ALL_ON: the same release with the local spool on.
ALL_ON_SPOOL = REPO / "helm" / "ci" / "all-on-spool.values.yaml"
BAD_TYPES = REPO / "helm" / "ci" / "bad-types.values.yaml"
RELEASE = "gw"
KUBE_VERSION = "1.37.0"

Doc = dict[str, Any]


@dataclass
class Result:
    """A finished helm command."""

    returncode: int
    stdout: str
    stderr: str


class Helm:
    """Runs helm with its config, cache and data kept out of the user's home."""

    def __init__(self, binary: Path, home: Path) -> None:
        self.binary = binary
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            "KUBECONFIG": str(home / "no-kubeconfig"),
        }

    def run(self, *args: str) -> Result:
        """Run `helm ARGS` and return what it did; never raises on failure."""
        proc = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def template_result(self, *values: Path, extra: Sequence[str] = ()) -> Result:
        """`helm template` of the chart with values files and extra flags."""
        args = ["template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION]
        for file in values:
            args += ["-f", str(file)]
        return self.run(*args, *extra)

    def template(self, *values: Path, extra: Sequence[str] = ()) -> list[Doc]:
        """The rendered manifests as dicts; fails the test if rendering fails."""
        result = self.template_result(*values, extra=extra)
        if result.returncode != 0:
            pytest.fail(f"helm template failed:\n{result.stderr}")
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# A Kubernetes API server that answers discovery only, on 127.0.0.1. `helm install
# --dry-run=client` (the one command that renders NOTES.txt) needs discovery to map kinds to
# resources; it asks for nothing else but whether each object already exists (404: no).
_RESOURCES = {
    "v1": [
        ("serviceaccounts", "ServiceAccount"),
        ("services", "Service"),
        ("configmaps", "ConfigMap"),
        ("pods", "Pod"),
    ],
    "apps/v1": [("deployments", "Deployment"), ("statefulsets", "StatefulSet")],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler")],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget")],
    "networking.k8s.io/v1": [("ingresses", "Ingress"), ("networkpolicies", "NetworkPolicy")],
    "monitoring.coreos.com/v1": [("servicemonitors", "ServiceMonitor")],
}


def _discovery(path: str) -> Any:
    def resource_list(group_version: str) -> Any:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [
                {"name": name, "singularName": "", "namespaced": True, "kind": kind,
                 "verbs": ["get", "list", "create"]}
                for name, kind in _RESOURCES[group_version]
            ],
        }  # fmt: skip

    if path == "/version":
        return {"major": "1", "minor": "37", "gitVersion": "v1.37.0"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if path == "/api/v1":
        return resource_list("v1")
    if path == "/apis":
        groups: dict[str, list[dict[str, str]]] = {}
        for group_version in _RESOURCES:
            if "/" in group_version:
                group, version = group_version.split("/")
                groups.setdefault(group, []).append(
                    {"groupVersion": group_version, "version": version}
                )
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {"name": g, "versions": vs, "preferredVersion": vs[0]} for g, vs in groups.items()
            ],
        }
    if path.startswith("/apis/") and path[len("/apis/") :] in _RESOURCES:
        return resource_list(path[len("/apis/") :])
    return None


class _DiscoveryHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = _discovery(self.path.split("?")[0])
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def discovery_server() -> Iterator[str]:
    """Serve the discovery stub on a free 127.0.0.1 port; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DiscoveryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
