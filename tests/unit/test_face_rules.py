"""The selfie rule, the local engine's calibration and the pair evaluation, without any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.adapters.faces.local import distance_to_similarity, similarity_to_distance
from chalicelib.kernel.errors import BadRequest, InvalidField
from chalicelib.verification.domain.faces import (
    DEFAULT_FACE_THRESHOLD,
    DetectedFace,
    FaceBox,
    FaceComparison,
    FaceEmbedding,
    check_selfie,
    no_face,
)
from chalicelib.verification.face_evaluation import evaluate_pairs, parse_truth, read_pairs
from chalicelib.verification.ports import EmbeddingFaceEngine

IMAGE = (1000, 1200)


def face(
    left: int = 300, top: int = 300, size: int = 300, yaw: float = 0.0, pitch: float = 0.0
) -> DetectedFace:
    return DetectedFace(
        box=FaceBox(left=left, top=top, width=size, height=size),
        size_px=size,
        relative_size=size / min(IMAGE),
        yaw=yaw,
        pitch=pitch,
        roll=0.0,
    )


def refusal(faces: list[DetectedFace], **limits: float) -> InvalidField:
    with pytest.raises(InvalidField) as caught:
        check_selfie(faces, IMAGE, **limits)  # type: ignore[arg-type]
    return caught.value


def test_one_large_frontal_face_is_accepted() -> None:
    # Given a single face of 300 px turned slightly
    selfie = face(yaw=12.0, pitch=-8.0)
    # Then the rule returns it
    assert check_selfie([selfie], IMAGE, min_face_px=100, max_yaw=30, max_pitch=25) is selfie


@pytest.mark.parametrize(
    ("faces", "code"),
    [
        ([], "face.none"),
        ([face(), face(left=700, size=120)], "face.multiple"),
        ([face(size=60)], "face.too_small"),
        # Only the part inside the frame counts: a large box mostly outside the photo is too small.
        ([face(left=950, size=400)], "face.too_small"),
        ([face(yaw=-40.0)], "face.not_frontal"),
        ([face(pitch=31.0)], "face.not_frontal"),
    ],
)
def test_each_refusal_has_its_own_code(faces: list[DetectedFace], code: str) -> None:
    err = refusal(faces, min_face_px=100, max_yaw=30, max_pitch=25)
    assert err.code == code
    assert err.field == "selfie"
    assert err.status == 422
    assert err.message_zh
    assert err.message_en
    assert err.message_zh != err.message_en


def test_refusals_name_the_first_thing_to_fix() -> None:
    # Given two faces, both small and turned: the count is what the person must fix first
    assert refusal([face(size=20, yaw=80), face(size=20)]).code == "face.multiple"
    # and a small, turned face is first of all too small
    assert refusal([face(size=20, yaw=80)], min_face_px=64).code == "face.too_small"


def test_refusal_details_tell_the_measurements() -> None:
    assert refusal([face(size=50)], min_face_px=64).details == {"size_px": 50, "min_face_px": 64}
    assert refusal([face(yaw=44.44)], max_yaw=30).details == {"yaw": 44.4, "pitch": 0.0}
    assert refusal([face(), face()]).details == {"faces": 2}


def test_calibration_maps_distances_linearly_and_the_default_is_stricter_than_dlibs_usual_threshold() -> None:
    assert distance_to_similarity(0.0) == 100.0
    assert distance_to_similarity(0.6) == pytest.approx(50.0)  # dlib's usual threshold
    assert distance_to_similarity(1.2) == 0.0
    assert distance_to_similarity(3.0) == 0.0
    # the default, calibrated for FAR ≤ 0.1 %, is the descriptor distance 0.54
    assert similarity_to_distance(DEFAULT_FACE_THRESHOLD) == pytest.approx(0.54)
    samples = [distance_to_similarity(d / 100) for d in range(0, 130)]
    assert samples == sorted(samples, reverse=True)  # monotone


class VectorEngine(EmbeddingFaceEngine):
    """A fake engine: each photo's bytes are its 1-d descriptor; similarity 100 − 100·|a − b|."""

    name = "fake"
    recommended_threshold = 50.0

    def __init__(self) -> None:
        self.embedded: list[bytes] = []

    @property
    def version(self) -> str:
        return "1"

    def detect(self, image: bytes) -> list[DetectedFace]:
        return [face()]

    def embed(self, image: bytes) -> FaceEmbedding:
        self.embedded.append(image)
        if image == b"none":
            raise no_face()
        return FaceEmbedding(face=face(), vector=(float(image.decode()),))

    def similarity(self, a: FaceEmbedding, b: FaceEmbedding) -> float:
        return max(0.0, 100.0 - 100.0 * abs(a.vector[0] - b.vector[0]))

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        return FaceComparison(
            similarity=self.similarity(self.embed(a), self.embed(b)), engine="fake", engine_version="1"
        )


def test_evaluation_measures_tar_far_and_describes_each_photo_once() -> None:
    # Given photos whose descriptors are numbers: p1≈p2 (same), p3 far away, and one without a face
    photos = {"p1": b"0.1", "p2": b"0.2", "p3": b"0.9", "p4": b"none", "p5": b"0.35"}
    pairs = [
        ("p1", "p2", "same"),  # 90
        ("p1", "p5", "same"),  # 75
        ("p2", "p4", "same"),  # refused: no face
        ("p1", "p3", "different"),  # 20
        ("p2", "p5", "different"),  # 85: a false accept
    ]
    engine = VectorEngine()
    # When evaluated at 80
    result = evaluate_pairs(engine, pairs, 80.0, sweep=[0.0, 70.0, 100.0], read=lambda p: photos[p.name])
    # Then TAR is 1 of 3 same pairs, FAR 1 of 2 different pairs
    assert result.threshold == 80.0
    assert result.tar == pytest.approx(1 / 3)
    assert result.far == 0.5
    assert [p.verdict for p in result.pairs] == ["match", "no_match", "no_match", "no_match", "match"]
    assert result.pairs[2].score is None
    assert result.pairs[2].error == "face.none"
    assert (result.min_same_score, result.max_different_score) == (75.0, 85.0)
    assert [(s.threshold, s.tar, s.far) for s in result.sweep] == [
        (0.0, pytest.approx(2 / 3), 1.0),
        (70.0, pytest.approx(2 / 3), 0.5),
        (100.0, 0.0, 0.0),
    ]
    # and each photo was described once, however many pairs hold it
    assert sorted(engine.embedded) == sorted(photos.values())


def test_pairs_csv_columns_and_truth_words(tmp_path: Path) -> None:
    text = "file_a,file_b,truth\na.jpg,b.jpg,same\na.jpg,c.jpg,different\n\nb.jpg,c.jpg,0\n"
    assert read_pairs(text, tmp_path) == [
        (tmp_path / "a.jpg", tmp_path / "b.jpg", "same"),
        (tmp_path / "a.jpg", tmp_path / "c.jpg", "different"),
        (tmp_path / "b.jpg", tmp_path / "c.jpg", "different"),
    ]
    assert parse_truth(" Genuine ") == "same"
    with pytest.raises(BadRequest) as wrong:
        parse_truth("maybe")
    assert wrong.value.code == "pairs.truth"
    with pytest.raises(BadRequest) as missing:
        read_pairs("a,b,label\n", tmp_path)
    assert missing.value.code == "pairs.columns"
