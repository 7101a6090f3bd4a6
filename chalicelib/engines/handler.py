"""The engines function's handler: one container-image Lambda serving OCR, faces, liveness and the index.

A deployed stage's API is a zip of a few MB that must start fast; RapidOCR (onnxruntime, OpenCV, the
PP-OCR models) and dlib (its 100 MB landmark model, numpy) do not fit that package and would slow every
cold start. They run here instead, called by the remote adapters (``chalicelib.adapters.engines``).

Why one function for all four engines, not one per engine:

- **One image.** Faces, liveness and the index all need dlib, numpy and the face models; OCR adds
  onnxruntime and OpenCV. Two images would both carry numpy and Pillow and the project's code, and be
  built, scanned and deployed twice.
- **One warm pool.** A registration calls OCR, then face detection on the upload, then liveness and the
  portrait match within minutes: one function keeps one set of warm containers busy instead of each of
  two going cold in turn, and a container that has loaded the face models serves the liveness check,
  the match and the index (which reuse them) without loading them again.
- **Memory is set for the larger need** (OCR): the face calls then run on the same generous CPU share.

The models load on a container's first call that needs them (not at init, so a call for OCR does not pay
for dlib) and stay for the container's life.

Requests and replies are ``chalicelib.adapters.engines.codec``'s: ``{"op", "args"}`` in, ``{"ok",
"version"}`` or ``{"error"}`` out. A ``DomainError`` an engine raises is an answer (``error``), not a
failure; anything else is raised, and Lambda reports it as a ``FunctionError`` (the caller's
``engine.unavailable``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.engines import codec
from chalicelib.core.observability import lambda_handler
from chalicelib.kernel.errors import BadRequest, DomainError

if TYPE_CHECKING:
    from chalicelib.adapters.faces.index_local import LocalFaceIndex
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.adapters.liveness.local import LocalLivenessEngine
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine
    from chalicelib.core.config import Settings

_shared_lock = threading.Lock()
_shared_ocr: RapidOcrEngine | None = None


def _ocr_engine() -> RapidOcrEngine:
    """One RapidOCR per process: its models take a second and ~100 MB to load."""
    global _shared_ocr
    with _shared_lock:
        if _shared_ocr is None:
            from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine

            _shared_ocr = RapidOcrEngine()
        return _shared_ocr


class Engines:
    """The local engines this function runs, built on first use from the stage's settings (which name
    ``remote`` engines: the API's view; here they are the in-process ones)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._faces: LocalFaceEngine | None = None
        self._liveness: LocalLivenessEngine | None = None
        self._index: LocalFaceIndex | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from chalicelib.core.settings import get_settings

            return get_settings()
        return self._settings

    def ocr(self) -> RapidOcrEngine:
        return _ocr_engine()

    def threshold(self) -> float:
        """The face threshold in force: the setting, else the engine's calibrated default."""
        from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD

        configured = self.settings.face_threshold
        return configured if configured is not None else DEFAULT_FACE_THRESHOLD

    def faces(self) -> LocalFaceEngine:
        with self._lock:
            if self._faces is None:
                from chalicelib.adapters.faces.local import LocalFaceEngine

                self._faces = LocalFaceEngine(threshold=self.settings.face_threshold)
            return self._faces

    def liveness(self) -> LocalLivenessEngine:
        from chalicelib.adapters.liveness.local import LocalLivenessEngine, local_engine_refused

        s = self.settings
        if not s.is_local and not s.accept_local_liveness_risk:
            raise local_engine_refused(s.stage)
        faces = self.faces()
        with self._lock:
            if self._liveness is None:
                self._liveness = LocalLivenessEngine(faces, same_person_threshold=self.threshold())
            return self._liveness

    def index(self) -> LocalFaceIndex:
        faces = self.faces()
        with self._lock:
            if self._index is None:
                from chalicelib.adapters.crypto import KmsFieldCipher
                from chalicelib.adapters.dynamo.models import bind
                from chalicelib.adapters.faces.index_local import LocalFaceIndex
                from chalicelib.adapters.faces.templates import DynamoTemplateStore
                from chalicelib.core.aws import client

                bind(self.settings)
                cipher = KmsFieldCipher(client("kms"), self.settings.pii_key_alias)
                self._index = LocalFaceIndex(faces, DynamoTemplateStore(cipher))
            return self._index

    def fetch(self, key: str) -> bytes:
        """A staged image (``staging``): only under the engine-io prefix, never another document."""
        from chalicelib.adapters.engines.staging import ENGINE_IO_PREFIX, MAX_STAGED_BYTES
        from chalicelib.adapters.s3.documents import S3DocumentStore
        from chalicelib.core.aws import client

        if not key.startswith(ENGINE_IO_PREFIX):
            raise BadRequest("engine.bad_request", "请求有误", f"staged images live under {ENGINE_IO_PREFIX}")
        s = self.settings
        return S3DocumentStore(client("s3"), s.documents_bucket, s.pii_key_alias).get(key, MAX_STAGED_BYTES)


