"""In-memory fakes of the campaigns' opt-outs and call list: the stores' rules (first opt-out kept, one
call entry per campaign, wave and card), pages in the store's key order with an opaque cursor."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from datetime import datetime

from chalicelib.campaigns.domain import CallEntry, CallOutcome, OptOut
from chalicelib.campaigns.ports import CallList, OptOuts
from chalicelib.campaigns.reach import call_not_found


class FakeOptOuts(OptOuts):
    """Opt-outs by phone hash; ``reads`` counts the phones looked up (one batch item each)."""

    def __init__(self) -> None:
        self.records: dict[str, OptOut] = {}
        self.reads = 0
        self._lock = threading.Lock()

    def opt_out(self, record: OptOut) -> bool:
        with self._lock:
            if record.phone_hash in self.records:
                return False
            self.records[record.phone_hash] = record
            return True

    def opted_out(self, phone_hashes: Iterable[str]) -> set[str]:
        wanted = set(phone_hashes)
        self.reads += len(wanted)
        return {h for h in wanted if h in self.records}

    def opt_in(self, phone_hash: str) -> bool:
        with self._lock:
            return self.records.pop(phone_hash, None) is not None


def call_sort_key(wave: int, iccid: str) -> str:
    """The call list's range key: wave first (two digits), then the card."""
    return f"{wave:02d}#{iccid}"


class FakeCallList(CallList):
    """Call entries per campaign, in range-key order; the cursor is the last key returned."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, CallEntry]] = {}
        self.outcomes: list[tuple[str, int, str, CallOutcome, str]] = []
        self._lock = threading.Lock()

    def add(self, entry: CallEntry) -> bool:
        with self._lock:
            entries = self.entries.setdefault(entry.campaign_id, {})
            key = call_sort_key(entry.wave, entry.iccid)
            if key in entries:
                return False
            entries[key] = entry
            return True

    def page(
        self, campaign_id: str, *, wave: int | None, open_only: bool, cursor: str | None, limit: int
    ) -> tuple[list[CallEntry], str | None]:
        entries = self.entries.get(campaign_id, {})
        keys = sorted(entries)
        if cursor is not None:
            keys = [k for k in keys if k > cursor]
        chosen: list[tuple[str, CallEntry]] = []
        for key in keys:
            entry = entries[key]
            if wave is not None and entry.wave != wave:
                continue
            if open_only and entry.outcome is not None:
                continue
            chosen.append((key, entry))
            if len(chosen) == limit:
                break
        if len(chosen) < limit:
            return [e for _, e in chosen], None
        last = chosen[-1][0]
        more = any(
            (wave is None or entries[k].wave == wave) and (not open_only or entries[k].outcome is None)
            for k in keys
            if k > last
        )
        return [e for _, e in chosen], last if more else None

    def get(self, campaign_id: str, wave: int, iccid: str) -> CallEntry | None:
        return self.entries.get(campaign_id, {}).get(call_sort_key(wave, iccid))

    def record_outcome(
        self,
        entry: CallEntry,
        outcome: CallOutcome,
        by: str,
        at: datetime,
        note: str | None,
    ) -> CallEntry:
        with self._lock:
            key = call_sort_key(entry.wave, entry.iccid)
            stored = self.entries.get(entry.campaign_id, {}).get(key)
            if stored is None:
                raise call_not_found(entry.campaign_id, entry.wave)
            updated = dataclasses.replace(stored, outcome=outcome, outcome_at=at, outcome_by=by, note=note)
            self.entries[entry.campaign_id][key] = updated
            self.outcomes.append((entry.campaign_id, entry.wave, entry.iccid, outcome, by))
            return updated
