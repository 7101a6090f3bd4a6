"""Local face engine: milliseconds per compare (12-megapixel and small photos) and accuracy on pairs.csv.

- compare, 12 MP: two phone-sized photos (4000×3000 JPEG, made in memory by upscaling shared photos of
  the same person), median of several runs after a warm-up; each compare decodes, detects and
  describes both photos.
- compare, small: ``obama_small.jpg`` (320×240) with ``obama_video_240p.jpg`` (427×240).
- accuracy: TAR / FAR at the default threshold over ``../shared/faces/pairs.csv`` (171 pairs), and the
  time of the whole evaluation (each photo described once).

Run: ``python bench/bench_faces.py``. Prints a line and exits 0 when the shared photos or dlib are absent.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from common import RUNS, median_ms

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _phone_photo(photo: Path) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(photo) as source:
        im = ImageOps.fit(source.convert("RGB"), (4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=92)
    return out.getvalue()


def run() -> None:
    from tests.face_photos import FACES, local_face_engine_missing

    if missing := local_face_engine_missing("pairs.csv"):
        print(f"skipped: {missing}")
        return

    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD
    from chalicelib.verification.face_evaluation import evaluate_pairs, read_pairs

    engine = LocalFaceEngine()
    start = time.perf_counter()
    engine.warm_up()
    print(f"model load (once per process): {(time.perf_counter() - start) * 1000:.0f} ms")

    big_a, big_b = _phone_photo(FACES / "obama_video_1080p.jpg"), _phone_photo(FACES / "obama_4.jpg")
    small_a, small_b = (FACES / "obama_small.jpg").read_bytes(), (FACES / "obama_video_240p.jpg").read_bytes()
    big_ms = median_ms(lambda: engine.compare(big_a, big_b))
    small_ms = median_ms(lambda: engine.compare(small_a, small_b))
    detect_ms = median_ms(lambda: engine.detect(big_a))
    print(
        f"compare, two 4000×3000 JPEGs ({len(big_a) / 1e6:.1f} + {len(big_b) / 1e6:.1f} MB): "
        f"{big_ms:.0f} ms (median of {RUNS}); similarity {engine.compare(big_a, big_b).similarity:.1f}"
    )
    print(f"detect only, one 4000×3000 JPEG: {detect_ms:.0f} ms")
    print(
        f"compare, 320×240 with 427×240: {small_ms:.0f} ms (median of {RUNS}); "
        f"similarity {engine.compare(small_a, small_b).similarity:.1f}"
    )

    pairs = read_pairs((FACES / "pairs.csv").read_text(encoding="utf-8"), FACES)
    start = time.perf_counter()
    result = evaluate_pairs(engine, pairs, DEFAULT_FACE_THRESHOLD)
    elapsed = time.perf_counter() - start
    print(
        f"pairs.csv: {result.same_pairs} same + {result.different_pairs} different pairs in {elapsed:.1f} s; "
        f"at threshold {result.threshold:g}: TAR {result.tar:.3f}, FAR {result.far:.3f}; "
        f"lowest same {result.min_same_score:.1f}, highest different {result.max_different_score:.1f}"
    )


if __name__ == "__main__":
    run()
