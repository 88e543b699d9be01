from celery import shared_task

from apps.moderation.services import usernames_recheck


@shared_task
def usernames_recheck_task() -> int:
    """Flag names in use that the current blocklist would refuse (daily, and after imports)."""
    return usernames_recheck()
