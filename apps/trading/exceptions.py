"""Trading errors: each has a stable machine code and an HTTP status."""

from __future__ import annotations

from typing import Any

from haunt.errors import DomainError, TransientError


class PriceUnavailable(TransientError):
    code = "price_unavailable"
    http_status = 503


class UnknownSymbol(DomainError):
    code = "unknown_symbol"
    http_status = 400


class InvalidQuantity(DomainError):
    code = "invalid_quantity"
    http_status = 400


class InvalidPrice(DomainError):
    code = "invalid_price"
    http_status = 400


class InvalidOrder(DomainError):
    code = "invalid_order"
    http_status = 400


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    http_status = 409


class OrderNotCancellable(DomainError):
    code = "order_not_cancellable"
    http_status = 409


class ReduceOnlyRejected(DomainError):
    code = "reduce_only_rejected"
    http_status = 409


class FillOrKillUnfilled(DomainError):
    code = "fok_unfilled"
    http_status = 409


class PositionNotOpen(DomainError):
    code = "position_not_open"
    http_status = 409


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class InvalidLeverage(DomainError):
    """Binance -4028: not an integer, or outside 1..max."""

    code = "invalid_leverage"
    http_status = 400


class MaxLeverageRatio(DomainError):
    """Binance -2027: the position's notional is above maxNotional(new leverage)."""

    code = "max_leverage_ratio"
    http_status = 409


class InsufficientMargin(DomainError):
    """Binance -2028 / -2019: the change needs more margin than is available."""

    code = "insufficient_margin"
    http_status = 409


class IsolatedLeverageReduction(DomainError):
    """Binance -4161 (binance_strict policy only)."""

    code = "isolated_leverage_reduction"
    http_status = 409


class WouldLiquidate(DomainError):
    code = "would_liquidate"
    http_status = 409


class VolatilityGuard(DomainError):
    code = "volatility_guard"
    http_status = 409


class MarginNotIsolated(DomainError):
    """Binance -4049: margin can be added or removed only on isolated positions."""

    code = "margin_not_isolated"
    http_status = 409


class LeverageCooldown(DomainError):
    code = "leverage_cooldown"
    http_status = 429

    def __init__(self, message: str, *, retry_after: int, **detail: Any) -> None:
        super().__init__(message, retry_after=retry_after, **detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
