"""kubectl works with the written kubeconfig, and is a version the server supports."""

from __future__ import annotations

import json
import time

import pytest

from tests.controlplane.launcher import ControlPlane

pytestmark = pytest.mark.kube

# kubectl is supported within one minor version of the API server, either way.
KUBECTL_SKEW_MINORS = 1
RBAC_SETTLE_SECONDS = 5.0

CONFIG_MAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
data:
  FEATURE_EXPORT: "false"
"""

READER_ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: config-reader
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: operator-reads-config
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: config-reader
subjects:
  - kind: ServiceAccount
    name: operator
"""


def _minor(version: dict[str, str]) -> int:
    # Some builds report the minor as "37+".
    return int(version["minor"].rstrip("+"))


def test_kubectl_is_within_the_supported_skew_of_the_server(control_plane: ControlPlane) -> None:
    versions = json.loads(control_plane.kubectl("version", "--output=json").stdout)

    skew = abs(_minor(versions["clientVersion"]) - _minor(versions["serverVersion"]))

    assert versions["serverVersion"]["major"] == "1"
    assert skew <= KUBECTL_SKEW_MINORS, versions


def test_kubectl_applies_and_gets_with_the_written_kubeconfig(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    control_plane.kubectl("apply", f"--namespace={kube_namespace}", "-f", "-", stdin=CONFIG_MAP)

    got = control_plane.kubectl(
        "get", "configmap", "applied", f"--namespace={kube_namespace}", "--output=json"
    )

    assert json.loads(got.stdout)["data"] == {"FEATURE_EXPORT": "false"}


def test_kubectl_auth_can_i_answers_for_a_service_account(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    service_account = f"system:serviceaccount:{kube_namespace}:operator"

    def can_i(verb: str, resource: str) -> str:
        result = control_plane.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            f"--namespace={kube_namespace}",
            f"--as={service_account}",
            check=False,
        )
        return result.stdout.strip()

    before = can_i("list", "configmaps")
    control_plane.kubectl("apply", f"--namespace={kube_namespace}", "-f", "-", stdin=READER_ROLE)
    # The authorizer learns of new RBAC objects through a watch, a moment after they are stored.
    deadline = time.monotonic() + RBAC_SETTLE_SECONDS
    while can_i("list", "configmaps") != "yes" and time.monotonic() < deadline:
        time.sleep(0.05)

    assert before == "no"
    assert can_i("list", "configmaps") == "yes"
    assert can_i("create", "configmaps") == "no"
    assert can_i("list", "secrets") == "no"
