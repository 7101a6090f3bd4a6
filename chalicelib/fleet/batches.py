"""Building, submitting and resubmitting a fleet batch (单位车辆实名登记 / 解除登记, seed 000 §3–§4).

A batch is built step by step by the enterprise's legal-person account or an approved agent acting for
it; who acts for which enterprise is re-read on every call, and a batch of another enterprise is told
unknown (404). Every write is recorded in the enterprise action log.

The vehicles come from the OEM's inventory (one, pasted, or a CSV text with per-row errors: the good rows
go on); the selling dealer from the vehicles' sales records; the responsible person's phone by SMS code;
the responsible person's identity, ID photos, face and the documents through the batch's verification
flow (the batch reads the flow's checks to know which steps are done). Submitting stores ``submitted``
first and then starts the review workflow, named by the batch id: a submit retried after a crash starts
the same execution, never a second one. A resubmission (the reviewer asked for named documents) needs
each named document replaced since the request, and resumes the workflow.

The review side (``chalicelib.fleet.cases`` and the task handlers) moves a submitted batch on through
``set_status`` and ``record_progress``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from chalicelib.fleet.batch_ports import BatchStore, FleetInventory, VehicleFacts
from chalicelib.fleet.csv_rows import VinRow
from chalicelib.fleet.domain import (
    FINAL_STATUSES,
    MAX_BATCH_VEHICLES,
    BatchKind,
    BatchStatus,
    BatchStep,
    DocumentSlot,
    FleetBatch,
    batch_changed,
    batch_not_found,
    batch_too_large,
    chunk_of,
    document_slots,
    new_batch_id,
    steps_of,
    wrong_status,
)
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, NotFound
from chalicelib.kernel.paging import MAX_PAGE
from chalicelib.kernel.personal import mask_name
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.domain.flows import CheckName, CheckVerdict, Flow, FlowPurpose, FlowStatus

if TYPE_CHECKING:
    from chalicelib.core.auth import Principal

_ACCEPTED = (CheckVerdict.PASSED, CheckVerdict.APPROVED)

#: The flow's document kind of each batch document slot.
SLOT_DOCUMENTS: dict[DocumentSlot, DocumentKind] = {
    DocumentSlot.BUSINESS_LICENCE: DocumentKind.BUSINESS_LICENCE,
    DocumentSlot.AUTHORIZATION_LETTER: DocumentKind.AUTHORIZATION_LETTER,
    DocumentSlot.CUSTODY_AGREEMENT: DocumentKind.CUSTODY_AGREEMENT,
    DocumentSlot.RESPONSIBLE_ID_FRONT: DocumentKind.ID_FRONT,
    DocumentSlot.RESPONSIBLE_ID_BACK: DocumentKind.ID_BACK,
}

FLOW_PURPOSES: dict[BatchKind, FlowPurpose] = {
    BatchKind.REGISTRATION: FlowPurpose.ENTERPRISE_REGISTRATION,
    BatchKind.DEREGISTRATION: FlowPurpose.ENTERPRISE_DEREGISTRATION,
}

#: The custody agreement's acknowledgement (车卡分管协议) as a consent text kind, and its version (the
#: printable template ``templates/custody_agreement.html``).
CUSTODY_TEXT = "custody_agreement"
CUSTODY_TEXT_VERSION = "v1"

#: A submitted batch's flow is evidence: kept (closed to change) at least this long.
EVIDENCE_KEPT = timedelta(days=3 * 365)
#: How long a draft's flow waits for the batch to be built (then it expires like an abandoned flow).
DRAFT_WINDOW = timedelta(days=30)
#: A flow reopened for a resubmission stays open this long (the workflow waits 30 days).
RESUBMISSION_WINDOW = timedelta(days=31)


class BatchFlows(Protocol):
    """What a batch needs of the verification flows (``chalicelib.verification.flows.Flows``)."""

    def open_flow(self, owner: str, purpose: FlowPurpose) -> Flow: ...

    def find(self, flow_id: str) -> Flow | None: ...

    def save(self, flow: Flow, **changes: Any) -> Flow: ...

    def keep(self, flow: Flow, until: datetime) -> Flow: ...

    def note(self, flow_id: str, kind: EvidenceKind, actor: str, details: dict[str, Any]) -> None: ...


class PhoneCodes(Protocol):
    """The SMS codes (``chalicelib.sms.codes.SmsCodeService``)."""

    def phone_hash(self, phone: str) -> str: ...

    def send(self, phone: str, purpose: Any, *, caller: str | None = None) -> Any: ...

    def check(self, phone: str, purpose: Any, code: str, caller: str | None = None) -> None: ...


class ActionLog(Protocol):
    """The enterprise action log (``chalicelib.enterprise.actions.EnterpriseActions``)."""

    def record(
        self, uscc: str, principal: Principal, action: str, details: Mapping[str, str] | None = None
    ) -> Any: ...


class WorkflowStarter(Protocol):
    """Starts the review workflow of a batch (``chalicelib.fleet.workflow.Workflow``)."""

    def start(self, batch_id: str, payload: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class LicenceReading:
    """The business licence as OCR read it."""

    uscc: str | None
    company_name: str | None


@dataclass(frozen=True)
class RowOutcome:
    """One row of vehicles given: accepted, or refused with why."""

    line: int
    vin: str
    error: DomainError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Added:
    """Vehicles added to a batch: those added and every row's outcome."""

    batch: FleetBatch
    added: tuple[str, ...]
    rows: tuple[RowOutcome, ...]


