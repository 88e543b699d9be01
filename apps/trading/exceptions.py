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


class InvalidExpiry(DomainError):
    """An option's expiry is not in the future or is further out than the engine lists."""

    code = "invalid_expiry"
    http_status = 400


class OptionNotOpen(DomainError):
    code = "option_not_open"
    http_status = 409


class PortfolioNameTaken(DomainError):
    code = "portfolio_name_taken"
    http_status = 409


class BracketTableInvalid(DomainError):
    """An imported leverage bracket table is malformed or not continuous; nothing was written."""

    code = "bracket_table_invalid"
    http_status = 400


class OrderWouldTrigger(DomainError):
    """Binance -2021: a stop or take-profit whose trigger is already crossed by the live price."""

    code = "order_would_immediately_trigger"
    http_status = 400


class FundingIncomplete(TransientError):
    """Some positions could not be paid funding yet (no fresh mark): the task retries."""

    code = "funding_incomplete"
    http_status = 503


class InvalidMarginAmount(DomainError):
    """Binance -4055: a margin adjustment must be a positive amount."""

    code = "invalid_margin_amount"
    http_status = 400


class MaxRemovableExceeded(DomainError):
    """Binance -4051: removing more isolated margin than the position can spare."""

    code = "max_removable_exceeded"
    http_status = 409


class ChecksumMismatch(DomainError):
    """A sync page whose rows or page checksum do not match its content: nothing was applied."""

    code = "checksum_mismatch"
    http_status = 400


class ClockDrift(DomainError):
    """A peer's HLC stamps are further ahead of this node's clock than HAUNT_SYNC_MAX_DRIFT_MS:
    the batch is quarantined (nothing applied, the cursor does not move)."""

    code = "clock_drift"
    http_status = 409


class SyncCursorGap(DomainError):
    """A sync page starts after this node's cursor for that peer and lane: applying it would skip rows."""

    code = "sync_cursor_gap"
    http_status = 409


class ConflictNotOpen(DomainError):
    code = "conflict_not_open"
    http_status = 409


class InvalidResolution(DomainError):
    code = "invalid_resolution"
    http_status = 400


class PortfolioHomedElsewhere(DomainError):
    """The portfolio's money is owned by another node of the mesh (its home_node): only that node
    may move it, so two nodes never write conflicting orders, positions or payments for it."""

    code = "portfolio_homed_elsewhere"
    http_status = 409
