"""manage.py ensure_bots: create the bot personas that do not exist yet (create-only)."""

from typing import Any

from django.core.management.base import BaseCommand

from apps.trading.models import Strategy
from apps.trading.services.bots import bots_ensure


class Command(BaseCommand):
    help = (
        "Create each bot persona of apps/trading/seed/bots/personas.json that is missing: its user, "
        "profile, portfolio and strategy. Existing bots are left as they are."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        created = bots_ensure()
        names = ", ".join(strategy.name for strategy in created) or "none"
        self.stdout.write(f"Bots: {len(created)} created ({names}), {Strategy.objects.count()} in total.")
