"""In-memory fakes of the campaigns' opt-outs and call list: the stores' rules (the opt-out in force kept,
a reply yielding to a later opt-in changing nothing, a reply callback claimed once until it expires, one
call entry per campaign, wave and card, the first outcome counted with it), pages in the store's key order
with an opaque cursor."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from datetime import datetime

from chalicelib.campaigns.domain import CallEntry, CallOutcome, OptOut
from chalicelib.campaigns.ports import CallList, OptOutChange, OptOuts, SendLedger
from chalicelib.campaigns.reach import call_not_found


class FakeOptOuts(OptOuts):
    """Opt-outs by phone hash: ``records`` the opt-outs in force, ``opted_in_at`` each phone's latest
    opt-in, ``history`` every change (change, phone hash, at), ``replies`` the reply callbacks claimed
    (digest: until when); ``reads`` counts the phones looked up."""

    def __init__(self) -> None:
        self.records: dict[str, OptOut] = {}
        self.opted_in_at: dict[str, datetime] = {}
        self.history: list[tuple[str, str, datetime]] = []
        self.replies: dict[str, datetime] = {}
        self.reads = 0
        self._lock = threading.Lock()

    def opt_out(self, record: OptOut, *, yields_to: datetime | None = None) -> OptOutChange:
        with self._lock:
            if record.phone_hash in self.records:
                return OptOutChange.ALREADY
            opted_in = self.opted_in_at.get(record.phone_hash)
            if yields_to is not None and opted_in is not None and opted_in > yields_to:
                return OptOutChange.SUPERSEDED
            self.records[record.phone_hash] = record
            self.history.append(("opt_out", record.phone_hash, record.at))
            return OptOutChange.RECORDED

    def opted_out(self, phone_hashes: Iterable[str]) -> set[str]:
        wanted = set(phone_hashes)
        self.reads += len(wanted)
        return {h for h in wanted if h in self.records}

    def opt_in(self, phone_hash: str, at: datetime) -> bool:
        with self._lock:
            if self.records.pop(phone_hash, None) is None:
                return False
            self.opted_in_at[phone_hash] = at
            self.history.append(("opt_in", phone_hash, at))
            return True

    def claim_reply(self, digest: str, at: datetime, until: datetime) -> bool:
        with self._lock:
            held = self.replies.get(digest)
            if held is not None and held >= at:
                return False
            self.replies[digest] = until
            return True

    def release_reply(self, digest: str) -> None:
        with self._lock:
            self.replies.pop(digest, None)


def call_sort_key(wave: int, iccid: str) -> str:
    """The call list's range key: wave first (two digits), then the card."""
    return f"{wave:02d}#{iccid}"


class FakeCallList(CallList):
    """Call entries per campaign, in range-key order; the cursor is the last key returned. With a
    ``ledger``, an entry's first outcome counts its wave's ``called`` there (under the same lock)."""

    def __init__(self, ledger: SendLedger | None = None) -> None:
        self.ledger = ledger
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
    ) -> tuple[CallEntry, bool]:
        with self._lock:
            key = call_sort_key(entry.wave, entry.iccid)
            stored = self.entries.get(entry.campaign_id, {}).get(key)
            if stored is None:
                raise call_not_found(entry.campaign_id, entry.wave)
            first = stored.outcome is None
            updated = dataclasses.replace(stored, outcome=outcome, outcome_at=at, outcome_by=by, note=note)
            self.entries[entry.campaign_id][key] = updated
            self.outcomes.append((entry.campaign_id, entry.wave, entry.iccid, outcome, by))
            if first and self.ledger is not None:
                self.ledger.count(entry.campaign_id, entry.wave, called=1)
            return updated, first
