"""Binance USDⓈ-M (one-way) margin formulas, in Decimal.

References: ../shared/research/trading.md §1 (FAQ 360033162192, 360033525271, b3c689c1…).
`s` is +1 for a long and -1 for a short; quantities are unsigned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    initial_leverage: int
    floor: Decimal
    cap: Decimal
    mmr: Decimal
    cum: Decimal


def sign(side: str) -> int:
    return 1 if side == "long" else -1


def bracket_for_notional(brackets: Sequence[Bracket], notional: Decimal) -> Bracket:
    """The bracket with floor < notional <= cap (the first bracket for 0; the last above its cap)."""
    for item in brackets:
        if notional <= item.cap:
            return item
    return brackets[-1]


def max_leverage_for_notional(brackets: Sequence[Bracket], notional: Decimal) -> int:
    return bracket_for_notional(brackets, notional).initial_leverage


def max_notional_for_leverage(brackets: Sequence[Bracket], leverage: int) -> Decimal:
    """maxNotional(L): the cap of the last bracket whose initial leverage is >= L."""
    allowed = [item for item in brackets if item.initial_leverage >= leverage]
    return allowed[-1].cap if allowed else ZERO


def initial_margin(notional: Decimal, leverage: int) -> Decimal:
    return notional / Decimal(leverage)


def maintenance_margin(brackets: Sequence[Bracket], notional: Decimal) -> Decimal:
    item = bracket_for_notional(brackets, notional)
    return notional * item.mmr - item.cum


def unrealized_pnl(side: str, quantity: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    return sign(side) * quantity * (mark - entry)


def margin_ratio(maintenance: Decimal, margin_balance: Decimal) -> Decimal | None:
    """MM / margin balance; None when the balance is not positive (already past liquidation)."""
    if margin_balance <= 0:
        return None
    return maintenance / margin_balance


def bankruptcy_price(side: str, quantity: Decimal, entry: Decimal, wallet: Decimal) -> Decimal:
    """Where the isolated margin balance reaches zero: EP - s·WB/Q (never below 0)."""
    return max(ZERO, entry - sign(side) * wallet / quantity)


def liquidation_price(
    *,
    side: str,
    quantity: Decimal,
    entry: Decimal,
    wallet: Decimal,
    brackets: Sequence[Bracket],
    other_maintenance: Decimal = ZERO,
    other_unrealized: Decimal = ZERO,
) -> Decimal | None:
    """The Binance liquidation price, one-way mode.

    Isolated: wallet is the isolated wallet and the `other_*` terms are 0. Cross: wallet is the
    cross wallet balance, `other_maintenance` (TMM1) and `other_unrealized` (UPNL1) are those of
    the account's other positions. The MMR and cum come from the bracket that contains the
    notional *at the liquidation price*; MM is continuous, so exactly one bracket is
    self-consistent. Returns None when the position cannot be liquidated (LP <= 0).
    """
    if quantity <= 0:
        return None
    s = sign(side)
    base = wallet - other_maintenance + other_unrealized
    for item in brackets:
        denominator = quantity * item.mmr - s * quantity
        if denominator == 0:
            continue
        price = (base + item.cum - s * quantity * entry) / denominator
        if price <= 0:
            continue
        notional = quantity * price
        if item.floor < notional <= item.cap or (item.floor == 0 and notional <= item.cap):
            return price
    # Outside every bracket's range: use the last bracket (notional above the table's cap).
    item = brackets[-1]
    price = (base + item.cum - s * quantity * entry) / (quantity * item.mmr - s * quantity)
    return price if price > 0 else None


def max_removable_margin(
    *,
    side: str,
    quantity: Decimal,
    entry: Decimal,
    mark: Decimal,
    wallet: Decimal,
    leverage: int,
    brackets: Sequence[Bracket],
) -> Decimal:
    """Binance FAQ 360038447311: max(0, min(iw - MM, iw + size·(mark - entry) - mark·|size|·IMR))."""
    notional = quantity * mark
    mm = maintenance_margin(brackets, notional)
    upnl = unrealized_pnl(side, quantity, entry, mark)
    return max(ZERO, min(wallet - mm, wallet + upnl - notional / Decimal(leverage)))
