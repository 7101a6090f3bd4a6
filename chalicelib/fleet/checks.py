"""The automatic checks of a submitted fleet batch (自动核验), run before a reviewer sees it.

Each check gives a :class:`CheckResult`: ``passed``, ``failed`` (with a reason code of
``chalicelib.fleet.reasons``) or ``warning`` (shown to the reviewer, nothing refused):

- ``uscc``: the enterprise's 统一社会信用代码 is valid (its check character) and the business licence,
  read again by OCR now, carries that code;
- ``company_name``: the licence's name as read equals the enterprise's name and the name the enterprise
  typed at submit (full-width/half-width and spaces folded, nothing else);
- ``documents``: every document of the batch is there and readable: the licence read by OCR, the letter
  and the custody agreement stored images, the responsible person's ID sides read and cross-checked with
  the identity typed (the flow's OCR checks);
- ``face``: the responsible person's face check passed (by the engines or by a reviewer);
- ``cards_per_id``: the responsible person's one-ID count (:func:`check_cards_per_id`);
- ``vehicles``: every vehicle still registrable (registration) or still registered to this enterprise
  (de-registration), and in no other open batch.

The outcome: everything passed (warnings included) → ``review``; a failed check whose reason the
enterprise may put right by replacing a document → ``resubmit``; any final one → ``rejected``.
The checks are pure over :class:`BatchFacts`; :class:`AutomaticChecks` gathers the facts through ports.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.cards.domain.inventory import Card, CardState
from chalicelib.cards.domain.lifecycle import CardLifecycle, PushKind
from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT, OPERATOR_NAMES
from chalicelib.cards.ports import InventoryRepository
from chalicelib.cards.registering import check_registrable
from chalicelib.enterprise.domain import Enterprise, EnterpriseType
from chalicelib.enterprise.grants import normalise_company_name
from chalicelib.fleet.domain import BatchKind, DocumentSlot, FleetBatch, document_slots
from chalicelib.fleet.reasons import reason
from chalicelib.kernel.errors import DomainError, NotFound
from chalicelib.kernel.operators import Operator
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow
from chalicelib.verification.domain.readings import BusinessLicence

PASSED = "passed"
FAILED = "failed"
WARNING = "warning"

REVIEW = "review"
RESUBMIT = "resubmit"
REJECTED = "rejected"

#: Where each document of a batch is kept in its verification flow (``Flow.documents`` keys).
SLOT_KEYS: dict[DocumentSlot, str] = {
    DocumentSlot.BUSINESS_LICENCE: "business_licence",
    DocumentSlot.AUTHORIZATION_LETTER: "authorization_letter",
    DocumentSlot.CUSTODY_AGREEMENT: "custody_agreement",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "id_front",
    DocumentSlot.RESPONSIBLE_ID_BACK: "id_back",
}

#: The responsible person's ID sides: read and cross-checked by the flow (a passport or permit is read
#: by a reviewer instead: approved counts as read).
_ID_CHECKS: dict[DocumentSlot, CheckName] = {
    DocumentSlot.RESPONSIBLE_ID_FRONT: CheckName.OCR_ID_FRONT,
    DocumentSlot.RESPONSIBLE_ID_BACK: CheckName.OCR_ID_BACK,
}

_DONE = frozenset({CheckVerdict.PASSED, CheckVerdict.APPROVED})

#: Stored photos are re-encoded JPEGs (``validate_image``): anything else is not a readable image.
_JPEG = b"\xff\xd8\xff"


@dataclass(frozen=True)
class CheckResult:
    """One automatic check as the reviewer and the enterprise read it: ``verdict`` ``passed``, ``failed``
    or ``warning``; ``reason_code`` (of ``chalicelib.fleet.reasons``) when it failed."""

    name: str
    verdict: str
    detail_zh: str
    detail_en: str
    reason_code: str | None = None


@dataclass(frozen=True)
class DocumentFact:
    """A document of the batch: uploaded, and readable (an image; for the licence, read by OCR; for an
    ID side, read and agreeing with the identity typed)."""

    present: bool
    readable: bool


@dataclass(frozen=True)
class VehicleFact:
    """One vehicle of the batch: its cards with their bookkeeping, and the other open batch holding it."""

    vin: str
    known: bool
    cards: tuple[tuple[Card, CardLifecycle], ...] = ()
    other_batch: str | None = None


@dataclass(frozen=True)
class BatchFacts:
    """Everything the checks look at, gathered once (no I/O in the checks)."""

    batch: FleetBatch
    enterprise: Enterprise | None
    #: The enterprise's keyed ID hash (``uscc:<code>``): the holder hash its cards carry.
    enterprise_hash: str
    licence: BusinessLicence | None
    documents: Mapping[DocumentSlot, DocumentFact]
    face: CheckVerdict | None
    #: The responsible person's active cards per operator (the one-ID counter, 第十一条).
    held_per_operator: Mapping[Operator, int] = field(default_factory=dict)
    vehicles: tuple[VehicleFact, ...] = ()


def fold(value: str | None) -> str:
    """A code as compared: full-width folded to half-width (NFKC) and every space dropped (company names
    compare as the submit compares them: ``normalise_company_name``)."""
    return "".join(unicodedata.normalize("NFKC", value or "").split())


def _passed(name: str, zh: str, en: str) -> CheckResult:
    return CheckResult(name, PASSED, zh, en)


def _failed(name: str, code: str, zh: str, en: str) -> CheckResult:
    return CheckResult(name, FAILED, zh, en, code)


def check_uscc(facts: BatchFacts) -> CheckResult:
    """The enterprise's USCC is valid and the licence as read carries it."""
    from stdnum.cn import uscc as stdnum_uscc  # the validators: not at a cold start

    code = facts.batch.uscc
    if not stdnum_uscc.is_valid(code):
        return _failed(
            "uscc",
            "enterprise_not_eligible",
            f"单位的统一社会信用代码 {code} 校验不通过",
            f"The enterprise's unified social credit code {code} is not valid",
        )
    read = facts.licence.uscc if facts.licence else None
    if not read:
        return _failed(
            "uscc",
            "licence_unreadable",
            "营业执照上的统一社会信用代码无法识别",
            "The unified social credit code cannot be read on the business licence",
        )
    if fold(read).upper() != code.upper():
        return _failed(
            "uscc",
            "uscc_mismatch",
            f"营业执照识别为 {read}，单位为 {code}",
            f"The licence reads {read}; the enterprise is {code}",
        )
    return _passed(
        "uscc", f"营业执照识别为 {read}，与单位一致", f"The licence reads {read}, the enterprise's"
    )


