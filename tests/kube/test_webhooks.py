"""The API server calls an admission webhook served on loopback by a Python process.

The operator's webhook will run exactly like this in the tests: a `url:` on 127.0.0.1 and a
serving certificate from the control plane's CA. No egress selector or aggregator routing is
involved; a webhook given by URL is dialled directly.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.controlplane.launcher import ControlPlane

pytestmark = pytest.mark.kube

WEBHOOK_NAME = "refuse.smoke.flagstage.test"
REFUSAL = "smoke webhook refuses every ConfigMap"
SETTLE_SECONDS = 10.0


class _RefusingHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {
                "uid": review["request"]["uid"],
                "allowed": False,
                "status": {"code": 403, "message": REFUSAL},
            },
        }
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # The API server's own errors say enough when a call fails.


@pytest.fixture
def refusing_webhook(control_plane: ControlPlane) -> Iterator[int]:
    cert, key = control_plane.issue_serving_certificate("smoke-webhook")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingHandler)
    # The handshake happens in the handler thread, so one slow client cannot stall accept().
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_webhook_on_loopback_is_called_and_can_refuse(
    control_plane: ControlPlane, kube_namespace: str, refusing_webhook: int
) -> None:
    configuration = {
        "metadata": {"name": f"smoke-{kube_namespace}"},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "url": f"https://127.0.0.1:{refusing_webhook}/validate",
                    "caBundle": control_plane.ca_bundle,
                },
                "rules": [
                    {
                        "operations": ["CREATE"],
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "resources": ["configmaps"],
                    }
                ],
                # Only this test's namespace: the rest of the suite must not see the webhook.
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": kube_namespace}
                },
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "failurePolicy": "Fail",
                "timeoutSeconds": 5,
            }
        ],
    }
    with control_plane.api_client() as api:
        admission = client.AdmissionregistrationV1Api(api)
        core = client.CoreV1Api(api)
        admission.create_validating_webhook_configuration(configuration)
        try:
            # The API server picks up a new webhook configuration through a watch.
            deadline = time.monotonic() + SETTLE_SECONDS
            refused = None
            while refused is None and time.monotonic() < deadline:
                name = f"cm-{uuid.uuid4().hex[:8]}"
                body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name))
                try:
                    core.create_namespaced_config_map(kube_namespace, body)
                except ApiException as err:
                    refused = err
                else:
                    time.sleep(0.1)
        finally:
            admission.delete_validating_webhook_configuration(f"smoke-{kube_namespace}")

    assert refused is not None, "the webhook was never called"
    assert refused.status == 403
    assert REFUSAL in refused.body
