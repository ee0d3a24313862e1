"""Leader election over a coordination.k8s.io Lease, so several replicas can stand by.

Off by default (`--leader-election` turns it on): a single replica needs no Lease and no rule
for one. With it on, every replica watches and remembers rollouts, but only the holder of the
Lease reconciles them; the others stand by and take over once the holder stops renewing.

Why a Lease and not kopf's peering: peering is not an election. Each operator publishes a
priority in a `KopfPeering`/`ClusterKopfPeering` object and freezes while it sees a higher one;
replicas of one Deployment share a priority, and equal priorities freeze every replica. A
starting peer pauses the others only once they have noticed it, a dead one is forgotten only
after its own lifetime, it needs kopf's CRDs installed cluster-wide, and it pauses kopf's
watch handlers but not the tick, which is our own task. A Lease gives one holder at a time with
bounds of our choosing and needs nothing but get, create and update on one Lease.

The rules are client-go's: the holder renews every `retry_seconds` and stops acting when it
could not renew for `renew_deadline_seconds`; another replica takes over a Lease it has seen
unchanged for `leaseDurationSeconds`, measured on its own clock, so clocks need not agree.
Since the deadline is shorter than the duration, the old holder has stopped before anyone can
take over. What this cannot stop is a call already in flight when the holder lost the Lease
(a request that hangs past the deadline): every write is bounded by a timeout well under the
lease duration's default for that reason.

A replica that becomes the holder forgets what it remembered of its own earlier writes and
re-reads every rollout it knows, since another holder may have moved them on in between.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flagstage.model import API_GROUP, API_VERSION
from flagstage_operator.crd import PLURAL
from flagstage_operator.handling import Reconciler

logger = logging.getLogger(__name__)

DEFAULT_LEASE_NAME = "flagstage-operator"
DEFAULT_LEASE_SECONDS = 15.0
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class LeadershipError(Exception):
    """Leader election cannot start as configured."""


def default_identity() -> str:
    """The pod's name (its host name) and a random suffix, unique even for two processes."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def default_lease_namespace() -> str:
    """The operator's own namespace: `POD_NAMESPACE`, else its ServiceAccount's."""
    namespace = os.environ.get("POD_NAMESPACE", "")
    if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    if not namespace:
        raise LeadershipError(
            "cannot tell the operator's namespace for its Lease; pass --lease-namespace "
            "or set POD_NAMESPACE"
        )
    return namespace


