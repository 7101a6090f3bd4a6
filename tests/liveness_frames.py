"""Frame bursts for the liveness tests, built in code from the shared photos (never copied).

The shared photos are stills, so a head turn is made in one of two ways:

- ``turned``: a still wrapped on a vertical cylinder through the face and rotated. The middle of the
  face (nose) moves further than its sides, as on a turning head, and the landmark pose follows: on
  ``obama_1.jpg`` warps of 0/10/20/30° read as yaw 1.8/10.4/17.1/22.5° (and 1.8/−3.3/−14.0/−20.0° the
  other way), while the pitch moves by a few degrees at most.
- ``photos``: one person's different photos, whose natural yaw differs (``obama_1`` 2°, ``obama_4`` 25°,
  ``obama_2`` −26°), and their mirror images (mirroring flips the sign of the yaw). The same warp about
  a horizontal axis moved the landmark pitch by only 5–10° for a 30° warp, too little to stand for a
  nod, so the up/down bursts use photos whose natural pitch differs (``biden_1`` 6°, ``biden_2`` −15°;
  ``obama_1`` −7°, ``obama_3`` 29°).

``nodding_burst``: the still raised or lowered with a depth model of the head (``nodded``), which moves
the landmark pitch by 20–35° for a 30° nod, the right way (checked by eye on the written frames).
``handheld`` turns a burst into what one continuous capture gives: small smooth camera shake and
exposure drift. The ``photos`` bursts are the attack the continuity check must stop: different stills
of one person are different scenes.

``tilted_print`` is the attack the pose check must stop: the still as a flat print turned in front of
the camera (a perspective warp, one edge nearer than the other).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from chalicelib.verification.domain.liveness import LivenessDirection
from chalicelib.verification.ports import FaceEngine
from tests.face_photos import FACES

#: Long side of the frames, as a phone client would send them.
SIDE = 640
#: Radius of the cylinder a face is wrapped on, as a multiple of the face box's side.
RADIUS = 0.5
#: Warp angles of a turning burst: facing the camera, then turning further.
TURN_STEPS = (0.0, 10.0, 20.0, 30.0)


def photo(name: str, side: int = SIDE) -> Image.Image:
    """A shared photo, upright, in RGB, at most ``side`` px on its long side."""
    with Image.open(FACES / name) as opened:
        im = ImageOps.exif_transpose(opened).convert("RGB")
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return im


def jpeg(im: Image.Image, quality: int = 90, **params: Any) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, **params)
    return out.getvalue()


def png(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def mirrored(im: Image.Image) -> Image.Image:
    return ImageOps.mirror(im)


def turned(im: Image.Image, degrees: float, centre: float, radius: float) -> Image.Image:
    """The photo wrapped on a vertical cylinder (axis at column ``centre``) and turned by ``degrees``.

    Positive degrees turn the face toward the image's right (yaw grows). A column at u = sin φ radii
    from the axis moves to sin(φ + θ); outside the cylinder nothing moves.
    """
    pixels = np.asarray(im, dtype=np.float64)
    width = pixels.shape[1]
    column = np.arange(width, dtype=np.float64)
    u = (column - centre) / radius
    inside = np.abs(u) < 1
    source = np.where(
        inside, centre + np.sin(np.arcsin(np.clip(u, -1, 1)) - math.radians(degrees)) * radius, column
    )
    source = np.clip(source, 0, width - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, width - 1)
    weight = (source - low)[None, :, None]
    blended = pixels[:, low] * (1 - weight) + pixels[:, high] * weight
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def turning_frames(
    engine: FaceEngine, name: str, sign: int, steps: Sequence[float] = TURN_STEPS
) -> list[Image.Image]:
    """Frames of the photo's face turning by ``steps`` degrees, right (``sign`` +1) or left (−1)."""
    im = photo(name)
    (face,) = engine.detect(jpeg(im))
    centre, radius = face.box.left + face.box.width / 2, face.box.width * RADIUS
    return [turned(im, sign * step, centre, radius) for step in steps]


def turning_burst(
    engine: FaceEngine, name: str, sign: int, steps: Sequence[float] = TURN_STEPS
) -> list[bytes]:
    """JPEG frames of the photo's face turning by ``steps`` degrees, right (``sign`` +1) or left (−1)."""
    return [jpeg(frame) for frame in turning_frames(engine, name, sign, steps)]


#: Nod angles of a raising (or lowering) burst.
NOD_STEPS = (0.0, 10.0, 20.0, 30.0)


