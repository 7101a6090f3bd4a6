"""抽查 (第十条) on the wire: a spot check's deadline travels in the sealed callback content, the OEM's
answer is a ``SPOT_CHECK_ANSWER`` push whose note is encrypted; other messages are unchanged."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.kernel.operators import Operator
from chalicelib.operators import wire
from chalicelib.operators.domain.messages import (
    CallbackOutcome,
    OperatorCallback,
    PushCard,
    PushMessage,
    PushVehicle,
    SpotCheckAnswer,
)
from chalicelib.operators.domain.spot_check_codes import SpotCheckStatus, SpotCheckVerdict
from chalicelib.operators.domain.spot_checks import SpotCheck, check_id_for
from chalicelib.operators.keys import generate_operator_keys

NOW = datetime(2025, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
MOBILE = Operator.CHINA_MOBILE
NOTE = "证件照片与登记姓名不一致"


def _answer(**kw: object) -> SpotCheckAnswer:
    values: dict[str, object] = {
        "check_ref": "cb0123456789abcdef",
        "verdict": SpotCheckVerdict.DISCREPANCY,
        "note": NOTE,
        "late": True,
        "due_at": NOW - timedelta(days=1),
        "answered_at": NOW,
    }
    values.update(kw)
    return SpotCheckAnswer.model_validate(values)


def _message(answer: SpotCheckAnswer | None, kind: PushKind = PushKind.SPOT_CHECK_ANSWER) -> PushMessage:
    return PushMessage(
        message_id="outbox-000042",
        kind=kind,
        card=PushCard(iccid="89860012345678901234", msisdn="1440012345678", operator=MOBILE),
        vehicle=PushVehicle(
            vin="JHMCM56557C404453", engine_no="K20A123", brand="红旗", model="H9", colour="黑"
        ),
        holder=None,
        functions=[CardFunction.EMERGENCY, CardFunction.TELEMATICS],
        created_at=NOW,
        spot_check=answer,
    )


def _spot_check(answer_by: datetime | None) -> OperatorCallback:
    return OperatorCallback(
        callback_id="cb0123456789abcdef",
        message_id="outbox-000001",
        operator=MOBILE,
        iccid="89860012345678901234",
        outcome=CallbackOutcome.SPOT_CHECK,
        reason_code="spot_check",
        reason_zh="抽查",
        reason_en="Spot check",
        decided_at=NOW,
        answer_by=answer_by,
    )


def test_a_spot_check_answer_push_round_trips_with_its_note_encrypted() -> None:
    keys = generate_operator_keys(MOBILE)
    message = _message(_answer())
    body = wire.encode_push_body(message, keys)
    doc = json.loads(body)
    assert doc["msgType"] == "SPOT_CHECK_ANSWER"
    spot = doc["bizContent"]["spotCheck"]
    assert (spot["checkRef"], spot["verdict"], spot["late"]) == ("cb0123456789abcdef", "DISCREPANCY", True)
    assert NOTE not in body.decode()  # the note is sealed
    assert base64.b64decode(spot["note"])
    assert doc["bizContent"]["holder"] is None
    assert wire.decode_push(body, keys) == message


def test_an_answer_without_a_note_is_confirmed_and_on_time() -> None:
    keys = generate_operator_keys(MOBILE)
    message = _message(_answer(verdict=SpotCheckVerdict.CONFIRMED, note=None, late=False))
    decoded = wire.decode_push(wire.encode_push_body(message, keys), keys)
    assert decoded.spot_check is not None
    assert (decoded.spot_check.verdict, decoded.spot_check.note, decoded.spot_check.late) == (
        SpotCheckVerdict.CONFIRMED,
        None,
        False,
    )


def test_a_spot_check_note_moved_to_another_message_does_not_decrypt() -> None:
    keys = generate_operator_keys(MOBILE)
    doc = json.loads(wire.encode_push_body(_message(_answer()), keys))
    doc["messageId"] = "outbox-000043"
    with pytest.raises(wire.WireError) as err:
        wire.decode_push(json.dumps(doc).encode(), keys)
    assert err.value.code == "undecryptable"


def test_a_spot_check_answer_without_its_answer_or_a_register_with_one_is_malformed() -> None:
    keys = generate_operator_keys(MOBILE)
    doc = json.loads(wire.encode_push_body(_message(_answer()), keys))
    del doc["bizContent"]["spotCheck"]
    with pytest.raises(wire.WireError) as err:
        wire.decode_push(json.dumps(doc).encode(), keys)
    assert err.value.code == "malformed"
    doc = json.loads(wire.encode_push_body(_message(_answer()), keys))
    doc["msgType"] = "REALNAME_CANCEL"
    with pytest.raises(wire.WireError):
        wire.decode_push(json.dumps(doc).encode(), keys)


def test_other_pushes_carry_no_spot_check_field() -> None:
    keys = generate_operator_keys(MOBILE)
    doc = json.loads(wire.encode_push_body(_message(None, PushKind.DEREGISTER), keys))
    assert "spotCheck" not in doc["bizContent"]


def test_a_spot_checks_deadline_travels_sealed_in_the_callback() -> None:
    keys = generate_operator_keys(MOBILE)
    due = NOW + timedelta(days=3)
    body = wire.encode_callback_body(_spot_check(due), keys)
    assert json.loads(body)["notifyType"] == "SPOT_CHECK"
    decoded = wire.decode_callback(body, keys)
    assert decoded.outcome is CallbackOutcome.SPOT_CHECK
    assert decoded.answer_by == due
    # Without a deadline the content names none (the platform's default applies)
    plain = wire.decode_callback(wire.encode_callback_body(_spot_check(None), keys), keys)
    assert plain.answer_by is None


def test_a_spot_check_case_id_is_one_per_operator_callback_and_overdue_after_its_deadline() -> None:
    assert check_id_for(MOBILE, "cb-1") == check_id_for(MOBILE, "cb-1")
    assert check_id_for(MOBILE, "cb-1") != check_id_for(Operator.CHINA_UNICOM, "cb-1")
    check = SpotCheck(
        check_id=check_id_for(MOBILE, "cb-1"),
        callback_id="cb-1",
        operator=MOBILE,
        iccid="89860012345678901234",
        message_id="outbox-000001",
        registration_id="r1",
        received_at=NOW,
        due_at=NOW + timedelta(days=5),
    )
    assert not check.overdue(NOW + timedelta(days=4))
    assert check.overdue(NOW + timedelta(days=6))
    answered = check.model_copy(update={"status": SpotCheckStatus.ANSWERED, "late": False})
    assert not answered.overdue(NOW + timedelta(days=6))
