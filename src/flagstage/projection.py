"""Projecting ConfigMap data into a directory exactly the way the kubelet updates a volume.

This is the one module of the core besides the CLI that touches the filesystem, and it is here
on purpose: the operator's `flagstage sync`, the app's local runs and every test that exercises
the app's watcher must write the same sequence the kubelet writes, and a workload must be able
to read it back without mixing versions. Keeping both halves next to the rendering they carry
means one implementation, with no dependency on the app or on a Kubernetes client.

The kubelet never rewrites a mounted file in place. Each version goes into a fresh hidden
directory named after the time (`..2026_12_03_10_00_00.123456789`); a temporary symlink
`..data_tmp` is pointed at it and renamed over `..data`, which is the single atomic step; each
key is a symlink `<key> -> ..data/<key>` created once; keys that disappeared lose their
symlink, and the previous version's directory is removed last. A reader that resolves `..data`
once and reads everything from its target therefore sees one whole version, as long as it
checks afterwards that `..data` did not move (the old directory may be gone by then).
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

DATA_LINK = "..data"
DATA_TMP_LINK = "..data_tmp"
FILE_MODE = 0o644
DIR_MODE = 0o755
READ_ATTEMPTS = 5


class ProjectionChurnError(OSError):
    """The projection changed under every attempt to read it; reading again later works."""


@dataclass(frozen=True)
class Publication:
    """What one `publish` did: the version directory `..data` now points at, and when."""

    version_dir: Path
    swapped_at: float
    """`time.perf_counter()` right after the rename of `..data_tmp` over `..data`."""
    changed: bool


def current_version(directory: str | os.PathLike[str]) -> str | None:
    """The name of the version directory `..data` points at, or None when there is none."""
    try:
        return os.readlink(Path(directory) / DATA_LINK)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _version_dir_name(now: datetime) -> str:
    # The kubelet's MkdirTemp appends random digits to the timestamp; nanoseconds look alike.
    return now.strftime("..%Y_%m_%d_%H_%M_%S.") + f"{random.randrange(10**9):09d}"


def _payload_of(version_dir: Path) -> dict[str, bytes]:
    return {entry.name: entry.read_bytes() for entry in version_dir.iterdir() if entry.is_file()}


def _check_keys(payload: Mapping[str, bytes]) -> None:
    for key in payload:
        if not key or "/" in key or key.startswith(".."):
            raise ValueError(f"{key!r} is not a valid ConfigMap key")


def publish(
    directory: str | os.PathLike[str],
    data: Mapping[str, str | bytes],
    *,
    now: datetime | None = None,
) -> Publication:
    """Make `data` (key -> content) the projected version in `directory`, atomically.

    Creates `directory` when missing. Like the kubelet, leaves everything alone when the
    content is unchanged. Keys must be plain file names, as ConfigMap keys are.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    payload = {
        key: value.encode() if isinstance(value, str) else value for key, value in data.items()
    }
    _check_keys(payload)

    old_name = current_version(target)
    old_dir = target / old_name if old_name else None
    old_payload = _payload_of(old_dir) if old_dir is not None and old_dir.is_dir() else None
    if old_dir is not None and old_payload == payload:
        return Publication(old_dir, time.perf_counter(), changed=False)

    # Write the new version where no reader looks yet.
    while True:
        version_dir = target / _version_dir_name(now or datetime.now(UTC))
        try:
            version_dir.mkdir(mode=DIR_MODE)
            break
        except FileExistsError:
            continue
    for key, content in payload.items():
        path = version_dir / key
        path.write_bytes(content)
        path.chmod(FILE_MODE)

    # The one atomic step: rename a fresh symlink over `..data`.
    tmp_link = target / DATA_TMP_LINK
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(version_dir.name, tmp_link)
    os.rename(tmp_link, target / DATA_LINK)
    swapped_at = time.perf_counter()

    # Visible keys go through `..data`, so existing symlinks already show the new content.
    for key in payload:
        link = target / key
        if not link.is_symlink():
            os.symlink(f"{DATA_LINK}/{key}", link)
    for key in set(old_payload or ()) - set(payload):
        (target / key).unlink(missing_ok=True)
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)
    return Publication(version_dir, swapped_at, changed=True)


def read_projection(
    directory: str | os.PathLike[str], *, attempts: int = READ_ATTEMPTS
) -> tuple[str | None, dict[str, bytes]]:
    """The version `..data` points at and every key of it, all read from that one version.

    Returns `(None, {})` when nothing was projected yet (no directory or no `..data`). Raises
    `ProjectionChurnError` when a new version replaced the one being read on every attempt.
    """
    root = Path(directory)
    for _ in range(attempts):
        version = current_version(root)
        if version is None:
            return None, {}
        try:
            files = _payload_of(root / version)
        except (FileNotFoundError, NotADirectoryError):
            continue  # the version was removed under us: read the new one
        if current_version(root) == version:
            return version, files
    raise ProjectionChurnError(f"{root} kept changing during {attempts} attempts to read it")
