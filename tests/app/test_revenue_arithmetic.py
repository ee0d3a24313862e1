"""The revenue arithmetic, pinned with figures worked out by hand (no database needed)."""

from __future__ import annotations

from decimal import Decimal

from flagstage_app.revenue import MonthRevenue, revenue_series


def amounts(series: list[MonthRevenue]) -> dict[str, tuple[str, bool]]:
    return {item.month: (f"{item.revenue}", item.estimated) for item in series}


def test_growth_compounds_forward_from_the_base_month_and_gaps_carry_an_estimate() -> None:
    series = revenue_series(
        base_revenue=Decimal("1000.00"),
        base_month="2024-01",
        growth={"2024-02": Decimal(10), "2024-03": Decimal(-5), "2024-05": Decimal(20)},
        last_month="2024-06",
    )
    # 2024-02: 1000.00 * 1.10 = 1100.00
    # 2024-03: 1100.00 * 0.95 = 1045.00
    # 2024-04: no record, carries 1045.00 (estimated)
    # 2024-05: 1045.00 * 1.20 = 1254.00
    # 2024-06: no record, carries 1254.00 (estimated)
    assert amounts(series) == {
        "2024-01": ("1000.00", False),
        "2024-02": ("1100.00", False),
        "2024-03": ("1045.00", False),
        "2024-04": ("1045.00", True),
        "2024-05": ("1254.00", False),
        "2024-06": ("1254.00", True),
    }


def test_months_before_the_base_month_are_back_computed_by_dividing() -> None:
    series = revenue_series(
        base_revenue=Decimal("2000.00"),
        base_month="2024-05",
        growth={
            "2024-02": Decimal(100),
            "2024-03": Decimal(0),
            "2024-04": Decimal(-20),
            "2024-05": Decimal(25),
        },
        last_month="2024-05",
    )
    # 2024-04: 2000.00 / 1.25 = 1600.00
    # 2024-03: 1600.00 / 0.80 = 2000.00
    # 2024-02: 2000.00 / 1.00 = 2000.00 (its own +100% would only tell 2024-01)
    assert amounts(series) == {
        "2024-02": ("2000.00", False),
        "2024-03": ("2000.00", False),
        "2024-04": ("1600.00", False),
        "2024-05": ("2000.00", False),
    }


def test_a_gap_before_the_base_month_carries_the_month_after_it() -> None:
    series = revenue_series(
        base_revenue=Decimal("500.00"),
        base_month="2024-04",
        growth={"2024-02": Decimal(1), "2024-04": Decimal(25)},
        last_month="2024-04",
    )
    # 2024-03: 500.00 / 1.25 = 400.00, and it has no record of its own (estimated)
    # 2024-02: 2024-03 has no growth record, so 2024-02 carries 400.00
    assert amounts(series) == {
        "2024-02": ("400.00", False),
        "2024-03": ("400.00", True),
        "2024-04": ("500.00", False),
    }


def test_minus_one_hundred_percent_takes_revenue_to_zero_and_stops_back_computation() -> None:
    forward = revenue_series(
        base_revenue=Decimal("800.00"),
        base_month="2024-01",
        growth={"2024-02": Decimal(-100), "2024-03": Decimal(50)},
        last_month="2024-03",
    )
    # 800.00 * 0.00 = 0.00, then 0.00 * 1.50 = 0.00
    assert amounts(forward) == {
        "2024-01": ("800.00", False),
        "2024-02": ("0.00", False),
        "2024-03": ("0.00", False),
    }

    backward = revenue_series(
        base_revenue=Decimal("0.00"),
        base_month="2024-03",
        growth={"2024-02": Decimal(5), "2024-03": Decimal(-100)},
        last_month="2024-03",
    )
    # Nothing divides by zero: 2024-02 is unknowable and left out.
    assert amounts(backward) == {"2024-03": ("0.00", False)}


def test_amounts_are_rounded_half_up_only_when_stored_not_at_every_step() -> None:
    series = revenue_series(
        base_revenue=Decimal("10.00"),
        base_month="2024-01",
        growth={"2024-02": Decimal("0.05"), "2024-03": Decimal("0.05")},
        last_month="2024-03",
    )
    # 2024-02: 10.00 * 1.0005 = 10.005 -> 10.01 (half up; half-even would give 10.00)
    # 2024-03: 10.005 * 1.0005 = 10.0100025 -> 10.01
    #          (rounding every step would give 10.01 * 1.0005 = 10.015005 -> 10.02)
    assert amounts(series) == {
        "2024-01": ("10.00", False),
        "2024-02": ("10.01", False),
        "2024-03": ("10.01", False),
    }
