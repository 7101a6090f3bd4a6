"""Reaching owners beyond the SMS, on fakes: reply keywords and the callback's signature, the owner's
notice (their own targets, the nearest active deadline) and opt-out link, the call list (masked pages,
the sheet in clear, outcomes recorded and counted once)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import pytest

from chalicelib.campaigns.domain import (
    CallEntry,
    CallOutcome,
    CallReason,
    Campaign,
    CampaignStatus,
    Channel,
    OptOut,
    QuietHours,
)
from chalicelib.campaigns.ports import OptOutChange
from chalicelib.campaigns.reach import (
    REPLY_GUARD_SECONDS,
    REPLY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Reach,
    ReplyOutcome,
    is_opt_out_reply,
    notice_campaign,
    reply_digest,
    reply_headers,
    reply_signature,
    signature_matches,
)
from chalicelib.cards.domain.inventory import CardState
from chalicelib.kernel.crypto import TextSealer
from chalicelib.kernel.errors import Conflict, DomainError, InvalidField, NotFound, Unauthenticated
from chalicelib.kernel.validators import validate
from chalicelib.sms.domain import phone_lookup_value, subject_for
from tests.fakes.campaign_reach import FakeCallList, FakeOptOuts
from tests.fakes.campaign_sends import FakeSendLedger
from tests.fakes.campaign_store import FakeCampaignStore
from tests.fakes.campaign_targets import FakeBackfillTargets
from tests.fakes.cards import FakeInventory
from tests.fakes.clock import FakeClock
from tests.fakes.crypto import FakeCipher, FakeHasher

KEY = "reply-key-for-tests"
OWNER_PHONE = "13800138000"
OTHER_PHONE = "13900139000"


def phone_hash(phone: str) -> str:
    return FakeHasher().digest(phone_lookup_value(validate("mobile", phone, field="phone").value))


def campaign(
    n: int, deadline: date, status: CampaignStatus = CampaignStatus.ACTIVE, name: str | None = None
) -> Campaign:
    at = datetime(2026, 1, n, tzinfo=UTC)
    return Campaign(
        campaign_id=f"cp_{n:024x}",
        name=name or f"补登记 {n}",
        deadline=deadline,
        waves=(),
        template="尾号{vin_tail} {link}",
        channels=(Channel.SMS, Channel.CALL),
        rate_per_second=50,
        quiet_hours=QuietHours(),
        send_time=time(10, 0),
        attribution_days=14,
        status=status,
        created_by="admin",
        created_at=at,
        updated_at=at,
    )


class World:
    def __init__(self, *, sales_phone_proves: bool = True) -> None:
        self.clock = FakeClock()  # 2026-03-02 10:00 China
        self.opt_outs = FakeOptOuts()
        self.ledger = FakeSendLedger()
        self.calls = FakeCallList(self.ledger)
        self.targets = FakeBackfillTargets()
        self.store = FakeCampaignStore()
        self.sealer = TextSealer(FakeCipher())
        self.inventory = FakeInventory()
        self.reach = Reach(
            opt_outs=self.opt_outs,
            calls=self.calls,
            targets=self.targets,
            campaigns=self.store,
            sealer=self.sealer,
            phone_hash=phone_hash,
            reply_key=lambda: KEY,
            inventory=self.inventory,
            sales_phone_proves=sales_phone_proves,
            clock=self.clock,
        )

    def card(self, iccid: str, phone: str | None, **kw: object) -> None:
        self.targets.put(
            iccid,
            vin=f"LSVAU2180N2{iccid[-6:]}",
            phone_hash=phone_hash(phone) if phone else None,
            phone_sealed=self.sealer.seal(phone) if phone else None,
            **kw,  # type: ignore[arg-type]
        )

    def call(self, cid: str, wave: int, iccid: str, phone: str | None = OWNER_PHONE) -> CallEntry:
        entry = CallEntry(
            campaign_id=cid,
            wave=wave,
            iccid=iccid,
            vin=f"LSVAU2180N2{iccid[-6:]}",
            reason=CallReason.SEND_FAILED if phone else CallReason.NO_PHONE,
            created_at=self.clock(),
            contact_phone_sealed=self.sealer.seal(phone) if phone else None,
        )
        assert self.calls.add(entry)
        return entry


@pytest.fixture
def world() -> World:
    return World()


# -- replies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["TD", "td", " t d ", "Ｔ Ｄ", "退订", "退订。", "STOP!", "n", "取消"])
def test_an_opt_out_keyword_is_recognised_whatever_its_case_width_spaces_and_punctuation(text: str) -> None:
    assert is_opt_out_reply(text)


@pytest.mark.parametrize("text", ["", "好的", "TD我要登记", "请问怎么登记", "STOPPED", "123"])
def test_other_replies_are_not_opt_outs(text: str) -> None:
    assert not is_opt_out_reply(text)


def test_a_signature_matches_only_its_timestamp_and_body_under_its_key() -> None:
    body = b'{"phone":"13800138000","text":"TD"}'
    good = reply_signature(KEY, "1772416800", body)
    assert signature_matches(KEY, "1772416800", body, good)
    assert signature_matches(KEY, "1772416800", body, "sha256=" + good.upper())
    assert not signature_matches(KEY, "1772416801", body, good)
    assert not signature_matches(KEY, "1772416800", body + b" ", good)
    # the dot separates them: the timestamp's last digit may not slide into the body
    assert not signature_matches(KEY, "177241680", b"0." + body, good)
    assert not signature_matches("another-key", "1772416800", body, good)
    assert not signature_matches(KEY, "1772416800", body, None)
    assert not signature_matches(KEY, "1772416800", body, "")
    assert not signature_matches(KEY, "1772416800", body, good[:-1])
    body_alone = hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()  # the scheme without a time
    assert not signature_matches(KEY, "1772416800", body, body_alone)


def signed_now(world: World, body: bytes = b"{}", **delta: float) -> tuple[str, str]:
    """The signature and timestamp headers of ``body`` signed at the world's now moved by ``delta``."""
    headers = reply_headers(KEY, body, world.clock() + timedelta(**delta))
    return headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER]


