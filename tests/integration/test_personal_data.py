"""Personal data: encrypted per field with KMS data keys, looked up by keyed hash, never logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.core import deps
from chalicelib.core.aws import client
from chalicelib.core.settings import get_settings
from chalicelib.kernel.crypto import SealedFields
from chalicelib.kernel.personal import IdType, Party

ID_NUMBER = "11010519491231002X"
PHONE = "13812341234"


def _person() -> Party:
    return Party(
        id_type=IdType.RESIDENT_ID,
        id_number=ID_NUMBER,
        name="张三丰",
        address="北京市朝阳区建国路 88 号",
        phone=PHONE,
    )


def test_fields_are_encrypted_at_rest_and_read_back(aws: None) -> None:
    # Given a person stored through the repository
    person = _person()
    deps.party_repo().put(person)
    # When the raw item is read from the table
    raw = client("dynamodb").get_item(
        TableName=get_settings().table_name("parties"), Key={"party_id": {"S": person.party_id}}
    )["Item"]
    dump = json.dumps(raw, default=str, ensure_ascii=False)
    # Then no personal field is there in clear, and the repository reads them back
    for clear in (ID_NUMBER, PHONE, "张三丰", "建国路"):
        assert clear not in dump
    assert {"name_enc", "id_number_enc", "address_enc", "phone_enc", "data_key", "id_hash"} <= raw.keys()
    assert deps.party_repo().get(person.party_id) == person.model_copy(
        update={"created_at": deps.party_repo().get(person.party_id).created_at}  # type: ignore[union-attr]
    )


def test_lookup_by_id_number_uses_the_keyed_hash(aws: None) -> None:
    person = _person()
    deps.party_repo().put(person)
    found = deps.party_repo().find_by_id_number(IdType.RESIDENT_ID, ID_NUMBER.lower())
    assert [p.party_id for p in found] == [person.party_id]
    assert deps.party_repo().find_by_id_number(IdType.PASSPORT, ID_NUMBER) == []


def test_a_ciphertext_moved_to_another_record_does_not_decrypt(aws: None) -> None:
    from cryptography.exceptions import InvalidTag

    cipher = deps.field_cipher()
    sealed = cipher.seal("parties|a", {"name": "张三丰"})
    assert cipher.open("parties|a", sealed) == {"name": "张三丰"}
    with pytest.raises(InvalidTag):
        cipher.open("parties|b", sealed)
    with pytest.raises(InvalidTag):  # nor to another field of the same record
        cipher.open("parties|a", SealedFields(sealed.data_key, {"address": sealed.values["name"]}))


def test_no_id_number_or_phone_in_logs(
    api: Any,
    auth: Callable[..., dict[str, str]],
    log_output: io.StringIO,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Given requests that carry an ID number and a phone, valid and invalid, and one that fails inside
    headers = auth("owner", **{"Content-Type": "application/json"})
    api.http.post("/v1/validate/resident_id", headers=headers, body=json.dumps({"value": ID_NUMBER}))
    api.http.post(
        "/v1/validate/resident_id", headers=headers, body=json.dumps({"value": ID_NUMBER[:-1] + "1"})
    )
    api.http.post("/v1/validate/mobile", headers=headers, body=json.dumps({"value": PHONE}))
    api.http.post(
        "/v1/validate/mobile", headers=headers, body=json.dumps({"value": PHONE, "extra": ID_NUMBER})
    )
    from chalicelib.core.observability import logger

    logger.info(f"a careless line mentioning {ID_NUMBER} and {PHONE}", extra={"phone": PHONE})
    # Then neither appears anywhere in the captured log output
    out = capfd.readouterr()
    logged = log_output.getvalue() + out.out + out.err + caplog.text
    assert "request refused" in logged  # the log really was captured
    assert ID_NUMBER not in logged
    assert ID_NUMBER[:-1] not in logged
    assert PHONE not in logged


def test_validate_endpoint_masks_personal_values(api: Any, auth: Callable[..., dict[str, str]]) -> None:
    headers = auth("owner", **{"Content-Type": "application/json"})
    resp = api.http.post("/v1/validate/resident_id", headers=headers, body=json.dumps({"value": ID_NUMBER}))
    doc = json.loads(resp.body)
    assert resp.status_code == 200
    assert doc["value"] == "1101**********002X"
    assert ID_NUMBER not in resp.body.decode()
