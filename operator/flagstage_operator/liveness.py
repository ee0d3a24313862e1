"""What kopf's `/healthz` reports: whether the operator still hears from the API server.

kopf serves the liveness endpoint from the operator's event loop, so by itself it proves only
that the loop runs. A watch can wedge while the loop runs on (a connection that stays open and
never delivers, an API server stopped or gone), and an operator in that state would answer the
probe for ever while stages stop advancing. The probe registered here fails, so the kubelet
restarts the pod, when either:
- nothing has shown the watch to be current for `stale_after_seconds`: no watch event reached
  the handlers, and no heartbeat found the watch's copies of the rollouts equal to a fresh
  listing; or
- the tick has not finished a round for as long (a call stuck inside it).

The heartbeat exists because a quiet cluster has no events to show: while no event has come
for a third of the threshold, it lists the watched rollouts and compares their resource
versions with what the watch delivered. It costs one list call per interval only while the
cluster is quiet, and none while events flow.

The default threshold is three ticks plus the watch's server-side timeout, after which kopf
re-opens every watch. kopf keeps a successful probe result for 10 seconds, so a failure shows
at most that much later than the threshold.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import time
from collections.abc import Sequence
from typing import Any

import kopf

from flagstage.model import API_GROUP, API_VERSION
from flagstage_operator.crd import PLURAL
from flagstage_operator.handling import Reconciler

logger = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_SECONDS = (5.0, 10.0)  # (connect, read)


def default_stale_after(tick_seconds: float, watch_server_timeout_seconds: float) -> float:
    return 3 * tick_seconds + watch_server_timeout_seconds


class Liveness:
    """When the watch and the tick last showed signs of life, and the heartbeat that checks."""

    def __init__(
        self,
        reconciler: Reconciler,
        *,
        stale_after_seconds: float,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.reconciler = reconciler
        self.stale_after_seconds = stale_after_seconds
        self.namespaces = list(namespaces)
        now = time.monotonic()
        self._watch_current_at = now
        self._ticked_at = now

    def saw_event(self) -> None:
        self._watch_current_at = time.monotonic()

    def ticked(self) -> None:
        self._ticked_at = time.monotonic()

    def report(self) -> dict[str, float]:
        """Seconds since the watch was last shown current and the tick last finished a round."""
        now = time.monotonic()
        return {
            "watchCurrentSecondsAgo": round(now - self._watch_current_at, 1),
            "tickSecondsAgo": round(now - self._ticked_at, 1),
        }

    def stale(self) -> str | None:
        """Why the operator should be restarted, or None while it is live."""
        report = self.report()
        if report["watchCurrentSecondsAgo"] > self.stale_after_seconds:
            return (
                f"the watch of rollouts has not been shown current for "
                f"{report['watchCurrentSecondsAgo']:.0f}s (threshold {self.stale_after_seconds:g}s)"
            )
        if report["tickSecondsAgo"] > self.stale_after_seconds:
            return (
                f"the tick has not finished a round for {report['tickSecondsAgo']:.0f}s "
                f"(threshold {self.stale_after_seconds:g}s)"
            )
        return None

    async def heartbeat_forever(self) -> None:
        """While no event comes, check the watch against a listing every third of the threshold."""
        loop = asyncio.get_running_loop()
        interval = self.stale_after_seconds / 3
        while True:
            await asyncio.sleep(interval / 2)
            if time.monotonic() - self._watch_current_at < interval:
                continue
            try:
                current = await loop.run_in_executor(None, self.watch_is_current)
            except Exception as err:
                logger.debug("liveness heartbeat could not list rollouts: %s", err)
                continue
            if current:
                self.saw_event()

    def watch_is_current(self) -> bool:
        """Whether the watch has delivered every rollout a fresh listing shows, as listed."""
        listed = {
            item["metadata"]["uid"]: item["metadata"].get("resourceVersion")
            for item in self._list()
            if not item["metadata"].get("deletionTimestamp")
        }
        known = {
            body["metadata"]["uid"]: body["metadata"].get("resourceVersion")
            for body in self.reconciler.known_rollouts()
        }
        return listed == known

    def _list(self) -> list[dict[str, Any]]:
        custom = self.reconciler.custom
        patterns = self.namespaces
        if patterns and not any(_is_glob(pattern) for pattern in patterns):
            items: list[dict[str, Any]] = []
            for namespace in patterns:
                found = custom.list_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    namespace,
                    PLURAL,
                    _request_timeout=HEARTBEAT_TIMEOUT_SECONDS,
                )
                assert isinstance(found, dict)
                items.extend(found.get("items") or [])
            return items
        listing = custom.list_cluster_custom_object(
            API_GROUP, API_VERSION, PLURAL, _request_timeout=HEARTBEAT_TIMEOUT_SECONDS
        )
        assert isinstance(listing, dict)
        return [
            item
            for item in listing.get("items") or []
            if not patterns
            or any(fnmatch.fnmatch(item["metadata"]["namespace"], glob) for glob in patterns)
        ]


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[!")


def register_probe(registry: kopf.OperatorRegistry, liveness: Liveness) -> None:
    """Make kopf's `/healthz` fail (HTTP 500) while the operator is stale."""

    @kopf.on.probe(id="flagstage", registry=registry)
    def probe(**_: Any) -> dict[str, float]:
        reason = liveness.stale()
        if reason is not None:
            raise kopf.PermanentError(reason)
        return liveness.report()
