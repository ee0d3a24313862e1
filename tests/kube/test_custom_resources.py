"""A throwaway CRD is served, and its schema and CEL rules are enforced at create time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.launcher import ControlPlane

pytestmark = pytest.mark.kube

GROUP = "smoke.flagstage.test"
VERSION = "v1"
PLURAL = "gadgets"
ESTABLISH_TIMEOUT_SECONDS = 15.0

GADGET_SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "label": {"type": "string"},
            },
            "x-kubernetes-validations": [
                {
                    "rule": "self.size <= 10 || has(self.label)",
                    "message": "big gadgets need a label",
                }
            ],
        }
    },
}


def _gadget(name: str, spec: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Gadget",
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def gadget_crd(control_plane: ControlPlane) -> Iterator[str]:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": GADGET_SCHEMA},
                }
            ],
        },
    }
    with control_plane.api_client() as api:
        extensions = client.ApiextensionsV1Api(api)
        extensions.create_custom_resource_definition(crd)

        # A CRD is stored at once but served only when its names are accepted.
        deadline = time.monotonic() + ESTABLISH_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            status = extensions.read_custom_resource_definition(f"{PLURAL}.{GROUP}").status
            conditions = {c.type: c.status for c in (status.conditions or [])}
            if conditions.get("Established") == "True":
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"CRD {PLURAL}.{GROUP} was not established: {conditions}")

    yield f"{PLURAL}.{GROUP}"

    with control_plane.api_client() as api:
        client.ApiextensionsV1Api(api).delete_custom_resource_definition(f"{PLURAL}.{GROUP}")


def test_a_custom_resource_of_the_crd_is_stored(
    control_plane: ControlPlane, gadget_crd: str, kube_namespace: str
) -> None:
    with control_plane.api_client() as api:
        custom = client.CustomObjectsApi(api)
        custom.create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, _gadget("small", {"size": 3})
        )

        stored = custom.get_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "small"
        )

    assert stored["spec"] == {"size": 3}


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"size": 0}, "should be greater than or equal to 1"),
        ({"size": "three"}, "must be of type integer"),
        ({"size": 11}, "big gadgets need a label"),
    ],
)
def test_a_custom_resource_that_breaks_the_schema_is_refused(
    control_plane: ControlPlane,
    gadget_crd: str,
    kube_namespace: str,
    spec: dict[str, object],
    reason: str,
) -> None:
    with control_plane.api_client() as api:
        custom = client.CustomObjectsApi(api)
        with pytest.raises(ApiException) as refused:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, kube_namespace, PLURAL, _gadget("bad", spec)
            )

    assert refused.value.status == 422
    assert reason in refused.value.body
