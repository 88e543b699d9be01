import pytest
from django.core.exceptions import ImproperlyConfigured

from haunt.env import env_bool, env_choice, env_int, env_list, env_str


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("ON", True), ("0", False), ("no", False)])
def test_env_bool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)

    assert env_bool("X_FLAG", not expected) is expected


def test_env_bool_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("HAUNT_DEBUG", "maybe")

    with pytest.raises(ImproperlyConfigured, match="HAUNT_DEBUG"):
        env_bool("HAUNT_DEBUG", False)


def test_env_int_checks_type_and_range(monkeypatch):
    monkeypatch.setenv("STORAGE_LIMIT_MB", "30GB")
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("STORAGE_LIMIT_MB", 1)

    monkeypatch.setenv("STORAGE_LIMIT_MB", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("STORAGE_LIMIT_MB", 1, minimum=1)


def test_required_string_without_default_names_the_variable(monkeypatch):
    monkeypatch.delenv("HAUNT_SECRET_KEY", raising=False)

    with pytest.raises(ImproperlyConfigured, match="HAUNT_SECRET_KEY is required"):
        env_str("HAUNT_SECRET_KEY")


def test_env_list_and_choice(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example, ,b.example ")
    monkeypatch.setenv("HAUNT_LOG_FORMAT", "xml")

    assert env_list("HOSTS") == ["a.example", "b.example"]
    with pytest.raises(ImproperlyConfigured, match="text, json"):
        env_choice("HAUNT_LOG_FORMAT", ("text", "json"), "text")
