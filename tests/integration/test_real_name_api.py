"""Real-name authentication of portal accounts (实名认证, seed 001) through the API, on the embedded AWS
with the real local engines and the sandbox identity authority.

A portal account opens a verification flow (purpose ``account_verification``) and goes through the
checks every flow makes: the ID card photographed and read (both sides), the identity authority, the
biometric consent and the face check; a legal person (法人) also types the enterprise's USCC and name and
has the business licence read and cross-checked on both. ``POST /v1/accounts/me/real-name`` then
completes the account (legal: the enterprise is bound to it, one legal-person account per USCC), and the
next refresh of its token carries the roles of its new kind. An automatic check that cannot pass (here
the identity authority out of service) goes to a reviewer (人工实名认证), whose decision completes the
account through the same code, or refuses it with the reason the account is shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from chalicelib.kernel.personal import mask_name
from chalicelib.verification.domain.documents import DocumentKind
from tests.face_photos import FACES
from tests.integration.test_verification_api import (
    CARD_PORTRAIT,
    burst,
    call,
    consent_to_face_check,
    send_burst,
    start_sideways,
    upload,
)
from tests.synthetic_documents import (
    COMPANY,
    PERSON_ADDRESS,
    PERSON_ID_NUMBER,
    PERSON_NAME,
    business_licence,
    id_back,
    id_front,
    require_cjk_font,
)

pytestmark = pytest.mark.skipif(not FACES.is_dir(), reason=f"face photos not found at {FACES}")

ME = "/v1/accounts/me/real-name"
USCC = COMPANY["uscc"]
LEGAL_FORM = {"enterprise_type": "enterprise", "legal_person_type": "legal_representative"}


class Portal:
    """A signed-up, unverified portal account with a live sign-in session (as the login leaves it), and
    the refresh that mints its next access token from the account's current state."""

    def __init__(self) -> None:
        from chalicelib.accounts.domain import Account, AccountKind, new_account_id
        from chalicelib.core import deps
        from chalicelib.sessions.domain import SessionKind

        accounts = deps.accounts()
        account = Account(
            account_id=new_account_id(),
            login_name=f"u{uuid.uuid4().hex[:12]}",
            kind=AccountKind.UNVERIFIED,
            phone_hash=deps.keyed_hasher().digest(f"phone:{uuid.uuid4().hex}"),
            created_at=datetime.now(UTC),
        )
        accounts._store.create(account, phone="13800138000", email=None, password_hash=None)
        self.account_id = account.account_id
        issued = deps.sessions().open(SessionKind.ENTERPRISE, account.account_id, ["account"])
        self._refresh_token = issued.refresh_token
        self.headers = self._headers(account, issued.session.session_id)

    @staticmethod
    def _headers(account: Any, session_id: str) -> dict[str, str]:
        from chalicelib.core import deps
        from chalicelib.core.auth import issue_token
        from chalicelib.core.settings import get_settings

        roles, claims = deps.accounts().token_grant(account, session_id)
        token = issue_token(get_settings(), account.account_id, roles, claims=claims)
        return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def refresh(self) -> set[str]:
        """The account's next access token (as ``/v1/accounts/refresh`` mints it): its roles."""
        import jwt

        from chalicelib.core import deps

        account, issued = deps.accounts().refresh(self._refresh_token)
        self._refresh_token = issued.refresh_token
        self.headers = self._headers(account, issued.session.session_id)
        token = self.headers["Authorization"].removeprefix("Bearer ")
        return set(jwt.decode(token, options={"verify_signature": False})["roles"])

    def claims(self) -> dict[str, Any]:
        import jwt

        token = self.headers["Authorization"].removeprefix("Bearer ")
        return dict(jwt.decode(token, options={"verify_signature": False}))


@pytest.fixture
def authority_down(identity_authority: Any) -> Iterator[Any]:
    """The identity authority answering every request with 503 until the test puts it back."""
    identity_authority.faults.failure_rate = 1.0
    try:
        yield identity_authority
    finally:
        identity_authority.faults.failure_rate = 0.0


def identity(legal: bool, **changes: str) -> dict[str, str]:
    body = {
        "id_type": "resident_id",
        "id_number": PERSON_ID_NUMBER,
        "name": PERSON_NAME,
        "address": PERSON_ADDRESS,
    }
    if legal:
        body |= {"uscc": USCC, "company_name": COMPANY["name"]}
    return body | changes


def open_account_flow(api: Any, me: dict[str, str]) -> str:
    status, flow = call(api, "post", "/v1/flows", me, {"purpose": "account_verification"})
    assert status == 201, flow
    return str(flow["flow_id"])


