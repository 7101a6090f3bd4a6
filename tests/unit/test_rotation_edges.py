"""Rotation edges: settings whose overlap would end tokens still in use are refused, and a document link
signed by a container that already holds the new token key opens on one that does not yet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.api.console import _open_link
from chalicelib.audit import document_views as links
from chalicelib.core import token_keys
from chalicelib.core.settings import Settings
from chalicelib.kernel.errors import Forbidden
from tests.fakes.clock import FakeClock

REGION = "cn-north-1"
OLD_KEY = "o" * 40
NEW_KEY = "n" * 40


# --------------------------------------------------------------------------- the overlap setting


def test_an_overlap_no_longer_than_a_token_plus_the_key_cache_is_refused() -> None:
    # a token signed just before the rotation by a container that still caches the old key lives
    # token_ttl_seconds more: the overlap must outlast both
    with pytest.raises(ValidationError, match="rotation_overlap_seconds"):
        Settings(
            stage="prod", token_ttl_seconds=3600, rotation_cache_seconds=300, rotation_overlap_seconds=3900
        )
    with pytest.raises(ValidationError, match="rotation_overlap_seconds"):
        Settings(
            stage="prod", token_ttl_seconds=1800, rotation_cache_seconds=600, rotation_overlap_seconds=2000
        )


def test_an_overlap_longer_than_a_token_plus_the_key_cache_is_accepted() -> None:
    settings = Settings(
        stage="prod", token_ttl_seconds=3600, rotation_cache_seconds=300, rotation_overlap_seconds=3901
    )
    assert settings.rotation_overlap_seconds == 3901
    assert Settings(stage="prod").rotation_overlap_seconds == 7200  # the defaults hold


# --------------------------------------------------------------------------- document links


@pytest.fixture
def prod(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, Any]]:
    from moto import mock_aws

    settings = Settings(stage="prod", region=REGION)
    monkeypatch.setattr("chalicelib.core.settings.get_settings", lambda: settings)
    with mock_aws():
        import boto3

        client = boto3.client("secretsmanager", region_name=REGION)
        client.create_secret(Name=settings.token_secret_name, SecretString=OLD_KEY)
        yield settings, client
    token_keys.reset()


def _container(settings: Settings, client: Any, clock: FakeClock) -> token_keys.SecretsManagerTokenKeys:
    return token_keys.SecretsManagerTokenKeys(
        client,
        settings.token_secret_name,
        max_age_seconds=settings.rotation_cache_seconds,
        overlap_seconds=settings.rotation_overlap_seconds,
        min_refresh_seconds=0,
        clock=clock,
    )


def _link(now: datetime) -> links.DocumentLink:
    return links.DocumentLink(
        link_id=uuid.uuid4().hex,
        subject="reviewer-1",
        roles=("reviewer",),
        issuer=None,
        record_kind=links.DocumentRecord.REVIEW_CASE,
        record_id="case-1",
        document="id_front",
        reason="审核",
        expires_at=int((now + timedelta(seconds=links.LINK_SECONDS)).timestamp()),
    )


def test_a_link_signed_with_the_new_key_opens_on_a_container_still_holding_the_old_one(
    prod: tuple[Settings, Any],
) -> None:
    settings, client = prod
    now = datetime.now(UTC)
    stale = _container(settings, client, FakeClock(now))
    token_keys.install(settings, stale)
    assert token_keys.keys_for(settings).current.secret == OLD_KEY  # read before the rotation, cached
    client.put_secret_value(SecretId=settings.token_secret_name, SecretString=NEW_KEY)
    # another container, already on the new version, hands out a link
    link = _link(now)
    token = links.sign_link(links.link_key(NEW_KEY), link)
    # the stale container reads the secret again on the link it cannot open, and opens it
    assert _open_link(token, now) == link
    # a link signed with the old key still opens during the overlap
    old = _link(now)
    assert _open_link(links.sign_link(links.link_key(OLD_KEY), old), now) == old


def test_a_forged_link_is_still_refused_after_the_keys_are_read_again(prod: tuple[Settings, Any]) -> None:
    settings, client = prod
    now = datetime.now(UTC)
    token_keys.install(settings, _container(settings, client, FakeClock(now)))
    forged = links.sign_link(links.link_key("f" * 40), _link(now))
    with pytest.raises(Forbidden) as refused:
        _open_link(forged, now)
    assert refused.value.code == "console.document_link_invalid"
