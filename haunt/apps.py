from django.apps import AppConfig


class HauntConfig(AppConfig):
    name = "haunt"
    label = "haunt"
    verbose_name = "Haunt"
    default_auto_field = "django.db.models.BigAutoField"
