"""POST /api/crypto/{id}/seed."""

from __future__ import annotations

import pytest

from apps.markets.models import SeedingJob

pytestmark = pytest.mark.django_db

URL = "/api/crypto/{}/seed"


def test_seed_request_answers_202_with_the_job(
    auth_client, history_exchanges, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = auth_client.post(URL.format("btc"))

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "symbol", "status", "progress", "message", "failedSources", "createdAt"}
    assert (body["symbol"], body["status"], body["progress"], body["failedSources"]) == (
        "btc",
        "pending",
        0,
        [],
    )
    assert SeedingJob.objects.get().pk == body["id"]


def test_a_second_request_while_one_is_queued_returns_the_same_job(
    auth_client, history_exchanges, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        first = auth_client.post(URL.format("btc")).json()
        second = auth_client.post(URL.format("BTC")).json()

    assert second["id"] == first["id"]
    assert SeedingJob.objects.count() == 1


def test_the_request_runs_the_job_after_commit(
    auth_client, history, history_exchanges, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = auth_client.post(URL.format("btc"))

    job = SeedingJob.objects.get(pk=response.json()["id"])
    assert (job.status, job.progress) == ("completed", 100)


@pytest.mark.parametrize("symbol", ["doge", "btc-usd"])
def test_unknown_symbol_is_a_404_envelope(auth_client, history_exchanges, symbol):
    response = auth_client.post(URL.format(symbol))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_symbol"
    assert not SeedingJob.objects.exists()


def test_anonymous_requests_are_refused(api_client, history_exchanges):
    response = api_client.post(URL.format("btc"))

    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not SeedingJob.objects.exists()
