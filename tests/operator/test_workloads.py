"""Rolling reloads, owner references, deletion, and the operator under its own narrow role.

There is no controller-manager in the test control plane: a Deployment's pod template is
stored but no pod runs, and garbage collection does not happen. The tests therefore check
what the operator controls: the template annotation (and so the Deployment's generation) and
the owner reference that lets the garbage collector delete the ConfigMap in a real cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import (
    REPO,
    Cluster,
    OperatorProcess,
    deployment,
    fast_copy,
    load_example,
    wait_for,
)

HASH = "flagstage.io/config-hash"
NAME = "insights-api"
CONFIG_MAP = "insights-api-features"
RBAC = REPO / "manifests" / "operator" / "rbac.yaml"


def _rolling_rollout() -> dict[str, Any]:
    rollout = fast_copy(load_example("six-week-rollout.yaml"), promotion="Manual")
    rollout["spec"]["target"]["reloadStrategy"] = "Rolling"
    return rollout


def _template_hash(cluster: Cluster) -> tuple[str | None, int]:
    deployment = cluster.apps.read_namespaced_deployment(NAME, cluster.namespace)
    annotations = deployment.spec.template.metadata.annotations or {}
    return annotations.get(HASH), deployment.metadata.generation


def test_rolling_reload_patches_the_pod_template_once_per_change_and_not_on_restart(
    cluster: Cluster, start_operator: Callable[..., OperatorProcess]
) -> None:
    cluster.apps.create_namespaced_deployment(cluster.namespace, deployment(NAME))
    running = start_operator()
    cluster.create(_rolling_rollout())
    first = cluster.wait_stage(NAME, "week-1", timeout=10)
    wait_for("the first hash", lambda: _template_hash(cluster)[0] == first["configHash"])
    _, generation = _template_hash(cluster)

    assert cluster.patch(NAME, {"metadata": {"annotations": {"flagstage.io/promote": "1"}}})
    second = cluster.wait_stage(NAME, "week-2")
    assert second["configHash"] != first["configHash"]
    wait_for("the second hash", lambda: _template_hash(cluster)[0] == second["configHash"])
    assert _template_hash(cluster)[1] == generation + 1, "one change, one template patch"

    # A description edit changes the ConfigMap but not the hash: nothing rolls.
    features = cluster.rollout(NAME)["spec"]["features"]
    features[0]["description"] = "Reworded."
    cluster.patch(NAME, {"spec": {"features": features}})
    # (Annotations do not count as generations: this edit is generation 2.)
    wait_for("the edit observed", lambda: cluster.status(NAME)["observedGeneration"] == 2)

    running.stop()
    start_operator()
    time.sleep(2)
    assert _template_hash(cluster) == (second["configHash"], generation + 1)
    assert cluster.reasons(NAME).count("WorkloadReloaded") == 2


def test_the_config_map_is_owned_by_its_rollout_and_deletion_needs_no_finalizer(
    cluster: Cluster, operator: OperatorProcess
) -> None:
    created = cluster.create(fast_copy(load_example("six-week-rollout.yaml")))
    config_map = wait_for("the ConfigMap", lambda: cluster.config_map(CONFIG_MAP))
    [owner] = config_map.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == (
        "FeatureRollout",
        NAME,
        created["metadata"]["uid"],
    )
    assert owner.controller is True
    managers = {entry.manager for entry in config_map.metadata.managed_fields}
    assert "flagstage-operator" in managers
    assert not cluster.rollout(NAME)["metadata"].get("finalizers")

    cluster.delete(NAME)
    wait_for("the rollout gone", lambda: _gone(cluster))
    time.sleep(1)
    assert "Traceback" not in operator.log()


def _gone(cluster: Cluster) -> bool:
    try:
        cluster.rollout(NAME)
    except ApiException as err:
        return err.status == 404
    return False


def _grant_operator_role(plane: ControlPlane, namespace: str) -> Path:
    """The shipped ClusterRole's rules as a Role in `namespace`, bound to a ServiceAccount."""
    documents = list(yaml.safe_load_all(RBAC.read_text(encoding="utf-8")))
    [cluster_role] = [
        doc
        for doc in documents
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "flagstage-operator"
    ]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "flagstage-operator", "namespace": namespace},
        "rules": cluster_role["rules"],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "flagstage-operator", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "flagstage-operator",
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": "flagstage-operator", "namespace": namespace}
        ],
    }
    with plane.api_client() as api:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(namespace, role)
        rbac.create_namespaced_role_binding(namespace, binding)
    return plane.kubeconfig_for_service_account(namespace, "flagstage-operator")


def test_the_operator_works_with_only_its_role(
    cluster: Cluster,
    control_plane: ControlPlane,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    cluster.apps.create_namespaced_deployment(cluster.namespace, deployment(NAME))
    kubeconfig = _grant_operator_role(control_plane, cluster.namespace)
    operator = start_operator(kubeconfig)

    cluster.create(_rolling_rollout())
    status = cluster.wait_stage(NAME, "week-1", timeout=10)
    wait_for("the ConfigMap", lambda: cluster.config_map(CONFIG_MAP))
    wait_for("the reload", lambda: _template_hash(cluster)[0] == status["configHash"])
    wait_for("Events", lambda: "WorkloadReloaded" in cluster.reasons(NAME))
    assert cluster.condition(NAME, "Ready")["status"] == "True"

    log = operator.log()
    assert "Forbidden" not in log and "403" not in log, log