def photos_read(api: Any, me: dict[str, str], flow_id: str, *, legal: bool) -> tuple[int, Any]:
    """Both sides of the ID card photographed, the identity typed, both sides read and cross-checked
    (the authority asked as the front agrees)."""
    consent_to_face_check(api, me, flow_id)
    front = id_front(portrait=FACES / CARD_PORTRAIT)
    assert upload(api, me, flow_id, DocumentKind.ID_FRONT, front)[0] == 201
    assert upload(api, me, flow_id, DocumentKind.ID_BACK, id_back(valid_until=date(2035, 6, 1)))[0] == 201
    status, body = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity(legal))
    assert status == 200, body
    status, back = call(api, "post", f"/v1/flows/{flow_id}/ocr/id_back", me)
    assert status == 200, back
    return call(api, "post", f"/v1/flows/{flow_id}/ocr/id_front", me)


def licence_read(api: Any, me: dict[str, str], flow_id: str, **licence: str) -> tuple[int, Any]:
    photo = business_licence(legal_representative=PERSON_NAME, **licence)
    assert upload(api, me, flow_id, DocumentKind.BUSINESS_LICENCE, photo)[0] == 201
    return call(api, "post", f"/v1/flows/{flow_id}/ocr/business_licence", me)


def face_passed(api: Any, me: dict[str, str], flow_id: str) -> None:
    session = start_sideways(api, me, flow_id)
    status, outcome = send_burst(api, me, flow_id, session, burst(session["challenge"]["direction"]))
    assert (status, outcome["passed"]) == (200, True), outcome


def verified_flow(api: Any, me: dict[str, str], *, legal: bool) -> str:
    flow_id = open_account_flow(api, me)
    status, front = photos_read(api, me, flow_id, legal=legal)
    assert status == 200, front
    if legal:
        status, read = licence_read(api, me, flow_id)
        assert (status, read["agreed"]) == (200, True), read
    face_passed(api, me, flow_id)
    return flow_id


def evidence_kinds(api: Any, reviewer: dict[str, str], flow_id: str) -> list[str]:
    status, evidence = call(api, "get", f"/v1/flows/{flow_id}/evidence", reviewer)
    assert status == 200, evidence
    assert evidence["chain"]["ok"], evidence["chain"]
    return [e["kind"] for e in evidence["entries"]]


def test_a_natural_person_completes_real_name_and_the_next_refresh_carries_it(
    api: Any, auth: Any, log_output: Any
) -> None:
    require_cjk_font()
    portal = Portal()
    me = portal.headers
    # Before anything: unverified, told what to do
    status, state = call(api, "get", ME, me)
    assert (status, state["status"], state["account_kind"]) == (200, "unverified", "unverified"), state
    # An account opens only its own kind of flow
    status, refused = call(api, "post", "/v1/flows", me, {"purpose": "registration"})
    assert (status, refused["code"]) == (403, "flow.purpose_not_allowed"), refused
    flow_id = open_account_flow(api, me)
    # Finalising before the checks passed lists what is missing and changes nothing
    status, early = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "natural"})
    assert (status, early["code"]) == (409, "real_name.checks_incomplete"), early
    status, front = photos_read(api, me, flow_id, legal=False)
    assert status == 200, front
    status, early = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "natural"})
    assert (status, early["code"]) == (409, "real_name.checks_incomplete"), early
    assert early["details"]["missing"] == ["face"], early
    face_passed(api, me, flow_id)

    # When the account finalises with the flow whose checks all passed
    status, done = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "natural"})
    # Then it is a natural-person account, the name masked
    assert status == 200, done
    assert (done["status"], done["account_kind"], done["kind"]) == ("verified", "natural", "natural"), done
    assert done["name"] == mask_name(PERSON_NAME), done
    assert PERSON_ID_NUMBER not in str(done)
    assert done["enterprise"] is None
    # And the evidence of the flow ends with the completion, the flow kept (closed to change)
    reviewer = auth("reviewer")
    assert evidence_kinds(api, reviewer, flow_id)[-1] == "real_name_completed"
    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert flow["status"] == "verified", flow
    # And the next refresh mints no enterprise role for a natural person
    assert portal.refresh() == {"account"}
    # And doing it again is refused as done
    status, again = call(api, "post", ME, portal.headers, {"flow_id": flow_id, "kind": "natural"})
    assert (status, again["code"]) == (409, "account.already_verified"), again
    # And nothing personal went to the log
    logged = log_output.getvalue()
    assert PERSON_ID_NUMBER not in logged
    assert PERSON_NAME not in logged


