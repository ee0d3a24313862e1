"""Tenant isolation under random and hostile `X-Customer-ID` values and bodies, on every route.

Two tenants are seeded with data that cannot be mistaken for anything else (account ids, names,
rated answers). Hypothesis then sends requests to every route the app has (walked from
`app.routes`, so a route added later is fuzzed too) with headers that are empty, huge, unicode,
control characters, SQL and path fragments, or the other tenant's id with its case or spacing
changed, and bodies that mix random data with the other tenant's identifiers. A response may
repeat what its own request contained, but never carries data of a tenant the request did not
name exactly; nothing answers 5xx; every refusal is JSON that says what was wrong.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from flagstage_app.deps import TENANT_HEADER, get_tenant
from flagstage_app.gating import APP_FEATURES
from flagstage_app.main import create_app
from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Route

from flagstage.snapshot import Snapshot
from flagstage.state import EVERYONE, FeatureState
from flagstage.validation import TENANT_ID
from tests.reliability.conftest import app_settings, examples

ADMIN_TOKEN = "reliability-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ACCOUNTS_HEADER = "account_id,name,industry,revenue,revenue_month"
METRICS_HEADER = "account_id,month,revenue_growth_pct,active_users,support_tickets,nps"
QUESTION = "Which accounts have the highest revenue across last 4 months?"
JOB_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SeededTenant:
    """A tenant and the strings that only its own responses may carry."""

    tenant_id: str
    account_ids: tuple[str, ...]
    names: tuple[str, ...]
    answer_ids: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        return (*self.account_ids, *self.names, *self.answer_ids)


ALPHA = SeededTenant(
    "alpha", ("ALPHA-4471", "ALPHA-9013"), ("Aldermoor Quarrying", "Alpenglow Textiles")
)
BRAVO = SeededTenant(
    "bravo", ("BRAVO-2208", "BRAVO-6650"), ("Brackwater Shipping", "Bramblecote Dairies")
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    tenant_scoped: bool


def _walk(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    for route in routes:
        nested = getattr(route, "original_router", None)
        if nested is not None:
            yield from _walk(list(nested.routes))
        else:
            yield route


def _uses_tenant(route: APIRoute) -> bool:
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if dependant.call is get_tenant:
            return True
        stack.extend(dependant.dependencies)
    return False


def endpoints_of(app: FastAPI) -> list[Endpoint]:
    """Every method and path the app serves, and whether it reads the tenant header."""
    found = []
    for route in _walk(list(app.routes)):
        if not isinstance(route, Route):
            continue
        scoped = isinstance(route, APIRoute) and _uses_tenant(route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                found.append(Endpoint(method, route.path, scoped))
    return sorted(found, key=lambda e: (e.path, e.method))


def _all_on() -> Snapshot:
    states = {name: FeatureState(name, EVERYONE, "test") for name in APP_FEATURES}
    return Snapshot(states, APP_FEATURES)


def _csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _post_ok(client: TestClient, path: str, tenant: str, **kwargs: Any) -> Any:
    response = client.post(
        path, headers={TENANT_HEADER: tenant, **kwargs.pop("headers", {})}, **kwargs
    )
    assert response.status_code == 200, response.text
    return response.json()


def _seed(client: TestClient, seeded: SeededTenant) -> SeededTenant:
    rows = [
        f"{account},{name},manufacturing,{1000 * (i + 1)},2024-01"
        for i, (account, name) in enumerate(zip(seeded.account_ids, seeded.names, strict=True))
    ]
    _post_ok(
        client,
        "/api/ingest/accounts",
        seeded.tenant_id,
        content=_csv(ACCOUNTS_HEADER, *rows),
        headers={"Content-Type": "text/csv"},
    )
    metrics = [f"{account},2024-02,5,10,1,40" for account in seeded.account_ids]
    _post_ok(
        client,
        "/api/ingest/metrics",
        seeded.tenant_id,
        content=_csv(METRICS_HEADER, *metrics),
        headers={"Content-Type": "text/csv"},
    )
    answers = []
    for query, kind in ((QUESTION, "temporal_analysis"), ("manufacturing accounts", "semantic")):
        body = _post_ok(
            client,
            "/api/rag-qdrant/query",
            seeded.tenant_id,
            json={"query": query, "query_type": kind},
        )
        answers.append(body["answer_id"])
    _post_ok(client, "/api/feedback", seeded.tenant_id, json={"answer_id": answers[0], "rating": 1})
    return SeededTenant(seeded.tenant_id, seeded.account_ids, seeded.names, tuple(answers))


def _refresh_all(client: TestClient) -> None:
    for dataset in ("customer_data", "health_scores", "rag_knowledge_base"):
        response = client.post(f"/api/refresh-data/{dataset}", headers=ADMIN)
        assert response.status_code == 202, response.text
        job = response.json()["job"]
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
            job = client.get(f"/api/refresh-data/jobs/{job['id']}", headers=ADMIN).json()
        assert job["status"] == "succeeded", job


@dataclass
class Seeded:
    client: TestClient
    endpoints: list[Endpoint]
    tenants: tuple[SeededTenant, SeededTenant]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    settings = app_settings(tmp_path_factory.mktemp("tenancy"), admin_token=ADMIN_TOKEN)
    app = create_app(settings)
    app.state.toggles = _all_on()
    with TestClient(app, raise_server_exceptions=False) as client:
        alpha = _seed(client, ALPHA)
        bravo = _seed(client, BRAVO)
        _refresh_all(client)
        yield Seeded(client, endpoints_of(app), (alpha, bravo))


# -- what requests look like ---------------------------------------------------------------

HOSTILE_TENANTS = [
    "",
    " ",
    "\t",
    "a" * 129,
    "a" * 8192,
    "alpha\x00",
    "alpha\x00bravo",
    "alpha\r\nX-Customer-ID: bravo",
    "alpha,bravo",
    "alpha;bravo",
    "alpha bravo",
    "*",
    "%",
    "_",
    "alpha%",
    "bravo_",
    "' OR '1'='1",
    "alpha' OR tenant_id='bravo",
    "alpha'; DROP TABLE accounts; --",
    "bravo\\",
    "../bravo",
    "alpha/../bravo",
    "..%2fbravo",
    "%62ravo",
    "bravo%00",
    "\uff22\uff32\uff21\uff36\uff2f",
    "bravo\u200b",
    "bra\u0301vo",
    "ßravo",
    "\u202ebravo",
    "null",
    "None",
    "0",
    "-1",
]


def _variants(tenant: str) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            tenant,
            tenant.upper(),
            tenant.capitalize(),
            tenant.swapcase(),
            f" {tenant}",
            f"{tenant} ",
            f"{tenant}\t",
            f"\t{tenant}",
            f"{tenant}\n",
            f"{tenant}.",
            f"{tenant}-",
            f"{tenant}:x",
            tenant[:-1],
            tenant + tenant[-1],
        ]
    )


header_values: st.SearchStrategy[str | bytes | None] = st.one_of(
    st.none(),
    st.sampled_from(HOSTILE_TENANTS),
    st.sampled_from(["alpha", "bravo"]).flatmap(_variants),
    st.text(max_size=300),
    st.binary(max_size=200),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}[A-Za-z0-9]", fullmatch=True),
)


def _json_values() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.text(max_size=50),
        st.sampled_from([*ALPHA.account_ids, *BRAVO.account_ids, *ALPHA.names, *BRAVO.names]),
    )
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=12,
    )


@st.composite
def _csv_bodies(draw: st.DrawFn, other: SeededTenant) -> str:
    header = draw(st.sampled_from([ACCOUNTS_HEADER, METRICS_HEADER, "account_id", "", "a,b,c"]))
    cell = st.one_of(st.text(max_size=12), st.sampled_from(["2024-02", "12", "-5", "1e309", ""]))
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        cells = draw(st.lists(cell, min_size=0, max_size=7))
        if header == METRICS_HEADER and draw(st.booleans()):
            # Metrics for the other tenant's account: must be refused, never attached.
            cells = [draw(st.sampled_from(other.account_ids)), "2024-03", "10", "1", "1", "1"]
        rows.append(",".join(cells))
    return _csv(header, *rows)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    headers: list[tuple[str, str | bytes]]
    content: bytes | None
    tenant_value: str | bytes | None


def _path_filler(other: SeededTenant) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(
            [*other.answer_ids, "accounts", "metrics", "customer_data", "..", "%2e%2e", "x" * 300]
        ),
        st.text(min_size=1, max_size=40).map(lambda text: quote(text, safe="")),
    )


@st.composite
def calls(draw: st.DrawFn, endpoints: list[Endpoint], other: SeededTenant) -> Call:
    endpoint = draw(st.sampled_from(endpoints))
    path = endpoint.path
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + draw(_path_filler(other)) + path[end + 1 :]

    tenant_value = draw(header_values)
    headers: list[tuple[str, str | bytes]] = []
    if tenant_value is not None:
        headers.append((TENANT_HEADER, tenant_value))
    if draw(st.integers(0, 9)) == 0:
        headers.append((TENANT_HEADER, draw(st.sampled_from(["alpha", "bravo"]))))
    if draw(st.booleans()):
        headers.append(("Authorization", draw(st.sampled_from(["Bearer", "Bearer x", "Basic a"]))))

    content: bytes | None = None
    if endpoint.method in ("POST", "PUT", "PATCH", "DELETE"):
        kind = draw(st.sampled_from(["json", "json-shaped", "csv", "binary", "none"]))
        if kind == "json":
            content = json.dumps(draw(_json_values())).encode()
            headers.append(("Content-Type", "application/json"))
        elif kind == "json-shaped":
            shaped = {
                "query": draw(st.text(max_size=80) | st.sampled_from(other.names)),
                "query_type": draw(st.sampled_from(["temporal_analysis", "semantic", "sql", ""])),
                "months": draw(st.integers(-5, 500)),
                "answer_id": draw(st.sampled_from(other.answer_ids) | st.text(max_size=40)),
                "rating": draw(st.sampled_from([1, -1, 0, 2, "1"])),
            }
            content = json.dumps(shaped).encode()
            headers.append(("Content-Type", "application/json"))
        elif kind == "csv":
            content = draw(_csv_bodies(other)).encode()
            headers.append(("Content-Type", draw(st.sampled_from(["text/csv", "text/plain"]))))
        elif kind == "binary":
            content = draw(st.binary(max_size=2048))
            headers.append(
                ("Content-Type", draw(st.sampled_from(["application/octet-stream", "text/csv"])))
            )
    return Call(endpoint.method, path, headers, content, tenant_value)


# -- what a response may contain ----------------------------------------------------------


def _named_tenant(call: Call) -> str | None:
    """The tenant the request names, as a server that strips header padding would read it."""
    values = [value for name, value in call.headers if name == TENANT_HEADER]
    if len(values) != 1:
        return None
    value = values[0]
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.strip(" \t")


def _request_text(call: Call) -> str:
    parts = [call.path, *(str(value) for _, value in call.headers)]
    if call.content is not None:
        parts.append(call.content.decode("utf-8", errors="replace"))
    return "\n".join(parts)


def check_response(call: Call, status: int, text: str, seeded: Seeded) -> None:
    assert status < 500, f"{call.method} {call.path} answered {status}: {text[:500]}"

    named = _named_tenant(call)
    asked = _request_text(call)
    for tenant in seeded.tenants:
        if named == tenant.tenant_id:
            continue
        leaked = [secret for secret in tenant.secrets if secret in text and secret not in asked]
        assert not leaked, (
            f"{call.method} {call.path} as {named!r} leaked {tenant.tenant_id}'s {leaked}: "
            f"{text[:500]}"
        )

    if status >= 400:
        body = json.loads(text)
        error = body.get("error") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        assert (error and error.get("message")) or detail, f"unclear {status} error: {text[:300]}"


@examples(normal=500, soak=10_000)
@given(data=st.data())
def test_no_request_sees_another_tenants_data_or_a_server_error(
    seeded: Seeded, data: st.DataObject
) -> None:
    other = data.draw(st.sampled_from(seeded.tenants))
    call = data.draw(calls(seeded.endpoints, other))
    # Sent as bytes, as a client outside Python's ASCII rules could send them.
    raw = [(name, v if isinstance(v, bytes) else v.encode()) for name, v in call.headers]
    response = seeded.client.request(call.method, call.path, headers=raw, content=call.content)
    check_response(call, response.status_code, response.text, seeded)

    endpoint_scoped = any(
        e.tenant_scoped and e.method == call.method and _matches(e.path, call.path)
        for e in seeded.endpoints
    )
    named = _named_tenant(call)
    if endpoint_scoped and not named:
        assert response.status_code >= 400, response.text[:300]


def _matches(template: str, path: str) -> bool:
    fixed = template.split("{")[0]
    return path == template or ("{" in template and path.startswith(fixed))


def test_every_route_is_fuzzed(seeded: Seeded) -> None:
    paths = {endpoint.path for endpoint in seeded.endpoints}
    assert {"/api/rag-qdrant/query", "/api/ingest/{dataset}", "/api/feedback"} <= paths
    scoped = {e.path for e in seeded.endpoints if e.tenant_scoped}
    assert "/api/uploads" in scoped and "/api/feedback/{answer_id}" in scoped


@pytest.mark.parametrize(
    "value", [v for v in HOSTILE_TENANTS if v.strip(" \t") and not TENANT_ID.fullmatch(v)]
)
def test_a_hostile_customer_id_is_refused_with_a_400_naming_the_header(
    seeded: Seeded, value: str
) -> None:
    response = seeded.client.post(
        "/api/rag-qdrant/query",
        json={"query": QUESTION, "query_type": "temporal_analysis"},
        headers=[(TENANT_HEADER, value.encode("utf-8"))],
    )
    assert response.status_code == 400, response.text
    assert TENANT_HEADER in response.json()["error"]["message"]


def test_each_tenant_still_sees_exactly_its_own_accounts_after_the_fuzzing(
    seeded: Seeded,
) -> None:
    for tenant in seeded.tenants:
        response = seeded.client.post(
            "/api/rag-qdrant/query",
            json={"query": QUESTION, "query_type": "temporal_analysis"},
            headers={TENANT_HEADER: tenant.tenant_id},
        )
        assert response.status_code == 200, response.text
        names = {account["name"] for account in response.json()["data"]["accounts"]}
        assert set(tenant.names) <= names
        others = [t for t in seeded.tenants if t is not tenant]
        assert not names & {name for other in others for name in other.names}


@pytest.mark.parametrize("body", [b"Infinity", b"NaN", b'{"rating": -Infinity}', b"\x80\xff"])
@pytest.mark.parametrize("path", ["/api/feedback", "/api/rag-qdrant/query"])
def test_a_body_json_cannot_echo_is_refused_not_a_server_error(
    seeded: Seeded, path: str, body: bytes
) -> None:
    response = seeded.client.post(
        path,
        content=body,
        headers={TENANT_HEADER: "alpha", "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"]


def test_a_customer_id_sent_twice_is_refused_whichever_comes_first(seeded: Seeded) -> None:
    for path in ("/api/feedback/boosts", "/api/feature-status"):
        for pair in (("alpha", "bravo"), ("bravo", "alpha"), ("alpha", "alpha")):
            response = seeded.client.get(path, headers=[(TENANT_HEADER, v) for v in pair])
            assert response.status_code == 400, response.text
            assert "sent 2 times" in response.json()["error"]["message"]


def test_a_tenant_cannot_rate_or_delete_another_tenants_answer(seeded: Seeded) -> None:
    alpha, bravo = seeded.tenants
    for answer_id in bravo.answer_ids:
        rated = seeded.client.post(
            "/api/feedback",
            json={"answer_id": answer_id, "rating": -1},
            headers={TENANT_HEADER: alpha.tenant_id},
        )
        assert rated.status_code == 404, rated.text
        deleted = seeded.client.delete(
            f"/api/feedback/{answer_id}", headers={TENANT_HEADER: alpha.tenant_id}
        )
        assert deleted.status_code == 404, deleted.text
