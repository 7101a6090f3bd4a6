"""The review console in the browser, against the stack ``make run`` starts: a reviewer signs in (password
+ TOTP at the local provider), sees the queues (人工审核 with its reason filter, 抽查, 投诉举报 and, where
企业批次), answers a complaint, opens a review case whose flow holds a document photo, views the photo
through its short-lived link — drawn by the server with the reviewer's watermark, the view recorded in
the read log — and decides the case; then opens a fleet batch waiting for review, views its licence, and
is refused the decision because they are affiliated with the enterprise, the refusal told as the API
gives it.

Screenshots: ``<tmp dir>/screenshots/*.png``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.conftest import ROOT, Stack
from tests.e2e.test_console_signin import staff_sign_in
from tests.e2e.test_h5_registration import Phone

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


@pytest.fixture
def console(browser: WebDriver, stack: Stack, tmp_path: Path, camera: Path) -> Phone:
    return Phone(browser, stack, tmp_path, camera)


#: A flow sent to a reviewer with a photo in it, through the verification service on the stack's store:
#: the owner uploads their 行驶证 (presigned, put, completed like the H5 client), the identity authority
#: cannot answer and the flow goes to review. Prints the case id, the flow id and the photo's size.
_CASE_WITH_A_PHOTO = """
import io
from PIL import Image
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import FlowPurpose, ReviewReason
from tests.synthetic_documents import vehicle_licence

owner = "e2e-console-review-owner"
service = deps.verification_service()
flow = service.open_flow(owner, FlowPurpose.REGISTRATION)
kind = DocumentKind.VEHICLE_LICENCE
form = service.presign_upload(flow.flow_id, owner, kind, "image/jpeg")
photo = vehicle_licence(vin="LSVAM4187C2184847")
bucket = get_settings().documents_bucket
client("s3").put_object(Bucket=bucket, Key=form.key, Body=photo, ContentType="image/jpeg")
stored = service.complete_upload(flow.flow_id, owner, kind, form.key)
case = service.open_case(flow.flow_id, owner, ReviewReason.AUTHORITY_UNAVAILABLE)
print(case.case_id, flow.flow_id, stored.width, stored.height)
"""


#: A fleet batch waiting for a reviewer, as the workflow leaves it after its automatic checks: the batch
#: (its flow holding the business licence), the case's round with its checks and deadline, and the
#: review task's token held. Prints the batch id.
_FLEET_CASE = """
import secrets
from chalicelib.adapters.dynamo.fleet import DynamoBatchStore
from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.fleet.cases_domain import CaseStage
from chalicelib.fleet.domain import BatchKind, BatchStatus, FleetBatch
from chalicelib.kernel.clock import utc_now
from chalicelib.verification.domain.documents import DocumentKind
from chalicelib.verification.domain.flows import FlowPurpose
from tests.synthetic_documents import business_licence

