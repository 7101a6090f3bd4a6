"""Fleet batches of the enterprise (单位车辆实名登记 / 解除登记, seed 000 §3–§4): built step by step by the
enterprise's legal-person account or an approved agent, submitted for review, resubmitted when the
reviewer asks for documents; and the printable templates of the authorization letter and the custody
agreement.

Who acts for which enterprise is re-read on every call; a batch of another enterprise is answered as
unknown. The responsible person's identity, ID photos, face and the document photos go through the
existing flow routes (``/v1/flows/{flow_id}/...``) with the batch's ``flow_id``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chalice.app import Response

from chalicelib.api.clients import asking_for_codes
from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Principal, Role
from chalicelib.kernel.errors import NotFound

if TYPE_CHECKING:
    from chalicelib.api import fleet_views as views
    from chalicelib.fleet import batches, csv_rows
    from chalicelib.fleet.domain import FleetBatch
    from chalicelib.sms import domain as sms_domain
    from chalicelib.sms.domain import SentCode
else:
    views = lazy.module("chalicelib.api.fleet_views")
    batches = lazy.module("chalicelib.fleet.batches")
    csv_rows = lazy.module("chalicelib.fleet.csv_rows")
    sms_domain = lazy.module("chalicelib.sms.domain")

bp = Blueprint(__name__)

#: Any signed-in portal account (the service decides which enterprise it acts for).
ACCOUNT_ROLES = frozenset({Role.ACCOUNT, Role.ENTERPRISE_LEGAL, Role.ENTERPRISE_AGENT})
PREFIX = "/v1/enterprise/fleet/batches"
TAGS = ("fleet",)


def _live(principal: Principal) -> None:
    """A portal account's token is honoured only while its sign-in session lives."""
    deps.accounts().require_live_session(principal)


def _view(batch: FleetBatch) -> Any:
    from chalicelib.fleet.domain import BatchStatus
    from chalicelib.fleet.reasons import texts

    service = deps.fleet_batches()
    progress = service.progress_of(batch)
    states: dict[str, list[str]] = {}
    if batch.status in (BatchStatus.APPROVED, BatchStatus.COMPLETED):
        for vin, facts in service.vehicle_facts(batch.vins).items():
            states[vin] = list(facts.card_states)
    reasons = [views.FleetReasonView(**r) for r in texts(list(batch.outcome_reasons))]
    return views.batch_view(
        progress, consent_texts=service.consent_texts(), reasons=reasons, card_states=states
    )


def _added(added: batches.Added) -> Any:
    return views.FleetAddedView(
        added=list(added.added),
        rows=[views.row_view(r) for r in added.rows],
        vehicles=len(added.batch.vins),
    )


@route(
    bp,
    PREFIX,
    method="POST",
    summary="Start a fleet batch (registration or de-registration) of the enterprise the caller acts for",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetCreateBody,
    response=lambda: views.FleetBatchView,
    status=201,
    errors=(403, 404),
    tags=TAGS,
)
def create_batch(call: Call) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().create(call.user, call.body.kind))


@route(
    bp,
    PREFIX,
    summary="The enterprise's fleet batches, newest first",
    roles=ACCOUNT_ROLES,
    query=lambda: views.FleetBatchQuery,
    response=lambda: views.FleetBatchList,
    errors=(403,),
    tags=TAGS,
)
def list_batches(call: Call) -> Any:
    _live(call.user)
    query = call.query
    found, cursor = deps.fleet_batches().listing(
        call.user, query.kind, query.status, query.limit, query.cursor
    )
    return views.FleetBatchList(items=[views.summary(b) for b in found], next_cursor=cursor)


@route(
    bp,
    PREFIX + "/{batch_id}",
    summary="A batch: its vehicles, the next step, the steps missing, documents, reasons and progress",
    roles=ACCOUNT_ROLES,
    response=lambda: views.FleetBatchView,
    errors=(403, 404),
    tags=TAGS,
)
def get_batch(call: Call, batch_id: str) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().batch_of(call.user, batch_id))


