"""The card state machine on DynamoDB: conditional writes, history kept, races lost cleanly."""

from __future__ import annotations

import threading

import pytest

from chalicelib.cards.domain.inventory import CardState
from chalicelib.cards.inventory import import_inventory, parse_inventory
from chalicelib.core import deps
from chalicelib.kernel.errors import Conflict
from tests.fakes.cards import put_card_state

HEADER = "vin,engine_no,brand,model,colour,production_date,dealer_code,iccid,msisdn\n"
GOOD = "LSVAU218XN2183294,E12345678,启航,QH-5,白,2025-03-01,D100,89860112345678901237,1460012345678\n"
ICCID = "89860112345678901237"


@pytest.fixture
def card(aws: None) -> str:
    import_inventory(parse_inventory(HEADER + GOOD, "csv", max_rows=10), deps.inventory_repo(), actor="t")
    return ICCID


def test_a_stale_writer_loses_and_changes_nothing(card: str) -> None:
    # Given two operations that both read the card while it was unregistered
    repo = deps.inventory_repo()
    stale = repo.get_card(card)
    assert stale is not None
    put_card_state(repo, card, CardState.PENDING, actor="first", holder_id="p1")
    # When the second writes from its stale read
    from datetime import UTC, datetime

    from chalicelib.cards.domain.inventory import CardEvent

    event = CardEvent(
        iccid=card,
        seq=2,
        at=datetime.now(UTC),
        event="transition",
        from_state=stale.state,
        to_state=CardState.PENDING,
        actor="second",
    )
    with pytest.raises(Conflict) as info:
        repo.transition(stale, CardState.PENDING, event, "p2")
    # Then it is refused, and neither the card nor its history shows the second writer
    assert info.value.code == "card.changed"
    now = repo.get_card(card)
    assert now is not None
    assert (now.holder_id, now.version) == ("p1", 2)
    assert [e.actor for e in repo.history(card)] == ["t", "first"]


def test_concurrent_submissions_one_wins(card: str) -> None:
    repo = deps.inventory_repo()
    results: list[str] = []
    barrier = threading.Barrier(4)

    def submit(who: str) -> None:
        barrier.wait()
        try:
            put_card_state(repo, card, CardState.PENDING, actor=who, holder_id=who)
            results.append("won")
        except Conflict as err:
            results.append(err.code)

    threads = [threading.Thread(target=submit, args=(f"p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1
    assert set(results) - {"won"} <= {"card.changed", "card.illegal_transition"}
    assert len(repo.history(card)) == 2


def test_illegal_transition_writes_nothing(card: str) -> None:
    repo = deps.inventory_repo()
    with pytest.raises(Conflict):
        put_card_state(repo, card, CardState.REGISTERED, actor="x")
    assert repo.get_card(card).version == 1  # type: ignore[union-attr]
    assert len(repo.history(card)) == 1
