"""Verification-flow state on DynamoDB: flows, attempt counters, liveness sessions, review cases.

Every change is a conditional write: a flow at the version read, both attempt quotas in one
transaction, a liveness session claimed once (with the attempt it spends and the flow's verdict, in
one transaction), a review case decided once.
"""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pynamodb.attributes import MapAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.base import scan_upto, utc_aware
from chalicelib.adapters.dynamo.evidence import (
    APPEND_ATTEMPTS,
    BACKOFF_CAP_SECONDS,
    RETRYABLE,
    DynamoEvidenceLog,
    JoinedPut,
    append_contended,
    move_head_in,
    put_entry_in,
    read_head,
)
from chalicelib.adapters.dynamo.models import (
    PURGE_GRACE_SECONDS,
    AttemptCounterModel,
    EvidenceModel,
    FlowModel,
    LivenessSessionModel,
    ReviewCaseModel,
)
from chalicelib.adapters.dynamo.once import new_token
from chalicelib.adapters.dynamo.opens import OwnerOpens
from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.kernel.errors import BadRequest, Conflict
from chalicelib.verification.domain.evidence import ChainHead, EvidenceEntry, EvidenceKind
from chalicelib.verification.domain.flows import (
    AttemptsLeft,
    CheckVerdict,
    Flow,
    FlowPurpose,
    FlowStatus,
    LivenessSession,
    ReviewCase,
    ReviewReason,
    ReviewStatus,
    TypedIdentity,
    attempts_exhausted,
    case_decided,
    case_not_found,
    session_expired,
    session_used,
)
from chalicelib.verification.ports import (
    AttemptCharge,
    AttemptCounters,
    EvidenceLog,
    EvidenceNote,
    FlowRepository,
    LivenessSessions,
    ReviewCases,
    SealedFlow,
)

_IDENTITY_FIELDS = ("id_type", "id_number", "name", "address", "company_name", "uscc", "id_validity")
_FLOW_OPENS = OwnerOpens("flows")


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def held_by(owner: str, at: datetime) -> Callable[[], tuple[set[str], set[str]]]:
    """How the owner's turn of flow opens (``dynamo.opens``) reads what the owner holds: every flow id
    the owner index shows, and those still open at ``at``. Read when the turn is taken, not before."""

    def held() -> tuple[set[str], set[str]]:
        seen: set[str] = set()
        still_open: set[str] = set()
        for item in FlowModel.by_owner.query(owner):
            seen.add(item.flow_id)
            if item.status == FlowStatus.OPEN.value and int(item.expires_epoch) > _epoch(at):
                still_open.add(item.flow_id)
        return seen, still_open

    return held


def _values(attribute: MapAttribute[str, Any] | None) -> dict[str, Any]:
    return dict(attribute.attribute_values) if attribute is not None else {}


def flow_changed() -> Conflict:
    """The flow was changed by another request since it was read (``flow.changed``, 409)."""
    return Conflict(
        "flow.changed",
        "办理流程已被其他操作修改，请刷新后重试",
        "The flow changed meanwhile; reload it and try again",
    )


