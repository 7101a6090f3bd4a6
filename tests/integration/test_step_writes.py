"""The phone step and the consents step write all or nothing, on the embedded DynamoDB.

The phone step uses the SMS code, opens the verification flow, saves the registration and chains the
evidence of the check in one transaction (``adapters.dynamo.step_writes``): a store failure leaves the
code usable and every table as it was, a wrong code still counts its try, and a code proves one phone
step only (a retry that met its own commit included). The consents step saves the consents on the
registration with their evidence entry in one transaction too.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.consents.domain import ConsentKind, ConsentRecord
from chalicelib.core import deps
from chalicelib.core.outbound import Unavailable
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.errors import Conflict, DomainError
from chalicelib.registration.domain.registrations import RegistrationKind
from chalicelib.registration.ports import SealedRegistration
from chalicelib.registration.step_writes import Note, StepWrite
from chalicelib.sms.domain import SmsPurpose
from chalicelib.verification.domain.evidence import ChainHead, EvidenceKind
from chalicelib.verification.domain.flows import FlowPurpose
from tests.integration.test_fault_table import changed, snapshot

OWNER = "owner-steps"
PHONE = "13912340077"
WRONG = "000000"


@pytest.fixture
def vins(aws: None, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two vehicles in the inventory; codes sent one after the other without the resend interval."""
    from chalicelib.cards.inventory import import_inventory
    from chalicelib.local.synthetic import inventory_rows

    monkeypatch.setenv("CHEKA_SMS_RESEND_SECONDS", "0")
    deps.reset()
    rows = list(inventory_rows(2, seed=71))
    report = import_inventory(list(enumerate(rows, start=2)), deps.inventory_repo(), actor="test")
    assert report.errors == []
    return [row["vin"] for row in rows]


def at_phone_step(vin: str) -> str:
    """A registration of ``vin`` opened and its vehicle confirmed: its id."""
    service = deps.registration_service()
    view, _ = service.start(OWNER, RegistrationKind.REGISTRATION, vin)
    service.confirm_vehicle(view.registration_id, OWNER)
    return view.registration_id


def sent_code() -> str:
    """A new owner-phone code for ``PHONE``, as the SMS drop shows it."""
    deps.sms_code_service().send(PHONE, SmsPurpose.OWNER_PHONE, caller=OWNER)
    text = deps.sms_drop().recent(1)[0].text
    return "".join(ch for ch in text.split("验证码")[1] if ch.isdigit())[:6]


