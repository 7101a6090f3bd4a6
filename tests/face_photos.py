"""The shared face photos (``../shared/faces``, read where they lie, never copied) and the reason a test
or a benchmark of the local face engine cannot run on them."""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
#: The face on the synthetic person's ID card in the whole-flow tests (and the identity authority's
#: portrait of that person: ``tests/conftest.py``).
CARD_PORTRAIT = "obama_video_1080p.jpg"


def local_face_engine_missing(needed: str = "pairs.csv") -> str | None:
    """Why the local face engine cannot run on the shared photos (``needed`` is not among them, or dlib
    is not installed), or None when it can."""
    if not (FACES / needed).is_file():
        return f"real face photos not found at {FACES} (see DESIGN: tests)"
    if find_spec("dlib") is None or find_spec("face_recognition_models") is None:
        return "dlib or face-recognition-models not installed (pip install dlib-bin face-recognition-models)"
    return None
