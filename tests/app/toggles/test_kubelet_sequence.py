"""The kubelet's update sequence, as the tests and local runs reproduce it."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from flagstage_app.toggles.kubelet import current_version, publish
from flagstage_app.toggles.mount import read_mount

VERSION_NAME = re.compile(r"^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d{9}$")


def test_a_publication_swaps_data_and_links_keys_through_it(tmp_path: Path) -> None:
    first = publish(tmp_path, {"features.json": "{}", "FEATURE_A": "true"})
    assert VERSION_NAME.match(first.version_dir.name)
    assert os.readlink(tmp_path / "..data") == first.version_dir.name
    assert os.readlink(tmp_path / "features.json") == "..data/features.json"
    assert (tmp_path / "FEATURE_A").read_text() == "true"

    second = publish(tmp_path, {"features.json": "{ }"})
    assert current_version(tmp_path) == second.version_dir.name
    assert not first.version_dir.exists()
    assert not (tmp_path / "FEATURE_A").is_symlink()
    assert not (tmp_path / "..data_tmp").exists()
    assert {p.name for p in tmp_path.iterdir()} == {
        "..data",
        second.version_dir.name,
        "features.json",
    }


def test_unchanged_data_is_left_alone(tmp_path: Path) -> None:
    first = publish(tmp_path, {"features.json": "{}"})
    again = publish(tmp_path, {"features.json": "{}"})
    assert not again.changed
    assert again.version_dir == first.version_dir


def test_a_reader_never_mixes_two_versions_during_churn(tmp_path: Path) -> None:
    publish(tmp_path, {"a": "0", "b": "0"})
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            publish(tmp_path, {"a": str(n), "b": str(n)})

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        for _ in range(300):
            read = read_mount(tmp_path, ("a", "b"), attempts=50)
            assert read.layout == "configmap"
            assert read.files["a"] == read.files["b"]
    finally:
        stop.set()
        writer.join()
