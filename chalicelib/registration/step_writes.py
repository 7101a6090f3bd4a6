"""A registration step's writes as one: the registration saved with the evidence entry of the step, and
the SMS code the step proves used and the verification flow it opens, when it does.

The store writes them all or none (DynamoDB: one transaction, ``adapters.dynamo.step_writes``), so that
a step the store refuses (a throttle, a timeout, a conflict) spends nothing the person had (their SMS
code stays usable) and leaves the store as it was: taken again, the step completes. ``InOrder`` writes
them one after the other through the ports, for stores that cannot join them (the in-memory ones).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.registration.domain.registrations import Registration
from chalicelib.registration.ports import SealedRegistration
from chalicelib.sms.domain import MatchedCode
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import Flow
from chalicelib.verification.service import VerificationService


@dataclass(frozen=True)
class Note:
    """The evidence entry of a step: public facts only."""

    flow_id: str
    kind: EvidenceKind
    actor: str
    public: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class NewFlow:
    """The verification flow a step opens (``VerificationService.prepare_open``): refused past the
    owner's ``limit`` open flows (``flow.too_many_open``), as ``open_flow`` refuses it."""

    flow: Flow
    limit: int


@dataclass(frozen=True)
class StepWrite:
    """What one step writes: the registration (sealed), the evidence entry, and the code used and the
    flow opened when the step does either."""

    registration: SealedRegistration
    note: Note
    code: MatchedCode | None = None
    flow: NewFlow | None = None


class CodeTaken(Exception):
    """The code's use was refused: it was used, burnt, replaced or expired since it was matched (or the
    store did not say which of the writes it refused). Nothing was written; the step matches the code
    again, and that read says which."""


class StepWrites(ABC):
    """Writes a step's ``StepWrite`` all or none."""

    @abstractmethod
    def commit(self, write: StepWrite) -> Registration:
        """Write all of ``write`` or nothing; the registration as stored.

        Raises ``CodeTaken`` (the code's use refused), ``registration.changed`` (409: the registration
        moved since it was read), ``flow.too_many_open`` (429), ``flow.changed`` (409: a flow of the new
        id exists), and throttles and faults as the store raises them.
        """


class CodeUse(Protocol):
    """The SMS codes' own use of a matched code (``sms.codes.SmsCodeService.use``)."""

    def use(self, matched: MatchedCode) -> bool: ...


class SealedSaves(Protocol):
    """The registrations' save of a sealed registration (``registration.records.Registrations``)."""

    def save_sealed(self, ready: SealedRegistration) -> Registration: ...


class InOrder(StepWrites):
    """The writes one after the other through the ports (the code first, then the flow, the registration
    and the entry): for stores that cannot join them in one write. A failure midway leaves the earlier
    writes."""

    def __init__(self, codes: CodeUse, registrations: SealedSaves, verification: VerificationService) -> None:
        self._codes = codes
        self._registrations = registrations
        self._verification = verification

    def commit(self, write: StepWrite) -> Registration:
        if write.code is not None and not self._codes.use(write.code):
            raise CodeTaken
        if write.flow is not None:
            flow = write.flow.flow
            self._verification.open_flow(flow.owner, flow.purpose, flow.flow_id)
        reg = self._registrations.save_sealed(write.registration)
        note = write.note
        self._verification.note(note.flow_id, note.kind, note.actor, note.public)
        return reg
