"""The kubelet's projection sequence on a real filesystem, and reading it back whole."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from flagstage import projection
from flagstage.projection import (
    DATA_LINK,
    ProjectionChurnError,
    current_version,
    publish,
    read_projection,
)


def visible_version(directory: Path) -> dict[str, bytes] | None:
    """What a reader resolving `..data` right now would read, or None before any version."""
    version, files = read_projection(directory, attempts=1)
    return None if version is None else files


@contextmanager
def after_every_line_of_publish(check: Any) -> Iterator[None]:
    """Call `check()` after each line `publish` and its helpers execute, in this thread."""
    code = {projection.publish.__code__, projection._payload_of.__code__}

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line":
            check()
        return local

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code in code else None

    sys.settrace(trace)
    try:
        yield
    finally:
        sys.settrace(None)


def test_publish_creates_the_directory_and_links_each_key_through_data(tmp_path: Path) -> None:
    mount = tmp_path / "not" / "there"
    published = publish(mount, {"features.json": "{}", "FEATURE_A": b"true"})

    assert published.changed
    assert os.readlink(mount / DATA_LINK) == published.version_dir.name
    assert os.readlink(mount / "FEATURE_A") == f"{DATA_LINK}/FEATURE_A"
    assert (mount / "FEATURE_A").read_text() == "true"
    assert read_projection(mount) == (
        published.version_dir.name,
        {
            "features.json": b"{}",
            "FEATURE_A": b"true",
        },
    )


def test_a_new_version_removes_the_old_one_and_the_keys_that_disappeared(tmp_path: Path) -> None:
    first = publish(tmp_path, {"features.json": "1", "FEATURE_A": "true"})
    second = publish(tmp_path, {"features.json": "2"})

    assert not first.version_dir.exists()
    assert not (tmp_path / "FEATURE_A").is_symlink()
    assert {path.name for path in tmp_path.iterdir()} == {
        DATA_LINK,
        second.version_dir.name,
        "features.json",
    }

    third = publish(tmp_path, {"features.json": "3", "FEATURE_A": "false"})
    assert (tmp_path / "FEATURE_A").read_text() == "false"
    assert current_version(tmp_path) == third.version_dir.name


def test_the_same_content_twice_leaves_the_version_alone(tmp_path: Path) -> None:
    first = publish(tmp_path, {"features.json": "{}"})
    again = publish(tmp_path, {"features.json": b"{}"})
    assert not again.changed
    assert again.version_dir == first.version_dir


@pytest.mark.parametrize("key", ["", "a/b", "..data", "..hidden"])
def test_a_key_that_is_no_plain_file_name_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="not a valid ConfigMap key"):
        publish(tmp_path, {key: "x"})
    assert current_version(tmp_path) is None


def test_nothing_projected_reads_as_no_version(tmp_path: Path) -> None:
    assert read_projection(tmp_path / "missing") == (None, {})
    assert read_projection(tmp_path) == (None, {})


def test_data_points_at_a_complete_version_after_every_step(tmp_path: Path) -> None:
    old = {"features.json": b'{"v": 1}', "FEATURE_A": b"true", "FEATURE_B": b"false"}
    new = {"features.json": b'{"v": 2}', "FEATURE_B": b"true", "FEATURE_C": b"true"}
    publish(tmp_path, old)
    seen: list[dict[str, bytes] | None] = []

    def check() -> None:
        visible = visible_version(tmp_path)
        assert visible in (old, new), f"..data showed a partial version: {visible!r}"
        seen.append(visible)

    with after_every_line_of_publish(check):
        publish(tmp_path, new)

    # The check ran on both sides of the swap, and the swap happened exactly once.
    assert old in seen and new in seen
    flips = sum(1 for before, after in pairwise(seen) if before != after)
    assert flips == 1
    assert visible_version(tmp_path) == new


def test_a_reader_resolving_data_once_sees_a_whole_version_during_churn(tmp_path: Path) -> None:
    keys = ("features.json", "FEATURE_A", "FEATURE_B")
    publish(tmp_path, dict.fromkeys(keys, "0"))
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            publish(tmp_path, dict.fromkeys(keys, str(n)))

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        reads = 0
        while reads < 300:
            try:
                version, files = read_projection(tmp_path, attempts=50)
            except ProjectionChurnError:
                continue
            reads += 1
            assert version is not None
            assert set(files) == set(keys)
            assert len(set(files.values())) == 1, f"mixed versions: {files!r}"
    finally:
        stop.set()
        writer.join()
