"""Local face engine: milliseconds per compare, the cost of the second look, and TAR at FAR 0.1 %.

- compare, 12 MP: two phone-sized photos (4000×3000 JPEG, made in memory by upscaling shared photos of
  the same person), median of several runs after a warm-up; each compare decodes, detects and
  describes both photos.
- compare, small: ``obama_small.jpg`` (320×240) with ``obama_video_240p.jpg`` (427×240).
- cost per pair: every pair of ``../shared/faces/pairs.csv`` compared from the encoded photos (decode,
  detect, describe both, and the jittered second look when the first score is near the threshold),
  mean and worst, with the second look on and off.
- accuracy on pairs.csv (171 pairs) at the default threshold, both paths.
- calibration set: every face of the shared photos (singles, and the faces of the group photos named
  by their nearest single-photo person; group faces that are near-copies of a single photo are left
  out), each in five variants (as is, mirrored, half size, JPEG quality 30, darkened); same-person and
  different-person pairs of faces from different photos. Two paths: direct (photo A with photo B) and
  id-portrait (photo A cut as an ID-card portrait, drawn on a synthetic ID card, found back by the
  portrait finder, then compared with photo B: what the product does). For each: the threshold that
  gives FAR ≤ 0.1 %, the TAR there, and TAR / FAR at the default threshold with and without the second
  look. The pairs are many but the people few (7): see bench/README.md for what this can prove.

Run: ``python bench/bench_faces.py``. Prints a line and exits 0 when the shared photos or dlib are absent.
"""

from __future__ import annotations

import csv
import io
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import RUNS, median_ms

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Group faces closer than this (descriptor distance) to a single photo's face are copies of it.
NEAR_COPY = 0.15
#: A group face is the nearest single-photo person when closer than this, else a person of its own.
SAME_PERSON = 0.5
TARGET_FAR = 0.001


def _jpeg(image: object, quality: int = 92) -> bytes:
    from PIL import Image

    assert isinstance(image, Image.Image)
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _phone_photo(photo: Path) -> bytes:
    from PIL import Image, ImageOps

    with Image.open(photo) as source:
        im = ImageOps.fit(source.convert("RGB"), (4000, 3000), Image.Resampling.BICUBIC)
    return _jpeg(im, 92)


@dataclass(frozen=True)
class Face:
    photo: str
    person: str
    variant: str
    image: bytes


