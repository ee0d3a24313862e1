"""The operator's `/healthz` fails while it cannot hear from the API server, and recovers.

kopf answers the probe from the operator's event loop, which runs on while the watch is cut off;
the operator's own probe check makes it fail once the watch has not been shown current for the
threshold. The outage runs on a control plane of this module's own, since stopping the
session's would fail every other test.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane.launcher import STOP_TIMEOUT_SECONDS, ControlPlane
from tests.operator.conftest import Cluster, OperatorProcess, dedicated_control_plane, wait_for
from tests.reliability.operators import NAME, walking_rollout

pytestmark = [pytest.mark.kube, pytest.mark.slow]

NAMESPACE = "liveness"
STALE_SECONDS = 4.0
# kopf keeps a successful probe result for 10 s before asking the check again.
KOPF_PROBE_CACHE_SECONDS = 10.0
SLACK_SECONDS = 4.0


@pytest.fixture(scope="module")
def own_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    with dedicated_control_plane(request, NAMESPACE) as plane:
        yield plane


@pytest.fixture
def own_operator(own_plane: ControlPlane, tmp_path: Path) -> Iterator[OperatorProcess]:
    extra = [f"--liveness-stale-seconds={STALE_SECONDS:g}"]
    process = OperatorProcess(NAMESPACE, own_plane.kubeconfig, tmp_path / "operator.log", extra)
    try:
        yield process.start()
    finally:
        process.stop()


def health(operator: OperatorProcess) -> int:
    """The HTTP status of /healthz (0: nothing answered)."""
    url = f"http://127.0.0.1:{operator.health_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        err.close()
        return int(err.code)
    except OSError:
        return 0


def test_healthz_fails_while_the_api_server_is_gone_and_recovers_after(
    own_plane: ControlPlane, own_operator: OperatorProcess
) -> None:
    with own_plane.api_client() as api:
        cluster = Cluster(api, NAMESPACE)
        # Long stages: nothing happens, so only the heartbeat can show the watch current.
        cluster.create(walking_rollout(stages=2, stage_seconds=3600))
        cluster.wait_stage(NAME, "step-1")

    time.sleep(STALE_SECONDS * 2)
    assert health(own_operator) == 200, "a quiet operator with a live watch turned stale"

    # Stopping kube-apiserver can itself take up to the launcher's stop timeout: it drains
    # its connections first. The clock starts when it is asked to stop.
    stopping = time.monotonic()
    with own_plane.outage():
        wait_for(
            "/healthz to fail",
            lambda: health(own_operator) == 500,
            timeout=STALE_SECONDS + KOPF_PROBE_CACHE_SECONDS + SLACK_SECONDS,
        )
        failed_after = time.monotonic() - stopping
    assert failed_after >= STALE_SECONDS, "the probe failed before the threshold"
    assert failed_after <= STALE_SECONDS + KOPF_PROBE_CACHE_SECONDS + STOP_TIMEOUT_SECONDS

    wait_for("/healthz to recover", lambda: health(own_operator) == 200, timeout=30)
    assert "has not been shown current" in own_operator.log()