@dataclass(frozen=True)
class BatchProgress:
    """A batch with what its flow says: the steps done and missing, the next one, which documents are
    present."""

    batch: FleetBatch
    done: tuple[BatchStep, ...]
    missing: tuple[BatchStep, ...]
    documents: dict[DocumentSlot, bool]

    @property
    def step(self) -> BatchStep | None:
        """The next step to do (``None`` when every step is done)."""
        return self.missing[0] if self.missing else None


@dataclass(frozen=True)
class DealerChoice:
    """A dealer that sold vehicles of the batch, and how many."""

    dealer_code: str
    vehicles: int


def vehicle_unknown() -> InvalidField:
    return InvalidField(
        "fleet.vehicle_unknown", "车辆不在车辆信息库中", "The vehicle is not in the inventory", field="vin"
    )


def vehicle_registered() -> InvalidField:
    return InvalidField(
        "fleet.vehicle_registered",
        "该车辆的车联网卡已实名登记（或正在登记）",
        "The vehicle's cards are already registered (or being registered)",
        field="vin",
    )


def vehicle_not_registered_here() -> InvalidField:
    return InvalidField(
        "fleet.vehicle_not_registered_here",
        "该车辆的车联网卡未登记在本单位名下",
        "The vehicle's cards are not registered to this enterprise",
        field="vin",
    )


def vehicle_in_open_batch(batch_id: str) -> InvalidField:
    return InvalidField(
        "fleet.vehicle_in_open_batch",
        "该车辆已在另一个办理中的批次里",
        "The vehicle is already in another open batch",
        field="vin",
        details={"batch_id": batch_id},
    )


def vehicle_already_in_batch() -> InvalidField:
    return InvalidField(
        "fleet.vehicle_already_in_batch",
        "该车辆已在本批次中",
        "The vehicle is already in this batch",
        field="vin",
    )


def vehicle_not_in_batch() -> NotFound:
    return NotFound(
        "fleet.vehicle_not_in_batch", "本批次中没有该车辆", "The vehicle is not in this batch", field="vin"
    )


def company_name_differs() -> InvalidField:
    return InvalidField(
        "fleet.company_name_mismatch",
        "填写的公司全称与营业执照不一致，请核对后重新填写",
        "The company name typed differs from the business licence",
        field="company_name",
    )


