import pytest
from django.contrib.auth.models import AnonymousUser
from rest_framework.test import APIRequestFactory

from haunt.cache import PooledRedisCache
from haunt.throttling import AuthenticatedUserRateThrottle
from tests.conftest import redis_url_or_skip


def test_redis_cache_reuses_one_client_and_still_works():
    url = redis_url_or_skip()
    cache = PooledRedisCache(url, {"OPTIONS": {}, "KEY_PREFIX": "haunt-test"})

    cache.set("k", {"v": 1}, 10)

    assert cache.get("k") == {"v": 1}
    assert cache._cache.get_client(write=True) is cache._cache.get_client(write=True)
    cache.delete("k")


@pytest.mark.django_db
def test_user_rate_throttle_leaves_anonymous_requests_to_the_anon_throttle(user):
    anonymous = APIRequestFactory().get("/api/market/prices")
    anonymous.user = AnonymousUser()
    signed_in = APIRequestFactory().get("/api/market/prices")
    signed_in.user = user

    throttle = AuthenticatedUserRateThrottle()

    assert throttle.get_cache_key(anonymous, view=None) is None
    assert throttle.get_cache_key(signed_in, view=None) == f"throttle_user_{user.pk}"
