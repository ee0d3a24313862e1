"""`flagstage`: check, plan and render a FeatureRollout file without a cluster.

Installed as `flagstage` and as `kubectl-flagstage`, so `kubectl flagstage plan FILE` works.
Exit codes: 0 success, 1 the rollout was refused, 2 the command could not run (bad arguments,
unreadable file). Human output fits a terminal; `--output json` is for scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import yaml

from flagstage import __version__
from flagstage.durations import format_time, parse_time
from flagstage.errors import FlagstageError, Problem, SpecError
from flagstage.model import KIND, FeatureRollout
from flagstage.rendering import render_config, render_config_map
from flagstage.schedule import NOT_STARTED, initial_progress, start_of, timeline, zone_of
from flagstage.state import State, state_at
from flagstage.validation import parse_rollout

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2


class UsageError(FlagstageError):
    """The command could not run: a missing file, unreadable YAML, a bad option."""


class _ManifestLoader(yaml.SafeLoader):
    """Reads times as the strings kubectl sends, not as Python datetimes."""


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_manifests(path: str) -> list[dict[str, Any]]:
    """Every FeatureRollout document in a YAML file (`-` reads standard input)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from err
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_ManifestLoader) if doc is not None]
    except yaml.YAMLError as err:
        raise UsageError(f"{path} is not valid YAML: {err}") from err
    rollouts = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == KIND]
    if not rollouts:
        raise UsageError(f"{path} holds no document of kind {KIND}")
    return rollouts


def _instant(text: str | None, rollout: FeatureRollout | None = None) -> datetime:
    if text is None or text == "now":
        return datetime.now(UTC)
    zone = zone_of(rollout.spec) if rollout is not None else None
    try:
        return parse_time(text, zone)
    except FlagstageError as err:
        raise UsageError(f"--at: {err}") from err


def _emit_json(payload: Any, out: TextIO) -> None:
    out.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    results: list[tuple[str, FeatureRollout | None, list[Problem]]] = []
    for manifest in load_manifests(args.file):
        name = (manifest.get("metadata") or {}).get("name", "unnamed")
        try:
            results.append((name, parse_rollout(manifest), []))
        except SpecError as err:
            results.append((name, None, err.problems))

    if args.output == "json":
        _emit_json(
            [
                {
                    "name": name,
                    "valid": not problems,
                    "problems": [vars(p) for p in problems],
                }
                for name, _, problems in results
            ],
            out,
        )
    else:
        for name, parsed, problems in results:
            if parsed is not None:
                spec = parsed.spec
                out.write(
                    f"ok: {name} is valid ({_count(spec.features, 'feature')}, "
                    f"{_count(spec.stages, 'stage')})\n"
                )
                continue
            noun = "problem" if len(problems) == 1 else "problems"
            out.write(f"refused: {name} has {len(problems)} {noun}\n")
            for problem in problems:
                out.write(f"  - {problem.path}: {problem.message}\n")
    return EXIT_REFUSED if any(problems for _, _, problems in results) else EXIT_OK


def _load_one(path: str) -> FeatureRollout:
    manifests = load_manifests(path)
    if len(manifests) > 1:
        raise UsageError(f"{path} holds {len(manifests)} rollouts; give a file with one")
    return parse_rollout(manifests[0])


def _changes(before: State, after: State) -> list[str]:
    changes = []
    for name in after:
        old, new = before[name].reach, after[name].reach
        if old == new:
            continue
        if old.nobody:
            changes.append(f"+ {name}" + ("" if new.everyone else f" ({new.describe()})"))
        elif new.nobody:
            changes.append(f"- {name}")
        else:
            changes.append(f"~ {name} {old.describe()} -> {new.describe()}")
    return changes


def _on_list(state: State) -> list[str]:
    items = []
    for name, item in state.items():
        if item.reach.everyone:
            items.append(name)
        elif item.reach.partial:
            items.append(f"{name} ({item.reach.describe()})")
    return items


