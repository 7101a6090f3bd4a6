"""The review console's own routes (运营控制台): documents shown to staff through short-lived links, each
view watermarked with the viewer and logged in the read log before the image leaves.

``POST /v1/console/document-links`` ``{record_kind, record_id, document, reason?}`` answers ``{url,
expires_at}``: the url is ``/v1/console/documents/{token}``, a link that lives 60 seconds and names the
staff member, the record and the document (``chalicelib.audit.document_views``). Following it answers
the photo with the viewer's watermark drawn into it and ``Cache-Control: no-store``; every view writes a
read-log item first (the flow holding the photo, the field ``documents.<kind>``, the reason, the route
naming the case), and when it cannot be written the answer is 503 and no image. A link expired, forged,
altered (another record, another document, another viewer) is refused with 403.

Which documents a record has: a review case's flow; a fleet case's batch flow (the batch's slots are
named as the portal names them: ``responsible_id_front`` is the flow's ``id_front``); a spot check's
registration flows (the first that holds the document, or the one named by ``flow_id``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalice.app import Response

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.api.middleware import correlation_id_of
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Principal, Role
from chalicelib.kernel.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from chalicelib.api import console_views as views
    from chalicelib.audit import document_views as links
    from chalicelib.core.token_keys import TokenKeys
    from chalicelib.verification.domain.flows import Flow
else:
    views = lazy.module("chalicelib.api.console_views")
    links = lazy.module("chalicelib.audit.document_views")

bp = Blueprint(__name__)

#: Who may look at a case's documents: the reviewers (and their leads, who take escalated cases) and
#: the auditors who check cases afterwards.
DOCUMENT_ROLES = frozenset({Role.REVIEWER, Role.AUDITOR, *(r for r in Role if r.value == "review_lead")})

_ROLE_VALUES = frozenset(r.value for r in Role)

#: A fleet batch's document slots, as the flow keeps them.
FLEET_SLOTS = {"responsible_id_front": "id_front", "responsible_id_back": "id_back"}


def _not_found() -> NotFound:
    return NotFound(
        "console.document_not_found",
        "该案件没有这份证件照片",
        "The record has no such document",
        field="document",
    )


def _fleet_flow_id(batch_id: str) -> str | None:
    """The verification flow of a fleet batch (its documents and the responsible person)."""
    batch = deps.fleet_batches().get(batch_id)
    return batch.flow_id if batch is not None else None


def _document_of(
    kind: links.DocumentRecord, record_id: str, document: str, flow_id: str | None = None
) -> tuple[Flow, str]:
    """The flow holding the record's document, and the document's kind in that flow (404 when none)."""
    from chalicelib.kernel.errors import DomainError

    service = deps.verification_service()
    candidates: list[str] = []
    name = document
    try:
        if kind is links.DocumentRecord.REVIEW_CASE:
            _, flow = service.review_case(record_id)
            candidates = [flow.flow_id]
        elif kind is links.DocumentRecord.SPOT_CHECK:
            check = deps.spot_checks().check(record_id)
            candidates = [f for f in check.flow_ids if flow_id is None or f == flow_id]
        else:
            name = FLEET_SLOTS.get(document, document)
            found = _fleet_flow_id(record_id)
            candidates = [found] if found else []
    except DomainError as err:
        if err.status == 404:
            raise _not_found() from err
        raise
    for candidate in candidates:
        found_flow = service.flows.find(candidate)
        if found_flow is not None and name in found_flow.documents:
            return found_flow, name
    raise _not_found()


def _link_key() -> bytes:
    from chalicelib.core.settings import get_settings

    return links.link_key(get_settings().signing_secret())


def _open_link(token: str, now: datetime) -> links.DocumentLink:
    """The link a token names, signed with the link key of the current token key or, during a rotation's
    overlap, of the previous one (``chalicelib.core.token_keys``): a rotation breaks no open link. A link
    none of them opens may come from a container that has read a newer version: the keys are read once
    more (at most once per ``MIN_REFRESH_SECONDS``, as for tokens naming an unknown key)."""
    from chalicelib.core.settings import get_settings
    from chalicelib.core.token_keys import keys_for, refresh_for

    settings = get_settings()
    tried: set[str] = set()
    held: TokenKeys | None = keys_for(settings)
    for attempt in range(2):
        if attempt == 1:
            held = refresh_for(settings)
        if held is None:
            break
        for key in (held.current, held.previous):
            if key is None or key.kid in tried:
                continue
            tried.add(key.kid)
            try:
                return links.open_link(links.link_key(key.secret), token, now)
            except Forbidden as refused:
                if refused.code != "console.document_link_invalid":
                    raise
    raise links.link_refused()


@route(
    bp,
    "/v1/console/document-links",
    method="POST",
    summary="A 60-second link to one document of a case (review case, fleet case, spot check), "
    "shown watermarked with the viewer; each view recorded in the read log",
    roles=DOCUMENT_ROLES,
    body=lambda: views.DocumentLinkBody,
    response=lambda: views.DocumentLinkView,
    status=201,
    errors=(404, 422),
    tags=("console",),
)
def document_link(call: Call) -> views.DocumentLinkView:
    from chalicelib.audit.domain import reason_text
    from chalicelib.kernel.clock import utc_now

    body: views.DocumentLinkBody = call.body
    kind = body.record_kind
    reason = reason_text(body.reason) if body.reason is not None else links.DEFAULT_REASON
    _document_of(kind, body.record_id, body.document, body.flow_id)  # 404 before any link exists
    expires = utc_now().replace(microsecond=0) + timedelta(seconds=links.LINK_SECONDS)
    user = call.user
    named = body.document
    if body.flow_id is not None and kind is links.DocumentRecord.SPOT_CHECK:
        named = f"{body.document}@{body.flow_id}"  # the one flow of the registration it was asked of
    link = links.DocumentLink(
        link_id=uuid.uuid4().hex,
        subject=user.subject,
        roles=tuple(sorted(r.value for r in user.roles)),
        issuer=user.issuer,
        record_kind=kind,
        record_id=body.record_id,
        document=named,
        reason=reason,
        expires_at=int(expires.timestamp()),
    )
    token = links.sign_link(_link_key(), link)
    return views.DocumentLinkView(url=f"/v1/console/documents/{token}", expires_at=expires)


@route(
    bp,
    "/v1/console/documents/{token}",
    summary="One document through its link: the photo with the viewer's watermark drawn into it "
    "(no-store), after the view is recorded in the read log (503 and no image when it cannot be)",
    roles=None,
    errors=(403, 404, 503),
    tags=("console",),
    produces="image/jpeg",
)
def document_image(call: Call, token: str) -> Response:
    from chalicelib.audit.domain import Read, RecordKind
    from chalicelib.kernel.clock import utc_now

    now = utc_now()
    link = _open_link(token, now)
    document, _, flow_id = link.document.partition("@")
    flow, name = _document_of(link.record_kind, link.record_id, document, flow_id or None)
    from chalicelib.verification.domain.documents import DocumentKind

    try:
        photo = deps.verification_service().documents.photo(flow, DocumentKind(name))
    except ValueError:
        raise _not_found() from None
    viewer = Principal(
        subject=link.subject,
        roles=frozenset(Role(r) for r in link.roles if r in _ROLE_VALUES),
        token_id=link.link_id,
        issuer=link.issuer,
    )
    request = call.request
    deps.read_log().record_many(
        viewer,
        [Read(record_kind=RecordKind.FLOW, record_id=flow.flow_id, fields=(f"documents.{name}",))],
        link.reason,
        route=f"GET /v1/console/documents ({link.record_kind.value} {link.record_id})",
        correlation_id=correlation_id_of(request),
    )
    marked = links.watermark(photo, link.subject, now)
    return Response(
        body=marked,
        status_code=200,
        headers={
            "Content-Type": "image/jpeg",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
