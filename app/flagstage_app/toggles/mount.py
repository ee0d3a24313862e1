"""Reading a mounted ConfigMap directory as one consistent version.

With the kubelet's layout, the target of `..data` is the version of the whole mount: resolve it
once, read every key from that directory, then check `..data` still points there (the kubelet
may have swapped it and removed the old directory meanwhile; then read again). A plain
directory with a `features.json` file in it (a bind mount, a local run) is supported too; its
version is the file's inode, size and modification time. Parsing is left to the caller.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flagstage_app.toggles.kubelet import DATA_LINK

READ_ATTEMPTS = 5

Layout = Literal["configmap", "plain", "empty", "missing"]


class MountChurnError(OSError):
    """The mount changed under every attempt to read it; the next event or poll tries again."""


@dataclass(frozen=True)
class MountRead:
    """One consistent read: `version` names it, `files` holds the requested keys present.

    `problem` says why a version that will not fix itself cannot be read (`..data` points at
    nothing, a key is a directory or unreadable); the caller refuses that version.
    """

    layout: Layout
    version: str
    files: Mapping[str, bytes] = field(default_factory=dict)
    problem: str | None = None


def read_mount(
    directory: str | os.PathLike[str], keys: Iterable[str], *, attempts: int = READ_ATTEMPTS
) -> MountRead:
    """The requested `keys` of the mount at `directory`, all from the same version."""
    root = Path(directory)
    wanted = tuple(keys)
    for _ in range(attempts):
        if not root.is_dir():
            return MountRead("missing", "")
        try:
            target = os.readlink(root / DATA_LINK)
        except FileNotFoundError:
            result = _read_plain(root, wanted)
        except OSError:
            # `..data` exists but is not a symlink: not the kubelet's layout, read it plainly.
            result = _read_plain(root, wanted)
        else:
            result = _read_version(root, target, wanted)
        if result is not None:
            return result
    raise MountChurnError(f"{root} kept changing during {attempts} attempts to read it")


def _read_version(root: Path, target: str, keys: tuple[str, ...]) -> MountRead | None:
    version_dir = root / target
    files: dict[str, bytes] = {}
    problem: str | None = None
    try:
        for key in keys:
            try:
                files[key] = (version_dir / key).read_bytes()
            except FileNotFoundError:
                if not version_dir.is_dir():
                    problem = f"{DATA_LINK} points to {target!r}, which does not exist"
                    break
            except (IsADirectoryError, PermissionError) as err:
                problem = f"{key} in {target!r} cannot be read: {err.strerror}"
    except NotADirectoryError:
        problem = f"{DATA_LINK} points to {target!r}, which is not a directory"
    try:
        moved = os.readlink(root / DATA_LINK) != target
    except OSError:
        moved = True
    if moved:
        return None  # the version was replaced under us (and maybe removed): read the new one
    return MountRead("configmap", f"{DATA_LINK} -> {target}", files, problem)


def _signature(path: Path) -> str | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return f"{path.name} inode {stat.st_ino} size {stat.st_size} mtime {stat.st_mtime_ns}"


def _read_plain(root: Path, keys: tuple[str, ...]) -> MountRead | None:
    before = [_signature(root / key) for key in keys]
    files: dict[str, bytes] = {}
    for key in keys:
        try:
            files[key] = (root / key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
    after = [_signature(root / key) for key in keys]
    if before != after:
        return None
    present = [sig for sig in after if sig is not None]
    if not present:
        return MountRead("empty", "")
    return MountRead("plain", "; ".join(present), files)
