"""Face engine port (人脸比对): detect faces with their pose, compare two photos on a 0–100 scale.

Two implementations: ``local.LocalFaceEngine`` (dlib ResNet embeddings, the embedded default) and
``rekognition.RekognitionFaceEngine`` (the production default). Scores of different engines are not on
the same scale: each engine states the threshold it is calibrated for (``recommended_threshold``);
the threshold in force is a server setting and goes into the evidence with every score.

``check_selfie`` is the rule a live capture must meet (exactly one face, large enough, frontal): pure,
no I/O, so it reads next to the regulation's requirement that the person be verified in person.

Pose angles are degrees, in the convention both engines are mapped to: ``yaw`` > 0 when the face turns
toward the image's right, ``pitch`` > 0 when it tilts up, ``roll`` > 0 when the head is tilted
counter-clockwise as seen in the image.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import InvalidField

#: Similarity at or above which the local engine's two photos are the same person: a descriptor
#: distance of 0.54, stricter than dlib's usual 0.6 (similarity 50), calibrated for a false accept rate
#: of at most 0.1 % (see ``local``'s calibration and bench/README.md).
DEFAULT_FACE_THRESHOLD = 55.0


#: A selfie's face must be at least this many pixels on its shorter side (in the original photo).
DEFAULT_MIN_FACE_PX = 64


#: A selfie is frontal when |yaw| and |pitch| are within these many degrees.
DEFAULT_MAX_YAW = 30.0


DEFAULT_MAX_PITCH = 25.0


class FaceBox(BaseModel):
    """A face's bounding box in pixels of the original (EXIF-rotated) image."""

    model_config = ConfigDict(frozen=True)

    left: int
    top: int
    width: int = Field(ge=0)
    height: int = Field(ge=0)

    @property
    def area(self) -> int:
        return self.width * self.height


class DetectedFace(BaseModel):
    """One face found in a photo: where, how large, and how it is turned."""

    model_config = ConfigDict(frozen=True)

    box: FaceBox
    #: Shorter side of the box, in pixels of the original image.
    size_px: int = Field(ge=0)
    #: Shorter side of the box over the image's shorter side (0–1, more if the box overhangs).
    relative_size: float = Field(ge=0)
    yaw: float
    pitch: float
    roll: float
    #: Detector confidence in the engine's own units (dlib: SVM margin; Rekognition: percent).
    confidence: float | None = None


class FaceComparison(BaseModel):
    """The score of two photos, with what produced it (both go into the evidence)."""

    model_config = ConfigDict(frozen=True)

    similarity: float = Field(ge=0, le=100)
    engine: str
    engine_version: str


class FaceEmbedding(BaseModel):
    """A face's descriptor, for engines that can score two faces without seeing the photos again."""

    model_config = ConfigDict(frozen=True)

    face: DetectedFace
    vector: tuple[float, ...]


def no_face(field: str = "image", *, image: str | None = None) -> InvalidField:
    return InvalidField(
        "face.none",
        "照片中未检测到人脸，请正对镜头、光线充足后重拍",
        "No face was found in the photo; face the camera in good light and retake it",
        field=field,
        details={"image": image} if image else None,
    )


def multiple_faces(count: int, field: str = "image") -> InvalidField:
    return InvalidField(
        "face.multiple",
        f"照片中检测到 {count} 张人脸，自拍照只能有本人一张人脸",
        f"{count} faces were found; the selfie must show only the applicant's face",
        field=field,
        details={"faces": count},
    )


def face_too_small(size_px: int, min_face_px: int, field: str = "image") -> InvalidField:
    return InvalidField(
        "face.too_small",
        f"人脸过小（{size_px} 像素，至少 {min_face_px} 像素），请靠近镜头后重拍",
        f"The face is too small ({size_px} px, at least {min_face_px} px); move closer and retake it",
        field=field,
        details={"size_px": size_px, "min_face_px": min_face_px},
    )


def face_not_frontal(yaw: float, pitch: float, field: str = "image") -> InvalidField:
    return InvalidField(
        "face.not_frontal",
        "人脸未正对镜头（转头或抬头、低头幅度过大），请正视镜头后重拍",
        "The face is not frontal (head turned or tilted too far); look straight at the camera",
        field=field,
        details={"yaw": round(yaw, 1), "pitch": round(pitch, 1)},
    )


def image_unreadable(field: str = "image", *, image: str | None = None) -> InvalidField:
    return InvalidField(
        "face.image_unreadable",
        "无法读取照片，请上传 JPEG 或 PNG 图片",
        "The photo cannot be read; upload a JPEG or PNG image",
        field=field,
        details={"image": image} if image else None,
    )


def photo_size(image: bytes) -> tuple[int, int]:
    """(width, height) of an encoded photo after its EXIF rotation; reads the header only."""
    from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image

    try:
        with open_image(image, max_pixels=MAX_PIXELS) as opened:
            width, height = opened.size
            if opened.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated a quarter turn
                width, height = height, width
    except ImageRefused as exc:
        raise image_unreadable() from exc
    return width, height


def check_selfie(
    faces: Sequence[DetectedFace],
    image_size: tuple[int, int],
    *,
    min_face_px: int = DEFAULT_MIN_FACE_PX,
    max_yaw: float = DEFAULT_MAX_YAW,
    max_pitch: float = DEFAULT_MAX_PITCH,
    field: str = "selfie",
) -> DetectedFace:
    """The one face of a live capture, or the refusal that tells the person what to change.

    Exactly one face (a bystander or a photo held up beside the applicant is refused), at least
    ``min_face_px`` on its shorter side counting only the part inside the ``image_size`` (width, height)
    frame, and turned no more than ``max_yaw`` / ``max_pitch`` degrees. Checks run in that order, so the
    refusal names the first thing to fix.
    """
    if not faces:
        raise no_face(field)
    if len(faces) > 1:
        raise multiple_faces(len(faces), field)
    face = faces[0]
    width, height = image_size
    visible_w = min(face.box.left + face.box.width, width) - max(face.box.left, 0)
    visible_h = min(face.box.top + face.box.height, height) - max(face.box.top, 0)
    visible = max(0, min(visible_w, visible_h))
    if visible < min_face_px:
        raise face_too_small(visible, min_face_px, field)
    if abs(face.yaw) > max_yaw or abs(face.pitch) > max_pitch:
        raise face_not_frontal(face.yaw, face.pitch, field)
    return face