def nodded(im: Image.Image, degrees: float, box: tuple[float, float, float, float]) -> Image.Image:
    """The photo's head raised by ``degrees`` (lowered when negative) about a horizontal axis.

    A depth model of the head in the face ``box`` (left, top, width, height; dlib's box runs from the
    brows to the chin): an ellipsoid from the top of the head to the chin, 0.6 of its half-height
    deep, with a ridge for the nose from between the eyes to its tip. Each point moves up by
    depth × sin θ and its height shrinks by cos θ, columns resampled from that map: a raised head shows
    more chin and less forehead, the nose tip climbs toward the eyes (and the reverse when lowered).
    On ``obama_1.jpg`` 0/15/25° read as pitch −7/4/12° with the dlib engine, −15/−25° as −20/−27°.
    """
    left, top, width, height = box
    pixels = np.asarray(im, dtype=np.float64)
    rows, cols = pixels.shape[:2]
    head_top = top - 0.25 * height
    cx, cy = left + width / 2, (head_top + top + height) / 2
    a, b = width * 0.6, (top + height - head_top) * 0.6
    x, y = np.meshgrid(np.arange(cols, dtype=np.float64), np.arange(rows, dtype=np.float64))
    depth = 0.6 * b * np.sqrt(np.clip(1 - ((x - cx) / a) ** 2 - ((y - cy) / b) ** 2, 0, 1))
    ridge_top, ridge_tip = top + 0.3 * height, top + 0.62 * height
    along = np.clip((y - ridge_top) / (ridge_tip - ridge_top), 0, 1)
    ridge_y = ridge_top + along * (ridge_tip - ridge_top)
    sigma = width * 0.12
    depth += 0.225 * b * (0.4 + 0.6 * along) * np.exp(-((x - cx) ** 2 + (y - ridge_y) ** 2) / (2 * sigma**2))
    theta = math.radians(degrees)
    moved = cy - ((cy - y) * math.cos(theta) + depth * math.sin(theta))
    row = np.arange(rows, dtype=np.float64)
    out = np.empty_like(pixels)
    for col in range(cols):
        source = np.interp(row, np.maximum.accumulate(moved[:, col]), row)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, rows - 1)
        weight = (source - low)[:, None]
        out[:, col] = pixels[low, col] * (1 - weight) + pixels[high, col] * weight
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8))


def nodding_burst(
    engine: FaceEngine, name: str, sign: int, steps: Sequence[float] = NOD_STEPS
) -> list[Image.Image]:
    """Frames of the photo's head being raised (``sign`` +1) or lowered (−1) by ``steps`` degrees."""
    im = photo(name)
    (face,) = engine.detect(jpeg(im))
    box = (face.box.left, face.box.top, face.box.width, face.box.height)
    return [nodded(im, sign * step, box) for step in steps]


def handheld(frames: Sequence[Image.Image], seed: int = 7, shift: float = 2.0) -> list[bytes]:
    """The frames as a handheld camera gives them: each shifted by up to ``shift`` px and its exposure
    drifting by up to ±4 %, smoothly, then JPEG-encoded (what one continuous capture looks like)."""
    rng = np.random.default_rng(seed)
    out = []
    dx = dy = 0.0
    gain = 1.0
    for frame in frames:
        dx = float(np.clip(dx + rng.uniform(-shift / 2, shift / 2), -shift, shift))
        dy = float(np.clip(dy + rng.uniform(-shift / 2, shift / 2), -shift, shift))
        gain = float(np.clip(gain + rng.uniform(-0.02, 0.02), 0.96, 1.04))
        moved = frame.transform(
            frame.size, Image.Transform.AFFINE, (1, 0, dx, 0, 1, dy), Image.Resampling.BILINEAR
        )
        exposed = np.clip(np.rint(np.asarray(moved, dtype=np.float64) * gain), 0, 255).astype(np.uint8)
        out.append(jpeg(Image.fromarray(exposed)))
    return out


def capture_times(count: int, start: int = 1_700_000_000_000, step: int = 450) -> list[int]:
    """Frame times (ms) of a capture like the H5 client's: one frame every ``step`` ms."""
    return [start + i * step for i in range(count)]