def test_a_legal_person_completes_with_an_agreeing_licence_and_a_second_account_for_it_is_refused(
    api: Any, auth: Any
) -> None:
    from chalicelib.core import deps

    require_cjk_font()
    first = Portal()
    me = first.headers
    flow_id = open_account_flow(api, me)
    # A USCC with a wrong check character is refused when typed, under its field
    wrong = USCC[:17] + ("A" if USCC[17] != "A" else "B")
    status, err = call(api, "put", f"/v1/flows/{flow_id}/identity", me, identity(True, uscc=wrong))
    assert (status, err["code"], err["field"]) == (422, "uscc.invalid", "uscc"), err
    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert flow["identity"] is None, flow
    status, front = photos_read(api, me, flow_id, legal=True)
    assert status == 200, front
    # A licence whose name is another company's is refused on the name
    status, err = licence_read(api, me, flow_id, name="北京月光车联科技有限公司")
    assert (status, err["code"], err["field"]) == (422, "ocr.mismatch", "company_name"), err
    # And one whose USCC is another's, on the USCC
    other = "91110108MA01C2D3XY"
    status, err = licence_read(api, me, flow_id, uscc=other)
    assert (status, err["code"], err["field"]) == (422, "ocr.mismatch", "uscc"), err
    status, flow = call(api, "get", f"/v1/flows/{flow_id}", me)
    assert "ocr_business_licence" not in flow["checks"], flow
    # The one that agrees on both passes
    status, read = licence_read(api, me, flow_id)
    assert (status, read["agreed"]) == (200, True), read
    face_passed(api, me, flow_id)
    # The legal form needs its choices
    status, err = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "legal"})
    assert (status, err["code"], err["field"]) == (422, "real_name.field_missing", "enterprise_type"), err

    # When the legal person finalises
    body = {"flow_id": flow_id, "kind": "legal", **LEGAL_FORM, "company_name": COMPANY["name"]}
    status, done = call(api, "post", ME, me, body)
    # Then the account is the enterprise's legal-person account, the enterprise bound to it
    assert status == 200, done
    assert (done["status"], done["account_kind"], done["kind"]) == ("verified", "legal", "legal"), done
    assert done["enterprise"]["uscc"] == USCC, done
    assert done["enterprise"]["company_name"] == COMPANY["name"], done
    assert PERSON_NAME not in done["enterprise"]["representative_name"], done
    held = deps.enterprises().get(USCC)
    assert held is not None
    assert (held.legal_account_id, held.address) == (first.account_id, PERSON_ADDRESS)
    # And the next refresh carries the legal-person role and the enterprise
    assert first.refresh() == {"account", "enterprise_legal"}
    assert first.claims()["ent"] == USCC
    # And the address is sealed at rest
    from chalicelib.adapters.dynamo.models_enterprise import EnterpriseModel

    raw = EnterpriseModel.get(USCC)
    assert PERSON_ADDRESS.encode() not in raw.address_enc

    # When a second account proves the same enterprise
    second = Portal()
    other_flow = verified_flow(api, second.headers, legal=True)
    status, taken = call(
        api, "post", ME, second.headers, {"flow_id": other_flow, "kind": "legal", **LEGAL_FORM}
    )
    # Then it is refused, and nothing changed: the account unverified, its flow open, the enterprise held
    assert (status, taken["code"], taken["field"]) == (409, "enterprise.taken", "uscc"), taken
    status, state = call(api, "get", ME, second.headers)
    assert (state["status"], state["account_kind"]) == ("unverified", "unverified"), state
    status, flow = call(api, "get", f"/v1/flows/{other_flow}", second.headers)
    assert flow["status"] == "open", flow
    held = deps.enterprises().get(USCC)
    assert held is not None
    assert held.legal_account_id == first.account_id
    assert second.refresh() == {"account"}


