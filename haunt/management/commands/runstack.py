import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from haunt.devstack import stack_run


class Command(BaseCommand):
    help = "Run web (daphne), Celery worker, Celery beat and the feed runner until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        sys.exit(stack_run(host=options["host"], port=options["port"], out=self.stdout))