def check_company_name(facts: BatchFacts) -> CheckResult:
    """The licence's name as read equals the enterprise's name and the name typed at submit."""
    read = facts.licence.name if facts.licence else None
    if not read:
        return _failed(
            "company_name",
            "licence_unreadable",
            "营业执照上的单位名称无法识别",
            "The company name cannot be read on the business licence",
        )
    registered = facts.enterprise.company_name if facts.enterprise else facts.batch.company_name
    typed = facts.batch.typed_company_name
    if normalise_company_name(read) != normalise_company_name(registered):
        return _failed(
            "company_name",
            "company_name_mismatch",
            f"营业执照识别为「{read}」，单位名称为「{registered}」",
            f"The licence reads '{read}'; the enterprise is '{registered}'",
        )
    if normalise_company_name(read) != normalise_company_name(typed or ""):
        return _failed(
            "company_name",
            "company_name_mismatch",
            f"营业执照识别为「{read}」，填写为「{typed or ''}」",
            f"The licence reads '{read}'; the name typed is '{typed or ''}'",
        )
    return _passed(
        "company_name",
        f"营业执照识别为「{read}」，与单位名称及填写一致",
        f"The licence reads '{read}', as the enterprise and the name typed",
    )


#: The reason of a document that is there but not readable, by slot.
_UNREADABLE: dict[DocumentSlot, str] = {
    DocumentSlot.BUSINESS_LICENCE: "licence_unreadable",
    DocumentSlot.AUTHORIZATION_LETTER: "letter_unreadable",
    DocumentSlot.CUSTODY_AGREEMENT: "custody_agreement_incomplete",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "responsible_portrait_unusable",  # final: the face was matched to it
    DocumentSlot.RESPONSIBLE_ID_BACK: "responsible_id_unclear",
}

_SLOT_ZH: dict[DocumentSlot, str] = {
    DocumentSlot.BUSINESS_LICENCE: "营业执照",
    DocumentSlot.AUTHORIZATION_LETTER: "授权书",
    DocumentSlot.CUSTODY_AGREEMENT: "车卡保管协议",
    DocumentSlot.RESPONSIBLE_ID_FRONT: "责任人证件人像面",
    DocumentSlot.RESPONSIBLE_ID_BACK: "责任人证件国徽面",
}


