"""The validating admission webhook: the core's graph checks at `kubectl apply` time.

The CRD's schema and CEL rules refuse what a single object can show wrong; cycles, a stage
that leaves a requirement off, a force-on without its requirements, bad tenant ids and the
like need the core. This webhook runs `parse_rollout` on the NEW object of every create and
update and refuses it with the core's own words, so `kubectl apply` and the operator's Valid
condition say the same thing. kopf serves it (TLS on the address and certificate given) and
keeps the ValidatingWebhookConfiguration up to date.

Failures to reach the webhook are ignored by the API server on purpose: the operator validates
again and keeps the last good configuration, so an operator outage must not block every edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from flagstage.errors import SpecError
from flagstage.model import API_GROUP, API_VERSION
from flagstage.validation import parse_rollout
from flagstage_operator.crd import PLURAL
from flagstage_operator.reconciling import manifest_of

WEBHOOK_ID = "validate-featurerollouts"
UNPROCESSABLE = 422


@dataclass(frozen=True)
class WebhookOptions:
    """Where the webhook listens, how the API server reaches it, and its certificate."""

    port: int
    certfile: str
    pkeyfile: str
    cafile: str | None = None
    addr: str = "127.0.0.1"
    host: str | None = None
    configuration: str = f"flagstage.{API_GROUP}"


def refusal(body: Mapping[str, Any]) -> str | None:
    """The core's problems with a rollout, one per line, or None when it is valid."""
    manifest = manifest_of(body)
    if not manifest["metadata"]["name"]:
        # generateName: the name is not known yet, and is not the core's business.
        manifest["metadata"]["name"] = "generated"
    try:
        parse_rollout(manifest)
    except SpecError as err:
        noun = "problem" if len(err.problems) == 1 else "problems"
        lines = "\n".join(f"- {problem}" for problem in err.problems)
        return f"FeatureRollout refused, {len(err.problems)} {noun}:\n{lines}"
    return None


def register_webhook(registry: kopf.OperatorRegistry, options: WebhookOptions) -> None:
    """Serve the webhook from this operator and let kopf manage its configuration."""

    @kopf.on.startup(registry=registry)
    def serve(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.admission.server = kopf.WebhookServer(
            addr=options.addr,
            port=options.port,
            host=options.host or options.addr,
            certfile=options.certfile,
            pkeyfile=options.pkeyfile,
            cafile=options.cafile,
        )
        settings.admission.managed = options.configuration

    @kopf.on.validate(
        API_GROUP,
        API_VERSION,
        PLURAL,
        id=WEBHOOK_ID,
        operations=["CREATE", "UPDATE"],
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    def validate(body: kopf.Body, **_: Any) -> None:
        message = refusal(body)
        if message is not None:
            raise kopf.AdmissionError(message, code=UNPROCESSABLE)
