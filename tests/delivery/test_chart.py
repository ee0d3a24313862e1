"""The Helm chart lints, renders what each setting promises, and refuses values it cannot use.

These tests only render (`helm lint`, `helm template`); test_chart_on_apiserver.py sends the
result to a real API server.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from tests.delivery.conftest import CHART, CI_VALUES, CRD, REPO, Helm, find_object

VALUE_SETS = [pytest.param((), id="defaults")] + [
    pytest.param((path,), id=path.name.removesuffix("-values.yaml")) for path in CI_VALUES
]
DNS_LABEL_MAX = 63


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every Pod and pod template among `objects`."""
    specs = []
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "Pod":
            specs.append((where, obj["spec"]))
        elif obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            specs.append((where, obj["spec"]["template"]["spec"]))
    return specs


def test_ci_values_cover_the_scopes_and_the_app() -> None:
    names = {path.name for path in CI_VALUES}

    assert {
        "all-namespaces-values.yaml",
        "single-namespace-values.yaml",
        "with-app-values.yaml",
        "with-webhook-values.yaml",
        "with-cert-manager-values.yaml",
        "leader-election-values.yaml",
        "with-sync-sidecar-values.yaml",
    } <= names


@pytest.mark.parametrize("values", VALUE_SETS)
def test_chart_lints_strictly(helm: Helm, values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART), *(f"--values={path}" for path in values)]

    result = helm.run(*args, check=False)

    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_crd_is_the_generated_one() -> None:
    chart_crd = CHART / "crds" / CRD.name

    assert chart_crd.read_bytes() == CRD.read_bytes(), (
        f"{chart_crd.relative_to(REPO)} differs from {CRD.relative_to(REPO)}: run `make crds`"
    )


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_pod_meets_the_restricted_standard_and_has_resources(
    helm: Helm, values: tuple[Path, ...]
) -> None:
    objects = helm.objects(values=values)

    specs = pod_specs(objects)
    assert specs
    for where, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert not any("subPath" in mount for mount in container.get("volumeMounts", []))


def test_default_install_watches_every_namespace_with_a_cluster_role(helm: Helm) -> None:
    objects = helm.objects()

    operator = find_object(objects, "Deployment", "flagstage")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    binding = find_object(objects, "ClusterRoleBinding")
    assert "--all-namespaces" in args
    assert not any(arg.startswith("--namespace") for arg in args)
    assert not [obj for obj in objects if obj["kind"] in {"Role", "RoleBinding"}]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "flagstage", "namespace": "flagstage-system"}
    ]


def test_watched_namespaces_get_a_role_each_and_nothing_cluster_wide(helm: Helm) -> None:
    objects = helm.objects(settings=["watchNamespaces={shop,insights}"])

    operator = find_object(objects, "Deployment", "flagstage")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    roles = {obj["metadata"]["namespace"] for obj in objects if obj["kind"] == "Role"}
    bindings = {obj["metadata"]["namespace"] for obj in objects if obj["kind"] == "RoleBinding"}
    assert args[:2] == ["--namespace=shop", "--namespace=insights"]
    assert "--all-namespaces" not in args
    assert roles == bindings == {"shop", "insights"}
    assert not [obj for obj in objects if obj["kind"].startswith("Cluster")]


