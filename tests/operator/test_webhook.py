"""The admission webhook refuses what only the core can check, at `kubectl apply` time."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from flagstage_operator.webhook import WebhookOptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, OperatorProcess, free_port, load_example, wait_for

CONFIGURATION = WebhookOptions(port=0, certfile="", pkeyfile="").configuration


@pytest.fixture
def webhook(
    control_plane: ControlPlane, start_operator: Callable[..., OperatorProcess]
) -> Iterator[OperatorProcess]:
    cert, key = control_plane.issue_serving_certificate("flagstage-webhook")
    operator = start_operator(
        extra_args=[
            "--webhook-port",
            str(free_port()),
            "--webhook-cert",
            str(cert),
            "--webhook-key",
            str(key),
            "--webhook-ca",
            str(control_plane.ca_cert_path),
        ]
    )
    with control_plane.api_client() as api:
        admission = client.AdmissionregistrationV1Api(api)
        wait_for(
            "the webhook configuration",
            lambda: admission.read_validating_webhook_configuration(CONFIGURATION),
        )
        yield operator
        try:
            admission.delete_validating_webhook_configuration(CONFIGURATION)
        except ApiException as err:
            if err.status != 404:
                raise


def _apply(plane: ControlPlane, namespace: str, manifest: dict[str, Any]) -> tuple[int, str]:
    result = plane.kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    return result.returncode, result.stderr


def test_kubectl_apply_is_refused_with_the_cores_words(
    control_plane: ControlPlane, cluster: Cluster, webhook: OperatorProcess
) -> None:
    rollout = copy.deepcopy(load_example("six-week-rollout.yaml"))
    rollout["spec"]["features"][1]["requires"] = ["multi_format_support"]
    code, errors = _apply(control_plane, cluster.namespace, rollout)
    assert code != 0
    assert "denied the request" in errors
    assert "dependency cycle format_detection -> multi_format_support -> format_detection" in errors


def test_an_update_is_judged_on_the_new_object(
    control_plane: ControlPlane, cluster: Cluster, webhook: OperatorProcess
) -> None:
    rollout = copy.deepcopy(load_example("six-week-rollout.yaml"))
    code, errors = _apply(control_plane, cluster.namespace, rollout)
    assert code == 0, errors

    # week-4 would turn enhanced_upload on while its requirement is still off.
    rollout["spec"]["stages"][2]["enable"] = []
    code, errors = _apply(control_plane, cluster.namespace, rollout)
    assert code != 0
    assert "stage 'week-4' leaves 'enhanced_upload' on" in errors
    stored = cluster.rollout("insights-api")
    assert stored["spec"]["stages"][2]["enable"] == ["format_detection"]
    assert stored["metadata"]["generation"] == 1
