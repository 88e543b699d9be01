"""A read-only Binance spot API facade over Haunt's market data, for ccxt-based tools.

The endpoints mirror Binance's own documented API (formats, parameters, error bodies
{"code", "msg"} with HTTP 400), so they are left out of Haunt's OpenAPI schema.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets import binance
from apps.markets.candles import INTERVALS
from haunt.renderers import FastJSONRenderer
from haunt.shared_cache import PublicCacheMixin

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
HOUR_MS = 3_600_000


def _int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise binance.BinanceError(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        )
    return int(raw)


def _limit(request: Request) -> int:
    limit = _int(request, "limit")
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1:
        raise binance.BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    return min(limit, MAX_LIMIT)


@extend_schema(exclude=True)
class BinanceApi(APIView):
    """Base of the facade's views: public, JSON only, Binance's error bodies.

    Excluded from the OpenAPI schema: these mirror Binance's own documented spot API.
    """

    permission_classes = [AllowAny]
    authentication_classes: list[Any] = []  # public data; a stray session must not trigger CSRF
    renderer_classes = [FastJSONRenderer]

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, binance.BinanceError):
            return Response(exc.body(), status=exc.status)
        if isinstance(exc, exceptions.Throttled):
            return Response(
                {"code": -1003, "msg": "Too many requests; please use the websocket for live updates."},
                status=429,
                headers={"Retry-After": str(int(getattr(exc, "wait", None) or 1))},
            )
        if isinstance(exc, exceptions.APIException):
            return Response({"code": -1000, "msg": str(exc.detail)}, status=exc.status_code)
        return super().handle_exception(exc)


class ExchangeInfoApi(PublicCacheMixin, BinanceApi):
    """GET /api/v3/exchangeInfo: every Haunt symbol as a <SYMBOL>USDT spot market."""

    def get(self, request: Request) -> Response:
        symbols = binance.known_symbols()
        wanted = request.query_params.get("symbol") or request.query_params.get("symbols")
        if wanted:
            pairs = _pairs(request)
            symbols = [s for s in symbols if binance.pair_from_symbol(s) in pairs]
        return Response(binance.exchange_info(symbols, server_time=binance.now_ms()))


class FuturesExchangeInfoApi(BinanceApi):
    """GET /fapi/v1/exchangeInfo and /dapi/v1/exchangeInfo: no futures markets (ccxt asks)."""

    def get(self, request: Request) -> Response:
        return Response(binance.futures_exchange_info(server_time=binance.now_ms()))


class TimeApi(BinanceApi):
    """GET /api/v3/time."""

    def get(self, request: Request) -> Response:
        return Response({"serverTime": binance.now_ms()})


class PingApi(BinanceApi):
    """GET /api/v3/ping."""

    def get(self, request: Request) -> Response:
        return Response({})


def _pairs(request: Request) -> list[str]:
    """The pairs of `symbol` or `symbols` (a JSON array); each must be a listed Haunt symbol."""
    single, many = request.query_params.get("symbol"), request.query_params.get("symbols")
    if single and many:
        raise binance.BinanceError(-1128, "Combination of optional parameters invalid.")
    if single:
        return [binance.pair_from_symbol(binance.symbol_resolve(single))]
    try:
        parsed = json.loads(many or "")
    except ValueError:
        raise binance.illegal("symbols") from None
    if not isinstance(parsed, list) or not parsed or not all(isinstance(p, str) for p in parsed):
        raise binance.illegal("symbols")
    return [binance.pair_from_symbol(binance.symbol_resolve(p)) for p in parsed]


class Ticker24hrApi(PublicCacheMixin, BinanceApi):
    """GET /api/v3/ticker/24hr: one object for `symbol`, a list for `symbols` or for all."""

    def get(self, request: Request) -> Response:
        kind = request.query_params.get("type", "FULL")
        if kind not in ("FULL", "MINI"):
            raise binance.BinanceError(-1139, "Invalid ticker type.")
        render = binance.ticker_24hr if kind == "FULL" else binance.ticker_mini
        params = request.query_params
        if params.get("symbol") or params.get("symbols"):
            symbols = [binance.symbol_from_pair(p) or "" for p in _pairs(request)]
        else:
            symbols = binance.known_symbols()
        stats = binance.tickers_stats(symbols)
        if params.get("symbol"):
            if symbols[0] not in stats:
                raise binance.invalid_symbol()
            return Response(render(stats[symbols[0]]))
        return Response([render(stats[s]) for s in symbols if s in stats])


class KlinesApi(PublicCacheMixin, BinanceApi):
    """GET /api/v3/klines from Haunt's aggregate candles (1m 5m 15m 1h 4h 1d), the forming
    minute folded into the last row. Binance's other intervals answer -1120 Invalid interval."""

    def get(self, request: Request) -> Response:
        symbol = binance.symbol_resolve(request.query_params.get("symbol"))
        interval = request.query_params.get("interval")
        if not interval:
            raise binance.mandatory("interval")
        if interval not in INTERVALS:
            raise binance.invalid_interval()
        start, end, limit = _int(request, "startTime"), _int(request, "endTime"), _limit(request)
        if start is not None and end is not None and start > end:
            raise binance.BinanceError(-1128, "Combination of optional parameters invalid.")
        bars = binance.klines(symbol=symbol, interval=interval, start_ms=start, end_ms=end, limit=limit)
        return Response([binance.kline_row(bar, interval) for bar in bars])


class AggTradesApi(PublicCacheMixin, BinanceApi):
    """GET /api/v3/aggTrades: the exchange trades imported for the symbol (Haunt keeps no
    aggregate trade tape of its own), oldest first; an empty list when none were imported."""

    def get(self, request: Request) -> Response:
        symbol = binance.symbol_resolve(request.query_params.get("symbol"))
        from_id, limit = _int(request, "fromId"), _limit(request)
        start, end = _int(request, "startTime"), _int(request, "endTime")
        if from_id is not None and (start is not None or end is not None):
            raise binance.BinanceError(-1128, "Combination of optional parameters invalid.")
        if start is not None and end is not None and not 0 <= end - start <= HOUR_MS:
            raise binance.BinanceError(-1127, "More than 1 hours between startTime and endTime.")
        rows = binance.agg_trades(symbol=symbol, from_id=from_id, start_ms=start, end_ms=end, limit=limit)
        return Response(rows)
