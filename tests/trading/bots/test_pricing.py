"""Black-Scholes against textbook figures (Hull, Options, Futures, and Other Derivatives)."""

import math
from decimal import Decimal

import pytest

from apps.trading.engine.options import (
    black_scholes_greeks,
    black_scholes_price,
    intrinsic_value,
    years_between,
)

HULL_15_6 = {  # Example 15.6: S=42, K=40, r=10%, sigma=20%, T=6 months -> c=4.76, p=0.81
    "spot": Decimal(42),
    "strike": Decimal(40),
    "years": Decimal("0.5"),
    "volatility": Decimal("0.2"),
    "rate": Decimal("0.1"),
}


def reference_call(s: float, k: float, t: float, sigma: float, r: float) -> float:
    """The textbook formula, written out independently with math.erf."""

    def n(x: float) -> float:
        return 0.5 * (1 + math.erf(x / math.sqrt(2)))

    d1 = (math.log(s / k) + (r + sigma**2 / 2) * t) / (sigma * math.sqrt(t))
    d2 = d1 - sigma * math.sqrt(t)
    return s * n(d1) - k * math.exp(-r * t) * n(d2)


def test_hull_example_call_and_put():
    call = black_scholes_price("call", **HULL_15_6)
    put = black_scholes_price("put", **HULL_15_6)

    assert call.quantize(Decimal("0.01")) == Decimal("4.76")
    assert put.quantize(Decimal("0.01")) == Decimal("0.81")


def test_price_matches_the_formula_to_twelve_places():
    call = black_scholes_price("call", **HULL_15_6)

    assert abs(call - Decimal(repr(reference_call(42, 40, 0.5, 0.2, 0.1)))) < Decimal("1e-11")
    assert call.as_tuple().exponent == -12  # rounded to the money fields' precision


@pytest.mark.parametrize(
    ("spot", "strike", "years", "volatility", "rate"),
    [
        ("42", "40", "0.5", "0.2", "0.1"),
        ("65000", "70000", "0.0833", "0.6", "0"),
        ("0.12345678", "0.1", "1", "1.2", "0.05"),
        ("3000", "2500", "0.01", "0.8", "0.03"),
    ],
)
def test_put_call_parity(spot, strike, years, volatility, rate):
    inputs = {
        "spot": Decimal(spot),
        "strike": Decimal(strike),
        "years": Decimal(years),
        "volatility": Decimal(volatility),
        "rate": Decimal(rate),
    }

    call = black_scholes_price("call", **inputs)
    put = black_scholes_price("put", **inputs)

    # C - P = S - K e^(-rT)
    forward_gap = float(spot) - float(strike) * math.exp(-float(rate) * float(years))
    assert abs(float(call - put) - forward_gap) < 1e-9 * max(1.0, float(spot))


def test_hull_example_greeks():
    # Hull Example 19.1 / table 19.x: S=49, K=50, r=5%, sigma=20%, T=20 weeks: c=2.40,
    # delta 0.522, gamma 0.066, vega 12.1, theta -4.31 a year, rho 8.91.
    inputs = {
        "spot": Decimal(49),
        "strike": Decimal(50),
        "years": Decimal(20) / Decimal(52),
        "volatility": Decimal("0.2"),
        "rate": Decimal("0.05"),
    }

    price = black_scholes_price("call", **inputs)
    greeks = black_scholes_greeks("call", **inputs)

    assert price.quantize(Decimal("0.01")) == Decimal("2.40")
    assert greeks.delta.quantize(Decimal("0.001")) == Decimal("0.522")
    assert greeks.gamma.quantize(Decimal("0.001")) == Decimal("0.066")
    assert greeks.vega.quantize(Decimal("0.1")) == Decimal("12.1")
    assert greeks.theta.quantize(Decimal("0.01")) == Decimal("-4.31")
    assert greeks.rho.quantize(Decimal("0.01")) == Decimal("8.91")


def test_put_delta_is_call_delta_minus_one():
    call = black_scholes_greeks("call", **HULL_15_6)
    put = black_scholes_greeks("put", **HULL_15_6)

    assert abs(put.delta - (call.delta - 1)) < Decimal("1e-12")
    assert put.gamma == call.gamma
    assert put.vega == call.vega


def test_at_expiry_the_price_is_the_intrinsic_value():
    expired = dict(HULL_15_6, years=Decimal(0))

    assert black_scholes_price("call", **expired) == Decimal(2)
    assert black_scholes_price("put", **expired) == Decimal(0)
    assert intrinsic_value("put", Decimal("37.5"), Decimal(40)) == Decimal("2.5")
    assert black_scholes_greeks("call", **expired).delta == 1


def test_zero_volatility_is_the_discounted_forward_payoff():
    flat = dict(HULL_15_6, volatility=Decimal(0))

    call = black_scholes_price("call", **flat)

    assert abs(call - Decimal(repr(42 - 40 * math.exp(-0.05)))) < Decimal("1e-11")
    assert black_scholes_price("put", **flat) == 0


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        black_scholes_price("straddle", **HULL_15_6)
    with pytest.raises(ValueError):
        black_scholes_price("call", **dict(HULL_15_6, strike=Decimal(0)))
    with pytest.raises(ValueError):
        black_scholes_price("call", **dict(HULL_15_6, volatility=Decimal("-0.1")))


def test_years_between_uses_a_365_day_year():
    from datetime import UTC, datetime, timedelta

    start = datetime(2024, 1, 1, tzinfo=UTC)

    assert years_between(start, start + timedelta(days=73)) == Decimal("0.2")
    assert years_between(start, start - timedelta(days=1)) == 0
