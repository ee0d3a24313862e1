"""Immutable toggle snapshots, evaluated on every request.

A `Snapshot` is built once per configuration (from a rendered `features.json`, or from plain
feature states) and never changes; a new configuration means a new snapshot swapped in by a
single reference assignment, so a request sees either the old or the new one, never a mix.
Evaluation answers from precompiled rules: a feature that is on or off for everyone, counting
what it requires, is a constant; only features on for some tenants look at the tenant, and
they remember each tenant's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flagstage.bucketing import hash_limit, tenant_hash
from flagstage.graph import transitive_requirements
from flagstage.rendering import parse_features_document, reaches_of
from flagstage.state import FeatureState, Reach

TENANT_CACHE_SIZE = 65536

Rule = bool | Callable[[str | None], bool]


class _TenantGate:
    """A feature on for some tenants: its own reach and those of its partial requirements."""

    __slots__ = ("_cache", "_checks")

    def __init__(self, checks: Sequence[tuple[str, Reach]]) -> None:
        # Each check is (feature, hash limit, named tenants): the same test as
        # `Reach.includes`, with the percentage turned into a hash limit once, up front.
        self._checks = tuple(
            (name, hash_limit(reach.percentage), frozenset(reach.ids)) for name, reach in checks
        )
        self._cache: dict[str, bool] = {}

    def __call__(self, tenant: str | None) -> bool:
        if tenant is None:
            return False
        try:
            return self._cache[tenant]
        except KeyError:
            pass
        result = True
        for name, limit, ids in self._checks:
            if tenant not in ids and tenant_hash(name, tenant) >= limit:
                result = False
                break
        # Bounded: a flood of made-up tenant ids must not grow memory without limit.
        if len(self._cache) >= TENANT_CACHE_SIZE:
            self._cache.clear()
        self._cache[tenant] = result
        return result


@dataclass(frozen=True)
class FeatureView:
    """What a snapshot knows about one feature, for status pages and explanations."""

    name: str
    reach: Reach
    requires: tuple[str, ...]
    source: str
    description: str = ""


class Snapshot:
    """One configuration's toggles, immutable and safe to share between threads."""

    __slots__ = ("_requires_all", "_rules", "config_hash", "features", "generation", "stage")

    def __init__(
        self,
        states: Mapping[str, FeatureState],
        requires: Mapping[str, Sequence[str]],
        *,
        config_hash: str | None = None,
        generation: int | None = None,
        stage: str | None = None,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        self.config_hash = config_hash
        self.generation = generation
        self.stage = stage
        descriptions = descriptions or {}
        self.features: dict[str, FeatureView] = {
            name: FeatureView(
                name,
                item.reach,
                tuple(requires.get(name, ())),
                item.source,
                descriptions.get(name, ""),
            )
            for name, item in sorted(states.items())
        }
        known = {name: [r for r in requires.get(name, ()) if r in states] for name in states}
        self._requires_all = transitive_requirements(known)
        self._rules: dict[str, Rule] = {name: self._compile(name) for name in states}

    def _compile(self, name: str) -> Rule:
        chain = (name, *self._requires_all[name])
        reaches = [(member, self.features[member].reach) for member in chain]
        if any(reach.nobody for _, reach in reaches):
            return False
        partial = [(member, reach) for member, reach in reaches if not reach.everyone]
        if not partial:
            return True
        return _TenantGate(partial)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Snapshot:
        """A snapshot of a checked `features.json` document (see `parse_features_document`)."""
        features = document["features"]
        return cls(
            reaches_of(features),
            {name: item["requires"] for name, item in features.items()},
            config_hash=document.get("hash"),
            generation=(document.get("rollout") or {}).get("generation"),
            stage=(document.get("stage") or {}).get("name"),
            descriptions={name: item.get("description", "") for name, item in features.items()},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Snapshot:
        """Parse, check and compile a rendered `features.json`; raises `ConfigError`."""
        return cls.from_document(parse_features_document(text))

    def is_enabled(self, feature: str, tenant: str | None = None) -> bool:
        """Whether `feature` is on for `tenant`, counting everything it requires.

        An unknown feature is off. Without a tenant, only features on for everyone are on.
        """
        rule = self._rules.get(feature, False)
        if rule is True:
            return True
        if rule is False:
            return False
        return rule(tenant)

    def blocking_requirement(self, feature: str, tenant: str | None = None) -> str | None:
        """The first requirement that keeps `feature` off for `tenant`, if any."""
        for req in self._requires_all.get(feature, ()):
            if not self.features[req].reach.includes(req, tenant):
                return req
        return None

    def __contains__(self, feature: object) -> bool:
        return feature in self._rules

    def __iter__(self) -> Iterator[str]:
        return iter(self.features)

    def __repr__(self) -> str:
        on = sum(1 for rule in self._rules.values() if rule is True)
        return f"<Snapshot {self.config_hash or 'unhashed'} stage={self.stage} on={on}>"
