"""The CRD is generated from the core's models, and the API server and the core agree on it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from flagstage_operator.crd import CRD_PATH, render_crd

from flagstage.errors import SpecError
from flagstage.validation import parse_rollout
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import EXAMPLES, load_example

VALID_EXAMPLES = sorted(
    path.name for path in EXAMPLES.glob("*.yaml") if not path.name.startswith("invalid")
)


def test_committed_crd_is_what_the_models_generate() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == render_crd(), (
        "crds/ is stale: run `python -m flagstage_operator.crd` and commit the result"
    )


def _server_dry_run(
    plane: ControlPlane, namespace: str, manifest: dict[str, Any]
) -> tuple[bool, str]:
    import yaml

    result = plane.kubectl(
        "create",
        "--dry-run=server",
        "--validate=strict",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(manifest),
        check=False,
    )
    return result.returncode == 0, result.stderr


def _core_accepts(manifest: dict[str, Any]) -> bool:
    try:
        parse_rollout(manifest)
    except SpecError:
        return False
    return True


@pytest.mark.parametrize("example", VALID_EXAMPLES)
def test_every_example_passes_the_schema_and_the_core(
    control_plane: ControlPlane, kube_namespace: str, crd: str, example: str
) -> None:
    manifest = load_example(example)
    accepted, errors = _server_dry_run(control_plane, kube_namespace, manifest)
    assert accepted, errors
    assert _core_accepts(manifest)


def test_the_invalid_example_is_refused(
    control_plane: ControlPlane, kube_namespace: str, crd: str
) -> None:
    manifest = load_example("invalid-rollout.yaml")
    accepted, errors = _server_dry_run(control_plane, kube_namespace, manifest)
    assert not accepted, "the misspelt feature in week-2 is a CEL reference check"
    assert "not declared under features" in errors
    # The graph checks (the cycle, week-1's missing requirement) are the core's alone.
    assert not _core_accepts(manifest)


def _with_spec(**changes: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(load_example("six-week-rollout.yaml"))
    manifest["spec"].update(changes)
    return manifest


CEL_CASES = {
    "duplicate feature": (
        lambda spec: spec["features"].append({"name": "temporal_analysis"}),
        "feature names must be unique",
    ),
    "duplicate stage": (
        lambda spec: spec["stages"].append({"name": "week-1"}),
        "stage names must be unique",
    ),
    "unknown requirement": (
        lambda spec: spec["features"][0].update(requires=["nothing_here"]),
        "requires names a feature that is not declared",
    ),
    "unknown stage feature": (
        lambda spec: spec["stages"][1].update(enable=["format_detecton"]),
        "enables or disables a feature that is not declared",
    ),
    "unknown override": (
        lambda spec: spec.update(overrides=[{"feature": "nope", "force": "Disabled"}]),
        "an override names a feature that is not declared",
    ),
    "percentage above 100": (
        lambda spec: spec["stages"][1].update(tenants={"percentage": 120}),
        "should be less than or equal to 100",
    ),
    "empty tenant selector": (
        lambda spec: spec["stages"][1].update(tenants={"percentage": 0}),
        "tenants selects nobody",
    ),
    "rolling without workloads": (
        lambda spec: spec.update(target={"reloadStrategy": "Rolling"}),
        "reloadStrategy Rolling restarts the listed workloads",
    ),
}


@pytest.mark.parametrize("case", sorted(CEL_CASES))
def test_the_schema_refuses_what_cel_can_check(
    control_plane: ControlPlane, kube_namespace: str, crd: str, case: str
) -> None:
    change, message = CEL_CASES[case]
    manifest = _with_spec()
    change(manifest["spec"])
    accepted, errors = _server_dry_run(control_plane, kube_namespace, manifest)
    assert not accepted
    assert message in errors
    assert not _core_accepts(manifest), "the core must refuse whatever the schema refuses"
