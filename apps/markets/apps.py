from django.apps import AppConfig


class MarketsConfig(AppConfig):
    name = "apps.markets"
    label = "markets"
    default_auto_field = "django.db.models.BigAutoField"
