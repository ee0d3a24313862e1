"""`flagstage sync`: keep a directory in step with one ConfigMap, the way a volume mount would.

The kubelet refreshes a mounted ConfigMap only every minute or two. Run as a sidecar sharing an
`emptyDir` with the workload, this command watches the ConfigMap through the API instead and
projects each new content with the kubelet's own atomic sequence (`flagstage.projection`), so a
workload that watches its mount sees a change within milliseconds and never a half-written
version. Outside a cluster it is how the local demo feeds the app.

Each cycle reads the ConfigMap in full (a list narrowed to its name, which also yields the
resourceVersion to watch from), publishes it when its content differs from what was last
written, then watches from there until the API server ends the watch after
`--resync-seconds`; the next cycle's full read is the net for anything a watch missed. A 410
Gone starts the next cycle at once; other failures wait with exponential backoff. A deleted
ConfigMap leaves the last synced version in place, as the kubelet does for a mounted one, and
a recreated one is followed. Being refused by the API server (401, 403) is not transient: the
command stops and says which rights it lacks.

The `kubernetes` client is imported only when the command runs, so `flagstage` starts fast.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from flagstage.projection import publish, read_projection

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_RESYNC_SECONDS = 60
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10.0
# The client gives up on a silent connection this long after the watch should have ended.
READ_GRACE_SECONDS = 30.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

HELP = "Watch one ConfigMap and project its data into a directory, as a volume mount would."
DESCRIPTION = (
    HELP + " Each change is written with the kubelet's atomic update sequence within moments "
    "of reaching the API server (the kubelet itself takes a minute or more), so an app that "
    "watches the directory picks it up live. Runs until SIGTERM or Ctrl-C, or once with --once."
)


class SyncError(Exception):
    """The sync cannot go on: the message says what failed and what to do about it."""


class _Stopping(Exception):
    """Raised by the signal handler to leave a blocking read of the API server."""


def data_hash(data: Mapping[str, bytes]) -> str:
    """`sha256:<hex>` over the keys and values, independent of their order."""
    digest = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        digest.update(f"{key}\0{len(value)}\0".encode())
        digest.update(value)
    return "sha256:" + digest.hexdigest()


def config_map_files(config_map: Any) -> dict[str, bytes]:
    """A ConfigMap's `data` and decoded `binaryData`, key by key, as the kubelet projects them."""
    files = {key: value.encode() for key, value in (config_map.data or {}).items()}
    for key, value in (config_map.binary_data or {}).items():
        files[key] = base64.b64decode(value)
    return files


