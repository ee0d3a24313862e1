"""`make demo`: the whole of flagstage on this machine, a six-week rollout walked in minutes.

Starts a real control plane (etcd and kube-apiserver on loopback, the test suite's launcher),
installs the CRD, runs `flagstage-operator` against it, applies the example six-week rollout
with every stage shortened to DEMO_STAGE_SECONDS (30 by default) and starting now, follows the
rollout's ConfigMap into var/demo/features with `flagstage sync`, and serves the insights app
watching that directory on 127.0.0.1:DEMO_PORT (8000). Then it prints what to watch and, as the
stages advance, one line per change: the operator's stage and what the app now serves.

It runs until Ctrl-C or SIGTERM, or for DEMO_SECONDS when that is set, and stops everything it
started, in reverse order. Logs and the kubeconfig stay in var/demo/ for a look afterwards.
Nothing here is a production set-up: no kubelet, no pods; the app and the operator are plain
processes, which is exactly what lets the whole loop run without Docker or a cluster.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DEMO_DIR = REPO / "var" / "demo"
EXAMPLE = REPO / "manifests" / "examples" / "six-week-rollout.yaml"
NAMESPACE = "default"
TENANT = "acme"

DEFAULT_STAGE_SECONDS = 30
DEFAULT_PORT = 8000
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.5
OPERATOR_TICK_SECONDS = 1.0
LOG_TAIL_LINES = 30
_PR_SET_PDEATHSIG = 1
_STARTED = time.monotonic()


class DemoError(Exception):
    """The demo could not start or a part of it died; the message says which and where to look."""


class _Stop(Exception):
    """SIGTERM arrived: leave the watch loop and stop everything."""


def _die_with_parent() -> None:
    # If the demo is killed outright, the kernel stops its children instead of orphaning them.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _answers(url: str) -> bool:
    """Whether `url` answers 200 (no proxy: everything listens on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _get(url: str, headers: dict[str, str] | None = None) -> Any:
    """The JSON at `url`, or None while nothing answers there (no proxy: all on loopback)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=2) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _env_seconds(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError as err:
        raise DemoError(f"{name}={text!r} is not a number of seconds") from err
    if value <= 0:
        raise DemoError(f"{name} must be more than 0 seconds, not {text}")
    return value


@dataclass
class Child:
    """A process the demo started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
            tail = "\n".join(lines[-LOG_TAIL_LINES:])
            raise DemoError(f"{self.name} exited with code {code}; end of {self.log_path}:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


class Demo:
    """Everything `make demo` runs, started in order and stopped in reverse."""

    def __init__(self, *, stage_seconds: float, port: int) -> None:
        self.stage_seconds = stage_seconds
        self.port = port
        self.features_dir = DEMO_DIR / "features"
        self.children: list[Child] = []
        self.plane: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- starting ------------------------------------------------------------------------------

    def start(self) -> None:
        if _port_taken(self.port):
            raise DemoError(
                f"port {self.port} is taken (a `make run` still serving?); stop it or pick "
                "another with DEMO_PORT=..."
            )
        # Each run starts clean: a fresh etcd, no features from an earlier run.
        for stale in ("controlplane", "features"):
            shutil.rmtree(DEMO_DIR / stale, ignore_errors=True)
        DEMO_DIR.mkdir(parents=True, exist_ok=True)

        self._start_control_plane()
        self._install_crd()

        # The three processes start side by side (their imports are most of the wait); the
        # rollout comes last, so that its first stage is live while everything watches.
        operator_ready = self._start_operator()
        sync = self._start_sync()
        app = self._start_app()
        self._wait_until(operator_ready[0], operator_ready[1])
        step(f"operator running (log {_shown(operator_ready[0].log_path)})")
        self._wait_until(app, lambda: _answers(f"{self.base_url}/healthz"))
        step(f"app serving on {self.base_url}, watching {_shown(self.features_dir)}")

        self._apply_rollout()
        self._wait_until(sync, lambda: (self.features_dir / "..data").exists())
        step(f"sync wrote ConfigMap {self.config_map_name()} into {_shown(self.features_dir)}")

    def _start_control_plane(self) -> None:
        # The test suite's launcher is the one way this repository runs a control plane.
        sys.path.insert(0, str(REPO))
        from tests.controlplane.assets import AssetsMissingError
        from tests.controlplane.launcher import ControlPlane, ControlPlaneError

        step("starting etcd and kube-apiserver")
        plane = ControlPlane(workdir=DEMO_DIR / "controlplane")
        try:
            self.plane = plane.start()
        except (AssetsMissingError, ControlPlaneError) as err:
            raise DemoError(f"the control plane did not start: {err}") from err
        step(f"API server ready at {self.plane.server}")

    def _install_crd(self) -> None:
        from flagstage_operator.crd import CRD_NAME, CRD_PATH

        self._kubectl("apply", "--server-side", "-f", str(CRD_PATH))
        self._kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
        step(f"installed the CRD {CRD_NAME}")

    def _start_operator(self) -> tuple[Child, Callable[[], bool]]:
        health_port = _free_port()
        operator = self._spawn(
            "flagstage-operator",
            [
                "--namespace",
                NAMESPACE,
                "--bind-address",
                "127.0.0.1",
                "--health-port",
                str(health_port),
                "--metrics-port",
                str(_free_port()),
                "--tick-seconds",
                str(OPERATOR_TICK_SECONDS),
            ],
            log_name="operator.log",
        )
        return operator, lambda: _answers(f"http://127.0.0.1:{health_port}/healthz")

    def _start_sync(self) -> Child:
        return self._spawn(
            "flagstage",
            [
                "sync",
                "--namespace",
                NAMESPACE,
                "--name",
                self.config_map_name(),
                "--dir",
                # Relative to the repository, where it runs, so its log lines stay short.
                str(self.features_dir.relative_to(REPO)),
                "--kubeconfig",
                str(self.plane.kubeconfig),
            ],
            log_name="sync.log",
        )

    def _start_app(self) -> Child:
        return self._spawn(
            "flagstage-app",
            ["serve", "--host", "127.0.0.1", "--port", str(self.port)],
            log_name="app.log",
            env={
                "FEATURES_CONFIG_DIR": str(self.features_dir),
                "DATABASE_URL": f"sqlite:///{DEMO_DIR / 'flagstage.db'}",
            },
        )

    def _apply_rollout(self) -> None:
        manifest = compressed_rollout(self.example(), self.stage_seconds)
        path = DEMO_DIR / "rollout.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
        self._kubectl("apply", "-n", NAMESPACE, "-f", str(path))
        step(
            f"applied {_shown(path)}: {len(manifest['spec']['stages'])} stages of "
            f"{self.stage_seconds:g}s from now"
        )

    def _kubectl(self, *args: str) -> None:
        from tests.controlplane.launcher import ControlPlaneError

        try:
            self.plane.kubectl(*args)
        except ControlPlaneError as err:
            raise DemoError(str(err)) from err

    def example(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
        return loaded

    def config_map_name(self) -> str:
        manifest = self.example()
        target = manifest["spec"].get("target") or {}
        return str(target.get("configMap") or f"{manifest['metadata']['name']}-features")

    def _spawn(
        self,
        command: str,
        args: Sequence[str],
        *,
        log_name: str,
        env: dict[str, str] | None = None,
    ) -> Child:
        log_path = DEMO_DIR / log_name
        environment = {**os.environ, "KUBECONFIG": str(self.plane.kubeconfig), **(env or {})}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [str(VENV_BIN / command), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=REPO,
                # Its own process group: Ctrl-C reaches the demo, which stops children in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        child = Child(
            command if command != "flagstage" else f"flagstage {args[0]}", popen, log_path
        )
        self.children.append(child)
        return child

    def _wait_until(self, child: Child, ready: Callable[[], object]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            child.check_alive()
            if ready():
                return
            time.sleep(0.2)
        raise DemoError(
            f"{child.name} was not ready after {STARTUP_TIMEOUT_SECONDS:.0f}s; see {child.log_path}"
        )

    # -- watching ------------------------------------------------------------------------------

    def instructions(self) -> str:
        from tests.controlplane import assets

        kubeconfig = _shown(self.plane.kubeconfig)
        kubectl = "kubectl" if shutil.which("kubectl") else str(assets.find_binary("kubectl"))
        return "\n".join(
            [
                "",
                "flagstage demo is running. In another terminal:",
                f"  export KUBECONFIG={kubeconfig}",
                f"  {kubectl} get fr -w",
                f"  {kubectl} describe fr {self.rollout_name()}",
                f"  curl -H 'X-Customer-ID: {TENANT}' {self.base_url}/api/feature-status",
                f"  curl {self.base_url}/api/hot-reload-status",
                f"  tail -f {_shown(DEMO_DIR)}/{{operator,sync,app}}.log",
                "",
                "Changes as they happen (operator stage | what the app serves to "
                f"{TENANT}); Ctrl-C stops everything:",
            ]
        )

    def rollout_name(self) -> str:
        return str(self.example()["metadata"]["name"])

    def watch(self, seconds: float | None) -> None:
        """Print a line each time the operator's stage or the app's snapshot changes."""
        from flagstage_operator.crd import PLURAL
        from kubernetes import client

        from flagstage.model import API_GROUP, API_VERSION

        deadline = None if seconds is None else time.monotonic() + seconds
        last: tuple[Any, ...] | None = None
        with self.plane.api_client() as api:
            custom = client.CustomObjectsApi(api)
            while deadline is None or time.monotonic() < deadline:
                for child in self.children:
                    child.check_alive()
                rollout: Any = custom.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, NAMESPACE, PLURAL, self.rollout_name()
                )
                status = _get(f"{self.base_url}/api/feature-status", {"X-Customer-ID": TENANT})
                seen = describe_change(rollout, status)
                if seen != last:
                    print(f"{datetime.now():%H:%M:%S}  {seen[0]:<26} | {seen[1]}", flush=True)
                    last = seen
                time.sleep(POLL_INTERVAL_SECONDS)

    # -- stopping ------------------------------------------------------------------------------

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.plane is not None:
            self.plane.stop()
            self.plane = None


def compressed_rollout(manifest: dict[str, Any], stage_seconds: float) -> dict[str, Any]:
    """`manifest` with every stage `stage_seconds` long and the first starting now."""
    fast = copy.deepcopy(manifest)
    fast["metadata"].pop("namespace", None)
    fast["spec"]["schedule"] = {
        "start": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stageDuration": f"{stage_seconds:g}s",
    }
    for stage in fast["spec"].get("stages", []):
        stage.pop("duration", None)
    return fast


def describe_change(rollout: dict[str, Any], status: Any) -> tuple[str, str]:
    """(the operator's stage, the app's stage and features on), as the watch prints them."""
    stage = (rollout.get("status") or {}).get("stage") or {}
    total = len(rollout["spec"].get("stages", []))
    if stage.get("name"):
        operator_side = f"operator: {stage['name']} ({stage.get('index', 0) + 1}/{total})"
    else:
        operator_side = "operator: (no stage yet)"
    if not status:
        return operator_side, "app: not answering"
    on = [name for name, feature in status["features"].items() if feature["enabled"]]
    return operator_side, f"app: {status.get('stage') or '-'}, on: {', '.join(on) or 'nothing'}"


def step(message: str) -> None:
    print(f"demo [{time.monotonic() - _STARTED:5.1f}s] {message}", flush=True)


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    try:
        stage_seconds = _env_seconds("DEMO_STAGE_SECONDS") or DEFAULT_STAGE_SECONDS
        seconds = _env_seconds("DEMO_SECONDS")
        port = int(os.environ.get("DEMO_PORT") or DEFAULT_PORT)
    except (DemoError, ValueError) as err:
        print(f"demo: error: {err}", file=sys.stderr)
        return 2

    demo = Demo(stage_seconds=stage_seconds, port=port)
    code = 0
    with _sigterm_stops():
        try:
            demo.start()
            print(demo.instructions(), flush=True)
            demo.watch(seconds)
        except (KeyboardInterrupt, _Stop):
            print("", flush=True)
        except DemoError as err:
            print(f"demo: error: {err}", file=sys.stderr, flush=True)
            code = 1
        finally:
            step("stopping the app, sync, operator and control plane")
            demo.stop()
    step(f"stopped; logs and the kubeconfig stay in {_shown(DEMO_DIR)}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
