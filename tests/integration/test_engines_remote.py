"""The remote engines through the engines function's handler (``DirectEngineInvoker``: the same JSON as
Lambda), against the in-process engines, on real face photos and synthetic ID cards.

They answer alike, the engines' refusals reach the caller as the same errors, images too large for an
invoke go through the documents bucket and are gone afterwards, and the face index in the function keeps
its templates in the stage's table.
"""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.adapters.engines.invoker import DirectEngineInvoker
from chalicelib.adapters.engines.remote import (
    EngineClient,
    RemoteFaceEngine,
    RemoteFaceIndex,
    RemoteLivenessEngine,
    RemoteOcrEngine,
)
from chalicelib.adapters.engines.staging import ENGINE_IO_PREFIX
from chalicelib.kernel.errors import InvalidField, PayloadTooLarge
from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD
from chalicelib.verification.domain.liveness import LivenessCapture, LivenessChallenge, LivenessDirection
from tests.face_photos import FACES, local_face_engine_missing

if missing := local_face_engine_missing("obama_1.jpg"):
    pytest.skip(missing, allow_module_level=True)

from chalicelib.adapters.faces.local import LocalFaceEngine

SAME_A, SAME_B, OTHER = "obama_1.jpg", "obama_video_1080p.jpg", "alex_lacamoire_3.jpg"


@pytest.fixture(scope="module")
def invoker() -> DirectEngineInvoker:
    return DirectEngineInvoker()


@pytest.fixture(scope="module")
def remote_faces(invoker: DirectEngineInvoker) -> RemoteFaceEngine:
    return RemoteFaceEngine(EngineClient(invoker))


@pytest.fixture(scope="module")
def local_faces() -> LocalFaceEngine:
    return LocalFaceEngine()


def photo(name: str) -> bytes:
    return (FACES / name).read_bytes()


def test_remote_face_detection_and_comparison_give_the_local_engines_figures(
    remote_faces: RemoteFaceEngine, local_faces: LocalFaceEngine
) -> None:
    assert remote_faces.detect(photo(SAME_A)) == local_faces.detect(photo(SAME_A))
    for a, b in ((SAME_A, SAME_B), (SAME_A, OTHER)):
        assert remote_faces.compare(photo(a), photo(b)) == local_faces.compare(photo(a), photo(b))
    assert remote_faces.version == local_faces.version
    assert remote_faces.compare(photo(SAME_A), photo(SAME_B)).similarity >= DEFAULT_FACE_THRESHOLD


def test_a_photo_without_a_face_or_unreadable_bytes_are_refused_as_in_process(
    remote_faces: RemoteFaceEngine, local_faces: LocalFaceEngine
) -> None:
    from tests.liveness_frames import blank

    for engine in (local_faces, remote_faces):
        with pytest.raises(InvalidField) as no_face:
            engine.compare(photo(SAME_A), blank())
        assert (no_face.value.code, no_face.value.details) == ("face.none", {"image": "b"})
        with pytest.raises(InvalidField) as unreadable:
            engine.detect(b"not a photo")
        assert unreadable.value.code == "face.image_unreadable"


def test_remote_ocr_reads_the_lines_the_local_engine_reads(invoker: DirectEngineInvoker) -> None:
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine
    from chalicelib.verification.domain.ocr import parse_id_front
    from tests.synthetic_documents import PERSON_ID_NUMBER, id_front, require_cjk_font

    require_cjk_font()
    card = id_front(portrait=FACES / SAME_B)
    remote = RemoteOcrEngine(EngineClient(invoker))
    lines = remote.read(card)
    assert lines == RapidOcrEngine().read(card)
    assert parse_id_front(lines).id_number == PERSON_ID_NUMBER
    assert remote.version == RapidOcrEngine().version
    with pytest.raises(InvalidField) as corrupt:
        remote.read(b"GIF89a broken")
    assert corrupt.value.code == "document.corrupt"


