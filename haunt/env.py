"""Strict typed readers for environment variables.

A value that cannot be parsed stops start-up with `ImproperlyConfigured` naming the variable,
instead of being silently read as something else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")
_MISSING = object()
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _required(name: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name} is required but not set.")


def env_str(name: str, default: str | object | None = _MISSING) -> str:
    """A string; without a default the variable is required."""
    value = _raw(name)
    if value is not None:
        return value
    if default is _MISSING or default is None:
        raise _required(name)
    assert isinstance(default, str)
    return default


def env_optional_str(name: str) -> str | None:
    """A string, or None when unset or empty."""
    return _raw(name)


def env_bool(name: str, default: bool) -> bool:
    """true/false, yes/no, on/off, 1/0 (any case); anything else is an error."""
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false).")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """A base-10 integer within [minimum, maximum]."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above the maximum of {maximum}.")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    """A decimal number (timeouts, intervals): never used for money."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum of {minimum}.")
    return number


def env_list(name: str, default: Sequence[str] = ()) -> list[str]:
    """A comma-separated list; blanks are dropped."""
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, choices: Sequence[T], default: T) -> T:
    """One of a fixed set of string values."""
    value = _raw(name)
    if value is None:
        return default
    for choice in choices:
        if value.lower() == str(choice):
            return choice
    allowed = ", ".join(str(c) for c in choices)
    raise ImproperlyConfigured(f"{name}={value!r} is not one of: {allowed}.")
