"""``cheka faces``: compare two photos, or measure accuracy on labelled pairs (calibration)."""

from __future__ import annotations

from pathlib import Path

import click

from chalicelib.cli.output import fail, print_json
from chalicelib.kernel.errors import DomainError
from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD
from chalicelib.verification.ports import FaceEngine

_ENGINES = ("local", "rekognition")


def _engine(kind: str | None) -> FaceEngine:
    from chalicelib.core import deps

    return deps.face_engine() if kind is None else deps.make_face_engine(kind)


def _threshold(given: float | None, engine: FaceEngine) -> float:
    from chalicelib.core.settings import get_settings

    if given is not None:
        return given
    return get_settings().face_threshold or engine.recommended_threshold


_engine_option = click.option(
    "--engine", "kind", type=click.Choice(_ENGINES), default=None, help="Default: the stage's (settings)."
)


_threshold_option = click.option(
    "--threshold",
    type=click.FloatRange(0, 100),
    default=None,
    help=f"Similarity 0–100 to accept (default: the engine's; local {DEFAULT_FACE_THRESHOLD:g}).",
)


@click.group()
def faces() -> None:
    """Face matching (人脸比对): compare photos, evaluate accuracy on labelled pairs."""


@faces.command()
@click.argument("a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_threshold_option
@_engine_option
def compare(a: Path, b: Path, threshold: float | None, kind: str | None) -> None:
    """Similarity of the largest face in A and in B, and the verdict at the threshold."""
    engine = _engine(kind)
    limit = _threshold(threshold, engine)
    try:
        result = engine.compare(a.read_bytes(), b.read_bytes())
    except DomainError as err:
        fail(err)
    print_json(
        {
            "similarity": result.similarity,
            "threshold": limit,
            "verdict": "match" if result.similarity >= limit else "no_match",
            "engine": result.engine,
            "version": result.engine_version,
        }
    )


@faces.command()
@click.argument(
    "pairs_file", metavar="PAIRS.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--images",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder the file names are relative to (default: the CSV's folder).",
)
@_threshold_option
@_engine_option
@click.option(
    "--id-portrait",
    is_flag=True,
    help="The product's path: FILE_A drawn as the portrait of a synthetic ID card, found back by the "
    "portrait finder, compared with FILE_B (the live capture).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (rates as fractions 0–1).")
def evaluate(
    pairs_file: Path,
    images: Path | None,
    threshold: float | None,
    kind: str,
    id_portrait: bool,
    as_json: bool,
) -> None:
    """TAR and FAR at the threshold, and a threshold sweep, over PAIRS.csv (file_a,file_b,truth)."""
    from chalicelib.verification.face_evaluation import evaluate_pairs, read_pairs

    engine = _engine(kind)
    limit = _threshold(threshold, engine)
    try:
        pairs = read_pairs(pairs_file.read_text(encoding="utf-8-sig"), images or pairs_file.parent)
        missing = sorted({str(p) for a, b, _ in pairs for p in (a, b) if not p.is_file()})
        if missing:
            raise click.UsageError(f"{len(missing)} image(s) not found, e.g. {missing[0]}")
        card = (lambda photo: on_id_card(engine, photo)) if id_portrait else None
        result = evaluate_pairs(engine, pairs, limit, id_portrait=card)
    except DomainError as err:
        fail(err)
    if as_json:
        print_json(result, indent=None)
        return
    click.echo(f"engine     {result.engine} {result.engine_version}")
    if id_portrait:
        click.echo("path       FILE_A on a synthetic ID card → portrait finder → compared with FILE_B")
    click.echo(f"pairs      {result.same_pairs} same, {result.different_pairs} different")
    click.echo(f"threshold  {result.threshold:g}")
    click.echo(f"TAR        {_percent(result.tar)}")
    click.echo(f"FAR        {_percent(result.far)}")
    click.echo(
        f"scores     lowest same {_score(result.min_same_score)}, "
        f"highest different {_score(result.max_different_score)}"
    )
    refused = [p for p in result.pairs if p.error]
    if refused:
        click.echo(f"refused    {len(refused)} pair(s), e.g. {refused[0].file_a}/{refused[0].file_b}")
    click.echo("\nthreshold     TAR      FAR")
    for point in result.sweep:
        click.echo(f"{point.threshold:9g}  {_percent(point.tar):>7}  {_percent(point.far):>7}")


def id_style_portrait(engine: FaceEngine, photo: bytes) -> bytes:
    """An ID-card portrait cut from ``photo`` as the photo standard frames one (GA 461: 4:5, the head
    centred, the face about half the width); the photo itself when the engine finds no face in it."""
    import io

    from PIL import Image, ImageOps

    faces = engine.detect(photo)
    if not faces:
        return photo
    box = faces[0].box
    with Image.open(io.BytesIO(photo)) as opened:
        source = ImageOps.exif_transpose(opened).convert("RGB")
    width = 2 * box.width
    height = width * 5 // 4
    left = box.left + box.width // 2 - width // 2
    top = box.top + box.height // 2 - height * 45 // 100
    canvas = Image.new("RGB", (width, height), (245, 248, 250))
    inner = (max(0, left), max(0, top), min(source.width, left + width), min(source.height, top + height))
    canvas.paste(source.crop(inner), (inner[0] - left, inner[1] - top))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


def on_id_card(engine: FaceEngine, photo: bytes) -> bytes:
    """A synthetic ID card front (居民身份证人像面, JPEG) with an ID-style portrait cut from ``photo``."""
    from chalicelib.local.documents import id_front

    return id_front(portrait=id_style_portrait(engine, photo), fmt="JPEG")


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:.2%}"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
