"""Amazon Rekognition Face Liveness (活体检测, the production engine).

The check runs between the client and Rekognition; the server only starts it and reads the result:

1. ``start``: ``CreateFaceLivenessSession`` (``Settings.AuditImagesLimit``; ``OutputConfig`` with the
   bucket and ``liveness/`` prefix when ``output_bucket`` is set, encrypted with ``kms_key_id`` when
   given). The client gets ``session_id`` and ``region``: what Amplify's ``FaceLivenessDetector`` needs
   besides credentials (a Cognito identity allowed ``rekognition:StartFaceLivenessSession``). The session
   must be used from the region of the client that created it.
2. The client streams its video selfie with the session id; Rekognition runs its own challenge (face
   movement, and coloured light where the challenge includes it), so the challenge has no direction and
   the server receives no frames.
3. ``judge``: ``GetFaceLivenessSessionResults``. ``SUCCEEDED`` with ``Confidence`` at or above
   ``confidence_threshold`` is live; below it the verdict is ``liveness.low_confidence``; ``FAILED`` is
   ``liveness.failed``. ``CREATED`` / ``IN_PROGRESS`` cannot be judged yet (``liveness.not_finished``,
   409); ``EXPIRED`` and an unknown session (``SessionNotFoundException``: Rekognition drops a session's
   data a few minutes after it ends) are ``liveness.expired``. Throttling and service errors propagate.

The verdict's ``reference_image`` is Rekognition's reference image when it comes back as bytes (no
``output_bucket``). With an output bucket it is in S3 only: ``details.reference_image_s3`` says where and
``reference_image`` is ``None``, for the caller to read under its own access rules. Audit images are never
kept in the verdict (their S3 locations are, when stored there).

AWS advises picking the confidence threshold by the use case's risk (higher where security matters
more), reviewing audit images now and then, and telling the client only pass or fail; 80 is the default
here, a server setting recorded with every verdict. The service reports no model version: the version
recorded is the API version, and the challenge type and version go into ``details``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from chalicelib.verification.domain.liveness import (
    LivenessCapture,
    LivenessChallenge,
    LivenessReason,
    LivenessVerdict,
    ProviderSession,
    expired,
    frames_count,
    not_finished,
)
from chalicelib.verification.ports import LivenessEngine

#: Key prefix of reference and audit images in ``output_bucket``.
OUTPUT_PREFIX = "liveness/"
DEFAULT_CONFIDENCE_THRESHOLD = 80.0

_NOT_FINISHED = {"CREATED", "IN_PROGRESS"}


def _s3_location(image: dict[str, Any]) -> dict[str, str] | None:
    s3 = image.get("S3Object")
    if not s3:
        return None
    location = {"bucket": str(s3.get("Bucket", "")), "key": str(s3.get("Name", ""))}
    if s3.get("Version"):
        location["version"] = str(s3["Version"])
    return location


class RekognitionLivenessEngine(LivenessEngine):
    """Face Liveness through a boto3 ``rekognition`` client (passed in, never created here)."""

    name: ClassVar[str] = "aws-rekognition-face-liveness"

    def __init__(
        self,
        client: Any,
        *,
        confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD,
        kms_key_id: str | None = None,
        output_bucket: str | None = None,
        audit_images_limit: int = 0,
    ) -> None:
        if not 0 <= audit_images_limit <= 4:
            raise ValueError("Rekognition returns 0 to 4 audit images")
        self._client = client
        self._threshold = confidence_threshold
        self._kms_key_id = kms_key_id
        self._bucket = output_bucket
        self._audit_images = audit_images_limit

    @property
    def version(self) -> str:
        return f"api-{self._client.meta.service_model.api_version}"

    def new_challenge(self) -> LivenessChallenge:
        # Rekognition picks and runs the challenge; the server receives no frames.
        return LivenessChallenge(direction=None, min_frames=0, max_frames=0)

    def start(self, challenge: LivenessChallenge) -> ProviderSession:
        settings: dict[str, Any] = {"AuditImagesLimit": self._audit_images}
        if self._bucket:
            settings["OutputConfig"] = {"S3Bucket": self._bucket, "S3KeyPrefix": OUTPUT_PREFIX}
        params: dict[str, Any] = {"Settings": settings}
        if self._kms_key_id:
            params["KmsKeyId"] = self._kms_key_id
        session_id = str(self._client.create_face_liveness_session(**params)["SessionId"])
        return ProviderSession(
            provider_session_id=session_id,
            client={"session_id": session_id, "region": str(self._client.meta.region_name)},
        )

    def judge(
        self,
        provider_session_id: str | None,
        challenge: LivenessChallenge,
        frames: Sequence[bytes],
        capture: LivenessCapture | None = None,
    ) -> LivenessVerdict:
        if frames:
            raise frames_count(len(frames), 0, 0)
        if not provider_session_id:
            raise ValueError("a Rekognition liveness check is judged by its session id")
        try:
            result = self._client.get_face_liveness_session_results(SessionId=provider_session_id)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "SessionNotFoundException":
                raise expired() from err
            raise
        status = str(result.get("Status", ""))
        if status in _NOT_FINISHED:
            raise not_finished(status)
        if status == "EXPIRED":
            raise expired()

        confidence = min(100.0, max(0.0, float(result.get("Confidence") or 0.0)))
        details: dict[str, Any] = {"status": status, "confidence_threshold": self._threshold}
        if challenge_info := result.get("Challenge"):
            details["challenge"] = {
                "type": challenge_info.get("Type"),
                "version": challenge_info.get("Version"),
            }
        if feedback := result.get("Feedback"):
            details["feedback"] = [str(item.get("Code")) for item in feedback]

        reference = result.get("ReferenceImage") or {}
        reference_bytes = reference.get("Bytes") or None
        if reference_bytes is None and (location := _s3_location(reference)):
            details["reference_image_s3"] = location
        audit = result.get("AuditImages") or []
        details["audit_images"] = len(audit)
        if stored := [loc for image in audit if (loc := _s3_location(image))]:
            details["audit_images_s3"] = stored

        if status == "SUCCEEDED":
            reasons = [] if confidence >= self._threshold else [LivenessReason.LOW_CONFIDENCE]
        else:
            reasons = [LivenessReason.FAILED]
        return LivenessVerdict(
            live=not reasons,
            confidence=round(confidence, 3),
            engine=self.name,
            engine_version=self.version,
            reasons=[str(reason) for reason in reasons],
            frames=0,
            details=details,
            reference_image=reference_bytes,
        )
