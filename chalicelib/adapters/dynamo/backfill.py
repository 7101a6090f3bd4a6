"""The backfill targets on DynamoDB: the sparse ``by-backfill`` index of ``cards`` (in service, not
registered; 16 shards), the ``by-contact`` index (an owner's cards by the subject of the sales record's
contact phone), and the in-service facts written on the card items by the feed's import.

The index is never scanned: a wave's planner queries one shard page by page, one index item per target.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from pynamodb.expressions.update import Action

from chalicelib.adapters.dynamo.agents import decode_cursor, encode_cursor
from chalicelib.adapters.dynamo.inventory import DynamoInventoryRepository, _card, backfill_action
from chalicelib.adapters.dynamo.models import CardModel
from chalicelib.campaigns.domain import InServiceFacts, Target
from chalicelib.campaigns.ports import BackfillTargets, InServiceCards
from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES, Card, CardEvent
from chalicelib.kernel.errors import BadRequest
from chalicelib.sms.domain import subject_for

#: Keys per BatchGetItem (DynamoDB's limit); pynamodb's batch_get retries unprocessed keys.
BATCH_GET = 100


def _target(m: CardModel) -> Target:
    return Target(
        iccid=m.iccid,
        vin=m.vin,
        state=m.state,
        in_service_since=date.fromisoformat(m.in_service_since) if m.in_service_since else None,
        contact_phone_hash=m.contact_phone_hash,
        contact_phone_sealed=m.contact_phone,
        indexed=m.backfill_shard is not None,
    )


def _facts(m: CardModel) -> InServiceFacts | None:
    if not m.in_service_since:
        return None
    return InServiceFacts(
        in_service_since=date.fromisoformat(m.in_service_since),
        contact_phone_hash=m.contact_phone_hash,
        contact_phone_sealed=m.contact_phone,
    )


def _bad_cursor() -> BadRequest:
    return BadRequest("request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor")


def _batch_get(iccids: Iterable[str]) -> list[CardModel]:
    keys = list(dict.fromkeys(iccids))
    found: list[CardModel] = []
    for start in range(0, len(keys), BATCH_GET):
        # Strongly consistent: a card registered a moment ago is not messaged.
        found += CardModel.batch_get(keys[start : start + BATCH_GET], consistent_read=True)
    return found


class DynamoBackfillTargets(BackfillTargets):
    def page(self, shard: str, cursor: str | None, limit: int) -> tuple[list[Target], str | None]:
        if shard not in BACKFILL_SHARD_NAMES:
            raise ValueError(f"no backfill shard {shard!r}")
        if limit < 1:
            raise ValueError("limit must be at least 1")
        start = decode_cursor(cursor)
        if start is not None and start.get("backfill_shard") != {"S": shard}:
            raise _bad_cursor()
        result = CardModel.by_backfill.query(shard, limit=limit, page_size=limit, last_evaluated_key=start)
        found = [_target(m) for m in result]
        last: dict[str, Any] | None = result.last_evaluated_key
        return found, encode_cursor(last) if found else None

    def current(self, iccids: Iterable[str]) -> dict[str, Target | None]:
        wanted = list(dict.fromkeys(iccids))
        found = {m.iccid: _target(m) for m in _batch_get(wanted)}
        return {i: found.get(i) for i in wanted}

    def of_owner(self, subject: str) -> list[Target]:
        mine = CardModel.by_contact.query(subject)
        return sorted((_target(m) for m in mine if m.backfill_shard), key=lambda t: t.iccid)


class DynamoInServiceCards(InServiceCards):
    def __init__(self) -> None:
        self._inventory = DynamoInventoryRepository()

    def read(self, iccids: Iterable[str]) -> dict[str, tuple[Card, InServiceFacts | None]]:
        return {m.iccid: (_card(m), _facts(m)) for m in _batch_get(iccids)}

    def mark(self, card: Card, facts: InServiceFacts, event: CardEvent) -> Card:
        after = card.model_copy(
            update={"in_service_since": facts.in_service_since, "version": event.seq, "updated_at": event.at}
        )
        actions: list[Action] = [
            CardModel.in_service_since.set(facts.in_service_since.isoformat()),
            CardModel.version.set(event.seq),
            CardModel.updated_at.set(event.at),
            backfill_action(after),
        ]
        if facts.contact_phone_hash and facts.contact_phone_sealed:
            actions += [
                CardModel.contact_phone.set(facts.contact_phone_sealed),
                CardModel.contact_phone_hash.set(facts.contact_phone_hash),
                CardModel.contact_subject.set(subject_for(facts.contact_phone_hash)),
            ]
        self._inventory._guarded_write(card, actions, event, same_state=True)
        return after
