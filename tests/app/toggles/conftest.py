"""Fixtures for the live-toggle tests: the example rollout rendered at any stage, a mount
directory the kubelet sequence publishes into, and watchers that are always stopped."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flagstage_app.toggles import LiveToggles

from flagstage.rendering import render_config
from flagstage.validation import parse_rollout

EXAMPLE = Path(__file__).parents[3] / "manifests" / "examples" / "six-week-rollout.yaml"

# Long enough that a test passing quickly proves inotify, not the poll, picked the change up.
SLOW_POLL_SECONDS = 30.0


@pytest.fixture(scope="session")
def example_manifest() -> dict[str, Any]:
    return dict(yaml.safe_load(EXAMPLE.read_text()))


@pytest.fixture(scope="session")
def render(example_manifest: dict[str, Any]) -> Callable[..., dict[str, str]]:
    """ConfigMap data of the example rollout at `stage` (-1: defaults), optionally edited."""
    cache: dict[int, dict[str, str]] = {}

    def _render(stage: int, edit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, str]:
        if edit is None and stage in cache:
            return dict(cache[stage])
        manifest = copy.deepcopy(example_manifest)
        if edit is not None:
            edit(manifest)
        data = render_config(parse_rollout(manifest), stage).data
        if edit is None:
            cache[stage] = data
        return dict(data)

    return _render


@pytest.fixture
def mount(tmp_path: Path) -> Path:
    """Where the ConfigMap volume is mounted; it does not exist until something creates it."""
    return tmp_path / "etc" / "flagstage"


@pytest.fixture
def watch() -> Iterator[Callable[..., LiveToggles]]:
    """Start a `LiveToggles` on a directory (no environment, slow poll); stopped afterwards."""
    started: list[LiveToggles] = []

    def _watch(directory: Path, **kwargs: Any) -> LiveToggles:
        kwargs.setdefault("env", {})
        kwargs.setdefault("poll_interval_seconds", SLOW_POLL_SECONDS)
        toggles = LiveToggles(directory, **kwargs)
        toggles.start()
        started.append(toggles)
        return toggles

    yield _watch
    for toggles in started:
        toggles.stop()
