"""Is a burst one continuous capture? The scene, the light and the face between consecutive frames, and the
frame times the client reports (the rules and their measured margins: ``local``'s module docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
from PIL import Image

from chalicelib.verification.domain.faces import DetectedFace


class Scene(Protocol):
    """A decoded frame: its grey levels and its size after EXIF rotation (face boxes are in it)."""

    @property
    def grey(self) -> Image.Image: ...

    @property
    def size(self) -> tuple[int, int]: ...


def box_fractions(face: DetectedFace, size: tuple[int, int]) -> tuple[float, float, float, float]:
    """The face box as fractions of the frame (left, top, right, bottom)."""
    width, height = size
    box = face.box
    return (
        box.left / width,
        box.top / height,
        (box.left + box.width) / width,
        (box.top + box.height) / height,
    )


#: Side (width) of the grey thumbnails the background and lighting are compared on.
SCENE_PX = 64
#: Background shifts (camera shake), in thumbnail pixels, tried when comparing two frames.
SCENE_SHIFT = 3
#: Two consecutive frames of one capture differ outside the face by at most this (mean absolute grey
#: difference, 0–255, after removing the change in mean brightness, at the best small shift).
MAX_BACKGROUND_CHANGE = 20.0
#: Mean brightness may change by at most this between consecutive frames (0–255) ...
MAX_LIGHT_STEP = 15.0
#: ... and by at most this across the burst.
MAX_LIGHT_SPAN = 30.0
#: The face centre may move at most this share of the face's width between consecutive frames ...
MAX_FACE_SHIFT = 0.35
#: ... and the face's width change by at most this factor.
MAX_FACE_SCALE = 1.45
#: Frame times: each step 40 ms – 2 s, the whole burst 0.3 – 10 s.
MIN_STEP_MS, MAX_STEP_MS = 40, 2_000
MIN_SPAN_MS, MAX_SPAN_MS = 300, 10_000


def check_timing(timestamps: Sequence[int] | None, count: int) -> dict[str, Any]:
    """Whether the frame times are one capture: one per frame, increasing, spaced and spanning sanely."""
    if timestamps is None or len(timestamps) != count:
        return {"ok": False, "problem": "missing" if timestamps is None else "count"}
    steps = [b - a for a, b in pairwise(timestamps)]
    span = timestamps[-1] - timestamps[0]
    problem = None
    if any(step <= 0 for step in steps):
        problem = "order"
    elif any(not MIN_STEP_MS <= step <= MAX_STEP_MS for step in steps):
        problem = "step"
    elif not MIN_SPAN_MS <= span <= MAX_SPAN_MS:
        problem = "span"
    return {"ok": problem is None, "problem": problem, "span_ms": span, "steps_ms": steps}


def _thumbnail(frame: Scene) -> np.ndarray[Any, np.dtype[np.float64]]:
    width, height = frame.grey.size
    size = (SCENE_PX, max(8, round(SCENE_PX * height / width)))
    small = frame.grey.resize(size, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64)


def _outside_face(
    shape: tuple[int, ...], boxes: Sequence[tuple[float, float, float, float]]
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Thumbnail pixels outside the faces (boxes as fractions, widened for hair, ears and neck)."""
    rows, cols = shape[0], shape[1]
    keep = np.ones((rows, cols), dtype=bool)
    for left, top, right, bottom in boxes:
        w, h = right - left, bottom - top
        x0, x1 = (left - 0.35 * w) * cols, (right + 0.35 * w) * cols
        y0, y1 = (top - 0.5 * h) * rows, (bottom + 0.6 * h) * rows
        keep[max(0, int(y0)) : max(0, math.ceil(y1)), max(0, int(x0)) : max(0, math.ceil(x1))] = False
    return keep


def _background_change(
    a: np.ndarray[Any, np.dtype[np.float64]],
    b: np.ndarray[Any, np.dtype[np.float64]],
    keep: np.ndarray[Any, np.dtype[np.bool_]],
) -> float | None:
    """Least mean absolute difference outside the faces over small shifts, brightness change removed."""
    rows, cols = a.shape
    best: float | None = None
    for dy in range(-SCENE_SHIFT, SCENE_SHIFT + 1):
        for dx in range(-SCENE_SHIFT, SCENE_SHIFT + 1):
            ys, xs = slice(max(0, -dy), rows - max(0, dy)), slice(max(0, -dx), cols - max(0, dx))
            ys2, xs2 = slice(max(0, dy), rows - max(0, -dy)), slice(max(0, dx), cols - max(0, -dx))
            mask = keep[ys, xs] & keep[ys2, xs2]
            if int(mask.sum()) < 40:
                continue
            diff = a[ys, xs][mask] - b[ys2, xs2][mask]
            change = float(np.abs(diff - diff.mean()).mean())
            best = change if best is None else min(best, change)
    return best


def check_continuity(frames: Sequence[Scene], faces: Sequence[DetectedFace]) -> dict[str, Any]:
    """Whether consecutive frames are one capture: same scene and light, the face moving a little."""
    if len({frame.size for frame in frames}) > 1:
        return {"ok": False, "problems": ["sizes"]}
    thumbs = [_thumbnail(frame) for frame in frames]
    light = [float(t.mean()) for t in thumbs]
    boxes = [box_fractions(face, frame.size) for frame, face in zip(frames, faces, strict=True)]
    background: list[float | None] = []
    shifts: list[float] = []
    scales: list[float] = []
    for i in range(1, len(frames)):
        keep = _outside_face(thumbs[i].shape, (boxes[i - 1], boxes[i]))
        background.append(_background_change(thumbs[i - 1], thumbs[i], keep))
        a, b = faces[i - 1].box, faces[i].box
        width = (a.width + b.width) / 2
        shift = math.hypot(
            (a.left + a.width / 2) - (b.left + b.width / 2), (a.top + a.height / 2) - (b.top + b.height / 2)
        )
        shifts.append(shift / width)
        scales.append(max(a.width, b.width) / max(1, min(a.width, b.width)))
    steps = [abs(b - a) for a, b in pairwise(light)]
    measured = [change for change in background if change is not None]
    problems = [
        name
        for name, bad in (
            (
                "background",
                len(measured) < len(background) or max(measured, default=0.0) > MAX_BACKGROUND_CHANGE,
            ),
            (
                "lighting",
                max(steps, default=0.0) > MAX_LIGHT_STEP or max(light) - min(light) > MAX_LIGHT_SPAN,
            ),
            (
                "motion",
                max(shifts, default=0.0) > MAX_FACE_SHIFT or max(scales, default=1.0) > MAX_FACE_SCALE,
            ),
        )
        if bad
    ]
    return {
        "ok": not problems,
        "problems": problems,
        "background_change": [None if c is None else round(c, 1) for c in background],
        "light_steps": [round(step, 1) for step in steps],
        "face_shifts": [round(shift, 3) for shift in shifts],
        "face_scales": [round(scale, 3) for scale in scales],
    }
