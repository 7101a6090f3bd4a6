"""The party repository on DynamoDB: personal fields (and the ID's end date) sealed with KMS data keys,
ID numbers hashed."""

from __future__ import annotations

from datetime import date

from chalicelib.adapters.dynamo.models import PartyModel
from chalicelib.cards.ports import PartyRepository
from chalicelib.kernel.clock import utc_now
from chalicelib.kernel.crypto import FieldCipher, KeyedHasher, SealedFields
from chalicelib.kernel.personal import IdType, Party, PartyKind, id_lookup_value


class DynamoPartyRepository(PartyRepository):
    def __init__(self, cipher: FieldCipher, hasher: KeyedHasher):
        self._cipher = cipher
        self._hasher = hasher

    @staticmethod
    def _context(party_id: str) -> str:
        return f"parties|{party_id}"

    def put(self, party: Party) -> None:
        fields = {"name": party.name, "id_number": party.id_number}
        if party.address:
            fields["address"] = party.address
        if party.phone:
            fields["phone"] = party.phone
        if party.id_valid_until and not party.id_permanent:
            fields["id_valid_until"] = party.id_valid_until.isoformat()
        sealed = self._cipher.seal(self._context(party.party_id), fields)
        PartyModel(
            party.party_id,
            kind=party.kind.value,
            id_type=party.id_type.value,
            id_hash=self._hasher.digest(id_lookup_value(party.id_type, party.id_number)),
            data_key=sealed.data_key,
            name_enc=sealed.values["name"],
            id_number_enc=sealed.values["id_number"],
            address_enc=sealed.values.get("address"),
            phone_enc=sealed.values.get("phone"),
            id_valid_until_enc=sealed.values.get("id_valid_until"),
            id_permanent=party.id_permanent,
            created_at=party.created_at or utc_now(),
        ).save(condition=PartyModel.party_id.does_not_exist())

    def delete(self, party_id: str) -> None:
        PartyModel(party_id).delete()

    def get(self, party_id: str) -> Party | None:
        try:
            item = PartyModel.get(party_id)
        except PartyModel.DoesNotExist:
            return None
        values = {
            name: blob
            for name, blob in (
                ("name", item.name_enc),
                ("id_number", item.id_number_enc),
                ("address", item.address_enc),
                ("phone", item.phone_enc),
                ("id_valid_until", item.id_valid_until_enc),
            )
            if blob is not None
        }
        clear = self._cipher.open(self._context(party_id), SealedFields(item.data_key, values))
        return Party(
            party_id=item.party_id,
            kind=PartyKind(item.kind),
            id_type=IdType(item.id_type),
            id_number=clear["id_number"],
            name=clear["name"],
            address=clear.get("address"),
            phone=clear.get("phone"),
            id_valid_until=date.fromisoformat(until)
            if (until := clear.get("id_valid_until") or item.id_valid_until)
            else None,
            id_permanent=bool(item.id_permanent),
            created_at=item.created_at,
        )

    def find_by_id_number(self, id_type: IdType, id_number: str) -> list[Party]:
        digest = self._hasher.digest(id_lookup_value(id_type, id_number))
        found = (self.get(k.party_id) for k in PartyModel.by_id_hash.query(digest))
        return [p for p in found if p is not None]