agent = "e2e-console-fleet-agent"
service = deps.verification_service()
flow = service.open_flow(agent, FlowPurpose.ENTERPRISE_REGISTRATION)
kind = DocumentKind.BUSINESS_LICENCE
form = service.presign_upload(flow.flow_id, agent, kind, "image/jpeg")
bucket = get_settings().documents_bucket
client("s3").put_object(Bucket=bucket, Key=form.key, Body=business_licence(), ContentType="image/jpeg")
service.complete_upload(flow.flow_id, agent, kind, form.key)
now = utc_now()
batch = FleetBatch(
    batch_id="fb_" + secrets.token_hex(12),
    uscc="91110000802100433B",
    company_name="北京星河车联科技有限公司",
    kind=BatchKind.REGISTRATION,
    status=BatchStatus.SUBMITTED,
    created_by=agent,
    created_at=now,
    updated_at=now,
    vins=("LSVAM4187C2184847", "LSVAM4187C2184848", "LSVAM4187C2184849"),
    flow_id=flow.flow_id,
    submitted_at=now,
)
DynamoBatchStore(deps.field_cipher()).create(batch)
cases = deps.fleet_cases()
checks = [
    {"name": "uscc", "verdict": "passed", "detail_zh": "统一社会信用代码有效，与营业执照一致"},
    {"name": "company_name", "verdict": "passed", "detail_zh": "营业执照名称与单位名称、填写名称一致"},
]
cases.open_round(batch, checks, "review")
cases.hold_review_token(batch.batch_id, "e2e-review-token-" + secrets.token_hex(8), CaseStage.FIRST)
print(batch.batch_id)
"""


def _run(stack: Stack, script: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1].split()


def _case_with_a_photo(stack: Stack) -> tuple[str, str, tuple[int, int]]:
    case_id, flow_id, width, height = _run(stack, _CASE_WITH_A_PHOTO)
    return case_id, flow_id, (int(width), int(height))


def _sign_in(console: Phone, stack: Stack) -> None:
    staff_sign_in(console, stack, "reviewer")
    console.wait_until("the console's home", lambda: console.screen() == "home", timeout=30)


def _js(console: Phone, script: str) -> Any:
    return console.driver.execute_script(script)


def _choose(console: Phone, css: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(console.element(css)).select_by_value(value)


def test_a_reviewer_works_the_queues_views_watermarked_documents_decides_and_is_told_a_refusal(
    console: Phone, stack: Stack
) -> None:
    case_id, flow_id, size = _case_with_a_photo(stack)
    owner = stack.cheka(
        "token", "issue", "--subject", "e2e-complainer", "--role", "owner", "--ttl", "600"
    ).strip()
    complaint = {
        "category": "service",
        "description": "审核结果短信一直没有收到。",
        "contact_phone": "13912340077",
    }
    status, filed = stack.call("POST", "/v1/me/complaints", complaint, token=owner)
    assert status == 201, filed
    _sign_in(console, stack)

    # The queues: 人工审核 first, with the case just opened in it
    console.wait_until(
        "the case in the review queue",
        lambda: _js(console, f"return !!document.querySelector('#queue-list li[data-case=\"{case_id}\"]')"),
    )
    tabs = _js(
        console,
        "return Array.from(document.querySelectorAll('#tabs button:not([hidden])')).map(b => b.textContent)",
    )
    assert tabs[0] == "人工审核", tabs
    assert {"抽查", "投诉举报"} <= set(tabs), tabs
    # The reason filter: 人脸人工审核 hides the case (its reason is the authority), 人工实名认证 shows it
    _choose(console, "#review-group", "face")
    assert _js(console, f"return document.querySelector('#queue-list li[data-case=\"{case_id}\"]').hidden")
    _choose(console, "#review-group", "identity")
    assert not _js(
        console, f"return document.querySelector('#queue-list li[data-case=\"{case_id}\"]').hidden"
    )
    console.shot("01-console-queues-review")

    # The spot checks answer too (their list, or their empty note, and no refusal)
    console.tap('#tabs button[data-tab="spot"]')
    console.wait_until(
        "the spot checks",
        lambda: _js(
            console,
            "const pane = document.querySelector('#queues .tab[data-tab=\"spot\"]');"
            "return !pane.hidden && (pane.querySelectorAll('li').length > 0"
            " || !document.getElementById('spot-empty').hidden)",
        ),
    )
    assert console.errors() == [], console.errors()

    # 投诉举报: the complaint with its deadline, answered to the person
    number = filed["complaint_id"]
    item = f'#complaint-list li[data-complaint="{number}"]'
    console.tap('#tabs button[data-tab="complaints"]')
    console.wait_until("the complaint", lambda: _js(console, f"return !!document.querySelector('{item}')"))
    shown = console.element(item).text
    assert "答复时限" in shown
    assert "剩余" in shown
    assert "139****0077" in shown
    console.shot("02-console-complaint")
    console.fill(f"{item} textarea", "已为您重新发送审核结果短信，请查收。")
    console.tap(f"{item} .answer-form button")
    console.wait_until(
        "the answered complaint gone from 待处理",
        lambda: not _js(console, f"return !!document.querySelector('{item}')"),
    )
    status, mine = stack.call("GET", "/v1/me/complaints", token=owner)
    [answered] = [c for c in mine["complaints"] if c["complaint_id"] == number]
    assert (answered["status"], answered["answer"]) == ("closed", "已为您重新发送审核结果短信，请查收。")
    console.tap('#tabs button[data-tab="review"]')

    # The case page: its documents, each through a link
    console.tap(f'#queue-list li[data-case="{case_id}"]')
    console.wait_until(
        "the case page",
        lambda: (
            console.screen() == "case"
            and _js(console, "return document.querySelectorAll('.doc-view').length")
        ),
    )
    page = console.element('section[data-screen="case"]').text
    assert "身份核验服务暂不可用" in page
    assert "机动车行驶证" in page
    console.tap('.doc-view[data-document="vehicle_licence"]')
    console.wait_until(
        "the watermarked image",
        lambda: _js(
            console,
            "const i = document.getElementById('viewer-image'); return i.complete && i.naturalWidth > 0",
        ),
    )
    src = str(_js(console, "return document.getElementById('viewer-image').src"))
    assert "/v1/console/documents/" in src
    natural = _js(
        console, "const i = document.getElementById('viewer-image'); return [i.naturalWidth, i.naturalHeight]"
    )
    assert tuple(natural) == size, "the served image has the stored photo's size"
    assert "仅供审核" in console.element("#viewer").text
    console.shot("03-console-document-watermarked")

    # The view was recorded in the read log (an auditor finds it by the flow)
    auditor = stack.cheka(
        "token", "issue", "--subject", "e2e-auditor", "--role", "auditor", "--ttl", "600"
    ).strip()
    status, reads = stack.call("GET", f"/v1/audit/reads?record_kind=flow&record_id={flow_id}", token=auditor)
    assert status == 200, reads
    assert [r["fields"] for r in reads["reads"]] == [["documents.vehicle_licence"]], reads
    assert case_id in reads["reads"][0]["route"]
    # The link is short-lived and single-purpose: the image itself is never cached
    status, _ = stack.call("GET", src.split(stack.api, 1)[1][:-8] + "AAAAAAAA")
    assert status == 403

    # The decision
    console.tap("#viewer-close")
    console.tap('#decision-form input[value="approve"]')
    console.fill("#decision-form textarea", "证件与登记信息一致")
    console.tap("#decide")
    console.wait_until("the decided case", lambda: "已通过" in console.element("#case-sub").text)
    console.shot("04-console-case-decided")
    reviewer_token = str(_js(console, "return sessionStorage.getItem('cheka.console.token')"))
    status, case = stack.call("GET", f"/v1/review-cases/{case_id}", token=reviewer_token)
    assert (status, case["case"]["status"]) == (200, "approved"), case
    assert console.console_errors() == [], console.console_errors()

    # 企业批次: a batch waiting for review, its licence watermarked, and a refusal told as the API gives it
    [batch_id] = _run(stack, _FLEET_CASE)
    subject = str(_js(console, "return sessionStorage.getItem('cheka.console.subject')"))
    body = {"usccs": ["91110000802100433B"]}
    status, held = stack.call("PUT", f"/v1/admin/staff/{subject}/affiliations", body, token=stack.admin_token)
    assert status == 200, held
    console.driver.execute_script("window.scrollTo(0, 0)")
    console.tap("#back")
    console.tap('#tabs button[data-tab="fleet"]')
    row = f'#fleet-list li[data-batch="{batch_id}"]'
    console.wait_until(
        "the batch in the fleet queue", lambda: _js(console, f"return !!document.querySelector('{row}')")
    )
    assert "剩余" in console.element(row).text, "the SLA timer counts down to the deadline"
    console.shot("05-console-fleet-queue")
    console.tap(row)
    console.wait_until(
        "the fleet case", lambda: _js(console, "return !!document.getElementById('decision-form')")
    )
    page = console.element('section[data-screen="case"]').text
    assert "营业执照名称与单位名称、填写名称一致" in page
    assert "审批流程记录" in page
    console.tap('.doc-view[data-document="business_licence"]')
    console.wait_until(
        "the watermarked licence",
        lambda: _js(
            console,
            "const i = document.getElementById('viewer-image'); return i.complete && i.naturalWidth > 0",
        ),
    )
    console.tap("#viewer-close")
    console.tap('#decision-form input[value="approve"]')
    console.tap("#decide")
    console.wait_until("the refusal", lambda: console.errors())
    assert console.errors() == ["您与该单位存在关联关系，不得审核该单位的批次"], console.errors()
    console.shot("06-console-fleet-conflict-of-interest")
