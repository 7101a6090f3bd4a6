"""Reaching backfill owners through the API, on the embedded AWS and the real stores: the SMS provider's
signed reply callback (a keyword opts the phone out; a registration's own SMS still comes), the owner's
notice of their own cards with the deadline and their opt-out link, and the call list (masked pages, the
sheet in clear with a reason and read-logged, outcomes recorded back)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from chalicelib.campaigns.domain import CallEntry, CallOutcome, CallReason, CampaignStatus
from chalicelib.campaigns.reach import SIGNATURE_HEADER, TIMESTAMP_HEADER, reply_headers, reply_signature
from chalicelib.cards.domain.inventory import Vehicle
from chalicelib.cards.inventory import import_inventory
from chalicelib.core import deps
from chalicelib.core.config import DEV_SMS_REPLY_SECRET
from chalicelib.kernel.clock import china_day, utc_now
from chalicelib.local.synthetic import inventory_rows
from chalicelib.sms.domain import subject_for
from tests.unit.campaigns.test_reach import campaign

Auth = Callable[..., dict[str, str]]
OWNER_PHONE = "13800138000"
OTHER_PHONE = "13900139000"


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def signed(
    doc: dict[str, Any], key: str = DEV_SMS_REPLY_SECRET, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers the SMS provider sends: signed over its timestamp (``at``, default now)."""
    raw = json.dumps(doc, ensure_ascii=False).encode()
    return raw, {"Content-Type": "application/json", **reply_headers(key, raw, at or utc_now())}


def opted_out(phone: str) -> bool:
    return bool(deps.opt_outs().opted_out([deps.sms_code_service().phone_hash(phone)]))


def phone_items() -> list[Any]:
    """The phones' items of ``campaign-opt-outs`` (not the handled callbacks' ``reply#…`` items)."""
    from chalicelib.adapters.dynamo.models_campaigns import CampaignOptOutModel

    return [i for i in CampaignOptOutModel.scan() if not i.phone_hash.startswith("reply#")]


def owner(token: Callable[..., str], phone: str) -> dict[str, str]:
    subject = subject_for(deps.sms_code_service().phone_hash(phone))
    return {"Authorization": f"Bearer {token('owner', subject=subject)}"}


def test_a_signed_keyword_reply_opts_the_phone_out_and_its_login_code_still_comes(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = {"phone": OWNER_PHONE, "text": "TD", "received_at": "2026-03-02T10:00:00+08:00"}
    raw, headers = signed(reply, key="not-the-providers-key")
    refused = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (refused.status_code, body(refused)["code"]) == (401, "sms_reply.signature")
    unsigned = api.http.post("/v1/sms/replies", headers={"Content-Type": "application/json"}, body=raw)
    assert unsigned.status_code == 401
    assert not opted_out(OWNER_PHONE)

    raw, headers = signed({**reply, "text": "好的，谢谢"})
    ignored = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (ignored.status_code, body(ignored)) == (200, {"outcome": "ignored"})
    assert not opted_out(OWNER_PHONE)

    raw, headers = signed(reply)
    done = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (done.status_code, body(done)) == (200, {"outcome": "opted_out"})
    again = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (again.status_code, body(again)) == (200, {"outcome": "duplicate"})
    raw, headers = signed(reply, at=utc_now() + timedelta(seconds=2))  # another callback of the same
    another = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert body(another) == {"outcome": "already_opted_out"}
    assert opted_out(OWNER_PHONE)
    assert not opted_out(OTHER_PHONE)

    [item] = phone_items()
    assert (item.via, item.at) == ("reply", datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    assert OWNER_PHONE not in json.dumps(item.to_simple_dict(), default=str)  # known by its hash alone

    # An opt-out is from campaign messages only: the registration's own SMS still goes to the phone.
    sent = api.http.post(
        "/v1/auth/sms-codes",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"phone": OWNER_PHONE, "purpose": "login"}),
    )
    assert sent.status_code == 202, sent.body
    [latest] = deps.sms_drop().recent(1)
    assert latest.phone == "138****8000"
    assert "验证码" in latest.text