def test_a_callback_with_a_wrong_signature_is_refused_401(world: World) -> None:
    stamp = str(int(world.clock().timestamp()))
    with pytest.raises(Unauthenticated) as refused:
        world.reach.check_reply_signature(b"{}", reply_signature("another-key", stamp, b"{}"), stamp)
    assert refused.value.code == "sms_reply.signature"
    signed_at = world.reach.check_reply_signature(b"{}", reply_signature(KEY, stamp, b"{}"), stamp)
    assert signed_at == world.clock()  # the clock's now is a whole second
    keyless = Reach(
        opt_outs=world.opt_outs,
        calls=world.calls,
        targets=world.targets,
        campaigns=world.store,
        sealer=world.sealer,
        phone_hash=phone_hash,
        reply_key=lambda: "",
        inventory=world.inventory,
        sales_phone_proves=True,
    )
    with pytest.raises(Unauthenticated):  # a stage without a key takes no reply, even one "signed" so
        keyless.check_reply_signature(b"{}", reply_signature("", stamp, b"{}"), stamp)


@pytest.mark.parametrize("stamp", [None, "", "soon", "1772416800.5", "-1772416800", "1e9", "0x69A4F0A0"])
def test_a_callback_without_a_timestamp_in_unix_seconds_is_refused_401(
    world: World, stamp: str | None
) -> None:
    signature = reply_signature(KEY, stamp or "", b"{}")  # signed over whatever was sent
    with pytest.raises(Unauthenticated) as refused:
        world.reach.check_reply_signature(b"{}", signature, stamp)
    assert (refused.value.code, refused.value.field) == ("sms_reply.timestamp", TIMESTAMP_HEADER)


@pytest.mark.parametrize("minutes", [-6, 6, -60 * 24 * 365])
def test_a_callback_signed_outside_five_minutes_of_now_is_refused_as_stale(
    world: World, minutes: int
) -> None:
    signature, stamp = signed_now(world, minutes=minutes)
    with pytest.raises(Unauthenticated) as refused:
        world.reach.check_reply_signature(b"{}", signature, stamp)
    assert (refused.value.code, refused.value.status) == ("sms_reply.stale", 401)
    for seconds in (-REPLY_WINDOW_SECONDS, REPLY_WINDOW_SECONDS):  # the window's edges are inside it
        signature, stamp = signed_now(world, seconds=seconds)
        assert world.reach.check_reply_signature(b"{}", signature, stamp) == world.clock() + timedelta(
            seconds=seconds
        )


def test_a_fresh_timestamp_put_on_an_old_signature_is_refused_as_unsigned(world: World) -> None:
    old_signature, _ = signed_now(world, minutes=-6)
    _, fresh = signed_now(world)
    with pytest.raises(Unauthenticated) as refused:
        world.reach.check_reply_signature(b"{}", old_signature, fresh)
    assert refused.value.code == "sms_reply.signature"


