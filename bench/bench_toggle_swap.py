"""How fast a toggle change published the kubelet's way is served, and whether swaps under load
ever hand a reader a broken configuration.

Part one publishes the example rollout at alternating stages with the kubelet's sequence and
times, for each, the gap between the rename of `..data` and the moment `LiveToggles.current`
carries the new config hash (the watcher wakes on inotify; the poll is set to 30 s so it never
helps). Part two swaps configs `--swaps` times while `--readers` threads evaluate every
feature for a few tenants against the snapshot they read once, and counts evaluations that do
not match the expected answers of that snapshot's hash.

    python bench/bench_toggle_swap.py [--latency-swaps N] [--swaps N] [--readers N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from flagstage_app.toggles import FEATURE_NAMES, LiveToggles
from flagstage_app.toggles.kubelet import publish

from flagstage.rendering import render_config
from flagstage.snapshot import Snapshot
from flagstage.validation import parse_rollout

EXAMPLE = Path(__file__).parents[1] / "manifests" / "examples" / "six-week-rollout.yaml"
STAGES = (1, 2, 3, 4, 5)
TENANTS = ("acme", "globex", "initech")
SWAP_TIMEOUT_SECONDS = 5.0


def rendered_stages() -> list[dict[str, str]]:
    rollout = parse_rollout(yaml.safe_load(EXAMPLE.read_text()))
    return [render_config(rollout, stage).data for stage in STAGES]


def hash_of(data: dict[str, str]) -> str:
    return str(json.loads(data["features.json"])["hash"])


def _has_hash(wanted: str) -> Callable[[Snapshot], bool]:
    return lambda snapshot: snapshot.config_hash == wanted


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_latency(root: Path, configs: list[dict[str, str]], swaps: int) -> list[float]:
    mount = root / "latency"
    publish(mount, configs[0])
    delays = []
    with LiveToggles(mount, env={}, poll_interval_seconds=30.0) as toggles:
        for n in range(1, swaps + 1):
            data = configs[n % len(configs)]
            wanted = hash_of(data)
            swapped_at = publish(mount, data).swapped_at
            while toggles.current.config_hash != wanted:
                if time.perf_counter() - swapped_at > SWAP_TIMEOUT_SECONDS:
                    raise SystemExit(f"swap {n} not picked up in {SWAP_TIMEOUT_SECONDS} s")
            delays.append(time.perf_counter() - swapped_at)
    return delays


def swap_under_load(
    root: Path, configs: list[dict[str, str]], swaps: int, readers: int
) -> tuple[int, int, float]:
    """(evaluations, failures, seconds) for `swaps` swaps with `readers` evaluating threads."""
    expected: dict[str, dict[str, dict[str, bool]]] = {}
    probe_dir = root / "probe"
    probe = LiveToggles(probe_dir, env={})
    for data in configs:
        publish(probe_dir, data)
        probe.check()
        snapshot = probe.current
        expected[str(snapshot.config_hash)] = {
            tenant: {name: snapshot.is_enabled(name, tenant) for name in FEATURE_NAMES}
            for tenant in TENANTS
        }

    mount = root / "load"
    publish(mount, configs[0])
    stop = threading.Event()
    counts = [0] * readers
    failures = [0] * readers

    with LiveToggles(mount, env={}, poll_interval_seconds=30.0) as toggles:

        def evaluate(index: int) -> None:
            while not stop.is_set():
                snapshot = toggles.current
                want = expected[str(snapshot.config_hash)]
                for tenant in TENANTS:
                    got = {name: snapshot.is_enabled(name, tenant) for name in FEATURE_NAMES}
                    failures[index] += got != want[tenant]
                counts[index] += 1
                time.sleep(0)

        threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(readers)]
        for thread in threads:
            thread.start()
        started = time.perf_counter()
        for n in range(1, swaps + 1):
            data = configs[n % len(configs)]
            wanted = hash_of(data)
            publish(mount, data)
            if not toggles.wait_for(_has_hash(wanted), SWAP_TIMEOUT_SECONDS):
                failures[0] += 1
        elapsed = time.perf_counter() - started
        stop.set()
        for thread in threads:
            thread.join()
        refused = toggles.status().refused_count
    return sum(counts), sum(failures) + refused, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-swaps", type=int, default=200)
    parser.add_argument("--swaps", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=4)
    args = parser.parse_args()

    configs = rendered_stages()
    with tempfile.TemporaryDirectory() as tmp:
        delays = measure_latency(Path(tmp), configs, args.latency_swaps)
        print(
            f"swap-to-served latency over {len(delays)} kubelet swaps: "
            f"p50 {statistics.median(delays) * 1e3:.2f} ms, "
            f"p99 {percentile(delays, 0.99) * 1e3:.2f} ms, max {max(delays) * 1e3:.2f} ms"
        )
        evaluations, failures, elapsed = swap_under_load(
            Path(tmp), configs, args.swaps, args.readers
        )
        print(
            f"{args.swaps} swaps under {args.readers} evaluating threads in {elapsed:.1f} s: "
            f"{evaluations} snapshot evaluations, {failures} failures"
        )
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
