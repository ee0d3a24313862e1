"""Deterministic tenant bucketing for percentage rollouts.

Each (feature, tenant) pair hashes to a fixed point in [0, 100). A tenant is in a rollout of
p percent when its point is below p, so the choice is sticky (the same tenant always gets the
same answer) and only grows (a tenant reached at 10% is still reached at 25%). The feature name
is part of the key, so two features at 10% reach different tenants rather than the same unlucky
tenth. The key is the feature name followed by the tenant id, hashed with 32-bit MurmurHash3,
the same key and hash flagd's `fractional` operator uses by default.
"""

from __future__ import annotations

import mmh3

_HASH_SPACE = 2**32
_BASIS_POINTS = 10_000


def hash_limit(percentage: float) -> int:
    """How many of the 2**32 hash values a rollout of `percentage` percent reaches.

    Percentages have at most two decimals, so integer basis points make the limit exact and
    the same on every platform.
    """
    basis_points = min(max(round(percentage * 100), 0), _BASIS_POINTS)
    return basis_points * _HASH_SPACE // _BASIS_POINTS


def tenant_hash(feature: str, tenant: str) -> int:
    return int(mmh3.hash(feature + tenant, signed=False))


def bucket(feature: str, tenant: str) -> float:
    """The tenant's fixed point in [0, 100) for `feature`, for people to read."""
    return tenant_hash(feature, tenant) * 100.0 / _HASH_SPACE


def in_rollout(feature: str, tenant: str, percentage: float) -> bool:
    """Whether a rollout of `feature` to `percentage` percent of tenants reaches `tenant`."""
    return tenant_hash(feature, tenant) < hash_limit(percentage)