def test_a_reply_sent_more_than_the_window_before_the_owners_opt_in_leaves_them_opted_in(
    world: World,
) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    owner = subject_for(phone_hash(OWNER_PHONE))
    replied = world.clock()
    assert world.reach.reply(OWNER_PHONE, "TD", None, replied) is ReplyOutcome.OPTED_OUT
    world.clock.advance(minutes=10)
    opted_in = world.clock()
    assert world.reach.opt_in(owner).opted_out is False
    world.clock.advance(minutes=1)
    # delivered late, in a freshly signed callback: received 10 and 5 minutes and a second before the
    # opt-in, the window being 5 minutes either side of it
    for received in (replied, opted_in - timedelta(seconds=REPLY_WINDOW_SECONDS + 1)):
        assert world.reach.reply(OWNER_PHONE, "退订", received, world.clock()) is ReplyOutcome.SUPERSEDED
    assert world.reach.notice(owner).opted_out is False
    assert world.opt_outs.records == {}
    assert [change for change, _, _ in world.opt_outs.history] == ["opt_out", "opt_in"]
    # one received within the window of the opt-in (the provider's clock may be that far off) applies
    edge = opted_in - timedelta(seconds=REPLY_WINDOW_SECONDS)
    assert world.reach.reply(OWNER_PHONE, "TD", edge, world.clock()) is ReplyOutcome.OPTED_OUT
    assert world.reach.notice(owner).opted_out is True


def test_a_keyword_sent_just_after_the_opt_in_by_a_provider_clock_a_minute_slow_opts_out(
    world: World,
) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    owner = subject_for(phone_hash(OWNER_PHONE))
    world.reach.opt_out(owner)
    world.reach.opt_in(owner)  # at T
    world.clock.advance(seconds=40)  # the owner replies TD at T+40 s; the provider's clock says T-20 s
    provider_now = world.clock() - timedelta(seconds=60)
    signature, stamp = signed_now(world, seconds=-60)
    signed_at = world.reach.check_reply_signature(b"{}", signature, stamp)
    outcome = world.reach.reply(
        OWNER_PHONE, "TD", provider_now, signed_at, digest=reply_digest(signed_at, b"{}")
    )
    assert outcome is ReplyOutcome.OPTED_OUT
    assert world.reach.notice(owner).opted_out is True


def test_the_same_signed_callback_twice_acts_once_even_across_an_opt_in(world: World) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    owner = subject_for(phone_hash(OWNER_PHONE))
    signed_at = world.clock()
    digest = reply_digest(signed_at, b'{"phone":"13800138000","text":"TD"}')
    assert world.reach.reply(OWNER_PHONE, "TD", None, signed_at, digest=digest) is ReplyOutcome.OPTED_OUT
    assert world.reach.reply(OWNER_PHONE, "TD", None, signed_at, digest=digest) is ReplyOutcome.DUPLICATE
    world.clock.advance(minutes=1)
    world.reach.opt_in(owner)
    world.clock.advance(minutes=1)
    assert world.reach.reply(OWNER_PHONE, "TD", None, signed_at, digest=digest) is ReplyOutcome.DUPLICATE
    assert world.reach.notice(owner).opted_out is False
    assert [change for change, _, _ in world.opt_outs.history] == ["opt_out", "opt_in"]
    # another callback (another body, or the same body signed at another second) is a reply of its own
    other = reply_digest(signed_at, b'{"phone":"13800138000","text":"TD "}')
    assert world.reach.reply(OWNER_PHONE, "TD", None, world.clock(), digest=other) is ReplyOutcome.OPTED_OUT
    assert set(world.opt_outs.replies.values()) == {
        signed_at + timedelta(seconds=REPLY_GUARD_SECONDS),
        world.clock() + timedelta(seconds=REPLY_GUARD_SECONDS),
    }


def test_a_reply_whose_opt_out_fails_is_not_remembered_so_its_next_delivery_acts(world: World) -> None:
    digest = reply_digest(world.clock(), b"{}")
    real = world.opt_outs.opt_out

    def failing(record: OptOut, *, yields_to: datetime | None = None) -> OptOutChange:
        raise RuntimeError("throttled")

    world.opt_outs.opt_out = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        world.reach.reply(OWNER_PHONE, "TD", None, world.clock(), digest=digest)
    assert world.opt_outs.replies == {}
    world.opt_outs.opt_out = real  # type: ignore[method-assign]
    assert world.reach.reply(OWNER_PHONE, "TD", None, world.clock(), digest=digest) is ReplyOutcome.OPTED_OUT


