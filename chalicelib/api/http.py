"""The one place where HTTP meets the services: authentication, role checks, body parsing, error mapping.

Every route is declared with ``route``: it records the route for the OpenAPI document, checks the
caller's token and role, parses the query and the body into their pydantic models, calls the handler
and dumps the result. A model may be given as a function returning it (``response=lambda:
views.CardView``): a cold start then imports the module defining it only when the route first runs or
the OpenAPI document is first built. Domain errors become ``{code, message_zh, message_en, field?}``
with their status; anything unexpected becomes a 500 with a reference id and no internals. (Chalice
middleware never sees view exceptions, so this happens in the view wrapper.)
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from chalice import app as chalice_app
from chalice.app import Request, Response

from chalicelib.api.middleware import CORRELATION_HEADER, correlation_id_of
from chalicelib.core.auth import Principal, Role, authenticate, authorize
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit, logger
from chalicelib.core.settings import get_settings
from chalicelib.kernel.errors import BadRequest, DomainError, InvalidField, PayloadTooLarge, ValidationErrors

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic_core import ValidationError

JSON = "application/json"


class Blueprint(chalice_app.Blueprint):
    """Chalice's blueprint, registrable on more than one app.

    Chalice consumes a route's stored options when it registers them (it pops ``methods``,
    ``content_types``…), so the same blueprint registered on a second app — ``chalice package`` run
    in-process by infra, a test's own app — would get every route as a GET (or fail on a path with two
    methods). Each registration here starts from a copy of the options as declared."""

    def _register_handler(
        self,
        handler_type: str,
        name: str,
        user_handler: Any,
        wrapped_handler: Any,
        kwargs: dict[str, Any],
        options: dict[Any, Any] | None = None,
    ) -> None:
        declared = copy.deepcopy(kwargs)
        super()._register_handler(handler_type, name, user_handler, wrapped_handler, kwargs, options)
        register = self._deferred_registrations.pop()

        def register_as_declared(app: chalice_app.Chalice, opts: dict[Any, Any]) -> None:
            kwargs.clear()
            kwargs.update(copy.deepcopy(declared))
            register(app, opts)

        self._deferred_registrations.append(register_as_declared)


#: A pydantic model, or a function returning it (called when the model is first needed).
ModelRef: TypeAlias = "type[BaseModel] | Callable[[], type[BaseModel]]"


def resolve(ref: ModelRef | None) -> type[BaseModel] | None:
    """The model ``ref`` stands for."""
    if ref is None or isinstance(ref, type):
        return ref
    return ref()


@dataclass(frozen=True)
class Refusal:
    """How a query parameter that fails its model is refused: ``Annotated[int, Refusal(...)]``.

    Without one, a failing query parameter gives the generic ``field.*`` error (422).
    """

    code: str
    message_zh: str
    message_en: str
    status: int = 422

    def error(self, name: str) -> DomainError:
        if self.status == 400:
            return BadRequest(self.code, self.message_zh, self.message_en, field=name)
        return InvalidField(self.code, self.message_zh, self.message_en, field=name)


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    handler: str
    summary: str
    tags: tuple[str, ...]
    roles: frozenset[Role] | None
    body_ref: ModelRef | None
    response_ref: ModelRef | None
    content_types: tuple[str, ...]
    status: int
    errors: tuple[int, ...]
    query_ref: ModelRef | None = None
    produces: str = JSON
    #: The registration funnel's step this route performs (``Metric.STEP_*``), if any.
    step: str | None = None
    #: Other statuses the route answers with its response model (200 when it resumes what 201 creates).
    also: tuple[int, ...] = ()
    #: The handler reads the body itself (CSV imports, signed callbacks).
    raw_body: bool = False

    @functools.cached_property
    def body(self) -> type[BaseModel] | None:
        return resolve(self.body_ref)

    @functools.cached_property
    def response(self) -> type[BaseModel] | None:
        return resolve(self.response_ref)

    @functools.cached_property
    def query(self) -> type[BaseModel] | None:
        return resolve(self.query_ref)


#: Every declared route, in declaration order (the OpenAPI document is generated from it).
ROUTES: list[RouteSpec] = []


@dataclass
class Call:
    """What a handler receives: the request, the caller, the parsed body and query (their models)."""

    request: Request
    principal: Principal | None
    body: Any
    query: Any

    @property
    def actor(self) -> str:
        return self.principal.subject if self.principal else "anonymous"

    @property
    def user(self) -> Principal:
        assert self.principal is not None, "route declared without roles"
        return self.principal


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def error_response(err: DomainError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
    # 429s carry details.retry_after (kept for clients reading it), the others retry_after_seconds.
    retry_after = err.details.get("retry_after_seconds", err.details.get("retry_after"))
    if err.status in (423, 429, 503) and retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return json_response(err.status, err.to_dict(), headers)


def _pydantic_errors(exc: ValidationError) -> ValidationErrors:
    errors: list[InvalidField] = []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e["loc"]) or None
        kind = e["type"]
        if kind == "missing":
            zh, code = f"缺少必填字段 {loc}", "field.required"
        elif kind == "extra_forbidden":
            zh, code = f"不允许的字段 {loc}", "field.unknown"
        else:
            zh, code = f"字段 {loc} 的值无效", f"field.{kind}"
        errors.append(InvalidField(code, zh, f"{loc}: {e['msg']}", field=loc))
    return ValidationErrors(errors)


#: Query parameters and path segments may not hold control characters (NUL, line breaks…).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _NumberRefused(ValueError):
    """A JSON number Python would turn into ``inf`` or ``nan`` (``1e999``, ``NaN``, ``Infinity``)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NumberRefused(text)
    return value


