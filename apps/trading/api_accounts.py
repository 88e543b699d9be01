"""Trading REST API: portfolios, account summary, funding payments, snapshots, leaderboard,
preferences; and, at the root, the client bootstrap and the identicon avatars.

Haunt's own shapes: camelCase keys, Decimal amounts as strings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.markets.api import PriceOutputSerializer
from apps.markets.services.overview import market_fear_greed, market_global_metrics, market_movers
from apps.trading.api_common import OrderOutputSerializer, money_field, paginated, portfolio_for, query_params
from apps.trading.avatars import MAX_ID_LENGTH, identicon_svg
from apps.trading.models import MarginMode, Order, Portfolio, Profile
from apps.trading.selectors import RESTING_ORDER_STATUSES
from apps.trading.selectors_accounts import (
    PERIODS,
    funding_payments_of,
    leaderboard,
    portfolio_of_user,
    portfolios_of,
    snapshots_of,
)
from apps.trading.services import profile_ensure, profile_preferences_update
from apps.trading.services.accounts import account_summary
from apps.trading.services.portfolios import (
    portfolio_create,
    portfolio_default,
    portfolio_preferences_update,
    portfolio_set_active,
)
from haunt.authentication import request_user
from haunt.errors import HauntError, json_error
from haunt.serializers import StrictSerializer

logger = logging.getLogger(__name__)

T = TypeVar("T")
SNAPSHOT_DEFAULT_SPAN = timedelta(days=30)
SNAPSHOT_MAX_POINTS = 5000
BOOTSTRAP_MOVERS = 5


def _market_decimal() -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=40, decimal_places=18, normalize_output=True, allow_null=True)


def avatar_url(identifier: object) -> str:
    return f"/api/avatars/{identifier}.svg"


# --- Shared output shapes -----------------------------------------------------------------------


class PortfolioOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    cash = money_field()
    initialCash = money_field(source="initial_cash")
    realizedPnl = money_field(source="realized_pnl")
    feesPaid = money_field(source="fees_paid")
    fundingPaid = money_field(source="funding_paid", help_text="Net funding paid (negative: received).")
    marginMode = serializers.CharField(source="margin_mode", help_text="Default for new positions.")
    costBasis = serializers.CharField(source="cost_basis")
    isActive = serializers.BooleanField(source="is_active")
    isPublic = serializers.BooleanField(source="is_public")
    homeNode = serializers.CharField(source="home_node")
    createdAt = serializers.DateTimeField(source="created_at")
    avatarUrl = serializers.SerializerMethodField()

    def get_avatarUrl(self, portfolio: Portfolio) -> str:  # noqa: N802 (DRF names it after the field)
        return avatar_url(portfolio.pk)


class AccountSummaryOutputSerializer(serializers.Serializer):
    portfolioId = serializers.UUIDField(source="portfolio_id")
    equity = money_field(help_text="Cash + isolated wallets + unrealized PnL (+ options at their marks).")
    balance = money_field(help_text="Cash: the cross wallet balance.")
    isolatedMargin = money_field(source="isolated_margin")
    usedMargin = money_field(
        source="used_margin", help_text="Isolated wallets + cross IM at mark + reserved."
    )
    freeMargin = money_field(source="free_margin", help_text="Available for new orders.")
    reservedMargin = money_field(source="reserved_margin", help_text="Held by resting orders.")
    unrealizedPnl = money_field(source="unrealized_pnl")
    realizedPnl = money_field(source="realized_pnl")
    maintenanceMargin = money_field(source="maintenance_margin")
    marginBalance = money_field(source="margin_balance")
    marginRatio = serializers.DecimalField(
        source="margin_ratio",
        max_digits=30,
        decimal_places=8,
        normalize_output=True,
        allow_null=True,
        help_text="Maintenance margin / margin balance (1 = liquidation); null when the balance is ≤ 0.",
    )
    optionsValue = money_field(source="options_value")
    initialCash = money_field(source="initial_cash")
    returnRatio = serializers.DecimalField(
        source="return_ratio", max_digits=30, decimal_places=8, normalize_output=True
    )
    openPositions = serializers.IntegerField(source="open_positions")
    pendingOrders = serializers.IntegerField(source="pending_orders")
    stale = serializers.BooleanField(help_text="Some position had no fresh mark and is valued at entry.")
    missingMarks = serializers.ListField(source="missing_marks", child=serializers.CharField())


class PreferencesOutputSerializer(serializers.Serializer):
    username = serializers.CharField()
    theme = serializers.CharField()
    defaultTimeframe = serializers.CharField(source="default_timeframe")
    indicators = serializers.ListField(child=serializers.CharField())
    avatarUrl = serializers.SerializerMethodField()

    def get_avatarUrl(self, profile: Profile) -> str:  # noqa: N802
        return avatar_url(profile.pk)


class PositionSummarySerializer(serializers.Serializer):
    id = serializers.UUIDField(source="position.id")
    portfolioId = serializers.UUIDField(source="position.portfolio_id")
    symbol = serializers.CharField(source="position.symbol")
    side = serializers.CharField(source="position.side")
    quantity = money_field(source="position.quantity")
    entryPrice = money_field(source="position.entry_price")
    leverage = serializers.IntegerField(source="position.leverage")
    marginMode = serializers.CharField(source="position.margin_mode")
    isolatedMargin = money_field(source="position.isolated_margin")
    liquidationPrice = money_field(source="position.liquidation_price", allow_null=True)
    markPrice = money_field(source="mark")
    markLive = serializers.BooleanField(source="live", help_text="False: no fresh mark, entry price used.")
    notional = money_field()
    initialMargin = money_field(source="initial_margin")
    maintenanceMargin = money_field(source="maintenance_margin")
    unrealizedPnl = money_field(source="unrealized_pnl")
    openedAt = serializers.DateTimeField(source="position.opened_at")


# --- Portfolios -------------------------------------------------------------------------------


class PortfolioListApi(APIView):
    """Your portfolios (oldest first); create another one, funded with the engine's starting cash."""

    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=64)
        marginMode = serializers.ChoiceField(
            choices=MarginMode.choices, default=MarginMode.CROSS, source="margin_mode"
        )
        costBasis = serializers.ChoiceField(
            choices=Portfolio.CostBasis.choices, default=Portfolio.CostBasis.AVERAGE, source="cost_basis"
        )

    @extend_schema(responses={200: PortfolioOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        portfolios = portfolios_of(user=request_user(request))
        return Response(PortfolioOutputSerializer(portfolios, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: PortfolioOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        portfolio = portfolio_create(user=request_user(request), **serializer.validated_data)
        return Response(PortfolioOutputSerializer(portfolio).data, status=status.HTTP_201_CREATED)


class PortfolioDetailApi(APIView):
    """One of your portfolios; change its default margin mode, cost basis or leaderboard visibility."""

    class InputSerializer(StrictSerializer):
        marginMode = serializers.ChoiceField(choices=MarginMode.choices, required=False, source="margin_mode")
        costBasis = serializers.ChoiceField(
            choices=Portfolio.CostBasis.choices, required=False, source="cost_basis"
        )
        isPublic = serializers.BooleanField(required=False, source="is_public")

    @extend_schema(responses={200: PortfolioOutputSerializer})
    def get(self, request: Request, portfolio_id: str) -> Response:
        portfolio = portfolio_of_user(user=request_user(request), portfolio_id=portfolio_id)
        return Response(PortfolioOutputSerializer(portfolio).data)

    @extend_schema(request=InputSerializer, responses={200: PortfolioOutputSerializer})
    def patch(self, request: Request, portfolio_id: str) -> Response:
        portfolio = portfolio_of_user(user=request_user(request), portfolio_id=portfolio_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        portfolio = portfolio_preferences_update(portfolio=portfolio, **serializer.validated_data)
        return Response(PortfolioOutputSerializer(portfolio).data)


class PortfolioActivateApi(APIView):
    """Make this portfolio your active one (orders and the summary default to it)."""

    @extend_schema(request=None, responses={200: PortfolioOutputSerializer})
    def post(self, request: Request, portfolio_id: str) -> Response:
        portfolio = portfolio_of_user(user=request_user(request), portfolio_id=portfolio_id)
        return Response(PortfolioOutputSerializer(portfolio_set_active(portfolio=portfolio)).data)


# --- Account ----------------------------------------------------------------------------------


class PortfolioQuerySerializer(serializers.Serializer):
    portfolio = serializers.UUIDField(required=False, help_text="Default: your active portfolio.")


class AccountSummaryApi(APIView):
    """Equity, balance, used and free margin, PnL and margin ratio at live marks."""

    @extend_schema(parameters=[PortfolioQuerySerializer], responses={200: AccountSummaryOutputSerializer})
    def get(self, request: Request) -> Response:
        params = query_params(PortfolioQuerySerializer, request)
        portfolio = portfolio_for(request, params.get("portfolio"))
        return Response(AccountSummaryOutputSerializer(account_summary(portfolio=portfolio)).data)


class FundingPaymentListApi(APIView):
    """Funding paid and received by a portfolio's positions, newest first (amount > 0: received)."""

    class InputSerializer(PortfolioQuerySerializer):
        symbol = serializers.CharField(max_length=32, required=False)

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        positionId = serializers.UUIDField(source="position_id")
        symbol = serializers.CharField()
        fundingTime = serializers.DateTimeField(source="funding_time")
        rate = serializers.DecimalField(max_digits=12, decimal_places=10, normalize_output=True)
        rateSource = serializers.CharField(source="rate_source")
        markPrice = money_field(source="mark_price")
        quantity = money_field()
        amount = money_field()

    @extend_schema(parameters=[InputSerializer], responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        params = query_params(self.InputSerializer, request)
        portfolio = portfolio_for(request, params.get("portfolio"))
        payments = funding_payments_of(portfolio=portfolio, symbol=params.get("symbol"))
        return paginated(request, self, payments, self.OutputSerializer)


class SnapshotListApi(APIView):
    """A portfolio's equity curve, oldest point first (a snapshot every 15 minutes)."""

    class InputSerializer(PortfolioQuerySerializer):
        since = serializers.DateTimeField(required=False, help_text="Default: 30 days ago.")
        until = serializers.DateTimeField(required=False)
        limit = serializers.IntegerField(min_value=1, max_value=SNAPSHOT_MAX_POINTS, default=3000)

    class OutputSerializer(serializers.Serializer):
        takenAt = serializers.DateTimeField(source="taken_at")
        equity = money_field()
        cash = money_field()
        unrealizedPnl = money_field(source="unrealized_pnl")
        realizedPnl = money_field(source="realized_pnl")
        usedMargin = money_field(source="used_margin")

    @extend_schema(parameters=[InputSerializer], responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        params = query_params(self.InputSerializer, request)
        portfolio = portfolio_for(request, params.get("portfolio"))
        snapshots = snapshots_of(
            portfolio=portfolio,
            since=params.get("since") or timezone.now() - SNAPSHOT_DEFAULT_SPAN,
            until=params.get("until"),
            limit=params["limit"],
        )
        return Response(self.OutputSerializer(snapshots, many=True).data)


class LeaderboardApi(APIView):
    """Public portfolios ranked by return over the period (against the equity at its start)."""

    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        period = serializers.ChoiceField(choices=list(PERIODS), default="7d")
        limit = serializers.IntegerField(min_value=1, max_value=100, default=50)

    class OutputSerializer(serializers.Serializer):
        rank = serializers.IntegerField()
        portfolioId = serializers.UUIDField(source="portfolio_id")
        portfolioName = serializers.CharField(source="portfolio_name")
        username = serializers.CharField()
        avatarUrl = serializers.SerializerMethodField()
        equity = money_field()
        startEquity = money_field(source="start_equity")
        returnRatio = serializers.DecimalField(
            source="return_ratio", max_digits=30, decimal_places=8, normalize_output=True
        )
        stale = serializers.BooleanField()

        def get_avatarUrl(self, entry: Any) -> str:  # noqa: N802
            return avatar_url(entry.portfolio_id)

    @extend_schema(parameters=[InputSerializer], responses={200: OutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        params = query_params(self.InputSerializer, request)
        entries = leaderboard(period=params["period"], limit=params["limit"])
        return Response(
            {"period": params["period"], "results": self.OutputSerializer(entries, many=True).data}
        )


class PreferencesApi(APIView):
    """Your chart preferences: theme, default timeframe, indicators."""

    class InputSerializer(StrictSerializer):
        theme = serializers.ChoiceField(choices=Profile.Theme.choices, required=False)
        defaultTimeframe = serializers.ChoiceField(
            choices=Profile.Timeframe.choices, required=False, source="default_timeframe"
        )
        indicators = serializers.ListField(
            child=serializers.RegexField(r"^[A-Za-z0-9_.:()\- ]+$", max_length=32),
            max_length=32,
            required=False,
        )

    @extend_schema(responses={200: PreferencesOutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(PreferencesOutputSerializer(profile_ensure(user=request_user(request))).data)

    @extend_schema(request=InputSerializer, responses={200: PreferencesOutputSerializer})
    def patch(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        profile = profile_preferences_update(user=request_user(request), **serializer.validated_data)
        return Response(PreferencesOutputSerializer(profile).data)


# --- Bootstrap and avatars (routed at the root by urls_root.py) --------------------------------


def _optional(part: str, read: Callable[[], T]) -> T | None:
    """A market part of the bootstrap, or None when it is unavailable: the preloader still gets
    everything else."""
    try:
        return read()
    except HauntError as exc:
        logger.info("Bootstrap without %s: %s", part, exc.code)
    except Exception:  # a provider's surprise must not cost the client its whole bootstrap
        logger.exception("Bootstrap without %s", part)
    return None


def _market_global() -> dict[str, Any]:
    return market_global_metrics()[0]


def _fear_greed() -> dict[str, Any]:
    body, cached = market_fear_greed(limit=1)
    latest = body["data"][0]
    return {
        "value": int(latest["value"]),
        "classification": latest["value_classification"],
        "timestamp": int(latest["timestamp"]),
        "provider": cached.provider,
        "stale": cached.stale,
    }


def _movers() -> dict[str, Any]:
    return dict(BootstrapApi.MoversSerializer(market_movers(limit=BOOTSTRAP_MOVERS)).data)


class BootstrapApi(APIView):
    """Everything a client preloader needs in one round trip: profile and preferences, portfolios
    (the active one first created if needed), its open positions and resting orders, its account
    summary, and the market's global metrics, Fear & Greed and top movers (null when unavailable)."""

    class GlobalSerializer(serializers.Serializer):
        totalMarketCapUsd = _market_decimal()
        totalVolume24hUsd = _market_decimal()
        marketCapChangePercent24hUsd = _market_decimal()
        btcDominance = _market_decimal()
        ethDominance = _market_decimal()
        activeCryptocurrencies = serializers.IntegerField(allow_null=True)
        markets = serializers.IntegerField(allow_null=True)
        updatedAt = serializers.DateTimeField(allow_null=True)
        provider = serializers.CharField()
        fetchedAt = serializers.DateTimeField()
        stale = serializers.BooleanField()

    class FearGreedSerializer(serializers.Serializer):
        value = serializers.IntegerField(help_text="0 (extreme fear) to 100 (extreme greed).")
        classification = serializers.CharField()
        timestamp = serializers.IntegerField(help_text="Unix seconds.")
        provider = serializers.CharField()
        stale = serializers.BooleanField()

    class MoversSerializer(serializers.Serializer):
        gainers = PriceOutputSerializer(many=True)
        losers = PriceOutputSerializer(many=True)

    class OutputSerializer(serializers.Serializer):
        profile = PreferencesOutputSerializer()
        portfolios = PortfolioOutputSerializer(many=True)
        activePortfolioId = serializers.UUIDField(source="active_portfolio_id")
        positions = PositionSummarySerializer(many=True)
        orders = OrderOutputSerializer(many=True, help_text="Resting orders (open or pending).")
        account = AccountSummaryOutputSerializer()
        market = serializers.DictField()

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request) -> Response:
        user = request_user(request)
        profile = profile_ensure(user=user)
        portfolios = list(portfolios_of(user=user))
        active = next((p for p in portfolios if p.is_active), None)
        if active is None:
            active = portfolio_default(user=user)
            portfolios = list(portfolios_of(user=user))
        orders = Order.objects.filter(portfolio=active, status__in=RESTING_ORDER_STATUSES).order_by(
            "-created_at"
        )
        global_metrics = _optional("global metrics", _market_global)
        fear_greed = _optional("fear & greed", _fear_greed)
        market = {
            "global": self.GlobalSerializer(global_metrics).data if global_metrics else None,
            "fearGreed": self.FearGreedSerializer(fear_greed).data if fear_greed else None,
            "movers": _optional("movers", _movers),
        }
        summary = account_summary(portfolio=active)
        body = {
            "profile": profile,
            "portfolios": portfolios,
            "active_portfolio_id": active.pk,
            "positions": summary.positions,
            "orders": orders,
            "account": summary,
            "market": market,
        }
        return Response(self.OutputSerializer(body).data)


@require_safe
def avatar_svg(request: HttpRequest, avatar_id: str) -> HttpResponse:
    """A deterministic identicon for any id (portfolio, profile, user...) of up to 64 characters."""
    if len(avatar_id) > MAX_ID_LENGTH:
        return json_error(400, "invalid", f"An avatar id has at most {MAX_ID_LENGTH} characters.")
    response = HttpResponse(identicon_svg(avatar_id), content_type="image/svg+xml")
    # The picture of an id never changes.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["X-Content-Type-Options"] = "nosniff"
    return response


urlpatterns: list[URLPattern] = [
    path("portfolios", PortfolioListApi.as_view(), name="portfolios"),
    path("portfolios/<uuid:portfolio_id>", PortfolioDetailApi.as_view(), name="portfolio-detail"),
    path(
        "portfolios/<uuid:portfolio_id>/activate", PortfolioActivateApi.as_view(), name="portfolio-activate"
    ),
    path("account/summary", AccountSummaryApi.as_view(), name="account-summary"),
    path("funding-payments", FundingPaymentListApi.as_view(), name="funding-payments"),
    path("snapshots", SnapshotListApi.as_view(), name="snapshots"),
    path("leaderboard", LeaderboardApi.as_view(), name="leaderboard"),
    path("preferences", PreferencesApi.as_view(), name="preferences"),
]
