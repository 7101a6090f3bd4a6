"""The Tencent FaceID adapter on the official SDK, pointed at a local fake of the provider's HTTP API
(TC3-signed JSON POSTs): each answer of the provider maps to the authority's, outages never pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.adapters.authority.tencent import TencentCredentials, TencentIdentityAuthority
from chalicelib.verification.domain.authority import AuthorityResult
from tests.fakes.tencent_faceid import SECRET_ID, SECRET_KEY, FakeFaceId

NAME = "王小明"
NUMBER = "110101199003076632"


@pytest.fixture
def provider() -> Iterator[FakeFaceId]:
    fake = FakeFaceId(citizens={NUMBER: NAME}, similarity={NUMBER: 88.5}).start()
    yield fake
    fake.stop()


def adapter(fake: FakeFaceId, secret_key: str = SECRET_KEY, **kwargs: float) -> TencentIdentityAuthority:
    return TencentIdentityAuthority(
        TencentCredentials(SECRET_ID, secret_key),
        endpoint=fake.endpoint,
        timeout_seconds=kwargs.get("timeout_seconds", 1.0),
        retries=int(kwargs.get("retries", 2)),
        sleep=lambda _s: None,
    )


def test_a_known_identity_matches_with_the_providers_request_id(provider: FakeFaceId) -> None:
    answer = adapter(provider).verify_identity(NAME, "resident_id", NUMBER)
    assert answer.result is AuthorityResult.MATCH
    assert answer.provider == "tencent-faceid"
    assert answer.provider_code == "0"
    assert answer.reference is not None
    assert provider.requests == [("IdCardVerification", {"IdCard": NUMBER, "Name": NAME})]


def test_another_name_is_no_match_and_an_unknown_number_is_not_found(provider: FakeFaceId) -> None:
    authority = adapter(provider)
    assert authority.verify_identity("李四", "resident_id", NUMBER).result is AuthorityResult.NO_MATCH
    unknown = authority.verify_identity(NAME, "resident_id", "110101199003071233")
    assert (unknown.result, unknown.provider_code) == (AuthorityResult.NOT_FOUND, "-5")


def test_the_portrait_matches_at_the_providers_threshold_and_not_below(provider: FakeFaceId) -> None:
    authority = adapter(provider)
    match = authority.compare_portrait(NAME, NUMBER, b"\xff\xd8live")
    assert (match.result, match.similarity) == (AuthorityResult.MATCH, 88.5)
    provider.similarity[NUMBER] = 41.0
    assert authority.compare_portrait(NAME, NUMBER, b"\xff\xd8other").result is AuthorityResult.NO_MATCH
    assert provider.requests[0][1]["ImageBase64"] == "/9hsaXZl"


def test_the_portrait_of_an_unknown_identity_is_not_found(provider: FakeFaceId) -> None:
    answer = adapter(provider).compare_portrait(NAME, "110101199003071233", b"\xff\xd8live")
    assert (answer.result, answer.provider_code) == (
        AuthorityResult.NOT_FOUND,
        "FailedOperation.IdNoExistSystem",
    )


def test_the_phone_holder_check_maps_the_carriers_answers(provider: FakeFaceId) -> None:
    # given the carrier holds a phone in the person's name
    provider.phones[NUMBER] = "13700001111"
    authority = adapter(provider)
    assert authority.supports_phone_holder
    # then that phone matches, through the SDK's PhoneVerification with the three factors
    match = authority.verify_phone_holder(NAME, "resident_id", NUMBER, "13700001111")
    assert (match.result, match.provider_code) == (AuthorityResult.MATCH, "0")
    assert match.reference is not None
    assert provider.requests == [
        ("PhoneVerification", {"IdCard": NUMBER, "Name": NAME, "Phone": "13700001111"})
    ]
    # and another phone is no match (-4), a person without a record not found (-9)
    other = authority.verify_phone_holder(NAME, "resident_id", NUMBER, "13655556666")
    assert (other.result, other.provider_code) == (AuthorityResult.NO_MATCH, "-4")
    unknown = authority.verify_phone_holder(NAME, "resident_id", "110101199003071233", "13700001111")
    assert (unknown.result, unknown.provider_code) == (AuthorityResult.NOT_FOUND, "-9")
    # and a number range the carriers do not check is not covered (-13): not a refusal, not a pass
    provider.unchecked_phones.add("17000001111")
    virtual = authority.verify_phone_holder(NAME, "resident_id", NUMBER, "17000001111")
    assert (virtual.result, virtual.provider_code) == (AuthorityResult.NOT_COVERED, "-13")


def test_the_phone_holder_check_is_unavailable_when_the_provider_fails(provider: FakeFaceId) -> None:
    provider.mode = "internal_error"
    answer = adapter(provider, retries=1).verify_phone_holder(NAME, "resident_id", NUMBER, "13700001111")
    assert (answer.result, answer.provider_code) == (AuthorityResult.UNAVAILABLE, "InternalError")
    assert len(provider.requests) == 2


def test_a_provider_error_is_retried_then_unavailable(provider: FakeFaceId) -> None:
    provider.mode = "internal_error"
    answer = adapter(provider, retries=2).verify_identity(NAME, "resident_id", NUMBER)
    assert (answer.result, answer.provider_code) == (AuthorityResult.UNAVAILABLE, "InternalError")
    assert len(provider.requests) == 3


def test_a_bad_gateway_is_unavailable(provider: FakeFaceId) -> None:
    provider.mode = "http_502"
    answer = adapter(provider, retries=1).compare_portrait(NAME, NUMBER, b"\xff\xd8live")
    assert answer.result is AuthorityResult.UNAVAILABLE
    assert len(provider.requests) == 2


def test_a_timeout_is_unavailable_never_a_pass(provider: FakeFaceId) -> None:
    provider.mode = "slow"
    provider.slow_seconds = 2.5
    answer = adapter(provider, timeout_seconds=1.0, retries=0).verify_identity(NAME, "resident_id", NUMBER)
    assert (answer.result, answer.provider_code) == (AuthorityResult.UNAVAILABLE, "ClientNetworkError")


def test_a_wrong_key_is_refused_by_the_signature_check_and_is_unavailable(provider: FakeFaceId) -> None:
    answer = adapter(provider, secret_key="not-the-key").verify_identity(NAME, "resident_id", NUMBER)
    assert (answer.result, answer.provider_code) == (
        AuthorityResult.UNAVAILABLE,
        "AuthFailure.SignatureFailure",
    )
    assert provider.requests == []


def test_the_stage_builds_the_adapter_with_its_keys_from_secrets_manager(
    aws: None, provider: FakeFaceId, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from chalicelib.core import deps
    from chalicelib.core.aws import client
    from chalicelib.core.settings import get_settings

    monkeypatch.setenv("CHEKA_IDENTITY_AUTHORITY", "tencent")
    monkeypatch.setenv("CHEKA_AUTHORITY_TENCENT_ENDPOINT", provider.endpoint)
    deps.reset()
    settings = get_settings()
    assert settings.authority_secret_name == "cheka/test/authority/tencent"
    client("secretsmanager").create_secret(
        Name=settings.authority_secret_name,
        SecretString=json.dumps({"secret_id": SECRET_ID, "secret_key": SECRET_KEY}),
    )
    authority = deps.identity_authority()
    assert isinstance(authority, TencentIdentityAuthority)
    assert authority.verify_identity(NAME, "resident_id", NUMBER).result is AuthorityResult.MATCH
    deps.reset()
