"""One face, one identity (一脸多证): the face gate that stops a live face bound to another identity.

Once a live face matches the ID portrait, ``FaceDedupGate.admit`` searches the faces this platform has
bound (``FaceIndex``). A face bound to a *different* identity (another ``person_hash``: the keyed hash of
the ID type and number) at or above the threshold sends the flow to a reviewer (``face.duplicate``): the
same face under two ID numbers is either a forged card or a person's second document, and a person
decides which. The person's own earlier faces (same ``person_hash``) and the flow's own template are not
duplicates. The evidence gets what was found, never a face: the engine, the threshold, how many faces
and identities matched and the best score.

The live face is bound to the flow's identity *before* the search (only when the flow holds the
biometric consent, which the face check already requires and whose text says so), and the binding is
dropped again when the search stops the flow. So two checks of one face under two identities running at
the same time cannot both pass: whichever searches second finds the other's binding. (On DynamoDB the
local index reads its changes from an eventually consistent index: two binds within its propagation
delay, well under a second, can still miss each other.) A binding whose pass is then not saved (the flow
changed meanwhile) stays with the flow, like its other data. ``passed`` notes the binding in the pass's
own write (the entry lands with the pass or not at all). The template follows the flow's retention:
``purged`` forgets it with the abandoned flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from chalicelib.kernel.errors import DomainError
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow, ReviewReason
from chalicelib.verification.domain.gates import GateOutcome, GateVerdict
from chalicelib.verification.ports import EvidenceLog, EvidenceNote, FaceGate, FaceIndex, IndexedFace

#: The stable code of a face already bound to another identity.
DUPLICATE = "face.duplicate"

#: Bound faces looked at per search (the review shows the count; one is enough to stop).
SEARCH_LIMIT = 10


class FaceDedupGate(FaceGate):
    """Sends a live face already bound to another identity to review; binds passed faces."""

    name: ClassVar[str] = "face_dedup"

    def __init__(self, index: FaceIndex, evidence: EvidenceLog, threshold: float) -> None:
        self._index = index
        self._evidence = evidence
        self._threshold = threshold

    def admit(self, flow: Flow, caller: str, live_capture: bytes) -> GateVerdict:
        assert flow.person_hash is not None
        details: dict[str, Any] = {"engine": self._index.name, "threshold": self._threshold}
        bound = _consented(flow)
        try:
            if bound:
                self._index.bind(flow.person_hash, flow.flow_id, live_capture)
            found = self._index.search(live_capture, self._threshold, SEARCH_LIMIT)
        except DomainError as err:
            # The live capture matched the portrait, so it holds a face: an index that cannot read it
            # is not a reason to let it through unsearched.
            details.update(outcome=GateOutcome.REVIEW.value, code=err.code)
            self._evidence.append(flow.flow_id, EvidenceKind.FACE_DEDUPLICATED, caller, details)
            if bound:
                self._index.forget(flow.flow_id)
            return self._review(details)
        others = [hit for hit in found if _another_identity(hit, flow)]
        details.update(
            matches=len(others),
            identities=len({hit.person_hash for hit in others}),
            best_score=max((hit.score for hit in others), default=None),
            outcome=(GateOutcome.REVIEW if others else GateOutcome.PASS).value,
        )
        self._evidence.append(flow.flow_id, EvidenceKind.FACE_DEDUPLICATED, caller, details)
        if not others:
            return GateVerdict(self.name, GateOutcome.PASS, details=details)
        if bound:
            self._index.forget(flow.flow_id)  # a face in review is bound to nobody new
        return self._review(details)

    def passed(self, flow: Flow, caller: str, live_capture: bytes) -> Sequence[EvidenceNote]:
        """The pass, once saved, makes the binding made before the search the flow's for good: noted in
        its write."""
        if _consented(flow):
            return [EvidenceNote(EvidenceKind.FACE_BOUND, caller, {"engine": self._index.name})]
        return []

    def purged(self, flow_id: str) -> None:
        self._index.forget(flow_id)

    def _review(self, details: dict[str, Any]) -> GateVerdict:
        return GateVerdict(
            self.name,
            GateOutcome.REVIEW,
            reason=DUPLICATE,
            review_reason=ReviewReason.FACE_DUPLICATE,
            details=details,
        )


def _consented(flow: Flow) -> bool:
    return (
        flow.person_hash is not None and flow.checks.get(CheckName.BIOMETRIC_CONSENT) is CheckVerdict.PASSED
    )


def _another_identity(hit: IndexedFace, flow: Flow) -> bool:
    return hit.person_hash != flow.person_hash and hit.template_id != flow.flow_id
