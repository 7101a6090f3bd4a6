"""The load scenario's synthetic identities (``bench/load/scenario.py``, ``bench/load/run_load.py``): no
identity is given to more simulated owners than one ID may hold cards (一证多卡, 第十一条), over every level
of a run, so the load's registrations are never refused ``cards_per_id_exceeded``; the identities are
valid, distinct and the same from run to run."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from chalicelib.cards.domain.limits import CARDS_PER_ID_LIMIT
from chalicelib.kernel.validators import validate
from chalicelib.local.documents import PERSON_ID_NUMBER

LOAD = Path(__file__).resolve().parents[2] / "bench" / "load"


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's names
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scenario() -> ModuleType:
    return load_module("load_scenario_identities", LOAD / "scenario.py")


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    return load_module("load_runner_identities", LOAD / "run_load.py")


@pytest.mark.parametrize(
    ("levels", "pool"),
    [
        ((10, 30, 60), 600),  # `make load`'s levels and pool
        ((60,), 600),
        ((200,), 600),
        ((60, 200), 1000),
        ((200,), 7),  # a pool that is no multiple of the limit: an identity spans two levels' owners
    ],
)
def test_no_identity_goes_to_more_owners_than_one_id_may_hold_cards_over_a_whole_run(
    scenario: ModuleType, runner: ModuleType, levels: tuple[int, ...], pool: int
) -> None:
    people = scenario.synthetic_people(
        scenario.identities_needed(len(levels) * pool, CARDS_PER_ID_LIMIT), taken={PERSON_ID_NUMBER}
    )
    owners = []
    for n in range(len(levels)):
        _, rows = runner.pool_csv(n * pool, pool, seed=4242 + n, people=people)
        owners += rows
    assert len(owners) == len(levels) * pool
    per_identity = Counter(row["person"]["id_number"] for row in owners)
    assert max(per_identity.values()) <= CARDS_PER_ID_LIMIT
    # every identity made is used, each by the owners of one block, with its own card photo
    assert set(per_identity) == {person["id_number"] for person in people}
    fronts: dict[str, set[str]] = {row["person"]["id_number"]: set() for row in owners}
    for row in owners:
        fronts[row["person"]["id_number"]].add(row["front"])
    assert all(len(names) == 1 for names in fronts.values())
    assert len({name for names in fronts.values() for name in names}) == len(people)
    assert PERSON_ID_NUMBER not in per_identity


def test_owners_fill_each_identity_up_to_the_limit_and_no_further(scenario: ModuleType) -> None:
    limit = CARDS_PER_ID_LIMIT
    assert [scenario.identity_of(n, limit) for n in (0, limit - 1, limit, 2 * limit - 1, 2 * limit)] == [
        0,
        0,
        1,
        1,
        2,
    ]
    assert scenario.identities_needed(0, limit) == 0
    assert scenario.identities_needed(1, limit) == 1
    assert scenario.identities_needed(limit, limit) == 1
    assert scenario.identities_needed(limit + 1, limit) == 2
    assert scenario.identities_needed(1800, limit) == 1800 // limit
    with pytest.raises(ValueError, match="cards per identity"):
        scenario.identity_of(3, 0)
    with pytest.raises(ValueError, match="out of range"):
        scenario.identity_of(-1, limit)


def test_the_synthetic_people_are_valid_distinct_and_the_same_at_every_run(scenario: ModuleType) -> None:
    people = scenario.synthetic_people(300, seed=7, taken={PERSON_ID_NUMBER})
    assert people == scenario.synthetic_people(300, seed=7, taken={PERSON_ID_NUMBER})
    numbers = [person["id_number"] for person in people]
    assert len(set(numbers)) == 300
    assert PERSON_ID_NUMBER not in numbers
    for person in people:
        assert validate("resident_id", person["id_number"]).value == person["id_number"]
        assert person["id_number"][6:14] == person["birth_date"].replace("-", "")
        assert person["sex"] == ("男" if int(person["id_number"][16]) % 2 else "女")
        assert person["name"]
        assert person["address"]
    # a number already taken is never given again
    taken = set(numbers[:5])
    assert not taken & {p["id_number"] for p in scenario.synthetic_people(300, seed=7, taken=taken)}


def test_a_levels_identities_are_registered_with_the_authority_each_with_its_own_card_photo(
    scenario: ModuleType, runner: ModuleType, tmp_path: Path
) -> None:
    from chalicelib.local.documents import cjk_font_path
    from chalicelib.local.sandbox_authority import SandboxAuthority

    if cjk_font_path() is None or not (runner.FACES / runner.CARD_PORTRAIT).is_file():
        pytest.skip("the CJK font or the face photos are not on this machine")
    people = scenario.synthetic_people(4, taken={PERSON_ID_NUMBER})
    with SandboxAuthority() as authority:
        runner.make_identities(tmp_path, people, range(3), authority.url)
        assert len(authority) == 3
        for k, person in enumerate(people):
            known = authority.verify({"name": person["name"], "id_number": person["id_number"]})
            assert known["result"] == ("match" if k < 3 else "not_found")
    photos = sorted(p.name for p in tmp_path.iterdir())
    assert photos == ["id_front-0.jpg", "id_front-1.jpg", "id_front-2.jpg"]
    assert len({(tmp_path / name).read_bytes() for name in photos}) == 3
