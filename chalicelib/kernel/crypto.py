"""Ports of the personal-data protection every context uses: field envelope encryption and keyed hashes."""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SealedFields:
    """Fields encrypted under one data key; ``data_key`` is that key wrapped by KMS."""

    data_key: bytes
    values: Mapping[str, bytes]


class FieldCipher(ABC):
    """Envelope encryption of a record's personal fields (KMS data keys + AES-GCM)."""

    @abstractmethod
    def seal(self, context: str, fields: Mapping[str, str]) -> SealedFields:
        """Encrypt each field; ``context`` (e.g. table and key) binds the ciphertexts to their record."""

    @abstractmethod
    def open(self, context: str, sealed: SealedFields) -> dict[str, str]: ...


class KeyedHasher(ABC):
    """A keyed hash of an identifier, so it can be looked up without being stored in clear."""

    @abstractmethod
    def digest(self, value: str) -> str: ...


#: The context a contact phone is sealed under (the in-service feed's sales-record phone, carried on the
#: card, in campaign messages and on the call list): every holder of the sealed text opens it with this.
CONTACT_PHONE_CONTEXT = "contact-phone"


class TextSealer:
    """One personal value sealed into text, for a string attribute or a queue message: the field
    cipher's envelope (wrapped data key and AES-GCM ciphertext) as URL-safe base64, ``s1.<key>.<value>``.
    ``deps.sealer()``; opened only where the clear value is needed (the SMS sent, a read-logged export)."""

    PREFIX = "s1"

    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    def seal(self, text: str, context: str = CONTACT_PHONE_CONTEXT) -> str:
        sealed = self._cipher.seal(context, {"v": text})
        return ".".join((self.PREFIX, _b64(sealed.data_key), _b64(sealed.values["v"])))

    def open(self, sealed: str, context: str = CONTACT_PHONE_CONTEXT) -> str:
        prefix, key, value = sealed.split(".")
        if prefix != self.PREFIX:
            raise ValueError("not a sealed text")
        envelope = SealedFields(data_key=_unb64(key), values={"v": _unb64(value)})
        return self._cipher.open(context, envelope)["v"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
