"""Fakes of the personal-data ports: the real AES-GCM sealing under a fixed key, an HMAC under a fixed key."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from chalicelib.adapters.crypto import open_with, seal_with
from chalicelib.kernel.crypto import FieldCipher, KeyedHasher, SealedFields


class FakeCipher(FieldCipher):
    """The real AES-GCM sealing with a fixed key instead of a KMS data key."""

    KEY = bytes(range(32))

    def seal(self, context: str, fields: Mapping[str, str]) -> SealedFields:
        return seal_with(self.KEY, b"fake-wrapped-key", context, fields)

    def open(self, context: str, sealed: SealedFields) -> dict[str, str]:
        return open_with(self.KEY, context, sealed)


class FakeHasher(KeyedHasher):
    def digest(self, value: str) -> str:
        return hmac.new(b"fake-hash-key", value.encode(), hashlib.sha256).hexdigest()
