from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from haunt.accounts import admin_user_ensure


class Command(BaseCommand):
    help = (
        "Create the first admin user from HAUNT_ADMIN_USERNAME / HAUNT_ADMIN_EMAIL / "
        "HAUNT_ADMIN_PASSWORD, non-interactively. Does nothing if that user exists."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        username, password = settings.HAUNT_ADMIN_USERNAME, settings.HAUNT_ADMIN_PASSWORD
        if not username or not password:
            raise CommandError("Set HAUNT_ADMIN_USERNAME and HAUNT_ADMIN_PASSWORD.")
        try:
            created = admin_user_ensure(
                username=username, email=settings.HAUNT_ADMIN_EMAIL or "", password=password
            )
        except ValidationError as exc:
            raise CommandError("HAUNT_ADMIN_PASSWORD refused: " + " ".join(exc.messages)) from None
        self.stdout.write(f"Admin user {username!r} {'created' if created else 'already exists'}.")
