import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"  # port 1: nothing listens, connection refused at once


def test_health_reports_every_component_healthy(api_client):
    response = api_client.get("/api/health")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["down"] == []
    assert set(body["components"]) == {"database", "redis", "channel_layer", "celery"}
    assert all(component["ok"] for component in body["components"].values())
    assert (body["node"], body["region"]) == ("local", "local")
    assert body["version"]


@override_settings(HAUNT_NODE_ID="osaka", HAUNT_NODE_REGION="ap-northeast")
def test_health_names_this_node(api_client):
    body = api_client.get("/api/health").json()

    assert (body["node"], body["region"]) == ("osaka", "ap-northeast")


@override_settings(REDIS_URL=DEAD_REDIS)
def test_health_is_503_naming_redis_when_redis_is_unreachable(api_client):
    response = api_client.get("/api/health")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "degraded"
    assert "redis" in body["down"]
    assert "Connection" in body["components"]["redis"]["error"]


@override_settings(
    REDIS_URL=DEAD_REDIS,
    CHANNEL_LAYERS={
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [DEAD_REDIS]}}
    },
    CELERY_TASK_ALWAYS_EAGER=False,
    CELERY_BROKER_URL=DEAD_REDIS,
)
def test_parts_running_on_redis_are_reported_down_with_it(api_client):
    response = api_client.get("/api/health")

    body = response.json()
    assert response.status_code == 503
    assert set(body["down"]) == {"redis", "channel_layer", "celery"}
    assert body["components"]["database"]["ok"] is True


def test_health_needs_no_auth_and_is_not_throttled(api_client):
    statuses = {api_client.get("/api/health").status_code for _ in range(130)}

    assert statuses == {200}
