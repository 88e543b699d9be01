"""Rounding of computed money and quantities to what the database stores."""

from __future__ import annotations

from decimal import Context, Decimal

from apps.trading.models import DIGITS, PLACES

QUANTUM = Decimal(1).scaleb(-PLACES)
# Wide enough that quantizing any stored magnitude to 12 places never raises InvalidOperation.
_WIDE = Context(prec=DIGITS + 4)


def money(value: Decimal) -> Decimal:
    """Round half-even to the 12 places the database stores, so in-memory rows equal saved ones."""
    return value.quantize(QUANTUM, context=_WIDE)
