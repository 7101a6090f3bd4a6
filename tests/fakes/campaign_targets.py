"""In-memory fake of the backfill index (``BackfillTargets``): cards held as ``Target``s, of which the
index holds those in service and in a backfill state, by shard and ICCID, as the ``by-backfill`` index
does. ``reads`` counts the items read, as the store's consumed reads would.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date

from chalicelib.campaigns.domain import InServiceFacts, Target
from chalicelib.campaigns.ports import BackfillTargets, InServiceCards
from chalicelib.cards.domain.inventory import BACKFILL_STATES, Card, CardEvent, CardState, backfill_shard_of
from chalicelib.kernel.errors import BadRequest, Conflict
from chalicelib.sms.domain import subject_for
from tests.fakes.cards import FakeInventory


def _is_target(target: Target) -> bool:
    return (
        target.indexed
        and target.in_service_since is not None
        and target.state in {s.value for s in BACKFILL_STATES}
    )


class FakeBackfillTargets(BackfillTargets):
    def __init__(self) -> None:
        self.cards: dict[str, Target] = {}
        self.reads = 0  # items read (index items by page, cards by current, index items by of_owner)
        self.page_calls = 0
        self.current_calls = 0

    # -- set-up helpers for tests ----------------------------------------------------------------------
    def put(
        self,
        iccid: str,
        *,
        vin: str = "LSVAU2189N2000001",
        state: CardState | str = CardState.UNREGISTERED,
        in_service_since: date | None = date(2024, 1, 1),
        phone_hash: str | None = None,
        phone_sealed: str | None = None,
    ) -> Target:
        """Hold a card (a target if it is in service and in a backfill state)."""
        target = Target(
            iccid=iccid,
            vin=vin,
            state=CardState(state).value,
            in_service_since=in_service_since,
            contact_phone_hash=phone_hash,
            contact_phone_sealed=phone_sealed,
        )
        self.cards[iccid] = target
        return target

    def set_state(self, iccid: str, state: CardState | str) -> Target:
        """Move a held card (e.g. registered between planning and sending): it leaves or joins the index
        as the store's state write does."""
        moved = replace(self.cards[iccid], state=CardState(state).value)
        self.cards[iccid] = moved
        return moved

    def retire(self, iccid: str) -> Target:
        """A held card scrapped or swapped out: unregistered and in service by its facts, but out of the
        index, as the store's retiring write leaves it."""
        retired = replace(self.cards[iccid], indexed=False)
        self.cards[iccid] = retired
        return retired

    def indexed(self, shard: str | None = None) -> list[Target]:
        """The index's content (every shard, or one), in index order."""
        return sorted(
            (
                t
                for t in self.cards.values()
                if _is_target(t) and (shard is None or backfill_shard_of(t.iccid) == shard)
            ),
            key=lambda t: (backfill_shard_of(t.iccid), t.iccid),
        )

    # -- the port --------------------------------------------------------------------------------------
    def page(self, shard: str, cursor: str | None, limit: int) -> tuple[list[Target], str | None]:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after = _decode(cursor, shard)
        self.page_calls += 1
        items = [t for t in self.indexed(shard) if after is None or t.iccid > after]
        page = items[:limit]
        self.reads += len(page)
        more = len(items) > limit
        return page, (_encode(shard, page[-1].iccid) if more and page else None)

    def current(self, iccids: Iterable[str]) -> dict[str, Target | None]:
        wanted = list(dict.fromkeys(iccids))
        self.current_calls += 1
        found = {i: self.cards.get(i) for i in wanted}
        self.reads += sum(1 for t in found.values() if t is not None)
        return found

    def of_owner(self, subject: str) -> list[Target]:
        mine = [
            t
            for t in self.cards.values()
            if t.contact_phone_hash is not None and subject_for(t.contact_phone_hash) == subject
        ]
        self.reads += len(mine)
        return sorted((t for t in mine if _is_target(t)), key=lambda t: t.iccid)


def _encode(shard: str, iccid: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"s": shard, "i": iccid}).encode()).decode()


def _decode(cursor: str | None, shard: str) -> str | None:
    if cursor is None:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if data["s"] != shard:
            raise ValueError("cursor of another shard")
        return str(data["i"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(
            "request.cursor", "分页游标无效", "The page cursor is invalid", field="cursor"
        ) from exc


class FakeInServiceCards(InServiceCards):
    """The in-service facts on the cards of a ``FakeInventory``: ``mark`` is guarded by the card's version
    and state as the store's write is, and appends the event to the card's history."""

    def __init__(self, inventory: FakeInventory) -> None:
        self.inventory = inventory
        self.facts: dict[str, InServiceFacts] = {}
        self.marks = 0
        #: Called with the card before each guarded write: a test moves the card meanwhile.
        self.before_mark: Callable[[Card], None] | None = None

    def read(self, iccids: Iterable[str]) -> dict[str, tuple[Card, InServiceFacts | None]]:
        cards = self.inventory.get_cards(iccids)
        return {i: (c, self.facts.get(i)) for i, c in cards.items()}

    def mark(self, card: Card, facts: InServiceFacts, event: CardEvent) -> Card:
        if self.before_mark is not None:
            self.before_mark(card)
        stored = self.inventory.cards.get(card.iccid)
        if stored is None or stored.version != card.version or stored.state != card.state:
            raise Conflict("card.changed", "车联网卡已被其他操作修改", "The card changed", field="iccid")
        after = card.model_copy(
            update={"in_service_since": facts.in_service_since, "version": event.seq, "updated_at": event.at}
        )
        self.inventory.cards[card.iccid] = after
        self.inventory.events.setdefault(card.iccid, []).append(event)
        old = self.facts.get(card.iccid)
        if facts.contact_phone_hash is None and old is not None:
            facts = replace(
                facts,
                contact_phone_hash=old.contact_phone_hash,
                contact_phone_sealed=old.contact_phone_sealed,
            )
        self.facts[card.iccid] = facts
        self.marks += 1
        return after

    def targets(self) -> FakeBackfillTargets:
        """The backfill index these cards make (for a test that plans from imported facts)."""
        index = FakeBackfillTargets()
        for card in self.inventory.cards.values():
            facts = self.facts.get(card.iccid)
            index.put(
                card.iccid,
                vin=card.vin,
                state=card.state,
                in_service_since=card.in_service_since,
                phone_hash=facts.contact_phone_hash if facts else None,
                phone_sealed=facts.contact_phone_sealed if facts else None,
            )
        return index