def licence_not_enterprise() -> InvalidField:
    return InvalidField(
        "fleet.licence_mismatch",
        "营业执照的统一社会信用代码或名称与本单位不一致",
        "The business licence's code or name is not this enterprise's",
        field="business_licence",
    )


def not_original_responsible() -> InvalidField:
    return InvalidField(
        "fleet.not_original_responsible",
        "解除登记须由车辆原实名登记的负责人办理",
        "De-registration must be done by the vehicles' original responsible person",
        field="responsible_id",
    )


def documents_not_replaced(slots: list[DocumentSlot]) -> Conflict:
    return Conflict(
        "fleet.documents_not_replaced",
        "请先重新上传审核要求补充的材料",
        "Upload again the documents the reviewer asked for: " + ", ".join(s.value for s in slots),
        details={"documents": [s.value for s in slots]},
    )


def registration_only() -> Conflict:
    return Conflict(
        "fleet.registration_only", "解除登记批次无需此步骤", "Only a registration batch takes this step"
    )


def _normalised(name: str) -> str:
    from chalicelib.enterprise.grants import normalise_company_name

    return normalise_company_name(name)


def same_company_name(typed: str, read: str) -> bool:
    """Two company names equal but for full-width/half-width forms and spaces."""
    return _normalised(typed) == _normalised(read)


