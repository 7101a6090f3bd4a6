"""Health, the API description and the landing page."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from chalice.app import Response

from chalicelib.api.http import Blueprint, Call, json_response, route
from chalicelib.core import lazy
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import DomainError

if TYPE_CHECKING:
    from chalicelib.api import system_views as views
    from chalicelib.core.config import Settings
else:
    views = lazy.module("chalicelib.api.system_views")

bp = Blueprint(__name__)

_WEB = Path(__file__).resolve().parent.parent / "web"


#: Seconds one probe may take before it counts as down.
PROBE_TIMEOUT_SECONDS = 2.0
_PROBE_THREADS = 16

_cache_lock = threading.Lock()
#: The settings the cached checks were made with, when (monotonic), and the checks.
_cached: tuple[Any, float, dict[str, views.DependencyHealth]] | None = None


def _error_of(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.code
    response = getattr(exc, "response", None)  # a ClientError's; None on botocore's timeouts
    code = (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None
    return str(code or type(exc).__name__)


def _probe(check: Callable[[], Any], required: bool = True) -> views.DependencyHealth:
    start = time.perf_counter()
    try:
        problem = check()
    except Exception as exc:  # a health check reports, it does not raise
        return views.DependencyHealth(
            ok=False,
            ms=round((time.perf_counter() - start) * 1000, 1),
            error=_error_of(exc),
            required=required,
        )
    ms = round((time.perf_counter() - start) * 1000, 1)
    if isinstance(problem, str) and problem:
        return views.DependencyHealth(ok=False, ms=ms, error=problem, required=required)
    return views.DependencyHealth(ok=True, ms=ms, required=required)


def _probes(settings: Settings) -> dict[str, tuple[Callable[[], Any], bool]]:
    """Every dependency the stage uses, each with its cheap check (a description, not a data read) and
    whether the API needs it to serve."""
    from chalicelib.adapters.dynamo.models import TABLES
    from chalicelib.core.aws import client
    from chalicelib.core.resources import SMS_REPLY_SECRET, TOKEN_SECRET, declare

    declared = declare(settings)
    timeout = PROBE_TIMEOUT_SECONDS
    ddb, s3, kms = (client(name, read_timeout=timeout, retries=0) for name in ("dynamodb", "s3", "kms"))
    sqs, sm = (client(name, read_timeout=timeout, retries=0) for name in ("sqs", "secretsmanager"))
    probes: dict[str, tuple[Callable[[], Any], bool]] = {}
    for spec in TABLES:
        name = settings.table_name(spec.short_name)
        probes[f"table:{spec.short_name}"] = (partial(ddb.describe_table, TableName=name), True)
    probes["bucket:documents"] = (partial(s3.head_bucket, Bucket=declared.bucket.name), True)
    for key in declared.keys:
        probes[f"kms:{key.id}"] = (partial(kms.describe_key, KeyId=key.alias), True)
    for queue in declared.queues:
        probes[f"queue:{queue.id}"] = (partial(_queue, sqs, queue.name), True)
    token_used = settings.token_secret is None and not settings.is_local
    for secret in declared.secrets:
        if secret.id == TOKEN_SECRET and not token_used:
            continue
        if secret.content == "operator_keys":
            continue  # an operator's keys are reported with the operator
        # Without the SMS reply key, replies to campaign SMS are refused (the owner's page still opts
        # out): shown, but the platform is not down for it.
        required = secret.id != SMS_REPLY_SECRET
        probes[f"secret:{secret.id}"] = (partial(sm.describe_secret, SecretId=secret.name), required)
    for kind, engine in (
        ("ocr", settings.ocr_engine),
        ("faces", settings.face_engine),
        ("liveness", settings.liveness_engine),
    ):
        if engine == "local":
            probes[f"engine:{kind}"] = (partial(_local_engine, kind), True)
    if settings.remote_engines:
        probes["engine:function"] = (_engines_function, True)
    if settings.authority_kind == "sandbox":
        probes["authority"] = (partial(_sandbox_authority, settings.authority_base_url), True)
    return probes


def _queue(sqs: Any, name: str) -> None:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])


def _local_engine(kind: str) -> str | None:
    """The in-process engine's modules can be imported (found, not loaded: a health check must not
    pull numpy or dlib into the API)."""
    from importlib.util import find_spec

    from chalicelib.core.config import LOCAL_ENGINE_MODULES

    missing = [m for m in LOCAL_ENGINE_MODULES[kind] if find_spec(m) is None]
    return f"missing {', '.join(missing)}" if missing else None


def _engines_function() -> str | None:
    """The engines function answers its ``ping``."""
    from chalicelib.core import deps

    reply = deps.engine_invoker()({"op": "ping"})
    if "error" in reply:
        error = reply["error"]
        return str(error.get("code") if isinstance(error, dict) else error)
    return None


def _sandbox_authority(base_url: str) -> None:
    import urllib.request

    if not base_url.startswith(("https://", "http://")):  # never file: or another scheme
        raise ValueError("the sandbox authority's address is not http(s)")
    url = f"{base_url}/health"
    with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS):  # noqa: S310 # nosec B310 # http(s) only
        pass


def _check_all(settings: Settings) -> dict[str, views.DependencyHealth]:
    """Every probe at once (a thread each), none waited for beyond ``PROBE_TIMEOUT_SECONDS``; then
    each operator, configured or what it lacks."""
    from chalicelib.kernel.operators import Operator

    probes = _probes(settings)
    pool = ThreadPoolExecutor(max_workers=_PROBE_THREADS, thread_name_prefix="health")
    try:
        futures = {name: pool.submit(_probe, check, required) for name, (check, required) in probes.items()}
        operators = pool.submit(_operators_missing)
        deadline = time.monotonic() + PROBE_TIMEOUT_SECONDS + 0.5
        checks: dict[str, views.DependencyHealth] = {}
        for name, future in futures.items():
            try:
                checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                checks[name] = views.DependencyHealth(
                    ok=False, ms=PROBE_TIMEOUT_SECONDS * 1000, error="timeout", required=probes[name][1]
                )
        try:
            missing = operators.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            missing = dict.fromkeys((op.value for op in Operator), "timeout")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for operator in Operator:
        lacking = missing.get(operator.value)
        checks[f"operator:{operator.value}"] = views.DependencyHealth(
            ok=lacking is None,
            ms=0.0,
            error=None if lacking is None else f"not configured: {lacking}",
            required=False,
        )
    return checks


def _operators_missing() -> dict[str, str]:
    """Operator value → what it lacks (``missing_configuration``; an error: every operator unknown)."""
    from chalicelib.core import deps
    from chalicelib.kernel.operators import Operator

    try:
        return deps.operator_gateway().missing_configuration()
    except Exception as exc:  # a health check reports, it does not raise
        return dict.fromkeys((op.value for op in Operator), _error_of(exc))


def dependency_checks() -> dict[str, views.DependencyHealth]:
    """Each dependency's check, from a cache at most ``health_cache_seconds`` old."""
    global _cached
    settings = get_settings()
    now = time.monotonic()
    with _cache_lock:
        cached = _cached
    if cached is not None and cached[0] is settings and now - cached[1] < settings.health_cache_seconds:
        return cached[2]
    checks = _check_all(settings)
    with _cache_lock:
        _cached = (settings, time.monotonic(), checks)
    return checks


