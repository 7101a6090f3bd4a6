"""Field-level encryption with KMS data keys, and keyed hashes with a KMS HMAC key.

Each record gets a data key from KMS (GenerateDataKey, AES-256); every personal field is encrypted
separately with AES-GCM, its associated data naming the record and the field, so a ciphertext moved
to another record or field fails to decrypt. Data keys are reused for a short while (as the AWS
Encryption SDK's caching does) to keep KMS calls and latency down; unwrapped keys are cached briefly.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from chalicelib.kernel.crypto import FieldCipher, KeyedHasher, SealedFields

_NONCE = 12


def _aesgcm(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(key)


def seal_with(key: bytes, wrapped: bytes, context: str, fields: Mapping[str, str]) -> SealedFields:
    aead = _aesgcm(key)
    values = {}
    for name, value in fields.items():
        nonce = os.urandom(_NONCE)
        values[name] = nonce + aead.encrypt(nonce, value.encode(), f"{context}|{name}".encode())
    return SealedFields(data_key=wrapped, values=values)


def open_with(key: bytes, context: str, sealed: SealedFields) -> dict[str, str]:
    aead = _aesgcm(key)
    return {
        name: aead.decrypt(blob[:_NONCE], blob[_NONCE:], f"{context}|{name}".encode()).decode()
        for name, blob in sealed.values.items()
    }


class KmsFieldCipher(FieldCipher):
    """Envelope encryption under a KMS key (moto's KMS locally)."""

    def __init__(
        self, kms: Any, key_id: str, *, key_reuse_seconds: float = 300.0, key_reuse_uses: int = 1000
    ):
        self._kms = kms
        self._key_id = key_id
        self._reuse_seconds = key_reuse_seconds
        self._reuse_uses = key_reuse_uses
        self._lock = threading.Lock()
        self._current: tuple[bytes, bytes, float, int] | None = None  # plaintext, wrapped, since, uses
        self._unwrapped: OrderedDict[bytes, bytes] = OrderedDict()

    def _data_key(self) -> tuple[bytes, bytes]:
        with self._lock:
            now = time.monotonic()
            cur = self._current
            if cur is None or now - cur[2] > self._reuse_seconds or cur[3] >= self._reuse_uses:
                resp = self._kms.generate_data_key(KeyId=self._key_id, KeySpec="AES_256")
                cur = (resp["Plaintext"], resp["CiphertextBlob"], now, 0)
            self._current = (cur[0], cur[1], cur[2], cur[3] + 1)
            return cur[0], cur[1]

    def seal(self, context: str, fields: Mapping[str, str]) -> SealedFields:
        key, wrapped = self._data_key()
        return seal_with(key, wrapped, context, fields)

    def open(self, context: str, sealed: SealedFields) -> dict[str, str]:
        with self._lock:
            key = self._unwrapped.get(sealed.data_key)
        if key is None:
            key = self._kms.decrypt(CiphertextBlob=sealed.data_key, KeyId=self._key_id)["Plaintext"]
            with self._lock:
                self._unwrapped[sealed.data_key] = key
                while len(self._unwrapped) > 256:
                    self._unwrapped.popitem(last=False)
        return open_with(key, context, sealed)


class KmsKeyedHasher(KeyedHasher):
    """HMAC-SHA-256 computed inside KMS: the hashing key never leaves it."""

    def __init__(self, kms: Any, key_id: str):
        self._kms = kms
        self._key_id = key_id

    def digest(self, value: str) -> str:
        resp = self._kms.generate_mac(KeyId=self._key_id, MacAlgorithm="HMAC_SHA_256", Message=value.encode())
        return base64.urlsafe_b64encode(resp["Mac"]).decode().rstrip("=")
