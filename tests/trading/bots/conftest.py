"""Fixtures of the bots and options tests: Hull's textbook market (vol 20 %, rate 10 %) in the
engine settings, and a second user's portfolio."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from apps.trading.models import EngineSettings, Portfolio
from tests.trading.factories import make_portfolio


@pytest.fixture
def hull_market(seeded: None) -> EngineSettings:
    settings = EngineSettings.objects.get(key="default")
    settings.option_volatility = Decimal("0.2")
    settings.option_risk_free_rate = Decimal("0.1")
    settings.save()
    return settings


@pytest.fixture
def other_portfolio(seeded: None, outsider: User) -> Portfolio:
    return make_portfolio(outsider)
