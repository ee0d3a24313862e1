"""The app's features directory abused while the app serves traffic over real HTTP.

Each test starts the app (uvicorn in a thread, the real `LiveToggles` watcher) on a good
configuration, keeps a prober thread requesting the status and query endpoints throughout, then
does something a broken operator, a careless person or a flaky volume could do to the mount.
The app must keep serving the last good snapshot, show each refusal in /api/hot-reload-status,
never answer 5xx, and still take a good configuration at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from flagstage_app.toggles import LiveToggles

from flagstage.projection import DATA_LINK, publish
from flagstage.rendering import FEATURES_KEY, content_hash, render_config
from flagstage.validation import parse_rollout
from tests.reliability.conftest import RunningApp, app_settings, budget

EXAMPLE = Path(__file__).parents[2] / "manifests" / "examples" / "six-week-rollout.yaml"
STAGES = 6
ACME = {"X-Customer-ID": "acme"}
QUESTION = {"query": "Which accounts have the highest revenue?", "query_type": "temporal_analysis"}
WAIT_SECONDS = 10.0
SWAPS = budget(1_000, 10_000)
PROBE_LIMIT = budget(20_000, 200_000)


@pytest.fixture(scope="module")
def stages() -> list[dict[str, str]]:
    """ConfigMap data of the example rollout at every stage, defaults first."""
    rollout = parse_rollout(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
    return [render_config(rollout, index).data for index in range(-1, STAGES)]


def hash_of(data: dict[str, str]) -> str:
    return str(json.loads(data[FEATURES_KEY])["hash"])


def spoiled(data: dict[str, str], features_json: str | bytes) -> dict[str, str | bytes]:
    """`data` with its features.json replaced; the env keys stay as they were."""
    result: dict[str, str | bytes] = dict(data)
    result[FEATURES_KEY] = features_json
    return result


@dataclass
class Prober:
    """Requests the app in a loop from another thread and keeps every answer's status."""

    url: str
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Prober:
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        requests: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/api/feature-status", {"headers": ACME}),
            ("GET", "/api/hot-reload-status", {}),
            ("POST", "/api/rag-qdrant/query", {"headers": ACME, "json": QUESTION}),
            ("GET", "/healthz", {}),
        ]
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            for i in range(PROBE_LIMIT):
                if self._stop.is_set():
                    return
                method, path, kwargs = requests[i % len(requests)]
                try:
                    response = client.request(method, path, **kwargs)
                except httpx.HTTPError as err:
                    self.failures.append(f"{method} {path}: {err!r}")
                    continue
                code = response.status_code
                self.statuses[code] = self.statuses.get(code, 0) + 1
                if code >= 500:
                    self.server_errors.append(f"{method} {path}: {code} {response.text[:300]}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(WAIT_SECONDS)

    def assert_clean(self) -> None:
        assert sum(self.statuses.values()) > 0, "the prober never got an answer"
        assert not self.server_errors, self.server_errors[:5]
        assert not self.failures, self.failures[:5]


@dataclass
class Served:
    """The app under test, its mount, and helpers to watch what it reports."""

    running: RunningApp
    mount: Path
    client: httpx.Client

    @property
    def live(self) -> LiveToggles:
        toggles = self.running.app.state.live_toggles
        assert isinstance(toggles, LiveToggles)
        return toggles

    def reload_status(self) -> dict[str, Any]:
        response = self.client.get("/api/hot-reload-status")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_status(self, what: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        status = self.reload_status()
        while not check(status):
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; hot-reload-status: {status}")
            time.sleep(0.01)
            status = self.reload_status()
        return status

    def wait_refused(self, count: int) -> dict[str, Any]:
        return self.wait_status(f"{count} refusals", lambda s: s["refused_count"] >= count)

    def wait_hash(self, config_hash: str) -> dict[str, Any]:
        return self.wait_status(f"config {config_hash}", lambda s: s["config_hash"] == config_hash)

    def serving_hash(self) -> str:
        response = self.client.get("/api/feature-status", headers=ACME)
        assert response.status_code == 200, response.text
        return str(response.json()["config_hash"])

    def assert_watcher_alive(self) -> None:
        thread = self.live._thread
        assert thread is not None and thread.is_alive(), "the watcher thread died"


@pytest.fixture
def served(
    tmp_path: Path, stages: list[dict[str, str]], make_running_app: Callable[..., RunningApp]
) -> Iterator[Served]:
    """The app on stage week-2 of the example, with a prober running until the test ends."""
    mount = tmp_path / "etc" / "flagstage"
    publish(mount, stages[2])
    running = make_running_app(app_settings(tmp_path, features_config_dir=mount))
    prober = Prober(running.url).start()
    with running.client() as client:
        app = Served(running, mount, client)
        app.wait_hash(hash_of(stages[2]))
        yield app
        # Whatever happened, a good configuration published now is taken.
        publish(mount, stages[5])
        app.wait_hash(hash_of(stages[5]))
        app.assert_watcher_alive()
    prober.stop()
    prober.assert_clean()


def _truncations(text: str) -> list[str]:
    cuts = random.Random(7).sample(range(1, len(text) - 1), budget(8, 60))
    return ["", *(text[:cut] for cut in sorted(cuts))]


def test_partial_and_empty_files_are_each_refused_and_the_last_good_config_stays(
    served: Served, stages: list[dict[str, str]]
) -> None:
    good = hash_of(stages[2])
    partials = _truncations(stages[4][FEATURES_KEY])
    for count, partial in enumerate(partials, start=1):
        publish(served.mount, spoiled(stages[4], partial))
        status = served.wait_refused(count)
        assert status["config_hash"] == good
        assert status["last_refused"]["reason"], status
        assert served.serving_hash() == good
    assert status["refused_count"] == len(partials)
    assert "not valid JSON" in status["last_refused"]["reason"]


def _schema_version_2(data: dict[str, str]) -> str:
    document = json.loads(data[FEATURES_KEY])
    document["schemaVersion"] = 2
    # The hash is right: only the version is unknown to this build.
    document["hash"] = content_hash(document["features"])
    return json.dumps(document)


def _hash_mismatch(data: dict[str, str]) -> str:
    document = json.loads(data[FEATURES_KEY])
    document["features"]["temporal_analysis"]["percentage"] = 0
    document["features"]["temporal_analysis"]["state"] = "off"
    return json.dumps(document)


def _requirement_off(data: dict[str, str]) -> str:
    document = json.loads(data[FEATURES_KEY])
    document["features"]["continuous_learning"]["percentage"] = 100
    document["hash"] = content_hash(document["features"])
    return json.dumps(document)


BAD_DOCUMENTS: list[tuple[str, Callable[[dict[str, str]], str | bytes], str]] = [
    ("invalid-json", lambda data: data[FEATURES_KEY].replace(":", ";", 3), "not valid JSON"),
    ("binary", lambda data: bytes(range(256)), "not valid JSON"),
    ("json-array", lambda data: "[1, 2, 3]", "must hold a JSON object"),
    ("json-null", lambda data: "null", "must hold a JSON object"),
    ("unknown-schema-version", _schema_version_2, "schemaVersion 2"),
    ("hash-mismatch", _hash_mismatch, "does not match its content"),
    ("requirement-off", _requirement_off, "requires 'event_driven_rag'"),
    ("features-not-an-object", lambda data: '{"schemaVersion": 1, "features": []}', "features"),
    (
        "bad-percentage",
        lambda data: data[FEATURES_KEY].replace('"percentage": 0', '"percentage": "0"', 1),
        "percentage",
    ),
]


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [pytest.param(spoil, reason, id=name) for name, spoil, reason in BAD_DOCUMENTS],
)
def test_a_bad_document_is_refused_with_its_reason_and_the_app_keeps_serving(
    served: Served,
    stages: list[dict[str, str]],
    spoil: Callable[[dict[str, str]], str | bytes],
    reason: str,
) -> None:
    good = hash_of(stages[2])
    publish(served.mount, spoiled(stages[4], spoil(stages[4])))

    status = served.wait_refused(1)
    assert reason in status["last_refused"]["reason"], status["last_refused"]
    assert status["config_hash"] == good
    assert status["reload_count"] == 1
    assert served.serving_hash() == good
    features = served.client.get("/api/feature-status", headers=ACME).json()["features"]
    assert features["temporal_analysis"]["enabled"] is True
    assert features["format_detection"]["enabled"] is False


def test_a_file_written_in_place_in_pieces_is_refused_until_it_is_whole(
    tmp_path: Path, stages: list[dict[str, str]], make_running_app: Callable[..., RunningApp]
) -> None:
    mount = tmp_path / "plain"
    mount.mkdir()
    target = mount / FEATURES_KEY
    target.write_text(stages[1][FEATURES_KEY])
    running = make_running_app(app_settings(tmp_path, features_config_dir=mount))
    with running.client() as client:
        served = Served(running, mount, client)
        served.wait_hash(hash_of(stages[1]))

        # Written the way a careless editor or `cp` writes: truncate, then in pieces.
        text = stages[3][FEATURES_KEY]
        half = len(text) // 2
        with target.open("w") as handle:
            handle.write(text[:half])
            handle.flush()
            os.fsync(handle.fileno())
            status = served.wait_refused(1)
            assert status["config_hash"] == hash_of(stages[1])
            assert status["layout"] == "plain"
            handle.write(text[half:])
        served.wait_hash(hash_of(stages[3]))
        served.assert_watcher_alive()


def test_a_removed_and_recreated_directory_keeps_the_last_config_meanwhile(
    served: Served, stages: list[dict[str, str]]
) -> None:
    good = hash_of(stages[2])
    for _ in range(budget(3, 30)):
        shutil.rmtree(served.mount)
        status = served.wait_status("the directory gone", lambda s: not s["directory_present"])
        assert status["config_hash"] == good
        assert served.serving_hash() == good

        served.mount.mkdir(parents=True)
        served.wait_status("an empty directory", lambda s: s["layout"] == "empty")
        assert served.serving_hash() == good

        # The old version's name may come back; a fresh publish is a new version all the same.
        publish(served.mount, stages[2])
        served.wait_status(
            "the mount read again",
            lambda s: s["layout"] == "configmap" and s["config_hash"] == good,
        )


def test_a_data_link_pointing_nowhere_is_refused_and_reported(
    served: Served, stages: list[dict[str, str]]
) -> None:
    good = hash_of(stages[2])
    tmp_link = served.mount / "..data_tmp"
    os.symlink("..2001_01_01_00_00_00.000000000", tmp_link)
    os.rename(tmp_link, served.mount / DATA_LINK)

    status = served.wait_refused(1)
    assert "..data" in status["last_refused"]["reason"], status["last_refused"]
    assert status["config_hash"] == good
    assert served.serving_hash() == good


def test_a_features_key_that_is_a_directory_is_refused_and_reported(
    served: Served, stages: list[dict[str, str]]
) -> None:
    version = served.mount / "..2001_01_01_00_00_00.000000001"
    (version / FEATURES_KEY).mkdir(parents=True)
    tmp_link = served.mount / "..data_tmp"
    os.symlink(version.name, tmp_link)
    os.rename(tmp_link, served.mount / DATA_LINK)

    status = served.wait_refused(1)
    assert FEATURES_KEY in status["last_refused"]["reason"], status["last_refused"]
    assert status["config_hash"] == hash_of(stages[2])
    served.assert_watcher_alive()


def _swap_storm(mount: str, versions: list[dict[str, Any]], count: int, results: Any) -> None:
    """Publish `count` versions in a row, cycling through `versions` (runs in its own process)."""
    started = time.perf_counter()
    for i in range(count):
        publish(mount, versions[i % len(versions)])
    results.put(time.perf_counter() - started)


@pytest.mark.slow
def test_thousands_of_swaps_leave_the_app_serving_and_the_watcher_alive(
    served: Served, stages: list[dict[str, str]]
) -> None:
    good_hashes = {hash_of(data) for data in stages}
    bad = [spoiled(stages[3], spoil(stages[3])) for _, spoil, _ in BAD_DOCUMENTS]
    # Two good versions for each bad one, and never the same version twice in a row.
    versions: list[dict[str, Any]] = []
    for i, spoilt in enumerate(bad):
        versions += [stages[i % len(stages)], stages[(i + 1) % len(stages)], spoilt]

    # Another process swaps, as the kubelet would, so the app's threads do not slow it down.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    storm = context.Process(
        target=_swap_storm, args=(str(served.mount), versions, SWAPS, results), daemon=True
    )
    storm.start()
    while storm.is_alive():
        assert served.serving_hash() in good_hashes
        storm.join(0.05)
    assert storm.exitcode == 0
    elapsed = results.get(timeout=WAIT_SECONDS)

    final = stages[4]
    publish(served.mount, final)
    status = served.wait_hash(hash_of(final))
    assert status["refused_count"] >= 1, "no bad version was ever seen during the storm"
    assert status["reload_count"] >= 2
    served.assert_watcher_alive()
    print(
        f"{SWAPS} swaps in {elapsed:.2f}s ({SWAPS / elapsed:.0f}/s): "
        f"{status['reload_count']} loaded, {status['refused_count']} refused"
    )