def test_operator_is_probed_on_healthz_and_scraped_through_its_service(helm: Helm) -> None:
    objects = helm.objects(settings=["operator.healthPort=9080", "operator.metricsPort=9081"])

    operator = find_object(objects, "Deployment", "flagstage")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    service = find_object(objects, "Service", "flagstage-metrics")
    assert ports == {"health": 9080, "metrics": 9081}
    assert {"--health-port=9080", "--metrics-port=9081"} <= set(container["args"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert service["spec"]["selector"] == operator["spec"]["selector"]["matchLabels"]
    # One operator at a time: the old pod is gone before the new one reconciles.
    assert operator["spec"]["strategy"] == {"type": "Recreate"}


def test_app_mounts_its_rollouts_config_map_as_a_directory(helm: Helm) -> None:
    objects = helm.objects(settings=["app.enabled=true", "app.featuresConfigMap=shop-features"])

    app = find_object(objects, "Deployment", "flagstage-app")
    spec = app["spec"]["template"]["spec"]
    container = spec["containers"][0]
    volume = next(volume for volume in spec["volumes"] if "configMap" in volume)
    mount = next(mount for mount in container["volumeMounts"] if mount["name"] == volume["name"])
    env = {item["name"]: item.get("value") for item in container["env"]}
    service = find_object(objects, "Service", "flagstage-app")
    assert volume["configMap"] == {"name": "shop-features", "optional": True}
    assert env["FEATURES_CONFIG_DIR"] == mount["mountPath"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert service["spec"]["selector"] == app["spec"]["selector"]["matchLabels"]
    operator = find_object(objects, "Deployment", "flagstage")
    assert app["spec"]["selector"] != operator["spec"]["selector"]


def test_leader_election_lets_replicas_elect_a_holder_over_a_lease(helm: Helm) -> None:
    objects = helm.objects(
        settings=["leaderElection.enabled=true", "replicaCount=3", "leaderElection.leaseSeconds=20"]
    )

    operator = find_object(objects, "Deployment", "flagstage")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    role = find_object(objects, "Role", "flagstage-leader-election")
    binding = find_object(objects, "RoleBinding", "flagstage-leader-election")
    assert operator["spec"]["replicas"] == 3
    assert {
        "--leader-election",
        "--lease-name=flagstage",
        "--lease-namespace=flagstage-system",
        "--lease-seconds=20",
    } <= set(container["args"])
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    # A standby takes over from an old pod as it hands the Lease back, so pods can roll.
    assert operator["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "flagstage-system"
    assert {resource for rule in role["rules"] for resource in rule["resources"]} == {"leases"}
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "flagstage", "namespace": "flagstage-system"}
    ]


def test_without_leader_election_there_is_one_replica_and_no_lease(helm: Helm) -> None:
    objects = helm.objects(settings=["operator.extraEnv[0].name=TZ"])

    operator = find_object(objects, "Deployment", "flagstage")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    assert not any(arg.startswith("--lease") for arg in container["args"])
    assert "--leader-election" not in container["args"]
    assert [item["name"] for item in container["env"]] == ["TZ"]
    assert not [obj for obj in objects if obj["kind"] in {"Role", "RoleBinding"}]


def test_more_operator_replicas_are_allowed_with_leader_election_only(helm: Helm) -> None:
    alone = helm.template(settings=["replicaCount=2"], check=False)
    elected = helm.template(settings=["replicaCount=2", "leaderElection.enabled=true"])

    assert alone.returncode != 0
    assert elected.returncode == 0


def test_app_follows_its_config_map_through_a_sync_sidecar(helm: Helm) -> None:
    objects = helm.objects(values=[CHART / "ci" / "with-sync-sidecar-values.yaml"])

    spec = find_object(objects, "Deployment", "flagstage-app")["spec"]["template"]["spec"]
    operator = find_object(objects, "Deployment", "flagstage")["spec"]["template"]["spec"]
    app, sidecar = spec["containers"]
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    app_mounts = {mount["name"]: mount for mount in app["volumeMounts"]}
    sidecar_mounts = {mount["name"]: mount for mount in sidecar["volumeMounts"]}
    env = {item["name"]: item.get("value") for item in app["env"]}
    role = find_object(objects, "Role", "flagstage-app-sync")
    binding = find_object(objects, "RoleBinding", "flagstage-app-sync")
    account = find_object(objects, "ServiceAccount", "flagstage-app")

    assert sidecar["name"] == "sync"
    # The operator's image is the one that has the `flagstage` command.
    assert sidecar["image"] == operator["containers"][0]["image"]
    assert sidecar["command"] == [
        "flagstage",
        "sync",
        "--namespace=flagstage-system",
        "--name=insights-api-features",
        "--dir=/etc/flagstage/features",
        "--resync-seconds=30",
    ]
    # The app reads what the sidecar writes, and no ConfigMap volume is left behind.
    assert not [volume for volume in spec["volumes"] if "configMap" in volume]
    assert "emptyDir" in volumes["features"]
    assert env["FEATURES_CONFIG_DIR"] == app_mounts["features"]["mountPath"]
    assert sidecar_mounts["features"]["mountPath"] == app_mounts["features"]["mountPath"]
    assert app_mounts["features"]["readOnly"] is True
    # Only the sidecar holds a token, of an account that may read that one ConfigMap.
    assert spec["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert "projected" in volumes[sidecar_mounts["sync-token"]["name"]]
    assert not any("projected" in volumes[name] for name in app_mounts)
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["insights-api-features"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "flagstage-app", "namespace": "flagstage-system"}
    ]


def test_service_monitor_selects_the_metrics_service(helm: Helm) -> None:
    objects = helm.objects(settings=["metrics.serviceMonitor.enabled=true"])

    monitor = find_object(objects, "ServiceMonitor")
    service = find_object(objects, "Service", "flagstage-metrics")
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_helm_test_fetches_the_operators_metrics(helm: Helm) -> None:
    objects = helm.objects()

    pod = find_object(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["containers"][0]["command"][-1] == (
        "http://flagstage-metrics.flagstage-system.svc:8081/metrics"
    )


def test_names_of_a_long_release_fit_in_a_dns_label(helm: Helm) -> None:
    release = "r" * 53  # the longest release name Helm accepts

    objects = helm.objects(release=release, settings=["app.enabled=true"])

    for obj in objects:
        if obj["kind"] in {"Service", "Deployment"}:
            assert len(obj["metadata"]["name"]) <= DNS_LABEL_MAX, obj["metadata"]["name"]
        for value in obj["metadata"].get("labels", {}).values():
            assert len(value) <= DNS_LABEL_MAX, value


def test_image_digest_wins_over_the_tag(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32

    objects = helm.objects(settings=[f"image.digest={digest}", "image.tag=ignored"])

    operator = find_object(objects, "Deployment", "flagstage")
    image = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/flagstage/flagstage-operator@{digest}"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=2", "at '/replicaCount': maximum: got 2, want 1"),
        ("leaderElection.leaseSeconds=0", "at '/leaderElection/leaseSeconds'"),
        ("leaderElection.leaseName=Leader_Lease", "at '/leaderElection/leaseName'"),
        ("app.syncSidecar.resyncSeconds=0", "at '/app/syncSidecar/resyncSeconds'"),
        ("app.syncSidecar.enable=true", "additional properties 'enable' not allowed"),
        ("image.pullPolicy=Sometimes", "at '/image/pullPolicy': value must be one of"),
        ("watchNamespaces={Team_A}", "at '/watchNamespaces/0'"),
        ("operator.tickSeconds=0", "at '/operator/tickSeconds'"),
        ("operator.metricsPort=70000", "at '/operator/metricsPort'"),
        ("operator.logLevel=debug", "additional properties 'logLevel' not allowed"),
        ("metrics.service.type=Ingress", "at '/metrics/service/type'"),
        ("image.digest=latest", "at '/image/digest'"),
        ("app.featuresConfigMap=", "at '/app/featuresConfigMap'"),
        ("webhook.port=0", "at '/webhook/port'"),
        ("webhook.certManager.issuerRef.kind=Secret", "at '/webhook/certManager/issuerRef/kind'"),
    ],
)
def test_schema_refuses_a_bad_value_and_names_it(helm: Helm, setting: str, message: str) -> None:
    result = helm.template(settings=[setting], check=False)

    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_webhook_is_served_by_the_operator_behind_its_own_service(helm: Helm) -> None:
    objects = helm.objects(settings=["webhook.enabled=true", "webhook.port=8443"])

    operator = find_object(objects, "Deployment", "flagstage")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    service = find_object(objects, "Service", "flagstage-webhook")
    configuration = find_object(objects, "ValidatingWebhookConfiguration")
    assert {
        "--webhook-port=8443",
        "--webhook-address=0.0.0.0",
        "--webhook-host=flagstage-webhook.flagstage-system.svc",
        "--webhook-cert=/etc/flagstage/webhook/tls.crt",
        "--webhook-key=/etc/flagstage/webhook/tls.key",
        "--webhook-ca=/etc/flagstage/webhook/ca.crt",
    } <= set(container["args"])
    # The registered URL carries the port, so the Service must answer on the pod's port.
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 8443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == operator["spec"]["selector"]["matchLabels"]
    # The operator fills in the webhooks; the release only owns the object.
    assert configuration["metadata"]["name"] == "flagstage.flagstage.io"
    assert "webhooks" not in configuration


def test_generated_webhook_certificate_is_signed_by_its_ca_for_the_service(helm: Helm) -> None:
    objects = helm.objects(settings=["webhook.enabled=true"])

    secret = find_object(objects, "Secret", "flagstage-webhook-tls")
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert secret["type"] == "kubernetes.io/tls"
    assert "flagstage-webhook.flagstage-system.svc" in names.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(ca)
    assert "tls.key" in secret["data"]


def test_cert_manager_issues_the_webhook_certificate_when_asked(helm: Helm) -> None:
    objects = helm.objects(settings=["webhook.enabled=true", "webhook.certManager.enabled=true"])

    certificate = find_object(objects, "Certificate")
    issuer = find_object(objects, "Issuer")
    assert not [obj for obj in objects if obj["kind"] == "Secret"]
    assert certificate["spec"]["secretName"] == "flagstage-webhook-tls"
    assert "flagstage-webhook.flagstage-system.svc" in certificate["spec"]["dnsNames"]
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert issuer["spec"] == {"selfSigned": {}}


def test_webhook_role_is_cluster_wide_even_for_a_namespaced_operator(helm: Helm) -> None:
    objects = helm.objects(settings=["webhook.enabled=true", "watchNamespaces={shop}"])

    role = find_object(objects, "ClusterRole", "flagstage-webhook")
    assert {"ClusterRole", "ClusterRoleBinding"} == {
        obj["kind"] for obj in objects if obj["kind"].startswith("Cluster")
    }
    assert all(rule["resources"] == ["validatingwebhookconfigurations"] for rule in role["rules"])


def test_values_file_points_editors_at_the_schema() -> None:
    first_line = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()[0]

    assert first_line == "# yaml-language-server: $schema=values.schema.json"


def test_schema_describes_every_default_value() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

    def undescribed(node: dict[str, Any], data: dict[str, Any], where: str) -> list[str]:
        missing = []
        for key, value in data.items():
            prop = node.get("properties", {}).get(key)
            if prop is None:
                missing.append(f"{where}{key}")
            elif isinstance(value, dict) and prop.get("additionalProperties") is False:
                missing += undescribed(prop, value, f"{where}{key}.")
        return missing

    assert undescribed(schema, values, "") == []


def test_every_chart_value_has_a_comment_above_it() -> None:
    # Inside these, the keys are Kubernetes' own fields, documented by Kubernetes.
    kubernetes_objects = {"resources", "livenessProbe", "podSecurityContext", "securityContext"}
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()

    ancestors: list[tuple[int, str]] = []
    undocumented = []
    for number, line in enumerate(lines, 1):
        key = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if key is None:
            continue
        indent = len(key.group(1))
        ancestors = [(level, name) for level, name in ancestors if level < indent]
        inside_kubernetes_object = any(name in kubernetes_objects for _, name in ancestors)
        ancestors.append((indent, key.group(2)))
        if not inside_kubernetes_object and not lines[number - 2].strip().startswith("#"):
            undocumented.append(f"values.yaml:{number} {key.group(2)}")

    assert undocumented == []
