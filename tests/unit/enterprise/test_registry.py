"""The enterprise registry (单位) against an in-memory store: one legal-person account per USCC, whatever
way the code is written; a claim undone only by the account that holds it; the strict USCC of an
account's real-name (a wrong check character refused, not sent to review)."""

from __future__ import annotations

import pytest

from chalicelib.enterprise.domain import EnterpriseType, LegalPersonType
from chalicelib.enterprise.registry import Enterprises, normalise_uscc
from chalicelib.kernel.errors import Conflict, InvalidField
from chalicelib.verification.domain.flows import strict_uscc
from tests.fakes.clock import FakeClock
from tests.fakes.enterprise import FakeEnterpriseStore

USCC = "91110000802100433B"
NAME = "北京星河车联科技有限公司"


def registry() -> tuple[Enterprises, FakeEnterpriseStore]:
    store = FakeEnterpriseStore()
    return Enterprises(store, clock=FakeClock()), store


def claim(enterprises: Enterprises, account: str, uscc: str = USCC) -> object:
    return enterprises.claim(
        uscc,
        f" {NAME} ",
        account,
        enterprise_type=EnterpriseType.ENTERPRISE,
        legal_person_type=LegalPersonType.LEGAL_REPRESENTATIVE,
        representative_name_masked="李*国",
        representative_person_hash="h-rep",
        address="北京市海淀区中关村大街27号8层801",
        flow_id="f1",
    )


def test_the_first_account_claims_the_enterprise_and_it_is_found_by_any_spelling_of_its_code() -> None:
    enterprises, store = registry()
    claimed = claim(enterprises, "acct_a")
    assert list(store.items) == [USCC]
    found = enterprises.get("９１１１ 0000-802100433b")  # full-width, spaces, a dash, lower case
    assert found == claimed
    assert found is not None
    assert (found.company_name, found.legal_account_id) == (NAME, "acct_a")
    assert found.public_view()["representative_name"] == "李*国"
    assert "address" not in found.public_view()
    assert enterprises.held_by(USCC, "acct_a")
    assert not enterprises.held_by(USCC, "acct_b")


def test_a_second_account_for_the_same_enterprise_is_refused_and_changes_nothing() -> None:
    enterprises, store = registry()
    claim(enterprises, "acct_a")
    before = dict(store.items)
    with pytest.raises(Conflict) as refused:
        claim(enterprises, "acct_b", uscc=USCC.lower())
    assert (refused.value.code, refused.value.field, refused.value.status) == (
        "enterprise.taken",
        "uscc",
        409,
    )
    assert "经办人" in refused.value.message_zh  # what to do instead
    assert store.items == before


def test_the_same_account_claiming_again_gets_the_enterprise_as_it_is() -> None:
    enterprises, store = registry()
    first = claim(enterprises, "acct_a")
    assert claim(enterprises, "acct_a") == first
    assert len(store.items) == 1


def test_a_claim_is_undone_only_by_the_account_that_holds_it() -> None:
    enterprises, store = registry()
    claim(enterprises, "acct_a")
    assert not enterprises.release(USCC, "acct_b")
    assert USCC in store.items
    assert enterprises.release(USCC, "acct_a")
    assert enterprises.get(USCC) is None
    claim(enterprises, "acct_b")  # free again
    assert enterprises.held_by(USCC, "acct_b")


def test_uscc_is_normalised_as_kept() -> None:
    assert normalise_uscc(" 9111 0000-80210 0433b ") == USCC


def test_an_accounts_uscc_with_a_wrong_check_character_is_refused_not_sent_to_review() -> None:
    assert strict_uscc(USCC.lower()) == USCC
    wrong = USCC[:17] + ("A" if USCC[17] != "A" else "B")
    with pytest.raises(InvalidField) as refused:
        strict_uscc(wrong)
    assert (refused.value.code, refused.value.field) == ("uscc.invalid", "uscc")
    assert "营业执照" in refused.value.message_zh
    with pytest.raises(InvalidField) as short:
        strict_uscc(USCC[:17])
    assert short.value.code == "uscc.length"
