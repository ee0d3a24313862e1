"""Rendering a rollout file at one stage into a local features directory, as the kubelet would.

This is the local stand-in for the operator plus the kubelet: the rollout is validated and
rendered by the core (`flagstage.validation`, `flagstage.rendering`), and the ConfigMap data is
published with the kubelet's atomic update sequence (`flagstage_app.toggles.kubelet`), so an
app watching the directory reloads exactly as it would in a pod. Re-publishing another stage
into the same directory flips toggles live.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from flagstage.errors import FlagstageError
from flagstage.model import KIND, FeatureRollout
from flagstage.rendering import RenderedConfig, render_config
from flagstage.schedule import initial_progress, start_of
from flagstage.validation import parse_rollout
from flagstage_app.toggles.kubelet import publish

LIVE_STAGE = "live"
DEFAULT_ROLLOUT = Path("manifests/examples/six-week-rollout.yaml")


class PublishingError(Exception):
    """The rollout could not be read, was refused, or has no such stage."""


@dataclass(frozen=True)
class PublishedStage:
    rendered: RenderedConfig
    directory: Path
    version_dir: Path
    changed: bool


def load_rollout(path: Path) -> FeatureRollout:
    """The first FeatureRollout in the YAML file at `path`, validated by the core."""
    try:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except OSError as err:
        raise PublishingError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise PublishingError(f"{path} is not valid YAML: {err}") from err
    manifest = next(
        (doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == KIND), None
    )
    if manifest is None:
        raise PublishingError(f"{path} holds no document of kind {KIND}")
    try:
        return parse_rollout(manifest)
    except FlagstageError as err:
        raise PublishingError(f"{path}: {err}") from err


def stage_names(rollout: FeatureRollout) -> list[str]:
    return [stage.name for stage in rollout.spec.stages]


def resolve_stage(rollout: FeatureRollout, stage: str, *, now: datetime | None = None) -> int:
    """The index of `stage` (a stage name, or `live`: the stage the schedule has live now)."""
    if stage == LIVE_STAGE:
        spec = rollout.spec
        moment = now or datetime.now(UTC)
        # The schedule's answer, whether or not the rollout is paused in its manifest.
        unpaused = spec.model_copy(update={"paused": False})
        return initial_progress(unpaused, start=start_of(spec, moment), now=moment).stage_index
    names = stage_names(rollout)
    if stage not in names:
        raise PublishingError(
            f"{stage!r} is not a stage of {rollout.name}; use {LIVE_STAGE} or one of "
            f"{', '.join(names)}"
        )
    return names.index(stage)


def publish_stage(rollout: FeatureRollout, stage_index: int, directory: Path) -> PublishedStage:
    """Render `rollout` with stages up to `stage_index` applied and publish it in `directory`."""
    rendered = render_config(rollout, stage_index)
    publication = publish(directory, rendered.data)
    return PublishedStage(rendered, directory, publication.version_dir, publication.changed)
