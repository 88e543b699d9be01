"""Black-Scholes pricing of European options, Decimal in and out.

Reference: Hull, *Options, Futures, and Other Derivatives*, §15.8 (prices) and ch. 19 (greeks),
with no dividends (crypto pays none):

    d1 = (ln(S/K) + (r + v²/2)·T) / (v·√T),   d2 = d1 - v·√T     (v: volatility)
    call = S·N(d1) - K·e^(-rT)·N(d2),         put = K·e^(-rT)·N(-d2) - S·N(-d1)

Precision: the logarithm, exponential and normal CDF have no Decimal implementation, so the
inputs are converted to binary floats and N(x) is statistics.NormalDist().cdf, which is built on
math.erf (accurate to a few ulps). A price therefore carries about 15 significant digits; the
error is below 1e-12 of the spot price for any input a user can give. Results are converted back
through the float's shortest decimal form (so 4.759 stays 4.759, not 4.75899999...) and rounded to
12 decimal places, the precision of the money fields. Greeks are rounded the same way.

T is in years; Haunt uses a 365-day year of seconds (crypto trades every day), see
`years_between`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from statistics import NormalDist

ZERO = Decimal(0)
QUANTUM = Decimal("1e-12")
SECONDS_PER_YEAR = 365 * 24 * 60 * 60
CALL, PUT = "call", "put"

_N = NormalDist()
# Wide enough to round any value up to 10^20 (the money fields' range) to 12 decimal places.
_CONTEXT = Context(prec=50, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True, slots=True)
class Greeks:
    """Sensitivities of one option unit. vega and rho are per 1.00 (100 points) of volatility / rate,
    theta per year (divide by 365 for a day)."""

    delta: Decimal
    gamma: Decimal
    vega: Decimal
    theta: Decimal
    rho: Decimal


def years_between(start: datetime, end: datetime) -> Decimal:
    """Time from start to end in years of 365 days (0 when end is not after start)."""
    seconds = Decimal(str((end - start).total_seconds()))
    return max(ZERO, seconds / SECONDS_PER_YEAR)


def intrinsic_value(option_type: str, spot: Decimal, strike: Decimal) -> Decimal:
    """The payoff at expiry per unit: max(S - K, 0) for a call, max(K - S, 0) for a put (exact)."""
    _check_type(option_type)
    if option_type == CALL:
        return max(spot - strike, ZERO)
    return max(strike - spot, ZERO)


def black_scholes_price(
    option_type: str,
    *,
    spot: Decimal,
    strike: Decimal,
    years: Decimal,
    volatility: Decimal,
    rate: Decimal,
) -> Decimal:
    """Black-Scholes value of one European call or put.

    At or after expiry (years <= 0) this is the intrinsic value; with zero volatility it is the
    discounted payoff of the forward, max(S - K·e^(-rT), 0) for a call.
    """
    _check_inputs(option_type, spot, strike, volatility)
    if years <= 0:
        return intrinsic_value(option_type, spot, strike)
    s, k, t, sigma, r = float(spot), float(strike), float(years), float(volatility), float(rate)
    discounted_strike = k * math.exp(-r * t)
    if sigma == 0:
        forward_payoff = s - discounted_strike if option_type == CALL else discounted_strike - s
        return _decimal(max(forward_payoff, 0.0))
    d1, d2 = _d1_d2(s, k, t, sigma, r)
    if option_type == CALL:
        value = s * _N.cdf(d1) - discounted_strike * _N.cdf(d2)
    else:
        value = discounted_strike * _N.cdf(-d2) - s * _N.cdf(-d1)
    # Deep out of the money the subtraction can land a hair below zero.
    return _decimal(max(value, 0.0))


def black_scholes_greeks(
    option_type: str,
    *,
    spot: Decimal,
    strike: Decimal,
    years: Decimal,
    volatility: Decimal,
    rate: Decimal,
) -> Greeks:
    """Delta, gamma, vega, theta and rho of one unit (Hull ch. 19). All zero except delta at or after
    expiry or with zero volatility, where delta is the payoff's slope (1/-1 in the money, else 0)."""
    _check_inputs(option_type, spot, strike, volatility)
    s, k, t, sigma, r = float(spot), float(strike), float(years), float(volatility), float(rate)
    if t <= 0 or sigma == 0:
        forward_strike = k * math.exp(-r * max(t, 0.0))
        in_the_money = s > forward_strike if option_type == CALL else s < forward_strike
        slope = (1 if option_type == CALL else -1) if in_the_money else 0
        return Greeks(delta=Decimal(slope), gamma=ZERO, vega=ZERO, theta=ZERO, rho=ZERO)
    d1, d2 = _d1_d2(s, k, t, sigma, r)
    density = _N.pdf(d1)
    discounted_strike = k * math.exp(-r * t)
    gamma = density / (s * sigma * math.sqrt(t))
    vega = s * density * math.sqrt(t)
    decay = -s * density * sigma / (2 * math.sqrt(t))
    if option_type == CALL:
        delta = _N.cdf(d1)
        theta = decay - r * discounted_strike * _N.cdf(d2)
        rho = t * discounted_strike * _N.cdf(d2)
    else:
        delta = _N.cdf(d1) - 1
        theta = decay + r * discounted_strike * _N.cdf(-d2)
        rho = -t * discounted_strike * _N.cdf(-d2)
    return Greeks(
        delta=_decimal(delta),
        gamma=_decimal(gamma),
        vega=_decimal(vega),
        theta=_decimal(theta),
        rho=_decimal(rho),
    )


def _d1_d2(s: float, k: float, t: float, sigma: float, r: float) -> tuple[float, float]:
    spread = sigma * math.sqrt(t)
    d1 = (math.log(s / k) + (r + sigma * sigma / 2) * t) / spread
    return d1, d1 - spread


def _decimal(value: float) -> Decimal:
    return _CONTEXT.quantize(Decimal(repr(value)), QUANTUM)


def _check_type(option_type: str) -> None:
    if option_type not in (CALL, PUT):
        raise ValueError(f"option_type must be {CALL!r} or {PUT!r}, not {option_type!r}")


def _check_inputs(option_type: str, spot: Decimal, strike: Decimal, volatility: Decimal) -> None:
    _check_type(option_type)
    if spot <= 0 or strike <= 0:
        raise ValueError("spot and strike must be positive")
    if volatility < 0:
        raise ValueError("volatility must not be negative")
