"""The watcher follows the mount the way the kubelet updates it, and refuses bad configs."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flagstage_app.toggles import LiveToggles
from flagstage_app.toggles import watcher as watcher_module
from flagstage_app.toggles.kubelet import publish

Render = Callable[..., dict[str, str]]
Watch = Callable[..., LiveToggles]

# inotify gets a change in about a millisecond; the bound leaves room for a busy shared machine.
PICKUP_BOUND_SECONDS = 0.5


def hash_of(data: dict[str, str]) -> str:
    return str(json.loads(data["features.json"])["hash"])


def wait_for_hash(toggles: LiveToggles, config_hash: str, timeout: float = 5.0) -> float:
    """Spin until the snapshot carries `config_hash`; the time it took after the call."""
    started = time.perf_counter()
    while toggles.current.config_hash != config_hash:
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"config {config_hash} not picked up in {timeout} s")
        time.sleep(0.0001)
    return time.perf_counter()


def test_a_published_change_is_picked_up_within_milliseconds(
    mount: Path, render: Render, watch: Watch
) -> None:
    publish(mount, render(0))
    toggles = watch(mount)
    assert toggles.current.config_hash == hash_of(render(0))
    assert not toggles.current.is_enabled("temporal_analysis", "acme")

    delays = []
    for stage in (1, 2, 3, 2, 1):
        data = render(stage)
        swapped_at = publish(mount, data).swapped_at
        delays.append(wait_for_hash(toggles, hash_of(data)) - swapped_at)
    assert toggles.current.is_enabled("temporal_analysis", "acme")
    assert max(delays) < PICKUP_BOUND_SECONDS, delays
    assert toggles.status().mode == "inotify"
    assert toggles.status().reload_count == 6


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: text.replace('"schemaVersion": 1', '"schemaVersion": 99'), "schemaVersion"),
        (lambda text: text.replace('"percentage": 100', '"percentage": 0', 1), "does not match"),
        (lambda text: "[]", "must hold a JSON object"),
    ],
    ids=["partial-write", "schema-version", "hash-mismatch", "not-an-object"],
)
def test_a_bad_config_is_refused_and_the_last_good_one_stays(
    mount: Path,
    render: Render,
    watch: Watch,
    spoil: Callable[[str], str],
    reason: str,
) -> None:
    good = render(1)
    publish(mount, good)
    toggles = watch(mount)

    bad = dict(render(2))
    bad["features.json"] = spoil(bad["features.json"])
    publish(mount, bad)
    assert toggles.wait_for(lambda _: toggles.status().refused_count == 1, 5.0)

    status = toggles.status()
    assert toggles.current.config_hash == hash_of(good)
    assert toggles.current.is_enabled("temporal_analysis", "acme")
    assert status.last_refused is not None
    assert reason in status.last_refused.reason
    assert status.reload_count == 1
    assert toggles.metrics.registry.get_sample_value("flagstage_app_config_refused_total") == 1

    # The next good config is taken as usual.
    publish(mount, render(3))
    wait_for_hash(toggles, hash_of(render(3)))


def test_a_directory_missing_at_start_is_picked_up_when_it_appears(
    mount: Path, render: Render, watch: Watch
) -> None:
    toggles = watch(mount, env={"FEATURE_TEMPORAL_ANALYSIS": "true"})
    status = toggles.status()
    assert (status.directory_present, status.loaded_from) == (False, "env")
    assert toggles.current.is_enabled("temporal_analysis", "acme")

    data = render(2)
    swapped_at = publish(mount, data).swapped_at
    assert wait_for_hash(toggles, hash_of(data)) - swapped_at < PICKUP_BOUND_SECONDS
    assert toggles.current.is_enabled("format_detection", "acme")


def test_a_directory_whose_parents_are_missing_too_is_found_when_created(
    tmp_path: Path, render: Render, watch: Watch
) -> None:
    mount = tmp_path / "not" / "yet" / "there"
    toggles = watch(mount)
    data = render(1)
    swapped_at = publish(mount, data).swapped_at
    assert wait_for_hash(toggles, hash_of(data)) - swapped_at < PICKUP_BOUND_SECONDS


def test_an_empty_directory_serves_the_defaults_until_a_config_arrives(
    mount: Path, render: Render, watch: Watch
) -> None:
    mount.mkdir(parents=True)
    toggles = watch(mount)
    assert toggles.current.config_hash is None
    assert toggles.status().layout == "empty"
    data = render(1)
    publish(mount, data)
    wait_for_hash(toggles, hash_of(data))


def test_a_removed_directory_keeps_the_last_config_until_it_is_recreated(
    mount: Path, render: Render, watch: Watch
) -> None:
    publish(mount, render(1))
    toggles = watch(mount)
    shutil.rmtree(mount)
    assert toggles.wait_for(lambda _: not toggles.status().directory_present, 5.0)
    assert toggles.current.config_hash == hash_of(render(1))

    data = render(3)
    swapped_at = publish(mount, data).swapped_at
    assert wait_for_hash(toggles, hash_of(data)) - swapped_at < PICKUP_BOUND_SECONDS


def test_a_plain_file_in_the_directory_is_read_too(
    mount: Path, render: Render, watch: Watch
) -> None:
    mount.mkdir(parents=True)
    toggles = watch(mount)
    data = render(2)
    staged = mount.parent / "features.json.new"
    staged.write_text(data["features.json"])
    staged.rename(mount / "features.json")
    wait_for_hash(toggles, hash_of(data))
    assert toggles.status().layout == "plain"


def test_without_inotify_the_poll_picks_changes_up(
    mount: Path, render: Render, watch: Watch
) -> None:
    toggles = watch(mount, use_inotify=False, poll_interval_seconds=0.05)
    assert toggles.status().mode == "poll"
    publish(mount, render(1))
    wait_for_hash(toggles, hash_of(render(1)))


def test_the_watcher_survives_an_unexpected_error(
    mount: Path, render: Render, watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "ERROR_BACKOFF_SECONDS", 0.01)
    publish(mount, render(0))
    toggles = watch(mount)
    real_read = watcher_module.read_mount
    failures = [RuntimeError("disk on fire")]

    def flaky(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return real_read(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(watcher_module, "read_mount", flaky)
    publish(mount, render(1))
    # The first check after the event fails; the thread carries on and the poll-less loop
    # picks the change up on the next event.
    publish(mount, render(2))
    wait_for_hash(toggles, hash_of(render(2)))
    status = toggles.status()
    assert status.last_error is not None and "disk on fire" in status.last_error


def test_without_a_directory_the_toggles_come_from_the_environment() -> None:
    toggles = LiveToggles(None, env={"FEATURE_FORMAT_DETECTION": "yes"})
    toggles.start()
    assert toggles.current.is_enabled("format_detection")
    assert toggles.status().mode == "idle"
    toggles.stop()
