from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.moderation.engine.types import Category
from apps.moderation.exceptions import BlocklistFormatError
from apps.moderation.services import blocklist_import


class Command(BaseCommand):
    help = (
        "Load blocked terms from a file kept outside the repository (default HAUNT_BLOCKLIST_PATH): "
        "CSV `term,category[,severity[,match_mode]]` or one term a line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", type=Path)
        parser.add_argument(
            "--category", default=Category.PROFANITY.value, choices=[c.value for c in Category]
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["path"] or (
            Path(settings.HAUNT_BLOCKLIST_PATH) if settings.HAUNT_BLOCKLIST_PATH else None
        )
        if path is None:
            raise CommandError("Give a file or set HAUNT_BLOCKLIST_PATH.")
        try:
            result = blocklist_import(
                text=path.read_text(encoding="utf-8"), default_category=options["category"]
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        except BlocklistFormatError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(f"Blocklist: {result.created} terms added, {result.updated} updated.")
