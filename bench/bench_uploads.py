"""Upload validation of a 12-megapixel phone photo (median ms of ``validate_image``).

The photo (4000×3000) is generated in memory: sensor-like noise over colour gradients, so the JPEG
weighs what a phone's does instead of compressing to nothing. Validation decodes it fully, applies
the EXIF orientation (the photo is tagged "rotate 90°", as portrait phone photos are), converts to RGB
and re-encodes at quality 90. No AWS needed.

Run: ``python bench/bench_uploads.py`` (or import and call ``run()``).
"""

from __future__ import annotations

import io
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from chalicelib.verification.domain.documents import DOCUMENT_LIMITS, validate_image

WIDTH, HEIGHT = 4000, 3000
RUNS = 7


def phone_photo(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A 12-megapixel JPEG (quality 92, EXIF orientation 6) that compresses like a real photo."""
    noise = Image.effect_noise((width, height), 24)
    across = Image.linear_gradient("L").rotate(90).resize((width, height))
    down = Image.linear_gradient("L").resize((width, height))
    rgb = Image.merge(
        "RGB",
        [Image.blend(across, noise, 0.35), Image.blend(down, noise, 0.35), Image.blend(across, down, 0.5)],
    )
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def run() -> dict[str, float]:
    data = phone_photo()
    validate_image(data, DOCUMENT_LIMITS)  # warm-up: imports, allocator
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        clean = validate_image(data, DOCUMENT_LIMITS)
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "input_mb": len(data) / 1e6,
        "output_mb": len(clean.jpeg) / 1e6,
        "median_ms": statistics.median(timings),
        "min_ms": min(timings),
    }


def main() -> None:
    figures = run()
    print(
        f"validate_image, {WIDTH}×{HEIGHT} JPEG ({figures['input_mb']:.1f} MB in, "
        f"{figures['output_mb']:.1f} MB out): median {figures['median_ms']:.0f} ms "
        f"(min {figures['min_ms']:.0f} ms, {RUNS} runs)"
    )


if __name__ == "__main__":
    main()
