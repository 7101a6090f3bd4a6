"""A card lifecycle over the fakes: inventory, outbox store, push queue and a hand-moved clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from chalicelib.cards.domain.inventory import Card, CardEvent, CardFunction, Vehicle
from chalicelib.cards.domain.limits import HolderKind
from chalicelib.cards.holders import Holder
from chalicelib.cards.lifecycle import Lifecycle
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import CallbackOutcome, OperatorCallback, PushHolder
from tests.fakes.cards import FakeInventory
from tests.fakes.clock import FakeClock
from tests.fakes.operators import FakeOutboxStore, FakePushQueue

MOBILE = Operator.CHINA_MOBILE
UNICOM = Operator.CHINA_UNICOM


def holder(n: int = 1, kind: HolderKind = HolderKind.INDIVIDUAL) -> Holder:
    facts = PushHolder(
        kind=kind, name=f"持卡人{n}", id_type="resident_id", id_number=f"11010519491231{n:04d}"
    )
    return Holder(party_id=f"party-{n}", facts=facts, id_hash=f"hash-{n}")


@dataclass
class World:
    inventory: FakeInventory = field(default_factory=FakeInventory)
    queue: FakePushQueue = field(default_factory=FakePushQueue)
    clock: FakeClock = field(default_factory=FakeClock)
    _ids: count[int] = field(default_factory=count)

    def __post_init__(self) -> None:
        self.store = FakeOutboxStore(self.inventory)
        self.lifecycle = Lifecycle(
            self.inventory, self.store, self.queue, clock=self.clock, new_id=lambda: f"{next(self._ids):032x}"
        )

    def vehicle(self, n: int, *, cards: int = 1, operator: Operator = MOBILE) -> list[Card]:
        """A vehicle in the inventory with ``cards`` unregistered cards of ``operator``."""
        vin = f"LSVAU218XN2{n:06d}"
        vehicle = Vehicle(vin=vin, engine_no=f"E{n:08d}", brand="启航", model="QH-5", colour="白")
        made = [
            Card(
                iccid=f"89860{operator.value[-1:]}{n:08d}{i:02d}",
                msisdn=f"14600{n:06d}{i:02d}",
                operator=operator,
                vin=vin,
            )
            for i in range(cards)
        ]
        events = [
            CardEvent(
                iccid=c.iccid, seq=1, at=self.clock(), event="imported", to_state=c.state, actor="import"
            )
            for c in made
        ]
        self.inventory.put_new([vehicle], made, events)
        return made

    def card(self, iccid: str) -> Card:
        card = self.inventory.get_card(iccid)
        assert card is not None
        return card

    def answer(
        self,
        iccid: str,
        outcome: CallbackOutcome = CallbackOutcome.ACCEPTED,
        *,
        callback_id: str | None = None,
        reason_code: str | None = None,
        functions: list[CardFunction] | None = None,
    ) -> OperatorCallback:
        """The operator's answer to the card's current push."""
        message_id = self.store.lifecycle(iccid).message_id
        assert message_id is not None
        return self.answer_to(
            message_id, iccid, outcome, callback_id=callback_id, reason_code=reason_code, functions=functions
        )

    def answer_to(
        self,
        message_id: str,
        iccid: str,
        outcome: CallbackOutcome = CallbackOutcome.ACCEPTED,
        *,
        callback_id: str | None = None,
        reason_code: str | None = None,
        functions: list[CardFunction] | None = None,
    ) -> OperatorCallback:
        return OperatorCallback(
            callback_id=callback_id or f"cb-{message_id}-{outcome.value}",
            message_id=message_id,
            operator=self.card(iccid).operator,
            iccid=iccid,
            outcome=outcome,
            reason_code=reason_code,
            reason_zh="一证多卡超限" if reason_code else None,
            functions=functions or [],
            decided_at=self.clock(),
        )

    def registered(self, iccid: str, who: Holder) -> None:
        """The card submitted for ``who`` and accepted by the operator."""
        self.lifecycle.submit_registration(iccid, who, "owner")
        self.lifecycle.apply_callback(self.answer(iccid))
