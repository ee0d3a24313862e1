"""kopf, the operator framework, logs in with the written kubeconfig and handles events."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.controlplane.launcher import ControlPlane

pytestmark = pytest.mark.kube

HANDLED_TIMEOUT_SECONDS = 30.0
ANNOTATION = "smoke.flagstage.test/seen-by"

OPERATOR = textwrap.dedent(
    f"""
    import kopf

    @kopf.on.create("configmaps")
    def mark(patch, **_):
        patch.metadata.annotations["{ANNOTATION}"] = "kopf"
    """
)


def test_kopf_handles_an_event_with_the_written_kubeconfig(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> None:
    operator = tmp_path / "operator.py"
    operator.write_text(OPERATOR, encoding="utf-8")
    log_path = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    command = [sys.executable, "-m", "kopf", "run", "--standalone"]
    command += [f"--namespace={kube_namespace}", str(operator)]

    with log_path.open("wb") as log:
        kopf = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with control_plane.api_client() as api:
            core = client.CoreV1Api(api)
            body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"))
            core.create_namespaced_config_map(kube_namespace, body)

            deadline = time.monotonic() + HANDLED_TIMEOUT_SECONDS
            annotations: dict[str, str] = {}
            while ANNOTATION not in annotations and time.monotonic() < deadline:
                assert kopf.poll() is None, log_path.read_text(encoding="utf-8")
                time.sleep(0.2)
                stored = core.read_namespaced_config_map("watched", kube_namespace)
                annotations = stored.metadata.annotations or {}
    finally:
        kopf.terminate()
        try:
            kopf.wait(10)
        except subprocess.TimeoutExpired:
            kopf.kill()
            kopf.wait()

    assert annotations.get(ANNOTATION) == "kopf", log_path.read_text(encoding="utf-8")