def check_documents(facts: BatchFacts) -> CheckResult:
    """Every document the batch's kind needs is there and readable; the first problem names the reason
    (a missing one first), the detail lists them all."""
    missing: list[DocumentSlot] = []
    unreadable: list[DocumentSlot] = []
    for slot in document_slots(facts.batch.kind):
        fact = facts.documents.get(slot, DocumentFact(present=False, readable=False))
        if not fact.present:
            missing.append(slot)
        elif not fact.readable:
            unreadable.append(slot)
    if not missing and not unreadable:
        return _passed("documents", "材料齐全且可识别", "Every document is there and readable")
    code = "document_missing" if missing else _UNREADABLE[unreadable[0]]
    zh = "；".join(
        [f"缺少{_SLOT_ZH[s]}" for s in missing] + [f"{_SLOT_ZH[s]}无法识别或与填写不一致" for s in unreadable]
    )
    en = "; ".join(
        [f"{s.value} missing" for s in missing]
        + [f"{s.value} unreadable or not agreeing" for s in unreadable]
    )
    return _failed("documents", code, zh, en)


def check_face(facts: BatchFacts) -> CheckResult:
    """The responsible person's face check passed (the engines, or a reviewer's approval)."""
    if facts.face in _DONE:
        return _passed("face", "责任人人脸核验通过", "The responsible person's face check passed")
    state = facts.face.value if facts.face else "none"
    return _failed(
        "face",
        "responsible_id_unclear",
        "责任人人脸核验未通过",
        f"The responsible person's face check has not passed ({state})",
    )


def batch_cards_per_operator(facts: BatchFacts) -> Counter[Operator]:
    """The batch's cards per operator (every card of its vehicles)."""
    return Counter(card.operator for v in facts.vehicles for card, _ in v.cards)


def check_cards_per_id(facts: BatchFacts) -> CheckResult:
    """一证多卡 (第十一条) for the responsible person.

    第十一条 limits individual users to ``CARDS_PER_ID_LIMIT`` active cards per operator under one ID. An
    enterprise's cards are registered under its responsible person (第九条(二)), so for an 个体工商户
    (``EnterpriseType.INDIVIDUAL_BUSINESS``: its operator is a natural person) the responsible person's
    active cards per operator (the one-ID counter, keyed by the keyed hash of their ID) plus this batch's
    must stay within the limit: above it the check fails with ``cards_per_id_exceeded``, a final reason.
    For every other enterprise type the count is computed and shown to the reviewer as a ``warning`` when
    above the limit: the operator checks an enterprise's fleet (第九条).
    """
    adding = batch_cards_per_operator(facts)
    if facts.batch.kind is BatchKind.DEREGISTRATION:
        return _passed("cards_per_id", "解除登记不增加责任人名下的卡", "A de-registration adds no card")
    totals = {op: facts.held_per_operator.get(op, 0) + n for op, n in adding.items()}
    over = {op: n for op, n in totals.items() if n > CARDS_PER_ID_LIMIT}
    shown_zh = "，".join(f"{OPERATOR_NAMES[op][0]} {n} 张" for op, n in sorted(totals.items()))
    shown_en = ", ".join(f"{OPERATOR_NAMES[op][1]} {n}" for op, n in sorted(totals.items()))
    if not over:
        return _passed(
            "cards_per_id",
            f"责任人名下（含本批次）：{shown_zh or '0 张'}，未超过 {CARDS_PER_ID_LIMIT} 张",
            f"The responsible person's cards with this batch: {shown_en or '0'}, within {CARDS_PER_ID_LIMIT}",
        )
    individual = (
        facts.enterprise is not None
        and facts.enterprise.enterprise_type is EnterpriseType.INDIVIDUAL_BUSINESS
    )
    if individual:
        return _failed(
            "cards_per_id",
            "cards_per_id_exceeded",
            f"个体工商户责任人名下（含本批次）：{shown_zh}，"
            f"超过一证 {CARDS_PER_ID_LIMIT} 张的上限（第十一条）",
            f"The sole proprietor's responsible person would hold {shown_en}, above {CARDS_PER_ID_LIMIT} "
            "per ID (Article 11)",
        )
    return CheckResult(
        "cards_per_id",
        WARNING,
        f"责任人名下（含本批次）：{shown_zh}，超过 {CARDS_PER_ID_LIMIT} 张；单位用户由电信企业核查（第九条）",
        f"The responsible person would hold {shown_en}, above {CARDS_PER_ID_LIMIT}; the operator checks an "
        "enterprise's fleet (Article 9)",
    )


