"""Start-up refuses bad configuration with a clear message (run in a fresh interpreter)."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

BOOT = "import django; django.setup(); from django.conf import settings; print(settings.HAUNT_NODE_ID)"


def boot(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HAUNT_", "DATABASE_URL", "REDIS_URL"))}
    base.update(DJANGO_SETTINGS_MODULE="haunt.settings", HAUNT_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-c", BOOT],
        cwd=settings.BASE_DIR,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_development_defaults_start_with_a_generated_secret(tmp_path):
    result = boot(tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "local"
    assert len((tmp_path / "secret_key").read_text()) >= 50


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HAUNT_ENV": "production"}, "HAUNT_SECRET_KEY is required"),
        ({"HAUNT_DEBUG": "maybe"}, "HAUNT_DEBUG='maybe' is not a boolean"),
        ({"STORAGE_LIMIT_MB": "lots"}, "STORAGE_LIMIT_MB='lots' is not an integer"),
        ({"HAUNT_NODE_ID": "Osaka Node"}, "HAUNT_NODE_ID='Osaka Node' must be"),
        ({"DATABASE_URL": "mysql://x@localhost/haunt"}, "DATABASE_URL must be a postgres"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with"),
        ({"HAUNT_LOG_FORMAT": "xml"}, "HAUNT_LOG_FORMAT='xml' is not one of"),
    ],
)
def test_bad_configuration_stops_start_up_with_the_variable_named(tmp_path, env, message):
    result = boot(tmp_path, **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_production_requires_hosts_and_redis(tmp_path):
    result = boot(
        tmp_path,
        HAUNT_ENV="production",
        HAUNT_SECRET_KEY="x" * 50,
        HAUNT_NODE_ID="osaka",
        HAUNT_NODE_REGION="ap-northeast",
    )

    assert result.returncode != 0
    assert "HAUNT_ALLOWED_HOSTS is required" in result.stderr