def cmd_plan(args: argparse.Namespace, out: TextIO) -> int:
    rollout = _load_one(args.file)
    spec = rollout.spec
    now = _instant(args.at, rollout)
    start = start_of(spec, now)
    windows = timeline(spec, start)
    live = initial_progress(spec.model_copy(update={"paused": False}), start=start, now=now)
    states = [state_at(spec, index) for index in range(NOT_STARTED, len(spec.stages))]
    zone = zone_of(spec)

    def local(instant: datetime | None) -> str:
        if instant is None:
            return "(holds)"
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")

    rows: list[dict[str, Any]] = []
    for window in windows:
        state = states[window.index + 1]
        following = states[window.index + 2] if window.index + 2 < len(states) else None
        rows.append(
            {
                "index": window.index,
                "name": window.name,
                "start": format_time(window.start),
                "end": format_time(window.end) if window.end else None,
                "duration": str(window.duration),
                "on": _on_list(state),
                "changes": _changes(states[window.index], state),
                "nextChanges": _changes(state, following) if following is not None else [],
                "live": window.index == live.stage_index,
            }
        )

    if args.output == "json":
        _emit_json(
            {
                "name": rollout.name,
                "namespace": rollout.namespace,
                "promotion": spec.promotion,
                "timeZone": spec.schedule.time_zone,
                "at": format_time(now),
                "liveStage": live.stage_index,
                "stages": rows,
            },
            out,
        )
        return EXIT_OK

    start_note = "" if spec.schedule.start else " (no schedule.start: starts when applied)"
    out.write(
        f"{rollout.name}: {_count(spec.features, 'feature')}, {_count(spec.stages, 'stage')}, "
        f"promotion {spec.promotion}, times in {spec.schedule.time_zone}{start_note}\n"
    )
    if spec.paused:
        out.write("paused: stages do not advance until spec.paused is false\n")
    if spec.overrides:
        forced = ", ".join(f"{o.feature}={o.force}" for o in spec.overrides)
        out.write(f"overrides (win over every stage): {forced}\n")
    if live.stage_index == NOT_STARTED:
        out.write(f"at {local(now)}: not started, every feature at its default\n")
    out.write("\n")
    for window, row in zip(windows, rows, strict=True):
        marker = ">" if row["live"] else " "
        span = f"{local(window.start)} -> {local(window.end)}"
        length = f"  ({window.duration})" if window.end else ""
        live_note = f"   <- live at {local(now)}" if row["live"] else ""
        out.write(f"{marker} {window.name:<12} {span}{length}{live_note}\n")
        _write_wrapped(out, "on:   ", ", ".join(row["on"]) or "(nothing)")
        if row["nextChanges"]:
            _write_wrapped(out, "next: ", ", ".join(row["nextChanges"]))
    return EXIT_OK


PLAN_WIDTH = 100


def _count(items: Sequence[object], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _write_wrapped(out: TextIO, label: str, text: str) -> None:
    indent = " " * 15
    lines = textwrap.wrap(
        text,
        width=PLAN_WIDTH,
        initial_indent=indent + label,
        subsequent_indent=indent + " " * len(label),
        break_on_hyphens=False,
    )
    out.write("\n".join(lines) + "\n")


def cmd_render(args: argparse.Namespace, out: TextIO) -> int:
    rollout = _load_one(args.file)
    spec = rollout.spec
    if args.stage is not None:
        names = [stage.name for stage in spec.stages]
        if args.stage not in names:
            raise UsageError(f"--stage {args.stage!r} is not a stage of {rollout.name}: {names}")
        index = names.index(args.stage)
    else:
        now = _instant(args.at, rollout)
        progress = initial_progress(
            spec.model_copy(update={"paused": False}), start=start_of(spec, now), now=now
        )
        index = progress.stage_index
    config_map = render_config_map(rollout, render_config(rollout, index))
    if args.output == "json":
        _emit_json(config_map, out)
    else:
        out.write(yaml.dump(config_map, Dumper=_BlockDumper, sort_keys=False, width=100))
    return EXIT_OK


class _BlockDumper(yaml.SafeDumper):
    """Writes multi-line strings (the JSON files) as literal blocks people can read."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flagstage",
        description=(
            "Check, plan and render FeatureRollout files. FILE is a YAML manifest of kind "
            "FeatureRollout, or - for standard input."
        ),
        epilog="exit codes: 0 ok, 1 rollout refused, 2 could not run",
    )
    parser.add_argument("--version", action="version", version=f"flagstage {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("file", metavar="FILE", help="rollout manifest (YAML), - for stdin")
        sub.add_argument(
            "-o", "--output", choices=["text", "json"], default="text", help="output format"
        )
        return sub

    add("validate", "Check every rule and list every problem (exit 1 when refused).")
    plan = add("plan", "Print the timeline: each stage, when it runs, what is on, what changes.")
    plan.add_argument(
        "--at",
        metavar="TIME",
        help="mark the stage live at TIME (RFC 3339; default now); also the start when the "
        "rollout has no schedule.start",
    )
    render = add("render", "Print the ConfigMap the operator would write.")
    which = render.add_mutually_exclusive_group()
    which.add_argument("--at", metavar="TIME", help="render the stage live at TIME (default now)")
    which.add_argument("--stage", metavar="NAME", help="render the state after stage NAME")
    _add_cluster_commands(commands)
    return parser


def _add_cluster_commands(commands: Any) -> None:
    """Hook for `promote|pause|resume|rollback NAME` and `sync`, which talk to a cluster.

    They live in the operator package; without it installed, only the file commands exist.
    Each sets a `handler` default that `main` prefers over the file commands' table.
    """
    try:
        from flagstage_operator.kubectl import add_commands
    except ImportError:
        return
    add_commands(commands)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = build_parser().parse_args(argv)
    handlers = {"validate": cmd_validate, "plan": cmd_plan, "render": cmd_render}
    try:
        handler = getattr(args, "handler", None) or handlers[args.command]
        return int(handler(args, out))
    except SpecError as err:
        sys.stderr.write(f"error: {err}\n")
        return EXIT_REFUSED
    except FlagstageError as err:
        sys.stderr.write(f"error: {err}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
