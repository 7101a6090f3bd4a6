"""The OEM's in-service feed (在用车辆信息, 补登记 第二十二条): which vehicles are in use since when, with the
sales record's contact phone. Idempotent, with a per-row error report, like the inventory's import."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import JSON, Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.auth import Role
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import BadRequest

if TYPE_CHECKING:
    from chalicelib.api import in_service_views as views
    from chalicelib.campaigns import in_service
else:
    views = lazy.module("chalicelib.api.in_service_views")
    in_service = lazy.module("chalicelib.campaigns.in_service")

bp = Blueprint(__name__)

CSV = "text/csv"
IMPORT_ROLES = frozenset({Role.ADMIN, Role.OPERATIONS})


@route(
    bp,
    "/v1/inventory/in-service",
    method="POST",
    summary="Import the in-service feed (CSV or JSON: iccid or vin, in_service_since, contact_phone, "
    "dealer_code): the backfill targets; idempotent, per-row error report",
    roles=IMPORT_ROLES,
    response=lambda: in_service.InServiceReport,
    content_types=(CSV, JSON),
    raw_body=True,
    query=lambda: views.InServiceQuery,
    tags=("inventory",),
)
def import_in_service(call: Call) -> in_service.InServiceReport:
    fmt = call.query.format
    if fmt is None:
        content_type = call.request.headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = "json" if content_type == JSON else "csv"
    if not call.body:
        raise BadRequest("request.empty", "请求内容为空", "The request body is empty")
    rows = in_service.parse_in_service(call.body, fmt, max_rows=get_settings().max_import_rows)
    return deps.in_service_import().run(rows, actor=call.actor)