class DynamoFlowRepository(FlowRepository):
    """Flows with the typed identity sealed under a KMS data key bound to the flow id."""

    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    @staticmethod
    def _context(flow_id: str) -> str:
        return f"flow:{flow_id}"

    def _seal(self, flow: Flow) -> SealedFields | None:
        """The typed identity sealed under a new data key (None: no identity yet)."""
        if flow.identity is None:
            return None
        fields = {k: v for k, v in flow.identity.model_dump().items() if v is not None}
        return self._cipher.seal(self._context(flow.flow_id), {k: str(v) for k, v in fields.items()})

    @staticmethod
    def item_of(flow: Flow, sealed: SealedFields | None) -> FlowModel:
        item = FlowModel(
            flow.flow_id,
            owner=flow.owner,
            purpose=flow.purpose.value,
            status=flow.status.value,
            version=flow.version,
            person_hash=flow.person_hash,
            documents=MapAttribute(**flow.documents) if flow.documents else None,  # type: ignore[no-untyped-call]
            checks=MapAttribute(**{k: v.value for k, v in flow.checks.items()})  # type: ignore[no-untyped-call]
            if flow.checks
            else None,
            created_at=flow.created_at,
            updated_at=flow.updated_at,
            expires_epoch=_epoch(flow.expires_at),
            purge_after_epoch=_epoch(flow.expires_at) + PURGE_GRACE_SECONDS,
        )
        if sealed is not None:
            item.data_key = sealed.data_key
            item.identity_enc = MapAttribute(**sealed.values)  # type: ignore[no-untyped-call]
        return item

    def _flow(self, item: FlowModel) -> Flow:
        identity = None
        if item.identity_enc is not None and item.data_key is not None:
            values = {k: bytes(v) for k, v in item.identity_enc.attribute_values.items()}
            clear = self._cipher.open(self._context(item.flow_id), SealedFields(item.data_key, values))
            identity = TypedIdentity.model_validate({k: clear[k] for k in _IDENTITY_FIELDS if k in clear})
        return Flow(
            flow_id=item.flow_id,
            owner=item.owner,
            purpose=FlowPurpose(item.purpose),
            status=FlowStatus(item.status),
            version=int(item.version),
            person_hash=item.person_hash,
            identity=identity,
            documents={
                k: str(v) for k, v in (item.documents.attribute_values if item.documents else {}).items()
            },
            checks={
                k: CheckVerdict(str(v))
                for k, v in (item.checks.attribute_values if item.checks else {}).items()
            },
            created_at=utc_aware(item.created_at),
            updated_at=utc_aware(item.updated_at),
            expires_at=datetime.fromtimestamp(int(item.expires_epoch), UTC),
        )

    def create(self, flow: Flow) -> None:
        self.item_of(flow, self._seal(flow)).save(condition=FlowModel.flow_id.does_not_exist())

    def create_if_room(self, flow: Flow, limit: int, now: datetime) -> bool:
        # The turn and the flow in one transaction: a failed create counts no open.
        item = self.item_of(flow, self._seal(flow))
        created = _FLOW_OPENS.create_if_room(
            flow.owner,
            flow.flow_id,
            limit,
            now,
            held_by(flow.owner, now),
            item,
            FlowModel.flow_id.does_not_exist(),
        )
        if created is None:
            # Refused for an item of that id: this very create, when a retry of it (its reply lost) met
            # its own first attempt; anything else is a conflict.
            stored = self.get(flow.flow_id)
            if stored is not None and (stored.owner, stored.version, stored.created_at) == (
                flow.owner,
                flow.version,
                flow.created_at,
            ):
                return True
            raise flow_changed()
        return created

    def get(self, flow_id: str) -> Flow | None:
        try:
            return self._flow(FlowModel.get(flow_id, consistent_read=True))
        except DoesNotExist:
            return None

    def save(self, flow: Flow) -> Flow:
        return self.save_sealed(self.seal(flow))

    def seal(self, flow: Flow) -> SealedFlow:
        return SealedFlow(flow, self._seal(flow))

    def save_sealed(self, ready: SealedFlow) -> Flow:
        flow = ready.flow
        try:
            self.item_of(flow, ready.sealed).save(condition=FlowModel.version == flow.version - 1)
        except PutError as exc:
            raise flow_changed() from exc
        return flow

    def save_noted(
        self,
        ready: SealedFlow,
        evidence: EvidenceLog,
        kind: EvidenceKind,
        actor: str,
        public: Mapping[str, Any],
    ) -> Flow:
        """The flow's put joins the entry's transaction (the DynamoDB evidence log): both or neither."""
        if not isinstance(evidence, DynamoEvidenceLog):
            return super().save_noted(ready, evidence, kind, actor, public)
        flow = ready.flow
        put = JoinedPut(self.item_of(flow, ready.sealed), FlowModel.version == flow.version - 1, flow_changed)
        evidence.append_with(flow.flow_id, kind, actor, public, puts=[put])
        return flow

    def open_count(self, owner: str, now: datetime) -> int:
        condition = (FlowModel.status == FlowStatus.OPEN.value) & (FlowModel.expires_epoch > _epoch(now))
        return sum(1 for _ in FlowModel.by_owner.query(owner, filter_condition=condition))

    def expired(self, now: datetime, limit: int) -> list[Flow]:
        return [self._flow(i) for i in scan_upto(FlowModel, FlowModel.expires_epoch < _epoch(now), limit)]

    def delete_expired(self, flow: Flow, now: datetime) -> bool:
        try:
            FlowModel(flow.flow_id).delete(condition=FlowModel.expires_epoch < _epoch(now))
        except DeleteError:
            return False
        return True


