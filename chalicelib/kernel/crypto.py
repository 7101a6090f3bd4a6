"""Ports of the personal-data protection every context uses: field envelope encryption and keyed hashes."""

from __future__ import annotations

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
