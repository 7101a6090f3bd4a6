"""Rekognition Face Liveness against stubbed CreateFaceLivenessSession / GetFaceLivenessSessionResults."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from PIL import Image

from chalicelib.adapters.liveness.rekognition import OUTPUT_PREFIX, RekognitionLivenessEngine
from chalicelib.kernel.errors import Conflict, InvalidField
from chalicelib.verification.domain.liveness import LivenessChallenge, LivenessReason

SESSION_ID = "3e5a2c1b-7d4f-4a8e-9b6c-0f1e2d3c4b5a"
CHALLENGE = LivenessChallenge(direction=None, min_frames=0, max_frames=0)


def reference_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (480, 640), (190, 160, 140)).save(out, "JPEG", quality=85)
    return out.getvalue()


def box() -> dict[str, float]:
    return {"Width": 0.4453125, "Height": 0.59375, "Left": 0.27734375, "Top": 0.1875}


def results(status: str, confidence: float | None = None, **extra: Any) -> dict[str, Any]:
    """A GetFaceLivenessSessionResults response, in the shape the service returns."""
    response: dict[str, Any] = {"SessionId": SESSION_ID, "Status": status, **extra}
    if confidence is not None:
        response["Confidence"] = confidence
    return response


def client(region: str) -> Any:
    return boto3.client(
        "rekognition", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def stubbed() -> Iterator[tuple[RekognitionLivenessEngine, Stubber]]:
    rekognition = client("us-east-1")
    with Stubber(rekognition) as stubber:
        yield RekognitionLivenessEngine(rekognition), stubber
        stubber.assert_no_pending_responses()


def test_the_challenge_is_rekognitions_own_and_takes_no_frames(
    stubbed: tuple[RekognitionLivenessEngine, Stubber],
) -> None:
    engine, _ = stubbed
    challenge = engine.new_challenge()
    assert (challenge.direction, challenge.min_frames, challenge.max_frames) == (None, 0, 0)
    assert (engine.name, engine.version) == ("aws-rekognition-face-liveness", "api-2016-06-27")


def test_start_creates_a_session_and_tells_the_client_where_it_is(
    stubbed: tuple[RekognitionLivenessEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    # Given no output bucket: images come back as bytes, and no audit images are asked for
    stubber.add_response(
        "create_face_liveness_session", {"SessionId": SESSION_ID}, {"Settings": {"AuditImagesLimit": 0}}
    )
    session = engine.start(engine.new_challenge())
    assert session.provider_session_id == SESSION_ID
    assert session.client == {"session_id": SESSION_ID, "region": "us-east-1"}


def test_start_with_an_output_bucket_and_a_kms_key() -> None:
    rekognition = client("cn-north-1")
    engine = RekognitionLivenessEngine(
        rekognition,
        kms_key_id="alias/cheka-prod-pii",
        output_bucket="cheka-prod-documents",
        audit_images_limit=2,
    )
    with Stubber(rekognition) as stubber:
        stubber.add_response(
            "create_face_liveness_session",
            {"SessionId": SESSION_ID},
            {
                "KmsKeyId": "alias/cheka-prod-pii",
                "Settings": {
                    "AuditImagesLimit": 2,
                    "OutputConfig": {"S3Bucket": "cheka-prod-documents", "S3KeyPrefix": OUTPUT_PREFIX},
                },
            },
        )
        session = engine.start(engine.new_challenge())
        stubber.assert_no_pending_responses()
    assert session.client == {"session_id": SESSION_ID, "region": "cn-north-1"}
    with pytest.raises(ValueError, match="0 to 4"):
        RekognitionLivenessEngine(rekognition, audit_images_limit=5)


def test_a_confident_success_is_live_with_the_reference_image(
    stubbed: tuple[RekognitionLivenessEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    image = reference_jpeg()
    stubber.add_response(
        "get_face_liveness_session_results",
        results(
            "SUCCEEDED",
            97.53291,
            ReferenceImage={"Bytes": image, "BoundingBox": box()},
            AuditImages=[],
            Challenge={"Type": "FaceMovementAndLightChallenge", "Version": "2.0.0"},
        ),
        {"SessionId": SESSION_ID},
    )
    verdict = engine.judge(SESSION_ID, CHALLENGE, [])
    assert (verdict.live, verdict.reasons, verdict.confidence, verdict.frames) == (True, [], 97.533, 0)
    assert (verdict.engine, verdict.engine_version) == ("aws-rekognition-face-liveness", "api-2016-06-27")
    assert verdict.reference_image == image
    assert verdict.details == {
        "status": "SUCCEEDED",
        "confidence_threshold": 80.0,
        "challenge": {"type": "FaceMovementAndLightChallenge", "version": "2.0.0"},
        "audit_images": 0,
    }
    # The face image never leaves with the verdict's record
    assert "reference_image" not in verdict.model_dump()
    assert "reference_image" not in repr(verdict)


def test_the_threshold_is_inclusive_and_below_it_is_low_confidence() -> None:
    rekognition = client("us-east-1")
    engine = RekognitionLivenessEngine(rekognition, confidence_threshold=90.0)
    with Stubber(rekognition) as stubber:
        stubber.add_response("get_face_liveness_session_results", results("SUCCEEDED", 90.0))
        stubber.add_response("get_face_liveness_session_results", results("SUCCEEDED", 89.99))
        at = engine.judge(SESSION_ID, CHALLENGE, [])
        below = engine.judge(SESSION_ID, CHALLENGE, [])
    assert (at.live, at.reasons) == (True, [])
    assert (below.live, below.reasons, below.confidence) == (False, [LivenessReason.LOW_CONFIDENCE], 89.99)
    assert below.reasons == ["liveness.low_confidence"]


def test_a_failed_session_is_not_live(stubbed: tuple[RekognitionLivenessEngine, Stubber]) -> None:
    engine, stubber = stubbed
    stubber.add_response(
        "get_face_liveness_session_results",
        results(
            "FAILED",
            3.2,
            ReferenceImage={"Bytes": reference_jpeg(), "BoundingBox": box()},
            Challenge={"Type": "FaceMovementChallenge", "Version": "1.0.0"},
            Feedback=[{"Code": "FACE_NOT_ALIGNED", "Message": "Face not aligned with the oval"}],
        ),
    )
    verdict = engine.judge(SESSION_ID, CHALLENGE, [])
    assert (verdict.live, verdict.reasons, verdict.confidence) == (False, ["liveness.failed"], 3.2)
    assert verdict.details["feedback"] == ["FACE_NOT_ALIGNED"]


def test_images_stored_in_s3_are_pointed_to_not_returned() -> None:
    rekognition = client("us-east-1")
    engine = RekognitionLivenessEngine(
        rekognition, output_bucket="cheka-prod-documents", audit_images_limit=2
    )
    reference_key = f"{OUTPUT_PREFIX}{SESSION_ID}/reference.jpg"
    with Stubber(rekognition) as stubber:
        stubber.add_response(
            "get_face_liveness_session_results",
            results(
                "SUCCEEDED",
                99.1,
                ReferenceImage={
                    "S3Object": {"Bucket": "cheka-prod-documents", "Name": reference_key, "Version": "v1"},
                    "BoundingBox": box(),
                },
                AuditImages=[
                    {
                        "S3Object": {
                            "Bucket": "cheka-prod-documents",
                            "Name": f"{OUTPUT_PREFIX}{SESSION_ID}/a_0.jpg",
                        },
                        "BoundingBox": box(),
                    },
                    {"Bytes": reference_jpeg(), "BoundingBox": box()},
                ],
            ),
        )
        verdict = engine.judge(SESSION_ID, CHALLENGE, [])
    assert verdict.live
    assert verdict.reference_image is None
    assert verdict.details["reference_image_s3"] == {
        "bucket": "cheka-prod-documents",
        "key": reference_key,
        "version": "v1",
    }
    assert verdict.details["audit_images"] == 2
    assert verdict.details["audit_images_s3"] == [
        {"bucket": "cheka-prod-documents", "key": f"{OUTPUT_PREFIX}{SESSION_ID}/a_0.jpg"}
    ]


@pytest.mark.parametrize("status", ["CREATED", "IN_PROGRESS"])
def test_a_running_session_cannot_be_judged_yet(
    stubbed: tuple[RekognitionLivenessEngine, Stubber], status: str
) -> None:
    engine, stubber = stubbed
    stubber.add_response("get_face_liveness_session_results", results(status))
    with pytest.raises(Conflict) as caught:
        engine.judge(SESSION_ID, CHALLENGE, [])
    assert (caught.value.code, caught.value.status, caught.value.details) == (
        "liveness.not_finished",
        409,
        {"status": status},
    )
    assert "尚未完成" in caught.value.message_zh
    assert "not finished" in caught.value.message_en


def test_an_expired_or_forgotten_session_is_refused(
    stubbed: tuple[RekognitionLivenessEngine, Stubber],
) -> None:
    engine, stubber = stubbed
    stubber.add_response("get_face_liveness_session_results", results("EXPIRED"))
    stubber.add_client_error(
        "get_face_liveness_session_results", "SessionNotFoundException", "Session not found", 400
    )
    for _ in range(2):
        with pytest.raises(InvalidField) as caught:
            engine.judge(SESSION_ID, CHALLENGE, [])
        assert (caught.value.code, caught.value.status) == ("liveness.expired", 422)


def test_service_errors_propagate(stubbed: tuple[RekognitionLivenessEngine, Stubber]) -> None:
    engine, stubber = stubbed
    stubber.add_client_error("get_face_liveness_session_results", "ThrottlingException", "slow down", 400)
    with pytest.raises(ClientError, match="ThrottlingException"):
        engine.judge(SESSION_ID, CHALLENGE, [])
    stubber.add_client_error("create_face_liveness_session", "AccessDeniedException", "denied", 400)
    with pytest.raises(ClientError, match="AccessDeniedException"):
        engine.start(CHALLENGE)


def test_frames_are_refused_before_any_call(stubbed: tuple[RekognitionLivenessEngine, Stubber]) -> None:
    engine, _ = stubbed
    # No response is stubbed: a call to Rekognition would fail the test
    with pytest.raises(InvalidField) as caught:
        engine.judge(SESSION_ID, CHALLENGE, [reference_jpeg()])
    assert (caught.value.code, caught.value.field) == ("liveness.frames_count", "frames")
    assert caught.value.details == {"frames": 1, "min_frames": 0, "max_frames": 0}
    with pytest.raises(ValueError, match="session id"):
        engine.judge(None, CHALLENGE, [])