def test_a_reply_signed_six_minutes_ago_is_refused_and_changes_nothing(api: Any) -> None:
    reply = {"phone": OWNER_PHONE, "text": "TD"}
    for minutes in (-6, 6):
        raw, headers = signed(reply, at=utc_now() + timedelta(minutes=minutes))
        stale = api.http.post("/v1/sms/replies", headers=headers, body=raw)
        assert (stale.status_code, body(stale)["code"]) == (401, "sms_reply.stale")
        assert body(stale)["field"] == TIMESTAMP_HEADER
    assert not opted_out(OWNER_PHONE)


def test_a_timestamp_the_signature_does_not_cover_is_refused_and_changes_nothing(api: Any) -> None:
    raw = json.dumps({"phone": OWNER_PHONE, "text": "TD"}).encode()
    now = str(int(utc_now().timestamp()))
    json_type = {"Content-Type": "application/json"}
    old_scheme = hmac.new(DEV_SMS_REPLY_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    no_stamp = reply_signature(DEV_SMS_REPLY_SECRET, "", raw)
    _, old = signed({"phone": OWNER_PHONE, "text": "TD"}, at=utc_now() - timedelta(minutes=10))
    for headers in (
        {**json_type, TIMESTAMP_HEADER: now, SIGNATURE_HEADER: old_scheme},  # the body's signature alone
        {**json_type, TIMESTAMP_HEADER: now, SIGNATURE_HEADER: no_stamp},  # signed over no timestamp
        {**old, TIMESTAMP_HEADER: now},  # a fresh timestamp put on a captured old request
    ):
        refused = api.http.post("/v1/sms/replies", headers=headers, body=raw)
        assert (refused.status_code, body(refused)["code"]) == (401, "sms_reply.signature")
    for stamp in (None, "yesterday"):
        headers = {**json_type, SIGNATURE_HEADER: old_scheme}
        if stamp is not None:
            headers[TIMESTAMP_HEADER] = stamp
        refused = api.http.post("/v1/sms/replies", headers=headers, body=raw)
        assert (refused.status_code, body(refused)["code"]) == (401, "sms_reply.timestamp")
    assert not opted_out(OWNER_PHONE)


def test_a_reply_replayed_after_the_owners_opt_in_is_a_duplicate_and_leaves_them_opted_in(
    api: Any, token: Callable[..., str], seeded: dict[str, str]
) -> None:
    me = owner(token, OWNER_PHONE)
    captured = signed({"phone": "86" + OWNER_PHONE, "text": "TD"})  # no received_at: its signed time
    raw, headers = captured
    done = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (done.status_code, body(done)) == (200, {"outcome": "opted_out"})
    assert body(api.http.get("/v1/me/backfill", headers=me))["opted_out"] is True
    back = api.http.delete("/v1/me/backfill/opt-out", headers=me)
    assert (back.status_code, body(back)["opted_out"]) == (200, False)

    replayed = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (replayed.status_code, body(replayed)) == (200, {"outcome": "duplicate"})
    assert body(api.http.get("/v1/me/backfill", headers=me))["opted_out"] is False
    assert not opted_out(OWNER_PHONE)

    [item] = phone_items()
    assert (item.opted_out, item.via) == (False, "reply")
    assert [json.loads(h)["change"] for h in item.history or []] == ["opt_out", "opt_in"]
    assert OWNER_PHONE not in json.dumps(item.to_simple_dict(), default=str)

    # The owner's own link opts out again at once; a reply received later than the opt-in too.
    assert body(api.http.post("/v1/me/backfill/opt-out", headers=me))["opted_out"] is True
    api.http.delete("/v1/me/backfill/opt-out", headers=me)
    later = (utc_now() + timedelta(seconds=1)).isoformat()
    raw, headers = signed({"phone": OWNER_PHONE, "text": "退订", "received_at": later})
    fresh = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert body(fresh) == {"outcome": "opted_out"}
    assert opted_out(OWNER_PHONE)


def test_a_keyword_sent_after_the_opt_in_by_a_provider_clock_a_minute_slow_opts_the_phone_out(
    api: Any, token: Callable[..., str], seeded: dict[str, str]
) -> None:
    me = owner(token, OWNER_PHONE)
    api.http.post("/v1/me/backfill/opt-out", headers=me)
    back = api.http.delete("/v1/me/backfill/opt-out", headers=me)  # the opt-in, at T
    assert (back.status_code, body(back)["opted_out"]) == (200, False)
    # The owner replies TD 40 s later; the provider's clock, 60 s slow, says 20 s before T.
    provider_now = utc_now() + timedelta(seconds=40) - timedelta(seconds=60)
    raw, headers = signed(
        {"phone": OWNER_PHONE, "text": "TD", "received_at": provider_now.isoformat()}, at=provider_now
    )
    done = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (done.status_code, body(done)) == (200, {"outcome": "opted_out"})
    assert body(api.http.get("/v1/me/backfill", headers=me))["opted_out"] is True


def test_a_reply_received_ten_minutes_before_the_opt_in_and_delivered_late_is_superseded(
    api: Any, token: Callable[..., str], seeded: dict[str, str]
) -> None:
    me = owner(token, OWNER_PHONE)
    api.http.post("/v1/me/backfill/opt-out", headers=me)
    api.http.delete("/v1/me/backfill/opt-out", headers=me)
    received = (utc_now() - timedelta(minutes=10)).isoformat()
    raw, headers = signed({"phone": OWNER_PHONE, "text": "TD", "received_at": received})  # signed now
    late = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (late.status_code, body(late)) == (200, {"outcome": "superseded"})
    assert not opted_out(OWNER_PHONE)
    assert body(api.http.get("/v1/me/backfill", headers=me))["opted_out"] is False


def test_a_callback_delivered_twice_acts_once_even_after_an_opt_in_in_between(
    api: Any, token: Callable[..., str], seeded: dict[str, str]
) -> None:
    me = owner(token, OWNER_PHONE)
    raw, headers = signed({"phone": OWNER_PHONE, "text": "TD"})
    assert body(api.http.post("/v1/sms/replies", headers=headers, body=raw)) == {"outcome": "opted_out"}
    assert body(api.http.post("/v1/sms/replies", headers=headers, body=raw)) == {"outcome": "duplicate"}
    api.http.delete("/v1/me/backfill/opt-out", headers=me)
    again = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (again.status_code, body(again)) == (200, {"outcome": "duplicate"})
    assert not opted_out(OWNER_PHONE)
    [item] = phone_items()
    assert [json.loads(h)["change"] for h in item.history or []] == ["opt_out", "opt_in"]
    from chalicelib.adapters.dynamo.models_campaigns import CampaignOptOutModel

    [guard] = [i for i in CampaignOptOutModel.scan() if i.phone_hash.startswith("reply#")]
    left = int(guard.expires_epoch) - int(utc_now().timestamp())
    assert 540 <= left <= 600  # remembered for twice the window, then deleted by TTL
    assert OWNER_PHONE not in json.dumps(guard.to_simple_dict(), default=str)


def test_a_message_delivered_again_and_signed_anew_after_an_opt_in_is_a_duplicate(
    api: Any, token: Callable[..., str], seeded: dict[str, str]
) -> None:
    me = owner(token, OWNER_PHONE)
    doc = {"phone": OWNER_PHONE, "text": "TD", "message_id": "mo-20260302-0001"}
    raw, headers = signed(doc, at=utc_now() - timedelta(seconds=30))
    assert body(api.http.post("/v1/sms/replies", headers=headers, body=raw)) == {"outcome": "opted_out"}
    api.http.delete("/v1/me/backfill/opt-out", headers=me)
    assert not opted_out(OWNER_PHONE)
    # The provider delivers the same message again, signed now (no received_at): it changes nothing
    raw, headers = signed(doc)
    again = api.http.post("/v1/sms/replies", headers=headers, body=raw)
    assert (again.status_code, body(again)) == (200, {"outcome": "duplicate"})
    assert not opted_out(OWNER_PHONE)
    # Another message of the same text is the person asking again: it opts the phone out
    raw, headers = signed({**doc, "message_id": "mo-20260302-0002"})
    assert body(api.http.post("/v1/sms/replies", headers=headers, body=raw)) == {"outcome": "opted_out"}
    assert opted_out(OWNER_PHONE)


def test_a_phone_toggled_sixty_times_keeps_its_newest_fifty_changes_and_still_opts_out(aws: None) -> None:
    from chalicelib.adapters.dynamo.models_campaigns import CampaignOptOutModel
    from chalicelib.campaigns.domain import OptOut
    from chalicelib.campaigns.ports import HISTORY_KEEP, OptOutChange

    store = deps.opt_outs()
    phone_hash = deps.sms_code_service().phone_hash(OWNER_PHONE)
    start = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    for n in range(30):
        at = start + timedelta(minutes=2 * n)
        assert store.opt_out(OptOut(phone_hash=phone_hash, at=at, via="link")) is OptOutChange.RECORDED
        assert store.opt_in(phone_hash, at + timedelta(minutes=1))
    lines = [json.loads(h) for h in CampaignOptOutModel.get(phone_hash, consistent_read=True).history or []]
    assert len(lines) == HISTORY_KEEP == 50
    # the newest last: the 60th change (the 30th opt-in) ends the list, the 11th change begins it
    assert lines[-1] == {"change": "opt_in", "at": (start + timedelta(minutes=59)).isoformat()}
    assert lines[0]["at"] == (start + timedelta(minutes=10)).isoformat()
    assert [line["change"] for line in lines] == ["opt_out", "opt_in"] * 25
    last = start + timedelta(hours=2)
    assert store.opt_out(OptOut(phone_hash=phone_hash, at=last, via="link")) is OptOutChange.RECORDED
    assert store.opted_out([phone_hash]) == {phone_hash}
    lines = [json.loads(h) for h in CampaignOptOutModel.get(phone_hash, consistent_read=True).history or []]
    assert (len(lines), lines[-1]["change"], lines[-1]["at"]) == (50, "opt_out", last.isoformat())


@pytest.fixture
def seeded(aws: None) -> dict[str, str]:
    """Three vehicles in the inventory: the first two in service with the owner's phone as the sales
    record's contact, the third with another phone; an active campaign and a stopped one."""
    rows = list(inventory_rows(3, seed=41))
    today = china_day(utc_now()).isoformat()  # not before the synthetic vehicles' production
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    facts = [
        (2, {"iccid": rows[0]["iccid"], "in_service_since": today, "contact_phone": OWNER_PHONE}),
        (3, {"iccid": rows[2]["iccid"], "in_service_since": today, "contact_phone": OTHER_PHONE}),
    ]
    imported = deps.in_service_import().run(facts, actor="test")
    assert imported.errors == []
    store = deps.campaign_store()
    store.create(campaign(1, date.today() + timedelta(days=90), name="补登记 第一期"))
    store.create(campaign(2, date.today() + timedelta(days=30), CampaignStatus.STOPPED, name="已停止的活动"))
    return {"mine": rows[0]["iccid"], "my_vin": rows[0]["vin"], "theirs": rows[2]["iccid"]}


def test_an_owner_sees_only_their_own_cards_with_the_deadline_and_opts_out_and_back_in(
    api: Any, token: Callable[..., str], auth: Auth, seeded: dict[str, str]
) -> None:
    me = owner(token, OWNER_PHONE)
    notice = api.http.get("/v1/me/backfill", headers=me)
    assert notice.status_code == 200, notice.body
    doc = body(notice)
    [card] = doc["cards"]
    assert card["vin"] is None  # the vehicle has no owner phone: the feed's phone proves nothing
    assert card["vin_masked"] == "*" * 11 + seeded["my_vin"][-6:]
    assert card["iccid_masked"] != seeded["mine"]
    assert card["iccid_masked"].endswith(seeded["mine"][-4:])
    assert (card["deadline"], card["campaign_name"]) == (
        (date.today() + timedelta(days=90)).isoformat(),
        "补登记 第一期",
    )
    assert card["register_url"].startswith("http")
    assert doc["opted_out"] is False

    out = api.http.post("/v1/me/backfill/opt-out", headers=me)
    assert (out.status_code, body(out)["opted_out"]) == (200, True)
    assert opted_out(OWNER_PHONE)
    assert not opted_out(OTHER_PHONE)
    assert body(api.http.get("/v1/me/backfill", headers=me))["opted_out"] is True
    back = api.http.delete("/v1/me/backfill/opt-out", headers=me)
    assert (back.status_code, body(back)["opted_out"]) == (200, False)
    assert not opted_out(OWNER_PHONE)

    stranger = owner(token, "13700137000")
    assert body(api.http.get("/v1/me/backfill", headers=stranger)) == {"cards": [], "opted_out": False}
    none = api.http.post("/v1/me/backfill/opt-out", headers=stranger)
    assert (none.status_code, body(none)["code"]) == (409, "campaign.nothing_to_opt_out")
    assert api.http.get("/v1/me/backfill", headers=auth("admin")).status_code == 403


def give_owner_phone(phone: str) -> None:
    """Import the seeded first vehicle again with ``owner_phone`` (the inventory's sales phone)."""
    [row] = list(inventory_rows(3, seed=41))[:1]
    report = import_inventory(
        [(2, {**row, "owner_phone": phone})],
        deps.inventory_repo(),
        actor="test",
        phone_hash=deps.sms_code_service().phone_hash,
    )
    assert report.errors == []


@pytest.mark.parametrize(
    ("owner_phone", "full"),
    [(None, False), (OWNER_PHONE, True), (OTHER_PHONE, False)],
    ids=["no-owner-phone", "owner-phone-is-the-feeds", "owner-phone-is-another"],
)
def test_the_notice_gives_the_full_vin_only_where_the_vehicles_owner_phone_proves_possession(
    api: Any,
    token: Callable[..., str],
    seeded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    owner_phone: str | None,
    full: bool,
) -> None:
    # Only sales_phone enabled; the feed's contact phone (what found the card) is OWNER_PHONE.
    monkeypatch.setenv("CHEKA_POSSESSION_METHODS", '["sales_phone"]')
    deps.reset()
    if owner_phone is not None:
        give_owner_phone(owner_phone)
    me = owner(token, OWNER_PHONE)
    vin = seeded["my_vin"]
    for resp in (
        api.http.get("/v1/me/backfill", headers=me),
        api.http.post("/v1/me/backfill/opt-out", headers=me),
    ):
        assert resp.status_code == 200, resp.body
        [card] = body(resp)["cards"]
        assert card["vin"] == (vin if full else None)
        assert card["vin_masked"] == "*" * 11 + vin[-6:]
        if not full:
            raw = resp.body.decode() if isinstance(resp.body, bytes) else str(resp.body)
            assert vin not in raw


def test_the_notice_keeps_the_vin_from_a_phone_holder_where_sales_phones_prove_nothing(
    api: Any, token: Callable[..., str], seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stage that does not take the sales record's phone as proof (mobile numbers are recycled): the
    # one who now holds the number signs in with it and is named the car's tail, never its VIN.
    monkeypatch.setenv("CHEKA_POSSESSION_METHODS", '["head_unit", "vehicle_document"]')
    deps.reset()
    give_owner_phone(OWNER_PHONE)  # the proof would pass on a stage that took it
    repo = deps.inventory_repo()
    batch = repo.get_vehicles
    vehicle_reads: list[set[str]] = []

    def counted(vins: Iterable[str]) -> dict[str, Vehicle]:
        vehicle_reads.append(set(vins))
        return batch(vins)

    monkeypatch.setattr(repo, "get_vehicles", counted)
    me = owner(token, OWNER_PHONE)
    vin = seeded["my_vin"]
    answers = [
        api.http.get("/v1/me/backfill", headers=me),
        api.http.post("/v1/me/backfill/opt-out", headers=me),
        api.http.delete("/v1/me/backfill/opt-out", headers=me),
    ]
    for resp in answers:
        assert resp.status_code == 200, resp.body
        doc = body(resp)
        [card] = doc["cards"]
        assert "vin" in card
        assert card["vin"] is None
        assert card["vin_masked"] == "*" * 11 + vin[-6:]
        assert card["iccid_masked"].endswith(seeded["mine"][-4:])
        assert card["deadline"] == (date.today() + timedelta(days=90)).isoformat()
        raw = resp.body.decode() if isinstance(resp.body, bytes) else str(resp.body)
        assert vin not in raw
        assert vin[:11] not in raw  # nor the part the tail leaves out
        assert vin.lower() not in raw.lower()
    assert vehicle_reads == []  # no vehicle read for a proof the stage does not take


def test_the_call_list_pages_masked_exports_read_logged_and_takes_outcomes(
    api: Any, token: Callable[..., str], auth: Auth, aws: None
) -> None:
    c = campaign(1, date.today() + timedelta(days=60))
    deps.campaign_store().create(c)
    cid = c.campaign_id
    now = datetime.now(UTC)
    for wave, iccid, phone in (
        (1, "89860000000000000011", OWNER_PHONE),
        (1, "89860000000000000012", None),
        (2, "89860000000000000013", OTHER_PHONE),
    ):
        assert deps.call_list().add(
            CallEntry(
                campaign_id=cid,
                wave=wave,
                iccid=iccid,
                vin="LSVAU2180N2" + iccid[-6:],
                reason=CallReason.SEND_FAILED if phone else CallReason.NO_PHONE,
                created_at=now,
                contact_phone_sealed=deps.sealer().seal(phone) if phone else None,
            )
        )
    caller = {"Authorization": f"Bearer {token('call_centre', subject='caller-1')}"}
    first = api.http.get(f"/v1/campaigns/{cid}/calls?limit=2", headers=caller)
    assert first.status_code == 200, first.body
    page = body(first)
    assert [(i["wave"], i["phone_masked"], i["reason"]) for i in page["items"]] == [
        (1, "138****8000", "send_failed"),
        (1, None, "no_phone"),
    ]
    rest = body(
        api.http.get(f"/v1/campaigns/{cid}/calls?limit=2&cursor={page['next_cursor']}", headers=caller)
    )
    assert ([i["phone_masked"] for i in rest["items"]], rest["next_cursor"]) == (["139****9000"], None)
    wave2 = body(api.http.get(f"/v1/campaigns/{cid}/calls?wave=2", headers=auth("auditor")))
    assert [i["iccid"] for i in wave2["items"]] == ["89860000000000000013"]
    for cursor in (page["next_cursor"], "not-a-cursor"):  # wave 1's page asked for wave 2; a made-up one
        refused = api.http.get(f"/v1/campaigns/{cid}/calls?wave=2&cursor={cursor}", headers=caller)
        assert (refused.status_code, body(refused)["code"]) == (400, "request.cursor")
    bad_wave = api.http.get(f"/v1/campaigns/{cid}/calls?wave=0", headers=caller)
    assert (bad_wave.status_code, body(bad_wave)["code"]) == (422, "campaign.wave")
    assert api.http.get(f"/v1/campaigns/{cid}/calls", headers=auth("owner")).status_code == 403
    assert api.http.get("/v1/campaigns/cp_unknown/calls", headers=caller).status_code == 404

    # The sheet: phones in clear, so only with a reason, and every entry with a phone read-logged.
    no_reason = api.http.get(f"/v1/campaigns/{cid}/calls.csv", headers=caller)
    assert (no_reason.status_code, body(no_reason)["code"]) == (422, "audit.reason_invalid")
    assert (
        api.http.get(f"/v1/campaigns/{cid}/calls.csv?reason=回访", headers=auth("operations")).status_code
        == 403
    )
    sheet = api.http.get(f"/v1/campaigns/{cid}/calls.csv?reason=补登记外呼回访", headers=caller)
    assert sheet.status_code == 200, sheet.body
    assert sheet.headers["Content-Type"].startswith("text/csv")
    lines = sheet.body.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("campaign_id,wave,iccid,vin,phone,reason")
    assert [line.split(",")[4] for line in lines[1:]] == [OWNER_PHONE, "", OTHER_PHONE]
    from chalicelib.audit.domain import ReadSearch

    reads = (
        deps.read_log()
        .search(
            ReadSearch(actor="caller-1", since=now - timedelta(minutes=5), until=now + timedelta(minutes=5))
        )
        .reads
    )
    assert sorted(r.record_id for r in reads) == ["89860000000000000011", "89860000000000000013"]
    assert {(r.fields, r.reason) for r in reads} == {(("contact_phone",), "补登记外呼回访")}

    # Outcomes: recorded back, the wave's `called` counted once; bad input changes nothing.
    path = f"/v1/campaigns/{cid}/calls/1/89860000000000000011/outcome"
    json_caller = {**caller, "Content-Type": "application/json"}
    wrong = api.http.post(path, headers=json_caller, body=json.dumps({"outcome": "maybe"}))
    assert (wrong.status_code, body(wrong)["field"]) == (422, "outcome")
    personal = api.http.post(
        path, headers=json_caller, body=json.dumps({"outcome": "reached", "note": "改打 13912345678"})
    )
    assert (personal.status_code, body(personal)["code"]) == (422, "campaign.call_note_personal")
    missing = api.http.post(
        f"/v1/campaigns/{cid}/calls/2/89860000000000000011/outcome",
        headers=json_caller,
        body=json.dumps({"outcome": "reached"}),
    )
    assert (missing.status_code, body(missing)["code"]) == (404, "campaign.call_not_found")
    assert deps.call_list().get(cid, 1, "89860000000000000011").outcome is None  # type: ignore[union-attr]
    done = api.http.post(
        path, headers=json_caller, body=json.dumps({"outcome": "no_answer", "note": "下午再打"})
    )
    assert done.status_code == 200, done.body
    assert (body(done)["outcome"], body(done)["outcome_by"], body(done)["note"]) == (
        "no_answer",
        "caller-1",
        "下午再打",
    )
    again = api.http.post(path, headers=json_caller, body=json.dumps({"outcome": "reached"}))
    assert (body(again)["outcome"], body(again)["note"]) == ("reached", None)
    from chalicelib.adapters.dynamo.models_campaigns import CampaignCallModel

    item = CampaignCallModel.get(cid, "01#89860000000000000011")
    assert [json.loads(o)["outcome"] for o in item.outcomes or []] == ["no_answer", "reached"]
    assert deps.send_ledger().progress(cid, 1).called == 1
    open_only = body(api.http.get(f"/v1/campaigns/{cid}/calls?open=true&wave=1", headers=caller))
    assert [i["iccid"] for i in open_only["items"]] == ["89860000000000000012"]


def test_first_outcomes_recorded_at_once_count_the_waves_called_once_and_keep_every_outcome(
    aws: None,
) -> None:
    c = campaign(1, date.today() + timedelta(days=60))
    deps.campaign_store().create(c)
    cid, iccid = c.campaign_id, "89860000000000000021"
    assert deps.call_list().add(
        CallEntry(
            campaign_id=cid,
            wave=1,
            iccid=iccid,
            vin="LSVAU2180N2000021",
            reason=CallReason.NO_PHONE,
            created_at=utc_now(),
            contact_phone_sealed=None,
        )
    )
    reach = deps.campaign_reach()
    callers = [f"caller-{n}" for n in range(8)]
    barrier = threading.Barrier(len(callers))

    def record(caller: str) -> CallOutcome | None:
        barrier.wait(timeout=10)  # every caller reads the entry without an outcome, then writes
        return reach.record_outcome(cid, 1, iccid, CallOutcome.NO_ANSWER, None, caller).entry.outcome

    with ThreadPoolExecutor(max_workers=len(callers)) as pool:
        assert list(pool.map(record, callers)) == [CallOutcome.NO_ANSWER] * len(callers)
    assert deps.send_ledger().progress(cid, 1).called == 1
    from chalicelib.adapters.dynamo.models_campaigns import CampaignCallModel

    item = CampaignCallModel.get(cid, f"01#{iccid}", consistent_read=True)
    assert sorted(json.loads(o)["by"] for o in item.outcomes or []) == sorted(callers)

    later = reach.record_outcome(cid, 1, iccid, CallOutcome.REACHED, "车主将办理", "caller-9")
    assert (later.entry.outcome, later.entry.note) == (CallOutcome.REACHED, "车主将办理")
    assert deps.send_ledger().progress(cid, 1).called == 1
    stored = deps.call_list().get(cid, 1, iccid)
    assert stored is not None
    assert (stored.outcome, stored.outcome_by) == (CallOutcome.REACHED, "caller-9")