def test_an_authority_outage_goes_to_a_reviewer_whose_approval_makes_the_account_legal(
    api: Any, auth: Any, authority_down: Any
) -> None:
    from chalicelib.core import deps

    require_cjk_font()
    portal = Portal()
    me = portal.headers
    flow_id = open_account_flow(api, me)
    # The authority cannot answer: the ID card is read, the identity cannot be confirmed
    status, err = photos_read(api, me, flow_id, legal=True)
    assert (status, err["code"]) == (503, "authority.unavailable"), err
    status, read = licence_read(api, me, flow_id)
    assert status == 200, read
    status, err = call(api, "post", f"/v1/flows/{flow_id}/authority-check", me)
    assert status == 503, err
    status, early = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "legal", **LEGAL_FORM})
    assert (status, early["code"]) == (409, "real_name.checks_incomplete"), early
    assert "authority" in early["details"]["missing"], early

    # When the account asks for manual real-name authentication (人工实名认证)
    body = {"flow_id": flow_id, "kind": "legal", **LEGAL_FORM, "note": "身份核验服务暂不可用"}
    status, pending = call(api, "post", f"{ME}/review", me, body)
    # Then it is in review, with the case number the account can quote
    assert status == 201, pending
    assert pending["status"] == "in_review", pending
    assert pending["case_number"].startswith("SH"), pending
    status, state = call(api, "get", ME, me)
    assert (state["status"], state["case_number"]) == ("in_review", pending["case_number"]), state
    # And asking again is the same case; finalising meanwhile says it is with a reviewer
    status, again = call(api, "post", f"{ME}/review", me, body)
    assert (status, again["case_number"]) == (201, pending["case_number"]), again
    status, waiting = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "legal", **LEGAL_FORM})
    assert (status, waiting["code"]) == (409, "real_name.in_review"), waiting

    # When the reviewer finds the case in the queue and approves it
    reviewer = {**auth("reviewer"), "Content-Type": "application/json"}
    status, queue = call(api, "get", "/v1/review-cases", reviewer)
    assert status == 200, queue
    case = next(c for c in queue["cases"] if c["flow_id"] == flow_id)
    assert (case["reason"], case["purpose"]) == ("real_name", "account_verification"), case
    assert case["summary"]["real_name"] == "legal", case
    status, detail = call(api, "get", f"/v1/review-cases/{case['case_id']}", reviewer)
    assert status == 200, detail
    assert set(detail["documents"]) >= {"id_front", "id_back", "business_licence"}, detail
    status, decided = call(
        api, "post", f"/v1/review-cases/{case['case_id']}/decision", reviewer, {"decision": "approve"}
    )
    assert (status, decided["status"]) == (200, "approved"), decided
    # Then the account completed real-name as a legal person, the enterprise bound to it
    status, state = call(api, "get", ME, me)
    assert (state["status"], state["account_kind"]) == ("verified", "legal"), state
    assert state["enterprise"]["uscc"] == USCC, state
    held = deps.enterprises().get(USCC)
    assert held is not None
    assert held.legal_account_id == portal.account_id
    assert portal.refresh() == {"account", "enterprise_legal"}
    kinds = evidence_kinds(api, reviewer, flow_id)
    assert kinds.index("review_opened") < kinds.index("review_decided") < kinds.index("real_name_completed")


def test_a_refused_review_is_shown_with_its_reason_and_the_account_may_start_again(
    api: Any, auth: Any, authority_down: Any
) -> None:
    require_cjk_font()
    portal = Portal()
    me = portal.headers
    flow_id = open_account_flow(api, me)
    status, err = photos_read(api, me, flow_id, legal=False)
    assert status == 503, err
    # Without the photos of the back a reviewer could not compare: the request says what is missing
    body = {"flow_id": flow_id, "kind": "legal", **LEGAL_FORM}
    status, missing = call(api, "post", f"{ME}/review", me, body)
    assert (status, missing["code"]) == (422, "real_name.field_missing"), missing  # no USCC typed
    status, pending = call(api, "post", f"{ME}/review", me, {"flow_id": flow_id, "kind": "natural"})
    assert status == 201, pending
    reviewer = {**auth("reviewer"), "Content-Type": "application/json"}
    case_id = f"rc-{flow_id}-real_name"
    reason = "证件照片模糊，无法核对"
    status, decided = call(
        api,
        "post",
        f"/v1/review-cases/{case_id}/decision",
        reviewer,
        {"decision": "reject", "note": reason},
    )
    assert (status, decided["status"]) == (200, "rejected"), decided
    # Then the account is told it was refused, and why
    status, state = call(api, "get", ME, me)
    assert (state["status"], state["account_kind"], state["refusal"]) == ("refused", "unverified", reason), (
        state
    )
    assert reason in state["message_zh"], state
    # And it may start again with a new flow (the refused one is closed)
    status, again = call(api, "post", ME, me, {"flow_id": flow_id, "kind": "natural"})
    assert status == 409, again
    assert open_account_flow(api, me)
    # And once the account signs out everywhere, its token opens no flow and reads nothing
    from chalicelib.core import deps

    deps.accounts().revoke_all(portal.account_id)
    status, gone = call(api, "post", "/v1/flows", me, {"purpose": "account_verification"})
    assert (status, gone["code"]) == (401, "account.session_revoked"), gone
    status, gone = call(api, "get", ME, me)
    assert (status, gone["code"]) == (401, "account.session_revoked"), gone
