"""Reconciliation with the operator (SPEC §6): what the operator lists compared with what the platform
believes, card by card; a card never has more functions open than its state allows (第十四条)."""

from __future__ import annotations

from collections import Counter

from chalicelib.cards.domain.inventory import Card, CardState, functions_for
from chalicelib.cards.domain.lifecycle import CardLifecycle
from chalicelib.cards.ports import InventoryRepository
from chalicelib.cards.views import Drift, DriftKind, ReconcileReport
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.messages import OperatorCardRecord, OperatorCardState
from chalicelib.operators.ports import OperatorDirectory, OutboxStore


class Reconciliation:
    def __init__(self, inventory: InventoryRepository, store: OutboxStore):
        self._inventory = inventory
        self._store = store

    def reconcile(
        self,
        operator: Operator,
        directory: OperatorDirectory,
        *,
        page_limit: int = 1000,
        max_drifts: int = 1000,
    ) -> ReconcileReport:
        """Compare what the operator lists with what the platform believes, card by card.

        Pages through the operator's listing (batch reads per page), then through the platform's active
        cards of that operator (a sparse index, never a scan) to find those the operator lacks.
        """
        report = ReconcileReport(operator=operator)
        kinds: Counter[str] = Counter()
        drifts: list[Drift] = []
        listed: set[str] = set()

        def note(found: list[Drift]) -> None:
            for d in found:
                kinds[d.kind.value] += 1
                if len(drifts) < max_drifts:
                    drifts.append(d)

        cursor: str | None = None
        while True:
            page, cursor = directory.listing(operator, cursor)
            iccids = [r.iccid for r in page]
            listed.update(iccids)
            cards = self._inventory.get_cards(iccids)
            lives = self._store.lifecycles(iccids)
            for rec in page:
                report.listed += 1
                life = lives[rec.iccid]
                found = _compare(operator, rec, cards.get(rec.iccid), life)
                note(found)
                if life.awaiting:
                    report.in_flight += 1
                elif not found:
                    report.in_sync += 1
            if cursor is None:
                break
        active_cursor: str | None = None
        while True:
            iccids, active_cursor = self._store.active_cards(operator, active_cursor, page_limit)
            missing = [i for i in iccids if i not in listed]
            cards = self._inventory.get_cards(missing) if missing else {}
            lives = self._store.lifecycles(missing) if missing else {}
            for iccid in missing:
                card = cards.get(iccid)
                if card is not None and card.state is CardState.REGISTERED and not lives[iccid].awaiting:
                    note([Drift(iccid=iccid, kind=DriftKind.MISSING_AT_OPERATOR, platform=card.state.value)])
            if active_cursor is None:
                break
        report.drift_count = sum(kinds.values())
        report.by_kind = dict(kinds)
        report.drifts = drifts
        report.truncated = report.drift_count > len(drifts)
        return report


def _compare(
    operator: Operator, rec: OperatorCardRecord, card: Card | None, life: CardLifecycle
) -> list[Drift]:
    """How one card the operator lists differs from the platform's view of it."""
    theirs = rec.state.value
    if card is None:
        return [Drift(iccid=rec.iccid, kind=DriftKind.UNKNOWN_CARD, operator=theirs)]
    if card.operator is not operator:
        return [
            Drift(
                iccid=rec.iccid,
                kind=DriftKind.OTHER_OPERATOR,
                platform=card.operator.value,
                operator=operator,
            )
        ]
    found = []
    if not life.awaiting:  # while a push awaits its answer, either side may be right for now
        ours_active = card.state is CardState.REGISTERED
        if (rec.state is OperatorCardState.REGISTERED) != ours_active:
            found.append(
                Drift(iccid=rec.iccid, kind=DriftKind.STATE, platform=card.state.value, operator=theirs)
            )
        elif ours_active and life.holder_id_hash and rec.holder_id_hash != life.holder_id_hash:
            found.append(Drift(iccid=rec.iccid, kind=DriftKind.HOLDER))
    # 第十四条: never more open than the state allows (in flight: what registration would open).
    widest = CardState.REGISTERED if life.awaiting else card.state
    allowed = {f.value for f in functions_for(widest)}
    extra = sorted({f.value for f in rec.functions} - allowed)
    if extra:
        found.append(
            Drift(
                iccid=rec.iccid,
                kind=DriftKind.FUNCTIONS_EXCEED,
                platform=",".join(sorted(allowed)),
                operator=",".join(extra),
            )
        )
    return found
