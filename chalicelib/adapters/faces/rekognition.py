"""Rekognition face engine (the production default): DetectFaces and CompareFaces.

Mapped onto the port's models:

- Bounding boxes (fractions of the photo) become pixels of the EXIF-rotated photo, whose size is read
  from the header; Rekognition reports boxes after applying the EXIF orientation, like the port.
- ``Pose`` (Yaw, Pitch, Roll, degrees) is passed through as Rekognition reports it. Its sign
  conventions are not documented, so only magnitudes are relied on (``check_selfie`` uses |yaw|, |pitch|).
- ``CompareFaces`` is called with ``SimilarityThreshold=0`` so every target face comes back with a score;
  Rekognition itself uses the source photo's largest face, and the score kept is that of the target's
  largest face, as the local engine does.
- No face in the source photo makes CompareFaces fail with ``InvalidParameterException``: that, and an
  empty target, are the ``face.none`` refusal; unreadable or oversized photos are ``face.image_unreadable``.
  Throttling and service errors propagate (they are not the applicant's fault).

Rekognition accepts JPEG or PNG up to 5 MB as bytes: anything else (BMP, a 12-megapixel PNG) is
re-encoded as JPEG, 1920 px on the long side. The service does not report a model version for these
calls; the version recorded is the API version.

Rekognition similarities cluster near 100 for the same person and near 0 otherwise; its documentation
suggests 80 as a general default and 99 where a false match is costly. ``recommended_threshold`` is 90, a
starting point to calibrate with ``cheka faces evaluate --engine rekognition`` on the OEM's own photos.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from chalicelib.verification.domain.faces import (
    DetectedFace,
    FaceBox,
    FaceComparison,
    image_unreadable,
    no_face,
    photo_size,
)
from chalicelib.verification.ports import FaceEngine

#: Largest photo Rekognition accepts as bytes.
MAX_BYTES = 5 * 1024 * 1024
#: Long side of a photo re-encoded for Rekognition.
REENCODE_SIDE = 1920

_NO_FACE_ERRORS = {"InvalidParameterException"}
_BAD_IMAGE_ERRORS = {"InvalidImageFormatException", "ImageTooLargeException"}


def _prepared(image: bytes) -> bytes:
    """The photo as Rekognition accepts it: JPEG or PNG, at most 5 MB."""
    if len(image) <= MAX_BYTES and (image[:3] == b"\xff\xd8\xff" or image[:8] == b"\x89PNG\r\n\x1a\n"):
        return image
    from PIL import Image, ImageOps

    from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image

    try:
        with open_image(image, max_pixels=MAX_PIXELS) as opened:
            im = ImageOps.exif_transpose(opened).convert("RGB")
            im.thumbnail((REENCODE_SIDE, REENCODE_SIDE), Image.Resampling.BILINEAR)
            out = io.BytesIO()
            im.save(out, "JPEG", quality=90)
    except ImageRefused as exc:
        raise image_unreadable() from exc
    return out.getvalue()


def _box(raw: dict[str, float], size: tuple[int, int]) -> FaceBox:
    width, height = size
    return FaceBox(
        left=round(raw.get("Left", 0.0) * width),
        top=round(raw.get("Top", 0.0) * height),
        width=round(raw.get("Width", 0.0) * width),
        height=round(raw.get("Height", 0.0) * height),
    )


def _face(detail: dict[str, Any], size: tuple[int, int]) -> DetectedFace:
    box = _box(detail.get("BoundingBox", {}), size)
    pose = detail.get("Pose", {})
    shorter = min(box.width, box.height)
    return DetectedFace(
        box=box,
        size_px=shorter,
        relative_size=shorter / min(size),
        yaw=float(pose.get("Yaw", 0.0)),
        pitch=float(pose.get("Pitch", 0.0)),
        roll=float(pose.get("Roll", 0.0)),
        confidence=detail.get("Confidence"),
    )


def _area(face: dict[str, Any]) -> float:
    box = face.get("BoundingBox", {})
    return float(box.get("Width", 0.0)) * float(box.get("Height", 0.0))


class RekognitionFaceEngine(FaceEngine):
    """Amazon Rekognition through a boto3 ``rekognition`` client (passed in, never created here)."""

    name: ClassVar[str] = "aws-rekognition"
    recommended_threshold: ClassVar[float] = 90.0

    def __init__(self, client: Any) -> None:
        self._client = client

    @property
    def version(self) -> str:
        return f"api-{self._client.meta.service_model.api_version}"

    def detect(self, image: bytes) -> list[DetectedFace]:
        size = photo_size(image)
        try:
            response = self._client.detect_faces(Image={"Bytes": _prepared(image)}, Attributes=["DEFAULT"])
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in _BAD_IMAGE_ERRORS:
                raise image_unreadable() from err
            raise
        faces = [_face(detail, size) for detail in response.get("FaceDetails", [])]
        return sorted(faces, key=lambda face: face.box.area, reverse=True)

    def compare(self, a: bytes, b: bytes) -> FaceComparison:
        try:
            response = self._client.compare_faces(
                SourceImage={"Bytes": _prepared(a)},
                TargetImage={"Bytes": _prepared(b)},
                SimilarityThreshold=0,
            )
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in _NO_FACE_ERRORS:
                # Rekognition refuses a source photo without a face (it does not say which).
                raise no_face(image="a") from err
            if code in _BAD_IMAGE_ERRORS:
                raise image_unreadable() from err
            raise
        matches = response.get("FaceMatches", [])
        scored = [(_area(m.get("Face", {})), float(m.get("Similarity", 0.0))) for m in matches]
        scored += [(_area(face), 0.0) for face in response.get("UnmatchedFaces", [])]
        if not scored:
            raise no_face(image="b")
        _, similarity = max(scored, key=lambda item: item[0])
        return FaceComparison(similarity=round(similarity, 2), engine=self.name, engine_version=self.version)
