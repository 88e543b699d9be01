from pathlib import Path

import pytest

from apps.moderation.services import blocklist_import
from haunt.seeding import seed_defaults

FAKE_LIST = Path(__file__).parent / "fake_blocklist.csv"


@pytest.fixture
def blocklist(db) -> None:
    """The fake list plus the seeded impersonation terms."""
    seed_defaults()
    blocklist_import(text=FAKE_LIST.read_text())
