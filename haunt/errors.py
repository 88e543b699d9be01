"""Haunt's error types and the one envelope every API error is answered with:

{"error": {"code": "...", "message": "...", "detail": {...}}}
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from django.views.defaults import page_not_found, server_error
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler


class HauntError(Exception):
    code = "error"
    http_status = 400

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the error response carries (e.g. Retry-After)."""
        return {}


class DomainError(HauntError):
    """Refused by a business rule. Retrying won't help."""


class TransientError(HauntError):
    """A dependency is briefly unavailable. Retrying later may succeed."""

    code = "unavailable"
    http_status = 503


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: every known error becomes the envelope with its status."""
    if isinstance(exc, HauntError):
        return Response(
            error_body(exc.code, exc.message, exc.detail), status=exc.http_status, headers=exc.headers
        )
    if isinstance(exc, DjangoValidationError):  # from model.full_clean() in services
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = exception_handler(exc, context)
    if response is None:
        return None  # unexpected: let Django log it and answer 500
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    if isinstance(exc, exceptions.Throttled):
        wait = getattr(exc, "wait", None)
        response.data = error_body("throttled", str(detail), {"retry_after": wait})
    elif isinstance(detail, str) and not isinstance(exc, exceptions.ValidationError):
        response.data = error_body(getattr(detail, "code", "error"), str(detail))
    else:  # serializer errors: {field: [messages]}
        response.data = error_body("invalid", "Invalid input.", response.data)
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def json_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def handler400(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(400, "bad_request", "Bad request.")


def handler403(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error(403, "permission_denied", "You do not have permission to do this.")


def handler404(request: HttpRequest, exception: Exception | None = None) -> Any:
    if not _is_api(request):
        return page_not_found(request, exception or Exception())
    return json_error(404, "not_found", f"No route for {request.path}.")


def handler500(request: HttpRequest) -> Any:
    if not _is_api(request):
        return server_error(request)
    return json_error(500, "server_error", "Internal error; it has been logged.")
