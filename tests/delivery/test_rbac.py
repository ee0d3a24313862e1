"""The operator's ServiceAccount may do what the operator does, and nothing else.

The chart's RBAC objects are applied for real, then `kubectl auth can-i --as` asks the API
server's own authorizer, the same one that will judge the operator's calls.
"""

from __future__ import annotations

import time
import uuid

import pytest
import yaml

from tests.controlplane.launcher import ControlPlane
from tests.delivery.conftest import Helm, ensure_namespace

RBAC_KINDS = frozenset(
    {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)
RBAC_SETTLE_SECONDS = 5.0

# (verb, resource, subresource) the operator and kopf use in a watched namespace.
NEEDED = [
    ("get", "featurerollouts.flagstage.io", ""),
    ("list", "featurerollouts.flagstage.io", ""),
    ("watch", "featurerollouts.flagstage.io", ""),
    ("patch", "featurerollouts.flagstage.io", ""),
    ("patch", "featurerollouts.flagstage.io", "status"),
    ("update", "featurerollouts.flagstage.io", "finalizers"),
    ("get", "configmaps", ""),
    ("create", "configmaps", ""),
    ("patch", "configmaps", ""),
    ("create", "events", ""),
    ("get", "deployments.apps", ""),
    ("patch", "deployments.apps", ""),
    ("get", "statefulsets.apps", ""),
    ("patch", "statefulsets.apps", ""),
]

# Things the operator never does; each would widen what a stolen token could do.
REFUSED = [
    ("get", "secrets", ""),
    ("list", "secrets", ""),
    ("create", "featurerollouts.flagstage.io", ""),
    ("delete", "featurerollouts.flagstage.io", ""),
    ("list", "configmaps", ""),
    ("delete", "configmaps", ""),
    ("create", "deployments.apps", ""),
    ("delete", "deployments.apps", ""),
    ("patch", "daemonsets.apps", ""),
    ("create", "pods", ""),
    ("create", "pods", "exec"),
    ("create", "serviceaccounts", "token"),
    ("create", "leases.coordination.k8s.io", ""),
    ("create", "rolebindings.rbac.authorization.k8s.io", ""),
]

CLUSTER_REFUSED = [
    ("list", "namespaces", ""),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
    ("list", "nodes", ""),
]


class Identity:
    """`kubectl auth can-i` as one ServiceAccount."""

    def __init__(self, plane: ControlPlane, namespace: str, name: str) -> None:
        self.plane = plane
        self.user = f"system:serviceaccount:{namespace}:{name}"

    def can(self, verb: str, resource: str, subresource: str = "", *, namespace: str = "") -> bool:
        args = ["auth", "can-i", verb, resource, f"--as={self.user}"]
        args.append(f"--namespace={namespace}" if namespace else "--all-namespaces")
        if subresource:
            args.append(f"--subresource={subresource}")
        answer = self.plane.kubectl(*args, check=False).stdout.strip()
        assert answer in {"yes", "no"}, f"can-i {' '.join(args)} answered {answer!r}"
        return answer == "yes"

    def wait_until_bound(self, namespace: str) -> None:
        # The authorizer learns of new bindings through a watch, a moment after they are stored.
        deadline = time.monotonic() + RBAC_SETTLE_SECONDS
        while not self.can("get", "configmaps", namespace=namespace):
            if time.monotonic() > deadline:
                pytest.fail(f"{self.user} was not bound after {RBAC_SETTLE_SECONDS:g}s")
            time.sleep(0.05)


def apply_chart_rbac(plane: ControlPlane, helm: Helm, namespace: str, *settings: str) -> Identity:
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    objects = helm.objects(release=release, namespace=namespace, settings=settings)
    rbac = [obj for obj in objects if obj["kind"] in RBAC_KINDS]
    plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    account = next(obj for obj in rbac if obj["kind"] == "ServiceAccount")
    return Identity(plane, namespace, account["metadata"]["name"])


def refusals(identity: Identity, checks: list[tuple[str, str, str]], namespace: str) -> list[str]:
    return [
        " ".join(check)
        for check in checks
        if identity.can(check[0], check[1], check[2], namespace=namespace)
    ]


def test_cluster_wide_operator_may_do_its_job_in_any_namespace_and_nothing_else(
    control_plane: ControlPlane, installed_crds: str, kube_namespace: str, helm: Helm
) -> None:
    elsewhere = ensure_namespace(control_plane, f"{kube_namespace[:50]}-other")
    operator = apply_chart_rbac(control_plane, helm, kube_namespace)
    operator.wait_until_bound(elsewhere)

    missing = [
        " ".join(check)
        for check in NEEDED
        if not operator.can(check[0], check[1], check[2], namespace=elsewhere)
    ]
    assert missing == []
    assert refusals(operator, REFUSED, elsewhere) == []
    assert refusals(operator, CLUSTER_REFUSED, "") == []


def test_namespaced_operator_may_act_only_in_its_watched_namespaces(
    control_plane: ControlPlane, installed_crds: str, kube_namespace: str, helm: Helm
) -> None:
    watched = ensure_namespace(control_plane, f"{kube_namespace[:50]}-watched")
    unwatched = ensure_namespace(control_plane, f"{kube_namespace[:50]}-unwatched")
    operator = apply_chart_rbac(
        control_plane, helm, kube_namespace, f"watchNamespaces={{{watched}}}"
    )
    operator.wait_until_bound(watched)

    missing = [
        " ".join(check)
        for check in NEEDED
        if not operator.can(check[0], check[1], check[2], namespace=watched)
    ]
    assert missing == []
    assert refusals(operator, REFUSED, watched) == []
    assert refusals(operator, NEEDED, unwatched) == []
    assert refusals(operator, NEEDED, kube_namespace) == []
    assert refusals(operator, CLUSTER_REFUSED, "") == []


def test_webhook_may_register_itself_and_touch_no_other_configuration(
    control_plane: ControlPlane, installed_crds: str, kube_namespace: str, helm: Helm
) -> None:
    watched = ensure_namespace(control_plane, f"{kube_namespace[:50]}-watched")
    operator = apply_chart_rbac(
        control_plane,
        helm,
        kube_namespace,
        "webhook.enabled=true",
        f"watchNamespaces={{{watched}}}",
    )
    operator.wait_until_bound(watched)
    configurations = "validatingwebhookconfigurations.admissionregistration.k8s.io"

    assert operator.can("create", configurations)
    assert operator.can("patch", f"{configurations}/flagstage.flagstage.io")
    assert not operator.can("patch", f"{configurations}/someone-elses")
    assert not operator.can("delete", f"{configurations}/flagstage.flagstage.io")
    assert not operator.can("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io")
    assert refusals(operator, CLUSTER_REFUSED, "") == []
