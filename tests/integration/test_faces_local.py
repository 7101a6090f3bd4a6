"""The local face engine (dlib) on real photos from ``../shared/faces``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

from chalicelib.kernel.errors import InvalidField
from chalicelib.verification.domain.faces import DEFAULT_FACE_THRESHOLD, check_selfie, photo_size
from tests.face_photos import FACES, local_face_engine_missing

if missing := local_face_engine_missing("pairs.csv"):
    pytest.skip(missing, allow_module_level=True)

from chalicelib.adapters.faces.local import LocalFaceEngine


@pytest.fixture(scope="module")
def engine() -> LocalFaceEngine:
    engine = LocalFaceEngine()
    engine.warm_up()
    return engine


def read(name: str) -> bytes:
    return (FACES / name).read_bytes()


def encoded(im: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def selfie_refusal(engine: LocalFaceEngine, image: bytes) -> str:
    with pytest.raises(InvalidField) as caught:
        check_selfie(engine.detect(image), photo_size(image))
    return caught.value.code


def test_same_person_passes_and_different_person_fails(engine: LocalFaceEngine) -> None:
    same = engine.compare(read("obama_1.jpg"), read("obama_2.jpg"))
    different = engine.compare(read("obama_1.jpg"), read("biden_1.jpg"))
    assert same.similarity >= DEFAULT_FACE_THRESHOLD > different.similarity
    assert (same.engine, same.engine_version) == ("dlib-resnet", engine.version)
    assert engine.version[0].isdigit()


@pytest.mark.parametrize("name", ["obama_small.jpg", "obama_video_240p.jpg"])
def test_small_photos_work(engine: LocalFaceEngine, name: str) -> None:
    # Given a 320×240 photo or a 240p video frame: one face is found, and it matches Obama's portrait
    faces = engine.detect(read(name))
    assert len(faces) == 1
    assert engine.compare(read("obama_1.jpg"), read(name)).similarity >= DEFAULT_FACE_THRESHOLD


def test_small_photo_is_an_acceptable_selfie(engine: LocalFaceEngine) -> None:
    image = read("obama_small.jpg")
    face = check_selfie(engine.detect(image), photo_size(image))
    assert face.size_px >= 100


@pytest.mark.parametrize(
    "name", ["group_kit_with_rose.jpg", "group_obama_and_biden.jpg", "group_two_people.jpg"]
)
def test_group_photos_are_refused_as_selfies(engine: LocalFaceEngine, name: str) -> None:
    assert selfie_refusal(engine, read(name)) == "face.multiple"


def test_a_blank_photo_has_no_face(engine: LocalFaceEngine) -> None:
    blank = encoded(Image.new("RGB", (640, 480), "white"))
    assert engine.detect(blank) == []
    assert selfie_refusal(engine, blank) == "face.none"
    # and comparing with it says which photo lacks a face
    with pytest.raises(InvalidField) as caught:
        engine.compare(read("obama_1.jpg"), blank)
    assert (caught.value.code, caught.value.details) == ("face.none", {"image": "b"})


def test_a_turned_head_is_not_frontal(engine: LocalFaceEngine) -> None:
    # kit_harington_2 looks about 35° to the side
    assert selfie_refusal(engine, read("kit_harington_2.jpg")) == "face.not_frontal"


def test_pose_follows_mirroring_and_rotation(engine: LocalFaceEngine) -> None:
    original = Image.open(FACES / "alex_lacamoire_1.png").convert("RGB")
    (face,) = engine.detect(encoded(original, "PNG"))
    (mirrored,) = engine.detect(encoded(ImageOps.mirror(original), "PNG"))
    (tilted,) = engine.detect(encoded(original.rotate(15, expand=True, fillcolor="white"), "PNG"))
    assert face.yaw > 15
    assert mirrored.yaw < -15
    assert abs(face.yaw + mirrored.yaw) < 5
    assert tilted.roll - face.roll == pytest.approx(15, abs=4)


def test_exif_orientation_is_applied(engine: LocalFaceEngine) -> None:
    # Given the portrait stored sideways with an EXIF tag saying "rotate 90° clockwise to display"
    upright = Image.open(FACES / "obama_1.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = encoded(upright.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())
    # Then the face is found where it is in the upright photo
    (face,) = engine.detect(sideways)
    (expected,) = engine.detect(encoded(upright))
    assert photo_size(sideways) == upright.size
    assert abs(face.box.left - expected.box.left) <= 8
    assert abs(face.box.top - expected.box.top) <= 8


def test_a_12_megapixel_photo_is_compared(engine: LocalFaceEngine) -> None:
    big = encoded(ImageOps.fit(Image.open(FACES / "obama_1.jpg").convert("RGB"), (3000, 4000)), quality=90)
    (face,) = engine.detect(big)
    assert face.size_px > 500  # in pixels of the original photo, not of the analysed copy
    assert engine.compare(big, read("obama_2.jpg")).similarity >= DEFAULT_FACE_THRESHOLD


def test_unreadable_bytes_are_refused(engine: LocalFaceEngine) -> None:
    with pytest.raises(InvalidField) as caught:
        engine.compare(b"GIF89a? not really", read("obama_1.jpg"))
    assert (caught.value.code, caught.value.details) == ("face.image_unreadable", {"image": "a"})


def test_shared_pairs_are_all_separated_at_the_default_threshold(engine: LocalFaceEngine) -> None:
    from chalicelib.verification.face_evaluation import evaluate_pairs, read_pairs

    pairs = read_pairs((FACES / "pairs.csv").read_text(), FACES)
    result = evaluate_pairs(engine, pairs, DEFAULT_FACE_THRESHOLD)
    assert (result.same_pairs, result.different_pairs) == (36, 135)
    assert (result.tar, result.far) == (1.0, 0.0)
    assert all(p.error is None for p in result.pairs)
    # the sweep shows the trade-off: everything accepted at 0, nothing at 100
    assert (result.sweep[0].tar, result.sweep[0].far) == (1.0, 1.0)
    assert (result.sweep[-1].tar, result.sweep[-1].far) == (0.0, 0.0)


def cli(*args: str) -> tuple[int, str]:
    from chalicelib.cli.faces import faces

    group = click.Group()
    group.add_command(faces)
    result = CliRunner().invoke(group, ["faces", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_evaluate_json(tmp_path: Path) -> None:
    # Given a pairs file in the shared columns, naming photos in another folder
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "file_a,file_b,truth\n"
        "obama_1.jpg,obama_small.jpg,same\n"
        "alex_lacamoire_1.png,alex_lacamoire_2.jpg,same\n"
        "obama_1.jpg,biden_1.jpg,different\n"
    )
    code, output = cli("evaluate", str(pairs), "--images", str(FACES), "--json")
    assert code == 0
    doc = json.loads(output)
    assert {"threshold", "tar", "far", "pairs", "sweep"} <= doc.keys()
    assert (doc["threshold"], doc["tar"], doc["far"]) == (DEFAULT_FACE_THRESHOLD, 1.0, 0.0)
    assert [(p["file_a"], p["verdict"]) for p in doc["pairs"]] == [
        ("obama_1.jpg", "match"),
        ("alex_lacamoire_1.png", "match"),
        ("obama_1.jpg", "no_match"),
    ]
    assert all(0 <= p["score"] <= 100 for p in doc["pairs"])


def test_cli_evaluate_id_portrait_scores_the_card_portrait_found_back_against_the_live_photo(
    tmp_path: Path,
) -> None:
    # Given pairs whose photo A is to be the portrait of an ID card
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("file_a,file_b,truth\nobama_1.jpg,obama_2.jpg,same\nobama_1.jpg,biden_1.jpg,different\n")
    # When evaluated directly and through the card
    direct = json.loads(cli("evaluate", str(pairs), "--images", str(FACES), "--json")[1])
    code, output = cli("evaluate", str(pairs), "--images", str(FACES), "--id-portrait", "--json")
    # Then the card path scores each pair too, with the same verdicts, but not the same scores: photo A
    # was cut, printed on a card and cropped back by the portrait finder
    assert code == 0
    on_card = json.loads(output)
    assert (on_card["tar"], on_card["far"]) == (1.0, 0.0)
    assert [p["verdict"] for p in on_card["pairs"]] == ["match", "no_match"]
    assert all(p["error"] is None for p in on_card["pairs"])
    assert [p["score"] for p in on_card["pairs"]] != [p["score"] for p in direct["pairs"]]


def test_the_second_look_rescores_only_pairs_near_the_threshold_and_always_the_same(
    engine: LocalFaceEngine,
) -> None:
    # Given one same-person pair scored once around its own first score (so it lies in the band)
    first, second = engine.embed(read("alex_lacamoire_1.png")), engine.embed(read("alex_lacamoire_3.jpg"))
    plain = LocalFaceEngine(jitters=0).similarity(first, second)
    near = LocalFaceEngine(threshold=plain)
    near_first, near_second = (
        near.embed(read("alex_lacamoire_1.png")),
        near.embed(read("alex_lacamoire_3.jpg")),
    )
    # When scored twice
    scores = {near.similarity(near_first, near_second) for _ in range(2)}
    # Then the second look gave another score, the same both times
    assert near.second_looks == 2
    assert len(scores) == 1
    assert scores != {plain}
    # and a pair far from the threshold keeps its first score, with no second look
    far = LocalFaceEngine(threshold=plain + 20)
    far_first, far_second = far.embed(read("alex_lacamoire_1.png")), far.embed(read("alex_lacamoire_3.jpg"))
    assert far.similarity(far_first, far_second) == plain
    assert far.second_looks == 0


def test_cli_compare() -> None:
    code, output = cli("compare", str(FACES / "biden_1.jpg"), str(FACES / "biden_2.jpg"), "--threshold", "55")
    doc = json.loads(output)
    assert code == 0
    assert doc["verdict"] == "match"
    assert {"similarity", "threshold", "verdict", "engine", "version"} == doc.keys()
    assert doc["threshold"] == 55
