"""Face gates: checks a live face must also pass once it matches the ID portrait (人证一致).

Matching the photo on a card proves only that the person in front of the camera is the one on that
photo. Gates check the live face against what the card cannot forge: the issuing authority's portrait
(``IdentityAuthority``) and the faces already bound to other identities on this platform
(de-duplication). Each gate answers with a ``GateVerdict``; the face check runs them in order and
stops at the first that does not pass:

- ``PASS``: nothing against the person;
- ``FAIL``: the attempt fails with ``reason`` (a stable code told to the client), like a face mismatch;
- ``REVIEW``: the flow stops and goes to a reviewer (``review_reason`` names the case), whatever the
  attempts left: a person cannot retry their way past it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from chalicelib.verification.domain.flows import ReviewReason


class GateOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    REVIEW = "review"


@dataclass(frozen=True)
class GateVerdict:
    #: The gate's name, in the evidence and the outcome.
    gate: str
    outcome: GateOutcome
    #: Stable code when not passed (``authority.portrait_mismatch``, ``face.duplicate``...).
    reason: str | None = None
    #: The review case's reason when ``outcome`` is ``REVIEW``.
    review_reason: ReviewReason | None = None
    #: Non-personal facts for the evidence (scores, provider references, counts).
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.outcome is GateOutcome.PASS