def _micro_time(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_of(lease: client.V1Lease) -> str:
    metadata = lease.metadata or client.V1ObjectMeta()
    return str(metadata.resource_version or "")


@dataclass(frozen=True)
class _Record:
    """What a candidate saw of the Lease, to tell whether its holder still renews it."""

    holder: str
    renewed: str
    version: str


class Leadership:
    """Acquires and renews one Lease from a thread of its own; `leading` says whether to act."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        on_elected: Callable[[], None] = lambda: None,
    ) -> None:
        if lease_seconds < 1:
            raise LeadershipError(f"a lease of {lease_seconds:g}s is too short; use 1s or more")
        self.leases = client.CoordinationV1Api(api)
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_seconds = lease_seconds
        # client-go's proportions: a 15 s lease is renewed every 2 s and given up after 10 s.
        self.renew_deadline_seconds = lease_seconds * 2 / 3
        self.retry_seconds = lease_seconds / 7.5
        self._timeout = (self.retry_seconds * 2, self.retry_seconds * 2)
        self._on_elected = on_elected
        self._leading_until = 0.0
        self._observed: _Record | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        return time.monotonic() < self._leading_until

    def start(self) -> None:
        logger.info(
            "%s stands for leader on Lease %s/%s (%gs)",
            self.identity,
            self.namespace,
            self.name,
            self.lease_seconds,
        )
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop acting and hand the Lease back, so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.retry_seconds * 3)
        was_leading, self._leading_until = self.leading, 0.0
        if was_leading:
            self._release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_once()
            except Exception as err:
                # The Lease lapses by itself if this keeps failing; nothing else to undo.
                logger.warning(
                    "Lease %s/%s could not be renewed: %s", self.namespace, self.name, err
                )
            if self.leading is False and self._leading_until:
                self._leading_until = 0.0
                logger.warning("%s lost the Lease and stops acting", self.identity)
            self._stop.wait(self.retry_seconds)

    def try_once(self) -> bool:
        """One attempt to acquire or renew the Lease; whether this replica may act."""
        attempted_at = time.monotonic()
        if not self._acquire_or_renew():
            if self.leading:
                logger.warning("%s lost the Lease and stops acting", self.identity)
            self._leading_until = 0.0
            return False
        if not self.leading:
            logger.info("%s holds Lease %s/%s and acts", self.identity, self.namespace, self.name)
            self._on_elected()
        self._leading_until = attempted_at + self.renew_deadline_seconds
        return True

    def _acquire_or_renew(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = self.leases.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
        except ApiException as err:
            if err.status != 404:
                raise
            return self._create(now)

        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        renewed = spec.renew_time.isoformat() if spec.renew_time else ""
        record = _Record(holder, renewed, _version_of(lease))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        if holder and holder != self.identity:
            duration = spec.lease_duration_seconds or self.lease_seconds
            if time.monotonic() < self._observed_at + duration:
                return False

        ours = holder == self.identity
        body = self._lease_body(
            now,
            acquired=spec.acquire_time if ours and spec.acquire_time else now,
            transitions=(spec.lease_transitions or 0) + (0 if ours else 1),
            version=_version_of(lease),
        )
        try:
            self.leases.replace_namespaced_lease(
                self.name, self.namespace, cast(Any, body), _request_timeout=self._timeout
            )
        except ApiException as err:
            if err.status == 409:
                return False  # another replica wrote first; read again next time
            raise
        return True

    def _create(self, now: datetime) -> bool:
        body = self._lease_body(now, acquired=now, transitions=0, version=None)
        try:
            self.leases.create_namespaced_lease(
                self.namespace, cast(Any, body), _request_timeout=self._timeout
            )
        except ApiException as err:
            if err.status == 409:
                return False
            raise
        return True

    def _lease_body(
        self, now: datetime, *, acquired: datetime, transitions: int, version: str | None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if version is not None:
            metadata["resourceVersion"] = version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_seconds)),
                "acquireTime": _micro_time(acquired),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def _release(self) -> None:
        try:
            lease = self.leases.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self._timeout
            )
            spec = lease.spec or client.V1LeaseSpec()
            if (spec.holder_identity or "") != self.identity:
                return
            now = datetime.now(UTC)
            body = self._lease_body(
                now,
                acquired=spec.acquire_time or now,
                transitions=spec.lease_transitions or 0,
                version=_version_of(lease),
            )
            del body["spec"]["holderIdentity"]
            self.leases.replace_namespaced_lease(
                self.name, self.namespace, cast(Any, body), _request_timeout=self._timeout
            )
        except Exception as err:
            # The others take over when the Lease expires instead; slower, not wrong.
            logger.warning("Lease %s/%s was not handed back: %s", self.namespace, self.name, err)
            return
        logger.info("%s handed Lease %s/%s back", self.identity, self.namespace, self.name)


def refresh_rollouts(reconciler: Reconciler) -> None:
    """Drop what the reconciler remembers of its writes and re-read every rollout it knows.

    Called when this replica becomes the holder: the status it last wrote, and the watch's
    copy, may both be older than what the previous holder wrote.
    """
    for body in reconciler.known_rollouts():
        metadata = body["metadata"]
        reconciler.forget(body)
        try:
            fresh = reconciler.custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, metadata["namespace"], PLURAL, metadata["name"]
            )
        except ApiException as err:
            if err.status == 404:
                continue
            raise
        reconciler.remember(cast(dict[str, Any], fresh))
