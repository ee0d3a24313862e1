"""The chart's ServiceAccounts may do what their pods do, and nothing else.

The chart's RBAC objects are applied for real, then `kubectl auth can-i --as` asks the API
server's own authorizer, the same one that will judge the operator's calls. Then the code
itself runs with nothing but a ServiceAccount's token: the operator must reconcile a rollout
all the way to a rolled workload, leader election must take its Lease, and the app's sync
sidecar must follow its ConfigMap.
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
from flagstage_operator.leadership import Leadership
from kubernetes import config

from tests.controlplane.launcher import ControlPlane
from tests.delivery.conftest import CHART, REPO, Helm, ensure_namespace, find_object

RBAC_KINDS = frozenset(
    {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
)
RBAC_SETTLE_SECONDS = 5.0
READY_TIMEOUT_SECONDS = 30.0
SYNC_TIMEOUT_SECONDS = 15.0
EXAMPLE = REPO / "manifests" / "examples" / "six-week-rollout.yaml"
LEADER_ELECTION_VALUES = CHART / "ci" / "leader-election-values.yaml"
SYNC_SIDECAR_VALUES = CHART / "ci" / "with-sync-sidecar-values.yaml"
LEASES = "leases.coordination.k8s.io"
LEASE_VERBS = ["get", "list", "watch", "create", "update", "patch", "delete"]

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

# What the app's sync sidecar never does, besides writing its own ConfigMap.
SYNC_REFUSED = [
    ("get", "configmaps/someone-elses", ""),
    ("list", "configmaps", ""),
    ("create", "configmaps", ""),
    ("get", "secrets", ""),
    ("list", "secrets", ""),
    ("list", "pods", ""),
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

    def wait_until_bound(self, namespace: str, resource: str = "configmaps") -> None:
        # The authorizer learns of new bindings through a watch, a moment after they are stored.
        deadline = time.monotonic() + RBAC_SETTLE_SECONDS
        while not self.can("get", resource, namespace=namespace):
            if time.monotonic() > deadline:
                pytest.fail(f"{self.user} was not bound after {RBAC_SETTLE_SECONDS:g}s")
            time.sleep(0.05)


def apply_chart_objects(
    plane: ControlPlane,
    helm: Helm,
    namespace: str,
    *settings: str,
    values: tuple[Path, ...] = (),
) -> list[dict[str, Any]]:
    """Render a new release into `namespace`, apply its RBAC objects, and return them all."""
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    objects = helm.objects(release=release, namespace=namespace, values=values, settings=settings)
    rbac = [obj for obj in objects if obj["kind"] in RBAC_KINDS]
    plane.kubectl("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all(rbac))
    return objects


def account_of(
    plane: ControlPlane, objects: list[dict[str, Any]], namespace: str, component: str
) -> Identity:
    """The ServiceAccount of the release's `component` (operator or app)."""
    account = next(
        obj
        for obj in objects
        if obj["kind"] == "ServiceAccount"
        and obj["metadata"]["labels"]["app.kubernetes.io/component"] == component
    )
    return Identity(plane, namespace, account["metadata"]["name"])


def apply_chart_rbac(plane: ControlPlane, helm: Helm, namespace: str, *settings: str) -> Identity:
    objects = apply_chart_objects(plane, helm, namespace, *settings)
    return account_of(plane, objects, namespace, "operator")


def flag_value(args: list[str], flag: str) -> str:
    return next(arg.removeprefix(f"{flag}=") for arg in args if arg.startswith(f"{flag}="))


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


