"""The kopf handlers: thin entry points that hand every rollout to the `Reconciler`.

Reconciling is level-based: a watch event (including the initial listing when the operator
starts, so restarts resume every rollout) and a periodic tick both run the same idempotent
reconcile. The tick is what advances stages at `nextStageAt` and retries failed calls. Since
progress lives in the status, nothing else needs persisting: the operator writes nothing to a
rollout but its status, and puts no finalizer on it.

The tick is a task of our own rather than `kopf.timer`, because kopf puts a finalizer on every
object with a timer: deleting a rollout would then wait for a running operator, and the
operator would need write access to rollouts just for that.

Handlers are registered on a registry built per operator (`build_registry`), so the tick
interval can be chosen at start-up and tests can run several operators. With leader election
(`leadership`), every replica keeps watching and remembering rollouts, but only the holder of
the Lease reconciles them; `liveness` hears of every event and tick, for the probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import kopf

from flagstage.model import API_GROUP, API_VERSION
from flagstage_operator import OPERATOR_NAME
from flagstage_operator.crd import PLURAL
from flagstage_operator.handling import Log, Reconciler
from flagstage_operator.leadership import Leadership
from flagstage_operator.liveness import Liveness, register_probe

tick_logger = logging.getLogger("flagstage_operator.ticks")

DEFAULT_TICK_SECONDS = 5.0
# Watches are re-opened well before any load balancer drops an idle connection, and a dead
# API server is noticed within the client timeout, so an API server restart costs seconds.
WATCH_SERVER_TIMEOUT_SECONDS = 60
WATCH_CLIENT_TIMEOUT_SECONDS = 90
CONNECT_TIMEOUT_SECONDS = 10
REQUEST_TIMEOUT_SECONDS = 60
# kopf's retries of a failed call. A watch whose retries run out re-opens after
# `reconnect_backoff` with a fresh sequence, so short steps put a returning API server back
# in touch within seconds; kopf's default ends on 21 s waits.
ERROR_BACKOFFS_SECONDS = (1.0, 1.0, 2.0, 3.0, 5.0)


def configure_settings(settings: kopf.OperatorSettings) -> None:
    """kopf settings for a standalone operator that outlives API server restarts."""
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    settings.watching.connect_timeout = CONNECT_TIMEOUT_SECONDS
    settings.watching.reconnect_backoff = 1.0
    settings.networking.connect_timeout = CONNECT_TIMEOUT_SECONDS
    settings.networking.request_timeout = REQUEST_TIMEOUT_SECONDS
    settings.networking.error_backoffs = ERROR_BACKOFFS_SECONDS
    # The resource is known in advance; watching CRDs would only need more permissions.
    settings.scanning.disabled = True
    settings.posting.reporting_component = OPERATOR_NAME
    settings.peering.standalone = True


def build_registry(
    reconciler: Reconciler,
    *,
    tick_seconds: float = DEFAULT_TICK_SECONDS,
    leadership: Leadership | None = None,
    liveness: Liveness | None = None,
) -> kopf.OperatorRegistry:
    """A kopf registry with the login, settings, event, tick and probe handlers of one operator."""
    registry = kopf.OperatorRegistry()

    def acting() -> bool:
        return leadership is None or leadership.leading

    kopf.on.login(registry=registry)(kopf.login_via_client)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_settings(settings)

    @kopf.on.event(API_GROUP, API_VERSION, PLURAL, registry=registry)
    def on_event(type: str, body: kopf.Body, logger: Log, **_: Any) -> None:
        if type == "DELETED":
            # The ConfigMap goes with the rollout through its owner reference.
            logger.info("rollout %s/%s deleted", body.metadata.namespace, body.metadata.name)
            reconciler.forget(body)
            return
        if liveness is not None:
            liveness.saw_event()
        reconciler.remember(body)
        if acting() and not body.metadata.get("deletionTimestamp"):
            reconciler.run(body, logger)

    background: list[asyncio.Task[None]] = []

    @kopf.on.startup(registry=registry)
    async def start_ticking(**_: Any) -> None:
        if leadership is not None:
            leadership.start()
        tick = tick_forever(reconciler, tick_seconds, acting=acting, liveness=liveness)
        background.append(asyncio.create_task(tick))
        if liveness is not None:
            background.append(asyncio.create_task(liveness.heartbeat_forever()))

    @kopf.on.cleanup(registry=registry)
    async def stop_ticking(**_: Any) -> None:
        for task in background:
            task.cancel()
        if leadership is not None:
            # Handing the Lease back lets a standby take over now rather than at expiry.
            await asyncio.get_running_loop().run_in_executor(None, leadership.stop)

    if liveness is not None:
        register_probe(registry, liveness)
    return registry


async def tick_forever(
    reconciler: Reconciler,
    tick_seconds: float,
    *,
    acting: Callable[[], bool] = lambda: True,
    liveness: Liveness | None = None,
) -> None:
    """Reconcile every known rollout each `tick_seconds`, one after another, off the loop.

    A replica that does not hold the Lease (`acting` false) skips the reconciles but still
    counts the round, since its tick is as alive as the holder's.
    """
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(tick_seconds)
        for body in reconciler.known_rollouts():
            if not acting():
                break
            await loop.run_in_executor(None, reconciler.run_guarded, body, tick_logger)
        if liveness is not None:
            liveness.ticked()
