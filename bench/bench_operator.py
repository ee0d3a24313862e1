"""How fast the operator turns a new FeatureRollout into its ConfigMap, and how it copes with many.

Part one creates `--applies` rollouts one after another through the API and times, for each,
the gap between the create call and the ADDED event of its ConfigMap on a watch opened
beforehand. Part two creates `--bulk` rollouts at once from a few client threads and times
until every one of them reports `Ready=True`, then reads the operator process's peak resident
set size (VmHWM in /proc).

It brings its own cluster: a `ControlPlane` from the test suite (etcd and kube-apiserver on
loopback) with the CRD installed, and the operator as a subprocess with its default tick, the
way the operator tests run it. Nothing is left running afterwards, and its files are removed
unless the run failed.

    python bench/bench_operator.py [--applies N] [--bulk N] [--client-threads N]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
import yaml

REPO = Path(__file__).resolve().parents[1]
# The control-plane launcher lives in the test suite; the repository root makes it importable.
sys.path.insert(0, str(REPO))

from flagstage_operator.crd import CRD_NAME, CRD_PATH, PLURAL  # noqa: E402
from kubernetes import client, watch  # noqa: E402

from flagstage.model import API_GROUP, API_VERSION  # noqa: E402
from tests.controlplane.launcher import ControlPlane  # noqa: E402

EXAMPLE = REPO / "manifests" / "examples" / "six-week-rollout.yaml"
NAMESPACE = "bench"
STARTUP_TIMEOUT_SECONDS = 60.0
APPLY_TIMEOUT_SECONDS = 10.0
BULK_TIMEOUT_SECONDS = 600.0
WATCH_SECONDS = 3600
MIB = 1024 * 1024


def rollout(name: str) -> dict[str, Any]:
    """The six-week example under `name`, started now, with hour-long stages (none passes)."""
    manifest = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    manifest["metadata"] = {"name": name}
    manifest["spec"]["schedule"] = {
        "start": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stageDuration": "1h",
    }
    manifest["spec"]["target"].pop("configMap", None)
    return dict(manifest)


class Sightings:
    """A watch over one namespace noting when each object first met a condition."""

    def __init__(
        self,
        list_call: Callable[..., Any],
        args: Iterable[Any],
        name_if_met: Callable[[Any], str | None],
    ) -> None:
        self._list_call = list_call
        self._args = tuple(args)
        self._name_if_met = name_if_met
        self._seen: dict[str, float] = {}
        self._changed = threading.Condition()
        self._watch = watch.Watch()
        self._stopped = False

    def start(self) -> Sightings:
        listed = self._list_call(*self._args, limit=1)
        version = (
            listed["metadata"]["resourceVersion"]
            if isinstance(listed, dict)
            else listed.metadata.resource_version
        )
        threading.Thread(target=self._follow, args=(version,), daemon=True).start()
        return self

    def _follow(self, version: str) -> None:
        stream = self._watch.stream(
            self._list_call, *self._args, resource_version=version, timeout_seconds=WATCH_SECONDS
        )
        try:
            for event in stream:
                name = self._name_if_met(event["object"])
                if name is None:
                    continue
                with self._changed:
                    self._seen.setdefault(name, time.perf_counter())
                    self._changed.notify_all()
        except urllib3.exceptions.HTTPError:
            # A stopped watch ends when the server closes its stream, possibly abruptly.
            if not self._stopped:
                raise

    def wait(self, names: Iterable[str], timeout: float) -> dict[str, float]:
        """When each of `names` was first seen; raises TimeoutError naming how many are left."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        with self._changed:
            while not wanted <= self._seen.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = len(wanted - self._seen.keys())
                    raise TimeoutError(f"{missing} of {len(wanted)} not seen after {timeout:g}s")
                self._changed.wait(left)
            return {name: self._seen[name] for name in wanted}

    def stop(self) -> None:
        self._stopped = True
        self._watch.stop()


def _config_map_name(config_map: Any) -> str | None:
    return str(config_map.metadata.name)


