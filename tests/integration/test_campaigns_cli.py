"""``cheka campaign`` on the embedded AWS: create, list, plan (China times and the target count), run a
wave, pause, resume, status with the counters, stop; a refusal printed as one JSON error."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from click.testing import CliRunner

from chalicelib.cli.main import main

DEADLINE = (datetime.now(UTC).date() + timedelta(days=120)).isoformat()
TEMPLATE = "尾号{vin_tail}的车辆请于{deadline}前完成实名登记：{link}"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["campaign", *args], catch_exceptions=False)
    return result.exit_code, result.output


def doc(output: str) -> Any:
    return json.loads(output)


def test_a_campaign_from_creation_to_stop_on_the_command_line(aws: None) -> None:
    code, out = run(
        "create", "--name", "春季补登记", "--deadline", DEADLINE, "--waves", "60,30,7,1",
        "--template", TEMPLATE, "--send-time", "22:30", "--rate", "20",
    )  # fmt: skip
    assert code == 0, out
    created = doc(out)
    cid = created["campaign_id"]
    assert all(w["deferred"] for w in created["waves"])  # 22:30 is inside quiet hours

    code, out = run("list")
    assert code == 0
    assert [json.loads(line)["campaign_id"] for line in out.splitlines()] == [cid]

    code, out = run("plan", cid)
    assert code == 0, out
    plan = doc(out)
    assert plan["targets"] == 0
    first_day = date.fromisoformat(DEADLINE) - timedelta(days=60) + timedelta(days=1)
    assert plan["waves"][0]["at_china"] == f"{first_day.isoformat()} 08:00"

    code, out = run("run-wave", cid, "4")
    assert code == 0, out
    assert doc(out)["current_wave"] == 4
    assert doc(run("pause", cid)[1])["status"] == "paused"
    assert doc(run("resume", cid)[1])["status"] == "active"

    code, out = run("status", cid)
    status = doc(out)
    assert status["waves"][3]["status"] == "running"
    assert status["waves"][3]["sent"] == 0
    assert status["totals"]["targeted"] == 0

    assert doc(run("stop", cid)[1])["status"] == "stopped"
    code, out = run("stop", cid)
    assert code == 2
    assert doc(out)["error"]["code"] == "campaign.finished"


def test_plan_previews_waves_in_china_time_without_a_campaign(aws: None) -> None:
    code, out = run("plan", "--deadline", DEADLINE, "--waves", "7,1", "--send-time", "10:00")
    assert code == 0, out
    plan = doc(out)
    assert plan["campaign_id"] is None
    last_day = date.fromisoformat(DEADLINE) - timedelta(days=1)
    assert [w["at_china"] for w in plan["waves"]][-1] == f"{last_day.isoformat()} 10:00"


def test_a_bad_campaign_is_refused_as_one_json_error_and_nothing_is_stored(aws: None) -> None:
    code, out = run("create", "--name", "x", "--deadline", DEADLINE, "--template", "no link", "--rate", "0")
    assert code == 2
    error = doc(out)["error"]
    assert {e["field"] for e in error["details"]["errors"]} == {"template", "rate_per_second"}
    assert run("list") == (0, "")