class DynamoAttemptCounters(AttemptCounters):
    """``flow#<id>`` and ``person#<hash>#<day>`` counters, incremented together or not at all."""

    @staticmethod
    def _keys(flow_id: str, person_hash: str, day: date) -> tuple[str, str]:
        return f"flow#{flow_id}", f"person#{person_hash}#{day.isoformat()}"

    @staticmethod
    def _tally(counter_id: str) -> int:
        try:
            return int(AttemptCounterModel.get(counter_id, consistent_read=True).tally)
        except DoesNotExist:
            return 0

    def left(self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int) -> AttemptsLeft:
        flow_key, person_key = self._keys(flow_id, person_hash, day)
        return AttemptsLeft(
            flow=max(0, per_flow - self._tally(flow_key)),
            person_today=max(0, per_day - self._tally(person_key)),
        )

    def consume(
        self, flow_id: str, person_hash: str, day: date, per_flow: int, per_day: int, expires_at: datetime
    ) -> AttemptsLeft:
        flow_key, person_key = self._keys(flow_id, person_hash, day)
        limits = ((flow_key, per_flow), (person_key, per_day))
        try:
            with TransactWrite(connection=AttemptCounterModel._get_connection().connection) as tx:
                for key, limit in limits:
                    tx.update(
                        AttemptCounterModel(key),
                        actions=[
                            AttemptCounterModel.tally.add(1),
                            AttemptCounterModel.expires_epoch.set(_epoch(expires_at)),
                        ],
                        condition=AttemptCounterModel.tally.does_not_exist()
                        | (AttemptCounterModel.tally < limit),
                    )
        except TransactWriteError as exc:
            reasons = exc.cancellation_reasons or []
            if reasons and reasons[0] is not None and reasons[0].code == "ConditionalCheckFailed":
                raise attempts_exhausted("flow", per_flow) from exc
            if len(reasons) > 1 and reasons[1] is not None and reasons[1].code == "ConditionalCheckFailed":
                raise attempts_exhausted("person_day", per_day) from exc
            raise
        return self.left(flow_id, person_hash, day, per_flow, per_day)


@dataclass(frozen=True)
class _ChainedNotes:
    """Notes made entries chained from ``head``, one after the other, with their items to put."""

    head: ChainHead
    entries: list[EvidenceEntry]
    items: list[EvidenceModel]


class _EvidenceMoved(Exception):
    """Only the evidence items of a transaction were refused: another entry was chained meanwhile."""


def _chain_notes(evidence: EvidenceLog, flow_id: str, notes: Sequence[EvidenceNote]) -> _ChainedNotes:
    """``notes`` chained after the flow's head as read now (the head then moves once, to the last)."""
    assert isinstance(evidence, DynamoEvidenceLog)
    head = read_head(flow_id)
    entries: list[EvidenceEntry] = []
    items: list[EvidenceModel] = []
    after = head
    for note in notes:
        entry, item = evidence.prepare(after, flow_id, note.kind, note.actor, note.public, None)
        entries.append(entry)
        items.append(item)
        after = ChainHead(last_seq=entry.seq, last_hash=entry.hash)
    return _ChainedNotes(head, entries, items)


