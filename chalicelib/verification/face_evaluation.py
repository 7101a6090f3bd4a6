"""Face-match accuracy on labelled pairs: TAR and FAR at a threshold, and a threshold sweep.

For calibrating the server's threshold on an OEM's own photos (``cheka faces evaluate``). TAR (true
accept rate) is the share of same-person pairs scoring at or above the threshold; FAR (false accept
rate) the share of different-person pairs doing so. Each photo is read once, and with an engine that
has descriptors (the local one) described once, however many pairs it appears in. A photo the engine
refuses (no face, unreadable) makes its pairs non-matches, with the refusal's code on each.

``id_portrait`` evaluates the path the product uses (人证一致): photo A is drawn as the portrait of an ID
card (the function given draws it), the portrait finder crops it back from the card
(``portrait.find_portrait``) and that crop is compared with photo B, as the live capture is with the
card's portrait. A card on which no portrait is found makes its pairs non-matches (``id_card.no_portrait``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.kernel.errors import BadRequest, DomainError
from chalicelib.verification.domain.faces import FaceEmbedding
from chalicelib.verification.portrait import find_portrait
from chalicelib.verification.ports import EmbeddingFaceEngine, FaceEngine

Truth = Literal["same", "different"]


Verdict = Literal["match", "no_match"]


#: Thresholds the sweep reports by default: 0, 5, …, 100.
DEFAULT_SWEEP: tuple[float, ...] = tuple(float(step) for step in range(0, 101, 5))


_SAME = {"same", "1", "true", "yes", "match", "genuine", "positive"}


_DIFFERENT = {"different", "0", "false", "no", "non-match", "nonmatch", "no_match", "impostor", "negative"}


class PairResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    file_a: str
    file_b: str
    truth: Truth
    #: 0–100, or None when the engine refused one of the photos (see ``error``).
    score: float | None
    verdict: Verdict
    error: str | None = None


class SweepPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    threshold: float
    tar: float | None
    far: float | None


class Evaluation(BaseModel):
    """Accuracy at ``threshold``; rates are fractions 0–1 (None when there is no pair of that kind)."""

    model_config = ConfigDict(frozen=True)

    engine: str
    engine_version: str
    threshold: float
    tar: float | None
    far: float | None
    same_pairs: int
    different_pairs: int
    #: Lowest same-person and highest different-person score: any threshold between them separates all.
    min_same_score: float | None
    max_different_score: float | None
    pairs: list[PairResult]
    sweep: list[SweepPoint]


def parse_truth(value: str) -> Truth:
    """``same`` / ``different`` (also 1/0, true/false, yes/no, match/non-match, genuine/impostor)."""
    word = value.strip().lower()
    if word in _SAME:
        return "same"
    if word in _DIFFERENT:
        return "different"
    raise BadRequest(
        "pairs.truth",
        f"无法识别的标注值：{value!r}（应为 same 或 different）",
        f"Unknown truth value {value!r} (expected same or different)",
        field="truth",
    )


def read_pairs(text: str, images: Path) -> list[tuple[Path, Path, Truth]]:
    """Pairs from CSV text with the columns ``file_a,file_b,truth``; file names relative to ``images``."""
    reader = csv.DictReader(io.StringIO(text))
    columns = {name.strip().lower() for name in reader.fieldnames or []}
    missing = {"file_a", "file_b", "truth"} - columns
    if missing:
        raise BadRequest(
            "pairs.columns",
            f"配对文件缺少列：{', '.join(sorted(missing))}",
            f"The pairs file lacks the columns: {', '.join(sorted(missing))}",
        )
    pairs = []
    for row in reader:
        clean = {(key or "").strip().lower(): (value or "").strip() for key, value in row.items()}
        if not any(clean.values()):
            continue
        pairs.append((images / clean["file_a"], images / clean["file_b"], parse_truth(clean["truth"])))
    return pairs


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _rates(scored: Sequence[tuple[Truth, float | None]], threshold: float) -> tuple[float | None, ...]:
    same = [score for truth, score in scored if truth == "same"]
    different = [score for truth, score in scored if truth == "different"]
    accepted_same = sum(1 for s in same if s is not None and s >= threshold)
    accepted_different = sum(1 for s in different if s is not None and s >= threshold)
    return _rate(accepted_same, len(same)), _rate(accepted_different, len(different))


def evaluate_pairs(
    engine: FaceEngine,
    pairs: Sequence[tuple[Path | str, Path | str, Truth | str | bool]],
    threshold: float,
    *,
    sweep: Sequence[float] = DEFAULT_SWEEP,
    read: Callable[[Path], bytes] = Path.read_bytes,
    id_portrait: Callable[[bytes], bytes] | None = None,
) -> Evaluation:
    """Score every pair with ``engine`` and measure TAR/FAR at ``threshold`` and at each ``sweep`` point;
    with ``id_portrait``, photo A is first drawn on an ID card and found back by the portrait finder."""
    photos: dict[tuple[Path, bool], bytes | DomainError] = {}
    embeddings: dict[tuple[Path, bool], FaceEmbedding | DomainError] = {}
    remember = getattr(engine, "remember", None)
    if callable(remember):  # an engine that keeps aligned faces for a second look: keep every photo's
        remember(2 * len({Path(p) for a, b, _ in pairs for p in (a, b)}))

    def photo(path: Path, on_card: bool = False) -> bytes | DomainError:
        if (path, on_card) not in photos:
            if not on_card or id_portrait is None:
                photos[path, on_card] = read(path)
            else:
                try:
                    photos[path, on_card] = find_portrait(engine, id_portrait(read(path))).image
                except DomainError as err:
                    photos[path, on_card] = err
        return photos[path, on_card]

    def embedding(path: Path, on_card: bool, engine: EmbeddingFaceEngine) -> FaceEmbedding | DomainError:
        if (path, on_card) not in embeddings:
            image = photo(path, on_card)
            try:
                embeddings[path, on_card] = image if isinstance(image, DomainError) else engine.embed(image)
            except DomainError as err:
                embeddings[path, on_card] = err
        return embeddings[path, on_card]

    def score(a: Path, b: Path) -> tuple[float | None, str | None]:
        on_card = id_portrait is not None
        if isinstance(engine, EmbeddingFaceEngine):
            first, second = embedding(a, on_card, engine), embedding(b, False, engine)
            for result in (first, second):
                if isinstance(result, DomainError):
                    return None, result.code
            assert isinstance(first, FaceEmbedding)
            assert isinstance(second, FaceEmbedding)
            return round(engine.similarity(first, second), 2), None
        first_photo, second_photo = photo(a, on_card), photo(b)
        for image in (first_photo, second_photo):
            if isinstance(image, DomainError):
                return None, image.code
        assert isinstance(first_photo, bytes)
        assert isinstance(second_photo, bytes)
        try:
            return engine.compare(first_photo, second_photo).similarity, None
        except DomainError as err:
            return None, err.code

    results = []
    for raw_a, raw_b, raw_truth in pairs:
        a, b = Path(raw_a), Path(raw_b)
        if isinstance(raw_truth, bool):
            truth: Truth = "same" if raw_truth else "different"
        else:
            truth = parse_truth(raw_truth)
        value, error = score(a, b)
        results.append(
            PairResult(
                file_a=a.name,
                file_b=b.name,
                truth=truth,
                score=value,
                verdict="match" if value is not None and value >= threshold else "no_match",
                error=error,
            )
        )

    scored = [(r.truth, r.score) for r in results]
    tar, far = _rates(scored, threshold)
    same_scores = [r.score for r in results if r.truth == "same" and r.score is not None]
    different_scores = [r.score for r in results if r.truth == "different" and r.score is not None]
    points = []
    for point in sweep:
        point_tar, point_far = _rates(scored, point)
        points.append(SweepPoint(threshold=point, tar=point_tar, far=point_far))
    return Evaluation(
        engine=engine.name,
        engine_version=engine.version,
        threshold=threshold,
        tar=tar,
        far=far,
        same_pairs=sum(1 for r in results if r.truth == "same"),
        different_pairs=sum(1 for r in results if r.truth == "different"),
        min_same_score=min(same_scores, default=None),
        max_different_score=max(different_scores, default=None),
        pairs=results,
        sweep=points,
    )
