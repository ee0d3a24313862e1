"""Live toggles: watch the mounted config directory and swap in each good configuration.

`LiveToggles` holds the current `Snapshot` in one attribute; a swap is one reference
assignment of a new immutable snapshot, so a request that reads `current` once sees one whole
configuration. A background thread waits on inotify events for the mount directory (and its
nearest existing ancestor, so a directory created or re-created later is noticed), with a slow
poll as a net; every wake-up only re-reads the mount when its version (the target of `..data`)
moved. A bad configuration is refused, counted and kept for the status page, and the last good
snapshot stays. The thread logs unexpected errors and carries on; it never dies while the app runs.

What a snapshot contains is `flagstage_app.toggles.layering`'s business, reading the mount
consistently is `flagstage_app.toggles.mount`'s.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flagstage.errors import ConfigError
from flagstage.rendering import FEATURES_KEY, parse_features_document
from flagstage.snapshot import Snapshot
from flagstage_app.toggles.catalog import FEATURES, FeatureSpec
from flagstage_app.toggles.inotify import (
    IN_ATTRIB,
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    Event,
    Inotify,
)
from flagstage_app.toggles.layering import EnvOverrides, build_snapshot, read_env_overrides
from flagstage_app.toggles.metrics import ToggleMetrics
from flagstage_app.toggles.mount import Layout, MountChurnError, read_mount

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 2.0
ERROR_BACKOFF_SECONDS = 1.0
STOP_TIMEOUT_SECONDS = 5.0
REFUSED_EXCERPT_CHARS = 200

DIRECTORY_EVENTS = (
    IN_CREATE
    | IN_DELETE
    | IN_MOVED_TO
    | IN_MOVED_FROM
    | IN_CLOSE_WRITE
    | IN_ATTRIB
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
ANCESTOR_EVENTS = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR


@dataclass(frozen=True)
class RefusedConfig:
    """A configuration that was refused, and why."""

    version: str
    reason: str
    refused_at: datetime
    claimed_hash: str | None
    excerpt: str


@dataclass(frozen=True)
class ReloadStatus:
    """What the watcher is doing and what it last did, for the status endpoint."""

    directory: str | None
    mode: str
    directory_present: bool
    layout: Layout | None
    mount_version: str | None
    config_hash: str | None
    generation: int | None
    stage: str | None
    loaded_from: str
    last_reload_at: datetime | None
    reload_count: int
    refused_count: int
    last_refused: RefusedConfig | None
    env_problems: tuple[str, ...]
    last_error: str | None


class LiveToggles:
    """The app's current toggles, kept up to date from a mounted ConfigMap directory.

    Without a directory it serves defaults and `FEATURE_*` variables only. `start()` loads
    what is there (a missing or empty directory is fine) and starts the watcher thread.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        *,
        env: Mapping[str, str] | None = None,
        catalog: Iterable[FeatureSpec] = FEATURES,
        poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
        use_inotify: bool = True,
        key: str = FEATURES_KEY,
        metrics: ToggleMetrics | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else ToggleMetrics()
        self._directory = Path(directory) if directory is not None else None
        self._catalog = tuple(catalog)
        self._env: EnvOverrides = read_env_overrides(
            os.environ if env is None else env, self._catalog
        )
        for problem in self._env.problems:
            logger.warning("toggles: %s", problem)
        self._poll_interval = poll_interval_seconds
        self._use_inotify = use_inotify
        self._key = key

        self._snapshot: Snapshot = build_snapshot(catalog=self._catalog, env=self._env)
        self._loaded_from = "env" if self._env.values else "defaults"
        self._seen_version: str | None = None
        self._layout: Layout | None = None
        self._last_reload_at: datetime | None = None
        self._reload_count = 0
        self._refused_count = 0
        self._last_refused: RefusedConfig | None = None
        self._last_error: str | None = None
        self._mode = "idle"

        self._check_lock = threading.Lock()
        self._checked = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_read, self._wake_write = -1, -1
        self._dir_wd: int | None = None
        self._ancestor_wd: int | None = None
        self._ancestor: Path | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def current(self) -> Snapshot:
        """The snapshot in use; read it once per request and use that object throughout."""
        return self._snapshot

    @property
    def directory(self) -> Path | None:
        return self._directory

    def status(self) -> ReloadStatus:
        with self._check_lock:
            snapshot = self._snapshot
            return ReloadStatus(
                directory=str(self._directory) if self._directory is not None else None,
                mode=self._mode,
                directory_present=self._layout not in (None, "missing"),
                layout=self._layout,
                mount_version=self._seen_version,
                config_hash=snapshot.config_hash,
                generation=snapshot.generation,
                stage=snapshot.stage,
                loaded_from=self._loaded_from,
                last_reload_at=self._last_reload_at,
                reload_count=self._reload_count,
                refused_count=self._refused_count,
                last_refused=self._last_refused,
                env_problems=self._env.problems,
                last_error=self._last_error,
            )

    def wait_for(self, predicate: Callable[[Snapshot], bool], timeout_seconds: float) -> bool:
        """Block until `predicate(current)` holds (True) or the timeout passes (False)."""
        deadline = time.monotonic() + timeout_seconds
        with self._checked:
            while not predicate(self._snapshot):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._checked.wait(remaining)
            return True

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load what the directory holds now and start watching it (no-op without one)."""
        if self._directory is None or self._thread is not None:
            return
        # Watch before the first read, so nothing that happens in between goes unnoticed.
        inotify = self._open_inotify()
        if inotify is not None:
            self._ensure_watches(inotify)
        self._mode = "inotify" if inotify is not None else "poll"
        self.check()

        self._stopping.clear()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(
            target=self._run,
            args=(inotify,),
            name=f"toggles-watcher {self._directory}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        os.write(self._wake_write, b"x")
        thread.join(STOP_TIMEOUT_SECONDS)
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._thread = None
        self._dir_wd = self._ancestor_wd = None
        self._mode = "stopped"

    def __enter__(self) -> LiveToggles:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- checking --------------------------------------------------------------------------

    def check(self) -> bool:
        """Read the mount if its version moved; True when a new snapshot was swapped in."""
        if self._directory is None:
            return False
        try:
            with self._check_lock:
                return self._check_locked(self._directory)
        finally:
            with self._checked:
                self._checked.notify_all()

    def _check_locked(self, directory: Path) -> bool:
        try:
            read = read_mount(directory, (self._key,))
        except MountChurnError as err:
            logger.debug("toggles: %s; trying again on the next event", err)
            return False
        self._layout = read.layout
        if read.version == self._seen_version:
            return False
        self._seen_version = read.version
        if read.problem is not None:
            self._refuse(read.version, read.problem, b"")
            return False

        text = read.files.get(self._key)
        if text is None:
            logger.info(
                "toggles: no %s in %s (%s); keeping config %s",
                self._key,
                directory,
                read.layout,
                self._snapshot.config_hash or self._loaded_from,
            )
            return False
        try:
            snapshot = build_snapshot(
                catalog=self._catalog, env=self._env, document=parse_features_document(text)
            )
        except ConfigError as err:
            self._refuse(read.version, str(err), text)
            return False

        self._snapshot = snapshot
        self._loaded_from = f"{directory / self._key} ({read.version})"
        self._last_reload_at = datetime.now(UTC)
        self._reload_count += 1
        self.metrics.reloads.inc()
        self.metrics.loaded_timestamp.set(self._last_reload_at.timestamp())
        logger.info(
            "toggles: loaded config %s (stage %s, generation %s) from %s",
            snapshot.config_hash,
            snapshot.stage,
            snapshot.generation,
            directory,
        )
        return True

    def _refuse(self, version: str, reason: str, text: bytes) -> None:
        self._refused_count += 1
        self.metrics.refused.inc()
        excerpt = text[:REFUSED_EXCERPT_CHARS].decode(errors="replace")
        self._last_refused = RefusedConfig(
            version, reason, datetime.now(UTC), _claimed_hash(text), excerpt
        )
        logger.warning(
            "toggles: refused config in %s (%s): %s; keeping config %s",
            self._directory,
            version,
            reason,
            self._snapshot.config_hash or self._loaded_from,
        )

    # -- the watcher thread ----------------------------------------------------------------

    def _run(self, inotify: Inotify | None) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._watch_once(inotify)
                except Exception as err:
                    self.metrics.watcher_errors.inc()
                    self._last_error = f"{datetime.now(UTC).isoformat()}: {err!r}"
                    logger.exception("toggles: watcher error on %s; carrying on", self._directory)
                    self._stopping.wait(ERROR_BACKOFF_SECONDS)
        finally:
            if inotify is not None:
                inotify.close()

    def _open_inotify(self) -> Inotify | None:
        if not self._use_inotify:
            return None
        try:
            return Inotify()
        except OSError as err:
            logger.warning("toggles: inotify unavailable (%s); polling %s", err, self._directory)
            return None

    def _watch_once(self, inotify: Inotify | None) -> None:
        if inotify is None:
            self._stopping.wait(self._poll_interval)
        else:
            if self._ensure_watches(inotify):
                # Whatever happened before a new watch existed produced no event for us.
                self.check()
            events = inotify.wait(self._poll_interval, self._wake_read)
            self._forget_removed_watches(events)
        if not self._stopping.is_set():
            self.check()

    def _ensure_watches(self, inotify: Inotify) -> bool:
        """Watch the directory, and its nearest existing ancestor to see it (re)appear."""
        assert self._directory is not None
        added = False
        ancestor = _nearest_existing_ancestor(self._directory)
        if ancestor != self._ancestor or self._ancestor_wd is None:
            if self._ancestor_wd is not None:
                inotify.remove_watch(self._ancestor_wd)
            self._ancestor_wd = _try_watch(inotify, ancestor, ANCESTOR_EVENTS)
            self._ancestor = ancestor if self._ancestor_wd is not None else None
            added = self._ancestor_wd is not None
        if self._dir_wd is None:
            self._dir_wd = _try_watch(inotify, self._directory, DIRECTORY_EVENTS)
            added = added or self._dir_wd is not None
        return added

    def _forget_removed_watches(self, events: list[Event]) -> None:
        for event in events:
            if not event.mask & IN_IGNORED:
                continue
            if event.wd == self._dir_wd:
                self._dir_wd = None
            if event.wd == self._ancestor_wd:
                self._ancestor_wd = None


def _nearest_existing_ancestor(directory: Path) -> Path:
    for ancestor in directory.absolute().parents:
        if ancestor.is_dir():
            return ancestor
    return Path("/")


def _try_watch(inotify: Inotify, path: Path, mask: int) -> int | None:
    try:
        return inotify.add_watch(path, mask)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _claimed_hash(text: bytes) -> str | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    claimed = document.get("hash") if isinstance(document, dict) else None
    return claimed if isinstance(claimed, str) else None