def _ready_name(body: Any) -> str | None:
    conditions = (body.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return str(body["metadata"]["name"]) if ready else None


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_operator(plane: ControlPlane, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
    command = [
        sys.executable,
        "-m",
        "flagstage_operator",
        "--namespace",
        NAMESPACE,
        "--bind-address",
        "127.0.0.1",
        "--health-port",
        "0",
        "--metrics-port",
        "0",
    ]
    with log_path.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def measure_applies(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, applies: int
) -> list[float]:
    """Seconds from each create call to its ConfigMap's ADDED event, one rollout at a time."""
    config_maps = Sightings(core.list_namespaced_config_map, [NAMESPACE], _config_map_name).start()
    delays = []
    try:
        for index in range(applies):
            name = f"apply-{index:03d}"
            began = time.perf_counter()
            custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, NAMESPACE, PLURAL, rollout(name)
            )
            seen = config_maps.wait([f"{name}-features"], APPLY_TIMEOUT_SECONDS)
            delays.append(seen[f"{name}-features"] - began)
    finally:
        config_maps.stop()
    return delays


def measure_bulk(custom: client.CustomObjectsApi, count: int, threads: int) -> tuple[float, float]:
    """Seconds for the create calls alone, and until every rollout is Ready."""
    ready = Sightings(
        custom.list_namespaced_custom_object,
        [API_GROUP, API_VERSION, NAMESPACE, PLURAL],
        _ready_name,
    ).start()
    names = [f"bulk-{index:04d}" for index in range(count)]

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(
            API_GROUP, API_VERSION, NAMESPACE, PLURAL, rollout(name)
        )

    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(create, names))
        created = time.perf_counter() - began
        seen = ready.wait(names, BULK_TIMEOUT_SECONDS)
    finally:
        ready.stop()
    return created, max(seen.values()) - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--applies", type=int, default=100, help="rollouts timed one by one")
    parser.add_argument("--bulk", type=int, default=1000, help="rollouts created at once")
    parser.add_argument("--client-threads", type=int, default=8, help="threads creating them")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="flagstage-bench-operator-"))
    plane = ControlPlane(workdir=workdir / "controlplane").start()
    operator: subprocess.Popen[bytes] | None = None
    succeeded = False
    try:
        plane.kubectl("apply", "--server-side", "-f", str(CRD_PATH))
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
        plane.kubectl("create", "namespace", NAMESPACE)
        operator = start_operator(plane, workdir / "operator.log")

        with plane.api_client() as api:
            api.configuration.connection_pool_maxsize = args.client_threads
            custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
            # The first rollout also waits for the operator to start; it is not counted.
            warm_up = Sightings(core.list_namespaced_config_map, [NAMESPACE], _config_map_name)
            warm_up.start()
            custom.create_namespaced_custom_object(
                API_GROUP, API_VERSION, NAMESPACE, PLURAL, rollout("warm-up")
            )
            warm_up.wait(["warm-up-features"], STARTUP_TIMEOUT_SECONDS)
            warm_up.stop()

            delays = measure_applies(custom, core, args.applies)
            rss_before = peak_rss_bytes(operator.pid)
            created, all_ready = measure_bulk(custom, args.bulk, args.client_threads)
            rss_after = peak_rss_bytes(operator.pid)
        succeeded = True
    finally:
        if operator is not None:
            operator.terminate()
            operator.wait(30)
        plane.stop()
        if succeeded:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"operator log and control-plane files kept in {workdir}", file=sys.stderr)

    milliseconds = [delay * 1000 for delay in delays]
    print(
        f"apply -> ConfigMap, {len(delays)} rollouts one at a time: "
        f"p50 {statistics.median(milliseconds):.0f} ms, "
        f"p99 {percentile(milliseconds, 0.99):.0f} ms, max {max(milliseconds):.0f} ms"
    )
    print(
        f"{args.bulk} rollouts at once: created in {created:.1f} s, all Ready after "
        f"{all_ready:.1f} s; operator peak RSS {rss_before / MIB:.0f} MiB before, "
        f"{rss_after / MIB:.0f} MiB after"
    )


if __name__ == "__main__":
    main()