def _no_constant(text: str) -> Any:
    raise _NumberRefused(text)


def too_large(max_bytes: int) -> PayloadTooLarge:
    """The refusal of a request body over ``max_bytes`` (413)."""
    return PayloadTooLarge(
        "request.too_large",
        f"请求内容过大，不能超过 {max_bytes // (1024 * 1024)} MB",
        f"The request body is larger than {max_bytes} bytes",
        details={"max_bytes": max_bytes},
    )


def _json_refused(zh: str, en: str, code: str = "request.json") -> BadRequest:
    return BadRequest(code, f"请求内容不是有效的 JSON：{zh}", f"The request body is not valid JSON: {en}")


def read_body(request: Request, max_bytes: int) -> bytes:
    """The request's body, refused with ``request.too_large`` (413) when over ``max_bytes``: by its
    declared ``Content-Length`` first, so an oversized body is never decoded."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared.strip())
        except ValueError:
            length = -1
        if length < 0:
            raise BadRequest(
                "request.content_length", "请求头 Content-Length 无效", "The Content-Length header is invalid"
            )
        if length > max_bytes:
            raise too_large(max_bytes)
    given = request.raw_body or b""
    raw = given.encode("utf-8") if isinstance(given, str) else given
    if len(raw) > max_bytes:
        raise too_large(max_bytes)
    return raw


def _check_tree(doc: Any, max_depth: int) -> None:
    """Refuse a parsed document nested deeper than ``max_depth`` or holding text that is not Unicode
    (lone surrogates from ``\\ud800`` escapes, which no store or log can write)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > max_depth:
                raise _json_refused(
                    f"嵌套超过 {max_depth} 层", f"nested deeper than {max_depth} levels", "request.too_deep"
                )
            items = list(node.items()) if isinstance(node, dict) else [(None, v) for v in node]
            for key, value in items:
                if key is not None:
                    stack.append((key, depth))
                stack.append((value, depth + 1))
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise _json_refused("含有无效的 Unicode 字符", "it holds invalid Unicode text") from exc


