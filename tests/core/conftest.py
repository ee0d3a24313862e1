"""Fixtures for the core's tests: small rollouts built in code, and the shipped examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"


@pytest.fixture
def six_week() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / "six-week-rollout.yaml").read_text())
    return loaded


@pytest.fixture
def canary() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (EXAMPLES / "tenant-percentage-rollout.yaml").read_text()
    )
    return loaded
