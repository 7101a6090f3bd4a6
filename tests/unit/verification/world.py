"""The verification context wired to fakes only, and the photos and readings its stories use."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from functools import cache
from itertools import count

from PIL import Image

from chalicelib.consents.domain import ConsentKind
from chalicelib.consents.texts import current_consent
from chalicelib.verification.domain.authority import UnavailablePolicy
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import FlowPurpose, TypedIdentity, VerificationPolicy
from chalicelib.verification.ports import FaceGate, IdentityAuthority
from chalicelib.verification.service import VerificationService
from chalicelib.verification.uploads import UploadService
from chalicelib.verification.views import FaceCheckOutcome
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeHasher
from tests.fakes.evidence import FakeEvidenceLog
from tests.fakes.verification import (
    FakeAttempts,
    FakeDocumentStore,
    FakeFaceEngine,
    FakeFlows,
    FakeLivenessEngine,
    FakeLivenessSessions,
    FakeOcr,
    FakeReviewCases,
)

OWNER = "dealer-1"
NAME = "王小明"
NUMBER = "110101199003076632"
#: Another valid number, differing from ``NUMBER`` at positions 15, 16 and 18.
OTHER_NUMBER = "110101199003071233"


@cache
def photo(width: int = 800, height: int = 600, seed: int = 0) -> bytes:
    """A photo-sized JPEG (noise over gradients); ``seed`` makes a different one."""
    noise = Image.effect_noise((width, height), 40 + seed)
    ramp = Image.linear_gradient("L").resize((width, height))
    out = io.BytesIO()
    Image.merge("RGB", [noise, ramp, Image.blend(noise, ramp, 0.5)]).save(out, "JPEG")
    return out.getvalue()


@cache
def frame(seed: int = 0) -> bytes:
    """A small JPEG frame of a liveness burst."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (seed, 100, 150)).save(out, "JPEG")
    return out.getvalue()


def id_front_lines(number: str = NUMBER, name: str = NAME) -> tuple[str, ...]:
    """What OCR reads on the front of the ID card of ``number``."""
    return (
        "姓名" + name,
        "性别男民族汉",
        "出生1990年3月7日",
        "住址北京市东城区景山前街4号",
        "公民身份号码" + number,
    )


class World:
    """Every port of the context faked; ``service`` is the context's entry point."""

    def __init__(
        self,
        *,
        attempts_per_flow: int = 3,
        attempts_per_person_day: int = 5,
        gates: Callable[[World], Sequence[FaceGate]] = lambda world: (),
        authority: IdentityAuthority | None = None,
        authority_unavailable: UnavailablePolicy = "retry",
    ) -> None:
        ids = count(1)
        self.clock = FakeClock()
        self.flows = FakeFlows()
        self.attempts = FakeAttempts()
        self.sessions = FakeLivenessSessions(self.attempts, self.flows)
        self.cases = FakeReviewCases()
        self.store = FakeDocumentStore()
        self.faces = FakeFaceEngine()
        self.ocr = FakeOcr()
        self.ocr.say(*id_front_lines())
        self.liveness = FakeLivenessEngine()
        self.evidence = FakeEvidenceLog(clock=self.clock)
        self.policy = VerificationPolicy(
            face_threshold=50.0,
            attempts_per_flow=attempts_per_flow,
            attempts_per_person_day=attempts_per_person_day,
        )
        self.service = VerificationService(
            flows=self.flows,
            attempts=self.attempts,
            sessions=self.sessions,
            cases=self.cases,
            uploads=UploadService(self.store, self.faces),
            ocr=self.ocr,
            faces=self.faces,
            liveness=self.liveness,
            evidence=self.evidence,
            hasher=FakeHasher(),
            policy=self.policy,
            gates=gates(self),
            authority=authority,
            authority_unavailable=authority_unavailable,
            clock=self.clock,
            new_id=lambda: f"{next(ids):04d}",
        )

    # --- steps a story takes as its "given" ----------------------------------------------------

    def open(self, owner: str = OWNER, purpose: FlowPurpose = FlowPurpose.REGISTRATION) -> str:
        return self.service.open_flow(owner, purpose).flow_id

    def type_identity(self, flow_id: str, owner: str = OWNER, number: str = NUMBER, name: str = NAME) -> None:
        identity = TypedIdentity(id_type="resident_id", id_number=number, name=name)
        self.service.set_identity(flow_id, owner, identity)

    def raw_upload(self, flow_id: str, kind: DocumentKind, data: bytes, owner: str = OWNER) -> str:
        """Presign and do what the client does with the form; the raw key. An ID front comes after the
        biometric consent (its portrait is face processing), as in the client."""
        if kind is DocumentKind.ID_FRONT:
            self.consent(flow_id, owner)
        post = self.service.presign_upload(flow_id, owner, kind, "image/jpeg")
        self.store.upload(post.key, data)
        return post.key

    def upload(self, flow_id: str, kind: DocumentKind, data: bytes | None = None, owner: str = OWNER) -> str:
        """Upload and complete a photo; the stored key."""
        key = self.raw_upload(flow_id, kind, data or photo(), owner)
        return self.service.complete_upload(flow_id, owner, kind, key).key

    def consent(self, flow_id: str, owner: str = OWNER) -> None:
        doc = current_consent(ConsentKind.BIOMETRIC_CONSENT)
        self.service.give_biometric_consent(flow_id, owner, doc.version, doc.sha256, {"ip": "203.0.113.9"})

    def ready(self, owner: str = OWNER, number: str = NUMBER) -> str:
        """A flow ready for face checks: identity typed, ID front uploaded and read, consent given."""
        self.ocr.say(*id_front_lines(number))
        flow_id = self.open(owner)
        self.type_identity(flow_id, owner, number)
        self.upload(flow_id, DocumentKind.ID_FRONT, owner=owner)
        self.service.read_document(flow_id, owner, DocumentKind.ID_FRONT)
        self.consent(flow_id, owner)
        return flow_id

    def attempt(self, flow_id: str, owner: str = OWNER, face: bytes | None = None) -> FaceCheckOutcome:
        """One liveness check and portrait match; ``face`` is the live capture (the first frame)."""
        session = self.service.start_liveness(flow_id, owner)
        frames = [face or frame(), frame(1)]
        return self.service.complete_liveness(flow_id, owner, session.session_id, frames)

    def evidence_kinds(self, flow_id: str) -> list[str]:
        return [e.kind.value for e in self.evidence.entries(flow_id)]
