"""Fixtures for the delivery tests: the chart, the kustomize overlays and the Dockerfiles.

Rendering needs only the pinned helm (and kubectl for kustomize); applying needs the test API
server, where the FeatureRollout CRD is installed for real once per run, together with
stand-ins for the CRDs of the Prometheus Operator (ServiceMonitor) and cert-manager (Issuer,
Certificate) so that the chart's optional objects can be dry-run as well. Nothing here runs a
pod: there is no kubelet.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane import assets
from tests.controlplane.launcher import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "flagstage"
CI_VALUES = sorted(CHART.glob("ci/*-values.yaml"))
CRD = REPO / "crds" / "featurerollouts.flagstage.io.yaml"
CRD_NAME = "featurerollouts.flagstage.io"
OVERLAYS = REPO / "manifests" / "overlays"
COMMAND_TIMEOUT_SECONDS = 60.0

# Stand-ins for CRDs of other projects: only their group, kind and scope matter to a dry run.
STAND_IN_KINDS = [
    ("monitoring.coreos.com", "ServiceMonitor"),
    ("cert-manager.io", "Issuer"),
    ("cert-manager.io", "Certificate"),
]


def stand_in_crd(group: str, kind: str) -> dict[str, Any]:
    plural = f"{kind.lower()}s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


class Helm:
    """The pinned helm binary, run the way a user runs it, against the test API server."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}", pytrace=False)
        return result

    def template(
        self,
        *,
        namespace: str = "flagstage-system",
        values: Sequence[Path] = (),
        settings: Sequence[str] = (),
        release: str = "flagstage",
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(CHART), f"--namespace={namespace}"]
        args += [f"--values={path}" for path in values]
        args += [f"--set={setting}" for setting in settings]
        return self.run(*args, check=check)

    def objects(self, **kwargs: Any) -> list[dict[str, Any]]:
        """The objects `helm template` renders, parsed."""
        return parse_documents(self.template(**kwargs).stdout)


def parse_documents(text: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(text) if document]


def find_object(objects: Sequence[dict[str, Any]], kind: str, name: str = "") -> dict[str, Any]:
    matches = [
        obj
        for obj in objects
        if obj["kind"] == kind and (not name or obj["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        return Helm(assets.find_binary("helm"))
    except assets.AssetsMissingError as err:
        pytest.fail(f"helm is not available: {err}", pytrace=False)


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    try:
        return assets.find_binary("kubectl")
    except assets.AssetsMissingError as err:
        pytest.fail(f"kubectl is not available: {err}", pytrace=False)


@pytest.fixture(scope="session")
def installed_crds(control_plane: ControlPlane) -> str:
    """The FeatureRollout CRD and the stand-ins, installed and established."""
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD))
    stand_ins = [stand_in_crd(group, kind) for group, kind in STAND_IN_KINDS]
    control_plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(stand_ins))
    names = [f"crd/{crd['metadata']['name']}" for crd in stand_ins]
    control_plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}", *names
    )
    return CRD_NAME


def ensure_namespace(plane: ControlPlane, name: str, *, restricted: bool = True) -> str:
    """Namespace `name`, created if missing, enforcing the "restricted" Pod Security Standard."""
    labels = {"pod-security.kubernetes.io/enforce": "restricted"} if restricted else {}
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if labels:
        manifest["metadata"]["labels"] = labels
    plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(manifest))
    return name


@pytest.fixture
def restricted_namespace(control_plane: ControlPlane, kube_namespace: str) -> str:
    """This test's namespace, where pods must meet the "restricted" Pod Security Standard."""
    return ensure_namespace(control_plane, kube_namespace)


def server_dry_run(plane: ControlPlane, manifests: str) -> subprocess.CompletedProcess[str]:
    """`kubectl apply --server-side --dry-run=server` of `manifests`; never raises."""
    return plane.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "--field-manager=flagstage-delivery-tests",
        # The question is whether the server accepts the objects, not who owns which field.
        "--force-conflicts",
        "-f",
        "-",
        stdin=manifests,
        check=False,
    )
