"""Publishing ConfigMap data into a directory exactly the way the kubelet updates a volume.

The kubelet never rewrites a mounted file in place. Each version goes into a fresh hidden
directory named after the time (`..2026_12_03_10_00_00.123456789`); a temporary symlink
`..data_tmp` is pointed at it and renamed over `..data`, which is the single atomic step; each
key is a symlink `<key> -> ..data/<key>` created once; keys that disappeared lose their
symlink, and the previous version's directory is removed last. A reader that resolves `..data`
once therefore sees one whole version.

Tests use this to exercise the watcher against the real sequence, and local runs use it to
project a rendered rollout into a directory the app watches.
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


def publish(
    directory: str | os.PathLike[str],
    data: Mapping[str, str | bytes],
    *,
    now: datetime | None = None,
) -> Publication:
    """Make `data` (key -> content) the mounted version in `directory`, atomically.

    Creates `directory` when missing. Like the kubelet, leaves everything alone when the
    content is unchanged. Keys must be plain file names, as ConfigMap keys are.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    payload = {
        key: value.encode() if isinstance(value, str) else value for key, value in data.items()
    }
    for key in payload:
        if not key or "/" in key or key.startswith(".."):
            raise ValueError(f"{key!r} is not a valid ConfigMap key")

    old_name = current_version(target)
    old_dir = target / old_name if old_name else None
    if old_dir is not None and old_dir.is_dir() and _payload_of(old_dir) == payload:
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
    old_keys = set(_payload_of(old_dir)) if old_dir is not None and old_dir.is_dir() else set()
    for key in old_keys - set(payload):
        (target / key).unlink(missing_ok=True)
    if old_dir is not None:
        shutil.rmtree(old_dir, ignore_errors=True)
    return Publication(version_dir, swapped_at, changed=True)