class FleetBatches:
    def __init__(
        self,
        store: BatchStore,
        *,
        inventory: FleetInventory,
        flows: BatchFlows,
        codes: PhoneCodes,
        actions: ActionLog,
        acting: Callable[[Principal], str],
        company_of: Callable[[str], str | None],
        read_licence: Callable[[Flow], LicenceReading],
        workflow: Callable[[], WorkflowStarter],
        resubmitted: Callable[[str], None],
        consent_versions: Callable[[], dict[str, str]],
        clock: Clock = utc_now,
        new_id: Callable[[], str] = lambda: secrets.token_hex(12),
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._flows = flows
        self._codes = codes
        self._actions = actions
        self._acting = acting
        self._company_of = company_of
        self._read_licence = read_licence
        self._workflow = workflow
        self._resubmitted = resubmitted
        self._consent_versions = consent_versions
        self._clock = clock
        self._new_id = new_id

    # -- for the review side -------------------------------------------------------------------------

    def get(self, batch_id: str) -> FleetBatch | None:
        return self._store.get(batch_id)

    def set_status(
        self,
        batch_id: str,
        status: BatchStatus,
        *,
        reasons: Sequence[str] = (),
        resubmit_documents: Sequence[DocumentSlot] = (),
        expected: set[BatchStatus],
    ) -> FleetBatch:
        """Move the batch to ``status`` if it is in one of ``expected`` (``fleet.wrong_status`` else),
        with the reason codes of the decision and the documents to replace. A resubmission request
        reopens the batch's flow for the new photos; a final status lets go of the vehicles (a completed
        registration records them as registered to the enterprise under its responsible person)."""
        for _ in range(3):
            batch = self._store.get(batch_id)
            if batch is None:
                raise batch_not_found()
            if batch.status not in expected:
                raise wrong_status(batch.status, expected)
            changes: dict[str, Any] = {"status": status, "outcome_reasons": tuple(reasons)}
            if status is BatchStatus.RESUBMISSION_REQUESTED:
                slots = tuple(DocumentSlot(s) for s in resubmit_documents)
                changes["resubmit_documents"] = slots
                changes["decision_documents"] = self._reopen_for(batch, slots)
            elif resubmit_documents:
                changes["resubmit_documents"] = tuple(DocumentSlot(s) for s in resubmit_documents)
            try:
                saved = self._save(batch, **changes)
            except Conflict as err:
                if err.code == "fleet.batch_changed":
                    continue
                raise
            self._after_status(saved)
            return saved
        raise batch_changed()

    def record_progress(self, batch_id: str, cards_pushed_delta: int) -> FleetBatch:
        """Cards pushed to the operator (atomic add)."""
        return self._store.add_pushed(batch_id, cards_pushed_delta)

    @staticmethod
    def vehicles_of_chunk(batch: FleetBatch, index: int) -> tuple[str, ...]:
        """The VINs of chunk ``index`` of the batch (``CHUNK_VEHICLES`` each)."""
        return chunk_of(batch.vins, index)

    def vehicle_facts(self, vins: Iterable[str]) -> dict[str, VehicleFacts]:
        """The inventory's facts of the VINs (for the checks and the progress per vehicle)."""
        return self._inventory.vehicles(vins)

    # -- the enterprise ------------------------------------------------------------------------------

    def create(self, principal: Principal, kind: BatchKind) -> FleetBatch:
        """A new draft batch of the caller's enterprise, with its verification flow (owned by the
        caller)."""
        uscc = self._acting(principal)
        company_name = self._company_of(uscc)
        if company_name is None:
            raise batch_not_found()
        now = self._clock()
        flow = self._flows.open_flow(principal.subject, FLOW_PURPOSES[kind])
        # A batch takes longer to build than a person's registration: its flow waits as long as the draft.
        flow = self._flows.save(flow, expires_at=now + DRAFT_WINDOW)
        batch = FleetBatch(
            batch_id=new_batch_id(self._new_id()),
            uscc=uscc,
            company_name=company_name,
            kind=kind,
            status=BatchStatus.DRAFT,
            created_by=principal.subject,
            created_at=now,
            updated_at=now,
            flow_id=flow.flow_id,
        )
        self._store.create(batch)
        self._record(batch, principal, "fleet.batch_created", {"kind": kind.value})
        return batch

    def listing(
        self,
        principal: Principal,
        kind: BatchKind | None = None,
        status: BatchStatus | None = None,
        limit: int = MAX_PAGE,
        cursor: str | None = None,
    ) -> tuple[Sequence[FleetBatch], str | None]:
        uscc = self._acting(principal)
        return self._store.listing(uscc, kind, status, max(1, min(limit, MAX_PAGE)), cursor)

    def batch_of(self, principal: Principal, batch_id: str) -> FleetBatch:
        """The caller's enterprise's batch; another enterprise's is unknown."""
        uscc = self._acting(principal)
        batch = self._store.get(batch_id)
        if batch is None or batch.uscc != uscc:
            raise batch_not_found()
        return batch

    def progress(self, principal: Principal, batch_id: str) -> BatchProgress:
        return self.progress_of(self.batch_of(principal, batch_id))

    def progress_of(self, batch: FleetBatch) -> BatchProgress:
        """The steps of ``batch`` done and missing, as the batch and its flow say."""
        flow = self._flows.find(batch.flow_id) if batch.flow_id else None
        done: list[BatchStep] = []
        for step in steps_of(batch.kind):
            if self._step_done(batch, flow, step):
                done.append(step)
        missing = tuple(s for s in steps_of(batch.kind) if s not in done)
        documents = {
            slot: bool(flow and SLOT_DOCUMENTS[slot].value in flow.documents)
            for slot in document_slots(batch.kind)
        }
        return BatchProgress(batch, tuple(done), missing, documents)

    def add_vehicles(self, principal: Principal, batch_id: str, rows: Sequence[VinRow]) -> Added:
        """The good rows added to the draft batch; every row told with its outcome. More than
        ``MAX_BATCH_VEHICLES`` in all (the batch's and the well-formed new rows) →
        ``fleet.batch_too_large`` with that count, nothing added."""
        batch = self._draft(principal, batch_id)
        outcomes: dict[int, RowOutcome] = {}
        candidates = [r for r in rows if r.ok and r.vin not in batch.vins]
        # Refused before any look-up: the cost of a refusal does not grow with the rows.
        if len(batch.vins) + len(candidates) > MAX_BATCH_VEHICLES:
            raise batch_too_large(len(batch.vins) + len(candidates))
        facts = self._inventory.vehicles([r.vin for r in candidates]) if candidates else {}
        claims = self._store.claims([r.vin for r in candidates]) if candidates else {}
        registered = (
            self._store.registrations([r.vin for r in candidates])
            if candidates and batch.kind is BatchKind.DEREGISTRATION
            else {}
        )
        in_batch = set(batch.vins)
        good: list[VinRow] = []
        for row in rows:
            error = row.error or self._vehicle_error(batch, row.vin, in_batch, facts, claims, registered)
            outcomes[row.line] = RowOutcome(row.line, row.vin, error)
            if error is None:
                good.append(row)
        total = len(batch.vins) + len(good)
        if total > MAX_BATCH_VEHICLES:
            raise batch_too_large(total)
        lost = self._store.claim(batch.batch_id, [r.vin for r in good]) if good else {}
        added = []
        for row in good:
            if row.vin in lost:
                outcomes[row.line] = RowOutcome(row.line, row.vin, vehicle_in_open_batch(lost[row.vin]))
            else:
                added.append(row.vin)
        if added:
            try:
                batch = self._save(batch, vins=(*batch.vins, *added))
            except DomainError:
                self._store.release(batch.batch_id, added)
                raise
            self._record(batch, principal, "fleet.vehicles_added", {"count": str(len(added))})
        return Added(batch, tuple(added), tuple(outcomes[r.line] for r in rows))

    def _vehicle_error(
        self,
        batch: FleetBatch,
        vin: str,
        in_batch: set[str],
        facts: dict[str, VehicleFacts],
        claims: dict[str, str],
        registered: dict[str, Any],
    ) -> DomainError | None:
        if vin in in_batch:
            return vehicle_already_in_batch()
        fact = facts.get(vin)
        if fact is None:
            return vehicle_unknown()
        if batch.kind is BatchKind.REGISTRATION:
            if fact.any_registered:
                return vehicle_registered()
        else:
            by_batch = registered.get(vin)
            ours = fact.holder_uscc == batch.uscc or (by_batch is not None and by_batch.uscc == batch.uscc)
            if not fact.all_registered or not ours:
                return vehicle_not_registered_here()
        other = claims.get(vin)
        if other is not None and other != batch.batch_id:
            return vehicle_in_open_batch(other)
        return None

    def remove_vehicle(self, principal: Principal, batch_id: str, vin: str) -> FleetBatch:
        batch = self._draft(principal, batch_id)
        wanted = vin.strip().upper()
        if wanted not in batch.vins:
            raise vehicle_not_in_batch()
        saved = self._save(batch, vins=tuple(v for v in batch.vins if v != wanted))
        self._store.release(batch.batch_id, [wanted])
        self._record(saved, principal, "fleet.vehicle_removed", {"vin": wanted})
        return saved

    def dealers(self, principal: Principal, batch_id: str) -> list[DealerChoice]:
        """The dealers that sold the batch's vehicles, by how many they sold."""
        return self._dealers_of(self.batch_of(principal, batch_id))

    def _dealers_of(self, batch: FleetBatch) -> list[DealerChoice]:
        counts: dict[str, int] = {}
        for fact in self._inventory.vehicles(batch.vins).values():
            if fact.dealer_code:
                counts[fact.dealer_code] = counts.get(fact.dealer_code, 0) + 1
        return [DealerChoice(code, n) for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def choose_dealer(self, principal: Principal, batch_id: str, dealer_code: str) -> FleetBatch:
        batch = self._draft(principal, batch_id)
        if batch.kind is not BatchKind.REGISTRATION:
            raise registration_only()
        code = dealer_code.strip()
        if code not in {d.dealer_code for d in self._dealers_of(batch)}:
            raise InvalidField(
                "fleet.dealer_not_seller",
                "该经销商未销售本批次中的车辆",
                "This dealer sold none of the batch's vehicles",
                field="dealer_code",
            )
        saved = self._save(batch, dealer_code=code)
        self._record(saved, principal, "fleet.dealer_chosen", {"dealer_code": code})
        return saved

    def send_phone_code(self, principal: Principal, batch_id: str, phone: str) -> Any:
        """A code to the responsible person's phone (车辆负责人手机号)."""
        from chalicelib.sms.domain import SmsPurpose

        batch = self._draft(principal, batch_id)
        if batch.kind is not BatchKind.REGISTRATION:
            raise registration_only()
        return self._codes.send(phone, SmsPurpose.FLEET_RESPONSIBLE, caller=principal.subject)

    def verify_phone(self, principal: Principal, batch_id: str, phone: str, code: str) -> FleetBatch:
        """The responsible person's phone proven by its code (checked, and spent, last)."""
        from chalicelib.sms.domain import SmsPurpose

        batch = self._draft(principal, batch_id)
        if batch.kind is not BatchKind.REGISTRATION:
            raise registration_only()
        self._codes.phone_hash(phone)  # mobile.format before the code is spent
        mobile = phone.strip()
        self._codes.check(mobile, SmsPurpose.FLEET_RESPONSIBLE, code, principal.subject)
        saved = self._save(batch, responsible_phone=mobile, responsible_phone_verified=True)
        if batch.flow_id:
            self._flows.note(
                batch.flow_id,
                EvidenceKind.SMS_CHECKED,
                principal.subject,
                {"purpose": SmsPurpose.FLEET_RESPONSIBLE.value, "batch_id": batch.batch_id},
            )
        self._record(saved, principal, "fleet.responsible_phone_verified")
        return saved

    def accept_consents(self, principal: Principal, batch_id: str, texts: Mapping[str, str]) -> FleetBatch:
        """The custody agreement acknowledged and the IoV agreement (the registration agreement and the
        responsibility notice) accepted, each at its current version."""
        batch = self._draft(principal, batch_id)
        if batch.kind is not BatchKind.REGISTRATION:
            raise registration_only()
        current = self.consent_texts()
        unknown = sorted(set(texts) - set(current))
        if unknown:
            raise InvalidField(
                "consent.unknown_kind",
                "未知的协议",
                f"Unknown consent text: {unknown[0]}",
                field="texts",
                details={"kind": unknown[0]},
            )
        for kind, version in current.items():
            given = texts.get(kind)
            if given is None:
                raise InvalidField(
                    "consent.missing",
                    "请阅读并同意全部协议",
                    f"Accept the {kind} text",
                    field="texts",
                    details={"kind": kind},
                )
            if given != version:
                raise InvalidField(
                    "consent.outdated",
                    "协议已更新，请重新阅读并同意",
                    f"The {kind} text accepted is not the current one",
                    field="texts",
                    details={"kind": kind, "current": version},
                )
        saved = self._save(batch, consents=dict(current))
        if batch.flow_id:
            self._flows.note(
                batch.flow_id,
                EvidenceKind.CONSENT_GIVEN,
                principal.subject,
                {"batch_id": batch.batch_id, "texts": dict(current)},
            )
        self._record(saved, principal, "fleet.consents_given")
        return saved

    def consent_texts(self) -> dict[str, str]:
        """The texts a registration batch accepts: kind → current version."""
        return {CUSTODY_TEXT: CUSTODY_TEXT_VERSION, **self._consent_versions()}

    def submit(self, principal: Principal, batch_id: str, company_name: str) -> FleetBatch:
        """Submit the draft for review: every step done, the typed company name the licence's as read.
        Stored ``submitted`` first, then the workflow started (idempotently: a submit retried after a
        crash starts the same execution)."""
        batch = self.batch_of(principal, batch_id)
        if batch.status is BatchStatus.SUBMITTED and batch.execution_arn is None:
            return self._start(batch)  # the workflow did not start last time
        if batch.status is not BatchStatus.DRAFT:
            raise wrong_status(batch.status, {BatchStatus.DRAFT})
        progress = self.progress_of(batch)
        if progress.missing:
            from chalicelib.fleet.domain import steps_missing

            raise steps_missing(list(progress.missing))
        flow = self._flows.find(batch.flow_id) if batch.flow_id else None
        # The steps done say both are there.
        assert flow is not None
        assert flow.identity is not None
        reading = self._read_licence(flow)
        if reading.uscc != batch.uscc or not same_company_name(
            reading.company_name or "", batch.company_name
        ):
            raise licence_not_enterprise()
        if not same_company_name(company_name, reading.company_name or ""):
            raise company_name_differs()
        if batch.kind is BatchKind.DEREGISTRATION:
            self._check_original_responsible(batch, flow)
        now = self._clock()
        cards = sum(len(f.card_states) for f in self._inventory.vehicles(batch.vins).values())
        submitted = self._save(
            batch,
            status=BatchStatus.SUBMITTED,
            typed_company_name=company_name.strip(),
            submitted_at=now,
            responsible_id_hash=flow.person_hash,
            responsible_name_masked=mask_name(flow.identity.name),
            cards_total=cards,
        )
        self._flows.keep(flow, now + EVIDENCE_KEPT)
        self._flows.note(
            flow.flow_id,
            EvidenceKind.FLEET_BATCH_SUBMITTED,
            principal.subject,
            {
                "batch_id": batch.batch_id,
                "kind": batch.kind.value,
                "round": submitted.round,
                "vehicles": len(batch.vins),
                "cards": cards,
            },
        )
        self._record(submitted, principal, "fleet.batch_submitted", {"round": str(submitted.round)})
        return self._start(submitted)

    def _start(self, batch: FleetBatch) -> FleetBatch:
        arn = self._workflow().start(batch.batch_id, {"batch_id": batch.batch_id, "kind": batch.kind.value})
        for _ in range(3):
            try:
                return self._save(batch, execution_arn=arn)
            except Conflict as err:
                if err.code != "fleet.batch_changed":
                    raise
                fresh = self._store.get(batch.batch_id)
                if fresh is None:
                    raise batch_not_found() from err
                if fresh.execution_arn == arn:
                    return fresh
                batch = fresh
        raise batch_changed()

    def resubmit(self, principal: Principal, batch_id: str) -> FleetBatch:
        """The documents the reviewer named replaced: the batch goes back to the automatic checks (its
        round one up) and the workflow resumes."""
        batch = self.batch_of(principal, batch_id)
        if batch.status is not BatchStatus.RESUBMISSION_REQUESTED:
            raise wrong_status(batch.status, {BatchStatus.RESUBMISSION_REQUESTED})
        flow = self._flows.find(batch.flow_id) if batch.flow_id else None
        if flow is None:
            raise batch_not_found()
        stale = [
            slot
            for slot in batch.resubmit_documents
            if flow.documents.get(SLOT_DOCUMENTS[slot].value)
            in (None, batch.decision_documents.get(slot.value))
        ]
        if stale:
            raise documents_not_replaced(stale)
        now = self._clock()
        resubmitted = self._save(
            batch, status=BatchStatus.SUBMITTED, round=batch.round + 1, submitted_at=now, outcome_reasons=()
        )
        try:
            self._resubmitted(batch.batch_id)
        except Exception:
            self._save(resubmitted, status=BatchStatus.RESUBMISSION_REQUESTED, round=batch.round)
            raise
        self._flows.keep(flow, now + EVIDENCE_KEPT)
        self._flows.note(
            flow.flow_id,
            EvidenceKind.FLEET_BATCH_SUBMITTED,
            principal.subject,
            {
                "batch_id": batch.batch_id,
                "kind": batch.kind.value,
                "round": resubmitted.round,
                "replaced": [s.value for s in batch.resubmit_documents],
            },
        )
        self._record(resubmitted, principal, "fleet.batch_resubmitted", {"round": str(resubmitted.round)})
        return resubmitted

    # -- inside ----------------------------------------------------------------------------------------

    def _draft(self, principal: Principal, batch_id: str) -> FleetBatch:
        batch = self.batch_of(principal, batch_id)
        if batch.status is not BatchStatus.DRAFT:
            raise wrong_status(batch.status, {BatchStatus.DRAFT})
        return batch

    def _save(self, batch: FleetBatch, **changes: Any) -> FleetBatch:
        updated = replace(batch, **changes, version=batch.version + 1, updated_at=self._clock())
        return self._store.save(updated, batch.version)

    def _record(
        self, batch: FleetBatch, principal: Principal, action: str, details: Mapping[str, str] | None = None
    ) -> None:
        self._actions.record(batch.uscc, principal, action, {"batch_id": batch.batch_id, **(details or {})})

    def _step_done(self, batch: FleetBatch, flow: Flow | None, step: BatchStep) -> bool:
        if step is BatchStep.VEHICLES:
            return bool(batch.vins)
        if step is BatchStep.DEALER:
            return batch.dealer_code is not None
        if step is BatchStep.RESPONSIBLE_PHONE:
            return batch.responsible_phone_verified
        if step is BatchStep.CONSENTS:
            return bool(batch.consents) and batch.consents == self.consent_texts()
        if flow is None:
            return False
        if step is BatchStep.BUSINESS_LICENCE:
            identity = flow.identity
            return (
                DocumentKind.BUSINESS_LICENCE.value in flow.documents
                and flow.checks.get(CheckName.OCR_BUSINESS_LICENCE) in _ACCEPTED
                and identity is not None
                and identity.uscc == batch.uscc
                and same_company_name(identity.company_name or "", batch.company_name)
            )
        if step is BatchStep.AUTHORIZATION_LETTER:
            return DocumentKind.AUTHORIZATION_LETTER.value in flow.documents
        if step is BatchStep.CUSTODY_AGREEMENT:
            return DocumentKind.CUSTODY_AGREEMENT.value in flow.documents
        if step is BatchStep.RESPONSIBLE_IDENTITY:
            return (
                flow.identity is not None
                and DocumentKind.ID_FRONT.value in flow.documents
                and DocumentKind.ID_BACK.value in flow.documents
                and flow.checks.get(CheckName.OCR_ID_FRONT) in _ACCEPTED
                and flow.checks.get(CheckName.OCR_ID_BACK) in _ACCEPTED
                and flow.checks.get(CheckName.AUTHORITY) in _ACCEPTED
            )
        return flow.checks.get(CheckName.FACE) in _ACCEPTED  # BatchStep.FACE

    def _check_original_responsible(self, batch: FleetBatch, flow: Flow) -> None:
        """解除登记: the person of the flow is the responsible person the vehicles were registered under."""
        registered = self._store.registrations(batch.vins)
        for vin in batch.vins:
            entry = registered.get(vin)
            if (
                entry is None
                or entry.responsible_id_hash is None
                or entry.responsible_id_hash != flow.person_hash
            ):
                raise not_original_responsible()

    def _reopen_for(self, batch: FleetBatch, slots: tuple[DocumentSlot, ...]) -> dict[str, str]:
        """The flow reopened for new photos of ``slots``; the keys of those photos now."""
        flow = self._flows.find(batch.flow_id) if batch.flow_id else None
        if flow is None:
            return {}
        marks = {
            s.value: flow.documents[SLOT_DOCUMENTS[s].value]
            for s in slots
            if SLOT_DOCUMENTS[s].value in flow.documents
        }
        if flow.status is not FlowStatus.OPEN:
            self._flows.save(flow, status=FlowStatus.OPEN, expires_at=self._clock() + RESUBMISSION_WINDOW)
        return marks

    def _after_status(self, batch: FleetBatch) -> None:
        if batch.status not in FINAL_STATUSES:
            return
        if batch.status is BatchStatus.COMPLETED:
            if batch.kind is BatchKind.REGISTRATION:
                self._store.mark_registered(batch)
            else:
                self._store.mark_deregistered(batch.vins)
        self._store.release(batch.batch_id, batch.vins)