class DynamoLivenessSessions(LivenessSessions):
    def create(self, session: LivenessSession) -> None:
        item = LivenessSessionModel(
            session.session_id,
            flow_id=session.flow_id,
            owner=session.owner,
            person_hash=session.person_hash,
            engine=session.engine,
            provider_session_id=session.provider_session_id,
            challenge_json=json.dumps(session.challenge, sort_keys=True),
            flow_version=session.flow_version,
            client_json=json.dumps(session.client, sort_keys=True),
            created_at=session.created_at,
            expires_at=session.expires_at,
            expires_epoch=_epoch(session.expires_at) + 86_400,  # kept a day for the record, then purged
        )
        try:
            item.save(condition=LivenessSessionModel.session_id.does_not_exist())
        except PutError as exc:
            raise Conflict(
                "liveness.session_exists", "活体检测会话已存在", "The liveness session already exists"
            ) from exc

    def get(self, session_id: str) -> LivenessSession | None:
        try:
            item = LivenessSessionModel.get(session_id, consistent_read=True)
        except DoesNotExist:
            return None
        return LivenessSession(
            session_id=item.session_id,
            flow_id=item.flow_id,
            owner=item.owner,
            person_hash=item.person_hash,
            engine=item.engine,
            provider_session_id=item.provider_session_id,
            challenge=json.loads(item.challenge_json),
            created_at=utc_aware(item.created_at),
            expires_at=utc_aware(item.expires_at),
            used_at=utc_aware(item.used_at) if item.used_at else None,
            flow_version=int(item.flow_version) if item.flow_version is not None else None,
            client=json.loads(item.client_json) if item.client_json else {},
        )

    def claim(self, session_id: str, now: datetime) -> bool:
        try:
            LivenessSessionModel(session_id).update(
                actions=[LivenessSessionModel.used_at.set(now)],
                condition=LivenessSessionModel.session_id.exists()
                & LivenessSessionModel.used_at.does_not_exist()
                & (LivenessSessionModel.expires_at > now),
            )
        except UpdateError:
            return False
        return True

    def claim_counting(
        self,
        session_id: str,
        now: datetime,
        charge: AttemptCharge,
        ready: SealedFlow,
        evidence: EvidenceLog,
        notes: Sequence[EvidenceNote] = (),
    ) -> None:
        """One transaction: the flow's put at the version read, the notes' entries (each put if its seq
        is free), the session's claim, both attempt counters and the evidence head moved once, to the
        last note. Each attempt's ``ClientRequestToken`` makes botocore's retry of one whose reply was
        lost a success in DynamoDB (never a second claim refusing the first).

        A refusal of the evidence items alone (another entry chained meanwhile: a seq taken, the head
        moved, or a transaction on them in flight) is no refusal of the claim: the head is read again
        and the notes chained after it, as ``DynamoEvidenceLog.append`` does. An evidence log that is not
        on DynamoDB cannot join: the notes are appended after the claim."""
        joined = bool(notes) and isinstance(evidence, DynamoEvidenceLog)
        for attempt in range(APPEND_ATTEMPTS):
            chained = _chain_notes(evidence, ready.flow.flow_id, notes) if joined else None
            try:
                self._claim_once(session_id, now, charge, ready, chained)
            except _EvidenceMoved:
                time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, 0.005 * 2**attempt)))
                continue
            if not joined:
                for note in notes:
                    evidence.append(ready.flow.flow_id, note.kind, note.actor, note.public)
            return
        raise append_contended(ready.flow.flow_id)

    def _claim_once(
        self,
        session_id: str,
        now: datetime,
        charge: AttemptCharge,
        ready: SealedFlow,
        chained: _ChainedNotes | None,
    ) -> None:
        """One try of ``claim_counting``'s transaction; ``_EvidenceMoved`` when only its evidence items
        were refused (to be chained again after the entry that moved the head)."""
        flow = ready.flow
        flow_key, person_key = DynamoAttemptCounters._keys(charge.flow_id, charge.person_hash, charge.day)
        limits = ((flow_key, charge.per_flow), (person_key, charge.per_day))
        items = chained.items if chained is not None else []
        try:
            with TransactWrite(
                connection=LivenessSessionModel._get_connection().connection, client_request_token=new_token()
            ) as tx:
                put = DynamoFlowRepository.item_of(flow, ready.sealed)
                tx.save(put, condition=FlowModel.version == flow.version - 1)
                for item in items:
                    put_entry_in(tx, item)
                tx.update(
                    LivenessSessionModel(session_id),
                    actions=[LivenessSessionModel.used_at.set(now)],
                    condition=LivenessSessionModel.session_id.exists()
                    & LivenessSessionModel.used_at.does_not_exist()
                    & (LivenessSessionModel.expires_at > now),
                )
                for key, limit in limits:
                    tx.update(
                        AttemptCounterModel(key),
                        actions=[
                            AttemptCounterModel.tally.add(1),
                            AttemptCounterModel.expires_epoch.set(_epoch(charge.expires_at)),
                        ],
                        condition=AttemptCounterModel.tally.does_not_exist()
                        | (AttemptCounterModel.tally < limit),
                    )
                if chained is not None:
                    move_head_in(tx, chained.head, chained.entries[-1])
        except TransactWriteError as exc:
            # The reasons in the order sent (PynamoDB sends the puts, then the updates): the flow's put,
            # the entries' puts, the claim, the two counters, then the evidence head.
            reasons = [r.code if r is not None else None for r in exc.cancellation_reasons or []]
            n = len(items)

            def code(i: int) -> str | None:
                return reasons[i] if i < len(reasons) else None

            claim, flow_quota, day_quota = n + 1, n + 2, n + 3
            if code(claim) == "ConditionalCheckFailed":
                latest = self.get(session_id)
                if latest is not None and latest.used_at is None:
                    raise session_expired() from exc
                raise session_used() from exc
            if code(flow_quota) == "ConditionalCheckFailed":
                raise attempts_exhausted("flow", charge.per_flow) from exc
            if code(day_quota) == "ConditionalCheckFailed":
                raise attempts_exhausted("person_day", charge.per_day) from exc
            if code(0) == "ConditionalCheckFailed":
                raise flow_changed() from exc
            evidence_items = [*range(1, n + 1), n + 4] if chained is not None else []
            others = {code(i) for i in range(len(reasons)) if i not in evidence_items} - {None, "None"}
            moved = {code(i) for i in evidence_items} - {None, "None"}
            if moved and moved <= RETRYABLE and not others:
                raise _EvidenceMoved from exc
            raise

    def count_preview(self, session_id: str, limit: int) -> int | None:
        item = LivenessSessionModel(session_id)
        try:
            item.update(
                actions=[LivenessSessionModel.previews.add(1)],
                condition=LivenessSessionModel.session_id.exists()
                & (LivenessSessionModel.previews.does_not_exist() | (LivenessSessionModel.previews < limit)),
            )
        except UpdateError:
            return None
        return max(0, limit - int(item.previews or 0))


