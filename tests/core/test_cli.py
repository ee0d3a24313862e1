"""The flagstage command: validate, plan and render as a person or a script uses them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flagstage.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main

from .conftest import EXAMPLES

SIX_WEEK = str(EXAMPLES / "six-week-rollout.yaml")
INVALID = str(EXAMPLES / "invalid-rollout.yaml")
CANARY = str(EXAMPLES / "tenant-percentage-rollout.yaml")


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_validate_refuses_the_invalid_example_naming_the_cycle() -> None:
    code, text = run("validate", INVALID)
    assert code == EXIT_REFUSED
    assert "refused: insights-broken has 5 problems" in text
    assert "dependency cycle continuous_learning -> event_driven_rag -> continuous_learning" in text
    assert "unknown feature 'format_detecton'" in text
    assert "'10 days' is not a duration" in text
    assert "stage 'week-1' leaves 'enhanced_upload' on" in text
    assert "override forces 'enhanced_upload' on" in text


def test_validate_accepts_the_six_week_example() -> None:
    assert run("validate", SIX_WEEK) == (
        EXIT_OK,
        "ok: insights-api is valid (7 features, 6 stages)\n",
    )


def test_validate_speaks_json_for_scripts() -> None:
    code, text = run("validate", INVALID, "--output", "json")
    assert code == EXIT_REFUSED
    [result] = json.loads(text)
    assert result["valid"] is False
    assert {p["subject"] for p in result["problems"]} >= {"continuous_learning", "week-2"}


def test_plan_prints_the_six_week_timeline_with_the_live_stage_marked() -> None:
    code, text = run("plan", SIX_WEEK, "--at", "2026-12-16T12:00:00Z")
    assert code == EXIT_OK
    lines = text.splitlines()
    assert lines[0].startswith("insights-api: 7 features, 6 stages, promotion Automatic")
    stage_lines = [line for line in lines if "week-" in line and "->" in line]
    assert [line.split()[0 if line[0] == " " else 1] for line in stage_lines] == [
        f"week-{n}" for n in range(1, 7)
    ]
    assert "> week-3       2026-12-14 09:00 CET -> 2026-12-21 09:00 CET" in text
    assert "next: + enhanced_upload" in text
    assert all(len(line) <= 100 for line in lines)


def test_plan_shows_tenant_percentages_and_how_they_grow() -> None:
    code, text = run("plan", CANARY, "--at", "2026-12-01T00:00:00Z")
    assert code == EXIT_OK
    assert "not started, every feature at its default" in text
    assert "temporal_analysis (10% + tenants acme, globex)" in text
    assert "~ temporal_analysis 10% + tenants acme, globex -> 50% + tenants acme, globex" in text


def test_plan_json_lists_each_stage_with_its_window_and_changes() -> None:
    code, text = run("plan", SIX_WEEK, "--at", "2026-12-08T00:00:00Z", "-o", "json")
    plan = json.loads(text)
    assert code == EXIT_OK
    assert plan["liveStage"] == 1
    assert plan["stages"][1]["changes"] == ["+ temporal_analysis"]
    assert plan["stages"][1]["start"] == "2026-12-07T08:00:00Z"


def test_render_prints_the_config_map_the_operator_would_write() -> None:
    code, text = run("render", SIX_WEEK, "--stage", "week-2")
    config_map = yaml.safe_load(text)
    assert code == EXIT_OK
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "insights-api-features"
    assert config_map["data"]["FEATURE_TEMPORAL_ANALYSIS"] == "true"
    assert config_map["data"]["FEATURE_FORMAT_DETECTION"] == "false"


def test_render_at_a_time_picks_the_stage_live_then() -> None:
    _, text = run("render", SIX_WEEK, "--at", "2026-12-15T00:00:00Z", "-o", "json")
    assert json.loads(text)["metadata"]["annotations"]["flagstage.io/stage"] == "week-3"


def test_an_unknown_stage_is_a_usage_error_that_lists_the_stages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _ = run("render", SIX_WEEK, "--stage", "week-9")
    assert code == EXIT_USAGE
    assert "'week-9' is not a stage of insights-api" in capsys.readouterr().err


def test_a_missing_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("validate", "/nonexistent.yaml")[0] == EXIT_USAGE
    assert "cannot read /nonexistent.yaml" in capsys.readouterr().err


def test_the_command_is_installed_for_kubectl_too() -> None:
    bindir = Path(sys.executable).parent
    result = subprocess.run(
        [str(bindir / "kubectl-flagstage"), "validate", "-", "-o", "json"],
        input=Path(INVALID).read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == EXIT_REFUSED
    assert json.loads(result.stdout)[0]["name"] == "insights-broken"


def test_an_unquoted_start_time_is_read_as_kubectl_reads_it(tmp_path: Path) -> None:
    text = (
        Path(SIX_WEEK)
        .read_text()
        .replace('start: "2026-11-30T09:00:00"', "start: 2026-11-30T09:00:00")
    )
    assert "start: 2026-11-30T09:00:00\n" in text
    unquoted = tmp_path / "rollout.yaml"
    unquoted.write_text(text)
    assert run("validate", str(unquoted))[0] == EXIT_OK
