"""Least-privilege identities: a ServiceAccount token and a user certificate get what RBAC grants.

The operator's tests run it with such an identity, so these pin down that the API server
really authenticates them and that RBAC, not the test harness, decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.launcher import ControlPlane

pytestmark = pytest.mark.kube

RBAC_SETTLE_SECONDS = 5.0


def _status_of(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as err:
        return int(err.status)
    return 200


def _eventually_allowed(call: Callable[[], object]) -> int:
    # The authorizer learns of new RBAC objects through a watch, a moment after they are stored.
    deadline = time.monotonic() + RBAC_SETTLE_SECONDS
    status = _status_of(call)
    while status == 403 and time.monotonic() < deadline:
        time.sleep(0.05)
        status = _status_of(call)
    return status


def _grant_config_map_reading(api: client.ApiClient, namespace: str, subject: dict) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "config-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "config-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "config-reader",
            },
            "subjects": [subject],
        },
    )


def test_a_service_account_can_do_what_its_role_allows_and_nothing_more(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig_for_service_account(kube_namespace, "operator")
    with control_plane.api_client() as admin:
        client.CoreV1Api(admin).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=f"{kube_namespace}-other"))
        )
        _grant_config_map_reading(
            admin,
            kube_namespace,
            {"kind": "ServiceAccount", "name": "operator", "namespace": kube_namespace},
        )

    with control_plane.api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        listed = _eventually_allowed(lambda: core.list_namespaced_config_map(kube_namespace))
        created = _status_of(
            lambda: core.create_namespaced_config_map(
                kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
            )
        )
        secrets = _status_of(lambda: core.list_namespaced_secret(kube_namespace))
        elsewhere = _status_of(lambda: core.list_namespaced_config_map(f"{kube_namespace}-other"))

    assert (listed, created, secrets, elsewhere) == (200, 403, 403, 403)


def test_a_service_account_token_authenticates_as_that_service_account(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig_for_service_account(kube_namespace, "operator")

    with control_plane.api_client(kubeconfig) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review({})

    user = review.status.user_info
    assert user.username == f"system:serviceaccount:{kube_namespace}:operator"
    assert f"system:serviceaccounts:{kube_namespace}" in user.groups


def test_a_user_certificate_carries_its_name_and_groups(control_plane: ControlPlane) -> None:
    kubeconfig = control_plane.kubeconfig_for_user("alice", groups=["rollout-viewers"])

    with control_plane.api_client(kubeconfig) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review({})
        namespaces = _status_of(lambda: client.CoreV1Api(api).list_namespace())

    assert review.status.user_info.username == "alice"
    assert "rollout-viewers" in review.status.user_info.groups
    assert namespaces == 403


def test_a_group_binding_grants_a_user_what_the_role_allows(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    kubeconfig = control_plane.kubeconfig_for_user("bob", groups=["config-readers"])
    with control_plane.api_client() as admin:
        _grant_config_map_reading(
            admin,
            kube_namespace,
            {"kind": "Group", "name": "config-readers", "apiGroup": "rbac.authorization.k8s.io"},
        )

    with control_plane.api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        listed = _eventually_allowed(lambda: core.list_namespaced_config_map(kube_namespace))
        deleted = _status_of(lambda: core.delete_namespaced_config_map("x", kube_namespace))

    assert (listed, deleted) == (200, 403)
