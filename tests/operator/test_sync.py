"""`flagstage sync` against the real API server: it follows one ConfigMap into a directory."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flagstage_app.toggles import LiveToggles
from flagstage_operator.syncing import data_hash
from kubernetes import client

from flagstage.projection import read_projection
from flagstage.rendering import render_config
from flagstage.validation import parse_rollout
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import REPO, load_example, wait_for

FOLLOW_BOUND_SECONDS = 1.0
EXIT_TIMEOUT_SECONDS = 10.0


class SyncProcess:
    """`flagstage sync` as a child process, its log in a file."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flagstage.cli", "sync", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float = EXIT_TIMEOUT_SECONDS) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def core(control_plane: ControlPlane) -> Iterator[client.CoreV1Api]:
    with control_plane.api_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def start_sync(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> Iterator[Callable[..., SyncProcess]]:
    started: list[SyncProcess] = []

    def start(*extra: str, kubeconfig: Path | None = None) -> SyncProcess:
        args = [
            "--namespace",
            kube_namespace,
            "--name",
            "features",
            "--dir",
            str(tmp_path / "features"),
            "--kubeconfig",
            str(kubeconfig or control_plane.kubeconfig),
            *extra,
        ]
        process = SyncProcess(args, tmp_path / f"sync-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def config_map(data: dict[str, str], binary: dict[str, str] | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="features"), data=data, binary_data=binary
    )


def projected(directory: Path) -> dict[str, bytes]:
    return read_projection(directory)[1]


def as_bytes(data: dict[str, str]) -> dict[str, bytes]:
    return {key: value.encode() for key, value in data.items()}


def wait_projected(directory: Path, data: dict[str, str], *, timeout: float) -> float:
    """Seconds until `directory` holds exactly `data`; fails after `timeout`."""
    started = time.monotonic()
    wait_for(
        f"{directory} to hold {data}",
        lambda: projected(directory) == as_bytes(data),
        timeout=timeout,
        interval=0.01,
    )
    return time.monotonic() - started


def test_once_writes_data_and_binary_data_and_exits(
    core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
    start_sync: Callable[..., SyncProcess],
) -> None:
    core.create_namespaced_config_map(
        kube_namespace, config_map({"features.json": "{}"}, {"logo.bin": "AAEC"})
    )
    sync = start_sync("--once")

    assert sync.wait() == 0, sync.log()
    directory = tmp_path / "features"
    files = projected(directory)
    assert files == {"features.json": b"{}", "logo.bin": b"\x00\x01\x02"}
    assert f"synced ConfigMap {kube_namespace}/features version " in sync.log()
    assert f"(hash {data_hash(files)}) to {directory}" in sync.log()


def test_once_without_the_config_map_fails_naming_it(
    kube_namespace: str, start_sync: Callable[..., SyncProcess]
) -> None:
    sync = start_sync("--once")
    assert sync.wait() == 1
    assert f"error: ConfigMap {kube_namespace}/features not found" in sync.log()


def test_the_directory_follows_updates_deletion_and_recreation(
    core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
    start_sync: Callable[..., SyncProcess],
) -> None:
    directory = tmp_path / "features"
    first = {"features.json": '{"v": 1}', "FEATURE_A": "true"}
    core.create_namespaced_config_map(kube_namespace, config_map(first))
    sync = start_sync()
    wait_projected(directory, first, timeout=15)

    second = {"features.json": '{"v": 2}', "FEATURE_B": "true"}
    core.replace_namespaced_config_map("features", kube_namespace, config_map(second))
    assert wait_projected(directory, second, timeout=5) < FOLLOW_BOUND_SECONDS

    # A deleted ConfigMap keeps its last version in place, like a mounted volume.
    core.delete_namespaced_config_map("features", kube_namespace)
    wait_for("the deletion to be logged", lambda: "was deleted" in sync.log())
    assert projected(directory) == as_bytes(second)

    third = {"features.json": '{"v": 3}'}
    core.create_namespaced_config_map(kube_namespace, config_map(third))
    assert wait_projected(directory, third, timeout=5) < FOLLOW_BOUND_SECONDS

    sync.process.send_signal(signal.SIGTERM)
    assert sync.wait() == 0, sync.log()
    assert f"stopped syncing ConfigMap {kube_namespace}/features" in sync.log()
    assert "Traceback" not in sync.log()


def test_an_unchanged_config_map_is_not_written_again(
    core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
    start_sync: Callable[..., SyncProcess],
) -> None:
    directory = tmp_path / "features"
    data = {"features.json": "{}"}
    core.create_namespaced_config_map(kube_namespace, config_map(data))
    sync = start_sync("--resync-seconds", "1")
    wait_projected(directory, data, timeout=15)
    version = read_projection(directory)[0]

    # A label is an update of the object, not of its data; resyncs re-read the same data.
    core.patch_namespaced_config_map(
        "features", kube_namespace, {"metadata": {"labels": {"touched": "yes"}}}
    )
    time.sleep(2.5)
    assert read_projection(directory)[0] == version
    assert sync.log().count("synced ConfigMap") == 1, sync.log()


def test_an_identity_without_rights_gets_a_clear_error(
    control_plane: ControlPlane, kube_namespace: str, start_sync: Callable[..., SyncProcess]
) -> None:
    nobody = control_plane.kubeconfig_for_user("nobody")
    sync = start_sync(kubeconfig=nobody)

    assert sync.wait() == 1, sync.log()
    log = sync.log()
    assert f"refused to let this identity list and watch ConfigMap {kube_namespace}/features" in (
        log
    )
    assert 'User "nobody" cannot list resource "configmaps"' in log
    assert "grant get, list and watch on configmaps" in log
    assert "Traceback" not in log


def test_the_app_serves_the_next_stage_within_a_second_of_the_config_map_changing(
    core: client.CoreV1Api,
    kube_namespace: str,
    tmp_path: Path,
    start_sync: Callable[..., SyncProcess],
) -> None:
    rollout = parse_rollout(load_example("six-week-rollout.yaml"))
    week_1, week_2 = (render_config(rollout, stage).data for stage in (0, 1))
    core.create_namespaced_config_map(kube_namespace, config_map(week_1))
    start_sync()
    toggles = LiveToggles(tmp_path / "features", env={}, poll_interval_seconds=30.0)
    toggles.start()
    try:
        wait_for("the app at week-1", lambda: toggles.current.stage == "week-1", timeout=15)
        assert not toggles.current.is_enabled("temporal_analysis", "acme")

        core.replace_namespaced_config_map("features", kube_namespace, config_map(week_2))
        started = time.monotonic()
        wait_for(
            "the app at week-2",
            lambda: toggles.current.stage == "week-2",
            timeout=5,
            interval=0.01,
        )
        assert time.monotonic() - started < FOLLOW_BOUND_SECONDS
        assert toggles.current.is_enabled("temporal_analysis", "acme")
    finally:
        toggles.stop()
