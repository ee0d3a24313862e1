"""Where the control-plane binaries are, and which versions they must be.

The versions are read from the go.mod files beside this module, which build.sh also builds
from, so the pins live in exactly one place. The binaries themselves are looked up in this
order: the directory named by KUBEBUILDER_ASSETS (the envtest convention, for people who bring
their own), then the per-user cache that build.sh fills. Building is left to build.sh: a test
run only finds binaries, it never compiles them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

logger = logging.getLogger(__name__)

CONTROLPLANE_DIR = Path(__file__).resolve().parent
KUBERNETES_GO_MOD = CONTROLPLANE_DIR / "go.mod"
HELM_GO_MOD = CONTROLPLANE_DIR / "helm" / "go.mod"

ASSETS_ENV = "KUBEBUILDER_ASSETS"

# kubectl and helm are not part of every KUBEBUILDER_ASSETS directory; a binary on PATH is
# the last resort for them. kube-apiserver and etcd never fall back: a server of an unknown
# version would make test failures impossible to reproduce.
PATH_FALLBACK = frozenset({"kubectl", "helm"})


class AssetsMissingError(Exception):
    """A control-plane binary is not where it should be."""


def pinned_version(go_mod: Path, module: str) -> str:
    """The version of `module` that `go_mod` requires."""
    pattern = re.compile(rf"^\s*(?:require\s+)?{re.escape(module)}[ \t]+(v\S+)", re.MULTILINE)
    match = pattern.search(go_mod.read_text(encoding="utf-8"))
    if match is None:
        raise AssetsMissingError(f"{go_mod} does not require {module}")
    return match.group(1)


def kubernetes_version() -> str:
    return pinned_version(KUBERNETES_GO_MOD, "k8s.io/kubernetes")


def etcd_version() -> str:
    return pinned_version(KUBERNETES_GO_MOD, "go.etcd.io/etcd/server/v3")


def helm_version() -> str:
    return pinned_version(HELM_GO_MOD, "helm.sh/helm/v4")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "flagstage" / "controlplane"


def cache_dir(binary: str) -> Path:
    """The cache directory build.sh puts `binary` in."""
    if binary == "helm":
        return cache_root() / f"helm-{helm_version()}"
    return cache_root() / kubernetes_version()


def find_binary(binary: str) -> Path:
    """The path of `binary` (kube-apiserver, etcd, kubectl or helm)."""
    assets = os.environ.get(ASSETS_ENV)
    if assets:
        candidate = Path(assets) / binary
        if os.access(candidate, os.X_OK):
            return candidate
        if binary not in PATH_FALLBACK:
            raise AssetsMissingError(
                f"{ASSETS_ENV}={assets} has no executable {binary}; put it there or unset "
                f"{ASSETS_ENV} to use the binaries that `make controlplane` builds"
            )

    candidate = cache_dir(binary) / binary
    if os.access(candidate, os.X_OK):
        return candidate

    if binary in PATH_FALLBACK:
        found = shutil.which(binary)
        if found:
            logger.warning("using %s from PATH: %s is not built", found, candidate)
            return Path(found)

    raise AssetsMissingError(
        f"{binary} not found at {candidate}; run `make controlplane` to build it, or set "
        f"{ASSETS_ENV} to a directory holding kube-apiserver and etcd"
    )
