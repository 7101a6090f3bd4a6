"""The verification ports served by the engines function (``face_engine`` / ``ocr_engine`` /
``liveness_engine`` = ``remote``): RapidOCR, the dlib face engine, the head-turn liveness rules and the
dlib face index, run in a container-image Lambda, called through an ``EngineInvoker``.

Each adapter sends its port's call as a request (``codec``) and raises again any ``DomainError`` the
engine raised, so a person sees the same refusal as with the in-process engine; an engine that cannot
answer raises ``engine.unavailable`` (the invoker). Names and calibration are those of the engines run
remotely (``dlib-resnet``, threshold 55; ``rapidocr``; ``local-head-turn``): the evidence says which
engine judged, not where it ran.

The liveness challenge is drawn here (a direction and a nonce: no model needed); only the judging of the
frames goes to the function. Versions come back with every reply and are kept, so recording them in the
evidence costs no call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from chalicelib.adapters.engines import codec
from chalicelib.adapters.engines.invoker import EngineInvoker
from chalicelib.adapters.engines.staging import INLINE_BUDGET, PayloadStager, pack
from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD, DetectedFace, FaceComparison
from chalicelib.verification.domain.liveness import (
    LivenessCapture,
    LivenessChallenge,
    LivenessVerdict,
    ProviderSession,
    head_turn_challenge,
    head_turn_session,
)
from chalicelib.verification.domain.readings import TextLine
from chalicelib.verification.ports import (
    FaceEngine,
    FaceIndex,
    IndexedFace,
    LivenessEngine,
    OcrEngine,
)

#: Names of the engines the function runs (``rapidocr.RapidOcrEngine.name`` and so on: the tests hold
#: them equal, without this module importing the engines' numpy).
OCR_NAME = "rapidocr"
FACES_NAME = "dlib-resnet"
LIVENESS_NAME = "local-head-turn"


class EngineClient:
    """Sends port calls to the engines function: images packed (``staging``), errors raised again."""

    def __init__(
        self, invoker: EngineInvoker, stager: PayloadStager | None = None, *, budget: int = INLINE_BUDGET
    ) -> None:
        self._invoke = invoker
        self._stager = stager
        self._budget = budget
        #: The last version each engine reported (``ocr``, ``faces``, ``liveness``).
        self.versions: dict[str, str] = {}

    def call(self, op: str, args: dict[str, Any], images: dict[str, bytes | Sequence[bytes]]) -> Any:
        """The engine's result for ``op``; ``images``: argument name → one image or a list of them."""
        names, flat, counts = [], [], []
        for name, value in images.items():
            several = list(value) if not isinstance(value, bytes) else [value]
            names.append((name, not isinstance(value, bytes)))
            counts.append(len(several))
            flat.extend(several)
        refs, staged = pack(flat, self._stager, self._budget)
        try:
            payload = dict(args)
            start = 0
            for (name, is_list), count in zip(names, counts, strict=True):
                chunk = refs[start : start + count]
                payload[name] = chunk if is_list else chunk[0]
                start += count
            reply = self._invoke({"op": op, "args": payload})
        finally:
            for key in staged:
                assert self._stager is not None
                self._stager.delete(key)
        if "error" in reply:
            raise codec.error_from_json(reply["error"])
        if reply.get("version"):
            self.versions[op.split(".", 1)[0]] = str(reply["version"])
        return reply.get("ok")

    def version(self, engine: str) -> str:
        """The engine's version: the one its last reply gave, else asked for."""
        if engine not in self.versions:
            self.call(f"{engine}.version", {}, {})
        return self.versions.get(engine, "unknown")


class RemoteOcrEngine(OcrEngine):
    name: ClassVar[str] = OCR_NAME

    def __init__(self, client: EngineClient) -> None:
        self._client = client

    @property
    def version(self) -> str:
        return self._client.version("ocr")

    def read(self, image: bytes) -> list[TextLine]:
        return codec.lines_from_json(self._client.call("ocr.read", {}, {"image": image}))


class RemoteFaceEngine(FaceEngine):
    """The dlib engine in the function. Not an ``EmbeddingFaceEngine``: a comparison is one call, so the
    second look near the threshold (jittered descriptors, kept in the function's memory between the two
    descriptions) happens as it does in-process."""

    name: ClassVar[str] = FACES_NAME
    recommended_threshold: ClassVar[float] = DEFAULT_FACE_THRESHOLD

    def __init__(self, client: EngineClient) -> None:
        self._client = client

    @property
    def version(self) -> str:
        return self._client.version("faces")

    def detect(self, image: bytes) -> list[DetectedFace]:
        return codec.faces_from_json(self._client.call("faces.detect", {}, {"image": image}))

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        return codec.comparison_from_json(self._client.call("faces.compare", {}, {"a": a, "b": b}))


class RemoteLivenessEngine(LivenessEngine):
    """The head-turn rules judged in the function; challenges drawn here."""

    name: ClassVar[str] = LIVENESS_NAME

    def __init__(self, client: EngineClient) -> None:
        self._client = client

    @property
    def version(self) -> str:
        return self._client.version("liveness")

    def new_challenge(self) -> LivenessChallenge:
        return head_turn_challenge()

    def start(self, challenge: LivenessChallenge) -> ProviderSession:
        return head_turn_session(challenge)

    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        args = {
            "provider_session_id": provider_session_id,
            "challenge": challenge.model_dump(mode="json"),
            "capture": None if capture is None else capture.model_dump(mode="json"),
        }
        reply = self._client.call("liveness.judge", args, {"frames": list(frames)})
        return codec.verdict_from_json(reply)


class RemoteFaceIndex(FaceIndex):
    """The dlib face index in the function, its templates in the ``face-templates`` table."""

    name: ClassVar[str] = FACES_NAME

    def __init__(self, client: EngineClient) -> None:
        self._client = client

    def search(self, image: bytes, threshold: float, limit: int) -> list[IndexedFace]:
        args = {"threshold": threshold, "limit": limit}
        return codec.indexed_from_json(self._client.call("index.search", args, {"image": image}))

    def bind(self, person_hash: str, template_id: str, image: bytes) -> None:
        args = {"person_hash": person_hash, "template_id": template_id}
        self._client.call("index.bind", args, {"image": image})

    def forget(self, template_id: str) -> bool:
        return bool(self._client.call("index.forget", {"template_id": template_id}, {}))
