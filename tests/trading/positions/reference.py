"""Reference formulas of ../shared/research/trading.md, written out independently of the engine
so the tests derive expected figures instead of copying the code's output.

s = +1 long, -1 short; Q unsigned; WB the wallet (isolated margin, or the cross wallet).
"""

from __future__ import annotations

from decimal import Decimal

D = Decimal
ZERO = D(0)

# Binance BTCUSDT, snapshot of 2024-10 (research §1.2): (floor, cap, MMR, cum, max leverage).
BTC_TABLE = [
    (D(0), D(50_000), D("0.004"), D(0), 125),
    (D(50_000), D(600_000), D("0.005"), D(50), 100),
    (D(600_000), D(3_000_000), D("0.0065"), D(950), 75),
    (D(3_000_000), D(12_000_000), D("0.01"), D(11_450), 50),
    (D(12_000_000), D(70_000_000), D("0.02"), D(131_450), 25),
    (D(70_000_000), D(100_000_000), D("0.025"), D(481_450), 20),
    (D(100_000_000), D(230_000_000), D("0.05"), D(2_981_450), 10),
    (D(230_000_000), D(480_000_000), D("0.10"), D(14_481_450), 5),
    (D(480_000_000), D(600_000_000), D("0.125"), D(26_481_450), 4),
    (D(600_000_000), D(800_000_000), D("0.15"), D(41_481_450), 3),
    (D(800_000_000), D(1_200_000_000), D("0.25"), D(121_481_450), 2),
    (D(1_200_000_000), D(1_800_000_000), D("0.50"), D(421_481_450), 1),
]


def s(side: str) -> int:
    return 1 if side == "long" else -1


def bracket(notional: Decimal, table: list = BTC_TABLE) -> tuple:
    for row in table:
        if notional <= row[1]:
            return row
    return table[-1]


def mm(notional: Decimal, table: list = BTC_TABLE) -> Decimal:
    """MM = notional x MMR - cum, bracket of the notional (§1.1)."""
    _, _, mmr, cum, _ = bracket(notional, table)
    return notional * mmr - cum


def upnl(side: str, q: Decimal, entry: Decimal, mark: Decimal) -> Decimal:
    return s(side) * q * (mark - entry)


def lp(
    side: str,
    q: Decimal,
    entry: Decimal,
    wallet: Decimal,
    table: list = BTC_TABLE,
    tmm1: Decimal = ZERO,
    upnl1: Decimal = ZERO,
) -> Decimal | None:
    """The FAQ formula for one-way mode, bracket taken at the liquidation price (§1.3):
    long (WB - TMM1 + UPNL1 + cum - Q·EP) / (Q·MMR - Q), short (... + Q·EP) / (Q·MMR + Q)."""
    base = wallet - tmm1 + upnl1
    for floor, cap, mmr, cum, _ in table:
        if side == "long":
            price = (base + cum - q * entry) / (q * mmr - q)
        else:
            price = (base + cum + q * entry) / (q * mmr + q)
        if price > 0 and (floor < q * price <= cap or (floor == 0 and q * price <= cap)):
            return price
    return None


def bankruptcy(side: str, q: Decimal, entry: Decimal, wallet: Decimal) -> Decimal:
    """BP = EP - s·WB/Q (§1.3)."""
    return entry - s(side) * wallet / q


def max_removable(
    side: str, q: Decimal, entry: Decimal, mark: Decimal, wallet: Decimal, leverage: int
) -> Decimal:
    """FAQ 360038447311: max(0, min(iw - MM, iw + size·(mark - entry) - mark·|size|·IMR)) (§1.5)."""
    notional = q * mark
    return max(D(0), min(wallet - mm(notional), wallet + upnl(side, q, entry, mark) - notional / leverage))


def close(actual: Decimal | None, expected: Decimal | None, tolerance: str = "1e-9") -> bool:
    if actual is None or expected is None:
        return actual is expected
    return abs(actual - expected) <= D(tolerance)
