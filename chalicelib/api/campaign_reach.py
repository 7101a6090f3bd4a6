"""Backfill campaigns (补登记) beyond the SMS: the provider's reply callback (a keyword opts the phone
out of campaign messages), the owner's notice of their unregistered cards with the deadline and their
opt-out link, and the call list a call centre works (a sheet with the phones in clear, read-logged, and
each call's outcome recorded back).

An opt-out never touches a registration's own SMS (login and verification codes). Phones are known by
their keyed hash; a listing shows them masked; the sheet shows them in clear only with ``?reason=``, every
entry so read recorded in the read log before the sheet leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Response

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role
from chalicelib.core.observability import logger

if TYPE_CHECKING:
    from chalicelib.api import campaign_reach_views as views
    from chalicelib.campaigns import reach
else:
    views = lazy.module("chalicelib.api.campaign_reach_views")
    reach = lazy.module("chalicelib.campaigns.reach")

bp = Blueprint(__name__)

OWNER = frozenset({Role.OWNER})
#: Who reads the call list (masked) and records outcomes.
CALL_READ_ROLES = frozenset({Role.CALL_CENTRE, Role.ADMIN, Role.OPERATIONS, Role.AUDITOR})
CALL_WORK_ROLES = frozenset({Role.CALL_CENTRE, Role.ADMIN, Role.OPERATIONS})
#: Who exports the sheet with the phones in clear (with a reason, read-logged).
CALL_SHEET_ROLES = frozenset({Role.CALL_CENTRE, Role.ADMIN})
TAGS = ("campaigns",)
NEXT_CURSOR_HEADER = "X-Next-Cursor"


@route(
    bp,
    "/v1/sms/replies",
    method="POST",
    summary="The SMS provider's reply callback (X-Cheka-Signature: HMAC-SHA256 of the X-Cheka-Timestamp, "
    "a dot and the raw body; the timestamp within 5 minutes of now): a keyword (TD, 退订, STOP…) opts the "
    "phone out of backfill campaign SMS unless the owner opted in more than 5 minutes after it; any other "
    "text is ignored; the same signed callback again is a duplicate and changes nothing",
    roles=None,
    raw_body=True,
    response=lambda: views.SmsReplyView,
    errors=(401, 503),
    tags=TAGS,
)
def sms_reply(call: Call) -> Any:
    from chalicelib.api.http import _parse_body
    from chalicelib.core.settings import get_settings

    raw: bytes = call.body
    service = deps.campaign_reach()
    # Checked over the bytes received, before anything is read from them.
    headers = call.request.headers
    signed_at = service.check_reply_signature(
        raw, headers.get(reach.SIGNATURE_HEADER.lower()), headers.get(reach.TIMESTAMP_HEADER.lower())
    )
    body: views.SmsReplyBody = _parse_body(  # type: ignore[assignment]
        call.request, views.SmsReplyBody, get_settings().max_body_bytes
    )
    # Named by the provider's message id, else by what its signature covers: the same message again
    # (signed anew or not) is answered ``duplicate``.
    digest = reach.message_digest(body.message_id) if body.message_id else reach.reply_digest(signed_at, raw)
    outcome = service.reply(body.phone, body.text, body.received_at, signed_at, digest=digest)
    # The outcome only: never the phone or the text.
    logger.info("sms reply handled", extra={"outcome": outcome.value})
    return views.SmsReplyView(outcome=outcome)


def _notice(notice: reach.Notice) -> Any:
    """The notice as answered: its full VINs only where the stage's possession policy trusts the sales
    record's phone and the vehicle's owner phone is the one the owner signed in with."""
    from chalicelib.core.settings import get_settings

    return views.notice_view(notice, get_settings().campaign_message_link)


@route(
    bp,
    "/v1/me/backfill",
    summary="我的待补登记车辆: my cards in service and not registered, with the deadline to register them "
    "by, and whether my phone opted out of backfill SMS",
    roles=OWNER,
    response=lambda: views.BackfillNoticeView,
    tags=TAGS,
)
def my_backfill(call: Call) -> Any:
    return _notice(deps.campaign_reach().notice(call.user.subject))


@route(
    bp,
    "/v1/me/backfill/opt-out",
    method="POST",
    summary="不再接收补登记短信: no more backfill campaign SMS to my phone (registration SMS still come)",
    roles=OWNER,
    response=lambda: views.BackfillNoticeView,
    errors=(409,),
    tags=TAGS,
)
def opt_out(call: Call) -> Any:
    notice = deps.campaign_reach().opt_out(call.user.subject)
    logger.info("backfill opt-out", extra={"via": "link", "cards": len(notice.cards)})
    return _notice(notice)


@route(
    bp,
    "/v1/me/backfill/opt-out",
    method="DELETE",
    summary="重新接收补登记短信: backfill campaign SMS to my phone again",
    roles=OWNER,
    response=lambda: views.BackfillNoticeView,
    errors=(409,),
    tags=TAGS,
)
def opt_in(call: Call) -> Any:
    notice = deps.campaign_reach().opt_in(call.user.subject)
    logger.info("backfill opt-in", extra={"cards": len(notice.cards)})
    return _notice(notice)


@route(
    bp,
    "/v1/campaigns/{campaign_id}/calls",
    summary="The campaign's call list (failed sends, cards without a phone, unconfirmed sends), phones "
    "masked; by wave, open entries only with ?open=true",
    roles=CALL_READ_ROLES,
    query=lambda: views.CallsQuery,
    response=lambda: views.CallPage,
    errors=(404, 422),
    tags=TAGS,
)
def list_calls(call: Call, campaign_id: str) -> Any:
    q = call.query
    rows, cursor = deps.campaign_reach().calls(
        campaign_id, wave=q.wave, open_only=q.open, cursor=q.cursor, limit=q.limit
    )
    return views.CallPage(items=[views.call_view(r) for r in rows], next_cursor=cursor)


@route(
    bp,
    "/v1/campaigns/{campaign_id}/calls.csv",
    summary="The call centre's sheet (CSV, UTF-8): phones in clear, so a reason is required (?reason=), "
    "each entry read recorded in the read log; at most 2000 lines, the next sheet from X-Next-Cursor",
    roles=CALL_SHEET_ROLES,
    query=lambda: views.CallsCsvQuery,
    errors=(404, 422, 503),
    tags=TAGS,
    produces="text/csv",
)
def export_calls(call: Call, campaign_id: str) -> Response:
    from chalicelib.api.audit import read_of, record_reads
    from chalicelib.audit.domain import RecordKind, reason_text

    q = call.query
    reason = reason_text(q.reason or "")  # required here: none is refused like a short one
    rows, cursor = deps.campaign_reach().call_sheet(
        campaign_id, wave=q.wave, open_only=q.open, cursor=q.cursor
    )
    reads = [read_of(RecordKind.CARD, r.entry.iccid, ["contact_phone"]) for r in rows if r.phone]
    record_reads(call, [r for r in reads if r is not None], reason)
    logger.info("call sheet exported", extra={"campaign_id": campaign_id, "lines": len(rows)})
    headers: dict[str, str | list[str]] = {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="calls-{campaign_id}.csv"',
        "Cache-Control": "no-store",
    }
    if cursor:
        headers[NEXT_CURSOR_HEADER] = cursor
    return Response(body=views.call_sheet(rows), status_code=200, headers=headers)


@route(
    bp,
    "/v1/campaigns/{campaign_id}/calls/{wave}/{iccid}/outcome",
    method="POST",
    summary="Record a call's outcome (a later one replaces it; each is kept); the first counts the "
    "wave's `called`",
    roles=CALL_WORK_ROLES,
    body=lambda: views.CallOutcomeBody,
    response=lambda: views.CallView,
    errors=(404,),
    tags=TAGS,
)
def record_call_outcome(call: Call, campaign_id: str, wave: str, iccid: str) -> Any:
    from chalicelib.campaigns.reach import call_not_found

    if not (wave.isascii() and wave.isdigit()) or not 1 <= int(wave) <= 99:
        raise call_not_found(campaign_id, 0)
    body = call.body
    row = deps.campaign_reach().record_outcome(
        campaign_id, int(wave), iccid, body.outcome, body.note, call.actor
    )
    logger.info(
        "call outcome recorded",
        extra={"campaign_id": campaign_id, "wave": int(wave), "outcome": body.outcome.value},
    )
    return views.call_view(row)
