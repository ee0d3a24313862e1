"""Fixtures every test folder can use: the real Kubernetes control plane.

kube-apiserver and etcd start once per run, and only when a test asks for `control_plane` or
`kube_namespace`; such tests are marked `kube` here, so `-m "not kube"` leaves them out. Each
folder keeps its own fixtures in its own conftest.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.assets import AssetsMissingError
from tests.controlplane.launcher import ControlPlane, ControlPlaneError

KUBE_FIXTURES = frozenset({"control_plane", "kube_namespace"})
KEPT_WORKDIR = pytest.StashKey[Path]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if KUBE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kube)


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """etcd and kube-apiserver on loopback; KUBECONFIG points at its admin for the session.

    Setting KUBECONFIG means kubectl, helm, kopf and `kubernetes.config.load_kube_config()`
    reach this server and never a developer's own cluster.
    """
    plane = ControlPlane()
    try:
        plane.start()
    except (AssetsMissingError, ControlPlaneError) as err:
        pytest.fail(f"the test control plane did not start: {err}", pytrace=False)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBECONFIG", str(plane.kubeconfig))
        yield plane

    failed = request.session.testsfailed > 0
    plane.stop(keep_files=failed)
    if failed:
        request.config.stash[KEPT_WORKDIR] = plane.workdir


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kept = terminalreporter.config.stash.get(KEPT_WORKDIR, None)
    if kept is not None:
        terminalreporter.write_line(f"control plane logs and certificates kept in {kept}")


@pytest.fixture
def kube_namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> str:
    """A new namespace for this test alone, named after it.

    It is not deleted afterwards: without a controller-manager a deleted namespace never
    finishes terminating, and the whole etcd goes away at the end of the run anyway.
    """
    from kubernetes import client

    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:48].rstrip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    with control_plane.api_client() as api:
        body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
        client.CoreV1Api(api).create_namespace(body)
    return name
