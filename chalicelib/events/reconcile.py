"""Lambda entry point of the push reconciliation (EventBridge, every hour; the local worker too): pushes
whose operator's answer never came are asked about and settled, the rest reported as drift
(``ReconciliationDrift``, alarmed). See ``chalicelib.operators.recovery``."""

from __future__ import annotations

from typing import Any

from chalicelib.core import deps


def reconcile_pushes() -> dict[str, Any]:
    report = deps.push_recovery().run()
    doc = report.model_dump(mode="json", exclude={"drifts"})
    return {**doc, "drifts": len(report.drifts)}
