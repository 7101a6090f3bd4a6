"""Health, the API description and the landing page."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from chalice.app import Blueprint, Response

from chalicelib.api.http import ApiModel, Call, json_response, route
from chalicelib.core.settings import get_settings

bp = Blueprint(__name__)

_WEB = Path(__file__).resolve().parent.parent / "web"


class DependencyHealth(ApiModel):
    ok: bool
    ms: float
    error: str | None = None


class Health(ApiModel):
    status: str
    stage: str
    checks: dict[str, DependencyHealth]


def _probe(check: Any) -> DependencyHealth:
    start = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a health check reports, it does not raise
        error = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
        return DependencyHealth(ok=False, ms=round((time.perf_counter() - start) * 1000, 1), error=error)
    return DependencyHealth(ok=True, ms=round((time.perf_counter() - start) * 1000, 1))


@route(
    bp,
    "/health",
    summary="Each dependency's health (tables, documents bucket, KMS keys)",
    roles=None,
    response=Health,
    errors=(503,),
    tags=("system",),
)
def health(call: Call) -> Response:
    from chalicelib.adapters.dynamo.models import TABLES
    from chalicelib.core.aws import client

    settings = get_settings()
    ddb, s3, kms = client("dynamodb"), client("s3"), client("kms")
    checks: dict[str, DependencyHealth] = {}
    for spec in TABLES:
        name = settings.table_name(spec.short_name)
        checks[f"table:{spec.short_name}"] = _probe(lambda name=name: ddb.describe_table(TableName=name))
    checks["bucket:documents"] = _probe(lambda: s3.head_bucket(Bucket=settings.documents_bucket))
    for label, alias in (("kms:pii", settings.pii_key_alias), ("kms:pii-hash", settings.hash_key_alias)):
        checks[label] = _probe(lambda alias=alias: kms.describe_key(KeyId=alias))
    ok = all(c.ok for c in checks.values())
    body = Health(status="ok" if ok else "degraded", stage=settings.stage, checks=checks)
    return json_response(200 if ok else 503, body.model_dump(mode="json"))


@lru_cache(maxsize=1)
def _openapi() -> dict[str, Any]:
    from chalicelib.api.openapi import build

    return build()


@route(bp, "/openapi.json", summary="This API's OpenAPI 3 description", roles=None, tags=("system",))
def openapi(call: Call) -> dict[str, Any]:
    return _openapi()


@route(
    bp,
    "/",
    summary="Landing page: what runs here and where",
    roles=None,
    tags=("system",),
    produces="text/html",
)
def index(call: Call) -> Response:
    html = (_WEB / "index.html").read_text(encoding="utf-8")
    return Response(body=html, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})
