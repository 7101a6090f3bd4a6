"""ID portrait matching (人证一致): the live capture against the portrait on the ID card's front.

The applicant photographs the front of the card (居民身份证人像面); this service finds the portrait on
that photo, crops it, and scores it against the live capture with the configured face engine. Pure: no
storage, no AWS; the caller records the result in the evidence and counts the attempts.

Finding the portrait:

1. The engine looks for faces on the whole photo. An engine works on a reduced copy of a large photo
   (the local one at 800 px on the long side), so a card that fills only part of a 12-megapixel phone
   photo can leave its portrait too small to find.
2. When nothing is found on a photo at least ``ZOOM_ABOVE`` px on its long side, the engine looks again
   at a 3 × 3 grid of overlapping tiles, each half the photo's width and height: faces are twice as
   large there, and any face up to a quarter of the photo's size lies whole in one tile. Faces seen in
   several tiles are counted once.
3. Several faces (the small ghost image printed on newer cards; a face beside the card): the largest
   is the portrait, and the count goes into the result (``faces_on_card``). A card photographed next to
   a real face takes that face, which is larger: the caller decides what a count above one means (a
   manual review, say); this service only reports it.
4. The face box is enlarged to the portrait's area: the photo printed on the card is 26 × 32 mm (358 ×
   441 px in the card photo standard, GA 461), the head centred, the face as a detector boxes it (brow
   to chin) about half the photo's width. The area is clamped to the photo and cropped, keeping at
   least ``CROP_FACE_PX`` of the face and at most ``CROP_MAX_SIDE`` px on the long side, so the engine
   compares a portrait, not the card's text and background.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.images import MAX_PIXELS, ImageRefused, open_image
from chalicelib.verification.domain.faces import (
    DetectedFace,
    FaceBox,
    FaceEmbedding,
    image_unreadable,
    no_face,
    photo_size,
)
from chalicelib.verification.ports import EmbeddingFaceEngine, FaceEngine

#: The form field of the card photo, named in refusals.
CARD_FIELD = "id_front"


#: Below this many pixels (shorter side of the face box, in the card photo) a portrait is too small to
#: compare reliably.
MIN_PORTRAIT_FACE_PX = 40


#: Photos at least this long on their long side get the tiled second look when the first finds nothing.
ZOOM_ABOVE = 1600


#: Tiles per side of the second look (each tile is 2 / (n + 1) of the photo's width and height).
ZOOM_GRID = 3


#: Long side of each tile handed to the engine, and its JPEG quality.
ZOOM_SIDE = 1000


ZOOM_JPEG_QUALITY = 90


#: Two detections overlapping more than this (intersection over union) are one face.
SAME_FACE_IOU = 0.3


#: Portrait area per face box: width and height as multiples of the box's, and where the box's centre
#: lies, as a fraction of the area's height from its top (GA 461 geometry, see the module docstring).
PORTRAIT_WIDTH_PER_FACE = 2.1


PORTRAIT_HEIGHT_PER_FACE = 2.6


PORTRAIT_FACE_CENTRE = 0.48


#: The crop keeps at least this many pixels of the face (scores hold steady down to about 100 px), and
#: is at most ``CROP_MAX_SIDE`` on its long side: engines need no more to describe a face.
CROP_FACE_PX = 120


CROP_MAX_SIDE = 800


CROP_JPEG_QUALITY = 92


class PortraitMatch(BaseModel):
    """The score of the live capture against the card's portrait (人证比对结果), for the evidence."""

    model_config = ConfigDict(frozen=True)

    similarity: float = Field(ge=0, le=100)
    threshold: float
    verdict: Literal["match", "no_match"]
    engine: str
    engine_version: str
    #: Where the portrait's face was found on the card photo (pixels of the EXIF-rotated photo).
    portrait_box: FaceBox
    #: Shorter side of that face box.
    portrait_face_px: int = Field(ge=0)
    #: Shorter side of the live capture's face box.
    live_face_px: int = Field(ge=0)
    #: The area cropped as the portrait (the face box enlarged, clamped to the photo).
    portrait_area: FaceBox
    #: Faces seen on the card photo (more than one: a ghost image, or a face beside the card).
    faces_on_card: int = Field(ge=1)


@dataclass(frozen=True)
class LocatedPortrait:
    """The card's portrait: the cropped JPEG, its face, the area cropped, and how many faces were seen."""

    image: bytes
    face: DetectedFace
    area: FaceBox
    faces_seen: int


NO_PORTRAIT = "id_card.no_portrait"


def no_portrait() -> InvalidField:
    return InvalidField(
        NO_PORTRAIT,
        "身份证人像面照片中未找到人像，请将证件人像面完整、清晰地拍入画面后重拍",
        "No portrait was found on the ID card photo; photograph the whole front of the card clearly",
        field=CARD_FIELD,
    )


