import os
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from apps.sync.models import Peer

SECRET_ENV = "HAUNT_SYNC_PEER_SECRET"  # noqa: S105 (the variable name, not a secret)


@transaction.atomic
def peer_set(
    *, name: str, url: str, region: str, key_id: str, secret: str | None, is_primary: bool, enabled: bool
) -> tuple[Peer, bool]:
    """Create or update the peer `name`; the secret is kept when None. True when created."""
    peer = Peer.objects.select_for_update().filter(name=name).first()
    created = peer is None
    if peer is None:
        if not secret:
            raise CommandError(f"Peer {name!r} is new: a secret is required.")
        peer = Peer(name=name)
    peer.url, peer.region, peer.key_id = url, region, key_id
    peer.is_primary, peer.enabled = is_primary, enabled
    if secret:
        peer.secret = secret
    peer.full_clean()
    peer.save()
    if is_primary:  # one primary per mesh
        Peer.objects.exclude(pk=peer.pk).filter(is_primary=True).update(is_primary=False)
    return peer, created


class Command(BaseCommand):
    help = (
        "Register or update a peer of this node from the command line (the admin does the same). "
        f"The shared secret comes from --secret or, to keep it out of the process list, ${SECRET_ENV}."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="The peer's HAUNT_NODE_ID.")
        parser.add_argument("--url", required=True, help="Base URL of the peer, e.g. http://10.0.0.2:8000")
        parser.add_argument("--region", default="")
        parser.add_argument("--key-id", required=True, help="Key id of the link (the same on both ends).")
        parser.add_argument("--secret", help=f"Shared HMAC secret of the link (else ${SECRET_ENV}).")
        parser.add_argument("--primary", action="store_true", help="The primary node for PRIMARY_WINS.")
        parser.add_argument("--disabled", action="store_true", help="Register the peer but do not pull it.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            peer, created = peer_set(
                name=options["name"],
                url=options["url"],
                region=options["region"],
                key_id=options["key_id"],
                secret=options["secret"] or os.environ.get(SECRET_ENV) or None,
                is_primary=options["primary"],
                enabled=not options["disabled"],
            )
        except ValidationError as exc:
            raise CommandError(
                "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            ) from None
        self.stdout.write(f"Peer {peer.name} {'created' if created else 'updated'} ({peer.url}).")
