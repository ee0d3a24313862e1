"""The app factory: one `FastAPI` per `Settings`, with its database and toggles on `app.state`.

Start-up brings the schema up to date, then enters the lifespan hooks other parts register
(`add_lifespan_hook`), such as the features-directory watcher; shutdown leaves them in reverse
order and releases the database. Routers are included in `create_app`, one line each.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from flagstage_app.db import make_engine, make_session_factory
from flagstage_app.errors import install_handlers
from flagstage_app.gating import default_toggles
from flagstage_app.knowledge import install_knowledge_base
from flagstage_app.limits import install_body_limits
from flagstage_app.observability import install_metrics
from flagstage_app.refreshing import default_refreshers, wait_for_refreshes
from flagstage_app.routes import (
    feedback,
    ingest,
    notes,
    probes,
    query,
    refresh,
    toggle_status,
    uploads,
)
from flagstage_app.settings import Settings, load_settings
from flagstage_app.toggles.serving import install_live_toggles

logger = logging.getLogger(__name__)

REFRESH_SHUTDOWN_WAIT_SECONDS = 30.0

LifespanHook = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def add_lifespan_hook(app: FastAPI, hook: LifespanHook) -> None:
    """Run `hook(app)` as an async context around the app's life, after the database is ready."""
    app.state.lifespan_hooks.append(hook)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.run_migrations:
        from flagstage_app.migrating import upgrade_database

        upgrade_database(app.state.engine)

    async with AsyncExitStack() as stack:
        for hook in app.state.lifespan_hooks:
            await stack.enter_async_context(hook(app))
        logger.info("insights API ready on %s", app.state.engine.url.render_as_string())
        yield
    wait_for_refreshes(app, REFRESH_SHUTDOWN_WAIT_SECONDS)
    app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The insights API for `settings` (read from the environment when not given)."""
    settings = settings or load_settings()
    app = FastAPI(title="flagstage insights API", lifespan=_lifespan)
    install_handlers(app)

    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url)
    app.state.session_factory = make_session_factory(app.state.engine)
    # Replaced by the live store when the features directory is watched.
    app.state.toggles = default_toggles()
    # Installed by the knowledge base; until then semantic questions get a 503.
    app.state.semantic_answerer = None
    app.state.refreshers = default_refreshers()
    app.state.refresh_threads = []
    app.state.refreshes_running = {}
    app.state.lifespan_hooks = []
    install_metrics(app)
    install_body_limits(app)
    install_live_toggles(app)
    install_knowledge_base(app)
    uploads.install_upload_pipeline(app)

    app.include_router(probes.router)
    app.include_router(query.router)
    app.include_router(ingest.router)
    app.include_router(uploads.router)
    app.include_router(feedback.router)
    app.include_router(notes.router)
    app.include_router(refresh.router)
    app.include_router(toggle_status.router)
    return app