def portrait_too_small(size_px: int, min_face_px: int = MIN_PORTRAIT_FACE_PX) -> InvalidField:
    return InvalidField(
        "id_card.portrait_too_small",
        f"身份证人像过小（{size_px} 像素，至少 {min_face_px} 像素），请靠近证件后重拍",
        f"The portrait on the ID card is too small ({size_px} px, at least {min_face_px} px); "
        "move closer to the card and retake it",
        field=CARD_FIELD,
        details={"size_px": size_px, "min_face_px": min_face_px},
    )


def locate_portrait(engine: FaceEngine, card_image: bytes) -> tuple[bytes, DetectedFace]:
    """The card's portrait cropped as a JPEG, and its face on the card photo (see ``find_portrait``)."""
    found = find_portrait(engine, card_image)
    return found.image, found.face


def find_portrait(
    engine: FaceEngine, card_image: bytes, *, min_face_px: int = MIN_PORTRAIT_FACE_PX
) -> LocatedPortrait:
    """Find, check and crop the portrait on a photo of the card's front.

    Raises ``id_card.no_portrait`` when the photo holds no face, ``id_card.portrait_too_small`` when the
    largest is under ``min_face_px``, ``face.image_unreadable`` (field ``id_front``) on bad bytes.
    """
    try:
        photo = _CardPhoto(card_image)
        faces = engine.detect(card_image)
        if not faces:
            faces = _zoomed_detect(engine, photo)
    except InvalidField as exc:
        if exc.code == "face.image_unreadable":
            raise image_unreadable(CARD_FIELD) from exc
        raise
    if not faces:
        raise no_portrait()
    face = max(faces, key=lambda f: f.box.area)
    if face.size_px < min_face_px:
        raise portrait_too_small(face.size_px, min_face_px)
    crop, area = _crop_portrait(photo, face)
    return LocatedPortrait(image=crop, face=face, area=area, faces_seen=len(faces))


def match_portrait(
    engine: FaceEngine, card_image: bytes, live_image: bytes, threshold: float
) -> PortraitMatch:
    """人证一致: the live capture against the card's portrait, ``match`` at or above ``threshold``.

    The engine sees the cropped portrait as image ``a`` and the live capture as image ``b``: a live
    capture without a face raises the engine's ``face.none`` with ``details.image`` = ``b``.
    """
    portrait = find_portrait(engine, card_image)
    if isinstance(engine, EmbeddingFaceEngine):
        card_side = _embed_portrait(engine, portrait.image)
        try:
            live_side = engine.embed(live_image)
        except InvalidField as exc:
            if exc.code == "face.none":
                raise no_face(image="b") from exc
            raise
        similarity = round(engine.similarity(card_side, live_side), 2)
        live_face = live_side.face
    else:
        try:
            comparison = engine.compare(portrait.image, live_image)
        except InvalidField as exc:
            if exc.code == "face.none" and exc.details.get("image") == "a":
                raise no_portrait() from exc
            raise
        similarity = comparison.similarity
        live_faces = engine.detect(live_image)
        if not live_faces:
            raise no_face(image="b")
        live_face = live_faces[0]
    return PortraitMatch(
        similarity=similarity,
        threshold=threshold,
        verdict="match" if similarity >= threshold else "no_match",
        engine=engine.name,
        engine_version=engine.version,
        portrait_box=portrait.face.box,
        portrait_face_px=portrait.face.size_px,
        live_face_px=live_face.size_px,
        portrait_area=portrait.area,
        faces_on_card=portrait.faces_seen,
    )


def _embed_portrait(engine: EmbeddingFaceEngine, crop: bytes) -> FaceEmbedding:
    # The crop holds the face found on the card; should the engine not find it again at the crop's
    # scale, the card photo is what to retake.
    try:
        return engine.embed(crop)
    except InvalidField as exc:
        if exc.code == "face.none":
            raise no_portrait() from exc
        raise


class _CardPhoto:
    """The card photo's bytes, decoded on first use at the resolution asked for, and again only when a
    later use needs more.

    A JPEG is decoded at 1/2, 1/4 or 1/8 of its size when that is enough (``draft``): a 12-megapixel
    photo costs about a tenth of a second to decode in full, and neither the tiles nor the crop need it.
    """

    def __init__(self, image: bytes) -> None:
        self.image = image
        #: Width and height after the EXIF rotation.
        self.size = photo_size(image)
        self._decoded: tuple[Image.Image, float] | None = None

    def pixels(self, min_scale: float) -> tuple[Image.Image, float]:
        """RGB pixels, EXIF-rotated, at no less than ``min_scale`` of the full size; with the photo's
        pixels per decoded pixel."""
        if self._decoded is not None and 1 / self._decoded[1] >= min_scale:
            return self._decoded
        try:
            with open_image(self.image, max_pixels=MAX_PIXELS) as opened:
                if min_scale < 1 and opened.format == "JPEG":
                    opened.draft(
                        "RGB", (math.ceil(opened.width * min_scale), math.ceil(opened.height * min_scale))
                    )
                im = ImageOps.exif_transpose(opened) if opened.getexif().get(0x0112, 1) != 1 else opened
                if "A" in im.getbands() or "transparency" in im.info:  # as the engines see it: over white
                    rgba = im.convert("RGBA")
                    im = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                im = im.convert("RGB") if im.mode != "RGB" else im.copy()
                im.load()
        except ImageRefused as exc:
            raise image_unreadable(CARD_FIELD) from exc
        self._decoded = (im, self.size[0] / im.width)
        return self._decoded


