"""The models of the backfill campaigns' reach routes (``chalicelib.api.campaign_reach``): the SMS
provider's reply callback, the owner's notice and opt-out, the call list. Loaded on their first use."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import Annotated

from pydantic import AwareDatetime, ConfigDict, Field

from chalicelib.api.http import Refusal
from chalicelib.api.models import ApiModel, PageQuery, ReasonQuery
from chalicelib.campaigns.domain import CallOutcome, CallReason
from chalicelib.campaigns.reach import MAX_NOTE, CallRow, Notice, ReplyOutcome
from chalicelib.kernel.clock import CHINA
from chalicelib.kernel.personal import mask_vin
from chalicelib.registration.views import mask_iccid

CALL_REASON_ZH = {
    CallReason.SEND_FAILED: "短信发送失败",
    CallReason.NO_PHONE: "无联系电话",
    CallReason.UNCONFIRMED: "发送结果未确认",
}
CALL_OUTCOME_ZH = {
    CallOutcome.REACHED: "已联系，车主将办理",
    CallOutcome.NO_ANSWER: "无人接听",
    CallOutcome.WRONG_NUMBER: "号码错误",
    CallOutcome.DECLINED: "车主拒绝",
    CallOutcome.REGISTERED: "已完成登记",
}
_WAVE = Refusal("campaign.wave", "批次应为 1–99", "wave must be 1–99")


class SmsReplyBody(ApiModel):
    """What the SMS provider posts for each reply to a campaign SMS (signed: ``X-Cheka-Signature`` over
    ``X-Cheka-Timestamp`` and the body)."""

    model_config = ConfigDict(extra="ignore")

    phone: str = Field(max_length=20, description="The number that replied (mainland mobile)")
    text: str = Field(max_length=1000, description="The reply as typed")
    received_at: AwareDatetime | None = Field(default=None, description="When the provider received it")
    message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The provider's id of the reply message: a delivery of the same message again (signed "
        "anew) within 10 minutes is answered duplicate and changes nothing",
    )


class SmsReplyView(ApiModel):
    outcome: ReplyOutcome = Field(
        description="opted_out | already_opted_out | ignored | superseded (a keyword sent more than 5 "
        "minutes before the phone's latest opt-in: nothing changed) | duplicate (this signed callback was "
        "handled already: nothing changed)"
    )


class BackfillCardView(ApiModel):
    vin: str | None = Field(
        description="The car's VIN in full, only where the stage's possession policy takes the sales "
        "record's phone as proof (possession_methods has sales_phone) and the vehicle's owner phone is the "
        "phone I signed in with (the proof would pass): the registration it starts is for it. Otherwise "
        "null: the person types or scans the VIN named by vin_masked's tail, as any registration, and "
        "proves they hold the car by another method"
    )
    vin_masked: str
    iccid_masked: str
    deadline: date | None = Field(description="登记截止日期 (China), of the nearest active campaign")
    campaign_name: str | None
    register_url: str = Field(description="The H5 client's page that starts the registration")


class BackfillNoticeView(ApiModel):
    cards: list[BackfillCardView] = Field(description="My cards in service and not yet registered")
    opted_out: bool = Field(description="My phone gets no backfill campaign SMS (registration SMS still)")


class CallsQuery(PageQuery):
    wave: Annotated[int | None, Field(default=None, ge=1, le=99, description="one wave only"), _WAVE] = None
    open: bool = Field(default=False, description="only the entries without an outcome")


class CallsCsvQuery(ReasonQuery):
    wave: Annotated[int | None, Field(default=None, ge=1, le=99, description="one wave only"), _WAVE] = None
    open: bool = Field(default=False, description="only the entries without an outcome")
    cursor: str | None = Field(default=None, max_length=2000, description="X-Next-Cursor of the last sheet")


class CallView(ApiModel):
    campaign_id: str
    wave: int
    iccid: str
    vin: str
    reason: CallReason = Field(description="send_failed | no_phone | unconfirmed")
    reason_zh: str
    created_at: AwareDatetime
    phone_masked: str | None = Field(description="The sales record's contact phone, masked (None: none)")
    outcome: CallOutcome | None = None
    outcome_zh: str | None = None
    outcome_at: AwareDatetime | None = None
    outcome_by: str | None = None
    note: str | None = None


class CallPage(ApiModel):
    items: list[CallView]
    next_cursor: str | None


class CallOutcomeBody(ApiModel):
    model_config = ConfigDict(extra="forbid")

    outcome: CallOutcome = Field(description="reached | no_answer | wrong_number | declined | registered")
    note: str | None = Field(
        default=None, max_length=MAX_NOTE * 4, description=f"At most {MAX_NOTE} characters, no phone numbers"
    )


def notice_view(notice: Notice, link: str) -> BackfillNoticeView:
    """The owner's notice. The cards are found because the in-service feed's contact phone is the phone
    the owner signs in with; a phone proves they hold the car only where the possession policy enables
    ``sales_phone`` and it is the vehicle's own owner phone (``NoticeCard.phone_proves``: the check the
    proof makes). Elsewhere (a stage that does not trust sales phones: mobile numbers are recycled; a
    feed's phone that is not the vehicle's) the full VIN would tell whoever holds the number what a
    registration learns only after a proof, so the notice shows its tail alone (``vin`` null)."""
    return BackfillNoticeView(
        cards=[
            BackfillCardView(
                vin=c.target.vin if c.phone_proves else None,
                vin_masked=mask_vin(c.target.vin),
                iccid_masked=mask_iccid(c.target.iccid),
                deadline=c.deadline,
                campaign_name=c.campaign_name,
                register_url=link,
            )
            for c in notice.cards
        ],
        opted_out=notice.opted_out,
    )


def call_view(row: CallRow) -> CallView:
    e = row.entry
    return CallView(
        campaign_id=e.campaign_id,
        wave=e.wave,
        iccid=e.iccid,
        vin=e.vin,
        reason=e.reason,
        reason_zh=CALL_REASON_ZH[e.reason],
        created_at=e.created_at,
        phone_masked=row.phone,
        outcome=e.outcome,
        outcome_zh=CALL_OUTCOME_ZH[e.outcome] if e.outcome else None,
        outcome_at=e.outcome_at,
        outcome_by=e.outcome_by,
        note=e.note,
    )


#: The export's columns (a header row; UTF-8 with a BOM so that spreadsheet programs read the Chinese).
SHEET_COLUMNS = (
    "campaign_id",
    "wave",
    "iccid",
    "vin",
    "phone",
    "reason",
    "reason_zh",
    "created_at",
    "outcome",
    "outcome_at",
    "note",
)


def call_sheet(rows: Sequence[CallRow]) -> str:
    """The call centre's sheet: one line per entry, the phone in clear, times in China time."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SHEET_COLUMNS)
    for row in rows:
        e = row.entry
        writer.writerow(
            [
                e.campaign_id,
                e.wave,
                e.iccid,
                e.vin,
                row.phone or "",
                e.reason.value,
                CALL_REASON_ZH[e.reason],
                e.created_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M"),
                e.outcome.value if e.outcome else "",
                e.outcome_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if e.outcome_at else "",
                _cell(e.note or ""),
            ]
        )
    return "\ufeff" + out.getvalue()


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