@route(
    bp,
    PREFIX + "/{batch_id}/vehicles",
    method="POST",
    summary="Add vehicles by VIN (one, or many pasted); every row told with its outcome, good rows go on",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetVinsBody,
    response=lambda: views.FleetAddedView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def add_vehicles(call: Call, batch_id: str) -> Any:
    _live(call.user)
    rows = csv_rows.parse_pasted(call.body.vins)
    return _added(deps.fleet_batches().add_vehicles(call.user, batch_id, rows))


@route(
    bp,
    PREFIX + "/{batch_id}/vehicles/csv",
    method="POST",
    summary="Add vehicles from a CSV text (header optional); bad rows reported with their line numbers",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetCsvBody,
    response=lambda: views.FleetAddedView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def add_vehicles_csv(call: Call, batch_id: str) -> Any:
    _live(call.user)
    rows = csv_rows.parse_csv(call.body.csv)
    return _added(deps.fleet_batches().add_vehicles(call.user, batch_id, rows))


@route(
    bp,
    PREFIX + "/{batch_id}/vehicles/{vin}",
    method="DELETE",
    summary="Take a vehicle out of the draft batch",
    roles=ACCOUNT_ROLES,
    response=lambda: views.FleetBatchView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def remove_vehicle(call: Call, batch_id: str, vin: str) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().remove_vehicle(call.user, batch_id, vin))


@route(
    bp,
    PREFIX + "/{batch_id}/dealers",
    summary="The dealers that sold the batch's vehicles (the enterprise ticks the one that sold them)",
    roles=ACCOUNT_ROLES,
    response=lambda: views.FleetDealerList,
    errors=(403, 404),
    tags=TAGS,
)
def list_dealers(call: Call, batch_id: str) -> Any:
    _live(call.user)
    service = deps.fleet_batches()
    batch = service.batch_of(call.user, batch_id)
    items = [views.dealer_view(d) for d in service.dealers(call.user, batch_id)]
    return views.FleetDealerList(items=items, selected=batch.dealer_code)


@route(
    bp,
    PREFIX + "/{batch_id}/dealer",
    method="PUT",
    summary="Choose the selling dealer (one that sold vehicles of the batch)",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetDealerBody,
    response=lambda: views.FleetBatchView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def choose_dealer(call: Call, batch_id: str) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().choose_dealer(call.user, batch_id, call.body.dealer_code))


@route(
    bp,
    PREFIX + "/{batch_id}/responsible-phone/code",
    method="POST",
    summary="Send a code to the responsible person's phone (车辆负责人手机号)",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetPhoneBody,
    response=lambda: sms_domain.SentCode,
    status=202,
    errors=(403, 404, 409, 428, 429, 503),
    tags=TAGS,
)
def send_phone_code(call: Call, batch_id: str) -> SentCode:
    _live(call.user)
    body = call.body
    with asking_for_codes(call.request, call.user.subject, body.captcha_id, body.captcha_answer):
        sent: SentCode = deps.fleet_batches().send_phone_code(call.user, batch_id, body.phone)
    return sent


@route(
    bp,
    PREFIX + "/{batch_id}/responsible-phone",
    method="PUT",
    summary="Prove the responsible person's phone with its code",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetPhoneCodeBody,
    response=lambda: views.FleetBatchView,
    errors=(403, 404, 409, 429),
    tags=TAGS,
)
def verify_phone(call: Call, batch_id: str) -> Any:
    _live(call.user)
    body = call.body
    return _view(deps.fleet_batches().verify_phone(call.user, batch_id, body.phone, body.code))


@route(
    bp,
    PREFIX + "/{batch_id}/consents",
    method="POST",
    summary="Accept the custody agreement and the IoV agreement (registration agreement, responsibility "
    "notice) at their current versions",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetConsentsBody,
    response=lambda: views.FleetBatchView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def accept_consents(call: Call, batch_id: str) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().accept_consents(call.user, batch_id, call.body.texts))


@route(
    bp,
    PREFIX + "/{batch_id}/submit",
    method="POST",
    summary="Submit the batch for review: every step done, the company's full name as on the licence",
    roles=ACCOUNT_ROLES,
    body=lambda: views.FleetSubmitBody,
    response=lambda: views.FleetBatchView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def submit_batch(call: Call, batch_id: str) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().submit(call.user, batch_id, call.body.company_name))


@route(
    bp,
    PREFIX + "/{batch_id}/resubmit",
    method="POST",
    summary="Resubmit after replacing the documents the reviewer named: the review goes on",
    roles=ACCOUNT_ROLES,
    response=lambda: views.FleetBatchView,
    errors=(403, 404, 409),
    tags=TAGS,
)
def resubmit_batch(call: Call, batch_id: str) -> Any:
    _live(call.user)
    return _view(deps.fleet_batches().resubmit(call.user, batch_id))


@route(
    bp,
    "/v1/enterprise/fleet/templates/{name}",
    summary="A printable template (authorization_letter, custody_agreement) to fill in, sign and stamp",
    roles=ACCOUNT_ROLES,
    errors=(404,),
    produces="text/html",
    tags=TAGS,
)
def template(call: Call, name: str) -> Response:
    from chalicelib.fleet.templates import TEMPLATES, template_html

    if name not in TEMPLATES:
        raise NotFound("fleet.template_not_found", "没有该模板", "No such template", field="name")
    return Response(
        body=template_html(name),
        status_code=200,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}.html"',
            "Cache-Control": "private, max-age=300",
        },
    )
