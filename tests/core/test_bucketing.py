"""Percentage rollouts pick tenants deterministically, stickily and per feature."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flagstage.bucketing import bucket, in_rollout

TENANTS = [f"tenant-{i}" for i in range(20_000)]


@given(
    feature=st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True),
    tenant=st.text(min_size=1, max_size=40),
    low=st.floats(min_value=0, max_value=100),
    high=st.floats(min_value=0, max_value=100),
)
def test_a_tenant_reached_at_a_lower_percentage_stays_reached_at_a_higher_one(
    feature: str, tenant: str, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    if in_rollout(feature, tenant, low):
        assert in_rollout(feature, tenant, high)


@given(feature=st.text(min_size=1, max_size=20), tenant=st.text(min_size=1, max_size=40))
def test_a_bucket_is_the_same_every_time_and_within_range(feature: str, tenant: str) -> None:
    first = bucket(feature, tenant)
    assert first == bucket(feature, tenant)
    assert 0 <= first < 100


def test_ten_percent_reaches_about_ten_percent_of_tenants() -> None:
    reached = sum(in_rollout("temporal_analysis", t, 10) for t in TENANTS)
    assert 1_800 <= reached <= 2_200


def test_two_features_at_the_same_percentage_reach_different_tenants() -> None:
    first = {t for t in TENANTS if in_rollout("format_detection", t, 10)}
    second = {t for t in TENANTS if in_rollout("enhanced_upload", t, 10)}
    overlap = len(first & second) / len(first)
    # Independent choices share about 10% of their tenants; the same choice would share 100%.
    assert overlap < 0.2


def test_zero_reaches_nobody_and_hundred_reaches_everybody() -> None:
    assert not any(in_rollout("a", t, 0) for t in TENANTS[:1000])
    assert all(in_rollout("a", t, 100) for t in TENANTS[:1000])