def test_a_burst_is_judged_remotely_as_in_process_reference_image_included(
    invoker: DirectEngineInvoker, local_faces: LocalFaceEngine
) -> None:
    from chalicelib.adapters.liveness.local import LocalLivenessEngine
    from tests.liveness_frames import capture_times, handheld, turning_frames

    frames = handheld(turning_frames(local_faces, SAME_A, LivenessDirection.RIGHT.sign))
    challenge = LivenessChallenge(direction=LivenessDirection.RIGHT, nonce="n-1")
    capture = LivenessCapture(nonce="n-1", timestamps_ms=capture_times(len(frames)))
    remote = RemoteLivenessEngine(EngineClient(invoker))
    verdict = remote.judge(None, challenge, frames, capture)
    local = LocalLivenessEngine(local_faces, same_person_threshold=DEFAULT_FACE_THRESHOLD)
    assert verdict == local.judge(None, challenge, frames, capture)
    assert verdict.live is True
    assert verdict.reference_image == local.judge(None, challenge, frames, capture).reference_image
    assert remote.version == local.version
    with pytest.raises(PayloadTooLarge) as too_large:
        remote.judge(None, challenge, [*frames[:2], b"\xff\xd8\xff" + b"0" * (1024 * 1024)], capture)
    assert (too_large.value.code, too_large.value.details["frame"]) == ("liveness.frame_too_large", 2)


def test_the_challenge_is_drawn_without_the_function(invoker: DirectEngineInvoker) -> None:
    before = dict(invoker.calls)
    engine = RemoteLivenessEngine(EngineClient(invoker))
    challenge = engine.new_challenge()
    started = engine.start(challenge)
    assert challenge.direction is not None
    assert challenge.nonce
    assert started.client["direction"] == challenge.direction.value
    assert invoker.calls == before


def documents_bucket() -> tuple[Any, str]:
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    return client("s3"), get_settings().documents_bucket


def test_images_over_the_invoke_budget_go_through_the_bucket_and_are_deleted_after(
    aws: None, invoker: DirectEngineInvoker, local_faces: LocalFaceEngine
) -> None:
    from chalicelib.adapters.s3.documents import S3DocumentStore
    from chalicelib.core.settings import get_settings

    s3, bucket = documents_bucket()
    store = S3DocumentStore(s3, bucket, get_settings().pii_key_alias)
    seen: list[dict[str, Any]] = []

    def watching(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=ENGINE_IO_PREFIX).get("Contents", [])
        assert len(listed) == 1  # the larger photo, there while the function reads it
        return invoker(payload)

    engine = RemoteFaceEngine(EngineClient(watching, store, budget=len(photo(SAME_A)) * 2))
    comparison = engine.compare(photo(SAME_A), photo(SAME_B))
    assert comparison == local_faces.compare(photo(SAME_A), photo(SAME_B))
    args = seen[0]["args"]
    assert "b64" in args["a"]
    assert args["b"]["s3"].startswith(ENGINE_IO_PREFIX)
    assert s3.list_objects_v2(Bucket=bucket, Prefix=ENGINE_IO_PREFIX).get("KeyCount", 0) == 0


def test_the_face_index_in_the_function_binds_searches_and_forgets_in_the_stages_table(
    aws: None,
) -> None:
    index = RemoteFaceIndex(EngineClient(DirectEngineInvoker()))
    index.bind("person-a", "flow-a", photo(SAME_A))
    found = index.search(photo(SAME_B), DEFAULT_FACE_THRESHOLD, 10)
    assert [(f.template_id, f.person_hash) for f in found] == [("flow-a", "person-a")]
    assert found[0].score >= DEFAULT_FACE_THRESHOLD
    assert index.search(photo(OTHER), DEFAULT_FACE_THRESHOLD, 10) == []
    # another container (a fresh set of engines) sees the template in the table
    elsewhere = RemoteFaceIndex(EngineClient(DirectEngineInvoker()))
    assert [f.template_id for f in elsewhere.search(photo(SAME_A), DEFAULT_FACE_THRESHOLD, 10)] == ["flow-a"]
    assert index.forget("flow-a") is True
    assert index.forget("flow-a") is False
    assert elsewhere.search(photo(SAME_A), DEFAULT_FACE_THRESHOLD, 10) == []
    from tests.liveness_frames import blank

    with pytest.raises(InvalidField) as no_face:
        index.search(blank(), DEFAULT_FACE_THRESHOLD, 10)
    assert no_face.value.code == "face.none"
