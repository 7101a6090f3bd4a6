"""人证一致, local face engine: milliseconds to locate the portrait on an ID card photo and compare it.

The card is ``tests/synthetic_documents.py``'s ID front carrying an ID-style portrait cut from
``../shared/faces/obama_1.jpg``; the live capture is ``obama_2.jpg`` (626×1200). Card photos, made in
memory:

- phone, card filling the frame: 4000×3000 JPEG, the card 3400 px wide, turned 4°, on a grey desk;
- phone, card at 45 % of the width: the same photo with the card 1800 px wide; its portrait is too small
  for the engine's first look (800 px on the long side), so the tiled second look (9 tiles) finds it;
- small: the card itself, 856×540 JPEG.

Each figure is the median of several runs after a warm-up: ``match_portrait`` (locate + crop + compare)
and ``find_portrait`` alone, and the refusal of a phone photo of a card without a portrait (both looks).

Run: ``python bench/bench_portrait.py``. Prints a line and exits 0 when the shared photos, dlib or the CJK
font are absent.
"""

from __future__ import annotations

import importlib.util
import io
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
RUNS = 7


def _median_ms(action: Callable[[], object], runs: int = RUNS) -> float:
    action()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _jpeg(im: object, quality: int = 90) -> bytes:
    from PIL import Image

    assert isinstance(im, Image.Image)
    out = io.BytesIO()
    im.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _id_photo(engine: object, name: str) -> bytes:
    """A 4:5 ID-style photo: the face box centred across half the width."""
    from PIL import Image, ImageOps

    from chalicelib.verification.ports import FaceEngine

    assert isinstance(engine, FaceEngine)
    source = ImageOps.exif_transpose(Image.open(FACES / name)).convert("RGB")
    box = engine.detect((FACES / name).read_bytes())[0].box
    width = 2 * box.width
    height = width * 5 // 4
    left = box.left + box.width // 2 - width // 2
    top = box.top + box.height // 2 - height * 45 // 100
    canvas = Image.new("RGB", (width, height), (245, 248, 250))
    inner = (max(0, left), max(0, top), min(source.width, left + width), min(source.height, top + height))
    canvas.paste(source.crop(inner), (inner[0] - left, inner[1] - top))
    return _jpeg(canvas, 95)


def _phone_photo(card: bytes, card_width: int, angle: float) -> bytes:
    """The card turned ``angle`` degrees on a grey, slightly noisy desk in a 4000×3000 JPEG."""
    from PIL import Image

    im = Image.open(io.BytesIO(card)).convert("RGBA")
    im = im.resize((card_width, round(im.height * card_width / im.width)), Image.Resampling.BILINEAR)
    im = im.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    desk = Image.merge("RGB", [Image.effect_noise((4000, 3000), 12).point(lambda v: v // 2 + 40)] * 3)
    desk.paste(im, ((4000 - im.width) // 2, (3000 - im.height) // 2), im)
    return _jpeg(desk, 88)


def run() -> None:
    if not (FACES / "obama_1.jpg").is_file():
        print(f"skipped: real face photos not found at {FACES}")
        return
    if (
        importlib.util.find_spec("dlib") is None
        or importlib.util.find_spec("face_recognition_models") is None
    ):
        print("skipped: dlib-bin / face-recognition-models not installed")
        return
    from tests import synthetic_documents as docs

    if docs.cjk_font_path() is None:
        print("skipped: CJK font not installed (fonts-wqy-microhei)")
        return

    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.kernel.errors import InvalidField
    from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD
    from chalicelib.verification.portrait import find_portrait, match_portrait

    engine = LocalFaceEngine()
    engine.warm_up()
    card = docs.id_front(portrait=_id_photo(engine, "obama_1.jpg"), fmt="JPEG")
    live = (FACES / "obama_2.jpg").read_bytes()
    photos = {
        "4000×3000 JPEG, card filling the frame": _phone_photo(card, 3400, -4.0),
        "4000×3000 JPEG, card at 45 % width (second look)": _phone_photo(card, 1800, 7.0),
        "856×540 JPEG, the card alone": card,
    }
    for label, photo in photos.items():
        match_ms = _median_ms(partial(match_portrait, engine, photo, live, DEFAULT_FACE_THRESHOLD))
        locate_ms = _median_ms(partial(find_portrait, engine, photo))
        result = match_portrait(engine, photo, live, DEFAULT_FACE_THRESHOLD)
        print(
            f"portrait match, {label} ({len(photo) / 1e6:.1f} MB) with a 626×1200 live photo: "
            f"{match_ms:.0f} ms (median of {RUNS}; locate alone {locate_ms:.0f} ms); "
            f"similarity {result.similarity:.1f} ({result.verdict}), "
            f"portrait face {result.portrait_face_px} px"
        )

    blank = _phone_photo(docs.id_front(fmt="JPEG"), 1800, 7.0)

    def refuse() -> None:
        try:
            find_portrait(engine, blank)
        except InvalidField as exc:
            if exc.code != "id_card.no_portrait":
                raise
        else:
            raise AssertionError("a card without a portrait was not refused")

    print(f"refusal, 4000×3000 JPEG of a card without a portrait (both looks): {_median_ms(refuse):.0f} ms")


if __name__ == "__main__":
    run()
