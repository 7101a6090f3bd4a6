"""The OpenAPI 3.1 document, generated from the declared routes and their pydantic models."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib.api.http import ROUTES, RouteSpec
from chalicelib.api.models import ErrorBody

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    400: "Bad request",
    401: "Not signed in",
    403: "Role or ownership does not allow this",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Payload too large",
    422: "A field fails a rule",
    429: "Too many requests",
    500: "Internal error (with a reference id)",
    503: "A dependency is unavailable",
}


def _params(spec: RouteSpec) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", spec.path)
    ]
    query = spec.query
    if query is not None:
        params += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": info.description or "",
                "schema": {"type": "string"},
            }
            for name, info in query.model_fields.items()
        ]
    return params


def _follow_ups(spec: RouteSpec) -> list[tuple[RouteSpec, str]]:
    """The routes under a created resource (``POST /v1/flows`` → ``/v1/flows/{flow_id}/…``) whose first
    path parameter the creating route's answer carries (``flow_id``), with that parameter's name."""
    response = spec.response
    if spec.method != "POST" or "{" in spec.path or response is None:
        return []
    found = []
    for other in ROUTES:
        named = re.match(re.escape(spec.path) + r"/{(\w+)}", other.path)
        if named and named.group(1) in response.model_fields:
            found.append((other, named.group(1)))
    return found


def operation_ids(routes: list[RouteSpec]) -> dict[tuple[str, str], str]:
    """Each route's ``operationId`` by ``(path, method)``: unique in the document, as OpenAPI requires
    (client generators name a method after it and break on a repeat).

    A route's id is its handler's name; a name that handlers of several routes share (``login``,
    ``refresh``, ``logout`` and ``me`` of both the accounts and the auth modules) is qualified by each
    route's first tag, ``accounts_login`` and ``auth_login``. The rule depends on the routes alone, not on
    their order, so the same routes give the same ids at every build; a clash the tag does not settle is
    refused here rather than published."""
    shared = Counter(spec.handler for spec in routes)
    ids: dict[tuple[str, str], str] = {}
    for spec in routes:
        name = spec.handler
        if shared[name] > 1:
            tag = re.sub(r"\W+", "_", spec.tags[0]).strip("_") if spec.tags else ""
            name = f"{tag}_{name}" if tag else f"{spec.method.lower()}_{name}"
        ids[(spec.path, spec.method)] = name
    repeated = sorted(name for name, n in Counter(ids.values()).items() if n > 1)
    if repeated:
        raise ValueError(f"operationIds repeated in the OpenAPI document: {', '.join(repeated)}")
    return ids


def _link_follow_ups(paths: dict[str, dict[str, Any]], ids: dict[tuple[str, str], str]) -> None:
    """OpenAPI ``links`` from each creating route's answer to the routes under what it created, so a
    client (or a stateful fuzzer) can follow a created registration, flow, batch or campaign."""
    for spec in ROUTES:
        follow_ups = _follow_ups(spec)
        if not follow_ups:
            continue
        answer = paths[spec.path][spec.method.lower()]["responses"][str(spec.status)]
        answer["links"] = {
            ids[(other.path, other.method)]: {
                "operationId": ids[(other.path, other.method)],
                "parameters": {name: f"$response.body#/{name}"},
            }
            for other, name in follow_ups
        }


def build(title: str = "cheka", version: str = "1") -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorBody}
    for spec in ROUTES:
        models.update(m for m in (spec.body, spec.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "serialization") for m in ordered], ref_template="#/components/schemas/{model}"
    )

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return refs[(model, "serialization")]

    ids = operation_ids(ROUTES)
    paths: dict[str, dict[str, Any]] = {}
    for spec in ROUTES:
        op: dict[str, Any] = {
            "operationId": ids[(spec.path, spec.method)],
            "summary": spec.summary,
            "tags": list(spec.tags),
            "parameters": _params(spec),
            "responses": {},
        }
        if spec.roles is not None:
            op["security"] = [{"bearer": []}]
            op["x-roles"] = sorted(r.value for r in spec.roles)
        else:
            op["security"] = []
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(spec.body)}},
            }
        elif spec.raw_body:  # read by the handler itself: a JSON object, or text (CSV)
            op["requestBody"] = {
                "required": True,
                "content": {
                    ct: {"schema": {"type": "object"} if ct == "application/json" else {"type": "string"}}
                    for ct in spec.content_types
                },
            }
        ok: dict[str, Any] = {"description": _STATUS_TEXT.get(spec.status, "OK")}
        if spec.response is not None:
            ok["content"] = {spec.produces: {"schema": ref(spec.response)}}
        elif spec.produces != "application/json":
            ok["content"] = {spec.produces: {}}
        for status in (spec.status, *spec.also):
            op["responses"][str(status)] = {**ok, "description": _STATUS_TEXT.get(status, "OK")}
        for status in spec.errors:
            error = {"schema": ref(ErrorBody)}
            if status in spec.also and spec.response is not None:  # either answer (/health's 503)
                error = {"schema": {"anyOf": [ref(spec.response), ref(ErrorBody)]}}
            op["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": error},
            }
        paths.setdefault(spec.path, {})[spec.method.lower()] = op
    _link_follow_ups(paths, ids)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Real-name registration of vehicle IoT cards (车联网卡实名登记). Errors are "
            "JSON {code, message_zh, message_en, field?}.",
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
