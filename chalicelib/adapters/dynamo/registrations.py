"""Registrations in DynamoDB: one item each, every change conditional on the version read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import MapAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError
from pynamodb.transactions import TransactWrite

from chalicelib.adapters.dynamo.base import scan_upto, utc_aware
from chalicelib.adapters.dynamo.evidence import DynamoEvidenceLog, JoinedPut
from chalicelib.adapters.dynamo.models import PURGE_GRACE_SECONDS, RegistrationModel, RegistrationPushModel
from chalicelib.adapters.dynamo.opens import OwnerOpens
from chalicelib.consents.domain import ConsentRecord
from chalicelib.kernel.crypto import FieldCipher, SealedFields
from chalicelib.kernel.errors import Conflict
from chalicelib.registration.domain.registrations import (
    Delegation,
    DelegationConfirmation,
    Possession,
    Registration,
    RegistrationKind,
    RegistrationStatus,
    count_open,
)
from chalicelib.registration.ports import RegistrationRepository, SealedRegistration
from chalicelib.verification.domain.evidence import EvidenceKind
from chalicelib.verification.ports import EvidenceLog

_REGISTRATION_OPENS = OwnerOpens("registrations")

_DELEGATION_FIELDS = (
    "owner_id_type",
    "owner_id_number",
    "owner_name",
    "owner_address",
    "trustee_name",
    "owner_phone",
    "owner_id_validity",
)


def _epoch(at: datetime) -> int:
    return int(at.timestamp())


def changed() -> Conflict:
    return Conflict(
        "registration.changed",
        "办理记录已被其他操作修改，请刷新后重试",
        "The registration changed meanwhile; reload it and try again",
    )


class DynamoRegistrationRepository(RegistrationRepository):
    """The phone and a delegation's owner identity sealed under a data key bound to the id."""

    def __init__(self, cipher: FieldCipher) -> None:
        self._cipher = cipher

    @staticmethod
    def _context(registration_id: str) -> str:
        return f"registration:{registration_id}"

    def _seal(self, reg: Registration) -> SealedFields | None:
        """The phone and a delegation's owner identity sealed under a new data key (None: neither)."""
        fields: dict[str, str] = {}
        if reg.phone:
            fields["phone"] = reg.phone
        if reg.delegation is not None:
            dumped = reg.delegation.model_dump(include=set(_DELEGATION_FIELDS))
            fields.update({k: str(v) for k, v in dumped.items() if v is not None})
        return self._cipher.seal(self._context(reg.registration_id), fields) if fields else None

    def _item(self, reg: Registration, sealed: SealedFields | None) -> RegistrationModel:
        item = RegistrationModel(
            reg.registration_id,
            owner=reg.owner,
            kind=reg.kind.value,
            delegated=reg.delegated,
            vin=reg.vin,
            iccids=list(reg.iccids),
            status=reg.status.value,
            version=reg.version,
            flow_id=reg.flow_id,
            confirmed_at=reg.confirmed_at,
            phone_hash=reg.phone_hash,
            letter_key=reg.delegation.letter_key if reg.delegation else None,
            owner_id_key=reg.delegation.owner_id_key if reg.delegation else None,
            owner_id_back_key=reg.delegation.owner_id_back_key if reg.delegation else None,
            owner_phone_hash=reg.delegation.owner_phone_hash if reg.delegation else None,
            registered_for=reg.delegation.owner_subject if reg.delegation else None,
            delegation_confirmed_by=reg.delegation.confirmed_by.value
            if reg.delegation and reg.delegation.confirmed_by
            else None,
            delegation_confirmed_at=reg.delegation.confirmed_at if reg.delegation else None,
            owner_flow_id=reg.delegation.owner_flow_id if reg.delegation else None,
            consents_json=json.dumps([c.model_dump(mode="json") for c in reg.consents], ensure_ascii=False)
            if reg.consents
            else None,
            possession_json=reg.possession.model_dump_json() if reg.possession else None,
            party_id=reg.party_id,
            onsite_photo=reg.onsite_photo,
            record_ids=list(reg.record_ids) or None,
            receipt_no=reg.receipt_no,
            assisted_by=reg.assisted_by,
            submitted_at=reg.submitted_at,
            notified_at=reg.notified_at,
            created_at=reg.created_at,
            updated_at=reg.updated_at,
            expires_epoch=_epoch(reg.expires_at) if reg.expires_at else None,
            purge_after_epoch=_epoch(reg.expires_at) + PURGE_GRACE_SECONDS if reg.expires_at else None,
        )
        if sealed is not None:
            item.data_key = sealed.data_key
            item.sealed = MapAttribute(**sealed.values)  # type: ignore[no-untyped-call]
        return item

    def _registration(self, item: RegistrationModel) -> Registration:
        clear: dict[str, str] = {}
        if item.sealed is not None and item.data_key is not None:
            values = {k: bytes(v) for k, v in item.sealed.attribute_values.items()}
            clear = self._cipher.open(
                self._context(item.registration_id), SealedFields(item.data_key, values)
            )
        delegation = None
        if "owner_id_number" in clear:
            delegation = Delegation(
                owner_id_type=clear["owner_id_type"],
                owner_id_number=clear["owner_id_number"],
                owner_name=clear["owner_name"],
                owner_address=clear.get("owner_address"),
                letter_key=item.letter_key,
                owner_id_key=item.owner_id_key,
                owner_id_back_key=item.owner_id_back_key,
                owner_id_validity=clear.get("owner_id_validity"),
                trustee_name=clear.get("trustee_name"),
                owner_phone=clear.get("owner_phone"),
                owner_phone_hash=item.owner_phone_hash,
                confirmed_by=DelegationConfirmation(item.delegation_confirmed_by)
                if item.delegation_confirmed_by
                else None,
                confirmed_at=utc_aware(item.delegation_confirmed_at)
                if item.delegation_confirmed_at
                else None,
                owner_flow_id=item.owner_flow_id,
            )
        consents: list[Any] = json.loads(item.consents_json) if item.consents_json else []
        return Registration(
            registration_id=item.registration_id,
            owner=item.owner,
            kind=RegistrationKind(item.kind),
            delegated=bool(item.delegated),
            vin=item.vin,
            iccids=[str(i) for i in item.iccids],
            status=RegistrationStatus(item.status),
            version=int(item.version),
            flow_id=item.flow_id,
            confirmed_at=utc_aware(item.confirmed_at) if item.confirmed_at else None,
            phone=clear.get("phone"),
            phone_hash=item.phone_hash,
            delegation=delegation,
            consents=[ConsentRecord.model_validate(c) for c in consents],
            possession=Possession.model_validate_json(item.possession_json) if item.possession_json else None,
            party_id=item.party_id,
            onsite_photo=item.onsite_photo,
            record_ids=[str(r) for r in item.record_ids or []],
            receipt_no=item.receipt_no,
            assisted_by=item.assisted_by,
            submitted_at=utc_aware(item.submitted_at) if item.submitted_at else None,
            notified_at=utc_aware(item.notified_at) if item.notified_at else None,
            created_at=utc_aware(item.created_at),
            updated_at=utc_aware(item.updated_at),
            expires_at=datetime.fromtimestamp(int(item.expires_epoch), UTC) if item.expires_epoch else None,
        )

    def create(self, reg: Registration) -> None:
        try:
            self._item(reg, self._seal(reg)).save(
                condition=RegistrationModel.registration_id.does_not_exist()
            )
        except PutError as exc:  # (a throttle or a timeout is raised as such: adapters.dynamo.base)
            raise changed() from exc

    def create_if_room(self, reg: Registration, limit: int, now: datetime) -> bool:
        def held() -> tuple[set[str], set[str]]:
            mine = self.of_owner(reg.owner)
            still_open = {r.registration_id for r in mine if count_open([r], now)}
            return {r.registration_id for r in mine}, still_open

        # The turn and the registration in one transaction: a failed create counts no open.
        item = self._item(reg, self._seal(reg))
        created = _REGISTRATION_OPENS.create_if_room(
            reg.owner,
            reg.registration_id,
            limit,
            now,
            held,
            item,
            RegistrationModel.registration_id.does_not_exist(),
        )
        if created is None:
            # Refused for an item of that id: this very create, when a retry of it (its reply lost) met
            # its own first attempt; anything else is a conflict.
            stored = self.get(reg.registration_id)
            if stored is not None and (stored.owner, stored.version, stored.created_at) == (
                reg.owner,
                reg.version,
                reg.created_at,
            ):
                return True
            raise changed()
        return created

    def get(self, registration_id: str) -> Registration | None:
        try:
            return self._registration(RegistrationModel.get(registration_id, consistent_read=True))
        except DoesNotExist:
            return None

    def save(self, reg: Registration) -> Registration:
        return self.save_sealed(self.seal(reg))

    def seal(self, reg: Registration) -> SealedRegistration:
        return SealedRegistration(reg, self._seal(reg))

    def save_sealed(self, ready: SealedRegistration) -> Registration:
        reg = ready.registration
        try:
            self._item(reg, ready.sealed).save(condition=RegistrationModel.version == reg.version - 1)
        except PutError as exc:
            raise changed() from exc
        return reg

    def save_noted(
        self,
        ready: SealedRegistration,
        evidence: EvidenceLog,
        flow_id: str,
        kind: EvidenceKind,
        public: Mapping[str, Any],
    ) -> Registration:
        """The registration's put joins the entry's transaction (the DynamoDB evidence log): both or
        neither."""
        if not isinstance(evidence, DynamoEvidenceLog):
            return super().save_noted(ready, evidence, flow_id, kind, public)
        reg = ready.registration
        put = JoinedPut(self._item(reg, ready.sealed), RegistrationModel.version == reg.version - 1, changed)
        evidence.append_with(flow_id, kind, reg.owner, public, puts=[put])
        return reg

    def save_in(self, tx: TransactWrite, ready: SealedRegistration) -> None:
        """``save_sealed`` as one write of the transaction ``tx`` (a step's writes, all or none): refused
        unless the stored version is the one before ``ready``'s."""
        reg = ready.registration
        tx.save(self._item(reg, ready.sealed), condition=RegistrationModel.version == reg.version - 1)

    def of_owner(self, owner: str) -> list[Registration]:
        return [self._registration(i) for i in RegistrationModel.by_owner.query(owner)]

    def registered_for(self, owner_subject: str) -> list[Registration]:
        return [self._registration(i) for i in RegistrationModel.by_registered_for.query(owner_subject)]

    def by_receipt(self, receipt_no: str) -> Registration | None:
        for key in RegistrationModel.by_receipt.query(receipt_no, limit=1):
            return self.get(str(key.registration_id))
        return None

    def link_pushes(self, registration_id: str, record_ids: list[str]) -> None:
        with RegistrationPushModel.batch_write() as batch:
            for record_id in record_ids:
                batch.save(RegistrationPushModel(record_id, registration_id=registration_id))

    def by_push(self, record_id: str) -> Registration | None:
        try:
            link = RegistrationPushModel.get(record_id)
        except DoesNotExist:
            return None
        return self.get(str(link.registration_id))

    def expired_open(self, now: datetime, limit: int) -> list[Registration]:
        condition = (RegistrationModel.expires_epoch < _epoch(now)) & (
            RegistrationModel.status == RegistrationStatus.OPEN.value
        )
        return [self._registration(i) for i in scan_upto(RegistrationModel, condition, limit)]

    def submitting(self, claimed_before: datetime, limit: int) -> list[Registration]:
        condition = (RegistrationModel.status == RegistrationStatus.SUBMITTING.value) & (
            RegistrationModel.submitted_at < claimed_before
        )
        return [self._registration(i) for i in scan_upto(RegistrationModel, condition, limit)]

    def delete_expired(self, reg: Registration, now: datetime) -> bool:
        condition = (RegistrationModel.expires_epoch < _epoch(now)) & (
            RegistrationModel.status == RegistrationStatus.OPEN.value
        )
        try:
            RegistrationModel(reg.registration_id).delete(condition=condition)
        except DeleteError:
            return False
        return True