def test_the_owners_link_opts_out_again_after_an_opt_in_whatever_the_time(world: World) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    owner = subject_for(phone_hash(OWNER_PHONE))
    world.reach.opt_out(owner)
    world.reach.opt_in(owner)  # at the same instant as the opt-in: the link does not yield to it
    assert world.reach.opt_out(owner).opted_out is True
    assert world.opt_outs.records[phone_hash(OWNER_PHONE)].via == "link"


def test_a_replys_time_is_when_the_provider_received_it_else_signed_it_never_later_than_now(
    world: World,
) -> None:
    now = world.clock()
    received = now - timedelta(minutes=30)
    signed = now - timedelta(minutes=1)
    for (phone, received_at, signed_at), at in (
        ((OWNER_PHONE, received, signed), received),
        ((OTHER_PHONE, None, signed), signed),
        (("13700137000", now + timedelta(days=1), None), now),
    ):
        assert world.reach.reply(phone, "TD", received_at, signed_at) is ReplyOutcome.OPTED_OUT
        assert world.opt_outs.records[phone_hash(phone)].at == at


def test_a_keyword_reply_opts_the_phone_out_once_keeping_the_first_record(world: World) -> None:
    first = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # half an hour before the clock's now
    assert world.reach.reply(OWNER_PHONE, "TD", first) is ReplyOutcome.OPTED_OUT
    assert world.reach.reply(OWNER_PHONE, "退订", None) is ReplyOutcome.ALREADY_OPTED_OUT
    record = world.opt_outs.records[phone_hash(OWNER_PHONE)]
    assert (record.at, record.via) == (first, "reply")
    assert list(world.opt_outs.records) == [phone_hash(OWNER_PHONE)]  # by hash: no phone kept


def test_the_providers_country_code_forms_name_the_same_phone(world: World) -> None:
    assert world.reach.reply("8613800138000", "TD", None) is ReplyOutcome.OPTED_OUT
    assert world.reach.reply("+86 138 0013 8000", "TD", None) is ReplyOutcome.ALREADY_OPTED_OUT
    assert list(world.opt_outs.records) == [phone_hash(OWNER_PHONE)]
    assert world.opt_outs.records[phone_hash(OWNER_PHONE)].at == world.clock()  # no time given: now


def test_other_text_and_a_bad_phone_record_nothing(world: World) -> None:
    assert world.reach.reply(OWNER_PHONE, "收到，谢谢", None) is ReplyOutcome.IGNORED
    with pytest.raises(DomainError) as refused:
        world.reach.reply("12345", "TD", None)
    assert refused.value.code == "mobile.format"
    assert world.opt_outs.records == {}


# -- the owner's notice -------------------------------------------------------------------------------


def test_the_notice_deadline_is_the_nearest_active_campaign_still_to_come() -> None:
    today = date(2026, 3, 2)
    past = campaign(1, date(2026, 2, 1))
    near = campaign(2, date(2026, 6, 30))
    far = campaign(3, date(2026, 12, 31))
    paused = campaign(4, date(2026, 4, 1), CampaignStatus.PAUSED)
    stopped = campaign(5, date(2026, 3, 31), CampaignStatus.STOPPED)
    assert notice_campaign([far, past, paused, near, stopped], today) == near
    assert notice_campaign([past, campaign(6, date(2026, 1, 1))], today) == past  # all past: the latest
    assert notice_campaign([paused, stopped], today) is None


def test_the_notice_shows_only_the_owners_own_targets_with_the_deadline(world: World) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    world.card("89860000000000000002", OWNER_PHONE, state=CardState.REGISTERED)  # not a target
    world.card("89860000000000000003", OWNER_PHONE, in_service_since=None)  # not in service
    world.card("89860000000000000004", OTHER_PHONE)
    world.store.create(campaign(1, date(2026, 6, 30), name="2026 上半年补登记"))
    notice = world.reach.notice(subject_for(phone_hash(OWNER_PHONE)))
    assert [c.target.iccid for c in notice.cards] == ["89860000000000000001"]
    assert (notice.cards[0].deadline, notice.cards[0].campaign_name) == (
        date(2026, 6, 30),
        "2026 上半年补登记",
    )
    assert notice.opted_out is False


