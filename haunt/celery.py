"""The Celery application. Workers: `celery -A haunt worker -Q default,feeds,sync,maintenance`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "haunt.settings")

app = Celery("haunt")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    ["haunt", "apps.markets", "apps.trading", "apps.sync", "apps.moderation", "apps.storage"]
)
