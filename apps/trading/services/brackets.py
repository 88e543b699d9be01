"""Leverage bracket tables imported from Binance's `GET /fapi/v1/leverageBracket` answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.markets.models import Exchange
from apps.trading.exceptions import BracketTableInvalid
from apps.trading.models import LeverageBracket

BRACKET_KEYS = ("bracket", "initialLeverage", "notionalFloor", "notionalCap", "maintMarginRatio", "cum")


@dataclass(frozen=True, slots=True)
class BracketImport:
    symbols: list[str]
    created: int
    replaced: int  # rows of the same (exchange, symbol, effective date) the import replaced


def _entries(text: str) -> list[dict[str, Any]]:
    """The symbols' entries: a list of `{symbol, brackets: [...]}` or one such object."""
    try:
        data = json.loads(text, parse_float=Decimal)  # exact ratios: 0.0065 stays 0.0065
    except ValueError as exc:
        raise BracketTableInvalid(f"Not JSON: {exc}") from None
    entries = data if isinstance(data, list) else [data]
    if not entries:
        raise BracketTableInvalid("The table is empty.")
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("symbol"), str):
            raise BracketTableInvalid('Each entry needs a "symbol" and its "brackets".')
        brackets = entry.get("brackets")
        if not isinstance(brackets, list) or not brackets:
            raise BracketTableInvalid(f"{entry['symbol']}: no brackets.")
        for row in brackets:
            missing = [key for key in BRACKET_KEYS if not isinstance(row, dict) or key not in row]
            if missing:
                raise BracketTableInvalid(f"{entry['symbol']}: a bracket lacks {', '.join(missing)}.")
    return entries


def _message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


@transaction.atomic
def leverage_brackets_import(*, exchange: Exchange, effective_from: date, text: str) -> BracketImport:
    """Store every symbol's table of the JSON for `exchange` from `effective_from`, replacing a
    table already stored for that same date.

    All or nothing: each row must pass LeverageBracket validation (the first bracket starts at 0
    with cum 0, each starts at the cap below, cum continuity); one bad row rejects the import
    with BracketTableInvalid listing the problems, and nothing is written.
    """
    entries = _entries(text)
    created = replaced = 0
    errors: list[str] = []
    for entry in entries:
        symbol = entry["symbol"].upper()
        replaced += LeverageBracket.objects.filter(
            exchange=exchange, symbol=symbol, effective_from=effective_from
        ).delete()[0]
        for row in sorted(entry["brackets"], key=lambda item: int(item["bracket"])):
            try:
                bracket = LeverageBracket(
                    exchange=exchange,
                    symbol=symbol,
                    effective_from=effective_from,
                    bracket=int(row["bracket"]),
                    initial_leverage=int(row["initialLeverage"]),
                    notional_floor=Decimal(row["notionalFloor"]),
                    notional_cap=Decimal(row["notionalCap"]),
                    maint_margin_ratio=Decimal(row["maintMarginRatio"]),
                    cum=Decimal(row["cum"]),
                )
                bracket.full_clean()  # field limits, constraints and clean(): cum continuity
            except (ValidationError, ArithmeticError, TypeError, ValueError) as exc:
                detail = _message(exc) if isinstance(exc, ValidationError) else "not a number"
                errors.append(f"{symbol} bracket {row['bracket']}: {detail}")
                break  # the brackets above it would only repeat the error
            bracket.save()
            created += 1
    if errors:
        raise BracketTableInvalid("The bracket table was rejected; nothing was imported.", errors=errors)
    return BracketImport(
        symbols=[entry["symbol"].upper() for entry in entries], created=created, replaced=replaced
    )
