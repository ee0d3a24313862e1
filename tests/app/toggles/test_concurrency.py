"""Many threads evaluate while the kubelet swaps configs: each evaluation sees one snapshot."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flagstage_app.toggles import FEATURE_NAMES, LiveToggles
from flagstage_app.toggles.kubelet import publish

Render = Callable[..., dict[str, str]]
Watch = Callable[..., LiveToggles]

READERS = 6
SWAPS = 60
TENANTS = ("acme", "globex", "initech")


def test_every_evaluation_sees_one_whole_snapshot(
    mount: Path, render: Render, watch: Watch
) -> None:
    configs = [render(stage) for stage in (1, 2, 3, 4, 5)]
    expected: dict[str, dict[str, bool]] = {}
    for data in configs:
        publish(mount / "probe", data)
    probe = LiveToggles(mount / "probe", env={})
    for data in configs:
        publish(mount / "probe", data)
        probe.check()
        snapshot = probe.current
        assert snapshot.config_hash is not None
        expected[snapshot.config_hash] = {n: snapshot.is_enabled(n, "acme") for n in FEATURE_NAMES}
    assert len(expected) == len(configs)

    live = mount / "live"
    publish(live, configs[0])
    toggles = watch(live)
    stop = threading.Event()
    seen: set[str] = set()
    failures: list[str] = []
    evaluations = [0] * READERS

    def evaluate(index: int) -> None:
        while not stop.is_set():
            snapshot = toggles.current  # once per "request"
            for tenant in TENANTS:
                got = {name: snapshot.is_enabled(name, tenant) for name in FEATURE_NAMES}
                if got != expected.get(str(snapshot.config_hash)):
                    failures.append(f"{snapshot.config_hash}: {got}")
            seen.add(str(snapshot.config_hash))
            evaluations[index] += 1
            # A request does I/O between evaluations; pure spinning would only measure the GIL.
            time.sleep(0)

    readers = [threading.Thread(target=evaluate, args=(i,)) for i in range(READERS)]
    for reader in readers:
        reader.start()
    try:
        for n in range(SWAPS):
            data = configs[n % len(configs)]
            publish(live, data)
            wanted = json.loads(data["features.json"])["hash"]
            assert toggles.wait_for(lambda s, wanted=wanted: s.config_hash == wanted, 5.0)
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    assert failures == []
    assert seen == set(expected)
    assert min(evaluations) > 0
    assert toggles.status().refused_count == 0