def test_leader_election_may_hold_its_own_lease_in_the_release_namespace_only(
    control_plane: ControlPlane, installed_crds: str, kube_namespace: str, helm: Helm
) -> None:
    elsewhere = ensure_namespace(control_plane, f"{kube_namespace[:50]}-other")
    objects = apply_chart_objects(
        control_plane, helm, kube_namespace, values=(LEADER_ELECTION_VALUES,)
    )
    operator = account_of(control_plane, objects, kube_namespace, "operator")
    deployment = find_object(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    lease_name = flag_value(args, "--lease-name")
    lease = f"{LEASES}/{lease_name}"
    operator.wait_until_bound(kube_namespace, lease)

    assert flag_value(args, "--lease-namespace") == kube_namespace
    assert operator.can("create", LEASES, namespace=kube_namespace)
    assert operator.can("get", lease, namespace=kube_namespace)
    assert operator.can("update", lease, namespace=kube_namespace)
    unneeded = [
        (verb, lease, "") for verb in LEASE_VERBS if verb not in {"get", "create", "update"}
    ]
    assert refusals(operator, unneeded, kube_namespace) == []
    # Another controller's Lease in the same namespace stays out of reach.
    others = [(verb, f"{LEASES}/someone-elses", "") for verb in LEASE_VERBS if verb != "create"]
    assert refusals(operator, others, kube_namespace) == []
    anywhere_else = [(verb, LEASES, "") for verb in LEASE_VERBS]
    anywhere_else += [(verb, lease, "") for verb in LEASE_VERBS]
    assert refusals(operator, anywhere_else, elsewhere) == []

    # The election itself, with nothing but the ServiceAccount's token: one replica creates
    # and renews the Lease, a second one reads it and stands by.
    kubeconfig = control_plane.kubeconfig_for_service_account(
        kube_namespace, operator.name, create=False
    )
    seconds = float(flag_value(args, "--lease-seconds"))
    api = config.new_client_from_config(str(kubeconfig))  # type: ignore[no-untyped-call]

    def replica(identity: str) -> Leadership:
        return Leadership(
            api, name=lease_name, namespace=kube_namespace, identity=identity, lease_seconds=seconds
        )

    with api:
        holder, standby = replica("replica-a"), replica("replica-b")
        assert holder.try_once()
        assert holder.try_once()
        assert not standby.try_once()


def test_without_leader_election_the_operator_may_not_touch_leases(
    control_plane: ControlPlane, installed_crds: str, kube_namespace: str, helm: Helm
) -> None:
    elsewhere = ensure_namespace(control_plane, f"{kube_namespace[:50]}-other")
    operator = apply_chart_rbac(control_plane, helm, kube_namespace)
    operator.wait_until_bound(elsewhere)
    # Any Lease, and the one the chart would name had leader election been on.
    leases = [
        (verb, resource, "")
        for verb in LEASE_VERBS
        for resource in (LEASES, f"{LEASES}/{operator.name}")
    ]

    assert refusals(operator, leases, kube_namespace) == []
    assert refusals(operator, leases, elsewhere) == []


@contextlib.contextmanager
def running_sync(command: list[str], kubeconfig: Path, log_path: Path) -> Iterator[Path]:
    """`command` (a `flagstage sync`), authenticated by `kubeconfig`; yields its log."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    # Inside a pod the command would prefer the pod's own ServiceAccount to $KUBECONFIG.
    env.pop("KUBERNETES_SERVICE_HOST", None)
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


def test_app_sync_sidecar_may_read_its_config_map_and_nothing_else(
    control_plane: ControlPlane,
    installed_crds: str,
    kube_namespace: str,
    helm: Helm,
    tmp_path: Path,
) -> None:
    elsewhere = ensure_namespace(control_plane, f"{kube_namespace[:50]}-other")
    objects = apply_chart_objects(
        control_plane, helm, kube_namespace, values=(SYNC_SIDECAR_VALUES,)
    )
    app = account_of(control_plane, objects, kube_namespace, "app")
    pod = find_object(objects, "Deployment", app.name)["spec"]["template"]["spec"]
    sidecar = next(container for container in pod["containers"] if container["name"] == "sync")
    name = flag_value(sidecar["command"], "--name")
    config_map = f"configmaps/{name}"
    app.wait_until_bound(kube_namespace, config_map)

    assert [
        verb
        for verb in ("get", "list", "watch")
        if not app.can(verb, config_map, namespace=kube_namespace)
    ] == []
    writes = [(verb, config_map, "") for verb in ("update", "patch", "delete")]
    assert refusals(app, SYNC_REFUSED + writes, kube_namespace) == []
    assert refusals(app, [("get", config_map, "")], elsewhere) == []

    # The sidecar's own command, with nothing but the ServiceAccount's token, lists and
    # watches the ConfigMap narrowed to its name and writes what it holds.
    kubeconfig = control_plane.kubeconfig_for_service_account(
        kube_namespace, app.name, create=False
    )
    directory = tmp_path / "features"
    flagstage = Path(sys.executable).parent / sidecar["command"][0]
    command = [str(flagstage), *sidecar["command"][1:]]
    command = [arg for arg in command if not arg.startswith("--dir=")] + [f"--dir={directory}"]
    with running_sync(command, kubeconfig, tmp_path / "sync.log") as log:
        control_plane.kubectl(
            "create",
            "configmap",
            name,
            f"--namespace={kube_namespace}",
            '--from-literal=features.json={"stage": "week-1"}',
        )
        deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
        synced = directory / "features.json"
        while not synced.is_file():
            if time.monotonic() > deadline:
                log_text = log.read_text(encoding="utf-8", errors="replace")
                pytest.fail(f"ConfigMap {name} was not synced in time; the sync's log:\n{log_text}")
            time.sleep(0.1)

    assert json.loads(synced.read_text(encoding="utf-8")) == {"stage": "week-1"}
    assert "Forbidden" not in log.read_text(encoding="utf-8")
