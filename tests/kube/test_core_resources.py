"""Built-in resources round-trip through the real API server and etcd."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.controlplane.launcher import ControlPlane

pytestmark = pytest.mark.kube


def test_a_namespace_is_created_and_listed(control_plane: ControlPlane) -> None:
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="smoke-ns")))

        names = {ns.metadata.name for ns in core.list_namespace().items}

    assert {"smoke-ns", "default", "kube-system"} <= names


def test_a_config_map_keeps_its_data(control_plane: ControlPlane, kube_namespace: str) -> None:
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="features"),
        data={"FEATURE_NEW_CHARTS": "true", "features.json": '{"schema": 1}'},
    )
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map(kube_namespace, body)

        stored = core.read_namespaced_config_map("features", kube_namespace)

    assert stored.data == {"FEATURE_NEW_CHARTS": "true", "features.json": '{"schema": 1}'}
    assert stored.metadata.resource_version


def test_a_deployment_template_patch_bumps_its_generation(
    control_plane: ControlPlane, kube_namespace: str
) -> None:
    labels = {"app": "insights"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="insights"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="registry.invalid/app:1")]
                ),
            ),
        ),
    )
    # The same kind of patch a Rolling reload strategy applies to a workload.
    patch = {"spec": {"template": {"metadata": {"annotations": {"flagstage.io/config": "abc"}}}}}

    with control_plane.api_client() as api:
        apps = client.AppsV1Api(api)
        created = apps.create_namespaced_deployment(kube_namespace, deployment)
        patched = apps.patch_namespaced_deployment("insights", kube_namespace, patch)

    assert created.metadata.generation == 1
    assert patched.metadata.generation == 2
    assert patched.spec.template.metadata.annotations == {"flagstage.io/config": "abc"}