def _case(item: ReviewCaseModel) -> ReviewCase:
    return ReviewCase(
        case_id=item.case_id,
        flow_id=item.flow_id,
        owner=item.owner,
        purpose=FlowPurpose(item.purpose),
        reason=ReviewReason(item.reason),
        status=ReviewStatus(item.status),
        created_at=utc_aware(item.created_at),
        summary=json.loads(item.summary_json),
        decided_at=utc_aware(item.decided_at) if item.decided_at else None,
        decided_by=item.decided_by,
        decision_note=item.decision_note,
        case_number=item.case_number,
    )


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(
            "request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor"
        ) from exc
    if not isinstance(key, dict):
        raise BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")
    return key


class DynamoReviewCases(ReviewCases):
    def open(self, case: ReviewCase) -> ReviewCase:
        try:
            ReviewCaseModel(
                case.case_id,
                flow_id=case.flow_id,
                owner=case.owner,
                purpose=case.purpose.value,
                reason=case.reason.value,
                status=case.status.value,
                created_at=case.created_at,
                summary_json=json.dumps(case.summary, sort_keys=True, ensure_ascii=False),
                case_number=case.case_number,
            ).save(condition=ReviewCaseModel.case_id.does_not_exist())
        except PutError:
            existing = self.get(case.case_id)
            if existing is None:
                raise
            return existing
        return case

    def get(self, case_id: str) -> ReviewCase | None:
        try:
            return _case(ReviewCaseModel.get(case_id, consistent_read=True))
        except DoesNotExist:
            return None

    def page(
        self, status: ReviewStatus, limit: int, cursor: str | None
    ) -> tuple[list[ReviewCase], str | None]:
        result = ReviewCaseModel.by_status.query(
            status.value, limit=limit, last_evaluated_key=_decode_cursor(cursor)
        )
        cases = [_case(item) for item in result]
        return cases, _encode_cursor(result.last_evaluated_key)

    def decide(
        self, case_id: str, status: ReviewStatus, by: str, note: str | None, at: datetime
    ) -> ReviewCase:
        actions: list[Action] = [
            ReviewCaseModel.status.set(status.value),
            ReviewCaseModel.decided_at.set(at),
            ReviewCaseModel.decided_by.set(by),
        ]
        if note:
            actions.append(ReviewCaseModel.decision_note.set(note))
        try:
            ReviewCaseModel(case_id).update(
                actions=actions,
                condition=ReviewCaseModel.status == ReviewStatus.OPEN.value,
            )
        except UpdateError as exc:
            case = self.get(case_id)
            if case is None:
                raise case_not_found() from exc
            raise case_decided(case) from exc
        decided = self.get(case_id)
        assert decided is not None
        return decided
