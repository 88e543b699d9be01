import pytest
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from haunt.celery import app


def test_tasks_are_routed_to_their_queues():
    router = app.amqp.router

    def queue_of(name: str) -> str:
        route = router.route({}, name)
        return route["queue"].name

    assert queue_of("apps.markets.tasks.rest_sources_poll_task") == "feeds"
    assert queue_of("haunt.tasks.notification_purge_task") == "maintenance"
    assert queue_of("haunt.tasks.notification_send_task") == "default"


def test_redelivery_settings_are_on():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.django_db(transaction=True)  # the scheduler closes connections itself
def test_beat_loads_the_schedule_from_settings_into_editable_rows():
    DatabaseScheduler(app=app, lazy=False)

    tasks = {t.name: t for t in PeriodicTask.objects.all()}

    assert tasks["rest-sources-poll"].task == "apps.markets.tasks.rest_sources_poll_task"
    assert tasks["rest-sources-poll"].interval.every == 30
    assert tasks["notifications-purge"].enabled is True
