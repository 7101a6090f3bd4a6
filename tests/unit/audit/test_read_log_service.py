"""The read log's rules against an in-memory store: what one read in clear records (who, when, which
record, which fields, why), the reason staff must give (no personal data in it), the retention of the
items, a store that cannot write (503, nothing recorded), and the auditors' search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.audit.domain import (
    MAX_RANGE,
    SELF_REASON,
    Read,
    ReadLogUnavailable,
    ReadSearch,
    RecordKind,
    reason_text,
    search_range,
)
from chalicelib.audit.service import ReadLog
from chalicelib.core.auth import Principal, Role
from chalicelib.kernel.errors import InvalidField
from tests.fakes.audit import FakeReadLogStore
from tests.fakes.clock import FakeClock

REVIEWER = Principal(
    subject="staff-li", roles=frozenset({Role.REVIEWER}), token_id="t1", issuer="https://idp"
)
AUDITOR = Principal(
    subject="staff-wang", roles=frozenset({Role.AUDITOR}), token_id="t2", issuer="https://idp"
)


def read_log(years: int = 20) -> tuple[ReadLog, FakeReadLogStore, FakeClock]:
    store, clock = FakeReadLogStore(), FakeClock()
    return ReadLog(store, retention_years=years, clock=clock), store, clock


def test_a_read_in_clear_records_who_when_which_record_which_fields_and_why() -> None:
    log, store, clock = read_log()
    entry = log.record(
        REVIEWER,
        RecordKind.FLOW,
        "flow-1",
        ["identity.name", "identity.id_number", "identity.name"],
        "  核对审核案件\u0000 SH20260302 的证件 ",
        route="GET /v1/review-cases/{case_id}",
        correlation_id="corr-123456",
    )
    assert store.entries == [entry]
    assert (entry.actor, entry.roles, entry.issuer) == ("staff-li", ("reviewer",), "https://idp")
    assert entry.at == clock.now
    assert (entry.record_kind, entry.record_id) == (RecordKind.FLOW, "flow-1")
    assert entry.fields == ("identity.id_number", "identity.name")  # names only, each once
    assert entry.reason == "核对审核案件 SH20260302 的证件"
    assert (entry.route, entry.correlation_id) == ("GET /v1/review-cases/{case_id}", "corr-123456")
    # kept twenty years by default: longer than a card's service plus the two years of 第十八条
    assert store.expiries[entry.read_id] == clock.now.replace(year=clock.now.year + 20)


def test_one_answer_reading_several_records_writes_one_item_per_record() -> None:
    log, store, _ = read_log()
    reads = [
        Read(record_kind=RecordKind.COMPLAINT, record_id=f"TS{i}", fields=("contact_phone",))
        for i in range(3)
    ]
    entries = log.record_many(REVIEWER, reads, "回访投诉人")
    assert [e.record_id for e in store.entries] == ["TS0", "TS1", "TS2"]
    assert len({e.read_id for e in entries}) == 3
    assert log.record_many(REVIEWER, [], "回访投诉人") == []


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("", "audit.reason_invalid"),
        ("看看", "audit.reason_invalid"),
        ("   \u0000\u0001  ", "audit.reason_invalid"),
        ("核" * 201, "audit.reason_invalid"),
        ("回电 13912345678 核实", "audit.reason_personal"),
        ("核对证件 11010519491231002X", "audit.reason_personal"),
        ("核对证件 11010519491231002x", "audit.reason_personal"),
        ("核对 110105491231002 旧证", "audit.reason_personal"),
    ],
)
def test_a_reason_that_is_missing_too_long_or_carries_a_phone_or_id_number_is_refused_and_nothing_kept(
    reason: str, code: str
) -> None:
    log, store, _ = read_log()
    with pytest.raises(InvalidField) as refused:
        log.record(REVIEWER, RecordKind.CARD, "89860112345678901237", ["msisdn"], reason)
    assert (refused.value.code, refused.value.field, refused.value.status) == (code, "reason", 422)
    assert refused.value.message_zh
    assert store.entries == []


def test_a_reason_of_two_hundred_characters_and_a_case_number_are_accepted() -> None:
    assert reason_text("核" * 200) == "核" * 200
    assert reason_text("抽查 TS20261129A1B2C3 回访") == "抽查 TS20261129A1B2C3 回访"


def test_an_owner_reading_their_own_data_is_recorded_with_the_reason_self() -> None:
    log, _store, _ = read_log()
    owner = Principal(subject="owner-1", roles=frozenset({Role.OWNER}), token_id="t3")
    entry = log.record(owner, RecordKind.FLOW, "flow-9", ["reading.id_front.name"], SELF_REASON)
    assert (entry.reason, entry.actor, entry.issuer) == ("self", "owner-1", None)


def test_a_store_that_cannot_write_gives_503_and_nothing_is_recorded() -> None:
    log, store, _ = read_log()
    store.failing = True
    with pytest.raises(ReadLogUnavailable) as refused:
        log.record(REVIEWER, RecordKind.CARD, "89860112345678901237", ["msisdn"], "核对卡号归属")
    assert (refused.value.status, refused.value.code) == (503, "audit.unavailable")
    assert refused.value.details["retry_after_seconds"] > 0
    assert "未显示" in refused.value.message_zh
    assert store.entries == []


def test_a_read_on_29_february_is_kept_until_1_march() -> None:
    store = FakeReadLogStore()
    clock = FakeClock(datetime(2028, 2, 29, 12, 0, tzinfo=UTC))
    entry = ReadLog(store, retention_years=3, clock=clock).record(
        AUDITOR, RecordKind.CARD, "c1", ["msisdn"], "年度抽查"
    )
    assert store.expiries[entry.read_id] == datetime(2031, 3, 1, 12, 0, tzinfo=UTC)


def _seed(log: ReadLog, clock: FakeClock) -> None:
    for hour in range(5):
        log.record(
            REVIEWER if hour % 2 == 0 else AUDITOR, RecordKind.CARD, f"c{hour % 2}", ["msisdn"], "核对卡号"
        )
        clock.advance(hours=1)


def test_auditors_search_by_record_by_actor_and_by_time_newest_first_a_page_at_a_time() -> None:
    log, _, clock = read_log()
    start = clock.now
    _seed(log, clock)
    since, until = start - timedelta(minutes=1), clock.now
    by_record = log.search(ReadSearch(record_kind=RecordKind.CARD, record_id="c0", since=since, until=until))
    assert [e.at for e in by_record.reads] == [start + timedelta(hours=h) for h in (4, 2, 0)]
    assert by_record.next_cursor is None
    by_actor = log.search(ReadSearch(actor="staff-wang", since=since, until=until))
    assert {e.record_id for e in by_actor.reads} == {"c1"}
    assert len(by_actor.reads) == 2
    both = log.search(
        ReadSearch(actor="staff-wang", record_kind=RecordKind.CARD, record_id="c0", since=since, until=until)
    )
    assert both.reads == []
    first = log.search(ReadSearch(limit=3, since=since, until=until))
    assert len(first.reads) == 3
    assert first.next_cursor
    rest = log.search(ReadSearch(limit=3, cursor=first.next_cursor, since=since, until=until))
    assert len(rest.reads) == 2
    assert rest.next_cursor is None
    assert {e.read_id for e in first.reads}.isdisjoint(e.read_id for e in rest.reads)
    narrow = log.search(ReadSearch(since=start + timedelta(minutes=30), until=start + timedelta(hours=2)))
    assert [e.at for e in narrow.reads] == [start + timedelta(hours=2), start + timedelta(hours=1)]


def test_a_search_by_time_alone_covers_at_most_92_days_and_the_range_defaults_to_the_last_30() -> None:
    log, _, clock = read_log()
    with pytest.raises(InvalidField) as refused:
        log.search(ReadSearch(since=clock.now - MAX_RANGE - timedelta(days=1), until=clock.now))
    assert (refused.value.code, refused.value.field) == ("audit.range_too_long", "since")
    # by actor or record the range may be longer (one partition)
    log.search(ReadSearch(actor="staff-li", since=clock.now - timedelta(days=400), until=clock.now))
    since, until = search_range(None, None, clock.now)
    assert (until, until - since) == (clock.now, timedelta(days=30))
    with pytest.raises(InvalidField) as backwards:
        search_range(clock.now, clock.now - timedelta(days=1), clock.now)
    assert backwards.value.code == "audit.range_order"


def test_each_answer_counts_its_reads_in_clear_by_record_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.audit import service

    emitted: list[tuple[str, float, dict[str, str]]] = []
    monkeypatch.setattr(service, "emit", lambda name, value=1.0, **dims: emitted.append((name, value, dims)))
    log, store, _ = read_log()
    reads = [
        Read(record_kind=RecordKind.COMPLAINT, record_id=f"TS{i}", fields=("contact_phone",))
        for i in range(3)
    ]
    log.record_many(REVIEWER, reads, "回访投诉人")
    assert emitted == [("PersonalDataRead", 3.0, {"record_kind": "complaint"})]
    store.failing = True
    with pytest.raises(ReadLogUnavailable):
        log.record(REVIEWER, RecordKind.CARD, "c1", ["msisdn"], "核对卡号")
    assert len(emitted) == 1  # nothing shown, nothing counted
