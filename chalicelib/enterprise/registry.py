"""The enterprise registry (单位): one enterprise per USCC, held by exactly one legal-person account.

``Enterprises.claim`` is how legal-person real-name authentication binds an enterprise to the account
that proved it: a conditional put on the USCC, so a second account for the same enterprise is refused
with ``409 enterprise.taken`` whatever the timing. ``release`` undoes a claim (only by the account that
holds it) when completing the account fails after the claim.

Agents and the dealer context read enterprises through ``get``.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime

from chalicelib.enterprise.domain import Enterprise, EnterpriseType, LegalPersonType
from chalicelib.enterprise.ports import EnterpriseStore
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.errors import Conflict


def normalise_uscc(value: str) -> str:
    """The USCC as kept: full-width folded (NFKC), spaces and dashes dropped, upper-cased."""
    folded = unicodedata.normalize("NFKC", value)
    return "".join(c for c in folded if not c.isspace() and c != "-").upper()


class EnterpriseTaken(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "enterprise.taken",
            "该企业已有法人账号完成认证，每家企业只能有一个法人账号。如需办理业务，请向该账号申请成为经办人",
            "This enterprise already has a legal-person account; apply to it as an agent instead",
            field="uscc",
        )


class Enterprises:
    """Reads and claims enterprises by USCC."""

    def __init__(self, store: EnterpriseStore, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    def get(self, uscc: str) -> Enterprise | None:
        """The enterprise with this USCC (any spelling of it: full-width, spaces, lower case), if claimed."""
        return self._store.get(normalise_uscc(uscc))

    def claim(
        self,
        uscc: str,
        company_name: str,
        legal_account_id: str,
        *,
        enterprise_type: EnterpriseType,
        legal_person_type: LegalPersonType,
        representative_name_masked: str,
        representative_person_hash: str,
        address: str,
        flow_id: str | None = None,
        at: datetime | None = None,
    ) -> Enterprise:
        """Bind the enterprise to ``legal_account_id``. Raises ``409 enterprise.taken`` when another
        account holds it; claiming again by the same account answers the enterprise as it is."""
        enterprise = Enterprise(
            uscc=normalise_uscc(uscc),
            company_name=company_name.strip(),
            enterprise_type=enterprise_type,
            legal_person_type=legal_person_type,
            representative_name_masked=representative_name_masked,
            representative_person_hash=representative_person_hash,
            address=address,
            legal_account_id=legal_account_id,
            created_at=at or self._clock(),
            flow_id=flow_id,
        )
        if self._store.put_new(enterprise):
            return enterprise
        held = self._store.get(enterprise.uscc)
        if held is not None and held.legal_account_id == legal_account_id:
            return held
        raise EnterpriseTaken()

    def release(self, uscc: str, legal_account_id: str) -> bool:
        """Undo a claim of ``legal_account_id`` (nothing happens if another account holds the USCC)."""
        return self._store.delete_if_owned(normalise_uscc(uscc), legal_account_id)

    def held_by(self, uscc: str, account_id: str) -> bool:
        """Whether ``account_id`` is the legal-person account of the enterprise."""
        found = self.get(uscc)
        return found is not None and found.legal_account_id == account_id
