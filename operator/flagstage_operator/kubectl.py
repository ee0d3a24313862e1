"""`kubectl flagstage promote|pause|resume|rollback NAME`: ask the operator to act on a rollout.

These commands only write the rollout; the operator does the rest. `pause` and `resume` set
`spec.paused`, like `kubectl rollout pause`, so the intent is part of the desired state (and
shows in a GitOps diff). `promote`, `rollback` and `resume` also leave a request annotation
whose value is the time of the request; the operator acts on each value once.

`flagstage sync`, which follows a ConfigMap into a directory, is registered here too; it lives
in `syncing`.

The `kubernetes` client is imported only when a command runs, so the file-based commands of
`flagstage` start fast and work without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from flagstage.model import API_GROUP, API_VERSION
from flagstage_operator.crd import PLURAL, SINGULAR
from flagstage_operator.reconciling import REQUEST_ANNOTATIONS
from flagstage_operator.syncing import add_sync_command

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

MERGE_PATCH = "application/merge-patch+json"

COMMANDS = {
    "promote": "Move a rollout to its next stage now (also lifts a rollback's hold).",
    "pause": "Freeze a rollout at its stage: set spec.paused to true.",
    "resume": "Let a paused or rolled-back rollout run again: set spec.paused to false.",
    "rollback": "Return a rollout to its previous stage and hold it there.",
}


def request_value(now: datetime | None = None) -> str:
    """A request annotation value: the time, to the microsecond, so requests sort in order."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def patch_for(command: str, now: datetime | None = None) -> dict[str, Any]:
    """The merge patch a command makes to a FeatureRollout."""
    patch: dict[str, Any] = {}
    if command in ("pause", "resume"):
        patch["spec"] = {"paused": command == "pause"}
    if command in REQUEST_ANNOTATIONS:
        patch["metadata"] = {"annotations": {REQUEST_ANNOTATIONS[command]: request_value(now)}}
    return patch


def add_commands(commands: Any) -> None:
    """Add the cluster subcommands to the `flagstage` CLI's subparsers."""
    for name, help_text in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("name", metavar="NAME", help="FeatureRollout name")
        sub.add_argument(
            "-n", "--namespace", help="namespace (default: the kubeconfig context's, or default)"
        )
        sub.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG)")
        sub.set_defaults(handler=run_command)
    add_sync_command(commands)


def _default_namespace(kubeconfig: str | None) -> str:
    from kubernetes import config

    try:
        _, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        return "default"
    return str((active or {}).get("context", {}).get("namespace") or "default")


def run_command(args: argparse.Namespace, out: TextIO) -> int:
    """Patch the rollout as `args.command` asks; kubectl-like output and exit codes."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    # The client reads $KUBECONFIG once, when first imported; read it now instead.
    kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
    namespace = args.namespace or _default_namespace(kubeconfig)
    try:
        api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    except config.ConfigException as err:
        sys.stderr.write(f"error: cannot load the kubeconfig: {err}\n")
        return EXIT_USAGE
    with api:
        try:
            client.CustomObjectsApi(api).patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                args.name,
                patch_for(args.command),
                _content_type=MERGE_PATCH,
            )
        except ApiException as err:
            if err.status == 404:
                sys.stderr.write(
                    f'error: {PLURAL}.{API_GROUP} "{args.name}" not found in namespace '
                    f'"{namespace}"\n'
                )
            else:
                sys.stderr.write(f"error: {args.command} failed: {err.status} {err.reason}\n")
            return EXIT_FAILED
    done = {"promote": "promotion requested", "rollback": "rollback requested"}
    out.write(f"{SINGULAR}.{API_GROUP}/{args.name} {done.get(args.command, args.command + 'd')}\n")
    return EXIT_OK
