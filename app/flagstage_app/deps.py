"""FastAPI dependencies shared by the routers: settings, database sessions, the tenant.

Sessions are opened per request and closed after it; a handler that writes commits its own
transaction. The tenant comes only from the `X-Customer-ID` header, checked against the same
pattern the rollout core uses for tenant ids, so a request never reaches SQL without one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, cast

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from flagstage.validation import TENANT_ID
from flagstage_app.errors import TenantError
from flagstage_app.settings import Settings

TENANT_HEADER = "X-Customer-ID"


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_session_factory(request: Request) -> sessionmaker[Session]:
    return cast(sessionmaker[Session], request.app.state.session_factory)


def get_session(
    factory: Annotated[sessionmaker[Session], Depends(get_session_factory)],
) -> Iterator[Session]:
    with factory() as session:
        yield session


def check_tenant(value: str | None) -> str:
    """`value` as a tenant id, or a `TenantError` naming the header and the rule."""
    if value is None or value == "":
        raise TenantError(
            f"the {TENANT_HEADER} header is missing; send the customer id the data belongs to",
            status_code=401,
        )
    if not TENANT_ID.fullmatch(value):
        raise TenantError(
            f"the {TENANT_HEADER} header {value[:40]!r} is not a valid customer id: use 1-128 "
            "letters, digits, '.', '_', ':' or '-', starting and ending with a letter or digit",
            status_code=400,
        )
    return value


def single_tenant_header(request: Request) -> str | None:
    """The one `X-Customer-ID` value of `request`, None without one, a 400 for several.

    Frameworks read the first of repeated headers and proxies may append theirs last, so two
    values could name two tenants at once: such a request names none.
    """
    values = request.headers.getlist(TENANT_HEADER)
    if len(values) > 1:
        raise TenantError(
            f"the {TENANT_HEADER} header is sent {len(values)} times; send it once",
            status_code=400,
        )
    return values[0] if values else None


# TODO: the header is trusted as sent, so this API must sit behind a gateway that authenticates
# each caller and sets X-Customer-ID itself; exposed directly, any client can name any tenant.
# This goes when requests carry a signed identity (a token whose claim names the tenant)
# checked here.
def get_tenant(
    request: Request,
    x_customer_id: Annotated[str | None, Header(alias=TENANT_HEADER)] = None,
) -> str:
    """FastAPI dependency: the validated tenant of the request."""
    single_tenant_header(request)
    return check_tenant(x_customer_id)


Tenant = Annotated[str, Depends(get_tenant)]
DbSession = Annotated[Session, Depends(get_session)]
AppSettings = Annotated[Settings, Depends(get_settings)]
