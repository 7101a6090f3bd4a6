"""The engines function: its handler's time per OCR and per face comparison, and the size of its image.

Times go through the handler as Lambda calls it (``DirectEngineInvoker``: the request encoded to JSON with
base64 images, ``chalicelib.engines.handler.dispatch``, the reply decoded), warm (models loaded), beside
the same engine called in-process: the difference is what the payload costs, not the network or Lambda's
own overhead, which this machine cannot measure. OCR reads a synthetic ID card (856×540 PNG, and the same
card as a 3000-px JPEG); the comparison is two real photos of one person (``../shared/faces``).

The image size: ``requirements-engines.txt`` and ``engines/requirements-no-deps.txt`` installed with pip
into a temporary directory (``--target``, as the Dockerfile installs them: measured), plus the project's
``chalicelib`` (measured), plus the base image ``public.ecr.aws/lambda/python:3.11`` (not measured here:
it needs Docker and the registry; ``docker image inspect`` after a pull gives it). ``--skip-size`` skips
the install (it downloads a few hundred MB the first time).

Run: ``python bench/bench_engines.py [--skip-size]``. Prints a line and exits 0 when the local engines or the
shared photos are absent.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from common import RUNS, median_ms

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROJECT = Path(__file__).resolve().parent.parent


def _mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def timings() -> None:
    from tests.face_photos import FACES, local_face_engine_missing

    if (missing := local_face_engine_missing("obama_1.jpg")) or importlib.util.find_spec(
        "rapidocr_onnxruntime"
    ) is None:
        print(f"skipped timings: {missing or 'rapidocr-onnxruntime not installed'}")
        return
    from chalicelib.adapters.engines.invoker import DirectEngineInvoker
    from chalicelib.adapters.engines.remote import EngineClient, RemoteFaceEngine, RemoteOcrEngine
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.adapters.ocr.rapidocr import RapidOcrEngine
    from tests import synthetic_documents as docs

    client = EngineClient(DirectEngineInvoker())
    remote_ocr, remote_faces = RemoteOcrEngine(client), RemoteFaceEngine(client)
    local_ocr, local_faces = RapidOcrEngine(), LocalFaceEngine()
    if docs.cjk_font_path() is None:
        print("skipped OCR: CJK font not installed (fonts-wqy-microhei)")
    else:
        portrait = FACES / "obama_1.jpg"
        cards = {
            "856x540 PNG": docs.id_front(portrait=portrait),
            "2996x1890 JPEG": docs.id_front(portrait=portrait, scale=3.5, fmt="JPEG"),
        }
        for label, card in cards.items():
            through = median_ms(partial(remote_ocr.read, card))
            direct = median_ms(partial(local_ocr.read, card))
            print(
                f"engines handler, OCR of an ID card {label} ({len(card) // 1024} KB): median "
                f"{through:.0f} ms through the handler, {direct:.0f} ms in-process ({RUNS} runs, warm)"
            )
    a, b = (FACES / "obama_1.jpg").read_bytes(), (FACES / "obama_video_1080p.jpg").read_bytes()
    through = median_ms(partial(remote_faces.compare, a, b))
    direct = median_ms(partial(local_faces.compare, a, b))
    print(
        f"engines handler, face comparison of two photos ({(len(a) + len(b)) // 1024} KB): median "
        f"{through:.0f} ms through the handler, {direct:.0f} ms in-process ({RUNS} runs, warm)"
    )


def image_size() -> None:
    with tempfile.TemporaryDirectory() as work:
        target = Path(work) / "site-packages"
        started = time.perf_counter()
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"]
        subprocess.run([*pip, str(target), "-r", str(PROJECT / "requirements-engines.txt")], check=True)
        no_deps = PROJECT / "engines" / "requirements-no-deps.txt"
        subprocess.run([*pip, str(target), "--no-deps", "-r", str(no_deps)], check=True)
        seconds = time.perf_counter() - started
        packages = _mb(target)
        biggest = sorted(((_mb(p), p.name) for p in target.iterdir() if p.is_dir()), reverse=True)[:6]
    code = _mb(PROJECT / "chalicelib") - _mb(PROJECT / "chalicelib" / "web")
    print(f"engines image: packages {packages:.0f} MB (measured: pip install --target, {seconds:.0f} s)")
    print("  largest: " + ", ".join(f"{name} {size:.0f} MB" for size, name in biggest))
    print(f"  project code (chalicelib without web/): {code:.1f} MB (measured)")
    print(
        f"  layers added to the base image: {packages + code:.0f} MB; the base image "
        "public.ecr.aws/lambda/python:3.11 is not measured here (docker image inspect after a pull)"
    )


def run() -> None:
    timings()
    if "--skip-size" in sys.argv:
        print("image size skipped (--skip-size)")
    else:
        image_size()


if __name__ == "__main__":
    run()
