"""What the enterprise registry needs from the outside world: where enterprises are kept."""

from __future__ import annotations

from abc import ABC, abstractmethod

from chalicelib.enterprise.domain import Enterprise


class EnterpriseStore(ABC):
    """Enterprises keyed by USCC, the address sealed at rest."""

    @abstractmethod
    def get(self, uscc: str) -> Enterprise | None:
        """The enterprise with this USCC, if one was claimed."""

    @abstractmethod
    def put_new(self, enterprise: Enterprise) -> bool:
        """Keep ``enterprise`` only if no enterprise has its USCC yet; False when one has."""

    @abstractmethod
    def delete_if_owned(self, uscc: str, legal_account_id: str) -> bool:
        """Forget the enterprise only if ``legal_account_id`` holds it (undoing a claim); False otherwise."""