@dataclass(frozen=True)
class SyncTarget:
    """Which ConfigMap to follow and where to project it."""

    namespace: str
    name: str
    directory: Path

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class ConfigMapSync:
    """Follows one ConfigMap into a directory until `stop()` (or a signal) ends `run()`."""

    def __init__(
        self, api: Any, target: SyncTarget, *, resync_seconds: float = DEFAULT_RESYNC_SECONDS
    ) -> None:
        from kubernetes import client

        self._core: Any = client.CoreV1Api(api)
        self.target = target
        self.resync_seconds = resync_seconds
        self._stop = threading.Event()
        self._blocking = False
        _, existing = read_projection(target.directory)
        self._last_hash: str | None = data_hash(existing) if existing else None
        self._reported = False
        self._present: bool | None = None

    # -- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask `run()` to return; it does within a moment, never in the middle of a write."""
        self._stop.set()

    def handle_signal(self, signum: int, frame: FrameType | None) -> None:
        """A SIGTERM/SIGINT handler: stop, and leave a blocking API read if one is under way."""
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self._stop.set()
        if self._blocking:
            raise _Stopping

    @contextmanager
    def _interruptible(self) -> Iterator[None]:
        self._blocking = True
        try:
            yield
        finally:
            self._blocking = False

    # -- syncing -------------------------------------------------------------------------------

    def sync_once(self) -> bool:
        """Read the ConfigMap and project it; False when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            with self._interruptible():
                config_map = self._core.read_namespaced_config_map(
                    self.target.name, self.target.namespace, _request_timeout=self._timeout(0)
                )
        except ApiException as err:
            if err.status == 404:
                return False
            raise self._refused(err, "get") from err
        self._project(config_map)
        return True

    def run(self) -> None:
        """Follow the ConfigMap until stopped; raises SyncError when the API refuses access."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        backoff = BACKOFF_INITIAL_SECONDS
        try:
            while not self._stop.is_set():
                try:
                    self._cycle()
                    backoff = BACKOFF_INITIAL_SECONDS
                except ApiException as err:
                    if err.status in (401, 403):
                        raise self._refused(err, "list and watch") from err
                    if err.status == 410:
                        logger.info("watch of ConfigMap %s expired (410 Gone), re-reading", self)
                        continue
                    logger.warning(
                        "reading ConfigMap %s failed (%s %s), retrying in %.1fs",
                        self,
                        err.status,
                        err.reason,
                        backoff,
                    )
                    backoff = self._back_off(backoff)
                except (HTTPError, OSError, ValueError) as err:
                    # A refused or cut connection, or a stream cut in the middle of an event.
                    logger.warning(
                        "connection to the API server failed (%s), retrying in %.1fs",
                        getattr(err, "reason", None) or err,
                        backoff,
                    )
                    backoff = self._back_off(backoff)
        except _Stopping:
            pass
        logger.info("stopped syncing ConfigMap %s", self)

    def _cycle(self) -> None:
        from kubernetes import watch

        # A full read first: it catches anything missed, and gives the version to watch from.
        with self._interruptible():
            listed = self._core.list_namespaced_config_map(
                self.target.namespace,
                field_selector=f"metadata.name={self.target.name}",
                _request_timeout=self._timeout(0),
            )
        listed_version = listed.metadata.resource_version if listed.metadata else None
        if listed.items:
            self._project(listed.items[0])
        elif self._present is not False:
            logger.info("ConfigMap %s does not exist (yet); waiting for it", self)
            self._present = False
        if self._stop.is_set():
            return

        watcher: Any = watch.Watch()  # type: ignore[no-untyped-call]
        with self._interruptible():
            events = watcher.stream(
                self._core.list_namespaced_config_map,
                self.target.namespace,
                field_selector=f"metadata.name={self.target.name}",
                resource_version=listed_version,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, int(self.resync_seconds)),
                _request_timeout=self._timeout(self.resync_seconds),
            )
            for event in events:
                self._blocking = False
                self._on_event(event["type"], event["object"])
                if self._stop.is_set():
                    watcher.stop()
                    break
                self._blocking = True

    def _on_event(self, kind: str, config_map: Any) -> None:
        if kind in ("ADDED", "MODIFIED"):
            self._project(config_map)
        elif kind == "DELETED":
            self._present = False
            logger.warning(
                "ConfigMap %s was deleted; %s keeps the last synced version",
                self,
                self.target.directory,
            )

    def _project(self, config_map: Any) -> None:
        self._present = True
        files = config_map_files(config_map)
        digest = data_hash(files)
        version = config_map.metadata.resource_version
        if digest == self._last_hash:
            log = logger.debug if self._reported else logger.info
            log(
                "ConfigMap %s version %s (hash %s) is already in %s",
                self,
                version,
                digest,
                self.target.directory,
            )
            self._reported = True
            return
        try:
            publish(self.target.directory, files)
        except OSError as err:
            raise SyncError(
                f"cannot write ConfigMap {self} into {self.target.directory}: {err.strerror}; "
                "check that the directory is writable"
            ) from err
        self._last_hash = digest
        self._reported = True
        logger.info(
            "synced ConfigMap %s version %s (hash %s) to %s",
            self,
            version,
            digest,
            self.target.directory,
        )

    # -- helpers -------------------------------------------------------------------------------

    def _back_off(self, delay: float) -> float:
        with self._interruptible():
            self._stop.wait(delay)
        return min(delay * 2, BACKOFF_MAX_SECONDS)

    def _timeout(self, expected_seconds: float) -> tuple[float, float]:
        return (CONNECT_TIMEOUT_SECONDS, expected_seconds + READ_GRACE_SECONDS)

    def _refused(self, err: Any, verbs: str) -> SyncError:
        message = _api_message(err)
        return SyncError(
            f"the API server refused to let this identity {verbs} ConfigMap {self} "
            f"({err.status} {err.reason}: {message}); grant get, list and watch on configmaps "
            f"in namespace {self.target.namespace}, or use another --kubeconfig"
        )

    def __str__(self) -> str:
        return str(self.target)


