"""The engines function's payloads: the ports' values to JSON and back (both sides use these).

A request is ``{"op": "<port>.<method>", "args": {...}}``; images in it are ``{"b64": "..."}`` (inline) or
``{"s3": "engine-io/..."}`` (staged in the documents bucket when the payload would pass the synchronous
invoke limit: ``staging``). A reply is ``{"ok": <result>, "version": "<engine version>"}`` or
``{"error": <domain error>}``: a ``DomainError`` an engine raised (``face.none``, ``ocr`` unreadable photo,
``liveness.frames_count``...) travels back with its code, messages, field, details and kind, and the remote
adapter raises it again, so a person sees what the in-process engine would have told them.

No numpy here: the API's package imports this module.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

from chalicelib.kernel.errors import (
    BadRequest,
    Conflict,
    DomainError,
    Forbidden,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
)
from chalicelib.verification.domain.authority import ServiceUnavailable
from chalicelib.verification.domain.faces import DetectedFace, FaceComparison, FaceEmbedding
from chalicelib.verification.domain.liveness import LivenessVerdict
from chalicelib.verification.domain.readings import TextLine
from chalicelib.verification.ports import IndexedFace

#: An image in a payload: inline base64, or the key of an object staged in the documents bucket.
ImageRef = dict[str, str]

#: Error kinds re-raised by name (their HTTP status and ``except`` clauses depend on the class).
_ERROR_KINDS: dict[str, type[DomainError]] = {
    cls.__name__: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        Forbidden,
        NotFound,
        Conflict,
        PayloadTooLarge,
        InvalidField,
        TooManyRequests,
        ServiceUnavailable,
    )
}
_BY_STATUS: dict[int, type[DomainError]] = {cls.status: cls for cls in _ERROR_KINDS.values()}


# -- images ------------------------------------------------------------------------------------------------


def inline(image: bytes) -> ImageRef:
    return {"b64": base64.b64encode(image).decode("ascii")}


def staged(key: str) -> ImageRef:
    return {"s3": key}


def image_bytes(ref: Mapping[str, Any], fetch: Callable[[str], bytes]) -> bytes:
    """The image a reference stands for (``fetch`` reads a staged one)."""
    if "b64" in ref:
        return base64.b64decode(ref["b64"], validate=True)
    if "s3" in ref:
        return fetch(str(ref["s3"]))
    raise ValueError("an image reference holds b64 or s3")


def encoded_size(ref: Mapping[str, Any]) -> int:
    """Characters the reference takes in the payload."""
    return sum(len(str(v)) for v in ref.values())


# -- results -----------------------------------------------------------------------------------------------


def lines_to_json(lines: list[TextLine]) -> list[dict[str, Any]]:
    return [line.model_dump(mode="json") for line in lines]


def lines_from_json(data: list[dict[str, Any]]) -> list[TextLine]:
    return [TextLine.model_validate(item) for item in data]


def faces_to_json(faces: list[DetectedFace]) -> list[dict[str, Any]]:
    return [face.model_dump(mode="json") for face in faces]


def faces_from_json(data: list[dict[str, Any]]) -> list[DetectedFace]:
    return [DetectedFace.model_validate(item) for item in data]


def comparison_to_json(comparison: FaceComparison) -> dict[str, Any]:
    return comparison.model_dump(mode="json")


def comparison_from_json(data: Mapping[str, Any]) -> FaceComparison:
    return FaceComparison.model_validate(data)


def embedding_to_json(embedding: FaceEmbedding) -> dict[str, Any]:
    return embedding.model_dump(mode="json")


def embedding_from_json(data: Mapping[str, Any]) -> FaceEmbedding:
    return FaceEmbedding.model_validate(data)


def verdict_to_json(verdict: LivenessVerdict) -> dict[str, Any]:
    """The verdict with its reference image (which ``model_dump`` leaves out on purpose)."""
    body = verdict.model_dump(mode="json")
    body["reference_image"] = None if verdict.reference_image is None else inline(verdict.reference_image)
    return body


def verdict_from_json(data: Mapping[str, Any]) -> LivenessVerdict:
    body = dict(data)
    ref = body.pop("reference_image", None)
    image = None if ref is None else image_bytes(ref, _no_fetch)
    return LivenessVerdict.model_validate({**body, "reference_image": image})


def indexed_to_json(found: list[IndexedFace]) -> list[dict[str, Any]]:
    return [{"template_id": f.template_id, "person_hash": f.person_hash, "score": f.score} for f in found]


def indexed_from_json(data: list[dict[str, Any]]) -> list[IndexedFace]:
    return [
        IndexedFace(
            template_id=str(f["template_id"]), person_hash=str(f["person_hash"]), score=float(f["score"])
        )
        for f in data
    ]


def _no_fetch(key: str) -> bytes:
    raise ValueError(f"a reply never stages an image ({key})")


# -- errors ------------------------------------------------------------------------------------------------


def error_to_json(err: DomainError) -> dict[str, Any]:
    kind = next((cls.__name__ for cls in type(err).__mro__ if cls.__name__ in _ERROR_KINDS), "DomainError")
    return {
        "kind": kind,
        "status": err.status,
        "code": err.code,
        "message_zh": err.message_zh,
        "message_en": err.message_en,
        "field": err.field,
        "details": err.details,
    }


def error_from_json(data: Mapping[str, Any]) -> DomainError:
    """The engine's error as the same kind of ``DomainError`` (an unknown kind: by its HTTP status)."""
    cls = _ERROR_KINDS.get(str(data.get("kind"))) or _BY_STATUS.get(int(data.get("status", 400)), BadRequest)
    return cls(
        str(data["code"]),
        str(data["message_zh"]),
        str(data["message_en"]),
        field=data.get("field"),
        details=dict(data.get("details") or {}),
    )