def test_a_card_is_proved_by_the_phone_only_where_it_is_its_vehicles_owner_phone(world: World) -> None:
    from chalicelib.cards.domain.inventory import Vehicle

    for n, owner_phone in ((1, OWNER_PHONE), (2, OTHER_PHONE), (3, None)):
        iccid = f"8986000000000000000{n}"
        world.card(iccid, OWNER_PHONE)  # the feed names the owner's phone on all three
        vin = f"LSVAU2180N2{iccid[-6:]}"
        world.inventory.vehicles[vin] = Vehicle(
            vin=vin,
            engine_no="E1",
            brand="B",
            model="M",
            colour="白",
            owner_phone_hash=phone_hash(owner_phone) if owner_phone else None,
        )
    world.card("89860000000000000004", OWNER_PHONE)  # its vehicle is not in the inventory
    notice = world.reach.notice(subject_for(phone_hash(OWNER_PHONE)))
    assert [(c.target.iccid[-1], c.phone_proves) for c in notice.cards] == [
        ("1", True),
        ("2", False),
        ("3", False),
        ("4", False),
    ]


@pytest.mark.parametrize("trusted", [True, False], ids=["sales-phone-proves", "sales-phone-proves-nothing"])
def test_the_notice_reads_the_vehicles_only_where_the_stage_takes_the_sales_phone_as_proof(
    monkeypatch: pytest.MonkeyPatch, trusted: bool
) -> None:
    from chalicelib.cards.domain.inventory import Vehicle

    world = World(sales_phone_proves=trusted)
    iccid = "89860000000000000001"
    vin = f"LSVAU2180N2{iccid[-6:]}"
    world.card(iccid, OWNER_PHONE)
    # The vehicle's owner phone is the owner's: the proof passes wherever the stage trusts it.
    world.inventory.vehicles[vin] = Vehicle(
        vin=vin,
        engine_no="E1",
        brand="B",
        model="M",
        colour="白",
        owner_phone_hash=phone_hash(OWNER_PHONE),
    )
    reads: list[set[str]] = []
    batch = world.inventory.get_vehicles

    def counted(vins: Iterable[str]) -> dict[str, Vehicle]:
        reads.append(set(vins))
        return batch(vins)

    monkeypatch.setattr(world.inventory, "get_vehicles", counted)
    subject = subject_for(phone_hash(OWNER_PHONE))
    for notice in (world.reach.notice(subject), world.reach.opt_out(subject), world.reach.opt_in(subject)):
        assert [(c.target.iccid, c.phone_proves) for c in notice.cards] == [(iccid, trusted)]
    assert reads == ([{vin}] * 3 if trusted else [])


def test_without_an_active_campaign_the_cards_show_without_a_deadline(world: World) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    world.store.create(campaign(1, date(2026, 6, 30), CampaignStatus.STOPPED))
    [card] = world.reach.notice(subject_for(phone_hash(OWNER_PHONE))).cards
    assert (card.deadline, card.campaign_name) == (None, None)
    assert world.reach.notice(subject_for(phone_hash(OTHER_PHONE))).cards == ()


def test_the_owners_link_opts_their_phone_out_and_back_in(world: World) -> None:
    world.card("89860000000000000001", OWNER_PHONE)
    owner = subject_for(phone_hash(OWNER_PHONE))
    assert world.reach.opt_out(owner).opted_out is True
    assert world.opt_outs.records[phone_hash(OWNER_PHONE)].via == "link"
    assert world.reach.notice(owner).opted_out is True
    assert world.reach.opt_in(owner).opted_out is False
    assert world.opt_outs.records == {}
    assert world.opt_outs.opted_in_at == {phone_hash(OWNER_PHONE): world.clock()}


def test_an_owner_without_targets_has_nothing_to_opt_out_of(world: World) -> None:
    world.card("89860000000000000001", OWNER_PHONE, state=CardState.REGISTERED)
    owner = subject_for(phone_hash(OWNER_PHONE))
    for change in (world.reach.opt_out, world.reach.opt_in):
        with pytest.raises(Conflict) as refused:
            change(owner)
        assert (refused.value.code, refused.value.status) == ("campaign.nothing_to_opt_out", 409)
    assert world.opt_outs.records == {}


# -- the call list ------------------------------------------------------------------------------------


