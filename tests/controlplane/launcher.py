"""A real Kubernetes control plane (etcd and kube-apiserver) on loopback, for tests and demos.

`ControlPlane` generates a throwaway PKI, starts etcd and kube-apiserver on free 127.0.0.1
ports, waits for `/readyz`, and writes an admin kubeconfig that kubectl, helm, the kubernetes
client and kopf all accept. It also hands out kubeconfigs for less privileged identities: a
ServiceAccount (a TokenRequest token) or any user and groups (a client certificate).

What it deliberately leaves out: there is no controller-manager, scheduler or kubelet. Objects
are validated, admitted and stored, webhooks are called, RBAC is enforced, but no pod runs, no
ReplicaSet appears for a Deployment, no `default` ServiceAccount is created in a new namespace
(hence the ServiceAccount admission plugin is off), and a deleted namespace stays Terminating.
Tests therefore use a fresh namespace each rather than cleaning one up.

`outage()` stops kube-apiserver (and etcd, if asked) and starts it again on the same ports,
data and certificates, so clients holding the kubeconfig see one cluster go away and come
back, as during an upgrade of the control plane.

Finding the binaries is `assets`' job and making certificates is `pki`'s.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ipaddress
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import yaml

from . import assets, pki

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.1
PORT_ATTEMPTS = 3
LOG_TAIL_LINES = 40

# The apiserver needs a Service CIDR even though nothing routes to it; it must not overlap
# 127.0.0.0/8, where everything here really listens.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"

ADMIN_USER = "flagstage-admin"
CONTEXT_NAME = "flagstage-test"

_PORT_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
_PR_SET_PDEATHSIG = 1


class ControlPlaneError(Exception):
    """The control plane could not be started, or a call against it failed."""


class _PortTakenError(ControlPlaneError):
    """A port picked as free was taken before the process bound it; retried with others."""


def _free_ports(count: int) -> list[int]:
    # Hold every socket open until all are picked, so that the ports differ from each other.
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def _die_with_parent() -> None:
    # Runs in the child before exec: if the test process is killed outright (a CI timeout),
    # the kernel sends SIGTERM to etcd and kube-apiserver instead of leaving them running.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


class _Process:
    """One child process whose output goes to a log file."""

    def __init__(self, name: str, args: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        logger.debug("started %s (pid %s), log %s", name, self._popen.pid, log_path)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def check_alive(self) -> None:
        code = self._popen.poll()
        if code is None:
            return
        tail = _tail(self.log_path)
        if _PORT_IN_USE.search(tail):
            raise _PortTakenError(f"{self.name} found its port taken")
        raise ControlPlaneError(
            f"{self.name} exited with code {code} while starting; last lines of "
            f"{self.log_path}:\n{tail}"
        )

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        if self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %s) ignored SIGTERM; killing it", self.name, self.pid)
            self._popen.kill()
            self._popen.wait()
        logger.debug("stopped %s (pid %s)", self.name, self.pid)


class ControlPlane:
    """etcd and kube-apiserver on loopback, with an admin kubeconfig.

    Use it as a context manager, or call `start()` and `stop()`:

        with ControlPlane() as plane:
            plane.kubectl("get", "namespaces")
    """

    def __init__(
        self,
        *,
        workdir: Path | None = None,
        startup_timeout_seconds: float = STARTUP_TIMEOUT_SECONDS,
        extra_apiserver_args: Sequence[str] = (),
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix="flagstage-controlplane-")) if workdir is None else workdir
        )
        self._startup_timeout = startup_timeout_seconds
        self._extra_apiserver_args = list(extra_apiserver_args)
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        self._ca: pki.CertificateAuthority | None = None
        self._port = 0
        self._etcd_url = ""
        self._etcd_ports: tuple[int, int] | None = None

    # -- what other code uses ------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL, e.g. https://127.0.0.1:43127."""
        return f"https://127.0.0.1:{self._port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in `system:masters`)."""
        return self.workdir / "kubeconfig"

    @property
    def ca_cert_path(self) -> Path:
        """The CA that signed the serving certificate; webhook callers can trust it too."""
        return self.workdir / "pki" / "ca.crt"

    @property
    def ca_bundle(self) -> str:
        """The CA in base64, as a webhook configuration's `caBundle` wants it."""
        return _b64(self.ca_cert_path.read_bytes())

    @property
    def log_paths(self) -> dict[str, Path]:
        return {
            "etcd": self.workdir / "etcd.log",
            "kube-apiserver": self.workdir / "kube-apiserver.log",
        }

    def api_client(self, kubeconfig: Path | None = None) -> ApiClient:
        """A `kubernetes` ApiClient for the admin, or for any kubeconfig this plane wrote.

        The caller closes it (`with plane.api_client() as api: ...`).
        """
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        stdin: str | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run the pinned kubectl against this plane and return its result.

        With `check`, a non-zero exit raises ControlPlaneError carrying kubectl's stderr.
        """
        command = [
            str(assets.find_binary("kubectl")),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            *args,
        ]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} exited with {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def kubeconfig_for_user(self, name: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig that authenticates as user `name` in `groups`, by client certificate.

        The identity has no permissions beyond what RBAC grants that user or those groups
        (every authenticated user is also in `system:authenticated`).
        """
        ca = self._require_ca()
        issued = ca.issue(name, organizations=tuple(groups), client=True)
        return self._write_kubeconfig(
            self.workdir / "kubeconfigs" / f"user-{_slug('-'.join((name, *groups)))}.yaml",
            user={
                "client-certificate-data": _b64(issued.cert_pem),
                "client-key-data": _b64(issued.key_pem),
            },
        )

    def kubeconfig_for_service_account(
        self,
        namespace: str,
        name: str,
        *,
        create: bool = True,
        expiration_seconds: int = 3600,
    ) -> Path:
        """A kubeconfig that authenticates as ServiceAccount `namespace/name`, by a bound token.

        The token comes from the TokenRequest API, as a projected token does in a pod. With
        `create`, the ServiceAccount is created if it does not exist; the namespace must.
        """
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            if create:
                body = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
                try:
                    core.create_namespaced_service_account(namespace, body)
                except ApiException as err:
                    if err.status != 409:
                        raise ControlPlaneError(
                            f"cannot create ServiceAccount {namespace}/{name}: {err.reason}"
                        ) from err
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
            )
            response = core.create_namespaced_service_account_token(name, namespace, request)

        return self._write_kubeconfig(
            self.workdir / "kubeconfigs" / f"sa-{_slug(namespace)}-{_slug(name)}.yaml",
            user={"token": response.status.token},
        )

    def issue_serving_certificate(
        self, name: str, hosts: Sequence[str] = ("127.0.0.1", "localhost")
    ) -> tuple[Path, Path]:
        """A serving certificate from this plane's CA, for a webhook on loopback.

        Returns the (certificate, key) file paths; the API server trusts them when the
        webhook configuration's `caBundle` is `ca_bundle`.
        """
        ips = tuple(host for host in hosts if _is_ip(host))
        names = tuple(host for host in hosts if not _is_ip(host))
        issued = self._require_ca().issue(name, dns_names=names, ip_addresses=ips, server=True)
        directory = self.workdir / "serving"
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{_slug(name)}.crt", directory / f"{_slug(name)}.key"
        cert_path.write_bytes(issued.cert_pem)
        key_path.write_bytes(issued.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        """Start etcd and kube-apiserver and wait until the API server is ready."""
        apiserver_binary = assets.find_binary("kube-apiserver")
        etcd_binary = assets.find_binary("etcd")
        started = time.monotonic()
        self._write_pki()

        try:
            self._start_with_retries("etcd", lambda: self._start_etcd(etcd_binary))
            self._start_with_retries(
                "kube-apiserver", lambda: self._start_apiserver(apiserver_binary)
            )
        except BaseException:
            self.stop(keep_files=True)
            raise

        self._write_kubeconfig(
            self.kubeconfig,
            user={
                "client-certificate-data": _b64(self._read_pki("admin.crt")),
                "client-key-data": _b64(self._read_pki("admin.key")),
            },
        )
        logger.info(
            "control plane ready at %s in %.1fs (workdir %s)",
            self.server,
            time.monotonic() - started,
            self.workdir,
        )
        return self

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop kube-apiserver, then etcd; remove the work directory unless `keep_files`."""
        # The apiserver goes first so that it does not spend its shutdown retrying etcd.
        for process in (self._apiserver, self._etcd):
            if process is not None:
                process.stop()
        self._apiserver = self._etcd = None

        if keep_files or not self._owns_workdir:
            logger.info("control plane files and logs kept in %s", self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @contextlib.contextmanager
    def outage(self, *, etcd: bool = False) -> Iterator[None]:
        """Stop kube-apiserver (and etcd with `etcd`) for the body of the `with` block.

        Both come back on the same ports with the same data and certificates, and the block
        exits once the API server is ready again:

            with plane.outage(etcd=True):
                time.sleep(5)  # clients see connections refused
        """
        if self._apiserver is None or self._etcd is None:
            raise ControlPlaneError("the control plane is not running")
        self._apiserver.stop()
        self._apiserver = None
        if etcd:
            self._etcd.stop()
            self._etcd = None
        try:
            yield
        finally:
            if self._etcd is None:
                self._start_etcd(assets.find_binary("etcd"), keep=True)
            self._start_apiserver(assets.find_binary("kube-apiserver"), keep=True)
            logger.info("control plane back at %s", self.server)

    def restart(self, *, etcd: bool = False) -> None:
        """Restart kube-apiserver (and etcd with `etcd`) on the same ports and data."""
        with self.outage(etcd=etcd):
            pass

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop(keep_files=exc is not None)

    # -- internals -----------------------------------------------------------------------------

    def _start_with_retries(self, name: str, start_once: Callable[[], None]) -> None:
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                start_once()
                return
            except _PortTakenError:
                logger.warning("%s lost its port to another process (attempt %s)", name, attempt)
        raise ControlPlaneError(f"{name} found its ports taken {PORT_ATTEMPTS} times in a row")

    def _start_etcd(self, binary: Path, *, keep: bool = False) -> None:
        """Start etcd on new ports and data, or with `keep` on the ports and data it had."""
        if keep and self._etcd_ports is not None:
            client_port, peer_port = self._etcd_ports
        else:
            client_port, peer_port = _free_ports(2)
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        data_dir = self.workdir / "etcd-data"
        if not keep:
            # A failed attempt may have initialised a member with the old peer URL.
            shutil.rmtree(data_dir, ignore_errors=True)

        self._etcd = _Process(
            "etcd",
            [
                str(binary),
                "--name=flagstage-test",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=flagstage-test={peer_url}",
                # The data is thrown away after the run; fsync would only slow every write.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            self.log_paths["etcd"],
        )
        self._etcd_url = client_url
        self._etcd_ports = (client_port, peer_port)
        self._wait_until(self._etcd, lambda: _http_ok(f"{client_url}/health"))

    def _start_apiserver(self, binary: Path, *, keep: bool = False) -> None:
        """Start kube-apiserver on a new port, or with `keep` on the port it had."""
        if not (keep and self._port):
            (self._port,) = _free_ports(1)
        pki_dir = self.workdir / "pki"
        args = [
            str(binary),
            f"--etcd-servers={self._etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port}",
            f"--cert-dir={pki_dir}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={self.ca_cert_path}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No controller-manager creates the `default` ServiceAccount of a namespace, so
            # this plugin would refuse every pod.
            "--disable-admission-plugins=ServiceAccount",
            # The `kubernetes` Service would get a loopback endpoint, which validation refuses.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            *self._extra_apiserver_args,
        ]
        self._apiserver = _Process("kube-apiserver", args, self.log_paths["kube-apiserver"])
        context = self._admin_ssl_context()
        self._wait_until(
            self._apiserver, lambda: _http_ok(f"{self.server}/readyz", context=context)
        )

    def _wait_until(self, process: _Process, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            process.check_alive()
            if ready():
                return
            time.sleep(POLL_INTERVAL_SECONDS)
        process.check_alive()
        raise ControlPlaneError(
            f"{process.name} was not ready after {self._startup_timeout:.0f}s; last lines of "
            f"{process.log_path}:\n{_tail(process.log_path)}"
        )

    def _admin_ssl_context(self) -> ssl.SSLContext:
        pki_dir = self.workdir / "pki"
        context = ssl.create_default_context(cafile=str(self.ca_cert_path))
        context.load_cert_chain(str(pki_dir / "admin.crt"), str(pki_dir / "admin.key"))
        return context

    def _write_pki(self) -> None:
        pki_dir = self.workdir / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        self._ca = ca = pki.CertificateAuthority()
        serving = ca.issue(
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", KUBERNETES_SERVICE_IP),
            server=True,
        )
        admin = ca.issue(ADMIN_USER, organizations=("system:masters",), client=True)
        sa_private, sa_public = pki.generate_signing_key()

        files = {
            "ca.crt": ca.cert_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
            "sa.key": sa_private,
            "sa.pub": sa_public,
        }
        for name, content in files.items():
            path = pki_dir / name
            path.write_bytes(content)
            path.chmod(0o600)

    def _read_pki(self, name: str) -> bytes:
        return (self.workdir / "pki" / name).read_bytes()

    def _require_ca(self) -> pki.CertificateAuthority:
        if self._ca is None:
            raise ControlPlaneError("the control plane has not been started")
        return self._ca

    def _write_kubeconfig(self, path: Path, *, user: dict[str, str]) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": CONTEXT_NAME,
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca_cert_path.read_bytes()),
                    },
                }
            ],
            "users": [{"name": CONTEXT_NAME, "user": user}],
            "contexts": [
                {"name": CONTEXT_NAME, "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME}}
            ],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written private from the start: it holds a key or a token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            yaml.safe_dump(config, stream, sort_keys=False)
        return path


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    # No proxy handler: everything listens on loopback, whatever HTTPS_PROXY says.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as err:
        err.close()
        return False
    except (urllib.error.URLError, OSError):
        return False


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9.-]+", "-", text).strip("-") or "x"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