def _tiles(width: int, height: int, grid: int) -> Iterator[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of ``grid`` × ``grid`` tiles of 2 / (grid + 1) of each side, overlapping
    by half a tile."""
    tile_w, tile_h = 2 * width // (grid + 1), 2 * height // (grid + 1)
    for row in range(grid):
        for col in range(grid):
            left = min(width - tile_w, col * tile_w // 2)
            top = min(height - tile_h, row * tile_h // 2)
            yield left, top, left + tile_w, top + tile_h


def _zoomed_detect(engine: FaceEngine, photo: _CardPhoto) -> list[DetectedFace]:
    """The second look: faces on overlapping tiles, mapped back to the photo and counted once."""
    if max(photo.size) < ZOOM_ABOVE:
        return []
    tile_long = 2 * max(photo.size) / (ZOOM_GRID + 1)
    im, scale = photo.pixels(min(1.0, ZOOM_SIDE / tile_long))
    found: list[DetectedFace] = []
    for left, top, right, bottom in _tiles(im.width, im.height, ZOOM_GRID):
        tile = im.crop((left, top, right, bottom))
        shrink = max(1.0, max(tile.size) / ZOOM_SIDE)
        if shrink > 1:
            tile = tile.resize(
                (round(tile.width / shrink), round(tile.height / shrink)), Image.Resampling.BILINEAR
            )
        for face in engine.detect(_jpeg(tile, ZOOM_JPEG_QUALITY)):
            found = _count_once(found, _map_face(face, left, top, shrink * scale, scale, photo.size))
    found.sort(key=lambda f: f.box.area, reverse=True)
    return found


def _map_face(
    face: DetectedFace, left: int, top: int, factor: float, scale: float, size: tuple[int, int]
) -> DetectedFace:
    """A face found on a tile, in pixels of the whole photo (tile pixels × ``factor``; the tile's corner,
    in decoded pixels, × ``scale``)."""
    box = FaceBox(
        left=round(left * scale + face.box.left * factor),
        top=round(top * scale + face.box.top * factor),
        width=round(face.box.width * factor),
        height=round(face.box.height * factor),
    )
    size_px = min(box.width, box.height)
    return face.model_copy(update={"box": box, "size_px": size_px, "relative_size": size_px / min(size)})


def _count_once(found: list[DetectedFace], face: DetectedFace) -> list[DetectedFace]:
    """``found`` with ``face`` added, or in place of the smaller detection of the same face."""
    same = [seen for seen in found if _iou(seen.box, face.box) > SAME_FACE_IOU]
    if not same:
        return [*found, face]
    if all(face.box.area > seen.box.area for seen in same):
        return [seen for seen in found if seen not in same] + [face]
    return found


def _iou(a: FaceBox, b: FaceBox) -> float:
    overlap_w = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    overlap_h = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    if overlap_w <= 0 or overlap_h <= 0:
        return 0.0
    overlap = overlap_w * overlap_h
    return overlap / (a.area + b.area - overlap)


def portrait_area(box: FaceBox, size: tuple[int, int]) -> FaceBox:
    """The portrait's area around a face box, clamped to a photo of ``size`` (width, height)."""
    width, height = size
    area_w, area_h = box.width * PORTRAIT_WIDTH_PER_FACE, box.height * PORTRAIT_HEIGHT_PER_FACE
    centre_x, centre_y = box.left + box.width / 2, box.top + box.height / 2
    left = max(0, round(centre_x - area_w / 2))
    top = max(0, round(centre_y - area_h * PORTRAIT_FACE_CENTRE))
    right = min(width, round(centre_x + area_w / 2))
    bottom = min(height, round(centre_y + area_h * (1 - PORTRAIT_FACE_CENTRE)))
    return FaceBox(left=left, top=top, width=max(0, right - left), height=max(0, bottom - top))


def _crop_portrait(photo: _CardPhoto, face: DetectedFace) -> tuple[bytes, FaceBox]:
    """The portrait area cut from the photo, keeping at least ``CROP_FACE_PX`` of the face (all of it
    when smaller), at most ``CROP_MAX_SIDE`` on the long side."""
    area = portrait_area(face.box, photo.size)
    im, scale = photo.pixels(min(1.0, CROP_FACE_PX / max(face.size_px, 1)))
    crop = im.crop(
        (
            round(area.left / scale),
            round(area.top / scale),
            round((area.left + area.width) / scale),
            round((area.top + area.height) / scale),
        )
    )
    if max(crop.size) > CROP_MAX_SIDE:
        ratio = CROP_MAX_SIDE / max(crop.size)
        crop = crop.resize(
            (max(1, round(crop.width * ratio)), max(1, round(crop.height * ratio))), Image.Resampling.LANCZOS
        )
    return _jpeg(crop, CROP_JPEG_QUALITY), area


def _jpeg(im: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality)
    return out.getvalue()