def _is_admin(call: Call, settings: Settings) -> bool:
    from chalicelib.core.auth import Role, authenticate

    header = call.request.headers.get("authorization")
    if not header:
        return False
    try:
        return Role.ADMIN in authenticate(settings, header).roles
    except DomainError:
        return False  # a bad token on /health gets the public answer, not a 401


@route(
    bp,
    "/health",
    summary="Up or down; with an admin token, each dependency the stage uses (tables, bucket, keys, "
    "queues, secrets, engines, authority, operators)",
    roles=None,
    response=lambda: views.Health,
    also=(503,),
    errors=(503,),
    tags=("system",),
)
def health(call: Call) -> Response:
    settings = get_settings()
    checks = dependency_checks()
    down = any(not c.ok and c.required for c in checks.values())
    status: Literal["ok", "down"] = "down" if down else "ok"
    body = views.Health(status=status)
    if _is_admin(call, settings):
        body = views.Health(status=status, stage=settings.stage, checks=checks)
    return json_response(503 if down else 200, body.model_dump(mode="json", exclude_none=True))


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
    data = json.dumps(_landing_data(), ensure_ascii=False).replace("</", "<\\/")
    html = html.replace("{{LANDING_DATA}}", data)
    return Response(body=html, status_code=200, headers={"Content-Type": "text/html; charset=utf-8"})


#: Stages whose landing page lists the demo vehicles of the seed (``cheka seed``).
_DEMO_STAGES = ("local", "test", "dev")


def _landing_data() -> dict[str, Any]:
    """What the landing page links beside the H5 client: the demo vehicles (local and dev stages), the
    SMS drop and the head-unit codes (local stages: where they exist)."""
    settings = get_settings()
    data: dict[str, Any] = {
        "stage": settings.stage,
        "sms_drop": settings.is_local,
        "head_unit": settings.is_local,
        "demo": None,
    }
    if settings.stage in _DEMO_STAGES:
        from chalicelib.core import deps
        from chalicelib.local.seed import demo_vehicles

        try:
            data["demo"] = demo_vehicles(deps.inventory_repo())
        except Exception:  # the page still opens (the health section says what is down)
            from chalicelib.core.observability import logger

            logger.warning("landing page: demo vehicles not read", exc_info=True)
    return data