def test_the_call_list_pages_by_wave_with_phones_masked_and_the_sheet_in_clear(world: World) -> None:
    c = campaign(1, date(2026, 6, 30))
    world.store.create(c)
    world.call(c.campaign_id, 1, "89860000000000000001")
    world.call(c.campaign_id, 1, "89860000000000000002", phone=None)
    world.call(c.campaign_id, 2, "89860000000000000003", phone=OTHER_PHONE)
    rows, cursor = world.reach.calls(c.campaign_id, wave=None, open_only=False, cursor=None, limit=2)
    assert [(r.entry.wave, r.entry.iccid[-1], r.phone) for r in rows] == [
        (1, "1", "138****8000"),
        (1, "2", None),
    ]
    rows, cursor = world.reach.calls(c.campaign_id, wave=None, open_only=False, cursor=cursor, limit=2)
    assert ([r.phone for r in rows], cursor) == (["139****9000"], None)
    rows, _ = world.reach.calls(c.campaign_id, wave=2, open_only=False, cursor=None, limit=10)
    assert [r.entry.iccid for r in rows] == ["89860000000000000003"]
    sheet, cursor = world.reach.call_sheet(c.campaign_id, wave=None, open_only=False, cursor=None)
    assert ([r.phone for r in sheet], cursor) == ([OWNER_PHONE, None, OTHER_PHONE], None)
    with pytest.raises(NotFound) as refused:
        world.reach.calls("cp_unknown", wave=None, open_only=False, cursor=None, limit=10)
    assert refused.value.code == "campaign.not_found"


def test_an_outcome_is_recorded_replaced_by_a_later_one_and_counted_called_once(world: World) -> None:
    c = campaign(1, date(2026, 6, 30))
    world.store.create(c)
    world.call(c.campaign_id, 1, "89860000000000000001")
    world.call(c.campaign_id, 1, "89860000000000000002")
    row = world.reach.record_outcome(
        c.campaign_id, 1, "89860000000000000001", CallOutcome.NO_ANSWER, "  下午 再打 ", "caller-1"
    )
    assert (row.entry.outcome, row.entry.note, row.entry.outcome_by, row.phone) == (
        CallOutcome.NO_ANSWER,
        "下午 再打",
        "caller-1",
        "138****8000",
    )
    world.clock.advance(hours=3)
    world.reach.record_outcome(
        c.campaign_id, 1, "89860000000000000001", CallOutcome.REACHED, None, "caller-2"
    )
    entry = world.calls.get(c.campaign_id, 1, "89860000000000000001")
    assert entry is not None
    assert (entry.outcome, entry.note, entry.outcome_at) == (CallOutcome.REACHED, None, world.clock())
    assert [o[3] for o in world.calls.outcomes] == [CallOutcome.NO_ANSWER, CallOutcome.REACHED]
    assert world.ledger.progress(c.campaign_id, 1).called == 1
    open_rows, _ = world.reach.calls(c.campaign_id, wave=1, open_only=True, cursor=None, limit=10)
    assert [r.entry.iccid for r in open_rows] == ["89860000000000000002"]


def test_an_outcome_for_an_unknown_entry_or_with_a_phone_in_its_note_changes_nothing(world: World) -> None:
    c = campaign(1, date(2026, 6, 30))
    world.store.create(c)
    world.call(c.campaign_id, 1, "89860000000000000001")
    with pytest.raises(NotFound) as missing:
        world.reach.record_outcome(c.campaign_id, 2, "89860000000000000001", CallOutcome.REACHED, None, "x")
    assert missing.value.code == "campaign.call_not_found"
    for note, code in (
        ("改打 13912345678", "campaign.call_note_personal"),
        ("长" * 501, "campaign.call_note_too_long"),
    ):
        with pytest.raises(InvalidField) as refused:
            world.reach.record_outcome(
                c.campaign_id, 1, "89860000000000000001", CallOutcome.REACHED, note, "x"
            )
        assert (refused.value.code, refused.value.field) == (code, "note")
    assert world.calls.outcomes == []
    assert world.ledger.progress(c.campaign_id, 1).called == 0


def test_a_reply_key_that_cannot_be_read_answers_503_for_the_provider_to_retry() -> None:
    from chalicelib.campaigns.reach import ReplyKeyUnavailable

    def unreadable() -> str:
        raise RuntimeError("throttled")

    world = World()
    reach = world.reach
    reach._reply_key = unreadable
    with pytest.raises(ReplyKeyUnavailable) as refused:
        reach.check_reply_signature(b"{}", "sha256=00", "1772416800")
    assert (refused.value.status, refused.value.code) == (503, "sms_reply.key_unavailable")
