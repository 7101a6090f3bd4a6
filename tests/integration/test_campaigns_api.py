"""Backfill campaigns through the staff API on the embedded AWS: a campaign stored with one EventBridge
schedule per wave ahead, bad bodies refused with field errors and nothing written, roles, pause / resume
/ stop (schedules kept, then deleted), a wave run by hand putting one plan message per shard on the
campaign-waves queue, and the local scheduler firing a due wave's start message."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from chalicelib.cards.domain.inventory import BACKFILL_SHARD_NAMES
from chalicelib.core.aws import client
from chalicelib.core.resources import (
    CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID,
    CAMPAIGN_WAVES_QUEUE_ID,
    declare,
)
from chalicelib.core.settings import get_settings

Auth = Callable[..., dict[str, str]]
DEADLINE = (datetime.now(UTC).date() + timedelta(days=200)).isoformat()
TEMPLATE = "尾号{vin_tail}的车辆请于{deadline}前完成实名登记：{link}"


def body(resp: Any) -> Any:
    return json.loads(resp.body)


def create(api: Any, auth: Auth, **changes: Any) -> Any:
    doc = {
        "name": "2026 补登记",
        "deadline": DEADLINE,
        "waves": [60, 30, 7, 1],
        "template": TEMPLATE,
        "channels": ["sms", "call"],
        "rate_per_second": 50,
        "send_time": "10:00",
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        **changes,
    }
    return api.http.post(
        "/v1/campaigns",
        headers=auth("admin", **{"Content-Type": "application/json"}),
        body=json.dumps(doc),
    )


def schedules() -> dict[str, dict[str, Any]]:
    scheduler = client("scheduler")
    group = get_settings().campaign_schedules_group
    names = [s["Name"] for s in scheduler.list_schedules(GroupName=group)["Schedules"]]
    return {n: scheduler.get_schedule(Name=n, GroupName=group) for n in names}


def waves_queue() -> tuple[Any, str]:
    sqs = client("sqs")
    name = declare(get_settings()).queue(CAMPAIGN_WAVES_QUEUE_ID).name
    return sqs, sqs.get_queue_url(QueueName=name)["QueueUrl"]


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return out
        out.extend(json.loads(m["Body"]) for m in got)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )


def test_a_campaign_is_created_with_one_schedule_per_wave_at_its_time_to_the_waves_queue(
    api: Any, auth: Auth
) -> None:
    resp = create(api, auth)
    assert resp.status_code == 201
    campaign = body(resp)
    cid = campaign["campaign_id"]
    assert campaign["status"] == "active"
    assert [w["days_before"] for w in campaign["waves"]] == [60, 30, 7, 1]
    assert {w["status"] for w in campaign["waves"]} == {"scheduled"}
    first = campaign["waves"][0]
    expected_day = date.fromisoformat(DEADLINE) - timedelta(days=60)
    assert first["scheduled_at"] == f"{expected_day.isoformat()}T02:00:00+00:00"  # 10:00 China

    found = schedules()
    assert sorted(found) == [f"{cid}-w0{i}" for i in (1, 2, 3, 4)]
    one = found[f"{cid}-w01"]
    assert one["ScheduleExpression"] == f"at({expected_day.isoformat()}T02:00:00)"
    assert one["ActionAfterCompletion"] == "DELETE"
    declared = declare(get_settings())
    assert one["Target"]["Arn"].endswith(":" + declared.queue(CAMPAIGN_WAVES_QUEUE_ID).name)
    # a start the scheduler cannot deliver goes to the waves' dead-letter queue, not nowhere
    dead_letters = one["Target"]["DeadLetterConfig"]["Arn"]
    assert dead_letters.endswith(":" + declared.queue(CAMPAIGN_WAVES_DEAD_LETTER_QUEUE_ID).name)
    assert dead_letters.rsplit(":", 1)[0] == one["Target"]["Arn"].rsplit(":", 1)[0]
    assert json.loads(one["Target"]["Input"]) == {"kind": "start_wave", "campaign_id": cid, "wave": 1}

    listed = body(api.http.get("/v1/campaigns", headers=auth("auditor")))
    assert [c["campaign_id"] for c in listed["campaigns"]] == [cid]
    got = api.http.get(f"/v1/campaigns/{cid}", headers=auth("auditor"))
    assert body(got) == campaign


def test_a_bad_body_is_refused_with_each_field_and_nothing_is_stored_or_scheduled(
    api: Any, auth: Auth
) -> None:
    resp = create(api, auth, template="请登记", rate_per_second=100000, waves=[7, 7], channels=["call"])
    assert resp.status_code == 422
    errors = {(e["field"], e["code"]) for e in body(resp)["details"]["errors"]}
    assert errors == {
        ("template", "campaign.template_no_link"),
        ("rate_per_second", "campaign.invalid_rate"),
        ("waves", "campaign.invalid_waves"),
        ("channels", "campaign.invalid_channels"),
    }
    too_long = create(api, auth, template="尾号{vin_tail}" + "请登记" * 50 + "{link}")
    assert (too_long.status_code, body(too_long)["code"]) == (422, "campaign.template_too_long")
    not_json = create(api, auth, waves="sixty")
    assert not_json.status_code == 422
    assert body(api.http.get("/v1/campaigns", headers=auth("admin")))["campaigns"] == []
    assert schedules() == {}


@pytest.mark.parametrize("role", ["owner", "reviewer"])
def test_owners_and_reviewers_neither_read_nor_write_campaigns(api: Any, auth: Auth, role: str) -> None:
    assert api.http.get("/v1/campaigns", headers=auth(role)).status_code == 403
    resp = api.http.post(
        "/v1/campaigns",
        headers=auth(role, **{"Content-Type": "application/json"}),
        body=json.dumps({"name": "x"}),
    )
    assert resp.status_code == 403


def test_an_auditor_reads_but_cannot_pause_and_operations_may(api: Any, auth: Auth) -> None:
    cid = body(create(api, auth))["campaign_id"]
    assert api.http.post(f"/v1/campaigns/{cid}/pause", headers=auth("auditor")).status_code == 403
    assert api.http.get(f"/v1/campaigns/{cid}/progress", headers=auth("auditor")).status_code == 200
    paused = api.http.post(f"/v1/campaigns/{cid}/pause", headers=auth("operations"))
    assert body(paused)["status"] == "paused"


def test_pause_keeps_the_schedules_resume_reactivates_and_stop_deletes_them(api: Any, auth: Auth) -> None:
    cid = body(create(api, auth))["campaign_id"]
    admin = auth("admin")
    assert body(api.http.post(f"/v1/campaigns/{cid}/pause", headers=admin))["status"] == "paused"
    assert len(schedules()) == 4
    again = api.http.post(f"/v1/campaigns/{cid}/pause", headers=admin)
    assert (again.status_code, body(again)["code"]) == (409, "campaign.not_active")
    assert body(api.http.post(f"/v1/campaigns/{cid}/resume", headers=admin))["status"] == "active"
    stopped = body(api.http.post(f"/v1/campaigns/{cid}/stop", headers=admin))
    assert stopped["status"] == "stopped"
    assert {w["status"] for w in stopped["waves"]} == {"cancelled"}
    assert schedules() == {}
    twice = api.http.post(f"/v1/campaigns/{cid}/stop", headers=admin)
    assert (twice.status_code, body(twice)["code"]) == (409, "campaign.finished")
    unknown = api.http.post("/v1/campaigns/cp_nope/pause", headers=admin)
    assert (unknown.status_code, body(unknown)["code"]) == (404, "campaign.not_found")


def test_running_a_wave_by_hand_queues_one_plan_per_shard_and_cancels_its_schedule(
    api: Any, auth: Auth
) -> None:
    cid = body(create(api, auth))["campaign_id"]
    sqs, url = waves_queue()
    drain(sqs, url)
    resp = api.http.post(f"/v1/campaigns/{cid}/waves/2/run", headers=auth("admin"))
    assert resp.status_code == 200
    campaign = body(resp)
    assert campaign["current_wave"] == 2
    assert campaign["waves"][1]["status"] == "running"
    plans = drain(sqs, url)
    assert sorted(m["shard"] for m in plans) == list(BACKFILL_SHARD_NAMES)
    assert {(m["kind"], m["campaign_id"], m["wave"]) for m in plans} == {("plan_shard", cid, 2)}
    assert f"{cid}-w02" not in schedules()
    again = api.http.post(f"/v1/campaigns/{cid}/waves/2/run", headers=auth("admin"))
    assert (again.status_code, body(again)["code"]) == (409, "campaign.wave_started")
    missing = api.http.post(f"/v1/campaigns/{cid}/waves/9/run", headers=auth("admin"))
    assert (missing.status_code, body(missing)["code"]) == (404, "campaign.wave_not_found")

    progress = body(api.http.get(f"/v1/campaigns/{cid}/progress", headers=auth("admin")))
    assert [w["wave"] for w in progress["waves"]] == [1, 2, 3, 4]
    assert progress["waves"][1]["status"] == "running"
    assert progress["totals"]["sent"] == 0
    count = body(api.http.get("/v1/campaigns/targets/count", headers=auth("auditor")))
    assert count == {"targets": 0, "shards": dict.fromkeys(BACKFILL_SHARD_NAMES, 0)}


def test_the_local_scheduler_sends_a_due_waves_start_message_and_deletes_its_schedule(
    api: Any, auth: Auth
) -> None:
    from chalicelib.local.scheduler import fire_due_schedules

    campaign = body(create(api, auth))
    cid = campaign["campaign_id"]
    sqs, url = waves_queue()
    drain(sqs, url)
    first = datetime.fromisoformat(campaign["waves"][0]["scheduled_at"])
    assert fire_due_schedules(first - timedelta(seconds=1)) == 0
    assert fire_due_schedules(first + timedelta(seconds=1)) == 1
    assert drain(sqs, url) == [{"kind": "start_wave", "campaign_id": cid, "wave": 1}]
    assert sorted(schedules()) == [f"{cid}-w0{i}" for i in (2, 3, 4)]


def test_a_waves_schedule_set_again_is_replaced_and_cancelling_an_absent_one_does_nothing(aws: None) -> None:
    from chalicelib.core import deps

    scheduler = deps.wave_scheduler()
    at = datetime(2031, 5, 1, 2, 0, tzinfo=UTC)
    name = scheduler.schedule("cp_" + "a" * 24, 3, at)
    scheduler.schedule("cp_" + "a" * 24, 3, at + timedelta(hours=6))
    assert schedules()[name]["ScheduleExpression"] == "at(2031-05-01T08:00:00)"
    scheduler.cancel("cp_" + "a" * 24, 3)
    scheduler.cancel("cp_" + "a" * 24, 3)
    assert schedules() == {}


def test_the_local_worker_plays_the_scheduler_every_five_seconds() -> None:
    from chalicelib.local.worker import SCHEDULES

    assert [s.every_seconds for s in SCHEDULES if s.name == "campaign-scheduler"] == [5.0]


def test_the_store_lists_newest_first_by_pages_and_refuses_a_stale_save(aws: None) -> None:
    from dataclasses import replace

    from chalicelib.campaigns.service import CampaignDraft
    from chalicelib.core import deps
    from chalicelib.kernel.errors import Conflict

    store = deps.campaign_store()
    draft = CampaignDraft(name="x", deadline=DEADLINE, waves=[7], template=TEMPLATE, rate_per_second=5)
    base = deps.campaigns().check(draft)
    made = []
    for i in range(3):
        at = datetime(2026, 1, 1 + i, tzinfo=UTC)
        one = replace(base, campaign_id=f"cp_{i:024x}", created_at=at, updated_at=at)
        store.create(one)
        made.append(one)
    first, cursor = store.list(limit=2)
    assert [c.campaign_id for c in first] == [made[2].campaign_id, made[1].campaign_id]
    rest, end = store.list(cursor, limit=2)
    assert [c.campaign_id for c in rest] == [made[0].campaign_id]
    assert end is None
    stored = store.get(made[0].campaign_id)
    assert stored == made[0]  # every field read back as written
    assert store.save(stored).version == 2
    with pytest.raises(Conflict) as stale:
        store.save(stored)
    assert stale.value.code == "campaign.changed"


def test_the_call_centre_lists_the_campaigns_but_neither_reads_their_progress_nor_writes(
    api: Any, auth: Auth
) -> None:
    cid = body(create(api, auth))["campaign_id"]
    listed = body(api.http.get("/v1/campaigns", headers=auth("call_centre")))
    assert [c["campaign_id"] for c in listed["campaigns"]] == [cid]
    assert api.http.get(f"/v1/campaigns/{cid}/progress", headers=auth("call_centre")).status_code == 403
    assert api.http.post(f"/v1/campaigns/{cid}/pause", headers=auth("call_centre")).status_code == 403


def test_a_forged_list_cursor_and_a_wave_number_in_other_digits_are_refused_not_failed(
    api: Any, auth: Auth
) -> None:
    import base64

    forged = base64.urlsafe_b64encode(json.dumps({"x": {"S": "1"}}).encode()).decode()
    listed = api.http.get(f"/v1/campaigns?cursor={forged}", headers=auth("admin"))
    assert (listed.status_code, body(listed)["code"]) == (400, "request.cursor")
    cid = body(create(api, auth))["campaign_id"]
    superscript = api.http.post(f"/v1/campaigns/{cid}/waves/%C2%B2/run", headers=auth("admin"))
    assert superscript.status_code == 404