Result = tuple[Any, str | None]


def _image(engines: Engines, args: dict[str, Any], name: str) -> bytes:
    return codec.image_bytes(args[name], engines.fetch)


def _ping(engines: Engines, args: dict[str, Any]) -> Result:
    return {"stage": engines.settings.stage}, None


def _ocr_read(engines: Engines, args: dict[str, Any]) -> Result:
    ocr = engines.ocr()
    return codec.lines_to_json(ocr.read(_image(engines, args, "image"))), ocr.version


def _ocr_version(engines: Engines, args: dict[str, Any]) -> Result:
    return None, engines.ocr().version


def _faces_detect(engines: Engines, args: dict[str, Any]) -> Result:
    faces = engines.faces()
    return codec.faces_to_json(faces.detect(_image(engines, args, "image"))), faces.version


def _faces_compare(engines: Engines, args: dict[str, Any]) -> Result:
    faces = engines.faces()
    a, b = _image(engines, args, "a"), _image(engines, args, "b")
    return codec.comparison_to_json(faces.compare(a, b)), faces.version


def _faces_version(engines: Engines, args: dict[str, Any]) -> Result:
    return None, engines.faces().version


def _liveness_judge(engines: Engines, args: dict[str, Any]) -> Result:
    from chalicelib.verification.domain.liveness import LivenessCapture, LivenessChallenge

    liveness = engines.liveness()
    frames = [codec.image_bytes(ref, engines.fetch) for ref in args["frames"]]
    capture = args.get("capture")
    verdict = liveness.judge(
        args.get("provider_session_id"),
        LivenessChallenge.model_validate(args["challenge"]),
        frames,
        None if capture is None else LivenessCapture.model_validate(capture),
    )
    return codec.verdict_to_json(verdict), liveness.version


def _liveness_version(engines: Engines, args: dict[str, Any]) -> Result:
    return None, engines.liveness().version


def _index_search(engines: Engines, args: dict[str, Any]) -> Result:
    found = engines.index().search(
        _image(engines, args, "image"), float(args["threshold"]), int(args["limit"])
    )
    return codec.indexed_to_json(found), None


def _index_bind(engines: Engines, args: dict[str, Any]) -> Result:
    engines.index().bind(str(args["person_hash"]), str(args["template_id"]), _image(engines, args, "image"))
    return None, None


def _index_forget(engines: Engines, args: dict[str, Any]) -> Result:
    return engines.index().forget(str(args["template_id"])), None


#: Every operation the function serves, by name (``<engine>.<port method>``).
OPS: dict[str, Callable[[Engines, dict[str, Any]], Result]] = {
    "ping": _ping,
    "ocr.read": _ocr_read,
    "ocr.version": _ocr_version,
    "faces.detect": _faces_detect,
    "faces.compare": _faces_compare,
    "faces.version": _faces_version,
    "liveness.judge": _liveness_judge,
    "liveness.version": _liveness_version,
    "index.search": _index_search,
    "index.bind": _index_bind,
    "index.forget": _index_forget,
}


def dispatch(engines: Engines, event: dict[str, Any]) -> dict[str, Any]:
    """The reply to one request; a ``DomainError`` is an answer, anything else is raised."""
    op = event.get("op")
    action = OPS.get(str(op))
    if action is None:
        return {
            "error": codec.error_to_json(BadRequest("engine.bad_request", "请求有误", f"unknown op {op!r}"))
        }
    try:
        result, version = action(engines, dict(event.get("args") or {}))
    except DomainError as err:
        return {"error": codec.error_to_json(err)}
    reply: dict[str, Any] = {"ok": result}
    if version is not None:
        reply["version"] = version
    return reply


_default_lock = threading.Lock()
_default: Engines | None = None


def default_engines() -> Engines:
    """The engines of this process (one set per Lambda container)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Engines()
        return _default


def reset() -> None:
    """Forget this process's engines (tests change the settings); loaded models stay."""
    global _default
    with _default_lock:
        _default = None


def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return dispatch(default_engines(), event)


#: The container image's handler (``CMD``): one request, one reply; the Lambda context on the logs, and
#: on deployed stages X-Ray traces and a metrics flush (``observability.lambda_handler``).
handle = lambda_handler(_handle)
