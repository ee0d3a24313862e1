"""An operator that may not write ConfigMaps says so, and recovers once it may, unrestarted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import (
    REPO,
    Cluster,
    OperatorProcess,
    fast_copy,
    load_example,
    wait_for,
)

NAME = "insights-api"
CONFIG_MAP = "insights-api-features"
RBAC = REPO / "manifests" / "operator" / "rbac.yaml"
ACCOUNT = "flagstage-operator"


def _operator_rules() -> list[dict[str, Any]]:
    documents = yaml.safe_load_all(RBAC.read_text(encoding="utf-8"))
    [role] = [
        doc
        for doc in documents
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == ACCOUNT
    ]
    return list(role["rules"])


def _grant(plane: ControlPlane, namespace: str, name: str, rules: list[dict[str, Any]]) -> None:
    """A Role of `rules` in `namespace`, bound to the operator's ServiceAccount."""
    role = {"metadata": {"name": name, "namespace": namespace}, "rules": rules}
    binding = {
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
    }
    with plane.api_client() as api:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(namespace, role)
        rbac.create_namespaced_role_binding(namespace, binding)


def test_a_config_map_the_operator_may_not_write_degrades_the_rollout_until_granted(
    cluster: Cluster,
    control_plane: ControlPlane,
    start_operator: Callable[..., OperatorProcess],
) -> None:
    # The shipped rules, except that ConfigMaps may only be read.
    rules = [
        {**rule, "verbs": ["get"]} if "configmaps" in rule["resources"] else rule
        for rule in _operator_rules()
    ]
    _grant(control_plane, cluster.namespace, ACCOUNT, rules)
    kubeconfig: Path = control_plane.kubeconfig_for_service_account(cluster.namespace, ACCOUNT)
    operator = start_operator(kubeconfig)
    cluster.create(fast_copy(load_example("six-week-rollout.yaml"), promotion="Manual"))

    ready = wait_for(
        "Ready=False for the refused write",
        lambda: (
            (found := cluster.condition(NAME, "Ready")).get("reason") == "ApplyFailed" and found
        ),
        timeout=10,
    )
    assert ready["status"] == "False"
    assert f"ConfigMap {CONFIG_MAP} could not be written: 403 Forbidden" in ready["message"]
    assert "grant the operator get, create and patch on configmaps" in ready["message"]
    degraded = cluster.condition(NAME, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ApplyFailed")
    assert cluster.config_map(CONFIG_MAP) is None
    assert cluster.reasons(NAME).count("ApplyFailed") == 1, "one Event, not one per retry"

    _grant(
        control_plane,
        cluster.namespace,
        "configmap-writer",
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "patch"]}],
    )
    wait_for("the ConfigMap once granted", lambda: cluster.config_map(CONFIG_MAP), timeout=10)
    wait_for("Ready=True", lambda: cluster.condition(NAME, "Ready").get("status") == "True")
    assert cluster.condition(NAME, "Degraded")["status"] == "False"
    assert cluster.status(NAME)["stage"]["name"] == "week-1"
    assert operator.alive(), "the same operator process, never restarted"
