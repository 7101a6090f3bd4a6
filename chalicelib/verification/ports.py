"""Ports of the verification context: engines (OCR, faces, liveness), the flows' state (flows, attempt
counters, liveness sessions, review cases), the document store and the evidence log."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, ClassVar

from chalicelib.kernel.crypto import SealedFields
from chalicelib.verification.domain.authority import AuthorityAnswer, covered
from chalicelib.verification.domain.documents import PostForm
from chalicelib.verification.domain.evidence import ChainVerdict, EvidenceEntry, EvidenceKind
from chalicelib.verification.domain.faces import (
    DetectedFace,
    FaceComparison,
    FaceEmbedding,
)
from chalicelib.verification.domain.flows import AttemptsLeft, Flow, LivenessSession, ReviewCase, ReviewStatus
from chalicelib.verification.domain.gates import GateVerdict
from chalicelib.verification.domain.liveness import (
    LivenessCapture,
    LivenessChallenge,
    LivenessVerdict,
    ProviderSession,
)
from chalicelib.verification.domain.readings import TextLine


class OcrEngine(ABC):
    """Reads the text lines of a photo (JPEG/PNG/BMP bytes), roughly in reading order."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def version(self) -> str:
        """Engine and model version, recorded in the evidence with every reading."""

    @abstractmethod
    def read(self, image: bytes) -> list[TextLine]:
        """The text lines found; empty when there is none. Raises InvalidField for an undecodable photo."""


class FaceEngine(ABC):
    """Finds and compares faces in encoded photos (JPEG/PNG/BMP bytes)."""

    #: Engine name recorded in the evidence.
    name: ClassVar[str]
    #: The threshold this engine's similarity is calibrated for (a starting point for the setting).
    recommended_threshold: ClassVar[float]

    @property
    @abstractmethod
    def version(self) -> str:
        """Version of the engine or model behind the scores."""

    @abstractmethod
    def detect(self, image: bytes) -> list[DetectedFace]:
        """Every face in the photo, largest first; raises ``face.image_unreadable`` on bad bytes."""

    @abstractmethod
    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        """Similarity of the largest face of ``a`` with the largest face of ``b``.

        Raises ``face.none`` (``details.image`` = ``a`` or ``b``) when a photo holds no face.
        """


