"""``cheka outbox status``: what the outbox pushed to the operators, per kind of push, and where each
stands — queued, sent (received by the operator), waiting for the operator's decision, accepted,
refused, dead.

What it reads is said in the answer (``reads``):

- the open records (pending, sent, dead) from the outbox's sparse ``by-open-status`` index, a page at a
  time (never a scan: they are the few records still in motion);
- the decided records (accepted, refused), which leave that index, from the outbox table itself, where
  they stay ``FINAL_RECORD_RETENTION_DAYS``: a scan, made on local stages (a small moto table) and on a
  deployed stage only when asked (``--scan``); without it the answer says where they are counted
  instead (the ``PushAccepted`` / ``PushRefused`` metrics, per operator).
"""

from __future__ import annotations

from typing import Any

from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.operators.domain.outbox import (
    FINAL_RECORD_RETENTION_DAYS,
    LISTABLE_STATUSES,
    OutboxStatus,
)
from chalicelib.operators.ports import OutboxStore

#: What each kind of push asks of the operator, as the operator's staff call it.
KIND_NAMES = {
    PushKind.REGISTER: "实名登记",
    PushKind.DEREGISTER: "实名注销",
    PushKind.TRANSFER: "过户",
    PushKind.SPOT_CHECK_ANSWER: "抽查答复",
    PushKind.ACTUAL_USER: "实际使用人",
}

#: The columns of the count, in the order a push moves through them.
COLUMNS = ("queued", "retrying", "sent", "waiting_for_operator", "accepted", "refused", "dead")

LEGEND = {
    "queued": "待推送: committed, not yet received by the operator (retries included)",
    "retrying": "重试中: of the queued, those that failed at least once and wait for their retry",
    "sent": "已送达: received by the operator (waiting + accepted + refused)",
    "waiting_for_operator": "待运营商答复: received, the operator's decision not yet in",
    "accepted": "已接受: the operator accepted",
    "refused": "已拒绝: the operator refused, with its reason",
    "dead": "已放弃: retries exhausted or refused as a request; `cheka outbox retry` sends it again",
}

_PAGE = 100


def _empty() -> dict[str, int | None]:
    return dict.fromkeys(COLUMNS, 0)


def outbox_tally(store: OutboxStore, *, scan: bool, stage: str) -> dict[str, Any]:
    """The counts per kind of push and in total, and what was read to make them."""
    counts = {kind: _empty() for kind in PushKind}
    for status in LISTABLE_STATUSES:
        cursor: str | None = None
        while True:
            page = store.page(status, _PAGE, cursor)
            for item in page.items:
                row = counts[item.kind]
                if status is OutboxStatus.PENDING:
                    row["queued"] = (row["queued"] or 0) + 1
                    if item.attempts > 0:
                        row["retrying"] = (row["retrying"] or 0) + 1
                elif status is OutboxStatus.SENT:
                    row["waiting_for_operator"] = (row["waiting_for_operator"] or 0) + 1
                else:
                    row["dead"] = (row["dead"] or 0) + 1
            cursor = page.cursor
            if cursor is None:
                break
    reads = ["outbox index by-open-status (pending, sent, dead records)"]
    if scan:
        for kind, status in decided_records():
            column = {OutboxStatus.ACCEPTED: "accepted", OutboxStatus.REJECTED: "refused"}.get(status)
            if column is not None:
                row = counts[kind]
                row[column] = (row[column] or 0) + 1
        reads.append(
            f"outbox table, scanned (accepted and refused records, kept {FINAL_RECORD_RETENTION_DAYS} days)"
        )
    else:
        for row in counts.values():
            row["accepted"] = row["refused"] = None
        reads.append(
            f"accepted and refused not counted: on the {stage} stage that scans the whole outbox table "
            "(`--scan` does); the CloudWatch metrics PushAccepted and PushRefused count them per operator"
        )
    for row in counts.values():
        if row["accepted"] is not None and row["refused"] is not None:
            row["sent"] = (row["waiting_for_operator"] or 0) + row["accepted"] + row["refused"]
        else:
            row["sent"] = None
    total = _empty()
    for column in COLUMNS:
        values = [row[column] for row in counts.values()]
        total[column] = None if any(v is None for v in values) else sum(v or 0 for v in values)
    return {
        "by_kind": {kind.value: {"name": KIND_NAMES[kind], **row} for kind, row in counts.items()},
        "total": total,
        "legend": LEGEND,
        "reads": reads,
    }


def decided_records() -> list[tuple[PushKind, OutboxStatus]]:
    """(kind, status) of every decided record still kept in the outbox table (a scan)."""
    from chalicelib.adapters.dynamo.models_outbox import OutboxModel
    from chalicelib.core import deps

    deps.outbox_store()  # binds the table models to the stage's tables
    final = (OutboxStatus.ACCEPTED.value, OutboxStatus.REJECTED.value)
    found = []
    for item in OutboxModel.scan(
        OutboxModel.status.is_in(*final), attributes_to_get=["kind", "status"], page_size=500
    ):
        found.append((PushKind(item.kind), OutboxStatus(item.status)))
    return found
