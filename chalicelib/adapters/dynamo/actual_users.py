"""The actual users (实际使用人) of enterprise cards on DynamoDB, and the index reads of an enterprise's
cards.

A change is one ``TransactWriteItems``: the card's head item (its version moved: two changes racing on
one card cannot both pass), the new record (sealed), the record it ends (updated under its version) and
the operator push's outbox record. An enterprise's cards are read through indexes only: its parties by
the keyed hash of its USCC (``parties.by-id-hash``), then each party's cards (``cards.by-holder``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import random
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.inventory import RETRYABLE, TRANSACT_ATTEMPTS, _card
from chalicelib.adapters.dynamo.models import CardModel, PartyModel
from chalicelib.adapters.dynamo.models_actual_users import HEAD_KEY, RECORD_PREFIX, ActualUserModel
from chalicelib.adapters.dynamo.models_outbox import OutboxModel
from chalicelib.adapters.dynamo.outbox import DynamoOutboxStore
from chalicelib.cards.domain.inventory import Card
from chalicelib.fleet.actual_users import ActualUserStore
from chalicelib.fleet.actual_users_domain import ActualUser, PushState, changed
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.kernel.errors import BadRequest
from chalicelib.kernel.personal import IdType
from chalicelib.operators.domain.outbox import OutboxRecord


def _context(iccid: str, record_id: str) -> str:
    return f"actual-users|{iccid}|{record_id}"


def _record_key(record: ActualUser) -> str:
    return f"{RECORD_PREFIX}{record.valid_from.isoformat()}#{record.record_id}"


def _bad_cursor() -> BadRequest:
    return BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")


def _encode_cursor(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc, sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[int, dict[str, Any] | None]:
    if not cursor:
        return 0, None
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        party = int(doc["p"])
        key = doc.get("k")
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise _bad_cursor() from exc
    if party < 0 or (key is not None and not isinstance(key, dict)):
        raise _bad_cursor()
    return party, key


class DynamoActualUsers(ActualUserStore):
    def __init__(self, cipher: FieldCipher, outbox: DynamoOutboxStore) -> None:
        self._cipher = cipher
        self._outbox = outbox

    # -- records ---------------------------------------------------------------------------------------

    def _record(self, m: ActualUserModel) -> ActualUser:
        assert m.record_id is not None
        assert m.data_key is not None
        assert m.name_enc is not None
        assert m.id_number_enc is not None
        assert m.phone_enc is not None
        clear = self._cipher.open(
            _context(m.iccid, m.record_id),
            SealedFields(
                m.data_key, {"name": m.name_enc, "id_number": m.id_number_enc, "phone": m.phone_enc}
            ),
        )
        assert m.valid_from is not None
        assert m.created_at is not None
        return ActualUser(
            iccid=m.iccid,
            record_id=m.record_id,
            uscc=m.uscc or "",
            name=clear["name"],
            id_type=IdType(m.id_type),
            id_number=clear["id_number"],
            phone=clear["phone"],
            valid_from=date.fromisoformat(m.valid_from),
            valid_to=date.fromisoformat(m.valid_to) if m.valid_to else None,
            created_at=utc_aware(m.created_at),
            created_by=m.created_by or "",
            id_hash=m.id_hash or "",
            ended_at=utc_aware(m.ended_at) if m.ended_at else None,
            ended_by=m.ended_by,
            push_state=PushState(m.push_state or PushState.NOT_WANTED.value),
            push_record_id=m.push_record_id,
            push_reason=m.push_reason,
            version=int(m.version),
        )

    def records(self, iccid: str) -> tuple[list[ActualUser], int]:
        head = 0
        found = []
        for item in ActualUserModel.query(iccid, scan_index_forward=False, consistent_read=True):
            if item.record_key == HEAD_KEY:
                head = int(item.version)
            else:
                found.append(self._record(item))
        return found, head

    def _new_item(self, record: ActualUser) -> ActualUserModel:
        sealed = self._cipher.seal(_context(record.iccid, record.record_id), record.clear())
        return ActualUserModel(
            record.iccid,
            _record_key(record),
            version=record.version,
            record_id=record.record_id,
            uscc=record.uscc,
            id_type=record.id_type.value,
            id_hash=record.id_hash,
            data_key=sealed.data_key,
            name_enc=sealed.values["name"],
            id_number_enc=sealed.values["id_number"],
            phone_enc=sealed.values["phone"],
            valid_from=record.valid_from.isoformat(),
            valid_to=record.valid_to.isoformat() if record.valid_to else None,
            created_at=record.created_at,
            created_by=record.created_by,
            push_state=record.push_state.value,
            push_record_id=record.push_record_id,
            push_reason=record.push_reason,
            updated_at=record.created_at,
        )

    def commit(
        self,
        iccid: str,
        head_version: int,
        written: Sequence[ActualUser],
        pushes: Sequence[OutboxRecord],
    ) -> None:
        at = utc_now()
        new_items = [self._new_item(r) for r in written if r.version == 1]  # sealed once, before retries
        push_items = [self._outbox.record_item(r) for r in pushes]
        for attempt in range(TRANSACT_ATTEMPTS):
            try:
                with TransactWrite(connection=ActualUserModel._get_connection().connection) as tx:
                    if head_version == 0:
                        tx.save(
                            ActualUserModel(iccid, HEAD_KEY, version=1),
                            condition=ActualUserModel.record_key.does_not_exist(),
                        )
                    else:
                        tx.update(
                            ActualUserModel(iccid, HEAD_KEY),
                            actions=[ActualUserModel.version.set(head_version + 1)],
                            condition=ActualUserModel.version == head_version,
                            add_version_condition=False,
                        )
                    for item in new_items:
                        tx.save(item, condition=ActualUserModel.record_key.does_not_exist())
                    for record in written:
                        if record.version > 1:
                            self._update(tx, record, at)
                    for push in push_items:
                        tx.save(push, condition=OutboxModel.record_id.does_not_exist())
                return
            except TransactWriteError as exc:
                codes = {r.code for r in exc.cancellation_reasons if r is not None}
                if codes and codes <= RETRYABLE and attempt + 1 < TRANSACT_ATTEMPTS:
                    time.sleep(random.uniform(0, 0.05 * 2**attempt))
                    continue
                if codes:
                    raise changed() from exc
                raise

    @staticmethod
    def _update(tx: TransactWrite, record: ActualUser, at: Any) -> None:
        """An existing record's end and push, under the version it was read at."""
        actions: list[Action] = [
            ActualUserModel.version.set(record.version),
            ActualUserModel.valid_to.set(record.valid_to.isoformat())
            if record.valid_to
            else ActualUserModel.valid_to.remove(),
            ActualUserModel.push_state.set(record.push_state.value),
            ActualUserModel.updated_at.set(at),
        ]
        if record.ended_at is not None and record.ended_by is not None:
            actions += [
                ActualUserModel.ended_at.set(record.ended_at),
                ActualUserModel.ended_by.set(record.ended_by),
            ]
        actions.append(
            ActualUserModel.push_record_id.set(record.push_record_id)
            if record.push_record_id
            else ActualUserModel.push_record_id.remove()
        )
        actions.append(
            ActualUserModel.push_reason.set(record.push_reason)
            if record.push_reason
            else ActualUserModel.push_reason.remove()
        )
        tx.update(
            ActualUserModel(record.iccid, _record_key(record)),
            actions=actions,
            condition=ActualUserModel.version == record.version - 1,
            add_version_condition=False,
        )

    def settle(self, record: ActualUser, state: PushState, reason: str | None) -> None:
        actions: list[Action] = [
            ActualUserModel.push_state.set(state.value),
            ActualUserModel.updated_at.set(utc_now()),
        ]
        if reason:
            actions.append(ActualUserModel.push_reason.set(reason))
        with contextlib.suppress(UpdateError):  # a later change took over: its own push decides
            ActualUserModel(record.iccid, _record_key(record)).update(
                actions=actions,
                condition=(ActualUserModel.push_record_id == record.push_record_id)
                & (ActualUserModel.push_state == PushState.PENDING.value),
            )

    # -- the enterprise's cards ------------------------------------------------------------------------

    def holder_cards(
        self, holder_id_hash: str, limit: int, cursor: str | None
    ) -> tuple[list[Card], str | None]:
        parties = sorted(p.party_id for p in PartyModel.by_id_hash.query(holder_id_hash))
        index, key = _decode_cursor(cursor)
        cards: list[Card] = []
        while index < len(parties) and len(cards) < limit:
            result = CardModel.by_holder.query(
                parties[index], limit=limit - len(cards), last_evaluated_key=key
            )
            cards.extend(_card(m) for m in result)
            key = result.last_evaluated_key
            if key:
                return cards, _encode_cursor({"p": index, "k": key})
            index, key = index + 1, None
        more = index < len(parties)
        return cards, _encode_cursor({"p": index, "k": None}) if more else None