@contextlib.contextmanager
def store_throttled(operation: str) -> Iterator[list[str]]:
    """Every ``operation`` call to DynamoDB throttled (as the service answers past its capacity); the
    operations refused are listed."""
    from botocore.endpoint import Endpoint

    original = Endpoint.make_request
    refused: list[str] = []

    def throttled(endpoint: Endpoint, model: Any, request: Any) -> Any:
        if model.service_model.service_name == "dynamodb" and model.name == operation:
            refused.append(model.name)
            raise ClientError(
                {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )
        return original(endpoint, model, request)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", throttled)
        yield refused


def entries(flow_id: str, kind: EvidenceKind) -> int:
    return sum(1 for e in deps.evidence_log().entries(flow_id) if e.kind is kind)


def refused_code(call: Callable[[], object]) -> str:
    with pytest.raises(DomainError) as refused:
        call()
    return refused.value.code


def test_a_store_failure_when_the_phone_is_proved_leaves_the_code_usable_and_the_store_as_it_was(
    vins: list[str],
) -> None:
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    before = snapshot()
    with store_throttled("TransactWriteItems") as refused, pytest.raises(Unavailable):
        service.verify_phone(reg_id, OWNER, PHONE, code)
    assert refused == ["TransactWriteItems"]
    assert changed(before, snapshot()) == []
    # the same code, sent again, proves the phone: the flow opened and the check in its evidence
    view = service.verify_phone(reg_id, OWNER, PHONE, code)
    reg = service.store.get(reg_id)
    assert reg is not None
    assert reg.flow_id is not None
    assert reg.flow_id == view.flow_id
    assert reg.phone == PHONE
    assert deps.verification_service().flow(reg.flow_id, OWNER).purpose is FlowPurpose.REGISTRATION
    assert entries(reg.flow_id, EvidenceKind.SMS_CHECKED) == 1
    assert deps.evidence_log().verify(reg.flow_id).ok


def test_a_wrong_code_counts_its_try_and_a_used_code_cannot_prove_the_phone_on_another_registration(
    vins: list[str],
) -> None:
    service = deps.registration_service()
    reg_id, other = at_phone_step(vins[0]), at_phone_step(vins[1])
    code = sent_code()
    with pytest.raises(DomainError) as wrong:
        service.verify_phone(reg_id, OWNER, PHONE, WRONG if code != WRONG else "111111")
    assert wrong.value.code == "sms.code_wrong"
    assert wrong.value.details["tries_left"] == 4
    view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert refused_code(lambda: service.verify_phone(other, OWNER, PHONE, code)) == "sms.no_code"
    refused = service.store.get(other)
    assert refused is not None
    assert (refused.flow_id, refused.phone) == (None, None)
    reg = service.store.get(reg_id)
    assert reg is not None
    assert reg.flow_id == view.flow_id
    assert entries(view.flow_id or "", EvidenceKind.SMS_CHECKED) == 1


def test_the_phone_step_sent_again_after_it_landed_is_answered_as_done_and_writes_nothing_more(
    vins: list[str],
) -> None:
    """The step landed, but its answer never reached the person (or a follow-up failed): the same code
    sent again finds it used, and the step is answered as done — no second flow, no second entry."""
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    view = service.verify_phone(reg_id, OWNER, PHONE, code)
    before = snapshot()
    again = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert again.flow_id == view.flow_id
    assert changed(before, snapshot()) == []
    # another phone on the same registration is not proved by it
    assert refused_code(lambda: service.verify_phone(reg_id, OWNER, "13912340078", code)) == "sms.no_code"


def test_a_phone_step_whose_follow_up_failed_after_it_landed_completes_when_sent_again(
    vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sales-phone possession check after the step's transaction fails (the store down a moment):
    the person is answered with the failure, and the same code sent again runs the check and succeeds."""
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    possession = service.steps._possession
    assert possession is not None
    check = possession.by_sales_phone
    failures: list[str] = []

    def fails_once(reg: Any) -> Any:
        if not failures:
            failures.append(reg.registration_id)
            raise Unavailable("store", TimeoutError("timed out"))
        return check(reg)

    monkeypatch.setattr(possession, "by_sales_phone", fails_once)
    with pytest.raises(Unavailable):
        service.verify_phone(reg_id, OWNER, PHONE, code)
    view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert failures == [reg_id]
    assert view.flow_id is not None
    assert entries(view.flow_id, EvidenceKind.SMS_CHECKED) == 1


def overtaken_after_matching(monkeypatch: pytest.MonkeyPatch, first: str, code: str) -> list[Any]:
    """The next phone step matches its code, then the phone step of registration ``first`` with the same
    code (a request sent at the same moment) runs whole before it writes; the list gets that step's view."""
    service = deps.registration_service()
    codes = deps.sms_code_service()
    match = codes.match
    overtaking: list[Any] = []

    def overtaken(*args: Any, **kwargs: Any) -> Any:
        matched = match(*args, **kwargs)
        if not overtaking:
            overtaking.append(None)
            overtaking[0] = service.verify_phone(first, OWNER, PHONE, code)
        return matched

    monkeypatch.setattr(codes, "match", overtaken)
    return overtaking


def test_of_two_phone_steps_with_one_code_only_the_first_uses_it_and_the_other_writes_nothing(
    vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second registration's step matches the code, then the first's uses it before the second
    writes: the second is refused as the code is used, and its registration has no phone and no flow."""
    service = deps.registration_service()
    first, second = at_phone_step(vins[0]), at_phone_step(vins[1])
    code = sent_code()
    overtaking = overtaken_after_matching(monkeypatch, first, code)
    assert refused_code(lambda: service.verify_phone(second, OWNER, PHONE, code)) == "sms.no_code"
    assert len(overtaking) == 1
    proved, refused = service.store.get(first), service.store.get(second)
    assert proved is not None
    assert proved.flow_id is not None
    assert refused is not None
    assert (refused.flow_id, refused.phone, refused.version) == (None, None, 2)


def test_a_twin_phone_step_overtaken_by_its_twin_is_answered_as_done_with_the_same_flow(
    vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The phone step sent twice at once with one code (a double tap, a client's retry racing its first
    request): the other, refused on the code, reads the registration again, finds this very phone proved
    and is answered as done — with the same flow, one evidence entry."""
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    twin = overtaken_after_matching(monkeypatch, reg_id, code)
    view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert len(twin) == 1
    assert view.flow_id is not None
    assert view.flow_id == twin[0].flow_id
    assert entries(view.flow_id, EvidenceKind.SMS_CHECKED) == 1
    assert deps.evidence_log().verify(view.flow_id).ok


def test_a_registration_changed_after_the_code_matched_refuses_the_phone_step_and_leaves_the_code_usable(
    vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    codes = deps.sms_code_service()
    match = codes.match

    def changed_after_matching(*args: Any, **kwargs: Any) -> Any:
        matched = match(*args, **kwargs)
        reg = service.store.get(reg_id)
        assert reg is not None
        service.registrations.save(reg)  # another request saved it meanwhile: one version up
        return matched

    with monkeypatch.context() as mp:
        mp.setattr(codes, "match", changed_after_matching)
        assert (
            refused_code(lambda: service.verify_phone(reg_id, OWNER, PHONE, code)) == "registration.changed"
        )
    reg = service.store.get(reg_id)
    assert reg is not None
    assert (reg.flow_id, reg.phone) == (None, None)
    assert service.verify_phone(reg_id, OWNER, PHONE, code).flow_id is not None


def test_a_phone_step_whose_retry_met_its_own_commit_is_answered_as_done_and_writes_once(
    vins: list[str],
) -> None:
    """The transaction commits, its reply is lost, and botocore's retry meets the commit still in flight
    (cancelled as a conflict): the step finds its entry in the chain and is answered as done."""
    from chalicelib.adapters.dynamo.models import EvidenceModel

    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    client = EvidenceModel._get_connection().connection.client
    real = client._make_api_call
    sent: list[str] = []

    def committed_then_conflict(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation != "TransactWriteItems" or sent:
            return real(operation, kwargs)
        sent.append(operation)
        real(operation, kwargs)  # the first attempt commits; its reply is lost
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
                "CancellationReasons": [{"Code": "TransactionConflict"}]
                + [{"Code": "None"}] * (len(kwargs["TransactItems"]) - 1),
                "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 1},
            },
            operation,
        )

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client, "_make_api_call", committed_then_conflict)
        view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert sent == ["TransactWriteItems"]
    assert view.flow_id is not None
    assert entries(view.flow_id, EvidenceKind.SMS_CHECKED) == 1
    other = at_phone_step(vins[1])
    assert refused_code(lambda: service.verify_phone(other, OWNER, PHONE, code)) == "sms.no_code"


def consents_write(reg_id: str) -> StepWrite:
    """The consents step's write of the registration: the registration with a consent, and its entry."""
    service = deps.registration_service()
    reg = service.store.get(reg_id)
    assert reg is not None
    assert reg.flow_id is not None
    records = [
        ConsentRecord(
            kind=ConsentKind.REGISTRATION_AGREEMENT,
            version="v1",
            sha256="0" * 64,
            accepted_at=utc_now(),
            client={"ua": "test"},
        )
    ]
    ready: SealedRegistration = service.registrations.seal(reg, consents=records)
    given = {"consents": [r.model_dump(mode="json") for r in records]}
    return StepWrite(ready, Note(reg.flow_id, EvidenceKind.CONSENT_GIVEN, OWNER, given))


def test_a_store_failure_when_consents_are_given_leaves_the_registration_and_the_evidence_as_they_were(
    vins: list[str],
) -> None:
    from chalicelib.adapters.dynamo.step_writes import DynamoStepWrites

    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    service.verify_phone(reg_id, OWNER, PHONE, sent_code())
    writes = DynamoStepWrites(deps.field_cipher())
    write = consents_write(reg_id)
    before = snapshot()
    with store_throttled("TransactWriteItems"), pytest.raises(Unavailable):
        writes.commit(write)
    assert changed(before, snapshot()) == []
    writes.commit(write)
    reg = service.store.get(reg_id)
    assert reg is not None
    assert [c.kind for c in reg.consents] == [ConsentKind.REGISTRATION_AGREEMENT]
    assert reg.flow_id is not None
    assert entries(reg.flow_id, EvidenceKind.CONSENT_GIVEN) == 1
    assert deps.evidence_log().verify(reg.flow_id).ok


def test_consents_given_on_a_registration_changed_meanwhile_are_refused_and_leave_no_entry(
    vins: list[str],
) -> None:
    from chalicelib.adapters.dynamo.step_writes import DynamoStepWrites

    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    service.verify_phone(reg_id, OWNER, PHONE, sent_code())
    write = consents_write(reg_id)
    reg = service.store.get(reg_id)
    assert reg is not None
    service.registrations.save(
        reg, expires_at=reg.expires_at + timedelta(minutes=1) if reg.expires_at else None
    )
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        DynamoStepWrites(deps.field_cipher()).commit(write)
    assert refused.value.code == "registration.changed"
    assert changed(before, snapshot()) == []


# --------------------------------------------------------------------------- sent again, with its token


@contextlib.contextmanager
def tokens_kept(first: str) -> Iterator[list[tuple[str, str]]]:
    """``TransactWriteItems`` answered as DynamoDB answers a ``ClientRequestToken`` (moto ignores it): a
    transaction sent again with the token of one that landed is answered as done when its items are the
    same, and refused ``IdempotentParameterMismatchException`` when they are not. The first transaction
    sent meets ``first``:

    - ``late``: cancelled as a conflict while it is still committing; it lands when the next is sent;
    - ``in_progress``: it lands, and its answer is ``TransactionInProgressException`` (a retry of it met
      it still committing);
    - ``moved``: another append chains to the flow just before it is sent (its head moved).

    Yields each transaction sent, as (token, items)."""
    from chalicelib.adapters.dynamo.models import EvidenceModel

    client = EvidenceModel._get_connection().connection.client
    real = client._make_api_call
    landed: dict[str, str] = {}
    sent: list[tuple[str, str]] = []
    late: list[dict[str, Any]] = []
    moving: list[str] = []

    def land(kwargs: dict[str, Any]) -> Any:
        out = real("TransactWriteItems", kwargs)
        landed[kwargs["ClientRequestToken"]] = json.dumps(
            kwargs["TransactItems"], sort_keys=True, default=str
        )
        return out

    def with_tokens(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation != "TransactWriteItems" or moving:
            return real(operation, kwargs)
        token = kwargs["ClientRequestToken"]
        items = json.dumps(kwargs["TransactItems"], sort_keys=True, default=str)
        sent.append((token, items))
        if len(sent) == 1 and first == "late":
            late.append(copy.deepcopy(kwargs))
            raise _cancelled("TransactionConflict", len(kwargs["TransactItems"]))
        if len(sent) == 1 and first == "in_progress":
            land(kwargs)
            raise _aws_error("TransactionInProgressException")
        if len(sent) == 1 and first == "moved":
            flow_id = kwargs["TransactItems"][-1]["Update"]["Key"]["flow_id"]["S"]
            moving.append(flow_id)
            deps.evidence_log().append(flow_id, EvidenceKind.SMS_CHECKED, OWNER, {"by": "another"})
            moving.clear()
        while late:
            land(late.pop())
        if token in landed:
            if landed[token] != items:
                raise _aws_error("IdempotentParameterMismatchException")
            return {}
        return land(kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(client, "_make_api_call", with_tokens)
        yield sent


def _cancelled(reason: str, items: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
            "CancellationReasons": [{"Code": reason}] + [{"Code": "None"}] * (items - 1),
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "TransactWriteItems",
    )


def _aws_error(code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "TransactWriteItems",
    )


def test_a_phone_step_cancelled_while_its_transaction_still_commits_sends_it_again_with_its_token(
    vins: list[str],
) -> None:
    """The step's transaction is cancelled as a conflict while it is still committing (it lands late):
    the same transaction is sent again with the same token and answered as done, not prepared anew and
    refused by its own write (which would tell the person the code is gone)."""
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    with tokens_kept("late") as sent:
        view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert len(sent) == 2
    assert sent[0] == sent[1]  # the same token, the same items
    reg = service.store.get(reg_id)
    assert reg is not None
    assert (reg.phone, reg.flow_id) == (PHONE, view.flow_id)
    assert entries(view.flow_id or "", EvidenceKind.SMS_CHECKED) == 1
    assert deps.evidence_log().verify(view.flow_id or "").ok
    other = at_phone_step(vins[1])
    assert refused_code(lambda: service.verify_phone(other, OWNER, PHONE, code)) == "sms.no_code"


def test_a_phone_step_answered_in_progress_sends_the_same_transaction_again_and_is_answered_as_done(
    vins: list[str],
) -> None:
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    with tokens_kept("in_progress") as sent:
        view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert len(sent) == 2
    assert sent[0] == sent[1]
    assert view.flow_id is not None
    assert entries(view.flow_id, EvidenceKind.SMS_CHECKED) == 1
    assert deps.evidence_log().verify(view.flow_id).ok


@contextlib.contextmanager
def landing_late() -> Iterator[list[str]]:
    """As the store without tokens answers it (moto): the first transaction is cancelled as a conflict
    while it is still committing, and lands just before the next one is sent (which its writes then
    refuse). Yields the transactions sent."""
    from botocore.endpoint import Endpoint

    original = Endpoint.make_request
    held: list[tuple[Endpoint, Any, Any]] = []
    sends: list[str] = []

    def lands_late(endpoint: Endpoint, model: Any, request: Any) -> Any:
        if model.service_model.service_name == "dynamodb" and model.name == "TransactWriteItems":
            sends.append(model.name)
            if len(sends) == 1:
                held.append((endpoint, model, copy.deepcopy(request)))
                items = len(json.loads(request["body"])["TransactItems"])
                raise _cancelled("TransactionConflict", items)
            while held:
                original(*held.pop())  # the first lands now
        return original(endpoint, model, request)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Endpoint, "make_request", lands_late)
        yield sends


def test_a_phone_step_whose_cancelled_transaction_lands_before_it_is_sent_again_is_answered_as_done(
    vins: list[str],
) -> None:
    """The send again is refused by what the first wrote: its entry is found in the chain, the step is
    done, once."""
    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    code = sent_code()
    with landing_late() as sends:
        view = service.verify_phone(reg_id, OWNER, PHONE, code)
    assert sends == ["TransactWriteItems", "TransactWriteItems"]
    reg = service.store.get(reg_id)
    assert reg is not None
    assert (reg.phone, reg.flow_id) == (PHONE, view.flow_id)
    assert entries(view.flow_id or "", EvidenceKind.SMS_CHECKED) == 1


def test_consents_whose_cancelled_transaction_lands_before_it_is_sent_again_are_answered_as_done(
    vins: list[str],
) -> None:
    """The send again is refused by the registration's new version, written by the first: the
    consents' entry is found in the chain, and the step is answered as done, not as a registration
    changed by another request."""
    from chalicelib.adapters.dynamo.step_writes import DynamoStepWrites

    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    service.verify_phone(reg_id, OWNER, PHONE, sent_code())
    write = consents_write(reg_id)
    with landing_late() as sends:
        DynamoStepWrites(deps.field_cipher()).commit(write)
    assert sends == ["TransactWriteItems", "TransactWriteItems"]
    reg = service.store.get(reg_id)
    assert reg is not None
    assert reg.flow_id is not None
    assert [c.kind for c in reg.consents] == [ConsentKind.REGISTRATION_AGREEMENT]
    assert entries(reg.flow_id, EvidenceKind.CONSENT_GIVEN) == 1
    assert deps.evidence_log().verify(reg.flow_id).ok


def test_consents_refused_by_a_moved_chain_head_are_prepared_again_with_a_new_token_and_land_once(
    vins: list[str],
) -> None:
    from chalicelib.adapters.dynamo.step_writes import DynamoStepWrites

    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    service.verify_phone(reg_id, OWNER, PHONE, sent_code())
    write = consents_write(reg_id)
    with tokens_kept("moved") as sent:
        DynamoStepWrites(deps.field_cipher()).commit(write)
    assert len(sent) == 2
    assert sent[0][0] != sent[1][0]  # a new transaction: a new token
    reg = service.store.get(reg_id)
    assert reg is not None
    assert reg.flow_id is not None
    assert [e.kind for e in deps.evidence_log().entries(reg.flow_id)][-2:] == [
        EvidenceKind.SMS_CHECKED,
        EvidenceKind.CONSENT_GIVEN,
    ]
    assert [c.kind for c in reg.consents] == [ConsentKind.REGISTRATION_AGREEMENT]
    assert deps.evidence_log().verify(reg.flow_id).ok


def test_consents_whose_chain_head_moves_before_every_try_are_answered_contended_and_write_nothing(
    vins: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.dynamo import step_writes
    from chalicelib.adapters.dynamo.evidence import read_head

    service = deps.registration_service()
    reg_id = at_phone_step(vins[0])
    service.verify_phone(reg_id, OWNER, PHONE, sent_code())
    write = consents_write(reg_id)
    flow_id = write.note.flow_id
    stale = read_head(flow_id)
    # another writer chains after the head each try reads: every try is refused by the head it read
    deps.evidence_log().append(flow_id, EvidenceKind.SMS_CHECKED, OWNER, {"by": "another"})
    reads: list[ChainHead] = []

    def read_before_it_moved(flow: str) -> Any:
        assert flow == flow_id
        reads.append(read_head(flow))
        return stale

    monkeypatch.setattr(step_writes, "read_head", read_before_it_moved)
    before = snapshot()
    with pytest.raises(Conflict) as refused:
        step_writes.DynamoStepWrites(deps.field_cipher()).commit(write)
    assert (refused.value.code, refused.value.status) == ("evidence.append_contended", 409)
    assert refused.value.details == {"flow_id": flow_id}
    assert len(reads) == step_writes.ATTEMPTS  # prepared again after each refusal, never given up early
    assert changed(before, snapshot()) == []
    reg = service.store.get(reg_id)
    assert reg is not None
    assert reg.consents == []
    assert entries(flow_id, EvidenceKind.CONSENT_GIVEN) == 0
    assert deps.evidence_log().verify(flow_id).ok
    # once the chain is left alone, the same write lands after the other writer's entry
    monkeypatch.undo()
    step_writes.DynamoStepWrites(deps.field_cipher()).commit(write)
    assert entries(flow_id, EvidenceKind.CONSENT_GIVEN) == 1
    assert deps.evidence_log().verify(flow_id).ok
