"""The codes of an operator's spot check (抽查, 第十条) that the API speaks: its status and the OEM's
verdict. Kept apart from the messages and the case model, so that the routes declaring them import
nothing more at a cold start."""

from __future__ import annotations

from enum import StrEnum


class SpotCheckStatus(StrEnum):
    OPEN = "open"  # waiting for the reviewer's answer
    ANSWERED = "answered"  # answered (once); the answer is in the outbox


class SpotCheckVerdict(StrEnum):
    """The OEM's answer to an operator's spot check (抽查, 第十条)."""

    CONFIRMED = "confirmed"  # the registration's evidence bears the registration out
    DISCREPANCY = "discrepancy"  # the reviewer found something that does not agree (see the note)
