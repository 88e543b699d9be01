"""Trading Celery tasks, one module per area (autodiscovery imports this package)."""

from apps.trading.tasks import accounts, bots, orders, positions  # noqa: F401