def tilted_print(im: Image.Image, amount: float) -> Image.Image:
    """The photo as a flat print turned about its vertical axis: the right edge shrinks by ``amount``.

    A negative amount shrinks the left edge instead.
    """
    width, height = im.size
    inset = abs(amount) * height / 2
    near = [(0.0, 0.0), (width, 0.0), (width, height), (0.0, height)]
    if amount >= 0:
        far = [(0.0, 0.0), (width, inset), (width, height - inset), (0.0, height)]
    else:
        far = [(0.0, inset), (width, 0.0), (width, height), (0.0, height - inset)]
    # Solve for the homography taking output (far) corners to input (near) corners.
    rows, rhs = [], []
    for (x, y), (sx, sy) in zip(far, near, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -sx * x, -sx * y])
        rows.append([0, 0, 0, x, y, 1, -sy * x, -sy * y])
        rhs += [sx, sy]
    coeffs = np.linalg.solve(np.array(rows, dtype=float), np.array(rhs, dtype=float))
    return im.transform(
        im.size, Image.Transform.PERSPECTIVE, tuple(float(c) for c in coeffs), Image.Resampling.BILINEAR
    )


def blank(width: int = SIDE, height: int = 480) -> bytes:
    """A frame with no face: a plain wall."""
    return jpeg(Image.new("RGB", (width, height), (205, 200, 190)))


#: Bursts from one person's photos (name, mirrored), in capture order: facing the camera, then turned.
#: Natural poses (yaw, pitch) read by the dlib engine at 640 px: obama_1 (2, −7), obama_video_1080p
#: (1, −8), obama_4 (25, 12), obama_2 (−26, 10), obama_3 (18, 29), biden_1 (15, 6), biden_2 (7, −15).
PHOTO_BURSTS: dict[LivenessDirection, list[tuple[str, bool]]] = {
    LivenessDirection.RIGHT: [
        ("obama_1.jpg", False),
        ("obama_video_1080p.jpg", False),
        ("obama_4.jpg", False),
        ("obama_2.jpg", True),
    ],
    LivenessDirection.LEFT: [
        ("obama_1.jpg", True),
        ("obama_video_1080p.jpg", True),
        ("obama_4.jpg", True),
        ("obama_2.jpg", False),
    ],
    LivenessDirection.DOWN: [
        ("biden_1.jpg", False),
        ("biden_1.jpg", True),
        ("biden_2.jpg", False),
        ("biden_2.jpg", True),
    ],
    LivenessDirection.UP: [
        ("obama_1.jpg", False),
        ("obama_4.jpg", False),
        ("obama_4.jpg", True),
        ("obama_3.jpg", False),
    ],
}


def photo_burst(direction: LivenessDirection) -> list[bytes]:
    """JPEG frames of one person's photos whose natural pose moves in ``direction`` (``PHOTO_BURSTS``)."""
    frames = []
    for name, mirror in PHOTO_BURSTS[direction]:
        im = photo(name)
        frames.append(jpeg(mirrored(im) if mirror else im))
    return frames


def aligned(im: Image.Image, engine: FaceEngine, size: tuple[int, int] = (SIDE, 480)) -> Image.Image:
    """The still scaled and shifted so its face is 160 px wide at one place of a ``size`` frame: an
    attacker's stills made to look like frames of one camera."""
    (face,) = engine.detect(jpeg(im))
    scale = 160 / face.box.width
    cx, cy = face.box.left + face.box.width / 2, face.box.top + face.box.height / 2
    target_x, target_y = size[0] / 2, size[1] * 0.42
    return im.transform(
        size,
        Image.Transform.AFFINE,
        (1 / scale, 0, cx - target_x / scale, 0, 1 / scale, cy - target_y / scale),
        Image.Resampling.BILINEAR,
    )


def aligned_photo_burst(engine: FaceEngine, direction: LivenessDirection) -> list[bytes]:
    """``photo_burst`` with every still ``aligned``: one frame size, the face in one place and size."""
    frames = []
    for name, mirror in PHOTO_BURSTS[direction]:
        im = photo(name, 1000)
        frames.append(jpeg(aligned(mirrored(im) if mirror else im, engine)))
    return frames


def centred(
    im: Image.Image, engine: FaceEngine, face_share: float = 0.45, size: tuple[int, int] = (480, 360)
) -> Image.Image:
    """The photo cropped to 4:3 around its face, the face in the middle at ``face_share`` of the height
    (as a phone's front camera shows a person lining up with the face oval), grey where it runs out,
    scaled to ``size`` (even sides: a camera's frames have them, and Chromium's fake camera needs them)."""
    (face,) = engine.detect(jpeg(im))
    centre_x, centre_y = face.box.left + face.box.width / 2, face.box.top + face.box.height / 2
    height = face.box.height / face_share
    width = height * 4 / 3
    left, top = round(centre_x - width / 2), round(centre_y - height / 2)
    canvas = Image.new("RGB", (round(width), round(height)), (128, 128, 128))
    canvas.paste(im, (-left, -top))
    return canvas.resize(size, Image.Resampling.LANCZOS)
