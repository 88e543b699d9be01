from __future__ import annotations

from haunt.errors import DomainError


class UsernameRejected(DomainError):
    """The name failed validation; `code` is the engine's (blocked, impersonation, too_short...)."""

    http_status = 400

    def __init__(self, message: str, *, code: str, **detail: object) -> None:
        super().__init__(message, **detail)
        self.code = code


class UsernameTaken(DomainError):
    code = "username_taken"
    http_status = 409


class UsernameChangeTooSoon(DomainError):
    code = "rate_limited"
    http_status = 429

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.detail["retry_after"])}


class NotAppealable(DomainError):
    code = "not_appealable"
    http_status = 400


class AppealAlreadyPending(DomainError):
    code = "appeal_pending"
    http_status = 409


class AppealAlreadyDecided(DomainError):
    code = "appeal_decided"
    http_status = 409


class BlocklistFormatError(DomainError):
    code = "invalid_blocklist"
    http_status = 400
