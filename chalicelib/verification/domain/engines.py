"""An engine (OCR, faces, liveness, the face index) that could not answer: ``engine.unavailable``.

Deployed stages run their engines in the engines function (a container-image Lambda) or on a cloud
service; a call that times out, is throttled or fails there is the platform's fault, not the person's.
The request answers 503 with ``Retry-After`` and changes nothing: no face attempt is counted, no
upload is refused, no reading is recorded (``verification.face``, ``verification.documents``).
"""

from __future__ import annotations

from typing import Literal

from chalicelib.verification.domain.authority import ServiceUnavailable

#: Seconds a person is asked to wait before trying again, unless the cause says otherwise.
DEFAULT_RETRY_AFTER = 5

EngineCause = Literal["timeout", "throttled", "error", "unreachable", "refused"]


class EngineUnavailable(ServiceUnavailable):
    """An engine could not answer (HTTP 503): the request changed nothing and may be sent again."""


def engine_unavailable(engine: str, cause: EngineCause, retry_after: int | None = None) -> EngineUnavailable:
    """``engine``: ``ocr``, ``faces``, ``liveness`` or ``index``; ``cause``: why it did not answer."""
    wait = retry_after or DEFAULT_RETRY_AFTER
    return EngineUnavailable(
        "engine.unavailable",
        f"识别服务暂时繁忙，请约 {wait} 秒后重试（本次不计入核验次数）",
        f"The recognition service is busy; try again in about {wait} seconds (this was not counted "
        "as an attempt)",
        details={"engine": engine, "cause": cause, "retry_after_seconds": wait},
    )
