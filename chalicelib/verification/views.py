"""Read models of the verification context: what its use cases return to the API.

What the client learns is pass/fail and the reasons' codes; scores and thresholds stay on the server
(they are in the evidence).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.verification.domain.authority import AuthorityResult
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import CheckVerdict


class PresignedUpload(BaseModel):
    """What the client needs to POST the photo to the store (a multipart form: ``fields`` then ``file``)."""

    model_config = ConfigDict(frozen=True)

    url: str
    fields: dict[str, str]
    key: str
    expires_in: int
    max_bytes: int


class StoredDocument(BaseModel):
    """A validated photo kept under its flow."""

    model_config = ConfigDict(frozen=True)

    flow_id: str
    kind: DocumentKind
    key: str
    size: int
    sha256: str
    width: int
    height: int


class OcrOutcome(BaseModel):
    """What the person is told about a reading: which fields were read and that they agree."""

    model_config = ConfigDict(frozen=True)

    kind: DocumentKind
    fields_read: list[str]
    confidences: dict[str, float]
    agreed: bool
    #: The reading, for the caller to mask or reveal by role (never logged).
    reading: dict[str, Any]
    #: A document OCR does not read: the review case opened for it (the flow waits for the reviewer).
    review_case_id: str | None = None


class LivenessStart(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    engine: str
    challenge: dict[str, Any]
    client: dict[str, str]
    expires_at: datetime
    attempts_left: int


class FaceCheckOutcome(BaseModel):
    """The result of one face attempt: pass/fail and reason codes, never the score or threshold."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    live: bool
    matched: bool | None
    passed: bool
    reasons: list[str]
    attempts_left: int
    review_available: bool
    #: The review case a face gate opened (the flow now waits for a reviewer), if any.
    review_case_id: str | None = None


class AuthorityOutcome(BaseModel):
    """What the person is told about an identity check (nothing personal)."""

    model_config = ConfigDict(frozen=True)

    check: str
    result: AuthorityResult
    verdict: CheckVerdict
    #: True when the flow will go to a reviewer once the live face matches (unavailable / not covered).
    review_pending: bool = False
