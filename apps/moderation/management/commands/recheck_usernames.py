from typing import Any

from django.core.management.base import BaseCommand

from apps.moderation.services import usernames_recheck


class Command(BaseCommand):
    help = "Re-check usernames in use against the current blocklist and flag the ones it now refuses."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{usernames_recheck()} username(s) flagged for review.")
