"""Local OCR engine (rapidocr-onnxruntime): milliseconds per synthetic ID card front, read and parsed.

Cards are drawn in memory by ``tests/synthetic_documents.py`` (856×540 PNG with a portrait, and the same
card as a 3000-pixel-wide JPEG that the engine downscales first); median of several runs after a warm-up
that also pays the one-time model load (reported separately).

Run: ``python bench/bench_ocr.py``. Prints a line and exits 0 when rapidocr or the CJK font is absent.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from functools import partial
from pathlib import Path

from common import RUNS, median_ms

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run() -> None:
    if importlib.util.find_spec("rapidocr_onnxruntime") is None:
        print("skipped: rapidocr-onnxruntime not installed")
        return
    from tests import synthetic_documents as docs
    from tests.face_photos import FACES

    if docs.cjk_font_path() is None:
        print("skipped: CJK font not installed (fonts-wqy-microhei)")
        return
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine
    from chalicelib.verification.domain.ocr import parse_id_front

    portrait = FACES / "obama_1.jpg"
    small = docs.id_front(portrait=portrait if portrait.is_file() else None)
    large = docs.id_front(portrait=portrait if portrait.is_file() else None, scale=3.5, fmt="JPEG")
    engine = RapidOcrEngine()

    def read_card(image: bytes) -> object:
        return parse_id_front(engine.read(image))

    start = time.perf_counter()
    first = parse_id_front(engine.read(small))
    cold = (time.perf_counter() - start) * 1000
    correct = first.id_number == docs.PERSON_ID_NUMBER and first.name == docs.PERSON_NAME
    print(f"ocr id front, first read (model load + read): {cold:.0f} ms; name and number correct: {correct}")
    for label, image in (("856x540 PNG", small), ("2996x1890 JPEG", large)):
        ms = median_ms(partial(read_card, image), warm_up=False)
        print(f"ocr id front {label}: median {ms:.0f} ms per card ({RUNS} runs)")


if __name__ == "__main__":
    run()
