"""`flagstage-operator`: run the operator against the current cluster.

Connects with the in-cluster ServiceAccount when there is one, else with the kubeconfig
(`KUBECONFIG` or `~/.kube/config`), the way kubectl does. Serves kopf's liveness probe and the
Prometheus metrics on ports of their own, so a scrape never competes with the probe. The
probe fails once the watch has not been shown current for a while (`liveness`). With
`--leader-election`, replicas elect one holder of a Lease to act (`leadership`).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

import kopf
from kubernetes import client, config
from prometheus_client import start_http_server

from flagstage_operator import OPERATOR_NAME
from flagstage_operator.handlers import (
    DEFAULT_TICK_SECONDS,
    WATCH_SERVER_TIMEOUT_SECONDS,
    build_registry,
)
from flagstage_operator.handling import Reconciler
from flagstage_operator.leadership import (
    DEFAULT_LEASE_NAME,
    DEFAULT_LEASE_SECONDS,
    Leadership,
    LeadershipError,
    default_identity,
    default_lease_namespace,
    refresh_rollouts,
)
from flagstage_operator.liveness import Liveness, default_stale_after
from flagstage_operator.metrics import Metrics
from flagstage_operator.webhook import WebhookOptions, register_webhook

logger = logging.getLogger(__name__)

DEFAULT_HEALTH_PORT = 8080
DEFAULT_METRICS_PORT = 8081


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=OPERATOR_NAME,
        description="Reconcile FeatureRollouts into ConfigMaps, status, Events and reloads.",
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="watch this namespace (repeatable; glob patterns allowed)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument(
        "--bind-address",
        default="0.0.0.0",
        help="address of the liveness and metrics endpoints (default: 0.0.0.0)",
    )
    parser.add_argument(
        "--health-port",
        type=int,
        default=DEFAULT_HEALTH_PORT,
        help=f"liveness endpoint /healthz port, 0 to disable (default: {DEFAULT_HEALTH_PORT})",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=DEFAULT_METRICS_PORT,
        help=f"Prometheus /metrics port, 0 to disable (default: {DEFAULT_METRICS_PORT})",
    )
    parser.add_argument(
        "--tick-seconds",
        type=float,
        default=DEFAULT_TICK_SECONDS,
        help="how often each rollout is checked for a due stage, in seconds "
        f"(default: {DEFAULT_TICK_SECONDS:g})",
    )
    parser.add_argument(
        "--liveness-stale-seconds",
        type=float,
        help="fail /healthz when the watch has not been shown current, or the tick has not "
        "finished a round, for this long (default: 3 ticks plus the watch timeout, "
        f"{default_stale_after(DEFAULT_TICK_SECONDS, WATCH_SERVER_TIMEOUT_SECONDS):g}s "
        "with the default tick)",
    )
    election = parser.add_argument_group(
        "leader election", "run several replicas; only the holder of a Lease acts"
    )
    election.add_argument(
        "--leader-election", action="store_true", help="act only while holding the Lease"
    )
    election.add_argument(
        "--lease-name",
        default=DEFAULT_LEASE_NAME,
        help=f"name of the Lease (default: {DEFAULT_LEASE_NAME})",
    )
    election.add_argument(
        "--lease-namespace",
        help="namespace of the Lease (default: POD_NAMESPACE, else the ServiceAccount's)",
    )
    election.add_argument(
        "--lease-seconds",
        type=float,
        default=DEFAULT_LEASE_SECONDS,
        help="how long a silent holder keeps the Lease before a standby takes over "
        f"(default: {DEFAULT_LEASE_SECONDS:g})",
    )
    webhook = parser.add_argument_group(
        "admission webhook", "serve the validating webhook (needs --webhook-port, -cert, -key)"
    )
    webhook.add_argument("--webhook-port", type=int, help="HTTPS port of the webhook")
    webhook.add_argument("--webhook-cert", help="serving certificate (PEM)")
    webhook.add_argument("--webhook-key", help="private key of the certificate (PEM)")
    webhook.add_argument("--webhook-ca", help="CA the API server trusts for it (PEM)")
    webhook.add_argument(
        "--webhook-address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    webhook.add_argument(
        "--webhook-host", help="host name or IP the API server calls (default: the address)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every reconcile step")
    return parser


def api_client() -> client.ApiClient:
    """An API client as kubectl would connect: in-cluster first, then the kubeconfig."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    kubeconfig = os.environ.get("KUBECONFIG")
    api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    return api


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    kopf.configure(verbose=args.verbose, log_prefix=True)
    # urllib3 warns once per retried connection, three times per call while the API server
    # restarts; the reconciler reports an outage once, and when it is over.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)

    metrics = Metrics()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.bind_address, registry=metrics.registry)
        logger.info("metrics on http://%s:%s/metrics", args.bind_address, args.metrics_port)
    endpoint = (
        f"http://{args.bind_address}:{args.health_port}/healthz" if args.health_port else None
    )

    api = api_client()
    reconciler = Reconciler(api, metrics=metrics)
    leadership = None
    if args.leader_election:
        try:
            namespace = args.lease_namespace or default_lease_namespace()
            leadership = Leadership(
                api,
                name=args.lease_name,
                namespace=namespace,
                identity=default_identity(),
                lease_seconds=args.lease_seconds,
                on_elected=lambda: refresh_rollouts(reconciler),
            )
        except LeadershipError as err:
            build_parser().error(str(err))
        # Events name the replica that wrote them, so a hand-over can be read off them.
        reconciler.instance = leadership.identity
    stale_after = args.liveness_stale_seconds or default_stale_after(
        args.tick_seconds, WATCH_SERVER_TIMEOUT_SECONDS
    )
    liveness = Liveness(reconciler, stale_after_seconds=stale_after, namespaces=args.namespace)
    registry = build_registry(
        reconciler, tick_seconds=args.tick_seconds, leadership=leadership, liveness=liveness
    )
    if args.webhook_port:
        if not (args.webhook_cert and args.webhook_key):
            build_parser().error("--webhook-port needs --webhook-cert and --webhook-key")
        options = WebhookOptions(
            port=args.webhook_port,
            certfile=args.webhook_cert,
            pkeyfile=args.webhook_key,
            cafile=args.webhook_ca,
            addr=args.webhook_address,
            host=args.webhook_host,
        )
        register_webhook(registry, options)
    namespaces = args.namespace
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=endpoint,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
