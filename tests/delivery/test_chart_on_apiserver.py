"""What the chart renders is accepted by a real API server, with the CRD installed for real.

Every values set is sent as `kubectl apply --server-side --dry-run=server` into a namespace
that enforces the "restricted" Pod Security Standard, so the API server's own validation,
defaulting and Pod Security admission all pass judgement, and nothing is stored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.controlplane.launcher import ControlPlane
from tests.delivery.conftest import Helm, ensure_namespace, parse_documents, server_dry_run
from tests.delivery.test_chart import VALUE_SETS


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_is_accepted_by_the_api_server(
    control_plane: ControlPlane,
    installed_crds: str,
    restricted_namespace: str,
    helm: Helm,
    values: tuple[Path, ...],
) -> None:
    rendered = helm.template(namespace=restricted_namespace, values=values).stdout
    for obj in parse_documents(rendered):
        if obj["kind"] in {"Role", "RoleBinding"}:
            ensure_namespace(control_plane, obj["metadata"]["namespace"])

    result = server_dry_run(control_plane, rendered)

    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
    assert "serverside-applied (server dry run)" in result.stdout


def test_a_rollout_is_accepted_once_the_chart_crd_is_installed(
    control_plane: ControlPlane, installed_crds: str, restricted_namespace: str
) -> None:
    example = Path(__file__).resolve().parents[2] / "manifests/examples/six-week-rollout.yaml"

    result = control_plane.kubectl(
        "apply",
        "--dry-run=server",
        f"--namespace={restricted_namespace}",
        "-f",
        str(example),
        check=False,
    )

    assert result.returncode == 0, result.stderr
