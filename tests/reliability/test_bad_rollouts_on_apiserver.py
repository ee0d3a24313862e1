"""Generated bad rollouts against a real kube-apiserver with the CRD and a running operator.

One operator process watches the test's namespace for the whole run. A valid rollout is created
first and its ConfigMap recorded; then the rollout is updated to each generated flawed spec in
turn. Every update must be refused by the API server (schema, CEL, strict field validation) or,
once admitted, by the operator (`Valid=False`), and the ConfigMap must stay byte-identical with
no other ConfigMap appearing. At the end the valid spec is put back and is taken again.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flagstage_operator.crd import CRD_NAME, CRD_PATH, PLURAL
from hypothesis import given, settings
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from flagstage.model import API_GROUP, API_VERSION
from flagstage.rendering import FEATURES_KEY
from tests.controlplane.launcher import ControlPlane
from tests.operator.conftest import Cluster, OperatorProcess, fast_copy, load_example, wait_for
from tests.reliability.conftest import budget, examples
from tests.reliability.rollouts import FLAWS, FlawedRollout, flawed_rollouts

NAME = "insights-api"
CONFIG_MAP = "insights-api-features"
OUTCOMES: Counter[tuple[str, str]] = Counter()
PER_KIND = budget(3, 50)

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(control_plane: ControlPlane, kube_namespace: str) -> Iterator[Cluster]:
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD_PATH))
    control_plane.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
    with control_plane.api_client() as api:
        yield Cluster(api, kube_namespace)


@pytest.fixture
def operator(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path, cluster: Cluster
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(kube_namespace, control_plane.kubeconfig, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def live_rollout(cluster: Cluster, operator: OperatorProcess) -> dict[str, Any]:
    """The example rollout, created valid, with the ConfigMap the operator wrote for it."""
    manifest = fast_copy(load_example("six-week-rollout.yaml"), stage_seconds=3600)
    cluster.create(manifest)
    cluster.wait_stage(NAME, "week-1", timeout=30)
    wait_for("the ConfigMap", lambda: cluster.config_map(CONFIG_MAP))
    return manifest


def _replace_spec(cluster: Cluster, spec: dict[str, Any]) -> dict[str, Any]:
    current = cluster.rollout(NAME)
    current["spec"] = copy.deepcopy(spec)
    return dict(
        cluster.custom.replace_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            cluster.namespace,
            PLURAL,
            NAME,
            current,
            field_validation="Strict",
        )
    )


def _config_maps(cluster: Cluster) -> dict[str, client.V1ConfigMap]:
    items = cluster.core.list_namespaced_config_map(cluster.namespace).items
    return {item.metadata.name: item for item in items}


def _valid_condition(cluster: Cluster, generation: int) -> dict[str, Any] | None:
    status = cluster.status(NAME)
    if status.get("observedGeneration") != generation:
        return None
    return cluster.condition(NAME, "Valid") or None


def generate(kind: str, count: int) -> list[FlawedRollout]:
    """`count` flawed rollouts of one kind, drawn by hypothesis up front (no cluster involved)."""
    found: list[FlawedRollout] = []

    @settings(examples(count, count), database=None)
    @given(flawed=flawed_rollouts(kinds=(kind,)))
    def collect(flawed: FlawedRollout) -> None:
        found.append(flawed)

    collect()
    return found[:count]


def test_every_flawed_update_is_refused_and_never_touches_the_config_map(
    cluster: Cluster, operator: OperatorProcess, live_rollout: dict[str, Any]
) -> None:
    # Generated per kind, so even a short run puts every kind of flaw to the API server.
    for kind in sorted(FLAWS):
        for flawed in generate(kind, PER_KIND):
            put_to_the_cluster(cluster, flawed)
    assert {kind for kind, _ in OUTCOMES} == set(FLAWS)


def put_to_the_cluster(cluster: Cluster, flawed: FlawedRollout) -> None:
    before = _config_maps(cluster)
    try:
        updated = _replace_spec(cluster, flawed.spec)
    except ApiException as err:
        assert 400 <= err.status < 500, err
        assert err.body, "the API server refused without saying why"
        OUTCOMES[(flawed.kind, "apiserver")] += 1
    else:
        generation = updated["metadata"]["generation"]
        valid = wait_for(
            f"the operator's verdict on generation {generation} ({flawed.kind})",
            lambda: _valid_condition(cluster, generation),
            timeout=20,
            interval=0.05,
        )
        assert valid["status"] == "False", (flawed.kind, flawed.spec, valid)
        assert valid["reason"] == "InvalidSpec"
        OUTCOMES[(flawed.kind, "operator")] += 1

    after = _config_maps(cluster)
    assert after.keys() == before.keys()
    for name, config_map in before.items():
        assert after[name].data == config_map.data, f"ConfigMap {name} changed: {flawed}"
        assert after[name].metadata.resource_version == config_map.metadata.resource_version


def test_the_valid_spec_put_back_after_the_flaws_is_taken_again(
    cluster: Cluster, operator: OperatorProcess, live_rollout: dict[str, Any]
) -> None:
    original = cluster.config_map(CONFIG_MAP)
    assert original is not None
    broken = copy.deepcopy(live_rollout["spec"])
    broken["features"][0]["requires"] = ["temporal_analysis"]
    generation = _replace_spec(cluster, broken)["metadata"]["generation"]
    wait_for("Valid=False", lambda: (c := _valid_condition(cluster, generation)) and c)

    generation = _replace_spec(cluster, live_rollout["spec"])["metadata"]["generation"]
    valid = wait_for("Valid again", lambda: _valid_condition(cluster, generation))
    assert valid["status"] == "True", valid
    again = wait_for(
        "the ConfigMap of the new generation",
        lambda: (
            (found := cluster.config_map(CONFIG_MAP))
            and json.loads(found.data[FEATURES_KEY])["rollout"]["generation"] == generation
            and found
        ),
    )
    # Same toggles as before the flaws; only the generation it names moved on.
    assert _toggles(again.data) == _toggles(original.data)


def _toggles(data: dict[str, str]) -> tuple[str, dict[str, Any], dict[str, str]]:
    document = json.loads(data[FEATURES_KEY])
    env = {key: value for key, value in data.items() if key.startswith("FEATURE_")}
    return document["hash"], document["features"], env


def test_zz_report_where_the_flaws_were_refused() -> None:
    if OUTCOMES:
        print("\nflawed rollouts refused, by kind and by whom:")
        for (kind, where), count in sorted(OUTCOMES.items()):
            print(f"  {kind:18} {where:9} {count}")
