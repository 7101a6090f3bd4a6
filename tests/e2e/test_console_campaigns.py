"""The console's backfill campaigns (补登记活动) in the browser, against the stack ``make run`` starts: an
admin signs in (password + TOTP at the local provider), is refused a campaign whose template has no link
(the refusal beside the template, nothing created), creates one (its waves shown at their China times),
runs its first wave now and watches the local worker plan and send it — the progress chart fills with the
messages sent and the card without a phone skipped — pauses and resumes it, records the call centre's
outcome for the card without a phone (which the call list then holds), exports the call list with a
reason, and stops the campaign from the list.

Screenshots: ``<tmp dir>/screenshots/*.png``."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from chalicelib.local.synthetic import inventory_rows, make_mobile
from tests.e2e.conftest import Stack
from tests.e2e.test_console_signin import staff_sign_in
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHINA = timedelta(hours=8)
BAD_TEMPLATE = "【车联网卡实名登记】您尾号{vin_tail}的车辆尚未实名登记，请于{deadline}前完成。"


@pytest.fixture
def console(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    return Phone(browser, stack, tmp_path, camera)


def _post(stack: Stack, path: str, body: str, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        stack.api + path,
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": content_type,
            "Accept": "application/json",
            "Authorization": f"Bearer {stack.admin_token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # loopback stack
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def _seed_targets(stack: Stack) -> list[dict[str, str]]:
    """Three cars of our own in the inventory, then in the in-service feed: two with the sales record's
    contact phone, one without (the call list's)."""
    rng = random.Random()
    rows = list(inventory_rows(3, seed=rng.randrange(10**6, 10**7)))
    status, report = _post(stack, "/v1/admin/inventory/imports", json.dumps(rows), "application/json")
    assert status == 200, report
    assert not report.get("errors"), report
    # In service since yesterday: after the cars' production, never in the future.
    since = (datetime.now(UTC) + CHINA - timedelta(days=1)).date().isoformat()
    feed = [
        {"iccid": rows[0]["iccid"], "in_service_since": since, "contact_phone": make_mobile(rng)},
        {"iccid": rows[1]["iccid"], "in_service_since": since, "contact_phone": make_mobile(rng)},
        {"iccid": rows[2]["iccid"], "in_service_since": since},
    ]
    status, report = _post(
        stack, "/v1/inventory/in-service?format=json", json.dumps(feed), "application/json"
    )
    assert status == 200, report
    assert not report.get("errors"), report
    return rows


def _sign_in_admin(console: Phone, stack: Stack) -> None:
    staff_sign_in(console, stack, "admin")
    console.wait_until("the console", lambda: console.screen() in ("home", "campaigns"), timeout=30)


def _js(console: Phone, script: str, *args: Any) -> Any:
    return console.driver.execute_script(script, *args)


def _set(console: Phone, css: str, value: str) -> None:
    """Type into a date/time input the way its picker does (its keyboard entry depends on the locale)."""
    _js(
        console,
        "const el = document.querySelector(arguments[0]); el.value = arguments[1];"
        "el.dispatchEvent(new Event('input', {bubbles: true}));",
        css,
        value,
    )


def _accept_confirm(console: Phone) -> None:
    alert = console.wait_until("the confirmation", lambda: _alert(console), timeout=10)
    alert.accept()


def _alert(console: Phone) -> Any:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return console.driver.switch_to.alert
    except NoAlertPresentException:
        return None


def _campaigns(stack: Stack) -> list[dict[str, Any]]:
    status, page = stack.call("GET", "/v1/campaigns", token=stack.admin_token)
    assert status == 200, page
    return list(page["campaigns"])


def _quiet_hours_away_from(china_now: datetime) -> tuple[str, str]:
    """An hour of quiet that holds neither ``china_now`` nor the waves' 10:00."""
    for hours in (3, 6, 9):
        start = china_now + timedelta(hours=hours)
        ten = start.replace(hour=10, minute=0, second=0, microsecond=0)
        if not (
            start <= ten < start + timedelta(hours=1)
            or start <= ten + timedelta(days=1) < start + timedelta(hours=1)
        ):
            return f"{start:%H:%M}", f"{start + timedelta(hours=1):%H:%M}"
    raise AssertionError("unreachable: 10:00 lies in at most one of three disjoint hours")


def _chart(console: Phone, part: str, reason: str | None = None) -> int:
    """The count a part of wave 1's bar shows (0 when the part is not drawn)."""
    selector = f'#campaign-progress svg[data-wave="1"] rect[data-part="{part}"]'
    if reason:
        selector += f'[data-reason="{reason}"]'
    return int(
        _js(console, f"const r = document.querySelector('{selector}'); return r ? +r.dataset.count : 0")
    )


def test_an_admin_creates_a_campaign_runs_a_wave_watches_its_progress_pauses_resumes_and_records_a_call(
    console: Phone, stack: Stack
) -> None:
    rows = _seed_targets(stack)
    before = {c["campaign_id"] for c in _campaigns(stack)}
    _sign_in_admin(console, stack)

    # 补登记活动 in the console's pages
    console.tap('#pages a[data-page="campaigns"]')
    console.wait_until("the campaigns page", lambda: console.screen() == "campaigns")
    console.wait_until(
        "the create form", lambda: _js(console, "return !!document.getElementById('campaign-create')")
    )
    if not _js(console, "return document.getElementById('campaign-create').open"):
        console.tap("#campaign-create summary")  # folded away once there are campaigns
    assert "登记截止日期" in console.element("#campaign-create").text

    # Quiet hours away from now (a wave run now is sent now, whenever the test runs) and from 10:00
    china_now = datetime.now(UTC) + CHINA
    quiet_start, quiet_end = _quiet_hours_away_from(china_now)
    deadline = (china_now + timedelta(days=90)).date()
    name = f"补登记测试活动 {china_now:%H%M%S}"
    console.fill("#create-name", name)
    _set(console, "#create-deadline", deadline.isoformat())
    _set(console, "#create-quiet-start", quiet_start)
    _set(console, "#create-quiet-end", quiet_end)
    console.fill("#create-rate-per-second", "50")

    # A template without the link: the live count and preview say so, the API refuses it beside the field
    console.fill("#create-template", BAD_TEMPLATE)
    assert "缺少 {link}" in console.element("#create-preview").text
    console.tap("#campaign-create-submit")
    console.wait_until("the template's refusal", lambda: console.errors())
    assert console.errors() == ["短信模板必须包含登记链接 {link}"], console.errors()
    refused = _js(console, "return document.getElementById('create-template').getAttribute('aria-invalid')")
    assert refused == "true"
    assert {c["campaign_id"] for c in _campaigns(stack)} == before, "nothing was created"
    console.shot("01-campaign-template-refused")

    # The good one: the default template (the VIN's tail, the deadline, the link)
    _js(
        console,
        "const t = document.getElementById('create-template'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input', {bubbles: true}));",
        "【车联网卡实名登记】您尾号{vin_tail}的车辆车联网卡尚未实名登记，请于{deadline}前登记：{link}",
    )
    count = console.element("#create-count").text
    assert "/ 134" in count, count
    assert "超出" not in count, count
    assert console.errors() == []
    console.tap("#campaign-create-submit")
    console.wait_until("the campaign's page", lambda: console.screen() == "campaign")
    console.wait_until(
        "its waves",
        lambda: len(console.driver.find_elements("css selector", "#campaign-waves tbody tr")) == 4,
    )
    [created] = [c for c in _campaigns(stack) if c["campaign_id"] not in before]
    campaign_id = created["campaign_id"]
    assert console.element("#campaign-title").text == name
    shown = _js(
        console,
        "return Array.from(document.querySelectorAll('#campaign-waves tbody tr'))"
        ".map(r => [r.dataset.wave, r.querySelector('td.when').textContent, r.dataset.status])",
    )
    expected = [
        [str(i), f"{deadline - timedelta(days=days):%Y-%m-%d} 10:00", "scheduled"]
        for i, days in enumerate((60, 30, 7, 1), start=1)
    ]
    assert shown == expected, shown
    console.shot("02-campaign-created")

    # 立即执行 the first wave: the local worker plans and sends it; the chart fills
    console.tap('#campaign-waves button.run-wave[data-wave="1"]')
    _accept_confirm(console)
    console.wait_until(
        "the messages sent and the card without a phone skipped, on the chart",
        lambda: _chart(console, "sent") >= 2 and _chart(console, "skipped", "no_phone") >= 1,
        timeout=45,
    )
    assert "目标" in console.element('#campaign-progress .wave-progress[data-wave="1"] .numbers').text
    assert _js(console, "return document.querySelectorAll('#campaign-progress .legend li').length") >= 4
    _js(console, "document.getElementById('campaign-progress').scrollIntoView()")
    console.shot("03-campaign-wave-progress")
    _js(console, "window.scrollTo(0, 0)")

    # Pause, then resume
    console.tap('#campaign-facts button[data-action="pause"]')
    console.wait_until(
        "paused",
        lambda: _js(console, "return !!document.querySelector('#campaign-sub [data-status=\"paused\"]')"),
    )
    status, doc = stack.call("GET", f"/v1/campaigns/{campaign_id}", token=stack.admin_token)
    assert (status, doc["status"]) == (200, "paused"), doc
    console.tap('#campaign-facts button[data-action="resume"]')
    console.wait_until(
        "active again",
        lambda: _js(console, "return !!document.querySelector('#campaign-sub [data-status=\"active\"]')"),
    )
    status, doc = stack.call("GET", f"/v1/campaigns/{campaign_id}", token=stack.admin_token)
    assert (status, doc["status"]) == (200, "active"), doc

    # The call list: the card without a phone, its outcome recorded
    no_phone = rows[2]["iccid"]
    entry = f'#calls-list li[data-wave="1"][data-iccid="{no_phone}"]'

    def listed() -> bool:
        if _js(console, f"return !!document.querySelector('{entry}')"):
            return True
        _js(console, "document.getElementById('calls-refresh').click()")
        return False

    console.wait_until("the card without a phone on the call list", listed, timeout=20)
    assert "无联系电话" in console.element(entry).text
    assert rows[2]["vin"][-6:] in console.element(entry).text
    assert rows[2]["vin"] not in console.element(entry).text, "the VIN is never shown whole"
    from selenium.webdriver.support.ui import Select

    Select(console.element(f"{entry} select")).select_by_value("reached")
    console.fill(f"{entry} textarea", "已电话联系，用户将于本周内登记")
    console.tap(f"{entry} .outcome-form button")
    console.wait_until(
        "the entry gone from the open calls",
        lambda: not _js(console, f"return !!document.querySelector('{entry}')"),
    )
    console.shot("04-campaign-call-recorded")

    # 导出 CSV: a reason is asked first (the sheet holds phones in clear; the export is read-logged)
    console.tap("#calls-export")
    console.wait_until("the reason asked", lambda: console.errors())
    assert console.errors() == ["请填写导出原因"], console.errors()
    console.fill("#calls-export-reason", "第 1 轮外呼")
    console.tap("#calls-export")
    console.wait_until("the sheet exported", lambda: "已导出外呼名单" in console.element("#notice").text)
    assert console.errors() == []
    # The list: the campaign with its status and current wave; 停止 (confirmed) ends it
    _js(console, "window.scrollTo(0, 0)")
    console.tap("#campaign-back")
    item = f'#campaign-list li[data-campaign="{campaign_id}"]'
    console.wait_until(
        "the campaign in the list", lambda: _js(console, f"return !!document.querySelector('{item}')")
    )
    assert "当前第 1 轮" in console.element(item).text
    assert f"截止 {deadline:%Y-%m-%d}" in console.element(item).text
    console.tap(f'{item} button[data-action="stop"]')
    _accept_confirm(console)
    console.wait_until(
        "stopped",
        lambda: _js(console, f"return !!document.querySelector('{item} [data-status=\"stopped\"]')"),
    )
    status, doc = stack.call("GET", f"/v1/campaigns/{campaign_id}", token=stack.admin_token)
    assert (status, doc["status"]) == (200, "stopped"), doc
    console.shot("05-campaign-stopped-in-list")

    # The page's own errors: none (the refused template's 422 is the browser logging the refusal)
    logged = [e for e in console.console_errors() if "status of 422" not in e]
    assert logged == [], logged

    # The store after: the wave's counters, and the outcome on the call list
    status, progress = stack.call("GET", f"/v1/campaigns/{campaign_id}/progress", token=stack.admin_token)
    assert status == 200, progress
    [first] = [w for w in progress["waves"] if w["wave"] == 1]
    assert first["sent"] >= 2, first
    assert first["skipped"].get("no_phone", 0) >= 1, first
    assert first["called"] >= 1, first
    status, calls = stack.call(
        "GET", f"/v1/campaigns/{campaign_id}/calls?wave=1&open=false", token=stack.admin_token
    )
    assert status == 200, calls
    [call] = [c for c in calls["items"] if c["iccid"] == no_phone]
    assert (call["outcome"], call["note"]) == ("reached", "已电话联系，用户将于本周内登记"), call
    assert {c["campaign_id"] for c in _campaigns(stack)} - before == {campaign_id}
