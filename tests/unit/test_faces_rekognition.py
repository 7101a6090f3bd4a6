"""The Rekognition face engine against stubbed DetectFaces / CompareFaces responses."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from PIL import Image

from chalicelib.adapters.faces.rekognition import MAX_BYTES, RekognitionFaceEngine
from chalicelib.kernel.errors import InvalidField
from chalicelib.verification.domain.faces import check_selfie


def photo(width: int = 1000, height: int = 800, fmt: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(out, fmt)
    return out.getvalue()


def detail(left: float, top: float, width: float, height: float, yaw: float = 0.0) -> dict[str, Any]:
    return {
        "BoundingBox": {"Left": left, "Top": top, "Width": width, "Height": height},
        "Pose": {"Yaw": yaw, "Pitch": -3.5, "Roll": 1.25},
        "Confidence": 99.9,
    }


@pytest.fixture
def stubbed() -> Iterator[tuple[RekognitionFaceEngine, Stubber]]:
    client = boto3.client(
        "rekognition", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(client) as stubber:
        yield RekognitionFaceEngine(client), stubber
        stubber.assert_no_pending_responses()


def test_detect_maps_boxes_to_pixels_and_keeps_the_pose(
    stubbed: tuple[RekognitionFaceEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    image = photo(1000, 800)
    # Given Rekognition finds a small face and a large one
    stubber.add_response(
        "detect_faces",
        {"FaceDetails": [detail(0.7, 0.1, 0.1, 0.125), detail(0.2, 0.25, 0.3, 0.4, yaw=-12.0)]},
        {"Image": {"Bytes": image}, "Attributes": ["DEFAULT"]},
    )
    # When detecting
    faces = engine.detect(image)
    # Then the faces come largest first, in pixels of the photo, with their pose
    assert [f.box.model_dump() for f in faces] == [
        {"left": 200, "top": 200, "width": 300, "height": 320},
        {"left": 700, "top": 80, "width": 100, "height": 100},
    ]
    assert (faces[0].size_px, faces[0].relative_size) == (300, 0.375)
    assert (faces[0].yaw, faces[0].pitch, faces[0].roll, faces[0].confidence) == (-12.0, -3.5, 1.25, 99.9)
    # and two faces are refused as a selfie
    with pytest.raises(InvalidField) as caught:
        check_selfie(faces, (1000, 800))
    assert caught.value.code == "face.multiple"


def test_compare_asks_for_every_score_and_keeps_the_largest_target_face(
    stubbed: tuple[RekognitionFaceEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    a, b = photo(), photo(640, 480)
    stubber.add_response(
        "compare_faces",
        {
            "SourceImageFace": {"BoundingBox": {"Left": 0.2, "Top": 0.2, "Width": 0.3, "Height": 0.4}},
            "FaceMatches": [
                {"Similarity": 97.123, "Face": detail(0.1, 0.1, 0.5, 0.6)},
                {"Similarity": 3.5, "Face": detail(0.7, 0.1, 0.1, 0.1)},
            ],
            "UnmatchedFaces": [],
        },
        {"SourceImage": {"Bytes": a}, "TargetImage": {"Bytes": b}, "SimilarityThreshold": 0},
    )
    result = engine.compare(a, b)
    assert (result.similarity, result.engine, result.engine_version) == (
        97.12,
        "aws-rekognition",
        "api-2016-06-27",
    )


def test_a_source_without_a_face_is_the_no_face_refusal(
    stubbed: tuple[RekognitionFaceEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    stubber.add_client_error(
        "compare_faces", "InvalidParameterException", "Request has invalid parameters", 400
    )
    with pytest.raises(InvalidField) as caught:
        engine.compare(photo(), photo())
    assert (caught.value.code, caught.value.details) == ("face.none", {"image": "a"})


def test_a_target_without_a_face_is_the_no_face_refusal(
    stubbed: tuple[RekognitionFaceEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    stubber.add_response(
        "compare_faces",
        {"SourceImageFace": {"Confidence": 99.0}, "FaceMatches": [], "UnmatchedFaces": []},
        {"SourceImage": ANY, "TargetImage": ANY, "SimilarityThreshold": 0},
    )
    with pytest.raises(InvalidField) as caught:
        engine.compare(photo(), photo())
    assert (caught.value.code, caught.value.details) == ("face.none", {"image": "b"})


def test_bad_images_and_service_errors(stubbed: tuple[RekognitionFaceEngine, Stubber]) -> None:
    engine, stubber = stubbed
    stubber.add_client_error("detect_faces", "InvalidImageFormatException", "bad format", 400)
    with pytest.raises(InvalidField) as caught:
        engine.detect(photo())
    assert caught.value.code == "face.image_unreadable"
    # A throttled call is not the applicant's fault: it propagates for the caller to retry
    stubber.add_client_error("compare_faces", "ThrottlingException", "slow down", 400)
    with pytest.raises(Exception, match="ThrottlingException"):
        engine.compare(photo(), photo())
    # and bytes that are no image at all never reach the service
    with pytest.raises(InvalidField) as unreadable:
        engine.detect(b"not an image")
    assert unreadable.value.code == "face.image_unreadable"


def test_photos_rekognition_cannot_take_are_reencoded_as_jpeg(
    stubbed: tuple[RekognitionFaceEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    # Given a BMP (not accepted by Rekognition) larger than 5 MB
    bmp = photo(2400, 1800, "BMP")
    assert len(bmp) > MAX_BYTES
    sent: list[bytes] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(params["Image"]["Bytes"])

    engine._client.meta.events.register("before-parameter-build.rekognition.DetectFaces", capture)
    stubber.add_response(
        "detect_faces",
        {"FaceDetails": [detail(0.4, 0.3, 0.2, 0.3)]},
        {"Image": ANY, "Attributes": ["DEFAULT"]},
    )
    faces = engine.detect(bmp)
    # Then a JPEG of 1920 px was sent, and boxes are still in pixels of the original photo
    assert sent[0][:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(sent[0])) as im:
        assert im.size == (1920, 1440)
    assert faces[0].box.model_dump() == {"left": 960, "top": 540, "width": 480, "height": 540}
