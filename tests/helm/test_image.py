"""The Dockerfile builds what the chart expects to run (no Docker engine here: read statically)."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib

import pytest
import yaml

from tests.helm.support import CHART, REPO

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


def stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's stages, each a list of (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            out.append([])
        if out:
            out[-1].append((instruction.upper(), args.strip()))
    return out


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    """The arguments of every `name` instruction in a stage."""
    return [args for instruction, args in stage if instruction == name]


def context_includes(path: str) -> bool:
    """Whether .dockerignore lets `path` (relative to the repo) into the build context."""
    included = True
    for raw in DOCKERIGNORE.read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = path.split("/")
        # A pattern matches the path itself or any directory above it; `**/` any depth.
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            candidates += ["/".join(parts[i:]) for i in range(len(parts))]
            pattern = pattern[3:]
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            included = negate
    return included


def chart_values() -> dict[str, object]:
    """The chart's default values."""
    values: dict[str, object] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def test_final_stage_runs_gateway_serve_as_the_charts_user() -> None:
    """Runtime: numeric non-root USER = the chart's runAsUser/Group, EXPOSE = containerPort."""
    final = stages()[-1]
    (user,) = instructions(final, "USER")
    uid, gid = (int(part) for part in user.split(":"))
    pod = chart_values()["podSecurityContext"]
    assert isinstance(pod, dict)
    assert (uid, gid) == (pod["runAsUser"], pod["runAsGroup"])
    assert uid != 0
    assert instructions(final, "EXPOSE") == [str(chart_values()["containerPort"])]
    (entrypoint,) = instructions(final, "ENTRYPOINT")
    (cmd,) = instructions(final, "CMD")
    assert yaml.safe_load(entrypoint)[-1] == "gateway"
    assert yaml.safe_load(cmd)[0] == "serve"
    assert not any(instructions(stage, "HEALTHCHECK") for stage in stages())


def test_final_stage_has_no_build_tools_or_sources() -> None:
    """Runtime copies only the built virtualenv; no compiler, no source tree, no pip install."""
    final = stages()[-1]
    for run in instructions(final, "RUN"):
        for tool in ("gcc", "g++", "build-essential", "make ", "pip install", "git"):
            assert tool not in run, f"final stage runs {tool!r}: {run}"
    for copy in instructions(final, "COPY"):
        assert copy.startswith("--from="), f"final stage copies from the context: {copy}"


def pip_install_args() -> list[str]:
    """The arguments of the build stage's one `pip install` command."""
    found: list[list[str]] = []
    for run in instructions(stages()[0], "RUN"):
        for command in run.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"]:
                found.append(words[2:])
    (args,) = found
    return args


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def test_build_stage_installs_pinned_dependencies() -> None:
    """The project and its `otel` extra are installed with constraints.txt (tested versions)."""
    args = pip_install_args()
    assert args[:2] == ["-c", "constraints.txt"]
    (target,) = args[2:]
    match = re.fullmatch(r"\.\[([\w,-]+)\]", target)
    assert match, f"the build installs {target!r}, not the project with extras"
    extras = match.group(1).split(",")
    # Tracing is optional at run time, but the image must be able to turn it on.
    assert "otel" in extras
    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    pins = {
        canonical(line.split("==")[0].strip())
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    for extra in extras:
        assert extra in optional, f"pyproject.toml defines no extra {extra!r}"
        for requirement in optional[extra]:
            name = re.match(r"[A-Za-z0-9._-]+", requirement)
            assert name and canonical(name.group(0)) in pins, f"{requirement} is not pinned"


def test_build_context_holds_what_the_build_copies() -> None:
    """Every COPY source and every file the wheel build needs passes .dockerignore."""
    copied: list[str] = []
    for stage in stages():
        for copy in instructions(stage, "COPY"):
            if copy.startswith("--from="):
                continue
            *sources, _dest = shlex.split(copy)
            copied += sources
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = [
        pyproject["project"]["readme"],
        *pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
        "pyproject.toml",
        "constraints.txt",
    ]
    for path in needed:
        assert path in copied, f"the Dockerfile does not copy {path}"
    for path in copied:
        assert (REPO / path).exists(), path
        assert context_includes(path), f".dockerignore excludes {path}"
    assert context_includes("gateway/cli.py")


@pytest.mark.parametrize(
    "path",
    [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "config/gateway.yaml",
     ".tools/bin/helm", "gateway/__pycache__/cli.cpython-311.pyc", "helm/webhook-gateway/values.yaml"],
)  # fmt: skip
def test_build_context_leaves_out_everything_else(path: str) -> None:
    """The committed virtualenv, tests, local configs and tools never reach the builder."""
    assert not context_includes(path)
