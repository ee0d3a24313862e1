"""The operator's ServiceAccount may do what the operator does, and nothing else.

The chart's RBAC objects are applied for real, then `kubectl auth can-i --as` asks the API
server's own authorizer, the same one that will judge the operator's calls. Last, the operator
itself runs with the ServiceAccount's token and nothing else, and must reconcile a rollout
all the way to a rolled workload.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane.launcher import ControlPlane
from tests.delivery.conftest import REPO, Helm, ensure_namespace

RBAC_KINDS = frozenset(
    {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)
RBAC_SETTLE_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 30.0
EXAMPLE = REPO / "manifests" / "examples" / "six-week-rollout.yaml"

# The workload the example rollout reloads; without a controller-manager it never runs a pod,
# but the operator's patch of its pod template is stored like any other.
WORKLOAD = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: insights-api
spec:
  selector:
    matchLabels: {app: insights-api}
  template:
    metadata:
      labels: {app: insights-api}
    spec:
      containers:
        - name: api
          image: insights-api:1
"""

# (verb, resource, subresource) the operator and kopf use in a watched namespace.
NEEDED = [
    ("get", "featurerollouts.flagstage.io", ""),
    ("list", "featurerollouts.flagstage.io", ""),
    ("watch", "featurerollouts.flagstage.io", ""),
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
    ("patch", "featurerollouts.flagstage.io", ""),
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
        self.name = name
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_operator(kubeconfig: Path, namespace: str, log_path: Path) -> Iterator[Path]:
    """`flagstage-operator` for `namespace`, authenticated by `kubeconfig`; yields its log."""
    command = [
        sys.executable,
        "-m",
        "flagstage_operator",
        f"--namespace={namespace}",
        "--bind-address=127.0.0.1",
        f"--health-port={free_port()}",
        f"--metrics-port={free_port()}",
        "--tick-seconds=0.5",
    ]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_ready(plane: ControlPlane, namespace: str, name: str, log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        got = plane.kubectl(
            "get", "featurerollout", name, f"--namespace={namespace}", "--output=json"
        )
        rollout: dict[str, Any] = json.loads(got.stdout)
        conditions = rollout.get("status", {}).get("conditions", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            return rollout
        time.sleep(0.2)
    log_text = log.read_text(encoding="utf-8", errors="replace")
    pytest.fail(
        f"rollout {namespace}/{name} was not Ready in time; the operator's log:\n{log_text}"
    )


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


def test_operator_reconciles_a_rollout_with_nothing_but_the_charts_rbac(
    control_plane: ControlPlane,
    installed_crds: str,
    kube_namespace: str,
    helm: Helm,
    tmp_path: Path,
) -> None:
    watched = ensure_namespace(control_plane, f"{kube_namespace[:50]}-watched", restricted=False)
    operator = apply_chart_rbac(
        control_plane, helm, kube_namespace, f"watchNamespaces={{{watched}}}"
    )
    operator.wait_until_bound(watched)
    control_plane.kubectl("apply", f"--namespace={watched}", "-f", "-", stdin=WORKLOAD)
    rollout = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    rollout["spec"]["target"]["reloadStrategy"] = "Rolling"
    kubeconfig = control_plane.kubeconfig_for_service_account(
        kube_namespace, operator.name, create=False
    )

    with running_operator(kubeconfig, watched, tmp_path / "operator.log") as log:
        control_plane.kubectl(
            "apply", f"--namespace={watched}", "-f", "-", stdin=yaml.safe_dump(rollout)
        )
        ready = wait_for_ready(control_plane, watched, rollout["metadata"]["name"], log)

    workload = json.loads(
        control_plane.kubectl(
            "get", "deployment", "insights-api", f"--namespace={watched}", "--output=json"
        ).stdout
    )
    annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
    assert ready["status"]["configHash"] in annotations.values()
    control_plane.kubectl(
        "get", "configmap", rollout["spec"]["target"]["configMap"], f"--namespace={watched}"
    )
    assert "Forbidden" not in log.read_text(encoding="utf-8")