def _registrable(card: Card, life: CardLifecycle) -> bool:
    try:
        check_registrable(card, life)
    except DomainError:
        return False
    return True


def _still_registered(card: Card, life: CardLifecycle, enterprise_hash: str) -> bool:
    """Registered to the enterprise, or its de-registration already pushed (a retried check)."""
    if life.holder_id_hash != enterprise_hash:
        return False
    ending = life.awaiting and life.message_kind is PushKind.DEREGISTER
    return card.state is CardState.REGISTERED or ending


def check_vehicles(facts: BatchFacts) -> CheckResult:
    """Every vehicle known, with cards, each still registrable (registration) or still registered to this
    enterprise (de-registration), and in no other open batch."""
    registration = facts.batch.kind is BatchKind.REGISTRATION
    problems: list[tuple[str, str, str]] = []  # vin, zh, en
    for v in facts.vehicles:
        tail = v.vin[-6:]
        if not v.known or not v.cards:
            problems.append((v.vin, f"车辆 {tail} 不在车辆库或没有车联网卡", f"{tail}: unknown or no card"))
        elif v.other_batch:
            problems.append((v.vin, f"车辆 {tail} 已在其他批次中", f"{tail}: in batch {v.other_batch}"))
        elif registration and not all(_registrable(c, life) for c, life in v.cards):
            problems.append((v.vin, f"车辆 {tail} 的车联网卡已登记或正在办理", f"{tail}: a card is not free"))
        elif not registration and not all(
            _still_registered(c, life, facts.enterprise_hash) for c, life in v.cards
        ):
            problems.append((v.vin, f"车辆 {tail} 未登记在本单位名下", f"{tail}: not registered to it"))
    count = len(facts.vehicles)
    if not problems:
        return _passed(
            "vehicles",
            f"{count} 辆车均可{'登记' if registration else '解除登记'}",
            f"All {count} vehicles can be {'registered' if registration else 'de-registered'}",
        )
    shown = problems[:10]
    more = len(problems) - len(shown)
    return _failed(
        "vehicles",
        "vehicles_not_owned",
        "；".join(p[1] for p in shown) + (f"；另有 {more} 辆" if more else ""),
        "; ".join(p[2] for p in shown) + (f"; {more} more" if more else ""),
    )


CHECKS: tuple[Callable[[BatchFacts], CheckResult], ...] = (
    check_uscc,
    check_company_name,
    check_documents,
    check_face,
    check_cards_per_id,
    check_vehicles,
)


def run_checks(facts: BatchFacts) -> list[CheckResult]:
    """Every check, in a fixed order."""
    return [check(facts) for check in CHECKS]


def outcome_of(results: Sequence[CheckResult]) -> str:
    """``review`` when nothing failed; ``rejected`` when a failed reason is final (or unknown);
    ``resubmit`` when every failed reason may be put right by replacing a document."""
    failed = [r for r in results if r.verdict == FAILED]
    if not failed:
        return REVIEW
    for result in failed:
        found = reason(result.reason_code or "")
        if found is None or not found.resubmittable:
            return REJECTED
    return RESUBMIT


# -- gathering the facts ------------------------------------------------------------------------------


class BatchReader(Protocol):
    def get(self, batch_id: str) -> FleetBatch | None: ...


class CaseRounds(Protocol):
    def open_round(self, batch: FleetBatch, checks: list[CheckResult], outcome: str) -> dict[str, Any]: ...


class CardCounts(Protocol):
    """The card bookkeeping the checks read (``OutboxStore``)."""

    def lifecycles(self, iccids: Sequence[str]) -> dict[str, CardLifecycle]: ...

    def cards_per_id(self, id_hash: str, operator: Operator) -> int: ...


class TaskLike(Protocol):
    """What the checks need of a task message (``chalicelib.fleet.tasks.TaskMessage``)."""

    @property
    def batch_id(self) -> str: ...


def batch_not_found(batch_id: str) -> NotFound:
    return NotFound(
        "fleet.batch_not_found", "批次不存在", "The batch does not exist", details={"batch_id": batch_id}
    )


