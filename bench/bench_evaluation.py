"""How long `Snapshot.is_enabled` takes per call, the price every request pays per toggle.

Calls are timed in batches (one `perf_counter_ns` pair per batch, so the clock's own cost is
spread thin); the per-call figure of each batch gives the median and the 99th percentile.
Cases: a feature on for everyone, a feature on for a percentage of tenants with a realistic
working set of tenants (answers remembered), and the same with a new tenant on every call.

    python bench/bench_evaluation.py [--batches N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable

from flagstage.snapshot import Snapshot
from flagstage.state import EVERYONE, NOBODY, FeatureState, Reach

TARGETS_NS = {"boolean": 180, "tenant percentage": 450}


def build_snapshot() -> Snapshot:
    states = {
        "temporal_analysis": FeatureState("temporal_analysis", EVERYONE, "bench"),
        "format_detection": FeatureState("format_detection", EVERYONE, "bench"),
        "enhanced_upload": FeatureState("enhanced_upload", Reach(25.0), "bench"),
        "event_driven_rag": FeatureState("event_driven_rag", NOBODY, "bench"),
    }
    requires = {"enhanced_upload": ["format_detection"], "event_driven_rag": ["enhanced_upload"]}
    return Snapshot(states, requires)


def measure(call: Callable[[int], object], batches: int, size: int) -> list[float]:
    per_call = []
    gc.disable()
    try:
        for _ in range(batches):
            began = time.perf_counter_ns()
            for i in range(size):
                call(i)
            per_call.append((time.perf_counter_ns() - began) / size)
    finally:
        gc.enable()
    return per_call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()

    snapshot = build_snapshot()
    is_enabled = snapshot.is_enabled
    tenants = [f"tenant-{i:05d}" for i in range(5000)]
    fresh = [f"fresh-{i:08d}" for i in range(args.batches * args.batch_size)]
    fresh_iter = iter(fresh)

    cases: dict[str, Callable[[int], object]] = {
        "baseline (empty call)": lambda i: None,
        "boolean": lambda i: is_enabled("temporal_analysis", "tenant-00001"),
        "tenant percentage": lambda i: is_enabled("enhanced_upload", tenants[i % 5000]),
        "tenant percentage, new tenant each call": lambda i: is_enabled(
            "enhanced_upload", next(fresh_iter)
        ),
    }
    # Warm the remembered answers for the working set, as a running app would have.
    for tenant in tenants:
        is_enabled("enhanced_upload", tenant)

    print(f"is_enabled, ns per call ({args.batches} batches of {args.batch_size} calls)")
    print(f"{'case':<42}{'median':>8}{'p99':>8}{'target':>8}")
    for name, call in cases.items():
        samples = sorted(measure(call, args.batches, args.batch_size))
        median = statistics.median(samples)
        p99 = samples[int(len(samples) * 0.99) - 1]
        target = TARGETS_NS.get(name)
        print(f"{name:<42}{median:>8.0f}{p99:>8.0f}{(str(target) if target else '-'):>8}")
    print("figures include the lambda wrapper; subtract the baseline for the call alone")


if __name__ == "__main__":
    main()
