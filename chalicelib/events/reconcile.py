"""Lambda entry point of the push reconciliation (EventBridge, every hour; the local worker too): pushes
whose operator's answer never came are asked about and settled, the rest reported as drift
(``ReconciliationDrift``, alarmed). See ``chalicelib.operators.recovery``. The same hour counts the
operators' spot checks left open past their deadline (``SpotChecksOverdueOpen``, alarmed)."""

from __future__ import annotations

from typing import Any

from chalicelib.core import deps


def reconcile_pushes() -> dict[str, Any]:
    report = deps.push_recovery().run()
    doc = report.model_dump(mode="json", exclude={"drifts"})
    overdue = deps.spot_checks().report_overdue()
    return {**doc, "drifts": len(report.drifts), "spot_checks_overdue": overdue}
