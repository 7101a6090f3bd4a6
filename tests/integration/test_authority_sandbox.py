"""The sandbox identity authority over HTTP with its adapter, and the identity check in the API:
an invented identity is refused and no registration can build on it; an outage never passes."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib.adapters.authority.sandbox import SandboxIdentityAuthority
from chalicelib.local.sandbox_authority import AuthorityFaults, Citizen, SandboxAuthority
from chalicelib.verification.domain.authority import AuthorityResult
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import CARD_PORTRAIT, FACES, local_face_engine_missing
from tests.synthetic_documents import PERSON_ID_NUMBER, PERSON_NAME, id_front, require_cjk_font

#: A valid resident ID number (its check digit agrees) that no authority knows: an invented identity.
INVENTED_NUMBER = "110101199003071233"


@pytest.fixture
def sandbox() -> Iterator[SandboxAuthority]:
    with SandboxAuthority(seed=1) as running:
        running.register(Citizen(name=PERSON_NAME, id_number=PERSON_ID_NUMBER))
        yield running


def client(sandbox: SandboxAuthority, **kwargs: Any) -> SandboxIdentityAuthority:
    return SandboxIdentityAuthority(
        sandbox.url, timeout_seconds=kwargs.pop("timeout_seconds", 1.0), sleep=lambda _s: None, **kwargs
    )


def test_the_sandbox_knows_its_citizens_and_nobody_else(sandbox: SandboxAuthority) -> None:
    authority = client(sandbox)
    match = authority.verify_identity(PERSON_NAME, "resident_id", PERSON_ID_NUMBER)
    assert match.result is AuthorityResult.MATCH
    assert match.reference is not None
    assert match.provider_version.startswith("cheka-sandbox-authority/")
    assert (
        authority.verify_identity("李四", "resident_id", PERSON_ID_NUMBER).result is AuthorityResult.NO_MATCH
    )
    assert (
        authority.verify_identity(PERSON_NAME, "resident_id", INVENTED_NUMBER).result
        is AuthorityResult.NOT_FOUND
    )


def test_a_citizen_registered_through_the_admin_endpoint_is_known(sandbox: SandboxAuthority) -> None:
    authority = client(sandbox)
    authority.register_citizen("赵六", INVENTED_NUMBER)
    assert authority.verify_identity("赵六", "resident_id", INVENTED_NUMBER).result is AuthorityResult.MATCH
    assert len(sandbox) == 2


def test_down_is_unavailable_after_the_retries(sandbox: SandboxAuthority) -> None:
    sandbox.faults.down = True
    answer = client(sandbox, retries=2).verify_identity(PERSON_NAME, "resident_id", PERSON_ID_NUMBER)
    assert answer.result is AuthorityResult.UNAVAILABLE


def test_503s_are_retried_and_unavailable_when_they_persist(sandbox: SandboxAuthority) -> None:
    sandbox.faults.failure_rate = 1.0
    answer = client(sandbox, retries=1).verify_identity(PERSON_NAME, "resident_id", PERSON_ID_NUMBER)
    assert (answer.result, answer.provider_code, answer.retry_after) == (
        AuthorityResult.UNAVAILABLE,
        "http_503",
        1,
    )


def test_slower_than_the_timeout_is_unavailable(sandbox: SandboxAuthority) -> None:
    sandbox.faults.latency_seconds = 0.6
    answer = client(sandbox, timeout_seconds=0.3, retries=0).verify_identity(
        PERSON_NAME, "resident_id", PERSON_ID_NUMBER
    )
    assert answer.result is AuthorityResult.UNAVAILABLE


def test_wrong_answers_can_be_injected_at_run_time_and_per_request(sandbox: SandboxAuthority) -> None:
    # at run time, through the admin endpoint
    request = urllib.request.Request(
        sandbox.url + "/_sandbox/faults", data=json.dumps({"wrong_rate": 1}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert json.loads(resp.read())["wrong_rate"] == 1.0
    authority = client(sandbox)
    assert (
        authority.verify_identity(PERSON_NAME, "resident_id", PERSON_ID_NUMBER).result
        is AuthorityResult.NO_MATCH
    )
    sandbox.faults.wrong_rate = 0.0
    # per request, with the header
    body = {"name": PERSON_NAME, "id_type": "resident_id", "id_number": PERSON_ID_NUMBER}
    request = urllib.request.Request(
        sandbox.url + "/v1/identity/verify",
        data=json.dumps(body).encode(),
        headers={"X-Sandbox-Fault": "wrong", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert json.loads(resp.read())["result"] == "no_match"


def test_faults_parse_from_the_setting() -> None:
    faults = AuthorityFaults.parse("latency=2, failure_rate=0.5,wrong_rate=0.1,down")
    assert (faults.latency_seconds, faults.failure_rate, faults.wrong_rate, faults.down) == (
        2.0,
        0.5,
        0.1,
        True,
    )


@pytest.mark.skipif(local_face_engine_missing() is not None, reason=str(local_face_engine_missing()))
def test_the_portrait_comparison_matches_the_person_and_not_another(sandbox: SandboxAuthority) -> None:
    sandbox.register(
        Citizen(name=PERSON_NAME, id_number=PERSON_ID_NUMBER, portrait=(FACES / CARD_PORTRAIT).read_bytes())
    )
    authority = client(sandbox, timeout_seconds=20.0)
    same = authority.compare_portrait(PERSON_NAME, PERSON_ID_NUMBER, (FACES / "obama_1.jpg").read_bytes())
    assert same.result is AuthorityResult.MATCH
    assert same.similarity is not None
    other_face = next(p for p in sorted(FACES.glob("*.jpg")) if not p.name.startswith("obama"))
    other = authority.compare_portrait(PERSON_NAME, PERSON_ID_NUMBER, other_face.read_bytes())
    assert other.result is AuthorityResult.NO_MATCH


# --- the phone-holder check (运营商三要素) ------------------------------------------------------------

OWNERS_PHONE = "13700001111"


def test_the_sandbox_answers_whose_phone_it_is(sandbox: SandboxAuthority) -> None:
    # given a citizen registered through the admin endpoint with the phone a carrier holds in their name
    authority = client(sandbox)
    assert authority.supports_phone_holder
    authority.register_citizen("赵六", INVENTED_NUMBER, phone=OWNERS_PHONE)

    def phone_check(name: str, number: str, phone: str) -> AuthorityResult:
        return authority.verify_phone_holder(name, "resident_id", number, phone).result

    # then that phone under that name and number matches, with the sandbox's reference
    answer = authority.verify_phone_holder("赵六", "resident_id", INVENTED_NUMBER, OWNERS_PHONE)
    assert (answer.result, answer.provider) == (AuthorityResult.MATCH, "sandbox")
    assert answer.reference is not None
    # and another phone, or the phone under another name, does not
    assert phone_check("赵六", INVENTED_NUMBER, "13655556666") is AuthorityResult.NO_MATCH
    assert phone_check("李四", INVENTED_NUMBER, OWNERS_PHONE) is AuthorityResult.NO_MATCH
    # and a citizen with no phone on record, or an unknown number, is not found (as a carrier answers)
    assert phone_check(PERSON_NAME, PERSON_ID_NUMBER, OWNERS_PHONE) is AuthorityResult.NOT_FOUND
    assert phone_check("赵六", "110101199003076632", OWNERS_PHONE) is AuthorityResult.NOT_FOUND


def test_the_phone_check_takes_the_injected_faults(sandbox: SandboxAuthority) -> None:
    sandbox.register(Citizen(name=PERSON_NAME, id_number=PERSON_ID_NUMBER, phone=OWNERS_PHONE))
    authority = client(sandbox, retries=1)
    sandbox.faults.wrong_rate = 1.0
    wrong = authority.verify_phone_holder(PERSON_NAME, "resident_id", PERSON_ID_NUMBER, OWNERS_PHONE)
    assert wrong.result is AuthorityResult.NO_MATCH
    sandbox.faults.wrong_rate = 0.0
    sandbox.faults.failure_rate = 1.0
    failing = authority.verify_phone_holder(PERSON_NAME, "resident_id", PERSON_ID_NUMBER, OWNERS_PHONE)
    assert (failing.result, failing.provider_code) == (AuthorityResult.UNAVAILABLE, "http_503")
    sandbox.faults.failure_rate = 0.0
    sandbox.faults.down = True
    down = authority.verify_phone_holder(PERSON_NAME, "resident_id", PERSON_ID_NUMBER, OWNERS_PHONE)
    assert down.result is AuthorityResult.UNAVAILABLE


def test_the_stage_checks_a_delegated_owners_phone_with_its_authority(aws: None) -> None:
    from chalicelib.core import deps

    service = deps.registration_service()
    assert service.delegation._phone_holders is deps.verification_service().authority


# --- the identity check in the API ------------------------------------------------------------------


def _api_helpers() -> Any:
    from tests.integration import test_verification_api as helpers

    return helpers


@pytest.fixture
def person(token: Callable[..., str]) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token('owner', subject='owner-authority')}",
        "Content-Type": "application/json",
    }


def _read_front(api: Any, me: dict[str, str], number: str) -> tuple[str, int, Any]:
    helpers = _api_helpers()
    require_cjk_font()
    flow_id = helpers.open_flow(api, me, id_number=number)
    status, doc = helpers.upload(
        api, me, flow_id, DocumentKind.ID_FRONT, id_front(id_number=number, portrait=FACES / CARD_PORTRAIT)
    )
    assert status == 201, doc
    status, doc = helpers.call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)
    return flow_id, status, doc


@pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")
def test_an_invented_identity_on_a_well_drawn_card_is_refused_and_its_check_fails(
    api: Any, person: dict[str, str]
) -> None:
    # given a card drawn (like `cheka demo-id-card --no-register`) for a number the authority does not hold
    flow_id, status, doc = _read_front(api, person, INVENTED_NUMBER)
    # then reading it is refused on the number, the check is failed, and the answer is in the evidence
    assert (status, doc["code"], doc["field"]) == (422, "authority.not_found", "id_number")
    from chalicelib.core import deps

    flow = deps.verification_service().flows.find(flow_id)
    assert flow is not None
    assert flow.checks["authority"] == "failed"
    assert flow.checks["ocr_id_front"] == "passed"
    entries = [e for e in deps.evidence_log().entries(flow_id) if e.kind.value == "authority_checked"]
    assert entries[-1].public["result"] == "not_found"
    assert entries[-1].public["provider"] == "sandbox"
    assert INVENTED_NUMBER not in json.dumps(entries[-1].public)


@pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")
def test_the_authority_down_is_503_with_retry_and_the_retry_route_passes_once_it_is_back(
    api: Any, person: dict[str, str], identity_authority: SandboxAuthority
) -> None:
    identity_authority.faults.down = True
    try:
        flow_id, status, doc = _read_front(api, person, PERSON_ID_NUMBER)
        assert (status, doc["code"]) == (503, "authority.unavailable")
        assert doc["details"]["retry_after_seconds"] > 0
        helpers = _api_helpers()
        status, doc = helpers.call(api, "post", f"/v1/flows/{flow_id}/authority-check", person)
        assert (status, doc["code"]) == (503, "authority.unavailable")
    finally:
        identity_authority.faults.down = False
    status, doc = helpers.call(api, "post", f"/v1/flows/{flow_id}/authority-check", person)
    assert (status, doc["result"], doc["verdict"]) == (200, "match", "passed")


@pytest.mark.skipif(local_face_engine_missing() is not None, reason=str(local_face_engine_missing()))
def test_the_authority_down_with_review_sends_the_matched_face_to_a_reviewer_never_a_pass(
    api: Any, person: dict[str, str], identity_authority: SandboxAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core import deps

    # the stage's setting CHEKA_AUTHORITY_UNAVAILABLE=review, on the service the API uses
    checks = deps.verification_service().authority
    assert checks is not None
    monkeypatch.setattr(checks, "unavailable", "review")
    helpers = _api_helpers()
    identity_authority.faults.down = True
    try:
        # the ID front is read: the authority cannot answer, the person goes on
        flow_id, status, doc = _read_front(api, person, PERSON_ID_NUMBER)
        assert status == 200, doc
        status, flow = helpers.call(api, "get", f"/v1/flows/{flow_id}", person)
        assert flow["checks"]["authority"] == "in_review"
        # the live face matches the card, and the flow goes to a reviewer instead of passing
        session = helpers.start_sideways(api, person, flow_id)
        status, outcome = helpers.send_burst(
            api, person, flow_id, session, helpers.burst(session["challenge"]["direction"])
        )
    finally:
        identity_authority.faults.down = False
    assert status == 200, outcome
    assert outcome["matched"] is True
    assert outcome["passed"] is False
    assert outcome["review_case_id"].endswith("authority_unavailable")
    status, flow = helpers.call(api, "get", f"/v1/flows/{flow_id}", person)
    assert flow["status"] == "in_review"
    assert flow["checks"]["face"] == "in_review"


def test_the_stage_wires_the_sandbox_authority_and_its_unavailable_policy(
    aws: None, identity_authority: SandboxAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core import deps

    monkeypatch.setenv("CHEKA_AUTHORITY_UNAVAILABLE", "review")
    deps.reset()
    checks = deps.verification_service().authority
    assert checks is not None
    assert checks.unavailable == "review"
    assert isinstance(checks.authority, SandboxIdentityAuthority)
    answer = checks.authority.verify_identity(PERSON_NAME, "resident_id", PERSON_ID_NUMBER)
    assert answer.result is AuthorityResult.MATCH  # the test stage's sandbox, on its free port
    deps.reset()


@pytest.mark.skipif(local_face_engine_missing() is not None, reason=str(local_face_engine_missing()))
def test_a_real_identity_shown_by_another_face_fails_on_the_authoritys_portrait(
    api: Any, person: dict[str, str], identity_authority: SandboxAuthority
) -> None:
    # given a real identity whose authoritative portrait is someone else's face (kit_harington_1.jpg, a
    # bearded man with long dark hair, in armour), and a card forged with the impostor's own face
    # (the Obama video frame the whole-flow tests use), so that card and live face agree
    real_owner = (FACES / "kit_harington_1.jpg").read_bytes()
    identity_authority.register(Citizen(name=PERSON_NAME, id_number=PERSON_ID_NUMBER, portrait=real_owner))
    helpers = _api_helpers()
    try:
        flow_id, status, doc = _read_front(api, person, PERSON_ID_NUMBER)
        assert status == 200, doc  # name and number are real: the identity check passes
        session = helpers.start_sideways(api, person, flow_id)
        status, outcome = helpers.send_burst(
            api, person, flow_id, session, helpers.burst(session["challenge"]["direction"])
        )
    finally:
        identity_authority.register(
            Citizen(
                name=PERSON_NAME,
                id_number=PERSON_ID_NUMBER,
                portrait=(FACES / CARD_PORTRAIT).read_bytes(),
            )
        )
    # then the live face matches the forged card but not the authority's portrait: the attempt fails
    assert status == 200, outcome
    assert (outcome["live"], outcome["matched"], outcome["passed"]) == (True, True, False)
    assert "authority.portrait_mismatch" in outcome["reasons"]
    status, flow = helpers.call(api, "get", f"/v1/flows/{flow_id}", person)
    assert flow["checks"]["face"] == "failed"
