"""Domain errors: every refusal has a stable code, a Chinese and an English message.

Services raise these; ``chalicelib.api.http`` maps them to HTTP responses in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every expected refusal. ``status`` is the HTTP status the API answers with."""

    status: ClassVar[int] = 400

    def __init__(
        self,
        code: str,
        message_zh: str,
        message_en: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message_en}")
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.field = field
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(DomainError):
    status = 400


class Unauthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class PayloadTooLarge(DomainError):
    status = 413


class InvalidField(DomainError):
    """A value that is well-formed JSON but fails a domain rule (HTTP 422)."""

    status = 422


class TooManyRequests(DomainError):
    status = 429


class ServiceUnavailable(DomainError):
    """A dependency did not answer in time or refused for load (HTTP 503): the same request may succeed
    later. ``details.retry_after_seconds`` says when to try again (the API sends it as ``Retry-After``)."""

    status = 503


class ValidationErrors(DomainError):
    """Several field errors at once; ``details.errors`` lists each with its own code."""

    status = 422

    def __init__(self, errors: list[InvalidField]) -> None:
        first = errors[0]
        super().__init__(
            first.code,
            first.message_zh,
            first.message_en,
            field=first.field,
            details={"errors": [e.to_dict() for e in errors]},
        )
        self.errors = errors
