"""The token signing key across rotations: sign with the current version, verify with the current one and,
for a while after a rotation, the previous one.

Deployed stages keep the key in Secrets Manager (``Settings.token_secret_name``); the rotation function
(``chalicelib.events.rotation``) writes a new version every ``rotation_days``. Each container keeps the
versions it read for ``rotation_cache_seconds``, so for a few minutes after a rotation some containers sign
with the new key while others still hold the old one as current. Rotation drops no token:

- every token names its key (JWT header ``kid``: a fingerprint of the key, never the key itself);
- a token naming a key the container does not hold makes it read the secret again, at most once per
  ``MIN_REFRESH_SECONDS`` (made-up ids cannot hammer Secrets Manager);
- the previous version verifies until ``rotation_overlap_seconds`` after the current one was created
  (longer than any of our tokens lives), then no more; a key two rotations old never verifies.

Local stages and an explicit ``token_secret`` have one key and no rotation.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from chalicelib.kernel.clock import Clock, utc_now

if TYPE_CHECKING:
    from chalicelib.core.settings import Settings

CURRENT = "AWSCURRENT"
PREVIOUS = "AWSPREVIOUS"
PENDING = "AWSPENDING"
#: A forced re-read (a token naming an unknown key) happens at most this often per container.
MIN_REFRESH_SECONDS = 5.0
#: The shortest key the rotation writes and the functions accept from Secrets Manager.
MIN_KEY_CHARS = 32


class TokenKeysUnavailable(Exception):
    """The stage's token key secret is missing or holds no usable key."""


def key_id(secret: str) -> str:
    """The ``kid`` naming a key in the tokens it signs: a fingerprint, useless to forge with."""
    return "t" + hashlib.sha256(b"cheka-token-key-id\x00" + secret.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, repr=False)
class TokenKey:
    secret: str
    kid: str

    @classmethod
    def of(cls, secret: str) -> TokenKey:
        return cls(secret=secret, kid=key_id(secret))

    def __repr__(self) -> str:
        return f"TokenKey(kid={self.kid})"


@dataclass(frozen=True)
class TokenKeys:
    """The key that signs, and the one that still verifies after a rotation (None outside the overlap)."""

    current: TokenKey
    previous: TokenKey | None = None

    def candidates(self, kid: str | None) -> tuple[TokenKey, ...]:
        """The keys a token naming ``kid`` may be verified with (a token without one: both, current first)."""
        held = tuple(k for k in (self.current, self.previous) if k is not None)
        if kid is None:
            return held
        return tuple(k for k in held if k.kid == kid)


@dataclass(frozen=True)
class _Entry:
    read_at: datetime
    current: TokenKey
    previous: TokenKey | None
    #: When the previous version stops verifying (the current version's creation + the overlap).
    previous_until: datetime


class SecretsManagerTokenKeys:
    """``AWSCURRENT`` and ``AWSPREVIOUS`` of the token key secret, kept ``max_age_seconds``."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        max_age_seconds: float,
        overlap_seconds: float,
        min_refresh_seconds: float = MIN_REFRESH_SECONDS,
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._name = name
        self._max_age = timedelta(seconds=max_age_seconds)
        self._overlap = timedelta(seconds=overlap_seconds)
        self._min_refresh = timedelta(seconds=min_refresh_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._entry: _Entry | None = None
        self._forced_at: datetime | None = None

    def _read(self, stage: str) -> tuple[TokenKey, datetime] | None:
        try:
            resp = self._client.get_secret_value(SecretId=self._name, VersionStage=stage)
        except self._client.exceptions.ResourceNotFoundException:
            return None
        secret = resp.get("SecretString")
        if not isinstance(secret, str) or len(secret) < MIN_KEY_CHARS:
            if stage == CURRENT:
                raise TokenKeysUnavailable(f"{self._name}: the current version holds no usable key")
            return None  # an unusable old version verifies nothing
        created = resp.get("CreatedDate")
        return TokenKey.of(secret), created if isinstance(created, datetime) else self._clock()

    def _load(self) -> _Entry:
        now = self._clock()
        current = self._read(CURRENT)
        if current is None:
            raise TokenKeysUnavailable(f"no secret {self._name}")
        key, created = current
        until = created + self._overlap
        previous = self._read(PREVIOUS) if now < until else None
        entry = _Entry(now, key, None if previous is None else previous[0], until)
        with self._lock:
            self._entry = entry
        return entry

    def _keys(self, entry: _Entry) -> TokenKeys:
        previous = entry.previous if self._clock() < entry.previous_until else None
        return TokenKeys(current=entry.current, previous=previous)

    def keys(self) -> TokenKeys:
        with self._lock:
            entry = self._entry
        if entry is None or self._clock() - entry.read_at >= self._max_age:
            entry = self._load()
        return self._keys(entry)

    def refresh(self) -> TokenKeys | None:
        """Read the secret again now (a token named a key this container does not hold); None when the
        last forced read was less than ``min_refresh_seconds`` ago."""
        now = self._clock()
        with self._lock:
            if self._forced_at is not None and now - self._forced_at < self._min_refresh:
                return None
            self._forced_at = now
        return self._keys(self._load())


_sources: dict[tuple[str, str], SecretsManagerTokenKeys] = {}
_sources_lock = threading.Lock()
#: Makes the Secrets Manager client the keys are read with. Installed by the composition root
#: (``chalicelib.core.deps``): this module sits below the AWS clients and cannot reach them itself.
_client_factory: Callable[[], Any] | None = None


def install_client_factory(factory: Callable[[], Any] | None) -> None:
    global _client_factory
    _client_factory = factory


def _source(settings: Settings) -> SecretsManagerTokenKeys | None:
    """The stage's Secrets Manager key source; None where the key is fixed (explicit or local)."""
    if settings.token_secret is not None or settings.is_local:
        return None
    key = (settings.region, settings.token_secret_name)
    with _sources_lock:
        source = _sources.get(key)
        if source is None:
            if _client_factory is None:
                raise RuntimeError("no Secrets Manager client is installed (chalicelib.core.deps does it)")
            source = SecretsManagerTokenKeys(
                _client_factory(),
                settings.token_secret_name,
                max_age_seconds=settings.rotation_cache_seconds,
                overlap_seconds=settings.rotation_overlap_seconds,
            )
            _sources[key] = source
    return source


def install(settings: Settings, source: SecretsManagerTokenKeys) -> None:
    """Use ``source`` for ``settings``' stage (tests give it their own client and clock)."""
    with _sources_lock:
        _sources[(settings.region, settings.token_secret_name)] = source


def keys_for(settings: Settings) -> TokenKeys:
    """The stage's token keys: Secrets Manager's versions on deployed stages, else the one fixed key."""
    source = _source(settings)
    if source is None:
        return TokenKeys(current=TokenKey.of(settings.signing_secret()))
    return source.keys()


def refresh_for(settings: Settings) -> TokenKeys | None:
    """The keys read again (see ``SecretsManagerTokenKeys.refresh``); None where they cannot change."""
    source = _source(settings)
    return None if source is None else source.refresh()


def reset() -> None:
    """Forget every source (tests switch the embedded AWS between tests)."""
    with _sources_lock:
        _sources.clear()
