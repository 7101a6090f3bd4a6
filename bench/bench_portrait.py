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

import io
import sys
from functools import partial
from pathlib import Path

from common import RUNS, median_ms

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _jpeg(im: object, quality: int = 90) -> bytes:
    from PIL import Image

    assert isinstance(im, Image.Image)
    out = io.BytesIO()
    im.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


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
    from tests.face_photos import FACES, local_face_engine_missing

    if missing := local_face_engine_missing("obama_1.jpg"):
        print(f"skipped: {missing}")
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
    card = docs.id_front(portrait=docs.id_photo(engine, FACES / "obama_1.jpg"), fmt="JPEG")
    live = (FACES / "obama_2.jpg").read_bytes()
    photos = {
        "4000×3000 JPEG, card filling the frame": _phone_photo(card, 3400, -4.0),
        "4000×3000 JPEG, card at 45 % width (second look)": _phone_photo(card, 1800, 7.0),
        "856×540 JPEG, the card alone": card,
    }
    for label, photo in photos.items():
        match_ms = median_ms(partial(match_portrait, engine, photo, live, DEFAULT_FACE_THRESHOLD))
        locate_ms = median_ms(partial(find_portrait, engine, photo))
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

    print(f"refusal, 4000×3000 JPEG of a card without a portrait (both looks): {median_ms(refuse):.0f} ms")


if __name__ == "__main__":
    run()
