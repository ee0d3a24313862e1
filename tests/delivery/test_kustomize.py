"""The kustomize base and overlays build, match the chart and pass the API server."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.launcher import ControlPlane
from tests.delivery.conftest import (
    CRD,
    OVERLAYS,
    REPO,
    Helm,
    find_object,
    parse_documents,
    server_dry_run,
)

BASE = REPO / "manifests" / "base"
TREES = [pytest.param(BASE, id="base")] + [
    pytest.param(path, id=path.name) for path in sorted(OVERLAYS.iterdir()) if path.is_dir()
]


def build(kubectl_binary: Path, tree: Path) -> str:
    result = subprocess.run(
        [str(kubectl_binary), "kustomize", str(tree)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = find_object(objects, "Deployment", "flagstage-operator")
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_there_are_dev_and_prod_overlays() -> None:
    assert {path.name for path in OVERLAYS.iterdir()} >= {"dev", "prod"}


def test_base_crd_is_the_generated_one() -> None:
    copy = BASE / CRD.name

    assert copy.read_bytes() == CRD.read_bytes(), (
        f"{copy.relative_to(REPO)} differs from {CRD.relative_to(REPO)}: run `make crds`"
    )


def test_base_grants_what_the_chart_grants(kubectl_binary: Path, helm: Helm) -> None:
    base = find_object(parse_documents(build(kubectl_binary, BASE)), "ClusterRole")
    chart = find_object(helm.objects(), "ClusterRole")

    assert base["rules"] == chart["rules"]


@pytest.mark.parametrize("tree", TREES)
def test_tree_puts_everything_in_one_restricted_namespace(kubectl_binary: Path, tree: Path) -> None:
    objects = parse_documents(build(kubectl_binary, tree))

    namespace = find_object(objects, "Namespace")
    name = namespace["metadata"]["name"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for obj in objects:
        if obj["kind"] not in {"Namespace", "CustomResourceDefinition"} and not obj[
            "kind"
        ].startswith("Cluster"):
            assert obj["metadata"]["namespace"] == name, obj["metadata"]["name"]
    binding = find_object(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == name


def test_dev_overlay_runs_fast_and_verbose_on_the_main_image(kubectl_binary: Path) -> None:
    container = operator_container(parse_documents(build(kubectl_binary, OVERLAYS / "dev")))

    assert {"--tick-seconds=1", "--verbose"} <= set(container["args"])
    assert container["image"].endswith(":main")
    assert container["imagePullPolicy"] == "Always"


def test_prod_overlay_runs_a_release_with_room_and_a_network_policy(kubectl_binary: Path) -> None:
    objects = parse_documents(build(kubectl_binary, OVERLAYS / "prod"))

    container = operator_container(objects)
    policy = find_object(objects, "NetworkPolicy")
    assert container["image"] == "ghcr.io/flagstage/flagstage-operator:0.1.0"
    assert "--verbose" not in container["args"]
    assert container["resources"]["limits"]["memory"] == "512Mi"
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]


@pytest.mark.parametrize("tree", TREES)
def test_tree_is_accepted_by_the_api_server(
    control_plane: ControlPlane, installed_crds: str, kubectl_binary: Path, tree: Path
) -> None:
    rendered = build(kubectl_binary, tree)
    objects = parse_documents(rendered)
    # A dry run stores nothing, so the namespace its objects go to must exist for real.
    namespace = find_object(objects, "Namespace")
    control_plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))

    result = server_dry_run(control_plane, rendered)

    assert result.returncode == 0, result.stderr
    assert "PodSecurity" not in result.stderr, result.stderr
