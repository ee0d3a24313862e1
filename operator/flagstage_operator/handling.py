"""Carrying out a reconcile: the ConfigMap, workload reloads, the status and the Events.

`reconciling` decides; this module talks to Kubernetes. Writes happen only when something
differs: the ConfigMap is compared with what was last applied (and re-read from the server at
least every `RESYNC_INTERVAL_SECONDS`), the status is patched only with the fields that
changed, and workloads are patched only when the configuration hash moved. A timer tick on an
unchanged rollout therefore costs no API call at all, and one that is also not due costs no
decision either (`Reconciler.is_quiet`). The health gate's reads (the target
workloads' status) happen only when the decision asks for them: while a stage is due or a
change is being watched.

The operator is the only writer of a rollout's status, so the status it last wrote is kept in
memory and preferred over the one in a possibly stale watch event; after a restart the first
listing is fresh, so nothing needs persisting beyond the status itself.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flagstage.durations import format_time
from flagstage.model import API_GROUP, API_VERSION, Workload
from flagstage.rendering import HASH_ANNOTATION
from flagstage_operator import FIELD_MANAGER, OPERATOR_NAME
from flagstage_operator import conditions as cond
from flagstage_operator.crd import PLURAL
from flagstage_operator.metrics import Metrics
from flagstage_operator.reconciling import (
    NORMAL,
    UNKNOWN,
    WARNING,
    HealthReader,
    Notice,
    Outcome,
    WorkloadHealth,
    assess_workload,
    plain,
    reconcile,
    status_patch,
)

Log = logging.Logger | logging.LoggerAdapter[Any]

RESYNC_INTERVAL_SECONDS = 300.0
# Every call is bounded, so an API server that accepts connections but never answers (one
# going down behind a load balancer) delays a tick instead of stopping the ticks for good.
API_TIMEOUT_SECONDS = (10.0, 30.0)  # (connect, read)
EVENT_MESSAGE_LIMIT = 1024
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"

# Event reasons of this module (the decision's own are in `reconciling`).
CONFIG_MAP_WRITTEN = "ConfigMapWritten"
APPLY_FAILED = "ApplyFailed"
WORKLOAD_RELOADED = "WorkloadReloaded"
RELOAD_FAILED = "ReloadFailed"

# Status keys this operator owns; anything else under status (kopf's own notes) is left alone.
OWNED_STATUS_KEYS = frozenset(
    {
        "observedGeneration",
        "stage",
        "stageStartedAt",
        "pausedAt",
        "nextStageAt",
        "scheduleStart",
        "enabled",
        "partial",
        "enabledCount",
        "configMap",
        "configHash",
        "handledRequests",
        "history",
        "healthGate",
        "conditions",
    }
)


@dataclass
class _Quiet:
    """A rollout whose last reconcile went cleanly, and until when it decides nothing new."""

    resource_version: str
    until: datetime | None
    resync_at: float


@dataclass
class _Applied:
    fingerprint: str
    checked_at: float


def _fingerprint(config_map: Mapping[str, Any]) -> str:
    return json.dumps(config_map, sort_keys=True)


def _covers(actual: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    actual = actual or {}
    return all(actual.get(key) == value for key, value in wanted.items())


class Reconciler:
    """Runs `reconciling.reconcile` for an object and carries out its outcome.

    Thread-safe: kopf calls sync handlers from a thread pool, and a timer tick may race a
    watch event for the same object, so each object is reconciled under its own lock.
    """

    def __init__(self, api: client.ApiClient, *, metrics: Metrics | None = None) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.metrics = metrics or Metrics()
        self.instance = socket.gethostname()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._statuses: dict[str, dict[str, Any]] = {}
        self._applied: dict[str, _Applied] = {}
        self._bodies: dict[str, dict[str, Any]] = {}
        self._unreachable_since: float | None = None
        self._quiet: dict[str, _Quiet] = {}

    def _lock_for(self, uid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uid, threading.Lock())

    def remember(self, body: Mapping[str, Any]) -> None:
        """Keep the latest version of a rollout from the watch, for the periodic tick."""
        with self._guard:
            self._bodies[body["metadata"]["uid"]] = plain(body)

    def known_rollouts(self) -> list[dict[str, Any]]:
        """The latest version of every rollout the watch has shown and not yet deleted."""
        with self._guard:
            return [
                body
                for body in self._bodies.values()
                if not body["metadata"].get("deletionTimestamp")
            ]

    def forget(self, body: Mapping[str, Any]) -> None:
        """Drop what is remembered about a deleted rollout."""
        metadata = body["metadata"]
        uid = metadata["uid"]
        with self._guard:
            self._bodies.pop(uid, None)
            self._locks.pop(uid, None)
            self._statuses.pop(uid, None)
            self._applied.pop(uid, None)
            self._quiet.pop(uid, None)
        self.metrics.forget_rollout(metadata["namespace"], metadata["name"])

    def run(self, body: Mapping[str, Any], logger: Log, *, now: datetime | None = None) -> Outcome:
        """Reconcile one rollout; returns the outcome (for tests and metrics)."""
        metadata = body["metadata"]
        uid = metadata["uid"]
        with self._lock_for(uid):
            self._quiet.pop(uid, None)
            outcome = self._run(plain(body), logger, now or datetime.now(UTC))
            conditions = outcome.status.get("conditions") or []
            if not (cond.is_true(conditions, cond.DEGRADED) or _not_ready(conditions)):
                resync_at = time.monotonic() + RESYNC_INTERVAL_SECONDS
                version = str(metadata.get("resourceVersion", ""))
                self._quiet[uid] = _Quiet(version, outcome.quiet_until, resync_at)
            return outcome

    def is_quiet(self, body: Mapping[str, Any], now: datetime) -> bool:
        """Whether reconciling this version of the rollout now would change nothing.

        True when its last reconcile went cleanly, the rollout has not changed since, nothing
        falls due before `now`, and the periodic re-read of its ConfigMap is not due either.
        Anything that failed is never quiet, so the tick retries it.
        """
        metadata = body["metadata"]
        quiet = self._quiet.get(metadata["uid"])
        return (
            quiet is not None
            and quiet.resource_version == str(metadata.get("resourceVersion", ""))
            and (quiet.until is None or now < quiet.until)
            and time.monotonic() < quiet.resync_at
        )

    def run_guarded(self, body: Mapping[str, Any], logger: Log) -> None:
        """`run` for the periodic tick: a failure is logged and counted, and retried next tick."""
        metadata = body["metadata"]
        if self.is_quiet(body, datetime.now(UTC)):
            return
        try:
            self.run(body, logger)
        except urllib3.exceptions.HTTPError as err:
            # The API server is down or restarting: one line per outage, not a traceback per
            # rollout per tick. The watch reconnects by itself and the next tick catches up.
            self.metrics.reconciles.labels("failed").inc()
            self.metrics.failures.labels("unreachable").inc()
            with self._guard:
                first = self._unreachable_since is None
                if first:
                    self._unreachable_since = time.monotonic()
            if first:
                logger.warning("the API server is unreachable (%s); retrying every tick", err)
            return
        except Exception:
            self.metrics.reconciles.labels("failed").inc()
            logger.exception(
                "rollout %s/%s: reconcile failed; retrying on the next tick",
                metadata["namespace"],
                metadata["name"],
            )
            return
        with self._guard:
            since, self._unreachable_since = self._unreachable_since, None
        if since is not None:
            logger.info("the API server is reachable again after %.0fs", time.monotonic() - since)

    def _run(self, body: dict[str, Any], logger: Log, now: datetime) -> Outcome:
        uid = body["metadata"]["uid"]
        known = self._statuses.get(uid)
        if known is not None:
            body["status"] = known
        old = dict(body.get("status") or {})
        outcome = reconcile(body, now=now, read_health=self._health_reader(body))

        if outcome.valid:
            try:
                self._apply_config_map(body, outcome, logger)
            except ApiException as err:
                self.metrics.failures.labels("configmap").inc()
                outcome = _apply_failed(old, outcome, err, now)
            else:
                if outcome.reload:
                    self._reload_workloads(body, outcome, logger)

        self._write_status(body, old, outcome.status, logger)
        for notice in outcome.notices:
            self._post_event(body, notice, logger)
        self._observe(body, outcome, now)
        return outcome

    # -- the health gate -----------------------------------------------------------------------

    def _health_reader(self, body: Mapping[str, Any]) -> HealthReader:
        namespace = body["metadata"]["namespace"]

        def read(workloads: Sequence[Workload]) -> list[WorkloadHealth]:
            return [self._workload_health(namespace, workload) for workload in workloads]

        return read

    def _workload_health(self, namespace: str, workload: Workload) -> WorkloadHealth:
        read = (
            self.apps.read_namespaced_deployment
            if workload.kind == "Deployment"
            else self.apps.read_namespaced_stateful_set
        )
        try:
            found = read(workload.name, namespace, _request_timeout=API_TIMEOUT_SECONDS)
        except ApiException as err:
            if err.status == 404:
                return assess_workload(workload.kind, workload.name, None)
            # Not knowing holds the schedule back but is no reason to undo a change.
            self.metrics.failures.labels("health").inc()
            detail = f"could not be read: {err.status} {err.reason}"
            return WorkloadHealth(workload.kind, workload.name, UNKNOWN, detail)
        manifest = self.api.sanitize_for_serialization(found)  # type: ignore[no-untyped-call]
        return assess_workload(workload.kind, workload.name, manifest)

    # -- the ConfigMap -------------------------------------------------------------------------

    def _apply_config_map(self, body: Mapping[str, Any], outcome: Outcome, logger: Log) -> None:
        desired = outcome.config_map
        assert desired is not None
        uid = body["metadata"]["uid"]
        fingerprint = _fingerprint(desired)
        applied = self._applied.get(uid)
        fresh = applied is not None and (
            time.monotonic() - applied.checked_at < RESYNC_INTERVAL_SECONDS
        )
        if fresh and applied is not None and applied.fingerprint == fingerprint:
            return

        metadata = desired["metadata"]
        name, namespace = metadata["name"], metadata["namespace"]
        # A rollout that never had a configuration applied has, as a rule, no ConfigMap yet:
        # write it without asking first (the apply takes over one that exists anyway).
        never_applied = applied is None and not (body.get("status") or {}).get("configHash")
        if not never_applied and not self._config_map_differs(name, namespace, desired):
            self._applied[uid] = _Applied(fingerprint, time.monotonic())
            return
        self.core.patch_namespaced_config_map(
            name,
            namespace,
            desired,
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type=APPLY_PATCH,
            _request_timeout=API_TIMEOUT_SECONDS,
        )
        self._applied[uid] = _Applied(fingerprint, time.monotonic())
        rendered = outcome.rendered
        assert rendered is not None
        logger.info(
            "rollout %s/%s wrote ConfigMap %s at stage %s (%s)",
            namespace,
            body["metadata"]["name"],
            name,
            rendered.stage_name,
            rendered.config_hash,
        )
        outcome.notices.append(
            Notice(
                NORMAL,
                CONFIG_MAP_WRITTEN,
                f"ConfigMap {name} now holds stage {rendered.stage_name!r} "
                f"({rendered.config_hash[:19]})",
            )
        )

    def _config_map_differs(self, name: str, namespace: str, desired: Mapping[str, Any]) -> bool:
        try:
            current = self.core.read_namespaced_config_map(
                name, namespace, _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        wanted = desired["metadata"]
        meta = current.metadata or client.V1ObjectMeta()
        owners = [ref.uid for ref in meta.owner_references or []]
        return not (
            (current.data or {}) == desired["data"]
            and _covers(meta.labels, wanted["labels"])
            and _covers(meta.annotations, wanted["annotations"])
            and wanted["ownerReferences"][0]["uid"] in owners
        )

    # -- reloads -------------------------------------------------------------------------------

    def _reload_workloads(self, body: Mapping[str, Any], outcome: Outcome, logger: Log) -> None:
        rollout, rendered = outcome.rollout, outcome.rendered
        assert rollout is not None and rendered is not None
        target = rollout.spec.target
        if target.reload_strategy != "Rolling":
            return
        namespace = rollout.namespace
        for workload in target.workloads:
            try:
                patched = self._patch_pod_template(
                    workload.kind, workload.name, namespace, rendered.config_hash
                )
            except ApiException as err:
                self.metrics.failures.labels("reload").inc()
                message = f"{workload.kind} {workload.name} not reloaded: {err.reason}"
                logger.error("rollout %s/%s: %s", namespace, rollout.name, message)
                outcome.notices.append(Notice(WARNING, RELOAD_FAILED, message))
                outcome.status["conditions"] = cond.set_condition(
                    outcome.status.get("conditions") or [],
                    cond.DEGRADED,
                    status=True,
                    reason=cond.RELOAD_FAILED,
                    message=message,
                    now=format_time(datetime.now(UTC)),
                    generation=rollout.generation,
                )
                continue
            if not patched:
                continue
            self.metrics.reloads.labels(namespace, rollout.name).inc()
            message = f"{workload.kind} {workload.name} rolls to config {rendered.config_hash[:19]}"
            logger.info("rollout %s/%s: %s", namespace, rollout.name, message)
            outcome.notices.append(Notice(NORMAL, WORKLOAD_RELOADED, message))

    def _patch_pod_template(self, kind: str, name: str, namespace: str, config_hash: str) -> bool:
        read, patch = (
            (self.apps.read_namespaced_deployment, self.apps.patch_namespaced_deployment)
            if kind == "Deployment"
            else (self.apps.read_namespaced_stateful_set, self.apps.patch_namespaced_stateful_set)
        )
        current = read(name, namespace, _request_timeout=API_TIMEOUT_SECONDS)
        template_meta = current.spec.template.metadata or client.V1ObjectMeta()
        annotations = template_meta.annotations or {}
        if annotations.get(HASH_ANNOTATION) == config_hash:
            return False
        body = {"spec": {"template": {"metadata": {"annotations": {HASH_ANNOTATION: config_hash}}}}}
        patch(
            name,
            namespace,
            body,
            field_manager=FIELD_MANAGER,
            _content_type=MERGE_PATCH,
            _request_timeout=API_TIMEOUT_SECONDS,
        )
        return True

    # -- status and Events ---------------------------------------------------------------------

    def _write_status(
        self, body: Mapping[str, Any], old: Mapping[str, Any], new: dict[str, Any], logger: Log
    ) -> None:
        patch = {
            key: value for key, value in status_patch(old, new).items() if key in OWNED_STATUS_KEYS
        }
        metadata = body["metadata"]
        if not patch:
            self._statuses[metadata["uid"]] = new
            return
        try:
            self.custom.patch_namespaced_custom_object_status(
                API_GROUP,
                API_VERSION,
                metadata["namespace"],
                PLURAL,
                metadata["name"],
                {"status": patch},
                field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH,
                _request_timeout=API_TIMEOUT_SECONDS,
            )
        except ApiException as err:
            if err.status == 404:
                logger.debug("rollout %s/%s is gone", metadata["namespace"], metadata["name"])
                return
            self.metrics.failures.labels("status").inc()
            raise
        self._statuses[metadata["uid"]] = new

    def _post_event(self, body: Mapping[str, Any], notice: Notice, logger: Log) -> None:
        metadata = body["metadata"]
        now = datetime.now(UTC)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{metadata['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": metadata["namespace"],
            },
            "involvedObject": {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": body.get("kind", "FeatureRollout"),
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                "uid": metadata["uid"],
            },
            "type": notice.type,
            "reason": notice.reason,
            "message": notice.message[:EVENT_MESSAGE_LIMIT],
            "source": {"component": OPERATOR_NAME},
            "reportingComponent": OPERATOR_NAME,
            "reportingInstance": self.instance,
            "firstTimestamp": format_time(now),
            "lastTimestamp": format_time(now),
            "count": 1,
        }
        level = logging.WARNING if notice.type == WARNING else logging.INFO
        logger.log(
            level, "rollout %s/%s: %s", metadata["namespace"], metadata["name"], notice.message
        )
        try:
            self.core.create_namespaced_event(
                metadata["namespace"], cast(Any, event), _request_timeout=API_TIMEOUT_SECONDS
            )
        except ApiException as err:
            # An Event is a courtesy; failing to post one must not fail the reconcile.
            self.metrics.failures.labels("event").inc()
            logger.warning("could not post Event %s: %s", notice.reason, err.reason)

    def _observe(self, body: Mapping[str, Any], outcome: Outcome, now: datetime) -> None:
        metadata = body["metadata"]
        result = "ok" if outcome.valid else "refused"
        if outcome.valid and cond.is_true(outcome.status.get("conditions") or [], cond.DEGRADED):
            result = "failed"
        self.metrics.reconciles.labels(result).inc()
        for step in outcome.steps:
            self.metrics.transitions.labels(
                metadata["namespace"], metadata["name"], step.reason
            ).inc()
        stage = outcome.status.get("stage") or {}
        seconds = None if outcome.next_at is None else (outcome.next_at - now).total_seconds()
        self.metrics.observe_rollout(
            metadata["namespace"],
            metadata["name"],
            stage_index=int(stage.get("index", -1)),
            seconds_to_next=seconds,
        )


def _not_ready(conditions: Sequence[Mapping[str, Any]]) -> bool:
    found = cond.find(conditions, cond.READY)
    return found is None or found.get("status") != cond.TRUE


def _apply_failed(
    old: dict[str, Any], outcome: Outcome, err: ApiException, now: datetime
) -> Outcome:
    """Keep the old progress so the same change is tried again on the next tick."""
    generation = int(outcome.status.get("observedGeneration") or 0)
    rollout = outcome.rollout
    assert rollout is not None
    message = f"ConfigMap {rollout.config_map_name} could not be written: {err.status} {err.reason}"
    if err.status == 403:
        message += (
            f"; grant the operator get, create and patch on configmaps in namespace "
            f"{rollout.namespace}; it retries by itself"
        )
    conditions = old.get("conditions") or []
    for kind, state in ((cond.READY, False), (cond.DEGRADED, True)):
        conditions = cond.set_condition(
            conditions,
            kind,
            status=state,
            reason=cond.APPLY_FAILED,
            message=message,
            now=format_time(now),
            generation=generation,
        )
    # Every tick retries; only the first failure in a row is worth an Event.
    repeated = cond.reason_of(old.get("conditions") or [], cond.READY) == cond.APPLY_FAILED
    return Outcome(
        status={**old, "conditions": conditions},
        notices=[] if repeated else [Notice(WARNING, APPLY_FAILED, message)],
        rollout=outcome.rollout,
        rendered=outcome.rendered,
        next_at=outcome.next_at,
    )
