"""The consent texts served and checked: the Markdown files beside this module
(``<kind>.<version>.md``), read once per process; the current version of each kind is the one in force."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from chalicelib.consents.domain import (
    AGREEMENTS,
    AcceptedConsent,
    ConsentDocument,
    ConsentKind,
    check_accepted,
    consent_document,
    current_consents,
)

CONSENTS_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=1)
def consent_documents() -> tuple[ConsentDocument, ...]:
    """The current text of each consent: the highest version in the repository."""
    return current_consents(
        consent_document(path.name, path.read_bytes()) for path in sorted(CONSENTS_DIR.glob("*.v*.md"))
    )


def current_consent(kind: ConsentKind) -> ConsentDocument:
    return next(d for d in consent_documents() if d.kind is kind)


def check_consents(
    accepted: Sequence[AcceptedConsent], required: tuple[ConsentKind, ...] = AGREEMENTS
) -> None:
    """Every ``required`` text accepted, and every text given the current one, exactly as served."""
    check_accepted(accepted, consent_documents(), required)