def parse_json(raw: bytes, max_depth: int) -> Any:
    """``raw`` as a JSON document, refused with a 400 naming what is wrong: not UTF-8, not JSON,
    nested deeper than ``max_depth``, a number Python cannot hold (thousands of digits, ``1e999``,
    ``NaN``), or text that is not Unicode. Nothing here can raise anything but a ``BadRequest``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _json_refused("不是 UTF-8 编码", "it is not UTF-8 text", "request.encoding") from exc
    try:
        doc = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _json_refused(
            f"嵌套超过 {max_depth} 层", f"nested deeper than {max_depth} levels", "request.too_deep"
        ) from exc
    except json.JSONDecodeError as exc:
        raise _json_refused("格式错误", "malformed") from exc
    except ValueError as exc:  # _NumberRefused, or an integer over Python's 4300-digit limit
        raise _json_refused(
            "数字过大或无效", "a number is too large or not finite", "request.number"
        ) from exc
    _check_tree(doc, max_depth)
    return doc


def _parse_body(request: Request, model: type[BaseModel], max_bytes: int, max_depth: int = 32) -> BaseModel:
    raw = read_body(request, max_bytes)
    if not raw:
        raise BadRequest("request.empty", "请求内容为空", "The request body is empty")
    doc = parse_json(raw, max_depth)
    if not isinstance(doc, dict):
        raise BadRequest(
            "request.not_object", "请求内容应为 JSON 对象", "The request body must be a JSON object"
        )
    from pydantic_core import ValidationError  # loaded already with the model

    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise _pydantic_errors(exc) from exc


def _bad_parameter(name: str, zh: str, en: str, code: str = "request.parameter") -> BadRequest:
    return BadRequest(code, f"参数 {name[:40]} {zh}", f"Parameter {name[:40]!r} {en}", field=name[:40])


def check_parameters(request: Request, params: dict[str, str], max_chars: int) -> None:
    """Refuse path and query parameters no route takes: over ``max_chars`` characters, or holding
    control characters (NUL, line breaks); and query parameters given more than once."""
    for name, value in params.items():
        if len(value) > max_chars:
            raise _bad_parameter(
                name, f"过长（超过 {max_chars} 个字符）", f"is longer than {max_chars} characters"
            )
        if _CONTROL.search(value):
            raise _bad_parameter(name, "含有控制字符", "holds control characters")
    query = request.query_params
    if not query:
        return
    for name in query:
        values = query.getlist(name) if hasattr(query, "getlist") else [query[name]]
        if len(name) > max_chars or _CONTROL.search(name):
            raise _bad_parameter(name, "名称无效", "has an invalid name")
        if len(values) > 1:
            raise _bad_parameter(name, "重复出现", "is given more than once", "request.parameter_repeated")
        for value in values:
            if len(value) > max_chars:
                raise _bad_parameter(
                    name, f"过长（超过 {max_chars} 个字符）", f"is longer than {max_chars} characters"
                )
            if _CONTROL.search(value):
                raise _bad_parameter(name, "含有控制字符", "holds control characters")


def check_headers(request: Request, max_chars: int) -> None:
    """Refuse a request with a header value over ``max_chars`` characters (before any of it is read)."""
    for name, value in request.headers.items():
        if isinstance(value, str) and len(value) > max_chars:
            raise BadRequest(
                "request.header_too_large",
                f"请求头 {name[:40]} 过长",
                f"The {name[:40]} header is longer than {max_chars} characters",
                field=name[:40],
            )


def _parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    from pydantic_core import ValidationError  # loaded already with the model

    try:
        return model.model_validate(dict(request.query_params or {}))
    except ValidationError as exc:
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else ""
            info = model.model_fields.get(name)
            refusal = next((m for m in info.metadata if isinstance(m, Refusal)), None) if info else None
            if refusal is not None:
                raise refusal.error(name) from exc
        raise _pydantic_errors(exc) from exc


def step_failure(result: Any) -> str | None:
    """The reason a step's answer says it failed (a face attempt not passed, an identity not confirmed
    by the authority), or None when it passed."""
    if getattr(result, "passed", None) is False:
        reasons = getattr(result, "reasons", None) or ["failed"]
        return str(reasons[0])
    if str(getattr(result, "verdict", "")) == "failed":
        return str(getattr(result, "result", None) or "failed")
    return None


def _step_done(step: str, result: Any) -> None:
    reason = step_failure(result)
    if reason is None:
        emit(Metric.STEP_PASSED, step=step)
    else:
        emit(Metric.STEP_FAILED, step=step, reason=reason)


def _dump(result: Any, status: int) -> Response:
    if isinstance(result, Response):
        return result
    from pydantic import BaseModel  # loaded already when the handler made a model

    if isinstance(result, BaseModel):
        return json_response(status, result.model_dump(mode="json", exclude_none=False))
    return json_response(status, result)


def route(
    bp: chalice_app.Blueprint,
    path: str,
    *,
    method: str = "GET",
    summary: str,
    roles: frozenset[Role] | None,
    body: ModelRef | None = None,
    response: ModelRef | None = None,
    content_types: tuple[str, ...] = (JSON,),
    status: int = 200,
    errors: tuple[int, ...] = (),
    query: ModelRef | None = None,
    tags: tuple[str, ...] = (),
    raw_body: bool = False,
    produces: str = JSON,
    step: str | None = None,
    also: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a route. ``roles=None`` makes it public; otherwise the caller needs one of ``roles``.

    With ``raw_body`` the handler parses the body itself (e.g. CSV uploads) and gets it as bytes.
    ``query`` is the model of the query parameters (each field's ``description`` documents it); a value
    that fails it is refused like a body field, or as its ``Refusal`` says.

    ``step`` names the registration funnel's step the route performs: an authenticated call emits
    ``StepEntered``, then ``StepPassed``, or ``StepFailed`` with the error's code (or the reason the
    answer gives, e.g. a face attempt not passed) as ``reason`` — one seam for the whole funnel.

    ``also`` lists the other statuses the handler answers with the response model (a start that
    resumes an open registration: 200 beside 201), so the OpenAPI document declares them.
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        # Every route refuses a malformed request (an oversized header, a parameter with a NUL…) with 400.
        declared = set(errors) | {400, 500}
        if roles is not None:
            declared |= {401, 403}
        if body is not None or raw_body:
            declared |= {413, 422}
        if query is not None:
            declared |= {422}
        ROUTES.append(
            RouteSpec(
                path=path,
                method=method,
                handler=fn.__name__,
                summary=summary,
                tags=tags,
                roles=roles,
                body_ref=body,
                response_ref=response,
                content_types=content_types,
                status=status,
                errors=tuple(sorted(declared)),
                query_ref=query,
                produces=produces,
                step=step,
                also=also,
                raw_body=raw_body,
            )
        )
        spec = ROUTES[-1]

        @functools.wraps(fn)
        def view(**params: str) -> Response:
            request = bp.current_request
            settings = get_settings()
            entered = False
            try:
                check_headers(request, settings.request_max_header_chars)
                check_parameters(request, params, settings.request_max_param_chars)
                principal = None
                if roles is not None:
                    principal = authenticate(settings, request.headers.get("authorization"))
                    authorize(principal, roles)
                if step is not None:
                    emit(Metric.STEP_ENTERED, step=step)
                    entered = True
                parsed: Any = None
                body_model = spec.body
                if body_model is not None:
                    parsed = _parse_body(
                        request, body_model, settings.max_body_bytes, settings.request_max_json_depth
                    )
                elif raw_body:
                    parsed = read_body(request, settings.max_body_bytes)
                query_model = spec.query
                parsed_query = _parse_query(request, query_model) if query_model is not None else None
                call = Call(request, principal, parsed, parsed_query)
                result = fn(call, **params)
                if step is not None:
                    _step_done(step, result)
                return _dump(result, status)
            except DomainError as err:
                logger.info("request refused", extra={"code": err.code, "status": err.status})
                if entered:
                    emit(Metric.STEP_FAILED, step=str(step), reason=err.code)
                if err.code == "engine.unavailable":
                    emit(Metric.ENGINE_UNAVAILABLE, engine=str(err.details.get("engine", "engines")))
                return error_response(err)
            except Exception as exc:
                from chalicelib.core.outbound import retryable_error

                unavailable = retryable_error(exc)
                if unavailable is not None:  # a dependency failed or was slow: retryable, not a bug
                    logger.warning(
                        "dependency unavailable",
                        extra={"code": unavailable.code, "cause": type(exc).__name__},
                        exc_info=True,
                    )
                    if entered:
                        emit(Metric.STEP_FAILED, step=str(step), reason=unavailable.code)
                    if unavailable.code == "engine.unavailable":
                        emit(Metric.ENGINE_UNAVAILABLE, engine="engines")
                    return error_response(unavailable)
                reference = correlation_id_of(request)
                logger.exception("unexpected error", extra={"reference": reference})
                if entered:
                    emit(Metric.STEP_FAILED, step=str(step), reason="internal")
                return json_response(
                    500,
                    {
                        "code": "internal",
                        "message_zh": f"服务器内部错误，请联系客服并提供编号 {reference}",
                        "message_en": f"Internal error; quote reference {reference} when you contact support",
                        "reference": reference,
                    },
                    {CORRELATION_HEADER: reference},
                )

        bp.route(path, methods=[method], content_types=list(content_types))(view)
        return fn

    return decorate
