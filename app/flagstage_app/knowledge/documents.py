"""What a tenant's knowledge base is built from: account summaries and stored notes.

An account summary is written from the account's SQL rows (its revenue, its latest month of
activity, its health score) as a few plain sentences, so retrieval and the answer writers work
on text. Notes are `kb_documents` rows, uploaded by the tenant. Every query here is scoped to
one tenant.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagstage_app.knowledge.index import Document
from flagstage_app.models import Account, AccountMetric, HealthScore, KnowledgeDocument, Tenant

ACCOUNT_SUMMARY = "account_summary"


def account_doc_id(account_id: str) -> str:
    return f"account:{account_id}"


def summarize_account(
    account: Account, metric: AccountMetric | None, health: HealthScore | None
) -> str:
    """A few sentences about one account, from its own rows only."""
    sentences = [
        f"{account.name} (account {account.account_id}) is a {account.industry} account.",
        f"Its revenue in {account.revenue_month} was {account.revenue:,.2f}.",
    ]
    if metric is not None:
        sentences.append(
            f"In {metric.month} revenue changed by {metric.revenue_growth_pct:+.2f}% month over "
            f"month, with {metric.active_users} active users, {metric.support_tickets} support "
            f"tickets and an NPS of {metric.nps:.0f}."
        )
    if health is not None:
        sentences.append(f"Its health score is {health.score} of 100 as of {health.as_of_month}.")
    return " ".join(sentences)


def account_summaries(
    session: Session, tenant: str, accounts: Collection[str] | None = None
) -> list[Document]:
    """Summaries of `tenant`'s accounts (only of `accounts` when given)."""
    account_query = select(Account).where(Account.tenant_id == tenant)
    metric_query = select(AccountMetric).where(AccountMetric.tenant_id == tenant)
    health_query = select(HealthScore).where(HealthScore.tenant_id == tenant)
    if accounts is not None:
        chosen = sorted(set(accounts))
        account_query = account_query.where(Account.account_id.in_(chosen))
        metric_query = metric_query.where(AccountMetric.account_id.in_(chosen))
        health_query = health_query.where(HealthScore.account_id.in_(chosen))
    rows = session.scalars(account_query.order_by(Account.account_id)).all()
    latest: dict[str, AccountMetric] = {}
    for metric in session.scalars(metric_query.order_by(AccountMetric.month)):
        latest[metric.account_id] = metric
    health = {score.account_id: score for score in session.scalars(health_query)}
    return [
        Document(
            tenant,
            account_doc_id(account.account_id),
            ACCOUNT_SUMMARY,
            summarize_account(
                account, latest.get(account.account_id), health.get(account.account_id)
            ),
        )
        for account in rows
    ]


def stored_documents(session: Session, tenant: str) -> list[Document]:
    rows = session.scalars(
        select(KnowledgeDocument)
        .where(KnowledgeDocument.tenant_id == tenant)
        .order_by(KnowledgeDocument.doc_id)
    )
    return [Document(tenant, row.doc_id, row.kind, row.text) for row in rows]


def tenant_documents(session: Session, tenant: str) -> list[Document]:
    """Everything `tenant`'s knowledge base holds: account summaries, then stored documents."""
    return account_summaries(session, tenant) + stored_documents(session, tenant)


def all_tenants(session: Session) -> Sequence[str]:
    return session.scalars(select(Tenant.tenant_id).order_by(Tenant.tenant_id)).all()


def documents_by_tenant(session: Session, tenants: Iterable[str]) -> dict[str, list[Document]]:
    return {tenant: tenant_documents(session, tenant) for tenant in tenants}