def _faces(engine: object, folder: Path) -> list[Face]:
    """Every face of the shared photos in five variants (see the module docstring)."""
    from PIL import Image, ImageEnhance, ImageOps

    from chalicelib.adapters.faces.local import LocalFaceEngine

    assert isinstance(engine, LocalFaceEngine)
    singles: list[tuple[str, str, Image.Image]] = []
    groups: list[tuple[str, Image.Image]] = []
    for row in csv.DictReader((folder / "manifest.csv").open(encoding="utf-8")):
        with Image.open(folder / row["file"]) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
        if row["person"] != "group":
            singles.append((row["file"], row["person"], image))
            continue
        for n, face in enumerate(engine.detect(_jpeg(image))):
            box, margin = face.box, face.box.width * 4 // 5
            crop = image.crop(
                (
                    max(0, box.left - margin),
                    max(0, box.top - margin),
                    min(image.width, box.left + box.width + margin),
                    min(image.height, box.top + box.height + margin),
                )
            )
            groups.append((f"{row['file']}#{n}", crop))
    known = [(person, np.asarray(engine.embed(_jpeg(image)).vector)) for _, person, image in singles]
    base = list(singles)
    for name, crop in groups:
        vector = np.asarray(engine.embed(_jpeg(crop)).vector)
        distance, person = min((float(np.linalg.norm(vector - v)), p) for p, v in known)
        if distance < NEAR_COPY:
            continue
        base.append((name, person if distance < SAME_PERSON else name, crop))
    faces = []
    for name, person, image in base:
        for variant, copy in (
            ("as is", image),
            ("mirrored", ImageOps.mirror(image)),
            ("half size", image.resize((max(1, image.width // 2), max(1, image.height // 2)))),
            ("jpeg q30", Image.open(io.BytesIO(_jpeg(image, 30)))),
            ("dark", ImageEnhance.Brightness(image).enhance(0.6)),
        ):
            faces.append(Face(name, person, variant, _jpeg(copy)))
    return faces


def _threshold_at(impostors: list[float], far: float) -> float:
    """The lowest threshold (0.01 steps) at which at most ``far`` of the impostor scores are accepted."""
    ranked = sorted(impostors, reverse=True)
    allowed = int(far * len(ranked))
    return round(ranked[allowed] + 0.01, 2) if allowed < len(ranked) else 0.0


def _report(label: str, scored: list[tuple[bool, float, float]], threshold: float) -> None:
    genuine = [(fast, final) for same, fast, final in scored if same]
    impostor = [(fast, final) for same, fast, final in scored if not same]
    at = _threshold_at([final for _, final in impostor], TARGET_FAR)
    tar_at = sum(final >= at for _, final in genuine) / len(genuine)
    print(
        f"{label}: {len(genuine)} same + {len(impostor)} different pairs; "
        f"FAR ≤ 0.1 % from threshold {at:.2f}, TAR there {tar_at:.2%}; "
        f"highest different {max(f for _, f in impostor):.2f}, lowest same {min(f for _, f in genuine):.2f}"
    )
    for name, index in (("one look", 0), ("second look", 1)):
        tar = sum(pair[index] >= threshold for pair in genuine) / len(genuine)
        far = sum(pair[index] >= threshold for pair in impostor) / len(impostor)
        print(f"  at {threshold:g}, {name}: TAR {tar:.2%}, FAR {far:.3%}")


def _calibration(folder: Path) -> None:
    from chalicelib.adapters.faces.local import LocalFaceEngine, distance_to_similarity
    from chalicelib.cli.faces import on_id_card
    from chalicelib.kernel.errors import DomainError
    from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD, FaceEmbedding
    from chalicelib.verification.portrait import find_portrait

    engine = LocalFaceEngine()
    start = time.perf_counter()
    faces = _faces(engine, folder)
    engine.remember(4 * len(faces))
    direct = {face: engine.embed(face.image) for face in faces}
    cards: dict[Face, FaceEmbedding] = {}
    unread = 0
    for face in faces:
        try:
            cards[face] = engine.embed(find_portrait(engine, on_id_card(engine, face.image)).image)
        except DomainError:  # a card whose portrait is not found is counted
            unread += 1
    people = len({face.person for face in faces})
    print(
        f"calibration set: {len(faces) // 5} faces of {people} people × 5 variants; "
        f"{len(cards)} ID cards read back ({unread} portraits not found); "
        f"described in {time.perf_counter() - start:.0f} s"
    )

    def scores(a: FaceEmbedding, b: FaceEmbedding) -> tuple[float, float]:
        fast = distance_to_similarity(float(np.linalg.norm(np.asarray(a.vector) - np.asarray(b.vector))))
        return fast, engine.similarity(a, b)

    before = engine.second_looks
    start = time.perf_counter()
    direct_pairs = [
        (a.person == b.person, *scores(direct[a], direct[b]))
        for a, b in itertools.combinations(faces, 2)
        if a.photo != b.photo
    ]
    card_pairs = [
        (a.person == b.person, *scores(cards[a], direct[b]))
        for a in cards
        for b in faces
        if a.photo != b.photo
    ]
    looks = engine.second_looks - before
    print(
        f"scored {len(direct_pairs) + len(card_pairs)} pairs in {time.perf_counter() - start:.0f} s "
        f"({looks} second looks)"
    )
    _report("direct", direct_pairs, DEFAULT_FACE_THRESHOLD)
    _report("id-portrait", card_pairs, DEFAULT_FACE_THRESHOLD)


def _cost_per_pair(folder: Path) -> None:
    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.verification.face_evaluation import read_pairs

    pairs = read_pairs((folder / "pairs.csv").read_text(encoding="utf-8"), folder)
    photos = {path: path.read_bytes() for a, b, _ in pairs for path in (a, b)}
    engines = {"on": LocalFaceEngine(), "off": LocalFaceEngine(jitters=0)}
    wall: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    for n, (a, b, _) in enumerate(pairs):
        # alternate which engine goes first, so a busy moment does not fall on one of them only
        for name in ("on", "off") if n % 2 == 0 else ("off", "on"):
            start, start_cpu = time.perf_counter(), time.process_time()
            engines[name].compare(photos[a], photos[b])
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    for name, engine in engines.items():
        print(
            f"compare per pair, pairs.csv ({len(pairs)} pairs, second look {name}): "
            f"mean {statistics.mean(wall[name]) * 1000:.0f} ms, worst {max(wall[name]) * 1000:.0f} ms; "
            f"CPU time mean {statistics.mean(cpu[name]) * 1000:.0f} ms, "
            f"worst {max(cpu[name]) * 1000:.0f} ms; "
            f"second looks {engine.second_looks}"
        )


def run() -> None:
    from tests.face_photos import FACES, local_face_engine_missing

    if missing := local_face_engine_missing("pairs.csv"):
        print(f"skipped: {missing}")
        return

    from chalicelib.adapters.faces.local import LocalFaceEngine
    from chalicelib.cli.faces import on_id_card
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
    _cost_per_pair(FACES)

    pairs = read_pairs((FACES / "pairs.csv").read_text(encoding="utf-8"), FACES)
    for path, card in (("direct", None), ("id-portrait", lambda photo: on_id_card(engine, photo))):
        start = time.perf_counter()
        result = evaluate_pairs(LocalFaceEngine(), pairs, DEFAULT_FACE_THRESHOLD, id_portrait=card)
        elapsed = time.perf_counter() - start
        print(
            f"pairs.csv, {path}: {result.same_pairs} same + {result.different_pairs} different pairs in "
            f"{elapsed:.1f} s; at threshold {result.threshold:g}: "
            f"TAR {result.tar:.3f}, FAR {result.far:.3f}; "
            f"lowest same {result.min_same_score:.1f}, highest different {result.max_different_score:.1f}"
        )
    _calibration(FACES)


if __name__ == "__main__":
    run()