class EmbeddingFaceEngine(FaceEngine):
    """An engine that describes a face once and scores descriptors: evaluations reuse them."""

    @abstractmethod
    def embed(self, image: bytes) -> FaceEmbedding:
        """The descriptor of the photo's largest face; raises ``face.none`` when there is none."""

    @abstractmethod
    def similarity(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        """The 0–100 similarity of two descriptors (the same figure ``compare`` returns)."""


class LivenessEngine(ABC):
    """Runs a liveness check: challenge, start, judge (see the module docstring)."""

    #: Engine name recorded in the evidence.
    name: ClassVar[str]

    @property
    @abstractmethod
    def version(self) -> str:
        """Version of the engine, model or API behind the verdicts."""

    @abstractmethod
    def new_challenge(self) -> LivenessChallenge:
        """A fresh challenge for one check."""

    @abstractmethod
    def start(self, challenge: LivenessChallenge) -> ProviderSession:
        """Start a check of ``challenge``: the engine's session id and the client's parameters."""

    @abstractmethod
    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        """The verdict on a started check (``capture``: the client's nonce and frame times).

        Raises ``liveness.frames_count`` / ``liveness.frame_too_large`` / ``liveness.frame_unreadable``
        for frames that cannot be judged, ``liveness.not_finished`` (409) while the engine's session
        is still running and ``liveness.expired`` when it has expired.
        """


class FaceGate(ABC):
    """A check the live face must pass once it matches the ID portrait (``domain.gates``)."""

    #: The gate's name in the evidence.
    name: ClassVar[str]

    @abstractmethod
    def admit(self, flow: Flow, caller: str, live_capture: bytes) -> GateVerdict:
        """Judge the live capture (JPEG) of ``flow``'s person; record what it did in the evidence."""

    def passed(self, flow: Flow, caller: str, live_capture: bytes) -> Sequence[EvidenceNote]:
        """What the gate records of the face check's pass (a gate may note the face bound to the
        identity): entries chained in the pass's own write, so that they land with it or not at all.
        The gate writes nothing itself here."""
        return ()

    def purged(self, flow_id: str) -> None:  # noqa: B027
        """Called once an abandoned flow is purged: a gate drops what it bound to the flow."""


@dataclass(frozen=True)
class IndexedFace:
    """A face bound on this platform that resembles the one searched (no face data: who and how close)."""

    #: The flow the face was bound from (the template's id).
    template_id: str
    #: The keyed hash of the identity it is bound to (the flow's ``person_hash``).
    person_hash: str
    #: Similarity 0–100 on the engine's scale.
    score: float


class FaceIndex(ABC):
    """Face templates bound to identities, searched for one face under several identities (一脸多证).

    A template is kept only with the biometric consent and follows the flow's retention: ``forget``
    when the flow is purged.
    """

    #: Engine name recorded in the evidence.
    name: ClassVar[str]

    @abstractmethod
    def search(self, image: bytes, threshold: float, limit: int) -> list[IndexedFace]:
        """Up to ``limit`` bound faces scoring at least ``threshold`` with the photo's largest face, best
        first; raises ``face.none`` when the photo holds no face."""

    @abstractmethod
    def bind(self, person_hash: str, template_id: str, image: bytes) -> None:
        """Keep the photo's largest face under ``template_id`` for ``person_hash`` (replacing any)."""

    @abstractmethod
    def forget(self, template_id: str) -> bool:
        """Drop the template; False when there was none."""


class IdentityAuthority(ABC):
    """The issuer's records of identities (``domain.authority``): two-factor checks and, where the
    provider offers it, the authoritative portrait. Never raises for an outage: it answers
    ``UNAVAILABLE`` (after its own timeouts and retries)."""

    #: Provider name recorded in the evidence.
    name: ClassVar[str]
    #: Whether ``compare_portrait`` is offered.
    supports_portrait: ClassVar[bool]
    #: Whether ``verify_phone_holder`` (运营商三要素) is offered.
    supports_phone_holder: ClassVar[bool]

    @property
    @abstractmethod
    def version(self) -> str:
        """Provider API version recorded with every answer."""

    def covers(self, id_type: str) -> bool:
        """Whether the authority holds identities of ``id_type``."""
        return covered(id_type)

    @abstractmethod
    def verify_identity(
        self, name: str, id_type: str, id_number: str, valid_until: date | None = None
    ) -> AuthorityAnswer:
        """Do ``name`` and ``id_number`` (and the validity, where taken) belong together?"""

    @abstractmethod
    def compare_portrait(self, name: str, id_number: str, live_jpeg: bytes) -> AuthorityAnswer:
        """Is the live capture the person of the identity's authoritative portrait?"""

    @abstractmethod
    def verify_phone_holder(self, name: str, id_type: str, id_number: str, phone: str) -> AuthorityAnswer:
        """运营商三要素: is ``phone`` held, with the carrier, by the person of ``name`` and ``id_number``?
        ``NOT_FOUND`` when the carrier has no such record; ``NOT_COVERED`` for a number range the
        provider cannot check."""


@dataclass(frozen=True)
class SealedFlow:
    """A flow ready to be saved, its typed identity already sealed: saving it asks KMS nothing. A check
    seals first when it then spends what a failure could not give back (a liveness session, an
    attempt), so that KMS failing spends nothing."""

    flow: Flow
    #: The sealed identity (None: the store seals nothing, or the flow has no identity yet).
    sealed: SealedFields | None = None

    def with_unsealed(self, **changes: Any) -> SealedFlow:
        """The same flow with ``changes`` to fields that are not sealed (its documents, checks): the
        sealed identity still holds."""
        if "identity" in changes or "flow_id" in changes:
            raise ValueError("the identity and the id are sealed with the flow: seal it again")
        return replace(self, flow=self.flow.model_copy(update=changes))


class FlowRepository(ABC):
    @abstractmethod
    def create(self, flow: Flow) -> None: ...

    @abstractmethod
    def create_if_room(self, flow: Flow, limit: int, now: datetime) -> bool:
        """Create ``flow`` unless its owner already holds ``limit`` open, unexpired flows at ``now``; False
        when refused. Decided against the owner's other opens one at a time: a burst of opens by one
        owner cannot all pass."""

    @abstractmethod
    def get(self, flow_id: str) -> Flow | None: ...

    @abstractmethod
    def save(self, flow: Flow) -> Flow:
        """Store ``flow`` (its ``version`` one above the stored one) or raise Conflict ``flow.changed``."""

    def seal(self, flow: Flow) -> SealedFlow:
        """``flow`` with its identity sealed, nothing written (``save_sealed`` stores it)."""
        return SealedFlow(flow)

    def save_sealed(self, ready: SealedFlow) -> Flow:
        """``save`` of a flow sealed by ``seal``: KMS is not asked again."""
        return self.save(ready.flow)

    def save_noted(
        self,
        ready: SealedFlow,
        evidence: EvidenceLog,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
    ) -> Flow:
        """``save_sealed`` and the evidence entry that says why the flow changed, as one write where the
        stores can join them (this default: the flow, then the entry; a store that can overrides it)."""
        flow = self.save_sealed(ready)
        evidence.append(flow.flow_id, kind, actor, public)
        return flow

    @abstractmethod
    def open_count(self, owner: str, now: datetime) -> int:
        """How many of ``owner``'s flows are open and unexpired at ``now`` (read on an owner index)."""

    @abstractmethod
    def expired(self, now: datetime, limit: int) -> list[Flow]:
        """Up to ``limit`` flows whose ``expires_at`` has passed (abandoned: never kept by a submission)."""

    @abstractmethod
    def delete_expired(self, flow: Flow, now: datetime) -> bool:
        """Delete ``flow`` if it is still expired at ``now`` (False when it was kept meanwhile)."""


class AttemptCounters(ABC):
    @abstractmethod
    def consume(
        self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int, expires_at: datetime
    ) -> AttemptsLeft:
        """Count one attempt against both quotas at once, or neither (``face.attempts_exhausted``)."""

    @abstractmethod
    def left(
        self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int
    ) -> AttemptsLeft: ...


@dataclass(frozen=True)
class AttemptCharge:
    """One face attempt to count: against the flow's quota and the person's quota of the China day,
    both or neither (the counters expire at ``expires_at``)."""

    flow_id: str
    person_hash: str
    day: date
    per_flow: int
    per_day: int
    expires_at: datetime


@dataclass(frozen=True)
class EvidenceNote:
    """An evidence entry that lands with a write or not at all (``LivenessSessions.claim_counting``):
    what the entry says, chained when the write is made."""

    kind: EvidenceKind
    actor: str
    public: Mapping[str, Any]


class LivenessSessions(ABC):
    @abstractmethod
    def create(self, session: LivenessSession) -> None:
        """Store a new session; Conflict ``liveness.session_exists`` when its id is taken."""

    @abstractmethod
    def get(self, session_id: str) -> LivenessSession | None: ...

    @abstractmethod
    def claim(self, session_id: str, now: datetime) -> bool:
        """Mark the session used if it is unused and unexpired; False when someone else got there first."""

    @abstractmethod
    def claim_counting(
        self,
        session_id: str,
        now: datetime,
        charge: AttemptCharge,
        ready: SealedFlow,
        evidence: EvidenceLog,
        notes: Sequence[EvidenceNote] = (),
    ) -> None:
        """Claim the session, count one attempt (``charge``), store the flow's verdict (``ready``, one
        version above the stored flow) and chain ``notes`` (in order) to the flow's evidence in
        ``evidence``, all in one write or none of it: a face check that fails after judging spends
        neither the session nor an attempt, and its evidence never says an attempt was counted.

        Refused (nothing written): ``liveness.session_used`` or ``liveness.session_expired`` when the
        session is taken or too late, ``face.attempts_exhausted`` when a quota is full, ``flow.changed``
        when the flow changed meanwhile (checked in that order when several fail). Another entry
        chained meanwhile is no refusal: the notes are chained after it."""

    @abstractmethod
    def count_preview(self, session_id: str, limit: int) -> int | None:
        """Count one live-guidance preview of the session: the previews left after it, or ``None``
        when the session has had ``limit`` already (nothing counted then)."""


class ReviewCases(ABC):
    @abstractmethod
    def open(self, case: ReviewCase) -> ReviewCase:
        """Create the case, or return the one already open under the same id."""

    @abstractmethod
    def get(self, case_id: str) -> ReviewCase | None: ...

    @abstractmethod
    def page(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        """Cases of ``status``, oldest first, a page at a time."""

    @abstractmethod
    def decide(
        self, case_id: str, status: ReviewStatus, by: str, note: str | None, at: datetime
    ) -> ReviewCase:
        """Decide an open case once; a decided case raises Conflict ``review.already_decided``."""


class EvidenceLog(ABC):
    """Records every check of a flow. There is deliberately no way to change or remove an entry: a purge
    removes only the sealed personal facts, and the chain still verifies."""

    @abstractmethod
    def append(
        self,
        flow_id: str,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
        personal: Mapping[str, str] | None = None,
    ) -> EvidenceEntry:
        """Chain a new entry after the flow's last one; ``personal`` facts are stored encrypted.

        Safe under concurrent appends to the same flow: each gets its own seq, none is lost.
        """

    @abstractmethod
    def entries(self, flow_id: str) -> list[EvidenceEntry]:
        """The flow's entries in seq order, personal facts decrypted."""

    @abstractmethod
    def verify(self, flow_id: str) -> ChainVerdict:
        """Check the stored chain and its head; needs no decryption (an auditor can run it)."""

    @abstractmethod
    def purge_personal(self, flow_id: str) -> int:
        """Purge (第十八条, abandoned flows): delete the entries' sealed personal facts, keeping the
        digest of what was deleted so the chain still verifies; how many entries had some."""


class DocumentStore(ABC):
    """Private storage of document photos; everything written is encrypted at rest with the
    personal-data key (how is the adapter's business)."""

    @abstractmethod
    def presign_post(
        self, key: str, content_type: str, min_bytes: int, max_bytes: int, expires_in: int
    ) -> PostForm:
        """A form to upload one object at ``key``: of ``content_type`` (an ``image/*`` type), between
        ``min_bytes`` and ``max_bytes`` long, valid for ``expires_in`` seconds."""

    @abstractmethod
    def presign_get(self, key: str, expires_in: int) -> str:
        """A short-lived link to read the object at ``key``."""

    @abstractmethod
    def get(self, key: str, max_bytes: int) -> bytes:
        """The object's bytes. Raises ``document.missing`` when there is none and
        ``document.too_large`` (without reading the body) when it is over ``max_bytes``."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object is stored at ``key``, learnt without reading (nor decrypting) its body."""

    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str) -> None:
        """Write (or overwrite) the object at ``key``, encrypted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete the object at ``key``; nothing happens when there is none."""

    @abstractmethod
    def delete_under(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix``; how many were deleted."""