def _api_message(err: Any) -> str:
    import json

    try:
        return str(json.loads(err.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(err.reason)


# -- the command -------------------------------------------------------------------------------


def add_sync_command(commands: Any) -> None:
    """Add `sync` to the `flagstage` CLI's subparsers."""
    sync = commands.add_parser("sync", help=HELP, description=DESCRIPTION)
    sync.add_argument("--name", required=True, help="the ConfigMap to follow")
    sync.add_argument(
        "-n",
        "--namespace",
        help="its namespace (default: the pod's own in a cluster, else the kubeconfig "
        "context's, else default)",
    )
    sync.add_argument(
        "--dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="the directory to project into (created when missing)",
    )
    sync.add_argument(
        "--kubeconfig",
        help="kubeconfig file (default: the in-cluster ServiceAccount, else $KUBECONFIG or "
        "~/.kube/config)",
    )
    sync.add_argument("--once", action="store_true", help="write the ConfigMap once and exit")
    sync.add_argument(
        "--resync-seconds",
        type=float,
        default=DEFAULT_RESYNC_SECONDS,
        metavar="S",
        help=f"re-read the ConfigMap in full at least this often (default: "
        f"{DEFAULT_RESYNC_SECONDS})",
    )
    sync.add_argument("-v", "--verbose", action="store_true", help="log every event")
    sync.set_defaults(handler=run_sync)


def _in_cluster(kubeconfig: str | None) -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not kubeconfig


def _api_client(kubeconfig: str | None) -> Any:
    from kubernetes import client, config

    if _in_cluster(kubeconfig):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    return config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


def _default_namespace(kubeconfig: str | None) -> str:
    from kubernetes import config

    if _in_cluster(kubeconfig):
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip() or "default"
        except OSError:
            return "default"
    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


def run_sync(args: argparse.Namespace, out: TextIO) -> int:
    """Sync as `args` asks; logs go to standard error, the exit code says how it ended."""
    from kubernetes import config

    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # The client retries a refused connection a few times itself; the backoff here says so once.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    # The client reads $KUBECONFIG once, when first imported; read it now instead.
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    namespace = args.namespace or _default_namespace(kubeconfig)
    try:
        api = _api_client(kubeconfig)
    except config.ConfigException as err:
        sys.stderr.write(f"error: cannot load the kubeconfig: {err}\n")
        return EXIT_USAGE

    target = SyncTarget(namespace, args.name, args.dir)
    with api:
        sync = ConfigMapSync(api, target, resync_seconds=args.resync_seconds)
        previous = {
            signum: signal.signal(signum, sync.handle_signal)
            for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            if args.once:
                if not sync.sync_once():
                    sys.stderr.write(f"error: ConfigMap {target} not found\n")
                    return EXIT_FAILED
            else:
                logger.info("syncing ConfigMap %s to %s", target, target.directory)
                sync.run()
        except _Stopping:
            logger.info("stopped before ConfigMap %s was read", target)
        except SyncError as err:
            sys.stderr.write(f"error: {err}\n")
            return EXIT_FAILED
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    return EXIT_OK