class AutomaticChecks:
    """Gathers a batch's facts through ports, runs the checks and opens the case's round.

    ``claims`` answers the batch holding each of some VINs (a vehicle is claimed by one open batch at
    most); ``read_licence`` reads a licence photo (OCR and parsing); ``enterprise_hash`` is the keyed
    hash of an enterprise's USCC, the holder hash its cards carry."""

    def __init__(
        self,
        *,
        batches: BatchReader,
        cases: CaseRounds,
        find_flow: Callable[[str], Flow | None],
        enterprise_of: Callable[[str], Enterprise | None],
        read_document: Callable[[str], bytes | None],
        read_licence: Callable[[bytes], BusinessLicence],
        inventory: InventoryRepository,
        counts: CardCounts,
        enterprise_hash: Callable[[str], str],
        claims: Callable[[Sequence[str]], Mapping[str, str]] = lambda vins: {},
    ) -> None:
        self._batches = batches
        self._cases = cases
        self._find_flow = find_flow
        self._enterprise_of = enterprise_of
        self._read_document = read_document
        self._read_licence = read_licence
        self._inventory = inventory
        self._counts = counts
        self._enterprise_hash = enterprise_hash
        self._claims = claims

    def run(self, message: TaskLike) -> dict[str, Any]:
        """The ``automatic_checks`` task: the checks recorded on the case's round, its output returned."""
        batch = self._batches.get(message.batch_id)
        if batch is None:
            raise batch_not_found(message.batch_id)
        results = run_checks(self.facts(batch))
        return self._cases.open_round(batch, results, outcome_of(results))

    def facts(self, batch: FleetBatch) -> BatchFacts:
        flow = self._find_flow(batch.flow_id) if batch.flow_id else None
        documents = flow.documents if flow else {}
        licence = None
        licence_photo = self._photo(documents, DocumentSlot.BUSINESS_LICENCE)
        if licence_photo is not None:
            licence = self._read_licence(licence_photo)
        facts_of: dict[DocumentSlot, DocumentFact] = {}
        for slot in DocumentSlot:
            present = SLOT_KEYS[slot] in documents
            facts_of[slot] = DocumentFact(present, present and self._readable(slot, flow, licence))
        vehicles = self._vehicles(batch)
        operators = {card.operator for v in vehicles for card, _ in v.cards}
        held = (
            {op: self._counts.cards_per_id(batch.responsible_id_hash, op) for op in operators}
            if batch.responsible_id_hash
            else {}
        )
        return BatchFacts(
            batch=batch,
            enterprise=self._enterprise_of(batch.uscc),
            enterprise_hash=self._enterprise_hash(batch.uscc),
            licence=licence,
            documents=facts_of,
            face=flow.checks.get(CheckName.FACE) if flow else None,
            held_per_operator=held,
            vehicles=vehicles,
        )

    def _photo(self, documents: Mapping[str, str], slot: DocumentSlot) -> bytes | None:
        key = documents.get(SLOT_KEYS[slot])
        return self._read_document(key) if key else None

    def _readable(self, slot: DocumentSlot, flow: Flow | None, licence: BusinessLicence | None) -> bool:
        assert flow is not None
        if slot is DocumentSlot.BUSINESS_LICENCE:
            return licence is not None and bool(licence.uscc or licence.name)
        if slot in _ID_CHECKS:
            return flow.checks.get(_ID_CHECKS[slot]) in _DONE
        photo = self._photo(flow.documents, slot)
        return photo is not None and photo.startswith(_JPEG)

    def _vehicles(self, batch: FleetBatch) -> tuple[VehicleFact, ...]:
        found = self._inventory.get_vehicles(batch.vins)
        cards_of = {vin: self._inventory.cards_of_vehicle(vin) for vin in batch.vins if vin in found}
        lives = self._counts.lifecycles([c.iccid for cards in cards_of.values() for c in cards])
        claimed = self._claims(batch.vins)
        return tuple(
            VehicleFact(
                vin=vin,
                known=vin in found,
                cards=tuple((c, lives[c.iccid]) for c in cards_of.get(vin, [])),
                other_batch=claimed[vin] if claimed.get(vin, batch.batch_id) != batch.batch_id else None,
            )
            for vin in batch.vins
        )


# -- the task handler, over the service the composition root provides (``chalicelib.fleet.wiring``) ----


def run_automatic_checks(message: TaskLike) -> dict[str, Any]:
    """The ``automatic_checks`` task: the batch's checks run and recorded; the case round's output."""
    from chalicelib.fleet import wiring

    service: AutomaticChecks = wiring.service("fleet_automatic_checks")
    return service.run(message)
