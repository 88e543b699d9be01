from typing import Any

from django.core.management.base import BaseCommand

from haunt.seeding import seed_defaults


class Command(BaseCommand):
    help = "Load default operational data (exchanges, retention, leverage brackets); keeps admin edits."

    def handle(self, *args: Any, **options: Any) -> None:
        for result in seed_defaults():
            self.stdout.write(f"{result.model}: {result.created} created, {result.existing} already present")
